//! Firewall rules for bridge networks and published ports, over nftables or iptables.
//!
//! This crate plays the part of libnetwork's `iptables` package together with the
//! rule-programming halves of `drivers/bridge` (`setup_ip_tables.go`: per-network NAT,
//! forwarding, isolation, ICC, internal networks) and of `portmapper` (`ChainInfo.Forward`: the
//! DNAT of published ports). A [`Firewall`] is created once per process with [`Firewall::new`],
//! which picks a backend and installs the base structure; the bridge driver then calls
//! [`Firewall::add_network`] / [`Firewall::remove_network`] and the port mapper
//! [`Firewall::add_port_mappings`] / [`Firewall::remove_port_mappings`].
//!
//! The API is blocking. With nftables, a change of a network or of port mappings is one netlink
//! transaction on a socket [`Firewall::new`] opened (tens of microseconds, no process); only
//! [`Firewall::reapply`], and [`Firewall::new`] when our table lacks the base rules, run `nft`.
//! With iptables, every change runs `iptables-restore --noflush` (plus
//! `ip6tables-restore --noflush` when IPv6 is on) and waits for it, a few milliseconds. Async
//! callers use `tokio::task::spawn_blocking`. [`Firewall`] is `Send + Sync`; changes are
//! serialised by an internal mutex.
//!
//! # Layout
//! - this file: the API types, input validation, and the dispatch to a backend;
//! - `nft`: the nftables backend, our own `table inet libnetwork` (its module doc draws the
//!   table);
//! - `nftnl`: the nf_tables netlink client of that backend (set element batches, and dumps of
//!   elements and rules);
//! - `iptables`: the iptables backend, Docker's chains (`DOCKER`, `DOCKER-USER`,
//!   `DOCKER-FORWARD`, `DOCKER-ISOLATION-STAGE-1/2`) in `filter` and `nat`;
//! - `tag`: the comments that tag our rules and elements so a later process can find them;
//! - `exec`: running the tools with a batch on standard input.
//!
//! # What the rules do (both backends)
//! - Traffic between two containers of one bridge is accepted, or dropped with ICC off.
//! - Traffic from a bridge to anything but our bridges is accepted and (with masquerade on)
//!   masqueraded, or source-NATed to [`NetworkRules::snat_source`].
//! - Traffic from one of our bridges to another is dropped (isolation).
//! - Traffic into a bridge from outside is accepted only when it belongs to a connection the
//!   containers opened, or was DNATed to a published port; anything else is dropped (Docker 28
//!   does the same; older Docker relied on the FORWARD policy).
//! - An internal network exchanges nothing with anything outside its bridge.
//! - A published port is DNATed when its destination is a local address of the host (not
//!   loopback) and the packet does not come from a bridge without hairpin mode (that traffic
//!   is the userland proxy's). A hairpinned connection (from a container of the network to a
//!   host address) is masqueraded so the answer comes back through the host.
//! - The user chain (`DOCKER-USER` / `docker-user`) is evaluated before all of this and is never
//!   flushed.
//!
//! # Design decisions
//! - **One transaction per change, never one process per rule.** One nftables netlink
//!   transaction (no process at all) or one `iptables-restore` run per call (both are atomic: all
//!   or nothing). Across IPv4 and IPv6 iptables runs, a failure of the second undoes the first.
//! - **nftables: fixed rules, networks and mappings as set elements.** Every nftables rule is
//!   installed once, by [`Firewall::new`]; the rules consult sets and maps keyed by bridge name,
//!   subnet, protocol and port, and a network or a port mapping is a handful of elements of
//!   them. Adding, replacing (old elements deleted, new ones added) and removing is one batch of
//!   element changes sent on a netlink socket, with no `nft` process and no rule handles.
//! - **A range is one rule or one element.** A port range mapped to the same container ports is
//!   one DNAT rule with iptables and one interval element of a map with nftables; a shifted range
//!   is one rule with iptables' `first-last/base` syntax (Linux 4.19 and later) and, because
//!   nftables has no shifted ranges, one map element per port with nftables (all in the same
//!   transaction).
//! - **Restart-safe.** Base chains are flushed and refilled (nftables) or repaired in place
//!   (iptables) by [`Firewall::new`]; rules (iptables) and elements (nftables) of networks and
//!   mappings carry comment tags and are read back, so a restarted process neither duplicates
//!   nor loses them, and [`Firewall::port_mappings`] tells it what an earlier process published.
//!   nftables tags carry a network's whole settings, so a network found at start can be removed
//!   and re-applied exactly. [`Firewall::reapply`] installs everything again after another tool
//!   flushed the ruleset.
//!
//! # Deliberate differences from libnetwork
//! - Port mappings are one rule (iptables) or one or more map elements (nftables) each, and
//!   their forwarding accept is one per network (iptables) or one for all (nftables; conntrack
//!   state DNAT) instead of one filter rule per port. Where mappings overlap, iptables uses the
//!   first added; nftables prefers a host-specific mapping to an any-address one and a single
//!   port to a range, and refuses two same-port ranges over the same port (which the port
//!   allocator never asks for).
//! - Published ports stay reachable from the same network through the host address with ICC off
//!   (libnetwork drops hairpinned traffic then, unless its userland proxy carries it).
//! - The `FORWARD` policy is not changed to DROP: unsolicited traffic into our bridges is
//!   dropped by our own rules, and the host's other forwarding is left alone.
//! - Loopback traffic to published ports (`route_localnet`) is not DNATed; that is the userland
//!   proxy's. No firewalld integration: [`Firewall::reapply`] is what a reload hook calls.
//! - Blocking inter-container traffic (ICC off) only works when bridged traffic reaches the
//!   firewall (`net.bridge.bridge-nf-call-iptables=1`), which the bridge driver sets, as does
//!   bridge-port hairpin mode for a container reaching its own published port.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ipnet::{Ipv4Net, Ipv6Net};
use libnetwork_types::{ErrorKind, Protocol};
use tracing::{debug, info};

mod exec;
mod iptables;
mod nft;
mod nftnl;
mod tag;

/// Which backend [`Firewall::new`] should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// nftables when `nft` runs and the kernel answers it, iptables otherwise.
    #[default]
    Auto,
    /// nftables only; [`Error::Unavailable`] when it cannot be used.
    Nftables,
    /// iptables only (`iptables-restore` / `ip6tables-restore`, whichever flavour is on PATH);
    /// [`Error::Unavailable`] when it cannot be used.
    Iptables,
}

/// The backend a [`Firewall`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Our own `table inet libnetwork`: rules installed with `nft -f -`, networks and port
    /// mappings changed as set elements in nftables netlink transactions.
    Nftables,
    /// Docker's chains in the `filter` and `nat` tables, changed with
    /// `iptables-restore --noflush` (and `ip6tables-restore --noflush`).
    Iptables,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nftables => "nftables",
            Self::Iptables => "iptables",
        })
    }
}

/// How to set up a [`Firewall`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirewallConfig {
    /// Which backend to use.
    pub backend: BackendChoice,
    /// Whether IPv6 rules are programmed (libnetwork's `EnableIP6Tables`). When false, the IPv6
    /// subnet of a network and port mappings to IPv6 containers are skipped (logged at debug).
    pub ipv6: bool,
}

/// The firewall rules of one bridge network (what libnetwork's bridge driver programs at
/// `CreateNetwork`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetworkRules {
    /// The bridge interface; identifies the network in this crate. At most 15 characters of
    /// `[A-Za-z0-9_.-]`.
    pub bridge: String,
    /// The network's IPv4 subnet (masked or not; the network address is used).
    pub ipv4_subnet: Ipv4Net,
    /// The network's IPv6 subnet, if any.
    pub ipv6_subnet: Option<Ipv6Net>,
    /// Masquerade traffic from the subnet leaving through another interface
    /// (`com.docker.network.bridge.enable_ip_masquerade`).
    pub masquerade: bool,
    /// With `masquerade`, source-NAT IPv4 traffic to this address instead of masquerading
    /// (`com.docker.network.host_ipv4`).
    pub snat_source: Option<Ipv4Addr>,
    /// Inter-container communication on this bridge (`com.docker.network.bridge.enable_icc`).
    /// Blocking it needs `net.bridge.bridge-nf-call-iptables=1` (set by the bridge driver), or
    /// bridged traffic never reaches the firewall.
    pub icc: bool,
    /// No traffic to or from anything outside this bridge (`com.docker.network.internal`).
    pub internal: bool,
    /// Hairpin NAT: the userland proxy is off, so traffic from this bridge to a published port on
    /// a host address is DNATed by the kernel (and masqueraded back through the bridge). When
    /// false, such traffic is left to the userland proxy.
    pub hairpin: bool,
}

/// One published port or port range (what libnetwork's port mapper forwards).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// The transport protocol.
    pub protocol: Protocol,
    /// The host address the ports are published on; `None` means every local address of the
    /// container address's family.
    pub host_ip: Option<IpAddr>,
    /// The published host ports (`start..=end`; a single port is `p..=p`). Never empty, never
    /// port 0.
    pub host_ports: RangeInclusive<u16>,
    /// The container's address; its family selects IPv4 or IPv6 rules.
    pub container_ip: IpAddr,
    /// The container port the first host port maps to; host port `start + i` maps to
    /// `container_port + i`.
    pub container_port: u16,
    /// The bridge of the container's network; the network must have been added with
    /// [`Firewall::add_network`].
    pub bridge: String,
}

/// The errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable firewall backend (tool missing, kernel support missing, or the forced backend
    /// does not work). Nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// The request is malformed (bad interface name, port range, address family mismatch).
    /// Nothing was changed.
    #[error("{0}")]
    BadRequest(String),
    /// A port mapping names a bridge that has no network in this firewall. Nothing was changed.
    #[error("{0}")]
    NetworkNotFound(String),
    /// The backend rejected a batch; the message carries the tool's stderr or, for nftables
    /// element changes, the kernel's error and the set it concerned. A batch is one
    /// transaction, so nothing of it was applied.
    #[error("{what}: {stderr}")]
    Batch {
        /// What was being done.
        what: String,
        /// The tool's standard error.
        stderr: String,
    },
    /// Running a backend tool failed, or its output could not be understood. Nothing was
    /// changed by this call unless it says otherwise.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::BadRequest(_) => ErrorKind::BadRequest,
            Self::NetworkNotFound(_) => ErrorKind::NotFound,
            Self::Batch { .. } | Self::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// The firewall of this host's (this network namespace's) bridge networks.
///
/// `Send + Sync`; every method blocks until its batch has been applied, and changes are
/// serialised. With nftables, changes go to the network namespace of the thread that called
/// [`Firewall::new`] (where its netlink socket was opened), whichever thread makes them.
#[derive(Debug)]
pub struct Firewall {
    backend: Backend,
    ipv6: bool,
    engine: Mutex<Engine>,
}

impl Firewall {
    /// Picks the backend and installs the base structure (tables, chains and hook jumps). Finds
    /// and keeps what an earlier process installed: running it again neither duplicates rules
    /// nor drops rules of networks and port mappings, and never changes the content of the user
    /// chain (`DOCKER-USER`, or `docker-user` in the nftables table).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when no backend works; [`Error::Batch`] / [`Error::Internal`] when
    /// setting up fails.
    pub fn new(config: FirewallConfig) -> Result<Self, Error> {
        // nftables is tried by setting it up: a separate probe would cost one more `nft` run
        // at every start. It fails with `Unavailable` when nftables cannot be used.
        let engine = match config.backend {
            BackendChoice::Nftables => Engine::Nft(nft::Nft::new(config.ipv6)?),
            BackendChoice::Iptables => {
                iptables::Iptables::probe(config.ipv6)?;
                Engine::Iptables(iptables::Iptables::new(config.ipv6)?)
            }
            BackendChoice::Auto => match nft::Nft::new(config.ipv6) {
                Ok(nft) => Engine::Nft(nft),
                Err(nft_err) if nft_err.kind() == ErrorKind::Unavailable => {
                    debug!(error = %nft_err, "nftables unusable, trying iptables");
                    iptables::Iptables::probe(config.ipv6).map_err(|ipt_err| {
                        Error::Unavailable(format!(
                            "choose a firewall backend: {nft_err}; {ipt_err}"
                        ))
                    })?;
                    Engine::Iptables(iptables::Iptables::new(config.ipv6)?)
                }
                Err(e) => return Err(e),
            },
        };
        let backend = match engine {
            Engine::Nft(_) => Backend::Nftables,
            Engine::Iptables(_) => Backend::Iptables,
        };
        info!(%backend, ipv6 = config.ipv6, "firewall ready");
        Ok(Self {
            backend,
            ipv6: config.ipv6,
            engine: Mutex::new(engine),
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Installs the rules of a network: masquerading, forwarding to and from the bridge,
    /// isolation from the other networks, inter-container communication, internal-network
    /// drops. Adding a network that exists (same bridge) replaces its rules atomically; port
    /// mappings are kept.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for invalid rules; [`Error::Batch`] when the backend rejects them.
    pub fn add_network(&self, rules: &NetworkRules) -> Result<(), Error> {
        let op = || format!("add network {}", rules.bridge);
        validate_bridge(&rules.bridge, &op)?;
        if rules.snat_source.is_some_and(|ip| ip.is_unspecified()) {
            return Err(Error::BadRequest(format!(
                "{}: unspecified snat source",
                op()
            )));
        }
        let mut rules = rules.clone();
        if !self.ipv6 && rules.ipv6_subnet.take().is_some() {
            debug!(
                bridge = rules.bridge,
                "ipv6 firewall rules are off, skipping the ipv6 subnet"
            );
        }
        debug!(?rules, "adding network firewall rules");
        self.engine().add_network(&rules)
    }

    /// Removes every rule of the network on `bridge`, including its port mappings. Removing an
    /// unknown network does nothing.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an invalid name; [`Error::Batch`] when the backend fails.
    pub fn remove_network(&self, bridge: &str) -> Result<(), Error> {
        validate_bridge(bridge, &|| format!("remove network {bridge}"))?;
        debug!(bridge, "removing network firewall rules");
        self.engine().remove_network(bridge)
    }

    /// Publishes ports: DNAT from other hosts and from the host itself (non-loopback addresses),
    /// hairpin NAT for networks with [`NetworkRules::hairpin`], and the forwarding accept for the
    /// translated traffic. One rule (iptables) or one map element (nftables) per mapping whatever
    /// the size of its range, except that nftables needs one element per port when the
    /// container ports are shifted. All mappings are applied in one batch, or none; mappings
    /// already installed are skipped. A host address `0.0.0.0` or `::` is taken as `None`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an invalid mapping; [`Error::NetworkNotFound`] when its bridge
    /// has no network; [`Error::Batch`] when the backend rejects the batch.
    pub fn add_port_mappings(&self, mappings: &[PortMapping]) -> Result<(), Error> {
        let mappings = self.checked(mappings, "add port mappings")?;
        let mut engine = self.engine();
        if let Some(m) = mappings.iter().find(|m| !engine.has_network(&m.bridge)) {
            return Err(Error::NetworkNotFound(format!(
                "add port mappings: no network on bridge {}",
                m.bridge
            )));
        }
        engine.add_mappings(&mappings)
    }

    /// Removes port mappings in one batch. Mappings that are not installed are skipped.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an invalid mapping; [`Error::Batch`] when the backend fails.
    pub fn remove_port_mappings(&self, mappings: &[PortMapping]) -> Result<(), Error> {
        let mappings = self.checked(mappings, "remove port mappings")?;
        self.engine().remove_mappings(&mappings)
    }

    /// The port mappings installed, including those an earlier process installed and this one
    /// found at [`Firewall::new`]; lets a restarted caller remove the ones it no longer wants.
    pub fn port_mappings(&self) -> Vec<PortMapping> {
        self.engine().mappings()
    }

    /// Installs again the base structure, every network and every port mapping this firewall
    /// knows, for when another tool flushed the ruleset (libnetwork re-programs on a firewalld
    /// reload). With iptables, networks found at [`Firewall::new`] but never added by this
    /// process are not re-created: their settings are unknown. nftables reads them from the
    /// comments of the networks' elements and re-creates them too.
    ///
    /// # Errors
    /// As [`Firewall::new`].
    pub fn reapply(&self) -> Result<(), Error> {
        info!(backend = %self.backend, "re-applying firewall rules");
        self.engine().reapply()
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Validates and normalises mappings; drops IPv6 ones when IPv6 rules are off.
    fn checked(&self, mappings: &[PortMapping], op: &str) -> Result<Vec<PortMapping>, Error> {
        let mut out = Vec::with_capacity(mappings.len());
        for m in mappings {
            let m = validate_mapping(m, op)?;
            if m.container_ip.is_ipv6() && !self.ipv6 {
                debug!(?m, "ipv6 firewall rules are off, skipping the port mapping");
                continue;
            }
            out.push(m);
        }
        Ok(out)
    }
}

/// The backend state behind the mutex.
#[derive(Debug)]
enum Engine {
    Nft(nft::Nft),
    Iptables(iptables::Iptables),
}

impl Engine {
    fn has_network(&self, bridge: &str) -> bool {
        match self {
            Self::Nft(e) => e.has_network(bridge),
            Self::Iptables(e) => e.has_network(bridge),
        }
    }

    fn add_network(&mut self, rules: &NetworkRules) -> Result<(), Error> {
        match self {
            Self::Nft(e) => e.add_network(rules),
            Self::Iptables(e) => e.add_network(rules),
        }
    }

    fn remove_network(&mut self, bridge: &str) -> Result<(), Error> {
        match self {
            Self::Nft(e) => e.remove_network(bridge),
            Self::Iptables(e) => e.remove_network(bridge),
        }
    }

    fn add_mappings(&mut self, mappings: &[PortMapping]) -> Result<(), Error> {
        match self {
            Self::Nft(e) => e.add_mappings(mappings),
            Self::Iptables(e) => e.add_mappings(mappings),
        }
    }

    fn remove_mappings(&mut self, mappings: &[PortMapping]) -> Result<(), Error> {
        match self {
            Self::Nft(e) => e.remove_mappings(mappings),
            Self::Iptables(e) => e.remove_mappings(mappings),
        }
    }

    fn mappings(&self) -> Vec<PortMapping> {
        match self {
            Self::Nft(e) => e.mappings(),
            Self::Iptables(e) => e.mappings(),
        }
    }

    fn reapply(&mut self) -> Result<(), Error> {
        match self {
            Self::Nft(e) => e.reapply(),
            Self::Iptables(e) => e.reapply(),
        }
    }
}

/// Checks a bridge name: it ends up inside rule text, so only characters that need no quoting
/// in either tool are accepted (`+` is an iptables wildcard and refused too).
fn validate_bridge(name: &str, op: &dyn Fn() -> String) -> Result<(), Error> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 15 || !name.chars().all(valid_char) || name == "." {
        return Err(Error::BadRequest(format!(
            "{}: invalid bridge name {name:?} (1 to 15 characters of [A-Za-z0-9_.-])",
            op()
        )));
    }
    Ok(())
}

/// Checks a mapping and normalises an unspecified host address to `None`.
fn validate_mapping(m: &PortMapping, op: &str) -> Result<PortMapping, Error> {
    let bad = |why: String| Err(Error::BadRequest(format!("{op}: {why}")));
    validate_bridge(&m.bridge, &|| op.to_string())?;
    let (start, end) = (*m.host_ports.start(), *m.host_ports.end());
    if start == 0 || end < start {
        return bad(format!("invalid host port range {start}-{end}"));
    }
    if m.container_port == 0 || u32::from(m.container_port) + u32::from(end - start) > 65535 {
        return bad(format!(
            "container port {} cannot take a range of {} ports",
            m.container_port,
            end - start + 1
        ));
    }
    if m.container_ip.is_unspecified() || m.container_ip.is_multicast() {
        return bad(format!("invalid container address {}", m.container_ip));
    }
    let host_ip = m.host_ip.filter(|ip| !ip.is_unspecified());
    if let Some(host) = host_ip
        && host.is_ipv4() != m.container_ip.is_ipv4()
    {
        return bad(format!(
            "host address {host} and container address {} are of different families",
            m.container_ip
        ));
    }
    Ok(PortMapping {
        host_ip,
        ..m.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> PortMapping {
        PortMapping {
            protocol: Protocol::Tcp,
            host_ip: None,
            host_ports: 8000..=8999,
            container_ip: "172.17.0.2".parse().unwrap(),
            container_port: 8000,
            bridge: "docker0".into(),
        }
    }

    fn rejects(m: PortMapping) -> bool {
        validate_mapping(&m, "test").is_err_and(|e| e.kind() == ErrorKind::BadRequest)
    }

    #[test]
    fn bridge_names_that_need_quoting_are_refused() {
        let op = || "test".to_string();
        for bad in ["", "br 0", "br\"0", "br+", "br/0", "a-name-of-16-char", "."] {
            assert!(validate_bridge(bad, &op).is_err(), "{bad:?} accepted");
        }
        for good in ["docker0", "br-0123456789ab", "br_x.1"] {
            assert!(validate_bridge(good, &op).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn port_ranges_must_fit_on_both_sides() {
        assert!(validate_mapping(&mapping(), "test").is_ok());
        assert!(rejects(PortMapping {
            host_ports: 0..=10,
            ..mapping()
        }));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 10..=9;
        assert!(rejects(PortMapping {
            host_ports: reversed,
            ..mapping()
        }));
        assert!(rejects(PortMapping {
            container_port: 0,
            ..mapping()
        }));
        assert!(rejects(PortMapping {
            container_port: 64537,
            ..mapping()
        }));
        assert!(
            validate_mapping(
                &PortMapping {
                    container_port: 64536,
                    ..mapping()
                },
                "t"
            )
            .is_ok()
        );
    }

    #[test]
    fn addresses_must_be_usable_and_of_one_family() {
        let v6_host = Some("fd00::1".parse().unwrap());
        assert!(rejects(PortMapping {
            host_ip: v6_host,
            ..mapping()
        }));
        assert!(rejects(PortMapping {
            container_ip: "0.0.0.0".parse().unwrap(),
            ..mapping()
        }));
        assert!(rejects(PortMapping {
            container_ip: "224.0.0.1".parse().unwrap(),
            ..mapping()
        }));
    }

    #[test]
    fn an_unspecified_host_address_means_all_addresses() {
        let m = PortMapping {
            host_ip: Some("0.0.0.0".parse().unwrap()),
            ..mapping()
        };
        assert_eq!(validate_mapping(&m, "test").unwrap().host_ip, None);
        let m = PortMapping {
            host_ip: Some("10.0.0.1".parse().unwrap()),
            ..mapping()
        };
        assert_eq!(validate_mapping(&m, "test").unwrap().host_ip, m.host_ip);
    }

    #[test]
    fn the_firewall_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Firewall>();
    }
}
