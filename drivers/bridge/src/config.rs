//! Driver and network configuration: what the options and the IPAM data of a network say,
//! parsed and validated before anything is created (libnetwork's `configuration`,
//! `networkConfiguration`, `parseNetworkOptions`, `processIPAM` and `Validate`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use libnetwork_driverapi::{CreateNetworkRequest, IpamData};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::labels;

/// Name of Docker's default bridge.
pub const DEFAULT_BRIDGE_NAME: &str = "docker0";
/// Prefix of container interface names when the network sets none.
pub const DEFAULT_CONTAINER_IFACE_PREFIX: &str = "eth";
/// Prefix of the bridge name of a non-default network (`br-` + 12 chars of its id).
pub const BRIDGE_NAME_PREFIX: &str = "br-";

/// Driver-wide settings (libnetwork's bridge `configuration`, from the daemon's flags).
///
/// `Default` is libnetwork's behaviour without generic data: everything off. Docker's daemon
/// turns all of them on; see [`DriverConfig::docker`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverConfig {
    /// Set `net.ipv4.ip_forward=1` when the driver starts, and IPv6 forwarding for networks
    /// with an IPv6 subnet (`EnableIPForwarding`).
    pub enable_ip_forwarding: bool,
    /// Program firewall rules (NAT, isolation, ICC, published ports) for IPv4
    /// (`EnableIPTables`). Without it a firewall given to the driver is not used.
    pub enable_iptables: bool,
    /// Program firewall rules for IPv6 as well (`EnableIP6Tables`).
    pub enable_ip6tables: bool,
    /// Forward published ports reached from the host itself through the in-process userland
    /// proxy (`EnableUserlandProxy`). Off: `route_localnet` on the bridge and hairpin NAT.
    pub enable_userland_proxy: bool,
}

impl DriverConfig {
    /// The settings Docker's daemon uses by default: forwarding, firewall (both families)
    /// and userland proxy on.
    pub fn docker() -> Self {
        Self {
            enable_ip_forwarding: true,
            enable_iptables: true,
            enable_ip6tables: true,
            enable_userland_proxy: true,
        }
    }
}

/// Who created the bridge interface (libnetwork's `ifaceCreator`); only a bridge the driver
/// created is deleted with its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BridgeIfaceCreator {
    /// Not known (0).
    #[default]
    Unknown,
    /// Created by the driver (1).
    Driver,
    /// Existed before the network (2).
    User,
}

impl Serialize for BridgeIfaceCreator {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            Self::Unknown => 0,
            Self::Driver => 1,
            Self::User => 2,
        })
    }
}

impl<'de> Deserialize<'de> for BridgeIfaceCreator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match u8::deserialize(d)? {
            1 => Self::Driver,
            2 => Self::User,
            _ => Self::Unknown,
        })
    }
}

/// A bridge network's configuration, as parsed from its options and IPAM data, and as
/// persisted (the JSON field names are libnetwork's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The network id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The bridge interface's name.
    #[serde(rename = "BridgeName")]
    pub bridge_name: String,
    /// IPv6 on the bridge and the endpoints.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Masquerade (or SNAT to [`NetworkConfig::host_ip`]) traffic leaving the network.
    #[serde(rename = "EnableIPMasquerade")]
    pub enable_ip_masquerade: bool,
    /// Let containers of the network talk to each other.
    #[serde(rename = "EnableICC")]
    pub enable_icc: bool,
    /// Leave the bridge without its IPv4 address.
    #[serde(rename = "InhibitIPv4")]
    pub inhibit_ipv4: bool,
    /// MTU of the bridge and the veths; 0 keeps the kernel's default.
    #[serde(rename = "Mtu")]
    pub mtu: u32,
    /// No traffic to or from outside the network, no gateway.
    #[serde(rename = "Internal")]
    pub internal: bool,
    /// This is Docker's default bridge.
    #[serde(rename = "DefaultBridge")]
    pub default_bridge: bool,
    /// Default host address of published ports (`0.0.0.0` when unset).
    #[serde(rename = "DefaultBindingIP", default, with = "opt_ip")]
    pub default_binding_ip: Option<IpAddr>,
    /// Source address for outgoing traffic (SNAT instead of masquerade).
    #[serde(rename = "HostIP", default, with = "opt_ip")]
    pub host_ip: Option<IpAddr>,
    /// Default gateway given to containers instead of the bridge's address.
    #[serde(rename = "DefaultGatewayIPv4", default, with = "opt_ip")]
    pub default_gateway_ipv4: Option<IpAddr>,
    /// Default IPv6 gateway given to containers instead of the bridge's address.
    #[serde(rename = "DefaultGatewayIPv6", default, with = "opt_ip")]
    pub default_gateway_ipv6: Option<IpAddr>,
    /// Prefix of container interface names (empty: `eth`).
    #[serde(rename = "ContainerIfacePrefix", default)]
    pub container_iface_prefix: String,
    /// Who created the bridge.
    #[serde(rename = "BridgeIfaceCreator", default)]
    pub bridge_iface_creator: BridgeIfaceCreator,
    /// The bridge's IPv4 address: the gateway with the pool's prefix length.
    #[serde(rename = "AddressIPv4", default, with = "opt_net")]
    pub address_ipv4: Option<IpNet>,
    /// The bridge's IPv6 address: the gateway (or the pool) with the pool's prefix length.
    #[serde(rename = "AddressIPv6", default, with = "opt_net")]
    pub address_ipv6: Option<IpNet>,
}

/// Optional addresses as libnetwork writes them: a string, empty when unset.
pub(crate) mod opt_ip {
    use std::net::IpAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(ip) => s.collect_str(ip),
            None => s.serialize_str(""),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        // libnetwork writes "<nil>" for an unset net.IP.
        if s.is_empty() || s == "<nil>" {
            return Ok(None);
        }
        s.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// Optional networks as libnetwork writes them: a CIDR string, empty when unset.
pub(crate) mod opt_net {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<IpNet>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(net) => s.collect_str(net),
            None => s.serialize_str(""),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        if s.is_empty() || s == "<nil>" {
            return Ok(None);
        }
        s.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

impl NetworkConfig {
    /// Parses and validates a create-network request. The options are the network's
    /// `com.docker.network.*` labels overridden by its driver options; as in libnetwork's
    /// label form, ICC and masquerade default to on. Nothing is looked up in the kernel.
    ///
    /// # Errors
    /// [`Error::UnknownOption`], [`Error::InvalidOption`], [`Error::InvalidMtu`] for bad
    /// options; [`Error::InvalidIpam`], [`Error::MultipleSubnets`], [`Error::InvalidGateway`]
    /// for bad pools.
    pub fn from_request(request: &CreateNetworkRequest) -> Result<Self> {
        let id = request.network_id.as_str();
        if id.is_empty() {
            return Err(Error::InvalidIpam {
                network: String::new(),
                reason: "the network id is empty".into(),
            });
        }
        let mut cfg = Self::defaults(id);
        let mut bridge_name = None;

        let options: BTreeMap<&str, &str> = request
            .options
            .labels
            .iter()
            .filter(|(k, _)| k.starts_with(labels::PREFIX))
            .chain(&request.options.driver_options)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (key, value) in options {
            let invalid = |reason: &str| Error::InvalidOption {
                key: key.to_string(),
                value: value.to_string(),
                reason: reason.to_string(),
            };
            let boolean = || labels::parse_bool(value).ok_or_else(|| invalid("not a boolean"));
            let ip = || {
                value
                    .parse::<IpAddr>()
                    .map_err(|_| invalid("not an IP address"))
            };
            match key {
                labels::BRIDGE_NAME => {
                    if !labels::valid_interface_name(value) {
                        return Err(invalid("not a valid interface name"));
                    }
                    bridge_name = Some(value.to_string());
                }
                labels::MTU => {
                    let mtu: i64 = value
                        .trim()
                        .parse()
                        .map_err(|_| invalid("not an integer"))?;
                    cfg.mtu = match mtu {
                        0 => 0,
                        68..=65535 => u32::try_from(mtu).expect("in range"),
                        _ => return Err(Error::InvalidMtu(mtu)),
                    };
                }
                labels::ENABLE_IPV6 => cfg.enable_ipv6 = boolean()?,
                labels::ENABLE_IP_MASQUERADE => cfg.enable_ip_masquerade = boolean()?,
                labels::ENABLE_ICC => cfg.enable_icc = boolean()?,
                labels::INHIBIT_IPV4 => cfg.inhibit_ipv4 = boolean()?,
                labels::DEFAULT_BRIDGE => cfg.default_bridge = boolean()?,
                labels::INTERNAL => cfg.internal = boolean()?,
                labels::HOST_BINDING_IPV4 => cfg.default_binding_ip = Some(ip()?),
                labels::HOST_IPV4 => {
                    let host_ip = ip()?;
                    if !host_ip.is_ipv4() {
                        return Err(invalid("not an IPv4 address"));
                    }
                    cfg.host_ip = Some(host_ip);
                }
                labels::CONTAINER_IFACE_PREFIX => {
                    // The kernel must accept `<prefix><n>` for small n.
                    if !labels::valid_interface_name(value) || value.len() > 13 {
                        return Err(invalid("not a valid interface name prefix"));
                    }
                    cfg.container_iface_prefix = value.to_string();
                }
                k if k.starts_with(labels::BRIDGE_PREFIX) => {
                    return Err(Error::UnknownOption(k.to_string()));
                }
                // Other drivers' and generic keys are not ours to judge.
                _ => {}
            }
        }
        // The top-level options win over labels (libnetwork's `EnableIPv6`/`Internal`).
        cfg.enable_ipv6 |= request.options.enable_ipv6;
        cfg.internal |= request.options.internal;

        cfg.bridge_name = match bridge_name {
            Some(name) => name,
            None if cfg.default_bridge => DEFAULT_BRIDGE_NAME.to_string(),
            None => {
                let short: String = id.chars().take(12).collect();
                format!("{BRIDGE_NAME_PREFIX}{short}")
            }
        };
        if !labels::valid_interface_name(&cfg.bridge_name) {
            return Err(Error::InvalidOption {
                key: labels::BRIDGE_NAME.into(),
                value: cfg.bridge_name,
                reason: "the network id does not make a valid interface name".into(),
            });
        }

        cfg.process_ipam(&request.ipv4, &request.ipv6)?;
        Ok(cfg)
    }

    /// The label-form defaults: ICC and masquerade on, everything else off.
    fn defaults(id: &str) -> Self {
        Self {
            id: id.to_string(),
            bridge_name: String::new(),
            enable_ipv6: false,
            enable_ip_masquerade: true,
            enable_icc: true,
            inhibit_ipv4: false,
            mtu: 0,
            internal: false,
            default_bridge: false,
            default_binding_ip: None,
            host_ip: None,
            default_gateway_ipv4: None,
            default_gateway_ipv6: None,
            container_iface_prefix: String::new(),
            bridge_iface_creator: BridgeIfaceCreator::Unknown,
            address_ipv4: None,
            address_ipv6: None,
        }
    }

    /// Takes the bridge addresses and default gateways from the IPAM data (libnetwork's
    /// `processIPAM`), then checks the gateways (`Validate`).
    fn process_ipam(&mut self, ipv4: &[IpamData], ipv6: &[IpamData]) -> Result<()> {
        let invalid = |reason: &str| Error::InvalidIpam {
            network: self.id.clone(),
            reason: reason.to_string(),
        };
        if ipv4.len() > 1 || ipv6.len() > 1 {
            return Err(Error::MultipleSubnets(self.id.clone()));
        }
        let Some(v4) = ipv4.first() else {
            return Err(invalid("no ipv4 pool"));
        };
        let IpNet::V4(pool) = v4.pool else {
            return Err(invalid("the ipv4 pool is not an IPv4 network"));
        };
        if pool.prefix_len() == 0 {
            return Err(invalid("ipv4 pool is empty"));
        }
        let Some(IpNet::V4(gateway)) = v4.gateway else {
            return Err(invalid("the ipv4 pool has no IPv4 gateway"));
        };
        if !pool.contains(&gateway.addr()) {
            return Err(invalid("the ipv4 gateway is outside the pool"));
        }
        let address = Ipv4Net::new(gateway.addr(), pool.prefix_len()).expect("pool prefix");
        self.address_ipv4 = Some(IpNet::V4(address));
        if let Some(aux) = v4.aux_addresses.get(labels::DEFAULT_GATEWAY_V4_AUX) {
            let ok = matches!(aux.addr(), IpAddr::V4(a) if pool.contains(&a));
            if !ok {
                return Err(Error::InvalidGateway {
                    network: self.id.clone(),
                    gateway: aux.addr().to_string(),
                });
            }
            self.default_gateway_ipv4 = Some(aux.addr());
        }

        if !self.enable_ipv6 {
            return Ok(());
        }
        if let Some(v6) = ipv6.first() {
            let IpNet::V6(pool) = v6.pool else {
                return Err(invalid("the ipv6 pool is not an IPv6 network"));
            };
            let address = match v6.gateway {
                None => pool,
                Some(IpNet::V6(gw)) if pool.contains(&gw.addr()) => {
                    Ipv6Net::new(gw.addr(), pool.prefix_len()).expect("pool prefix")
                }
                Some(_) => return Err(invalid("the ipv6 gateway is outside the pool")),
            };
            self.address_ipv6 = Some(IpNet::V6(address));
            if let Some(aux) = v6.aux_addresses.get(labels::DEFAULT_GATEWAY_V6_AUX) {
                let ok = matches!(aux.addr(), IpAddr::V6(a) if pool.contains(&a));
                if !ok {
                    return Err(Error::InvalidGateway {
                        network: self.id.clone(),
                        gateway: aux.addr().to_string(),
                    });
                }
                self.default_gateway_ipv6 = Some(aux.addr());
            }
        }
        Ok(())
    }

    /// The IPv4 subnet (the bridge address, masked).
    pub fn subnet_v4(&self) -> Option<Ipv4Net> {
        match self.address_ipv4 {
            Some(IpNet::V4(a)) => Some(a.trunc()),
            _ => None,
        }
    }

    /// The IPv6 subnet, when IPv6 is on and a pool was given.
    pub fn subnet_v6(&self) -> Option<Ipv6Net> {
        match self.address_ipv6 {
            Some(IpNet::V6(a)) if self.enable_ipv6 => Some(a.trunc()),
            _ => None,
        }
    }

    /// The bridge's IPv4 address (the containers' default gateway).
    pub fn bridge_ipv4(&self) -> Option<Ipv4Addr> {
        match self.address_ipv4 {
            Some(IpNet::V4(a)) => Some(a.addr()),
            _ => None,
        }
    }

    /// The bridge's IPv6 address.
    pub fn bridge_ipv6(&self) -> Option<Ipv6Addr> {
        match self.address_ipv6 {
            Some(IpNet::V6(a)) if self.enable_ipv6 => Some(a.addr()),
            _ => None,
        }
    }

    /// The prefix of container interface names.
    pub fn container_prefix(&self) -> &str {
        if self.container_iface_prefix.is_empty() {
            DEFAULT_CONTAINER_IFACE_PREFIX
        } else {
            &self.container_iface_prefix
        }
    }

    /// The MTU to set, if any.
    pub fn mtu(&self) -> Option<u32> {
        (self.mtu > 0).then_some(self.mtu)
    }

    /// Why `self` cannot live next to `other` (an existing network of the driver), if it
    /// cannot: same bridge name, or overlapping subnets.
    pub(crate) fn conflict_with(&self, other: &Self) -> Option<Error> {
        if self.bridge_name == other.bridge_name {
            return Some(Error::BridgeNameInUse {
                network: self.id.clone(),
                bridge: self.bridge_name.clone(),
                other: other.id.clone(),
            });
        }
        let overlap = |subnet: String| Error::SubnetOverlap {
            network: self.id.clone(),
            subnet,
            other: other.id.clone(),
        };
        if let (Some(a), Some(b)) = (self.subnet_v4(), other.subnet_v4())
            && (a.contains(&b.network()) || b.contains(&a.network()))
        {
            return Some(overlap(a.to_string()));
        }
        if let (Some(a), Some(b)) = (self.subnet_v6(), other.subnet_v6())
            && (a.contains(&b.network()) || b.contains(&a.network()))
        {
            return Some(overlap(a.to_string()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use libnetwork_driverapi::NetworkOptions;
    use libnetwork_types::ErrorKind;

    use super::*;

    fn pool(pool: &str, gw: &str) -> IpamData {
        IpamData {
            address_space: "LocalDefault".into(),
            pool: pool.parse().unwrap(),
            gateway: Some(gw.parse().unwrap()),
            aux_addresses: BTreeMap::new(),
        }
    }

    fn request(opts: &[(&str, &str)]) -> CreateNetworkRequest {
        CreateNetworkRequest {
            network_id: "0123456789abcdef0123".into(),
            options: NetworkOptions {
                driver_options: opts
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                    .collect(),
                ..Default::default()
            },
            ipv4: vec![pool("172.20.0.0/16", "172.20.0.1/16")],
            ipv6: vec![],
        }
    }

    #[test]
    fn label_form_defaults_turn_icc_and_masquerade_on_and_name_the_bridge_after_the_id() {
        let cfg = NetworkConfig::from_request(&request(&[])).unwrap();
        assert!(cfg.enable_icc && cfg.enable_ip_masquerade);
        assert!(!cfg.internal && !cfg.enable_ipv6 && !cfg.inhibit_ipv4);
        assert_eq!(cfg.bridge_name, "br-0123456789ab");
        assert_eq!(cfg.address_ipv4, Some("172.20.0.1/16".parse().unwrap()));
        assert_eq!(cfg.container_prefix(), "eth");
        assert_eq!(cfg.mtu(), None);
    }

    #[test]
    fn every_libnetwork_option_is_parsed() {
        let cfg = NetworkConfig::from_request(&request(&[
            (labels::BRIDGE_NAME, "mybr"),
            (labels::MTU, "1400"),
            (labels::ENABLE_ICC, "false"),
            (labels::ENABLE_IP_MASQUERADE, "0"),
            (labels::INHIBIT_IPV4, "true"),
            (labels::HOST_BINDING_IPV4, "127.0.0.1"),
            (labels::HOST_IPV4, "192.0.2.7"),
            (labels::CONTAINER_IFACE_PREFIX, "ctr"),
            (labels::INTERNAL, "1"),
        ]))
        .unwrap();
        assert_eq!(cfg.bridge_name, "mybr");
        assert_eq!(cfg.mtu, 1400);
        assert!(!cfg.enable_icc && !cfg.enable_ip_masquerade);
        assert!(cfg.inhibit_ipv4 && cfg.internal);
        assert_eq!(cfg.default_binding_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(cfg.host_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(cfg.container_prefix(), "ctr");
    }

    #[test]
    fn default_bridge_is_named_docker0() {
        let cfg =
            NetworkConfig::from_request(&request(&[(labels::DEFAULT_BRIDGE, "true")])).unwrap();
        assert_eq!(cfg.bridge_name, "docker0");
    }

    #[test]
    fn labels_carry_options_and_driver_options_override_them() {
        let mut req = request(&[(labels::ENABLE_ICC, "true")]);
        req.options.labels = [
            (labels::ENABLE_ICC.to_string(), "false".to_string()),
            (labels::MTU.to_string(), "1450".to_string()),
            ("org.example.unrelated".to_string(), "x".to_string()),
        ]
        .into();
        let cfg = NetworkConfig::from_request(&req).unwrap();
        assert!(cfg.enable_icc);
        assert_eq!(cfg.mtu, 1450);
    }

    #[test]
    fn unknown_bridge_options_are_bad_requests() {
        let err =
            NetworkConfig::from_request(&request(&[("com.docker.network.bridge.bogus", "1")]))
                .unwrap_err();
        assert!(matches!(err, Error::UnknownOption(_)));
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        // Keys of other drivers are not ours to refuse.
        NetworkConfig::from_request(&request(&[("com.docker.network.driver.overlay.x", "1")]))
            .unwrap();
    }

    #[test]
    fn invalid_mtus_are_bad_requests() {
        for bad in ["-1", "10", "67", "65536", "abc"] {
            let err = NetworkConfig::from_request(&request(&[(labels::MTU, bad)])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{bad}: {err}");
        }
        assert_eq!(
            NetworkConfig::from_request(&request(&[(labels::MTU, "0")]))
                .unwrap()
                .mtu,
            0
        );
    }

    #[test]
    fn malformed_values_are_bad_requests() {
        for (k, v) in [
            (labels::ENABLE_ICC, "maybe"),
            (labels::HOST_BINDING_IPV4, "not-an-ip"),
            (labels::HOST_IPV4, "::1"),
            (labels::BRIDGE_NAME, "much-too-long-bridge-name"),
            (labels::BRIDGE_NAME, "a/b"),
            (labels::CONTAINER_IFACE_PREFIX, "0123456789abcd"),
        ] {
            let err = NetworkConfig::from_request(&request(&[(k, v)])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{k}={v}: {err}");
        }
    }

    #[test]
    fn top_level_ipv6_and_internal_override_labels() {
        let mut req = request(&[(labels::ENABLE_IPV6, "false")]);
        req.options.enable_ipv6 = true;
        req.options.internal = true;
        req.ipv6 = vec![pool("fd00:1::/64", "fd00:1::1/64")];
        let cfg = NetworkConfig::from_request(&req).unwrap();
        assert!(cfg.enable_ipv6 && cfg.internal);
        assert_eq!(cfg.address_ipv6, Some("fd00:1::1/64".parse().unwrap()));
        assert_eq!(cfg.subnet_v6(), Some("fd00:1::/64".parse().unwrap()));
    }

    #[test]
    fn ipam_data_is_checked() {
        let mut req = request(&[]);
        req.ipv4.clear();
        assert_eq!(
            NetworkConfig::from_request(&req).unwrap_err().kind(),
            ErrorKind::BadRequest
        );
        req.ipv4 = vec![pool("0.0.0.0/0", "0.0.0.1/0")];
        assert!(
            NetworkConfig::from_request(&req)
                .unwrap_err()
                .to_string()
                .contains("ipv4 pool is empty")
        );
        req.ipv4 = vec![
            pool("172.20.0.0/16", "172.20.0.1/16"),
            pool("172.21.0.0/16", "172.21.0.1/16"),
        ];
        assert_eq!(
            NetworkConfig::from_request(&req).unwrap_err().kind(),
            ErrorKind::Forbidden
        );
        req.ipv4 = vec![pool("172.20.0.0/16", "172.30.0.1/16")];
        assert_eq!(
            NetworkConfig::from_request(&req).unwrap_err().kind(),
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn default_gateways_must_lie_in_the_subnet() {
        let mut req = request(&[]);
        req.ipv4[0].aux_addresses.insert(
            labels::DEFAULT_GATEWAY_V4_AUX.into(),
            "172.20.0.254/16".parse().unwrap(),
        );
        let cfg = NetworkConfig::from_request(&req).unwrap();
        assert_eq!(
            cfg.default_gateway_ipv4,
            Some("172.20.0.254".parse().unwrap())
        );
        req.ipv4[0].aux_addresses.insert(
            labels::DEFAULT_GATEWAY_V4_AUX.into(),
            "10.0.0.1/8".parse().unwrap(),
        );
        let err = NetworkConfig::from_request(&req).unwrap_err();
        assert!(matches!(err, Error::InvalidGateway { .. }), "{err}");
    }

    #[test]
    fn same_bridge_name_or_overlapping_subnets_conflict() {
        let a = NetworkConfig::from_request(&request(&[(labels::BRIDGE_NAME, "b0")])).unwrap();
        let mut req = request(&[(labels::BRIDGE_NAME, "b0")]);
        req.network_id = "other".into();
        req.ipv4 = vec![pool("10.9.0.0/16", "10.9.0.1/16")];
        let b = NetworkConfig::from_request(&req).unwrap();
        let err = b.conflict_with(&a).unwrap();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        req.options.driver_options.clear();
        req.ipv4 = vec![pool("172.20.128.0/17", "172.20.128.1/17")];
        let c = NetworkConfig::from_request(&req).unwrap();
        assert!(matches!(
            c.conflict_with(&a),
            Some(Error::SubnetOverlap { .. })
        ));
        req.ipv4 = vec![pool("10.9.0.0/16", "10.9.0.1/16")];
        let d = NetworkConfig::from_request(&req).unwrap();
        assert!(d.conflict_with(&a).is_none());
    }

    #[test]
    fn network_config_json_uses_libnetwork_field_names() {
        let cfg = NetworkConfig::from_request(&request(&[])).unwrap();
        let json = serde_json::to_value(&cfg).unwrap();
        for key in [
            "ID",
            "BridgeName",
            "EnableIPv6",
            "EnableIPMasquerade",
            "EnableICC",
            "InhibitIPv4",
            "Mtu",
            "Internal",
            "DefaultBridge",
            "DefaultBindingIP",
            "HostIP",
            "DefaultGatewayIPv4",
            "DefaultGatewayIPv6",
            "ContainerIfacePrefix",
            "BridgeIfaceCreator",
            "AddressIPv4",
            "AddressIPv6",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["AddressIPv4"], "172.20.0.1/16");
        assert_eq!(json["AddressIPv6"], "");
        assert_eq!(serde_json::from_value::<NetworkConfig>(json).unwrap(), cfg);
    }
}
