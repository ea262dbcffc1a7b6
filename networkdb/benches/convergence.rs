//! Simulated-cluster measurements: time for an entry to reach every node, traffic per node,
//! and a bulk sync of 100,000 entries.
//!
//! Run with `cargo bench -p libnetwork-networkdb --bench convergence` (add `-- 10 100` to
//! pick cluster sizes; the default is 10, 100 and 1000). Times marked "simulated" are on the
//! simulator's virtual clock at libnetwork's default intervals (gossip every 200 ms to 3
//! nodes); "wall" is how long the simulation took on this machine.

use std::time::{Duration, Instant};

use libnetwork_networkdb::Config;
use libnetwork_networkdb::sim::{Faults, Simulator, Traffic};

const NET: &str = "overlay";
const TABLE: &str = "endpoint_table";
const ENTRIES: usize = 10;

fn total(sim: &Simulator) -> Traffic {
    let mut t = Traffic::default();
    for i in 0..sim.len() {
        let n = sim.traffic(i);
        t.packets += n.packets;
        t.packet_bytes += n.packet_bytes;
        t.streams += n.streams;
        t.stream_bytes += n.stream_bytes;
        t.errors += n.errors;
    }
    t
}

fn per_node_per_sec(t: Traffic, nodes: usize, d: Duration) -> (f64, f64) {
    let scale = nodes as f64 * d.as_secs_f64();
    (
        (t.packets + t.streams) as f64 / scale,
        (t.packet_bytes + t.stream_bytes) as f64 / scale,
    )
}

fn cluster(n: usize) {
    let wall = Instant::now();
    let faults = Faults {
        loss: 0.01,
        duplicate: 0.0,
        min_delay: Duration::from_micros(200),
        max_delay: Duration::from_millis(2),
    };
    let mut sim = Simulator::new(42 + n as u64, faults);
    sim.record_events = false;
    for _ in 0..n {
        sim.add_node(Config::default());
    }
    // Join through a handful of seeds, as swarm workers join through managers.
    let seeds: Vec<usize> = (0..n.min(3)).collect();
    for i in 1..n {
        let seeds: Vec<usize> = seeds.iter().copied().filter(|&s| s != i).collect();
        sim.join(i, &seeds);
    }
    let formed = sim.run_until(Duration::from_secs(600), Duration::from_secs(1), |s| {
        (0..n).all(|i| s.node(i).unwrap().cluster_size() == n)
    });
    let Some(formed) = formed else {
        println!("n={n}: membership did not converge in 600 s simulated");
        return;
    };
    for i in 0..n {
        sim.with(i, |db, out| db.join_network(NET, out));
    }
    let attached = sim.run_until(Duration::from_secs(600), Duration::from_secs(1), |s| {
        (0..n).all(|i| s.node(i).unwrap().network_size(NET) == n)
    });
    let Some(attached) = attached else {
        println!("n={n}: network attachments did not converge in 600 s simulated");
        return;
    };

    // Let the attachment gossip drain so the measurement sees only the entries.
    let drained = sim.run_until(Duration::from_secs(300), Duration::from_secs(1), |s| {
        (0..n).all(|i| s.node(i).unwrap().stats().global_queue == 0)
    });
    let drained = drained.unwrap_or(Duration::MAX);
    let setup_wall = wall.elapsed();
    sim.reset_traffic();
    let start = sim.now();
    let mut times = Vec::with_capacity(ENTRIES);
    let spread_wall = Instant::now();
    for e in 0..ENTRIES {
        let owner = (e * 7919) % n;
        let key = format!("ep-{e}");
        sim.with(owner, |db, out| {
            db.create_entry(TABLE, NET, &key, vec![0xab; 100], out)
        })
        .expect("create");
        let took = sim.run_until(Duration::from_secs(60), Duration::from_millis(5), |s| {
            (0..n).all(|i| s.node(i).unwrap().get_entry(TABLE, NET, &key).is_ok())
        });
        times.push(took.unwrap_or(Duration::MAX));
    }
    let spread = sim.now() - start;
    let spread_wall = spread_wall.elapsed();
    let (msgs, bytes) = per_node_per_sec(total(&sim), n, spread);

    // Background load: probes, push/pull, bulk syncs, nothing new to spread.
    sim.reset_traffic();
    let idle = Duration::from_secs(60);
    sim.run_for(idle);
    let (idle_msgs, idle_bytes) = per_node_per_sec(total(&sim), n, idle);

    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "n={n:<5} entry reaches all nodes (simulated, {ENTRIES} entries): median {:.0} ms, max {:.0} ms",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap())
    );
    println!(
        "        while spreading: {msgs:.1} msgs/node/s, {bytes:.0} bytes/node/s; idle: {idle_msgs:.1} msgs/node/s, {idle_bytes:.0} bytes/node/s"
    );
    println!(
        "        setup (simulated): membership {:.0} s, attachments {:.0} s, queues drained {:.0} s; wall: setup {:.1} s, spread {:.2} s, total {:.1} s",
        formed.as_secs_f64(),
        attached.as_secs_f64(),
        drained.as_secs_f64(),
        setup_wall.as_secs_f64(),
        spread_wall.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
}

fn bulk_sync(entries: usize) {
    let mut sim = Simulator::new(7, Faults::default());
    sim.record_events = false;
    let a = sim.add_node(Config::default());
    let b = sim.add_node(Config::default());
    sim.join(b, &[a]);
    sim.run_for(Duration::from_secs(5));
    sim.with(a, |db, out| db.join_network(NET, out));
    for k in 0..entries {
        let key = format!("endpoint-{k:06}");
        sim.with(a, |db, out| {
            db.create_entry(TABLE, NET, &key, vec![0x5a; 64], out)
        })
        .expect("create");
    }
    sim.reset_traffic();
    let wall = Instant::now();
    sim.with(b, |db, out| db.join_network(NET, out));
    let took = sim.run_until(Duration::from_secs(60), Duration::from_millis(10), |s| {
        s.node(b).unwrap().stats().entries == entries
    });
    let wall = wall.elapsed();
    let t = sim.traffic(a);
    match took {
        Some(took) => println!(
            "bulk sync of {entries} entries: {} stream messages (largest {} bytes), {:.1} MB total, {:.0} ms simulated, {:.2} s wall",
            t.streams,
            t.max_stream,
            t.stream_bytes as f64 / 1e6,
            took.as_secs_f64() * 1000.0,
            wall.as_secs_f64()
        ),
        None => println!("bulk sync of {entries} entries did not complete"),
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1000]
    } else {
        sizes
    };
    for n in sizes {
        cluster(n);
    }
    bulk_sync(100_000);
}
