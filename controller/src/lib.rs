//! The network controller of the Container Network Model: networks, endpoints and sandboxes,
//! persisted and restored, driving the network drivers, IPAM, the kernel and the embedded DNS
//! server (libnetwork's root package: `controller.go`, `network.go`, `endpoint.go`,
//! `sandbox.go`, `sandbox_dns_unix.go`, `sandbox_store.go`, `store.go`, `error.go`, plus its
//! `config` and `netlabel` packages).
//!
//! The flow of libnetwork's README, in Rust:
//!
//! ```no_run
//! # async fn demo() -> Result<(), libnetwork::Error> {
//! use libnetwork::{Config, Controller, EndpointOptions, JoinOptions, NetworkOptions};
//! use libnetwork::{SandboxOptions, netlabel};
//!
//! // A controller with the bridge driver and its options.
//! let config = Config::new("/var/lib/docker", "/var/run/docker")
//!     .driver_option("bridge", "EnableIPTables", "true");
//! let controller = Controller::new(config).await?;
//! // A network for containers to join, an endpoint, and a sandbox for the container.
//! let network = controller.new_network("bridge", "network1", NetworkOptions::default()).await?;
//! let ep = network.create_endpoint("Endpoint1", EndpointOptions::default()).await?;
//! let sbx = controller
//!     .new_sandbox("container1", SandboxOptions::new().hostname("test").domainname("docker.io"))
//!     .await?;
//! // The sandbox joins the endpoint; the driver's operational data has the MAC address.
//! ep.join(&sbx, JoinOptions::default()).await?;
//! let info = ep.driver_info().await?;
//! let mac = &info[netlabel::MAC_ADDRESS];
//! println!("Joined endpoint {} ({mac}) to sandbox {} ({})", ep.name(), sbx.container_id(), sbx.key().display());
//! # Ok(())
//! # }
//! ```
//!
//! # Drivers
//! - **Built in**: `bridge`, `host`, `ipvlan`, `macvlan` and `null` network drivers
//!   ([`Controller::builtin_drivers`]), `default` and `null` IPAM drivers. The bridge, macvlan
//!   and ipvlan drivers keep their networks and endpoints in the local store and restore them
//!   at start. macvlan and ipvlan networks sit on a parent interface (`parent` driver option,
//!   see `libnetwork-driver-macvlan`); on a kernel without ipvlan links, ipvlan networks are
//!   created but joins fail with an Unavailable error saying so.
//! - **Plugins**: a network whose driver or IPAM driver is not registered gets the Docker
//!   plugin of that name (libnetwork's `loadDriver`/`loadIPAMDriver`): found in
//!   [`Config::plugin_discovery`] (Docker's `/run/docker/plugins`, `/etc/docker/plugins`,
//!   `/usr/lib/docker/plugins` by default), activated, and registered under its name
//!   (`libnetwork-driver-remote`). No plugin of that name: [`Error::UnknownDriver`] or
//!   [`Error::UnknownIpam`] (NotFound) and nothing is created; a plugin that cannot be
//!   activated or is of another kind: [`Error::Driver`] with the plugin's error. The plugins
//!   that stored networks use are loaded at start, before the restore calls their drivers; one
//!   that cannot be loaded then is logged, and operations on those networks' endpoints fail
//!   with [`Error::UnknownDriver`] until it is loaded (at the next start, or by creating a
//!   network that names it). The `overlay` driver is not implemented.
//!
//! # Layout
//! - [`config`]: [`Config`] (data and run directories, stores, address pools, driver
//!   options, firewall backend, DNS upstreams, plugin directories).
//! - `controller`: [`Controller`]: start-up, registries and plugin loading, lookups,
//!   walkers, shutdown, store helpers.
//! - `network`: [`Network`], [`NetworkOptions`], creation rules, IPAM allocation, deletion.
//! - `endpoint`: [`Endpoint`], [`EndpointOptions`], creation, deletion, join and leave.
//! - `sandbox`: [`Sandbox`], [`SandboxOptions`], endpoint ordering and the gateway.
//! - `files`: the sandboxes' `hosts`, `resolv.conf` and `resolv.conf.hash`.
//! - `dns`: the names endpoints publish in the embedded resolver's record directory.
//! - `records`: the persisted JSON objects, in libnetwork's shapes.
//! - `restore`: restore at start-up and crash clean-up.
//! - `null_ipam`: the `null` IPAM driver.
//! - [`error`]: [`Error`] and its [`ErrorKind`] mapping.
//!
//! # Design decisions
//! - **Async API on tokio, objects as handles.** [`Controller`], [`Network`], [`Endpoint`]
//!   and [`Sandbox`] are cheap clones of `Arc`s on the controller's state; the state in
//!   memory is authoritative and written through to the store (libnetwork re-reads objects
//!   from the store on every call). Std mutexes guard the maps and records and are never
//!   held across an await; per-object async locks serialise operations: one per network
//!   (endpoint creation and deletion, network deletion), one per sandbox (its joins and
//!   leaves), one per endpoint. Blocking work (stores, IPAM, files) runs on tokio's blocking
//!   pool.
//! - **Crash safety: write-ahead marks, atomic batches, reconciliation.** Before driver or
//!   kernel work that stores state of its own, a record says what is about to happen (network
//!   `inCreate`/`inDelete`, endpoint `creating`/`deleting`, `leaving`); the last write of the
//!   operation clears it, and objects that change together (an endpoint and its network's
//!   count, an endpoint and its sandbox's checkpoint) are written in one atomic batch. A
//!   restart undoes creations that did not finish and finishes deletions and leaves. A join
//!   is stored only once complete (it saves a durable write on the busiest path): a restart
//!   asks the driver of every endpoint the store has unjoined to leave (withdrawing published
//!   ports) and compares each sandbox with the kernel (interfaces no joined endpoint owns are
//!   deleted, default routes set to the gateway endpoint's). What no record owns is swept:
//!   namespace keys under the run directory, sandbox file directories, IPAM pools and
//!   addresses of the local address space (IPAM persists itself, before the records that own
//!   its allocations); the bridge driver removes veths and port mappings of its own that no
//!   endpoint owns. So after a kill at any step every object that existed is back and usable
//!   and nothing half-made is left (the crash tests kill a child process at each step).
//! - **Cheap persistence.** Durable store commits dominate the controller's own time, so
//!   operations write as little as they can: one batch per final state, IPAM releases
//!   concurrent with the final batch (the redb store groups concurrent writers into one
//!   commit), a released default-IPAM pool takes its addresses with it. The sandboxes'
//!   resolution files are written without `fsync`, as libnetwork writes them (derived state;
//!   restore rewrites missing ones).
//! - **Sandboxes are restored, not only cleaned up.** libnetwork's restart deletes every
//!   sandbox not named by the daemon ("live restore" aside); here every sandbox comes back
//!   with its endpoints, routes, published ports, hosts file and DNS server, and one whose
//!   namespace is gone (a reboot) gets a new namespace and its endpoints joined again.
//!   [`Controller::start`] returns once every object is back and compares the reopened
//!   sandboxes with the kernel in the background, holding back operations on each until it
//!   is done; [`Controller::new`] waits for all of them.
//! - **A namespace is ready before the sandbox is asked for**: the osl keeps
//!   [`Config::spare_namespaces`] namespaces made in the background, so a new sandbox binds
//!   one to its key (about 0.1 ms) instead of making it (about 0.8 ms).
//! - **Drivers create the container's interface inside the sandbox** when they can
//!   ([`libnetwork_driverapi::JoinInterface::InSandbox`]: the bridge, macvlan and ipvlan
//!   drivers), which the kernel does in about 1 ms against 11-27 ms for moving a link in;
//!   drivers that create it in the host (plugins) are supported the libnetwork way.
//! - **Service discovery**: each joined endpoint publishes its name, aliases and DNS names on
//!   its network in the resolver's [`libnetwork_resolver::RecordDirectory`]; every sandbox
//!   that needs it runs an embedded DNS server at 127.0.0.11 inside its namespace, and its
//!   resolv.conf points there. Hosts files get the container's own names and the names of
//!   peer endpoints on the same networks, kept as an exact set and written in place (the
//!   files are bind-mounted into running containers).
//! - **Deliberate differences from libnetwork.** Network names are unique
//!   ([`Error::NetworkExists`], Conflict; libnetwork leaves that to the daemon, quirk 11),
//!   and so are explicit ids (Conflict rather than Forbidden). A sandbox may not join two
//!   endpoints of one network. The default IPAM driver has a local store (libnetwork gives
//!   it none and replays requests at start, quirk 10). Static routes are persisted and
//!   restored (quirk 5). The configuration network's reference count is the number of
//!   networks made from it, computed, not its endpoint count. The `docker_gwbridge` default
//!   gateway network, ingress and load-balancer sandboxes, swarm service records and the
//!   external key (`SetKey`) are not implemented. Port bindings given to a sandbox are merged
//!   with the gateway endpoint's own. Resolver start failures are logged and the sandbox goes
//!   on without it, as in libnetwork. As in libnetwork, deleting a sandbox leaves *and
//!   deletes* its endpoints, and the endpoint name is the name a container is known by on a
//!   network (Docker names endpoints after containers).
//!
//! # Performance
//! `cargo bench -p libnetwork --bench readme -- --iterations 200` runs the README flow
//! (network, endpoint, sandbox, join, leave, deletes) and the same flow on an existing
//! network, and splits each step's time between the bridge driver and the rest. On our
//! loaded 2-core machines the whole flow's median is 96-100 ms, of which 9-12 ms are outside
//! the bridge driver: the driver's bridge creation (about 19 ms: kernel work and an nftables
//! transaction) and deletion (about 57 ms, mostly the kernel's link deletion) dominate. A
//! container's life on an existing network takes 12-26 ms (median, varying between runs: the
//! kernel's background deletion of the previous veth holds the lock the next namespace and
//! veth wait for), 4-5 ms of it in the driver; the controller's own part is mostly durable
//! store commits (about 9 per flow) and the namespace.
#![forbid(unsafe_code)]

pub mod config;
mod controller;
mod dns;
mod endpoint;
pub mod error;
mod files;
mod network;
mod null_ipam;
mod records;
mod restore;
mod sandbox;

pub use libnetwork_driverapi::netlabel;

pub use crate::config::{
    Config, DEFAULT_SYNC_WITHIN, Durability, GlobalStore, LocalStore, StepHook,
};
pub use crate::controller::Controller;
pub use crate::endpoint::{Endpoint, EndpointInfo, EndpointOptions, InterfaceInfo, JoinOptions};
pub use crate::error::{Error, Result};
pub use crate::network::{
    HOST_NETWORK, IpamOptions, NONE_NETWORK, Network, NetworkInfo, NetworkOptions,
};
pub use crate::records::{IpamConf, IpamInfo};
pub use crate::sandbox::{Sandbox, SandboxOptions};
pub use libnetwork_driver_bridge::DriverConfig as BridgeConfig;
pub use libnetwork_driverapi::{IpamData, RouteType, StaticRoute};
pub use libnetwork_firewall::BackendChoice;
pub use libnetwork_ipam::NetworkToSplit;
pub use libnetwork_types::{ErrorKind, MacAddr, PortBinding, Protocol, TransportPort};
