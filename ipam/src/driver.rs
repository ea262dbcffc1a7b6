//! [`DefaultIpam`]: the allocation core behind a mutex, persisted through `datastore`, as the
//! `default` IPAM driver. See the crate docs for the persistence design.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use ipnet::IpNet;
use libnetwork_datastore::{Op, Precondition, Store};
use libnetwork_ipamapi::{
    AllocatedAddress, AllocatedPool, Capability, Error as ApiError, Ipam, Options,
};
use tracing::{debug, info, warn};

use crate::allocator::{AddressRequest, PoolGrant, PoolRelease, space_index, space_of};
use crate::layout::{
    BitmapValue, SpaceValue, config_key, data_key, data_prefix, pool_id_of_data_key,
};
use crate::{
    Allocator, Error, GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE, NetworkToSplit, PredefinedPools,
};

/// How often one request is retried after losing an optimistic-concurrency race before it
/// gives up.
const MAX_ATTEMPTS: usize = 64;

/// The pause after the `attempt`-th lost race: 50 µs times the attempt (at most 2 ms), scaled
/// by a random factor between 0.5 and 1.5.
fn conflict_backoff(attempt: usize) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = 50 * (attempt as u64 + 1).min(40);
    let jitter = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % 1000;
    std::time::Duration::from_micros(base * (500 + jitter) / 1000)
}

/// How often loading an address space is retried when the store changes while it is read.
const MAX_LOAD_ATTEMPTS: usize = 16;

/// Address space names by index.
const SPACE_NAMES: [&str; 2] = [LOCAL_ADDRESS_SPACE, GLOBAL_ADDRESS_SPACE];

/// How the default IPAM is set up. `Default` gives libnetwork's predefined pools and no
/// stores (state in memory only).
#[derive(Debug, Clone, Default)]
pub struct IpamConfig {
    /// Where `LocalDefault` is persisted (the local redb store); `None` keeps it in memory.
    pub local_store: Option<Arc<dyn Store>>,
    /// Where `GlobalDefault` is persisted (the cluster's etcd store); `None` keeps it in
    /// memory.
    pub global_store: Option<Arc<dyn Store>>,
    /// Replaces the local predefined pools (Docker's `default-address-pools`); `None` keeps
    /// libnetwork's.
    pub local_pools: Option<Vec<NetworkToSplit>>,
    /// Replaces the global predefined pools; `None` keeps `10.0.0.0/8` split into /24s.
    pub global_pools: Option<Vec<NetworkToSplit>>,
    /// The host's link-scope routes, which automatic local pools avoid (see
    /// [`Allocator::set_host_routes`]).
    pub host_routes: Vec<IpNet>,
}

/// What happened to a request whose change waits to be written.
#[derive(Debug, Clone)]
enum Outcome {
    /// Not written yet.
    Pending,
    /// Written durably.
    Written,
    /// Thrown away (a concurrent writer won, and the state was reloaded): run it again.
    Discarded,
    /// The write failed; the state was reloaded without the change.
    Failed(ApiError),
}

/// The store keys a request changed.
#[derive(Debug)]
struct Touched {
    config: bool,
    bitmap: Option<String>,
}

/// Persistence bookkeeping of one address space.
#[derive(Debug)]
struct Persistence {
    store: Option<Arc<dyn Store>>,
    config_key: String,
    /// Store index of every key of this address space as last read or written.
    indexes: HashMap<String, u64>,
    /// Changed since the last write: the configuration, and bitmaps by pool id.
    dirty_config: bool,
    dirty_bitmaps: BTreeSet<String>,
    /// A write to the store is under way (at most one per address space).
    writing: bool,
    next_ticket: u64,
    /// Requests whose change waits to be written, by ticket.
    tickets: HashMap<u64, Outcome>,
    /// The memory no longer matches the store and could not be reloaded: reload before the
    /// next request.
    stale: bool,
}

impl Persistence {
    fn new(si: usize, store: Option<Arc<dyn Store>>) -> Self {
        Self {
            store,
            config_key: config_key(SPACE_NAMES[si]),
            indexes: HashMap::new(),
            dirty_config: false,
            dirty_bitmaps: BTreeSet::new(),
            writing: false,
            next_ticket: 0,
            tickets: HashMap::new(),
            stale: false,
        }
    }

    /// Sets the outcome of every pending request with a ticket up to `last`.
    fn resolve(&mut self, last: u64, outcome: &Outcome) {
        for (ticket, o) in &mut self.tickets {
            if *ticket <= last && matches!(o, Outcome::Pending) {
                *o = outcome.clone();
            }
        }
    }

    /// Marks every pending request discarded.
    fn discard_pending(&mut self) {
        self.resolve(u64::MAX, &Outcome::Discarded);
    }

    fn precondition(&self, key: &str) -> Precondition {
        match self.indexes.get(key) {
            Some(&index) => Precondition::Index(index),
            None => Precondition::Absent,
        }
    }
}

#[derive(Debug)]
struct State {
    core: Allocator,
    spaces: [Persistence; 2],
}

/// An address space as read from a store.
struct Loaded {
    value: Option<SpaceValue>,
    bitmaps: HashMap<String, (String, libnetwork_bitseq::Sequence)>,
    indexes: HashMap<String, u64>,
}

/// Reads an address space's configuration and bitmaps, retrying while the configuration
/// changes under the read (the two reads are not one snapshot).
fn load(store: &dyn Store, si: usize) -> Result<Loaded, Error> {
    let name = SPACE_NAMES[si];
    let config_key = config_key(name);
    let read_config = || match store.get(&config_key) {
        Ok(pair) => Ok(Some(pair)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(Error::Store(e)),
    };
    for _ in 0..MAX_LOAD_ATTEMPTS {
        let config = read_config()?;
        let data = store.list(&data_prefix(name))?;
        let again = read_config()?;
        if config.as_ref().map(|p| p.index) != again.as_ref().map(|p| p.index) {
            continue;
        }
        let mut indexes = HashMap::new();
        let value = match config {
            Some(pair) => {
                indexes.insert(config_key.clone(), pair.index);
                let value = serde_json::from_slice::<SpaceValue>(&pair.value).map_err(|e| {
                    Error::Corrupt {
                        key: config_key.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Some(value)
            }
            None => None,
        };
        let mut bitmaps = HashMap::new();
        for pair in data {
            indexes.insert(pair.key.clone(), pair.index);
            let corrupt = |reason: String| Error::Corrupt {
                key: pair.key.clone(),
                reason,
            };
            let id = pool_id_of_data_key(&pair.key)
                .ok_or_else(|| corrupt("not a bitmap key".into()))?
                .to_owned();
            let bitmap: BitmapValue =
                serde_json::from_slice(&pair.value).map_err(|e| corrupt(e.to_string()))?;
            bitmaps.insert(id, (pair.key, bitmap.sequence));
        }
        return Ok(Loaded {
            value,
            bitmaps,
            indexes,
        });
    }
    Err(Error::Store(libnetwork_datastore::Error::KeyModified(
        config_key,
    )))
}

/// Replaces an address space in memory with its stored state; requests waiting for a write
/// are discarded (they run again on the fresh state).
fn reload(state: &mut State, si: usize) -> Result<(), Error> {
    let Some(store) = state.spaces[si].store.clone() else {
        return Ok(());
    };
    let loaded = load(store.as_ref(), si)?;
    let p = &mut state.spaces[si];
    state
        .core
        .replace_space(si, loaded.value, &p.config_key, loaded.bitmaps)?;
    p.indexes = loaded.indexes;
    p.dirty_config = false;
    p.dirty_bitmaps.clear();
    p.stale = false;
    p.discard_pending();
    debug!(
        address_space = SPACE_NAMES[si],
        "reloaded ipam state from the store"
    );
    Ok(())
}

/// Errors that a stale view of the store can cause: before returning one, the allocator
/// checks that the keys it looked at are unchanged in the store.
fn might_be_stale(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::PoolNotFound(_)
            | ApiError::PoolOverlap { .. }
            | ApiError::NoAvailablePool { .. }
            | ApiError::NoAvailableIps(_)
            | ApiError::IpAlreadyAllocated { .. }
    )
}

fn backend(context: &str, e: libnetwork_datastore::Error) -> ApiError {
    ApiError::Backend {
        context: context.to_owned(),
        kind: e.kind(),
        source: Arc::new(e),
    }
}

/// libnetwork's built-in `default` IPAM driver: pools and addresses in the address spaces
/// `LocalDefault` and `GlobalDefault`, each persisted in its own store (if given).
///
/// Thread safe; requests of one address space that arrive while a write is under way share the
/// next write (see the crate docs).
#[derive(Debug)]
pub struct DefaultIpam {
    state: Mutex<State>,
    /// Signalled whenever a write finishes.
    written: Condvar,
    /// Whether `LocalDefault` has a store (if not, the controller must replay requests).
    local_persisted: bool,
}

impl DefaultIpam {
    /// Builds the driver and loads both address spaces from their stores.
    ///
    /// # Errors
    /// [`Error::InvalidBasePool`] and [`Error::InvalidPoolSize`] for a bad pool list,
    /// [`Error::Store`] when a store cannot be read, [`Error::Corrupt`] when its content is not
    /// an IPAM state.
    pub fn new(config: IpamConfig) -> Result<Self, Error> {
        let local = match &config.local_pools {
            Some(list) => PredefinedPools::new(list)?,
            None => PredefinedPools::local_default(),
        };
        let global = match &config.global_pools {
            Some(list) => PredefinedPools::new(list)?,
            None => PredefinedPools::global_default(),
        };
        let mut core = Allocator::new(local, global);
        core.set_host_routes(config.host_routes.iter().copied());
        let local_persisted = config.local_store.is_some();
        let mut state = State {
            core,
            spaces: [
                Persistence::new(0, config.local_store),
                Persistence::new(1, config.global_store),
            ],
        };
        for (si, name) in SPACE_NAMES.iter().enumerate() {
            reload(&mut state, si)?;
            info!(
                address_space = name,
                persisted = state.spaces[si].store.is_some(),
                pools = state.core.pool_ids(name).len(),
                "ipam address space ready"
            );
        }
        Ok(Self {
            state: Mutex::new(state),
            written: Condvar::new(),
            local_persisted,
        })
    }

    /// Replaces the host routes automatic local pools avoid (see
    /// [`Allocator::set_host_routes`]).
    pub fn set_host_routes(&self, routes: impl IntoIterator<Item = IpNet>) {
        self.lock().core.set_host_routes(routes);
    }

    /// A copy of the allocator's state (libnetwork's `DumpDatabase`), including changes not
    /// yet written.
    pub fn snapshot(&self) -> Allocator {
        self.lock().core.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Core operations either complete or change nothing, and the bookkeeping around them
        // never panics, so the state is consistent even if a caller's thread panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&'a self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.written.wait(state).unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no write of the address space is under way.
    fn wait_idle<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        si: usize,
    ) -> MutexGuard<'a, State> {
        while state.spaces[si].writing {
            state = self.wait(state);
        }
        state
    }

    /// Runs `op` on the core and makes its change durable.
    ///
    /// `touched` names the keys the change needs written, `bitmap_of` the pool whose bitmap a
    /// failed request looked at (the configuration is always checked).
    fn execute<T>(
        &self,
        si: usize,
        mut op: impl FnMut(&mut Allocator) -> Result<T, ApiError>,
        touched: impl Fn(&Allocator, &T) -> Touched,
        bitmap_of: impl Fn(&Allocator) -> Option<String>,
    ) -> Result<T, ApiError> {
        let mut state = self.lock();
        if state.spaces[si].store.is_none() {
            return op(&mut state.core);
        }
        let mut verified = false;
        for attempt in 0..MAX_ATTEMPTS {
            if state.spaces[si].stale {
                state = self.wait_idle(state, si);
                if state.spaces[si].stale {
                    reload(&mut state, si)?;
                }
            }
            let value = match op(&mut state.core) {
                Ok(value) => value,
                Err(e) if !verified && might_be_stale(&e) => {
                    verified = true;
                    state = self.wait_idle(state, si);
                    let bitmap = bitmap_of(&state.core);
                    if store_moved(&state, si, bitmap.as_deref())? {
                        debug!(error = %e, "store changed under the allocator, reloading");
                        reload(&mut state, si)?;
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };

            let touched = touched(&state.core, &value);
            let p = &mut state.spaces[si];
            p.dirty_config |= touched.config;
            p.dirty_bitmaps.extend(touched.bitmap);
            let ticket = p.next_ticket;
            p.next_ticket += 1;
            p.tickets.insert(ticket, Outcome::Pending);

            // Wait until the change is written, writing it (with everyone else's) when no
            // write is under way.
            loop {
                let p = &mut state.spaces[si];
                if matches!(p.tickets.get(&ticket), Some(Outcome::Pending)) {
                    state = if p.writing {
                        self.wait(state)
                    } else {
                        self.write(state, si)
                    };
                    continue;
                }
                match p.tickets.remove(&ticket) {
                    Some(Outcome::Written) => return Ok(value),
                    Some(Outcome::Failed(e)) => return Err(e),
                    _ => {
                        // Discarded: another allocator sharing the store won the race. Back
                        // off for a random moment that grows with the attempts, without the
                        // lock, so contending allocators stop invalidating each other's writes
                        // (without it four busy threads on two allocators could starve one
                        // request through all its attempts).
                        drop(state);
                        std::thread::sleep(conflict_backoff(attempt));
                        state = self.lock();
                        break;
                    }
                }
            }
        }
        Err(ApiError::Internal(format!(
            "gave up after {MAX_ATTEMPTS} conflicting updates of the store"
        )))
    }

    /// Writes every change of the address space made so far in one atomic batch, releasing
    /// the lock while the store works. Settles the tickets the batch covers.
    fn write<'a>(&'a self, mut state: MutexGuard<'a, State>, si: usize) -> MutexGuard<'a, State> {
        let State { core, spaces } = &mut *state;
        let p = &mut spaces[si];
        let last_ticket = p.next_ticket - 1;

        let mut ops = Vec::new();
        if std::mem::take(&mut p.dirty_config) {
            let value = serde_json::to_vec(&core.space_value(si)).expect("config always encodes");
            ops.push(Op::Put {
                key: p.config_key.clone(),
                value,
                precondition: p.precondition(&p.config_key),
            });
        }
        for id in std::mem::take(&mut p.dirty_bitmaps) {
            let key = data_key(&id);
            let precondition = p.precondition(&key);
            match core.bitmap_value(si, &id) {
                Some(value) => ops.push(Op::Put {
                    key,
                    value,
                    precondition,
                }),
                // A pool that never reached the store needs no delete.
                None if precondition == Precondition::Absent => {}
                None => ops.push(Op::Delete { key, precondition }),
            }
        }
        if ops.is_empty() {
            p.resolve(last_ticket, &Outcome::Written);
            return state;
        }

        let written: Vec<(String, bool)> = ops
            .iter()
            .map(|op| (op.key().to_owned(), matches!(op, Op::Put { .. })))
            .collect();
        let store = p.store.clone().expect("only persisted spaces write");
        p.writing = true;
        drop(state);

        let result = catch_unwind(AssertUnwindSafe(|| store.apply(ops))).unwrap_or_else(|_| {
            Err(libnetwork_datastore::Error::Unexpected(
                "the store panicked while writing".into(),
            ))
        });

        let mut state = self.lock();
        let p = &mut state.spaces[si];
        p.writing = false;
        match result {
            Ok(index) => {
                for (key, put) in written {
                    if put {
                        p.indexes.insert(key, index);
                    } else {
                        p.indexes.remove(&key);
                    }
                }
                p.resolve(last_ticket, &Outcome::Written);
            }
            Err(e) => {
                let outcome = if e.is_modified() {
                    debug!(error = %e, "lost a race for the store, reloading");
                    Outcome::Discarded
                } else {
                    Outcome::Failed(backend("persist ipam state", e))
                };
                p.resolve(last_ticket, &outcome);
                if let Err(e) = reload(&mut state, si) {
                    // The requests get their own error; this one only explains later ones.
                    warn!(error = %e, "cannot reload ipam state, will retry on next request");
                    let p = &mut state.spaces[si];
                    p.stale = true;
                    p.discard_pending();
                }
            }
        }
        self.written.notify_all();
        state
    }
}

/// Whether the store's index of the configuration (or of `bitmap`) differs from what the
/// allocator last read or wrote.
fn store_moved(state: &State, si: usize, bitmap: Option<&str>) -> Result<bool, ApiError> {
    let p = &state.spaces[si];
    let Some(store) = &p.store else {
        return Ok(false);
    };
    let keys = std::iter::once(p.config_key.clone()).chain(bitmap.map(data_key));
    for key in keys {
        let current = match store.get(&key) {
            Ok(pair) => Some(pair.index),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(backend("check ipam state", e)),
        };
        if current != p.indexes.get(&key).copied() {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Ipam for DefaultIpam {
    fn default_address_spaces(&self) -> Result<(String, String), ApiError> {
        Ok((
            LOCAL_ADDRESS_SPACE.to_owned(),
            GLOBAL_ADDRESS_SPACE.to_owned(),
        ))
    }

    fn request_pool(
        &self,
        address_space: &str,
        pool: Option<IpNet>,
        sub_pool: Option<IpNet>,
        _options: &Options,
        v6: bool,
    ) -> Result<AllocatedPool, ApiError> {
        let si = space_index(address_space)
            .ok_or_else(|| ApiError::InvalidAddressSpace(address_space.to_owned()))?;
        let grant = self.execute(
            si,
            |core| core.request_pool(address_space, pool, sub_pool, v6),
            |_, grant: &PoolGrant| Touched {
                config: true,
                bitmap: grant.created.clone(),
            },
            |_| None,
        )?;
        Ok(AllocatedPool {
            pool_id: grant.pool_id,
            pool: grant.pool,
            meta: Options::new(),
        })
    }

    fn release_pool(&self, pool_id: &str) -> Result<(), ApiError> {
        self.execute(
            space_of(pool_id)?,
            |core| core.release_pool(pool_id),
            |_, release: &PoolRelease| Touched {
                config: true,
                bitmap: release.removed.clone(),
            },
            |_| None,
        )
        .map(|_| ())
    }

    fn request_address(
        &self,
        pool_id: &str,
        preferred: Option<IpAddr>,
        options: &Options,
    ) -> Result<AllocatedAddress, ApiError> {
        let how = AddressRequest::from_options(options);
        let address = self.execute(
            space_of(pool_id)?,
            |core| core.request_address(pool_id, preferred, how),
            |core, _| Touched {
                config: false,
                bitmap: core.master_of(pool_id).map(str::to_owned),
            },
            |core| core.master_of(pool_id).map(str::to_owned),
        )?;
        Ok(AllocatedAddress {
            address,
            meta: Options::new(),
        })
    }

    fn release_address(&self, pool_id: &str, address: IpAddr) -> Result<(), ApiError> {
        // Releasing always writes, even when the address looks free here: this allocator's
        // view may be stale, and the write's precondition is what finds out.
        self.execute(
            space_of(pool_id)?,
            |core| core.release_address(pool_id, address),
            |core, _| Touched {
                config: false,
                bitmap: core.master_of(pool_id).map(str::to_owned),
            },
            |core| core.master_of(pool_id).map(str::to_owned),
        )
    }

    fn capabilities(&self) -> Capability {
        Capability {
            requires_mac_address: false,
            requires_request_replay: !self.local_persisted,
        }
    }

    fn is_built_in(&self) -> bool {
        true
    }
}
