//! Kernel setup of a network's bridge (libnetwork's `setup_device.go`, `setup_ipv4.go`,
//! `setup_ipv6.go`, `setup_verify.go`, `setup_ip_forwarding.go`): create or reuse the bridge,
//! give it a stable MAC, its addresses and sysctls, and bring it up. Every step that changes
//! something records how to undo it.

use std::collections::HashMap;

use ipnet::IpNet;
use libnetwork_osl::{Address, Host, Link, sysctl};
use tracing::{debug, info, warn};

use crate::config::{BridgeIfaceCreator, DEFAULT_BRIDGE_NAME, DriverConfig, NetworkConfig};
use crate::error::{Error, Result};
use crate::links::HostLinks;
use crate::netutils;

/// IPv6 link-local address every IPv6 bridge gets.
pub(crate) const BRIDGE_LINK_LOCAL_V6: &str = "fe80::1/64";

/// One step to undo.
#[derive(Debug)]
enum UndoStep {
    /// Delete a link the setup created.
    DeleteLink(Link),
    /// Remove an address the setup added.
    DeleteAddress(Link, IpNet),
    /// Put back an address the setup removed.
    AddAddress(Link, IpNet),
}

/// What to undo if a later step fails, in reverse order.
#[derive(Debug, Default)]
pub(crate) struct Undo(Vec<UndoStep>);

impl Undo {
    /// Runs the steps in reverse; returns the failures.
    pub(crate) async fn run(self, host: &Host) -> Vec<Error> {
        let nl = host.netlink();
        let mut failures = Vec::new();
        for step in self.0.into_iter().rev() {
            let result = match &step {
                UndoStep::DeleteLink(link) => nl
                    .delete_link(link)
                    .await
                    .map_err(|e| Error::kernel("undo: delete bridge", e)),
                UndoStep::DeleteAddress(link, net) => nl
                    .delete_address(link, *net)
                    .await
                    .map_err(|e| Error::kernel("undo: remove address", e)),
                UndoStep::AddAddress(link, net) => nl
                    .add_address(link, *net, net.addr().is_ipv6())
                    .await
                    .map_err(|e| Error::kernel("undo: restore address", e)),
            };
            if let Err(e) = result {
                failures.push(e);
            }
        }
        failures
    }
}

/// The bridge of a network after setup.
#[derive(Debug)]
pub(crate) struct BridgeSetup {
    /// The bridge link.
    pub(crate) link: Link,
    /// Whether the driver created it (now or before a restart).
    pub(crate) creator: BridgeIfaceCreator,
    /// How to undo this setup.
    pub(crate) undo: Undo,
}

/// Sets the network's bridge up, creating it when missing. On failure, whatever was done is
/// undone.
pub(crate) async fn setup_bridge(
    host: &Host,
    cfg: &NetworkConfig,
    driver: &DriverConfig,
) -> Result<BridgeSetup> {
    setup_bridge_with(host, cfg, driver, None).await
}

/// What a restore reads of the host once, instead of once per network or endpoint: the ports
/// of every bridge (by name) and the IPv4 addresses of every link (by index); the IPv6
/// addresses are read at the first IPv6 network that needs them (every veth has an IPv6
/// link-local address, so that dump is by far the larger). A part that could not be read is
/// `None`; it is then looked up per bridge or endpoint.
#[derive(Debug, Default)]
pub(crate) struct HostSnapshot {
    pub(crate) ports: Option<HashMap<String, Link>>,
    pub(crate) addresses_v4: Option<AddressesByLink>,
    addresses_v6: tokio::sync::OnceCell<Option<AddressesByLink>>,
}

/// Addresses by link index.
pub(crate) type AddressesByLink = HashMap<u32, Vec<Address>>;

fn by_link(all: Vec<Address>) -> AddressesByLink {
    let mut by_link: AddressesByLink = HashMap::new();
    for a in all {
        by_link.entry(a.index).or_default().push(a);
    }
    by_link
}

impl HostSnapshot {
    /// Reads the host's bridge ports and IPv4 addresses (two dumps). A dump that fails is
    /// logged and left out.
    pub(crate) async fn read(host: &Host) -> Self {
        let nl = host.netlink();
        let (ports, addresses) = tokio::join!(host.bridge_ports(), nl.addresses_of_family(false));
        let ports = ports
            .inspect_err(|e| warn!(error = %e, "bridge ports not listed; looked up one by one"))
            .ok()
            .map(|ports| ports.into_iter().map(|l| (l.name.clone(), l)).collect());
        let addresses_v4 = addresses
            .inspect_err(|e| warn!(error = %e, "host addresses not listed; listed per bridge"))
            .ok()
            .map(by_link);
        Self {
            ports,
            addresses_v4,
            addresses_v6: tokio::sync::OnceCell::new(),
        }
    }

    /// The addresses of the link `index` as far as a network needs them (IPv4, and IPv6 when
    /// `ipv6`), `None` when they were not read. The IPv6 addresses of the host are dumped once,
    /// at the first call that asks for them.
    async fn addresses(&self, host: &Host, index: u32, ipv6: bool) -> Option<Vec<Address>> {
        let mut out = self
            .addresses_v4
            .as_ref()?
            .get(&index)
            .cloned()
            .unwrap_or_default();
        if ipv6 {
            let v6 = self
                .addresses_v6
                .get_or_init(|| async {
                    host.netlink()
                        .addresses_of_family(true)
                        .await
                        .inspect_err(|e| {
                            warn!(error = %e, "host IPv6 addresses not listed; listed per bridge");
                        })
                        .ok()
                        .map(by_link)
                })
                .await
                .as_ref()?;
            out.extend(v6.get(&index).cloned().unwrap_or_default());
        }
        Some(out)
    }
}

/// [`setup_bridge`], with the addresses of an existing bridge taken from `snapshot` when it
/// has them.
pub(crate) async fn setup_bridge_with(
    host: &Host,
    cfg: &NetworkConfig,
    driver: &DriverConfig,
    snapshot: Option<&HostSnapshot>,
) -> Result<BridgeSetup> {
    let mut undo = Undo::default();
    match setup_steps(host, cfg, driver, snapshot, &mut undo).await {
        Ok((link, creator)) => Ok(BridgeSetup {
            link,
            creator,
            undo,
        }),
        Err(e) => {
            let failures = undo.run(host).await;
            Err(e.with_undo(failures))
        }
    }
}

async fn setup_steps(
    host: &Host,
    cfg: &NetworkConfig,
    driver: &DriverConfig,
    snapshot: Option<&HostSnapshot>,
    undo: &mut Undo,
) -> Result<(Link, BridgeIfaceCreator)> {
    let nl = host.netlink();
    let name = cfg.bridge_name.as_str();
    let op = |what: &str| format!("set up bridge {name} of network {}: {what}", cfg.id);

    // 1. The device: reuse an existing bridge, or create one with a random, fixed MAC (a
    //    bridge without a set MAC takes the lowest MAC of its ports, which changes).
    let mut reused = false;
    let (mut link, creator) = match nl.link_by_name(name).await {
        Ok(link) => {
            if link.kind.as_deref() != Some("bridge") {
                return Err(Error::NotABridge {
                    network: cfg.id.clone(),
                    name: name.to_string(),
                });
            }
            // A bridge we made before a restart is still ours to delete.
            let creator = match cfg.bridge_iface_creator {
                BridgeIfaceCreator::Driver => BridgeIfaceCreator::Driver,
                _ => BridgeIfaceCreator::User,
            };
            debug!(bridge = name, ?creator, "reusing existing bridge");
            reused = true;
            (link, creator)
        }
        Err(e) if e.is_not_found() => {
            if cfg.default_bridge && name != DEFAULT_BRIDGE_NAME {
                return Err(Error::NonDefaultBridge {
                    network: cfg.id.clone(),
                    name: name.to_string(),
                });
            }
            let link = nl
                .create_bridge(name)
                .await
                .map_err(|e| Error::kernel(op("create"), e))?;
            undo.0.push(UndoStep::DeleteLink(link.clone()));
            nl.set_mac(&link, netutils::random_mac())
                .await
                .map_err(|e| Error::kernel(op("set MAC"), e))?;
            debug!(bridge = name, "bridge created");
            (link, BridgeIfaceCreator::Driver)
        }
        Err(e) => return Err(Error::kernel(op("look up"), e)),
    };

    // 2. MTU.
    if let Some(mtu) = cfg.mtu()
        && link.mtu != mtu
    {
        nl.set_mtu(&link, mtu)
            .await
            .map_err(|e| Error::kernel(op("set MTU"), e))?;
        link.mtu = mtu;
    }

    // 3. Sysctls of the bridge, in one trip to the host namespace.
    set_bridge_sysctls(host, cfg, driver)
        .await
        .map_err(|e| Error::kernel(op("set sysctls"), e))?;

    // 4. IPv4: the gateway address, replacing any other IPv4 address.
    let known = match snapshot.filter(|_| reused) {
        Some(s) => s.addresses(host, link.index, cfg.enable_ipv6).await,
        None => None,
    };
    let existing = match known {
        Some(addresses) => addresses,
        None => nl
            .addresses(Some(link.index))
            .await
            .map_err(|e| Error::kernel(op("list addresses"), e))?,
    };
    if !cfg.inhibit_ipv4
        && let Some(want) = cfg.address_ipv4
        && !existing.iter().any(|a| a.net == want)
    {
        for old in existing.iter().filter(|a| a.net.addr().is_ipv4()) {
            nl.delete_address(&link, old.net)
                .await
                .map_err(|e| Error::kernel(op("replace IPv4 address"), e))?;
            undo.0.push(UndoStep::AddAddress(link.clone(), old.net));
        }
        nl.add_address(&link, want, false)
            .await
            .map_err(|e| Error::kernel(op("add IPv4 address"), e))?;
        undo.0.push(UndoStep::DeleteAddress(link.clone(), want));
    }

    // 5. IPv6: fe80::1/64 and the gateway address.
    if cfg.enable_ipv6 {
        let link_local: IpNet = BRIDGE_LINK_LOCAL_V6.parse().expect("valid constant");
        let wanted = std::iter::once(link_local).chain(cfg.address_ipv6);
        for want in wanted {
            if existing.iter().any(|a| a.net == want) {
                continue;
            }
            nl.add_address(&link, want, true)
                .await
                .map_err(|e| Error::kernel(op("add IPv6 address"), e))?;
            undo.0.push(UndoStep::DeleteAddress(link.clone(), want));
        }
    }

    // 6. Up.
    if !link.up {
        nl.set_up(&link, true)
            .await
            .map_err(|e| Error::kernel(op("bring up"), e))?;
        link.up = true;
    }
    info!(network = %cfg.id, bridge = name, ?creator, "bridge ready");
    Ok((link, creator))
}

/// `accept_ra=0` on the bridge (it is a router, not a host), `disable_ipv6=0` for IPv6
/// networks, `bridge-nf-call-iptables=1` when ICC is off and the firewall is on, and IPv6
/// forwarding for networks with an IPv6 subnet. (libnetwork also sets `route_localnet=1`
/// without the userland proxy, for its DNAT of loopback traffic; our firewall leaves loopback
/// to the proxy, so the bridge is not opened to 127.0.0.0/8 traffic.)
/// Missing IPv6 sysctls (IPv6 off in the kernel) are skipped for IPv4-only networks.
async fn set_bridge_sysctls(
    host: &Host,
    cfg: &NetworkConfig,
    driver: &DriverConfig,
) -> libnetwork_osl::Result<()> {
    let name = &cfg.bridge_name;
    let mut settings: Vec<(String, &'static str, bool)> = vec![(
        format!("net/ipv6/conf/{name}/accept_ra"),
        "0",
        cfg.enable_ipv6,
    )];
    if cfg.enable_ipv6 {
        settings.push((format!("net/ipv6/conf/{name}/disable_ipv6"), "0", true));
    }
    if !cfg.enable_icc && driver.enable_iptables {
        // Bridged traffic must pass the firewall for ICC to be blocked (br_netfilter).
        settings.push(("net/bridge/bridge-nf-call-iptables".into(), "1", true));
        if cfg.enable_ipv6 && driver.enable_ip6tables {
            settings.push(("net/bridge/bridge-nf-call-ip6tables".into(), "1", true));
        }
    }
    if driver.enable_ip_forwarding && cfg.subnet_v6().is_some() {
        settings.push(("net/ipv6/conf/default/forwarding".into(), "1", true));
        settings.push(("net/ipv6/conf/all/forwarding".into(), "1", true));
    }
    host.netns()
        .run_in(move || {
            for (key, value, required) in &settings {
                match sysctl::write(key, value) {
                    Ok(_) => {}
                    Err(e) if !required && e.is_not_found() => {
                        debug!(key, "sysctl missing, skipped");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await?
}

/// Sets `net.ipv4.ip_forward=1` in the host namespace (libnetwork's `setupIPForwarding`);
/// the firewall sets the `FORWARD` policy.
pub(crate) async fn enable_ip_forwarding(host: &Host) -> Result<()> {
    let old = host
        .netns()
        .run_in(|| sysctl::write("net.ipv4.ip_forward", "1"))
        .await
        .and_then(|r| r)
        .map_err(|e| Error::kernel("enable IP forwarding", e))?;
    if old != "1" {
        info!("IPv4 forwarding enabled");
    }
    Ok(())
}

/// Deletes the bridge of a network if the driver created it (a user's bridge and the
/// default bridge stay). The bridge is retired (down, renamed, in the reap group) now and
/// deleted by the reaper in the background: deleting a link waits for an RCU grace period
/// (tens of milliseconds) that the caller need not wait for. [`crate::BridgeDriver::settle`]
/// waits for it. A bridge already gone is fine.
pub(crate) async fn teardown_bridge(
    links: &HostLinks,
    cfg: &NetworkConfig,
    link: &Link,
) -> Result<()> {
    if cfg.bridge_iface_creator != BridgeIfaceCreator::Driver || cfg.default_bridge {
        debug!(bridge = %link.name, "bridge not ours to delete, kept");
        return Ok(());
    }
    links.retire_bridge(link).await?;
    debug!(bridge = %link.name, "bridge retired");
    Ok(())
}
