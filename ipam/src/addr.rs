//! Address arithmetic: addresses as integers, pool sizes, ordinals and reserved addresses.
//!
//! An address's *ordinal* in a pool is its offset from the pool's network address; bit `n` of
//! a pool's bitmap stands for the address with ordinal `n`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The address as an integer (IPv4 addresses in the low 32 bits).
pub(crate) fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of integer `value` in the family of `like`. `value` must fit the family.
pub(crate) fn from_int(value: u128, like: &IpNet) -> IpAddr {
    match like {
        // Callers only pass values inside an IPv4 pool, which fit 32 bits.
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Number of host bits of the network.
pub(crate) fn host_bits(net: &IpNet) -> u8 {
    net.max_prefix_len() - net.prefix_len()
}

/// First and last address of the network, as integers.
pub(crate) fn bounds(net: &IpNet) -> (u128, u128) {
    (to_int(net.network()), to_int(net.broadcast()))
}

/// Whether two networks share at least one address (never across families).
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    if a.max_prefix_len() != b.max_prefix_len() {
        return false;
    }
    let (a_first, a_last) = bounds(a);
    let (b_first, b_last) = bounds(b);
    a_first <= b_last && b_first <= a_last
}

/// Number of bits of a pool's bitmap: one per address, capped at `2^64 - 1` (the most a bit
/// sequence holds). IPv6 pools of /64 or larger therefore cover only their first `2^64 - 1`
/// addresses, as in libnetwork.
pub(crate) fn bitmap_len(net: &IpNet) -> u64 {
    match host_bits(net) {
        h if h >= 64 => u64::MAX,
        h => 1u64 << h,
    }
}

/// The ordinals never handed out in a pool: the network address (ordinal 0) and, for IPv4,
/// the broadcast address (the last ordinal). Pools of one or two addresses (IPv4 /31 and /32,
/// IPv6 /127 and /128) reserve nothing, so that every address is usable (RFC 3021, RFC 6164).
pub(crate) fn reserved_ordinals(net: &IpNet) -> impl Iterator<Item = u64> {
    let big = host_bits(net) >= 2;
    let network = big.then_some(0);
    let broadcast = (big && matches!(net, IpNet::V4(_))).then(|| bitmap_len(net) - 1);
    network.into_iter().chain(broadcast)
}

/// Whether `ordinal` is reserved in the pool (see [`reserved_ordinals`]).
pub(crate) fn is_reserved(net: &IpNet, ordinal: u64) -> bool {
    reserved_ordinals(net).any(|r| r == ordinal)
}

/// The ordinal of `ip` in the pool, or `None` when `ip` is not in the pool or lies beyond the
/// pool's bitmap.
pub(crate) fn ordinal_of(net: &IpNet, ip: IpAddr) -> Option<u64> {
    if !net.contains(&ip) {
        return None;
    }
    let offset = to_int(ip) - to_int(net.network());
    u64::try_from(offset).ok().filter(|&o| o < bitmap_len(net))
}

/// The address with `ordinal` in the pool. `ordinal` must be below the pool's bitmap length.
pub(crate) fn address_at(net: &IpNet, ordinal: u64) -> IpAddr {
    from_int(to_int(net.network()) + u128::from(ordinal), net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ordinals_round_trip_through_addresses() {
        let pool = net("10.0.0.0/8");
        for ordinal in [1u64, 255, 256, 65_535, 65_536, (1 << 24) - 2] {
            let ip = address_at(&pool, ordinal);
            assert_eq!(ordinal_of(&pool, ip), Some(ordinal), "{ip}");
        }
        assert_eq!(address_at(&pool, 256).to_string(), "10.0.1.0");
        let v6 = net("2001:db8::/64");
        assert_eq!(address_at(&v6, 1).to_string(), "2001:db8::1");
        assert_eq!(
            ordinal_of(&v6, "2001:db8::ffff".parse().unwrap()),
            Some(0xffff)
        );
    }

    #[test]
    fn addresses_outside_the_pool_have_no_ordinal() {
        assert_eq!(
            ordinal_of(&net("10.0.0.0/24"), "10.0.1.0".parse().unwrap()),
            None
        );
        assert_eq!(
            ordinal_of(&net("10.0.0.0/24"), "2001:db8::1".parse().unwrap()),
            None
        );
        // A /48 is only covered in its first 2^64 - 1 addresses.
        let big = net("2001:db8::/48");
        assert_eq!(ordinal_of(&big, "2001:db8:0:1::".parse().unwrap()), None);
        assert_eq!(
            ordinal_of(&big, "2001:db8::ffff:ffff:ffff:fffe".parse().unwrap()),
            Some(u64::MAX - 1)
        );
        assert_eq!(
            ordinal_of(&big, "2001:db8::ffff:ffff:ffff:ffff".parse().unwrap()),
            None
        );
    }

    #[test]
    fn bitmap_sizes_follow_the_prefix_and_cap_at_two_to_the_64_minus_one() {
        assert_eq!(bitmap_len(&net("10.0.0.0/24")), 256);
        assert_eq!(bitmap_len(&net("10.0.0.0/31")), 2);
        assert_eq!(bitmap_len(&net("10.0.0.1/32")), 1);
        assert_eq!(bitmap_len(&net("0.0.0.0/0")), 1 << 32);
        assert_eq!(bitmap_len(&net("2001:db8::/65")), 1 << 63);
        assert_eq!(bitmap_len(&net("2001:db8::/64")), u64::MAX);
        assert_eq!(bitmap_len(&net("2001:db8::/48")), u64::MAX);
    }

    #[test]
    fn network_and_ipv4_broadcast_are_reserved_except_in_tiny_pools() {
        let r = |s: &str| reserved_ordinals(&net(s)).collect::<Vec<_>>();
        assert_eq!(r("10.0.0.0/24"), vec![0, 255]);
        assert_eq!(r("10.0.0.0/30"), vec![0, 3]);
        assert_eq!(r("10.0.0.0/31"), Vec::<u64>::new());
        assert_eq!(r("10.0.0.0/32"), Vec::<u64>::new());
        assert_eq!(r("2001:db8::/64"), vec![0]);
        assert_eq!(r("2001:db8::/126"), vec![0]);
        assert_eq!(r("2001:db8::/127"), Vec::<u64>::new());
        assert_eq!(r("2001:db8::/128"), Vec::<u64>::new());
    }

    #[test]
    fn overlap_needs_a_shared_address_of_the_same_family() {
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(overlaps(&net("10.1.0.0/16"), &net("10.0.0.0/8")));
        assert!(!overlaps(&net("10.0.0.0/16"), &net("10.1.0.0/16")));
        assert!(!overlaps(&net("0.0.0.0/0"), &net("::/0")));
    }
}
