//! The comments that tag our rules, so that a later process can find them again.
//!
//! Every port-mapping rule (iptables) or set element (nftables) carries a comment that encodes
//! the whole [`PortMapping`] (`lnmap,tcp,*,8000-8999,172.17.0.2,8000,br0`); every per-network
//! iptables rule carries `lnnet,<bridge>`, and every per-network nftables element the whole
//! [`NetworkRules`] (`lnbr,br0,172.17.0.1/16,-,-,mch`). All use only characters that need no
//! quoting in either tool, and stay under nftables' 128-byte comment limit (the longest mapping
//! tag is about 125 bytes, the longest network tag about 110).

use std::net::IpAddr;

use libnetwork_types::Protocol;

use crate::{NetworkRules, PortMapping};

const MAPPING_PREFIX: &str = "lnmap,";
const NETWORK_PREFIX: &str = "lnnet,";
const NETWORK_RULES_PREFIX: &str = "lnbr,";

/// The tag of a port-mapping rule.
pub(crate) fn mapping(m: &PortMapping) -> String {
    let host = m
        .host_ip
        .map_or_else(|| "*".to_string(), |ip| ip.to_string());
    format!(
        "{MAPPING_PREFIX}{},{host},{}-{},{},{},{}",
        m.protocol.as_str(),
        m.host_ports.start(),
        m.host_ports.end(),
        m.container_ip,
        m.container_port,
        m.bridge
    )
}

/// The mapping a tag stands for, or `None` when it is not a mapping tag.
pub(crate) fn parse_mapping(tag: &str) -> Option<PortMapping> {
    let rest = tag.strip_prefix(MAPPING_PREFIX)?;
    let fields: Vec<&str> = rest.split(',').collect();
    let [proto, host, ports, container_ip, container_port, bridge] = fields.as_slice() else {
        return None;
    };
    let protocol = match *proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return None,
    };
    let host_ip = match *host {
        "*" => None,
        ip => Some(ip.parse::<IpAddr>().ok()?),
    };
    let (start, end) = ports.split_once('-')?;
    Some(PortMapping {
        protocol,
        host_ip,
        host_ports: start.parse().ok()?..=end.parse().ok()?,
        container_ip: container_ip.parse().ok()?,
        container_port: container_port.parse().ok()?,
        bridge: (*bridge).to_string(),
    })
}

/// The tag of a per-network iptables rule.
pub(crate) fn network(bridge: &str) -> String {
    format!("{NETWORK_PREFIX}{bridge}")
}

/// The bridge a per-network tag names, or `None` when it is not a network tag.
pub(crate) fn parse_network(tag: &str) -> Option<&str> {
    tag.strip_prefix(NETWORK_PREFIX)
}

/// The tag of a network's nftables elements: its bridge and all its settings
/// (`lnbr,<bridge>,<ipv4 subnet>,<ipv6 subnet|->,<snat source|->,<flags>`, where the flags are
/// `m` masquerade, `c` icc, `i` internal and `h` hairpin, or `-` for none).
pub(crate) fn network_rules(rules: &NetworkRules) -> String {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    let mut flags = String::new();
    for (on, flag) in [
        (rules.masquerade, 'm'),
        (rules.icc, 'c'),
        (rules.internal, 'i'),
        (rules.hairpin, 'h'),
    ] {
        if on {
            flags.push(flag);
        }
    }
    if flags.is_empty() {
        flags.push('-');
    }
    format!(
        "{NETWORK_RULES_PREFIX}{},{},{},{},{flags}",
        rules.bridge,
        rules.ipv4_subnet,
        or_dash(rules.ipv6_subnet.map(|n| n.to_string())),
        or_dash(rules.snat_source.map(|ip| ip.to_string())),
    )
}

/// The network a [`network_rules`] tag stands for, or `None` when it is not such a tag.
pub(crate) fn parse_network_rules(tag: &str) -> Option<NetworkRules> {
    let rest = tag.strip_prefix(NETWORK_RULES_PREFIX)?;
    let fields: Vec<&str> = rest.split(',').collect();
    let [bridge, v4, v6, snat, flags] = fields.as_slice() else {
        return None;
    };
    if bridge.is_empty() || !flags.chars().all(|c| "mcih-".contains(c)) {
        return None;
    }
    let optional = |s: &str| (s != "-").then_some(s.to_string());
    Some(NetworkRules {
        bridge: (*bridge).to_string(),
        ipv4_subnet: v4.parse().ok()?,
        ipv6_subnet: optional(v6).map(|s| s.parse()).transpose().ok()?,
        snat_source: optional(snat).map(|s| s.parse()).transpose().ok()?,
        masquerade: flags.contains('m'),
        icc: flags.contains('c'),
        internal: flags.contains('i'),
        hairpin: flags.contains('h'),
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn mapping_tags_round_trip() {
        let mappings = [
            PortMapping {
                protocol: Protocol::Tcp,
                host_ip: None,
                host_ports: 8000..=8999,
                container_ip: "172.17.0.2".parse().unwrap(),
                container_port: 8000,
                bridge: "docker0".into(),
            },
            PortMapping {
                protocol: Protocol::Sctp,
                host_ip: Some(IpAddr::V6(Ipv6Addr::new(0xffff, 1, 2, 3, 4, 5, 6, 0xffff))),
                host_ports: 65535..=65535,
                container_ip: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
                container_port: 1,
                bridge: "br-0123456789a".into(),
            },
        ];
        for m in mappings {
            let tag = mapping(&m);
            assert!(tag.len() < 128, "{tag} is too long for an nftables comment");
            assert_eq!(parse_mapping(&tag), Some(m));
        }
    }

    #[test]
    fn network_tags_round_trip() {
        let full = NetworkRules {
            bridge: "br-0123456789a".into(),
            ipv4_subnet: "255.255.255.255/32".parse().unwrap(),
            ipv6_subnet: Some(
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"
                    .parse()
                    .unwrap(),
            ),
            masquerade: true,
            snat_source: Some("255.255.255.255".parse().unwrap()),
            icc: true,
            internal: true,
            hairpin: true,
        };
        let bare = bare_network();
        let mut icc_only = bare.clone();
        icc_only.icc = true;
        for rules in [full, bare, icc_only] {
            let tag = network_rules(&rules);
            assert!(tag.len() < 128, "{tag} is too long for an nftables comment");
            assert_eq!(parse_network_rules(&tag), Some(rules));
        }
        assert_eq!(
            network_rules(&NetworkRules {
                masquerade: true,
                icc: true,
                hairpin: true,
                ..bare_network()
            }),
            "lnbr,br0,172.17.0.1/16,-,-,mch"
        );
    }

    fn bare_network() -> NetworkRules {
        NetworkRules {
            bridge: "br0".into(),
            ipv4_subnet: "172.17.0.1/16".parse().unwrap(),
            ipv6_subnet: None,
            masquerade: false,
            snat_source: None,
            icc: false,
            internal: false,
            hairpin: false,
        }
    }

    #[test]
    fn foreign_comments_are_not_tags() {
        assert_eq!(parse_network_rules("lnnet,br0"), None);
        assert_eq!(parse_network_rules("lnbr,br0,172.17.0.0/16,-,-"), None);
        assert_eq!(parse_network_rules("lnbr,br0,172.17.0.0/16,-,-,x"), None);
        assert_eq!(parse_network_rules("lnbr,br0,fd00::/64,-,-,m"), None);
        assert_eq!(parse_mapping(&network_rules(&bare_network())), None);
        assert_eq!(parse_mapping("lnnet,br0"), None);
        assert_eq!(parse_mapping("lnmap,icmp,*,1-2,10.0.0.1,1,br0"), None);
        assert_eq!(parse_mapping("lnmap,tcp,*,1-2,10.0.0.1,1"), None);
        assert_eq!(parse_network("lnmap,tcp"), None);
        assert_eq!(parse_network(&network("br0")), Some("br0"));
    }
}
