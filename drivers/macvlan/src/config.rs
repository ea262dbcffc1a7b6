//! Network configuration of the macvlan and ipvlan drivers: option parsing and validation
//! (libnetwork's `parseNetworkOptions`, `processIPAM` and the checks of `CreateNetwork`), the
//! parent interface rules (`lo` refused, `<link>.<vlan id>` sub-interfaces, the dummy parent of
//! a network without one), the one-network-per-parent rule, and the persisted JSON form
//! (libnetwork's `configuration` with its field names).
//!
//! Everything here is pure: no kernel, no store.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use libnetwork_driverapi::{CreateNetworkRequest, IpamData, netlabel};
use libnetwork_osl::LinkKind;
use libnetwork_osl::link_kinds::VLAN_ID_RANGE;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Option key of the parent interface (`-o parent=eth0`, `-o parent=eth0.10`).
pub const PARENT_OPTION: &str = "parent";

/// Prefix of the container interface name when the network does not set one.
pub const DEFAULT_CONTAINER_IFACE_PREFIX: &str = "eth";

/// How many characters of the network id name its dummy parent (libnetwork's
/// `stringid.TruncateID`).
const SHORT_ID_LEN: usize = 12;

/// Longest interface name the kernel accepts (`IFNAMSIZ - 1`).
const MAX_IFNAME_LEN: usize = 15;

/// The options of a create request as one map: the network's `com.docker.network.*` labels,
/// then its driver options (which win on a clash).
pub fn merged_options(request: &CreateNetworkRequest) -> BTreeMap<&str, &str> {
    request
        .options
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with(netlabel::PREFIX))
        .chain(&request.options.driver_options)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// An [`Error::InvalidOption`].
pub fn invalid_option(key: &str, value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidOption {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parses a mode-like option: `default` when absent or empty (libnetwork treats `-o mode=` as
/// unset), else the named value.
pub fn parse_named<T>(options: &BTreeMap<&str, &str>, key: &str, default: T) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    match options.get(key) {
        None | Some(&"") => Ok(default),
        Some(value) => value
            .parse()
            .map_err(|e: T::Err| invalid_option(key, value, e.to_string())),
    }
}

/// One subnet of a network with its gateway (libnetwork's `ipv4Subnet`/`ipv6Subnet`:
/// `{"SubnetIP": "10.0.0.0/24", "GwIP": "10.0.0.1/24"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// The pool.
    #[serde(rename = "SubnetIP", with = "net_string")]
    pub subnet: IpNet,
    /// The gateway with the pool's prefix length; `""` in JSON when IPAM gave none.
    #[serde(rename = "GwIP", default, with = "opt_net_string")]
    pub gateway: Option<IpNet>,
}

impl Subnet {
    fn from_ipam(data: &IpamData) -> Self {
        Self {
            subnet: data.pool,
            gateway: data.gateway,
        }
    }

    /// Whether `address` belongs to this subnet: same prefix length and inside it (libnetwork's
    /// `getSubnetforIPv4`).
    pub fn holds(&self, address: &IpNet) -> bool {
        self.subnet.prefix_len() == address.prefix_len()
            && self.subnet.trunc().contains(&address.addr())
    }
}

/// The configuration of a network (libnetwork's `configuration`), generic over the driver's
/// mode settings `M`, which are flattened into the same JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig<M> {
    /// The network id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The MTU of the endpoints' interfaces; 0 keeps the parent's.
    #[serde(rename = "Mtu", default)]
    pub mtu: u32,
    /// The parent interface (a host link, `<link>.<vlan id>`, or the dummy parent).
    #[serde(rename = "Parent")]
    pub parent: String,
    /// The driver's mode settings.
    #[serde(flatten)]
    pub mode: M,
    /// No gateway for endpoints (set for networks without a parent too).
    #[serde(rename = "Internal", default)]
    pub internal: bool,
    /// The driver created the parent (a VLAN sub-interface or the dummy parent) and deletes it
    /// with the network (libnetwork's `CreatedSlaveLink`, stored as `CreatedSubIface`).
    #[serde(rename = "CreatedSubIface", default)]
    pub created_parent: bool,
    /// The IPv4 subnets (stored as a JSON string, as libnetwork does).
    #[serde(
        rename = "Ipv4Subnets",
        default,
        with = "subnets_string",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ipv4_subnets: Vec<Subnet>,
    /// The IPv6 subnets (stored as a JSON string).
    #[serde(
        rename = "Ipv6Subnets",
        default,
        with = "subnets_string",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ipv6_subnets: Vec<Subnet>,
    /// The prefix of the container interface name (`com.docker.network.container_iface_prefix`);
    /// empty for `eth`. Not in libnetwork's record.
    #[serde(
        rename = "ContainerIfacePrefix",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub container_iface_prefix: String,
}

impl<M> NetworkConfig<M> {
    /// The configuration asked for by `request`, with `mode` parsed by the driver: options and
    /// IPAM data checked, the dummy parent named when no parent is given. Kernel state (does
    /// the parent exist?) is checked later.
    ///
    /// # Errors
    /// [`Error::InvalidIpam`] without a usable IPv4 pool, [`Error::InvalidOption`] for a bad
    /// MTU or interface prefix, [`Error::InvalidParent`] for `lo` or a name the kernel would
    /// refuse.
    pub fn from_request(
        request: &CreateNetworkRequest,
        dummy_prefix: &str,
        mode: M,
    ) -> Result<Self> {
        let id = request.network_id.as_str();
        let invalid_ipam = |reason: &str| Error::InvalidIpam {
            network: id.to_string(),
            reason: reason.to_string(),
        };
        if id.is_empty() {
            return Err(invalid_ipam("the network id is empty"));
        }
        // A null IPv4 pool cannot address the interfaces (libnetwork: "ipv4 pool is empty").
        match request.ipv4.first() {
            Some(data) if data.pool.prefix_len() > 0 => {}
            _ => return Err(invalid_ipam("ipv4 pool is empty")),
        }
        for data in request.ipv4.iter().chain(&request.ipv6) {
            if let Some(gw) = data.gateway
                && !data.pool.trunc().contains(&gw.addr())
            {
                return Err(invalid_ipam(&format!(
                    "gateway {gw} is outside pool {}",
                    data.pool
                )));
            }
        }
        if request.ipv4.iter().any(|d| !d.pool.addr().is_ipv4())
            || request.ipv6.iter().any(|d| !d.pool.addr().is_ipv6())
        {
            return Err(invalid_ipam("a pool is of the wrong address family"));
        }

        let options = merged_options(request);
        let mut cfg = Self {
            id: id.to_string(),
            mtu: 0,
            parent: String::new(),
            mode,
            internal: request.options.internal,
            created_parent: false,
            ipv4_subnets: request.ipv4.iter().map(Subnet::from_ipam).collect(),
            ipv6_subnets: request.ipv6.iter().map(Subnet::from_ipam).collect(),
            container_iface_prefix: String::new(),
        };
        for (key, value) in &options {
            match *key {
                PARENT_OPTION => cfg.parent = value.trim().to_string(),
                netlabel::DRIVER_MTU => cfg.mtu = parse_mtu(value)?,
                netlabel::INTERNAL => {
                    let internal = parse_bool(value)
                        .ok_or_else(|| invalid_option(key, value, "not a boolean"))?;
                    cfg.internal |= internal;
                }
                netlabel::CONTAINER_IFACE_PREFIX => {
                    // The kernel must accept `<prefix><n>` for small n.
                    if !valid_interface_name(value) || value.len() > MAX_IFNAME_LEN - 2 {
                        return Err(invalid_option(
                            key,
                            value,
                            "not a valid interface name prefix",
                        ));
                    }
                    cfg.container_iface_prefix = value.to_string();
                }
                // Other options (Docker passes any `-o`) are ignored, as libnetwork does.
                _ => {}
            }
        }

        let invalid_parent = |reason: &str| Error::InvalidParent {
            network: id.to_string(),
            parent: cfg.parent.clone(),
            reason: reason.to_string(),
        };
        if cfg.parent == "lo" {
            return Err(invalid_parent(
                "the loopback interface is not a valid parent link",
            ));
        }
        if cfg.parent.is_empty() {
            // No parent: the network gets a parent of its own that leads nowhere, and is
            // internal (libnetwork handles an empty parent and --internal the same way).
            cfg.parent = dummy_name(dummy_prefix, id);
            cfg.internal = true;
        } else if !valid_interface_name(&cfg.parent) {
            return Err(invalid_parent("not a valid interface name"));
        }
        Ok(cfg)
    }

    /// The prefix of the container interface name.
    pub fn container_prefix(&self) -> &str {
        if self.container_iface_prefix.is_empty() {
            DEFAULT_CONTAINER_IFACE_PREFIX
        } else {
            &self.container_iface_prefix
        }
    }

    /// The MTU to set on endpoint interfaces, if any.
    pub fn mtu(&self) -> Option<u32> {
        (self.mtu > 0).then_some(self.mtu)
    }

    /// The subnet of the endpoint address `address`, of its family.
    pub fn subnet_of(&self, address: &IpNet) -> Option<&Subnet> {
        let subnets = match address {
            IpNet::V4(_) => &self.ipv4_subnets,
            IpNet::V6(_) => &self.ipv6_subnets,
        };
        subnets.iter().find(|s| s.holds(address))
    }

    /// The gateway of the subnet holding `address`, if that subnet has one.
    pub fn gateway_for(&self, address: &IpNet) -> Option<IpAddr> {
        self.subnet_of(address)?.gateway.map(|g| g.addr())
    }

    /// Why this network cannot be created next to `other`, an existing network of the driver:
    /// libnetwork allows one network per parent interface. `Ok(true)` when `other` is this
    /// very network asked for again (the same id on the same parent: libnetwork's "restoring
    /// existing network", which changes nothing), `Ok(false)` when they can coexist.
    ///
    /// # Errors
    /// [`Error::ParentInUse`] for another network on the parent, [`Error::NetworkExists`] for
    /// the same id on another parent.
    pub fn check_against(&self, other: &Self) -> Result<bool> {
        match (self.id == other.id, self.parent == other.parent) {
            (true, true) => Ok(true),
            (true, false) => Err(Error::NetworkExists {
                network: self.id.clone(),
                parent: other.parent.clone(),
            }),
            (false, true) => Err(Error::ParentInUse {
                network: self.id.clone(),
                parent: self.parent.clone(),
                other: other.id.clone(),
            }),
            (false, false) => Ok(false),
        }
    }
}

/// The name of the dummy parent of a network without one: the driver's prefix (`dm-` for
/// macvlan, `di-` for ipvlan) and the first 12 characters of the network id.
pub fn dummy_name(prefix: &str, network_id: &str) -> String {
    let short: String = network_id.chars().take(SHORT_ID_LEN).collect();
    format!("{prefix}{short}")
}

/// Splits a VLAN sub-interface name `<link>.<vlan id>` (libnetwork's `parseVlan` and the id
/// check of `createVlanLink`): exactly one dot, a link name before it and an id in 1-4094
/// after it.
///
/// # Errors
/// The reason the name is not a sub-interface name, for [`Error::InvalidParent`].
pub fn parse_vlan_parent(name: &str) -> std::result::Result<(&str, u16), String> {
    let format = || {
        format!(
            "a parent that does not exist must be named <interface>.<vlan id> (eth0.10 for \
             vlan 10 on eth0), got {name}"
        )
    };
    let mut parts = name.split('.');
    let (Some(link), Some(id), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format());
    };
    if link.is_empty() {
        return Err(format());
    }
    let id: i64 = id.parse().map_err(|_| {
        format!("unable to parse a valid vlan id from {id:?} (eth0.10 for vlan 10)")
    })?;
    match u16::try_from(id) {
        Ok(id) if VLAN_ID_RANGE.contains(&id) => Ok((link, id)),
        _ => Err(format!(
            "vlan id must be between {}-{}, received {id}",
            VLAN_ID_RANGE.start(),
            VLAN_ID_RANGE.end()
        )),
    }
}

/// The link the driver makes for a missing parent `<link>.<vlan id>`: an 802.1Q
/// sub-interface of `<link>`, whose index is `master` (libnetwork's `createVlanLink`).
///
/// # Errors
/// As [`parse_vlan_parent`].
pub fn vlan_link_kind(parent: &str, master: u32) -> std::result::Result<LinkKind, String> {
    let (_, id) = parse_vlan_parent(parent)?;
    Ok(LinkKind::Vlan { parent: master, id })
}

/// Whether the kernel would accept `name` as an interface name: 1 to 15 bytes, no `/`, `:`
/// or whitespace, not `.` or `..`.
pub fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
}

/// Parses `com.docker.network.driver.mtu`: 0 (keep the parent's) or 68..=65535.
fn parse_mtu(value: &str) -> Result<u32> {
    let key = netlabel::DRIVER_MTU;
    let mtu: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid_option(key, value, "not an integer"))?;
    match mtu {
        0 => Ok(0),
        68..=65535 => Ok(u32::try_from(mtu).expect("in range")),
        _ => Err(invalid_option(key, value, "want 0 or 68..=65535")),
    }
}

/// Parses a boolean option the way Go's `strconv.ParseBool` does.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Serde for a mode-like value stored as its name (`"bridge"`, `"l3s"`).
pub mod named_string {
    use super::*;

    /// Serializes `value` as its `Display` string.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<T: fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    /// Parses the stored string.
    ///
    /// # Errors
    /// A value that does not parse.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: std::str::FromStr,
        T::Err: fmt::Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde for a CIDR string keeping its host bits.
mod net_string {
    use super::*;

    pub(super) fn serialize<S: Serializer>(net: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde for an optional CIDR string, `""` (or Go's `"<nil>"`) meaning none.
mod opt_net_string {
    use super::*;

    pub(super) fn serialize<S: Serializer>(net: &Option<IpNet>, s: S) -> Result<S::Ok, S::Error> {
        match net {
            Some(net) => s.collect_str(net),
            None => s.serialize_str(""),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "" | "<nil>" => Ok(None),
            _ => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// Serde for libnetwork's subnet lists, which it stores as a JSON string holding the JSON
/// array. A plain array is accepted too.
mod subnets_string {
    use super::*;

    pub(super) fn serialize<S: Serializer>(subnets: &[Subnet], s: S) -> Result<S::Ok, S::Error> {
        let inner = serde_json::to_string(subnets).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&inner)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Subnet>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Encoded(String),
            Plain(Vec<Subnet>),
        }
        match Stored::deserialize(d)? {
            Stored::Encoded(s) => from_json(&s).map_err(serde::de::Error::custom),
            Stored::Plain(v) => Ok(v),
        }
    }

    fn from_json<T: DeserializeOwned>(s: &str) -> serde_json::Result<T> {
        serde_json::from_str(s)
    }
}

#[cfg(test)]
mod tests {
    use libnetwork_driverapi::NetworkOptions;
    use libnetwork_types::ErrorKind;

    use super::*;

    /// Mode settings standing in for a driver's.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct TestMode {
        #[serde(rename = "TestMode")]
        mode: String,
    }

    fn mode() -> TestMode {
        TestMode {
            mode: "bridge".into(),
        }
    }

    fn pool(pool: &str, gw: Option<&str>) -> IpamData {
        IpamData {
            address_space: "LocalDefault".into(),
            pool: pool.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            aux_addresses: BTreeMap::new(),
        }
    }

    fn request(id: &str, opts: &[(&str, &str)]) -> CreateNetworkRequest {
        CreateNetworkRequest {
            network_id: id.into(),
            options: NetworkOptions {
                driver_options: opts
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                    .collect(),
                ..NetworkOptions::default()
            },
            ipv4: vec![pool("192.168.50.0/24", Some("192.168.50.1/24"))],
            ipv6: Vec::new(),
        }
    }

    fn config(req: &CreateNetworkRequest) -> Result<NetworkConfig<TestMode>> {
        NetworkConfig::from_request(req, "dm-", mode())
    }

    #[test]
    fn parent_and_options_are_taken_from_the_driver_options() {
        let cfg = config(&request(
            "net1",
            &[
                (PARENT_OPTION, "eth0"),
                (netlabel::DRIVER_MTU, "1400"),
                (netlabel::CONTAINER_IFACE_PREFIX, "ctr"),
                ("some_unknown_option", "x"),
            ],
        ))
        .unwrap();
        assert_eq!(cfg.parent, "eth0");
        assert_eq!(cfg.mtu(), Some(1400));
        assert_eq!(cfg.container_prefix(), "ctr");
        assert!(!cfg.internal && !cfg.created_parent);
        assert_eq!(
            cfg.ipv4_subnets,
            vec![Subnet {
                subnet: "192.168.50.0/24".parse().unwrap(),
                gateway: Some("192.168.50.1/24".parse().unwrap()),
            }]
        );
    }

    #[test]
    fn network_without_parent_gets_the_dummy_parent_and_is_internal() {
        let cfg = config(&request("0123456789abcdef0123", &[])).unwrap();
        assert_eq!(cfg.parent, "dm-0123456789ab");
        assert!(cfg.internal);
        assert_eq!(dummy_name("di-", "short"), "di-short");
    }

    #[test]
    fn internal_comes_from_the_request_or_the_label() {
        let mut req = request("n", &[(PARENT_OPTION, "eth0")]);
        req.options.internal = true;
        assert!(config(&req).unwrap().internal);
        let mut req = request("n", &[(PARENT_OPTION, "eth0")]);
        req.options
            .labels
            .insert(netlabel::INTERNAL.into(), "true".into());
        assert!(config(&req).unwrap().internal);
        let req = request(
            "n",
            &[(PARENT_OPTION, "eth0"), (netlabel::INTERNAL, "maybe")],
        );
        assert_eq!(config(&req).unwrap_err().kind(), ErrorKind::BadRequest);
    }

    #[test]
    fn loopback_and_impossible_names_are_refused_as_parents() {
        for parent in ["lo", "a/b", "much-too-long-name0", "a b"] {
            let err = config(&request("n", &[(PARENT_OPTION, parent)])).unwrap_err();
            assert!(
                matches!(err, Error::InvalidParent { .. }),
                "{parent}: {err}"
            );
            assert_eq!(err.kind(), ErrorKind::BadRequest);
        }
        let err = config(&request("n", &[(PARENT_OPTION, "lo")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "create network n: parent interface \"lo\": the loopback interface is not a valid \
             parent link"
        );
    }

    #[test]
    fn missing_or_null_ipv4_pool_is_refused() {
        let mut req = request("n", &[]);
        req.ipv4.clear();
        let err = config(&req).unwrap_err();
        assert_eq!(err.to_string(), "create network n: ipv4 pool is empty");
        req.ipv4 = vec![pool("0.0.0.0/0", None)];
        assert!(matches!(config(&req), Err(Error::InvalidIpam { .. })));
        req.ipv4 = vec![pool("10.0.0.0/24", Some("10.0.1.1/24"))];
        assert!(matches!(config(&req), Err(Error::InvalidIpam { .. })));
    }

    #[test]
    fn bad_mtu_and_prefix_are_refused() {
        for mtu in ["abc", "-1", "67", "65536"] {
            let err = config(&request("n", &[(netlabel::DRIVER_MTU, mtu)])).unwrap_err();
            assert!(matches!(err, Error::InvalidOption { .. }), "{mtu}: {err}");
        }
        assert_eq!(
            config(&request("n", &[(netlabel::DRIVER_MTU, "0")]))
                .unwrap()
                .mtu(),
            None
        );
        let err = config(&request(
            "n",
            &[(netlabel::CONTAINER_IFACE_PREFIX, "fourteen-chars")],
        ))
        .unwrap_err();
        assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    }

    #[test]
    fn vlan_parent_names_split_into_link_and_id() {
        assert_eq!(parse_vlan_parent("eth0.10"), Ok(("eth0", 10)));
        assert_eq!(parse_vlan_parent("lo.4094"), Ok(("lo", 4094)));
        assert_eq!(parse_vlan_parent("lo.1"), Ok(("lo", 1)));
        for bad in ["lo", "lo:10", "foo123.456x", "eth0.10.20", ".10", "eth0."] {
            assert!(parse_vlan_parent(bad).is_err(), "{bad}");
        }
        for out_of_range in ["eth0.0", "eth0.4095", "eth0.-1", "eth0.70000"] {
            let err = parse_vlan_parent(out_of_range).unwrap_err();
            assert!(err.contains("between 1-4094"), "{out_of_range}: {err}");
        }
    }

    #[test]
    fn one_network_per_parent_except_the_same_network_again() {
        let a = config(&request("a", &[(PARENT_OPTION, "eth0")])).unwrap();
        let b = config(&request("b", &[(PARENT_OPTION, "eth0")])).unwrap();
        let err = b.check_against(&a).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(
            err.to_string(),
            "create network b: network a is already using parent interface eth0"
        );
        // The same network asked for again (a restore) is not an error and changes nothing.
        assert!(a.check_against(&a.clone()).unwrap());
        // Another parent, or a VLAN sub-interface of the same link, is fine.
        let c = config(&request("c", &[(PARENT_OPTION, "eth0.10")])).unwrap();
        assert!(!c.check_against(&a).unwrap());
        // The same id on another parent is a conflict.
        let a2 = config(&request("a", &[(PARENT_OPTION, "eth1")])).unwrap();
        assert!(matches!(
            a2.check_against(&a),
            Err(Error::NetworkExists { .. })
        ));
        // Networks without a parent each get their own dummy parent.
        let d1 = config(&request("d1", &[])).unwrap();
        let d2 = config(&request("d2", &[])).unwrap();
        assert!(!d1.check_against(&d2).unwrap());
    }

    #[test]
    fn endpoint_addresses_find_the_subnet_with_the_same_prefix_length() {
        let mut req = request("n", &[]);
        req.ipv4.push(pool("10.1.0.0/16", None));
        req.ipv6 = vec![pool("fd00:1::/64", Some("fd00:1::1/64"))];
        let cfg = config(&req).unwrap();
        let gw = |a: &str| cfg.gateway_for(&a.parse().unwrap());
        assert_eq!(gw("192.168.50.7/24"), Some("192.168.50.1".parse().unwrap()));
        // In the pool, but with another prefix length: not that subnet.
        assert_eq!(cfg.subnet_of(&"192.168.50.7/16".parse().unwrap()), None);
        // A subnet without gateway.
        assert!(cfg.subnet_of(&"10.1.2.3/16".parse().unwrap()).is_some());
        assert_eq!(gw("10.1.2.3/16"), None);
        assert_eq!(gw("fd00:1::5/64"), Some("fd00:1::1".parse().unwrap()));
    }

    #[test]
    fn json_uses_libnetwork_field_names_and_string_encoded_subnets() {
        let mut req = request("net1", &[(PARENT_OPTION, "eth0.10")]);
        req.ipv6 = vec![pool("fd00::/64", None)];
        let mut cfg = config(&req).unwrap();
        cfg.created_parent = true;
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["ID"], "net1");
        assert_eq!(json["Mtu"], 0);
        assert_eq!(json["Parent"], "eth0.10");
        assert_eq!(json["TestMode"], "bridge");
        assert_eq!(json["Internal"], false);
        assert_eq!(json["CreatedSubIface"], true);
        assert_eq!(
            json["Ipv4Subnets"],
            r#"[{"SubnetIP":"192.168.50.0/24","GwIP":"192.168.50.1/24"}]"#
        );
        assert_eq!(
            json["Ipv6Subnets"],
            r#"[{"SubnetIP":"fd00::/64","GwIP":""}]"#
        );
        assert!(json.get("ContainerIfacePrefix").is_none());
        let back: NetworkConfig<TestMode> = serde_json::from_value(json).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn json_written_by_libnetwork_is_read() {
        let stored = r#"{"CreatedSubIface":false,"ID":"abc","Internal":false,
            "Ipv4Subnets":"[{\"SubnetIP\":\"172.18.0.0/16\",\"GwIP\":\"172.18.0.1/16\"}]",
            "TestMode":"private","Mtu":0,"Parent":"eth0"}"#;
        let cfg: NetworkConfig<TestMode> = serde_json::from_str(stored).unwrap();
        assert_eq!(cfg.id, "abc");
        assert_eq!(cfg.mode.mode, "private");
        assert_eq!(cfg.ipv4_subnets[0].subnet, "172.18.0.0/16".parse().unwrap());
        assert!(cfg.ipv6_subnets.is_empty());
        // A plain array is accepted too.
        let plain = r#"{"ID":"x","Parent":"eth0","TestMode":"bridge",
            "Ipv4Subnets":[{"SubnetIP":"10.0.0.0/8","GwIP":"<nil>"}]}"#;
        let cfg: NetworkConfig<TestMode> = serde_json::from_str(plain).unwrap();
        assert_eq!(cfg.ipv4_subnets[0].gateway, None);
    }
}
