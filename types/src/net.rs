//! Network value types shared across crates.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value could not be parsed from its text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse {what} {input:?}: {reason}")]
pub struct ParseError {
    what: &'static str,
    input: String,
    reason: &'static str,
}

impl ParseError {
    fn new(what: &'static str, input: &str, reason: &'static str) -> Self {
        Self {
            what,
            input: input.to_owned(),
            reason,
        }
    }
}

/// A 48-bit Ethernet (MAC) address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The address from a 6-byte slice (a netlink attribute, say).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(bytes).ok().map(Self)
    }

    /// Docker's MAC for an IPv4 address: `02:42` followed by the address's four bytes.
    pub fn from_ipv4(ip: std::net::Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets();
        Self([0x02, 0x42, a, b, c, d])
    }

    /// Whether the locally administered bit is set and the multicast bit clear.
    pub fn is_local_unicast(&self) -> bool {
        self.0[0] & 0x03 == 0x02
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError::new("MAC address", s, "want six hex bytes a:b:c:d:e:f");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A transport protocol of a port binding (libnetwork's `types.Protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Protocol {
    /// Every protocol, in a fixed order.
    pub const ALL: [Self; 3] = [Self::Tcp, Self::Udp, Self::Sctp];

    /// The IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }

    /// The lower-case name (`tcp`, `udp`, `sctp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = ParseError;

    /// Case-insensitive, as libnetwork's `ParseProtocol`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            "sctp" => Ok(Self::Sctp),
            _ => Err(ParseError::new("protocol", s, "want tcp, udp or sctp")),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A container port: protocol and number (`tcp/80`), libnetwork's `types.TransportPort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TransportPort {
    /// The protocol.
    #[serde(rename = "Proto")]
    pub proto: Protocol,
    /// The port number.
    #[serde(rename = "Port")]
    pub port: u16,
}

impl fmt::Display for TransportPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.port)
    }
}

impl FromStr for TransportPort {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (proto, port) =
            s.split_once('/')
                .ok_or(ParseError::new("transport port", s, "want proto/port"))?;
        let port = port
            .parse()
            .map_err(|_| ParseError::new("transport port", s, "bad port"))?;
        Ok(Self {
            proto: proto.parse()?,
            port,
        })
    }
}

/// A published port: the container's address and port, and the host address and port (or
/// range) it is reachable on. libnetwork's `types.PortBinding`; the JSON field names are its.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortBinding {
    /// The protocol.
    #[serde(rename = "Proto")]
    pub proto: Protocol,
    /// The container's address (filled in by the driver).
    #[serde(rename = "IP", default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The container's port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// The host address to listen on; `None` means every address (0.0.0.0 / ::).
    #[serde(rename = "HostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// The host port; 0 asks for an ephemeral port.
    #[serde(rename = "HostPort")]
    pub host_port: u16,
    /// The last host port of a range; 0 (or equal to `host_port`) means a single port.
    #[serde(rename = "HostPortEnd", default)]
    pub host_port_end: u16,
}

impl PortBinding {
    /// The container side as a transport port.
    pub fn container_port(&self) -> TransportPort {
        TransportPort {
            proto: self.proto,
            port: self.port,
        }
    }
}

impl fmt::Display for PortBinding {
    /// `proto/containerIP:port/hostIP:hostPort`, as libnetwork.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn addr(ip: Option<IpAddr>, port: u16) -> String {
            match ip {
                Some(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
                Some(IpAddr::V4(v4)) => format!("{v4}:{port}"),
                None => format!(":{port}"),
            }
        }
        write!(
            f,
            "{}/{}/{}",
            self.proto,
            addr(self.ip, self.port),
            addr(self.host_ip, self.host_port)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_address_round_trips_through_text_and_json() {
        let mac: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        let json = serde_json::to_string(&mac).unwrap();
        assert_eq!(json, "\"02:42:ac:11:00:02\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&json).unwrap(), mac);
    }

    #[test]
    fn malformed_mac_addresses_are_rejected() {
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:00:zz",
            "0242:ac",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mac_from_ipv4_is_02_42_and_the_address() {
        let mac = MacAddr::from_ipv4("172.17.0.2".parse().unwrap());
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        assert!(mac.is_local_unicast());
    }

    #[test]
    fn protocol_parsing_is_case_insensitive() {
        assert_eq!("TCP".parse::<Protocol>().unwrap(), Protocol::Tcp);
        assert_eq!("sctp".parse::<Protocol>().unwrap().number(), 132);
        assert!("icmp".parse::<Protocol>().is_err());
    }

    #[test]
    fn transport_port_round_trips_through_text() {
        let tp: TransportPort = "tcp/23".parse().unwrap();
        assert_eq!(
            tp,
            TransportPort {
                proto: Protocol::Tcp,
                port: 23
            }
        );
        assert_eq!(tp.to_string(), "tcp/23");
        assert!("tcp23".parse::<TransportPort>().is_err());
    }

    #[test]
    fn port_binding_json_uses_libnetwork_field_names() {
        let pb = PortBinding {
            proto: Protocol::Udp,
            ip: Some("172.17.0.2".parse().unwrap()),
            port: 53,
            host_ip: None,
            host_port: 5353,
            host_port_end: 0,
        };
        let json = serde_json::to_value(pb).unwrap();
        assert_eq!(json["Proto"], "udp");
        assert_eq!(json["HostPort"], 5353);
        assert_eq!(serde_json::from_value::<PortBinding>(json).unwrap(), pb);
        assert_eq!(pb.to_string(), "udp/172.17.0.2:53/:5353");
    }
}
