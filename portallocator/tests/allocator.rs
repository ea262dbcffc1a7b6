//! Behaviour of the port allocator: libnetwork's test list (adapted to the overlap rule of the
//! unspecified address), the overlap rule itself, and a property test against a model.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use libnetwork_portallocator::{
    Error, PortAllocator, PortRange, PortRequest, Protocol, parse_protocol,
};
use libnetwork_types::ErrorKind;
use proptest::prelude::*;

const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn any4() -> IpAddr {
    ip("0.0.0.0")
}

fn allocator() -> PortAllocator {
    PortAllocator::new(PortRange::DEFAULT_DYNAMIC)
}

fn begin() -> u16 {
    PortRange::DEFAULT_DYNAMIC.start()
}

fn end() -> u16 {
    PortRange::DEFAULT_DYNAMIC.end()
}

// ---- libnetwork's tests -------------------------------------------------------------------

#[test]
fn first_dynamic_port_is_the_range_start_and_the_next_follows() {
    let mut pa = allocator();
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), begin());
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), begin() + 1);
}

#[test]
fn specific_port_is_granted_once() {
    let mut pa = allocator();
    assert_eq!(pa.request_port(any4(), TCP, 5000).unwrap(), 5000);
    let err = pa.request_port(any4(), TCP, 5000).unwrap_err();
    assert!(matches!(
        err,
        Error::PortAlreadyAllocated { port: 5000, .. }
    ));
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[test]
fn released_port_can_be_requested_again() {
    let mut pa = allocator();
    assert_eq!(pa.request_port(any4(), TCP, 5000).unwrap(), 5000);
    assert!(pa.release_port(any4(), TCP, 5000));
    assert_eq!(pa.request_port(any4(), TCP, 5000).unwrap(), 5000);
}

#[test]
fn releasing_a_port_that_is_not_held_is_harmless() {
    let mut pa = allocator();
    assert!(!pa.release_port(any4(), TCP, 5000));
    assert!(!pa.release_port(ip("10.0.0.1"), UDP, 5000));
    assert_eq!(pa.request_port(any4(), TCP, 5000).unwrap(), 5000);
}

#[test]
fn unknown_protocol_is_a_bad_request() {
    let err = parse_protocol("tcpp").unwrap_err();
    assert!(matches!(err, Error::UnknownProtocol(ref name) if name == "tcpp"));
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!("UDP".parse::<Protocol>().unwrap(), UDP);
    assert_eq!("sctp".parse::<Protocol>().unwrap(), Protocol::Sctp);
}

#[test]
fn allocating_all_ports_goes_in_order_and_then_fails() {
    let mut pa = allocator();
    for expected in begin()..=end() {
        assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), expected);
    }
    let err = pa.request_port(any4(), TCP, 0).unwrap_err();
    assert!(matches!(err, Error::AllPortsAllocated { .. }));
    assert_eq!(err.kind(), ErrorKind::Unavailable);

    // Another protocol is independent.
    assert_eq!(pa.request_port(any4(), UDP, 0).unwrap(), begin());

    // A released port in the middle is the next one handed out.
    let middle = begin() + 100;
    pa.release_port(any4(), TCP, middle);
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), middle);

    // So is the released last port.
    pa.release_port(any4(), TCP, end());
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), end());
    assert!(pa.request_port(any4(), TCP, 0).is_err());
}

#[test]
fn specific_addresses_are_independent_of_each_other() {
    let mut pa = allocator();
    let (ip1, ip2) = (ip("192.168.0.1"), ip("192.168.0.2"));
    assert_eq!(pa.request_port(ip1, TCP, 80).unwrap(), 80);
    assert_eq!(pa.request_port(ip2, TCP, 80).unwrap(), 80);
    assert!(pa.request_port(ip1, TCP, 80).is_err());

    let first = pa.request_port(ip1, TCP, 0).unwrap();
    let second = pa.request_port(ip1, TCP, 0).unwrap();
    assert_ne!(first, second);

    // A dynamic request never returns a port the same address already holds.
    let mut pa = allocator();
    pa.request_port(ip1, TCP, begin()).unwrap();
    assert_eq!(pa.request_port(ip1, TCP, 0).unwrap(), begin() + 1);
    assert_eq!(pa.request_port(ip2, TCP, 0).unwrap(), begin());
}

#[test]
fn invalid_custom_ranges_are_bad_requests() {
    let mut pa = allocator();
    for (start, end) in [(0, 10), (10, 0), (20, 10)] {
        let err = pa
            .request_port_in_range(any4(), TCP, start, end)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidPortRange { .. }),
            "{start}-{end}"
        );
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert_eq!(
            err.to_string(),
            format!("allocate port: invalid port range: {start}-{end}")
        );
    }
    assert_eq!(pa.allocated_count(), 0);
}

#[test]
fn custom_range_hands_out_its_ports_and_is_exhausted() {
    let mut pa = allocator();
    let a = pa.request_port_in_range(any4(), TCP, 10000, 10001).unwrap();
    let b = pa.request_port_in_range(any4(), TCP, 10000, 10001).unwrap();
    assert_eq!((a, b), (10000, 10001));
    let err = pa
        .request_port_in_range(any4(), TCP, 10000, 10001)
        .unwrap_err();
    assert!(matches!(err, Error::AllPortsAllocated { range, .. } if range.len() == 2));
}

#[test]
fn explicit_range_start_is_not_handed_out_again_dynamically() {
    let mut pa = allocator();
    assert_eq!(pa.request_port(any4(), TCP, begin()).unwrap(), begin());
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), begin() + 1);
}

// ---- search order ---------------------------------------------------------------------------

#[test]
fn released_port_is_reused_only_after_wrapping() {
    let mut pa = PortAllocator::new(PortRange::new(100, 103).unwrap());
    let ports: Vec<u16> = (0..3)
        .map(|_| pa.request_port(any4(), TCP, 0).unwrap())
        .collect();
    assert_eq!(ports, vec![100, 101, 102]);
    pa.release_port(any4(), TCP, 100);
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), 103);
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), 100);
}

#[test]
fn custom_ranges_keep_their_own_cursor_but_share_used_ports() {
    let mut pa = PortAllocator::new(PortRange::new(100, 110).unwrap());
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), 100);
    assert_eq!(
        pa.request_port_in_range(any4(), TCP, 100, 105).unwrap(),
        101
    );
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), 102);
    assert_eq!(
        pa.request_port_in_range(any4(), TCP, 100, 105).unwrap(),
        103
    );
}

#[test]
fn release_all_frees_everything_and_restarts_the_search() {
    let mut pa = allocator();
    pa.request_port(any4(), TCP, 0).unwrap();
    pa.request_port(ip("10.0.0.1"), UDP, 80).unwrap();
    pa.release_all();
    assert_eq!(pa.allocated_count(), 0);
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), begin());
    assert_eq!(pa.request_port(ip("10.0.0.1"), UDP, 80).unwrap(), 80);
}

#[test]
fn typed_requests_match_the_bounds_convention() {
    assert_eq!(
        PortRequest::from_bounds(0, 0).unwrap(),
        PortRequest::Dynamic
    );
    assert!(
        matches!(PortRequest::from_bounds(80, 80).unwrap(), PortRequest::Specific(p) if p.get() == 80)
    );
    assert_eq!(
        PortRequest::from_bounds(80, 90).unwrap(),
        PortRequest::InRange(PortRange::new(80, 90).unwrap())
    );
}

// ---- the unspecified address overlaps specific addresses of its family ----------------------

#[test]
fn unspecified_ipv4_cannot_take_a_port_held_by_a_specific_ipv4_address() {
    let mut pa = allocator();
    pa.request_port(ip("10.0.0.1"), TCP, 80).unwrap();
    let err = pa.request_port(any4(), TCP, 80).unwrap_err();
    assert_eq!(
        err,
        Error::PortAlreadyAllocated {
            ip: any4(),
            proto: TCP,
            port: 80,
            holder: ip("10.0.0.1")
        }
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        err.to_string(),
        "bind for 0.0.0.0:80/tcp failed: port is already allocated on 10.0.0.1"
    );
}

#[test]
fn specific_ipv4_address_cannot_take_a_port_held_by_the_unspecified_address() {
    let mut pa = allocator();
    pa.request_port(any4(), TCP, 8080).unwrap();
    let err = pa.request_port(ip("10.0.0.1"), TCP, 8080).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bind for 10.0.0.1:8080/tcp failed: port is already allocated on 0.0.0.0"
    );
    let err = pa.request_port(any4(), TCP, 8080).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bind for 0.0.0.0:8080/tcp failed: port is already allocated"
    );
}

#[test]
fn unspecified_ipv6_overlaps_specific_ipv6_addresses_both_ways() {
    let mut pa = allocator();
    pa.request_port(ip("2001:db8::1"), TCP, 80).unwrap();
    let err = pa.request_port(ip("::"), TCP, 80).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bind for [::]:80/tcp failed: port is already allocated on 2001:db8::1"
    );

    pa.request_port(ip("::"), TCP, 81).unwrap();
    let err = pa.request_port(ip("2001:db8::1"), TCP, 81).unwrap_err();
    assert!(matches!(err, Error::PortAlreadyAllocated { holder, .. } if holder == ip("::")));
}

#[test]
fn ipv4_and_ipv6_never_conflict() {
    let mut pa = allocator();
    pa.request_port(any4(), TCP, 80).unwrap();
    pa.request_port(ip("::"), TCP, 80).unwrap();
    pa.request_port(ip("2001:db8::1"), TCP, 81).unwrap();
    pa.request_port(any4(), TCP, 81).unwrap();
    pa.request_port(ip("10.0.0.1"), TCP, 82).unwrap();
    pa.request_port(ip("::"), TCP, 82).unwrap();
}

#[test]
fn protocols_never_conflict() {
    let mut pa = allocator();
    pa.request_port(ip("10.0.0.1"), TCP, 80).unwrap();
    pa.request_port(any4(), UDP, 80).unwrap();
    pa.request_port(any4(), Protocol::Sctp, 80).unwrap();
}

#[test]
fn ipv4_mapped_ipv6_addresses_count_as_ipv4() {
    let mut pa = allocator();
    pa.request_port(ip("::ffff:10.0.0.1"), TCP, 80).unwrap();
    assert!(pa.is_allocated(ip("10.0.0.1"), TCP, 80));
    assert!(pa.request_port(any4(), TCP, 80).is_err());
    assert!(pa.request_port(ip("::"), TCP, 80).is_ok());
}

#[test]
fn dynamic_search_skips_ports_held_by_overlapping_addresses() {
    let mut pa = PortAllocator::new(PortRange::new(100, 105).unwrap());
    pa.request_port(ip("10.0.0.1"), TCP, 100).unwrap();
    pa.request_port(ip("10.0.0.2"), TCP, 101).unwrap();
    assert_eq!(pa.request_port(any4(), TCP, 0).unwrap(), 102);
    assert_eq!(pa.request_port(ip("10.0.0.1"), TCP, 0).unwrap(), 101);
    assert_eq!(pa.request_port(ip("10.0.0.1"), TCP, 0).unwrap(), 103);
}

#[test]
fn the_unspecified_address_stays_blocked_until_every_specific_holder_releases() {
    let mut pa = allocator();
    pa.request_port(ip("10.0.0.1"), TCP, 80).unwrap();
    pa.request_port(ip("10.0.0.2"), TCP, 80).unwrap();
    pa.request_port(ip("10.0.0.3"), TCP, 80).unwrap();
    pa.release_port(ip("10.0.0.2"), TCP, 80);
    assert!(!pa.is_available(any4(), TCP, 80));
    pa.release_port(ip("10.0.0.1"), TCP, 80);
    assert!(!pa.is_available(any4(), TCP, 80));
    pa.release_port(ip("10.0.0.3"), TCP, 80);
    assert!(pa.is_available(any4(), TCP, 80));
    // The dynamic search sees the port free again too.
    assert_eq!(pa.request_port_in_range(any4(), TCP, 80, 81).unwrap(), 80);
}

#[test]
fn allocated_ports_lists_what_an_address_holds() {
    let mut pa = allocator();
    pa.request_port(ip("10.0.0.1"), TCP, 443).unwrap();
    pa.request_port(ip("10.0.0.1"), TCP, 80).unwrap();
    assert_eq!(pa.allocated_ports(ip("10.0.0.1"), TCP), vec![80, 443]);
    assert!(pa.allocated_ports(any4(), TCP).is_empty());
}

// ---- property test against a model ----------------------------------------------------------

/// The rule in its plainest form: a held (address, protocol, port) blocks the same address and,
/// within one family, the unspecified address blocks every address and every address blocks
/// the unspecified one.
#[derive(Debug, Default)]
struct Model {
    held: BTreeSet<(IpAddr, Protocol, u16)>,
    cursors: BTreeMap<(IpAddr, Protocol, PortRange), u16>,
}

impl Model {
    fn conflicts(&self, ip: IpAddr, proto: Protocol, port: u16) -> bool {
        self.held.iter().any(|&(other, p, q)| {
            p == proto
                && q == port
                && (other == ip
                    || (other.is_ipv6() == ip.is_ipv6()
                        && (other.is_unspecified() || ip.is_unspecified())))
        })
    }

    fn request(
        &mut self,
        ip: IpAddr,
        proto: Protocol,
        request: PortRequest,
        dynamic: PortRange,
    ) -> Option<u16> {
        let ip = ip.to_canonical();
        let range = match request {
            PortRequest::Specific(port) => {
                let port = port.get();
                if self.conflicts(ip, proto, port) {
                    return None;
                }
                self.held.insert((ip, proto, port));
                return Some(port);
            }
            PortRequest::Dynamic => dynamic,
            PortRequest::InRange(range) => range,
        };
        let next = match self.cursors.get(&(ip, proto, range)) {
            Some(&last) if last < range.end() => last + 1,
            _ => range.start(),
        };
        let port = (next..=range.end())
            .chain(range.start()..next)
            .find(|&port| !self.conflicts(ip, proto, port))?;
        self.held.insert((ip, proto, port));
        self.cursors.insert((ip, proto, range), port);
        Some(port)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Request(usize, Protocol, PortRequest),
    Release(usize, Protocol, u16),
    /// Releases the n-th held port (modulo the number held), so releases hit often.
    ReleaseHeld(usize),
    ReleaseAll,
}

const ADDRESSES: [&str; 9] = [
    "0.0.0.0",
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "::",
    "::1",
    "2001:db8::1",
    "2001:db8::2",
    "::ffff:10.0.0.2",
];

fn op() -> impl Strategy<Value = Op> {
    let proto = prop_oneof![Just(TCP), Just(UDP)];
    let request = prop_oneof![
        Just(PortRequest::Dynamic),
        (97u16..=104).prop_map(|p| PortRequest::Specific(p.try_into().unwrap())),
        prop_oneof![Just((96u16, 100u16)), Just((102, 104)), Just((105, 109))]
            .prop_map(|(s, e)| PortRequest::InRange(PortRange::new(s, e).unwrap())),
    ];
    prop_oneof![
        6 => (0..ADDRESSES.len(), proto.clone(), request).prop_map(|(a, p, r)| Op::Request(a, p, r)),
        3 => (0..ADDRESSES.len(), proto, 97u16..=104).prop_map(|(a, p, port)| Op::Release(a, p, port)),
        4 => any::<usize>().prop_map(Op::ReleaseHeld),
        1 => Just(Op::ReleaseAll),
    ]
}

proptest! {
    #[test]
    fn allocator_matches_the_model(ops in proptest::collection::vec(op(), 1..200)) {
        let dynamic = PortRange::new(100, 107).unwrap();
        let mut pa = PortAllocator::new(dynamic);
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Request(a, proto, request) => {
                    let addr = ip(ADDRESSES[a]);
                    let expected = model.request(addr, proto, request, dynamic);
                    let got = pa.request(addr, proto, request);
                    match (&got, expected) {
                        (Ok(port), Some(want)) => prop_assert_eq!(*port, want),
                        (Err(Error::PortAlreadyAllocated { holder, port, .. }), None) => {
                            prop_assert!(model.held.contains(&(*holder, proto, *port)));
                        }
                        (Err(Error::AllPortsAllocated { .. }), None) => {}
                        _ => prop_assert!(false, "{op:?}: got {got:?}, model {expected:?}"),
                    }
                }
                Op::Release(a, proto, port) => {
                    let addr = ip(ADDRESSES[a]).to_canonical();
                    let expected = model.held.remove(&(addr, proto, port));
                    prop_assert_eq!(pa.release_port(addr, proto, port), expected);
                }
                Op::ReleaseHeld(n) => {
                    if model.held.is_empty() {
                        continue;
                    }
                    let held = *model.held.iter().nth(n % model.held.len()).unwrap();
                    model.held.remove(&held);
                    prop_assert!(pa.release_port(held.0, held.1, held.2));
                }
                Op::ReleaseAll => {
                    pa.release_all();
                    model = Model::default();
                }
            }
            for addr in ADDRESSES.map(ip) {
                for proto in [TCP, UDP] {
                    let want: Vec<u16> = model
                        .held
                        .iter()
                        .filter(|&&(i, p, _)| i == addr.to_canonical() && p == proto)
                        .map(|&(_, _, port)| port)
                        .collect();
                    prop_assert_eq!(pa.allocated_ports(addr, proto), want);
                    for port in 95u16..=110 {
                        prop_assert_eq!(
                            pa.is_available(addr, proto, port),
                            !model.conflicts(addr.to_canonical(), proto, port)
                        );
                    }
                }
            }
            prop_assert_eq!(pa.allocated_count(), model.held.len());
        }
    }
}
