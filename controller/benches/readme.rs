//! The whole libnetwork README flow, N times: create a bridge network, an endpoint and a
//! sandbox, join, leave, delete the endpoint, the sandbox and the network. Prints the median,
//! p99, mean, min and max per iteration, and the median of each step. Then the same flow
//! without the network's creation and deletion (a container's life on an existing network),
//! N times.
//!
//! Needs root (it prints a skip line and exits 0 otherwise). It runs in private network and
//! mount namespaces, with the controller's data and run directories in a temporary directory
//! (the default configuration: a redb store with deferred syncs, one spare namespace kept
//! ready, the bridge driver with IP forwarding and nftables rules, the embedded DNS server
//! on). The bridge driver is registered a second time as
//! `timed-bridge` behind a wrapper that adds up the time spent inside the driver, so that each
//! step's time is split into the driver's (kernel, firewall, its own store writes) and the
//! rest (the controller: store, IPAM, namespaces, files, DNS).
//!
//! ```text
//! cargo bench -p libnetwork --bench readme -- --iterations 200
//! ```
//!
//! With `RUST_LOG` set (e.g. `RUST_LOG=debug`), the libraries' logs go to standard error with
//! the time since start, to see where an iteration's time goes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use libnetwork::{
    BridgeConfig, Config, Controller, EndpointOptions, JoinOptions, NetworkOptions, SandboxOptions,
};
use libnetwork_driverapi::{
    Capability, CreateNetworkRequest, CreateNetworkResult, Driver, EndpointInterface,
    EndpointOptions as DriverEndpointOptions, Error, JoinInfo, JoinOptions as DriverJoinOptions,
    Sandbox,
};

/// The network type the timed bridge driver is registered as.
const TIMED: &str = "timed-bridge";

/// A driver that forwards every call to another and adds up the time the calls take.
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn Driver>,
    spent: Mutex<Duration>,
}

impl Timed {
    async fn time<T>(&self, f: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = f.await;
        *self.spent.lock().unwrap() += start.elapsed();
        out
    }

    fn take(&self) -> Duration {
        std::mem::take(&mut *self.spent.lock().unwrap())
    }
}

#[async_trait]
impl Driver for Timed {
    fn driver_type(&self) -> &str {
        TIMED
    }
    fn capability(&self) -> Capability {
        self.inner.capability()
    }
    async fn create_network(&self, r: &CreateNetworkRequest) -> Result<CreateNetworkResult, Error> {
        self.time(self.inner.create_network(r)).await
    }
    async fn delete_network(&self, nid: &str) -> Result<(), Error> {
        self.time(self.inner.delete_network(nid)).await
    }
    async fn create_endpoint(
        &self,
        nid: &str,
        eid: &str,
        iface: &mut EndpointInterface,
        options: &DriverEndpointOptions,
    ) -> Result<(), Error> {
        self.time(self.inner.create_endpoint(nid, eid, iface, options))
            .await
    }
    async fn delete_endpoint(&self, nid: &str, eid: &str) -> Result<(), Error> {
        self.time(self.inner.delete_endpoint(nid, eid)).await
    }
    async fn endpoint_oper_info(
        &self,
        nid: &str,
        eid: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, Error> {
        self.time(self.inner.endpoint_oper_info(nid, eid)).await
    }
    async fn join(
        &self,
        nid: &str,
        eid: &str,
        sandbox: &Sandbox,
        options: &DriverJoinOptions,
    ) -> Result<JoinInfo, Error> {
        self.time(self.inner.join(nid, eid, sandbox, options)).await
    }
    async fn leave(&self, nid: &str, eid: &str) -> Result<(), Error> {
        self.time(self.inner.leave(nid, eid)).await
    }
    async fn program_external_connectivity(
        &self,
        nid: &str,
        eid: &str,
        options: &DriverEndpointOptions,
    ) -> Result<(), Error> {
        self.time(self.inner.program_external_connectivity(nid, eid, options))
            .await
    }
    async fn revoke_external_connectivity(&self, nid: &str, eid: &str) -> Result<(), Error> {
        self.time(self.inner.revoke_external_connectivity(nid, eid))
            .await
    }
}

const STEPS: [&str; 8] = [
    "new_network",
    "create_endpoint",
    "new_sandbox",
    "join",
    "leave",
    "delete_endpoint",
    "delete_sandbox",
    "delete_network",
];

fn main() -> anyhow::Result<()> {
    if !libnetwork_testutil::privileged("readme benchmark") {
        return Ok(());
    }
    let mut iterations = 100usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--iterations"
            && let Some(n) = args.next()
        {
            iterations = n.parse()?;
        }
    }
    // `RUST_LOG=libnetwork=debug,...` shows where an iteration's time goes, with timestamps.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_writer(std::io::stderr)
            .init();
    }
    libnetwork_testutil::enter_private_namespaces();
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 192.0.2.53\n")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let config = Config {
            bridge: BridgeConfig {
                enable_ip_forwarding: true,
                enable_iptables: true,
                enable_ip6tables: false,
                enable_userland_proxy: false,
            },
            host_resolv_conf: dir.path().join("resolv.conf"),
            ..Config::new(dir.path().join("data"), dir.path().join("run"))
        };
        let controller = Controller::new(config).await?;
        let timed = Arc::new(Timed {
            inner: Arc::new(controller.bridge_driver().clone()),
            spent: Mutex::new(Duration::ZERO),
        });
        controller
            .registry()
            .register_driver(TIMED, timed.clone())?;
        // Warm up (first bridge, first firewall rules).
        for i in 0..3 {
            flow(&controller, &timed, i).await?;
        }
        let mut totals = Vec::with_capacity(iterations);
        let mut steps: Vec<Vec<Duration>> = vec![Vec::with_capacity(iterations); STEPS.len()];
        let mut in_driver: Vec<Vec<Duration>> = vec![Vec::with_capacity(iterations); STEPS.len()];
        for i in 0..iterations {
            let start = Instant::now();
            let times = flow(&controller, &timed, i).await?;
            totals.push(start.elapsed());
            for ((s, d), (t, dt)) in steps.iter_mut().zip(in_driver.iter_mut()).zip(times) {
                s.push(t);
                d.push(dt);
            }
        }
        report("readme flow", &mut totals, &mut steps, &mut in_driver);

        // A container's life on an existing network.
        let network = controller
            .new_network(TIMED, "shared", NetworkOptions::default())
            .await?;
        let mut totals = Vec::with_capacity(iterations);
        let mut steps: Vec<Vec<Duration>> = vec![Vec::with_capacity(iterations); STEPS.len()];
        let mut in_driver: Vec<Vec<Duration>> = vec![Vec::with_capacity(iterations); STEPS.len()];
        for i in 0..iterations {
            let start = Instant::now();
            let times = container(&controller, &network, &timed, i).await?;
            totals.push(start.elapsed());
            for ((s, d), (t, dt)) in steps.iter_mut().zip(in_driver.iter_mut()).zip(times) {
                s.push(t);
                d.push(dt);
            }
        }
        network.delete().await?;
        controller.shutdown().await;
        report(
            "container on an existing network (no network create/delete)",
            &mut totals,
            &mut steps,
            &mut in_driver,
        );
        anyhow::Ok(())
    })?;
    Ok(())
}

/// One README flow; returns the time of each step and the part of it spent in the driver.
async fn flow(
    c: &Controller,
    timed: &Timed,
    i: usize,
) -> anyhow::Result<Vec<(Duration, Duration)>> {
    let mut times = Vec::with_capacity(STEPS.len());
    let mut t = Instant::now();
    timed.take();
    let mut lap = |times: &mut Vec<(Duration, Duration)>| {
        let now = Instant::now();
        times.push((now - t, timed.take()));
        t = now;
    };
    let network = c
        .new_network(TIMED, &format!("network{i}"), NetworkOptions::default())
        .await?;
    lap(&mut times);
    let ep = network
        .create_endpoint("Endpoint1", EndpointOptions::default())
        .await?;
    lap(&mut times);
    let sbx = c
        .new_sandbox(
            &format!("container{i}"),
            SandboxOptions::new()
                .hostname("test")
                .domainname("docker.io"),
        )
        .await?;
    lap(&mut times);
    ep.join(&sbx, JoinOptions::default()).await?;
    lap(&mut times);
    ep.leave(&sbx).await?;
    lap(&mut times);
    ep.delete(false).await?;
    lap(&mut times);
    sbx.delete().await?;
    lap(&mut times);
    network.delete().await?;
    lap(&mut times);
    Ok(times)
}

/// The container part of the flow on an existing network; the network steps are zero.
async fn container(
    c: &Controller,
    network: &libnetwork::Network,
    timed: &Timed,
    i: usize,
) -> anyhow::Result<Vec<(Duration, Duration)>> {
    let mut times = vec![(Duration::ZERO, Duration::ZERO)];
    let mut t = Instant::now();
    timed.take();
    let mut lap = |times: &mut Vec<(Duration, Duration)>| {
        let now = Instant::now();
        times.push((now - t, timed.take()));
        t = now;
    };
    let ep = network
        .create_endpoint("Endpoint1", EndpointOptions::default())
        .await?;
    lap(&mut times);
    let sbx = c
        .new_sandbox(
            &format!("lone{i}"),
            SandboxOptions::new()
                .hostname("test")
                .domainname("docker.io"),
        )
        .await?;
    lap(&mut times);
    ep.join(&sbx, JoinOptions::default()).await?;
    lap(&mut times);
    ep.leave(&sbx).await?;
    lap(&mut times);
    ep.delete(false).await?;
    lap(&mut times);
    sbx.delete().await?;
    lap(&mut times);
    times.push((Duration::ZERO, Duration::ZERO));
    Ok(times)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(
    title: &str,
    totals: &mut [Duration],
    steps: &mut [Vec<Duration>],
    in_driver: &mut [Vec<Duration>],
) {
    // Per iteration, the time outside the bridge driver.
    let mut own: Vec<Duration> = totals
        .iter()
        .enumerate()
        .map(|(i, t)| t.saturating_sub(in_driver.iter().map(|d| d[i]).sum()))
        .collect();
    own.sort();
    totals.sort();
    let n = totals.len();
    let mean = totals.iter().sum::<Duration>() / u32::try_from(n).unwrap_or(1);
    println!("{title}: {n} iterations");
    println!(
        "  per iteration: median {:.2} ms, p99 {:.2} ms, mean {:.2} ms, min {:.2} ms, max {:.2} ms",
        ms(percentile(totals, 50.0)),
        ms(percentile(totals, 99.0)),
        ms(mean),
        ms(totals[0]),
        ms(totals[n - 1]),
    );
    println!(
        "  outside the bridge driver: median {:.2} ms, p99 {:.2} ms",
        ms(percentile(&own, 50.0)),
        ms(percentile(&own, 99.0)),
    );
    for ((name, s), d) in STEPS.iter().zip(steps.iter_mut()).zip(in_driver.iter_mut()) {
        s.sort();
        d.sort();
        if s.last() == Some(&Duration::ZERO) {
            continue;
        }
        println!(
            "  {name:>16}: median {:.2} ms (in the bridge driver {:.2} ms), p99 {:.2} ms",
            ms(percentile(s, 50.0)),
            ms(percentile(d, 50.0)),
            ms(percentile(s, 99.0))
        );
    }
}
