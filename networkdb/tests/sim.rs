//! Simulated clusters: convergence, deletes, restarts, late joiners, failures, partitions.

use std::collections::BTreeMap;
use std::time::Duration;

use libnetwork_networkdb::proto::{TableEvent, table_event};
use libnetwork_networkdb::sim::{Faults, Simulator};
use libnetwork_networkdb::wire::{KIND_GOSSIP, Message};
use libnetwork_networkdb::{Config, Error, EventKind, NODE_TABLE, NodeState};

const NET: &str = "net1";
const TABLE: &str = "endpoint_table";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// libnetwork's defaults with a faster bulk sync, so repairs happen within seconds.
fn test_config() -> Config {
    Config {
        bulk_sync_interval: secs(5),
        push_pull_interval: secs(5),
        ..Config::default()
    }
}

/// Starts `n` nodes, joins them through node 0 and waits for full membership.
fn cluster(sim: &mut Simulator, n: usize, config: impl Fn(usize) -> Config) -> Vec<usize> {
    let nodes: Vec<usize> = (0..n).map(|i| sim.add_node(config(i))).collect();
    for &i in &nodes[1..] {
        sim.join(i, &[0]);
    }
    let done = sim.run_until(secs(120), ms(100), |s| {
        nodes
            .iter()
            .all(|&i| s.node(i).unwrap().cluster_peers().len() == n)
    });
    assert!(done.is_some(), "cluster of {n} did not form");
    nodes
}

/// Makes every node in `nodes` join `nid` and waits until each sees all the others in it.
fn join_network(sim: &mut Simulator, nodes: &[usize], nid: &str) {
    for &i in nodes {
        sim.with(i, |db, out| db.join_network(nid, out));
    }
    let done = sim.run_until(secs(120), ms(100), |s| {
        nodes
            .iter()
            .all(|&i| s.node(i).unwrap().peers(nid).len() == nodes.len())
    });
    assert!(done.is_some(), "network membership did not converge");
}

fn table_of(sim: &Simulator, i: usize) -> BTreeMap<String, Vec<u8>> {
    sim.node(i)
        .unwrap()
        .get_table(TABLE, NET)
        .into_iter()
        .map(|(k, e)| (k, e.value))
        .collect()
}

fn all_equal(sim: &Simulator, nodes: &[usize], expected: &BTreeMap<String, Vec<u8>>) -> bool {
    nodes.iter().all(|&i| table_of(sim, i) == *expected)
}

fn create(sim: &mut Simulator, i: usize, key: &str, value: &str) {
    sim.with(i, |db, out| {
        db.create_entry(TABLE, NET, key, value.into(), out)
    })
    .unwrap();
}

#[test]
fn entries_converge_on_every_node_despite_loss_duplication_and_delay() {
    let faults = Faults {
        loss: 0.1,
        duplicate: 0.05,
        min_delay: ms(1),
        max_delay: ms(50),
    };
    let mut sim = Simulator::new(7, faults);
    let nodes = cluster(&mut sim, 8, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    let mut expected = BTreeMap::new();
    for &i in &nodes {
        for k in 0..5 {
            let key = format!("n{i}-k{k}");
            create(&mut sim, i, &key, "v1");
            expected.insert(key, b"v1".to_vec());
        }
    }
    sim.run_for(ms(300));
    for &i in &nodes {
        let key = format!("n{i}-k0");
        sim.with(i, |db, out| {
            db.update_entry(TABLE, NET, &key, b"v2".to_vec(), out)
        })
        .unwrap();
        expected.insert(key, b"v2".to_vec());
        let key = format!("n{i}-k1");
        sim.with(i, |db, out| db.delete_entry(TABLE, NET, &key, out))
            .unwrap();
        expected.remove(&key);
    }
    let took = sim.run_until(secs(60), ms(50), |s| all_equal(s, &nodes, &expected));
    assert!(took.is_some(), "tables did not converge");
}

#[test]
fn a_node_outside_the_network_never_receives_its_entries() {
    let mut sim = Simulator::new(1, Faults::default());
    let nodes = cluster(&mut sim, 3, |_| test_config());
    join_network(&mut sim, &nodes[..2], NET);
    create(&mut sim, 0, "k", "v");
    sim.run_until(secs(10), ms(50), |s| table_of(s, 1).contains_key("k"))
        .expect("member got the entry");
    sim.run_for(secs(30));
    assert!(table_of(&sim, 2).is_empty());
    assert!(sim.events(2).iter().all(|e| e.table != TABLE));
    assert_eq!(
        sim.node(2).unwrap().peers(NET).len(),
        2,
        "it still sees who is in it"
    );
}

#[test]
fn a_deleted_entry_never_comes_back_after_a_partition_heals() {
    let mut sim = Simulator::new(3, Faults::default());
    let nodes = cluster(&mut sim, 5, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    create(&mut sim, 0, "doomed", "v");
    create(&mut sim, 3, "kept", "v");
    sim.run_until(secs(10), ms(50), |s| {
        nodes.iter().all(|&i| table_of(s, i).len() == 2)
    })
    .expect("entries spread");

    // A long partition: each side declares the other down.
    sim.partition(&[&[0, 1], &[2, 3, 4]]);
    sim.with(0, |db, out| db.delete_entry(TABLE, NET, "doomed", out))
        .unwrap();
    sim.run_for(secs(30));
    assert_eq!(
        sim.node(2).unwrap().node_state(sim.node(0).unwrap().name()),
        Some(NodeState::Failed)
    );
    sim.heal();

    // From the moment a node has lost the entry it must never see it again.
    let mut gone = [false; 5];
    let mut converged_at = None;
    for step in 0..600 {
        sim.run_for(ms(100));
        for &i in &nodes {
            let has = table_of(&sim, i).contains_key("doomed");
            assert!(!(gone[i] && has), "entry came back on node {i}");
            gone[i] |= !has;
        }
        let kept = nodes
            .iter()
            .all(|&i| table_of(&sim, i).contains_key("kept"));
        if converged_at.is_none() && gone.iter().all(|g| *g) && kept {
            converged_at = Some(step);
        }
    }
    assert!(
        converged_at.is_some(),
        "cluster did not converge after healing"
    );
}

#[test]
fn both_sides_of_a_healed_partition_converge_to_every_write() {
    let faults = Faults {
        loss: 0.02,
        ..Faults::default()
    };
    let mut sim = Simulator::new(11, faults);
    let nodes = cluster(&mut sim, 6, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    sim.partition(&[&[0, 1, 2], &[3, 4, 5]]);
    sim.run_for(secs(2));
    let mut expected = BTreeMap::new();
    for &i in &nodes {
        let key = format!("during-{i}");
        create(&mut sim, i, &key, "x");
        expected.insert(key, b"x".to_vec());
    }
    sim.run_for(secs(20));
    sim.heal();
    sim.run_until(secs(90), ms(100), |s| all_equal(s, &nodes, &expected))
        .expect("converged after heal");
}

#[test]
fn a_restarted_node_gets_the_current_state() {
    let mut sim = Simulator::new(5, Faults::default());
    let nodes = cluster(&mut sim, 4, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    create(&mut sim, 0, "a", "1");
    create(&mut sim, 3, "old", "from the first life");
    sim.run_until(secs(10), ms(50), |s| table_of(s, 1).len() == 2)
        .expect("spread");

    sim.crash(3);
    sim.with(0, |db, out| {
        db.update_entry(TABLE, NET, "a", b"2".to_vec(), out)
    })
    .unwrap();
    create(&mut sim, 1, "b", "1");
    sim.run_for(secs(2));
    sim.restart(3, test_config());
    sim.join(3, &[0]);
    sim.with(3, |db, out| db.join_network(NET, out));

    let expected: BTreeMap<String, Vec<u8>> = [
        ("a".to_string(), b"2".to_vec()),
        ("b".to_string(), b"1".to_vec()),
    ]
    .into();
    sim.run_until(secs(60), ms(100), |s| all_equal(s, &nodes, &expected))
        .expect("restarted node caught up and its old incarnation's entry is gone");
}

#[test]
fn a_late_network_joiner_receives_all_entries_by_bulk_sync() {
    let mut sim = Simulator::new(9, Faults::default());
    let nodes = cluster(&mut sim, 3, |_| test_config());
    join_network(&mut sim, &nodes[..2], NET);
    let mut expected = BTreeMap::new();
    for k in 0..1000 {
        let key = format!("k{k}");
        create(&mut sim, k % 2, &key, "v");
        expected.insert(key, b"v".to_vec());
    }
    sim.with(0, |db, out| db.delete_entry(TABLE, NET, "k0", out))
        .unwrap();
    expected.remove("k0");
    sim.run_until(secs(30), ms(100), |s| all_equal(s, &nodes[..2], &expected))
        .expect("members converged");

    sim.reset_traffic();
    sim.with(2, |db, out| db.join_network(NET, out));
    sim.run_until(secs(5), ms(10), |s| table_of(s, 2) == expected)
        .expect("late joiner got everything");
    assert!(sim.traffic(0).streams + sim.traffic(1).streams > 0);
    let mut tombstone = false;
    sim.node(2)
        .unwrap()
        .walk_table(TABLE, |_, key, _, deleting| {
            tombstone |= key == "k0" && deleting;
            false
        });
    assert!(tombstone, "the tombstone travelled with the bulk sync");
}

#[test]
fn a_large_state_is_split_into_stream_messages_of_bounded_size() {
    let config = || Config {
        max_stream_message: std::num::NonZeroUsize::new(16 * 1024).unwrap(),
        ..test_config()
    };
    let mut sim = Simulator::new(2, Faults::default());
    let nodes = cluster(&mut sim, 2, |_| config());
    sim.with(0, |db, out| db.join_network(NET, out));
    for k in 0..2000 {
        create(
            &mut sim,
            0,
            &format!("key-{k:05}"),
            "some value of moderate size",
        );
    }
    sim.reset_traffic();
    sim.with(1, |db, out| db.join_network(NET, out));
    sim.run_until(secs(10), ms(10), |s| table_of(s, 1).len() == 2000)
        .expect("all entries arrived");
    let t = sim.traffic(nodes[0]);
    assert!(t.streams > 4, "state was split, got {} streams", t.streams);
    assert!(t.max_stream <= 16 * 1024, "largest stream {}", t.max_stream);
}

#[test]
fn a_failed_node_has_its_entries_removed_and_watchers_see_deletes() {
    let mut sim = Simulator::new(4, Faults::default());
    let nodes = cluster(&mut sim, 3, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    create(&mut sim, 2, "e", "v");
    sim.run_until(secs(10), ms(50), |s| table_of(s, 0).contains_key("e"))
        .expect("spread");
    let name = sim.node(2).unwrap().name().to_string();
    sim.crash(2);
    sim.run_until(secs(30), ms(100), |s| !table_of(s, 0).contains_key("e"))
        .expect("entry of failed node removed");
    assert_eq!(
        sim.node(0).unwrap().node_state(&name),
        Some(NodeState::Failed)
    );
    let deletes: Vec<_> = sim
        .events(0)
        .iter()
        .filter(|e| e.kind == EventKind::Delete)
        .map(|e| (e.table.as_str(), e.key.as_str()))
        .collect();
    assert!(deletes.contains(&(TABLE, "e")));
    assert!(deletes.contains(&(NODE_TABLE, name.as_str())));
}

#[test]
fn a_node_that_leaves_cleanly_is_removed_at_once() {
    let mut sim = Simulator::new(6, Faults::default());
    let nodes = cluster(&mut sim, 3, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    create(&mut sim, 2, "e", "v");
    sim.run_until(secs(10), ms(50), |s| table_of(s, 0).contains_key("e"))
        .expect("spread");
    let name = sim.node(2).unwrap().name().to_string();
    sim.with(2, |db, out| db.leave(out)).unwrap();
    sim.run_until(secs(1), ms(10), |s| {
        s.node(0).unwrap().node_state(&name) == Some(NodeState::Left)
    })
    .expect("leave announced");
    assert!(!table_of(&sim, 0).contains_key("e"));
    // Failure detection later declares it down too; it stays "left".
    sim.run_for(secs(10));
    assert_eq!(
        sim.node(0).unwrap().node_state(&name),
        Some(NodeState::Left)
    );
}

#[test]
fn leaving_a_network_tombstones_the_nodes_entries_everywhere() {
    let mut sim = Simulator::new(8, Faults::default());
    let nodes = cluster(&mut sim, 3, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    create(&mut sim, 1, "mine", "v");
    create(&mut sim, 0, "theirs", "v");
    sim.run_until(secs(10), ms(50), |s| {
        nodes.iter().all(|&i| table_of(s, i).len() == 2)
    })
    .expect("spread");
    sim.with(1, |db, out| db.leave_network(NET, out)).unwrap();
    assert!(
        table_of(&sim, 1).is_empty(),
        "the leaver drops the whole network"
    );
    sim.run_until(secs(10), ms(50), |s| {
        [0, 2].iter().all(|&i| {
            let t = table_of(s, i);
            !t.contains_key("mine") && t.contains_key("theirs")
        })
    })
    .expect("others dropped the leaver's entries");
    assert_eq!(sim.node(0).unwrap().peers(NET).len(), 2);
    assert!(matches!(
        sim.with(1, |db, out| db.leave_network(NET, out)),
        Err(Error::NetworkNotJoined { .. })
    ));
}

#[test]
fn watchers_see_create_update_delete_in_order_on_a_remote_node() {
    let mut sim = Simulator::new(10, Faults::default());
    let nodes = cluster(&mut sim, 2, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    create(&mut sim, 0, "k", "1");
    sim.run_for(secs(1));
    sim.with(0, |db, out| {
        db.update_entry(TABLE, NET, "k", b"2".to_vec(), out)
    })
    .unwrap();
    sim.run_for(secs(1));
    sim.with(0, |db, out| db.delete_entry(TABLE, NET, "k", out))
        .unwrap();
    sim.run_for(secs(1));
    let seen: Vec<(EventKind, Vec<u8>)> = sim
        .events(1)
        .iter()
        .filter(|e| e.table == TABLE)
        .map(|e| (e.kind, e.value.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (EventKind::Create, b"1".to_vec()),
            (EventKind::Update, b"2".to_vec()),
            (EventKind::Delete, b"2".to_vec()),
        ]
    );
}

fn forged(owner: &str, kind: table_event::Type, l_time: u64, value: &str) -> Vec<u8> {
    forged_key(owner, kind, l_time, "k", value)
}

/// A gossip datagram holding one table event, as `owner` would send it.
fn forged_key(
    owner: &str,
    kind: table_event::Type,
    l_time: u64,
    key: &str,
    value: &str,
) -> Vec<u8> {
    let ev = TableEvent {
        r#type: kind as i32,
        l_time,
        node_name: owner.into(),
        network_id: NET.into(),
        table_name: TABLE.into(),
        key: key.into(),
        value: value.into(),
        residual_reap_time: 0,
    };
    let mut packet = vec![KIND_GOSSIP];
    packet.extend(Message::Table(ev).encode());
    packet
}

#[test]
fn an_older_event_never_overrides_a_newer_one() {
    let mut sim = Simulator::new(12, Faults::default());
    let nodes = cluster(&mut sim, 2, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    let owner = sim.node(0).unwrap().name().to_string();
    let deliver = |sim: &mut Simulator, p: Vec<u8>| {
        sim.with(1, |db, out| db.handle_packet(&p, out)).unwrap();
    };
    deliver(
        &mut sim,
        forged(&owner, table_event::Type::Update, 50, "new"),
    );
    deliver(
        &mut sim,
        forged(&owner, table_event::Type::Create, 40, "old"),
    );
    assert_eq!(
        sim.node(1).unwrap().get_entry(TABLE, NET, "k").unwrap(),
        b"new"
    );
    deliver(
        &mut sim,
        forged(&owner, table_event::Type::Delete, 60, "new"),
    );
    deliver(
        &mut sim,
        forged(&owner, table_event::Type::Update, 55, "stale"),
    );
    assert!(
        sim.node(1)
            .unwrap()
            .get_entry(TABLE, NET, "k")
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        sim.node(1).unwrap().table_clock() > 60,
        "the clock witnessed the events"
    );
    // A delete for an entry never seen still leaves a tombstone, so a late create cannot
    // resurrect it.
    let delete = forged_key(&owner, table_event::Type::Delete, 80, "never-seen", "");
    deliver(&mut sim, delete);
    let late = forged_key(
        &owner,
        table_event::Type::Create,
        70,
        "never-seen",
        "zombie",
    );
    deliver(&mut sim, late);
    assert!(
        sim.node(1)
            .unwrap()
            .get_entry(TABLE, NET, "never-seen")
            .is_err()
    );
}

#[test]
fn events_from_nodes_outside_the_network_are_ignored() {
    let mut sim = Simulator::new(13, Faults::default());
    let nodes = cluster(&mut sim, 3, |_| test_config());
    join_network(&mut sim, &nodes[..2], NET);
    let outsider = sim.node(2).unwrap().name().to_string();
    let p = forged(&outsider, table_event::Type::Create, 5, "intruder");
    sim.with(1, |db, out| db.handle_packet(&p, out)).unwrap();
    assert!(sim.node(1).unwrap().get_entry(TABLE, NET, "k").is_err());
}

#[test]
fn tombstones_are_reaped_after_the_reap_interval_and_stay_gone() {
    let config = || Config {
        reap_entry_interval: secs(60),
        ..test_config()
    };
    let mut sim = Simulator::new(14, Faults::default());
    let nodes = cluster(&mut sim, 3, |_| config());
    join_network(&mut sim, &nodes, NET);
    create(&mut sim, 0, "k", "v");
    sim.run_for(secs(2));
    sim.with(0, |db, out| db.delete_entry(TABLE, NET, "k", out))
        .unwrap();
    sim.run_for(secs(2));
    for &i in &nodes {
        assert_eq!(sim.node(i).unwrap().stats().tombstones, 1, "node {i}");
    }
    sim.run_for(secs(75));
    for &i in &nodes {
        let stats = sim.node(i).unwrap().stats();
        assert_eq!((stats.tombstones, stats.entries), (0, 0), "node {i}");
    }
}

#[test]
fn local_operations_check_their_preconditions() {
    let mut sim = Simulator::new(15, Faults::default());
    let i = sim.add_node(test_config());
    sim.with(i, |db, out| db.join_network(NET, out));
    create(&mut sim, i, "k", "v");
    let err = sim
        .with(i, |db, out| {
            db.create_entry(TABLE, NET, "k", b"v".to_vec(), out)
        })
        .unwrap_err();
    assert!(matches!(err, Error::EntryExists { .. }));
    sim.with(i, |db, out| db.delete_entry(TABLE, NET, "k", out))
        .unwrap();
    let err = sim
        .with(i, |db, out| db.delete_entry(TABLE, NET, "k", out))
        .unwrap_err();
    assert!(err.is_not_found());
    // A tombstone may be updated back to life and created again.
    sim.with(i, |db, out| {
        db.update_entry(TABLE, NET, "k", b"w".to_vec(), out)
    })
    .unwrap();
    let err = sim
        .with(i, |db, out| {
            db.update_entry(TABLE, NET, "nope", b"w".to_vec(), out)
        })
        .unwrap_err();
    assert!(err.is_not_found());
    let big = vec![0u8; 1 << 20];
    let err = sim
        .with(i, |db, out| db.create_entry(TABLE, NET, "big", big, out))
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }));
}

#[test]
fn an_entry_larger_than_a_packet_still_reaches_every_node() {
    let mut sim = Simulator::new(16, Faults::default());
    let nodes = cluster(&mut sim, 4, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    let big = "x".repeat(10_000);
    create(&mut sim, 0, "big", &big);
    sim.run_until(secs(5), ms(20), |s| {
        nodes
            .iter()
            .all(|&i| table_of(s, i).get("big").map(Vec::len) == Some(10_000))
    })
    .expect("large entry spread over streams");
}

fn keyed(key: u8) -> Config {
    Config {
        keys: vec![vec![key; 32]],
        ..test_config()
    }
}

#[test]
fn nodes_sharing_a_key_converge_and_a_node_without_it_is_shut_out() {
    let mut sim = Simulator::new(17, Faults::default());
    let nodes = cluster(&mut sim, 3, |_| keyed(1));
    join_network(&mut sim, &nodes, NET);
    create(&mut sim, 0, "secret", "v");
    sim.run_until(secs(5), ms(20), |s| {
        nodes.iter().all(|&i| table_of(s, i).contains_key("secret"))
    })
    .expect("encrypted cluster converged");

    let stranger = sim.add_node(keyed(2));
    sim.join(stranger, &[0]);
    sim.run_for(secs(10));
    assert_eq!(sim.node(stranger).unwrap().cluster_peers().len(), 1);
    assert!(
        sim.traffic(0).errors > 0,
        "node 0 rejected the stranger's packets"
    );
}

#[test]
fn rotating_the_primary_key_keeps_the_cluster_talking() {
    let mut sim = Simulator::new(18, Faults::default());
    let nodes = cluster(&mut sim, 3, |_| keyed(1));
    join_network(&mut sim, &nodes, NET);
    let new = vec![9u8; 16];
    for &i in &nodes {
        sim.with(i, |db, _| db.set_key(&new)).unwrap();
    }
    // Switch one node first: the others still open its packets with their secondary key.
    sim.with(0, |db, _| db.set_primary_key(&new)).unwrap();
    create(&mut sim, 0, "during", "v");
    sim.run_until(secs(5), ms(20), |s| {
        nodes.iter().all(|&i| table_of(s, i).contains_key("during"))
    })
    .expect("mixed primaries still converge");
    for &i in &nodes {
        sim.with(i, |db, _| db.set_primary_key(&new)).unwrap();
        sim.with(i, |db, _| db.remove_key(&[1u8; 32])).unwrap();
        assert_eq!(sim.node(i).unwrap().keys(), vec![new.clone()]);
    }
    create(&mut sim, 1, "after", "v");
    sim.run_until(secs(5), ms(20), |s| {
        nodes.iter().all(|&i| table_of(s, i).contains_key("after"))
    })
    .expect("converged on the new key alone");
    let before = sim.traffic(0).errors;
    sim.run_for(secs(5));
    assert_eq!(
        sim.traffic(0).errors,
        before,
        "no packet was rejected after rotation"
    );
}

#[test]
fn the_node_table_reports_joins() {
    let mut sim = Simulator::new(19, Faults::default());
    let _nodes = cluster(&mut sim, 2, |_| test_config());
    let other = sim.node(1).unwrap().name().to_string();
    let ev = sim
        .events(0)
        .iter()
        .find(|e| e.table == NODE_TABLE && e.key == other)
        .expect("join event");
    assert_eq!(ev.kind, EventKind::Create);
    assert_eq!(ev.value, br#"{"Addr":"127.0.0.2"}"#);
}

#[test]
fn members_missed_by_gossip_are_found_through_push_pull() {
    // Heavy loss and slow probing: SWIM's own dissemination leaves holes that only the
    // periodic exchange of membership fills in time.
    let config = || Config {
        probe_interval: secs(10),
        probe_timeout: secs(1),
        push_pull_interval: secs(2),
        ..test_config()
    };
    let faults = Faults {
        loss: 0.3,
        ..Faults::default()
    };
    let mut sim = Simulator::new(21, faults);
    let n = 40;
    for _ in 0..n {
        sim.add_node(config());
    }
    for i in 1..n {
        sim.join(i, &[0]);
    }
    sim.run_until(secs(30), ms(500), |s| {
        (0..n).all(|i| s.node(i).unwrap().cluster_size() == n)
    })
    .expect("full membership everywhere");
}

#[test]
fn concurrent_writes_with_equal_clocks_resolve_to_the_same_owner_everywhere() {
    let mut sim = Simulator::new(22, Faults::default());
    let nodes = cluster(&mut sim, 4, |_| test_config());
    join_network(&mut sim, &nodes, NET);
    let a = sim.node(0).unwrap().name().to_string();
    let b = sim.node(1).unwrap().name().to_string();
    let first = forged(&a, table_event::Type::Create, 500, "from-a");
    let second = forged(&b, table_event::Type::Create, 500, "from-b");
    // Node 2 hears a first, node 3 hears b first.
    for (node, order) in [(2, [&first, &second]), (3, [&second, &first])] {
        for p in order {
            sim.with(node, |db, out| db.handle_packet(p, out)).unwrap();
        }
    }
    let winner: &[u8] = if a > b { b"from-a" } else { b"from-b" };
    for node in [2, 3] {
        assert_eq!(
            sim.node(node).unwrap().get_entry(TABLE, NET, "k").unwrap(),
            winner
        );
    }
}
