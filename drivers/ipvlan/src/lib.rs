//! The ipvlan network driver (libnetwork's `drivers/ipvlan`).
//!
//! An ipvlan network sits on a parent interface of the host (`-o parent=eth0`); each joined
//! endpoint is an ipvlan link on that parent, living in the container's sandbox and sharing
//! the parent's MAC address. In L2 mode endpoints switch by MAC and use the subnet's gateway on
//! the parent's wire; in L3 and L3S modes the parent routes by IP address, with no ARP, and
//! endpoints get default routes straight out of their interface.
//!
//! The driver is the engine of `libnetwork-driver-macvlan` ([`StackedDriver`]) with the
//! [`Ipvlan`] flavor: everything but the points below behaves as the macvlan driver does (the
//! parent rules, `<link>.<vlan id>` sub-interfaces, one network per parent, persistence and
//! restore, the interface born inside the sandbox), and is documented there.
//!
//! # Mapping to libnetwork
//! - Options: `parent`, `ipvlan_mode` (`l2` by default, `l3`, `l3s`), `ipvlan_flag`
//!   (`bridge` by default, `private`, `vepa`), `com.docker.network.internal`. Unknown modes
//!   and flags are refused.
//! - No parent: the network's own parent is `di-<12 chars of the id>` and the network is
//!   internal.
//! - Endpoints may not ask for a MAC address ("ipvlan interfaces do not support custom mac
//!   address assignment"): they have the parent's.
//! - Join in L3/L3S: no gateway, the gateway service disabled, and connected default routes
//!   `0.0.0.0/0` (and `::/0` for an endpoint with an IPv6 address) on the interface; in L2:
//!   the gateway of the subnet holding the endpoint's address.
//! - Persistence: `docker/network/v1.0/ipvlan/network/<nid>/` (`IpvlanMode`, `IpvlanFlag`; a
//!   record without `IpvlanFlag` reads as `bridge`) and `docker/network/v1.0/ipvlan/endpoint/
//!   <eid>/`.
//! - Capability: data scope local, connectivity scope global.
//!
//! # Layout
//! - this file: the [`Ipvlan`] flavor, its [`IpvlanOptions`] and [`IpvlanDriver`]; errors
//!   are the shared [`Error`].
//!
//! # Design decisions
//! - **`l3s` and flags** come from libnetwork's successor in moby (the reference snapshot has
//!   `l2` and `l3` only); their names and stored keys follow it.
//! - **Internal networks get no routes** in L3 modes either (libnetwork's snapshot adds the
//!   default routes whatever `--internal` says), so an internal network leads nowhere.
//! - **This machine's kernel has no ipvlan**: creating an interface fails with
//!   [`Error::UnsupportedLinkType`] (kind Unavailable), the join changes nothing, and the
//!   kernel tests say so and skip; the requests are checked down to their netlink attributes.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use libnetwork_driver_macvlan::config::{invalid_option, named_string, parse_named};
use libnetwork_osl::{IpvlanFlag, IpvlanMode, LinkKind};
use serde::{Deserialize, Serialize};

pub use libnetwork_driver_macvlan::config::PARENT_OPTION;
pub use libnetwork_driver_macvlan::{Error, Flavor, NetworkConfig, Result, StackedDriver};

/// The driver's type name.
pub const DRIVER_TYPE: &str = "ipvlan";

/// Option key of the ipvlan mode.
pub const MODE_OPTION: &str = "ipvlan_mode";

/// Option key of the ipvlan flag.
pub const FLAG_OPTION: &str = "ipvlan_flag";

/// Prefix of the dummy parent of a network without one.
pub const DUMMY_PREFIX: &str = "di-";

/// The ipvlan flavor of [`StackedDriver`].
#[derive(Debug)]
pub enum Ipvlan {}

/// The mode settings of an ipvlan network (stored as `IpvlanMode` and `IpvlanFlag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvlanOptions {
    /// The ipvlan mode.
    #[serde(rename = "IpvlanMode", with = "named_string")]
    pub mode: IpvlanMode,
    /// The ipvlan flag; `bridge` when a stored record has none.
    #[serde(rename = "IpvlanFlag", with = "named_string", default = "default_flag")]
    pub flag: IpvlanFlag,
}

fn default_flag() -> IpvlanFlag {
    IpvlanFlag::Bridge
}

impl Flavor for Ipvlan {
    type Mode = IpvlanOptions;
    const DRIVER_TYPE: &'static str = DRIVER_TYPE;
    const DUMMY_PREFIX: &'static str = DUMMY_PREFIX;
    const OWN_MAC: bool = false;

    fn parse_mode(options: &BTreeMap<&str, &str>) -> Result<IpvlanOptions> {
        let refuse = |key: &str, valid: &str| {
            let value = options.get(key).copied().unwrap_or_default();
            invalid_option(key, value, valid)
        };
        let mode = parse_named(options, MODE_OPTION, IpvlanMode::L2).map_err(|_| {
            refuse(
                MODE_OPTION,
                "not an ipvlan mode (l2, the default, l3 or l3s)",
            )
        })?;
        let flag = parse_named(options, FLAG_OPTION, IpvlanFlag::Bridge).map_err(|_| {
            refuse(
                FLAG_OPTION,
                "not an ipvlan flag (bridge, the default, private or vepa)",
            )
        })?;
        Ok(IpvlanOptions { mode, flag })
    }

    fn link_kind(mode: &IpvlanOptions, parent: u32) -> LinkKind {
        LinkKind::Ipvlan {
            parent,
            mode: mode.mode,
            flag: mode.flag,
        }
    }

    fn routes_via_interface(mode: &IpvlanOptions) -> bool {
        matches!(mode.mode, IpvlanMode::L3 | IpvlanMode::L3s)
    }
}

/// The ipvlan driver.
pub type IpvlanDriver = StackedDriver<Ipvlan>;

#[cfg(test)]
mod tests {
    use libnetwork_driver_macvlan::engine::join_routes;
    use libnetwork_driverapi::{CreateNetworkRequest, IpamData, NetworkOptions, RouteType};
    use libnetwork_osl::link_kinds::new_link_message;
    use libnetwork_types::ErrorKind;
    use netlink_packet_route::link::{
        InfoData, InfoIpVlan, InfoKind, IpVlanFlags, IpVlanMode, LinkAttribute, LinkInfo,
    };

    use super::*;

    fn options<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn mode_defaults_to_l2_bridge_and_unknown_values_are_refused() {
        let opts = Ipvlan::parse_mode(&options(&[])).unwrap();
        assert_eq!((opts.mode, opts.flag), (IpvlanMode::L2, IpvlanFlag::Bridge));
        let opts =
            Ipvlan::parse_mode(&options(&[(MODE_OPTION, "l3s"), (FLAG_OPTION, "vepa")])).unwrap();
        assert_eq!((opts.mode, opts.flag), (IpvlanMode::L3s, IpvlanFlag::Vepa));

        let err = Ipvlan::parse_mode(&options(&[(MODE_OPTION, "bridge")])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert_eq!(
            err.to_string(),
            "parse option ipvlan_mode=\"bridge\": not an ipvlan mode (l2, the default, l3 or l3s)"
        );
        let err = Ipvlan::parse_mode(&options(&[(FLAG_OPTION, "l2")])).unwrap_err();
        assert!(err.to_string().contains("not an ipvlan flag"), "{err}");
    }

    #[test]
    fn join_request_is_an_ipvlan_on_the_parent_index_with_mode_and_flag() {
        let cases = [
            ("l2", "bridge", IpVlanMode::L2, 0u16),
            ("l3", "private", IpVlanMode::L3, 1),
            ("l3s", "vepa", IpVlanMode::L3S, 2),
        ];
        for (mode, flag, kernel_mode, kernel_flags) in cases {
            let opts =
                Ipvlan::parse_mode(&options(&[(MODE_OPTION, mode), (FLAG_OPTION, flag)])).unwrap();
            let msg = new_link_message("eth0", &Ipvlan::link_kind(&opts, 21), None);
            let parent = msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::Link(i) => Some(*i),
                _ => None,
            });
            assert_eq!(parent, Some(21));
            let info = msg
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::LinkInfo(i) => Some(i.clone()),
                    _ => None,
                })
                .expect("IFLA_LINKINFO");
            assert!(info.contains(&LinkInfo::Kind(InfoKind::IpVlan)), "{info:?}");
            assert!(
                info.contains(&LinkInfo::Data(InfoData::IpVlan(vec![
                    InfoIpVlan::Mode(kernel_mode),
                    InfoIpVlan::Flags(IpVlanFlags::from_bits_retain(kernel_flags)),
                ]))),
                "{mode}/{flag}: {info:?}"
            );
        }
    }

    #[test]
    fn l3_modes_route_through_the_interface_and_l2_through_the_gateway() {
        let request = CreateNetworkRequest {
            network_id: "n".into(),
            options: NetworkOptions {
                driver_options: [("parent".to_string(), "eth0".to_string())].into(),
                ..NetworkOptions::default()
            },
            ipv4: vec![IpamData {
                address_space: "LocalDefault".into(),
                pool: "10.9.0.0/24".parse().unwrap(),
                gateway: Some("10.9.0.1/24".parse().unwrap()),
                aux_addresses: BTreeMap::new(),
            }],
            ipv6: Vec::new(),
        };
        let addr = Some("10.9.0.2/24".parse().unwrap());
        for (mode, via) in [("l2", false), ("l3", true), ("l3s", true)] {
            let opts = Ipvlan::parse_mode(&options(&[(MODE_OPTION, mode)])).unwrap();
            assert_eq!(Ipvlan::routes_via_interface(&opts), via, "{mode}");
            let cfg = NetworkConfig::from_request(&request, DUMMY_PREFIX, opts).unwrap();
            let info =
                join_routes(&cfg, "e", addr, None, Ipvlan::routes_via_interface(&opts)).unwrap();
            if via {
                assert_eq!(info.gateway, None);
                assert!(info.disable_gateway_service);
                assert_eq!(info.static_routes.len(), 1);
                assert_eq!(info.static_routes[0].route_type, RouteType::Connected);
            } else {
                assert_eq!(info.gateway, Some("10.9.0.1".parse().unwrap()));
                assert!(info.static_routes.is_empty());
            }
        }
    }

    #[test]
    fn network_without_parent_gets_a_di_parent() {
        let request = CreateNetworkRequest {
            network_id: "abcdef0123456789".into(),
            options: NetworkOptions::default(),
            ipv4: vec![IpamData {
                address_space: "LocalDefault".into(),
                pool: "10.9.0.0/24".parse().unwrap(),
                gateway: None,
                aux_addresses: BTreeMap::new(),
            }],
            ipv6: Vec::new(),
        };
        let opts = Ipvlan::parse_mode(&options(&[])).unwrap();
        let cfg = NetworkConfig::from_request(&request, Ipvlan::DUMMY_PREFIX, opts).unwrap();
        assert_eq!(cfg.parent, "di-abcdef012345");
        assert!(cfg.internal);
    }

    #[test]
    fn mode_and_flag_are_stored_under_libnetwork_keys() {
        let opts = IpvlanOptions {
            mode: IpvlanMode::L3,
            flag: IpvlanFlag::Private,
        };
        let json = serde_json::to_value(opts).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"IpvlanMode": "l3", "IpvlanFlag": "private"})
        );
        assert_eq!(serde_json::from_value::<IpvlanOptions>(json).unwrap(), opts);
        // A record written before flags existed reads as bridge.
        let old: IpvlanOptions =
            serde_json::from_value(serde_json::json!({"IpvlanMode": "l2"})).unwrap();
        assert_eq!(old.flag, IpvlanFlag::Bridge);
    }
}
