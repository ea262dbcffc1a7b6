//! Property tests over random schedules: random writes, partitions, restarts, loss,
//! duplication and delays. Every schedule must end with every node holding exactly the owners' final entries,
//! and no node may ever go back to an older version of an entry (a deleted entry never comes
//! back, an old write never overrides a newer one).

use std::collections::BTreeMap;
use std::time::Duration;

use libnetwork_networkdb::Config;
use libnetwork_networkdb::sim::{Faults, Simulator};
use proptest::prelude::*;

const NODES: usize = 5;
const KEYS: u8 = 4;
const NET: &str = "n";
const TABLE: &str = "t";

#[derive(Debug, Clone)]
enum Op {
    Create { node: usize, key: u8 },
    Update { node: usize, key: u8 },
    Delete { node: usize, key: u8 },
    Partition(Vec<bool>),
    Heal,
    Wait(u64),
    Restart(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..NODES;
    let key = 0..KEYS;
    prop_oneof![
        3 => (node.clone(), key.clone()).prop_map(|(node, key)| Op::Create { node, key }),
        2 => (node.clone(), key.clone()).prop_map(|(node, key)| Op::Update { node, key }),
        2 => (node, key).prop_map(|(node, key)| Op::Delete { node, key }),
        1 => proptest::collection::vec(any::<bool>(), NODES).prop_map(Op::Partition),
        1 => Just(Op::Heal),
        3 => (0u64..8000).prop_map(Op::Wait),
        1 => (0..NODES).prop_map(Op::Restart),
    ]
}

/// Each key belongs to one node; its history is the sequence of that node's successful writes.
#[derive(Default)]
struct Model {
    // key -> [(version, Some(value) for a write | None for a delete)]
    history: BTreeMap<String, Vec<(u64, Option<String>)>>,
    next: u64,
}

impl Model {
    fn live(&self) -> BTreeMap<String, Vec<u8>> {
        self.history
            .iter()
            .filter_map(|(k, h)| {
                let (_, last) = h.last()?;
                last.as_ref().map(|v| (k.clone(), v.clone().into_bytes()))
            })
            .collect()
    }

    /// The version a node's observation corresponds to: a live value is the write that made
    /// it; a tombstone holding a value is the first delete after that write.
    fn version(&self, key: &str, value: &[u8], deleting: bool) -> Option<u64> {
        let h = self.history.get(key)?;
        let written: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
        if !deleting {
            return Some(written);
        }
        h.iter()
            .find(|(v, op)| *v > written && op.is_none())
            .map(|(v, _)| *v)
    }
}

fn key_name(node: usize, key: u8) -> String {
    format!("n{node}-k{key}")
}

/// Records every node's version of every entry and fails if one went backwards.
fn observe(
    sim: &Simulator,
    model: &Model,
    seen: &mut BTreeMap<(usize, String), u64>,
) -> Result<(), TestCaseError> {
    for i in 0..NODES {
        let db = sim.node(i).expect("up");
        let mut result = Ok(());
        db.walk_table(TABLE, |_, key, value, deleting| {
            if let Some(v) = model.version(key, value, deleting) {
                let slot = seen.entry((i, key.to_string())).or_insert(0);
                if v < *slot {
                    result = Err(TestCaseError::fail(format!(
                        "node {i} went back from version {} to {v} on {key} (deleting={deleting})",
                        *slot
                    )));
                    return true;
                }
                *slot = v;
            }
            false
        });
        result?;
    }
    Ok(())
}

fn run(seed: u64, loss: f64, duplicate: f64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let faults = Faults {
        loss,
        duplicate,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(80),
    };
    let config = Config {
        bulk_sync_interval: Duration::from_secs(5),
        push_pull_interval: Duration::from_secs(5),
        ..Config::default()
    };
    let mut sim = Simulator::new(seed, faults);
    sim.record_events = false;
    for _ in 0..NODES {
        sim.add_node(config.clone());
    }
    for i in 1..NODES {
        sim.join(i, &[0]);
    }
    for i in 0..NODES {
        sim.with(i, |db, out| db.join_network(NET, out));
    }
    let formed = sim.run_until(Duration::from_secs(60), Duration::from_millis(100), |s| {
        (0..NODES).all(|i| s.node(i).unwrap().peers(NET).len() == NODES)
    });
    prop_assert!(formed.is_some(), "cluster did not form");

    let mut model = Model::default();
    let mut seen = BTreeMap::new();
    for op in ops {
        match op {
            Op::Create { node, key } | Op::Update { node, key } | Op::Delete { node, key } => {
                let k = key_name(node, key);
                model.next += 1;
                let version = model.next;
                let value = version.to_string();
                let written = sim.with(node, |db, out| match &op {
                    Op::Create { .. } => db.create_entry(TABLE, NET, &k, value.clone().into(), out),
                    Op::Update { .. } => db.update_entry(TABLE, NET, &k, value.clone().into(), out),
                    _ => db.delete_entry(TABLE, NET, &k, out),
                });
                if written.is_ok() {
                    let entry = (!matches!(op, Op::Delete { .. })).then_some(value);
                    model.history.entry(k).or_default().push((version, entry));
                }
            }
            Op::Partition(sides) => {
                let a: Vec<usize> = (0..NODES).filter(|&i| sides[i]).collect();
                let b: Vec<usize> = (0..NODES).filter(|&i| !sides[i]).collect();
                sim.partition(&[&a, &b]);
            }
            Op::Heal => sim.heal(),
            Op::Restart(node) => {
                // A new process (new name) on the same address: the old one's entries go.
                sim.restart(node, config.clone());
                sim.join(node, &[(node + 1) % NODES]);
                sim.with(node, |db, out| db.join_network(NET, out));
                for key in 0..KEYS {
                    if let Some(h) = model.history.get_mut(&key_name(node, key)) {
                        model.next += 1;
                        h.push((model.next, None));
                    }
                }
            }
            Op::Wait(ms) => sim.run_for(Duration::from_millis(ms)),
        }
        observe(&sim, &model, &mut seen)?;
    }

    sim.heal();
    let expected = model.live();
    let mut converged = false;
    for _ in 0..900 {
        sim.run_for(Duration::from_millis(200));
        observe(&sim, &model, &mut seen)?;
        let tables: Vec<BTreeMap<String, Vec<u8>>> = (0..NODES)
            .map(|i| {
                sim.node(i)
                    .unwrap()
                    .get_table(TABLE, NET)
                    .into_iter()
                    .map(|(k, e)| (k, e.value))
                    .collect()
            })
            .collect();
        if tables.iter().all(|t| *t == expected) {
            converged = true;
            break;
        }
    }
    prop_assert!(converged, "did not converge to {expected:?} within 180 s");
    // And it stays that way.
    sim.run_for(Duration::from_secs(30));
    observe(&sim, &model, &mut seen)?;
    for i in 0..NODES {
        let table: BTreeMap<String, Vec<u8>> = sim
            .node(i)
            .unwrap()
            .get_table(TABLE, NET)
            .into_iter()
            .map(|(k, e)| (k, e.value))
            .collect();
        prop_assert_eq!(&table, &expected, "node {} drifted", i);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_schedule_converges_without_losing_or_resurrecting_entries(
        seed in any::<u64>(),
        loss in 0.0f64..0.2,
        duplicate in 0.0f64..0.1,
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        run(seed, loss, duplicate, ops)?;
    }
}

fn garbage_target() -> Simulator {
    let mut sim = Simulator::new(1, Faults::default());
    let a = sim.add_node(Config::default());
    let b = sim.add_node(Config::default());
    sim.join(b, &[a]);
    for i in [a, b] {
        sim.with(i, |db, out| db.join_network(NET, out));
    }
    sim.run_for(Duration::from_secs(3));
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_datagrams_and_streams_never_panic_the_engine(
        kind in 0u8..4,
        body in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let mut sim = garbage_target();
        let mut packet = vec![kind];
        packet.extend_from_slice(&body);
        let _ = sim.with(1, |db, out| db.handle_packet(&packet, out));
        let _ = sim.with(1, |db, out| db.handle_stream(&body, out));
        sim.run_for(Duration::from_secs(1));
        prop_assert!(sim.node(1).unwrap().cluster_size() >= 1);
    }

    #[test]
    fn well_formed_messages_with_arbitrary_fields_never_panic_the_engine(
        kind in any::<i32>(),
        l_time in any::<u64>(),
        owner in prop_oneof![Just(String::new()), "[a-f0-9]{1,12}"],
        key in ".{0,8}",
        reap in any::<i32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        use libnetwork_networkdb::proto::{BulkSyncMessage, NetworkEvent, NodeEvent, TableEvent};
        use libnetwork_networkdb::wire::{KIND_GOSSIP, Message, encode_compound};
        let mut sim = garbage_target();
        let owner = if owner.is_empty() { sim.node(0).unwrap().name().to_string() } else { owner };
        let table = Message::Table(TableEvent {
            r#type: kind, l_time, node_name: owner.clone(), network_id: NET.into(),
            table_name: TABLE.into(), key: key.clone(), value: payload.clone(),
            residual_reap_time: reap,
        });
        let network = Message::Network(NetworkEvent {
            r#type: kind, l_time, node_name: owner.clone(), network_id: key.clone(),
        });
        let node = Message::Node(NodeEvent { r#type: kind, l_time, node_name: owner.clone() });
        let bulk = Message::BulkSync(BulkSyncMessage {
            l_time, unsolicited: kind % 2 == 0, node_name: owner,
            networks: vec![NET.into(), key], payload,
        });
        for msg in [table, network, node, bulk] {
            let mut packet = vec![KIND_GOSSIP];
            packet.extend(encode_compound(vec![msg.encode()]));
            let _ = sim.with(1, |db, out| db.handle_packet(&packet, out));
            let _ = sim.with(1, |db, out| db.handle_stream(&msg.encode(), out));
        }
        sim.run_for(Duration::from_secs(1));
    }
}
