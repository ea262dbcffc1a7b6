//! Key-value persistence for libnetwork objects.
//!
//! libnetwork keeps its networks, endpoints, IPAM bitmaps and driver state in `docker/libkv`
//! stores behind its `datastore` package: boltdb for the local scope, etcd (or consul or
//! zookeeper) for the global scope. Every value carries a modification index, writes can be
//! made conditional on that index (optimistic concurrency), and objects are JSON documents under
//! keys of the form `docker/network/v1.0/<parts>/`. This crate keeps those semantics behind one
//! blocking [`Store`] trait with three backends and a small typed object layer.
//!
//! Layout:
//! - this file: the contract ([`Store`], [`KvPair`], [`Precondition`], [`Op`], [`WatchEvent`],
//!   [`Scope`]) and the key helpers ([`key`], [`key_of`], [`parse_key`], [`ROOT`]).
//! - [`error`]: the crate's [`Error`] and its [`libnetwork_types::ErrorKind`] mapping.
//! - [`memory`]: [`MemoryStore`], an in-memory store with the same semantics (tests, caches).
//! - [`redb`]: [`RedbStore`], the embedded local-scope default (one redb file, group commit).
//! - [`etcd`]: [`EtcdStore`], the global scope over etcd's v3 API.
//! - [`watch`]: [`Watcher`], the receiving end of [`Store::watch`].
//! - [`object`]: [`KvObject`] and the typed helpers ([`get_object`], [`put_object_atomic`], ...)
//!   that play the part of libnetwork's `DataStore`.
//!
//! Design decisions:
//! - **Indexes are store-wide revisions**, like etcd's `mod_revision`: every successful write
//!   (a put, a delete or a whole [`Store::apply`]) takes the next revision of the store, and
//!   every key it touches gets that revision as its index. Indexes therefore only grow, also
//!   across keys, and a key that is deleted and re-created never gets an index it had before.
//! - **One precondition check for all backends.** The rules live in one function (see
//!   [`Store::put`] and [`Store::delete`]): a put under [`Precondition::Index`] whose key is
//!   gone fails with [`Error::KeyModified`] (the object changed under the caller), a delete of a
//!   missing key fails with [`Error::KeyNotFound`] whatever its precondition.
//! - **Batches are strict**: [`Store::apply`] refuses an empty batch and a batch naming one key
//!   twice (etcd refuses the latter as well), so every backend gives the same answers.
//! - **Blocking API.** Every method blocks the calling thread until the backend answered; writes
//!   are durable when they return. Async callers use `tokio::task::spawn_blocking`. The etcd
//!   backend runs its own runtime on its own threads, so calling it from inside another runtime
//!   blocks that thread but never panics.
//! - **No cache and no "sequential" mutex.** libnetwork serialises its whole local datastore
//!   behind one mutex and caches local objects; here the backends are safe for concurrent use
//!   and the redb backend batches concurrent writers into one durable commit instead.
//! - Deliberate differences from libnetwork: the local redb file is opened once and locked
//!   (libkv's boltdb store reopened the file per operation so that two controllers could share
//!   it); the global store takes no `host:port/<prefix>` root override (libnetwork's was a
//!   process-wide global); objects with [`KvObject::skip`] are never written anywhere (the
//!   controller keeps them in memory itself).
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod error;
pub mod etcd;
pub mod memory;
pub mod object;
pub mod redb;
mod wal;
pub mod watch;

pub use crate::error::Error;
pub use crate::etcd::EtcdStore;
pub use crate::memory::MemoryStore;
pub use crate::object::{
    KvObject, delete_object, delete_object_atomic, delete_tree, get_object, list_objects,
    object_key, put_object, put_object_atomic,
};
pub use crate::redb::{CommitStats, Durability, RedbOptions, RedbStore};
pub use crate::watch::Watcher;

/// The root of every key, as in libnetwork.
pub const ROOT: &str = "docker/network/v1.0";

/// Builds a key from its parts: `docker/network/v1.0/<a>/<b>/` (with the trailing `/`).
pub fn key(parts: &[&str]) -> String {
    key_of(parts)
}

/// [`key`] for parts of any string type (for example the `Vec<String>` of
/// [`KvObject::key`]).
pub fn key_of<S: AsRef<str>>(parts: &[S]) -> String {
    let mut k = String::from(ROOT);
    for p in parts {
        k.push('/');
        k.push_str(p.as_ref());
    }
    k.push('/');
    k
}

/// Splits a key made by [`key`] back into its parts (leading and trailing `/` are ignored).
///
/// Errors: [`Error::InvalidKey`] when the key does not start with [`ROOT`] or has no part
/// after it.
pub fn parse_key(key: &str) -> Result<Vec<String>, Error> {
    let invalid = |reason| Error::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    let trimmed = key.trim_matches('/');
    let rest = trimmed
        .strip_prefix(ROOT)
        .ok_or_else(|| invalid("does not start with the root docker/network/v1.0"))?;
    let rest = rest
        .strip_prefix('/')
        .ok_or_else(|| invalid("has no part after the root"))?;
    Ok(rest.split('/').map(str::to_owned).collect())
}

/// Where a store's data lives and who shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This host only (redb, in-memory).
    Local,
    /// Shared by every host of a cluster (etcd).
    Global,
}

impl Scope {
    /// libnetwork's name of the scope (`local`, `global`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Global => "global",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored value with its modification index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPair {
    /// The full key.
    pub key: String,
    /// The value bytes (JSON for libnetwork objects).
    pub value: Vec<u8>,
    /// The index of the last change of this key; it grows with every change in the store.
    pub index: u64,
}

/// What must hold for a write to go ahead (libkv's AtomicPut/AtomicDelete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Write unconditionally.
    None,
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this index.
    Index(u64),
}

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Put `value` at `key` if `precondition` holds.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The condition.
        precondition: Precondition,
    },
    /// Delete `key` if `precondition` holds.
    Delete {
        /// The key.
        key: String,
        /// The condition.
        precondition: Precondition,
    },
}

impl Op {
    /// The key this op writes.
    pub fn key(&self) -> &str {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => key,
        }
    }

    /// The condition of this op.
    pub fn precondition(&self) -> Precondition {
        match self {
            Self::Put { precondition, .. } | Self::Delete { precondition, .. } => *precondition,
        }
    }
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or changed.
    Put(KvPair),
    /// A key was deleted, at this index.
    Delete {
        /// The key.
        key: String,
        /// The index of the deletion.
        index: u64,
    },
}

impl WatchEvent {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Put(pair) => &pair.key,
            Self::Delete { key, .. } => key,
        }
    }

    /// The index (store revision) of the change.
    pub fn index(&self) -> u64 {
        match self {
            Self::Put(pair) => pair.index,
            Self::Delete { index, .. } => *index,
        }
    }
}

/// A key-value store with libkv's semantics. Every method is blocking; writes are durable when
/// they return.
///
/// Precondition rules, the same for every backend: a put under [`Precondition::Absent`] fails
/// with [`Error::KeyModified`] when the key exists; a put under [`Precondition::Index`] fails
/// with [`Error::KeyModified`] unless the key exists with exactly that index. A delete fails
/// with [`Error::KeyNotFound`] when the key does not exist (whatever its precondition), and with
/// [`Error::KeyModified`] when it exists but [`Precondition::Absent`] was asked for or its index
/// differs. A failed write changes nothing.
pub trait Store: Send + Sync + fmt::Debug {
    /// The scope this store serves.
    fn scope(&self) -> Scope;
    /// Reads one key. Errors: KeyNotFound.
    fn get(&self, key: &str) -> Result<KvPair, Error>;
    /// Writes one key and returns its new index. Errors: KeyModified.
    fn put(&self, key: &str, value: &[u8], precondition: Precondition) -> Result<u64, Error>;
    /// Deletes one key. Errors: KeyNotFound, KeyModified.
    fn delete(&self, key: &str, precondition: Precondition) -> Result<(), Error>;
    /// Every pair whose key starts with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<KvPair>, Error>;
    /// Applies all of `ops` or none of them (one transaction, one durable commit); returns the
    /// index of the transaction.
    fn apply(&self, ops: Vec<Op>) -> Result<u64, Error>;
    /// Streams the changes of every key starting with `prefix` that are made after this call
    /// returns, in commit order. Dropping the [`Watcher`] ends the subscription.
    fn watch(&self, prefix: &str) -> Result<Watcher, Error>;
}

/// Checks one op against the current index of its key (`None`: the key does not exist). The
/// single definition of the precondition rules documented on [`Store`].
pub(crate) fn check_op(op: &Op, current: Option<u64>) -> Result<(), Error> {
    let key = op.key();
    let modified = || Err(Error::KeyModified(key.to_owned()));
    match op {
        Op::Put { precondition, .. } => match (precondition, current) {
            (Precondition::None, _) | (Precondition::Absent, None) => Ok(()),
            (Precondition::Index(want), Some(have)) if *want == have => Ok(()),
            _ => modified(),
        },
        Op::Delete { precondition, .. } => match (precondition, current) {
            (_, None) => Err(Error::KeyNotFound(key.to_owned())),
            (Precondition::None, Some(_)) => Ok(()),
            (Precondition::Index(want), Some(have)) if *want == have => Ok(()),
            _ => modified(),
        },
    }
}

/// Rejects keys no backend can store.
pub(crate) fn validate_key(key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::InvalidKey {
            key: String::new(),
            reason: "is empty",
        });
    }
    Ok(())
}

/// Rejects batches that are empty, contain an invalid key or name one key twice.
pub(crate) fn validate_ops(ops: &[Op]) -> Result<(), Error> {
    if ops.is_empty() {
        return Err(Error::InvalidBatch("no operations".to_owned()));
    }
    let mut seen = HashSet::with_capacity(ops.len());
    for op in ops {
        validate_key(op.key())?;
        if !seen.insert(op.key()) {
            return Err(Error::InvalidBatch(format!(
                "key {} appears more than once",
                op.key()
            )));
        }
    }
    Ok(())
}

/// The event a committed op produces.
pub(crate) fn event_of(op: &Op, index: u64) -> WatchEvent {
    match op {
        Op::Put { key, value, .. } => WatchEvent::Put(KvPair {
            key: key.clone(),
            value: value.clone(),
            index,
        }),
        Op::Delete { key, .. } => WatchEvent::Delete {
            key: key.clone(),
            index,
        },
    }
}

#[cfg(test)]
mod tests {
    use libnetwork_types::ErrorKind;

    use super::*;

    #[test]
    fn key_joins_parts_under_the_root_with_a_trailing_slash() {
        assert_eq!(key(&["hello", "world"]), "docker/network/v1.0/hello/world/");
        assert_eq!(key_of(&["a".to_owned()]), "docker/network/v1.0/a/");
    }

    #[test]
    fn parse_key_returns_the_parts_after_the_root() {
        let parts = parse_key("docker/network/v1.0/hello/world/").unwrap();
        assert_eq!(parts, ["hello", "world"]);
        assert_eq!(parse_key("/docker/network/v1.0/x").unwrap(), ["x"]);
        assert_eq!(parse_key(&key(&["a", "b", "c"])).unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn parse_key_rejects_keys_outside_the_root_as_bad_request() {
        for bad in [
            "",
            "docker/network/v1.0",
            "docker/network/v1.0/",
            "docker/network/v2.0/hello/",
            "docker/network/v1.0x/hello/",
            "other/hello/",
        ] {
            let err = parse_key(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidKey { .. }), "{bad}: {err}");
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{bad}");
        }
    }

    fn put(p: Precondition) -> Op {
        Op::Put {
            key: "k".into(),
            value: vec![],
            precondition: p,
        }
    }

    fn del(p: Precondition) -> Op {
        Op::Delete {
            key: "k".into(),
            precondition: p,
        }
    }

    #[test]
    fn precondition_rules_match_the_documented_table() {
        use Precondition::{Absent, Index, None as Any};
        let ok = |r: Result<(), Error>| r.is_ok();
        let modified = |r: Result<(), Error>| matches!(r, Err(Error::KeyModified(_)));
        let missing = |r: Result<(), Error>| matches!(r, Err(Error::KeyNotFound(_)));

        assert!(ok(check_op(&put(Any), None)));
        assert!(ok(check_op(&put(Any), Some(3))));
        assert!(ok(check_op(&put(Absent), None)));
        assert!(modified(check_op(&put(Absent), Some(3))));
        assert!(ok(check_op(&put(Index(3)), Some(3))));
        assert!(modified(check_op(&put(Index(2)), Some(3))));
        assert!(modified(check_op(&put(Index(0)), None)));

        assert!(missing(check_op(&del(Any), None)));
        assert!(missing(check_op(&del(Index(3)), None)));
        assert!(missing(check_op(&del(Absent), None)));
        assert!(ok(check_op(&del(Any), Some(3))));
        assert!(ok(check_op(&del(Index(3)), Some(3))));
        assert!(modified(check_op(&del(Index(4)), Some(3))));
        assert!(modified(check_op(&del(Absent), Some(3))));
    }

    #[test]
    fn batches_must_be_non_empty_with_distinct_non_empty_keys() {
        assert!(matches!(validate_ops(&[]), Err(Error::InvalidBatch(_))));
        assert!(matches!(
            validate_ops(&[put(Precondition::None), del(Precondition::None)]),
            Err(Error::InvalidBatch(_))
        ));
        let empty_key = Op::Delete {
            key: String::new(),
            precondition: Precondition::None,
        };
        assert!(matches!(
            validate_ops(&[empty_key]),
            Err(Error::InvalidKey { .. })
        ));
        assert!(validate_ops(&[put(Precondition::None)]).is_ok());
    }
}
