//! [`Controller`]: start-up, the driver and IPAM registries, stores, lookups, walkers and
//! shutdown (libnetwork's `controller.go` and `store.go`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use libnetwork_datastore::{
    EtcdStore, KvObject, MemoryStore, Op, Precondition, RedbOptions, RedbStore, Scope, Store,
    object_key,
};
use libnetwork_driver_bridge::{BridgeDriver, BridgeDriverOptions};
use libnetwork_driver_ipvlan::IpvlanDriver;
use libnetwork_driver_macvlan::MacvlanDriver;
use libnetwork_driverapi::{RegisteredDriver, RegisteredIpam, Registry};
use libnetwork_firewall::{BackendChoice, Firewall, FirewallConfig};
use libnetwork_ipam::{DefaultIpam, IpamConfig};
use libnetwork_osl::Host;
use libnetwork_plugins::Plugins;
use tracing::{debug, info, warn};

use crate::config::{Config, GlobalStore, LocalStore};
use crate::endpoint::EndpointEntry;
use crate::error::{Error, Result};
use crate::network::{Network, NetworkEntry, NetworkOptions};
use crate::null_ipam::NullIpam;
use crate::records::store_scope;
use crate::sandbox::{Sandbox, SandboxEntry, SandboxOptions};

/// Locks a std mutex, ignoring poisoning: every critical section of the controller is a
/// lookup, an insert or a field update, so the data stays consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A random 64-hex-character id (libnetwork's `stringid.GenerateRandomID`).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    let mut id = String::with_capacity(64);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    // An id that reads as a number could be taken for a short index by users; libnetwork
    // avoids all-digit prefixes the same way.
    if id[..12].bytes().all(|c| c.is_ascii_digit()) {
        return random_id();
    }
    id
}

/// Runs blocking work (stores, IPAM) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    op: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("{op}: blocking task failed: {e}")))
}

/// The network controller: creates, persists and restores networks, endpoints and
/// sandboxes, and drives the network drivers, IPAM and the kernel for them (libnetwork's
/// `NetworkController`).
///
/// Cheap to clone: clones share the controller. The store is closed when the controller and
/// every [`Network`], [`crate::Endpoint`] and [`Sandbox`] handle are dropped.
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

/// What the controller's handles share.
pub(crate) struct Inner {
    pub(crate) id: String,
    pub(crate) config: Config,
    pub(crate) host: Host,
    pub(crate) local_store: Arc<dyn Store>,
    pub(crate) global_store: Option<Arc<dyn Store>>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) bridge: BridgeDriver,
    pub(crate) macvlan: MacvlanDriver,
    pub(crate) ipvlan: IpvlanDriver,
    /// Network and IPAM plugins, activated when a network first names them.
    pub(crate) plugins: Arc<Plugins>,
    pub(crate) default_ipam: Arc<DefaultIpam>,
    pub(crate) state: Mutex<State>,
    /// The shared sandbox of host-networking containers, once made.
    pub(crate) default_sandbox: tokio::sync::Mutex<Option<Arc<libnetwork_osl::Sandbox>>>,
    /// Upstream DNS servers: configured, or the host's.
    pub(crate) dns_upstreams: Vec<std::net::IpAddr>,
    /// The DNS records of every network, served by the sandboxes' embedded resolvers.
    pub(crate) dns: libnetwork_resolver::RecordDirectory,
}

/// The controller's objects.
#[derive(Default)]
pub(crate) struct State {
    /// Networks by id, including those being created or deleted.
    pub(crate) networks: BTreeMap<String, Arc<NetworkEntry>>,
    /// Sandboxes by id.
    pub(crate) sandboxes: BTreeMap<String, Arc<SandboxEntry>>,
    /// Containers whose sandbox is being created.
    pub(crate) creating_containers: HashSet<String>,
}

/// The built-in network drivers (libnetwork's order, without overlay).
const BUILTIN_DRIVERS: [&str; 5] = ["bridge", "host", "ipvlan", "macvlan", "null"];

impl Controller {
    /// Starts a controller (libnetwork's `New`): opens the stores, starts the bridge, host,
    /// ipvlan, macvlan and null drivers and the default and null IPAM drivers, loads the
    /// plugins that stored networks use as network or IPAM driver, restores every network,
    /// endpoint and sandbox of the store, removes what a crash left half made, and creates the
    /// predefined `host` and `none` networks. Other plugins are loaded when a network first
    /// names them ([`Config::plugin_discovery`]).
    ///
    /// A plugin of stored networks that cannot be loaded (not found, not answering within
    /// [`Config::plugin_client`]'s retries) does not stop the start: it is logged, and those
    /// networks are restored without their driver; endpoint operations on them fail with
    /// [`Error::UnknownDriver`] until the plugin is loaded (at the next start, or when a new
    /// network names it).
    ///
    /// Every restored sandbox agrees with the kernel when this returns (see
    /// [`Controller::start`], which returns earlier).
    ///
    /// # Errors
    /// [`Error::Store`] when a store cannot be opened or read, [`Error::BridgeInit`],
    /// [`Error::Firewall`], [`Error::IpamInit`] when a driver cannot start ([`Error::Driver`]
    /// for the macvlan and ipvlan drivers, which fail only when their store cannot be read),
    /// [`Error::Os`] when the host namespace cannot be opened, [`Error::Io`] for the
    /// directories.
    pub async fn new(config: Config) -> Result<Self> {
        let controller = Self::start(config).await?;
        controller.restored().await;
        Ok(controller)
    }

    /// Starts a controller like [`Controller::new`], but returns as soon as every object is
    /// back, before the restored sandboxes have been compared with the kernel: that runs in
    /// the background (leftover interfaces removed, default routes and published ports set
    /// right, hosts files updated, embedded DNS servers started). Until a sandbox is done,
    /// every operation on it or on its endpoints ([`crate::Endpoint::join`],
    /// [`crate::Endpoint::leave`], [`crate::Endpoint::delete`],
    /// [`crate::Endpoint::driver_info`], [`Sandbox::delete`]) waits for it; the synchronous
    /// getters answer from the restored records at once. Names of the restored endpoints are
    /// resolvable from the start. [`Controller::restored`] waits for every sandbox, and
    /// [`Controller::shutdown`] waits for them too.
    ///
    /// # Errors
    /// As [`Controller::new`].
    pub async fn start(config: Config) -> Result<Self> {
        let id = random_id();
        info!(controller_id = %id, data_dir = %config.data_dir.display(), exec_root = %config.exec_root.display(), "starting network controller");
        let bridge_config = config.bridge_config()?;
        let files_dir = config.files_dir();
        blocking("create directories", move || {
            std::fs::create_dir_all(&files_dir)
        })
        .await?
        .map_err(Error::io("create the data directory"))?;

        let local_store = open_local_store(&config).await?;
        let global_store = open_global_store(&config).await?;
        let host = Host::new(config.exec_root.clone())
            .await
            .map_err(Error::os("open the host namespace"))?;
        host.keep_spare_namespaces(config.spare_namespaces);

        // The bridge driver (with the firewall; it restores its networks and endpoints), the
        // default IPAM driver and the reading of the controller's records do not depend on
        // each other: they run at the same time.
        let start_bridge = async {
            // With the automatic backend choice the bridge driver makes the firewall itself,
            // while it reads what it restores; another choice is made here.
            let firewall = if bridge_config.enable_iptables
                && config.firewall_backend != BackendChoice::Auto
            {
                let fw_config = FirewallConfig {
                    backend: config.firewall_backend,
                    ipv6: bridge_config.enable_ip6tables,
                };
                let fw = blocking("set up the firewall", move || Firewall::new(fw_config))
                    .await?
                    .map_err(Error::Firewall)?;
                Some(Arc::new(fw))
            } else {
                None
            };
            BridgeDriver::new(
                host.clone(),
                BridgeDriverOptions {
                    config: bridge_config,
                    store: Some(local_store.clone()),
                    firewall,
                    port_mapper: None,
                },
            )
            .await
            .map_err(Error::BridgeInit)
        };
        // IPAM: automatic local pools avoid the host's link-scope routes.
        let start_ipam = async {
            let v6 = has_ipv6_pool(config.default_address_pools.as_deref());
            let host_routes = host_link_routes(&host, v6).await;
            let ipam_config = IpamConfig {
                local_store: Some(local_store.clone()),
                global_store: global_store.clone(),
                local_pools: config.default_address_pools.clone(),
                global_pools: config.global_address_pools.clone(),
                host_routes,
            };
            blocking("start the default ipam driver", move || {
                DefaultIpam::new(ipam_config)
            })
            .await?
            .map_err(Error::IpamInit)
        };
        // The macvlan and ipvlan drivers restore their networks and endpoints from the local
        // store. Neither creates a link of its kind before a join, so a kernel without ipvlan
        // fails ipvlan joins, not the start.
        let start_stacked = async {
            let store = Some(local_store.clone());
            tokio::try_join!(
                async {
                    MacvlanDriver::new(host.clone(), store.clone())
                        .await
                        .map_err(|e| e.into_driverapi(libnetwork_driver_macvlan::DRIVER_TYPE))
                        .map_err(Error::driver("start the macvlan driver"))
                },
                async {
                    IpvlanDriver::new(host.clone(), store.clone())
                        .await
                        .map_err(|e| e.into_driverapi(libnetwork_driver_ipvlan::DRIVER_TYPE))
                        .map_err(Error::driver("start the ipvlan driver"))
                },
            )
        };
        // Plugins of stored networks, registered before the restore calls their drivers.
        let registry = Arc::new(Registry::new());
        let plugins = Arc::new(Plugins::new(
            config.plugin_discovery.clone(),
            config.plugin_client,
        ));
        let load_plugins = async {
            let names = stored_plugin_names(&local_store, global_store.as_ref()).await;
            load_stored_plugins(&registry, &plugins, names).await;
            Ok::<(), Error>(())
        };
        let stores = crate::restore::Stores {
            local: local_store.clone(),
            global: global_store.clone(),
        };
        let (bridge, (macvlan, ipvlan), default_ipam, stored, ()) = tokio::try_join!(
            start_bridge,
            start_stacked,
            start_ipam,
            crate::restore::load(&stores, &host, &config),
            load_plugins,
        )?;

        // Drivers.
        let register = Error::driver("register the built-in drivers");
        bridge
            .register(&registry)
            .and_then(|()| libnetwork_driver_host::register(&registry))
            .and_then(|()| ipvlan.register(&registry))
            .and_then(|()| macvlan.register(&registry))
            .and_then(|()| libnetwork_driver_null::register(&registry))
            .map_err(register)?;
        let default_ipam = Arc::new(default_ipam);
        {
            let registry_ref = &registry;
            let ipam: Arc<dyn libnetwork_ipamapi::Ipam> = default_ipam.clone();
            registry_ref
                .register_ipam_driver(libnetwork_ipamapi::DEFAULT_IPAM, ipam)
                .and_then(|()| {
                    registry_ref
                        .register_ipam_driver(libnetwork_ipamapi::NULL_IPAM, Arc::new(NullIpam))
                })
                .map_err(Error::driver("register the built-in ipam drivers"))?;
        }

        let dns_upstreams = match &config.dns_upstreams {
            Some(servers) => servers.clone(),
            None => crate::files::host_upstreams(&config.host_resolv_conf),
        };

        let inner = Arc::new(Inner {
            id,
            config,
            host,
            local_store,
            global_store,
            registry,
            bridge,
            macvlan,
            ipvlan,
            plugins,
            default_ipam,
            state: Mutex::new(State::default()),
            default_sandbox: tokio::sync::Mutex::new(None),
            dns_upstreams,
            dns: libnetwork_resolver::RecordDirectory::new(),
        });
        let controller = Self { inner };
        crate::restore::restore(&controller.inner, stored).await;
        if controller.inner.config.predefined_networks {
            crate::network::ensure_predefined(&controller.inner).await?;
        }
        info!(controller_id = %controller.inner.id, networks = controller.networks().len(), sandboxes = controller.sandboxes().len(), "network controller ready");
        Ok(controller)
    }

    /// Waits until every sandbox restored at start agrees with the kernel again (at once after
    /// [`Controller::new`]; see [`Controller::start`]).
    pub async fn restored(&self) {
        let sandboxes: Vec<_> = lock(&self.inner.state)
            .sandboxes
            .values()
            .cloned()
            .collect();
        for sb in sandboxes {
            sb.wait_reconciled().await;
        }
    }

    /// The controller's id (random, 64 hex characters, new at every start).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The configuration the controller was started with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The driver and IPAM registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The names of the built-in network drivers.
    pub fn builtin_drivers(&self) -> Vec<String> {
        BUILTIN_DRIVERS.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The names of the built-in IPAM drivers.
    pub fn builtin_ipam_drivers(&self) -> Vec<String> {
        vec![
            libnetwork_ipamapi::DEFAULT_IPAM.to_owned(),
            libnetwork_ipamapi::NULL_IPAM.to_owned(),
        ]
    }

    /// The bridge driver (for its settings, firewall and port mapper).
    pub fn bridge_driver(&self) -> &BridgeDriver {
        &self.inner.bridge
    }

    /// Creates a network of type `network_type` named `name` (libnetwork's `NewNetwork`); see
    /// [`NetworkOptions`] and the crate docs for the rules.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidId`], [`Error::NetworkExists`] (Conflict, for a
    /// taken name or id), [`Error::UnknownDriver`], [`Error::UnknownIpam`], [`Error::Forbidden`]
    /// for the config-only and scope rules, [`Error::NoSuchNetwork`] for a missing
    /// configuration network, and the wrapped errors of IPAM, the driver and the store.
    /// Nothing is left behind on error.
    pub async fn new_network(
        &self,
        network_type: &str,
        name: &str,
        options: NetworkOptions,
    ) -> Result<Network> {
        crate::network::create(&self.inner, network_type, name, options).await
    }

    /// Every network, in id order (not those being created or deleted).
    pub fn networks(&self) -> Vec<Network> {
        self.inner.visible_networks()
    }

    /// Calls `f` on each network until it breaks.
    pub fn walk_networks(&self, mut f: impl FnMut(&Network) -> ControlFlow<()>) {
        for n in self.networks() {
            if f(&n).is_break() {
                return;
            }
        }
    }

    /// The network named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty name, [`Error::NoSuchNetwork`].
    pub fn network_by_name(&self, name: &str) -> Result<Network> {
        if name.is_empty() {
            return Err(Error::InvalidName("find network"));
        }
        self.networks()
            .into_iter()
            .find(|n| n.name() == name)
            .ok_or_else(|| Error::NoSuchNetwork(name.to_owned()))
    }

    /// The network with id `id`.
    ///
    /// # Errors
    /// [`Error::InvalidId`] for an empty id, [`Error::NoSuchNetwork`].
    pub fn network_by_id(&self, id: &str) -> Result<Network> {
        if id.is_empty() {
            return Err(Error::InvalidId {
                op: "find network",
                id: String::new(),
            });
        }
        self.networks()
            .into_iter()
            .find(|n| n.id() == id)
            .ok_or_else(|| Error::NoSuchNetwork(id.to_owned()))
    }

    /// Creates the sandbox of a container (libnetwork's `NewSandbox`): a new network namespace
    /// (or the host's, with [`SandboxOptions::use_default_sandbox`]) and its `hosts` and
    /// `resolv.conf` files.
    ///
    /// # Errors
    /// [`Error::InvalidContainerId`], [`Error::Forbidden`] when the container has a sandbox,
    /// and the wrapped errors of the kernel, the files and the store. Nothing is left behind
    /// on error.
    pub async fn new_sandbox(
        &self,
        container_id: &str,
        options: SandboxOptions,
    ) -> Result<Sandbox> {
        crate::sandbox::create(&self.inner, container_id, options).await
    }

    /// Every sandbox, in id order.
    pub fn sandboxes(&self) -> Vec<Sandbox> {
        let entries: Vec<_> = lock(&self.inner.state)
            .sandboxes
            .values()
            .cloned()
            .collect();
        entries
            .into_iter()
            .map(|entry| Sandbox::from_entry(self.inner.clone(), entry))
            .collect()
    }

    /// Calls `f` on each sandbox until it breaks.
    pub fn walk_sandboxes(&self, mut f: impl FnMut(&Sandbox) -> ControlFlow<()>) {
        for s in self.sandboxes() {
            if f(&s).is_break() {
                return;
            }
        }
    }

    /// The sandbox with id `id`.
    ///
    /// # Errors
    /// [`Error::InvalidId`] for an empty id, [`Error::NoSuchSandbox`].
    pub fn sandbox_by_id(&self, id: &str) -> Result<Sandbox> {
        if id.is_empty() {
            return Err(Error::InvalidId {
                op: "find sandbox",
                id: String::new(),
            });
        }
        let entry = lock(&self.inner.state).sandboxes.get(id).cloned();
        entry
            .map(|e| Sandbox::from_entry(self.inner.clone(), e))
            .ok_or_else(|| Error::NoSuchSandbox(id.to_owned()))
    }

    /// The sandbox of container `container_id`.
    ///
    /// # Errors
    /// [`Error::NoSuchSandbox`].
    pub fn sandbox_by_container(&self, container_id: &str) -> Result<Sandbox> {
        self.sandboxes()
            .into_iter()
            .find(|s| s.container_id() == container_id)
            .ok_or_else(|| Error::NoSuchSandbox(container_id.to_owned()))
    }

    /// Deletes the sandbox of `container_id`, if there is one (libnetwork's
    /// `SandboxDestroy`: a missing sandbox is not an error).
    ///
    /// # Errors
    /// As [`Sandbox::delete`].
    pub async fn sandbox_destroy(&self, container_id: &str) -> Result<()> {
        match self.sandbox_by_container(container_id) {
            Ok(sb) => sb.delete().await,
            Err(Error::NoSuchSandbox(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until the background work started so far is done: published ports being
    /// withdrawn and links being deleted (bridges of deleted networks and veths of left
    /// endpoints are retired at once and deleted in batches, off the caller's path).
    pub async fn settle(&self) {
        self.inner.bridge.settle().await;
        self.inner.macvlan.settle().await;
        self.inner.ipvlan.settle().await;
    }

    /// Stops the controller's background work: stops the embedded DNS servers and waits for
    /// pending interface deletions (libnetwork's `Stop`). Networks, endpoints and sandboxes
    /// stay (in the kernel and the store) for the next start. The store is closed when the
    /// last handle is dropped.
    pub async fn shutdown(&self) {
        // The background comparison of restored sandboxes finishes first.
        self.restored().await;
        let sandboxes: Vec<_> = lock(&self.inner.state)
            .sandboxes
            .values()
            .cloned()
            .collect();
        for sb in sandboxes {
            sb.stop_resolver();
        }
        self.settle().await;
        info!(controller_id = %self.inner.id, "network controller stopped");
    }
}

impl Inner {
    /// Tells the step hook (if any) that `step` is reached.
    pub(crate) fn step(&self, step: &str) {
        if let Some(hook) = &self.config.step_hook {
            debug!(step, "step reached");
            hook(step);
        }
    }

    /// The driver of networks of type `name`: the registered one, or else the plugin of that
    /// name, found, activated and registered (libnetwork's `resolveDriver` with `loadDriver`).
    /// `op` says what the driver is wanted for.
    ///
    /// # Errors
    /// [`Error::UnknownDriver`] (NotFound) when nothing is registered under the name and no
    /// plugin has it; [`Error::Driver`] when the plugin cannot be activated or called, is not a
    /// network driver (NotFound), or reports an unusable scope. Nothing is registered then.
    pub(crate) async fn network_driver(&self, name: &str, op: &str) -> Result<RegisteredDriver> {
        if let Some(driver) = self.registry.driver(name) {
            return Ok(driver);
        }
        debug!(
            driver = name,
            "network driver not registered; looking for a plugin"
        );
        match libnetwork_driver_remote::load_network_driver(&self.registry, &self.plugins, name)
            .await
        {
            Ok(driver) => {
                info!(driver = name, capability = ?driver.capability, "network driver plugin loaded");
                Ok(driver)
            }
            Err(e) if plugin_missing(&e) => {
                debug!(driver = name, error = %e, "no plugin of that name");
                Err(Error::UnknownDriver(name.to_owned()))
            }
            Err(e) => Err(Error::Driver {
                op: format!("{op}: load network driver plugin {name:?}"),
                source: e.into_driver_error(REMOTE),
            }),
        }
    }

    /// The IPAM driver named `name`: the registered one, or else the plugin of that name,
    /// found, activated and registered (libnetwork's `loadIPAMDriver`).
    ///
    /// # Errors
    /// [`Error::UnknownIpam`] (NotFound) when nothing is registered under the name and no
    /// plugin has it; [`Error::Driver`] when the plugin cannot be activated or called, is not
    /// an IPAM driver (NotFound), or cannot tell its address spaces.
    pub(crate) async fn ipam_driver(&self, name: &str, op: &str) -> Result<RegisteredIpam> {
        if let Some(ipam) = self.registry.ipam(name) {
            return Ok(ipam);
        }
        debug!(
            ipam = name,
            "ipam driver not registered; looking for a plugin"
        );
        match libnetwork_driver_remote::load_ipam_driver(&self.registry, &self.plugins, name).await
        {
            Ok(ipam) => {
                info!(ipam = name, "ipam driver plugin loaded");
                Ok(ipam)
            }
            Err(e) if plugin_missing(&e) => {
                debug!(ipam = name, error = %e, "no plugin of that name");
                Err(Error::UnknownIpam(name.to_owned()))
            }
            Err(e) => Err(Error::Driver {
                op: format!("{op}: load ipam driver plugin {name:?}"),
                source: e.into_driver_error(REMOTE),
            }),
        }
    }

    /// The store of a network scope (`local`, `swarm` → local; `global`).
    pub(crate) fn store_for(&self, scope: &str, op: &str) -> Result<Arc<dyn Store>> {
        match store_scope(scope) {
            Scope::Local => Ok(self.local_store.clone()),
            Scope::Global => self.global_store.clone().ok_or_else(|| Error::NoStore {
                op: op.to_owned(),
                scope: scope.to_owned(),
            }),
        }
    }

    /// Networks that are neither being created nor deleted.
    pub(crate) fn visible_networks(self: &Arc<Self>) -> Vec<Network> {
        let entries: Vec<_> = lock(&self.state).networks.values().cloned().collect();
        entries
            .into_iter()
            .filter(|e| e.is_visible())
            .map(|entry| Network::from_entry(self.clone(), entry))
            .collect()
    }

    /// A visible network entry by id.
    pub(crate) fn network_entry(&self, id: &str) -> Option<Arc<NetworkEntry>> {
        lock(&self.state)
            .networks
            .get(id)
            .filter(|e| e.is_visible())
            .cloned()
    }

    /// A sandbox entry by id.
    pub(crate) fn sandbox_entry(&self, id: &str) -> Option<Arc<SandboxEntry>> {
        lock(&self.state).sandboxes.get(id).cloned()
    }

    /// Every endpoint entry joined (or joining) to the sandbox `sbid`, with its network.
    pub(crate) fn endpoints_of_sandbox(
        &self,
        sbid: &str,
    ) -> Vec<(Arc<NetworkEntry>, Arc<EndpointEntry>)> {
        let networks: Vec<_> = lock(&self.state).networks.values().cloned().collect();
        let mut out = Vec::new();
        for n in networks {
            for ep in n.endpoint_entries() {
                if ep.record().sandbox == sbid {
                    out.push((n.clone(), ep));
                }
            }
        }
        out
    }

    /// Writes objects in one atomic batch of their store (the objects of one call must share
    /// a scope). Objects that are not persisted are skipped.
    pub(crate) async fn apply(&self, op: &str, batch: Batch) -> Result<()> {
        if batch.ops.is_empty() {
            return Ok(());
        }
        let store = self.store_for(batch.scope.as_deref().unwrap_or("local"), op)?;
        let ops = batch.ops;
        blocking(op, move || store.apply(ops))
            .await?
            .map(|_| ())
            .map_err(Error::store(op))
    }
}

/// A set of writes for [`Inner::apply`].
#[derive(Debug, Default)]
pub(crate) struct Batch {
    scope: Option<String>,
    ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn scope_of<T: KvObject>(&mut self, obj: &T) {
        if self.scope.is_none() {
            self.scope = Some(obj.data_scope().as_str().to_owned());
        }
    }

    /// Adds a put of `obj` (unconditional: the controller is the only writer of its objects).
    pub(crate) fn put<T: KvObject>(mut self, obj: &T) -> Self {
        if obj.skip() {
            return self;
        }
        self.scope_of(obj);
        let value = serde_json::to_vec(obj).expect("records always encode");
        self.ops.push(Op::Put {
            key: object_key(obj),
            value,
            precondition: Precondition::None,
        });
        self
    }

    /// Adds a delete of `obj` (a missing key is fine: see [`Inner::delete`]).
    pub(crate) fn delete<T: KvObject>(mut self, obj: &T) -> Self {
        if obj.skip() {
            return self;
        }
        self.scope_of(obj);
        self.ops.push(Op::Delete {
            key: object_key(obj),
            precondition: Precondition::None,
        });
        self
    }
}

impl Inner {
    /// Applies a batch in which deleting a key that is already gone is not an error
    /// (teardown is idempotent: a restart may run it again). One atomic batch when every key
    /// to delete exists; otherwise the batch again without the deletes of missing keys.
    pub(crate) async fn delete_keys(&self, op: &str, batch: Batch) -> Result<()> {
        if batch.ops.is_empty() {
            return Ok(());
        }
        let store = self.store_for(batch.scope.as_deref().unwrap_or("local"), op)?;
        let ops = batch.ops;
        blocking(op, move || match store.apply(ops.clone()) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                let mut present = Vec::with_capacity(ops.len());
                for o in ops {
                    match &o {
                        Op::Delete { key, .. } => match store.get(key) {
                            Ok(_) => present.push(o),
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e),
                        },
                        Op::Put { .. } => present.push(o),
                    }
                }
                if present.is_empty() {
                    return Ok(());
                }
                store.apply(present).map(|_| ())
            }
            Err(e) => Err(e),
        })
        .await?
        .map_err(Error::store(op))
    }
}

async fn open_local_store(config: &Config) -> Result<Arc<dyn Store>> {
    let op = "open the local store";
    let options = RedbOptions {
        durability: config.store_durability,
    };
    let store: Arc<dyn Store> = match &config.local_store {
        LocalStore::Redb => {
            let path = RedbStore::default_path(&config.data_dir);
            Arc::new(
                blocking(op, move || RedbStore::open_with(&path, options))
                    .await?
                    .map_err(Error::store(op))?,
            )
        }
        LocalStore::RedbAt(path) => {
            let path: PathBuf = path.clone();
            Arc::new(
                blocking(op, move || RedbStore::open_with(&path, options))
                    .await?
                    .map_err(Error::store(op))?,
            )
        }
        LocalStore::Memory => Arc::new(MemoryStore::new()),
        LocalStore::Custom(store) => store.clone(),
    };
    Ok(store)
}

async fn open_global_store(config: &Config) -> Result<Option<Arc<dyn Store>>> {
    let op = "open the global store";
    Ok(match &config.global_store {
        None => None,
        Some(GlobalStore::Custom(store)) => Some(store.clone()),
        Some(GlobalStore::Etcd(endpoints)) => {
            let endpoints = endpoints.clone();
            let store = blocking(op, move || EtcdStore::connect(&endpoints))
                .await?
                .map_err(Error::store(op))?;
            Some(Arc::new(store))
        }
    })
}

/// The driver type errors of plugins are reported under (libnetwork's plugin loader).
const REMOTE: &str = "remote";

/// Whether loading a plugin failed because no plugin has the name (or the name cannot be a
/// plugin's): the name is simply unknown.
fn plugin_missing(e: &libnetwork_driver_remote::Error) -> bool {
    matches!(
        e,
        libnetwork_driver_remote::Error::Plugin(
            libnetwork_plugins::Error::NotFound { .. }
                | libnetwork_plugins::Error::InvalidName { .. }
        )
    )
}

/// The network driver and IPAM driver names that stored networks use and that are not built
/// in: plugins. Config-only networks call no driver. Read again by the restore; a store that
/// cannot be read gives no names here (the restore reports it).
async fn stored_plugin_names(
    local: &Arc<dyn Store>,
    global: Option<&Arc<dyn Store>>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    /// The fields of a stored network this needs.
    #[derive(serde::Deserialize)]
    struct Drivers {
        #[serde(rename = "networkType", default)]
        network_type: String,
        #[serde(rename = "ipamType", default)]
        ipam_type: String,
        #[serde(rename = "configOnly", default)]
        config_only: bool,
    }
    let stores: Vec<Arc<dyn Store>> = std::iter::once(local).chain(global).cloned().collect();
    let read = blocking("read the drivers of stored networks", move || {
        let mut drivers = BTreeSet::new();
        let mut ipams = BTreeSet::new();
        let prefix = libnetwork_datastore::key(&[crate::records::NETWORK_PREFIX]);
        for store in stores {
            let pairs = match store.list(&prefix) {
                Ok(pairs) => pairs,
                Err(e) => {
                    debug!(error = %e, "stored networks not listed for their plugins");
                    continue;
                }
            };
            for pair in pairs {
                let Ok(n) = serde_json::from_slice::<Drivers>(&pair.value) else {
                    continue;
                };
                if n.config_only {
                    continue;
                }
                if !BUILTIN_DRIVERS.contains(&n.network_type.as_str()) {
                    drivers.insert(n.network_type);
                }
                if ![
                    "",
                    libnetwork_ipamapi::DEFAULT_IPAM,
                    libnetwork_ipamapi::NULL_IPAM,
                ]
                .contains(&n.ipam_type.as_str())
                {
                    ipams.insert(n.ipam_type);
                }
            }
        }
        (drivers, ipams)
    });
    read.await.unwrap_or_default()
}

/// Loads the plugins of stored networks, all at once. One that cannot be loaded is logged:
/// the networks that use it are restored without it.
async fn load_stored_plugins(
    registry: &Arc<Registry>,
    plugins: &Arc<Plugins>,
    (drivers, ipams): (BTreeSet<String>, BTreeSet<String>),
) {
    let mut loads = tokio::task::JoinSet::new();
    for name in drivers {
        let (registry, plugins) = (registry.clone(), plugins.clone());
        loads.spawn(async move {
            let loaded =
                libnetwork_driver_remote::load_network_driver(&registry, &plugins, &name).await;
            match loaded {
                Ok(_) => info!(driver = %name, "network driver plugin of stored networks loaded"),
                Err(e) => warn!(driver = %name, error = %e, "network driver plugin of stored networks not loaded; operations on their endpoints fail until it is"),
            }
        });
    }
    for name in ipams {
        let (registry, plugins) = (registry.clone(), plugins.clone());
        loads.spawn(async move {
            match libnetwork_driver_remote::load_ipam_driver(&registry, &plugins, &name).await {
                Ok(_) => info!(ipam = %name, "ipam driver plugin of stored networks loaded"),
                Err(e) => warn!(ipam = %name, error = %e, "ipam driver plugin of stored networks not loaded; address requests on their networks fail until it is"),
            }
        });
    }
    while let Some(done) = loads.join_next().await {
        if let Err(e) = done
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// Whether the local default pools (libnetwork's when not configured, all IPv4) hold an IPv6
/// network.
fn has_ipv6_pool(pools: Option<&[libnetwork_ipam::NetworkToSplit]>) -> bool {
    pools.is_some_and(|pools| {
        pools.iter().any(|p| {
            p.base
                .parse::<ipnet::IpNet>()
                .is_ok_and(|n| n.addr().is_ipv6())
        })
    })
}

/// The host's link-scope routes (their destinations), which automatic local pools avoid: IPv4
/// ones, and IPv6 ones when a pool is IPv6 (a host with many veths has an IPv6 route per veth,
/// which no IPv4 pool needs to read).
async fn host_link_routes(host: &Host, ipv6: bool) -> Vec<ipnet::IpNet> {
    let mut out = Vec::new();
    let families: &[bool] = if ipv6 { &[false, true] } else { &[false] };
    for &v6 in families {
        match host.netlink().routes(v6).await {
            Ok(routes) => out.extend(
                routes
                    .into_iter()
                    .filter(|r| r.link_scope && !r.is_default())
                    .map(|r| r.destination),
            ),
            Err(e) => warn!(error = %e, ipv6 = v6, "host routes not read; pools may overlap them"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_routes_are_needed_only_with_an_ipv6_default_pool() {
        use libnetwork_ipam::NetworkToSplit;
        assert!(!has_ipv6_pool(None));
        let v4 = [NetworkToSplit::new("10.10.0.0/16", 24)];
        assert!(!has_ipv6_pool(Some(&v4)));
        let mixed = [
            NetworkToSplit::new("10.10.0.0/16", 24),
            NetworkToSplit::new("fd00:1::/48", 64),
        ];
        assert!(has_ipv6_pool(Some(&mixed)));
    }

    #[test]
    fn random_ids_are_64_hex_characters_and_differ() {
        let a = random_id();
        let b = random_id();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
        assert!(!a[..12].bytes().all(|c| c.is_ascii_digit()));
    }
}
