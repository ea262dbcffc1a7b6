//! The object layer: libnetwork's `KVObject` and the `DataStore` methods on top of any
//! [`Store`].
//!
//! An object is a serde type stored as JSON under `key_of(&obj.key())`. Its index (and whether
//! it exists in the store) is not part of the JSON: implementors keep them in fields marked
//! `#[serde(skip)]`, and the helpers set them from the store after each read or write.
//!
//! Differences from libnetwork: there is no cache, so [`get_object`] and [`list_objects`]
//! always read the store; the helpers are typed (`get_object::<Network>(..)` returns a
//! `Network`) instead of filling a prototype; and an object that [`KvObject::skip`]s is never
//! written anywhere (libnetwork kept it in its cache), the helpers only keep its index moving
//! as the cache did.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::{Error, KvPair, Op, Precondition, Scope, Store, key_of};

/// An object persisted in a [`Store`] (libnetwork's `KVObject`).
pub trait KvObject: Serialize + DeserializeOwned {
    /// The key parts under [`crate::ROOT`], e.g. `["network", id]`.
    fn key(&self) -> Vec<String>;
    /// The parts of the "directory" of all objects of this type, e.g. `["network"]`.
    fn key_prefix(&self) -> Vec<String>;
    /// The index of the stored copy this object was read from or written as (0 if none).
    fn index(&self) -> u64;
    /// Records the index of the stored copy and marks the object as existing in the store.
    fn set_index(&mut self, index: u64);
    /// Whether the object was read from or written to the store.
    fn exists(&self) -> bool;
    /// True for objects that must never be persisted (libnetwork's `Skip`).
    fn skip(&self) -> bool {
        false
    }
    /// The scope of the store the object belongs in (the caller picks the store by it).
    fn data_scope(&self) -> Scope;
}

/// The full store key of `obj`.
pub fn object_key<T: KvObject>(obj: &T) -> String {
    key_of(&obj.key())
}

fn encode<T: KvObject>(obj: &T) -> Result<(String, Vec<u8>), Error> {
    let key = object_key(obj);
    let value = serde_json::to_vec(obj).map_err(|e| Error::Encode {
        key: key.clone(),
        source: Arc::new(e),
    })?;
    Ok((key, value))
}

fn decode<T: KvObject>(pair: &KvPair) -> Result<T, Error> {
    let mut obj: T = serde_json::from_slice(&pair.value).map_err(|e| Error::Decode {
        key: pair.key.clone(),
        source: Arc::new(e),
    })?;
    obj.set_index(pair.index);
    Ok(obj)
}

/// Reads the object stored at `key` and sets its index. Errors: KeyNotFound, Decode.
pub fn get_object<T: KvObject, S: Store + ?Sized>(store: &S, key: &str) -> Result<T, Error> {
    decode(&store.get(key)?)
}

/// Writes `obj` unconditionally and sets its new index.
pub fn put_object<T: KvObject, S: Store + ?Sized>(store: &S, obj: &mut T) -> Result<(), Error> {
    if obj.skip() {
        obj.set_index(obj.index() + 1);
        return Ok(());
    }
    let (key, value) = encode(obj)?;
    let index = store.put(&key, &value, Precondition::None)?;
    obj.set_index(index);
    Ok(())
}

/// Writes `obj` if the store still holds the copy it was read as: the key must be absent when
/// `!obj.exists()`, and have `obj.index()` otherwise. Sets the new index on success.
/// Errors: KeyModified (nothing written, `obj` unchanged).
pub fn put_object_atomic<T: KvObject, S: Store + ?Sized>(
    store: &S,
    obj: &mut T,
) -> Result<(), Error> {
    if obj.skip() {
        obj.set_index(obj.index() + 1);
        return Ok(());
    }
    let precondition = if obj.exists() {
        Precondition::Index(obj.index())
    } else {
        Precondition::Absent
    };
    let (key, value) = encode(obj)?;
    let index = store.put(&key, &value, precondition)?;
    obj.set_index(index);
    Ok(())
}

/// Deletes `obj` unconditionally. Errors: KeyNotFound.
pub fn delete_object<T: KvObject, S: Store + ?Sized>(store: &S, obj: &T) -> Result<(), Error> {
    if obj.skip() {
        return Ok(());
    }
    store.delete(&object_key(obj), Precondition::None)
}

/// Deletes `obj` if the store still holds it at `obj.index()`.
/// Errors: KeyNotFound, KeyModified (nothing deleted).
pub fn delete_object_atomic<T: KvObject, S: Store + ?Sized>(
    store: &S,
    obj: &T,
) -> Result<(), Error> {
    if obj.skip() {
        return Ok(());
    }
    store.delete(&object_key(obj), Precondition::Index(obj.index()))
}

/// Deletes every key under `obj.key_prefix()` in one batch. Errors: KeyModified when a key
/// changed between listing and deleting (nothing deleted; retry).
pub fn delete_tree<T: KvObject, S: Store + ?Sized>(store: &S, obj: &T) -> Result<(), Error> {
    if obj.skip() {
        return Ok(());
    }
    let ops: Vec<Op> = store
        .list(&key_of(&obj.key_prefix()))?
        .into_iter()
        .map(|pair| Op::Delete {
            key: pair.key,
            precondition: Precondition::Index(pair.index),
        })
        .collect();
    if ops.is_empty() {
        return Ok(());
    }
    store.apply(ops).map(|_| ())
}

/// Every object stored under `prefix` (a key such as `key(&["network"])`), in key order, with
/// indexes set. Empty values are skipped, as libnetwork does. Errors: Decode.
pub fn list_objects<T: KvObject, S: Store + ?Sized>(
    store: &S,
    prefix: &str,
) -> Result<Vec<T>, Error> {
    store
        .list(prefix)?
        .iter()
        .filter(|pair| !pair.value.is_empty())
        .map(decode)
        .collect()
}
