//! [`MemoryStore`]: the whole store in a `BTreeMap` behind one mutex.
//!
//! It has the semantics of the persistent backends (store-wide revisions as indexes,
//! preconditions, all-or-nothing batches, prefix watches) and replaces libnetwork's `MockStore`,
//! which had no `List` or `Watch`. Nothing survives the value.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use tracing::trace;

use crate::watch::Hub;
use crate::{Error, KvPair, Op, Precondition, Scope, Store, WatchEvent, Watcher};

/// A store that lives in memory only. Cheap to create; meant for tests and for callers that
/// need the [`Store`] contract without persistence.
#[derive(Debug)]
pub struct MemoryStore {
    scope: Scope,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// key -> (index, value)
    pairs: BTreeMap<String, (u64, Vec<u8>)>,
    /// The last revision handed out; 0 before the first write.
    revision: u64,
    hub: Hub,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store of the local scope.
    pub fn new() -> Self {
        Self::with_scope(Scope::Local)
    }

    /// An empty store that reports `scope` (to stand in for a global store in tests).
    pub fn with_scope(scope: Scope) -> Self {
        Self {
            scope,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only mutated after every check passed, so it is consistent even if a
        // panic poisoned the lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn scope(&self) -> Scope {
        self.scope
    }

    fn get(&self, key: &str) -> Result<KvPair, Error> {
        let state = self.lock();
        let (index, value) = state
            .pairs
            .get(key)
            .ok_or_else(|| Error::KeyNotFound(key.to_owned()))?;
        Ok(KvPair {
            key: key.to_owned(),
            value: value.clone(),
            index: *index,
        })
    }

    fn put(&self, key: &str, value: &[u8], precondition: Precondition) -> Result<u64, Error> {
        self.apply(vec![Op::Put {
            key: key.to_owned(),
            value: value.to_vec(),
            precondition,
        }])
    }

    fn delete(&self, key: &str, precondition: Precondition) -> Result<(), Error> {
        self.apply(vec![Op::Delete {
            key: key.to_owned(),
            precondition,
        }])
        .map(|_| ())
    }

    fn list(&self, prefix: &str) -> Result<Vec<KvPair>, Error> {
        let state = self.lock();
        Ok(state
            .pairs
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (index, value))| KvPair {
                key: k.clone(),
                value: value.clone(),
                index: *index,
            })
            .collect())
    }

    fn apply(&self, ops: Vec<Op>) -> Result<u64, Error> {
        crate::validate_ops(&ops)?;
        let mut state = self.lock();

        // Check everything first: a failing op leaves the map untouched.
        for op in &ops {
            let current = state.pairs.get(op.key()).map(|(i, _)| *i);
            crate::check_op(op, current)?;
        }

        let index = state.revision + 1;
        state.revision = index;
        let events: Vec<WatchEvent> = ops.iter().map(|op| crate::event_of(op, index)).collect();
        for op in ops {
            match op {
                Op::Put { key, value, .. } => {
                    state.pairs.insert(key, (index, value));
                }
                Op::Delete { key, .. } => {
                    state.pairs.remove(&key);
                }
            }
        }
        trace!(index, ops = events.len(), "memory store applied batch");
        state.hub.publish(&events);
        Ok(index)
    }

    fn watch(&self, prefix: &str) -> Result<Watcher, Error> {
        Ok(self.lock().hub.subscribe(prefix))
    }
}
