//! Shared harness of the controller's integration tests.
//!
//! Every test runs in its own network and mount namespaces (`in_new_netns`), builds its tokio
//! runtime there, and keeps its data and run directories in a temporary directory. The host
//! files the controller reads (resolv.conf, hosts) are test files too.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use libnetwork::{BridgeConfig, Config, LocalStore};
use libnetwork_osl::{Host, Link};
use libnetwork_testutil::{in_new_netns, privileged};

/// The host resolv.conf the tests give the controller.
pub const HOST_RESOLV_CONF: &str = "search example.test\nnameserver 192.0.2.53\n";

/// A test's directories; leftover namespace mounts are detached before they are removed.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("host-resolv.conf"), HOST_RESOLV_CONF).unwrap();
        std::fs::write(dir.path().join("host-hosts"), "127.0.0.1\tlocalhost\n").unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.0.path().join("run/netns")) {
            for entry in entries.flatten() {
                let _ = libnetwork_osl::netns::unbind(&entry.path());
            }
        }
    }
}

/// The configuration of a test controller in `dir`: the bridge driver with forwarding and
/// the firewall on (nftables, in the test's namespace), a redb store in the data directory.
pub fn config(dir: &Path) -> Config {
    Config {
        bridge: BridgeConfig {
            enable_ip_forwarding: true,
            enable_iptables: true,
            enable_ip6tables: false,
            enable_userland_proxy: false,
        },
        host_resolv_conf: dir.join("host-resolv.conf"),
        host_hosts: dir.join("host-hosts"),
        ..Config::new(dir.join("data"), dir.join("run"))
    }
}

/// [`config`] with an in-memory store and no firewall (faster, for rule tests).
pub fn light_config(dir: &Path) -> Config {
    Config {
        local_store: LocalStore::Memory,
        bridge: BridgeConfig::default(),
        ..config(dir)
    }
}

/// Runs `body` in private namespaces with a fresh runtime and test directory; skips (with a
/// printed reason) when the test may not create namespaces.
pub fn run<F, Fut>(name: &str, body: F)
where
    F: FnOnce(PathBuf) -> Fut + Send,
    Fut: Future<Output = Result<()>>,
{
    if !privileged(name) {
        return;
    }
    init_tracing();
    in_new_netns(|| {
        let dir = TestDir::new();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let result = runtime.block_on(body(dir.path().to_path_buf()));
        drop(runtime);
        drop(dir);
        if let Err(e) = result {
            panic!("{name}: {e:?}");
        }
    });
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The links of the calling task's namespace (the test's "host").
pub async fn host_links() -> Result<Vec<Link>> {
    let host = Host::new("/nonexistent").await?;
    Ok(host.netlink().links().await?)
}

/// Names of the links in the test's host namespace, without `lo`.
pub async fn host_link_names() -> Result<Vec<String>> {
    let mut names: Vec<String> = host_links()
        .await?
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    Ok(names)
}

/// An A (or AAAA) query to `server`, sent from the calling thread's namespace.
pub fn dns_query(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
) -> Result<(ResponseCode, Vec<IpAddr>)> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name)?, qtype));
    let id = m.metadata.id;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    socket.connect(server)?;
    socket.send(&m.to_vec()?)?;
    let mut buf = vec![0; 65_535];
    loop {
        let n = socket
            .recv(&mut buf)
            .context("no answer from the dns server")?;
        let answer = Message::from_vec(&buf[..n])?;
        if answer.metadata.id != id {
            continue;
        }
        let ips = answer
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        return Ok((answer.metadata.response_code, ips));
    }
}

/// Asks the embedded DNS server of `sb` for the A records of `name`, from inside the sandbox.
pub async fn resolve_in(
    sb: &libnetwork::Sandbox,
    name: &str,
) -> Result<(ResponseCode, Vec<IpAddr>)> {
    let name = name.to_owned();
    let server: SocketAddr = "127.0.0.11:53".parse()?;
    sb.os_sandbox()
        .run_in(move || dns_query(server, &name, RecordType::A))
        .await?
}

/// Runs a command from the calling thread (the test's host namespace) and returns stdout.
pub fn command(program: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The routes of a sandbox's namespace (`ip route` output), IPv4.
pub async fn sandbox_routes(sb: &libnetwork::Sandbox) -> Result<String> {
    sb.os_sandbox()
        .run_in(|| command("ip", &["-4", "route", "show"]))
        .await?
}
