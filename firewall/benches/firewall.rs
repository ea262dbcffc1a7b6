//! The cost of firewall changes on the real kernel, for both backends.
//!
//! Run with:
//! `cargo bench -p libnetwork-firewall --bench firewall -- --warm-up-time 1 --measurement-time 3`
//!
//! Needs root: without it the bench prints a skip line and exits 0. Everything runs in a
//! private network and mount namespace, so the machine's rules are never touched.
//!
//! Cases, per backend (`nftables/...`, `iptables/...`), each timing one call (one batch):
//! - `add_remove_network`: `add_network` then `remove_network` of a network with every rule;
//! - `add_remove_mapping`: `add_port_mappings` then `remove_port_mappings` of one single-port
//!   mapping (what publishing one port of a container costs, both ways);
//! - `map_range_1000`, `map_range_10000`: one mapping of a range of 1000 / 10000 ports to the
//!   same container ports;
//! - `map_range_10000_shifted`: the same with the container ports shifted (nftables has no
//!   shifted ranges and writes one map element per port);
//! - `map_100_single`: 100 single-port mappings in one call.
//!
//! Mapping cases remove what they added after each timed call, outside the timing.
#![allow(missing_docs)]
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use libnetwork_firewall::{BackendChoice, Firewall, FirewallConfig, NetworkRules, PortMapping};
use libnetwork_types::Protocol;

fn network(bridge: &str, subnet: &str) -> NetworkRules {
    NetworkRules {
        bridge: bridge.to_string(),
        ipv4_subnet: subnet.parse().unwrap(),
        ipv6_subnet: Some("fd00:99::/64".parse().unwrap()),
        masquerade: true,
        snat_source: None,
        icc: true,
        internal: false,
        hairpin: true,
    }
}

fn mapping(host_start: u16, len: u16, container_start: u16) -> PortMapping {
    PortMapping {
        protocol: Protocol::Tcp,
        host_ip: None,
        host_ports: host_start..=host_start + (len - 1),
        container_ip: "172.30.1.2".parse().unwrap(),
        container_port: container_start,
        bridge: "br-bench".to_string(),
    }
}

/// Times `add_port_mappings(mappings)` only; removes them after each call.
fn time_mappings(fw: &Firewall, mappings: &[PortMapping], iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        fw.add_port_mappings(black_box(mappings)).unwrap();
        total += start.elapsed();
        fw.remove_port_mappings(mappings).unwrap();
    }
    total
}

fn bench_backend(c: &mut Criterion, name: &str, backend: BackendChoice) {
    let fw = Firewall::new(FirewallConfig {
        backend,
        ipv6: true,
    })
    .unwrap();
    fw.add_network(&network("br-bench", "172.30.1.0/24"))
        .unwrap();
    // Some other networks, so the ruleset is not empty.
    for i in 0..5 {
        fw.add_network(&network(
            &format!("br-other{i}"),
            &format!("172.31.{i}.0/24"),
        ))
        .unwrap();
    }

    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    group.bench_function("add_remove_network", |b| {
        let net = network("br-churn", "172.30.9.0/24");
        b.iter(|| {
            fw.add_network(black_box(&net)).unwrap();
            fw.remove_network("br-churn").unwrap();
        });
    });
    group.bench_function("add_remove_mapping", |b| {
        let one = [mapping(7000, 1, 80)];
        b.iter(|| {
            fw.add_port_mappings(black_box(&one)).unwrap();
            fw.remove_port_mappings(&one).unwrap();
        });
    });
    let cases = [
        ("map_range_1000", vec![mapping(20000, 1000, 20000)]),
        ("map_range_10000", vec![mapping(20000, 10000, 20000)]),
        (
            "map_range_10000_shifted",
            vec![mapping(20000, 10000, 40000)],
        ),
        (
            "map_100_single",
            (0..100).map(|i| mapping(20000 + i, 1, 80)).collect(),
        ),
    ];
    for (case, mappings) in cases {
        group.bench_function(case, |b| {
            b.iter_custom(|iters| time_mappings(&fw, &mappings, iters));
        });
    }
    group.finish();
}

fn main() {
    if !libnetwork_testutil::privileged("firewall bench") {
        println!("skipped the firewall bench: it needs root");
        return;
    }
    libnetwork_testutil::enter_private_namespaces();
    let mut c = Criterion::default().configure_from_args();
    bench_backend(&mut c, "nftables", BackendChoice::Nftables);
    bench_backend(&mut c, "iptables", BackendChoice::Iptables);
    c.final_summary();
}
