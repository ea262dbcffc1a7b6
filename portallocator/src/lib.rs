//! Host port allocation per (host address, protocol): libnetwork's `portallocator`, as a plain
//! data structure.
//!
//! [`PortAllocator`] reserves ports for `tcp`, `udp` and `sctp` on host addresses: a specific
//! port, any free port of the dynamic range, or any free port of a caller's range. The port
//! mapper asks it before binding or programming DNAT, so that two containers never publish the
//! same host port.
//!
//! # Mapping to libnetwork
//! - `Get()` (a process-wide singleton with a mutex) becomes an owned [`PortAllocator`]; the
//!   caller shares it behind its own lock.
//! - `RequestPort` / `RequestPortInRange` map to [`PortAllocator::request_port`] and
//!   [`PortAllocator::request_port_in_range`] (same `(0, 0)` / `(p, p)` / range convention,
//!   see [`PortRequest::from_bounds`]); [`PortAllocator::request`] takes a typed
//!   [`PortRequest`]. `ReleasePort` / `ReleaseAll` map to [`PortAllocator::release_port`] and
//!   [`PortAllocator::release_all`].
//! - Protocols are the workspace's [`Protocol`] (`libnetwork-types`); [`parse_protocol`] gives
//!   libnetwork's unknown-protocol error. A nil IP in libnetwork means `0.0.0.0`; here callers pass the unspecified address.
//! - The dynamic range comes from `/proc/sys/net/ipv4/ip_local_port_range`, falling back to
//!   49153-65535 ([`system_port_range`], [`PortRange::DEFAULT_DYNAMIC`]).
//! - Dynamic search is libnetwork's: continue after the last port handed out for that
//!   (address, protocol, range) and wrap around.
//!
//! # Design decisions
//! - **The unspecified address overlaps the specific ones** of its family (a deliberate
//!   difference: libnetwork tracks each IP string independently, so `0.0.0.0:80` and
//!   `10.0.0.1:80` could both be "allocated" and the second bind then failed in the kernel).
//!   IPv4 and IPv6 never overlap; `::ffff:a.b.c.d` counts as `a.b.c.d`.
//! - **A dense bitset per (address, protocol)**: 65 536 bits (8 KiB, allocated on first use and
//!   freed when empty), searched 64 ports per word. libnetwork keeps a Go map of used ports and
//!   probes one port at a time (about 110 ns per port in its benchmark); here allocating the
//!   whole dynamic range in order costs about 8 ns per port on an idle core (the
//!   `portallocator` benchmark).
//! - **Specific addresses are keyed by integers** (slot, address bits) in a `BTreeMap`: the
//!   derived order of `(IpAddr, Protocol)` made the map search the most expensive step of a
//!   request on a specific address.
//! - **Cheap overlap checks**: per (family, protocol) the allocator keeps the unspecified
//!   address's bitset and the union of all specific addresses' bitsets (with a small count map
//!   for ports held by several addresses, so release keeps the union exact). A search for the
//!   unspecified address skips `own | union`, one for a specific address skips
//!   `own | unspecified`: one extra word load per 64 ports, whatever the number of addresses.
//! - **Pure core**: no I/O, no locks, no async. Reading the kernel's range is the separate
//!   [`system_port_range`], and [`PortAllocator::new`] takes the range as a parameter.
//! - Errors leave the allocator unchanged.
//!
//! # Layout
//! - `lib.rs`: crate docs and [`Error`].
//! - `types`: [`Protocol`], [`PortRange`], [`PortRequest`].
//! - `allocator`: [`PortAllocator`].
//! - `bitset`: the 65 536-bit port set and its word-level search.
//! - `system`: reading the kernel's dynamic range ([`system_port_range`]).
#![forbid(unsafe_code)]

mod allocator;
mod bitset;
mod system;
mod types;

use std::net::{IpAddr, SocketAddr};

use libnetwork_types::ErrorKind;

pub use allocator::PortAllocator;
pub use system::{PORT_RANGE_PATH, parse_port_range, read_port_range, system_port_range};
pub use types::{PortRange, PortRequest, Protocol, parse_protocol};

/// Errors of port allocation. None of them changes the allocator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The port is held by the address asked for or by an overlapping one (the unspecified
    /// address of the same family, or a specific address when the unspecified one was asked
    /// for).
    #[error(
        "bind for {}/{proto} failed: port is already allocated{}",
        SocketAddr::new(*ip, *port),
        held_elsewhere(*ip, *holder)
    )]
    PortAlreadyAllocated {
        /// The address asked for.
        ip: IpAddr,
        /// The protocol asked for.
        proto: Protocol,
        /// The port asked for.
        port: u16,
        /// The address holding the port: `ip` itself or the overlapping address.
        holder: IpAddr,
    },
    /// Every port of the searched range is taken for this address and protocol.
    #[error("allocate port on {ip}/{proto} in {range}: all ports are allocated")]
    AllPortsAllocated {
        /// The address asked for.
        ip: IpAddr,
        /// The protocol asked for.
        proto: Protocol,
        /// The range searched.
        range: PortRange,
    },
    /// A port range with a zero bound or with `end < start`.
    #[error("allocate port: invalid port range: {start}-{end}")]
    InvalidPortRange {
        /// First port given.
        start: u16,
        /// Last port given.
        end: u16,
    },
    /// A protocol other than `tcp`, `udp` or `sctp`.
    #[error("parse protocol: unknown protocol {0:?}")]
    UnknownProtocol(String),
    /// The text read for the kernel's dynamic range is not two ports forming a range.
    #[error("parse dynamic port range: malformed range {0:?}")]
    MalformedPortRange(String),
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::PortAlreadyAllocated { .. } => ErrorKind::Conflict,
            Self::AllPortsAllocated { .. } => ErrorKind::Unavailable,
            Self::InvalidPortRange { .. }
            | Self::UnknownProtocol(_)
            | Self::MalformedPortRange(_) => ErrorKind::BadRequest,
        }
    }
}

/// The tail of the "already allocated" message naming an overlapping holder, if any.
fn held_elsewhere(ip: IpAddr, holder: IpAddr) -> String {
    if ip == holder {
        String::new()
    } else {
        format!(" on {holder}")
    }
}
