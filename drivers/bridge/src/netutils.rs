//! Naming and addressing helpers (the parts of libnetwork's `netutils` the bridge uses).

use std::net::Ipv6Addr;

use ipnet::{IpNet, Ipv6Net};
use libnetwork_types::MacAddr;

/// Prefix of host-side veth names.
pub const VETH_PREFIX: &str = "veth";
/// Number of random hex characters after [`VETH_PREFIX`].
pub const VETH_RANDOM_LEN: usize = 7;

/// `prefix` followed by `len` random lower-case hex characters (libnetwork's
/// `GenerateRandomName`).
pub fn random_name(prefix: &str, len: usize) -> String {
    let mut bytes = vec![0u8; len.div_ceil(2)];
    rand::fill(&mut bytes[..]);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{}", &hex[..len])
}

/// A random host veth name: `veth` + 7 hex characters.
pub fn random_veth_name() -> String {
    random_name(VETH_PREFIX, VETH_RANDOM_LEN)
}

/// A random locally administered MAC `02:42:xx:xx:xx:xx` (libnetwork's `GenerateRandomMAC`),
/// given to bridges so that their address does not follow their ports.
pub fn random_mac() -> MacAddr {
    let mut mac = [0x02, 0x42, 0, 0, 0, 0];
    rand::fill(&mut mac[2..]);
    MacAddr(mac)
}

/// The IPv6 address of an endpoint without one: the subnet's network address with the six
/// MAC bytes in its last six bytes, with the subnet's prefix length (libnetwork's bridge
/// `CreateEndpoint`). `None` when the subnet has fewer than 48 host bits.
pub fn ipv6_from_mac(subnet: Ipv6Net, mac: MacAddr) -> Option<IpNet> {
    if subnet.prefix_len() > 80 {
        return None;
    }
    let mut bytes = subnet.network().octets();
    bytes[10..].copy_from_slice(&mac.0);
    let net = Ipv6Net::new(Ipv6Addr::from(bytes), subnet.prefix_len()).expect("valid prefix");
    Some(IpNet::V6(net))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_veth_and_seven_hex_characters() {
        let name = random_veth_name();
        assert_eq!(name.len(), 11);
        assert!(name.starts_with("veth"));
        assert!(
            name[4..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(random_veth_name(), random_veth_name());
    }

    #[test]
    fn random_macs_are_locally_administered_02_42() {
        let mac = random_mac();
        assert_eq!(&mac.0[..2], &[0x02, 0x42]);
        assert!(mac.is_local_unicast());
    }

    #[test]
    fn ipv6_address_is_derived_from_the_mac_like_libnetwork() {
        // libnetwork's TestCreateFullOptionsLabels expectation.
        let mac: MacAddr = "aa:bb:cc:dd:ee:ff".parse().unwrap();
        let subnet: Ipv6Net = "2001:db8:2600:2700:2800::/80".parse().unwrap();
        assert_eq!(
            ipv6_from_mac(subnet, mac).unwrap().to_string(),
            "2001:db8:2600:2700:2800:aabb:ccdd:eeff/80"
        );
        assert!(ipv6_from_mac("2001:db8::/96".parse().unwrap(), mac).is_none());
    }
}
