//! Links stacked on a parent and standalone virtual links (`ip link add link PARENT NAME type
//! macvlan|ipvlan|vlan ...`, `ip link add NAME type dummy`): their kinds and modes, the pure
//! builder of the `RTM_NEWLINK` request that creates one ([`new_link_message`]), its reverse
//! ([`LinkKind::from_message`]), and the [`NetlinkHandle`] calls that send and read them.
//!
//! A macvlan or ipvlan link may be created directly inside another namespace while its parent
//! stays here: the request goes to this namespace's socket (the parent index is looked up
//! here) and carries `IFLA_NET_NS_FD` for the namespace the new link is born in, which costs
//! the kernel far less than creating the link here and moving it (see
//! [`Sandbox::create_interface`](crate::Sandbox::create_interface)).

use std::fmt;
use std::io;
use std::str::FromStr;

use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVlan, IpVlanFlags, IpVlanMode, LinkAttribute,
    LinkInfo, LinkMessage, MacVlanMode,
};

use crate::error::{Error, Result};
use crate::handle::{CREATE_EXCL, NetlinkHandle};
use crate::link::Link;
use crate::netns::Netns;

/// How macvlan links on one parent reach each other (`ip link add ... type macvlan mode
/// MODE`); the names are iproute2's and libnetwork's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacvlanMode {
    /// `private`: no traffic between macvlans of the parent, even reflected by the switch.
    Private,
    /// `vepa`: traffic between macvlans goes out to the switch and must come back from it.
    Vepa,
    /// `bridge`: macvlans of the parent reach each other directly (libnetwork's default).
    Bridge,
    /// `passthru`: the one macvlan of the parent takes the parent over.
    Passthru,
}

/// How ipvlan links handle traffic (`ip link add ... type ipvlan mode MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvlanMode {
    /// `l2`: switching by MAC (the parent's), ARP works (libnetwork's default).
    L2,
    /// `l3`: routing by IP address, no ARP or broadcast.
    L3,
    /// `l3s`: like `l3`, with the traffic passing the host's netfilter hooks.
    L3s,
}

/// How ipvlan links of one parent reach each other (`ip link add ... type ipvlan mode MODE
/// FLAG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvlanFlag {
    /// `bridge`: directly (the default, no flag bit).
    Bridge,
    /// `private`: not at all.
    Private,
    /// `vepa`: through the switch the parent is connected to.
    Vepa,
}

/// The error of parsing a mode or flag name: the name, and what was being parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What was being parsed (`macvlan mode`, `ipvlan mode`, `ipvlan flag`).
    pub what: &'static str,
    /// The name given.
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

/// Implements `as_str`, `Display` and `FromStr` with the given names.
macro_rules! named {
    ($ty:ident, $what:literal, $($variant:ident => $name:literal),+ $(,)?) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The name iproute2 and libnetwork use for it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            fn from_str(s: &str) -> std::result::Result<Self, UnknownName> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(UnknownName { what: $what, name: s.to_string() }),
                }
            }
        }
    };
}

named!(MacvlanMode, "macvlan mode",
    Private => "private", Vepa => "vepa", Bridge => "bridge", Passthru => "passthru");
named!(IpvlanMode, "ipvlan mode", L2 => "l2", L3 => "l3", L3s => "l3s");
named!(IpvlanFlag, "ipvlan flag", Bridge => "bridge", Private => "private", Vepa => "vepa");

impl MacvlanMode {
    fn to_netlink(self) -> MacVlanMode {
        match self {
            Self::Private => MacVlanMode::Private,
            Self::Vepa => MacVlanMode::Vepa,
            Self::Bridge => MacVlanMode::Bridge,
            Self::Passthru => MacVlanMode::Passthrough,
        }
    }

    fn from_netlink(mode: MacVlanMode) -> Option<Self> {
        match mode {
            MacVlanMode::Private => Some(Self::Private),
            MacVlanMode::Vepa => Some(Self::Vepa),
            MacVlanMode::Bridge => Some(Self::Bridge),
            MacVlanMode::Passthrough => Some(Self::Passthru),
            _ => None,
        }
    }
}

impl IpvlanMode {
    fn to_netlink(self) -> IpVlanMode {
        match self {
            Self::L2 => IpVlanMode::L2,
            Self::L3 => IpVlanMode::L3,
            Self::L3s => IpVlanMode::L3S,
        }
    }

    fn from_netlink(mode: IpVlanMode) -> Option<Self> {
        match mode {
            IpVlanMode::L2 => Some(Self::L2),
            IpVlanMode::L3 => Some(Self::L3),
            IpVlanMode::L3S => Some(Self::L3s),
            _ => None,
        }
    }
}

impl IpvlanFlag {
    fn to_netlink(self) -> IpVlanFlags {
        match self {
            Self::Bridge => IpVlanFlags::empty(),
            Self::Private => IpVlanFlags::Private,
            Self::Vepa => IpVlanFlags::Vepa,
        }
    }

    fn from_netlink(flags: IpVlanFlags) -> Option<Self> {
        if flags.is_empty() {
            Some(Self::Bridge)
        } else if flags == IpVlanFlags::Private {
            Some(Self::Private)
        } else if flags == IpVlanFlags::Vepa {
            Some(Self::Vepa)
        } else {
            None
        }
    }
}

/// The lowest and highest 802.1Q VLAN ids a sub-interface may have.
pub const VLAN_ID_RANGE: std::ops::RangeInclusive<u16> = 1..=4094;

/// A kind of link this module creates, with its settings; `parent` is the index of the parent
/// link in the namespace the request is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A macvlan on `parent`: `type macvlan mode MODE`.
    Macvlan {
        /// The parent's index.
        parent: u32,
        /// The mode.
        mode: MacvlanMode,
    },
    /// An ipvlan on `parent`: `type ipvlan mode MODE FLAG`.
    Ipvlan {
        /// The parent's index.
        parent: u32,
        /// The mode.
        mode: IpvlanMode,
        /// The flag.
        flag: IpvlanFlag,
    },
    /// An 802.1Q sub-interface of `parent`: `type vlan id ID`.
    Vlan {
        /// The parent's index.
        parent: u32,
        /// The VLAN id (see [`VLAN_ID_RANGE`]).
        id: u16,
    },
    /// A dummy link (no parent): `type dummy`.
    Dummy,
}

impl LinkKind {
    /// The kernel's name of the kind (`macvlan`, `ipvlan`, `vlan`, `dummy`), as in
    /// [`Link::kind`].
    pub fn name(&self) -> &'static str {
        match self {
            Self::Macvlan { .. } => "macvlan",
            Self::Ipvlan { .. } => "ipvlan",
            Self::Vlan { .. } => "vlan",
            Self::Dummy => "dummy",
        }
    }

    /// The parent's index, for stacked kinds.
    pub fn parent(&self) -> Option<u32> {
        match self {
            Self::Macvlan { parent, .. }
            | Self::Ipvlan { parent, .. }
            | Self::Vlan { parent, .. } => Some(*parent),
            Self::Dummy => None,
        }
    }

    /// Reads the kind and settings of a link from a `RTM_NEWLINK` message (an answer to `ip
    /// -d link show`); `None` for other kinds, or when a setting is missing or unknown. For a
    /// link whose parent lives in another namespace, `parent` is the index over there.
    pub fn from_message(msg: &LinkMessage) -> Option<Self> {
        let mut parent = None;
        let mut kind = None;
        let mut data = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::Link(index) => parent = Some(*index),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(k) => kind = Some(k),
                            LinkInfo::Data(d) => data = Some(d),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        match (kind?, data) {
            (InfoKind::Dummy, _) => Some(Self::Dummy),
            (InfoKind::MacVlan, Some(InfoData::MacVlan(infos))) => {
                let mode = infos.iter().find_map(|i| match i {
                    InfoMacVlan::Mode(m) => MacvlanMode::from_netlink(*m),
                    _ => None,
                })?;
                Some(Self::Macvlan {
                    parent: parent?,
                    mode,
                })
            }
            (InfoKind::IpVlan, Some(InfoData::IpVlan(infos))) => {
                let mut mode = None;
                let mut flag = IpvlanFlag::Bridge;
                for info in infos {
                    match info {
                        InfoIpVlan::Mode(m) => mode = IpvlanMode::from_netlink(*m),
                        InfoIpVlan::Flags(f) => flag = IpvlanFlag::from_netlink(*f)?,
                        _ => {}
                    }
                }
                Some(Self::Ipvlan {
                    parent: parent?,
                    mode: mode?,
                    flag,
                })
            }
            (InfoKind::Vlan, Some(InfoData::Vlan(infos))) => {
                let id = infos.iter().find_map(|i| match i {
                    InfoVlan::Id(id) => Some(*id),
                    _ => None,
                })?;
                Some(Self::Vlan {
                    parent: parent?,
                    id,
                })
            }
            _ => None,
        }
    }
}

/// Builds the `RTM_NEWLINK` request that creates the link `name` of `kind`, born inside
/// `netns` when given (`IFLA_NET_NS_FD`), else in the namespace of the socket it is sent to.
/// Pure: nothing is sent.
pub fn new_link_message(name: &str, kind: &LinkKind, netns: Option<&Netns>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    if let Some(parent) = kind.parent() {
        msg.attributes.push(LinkAttribute::Link(parent));
    }
    let info = match *kind {
        LinkKind::Macvlan { mode, .. } => vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                mode.to_netlink(),
            )])),
        ],
        LinkKind::Ipvlan { mode, flag, .. } => vec![
            LinkInfo::Kind(InfoKind::IpVlan),
            LinkInfo::Data(InfoData::IpVlan(vec![
                InfoIpVlan::Mode(mode.to_netlink()),
                InfoIpVlan::Flags(flag.to_netlink()),
            ])),
        ],
        LinkKind::Vlan { id, .. } => vec![
            LinkInfo::Kind(InfoKind::Vlan),
            LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(id)])),
        ],
        LinkKind::Dummy => vec![LinkInfo::Kind(InfoKind::Dummy)],
    };
    msg.attributes.push(LinkAttribute::LinkInfo(info));
    if let Some(ns) = netns {
        msg.attributes.push(LinkAttribute::NetNsFd(ns.raw_fd()));
    }
    msg
}

/// Whether the kernel refused to create a link because it does not know its type (`EOPNOTSUPP`,
/// which `ip` reports as "Unknown device type": the kind is not built into this kernel and no
/// module can be loaded for it).
pub fn is_unsupported_link_type(e: &Error) -> bool {
    e.raw_os_error() == Some(nix::libc::EOPNOTSUPP)
}

impl NetlinkHandle {
    /// Creates the link `name` of `kind`, down: `ip link add [link PARENT] NAME [netns NS] type
    /// KIND ...`. With `netns` the link is born inside that namespace (its parent, if any, is
    /// looked up in this handle's namespace); it can then only be looked up from there.
    ///
    /// # Errors
    /// [`Error::Netlink`] when the kernel refuses: `EEXIST` (conflict) when the name is taken
    /// where the link is born, `ENODEV` (not found) when the parent is gone, `EOPNOTSUPP` when
    /// the kernel lacks the link type ([`is_unsupported_link_type`]), `EBUSY` when the parent
    /// already carries links of another stacked kind (a macvlan and an ipvlan on one parent).
    pub async fn create_link(
        &self,
        name: &str,
        kind: &LinkKind,
        netns: Option<&Netns>,
    ) -> Result<()> {
        let msg = new_link_message(name, kind, netns);
        self.ack(RouteNetlinkMessage::NewLink(msg), CREATE_EXCL)
            .await
            .map_err(|e| {
                let inside = netns.map(|ns| format!(" inside {}", ns.path().display()));
                self.err(
                    format_args!(
                        "create {} link {name}{}",
                        kind.name(),
                        inside.unwrap_or_default()
                    ),
                    e,
                )
            })
    }

    /// Creates a macvlan link on `parent`, down: `ip link add link PARENT NAME [netns NS] type
    /// macvlan mode MODE`. See [`NetlinkHandle::create_link`].
    ///
    /// # Errors
    /// As [`NetlinkHandle::create_link`].
    pub async fn create_macvlan(
        &self,
        name: &str,
        parent: &Link,
        mode: MacvlanMode,
        netns: Option<&Netns>,
    ) -> Result<()> {
        let kind = LinkKind::Macvlan {
            parent: parent.index,
            mode,
        };
        self.create_link(name, &kind, netns).await
    }

    /// Creates an ipvlan link on `parent`, down: `ip link add link PARENT NAME [netns NS] type
    /// ipvlan mode MODE FLAG`. See [`NetlinkHandle::create_link`].
    ///
    /// # Errors
    /// As [`NetlinkHandle::create_link`].
    pub async fn create_ipvlan(
        &self,
        name: &str,
        parent: &Link,
        mode: IpvlanMode,
        flag: IpvlanFlag,
        netns: Option<&Netns>,
    ) -> Result<()> {
        let kind = LinkKind::Ipvlan {
            parent: parent.index,
            mode,
            flag,
        };
        self.create_link(name, &kind, netns).await
    }

    /// Creates an 802.1Q sub-interface of `parent` in this namespace, down: `ip link add link
    /// PARENT NAME type vlan id ID`. Returns it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an id outside [`VLAN_ID_RANGE`] (nothing sent), else as
    /// [`NetlinkHandle::create_link`].
    pub async fn create_vlan(&self, name: &str, parent: &Link, vlan_id: u16) -> Result<Link> {
        if !VLAN_ID_RANGE.contains(&vlan_id) {
            return Err(Error::invalid(
                format!("create vlan link {name} in {}", self.label()),
                format!(
                    "vlan id {vlan_id} is outside {}-{}",
                    VLAN_ID_RANGE.start(),
                    VLAN_ID_RANGE.end()
                ),
            ));
        }
        let kind = LinkKind::Vlan {
            parent: parent.index,
            id: vlan_id,
        };
        self.create_link(name, &kind, None).await?;
        self.link_by_name(name).await
    }

    /// Creates a dummy link in this namespace, down: `ip link add NAME type dummy`. Returns it.
    ///
    /// # Errors
    /// As [`NetlinkHandle::create_link`].
    pub async fn create_dummy(&self, name: &str) -> Result<Link> {
        self.create_link(name, &LinkKind::Dummy, None).await?;
        self.link_by_name(name).await
    }

    /// The link called `name` with its kind and settings, when it is of a kind this module
    /// knows: `ip -d link show dev NAME`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such link, [`Error::Netlink`] otherwise.
    pub async fn link_kind_by_name(&self, name: &str) -> Result<(Link, Option<LinkKind>)> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.get(RouteNetlinkMessage::GetLink(msg)).await {
            Ok(RouteNetlinkMessage::NewLink(l)) => {
                Ok((Link::from_message(&l), LinkKind::from_message(&l)))
            }
            Ok(other) => Err(self.err(
                format_args!("get link {name}"),
                io::Error::other(format!("unexpected answer {other:?}")),
            )),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => {
                Err(self.not_found("get link", format!("link {name}")))
            }
            Err(e) => Err(self.err(format_args!("get link {name}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `IFLA_INFO_KIND` and `IFLA_INFO_DATA` of a message.
    fn info(msg: &LinkMessage) -> (&InfoKind, Option<&InfoData>) {
        let infos = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i),
                _ => None,
            })
            .expect("IFLA_LINKINFO");
        let kind = infos
            .iter()
            .find_map(|i| match i {
                LinkInfo::Kind(k) => Some(k),
                _ => None,
            })
            .expect("IFLA_INFO_KIND");
        let data = infos.iter().find_map(|i| match i {
            LinkInfo::Data(d) => Some(d),
            _ => None,
        });
        (kind, data)
    }

    fn attr<T>(msg: &LinkMessage, f: impl Fn(&LinkAttribute) -> Option<T>) -> Option<T> {
        msg.attributes.iter().find_map(f)
    }

    fn name(msg: &LinkMessage) -> Option<String> {
        attr(msg, |a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
    }

    fn parent(msg: &LinkMessage) -> Option<u32> {
        attr(msg, |a| match a {
            LinkAttribute::Link(i) => Some(*i),
            _ => None,
        })
    }

    fn netns_fd(msg: &LinkMessage) -> Option<i32> {
        attr(msg, |a| match a {
            LinkAttribute::NetNsFd(fd) => Some(*fd),
            _ => None,
        })
    }

    #[test]
    fn macvlan_request_names_the_link_its_parent_index_and_mode() {
        for mode in MacvlanMode::ALL {
            let msg = new_link_message(
                "eth0",
                &LinkKind::Macvlan {
                    parent: 7,
                    mode: *mode,
                },
                None,
            );
            assert_eq!(name(&msg).as_deref(), Some("eth0"));
            assert_eq!(parent(&msg), Some(7));
            assert_eq!(netns_fd(&msg), None);
            let (kind, data) = info(&msg);
            assert_eq!(kind, &InfoKind::MacVlan);
            assert_eq!(
                data,
                Some(&InfoData::MacVlan(vec![InfoMacVlan::Mode(
                    mode.to_netlink()
                )]))
            );
        }
    }

    #[test]
    fn macvlan_modes_map_to_the_kernel_constants() {
        // MACVLAN_MODE_* of linux/if_link.h.
        let expected = [
            (MacvlanMode::Private, 1u32),
            (MacvlanMode::Vepa, 2),
            (MacvlanMode::Bridge, 4),
            (MacvlanMode::Passthru, 8),
        ];
        for (mode, value) in expected {
            assert_eq!(u32::from(mode.to_netlink()), value, "{mode}");
        }
    }

    #[test]
    fn ipvlan_request_carries_mode_and_flag_bits() {
        // IPVLAN_MODE_* and IPVLAN_F_* of linux/if_link.h.
        let modes = [
            (IpvlanMode::L2, 0u16),
            (IpvlanMode::L3, 1),
            (IpvlanMode::L3s, 2),
        ];
        let flags = [
            (IpvlanFlag::Bridge, 0u16),
            (IpvlanFlag::Private, 1),
            (IpvlanFlag::Vepa, 2),
        ];
        for (mode, mode_value) in modes {
            for (flag, flag_bits) in flags {
                let msg = new_link_message(
                    "eth1",
                    &LinkKind::Ipvlan {
                        parent: 3,
                        mode,
                        flag,
                    },
                    None,
                );
                assert_eq!(parent(&msg), Some(3));
                let (kind, data) = info(&msg);
                assert_eq!(kind, &InfoKind::IpVlan);
                let Some(InfoData::IpVlan(infos)) = data else {
                    panic!("no ipvlan data: {data:?}");
                };
                assert!(infos.contains(&InfoIpVlan::Mode(IpVlanMode::from(mode_value))));
                assert!(
                    infos.contains(&InfoIpVlan::Flags(IpVlanFlags::from_bits_retain(flag_bits)))
                );
            }
        }
    }

    #[test]
    fn vlan_request_carries_the_vlan_id_and_the_parent() {
        let msg = new_link_message("eth0.10", &LinkKind::Vlan { parent: 2, id: 10 }, None);
        assert_eq!(name(&msg).as_deref(), Some("eth0.10"));
        assert_eq!(parent(&msg), Some(2));
        let (kind, data) = info(&msg);
        assert_eq!(kind, &InfoKind::Vlan);
        assert_eq!(data, Some(&InfoData::Vlan(vec![InfoVlan::Id(10)])));
    }

    #[test]
    fn dummy_request_has_no_parent_and_no_data() {
        let msg = new_link_message("dm-0123456789ab", &LinkKind::Dummy, None);
        assert_eq!(parent(&msg), None);
        assert_eq!(info(&msg), (&InfoKind::Dummy, None));
    }

    #[test]
    fn request_for_another_namespace_carries_its_descriptor() {
        let ns = Netns::current().expect("own namespace");
        let kind = LinkKind::Macvlan {
            parent: 4,
            mode: MacvlanMode::Bridge,
        };
        let msg = new_link_message("eth0", &kind, Some(&ns));
        assert_eq!(netns_fd(&msg), Some(ns.raw_fd()));
    }

    #[test]
    fn kinds_read_back_from_a_message_equal_the_kinds_requested() {
        let kinds = [
            LinkKind::Macvlan {
                parent: 9,
                mode: MacvlanMode::Vepa,
            },
            LinkKind::Ipvlan {
                parent: 9,
                mode: IpvlanMode::L3s,
                flag: IpvlanFlag::Private,
            },
            LinkKind::Vlan {
                parent: 9,
                id: 4094,
            },
            LinkKind::Dummy,
        ];
        for kind in kinds {
            let msg = new_link_message("x", &kind, None);
            assert_eq!(LinkKind::from_message(&msg), Some(kind));
        }
        // A veth (or a link without IFLA_LINKINFO) is none of them.
        assert_eq!(LinkKind::from_message(&LinkMessage::default()), None);
    }

    #[test]
    fn names_parse_back_and_unknown_names_are_refused() {
        for m in MacvlanMode::ALL {
            assert_eq!(m.as_str().parse::<MacvlanMode>(), Ok(*m));
        }
        for m in IpvlanMode::ALL {
            assert_eq!(m.as_str().parse::<IpvlanMode>(), Ok(*m));
        }
        for f in IpvlanFlag::ALL {
            assert_eq!(f.as_str().parse::<IpvlanFlag>(), Ok(*f));
        }
        let err = "Bridge"
            .parse::<MacvlanMode>()
            .expect_err("names are lower-case");
        assert_eq!(err.to_string(), "unknown macvlan mode \"Bridge\"");
        assert!("l4".parse::<IpvlanMode>().is_err());
        assert!("passthru".parse::<IpvlanFlag>().is_err());
    }
}
