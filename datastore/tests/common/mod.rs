//! Behaviours every [`Store`] backend must have, written once and run per backend through
//! [`store_behaviours!`]. Each behaviour takes a store and a namespace (the test's name) and
//! keeps its keys under `key(&[ns, ..])`, so that backends shared between tests (one etcd
//! server) do not see each other's keys.

use std::any::Any;
use std::thread;
use std::time::Duration;

use libnetwork_datastore::{
    Error, KvObject, KvPair, Op, Precondition, Scope, Store, WatchEvent, delete_object_atomic,
    delete_tree, get_object, key, list_objects, object_key, put_object, put_object_atomic,
};
use libnetwork_types::ErrorKind;
use serde::{Deserialize, Serialize};

/// A store under test, its namespace, and whatever must live as long as it (temp dirs, the
/// etcd server).
pub(crate) struct Fixture {
    pub(crate) store: Box<dyn Store>,
    pub(crate) ns: String,
    pub(crate) _keep: Box<dyn Any>,
}

/// Generates one `#[test]` per behaviour, each calling `$fixture(test_name)` (which returns
/// `None` to skip) and then the behaviour of the same name in this module.
macro_rules! store_behaviours {
    ($fixture:path) => {
        store_behaviours!(@each $fixture;
            get_of_a_missing_key_is_not_found,
            put_then_get_returns_the_value_and_its_index,
            put_with_the_current_index_succeeds_and_a_stale_index_conflicts,
            put_absent_creates_a_key_only_once,
            delete_without_precondition_removes_the_key,
            delete_with_an_index_checks_the_index,
            list_returns_exactly_the_keys_under_the_prefix_in_key_order,
            apply_writes_all_ops_at_one_index,
            apply_with_one_failing_op_writes_nothing,
            apply_rejects_empty_and_duplicate_batches,
            watch_reports_puts_and_deletes_made_after_the_call,
            indexes_grow_across_keys_and_recreations,
            concurrent_absent_puts_have_exactly_one_winner,
            object_round_trips_under_its_flat_key,
            atomic_object_puts_follow_the_object_index,
            list_objects_skips_empty_values_and_delete_tree_removes_the_prefix,
            skipped_objects_are_never_written,
        );
    };
    (@each $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if let Some(f) = $fixture(stringify!($name)) {
                    common::$name(&*f.store, &f.ns);
                }
            }
        )*
    };
}

/// Waits (bounded, so a broken watch fails instead of hanging) for the next event.
fn next_event(w: &libnetwork_datastore::Watcher) -> WatchEvent {
    w.recv_timeout(Duration::from_secs(20))
        .expect("watch still running")
        .expect("an event arrives")
}

fn k(ns: &str, parts: &[&str]) -> String {
    let mut all = vec![ns];
    all.extend_from_slice(parts);
    key(&all)
}

pub(crate) fn get_of_a_missing_key_is_not_found(store: &dyn Store, ns: &str) {
    let err = store.get(&k(ns, &["missing"])).unwrap_err();
    assert!(matches!(err, Error::KeyNotFound(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

pub(crate) fn put_then_get_returns_the_value_and_its_index(store: &dyn Store, ns: &str) {
    let key = k(ns, &["a"]);
    let index = store
        .put(&key, br#"{"name":"a"}"#, Precondition::None)
        .unwrap();
    assert!(index > 0);
    assert_eq!(
        store.get(&key).unwrap(),
        KvPair {
            key: key.clone(),
            value: br#"{"name":"a"}"#.to_vec(),
            index,
        }
    );

    let again = store.put(&key, b"2", Precondition::None).unwrap();
    assert!(again > index);
    let pair = store.get(&key).unwrap();
    assert_eq!((pair.value.as_slice(), pair.index), (&b"2"[..], again));
}

pub(crate) fn put_with_the_current_index_succeeds_and_a_stale_index_conflicts(
    store: &dyn Store,
    ns: &str,
) {
    let key = k(ns, &["cas"]);
    let first = store.put(&key, b"1", Precondition::None).unwrap();
    let second = store.put(&key, b"2", Precondition::Index(first)).unwrap();
    assert!(second > first);

    let err = store
        .put(&key, b"3", Precondition::Index(first))
        .unwrap_err();
    assert!(err.is_modified(), "{err}");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(store.get(&key).unwrap().value, b"2");

    // An index on a key that does not exist (any more) is a conflict too.
    let gone = k(ns, &["gone"]);
    let err = store
        .put(&gone, b"x", Precondition::Index(second))
        .unwrap_err();
    assert!(err.is_modified(), "{err}");
    assert!(store.get(&gone).unwrap_err().is_not_found());
}

pub(crate) fn put_absent_creates_a_key_only_once(store: &dyn Store, ns: &str) {
    let key = k(ns, &["once"]);
    let index = store.put(&key, b"first", Precondition::Absent).unwrap();
    let err = store
        .put(&key, b"second", Precondition::Absent)
        .unwrap_err();
    assert!(err.is_modified(), "{err}");
    assert_eq!(
        store.get(&key).unwrap(),
        KvPair {
            key,
            value: b"first".to_vec(),
            index,
        }
    );
}

pub(crate) fn delete_without_precondition_removes_the_key(store: &dyn Store, ns: &str) {
    let key = k(ns, &["d"]);
    store.put(&key, b"v", Precondition::None).unwrap();
    store.delete(&key, Precondition::None).unwrap();
    assert!(store.get(&key).unwrap_err().is_not_found());

    let err = store.delete(&key, Precondition::None).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

pub(crate) fn delete_with_an_index_checks_the_index(store: &dyn Store, ns: &str) {
    let key = k(ns, &["d"]);
    let old = store.put(&key, b"1", Precondition::None).unwrap();
    let current = store.put(&key, b"2", Precondition::None).unwrap();

    let err = store.delete(&key, Precondition::Index(old)).unwrap_err();
    assert!(err.is_modified(), "{err}");
    let err = store.delete(&key, Precondition::Absent).unwrap_err();
    assert!(err.is_modified(), "{err}");
    assert_eq!(store.get(&key).unwrap().index, current);

    store.delete(&key, Precondition::Index(current)).unwrap();
    assert!(store.get(&key).unwrap_err().is_not_found());
    let err = store
        .delete(&key, Precondition::Index(current))
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

pub(crate) fn list_returns_exactly_the_keys_under_the_prefix_in_key_order(
    store: &dyn Store,
    ns: &str,
) {
    // Written out of order; "net" must not match "net2" or "netx" thanks to the trailing `/`.
    let inside = [
        k(ns, &["net", "b"]),
        k(ns, &["net", "9"]),
        k(ns, &["net", "10"]),
        k(ns, &["net", "a", "deep"]),
        k(ns, &["net"]),
    ];
    let outside = [k(ns, &["net2", "a"]), k(ns, &["netx"]), k(ns, &["ne"])];
    for (i, key) in inside.iter().chain(&outside).enumerate() {
        store
            .put(key, format!("{i}").as_bytes(), Precondition::None)
            .unwrap();
    }

    let listed = store.list(&k(ns, &["net"])).unwrap();
    let keys: Vec<&str> = listed.iter().map(|p| p.key.as_str()).collect();
    let mut expected: Vec<&str> = inside.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(
        keys,
        [
            k(ns, &["net"]),
            k(ns, &["net", "10"]),
            k(ns, &["net", "9"]),
            k(ns, &["net", "a", "deep"]),
            k(ns, &["net", "b"]),
        ]
    );
    for pair in &listed {
        assert_eq!(store.get(&pair.key).unwrap(), *pair);
    }

    assert!(store.list(&k(ns, &["nothing"])).unwrap().is_empty());
    assert_eq!(
        store.list(&k(ns, &[])).unwrap().len(),
        inside.len() + outside.len()
    );
}

pub(crate) fn apply_writes_all_ops_at_one_index(store: &dyn Store, ns: &str) {
    let (a, b, c) = (k(ns, &["a"]), k(ns, &["b"]), k(ns, &["c"]));
    let ia = store.put(&a, b"a1", Precondition::None).unwrap();
    let ic = store.put(&c, b"c1", Precondition::None).unwrap();

    let index = store
        .apply(vec![
            Op::Put {
                key: a.clone(),
                value: b"a2".to_vec(),
                precondition: Precondition::Index(ia),
            },
            Op::Put {
                key: b.clone(),
                value: b"b1".to_vec(),
                precondition: Precondition::Absent,
            },
            Op::Delete {
                key: c.clone(),
                precondition: Precondition::Index(ic),
            },
        ])
        .unwrap();
    assert!(index > ic);
    assert_eq!(store.get(&a).unwrap().index, index);
    assert_eq!(store.get(&a).unwrap().value, b"a2");
    assert_eq!(store.get(&b).unwrap().index, index);
    assert!(store.get(&c).unwrap_err().is_not_found());
}

pub(crate) fn apply_with_one_failing_op_writes_nothing(store: &dyn Store, ns: &str) {
    let (a, b, c) = (k(ns, &["a"]), k(ns, &["b"]), k(ns, &["c"]));
    let ia = store.put(&a, b"a1", Precondition::None).unwrap();
    let ib = store.put(&b, b"b1", Precondition::None).unwrap();

    let ops = |b_precondition| {
        vec![
            Op::Put {
                key: a.clone(),
                value: b"a2".to_vec(),
                precondition: Precondition::Index(ia),
            },
            Op::Delete {
                key: b.clone(),
                precondition: b_precondition,
            },
            Op::Put {
                key: c.clone(),
                value: b"c1".to_vec(),
                precondition: Precondition::Absent,
            },
        ]
    };
    let err = store
        .apply(ops(Precondition::Index(ib + 1000)))
        .unwrap_err();
    assert!(err.is_modified(), "{err}");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = store.apply(ops(Precondition::Absent)).unwrap_err();
    assert!(err.is_modified(), "{err}");

    assert_eq!(store.get(&a).unwrap().index, ia);
    assert_eq!(store.get(&a).unwrap().value, b"a1");
    assert_eq!(store.get(&b).unwrap().index, ib);
    assert!(store.get(&c).unwrap_err().is_not_found());

    // A delete of a missing key fails the batch as not found.
    let err = store
        .apply(vec![
            Op::Put {
                key: c.clone(),
                value: b"c1".to_vec(),
                precondition: Precondition::None,
            },
            Op::Delete {
                key: k(ns, &["missing"]),
                precondition: Precondition::None,
            },
        ])
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(store.get(&c).unwrap_err().is_not_found());
}

pub(crate) fn apply_rejects_empty_and_duplicate_batches(store: &dyn Store, ns: &str) {
    let err = store.apply(vec![]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");

    let a = k(ns, &["a"]);
    let put = Op::Put {
        key: a.clone(),
        value: b"v".to_vec(),
        precondition: Precondition::None,
    };
    let err = store.apply(vec![put.clone(), put]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
    assert!(store.get(&a).unwrap_err().is_not_found());

    let err = store.put("", b"v", Precondition::None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
}

pub(crate) fn watch_reports_puts_and_deletes_made_after_the_call(store: &dyn Store, ns: &str) {
    let watched = k(ns, &["w"]);
    let before = k(ns, &["w", "before"]);
    let item = k(ns, &["w", "item"]);
    let outside = k(ns, &["w2"]);
    let sentinel = k(ns, &["w", "sentinel"]);
    store.put(&before, b"old", Precondition::None).unwrap();

    let watcher = store.watch(&watched).unwrap();
    assert_eq!(watcher.prefix(), watched);
    let i1 = store.put(&item, b"1", Precondition::Absent).unwrap();
    let i2 = store.put(&item, b"2", Precondition::Index(i1)).unwrap();
    store.delete(&item, Precondition::Index(i2)).unwrap();
    store.put(&outside, b"x", Precondition::None).unwrap();
    let i4 = store.put(&sentinel, b"s", Precondition::None).unwrap();

    let put = |key: &str, value: &[u8], index| {
        WatchEvent::Put(KvPair {
            key: key.to_owned(),
            value: value.to_vec(),
            index,
        })
    };
    assert_eq!(next_event(&watcher), put(&item, b"1", i1));
    assert_eq!(next_event(&watcher), put(&item, b"2", i2));
    let deleted = next_event(&watcher);
    assert!(
        matches!(&deleted, WatchEvent::Delete { key, index } if *key == item && *index > i2),
        "{deleted:?}"
    );
    // Neither the write before the watch nor the one outside the prefix shows up.
    assert_eq!(next_event(&watcher), put(&sentinel, b"s", i4));
    assert_eq!(watcher.try_recv().unwrap(), None);

    // An apply shows up as one event per op, all at the apply's index.
    let index = store
        .apply(vec![
            Op::Put {
                key: item.clone(),
                value: b"3".to_vec(),
                precondition: Precondition::Absent,
            },
            Op::Delete {
                key: sentinel.clone(),
                precondition: Precondition::None,
            },
        ])
        .unwrap();
    assert_eq!(next_event(&watcher), put(&item, b"3", index));
    assert_eq!(
        next_event(&watcher),
        WatchEvent::Delete {
            key: sentinel,
            index
        }
    );
}

pub(crate) fn indexes_grow_across_keys_and_recreations(store: &dyn Store, ns: &str) {
    let (a, b) = (k(ns, &["a"]), k(ns, &["b"]));
    let i1 = store.put(&a, b"1", Precondition::Absent).unwrap();
    let i2 = store.put(&b, b"1", Precondition::Absent).unwrap();
    let i3 = store.put(&a, b"2", Precondition::Index(i1)).unwrap();
    store.delete(&a, Precondition::Index(i3)).unwrap();
    let i4 = store.put(&a, b"3", Precondition::Absent).unwrap();
    assert!(i1 < i2 && i2 < i3 && i3 < i4, "{i1} {i2} {i3} {i4}");
    // A stale index from the key's previous life does not match its new one.
    let err = store.put(&a, b"4", Precondition::Index(i1)).unwrap_err();
    assert!(err.is_modified(), "{err}");
}

pub(crate) fn concurrent_absent_puts_have_exactly_one_winner(store: &dyn Store, ns: &str) {
    let key = k(ns, &["contended"]);
    let outcomes: Vec<Result<u64, Error>> = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let key = &key;
                s.spawn(move || store.put(key, format!("{i}").as_bytes(), Precondition::Absent))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().copied())
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        if let Err(e) = outcome {
            assert!(e.is_modified(), "{e}");
        }
    }
    assert_eq!(store.get(&key).unwrap().index, winners[0]);
}

/// A libnetwork-style object: JSON fields plus an index and an exists flag that are not
/// persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Thing {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    #[serde(rename = "Value")]
    pub(crate) value: u32,
    #[serde(skip)]
    pub(crate) ns: String,
    #[serde(skip)]
    pub(crate) index: u64,
    #[serde(skip)]
    pub(crate) exists: bool,
    #[serde(skip)]
    pub(crate) skip: bool,
}

impl Thing {
    pub(crate) fn new(ns: &str, id: &str, value: u32) -> Self {
        Self {
            id: id.to_owned(),
            value,
            ns: ns.to_owned(),
            index: 0,
            exists: false,
            skip: false,
        }
    }
}

impl KvObject for Thing {
    fn key(&self) -> Vec<String> {
        vec![self.ns.clone(), "thing".to_owned(), self.id.clone()]
    }
    fn key_prefix(&self) -> Vec<String> {
        vec![self.ns.clone(), "thing".to_owned()]
    }
    fn index(&self) -> u64 {
        self.index
    }
    fn set_index(&mut self, index: u64) {
        self.index = index;
        self.exists = true;
    }
    fn exists(&self) -> bool {
        self.exists
    }
    fn skip(&self) -> bool {
        self.skip
    }
    fn data_scope(&self) -> Scope {
        Scope::Local
    }
}

pub(crate) fn object_round_trips_under_its_flat_key(store: &dyn Store, ns: &str) {
    let mut thing = Thing::new(ns, "t1", 7);
    put_object(store, &mut thing).unwrap();
    assert!(thing.exists);
    assert_eq!(object_key(&thing), k(ns, &["thing", "t1"]));

    let pair = store.get(&k(ns, &["thing", "t1"])).unwrap();
    assert_eq!(pair.value, br#"{"ID":"t1","Value":7}"#);
    assert_eq!(pair.index, thing.index);

    let mut read: Thing = get_object(store, &object_key(&thing)).unwrap();
    assert!(read.exists);
    assert_eq!(read.index, thing.index);
    read.ns = ns.to_owned();
    assert_eq!(read, thing);
}

pub(crate) fn atomic_object_puts_follow_the_object_index(store: &dyn Store, ns: &str) {
    let mut thing = Thing::new(ns, "t1", 1);
    put_object_atomic(store, &mut thing).unwrap();
    assert!(thing.exists);
    let first = thing.index;

    // A second object that thinks the key is new must not overwrite it.
    let mut other = Thing::new(ns, "t1", 99);
    let err = put_object_atomic(store, &mut other).unwrap_err();
    assert!(err.is_modified(), "{err}");
    assert!(!other.exists);

    // Repeated atomic puts succeed while the index is current.
    thing.value = 2;
    put_object_atomic(store, &mut thing).unwrap();
    thing.value = 3;
    put_object_atomic(store, &mut thing).unwrap();
    assert!(thing.index > first);

    // A copy read before the last write is stale.
    let mut stale = thing.clone();
    stale.index = first;
    let err = put_object_atomic(store, &mut stale).unwrap_err();
    assert!(err.is_modified(), "{err}");
    assert_eq!(stale.index, first);

    let mut read: Thing = get_object(store, &object_key(&thing)).unwrap();
    assert!(read.exists);
    assert_eq!((read.value, read.index), (3, thing.index));
    read.ns = ns.to_owned();
    read.value = 4;
    put_object_atomic(store, &mut read).unwrap();

    let err = delete_object_atomic(store, &thing).unwrap_err();
    assert!(err.is_modified(), "{err}");
    delete_object_atomic(store, &read).unwrap();
    let err = get_object::<Thing, _>(store, &object_key(&thing)).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

pub(crate) fn list_objects_skips_empty_values_and_delete_tree_removes_the_prefix(
    store: &dyn Store,
    ns: &str,
) {
    for (id, value) in [("c", 3), ("a", 1), ("b", 2)] {
        put_object_atomic(store, &mut Thing::new(ns, id, value)).unwrap();
    }
    store
        .put(&k(ns, &["thing", "empty"]), b"", Precondition::None)
        .unwrap();
    let neighbour = k(ns, &["thingy", "x"]);
    store.put(&neighbour, b"{}", Precondition::None).unwrap();

    let prefix = k(ns, &["thing"]);
    let things: Vec<Thing> = list_objects(store, &prefix).unwrap();
    let got: Vec<(&str, u32, bool)> = things
        .iter()
        .map(|t| (t.id.as_str(), t.value, t.exists))
        .collect();
    assert_eq!(got, [("a", 1, true), ("b", 2, true), ("c", 3, true)]);
    for t in &things {
        assert_eq!(store.get(&k(ns, &["thing", &t.id])).unwrap().index, t.index);
    }

    // A value that is not a Thing is reported, not skipped.
    store
        .put(&k(ns, &["thing", "junk"]), b"not json", Precondition::None)
        .unwrap();
    let err = list_objects::<Thing, _>(store, &prefix).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");

    delete_tree(store, &Thing::new(ns, "any", 0)).unwrap();
    assert!(store.list(&prefix).unwrap().is_empty());
    assert!(store.get(&neighbour).is_ok());
    // An empty tree is fine.
    delete_tree(store, &Thing::new(ns, "any", 0)).unwrap();
}

pub(crate) fn skipped_objects_are_never_written(store: &dyn Store, ns: &str) {
    let mut thing = Thing::new(ns, "s", 1);
    thing.skip = true;
    put_object_atomic(store, &mut thing).unwrap();
    assert!(thing.exists);
    put_object(store, &mut thing).unwrap();
    assert!(store.get(&object_key(&thing)).unwrap_err().is_not_found());
    assert!(store.list(&k(ns, &[])).unwrap().is_empty());
    delete_object_atomic(store, &thing).unwrap();
}
