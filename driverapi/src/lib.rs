//! The network driver contract (libnetwork's `driverapi`), the well-known option keys
//! (libnetwork's `netlabel`) and the registry of network and IPAM drivers (libnetwork's
//! `drvregistry`).
//!
//! A network driver (bridge, host, null, overlay, ...) implements the async [`Driver`] trait;
//! the controller finds drivers by network type in a [`Registry`], together with the IPAM
//! drivers (`libnetwork_ipamapi::Ipam`) that hand out the pools given to networks as
//! [`IpamData`].
//!
//! # Mapping to libnetwork
//! - `driverapi.Driver` is [`Driver`]; `IPAMData` is [`IpamData`] (with `Validate` and `IsV6`
//!   as [`IpamData::validate`] and [`IpamData::is_v6`], and the same JSON field names, CIDR
//!   strings keeping their host bits); `Capability` is [`Capability`]; `EventType` and
//!   `ObjectType` keep their numeric codes ([`EventType::code`], [`ObjectType::code`]).
//! - The callback interfaces become data: `NetworkInfo` is [`CreateNetworkResult`],
//!   `InterfaceInfo` is [`EndpointInterface`] (its setters refuse to overwrite what is set, as
//!   libnetwork's do), `JoinInfo` is [`JoinInfo`].
//! - `drvregistry.DrvRegistry` is [`Registry`]; `DriverCallback.RegisterDriver` is
//!   [`Registry::register_driver`], and each built-in driver crate offers a `register` function
//!   in place of its `Init`.
//! - `netlabel` is the [`netlabel`] module, with the bridge driver's label keys added.
//!
//! # Layout
//! - this file: the contract types, [`Error`] and the [`Driver`] trait.
//! - `ipam_data`: [`IpamData::validate`], [`IpamData::is_v6`] and its `Display`.
//! - `interface`: the setters of [`EndpointInterface`].
//! - `codes`: numeric codes and names of [`EventType`], [`ObjectType`] and [`Capability`].
//! - [`netlabel`]: option and label keys, and [`netlabel::key_value`].
//! - `registry`: [`Registry`], [`RegisteredDriver`], [`RegisteredIpam`].
//!
//! # Design decisions
//! Differences from libnetwork's Go interface, on purpose:
//! - Options are typed ([`NetworkOptions`], [`EndpointOptions`], [`JoinOptions`]) instead of
//!   `map[string]interface{}`; driver-specific options stay a string map, as Docker's API
//!   sends them.
//! - libnetwork's callback interfaces (`NetworkInfo`, `InterfaceInfo`, `JoinInfo`) are plain
//!   structs the driver fills in ([`CreateNetworkResult`], [`EndpointInterface`],
//!   [`JoinInfo`]).
//! - A driver may create the container's interface directly inside the sandbox at join
//!   ([`JoinInterface::InSandbox`]): moving a link between namespaces costs the kernel 11 to 27
//!   ms, creating a veth whose peer is born in the sandbox about 1 ms. libnetwork's way (the
//!   driver makes an interface in the host namespace and the controller moves it in) stays
//!   available as [`JoinInterface::Host`] for drivers that need it (remote plugins).
//! - [`IpamData::pool`] is not optional, so JSON without a `Pool` does not parse (libnetwork
//!   parses it and lets `Validate` refuse it). A missing gateway is valid, where libnetwork's
//!   `Validate` demands one: the type makes it optional, and a null IPAM gives none.
//! - "Already set" on [`EndpointInterface`] is [`ErrorKind::Conflict`] where libnetwork says
//!   Forbidden, as the IPAM contract maps libnetwork's double allocations.
//! - The registry takes a driver's capability from the driver ([`Driver::capability`],
//!   `Ipam::capabilities`) instead of a separate argument, keeps its entries sorted by name
//!   (walks are deterministic), and has no notify hooks: whoever registers a driver (the
//!   controller) does its follow-up work itself. Walks run on a snapshot, with no lock held
//!   while the callback runs, so a callback may register drivers.
//! - The `MakeKVProvider`/`MakeKVClient` keys of libnetwork's `netlabel` are not here: they
//!   smuggle store handles through generic option maps, which typed options make needless.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

mod codes;
mod interface;
mod ipam_data;
pub mod netlabel;
mod registry;

pub use registry::{RegisteredDriver, RegisteredIpam, Registry};

pub use libnetwork_datastore::Scope;
pub use libnetwork_ipamapi::discover::DiscoveryData;
pub use libnetwork_osl::Sandbox;
pub use libnetwork_types::{ErrorKind, MacAddr, PortBinding, Protocol, TransportPort};

/// A string map of options or labels, as Docker's API sends them.
pub type Labels = BTreeMap<String, String>;

/// Plugin endpoint type of network drivers (`NetworkDriver`).
pub const NETWORK_PLUGIN_ENDPOINT_TYPE: &str = "NetworkDriver";

/// What a driver serves (libnetwork's `driverapi.Capability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Where the driver's network state is stored: this host (`Local`) or the cluster.
    pub data_scope: Scope,
    /// Whether the driver's networks span hosts.
    pub connectivity_scope: Scope,
}

/// One IPAM pool given to a network (libnetwork's `driverapi.IPAMData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamData {
    /// The address space the pool came from.
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// The pool.
    #[serde(rename = "Pool")]
    pub pool: IpNet,
    /// The gateway address, with the pool's prefix length.
    #[serde(rename = "Gateway", default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpNet>,
    /// Auxiliary addresses reserved by name (for example `DefaultGatewayIPv4`).
    #[serde(
        rename = "AuxAddresses",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, IpNet>,
}

/// Network creation options common to every driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    /// Driver-specific options (`docker network create -o k=v`), e.g.
    /// `com.docker.network.bridge.name`.
    pub driver_options: Labels,
    /// The network's labels (`com.docker.network.*` ones may carry driver options too).
    pub labels: Labels,
    /// `com.docker.network.enable_ipv6`.
    pub enable_ipv6: bool,
    /// `com.docker.network.internal`: no traffic to or from outside the network.
    pub internal: bool,
}

/// A request to create a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateNetworkRequest {
    /// The network's id.
    pub network_id: String,
    /// Its options.
    pub options: NetworkOptions,
    /// Its IPv4 pools (the bridge driver takes exactly one).
    pub ipv4: Vec<IpamData>,
    /// Its IPv6 pools.
    pub ipv6: Vec<IpamData>,
}

/// Kind of object a networkdb table entry belongs to (libnetwork's `ObjectType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// An endpoint (1).
    Endpoint,
    /// A network (2).
    Network,
    /// Anything else (3).
    Opaque,
}

/// What a driver asks of the controller when a network is created (libnetwork's
/// `NetworkInfo` callbacks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateNetworkResult {
    /// networkdb tables the driver wants events of, for this network.
    pub table_registrations: Vec<(String, ObjectType)>,
}

/// The addresses and MAC of an endpoint's interface (libnetwork's `InterfaceInfo`): set by the
/// controller from IPAM before `create_endpoint`, completed by the driver where unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInterface {
    /// The MAC address.
    pub mac: Option<MacAddr>,
    /// The IPv4 address with the network's prefix length.
    pub address: Option<IpNet>,
    /// The IPv6 address with the network's prefix length.
    pub address_ipv6: Option<IpNet>,
}

/// Endpoint creation options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOptions {
    /// A MAC address the user asked for.
    pub mac_address: Option<MacAddr>,
    /// Ports exposed by the container.
    pub exposed_ports: Vec<TransportPort>,
    /// Ports to publish on the host.
    pub port_bindings: Vec<PortBinding>,
    /// Driver-specific endpoint options.
    pub driver_options: Labels,
}

/// Join options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinOptions {
    /// Driver-specific join options.
    pub driver_options: Labels,
}

/// How a static route reaches its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteType {
    /// Through a next-hop address (0).
    NextHop,
    /// Directly on the interface (1).
    Connected,
}

/// A route the driver wants in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRoute {
    /// The destination.
    pub destination: IpNet,
    /// How it is reached.
    pub route_type: RouteType,
    /// The next hop, for [`RouteType::NextHop`].
    pub next_hop: Option<IpAddr>,
}

/// The interface a join puts in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinInterface {
    /// The driver created `src_name` in the host namespace; the controller moves it into the
    /// sandbox, names it `dst_prefix` plus the next free index, and sets its addresses, MAC and
    /// routes (libnetwork's way).
    Host {
        /// The interface's name in the host namespace.
        src_name: String,
        /// The prefix of its name in the sandbox (`eth`).
        dst_prefix: String,
    },
    /// The driver created the interface inside the sandbox already, named `name`, with its
    /// addresses, MAC and MTU set; the controller only adds routes and the gateway.
    InSandbox {
        /// The interface's name in the sandbox.
        name: String,
    },
}

/// A networkdb entry a driver publishes at join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The table.
    pub table: String,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

/// What a driver reports at join (libnetwork's `JoinInfo` callbacks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinInfo {
    /// The interface; `None` when the driver puts none in the sandbox (host, null).
    pub interface: Option<JoinInterface>,
    /// The IPv4 default gateway.
    pub gateway: Option<IpAddr>,
    /// The IPv6 default gateway.
    pub gateway_ipv6: Option<IpAddr>,
    /// Extra routes.
    pub static_routes: Vec<StaticRoute>,
    /// The driver provides no default gateway service (the controller may attach the sandbox to
    /// a gateway network instead).
    pub disable_gateway_service: bool,
    /// networkdb entries to publish.
    pub table_entries: Vec<TableEntry>,
}

/// A networkdb table event delivered to a driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventType {
    /// An entry was created (1).
    Create,
    /// An entry was updated (2).
    Update,
    /// An entry was deleted (3).
    Delete,
}

/// A networkdb table event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEvent {
    /// What happened.
    pub event: EventType,
    /// The network.
    pub network_id: String,
    /// The table.
    pub table: String,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

/// Errors of drivers and of the registry.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The network does not exist in this driver. Nothing changed.
    #[error("no network ({0}) exists")]
    NoNetwork(String),
    /// The endpoint does not exist in this driver. Nothing changed.
    #[error("no endpoint ({0}) exists")]
    NoEndpoint(String),
    /// An endpoint with this id exists already. Nothing changed.
    #[error("endpoint ({0}) already exists")]
    EndpointExists(String),
    /// The driver does not implement this operation. Nothing changed.
    #[error("{0} is not implemented by this driver")]
    NotImplemented(&'static str),
    /// A built-in driver is registered under this name already. Nothing changed.
    #[error("driver already registered for type {0:?}")]
    ActiveRegistration(String),
    /// No driver is registered under this name.
    #[error("driver {0:?} not found")]
    DriverNotFound(String),
    /// No IPAM driver is registered under this name.
    #[error("ipam driver {0:?} not found")]
    IpamNotFound(String),
    /// An IPAM driver being registered could not tell its default address spaces (its kind is
    /// the IPAM error's, where libnetwork always says Internal). Nothing changed in the
    /// registry.
    #[error("register ipam driver {name:?}: get default address spaces: {source}")]
    IpamAddressSpaces {
        /// The name it was to be registered under.
        name: String,
        /// The driver's error.
        source: libnetwork_ipamapi::Error,
    },
    /// A driver tried to change a field of an [`EndpointInterface`] that is set already
    /// (drivers only complete what is unset). Nothing changed.
    #[error(
        "set endpoint interface {field}: already set to {current}, cannot change it to {requested}"
    )]
    InterfaceFieldSet {
        /// The field: `mac address`, `ipv4 address` or `ipv6 address`.
        field: &'static str,
        /// Its value.
        current: String,
        /// The value the driver tried to set.
        requested: String,
    },
    /// An option or argument is invalid. Nothing changed.
    #[error("{context}: {reason}")]
    InvalidArgument {
        /// What was being checked.
        context: String,
        /// What is wrong.
        reason: String,
    },
    /// A driver-specific failure, with its class. The driver's own error says whether state
    /// changed.
    #[error("{driver} driver: {source}")]
    Driver {
        /// The driver's type.
        driver: String,
        /// The class of the failure.
        kind: ErrorKind,
        /// The driver's error.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoNetwork(_)
            | Self::NoEndpoint(_)
            | Self::DriverNotFound(_)
            | Self::IpamNotFound(_) => ErrorKind::NotFound,
            Self::EndpointExists(_) | Self::InterfaceFieldSet { .. } => ErrorKind::Conflict,
            Self::IpamAddressSpaces { source, .. } => source.kind(),
            Self::ActiveRegistration(_) => ErrorKind::Forbidden,
            Self::NotImplemented(_) | Self::InvalidArgument { .. } => ErrorKind::BadRequest,
            Self::Driver { kind, .. } => *kind,
        }
    }
}

/// A network driver (libnetwork's `driverapi.Driver`). Every method may block on the kernel or
/// a store; none may be called with a lock held that the driver could need.
#[async_trait]
pub trait Driver: Send + Sync + fmt::Debug {
    /// The driver's type name (`bridge`, `host`, ...).
    fn driver_type(&self) -> &str;

    /// What the driver serves.
    fn capability(&self) -> Capability;

    /// Whether the driver is built in (a plugin may not replace a built-in driver).
    fn is_built_in(&self) -> bool {
        true
    }

    /// Allocates cluster-wide resources of a global network (manager side, e.g. VNIs); returns
    /// options to pass to `create_network` on every node.
    async fn network_allocate(
        &self,
        network_id: &str,
        options: &Labels,
        ipv4: &[IpamData],
        ipv6: &[IpamData],
    ) -> Result<Labels, Error> {
        let _ = (network_id, options, ipv4, ipv6);
        Err(Error::NotImplemented("network allocate"))
    }

    /// Frees what `network_allocate` allocated.
    async fn network_free(&self, network_id: &str) -> Result<(), Error> {
        let _ = network_id;
        Err(Error::NotImplemented("network free"))
    }

    /// Creates a network.
    async fn create_network(
        &self,
        request: &CreateNetworkRequest,
    ) -> Result<CreateNetworkResult, Error>;

    /// Deletes a network.
    async fn delete_network(&self, network_id: &str) -> Result<(), Error>;

    /// Creates an endpoint; the driver completes `interface` (MAC, IPv6 address) where unset.
    async fn create_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
        interface: &mut EndpointInterface,
        options: &EndpointOptions,
    ) -> Result<(), Error>;

    /// Deletes an endpoint.
    async fn delete_endpoint(&self, network_id: &str, endpoint_id: &str) -> Result<(), Error>;

    /// Operational data of an endpoint (port mappings, MAC, ...), as JSON values by key.
    async fn endpoint_oper_info(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, Error>;

    /// Attaches an endpoint to a sandbox and reports what the sandbox needs.
    async fn join(
        &self,
        network_id: &str,
        endpoint_id: &str,
        sandbox: &Sandbox,
        options: &JoinOptions,
    ) -> Result<JoinInfo, Error>;

    /// Detaches an endpoint from its sandbox.
    async fn leave(&self, network_id: &str, endpoint_id: &str) -> Result<(), Error>;

    /// Publishes the endpoint's ports (and legacy links).
    async fn program_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
        options: &EndpointOptions,
    ) -> Result<(), Error>;

    /// Withdraws what `program_external_connectivity` did.
    async fn revoke_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), Error>;

    /// A networkdb table event of a table the driver registered.
    async fn event_notify(&self, event: &TableEvent) -> Result<(), Error> {
        let _ = event;
        Ok(())
    }

    /// Decodes a table entry into the object id it belongs to and a readable form.
    fn decode_table_entry(&self, table: &str, key: &str, value: &[u8]) -> Option<(String, Labels)> {
        let _ = (table, key, value);
        None
    }

    /// A discovery notification (node joined, store configured, encryption keys).
    async fn discover_new(&self, data: &DiscoveryData) -> Result<(), Error> {
        let _ = data;
        Ok(())
    }

    /// The reverse of a discovery notification.
    async fn discover_delete(&self, data: &DiscoveryData) -> Result<(), Error> {
        let _ = data;
        Ok(())
    }
}
