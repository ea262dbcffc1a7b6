//! Helpers shared by the kernel tests: ruleset dumps, a small network topology built with the
//! osl inside the test's private namespace, and TCP probes.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use libnetwork_firewall::{Backend, BackendChoice, NetworkRules, PortMapping};
use libnetwork_osl::{Host, InterfaceOptions, IpNet, NextHop, Sandbox, StaticRoute};
use libnetwork_types::Protocol;
use tempfile::TempDir;
use tokio::runtime::Runtime;

/// Generates `mod $name { fn nftables(); fn iptables(); }`, each running the function `$name`
/// of the calling module (`fn(BackendChoice)`) inside a fresh private namespace.
#[macro_export]
macro_rules! both_backends {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        mod $name {
            #[test]
            fn nftables() {
                $crate::common::run(
                    concat!(stringify!($name), "::nftables"),
                    ::libnetwork_firewall::BackendChoice::Nftables,
                    super::$name,
                );
            }

            #[test]
            fn iptables() {
                $crate::common::run(
                    concat!(stringify!($name), "::iptables"),
                    ::libnetwork_firewall::BackendChoice::Iptables,
                    super::$name,
                );
            }
        }
    };
}

/// Runs `body` for `backend` in a new network namespace, when privileged.
pub fn run(name: &str, backend: BackendChoice, body: fn(BackendChoice)) {
    if !libnetwork_testutil::privileged(name) {
        return;
    }
    libnetwork_testutil::in_new_netns(|| body(backend));
}

/// Runs a command in the current namespace, panicking when it fails; returns its stdout.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The ruleset as the backend sees it, in a form that compares equal when the rules are the
/// same: `nft list ruleset` for nftables; `iptables-save` and `ip6tables-save` without their
/// timestamped comment lines for iptables (iptables-nft leaves empty built-in chains behind in
/// nftables' view once their last rule is gone, which is not a rule of ours).
pub fn ruleset(backend: BackendChoice) -> String {
    if backend == BackendChoice::Nftables {
        return sh("nft", &["list", "ruleset"]);
    }
    let mut out = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        for line in sh(tool, &[]).lines() {
            if !line.starts_with('#') {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// How many port mappings the backend has installed: DNAT rules (iptables, one per mapping), or
/// distinct mapping tags among the elements of the `pub` maps (nftables, where a mapping is one
/// or more elements).
pub fn mapping_count(backend: Backend) -> usize {
    match backend {
        Backend::Nftables => {
            let tags: HashSet<String> = nft_elements("pub")
                .into_iter()
                .filter_map(|(_, e)| e.pointer("/elem/comment").map(|c| c.to_string()))
                .collect();
            tags.len()
        }
        Backend::Iptables => {
            let mut rules = 0;
            for tool in ["iptables-save", "ip6tables-save"] {
                rules += sh(tool, &["-t", "nat"])
                    .lines()
                    .filter(|l| l.starts_with("-A DOCKER ") && l.contains("-j DNAT"))
                    .count();
            }
            rules
        }
    }
}

/// The elements of the sets and maps of `table inet libnetwork` whose name starts with
/// `prefix`, as `(set, element)`; a map element is its key (`{"elem": {...}}` or a plain value).
pub fn nft_elements(prefix: &str) -> Vec<(String, serde_json::Value)> {
    let json: serde_json::Value =
        serde_json::from_str(&sh("nft", &["-j", "list", "table", "inet", "libnetwork"])).unwrap();
    let mut out = Vec::new();
    for item in json["nftables"].as_array().unwrap() {
        let Some(set) = item.get("set").or_else(|| item.get("map")) else {
            continue;
        };
        let name = set["name"].as_str().unwrap();
        if !name.starts_with(prefix) {
            continue;
        }
        for e in set["elem"].as_array().into_iter().flatten() {
            let key = match e {
                serde_json::Value::Array(pair) => pair[0].clone(),
                other => other.clone(),
            };
            out.push((name.to_string(), key));
        }
    }
    out
}

/// The rules of a chain of `table inet libnetwork`, one per line.
pub fn nft_rules(chain: &str) -> Vec<String> {
    sh("nft", &["list", "chain", "inet", "libnetwork", chain])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.ends_with('{') && *l != "}" && !l.starts_with("type "))
        .map(str::to_string)
        .collect()
}

/// Network rules with Docker's defaults for a user-defined network.
pub fn network(bridge: &str, subnet: &str) -> NetworkRules {
    NetworkRules {
        bridge: bridge.to_string(),
        ipv4_subnet: subnet.parse().unwrap(),
        ipv6_subnet: None,
        masquerade: true,
        snat_source: None,
        icc: true,
        internal: false,
        hairpin: true,
    }
}

/// A TCP mapping of `host_ports` to `container_ip:container_port` on `bridge`.
pub fn tcp_mapping(
    bridge: &str,
    host_ports: std::ops::RangeInclusive<u16>,
    container_ip: &str,
    container_port: u16,
) -> PortMapping {
    PortMapping {
        protocol: Protocol::Tcp,
        host_ip: None,
        host_ports,
        container_ip: container_ip.parse().unwrap(),
        container_port,
        bridge: bridge.to_string(),
    }
}

/// The outside address of the host in [`Topology`].
pub const HOST_OUTSIDE: &str = "192.168.77.1";
/// The address of the outside namespace in [`Topology`].
pub const OUTSIDE: &str = "192.168.77.2";

/// A small world inside the test's namespace (which plays the host): bridges with container
/// namespaces, and an "outside" namespace joined to the host by a veth pair, with a route to
/// the containers' `172.30.0.0/16` through the host (so that only the firewall stands between
/// them). Forwarding is on in the host.
pub struct Topology {
    pub rt: Runtime,
    pub host: Host,
    pub outside: Sandbox,
    _dir: TempDir,
}

impl Topology {
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let host = rt.block_on(Host::new(dir.path())).unwrap();
        libnetwork_osl::sysctl::write("net.ipv4.ip_forward", "1").unwrap();
        let outside = rt.block_on(async {
            let sb = host.create_sandbox(&host.key_for("outside")).await.unwrap();
            let opts = InterfaceOptions {
                addresses: vec![format!("{OUTSIDE}/24").parse().unwrap()],
                ..Default::default()
            };
            let pair = sb.create_veth("vout", "eth", &opts).await.unwrap();
            let nl = host.netlink();
            nl.add_address(
                &pair.host,
                format!("{HOST_OUTSIDE}/24").parse().unwrap(),
                true,
            )
            .await
            .unwrap();
            nl.set_up(&pair.host, true).await.unwrap();
            sb.add_static_route(&StaticRoute {
                destination: "172.30.0.0/16".parse().unwrap(),
                next_hop: NextHop::Gateway(HOST_OUTSIDE.parse().unwrap()),
            })
            .await
            .unwrap();
            sb
        });
        Self {
            rt,
            host,
            outside,
            _dir: dir,
        }
    }

    /// Creates bridge `name` with gateway address `gateway` (`172.30.1.1/24`), up.
    pub fn bridge(&self, name: &str, gateway: &str) {
        self.rt.block_on(async {
            let nl = self.host.netlink();
            let br = nl.create_bridge(name).await.unwrap();
            nl.add_address(&br, gateway.parse().unwrap(), true)
                .await
                .unwrap();
            nl.set_up(&br, true).await.unwrap();
        });
    }

    /// Creates a container namespace `id` on `bridge` with `address` (`172.30.1.2/24`) and a
    /// default route through `gateway`.
    pub fn container(&self, id: &str, bridge: &str, address: &str, gateway: &str) -> Sandbox {
        self.container_with(id, bridge, &[address], &[gateway])
    }

    /// Creates a container namespace `id` on `bridge` with `addresses` (IPv6 ones without
    /// duplicate address detection) and default routes through `gateways`.
    pub fn container_with(
        &self,
        id: &str,
        bridge: &str,
        addresses: &[&str],
        gateways: &[&str],
    ) -> Sandbox {
        self.rt.block_on(async {
            let sb = self
                .host
                .create_sandbox(&self.host.key_for(id))
                .await
                .unwrap();
            let addresses: Vec<IpNet> = addresses.iter().map(|a| a.parse().unwrap()).collect();
            let opts = InterfaceOptions {
                addresses,
                ..Default::default()
            };
            let pair = sb
                .create_veth(&format!("v{id}"), "eth", &opts)
                .await
                .unwrap();
            let nl = self.host.netlink();
            let br = nl.link_by_name(bridge).await.unwrap();
            nl.set_master(&pair.host, &br).await.unwrap();
            nl.set_up(&pair.host, true).await.unwrap();
            for gateway in gateways {
                sb.set_gateway(gateway.parse().unwrap()).await.unwrap();
            }
            sb
        })
    }

    /// Adds `address` (`fd00:77::1/64`) to the host's link `link`, without duplicate address
    /// detection.
    pub fn host_address(&self, link: &str, address: &str) {
        self.rt.block_on(async {
            let nl = self.host.netlink();
            let link = nl.link_by_name(link).await.unwrap();
            nl.add_address(&link, address.parse().unwrap(), true)
                .await
                .unwrap();
        });
    }

    /// Runs `ip args...` inside `sb`.
    pub fn ip_in(&self, sb: &Sandbox, args: &[&str]) {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.rt
            .block_on(sb.run_in(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                sh("ip", &args)
            }))
            .unwrap();
    }

    /// Starts a TCP server inside `sb` on `ip:port`.
    pub fn serve(&self, sb: &Sandbox, ip: &str, port: u16) -> Server {
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        let listener = self
            .rt
            .block_on(sb.run_in(move || TcpListener::bind(addr)))
            .unwrap()
            .unwrap();
        Server::start(listener)
    }

    /// Connects from inside `sb` to `ip:port` and reads the server's greeting.
    pub fn connect(&self, sb: &Sandbox, ip: &str, port: u16) -> std::io::Result<()> {
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        self.rt.block_on(sb.run_in(move || probe(addr))).unwrap()
    }
}

/// Connects to `addr` from the calling thread's namespace and reads the one-byte greeting;
/// a dropped SYN fails after about a second.
pub fn probe(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(1200))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    assert_eq!(&byte, b"x");
    Ok(())
}

/// A TCP server on its own thread that greets each client with `x` and reports its address.
pub struct Server {
    peers: mpsc::Receiver<SocketAddr>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(listener: TcpListener) -> Self {
        listener.set_nonblocking(true).unwrap();
        let (tx, peers) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.write_all(b"x");
                        if tx.send(peer).is_err() {
                            return;
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { peers, stop }
    }

    /// The address of the next client that connected (waiting a little for it).
    pub fn peer(&self) -> IpAddr {
        let deadline = Instant::now() + Duration::from_secs(3);
        self.peers
            .recv_timeout(deadline - Instant::now())
            .expect("no client reached the server")
            .ip()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
