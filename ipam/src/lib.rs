//! The built-in `default` IPAM driver: address pools for networks and addresses for endpoints,
//! in the address spaces `LocalDefault` and `GlobalDefault` (libnetwork's `ipam`, `ipamutils`
//! and `ipams/builtin`).
//!
//! # Mapping to libnetwork
//! - `ipam.Allocator` is split in two: [`Allocator`] (module `allocator`) holds the pools and
//!   bitmaps and makes every decision, with no lock and no I/O; [`DefaultIpam`] (module
//!   `driver`) wraps it in a mutex, persists it through a `libnetwork_datastore::Store`, and
//!   implements [`libnetwork_ipamapi::Ipam`].
//! - `ipamutils` (predefined pools, `default-address-pools`) is [`PredefinedPools`] and
//!   [`NetworkToSplit`]; `ipams/builtin.Init` is [`DefaultIpam::new`] with an [`IpamConfig`].
//! - `SubnetKey` is [`SubnetKey`]; its string form (`LocalDefault/172.28.0.0/16` or
//!   `LocalDefault/172.28.0.0/16/172.28.30.0/24`) is the pool id, as in libnetwork.
//! - The null and Windows IPAM drivers and the remote plugin driver are not here.
//!
//! # Layout
//! - `allocator`: [`Allocator`], the pure allocation logic of both address spaces.
//! - `driver`: [`DefaultIpam`] and [`IpamConfig`]: locking, persistence, the driver trait.
//! - `predefined`: [`PredefinedPools`] and [`NetworkToSplit`] (libnetwork's `ipamutils`).
//! - `key`: [`SubnetKey`], the pool id.
//! - `layout`: store keys and JSON values, in libnetwork's layout.
//! - `addr`: address arithmetic (ordinals, sizes, reserved addresses, overlaps).
//! - `error`: [`Error`] for configuration and loading; requests answer with
//!   [`libnetwork_ipamapi::Error`].
//!
//! # Pools
//! - One bitmap per pool, one bit per address: bit `n` is the address at offset `n` from the
//!   network address. Bitmaps are run-length sequences (`libnetwork-bitseq`), so their size
//!   depends on how fragmented the allocations are, not on the pool's size: a fresh or a full
//!   /16 takes a few dozen bytes.
//! - The network address (offset 0) is never handed out, nor is the IPv4 broadcast address,
//!   as in libnetwork; so the first address of `172.17.0.0/16` is `172.17.0.1` and of
//!   `2001:db8::/64` is `2001:db8::1`.
//! - **/31 and /32 (and IPv6 /127 and /128) pools are usable**, unlike in libnetwork, where
//!   reserving the network and broadcast addresses leaves nothing: a pool of one or two
//!   addresses reserves nothing (RFC 3021 point-to-point links, RFC 6164), so a /31 has two
//!   usable addresses and a /32 one.
//! - **IPv6 pools of /64 and larger** (a /48, say) get a bitmap of `2^64 - 1` bits, the most a
//!   bit sequence holds, as libnetwork effectively does: addresses are handed out from the
//!   pool's first `2^64 - 1` addresses (`…::1` first), and memory stays proportional to the
//!   fragmentation. libnetwork silently aliases a preferred address beyond that window onto
//!   the window; here such an address is [`ApiError::IpOutOfRange`], and a sub-pool beyond it
//!   is [`ApiError::InvalidSubPool`].
//! - Automatic pools come from the predefined list of the address space (local: `172.17.0.0/16`
//!   … `172.31.0.0/16`, then `192.168.0.0/16` in /20s; global: `10.0.0.0/8` in /24s), or from
//!   a configured `default-address-pools` list. They are handed out round robin: the search
//!   starts after the pool handed out last, so a released pool is not reused at once. Pools
//!   that overlap a reserved pool are skipped, and in `LocalDefault` also those that overlap
//!   one of the host's routes, which are an input ([`IpamConfig::host_routes`],
//!   [`DefaultIpam::set_host_routes`]): reading them from the kernel is the caller's job.
//!   libnetwork does the route check in the controller, through a loop with an unreachable
//!   branch (quirk 12); explicit pools are never checked against routes, here as there: the
//!   caller asked for that subnet.
//! - Overlapping pools in one address space are refused with [`ApiError::PoolOverlap`], which
//!   names both networks. libnetwork does not check a pool created implicitly by a sub-pool
//!   request; here it is checked like any other.
//!
//! # Addresses
//! - Any free address (the lowest), a preferred one, serial allocation
//!   ([`libnetwork_ipamapi::ALLOC_SERIAL_PREFIX`]: continue after the last address handed out
//!   in the pool, wrapping, so a released address is not reused at once), or the gateway
//!   ([`libnetwork_ipamapi::REQUEST_ADDRESS_TYPE`]): a gateway request without a preferred
//!   address always gets the lowest free address, even with serial allocation on, so a
//!   network's gateway is predictable.
//! - Addresses come back with the pool's prefix length (also for sub-pools).
//! - Sub-pools (`--ip-range`), libnetwork's behaviour kept (quirk 3): automatic addresses come
//!   from the sub-pool's range, which includes the range's own first and last addresses (only
//!   the pool's network and broadcast addresses are reserved); a preferred address only has to
//!   be inside the *pool*, because that is how Docker reserves a gateway or a static address
//!   outside `--ip-range`.
//! - Releasing the network or broadcast address is [`ApiError::ReservedAddress`] (libnetwork
//!   frees the bit and later hands the network address out); releasing a free address is not
//!   an error.
//! - Pool reference counts are libnetwork's: a pool counts its own request plus one per
//!   sub-pool. Releasing a pool that only its sub-pools hold is [`ApiError::PoolNotFound`]
//!   (libnetwork would drop the pool from under its sub-pools).
//!
//! # Persistence
//! State is stored in libnetwork's layout: each address space's pool configuration at
//! `docker/network/v1.0/ipam/default/config/<AS>/` and each pool's bitmap at
//! `docker/network/v1.0/ipam/default/data/<pool id>/` as `{"id": ..., "sequence": <base64>}`.
//! `LocalDefault` goes to [`IpamConfig::local_store`] and `GlobalDefault` to
//! [`IpamConfig::global_store`]; an address space without a store lives in memory only.
//! libnetwork's controller gives the default IPAM no local store at all (quirk 10) and rebuilds
//! local pools at start-up by replaying requests; with a local store here nothing needs
//! replaying ([`libnetwork_ipamapi::Capability::requires_request_replay`] is false).
//!
//! libnetwork rewrites a bitseq handle per change, each through its own store round trip, and
//! spends about 2.2 ms per address with boltdb. Here:
//! - **Only what changed is written**: an address request or release writes one key, the
//!   pool's bitmap; a pool request or release writes the address space's configuration, plus
//!   the bitmap it creates or deletes.
//! - **One atomic batch per change**: all keys of a change go to the store in one
//!   [`libnetwork_datastore::Store::apply`], one durable commit, so a crash never leaves a pool
//!   without its bitmap or the reverse.
//! - **Requests return after their change is durable**, but a request does not hold the lock
//!   while the store writes. Requests of one address space that arrive while a write is under
//!   way change the state in memory and wait; when the write finishes one of them writes every
//!   change made meanwhile in one batch, and all of them return. So concurrent requests share
//!   commits here, and across address spaces and other users of the store the redb backend
//!   batches concurrent batches into one commit. A lone caller pays one commit per request.
//! - **Optimistic concurrency**: every write carries the store index of each key as last read
//!   or written (or requires the key to be absent). When another allocator sharing the store
//!   won a race, the write fails as a whole, the address space is reloaded from the store and
//!   the requests run again (at most 64 times). An error that a stale view could cause (pool
//!   not found, overlap, no free pool or address, address in use) is only returned after
//!   checking that the keys it was decided on are unchanged in the store. One staleness is
//!   accepted: an address request checks the pool's bitmap, not the configuration, so it may
//!   still succeed in a sub-pool that another allocator released a moment before (the address
//!   lies in the pool, which is still reserved).
//! - **Loading**: [`DefaultIpam::new`] reads both address spaces, so a new allocator on the
//!   same store sees every pool and address. A pool whose bitmap is missing gets a fresh one;
//!   bitmaps of unknown pools are ignored; a sub-pool whose pool entry is missing (which
//!   libnetwork's double release can leave behind) gets its pool back.
//! - The serial cursor is not stored (libnetwork's quirk 4, kept: the layout has no place for
//!   it); it survives reloads but not restarts, after which serial allocation resumes
//!   lowest-first.
//!
//! # Errors
//! Requests answer with [`libnetwork_ipamapi::Error`] (store failures as
//! [`ApiError::Backend`]); building the driver answers with [`Error`]. A failed request changes
//! nothing, in memory or in the store.
#![forbid(unsafe_code)]

mod addr;
mod allocator;
mod driver;
mod error;
mod key;
mod layout;
mod predefined;

#[cfg(doc)]
use libnetwork_ipamapi::Error as ApiError;

pub use crate::allocator::{
    AddressRange, AddressRequest, Allocator, PoolGrant, PoolInfo, PoolRelease,
};
pub use crate::driver::{DefaultIpam, IpamConfig};
pub use crate::error::Error;
pub use crate::key::SubnetKey;
pub use crate::predefined::{NetworkToSplit, PredefinedPools};

/// The local address space (libnetwork's `localAddressSpace`).
pub const LOCAL_ADDRESS_SPACE: &str = "LocalDefault";

/// The global address space (libnetwork's `globalAddressSpace`).
pub const GLOBAL_ADDRESS_SPACE: &str = "GlobalDefault";

#[cfg(test)]
mod tests;
