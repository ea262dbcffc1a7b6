//! Networks: creation rules, IPAM allocation, deletion and the [`Network`] handle
//! (libnetwork's `network.go`, `endpoint_cnt.go`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use libnetwork_driverapi::{CreateNetworkRequest, Driver, IpamData};
use libnetwork_ipamapi::{GATEWAY_ADDRESS_TYPE, Ipam, Options, REQUEST_ADDRESS_TYPE};
use libnetwork_types::ErrorKind;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::controller::{Batch, Inner, blocking, lock, random_id};
use crate::endpoint::{Endpoint, EndpointEntry, EndpointOptions};
use crate::error::{Error, Result};
use crate::netlabel;
use crate::records::{EndpointCount, IpamConf, IpamInfo, NetworkRecord, now_rfc3339};

/// The network type of the host driver.
pub(crate) const HOST_TYPE: &str = "host";
/// The network type of the null driver.
pub(crate) const NULL_TYPE: &str = "null";
/// Name of the predefined host network.
pub const HOST_NETWORK: &str = "host";
/// Name of the predefined null network.
pub const NONE_NETWORK: &str = "none";

/// How a network gets its addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamOptions {
    /// The IPAM driver; empty means `default`.
    pub driver: String,
    /// IPv4 configurations; none means one pool picked by the driver.
    pub v4: Vec<IpamConf>,
    /// IPv6 configurations (used when IPv6 is enabled); none means one pool picked by the
    /// driver.
    pub v6: Vec<IpamConf>,
    /// Options for the IPAM driver.
    pub options: BTreeMap<String, String>,
}

/// Options of [`crate::Controller::new_network`] (libnetwork's `NetworkOption*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkOptions {
    /// An explicit id; `None` gives a random one (64 hex characters).
    pub id: Option<String>,
    /// IPAM driver and configurations.
    pub ipam: IpamOptions,
    /// Give the network IPv6 addresses (`com.docker.network.enable_ipv6`).
    pub enable_ipv6: bool,
    /// No traffic to or from outside the network (`com.docker.network.internal`).
    pub internal: bool,
    /// Containers may attach to it manually (swarm networks).
    pub attachable: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options (stored under `com.docker.network.generic`), e.g.
    /// `com.docker.network.bridge.name`.
    pub driver_options: BTreeMap<String, String>,
    /// `local`, `global` or `swarm`; `None` takes the driver's data scope.
    pub scope: Option<String>,
    /// A configuration-only network: stored, never given to a driver; other networks take
    /// their configuration from it with [`NetworkOptions::config_from`].
    pub config_only: bool,
    /// The name of a configuration-only network to take IPv6, labels, IPAM and driver options
    /// from.
    pub config_from: Option<String>,
    /// Whether the network is persisted (libnetwork's `NetworkOptionPersist`).
    pub persist: bool,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        Self {
            id: None,
            ipam: IpamOptions::default(),
            enable_ipv6: false,
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            driver_options: BTreeMap::new(),
            scope: None,
            config_only: false,
            config_from: None,
            persist: true,
        }
    }
}

/// A snapshot of a network's settings (libnetwork's `NetworkInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The id.
    pub id: String,
    /// The name.
    pub name: String,
    /// The driver type.
    pub network_type: String,
    /// `local`, `global` or `swarm`.
    pub scope: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub driver_options: BTreeMap<String, String>,
    /// The IPAM driver.
    pub ipam_driver: String,
    /// IPAM driver options.
    pub ipam_options: BTreeMap<String, String>,
    /// IPv4 configurations as asked for.
    pub ipv4_config: Vec<IpamConf>,
    /// IPv6 configurations as asked for.
    pub ipv6_config: Vec<IpamConf>,
    /// IPv4 pools as allocated.
    pub ipv4_info: Vec<IpamInfo>,
    /// IPv6 pools as allocated.
    pub ipv6_info: Vec<IpamInfo>,
    /// IPv6 enabled.
    pub enable_ipv6: bool,
    /// Internal network.
    pub internal: bool,
    /// Attachable.
    pub attachable: bool,
    /// Configuration-only network.
    pub config_only: bool,
    /// The configuration network it was made from.
    pub config_from: Option<String>,
}

/// A network in the controller.
pub(crate) struct NetworkEntry {
    pub(crate) id: String,
    record: Mutex<NetworkRecord>,
    /// Serialises endpoint creation and deletion and the network's deletion.
    pub(crate) ops: tokio::sync::Mutex<()>,
    endpoints: Mutex<BTreeMap<String, Arc<EndpointEntry>>>,
}

impl NetworkEntry {
    pub(crate) fn new(record: NetworkRecord) -> Self {
        Self {
            id: record.id.clone(),
            record: Mutex::new(record),
            ops: tokio::sync::Mutex::new(()),
            endpoints: Mutex::new(BTreeMap::new()),
        }
    }

    /// A copy of the record.
    pub(crate) fn record(&self) -> NetworkRecord {
        lock(&self.record).clone()
    }

    /// Changes the record in memory.
    pub(crate) fn update(&self, f: impl FnOnce(&mut NetworkRecord)) -> NetworkRecord {
        let mut r = lock(&self.record);
        f(&mut r);
        r.clone()
    }

    pub(crate) fn name(&self) -> String {
        lock(&self.record).name.clone()
    }

    pub(crate) fn network_type(&self) -> String {
        lock(&self.record).network_type.clone()
    }

    /// Neither being created nor being deleted.
    pub(crate) fn is_visible(&self) -> bool {
        let r = lock(&self.record);
        !r.in_create && !r.in_delete
    }

    /// Whether the driver is host or null (no IPAM, no interfaces).
    pub(crate) fn has_special_driver(&self) -> bool {
        let r = lock(&self.record);
        !r.config_only && (r.network_type == HOST_TYPE || r.network_type == NULL_TYPE)
    }

    /// Every endpoint entry, including those being created or deleted.
    pub(crate) fn endpoint_entries(&self) -> Vec<Arc<EndpointEntry>> {
        lock(&self.endpoints).values().cloned().collect()
    }

    /// The endpoint entry with id `id`, whatever its state.
    pub(crate) fn endpoint_entry(&self, id: &str) -> Option<Arc<EndpointEntry>> {
        lock(&self.endpoints).get(id).cloned()
    }

    pub(crate) fn insert_endpoint(&self, entry: Arc<EndpointEntry>) {
        lock(&self.endpoints).insert(entry.id.clone(), entry);
    }

    pub(crate) fn remove_endpoint(&self, id: &str) {
        lock(&self.endpoints).remove(id);
    }

    /// The endpoint count object with the number of endpoints that are not being created.
    pub(crate) fn endpoint_count(&self) -> EndpointCount {
        let count = lock(&self.endpoints)
            .values()
            .filter(|e| e.is_ready())
            .count() as u64;
        let r = lock(&self.record);
        EndpointCount {
            count,
            nid: r.id.clone(),
            scope: r.scope.clone(),
            persist: r.persist,
            index: 0,
            exists: false,
        }
    }
}

/// A network (libnetwork's `Network`): a cheap handle on the controller's object.
#[derive(Clone)]
pub struct Network {
    pub(crate) ctrl: Arc<Inner>,
    pub(crate) entry: Arc<NetworkEntry>,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("id", &self.entry.id)
            .field("name", &self.entry.name())
            .finish_non_exhaustive()
    }
}

impl Network {
    pub(crate) fn from_entry(ctrl: Arc<Inner>, entry: Arc<NetworkEntry>) -> Self {
        Self { ctrl, entry }
    }

    /// The network's id.
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// The network's name.
    pub fn name(&self) -> String {
        self.entry.name()
    }

    /// The driver type (`bridge`, `host`, `null`).
    pub fn network_type(&self) -> String {
        self.entry.network_type()
    }

    /// A snapshot of the network's settings.
    pub fn info(&self) -> NetworkInfo {
        let r = self.entry.record();
        NetworkInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            network_type: r.network_type.clone(),
            scope: r.scope.clone(),
            created: r.created.clone(),
            labels: r.labels.clone(),
            driver_options: r.driver_options(),
            ipam_driver: r.ipam_type.clone(),
            ipam_options: r.ipam_options.clone(),
            ipv4_config: r.ipam_v4_config.clone(),
            ipv6_config: r.ipam_v6_config.clone(),
            ipv4_info: r.ipam_v4_info.clone(),
            ipv6_info: r.ipam_v6_info.clone(),
            enable_ipv6: r.enable_ipv6,
            internal: r.internal,
            attachable: r.attachable,
            config_only: r.config_only,
            config_from: (!r.config_from.is_empty()).then(|| r.config_from.clone()),
        }
    }

    /// Creates an endpoint on the network (libnetwork's `CreateEndpoint`): addresses from
    /// IPAM, then the driver's interface; see [`EndpointOptions`].
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::Forbidden`] for a taken name or a configuration-only
    /// network, [`Error::BadRequest`] for an address outside the network's pools,
    /// [`Error::NoAvailableAddress`], and the wrapped errors of IPAM, the driver and the
    /// store. Nothing is left behind on error.
    pub async fn create_endpoint(&self, name: &str, options: EndpointOptions) -> Result<Endpoint> {
        crate::endpoint::create(&self.ctrl, &self.entry, name, options).await
    }

    /// Deletes the network (libnetwork's `Delete`).
    ///
    /// # Errors
    /// [`Error::NoSuchNetwork`] when it is gone, [`Error::ActiveEndpoints`] while it has
    /// endpoints, [`Error::Forbidden`] for the predefined networks and configuration networks
    /// in use, [`Error::Teardown`] when some cleanup steps failed (the network is gone from
    /// the controller; a restart retries the rest).
    pub async fn delete(&self) -> Result<()> {
        delete(&self.ctrl, &self.entry).await
    }

    /// The network's endpoints, in id order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.entry
            .endpoint_entries()
            .into_iter()
            .filter(|e| e.is_ready())
            .map(|e| Endpoint::from_entries(self.ctrl.clone(), self.entry.clone(), e))
            .collect()
    }

    /// Calls `f` on each endpoint until it breaks.
    pub fn walk_endpoints(&self, mut f: impl FnMut(&Endpoint) -> ControlFlow<()>) {
        for ep in self.endpoints() {
            if f(&ep).is_break() {
                return;
            }
        }
    }

    /// The endpoint named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty name, [`Error::NoSuchEndpoint`].
    pub fn endpoint_by_name(&self, name: &str) -> Result<Endpoint> {
        if name.is_empty() {
            return Err(Error::InvalidName("find endpoint"));
        }
        self.endpoints()
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| Error::NoSuchEndpoint(name.to_owned()))
    }

    /// The endpoint with id `id`.
    ///
    /// # Errors
    /// [`Error::InvalidId`] for an empty id, [`Error::NoSuchEndpoint`].
    pub fn endpoint_by_id(&self, id: &str) -> Result<Endpoint> {
        if id.is_empty() {
            return Err(Error::InvalidId {
                op: "find endpoint",
                id: String::new(),
            });
        }
        self.endpoints()
            .into_iter()
            .find(|e| e.id() == id)
            .ok_or_else(|| Error::NoSuchEndpoint(id.to_owned()))
    }
}

/// Whether an id can be used in store keys and interface names.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && !id.contains('/')
        && !id.chars().any(char::is_whitespace)
        && id != "."
        && id != ".."
}

/// Checks the configuration-only rules (libnetwork's `validateConfiguration`).
fn validate_config_rules(options: &NetworkOptions) -> Result<()> {
    let op = "create network";
    if options.config_only && (options.internal || options.attachable || options.scope.is_some()) {
        return Err(Error::forbidden(
            op,
            "configuration network can only contain network specific fields; network operator \
             fields like internal, attachable and scope are not supported",
        ));
    }
    if options.config_from.is_some() {
        if options.config_only {
            return Err(Error::forbidden(
                op,
                "a configuration network cannot depend on another configuration network",
            ));
        }
        let ipam = &options.ipam;
        let custom_ipam =
            !ipam.driver.is_empty() && ipam.driver != libnetwork_ipamapi::DEFAULT_IPAM;
        if custom_ipam
            || options.enable_ipv6
            || !options.labels.is_empty()
            || !ipam.options.is_empty()
            || !ipam.v4.is_empty()
            || !ipam.v6.is_empty()
        {
            return Err(Error::forbidden(
                op,
                "user specified configurations are not supported if the network depends on a \
                 configuration network",
            ));
        }
        if !options.driver_options.is_empty() {
            return Err(Error::forbidden(
                op,
                "network driver options are not supported if the network depends on a \
                 configuration network",
            ));
        }
    }
    Ok(())
}

/// Creates a network; see [`crate::Controller::new_network`].
pub(crate) async fn create(
    inner: &Arc<Inner>,
    network_type: &str,
    name: &str,
    options: NetworkOptions,
) -> Result<Network> {
    if name.trim().is_empty() {
        return Err(Error::InvalidName("create network"));
    }
    let id = match &options.id {
        Some(id) if !valid_id(id) => {
            return Err(Error::InvalidId {
                op: "create network",
                id: id.clone(),
            });
        }
        Some(id) => id.clone(),
        None => random_id(),
    };
    let span = info_span!("create_network", network_id = %id, network_name = name, network_type);
    create_inner(inner, network_type, name, id, options)
        .instrument(span)
        .await
}

async fn create_inner(
    inner: &Arc<Inner>,
    network_type: &str,
    name: &str,
    id: String,
    mut options: NetworkOptions,
) -> Result<Network> {
    validate_config_rules(&options)?;
    let op = format!("create network {name}");

    // The configuration network, if any, gives IPv6, labels, IPAM and driver options.
    if let Some(from) = &options.config_from {
        let config_net = inner
            .visible_networks()
            .into_iter()
            .find(|n| &n.name() == from)
            .ok_or_else(|| Error::NoSuchNetwork(from.clone()))?;
        let c = config_net.entry.record();
        if !c.config_only {
            return Err(Error::forbidden(
                &op,
                format!("network {from} is not a configuration network"),
            ));
        }
        options.enable_ipv6 = c.enable_ipv6;
        options.labels = c.labels.clone();
        options.ipam.driver = c.ipam_type.clone();
        options.ipam.options = c.ipam_options.clone();
        options.ipam.v4 = c.ipam_v4_config.clone();
        options.ipam.v6 = c.ipam_v6_config.clone();
        options.driver_options = c.driver_options();
    }

    let network_type = if options.config_only {
        NULL_TYPE
    } else {
        network_type
    };
    let ipam_type = if options.ipam.driver.is_empty() {
        libnetwork_ipamapi::DEFAULT_IPAM.to_owned()
    } else {
        options.ipam.driver.clone()
    };

    // The driver and the scope.
    let driver = if options.config_only {
        None
    } else {
        // Not registered: the plugin of that name, loaded now (libnetwork's `loadDriver`).
        Some(inner.network_driver(network_type, &op).await?)
    };
    let scope = match (&options.scope, &driver) {
        (_, None) => "local".to_owned(),
        (Some(s), Some(d)) => {
            if !matches!(s.as_str(), "local" | "global" | "swarm") {
                return Err(Error::bad_request(
                    &op,
                    format!("invalid scope {s:?} (want local, global or swarm)"),
                ));
            }
            if s == "local" && d.capability.data_scope == libnetwork_datastore::Scope::Global {
                return Err(Error::forbidden(
                    &op,
                    format!("cannot downgrade network scope for {network_type} networks"),
                ));
            }
            s.clone()
        }
        (None, Some(d)) => d.capability.data_scope.as_str().to_owned(),
    };
    if options.persist {
        inner.store_for(&scope, &op)?;
    }
    let special = network_type == HOST_TYPE || network_type == NULL_TYPE;
    let ipam = if options.config_only || special {
        None
    } else {
        Some(inner.ipam_driver(&ipam_type, &op).await?)
    };

    let mut record: NetworkRecord = serde_json::from_value(serde_json::json!({
        "name": name, "id": id, "networkType": network_type,
    }))
    .map_err(|e| Error::Internal(format!("{op}: build record: {e}")))?;
    record.created = now_rfc3339();
    record.scope = scope.clone();
    record.labels = options.labels.clone();
    record.ipam_type = ipam_type.clone();
    record.ipam_options = options.ipam.options.clone();
    record.enable_ipv6 = options.enable_ipv6;
    record.internal = options.internal;
    record.attachable = options.attachable;
    record.config_only = options.config_only;
    record.config_from = options.config_from.clone().unwrap_or_default();
    record.persist = options.persist;
    record.load_balancer_mode = "NAT".to_owned();
    record.set_driver_options(&options.driver_options);
    record.ipam_v4_config = options.ipam.v4.clone();
    record.ipam_v6_config = if options.enable_ipv6 {
        options.ipam.v6.clone()
    } else {
        Vec::new()
    };
    if let Some(ipam) = &ipam {
        record.addr_space =
            if crate::records::store_scope(&scope) == libnetwork_datastore::Scope::Global {
                ipam.default_global_address_space.clone()
            } else {
                ipam.default_local_address_space.clone()
            };
    }
    record.in_create = true;

    // Reserve the name and the id: the entry is hidden from lookups until created.
    let entry = Arc::new(NetworkEntry::new(record.clone()));
    {
        let mut state = lock(&inner.state);
        if state.networks.contains_key(&id) {
            return Err(Error::NetworkExists {
                what: "id",
                value: id,
            });
        }
        if state.networks.values().any(|n| n.name() == name) {
            return Err(Error::NetworkExists {
                what: "name",
                value: name.to_owned(),
            });
        }
        state.networks.insert(id.clone(), entry.clone());
    }
    let _guard = entry.ops.lock().await;

    let result = async {
        if options.config_only {
            // Stored only, with a count used as a reference count, as in libnetwork.
            record.in_create = false;
            let count = entry.endpoint_count();
            let batch = Batch::new().put(&count).put(&record);
            inner.apply(&format!("{op}: store"), batch).await?;
            return Ok(record);
        }
        let driver = driver.expect("checked above");

        // The write-ahead record and the addresses, concurrently: the store commits both
        // writes together. The record does not name the pools (they are not known yet); a
        // restart sweeps pools no network owns.
        let undo_ipam = |record: NetworkRecord| {
            let ipam = ipam.clone();
            async move {
                match ipam {
                    Some(ipam) => release_network_ipam(inner, ipam.driver, &record).await,
                    None => Vec::new(),
                }
            }
        };
        let intent_op = format!("{op}: store intent");
        let intent = inner.apply(&intent_op, Batch::new().put(&record));
        let allocate = async {
            match &ipam {
                Some(ipam) => allocate_network_ipam(ipam.driver.clone(), &record, &op)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (stored, allocated) = tokio::join!(intent, allocate);
        let allocated = match allocated {
            Ok(a) => a,
            Err(e) => {
                let undo = match stored {
                    Ok(()) => inner
                        .delete_keys(&format!("{op}: undo intent"), Batch::new().delete(&record))
                        .await
                        .err()
                        .into_iter()
                        .collect(),
                    Err(_) => Vec::new(),
                };
                return Err(e.with_undo(undo));
            }
        };
        if let Some((v4, v6)) = allocated {
            record.ipam_v4_info = v4;
            record.ipam_v6_info = v6;
        }
        if let Err(e) = stored {
            return Err(e.with_undo(undo_ipam(record.clone()).await));
        }
        inner.step("network:intent-stored");

        let request = CreateNetworkRequest {
            network_id: record.id.clone(),
            options: libnetwork_driverapi::NetworkOptions {
                driver_options: record.driver_options(),
                labels: record.labels.clone(),
                enable_ipv6: record.enable_ipv6,
                internal: record.internal,
            },
            ipv4: driver_pools(&record.ipam_type, &record.ipam_v4_info),
            ipv6: driver_pools(&record.ipam_type, &record.ipam_v6_info),
        };
        if let Err(e) = driver.driver.create_network(&request).await {
            let mut undo = undo_ipam(record.clone()).await;
            undo.extend(
                inner
                    .delete_keys(&format!("{op}: undo intent"), Batch::new().delete(&record))
                    .await
                    .err(),
            );
            return Err(Error::Driver {
                op: format!("{op}: driver {network_type}"),
                source: e,
            }
            .with_undo(undo));
        }
        inner.step("network:driver-created");

        record.in_create = false;
        let count = entry.endpoint_count();
        let batch = Batch::new().put(&count).put(&record);
        if let Err(e) = inner.apply(&format!("{op}: store"), batch).await {
            let mut undo = Vec::new();
            undo.extend(
                driver
                    .driver
                    .delete_network(&record.id)
                    .await
                    .err()
                    .map(Error::driver("undo: delete network in driver")),
            );
            undo.extend(undo_ipam(record.clone()).await);
            undo.extend(
                inner
                    .delete_keys(&format!("{op}: undo intent"), Batch::new().delete(&record))
                    .await
                    .err(),
            );
            return Err(e.with_undo(undo));
        }
        Ok(record)
    }
    .await;

    match result {
        Ok(record) => {
            if !record.config_only {
                crate::dns::add_network(inner, &record);
            }
            entry.update(|r| *r = record);
            info!(network_id = %entry.id, "network created");
            Ok(Network::from_entry(inner.clone(), entry.clone()))
        }
        Err(e) => {
            lock(&inner.state).networks.remove(&entry.id);
            Err(e)
        }
    }
}

/// The pools given to the network driver (none for the null IPAM driver, so that drivers
/// that need addresses refuse the network).
fn driver_pools(ipam_type: &str, infos: &[IpamInfo]) -> Vec<IpamData> {
    if ipam_type == libnetwork_ipamapi::NULL_IPAM {
        return Vec::new();
    }
    infos.iter().map(|i| i.data.clone()).collect()
}

/// Allocates the network's pools, gateways and auxiliary addresses, IPv4 then IPv6 (libnetwork's
/// `ipamAllocate`). On error nothing stays allocated.
pub(crate) async fn allocate_network_ipam(
    ipam: Arc<dyn Ipam>,
    record: &NetworkRecord,
    op: &str,
) -> Result<(Vec<IpamInfo>, Vec<IpamInfo>)> {
    let space = record.addr_space.clone();
    let v4_cfg = record.ipam_v4_config.clone();
    let v6_cfg = record.ipam_v6_config.clone();
    let enable_v6 = record.enable_ipv6;
    let options: Options = record.ipam_options.clone();
    let op = op.to_owned();
    blocking(&op.clone(), move || {
        let v4 = allocate_pools(ipam.as_ref(), &space, &v4_cfg, &options, false, &op)?;
        if !enable_v6 {
            return Ok((v4, Vec::new()));
        }
        match allocate_pools(ipam.as_ref(), &space, &v6_cfg, &options, true, &op) {
            Ok(v6) => Ok((v4, v6)),
            Err(e) => {
                let undo = release_pools(ipam.as_ref(), &v4);
                Err(e.with_undo(undo))
            }
        }
    })
    .await?
}

fn allocate_pools(
    ipam: &dyn Ipam,
    space: &str,
    configs: &[IpamConf],
    options: &Options,
    v6: bool,
    op: &str,
) -> Result<Vec<IpamInfo>> {
    let family = if v6 { "ipv6" } else { "ipv4" };
    let default = [IpamConf::default()];
    let configs = if configs.is_empty() {
        &default[..]
    } else {
        configs
    };
    let mut infos: Vec<IpamInfo> = Vec::new();
    for cfg in configs {
        match allocate_pool(ipam, space, cfg, options, v6, op, family) {
            Ok(info) => infos.push(info),
            Err(e) => {
                let undo = release_pools(ipam, &infos);
                return Err(e.with_undo(undo));
            }
        }
    }
    Ok(infos)
}

fn allocate_pool(
    ipam: &dyn Ipam,
    space: &str,
    cfg: &IpamConf,
    options: &Options,
    v6: bool,
    op: &str,
    family: &str,
) -> Result<IpamInfo> {
    let wrong_family = |what: &str, value: String| {
        Error::bad_request(op, format!("{what} {value} is not an {family} address"))
    };
    if let Some(p) = cfg.preferred_pool
        && matches!(p, IpNet::V6(_)) != v6
    {
        return Err(wrong_family("subnet", p.to_string()));
    }
    if let Some(p) = cfg.sub_pool
        && matches!(p, IpNet::V6(_)) != v6
    {
        return Err(wrong_family("ip range", p.to_string()));
    }
    if let Some(g) = cfg.gateway
        && g.is_ipv6() != v6
    {
        return Err(wrong_family("gateway", g.to_string()));
    }
    if cfg.sub_pool.is_some() && cfg.preferred_pool.is_none() {
        return Err(Error::bad_request(op, "an ip range needs a subnet"));
    }
    let pool = ipam
        .request_pool(space, cfg.preferred_pool, cfg.sub_pool, options, v6)
        .map_err(Error::ipam(format!("{op}: request {family} pool")))?;
    let mut info = IpamInfo {
        pool_id: pool.pool_id.clone(),
        meta: pool.meta.clone(),
        data: IpamData {
            address_space: space.to_owned(),
            pool: pool.pool,
            gateway: None,
            aux_addresses: BTreeMap::new(),
        },
    };
    let result = (|| {
        // The gateway: the driver's choice in its metadata, else asked for.
        let from_meta = pool
            .meta
            .get(netlabel::GATEWAY)
            .and_then(|g| parse_in_pool(g, pool.pool));
        match (from_meta, cfg.gateway) {
            (Some(gw), None) => info.data.gateway = Some(gw),
            (_, preferred) => {
                let opts = Options::from([(
                    REQUEST_ADDRESS_TYPE.to_owned(),
                    GATEWAY_ADDRESS_TYPE.to_owned(),
                )]);
                match ipam.request_address(&pool.pool_id, preferred, &opts) {
                    Ok(a) => info.data.gateway = Some(a.address),
                    // The null driver has no gateway to give.
                    Err(libnetwork_ipamapi::Error::NoIpReturned) => {}
                    Err(e) => {
                        return Err(Error::Ipam {
                            op: format!("{op}: allocate gateway"),
                            source: e,
                        });
                    }
                }
            }
        }
        // Auxiliary addresses must be inside the pool and are reserved.
        for (key, ip) in &cfg.aux_addresses {
            if !pool.pool.contains(ip) {
                return Err(Error::forbidden(
                    op,
                    format!(
                        "auxiliary address {key}={ip} is not in the pool {}",
                        pool.pool
                    ),
                ));
            }
            match ipam.request_address(&pool.pool_id, Some(*ip), &Options::new()) {
                Ok(_) | Err(libnetwork_ipamapi::Error::IpOutOfRange { .. }) => {}
                Err(e) => {
                    return Err(Error::Ipam {
                        op: format!("{op}: reserve auxiliary address {key}={ip}"),
                        source: e,
                    });
                }
            }
            let net = IpNet::new(*ip, pool.pool.prefix_len()).expect("prefix of the pool");
            info.data.aux_addresses.insert(key.clone(), net);
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(info),
        Err(e) => {
            let undo = release_pools(ipam, std::slice::from_ref(&info));
            Err(e.with_undo(undo))
        }
    }
}

/// Parses an address (with or without prefix) and gives it the pool's prefix length.
fn parse_in_pool(text: &str, pool: IpNet) -> Option<IpNet> {
    let ip: IpAddr = match text.parse::<IpNet>() {
        Ok(net) => net.addr(),
        Err(_) => text.parse().ok()?,
    };
    IpNet::new(ip, pool.prefix_len()).ok()
}

/// Releases the gateways, auxiliary addresses and pools of `infos`, in reverse order; returns
/// the failures.
pub(crate) fn release_pools(ipam: &dyn Ipam, infos: &[IpamInfo]) -> Vec<Error> {
    let mut failures = Vec::new();
    for info in infos.iter().rev() {
        if let Some(gw) = info.data.gateway
            && let Err(e) = ipam.release_address(&info.pool_id, gw.addr())
        {
            failures.push(Error::Ipam {
                op: format!("release gateway {gw}"),
                source: e,
            });
        }
        for aux in info.data.aux_addresses.values() {
            if let Err(e) = ipam.release_address(&info.pool_id, aux.addr())
                && !matches!(e, libnetwork_ipamapi::Error::IpOutOfRange { .. })
            {
                failures.push(Error::Ipam {
                    op: format!("release auxiliary address {aux}"),
                    source: e,
                });
            }
        }
        if let Err(e) = ipam.release_pool(&info.pool_id) {
            failures.push(Error::Ipam {
                op: format!("release pool {}", info.pool_id),
                source: e,
            });
        }
    }
    failures
}

/// Releases everything IPAM gave the network; returns the failures. With the default IPAM
/// driver the pool goes first: that drops its bitmap with every address in it, so the gateway
/// and auxiliary addresses are released one by one only when the pool is still held by
/// sub-pools of other networks (one store write instead of three, usually).
pub(crate) async fn release_network_ipam(
    inner: &Inner,
    ipam: Arc<dyn Ipam>,
    record: &NetworkRecord,
) -> Vec<Error> {
    let v4 = record.ipam_v4_info.clone();
    let v6 = record.ipam_v6_info.clone();
    let default =
        (record.ipam_type == libnetwork_ipamapi::DEFAULT_IPAM).then(|| inner.default_ipam.clone());
    match blocking("release network pools", move || {
        let Some(default) = default else {
            let mut failures = release_pools(ipam.as_ref(), &v6);
            failures.extend(release_pools(ipam.as_ref(), &v4));
            return failures;
        };
        let mut failures = Vec::new();
        for info in v6.iter().rev().chain(v4.iter().rev()) {
            if let Err(e) = ipam.release_pool(&info.pool_id) {
                failures.push(Error::Ipam {
                    op: format!("release pool {}", info.pool_id),
                    source: e,
                });
                continue;
            }
            if default.snapshot().pool(&info.pool_id).is_some() {
                failures.extend(release_addresses_only(ipam.as_ref(), info));
            }
        }
        failures
    })
    .await
    {
        Ok(failures) => failures,
        Err(e) => vec![e],
    }
}

/// Releases the gateway and auxiliary addresses of one pool; returns the failures.
fn release_addresses_only(ipam: &dyn Ipam, info: &IpamInfo) -> Vec<Error> {
    let mut failures = Vec::new();
    let addresses = info
        .data
        .gateway
        .iter()
        .chain(info.data.aux_addresses.values());
    for a in addresses {
        match ipam.release_address(&info.pool_id, a.addr()) {
            Ok(()) | Err(libnetwork_ipamapi::Error::IpOutOfRange { .. }) => {}
            Err(e) => failures.push(Error::Ipam {
                op: format!("release address {a}"),
                source: e,
            }),
        }
    }
    failures
}

/// Deletes a network; see [`Network::delete`].
async fn delete(inner: &Arc<Inner>, entry: &Arc<NetworkEntry>) -> Result<()> {
    let name = entry.name();
    let span = info_span!("delete_network", network_id = %entry.id, network_name = %name);
    async {
        let _guard = entry.ops.lock().await;
        let op = format!("delete network {name}");
        if !entry.is_visible() || inner.network_entry(&entry.id).is_none() {
            return Err(Error::NoSuchNetwork(entry.id.clone()));
        }
        let record = entry.record();
        if entry.has_special_driver() {
            return Err(Error::forbidden(
                &op,
                format!(
                    "network of type {:?} cannot be deleted",
                    record.network_type
                ),
            ));
        }
        if record.config_only {
            let users = inner
                .visible_networks()
                .into_iter()
                .filter(|n| n.entry.record().config_from == name)
                .count();
            if users > 0 {
                return Err(Error::forbidden(
                    &op,
                    format!("configuration network {name:?} is in use"),
                ));
            }
        }
        if !entry.endpoint_entries().is_empty() {
            return Err(Error::ActiveEndpoints {
                name,
                id: entry.id.clone(),
            });
        }

        // Write-ahead: a restart finishes a deletion that was under way.
        let marked = entry.update(|r| r.in_delete = true);
        if let Err(e) = inner
            .apply(&format!("{op}: store intent"), Batch::new().put(&marked))
            .await
        {
            entry.update(|r| r.in_delete = false);
            return Err(e);
        }
        inner.step("network:delete-intent-stored");
        finish_delete(inner, entry, false).await
    }
    .instrument(span)
    .await
}

/// The deletion after the intent is stored (also run at restore, with `force`): the driver,
/// IPAM, the store and the controller's maps. Best effort; a driver's Forbidden answer stops
/// a deletion that is not forced.
pub(crate) async fn finish_delete(
    inner: &Arc<Inner>,
    entry: &Arc<NetworkEntry>,
    force: bool,
) -> Result<()> {
    let record = entry.record();
    let op = format!("delete network {}", record.name);
    let mut failures = Vec::new();
    if !record.config_only {
        if let Some(driver) = inner.registry.driver(&record.network_type) {
            match driver.driver.delete_network(&record.id).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    debug!(network_id = %record.id, "driver had no such network");
                }
                Err(e) if e.kind() == ErrorKind::Forbidden && !force => {
                    let unmarked = entry.update(|r| r.in_delete = false);
                    let undo = inner
                        .apply(&format!("{op}: undo intent"), Batch::new().put(&unmarked))
                        .await
                        .err();
                    return Err(Error::Driver {
                        op: format!("{op}: driver"),
                        source: e,
                    }
                    .with_undo(undo.into_iter().collect()));
                }
                Err(e) => failures.push(Error::Driver {
                    op: format!("{op}: driver"),
                    source: e,
                }),
            }
        } else {
            warn!(network_type = %record.network_type, "no driver for the network being deleted");
        }
    }
    // The pools and the records go together: concurrent writes share a commit of the store.
    // A pool released after a crash that kept the records is swept at start-up.
    let ipam = inner
        .registry
        .ipam(&record.ipam_type)
        .filter(|_| !record.config_only && !entry.has_special_driver());
    let release = async {
        match ipam {
            Some(ipam) => release_network_ipam(inner, ipam.driver, &record).await,
            None => Vec::new(),
        }
    };
    let count = entry.endpoint_count();
    let store_op = format!("{op}: remove from store");
    let store = inner.delete_keys(&store_op, Batch::new().delete(&count).delete(&record));
    let (released, stored) = tokio::join!(release, store);
    failures.extend(released);
    failures.extend(stored.err());
    lock(&inner.state).networks.remove(&record.id);
    crate::dns::remove_network(inner, &record);
    info!(network_id = %record.id, failures = failures.len(), "network deleted");
    Error::teardown(op, failures)
}

/// Creates the predefined `host` and `none` networks unless networks of those types exist
/// (they were restored from the store).
pub(crate) async fn ensure_predefined(inner: &Arc<Inner>) -> Result<()> {
    for (network_type, name) in [(HOST_TYPE, HOST_NETWORK), (NULL_TYPE, NONE_NETWORK)] {
        let exists = lock(&inner.state)
            .networks
            .values()
            .any(|n| n.has_special_driver() && n.network_type() == network_type);
        if exists {
            continue;
        }
        match create(inner, network_type, name, NetworkOptions::default()).await {
            Ok(n) => info!(network_id = %n.id(), name, "predefined network created"),
            Err(Error::NetworkExists { .. }) => {
                warn!(
                    name,
                    "a network already has the predefined network's name; not created"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Re-creates a restored network in its driver when the driver keeps no state of its own
/// (host, null: libnetwork's special networks).
pub(crate) async fn recreate_in_driver(
    driver: &Arc<dyn Driver>,
    record: &NetworkRecord,
) -> Result<()> {
    let request = CreateNetworkRequest {
        network_id: record.id.clone(),
        options: libnetwork_driverapi::NetworkOptions {
            driver_options: record.driver_options(),
            labels: record.labels.clone(),
            enable_ipv6: record.enable_ipv6,
            internal: record.internal,
        },
        ipv4: Vec::new(),
        ipv6: Vec::new(),
    };
    driver
        .create_network(&request)
        .await
        .map(|_| ())
        .map_err(Error::driver(format!("restore network {}", record.name)))
}
