//! Network and IPAM drivers served by Docker plugins: libnetwork's `drivers/remote` and
//! `ipams/remote`. Existing network plugins (`NetworkDriver`) and IPAM plugins (`IpamDriver`)
//! written for Docker work unchanged.
//!
//! [`RemoteDriver`] implements the driver contract (`libnetwork_driverapi::Driver`) by calling
//! `POST /NetworkDriver.<Method>` on the plugin; [`RemoteIpam`] implements
//! `libnetwork_ipamapi::Ipam` with `POST /IpamDriver.<Method>`. Plugins are found and activated
//! by `libnetwork-plugins`; [`load_network_driver`] and [`load_ipam_driver`] find a plugin by
//! name and register it (what libnetwork's controller does when a network names an unknown
//! driver), [`register_plugin`] registers an activated plugin for every kind it implements.
//!
//! # Mapping to libnetwork
//! - Capabilities: `GetCapabilities` must give `Scope` `local` or `global` (else
//!   [`Error::InvalidCapability`] and no driver); an empty `ConnectivityScope` is the `Scope`.
//!   IPAM plugins that do not know `GetCapabilities` get the default capabilities.
//! - Requests carry Docker's JSON ([`network_api`], [`ipam_api`]), including Docker's option
//!   maps (`com.docker.network.generic`, `com.docker.network.enable_ipv6`,
//!   `com.docker.network.endpoint.exposedports`, `com.docker.network.portmap`, ...).
//! - A non-empty `Err` (network) or `Error` (IPAM) in an answer fails the call with the
//!   plugin's message: the network driver error's source displays exactly the message, and
//!   the IPAM error is `Remote` (`remote: <message>`, as libnetwork).
//! - A 404 to `ProgramExternalConnectivity`/`RevokeExternalConnectivity` is success; only node
//!   discovery notifications are forwarded; table events are not.
//! - A plugin's `CreateEndpoint` answer fills in the interface's unset MAC and addresses; a
//!   change to a set one is refused and the endpoint deleted again (libnetwork's rollback).
//! - The join answer's `InterfaceName {SrcName, DstPrefix}` becomes
//!   `JoinInterface::Host { src_name, dst_prefix }`: the plugin made the interface in the host
//!   namespace and the controller moves it into the sandbox.
//!
//! # Layout
//! - [`driver`]: the network driver, [`RemoteDriver`].
//! - [`ipam`]: the IPAM driver, [`RemoteIpam`], and the runtime its blocking calls run on.
//! - [`network_api`], [`ipam_api`]: the wire types.
//! - [`error`]: the errors, [`Error`] and [`Compensation`].
//! - this file: registration.
//!
//! # Design decisions
//! - **Nothing half made.** The drivers keep no state; the plugin does. When a call that
//!   creates something fails with an unknown outcome (timeout, lost connection, garbage
//!   answer: `libnetwork_plugins::Error::outcome_unknown`), or succeeds with an answer that
//!   cannot be used, the driver sends the undo call at once (`CreateNetwork` →
//!   `DeleteNetwork`, `CreateEndpoint` → `DeleteEndpoint`, `Join` → `Leave`,
//!   `AllocateNetwork` → `FreeNetwork`, `ProgramExternalConnectivity` →
//!   `RevokeExternalConnectivity`, `RequestAddress` of a preferred address →
//!   `ReleaseAddress`, an unusable `RequestPool` answer → `ReleasePool`) and the error says so
//!   ([`Error::compensation`]). libnetwork only undoes rejected interface fields and join
//!   settings, and leaves an unparsable gateway joined. A `RequestPool` or dynamic
//!   `RequestAddress` whose answer was lost cannot be undone (the id or address is the
//!   plugin's), and the error says the plugin may hold it.
//! - **A plugin echoing the controller's MAC or address is accepted**; libnetwork refuses even
//!   an identical value.
//! - **Blocking IPAM over the async client**: see [`ipam`]; calls run on a one-thread runtime
//!   of this crate and the caller waits on a channel, never `block_on` inside a runtime.
//! - **Plugins may replace plugins, never built-in drivers**: registration goes through
//!   `libnetwork_driverapi::Registry`, whose rule this is; both drivers say they are not
//!   built in.
#![forbid(unsafe_code)]

use std::sync::Arc;

use libnetwork_driverapi::{
    NETWORK_PLUGIN_ENDPOINT_TYPE, RegisteredDriver, RegisteredIpam, Registry,
};
use libnetwork_ipamapi::PLUGIN_ENDPOINT_TYPE as IPAM_PLUGIN_ENDPOINT_TYPE;
use libnetwork_plugins::{Plugin, Plugins};

pub mod driver;
pub mod error;
pub mod ipam;
pub mod ipam_api;
pub mod network_api;

pub use driver::RemoteDriver;
pub use error::{Compensation, Error};
pub use ipam::RemoteIpam;

/// What [`register_plugin`] registered.
#[derive(Debug, Clone, Default)]
pub struct Registered {
    /// The network driver, if the plugin implements `NetworkDriver`.
    pub network: Option<Arc<RemoteDriver>>,
    /// The IPAM driver, if the plugin implements `IpamDriver`.
    pub ipam: Option<Arc<RemoteIpam>>,
}

/// Registers the activated `plugin` as network driver under its name.
///
/// # Errors
/// As [`RemoteDriver::new`]; [`Error::Register`] when a built-in driver has the name.
pub async fn register_network_driver(
    registry: &Registry,
    plugin: &Plugin,
) -> Result<Arc<RemoteDriver>, Error> {
    let driver = Arc::new(RemoteDriver::new(plugin).await?);
    registry
        .register_driver(plugin.name(), driver.clone())
        .map_err(|source| Error::Register {
            plugin: plugin.name().to_owned(),
            source: Box::new(source),
        })?;
    Ok(driver)
}

/// Registers the activated `plugin` as IPAM driver under its name. The registry asks the
/// plugin for its default address spaces (a blocking call, run on the blocking pool).
///
/// # Errors
/// As [`RemoteIpam::new`]; [`Error::Register`] when a built-in IPAM driver has the name or
/// the plugin cannot tell its default address spaces.
pub async fn register_ipam_driver(
    registry: &Arc<Registry>,
    plugin: &Plugin,
) -> Result<Arc<RemoteIpam>, Error> {
    let ipam = Arc::new(RemoteIpam::new(plugin).await?);
    let name = plugin.name().to_owned();
    let registering = {
        let (registry, ipam, name) = (registry.clone(), ipam.clone(), name.clone());
        tokio::task::spawn_blocking(move || registry.register_ipam_driver(&name, ipam))
    };
    let registered = match registering.await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    };
    registered.map_err(|source| Error::Register {
        plugin: name,
        source: Box::new(source),
    })?;
    Ok(ipam)
}

/// Registers the activated `plugin` for every kind it implements: as network driver and/or
/// IPAM driver under its name. A plugin of neither kind registers nothing.
///
/// # Errors
/// The first registration error; a network driver registered before an IPAM registration
/// failed stays registered (it works on its own).
pub async fn register_plugin(
    registry: &Arc<Registry>,
    plugin: &Plugin,
) -> Result<Registered, Error> {
    let mut registered = Registered::default();
    if plugin.implements(NETWORK_PLUGIN_ENDPOINT_TYPE) {
        registered.network = Some(register_network_driver(registry, plugin).await?);
    }
    if plugin.implements(IPAM_PLUGIN_ENDPOINT_TYPE) {
        registered.ipam = Some(register_ipam_driver(registry, plugin).await?);
    }
    Ok(registered)
}

/// Finds and activates the network plugin `name` and registers it (libnetwork's
/// `loadDriver`).
///
/// # Errors
/// Discovery and activation errors, [`libnetwork_plugins::Error::NotImplements`], and those
/// of [`register_network_driver`].
pub async fn load_network_driver(
    registry: &Registry,
    plugins: &Plugins,
    name: &str,
) -> Result<RegisteredDriver, Error> {
    let plugin = plugins.get(name, NETWORK_PLUGIN_ENDPOINT_TYPE).await?;
    register_network_driver(registry, &plugin).await?;
    registry.driver(name).ok_or_else(|| Error::Register {
        plugin: name.to_owned(),
        source: Box::new(libnetwork_driverapi::Error::DriverNotFound(name.to_owned())),
    })
}

/// Finds and activates the IPAM plugin `name` and registers it (libnetwork's
/// `loadIPAMDriver`).
///
/// # Errors
/// As [`load_network_driver`], for IPAM.
pub async fn load_ipam_driver(
    registry: &Arc<Registry>,
    plugins: &Plugins,
    name: &str,
) -> Result<RegisteredIpam, Error> {
    let plugin = plugins.get(name, IPAM_PLUGIN_ENDPOINT_TYPE).await?;
    register_ipam_driver(registry, &plugin).await?;
    registry.ipam(name).ok_or_else(|| Error::Register {
        plugin: name.to_owned(),
        source: Box::new(libnetwork_driverapi::Error::IpamNotFound(name.to_owned())),
    })
}
