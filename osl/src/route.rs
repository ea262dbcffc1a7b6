//! Routes (`ip route`) of the main table: add, delete, list, and the kernel's route look-up.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::handle::{CREATE_EXCL, NetlinkHandle};

/// A route of the main table (`ip route show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination network; `0.0.0.0/0` or `::/0` for a default route.
    pub destination: IpNet,
    /// Next hop, for routes through a gateway.
    pub gateway: Option<IpAddr>,
    /// Index of the outgoing link.
    pub index: Option<u32>,
    /// Name of the outgoing link: filled in by listings, used only in messages otherwise.
    pub interface: Option<String>,
    /// Whether the route has link scope (destination directly reachable on the link).
    pub link_scope: bool,
}

impl Route {
    /// The default route (`default via GATEWAY dev LINK`) for the gateway's family.
    pub fn default_via(gateway: IpAddr, index: u32, interface: &str) -> Self {
        Self {
            destination: default_net(gateway),
            gateway: Some(gateway),
            index: Some(index),
            interface: Some(interface.to_string()),
            link_scope: false,
        }
    }

    /// Whether this is a default route.
    pub fn is_default(&self) -> bool {
        self.destination.prefix_len() == 0
    }

    fn from_message(msg: &RouteMessage) -> Option<Self> {
        let family = msg.header.address_family;
        let mut destination = None;
        let mut gateway = None;
        let mut index = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => destination = ip_of(a),
                RouteAttribute::Gateway(a) => gateway = ip_of(a),
                RouteAttribute::Oif(i) => index = Some(*i),
                _ => {}
            }
        }
        let destination = match (destination, family) {
            (Some(ip), _) => IpNet::new(ip, msg.header.destination_prefix_length).ok()?,
            (None, AddressFamily::Inet) => default_net(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            (None, AddressFamily::Inet6) => default_net(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            (None, _) => return None,
        };
        Some(Self {
            destination,
            gateway,
            index,
            interface: None,
            link_scope: msg.header.scope == RouteScope::Link,
        })
    }

    /// The `RTM_NEWROUTE`/`RTM_DELROUTE` message for this route in the main table.
    fn message(&self) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(self.destination.addr());
        msg.header.destination_prefix_length = self.destination.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = if self.link_scope {
            RouteScope::Link
        } else {
            RouteScope::Universe
        };
        msg.header.kind = RouteType::Unicast;
        if self.destination.prefix_len() > 0 {
            let network = self.destination.network();
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(network)));
        }
        if let Some(gw) = self.gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(index) = self.index {
            msg.attributes.push(RouteAttribute::Oif(index));
        }
        msg
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_default() {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.destination.trunc())?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        match (&self.interface, self.index) {
            (Some(name), _) => write!(f, " dev {name}")?,
            (None, Some(index)) => write!(f, " dev #{index}")?,
            (None, None) => {}
        }
        if self.link_scope {
            f.write_str(" scope link")?;
        }
        Ok(())
    }
}

/// `0.0.0.0/0` or `::/0`, matching the family of `ip`.
pub(crate) fn default_net(ip: IpAddr) -> IpNet {
    match ip {
        IpAddr::V4(_) => IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        IpAddr::V6(_) => IpNet::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    }
    .expect("prefix 0 is valid")
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some((*ip).into()),
        RouteAddress::Inet6(ip) => Some((*ip).into()),
        _ => None,
    }
}

/// What the kernel's route look-up (`ip route get`) answered for a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLookup {
    /// The outgoing link.
    pub index: u32,
    /// The next hop, when the destination is not directly reachable.
    pub gateway: Option<IpAddr>,
    /// Whether the destination is reached by plain unicast forwarding (not a local address,
    /// not blackholed).
    pub unicast: bool,
}

impl NetlinkHandle {
    /// Adds a route to the main table: `ip route add DEST [via GW] [dev NAME] [scope link]`.
    ///
    /// # Errors
    /// [`Error::Netlink`] (`EEXIST` → conflict, `ENETUNREACH` when the gateway is not on a
    /// link) when the kernel refuses.
    pub async fn add_route(&self, route: &Route) -> Result<()> {
        self.ack(RouteNetlinkMessage::NewRoute(route.message()), CREATE_EXCL)
            .await
            .map_err(|e| self.err(format_args!("add route {route}"), e))
    }

    /// Deletes a route from the main table: `ip route del DEST [via GW] [dev NAME]`.
    ///
    /// # Errors
    /// [`Error::Netlink`] (`ESRCH` → not found) when the kernel refuses.
    pub async fn delete_route(&self, route: &Route) -> Result<()> {
        let mut msg = route.message();
        // Deletion matches on what is given; leave the scope unset so any scope matches.
        msg.header.scope = RouteScope::NoWhere;
        msg.header.protocol = RouteProtocol::Unspec;
        self.ack(RouteNetlinkMessage::DelRoute(msg), 0)
            .await
            .map_err(|e| self.err(format_args!("delete route {route}"), e))
    }

    /// The routes of the main table for one family (`ip [-6] route show`), with link names
    /// left empty.
    ///
    /// # Errors
    /// [`Error::Netlink`] when the dump fails.
    pub async fn routes(&self, ipv6: bool) -> Result<Vec<Route>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if ipv6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let answers = self
            .dump(RouteNetlinkMessage::GetRoute(msg))
            .await
            .map_err(|e| self.err("list routes", e))?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if table_of(r) == u32::from(RouteHeader::RT_TABLE_MAIN) =>
                {
                    Route::from_message(r)
                }
                _ => None,
            })
            .collect())
    }

    /// Asks the kernel how it would reach `destination`: `ip route get DEST`.
    ///
    /// # Errors
    /// [`Error::Netlink`] (`ENETUNREACH` → bad request) when there is no route.
    pub async fn route_get(&self, destination: IpAddr) -> Result<RouteLookup> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(destination);
        msg.header.destination_prefix_length = if destination.is_ipv4() { 32 } else { 128 };
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(destination)));
        let what = || format!("look up route to {destination}");
        let answer = self
            .get(RouteNetlinkMessage::GetRoute(msg))
            .await
            .map_err(|e| self.err(what(), e))?;
        let RouteNetlinkMessage::NewRoute(r) = answer else {
            return Err(self.err(what(), io::Error::other("unexpected answer")));
        };
        let route = Route::from_message(&r)
            .ok_or_else(|| self.err(what(), io::Error::other("unreadable answer")))?;
        Ok(RouteLookup {
            index: route.index.unwrap_or(0),
            gateway: route.gateway,
            unicast: r.header.kind == RouteType::Unicast,
        })
    }
}

/// The table a route belongs to (`RTA_TABLE` overrides the 8-bit header field).
fn table_of(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

/// Whether `err` says the route asked for does not exist.
pub(crate) fn is_missing_route(err: &Error) -> bool {
    err.raw_os_error() == Some(nix::libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_display_like_ip_route() {
        let gw: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            Route::default_via(gw, 3, "eth0").to_string(),
            "default via 10.0.0.1 dev eth0"
        );
        let r = Route {
            destination: "10.1.2.3/16".parse().unwrap(),
            gateway: None,
            index: Some(4),
            interface: None,
            link_scope: true,
        };
        assert_eq!(r.to_string(), "10.1.0.0/16 dev #4 scope link");
        assert!(Route::default_via("fd00::1".parse().unwrap(), 1, "eth1").is_default());
    }
}
