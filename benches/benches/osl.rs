//! The OS sandbox layer against the `ip` commands that do the same work, on the real kernel.
//!
//! Needs root: without it the bench prints a skip line and exits 0. Everything runs in a
//! private network and mount namespace (a tmpfs over `/run` gives `ip netns` its own
//! `/run/netns`), so the machine's namespaces are never touched.
//!
//! Scenarios, each run `OSL_BENCH_RUNS` times (default 25), interleaved so that background
//! kernel work (namespace clean-up) weighs on all of them alike:
//! 1. sandbox: create (bound to a key file, `lo` up) and destroy, against `ip netns add`,
//!    `ip -n NS link set lo up`, `ip netns del`;
//! 2. interface setup: a veth pair with one end in the sandbox as `eth0`, an address, up, and a
//!    default route. The osl does it the way it is meant to be used (peer born inside the
//!    sandbox, `Sandbox::create_veth` + `set_gateway`) and also by moving a host veth in
//!    (`add_interface`); `ip` does it with `ip link add ... type veth peer ...`,
//!    `ip link set ... netns`, `ip -n ... link set name`, `ip -n ... addr add`,
//!    `ip -n ... link set up`, `ip -n ... route add`, and also with the peer born inside
//!    (`ip link add ... peer name eth0 netns NS`).
//!
//! Reported per scenario: the median wall time, and the mean CPU time per run split into user
//! and system time from `getrusage` (RUSAGE_SELF for the osl, covering every thread of this process;
//! RUSAGE_CHILDREN for the `ip` processes). Netlink requests are processed by the kernel in the
//! sending thread's `sendmsg`, so the osl's system time is the kernel's work for it and its
//! user time is our own overhead (tokio, netlink encoding/decoding, threads that join a
//! namespace). Work the kernel defers to its own threads (RCU, namespace clean-up) appears in
//! neither and only in the wall time. The kernel (tick accounting at 250 Hz) measures the total
//! CPU time exactly but splits it into user and system time by sampling at each tick, so the
//! split is statistical: it is given as a mean over all runs, not a median.
#![allow(missing_docs)]
#![allow(clippy::print_stdout)]

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use libnetwork_osl::{Host, InterfaceOptions, IpNet};
use nix::sys::resource::{UsageWho, getrusage};

/// CPU time used so far: (user, system).
fn cpu(who: UsageWho) -> (Duration, Duration) {
    let usage = getrusage(who).expect("getrusage");
    let d = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    (d(usage.user_time()), d(usage.system_time()))
}

/// Wall, user and system time of one run.
#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    user: Vec<Duration>,
    sys: Vec<Duration>,
}

impl Samples {
    fn median(v: &[Duration]) -> Duration {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    fn wall(&self) -> Duration {
        Self::median(&self.wall)
    }

    /// Mean of the CPU samples: the kernel splits CPU time into user and system time by
    /// sampling at each tick (250 Hz here), so only sums over many runs are meaningful.
    fn mean(v: &[Duration]) -> Duration {
        v.iter().sum::<Duration>() / u32::try_from(v.len().max(1)).unwrap_or(u32::MAX)
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<58} {:>9.3} ms {:>9.3} ms {:>9.3} ms",
            ms(self.wall()),
            ms(Self::mean(&self.user)),
            ms(Self::mean(&self.sys)),
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Measures one run of `f`, charging the CPU time of `who`.
async fn measure<F, Fut>(samples: &mut Samples, who: UsageWho, f: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let (u0, s0) = cpu(who);
    let t0 = Instant::now();
    f().await;
    samples.wall.push(t0.elapsed());
    let (u1, s1) = cpu(who);
    samples.user.push(u1 - u0);
    samples.sys.push(s1 - s0);
}

/// Runs `ip ARGS` and panics when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    if !libnetwork_testutil::privileged("osl bench") {
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        println!("skipped osl bench: the ip command is not installed");
        return;
    }
    libnetwork_testutil::enter_private_namespaces();
    // `ip netns` keeps its files in /run/netns: give it a private one.
    nix::mount::mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount a private /run");
    let runs: usize = std::env::var("OSL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let dir = tempfile::tempdir().expect("run directory");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(dir.path(), runs));
}

async fn run(run_dir: &Path, runs: usize) {
    let host = Host::new(run_dir).await.expect("host");
    let address: IpNet = "10.200.0.2/24".parse().expect("address");
    let gateway = "10.200.0.1".parse().expect("gateway");
    let opts = InterfaceOptions {
        addresses: vec![address],
        ..Default::default()
    };

    let mut osl_sandbox = Samples::default();
    let mut ip_sandbox = Samples::default();
    let mut osl_born = Samples::default();
    let mut osl_moved = Samples::default();
    let mut ip_moved = Samples::default();
    let mut ip_born = Samples::default();

    // Two warm-up rounds, not recorded.
    for i in 0..runs + 2 {
        let keep = i >= 2;
        let mut scratch = Samples::default();
        macro_rules! slot {
            ($s:ident) => {
                if keep { &mut $s } else { &mut scratch }
            };
        }

        // 1. Sandbox create + destroy.
        let key = host.key_for(&format!("bench-sb-{i}"));
        measure(slot!(osl_sandbox), UsageWho::RUSAGE_SELF, || async {
            let sb = host.create_sandbox(&key).await.expect("create sandbox");
            sb.destroy().expect("destroy sandbox");
        })
        .await;
        let ns = format!("ipsb{i}");
        measure(slot!(ip_sandbox), UsageWho::RUSAGE_CHILDREN, || async {
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["netns", "del", &ns]);
        })
        .await;

        // 2a. osl, peer born in the sandbox.
        let sb = host
            .create_sandbox(&host.key_for(&format!("bench-born-{i}")))
            .await
            .expect("sandbox");
        let host_end = format!("ob{i}");
        measure(slot!(osl_born), UsageWho::RUSAGE_SELF, || async {
            sb.create_veth(&host_end, "eth", &opts)
                .await
                .expect("create veth");
            sb.set_gateway(gateway).await.expect("gateway");
        })
        .await;
        sb.destroy().expect("destroy");

        // 2b. osl, host veth moved in.
        let sb = host
            .create_sandbox(&host.key_for(&format!("bench-move-{i}")))
            .await
            .expect("sandbox");
        let (a, b) = (format!("om{i}"), format!("omp{i}"));
        measure(slot!(osl_moved), UsageWho::RUSAGE_SELF, || async {
            host.netlink()
                .create_veth(&a, &b, None)
                .await
                .expect("create veth");
            sb.add_interface(&b, "eth", &opts)
                .await
                .expect("add interface");
            sb.set_gateway(gateway).await.expect("gateway");
        })
        .await;
        sb.destroy().expect("destroy");

        // 2c. ip, host veth moved in.
        let ns = format!("ipm{i}");
        ip(&["netns", "add", &ns]);
        let (a, b) = (format!("im{i}"), format!("imp{i}"));
        measure(slot!(ip_moved), UsageWho::RUSAGE_CHILDREN, || async {
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
            ip(&["link", "set", &b, "netns", &ns]);
            ip(&["-n", &ns, "link", "set", &b, "name", "eth0"]);
            ip(&["-n", &ns, "addr", "add", "10.200.0.2/24", "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "route", "add", "default", "via", "10.200.0.1"]);
        })
        .await;
        ip(&["netns", "del", &ns]);

        // 2d. ip, peer born in the namespace.
        let ns = format!("ipb{i}");
        ip(&["netns", "add", &ns]);
        let a = format!("ib{i}");
        measure(slot!(ip_born), UsageWho::RUSAGE_CHILDREN, || async {
            ip(&[
                "link", "add", &a, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["-n", &ns, "addr", "add", "10.200.0.2/24", "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "route", "add", "default", "via", "10.200.0.1"]);
        })
        .await;
        ip(&["netns", "del", &ns]);
    }

    println!("osl bench: medians of {runs} runs (CPU: osl = this process, ip = its children)");
    println!(
        "{:<58} {:>12} {:>12} {:>12}",
        "scenario", "median wall", "mean user", "mean sys"
    );
    osl_sandbox.print("sandbox create+destroy: osl");
    ip_sandbox.print("sandbox create+destroy: ip netns add, lo up, netns del");
    osl_born.print("setup: osl create_veth (peer born inside) + gateway");
    osl_moved.print("setup: osl veth in host + add_interface (move) + gateway");
    ip_moved.print("setup: ip link add, set netns, name, addr, up, route");
    ip_born.print("setup: ip link add ... peer netns, addr, up, route");
    let ratio = |a: &Samples, b: &Samples| a.wall().as_secs_f64() / b.wall().as_secs_f64();
    println!(
        "ratio sandbox create+destroy, ip / osl:                 {:.2}x",
        ratio(&ip_sandbox, &osl_sandbox)
    );
    println!(
        "ratio setup, ip (move) / osl (born inside):            {:.2}x",
        ratio(&ip_moved, &osl_born)
    );
    println!(
        "ratio setup, ip (born inside) / osl (born inside):     {:.2}x",
        ratio(&ip_born, &osl_born)
    );
    println!(
        "ratio setup, ip (move) / osl (move):                   {:.2}x",
        ratio(&ip_moved, &osl_moved)
    );
    let whole_osl = osl_sandbox.wall() + osl_born.wall();
    let whole_ip = ip_sandbox.wall() + ip_moved.wall();
    println!(
        "ratio whole (sandbox + setup), ip {:.3} ms / osl {:.3} ms: {:.2}x",
        ms(whole_ip),
        ms(whole_osl),
        whole_ip.as_secs_f64() / whole_osl.as_secs_f64()
    );
    // The user/system split is sampled at each tick, so a few dozen runs of about a
    // millisecond give only a handful of samples: measure the split over many more runs.
    let cpu_runs: usize = std::env::var("OSL_BENCH_CPU_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut cpu_sandbox = Samples::default();
    let mut cpu_born = Samples::default();
    for i in 0..cpu_runs {
        let key = host.key_for(&format!("cpu-sb-{i}"));
        measure(&mut cpu_sandbox, UsageWho::RUSAGE_SELF, || async {
            let sb = host.create_sandbox(&key).await.expect("create sandbox");
            sb.destroy().expect("destroy sandbox");
        })
        .await;
        let sb = host
            .create_sandbox(&host.key_for(&format!("cpu-born-{i}")))
            .await
            .expect("sandbox");
        let host_end = format!("cb{i}");
        measure(&mut cpu_born, UsageWho::RUSAGE_SELF, || async {
            sb.create_veth(&host_end, "eth", &opts)
                .await
                .expect("create veth");
            sb.set_gateway(gateway).await.expect("gateway");
        })
        .await;
        sb.destroy().expect("destroy");
    }
    println!(
        "osl CPU split over {cpu_runs} more runs (mean per run: wall, user, sys, user share):"
    );
    for (name, s) in [
        ("sandbox create+destroy", &cpu_sandbox),
        ("setup born inside + gateway", &cpu_born),
    ] {
        let wall = Samples::mean(&s.wall);
        let user = Samples::mean(&s.user);
        let sys = Samples::mean(&s.sys);
        println!(
            "  {name:<28} wall {:.3} ms, user {:.3} ms, sys {:.3} ms, user {:.0}% of CPU, {:.0}% of wall",
            ms(wall),
            ms(user),
            ms(sys),
            100.0 * user.as_secs_f64() / (user + sys).as_secs_f64().max(f64::EPSILON),
            100.0 * user.as_secs_f64() / wall.as_secs_f64().max(f64::EPSILON),
        );
    }
}
