//! [`PortMapper`]: allocation, DNAT and proxy of published ports, with rollback.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use libnetwork_firewall::{Firewall, PortMapping};
use libnetwork_portallocator::PortAllocator;
use libnetwork_types::{PortBinding, Protocol};
use tokio::task::JoinSet;

use crate::config::PortMapperConfig;
use crate::proxy::{self, Listeners, PortSet};
use crate::socket::{self, Probed};
use crate::{Error, socktable};

/// The smallest range whose ports, when the proxy is off, are checked with one query of the
/// kernel's socket tables rather than a probe bind each. A query walks the kernel's whole
/// tables, which costs about 1 ms per address family on an idle host and grows with its
/// sockets; a probe costs about 7 µs. So the two break even at about 300 ports, and small
/// bindings (the common single port) keep the probe.
const SOCKET_TABLE_MIN_PORTS: usize = 512;

/// Publishes container ports on the host: reserves host ports, installs DNAT rules through the
/// [`Firewall`] and runs the userland proxy as tasks of the caller's tokio runtime.
///
/// One mapper serves every bridge network of a process (it owns the port allocator, which
/// libnetwork keeps as a process-wide singleton). Cheap to share behind an [`Arc`]; every
/// method takes `&self`.
///
/// # Namespaces
/// The proxy's sockets, and the probe sockets and socket table queries when the proxy is off,
/// are created by the thread that polls [`PortMapper::map`], and the proxy's connections to
/// containers by the runtime's worker threads: all of them must be in the host's network namespace. Create the mapper and
/// call it from a runtime whose threads are all in that namespace (never `setns` a worker
/// thread); tests build their runtime inside a private namespace.
///
/// # Dropping
/// Dropping the mapper stops its proxy tasks but leaves the firewall's DNAT rules in place: call
/// [`PortMapper::unmap_all`] first to remove them.
#[derive(Debug)]
pub struct PortMapper {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: PortMapperConfig,
    firewall: Option<Arc<Firewall>>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    allocator: PortAllocator,
    mappings: HashMap<Key, Mapping>,
}

/// A mapping is found by its protocol, host address and first host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    proto: Protocol,
    host_ip: IpAddr,
    host_port: u16,
}

/// One published binding (a single port or a range).
#[derive(Debug)]
struct Mapping {
    /// The operational binding returned by [`PortMapper::map`].
    binding: PortBinding,
    /// The DNAT rule installed for it, if any.
    dnat: Option<PortMapping>,
    /// The proxy's task (none when the proxy is off or for SCTP).
    proxy: JoinSet<()>,
    /// Dropping it stops the proxy's task.
    stop: proxy::Stop,
}

/// A binding checked and normalised, before anything is reserved.
#[derive(Debug, Clone, Copy)]
struct Request {
    /// The binding as given, for error messages.
    binding: PortBinding,
    proto: Protocol,
    host_ip: IpAddr,
    container_ip: IpAddr,
    container_port: u16,
    /// The host ports asked for; `None` is an ephemeral port.
    host_ports: Option<(u16, u16)>,
}

/// A binding whose host ports are reserved and whose sockets are bound, but not yet published.
#[derive(Debug)]
struct Prepared {
    request: Request,
    host_ports: RangeInclusive<u16>,
    /// The proxy's sockets (none when the proxy is off or for SCTP).
    listeners: Option<Listeners>,
}

impl Prepared {
    fn key(&self) -> Key {
        Key {
            proto: self.request.proto,
            host_ip: self.request.host_ip,
            host_port: *self.host_ports.start(),
        }
    }

    /// The binding reported to the caller: addresses filled in, host ports as published
    /// (`host_port_end` equals `host_port` for a single port, as libnetwork reports it).
    fn operational(&self) -> PortBinding {
        PortBinding {
            proto: self.request.proto,
            ip: Some(self.request.container_ip),
            port: self.request.container_port,
            host_ip: Some(self.request.host_ip),
            host_port: *self.host_ports.start(),
            host_port_end: *self.host_ports.end(),
        }
    }

    /// The DNAT rule for the firewall, or `None` when the host and container addresses are of
    /// different families (only the proxy can bridge those).
    fn dnat(&self, bridge: &str) -> Option<PortMapping> {
        let request = &self.request;
        if request.host_ip.is_ipv4() != request.container_ip.is_ipv4() {
            return None;
        }
        Some(PortMapping {
            protocol: request.proto,
            host_ip: (!request.host_ip.is_unspecified()).then_some(request.host_ip),
            host_ports: self.host_ports.clone(),
            container_ip: request.container_ip,
            container_port: request.container_port,
            bridge: bridge.to_owned(),
        })
    }
}

impl PortMapper {
    /// A mapper with nothing published. `firewall` installs the DNAT rules; without one only
    /// the proxy (or nothing, when it is off) makes the ports reachable. Reads the kernel's
    /// dynamic port range unless the configuration gives one.
    pub fn new(config: PortMapperConfig, firewall: Option<Arc<Firewall>>) -> Self {
        let allocator = match config.dynamic_range {
            Some(range) => PortAllocator::new(range),
            None => PortAllocator::with_system_range(),
        };
        tracing::info!(
            userland_proxy = config.userland_proxy,
            firewall = firewall.is_some(),
            dynamic_range = %allocator.dynamic_range(),
            "port mapper created"
        );
        Self {
            inner: Arc::new(Inner {
                config,
                firewall,
                state: Mutex::new(State {
                    allocator,
                    mappings: HashMap::new(),
                }),
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &PortMapperConfig {
        &self.inner.config
    }

    /// Publishes `bindings` of a container on the network of `bridge`, all of them or none.
    ///
    /// For each binding:
    /// - the container side is `binding.ip` or, when unset, `container_ip`, port `binding.port`;
    /// - the host address is `binding.host_ip` or, when unset, the unspecified address of the
    ///   container address's family (`0.0.0.0` or `::`); a host address of the other family
    ///   is served by the proxy alone, so it needs the proxy;
    /// - the host ports are an ephemeral port when `host_port` is 0, `host_port` when
    ///   `host_port_end` is 0 or equal, and otherwise the range `host_port..=host_port_end`
    ///   mapped one to one onto the container ports from `port` (a range of the same length);
    /// - the ports are reserved, bound by the proxy (or, when it is off, checked to find a port
    ///   held by another program: probe-bound, or for a range of 512 ports or more looked up in
    ///   the kernel's socket tables), the DNAT rules are installed in one batch, and the proxy
    ///   tasks start (one per binding).
    ///
    /// An ephemeral port held by another program is given up for the next one, up to
    /// [`PortMapperConfig::dynamic_port_attempts`] ports.
    ///
    /// Returns the operational bindings, in the order given, with the container and host
    /// addresses and the host ports filled in (`host_port_end` is the last host port, equal to
    /// `host_port` for a single port).
    ///
    /// Dropping the returned future does not leave a half-made mapping: once the sockets are
    /// bound, the rest finishes (or is undone) in a task of its own.
    ///
    /// # Errors
    /// [`Error::InvalidBinding`] for a malformed binding, [`Error::Allocate`] when a host port
    /// is already published, [`Error::PortInUse`] when another program holds it,
    /// [`Error::Bind`] and [`Error::Firewall`] when the system refuses. Nothing is left
    /// reserved, bound or installed.
    #[tracing::instrument(level = "debug", skip_all, fields(%bridge, %container_ip, bindings = bindings.len()))]
    pub async fn map(
        &self,
        bridge: &str,
        container_ip: IpAddr,
        bindings: &[PortBinding],
    ) -> Result<Vec<PortBinding>, Error> {
        let requests = bindings
            .iter()
            .map(|binding| Request::new(binding, container_ip, &self.inner.config))
            .collect::<Result<Vec<_>, _>>()?;
        let prepared = self.inner.prepare_all(&requests)?;
        let inner = Arc::clone(&self.inner);
        let bridge = bridge.to_owned();
        run_to_completion(async move { inner.commit(&bridge, prepared).await }).await
    }

    /// Stops publishing `bindings`, which are operational bindings returned by
    /// [`PortMapper::map`] (found by protocol, host address and first host port; an unset host
    /// address means the unspecified address of the family of `binding.ip`, IPv4 when that is
    /// unset too). Best effort: every binding found is unmapped whatever fails; its proxy tasks
    /// and their connections stop, its DNAT rules are removed (one batch) and its host ports
    /// are freed last.
    ///
    /// # Errors
    /// [`Error::NotMapped`] for a binding that is not published, [`Error::Firewall`] when the
    /// rules cannot be removed (the ports are freed anyway), or [`Error::Teardown`] with every
    /// failure when there are several.
    #[tracing::instrument(level = "debug", skip_all, fields(bindings = bindings.len()))]
    pub async fn unmap(&self, bindings: &[PortBinding]) -> Result<(), Error> {
        let mut failures = Vec::new();
        let removed = {
            let mut state = self.inner.lock();
            let mut removed = Vec::with_capacity(bindings.len());
            for binding in bindings {
                let key = Key::of(binding);
                match state.mappings.remove(&key) {
                    Some(mapping) => removed.push(mapping),
                    None => failures.push(Error::NotMapped {
                        proto: key.proto,
                        host: SocketAddr::new(key.host_ip, key.host_port),
                    }),
                }
            }
            removed
        };
        let inner = Arc::clone(&self.inner);
        if let Err(e) = run_to_completion(async move { inner.teardown(removed).await }).await {
            failures.push(e);
        }
        Error::from_failures(failures)
    }

    /// Stops publishing every binding (see [`PortMapper::unmap`]).
    ///
    /// # Errors
    /// [`Error::Firewall`] when the rules cannot be removed (everything else is still torn
    /// down).
    pub async fn unmap_all(&self) -> Result<(), Error> {
        let removed: Vec<Mapping> = self.inner.lock().mappings.drain().map(|(_, m)| m).collect();
        let inner = Arc::clone(&self.inner);
        run_to_completion(async move { inner.teardown(removed).await }).await
    }

    /// The operational bindings published now, sorted by protocol, host address and port.
    pub fn mappings(&self) -> Vec<PortBinding> {
        let state = self.inner.lock();
        let mut keyed: Vec<_> = state
            .mappings
            .iter()
            .map(|(k, m)| (*k, m.binding))
            .collect();
        keyed.sort_by_key(|(key, _)| (key.proto, key.host_ip, key.host_port));
        keyed.into_iter().map(|(_, binding)| binding).collect()
    }

    /// The number of host ports reserved (every port of every published range).
    pub fn allocated_ports(&self) -> usize {
        self.inner.lock().allocator.allocated_count()
    }
}

/// Runs `work` in a task of its own and waits for it, so that dropping the caller's future does
/// not interrupt it halfway. A panic in `work` is resumed in the caller.
async fn run_to_completion<T: Send + 'static>(
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::Shutdown),
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves and binds every request, or undoes the ones done and returns the error.
    fn prepare_all(&self, requests: &[Request]) -> Result<Vec<Prepared>, Error> {
        let mut prepared = Vec::with_capacity(requests.len());
        for request in requests {
            match self.prepare(request) {
                Ok(p) => prepared.push(p),
                Err(e) => {
                    self.release(&prepared);
                    return Err(e);
                }
            }
        }
        Ok(prepared)
    }

    /// Reserves the host ports of `request` and binds them, trying the next ephemeral port
    /// when the one chosen is held by another program.
    fn prepare(&self, request: &Request) -> Result<Prepared, Error> {
        let attempts = match request.host_ports {
            Some(_) => 1,
            None => self.config.dynamic_port_attempts.get(),
        };
        let mut attempt = 1;
        loop {
            let host_ports = self.reserve(request)?;
            match self.bind(request, host_ports.clone()) {
                Ok(listeners) => {
                    return Ok(Prepared {
                        request: *request,
                        host_ports,
                        listeners,
                    });
                }
                Err(e) => {
                    self.release_ports(request, host_ports.clone());
                    if !matches!(e, Error::PortInUse { .. }) || attempt >= attempts {
                        return Err(e);
                    }
                    tracing::debug!(
                        error = %e,
                        attempt,
                        "ephemeral port in use by another program, trying the next one"
                    );
                    attempt += 1;
                }
            }
        }
    }

    /// Reserves the host ports of `request` in the allocator.
    fn reserve(&self, request: &Request) -> Result<RangeInclusive<u16>, Error> {
        let proto = request.proto;
        let ip = request.host_ip;
        let allocate = |source| Error::Allocate {
            binding: request.binding,
            source,
        };
        let mut state = self.lock();
        let Some((start, end)) = request.host_ports else {
            let port = state
                .allocator
                .request_port(ip, proto, 0)
                .map_err(allocate)?;
            return Ok(port..=port);
        };
        for port in start..=end {
            if let Err(e) = state.allocator.request_port(ip, proto, port) {
                for taken in start..port {
                    state.allocator.release_port(ip, proto, taken);
                }
                return Err(allocate(e));
            }
        }
        Ok(start..=end)
    }

    /// Binds the proxy's sockets on the host ports, or checks them when the proxy is off (SCTP
    /// is always only checked). Sockets already bound are closed on failure.
    fn bind(
        &self,
        request: &Request,
        host_ports: RangeInclusive<u16>,
    ) -> Result<Option<Listeners>, Error> {
        let proxied = self.config.userland_proxy && request.proto != Protocol::Sctp;
        if !proxied {
            return self.check(request, host_ports).map(|()| None);
        }
        let listeners = match request.proto {
            Protocol::Tcp => Listeners::Tcp(bind_all(request, host_ports, socket::bind_tcp)?),
            Protocol::Udp => Listeners::Udp(bind_all(request, host_ports, socket::bind_udp)?),
            Protocol::Sctp => unreachable!("sctp is not proxied"),
        };
        Ok(Some(listeners))
    }

    /// Finds out whether another program holds a host port, without keeping any socket: a
    /// probe bind of each port, or for a large range one query of the kernel's socket tables
    /// and a probe bind of only the ports where a socket was found.
    fn check(&self, request: &Request, host_ports: RangeInclusive<u16>) -> Result<(), Error> {
        if host_ports.len() < SOCKET_TABLE_MIN_PORTS {
            return probe_all(request, host_ports);
        }
        match socktable::occupied_ports(request.proto, request.host_ip, host_ports.clone()) {
            Ok(occupied) => {
                tracing::debug!(
                    ports = host_ports.len(),
                    occupied = occupied.len(),
                    "host ports checked in the kernel's socket tables"
                );
                probe_all(request, occupied)
            }
            Err(e) => {
                tracing::debug!(error = %e, "socket table query failed, probing every port");
                probe_all(request, host_ports)
            }
        }
    }

    fn release_ports(&self, request: &Request, host_ports: RangeInclusive<u16>) {
        let proto = request.proto;
        let mut state = self.lock();
        for port in host_ports {
            state.allocator.release_port(request.host_ip, proto, port);
        }
    }

    /// Frees the ports of prepared bindings (their sockets close when they are dropped).
    fn release(&self, prepared: &[Prepared]) {
        for p in prepared {
            self.release_ports(&p.request, p.host_ports.clone());
        }
    }

    /// Installs the DNAT rules of `prepared` in one batch, starts their proxies and records the
    /// mappings; undoes the reservations when the firewall refuses.
    async fn commit(
        self: Arc<Self>,
        bridge: &str,
        prepared: Vec<Prepared>,
    ) -> Result<Vec<PortBinding>, Error> {
        let rules: Vec<Option<PortMapping>> = match &self.firewall {
            Some(_) => prepared.iter().map(|p| p.dnat(bridge)).collect(),
            None => prepared.iter().map(|_| None).collect(),
        };
        if let Some(firewall) = &self.firewall {
            let batch: Vec<PortMapping> = rules.iter().flatten().cloned().collect();
            if !batch.is_empty() {
                let firewall = Arc::clone(firewall);
                let added = tokio::task::spawn_blocking(move || firewall.add_port_mappings(&batch))
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                if let Err(source) = added {
                    self.release(&prepared);
                    return Err(Error::Firewall {
                        op: "install dnat rules",
                        source,
                    });
                }
            }
        }
        let mut operational = Vec::with_capacity(prepared.len());
        let mut mappings = Vec::with_capacity(prepared.len());
        for (p, dnat) in prepared.into_iter().zip(rules) {
            let binding = p.operational();
            let key = p.key();
            let backend = proxy::Backend {
                ip: p.request.container_ip,
                port: p.request.container_port,
            };
            let mut proxy = JoinSet::new();
            let (stop, signal) = proxy::stop_signal();
            let mut listening = 0;
            if let Some(listeners) = p.listeners {
                listening = listeners.len();
                let idle = self.config.udp_idle_timeout;
                proxy::spawn(&mut proxy, listeners, backend, idle, signal);
            }
            tracing::debug!(%binding, proxy_sockets = listening, dnat = dnat.is_some(), "port published");
            operational.push(binding);
            mappings.push((
                key,
                Mapping {
                    binding,
                    dnat,
                    proxy,
                    stop,
                },
            ));
        }
        self.lock().mappings.extend(mappings);
        tracing::info!(bridge, bindings = operational.len(), "ports published");
        Ok(operational)
    }

    /// Stops the proxies of `removed`, removes their DNAT rules and frees their ports.
    async fn teardown(self: Arc<Self>, removed: Vec<Mapping>) -> Result<(), Error> {
        if removed.is_empty() {
            return Ok(());
        }
        let mut rules = Vec::new();
        let mut freed = Vec::with_capacity(removed.len());
        let mut proxies = Vec::with_capacity(removed.len());
        for mapping in removed {
            drop(mapping.stop);
            proxies.push(mapping.proxy);
            rules.extend(mapping.dnat);
            freed.push(mapping.binding);
        }
        // Every proxy task closes its sockets (host ports, connections, flows) before it ends,
        // so once they have all ended the ports can be bound again.
        for mut proxy in proxies {
            while proxy.join_next().await.is_some() {}
        }
        let mut result = Ok(());
        if let (Some(firewall), false) = (&self.firewall, rules.is_empty()) {
            let firewall = Arc::clone(firewall);
            let removed =
                tokio::task::spawn_blocking(move || firewall.remove_port_mappings(&rules))
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            if let Err(source) = removed {
                result = Err(Error::Firewall {
                    op: "remove dnat rules",
                    source,
                });
            }
        }
        let mut state = self.lock();
        for binding in &freed {
            let key = Key::of(binding);
            let proto = key.proto;
            for port in binding.host_port..=binding.host_port_end.max(binding.host_port) {
                state.allocator.release_port(key.host_ip, proto, port);
            }
        }
        drop(state);
        tracing::info!(bindings = freed.len(), "ports unpublished");
        result
    }
}

/// Binds the proxy's socket of every host port with `bind`, in a set watched by one task.
fn bind_all<S: std::os::fd::AsFd>(
    request: &Request,
    host_ports: RangeInclusive<u16>,
    bind: fn(SocketAddr) -> std::io::Result<S>,
) -> Result<PortSet<S>, Error> {
    let first = SocketAddr::new(request.host_ip, *host_ports.start());
    let mut set = PortSet::with_capacity(host_ports.len())
        .map_err(|e| Error::bind(first, request.proto, e))?;
    for port in host_ports {
        let addr = SocketAddr::new(request.host_ip, port);
        bind(addr)
            .and_then(|socket| set.push(socket))
            .map_err(|e| Error::bind(addr, request.proto, e))?;
    }
    Ok(set)
}

/// Probe-binds each of `ports` on the host address of `request` (see [`socket::probe`]).
fn probe_all(request: &Request, ports: impl IntoIterator<Item = u16>) -> Result<(), Error> {
    for port in ports {
        let addr = SocketAddr::new(request.host_ip, port);
        match socket::probe(addr, request.proto) {
            Ok(Probed::Free) => {}
            Ok(Probed::Unsupported) => {
                tracing::debug!(%addr, "sctp is not available in this kernel, probe skipped");
                return Ok(());
            }
            Err(e) => return Err(Error::bind(addr, request.proto, e)),
        }
    }
    Ok(())
}

impl Key {
    /// The key of an operational binding (see [`PortMapper::unmap`] for unset addresses).
    fn of(binding: &PortBinding) -> Self {
        let family_of = binding.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Self {
            proto: binding.proto,
            host_ip: binding
                .host_ip
                .map_or_else(|| unspecified_like(family_of), |ip| ip.to_canonical()),
            host_port: binding.host_port,
        }
    }
}

impl Request {
    /// Checks `binding` and fills in its defaults (see [`PortMapper::map`]).
    fn new(
        binding: &PortBinding,
        container_ip: IpAddr,
        config: &PortMapperConfig,
    ) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidBinding {
            binding: *binding,
            reason,
        };
        let container_ip = binding.ip.unwrap_or(container_ip).to_canonical();
        if container_ip.is_unspecified() || container_ip.is_multicast() {
            return Err(invalid("container address is not a unicast address"));
        }
        if binding.port == 0 {
            return Err(invalid("container port is 0"));
        }
        let host_ip = binding
            .host_ip
            .map_or_else(|| unspecified_like(container_ip), |ip| ip.to_canonical());
        if host_ip.is_multicast() {
            return Err(invalid("host address is a multicast address"));
        }
        if host_ip.is_ipv4() != container_ip.is_ipv4() && !config.userland_proxy {
            return Err(invalid(
                "host and container addresses are of different families, which only the userland proxy can forward",
            ));
        }
        let host_ports = match (binding.host_port, binding.host_port_end) {
            (0, 0) => None,
            (0, _) => return Err(invalid("host port range has no first port")),
            (start, end) if end == 0 || end == start => Some((start, start)),
            (start, end) if end < start => {
                return Err(invalid("host port range ends before it starts"));
            }
            (start, end) => {
                if u32::from(binding.port) + u32::from(end - start) > u32::from(u16::MAX) {
                    return Err(invalid("container port range goes past 65535"));
                }
                Some((start, end))
            }
        };
        Ok(Self {
            binding: *binding,
            proto: binding.proto,
            host_ip,
            container_ip,
            container_port: binding.port,
            host_ports,
        })
    }
}

/// The unspecified address of `ip`'s family.
fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(port: u16, host_port: u16, host_port_end: u16) -> PortBinding {
        PortBinding {
            proto: Protocol::Tcp,
            ip: None,
            port,
            host_ip: None,
            host_port,
            host_port_end,
        }
    }

    fn request(b: &PortBinding, proxy: bool) -> Result<Request, Error> {
        let config = PortMapperConfig {
            userland_proxy: proxy,
            ..PortMapperConfig::default()
        };
        Request::new(b, "172.17.0.2".parse().unwrap(), &config)
    }

    #[test]
    fn malformed_bindings_are_bad_requests() {
        for b in [
            binding(0, 80, 0),
            binding(80, 0, 90),
            binding(80, 90, 89),
            binding(65530, 1000, 1010),
        ] {
            let e = request(&b, true).unwrap_err();
            assert!(matches!(e, Error::InvalidBinding { .. }), "{b}: {e}");
            assert_eq!(e.kind(), libnetwork_types::ErrorKind::BadRequest);
        }
    }

    #[test]
    fn unset_host_address_is_the_unspecified_address_of_the_container_family() {
        let r = request(&binding(80, 8080, 0), true).unwrap();
        assert_eq!(r.host_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut v6 = binding(80, 8080, 0);
        v6.ip = Some("fd00::2".parse().unwrap());
        let r = request(&v6, true).unwrap();
        assert_eq!(r.host_ip, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(r.container_ip, "fd00::2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn host_port_end_equal_or_zero_means_a_single_port() {
        assert_eq!(
            request(&binding(80, 8080, 0), true).unwrap().host_ports,
            Some((8080, 8080))
        );
        assert_eq!(
            request(&binding(80, 8080, 8080), true).unwrap().host_ports,
            Some((8080, 8080))
        );
        assert_eq!(request(&binding(80, 0, 0), true).unwrap().host_ports, None);
        assert_eq!(
            request(&binding(80, 8080, 8089), true).unwrap().host_ports,
            Some((8080, 8089))
        );
    }

    #[test]
    fn cross_family_bindings_need_the_proxy() {
        let mut b = binding(80, 8080, 0);
        b.host_ip = Some("::".parse().unwrap());
        assert!(request(&b, true).is_ok());
        assert!(matches!(
            request(&b, false),
            Err(Error::InvalidBinding { .. })
        ));
    }

    #[test]
    fn cross_family_bindings_get_no_dnat_rule() {
        let mut b = binding(80, 8080, 0);
        b.host_ip = Some("::".parse().unwrap());
        let p = Prepared {
            request: request(&b, true).unwrap(),
            host_ports: 8080..=8080,
            listeners: None,
        };
        assert!(p.dnat("br0").is_none());
        let p = Prepared {
            request: request(&binding(80, 8080, 8089), true).unwrap(),
            host_ports: 8080..=8089,
            listeners: None,
        };
        let rule = p.dnat("br0").unwrap();
        assert_eq!(rule.host_ip, None);
        assert_eq!(rule.host_ports, 8080..=8089);
        assert_eq!(rule.container_port, 80);
    }

    #[test]
    fn v4_mapped_host_addresses_are_treated_as_ipv4() {
        let mut b = binding(80, 8080, 0);
        b.host_ip = Some("::ffff:127.0.0.1".parse().unwrap());
        let r = request(&b, false).unwrap();
        assert_eq!(r.host_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(Key::of(&b).host_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}
