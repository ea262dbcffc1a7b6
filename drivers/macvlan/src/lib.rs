//! The macvlan network driver (libnetwork's `drivers/macvlan`), and the engine it shares with
//! the ipvlan driver (`libnetwork-driver-ipvlan`).
//!
//! A macvlan network sits on a parent interface of the host (`-o parent=eth0`); each joined
//! endpoint is a macvlan link on that parent, with its own MAC address, living in the
//! container's sandbox. Endpoints of one network reach each other (in `bridge` mode) and the
//! parent's wire, where the network's gateway is expected; the driver programs no firewall and
//! publishes no ports.
//!
//! # Mapping to libnetwork
//! - Options: `parent` (a host link; `<link>.<vlan id>` makes an 802.1Q sub-interface when it
//!   does not exist), `macvlan_mode` (`bridge` by default, `private`, `vepa`, `passthru`),
//!   `com.docker.network.internal` (no gateway), plus `com.docker.network.driver.mtu` and
//!   `com.docker.network.container_iface_prefix`. An unknown mode is refused, `lo` as parent is
//!   refused, a missing or null IPv4 pool is refused ("ipv4 pool is empty"); other options are
//!   ignored, as libnetwork does.
//! - No parent: the network gets a parent of its own, `dm-<12 chars of the id>` (a dummy link),
//!   and is internal. The driver deletes only parents it made (`CreatedSubIface`).
//! - One network per parent: a second network on a parent is refused ("network … is already
//!   using parent interface …"); the same network id on the same parent is libnetwork's
//!   "restoring existing network", which changes nothing.
//! - Endpoints need an IPv4 address in one of the network's subnets; the MAC is the one given
//!   or `02:42` + the IPv4 address. Port mappings and exposed ports only log a warning.
//!   Join makes the macvlan link with the network's mode and reports the gateway of the
//!   subnet holding the endpoint's address (same prefix length), none on internal networks.
//! - Persistence: `docker/network/v1.0/macvlan/network/<nid>/` and
//!   `docker/network/v1.0/macvlan/endpoint/<eid>/`, with libnetwork's field names (`ID`,
//!   `Mtu`, `Parent`, `MacvlanMode`, `Internal`, `CreatedSubIface`, `Ipv4Subnets` and
//!   `Ipv6Subnets` as JSON strings; `id`, `nid`, `SrcName`, `MacAddress`, `Addr`, `Addrv6`).
//!   A new driver on the same store restores networks and endpoints.
//! - Capability: data scope local, connectivity scope global.
//!
//! # Layout
//! - [`error`]: [`Error`] (shared with the ipvlan driver) and its kinds.
//! - [`config`]: [`NetworkConfig`] and option parsing, the parent rules, the JSON form.
//! - [`store`]: the network and endpoint records and the store access.
//! - [`engine`]: [`StackedDriver`], generic over a [`Flavor`]; the driver contract.
//! - this file: the [`Macvlan`] flavor and [`MacvlanDriver`].
//!
//! # Design decisions
//! - **One engine, two flavors.** libnetwork keeps two near-identical copies of this code; here
//!   the ipvlan crate supplies an ipvlan [`Flavor`] (link kind, modes, `di-` dummy prefix, no
//!   own MAC, L3 default routes) to the same [`StackedDriver`].
//! - **The interface is born inside the sandbox.** Join creates the macvlan link directly in
//!   the sandbox's namespace (`IFLA_NET_NS_FD`, through
//!   [`libnetwork_osl::Sandbox::create_interface`]) with its MAC, MTU and addresses set, and
//!   answers [`libnetwork_driverapi::JoinInterface::InSandbox`]: no 11-27 ms namespace move.
//!   The endpoint record keeps where the interface is (sandbox key, namespace inode, index,
//!   name), so a leave, also after a restart, finds it by opening the sandbox's namespace,
//!   takes it down at once and deletes it in the background ([`StackedDriver::settle`] waits
//!   for those deletions). A sandbox destroyed before the leave took its interface with it.
//! - **A bridge stands in for the dummy parent** on kernels without dummy links (as on our test
//!   machines): an empty bridge leads nowhere either, and macvlan links on it reach each other.
//!   The driver tries a dummy first, as libnetwork does, and deletes either kind at network
//!   deletion.
//! - **Differences from libnetwork, on purpose.** Addresses are checked against the network's
//!   subnets at endpoint creation (libnetwork finds out at join). The parent-in-use error names
//!   the other network (libnetwork names its dummy link). An MTU above the parent's is refused
//!   at network creation. A network whose parent cannot be made again at restore is kept
//!   (libnetwork drops it). A same-id network asked for again is not an error (libnetwork's
//!   maskable error, which the controller ignores).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use libnetwork_osl::{LinkKind, MacvlanMode};
use serde::{Deserialize, Serialize};

pub mod config;
pub mod engine;
pub mod error;
pub mod store;

pub use config::NetworkConfig;
pub use engine::{Flavor, StackedDriver};
pub use error::{Error, Result};

/// The driver's type name.
pub const DRIVER_TYPE: &str = "macvlan";

/// Option key of the macvlan mode.
pub const MODE_OPTION: &str = "macvlan_mode";

/// Prefix of the dummy parent of a network without one.
pub const DUMMY_PREFIX: &str = "dm-";

/// The macvlan flavor of [`StackedDriver`].
#[derive(Debug)]
pub enum Macvlan {}

/// The mode settings of a macvlan network (stored as `MacvlanMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacvlanOptions {
    /// The macvlan mode.
    #[serde(rename = "MacvlanMode", with = "config::named_string")]
    pub mode: MacvlanMode,
}

impl Flavor for Macvlan {
    type Mode = MacvlanOptions;
    const DRIVER_TYPE: &'static str = DRIVER_TYPE;
    const DUMMY_PREFIX: &'static str = DUMMY_PREFIX;
    const OWN_MAC: bool = true;

    fn parse_mode(options: &BTreeMap<&str, &str>) -> Result<MacvlanOptions> {
        let mode =
            config::parse_named(options, MODE_OPTION, MacvlanMode::Bridge).map_err(|_| {
                let value = options.get(MODE_OPTION).copied().unwrap_or_default();
                config::invalid_option(
                    MODE_OPTION,
                    value,
                    "not a macvlan mode (bridge, the default, private, vepa or passthru)",
                )
            })?;
        Ok(MacvlanOptions { mode })
    }

    fn link_kind(mode: &MacvlanOptions, parent: u32) -> LinkKind {
        LinkKind::Macvlan {
            parent,
            mode: mode.mode,
        }
    }

    fn routes_via_interface(_: &MacvlanOptions) -> bool {
        false
    }
}

/// The macvlan driver.
pub type MacvlanDriver = StackedDriver<Macvlan>;

#[cfg(test)]
mod tests {
    use netlink_packet_route::link::{
        InfoData, InfoKind, InfoMacVlan, InfoVlan, LinkAttribute, LinkInfo, LinkMessage,
        MacVlanMode,
    };

    use super::*;
    use crate::config::vlan_link_kind;
    use libnetwork_osl::link_kinds::new_link_message;

    fn options(mode: Option<&str>) -> BTreeMap<&str, &str> {
        mode.map(|m| (MODE_OPTION, m)).into_iter().collect()
    }

    fn link_info(msg: &LinkMessage) -> &[LinkInfo] {
        msg.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i.as_slice()),
                _ => None,
            })
            .expect("IFLA_LINKINFO")
    }

    fn parent_index(msg: &LinkMessage) -> Option<u32> {
        msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::Link(i) => Some(*i),
            _ => None,
        })
    }

    #[test]
    fn macvlan_mode_defaults_to_bridge_and_unknown_modes_are_refused() {
        assert_eq!(
            Macvlan::parse_mode(&options(None)).unwrap().mode,
            MacvlanMode::Bridge
        );
        assert_eq!(
            Macvlan::parse_mode(&options(Some(""))).unwrap().mode,
            MacvlanMode::Bridge
        );
        for (name, mode) in [
            ("bridge", MacvlanMode::Bridge),
            ("private", MacvlanMode::Private),
            ("vepa", MacvlanMode::Vepa),
            ("passthru", MacvlanMode::Passthru),
        ] {
            assert_eq!(
                Macvlan::parse_mode(&options(Some(name))).unwrap().mode,
                mode
            );
        }
        let err = Macvlan::parse_mode(&options(Some("source"))).unwrap_err();
        assert_eq!(err.kind(), libnetwork_types::ErrorKind::BadRequest);
        assert_eq!(
            err.to_string(),
            "parse option macvlan_mode=\"source\": not a macvlan mode (bridge, the default, \
             private, vepa or passthru)"
        );
    }

    #[test]
    fn join_request_is_a_macvlan_on_the_parent_index_with_the_network_mode() {
        let expected = [
            ("bridge", MacVlanMode::Bridge),
            ("private", MacVlanMode::Private),
            ("vepa", MacVlanMode::Vepa),
            ("passthru", MacVlanMode::Passthrough),
        ];
        for (name, kernel_mode) in expected {
            let mode = Macvlan::parse_mode(&options(Some(name))).unwrap();
            let msg = new_link_message("eth0", &Macvlan::link_kind(&mode, 12), None);
            assert_eq!(parent_index(&msg), Some(12));
            let info = link_info(&msg);
            assert!(
                info.contains(&LinkInfo::Kind(InfoKind::MacVlan)),
                "{info:?}"
            );
            assert!(
                info.contains(&LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                    kernel_mode
                )]))),
                "{name}: {info:?}"
            );
        }
    }

    #[test]
    fn vlan_parent_request_is_an_8021q_link_with_the_id_of_its_name() {
        let kind = vlan_link_kind("eth0.10", 3).unwrap();
        let msg = new_link_message("eth0.10", &kind, None);
        assert_eq!(parent_index(&msg), Some(3));
        let info = link_info(&msg);
        assert!(info.contains(&LinkInfo::Kind(InfoKind::Vlan)));
        assert!(info.contains(&LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(10)]))));
        assert!(vlan_link_kind("eth0.4095", 3).is_err());
        assert!(vlan_link_kind("eth0", 3).is_err());
    }

    #[test]
    fn mode_is_stored_under_libnetwork_key() {
        let opts = MacvlanOptions {
            mode: MacvlanMode::Vepa,
        };
        let json = serde_json::to_value(opts).unwrap();
        assert_eq!(json, serde_json::json!({"MacvlanMode": "vepa"}));
        assert_eq!(
            serde_json::from_value::<MacvlanOptions>(json).unwrap(),
            opts
        );
        assert!(
            serde_json::from_value::<MacvlanOptions>(serde_json::json!({"MacvlanMode": "x"}))
                .is_err()
        );
    }
}
