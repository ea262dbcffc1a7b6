//! Addresses (`ip address`): add, delete, list.

use std::net::IpAddr;

use ipnet::IpNet;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::handle::{CREATE_EXCL, NetlinkHandle};
use crate::link::Link;

/// An address assigned to a link, as the kernel reports it (`ip address show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Index of the link the address is on.
    pub index: u32,
    /// The address with its prefix length (host bits kept: `10.0.0.2/24`).
    pub net: IpNet,
    /// Whether duplicate address detection was skipped (`IFA_F_NODAD`, IPv6).
    pub nodad: bool,
    /// Whether the address has link scope (IPv6 `fe80::/10`, for instance).
    pub link_scope: bool,
}

impl Address {
    fn from_message(msg: &AddressMessage) -> Option<Self> {
        let mut local = None;
        let mut address = None;
        let mut flags = u32::from(msg.header.flags.bits());
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(f) => flags = f.bits(),
                _ => {}
            }
        }
        // For IPv4 IFA_LOCAL is the address and IFA_ADDRESS the peer; IPv6 has only IFA_ADDRESS.
        let ip = local.or(address)?;
        let net = IpNet::new(ip, msg.header.prefix_len).ok()?;
        Some(Self {
            index: msg.header.index,
            net,
            nodad: flags & AddressFlags::Nodad.bits() != 0,
            link_scope: msg.header.scope == AddressScope::Link,
        })
    }
}

/// The `RTM_NEWADDR`/`RTM_DELADDR` message for `net` on the link with `index`.
fn message_for(index: u32, net: IpNet, nodad: bool) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = net.prefix_len();
    match net.addr() {
        IpAddr::V4(ip) => {
            msg.header.family = AddressFamily::Inet;
            msg.attributes.push(AddressAttribute::Local(ip.into()));
            msg.attributes.push(AddressAttribute::Address(ip.into()));
            if let IpNet::V4(v4) = net
                && v4.prefix_len() < 31
            {
                msg.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        IpAddr::V6(ip) => {
            msg.header.family = AddressFamily::Inet6;
            msg.attributes.push(AddressAttribute::Address(ip.into()));
        }
    }
    if nodad {
        msg.header.flags |= AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    msg
}

impl NetlinkHandle {
    /// Adds an address to a link: `ip address add NET dev NAME [nodad]` (IPv4 addresses get
    /// their broadcast address, as `brd +` would set it).
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`EEXIST` → conflict, `EACCES` when IPv6 is
    /// disabled on the link) when the kernel refuses.
    pub async fn add_address(&self, link: &Link, net: IpNet, nodad: bool) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::NewAddress(message_for(link.index, net, nodad)),
            CREATE_EXCL,
        )
        .await
        .map_err(|e| self.err(format_args!("add address {net} to {}", link.name), e))
    }

    /// Removes an address from a link: `ip address del NET dev NAME`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) (`EADDRNOTAVAIL` → not found) when the kernel
    /// refuses.
    pub async fn delete_address(&self, link: &Link, net: IpNet) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::DelAddress(message_for(link.index, net, false)),
            0,
        )
        .await
        .map_err(|e| self.err(format_args!("delete address {net} from {}", link.name), e))
    }

    /// Every address of one family in the namespace: `ip -4 address show` or `ip -6 address
    /// show`. The kernel dumps only that family, which is far less than every address on a
    /// host with many veths (each has an IPv6 link-local address).
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when the dump fails.
    pub async fn addresses_of_family(&self, ipv6: bool) -> Result<Vec<Address>> {
        let mut msg = AddressMessage::default();
        msg.header.family = if ipv6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        self.dump_addresses(msg, |a| a.net.addr().is_ipv6() == ipv6)
            .await
    }

    /// Every address of the namespace, or of one link: `ip address show [dev NAME]`.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when the dump fails.
    pub async fn addresses(&self, index: Option<u32>) -> Result<Vec<Address>> {
        self.dump_addresses(AddressMessage::default(), |a| {
            index.is_none_or(|i| a.index == i)
        })
        .await
    }

    /// The addresses a `RTM_GETADDR` dump of `request` lists, those `keep` accepts.
    async fn dump_addresses(
        &self,
        request: AddressMessage,
        keep: impl Fn(&Address) -> bool,
    ) -> Result<Vec<Address>> {
        let answers = self
            .dump(RouteNetlinkMessage::GetAddress(request))
            .await
            .map_err(|e| self.err("list addresses", e))?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => Address::from_message(a),
                _ => None,
            })
            .filter(|a| keep(a))
            .collect())
    }
}
