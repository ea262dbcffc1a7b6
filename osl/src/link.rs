//! Links (`ip link`): look-up, bridges and veth pairs, flags, MTU, MAC, master, name and
//! namespace, deletion.

use std::io;

use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::handle::{CREATE_EXCL, NetlinkHandle};
use crate::netns::Netns;

/// The loopback interface's index, the same in every network namespace.
pub const LOOPBACK_INDEX: u32 = 1;

pub use libnetwork_types::MacAddr;

/// A link as the kernel reports it (`ip link show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index in its namespace.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, when the link has a 6-byte one.
    pub mac: Option<MacAddr>,
    /// MTU in bytes.
    pub mtu: u32,
    /// Index of the bridge (or other master) the link is enslaved to.
    pub master: Option<u32>,
    /// Whether the link is administratively up (`IFF_UP`).
    pub up: bool,
    /// The link type (`veth`, `bridge`, ...), absent for plain devices such as `lo`.
    pub kind: Option<String>,
}

impl Link {
    /// `lo` of any namespace, as far as a request by index needs it (it has the same index
    /// everywhere, so no look-up is needed).
    pub(crate) fn loopback() -> Self {
        Self {
            index: LOOPBACK_INDEX,
            name: "lo".into(),
            mac: None,
            mtu: 0,
            master: None,
            up: false,
            kind: None,
        }
    }

    /// Reads a link from a `RTM_NEWLINK` message.
    pub(crate) fn from_message(msg: &LinkMessage) -> Self {
        let mut link = Self {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            master: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            kind: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name.clone_from(name),
                LinkAttribute::Address(mac) => link.mac = MacAddr::from_slice(mac),
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::Controller(master) if *master != 0 => link.master = Some(*master),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// A `RTM_SETLINK`/`RTM_NEWLINK` message addressed to the link with `index`.
fn message_for(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

impl NetlinkHandle {
    /// Every link of the namespace: `ip link show`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when the dump fails.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let answers = self
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .await
            .map_err(|e| self.err("list links", e))?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Every link enslaved to a bridge, with its master and up flag: `bridge link show`. On a
    /// host with many veths this is far lighter than [`NetlinkHandle::links`]: the kernel sends
    /// a short message per bridge port instead of the link's full description. The kernel
    /// does not report the ports' kind, so [`Link::kind`] is `None`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when the dump fails.
    pub async fn bridge_ports(&self) -> Result<Vec<Link>> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        let answers = self
            .dump(RouteNetlinkMessage::GetLink(msg))
            .await
            .map_err(|e| self.err("list bridge ports", e))?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link {
                    kind: None,
                    ..Link::from_message(l)
                }),
                _ => None,
            })
            .filter(|l| l.master.is_some())
            .collect())
    }

    /// The link called `name`: `ip link show dev NAME`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when there is no such link, [`Error::Netlink`](crate::Error::Netlink) otherwise.
    pub async fn link_by_name(&self, name: &str) -> Result<Link> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg, || format!("link {name}")).await
    }

    /// The link with index `index`: `ip link show` filtered by index.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when there is no such link, [`Error::Netlink`](crate::Error::Netlink) otherwise.
    pub async fn link_by_index(&self, index: u32) -> Result<Link> {
        self.get_link(message_for(index), || format!("link with index {index}"))
            .await
    }

    async fn get_link(&self, msg: LinkMessage, what: impl Fn() -> String) -> Result<Link> {
        match self.get(RouteNetlinkMessage::GetLink(msg)).await {
            Ok(RouteNetlinkMessage::NewLink(l)) => Ok(Link::from_message(&l)),
            Ok(other) => Err(self.err(
                format_args!("get {}", what()),
                io::Error::other(format!("unexpected answer {other:?}")),
            )),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => {
                Err(self.not_found("get link", what()))
            }
            Err(e) => Err(self.err(format_args!("get {}", what()), e)),
        }
    }

    /// Creates a bridge, left down: `ip link add NAME type bridge`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`EEXIST` → conflict) when the kernel refuses.
    pub async fn create_bridge(&self, name: &str) -> Result<Link> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.ack(RouteNetlinkMessage::NewLink(msg), CREATE_EXCL)
            .await
            .map_err(|e| self.err(format_args!("create bridge {name}"), e))?;
        self.link_by_name(name).await
    }

    /// Creates a veth pair, both ends down: `ip link add NAME type veth peer name PEER [netns
    /// NS]`. With `peer_netns` the peer is born inside that namespace, which costs the kernel
    /// far less than moving it there afterwards. Returns this namespace's end.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`EEXIST` → conflict, in either namespace) when the kernel refuses.
    pub async fn create_veth(
        &self,
        name: &str,
        peer: &str,
        peer_netns: Option<&Netns>,
    ) -> Result<Link> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        if let Some(ns) = peer_netns {
            peer_msg
                .attributes
                .push(LinkAttribute::NetNsFd(ns.raw_fd()));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), CREATE_EXCL)
            .await
            .map_err(|e| {
                let inside = peer_netns.map(|ns| format!(" in {}", ns.path().display()));
                self.err(
                    format_args!(
                        "create veth {name} with peer {peer}{}",
                        inside.unwrap_or_default()
                    ),
                    e,
                )
            })?;
        self.link_by_name(name).await
    }

    async fn set_link(&self, msg: LinkMessage, what: impl Fn() -> String) -> Result<()> {
        self.ack(RouteNetlinkMessage::SetLink(msg), 0)
            .await
            .map_err(|e| self.err(what(), e))
    }

    /// Brings a link up or down: `ip link set dev NAME up|down`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when the kernel refuses.
    pub async fn set_up(&self, link: &Link, up: bool) -> Result<()> {
        let mut msg = message_for(link.index);
        if up {
            msg.header.flags |= LinkFlags::Up;
        }
        msg.header.change_mask |= LinkFlags::Up;
        let state = if up { "up" } else { "down" };
        self.set_link(msg, || format!("set {} {state}", link.name))
            .await
    }

    /// Sets a link's MTU: `ip link set dev NAME mtu MTU`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`EINVAL` → bad request) when the kernel refuses.
    pub async fn set_mtu(&self, link: &Link, mtu: u32) -> Result<()> {
        let mut msg = message_for(link.index);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link(msg, || format!("set mtu {mtu} on {}", link.name))
            .await
    }

    /// Sets a link's hardware address: `ip link set dev NAME address MAC`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when the kernel refuses.
    pub async fn set_mac(&self, link: &Link, mac: MacAddr) -> Result<()> {
        let mut msg = message_for(link.index);
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        self.set_link(msg, || format!("set address {mac} on {}", link.name))
            .await
    }

    /// Enslaves a link to a bridge: `ip link set dev NAME master BRIDGE`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when the kernel refuses.
    pub async fn set_master(&self, link: &Link, master: &Link) -> Result<()> {
        let mut msg = message_for(link.index);
        msg.attributes.push(LinkAttribute::Controller(master.index));
        self.set_link(msg, || {
            format!("set master {} on {}", master.name, link.name)
        })
        .await
    }

    /// Releases a link from its bridge: `ip link set dev NAME nomaster`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when the kernel refuses.
    pub async fn set_nomaster(&self, link: &Link) -> Result<()> {
        let mut msg = message_for(link.index);
        msg.attributes.push(LinkAttribute::Controller(0));
        self.set_link(msg, || format!("set nomaster on {}", link.name))
            .await
    }

    /// Renames a link (it must be down): `ip link set dev NAME name NEW`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`EEXIST` → conflict, `EBUSY` when up) when the kernel refuses.
    pub async fn rename(&self, link: &Link, new_name: &str) -> Result<()> {
        let mut msg = message_for(link.index);
        msg.attributes
            .push(LinkAttribute::IfName(new_name.to_string()));
        self.set_link(msg, || format!("rename {} to {new_name}", link.name))
            .await
    }

    /// Moves a link into another namespace, renaming it on the way when `new_name` is given:
    /// `ip link set dev NAME netns NS [name NEW]`. The link arrives down and without addresses.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`EEXIST` → conflict when the name is taken there) when the kernel
    /// refuses; the link is then unchanged.
    pub async fn move_to_netns(
        &self,
        link: &Link,
        netns: &Netns,
        new_name: Option<&str>,
    ) -> Result<()> {
        let mut msg = message_for(link.index);
        msg.attributes.push(LinkAttribute::NetNsFd(netns.raw_fd()));
        if let Some(name) = new_name {
            msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        }
        self.set_link(msg, || {
            let renamed = new_name.map(|n| format!(" as {n}")).unwrap_or_default();
            format!("move {} to {}{renamed}", link.name, netns.path().display())
        })
        .await
    }

    /// Deletes a link (both ends, for a veth): `ip link del dev NAME`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`ENODEV` → not found) when the kernel refuses.
    pub async fn delete_link(&self, link: &Link) -> Result<()> {
        self.ack(RouteNetlinkMessage::DelLink(message_for(link.index)), 0)
            .await
            .map_err(|e| self.err(format_args!("delete link {}", link.name), e))
    }
}
