//! The tokio transport: runs a [`NetworkDb`] engine over real sockets.
//!
//! One task owns the engine. It reads datagrams from a UDP socket (gossip and SWIM), stream
//! messages from a TCP listener on the same port (bulk syncs, push/pulls and entries too large
//! for a datagram), fires the engine's timers, and carries out what the engine asks for. Each
//! stream message is framed by a 4-byte big-endian length. Streams to one peer go through one
//! connection, in order, opened on demand and closed after a minute of silence.
//!
//! [`Node`] is the handle applications use; every call is a message to the engine task, so
//! the engine itself needs no lock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::engine::{Event, NetworkDb, Outbox, Output, PeerInfo, TableElem, Timer, WatchFilter};
use crate::error::{Error, Result};
use crate::keyring::SEAL_OVERHEAD;

/// How long connecting or writing a stream may take (memberlist's TCPTimeout).
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle outgoing stream connection is closed after this long.
const STREAM_IDLE: Duration = Duration::from_secs(60);
/// How many times binding UDP and TCP to one free port is tried when the port is 0.
const BIND_ATTEMPTS: usize = 32;

type Call = Box<dyn FnOnce(&mut NetworkDb, &mut Outbox) + Send>;

enum Command {
    Call(Call),
    Watch(WatchFilter, mpsc::UnboundedSender<Event>),
    Close(oneshot::Sender<Result<()>>),
}

/// A running networkdb node: the engine task and its sockets.
#[derive(Debug, Clone)]
pub struct Node {
    commands: mpsc::UnboundedSender<Command>,
    addr: SocketAddr,
    name: Arc<str>,
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::Io {
        op,
        source: Arc::new(e),
    }
}

async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { BIND_ATTEMPTS } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr).await.map_err(io_err("bind udp"))?;
        let local = udp.local_addr().map_err(io_err("bind udp"))?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // The port is free for UDP but taken for TCP: try another one.
            Err(e) => last = Some(e),
        }
    }
    Err(io_err("bind tcp")(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::AddrInUse, "no free port")
    })))
}

impl Node {
    /// Binds UDP and TCP on `bind` (port 0 picks a free port shared by both) and starts the
    /// engine. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Io`] if a socket cannot be bound, [`Error::InvalidConfig`] or
    /// [`Error::InvalidKey`] for a bad configuration.
    pub async fn start(mut config: Config, bind_addr: SocketAddr) -> Result<Self> {
        let (udp, tcp) = bind(bind_addr).await?;
        let addr = udp.local_addr().map_err(io_err("bind udp"))?;
        if config.epoch == 0 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            config.epoch = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        }
        let max_frame = config.max_stream_message.get() + SEAL_OVERHEAD + 1024;
        let seed = RandomState::new().hash_one(addr);
        let mut db = NetworkDb::new(config, addr, seed)?;
        let mut out = Outbox::new();
        db.start(&mut out);
        let name: Arc<str> = db.name().into();
        let (commands, rx) = mpsc::unbounded_channel();
        let (streams_tx, streams_rx) = mpsc::channel(1024);
        let acceptor = tokio::spawn(accept_streams(tcp, streams_tx, max_frame));
        let driver = Driver {
            db,
            udp,
            timers: BinaryHeap::new(),
            seq: 0,
            watchers: Vec::new(),
            writers: HashMap::new(),
        };
        tokio::spawn(driver.run(out, rx, streams_rx, acceptor));
        info!(node = %name, %addr, "networkdb started");
        Ok(Self {
            commands,
            addr,
            name,
        })
    }

    /// The address both sockets are bound to (and that peers use).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut NetworkDb, &mut Outbox) -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = oneshot::channel();
        let call: Call = Box::new(move |db, out| {
            let _ = tx.send(f(db, out));
        });
        self.commands
            .send(Command::Call(call))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Joins the cluster through `seeds` (see [`NetworkDb::join`]).
    ///
    /// # Errors
    /// [`Error::Closed`] or [`Error::Membership`].
    pub async fn join(&self, seeds: Vec<SocketAddr>) -> Result<()> {
        self.call(move |db, out| db.join(&seeds, out)).await?
    }

    /// Joins a network (see [`NetworkDb::join_network`]).
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn join_network(&self, nid: &str) -> Result<()> {
        let nid = nid.to_string();
        self.call(move |db, out| db.join_network(&nid, out)).await
    }

    /// Leaves a network (see [`NetworkDb::leave_network`]).
    ///
    /// # Errors
    /// [`Error::Closed`] or [`Error::NetworkNotJoined`].
    pub async fn leave_network(&self, nid: &str) -> Result<()> {
        let nid = nid.to_string();
        self.call(move |db, out| db.leave_network(&nid, out))
            .await?
    }

    /// Creates an entry (see [`NetworkDb::create_entry`]).
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::EntryExists`] or [`Error::ValueTooLarge`].
    pub async fn create_entry(
        &self,
        table: &str,
        nid: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        let (t, n, k) = (table.to_string(), nid.to_string(), key.to_string());
        self.call(move |db, out| db.create_entry(&t, &n, &k, value, out))
            .await?
    }

    /// Updates an entry (see [`NetworkDb::update_entry`]).
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::EntryNotFound`] or [`Error::ValueTooLarge`].
    pub async fn update_entry(
        &self,
        table: &str,
        nid: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        let (t, n, k) = (table.to_string(), nid.to_string(), key.to_string());
        self.call(move |db, out| db.update_entry(&t, &n, &k, value, out))
            .await?
    }

    /// Deletes an entry (see [`NetworkDb::delete_entry`]).
    ///
    /// # Errors
    /// [`Error::Closed`] or [`Error::EntryNotFound`].
    pub async fn delete_entry(&self, table: &str, nid: &str, key: &str) -> Result<()> {
        let (t, n, k) = (table.to_string(), nid.to_string(), key.to_string());
        self.call(move |db, out| db.delete_entry(&t, &n, &k, out))
            .await?
    }

    /// Reads a live entry (see [`NetworkDb::get_entry`]).
    ///
    /// # Errors
    /// [`Error::Closed`] or [`Error::EntryNotFound`].
    pub async fn get_entry(&self, table: &str, nid: &str, key: &str) -> Result<Vec<u8>> {
        let (t, n, k) = (table.to_string(), nid.to_string(), key.to_string());
        self.call(move |db, _| db.get_entry(&t, &n, &k).map(<[u8]>::to_vec))
            .await?
    }

    /// The live entries of a table in a network (see [`NetworkDb::get_table`]).
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn get_table(&self, table: &str, nid: &str) -> Result<BTreeMap<String, TableElem>> {
        let (t, n) = (table.to_string(), nid.to_string());
        self.call(move |db, _| db.get_table(&t, &n)).await
    }

    /// The active cluster members (see [`NetworkDb::cluster_peers`]).
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn cluster_peers(&self) -> Result<Vec<PeerInfo>> {
        self.call(|db, _| db.cluster_peers()).await
    }

    /// The members of a network (see [`NetworkDb::peers`]).
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn peers(&self, nid: &str) -> Result<Vec<PeerInfo>> {
        let nid = nid.to_string();
        self.call(move |db, _| db.peers(&nid)).await
    }

    /// Subscribes to table events matching `filter` (libnetwork's `Watch`); drop the receiver
    /// to cancel. Events are queued without bound, as in libnetwork.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn watch(&self, filter: WatchFilter) -> Result<mpsc::UnboundedReceiver<Event>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.commands
            .send(Command::Watch(filter, tx))
            .map_err(|_| Error::Closed)?;
        Ok(rx)
    }

    /// Installs an encryption key (see [`NetworkDb::set_key`]).
    ///
    /// # Errors
    /// [`Error::Closed`] or [`Error::InvalidKey`].
    pub async fn set_key(&self, key: Vec<u8>) -> Result<()> {
        self.call(move |db, _| db.set_key(&key)).await?
    }

    /// Makes an installed key primary (see [`NetworkDb::set_primary_key`]).
    ///
    /// # Errors
    /// [`Error::Closed`] or [`Error::KeyNotFound`].
    pub async fn set_primary_key(&self, key: Vec<u8>) -> Result<()> {
        self.call(move |db, _| db.set_primary_key(&key)).await?
    }

    /// Removes a secondary key (see [`NetworkDb::remove_key`]).
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::PrimaryKeyRemoval`] or [`Error::KeyNotFound`].
    pub async fn remove_key(&self, key: Vec<u8>) -> Result<()> {
        self.call(move |db, _| db.remove_key(&key)).await?
    }

    /// Leaves the cluster cleanly and stops the engine task (libnetwork's `Close`). Other
    /// handles to this node get [`Error::Closed`] afterwards.
    ///
    /// # Errors
    /// [`Error::Closed`] if it was already closed, [`Error::Membership`] if the departure
    /// could not be announced (the node stops anyway).
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Close(tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

struct Due {
    at: Instant,
    seq: u64,
    timer: Timer,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Driver {
    db: NetworkDb,
    udp: UdpSocket,
    timers: BinaryHeap<Reverse<Due>>,
    seq: u64,
    watchers: Vec<(WatchFilter, mpsc::UnboundedSender<Event>)>,
    writers: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
}

impl Driver {
    async fn run(
        mut self,
        first: Outbox,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut streams: mpsc::Receiver<Vec<u8>>,
        acceptor: JoinHandle<()>,
    ) {
        let mut out = first;
        let mut buf = vec![0u8; 65_536];
        loop {
            self.flush(&mut out).await;
            let next = self.timers.peek().map(|Reverse(d)| d.at);
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Call(f)) => f(&mut self.db, &mut out),
                    Some(Command::Watch(filter, tx)) => self.watchers.push((filter, tx)),
                    Some(Command::Close(reply)) => {
                        let result = self.db.leave(&mut out);
                        self.flush(&mut out).await;
                        let _ = reply.send(result);
                        break;
                    }
                    None => break,
                },
                received = self.udp.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        if let Err(e) = self.db.handle_packet(&buf[..n], &mut out) {
                            debug!(node = %self.db.name(), %from, error = %e, "dropped packet");
                        }
                    }
                    Err(e) => debug!(node = %self.db.name(), error = %e, "udp receive failed"),
                },
                Some(msg) = streams.recv() => {
                    if let Err(e) = self.db.handle_stream(&msg, &mut out) {
                        debug!(node = %self.db.name(), error = %e, "dropped stream message");
                    }
                },
                () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let now = Instant::now();
                    while self.timers.peek().is_some_and(|Reverse(d)| d.at <= now) {
                        let Some(Reverse(due)) = self.timers.pop() else { break };
                        if let Err(e) = self.db.handle_timer(due.timer, &mut out) {
                            debug!(node = %self.db.name(), error = %e, "timer failed");
                        }
                    }
                },
            }
        }
        acceptor.abort();
        info!(node = %self.db.name(), "networkdb stopped");
    }

    async fn flush(&mut self, out: &mut Outbox) {
        let outputs: Vec<Output> = out.drain().collect();
        for output in outputs {
            match output {
                Output::Packet { to, data } => {
                    if let Err(e) = self.udp.send_to(&data, to).await {
                        debug!(node = %self.db.name(), %to, error = %e, "udp send failed");
                    }
                }
                Output::Stream { to, data } => self.send_stream(to, data),
                Output::Timer { after, timer } => {
                    self.seq += 1;
                    self.timers.push(Reverse(Due {
                        at: Instant::now() + after,
                        seq: self.seq,
                        timer,
                    }));
                }
                Output::Event(event) => {
                    self.watchers.retain(|(filter, tx)| {
                        !filter.matches(&event) || tx.send(event.clone()).is_ok()
                    });
                }
            }
        }
    }

    fn send_stream(&mut self, to: SocketAddr, data: Vec<u8>) {
        let data = match self.writers.get(&to) {
            Some(tx) => match tx.send(data) {
                Ok(()) => return,
                // The writer went idle and exited: start a new one.
                Err(mpsc::error::SendError(data)) => data,
            },
            None => data,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(data);
        self.writers.insert(to, tx);
        tokio::spawn(write_streams(to, rx));
    }
}

/// Writes every message queued for one peer over one connection, reconnecting once per
/// message after a failure; exits after [`STREAM_IDLE`] without messages.
async fn write_streams(to: SocketAddr, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut conn: Option<TcpStream> = None;
    while let Ok(Some(msg)) = timeout(STREAM_IDLE, rx.recv()).await {
        for attempt in 0..2 {
            if conn.is_none() {
                match timeout(STREAM_TIMEOUT, TcpStream::connect(to)).await {
                    Ok(Ok(c)) => conn = Some(c),
                    Ok(Err(e)) => {
                        debug!(%to, error = %e, "stream connect failed");
                        break;
                    }
                    Err(_) => {
                        debug!(%to, "stream connect timed out");
                        break;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { break };
            let len = u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes();
            let write = async {
                c.write_all(&len).await?;
                c.write_all(&msg).await?;
                c.flush().await
            };
            match timeout(STREAM_TIMEOUT, write).await {
                Ok(Ok(())) => break,
                _ => {
                    conn = None;
                    if attempt == 1 {
                        warn!(%to, "stream message dropped after a failed write");
                    }
                }
            }
        }
    }
}

async fn accept_streams(listener: TcpListener, tx: mpsc::Sender<Vec<u8>>, max_frame: usize) {
    loop {
        let (conn, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "stream accept failed");
                continue;
            }
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Err(e) = read_streams(conn, &tx, max_frame).await {
                debug!(%from, error = %e, "stream closed");
            }
        });
    }
}

async fn read_streams(
    mut conn: TcpStream,
    tx: &mpsc::Sender<Vec<u8>>,
    max_frame: usize,
) -> io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        match conn.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > max_frame {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("stream frame of {len} bytes exceeds {max_frame}"),
            ));
        }
        let mut msg = vec![0u8; len];
        conn.read_exact(&mut msg).await?;
        if tx.send(msg).await.is_err() {
            return Ok(());
        }
    }
}
