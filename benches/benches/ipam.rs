//! Criterion benchmarks of the default IPAM (`libnetwork_ipam`): filling a pool address by
//! address and emptying it again, without a store and with a durable redb store.
//!
//! Run (release, short):
//! `CARGO_TARGET_DIR=/var/cache/rlibnetwork/target cargo bench -p libnetwork-benches --bench ipam -- --warm-up-time 1 --measurement-time 3`
//!
//! The scenario is libnetwork's `BenchmarkRequest`: reserve a pool, request every address
//! until the pool is exhausted; and then release every address. Each timed iteration is ONE
//! address operation, so criterion's time is the time per address. The state lives across
//! criterion's calls: when the pool is full (or empty) it is reset outside the timed section,
//! so the average covers whole fills.
//!
//! - `ipam/slash16_request_until_full/{allocator,driver}`: `request_address` on a /16 (65 534
//!   addresses) with no store; `allocator` is the pure core (`Allocator`), `driver` the
//!   `DefaultIpam` driver through the `Ipam` trait (mutex, options map, persistence check).
//! - `ipam/slash16_release_all/{allocator,driver}`: `release_address` of every address of a
//!   full /16, in order.
//! - `ipam/slash24_request_until_full/redb`, `ipam/slash24_release_all/redb`: the same on a
//!   /24 with the driver persisting every change durably to a redb file (one commit per
//!   address: a lone caller cannot share commits).
//! - `ipam/store_put_baseline/redb`: one durable put of a small value straight to the same
//!   store, the floor of a persisted address operation.
//! - `ipam/slash24_fill_8_threads/redb`: eight threads fill one /24 together; the time is for
//!   the whole fill (254 addresses), where concurrent requests share commits.
//!
//! libnetwork reference: about 2.5 us per address request with no store, and about 2.2 ms per
//! address with its boltdb store.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use libnetwork_datastore::{Precondition, RedbStore, Store};
use libnetwork_ipam::{AddressRequest, Allocator, DefaultIpam, IpamConfig, LOCAL_ADDRESS_SPACE};
use libnetwork_ipamapi::{Error as ApiError, IpNet, Ipam, Options};

const SLASH16: &str = "10.16.0.0/16";
const SLASH24: &str = "10.24.0.0/24";
/// Addresses a /16 and a /24 hand out (all but the network and broadcast addresses).
const SLASH16_ADDRESSES: u64 = 65_534;
const SLASH24_ADDRESSES: u64 = 254;

/// The operations a benchmark needs, on the pure allocator or on the driver.
trait Target {
    fn reserve(&mut self, pool: &str) -> String;
    fn unreserve(&mut self, pool_id: &str);
    fn request(&mut self, pool_id: &str) -> Result<IpAddr, ApiError>;
    fn release(&mut self, pool_id: &str, ip: IpAddr);
}

impl Target for Allocator {
    fn reserve(&mut self, pool: &str) -> String {
        let pool: IpNet = pool.parse().unwrap();
        self.request_pool(LOCAL_ADDRESS_SPACE, Some(pool), None, false)
            .unwrap()
            .pool_id
    }
    fn unreserve(&mut self, pool_id: &str) {
        self.release_pool(pool_id).unwrap();
    }
    fn request(&mut self, pool_id: &str) -> Result<IpAddr, ApiError> {
        self.request_address(pool_id, None, AddressRequest::default())
            .map(|n| n.addr())
    }
    fn release(&mut self, pool_id: &str, ip: IpAddr) {
        self.release_address(pool_id, ip).unwrap();
    }
}

struct Driver {
    ipam: Arc<DefaultIpam>,
    options: Options,
}

impl Target for Driver {
    fn reserve(&mut self, pool: &str) -> String {
        let pool: IpNet = pool.parse().unwrap();
        self.ipam
            .request_pool(LOCAL_ADDRESS_SPACE, Some(pool), None, &self.options, false)
            .unwrap()
            .pool_id
    }
    fn unreserve(&mut self, pool_id: &str) {
        self.ipam.release_pool(pool_id).unwrap();
    }
    fn request(&mut self, pool_id: &str) -> Result<IpAddr, ApiError> {
        self.ipam
            .request_address(pool_id, None, &self.options)
            .map(|a| a.address.addr())
    }
    fn release(&mut self, pool_id: &str, ip: IpAddr) {
        self.ipam.release_address(pool_id, ip).unwrap();
    }
}

/// A pool being filled or emptied across criterion's calls.
struct Bench<T: Target> {
    target: T,
    pool: &'static str,
    pool_id: String,
    /// Number of addresses the pool hands out.
    capacity: u64,
    /// Addresses handed out, in order.
    taken: Vec<IpAddr>,
    /// How many of `taken` were released again.
    released: usize,
}

impl<T: Target> Bench<T> {
    fn new(mut target: T, pool: &'static str, capacity: u64) -> Self {
        let pool_id = target.reserve(pool);
        Self {
            target,
            pool,
            pool_id,
            capacity,
            taken: Vec::new(),
            released: 0,
        }
    }

    /// Starts over with an empty pool (untimed).
    fn reset(&mut self) {
        self.target.unreserve(&self.pool_id);
        self.pool_id = self.target.reserve(self.pool);
        self.taken.clear();
        self.released = 0;
    }

    /// Fills the pool (untimed).
    fn fill(&mut self) {
        while let Ok(ip) = self.target.request(&self.pool_id) {
            self.taken.push(ip);
        }
        assert_eq!(self.taken.len() as u64, self.capacity);
    }

    /// Times `iters` address requests, starting over (untimed) whenever the pool is full.
    fn time_requests(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut remaining = iters;
        while remaining > 0 {
            let free = self.capacity - self.taken.len() as u64;
            if free == 0 {
                self.reset();
                continue;
            }
            let batch = remaining.min(free);
            let start = Instant::now();
            for _ in 0..batch {
                let ip = self.target.request(&self.pool_id).unwrap();
                self.taken.push(black_box(ip));
            }
            total += start.elapsed();
            remaining -= batch;
        }
        total
    }

    /// Times `iters` address releases (in ascending order), refilling (untimed) whenever the
    /// pool is empty.
    fn time_releases(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut remaining = iters;
        while remaining > 0 {
            if self.released == self.taken.len() {
                self.reset();
                self.fill();
            }
            let batch = remaining.min((self.taken.len() - self.released) as u64);
            let start = Instant::now();
            for ip in &self.taken[self.released..self.released + batch as usize] {
                self.target.release(&self.pool_id, *ip);
            }
            total += start.elapsed();
            self.released += batch as usize;
            remaining -= batch;
        }
        total
    }
}

fn driver(store: Option<Arc<RedbStore>>) -> Driver {
    let config = IpamConfig {
        local_store: store.map(|s| s as _),
        ..IpamConfig::default()
    };
    Driver {
        ipam: Arc::new(DefaultIpam::new(config).unwrap()),
        options: Options::new(),
    }
}

fn redb_store(dir: &Path) -> Arc<RedbStore> {
    Arc::new(RedbStore::open(dir.join("local-kv.redb")).unwrap())
}

/// A temporary directory on the disk the target directory is on (not a tmpfs), so that
/// commits pay for a real `fdatasync`.
fn disk_tempdir() -> tempfile::TempDir {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn without_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipam");
    {
        let mut bench = Bench::new(Allocator::default(), SLASH16, SLASH16_ADDRESSES);
        group.bench_function("slash16_request_until_full/allocator", |b| {
            b.iter_custom(|iters| bench.time_requests(iters));
        });
        let mut bench = Bench::new(Allocator::default(), SLASH16, SLASH16_ADDRESSES);
        group.bench_function("slash16_release_all/allocator", |b| {
            b.iter_custom(|iters| bench.time_releases(iters));
        });
    }
    {
        let mut bench = Bench::new(driver(None), SLASH16, SLASH16_ADDRESSES);
        group.bench_function("slash16_request_until_full/driver", |b| {
            b.iter_custom(|iters| bench.time_requests(iters));
        });
        let mut bench = Bench::new(driver(None), SLASH16, SLASH16_ADDRESSES);
        group.bench_function("slash16_release_all/driver", |b| {
            b.iter_custom(|iters| bench.time_releases(iters));
        });
    }
    group.finish();
}

fn with_redb(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipam");
    group.sample_size(10);
    let dir = disk_tempdir();
    let store = redb_store(dir.path());

    // The floor: one durable put of a small value straight to the store.
    group.bench_function("store_put_baseline/redb", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let value = n.to_string();
            store
                .put(
                    "docker/network/v1.0/baseline/",
                    value.as_bytes(),
                    Precondition::None,
                )
                .unwrap()
        });
    });

    let mut bench = Bench::new(driver(Some(store.clone())), SLASH24, SLASH24_ADDRESSES);
    group.bench_function("slash24_request_until_full/redb", |b| {
        b.iter_custom(|iters| bench.time_requests(iters));
    });
    group.bench_function("slash24_release_all/redb", |b| {
        b.iter_custom(|iters| bench.time_releases(iters));
    });
    drop(bench);

    // Eight threads fill one /24 together.
    let ipam = driver(Some(store)).ipam;
    let mut pool_id = ipam
        .request_pool(
            LOCAL_ADDRESS_SPACE,
            Some("10.25.0.0/24".parse().unwrap()),
            None,
            &Options::new(),
            false,
        )
        .unwrap()
        .pool_id;
    group.throughput(Throughput::Elements(254));
    group.bench_function("slash24_fill_8_threads/redb", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let workers: Vec<_> = (0..8)
                    .map(|_| {
                        let (ipam, id) = (ipam.clone(), pool_id.clone());
                        thread::spawn(move || {
                            let mut n = 0u32;
                            while ipam.request_address(&id, None, &Options::new()).is_ok() {
                                n += 1;
                            }
                            n
                        })
                    })
                    .collect();
                let filled: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
                total += start.elapsed();
                assert_eq!(filled, 254);
                // Start over with an empty pool (untimed).
                ipam.release_pool(&pool_id).unwrap();
                pool_id = ipam
                    .request_pool(
                        LOCAL_ADDRESS_SPACE,
                        Some("10.25.0.0/24".parse().unwrap()),
                        None,
                        &Options::new(),
                        false,
                    )
                    .unwrap()
                    .pool_id;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, without_store, with_redb);
criterion_main!(benches);
