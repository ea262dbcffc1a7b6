//! Sandboxes: a container's network stack (libnetwork's `sandbox.go`): creation, the ordered
//! list of joined endpoints and the gateway choice (§28.3), deletion and the [`Sandbox`]
//! handle.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use libnetwork_etchosts::Record;
use libnetwork_osl::netns;
use libnetwork_resolver::{AddressFamily, Lookup, Resolver, ResolverConfig, SandboxRecords};
use libnetwork_types::{PortBinding, TransportPort};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::controller::{Batch, Inner, blocking, lock, random_id};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::files::{ResolutionFiles, ext_dns_entries};
use crate::records::{EpState, SandboxOptionsRecord, SandboxRecord};

/// The key name of the shared sandbox of host-network containers (libnetwork's
/// `GenerateKey("default")`).
const DEFAULT_SANDBOX_KEY: &str = "default";

/// Options of [`crate::Controller::new_sandbox`] (libnetwork's `SandboxOption*`). The
/// chainable methods set the field of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxOptions {
    /// The container's hostname (its line in the hosts file).
    pub hostname: String,
    /// The container's domain name.
    pub domainname: String,
    /// Where to write the hosts file; default `<data dir>/network/files/<sandbox id>/hosts`.
    pub hosts_path: Option<PathBuf>,
    /// A hosts file to copy for host-network sandboxes (default: the host's); with it set on
    /// other sandboxes, joins add nothing to the hosts file, as in libnetwork.
    pub origin_hosts_path: Option<PathBuf>,
    /// Where to write resolv.conf; default `<data dir>/network/files/<sandbox id>/resolv.conf`.
    pub resolv_conf_path: Option<PathBuf>,
    /// The resolv.conf to derive from (default: the host's).
    pub origin_resolv_conf_path: Option<PathBuf>,
    /// Extra hosts lines (`--add-host name:ip`).
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// DNS servers replacing the host's.
    pub dns: Vec<IpAddr>,
    /// DNS search domains replacing the host's.
    pub dns_search: Vec<String>,
    /// DNS options replacing the host's.
    pub dns_options: Vec<String>,
    /// Use the host's network namespace (host networking): no namespace is created.
    pub use_default_sandbox: bool,
    /// Ports the container exposes (given to drivers with its external connectivity).
    pub exposed_ports: Vec<TransportPort>,
    /// Ports to publish (merged with the gateway endpoint's own bindings).
    pub port_bindings: Vec<PortBinding>,
    /// Labels (libnetwork's generic options).
    pub labels: BTreeMap<String, String>,
}

impl SandboxOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the hostname (libnetwork's `OptionHostname`).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// Sets the domain name (libnetwork's `OptionDomainname`).
    pub fn domainname(mut self, domainname: impl Into<String>) -> Self {
        self.domainname = domainname.into();
        self
    }

    /// Adds an extra hosts line (libnetwork's `OptionExtraHost`).
    pub fn extra_host(mut self, name: impl Into<String>, ip: IpAddr) -> Self {
        self.extra_hosts.push((name.into(), ip));
        self
    }

    /// Adds a DNS server (libnetwork's `OptionDNS`).
    pub fn dns(mut self, server: IpAddr) -> Self {
        self.dns.push(server);
        self
    }

    /// Uses the host's namespace (libnetwork's `OptionUseDefaultSandbox`).
    pub fn use_default_sandbox(mut self) -> Self {
        self.use_default_sandbox = true;
        self
    }
}

/// An endpoint joined to a sandbox, with what orders it (libnetwork's `Less`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinedEndpoint {
    pub(crate) eid: String,
    pub(crate) nid: String,
    pub(crate) network_name: String,
    pub(crate) priority: i32,
    pub(crate) internal: bool,
    /// On the host or null network (never the gateway endpoint).
    pub(crate) special: bool,
    pub(crate) gw4: Option<IpAddr>,
    pub(crate) gw6: Option<IpAddr>,
}

impl JoinedEndpoint {
    fn gateway_score(&self) -> u8 {
        u8::from(self.gw4.is_some()) + 2 * u8::from(self.gw6.is_some())
    }
}

/// libnetwork's endpoint order: higher join priority first, non-internal networks before
/// internal ones, more gateway first (IPv4 counts 1, IPv6 2), then network name.
pub(crate) fn endpoint_order(a: &JoinedEndpoint, b: &JoinedEndpoint) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.internal.cmp(&b.internal))
        .then(b.gateway_score().cmp(&a.gateway_score()))
        .then(a.network_name.cmp(&b.network_name))
}

/// A sandbox in the controller.
pub(crate) struct SandboxEntry {
    pub(crate) id: String,
    pub(crate) container_id: String,
    record: Mutex<SandboxRecord>,
    /// Serialises joins and leaves of the sandbox.
    pub(crate) op: tokio::sync::Mutex<()>,
    pub(crate) osl: Arc<libnetwork_osl::Sandbox>,
    pub(crate) files: ResolutionFiles,
    joined: Mutex<Vec<JoinedEndpoint>>,
    /// The networks whose names the sandbox's DNS server answers, in endpoint order.
    pub(crate) dns: SandboxRecords,
    resolver: Mutex<Option<Resolver>>,
    deleting: AtomicBool,
    /// Closed while a restore compares the sandbox with the kernel in the background (see
    /// `restore`); operations on the sandbox and its endpoints wait until it opens. Open for
    /// every other sandbox.
    reconciled: tokio::sync::watch::Sender<bool>,
}

impl SandboxEntry {
    pub(crate) fn new(
        inner: &Inner,
        record: SandboxRecord,
        osl: Arc<libnetwork_osl::Sandbox>,
        files: ResolutionFiles,
    ) -> Self {
        Self {
            id: record.id.clone(),
            container_id: record.cid.clone(),
            record: Mutex::new(record),
            op: tokio::sync::Mutex::new(()),
            osl,
            files,
            joined: Mutex::new(Vec::new()),
            dns: SandboxRecords::new(&inner.dns),
            resolver: Mutex::new(None),
            deleting: AtomicBool::new(false),
            reconciled: tokio::sync::watch::Sender::new(true),
        }
    }

    /// Makes operations on the sandbox and its endpoints wait until the returned guard is
    /// dropped (by the restore, once the sandbox agrees with the kernel again).
    pub(crate) fn hold_until_reconciled(self: &Arc<Self>) -> ReconcileGuard {
        self.reconciled.send_replace(false);
        ReconcileGuard(Arc::clone(self))
    }

    /// Waits until the sandbox is reconciled after a restore (at once for any other).
    pub(crate) async fn wait_reconciled(&self) {
        let mut open = self.reconciled.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = open.wait_for(|open| *open).await;
    }

    pub(crate) fn record(&self) -> SandboxRecord {
        lock(&self.record).clone()
    }

    pub(crate) fn options(&self) -> SandboxOptionsRecord {
        lock(&self.record).options.clone()
    }

    /// The join priority of endpoint `eid` in the checkpoint (0 when none was given).
    pub(crate) fn priority_of(&self, eid: &str) -> i32 {
        lock(&self.record)
            .ep_priority
            .get(eid)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn is_host_mode(&self) -> bool {
        lock(&self.record).options.use_default_sandbox
    }

    pub(crate) fn is_deleting(&self) -> bool {
        self.deleting.load(AtomicOrdering::SeqCst)
    }

    /// The joined endpoints, in order.
    pub(crate) fn joined(&self) -> Vec<JoinedEndpoint> {
        lock(&self.joined).clone()
    }

    /// The gateway endpoint: the first one, not on the host or null network, with an IPv4
    /// gateway.
    pub(crate) fn gateway_endpoint(&self) -> Option<JoinedEndpoint> {
        lock(&self.joined)
            .iter()
            .find(|e| !e.special && e.gw4.is_some())
            .cloned()
    }

    /// Adds an endpoint in order.
    pub(crate) fn insert_joined(&self, ep: JoinedEndpoint) {
        let mut joined = lock(&self.joined);
        joined.retain(|e| e.eid != ep.eid);
        let at = joined
            .iter()
            .position(|e| endpoint_order(&ep, e) == Ordering::Less)
            .unwrap_or(joined.len());
        joined.insert(at, ep);
    }

    /// Removes an endpoint.
    pub(crate) fn remove_joined(&self, eid: &str) {
        lock(&self.joined).retain(|e| e.eid != eid);
    }

    /// Attaches the sandbox's DNS to the networks of its endpoints, in endpoint order.
    pub(crate) fn sync_dns_networks(&self) {
        let wanted: Vec<String> = self
            .joined()
            .into_iter()
            .filter(|e| !e.special)
            .map(|e| e.nid)
            .collect();
        for nid in self.dns.networks() {
            if !wanted.contains(&nid)
                && let Err(e) = self.dns.detach_network(&nid)
            {
                debug!(sandbox_id = %self.id, error = %e, "dns network not detached");
            }
        }
        let attached = self.dns.networks();
        for nid in &wanted {
            if !attached.contains(nid)
                && let Err(e) = self.dns.attach_network(nid)
            {
                debug!(sandbox_id = %self.id, error = %e, "dns network not attached");
            }
        }
        let order: Vec<&str> = wanted.iter().map(String::as_str).collect();
        if let Err(e) = self.dns.set_network_order(&order) {
            debug!(sandbox_id = %self.id, error = %e, "dns networks not reordered");
        }
    }

    /// The checkpoint with the current endpoints and priorities.
    pub(crate) fn checkpoint(&self) -> SandboxRecord {
        let joined = self.joined();
        let mut r = lock(&self.record);
        r.eps = joined
            .iter()
            .map(|e| EpState {
                eid: e.eid.clone(),
                nid: e.nid.clone(),
            })
            .collect();
        r.ep_priority = joined
            .iter()
            .filter(|e| e.priority != 0)
            .map(|e| (e.eid.clone(), e.priority))
            .collect();
        r.clone()
    }

    /// Whether the embedded DNS server runs.
    pub(crate) fn resolver_running(&self) -> bool {
        lock(&self.resolver).is_some()
    }

    /// Starts the embedded DNS server in the sandbox and points its resolv.conf at it, unless
    /// it runs already. Failures are logged and the sandbox goes on without it, as in
    /// libnetwork.
    pub(crate) async fn start_resolver(&self, upstreams: &[IpAddr]) {
        if self.resolver_running() || self.is_host_mode() {
            return;
        }
        let ndots_set = {
            let files = &self.files;
            match files.point_at_resolver() {
                Ok(n) => n,
                Err(e) => {
                    warn!(sandbox_id = %self.id, error = %e, "resolv.conf not pointed at the embedded dns server; it is not started");
                    return;
                }
            }
        };
        let config = ResolverConfig {
            upstreams: upstreams
                .iter()
                .take(libnetwork_resolver::MAX_UPSTREAMS)
                .map(|ip| SocketAddr::new(*ip, libnetwork_resolver::DNS_PORT))
                .collect(),
            ndots_set,
            ..ResolverConfig::default()
        };
        match Resolver::start(self.osl.netns(), self.dns.clone(), config).await {
            Ok(resolver) => {
                debug!(sandbox_id = %self.id, listen = %resolver.listen_addr(), "embedded dns server running");
                *lock(&self.resolver) = Some(resolver);
            }
            Err(e) => {
                warn!(sandbox_id = %self.id, error = %e, "embedded dns server not started");
            }
        }
    }

    /// Stops the embedded DNS server (dropping it aborts its tasks).
    pub(crate) fn stop_resolver(&self) {
        drop(lock(&self.resolver).take());
    }

    /// Stops the embedded DNS server and waits for it.
    pub(crate) async fn stop_resolver_and_wait(&self) -> Result<()> {
        let resolver = lock(&self.resolver).take();
        if let Some(r) = resolver {
            r.stop().await.map_err(|e| {
                Error::Internal(format!(
                    "stop the embedded dns server of sandbox {}: {e}",
                    self.id
                ))
            })?;
        }
        Ok(())
    }

    /// The address the embedded DNS server listens on.
    pub(crate) fn resolver_addr(&self) -> Option<SocketAddr> {
        lock(&self.resolver).as_ref().map(Resolver::listen_addr)
    }

    /// Makes the hosts file's dynamic lines what `desired` gives (blocking file work, small).
    pub(crate) fn sync_hosts(&self, desired: impl FnOnce() -> Vec<Record>) -> Result<()> {
        self.files.sync_hosts(desired)
    }
}

/// Holds back operations on a restored sandbox and its endpoints while the restore compares
/// it with the kernel; dropping it (also on a panic) lets them go.
pub(crate) struct ReconcileGuard(Arc<SandboxEntry>);

impl Drop for ReconcileGuard {
    fn drop(&mut self) {
        self.0.reconciled.send_replace(true);
    }
}

/// A sandbox (libnetwork's `Sandbox`): a cheap handle on the controller's object.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) ctrl: Arc<Inner>,
    pub(crate) entry: Arc<SandboxEntry>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.entry.id)
            .field("container_id", &self.entry.container_id)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    pub(crate) fn from_entry(ctrl: Arc<Inner>, entry: Arc<SandboxEntry>) -> Self {
        Self { ctrl, entry }
    }

    /// The sandbox's id (random, 64 hex characters).
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// The container's id.
    pub fn container_id(&self) -> &str {
        &self.entry.container_id
    }

    /// The sandbox key: the file its network namespace is bound to.
    pub fn key(&self) -> PathBuf {
        self.entry.osl.key().to_path_buf()
    }

    /// The OS sandbox (its namespace and netlink handle).
    pub fn os_sandbox(&self) -> &libnetwork_osl::Sandbox {
        &self.entry.osl
    }

    /// The labels given at creation.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.entry.options().labels
    }

    /// The hostname given at creation.
    pub fn hostname(&self) -> String {
        self.entry.options().hostname
    }

    /// The path of the sandbox's hosts file.
    pub fn hosts_path(&self) -> PathBuf {
        self.entry.files.hosts_path.clone()
    }

    /// The hosts file's content as the controller last wrote it (`None` for files the
    /// controller does not update: host-network copies and origin hosts files).
    pub fn hosts_content(&self) -> Option<String> {
        self.entry.files.hosts_content()
    }

    /// The path of the sandbox's resolv.conf.
    pub fn resolv_conf_path(&self) -> PathBuf {
        self.entry.files.resolv_path.clone()
    }

    /// Whether the sandbox is the host's namespace (host networking).
    pub fn is_host_network(&self) -> bool {
        self.entry.is_host_mode()
    }

    /// The joined endpoints, in libnetwork's order (the first with a gateway provides the
    /// default route).
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let joined = self.entry.joined();
        joined
            .into_iter()
            .filter_map(|j| {
                let net = self.ctrl.network_entry(&j.nid)?;
                let ep = net.endpoint_entries().into_iter().find(|e| e.id == j.eid)?;
                Some(Endpoint::from_entries(self.ctrl.clone(), net, ep))
            })
            .collect()
    }

    /// The endpoint that provides the default gateway, if any.
    pub fn gateway_endpoint(&self) -> Option<Endpoint> {
        let gw = self.entry.gateway_endpoint()?;
        self.endpoints().into_iter().find(|e| e.id() == gw.eid)
    }

    /// The address of the embedded DNS server, while it runs.
    pub fn resolver_addr(&self) -> Option<SocketAddr> {
        self.entry.resolver_addr()
    }

    /// The addresses `name` resolves to for this sandbox's embedded DNS (IPv4 then IPv6), as
    /// its server would answer (libnetwork's `ResolveName`).
    pub fn resolve_name(&self, name: &str) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for family in [AddressFamily::V4, AddressFamily::V6] {
            if let Lookup::Found(ips) = self.entry.dns.resolve_name(name, family) {
                out.extend(ips);
            }
        }
        out
    }

    /// The name an address resolves to (`<name>.<network>`), libnetwork's `ResolveIP`.
    pub fn resolve_ip(&self, ip: IpAddr) -> Option<String> {
        self.entry.dns.resolve_ip(ip)
    }

    /// Deletes the sandbox (libnetwork's `Delete`): every endpoint leaves it and is deleted,
    /// the DNS server stops, the checkpoint is removed, then the namespace and the files.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when a deletion is under way, [`Error::NoSuchSandbox`] when it is
    /// gone, [`Error::Teardown`] listing every step that failed (the sandbox is gone from the
    /// controller; a restart removes what is left).
    pub async fn delete(&self) -> Result<()> {
        delete(&self.ctrl, &self.entry).await
    }
}

/// The key of the shared host-network sandbox.
pub(crate) fn default_key(inner: &Inner) -> PathBuf {
    inner
        .config
        .exec_root
        .join("netns")
        .join(DEFAULT_SANDBOX_KEY)
}

/// The shared OS sandbox of host-network containers: the host's namespace bound to
/// `<exec root>/netns/default`, made once.
pub(crate) async fn default_os_sandbox(inner: &Inner) -> Result<Arc<libnetwork_osl::Sandbox>> {
    let mut slot = inner.default_sandbox.lock().await;
    if let Some(sb) = slot.as_ref() {
        return Ok(sb.clone());
    }
    let key = default_key(inner);
    let op = "open the host network sandbox";
    if !netns::is_bound(&key) {
        // The host's namespace through the controller's open descriptor (valid from any
        // thread of the process).
        let fd = inner.host.netns().as_fd().as_raw_fd();
        let source = PathBuf::from(format!("/proc/self/fd/{fd}"));
        netns::bind_existing(&source, &key).map_err(Error::os(op))?;
    }
    let sb = Arc::new(inner.host.open_sandbox(&key).await.map_err(Error::os(op))?);
    *slot = Some(sb.clone());
    Ok(sb)
}

/// Creates a sandbox; see [`crate::Controller::new_sandbox`].
pub(crate) async fn create(
    inner: &Arc<Inner>,
    container_id: &str,
    options: SandboxOptions,
) -> Result<Sandbox> {
    if container_id.trim().is_empty() {
        return Err(Error::InvalidContainerId(container_id.to_owned()));
    }
    let id = random_id();
    let span = info_span!("create_sandbox", sandbox_id = %id, container_id);
    async {
        {
            let mut state = lock(&inner.state);
            if let Some(existing) = state
                .sandboxes
                .values()
                .find(|s| s.container_id == container_id)
            {
                return Err(Error::forbidden(
                    "create sandbox",
                    format!(
                        "container {container_id} is already present in sandbox {}",
                        existing.id
                    ),
                ));
            }
            if !state.creating_containers.insert(container_id.to_owned()) {
                return Err(Error::forbidden(
                    "create sandbox",
                    format!("the sandbox of container {container_id} is being created"),
                ));
            }
        }
        let result = create_inner(inner, &id, container_id, options).await;
        let mut state = lock(&inner.state);
        state.creating_containers.remove(container_id);
        let entry = result?;
        state.sandboxes.insert(id.clone(), entry.clone());
        drop(state);
        info!(sandbox_id = %id, "sandbox created");
        Ok(Sandbox::from_entry(inner.clone(), entry))
    }
    .instrument(span)
    .await
}

async fn create_inner(
    inner: &Arc<Inner>,
    id: &str,
    container_id: &str,
    options: SandboxOptions,
) -> Result<Arc<SandboxEntry>> {
    let op = format!("create sandbox for container {container_id}");
    let mut opts = SandboxOptionsRecord {
        hostname: options.hostname,
        domainname: options.domainname,
        hosts_path: options.hosts_path.unwrap_or_default(),
        origin_hosts_path: options.origin_hosts_path,
        resolv_conf_path: options.resolv_conf_path.unwrap_or_default(),
        origin_resolv_conf_path: options.origin_resolv_conf_path,
        extra_hosts: options.extra_hosts,
        dns: options.dns,
        dns_search: options.dns_search,
        dns_options: options.dns_options,
        use_default_sandbox: options.use_default_sandbox,
        exposed_ports: options.exposed_ports,
        port_bindings: options.port_bindings,
        labels: options.labels,
    };
    for (name, _) in &opts.extra_hosts {
        Record::new(IpAddr::from([127, 0, 0, 1]), [name.clone()]).map_err(Error::hosts(&op))?;
    }

    // The namespace and the files, concurrently (kernel work and file work).
    let make_ns = async {
        let made: Result<(Arc<libnetwork_osl::Sandbox>, bool)> = if opts.use_default_sandbox {
            Ok((default_os_sandbox(inner).await?, false))
        } else {
            let key = inner.host.key_for(id);
            let sb = inner
                .host
                .create_sandbox(&key)
                .await
                .map_err(Error::os(format!("{op}: create namespace")))?;
            Ok((Arc::new(sb), true))
        };
        made
    };
    let make_files = {
        let config = inner.config.clone();
        let upstreams = inner.dns_upstreams.clone();
        let sbid = id.to_owned();
        let mut o = opts.clone();
        async {
            blocking(&op, move || {
                ResolutionFiles::create(&config, &upstreams, &sbid, &mut o)
                    .map(|(f, ext)| (f, ext, o))
            })
            .await
            .and_then(|r| r)
        }
    };
    let (ns, files) = tokio::join!(make_ns, make_files);
    let undo_ns = |osl: &Arc<libnetwork_osl::Sandbox>, created: bool| -> Vec<Error> {
        if created {
            netns::unbind(osl.key())
                .err()
                .map(Error::os("undo: remove namespace"))
                .into_iter()
                .collect()
        } else {
            Vec::new()
        }
    };
    let (osl, created, files, ext) = match (ns, files) {
        (Ok((osl, created)), Ok((files, ext, o))) => {
            opts = o;
            (osl, created, files, ext)
        }
        (Ok((osl, created)), Err(e)) => return Err(e.with_undo(undo_ns(&osl, created))),
        (Err(e), Ok((files, _, _))) => {
            return Err(e.with_undo(files.remove().err().into_iter().collect()));
        }
        (Err(e), Err(_)) => return Err(e),
    };
    inner.step("sandbox:namespace-created");

    let record = SandboxRecord {
        id: id.to_owned(),
        cid: container_id.to_owned(),
        eps: Vec::new(),
        ep_priority: BTreeMap::new(),
        ext_dns: ext.iter().map(ToString::to_string).collect(),
        ext_dns2: ext_dns_entries(&ext),
        key: osl.key().to_path_buf(),
        options: opts,
        index: 0,
        exists: false,
    };
    if let Err(e) = inner
        .apply(&format!("{op}: store"), Batch::new().put(&record))
        .await
    {
        let mut undo = undo_ns(&osl, created);
        undo.extend(files.remove().err());
        return Err(e.with_undo(undo));
    }
    Ok(Arc::new(SandboxEntry::new(inner, record, osl, files)))
}

/// The upstream servers of a sandbox, from its checkpoint.
pub(crate) fn upstreams_of(entry: &SandboxEntry) -> Vec<IpAddr> {
    lock(&entry.record)
        .ext_dns2
        .iter()
        .filter_map(|e| e.ip.parse().ok())
        .collect()
}

/// Deletes a sandbox; see [`Sandbox::delete`].
pub(crate) async fn delete(inner: &Arc<Inner>, entry: &Arc<SandboxEntry>) -> Result<()> {
    let span =
        info_span!("delete_sandbox", sandbox_id = %entry.id, container_id = %entry.container_id);
    async {
        entry.wait_reconciled().await;
        {
            let _guard = entry.op.lock().await;
            if inner.sandbox_entry(&entry.id).is_none() {
                return Err(Error::NoSuchSandbox(entry.id.clone()));
            }
            if entry.deleting.swap(true, AtomicOrdering::SeqCst) {
                return Err(Error::forbidden(
                    format!("delete sandbox {}", entry.id),
                    "another sandbox delete in progress",
                ));
            }
        }
        let mut failures = Vec::new();

        // Every endpoint leaves and is deleted.
        for (net, ep) in inner.endpoints_of_sandbox(&entry.id) {
            if let Err(e) = crate::endpoint::leave(inner, &net, &ep, entry).await
                && !e.is_not_found()
            {
                failures.push(e);
            }
            if let Err(e) = crate::endpoint::delete(inner, &net, &ep, false).await
                && !e.is_not_found()
            {
                failures.push(e);
            }
        }
        failures.extend(entry.stop_resolver_and_wait().await.err());

        // The checkpoint goes first: a crash after it leaves a namespace and files that the
        // next start removes.
        let record = entry.record();
        if let Err(e) = inner
            .delete_keys(
                &format!("delete sandbox {}: remove from store", entry.id),
                Batch::new().delete(&record),
            )
            .await
        {
            failures.push(e);
        }
        inner.step("sandbox:checkpoint-deleted");
        lock(&inner.state).sandboxes.remove(&entry.id);
        failures.extend(release_os_and_files(entry).await);
        info!(sandbox_id = %entry.id, failures = failures.len(), "sandbox deleted");
        Error::teardown(format!("delete sandbox {}", entry.id), failures)
    }
    .instrument(span)
    .await
}

/// Removes a sandbox's namespace (not the shared host one) and its files' directory.
pub(crate) async fn release_os_and_files(entry: &Arc<SandboxEntry>) -> Vec<Error> {
    let mut failures = Vec::new();
    if !entry.is_host_mode() {
        failures.extend(netns::unbind(entry.osl.key()).err().map(Error::os(format!(
            "delete sandbox {}: remove namespace",
            entry.id
        ))));
    }
    let e2 = entry.clone();
    match blocking("remove sandbox files", move || e2.files.remove()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) => failures.push(e),
    }
    failures
}

/// Whether a path is a sandbox key under the run directory.
pub(crate) fn is_key_dir_entry(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n != DEFAULT_SANDBOX_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(eid: &str, net: &str, prio: i32, internal: bool, gw4: bool, gw6: bool) -> JoinedEndpoint {
        JoinedEndpoint {
            eid: eid.into(),
            nid: format!("id-{net}"),
            network_name: net.into(),
            priority: prio,
            internal,
            special: false,
            gw4: gw4.then(|| "10.0.0.1".parse().unwrap()),
            gw6: gw6.then(|| "fd00::1".parse().unwrap()),
        }
    }

    fn sorted(mut eps: Vec<JoinedEndpoint>) -> Vec<String> {
        eps.sort_by(endpoint_order);
        eps.into_iter().map(|e| e.eid).collect()
    }

    #[test]
    fn higher_join_priority_comes_first() {
        let order = sorted(vec![
            ep("a", "n1", 1, false, true, false),
            ep("b", "n2", 3, false, true, false),
            ep("c", "n3", 2, false, true, false),
        ]);
        assert_eq!(order, ["b", "c", "a"]);
    }

    #[test]
    fn same_priority_puts_ipv6_gateways_first_internal_last_then_names() {
        let order = sorted(vec![
            ep("internal", "a-net", 0, true, true, true),
            ep("v4", "b-net", 0, false, true, false),
            ep("v6", "z-net", 0, false, false, true),
            ep("both", "y-net", 0, false, true, true),
            ep("none2", "d-net", 0, false, false, false),
            ep("none1", "c-net", 0, false, false, false),
        ]);
        assert_eq!(order, ["both", "v6", "v4", "none1", "none2", "internal"]);
    }
}
