//! The JSON bodies of the API, shared by the daemon and the command line.
//!
//! The network types follow the Docker Engine API (field names, nesting, empty values) so that
//! Docker's own clients read and write them; the sandbox types are dnet's own and are served
//! under `/dnet/`. Every request type accepts missing fields and `null` for them, as Go clients
//! send `null` for nil maps and pointers; unknown fields are ignored, as the Docker daemon does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The Docker Engine API version the daemon implements (`Api-Version` header, `/version`).
pub const API_VERSION: &str = "1.44";

/// The oldest API version the daemon accepts in a `/vX.Y/` prefix.
pub const MIN_API_VERSION: &str = "1.24";

/// Deserializes `null` as the default value (Go clients send `null` for nil maps and
/// slices).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A network, as `GET /networks` and `GET /networks/{id}` return it (Docker's `Network`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkResource {
    /// The network's name.
    #[serde(rename = "Name", deserialize_with = "nullable")]
    pub name: String,
    /// The network's id (64 hex characters).
    #[serde(rename = "Id", deserialize_with = "nullable")]
    pub id: String,
    /// When it was created (RFC 3339 with nanoseconds).
    #[serde(rename = "Created", deserialize_with = "nullable")]
    pub created: String,
    /// `local`, `global` or `swarm`.
    #[serde(rename = "Scope", deserialize_with = "nullable")]
    pub scope: String,
    /// The network driver (`bridge`, `host`, `null`).
    #[serde(rename = "Driver", deserialize_with = "nullable")]
    pub driver: String,
    /// Always true: every network has IPv4.
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    /// Whether the network has IPv6.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// The address configuration.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// No traffic to or from outside the network.
    #[serde(rename = "Internal")]
    pub internal: bool,
    /// Containers may attach to it manually.
    #[serde(rename = "Attachable")]
    pub attachable: bool,
    /// Always false: there is no swarm routing mesh.
    #[serde(rename = "Ingress")]
    pub ingress: bool,
    /// The configuration-only network this one was made from (empty name if none).
    #[serde(rename = "ConfigFrom")]
    pub config_from: ConfigReference,
    /// Whether this is a configuration-only network.
    #[serde(rename = "ConfigOnly")]
    pub config_only: bool,
    /// The attached endpoints, keyed by sandbox id (`ep-<endpoint id>` for an endpoint that is
    /// not joined to a sandbox). Empty in lists, as in Docker.
    #[serde(rename = "Containers", deserialize_with = "nullable")]
    pub containers: BTreeMap<String, EndpointResource>,
    /// Driver options (`com.docker.network.bridge.name`, ...).
    #[serde(rename = "Options", deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(rename = "Labels", deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

/// A network's address configuration (Docker's `IPAM`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ipam {
    /// The IPAM driver (`default`, `null`).
    #[serde(rename = "Driver", deserialize_with = "nullable")]
    pub driver: String,
    /// One entry per pool: as asked for, with the subnet and gateway that were allocated.
    #[serde(rename = "Config", deserialize_with = "nullable")]
    pub config: Vec<IpamConfig>,
    /// Options of the IPAM driver.
    #[serde(rename = "Options", deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
}

/// One pool of a network (Docker's `IPAMConfig`); empty strings are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpamConfig {
    /// The subnet in CIDR form.
    #[serde(
        rename = "Subnet",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub subnet: String,
    /// The range endpoint addresses come from, in CIDR form.
    #[serde(
        rename = "IPRange",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub ip_range: String,
    /// The gateway address.
    #[serde(
        rename = "Gateway",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub gateway: String,
    /// Reserved addresses by name.
    #[serde(
        rename = "AuxiliaryAddresses",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// A reference to a configuration-only network (Docker's `ConfigReference`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigReference {
    /// The network's name; empty when there is none.
    #[serde(rename = "Network", deserialize_with = "nullable")]
    pub network: String,
}

/// An endpoint in a network inspection (Docker's `EndpointResource`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointResource {
    /// The container's name: the sandbox's container id.
    #[serde(rename = "Name", deserialize_with = "nullable")]
    pub name: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID", deserialize_with = "nullable")]
    pub endpoint_id: String,
    /// The interface's MAC address.
    #[serde(rename = "MacAddress", deserialize_with = "nullable")]
    pub mac_address: String,
    /// The IPv4 address with its prefix length.
    #[serde(rename = "IPv4Address", deserialize_with = "nullable")]
    pub ipv4_address: String,
    /// The IPv6 address with its prefix length (empty without IPv6).
    #[serde(rename = "IPv6Address", deserialize_with = "nullable")]
    pub ipv6_address: String,
}

/// The body of `POST /networks/create` (Docker's `NetworkCreateRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkCreateRequest {
    /// The network's name (required).
    #[serde(rename = "Name", deserialize_with = "nullable")]
    pub name: String,
    /// The driver; empty or missing means `bridge`.
    #[serde(rename = "Driver", skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The scope; only `local` (or nothing) is served.
    #[serde(rename = "Scope", skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// IPv4 cannot be turned off: `false` is refused.
    #[serde(rename = "EnableIPv4", skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    /// Give the network IPv6 addresses.
    #[serde(rename = "EnableIPv6", skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// The address configuration.
    #[serde(rename = "IPAM", skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamRequest>,
    /// No traffic to or from outside the network.
    #[serde(rename = "Internal", skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    /// Containers may attach to it manually.
    #[serde(rename = "Attachable", skip_serializing_if = "Option::is_none")]
    pub attachable: Option<bool>,
    /// Ingress networks need a swarm: `true` is refused.
    #[serde(rename = "Ingress", skip_serializing_if = "Option::is_none")]
    pub ingress: Option<bool>,
    /// Create a configuration-only network.
    #[serde(rename = "ConfigOnly", skip_serializing_if = "Option::is_none")]
    pub config_only: Option<bool>,
    /// Take the configuration from this configuration-only network.
    #[serde(rename = "ConfigFrom", skip_serializing_if = "Option::is_none")]
    pub config_from: Option<ConfigReference>,
    /// Driver options.
    #[serde(rename = "Options", skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    /// Labels.
    #[serde(rename = "Labels", skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// The `IPAM` part of a creation request; the same shape as [`Ipam`], every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpamRequest {
    /// The IPAM driver; empty means `default`.
    #[serde(rename = "Driver", skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Pools asked for.
    #[serde(rename = "Config", skip_serializing_if = "Option::is_none")]
    pub config: Option<Vec<IpamConfig>>,
    /// IPAM driver options.
    #[serde(rename = "Options", skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// The answer to a network creation (Docker's `NetworkCreateResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkCreateResponse {
    /// The new network's id.
    #[serde(rename = "Id", deserialize_with = "nullable")]
    pub id: String,
    /// Warnings (empty when there are none).
    #[serde(rename = "Warning", deserialize_with = "nullable")]
    pub warning: String,
}

/// The body of `POST /networks/{id}/connect` (Docker's `NetworkConnectRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkConnectRequest {
    /// The sandbox: its container id (name), its id, or a unique prefix of its id.
    #[serde(rename = "Container", deserialize_with = "nullable")]
    pub container: String,
    /// How to attach it.
    #[serde(rename = "EndpointConfig", skip_serializing_if = "Option::is_none")]
    pub endpoint_config: Option<EndpointSettings>,
}

/// The parts of Docker's `EndpointSettings` a connection uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointSettings {
    /// Static addresses.
    #[serde(rename = "IPAMConfig", skip_serializing_if = "Option::is_none")]
    pub ipam_config: Option<EndpointIpamConfig>,
    /// More names for the endpoint on the network.
    #[serde(rename = "Aliases", skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// A MAC address for the interface.
    #[serde(rename = "MacAddress", skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

/// Static addresses of an endpoint (Docker's `EndpointIPAMConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointIpamConfig {
    /// A static IPv4 address.
    #[serde(rename = "IPv4Address", skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// A static IPv6 address.
    #[serde(rename = "IPv6Address", skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
}

/// The body of `POST /networks/{id}/disconnect` (Docker's `NetworkDisconnectRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkDisconnectRequest {
    /// The sandbox, as for a connection.
    #[serde(rename = "Container", deserialize_with = "nullable")]
    pub container: String,
    /// Accepted for compatibility; the endpoint is always removed.
    #[serde(rename = "Force")]
    pub force: bool,
}

/// The answer to `POST /networks/prune` (Docker's `NetworkPruneResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkPruneResponse {
    /// The names of the networks that were removed.
    #[serde(rename = "NetworksDeleted", deserialize_with = "nullable")]
    pub networks_deleted: Vec<String>,
}

/// An error answer: `{"message": "..."}`, as the Docker daemon writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    /// What went wrong, one line.
    pub message: String,
}

/// The answer to `GET /version` (the fields of Docker's `SystemVersion` that apply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionResponse {
    /// The platform.
    #[serde(rename = "Platform")]
    pub platform: Platform,
    /// The daemon's components.
    #[serde(rename = "Components", deserialize_with = "nullable")]
    pub components: Vec<Component>,
    /// dnet's version.
    #[serde(rename = "Version", deserialize_with = "nullable")]
    pub version: String,
    /// The API version served ([`API_VERSION`]).
    #[serde(rename = "ApiVersion", deserialize_with = "nullable")]
    pub api_version: String,
    /// The oldest API version accepted ([`MIN_API_VERSION`]).
    #[serde(rename = "MinAPIVersion", deserialize_with = "nullable")]
    pub min_api_version: String,
    /// Empty: not built from a git checkout.
    #[serde(rename = "GitCommit", deserialize_with = "nullable")]
    pub git_commit: String,
    /// The compiler (`rustc`).
    #[serde(rename = "GoVersion", deserialize_with = "nullable")]
    pub go_version: String,
    /// `linux`.
    #[serde(rename = "Os", deserialize_with = "nullable")]
    pub os: String,
    /// The machine architecture (`amd64`, `arm64`, ...).
    #[serde(rename = "Arch", deserialize_with = "nullable")]
    pub arch: String,
    /// The kernel release.
    #[serde(rename = "KernelVersion", deserialize_with = "nullable")]
    pub kernel_version: String,
}

/// The `Platform` of [`VersionResponse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Platform {
    /// The product name.
    #[serde(rename = "Name", deserialize_with = "nullable")]
    pub name: String,
}

/// One component of [`VersionResponse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Component {
    /// The component's name.
    #[serde(rename = "Name", deserialize_with = "nullable")]
    pub name: String,
    /// Its version.
    #[serde(rename = "Version", deserialize_with = "nullable")]
    pub version: String,
}

/// One network a new sandbox joins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxNetwork {
    /// The network: name, id or unique id prefix.
    #[serde(rename = "Network", deserialize_with = "nullable")]
    pub network: String,
    /// More names of the sandbox on this network.
    #[serde(
        rename = "Aliases",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub aliases: Vec<String>,
    /// A static IPv4 address on this network.
    #[serde(rename = "IPv4Address", skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
}

/// A port to publish: `[HOSTIP:]HOSTPORT:PORT[/PROTO]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortSpec {
    /// The host address to listen on; empty means every address.
    #[serde(
        rename = "HostIP",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub host_ip: String,
    /// The host port; 0 picks a free one.
    #[serde(rename = "HostPort")]
    pub host_port: u16,
    /// The sandbox's port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// `tcp` (default), `udp` or `sctp`.
    #[serde(
        rename = "Proto",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub proto: String,
}

/// The body of `POST /dnet/sandboxes`: a sandbox and the networks it joins, made in one step
/// (everything is undone when a step fails).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxCreateRequest {
    /// The sandbox's name (its container id, and its endpoints' name and DNS name on each
    /// network); empty picks a random one.
    #[serde(rename = "Name", deserialize_with = "nullable")]
    pub name: String,
    /// The hostname; empty means the name.
    #[serde(
        rename = "Hostname",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub hostname: String,
    /// The domain name.
    #[serde(
        rename = "Domainname",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub domainname: String,
    /// DNS servers replacing the host's.
    #[serde(
        rename = "DNS",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub dns: Vec<String>,
    /// Extra hosts lines, `name:address`.
    #[serde(
        rename = "ExtraHosts",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub extra_hosts: Vec<String>,
    /// Networks to join, in order; the first provides the default gateway.
    #[serde(rename = "Networks", deserialize_with = "nullable")]
    pub networks: Vec<SandboxNetwork>,
    /// Ports to publish.
    #[serde(
        rename = "Ports",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub ports: Vec<PortSpec>,
    /// Labels.
    #[serde(
        rename = "Labels",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub labels: BTreeMap<String, String>,
}

/// A sandbox, as `/dnet/sandboxes` returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxResource {
    /// The sandbox's id (64 hex characters).
    #[serde(rename = "Id", deserialize_with = "nullable")]
    pub id: String,
    /// Its name (container id).
    #[serde(rename = "Name", deserialize_with = "nullable")]
    pub name: String,
    /// The file its network namespace is bound to.
    #[serde(rename = "Key", deserialize_with = "nullable")]
    pub key: String,
    /// The hostname.
    #[serde(rename = "Hostname", deserialize_with = "nullable")]
    pub hostname: String,
    /// Its hosts file.
    #[serde(rename = "HostsPath", deserialize_with = "nullable")]
    pub hosts_path: String,
    /// Its resolv.conf.
    #[serde(rename = "ResolvConfPath", deserialize_with = "nullable")]
    pub resolv_conf_path: String,
    /// The joined endpoints, the gateway's first.
    #[serde(rename = "Endpoints", deserialize_with = "nullable")]
    pub endpoints: Vec<SandboxEndpoint>,
    /// Published ports, with the host ports picked.
    #[serde(rename = "Ports", deserialize_with = "nullable")]
    pub ports: Vec<PortSpec>,
    /// Labels.
    #[serde(rename = "Labels", deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

/// An endpoint of a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxEndpoint {
    /// The network's name.
    #[serde(rename = "Network", deserialize_with = "nullable")]
    pub network: String,
    /// The network's id.
    #[serde(rename = "NetworkID", deserialize_with = "nullable")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID", deserialize_with = "nullable")]
    pub endpoint_id: String,
    /// The interface's MAC address.
    #[serde(rename = "MacAddress", deserialize_with = "nullable")]
    pub mac_address: String,
    /// The IPv4 address with its prefix length.
    #[serde(rename = "IPv4Address", deserialize_with = "nullable")]
    pub ipv4_address: String,
    /// The IPv6 address with its prefix length.
    #[serde(rename = "IPv6Address", deserialize_with = "nullable")]
    pub ipv6_address: String,
    /// The gateway this endpoint gives the sandbox, if any.
    #[serde(rename = "Gateway", deserialize_with = "nullable")]
    pub gateway: String,
    /// More names on the network.
    #[serde(rename = "Aliases", deserialize_with = "nullable")]
    pub aliases: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_create_request_with_nulls_parses() {
        let body = r#"{"Name":"n","CheckDuplicate":true,"Driver":"bridge","Scope":"","EnableIPv6":null,
            "IPAM":{"Driver":"default","Config":[{"Subnet":"10.1.0.0/16","IPRange":"10.1.1.0/24",
            "Gateway":"10.1.0.1","AuxiliaryAddresses":null}],"Options":null},
            "Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,
            "ConfigFrom":null,"Options":{},"Labels":{"a":"b"}}"#;
        let req: NetworkCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.name, "n");
        assert_eq!(req.enable_ipv6, None);
        let config = &req.ipam.unwrap().config.unwrap()[0];
        assert_eq!(config.subnet, "10.1.0.0/16");
        assert_eq!(config.ip_range, "10.1.1.0/24");
        assert!(config.auxiliary_addresses.is_empty());
        assert_eq!(req.labels.unwrap()["a"], "b");
    }

    #[test]
    fn a_network_serializes_with_dockers_field_names() {
        let net = NetworkResource {
            name: "n".into(),
            ipam: Ipam {
                driver: "default".into(),
                config: vec![IpamConfig {
                    subnet: "10.0.0.0/24".into(),
                    ..IpamConfig::default()
                }],
                ..Ipam::default()
            },
            ..NetworkResource::default()
        };
        let v = serde_json::to_value(&net).unwrap();
        for field in [
            "Name",
            "Id",
            "Created",
            "Scope",
            "Driver",
            "EnableIPv6",
            "IPAM",
            "Internal",
            "Attachable",
            "Ingress",
            "ConfigFrom",
            "ConfigOnly",
            "Containers",
            "Options",
            "Labels",
        ] {
            assert!(v.get(field).is_some(), "{field} missing from {v}");
        }
        assert_eq!(
            v["IPAM"]["Config"][0],
            serde_json::json!({"Subnet": "10.0.0.0/24"})
        );
        assert_eq!(v["ConfigFrom"], serde_json::json!({"Network": ""}));
    }
}
