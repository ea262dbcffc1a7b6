//! The persisted state of networks and endpoints (libnetwork's `macvlan_store.go` and
//! `ipvlan_store.go`): `docker/network/v1.0/<driver>/network/<nid>/` and
//! `docker/network/v1.0/<driver>/endpoint/<eid>/`, JSON with libnetwork's field names.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use libnetwork_datastore::{self as datastore, KvObject, Scope, Store};
use libnetwork_types::MacAddr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::NetworkConfig;
use crate::engine::Flavor;
use crate::error::{Error, Result};

/// Key part under the driver's name for network records.
pub const NETWORK_PREFIX: &str = "network";
/// Key part under the driver's name for endpoint records.
pub const ENDPOINT_PREFIX: &str = "endpoint";

/// A network as stored: its configuration (whose fields are the JSON object's).
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "", deserialize = ""))]
pub struct NetworkRecord<F: Flavor> {
    /// The configuration.
    #[serde(flatten)]
    pub config: NetworkConfig<F::Mode>,
    #[serde(skip)]
    index: u64,
    #[serde(skip)]
    exists: bool,
}

impl<F: Flavor> Clone for NetworkRecord<F> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            index: self.index,
            exists: self.exists,
        }
    }
}

impl<F: Flavor> NetworkRecord<F> {
    /// A record of `config`, not yet stored.
    pub fn new(config: NetworkConfig<F::Mode>) -> Self {
        Self {
            config,
            index: 0,
            exists: false,
        }
    }
}

impl<F: Flavor> KvObject for NetworkRecord<F> {
    fn key(&self) -> Vec<String> {
        vec![
            F::DRIVER_TYPE.into(),
            NETWORK_PREFIX.into(),
            self.config.id.clone(),
        ]
    }
    fn key_prefix(&self) -> Vec<String> {
        vec![F::DRIVER_TYPE.into(), NETWORK_PREFIX.into()]
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

/// Where a joined endpoint's interface lives, so that a leave (also after a restart) finds
/// and deletes it. Not in libnetwork's record, whose interface is moved in by the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedInterface {
    /// The sandbox key: the file the sandbox's namespace is bound to.
    #[serde(rename = "Key")]
    pub key: PathBuf,
    /// The inode of that namespace, to tell it from a later namespace bound to the same key.
    #[serde(rename = "NetnsInode")]
    pub netns_inode: u64,
    /// The interface's index inside the sandbox.
    #[serde(rename = "Index")]
    pub index: u32,
    /// The interface's name inside the sandbox.
    #[serde(rename = "Name")]
    pub name: String,
}

/// An endpoint as stored (libnetwork's `endpoint` JSON: `id`, `nid`, `SrcName`, `MacAddress`,
/// `Addr`, `Addrv6`), plus where its interface is while joined.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "", deserialize = ""))]
pub struct EndpointRecord<F: Flavor> {
    /// The endpoint id.
    #[serde(rename = "id")]
    pub id: String,
    /// The network id.
    #[serde(rename = "nid")]
    pub nid: String,
    /// The interface's name in the sandbox while joined, else empty.
    #[serde(rename = "SrcName", default)]
    pub src_name: String,
    /// The interface's MAC address (macvlan); none for ipvlan, whose interfaces take their
    /// parent's.
    #[serde(
        rename = "MacAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mac: Option<MacAddr>,
    /// The IPv4 address with the subnet's prefix length.
    #[serde(
        rename = "Addr",
        default,
        with = "opt_net",
        skip_serializing_if = "Option::is_none"
    )]
    pub addr: Option<IpNet>,
    /// The IPv6 address with the subnet's prefix length.
    #[serde(
        rename = "Addrv6",
        default,
        with = "opt_net",
        skip_serializing_if = "Option::is_none"
    )]
    pub addr_v6: Option<IpNet>,
    /// Where the interface is, while joined.
    #[serde(rename = "Sandbox", default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<JoinedInterface>,
    #[serde(skip)]
    index: u64,
    #[serde(skip)]
    exists: bool,
    #[serde(skip)]
    flavor: PhantomData<F>,
}

impl<F: Flavor> Clone for EndpointRecord<F> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            nid: self.nid.clone(),
            src_name: self.src_name.clone(),
            mac: self.mac,
            addr: self.addr,
            addr_v6: self.addr_v6,
            joined: self.joined.clone(),
            index: self.index,
            exists: self.exists,
            flavor: PhantomData,
        }
    }
}

impl<F: Flavor> PartialEq for EndpointRecord<F> {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.id,
            &self.nid,
            &self.src_name,
            self.mac,
            self.addr,
            self.addr_v6,
            &self.joined,
        ) == (
            &other.id,
            &other.nid,
            &other.src_name,
            other.mac,
            other.addr,
            other.addr_v6,
            &other.joined,
        )
    }
}

impl<F: Flavor> EndpointRecord<F> {
    /// A record of an endpoint that is not joined, not yet stored.
    pub fn new(
        id: &str,
        nid: &str,
        mac: Option<MacAddr>,
        addr: Option<IpNet>,
        addr_v6: Option<IpNet>,
    ) -> Self {
        Self {
            id: id.to_string(),
            nid: nid.to_string(),
            src_name: String::new(),
            mac,
            addr,
            addr_v6,
            joined: None,
            index: 0,
            exists: false,
            flavor: PhantomData,
        }
    }
}

impl<F: Flavor> KvObject for EndpointRecord<F> {
    fn key(&self) -> Vec<String> {
        vec![
            F::DRIVER_TYPE.into(),
            ENDPOINT_PREFIX.into(),
            self.id.clone(),
        ]
    }
    fn key_prefix(&self) -> Vec<String> {
        vec![F::DRIVER_TYPE.into(), ENDPOINT_PREFIX.into()]
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

/// Serde for an optional CIDR string (host bits kept).
mod opt_net {
    use super::*;

    pub(super) fn serialize<S: Serializer>(net: &Option<IpNet>, s: S) -> Result<S::Ok, S::Error> {
        match net {
            Some(net) => s.collect_str(net),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
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

    async fn blocking<T, Fun>(&self, op: String, f: Fun) -> Result<Option<T>>
    where
        Fun: FnOnce(&dyn Store) -> Result<T, datastore::Error> + Send + 'static,
        T: Send + 'static,
    {
        let Some(store) = self.store.clone() else {
            return Ok(None);
        };
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
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

    /// Every object under the key parts `prefix`.
    pub(crate) async fn list<T>(&self, prefix: [&'static str; 2]) -> Result<Vec<T>>
    where
        T: KvObject + Send + 'static,
    {
        let key = datastore::key(&prefix);
        self.blocking(format!("list {key}"), move |s| {
            datastore::list_objects::<T, _>(s, &key)
        })
        .await
        .map(Option::unwrap_or_default)
    }
}

#[cfg(test)]
mod tests {
    use libnetwork_datastore::MemoryStore;
    use libnetwork_osl::MacvlanMode;

    use super::*;
    use crate::{Macvlan, MacvlanOptions};

    fn config() -> NetworkConfig<MacvlanOptions> {
        NetworkConfig {
            id: "net1".into(),
            mtu: 0,
            parent: "eth0".into(),
            mode: MacvlanOptions {
                mode: MacvlanMode::Private,
            },
            internal: false,
            created_parent: false,
            ipv4_subnets: Vec::new(),
            ipv6_subnets: Vec::new(),
            container_iface_prefix: String::new(),
        }
    }

    #[test]
    fn records_live_under_libnetwork_keys() {
        let net = NetworkRecord::<Macvlan>::new(config());
        assert_eq!(
            datastore::object_key(&net),
            "docker/network/v1.0/macvlan/network/net1/"
        );
        let ep = EndpointRecord::<Macvlan>::new("ep1", "net1", None, None, None);
        assert_eq!(
            datastore::object_key(&ep),
            "docker/network/v1.0/macvlan/endpoint/ep1/"
        );
        assert_eq!(net.data_scope(), Scope::Local);
    }

    #[test]
    fn endpoint_json_uses_libnetwork_field_names_and_round_trips() {
        let mut ep = EndpointRecord::<Macvlan>::new(
            "ep1",
            "net1",
            Some("02:42:0a:00:00:02".parse().unwrap()),
            Some("10.0.0.2/24".parse().unwrap()),
            Some("fd00::2/64".parse().unwrap()),
        );
        let json = serde_json::to_value(&ep).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "ep1", "nid": "net1", "SrcName": "",
                "MacAddress": "02:42:0a:00:00:02",
                "Addr": "10.0.0.2/24", "Addrv6": "fd00::2/64",
            })
        );
        ep.src_name = "eth0".into();
        ep.joined = Some(JoinedInterface {
            key: "/run/docker/netns/abc".into(),
            netns_inode: 4026532000,
            index: 5,
            name: "eth0".into(),
        });
        let json = serde_json::to_value(&ep).unwrap();
        assert_eq!(json["SrcName"], "eth0");
        assert_eq!(json["Sandbox"]["Key"], "/run/docker/netns/abc");
        let back: EndpointRecord<Macvlan> = serde_json::from_value(json).unwrap();
        assert_eq!(back, ep);
        // libnetwork's record (no MAC for an ipvlan endpoint, no sandbox) reads.
        let stored = r#"{"id":"e","nid":"n","SrcName":"veth1234567","Addr":"10.0.0.3/24"}"#;
        let ep: EndpointRecord<Macvlan> = serde_json::from_str(stored).unwrap();
        assert_eq!((ep.mac, ep.addr_v6, ep.joined), (None, None, None));
    }

    #[tokio::test]
    async fn records_are_written_listed_and_deleted() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let p = Persistence::new(Some(store));
        let net = NetworkRecord::<Macvlan>::new(config());
        p.put(&net).await.unwrap();
        let ep = EndpointRecord::<Macvlan>::new("ep1", "net1", None, None, None);
        p.put(&ep).await.unwrap();
        let nets: Vec<NetworkRecord<Macvlan>> = p
            .list([Macvlan::DRIVER_TYPE, NETWORK_PREFIX])
            .await
            .unwrap();
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0].config, config());
        // Endpoints are not listed with networks, and the reverse.
        let eps: Vec<EndpointRecord<Macvlan>> = p
            .list([Macvlan::DRIVER_TYPE, ENDPOINT_PREFIX])
            .await
            .unwrap();
        assert_eq!(eps, vec![ep.clone()]);
        p.delete(&ep).await.unwrap();
        p.delete(&ep).await.unwrap();
        let eps: Vec<EndpointRecord<Macvlan>> = p
            .list([Macvlan::DRIVER_TYPE, ENDPOINT_PREFIX])
            .await
            .unwrap();
        assert!(eps.is_empty());
        // Without a store nothing is kept and nothing fails.
        let none = Persistence::new(None);
        none.put(&net).await.unwrap();
        let nets: Vec<NetworkRecord<Macvlan>> = none
            .list([Macvlan::DRIVER_TYPE, NETWORK_PREFIX])
            .await
            .unwrap();
        assert!(nets.is_empty());
    }
}
