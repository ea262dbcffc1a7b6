//! The JSON of the `IpamDriver` plugin protocol (libnetwork's `ipams/remote/api`), with
//! Docker's field names. Unlike network drivers, IPAM plugins report errors in `Error`.

use libnetwork_ipamapi::Options;
use libnetwork_plugins::json::null_as_default;
use serde::{Deserialize, Serialize};

/// An answer with nothing but the error field (`ReleasePool`, `ReleaseAddress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The plugin's error message; empty on success.
    #[serde(rename = "Error", default, deserialize_with = "null_as_default")]
    pub error: String,
}

/// The answer to `GetCapabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetCapabilityResponse {
    /// The plugin's error message.
    #[serde(rename = "Error", default, deserialize_with = "null_as_default")]
    pub error: String,
    /// The plugin wants the endpoint's MAC address in `RequestAddress` options.
    #[serde(
        rename = "RequiresMACAddress",
        default,
        deserialize_with = "null_as_default"
    )]
    pub requires_mac_address: bool,
    /// The plugin keeps no state: pools and addresses are requested again after a restart.
    #[serde(
        rename = "RequiresRequestReplay",
        default,
        deserialize_with = "null_as_default"
    )]
    pub requires_request_replay: bool,
}

/// The answer to `GetDefaultAddressSpaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAddressSpacesResponse {
    /// The plugin's error message.
    #[serde(rename = "Error", default, deserialize_with = "null_as_default")]
    pub error: String,
    /// The default local address space.
    #[serde(
        rename = "LocalDefaultAddressSpace",
        default,
        deserialize_with = "null_as_default"
    )]
    pub local_default_address_space: String,
    /// The default global address space.
    #[serde(
        rename = "GlobalDefaultAddressSpace",
        default,
        deserialize_with = "null_as_default"
    )]
    pub global_default_address_space: String,
}

/// `RequestPool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPoolRequest {
    /// The address space.
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// The pool asked for (CIDR), empty for any.
    #[serde(rename = "Pool")]
    pub pool: String,
    /// The range to allocate from (CIDR), empty for the whole pool.
    #[serde(rename = "SubPool")]
    pub sub_pool: String,
    /// IPAM driver options.
    #[serde(rename = "Options")]
    pub options: Options,
    /// Whether an IPv6 pool is asked for.
    #[serde(rename = "V6")]
    pub v6: bool,
}

/// The answer to `RequestPool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPoolResponse {
    /// The plugin's error message.
    #[serde(rename = "Error", default, deserialize_with = "null_as_default")]
    pub error: String,
    /// The plugin's id of the pool.
    #[serde(rename = "PoolID", default, deserialize_with = "null_as_default")]
    pub pool_id: String,
    /// The pool (CIDR).
    #[serde(rename = "Pool", default, deserialize_with = "null_as_default")]
    pub pool: String,
    /// Metadata (for example `com.docker.network.gateway`).
    #[serde(rename = "Data", default, deserialize_with = "null_as_default")]
    pub data: Options,
}

/// `ReleasePool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePoolRequest {
    /// The pool's id.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `RequestAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAddressRequest {
    /// The pool's id.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address asked for (no prefix length), empty for any.
    #[serde(rename = "Address")]
    pub address: String,
    /// Options (`RequestAddressType`, a MAC address, ...).
    #[serde(rename = "Options")]
    pub options: Options,
}

/// The answer to `RequestAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAddressResponse {
    /// The plugin's error message.
    #[serde(rename = "Error", default, deserialize_with = "null_as_default")]
    pub error: String,
    /// The address with the pool's prefix length (CIDR); empty when none was given.
    #[serde(rename = "Address", default, deserialize_with = "null_as_default")]
    pub address: String,
    /// Metadata.
    #[serde(rename = "Data", default, deserialize_with = "null_as_default")]
    pub data: Options,
}

/// `ReleaseAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseAddressRequest {
    /// The pool's id.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address (no prefix length).
    #[serde(rename = "Address")]
    pub address: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_are_written_with_dockers_names() {
        let pool = RequestPoolRequest {
            address_space: "plugin-local".into(),
            pool: "10.1.0.0/16".into(),
            sub_pool: "10.1.2.0/24".into(),
            options: Options::from([("k".to_owned(), "v".to_owned())]),
            v6: false,
        };
        assert_eq!(
            serde_json::to_value(&pool).unwrap(),
            json!({
                "AddressSpace": "plugin-local", "Pool": "10.1.0.0/16",
                "SubPool": "10.1.2.0/24", "Options": {"k": "v"}, "V6": false
            })
        );
        let address = RequestAddressRequest {
            pool_id: "p1".into(),
            address: String::new(),
            options: Options::new(),
        };
        assert_eq!(
            serde_json::to_value(&address).unwrap(),
            json!({"PoolID": "p1", "Address": "", "Options": {}})
        );
        assert_eq!(
            serde_json::to_value(ReleaseAddressRequest {
                pool_id: "p1".into(),
                address: "10.1.2.3".into()
            })
            .unwrap(),
            json!({"PoolID": "p1", "Address": "10.1.2.3"})
        );
        assert_eq!(
            serde_json::to_value(ReleasePoolRequest {
                pool_id: "p1".into()
            })
            .unwrap(),
            json!({"PoolID": "p1"})
        );
    }

    #[test]
    fn answers_are_read_with_dockers_names() {
        let caps: GetCapabilityResponse =
            serde_json::from_value(json!({"RequiresMACAddress": true})).unwrap();
        assert!(caps.requires_mac_address);
        assert!(!caps.requires_request_replay);
        let spaces: GetAddressSpacesResponse = serde_json::from_value(json!({
            "LocalDefaultAddressSpace": "l", "GlobalDefaultAddressSpace": "g"
        }))
        .unwrap();
        assert_eq!(spaces.local_default_address_space, "l");
        assert_eq!(spaces.global_default_address_space, "g");
        let pool: RequestPoolResponse = serde_json::from_value(json!({
            "PoolID": "p1", "Pool": "10.1.0.0/16", "Data": {"com.docker.network.gateway": "10.1.0.1/16"}
        }))
        .unwrap();
        assert_eq!(pool.pool_id, "p1");
        assert_eq!(pool.data["com.docker.network.gateway"], "10.1.0.1/16");
        let address: RequestAddressResponse =
            serde_json::from_value(json!({"Address": "10.1.2.3/16", "Data": null, "Error": ""}))
                .unwrap();
        assert_eq!(address.address, "10.1.2.3/16");
        assert!(address.data.is_empty());
    }
}
