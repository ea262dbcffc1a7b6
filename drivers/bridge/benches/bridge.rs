//! The bridge driver on the real kernel: attach and detach of a container with one published
//! port, and publishing large port ranges.
//!
//! Needs root: without it the bench prints a skip line and exits 0. Each firewall backend runs
//! in its own private network and mount namespace (`libnetwork_testutil`), so the machine's
//! namespaces and rules are never touched.
//!
//! `BRIDGE_BENCH_PROXY=0` runs without the userland proxy.
//!
//! Scenarios, per firewall backend (`BRIDGE_BENCH_BACKENDS`, default `nftables,iptables`;
//! `none` runs without a firewall, to show what the rules cost):
//! 1. attach/detach, `BRIDGE_BENCH_RUNS` times (default 100): attach is `create_endpoint` +
//!    `join` (veth born in the sandbox, host end on the bridge) + `program_external_connectivity`
//!    with one published TCP port (DNAT rule + userland proxy listener); detach is
//!    `revoke_external_connectivity` + `leave` + `delete_endpoint`. The sandboxes are made before
//!    the timed loop, one per run. Reported: median and p99 of each, and the median of each step.
//! 2. port ranges: one endpoint publishes 1000 ports, then 10000 ports (host range = container
//!    range), timed as `program_external_connectivity`; reported with the number of ruleset
//!    lines the mapping added, the resident memory it added, and the child processes left; then
//!    revoked (returns at once) and timed until the background withdrawal is done.
//!    `BRIDGE_BENCH_RANGE_RUNS` (default 1) repeats each size that many times and adds a median
//!    line per size.
//!
//! `BRIDGE_BENCH_SCENARIOS` (default `attach,ranges`) picks the scenarios to run.
#![allow(missing_docs)]
#![allow(clippy::print_stdout)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use libnetwork_datastore::MemoryStore;
use libnetwork_driver_bridge::{BridgeDriver, BridgeDriverOptions, DriverConfig};
use libnetwork_driverapi::{
    CreateNetworkRequest, Driver, EndpointInterface, EndpointOptions, IpamData, JoinOptions,
    NetworkOptions, PortBinding, Protocol,
};
use libnetwork_firewall::{BackendChoice, Firewall, FirewallConfig};
use libnetwork_osl::{Host, Sandbox, netns};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and 99th percentile.
fn stats(samples: &[Duration]) -> (Duration, Duration) {
    let mut v = samples.to_vec();
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or_default()
    };
    (at(0.5), at(0.99))
}

async fn timed<T, E: std::fmt::Debug>(
    samples: &mut Vec<Duration>,
    f: impl Future<Output = Result<T, E>>,
) -> T {
    let start = Instant::now();
    let out = f.await.expect("step");
    samples.push(start.elapsed());
    out
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Child processes of this process, over all its threads.
fn children() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .map(|c| c.split_whitespace().count())
        .sum()
}

fn ruleset_lines(backend: Backend) -> usize {
    let dump = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0)
    };
    match backend {
        None => 0,
        Some(BackendChoice::Iptables) => dump("iptables-save", &[]) + dump("ip6tables-save", &[]),
        Some(_) => dump("nft", &["list", "ruleset"]),
    }
}

fn network(id: &str, subnet: &str) -> CreateNetworkRequest {
    let pool: IpNet = subnet.parse().expect("subnet");
    let gateway = IpNet::new(pool.hosts().next().expect("host"), pool.prefix_len()).expect("gw");
    CreateNetworkRequest {
        network_id: id.into(),
        options: NetworkOptions::default(),
        ipv4: vec![IpamData {
            address_space: "LocalDefault".into(),
            pool,
            gateway: Some(gateway),
            aux_addresses: Default::default(),
        }],
        ipv6: vec![],
    }
}

fn tcp(port: u16, host_port: u16, host_port_end: u16) -> PortBinding {
    PortBinding {
        proto: Protocol::Tcp,
        ip: None,
        port,
        host_ip: None,
        host_port,
        host_port_end,
    }
}

/// `None`: no firewall (`enable_iptables` off), to show the cost without rules.
type Backend = Option<BackendChoice>;

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        None => "none",
        Some(BackendChoice::Iptables) => "iptables",
        Some(_) => "nftables",
    }
}

async fn driver(host: &Host, backend: Backend) -> BridgeDriver {
    let firewall = match backend {
        None => None,
        Some(backend) => Some(Arc::new(
            tokio::task::spawn_blocking(move || {
                Firewall::new(FirewallConfig {
                    backend,
                    ipv6: false,
                })
            })
            .await
            .expect("firewall task")
            .expect("firewall"),
        )),
    };
    BridgeDriver::new(
        host.clone(),
        BridgeDriverOptions {
            config: DriverConfig {
                enable_ip6tables: false,
                enable_iptables: firewall.is_some(),
                // BRIDGE_BENCH_PROXY=0 turns the userland proxy off (hairpin NAT instead).
                enable_userland_proxy: std::env::var("BRIDGE_BENCH_PROXY")
                    .map_or(true, |v| v != "0"),
                ..DriverConfig::docker()
            },
            store: Some(Arc::new(MemoryStore::new())),
            firewall,
            port_mapper: None,
        },
    )
    .await
    .expect("driver")
}

async fn attach_detach(host: &Host, backend: Backend, runs: usize) {
    let driver = driver(host, backend).await;
    driver
        .create_network(&network("benchnet", "10.200.0.0/16"))
        .await
        .expect("network");
    let mut sandboxes: Vec<Sandbox> = Vec::with_capacity(runs);
    for i in 0..runs {
        let key = host.key_for(&format!("bench{i:07}"));
        sandboxes.push(host.create_sandbox(&key).await.expect("sandbox"));
    }

    let (mut attach, mut detach) = (Vec::new(), Vec::new());
    let (mut create, mut join, mut program) = (Vec::new(), Vec::new(), Vec::new());
    let (mut revoke, mut leave, mut delete) = (Vec::new(), Vec::new(), Vec::new());
    let settle_each = std::env::var("BRIDGE_BENCH_SETTLE").is_ok_and(|v| v == "1");
    for (i, sandbox) in sandboxes.iter().enumerate() {
        if settle_each {
            driver.settle().await;
        }
        let eid = format!("ep{i}");
        let addr: IpNet = format!("10.200.{}.{}/16", i / 200, 2 + i % 200)
            .parse()
            .expect("address");
        let options = EndpointOptions {
            port_bindings: vec![tcp(80, 30000 + u16::try_from(i).expect("runs"), 0)],
            ..Default::default()
        };
        let start = Instant::now();
        let mut iface = EndpointInterface {
            address: Some(addr),
            ..Default::default()
        };
        timed(
            &mut create,
            driver.create_endpoint("benchnet", &eid, &mut iface, &options),
        )
        .await;
        timed(
            &mut join,
            driver.join("benchnet", &eid, sandbox, &JoinOptions::default()),
        )
        .await;
        timed(
            &mut program,
            driver.program_external_connectivity("benchnet", &eid, &options),
        )
        .await;
        attach.push(start.elapsed());

        let start = Instant::now();
        timed(
            &mut revoke,
            driver.revoke_external_connectivity("benchnet", &eid),
        )
        .await;
        timed(&mut leave, driver.leave("benchnet", &eid)).await;
        timed(&mut delete, driver.delete_endpoint("benchnet", &eid)).await;
        detach.push(start.elapsed());
    }
    let settle = Instant::now();
    driver.settle().await;
    let settle = settle.elapsed();

    let name = backend_name(backend);
    for (what, samples) in [("attach", &attach), ("detach", &detach)] {
        let (median, p99) = stats(samples);
        println!(
            "{name:<9} {what} (n={runs}): median {:>7.3} ms  p99 {:>7.3} ms",
            ms(median),
            ms(p99)
        );
    }
    for (what, samples) in [
        ("create_endpoint", &create),
        ("join", &join),
        ("program_external_connectivity", &program),
        ("revoke_external_connectivity", &revoke),
        ("leave", &leave),
        ("delete_endpoint", &delete),
    ] {
        println!(
            "{name:<9}   {what:<30} median {:>7.3} ms",
            ms(stats(samples).0)
        );
    }
    println!(
        "{name:<9}   background work (port withdrawal, veth deletion) done {:.1} ms after the last detach",
        ms(settle)
    );

    driver.delete_network("benchnet").await.expect("delete");
    driver.settle().await;
    for sandbox in sandboxes {
        sandbox.destroy().expect("destroy sandbox");
    }
}

async fn port_ranges(host: &Host, backend: Backend, runs: usize) {
    let driver = driver(host, backend).await;
    driver
        .create_network(&network("rangenet", "10.201.0.0/16"))
        .await
        .expect("network");
    let sandbox = host
        .create_sandbox(&host.key_for("rangesandbox"))
        .await
        .expect("sandbox");
    let name = backend_name(backend);
    for (i, size) in [1000u16, 10000].into_iter().enumerate() {
        let (mut published, mut revoked, mut withdrawn) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let eid = format!("range{size}-{run}");
            let mut iface = EndpointInterface {
                address: Some(
                    format!("10.201.{i}.{}/16", 2 + run)
                        .parse()
                        .expect("address"),
                ),
                ..Default::default()
            };
            let first = 20000;
            let options = EndpointOptions {
                port_bindings: vec![tcp(first, first, first + size - 1)],
                ..Default::default()
            };
            driver
                .create_endpoint("rangenet", &eid, &mut iface, &options)
                .await
                .expect("endpoint");
            driver
                .join("rangenet", &eid, &sandbox, &JoinOptions::default())
                .await
                .expect("join");
            let (lines, rss) = (ruleset_lines(backend), rss_kib());
            let start = Instant::now();
            driver
                .program_external_connectivity("rangenet", &eid, &options)
                .await
                .expect("publish range");
            let took = start.elapsed();
            published.push(took);
            let (lines_after, rss_after) = (ruleset_lines(backend), rss_kib());
            println!(
                "{name:<9} publish {size:>5}-port range: {:>8.3} ms, ruleset +{} lines, RSS +{} KiB, \
                 {} ports allocated, {} child processes",
                ms(took),
                lines_after.saturating_sub(lines),
                rss_after.saturating_sub(rss),
                driver.port_mapper().allocated_ports(),
                children(),
            );
            let start = Instant::now();
            driver
                .revoke_external_connectivity("rangenet", &eid)
                .await
                .expect("revoke");
            revoked.push(start.elapsed());
            driver.settle().await;
            withdrawn.push(start.elapsed());
            println!(
                "{name:<9} revoke  {size:>5}-port range: {:>8.3} ms (withdrawn {:.3} ms later, {} ports left)",
                ms(revoked[run]),
                ms(withdrawn[run]),
                driver.port_mapper().allocated_ports(),
            );
            driver.leave("rangenet", &eid).await.expect("leave");
            driver
                .delete_endpoint("rangenet", &eid)
                .await
                .expect("delete");
        }
        if runs > 1 {
            println!(
                "{name:<9} median of {runs} for {size:>5} ports: publish {:>8.3} ms, revoke {:.3} ms, \
                 withdrawn {:.3} ms",
                ms(stats(&published).0),
                ms(stats(&revoked).0),
                ms(stats(&withdrawn).0),
            );
        }
    }
    driver.delete_network("rangenet").await.expect("delete");
    driver.settle().await;
    sandbox.destroy().expect("destroy sandbox");
}

/// The scenarios to run (`BRIDGE_BENCH_SCENARIOS`) and the repetitions of the port ranges
/// (`BRIDGE_BENCH_RANGE_RUNS`).
struct Scenarios {
    attach: bool,
    ranges: bool,
    range_runs: usize,
}

impl Scenarios {
    fn from_env() -> Self {
        let names =
            std::env::var("BRIDGE_BENCH_SCENARIOS").unwrap_or_else(|_| "attach,ranges".into());
        let names: Vec<&str> = names.split(',').map(str::trim).collect();
        for name in &names {
            assert!(
                matches!(*name, "attach" | "ranges"),
                "unknown scenario {name:?} (attach, ranges)"
            );
        }
        Self {
            attach: names.contains(&"attach"),
            ranges: names.contains(&"ranges"),
            range_runs: std::env::var("BRIDGE_BENCH_RANGE_RUNS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1usize)
                .clamp(1, 200),
        }
    }
}

/// Runs the chosen scenarios for `backend` in fresh namespaces, on a runtime of its own.
fn run_backend(backend: Backend, runs: usize, scenarios: &Scenarios) {
    std::thread::scope(|s| {
        s.spawn(|| {
            libnetwork_testutil::enter_private_namespaces();
            let dir = tempfile::tempdir().expect("run directory");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let host = Host::new(dir.path()).await.expect("host");
                if scenarios.attach {
                    attach_detach(&host, backend, runs).await;
                }
                if scenarios.ranges {
                    port_ranges(&host, backend, scenarios.range_runs).await;
                }
            });
            drop(rt);
            if let Ok(entries) = std::fs::read_dir(dir.path().join("netns")) {
                for entry in entries.flatten() {
                    let _ = netns::unbind(&entry.path());
                }
            }
        });
    });
}

fn main() {
    if !libnetwork_testutil::privileged("bridge bench") {
        println!("skipped bridge bench: needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)");
        return;
    }
    // `cargo bench` passes `--bench`; nothing to parse.
    let runs = std::env::var("BRIDGE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100usize)
        .clamp(1, 30000);
    let scenarios = Scenarios::from_env();
    let backends =
        std::env::var("BRIDGE_BENCH_BACKENDS").unwrap_or_else(|_| "nftables,iptables".into());
    for name in backends.split(',') {
        let backend = match name.trim() {
            "nftables" => Some(BackendChoice::Nftables),
            "iptables" => Some(BackendChoice::Iptables),
            "none" => None,
            other => panic!("unknown backend {other:?}"),
        };
        run_backend(backend, runs, &scenarios);
    }
}
