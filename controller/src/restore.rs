//! Restore at start-up and removal of what a crash left half made (libnetwork's
//! `sandboxCleanup`, `cleanupLocalEndpoints`, `networkCleanup` and special-network re-creation,
//! with live restore of every sandbox).
//!
//! The store is the truth about what exists; the write-ahead marks say what was under way:
//! 1. Networks, endpoints and sandboxes are loaded. Endpoints marked `creating` are undone
//!    (driver, addresses, record) and those marked `deleting` finished; networks marked
//!    `inCreate` or `inDelete` are removed (driver, IPAM, records). Host and null networks are
//!    created again in their drivers, which keep no state.
//! 2. Sandboxes are reopened at their keys (a namespace that is gone, after a reboot, is made
//!    again and its endpoints joined again). Joined endpoints are attached to them again and
//!    their names published in DNS; a join that did not finish (`joining`) is undone and a
//!    leave that did not finish (`leaving`) is finished.
//! 3. Sweeps remove what no record owns: namespace keys under `<exec root>/netns`, sandbox
//!    file directories, and addresses and pools of the default IPAM driver's local address
//!    space. Endpoint counts are rewritten.
//! 4. In the background, each reopened sandbox is compared with the kernel: interfaces no
//!    joined endpoint owns are deleted, the default routes are set to the gateway endpoint's,
//!    published ports are programmed for the gateway endpoint and revoked for the others; its
//!    hosts file is brought up to date and its embedded DNS server started again. Until a
//!    sandbox is done, operations on it and on its endpoints wait for it (a gate on the
//!    sandbox, see [`SandboxEntry::wait_reconciled`]), and its operation lock is held.
//!
//! All that needs no driver (reading the store, opening the namespaces, all from one thread,
//! and the files) is done by [`load`] while the drivers start. A hosts file of a reopened
//! sandbox is read at its first use, not at start.
//!
//! Failures here are logged and restore goes on: one broken object must not keep the others
//! from coming back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;
use libnetwork_datastore::{Store, key, list_objects, parse_key};
use libnetwork_osl::{Host, Origin, netns};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::controller::{Batch, Inner, blocking, lock};
use crate::endpoint::{self, EndpointEntry, JoinOptions};
use crate::error::{Error, Result};
use crate::files::ResolutionFiles;
use crate::network::{self, NetworkEntry};
use crate::records::{
    ENDPOINT_PREFIX, EndpointRecord, EndpointState, JoinState, NETWORK_PREFIX, NetworkRecord,
    SANDBOX_PREFIX, SandboxOptionsRecord, SandboxRecord,
};
use crate::sandbox::{self, ReconcileGuard, SandboxEntry};

fn log_failure(what: &str, result: Result<()>) {
    if let Err(e) = result {
        warn!(error = %e, "restore: {what}");
    }
}

/// The controller's stores, with their scope names.
pub(crate) struct Stores {
    pub(crate) local: Arc<dyn Store>,
    pub(crate) global: Option<Arc<dyn Store>>,
}

impl Stores {
    fn all(&self) -> Vec<(&'static str, Arc<dyn Store>)> {
        let mut out: Vec<(&'static str, Arc<dyn Store>)> = vec![("local", self.local.clone())];
        if let Some(g) = &self.global {
            out.push(("global", g.clone()));
        }
        out
    }
}

/// What the stores hold, read before the restore (while the drivers start), with the
/// sandboxes' namespaces and files opened.
pub(crate) struct Stored {
    networks: Vec<NetworkRecord>,
    endpoints: Vec<EndpointRecord>,
    sandboxes: Vec<StoredSandbox>,
}

/// Reads every network, endpoint and sandbox of the stores, and opens the sandboxes'
/// namespaces and files: all that needs no driver.
///
/// # Errors
/// [`Error::Store`] when a store cannot be listed, [`Error::Internal`] when the files could
/// not be opened at all.
pub(crate) async fn load(stores: &Stores, host: &Host, config: &Config) -> Result<Stored> {
    let (networks, endpoints, sandboxes) =
        tokio::try_join!(load_networks(stores), load_endpoints(stores), async {
            open_sandboxes(host, config, load_sandboxes(stores).await?).await
        })?;
    Ok(Stored {
        networks,
        endpoints,
        sandboxes,
    })
}

async fn load_networks(stores: &Stores) -> Result<Vec<NetworkRecord>> {
    let mut out = Vec::new();
    for (_, store) in stores.all() {
        let list = blocking("load networks", move || {
            list_objects::<NetworkRecord, _>(store.as_ref(), &key(&[NETWORK_PREFIX]))
        })
        .await?
        .map_err(Error::store("restore: load networks"))?;
        for mut n in list {
            n.normalise();
            out.push(n);
        }
    }
    Ok(out)
}

async fn load_endpoints(stores: &Stores) -> Result<Vec<EndpointRecord>> {
    let mut out = Vec::new();
    for (scope, store) in stores.all() {
        let pairs = blocking("load endpoints", move || {
            store.list(&key(&[ENDPOINT_PREFIX]))
        })
        .await?
        .map_err(Error::store("restore: load endpoints"))?;
        for pair in pairs {
            let Ok(parts) = parse_key(&pair.key) else {
                continue;
            };
            let [_, nid, _] = parts.as_slice() else {
                continue;
            };
            match serde_json::from_slice::<EndpointRecord>(&pair.value) {
                Ok(mut ep) => {
                    ep.nid = nid.clone();
                    ep.scope = scope.to_owned();
                    ep.persist = true;
                    ep.exists = true;
                    ep.index = pair.index;
                    out.push(ep);
                }
                Err(e) => {
                    warn!(key = %pair.key, error = %e, "restore: endpoint record not readable")
                }
            }
        }
    }
    Ok(out)
}

async fn load_sandboxes(stores: &Stores) -> Result<Vec<SandboxRecord>> {
    let store = stores.local.clone();
    blocking("load sandboxes", move || {
        list_objects::<SandboxRecord, _>(store.as_ref(), &key(&[SANDBOX_PREFIX]))
    })
    .await?
    .map_err(Error::store("restore: load sandboxes"))
}

/// Restores the controller's objects read by [`load`] and cleans up after a crash. Returns
/// once every object is back; the reopened sandboxes are then compared with the kernel in the
/// background (see [`reconcile_in_background`]): until one is, operations on it and on its
/// endpoints wait.
pub(crate) async fn restore(inner: &Arc<Inner>, stored: Stored) {
    let started = Instant::now();
    let Stored {
        networks,
        endpoints,
        sandboxes,
    } = stored;
    info!(
        networks = networks.len(),
        endpoints = endpoints.len(),
        sandboxes = sandboxes.len(),
        "restoring from the store"
    );

    // Networks, with the scope of their store.
    for n in networks {
        let entry = Arc::new(NetworkEntry::new(n));
        lock(&inner.state).networks.insert(entry.id.clone(), entry);
    }
    // Endpoints go to their networks; endpoints of unknown networks are removed.
    for mut ep in endpoints {
        let net = lock(&inner.state).networks.get(&ep.nid).cloned();
        let Some(net) = net else {
            warn!(endpoint_id = %ep.id, network_id = %ep.nid, "restore: endpoint of an unknown network removed");
            ep.persist = true;
            log_failure(
                "remove endpoint of an unknown network",
                inner
                    .delete_keys("restore: remove endpoint", Batch::new().delete(&ep))
                    .await,
            );
            continue;
        };
        let r = net.record();
        ep.scope = r.scope.clone();
        ep.persist = r.persist;
        net.insert_endpoint(Arc::new(EndpointEntry::new(ep)));
    }

    // Endpoint creations and deletions that were under way.
    let all_networks: Vec<Arc<NetworkEntry>> =
        lock(&inner.state).networks.values().cloned().collect();
    for net in &all_networks {
        for ep in net.endpoint_entries() {
            match ep.record().state {
                Some(EndpointState::Creating) => {
                    info!(endpoint_id = %ep.id, "restore: undoing an endpoint creation");
                    ep.update(|r| r.state = Some(EndpointState::Deleting));
                    log_failure(
                        "undo endpoint creation",
                        endpoint::finish_delete(inner, net, &ep, true).await,
                    );
                }
                Some(EndpointState::Deleting) => {
                    info!(endpoint_id = %ep.id, "restore: finishing an endpoint deletion");
                    log_failure(
                        "finish endpoint deletion",
                        endpoint::finish_delete(inner, net, &ep, true).await,
                    );
                }
                None => {}
            }
        }
    }
    // Network creations and deletions that were under way.
    for net in &all_networks {
        let r = net.record();
        if r.in_create || r.in_delete {
            info!(network_id = %r.id, in_create = r.in_create, "restore: removing a network that was being created or deleted");
            for ep in net.endpoint_entries() {
                ep.update(|e| {
                    e.state = Some(EndpointState::Deleting);
                    e.sandbox.clear();
                    e.join_state = None;
                });
                log_failure(
                    "remove endpoint",
                    endpoint::finish_delete(inner, net, &ep, true).await,
                );
            }
            net.update(|n| n.in_delete = true);
            log_failure(
                "remove network",
                network::finish_delete(inner, net, true).await,
            );
        }
    }
    // The drivers of special networks keep no state: create them again.
    for net in inner.visible_networks() {
        let r = net.entry.record();
        if net.entry.has_special_driver()
            && let Some(d) = inner.registry.driver(&r.network_type)
        {
            log_failure(
                "re-create a special network",
                network::recreate_in_driver(&d.driver, &r).await,
            );
        }
        if !r.config_only {
            crate::dns::add_network(inner, &r);
        }
    }

    debug!(
        elapsed_ms = elapsed_ms(started),
        "restore: networks and endpoints back"
    );

    // Sandboxes.
    let (restored, fresh) = restore_sandboxes(inner, sandboxes).await;
    let mut pending = Vec::new();
    for entry in restored {
        if !fresh.contains(&entry.id) {
            // Held back from the moment it is visible until it agrees with the kernel.
            pending.push((entry.clone(), entry.hold_until_reconciled()));
        }
        lock(&inner.state).sandboxes.insert(entry.id.clone(), entry);
    }
    restore_attachments(inner, &fresh).await;
    for (sb, _) in &pending {
        publish_dns(inner, sb);
    }
    rejoin_fresh(inner, &fresh).await;
    debug!(
        elapsed_ms = elapsed_ms(started),
        reopened = pending.len(),
        made_again = fresh.len(),
        "restore: sandboxes back"
    );

    // Sweeps.
    sweep_namespaces(inner).await;
    sweep_files(inner).await;
    sweep_ipam(inner).await;
    let mut counts = Batch::new();
    let mut global_counts = Batch::new();
    for net in inner.visible_networks() {
        let count = net.entry.endpoint_count();
        if crate::records::store_scope(&count.scope) == libnetwork_datastore::Scope::Global {
            global_counts = global_counts.put(&count);
        } else {
            counts = counts.put(&count);
        }
    }
    log_failure(
        "store endpoint counts",
        inner.apply("restore: store endpoint counts", counts).await,
    );
    log_failure(
        "store endpoint counts",
        inner
            .apply("restore: store endpoint counts", global_counts)
            .await,
    );
    reconcile_in_background(inner, pending);
    debug!(elapsed_ms = elapsed_ms(started), "restore: done");
}

fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// A stored sandbox with what [`load`] could open of it already.
struct StoredSandbox {
    record: SandboxRecord,
    /// Its namespace, when it is still bound to its key (not for host-network sandboxes).
    namespace: Option<Result<libnetwork_osl::Sandbox>>,
    files: Result<ResolutionFiles>,
}

/// The key of a stored sandbox.
fn key_of(host: &Host, record: &SandboxRecord) -> PathBuf {
    if record.key.as_os_str().is_empty() {
        host.key_for(&record.id)
    } else {
        record.key.clone()
    }
}

/// Opens what can be opened of the stored sandboxes without the drivers: the namespaces still
/// bound to their keys (all by one thread) and, at the same time, the files (in one blocking
/// task). Changes nothing, but for files that are gone, which are written again.
async fn open_sandboxes(
    host: &Host,
    config: &Config,
    records: Vec<SandboxRecord>,
) -> Result<Vec<StoredSandbox>> {
    let files = {
        let config = config.clone();
        let wanted: Vec<(String, SandboxOptionsRecord)> = records
            .iter()
            .map(|r| (r.id.clone(), r.options.clone()))
            .collect();
        blocking("restore: open sandbox files", move || {
            wanted
                .iter()
                .map(|(id, opts)| ResolutionFiles::open(&config, id, opts))
                .collect::<Vec<_>>()
        })
    };
    let bound: Vec<PathBuf> = records
        .iter()
        .filter(|r| !r.options.use_default_sandbox)
        .map(|r| key_of(host, r))
        .filter(|key| netns::is_bound(key))
        .collect();
    let (namespaces, files) = tokio::join!(host.open_sandboxes(&bound), files);
    let mut namespaces: HashMap<PathBuf, libnetwork_osl::Result<libnetwork_osl::Sandbox>> =
        bound.into_iter().zip(namespaces).collect();
    Ok(records
        .into_iter()
        .zip(files?)
        .map(|(record, files)| {
            let op = format!("restore sandbox {}", record.id);
            let namespace = if record.options.use_default_sandbox {
                None
            } else {
                namespaces
                    .remove(&key_of(host, &record))
                    .map(|opened| opened.map_err(Error::os(&op)))
            };
            StoredSandbox {
                record,
                namespace,
                files,
            }
        })
        .collect())
}

/// Makes the entries of the stored sandboxes, with the shared host sandbox for host-network
/// ones and a new namespace where one is gone (after a reboot). Returns the entries and the
/// ids of those whose namespace is new; a sandbox that cannot be restored is logged and left
/// out.
async fn restore_sandboxes(
    inner: &Arc<Inner>,
    stored: Vec<StoredSandbox>,
) -> (Vec<Arc<SandboxEntry>>, HashSet<String>) {
    let mut entries = Vec::with_capacity(stored.len());
    let mut fresh = HashSet::new();
    for sandbox in stored {
        let StoredSandbox {
            mut record,
            namespace,
            files,
        } = sandbox;
        let op = format!("restore sandbox {}", record.id);
        let opened = match namespace {
            Some(opened) => opened.map(|sb| (Arc::new(sb), false)),
            None if record.options.use_default_sandbox => sandbox::default_os_sandbox(inner)
                .await
                .map(|sb| (sb, false)),
            None => {
                let key = key_of(&inner.host, &record);
                info!(sandbox_id = %record.id, key = %key.display(), "restore: namespace gone, making a new one");
                inner
                    .host
                    .create_sandbox(&key)
                    .await
                    .map(|sb| (Arc::new(sb), true))
                    .map_err(Error::os(&op))
            }
        };
        let (osl, is_fresh, files) = match opened.and_then(|(osl, new)| Ok((osl, new, files?))) {
            Ok(opened) => opened,
            Err(e) => {
                warn!(sandbox_id = %record.id, error = %e, "restore: sandbox not restored");
                continue;
            }
        };
        record.key = osl.key().to_path_buf();
        if is_fresh {
            fresh.insert(record.id.clone());
        }
        entries.push(Arc::new(SandboxEntry::new(inner, record, osl, files)));
    }
    (entries, fresh)
}

/// Attaches joined endpoints to their restored sandboxes; undoes unfinished joins and
/// finishes unfinished leaves.
async fn restore_attachments(inner: &Arc<Inner>, fresh: &HashSet<String>) {
    let mut joining = Vec::new();
    let mut leaving = Vec::new();
    let mut orphans = Vec::new();
    let mut unjoined = Vec::new();
    let networks: Vec<Arc<NetworkEntry>> = lock(&inner.state).networks.values().cloned().collect();
    for net in &networks {
        let facts = NetworkFacts::of(net);
        for ep in net.endpoint_entries() {
            let r = ep.record();
            if r.sandbox.is_empty() {
                unjoined.push((net.clone(), ep));
                continue;
            }
            let sb = lock(&inner.state).sandboxes.get(&r.sandbox).cloned();
            match (sb, r.join_state) {
                (None, _) => orphans.push((net.clone(), ep)),
                (Some(sb), Some(JoinState::Joining)) => joining.push((net.clone(), ep, sb)),
                (Some(sb), Some(JoinState::Leaving)) => leaving.push((net.clone(), ep, sb)),
                (Some(sb), None) => {
                    sb.insert_joined(endpoint_joined(&facts, &r, sb.priority_of(&r.id)));
                    if !fresh.contains(&sb.id) && !r.iface.dst_name.is_empty() {
                        let origin = if r.iface.created_in_sandbox {
                            Origin::Created
                        } else {
                            Origin::Moved(r.iface.src_name.clone())
                        };
                        sb.osl.restore_interface(&r.iface.dst_name, origin).await;
                    }
                }
            }
        }
    }
    // Joins are stored only once complete: an endpoint the store has unjoined may have been
    // half joined when the process stopped. Its driver is told to leave (drivers answer
    // "not joined" otherwise); the sandbox's interfaces and routes are checked later.
    for (net, ep) in unjoined {
        undo_driver_attachment(inner, &net, &ep).await;
    }
    // Leaves that were under way are finished.
    for (net, ep, sb) in leaving {
        info!(endpoint_id = %ep.id, sandbox_id = %sb.id, "restore: finishing a leave");
        let r = ep.record();
        sb.insert_joined(endpoint_joined(
            &NetworkFacts::of(&net),
            &r,
            sb.priority_of(&r.id),
        ));
        let op = format!("restore: finish leave of endpoint {}", r.name);
        for e in endpoint::leave_steps(inner, &net, &ep, &sb, &op, true).await {
            warn!(error = %e, "{op}");
        }
        log_failure(&op, endpoint::finish_leave(inner, &ep, &sb, &op).await);
    }
    // Joins that were under way are undone: the stored record is the write-ahead one, so
    // nothing of the join is known but the driver (which finds its own state) and the
    // sandbox (compared with the kernel afterwards).
    for (net, ep, sb) in joining {
        info!(endpoint_id = %ep.id, sandbox_id = %sb.id, "restore: undoing a join");
        ep.update(|r| r.join_state = Some(JoinState::Leaving));
        undo_driver_attachment(inner, &net, &ep).await;
        let op = format!("restore: undo join of endpoint {}", ep.name());
        log_failure(&op, endpoint::finish_leave(inner, &ep, &sb, &op).await);
    }
    // Endpoints of sandboxes that are gone are detached.
    for (net, ep) in orphans {
        info!(endpoint_id = %ep.id, "restore: detaching an endpoint of a sandbox that is gone");
        ep.update(|r| r.join_state = Some(JoinState::Leaving));
        undo_driver_attachment(inner, &net, &ep).await;
        let done = ep.update(|r| {
            r.sandbox.clear();
            r.join_state = None;
            r.join_info = None;
            r.iface.dst_name.clear();
            r.iface.created_in_sandbox = false;
        });
        log_failure(
            "detach endpoint",
            inner
                .apply("restore: detach endpoint", Batch::new().put(&done))
                .await,
        );
    }
}

/// Revokes published ports (if the driver has any for the endpoint) and leaves in the
/// driver, ignoring "not joined" answers.
async fn undo_driver_attachment(inner: &Inner, net: &NetworkEntry, ep: &EndpointEntry) {
    let Some(driver) = inner.registry.driver(&net.network_type()) else {
        return;
    };
    let published = driver
        .driver
        .endpoint_oper_info(&net.id, &ep.id)
        .await
        .ok()
        .and_then(|info| info.get(crate::netlabel::PORT_MAP).cloned())
        .and_then(|v| v.as_array().map(|a| !a.is_empty()))
        .unwrap_or(false);
    if published {
        info!(endpoint_id = %ep.id, "restore: withdrawing ports of an endpoint that is not joined");
        if let Err(e) = driver
            .driver
            .revoke_external_connectivity(&net.id, &ep.id)
            .await
        {
            warn!(endpoint_id = %ep.id, error = %e, "restore: ports not withdrawn");
        }
    }
    if let Err(e) = driver.driver.leave(&net.id, &ep.id).await {
        debug!(endpoint_id = %ep.id, error = %e, "restore: leave in driver");
    }
}

/// What orders a network's endpoints in a sandbox, read once per network.
struct NetworkFacts {
    id: String,
    name: String,
    internal: bool,
    special: bool,
}

impl NetworkFacts {
    fn of(net: &NetworkEntry) -> Self {
        let nrec = net.record();
        Self {
            id: nrec.id,
            name: nrec.name,
            internal: nrec.internal,
            special: net.has_special_driver(),
        }
    }
}

fn endpoint_joined(
    net: &NetworkFacts,
    r: &EndpointRecord,
    priority: i32,
) -> sandbox::JoinedEndpoint {
    let (gw4, gw6) = r
        .join_info
        .as_ref()
        .map_or((None, None), |join| (join.gw, join.gw6));
    sandbox::JoinedEndpoint {
        eid: r.id.clone(),
        nid: net.id.clone(),
        network_name: net.name.clone(),
        priority,
        internal: net.internal,
        special: net.special,
        gw4,
        gw6,
    }
}

/// The records of the endpoints joined to a sandbox, by endpoint id, with their networks.
fn joined_records(
    inner: &Inner,
    sb: &SandboxEntry,
) -> BTreeMap<String, (Arc<NetworkEntry>, EndpointRecord)> {
    let mut records = BTreeMap::new();
    for j in sb.joined() {
        if let Some(net) = inner.network_entry(&j.nid)
            && let Some(ep) = net.endpoint_entry(&j.eid)
        {
            let r = ep.record();
            records.insert(j.eid, (net, r));
        }
    }
    records
}

/// Publishes the names of a reopened sandbox's endpoints and attaches its DNS to their
/// networks (memory only): peers resolve them from the moment the restore returns.
fn publish_dns(inner: &Inner, sb: &SandboxEntry) {
    for (net, r) in joined_records(inner, sb).values() {
        if !net.has_special_driver() {
            crate::dns::add_endpoint(inner, r);
        }
    }
    sb.sync_dns_networks();
}

/// Compares the reopened sandboxes with the kernel in a background task, all at once: each
/// sandbox's operations (and those of its endpoints) wait for its guard, dropped when it is
/// done. [`crate::Controller::restored`] waits for all of them.
fn reconcile_in_background(inner: &Arc<Inner>, pending: Vec<(Arc<SandboxEntry>, ReconcileGuard)>) {
    if pending.is_empty() {
        return;
    }
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let started = Instant::now();
        let count = pending.len();
        let mut reconciling = tokio::task::JoinSet::new();
        for (sb, guard) in pending {
            let inner = Arc::clone(&inner);
            reconciling.spawn(async move {
                reconcile_sandbox(&inner, &sb).await;
                drop(guard);
            });
        }
        while let Some(done) = reconciling.join_next().await {
            if let Err(e) = done {
                warn!(error = %e, "restore: a sandbox was not compared with the kernel");
            }
        }
        info!(
            sandboxes = count,
            elapsed_ms = elapsed_ms(started),
            "restored sandboxes agree with the kernel"
        );
    });
}

/// Compares a reopened sandbox with the kernel (leftover interfaces, default routes,
/// published ports) and sets up its hosts file and embedded DNS server again. Holds the
/// sandbox's operation lock meanwhile.
async fn reconcile_sandbox(inner: &Arc<Inner>, sb: &Arc<SandboxEntry>) {
    let _op = sb.op.lock().await;
    inner.step("restore:reconciling");
    let records = joined_records(inner, sb);
    let owned: HashSet<String> = records
        .values()
        .map(|(_, r)| r.iface.dst_name.clone())
        .filter(|name| !name.is_empty())
        .collect();

    // Interfaces no endpoint owns (a join that did not finish, a veth whose deletion was cut
    // short) are deleted; the host's own namespace is never touched.
    if !sb.is_host_mode() {
        match sb.osl.interfaces().await {
            Ok(ifaces) => {
                for i in ifaces {
                    if owned.contains(&i.link.name) {
                        continue;
                    }
                    if i.link.kind.as_deref() == Some("veth") {
                        info!(sandbox_id = %sb.id, interface = %i.link.name, "restore: removing a leftover interface");
                        if let Err(e) = sb.osl.netlink().delete_link(&i.link).await
                            && !e.is_not_found()
                        {
                            warn!(sandbox_id = %sb.id, interface = %i.link.name, error = %e, "restore: leftover interface not removed");
                        }
                    } else {
                        warn!(sandbox_id = %sb.id, interface = %i.link.name, "restore: interface of unknown origin left in the sandbox");
                    }
                }
            }
            Err(e) => warn!(sandbox_id = %sb.id, error = %e, "restore: interfaces not listed"),
        }

        // Default routes: the gateway endpoint's.
        let gw = sb.gateway_endpoint();
        for (v6, want) in [
            (false, gw.as_ref().and_then(|g| g.gw4)),
            (true, gw.as_ref().and_then(|g| g.gw6)),
        ] {
            match sb.osl.gateway(v6).await {
                Ok(have) if have == want => {}
                Ok(have) => {
                    if let Some(h) = have
                        && let Err(e) = sb.osl.unset_gateway(h).await
                    {
                        warn!(sandbox_id = %sb.id, error = %e, "restore: stale default route not removed");
                    }
                    if let Some(w) = want
                        && let Err(e) = sb.osl.set_gateway(w).await
                    {
                        warn!(sandbox_id = %sb.id, error = %e, "restore: default route not set");
                    }
                }
                Err(e) => warn!(sandbox_id = %sb.id, error = %e, "restore: routes not read"),
            }
        }
    }

    // Published ports: the gateway endpoint's only.
    let gw_eid = sb.gateway_endpoint().map(|g| g.eid);
    for (eid, (net, r)) in &records {
        let nrec = net.record();
        if net.has_special_driver() || nrec.internal {
            continue;
        }
        let Some(driver) = inner.registry.driver(&nrec.network_type) else {
            continue;
        };
        let published = match driver.driver.endpoint_oper_info(&nrec.id, eid).await {
            Ok(info) => info
                .get(crate::netlabel::PORT_MAP)
                .and_then(|v| v.as_array())
                .is_some_and(|a| !a.is_empty()),
            Err(e) => {
                warn!(endpoint_id = %eid, error = %e, "restore: driver does not know the endpoint");
                continue;
            }
        };
        let is_gw = gw_eid.as_deref() == Some(eid.as_str());
        if is_gw && !published {
            let options = sb.options();
            let wants = !r.port_bindings().is_empty() || !options.port_bindings.is_empty();
            if wants {
                let ep = net.endpoint_entries().into_iter().find(|e| &e.id == eid);
                if let Some(ep) = ep {
                    let opts = endpoint::connectivity_options(&ep.record(), sb);
                    if let Err(e) = driver
                        .driver
                        .program_external_connectivity(&nrec.id, eid, &opts)
                        .await
                    {
                        warn!(endpoint_id = %eid, error = %e, "restore: published ports not programmed");
                    }
                }
            }
        } else if !is_gw
            && published
            && let Err(e) = driver
                .driver
                .revoke_external_connectivity(&nrec.id, eid)
                .await
        {
            warn!(endpoint_id = %eid, error = %e, "restore: published ports not revoked");
        }
    }

    // Hosts file and the embedded DNS server (the records are published already).
    let needs_resolver = records
        .values()
        .any(|(net, r)| !net.has_special_driver() && !r.disable_resolution);
    if let Err(e) = sb.sync_hosts(|| endpoint::desired_hosts(inner, sb)) {
        warn!(sandbox_id = %sb.id, error = %e, "restore: hosts file not updated");
    }
    if (needs_resolver || sb.files.resolver_on()) && inner.config.embedded_dns && !sb.is_host_mode()
    {
        sb.start_resolver(&sandbox::upstreams_of(sb)).await;
    }
}

/// Joins again the endpoints of sandboxes whose namespace had to be made anew.
async fn rejoin_fresh(inner: &Arc<Inner>, fresh: &HashSet<String>) {
    for sbid in fresh {
        let Some(sb) = inner.sandbox_entry(sbid) else {
            continue;
        };
        let joined = sb.joined();
        for j in joined {
            let Some(net) = inner.network_entry(&j.nid) else {
                continue;
            };
            let Some(ep) = net.endpoint_entries().into_iter().find(|e| e.id == j.eid) else {
                continue;
            };
            info!(endpoint_id = %ep.id, sandbox_id = %sb.id, "restore: joining again in a new namespace");
            ep.update(|r| r.join_state = Some(JoinState::Leaving));
            undo_driver_attachment(inner, &net, &ep).await;
            sb.remove_joined(&ep.id);
            let op = format!("restore: rejoin endpoint {}", ep.name());
            log_failure(&op, endpoint::finish_leave(inner, &ep, &sb, &op).await);
            log_failure(
                &op,
                endpoint::join(
                    inner,
                    &net,
                    &ep,
                    &sb,
                    JoinOptions {
                        priority: j.priority,
                        ..JoinOptions::default()
                    },
                )
                .await,
            );
        }
    }
}

/// Removes namespace keys under `<exec root>/netns` that no sandbox owns.
async fn sweep_namespaces(inner: &Arc<Inner>) {
    let dir = inner.config.exec_root.join("netns");
    let mut keep: HashSet<PathBuf> = lock(&inner.state)
        .sandboxes
        .values()
        .map(|s| s.osl.key().to_path_buf())
        .collect();
    let host_mode = lock(&inner.state)
        .sandboxes
        .values()
        .any(|s| s.is_host_mode());
    if host_mode {
        keep.insert(sandbox::default_key(inner));
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if keep.contains(&path) {
            continue;
        }
        if !sandbox::is_key_dir_entry(&path) && inner.default_sandbox.lock().await.is_some() {
            continue;
        }
        info!(key = %path.display(), "restore: removing a namespace no sandbox owns");
        if let Err(e) = netns::unbind(&path) {
            warn!(key = %path.display(), error = %e, "restore: namespace not removed");
        }
    }
}

/// Removes sandbox file directories (named by 64-hex sandbox ids) no sandbox owns.
async fn sweep_files(inner: &Arc<Inner>) {
    let dir = inner.config.files_dir();
    let keep: HashSet<String> = lock(&inner.state).sandboxes.keys().cloned().collect();
    let result = blocking("sweep sandbox files", move || {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_sandbox_dir = name.len() == 64
                && name.bytes().all(|c| c.is_ascii_hexdigit())
                && entry.file_type().is_ok_and(|t| t.is_dir());
            if is_sandbox_dir && !keep.contains(&name) {
                info!(dir = %entry.path().display(), "restore: removing files no sandbox owns");
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    warn!(dir = %entry.path().display(), error = %e, "restore: files not removed");
                }
            }
        }
    })
    .await;
    log_failure("sweep sandbox files", result);
}

/// Releases the pools and addresses of the default IPAM driver's local address space that no
/// network or endpoint owns (allocated just before a crash, before the record that would own
/// them was stored).
async fn sweep_ipam(inner: &Arc<Inner>) {
    let mut pools: HashSet<String> = HashSet::new();
    let mut addresses: HashMap<IpNet, HashSet<IpAddr>> = HashMap::new();
    let networks: Vec<Arc<NetworkEntry>> = lock(&inner.state).networks.values().cloned().collect();
    for net in networks {
        let r = net.record();
        if r.ipam_type != libnetwork_ipamapi::DEFAULT_IPAM {
            continue;
        }
        for info in r.ipam_v4_info.iter().chain(&r.ipam_v6_info) {
            pools.insert(info.pool_id.clone());
            let owned = addresses.entry(info.data.pool.trunc()).or_default();
            owned.extend(info.data.gateway.map(|g| g.addr()));
            owned.extend(info.data.aux_addresses.values().map(IpNet::addr));
        }
        for ep in net.endpoint_entries() {
            let e = ep.record();
            for a in e.iface.addr.iter().chain(e.iface.addrv6.iter()) {
                addresses.entry(a.trunc()).or_default().insert(a.addr());
            }
        }
    }
    let ipam = inner.default_ipam.clone();
    let result = blocking("sweep ipam", move || {
        use libnetwork_ipamapi::Ipam as _;
        let snapshot = ipam.snapshot();
        let ids = snapshot.pool_ids(libnetwork_ipam::LOCAL_ADDRESS_SPACE);
        // Sub-pools first, so that their pools can go after them.
        let mut stale: Vec<(String, bool)> = ids
            .iter()
            .filter(|id| !pools.contains(*id))
            .filter_map(|id| snapshot.pool(id).map(|p| (id.clone(), p.range.is_some())))
            .collect();
        stale.sort_by_key(|(_, sub)| !*sub);
        for (id, _) in &stale {
            match ipam.release_pool(id) {
                Ok(()) => info!(pool_id = %id, "restore: released a pool no network owns"),
                Err(libnetwork_ipamapi::Error::PoolNotFound(_)) => {}
                Err(e) => warn!(pool_id = %id, error = %e, "restore: stale pool not released"),
            }
        }
        // Addresses of the pools that stay.
        let snapshot = ipam.snapshot();
        for id in snapshot.pool_ids(libnetwork_ipam::LOCAL_ADDRESS_SPACE) {
            let Some(info) = snapshot.pool(&id) else {
                continue;
            };
            if info.range.is_some() {
                continue;
            }
            let Some(seq) = snapshot.allocation(&id) else {
                continue;
            };
            let owned = addresses.get(&info.pool.trunc());
            for ordinal in seq.iter_set() {
                let Some(ip) = nth_address(info.pool, ordinal) else {
                    continue;
                };
                if ordinal == 0 || is_broadcast(info.pool, ip) {
                    continue;
                }
                if owned.is_some_and(|o| o.contains(&ip)) {
                    continue;
                }
                match ipam.release_address(&id, ip) {
                    Ok(()) => {
                        info!(pool_id = %id, %ip, "restore: released an address no endpoint owns")
                    }
                    Err(e) => {
                        warn!(pool_id = %id, %ip, error = %e, "restore: stale address not released")
                    }
                }
            }
        }
    })
    .await;
    log_failure("sweep ipam", result);
}

/// The address at `ordinal` from the network address of `pool`.
fn nth_address(pool: IpNet, ordinal: u64) -> Option<IpAddr> {
    match pool {
        IpNet::V4(p) => {
            let base = u32::from(p.network());
            let n = u32::try_from(ordinal).ok()?;
            Some(IpAddr::V4(base.checked_add(n)?.into()))
        }
        IpNet::V6(p) => {
            let base = u128::from(p.network());
            Some(IpAddr::V6(base.checked_add(u128::from(ordinal))?.into()))
        }
    }
}

/// Whether `ip` is the IPv4 broadcast address of `pool` (reserved by IPAM).
fn is_broadcast(pool: IpNet, ip: IpAddr) -> bool {
    match pool {
        IpNet::V4(p) => p.prefix_len() < 31 && IpAddr::V4(p.broadcast()) == ip,
        IpNet::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_map_to_addresses_from_the_network_address() {
        let pool: IpNet = "172.18.0.0/16".parse().unwrap();
        assert_eq!(nth_address(pool, 2), Some("172.18.0.2".parse().unwrap()));
        assert!(is_broadcast(pool, "172.18.255.255".parse().unwrap()));
        let v6: IpNet = "fd00::/64".parse().unwrap();
        assert_eq!(nth_address(v6, 17), Some("fd00::11".parse().unwrap()));
        assert!(!is_broadcast(v6, "fd00::ffff".parse().unwrap()));
    }
}
