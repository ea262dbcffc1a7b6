//! networkdb: eventually-consistent key/value tables replicated by gossip, scoped by network.
//!
//! This is libnetwork's `networkdb` (reference §23): a cluster of nodes, each holding tables
//! of entries (`table/network/key -> value`) for the networks it has joined. An entry is
//! written by its owner node and spread by gossip to every node in its network; deletes leave
//! tombstones that are reaped after [`Config::reap_entry_interval`]; two Lamport clocks (one
//! for node and network-attachment events, one for table events) order events so that an old
//! event never overrides a newer one. Nodes that fail or leave have their entries removed;
//! nodes that come back, late network joiners and healed partitions converge through bulk
//! sync. Swarm-mode libnetwork builds service discovery and overlay peer tables on it.
//!
//! Membership and failure detection are SWIM, done by [foca] instead of hashicorp/memberlist.
//! The wire messages are libnetwork's `networkdb.proto` message set
//! (`proto/networkdb.proto`, compiled at build time with protox, no `protoc` needed).
//!
//! Layout:
//! - [`engine`]: [`NetworkDb`], the sans-IO engine: received bytes and expired timers in,
//!   an [`Outbox`] of datagrams, stream messages, timers and table [`Event`]s out. No I/O, no
//!   locks, no async, no clock.
//! - [`config`]: [`Config`] with libnetwork's defaults (port [`DEFAULT_PORT`] 7946, gossip
//!   every 200 ms to 3 nodes, bulk sync every 30 s, tombstones reaped after 30 min).
//! - [`wire`]: message envelopes, compound packing and decoding of untrusted bytes.
//! - [`proto`]: the generated protobuf types.
//! - [`keyring`]: AES-GCM keys with rotation (encrypt with the primary, decrypt with any).
//! - [`member`]: [`Member`], the identity foca knows a node by.
//! - [`clock`]: the [`LamportClock`].
//! - [`sim`]: a deterministic simulator (virtual clock, seeded randomness, priority queue of
//!   deliveries and timers, injected loss, duplication, delay, partitions, crashes).
//! - `transport` (feature `tokio`, on by default): [`Node`], the engine over UDP (gossip,
//!   SWIM) and TCP (bulk sync, push/pull, large entries) on one port.
//!
//! Design decisions, and where we deliberately differ from libnetwork:
//! - **Sans-IO.** Every behaviour is tested deterministically in the simulator, with no
//!   sockets or sleeps. The engine has no notion of time: periodic tasks are timers it asks
//!   for, and tombstones carry a residual reap time decremented by the reaper, as in
//!   libnetwork.
//! - **foca identities are `(name, address, epoch)`.** The name owns entries. When the
//!   cluster declares a live node down (a false suspicion or a partition), foca renews its
//!   identity (epoch + 1) and rejoins; a restarted process on the same address is a new
//!   identity and the old name is moved to "left" (libnetwork's reincarnation purge). A node
//!   that comes back after being declared failed gets a push/pull and a bulk sync from each
//!   node that notices, so entries dropped while it was away return without waiting for the
//!   30 s round (libnetwork lost such entries until the next bulk sync, moby#53437).
//! - **Push/pull carries the SWIM membership too** (a `members` field and a `join` flag added
//!   to `NetworkPushPull`), like memberlist's push/pull, so a node that missed a join by
//!   gossip finds it at the next round.
//! - **Bounded state transfers.** Bulk syncs are split into stream messages of at most
//!   [`Config::max_stream_message`] bytes (libnetwork sent one message and a 10.6 MB state
//!   was rejected at 21 nodes, moby#41416), a join syncs with at most
//!   [`Config::join_sync_nodes`] members instead of all of them, and an event too large for a
//!   datagram goes over a stream instead of never being sent.
//! - **Deterministic conflict resolution.** Two owners writing one key at the same Lamport
//!   time are ordered by owner name, so every node keeps the same winner (libnetwork keeps
//!   whichever arrived first).
//! - **No resurrection by reordering.** A gossiped delete for an entry never seen leaves a
//!   tombstone (libnetwork ignored it, so a late create could bring the entry back until the
//!   next bulk sync), and a LEAVE for an unknown attachment is kept so an older JOIN cannot
//!   override it.
//! - **Attachments of unknown nodes are kept**, not dropped (libnetwork dropped a JOIN from a
//!   node memberlist did not know yet); only attachments of active nodes count as members.
//! - **Encryption framing is our own**: each datagram and stream message is
//!   `[1][12-byte nonce][AES-GCM ciphertext]`, keys are 16 or 32 bytes (no AES-192), and
//!   plain text is refused once a key is installed. Together with foca replacing memberlist,
//!   this means the protobuf payloads match libnetwork's but the transport does not
//!   interoperate with Go nodes.
//! - Table events reach watchers as [`Output::Event`]s; the transport filters them per
//!   [`WatchFilter`] into unbounded channels, as libnetwork's broadcaster did.
//!
//! [foca]: https://docs.rs/foca
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod keyring;
pub mod member;
mod queue;
pub mod sim;
#[cfg(feature = "tokio")]
pub mod transport;
pub mod wire;

/// Generated protobuf messages of `proto/networkdb.proto`.
#[allow(missing_docs, clippy::all, unreachable_pub)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/networkdb.rs"));
}

pub use crate::clock::LamportClock;
pub use crate::config::{Config, DEFAULT_PORT};
pub use crate::engine::{
    Event, EventKind, NODE_TABLE, NetworkDb, NodeState, Outbox, Output, PeerInfo, Snapshot, Stats,
    TableElem, Timer, WatchFilter,
};
pub use crate::error::{Error, Result};
pub use crate::keyring::Keyring;
pub use crate::member::Member;
#[cfg(feature = "tokio")]
pub use crate::transport::Node;
