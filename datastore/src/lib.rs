//! Key-value persistence for libnetwork objects.
//!
//! API CONTRACT (fixed so that ipam and the controller can be written against it; the
//! implementation is in progress).
#![forbid(unsafe_code)]

use std::fmt;

use libnetwork_types::ErrorKind;
use serde::{Deserialize, Serialize};

/// The root of every key, as in libnetwork.
pub const ROOT: &str = "docker/network/v1.0";

/// Builds a key from its parts: `docker/network/v1.0/<a>/<b>/` (with the trailing `/`).
pub fn key(parts: &[&str]) -> String {
    let mut k = String::from(ROOT);
    for p in parts {
        k.push('/');
        k.push_str(p);
    }
    k.push('/');
    k
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

/// Errors of store operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key does not exist.
    #[error("key not found: {0}")]
    KeyNotFound(String),
    /// A precondition did not hold (libkv's ErrKeyModified / ErrKeyExists).
    #[error("key modified: {0}")]
    KeyModified(String),
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::KeyNotFound(_) => ErrorKind::NotFound,
            Self::KeyModified(_) => ErrorKind::Conflict,
        }
    }
}

/// A key-value store with libkv's semantics. Every method is blocking; writes are durable when
/// they return.
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
}
