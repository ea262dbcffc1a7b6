//! The test bed: a private "host" namespace (the test's own), an "outside" namespace joined to
//! it by a veth pair with its own subnet, sandboxes for containers, the driver, and TCP probes.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ipnet::IpNet;
use libnetwork_datastore::{MemoryStore, Store};
use libnetwork_driver_bridge::{BridgeDriver, BridgeDriverOptions, DriverConfig};
use libnetwork_driverapi::{
    CreateNetworkRequest, Driver, EndpointInterface, EndpointOptions, IpamData, JoinInfo,
    JoinInterface, JoinOptions, NetworkOptions, PortBinding, Protocol,
};
use libnetwork_firewall::{BackendChoice, Firewall, FirewallConfig};
use libnetwork_osl::{Host, InterfaceOptions, Netns, Sandbox, netns};

/// Address of the host on the link to the outside namespace.
pub const HOST_OUTSIDE_IP: &str = "198.51.100.1";
/// Address of the outside namespace.
pub const OUTSIDE_IP: &str = "198.51.100.2";

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);

/// Which firewall a test runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fw {
    /// No firewall (`enable_iptables` off).
    None,
    /// The nftables backend.
    Nftables,
    /// The iptables backend.
    Iptables,
}

/// Generates `mod $name` with one test per firewall choice listed (`without_firewall`,
/// `nftables`, `iptables`), each running `super::$name(fw)` in a fresh private namespace.
#[macro_export]
macro_rules! kernel_tests {
    ($name:ident: $($fw:ident),+) => {
        mod $name {
            $(
                #[test]
                fn $fw() {
                    $crate::common::run(
                        concat!(module_path!(), "::", stringify!($fw)),
                        $crate::common::Fw::named(stringify!($fw)),
                        super::$name,
                    );
                }
            )+
        }
    };
}

impl Fw {
    /// The choice a generated test is named after.
    pub fn named(name: &str) -> Self {
        match name {
            "nftables" => Self::Nftables,
            "iptables" => Self::Iptables,
            _ => Self::None,
        }
    }
}

/// The run directory of a test; on drop, detaches whatever the test left mounted under it.
pub struct RunDir(tempfile::TempDir);

impl RunDir {
    fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.0.path().join("netns")) {
            for entry in entries.flatten() {
                let _ = netns::unbind(&entry.path());
            }
        }
    }
}

/// Runs an async test body in a private namespace with a runtime, when privileged.
pub fn run<F, Fut>(name: &str, fw: Fw, body: F)
where
    F: FnOnce(Fw) -> Fut + Send,
    Fut: Future<Output = Result<()>>,
{
    if !libnetwork_testutil::privileged(name) {
        return;
    }
    libnetwork_testutil::in_new_netns(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let result = rt.block_on(body(fw));
        drop(rt);
        if let Err(e) = result {
            panic!("{name}: {e:#}");
        }
    });
}

/// The test bed of one test.
pub struct Bed {
    /// The test's namespace.
    pub host: Host,
    /// The store shared by successive drivers.
    pub store: Arc<dyn Store>,
    /// The outside namespace.
    pub outside: Sandbox,
    /// The firewall choice.
    pub fw: Fw,
    /// Sandbox keys live here as long as the bed.
    _dir: RunDir,
}

impl Bed {
    /// A host with an outside namespace on 198.51.100.0/24, forwarding on.
    pub async fn new(fw: Fw) -> Result<Self> {
        let dir = RunDir(tempfile::tempdir()?);
        let host = Host::new(dir.path()).await?;
        let outside = host.create_sandbox(&host.key_for("outside0000000")).await?;
        let pair = outside
            .create_veth(
                "vout",
                "eth",
                &InterfaceOptions {
                    addresses: vec![format!("{OUTSIDE_IP}/24").parse()?],
                    ..Default::default()
                },
            )
            .await?;
        let nl = host.netlink();
        nl.add_address(&pair.host, format!("{HOST_OUTSIDE_IP}/24").parse()?, false)
            .await?;
        nl.set_up(&pair.host, true).await?;
        outside.set_gateway(HOST_OUTSIDE_IP.parse()?).await?;
        Ok(Self {
            host,
            store: Arc::new(MemoryStore::new()),
            outside,
            fw,
            _dir: dir,
        })
    }

    /// The driver configuration for this bed: Docker's defaults, firewall per `fw`.
    pub fn config(&self) -> DriverConfig {
        DriverConfig {
            enable_iptables: self.fw != Fw::None,
            ..DriverConfig::docker()
        }
    }

    /// A driver on the bed's host and store.
    pub async fn driver(&self) -> Result<BridgeDriver> {
        self.driver_with(self.config()).await
    }

    /// A driver with `config`, the bed's firewall backend, host and store.
    pub async fn driver_with(&self, config: DriverConfig) -> Result<BridgeDriver> {
        let firewall = match self.fw {
            Fw::None => None,
            Fw::Nftables | Fw::Iptables => {
                let backend = if self.fw == Fw::Nftables {
                    BackendChoice::Nftables
                } else {
                    BackendChoice::Iptables
                };
                let fw = tokio::task::spawn_blocking(move || {
                    Firewall::new(FirewallConfig {
                        backend,
                        ipv6: true,
                    })
                })
                .await??;
                Some(Arc::new(fw))
            }
        };
        Ok(BridgeDriver::new(
            self.host.clone(),
            BridgeDriverOptions {
                config,
                store: Some(Arc::clone(&self.store)),
                firewall,
                port_mapper: None,
            },
        )
        .await?)
    }

    /// A new sandbox ("container").
    pub async fn sandbox(&self, id: &str) -> Result<Sandbox> {
        Ok(self.host.create_sandbox(&self.host.key_for(id)).await?)
    }

    /// The names of the links of the host namespace.
    pub async fn host_links(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .host
            .netlink()
            .links()
            .await?
            .into_iter()
            .map(|l| l.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// The firewall's ruleset as text (empty without a firewall).
    pub fn ruleset(&self) -> Result<String> {
        Ok(match self.fw {
            Fw::None => String::new(),
            Fw::Nftables => sh("nft", &["list", "ruleset"])?,
            Fw::Iptables => {
                let dump = sh("iptables-save", &[])? + &sh("ip6tables-save", &[])?;
                // Without comments (timestamps) and chain counters (stray IPv6 neighbour
                // discovery packets move them).
                dump.lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(|l| match l.strip_prefix(':') {
                        Some(chain) => chain.split(' ').take(2).collect::<Vec<_>>().join(" "),
                        None => l.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        })
    }
}

/// Runs a program in the calling thread's namespace; returns its stdout.
pub fn sh(program: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program}"))?;
    ensure!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// A create-network request for `subnet` (gateway: its first address) with driver options.
pub fn network(id: &str, subnet: &str, opts: &[(&str, &str)]) -> CreateNetworkRequest {
    let pool: IpNet = subnet.parse().expect("subnet");
    let gateway = IpNet::new(
        pool.hosts().next().expect("a host address"),
        pool.prefix_len(),
    )
    .expect("gateway");
    CreateNetworkRequest {
        network_id: id.to_string(),
        options: NetworkOptions {
            driver_options: opts
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            ..Default::default()
        },
        ipv4: vec![IpamData {
            address_space: "LocalDefault".into(),
            pool,
            gateway: Some(gateway),
            aux_addresses: BTreeMap::new(),
        }],
        ipv6: vec![],
    }
}

/// Adds an IPv6 pool (gateway: its first address) and turns IPv6 on.
pub fn with_ipv6(mut req: CreateNetworkRequest, subnet: &str) -> CreateNetworkRequest {
    let pool: IpNet = subnet.parse().expect("subnet");
    let gateway = IpNet::new(
        pool.hosts().nth(1).expect("a host address"),
        pool.prefix_len(),
    )
    .expect("gateway");
    req.options.enable_ipv6 = true;
    req.ipv6 = vec![IpamData {
        address_space: "LocalDefault".into(),
        pool,
        gateway: Some(gateway),
        aux_addresses: BTreeMap::new(),
    }];
    req
}

/// A published TCP port.
pub fn tcp_binding(container_port: u16, host_port: u16) -> PortBinding {
    PortBinding {
        proto: Protocol::Tcp,
        ip: None,
        port: container_port,
        host_ip: None,
        host_port,
        host_port_end: 0,
    }
}

/// An endpoint attached to a sandbox.
#[derive(Debug, Clone)]
pub struct Attached {
    /// The endpoint's interface after creation.
    pub interface: EndpointInterface,
    /// What join returned.
    pub join: JoinInfo,
}

impl Attached {
    /// The endpoint's IPv4 address.
    pub fn ip(&self) -> IpAddr {
        self.interface.address.expect("an IPv4 address").addr()
    }

    /// The interface name inside the sandbox.
    pub fn name(&self) -> &str {
        match &self.join.interface {
            Some(JoinInterface::InSandbox { name }) => name,
            other => panic!("unexpected interface {other:?}"),
        }
    }
}

/// Creates an endpoint with `ip` (CIDR), joins it to `sandbox` and sets the sandbox's default
/// gateway as the controller would. Publishes `ports` when not empty.
pub async fn attach(
    driver: &BridgeDriver,
    nid: &str,
    eid: &str,
    sandbox: &Sandbox,
    ip: &str,
    ports: &[PortBinding],
) -> Result<Attached> {
    let mut interface = EndpointInterface {
        address: Some(ip.parse()?),
        ..Default::default()
    };
    let options = EndpointOptions {
        port_bindings: ports.to_vec(),
        ..Default::default()
    };
    driver
        .create_endpoint(nid, eid, &mut interface, &options)
        .await?;
    let join = driver
        .join(nid, eid, sandbox, &JoinOptions::default())
        .await?;
    if let Some(gw) = join.gateway {
        sandbox.set_gateway(gw).await?;
    }
    if let Some(gw) = join.gateway_ipv6 {
        sandbox.set_gateway(gw).await?;
    }
    if !ports.is_empty() {
        driver
            .program_external_connectivity(nid, eid, &options)
            .await?;
    }
    Ok(Attached { interface, join })
}

/// Revokes, leaves and deletes an endpoint.
pub async fn detach(driver: &BridgeDriver, nid: &str, eid: &str) -> Result<()> {
    driver.revoke_external_connectivity(nid, eid).await?;
    driver.leave(nid, eid).await?;
    driver.delete_endpoint(nid, eid).await?;
    Ok(())
}

/// Accepts one connection within the timeout, echoes five bytes, returns the peer address.
fn serve_once(listener: &TcpListener) -> io::Result<SocketAddr> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + CONNECT_TIMEOUT * 2;
    let (mut conn, peer) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf)?;
    conn.write_all(&buf)?;
    Ok(peer)
}

/// Connects to `target`, sends five bytes and reads them back.
fn hello(target: SocketAddr) -> io::Result<()> {
    let mut conn = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)?;
    conn.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    conn.write_all(b"hello")?;
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf)?;
    if &buf != b"hello" {
        return Err(io::Error::other("echo mismatch"));
    }
    Ok(())
}

/// A server listening inside a namespace.
pub struct Server {
    listener: TcpListener,
}

impl Server {
    /// Binds `bind` (port 0 for any) inside `ns`.
    pub async fn bind(ns: &Netns, bind: SocketAddr) -> Result<Self> {
        let listener = ns.run_in(move || TcpListener::bind(bind)).await??;
        Ok(Self { listener })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("local address").port()
    }
}

/// Connects from `client` to `target`, where `server` listens (bound in its namespace):
/// exchanges data and returns the client address the server saw. One server serves any
/// number of exchanges (binding the port again could fail while connections of the last
/// exchange linger in TIME-WAIT).
pub async fn exchange(server: &Server, client: &Netns, target: SocketAddr) -> Result<SocketAddr> {
    let listener = server.listener.try_clone()?;
    let accept = std::thread::spawn(move || serve_once(&listener));
    let sent = client.run_in(move || hello(target)).await?;
    let peer = accept
        .join()
        .map_err(|_| anyhow!("server thread panicked"))?;
    sent.with_context(|| format!("connect to {target}"))?;
    peer.with_context(|| format!("serve {target}"))
}

/// Checks that a connection from `client` to `target` does not get through (while `server`
/// listens there).
pub async fn blocked(server: &Server, client: &Netns, target: SocketAddr) -> Result<()> {
    let _ = server;
    let result = client
        .run_in(move || TcpStream::connect_timeout(&target, CONNECT_TIMEOUT))
        .await?;
    if result.is_ok() {
        bail!("connection to {target} got through");
    }
    Ok(())
}

/// A socket address.
pub fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// Parses an IP address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}
