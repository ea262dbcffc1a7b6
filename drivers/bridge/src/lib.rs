//! The bridge network driver: libnetwork's `drivers/bridge`.
//!
//! Each network is a Linux bridge (`br-<first 12 chars of the id>`, or `docker0` for the
//! default bridge, or a name given with `com.docker.network.bridge.name`) carrying the
//! network's gateway address; each joined endpoint is a veth pair with its host end
//! (`veth` + 7 hex characters) on the bridge and its other end inside the sandbox. The
//! [`libnetwork_firewall::Firewall`] gets the network's rules (masquerade or SNAT, ICC,
//! isolation between bridges, internal networks, hairpin NAT), and the
//! [`libnetwork_portmapper::PortMapper`] publishes the endpoints' ports. Networks and
//! endpoints are persisted under `docker/network/v1.0/bridge/<nid>/` and
//! `docker/network/v1.0/bridge-endpoint/<eid>/` with libnetwork's JSON field names, and a new
//! driver on the same store and namespaces picks them up again ([`BridgeDriver::new`]).
//!
//! # Mapping to libnetwork
//! - `configuration` (driver flags) → [`DriverConfig`]; `networkConfiguration` and its
//!   label parsing, `processIPAM` and `Validate` → [`NetworkConfig::from_request`], with the
//!   label form's defaults (ICC and masquerade on).
//! - `CreateNetwork`'s setup queue (`setup_device.go`, `setup_ipv4.go`, `setup_ipv6.go`,
//!   `setup_verify.go`, `setup_ip_tables.go`) → the `setup` module and the firewall's
//!   `add_network`; `DeleteNetwork` → `delete_network`.
//! - `CreateEndpoint`, `Join`, `Leave`, `DeleteEndpoint`, `ProgramExternalConnectivity`,
//!   `RevokeExternalConnectivity`, `EndpointOperInfo` → the [`libnetwork_driverapi::Driver`]
//!   methods of [`BridgeDriver`]; `allocatePorts` → its port publishing (through the port
//!   mapper, IPv4 and IPv6 copies of each binding).
//! - `bridge_store.go` → the `store` module; `netutils` helpers → `netutils`; the option
//!   keys → `labels` (the contract's `netlabel` constants).
//!
//! # Layout
//! - [`error`]: [`Error`] and its kind mapping; converts into the contract's error.
//! - [`labels`]: option keys and value parsing.
//! - [`config`]: [`DriverConfig`], [`NetworkConfig`].
//! - [`netutils`]: veth names, MACs, MAC-derived IPv6 addresses.
//! - [`store`]: the persisted network and endpoint records.
//! - `setup`: kernel setup and teardown of a bridge, with undo.
//! - [`links`]: host-side veth requests on the driver's own netlink socket, and the reaper
//!   that deletes retired veths in batches.
//! - [`unpublish`]: withdrawal of revoked ports in batches.
//! - `driver`: [`BridgeDriver`] and its restore.
//!
//! # Design decisions
//! - **The container interface is created where it lives.** `create_endpoint` only picks the
//!   host veth name, the MAC and the addresses, and stores them: no kernel work. `join`
//!   creates the veth pair with its peer born inside the sandbox
//!   ([`libnetwork_osl::Sandbox::create_veth`], about 1 ms, against 11 to 27 ms to move a link
//!   between namespaces), configured there (MAC, MTU, addresses, up), puts the host end on the
//!   bridge and returns [`libnetwork_driverapi::JoinInterface::InSandbox`].
//! - **Slow kernel work is kept off the caller's path, and batched.** Deleting a link holds
//!   the kernel's RTNL lock for 17 to 43 ms (an RCU synchronisation), which also stalls the
//!   next join; removing nf_tables rules costs about 16 ms per transaction for the same
//!   reason. Neither depends on how much goes in one request, so both are batched in the
//!   background:
//!   - `leave` takes the sandbox end down and renames it (its routes and its `eth<n>` name
//!     are free at once for another join into the sandbox), then *retires* the host end in one
//!     request (down, moved to the link group [`links::REAP_GROUP`]); a reaper deletes the
//!     whole group in one request at most [`links::REAP_WINDOW`] later (20 pairs in 34 ms
//!     against 425 ms one by one). A later `join` of the same endpoint (same host name) waits
//!     for its old veth to go.
//!   - `revoke_external_connectivity` (and `delete_endpoint`) forget the bindings and store
//!     that at once, and hand them to the [`unpublish`] worker, which unmaps everything
//!     revoked within [`unpublish::UNPUBLISH_WINDOW`] in one port-mapper call (one firewall
//!     batch). The host ports stay reserved until then, and publishing a port still being
//!     withdrawn waits for the withdrawal, so no caller ever sees a clash; the price is that
//!     a failure of the withdrawal is logged instead of returned (a restarted driver removes
//!     firewall mappings no endpoint owns).
//!
//!   [`BridgeDriver::settle`] waits for all of it (tests use it to check that nothing is
//!   left), and a new driver deletes what an earlier process left in the group.
//!   `delete_network` stays synchronous (it withdraws its endpoints' ports itself and reports
//!   failures, and deletes the bridge at once so that a network with the same bridge name can
//!   be created right after).
//! - **The sandbox's netlink handle is kept while joined**, because `leave` gets no sandbox:
//!   it takes the sandbox end down through it. This keeps a sandbox's namespace alive until
//!   its endpoints leave (a destroyed sandbox's veth then goes with the leave, not with the
//!   namespace). An endpoint restored as joined has no handle: its sandbox end only goes
//!   down with the host end.
//! - **Transactional setup, best-effort teardown.** A failed network creation undoes the
//!   bridge, its addresses and its firewall rules; a failed join deletes the veth; a failed
//!   store write unpublishes the ports it would have recorded. Teardowns try every step and
//!   report every failure ([`Error::Teardown`]).
//! - **Concurrency.** The network and endpoint maps sit behind std mutexes held only for a
//!   lookup or an insert; each endpoint has a tokio mutex held for a whole operation, and
//!   network creation and deletion are serialised by another. Firewall and store calls block,
//!   so they run on tokio's blocking pool.
//! - **Joined state is read from the kernel at restore**, not stored: an endpoint is joined
//!   when its host veth is up on its bridge. So `join` and `leave` write nothing to the
//!   store.
//! - **Differences from libnetwork, on purpose.** A bridge name used by another network of
//!   the driver is a bad request (as the issue asks; libnetwork says forbidden); overlapping
//!   subnets and existing ids are conflicts (libnetwork: forbidden). MTUs outside 68..=65535
//!   are refused up front (libnetwork refuses only negative ones and lets the kernel fail
//!   later). Internal networks report no gateway at join, so a sandbox gets no default route
//!   through them. `program_external_connectivity` uses the bindings given to it (as
//!   libnetwork does) and replaces what an earlier call published. The IPv6 copy of a
//!   binding is only made for endpoints with an IPv6 address, and takes the host ports of
//!   the IPv4 copy; libnetwork also forwards `[::]:port` to IPv4-only containers through the
//!   proxy. Without the userland proxy, ports are hairpinned (bridge port hairpin mode, and
//!   the firewall's hairpin NAT), but `route_localnet` is not set on the bridge: the firewall
//!   does not DNAT loopback traffic, so opening the bridge to 127.0.0.0/8 would serve nothing.
//!   Conntrack entries are not flushed on revoke (no conntrack netlink API in the workspace
//!   yet). Legacy container links (`ParentEndpoints`/`ChildEndpoints`) do not exist in the
//!   contract and are not implemented.
#![forbid(unsafe_code)]

pub mod config;
mod driver;
pub mod error;
pub mod labels;
pub mod links;
pub mod netutils;
mod setup;
pub mod store;
pub mod unpublish;

pub use config::{BridgeIfaceCreator, DriverConfig, NetworkConfig};
pub use driver::{BridgeDriver, BridgeDriverOptions, register};
pub use error::{Error, Result};

/// The driver's type name.
pub const DRIVER_TYPE: &str = "bridge";
