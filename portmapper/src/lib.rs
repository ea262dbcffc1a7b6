//! Published ports: libnetwork's `portmapper` and `docker-proxy`, without a process per port.
//!
//! A [`PortMapper`] publishes a container's [`PortBinding`]s on the host. For each binding it
//! reserves the host ports in a [`PortAllocator`](libnetwork_portallocator::PortAllocator), binds
//! them, installs the DNAT rules through [`libnetwork_firewall::Firewall`] and starts the
//! userland proxy, which forwards the traffic that DNAT does not see (connections to the host's
//! loopback addresses, and hairpin traffic when hairpin NAT is off). [`PortMapper::unmap`] undoes
//! all of it.
//!
//! # Mapping to libnetwork
//! - `PortMapper.MapRange` / `Map` → [`PortMapper::map`], which takes every binding of an
//!   endpoint at once (the bridge driver's `allocatePorts` loop, with its rollback) and returns
//!   the operational bindings; `Unmap` → [`PortMapper::unmap`]. `ErrPortMappedForIP` is the
//!   allocator's conflict ([`Error::Allocate`]), `ErrPortNotMapped` is [`Error::NotMapped`].
//! - `SetIptablesChain` and `ChainInfo.Forward` → the [`Firewall`](libnetwork_firewall::Firewall)
//!   given to [`PortMapper::new`], which gets one DNAT rule per binding (a range is one rule).
//!   `ReMapAll` is the firewall's own `reapply`.
//! - `docker-proxy` (one child process per host port, with a readiness pipe) → one tokio task
//!   per binding in the caller's runtime (the `proxy` module), watching every host port of a
//!   range through an epoll set of its own: TCP with half-close, UDP with per-client flows and
//!   a 90 s idle timeout. Turned off with [`PortMapperConfig::userland_proxy`], in which case
//!   the ports are checked once while mapping, so a port held by another program is still
//!   reported: each probe-bound, or for a range of 512 ports or more, looked up in the kernel's
//!   socket tables first (`socktable`).
//! - The bridge driver's retries of ephemeral ports taken by another program (10 attempts) →
//!   [`PortMapperConfig::dynamic_port_attempts`].
//!
//! # Layout
//! - `lib.rs`: crate docs, [`Error`].
//! - `config`: [`PortMapperConfig`].
//! - `mapper`: [`PortMapper`]: validation, reservation, binding, DNAT, proxy start, rollback.
//! - `socket`: host sockets for the proxy and for the probe.
//! - `socktable`: one `NETLINK_SOCK_DIAG` query for the sockets on a range of ports.
//! - `proxy`: the userland proxy (`proxy::PortSet`, `proxy::tcp`, `proxy::udp`).
//!
//! # Design decisions
//! - **No process, and no task, per published port.** Starting a `docker-proxy` costs
//!   milliseconds and megabytes per port (Docker takes 65 s and 1.35 GB for 1000 ports). Here a
//!   binding's host sockets are plain non-blocking sockets in an epoll set of their own: only
//!   that set is registered with the tokio reactor, and one task per binding accepts or reads
//!   on whichever of its ports the set reports. A port costs its kernel socket and 4 bytes of
//!   the process's memory (no task, no reactor registration, no buffer), and what publishing it
//!   costs is the kernel's `socket` (non-blocking and close-on-exec from the start),
//!   `setsockopt`, `bind`, `listen` and `epoll_ctl`; unpublishing it, one `close` (the set's
//!   epoll instance is closed first, which drops every registration at once). On the 2-core
//!   development VM a 10 000-port range is published in about 65 ms and unpublished in about
//!   45 ms with the proxy (half of what a task per port cost), and adds about 40 KiB of
//!   resident memory, none of it per port (the `portmapper` bench). Idle listeners hold no
//!   buffers: UDP reads go through one buffer per worker thread, and a UDP port gets a
//!   reactor-registered duplicate of its socket for replies only while it has flows.
//! - **Without the proxy, a range is checked in the kernel's socket tables.** A probe bind
//!   costs about 7 µs a port, 70 ms for 10 000 ports. For a range of 512 ports or more, one
//!   `NETLINK_SOCK_DIAG` dump per address family lists the sockets of the namespace whose local
//!   port is in the range (the kernel filters them), in every state: listening, connected,
//!   closing, `TIME_WAIT`, and bound but idle. The ports where such a socket's address overlaps
//!   the host address, as the kernel compares them for a bind (wildcards, IPv4-mapped
//!   addresses, `IPV6_V6ONLY`), are then probe-bound, so the kernel still decides, exactly as
//!   for a single port, and a held port is the same [`Error::PortInUse`]. A 10 000-port range
//!   is checked in about 2.5 ms. Kernels that do not list bound-only TCP sockets (found out once
//!   per process), or without `inet_diag`, get a probe of every port.
//! - **Bind before publishing.** Sockets are bound (or the ports checked) before any DNAT rule
//!   is installed, so a port held by another program fails the mapping with
//!   [`Error::PortInUse`] (a conflict naming `ip:port/proto`) and nothing is left behind.
//! - **All or nothing, and cancel-safe.** A mapping of N bindings that fails undoes the others
//!   (ports freed, sockets closed, no rules installed). Once the sockets are bound, the rest of
//!   [`PortMapper::map`] and all of [`PortMapper::unmap`] run in a task of their own, so a
//!   dropped future never leaves half a mapping.
//! - **Host port ranges map one to one.** `host_port..=host_port_end` publishes every port of
//!   the range, host port `host_port + i` forwarding to container port `port + i`.
//!   libnetwork instead picks one free port of a host range for one container port; callers
//!   wanting that ask for each candidate themselves.
//! - **Namespaces.** Sockets are created by the threads of the caller's runtime, so that
//!   runtime must run in the host's network namespace (see [`PortMapper`]).
//! - **SCTP** is published through DNAT only: the proxy does not forward it (each port is still
//!   probe-bound when the kernel has SCTP).
//! - **IPv6 host sockets are `IPV6_V6ONLY`**, so `[::]:p` and `0.0.0.0:p` are two bindings, as the
//!   bridge driver publishes them. A host address of the other family than the container's is
//!   forwarded by the proxy only (no DNAT rule across families), as libnetwork does for an IPv6
//!   host address in front of an IPv4-only container.
//! - UDP replies leave from the published port with the source address the kernel picks for
//!   the client, which on a host with several addresses may differ from the one the client
//!   used (as with docker-proxy).
#![forbid(unsafe_code)]

mod config;
mod mapper;
mod proxy;
mod socket;
mod socktable;

use std::fmt;
use std::io;
use std::net::SocketAddr;

use libnetwork_types::{ErrorKind, PortBinding, Protocol};

pub use config::PortMapperConfig;
pub use libnetwork_portallocator::PortRange;
pub use mapper::PortMapper;

/// The errors of the port mapper.
///
/// Errors of [`PortMapper::map`] leave nothing published by that call: ports it reserved are
/// freed, sockets closed, rules removed. Errors of [`PortMapper::unmap`] come after every other
/// step of the teardown was done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A binding is malformed (container port 0, a host range without a start or ending before
    /// it starts, a container range past 65535, a non-unicast container address, a host
    /// address of the other family with the proxy off). Nothing was changed.
    #[error("map {binding}: {reason}")]
    InvalidBinding {
        /// The binding as given.
        binding: PortBinding,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The port allocator refused a host port: already published (conflict), all ephemeral
    /// ports taken (unavailable). Nothing was changed.
    #[error("map {binding}: {source}")]
    Allocate {
        /// The binding as given.
        binding: PortBinding,
        /// The allocator's error.
        #[source]
        source: libnetwork_portallocator::Error,
    },
    /// Another program on the host holds the port (binding it failed with `EADDRINUSE`). For an
    /// ephemeral port, this is the last of the attempts. Nothing was changed.
    #[error("bind for {addr}/{proto} failed: port is already in use by another program")]
    PortInUse {
        /// The host address and port.
        addr: SocketAddr,
        /// The protocol.
        proto: Protocol,
    },
    /// Binding a host port failed for another reason: the address is not on this host
    /// (bad request), the process is out of file descriptors (unavailable), or something else
    /// (internal). Nothing was changed.
    #[error("bind for {addr}/{proto} failed: {source}")]
    Bind {
        /// The host address and port.
        addr: SocketAddr,
        /// The protocol.
        proto: Protocol,
        /// The system's answer.
        #[source]
        source: io::Error,
    },
    /// The firewall refused to install or remove the DNAT rules. When installing, nothing was
    /// changed; when removing, the rest of the teardown (proxies stopped, ports freed) was done
    /// and the rules may still be there.
    #[error("{op}: {source}")]
    Firewall {
        /// What was being done.
        op: &'static str,
        /// The firewall's error.
        #[source]
        source: libnetwork_firewall::Error,
    },
    /// An unmapped binding is not published. Nothing was changed for it.
    #[error("unmap {host}/{proto}: port is not mapped")]
    NotMapped {
        /// The protocol.
        proto: Protocol,
        /// The host address and first host port.
        host: SocketAddr,
    },
    /// Several steps of an unmap failed; every other step was done.
    #[error("unmap ports: {}", ErrorList(.0))]
    Teardown(Vec<Self>),
    /// The tokio runtime is shutting down, so the map or unmap task was cancelled. Whatever it
    /// had done is stopped with the runtime, except DNAT rules it may have installed or not yet
    /// removed.
    #[error("publish ports: the runtime is shutting down")]
    Shutdown,
}

impl Error {
    /// The API class of this error. A [`Error::Teardown`] has the kind its failures share, or
    /// internal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidBinding { .. } => ErrorKind::BadRequest,
            Self::Allocate { source, .. } => source.kind(),
            Self::PortInUse { .. } => ErrorKind::Conflict,
            Self::Bind { source, .. } if source.kind() == io::ErrorKind::AddrNotAvailable => {
                ErrorKind::BadRequest
            }
            Self::Bind { source, .. } if socket::is_resource_exhausted(source) => {
                ErrorKind::Unavailable
            }
            Self::Bind { .. } => ErrorKind::Internal,
            Self::Firewall { source, .. } => source.kind(),
            Self::NotMapped { .. } => ErrorKind::NotFound,
            Self::Teardown(failures) => {
                let mut kinds = failures.iter().map(Self::kind);
                let first = kinds.next().unwrap_or(ErrorKind::Internal);
                if kinds.all(|k| k == first) {
                    first
                } else {
                    ErrorKind::Internal
                }
            }
            Self::Shutdown => ErrorKind::Unavailable,
        }
    }

    /// Whether the host port is taken, by a mapping of this mapper or by another program.
    pub fn is_conflict(&self) -> bool {
        self.kind() == ErrorKind::Conflict
    }

    /// The error of a failed bind of `addr`.
    fn bind(addr: SocketAddr, proto: Protocol, source: io::Error) -> Self {
        if socket::is_addr_in_use(&source) {
            Self::PortInUse { addr, proto }
        } else {
            Self::Bind {
                addr,
                proto,
                source,
            }
        }
    }

    /// `Ok` without failures, the failure itself when there is one, [`Error::Teardown`]
    /// otherwise.
    fn from_failures(mut failures: Vec<Self>) -> Result<(), Self> {
        match failures.len() {
            0 => Ok(()),
            1 => Err(failures.remove(0)),
            _ => Err(Self::Teardown(failures)),
        }
    }
}

/// Displays a list of errors separated by `; `.
struct ErrorList<'a>(&'a [Error]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
