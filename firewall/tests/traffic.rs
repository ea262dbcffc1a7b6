//! Real traffic through the rules of both backends. The test's private namespace plays the host;
//! containers and an "outside" machine are namespaces made with the osl (see
//! `common::Topology`). Connections that the firewall must stop time out after about a second.

mod common;

use std::net::{IpAddr, SocketAddr};

use libnetwork_firewall::{BackendChoice, Firewall, FirewallConfig, NetworkRules, PortMapping};
use libnetwork_osl::Sandbox;
use libnetwork_types::Protocol;

use common::{HOST_OUTSIDE, OUTSIDE, Topology, network, probe, sh, tcp_mapping};

const GW_A: &str = "172.30.1.1";
const C1: &str = "172.30.1.2";
const C2: &str = "172.30.1.3";
const GW_B: &str = "172.30.2.1";
const C3: &str = "172.30.2.2";
const C4: &str = "172.30.2.3";

/// Network A (`br-a`: c1, c2) and network B (`br-b`: c3, c4) with the given rules, and the
/// outside machine.
struct World {
    topo: Topology,
    fw: Firewall,
    c1: Sandbox,
    c2: Sandbox,
    c3: Sandbox,
    c4: Sandbox,
}

fn world(backend: BackendChoice, a: &NetworkRules, b: &NetworkRules) -> World {
    let topo = Topology::new();
    topo.bridge("br-a", &format!("{GW_A}/24"));
    topo.bridge("br-b", &format!("{GW_B}/24"));
    let c1 = topo.container("c1", "br-a", &format!("{C1}/24"), GW_A);
    let c2 = topo.container("c2", "br-a", &format!("{C2}/24"), GW_A);
    let c3 = topo.container("c3", "br-b", &format!("{C3}/24"), GW_B);
    let c4 = topo.container("c4", "br-b", &format!("{C4}/24"), GW_B);
    let fw = Firewall::new(FirewallConfig {
        backend,
        ipv6: false,
    })
    .unwrap();
    fw.add_network(a).unwrap();
    fw.add_network(b).unwrap();
    World {
        topo,
        fw,
        c1,
        c2,
        c3,
        c4,
    }
}

fn net_a() -> NetworkRules {
    network("br-a", "172.30.1.0/24")
}

fn net_b() -> NetworkRules {
    network("br-b", "172.30.2.0/24")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

both_backends!(
    /// Containers of one network talk directly, and reach the outside masqueraded.
    one_network_talks_and_goes_out_masqueraded
);
fn one_network_talks_and_goes_out_masqueraded(backend: BackendChoice) {
    let w = world(backend, &net_a(), &net_b());
    let server = w.topo.serve(&w.c1, C1, 80);
    w.topo.connect(&w.c2, C1, 80).unwrap();
    assert_eq!(server.peer(), ip(C2));

    let outside = w.topo.serve(&w.topo.outside, OUTSIDE, 7000);
    w.topo.connect(&w.c2, OUTSIDE, 7000).unwrap();
    assert_eq!(outside.peer(), ip(HOST_OUTSIDE));
}

both_backends!(
    /// Containers of two networks cannot reach each other; both still reach the outside.
    networks_are_isolated_from_each_other
);
fn networks_are_isolated_from_each_other(backend: BackendChoice) {
    let w = world(backend, &net_a(), &net_b());
    let _s1 = w.topo.serve(&w.c1, C1, 80);
    let _s3 = w.topo.serve(&w.c3, C3, 80);
    assert!(w.topo.connect(&w.c3, C1, 80).is_err());
    assert!(w.topo.connect(&w.c1, C3, 80).is_err());

    let _outside = w.topo.serve(&w.topo.outside, OUTSIDE, 7000);
    w.topo.connect(&w.c1, OUTSIDE, 7000).unwrap();
    w.topo.connect(&w.c3, OUTSIDE, 7000).unwrap();
}

both_backends!(
    /// With icc off, containers of one network cannot talk directly, but a published port of
    /// one is still reachable from the other through the host address.
    icc_off_blocks_containers_of_one_network
);
fn icc_off_blocks_containers_of_one_network(backend: BackendChoice) {
    let mut a = net_a();
    a.icc = false;
    let w = world(backend, &a, &net_b());
    let server = w.topo.serve(&w.c1, C1, 80);
    assert!(w.topo.connect(&w.c2, C1, 80).is_err());

    w.fw.add_port_mappings(&[tcp_mapping("br-a", 8080..=8080, C1, 80)])
        .unwrap();
    w.topo.connect(&w.c2, HOST_OUTSIDE, 8080).unwrap();
    assert_eq!(server.peer(), ip(GW_A));
    // Network B, with icc on, is not affected.
    let _s3 = w.topo.serve(&w.c3, C3, 80);
    w.topo.connect(&w.c4, C3, 80).unwrap();
}

both_backends!(
    /// An internal network reaches nothing outside itself and nothing reaches it, but its
    /// containers talk to each other.
    an_internal_network_is_cut_off
);
fn an_internal_network_is_cut_off(backend: BackendChoice) {
    let mut b = net_b();
    b.internal = true;
    let w = world(backend, &net_a(), &b);
    let _outside = w.topo.serve(&w.topo.outside, OUTSIDE, 7000);
    let _s1 = w.topo.serve(&w.c1, C1, 80);
    let _s3 = w.topo.serve(&w.c3, C3, 80);

    assert!(w.topo.connect(&w.c3, OUTSIDE, 7000).is_err());
    assert!(w.topo.connect(&w.c3, C1, 80).is_err());
    assert!(w.topo.connect(&w.c1, C3, 80).is_err());
    assert!(w.topo.connect(&w.topo.outside, C3, 80).is_err());
    w.topo.connect(&w.c4, C3, 80).unwrap();
    // Network A keeps its way out.
    w.topo.connect(&w.c1, OUTSIDE, 7000).unwrap();
}

both_backends!(
    /// Published ports (single, same-port range, shifted range) answer from the outside and
    /// from the host itself, and the server sees the client's real address; nothing else gets
    /// in, and removing the mappings closes them.
    published_ports_answer_with_the_client_address
);
fn published_ports_answer_with_the_client_address(backend: BackendChoice) {
    let w = world(backend, &net_a(), &net_b());
    let single = w.topo.serve(&w.c1, C1, 80);
    let ranged = w.topo.serve(&w.c1, C1, 8500);
    let shifted = w.topo.serve(&w.c1, C1, 9050);
    let unpublished = w.topo.serve(&w.c1, C1, 81);
    let mappings = [
        tcp_mapping("br-a", 8080..=8080, C1, 80),
        tcp_mapping("br-a", 8000..=8999, C1, 8000),
        tcp_mapping("br-a", 9100..=9199, C1, 9000),
    ];
    w.fw.add_port_mappings(&mappings).unwrap();

    w.topo.connect(&w.topo.outside, HOST_OUTSIDE, 8080).unwrap();
    assert_eq!(single.peer(), ip(OUTSIDE));
    w.topo.connect(&w.topo.outside, HOST_OUTSIDE, 8500).unwrap();
    assert_eq!(ranged.peer(), ip(OUTSIDE));
    w.topo.connect(&w.topo.outside, HOST_OUTSIDE, 9150).unwrap();
    assert_eq!(shifted.peer(), ip(OUTSIDE));
    // From the host itself, to its own non-loopback address.
    probe(SocketAddr::new(ip(HOST_OUTSIDE), 8080)).unwrap();
    assert_eq!(single.peer(), ip(HOST_OUTSIDE));

    // The outside has a route to the containers, but only published traffic gets through.
    assert!(w.topo.connect(&w.topo.outside, C1, 81).is_err());
    drop(unpublished);

    w.fw.remove_port_mappings(&mappings).unwrap();
    assert!(w.topo.connect(&w.topo.outside, HOST_OUTSIDE, 8080).is_err());
}

both_backends!(
    /// In hairpin mode a container reaches a published port of its own network (and its own)
    /// through the host address; without hairpin the kernel leaves that to the userland proxy.
    hairpin_reaches_the_published_container
);
fn hairpin_reaches_the_published_container(backend: BackendChoice) {
    let mut b = net_b();
    b.hairpin = false;
    let w = world(backend, &net_a(), &b);
    let server = w.topo.serve(&w.c1, C1, 80);
    let _s3 = w.topo.serve(&w.c3, C3, 80);
    w.fw.add_port_mappings(&[
        tcp_mapping("br-a", 8080..=8080, C1, 80),
        tcp_mapping("br-b", 8081..=8081, C3, 80),
    ])
    .unwrap();

    w.topo.connect(&w.c2, HOST_OUTSIDE, 8080).unwrap();
    assert_eq!(server.peer(), ip(GW_A));
    // Back out of the port it came in: the bridge driver turns hairpin mode on for that.
    sh(
        "ip",
        &[
            "link",
            "set",
            "vc1",
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ],
    );
    w.topo.connect(&w.c1, HOST_OUTSIDE, 8080).unwrap();
    assert_eq!(server.peer(), ip(GW_A));

    // No DNAT from br-b: nothing listens on the host, so the connection is refused.
    assert!(w.topo.connect(&w.c4, HOST_OUTSIDE, 8081).is_err());
    // The outside still reaches br-b's published port.
    w.topo.connect(&w.topo.outside, HOST_OUTSIDE, 8081).unwrap();
}

both_backends!(
    /// Outgoing traffic is source-NATed to the configured address, or not at all with
    /// masquerading off.
    snat_source_and_masquerade_off
);
fn snat_source_and_masquerade_off(backend: BackendChoice) {
    let mut a = net_a();
    a.snat_source = Some("192.168.77.3".parse().unwrap());
    let mut b = net_b();
    b.masquerade = false;
    let w = world(backend, &a, &b);
    sh("ip", &["address", "add", "192.168.77.3/24", "dev", "vout"]);
    let outside = w.topo.serve(&w.topo.outside, OUTSIDE, 7000);

    w.topo.connect(&w.c1, OUTSIDE, 7000).unwrap();
    assert_eq!(outside.peer(), ip("192.168.77.3"));
    w.topo.connect(&w.c3, OUTSIDE, 7000).unwrap();
    assert_eq!(outside.peer(), ip(C3));
}

both_backends!(
    /// Rules in the user chain come before ours.
    the_user_chain_is_evaluated_first
);
fn the_user_chain_is_evaluated_first(backend: BackendChoice) {
    let w = world(backend, &net_a(), &net_b());
    let _outside = w.topo.serve(&w.topo.outside, OUTSIDE, 7000);
    w.topo.connect(&w.c1, OUTSIDE, 7000).unwrap();
    match backend {
        BackendChoice::Nftables => {
            sh(
                "nft",
                &[&format!(
                    "add rule inet libnetwork docker-user ip saddr {C1} drop"
                )],
            );
        }
        _ => {
            sh(
                "iptables",
                &["-w", "-A", "DOCKER-USER", "-s", C1, "-j", "DROP"],
            );
        }
    }
    assert!(w.topo.connect(&w.c1, OUTSIDE, 7000).is_err());
    w.topo.connect(&w.c2, OUTSIDE, 7000).unwrap();
}

both_backends!(
    /// Removing a network takes its connectivity away and leaves the other network working.
    removing_a_network_removes_its_connectivity
);
fn removing_a_network_removes_its_connectivity(backend: BackendChoice) {
    let w = world(backend, &net_a(), &net_b());
    let outside = w.topo.serve(&w.topo.outside, OUTSIDE, 7000);
    w.fw.add_port_mappings(&[tcp_mapping("br-a", 8080..=8080, C1, 80)])
        .unwrap();
    let _s1 = w.topo.serve(&w.c1, C1, 80);
    w.fw.remove_network("br-a").unwrap();

    // Not published any more, and no longer masqueraded: the reply goes to 172.30.1.2, which
    // the outside routes back through the host, so the connection works but shows the
    // container's own address.
    assert!(w.topo.connect(&w.topo.outside, HOST_OUTSIDE, 8080).is_err());
    w.topo.connect(&w.c1, OUTSIDE, 7000).unwrap();
    assert_eq!(outside.peer(), ip(C1));
    w.topo.connect(&w.c3, OUTSIDE, 7000).unwrap();
    assert_eq!(outside.peer(), ip(HOST_OUTSIDE));
}

both_backends!(
    /// Mappings on one host address (IPv4 and IPv6, shifted or not) answer on that address and
    /// not on another address of the host, and an IPv6 mapping on every address answers on any.
    host_specific_mappings_answer_on_their_address_only
);
fn host_specific_mappings_answer_on_their_address_only(backend: BackendChoice) {
    const OTHER_HOST: &str = "192.168.77.3";
    const GW6: &str = "fd00:30:1::1";
    const C1_6: &str = "fd00:30:1::2";
    const HOST6: &str = "fd00:77::1";
    const OTHER_HOST6: &str = "fd00:77::3";
    const OUTSIDE6: &str = "fd00:77::2";

    let topo = Topology::new();
    libnetwork_osl::sysctl::write("net.ipv6.conf.all.forwarding", "1").unwrap();
    // The host only solicits neighbours for forwarded packets from a link-local address that
    // passed duplicate address detection (a second or two after the bridge comes up): skip it.
    libnetwork_osl::sysctl::write("net.ipv6.conf.default.accept_dad", "0").unwrap();
    topo.bridge("br-a", &format!("{GW_A}/24"));
    topo.host_address("br-a", &format!("{GW6}/64"));
    let c1 = topo.container_with(
        "c1",
        "br-a",
        &[&format!("{C1}/24"), &format!("{C1_6}/64")],
        &[GW_A, GW6],
    );
    topo.host_address("vout", &format!("{OTHER_HOST}/24"));
    topo.host_address("vout", &format!("{HOST6}/64"));
    topo.host_address("vout", &format!("{OTHER_HOST6}/64"));
    topo.ip_in(
        &topo.outside,
        &[
            "-6",
            "address",
            "add",
            &format!("{OUTSIDE6}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    );
    let fw = Firewall::new(FirewallConfig {
        backend,
        ipv6: true,
    })
    .unwrap();
    let mut a = net_a();
    a.ipv6_subnet = Some("fd00:30:1::/64".parse().unwrap());
    fw.add_network(&a).unwrap();

    let on = |host: &str, ports: std::ops::RangeInclusive<u16>, container: &str, port: u16| {
        PortMapping {
            protocol: Protocol::Tcp,
            host_ip: Some(host.parse().unwrap()),
            host_ports: ports,
            container_ip: container.parse().unwrap(),
            container_port: port,
            bridge: "br-a".to_string(),
        }
    };
    let v4_shifted = topo.serve(&c1, C1, 80);
    let v4_same = topo.serve(&c1, C1, 8091);
    let v6_shifted = topo.serve(&c1, C1_6, 443);
    let v6_same = topo.serve(&c1, C1_6, 8053);
    let v6_any = topo.serve(&c1, C1_6, 444);
    fw.add_port_mappings(&[
        on(HOST_OUTSIDE, 8081..=8081, C1, 80),
        on(OTHER_HOST, 8090..=8099, C1, 8090),
        on(HOST6, 8443..=8443, C1_6, 443),
        on(HOST6, 8053..=8053, C1_6, 8053),
        PortMapping {
            host_ip: None,
            ..on(HOST6, 9443..=9444, C1_6, 443)
        },
    ])
    .unwrap();

    let out = &topo.outside;
    topo.connect(out, HOST_OUTSIDE, 8081).unwrap();
    assert_eq!(v4_shifted.peer(), ip(OUTSIDE));
    topo.connect(out, OTHER_HOST, 8091).unwrap();
    assert_eq!(v4_same.peer(), ip(OUTSIDE));
    topo.connect(out, HOST6, 8443).unwrap();
    assert_eq!(v6_shifted.peer(), ip(OUTSIDE6));
    topo.connect(out, HOST6, 8053).unwrap();
    assert_eq!(v6_same.peer(), ip(OUTSIDE6));
    topo.connect(out, OTHER_HOST6, 9444).unwrap();
    assert_eq!(v6_any.peer(), ip(OUTSIDE6));

    // Not on the host's other addresses: nothing listens there, the host refuses.
    assert!(topo.connect(out, OTHER_HOST, 8081).is_err());
    assert!(topo.connect(out, HOST_OUTSIDE, 8091).is_err());
    assert!(topo.connect(out, OTHER_HOST6, 8443).is_err());
    assert!(topo.connect(out, OTHER_HOST6, 8053).is_err());
}
