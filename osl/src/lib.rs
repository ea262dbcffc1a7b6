//! The OS sandbox layer: network namespaces bound to files ("sandboxes"), and the links,
//! addresses, routes, neighbours and sysctls inside them, all driven through netlink.
//!
//! This is libnetwork's `osl` package (with `ns` and `osl/kernel`): [`Host::create_sandbox`]
//! is `NewSandbox`, [`Host::key_for`] is `GenerateKey`, [`Host::sandbox_for_external_key`] is
//! `GetSandboxForExternalKey`, [`Sandbox::add_interface`] is `AddInterface` (move in, rename to
//! `eth0`, `eth1`, ..., set MAC, MTU, addresses, master, up, routes), and the gateway, static
//! route, neighbour and `ApplyOSTweaks` calls map one to one. Drivers also use the
//! [`NetlinkHandle`] of the [`Host`] (the namespace the daemon runs in) to create bridges and
//! veth pairs. Every netlink call is documented by the `ip` command it matches; no program is
//! ever run.
//!
//! # Layout
//! - [`error`]: the [`Error`] type and its [`ErrorKind`](libnetwork_types::ErrorKind) mapping.
//! - [`netns`]: namespaces bound to files; [`Netns::run_in`] runs code inside one.
//! - [`handle`]: [`NetlinkHandle`], a netlink socket bound to one namespace.
//! - [`link`], [`addr`], [`route`], [`neigh`]: one module per netlink object family, each adding
//!   its calls to [`NetlinkHandle`].
//! - [`link_kinds`]: macvlan, ipvlan, 802.1Q and dummy links (kinds, modes, the pure builder of
//!   their creation request), created in this namespace or born inside another one.
//! - [`sysctl`]: `net.*` sysctls of a namespace.
//! - [`host`]: [`Host`], the caller's namespace and the run directory.
//! - `portdump`: a lean reader of the bridge ports of a namespace ([`Host::bridge_ports`]).
//! - [`sandbox`]: [`Sandbox`] and its options.
//!
//! # Design decisions
//! - **Namespace switches only on throw-away OS threads.** `setns` and `unshare` change only
//!   the calling thread, so they never run on a tokio worker: a namespace is created by a
//!   thread that unshares and bind-mounts `/proc/thread-self/ns/net` onto the key file, then
//!   exits (no `fork`, unlike rtnetlink's `NetworkNamespace::add` and libnetwork's re-exec).
//! - **One netlink socket per namespace, opened once.** A socket stays in the namespace it was
//!   created in, so each sandbox opens its handle from a thread inside it and then uses it from
//!   any task; libnetwork instead locks an OS thread and switches namespaces per call. The one
//!   exception is [`Host::bridge_ports`]: it opens a short-lived socket from a thread in the
//!   host namespace, for a dump it reads without decoding every attribute.
//! - **Interfaces are born where they live when possible.** [`Sandbox::create_veth`] creates
//!   the sandbox end of a veth pair directly inside the namespace, which costs the kernel a few
//!   milliseconds against 11 to 27 ms for moving a link in ([`Sandbox::add_interface`] still
//!   does the move, with rename, in a single request). [`Sandbox::create_interface`] does the
//!   same for macvlan and ipvlan links whose parent stays in the host (`IFLA_NET_NS_FD`).
//! - **Transactional setup.** Adding an interface undoes its steps on failure (moved back and
//!   renamed back, or deleted); adding several addresses or sysctls undoes those already set.
//! - **The kernel is the source of truth.** Interfaces, routes, gateways and neighbours are
//!   read back from the kernel, so a sandbox reopened after a restart needs no saved state,
//!   except which interfaces came from the host ([`Sandbox::restore_interface`]).
//! - **Deliberate differences from libnetwork.** Creating a sandbox on a key where a namespace
//!   is still mounted is a conflict rather than a silent replacement. IPv6 is not disabled on
//!   `all` when a sandbox is created (namespaces start with the kernel's defaults); it is
//!   enabled on an interface when an IPv6 address is added and the kernel says it is off.
//!   Neighbour duplicates are detected by the kernel (`NLM_F_EXCL`) instead of an in-memory
//!   list, so they survive restarts. Interface names are the lowest free index of the prefix,
//!   so a name freed by a removal is reused.

#![forbid(unsafe_code)]

pub mod addr;
pub mod error;
pub mod handle;
pub mod host;
pub mod link;
pub mod link_kinds;
pub mod neigh;
pub mod netns;
mod portdump;
pub mod route;
pub mod sandbox;
pub mod sysctl;

pub use addr::Address;
pub use error::{Error, Result};
pub use handle::NetlinkHandle;
pub use host::Host;
pub use ipnet::IpNet;
pub use link::{Link, MacAddr};
pub use link_kinds::{IpvlanFlag, IpvlanMode, LinkKind, MacvlanMode};
pub use neigh::Neighbour;
pub use netns::Netns;
pub use route::{Route, RouteLookup};
pub use sandbox::{
    InterfaceInfo, InterfaceOptions, NextHop, Origin, Sandbox, StaticRoute, VethPair,
};
