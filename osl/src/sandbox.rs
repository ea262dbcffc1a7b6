//! A sandbox: a network namespace bound to a key file, with its own netlink handle, and the
//! interface, gateway, route, neighbour and sysctl operations libnetwork's `osl.Sandbox` offers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use tokio::sync::Mutex;
use tracing::{debug, info};

use crate::addr::Address;
use crate::error::{Error, Result};
use crate::handle::NetlinkHandle;
use crate::host::Host;
use crate::link::{LOOPBACK_INDEX, Link, MacAddr};
use crate::neigh::Neighbour;
use crate::netns::{self, Netns};
use crate::route::{Route, is_missing_route};
use crate::sysctl;

/// How an interface is configured when it enters a sandbox. Every field is optional; the
/// interface is always brought up last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceOptions {
    /// Hardware address to set.
    pub mac: Option<MacAddr>,
    /// MTU to set, in bytes (68..=65535 for Ethernet-like links).
    pub mtu: Option<u32>,
    /// IPv4 and IPv6 addresses (libnetwork's `Address` and `AddressIPv6`). Each is first checked
    /// against the sandbox's routes, as libnetwork does. IPv6 addresses are added with
    /// `IFA_F_NODAD`, after enabling IPv6 on the interface if it is disabled.
    pub addresses: Vec<IpNet>,
    /// Extra link-local addresses (libnetwork's `LinkLocalAddresses`), added as they are,
    /// without the route check.
    pub link_local_addresses: Vec<IpNet>,
    /// Name (inside the sandbox) of a bridge to enslave the interface to.
    pub master: Option<String>,
    /// Destinations reached directly through this interface (link-scope routes).
    pub routes: Vec<IpNet>,
}

/// Where a sandbox interface came from, which decides what removing it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Moved in from the host namespace, where it was called this: removal renames it back and
    /// moves it back out.
    Moved(String),
    /// Created inside the sandbox (the sandbox end of a veth pair, a bridge): removal deletes it.
    Created,
}

/// An interface of a sandbox and its settings, as read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// The link itself (index, name, MAC, MTU, up, kind).
    pub link: Link,
    /// Name of the bridge it is enslaved to, if any.
    pub master: Option<String>,
    /// Its addresses, IPv4 and IPv6, including kernel-made link-local ones.
    pub addresses: Vec<Address>,
}

/// The two ends of a veth pair made for a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethPair {
    /// The end left in the host namespace (down, no master).
    pub host: Link,
    /// The end born inside the sandbox, configured and up.
    pub sandbox: Link,
}

/// Where a static route's traffic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// Directly out of this sandbox interface (libnetwork's `CONNECTED`): a link-scope route.
    Interface(String),
    /// Through this gateway (libnetwork's `NEXTHOP`), out of the interface that reaches it.
    Gateway(IpAddr),
}

/// A static route of a sandbox (libnetwork's `types.StaticRoute`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    /// The destination network.
    pub destination: IpNet,
    /// How to get there.
    pub next_hop: NextHop,
}

/// A sandbox: a network namespace bound to a key file, its netlink handle, and the host it
/// takes interfaces from.
///
/// Operations take `&self` and may run concurrently from many tasks; those that change the
/// interface set are serialized per sandbox. Each operation that fails part way undoes its
/// earlier steps (see [`Error`]). Dropping a `Sandbox` keeps the namespace (it stays bound to
/// its key and can be reopened with [`Host::open_sandbox`]); [`Sandbox::destroy`] removes it.
#[derive(Debug)]
pub struct Sandbox {
    key: PathBuf,
    label: String,
    netns: Netns,
    netlink: NetlinkHandle,
    host: Host,
    /// Origins of the interfaces this handle knows about, by name inside the sandbox. The
    /// lock also serializes changes to the interface set.
    origins: Mutex<HashMap<String, Origin>>,
}

impl Sandbox {
    /// Opens the netlink handle inside `netns` and, for a new namespace, brings `lo` up.
    pub(crate) async fn attach(host: Host, key: &Path, netns: Netns, new: bool) -> Result<Self> {
        let label = format!("sandbox {}", key.display());
        let netlink = NetlinkHandle::open(&netns, label.as_str()).await?;
        let sandbox = Self {
            key: key.to_path_buf(),
            label,
            netns,
            netlink,
            host,
            origins: Mutex::new(HashMap::new()),
        };
        if new {
            // `ip link set lo up`: lo has the same index in every namespace, no look-up needed.
            sandbox.netlink.set_up(&Link::loopback(), true).await?;
        }
        info!(key = %sandbox.key.display(), new, "sandbox ready");
        Ok(sandbox)
    }

    /// The sandbox of a namespace opened by [`Host::open_sandboxes`], with its handle.
    pub(crate) fn reopened(host: Host, key: &Path, netns: Netns, netlink: NetlinkHandle) -> Self {
        Self {
            key: key.to_path_buf(),
            label: netlink.label().to_owned(),
            netns,
            netlink,
            host,
            origins: Mutex::new(HashMap::new()),
        }
    }

    /// The sandbox key: the file its namespace is bound to.
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The sandbox's namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The netlink handle inside the sandbox, for operations this type does not wrap.
    pub fn netlink(&self) -> &NetlinkHandle {
        &self.netlink
    }

    /// The host the sandbox takes interfaces from.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Runs `f` on a dedicated thread inside the sandbox's namespace (libnetwork's
    /// `InvokeFunc`); see [`Netns::run_in`]. Sockets made by `f` stay in the sandbox.
    ///
    /// # Errors
    /// [`Error::Os`] when the thread cannot be started or cannot join the namespace.
    pub async fn run_in<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.netns.run_in(f).await
    }

    /// Removes the sandbox: closes its handle and descriptor, detaches the mount from the key
    /// (lazily: whatever still uses the namespace keeps working until it lets go) and removes
    /// the key file. The kernel frees the namespace and the links created in it once the last
    /// user is gone. Best effort.
    ///
    /// # Errors
    /// [`Error::Teardown`] listing the steps that failed.
    pub fn destroy(self) -> Result<()> {
        let Self {
            key,
            netns,
            netlink,
            ..
        } = self;
        drop(netlink);
        drop(netns);
        netns::unbind(&key)?;
        info!(key = %key.display(), "sandbox destroyed");
        Ok(())
    }

    // ----- interfaces -----

    /// Moves the host interface `src_name` into the sandbox as `<dst_prefix><n>` (the lowest
    /// free `n`: `eth0`, `eth1`, ...) and configures it (libnetwork's `AddInterface`). On
    /// failure the interface goes back to the host under its own name, with its MAC and MTU
    /// restored. Returns the interface as it is now.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the host has no `src_name`, [`Error::Conflict`] when an address
    /// overlaps a route of the sandbox, [`Error::Netlink`] when the kernel refuses a step.
    pub async fn add_interface(
        &self,
        src_name: &str,
        dst_prefix: &str,
        opts: &InterfaceOptions,
    ) -> Result<Link> {
        let mut origins = self.origins.lock().await;
        let host = self.host.netlink();
        let original = host.link_by_name(src_name).await?;
        let dst = self.next_name(dst_prefix).await?;

        // One request moves and renames: the link arrives down and without addresses.
        host.move_to_netns(&original, &self.netns, Some(&dst))
            .await?;
        debug!(sandbox = %self.label, src_name, dst, "interface moved in");

        let link = self.netlink.link_by_name(&dst).await?;
        match self.configure(&link, opts).await {
            Ok(link) => {
                origins.insert(dst, Origin::Moved(src_name.to_string()));
                Ok(link)
            }
            Err(e) => {
                // Undo: settings that survive a move are restored, then the link goes home.
                let mut undo = Vec::new();
                if opts.mac.is_some()
                    && let Some(mac) = original.mac
                {
                    undo.extend(self.netlink.set_mac(&link, mac).await.err());
                }
                if opts.mtu.is_some() {
                    undo.extend(self.netlink.set_mtu(&link, original.mtu).await.err());
                }
                match self
                    .netlink
                    .move_to_netns(&link, self.host.netns(), Some(src_name))
                    .await
                {
                    Ok(()) if original.up => match host.link_by_name(src_name).await {
                        Ok(back) => undo.extend(host.set_up(&back, true).await.err()),
                        Err(e) => undo.push(e),
                    },
                    Ok(()) => {}
                    Err(e) => undo.push(e),
                }
                Err(e.with_undo(undo))
            }
        }
    }

    /// Creates a veth pair whose sandbox end is born inside the sandbox as
    /// `<dst_prefix><n>` (much cheaper for the kernel than moving one in), and configures that
    /// end; the other end stays in the host as `host_name`, down. On failure the pair is
    /// deleted.
    ///
    /// # Errors
    /// As [`Sandbox::add_interface`]; [`Error::Netlink`] with `EEXIST` (conflict) when
    /// `host_name` is taken.
    pub async fn create_veth(
        &self,
        host_name: &str,
        dst_prefix: &str,
        opts: &InterfaceOptions,
    ) -> Result<VethPair> {
        let mut origins = self.origins.lock().await;
        let dst = self.next_name(dst_prefix).await?;
        let host_end = self
            .host
            .netlink()
            .create_veth(host_name, &dst, Some(&self.netns))
            .await?;
        let configured = match self.netlink.link_by_name(&dst).await {
            Ok(link) => self.configure(&link, opts).await,
            Err(e) => Err(e),
        };
        match configured {
            Ok(sandbox) => {
                origins.insert(dst, Origin::Created);
                Ok(VethPair {
                    host: host_end,
                    sandbox,
                })
            }
            Err(e) => {
                let undo = self.host.netlink().delete_link(&host_end).await.err();
                Err(e.with_undo(undo.into_iter().collect()))
            }
        }
    }

    /// Creates a bridge inside the sandbox called `name` and configures it (libnetwork's
    /// `Bridge` interface option, used by the overlay driver). On failure it is deleted.
    ///
    /// # Errors
    /// As [`Sandbox::add_interface`].
    pub async fn create_bridge(&self, name: &str, opts: &InterfaceOptions) -> Result<Link> {
        let mut origins = self.origins.lock().await;
        let bridge = self.netlink.create_bridge(name).await?;
        match self.configure(&bridge, opts).await {
            Ok(link) => {
                origins.insert(name.to_string(), Origin::Created);
                Ok(link)
            }
            Err(e) => {
                let undo = self.netlink.delete_link(&bridge).await.err();
                Err(e.with_undo(undo.into_iter().collect()))
            }
        }
    }

    /// Creates a link of `kind` directly inside the sandbox as `<dst_prefix><n>` and
    /// configures it: a macvlan or ipvlan whose parent (`kind`'s parent index) is a link of the
    /// host, as the macvlan and ipvlan drivers make at join (`ip link add link PARENT NAME
    /// netns NS type ...`). Being born inside costs the kernel far less than a move. On
    /// failure the link is deleted. Removing it ([`Sandbox::remove_interface`]) deletes it.
    ///
    /// # Errors
    /// As [`Sandbox::add_interface`]; [`Error::Netlink`] from
    /// [`NetlinkHandle::create_link`] when the kernel refuses the link (see
    /// [`crate::link_kinds::is_unsupported_link_type`]).
    pub async fn create_interface(
        &self,
        kind: &crate::link_kinds::LinkKind,
        dst_prefix: &str,
        opts: &InterfaceOptions,
    ) -> Result<Link> {
        let mut origins = self.origins.lock().await;
        let dst = self.next_name(dst_prefix).await?;
        self.host
            .netlink()
            .create_link(&dst, kind, Some(&self.netns))
            .await?;
        // Should the look-up fail, the link cannot be found to be deleted either; it goes
        // with the namespace.
        let link = self.netlink.link_by_name(&dst).await?;
        match self.configure(&link, opts).await {
            Ok(link) => {
                debug!(sandbox = %self.label, name = %dst, kind = kind.name(), "interface created");
                origins.insert(dst, Origin::Created);
                Ok(link)
            }
            Err(e) => {
                let undo = self.netlink.delete_link(&link).await.err();
                Err(e.with_undo(undo.into_iter().collect()))
            }
        }
    }

    /// Records where an interface of a reopened sandbox came from, so that
    /// [`Sandbox::remove_interface`] knows what to do with it (libnetwork's `Restore`).
    pub async fn restore_interface(&self, name: &str, origin: Origin) {
        self.origins.lock().await.insert(name.to_string(), origin);
    }

    /// Takes an interface out of the sandbox: one moved in goes back to the host under its
    /// original name (down, addresses gone), one created inside is deleted (libnetwork's
    /// `Interface.Remove`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the sandbox has no such interface, [`Error::InvalidInput`]
    /// when its origin is unknown (reopened sandbox without [`Sandbox::restore_interface`]),
    /// [`Error::Netlink`] when the kernel refuses (for example the original name is taken in
    /// the host again); the interface then stays where it is.
    pub async fn remove_interface(&self, name: &str) -> Result<()> {
        let mut origins = self.origins.lock().await;
        let Some(origin) = origins.get(name).cloned() else {
            return Err(Error::invalid(
                format!("remove interface {name} from {}", self.label),
                "its origin is unknown (restore it first)",
            ));
        };
        let link = self.netlink.link_by_name(name).await?;
        match &origin {
            Origin::Moved(src) => {
                self.netlink
                    .move_to_netns(&link, self.host.netns(), Some(src))
                    .await?;
            }
            Origin::Created => self.netlink.delete_link(&link).await?,
        }
        origins.remove(name);
        debug!(sandbox = %self.label, name, ?origin, "interface removed");
        Ok(())
    }

    /// The sandbox's interfaces (all but `lo`) with their settings, from the kernel.
    ///
    /// # Errors
    /// [`Error::Netlink`] when a dump fails.
    pub async fn interfaces(&self) -> Result<Vec<InterfaceInfo>> {
        let (links, addresses) =
            tokio::try_join!(self.netlink.links(), self.netlink.addresses(None))?;
        let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
        Ok(links
            .into_iter()
            .filter(|l| l.index != LOOPBACK_INDEX)
            .map(|link| InterfaceInfo {
                master: link.master.and_then(|m| names.get(&m).cloned()),
                addresses: addresses
                    .iter()
                    .filter(|a| a.index == link.index)
                    .cloned()
                    .collect(),
                link,
            })
            .collect())
    }

    /// Adds addresses to a sandbox interface, checking each against the sandbox's routes; if
    /// one fails, those added before it are removed.
    ///
    /// # Errors
    /// As [`InterfaceOptions::addresses`] describes; nothing is left added.
    pub async fn add_addresses(&self, name: &str, addresses: &[IpNet]) -> Result<()> {
        let link = self.netlink.link_by_name(name).await?;
        let mut added = Vec::new();
        let result = self
            .add_addresses_to(&link, addresses, true, &mut added)
            .await;
        if let Err(e) = result {
            let mut undo = Vec::new();
            for net in added.iter().rev() {
                undo.extend(self.netlink.delete_address(&link, *net).await.err());
            }
            return Err(e.with_undo(undo));
        }
        Ok(())
    }

    /// Removes an address from a sandbox interface.
    ///
    /// # Errors
    /// [`Error::NotFound`]/[`Error::Netlink`] when the interface or the address is not there.
    pub async fn remove_address(&self, name: &str, address: IpNet) -> Result<()> {
        let link = self.netlink.link_by_name(name).await?;
        self.netlink.delete_address(&link, address).await
    }

    /// The lowest free `<prefix><n>` among the sandbox's link names.
    async fn next_name(&self, prefix: &str) -> Result<String> {
        let links = self.netlink.links().await?;
        let taken: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        let name = (0u32..)
            .map(|n| format!("{prefix}{n}"))
            .find(|candidate| !taken.contains(&candidate.as_str()))
            .expect("an unbounded range always has a free index");
        if name.len() > 15 {
            return Err(Error::invalid(
                format!("name an interface in {}", self.label),
                format!("{name:?} is longer than 15 bytes"),
            ));
        }
        Ok(name)
    }

    /// Applies `opts` to a link that just entered the sandbox (down, no addresses), in
    /// libnetwork's order: MAC, MTU, addresses, master, link-local addresses, up, routes. The
    /// caller undoes everything by moving the link out or deleting it.
    async fn configure(&self, link: &Link, opts: &InterfaceOptions) -> Result<Link> {
        if let Some(mac) = opts.mac {
            self.netlink.set_mac(link, mac).await?;
        }
        if let Some(mtu) = opts.mtu {
            self.netlink.set_mtu(link, mtu).await?;
        }
        let mut added = Vec::new();
        self.add_addresses_to(link, &opts.addresses, true, &mut added)
            .await?;
        if let Some(master) = &opts.master {
            let bridge = self.netlink.link_by_name(master).await?;
            self.netlink.set_master(link, &bridge).await?;
        }
        self.add_addresses_to(link, &opts.link_local_addresses, false, &mut added)
            .await?;
        self.netlink.set_up(link, true).await?;
        for destination in &opts.routes {
            let route = Route {
                destination: *destination,
                gateway: None,
                index: Some(link.index),
                interface: Some(link.name.clone()),
                link_scope: true,
            };
            self.netlink.add_route(&route).await?;
        }
        self.netlink.link_by_index(link.index).await
    }

    /// Adds `addresses` to `link`, recording each one added in `added`. With `check`, each is
    /// first compared with the sandbox's main-table routes on other links (libnetwork's
    /// `checkRouteConflict`).
    async fn add_addresses_to(
        &self,
        link: &Link,
        addresses: &[IpNet],
        check: bool,
        added: &mut Vec<IpNet>,
    ) -> Result<()> {
        for net in addresses {
            if check {
                self.check_route_conflict(link, *net).await?;
            }
            let ipv6 = net.addr().is_ipv6();
            match self.netlink.add_address(link, *net, ipv6).await {
                Ok(()) => {}
                Err(e) if ipv6 && e.raw_os_error() == Some(nix::libc::EACCES) => {
                    // IPv6 is disabled on the link: enable it, as libnetwork's set-ipv6 does.
                    self.enable_ipv6(link).await?;
                    self.netlink.add_address(link, *net, true).await?;
                }
                Err(e) => return Err(e),
            }
            added.push(*net);
        }
        Ok(())
    }

    async fn enable_ipv6(&self, link: &Link) -> Result<()> {
        let key = format!("net/ipv6/conf/{}/disable_ipv6", link.name);
        debug!(sandbox = %self.label, link = %link.name, "enabling IPv6");
        self.run_in(move || sysctl::write(&key, "0")).await??;
        Ok(())
    }

    async fn check_route_conflict(&self, link: &Link, net: IpNet) -> Result<()> {
        let routes = self.netlink.routes(net.addr().is_ipv6()).await?;
        for route in routes {
            if route.is_default() || route.index == Some(link.index) {
                continue;
            }
            if route.destination.contains(&net.addr()) || net.contains(&route.destination.network())
            {
                return Err(Error::Conflict {
                    op: format!("add address {net} to {} in {}", link.name, self.label),
                    reason: format!("it conflicts with existing route {route}"),
                });
            }
        }
        Ok(())
    }

    // ----- gateways and routes -----

    /// Sets the default route of the gateway's family through `gateway`, out of the interface
    /// that reaches it directly (libnetwork's `SetGateway`/`SetGatewayIPv6`).
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the gateway when no interface reaches it directly,
    /// [`Error::Netlink`] (`EEXIST` → conflict) when a default route exists already.
    pub async fn set_gateway(&self, gateway: IpAddr) -> Result<()> {
        let op = || format!("set gateway {gateway} in {}", self.label);
        let link = self.link_reaching(gateway, &op).await?;
        self.netlink
            .add_route(&Route::default_via(gateway, link.index, &link.name))
            .await
    }

    /// Removes the default route through `gateway` (libnetwork's `UnsetGateway`).
    ///
    /// # Errors
    /// [`Error::Netlink`] (`ESRCH` → not found) when there is no such route.
    pub async fn unset_gateway(&self, gateway: IpAddr) -> Result<()> {
        let mut route = Route::default_via(gateway, 0, "");
        route.index = None;
        route.interface = None;
        self.netlink.delete_route(&route).await
    }

    /// The gateway of the default route of one family, if there is one.
    ///
    /// # Errors
    /// [`Error::Netlink`] when the dump fails.
    pub async fn gateway(&self, ipv6: bool) -> Result<Option<IpAddr>> {
        let routes = self.netlink.routes(ipv6).await?;
        Ok(routes
            .into_iter()
            .find(Route::is_default)
            .and_then(|r| r.gateway))
    }

    /// Adds a static route (libnetwork's `AddStaticRoute`).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown interface or an unreachable gateway,
    /// [`Error::Netlink`] (`EEXIST` → conflict) when the kernel refuses.
    pub async fn add_static_route(&self, route: &StaticRoute) -> Result<()> {
        let r = self.resolve(route).await?;
        self.netlink.add_route(&r).await
    }

    /// Removes a static route (libnetwork's `RemoveStaticRoute`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the route is not there.
    pub async fn remove_static_route(&self, route: &StaticRoute) -> Result<()> {
        let r = self.resolve(route).await?;
        self.netlink.delete_route(&r).await.map_err(|e| {
            if is_missing_route(&e) {
                Error::NotFound {
                    op: format!("remove route in {}", self.label),
                    what: format!("route {r}"),
                }
            } else {
                e
            }
        })
    }

    /// The main-table routes of both families, with interface names.
    ///
    /// # Errors
    /// [`Error::Netlink`] when a dump fails.
    pub async fn routes(&self) -> Result<Vec<Route>> {
        let (links, v4, v6) = tokio::try_join!(
            self.netlink.links(),
            self.netlink.routes(false),
            self.netlink.routes(true)
        )?;
        let names: HashMap<u32, String> = links.into_iter().map(|l| (l.index, l.name)).collect();
        Ok(v4
            .into_iter()
            .chain(v6)
            .map(|mut r| {
                r.interface = r.index.and_then(|i| names.get(&i).cloned());
                r
            })
            .collect())
    }

    async fn resolve(&self, route: &StaticRoute) -> Result<Route> {
        let op = || format!("route {} in {}", route.destination, self.label);
        match &route.next_hop {
            NextHop::Interface(name) => {
                let link = self.netlink.link_by_name(name).await?;
                Ok(Route {
                    destination: route.destination,
                    gateway: None,
                    index: Some(link.index),
                    interface: Some(link.name),
                    link_scope: true,
                })
            }
            NextHop::Gateway(gw) => {
                let link = self.link_reaching(*gw, &op).await?;
                Ok(Route {
                    destination: route.destination,
                    gateway: Some(*gw),
                    index: Some(link.index),
                    interface: Some(link.name),
                    link_scope: false,
                })
            }
        }
    }

    /// The interface through which `gateway` is directly reachable.
    async fn link_reaching(
        &self,
        gateway: IpAddr,
        op: &(dyn Fn() -> String + Sync),
    ) -> Result<Link> {
        let not_found = || Error::NotFound {
            op: op(),
            what: format!("route for the gateway {gateway}"),
        };
        let lookup = match self.netlink.route_get(gateway).await {
            Ok(lookup) => lookup,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ENETUNREACH | nix::libc::EHOSTUNREACH)
                ) =>
            {
                return Err(not_found());
            }
            Err(e) => return Err(e),
        };
        if lookup.gateway.is_some() || !lookup.unicast || lookup.index == 0 {
            return Err(not_found());
        }
        self.netlink.link_by_index(lookup.index).await
    }

    // ----- neighbours -----

    /// Adds a permanent neighbour entry on the sandbox interface `link` (libnetwork's
    /// `AddNeighbor`). Without `force`, an existing entry for the same address is a conflict;
    /// with it, the entry is replaced.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown interface, [`Error::Netlink`] (`EEXIST` → conflict)
    /// when the entry exists.
    pub async fn add_neighbour(
        &self,
        link: &str,
        neighbour: &Neighbour,
        force: bool,
    ) -> Result<()> {
        let link = self.netlink.link_by_name(link).await?;
        self.netlink.add_neighbour(&link, neighbour, force).await
    }

    /// Deletes a permanent neighbour entry from the sandbox interface `link` (libnetwork's
    /// `DeleteNeighbor`).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown interface, [`Error::Netlink`] (`ENOENT` → not found)
    /// when there is no such entry.
    pub async fn delete_neighbour(&self, link: &str, neighbour: &Neighbour) -> Result<()> {
        let link = self.netlink.link_by_name(link).await?;
        self.netlink.delete_neighbour(&link, neighbour).await
    }

    /// The permanent neighbour and forwarding entries of the sandbox, by interface name.
    ///
    /// # Errors
    /// [`Error::Netlink`] when a dump fails.
    pub async fn neighbours(&self) -> Result<Vec<(String, Neighbour)>> {
        let (links, neighbours) =
            tokio::try_join!(self.netlink.links(), self.netlink.neighbours())?;
        let names: HashMap<u32, String> = links.into_iter().map(|l| (l.index, l.name)).collect();
        Ok(neighbours
            .into_iter()
            .map(|(index, n)| {
                (
                    names
                        .get(&index)
                        .cloned()
                        .unwrap_or_else(|| format!("#{index}")),
                    n,
                )
            })
            .collect())
    }

    // ----- sysctls -----

    /// Reads a `net.` sysctl inside the sandbox.
    ///
    /// # Errors
    /// See [`sysctl::read`].
    pub async fn sysctl(&self, key: &str) -> Result<String> {
        let key = key.to_string();
        self.run_in(move || sysctl::read(&key)).await?
    }

    /// Sets `net.` sysctls inside the sandbox, in order, on one thread (libnetwork's
    /// `ApplyOSTweaks`); each is read first and written only when it differs. If one fails,
    /// those already changed are set back.
    ///
    /// # Errors
    /// See [`sysctl::write`]; nothing is left changed.
    pub async fn set_sysctls(&self, settings: &[(&str, &str)]) -> Result<()> {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        self.run_in(move || {
            let mut done: Vec<(String, String)> = Vec::new();
            for (key, value) in &settings {
                match sysctl::write(key, value) {
                    Ok(old) => done.push((key.clone(), old)),
                    Err(e) => {
                        let undo = done
                            .iter()
                            .rev()
                            .filter_map(|(k, old)| sysctl::write(k, old).err())
                            .collect();
                        return Err(e.with_undo(undo));
                    }
                }
            }
            Ok(())
        })
        .await?
    }

    /// Sets one `net.` sysctl inside the sandbox; see [`Sandbox::set_sysctls`].
    ///
    /// # Errors
    /// See [`sysctl::write`].
    pub async fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.set_sysctls(&[(key, value)]).await
    }
}
