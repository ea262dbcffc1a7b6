//! Publishing and unpublishing ports: one port, a 1000-port range and a 10 000-port range, with
//! the userland proxy on and off, without and with the firewall (nftables or iptables, whichever
//! `Firewall::new` picks). Runs in a private network namespace, so it needs root; prints a skip
//! line and exits otherwise.
//!
//! Before the timings it prints the resident memory (VmRSS) before, during and after a
//! 10 000-port range is published, with the proxy on and off, cold and warm.
//!
//! `cargo bench -p libnetwork-portmapper --bench portmapper -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion};
use libnetwork_firewall::{Firewall, FirewallConfig, NetworkRules};
use libnetwork_portmapper::{PortMapper, PortMapperConfig};
use libnetwork_types::{PortBinding, Protocol};
use tokio::runtime::Runtime;

const BRIDGE: &str = "br-pmbench";
const CONTAINER: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 31, 0, 2));

fn range(len: u16) -> PortBinding {
    PortBinding {
        proto: Protocol::Tcp,
        ip: None,
        port: 10_000,
        host_ip: None,
        host_port: 20_000,
        host_port_end: 20_000 + len - 1,
    }
}

/// The firewall of the private namespace with the bench's network added, or `None` (with a
/// line saying why) when no backend works here.
fn firewall() -> Option<Arc<Firewall>> {
    let firewall = match Firewall::new(FirewallConfig::default()) {
        Ok(firewall) => firewall,
        Err(e) => {
            println!("firewall cases skipped: {e}");
            return None;
        }
    };
    let rules = NetworkRules {
        bridge: BRIDGE.into(),
        ipv4_subnet: "172.31.0.0/24".parse().expect("subnet"),
        ipv6_subnet: None,
        masquerade: true,
        snat_source: None,
        icc: true,
        internal: false,
        hairpin: false,
    };
    if let Err(e) = firewall.add_network(&rules) {
        println!("firewall cases skipped: {e}");
        return None;
    }
    println!("firewall backend: {}", firewall.backend());
    Some(Arc::new(firewall))
}

fn mapper(userland_proxy: bool, firewall: Option<Arc<Firewall>>) -> PortMapper {
    PortMapper::new(
        PortMapperConfig {
            userland_proxy,
            ..PortMapperConfig::default()
        },
        firewall,
    )
}

/// The range lengths measured: 10 000 only when the process may open that many sockets.
fn lens() -> Vec<u16> {
    if open_files_limit() >= 10_500 {
        vec![1, 1000, 10_000]
    } else {
        println!(
            "10000-port cases skipped: open files limit {} < 10500",
            open_files_limit()
        );
        vec![1, 1000]
    }
}

fn bench_map_unmap(c: &mut Criterion, rt: &Runtime, firewall: Option<Arc<Firewall>>) {
    let mut group = c.benchmark_group("map_unmap");
    group.sample_size(10);
    let firewalls: Vec<(&str, Option<Arc<Firewall>>)> = match firewall {
        Some(fw) => vec![("no_firewall", None), ("firewall", Some(fw))],
        None => vec![("no_firewall", None)],
    };
    for (fw_name, fw) in firewalls {
        for proxy in [true, false] {
            let pm = rt.block_on(async { mapper(proxy, fw.clone()) });
            let proxy_name = if proxy { "proxy" } else { "no_proxy" };
            for len in lens() {
                let id = BenchmarkId::new(format!("{fw_name}/{proxy_name}"), len);
                let bindings = [range(len)];
                group.bench_with_input(id, &bindings, |b, bindings| {
                    b.iter(|| {
                        rt.block_on(async {
                            let published = pm.map(BRIDGE, CONTAINER, bindings).await.expect("map");
                            pm.unmap(black_box(&published)).await.expect("unmap");
                        });
                    });
                });
            }
        }
    }
    group.finish();
}

/// The resident set size of this process, in KiB.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Publishes and unpublishes a 10 000-port range twice with the proxy on, then twice with it
/// off, and prints the resident memory each publication added: the first one is cold (run
/// before any other case of the bench, so nothing it needs was allocated before), the second
/// one reuses what the first one freed.
fn report_memory(rt: &Runtime) {
    for proxy in [true, false] {
        let pm = rt.block_on(async { mapper(proxy, None) });
        let bindings = [range(10_000)];
        for run in ["cold", "warm"] {
            let before = vm_rss_kib();
            let started = Instant::now();
            let published = rt
                .block_on(pm.map(BRIDGE, CONTAINER, &bindings))
                .expect("map");
            let map_time = started.elapsed();
            let during = vm_rss_kib();
            let started = Instant::now();
            rt.block_on(pm.unmap(&published)).expect("unmap");
            let unmap_time = started.elapsed();
            let after = vm_rss_kib();
            println!(
                "rss 10000-port range, proxy {}, {run}: before {before} KiB, published {during} KiB \
                 (+{} KiB, {:.0} B/port), after unmap {after} KiB; map {map_time:?}, unmap {unmap_time:?}",
                if proxy { "on" } else { "off" },
                during.saturating_sub(before),
                during.saturating_sub(before) as f64 * 1024.0 / 10_000.0,
            );
        }
    }
}

/// The soft limit of open files, from /proc/self/limits.
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(u64::MAX)
}

fn main() {
    if !libnetwork_testutil::privileged("portmapper bench") {
        println!("skipped portmapper bench: needs root to run in a private network namespace");
        return;
    }
    // Runtime threads are created after this, so they share the private namespace.
    libnetwork_testutil::enter_private_namespaces();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if lens().contains(&10_000) {
        report_memory(&rt);
    }
    let firewall = firewall();
    let mut c = Criterion::default().configure_from_args();
    bench_map_unmap(&mut c, &rt, firewall);
    c.final_summary();
}
