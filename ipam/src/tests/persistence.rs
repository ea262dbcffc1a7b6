//! The driver with its stores: layout, loading, batching, concurrency, failures.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use libnetwork_bitseq::Sequence;
use libnetwork_datastore::{
    Error as StoreError, KvPair, MemoryStore, Op, Precondition, RedbStore, Scope, Store, Watcher,
};
use libnetwork_ipamapi::{ErrorKind, Ipam, Options};

use super::*;
use crate::{DefaultIpam, IpamConfig, SubnetKey};

const CONFIG_KEY: &str = "docker/network/v1.0/ipam/default/config/LocalDefault/";

/// A memory store that records every batch, and can fail or hold writes on demand.
#[derive(Debug, Default)]
struct TestStore {
    inner: MemoryStore,
    batches: Mutex<Vec<Vec<Op>>>,
    /// Writes fail as if the store were gone.
    fail: AtomicBool,
    /// Reads fail as if the store were gone.
    fail_reads: AtomicBool,
    /// Writes fail as if another writer always won the race.
    conflict: AtomicBool,
    /// While true, writes wait (counted in `held`) until it is cleared.
    hold: Mutex<bool>,
    released: Condvar,
    held: AtomicUsize,
}

impl TestStore {
    fn batches(&self) -> Vec<Vec<Op>> {
        self.batches.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.batches.lock().unwrap().clear();
    }

    fn set_hold(&self, hold: bool) {
        *self.hold.lock().unwrap() = hold;
        self.released.notify_all();
    }
}

impl Store for TestStore {
    fn scope(&self) -> Scope {
        self.inner.scope()
    }
    fn get(&self, key: &str) -> Result<KvPair, StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.inner.get(key)
    }
    fn put(&self, key: &str, value: &[u8], precondition: Precondition) -> Result<u64, StoreError> {
        self.apply(vec![Op::Put {
            key: key.to_owned(),
            value: value.to_vec(),
            precondition,
        }])
    }
    fn delete(&self, key: &str, precondition: Precondition) -> Result<(), StoreError> {
        self.apply(vec![Op::Delete {
            key: key.to_owned(),
            precondition,
        }])
        .map(|_| ())
    }
    fn list(&self, prefix: &str) -> Result<Vec<KvPair>, StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.inner.list(prefix)
    }
    fn apply(&self, ops: Vec<Op>) -> Result<u64, StoreError> {
        let mut hold = self.hold.lock().unwrap();
        if *hold {
            self.held.fetch_add(1, Ordering::SeqCst);
            while *hold {
                hold = self.released.wait(hold).unwrap();
            }
        }
        drop(hold);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        if self.conflict.load(Ordering::SeqCst) {
            return Err(StoreError::KeyModified(ops[0].key().to_owned()));
        }
        self.batches.lock().unwrap().push(ops.clone());
        self.inner.apply(ops)
    }
    fn watch(&self, prefix: &str) -> Result<Watcher, StoreError> {
        self.inner.watch(prefix)
    }
}

fn driver(local: &Arc<impl Store + 'static>) -> DefaultIpam {
    DefaultIpam::new(IpamConfig {
        local_store: Some(local.clone()),
        ..IpamConfig::default()
    })
    .unwrap()
}

fn no_opts() -> Options {
    Options::new()
}

fn request_pool(d: &DefaultIpam, pool: &str, sub: Option<&str>) -> String {
    d.request_pool(LOCAL, Some(net(pool)), sub.map(net), &no_opts(), false)
        .unwrap()
        .pool_id
}

fn request(d: &DefaultIpam, pool_id: &str) -> Result<IpAddr, ApiError> {
    d.request_address(pool_id, None, &no_opts())
        .map(|a| a.address.addr())
}

fn allocated(d: &DefaultIpam, pool_id: &str) -> BTreeSet<u64> {
    d.snapshot()
        .allocation(pool_id)
        .unwrap()
        .iter_set()
        .collect()
}

/// Fills a driver's state with pools and addresses of both spaces; returns the pool ids.
fn populate(d: &DefaultIpam) -> Vec<String> {
    let auto = d
        .request_pool(LOCAL, None, None, &no_opts(), false)
        .unwrap();
    assert_eq!(auto.pool, net("172.17.0.0/16"));
    let sub = request_pool(d, "172.28.0.0/16", Some("172.28.30.0/24"));
    let global = d
        .request_pool(GLOBAL, None, None, &no_opts(), false)
        .unwrap();
    for id in [&auto.pool_id, &sub, &global.pool_id] {
        request(d, id).unwrap();
        request(d, id).unwrap();
    }
    d.request_address(&auto.pool_id, Some(ip("172.17.0.50")), &no_opts())
        .unwrap();
    d.release_address(&auto.pool_id, ip("172.17.0.1")).unwrap();
    vec![auto.pool_id, sub, global.pool_id]
}

/// Checks that `d` has what [`populate`] left.
fn check_populated(d: &DefaultIpam, ids: &[String]) {
    let snap = d.snapshot();
    for id in ids {
        assert!(snap.pool(id).is_some(), "{id} lost");
    }
    assert!(snap.pool("LocalDefault/172.28.0.0/16").is_some());
    assert!(snap.is_allocated(&ids[0], ip("172.17.0.2")));
    assert!(snap.is_allocated(&ids[0], ip("172.17.0.50")));
    assert!(!snap.is_allocated(&ids[0], ip("172.17.0.1")));
    assert!(snap.is_allocated(&ids[1], ip("172.28.30.1")));
    assert!(snap.is_allocated(&ids[2], ip("10.0.0.2")));
    // Nothing is handed out twice: the next addresses are the free ones.
    assert_eq!(request(d, &ids[0]).unwrap(), ip("172.17.0.1"));
    assert_eq!(request(d, &ids[0]).unwrap(), ip("172.17.0.3"));
    assert_eq!(request(d, &ids[1]).unwrap(), ip("172.28.30.2"));
    assert_eq!(request(d, &ids[2]).unwrap(), ip("10.0.0.3"));
    let err = d
        .request_address(&ids[0], Some(ip("172.17.0.50")), &no_opts())
        .unwrap_err();
    assert!(matches!(err, ApiError::IpAlreadyAllocated { .. }), "{err}");
}

#[test]
fn a_new_driver_on_the_same_stores_sees_every_pool_and_address() {
    let local = Arc::new(MemoryStore::new());
    let global = Arc::new(MemoryStore::with_scope(Scope::Global));
    let config = IpamConfig {
        local_store: Some(local.clone()),
        global_store: Some(global.clone()),
        ..IpamConfig::default()
    };
    let first = DefaultIpam::new(config.clone()).unwrap();
    let ids = populate(&first);
    drop(first);
    let second = DefaultIpam::new(config).unwrap();
    check_populated(&second, &ids);
    // Each space went to its own store.
    assert!(
        local
            .list("docker/network/v1.0/ipam/default/config/GlobalDefault/")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        global
            .list("docker/network/v1.0/ipam/default/config/")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn state_survives_reopening_a_redb_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local-kv.redb");
    let ids = {
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let d = DefaultIpam::new(IpamConfig {
            local_store: Some(store.clone()),
            global_store: Some(store),
            ..IpamConfig::default()
        })
        .unwrap();
        populate(&d)
    };
    let store = Arc::new(RedbStore::open(&path).unwrap());
    let d = DefaultIpam::new(IpamConfig {
        local_store: Some(store.clone()),
        global_store: Some(store),
        ..IpamConfig::default()
    })
    .unwrap();
    check_populated(&d, &ids);
}

#[test]
fn stored_values_follow_libnetwork_layout() {
    let store = Arc::new(MemoryStore::new());
    let d = driver(&store);
    let id = request_pool(&d, "172.28.0.0/16", Some("172.28.30.0/24"));
    request(&d, &id).unwrap();

    let keys: Vec<String> = store
        .list("docker/network/v1.0/ipam/")
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(
        keys,
        vec![
            CONFIG_KEY.to_owned(),
            "docker/network/v1.0/ipam/default/data/LocalDefault/172.28.0.0/16/".to_owned(),
        ]
    );

    let config: serde_json::Value =
        serde_json::from_slice(&store.get(CONFIG_KEY).unwrap().value).unwrap();
    assert_eq!(config["Scope"], "local");
    let sub = &config["Subnets"]["LocalDefault/172.28.0.0/16/172.28.30.0/24"];
    assert_eq!(sub["Pool"], "172.28.0.0/16");
    assert_eq!(sub["RefCount"], 1);
    assert_eq!(sub["ParentKey"]["Subnet"], "172.28.0.0/16");
    assert_eq!(sub["Range"]["Sub"], "172.28.30.0/24");
    assert_eq!(sub["Range"]["Start"], 30 * 256);
    assert_eq!(sub["Range"]["End"], 30 * 256 + 255);
    let master = &config["Subnets"]["LocalDefault/172.28.0.0/16"];
    assert_eq!(master["RefCount"], 1);
    assert_eq!(master["ParentKey"]["Subnet"], "");

    let data = store
        .get("docker/network/v1.0/ipam/default/data/LocalDefault/172.28.0.0/16/")
        .unwrap();
    let bitmap: serde_json::Value = serde_json::from_slice(&data.value).unwrap();
    assert_eq!(bitmap["id"], "LocalDefault/172.28.0.0/16");
    let seq: Sequence = serde_json::from_value(bitmap["sequence"].clone()).unwrap();
    assert_eq!(
        seq.iter_set().collect::<Vec<_>>(),
        vec![0, 30 * 256, 65_535]
    );
}

#[test]
fn each_change_is_one_batch_of_only_the_keys_it_changed() {
    let store = Arc::new(TestStore::default());
    let d = driver(&store);
    let data_key = "docker/network/v1.0/ipam/default/data/LocalDefault/10.0.0.0/16/";
    let shape = |batches: Vec<Vec<Op>>| -> Vec<Vec<(String, &'static str, bool)>> {
        batches
            .into_iter()
            .map(|ops| {
                ops.iter()
                    .map(|op| {
                        let verb = match op {
                            Op::Put { .. } => "put",
                            Op::Delete { .. } => "delete",
                        };
                        let conditional = op.precondition() != Precondition::None;
                        (op.key().to_owned(), verb, conditional)
                    })
                    .collect()
            })
            .collect()
    };
    let config = || (CONFIG_KEY.to_owned(), "put", true);
    let bitmap = |verb| (data_key.to_owned(), verb, true);

    let id = request_pool(&d, "10.0.0.0/16", None);
    assert_eq!(shape(store.batches()), vec![vec![config(), bitmap("put")]]);
    store.clear();

    request(&d, &id).unwrap();
    d.release_address(&id, ip("10.0.0.1")).unwrap();
    assert_eq!(
        shape(store.batches()),
        vec![vec![bitmap("put")], vec![bitmap("put")]]
    );
    store.clear();

    let sub = request_pool(&d, "10.0.0.0/16", Some("10.0.1.0/24"));
    d.release_pool(&sub).unwrap();
    assert_eq!(shape(store.batches()), vec![vec![config()], vec![config()]]);
    store.clear();

    d.release_pool(&id).unwrap();
    assert_eq!(
        shape(store.batches()),
        vec![vec![config(), bitmap("delete")]]
    );
    assert!(store.get(data_key).unwrap_err().is_not_found());

    // Failed requests write nothing.
    store.clear();
    let _ = d.release_pool(&id).unwrap_err();
    let _ = d.request_pool(LOCAL, None, Some(net("10.0.0.0/24")), &no_opts(), false);
    assert!(store.batches().is_empty());
}

#[test]
fn two_drivers_on_one_store_never_hand_out_the_same_address() {
    let store = Arc::new(MemoryStore::new());
    let a = Arc::new(driver(&store));
    // `b` starts before the pool exists, so it first has to notice the pool in the store.
    let b = Arc::new(driver(&store));
    let id = request_pool(&a, "10.7.0.0/24", None);

    let serial = Options::from([(
        libnetwork_ipamapi::ALLOC_SERIAL_PREFIX.to_owned(),
        "true".to_owned(),
    )]);
    let mut workers = Vec::new();
    for (n, d) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let id = id.clone();
        let opts = if n % 2 == 0 {
            serial.clone()
        } else {
            Options::new()
        };
        workers.push(thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                match d.request_address(&id, None, &opts) {
                    Ok(a) => got.push(a.address.addr()),
                    Err(ApiError::NoAvailableIps(_)) => return got,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let all: Vec<IpAddr> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let distinct: BTreeSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(all.len(), 254, "every address handed out once");
    assert_eq!(distinct.len(), 254);

    // Both now agree, and both can give addresses back.
    b.release_address(&id, ip("10.7.0.9")).unwrap();
    assert_eq!(request(&a, &id).unwrap(), ip("10.7.0.9"));
}

#[test]
fn a_stale_driver_catches_up_before_answering() {
    let store = Arc::new(MemoryStore::new());
    let a = driver(&store);
    let b = driver(&store);
    let id = request_pool(&a, "10.8.0.0/24", None);
    assert_eq!(request(&a, &id).unwrap(), ip("10.8.0.1"));

    // `b` never saw the address; its release still frees it in the store.
    b.release_address(&id, ip("10.8.0.1")).unwrap();
    // `a` believes .1 is taken; the store says otherwise.
    let again = a
        .request_address(&id, Some(ip("10.8.0.1")), &no_opts())
        .unwrap();
    assert_eq!(again.address.addr(), ip("10.8.0.1"));
    // An overlap seen by a stale driver is real only if the store agrees.
    a.release_pool(&id).unwrap();
    let regained = request_pool(&b, "10.8.0.0/24", None);
    assert_eq!(regained, id);
    // A genuine conflict is still reported.
    let err = a
        .request_pool(LOCAL, Some(net("10.8.0.0/24")), None, &no_opts(), false)
        .unwrap_err();
    assert!(matches!(err, ApiError::PoolOverlap { .. }), "{err}");
}

#[test]
fn a_failed_write_changes_nothing() {
    let store = Arc::new(TestStore::default());
    let d = driver(&store);
    let id = request_pool(&d, "10.6.0.0/24", None);
    store.fail.store(true, Ordering::SeqCst);

    let err = request(&d, &id).unwrap_err();
    assert!(matches!(err, ApiError::Backend { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(allocated(&d, &id), BTreeSet::from([0, 255]));
    let err = d.request_pool(LOCAL, Some(net("10.9.0.0/24")), None, &no_opts(), false);
    assert!(err.is_err());
    assert!(d.snapshot().pool("LocalDefault/10.9.0.0/24").is_none());

    store.fail.store(false, Ordering::SeqCst);
    assert_eq!(request(&d, &id).unwrap(), ip("10.6.0.1"));
    request_pool(&d, "10.9.0.0/24", None);
}

#[test]
fn concurrent_requests_share_one_write() {
    let store = Arc::new(TestStore::default());
    let d = Arc::new(driver(&store));
    let id = request_pool(&d, "10.5.0.0/24", None);
    store.clear();
    store.set_hold(true);

    let spawn = |d: &Arc<DefaultIpam>| {
        let (d, id) = (d.clone(), id.clone());
        thread::spawn(move || request(&d, &id).unwrap())
    };
    // The first request's write is held in the store...
    let first = spawn(&d);
    while store.held.load(Ordering::SeqCst) == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    // ...while four more make their change in memory and wait for it.
    let others: Vec<_> = (0..4).map(|_| spawn(&d)).collect();
    while allocated(&d, &id).len() < 2 + 5 {
        thread::sleep(Duration::from_millis(1));
    }
    store.set_hold(false);

    let mut got: Vec<IpAddr> = others.into_iter().map(|t| t.join().unwrap()).collect();
    got.push(first.join().unwrap());
    got.sort();
    let expected: Vec<IpAddr> = (1..=5).map(|i| ip(&format!("10.5.0.{i}"))).collect();
    assert_eq!(got, expected);
    let batches = store.batches();
    assert_eq!(
        batches.len(),
        2,
        "one write for the first, one for the other four"
    );
    assert_eq!(batches[1].len(), 1, "one key: the pool's bitmap");
    // The store holds all five.
    let reloaded = driver(&store);
    assert_eq!(allocated(&reloaded, &id).len(), 2 + 5);
}

#[test]
fn loading_restores_a_sub_pool_whose_pool_entry_is_missing() {
    let store = Arc::new(MemoryStore::new());
    // A configuration as libnetwork's double release can leave it: a sub-pool, no pool.
    let config = r#"{"Scope":"local","Subnets":{"LocalDefault/172.28.0.0/16/172.28.30.0/24":
        {"ParentKey":{"AddressSpace":"LocalDefault","Subnet":"172.28.0.0/16","ChildSubnet":""},
         "Pool":"172.28.0.0/16","Range":{"Sub":"172.28.30.0/24","Start":7680,"End":7935},
         "RefCount":1}}}"#;
    store
        .put(CONFIG_KEY, config.as_bytes(), Precondition::None)
        .unwrap();
    let d = driver(&store);
    let snap = d.snapshot();
    let master = snap.pool("LocalDefault/172.28.0.0/16").unwrap();
    assert_eq!(master.ref_count, 1);
    // Its bitmap was missing too: a fresh one is used (and written on first change).
    let id = "LocalDefault/172.28.0.0/16/172.28.30.0/24";
    assert_eq!(request(&d, id).unwrap(), ip("172.28.30.0"));
    assert!(
        store
            .get("docker/network/v1.0/ipam/default/data/LocalDefault/172.28.0.0/16/")
            .is_ok()
    );
}

#[test]
fn loading_rejects_values_it_did_not_write() {
    let store = Arc::new(MemoryStore::new());
    store
        .put(CONFIG_KEY, b"not json", Precondition::None)
        .unwrap();
    let err = DefaultIpam::new(IpamConfig {
        local_store: Some(store.clone()),
        ..IpamConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, crate::Error::Corrupt { ref key, .. } if key == CONFIG_KEY),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Internal);

    // A bitmap whose size does not match its pool.
    let store = Arc::new(MemoryStore::new());
    {
        let d = driver(&store);
        request_pool(&d, "10.1.0.0/24", None);
    }
    let key = "docker/network/v1.0/ipam/default/data/LocalDefault/10.1.0.0/24/";
    let wrong = crate::layout::encode_bitmap("LocalDefault/10.1.0.0/24", &Sequence::new(512));
    store.put(key, &wrong, Precondition::None).unwrap();
    let err = DefaultIpam::new(IpamConfig {
        local_store: Some(store),
        ..IpamConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, crate::Error::Corrupt { key: ref k, .. } if k == key),
        "{err}"
    );
}

#[test]
fn a_leftover_bitmap_of_an_unknown_pool_is_ignored_and_replaced() {
    let store = Arc::new(MemoryStore::new());
    let key = "docker/network/v1.0/ipam/default/data/LocalDefault/10.1.0.0/24/";
    let mut stale = Sequence::new(256);
    for o in 0..100 {
        stale.set(o).unwrap();
    }
    let value = crate::layout::encode_bitmap("LocalDefault/10.1.0.0/24", &stale);
    store.put(key, &value, Precondition::None).unwrap();
    let d = driver(&store);
    assert!(d.snapshot().pool_ids(LOCAL).is_empty());
    let id = request_pool(&d, "10.1.0.0/24", None);
    assert_eq!(request(&d, &id).unwrap(), ip("10.1.0.1"));
    let reloaded = driver(&store);
    assert_eq!(allocated(&reloaded, &id), BTreeSet::from([0, 1, 255]));
}

#[test]
fn request_replay_is_needed_only_without_a_local_store() {
    let memory_only = DefaultIpam::new(IpamConfig::default()).unwrap();
    assert!(memory_only.capabilities().requires_request_replay);
    assert!(!memory_only.capabilities().requires_mac_address);
    assert!(memory_only.is_built_in());
    let persisted = driver(&Arc::new(MemoryStore::new()));
    assert!(!persisted.capabilities().requires_request_replay);
    assert_eq!(
        persisted.default_address_spaces().unwrap(),
        (LOCAL.to_owned(), GLOBAL.to_owned())
    );
}

#[test]
fn driver_configuration_is_validated_and_applied() {
    let err = DefaultIpam::new(IpamConfig {
        local_pools: Some(vec![crate::NetworkToSplit::new("10.10.0.0/16", 8)]),
        ..IpamConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, crate::Error::InvalidPoolSize { .. }), "{err}");

    let d = DefaultIpam::new(IpamConfig {
        local_pools: Some(vec![crate::NetworkToSplit::new("10.10.0.0/16", 24)]),
        global_pools: Some(vec![crate::NetworkToSplit::new("30.0.0.0/8", 24)]),
        host_routes: vec![net("10.10.0.0/24")],
        ..IpamConfig::default()
    })
    .unwrap();
    let local = d
        .request_pool(LOCAL, None, None, &no_opts(), false)
        .unwrap();
    assert_eq!(local.pool, net("10.10.1.0/24"));
    let global = d
        .request_pool(GLOBAL, None, None, &no_opts(), false)
        .unwrap();
    assert_eq!(global.pool, net("30.0.0.0/24"));
    d.set_host_routes([net("10.10.2.0/23")]);
    let local = d
        .request_pool(LOCAL, None, None, &no_opts(), false)
        .unwrap();
    assert_eq!(local.pool, net("10.10.4.0/24"));
    // Pool ids are SubnetKey strings.
    let key: SubnetKey = local.pool_id.parse().unwrap();
    assert_eq!(key.subnet, net("10.10.4.0/24"));
}

#[test]
fn in_memory_driver_reports_request_errors_unchanged() {
    let d = DefaultIpam::new(IpamConfig::default()).unwrap();
    let err = d
        .request_pool("nope", Some(net("10.0.0.0/8")), None, &no_opts(), false)
        .unwrap_err();
    assert!(matches!(err, ApiError::InvalidAddressSpace(_)), "{err}");
    let err = d.release_pool("garbage").unwrap_err();
    assert!(matches!(err, ApiError::InvalidPoolId(_)), "{err}");
    let err = request(&d, "LocalDefault/10.0.0.0/8").unwrap_err();
    assert!(matches!(err, ApiError::PoolNotFound(_)), "{err}");
}

#[test]
fn a_driver_recovers_when_the_reload_after_a_failed_write_fails_too() {
    let store = Arc::new(TestStore::default());
    let d = driver(&store);
    let id = request_pool(&d, "10.6.0.0/24", None);
    store.fail.store(true, Ordering::SeqCst);
    store.fail_reads.store(true, Ordering::SeqCst);
    let err = request(&d, &id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    // The memory still holds the unwritten address; the next request must reload first, or
    // .1 would be lost for good.
    store.fail.store(false, Ordering::SeqCst);
    store.fail_reads.store(false, Ordering::SeqCst);
    assert_eq!(request(&d, &id).unwrap(), ip("10.6.0.1"));
    assert_eq!(allocated(&driver(&store), &id), BTreeSet::from([0, 1, 255]));
}

#[test]
fn a_driver_gives_up_after_losing_every_race() {
    let store = Arc::new(TestStore::default());
    let d = driver(&store);
    let id = request_pool(&d, "10.6.0.0/24", None);
    store.conflict.store(true, Ordering::SeqCst);
    let err = request(&d, &id).unwrap_err();
    assert!(
        matches!(err, ApiError::Internal(ref m) if m.contains("gave up")),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Internal);
    store.conflict.store(false, Ordering::SeqCst);
    assert_eq!(request(&d, &id).unwrap(), ip("10.6.0.1"));
}

#[test]
fn an_unreadable_store_fails_the_start() {
    let store = Arc::new(TestStore::default());
    store.fail_reads.store(true, Ordering::SeqCst);
    let err = DefaultIpam::new(IpamConfig {
        global_store: Some(store),
        ..IpamConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, crate::Error::Store(StoreError::Closed)),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}
