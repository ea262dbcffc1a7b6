//! The allocation core: pools and addresses of both address spaces, as plain data. No locks,
//! no I/O; [`crate::DefaultIpam`] adds persistence and synchronisation around it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use libnetwork_bitseq::{Error as BitError, Sequence};
use libnetwork_ipamapi::{Error as ApiError, Options, is_gateway_request, is_serial};
use tracing::{debug, info, warn};

use crate::addr::{
    address_at, bitmap_len, bounds, is_reserved, ordinal_of, overlaps, reserved_ordinals,
};
use crate::layout::{KeyValue, PoolValue, RangeValue, SpaceValue};
use crate::predefined::{PredefinedPools, is_default_route, last_blocking};
use crate::{Error, GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE, SubnetKey};

/// How an address without a preferred value is picked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressRequest {
    /// Continue after the last address handed out in the pool, wrapping, instead of taking
    /// the lowest free one ([`libnetwork_ipamapi::ALLOC_SERIAL_PREFIX`]).
    pub serial: bool,
    /// The address is for the network's gateway: always the lowest free one, even when
    /// `serial` is set, so a network's gateway is predictable.
    pub gateway: bool,
}

impl AddressRequest {
    /// Reads the request kind from `RequestAddress` options.
    pub fn from_options(options: &Options) -> Self {
        Self {
            serial: is_serial(options),
            gateway: is_gateway_request(options),
        }
    }
}

/// The addresses of a sub-pool: its network and its first and last ordinals in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    /// The sub-pool as requested (with host bits cleared).
    pub sub: IpNet,
    /// Ordinal of the sub-pool's first address in the pool.
    pub start: u64,
    /// Ordinal of the sub-pool's last address in the pool (capped at the pool's last
    /// allocatable ordinal).
    pub end: u64,
}

/// What [`Allocator::pool`] tells about a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// The pool's identity (its string form is the pool id).
    pub key: SubnetKey,
    /// The pool's network (for a sub-pool, the network of the pool it lies in).
    pub pool: IpNet,
    /// For a sub-pool, its range.
    pub range: Option<AddressRange>,
    /// libnetwork's reference count: for a pool, 1 if requested itself plus 1 per sub-pool;
    /// 1 for a sub-pool.
    pub ref_count: u64,
}

/// The result of [`Allocator::request_pool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolGrant {
    /// The pool id.
    pub pool_id: String,
    /// The pool's network.
    pub pool: IpNet,
    /// The id of the pool whose bitmap this request created, if any.
    pub created: Option<String>,
}

/// The result of [`Allocator::release_pool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRelease {
    /// The id of the pool whose bitmap this release destroyed (with every address in it), if
    /// any.
    pub removed: Option<String>,
}

/// A pool or sub-pool entry.
#[derive(Debug, Clone)]
struct Pool {
    key: SubnetKey,
    /// The id of the pool holding the bitmap: the entry's own id for a pool.
    master_id: String,
    /// The pool's network (for a sub-pool, its master's).
    network: IpNet,
    range: Option<AddressRange>,
    ref_count: u64,
}

/// A pool's bitmap and its serial-allocation cursor.
#[derive(Debug, Clone)]
struct Bitmap {
    seq: Sequence,
    /// The ordinal after the last one picked by a search (libnetwork's `curr`). Kept in memory
    /// only, but across reloads of the address space.
    cursor: u64,
}

impl Bitmap {
    /// A bitmap for a fresh pool, with its reserved ordinals set.
    fn for_pool(net: &IpNet) -> Self {
        let mut seq = Sequence::new(bitmap_len(net));
        for ordinal in reserved_ordinals(net) {
            // A fresh sequence has every ordinal below its length free.
            seq.set(ordinal)
                .expect("reserved ordinal inside a fresh bitmap");
        }
        Self { seq, cursor: 0 }
    }

    /// Sets the first free ordinal in `[start, end]`, from the cursor when `serial` (wrapping).
    fn claim(&mut self, start: u64, end: u64, serial: bool) -> Result<Option<u64>, BitError> {
        let from = if serial && self.cursor > start && self.cursor <= end {
            self.cursor
        } else {
            start
        };
        let found = match self.seq.set_any_in_range(from, end, false) {
            Ok(ordinal) => Some(ordinal),
            Err(BitError::NoBitAvailable) if from > start => {
                match self.seq.set_any_in_range(start, from - 1, false) {
                    Ok(ordinal) => Some(ordinal),
                    Err(BitError::NoBitAvailable) => None,
                    Err(e) => return Err(e),
                }
            }
            Err(BitError::NoBitAvailable) => None,
            Err(e) => return Err(e),
        };
        if let Some(ordinal) = found {
            // `ordinal < len <= u64::MAX`.
            self.cursor = ordinal + 1;
        }
        Ok(found)
    }
}

/// One address space: its pools, their bitmaps and its predefined pools.
#[derive(Debug, Clone)]
struct Space {
    name: &'static str,
    scope: &'static str,
    predefined: PredefinedPools,
    /// Where the next search of the predefined list starts (round robin).
    next_predefined: u128,
    /// Pool and sub-pool entries by pool id.
    pools: BTreeMap<String, Pool>,
    /// Bitmaps by pool id (pools only, never sub-pools).
    bitmaps: HashMap<String, Bitmap>,
}

impl Space {
    fn new(name: &'static str, scope: &'static str, predefined: PredefinedPools) -> Self {
        Self {
            name,
            scope,
            predefined,
            next_predefined: 0,
            pools: BTreeMap::new(),
            bitmaps: HashMap::new(),
        }
    }

    /// The networks of the pools (not sub-pools).
    fn masters(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.pools
            .values()
            .filter(|p| p.range.is_none())
            .map(|p| p.network)
    }

    fn overlapping_master(&self, net: &IpNet) -> Option<IpNet> {
        self.masters().find(|m| overlaps(m, net))
    }

    /// Adds a pool entry with a fresh bitmap (the caller checked for overlaps).
    fn insert_master(&mut self, net: IpNet, ref_count: u64) -> String {
        let key = SubnetKey {
            address_space: self.name.to_owned(),
            subnet: net,
            child: None,
        };
        let id = key.to_string();
        self.pools.insert(
            id.clone(),
            Pool {
                key,
                master_id: id.clone(),
                network: net,
                range: None,
                ref_count,
            },
        );
        self.bitmaps.insert(id.clone(), Bitmap::for_pool(&net));
        id
    }
}

/// The range of sub-pool `sub` in pool `pool`, or why there is none.
fn range_of(pool: &IpNet, sub: &IpNet) -> Result<AddressRange, ApiError> {
    let invalid = |reason: String| ApiError::InvalidSubPool {
        sub_pool: *sub,
        reason,
    };
    if pool.max_prefix_len() != sub.max_prefix_len() {
        return Err(invalid(format!("not of the address family of pool {pool}")));
    }
    if sub.prefix_len() < pool.prefix_len() || !pool.contains(&sub.network()) {
        return Err(invalid(format!("not inside pool {pool}")));
    }
    let len = bitmap_len(pool);
    let (pool_first, _) = bounds(pool);
    let (sub_first, sub_last) = bounds(sub);
    let start = u64::try_from(sub_first - pool_first)
        .ok()
        .filter(|&s| s < len)
        .ok_or_else(|| {
            invalid(format!(
                "outside the first 2^64-1 addresses of pool {pool}, the part of a large IPv6 \
                 pool addresses are allocated from"
            ))
        })?;
    // `len - 1` fits u64 and bounds `end`, so the conversion cannot fail.
    let end = (sub_last - pool_first).min(u128::from(len - 1)) as u64;
    Ok(AddressRange {
        sub: *sub,
        start,
        end,
    })
}

/// The error for a pool id that names no pool: malformed, or not found.
fn missing(pool_id: &str) -> ApiError {
    match pool_id.parse::<SubnetKey>() {
        Err(e) => e,
        Ok(_) => ApiError::PoolNotFound(pool_id.to_owned()),
    }
}

/// Index of an address space by name.
pub(crate) fn space_index(name: &str) -> Option<usize> {
    match name {
        LOCAL_ADDRESS_SPACE => Some(0),
        GLOBAL_ADDRESS_SPACE => Some(1),
        _ => None,
    }
}

/// Index of the address space a pool id belongs to.
pub(crate) fn space_of(pool_id: &str) -> Result<usize, ApiError> {
    pool_id
        .split_once('/')
        .and_then(|(space, _)| space_index(space))
        .ok_or_else(|| missing(pool_id))
}

/// The default IPAM's state: pools, sub-pools and their address bitmaps in the address spaces
/// `LocalDefault` and `GlobalDefault`, plus the predefined pool lists and the host's routes.
///
/// Every method either succeeds or changes nothing.
#[derive(Debug, Clone)]
pub struct Allocator {
    spaces: [Space; 2],
    host_routes: Vec<IpNet>,
}

impl Default for Allocator {
    /// An allocator with libnetwork's predefined pools and no host routes.
    fn default() -> Self {
        Self::new(
            PredefinedPools::local_default(),
            PredefinedPools::global_default(),
        )
    }
}

impl Allocator {
    /// An empty allocator picking automatic pools from `local` (for `LocalDefault`) and
    /// `global` (for `GlobalDefault`).
    pub fn new(local: PredefinedPools, global: PredefinedPools) -> Self {
        Self {
            spaces: [
                Space::new(LOCAL_ADDRESS_SPACE, "local", local),
                Space::new(GLOBAL_ADDRESS_SPACE, "global", global),
            ],
            host_routes: Vec::new(),
        }
    }

    /// Sets the host's routes: automatic pools of `LocalDefault` that overlap one of them are
    /// skipped. Pass the host's link-scope routes (libnetwork's `CheckRouteOverlaps` looks at
    /// those only); default routes (`/0`) are ignored, since every pool would overlap them.
    /// Explicitly requested pools are never checked against routes (the caller asked for that
    /// subnet), nor are `GlobalDefault` pools (multi-host networks do not use the host's routing
    /// table), as in libnetwork.
    pub fn set_host_routes(&mut self, routes: impl IntoIterator<Item = IpNet>) {
        self.host_routes = routes
            .into_iter()
            .filter(|r| !is_default_route(r))
            .map(|r| r.trunc())
            .collect();
    }

    /// The host routes automatic local pools avoid.
    pub fn host_routes(&self) -> &[IpNet] {
        &self.host_routes
    }

    /// Reserves a pool (see [`libnetwork_ipamapi::Ipam::request_pool`]):
    /// - no `pool`: the next free predefined pool of the family, round robin (the search starts
    ///   after the pool handed out last, so a released pool is not reused at once), skipping
    ///   pools that overlap a reserved pool or (in `LocalDefault`) a host route;
    /// - `pool`: exactly that network, unless it overlaps a reserved pool;
    /// - `pool` and `sub_pool`: a sub-pool; its pool is reserved along with it if it is not yet
    ///   (and must then not overlap another pool). The same sub-pool of the same pool cannot be
    ///   reserved twice; different sub-pools of one pool may overlap.
    ///
    /// # Errors
    /// [`ApiError::InvalidAddressSpace`], [`ApiError::InvalidSubPool`],
    /// [`ApiError::PoolOverlap`] (naming both networks), [`ApiError::NoAvailablePool`].
    pub fn request_pool(
        &mut self,
        address_space: &str,
        pool: Option<IpNet>,
        sub_pool: Option<IpNet>,
        v6: bool,
    ) -> Result<PoolGrant, ApiError> {
        let si = space_index(address_space)
            .ok_or_else(|| ApiError::InvalidAddressSpace(address_space.to_owned()))?;
        let grant = match (pool, sub_pool) {
            (None, Some(sub)) => {
                return Err(ApiError::InvalidSubPool {
                    sub_pool: sub,
                    reason: "a sub-pool needs a pool".into(),
                });
            }
            (None, None) => {
                let (index, net) = self.pick_predefined(si, v6)?;
                let space = &mut self.spaces[si];
                space.next_predefined = index + 1;
                let id = space.insert_master(net, 1);
                PoolGrant {
                    pool_id: id.clone(),
                    pool: net,
                    created: Some(id),
                }
            }
            (Some(pool), None) => self.add_master(si, pool.trunc())?,
            (Some(pool), Some(sub)) => self.add_sub(si, pool.trunc(), sub.trunc())?,
        };
        info!(pool_id = %grant.pool_id, "reserved address pool");
        Ok(grant)
    }

    fn add_master(&mut self, si: usize, net: IpNet) -> Result<PoolGrant, ApiError> {
        let space = &mut self.spaces[si];
        if let Some(existing) = space.overlapping_master(&net) {
            return Err(ApiError::PoolOverlap {
                address_space: space.name.to_owned(),
                requested: net,
                existing,
            });
        }
        let id = space.insert_master(net, 1);
        Ok(PoolGrant {
            pool_id: id.clone(),
            pool: net,
            created: Some(id),
        })
    }

    fn add_sub(&mut self, si: usize, pool: IpNet, sub: IpNet) -> Result<PoolGrant, ApiError> {
        let range = range_of(&pool, &sub)?;
        let space = &mut self.spaces[si];
        let key = SubnetKey {
            address_space: space.name.to_owned(),
            subnet: pool,
            child: Some(sub),
        };
        let id = key.to_string();
        if space.pools.contains_key(&id) {
            return Err(ApiError::PoolOverlap {
                address_space: space.name.to_owned(),
                requested: sub,
                existing: sub,
            });
        }
        let master_id = key.master().to_string();
        let created = match space.pools.get_mut(&master_id) {
            Some(master) => {
                master.ref_count += 1;
                None
            }
            None => {
                if let Some(existing) = space.overlapping_master(&pool) {
                    return Err(ApiError::PoolOverlap {
                        address_space: space.name.to_owned(),
                        requested: pool,
                        existing,
                    });
                }
                Some(space.insert_master(pool, 1))
            }
        };
        space.pools.insert(
            id.clone(),
            Pool {
                key,
                master_id,
                network: pool,
                range: Some(range),
                ref_count: 1,
            },
        );
        Ok(PoolGrant {
            pool_id: id,
            pool,
            created,
        })
    }

    /// The first free predefined pool of the family after the last one handed out, wrapping.
    fn pick_predefined(&self, si: usize, v6: bool) -> Result<(u128, IpNet), ApiError> {
        let space = &self.spaces[si];
        let total = space.predefined.len();
        let start = match total {
            0 => 0,
            _ => space.next_predefined % total,
        };
        let masters: Vec<IpNet> = space.masters().collect();
        let routes: &[IpNet] = match space.name {
            LOCAL_ADDRESS_SPACE => &self.host_routes,
            _ => &[],
        };
        let blocked = |pool: &IpNet| last_blocking(pool, masters.iter().chain(routes).copied());
        space
            .predefined
            .find(start, total, v6, blocked)
            .or_else(|| space.predefined.find(0, start, v6, blocked))
            .ok_or_else(|| ApiError::NoAvailablePool {
                address_space: space.name.to_owned(),
                v6,
            })
    }

    /// Releases a pool or sub-pool. A pool's bitmap, with every address in it, goes away with
    /// the last reference to the pool (its own and its sub-pools').
    ///
    /// # Errors
    /// [`ApiError::InvalidPoolId`]; [`ApiError::PoolNotFound`] for a pool not reserved, already
    /// released, or only held by its sub-pools (libnetwork would drop it from under them).
    pub fn release_pool(&mut self, pool_id: &str) -> Result<PoolRelease, ApiError> {
        let space = &mut self.spaces[space_of(pool_id)?];
        let pool = space.pools.get(pool_id).ok_or_else(|| missing(pool_id))?;
        let master_id = pool.master_id.clone();
        if pool.range.is_none() {
            let subs = space
                .pools
                .values()
                .filter(|p| p.range.is_some() && p.master_id == pool_id)
                .count() as u64;
            if pool.ref_count <= subs {
                return Err(ApiError::PoolNotFound(pool_id.to_owned()));
            }
        } else {
            space.pools.remove(pool_id);
        }
        // Drop one reference from the pool holding the bitmap.
        let master = space
            .pools
            .get_mut(&master_id)
            .ok_or_else(|| ApiError::Internal(format!("sub-pool {pool_id} has no pool")))?;
        master.ref_count -= 1;
        let removed = if master.ref_count == 0 {
            space.pools.remove(&master_id);
            space.bitmaps.remove(&master_id);
            Some(master_id)
        } else {
            None
        };
        info!(pool_id, "released address pool");
        Ok(PoolRelease { removed })
    }

    /// Reserves an address of a pool and returns it with the pool's prefix length.
    ///
    /// - `preferred`: exactly that address; it must be inside the pool (for a sub-pool, inside
    ///   its *pool*, not necessarily its range, as in libnetwork: that is how a gateway or a
    ///   static address outside `--ip-range` is reserved).
    /// - otherwise the lowest free address of the sub-pool's range (or the pool), or with
    ///   `how.serial` the next free one after the last handed out, wrapping.
    ///
    /// # Errors
    /// [`ApiError::InvalidPoolId`], [`ApiError::PoolNotFound`], [`ApiError::IpOutOfRange`],
    /// [`ApiError::ReservedAddress`] (the network or IPv4 broadcast address),
    /// [`ApiError::IpAlreadyAllocated`], [`ApiError::NoAvailableIps`].
    pub fn request_address(
        &mut self,
        pool_id: &str,
        preferred: Option<IpAddr>,
        how: AddressRequest,
    ) -> Result<IpNet, ApiError> {
        let Space { pools, bitmaps, .. } = &mut self.spaces[space_of(pool_id)?];
        let pool = pools.get(pool_id).ok_or_else(|| missing(pool_id))?;
        let bitmap = bitmaps
            .get_mut(&pool.master_id)
            .ok_or_else(|| ApiError::Internal(format!("pool {} has no bitmap", pool.master_id)))?;
        let net = pool.network;
        let ordinal = match preferred {
            Some(ip) => {
                let ordinal = checked_ordinal(&net, ip)?;
                bitmap.seq.set(ordinal).map_err(|e| match e {
                    BitError::BitAllocated(_) => ApiError::IpAlreadyAllocated {
                        address: ip,
                        pool_id: pool_id.to_owned(),
                    },
                    e => ApiError::Internal(format!("reserve {ip} in pool {pool_id}: {e}")),
                })?;
                ordinal
            }
            None => {
                let (start, end) = match pool.range {
                    Some(r) => (r.start, r.end),
                    None => (0, bitmap.seq.len() - 1),
                };
                bitmap
                    .claim(start, end, how.serial && !how.gateway)
                    .map_err(|e| ApiError::Internal(format!("search pool {pool_id}: {e}")))?
                    .ok_or_else(|| ApiError::NoAvailableIps(pool_id.to_owned()))?
            }
        };
        let address = address_at(&net, ordinal);
        debug!(pool_id, %address, "reserved address");
        // The prefix length is the pool's own, so it is valid.
        Ok(IpNet::new(address, net.prefix_len()).expect("pool prefix length"))
    }

    /// Releases an address of a pool (any address of the pool, also for a sub-pool id).
    /// Releasing a free address is not an error.
    ///
    /// # Errors
    /// [`ApiError::InvalidPoolId`], [`ApiError::PoolNotFound`], [`ApiError::IpOutOfRange`],
    /// [`ApiError::ReservedAddress`] (libnetwork would free the network address, and hand it out
    /// later).
    pub fn release_address(&mut self, pool_id: &str, address: IpAddr) -> Result<(), ApiError> {
        let Space { pools, bitmaps, .. } = &mut self.spaces[space_of(pool_id)?];
        let pool = pools.get(pool_id).ok_or_else(|| missing(pool_id))?;
        let bitmap = bitmaps
            .get_mut(&pool.master_id)
            .ok_or_else(|| ApiError::Internal(format!("pool {} has no bitmap", pool.master_id)))?;
        let ordinal = checked_ordinal(&pool.network, address)?;
        bitmap
            .seq
            .unset(ordinal)
            .map_err(|e| ApiError::Internal(format!("release {address}: {e}")))?;
        debug!(pool_id, %address, "released address");
        Ok(())
    }

    /// A reserved pool or sub-pool.
    pub fn pool(&self, pool_id: &str) -> Option<PoolInfo> {
        let space = &self.spaces[space_of(pool_id).ok()?];
        space.pools.get(pool_id).map(|p| PoolInfo {
            key: p.key.clone(),
            pool: p.network,
            range: p.range,
            ref_count: p.ref_count,
        })
    }

    /// The ids of every pool and sub-pool of an address space, in order (empty for an unknown
    /// address space).
    pub fn pool_ids(&self, address_space: &str) -> Vec<String> {
        space_index(address_space)
            .map(|si| self.spaces[si].pools.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The allocation bitmap a pool's addresses live in (for a sub-pool, its pool's): bit `n`
    /// stands for the pool's address at offset `n`. The network and IPv4 broadcast addresses
    /// are set.
    pub fn allocation(&self, pool_id: &str) -> Option<&Sequence> {
        let space = &self.spaces[space_of(pool_id).ok()?];
        let pool = space.pools.get(pool_id)?;
        space.bitmaps.get(&pool.master_id).map(|b| &b.seq)
    }

    /// Whether `address` is allocated in the pool (reserved addresses count as allocated).
    pub fn is_allocated(&self, pool_id: &str, address: IpAddr) -> bool {
        let Some(pool) = self.pool(pool_id) else {
            return false;
        };
        match (ordinal_of(&pool.pool, address), self.allocation(pool_id)) {
            (Some(ordinal), Some(seq)) => seq.is_set(ordinal),
            _ => false,
        }
    }

    /// The id of the pool holding the bitmap of `pool_id`.
    pub(crate) fn master_of(&self, pool_id: &str) -> Option<&str> {
        let space = &self.spaces[space_of(pool_id).ok()?];
        space.pools.get(pool_id).map(|p| p.master_id.as_str())
    }

    /// The stored form of an address space's configuration.
    pub(crate) fn space_value(&self, si: usize) -> SpaceValue {
        let space = &self.spaces[si];
        let subnets = space
            .pools
            .iter()
            .map(|(id, p)| {
                let parent_key = match p.range {
                    Some(_) => KeyValue {
                        address_space: p.key.address_space.clone(),
                        subnet: p.network.to_string(),
                        child_subnet: String::new(),
                    },
                    None => KeyValue::default(),
                };
                let value = PoolValue {
                    parent_key,
                    pool: Some(p.network.to_string()),
                    range: p.range.map(|r| RangeValue {
                        end: r.end,
                        start: r.start,
                        sub: r.sub.to_string(),
                    }),
                    ref_count: i64::try_from(p.ref_count).unwrap_or(i64::MAX),
                };
                (id.clone(), value)
            })
            .collect();
        SpaceValue {
            scope: space.scope.to_owned(),
            subnets,
        }
    }

    /// The stored form of a pool's bitmap, or `None` when the pool does not exist.
    pub(crate) fn bitmap_value(&self, si: usize, pool_id: &str) -> Option<Vec<u8>> {
        let bitmap = self.spaces[si].bitmaps.get(pool_id)?;
        Some(crate::layout::encode_bitmap(pool_id, &bitmap.seq))
    }

    /// Replaces an address space's pools and bitmaps with stored ones. `config_key` names the
    /// configuration in errors. A pool without a stored bitmap gets a fresh one; bitmaps of
    /// unknown pools are ignored. Serial cursors of pools that remain are kept.
    ///
    /// Repairs, with a warning, what libnetwork's own bugs can leave behind: a sub-pool whose
    /// pool entry is gone gets its pool back, and a pool whose reference count is below its
    /// number of sub-pools gets it raised.
    pub(crate) fn replace_space(
        &mut self,
        si: usize,
        value: Option<SpaceValue>,
        config_key: &str,
        mut stored_bitmaps: HashMap<String, (String, Sequence)>,
    ) -> Result<(), Error> {
        let name = self.spaces[si].name;
        let corrupt = |reason: String| Error::Corrupt {
            key: config_key.to_owned(),
            reason,
        };
        let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
        let mut subs_per_master: HashMap<String, u64> = HashMap::new();
        for (id, value) in value.map(|v| v.subnets).unwrap_or_default() {
            let key: SubnetKey = id.parse().map_err(|e| corrupt(format!("{e}")))?;
            if key.address_space != name || key.subnet != key.subnet.trunc() {
                return Err(corrupt(format!("pool id {id} does not belong here")));
            }
            let ref_count = u64::try_from(value.ref_count)
                .ok()
                .filter(|&r| r > 0)
                .ok_or_else(|| {
                    corrupt(format!("pool {id} has reference count {}", value.ref_count))
                })?;
            let master_id = key.master().to_string();
            let range = match key.child {
                Some(child) => {
                    *subs_per_master.entry(master_id.clone()).or_default() += 1;
                    Some(range_of(&key.subnet, &child).map_err(|e| corrupt(format!("{e}")))?)
                }
                None => None,
            };
            pools.insert(
                id,
                Pool {
                    network: key.subnet,
                    key,
                    master_id,
                    range,
                    ref_count,
                },
            );
        }
        for (master_id, subs) in &subs_per_master {
            match pools.get_mut(master_id) {
                Some(master) if master.ref_count < *subs => {
                    warn!(pool_id = %master_id, "stored reference count below sub-pool count, raised");
                    master.ref_count = *subs;
                }
                Some(_) => {}
                None => {
                    warn!(pool_id = %master_id, "stored sub-pools without their pool, pool restored");
                    let key: SubnetKey = master_id.parse().map_err(|e| corrupt(format!("{e}")))?;
                    pools.insert(
                        master_id.clone(),
                        Pool {
                            network: key.subnet,
                            key,
                            master_id: master_id.clone(),
                            range: None,
                            ref_count: *subs,
                        },
                    );
                }
            }
        }

        let old = &self.spaces[si].bitmaps;
        let mut bitmaps = HashMap::new();
        for (id, pool) in pools.iter().filter(|(_, p)| p.range.is_none()) {
            let cursor = old.get(id).map_or(0, |b| b.cursor);
            let bitmap = match stored_bitmaps.remove(id) {
                Some((key, seq)) if seq.len() != bitmap_len(&pool.network) => {
                    return Err(Error::Corrupt {
                        key,
                        reason: format!(
                            "bitmap of {} bits for pool {} of {} addresses",
                            seq.len(),
                            pool.network,
                            bitmap_len(&pool.network)
                        ),
                    });
                }
                Some((_, seq)) => Bitmap { seq, cursor },
                None => Bitmap::for_pool(&pool.network),
            };
            bitmaps.insert(id.clone(), bitmap);
        }
        let space = &mut self.spaces[si];
        space.pools = pools;
        space.bitmaps = bitmaps;
        Ok(())
    }
}

/// The ordinal of `ip` in `net`, refusing addresses outside it and reserved ones.
fn checked_ordinal(net: &IpNet, ip: IpAddr) -> Result<u64, ApiError> {
    let ordinal = ordinal_of(net, ip).ok_or(ApiError::IpOutOfRange {
        address: ip,
        pool: *net,
    })?;
    if is_reserved(net, ordinal) {
        return Err(ApiError::ReservedAddress {
            address: ip,
            pool: *net,
        });
    }
    Ok(ordinal)
}
