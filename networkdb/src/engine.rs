//! The sans-IO networkdb engine.
//!
//! [`NetworkDb`] holds one node's tables, network attachments, node list, Lamport clocks and
//! broadcast queues, plus a foca (SWIM) instance for membership and failure detection. It does
//! no I/O: the caller feeds it received datagrams ([`NetworkDb::handle_packet`]), received
//! stream messages ([`NetworkDb::handle_stream`]) and expired timers
//! ([`NetworkDb::handle_timer`]), and after every call drains an [`Outbox`] of datagrams and
//! stream messages to send, timers to set and table events for watchers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
use tracing::{debug, info, trace};

use crate::clock::LamportClock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::keyring::{Keyring, SEAL_OVERHEAD};
use crate::member::Member;
use crate::proto::{
    BulkSyncMessage, NetworkEntry, NetworkEvent, NetworkPushPull, NodeEvent, TableEvent,
    network_event, node_event, table_event,
};
use crate::queue::{BroadcastQueue, QueueKey, retransmit_limit};
use crate::wire::{
    self, KIND_FOCA, KIND_GOSSIP, Message, compound_cost, compound_envelope_cost, encode_compound,
};

/// The table on which node joins and departures are reported (libnetwork's `NodeTable`); its
/// network is the empty string, its keys are node names and its values `{"Addr":"<ip>"}`.
pub const NODE_TABLE: &str = "NodeTable";

type Swim = Foca<Member, PostcardCodec, StdRng, NoCustomBroadcast>;

/// Something the engine asks its driver to do, or reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a datagram (UDP) to `to`; loss is tolerated.
    Packet {
        /// Destination.
        to: SocketAddr,
        /// The datagram, at most [`Config::packet_size`] bytes.
        data: Vec<u8>,
    },
    /// Send a message reliably (TCP) to `to`, delivered whole to
    /// [`NetworkDb::handle_stream`].
    Stream {
        /// Destination.
        to: SocketAddr,
        /// The message.
        data: Vec<u8>,
    },
    /// Call [`NetworkDb::handle_timer`] with `timer` after `after`.
    Timer {
        /// Delay.
        after: Duration,
        /// What to hand back.
        timer: Timer,
    },
    /// A table entry was created, updated or deleted in this node's view.
    Event(Event),
}

/// The outputs of one engine call, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    items: Vec<Output>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every output queued so far.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Output> {
        self.items.drain(..)
    }

    /// Number of queued outputs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn push(&mut self, output: Output) {
        self.items.push(output);
    }
}

/// A timer the engine asked for; hand it back to [`NetworkDb::handle_timer`] when it expires.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer(TimerKind);

#[derive(Debug, Clone, PartialEq)]
enum TimerKind {
    Gossip,
    BulkSync,
    PushPull,
    Reap,
    Reconnect,
    Swim(foca::Timer<Member>),
}

/// What happened to a table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The entry appeared (or came back after a delete).
    Create,
    /// The entry's value changed.
    Update,
    /// The entry was deleted, or its owner failed or left.
    Delete,
}

/// A change to a table entry, as watchers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The table.
    pub table: String,
    /// The network.
    pub network: String,
    /// The key.
    pub key: String,
    /// The value (for a delete, the last value).
    pub value: Vec<u8>,
}

/// Selects events by table, network and key; `None` matches anything (libnetwork's wildcard).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchFilter {
    /// Only this table.
    pub table: Option<String>,
    /// Only this network.
    pub network: Option<String>,
    /// Only this key.
    pub key: Option<String>,
}

impl WatchFilter {
    /// True when `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.table.as_ref().is_none_or(|t| *t == event.table)
            && self.network.as_ref().is_none_or(|n| *n == event.network)
            && self.key.as_ref().is_none_or(|k| *k == event.key)
    }
}

/// A live entry as [`NetworkDb::get_table`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableElem {
    /// The value.
    pub value: Vec<u8>,
    /// The node that wrote it last.
    pub owner: String,
}

/// A cluster or network peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The node's name.
    pub name: String,
    /// Its address, if known (libnetwork prints `unknown` otherwise).
    pub addr: Option<SocketAddr>,
}

/// Where a known node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Alive and a member of the cluster.
    Active,
    /// Left the cluster cleanly (or was replaced by a new process on its address).
    Left,
    /// Declared down by failure detection.
    Failed,
}

/// Counters describing a node's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live entries.
    pub entries: usize,
    /// Deleted entries not reaped yet.
    pub tombstones: usize,
    /// Events waiting in the cluster-wide queue.
    pub global_queue: usize,
    /// Events waiting in the per-network queues.
    pub network_queues: usize,
}

#[derive(Debug)]
struct NodeRecord {
    member: Member,
    state: NodeState,
    ltime: u64,
    reap_left: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Attachment {
    ltime: u64,
    leaving: bool,
    reap_left: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Entry {
    owner: String,
    ltime: u64,
    value: Vec<u8>,
    deleting: bool,
    reap_left: Duration,
}

#[derive(Debug, Default)]
struct OwnNetwork {
    queue: BroadcastQueue,
    // How many more newly learned members to bulk-sync with (a join that found too few).
    sync_budget: usize,
}

type EntryKey = (String, String, String);

/// Every live entry of a node as `(network, table, key) -> (owner, value)`.
pub type Snapshot = BTreeMap<(String, String, String), (String, Vec<u8>)>;

/// One networkdb node: the sans-IO engine.
pub struct NetworkDb {
    config: Config,
    name: String,
    swim: Swim,
    swim_rt: AccumulatingRuntime<Member>,
    swim_scale: u32,
    rng: StdRng,
    keyring: Keyring,
    network_clock: LamportClock,
    table_clock: LamportClock,
    nodes: BTreeMap<String, NodeRecord>,
    // network -> node -> attachment, this node included.
    attachments: BTreeMap<String, BTreeMap<String, Attachment>>,
    // (network, table, key) -> entry
    entries: BTreeMap<EntryKey, Entry>,
    own: BTreeMap<String, OwnNetwork>,
    global_queue: BroadcastQueue,
    push_pull_on_join: bool,
    bootstrap: Vec<SocketAddr>,
    reconnect_ticks: u64,
    left: bool,
}

impl std::fmt::Debug for NetworkDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkDb")
            .field("name", &self.name)
            .field("member", self.swim.identity())
            .field("nodes", &self.nodes.len())
            .field("networks", &self.own.keys().collect::<Vec<_>>())
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl NetworkDb {
    /// A node that will listen on `addr`, with its randomness seeded by `seed` (give each node
    /// a different seed; the simulator derives them from its own seed).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] or [`Error::InvalidKey`] for a bad configuration.
    pub fn new(config: Config, addr: SocketAddr, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let name = match &config.node_name {
            Some(name) => name.clone(),
            None => {
                let id: u64 = rng.random();
                format!("{:012x}", id & 0xffff_ffff_ffff)
            }
        };
        let keyring = Keyring::new(&config.keys)?;
        let member = Member {
            name: name.clone(),
            addr,
            epoch: config.epoch,
        };
        let swim_scale = 1;
        let swim = Foca::new(
            member,
            swim_config(&config, 10),
            StdRng::seed_from_u64(rng.random()),
            PostcardCodec,
        );
        Ok(Self {
            config,
            name,
            swim,
            swim_rt: AccumulatingRuntime::new(),
            swim_scale,
            rng,
            keyring,
            network_clock: LamportClock::default(),
            table_clock: LamportClock::default(),
            nodes: BTreeMap::new(),
            attachments: BTreeMap::new(),
            entries: BTreeMap::new(),
            own: BTreeMap::new(),
            global_queue: BroadcastQueue::default(),
            push_pull_on_join: false,
            bootstrap: Vec::new(),
            reconnect_ticks: 0,
            left: false,
        })
    }

    /// This node's name (the owner name of its entries).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This node's current membership identity.
    pub fn member(&self) -> &Member {
        self.swim.identity()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The network Lamport clock (node and attachment events).
    pub fn network_clock(&self) -> u64 {
        self.network_clock.time()
    }

    /// The table Lamport clock (entry events).
    pub fn table_clock(&self) -> u64 {
        self.table_clock.time()
    }

    /// Schedules the periodic tasks, each after a random stagger within its period. Call once,
    /// before anything else.
    pub fn start(&mut self, out: &mut Outbox) {
        let periodic = [
            (TimerKind::Gossip, self.config.gossip_interval),
            (TimerKind::BulkSync, self.config.bulk_sync_interval),
            (TimerKind::PushPull, self.config.push_pull_interval),
            (TimerKind::Reap, self.config.reap_period),
            (TimerKind::Reconnect, self.config.reconnect_interval),
        ];
        for (kind, period) in periodic {
            let after = period.mul_f64(self.rng.random_range(0.0..1.0));
            out.push(Output::Timer {
                after,
                timer: Timer(kind),
            });
        }
    }

    /// Joins the cluster through any of `seeds` (libnetwork's `Join`): announces this node to
    /// each, then exchanges network attachments with the first that answers.
    ///
    /// # Errors
    /// [`Error::Membership`] if foca refused to announce; nothing was sent.
    pub fn join(&mut self, seeds: &[SocketAddr], out: &mut Outbox) -> Result<()> {
        let me = self.swim.identity().addr;
        self.push_pull_on_join = true;
        self.bootstrap = seeds.iter().copied().filter(|&s| s != me).collect();
        let ltime = self.network_clock.increment();
        let event = NodeEvent {
            r#type: node_event::Type::Join as i32,
            l_time: ltime,
            node_name: self.name.clone(),
        };
        let key = self.global_queue.unique_key();
        self.global_queue.push(key, Message::Node(event).encode());
        let result = self.announce_bootstrap(out);
        info!(node = %self.name, seeds = seeds.len(), "joining cluster");
        result
    }

    fn announce_bootstrap(&mut self, out: &mut Outbox) -> Result<()> {
        let mut result = Ok(());
        for seed in self.bootstrap.clone() {
            let target = Member {
                name: String::new(),
                addr: seed,
                epoch: 0,
            };
            if let Err(e) = self.swim.announce(target, &mut self.swim_rt) {
                result = Err(Error::Membership(format!("announce to {seed}: {e}")));
            }
        }
        self.drain_swim(out);
        result
    }

    /// Leaves the cluster cleanly (libnetwork's `Close`): tells a few nodes, then goes quiet.
    /// The engine should be dropped afterwards.
    ///
    /// # Errors
    /// [`Error::Membership`] if foca failed to announce the departure.
    pub fn leave(&mut self, out: &mut Outbox) -> Result<()> {
        let ltime = self.network_clock.increment();
        let event = Message::Node(NodeEvent {
            r#type: node_event::Type::Leave as i32,
            l_time: ltime,
            node_name: self.name.clone(),
        })
        .encode();
        let targets = self.pick(self.active_nodes(), self.config.gossip_nodes.get());
        for to in targets {
            self.send_packet(to, encode_compound(vec![event.clone()]), out);
        }
        let result = self
            .swim
            .leave_cluster(&mut self.swim_rt)
            .map_err(|e| Error::Membership(format!("leave cluster: {e}")));
        self.drain_swim(out);
        self.left = true;
        info!(node = %self.name, "left cluster");
        result
    }

    // ----- receiving -----

    /// Handles a received datagram.
    ///
    /// # Errors
    /// [`Error::Decrypt`], [`Error::Decode`] or [`Error::Membership`] for a bad datagram, which
    /// is dropped. Valid messages before a bad one in a compound are applied.
    pub fn handle_packet(&mut self, data: &[u8], out: &mut Outbox) -> Result<()> {
        if self.left {
            return Ok(());
        }
        if data.len() > self.config.packet_size.get() {
            return Err(Error::decode("packet", "larger than packet_size"));
        }
        let plain = self.keyring.open(data)?;
        let Some((&kind, body)) = plain.split_first() else {
            return Err(Error::decode("packet", "empty"));
        };
        match kind {
            KIND_FOCA => {
                let result = self
                    .swim
                    .handle_data(body, &mut self.swim_rt)
                    .map_err(|e| Error::Membership(format!("handle packet: {e}")));
                self.drain_swim(out);
                result
            }
            KIND_GOSSIP => {
                for msg in wire::decode(body)? {
                    self.handle_message(msg, out)?;
                }
                Ok(())
            }
            other => Err(Error::decode("packet", format!("unknown kind {other}"))),
        }
    }

    /// Handles a message received over a stream.
    ///
    /// # Errors
    /// [`Error::Decrypt`] or [`Error::Decode`] for a bad message, which is dropped.
    pub fn handle_stream(&mut self, data: &[u8], out: &mut Outbox) -> Result<()> {
        if self.left {
            return Ok(());
        }
        let plain = self.keyring.open(data)?;
        for msg in wire::decode(&plain)? {
            self.handle_message(msg, out)?;
        }
        Ok(())
    }

    /// Handles an expired timer.
    ///
    /// # Errors
    /// [`Error::Membership`] if foca failed while handling its timer.
    pub fn handle_timer(&mut self, timer: Timer, out: &mut Outbox) -> Result<()> {
        if self.left {
            return Ok(());
        }
        let again = |kind: TimerKind, after: Duration, out: &mut Outbox| {
            out.push(Output::Timer {
                after,
                timer: Timer(kind),
            });
        };
        match timer.0 {
            TimerKind::Gossip => {
                self.gossip(out);
                again(TimerKind::Gossip, self.config.gossip_interval, out);
            }
            TimerKind::BulkSync => {
                self.periodic_bulk_sync(out);
                again(TimerKind::BulkSync, self.config.bulk_sync_interval, out);
            }
            TimerKind::PushPull => {
                let picked = self.pick(self.active_nodes(), 1);
                for to in picked {
                    self.send_push_pull(to, true, out);
                }
                again(TimerKind::PushPull, self.config.push_pull_interval, out);
            }
            TimerKind::Reap => {
                self.reap();
                again(TimerKind::Reap, self.config.reap_period, out);
            }
            TimerKind::Reconnect => {
                self.reconnect(out);
                again(TimerKind::Reconnect, self.config.reconnect_interval, out);
            }
            TimerKind::Swim(t) => {
                let result = self
                    .swim
                    .handle_timer(t, &mut self.swim_rt)
                    .map_err(|e| Error::Membership(format!("handle timer: {e}")));
                self.drain_swim(out);
                return result;
            }
        }
        Ok(())
    }

    fn handle_message(&mut self, msg: Message, out: &mut Outbox) -> Result<()> {
        match msg {
            Message::Node(ev) => self.handle_node_event(ev, out),
            Message::Network(ev) => self.handle_network_event(ev, out),
            Message::Table(ev) => self.apply_table_event(ev, false, out),
            Message::PushPull(pp) => {
                self.handle_push_pull(pp, out);
                Ok(())
            }
            Message::BulkSync(bs) => self.handle_bulk_sync(bs, out),
        }
    }

    // ----- membership (foca) -----

    fn drain_swim(&mut self, out: &mut Outbox) {
        loop {
            let mut progressed = false;
            while let Some((to, data)) = self.swim_rt.to_send() {
                progressed = true;
                let mut plain = Vec::with_capacity(data.len() + 1);
                plain.push(KIND_FOCA);
                plain.extend_from_slice(&data);
                let sealed = self.keyring.seal(&mut self.rng, plain);
                out.push(Output::Packet {
                    to: to.addr,
                    data: sealed,
                });
            }
            while let Some((after, timer)) = self.swim_rt.to_schedule() {
                progressed = true;
                out.push(Output::Timer {
                    after,
                    timer: Timer(TimerKind::Swim(timer)),
                });
            }
            while let Some(note) = self.swim_rt.to_notify() {
                progressed = true;
                self.on_swim_notification(note, out);
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_swim_notification(&mut self, note: OwnedNotification<Member>, out: &mut Outbox) {
        match note {
            OwnedNotification::MemberUp(m) => self.node_up(m, out),
            OwnedNotification::MemberDown(m) => {
                // A node that announced its departure stays "left", not "failed".
                let current = self
                    .nodes
                    .get(&m.name)
                    .is_some_and(|r| r.member == m && r.state == NodeState::Active);
                if current {
                    info!(node = %self.name, peer = %m.name, "node failed");
                    self.node_gone(&m.name, NodeState::Failed, out);
                }
            }
            OwnedNotification::Rename(old, new) => {
                if old.name != new.name {
                    // A new process on the old one's address: the old node is gone for good.
                    if self.nodes.get(&old.name).is_some_and(|r| r.member == old) {
                        info!(node = %self.name, old = %old.name, new = %new.name, "node reincarnated");
                        self.node_gone(&old.name, NodeState::Left, out);
                    }
                } else if let Some(rec) = self.nodes.get_mut(&old.name) {
                    rec.member = new.clone();
                }
                // Foca reports no MemberUp when the replaced identity was active too.
                if self.swim.iter_members().any(|m| *m.id() == new) {
                    self.node_up(new, out);
                }
            }
            OwnedNotification::Rejoin(me) => {
                info!(node = %self.name, epoch = me.epoch, "rejoined cluster with a renewed identity");
            }
            OwnedNotification::Defunct => {
                info!(node = %self.name, "declared down by the cluster");
            }
            other => trace!(node = %self.name, note = ?other, "membership notification"),
        }
        self.rescale_swim();
    }

    fn node_up(&mut self, m: Member, out: &mut Outbox) {
        if m.name == self.name {
            return;
        }
        let name = m.name.clone();
        let addr = m.addr;
        let returning = match self.nodes.get_mut(&name) {
            Some(rec) => {
                rec.member = m;
                let was = rec.state;
                rec.state = NodeState::Active;
                rec.reap_left = None;
                was != NodeState::Active
            }
            None => {
                self.nodes.insert(
                    name.clone(),
                    NodeRecord {
                        member: m,
                        state: NodeState::Active,
                        ltime: 0,
                        reap_left: None,
                    },
                );
                true
            }
        };
        if !returning {
            return;
        }
        debug!(node = %self.name, peer = %name, "node up");
        self.emit(
            EventKind::Create,
            NODE_TABLE,
            "",
            &name,
            format!("{{\"Addr\":\"{}\"}}", addr.ip()).into_bytes(),
            out,
        );
        // Another name on the same address is an earlier incarnation of this process.
        let stale: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, r)| **n != name && r.member.addr == addr && r.state == NodeState::Active)
            .map(|(n, _)| n.clone())
            .collect();
        for old in stale {
            self.node_gone(&old, NodeState::Left, out);
        }
        if self.push_pull_on_join {
            self.push_pull_on_join = false;
            self.send_push_pull(addr, true, out);
        }
        // A node we already knew came back (after a failure or a partition): exchange
        // attachments and the entries of the networks we share, since we dropped its entries.
        let shared = self.shared_networks(&name);
        if !shared.is_empty() {
            self.send_push_pull(addr, true, out);
            self.send_bulk_sync(addr, shared, true, out);
        }
        // Networks joined while nobody was known yet sync with the first members found.
        let hungry: Vec<String> = self
            .own
            .iter()
            .filter(|(nid, n)| n.sync_budget > 0 && self.is_member(nid, &name))
            .map(|(nid, _)| nid.clone())
            .collect();
        for nid in hungry {
            self.sync_new_member(&nid, &name, out);
        }
    }

    /// Moves a node to `Left` or `Failed` and drops its entries (watchers get deletes).
    fn node_gone(&mut self, name: &str, state: NodeState, out: &mut Outbox) {
        let Some(rec) = self.nodes.get_mut(name) else {
            return;
        };
        if rec.state == state {
            return;
        }
        let was_active = rec.state == NodeState::Active;
        rec.state = state;
        if rec.reap_left.is_none() {
            rec.reap_left = Some(self.config.node_reap_interval);
        }
        if !was_active {
            return;
        }
        let addr = rec.member.addr;
        let owned: Vec<EntryKey> = self
            .entries
            .iter()
            .filter(|(_, e)| e.owner == name)
            .map(|(k, _)| k.clone())
            .collect();
        for key in owned {
            if let Some(e) = self.entries.remove(&key)
                && !e.deleting
            {
                self.emit(EventKind::Delete, &key.1, &key.0, &key.2, e.value, out);
            }
        }
        self.emit(
            EventKind::Delete,
            NODE_TABLE,
            "",
            name,
            format!("{{\"Addr\":\"{}\"}}", addr.ip()).into_bytes(),
            out,
        );
    }

    fn rescale_swim(&mut self) {
        let n = self.swim.num_members() + 1;
        let scale = digits(n);
        if scale != self.swim_scale {
            self.swim_scale = scale;
            // Size foca for the next power of ten, so a growing cluster keeps spreading news.
            let size = 10u32.saturating_pow(scale);
            // Only the scaled fields change, which foca always accepts.
            let _ = self.swim.set_config(swim_config(&self.config, size));
        }
    }

    fn reconnect(&mut self, out: &mut Outbox) {
        self.reconnect_ticks += 1;
        // The join announce is one datagram: repeat it until someone answers. Once a minute,
        // also rejoin the bootstrap nodes if none of them is active (heals split islands, as
        // libnetwork's rejoin loop does).
        let alone = self.swim.num_members() == 0;
        let rejoin_every = (Duration::from_secs(60).as_millis()
            / self.config.reconnect_interval.as_millis().max(1))
        .max(1) as u64;
        let islanded = self.reconnect_ticks.is_multiple_of(rejoin_every)
            && !self.bootstrap.iter().any(|a| {
                self.nodes
                    .values()
                    .any(|r| r.member.addr == *a && r.state == NodeState::Active)
            });
        if !self.bootstrap.is_empty() && (alone || islanded) {
            let _ = self.announce_bootstrap(out);
        }
        let failed: Vec<Member> = self
            .nodes
            .values()
            .filter(|r| r.state == NodeState::Failed)
            .map(|r| r.member.clone())
            .collect();
        if failed.is_empty() {
            return;
        }
        let target = failed[self.rng.random_range(0..failed.len())].clone();
        debug!(node = %self.name, peer = %target.name, "reconnecting to failed node");
        // Announcing to our last view of it: if either side thinks the other is down, foca
        // answers with TurnUndead and the side that was declared down renews its identity.
        let _ = self.swim.announce(target, &mut self.swim_rt);
        self.drain_swim(out);
    }

    fn handle_node_event(&mut self, ev: NodeEvent, out: &mut Outbox) -> Result<()> {
        self.network_clock.witness(ev.l_time);
        let kind = ev.r#type();
        if kind == node_event::Type::Invalid {
            return Err(Error::decode("node event", "invalid type"));
        }
        if ev.node_name == self.name {
            return Ok(());
        }
        let Some(rec) = self.nodes.get(&ev.node_name) else {
            return Ok(());
        };
        if ev.l_time <= rec.ltime {
            return Ok(());
        }
        let state = rec.state;
        let changed = match kind {
            node_event::Type::Leave => state != NodeState::Left,
            _ => {
                state != NodeState::Active
                    && self
                        .swim
                        .iter_members()
                        .any(|m| m.id().name == ev.node_name)
            }
        };
        if let Some(rec) = self.nodes.get_mut(&ev.node_name) {
            rec.ltime = ev.l_time;
        }
        if changed {
            match kind {
                node_event::Type::Leave => {
                    info!(node = %self.name, peer = %ev.node_name, "node left");
                    self.node_gone(&ev.node_name, NodeState::Left, out);
                }
                _ => {
                    if let Some(rec) = self.nodes.get_mut(&ev.node_name) {
                        rec.state = NodeState::Active;
                        rec.reap_left = None;
                    }
                }
            }
            let key = self.global_queue.unique_key();
            self.global_queue.push(key, Message::Node(ev).encode());
        }
        Ok(())
    }

    // ----- networks -----

    /// Joins a network (libnetwork's `JoinNetwork`): announces the attachment and bulk-syncs
    /// with up to [`Config::join_sync_nodes`] known members (or with the first ones learned
    /// later). Joining a joined network does nothing.
    pub fn join_network(&mut self, nid: &str, out: &mut Outbox) {
        if self.own.contains_key(nid) {
            return;
        }
        let ltime = self.network_clock.increment();
        self.attachments.entry(nid.to_string()).or_default().insert(
            self.name.clone(),
            Attachment {
                ltime,
                leaving: false,
                reap_left: None,
            },
        );
        self.queue_network_event(nid, network_event::Type::Join, ltime);
        let members = self.network_members(nid);
        let picked = self.pick(members, self.config.join_sync_nodes.get());
        let synced = picked.len();
        self.own.insert(
            nid.to_string(),
            OwnNetwork {
                queue: BroadcastQueue::default(),
                sync_budget: self.config.join_sync_nodes.get() - synced,
            },
        );
        for to in picked {
            self.send_bulk_sync(to, vec![nid.to_string()], true, out);
        }
        info!(node = %self.name, network = nid, synced, "joined network");
    }

    /// Leaves a network (libnetwork's `LeaveNetwork`): announces the departure, turns this
    /// node's entries in it into tombstones and drops everyone else's (watchers get deletes).
    ///
    /// # Errors
    /// [`Error::NetworkNotJoined`] if the network is not joined; nothing changed.
    pub fn leave_network(&mut self, nid: &str, out: &mut Outbox) -> Result<()> {
        if self.own.remove(nid).is_none() {
            return Err(Error::NetworkNotJoined {
                op: "leave network",
                network: nid.to_string(),
            });
        }
        let ltime = self.network_clock.increment();
        self.attachments.entry(nid.to_string()).or_default().insert(
            self.name.clone(),
            Attachment {
                ltime,
                leaving: true,
                reap_left: Some(self.config.reap_network_interval()),
            },
        );
        self.queue_network_event(nid, network_event::Type::Leave, ltime);
        let keys: Vec<EntryKey> = self.network_entry_keys(nid);
        for key in keys {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            let was_live = !e.deleting;
            let value = e.value.clone();
            if e.owner == self.name {
                if was_live {
                    e.deleting = true;
                    e.ltime = self.table_clock.increment();
                    e.reap_left = self.config.reap_entry_interval;
                }
            } else {
                self.entries.remove(&key);
            }
            if was_live {
                self.emit(EventKind::Delete, &key.1, &key.0, &key.2, value, out);
            }
        }
        info!(node = %self.name, network = nid, "left network");
        Ok(())
    }

    fn queue_network_event(&mut self, nid: &str, kind: network_event::Type, ltime: u64) {
        let ev = NetworkEvent {
            r#type: kind as i32,
            l_time: ltime,
            node_name: self.name.clone(),
            network_id: nid.to_string(),
        };
        self.global_queue.push(
            QueueKey::Network {
                network: nid.to_string(),
                node: self.name.clone(),
            },
            Message::Network(ev).encode(),
        );
    }

    fn handle_network_event(&mut self, ev: NetworkEvent, out: &mut Outbox) -> Result<()> {
        self.network_clock.witness(ev.l_time);
        let leaving = match ev.r#type() {
            network_event::Type::Join => false,
            network_event::Type::Leave => true,
            network_event::Type::Invalid => {
                return Err(Error::decode("network event", "invalid type"));
            }
        };
        if self.apply_attachment(&ev.network_id, &ev.node_name, ev.l_time, leaving, out) {
            self.global_queue.push(
                QueueKey::Network {
                    network: ev.network_id.clone(),
                    node: ev.node_name.clone(),
                },
                Message::Network(ev).encode(),
            );
        }
        Ok(())
    }

    /// Records a node's attachment change if it is newer than what is known; returns whether
    /// it was.
    fn apply_attachment(
        &mut self,
        nid: &str,
        node: &str,
        ltime: u64,
        leaving: bool,
        out: &mut Outbox,
    ) -> bool {
        if node == self.name || nid.is_empty() || node.is_empty() {
            return false;
        }
        let known = self.attachments.get(nid).and_then(|m| m.get(node));
        if known.is_some_and(|a| a.ltime >= ltime) {
            return false;
        }
        let was_member = known.is_some_and(|a| !a.leaving);
        self.attachments.entry(nid.to_string()).or_default().insert(
            node.to_string(),
            Attachment {
                ltime,
                leaving,
                reap_left: leaving.then(|| self.config.reap_network_interval()),
            },
        );
        if leaving && was_member {
            self.tombstone_node_entries(nid, node, out);
        }
        if !leaving && !was_member && self.is_active(node) {
            self.sync_new_member(nid, node, out);
        }
        true
    }

    /// A node joined a network we are in; bulk-sync with it if our own join found too few
    /// members to sync with.
    fn sync_new_member(&mut self, nid: &str, node: &str, out: &mut Outbox) {
        let Some(own) = self.own.get_mut(nid) else {
            return;
        };
        if own.sync_budget == 0 {
            return;
        }
        own.sync_budget -= 1;
        if let Some(addr) = self.nodes.get(node).map(|r| r.member.addr) {
            self.send_bulk_sync(addr, vec![nid.to_string()], true, out);
        }
    }

    fn tombstone_node_entries(&mut self, nid: &str, node: &str, out: &mut Outbox) {
        let keys = self.network_entry_keys(nid);
        let reap = self.config.reap_entry_interval;
        for key in keys {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if e.owner != node || e.deleting {
                continue;
            }
            e.deleting = true;
            e.reap_left = reap;
            let value = e.value.clone();
            self.emit(EventKind::Delete, &key.1, &key.0, &key.2, value, out);
        }
    }

    fn handle_push_pull(&mut self, pp: NetworkPushPull, out: &mut Outbox) {
        self.network_clock.witness(pp.l_time);
        // Merge the sender's membership first, so its attachments find their nodes.
        if !pp.members.is_empty() {
            match postcard::from_bytes::<Vec<foca::Member<Member>>>(&pp.members) {
                Ok(members) => {
                    if let Err(e) =
                        self.swim
                            .apply_many(members.into_iter(), false, &mut self.swim_rt)
                    {
                        debug!(node = %self.name, error = %e, "merging pushed membership failed");
                    }
                    self.drain_swim(out);
                }
                Err(e) => debug!(node = %self.name, error = %e, "undecodable pushed membership"),
            }
        }
        for n in &pp.networks {
            self.apply_attachment(&n.network_id, &n.node_name, n.l_time, n.leaving, out);
        }
        if pp.join
            && let Some(addr) = self.active_addr(&pp.node_name)
        {
            self.send_push_pull(addr, false, out);
        }
    }

    fn send_push_pull(&mut self, to: SocketAddr, join: bool, out: &mut Outbox) {
        let mut networks = Vec::new();
        for (nid, nodes) in &self.attachments {
            for (node, a) in nodes {
                if *node != self.name && !self.is_active(node) {
                    continue;
                }
                networks.push(NetworkEntry {
                    network_id: nid.clone(),
                    l_time: a.ltime,
                    node_name: node.clone(),
                    leaving: a.leaving,
                });
            }
        }
        let members: Vec<&foca::Member<Member>> = self.swim.iter_membership_state().collect();
        let members = postcard::to_allocvec(&members).unwrap_or_default();
        let pp = NetworkPushPull {
            l_time: self.network_clock.time(),
            networks,
            node_name: self.name.clone(),
            join,
            members,
        };
        self.send_stream(to, Message::PushPull(pp).encode(), out);
    }

    // ----- table entries -----

    /// Creates an entry owned by this node (libnetwork's `CreateEntry`) and gossips it if
    /// this node is in the network (otherwise it stays local, as in libnetwork).
    ///
    /// # Errors
    /// [`Error::EntryExists`] if a live entry exists, [`Error::ValueTooLarge`] if the value
    /// exceeds half of [`Config::max_stream_message`]. Nothing changed on error.
    pub fn create_entry(
        &mut self,
        table: &str,
        nid: &str,
        key: &str,
        value: Vec<u8>,
        out: &mut Outbox,
    ) -> Result<()> {
        self.check_value(&value)?;
        let k = entry_key(nid, table, key);
        if self.entries.get(&k).is_some_and(|e| !e.deleting) {
            return Err(Error::EntryExists {
                table: table.into(),
                network: nid.into(),
                key: key.into(),
            });
        }
        self.write_local(k, table_event::Type::Create, value, out);
        Ok(())
    }

    /// Replaces an entry's value (libnetwork's `UpdateEntry`); the entry must exist, even as
    /// a tombstone, and this node becomes its owner.
    ///
    /// # Errors
    /// [`Error::EntryNotFound`] if there is no such entry, [`Error::ValueTooLarge`] for a value
    /// over half of [`Config::max_stream_message`]. Nothing changed on error.
    pub fn update_entry(
        &mut self,
        table: &str,
        nid: &str,
        key: &str,
        value: Vec<u8>,
        out: &mut Outbox,
    ) -> Result<()> {
        self.check_value(&value)?;
        let k = entry_key(nid, table, key);
        if !self.entries.contains_key(&k) {
            return Err(not_found("update", table, nid, key));
        }
        self.write_local(k, table_event::Type::Update, value, out);
        Ok(())
    }

    /// Deletes a live entry (libnetwork's `DeleteEntry`): it becomes a tombstone, reaped after
    /// [`Config::reap_entry_interval`].
    ///
    /// # Errors
    /// [`Error::EntryNotFound`] if there is no live entry; nothing changed.
    pub fn delete_entry(
        &mut self,
        table: &str,
        nid: &str,
        key: &str,
        out: &mut Outbox,
    ) -> Result<()> {
        let k = entry_key(nid, table, key);
        let Some(e) = self.entries.get(&k).filter(|e| !e.deleting) else {
            return Err(not_found("delete", table, nid, key));
        };
        let value = e.value.clone();
        self.write_local(k, table_event::Type::Delete, value, out);
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<()> {
        let max = self.config.max_stream_message.get() / 2;
        if value.len() > max {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max,
            });
        }
        Ok(())
    }

    fn write_local(
        &mut self,
        k: EntryKey,
        kind: table_event::Type,
        value: Vec<u8>,
        out: &mut Outbox,
    ) {
        let ltime = self.table_clock.increment();
        let deleting = kind == table_event::Type::Delete;
        let event_kind = match (kind, self.entries.get(&k)) {
            (table_event::Type::Delete, _) => EventKind::Delete,
            (_, Some(e)) if !e.deleting => EventKind::Update,
            _ => EventKind::Create,
        };
        let entry = Entry {
            owner: self.name.clone(),
            ltime,
            value: value.clone(),
            deleting,
            reap_left: self.config.reap_entry_interval,
        };
        let mut ev = table_event_of(&k, &entry);
        ev.r#type = kind as i32;
        self.entries.insert(k.clone(), entry);
        self.emit(event_kind, &k.1, &k.0, &k.2, value, out);
        if let Some(own) = self.own.get_mut(&k.0) {
            own.queue.push(
                QueueKey::Table {
                    table: k.1.clone(),
                    key: k.2.clone(),
                },
                Message::Table(ev).encode(),
            );
        }
    }

    /// Applies a received table event; `bulk` tells a bulk sync from gossip.
    fn apply_table_event(&mut self, ev: TableEvent, bulk: bool, out: &mut Outbox) -> Result<()> {
        self.table_clock.witness(ev.l_time);
        let kind = ev.r#type();
        if kind == table_event::Type::Invalid {
            return Err(Error::decode("table event", "invalid type"));
        }
        // Our own entries come back to us through gossip; we are their only writer.
        if ev.node_name == self.name {
            return Ok(());
        }
        // Only networks we are in, and only from owners we know to be in them.
        if !self.own.contains_key(&ev.network_id) || !self.is_member(&ev.network_id, &ev.node_name)
        {
            return Ok(());
        }
        let k = entry_key(&ev.network_id, &ev.table_name, &ev.key);
        let existing = self.entries.get(&k);
        // Lamport order, ties broken by owner name so every node picks the same winner.
        if existing
            .is_some_and(|e| (e.ltime, e.owner.as_str()) >= (ev.l_time, ev.node_name.as_str()))
        {
            return Ok(());
        }
        let deleting = kind == table_event::Type::Delete;
        let full = self.config.reap_entry_interval;
        let reap_left = if deleting && ev.residual_reap_time > 0 {
            Duration::from_secs(ev.residual_reap_time.unsigned_abs().into()).min(full)
        } else {
            full
        };
        let was_live = existing.is_some_and(|e| !e.deleting);
        let was_known = existing.is_some();
        let event_kind = match (deleting, was_live) {
            (true, true) => Some(EventKind::Delete),
            (true, false) => None,
            (false, true) => Some(EventKind::Update),
            (false, false) => Some(EventKind::Create),
        };
        let entry = Entry {
            owner: ev.node_name.clone(),
            ltime: ev.l_time,
            value: ev.value.clone(),
            deleting,
            reap_left,
        };
        self.entries.insert(k.clone(), entry);
        if let Some(kind) = event_kind {
            self.emit(kind, &k.1, &k.0, &k.2, ev.value.clone(), out);
        }
        // Re-gossip what was news, except old tombstones and bulk data when the queue is busy.
        let limit = self.config.max_queue_len_broadcast_on_sync;
        let Some(own) = self.own.get_mut(&k.0) else {
            return Ok(());
        };
        let stale_tombstone = bulk && deleting && !was_known && reap_left <= full / 6;
        if stale_tombstone || (bulk && own.queue.len() > limit) {
            return Ok(());
        }
        let mut ev = ev;
        if deleting {
            ev.residual_reap_time = secs_i32(reap_left);
        }
        own.queue.push(
            QueueKey::Table {
                table: k.1,
                key: k.2,
            },
            Message::Table(ev).encode(),
        );
        Ok(())
    }

    /// A live entry's value (libnetwork's `GetEntry`).
    ///
    /// # Errors
    /// [`Error::EntryNotFound`] if absent or deleted.
    pub fn get_entry(&self, table: &str, nid: &str, key: &str) -> Result<&[u8]> {
        self.entries
            .get(&entry_key(nid, table, key))
            .filter(|e| !e.deleting)
            .map(|e| e.value.as_slice())
            .ok_or_else(|| not_found("get", table, nid, key))
    }

    /// The live entries of a table in a network (libnetwork's `GetTableByNetwork`).
    pub fn get_table(&self, table: &str, nid: &str) -> BTreeMap<String, TableElem> {
        let start = entry_key(nid, table, "");
        self.entries
            .range(start..)
            .take_while(|(k, _)| k.0 == nid && k.1 == table)
            .filter(|(_, e)| !e.deleting)
            .map(|(k, e)| {
                (
                    k.2.clone(),
                    TableElem {
                        value: e.value.clone(),
                        owner: e.owner.clone(),
                    },
                )
            })
            .collect()
    }

    /// Walks every entry of a table, tombstones included, as `(network, key, value, deleting)`
    /// until `f` returns true (libnetwork's `WalkTable`).
    pub fn walk_table(&self, table: &str, mut f: impl FnMut(&str, &str, &[u8], bool) -> bool) {
        for (k, e) in &self.entries {
            if k.1 == table && f(&k.0, &k.2, &e.value, e.deleting) {
                return;
            }
        }
    }

    /// Every live entry as `(network, table, key) -> (owner, value)`, for comparing nodes.
    pub fn snapshot(&self) -> Snapshot {
        self.entries
            .iter()
            .filter(|(_, e)| !e.deleting)
            .map(|(k, e)| (k.clone(), (e.owner.clone(), e.value.clone())))
            .collect()
    }

    // ----- bulk sync -----

    fn periodic_bulk_sync(&mut self, out: &mut Outbox) {
        let mut covered: BTreeSet<String> = BTreeSet::new();
        let nids: Vec<String> = self.own.keys().cloned().collect();
        for nid in nids {
            if covered.contains(&nid) {
                continue;
            }
            let members = self.network_members(&nid);
            let picked = self.pick_names(members, self.config.bulk_sync_nodes.get());
            for node in picked {
                let Some(addr) = self.active_addr(&node) else {
                    continue;
                };
                let shared = self.shared_networks(&node);
                covered.extend(shared.iter().cloned());
                self.send_bulk_sync(addr, shared, true, out);
            }
        }
    }

    /// Sends every entry (tombstones included) of `networks` to `to`, split into stream
    /// messages of at most [`Config::max_stream_message`] bytes.
    fn send_bulk_sync(
        &mut self,
        to: SocketAddr,
        networks: Vec<String>,
        unsolicited: bool,
        out: &mut Outbox,
    ) {
        let header = BulkSyncMessage {
            l_time: self.network_clock.time(),
            unsolicited,
            node_name: self.name.clone(),
            networks,
            payload: Vec::new(),
        };
        let limit = self
            .config
            .max_stream_message
            .get()
            .saturating_sub(SEAL_OVERHEAD + header.encoded_len() + 16);
        let mut chunks: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut current: Vec<Vec<u8>> = Vec::new();
        let mut size = 0usize;
        for nid in &header.networks {
            for k in self.network_entry_keys(nid) {
                let Some(e) = self.entries.get(&k) else {
                    continue;
                };
                let msg = Message::Table(table_event_of(&k, e)).encode();
                let cost = compound_cost(msg.len());
                if !current.is_empty() && size + cost + compound_envelope_cost(size + cost) > limit
                {
                    chunks.push(std::mem::take(&mut current));
                    size = 0;
                }
                size += cost;
                current.push(msg);
            }
        }
        if !current.is_empty() || chunks.is_empty() {
            chunks.push(current);
        }
        let total = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let msg = BulkSyncMessage {
                // Only the first chunk asks for an answer, so the peer answers once.
                unsolicited: unsolicited && i == 0,
                payload: encode_compound(chunk),
                ..header.clone()
            };
            self.send_stream(to, Message::BulkSync(msg).encode(), out);
        }
        debug!(node = %self.name, %to, chunks = total, unsolicited, "bulk sync sent");
    }

    fn handle_bulk_sync(&mut self, bs: BulkSyncMessage, out: &mut Outbox) -> Result<()> {
        self.network_clock.witness(bs.l_time);
        if bs.node_name == self.name {
            return Ok(());
        }
        if !bs.payload.is_empty() {
            for msg in wire::decode(&bs.payload)? {
                if let Message::Table(ev) = msg {
                    self.apply_table_event(ev, true, out)?;
                }
            }
        }
        if bs.unsolicited
            && let Some(addr) = self.active_addr(&bs.node_name)
        {
            let shared: Vec<String> = bs
                .networks
                .into_iter()
                .filter(|n| self.own.contains_key(n))
                .collect();
            self.send_bulk_sync(addr, shared, false, out);
        }
        Ok(())
    }

    // ----- gossip, reaping -----

    fn packet_budget(&self) -> usize {
        // kind byte + compound envelope (at most 6 bytes for any packet size we allow)
        self.config.packet_size.get() - SEAL_OVERHEAD - 1 - 6
    }

    fn gossip(&mut self, out: &mut Outbox) {
        let budget = self.packet_budget();
        let fanout = self.config.gossip_nodes.get();
        let mult = self.config.retransmit_mult.get();
        let nids: Vec<String> = self
            .own
            .iter()
            .filter(|(_, n)| !n.queue.is_empty())
            .map(|(nid, _)| nid.clone())
            .collect();
        for nid in nids {
            let members = self.network_members(&nid);
            if members.is_empty() {
                continue;
            }
            let limit = retransmit_limit(mult, members.len() + 1);
            let targets = self.pick(members, fanout);
            for to in targets {
                let Some(own) = self.own.get_mut(&nid) else {
                    break;
                };
                let (msgs, big) = own.queue.take(budget, limit);
                self.send_gossip(to, msgs, big, out);
            }
        }
        if !self.global_queue.is_empty() {
            let nodes = self.active_nodes();
            let limit = retransmit_limit(mult, nodes.len() + 1);
            let targets = self.pick(nodes, fanout);
            for to in targets {
                let (msgs, big) = self.global_queue.take(budget, limit);
                self.send_gossip(to, msgs, big, out);
            }
        }
    }

    fn send_gossip(
        &mut self,
        to: SocketAddr,
        msgs: Vec<Vec<u8>>,
        big: Vec<Vec<u8>>,
        out: &mut Outbox,
    ) {
        if !msgs.is_empty() {
            self.send_packet(to, encode_compound(msgs), out);
        }
        for msg in big {
            self.send_stream(to, msg, out);
        }
    }

    fn reap(&mut self) {
        let period = self.config.reap_period;
        // Tombstones.
        self.entries.retain(|_, e| {
            if !e.deleting {
                return true;
            }
            e.reap_left = e.reap_left.saturating_sub(period);
            !e.reap_left.is_zero()
        });
        // Departed attachments.
        for nodes in self.attachments.values_mut() {
            nodes.retain(|_, a| match &mut a.reap_left {
                Some(left) => {
                    *left = left.saturating_sub(period);
                    !left.is_zero()
                }
                None => true,
            });
        }
        self.attachments.retain(|_, nodes| !nodes.is_empty());
        // Nodes gone for long enough are forgotten with their attachments.
        let mut forgotten = Vec::new();
        self.nodes.retain(|name, r| {
            if r.state == NodeState::Active {
                return true;
            }
            let left = r.reap_left.get_or_insert(Duration::ZERO);
            *left = left.saturating_sub(period);
            if left.is_zero() {
                forgotten.push(name.clone());
                return false;
            }
            true
        });
        for name in forgotten {
            for nodes in self.attachments.values_mut() {
                nodes.remove(&name);
            }
        }
    }

    // ----- keys -----

    /// Installs an encryption key (libnetwork's `SetKey`); the first one installed becomes
    /// primary and turns encryption on.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a key that is not 16 or 32 bytes; nothing changed.
    pub fn set_key(&mut self, key: &[u8]) -> Result<()> {
        self.keyring.add(key)
    }

    /// Makes an installed key the one used to encrypt (libnetwork's `SetPrimaryKey`).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] if the key is not installed; nothing changed.
    pub fn set_primary_key(&mut self, key: &[u8]) -> Result<()> {
        self.keyring.set_primary(key)
    }

    /// Removes a secondary key (libnetwork's `RemoveKey`).
    ///
    /// # Errors
    /// [`Error::PrimaryKeyRemoval`] or [`Error::KeyNotFound`]; nothing changed.
    pub fn remove_key(&mut self, key: &[u8]) -> Result<()> {
        self.keyring.remove(key)
    }

    /// The installed keys, primary first.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.keyring.keys()
    }

    // ----- queries -----

    /// The active nodes of the cluster, this one included (libnetwork's `ClusterPeers`).
    pub fn cluster_peers(&self) -> Vec<PeerInfo> {
        let mut peers = vec![PeerInfo {
            name: self.name.clone(),
            addr: Some(self.swim.identity().addr),
        }];
        peers.extend(
            self.nodes
                .iter()
                .filter(|(_, r)| r.state == NodeState::Active)
                .map(|(n, r)| PeerInfo {
                    name: n.clone(),
                    addr: Some(r.member.addr),
                }),
        );
        peers
    }

    /// The nodes attached to a network, this one included if it joined (libnetwork's
    /// `Peers`). Nodes not currently active are left out.
    pub fn peers(&self, nid: &str) -> Vec<PeerInfo> {
        let mut peers = Vec::new();
        if self.own.contains_key(nid) {
            peers.push(PeerInfo {
                name: self.name.clone(),
                addr: Some(self.swim.identity().addr),
            });
        }
        for name in self.network_member_names(nid) {
            let addr = self.nodes.get(&name).map(|r| r.member.addr);
            peers.push(PeerInfo { name, addr });
        }
        peers
    }

    /// Number of active cluster members, this node included (`cluster_peers().len()` without
    /// building the list).
    pub fn cluster_size(&self) -> usize {
        1 + self
            .nodes
            .values()
            .filter(|r| r.state == NodeState::Active)
            .count()
    }

    /// Number of active members of a network, this node included if it joined
    /// (`peers(nid).len()` without building the list).
    pub fn network_size(&self, nid: &str) -> usize {
        let others = self.attachments.get(nid).map_or(0, |nodes| {
            nodes
                .iter()
                .filter(|(n, a)| !a.leaving && **n != self.name && self.is_active(n))
                .count()
        });
        others + usize::from(self.own.contains_key(nid))
    }

    /// The state of a known node (`None` for unknown nodes and for this one).
    pub fn node_state(&self, name: &str) -> Option<NodeState> {
        self.nodes.get(name).map(|r| r.state)
    }

    /// The networks this node has joined.
    pub fn networks(&self) -> Vec<String> {
        self.own.keys().cloned().collect()
    }

    /// Counters for diagnostics.
    pub fn stats(&self) -> Stats {
        let tombstones = self.entries.values().filter(|e| e.deleting).count();
        Stats {
            entries: self.entries.len() - tombstones,
            tombstones,
            global_queue: self.global_queue.len(),
            network_queues: self.own.values().map(|n| n.queue.len()).sum(),
        }
    }

    // ----- helpers -----

    fn emit(
        &mut self,
        kind: EventKind,
        table: &str,
        network: &str,
        key: &str,
        value: Vec<u8>,
        out: &mut Outbox,
    ) {
        out.push(Output::Event(Event {
            kind,
            table: table.to_string(),
            network: network.to_string(),
            key: key.to_string(),
            value,
        }));
    }

    fn send_packet(&mut self, to: SocketAddr, gossip: Vec<u8>, out: &mut Outbox) {
        let mut plain = Vec::with_capacity(gossip.len() + 1);
        plain.push(KIND_GOSSIP);
        plain.extend_from_slice(&gossip);
        let data = self.keyring.seal(&mut self.rng, plain);
        out.push(Output::Packet { to, data });
    }

    fn send_stream(&mut self, to: SocketAddr, msg: Vec<u8>, out: &mut Outbox) {
        let data = self.keyring.seal(&mut self.rng, msg);
        out.push(Output::Stream { to, data });
    }

    fn is_active(&self, node: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|r| r.state == NodeState::Active)
    }

    fn active_addr(&self, node: &str) -> Option<SocketAddr> {
        self.nodes
            .get(node)
            .filter(|r| r.state == NodeState::Active)
            .map(|r| r.member.addr)
    }

    fn is_member(&self, nid: &str, node: &str) -> bool {
        self.attachments
            .get(nid)
            .and_then(|m| m.get(node))
            .is_some_and(|a| !a.leaving)
            && self.is_active(node)
    }

    fn network_member_names(&self, nid: &str) -> Vec<String> {
        let Some(nodes) = self.attachments.get(nid) else {
            return Vec::new();
        };
        nodes
            .iter()
            .filter(|(n, a)| !a.leaving && **n != self.name && self.is_active(n))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn network_members(&self, nid: &str) -> Vec<SocketAddr> {
        let Some(nodes) = self.attachments.get(nid) else {
            return Vec::new();
        };
        nodes
            .iter()
            .filter(|(n, a)| !a.leaving && **n != self.name)
            .filter_map(|(n, _)| self.active_addr(n))
            .collect()
    }

    fn active_nodes(&self) -> Vec<SocketAddr> {
        self.nodes
            .values()
            .filter(|r| r.state == NodeState::Active)
            .map(|r| r.member.addr)
            .collect()
    }

    /// Networks this node and `node` are both in.
    fn shared_networks(&self, node: &str) -> Vec<String> {
        self.own
            .keys()
            .filter(|nid| {
                self.attachments
                    .get(*nid)
                    .and_then(|m| m.get(node))
                    .is_some_and(|a| !a.leaving)
            })
            .cloned()
            .collect()
    }

    fn network_entry_keys(&self, nid: &str) -> Vec<EntryKey> {
        let start = entry_key(nid, "", "");
        self.entries
            .range(start..)
            .take_while(|(k, _)| k.0 == nid)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn pick<T>(&mut self, mut from: Vec<T>, n: usize) -> Vec<T> {
        if from.len() <= n {
            return from;
        }
        let mut idx: Vec<usize> = sample(&mut self.rng, from.len(), n).into_vec();
        idx.sort_unstable_by(|a, b| b.cmp(a));
        let mut picked = Vec::with_capacity(n);
        for i in idx {
            picked.push(from.swap_remove(i));
        }
        picked
    }

    fn pick_names(&mut self, from: Vec<SocketAddr>, n: usize) -> Vec<String> {
        let picked = self.pick(from, n);
        picked
            .into_iter()
            .filter_map(|addr| {
                self.nodes
                    .iter()
                    .find(|(_, r)| r.member.addr == addr && r.state == NodeState::Active)
                    .map(|(n, _)| n.clone())
            })
            .collect()
    }
}

fn swim_config(config: &Config, cluster_size: u32) -> foca::Config {
    let size = NonZeroU32::new(cluster_size.max(1)).unwrap_or(NonZeroU32::MIN);
    let mut c = foca::Config::new_lan(size);
    c.probe_period = config.probe_interval;
    c.probe_rtt = config.probe_timeout;
    let scale = f64::from(size.get()).log10().max(1.0);
    c.suspect_to_down_after = config
        .probe_interval
        .mul_f64(scale * f64::from(config.suspicion_mult.get()));
    c.remove_down_after = Some(config.node_reap_interval);
    c.max_packet_size = std::num::NonZeroUsize::new(config.packet_size.get() - SEAL_OVERHEAD - 1)
        .unwrap_or(std::num::NonZeroUsize::MIN);
    c.periodic_gossip = Some(foca::PeriodicParams {
        frequency: config.gossip_interval,
        num_members: config.gossip_nodes,
    });
    c
}

fn digits(n: usize) -> u32 {
    let mut d = 0;
    let mut rest = n;
    while rest > 0 {
        d += 1;
        rest /= 10;
    }
    d
}

fn entry_key(nid: &str, table: &str, key: &str) -> EntryKey {
    (nid.to_string(), table.to_string(), key.to_string())
}

fn not_found(op: &'static str, table: &str, nid: &str, key: &str) -> Error {
    Error::EntryNotFound {
        op,
        table: table.into(),
        network: nid.into(),
        key: key.into(),
    }
}

fn secs_i32(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn table_event_of(k: &EntryKey, e: &Entry) -> TableEvent {
    let kind = if e.deleting {
        table_event::Type::Delete
    } else {
        table_event::Type::Create
    };
    TableEvent {
        r#type: kind as i32,
        l_time: e.ltime,
        node_name: e.owner.clone(),
        network_id: k.0.clone(),
        table_name: k.1.clone(),
        key: k.2.clone(),
        value: e.value.clone(),
        residual_reap_time: if e.deleting { secs_i32(e.reap_left) } else { 0 },
    }
}
