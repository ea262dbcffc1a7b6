//! The UDP proxy: libnetwork's `UDPProxy` as one task per binding, with one flow per client
//! address and host port.
//!
//! A datagram from a new client address to a host port opens a flow: a socket connected to the
//! container port of that host port (bound to an ephemeral port of the host) and a task that
//! sends the container's replies back to the client from the host port. A flow ends after
//! [`udp_idle_timeout`] without a datagram in either direction (docker-proxy only counts
//! replies; counting both keeps a client that only sends from losing its flow).
//!
//! The host sockets are read through their [`PortSet`]. Replies are sent through a duplicate
//! of the host port's socket registered with the reactor, made when the port gets its first
//! flow and closed with its last one, so idle ports cost nothing more than their socket.
//!
//! [`udp_idle_timeout`]: crate::PortMapperConfig::udp_idle_timeout

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::{Backend, PortSet, StopSignal, stopped};

/// The largest datagram read: the largest UDP payload over IPv6 without jumbograms (IPv4's is
/// 65 507 bytes, docker-proxy's buffer size).
const MAX_DATAGRAM: usize = 65_535;

thread_local! {
    /// The receive buffer of this thread, shared by every UDP socket its tasks read, so that
    /// idle listeners and flows hold no buffer of their own.
    static DATAGRAM: RefCell<Box<[u8]>> = RefCell::new(vec![0; MAX_DATAGRAM].into_boxed_slice());
}

/// The most datagrams read from one host port in a row, so that a busy port does not starve the
/// other ports of its range (the set reports it again).
const RECV_BATCH: usize = 64;

/// Reads one datagram with `recv` (a non-blocking receive) into this thread's buffer and
/// returns a copy of exactly its length.
fn recv_datagram<A>(
    recv: impl FnOnce(&mut [u8]) -> io::Result<(usize, A)>,
) -> io::Result<(Vec<u8>, A)> {
    DATAGRAM.with_borrow_mut(|buf| recv(buf).map(|(len, from)| (buf[..len].to_vec(), from)))
}

/// One client's flow as the binding's task sees it.
#[derive(Debug)]
struct Flow {
    /// Distinguishes this flow from a later one of the same client when its task ends.
    id: u64,
    /// The socket connected to the container.
    upstream: Arc<UdpSocket>,
    /// When a datagram last went through, in either direction.
    activity: Arc<Activity>,
    /// The flow's reply task.
    task: AbortHandle,
}

/// The time of a flow's last datagram, shared by the listener and the reply task.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last datagram.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(elapsed, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// A flow is found by the index of its host port in the binding and its client's address.
type FlowKey = (usize, SocketAddr);

/// The flows of one binding and their reply tasks.
#[derive(Debug)]
struct Flows {
    backend: Backend,
    idle_timeout: Duration,
    flows: HashMap<FlowKey, Flow>,
    /// The reactor-registered duplicate of each host port socket that has flows, shared by
    /// their reply tasks (which hold the only strong references).
    repliers: HashMap<usize, Weak<UdpSocket>>,
    /// The reply tasks; each returns its flow's key and id when the flow expires.
    tasks: JoinSet<(FlowKey, u64)>,
    next_id: u64,
}

/// Receives datagrams on every host port of `sockets` and forwards each client's to the port's
/// container port through its flow, until `stop` says; then closes the sockets and every flow
/// before returning.
pub(crate) async fn serve(
    sockets: PortSet<std::net::UdpSocket>,
    backend: Backend,
    idle_timeout: Duration,
    mut stop: StopSignal,
) {
    let mut flows = Flows {
        backend,
        idle_timeout,
        flows: HashMap::new(),
        repliers: HashMap::new(),
        tasks: JoinSet::new(),
        next_id: 0,
    };
    loop {
        let ready = tokio::select! {
            () = stopped(&mut stop) => break,
            ready = sockets.ready() => match ready {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::debug!(%backend.ip, error = %e, "proxy socket set failed");
                    break;
                }
            },
            Some(ended) = flows.tasks.join_next(), if !flows.tasks.is_empty() => {
                if let Ok((key, id)) = ended {
                    flows.ended(key, id);
                }
                continue;
            }
        };
        for index in ready {
            let Some(socket) = sockets.get(index) else {
                continue;
            };
            for _ in 0..RECV_BATCH {
                let (datagram, client) = match recv_datagram(|buf| socket.recv_from(buf)) {
                    Ok(received) => received,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::trace!(backend = %backend.of(index), error = %e, "proxy receive failed");
                        break;
                    }
                };
                flows.forward(socket, index, client, &datagram).await;
            }
        }
    }
    drop(sockets);
    flows.flows.clear();
    flows.tasks.shutdown().await;
}

impl Flows {
    /// Sends `datagram`, received from `client` on the `index`th host port (`socket`), to the
    /// container through the client's flow, opening one when it has none.
    async fn forward(
        &mut self,
        socket: &std::net::UdpSocket,
        index: usize,
        client: SocketAddr,
        datagram: &[u8],
    ) {
        let backend = self.backend.of(index);
        let key = (index, client);
        let open = self
            .flows
            .get(&key)
            .is_some_and(|flow| !flow.task.is_finished());
        if !open && let Err(e) = self.open(socket, key).await {
            tracing::debug!(%client, %backend, error = %e, "proxy connect to container failed");
            return;
        }
        let Some(flow) = self.flows.get(&key) else {
            return;
        };
        flow.activity.touch();
        let sent = match flow.upstream.send(datagram).await {
            // The port-unreachable error left on the socket by an earlier datagram, when the
            // container did not listen yet, is reported by this send instead of sending: send
            // again now that it is cleared, so the first datagram after the container starts
            // listening is not lost.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                flow.upstream.send(datagram).await
            }
            sent => sent,
        };
        if let Err(e) = sent {
            // Drop the datagram and keep the flow, as docker-proxy does.
            tracing::trace!(%client, %backend, error = %e, "proxy send to container failed");
        }
    }

    /// Opens the flow of `key`: a socket connected to the container and the task that sends its
    /// replies back through the host port (`socket`).
    async fn open(&mut self, socket: &std::net::UdpSocket, key: FlowKey) -> io::Result<()> {
        let (index, client) = key;
        let backend = self.backend.of(index);
        let upstream = Arc::new(connect(backend).await?);
        let replier = self.replier(socket, index)?;
        let activity = Arc::new(Activity::new());
        self.next_id += 1;
        let task = self.tasks.spawn(reply(
            replier,
            Arc::clone(&upstream),
            key,
            Arc::clone(&activity),
            self.idle_timeout,
            self.next_id,
        ));
        tracing::trace!(%client, %backend, "udp flow opened");
        let flow = Flow {
            id: self.next_id,
            upstream,
            activity,
            task,
        };
        self.flows.insert(key, flow);
        Ok(())
    }

    /// The socket the replies of the `index`th host port (`socket`) are sent through: the one
    /// its flows already share, or a new reactor-registered duplicate.
    fn replier(
        &mut self,
        socket: &std::net::UdpSocket,
        index: usize,
    ) -> io::Result<Arc<UdpSocket>> {
        if let Some(replier) = self.repliers.get(&index).and_then(Weak::upgrade) {
            return Ok(replier);
        }
        // The duplicate shares the socket's open file, so it is non-blocking too.
        let replier = Arc::new(UdpSocket::from_std(socket.try_clone()?)?);
        self.repliers.insert(index, Arc::downgrade(&replier));
        Ok(replier)
    }

    /// Forgets the flow `id` of `key`, whose task has ended, unless the client already has a
    /// newer one; forgets its host port's replier once no flow uses it.
    fn ended(&mut self, key: FlowKey, id: u64) {
        if self.flows.get(&key).is_some_and(|flow| flow.id == id) {
            self.flows.remove(&key);
            tracing::trace!(client = %key.1, backend = %self.backend.of(key.0), "udp flow expired");
        }
        if self
            .repliers
            .get(&key.0)
            .is_some_and(|replier| replier.strong_count() == 0)
        {
            self.repliers.remove(&key.0);
        }
    }
}

/// A socket on an ephemeral port of the host, connected to `backend`.
async fn connect(backend: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = match backend {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    socket.connect(backend).await?;
    Ok(socket)
}

/// Sends the container's datagrams on `upstream` back to the client of `key` through `replier`
/// (the host port's socket), until the flow has been idle for `idle_timeout`. Returns the key
/// and flow id for the binding's task to forget the flow.
async fn reply(
    replier: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    key: FlowKey,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    id: u64,
) -> (FlowKey, u64) {
    let client = key.1;
    loop {
        let deadline = activity.last() + idle_timeout;
        tokio::select! {
            ready = upstream.readable() => {
                if ready.is_err() {
                    break;
                }
                match recv_datagram(|buf| upstream.try_recv(buf).map(|len| (len, ()))) {
                    Ok((datagram, ())) => {
                        activity.touch();
                        if let Err(e) = replier.send_to(&datagram, client).await {
                            tracing::trace!(%client, error = %e, "proxy send to client failed");
                        }
                    }
                    // Spurious readiness, or an ICMP error from the container (nothing listens
                    // there yet): keep the flow, as docker-proxy does.
                    Err(e) if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused
                    ) => {}
                    Err(e) => {
                        tracing::trace!(%client, error = %e, "proxy receive from container failed");
                        break;
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if activity.last() + idle_timeout <= Instant::now() {
                    break;
                }
            }
        }
    }
    // The replier is dropped before the binding's task learns that the flow ended, so it can
    // tell whether the host port still has flows.
    drop(replier);
    (key, id)
}
