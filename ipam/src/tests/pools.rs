//! Pools: explicit, sub-pools, predefined, overlaps, reference counts.

use libnetwork_ipamapi::ErrorKind;

use super::*;
use crate::{NetworkToSplit, PredefinedPools};

#[test]
fn same_pool_is_allowed_once_per_address_space() {
    // TestAddSubnets.
    let mut a = Allocator::default();
    let local = a
        .request_pool(LOCAL, Some(net("10.0.0.0/8")), None, false)
        .unwrap();
    assert_eq!(local.pool_id, "LocalDefault/10.0.0.0/8");
    assert_eq!(local.pool, net("10.0.0.0/8"));
    let global = a
        .request_pool(GLOBAL, Some(net("10.0.0.0/8")), None, false)
        .unwrap();
    assert_eq!(global.pool_id, "GlobalDefault/10.0.0.0/8");

    let err = a
        .request_pool(LOCAL, Some(net("10.0.0.0/8")), None, false)
        .unwrap_err();
    assert!(
        matches!(err, ApiError::PoolOverlap { ref address_space, requested, existing }
            if address_space == LOCAL && requested == net("10.0.0.0/8")
                && existing == net("10.0.0.0/8")),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[test]
fn overlap_errors_name_both_subnets() {
    let mut a = Allocator::default();
    pool(&mut a, "10.0.0.0/8");
    let err = a
        .request_pool(LOCAL, Some(net("10.128.0.0/9")), None, false)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("10.128.0.0/9") && msg.contains("10.0.0.0/8"),
        "{msg}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);

    // IPv6: a /112 and then an overlapping /64.
    a.request_pool(LOCAL, Some(net("2001:db8:1:2:f::/112")), None, true)
        .unwrap();
    let err = a
        .request_pool(LOCAL, Some(net("2001:db8:1:2::/64")), None, true)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("2001:db8:1:2::/64") && msg.contains("2001:db8:1:2:f::/112"),
        "{msg}"
    );
}

#[test]
fn only_disjoint_pools_may_coexist_in_22_overlap_combinations() {
    // TestOverlappingRequests: (pools already reserved, requested pool, allowed).
    let cases: [(&[&str], &str, bool); 22] = [
        // Disjoint.
        (&["10.0.0.0/8"], "11.0.0.0/8", true),
        (&["74.0.0.0/7"], "9.111.99.72/30", true),
        (&["110.192.0.0/10"], "16.0.0.0/10", true),
        // The reserved pool contains the request (or equals it).
        (&["10.0.0.0/8"], "10.0.0.0/8", false),
        (&["0.0.0.0/1"], "16.182.0.0/15", false),
        (&["16.0.0.0/4"], "17.11.66.0/23", false),
        // The reserved pool is at the start of the request.
        (&["0.0.0.0/1"], "0.0.0.0/0", false),
        (&["64.0.0.0/6"], "64.0.0.0/3", false),
        (&["112.0.0.0/6"], "112.0.0.0/4", false),
        // The reserved pool is at the end of the request.
        (&["96.0.0.0/3"], "0.0.0.0/1", false),
        (&["192.0.0.0/2"], "128.0.0.0/1", false),
        (&["95.0.0.0/8"], "92.0.0.0/6", false),
        // The reserved pool is in the middle of the request, or beside it.
        (&["10.0.0.0/8"], "0.0.0.0/1", false),
        (&["10.0.0.0/8"], "8.0.0.0/6", false),
        (&["10.0.0.0/8"], "20.0.0.0/6", true),
        // Several reserved pools.
        (&["10.0.0.0/8", "20.0.0.0/8"], "16.0.0.0/4", false),
        (&["10.0.0.0/8", "20.0.0.0/8"], "30.0.0.0/8", true),
        // IPv6, and across families.
        (&["2001:db8::/32"], "2001:db9::/32", true),
        (&["2001:db8::/32"], "2001:db8:1::/48", false),
        (&["2001:db8:1::/48"], "2001:db8::/32", false),
        (&["2001:db8::/64"], "2001:db8::/64", false),
        (&["10.0.0.0/8"], "::a00:0/104", true),
    ];
    for (reserved, requested, allowed) in cases {
        let mut a = Allocator::default();
        for r in reserved {
            pool(&mut a, r);
        }
        let result = a.request_pool(LOCAL, Some(net(requested)), None, false);
        match (allowed, result) {
            (true, Ok(grant)) => assert_eq!(grant.pool, net(requested)),
            (
                false,
                Err(ApiError::PoolOverlap {
                    requested: r,
                    existing,
                    ..
                }),
            ) => {
                assert_eq!(r, net(requested));
                assert!(reserved.iter().any(|e| net(e) == existing), "{existing}");
            }
            (allowed, result) => panic!("{reserved:?} + {requested}: {allowed} but {result:?}"),
        }
    }
}

#[test]
fn a_pool_given_with_host_bits_means_its_network() {
    let mut a = Allocator::default();
    let grant = a
        .request_pool(LOCAL, Some(net("10.1.2.3/16")), None, false)
        .unwrap();
    assert_eq!(grant.pool_id, "LocalDefault/10.1.0.0/16");
    assert_eq!(grant.pool, net("10.1.0.0/16"));
}

#[test]
fn double_pool_release_fails() {
    // TestDoublePoolRelease.
    let mut a = Allocator::default();
    let id = pool(&mut a, "10.0.0.0/8");
    a.release_pool(&id).unwrap();
    let err = a.release_pool(&id).unwrap_err();
    assert!(
        matches!(err, ApiError::PoolNotFound(ref p) if *p == id),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn reference_counts_follow_pool_and_sub_pool_requests() {
    // TestAddReleasePoolID.
    let mut a = Allocator::default();
    let refs = |a: &Allocator, id: &str| a.pool(id).map(|p| p.ref_count);
    let master = pool(&mut a, "10.0.0.0/8");
    assert_eq!(refs(&a, &master), Some(1));

    let sub = sub_pool(&mut a, "10.0.0.0/8", "10.0.0.0/16");
    assert_eq!(sub, "LocalDefault/10.0.0.0/8/10.0.0.0/16");
    assert_eq!(refs(&a, &master), Some(2));
    assert_eq!(refs(&a, &sub), Some(1));

    // The same sub-pool again is refused; another sub-pool (even an overlapping one) is not.
    let err = a
        .request_pool(
            LOCAL,
            Some(net("10.0.0.0/8")),
            Some(net("10.0.0.0/16")),
            false,
        )
        .unwrap_err();
    assert!(matches!(err, ApiError::PoolOverlap { .. }), "{err}");
    assert_eq!(refs(&a, &master), Some(2));
    let sub2 = sub_pool(&mut a, "10.0.0.0/8", "10.0.0.0/12");
    assert_eq!(refs(&a, &master), Some(3));

    a.release_pool(&sub).unwrap();
    assert_eq!(refs(&a, &master), Some(2));
    assert_eq!(refs(&a, &sub), None);
    a.release_pool(&master).unwrap();
    assert_eq!(
        refs(&a, &master),
        Some(1),
        "still held by the other sub-pool"
    );
    a.release_pool(&sub2).unwrap();
    assert_eq!(
        refs(&a, &master),
        None,
        "pool removed with its last reference"
    );
    assert!(a.allocation(&master).is_none());

    // Requesting it again gives the same id.
    assert_eq!(pool(&mut a, "10.0.0.0/8"), master);
}

#[test]
fn a_sub_pool_reserves_its_pool_which_must_not_overlap_another() {
    let mut a = Allocator::default();
    let grant = a
        .request_pool(
            LOCAL,
            Some(net("172.28.0.0/16")),
            Some(net("172.28.30.0/24")),
            false,
        )
        .unwrap();
    assert_eq!(grant.pool, net("172.28.0.0/16"));
    assert_eq!(grant.created.as_deref(), Some("LocalDefault/172.28.0.0/16"));
    let master = a.pool("LocalDefault/172.28.0.0/16").unwrap();
    assert_eq!(master.ref_count, 1);

    // The implicit pool blocks overlapping pools...
    let err = a
        .request_pool(LOCAL, Some(net("172.28.0.0/20")), None, false)
        .unwrap_err();
    assert!(matches!(err, ApiError::PoolOverlap { .. }), "{err}");
    // ...and a sub-pool of an overlapping, different pool is refused (libnetwork accepts it).
    let err = a
        .request_pool(
            LOCAL,
            Some(net("172.28.0.0/15")),
            Some(net("172.29.0.0/24")),
            false,
        )
        .unwrap_err();
    assert!(
        matches!(err, ApiError::PoolOverlap { requested, existing, .. }
            if requested == net("172.28.0.0/15") && existing == net("172.28.0.0/16")),
        "{err}"
    );
    // Releasing the pool itself is refused: only its sub-pool holds it.
    let err = a.release_pool("LocalDefault/172.28.0.0/16").unwrap_err();
    assert!(matches!(err, ApiError::PoolNotFound(_)), "{err}");
    assert_eq!(a.pool("LocalDefault/172.28.0.0/16").unwrap().ref_count, 1);
}

#[test]
fn invalid_sub_pools_are_rejected_without_changes() {
    let mut a = Allocator::default();
    let cases = [
        (None, "10.0.1.0/24"),
        (Some("10.0.0.0/16"), "10.1.0.0/24"),
        (Some("10.0.0.0/16"), "10.0.0.0/8"),
        (Some("10.0.0.0/16"), "2001:db8::/64"),
    ];
    for (p, s) in cases {
        let err = a
            .request_pool(LOCAL, p.map(net), Some(net(s)), false)
            .unwrap_err();
        assert!(
            matches!(err, ApiError::InvalidSubPool { sub_pool, .. } if sub_pool == net(s)),
            "{p:?} {s}: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::BadRequest);
    }
    assert!(a.pool_ids(LOCAL).is_empty());
}

#[test]
fn unknown_or_empty_address_spaces_are_rejected() {
    let mut a = Allocator::default();
    for space in ["", "abc", "localdefault"] {
        let err = a
            .request_pool(space, Some(net("10.0.0.0/8")), None, false)
            .unwrap_err();
        assert!(
            matches!(err, ApiError::InvalidAddressSpace(ref s) if s == space),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::BadRequest);
    }
}

#[test]
fn malformed_and_unknown_pool_ids_are_told_apart() {
    let mut a = Allocator::default();
    for bad in ["", "LocalDefault", "LocalDefault/10.0.0.0", "x/y/z"] {
        let err = a.release_pool(bad).unwrap_err();
        assert!(matches!(err, ApiError::InvalidPoolId(_)), "{bad:?}: {err}");
        let err = a.request_address(bad, None, ANY).unwrap_err();
        assert!(matches!(err, ApiError::InvalidPoolId(_)), "{bad:?}: {err}");
        let err = a.release_address(bad, ip("10.0.0.1")).unwrap_err();
        assert!(matches!(err, ApiError::InvalidPoolId(_)), "{bad:?}: {err}");
    }
    for unknown in ["LocalDefault/10.0.0.0/8", "Other/10.0.0.0/8"] {
        let err = a.release_pool(unknown).unwrap_err();
        assert!(matches!(err, ApiError::PoolNotFound(_)), "{unknown}: {err}");
        let err = a.request_address(unknown, None, ANY).unwrap_err();
        assert!(matches!(err, ApiError::PoolNotFound(_)), "{unknown}: {err}");
    }
}

#[test]
fn predefined_pools_start_with_the_first_of_each_list() {
    let mut a = Allocator::default();
    let local = a.request_pool(LOCAL, None, None, false).unwrap();
    assert_eq!(local.pool, net("172.17.0.0/16"));
    assert_eq!(local.pool_id, "LocalDefault/172.17.0.0/16");
    let global = a.request_pool(GLOBAL, None, None, false).unwrap();
    assert_eq!(global.pool, net("10.0.0.0/24"));
}

#[test]
fn predefined_pools_are_handed_out_round_robin() {
    // TestPoolAllocationReuse: a released pool is not handed out again before every other
    // pool of the list was.
    let mut a = Allocator::default();
    let mut seen = Vec::new();
    for _ in 0..31 {
        let grant = a.request_pool(LOCAL, None, None, false).unwrap();
        assert!(
            !seen.contains(&grant.pool),
            "{} handed out twice",
            grant.pool
        );
        seen.push(grant.pool);
        a.release_pool(&grant.pool_id).unwrap();
    }
    assert_eq!(seen.len(), 31);
    // The list wraps around.
    let again = a.request_pool(LOCAL, None, None, false).unwrap();
    assert_eq!(again.pool, net("172.17.0.0/16"));
}

#[test]
fn predefined_pools_skip_reserved_pools() {
    // TestPredefinedPool: the next predefined pool differs from the one taken.
    let mut a = Allocator::default();
    pool(&mut a, "172.17.0.0/16");
    pool(&mut a, "172.18.128.0/24");
    let grant = a.request_pool(LOCAL, None, None, false).unwrap();
    assert_eq!(grant.pool, net("172.19.0.0/16"));
    // A large reserved pool skips every predefined pool inside it.
    let mut g = Allocator::default();
    g.request_pool(GLOBAL, Some(net("10.0.0.0/9")), None, false)
        .unwrap();
    let grant = g.request_pool(GLOBAL, None, None, false).unwrap();
    assert_eq!(grant.pool, net("10.128.0.0/24"));
}

#[test]
fn predefined_local_pools_skip_host_routes() {
    let mut a = Allocator::default();
    a.set_host_routes([
        net("172.17.0.0/16"),
        net("172.18.5.0/24"),
        net("0.0.0.0/0"), // the default route is ignored, or nothing would be free
        net("10.0.0.0/24"),
    ]);
    assert_eq!(a.host_routes().len(), 3);
    let grant = a.request_pool(LOCAL, None, None, false).unwrap();
    assert_eq!(grant.pool, net("172.19.0.0/16"));
    // Global pools do not look at the host's routes.
    let global = a.request_pool(GLOBAL, None, None, false).unwrap();
    assert_eq!(global.pool, net("10.0.0.0/24"));
    // Nor do explicit pools (the caller asked for that subnet).
    pool(&mut a, "172.17.0.0/16");
}

#[test]
fn no_free_predefined_pool_is_unavailable() {
    let list = [NetworkToSplit::new("10.10.0.0/23", 24)];
    let mut a = Allocator::new(
        PredefinedPools::new(&list).unwrap(),
        PredefinedPools::global_default(),
    );
    assert_eq!(
        a.request_pool(LOCAL, None, None, false).unwrap().pool,
        net("10.10.0.0/24")
    );
    assert_eq!(
        a.request_pool(LOCAL, None, None, false).unwrap().pool,
        net("10.10.1.0/24")
    );
    let err = a.request_pool(LOCAL, None, None, false).unwrap_err();
    assert!(
        matches!(err, ApiError::NoAvailablePool { v6: false, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // No IPv6 base is configured, so no IPv6 pool can be picked.
    let err = a.request_pool(LOCAL, None, None, true).unwrap_err();
    assert!(
        matches!(err, ApiError::NoAvailablePool { v6: true, .. }),
        "{err}"
    );
    // An empty list has nothing to give.
    let mut empty = Allocator::new(
        PredefinedPools::new(&[]).unwrap(),
        PredefinedPools::new(&[]).unwrap(),
    );
    let err = empty.request_pool(GLOBAL, None, None, false).unwrap_err();
    assert!(matches!(err, ApiError::NoAvailablePool { .. }), "{err}");
}

#[test]
fn predefined_ipv6_pools_come_from_configured_ipv6_bases() {
    let list = [
        NetworkToSplit::new("10.10.0.0/16", 24),
        NetworkToSplit::new("fd00:1::/48", 64),
    ];
    let mut a = Allocator::new(
        PredefinedPools::new(&list).unwrap(),
        PredefinedPools::global_default(),
    );
    let v6 = a.request_pool(LOCAL, None, None, true).unwrap();
    assert_eq!(v6.pool, net("fd00:1::/64"));
    let v4 = a.request_pool(LOCAL, None, None, false).unwrap();
    assert_eq!(v4.pool, net("10.10.0.0/24"));
    let v6 = a.request_pool(LOCAL, None, None, true).unwrap();
    assert_eq!(v6.pool, net("fd00:1:0:1::/64"));
}

#[test]
fn pools_of_both_families_are_requested_and_released_in_both_spaces() {
    // TestRemoveSubnet.
    let mut a = Allocator::default();
    let pools = [
        (LOCAL, "192.168.0.0/16", false),
        (LOCAL, "172.17.0.0/16", false),
        (LOCAL, "10.0.0.0/8", false),
        (LOCAL, "2001:db8:1:2:3:4:ffff::/112", true),
        (GLOBAL, "172.17.0.0/16", false),
        (GLOBAL, "10.0.0.0/8", false),
        (GLOBAL, "2001:db8:1:2:3:4:5::/112", true),
        (GLOBAL, "2001:db8:1:2:3:4:ffff::/112", true),
    ];
    let ids: Vec<String> = pools
        .iter()
        .map(|(s, p, v6)| a.request_pool(s, Some(net(p)), None, *v6).unwrap().pool_id)
        .collect();
    for id in &ids {
        a.release_pool(id).unwrap();
    }
    assert!(a.pool_ids(LOCAL).is_empty() && a.pool_ids(GLOBAL).is_empty());
}
