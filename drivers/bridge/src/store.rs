//! The persisted state of networks and endpoints (libnetwork's bridge `bridge_store.go`):
//! `docker/network/v1.0/bridge/<nid>/` and `docker/network/v1.0/bridge-endpoint/<eid>/`, JSON
//! with libnetwork's field names.

use std::sync::Arc;

use ipnet::IpNet;
use libnetwork_datastore::{self as datastore, KvObject, Scope, Store};
use libnetwork_types::{MacAddr, PortBinding, TransportPort};
use serde::{Deserialize, Serialize};

use crate::config::NetworkConfig;
use crate::error::{Error, Result};

/// Key part of network records.
pub const NETWORK_PREFIX: &str = "bridge";
/// Key part of endpoint records.
pub const ENDPOINT_PREFIX: &str = "bridge-endpoint";

/// A network as stored: its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The configuration (its fields are the JSON object's fields).
    #[serde(flatten)]
    pub config: NetworkConfig,
    #[serde(skip)]
    index: u64,
    #[serde(skip)]
    exists: bool,
}

impl NetworkRecord {
    /// A record of `config`, not yet stored.
    pub fn new(config: NetworkConfig) -> Self {
        Self {
            config,
            index: 0,
            exists: false,
        }
    }
}

impl KvObject for NetworkRecord {
    fn key(&self) -> Vec<String> {
        vec![NETWORK_PREFIX.into(), self.config.id.clone()]
    }
    fn key_prefix(&self) -> Vec<String> {
        vec![NETWORK_PREFIX.into()]
    }
    fn index(&self) -> u64 {
        self.index
    }
    fn set_index(&mut self, index: u64) {
        self.index = index;
        self.exists = true;
    }
    fn exists(&self) -> bool {
        self.exists
    }
    fn data_scope(&self) -> Scope {
        Scope::Local
    }
}

/// The endpoint options libnetwork keeps as `Config` (`endpointConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConfiguration {
    /// The MAC address the user asked for.
    #[serde(
        rename = "MacAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mac_address: Option<MacAddr>,
}

/// Legacy container links (`containerConfiguration`); kept for the JSON shape, always empty
/// since the driver contract carries no links.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfiguration {
    /// Endpoints this one links to.
    #[serde(rename = "ParentEndpoints", default)]
    pub parent_endpoints: Vec<String>,
    /// Endpoints linking to this one.
    #[serde(rename = "ChildEndpoints", default)]
    pub child_endpoints: Vec<String>,
}

/// What `program_external_connectivity` was asked (`connectivityConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectivityConfiguration {
    /// The requested port bindings.
    #[serde(rename = "PortBindings", default)]
    pub port_bindings: Vec<PortBinding>,
    /// The exposed ports.
    #[serde(rename = "ExposedPorts", default)]
    pub exposed_ports: Vec<TransportPort>,
}

/// An endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The endpoint id.
    #[serde(rename = "id")]
    pub id: String,
    /// The network id.
    #[serde(rename = "nid")]
    pub nid: String,
    /// The host-side veth name (`veth` + 7 hex characters).
    #[serde(rename = "SrcName")]
    pub src_name: String,
    /// The container interface's MAC.
    #[serde(rename = "MacAddress")]
    pub mac: MacAddr,
    /// The IPv4 address with the subnet's prefix length.
    #[serde(rename = "Addr", default, with = "crate::config::opt_net")]
    pub addr: Option<IpNet>,
    /// The IPv6 address with the subnet's prefix length.
    #[serde(rename = "Addrv6", default, with = "crate::config::opt_net")]
    pub addr_v6: Option<IpNet>,
    /// Creation options.
    #[serde(rename = "Config", default)]
    pub config: Option<EndpointConfiguration>,
    /// Legacy links.
    #[serde(rename = "ContainerConfig", default)]
    pub container_config: Option<ContainerConfiguration>,
    /// External connectivity request.
    #[serde(rename = "ExternalConnConfig", default)]
    pub external_conn_config: Option<ConnectivityConfiguration>,
    /// The port bindings in force, with their actual host ports.
    #[serde(rename = "PortMapping", default)]
    pub port_mapping: Vec<PortBinding>,
    #[serde(skip)]
    index: u64,
    #[serde(skip)]
    exists: bool,
}

impl EndpointRecord {
    /// A record not yet stored.
    pub fn new(
        id: &str,
        nid: &str,
        src_name: String,
        mac: MacAddr,
        addr: Option<IpNet>,
        addr_v6: Option<IpNet>,
    ) -> Self {
        Self {
            id: id.to_string(),
            nid: nid.to_string(),
            src_name,
            mac,
            addr,
            addr_v6,
            config: None,
            container_config: None,
            external_conn_config: None,
            port_mapping: Vec::new(),
            index: 0,
            exists: false,
        }
    }
}

impl KvObject for EndpointRecord {
    fn key(&self) -> Vec<String> {
        vec![ENDPOINT_PREFIX.into(), self.id.clone()]
    }
    fn key_prefix(&self) -> Vec<String> {
        vec![ENDPOINT_PREFIX.into()]
    }
    fn index(&self) -> u64 {
        self.index
    }
    fn set_index(&mut self, index: u64) {
        self.index = index;
        self.exists = true;
    }
    fn exists(&self) -> bool {
        self.exists
    }
    fn data_scope(&self) -> Scope {
        Scope::Local
    }
}

/// The driver's access to its (optional) store. The store API blocks, so every call runs on
/// tokio's blocking pool.
#[derive(Debug, Clone, Default)]
pub(crate) struct Persistence {
    store: Option<Arc<dyn Store>>,
}

impl Persistence {
    pub(crate) fn new(store: Option<Arc<dyn Store>>) -> Self {
        Self { store }
    }

    async fn blocking<T, F>(&self, op: String, f: F) -> Result<Option<T>>
    where
        F: FnOnce(&dyn Store) -> Result<T, datastore::Error> + Send + 'static,
        T: Send + 'static,
    {
        let Some(store) = self.store.clone() else {
            return Ok(None);
        };
        let task = tokio::task::spawn_blocking(move || f(store.as_ref()));
        match task.await {
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(e)) => Err(Error::store(op, e)),
            Err(_) => Err(Error::Task(op)),
        }
    }

    /// Writes `obj` (unconditionally: the driver is the only writer of its keys).
    pub(crate) async fn put<T>(&self, obj: &T) -> Result<()>
    where
        T: KvObject + Clone + Send + 'static,
    {
        let mut obj = obj.clone();
        let op = format!("store {}", datastore::object_key(&obj));
        self.blocking(op, move |s| datastore::put_object(s, &mut obj))
            .await
            .map(|_| ())
    }

    /// Deletes `obj`; a missing key is fine.
    pub(crate) async fn delete<T>(&self, obj: &T) -> Result<()>
    where
        T: KvObject + Clone + Send + 'static,
    {
        let obj = obj.clone();
        let op = format!("delete {}", datastore::object_key(&obj));
        self.blocking(op, move |s| match datastore::delete_object(s, &obj) {
            Err(datastore::Error::KeyNotFound(_)) => Ok(()),
            other => other,
        })
        .await
        .map(|_| ())
    }

    /// Every object under `prefix` (one key part).
    pub(crate) async fn list<T>(&self, prefix: &'static str) -> Result<Vec<T>>
    where
        T: KvObject + Send + 'static,
    {
        let key = datastore::key(&[prefix]);
        self.blocking(format!("list {key}"), move |s| {
            datastore::list_objects::<T, _>(s, &key)
        })
        .await
        .map(Option::unwrap_or_default)
    }
}

#[cfg(test)]
mod tests {
    use libnetwork_types::Protocol;

    use super::*;

    #[test]
    fn endpoint_json_uses_libnetwork_field_names_and_round_trips() {
        let mut ep = EndpointRecord::new(
            "ep1",
            "net1",
            "veth0123abc".into(),
            "02:42:ac:14:00:02".parse().unwrap(),
            Some("172.20.0.2/16".parse().unwrap()),
            None,
        );
        ep.external_conn_config = Some(ConnectivityConfiguration {
            port_bindings: vec![PortBinding {
                proto: Protocol::Tcp,
                ip: None,
                port: 80,
                host_ip: None,
                host_port: 8080,
                host_port_end: 0,
            }],
            exposed_ports: vec![TransportPort {
                proto: Protocol::Tcp,
                port: 80,
            }],
        });
        ep.port_mapping = vec![PortBinding {
            proto: Protocol::Tcp,
            ip: Some("172.20.0.2".parse().unwrap()),
            port: 80,
            host_ip: Some("0.0.0.0".parse().unwrap()),
            host_port: 8080,
            host_port_end: 0,
        }];
        let json = serde_json::to_value(&ep).unwrap();
        for key in [
            "id",
            "nid",
            "SrcName",
            "MacAddress",
            "Addr",
            "Addrv6",
            "Config",
            "ContainerConfig",
            "ExternalConnConfig",
            "PortMapping",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["Addr"], "172.20.0.2/16");
        assert_eq!(json["MacAddress"], "02:42:ac:14:00:02");
        assert_eq!(json["PortMapping"][0]["HostPort"], 8080);
        let back: EndpointRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, ep);
        assert_eq!(
            datastore::object_key(&ep),
            "docker/network/v1.0/bridge-endpoint/ep1/"
        );
    }
}
