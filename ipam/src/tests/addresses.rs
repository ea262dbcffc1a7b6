//! Addresses: any, preferred, serial, gateway; reserved addresses; tiny and huge pools.

use libnetwork_ipamapi::{ErrorKind, Options};

use super::*;
use crate::addr::address_at;

#[test]
fn nth_address_of_a_pool_is_where_libnetwork_puts_it() {
    // TestRequest: (pool, how many requests, expected last address).
    let cases = [
        ("192.168.59.0/24", 254, "192.168.59.254"),
        ("192.168.240.0/20", 255, "192.168.240.255"),
        ("192.168.0.0/16", 256, "192.168.1.0"),
        ("10.16.0.0/16", 10_000, "10.16.39.16"),
        ("10.128.0.0/12", 255, "10.128.0.255"),
        ("10.0.0.0/8", 256, "10.0.1.0"),
        ("192.168.128.0/18", 4 * 256 - 1, "192.168.131.255"),
        ("192.168.240.0/20", 16 * 256 - 2, "192.168.255.254"),
    ];
    for (cidr, n, expected) in cases {
        let mut a = Allocator::default();
        let id = pool(&mut a, cidr);
        let mut last = None;
        for _ in 0..n {
            last = Some(take(&mut a, &id, ANY).unwrap());
        }
        assert_eq!(last, Some(ip(expected)), "{cidr} #{n}");
    }
}

#[test]
fn a_slash_24_hands_out_254_addresses_then_none() {
    let mut a = Allocator::default();
    let id = pool(&mut a, "192.168.59.0/24");
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("192.168.59.1"));
    for _ in 1..254 {
        take(&mut a, &id, ANY).unwrap();
    }
    let err = take(&mut a, &id, ANY).unwrap_err();
    assert!(
        matches!(err, ApiError::NoAvailableIps(ref p) if *p == id),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(a.allocation(&id).unwrap().free_count(), 0);
}

#[test]
fn every_pool_size_fills_up_completely() {
    // TestGetAddress, through the request path: every address but the reserved ones.
    for prefix in 20..=32u8 {
        let mut a = Allocator::default();
        let id = pool(&mut a, &format!("10.0.0.0/{prefix}"));
        let size = 1u64 << (32 - prefix);
        let usable = if size <= 2 { size } else { size - 2 };
        let mut got = 0;
        while take(&mut a, &id, ANY).is_ok() {
            got += 1;
        }
        assert_eq!(got, usable, "/{prefix}");
        assert_eq!(a.allocation(&id).unwrap().free_count(), 0, "/{prefix}");
    }
}

#[test]
fn release_then_request_returns_the_same_address() {
    // TestRelease: across a /23, every released address is the next one handed out.
    let mut a = Allocator::default();
    let id = pool(&mut a, "192.168.0.0/23");
    while take(&mut a, &id, ANY).is_ok() {}
    for ordinal in [1u64, 20, 255, 256, 300, 510] {
        let addr = address_at(&net("192.168.0.0/23"), ordinal);
        a.release_address(&id, addr).unwrap();
        assert!(!a.is_allocated(&id, addr));
        assert_eq!(take(&mut a, &id, ANY).unwrap(), addr);
    }
}

#[test]
fn sub_pool_hands_out_its_whole_range_and_reuses_lowest_first() {
    // TestRequestReleaseAddressFromSubPool.
    let mut a = Allocator::default();
    let id = sub_pool(&mut a, "172.28.0.0/16", "172.28.30.0/24");
    // libnetwork's sub-pool ranges include their own first and last addresses (quirk 3, kept).
    let first = take(&mut a, &id, ANY).unwrap();
    assert_eq!(first, ip("172.28.30.0"));
    let mut last = first;
    while let Ok(addr) = take(&mut a, &id, ANY) {
        last = addr;
    }
    assert_eq!(last, ip("172.28.30.255"));

    // Released addresses come back lowest first.
    for s in ["172.28.30.10", "172.28.30.2", "172.28.30.200"] {
        a.release_address(&id, ip(s)).unwrap();
    }
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("172.28.30.2"));
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("172.28.30.10"));
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("172.28.30.200"));

    // An explicit address, then sequential allocation around it.
    for s in ["172.28.30.3", "172.28.30.4", "172.28.30.5"] {
        a.release_address(&id, ip(s)).unwrap();
    }
    let pref = a
        .request_address(&id, Some(ip("172.28.30.4")), ANY)
        .unwrap();
    assert_eq!(pref.addr(), ip("172.28.30.4"));
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("172.28.30.3"));
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("172.28.30.5"));
}

#[test]
fn serial_allocation_does_not_reuse_released_addresses_until_it_wraps() {
    // TestSerializeRequestReleaseAddressFromSubPool and libnetwork's serial-vs-lowest behaviour.
    let mut a = Allocator::default();
    let id = sub_pool(&mut a, "172.28.0.0/16", "172.28.30.0/24");
    for _ in 0..5 {
        take(&mut a, &id, SERIAL).unwrap(); // .0 .. .4
    }
    a.release_address(&id, ip("172.28.30.1")).unwrap();
    a.release_address(&id, ip("172.28.30.2")).unwrap();
    // Lowest-first reuses .1 at once; serial continues after the last handed out.
    assert_eq!(take(&mut a.clone(), &id, ANY).unwrap(), ip("172.28.30.1"));
    assert_eq!(take(&mut a, &id, SERIAL).unwrap(), ip("172.28.30.5"));
    // Fill the rest serially; at the end the search wraps and finds .1, then .2.
    let mut last = ip("0.0.0.0");
    while let Ok(addr) = take(&mut a, &id, SERIAL) {
        last = addr;
    }
    assert_eq!(last, ip("172.28.30.2"));

    // The same on a whole pool: a released address is reused only after a wrap.
    let id = pool(&mut a, "10.1.0.0/29");
    for expected in ["10.1.0.1", "10.1.0.2", "10.1.0.3"] {
        assert_eq!(take(&mut a, &id, SERIAL).unwrap(), ip(expected));
    }
    a.release_address(&id, ip("10.1.0.2")).unwrap();
    for expected in ["10.1.0.4", "10.1.0.5", "10.1.0.6", "10.1.0.2"] {
        assert_eq!(take(&mut a, &id, SERIAL).unwrap(), ip(expected));
    }
}

#[test]
fn sub_pool_equal_to_its_pool_works() {
    // TestGetAddressSubPoolEqualPool.
    let mut a = Allocator::default();
    let id = sub_pool(&mut a, "172.18.0.0/16", "172.18.0.0/16");
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("172.18.0.1"));
}

#[test]
fn preferred_address_of_a_sub_pool_needs_only_be_inside_the_pool() {
    // As libnetwork: that is how a gateway outside --ip-range is reserved.
    let mut a = Allocator::default();
    let id = sub_pool(&mut a, "172.28.0.0/16", "172.28.5.0/24");
    let gw = a.request_address(&id, Some(ip("172.28.0.1")), ANY).unwrap();
    assert_eq!(gw, net("172.28.0.1/16"));
    let err = a
        .request_address(&id, Some(ip("172.29.0.1")), ANY)
        .unwrap_err();
    assert!(
        matches!(err, ApiError::IpOutOfRange { address, pool } if address == ip("172.29.0.1")
            && pool == net("172.28.0.0/16")),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::BadRequest);
}

#[test]
fn addresses_carry_the_pool_prefix_length_also_for_sub_pools() {
    let mut a = Allocator::default();
    let id = sub_pool(&mut a, "10.0.0.0/16", "10.0.4.0/24");
    let addr = a.request_address(&id, None, ANY).unwrap();
    assert_eq!(addr, net("10.0.4.0/16"));
}

#[test]
fn the_same_preferred_address_twice_is_a_conflict() {
    // TestGetSameAddress.
    let mut a = Allocator::default();
    let id = pool(&mut a, "192.168.100.0/24");
    a.request_address(&id, Some(ip("192.168.100.250")), ANY)
        .unwrap();
    let err = a
        .request_address(&id, Some(ip("192.168.100.250")), ANY)
        .unwrap_err();
    assert!(
        matches!(err, ApiError::IpAlreadyAllocated { address, ref pool_id }
            if address == ip("192.168.100.250") && *pool_id == id),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[test]
fn network_and_broadcast_addresses_are_never_handed_out_or_released() {
    let mut a = Allocator::default();
    let id = pool(&mut a, "10.2.0.0/24");
    for s in ["10.2.0.0", "10.2.0.255"] {
        let err = a.request_address(&id, Some(ip(s)), ANY).unwrap_err();
        assert!(
            matches!(err, ApiError::ReservedAddress { .. }),
            "{s}: {err}"
        );
        let err = a.release_address(&id, ip(s)).unwrap_err();
        assert!(
            matches!(err, ApiError::ReservedAddress { .. }),
            "{s}: {err}"
        );
        assert!(a.is_allocated(&id, ip(s)), "{s} stays reserved");
    }
    let v6 = a
        .request_pool(LOCAL, Some(net("2001:db8::/64")), None, true)
        .unwrap();
    let err = a
        .release_address(&v6.pool_id, ip("2001:db8::"))
        .unwrap_err();
    assert!(matches!(err, ApiError::ReservedAddress { .. }), "{err}");
}

#[test]
fn foreign_addresses_are_out_of_range() {
    // TestRequestSyntaxCheck (the typed API rules out the other cases).
    let mut a = Allocator::default();
    let id = pool(&mut a, "192.168.0.0/16");
    for s in ["172.17.0.1", "2001:db8::1"] {
        let err = a.request_address(&id, Some(ip(s)), ANY).unwrap_err();
        assert!(matches!(err, ApiError::IpOutOfRange { .. }), "{s}: {err}");
        let err = a.release_address(&id, ip(s)).unwrap_err();
        assert!(matches!(err, ApiError::IpOutOfRange { .. }), "{s}: {err}");
    }
}

#[test]
fn releasing_a_free_address_is_not_an_error() {
    let mut a = Allocator::default();
    let id = pool(&mut a, "10.3.0.0/24");
    a.release_address(&id, ip("10.3.0.7")).unwrap();
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("10.3.0.1"));
}

#[test]
fn releasing_a_pool_drops_its_addresses() {
    let mut a = Allocator::default();
    let id = pool(&mut a, "10.4.0.0/24");
    take(&mut a, &id, ANY).unwrap();
    take(&mut a, &id, ANY).unwrap();
    a.release_pool(&id).unwrap();
    let err = take(&mut a, &id, ANY).unwrap_err();
    assert!(matches!(err, ApiError::PoolNotFound(_)), "{err}");
    let id = pool(&mut a, "10.4.0.0/24");
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("10.4.0.1"));
}

#[test]
fn slash_31_pool_has_two_usable_addresses() {
    let mut a = Allocator::default();
    let id = pool(&mut a, "192.0.2.10/31");
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("192.0.2.10"));
    assert_eq!(take(&mut a, &id, ANY).unwrap(), ip("192.0.2.11"));
    assert!(matches!(
        take(&mut a, &id, ANY),
        Err(ApiError::NoAvailableIps(_))
    ));
    a.release_address(&id, ip("192.0.2.10")).unwrap();
    let again = a.request_address(&id, Some(ip("192.0.2.10")), ANY).unwrap();
    assert_eq!(again, net("192.0.2.10/31"));
}

#[test]
fn slash_32_pool_has_one_usable_address() {
    let mut a = Allocator::default();
    let id = pool(&mut a, "192.0.2.7/32");
    assert_eq!(
        a.request_address(&id, None, ANY).unwrap(),
        net("192.0.2.7/32")
    );
    assert!(matches!(
        take(&mut a, &id, ANY),
        Err(ApiError::NoAvailableIps(_))
    ));
    // The tiny IPv6 pools behave the same.
    let v6 = a
        .request_pool(LOCAL, Some(net("2001:db8::6/127")), None, true)
        .unwrap();
    assert_eq!(take(&mut a, &v6.pool_id, ANY).unwrap(), ip("2001:db8::6"));
    assert_eq!(take(&mut a, &v6.pool_id, ANY).unwrap(), ip("2001:db8::7"));
    let one = a
        .request_pool(LOCAL, Some(net("2001:db8::9/128")), None, true)
        .unwrap();
    assert_eq!(take(&mut a, &one.pool_id, ANY).unwrap(), ip("2001:db8::9"));
}

#[test]
fn ipv6_pools_start_at_one_even_when_huge() {
    let mut a = Allocator::default();
    let p64 = a
        .request_pool(LOCAL, Some(net("2001:db8:0:1::/64")), None, true)
        .unwrap();
    assert_eq!(
        a.request_address(&p64.pool_id, None, ANY).unwrap(),
        net("2001:db8:0:1::1/64")
    );
    assert_eq!(
        take(&mut a, &p64.pool_id, ANY).unwrap(),
        ip("2001:db8:0:1::2")
    );
    let p48 = a
        .request_pool(LOCAL, Some(net("2001:db8:1::/48")), None, true)
        .unwrap();
    assert_eq!(
        a.request_address(&p48.pool_id, None, ANY).unwrap(),
        net("2001:db8:1::1/48")
    );
    // The whole of each bitmap is a couple of runs, whatever the pool's size.
    assert!(a.allocation(&p48.pool_id).unwrap().to_bytes().len() < 64);
    // The last address of a /64 is outside the 2^64 - 1 bits of its bitmap.
    let err = a
        .request_address(
            &p64.pool_id,
            Some(ip("2001:db8:0:1:ffff:ffff:ffff:ffff")),
            ANY,
        )
        .unwrap_err();
    assert!(matches!(err, ApiError::IpOutOfRange { .. }), "{err}");
    let near_end = a
        .request_address(
            &p64.pool_id,
            Some(ip("2001:db8:0:1:ffff:ffff:ffff:fffe")),
            ANY,
        )
        .unwrap();
    assert_eq!(near_end.addr(), ip("2001:db8:0:1:ffff:ffff:ffff:fffe"));
}

#[test]
fn a_slash_48_allocates_in_its_first_two_to_the_64_addresses_only() {
    let mut a = Allocator::default();
    let p = a
        .request_pool(LOCAL, Some(net("2001:db8:1::/48")), None, true)
        .unwrap();
    // Inside the pool, beyond the window: refused rather than aliased onto the window.
    let err = a
        .request_address(&p.pool_id, Some(ip("2001:db8:1:5::1")), ANY)
        .unwrap_err();
    assert!(matches!(err, ApiError::IpOutOfRange { .. }), "{err}");
    let err = a
        .release_address(&p.pool_id, ip("2001:db8:1:5::1"))
        .unwrap_err();
    assert!(matches!(err, ApiError::IpOutOfRange { .. }), "{err}");
    // Sub-pools: inside the window fine, beyond it refused.
    let sub = a
        .request_pool(
            LOCAL,
            Some(net("2001:db8:1::/48")),
            Some(net("2001:db8:1::/64")),
            true,
        )
        .unwrap();
    assert_eq!(
        take(&mut a, &sub.pool_id, ANY).unwrap(),
        ip("2001:db8:1::1")
    );
    let err = a
        .request_pool(
            LOCAL,
            Some(net("2001:db8:1::/48")),
            Some(net("2001:db8:1:5::/64")),
            true,
        )
        .unwrap_err();
    assert!(matches!(err, ApiError::InvalidSubPool { .. }), "{err}");
}

#[test]
fn gateway_requests_take_the_lowest_free_address_even_when_serial() {
    let mut a = Allocator::default();
    let id = pool(&mut a, "10.5.0.0/24");
    let mut gateway = Options::new();
    gateway.insert(
        libnetwork_ipamapi::REQUEST_ADDRESS_TYPE.into(),
        libnetwork_ipamapi::GATEWAY_ADDRESS_TYPE.into(),
    );
    gateway.insert(
        libnetwork_ipamapi::ALLOC_SERIAL_PREFIX.into(),
        "true".into(),
    );
    let how = AddressRequest::from_options(&gateway);
    assert_eq!(
        how,
        AddressRequest {
            serial: true,
            gateway: true
        }
    );
    for _ in 0..3 {
        take(&mut a, &id, SERIAL).unwrap(); // .1 .2 .3
    }
    a.release_address(&id, ip("10.5.0.1")).unwrap();
    assert_eq!(
        a.request_address(&id, None, how).unwrap(),
        net("10.5.0.1/24")
    );
    // A gateway with a preferred address is reserved like any preferred address.
    a.release_address(&id, ip("10.5.0.1")).unwrap();
    let gw = a.request_address(&id, Some(ip("10.5.0.254")), how).unwrap();
    assert_eq!(gw, net("10.5.0.254/24"));
    // Serial requests continue after the last address handed out.
    assert_eq!(take(&mut a, &id, SERIAL).unwrap(), ip("10.5.0.4"));
}

#[test]
fn a_full_slash_16_takes_under_one_kib() {
    let mut a = Allocator::default();
    let id = pool(&mut a, "10.20.0.0/16");
    while take(&mut a, &id, ANY).is_ok() {}
    let seq = a.allocation(&id).unwrap();
    assert_eq!(seq.free_count(), 0);
    assert_eq!(seq.runs(), 0);
    assert!(
        seq.approx_heap_bytes() < 1024,
        "{}",
        seq.approx_heap_bytes()
    );
    let stored = a.bitmap_value(0, &id).unwrap();
    assert!(stored.len() < 1024, "{} bytes stored", stored.len());
    // A fresh /16 too.
    let fresh = pool(&mut a, "10.21.0.0/16");
    assert!(a.allocation(&fresh).unwrap().approx_heap_bytes() < 1024);
}
