//! Neighbours: permanent ARP/NDP entries (`ip neigh`) and bridge forwarding entries
//! (`bridge fdb`), which the overlay driver programs for remote endpoints.

use std::fmt;
use std::net::IpAddr;

use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::handle::{CREATE_EXCL, CREATE_REPLACE, NetlinkHandle};
use crate::link::{Link, MacAddr};

/// A permanent neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Neighbour {
    /// An ARP (IPv4) or NDP (IPv6) entry: `ip neigh add IP lladdr MAC dev LINK nud permanent`.
    Ip {
        /// The neighbour's address.
        ip: IpAddr,
        /// Its hardware address.
        mac: MacAddr,
    },
    /// A forwarding database entry on the device itself (`NTF_SELF`), such as a VXLAN device:
    /// `bridge fdb add MAC dev LINK [dst IP] self permanent`.
    Fdb {
        /// The hardware address to forward.
        mac: MacAddr,
        /// The remote endpoint (VXLAN tunnel end) the frames go to, if any.
        dst: Option<IpAddr>,
    },
}

impl fmt::Display for Neighbour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip { ip, mac } => write!(f, "neighbour {ip} lladdr {mac}"),
            Self::Fdb {
                mac,
                dst: Some(dst),
            } => write!(f, "fdb entry {mac} dst {dst}"),
            Self::Fdb { mac, dst: None } => write!(f, "fdb entry {mac}"),
        }
    }
}

fn neighbour_address(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

impl Neighbour {
    /// The `RTM_NEWNEIGH`/`RTM_DELNEIGH` message for this entry on the link with `index`.
    fn message(&self, index: u32, flags: NeighbourFlags) -> NeighbourMessage {
        let mut msg = NeighbourMessage::default();
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.header.kind = RouteType::Unspec;
        msg.header.flags = flags;
        match self {
            Self::Ip { ip, mac } => {
                msg.header.family = match ip {
                    IpAddr::V4(_) => AddressFamily::Inet,
                    IpAddr::V6(_) => AddressFamily::Inet6,
                };
                msg.attributes
                    .push(NeighbourAttribute::Destination(neighbour_address(*ip)));
                msg.attributes
                    .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
            }
            Self::Fdb { mac, dst } => {
                msg.header.family = AddressFamily::Bridge;
                msg.attributes
                    .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
                if let Some(dst) = dst {
                    msg.attributes
                        .push(NeighbourAttribute::Destination(neighbour_address(*dst)));
                }
            }
        }
        msg
    }

    fn from_message(msg: &NeighbourMessage) -> Option<Self> {
        let mut ip = None;
        let mut mac = None;
        for attr in &msg.attributes {
            match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                    ip = Some((*v4).into())
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                    ip = Some((*v6).into())
                }
                NeighbourAttribute::LinkLayerAddress(l) => mac = MacAddr::from_slice(l),
                _ => {}
            }
        }
        match msg.header.family {
            AddressFamily::Bridge => Some(Self::Fdb { mac: mac?, dst: ip }),
            _ => Some(Self::Ip { ip: ip?, mac: mac? }),
        }
    }

    fn flags(&self) -> NeighbourFlags {
        match self {
            Self::Ip { .. } => NeighbourFlags::empty(),
            Self::Fdb { .. } => NeighbourFlags::Own,
        }
    }
}

impl NetlinkHandle {
    /// Adds a permanent neighbour entry on `link`; with `replace` an existing entry for the
    /// same address is overwritten (`ip neigh replace`, `bridge fdb replace`), without it an
    /// existing entry is a conflict.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`EEXIST` → conflict) when the kernel refuses.
    pub async fn add_neighbour(
        &self,
        link: &Link,
        neighbour: &Neighbour,
        replace: bool,
    ) -> Result<()> {
        let flags = if replace { CREATE_REPLACE } else { CREATE_EXCL };
        let msg = neighbour.message(link.index, neighbour.flags());
        self.ack(RouteNetlinkMessage::NewNeighbour(msg), flags)
            .await
            .map_err(|e| self.err(format_args!("add {neighbour} on {}", link.name), e))
    }

    /// Deletes a permanent neighbour entry from `link`: `ip neigh del IP dev LINK`, or
    /// `bridge fdb del MAC dev LINK [dst IP] self` (and the twin entry a bridge master holds
    /// for the port, if any).
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`ENOENT` → not found) when the kernel
    /// refuses.
    pub async fn delete_neighbour(&self, link: &Link, neighbour: &Neighbour) -> Result<()> {
        let msg = neighbour.message(link.index, neighbour.flags());
        self.ack(RouteNetlinkMessage::DelNeighbour(msg), 0)
            .await
            .map_err(|e| self.err(format_args!("delete {neighbour} from {}", link.name), e))?;
        if matches!(neighbour, Neighbour::Fdb { .. }) && link.master.is_some() {
            let twin = neighbour.message(link.index, NeighbourFlags::Controller);
            // The bridge's own copy exists only when the port learned or was given the address.
            let _ = self.ack(RouteNetlinkMessage::DelNeighbour(twin), 0).await;
        }
        Ok(())
    }

    /// The permanent neighbour entries of the namespace, with the index of their link:
    /// `ip neigh show nud permanent` and `bridge fdb show` (static entries on the devices).
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when a dump fails.
    pub async fn neighbours(&self) -> Result<Vec<(u32, Neighbour)>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Unspec, AddressFamily::Bridge] {
            let mut msg = NeighbourMessage::default();
            msg.header.family = family;
            let answers = self
                .dump(RouteNetlinkMessage::GetNeighbour(msg))
                .await
                .map_err(|e| self.err("list neighbours", e))?;
            for answer in &answers {
                let RouteNetlinkMessage::NewNeighbour(n) = answer else {
                    continue;
                };
                if n.header.state != NeighbourState::Permanent {
                    continue;
                }
                if let Some(neighbour) = Neighbour::from_message(n) {
                    out.push((n.header.ifindex, neighbour));
                }
            }
        }
        Ok(out)
    }
}
