//! [`BridgeDriver`]: networks, endpoints, joins and published ports (libnetwork's
//! `bridge.go`), and its restore from the store (`bridge_store.go`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use ipnet::IpNet;
use libnetwork_datastore::Store;
use libnetwork_driverapi::{
    self as driverapi, Capability, CreateNetworkRequest, CreateNetworkResult, Driver,
    EndpointInterface, EndpointOptions, JoinInfo, JoinInterface, JoinOptions, Sandbox, Scope,
};
use libnetwork_firewall::{BackendChoice, Firewall, FirewallConfig, NetworkRules, PortMapping};
use libnetwork_osl::{Host, InterfaceOptions, Link, NetlinkHandle};
use libnetwork_portmapper::{PortMapper, PortMapperConfig};
use libnetwork_types::{MacAddr, PortBinding};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::config::{DriverConfig, NetworkConfig};
use crate::error::{Error, Result};
use crate::links::HostLinks;
use crate::store::{
    ConnectivityConfiguration, ENDPOINT_PREFIX, EndpointConfiguration, EndpointRecord,
    NETWORK_PREFIX, NetworkRecord, Persistence,
};
use crate::unpublish::Unpublisher;
use crate::{DRIVER_TYPE, labels, netutils, setup};

/// How many random host veth names are tried before giving up (libnetwork tries 3).
const NAME_ATTEMPTS: usize = 3;

/// What a [`BridgeDriver`] is built from.
#[derive(Debug, Default)]
pub struct BridgeDriverOptions {
    /// Driver-wide settings.
    pub config: DriverConfig,
    /// Where networks and endpoints are persisted (the local store); `None` keeps them in
    /// memory only.
    pub store: Option<Arc<dyn Store>>,
    /// The firewall, used when [`DriverConfig::enable_iptables`] is on. `None` there makes the
    /// driver create one with the automatic backend choice.
    pub firewall: Option<Arc<Firewall>>,
    /// The port mapper (one per process). `None` makes the driver create one with the
    /// driver's firewall and [`DriverConfig::enable_userland_proxy`].
    pub port_mapper: Option<Arc<PortMapper>>,
}

/// The bridge network driver.
///
/// Cheap to clone (clones share the state). Every operation takes `&self`; operations on
/// different endpoints run concurrently, those on one endpoint one after the other, and
/// network creations and deletions one at a time.
#[derive(Debug, Clone)]
pub struct BridgeDriver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The namespace the driver works in, with its netlink handle.
    host: Host,
    config: DriverConfig,
    persistence: Persistence,
    /// The firewall, when rules are programmed.
    firewall: Option<Arc<Firewall>>,
    ports: Arc<PortMapper>,
    /// Host veth requests and the reaper of retired veths.
    links: HostLinks,
    /// Withdraws revoked ports in batches.
    unpublisher: Unpublisher,
    /// The networks by id. Never held across an await.
    networks: Mutex<HashMap<String, Arc<Network>>>,
    /// Serialises network creation and deletion (libnetwork's `configNetwork` lock).
    network_ops: tokio::sync::Mutex<()>,
    /// Host veth names given to endpoints, so two endpoints never get the same one.
    names: Mutex<HashSet<String>>,
}

/// A network: its configuration, its bridge and its endpoints.
#[derive(Debug)]
struct Network {
    config: NetworkConfig,
    bridge: Link,
    /// The endpoints by id. The map's lock is never held across an await; each endpoint's own
    /// lock is held for the whole of an operation on it.
    endpoints: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Endpoint>>>>,
}

/// An endpoint's state.
#[derive(Debug)]
struct Endpoint {
    /// What is persisted.
    record: EndpointRecord,
    /// The host end of its veth, while joined.
    host_link: Option<Link>,
    /// The sandbox end of its veth and the sandbox's netlink handle, while joined (unknown for
    /// an endpoint restored as joined).
    sandbox_link: Option<(NetlinkHandle, Link)>,
    /// Fires when its previous veth, retired by a leave, is deleted; a join waits for it
    /// because the new veth takes the same host name.
    removal: Option<oneshot::Receiver<()>>,
    /// Set when the endpoint was deleted while another operation waited for its lock.
    removed: bool,
}

/// Locks a std mutex, ignoring poisoning (the maps stay consistent: every critical section is
/// a single insert, remove or lookup).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BridgeDriver {
    /// Starts the driver in `host`'s namespace: enables IP forwarding if configured, sets up
    /// the firewall and the port mapper, then restores every network and endpoint of the store
    /// (libnetwork's `Init` + `initStore`): bridges are reused (created again if missing),
    /// firewall rules installed again, joined endpoints found by their host veth, port
    /// mappings published again; records of endpoints whose network is gone, veths left by a
    /// crash and port mappings no endpoint owns are removed. A network that cannot be restored
    /// is logged and skipped (its record and its endpoints' records stay for the next start).
    /// The stored networks' bridges are set up while the firewall starts; if the driver then
    /// fails to start (firewall, netlink socket), the bridges made just now are deleted again.
    ///
    /// # Errors
    /// [`Error::Kernel`] when forwarding cannot be enabled, [`Error::Firewall`] when the
    /// firewall cannot be set up, [`Error::Link`]/[`Error::Io`] when the driver's netlink
    /// socket cannot be opened, [`Error::Store`] when the store cannot be listed.
    pub async fn new(host: Host, options: BridgeDriverOptions) -> Result<Self> {
        let BridgeDriverOptions {
            config,
            store,
            firewall,
            port_mapper,
        } = options;
        let persistence = Persistence::new(store);
        // What the restore reads (records, the host's bridge ports and IPv4 addresses) is read,
        // and the stored networks' bridges set up, while forwarding and the firewall are set up.
        let setting_up = async {
            if config.enable_ip_forwarding {
                setup::enable_ip_forwarding(&host).await?;
            }
            match (config.enable_iptables, firewall) {
                (false, _) => Ok::<_, Error>(None),
                (true, Some(fw)) => Ok(Some(fw)),
                (true, None) => {
                    let fw_config = FirewallConfig {
                        backend: BackendChoice::Auto,
                        ipv6: config.enable_ip6tables,
                    };
                    let fw = blocking("set up the firewall", move || Firewall::new(fw_config))
                        .await?
                        .map_err(|cause| Error::Firewall {
                            op: "set up the firewall".into(),
                            cause,
                        })?;
                    Ok(Some(Arc::new(fw)))
                }
            }
        };
        let reading = async {
            let mut state = RestoreState::read(&host, &persistence).await?;
            state.setup_bridges(&host, config).await;
            Ok::<_, Error>(state)
        };
        let (to_restore, firewall) = tokio::join!(reading, setting_up);
        let firewall = match firewall {
            Ok(firewall) => firewall,
            Err(e) => {
                // Nothing is restored: the bridges made just now go again.
                let undo = match to_restore {
                    Ok(state) => state.undo_bridges(&host).await,
                    Err(_) => Vec::new(),
                };
                return Err(e.with_undo(undo));
            }
        };
        let to_restore = to_restore?;
        let ports = port_mapper.unwrap_or_else(|| {
            let pm_config = PortMapperConfig {
                userland_proxy: config.enable_userland_proxy,
                ..PortMapperConfig::default()
            };
            Arc::new(PortMapper::new(pm_config, firewall.clone()))
        });
        let links = match HostLinks::open(&host).await {
            Ok(links) => links,
            Err(e) => {
                let undo = to_restore.undo_bridges(&host).await;
                return Err(e.with_undo(undo));
            }
        };
        let unpublisher = Unpublisher::start(Arc::clone(&ports));
        let driver = Self {
            inner: Arc::new(Inner {
                links,
                unpublisher,
                host,
                config,
                persistence,
                firewall,
                ports,
                networks: Mutex::default(),
                network_ops: tokio::sync::Mutex::default(),
                names: Mutex::default(),
            }),
        };
        driver.inner.restore(to_restore).await;
        info!(
            firewall = driver.inner.firewall.is_some(),
            userland_proxy = config.enable_userland_proxy,
            "bridge driver ready"
        );
        Ok(driver)
    }

    /// Registers the driver as `bridge` in a registry (libnetwork's `Init`).
    ///
    /// # Errors
    /// As [`driverapi::Registry::register_driver`].
    pub fn register(&self, registry: &driverapi::Registry) -> Result<(), driverapi::Error> {
        registry.register_driver(DRIVER_TYPE, Arc::new(self.clone()))
    }

    /// The driver-wide settings.
    pub fn config(&self) -> &DriverConfig {
        &self.inner.config
    }

    /// The firewall in use, if rules are programmed.
    pub fn firewall(&self) -> Option<&Arc<Firewall>> {
        self.inner.firewall.as_ref()
    }

    /// The port mapper.
    pub fn port_mapper(&self) -> &Arc<PortMapper> {
        &self.inner.ports
    }

    /// The configuration of a network, if it exists.
    pub fn network_config(&self, network_id: &str) -> Option<NetworkConfig> {
        lock(&self.inner.networks)
            .get(network_id)
            .map(|n| n.config.clone())
    }

    /// The host veth name of an endpoint, if it exists.
    pub async fn endpoint_host_name(&self, network_id: &str, endpoint_id: &str) -> Option<String> {
        let (_, endpoint) = self.inner.endpoint(network_id, endpoint_id).ok()?;
        let endpoint = endpoint.lock().await;
        (!endpoint.removed).then(|| endpoint.record.src_name.clone())
    }

    /// Waits until the background work started so far is done: ports revoked by
    /// `revoke_external_connectivity` or `delete_endpoint` are unpublished, and veths retired
    /// by `leave`, `delete_endpoint`, `delete_network` or the restore are deleted.
    pub async fn settle(&self) {
        self.inner.unpublisher.flush().await;
        self.inner.links.flush().await;
    }
}

/// Starts a bridge driver (see [`BridgeDriver::new`]) and registers it as `bridge` in a
/// registry: the bridge's counterpart of the other built-in drivers' `register`.
///
/// # Errors
/// The driver's start-up errors (as `Driver { driver: "bridge", .. }`), or the registry's.
pub async fn register(
    registry: &driverapi::Registry,
    host: Host,
    options: BridgeDriverOptions,
) -> Result<BridgeDriver, driverapi::Error> {
    let driver = BridgeDriver::new(host, options).await?;
    driver.register(registry)?;
    Ok(driver)
}

/// Runs blocking work (the firewall) on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    op: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Task(op.to_string()))
}

impl Inner {
    fn network(&self, id: &str) -> Result<Arc<Network>> {
        lock(&self.networks)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoNetwork(id.to_string()))
    }

    fn endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(Arc<Network>, Arc<tokio::sync::Mutex<Endpoint>>)> {
        let network = self.network(network_id)?;
        let endpoint = lock(&network.endpoints)
            .get(endpoint_id)
            .cloned()
            .ok_or_else(|| no_endpoint(network_id, endpoint_id))?;
        Ok((network, endpoint))
    }

    // ----- firewall -----

    fn network_rules(&self, cfg: &NetworkConfig) -> Option<NetworkRules> {
        let ipv4_subnet = cfg.subnet_v4()?;
        Some(NetworkRules {
            bridge: cfg.bridge_name.clone(),
            ipv4_subnet,
            ipv6_subnet: cfg.subnet_v6().filter(|_| self.config.enable_ip6tables),
            masquerade: cfg.enable_ip_masquerade,
            snat_source: match cfg.host_ip {
                Some(IpAddr::V4(ip)) => Some(ip),
                _ => None,
            },
            icc: cfg.enable_icc,
            internal: cfg.internal,
            hairpin: !self.config.enable_userland_proxy,
        })
    }

    async fn add_firewall_rules(&self, cfg: &NetworkConfig) -> Result<()> {
        let (Some(fw), Some(rules)) = (self.firewall.clone(), self.network_rules(cfg)) else {
            return Ok(());
        };
        let op = format!("add firewall rules of network {}", cfg.id);
        blocking(&op, move || fw.add_network(&rules))
            .await?
            .map_err(|cause| Error::Firewall { op, cause })
    }

    async fn remove_firewall_rules(&self, cfg: &NetworkConfig) -> Result<()> {
        let Some(fw) = self.firewall.clone() else {
            return Ok(());
        };
        let op = format!("remove firewall rules of network {}", cfg.id);
        let bridge = cfg.bridge_name.clone();
        blocking(&op, move || fw.remove_network(&bridge))
            .await?
            .map_err(|cause| Error::Firewall { op, cause })
    }

    // ----- networks -----

    async fn create_network(&self, request: &CreateNetworkRequest) -> Result<()> {
        // Everything that can be refused is refused before anything is made.
        let mut cfg = NetworkConfig::from_request(request)?;
        let _serial = self.network_ops.lock().await;
        {
            let networks = lock(&self.networks);
            if networks.contains_key(&cfg.id) {
                return Err(Error::NetworkExists(cfg.id));
            }
            if let Some(e) = networks.values().find_map(|n| cfg.conflict_with(&n.config)) {
                return Err(e);
            }
        }

        let bridge = setup::setup_bridge(&self.host, &cfg, &self.config).await?;
        cfg.bridge_iface_creator = bridge.creator;
        let result = async {
            self.add_firewall_rules(&cfg).await?;
            if let Err(e) = self.persistence.put(&NetworkRecord::new(cfg.clone())).await {
                let undo = self.remove_firewall_rules(&cfg).await.err();
                return Err(e.with_undo(undo.into_iter().collect()));
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let undo = bridge.undo.run(&self.host).await;
            return Err(e.with_undo(undo));
        }

        info!(network = %cfg.id, bridge = %cfg.bridge_name, "network created");
        let network = Network {
            config: cfg,
            bridge: bridge.link,
            endpoints: Mutex::default(),
        };
        lock(&self.networks).insert(network.config.id.clone(), Arc::new(network));
        Ok(())
    }

    async fn delete_network(&self, network_id: &str) -> Result<()> {
        let _serial = self.network_ops.lock().await;
        let network = lock(&self.networks)
            .remove(network_id)
            .ok_or_else(|| Error::NoNetwork(network_id.to_string()))?;
        let mut failures = Vec::new();

        // Endpoints still there go with the network (libnetwork releases their ports and
        // deletes their veths).
        let endpoints: Vec<_> = lock(&network.endpoints).drain().collect();
        for (_, endpoint) in endpoints {
            let mut endpoint = endpoint.lock().await;
            failures.extend(self.teardown_endpoint(&mut endpoint, false).await);
        }
        // Ports of the network's endpoints still being withdrawn go first.
        self.unpublisher.flush().await;
        if let Err(e) = self.remove_firewall_rules(&network.config).await {
            failures.push(e);
        }
        if let Err(e) = setup::teardown_bridge(&self.links, &network.config, &network.bridge).await
        {
            failures.push(e);
        }
        if let Err(e) = self
            .persistence
            .delete(&NetworkRecord::new(network.config.clone()))
            .await
        {
            failures.push(e);
        }
        info!(
            network = network_id,
            failures = failures.len(),
            "network deleted"
        );
        Error::teardown(format!("delete network {network_id}"), failures)
    }

    // ----- endpoints -----

    /// A free host veth name, reserved for the caller.
    async fn reserve_name(&self) -> Result<String> {
        for _ in 0..NAME_ATTEMPTS {
            let name = netutils::random_veth_name();
            if !lock(&self.names).insert(name.clone()) {
                continue;
            }
            match self.host.netlink().link_by_name(&name).await {
                Err(e) if e.is_not_found() => return Ok(name),
                Ok(_) => {}
                Err(e) => {
                    lock(&self.names).remove(&name);
                    return Err(Error::kernel("name a host interface", e));
                }
            }
            lock(&self.names).remove(&name);
        }
        Err(Error::NoFreeName)
    }

    async fn create_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
        interface: &mut EndpointInterface,
        options: &EndpointOptions,
    ) -> Result<()> {
        let network = self.network(network_id)?;
        let cfg = &network.config;
        let invalid = |reason: String| Error::InvalidEndpointConfig {
            endpoint: endpoint_id.to_string(),
            reason,
        };
        if self.endpoint_exists(endpoint_id) {
            return Err(Error::EndpointExists(endpoint_id.to_string()));
        }

        // Addresses: the IPv4 one is required and must be in the subnet.
        let addr = match interface.address {
            Some(IpNet::V4(a)) if cfg.subnet_v4().is_some_and(|s| s.contains(&a.addr())) => a,
            Some(a) => {
                return Err(invalid(format!(
                    "address {a} is not in the network's subnet"
                )));
            }
            None => return Err(invalid("no IPv4 address".into())),
        };
        if let Some(a6) = interface.address_ipv6 {
            let ok = matches!(a6, IpNet::V6(v6) if cfg.enable_ipv6
                && cfg.subnet_v6().is_none_or(|s| s.contains(&v6.addr())));
            if !ok {
                return Err(invalid(format!(
                    "IPv6 address {a6} does not fit the network"
                )));
            }
        }
        // The MAC (libnetwork's order): the interface's, the one asked for in the options, or
        // one derived from the IPv4 address.
        let mac = interface
            .mac
            .or(options.mac_address)
            .unwrap_or_else(|| MacAddr::from_ipv4(addr.addr()));
        // IPv6 without an address: derived from the MAC.
        let mut derived_v6 = None;
        if cfg.enable_ipv6
            && interface.address_ipv6.is_none()
            && let Some(subnet) = cfg.subnet_v6()
        {
            derived_v6 = Some(netutils::ipv6_from_mac(subnet, mac).ok_or_else(|| {
                Error::Ipv6SubnetTooSmall {
                    endpoint: endpoint_id.to_string(),
                    subnet: subnet.to_string(),
                }
            })?);
        }

        let name = self.reserve_name().await?;
        let mut record = EndpointRecord::new(
            endpoint_id,
            network_id,
            name.clone(),
            mac,
            Some(IpNet::V4(addr)),
            interface.address_ipv6.or(derived_v6),
        );
        record.config = Some(EndpointConfiguration {
            mac_address: options.mac_address,
        });
        let endpoint = Arc::new(tokio::sync::Mutex::new(Endpoint {
            record: record.clone(),
            host_link: None,
            sandbox_link: None,
            removal: None,
            removed: false,
        }));
        // Lock it before it becomes visible, so no one uses it before it is stored.
        let guard = Arc::clone(&endpoint).lock_owned().await;
        let inserted = {
            let mut endpoints = lock(&network.endpoints);
            if endpoints.contains_key(endpoint_id) {
                false
            } else {
                endpoints.insert(endpoint_id.to_string(), endpoint);
                true
            }
        };
        if !inserted || lock(&self.networks).get(network_id).is_none() {
            // A concurrent creation of the same id won, or the network went away meanwhile.
            lock(&self.names).remove(&name);
            if inserted {
                let mut guard = guard;
                guard.removed = true;
                lock(&network.endpoints).remove(endpoint_id);
                return Err(Error::NoNetwork(network_id.to_string()));
            }
            return Err(Error::EndpointExists(endpoint_id.to_string()));
        }
        if let Err(e) = self.persistence.put(&record).await {
            let mut guard = guard;
            guard.removed = true;
            lock(&network.endpoints).remove(endpoint_id);
            lock(&self.names).remove(&name);
            return Err(e);
        }
        drop(guard);

        // Complete what is unset; never overwrite.
        interface.mac.get_or_insert(mac);
        if let Some(v6) = derived_v6 {
            interface.address_ipv6 = Some(v6);
        }
        debug!(network = network_id, endpoint = endpoint_id, host_name = %name, %mac, "endpoint created");
        Ok(())
    }

    fn endpoint_exists(&self, endpoint_id: &str) -> bool {
        lock(&self.networks)
            .values()
            .any(|n| lock(&n.endpoints).contains_key(endpoint_id))
    }

    /// Releases an endpoint's ports (now, or in the next batch with `defer_unpublish`),
    /// retires its veth and deletes its record,
    /// and frees its name. Best effort; returns the failures.
    async fn teardown_endpoint(
        &self,
        endpoint: &mut Endpoint,
        defer_unpublish: bool,
    ) -> Vec<Error> {
        let mut failures = Vec::new();
        let bindings = std::mem::take(&mut endpoint.record.port_mapping);
        if defer_unpublish {
            self.unpublisher.unpublish(bindings);
        } else if !bindings.is_empty()
            && let Err(cause) = self.ports.unmap(&bindings).await
        {
            failures.push(Error::Ports {
                op: format!("unpublish ports of endpoint {}", endpoint.record.id),
                cause,
            });
        }
        if let Some(link) = endpoint.host_link.take()
            && let Err(e) = self.remove_veth(endpoint, link).await
        {
            failures.push(e);
        }
        if let Err(e) = self.persistence.delete(&endpoint.record).await {
            failures.push(e);
        }
        lock(&self.names).remove(&endpoint.record.src_name);
        endpoint.removed = true;
        failures
    }

    /// Takes a veth out of service now and has the reaper delete it with the next batch (see
    /// the `links` module). The sandbox end is set down and renamed after the host end (so its
    /// routes and its `eth<n>` name are free at once for another join into the sandbox), then
    /// the host end is retired (down, into the reap group). A veth already gone is fine.
    async fn remove_veth(&self, endpoint: &mut Endpoint, link: Link) -> Result<()> {
        let mut failures = Vec::new();
        if let Some((sandbox, inside)) = endpoint.sandbox_link.take() {
            let op = |what: &str| {
                format!(
                    "leave {}: {what} {} in the sandbox",
                    endpoint.record.id, inside.name
                )
            };
            match sandbox.set_up(&inside, false).await {
                Ok(()) => {
                    if let Err(e) = sandbox.rename(&inside, &link.name).await
                        && !e.is_not_found()
                    {
                        failures.push(Error::kernel(op("rename"), e));
                    }
                }
                // The sandbox was destroyed and took the pair with it.
                Err(e) if e.is_not_found() => {}
                Err(e) => failures.push(Error::kernel(op("take down"), e)),
            }
        }
        match self.links.retire(&link).await {
            Ok(deleted) => endpoint.removal = Some(deleted),
            Err(e) => {
                endpoint.host_link = Some(link);
                return Err(e.with_undo(failures));
            }
        }
        Error::teardown(format!("leave {}", endpoint.record.id), failures)
    }

    async fn delete_endpoint(&self, network_id: &str, endpoint_id: &str) -> Result<()> {
        let (network, endpoint) = self.endpoint(network_id, endpoint_id)?;
        let mut endpoint = endpoint.lock().await;
        if endpoint.removed {
            return Err(no_endpoint(network_id, endpoint_id));
        }
        let failures = self.teardown_endpoint(&mut endpoint, true).await;
        lock(&network.endpoints).remove(endpoint_id);
        debug!(
            network = network_id,
            endpoint = endpoint_id,
            "endpoint deleted"
        );
        Error::teardown(format!("delete endpoint {endpoint_id}"), failures)
    }

    async fn endpoint_oper_info(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>> {
        let (_, endpoint) = self.endpoint(network_id, endpoint_id)?;
        let endpoint = endpoint.lock().await;
        if endpoint.removed {
            return Err(no_endpoint(network_id, endpoint_id));
        }
        let record = &endpoint.record;
        let exposed = record
            .external_conn_config
            .as_ref()
            .map(|c| c.exposed_ports.clone())
            .unwrap_or_default();
        let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
        Ok(BTreeMap::from([
            (
                labels::EXPOSED_PORTS.to_string(),
                json(serde_json::to_value(exposed)),
            ),
            (
                labels::PORT_MAP.to_string(),
                json(serde_json::to_value(&record.port_mapping)),
            ),
            (
                labels::MAC_ADDRESS.to_string(),
                serde_json::Value::String(record.mac.to_string()),
            ),
        ]))
    }

    // ----- join and leave -----

    async fn join(
        &self,
        network_id: &str,
        endpoint_id: &str,
        sandbox: &Sandbox,
    ) -> Result<JoinInfo> {
        let (network, endpoint) = self.endpoint(network_id, endpoint_id)?;
        let mut endpoint = endpoint.lock().await;
        if endpoint.removed {
            return Err(no_endpoint(network_id, endpoint_id));
        }
        if endpoint.host_link.is_some() {
            return Err(Error::AlreadyJoined(endpoint_id.to_string()));
        }
        if let Some(removal) = endpoint.removal.take() {
            // The previous veth had the same host name.
            let _ = removal.await;
        }
        let cfg = &network.config;
        let record = &endpoint.record;

        // The container end is born inside the sandbox, configured there.
        let opts = InterfaceOptions {
            mac: Some(record.mac),
            mtu: cfg.mtu(),
            addresses: record.addr.into_iter().chain(record.addr_v6).collect(),
            ..InterfaceOptions::default()
        };
        let pair = sandbox
            .create_veth(&record.src_name, cfg.container_prefix(), &opts)
            .await
            .map_err(|e| Error::kernel(format!("join endpoint {endpoint_id}: create veth"), e))?;
        if let Err(e) = self.attach_host_end(&network, &pair.host).await {
            let undo = self
                .host
                .netlink()
                .delete_link(&pair.host)
                .await
                .err()
                .map(|u| Error::kernel("undo: delete veth", u));
            return Err(e.with_undo(undo.into_iter().collect()));
        }
        endpoint.host_link = Some(pair.host);
        endpoint.sandbox_link = Some((sandbox.netlink().clone(), pair.sandbox.clone()));

        let (gateway, gateway_ipv6) = if cfg.internal {
            // An internal network leads nowhere: no default route through it.
            (None, None)
        } else {
            (
                cfg.default_gateway_ipv4
                    .or(cfg.bridge_ipv4().map(IpAddr::V4)),
                cfg.default_gateway_ipv6.or(cfg
                    .bridge_ipv6()
                    .filter(|_| cfg.subnet_v6().is_some())
                    .map(IpAddr::V6)),
            )
        };
        debug!(network = network_id, endpoint = endpoint_id, interface = %pair.sandbox.name, "endpoint joined");
        Ok(JoinInfo {
            interface: Some(JoinInterface::InSandbox {
                name: pair.sandbox.name,
            }),
            gateway,
            gateway_ipv6,
            ..JoinInfo::default()
        })
    }

    /// Puts the host end of a new veth on the bridge (in hairpin mode without the userland
    /// proxy, as libnetwork does) and up.
    async fn attach_host_end(&self, network: &Network, link: &Link) -> Result<()> {
        self.links
            .attach_port(
                link,
                &network.bridge,
                network.config.mtu(),
                !self.config.enable_userland_proxy,
            )
            .await
    }

    async fn leave(&self, network_id: &str, endpoint_id: &str) -> Result<()> {
        let (_, endpoint) = self.endpoint(network_id, endpoint_id)?;
        let mut endpoint = endpoint.lock().await;
        if endpoint.removed {
            return Err(no_endpoint(network_id, endpoint_id));
        }
        let Some(link) = endpoint.host_link.take() else {
            return Err(Error::NotJoined(endpoint_id.to_string()));
        };
        self.remove_veth(&mut endpoint, link).await?;
        debug!(
            network = network_id,
            endpoint = endpoint_id,
            "endpoint left"
        );
        Ok(())
    }

    // ----- ports -----

    async fn program_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
        options: &EndpointOptions,
    ) -> Result<()> {
        let (network, endpoint) = self.endpoint(network_id, endpoint_id)?;
        let mut endpoint = endpoint.lock().await;
        if endpoint.removed {
            return Err(no_endpoint(network_id, endpoint_id));
        }
        if !endpoint.record.port_mapping.is_empty() {
            // Programming again replaces what was published.
            self.revoke(&mut endpoint).await?;
        }
        // A host port still being withdrawn is published once it is free.
        self.unpublisher.wait_for(&options.port_bindings).await;
        let mapped = self
            .map_ports(&network, &endpoint.record, &options.port_bindings)
            .await?;
        let previous = endpoint.record.clone();
        endpoint.record.external_conn_config = Some(ConnectivityConfiguration {
            port_bindings: options.port_bindings.clone(),
            exposed_ports: options.exposed_ports.clone(),
        });
        endpoint.record.port_mapping = mapped;
        if let Err(e) = self.persistence.put(&endpoint.record).await {
            let undo = self.ports.unmap(&endpoint.record.port_mapping).await.err();
            endpoint.record = previous;
            let undo = undo.map(|cause| Error::Ports {
                op: "undo: unpublish ports".into(),
                cause,
            });
            return Err(e.with_undo(undo.into_iter().collect()));
        }
        debug!(
            network = network_id,
            endpoint = endpoint_id,
            ports = endpoint.record.port_mapping.len(),
            "external connectivity programmed"
        );
        Ok(())
    }

    /// Publishes an endpoint's bindings (libnetwork's `allocatePorts`): an IPv4 copy of each
    /// binding, unless its host address (or the network's default binding address) is IPv6,
    /// and, for an endpoint with an IPv6 address, an IPv6 copy on `::` (or the binding's IPv6
    /// host address) using the same host ports. All or nothing.
    async fn map_ports(
        &self,
        network: &Network,
        record: &EndpointRecord,
        bindings: &[PortBinding],
    ) -> Result<Vec<PortBinding>> {
        if bindings.is_empty() {
            return Ok(Vec::new());
        }
        let bridge = &network.config.bridge_name;
        let op = || format!("publish ports of endpoint {}", record.id);
        let ports_err = |cause| Error::Ports { op: op(), cause };
        let container_v4 = record.addr.map(|a| a.addr());
        let container_v6 = record.addr_v6.map(|a| a.addr());

        let mut v4 = Vec::new();
        let mut v6_wanted = Vec::new();
        for binding in bindings {
            let host_ip = binding.host_ip.or(network.config.default_binding_ip);
            let clean = PortBinding {
                ip: None,
                host_ip,
                ..*binding
            };
            let v4_index = if host_ip.is_none_or(|ip| ip.is_ipv4()) {
                v4.push(clean);
                Some(v4.len() - 1)
            } else {
                None
            };
            let v6_host = match host_ip {
                None => Some(Ipv6Addr::UNSPECIFIED),
                Some(IpAddr::V4(ip)) if ip.is_unspecified() => Some(Ipv6Addr::UNSPECIFIED),
                Some(IpAddr::V4(_)) => None,
                Some(IpAddr::V6(ip)) => Some(ip),
            };
            if let Some(v6_host) = v6_host
                && container_v6.is_some()
            {
                v6_wanted.push((
                    PortBinding {
                        host_ip: Some(IpAddr::V6(v6_host)),
                        ..clean
                    },
                    v4_index,
                ));
            }
        }
        if v4.is_empty() && v6_wanted.is_empty() {
            return Ok(Vec::new());
        }

        let mut mapped = Vec::new();
        if !v4.is_empty() {
            let Some(ip) = container_v4 else {
                return Err(Error::InvalidEndpointConfig {
                    endpoint: record.id.clone(),
                    reason: "no IPv4 address to publish ports to".into(),
                });
            };
            mapped = self.ports.map(bridge, ip, &v4).await.map_err(ports_err)?;
        }
        if let Some(ip) = container_v6
            && !v6_wanted.is_empty()
        {
            // The IPv6 copy takes the host ports the IPv4 copy got.
            let v6: Vec<PortBinding> = v6_wanted
                .into_iter()
                .map(|(mut b, v4_index)| {
                    if let Some(got) = v4_index.and_then(|i| mapped.get(i)) {
                        b.host_port = got.host_port;
                        b.host_port_end = got.host_port_end;
                    }
                    b
                })
                .collect();
            match self.ports.map(bridge, ip, &v6).await {
                Ok(more) => mapped.extend(more),
                Err(cause) => {
                    let undo = if mapped.is_empty() {
                        None
                    } else {
                        self.ports.unmap(&mapped).await.err()
                    };
                    let undo = undo.map(|cause| Error::Ports {
                        op: "undo: unpublish IPv4 ports".into(),
                        cause,
                    });
                    return Err(ports_err(cause).with_undo(undo.into_iter().collect()));
                }
            }
        }
        Ok(mapped)
    }

    /// Withdraws an endpoint's published ports: forgets and stores that at once, and has the
    /// unpublisher unmap them with its next batch (see the `unpublish` module).
    async fn revoke(&self, endpoint: &mut Endpoint) -> Result<()> {
        let bindings = std::mem::take(&mut endpoint.record.port_mapping);
        endpoint.record.external_conn_config = None;
        self.unpublisher.unpublish(bindings);
        self.persistence.put(&endpoint.record).await
    }

    async fn revoke_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<()> {
        let (_, endpoint) = self.endpoint(network_id, endpoint_id)?;
        let mut endpoint = endpoint.lock().await;
        if endpoint.removed {
            return Err(no_endpoint(network_id, endpoint_id));
        }
        self.revoke(&mut endpoint).await
    }

    // ----- restore -----

    async fn restore(self: &Arc<Self>, state: RestoreState) {
        // Veths retired by an earlier process but not yet deleted.
        self.links.kick();
        let RestoreState {
            bridges,
            endpoints,
            snapshot,
            started,
        } = state;
        if bridges.is_empty() && endpoints.is_empty() {
            return;
        }
        let stored: HashSet<String> = bridges.iter().map(|(cfg, _)| cfg.id.clone()).collect();
        // Networks are independent of each other: restored concurrently.
        let mut restoring = tokio::task::JoinSet::new();
        for (cfg, bridge) in bridges {
            let inner = Arc::clone(self);
            restoring.spawn(async move {
                let id = cfg.id.clone();
                let restored = match bridge {
                    Ok(bridge) => inner.restore_network(cfg, bridge).await,
                    Err(e) => Err(e),
                };
                (id, restored)
            });
        }
        while let Some(done) = restoring.join_next().await {
            match done {
                Ok((id, Ok(network))) => {
                    lock(&self.networks).insert(id, Arc::new(network));
                }
                Ok((id, Err(e))) => warn!(network = %id, error = %e, "network not restored"),
                Err(e) => warn!(error = %e, "network restore did not finish"),
            }
        }
        debug!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "restore: networks restored"
        );

        self.remove_stale_port_mappings(&endpoints).await;
        for record in endpoints {
            let Ok(network) = self.network(&record.nid) else {
                if stored.contains(&record.nid) {
                    // Its network failed to restore: keep the record for the next start.
                    continue;
                }
                warn!(endpoint = %record.id, network = %record.nid, "endpoint of an unknown network removed");
                if let Ok(Some(link)) = self.host_link(&snapshot, &record.src_name).await {
                    self.retire_leftover(link).await;
                }
                if let Err(e) = self.persistence.delete(&record).await {
                    warn!(endpoint = %record.id, error = %e, "stale endpoint record not removed");
                }
                continue;
            };
            let id = record.id.clone();
            let endpoint = self.restore_endpoint(&network, record, &snapshot).await;
            lock(&network.endpoints).insert(id, Arc::new(tokio::sync::Mutex::new(endpoint)));
        }
        self.remove_stale_veths(&snapshot).await;
        info!(
            networks = lock(&self.networks).len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "bridge networks restored"
        );
    }

    /// Installs the firewall rules of a network whose bridge the restore has set up.
    async fn restore_network(
        &self,
        cfg: NetworkConfig,
        bridge: setup::BridgeSetup,
    ) -> Result<Network> {
        if let Err(e) = self.add_firewall_rules(&cfg).await {
            // A bridge made just now is undone; a reused one stays as it was.
            let undo = bridge.undo.run(&self.host).await;
            return Err(e.with_undo(undo));
        }
        debug!(network = %cfg.id, bridge = %cfg.bridge_name, "network restored");
        Ok(Network {
            config: cfg,
            bridge: bridge.link,
            endpoints: Mutex::default(),
        })
    }

    /// The host link called `name` (`None` when there is none): from the snapshot's bridge
    /// ports, or asked for (a link on no bridge, or no snapshot of the ports).
    async fn host_link(
        &self,
        snapshot: &setup::HostSnapshot,
        name: &str,
    ) -> libnetwork_osl::Result<Option<Link>> {
        if let Some(port) = snapshot.ports.as_ref().and_then(|ports| ports.get(name)) {
            return Ok(Some(port.clone()));
        }
        match self.host.netlink().link_by_name(name).await {
            Ok(link) => Ok(Some(link)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn restore_endpoint(
        &self,
        network: &Network,
        mut record: EndpointRecord,
        snapshot: &setup::HostSnapshot,
    ) -> Endpoint {
        lock(&self.names).insert(record.src_name.clone());
        // Joined endpoints are the ones whose veth is up on the bridge; a veth found down was
        // being removed by a leave when the process stopped.
        let host_link = match self.host_link(snapshot, &record.src_name).await {
            Ok(Some(link)) if link.up && link.master == Some(network.bridge.index) => Some(link),
            Ok(Some(link)) => {
                debug!(link = %link.name, "leftover veth removed");
                self.retire_leftover(link).await;
                None
            }
            Ok(None) => None,
            Err(e) => {
                warn!(endpoint = %record.id, error = %e, "veth of endpoint not checked");
                None
            }
        };

        // Publish again what was published, on the same host ports.
        let recorded = std::mem::take(&mut record.port_mapping);
        let mut changed = false;
        for binding in recorded {
            let Some(container_ip) = binding.ip else {
                changed = true;
                continue;
            };
            let request = PortBinding {
                ip: None,
                ..binding
            };
            match self
                .ports
                .map(&network.config.bridge_name, container_ip, &[request])
                .await
            {
                Ok(mapped) => record.port_mapping.extend(mapped),
                Err(e) => {
                    warn!(endpoint = %record.id, %binding, error = %e, "published port not restored");
                    changed = true;
                }
            }
        }
        if changed && let Err(e) = self.persistence.put(&record).await {
            warn!(endpoint = %record.id, error = %e, "endpoint record not updated");
        }
        Endpoint {
            record,
            host_link,
            sandbox_link: None,
            removal: None,
            removed: false,
        }
    }

    /// Removes firewall port mappings no stored endpoint owns (left by a crash between
    /// unpublishing and storing).
    async fn remove_stale_port_mappings(&self, endpoints: &[EndpointRecord]) {
        let Some(fw) = self.firewall.clone() else {
            return;
        };
        let owned: HashSet<(IpAddr, u16, u16)> = endpoints
            .iter()
            .flat_map(|e| &e.port_mapping)
            .filter_map(|b| Some((b.ip?, b.port, b.host_port)))
            .collect();
        let stale: Vec<PortMapping> = fw
            .port_mappings()
            .into_iter()
            .filter(|m| !owned.contains(&(m.container_ip, m.container_port, *m.host_ports.start())))
            .collect();
        if stale.is_empty() {
            return;
        }
        let count = stale.len();
        match blocking("remove stale port mappings", move || {
            fw.remove_port_mappings(&stale)
        })
        .await
        {
            Ok(Ok(())) => info!(count, "stale port mappings removed"),
            Ok(Err(e)) => warn!(error = %e, "stale port mappings not removed"),
            Err(e) => warn!(error = %e, "stale port mappings not removed"),
        }
    }

    /// Deletes veths on the driver's bridges that belong to no endpoint.
    async fn remove_stale_veths(&self, snapshot: &setup::HostSnapshot) {
        let bridges: HashSet<u32> = lock(&self.networks)
            .values()
            .map(|n| n.bridge.index)
            .collect();
        // The restore made no veth, so the ports seen before it are all there is. Their kind
        // is not in the snapshot: the few candidates are looked up.
        let links = match &snapshot.ports {
            Some(ports) => {
                let mut links = Vec::new();
                for port in ports.values() {
                    let candidate = port.master.is_some_and(|m| bridges.contains(&m))
                        && port.name.starts_with(netutils::VETH_PREFIX)
                        && !lock(&self.names).contains(&port.name);
                    if !candidate {
                        continue;
                    }
                    match self.host.netlink().link_by_name(&port.name).await {
                        Ok(link) => links.push(link),
                        Err(e) if e.is_not_found() => {}
                        Err(e) => warn!(link = %port.name, error = %e, "stale veth not checked"),
                    }
                }
                links
            }
            None => match self.host.netlink().links().await {
                Ok(links) => links,
                Err(e) => {
                    warn!(error = %e, "links not listed, stale veths not removed");
                    return;
                }
            },
        };
        for link in links {
            let ours = link.master.is_some_and(|m| bridges.contains(&m))
                && link.kind.as_deref() == Some("veth")
                && link.name.starts_with(netutils::VETH_PREFIX);
            if ours && !lock(&self.names).contains(&link.name) {
                debug!(link = %link.name, "stale veth removed");
                self.retire_leftover(link).await;
            }
        }
    }

    /// Retires a leftover veth; failures are only logged (restore goes on).
    async fn retire_leftover(&self, link: Link) {
        if let Err(e) = self.links.retire(&link).await {
            warn!(link = %link.name, error = %e, "leftover veth not removed");
        }
    }
}

/// What a restore reads before it changes anything: the stored networks and endpoints, and
/// what the host has (bridge ports and addresses, read once for every network and endpoint);
/// then the stored networks' bridges, set up while the firewall starts.
#[derive(Debug)]
struct RestoreState {
    /// The stored networks, each with its bridge once [`RestoreState::setup_bridges`] ran
    /// (until then, an error).
    bridges: Vec<(NetworkConfig, Result<setup::BridgeSetup>)>,
    endpoints: Vec<EndpointRecord>,
    snapshot: Arc<setup::HostSnapshot>,
    /// When the restore began.
    started: Instant,
}

impl RestoreState {
    /// Reads the records and the host's state at the same time.
    async fn read(host: &Host, persistence: &Persistence) -> Result<Self> {
        let started = Instant::now();
        let (records, snapshot) = tokio::join!(
            async {
                tokio::try_join!(
                    persistence.list::<NetworkRecord>(NETWORK_PREFIX),
                    persistence.list::<EndpointRecord>(ENDPOINT_PREFIX)
                )
            },
            setup::HostSnapshot::read(host)
        );
        let (networks, endpoints) = records?;
        debug!(
            networks = networks.len(),
            endpoints = endpoints.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "restore: records and host state read"
        );
        Ok(Self {
            bridges: networks
                .into_iter()
                .map(|n| (n.config, Err(Error::Task("set up bridge: not run".into()))))
                .collect(),
            endpoints,
            snapshot: Arc::new(snapshot),
            started,
        })
    }

    /// Undoes the bridge setups (a bridge made now is deleted; a reused one stays as it
    /// was), when the driver does not start after all. Returns the failures.
    async fn undo_bridges(self, host: &Host) -> Vec<Error> {
        let mut failures = Vec::new();
        for (_, bridge) in self.bridges {
            if let Ok(bridge) = bridge {
                failures.extend(bridge.undo.run(host).await);
            }
        }
        failures
    }

    /// Sets up the bridge of every stored network (created again if missing, reused
    /// otherwise), concurrently: they need nothing of the firewall. A bridge whose setup
    /// fails keeps its error, and its network is not restored.
    async fn setup_bridges(&mut self, host: &Host, config: DriverConfig) {
        let mut setting_up = tokio::task::JoinSet::new();
        for (i, (cfg, _)) in self.bridges.iter().enumerate() {
            let (host, cfg, snapshot) = (host.clone(), cfg.clone(), Arc::clone(&self.snapshot));
            setting_up.spawn(async move {
                let bridge = setup::setup_bridge_with(&host, &cfg, &config, Some(&snapshot)).await;
                (i, bridge)
            });
        }
        while let Some(done) = setting_up.join_next().await {
            match done {
                Ok((i, bridge)) => self.bridges[i].1 = bridge,
                Err(e) => warn!(error = %e, "bridge setup did not finish"),
            }
        }
        debug!(
            elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "restore: bridges set up"
        );
    }
}

fn no_endpoint(network_id: &str, endpoint_id: &str) -> Error {
    Error::NoEndpoint {
        network: network_id.to_string(),
        endpoint: endpoint_id.to_string(),
    }
}

#[async_trait]
impl Driver for BridgeDriver {
    fn driver_type(&self) -> &str {
        DRIVER_TYPE
    }

    fn capability(&self) -> Capability {
        Capability {
            data_scope: Scope::Local,
            connectivity_scope: Scope::Local,
        }
    }

    async fn create_network(
        &self,
        request: &CreateNetworkRequest,
    ) -> Result<CreateNetworkResult, driverapi::Error> {
        self.inner.create_network(request).await?;
        Ok(CreateNetworkResult::default())
    }

    async fn delete_network(&self, network_id: &str) -> Result<(), driverapi::Error> {
        Ok(self.inner.delete_network(network_id).await?)
    }

    async fn create_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
        interface: &mut EndpointInterface,
        options: &EndpointOptions,
    ) -> Result<(), driverapi::Error> {
        Ok(self
            .inner
            .create_endpoint(network_id, endpoint_id, interface, options)
            .await?)
    }

    async fn delete_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), driverapi::Error> {
        Ok(self.inner.delete_endpoint(network_id, endpoint_id).await?)
    }

    async fn endpoint_oper_info(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, driverapi::Error> {
        Ok(self
            .inner
            .endpoint_oper_info(network_id, endpoint_id)
            .await?)
    }

    async fn join(
        &self,
        network_id: &str,
        endpoint_id: &str,
        sandbox: &Sandbox,
        _options: &JoinOptions,
    ) -> Result<JoinInfo, driverapi::Error> {
        Ok(self.inner.join(network_id, endpoint_id, sandbox).await?)
    }

    async fn leave(&self, network_id: &str, endpoint_id: &str) -> Result<(), driverapi::Error> {
        Ok(self.inner.leave(network_id, endpoint_id).await?)
    }

    async fn program_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
        options: &EndpointOptions,
    ) -> Result<(), driverapi::Error> {
        Ok(self
            .inner
            .program_external_connectivity(network_id, endpoint_id, options)
            .await?)
    }

    async fn revoke_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), driverapi::Error> {
        Ok(self
            .inner
            .revoke_external_connectivity(network_id, endpoint_id)
            .await?)
    }
}
