//! The persisted objects, in libnetwork's JSON shapes: networks (`network/<nid>/`), endpoint
//! counts (`endpoint_count/<nid>/`), endpoints (`endpoint/<nid>/<eid>/`) and sandbox
//! checkpoints (`sandbox/<sbid>/`).
//!
//! Field names and encodings are libnetwork's (§26.3, §26.6, §27.6, §30 of the reference),
//! including its oddities: a network's IPAM configurations and infos are JSON documents stored
//! as strings, and an IPAM info's `IPAMData` is a JSON string inside that. Our additions are
//! optional fields that libnetwork would ignore:
//! - network `inCreate`: written before the driver creates the network, cleared after; a
//!   network found with it at start-up was being created when the process stopped and is
//!   removed (libnetwork's `inDelete` does the same for deletions);
//! - endpoint `state` (`creating`, `deleting`) and `joinState` (`leaving`): the same
//!   write-ahead marks for endpoint creation, deletion and leave (a join is stored only when
//!   complete; `joining` exists in memory while a join runs, and a stored one is undone at
//!   restore); `ep_iface.dstName`
//!   and `ep_iface.createdInSandbox`: the interface's name inside the sandbox and whether the
//!   driver created it there (restore needs both); `dnsNames`;
//! - sandbox `Key` and `Options`: the namespace path and the creation options, so that a
//!   restarted controller can restore the sandbox instead of only cleaning it up.
//!
//! Also different on purpose: static routes are stored as CIDR strings and restored
//! (libnetwork's decoder loses them, quirk 5).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use libnetwork_datastore::{KvObject, Scope};
use libnetwork_driverapi::IpamData;
use libnetwork_types::{MacAddr, PortBinding, TransportPort};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::netlabel;

/// Key prefix of networks.
pub(crate) const NETWORK_PREFIX: &str = "network";
/// Key prefix of endpoints.
pub(crate) const ENDPOINT_PREFIX: &str = "endpoint";
/// Key prefix of endpoint counts.
pub(crate) const ENDPOINT_COUNT_PREFIX: &str = "endpoint_count";
/// Key prefix of sandbox checkpoints.
pub(crate) const SANDBOX_PREFIX: &str = "sandbox";

/// `null` reads as the type's default (Go writes `null` for nil maps and slices).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A value stored as a JSON document inside a JSON string, as libnetwork stores IPAM
/// configurations and infos.
mod json_string {
    use super::*;

    pub(super) fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(v).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: DeserializeOwned + Default,
        D: Deserializer<'de>,
    {
        match Option::<String>::deserialize(d)? {
            None => Ok(T::default()),
            Some(text) if text.is_empty() => Ok(T::default()),
            Some(text) => serde_json::from_str(&text).map_err(serde::de::Error::custom),
        }
    }
}

/// The current time as Go's `time.Time` JSON encoding (RFC 3339 with nanoseconds, UTC).
pub(crate) fn now_rfc3339() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_nanos())
}

/// Formats seconds since the epoch (UTC) like Go's RFC3339Nano.
fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// One IPAM configuration of a network (libnetwork's `IpamConf`): what to ask the IPAM driver
/// for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamConf {
    /// The subnet to use; `None` lets the IPAM driver pick one.
    pub preferred_pool: Option<IpNet>,
    /// A range inside the subnet that endpoint addresses come from (`--ip-range`).
    pub sub_pool: Option<IpNet>,
    /// The gateway address; `None` lets the IPAM driver pick one.
    pub gateway: Option<IpAddr>,
    /// Addresses reserved by name (`--aux-address`); they are never given to endpoints.
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// libnetwork's JSON form of [`IpamConf`] (Go field names, empty strings for unset values).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamConfJson {
    #[serde(default)]
    preferred_pool: String,
    #[serde(default)]
    sub_pool: String,
    #[serde(default)]
    gateway: String,
    #[serde(default)]
    aux_addresses: Option<BTreeMap<String, String>>,
}

impl Serialize for IpamConf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = |v: Option<String>| v.unwrap_or_default();
        IpamConfJson {
            preferred_pool: text(self.preferred_pool.map(|p| p.to_string())),
            sub_pool: text(self.sub_pool.map(|p| p.to_string())),
            gateway: text(self.gateway.map(|g| g.to_string())),
            aux_addresses: (!self.aux_addresses.is_empty()).then(|| {
                self.aux_addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect()
            }),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for IpamConf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let json = IpamConfJson::deserialize(d)?;
        let net = |s: &str| -> Result<Option<IpNet>, D::Error> {
            if s.is_empty() {
                return Ok(None);
            }
            s.parse().map(Some).map_err(D::Error::custom)
        };
        let gateway = if json.gateway.is_empty() {
            None
        } else {
            Some(json.gateway.parse().map_err(D::Error::custom)?)
        };
        let mut aux_addresses = BTreeMap::new();
        for (k, v) in json.aux_addresses.unwrap_or_default() {
            aux_addresses.insert(k, v.parse().map_err(D::Error::custom)?);
        }
        Ok(Self {
            preferred_pool: net(&json.preferred_pool)?,
            sub_pool: net(&json.sub_pool)?,
            gateway,
            aux_addresses,
        })
    }
}

/// What IPAM gave a network for one configuration (libnetwork's `IpamInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamInfo {
    /// The IPAM driver's id of the pool.
    pub pool_id: String,
    /// The driver's metadata.
    pub meta: BTreeMap<String, String>,
    /// The pool, gateway and auxiliary addresses, as given to the network driver.
    pub data: IpamData,
}

impl Serialize for IpamInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = Map::new();
        m.insert("PoolID".into(), Value::String(self.pool_id.clone()));
        if !self.meta.is_empty() {
            let meta = serde_json::to_value(&self.meta).map_err(serde::ser::Error::custom)?;
            m.insert("Meta".into(), meta);
        }
        let data = serde_json::to_string(&self.data).map_err(serde::ser::Error::custom)?;
        m.insert("IPAMData".into(), Value::String(data));
        m.serialize(s)
    }
}

impl<'de> Deserialize<'de> for IpamInfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        struct Json {
            #[serde(rename = "PoolID")]
            pool_id: String,
            #[serde(rename = "Meta", default, deserialize_with = "null_default")]
            meta: BTreeMap<String, String>,
            #[serde(rename = "IPAMData")]
            data: String,
        }
        let json = Json::deserialize(d)?;
        Ok(Self {
            pool_id: json.pool_id,
            meta: json.meta,
            data: serde_json::from_str(&json.data).map_err(D::Error::custom)?,
        })
    }
}

/// Implements [`KvObject`] for a record with `index`/`exists` fields.
macro_rules! kv_object {
    ($ty:ty, |$s:ident| key: $key:expr, prefix: $prefix:expr, scope: $scope:expr) => {
        #[allow(unused_variables)]
        impl KvObject for $ty {
            fn key(&self) -> Vec<String> {
                let $s = self;
                $key
            }
            fn key_prefix(&self) -> Vec<String> {
                let $s = self;
                $prefix
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
            fn skip(&self) -> bool {
                !self.persisted()
            }
            fn data_scope(&self) -> Scope {
                let $s = self;
                $scope
            }
        }
    };
}

/// The store scope of a network scope name (`swarm` networks live in the local store, as in
/// libnetwork).
pub(crate) fn store_scope(scope: &str) -> Scope {
    if scope == "global" {
        Scope::Global
    } else {
        Scope::Local
    }
}

/// A network as persisted (libnetwork's `network` JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    pub(crate) name: String,
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) created: String,
    #[serde(rename = "networkType")]
    pub(crate) network_type: String,
    #[serde(default)]
    pub(crate) scope: String,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(rename = "ipamType", default)]
    pub(crate) ipam_type: String,
    #[serde(rename = "ipamOptions", default, deserialize_with = "null_default")]
    pub(crate) ipam_options: BTreeMap<String, String>,
    #[serde(rename = "addrSpace", default)]
    pub(crate) addr_space: String,
    #[serde(rename = "enableIPv6", default)]
    pub(crate) enable_ipv6: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) generic: Map<String, Value>,
    #[serde(default = "yes")]
    pub(crate) persist: bool,
    #[serde(rename = "postIPv6", default)]
    pub(crate) post_ipv6: bool,
    #[serde(
        rename = "ipamV4Config",
        default,
        with = "json_string",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) ipam_v4_config: Vec<IpamConf>,
    #[serde(
        rename = "ipamV4Info",
        default,
        with = "json_string",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) ipam_v4_info: Vec<IpamInfo>,
    #[serde(
        rename = "ipamV6Config",
        default,
        with = "json_string",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) ipam_v6_config: Vec<IpamConf>,
    #[serde(
        rename = "ipamV6Info",
        default,
        with = "json_string",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) ipam_v6_info: Vec<IpamInfo>,
    #[serde(default)]
    pub(crate) internal: bool,
    #[serde(default)]
    pub(crate) attachable: bool,
    #[serde(rename = "inDelete", default)]
    pub(crate) in_delete: bool,
    #[serde(default)]
    pub(crate) ingress: bool,
    #[serde(rename = "configOnly", default)]
    pub(crate) config_only: bool,
    #[serde(rename = "configFrom", default)]
    pub(crate) config_from: String,
    #[serde(rename = "loadBalancerIP", default)]
    pub(crate) load_balancer_ip: String,
    #[serde(rename = "loadBalancerMode", default)]
    pub(crate) load_balancer_mode: String,
    /// Ours: set while the network is being created.
    #[serde(rename = "inCreate", default, skip_serializing_if = "is_false")]
    pub(crate) in_create: bool,
    #[serde(skip)]
    pub(crate) index: u64,
    #[serde(skip)]
    pub(crate) exists: bool,
}

fn yes() -> bool {
    true
}

impl NetworkRecord {
    pub(crate) fn persisted(&self) -> bool {
        self.persist
    }

    /// The driver options (`generic[com.docker.network.generic]`, a string map).
    pub(crate) fn driver_options(&self) -> BTreeMap<String, String> {
        match self.generic.get(netlabel::GENERIC_DATA) {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Sets the driver options.
    pub(crate) fn set_driver_options(&mut self, options: &BTreeMap<String, String>) {
        let m: Map<String, Value> = options
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        self.generic
            .insert(netlabel::GENERIC_DATA.to_owned(), Value::Object(m));
    }

    /// Normalises a record read from the store as libnetwork does on load.
    pub(crate) fn normalise(&mut self) {
        if self.ipam_type.is_empty() {
            self.ipam_type = libnetwork_ipamapi::DEFAULT_IPAM.to_owned();
        }
        if self.load_balancer_mode.is_empty() {
            self.load_balancer_mode = "NAT".to_owned();
        }
        if !self.ipam_v6_info.is_empty() {
            self.enable_ipv6 = true;
        }
        if self.scope.is_empty() {
            self.scope = "local".to_owned();
        }
    }
}

kv_object!(NetworkRecord, |s| key: vec![NETWORK_PREFIX.into(), s.id.clone()],
    prefix: vec![NETWORK_PREFIX.into()], scope: store_scope(&s.scope));

/// A network's endpoint count (libnetwork's `endpointCnt`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointCount {
    #[serde(rename = "Count")]
    pub(crate) count: u64,
    #[serde(skip)]
    pub(crate) nid: String,
    #[serde(skip)]
    pub(crate) scope: String,
    #[serde(skip)]
    pub(crate) persist: bool,
    #[serde(skip)]
    pub(crate) index: u64,
    #[serde(skip)]
    pub(crate) exists: bool,
}

impl EndpointCount {
    pub(crate) fn persisted(&self) -> bool {
        self.persist
    }
}

kv_object!(EndpointCount, |s| key: vec![ENDPOINT_COUNT_PREFIX.into(), s.nid.clone()],
    prefix: vec![ENDPOINT_COUNT_PREFIX.into(), s.nid.clone()], scope: store_scope(&s.scope));

/// An endpoint's interface (libnetwork's `endpointInterface` JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IfaceRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mac: Option<MacAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) addr: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) addrv6: Option<IpNet>,
    #[serde(
        rename = "llAddrs",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) ll_addrs: Vec<IpNet>,
    #[serde(rename = "srcName", default)]
    pub(crate) src_name: String,
    #[serde(rename = "dstPrefix", default)]
    pub(crate) dst_prefix: String,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) routes: Vec<IpNet>,
    #[serde(rename = "v4PoolID", default)]
    pub(crate) v4_pool_id: String,
    #[serde(rename = "v6PoolID", default)]
    pub(crate) v6_pool_id: String,
    /// Ours: the interface's name inside the sandbox, while joined.
    #[serde(rename = "dstName", default, skip_serializing_if = "String::is_empty")]
    pub(crate) dst_name: String,
    /// Ours: the driver created the interface inside the sandbox (it is deleted, not moved
    /// back, when the endpoint leaves).
    #[serde(rename = "createdInSandbox", default, skip_serializing_if = "is_false")]
    pub(crate) created_in_sandbox: bool,
}

/// A static route as stored (ours: CIDR strings; libnetwork's Go encoding of `net.IPNet` is
/// not readable back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RouteRecord {
    #[serde(rename = "Destination")]
    pub(crate) destination: IpNet,
    /// 0 = through `NextHop`, 1 = connected.
    #[serde(rename = "RouteType")]
    pub(crate) route_type: u8,
    #[serde(rename = "NextHop", default, skip_serializing_if = "Option::is_none")]
    pub(crate) next_hop: Option<IpAddr>,
}

/// What the driver said at join (libnetwork's `endpointJoinInfo` JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JoinInfoRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gw6: Option<IpAddr>,
    #[serde(rename = "disableGatewayService", default)]
    pub(crate) disable_gateway_service: bool,
    #[serde(rename = "StaticRoutes", default, deserialize_with = "null_default")]
    pub(crate) static_routes: Vec<RouteRecord>,
}

/// Write-ahead marks of endpoint creation and deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EndpointState {
    /// Addresses allocated, the driver may or may not have created it.
    Creating,
    /// Being deleted: the driver may or may not have deleted it.
    Deleting,
}

/// Write-ahead marks of joins and leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JoinState {
    /// Being joined to `sandbox`: the driver and the sandbox may be half set up.
    Joining,
    /// Leaving `sandbox`: the driver and the sandbox may be half torn down.
    Leaving,
}

/// An endpoint as persisted (libnetwork's `endpoint` JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    pub(crate) name: String,
    pub(crate) id: String,
    #[serde(rename = "ep_iface", default)]
    pub(crate) iface: IfaceRecord,
    #[serde(rename = "joinInfo", default, skip_serializing_if = "Option::is_none")]
    pub(crate) join_info: Option<JoinInfoRecord>,
    #[serde(rename = "exposed_ports", default, deserialize_with = "null_default")]
    pub(crate) exposed_ports: Vec<TransportPort>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) generic: Map<String, Value>,
    #[serde(rename = "sandbox", default)]
    pub(crate) sandbox: String,
    #[serde(default)]
    pub(crate) locator: String,
    #[serde(default)]
    pub(crate) anonymous: bool,
    #[serde(rename = "disableResolution", default)]
    pub(crate) disable_resolution: bool,
    #[serde(rename = "myAliases", default, deserialize_with = "null_default")]
    pub(crate) my_aliases: Vec<String>,
    #[serde(rename = "svcName", default)]
    pub(crate) svc_name: String,
    #[serde(rename = "svcID", default)]
    pub(crate) svc_id: String,
    #[serde(rename = "virtualIP", default = "nil_ip")]
    pub(crate) virtual_ip: String,
    #[serde(rename = "ingressPorts", default)]
    pub(crate) ingress_ports: Option<Vec<Value>>,
    #[serde(rename = "svcAliases", default)]
    pub(crate) svc_aliases: Option<Vec<String>>,
    #[serde(rename = "loadBalancer", default)]
    pub(crate) load_balancer: bool,
    /// Ours: extra DNS names of the endpoint.
    #[serde(rename = "dnsNames", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dns_names: Vec<String>,
    /// Ours: creation/deletion in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<EndpointState>,
    /// Ours: join/leave in progress.
    #[serde(rename = "joinState", default, skip_serializing_if = "Option::is_none")]
    pub(crate) join_state: Option<JoinState>,
    /// The network id (from the key).
    #[serde(skip)]
    pub(crate) nid: String,
    /// The network's scope (decides the store).
    #[serde(skip)]
    pub(crate) scope: String,
    #[serde(skip)]
    pub(crate) persist: bool,
    #[serde(skip)]
    pub(crate) index: u64,
    #[serde(skip)]
    pub(crate) exists: bool,
}

fn nil_ip() -> String {
    "<nil>".to_owned()
}

impl EndpointRecord {
    pub(crate) fn new(name: &str, id: &str, nid: &str, scope: &str, persist: bool) -> Self {
        Self {
            name: name.to_owned(),
            id: id.to_owned(),
            iface: IfaceRecord::default(),
            join_info: None,
            exposed_ports: Vec::new(),
            generic: Map::new(),
            sandbox: String::new(),
            locator: String::new(),
            anonymous: false,
            disable_resolution: false,
            my_aliases: Vec::new(),
            svc_name: String::new(),
            svc_id: String::new(),
            virtual_ip: nil_ip(),
            ingress_ports: None,
            svc_aliases: None,
            load_balancer: false,
            dns_names: Vec::new(),
            state: None,
            join_state: None,
            nid: nid.to_owned(),
            scope: scope.to_owned(),
            persist,
            index: 0,
            exists: false,
        }
    }

    pub(crate) fn persisted(&self) -> bool {
        self.persist
    }

    /// The port bindings asked for (`generic[com.docker.network.portmap]`).
    pub(crate) fn port_bindings(&self) -> Vec<PortBinding> {
        self.generic
            .get(netlabel::PORT_MAP)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// The DNS servers asked for (`generic[com.docker.network.endpoint.dnsservers]`).
    pub(crate) fn dns_servers(&self) -> Vec<String> {
        self.generic
            .get(netlabel::DNS_SERVERS)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// The driver options given at creation (every string-valued generic entry that is not
    /// one of the well-known keys above).
    pub(crate) fn driver_options(&self) -> BTreeMap<String, String> {
        self.generic
            .iter()
            .filter(|(k, _)| {
                ![
                    netlabel::PORT_MAP,
                    netlabel::EXPOSED_PORTS,
                    netlabel::MAC_ADDRESS,
                    netlabel::DNS_SERVERS,
                ]
                .contains(&k.as_str())
            })
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect()
    }

    /// The MAC address asked for at creation.
    pub(crate) fn requested_mac(&self) -> Option<MacAddr> {
        self.generic
            .get(netlabel::MAC_ADDRESS)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
    }

    /// Whether the endpoint is (fully) joined to a sandbox.
    pub(crate) fn is_joined(&self) -> bool {
        !self.sandbox.is_empty() && self.join_state.is_none()
    }
}

kv_object!(EndpointRecord, |s| key: vec![ENDPOINT_PREFIX.into(), s.nid.clone(), s.id.clone()],
    prefix: vec![ENDPOINT_PREFIX.into(), s.nid.clone()], scope: store_scope(&s.scope));

/// One endpoint of a sandbox checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EpState {
    #[serde(rename = "Eid")]
    pub(crate) eid: String,
    #[serde(rename = "Nid")]
    pub(crate) nid: String,
}

/// An external DNS server of a sandbox checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExtDnsEntry {
    #[serde(rename = "IPStr")]
    pub(crate) ip: String,
    #[serde(rename = "HostLoopback")]
    pub(crate) host_loopback: bool,
}

/// The creation options of a sandbox, as stored (ours).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SandboxOptionsRecord {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) domainname: String,
    #[serde(rename = "hostsPath", default)]
    pub(crate) hosts_path: PathBuf,
    #[serde(
        rename = "originHostsPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) origin_hosts_path: Option<PathBuf>,
    #[serde(rename = "resolvConfPath", default)]
    pub(crate) resolv_conf_path: PathBuf,
    #[serde(
        rename = "originResolvConfPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) origin_resolv_conf_path: Option<PathBuf>,
    #[serde(rename = "extraHosts", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) extra_hosts: Vec<(String, IpAddr)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dns: Vec<IpAddr>,
    #[serde(rename = "dnsSearch", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dns_search: Vec<String>,
    #[serde(rename = "dnsOptions", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dns_options: Vec<String>,
    #[serde(
        rename = "useDefaultSandbox",
        default,
        skip_serializing_if = "is_false"
    )]
    pub(crate) use_default_sandbox: bool,
    #[serde(
        rename = "exposedPorts",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) exposed_ports: Vec<TransportPort>,
    #[serde(
        rename = "portBindings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) port_bindings: Vec<PortBinding>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) labels: BTreeMap<String, String>,
}

/// A sandbox checkpoint (libnetwork's `sbState`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    #[serde(rename = "Cid")]
    pub(crate) cid: String,
    #[serde(rename = "Eps", default, deserialize_with = "null_default")]
    pub(crate) eps: Vec<EpState>,
    #[serde(rename = "EpPriority", default, deserialize_with = "null_default")]
    pub(crate) ep_priority: BTreeMap<String, i32>,
    #[serde(rename = "ExtDNS", default, deserialize_with = "null_default")]
    pub(crate) ext_dns: Vec<String>,
    #[serde(rename = "ExtDNS2", default, deserialize_with = "null_default")]
    pub(crate) ext_dns2: Vec<ExtDnsEntry>,
    /// Ours: the namespace path.
    #[serde(rename = "Key", default)]
    pub(crate) key: PathBuf,
    /// Ours: the creation options.
    #[serde(rename = "Options", default)]
    pub(crate) options: SandboxOptionsRecord,
    #[serde(skip)]
    pub(crate) index: u64,
    #[serde(skip)]
    pub(crate) exists: bool,
}

impl SandboxRecord {
    pub(crate) fn persisted(&self) -> bool {
        true
    }
}

kv_object!(SandboxRecord, |s| key: vec![SANDBOX_PREFIX.into(), s.id.clone()],
    prefix: vec![SANDBOX_PREFIX.into()], scope: Scope::Local);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_network() -> NetworkRecord {
        let data = IpamData {
            address_space: "LocalDefault".into(),
            pool: "172.18.0.0/16".parse().unwrap(),
            gateway: Some("172.18.0.1/16".parse().unwrap()),
            aux_addresses: BTreeMap::new(),
        };
        let mut record: NetworkRecord = serde_json::from_value(serde_json::json!({
            "name": "net1", "id": "abc", "networkType": "bridge",
        }))
        .unwrap();
        record.ipam_v4_config = vec![IpamConf {
            preferred_pool: Some("172.18.0.0/16".parse().unwrap()),
            gateway: Some("172.18.0.1".parse().unwrap()),
            ..IpamConf::default()
        }];
        record.ipam_v4_info = vec![IpamInfo {
            pool_id: "LocalDefault/172.18.0.0/16".into(),
            meta: BTreeMap::new(),
            data,
        }];
        record
    }

    #[test]
    fn ipam_configs_and_infos_are_json_documents_inside_strings() {
        let record = sample_network();
        let json = serde_json::to_value(&record).unwrap();
        let config = json["ipamV4Config"].as_str().unwrap();
        assert_eq!(
            config,
            r#"[{"PreferredPool":"172.18.0.0/16","SubPool":"","Gateway":"172.18.0.1","AuxAddresses":null}]"#
        );
        let info: Value = serde_json::from_str(json["ipamV4Info"].as_str().unwrap()).unwrap();
        assert_eq!(info[0]["PoolID"], "LocalDefault/172.18.0.0/16");
        let data: Value = serde_json::from_str(info[0]["IPAMData"].as_str().unwrap()).unwrap();
        assert_eq!(data["Pool"], "172.18.0.0/16");
        assert_eq!(data["Gateway"], "172.18.0.1/16");
        assert!(json.get("ipamV6Config").is_none());
    }

    #[test]
    fn a_network_round_trips_and_is_normalised_like_libnetwork_on_load() {
        let record = sample_network();
        let text = serde_json::to_string(&record).unwrap();
        let mut back: NetworkRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.ipam_v4_config, record.ipam_v4_config);
        assert_eq!(back.ipam_v4_info, record.ipam_v4_info);
        back.normalise();
        assert_eq!(back.ipam_type, "default");
        assert_eq!(back.load_balancer_mode, "NAT");
        assert_eq!(back.scope, "local");
        assert!(back.persist);
        // IPv6 infos force IPv6 on.
        back.ipam_v6_info = back.ipam_v4_info.clone();
        back.normalise();
        assert!(back.enable_ipv6);
    }

    #[test]
    fn go_nulls_read_as_empty_values() {
        let record: NetworkRecord = serde_json::from_str(
            r#"{"name":"n","id":"i","networkType":"null","labels":null,"ipamOptions":null,
                "generic":null,"ipamV4Config":""}"#,
        )
        .unwrap();
        assert!(record.labels.is_empty());
        assert!(record.generic.is_empty());
        assert!(record.ipam_v4_config.is_empty());
        let ep: EndpointRecord = serde_json::from_str(
            r#"{"name":"e","id":"i","ep_iface":{"srcName":"","dstPrefix":"","routes":null,
                "v4PoolID":"","v6PoolID":""},"exposed_ports":null,"myAliases":null}"#,
        )
        .unwrap();
        assert!(ep.exposed_ports.is_empty());
        assert_eq!(ep.virtual_ip, "<nil>");
    }

    #[test]
    fn endpoint_json_uses_libnetwork_field_names() {
        let mut ep = EndpointRecord::new("ep1", "e1", "n1", "local", true);
        ep.iface.mac = Some("02:42:ac:11:00:02".parse().unwrap());
        ep.iface.addr = Some("172.17.0.2/16".parse().unwrap());
        ep.iface.v4_pool_id = "LocalDefault/172.17.0.0/16".into();
        ep.join_info = Some(JoinInfoRecord {
            gw: Some("172.17.0.1".parse().unwrap()),
            static_routes: vec![RouteRecord {
                destination: "10.0.0.0/8".parse().unwrap(),
                route_type: 0,
                next_hop: Some("172.17.0.254".parse().unwrap()),
            }],
            ..JoinInfoRecord::default()
        });
        ep.sandbox = "sb".into();
        let json = serde_json::to_value(&ep).unwrap();
        assert_eq!(json["ep_iface"]["mac"], "02:42:ac:11:00:02");
        assert_eq!(json["ep_iface"]["addr"], "172.17.0.2/16");
        assert_eq!(json["ep_iface"]["v4PoolID"], "LocalDefault/172.17.0.0/16");
        assert_eq!(json["joinInfo"]["gw"], "172.17.0.1");
        assert_eq!(json["sandbox"], "sb");
        assert_eq!(json["virtualIP"], "<nil>");
        assert!(json.get("state").is_none());
        let back: EndpointRecord = serde_json::from_value(json).unwrap();
        // Static routes survive a round trip (libnetwork's quirk 5 is fixed).
        assert_eq!(back.join_info, ep.join_info);
        assert_eq!(back.iface, ep.iface);
        assert!(back.is_joined());
    }

    #[test]
    fn sandbox_checkpoints_use_libnetwork_field_names() {
        let sb = SandboxRecord {
            id: "s".into(),
            cid: "c".into(),
            eps: vec![EpState {
                eid: "e".into(),
                nid: "n".into(),
            }],
            ep_priority: BTreeMap::new(),
            ext_dns: vec!["10.0.0.1".into()],
            ext_dns2: vec![ExtDnsEntry {
                ip: "10.0.0.1".into(),
                host_loopback: false,
            }],
            key: PathBuf::from("/run/netns/s"),
            options: SandboxOptionsRecord::default(),
            index: 0,
            exists: false,
        };
        let json = serde_json::to_value(&sb).unwrap();
        assert_eq!(json["ID"], "s");
        assert_eq!(json["Cid"], "c");
        assert_eq!(json["Eps"][0]["Eid"], "e");
        assert_eq!(json["ExtDNS2"][0]["IPStr"], "10.0.0.1");
        assert_eq!(json["ExtDNS2"][0]["HostLoopback"], false);
    }

    #[test]
    fn created_times_look_like_go_rfc3339_nano() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_697_803_200, 500_000_000),
            "2023-10-20T12:00:00.5Z"
        );
        assert_eq!(rfc3339(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
        assert!(now_rfc3339().ends_with('Z'));
    }
}
