//! The shared store behaviours against [`RedbStore`], plus what only a file can show:
//! durability across reopen and group commit under concurrent writers.

#[macro_use]
mod common;

use std::thread;

use common::Fixture;
use libnetwork_datastore::{Error, KvPair, Op, Precondition, RedbStore, Scope, Store, key};

fn redb(name: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("local-kv.redb")).unwrap();
    Some(Fixture {
        store: Box::new(store),
        ns: name.to_owned(),
        _keep: Box::new(dir),
    })
}

store_behaviours!(redb);

#[test]
fn writes_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (key(&["a"]), key(&["b"]), key(&["c"]));

    let store = RedbStore::open_in_data_dir(dir.path()).unwrap();
    assert_eq!(store.scope(), Scope::Local);
    assert_eq!(store.path(), RedbStore::default_path(dir.path()));
    let ia = store.put(&a, b"a", Precondition::Absent).unwrap();
    let ib = store
        .apply(vec![
            Op::Put {
                key: b.clone(),
                value: b"b".to_vec(),
                precondition: Precondition::None,
            },
            Op::Put {
                key: c.clone(),
                value: b"c".to_vec(),
                precondition: Precondition::None,
            },
        ])
        .unwrap();
    store.delete(&c, Precondition::Index(ib)).unwrap();
    let before = store.list("").unwrap();
    drop(store);

    let store = RedbStore::open_in_data_dir(dir.path()).unwrap();
    assert_eq!(store.list("").unwrap(), before);
    assert_eq!(
        before,
        [
            KvPair {
                key: a.clone(),
                value: b"a".to_vec(),
                index: ia,
            },
            KvPair {
                key: b,
                value: b"b".to_vec(),
                index: ib,
            },
        ]
    );
    // The revision counter is persisted too: indexes keep growing after a reopen.
    let next = store.put(&a, b"a2", Precondition::Index(ia)).unwrap();
    assert!(next > ib + 1, "{next} after {ib} and a delete");
}

#[test]
fn concurrent_writers_all_succeed_and_their_writes_persist() {
    const THREADS: usize = 8;
    const WRITES: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let store = RedbStore::open(&path).unwrap();
    let baseline = store.commit_stats();

    let indexes: Vec<u64> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    (0..WRITES)
                        .map(|i| {
                            let k = key(&["w", &t.to_string(), &i.to_string()]);
                            store
                                .put(&k, format!("{t}-{i}").as_bytes(), Precondition::Absent)
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });

    // Every write got its own revision, even when it shared a commit with others.
    let mut unique = indexes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), THREADS * WRITES);

    let stats = store.commit_stats();
    let requests = stats.requests - baseline.requests;
    let commits = stats.commits - baseline.commits;
    assert_eq!(requests, (THREADS * WRITES) as u64);
    assert!(commits >= 1 && commits <= requests, "{stats:?}");
    drop(store);

    let store = RedbStore::open(&path).unwrap();
    let pairs = store.list(&key(&["w"])).unwrap();
    assert_eq!(pairs.len(), THREADS * WRITES);
    for t in 0..THREADS {
        for i in 0..WRITES {
            let pair = store
                .get(&key(&["w", &t.to_string(), &i.to_string()]))
                .unwrap();
            assert_eq!(pair.value, format!("{t}-{i}").as_bytes());
        }
    }
}

#[test]
fn a_failing_request_fails_alone_among_concurrent_writers() {
    const THREADS: usize = 8;
    const WRITES: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("kv.redb")).unwrap();

    // Even threads write valid new keys; odd threads write with an index no key has. Whatever
    // batches they land in, the valid writes all succeed and the invalid ones all conflict.
    thread::scope(|s| {
        for t in 0..THREADS {
            let store = &store;
            s.spawn(move || {
                for i in 0..WRITES {
                    let k = key(&["f", &t.to_string(), &i.to_string()]);
                    if t % 2 == 0 {
                        store.put(&k, b"ok", Precondition::Absent).unwrap();
                    } else {
                        let err = store
                            .put(&k, b"bad", Precondition::Index(u64::MAX))
                            .unwrap_err();
                        assert!(matches!(err, Error::KeyModified(_)), "{err}");
                    }
                }
            });
        }
    });
    let pairs = store.list(&key(&["f"])).unwrap();
    assert_eq!(pairs.len(), THREADS / 2 * WRITES);
    assert!(pairs.iter().all(|p| p.value == b"ok"));
}

#[test]
fn watchers_end_when_the_store_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("kv.redb")).unwrap();
    let watcher = store.watch("").unwrap();
    store.put("k", b"v", Precondition::None).unwrap();
    drop(store);
    assert!(matches!(
        watcher.recv(),
        Ok(libnetwork_datastore::WatchEvent::Put(_))
    ));
    assert!(matches!(watcher.recv(), Err(Error::WatchEnded(_))));
}

// ----- deferred durability -----

mod deferred {
    use std::path::Path;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use libnetwork_datastore::{Durability, Precondition, RedbOptions, RedbStore, Store};

    use super::common::{self, Fixture};

    fn open(path: &Path, within: Duration) -> RedbStore {
        RedbStore::open_with(
            path,
            RedbOptions {
                durability: Durability::Deferred { within },
            },
        )
        .unwrap()
    }

    fn redb_deferred(name: &str) -> Option<Fixture> {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("local-kv.redb"), Duration::from_millis(5));
        Some(Fixture {
            store: Box::new(store),
            ns: name.to_owned(),
            _keep: Box::new(dir),
        })
    }

    store_behaviours!(redb_deferred);

    /// The child half of `writes_survive_a_crash_of_the_process`: writes, then dies without
    /// running any destructor (so the store never syncs).
    #[test]
    #[ignore = "run by writes_survive_a_crash_of_the_process in a child process"]
    fn crash_writer() {
        let Ok(path) = std::env::var("DEFERRED_CRASH_STORE") else {
            return;
        };
        let store = open(Path::new(&path), Duration::from_secs(3600));
        for i in 0..50 {
            store
                .put(
                    &format!("k/{i:02}"),
                    format!("v{i}").as_bytes(),
                    Precondition::None,
                )
                .unwrap();
        }
        store.delete("k/07", Precondition::None).unwrap();
        assert_eq!(
            store.commit_stats().synced,
            0,
            "nothing may be synced before the crash"
        );
        std::process::abort();
    }

    #[test]
    fn writes_survive_a_crash_of_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        let status = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "deferred::crash_writer",
                "--ignored",
                "--nocapture",
            ])
            .env("DEFERRED_CRASH_STORE", &path)
            .status()
            .unwrap();
        assert!(!status.success(), "the child must crash");
        let wal = dir.path().join("kv.redb.wal");
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 0,
            "the writes are only in the log"
        );

        let store = RedbStore::open(&path).unwrap();
        let keys: Vec<String> = store
            .list("k/")
            .unwrap()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys.len(), 49, "{keys:?}");
        assert!(!keys.contains(&"k/07".to_string()));
        assert_eq!(store.get("k/49").unwrap().value, b"v49");
        // Revisions go on from the recovered ones.
        let next = store.put("k/new", b"x", Precondition::Absent).unwrap();
        assert!(next > store.get("k/49").unwrap().index);
    }

    #[test]
    fn writers_do_not_wait_for_a_sync_and_one_follows_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("kv.redb"), Duration::from_millis(20));
        for i in 0..20 {
            store
                .put(&format!("k/{i}"), b"v", Precondition::None)
                .unwrap();
        }
        let start = Instant::now();
        while store.commit_stats().synced == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "never synced");
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = store.commit_stats();
        assert!(stats.synced < stats.commits, "{stats:?}");
        assert_eq!(store.list("k/").unwrap().len(), 20);
    }

    #[test]
    fn dropping_the_store_syncs_and_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        let store = open(&path, Duration::from_secs(3600));
        store.put("a", b"1", Precondition::None).unwrap();
        let wal = dir.path().join("kv.redb.wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        drop(store);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        assert_eq!(
            RedbStore::open(&path).unwrap().get("a").unwrap().value,
            b"1"
        );
    }

    #[test]
    fn a_failed_request_is_not_logged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        let store = open(&path, Duration::from_secs(3600));
        store.put("a", b"1", Precondition::Absent).unwrap();
        let wal = dir.path().join("kv.redb.wal");
        let len = std::fs::metadata(&wal).unwrap().len();
        store.put("a", b"2", Precondition::Absent).unwrap_err();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), len);
    }
}
