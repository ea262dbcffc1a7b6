//! A deterministic cluster simulator for the sans-IO engine.
//!
//! Every node is a [`NetworkDb`] in one process. A virtual clock, a seeded random generator
//! and a priority queue of deliveries and timers drive them; the test decides how the
//! network misbehaves (loss, duplication, delay, partitions) and crashes or restarts nodes.
//! The same seed gives the same run, so a failing schedule can be replayed.
//!
//! Datagrams are lost with [`Faults::loss`] and duplicated with [`Faults::duplicate`]; every
//! delivery takes a uniformly random delay in [`Faults::min_delay`]..=[`Faults::max_delay`].
//! Streams are never lost, duplicated or reordered between two nodes while both are up and on
//! the same side of a partition (like TCP); across a partition or to a crashed node they are
//! dropped. Partitions are checked when a message arrives.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::config::{Config, DEFAULT_PORT};
use crate::engine::{Event, NetworkDb, Outbox, Output, Snapshot, Timer};

/// How the simulated network misbehaves.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Probability that a datagram is lost, 0.0..=1.0.
    pub loss: f64,
    /// Probability that a datagram is delivered twice, 0.0..=1.0.
    pub duplicate: f64,
    /// Shortest delivery delay.
    pub min_delay: Duration,
    /// Longest delivery delay.
    pub max_delay: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_micros(200),
            max_delay: Duration::from_millis(2),
        }
    }
}

/// Traffic counters of one simulated node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams sent.
    pub packets: u64,
    /// Bytes of datagrams sent.
    pub packet_bytes: u64,
    /// Stream messages sent.
    pub streams: u64,
    /// Bytes of stream messages sent.
    pub stream_bytes: u64,
    /// Size of the largest stream message sent.
    pub max_stream: u64,
    /// Received messages the engine rejected.
    pub errors: u64,
}

#[derive(Debug)]
enum Action {
    Packet {
        from: usize,
        to: SocketAddr,
        data: Vec<u8>,
    },
    Stream {
        from: usize,
        to: SocketAddr,
        data: Vec<u8>,
    },
    Timer {
        node: usize,
        generation: u64,
        timer: Timer,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Debug)]
struct SimNode {
    db: Option<NetworkDb>,
    addr: SocketAddr,
    generation: u64,
    events: Vec<Event>,
    traffic: Traffic,
}

/// A simulated cluster.
#[derive(Debug)]
pub struct Simulator {
    now: Duration,
    rng: StdRng,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, usize>,
    groups: Option<Vec<u32>>,
    // Last arrival time per (from, to) stream, to keep streams in order like TCP.
    stream_tail: HashMap<(usize, usize), Duration>,
    /// The network's behaviour; may be changed at any time.
    pub faults: Faults,
    /// Whether table events are kept per node (see [`Simulator::events`]).
    pub record_events: bool,
}

impl Simulator {
    /// An empty cluster whose randomness comes from `seed`.
    pub fn new(seed: u64, faults: Faults) -> Self {
        Self {
            now: Duration::ZERO,
            rng: StdRng::seed_from_u64(seed),
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            groups: None,
            stream_tail: HashMap::new(),
            faults,
            record_events: true,
        }
    }

    /// The virtual time since the simulation began.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Number of nodes ever added (crashed ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The virtual address of node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }

    /// Adds and starts a node; returns its index.
    ///
    /// # Panics
    /// If `config` is invalid.
    pub fn add_node(&mut self, config: Config) -> usize {
        let i = self.nodes.len();
        let n = u32::try_from(i).expect("fewer than 2^32 nodes") + 1;
        let ip = Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8);
        let addr = SocketAddr::new(IpAddr::V4(ip), DEFAULT_PORT);
        self.nodes.push(SimNode {
            db: None,
            addr,
            generation: 0,
            events: Vec::new(),
            traffic: Traffic::default(),
        });
        self.by_addr.insert(addr, i);
        self.boot(i, config);
        i
    }

    fn boot(&mut self, i: usize, mut config: Config) {
        // A restarted process starts from a larger epoch than any before it.
        config.epoch = config.epoch.max(self.now.as_millis() as u64 + 1);
        let seed = self.rng.random();
        let mut db = NetworkDb::new(config, self.nodes[i].addr, seed).expect("valid config");
        let mut out = Outbox::new();
        db.start(&mut out);
        self.nodes[i].generation += 1;
        self.nodes[i].db = Some(db);
        self.dispatch(i, &mut out);
    }

    /// Node `i`'s engine, if it is up.
    pub fn node(&self, i: usize) -> Option<&NetworkDb> {
        self.nodes[i].db.as_ref()
    }

    /// Indexes of the nodes that are up.
    pub fn up_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].db.is_some())
            .collect()
    }

    /// Calls `f` on node `i`'s engine and processes what it asked for.
    ///
    /// # Panics
    /// If node `i` is down.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut NetworkDb, &mut Outbox) -> R) -> R {
        let mut out = Outbox::new();
        let db = self.nodes[i].db.as_mut().expect("node is up");
        let r = f(db, &mut out);
        self.dispatch(i, &mut out);
        r
    }

    /// Makes node `i` join the cluster through `seeds`.
    pub fn join(&mut self, i: usize, seeds: &[usize]) {
        let seeds: Vec<SocketAddr> = seeds.iter().map(|&s| self.nodes[s].addr).collect();
        self.with(i, |db, out| db.join(&seeds, out))
            .expect("announce");
    }

    /// Stops node `i` without telling anyone (its pending timers and inbound messages are
    /// dropped).
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].db = None;
        self.nodes[i].generation += 1;
    }

    /// Starts a new process on node `i`'s address (a crashed or live one is replaced).
    pub fn restart(&mut self, i: usize, config: Config) {
        self.crash(i);
        self.nodes[i].events.clear();
        self.boot(i, config);
    }

    /// Cuts the network into the given groups; nodes in no group form one more group.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        let mut g = vec![u32::MAX; self.nodes.len()];
        for (gi, members) in groups.iter().enumerate() {
            for &m in *members {
                g[m] = gi as u32;
            }
        }
        self.groups = Some(g);
    }

    /// Removes any partition.
    pub fn heal(&mut self) {
        self.groups = None;
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        match &self.groups {
            None => true,
            Some(g) => {
                g.get(a).copied().unwrap_or(u32::MAX) == g.get(b).copied().unwrap_or(u32::MAX)
            }
        }
    }

    /// The table events node `i` reported since it (re)started.
    pub fn events(&self, i: usize) -> &[Event] {
        &self.nodes[i].events
    }

    /// Traffic counters of node `i`.
    pub fn traffic(&self, i: usize) -> Traffic {
        self.nodes[i].traffic
    }

    /// Zeroes every node's traffic counters.
    pub fn reset_traffic(&mut self) {
        for n in &mut self.nodes {
            n.traffic = Traffic::default();
        }
    }

    /// Every up node's live entries, keyed by node index.
    pub fn snapshots(&self) -> BTreeMap<usize, Snapshot> {
        self.up_nodes()
            .into_iter()
            .filter_map(|i| self.node(i).map(|db| (i, db.snapshot())))
            .collect()
    }

    fn delay(&mut self) -> Duration {
        let (lo, hi) = (self.faults.min_delay, self.faults.max_delay);
        if hi <= lo {
            return lo;
        }
        lo + (hi - lo).mul_f64(self.rng.random_range(0.0..1.0))
    }

    fn schedule(&mut self, at: Duration, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            action,
        }));
    }

    fn dispatch(&mut self, from: usize, out: &mut Outbox) {
        let outputs: Vec<Output> = out.drain().collect();
        for output in outputs {
            match output {
                Output::Packet { to, data } => {
                    let t = &mut self.nodes[from].traffic;
                    t.packets += 1;
                    t.packet_bytes += data.len() as u64;
                    if self.faults.loss > 0.0 && self.rng.random_bool(self.faults.loss.min(1.0)) {
                        continue;
                    }
                    if self.faults.duplicate > 0.0
                        && self.rng.random_bool(self.faults.duplicate.min(1.0))
                    {
                        let at = self.now + self.delay();
                        self.schedule(
                            at,
                            Action::Packet {
                                from,
                                to,
                                data: data.clone(),
                            },
                        );
                    }
                    let at = self.now + self.delay();
                    self.schedule(at, Action::Packet { from, to, data });
                }
                Output::Stream { to, data } => {
                    let t = &mut self.nodes[from].traffic;
                    t.streams += 1;
                    t.stream_bytes += data.len() as u64;
                    t.max_stream = t.max_stream.max(data.len() as u64);
                    let mut at = self.now + self.delay();
                    if let Some(&dst) = self.by_addr.get(&to) {
                        let tail = self.stream_tail.entry((from, dst)).or_default();
                        at = at.max(*tail);
                        *tail = at;
                    }
                    self.schedule(at, Action::Stream { from, to, data });
                }
                Output::Timer { after, timer } => {
                    let generation = self.nodes[from].generation;
                    self.schedule(
                        self.now + after,
                        Action::Timer {
                            node: from,
                            generation,
                            timer,
                        },
                    );
                }
                Output::Event(e) => {
                    if self.record_events {
                        self.nodes[from].events.push(e);
                    }
                }
            }
        }
    }

    /// Runs the next scheduled action; returns false when nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(Reverse(next)) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(next.at);
        let mut out = Outbox::new();
        let (node, result) = match next.action {
            Action::Timer {
                node,
                generation,
                timer,
            } => {
                if self.nodes[node].generation != generation {
                    return true;
                }
                let Some(db) = self.nodes[node].db.as_mut() else {
                    return true;
                };
                (node, db.handle_timer(timer, &mut out))
            }
            Action::Packet { from, to, data } | Action::Stream { from, to, data }
                if self
                    .by_addr
                    .get(&to)
                    .is_none_or(|&dst| !self.connected(from, dst)) =>
            {
                let _ = data;
                return true;
            }
            Action::Packet { to, data, .. } => {
                let dst = self.by_addr[&to];
                let Some(db) = self.nodes[dst].db.as_mut() else {
                    return true;
                };
                (dst, db.handle_packet(&data, &mut out))
            }
            Action::Stream { to, data, .. } => {
                let dst = self.by_addr[&to];
                let Some(db) = self.nodes[dst].db.as_mut() else {
                    return true;
                };
                (dst, db.handle_stream(&data, &mut out))
            }
        };
        if result.is_err() {
            self.nodes[node].traffic.errors += 1;
        }
        self.dispatch(node, &mut out);
        true
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.queue.peek().is_some_and(|Reverse(s)| s.at <= end) {
            self.step();
        }
        self.now = end;
    }

    /// Runs until `done` holds (checked every `every` of virtual time) or `limit` has passed;
    /// returns the virtual time it took, or `None` on timeout.
    pub fn run_until(
        &mut self,
        limit: Duration,
        every: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        loop {
            if done(self) {
                return Some(self.now - start);
            }
            if self.now - start >= limit {
                return None;
            }
            self.run_for(every);
        }
    }
}
