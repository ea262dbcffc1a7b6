//! Endpoints: creation, deletion, join and leave, and the [`Endpoint`] handle (libnetwork's
//! `endpoint.go`, `endpoint_info.go`).
//!
//! Creation, deletion and leave write a write-ahead mark first ([`EndpointState`],
//! [`JoinState::Leaving`]) and clear it with their last write, so that a restart can tell what
//! was under way and finish or undo it. A join writes only its final state (with the
//! sandbox's checkpoint, in one batch); a restart undoes a half-made join by asking the driver
//! to leave and comparing the sandbox with the kernel (see `restore`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use libnetwork_driverapi::{
    EndpointInterface, JoinInfo, JoinInterface, RouteType, StaticRoute as DriverRoute,
};
use libnetwork_etchosts::Record;
use libnetwork_ipamapi::{Ipam, Options};
use libnetwork_osl::{InterfaceOptions, NextHop, StaticRoute as OsRoute};
use libnetwork_types::{ErrorKind, MacAddr, PortBinding, TransportPort};
use serde_json::Value;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::controller::{Batch, Inner, blocking, lock, random_id};
use crate::error::{Error, Result};
use crate::netlabel;
use crate::network::NetworkEntry;
use crate::records::{
    EndpointRecord, EndpointState, IpamInfo, JoinInfoRecord, JoinState, RouteRecord,
};
use crate::sandbox::{JoinedEndpoint, Sandbox, SandboxEntry};

/// Options of [`crate::Network::create_endpoint`] (libnetwork's `CreateOption*` and
/// `EndpointOptionGeneric`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOptions {
    /// A static IPv4 address (must be in one of the network's pools).
    pub ipv4_address: Option<Ipv4Addr>,
    /// A static IPv6 address (the network must have IPv6).
    pub ipv6_address: Option<Ipv6Addr>,
    /// Extra link-local addresses (`169.254.0.0/16` or `fe80::/10`).
    pub link_local_addresses: Vec<IpAddr>,
    /// The MAC address.
    pub mac_address: Option<MacAddr>,
    /// Names the endpoint is also known by on its network (`--network-alias`).
    pub aliases: Vec<String>,
    /// More DNS names of the endpoint.
    pub dns_names: Vec<String>,
    /// Ports the container exposes.
    pub exposed_ports: Vec<TransportPort>,
    /// Ports to publish on the host (while the endpoint provides the sandbox's gateway).
    pub port_bindings: Vec<PortBinding>,
    /// DNS servers of the endpoint (libnetwork's `CreateOptionDNS`), recorded.
    pub dns_servers: Vec<String>,
    /// An anonymous endpoint (no DNS name of its own; its first alias stands in).
    pub anonymous: bool,
    /// Publish no DNS records and start no embedded DNS server for this endpoint.
    pub disable_resolution: bool,
    /// Options for the IPAM driver's address requests.
    pub ipam_options: BTreeMap<String, String>,
    /// Driver-specific options.
    pub driver_options: BTreeMap<String, String>,
}

/// Join options (libnetwork's `JoinOption*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinOptions {
    /// The endpoint's priority in the sandbox: higher comes first and gets the gateway.
    pub priority: i32,
    /// Driver-specific options.
    pub driver_options: BTreeMap<String, String>,
}

/// An endpoint's interface (libnetwork's `InterfaceInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// The MAC address.
    pub mac_address: Option<MacAddr>,
    /// The IPv4 address with the network's prefix length.
    pub address: Option<IpNet>,
    /// The IPv6 address with the network's prefix length.
    pub address_ipv6: Option<IpNet>,
    /// Extra link-local addresses.
    pub link_local_addresses: Vec<IpNet>,
    /// The interface's name in the host, for drivers that create it there.
    pub src_name: String,
    /// The interface's name inside the sandbox, while joined.
    pub dst_name: Option<String>,
}

/// A snapshot of an endpoint (libnetwork's `EndpointInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The id.
    pub id: String,
    /// The name.
    pub name: String,
    /// The network's id.
    pub network_id: String,
    /// The interface.
    pub interface: InterfaceInfo,
    /// The IPv4 gateway (set while joined).
    pub gateway: Option<IpAddr>,
    /// The IPv6 gateway (set while joined).
    pub gateway_ipv6: Option<IpAddr>,
    /// The static routes the driver asked for at join.
    pub static_routes: Vec<DriverRoute>,
    /// The sandbox it is joined to.
    pub sandbox_id: Option<String>,
    /// Aliases.
    pub aliases: Vec<String>,
    /// DNS names.
    pub dns_names: Vec<String>,
    /// Exposed ports.
    pub exposed_ports: Vec<TransportPort>,
    /// Port bindings asked for.
    pub port_bindings: Vec<PortBinding>,
    /// DNS servers given at creation.
    pub dns_servers: Vec<String>,
    /// Anonymous.
    pub anonymous: bool,
    /// Resolution disabled.
    pub disable_resolution: bool,
}

/// An endpoint in the controller.
pub(crate) struct EndpointEntry {
    pub(crate) id: String,
    record: Mutex<EndpointRecord>,
    /// Held for a whole operation on the endpoint (join, leave, delete).
    pub(crate) op: tokio::sync::Mutex<()>,
}

impl EndpointEntry {
    pub(crate) fn new(record: EndpointRecord) -> Self {
        Self {
            id: record.id.clone(),
            record: Mutex::new(record),
            op: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn record(&self) -> EndpointRecord {
        lock(&self.record).clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut EndpointRecord)) -> EndpointRecord {
        let mut r = lock(&self.record);
        f(&mut r);
        r.clone()
    }

    pub(crate) fn name(&self) -> String {
        lock(&self.record).name.clone()
    }

    /// Neither being created nor being deleted.
    pub(crate) fn is_ready(&self) -> bool {
        lock(&self.record).state.is_none()
    }
}

/// An endpoint (libnetwork's `Endpoint`): a cheap handle on the controller's object.
#[derive(Clone)]
pub struct Endpoint {
    pub(crate) ctrl: Arc<Inner>,
    pub(crate) network: Arc<NetworkEntry>,
    pub(crate) entry: Arc<EndpointEntry>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.entry.id)
            .field("name", &self.entry.name())
            .field("network_id", &self.network.id)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub(crate) fn from_entries(
        ctrl: Arc<Inner>,
        network: Arc<NetworkEntry>,
        entry: Arc<EndpointEntry>,
    ) -> Self {
        Self {
            ctrl,
            network,
            entry,
        }
    }

    /// The endpoint's id.
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// The endpoint's name.
    pub fn name(&self) -> String {
        self.entry.name()
    }

    /// The network's name (libnetwork's `Network()`).
    pub fn network(&self) -> String {
        self.network.name()
    }

    /// The network's id.
    pub fn network_id(&self) -> &str {
        &self.network.id
    }

    /// A snapshot of the endpoint's settings and state.
    pub fn info(&self) -> EndpointInfo {
        let r = self.entry.record();
        let join = r.join_info.clone().unwrap_or_default();
        let joined = r.is_joined();
        EndpointInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            network_id: r.nid.clone(),
            interface: InterfaceInfo {
                mac_address: r.iface.mac,
                address: r.iface.addr,
                address_ipv6: r.iface.addrv6,
                link_local_addresses: r.iface.ll_addrs.clone(),
                src_name: r.iface.src_name.clone(),
                dst_name: (!r.iface.dst_name.is_empty()).then(|| r.iface.dst_name.clone()),
            },
            gateway: join.gw.filter(|_| joined),
            gateway_ipv6: join.gw6.filter(|_| joined),
            static_routes: join
                .static_routes
                .iter()
                .map(|s| DriverRoute {
                    destination: s.destination,
                    route_type: if s.route_type == 1 {
                        RouteType::Connected
                    } else {
                        RouteType::NextHop
                    },
                    next_hop: s.next_hop,
                })
                .collect(),
            sandbox_id: joined.then(|| r.sandbox.clone()),
            aliases: r.my_aliases.clone(),
            dns_names: r.dns_names.clone(),
            exposed_ports: r.exposed_ports.clone(),
            port_bindings: r.port_bindings(),
            dns_servers: r.dns_servers(),
            anonymous: r.anonymous,
            disable_resolution: r.disable_resolution,
        }
    }

    /// The driver's operational data of the endpoint (libnetwork's `DriverInfo`): for the
    /// bridge driver the MAC address (`com.docker.network.endpoint.macaddress`), exposed ports
    /// and published ports.
    ///
    /// # Errors
    /// [`Error::NoSuchEndpoint`] when it was deleted, [`Error::Driver`].
    pub async fn driver_info(&self) -> Result<BTreeMap<String, Value>> {
        wait_sandbox_reconciled(&self.ctrl, &self.entry).await;
        if !self.entry.is_ready() {
            return Err(Error::NoSuchEndpoint(self.entry.id.clone()));
        }
        let network_type = self.network.network_type();
        let driver = self
            .ctrl
            .registry
            .driver(&network_type)
            .ok_or_else(|| Error::UnknownDriver(network_type.clone()))?;
        driver
            .driver
            .endpoint_oper_info(&self.network.id, &self.entry.id)
            .await
            .map_err(Error::driver(format!(
                "get driver info of endpoint {}",
                self.name()
            )))
    }

    /// Joins the endpoint to a sandbox (libnetwork's `Join`): the driver attaches it, the
    /// interface appears in the sandbox with its addresses and routes, the sandbox's gateway
    /// is recomputed, ports are published when the endpoint provides the gateway, and the
    /// hosts file, DNS records and resolv.conf follow.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a sandbox of another controller, [`Error::Forbidden`] when
    /// the endpoint is attached already, the sandbox is being deleted or already on the
    /// network, [`Error::NoSuchEndpoint`], and the wrapped errors of the driver, the kernel,
    /// the files and the store. Every step is undone on error.
    pub async fn join(&self, sandbox: &Sandbox, options: JoinOptions) -> Result<()> {
        if !Arc::ptr_eq(&self.ctrl, &sandbox.ctrl) {
            return Err(Error::bad_request(
                format!("join endpoint {}", self.name()),
                "the sandbox belongs to another controller",
            ));
        }
        join(
            &self.ctrl,
            &self.network,
            &self.entry,
            &sandbox.entry,
            options,
        )
        .await
    }

    /// Leaves a sandbox (libnetwork's `Leave`). Best effort: every step is tried.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a sandbox of another controller, [`Error::Forbidden`] when the
    /// endpoint is not attached to `sandbox`, [`Error::Teardown`] listing failed steps (the
    /// endpoint is detached all the same).
    pub async fn leave(&self, sandbox: &Sandbox) -> Result<()> {
        if !Arc::ptr_eq(&self.ctrl, &sandbox.ctrl) {
            return Err(Error::bad_request(
                format!("leave endpoint {}", self.name()),
                "the sandbox belongs to another controller",
            ));
        }
        leave(&self.ctrl, &self.network, &self.entry, &sandbox.entry).await
    }

    /// Deletes the endpoint (libnetwork's `Delete`); with `force` a joined endpoint leaves its
    /// sandbox first.
    ///
    /// # Errors
    /// [`Error::ActiveContainer`] when joined and not forced, [`Error::NoSuchEndpoint`],
    /// [`Error::Teardown`] when some cleanup steps failed (the endpoint is gone).
    pub async fn delete(&self, force: bool) -> Result<()> {
        delete(&self.ctrl, &self.network, &self.entry, force).await
    }
}

/// Waits until the sandbox the endpoint is joined to (if any) is reconciled after a restore.
async fn wait_sandbox_reconciled(inner: &Inner, entry: &EndpointEntry) {
    let sbid = entry.record().sandbox;
    if !sbid.is_empty()
        && let Some(sb) = inner.sandbox_entry(&sbid)
    {
        sb.wait_reconciled().await;
    }
}

/// Whether an address is link-local unicast.
fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Creates an endpoint; see [`crate::Network::create_endpoint`].
pub(crate) async fn create(
    inner: &Arc<Inner>,
    net: &Arc<NetworkEntry>,
    name: &str,
    options: EndpointOptions,
) -> Result<Endpoint> {
    if name.trim().is_empty() {
        return Err(Error::InvalidName("create endpoint"));
    }
    let id = random_id();
    let span = info_span!("create_endpoint", network_id = %net.id, endpoint_id = %id, endpoint_name = name);
    create_inner(inner, net, name, id, options)
        .instrument(span)
        .await
}

async fn create_inner(
    inner: &Arc<Inner>,
    net: &Arc<NetworkEntry>,
    name: &str,
    id: String,
    options: EndpointOptions,
) -> Result<Endpoint> {
    let _guard = net.ops.lock().await;
    let nrec = net.record();
    let op = format!("create endpoint {name}");
    if !net.is_visible() || inner.network_entry(&net.id).is_none() {
        return Err(Error::NoSuchNetwork(net.id.clone()));
    }
    if nrec.config_only {
        return Err(Error::forbidden(
            &op,
            format!(
                "cannot create endpoint on configuration-only network {}",
                nrec.name
            ),
        ));
    }
    if net.endpoint_entries().iter().any(|e| e.name() == name) {
        return Err(Error::forbidden(
            &op,
            format!(
                "endpoint with name {name} already exists in network {}",
                nrec.name
            ),
        ));
    }
    let mut ll_addrs = Vec::new();
    for ip in &options.link_local_addresses {
        if !is_link_local(ip) {
            return Err(Error::bad_request(
                &op,
                format!("{ip} is not a link-local address"),
            ));
        }
        let prefix = if ip.is_ipv4() { 16 } else { 64 };
        ll_addrs.push(IpNet::new(*ip, prefix).expect("valid prefix"));
    }
    if options.ipv6_address.is_some() && nrec.ipam_v6_info.is_empty() {
        return Err(Error::bad_request(
            &op,
            format!("network {} has no IPv6 addresses", nrec.name),
        ));
    }
    let driver = inner
        .registry
        .driver(&nrec.network_type)
        .ok_or_else(|| Error::UnknownDriver(nrec.network_type.clone()))?;

    let mut rec = EndpointRecord::new(name, &id, &nrec.id, &nrec.scope, nrec.persist);
    rec.iface.mac = options.mac_address;
    rec.iface.ll_addrs = ll_addrs;
    rec.exposed_ports = options.exposed_ports.clone();
    rec.anonymous = options.anonymous;
    rec.disable_resolution = options.disable_resolution;
    rec.my_aliases = options.aliases.clone();
    rec.dns_names = options.dns_names.clone();
    for (k, v) in &options.driver_options {
        rec.generic.insert(k.clone(), Value::String(v.clone()));
    }
    if !options.port_bindings.is_empty() {
        rec.generic.insert(
            netlabel::PORT_MAP.to_owned(),
            serde_json::to_value(&options.port_bindings).unwrap_or_default(),
        );
    }
    if !options.exposed_ports.is_empty() {
        rec.generic.insert(
            netlabel::EXPOSED_PORTS.to_owned(),
            serde_json::to_value(&options.exposed_ports).unwrap_or_default(),
        );
    }
    if let Some(mac) = options.mac_address {
        rec.generic.insert(
            netlabel::MAC_ADDRESS.to_owned(),
            Value::String(mac.to_string()),
        );
    }
    if !options.dns_servers.is_empty() {
        rec.generic.insert(
            netlabel::DNS_SERVERS.to_owned(),
            serde_json::to_value(&options.dns_servers).unwrap_or_default(),
        );
    }
    rec.state = Some(EndpointState::Creating);

    // Addresses.
    let ipam = if net.has_special_driver() {
        None
    } else {
        Some(
            inner
                .registry
                .ipam(&nrec.ipam_type)
                .ok_or_else(|| Error::UnknownIpam(nrec.ipam_type.clone()))?,
        )
    };
    let mut ipam_opts: Options = options.ipam_options.clone();
    if let Some(ipam) = &ipam
        && ipam.capability.requires_mac_address
    {
        let mac = rec.iface.mac.unwrap_or_else(random_mac);
        rec.iface.mac = Some(mac);
        ipam_opts.insert(netlabel::MAC_ADDRESS.to_owned(), mac.to_string());
    }
    let allocate = async {
        let Some(ipam) = &ipam else {
            return Ok((None, None));
        };
        let driver_ipam = ipam.driver.clone();
        let v4_infos = nrec.ipam_v4_info.clone();
        let v6_infos = nrec.ipam_v6_info.clone();
        let pref4 = options.ipv4_address.map(IpAddr::V4);
        let pref6 = options.ipv6_address.map(IpAddr::V6);
        let op2 = op.clone();
        blocking(&op, move || -> Result<_> {
            let v4 = assign_address(
                driver_ipam.as_ref(),
                &v4_infos,
                pref4,
                &ipam_opts,
                false,
                &op2,
            )?;
            match assign_address(
                driver_ipam.as_ref(),
                &v6_infos,
                pref6,
                &ipam_opts,
                true,
                &op2,
            ) {
                Ok(v6) => Ok((v4, v6)),
                Err(e) => {
                    let undo = release_addresses(driver_ipam.as_ref(), v4.as_ref(), None);
                    Err(e.with_undo(undo))
                }
            }
        })
        .await?
    };
    let undo_ipam = |rec: &EndpointRecord| {
        let ipam = ipam.clone();
        let rec = rec.clone();
        async move {
            match ipam {
                Some(ipam) => release_endpoint_ipam(ipam.driver, &rec).await,
                None => Vec::new(),
            }
        }
    };

    // The write-ahead record and the addresses, concurrently: the store commits both writes
    // together. The record does not name the addresses (they are not known yet); a restart
    // sweeps addresses no endpoint owns.
    let entry = Arc::new(EndpointEntry::new(rec.clone()));
    net.insert_endpoint(entry.clone());
    let fail = |e: Error, undo: Vec<Error>| {
        net.remove_endpoint(&entry.id);
        Err(e.with_undo(undo))
    };
    let intent_op = format!("{op}: store intent");
    let (stored, allocated) =
        tokio::join!(inner.apply(&intent_op, Batch::new().put(&rec)), allocate);
    let (v4, v6) = match allocated {
        Ok(a) => a,
        Err(e) => {
            let undo = match stored {
                Ok(()) => inner
                    .delete_keys(&format!("{op}: undo intent"), Batch::new().delete(&rec))
                    .await
                    .err()
                    .into_iter()
                    .collect(),
                Err(_) => Vec::new(),
            };
            return fail(e, undo);
        }
    };
    if let Some((addr, pool)) = v4 {
        rec.iface.addr = Some(addr);
        rec.iface.v4_pool_id = pool;
    }
    if let Some((addr, pool)) = v6 {
        rec.iface.addrv6 = Some(addr);
        rec.iface.v6_pool_id = pool;
    }
    entry.update(|r| *r = rec.clone());
    if let Err(e) = stored {
        let undo = undo_ipam(&rec).await;
        return fail(e, undo);
    }
    inner.step("endpoint:intent-stored");

    let mut iface = EndpointInterface {
        mac: rec.iface.mac,
        address: rec.iface.addr,
        address_ipv6: rec.iface.addrv6,
    };
    let driver_options = libnetwork_driverapi::EndpointOptions {
        mac_address: options.mac_address,
        exposed_ports: options.exposed_ports.clone(),
        port_bindings: options.port_bindings.clone(),
        driver_options: options.driver_options.clone(),
    };
    if let Err(e) = driver
        .driver
        .create_endpoint(&nrec.id, &id, &mut iface, &driver_options)
        .await
    {
        let mut undo = undo_ipam(&rec).await;
        undo.extend(
            inner
                .delete_keys(&format!("{op}: undo intent"), Batch::new().delete(&rec))
                .await
                .err(),
        );
        return fail(
            Error::Driver {
                op: format!("{op}: driver {}", nrec.network_type),
                source: e,
            },
            undo,
        );
    }
    inner.step("endpoint:driver-created");

    // The final record and the network's count, in one write.
    rec.iface.mac = iface.mac;
    if rec.iface.addrv6.is_none() {
        rec.iface.addrv6 = iface.address_ipv6;
    }
    rec.state = None;
    entry.update(|r| *r = rec.clone());
    let count = net.endpoint_count();
    if let Err(e) = inner
        .apply(&format!("{op}: store"), Batch::new().put(&rec).put(&count))
        .await
    {
        let mut undo: Vec<Error> = driver
            .driver
            .delete_endpoint(&nrec.id, &id)
            .await
            .err()
            .map(Error::driver("undo: delete endpoint in driver"))
            .into_iter()
            .collect();
        undo.extend(undo_ipam(&rec).await);
        undo.extend(
            inner
                .delete_keys(&format!("{op}: undo intent"), Batch::new().delete(&rec))
                .await
                .err(),
        );
        return fail(e, undo);
    }
    info!(endpoint_id = %id, address = ?rec.iface.addr, "endpoint created");
    Ok(Endpoint::from_entries(inner.clone(), net.clone(), entry))
}

/// A random locally administered unicast MAC.
fn random_mac() -> MacAddr {
    let mut mac = [0u8; 6];
    rand::fill(&mut mac[..]);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    MacAddr(mac)
}

/// Picks an address from the network's pools (libnetwork's `assignAddressVersion`): the
/// preferred one, which must be in one of the pools, or the first free one, moving to the next
/// pool only when a pool is full.
fn assign_address(
    ipam: &dyn Ipam,
    infos: &[IpamInfo],
    preferred: Option<IpAddr>,
    options: &Options,
    v6: bool,
    op: &str,
) -> Result<Option<(IpNet, String)>> {
    if infos.is_empty() {
        return Ok(None);
    }
    if let Some(ip) = preferred {
        let Some(info) = infos.iter().find(|i| i.data.pool.contains(&ip)) else {
            return Err(Error::bad_request(
                op,
                format!(
                    "invalid address {ip}: it does not belong to any of this network's subnets"
                ),
            ));
        };
        return match ipam.request_address(&info.pool_id, Some(ip), options) {
            Ok(a) => Ok(Some((a.address, info.pool_id.clone()))),
            Err(e) => Err(Error::Ipam {
                op: format!("{op}: request address {ip}"),
                source: e,
            }),
        };
    }
    for info in infos {
        match ipam.request_address(&info.pool_id, None, options) {
            Ok(a) => return Ok(Some((a.address, info.pool_id.clone()))),
            Err(libnetwork_ipamapi::Error::NoAvailableIps(_)) => continue,
            // The null IPAM driver gives no addresses.
            Err(libnetwork_ipamapi::Error::NoIpReturned) => return Ok(None),
            Err(e) => {
                return Err(Error::Ipam {
                    op: format!("{op}: request address"),
                    source: e,
                });
            }
        }
    }
    Err(Error::NoAvailableAddress { v6 })
}

/// Releases addresses; returns the failures.
fn release_addresses(
    ipam: &dyn Ipam,
    v4: Option<&(IpNet, String)>,
    v6: Option<&(IpNet, String)>,
) -> Vec<Error> {
    let mut failures = Vec::new();
    for (addr, pool) in v4.into_iter().chain(v6) {
        if let Err(e) = ipam.release_address(pool, addr.addr()) {
            failures.push(Error::Ipam {
                op: format!("release address {addr}"),
                source: e,
            });
        }
    }
    failures
}

/// Releases the endpoint's addresses; returns the failures.
pub(crate) async fn release_endpoint_ipam(ipam: Arc<dyn Ipam>, rec: &EndpointRecord) -> Vec<Error> {
    let v4 = rec
        .iface
        .addr
        .zip(Some(rec.iface.v4_pool_id.clone()).filter(|p| !p.is_empty()));
    let v6 = rec
        .iface
        .addrv6
        .zip(Some(rec.iface.v6_pool_id.clone()).filter(|p| !p.is_empty()));
    if v4.is_none() && v6.is_none() {
        return Vec::new();
    }
    match blocking("release endpoint addresses", move || {
        release_addresses(ipam.as_ref(), v4.as_ref(), v6.as_ref())
    })
    .await
    {
        Ok(f) => f,
        Err(e) => vec![e],
    }
}

/// Deletes an endpoint; see [`Endpoint::delete`].
pub(crate) async fn delete(
    inner: &Arc<Inner>,
    net: &Arc<NetworkEntry>,
    entry: &Arc<EndpointEntry>,
    force: bool,
) -> Result<()> {
    let name = entry.name();
    let span = info_span!("delete_endpoint", network_id = %net.id, endpoint_id = %entry.id, endpoint_name = %name);
    async {
        wait_sandbox_reconciled(inner, entry).await;
        let rec = entry.record();
        if !rec.sandbox.is_empty() {
            if !force {
                return Err(Error::ActiveContainer {
                    name,
                    id: entry.id.clone(),
                });
            }
            match inner.sandbox_entry(&rec.sandbox) {
                Some(sb) => leave(inner, net, entry, &sb).await?,
                None => warn!(endpoint_id = %entry.id, sandbox_id = %rec.sandbox, "forced delete of an endpoint of an unknown sandbox"),
            }
        }
        let _net_guard = net.ops.lock().await;
        let _ep_guard = entry.op.lock().await;
        let rec = entry.record();
        if !entry.is_ready() {
            return Err(Error::NoSuchEndpoint(entry.id.clone()));
        }
        if !rec.sandbox.is_empty() && !force {
            return Err(Error::ActiveContainer {
                name,
                id: entry.id.clone(),
            });
        }
        // Write-ahead: a restart finishes a deletion that was under way.
        let marked = entry.update(|r| r.state = Some(EndpointState::Deleting));
        if let Err(e) = inner
            .apply(&format!("delete endpoint {name}: store intent"), Batch::new().put(&marked))
            .await
        {
            entry.update(|r| r.state = None);
            return Err(e);
        }
        inner.step("endpoint:delete-intent-stored");
        finish_delete(inner, net, entry, force).await
    }
    .instrument(span)
    .await
}

/// The deletion after its intent is stored (also run at restore): the driver, IPAM, the
/// store, the maps. A driver's Forbidden answer stops a deletion that is not forced.
pub(crate) async fn finish_delete(
    inner: &Arc<Inner>,
    net: &Arc<NetworkEntry>,
    entry: &Arc<EndpointEntry>,
    force: bool,
) -> Result<()> {
    let rec = entry.record();
    let nrec = net.record();
    let op = format!("delete endpoint {}", rec.name);
    let mut failures = Vec::new();
    if let Some(driver) = inner.registry.driver(&nrec.network_type) {
        match driver.driver.delete_endpoint(&nrec.id, &rec.id).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                debug!(endpoint_id = %rec.id, "driver had no such endpoint");
            }
            Err(e) if e.kind() == ErrorKind::Forbidden && !force => {
                let unmarked = entry.update(|r| r.state = None);
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
    }
    inner.step("endpoint:driver-deleted");
    // The addresses and the records go together: concurrent writes share a commit of the
    // store. An address released after a crash that kept the record is swept at start-up.
    net.remove_endpoint(&rec.id);
    let count = net.endpoint_count();
    let release = async {
        match inner.registry.ipam(&nrec.ipam_type) {
            Some(ipam) => release_endpoint_ipam(ipam.driver, &rec).await,
            None => Vec::new(),
        }
    };
    let store_op = format!("{op}: remove from store");
    let store = inner.delete_keys(&store_op, Batch::new().delete(&rec).put(&count));
    let (released, stored) = tokio::join!(release, store);
    failures.extend(released);
    failures.extend(stored.err());
    info!(endpoint_id = %rec.id, failures = failures.len(), "endpoint deleted");
    Error::teardown(op, failures)
}

// ----- join and leave -----

/// What a join did so far, to undo on failure.
#[derive(Default)]
struct JoinProgress {
    driver_joined: bool,
    /// The interface moved in from the host (removed on undo); `None` for interfaces created
    /// in the sandbox (the driver's leave deletes them).
    moved_interface: Option<String>,
    routes: Vec<OsRoute>,
    inserted: bool,
    /// The gateway endpoint before the join, when this join took over the gateway.
    gateway_taken_from: Option<Option<JoinedEndpoint>>,
    gateway_set: Vec<IpAddr>,
    connectivity: bool,
}

/// The routes of a driver's join info, as the osl wants them.
fn os_routes(routes: &[DriverRoute], dst_name: Option<&str>) -> Vec<OsRoute> {
    routes
        .iter()
        .filter_map(|r| {
            let next_hop = match (r.route_type, r.next_hop, dst_name) {
                (RouteType::Connected, _, Some(dst)) => NextHop::Interface(dst.to_owned()),
                (RouteType::NextHop, Some(gw), _) => NextHop::Gateway(gw),
                _ => return None,
            };
            Some(OsRoute {
                destination: r.destination,
                next_hop,
            })
        })
        .collect()
}

fn route_records(routes: &[DriverRoute]) -> Vec<RouteRecord> {
    routes
        .iter()
        .map(|r| RouteRecord {
            destination: r.destination,
            route_type: match r.route_type {
                RouteType::NextHop => 0,
                RouteType::Connected => 1,
            },
            next_hop: r.next_hop,
        })
        .collect()
}

/// The driver routes of a stored join info.
pub(crate) fn driver_routes(join: &JoinInfoRecord) -> Vec<DriverRoute> {
    join.static_routes
        .iter()
        .map(|s| DriverRoute {
            destination: s.destination,
            route_type: if s.route_type == 1 {
                RouteType::Connected
            } else {
                RouteType::NextHop
            },
            next_hop: s.next_hop,
        })
        .collect()
}

/// The options given to a driver's external connectivity: the endpoint's port bindings and
/// exposed ports merged with the sandbox's.
pub(crate) fn connectivity_options(
    rec: &EndpointRecord,
    sb: &SandboxEntry,
) -> libnetwork_driverapi::EndpointOptions {
    let sb_opts = sb.options();
    let mut port_bindings = rec.port_bindings();
    for b in sb_opts.port_bindings {
        if !port_bindings.contains(&b) {
            port_bindings.push(b);
        }
    }
    let mut exposed_ports = rec.exposed_ports.clone();
    for p in sb_opts.exposed_ports {
        if !exposed_ports.contains(&p) {
            exposed_ports.push(p);
        }
    }
    libnetwork_driverapi::EndpointOptions {
        mac_address: rec.requested_mac(),
        exposed_ports,
        port_bindings,
        driver_options: rec.driver_options(),
    }
}

/// The endpoint as the sandbox orders it.
fn joined_entry(net: &NetworkEntry, rec: &EndpointRecord, priority: i32) -> JoinedEndpoint {
    let nrec = net.record();
    let join = rec.join_info.clone().unwrap_or_default();
    JoinedEndpoint {
        eid: rec.id.clone(),
        nid: nrec.id.clone(),
        network_name: nrec.name.clone(),
        priority,
        internal: nrec.internal,
        special: net.has_special_driver(),
        gw4: join.gw,
        gw6: join.gw6,
    }
}

/// Joins an endpoint to a sandbox; see [`Endpoint::join`].
pub(crate) async fn join(
    inner: &Arc<Inner>,
    net: &Arc<NetworkEntry>,
    entry: &Arc<EndpointEntry>,
    sb: &Arc<SandboxEntry>,
    options: JoinOptions,
) -> Result<()> {
    let span =
        info_span!("join", network_id = %net.id, endpoint_id = %entry.id, sandbox_id = %sb.id);
    async {
        // A restored sandbox is compared with the kernel first.
        sb.wait_reconciled().await;
        let _sb_guard = sb.op.lock().await;
        let name = entry.name();
        let op = format!("join endpoint {name} to sandbox {}", sb.id);
        if inner.sandbox_entry(&sb.id).is_none() {
            return Err(Error::NoSuchSandbox(sb.id.clone()));
        }
        if sb.is_deleting() {
            return Err(Error::forbidden(&op, "the sandbox is being deleted"));
        }
        let _ep_guard = entry.op.lock().await;
        if !entry.is_ready() || inner.network_entry(&net.id).is_none() {
            return Err(Error::NoSuchEndpoint(entry.id.clone()));
        }
        let rec = entry.record();
        if !rec.sandbox.is_empty() {
            return Err(Error::forbidden(
                &op,
                "another container is attached to the same network endpoint",
            ));
        }
        if sb.joined().iter().any(|j| j.nid == net.id) {
            return Err(Error::forbidden(
                &op,
                format!("the sandbox is already attached to network {}", net.name()),
            ));
        }
        let nrec = net.record();
        let driver = inner
            .registry
            .driver(&nrec.network_type)
            .ok_or_else(|| Error::UnknownDriver(nrec.network_type.clone()))?;

        // Nothing is stored until the join is complete: a restart finds a half-made join by
        // comparing the store with the driver and the kernel, and undoes it (see `restore`).
        // In memory the endpoint is joining, so peers' hosts files already list it.
        entry.update(|r| {
            r.sandbox = sb.id.clone();
            r.join_state = Some(JoinState::Joining);
        });
        inner.step("join:started");

        let mut progress = JoinProgress::default();
        let result = join_steps(
            inner,
            net,
            entry,
            sb,
            &driver.driver,
            &options,
            &op,
            &mut progress,
        )
        .await;
        let result = match result {
            Ok(()) => {
                // The final record and the sandbox checkpoint, in one write when they share
                // a store.
                let done = entry.update(|r| r.join_state = None);
                let checkpoint = sb.checkpoint();
                store_endpoint_and_checkpoint(inner, &op, &done, &checkpoint).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let undo = undo_join(inner, net, entry, sb, &driver.driver, progress).await;
            entry.update(|r| {
                r.sandbox.clear();
                r.join_state = None;
                r.join_info = None;
                r.iface.dst_name.clear();
                r.iface.created_in_sandbox = false;
            });
            let mut undo = undo;
            // Peers and files follow the reverted state.
            undo.extend(sync_network_hosts(inner, net, sb).await.err());
            return Err(e.with_undo(undo));
        }
        info!("endpoint joined");
        Ok(())
    }
    .instrument(span)
    .await
}

/// Writes an endpoint record and a sandbox checkpoint: one batch when they share a store.
pub(crate) async fn store_endpoint_and_checkpoint(
    inner: &Inner,
    op: &str,
    ep: &EndpointRecord,
    checkpoint: &crate::records::SandboxRecord,
) -> Result<()> {
    if crate::records::store_scope(&ep.scope) == libnetwork_datastore::Scope::Local {
        inner
            .apply(
                &format!("{op}: store"),
                Batch::new().put(ep).put(checkpoint),
            )
            .await
    } else {
        inner
            .apply(&format!("{op}: store endpoint"), Batch::new().put(ep))
            .await?;
        inner
            .apply(
                &format!("{op}: store sandbox"),
                Batch::new().put(checkpoint),
            )
            .await
    }
}

#[allow(clippy::too_many_arguments)]
async fn join_steps(
    inner: &Arc<Inner>,
    net: &Arc<NetworkEntry>,
    entry: &Arc<EndpointEntry>,
    sb: &Arc<SandboxEntry>,
    driver: &Arc<dyn libnetwork_driverapi::Driver>,
    options: &JoinOptions,
    op: &str,
    progress: &mut JoinProgress,
) -> Result<()> {
    let nrec = net.record();
    let rec = entry.record();

    // 1. The driver attaches the endpoint.
    let info: JoinInfo = driver
        .join(
            &nrec.id,
            &rec.id,
            &sb.osl,
            &libnetwork_driverapi::JoinOptions {
                driver_options: options.driver_options.clone(),
            },
        )
        .await
        .map_err(Error::driver(format!("{op}: driver")))?;
    progress.driver_joined = true;
    inner.step("join:driver-joined");

    // 2. The interface.
    let (dst_name, created_in_sandbox) = match &info.interface {
        Some(JoinInterface::Host {
            src_name,
            dst_prefix,
        }) => {
            let opts = InterfaceOptions {
                mac: rec.iface.mac,
                addresses: rec.iface.addr.into_iter().chain(rec.iface.addrv6).collect(),
                link_local_addresses: rec.iface.ll_addrs.clone(),
                routes: rec.iface.routes.clone(),
                ..InterfaceOptions::default()
            };
            let link = sb
                .osl
                .add_interface(src_name, dst_prefix, &opts)
                .await
                .map_err(Error::os(format!("{op}: add interface {src_name}")))?;
            progress.moved_interface = Some(link.name.clone());
            entry.update(|r| r.iface.src_name = src_name.clone());
            (Some(link.name), false)
        }
        Some(JoinInterface::InSandbox { name }) => {
            if !rec.iface.ll_addrs.is_empty() {
                sb.osl
                    .add_addresses(name, &rec.iface.ll_addrs)
                    .await
                    .map_err(Error::os(format!("{op}: add link-local addresses")))?;
            }
            (Some(name.clone()), true)
        }
        None => (None, false),
    };
    for route in os_routes(&info.static_routes, dst_name.as_deref()) {
        sb.osl
            .add_static_route(&route)
            .await
            .map_err(Error::os(format!(
                "{op}: add route to {}",
                route.destination
            )))?;
        progress.routes.push(route);
    }
    entry.update(|r| {
        r.iface.dst_name = dst_name.clone().unwrap_or_default();
        r.iface.created_in_sandbox = created_in_sandbox;
        r.join_info = Some(JoinInfoRecord {
            gw: info.gateway,
            gw6: info.gateway_ipv6,
            disable_gateway_service: info.disable_gateway_service,
            static_routes: route_records(&info.static_routes),
        });
    });
    inner.step("join:interface-added");

    // 3. The endpoint's place in the sandbox and the gateway.
    let rec = entry.record();
    let old_gw = sb.gateway_endpoint();
    sb.insert_joined(joined_entry(net, &rec, options.priority));
    progress.inserted = true;
    let new_gw = sb.gateway_endpoint();
    if new_gw.as_ref().is_some_and(|g| g.eid == rec.id)
        && old_gw.as_ref().map(|g| &g.eid) != Some(&rec.id)
    {
        progress.gateway_taken_from = Some(old_gw.clone());
        if let Some(old) = &old_gw {
            release_gateway(inner, sb, old).await;
        }
        let me = new_gw.expect("checked");
        for gw in me.gw4.into_iter().chain(me.gw6) {
            sb.osl
                .set_gateway(gw)
                .await
                .map_err(Error::os(format!("{op}: set gateway {gw}")))?;
            progress.gateway_set.push(gw);
        }
        inner.step("join:gateway-set");

        // 4. Published ports follow the gateway.
        if !nrec.internal {
            driver
                .program_external_connectivity(&nrec.id, &rec.id, &connectivity_options(&rec, sb))
                .await
                .map_err(Error::driver(format!(
                    "{op}: program external connectivity"
                )))?;
            progress.connectivity = true;
        }
    }
    sb.sync_dns_networks();
    inner.step("join:connectivity-programmed");

    // 5. Hosts files, DNS records, resolv.conf, the embedded DNS server.
    if !net.has_special_driver() {
        crate::dns::add_endpoint(inner, &rec);
    }
    sync_network_hosts(inner, net, sb).await?;
    if !sb.is_host_mode() {
        let sb2 = sb.clone();
        let ipv6 = nrec.enable_ipv6;
        blocking(op, move || sb2.files.update_for_join(ipv6)).await??;
        if inner.config.embedded_dns && !rec.disable_resolution && !net.has_special_driver() {
            sb.start_resolver(&crate::sandbox::upstreams_of(sb)).await;
        }
    }
    inner.step("join:files-updated");
    Ok(())
}

/// Takes the default route away from the gateway endpoint `old` and withdraws its published
/// ports (best effort: failures are logged, the new gateway goes ahead).
async fn release_gateway(inner: &Inner, sb: &SandboxEntry, old: &JoinedEndpoint) {
    for gw in old.gw4.into_iter().chain(old.gw6) {
        if let Err(e) = sb.osl.unset_gateway(gw).await
            && !e.is_not_found()
        {
            warn!(sandbox_id = %sb.id, %gw, error = %e, "old default route not removed");
        }
    }
    let Some(net) = inner.network_entry(&old.nid) else {
        return;
    };
    if net.record().internal {
        return;
    }
    if let Some(driver) = inner.registry.driver(&net.network_type())
        && let Err(e) = driver
            .driver
            .revoke_external_connectivity(&old.nid, &old.eid)
            .await
        && e.kind() != ErrorKind::NotFound
    {
        warn!(endpoint_id = %old.eid, error = %e, "external connectivity of the previous gateway endpoint not revoked");
    }
}

/// Gives the default route to the gateway endpoint `new` and publishes its ports.
async fn take_gateway(inner: &Inner, sb: &SandboxEntry, new: &JoinedEndpoint) -> Vec<Error> {
    let mut failures = Vec::new();
    for gw in new.gw4.into_iter().chain(new.gw6) {
        if let Err(e) = sb.osl.set_gateway(gw).await {
            failures.push(Error::os(format!("set gateway {gw} of sandbox {}", sb.id))(
                e,
            ));
        }
    }
    let Some(net) = inner.network_entry(&new.nid) else {
        return failures;
    };
    if net.record().internal {
        return failures;
    }
    let Some(ep) = net.endpoint_entries().into_iter().find(|e| e.id == new.eid) else {
        return failures;
    };
    if let Some(driver) = inner.registry.driver(&net.network_type())
        && let Err(e) = driver
            .driver
            .program_external_connectivity(
                &new.nid,
                &new.eid,
                &connectivity_options(&ep.record(), sb),
            )
            .await
    {
        failures.push(Error::Driver {
            op: format!("program external connectivity of endpoint {}", new.eid),
            source: e,
        });
    }
    failures
}

/// Undoes what a join did; returns the failures.
async fn undo_join(
    inner: &Arc<Inner>,
    net: &Arc<NetworkEntry>,
    entry: &Arc<EndpointEntry>,
    sb: &Arc<SandboxEntry>,
    driver: &Arc<dyn libnetwork_driverapi::Driver>,
    progress: JoinProgress,
) -> Vec<Error> {
    let rec = entry.record();
    let mut undo = Vec::new();
    if !net.has_special_driver() {
        crate::dns::remove_endpoint(inner, &rec);
    }
    if progress.connectivity
        && let Err(e) = driver.revoke_external_connectivity(&net.id, &rec.id).await
    {
        undo.push(Error::driver("undo: revoke external connectivity")(e));
    }
    for gw in progress.gateway_set {
        if let Err(e) = sb.osl.unset_gateway(gw).await {
            undo.push(Error::os("undo: unset gateway")(e));
        }
    }
    if progress.inserted {
        sb.remove_joined(&rec.id);
        sb.sync_dns_networks();
    }
    if let Some(Some(old)) = progress.gateway_taken_from {
        undo.extend(take_gateway(inner, sb, &old).await);
    }
    for route in progress.routes.iter().rev() {
        if let Err(e) = sb.osl.remove_static_route(route).await
            && !e.is_not_found()
        {
            undo.push(Error::os("undo: remove route")(e));
        }
    }
    if let Some(name) = progress.moved_interface
        && let Err(e) = sb.osl.remove_interface(&name).await
    {
        undo.push(Error::os("undo: remove interface")(e));
    }
    if progress.driver_joined
        && let Err(e) = driver.leave(&net.id, &rec.id).await
    {
        undo.push(Error::driver("undo: leave in driver")(e));
    }
    undo
}

/// Leaves a sandbox; see [`Endpoint::leave`]. Allowed while the sandbox is being deleted.
pub(crate) async fn leave(
    inner: &Arc<Inner>,
    net: &Arc<NetworkEntry>,
    entry: &Arc<EndpointEntry>,
    sb: &Arc<SandboxEntry>,
) -> Result<()> {
    let span =
        info_span!("leave", network_id = %net.id, endpoint_id = %entry.id, sandbox_id = %sb.id);
    async {
        sb.wait_reconciled().await;
        let _sb_guard = sb.op.lock().await;
        let _ep_guard = entry.op.lock().await;
        let rec = entry.record();
        let op = format!("leave endpoint {} from sandbox {}", rec.name, sb.id);
        if rec.sandbox.is_empty() {
            return Err(Error::forbidden(
                &op,
                "cannot leave endpoint with no attached sandbox",
            ));
        }
        if rec.sandbox != sb.id {
            return Err(Error::forbidden(
                &op,
                format!("the endpoint is attached to sandbox {}", rec.sandbox),
            ));
        }
        // Write-ahead: a restart finishes a leave that was under way.
        let intent = entry.update(|r| r.join_state = Some(JoinState::Leaving));
        if let Err(e) = inner
            .apply(&format!("{op}: store intent"), Batch::new().put(&intent))
            .await
        {
            entry.update(|r| r.join_state = rec.join_state);
            return Err(e);
        }
        inner.step("leave:intent-stored");
        let failures = leave_steps(inner, net, entry, sb, &op, false).await;
        let done = finish_leave(inner, entry, sb, &op).await;
        let mut failures = failures;
        failures.extend(done.err());
        info!(failures = failures.len(), "endpoint left");
        Error::teardown(op, failures)
    }
    .instrument(span)
    .await
}

/// Clears the endpoint's attachment and stores it with the sandbox checkpoint.
pub(crate) async fn finish_leave(
    inner: &Inner,
    entry: &EndpointEntry,
    sb: &SandboxEntry,
    op: &str,
) -> Result<()> {
    let done = entry.update(|r| {
        r.sandbox.clear();
        r.join_state = None;
        r.join_info = None;
        r.iface.dst_name.clear();
        r.iface.created_in_sandbox = false;
    });
    let checkpoint = sb.checkpoint();
    store_endpoint_and_checkpoint(inner, op, &done, &checkpoint).await
}

/// Detaches an endpoint from its sandbox, best effort (also used by restore to finish a leave
/// or undo a join): published ports, gateway, DNS records, hosts files, the interface, the
/// driver, then the next gateway endpoint takes over. Returns the failures.
pub(crate) async fn leave_steps(
    inner: &Arc<Inner>,
    net: &Arc<NetworkEntry>,
    entry: &Arc<EndpointEntry>,
    sb: &Arc<SandboxEntry>,
    op: &str,
    restoring: bool,
) -> Vec<Error> {
    let rec = entry.record();
    let nrec = net.record();
    let mut failures = Vec::new();
    let driver = inner.registry.driver(&nrec.network_type);
    let was_gateway = sb.gateway_endpoint().is_some_and(|g| g.eid == rec.id);
    let join = rec.join_info.clone().unwrap_or_default();
    // Finishing a leave cut short by a crash, the driver may have done its part already.
    let tolerable =
        |e: &libnetwork_driverapi::Error| matches!(e.kind(), ErrorKind::NotFound) || restoring;

    if was_gateway {
        if !nrec.internal
            && let Some(d) = &driver
            && let Err(e) = d
                .driver
                .revoke_external_connectivity(&nrec.id, &rec.id)
                .await
            && !tolerable(&e)
        {
            failures.push(Error::driver(format!("{op}: revoke external connectivity"))(e));
        }
        for gw in join.gw.into_iter().chain(join.gw6) {
            if let Err(e) = sb.osl.unset_gateway(gw).await
                && !e.is_not_found()
            {
                failures.push(Error::os(format!("{op}: unset gateway {gw}"))(e));
            }
        }
    }
    if !net.has_special_driver() {
        crate::dns::remove_endpoint(inner, &rec);
    }
    sb.remove_joined(&rec.id);
    sb.sync_dns_networks();
    // Hosts files without this endpoint (its record says it is leaving).
    failures.extend(sync_network_hosts(inner, net, sb).await.err());

    let dst = (!rec.iface.dst_name.is_empty()).then(|| rec.iface.dst_name.clone());
    for route in os_routes(&driver_routes(&join), dst.as_deref()) {
        if let Err(e) = sb.osl.remove_static_route(&route).await
            && !e.is_not_found()
        {
            failures.push(Error::os(format!(
                "{op}: remove route to {}",
                route.destination
            ))(e));
        }
    }
    if let Some(dst) = &dst
        && !rec.iface.created_in_sandbox
    {
        match sb.osl.remove_interface(dst).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => failures.push(Error::os(format!("{op}: remove interface {dst}"))(e)),
        }
    }
    if let Some(d) = &driver
        && let Err(e) = d.driver.leave(&nrec.id, &rec.id).await
        && !tolerable(&e)
    {
        failures.push(Error::driver(format!("{op}: driver"))(e));
    }
    inner.step("leave:driver-left");

    // The next gateway endpoint takes over.
    if was_gateway && let Some(next) = sb.gateway_endpoint() {
        failures.extend(take_gateway(inner, sb, &next).await);
    }
    failures
}

/// The dynamic hosts lines a sandbox should have: its own names for each joined endpoint's
/// addresses, and the names of every peer endpoint on the same networks (libnetwork's
/// `updateHostsFile` and the legacy service records of `updateSvcRecord`).
pub(crate) fn desired_hosts(inner: &Inner, sb: &SandboxEntry) -> Vec<Record> {
    let opts = sb.options();
    let mut out = Vec::new();
    let own_names: Vec<String> = if opts.hostname.is_empty() {
        Vec::new()
    } else if opts.domainname.is_empty() {
        vec![opts.hostname.clone()]
    } else {
        vec![
            format!("{}.{}", opts.hostname, opts.domainname),
            opts.hostname.clone(),
        ]
    };
    for j in sb.joined() {
        if j.special {
            continue;
        }
        let Some(net) = inner.network_entry(&j.nid) else {
            continue;
        };
        let eps = net.endpoint_entries();
        let Some(me) = eps.iter().find(|e| e.id == j.eid).map(|e| e.record()) else {
            continue;
        };
        if !own_names.is_empty() {
            for ip in crate::dns::endpoint_ips(&me) {
                if let Ok(r) = Record::new(ip, own_names.iter().cloned()) {
                    out.push(r);
                }
            }
        }
        if me.disable_resolution {
            continue;
        }
        for peer in &eps {
            let p = peer.record();
            if p.id == me.id
                || p.sandbox.is_empty()
                || p.sandbox == sb.id
                || p.join_state == Some(JoinState::Leaving)
                || p.disable_resolution
            {
                continue;
            }
            let names: Vec<String> = crate::dns::endpoint_names(&p)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            if names.is_empty() {
                continue;
            }
            for ip in crate::dns::endpoint_ips(&p) {
                if let Ok(r) = Record::new(ip, names.iter().cloned()) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Brings the hosts files of `sb` and of every sandbox with an endpoint on `net` up to date.
pub(crate) async fn sync_network_hosts(
    inner: &Arc<Inner>,
    net: &NetworkEntry,
    sb: &Arc<SandboxEntry>,
) -> Result<()> {
    let mut sandboxes = vec![sb.clone()];
    for ep in net.endpoint_entries() {
        let sbid = ep.record().sandbox;
        if sbid.is_empty() || sandboxes.iter().any(|s| s.id == sbid) {
            continue;
        }
        if let Some(other) = inner.sandbox_entry(&sbid) {
            sandboxes.push(other);
        }
    }
    let mut failures = Vec::new();
    for s in sandboxes {
        if let Err(e) = s.sync_hosts(|| desired_hosts(inner, &s)) {
            failures.push(e);
        }
    }
    Error::teardown(
        format!("update the hosts files of network {}", net.name()),
        failures,
    )
}
