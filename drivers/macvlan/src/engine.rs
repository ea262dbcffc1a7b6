//! The engine of the macvlan and ipvlan drivers: [`StackedDriver`], generic over a
//! [`Flavor`] that supplies what differs between the two (link kind and modes, option names,
//! dummy parent prefix, store prefix, MAC handling, L3 routes). libnetwork keeps two copies of
//! this code (`drivers/macvlan`, `drivers/ipvlan`) that differ in those points only.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use libnetwork_datastore::Store;
use libnetwork_driverapi::{
    self as driverapi, Capability, CreateNetworkRequest, CreateNetworkResult, Driver,
    EndpointInterface, EndpointOptions, JoinInfo, JoinInterface, JoinOptions, RouteType, Sandbox,
    Scope, StaticRoute, netlabel,
};
use libnetwork_osl::link_kinds::is_unsupported_link_type;
use libnetwork_osl::{Host, InterfaceOptions, Link, LinkKind, NetlinkHandle, Netns};
use libnetwork_types::MacAddr;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{NetworkConfig, dummy_name, merged_options, parse_vlan_parent, vlan_link_kind};
use crate::error::{Error, Result};
use crate::store::{
    ENDPOINT_PREFIX, EndpointRecord, JoinedInterface, NETWORK_PREFIX, NetworkRecord, Persistence,
};

/// What distinguishes one driver built on [`StackedDriver`] from another.
pub trait Flavor: Send + Sync + fmt::Debug + 'static {
    /// The network's mode settings, parsed from its options and stored with it (its fields
    /// are flattened into the network's JSON).
    type Mode: Clone
        + fmt::Debug
        + PartialEq
        + Eq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// The driver's type name (`macvlan`, `ipvlan`), also the first part of its store keys.
    const DRIVER_TYPE: &'static str;

    /// Prefix of the name of the parent made for a network without one (`dm-`, `di-`).
    const DUMMY_PREFIX: &'static str;

    /// Whether an endpoint's interface has a MAC address of its own (macvlan) or shares its
    /// parent's (ipvlan, which refuses a requested MAC).
    const OWN_MAC: bool;

    /// Parses the mode settings from a network's options (defaults for absent keys).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a value the driver does not know.
    fn parse_mode(options: &BTreeMap<&str, &str>) -> Result<Self::Mode>;

    /// The link an endpoint of a network with `mode` gets on the parent with index `parent`.
    fn link_kind(mode: &Self::Mode, parent: u32) -> LinkKind;

    /// Whether endpoints reach beyond their subnets through default routes on their interface
    /// instead of the subnet's gateway (ipvlan's L3 modes, which have no ARP).
    fn routes_via_interface(mode: &Self::Mode) -> bool;
}

/// The gateways and routes a join reports for an endpoint with `addr`/`addr_v6` on a network
/// (libnetwork's `Join`): nothing for an internal network; default routes on the interface and
/// no gateway service when `via_interface` (ipvlan L3/L3S: `0.0.0.0/0`, and `::/0` for an
/// endpoint with an IPv6 address); otherwise the gateway of the subnet holding each address.
///
/// # Errors
/// [`Error::InvalidEndpointConfig`] when an address is in none of the network's subnets.
pub fn join_routes<M>(
    cfg: &NetworkConfig<M>,
    endpoint: &str,
    addr: Option<IpNet>,
    addr_v6: Option<IpNet>,
    via_interface: bool,
) -> Result<JoinInfo> {
    let mut info = JoinInfo::default();
    if cfg.internal {
        return Ok(info);
    }
    if via_interface {
        info.disable_gateway_service = true;
        let defaults = [
            Some("0.0.0.0/0".parse::<IpNet>().expect("literal")),
            addr_v6.map(|_| "::/0".parse().expect("literal")),
        ];
        info.static_routes = defaults
            .into_iter()
            .flatten()
            .map(|destination| StaticRoute {
                destination,
                route_type: RouteType::Connected,
                next_hop: None,
            })
            .collect();
        return Ok(info);
    }
    let gateway = |address: IpNet, family: &str| -> Result<Option<IpAddr>> {
        let subnet = cfg
            .subnet_of(&address)
            .ok_or_else(|| Error::InvalidEndpointConfig {
                endpoint: endpoint.to_string(),
                reason: format!("could not find a valid {family} subnet for address {address}"),
            })?;
        Ok(subnet.gateway.map(|g| g.addr()))
    };
    if let Some(a) = addr {
        info.gateway = gateway(a, "ipv4")?;
    }
    if let Some(a) = addr_v6 {
        info.gateway_ipv6 = gateway(a, "ipv6")?;
    }
    Ok(info)
}

/// A driver whose endpoints are links stacked on a host parent interface: the macvlan driver
/// ([`crate::MacvlanDriver`]) and the ipvlan driver (in `libnetwork-driver-ipvlan`).
///
/// Cheap to clone (clones share the state). Operations on different endpoints run
/// concurrently, those on one endpoint one after the other, and network creations and
/// deletions one at a time.
pub struct StackedDriver<F: Flavor> {
    inner: Arc<Inner<F>>,
}

impl<F: Flavor> Clone for StackedDriver<F> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<F: Flavor> fmt::Debug for StackedDriver<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackedDriver")
            .field("type", &F::DRIVER_TYPE)
            .field("networks", &lock(&self.inner.networks).len())
            .finish_non_exhaustive()
    }
}

struct Inner<F: Flavor> {
    /// The namespace the parents live in, with its netlink handle.
    host: Host,
    persistence: Persistence,
    /// The networks by id. Never held across an await.
    networks: Mutex<HashMap<String, Arc<Network<F>>>>,
    /// Serialises network creation and deletion.
    network_ops: tokio::sync::Mutex<()>,
    /// Background deletions of interfaces, awaited by [`StackedDriver::settle`].
    background: Mutex<Vec<JoinHandle<()>>>,
}

/// A network and its endpoints.
struct Network<F: Flavor> {
    config: NetworkConfig<F::Mode>,
    /// The endpoints by id. The map's lock is never held across an await; each endpoint's own
    /// lock is held for the whole of an operation on it.
    endpoints: Mutex<HashMap<String, SharedEndpoint<F>>>,
}

/// An endpoint behind the lock held for a whole operation on it.
type SharedEndpoint<F> = Arc<tokio::sync::Mutex<Endpoint<F>>>;

/// An endpoint's state.
struct Endpoint<F: Flavor> {
    /// What is persisted (including where the interface is while joined).
    record: EndpointRecord<F>,
    /// Set when the endpoint was deleted while another operation waited for its lock.
    removed: bool,
}

/// Locks a std mutex, ignoring poisoning (every critical section is a single insert, remove
/// or lookup, so the maps stay consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn no_endpoint(network: &str, endpoint: &str) -> Error {
    Error::NoEndpoint {
        network: network.to_string(),
        endpoint: endpoint.to_string(),
    }
}

impl<F: Flavor> StackedDriver<F> {
    /// Starts the driver in `host`'s namespace and restores every network and endpoint of
    /// `store` (libnetwork's `Init` + `initStore`): a missing parent the driver made (a VLAN
    /// sub-interface, the dummy parent) is made again; records of endpoints whose network is
    /// gone are removed. A network whose parent cannot be made again is kept (joins fail
    /// until the parent is back) and the failure logged. Without a store, nothing persists.
    ///
    /// # Errors
    /// [`Error::Store`] when the store cannot be listed or a record not decoded.
    pub async fn new(host: Host, store: Option<Arc<dyn Store>>) -> Result<Self> {
        let driver = Self {
            inner: Arc::new(Inner {
                host,
                persistence: Persistence::new(store),
                networks: Mutex::default(),
                network_ops: tokio::sync::Mutex::default(),
                background: Mutex::default(),
            }),
        };
        driver.inner.restore().await?;
        info!(
            driver = F::DRIVER_TYPE,
            networks = lock(&driver.inner.networks).len(),
            "driver ready"
        );
        Ok(driver)
    }

    /// Registers the driver under its type name in a registry (libnetwork's `Init`).
    ///
    /// # Errors
    /// As [`driverapi::Registry::register_driver`].
    pub fn register(&self, registry: &driverapi::Registry) -> Result<(), driverapi::Error> {
        registry.register_driver(F::DRIVER_TYPE, Arc::new(self.clone()))
    }

    /// The configuration of a network, if it exists.
    pub fn network_config(&self, network_id: &str) -> Option<NetworkConfig<F::Mode>> {
        lock(&self.inner.networks)
            .get(network_id)
            .map(|n| n.config.clone())
    }

    /// The stored form of an endpoint, if it exists.
    pub async fn endpoint_record(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Option<EndpointRecord<F>> {
        let (_, endpoint) = self.inner.endpoint(network_id, endpoint_id).ok()?;
        let endpoint = endpoint.lock().await;
        (!endpoint.removed).then(|| endpoint.record.clone())
    }

    /// Waits until every interface deletion started in the background (by `leave`,
    /// `delete_endpoint` and `delete_network`) has ended.
    pub async fn settle(&self) {
        loop {
            let pending = std::mem::take(&mut *lock(&self.inner.background));
            if pending.is_empty() {
                return;
            }
            for handle in pending {
                // A panicked deletion has nothing left to wait for.
                let _ = handle.await;
            }
        }
    }
}

impl<F: Flavor> Inner<F> {
    fn network(&self, id: &str) -> Result<Arc<Network<F>>> {
        lock(&self.networks)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoNetwork(id.to_string()))
    }

    fn endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(Arc<Network<F>>, SharedEndpoint<F>)> {
        let network = self.network(network_id)?;
        let endpoint = lock(&network.endpoints)
            .get(endpoint_id)
            .cloned()
            .ok_or_else(|| no_endpoint(network_id, endpoint_id))?;
        Ok((network, endpoint))
    }

    fn endpoint_exists(&self, endpoint_id: &str) -> bool {
        lock(&self.networks)
            .values()
            .any(|n| lock(&n.endpoints).contains_key(endpoint_id))
    }

    // ----- parents -----

    /// Makes sure the network's parent exists (libnetwork's `createNetwork`): an existing
    /// link is used as it is; a missing dummy parent is created (a bridge without ports
    /// stands in where the kernel has no dummy links), a missing `<link>.<vlan id>` is created
    /// as an 802.1Q sub-interface of `<link>`; both are brought up and recorded as made by the
    /// driver. Returns the link made, for the caller to undo.
    async fn ensure_parent(&self, cfg: &mut NetworkConfig<F::Mode>) -> Result<Option<Link>> {
        let nl = self.host.netlink();
        let op = || format!("create network {}", cfg.id);
        match nl.link_by_name(&cfg.parent).await {
            Ok(link) => {
                check_mtu(cfg, &link)?;
                return Ok(None);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Error::kernel(op(), e)),
        }

        if cfg.parent == dummy_name(F::DUMMY_PREFIX, &cfg.id) {
            let link = self.create_isolated_parent(cfg).await?;
            cfg.created_parent = true;
            return Ok(Some(link));
        }

        let (master_name, vlan_id) =
            parse_vlan_parent(&cfg.parent).map_err(|reason| Error::InvalidParent {
                network: cfg.id.clone(),
                parent: cfg.parent.clone(),
                reason,
            })?;
        let vlan_op = || format!("create network {}: create vlan {}", cfg.id, cfg.parent);
        let master = match nl.link_by_name(master_name).await {
            Ok(link) => link,
            Err(e) if e.is_not_found() => {
                return Err(Error::LinkNotFound {
                    op: vlan_op(),
                    name: master_name.to_string(),
                });
            }
            Err(e) => return Err(Error::kernel(vlan_op(), e)),
        };
        check_mtu(cfg, &master)?;
        let kind =
            vlan_link_kind(&cfg.parent, master.index).map_err(|reason| Error::InvalidParent {
                network: cfg.id.clone(),
                parent: cfg.parent.clone(),
                reason,
            })?;
        nl.create_link(&cfg.parent, &kind, None)
            .await
            .map_err(|e| Error::kernel_creating(vlan_op(), Some("vlan"), e))?;
        let vlan = match nl.link_by_name(&cfg.parent).await {
            Ok(link) => link,
            Err(e) => return Err(Error::kernel(vlan_op(), e)),
        };
        if let Err(e) = nl.set_up(&vlan, true).await {
            let undo = nl.delete_link(&vlan).await.err();
            return Err(Error::kernel(vlan_op(), e).with_undo(
                undo.map(|u| Error::kernel("undo: delete vlan", u))
                    .into_iter()
                    .collect(),
            ));
        }
        cfg.created_parent = true;
        info!(network = %cfg.id, parent = %cfg.parent, vlan_id, "vlan sub-interface created");
        Ok(Some(vlan))
    }

    /// Creates the parent of a network without one: a dummy link, as libnetwork does, or a
    /// bridge without ports where the kernel refuses dummy links; with the network's MTU, up.
    async fn create_isolated_parent(&self, cfg: &NetworkConfig<F::Mode>) -> Result<Link> {
        let nl = self.host.netlink();
        let op = || format!("create network {}: create parent {}", cfg.id, cfg.parent);
        let link = match nl.create_dummy(&cfg.parent).await {
            Ok(link) => link,
            Err(e) if is_unsupported_link_type(&e) => {
                info!(
                    network = %cfg.id,
                    parent = %cfg.parent,
                    "the kernel has no dummy links; a bridge without ports is the isolated parent"
                );
                nl.create_bridge(&cfg.parent)
                    .await
                    .map_err(|e| Error::kernel(op(), e))?
            }
            Err(e) => return Err(Error::kernel(op(), e)),
        };
        let configured = async {
            if let Some(mtu) = cfg.mtu() {
                nl.set_mtu(&link, mtu).await?;
            }
            nl.set_up(&link, true).await
        }
        .await;
        if let Err(e) = configured {
            let undo = nl.delete_link(&link).await.err();
            return Err(Error::kernel(op(), e).with_undo(
                undo.map(|u| Error::kernel("undo: delete parent", u))
                    .into_iter()
                    .collect(),
            ));
        }
        debug!(network = %cfg.id, parent = %cfg.parent, kind = ?link.kind, "isolated parent created");
        Ok(link)
    }

    /// Deletes the network's parent if the driver made it and it still looks like what it
    /// made (libnetwork's `delDummyLink`/`delVlanLink`): the dummy parent (or its bridge
    /// stand-in) by its name, a VLAN sub-interface named `<link>.<vlan id>`. Anything else is
    /// left in place.
    async fn delete_parent(&self, cfg: &NetworkConfig<F::Mode>) -> Result<()> {
        if !cfg.created_parent {
            return Ok(());
        }
        let nl = self.host.netlink();
        let op = || format!("delete network {}: delete parent {}", cfg.id, cfg.parent);
        let (link, kind) = match nl.link_kind_by_name(&cfg.parent).await {
            Ok(found) => found,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(Error::kernel(op(), e)),
        };
        let ours = if cfg.parent == dummy_name(F::DUMMY_PREFIX, &cfg.id) {
            matches!(link.kind.as_deref(), Some("dummy" | "bridge"))
        } else {
            parse_vlan_parent(&cfg.parent).is_ok() && matches!(kind, Some(LinkKind::Vlan { .. }))
        };
        if !ours {
            warn!(network = %cfg.id, parent = %cfg.parent, kind = ?link.kind, "parent left in place: it is not the link the driver made");
            return Ok(());
        }
        match nl.delete_link(&link).await {
            Ok(()) => {
                debug!(network = %cfg.id, parent = %cfg.parent, "parent deleted");
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(Error::kernel(op(), e)),
        }
    }

    // ----- networks -----

    async fn create_network(&self, request: &CreateNetworkRequest) -> Result<()> {
        // Everything that can be refused is refused before anything is made.
        let mode = F::parse_mode(&merged_options(request))?;
        let mut cfg = NetworkConfig::from_request(request, F::DUMMY_PREFIX, mode)?;
        let _serial = self.network_ops.lock().await;
        for network in lock(&self.networks).values() {
            if cfg.check_against(&network.config)? {
                // libnetwork's "restoring existing network": the controller asked again for a
                // network the driver has.
                debug!(network = %cfg.id, "network exists on its parent; nothing changed");
                return Ok(());
            }
        }

        let made = self.ensure_parent(&mut cfg).await?;
        if let Err(e) = self
            .persistence
            .put(&NetworkRecord::<F>::new(cfg.clone()))
            .await
        {
            let mut undo = Vec::new();
            if let Some(link) = made
                && let Err(u) = self.host.netlink().delete_link(&link).await
            {
                undo.push(Error::kernel("undo: delete parent", u));
            }
            return Err(e.with_undo(undo));
        }
        info!(network = %cfg.id, parent = %cfg.parent, mode = ?cfg.mode, internal = cfg.internal, "network created");
        let network = Network {
            config: cfg,
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

        // Endpoints still there go with the network, as in libnetwork.
        let endpoints: Vec<_> = lock(&network.endpoints).drain().collect();
        for (_, endpoint) in endpoints {
            let mut endpoint = endpoint.lock().await;
            failures.extend(self.teardown_endpoint(&mut endpoint).await);
        }
        if let Err(e) = self.delete_parent(&network.config).await {
            failures.push(e);
        }
        if let Err(e) = self
            .persistence
            .delete(&NetworkRecord::<F>::new(network.config.clone()))
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
        if endpoint_id.is_empty() {
            return Err(invalid("the endpoint id is empty".into()));
        }
        if self.endpoint_exists(endpoint_id) {
            return Err(Error::EndpointExists(endpoint_id.to_string()));
        }

        // The IPv4 address is required, and each address must be in a subnet of its family.
        let addr = match interface.address {
            Some(IpNet::V4(a)) if cfg.subnet_of(&IpNet::V4(a)).is_some() => a,
            Some(a) => {
                return Err(invalid(format!(
                    "address {a} is in none of the network's IPv4 subnets"
                )));
            }
            None => return Err(invalid("no IPv4 address was given".into())),
        };
        if let Some(a6) = interface.address_ipv6
            && !(a6.addr().is_ipv6() && cfg.subnet_of(&a6).is_some())
        {
            return Err(invalid(format!(
                "address {a6} is in none of the network's IPv6 subnets"
            )));
        }
        let asked_mac = interface.mac.or(options.mac_address);
        let mac = if F::OWN_MAC {
            // The MAC: given, or derived from the IPv4 address (02:42 + its four bytes).
            Some(asked_mac.unwrap_or_else(|| MacAddr::from_ipv4(addr.addr())))
        } else if let Some(mac) = asked_mac {
            return Err(invalid(format!(
                "{} interfaces do not support custom mac address assignment ({mac})",
                F::DRIVER_TYPE
            )));
        } else {
            None
        };
        if !options.port_bindings.is_empty() {
            warn!(
                endpoint = endpoint_id,
                "{} driver does not support port mappings",
                F::DRIVER_TYPE
            );
        }
        if !options.exposed_ports.is_empty() {
            warn!(
                endpoint = endpoint_id,
                "{} driver does not support port exposures",
                F::DRIVER_TYPE
            );
        }

        let record = EndpointRecord::<F>::new(
            endpoint_id,
            network_id,
            mac,
            Some(IpNet::V4(addr)),
            interface.address_ipv6,
        );
        let endpoint = Arc::new(tokio::sync::Mutex::new(Endpoint {
            record: record.clone(),
            removed: false,
        }));
        // Locked before it becomes visible, so no one uses it before it is stored.
        let mut guard = Arc::clone(&endpoint).lock_owned().await;
        let inserted = {
            let mut endpoints = lock(&network.endpoints);
            if endpoints.contains_key(endpoint_id) {
                false
            } else {
                endpoints.insert(endpoint_id.to_string(), endpoint);
                true
            }
        };
        if !inserted {
            return Err(Error::EndpointExists(endpoint_id.to_string()));
        }
        if !lock(&self.networks).contains_key(network_id) {
            // The network was deleted meanwhile.
            lock(&network.endpoints).remove(endpoint_id);
            return Err(Error::NoNetwork(network_id.to_string()));
        }
        if let Err(e) = self.persistence.put(&record).await {
            guard.removed = true;
            lock(&network.endpoints).remove(endpoint_id);
            return Err(e);
        }
        drop(guard);

        if interface.mac.is_none() {
            interface.mac = mac;
        }
        debug!(network = network_id, endpoint = endpoint_id, ?mac, %addr, "endpoint created");
        Ok(())
    }

    /// Removes an endpoint's interface (if joined) and its record. Best effort; returns the
    /// failures.
    async fn teardown_endpoint(&self, endpoint: &mut Endpoint<F>) -> Vec<Error> {
        let mut failures = Vec::new();
        if let Some(joined) = endpoint.record.joined.take()
            && let Err(e) = self.remove_interface(&endpoint.record.id, &joined).await
        {
            failures.push(e);
        }
        if let Err(e) = self.persistence.delete(&endpoint.record).await {
            failures.push(e);
        }
        endpoint.removed = true;
        failures
    }

    async fn delete_endpoint(&self, network_id: &str, endpoint_id: &str) -> Result<()> {
        let (network, endpoint) = self.endpoint(network_id, endpoint_id)?;
        let mut endpoint = endpoint.lock().await;
        if endpoint.removed {
            return Err(no_endpoint(network_id, endpoint_id));
        }
        let failures = self.teardown_endpoint(&mut endpoint).await;
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
        Ok(endpoint
            .record
            .mac
            .map(|mac| {
                (
                    netlabel::MAC_ADDRESS.to_string(),
                    serde_json::Value::String(mac.to_string()),
                )
            })
            .into_iter()
            .collect())
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
        if let Some(joined) = &endpoint.record.joined {
            if self.interface_exists(joined).await {
                return Err(Error::AlreadyJoined(endpoint_id.to_string()));
            }
            // The sandbox went away (with the interface) without a leave.
            debug!(endpoint = endpoint_id, key = %joined.key.display(), "stale join forgotten");
        }
        let cfg = &network.config;
        let record = &endpoint.record;
        let op = || format!("join endpoint {endpoint_id}");
        // Checked before anything is made.
        let info = join_routes(
            cfg,
            endpoint_id,
            record.addr,
            record.addr_v6,
            F::routes_via_interface(&cfg.mode),
        )?;

        let parent = match self.host.netlink().link_by_name(&cfg.parent).await {
            Ok(link) => link,
            Err(e) if e.is_not_found() => {
                return Err(Error::LinkNotFound {
                    op: op(),
                    name: cfg.parent.clone(),
                });
            }
            Err(e) => return Err(Error::kernel(op(), e)),
        };
        // The interface is born inside the sandbox, configured there.
        let kind = F::link_kind(&cfg.mode, parent.index);
        let opts = InterfaceOptions {
            mac: record.mac,
            mtu: cfg.mtu(),
            addresses: record.addr.into_iter().chain(record.addr_v6).collect(),
            ..InterfaceOptions::default()
        };
        let mut retries = STALE_INTERFACE_RETRY_DELAYS.iter();
        let link = loop {
            let err = match sandbox
                .create_interface(&kind, cfg.container_prefix(), &opts)
                .await
            {
                Ok(link) => break link,
                Err(e) => e,
            };
            // The kernel tears a destroyed namespace down in the background; until it is
            // done, an interface that was in it keeps its MAC (and, for ipvlan, its
            // addresses) taken on the parent. A genuine clash fails after the retries.
            match retries.next() {
                Some(delay) if address_in_use(&err) => {
                    debug!(
                        endpoint = endpoint_id,
                        ?delay,
                        "the previous interface may still be being torn down; retrying"
                    );
                    tokio::time::sleep(*delay).await;
                }
                _ => {
                    return Err(Error::kernel_creating(
                        format!(
                            "{}: create {} interface on {}",
                            op(),
                            kind.name(),
                            cfg.parent
                        ),
                        Some(kind.name()),
                        err,
                    ));
                }
            }
        };

        let mut joined_record = record.clone();
        joined_record.src_name = link.name.clone();
        joined_record.joined = Some(JoinedInterface {
            key: sandbox.key().to_path_buf(),
            netns_inode: sandbox.netns().inode(),
            index: link.index,
            name: link.name.clone(),
        });
        if let Err(e) = self.persistence.put(&joined_record).await {
            let undo = sandbox
                .netlink()
                .delete_link(&link)
                .await
                .err()
                .map(|u| Error::kernel("undo: delete interface", u));
            return Err(e.with_undo(undo.into_iter().collect()));
        }
        endpoint.record = joined_record;
        debug!(network = network_id, endpoint = endpoint_id, interface = %link.name, kind = kind.name(), "endpoint joined");
        Ok(JoinInfo {
            interface: Some(JoinInterface::InSandbox { name: link.name }),
            ..info
        })
    }

    async fn leave(&self, network_id: &str, endpoint_id: &str) -> Result<()> {
        let (_, endpoint) = self.endpoint(network_id, endpoint_id)?;
        let mut endpoint = endpoint.lock().await;
        if endpoint.removed {
            return Err(no_endpoint(network_id, endpoint_id));
        }
        let Some(joined) = endpoint.record.joined.clone() else {
            return Err(Error::NotJoined(endpoint_id.to_string()));
        };
        self.remove_interface(endpoint_id, &joined).await?;
        let mut record = endpoint.record.clone();
        record.joined = None;
        record.src_name.clear();
        // Should this fail, the interface is gone already and a second leave finds nothing to
        // remove and stores again.
        self.persistence.put(&record).await?;
        endpoint.record = record;
        debug!(
            network = network_id,
            endpoint = endpoint_id,
            "endpoint left"
        );
        Ok(())
    }

    /// Opens the namespace a joined interface lives in, if it is still the namespace the
    /// interface was created in.
    async fn open_sandbox_of(&self, joined: &JoinedInterface) -> Result<Option<NetlinkHandle>> {
        let op = || format!("open sandbox {}", joined.key.display());
        let netns = match Netns::open(&joined.key) {
            Ok(ns) if ns.inode() == joined.netns_inode => ns,
            // Another namespace is bound to the key now; ours went with the interface.
            Ok(_) => return Ok(None),
            // The sandbox was destroyed: the kernel deleted the interface with it.
            Err(e) if e.is_not_found() || e.kind() == libnetwork_types::ErrorKind::BadRequest => {
                return Ok(None);
            }
            Err(e) => return Err(Error::kernel(op(), e)),
        };
        let label = format!("sandbox {}", joined.key.display());
        NetlinkHandle::open(&netns, label)
            .await
            .map(Some)
            .map_err(|e| Error::kernel(op(), e))
    }

    /// The joined interface, if it still exists where it was made.
    async fn find_interface(
        &self,
        joined: &JoinedInterface,
    ) -> Result<Option<(NetlinkHandle, Link)>> {
        let Some(nl) = self.open_sandbox_of(joined).await? else {
            return Ok(None);
        };
        match nl.link_by_index(joined.index).await {
            Ok(link) if link.name == joined.name => Ok(Some((nl, link))),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Error::kernel(
                format!(
                    "find interface {} in sandbox {}",
                    joined.name,
                    joined.key.display()
                ),
                e,
            )),
        }
    }

    /// Whether a joined interface still exists; an error to look is taken as "it exists", so
    /// that a join is refused rather than made twice.
    async fn interface_exists(&self, joined: &JoinedInterface) -> bool {
        self.find_interface(joined)
            .await
            .map_or(true, |found| found.is_some())
    }

    /// Takes a joined interface out of service now (down) and deletes it in the background:
    /// the kernel takes 17 to 43 ms to delete a link. Nothing to do when its sandbox is gone.
    async fn remove_interface(&self, endpoint_id: &str, joined: &JoinedInterface) -> Result<()> {
        let Some((nl, link)) = self.find_interface(joined).await? else {
            debug!(endpoint = endpoint_id, interface = %joined.name, "interface already gone");
            return Ok(());
        };
        match nl.set_up(&link, false).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => {
                return Err(Error::kernel(
                    format!("leave endpoint {endpoint_id}: take down {}", link.name),
                    e,
                ));
            }
        }
        let task = tokio::spawn(async move {
            match nl.delete_link(&link).await {
                Ok(()) => debug!(interface = %link.name, "interface deleted"),
                Err(e) if e.is_not_found() => {
                    debug!(interface = %link.name, "interface already gone")
                }
                // Not returned to anyone: the caller has moved on. The interface is down; it
                // goes with its sandbox at the latest.
                Err(e) => {
                    warn!(interface = %link.name, error = %e, "background interface deletion failed")
                }
            }
        });
        let mut background = lock(&self.background);
        background.retain(|h| !h.is_finished());
        background.push(task);
        Ok(())
    }

    // ----- restore -----

    async fn restore(&self) -> Result<()> {
        let networks: Vec<NetworkRecord<F>> = self
            .persistence
            .list([F::DRIVER_TYPE, NETWORK_PREFIX])
            .await?;
        let endpoints: Vec<EndpointRecord<F>> = self
            .persistence
            .list([F::DRIVER_TYPE, ENDPOINT_PREFIX])
            .await?;
        for record in networks {
            let mut cfg = record.config;
            let before = cfg.created_parent;
            match self.ensure_parent(&mut cfg).await {
                Ok(Some(_)) if !before => {
                    if let Err(e) = self
                        .persistence
                        .put(&NetworkRecord::<F>::new(cfg.clone()))
                        .await
                    {
                        warn!(network = %cfg.id, error = %e, "network record not updated");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(network = %cfg.id, parent = %cfg.parent, error = %e, "parent interface not restored; joins fail until it is back")
                }
            }
            debug!(network = %cfg.id, parent = %cfg.parent, "network restored");
            let network = Network {
                config: cfg,
                endpoints: Mutex::default(),
            };
            lock(&self.networks).insert(network.config.id.clone(), Arc::new(network));
        }
        for record in endpoints {
            let Ok(network) = self.network(&record.nid) else {
                warn!(endpoint = %record.id, network = %record.nid, "record of an endpoint of an unknown network removed");
                if let Err(e) = self.persistence.delete(&record).await {
                    warn!(endpoint = %record.id, error = %e, "stale endpoint record not removed");
                }
                continue;
            };
            let endpoint = Endpoint {
                record,
                removed: false,
            };
            lock(&network.endpoints).insert(
                endpoint.record.id.clone(),
                Arc::new(tokio::sync::Mutex::new(endpoint)),
            );
        }
        Ok(())
    }
}

/// How long a join waits, try after try, for the kernel to finish tearing down the
/// namespace of an endpoint's previous interface (about 1.3 s in all).
const STALE_INTERFACE_RETRY_DELAYS: [Duration; 7] = [
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(80),
    Duration::from_millis(160),
    Duration::from_millis(320),
    Duration::from_millis(640),
];

/// Whether the kernel said an address (MAC or IP) is taken on the parent.
fn address_in_use(e: &libnetwork_osl::Error) -> bool {
    e.raw_os_error().is_some_and(|code| {
        std::io::Error::from_raw_os_error(code).kind() == std::io::ErrorKind::AddrInUse
    })
}

/// Refuses an MTU above the parent's, which the kernel would refuse at every join.
fn check_mtu<M>(cfg: &NetworkConfig<M>, parent: &Link) -> Result<()> {
    match cfg.mtu() {
        Some(mtu) if parent.mtu > 0 && mtu > parent.mtu => Err(Error::MtuAboveParent {
            network: cfg.id.clone(),
            mtu,
            parent: parent.name.clone(),
            parent_mtu: parent.mtu,
        }),
        _ => Ok(()),
    }
}

#[async_trait]
impl<F: Flavor> Driver for StackedDriver<F> {
    fn driver_type(&self) -> &str {
        F::DRIVER_TYPE
    }

    /// Local data scope, global connectivity scope (libnetwork's table in §14: the networks
    /// reach other hosts through the parent's wire, their state is per host).
    fn capability(&self) -> Capability {
        Capability {
            data_scope: Scope::Local,
            connectivity_scope: Scope::Global,
        }
    }

    async fn create_network(
        &self,
        request: &CreateNetworkRequest,
    ) -> Result<CreateNetworkResult, driverapi::Error> {
        self.inner
            .create_network(request)
            .await
            .map_err(|e| e.into_driverapi(F::DRIVER_TYPE))?;
        Ok(CreateNetworkResult::default())
    }

    async fn delete_network(&self, network_id: &str) -> Result<(), driverapi::Error> {
        self.inner
            .delete_network(network_id)
            .await
            .map_err(|e| e.into_driverapi(F::DRIVER_TYPE))
    }

    async fn create_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
        interface: &mut EndpointInterface,
        options: &EndpointOptions,
    ) -> Result<(), driverapi::Error> {
        self.inner
            .create_endpoint(network_id, endpoint_id, interface, options)
            .await
            .map_err(|e| e.into_driverapi(F::DRIVER_TYPE))
    }

    async fn delete_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), driverapi::Error> {
        self.inner
            .delete_endpoint(network_id, endpoint_id)
            .await
            .map_err(|e| e.into_driverapi(F::DRIVER_TYPE))
    }

    async fn endpoint_oper_info(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, driverapi::Error> {
        self.inner
            .endpoint_oper_info(network_id, endpoint_id)
            .await
            .map_err(|e| e.into_driverapi(F::DRIVER_TYPE))
    }

    async fn join(
        &self,
        network_id: &str,
        endpoint_id: &str,
        sandbox: &Sandbox,
        _options: &JoinOptions,
    ) -> Result<JoinInfo, driverapi::Error> {
        self.inner
            .join(network_id, endpoint_id, sandbox)
            .await
            .map_err(|e| e.into_driverapi(F::DRIVER_TYPE))
    }

    async fn leave(&self, network_id: &str, endpoint_id: &str) -> Result<(), driverapi::Error> {
        self.inner
            .leave(network_id, endpoint_id)
            .await
            .map_err(|e| e.into_driverapi(F::DRIVER_TYPE))
    }

    /// Nothing to do: these networks publish no ports (libnetwork only warns about them at
    /// endpoint creation).
    async fn program_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
        _options: &EndpointOptions,
    ) -> Result<(), driverapi::Error> {
        self.inner
            .endpoint(network_id, endpoint_id)
            .map(|_| ())
            .map_err(|e| e.into_driverapi(F::DRIVER_TYPE))
    }

    /// Nothing to do; see [`Driver::program_external_connectivity`].
    async fn revoke_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), driverapi::Error> {
        self.inner
            .endpoint(network_id, endpoint_id)
            .map(|_| ())
            .map_err(|e| e.into_driverapi(F::DRIVER_TYPE))
    }
}

#[cfg(test)]
mod tests {
    use libnetwork_driverapi::{IpamData, NetworkOptions};
    use libnetwork_types::ErrorKind;

    use super::*;
    use crate::config::PARENT_OPTION;

    fn config(internal: bool, v6: bool) -> NetworkConfig<()> {
        let pool = |p: &str, g: &str| IpamData {
            address_space: "LocalDefault".into(),
            pool: p.parse().unwrap(),
            gateway: Some(g.parse().unwrap()),
            aux_addresses: BTreeMap::new(),
        };
        let request = CreateNetworkRequest {
            network_id: "n1".into(),
            options: NetworkOptions {
                driver_options: [(PARENT_OPTION.to_string(), "eth0".to_string())].into(),
                internal,
                ..NetworkOptions::default()
            },
            ipv4: vec![
                pool("10.1.0.0/24", "10.1.0.1/24"),
                pool("10.2.0.0/16", "10.2.0.254/16"),
            ],
            ipv6: if v6 {
                vec![pool("fd00:9::/64", "fd00:9::1/64")]
            } else {
                Vec::new()
            },
        };
        NetworkConfig::from_request(&request, "dm-", ()).unwrap()
    }

    fn net(s: &str) -> Option<IpNet> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn join_reports_the_gateway_of_the_subnet_holding_each_address() {
        let cfg = config(false, true);
        let info = join_routes(&cfg, "e", net("10.2.3.4/16"), net("fd00:9::5/64"), false).unwrap();
        assert_eq!(info.gateway, Some("10.2.0.254".parse().unwrap()));
        assert_eq!(info.gateway_ipv6, Some("fd00:9::1".parse().unwrap()));
        assert!(info.static_routes.is_empty() && !info.disable_gateway_service);
        let info = join_routes(&cfg, "e", net("10.1.0.9/24"), None, false).unwrap();
        assert_eq!(info.gateway, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(info.gateway_ipv6, None);
    }

    #[test]
    fn join_on_an_internal_network_reports_no_gateway_and_no_route() {
        let cfg = config(true, true);
        for via_interface in [false, true] {
            let info = join_routes(
                &cfg,
                "e",
                net("10.1.0.9/24"),
                net("fd00:9::5/64"),
                via_interface,
            )
            .unwrap();
            assert_eq!(info, JoinInfo::default());
        }
    }

    #[test]
    fn join_through_the_interface_adds_connected_default_routes_and_no_gateway() {
        let cfg = config(false, true);
        let info = join_routes(&cfg, "e", net("10.1.0.9/24"), None, true).unwrap();
        assert!(info.disable_gateway_service);
        assert_eq!((info.gateway, info.gateway_ipv6), (None, None));
        assert_eq!(
            info.static_routes,
            vec![StaticRoute {
                destination: "0.0.0.0/0".parse().unwrap(),
                route_type: RouteType::Connected,
                next_hop: None,
            }]
        );
        // With an IPv6 address, an IPv6 default route too.
        let info = join_routes(&cfg, "e", net("10.1.0.9/24"), net("fd00:9::5/64"), true).unwrap();
        let destinations: Vec<String> = info
            .static_routes
            .iter()
            .map(|r| r.destination.to_string())
            .collect();
        assert_eq!(destinations, ["0.0.0.0/0", "::/0"]);
    }

    #[test]
    fn join_of_an_address_outside_every_subnet_is_refused() {
        let cfg = config(false, false);
        let err = join_routes(&cfg, "e7", net("192.168.0.2/24"), None, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert_eq!(
            err.to_string(),
            "create endpoint e7: could not find a valid ipv4 subnet for address 192.168.0.2/24"
        );
        // Same pool, other prefix length: not that subnet either.
        assert!(join_routes(&cfg, "e", net("10.1.0.9/16"), None, false).is_err());
    }
}
