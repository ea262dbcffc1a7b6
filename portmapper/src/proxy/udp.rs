//! The UDP proxy: libnetwork's `UDPProxy` as a task, with one flow per client address.
//!
//! A datagram from a new client address opens a flow: a socket connected to the container
//! (bound to an ephemeral port of the host) and a task that sends the container's replies back
//! to the client from the published port. A flow ends after [`udp_idle_timeout`] without a
//! datagram in either direction (docker-proxy only counts replies; counting both keeps a client
//! that only sends from losing its flow).
//!
//! [`udp_idle_timeout`]: crate::PortMapperConfig::udp_idle_timeout

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::{StopSignal, stopped};

/// The largest datagram read: the largest UDP payload over IPv6 without jumbograms (IPv4's is
/// 65 507 bytes, docker-proxy's buffer size).
const MAX_DATAGRAM: usize = 65_535;

thread_local! {
    /// The receive buffer of this thread, shared by every UDP socket its tasks read, so that
    /// idle listeners and flows hold no buffer of their own.
    static DATAGRAM: RefCell<Box<[u8]>> = RefCell::new(vec![0; MAX_DATAGRAM].into_boxed_slice());
}

/// Reads one datagram with `recv` (a non-blocking `try_recv*`) into this thread's buffer and
/// returns a copy of exactly its length.
fn recv_datagram<A>(
    recv: impl FnOnce(&mut [u8]) -> io::Result<(usize, A)>,
) -> io::Result<(Vec<u8>, A)> {
    DATAGRAM.with_borrow_mut(|buf| recv(buf).map(|(len, from)| (buf[..len].to_vec(), from)))
}

/// One client's flow as the listener sees it.
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

/// Receives datagrams on `socket` and forwards each client's to `backend` through its flow,
/// until `stop` says; then closes the socket and every flow before returning.
pub(crate) async fn serve(
    socket: UdpSocket,
    backend: SocketAddr,
    idle_timeout: Duration,
    mut stop: StopSignal,
) {
    let socket = Arc::new(socket);
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut tasks: JoinSet<(SocketAddr, u64)> = JoinSet::new();
    let mut next_id = 0_u64;
    loop {
        let (datagram, client) = tokio::select! {
            () = stopped(&mut stop) => break,
            ready = socket.readable() => {
                if let Err(e) = ready {
                    tracing::debug!(%backend, error = %e, "proxy socket failed");
                    break;
                }
                match recv_datagram(|buf| socket.try_recv_from(buf)) {
                    Ok(received) => received,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => {
                        tracing::trace!(%backend, error = %e, "proxy receive failed");
                        continue;
                    }
                }
            }
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok((client, id)) = ended
                    && flows.get(&client).is_some_and(|flow| flow.id == id)
                {
                    flows.remove(&client);
                    tracing::trace!(%client, %backend, "udp flow expired");
                }
                continue;
            }
        };
        let flow = match flows.get(&client) {
            Some(flow) if !flow.task.is_finished() => flow,
            _ => {
                let upstream = match connect(backend).await {
                    Ok(upstream) => Arc::new(upstream),
                    Err(e) => {
                        tracing::debug!(%client, %backend, error = %e, "proxy connect to container failed");
                        continue;
                    }
                };
                let activity = Arc::new(Activity::new());
                next_id += 1;
                let task = tasks.spawn(reply(
                    Arc::clone(&socket),
                    Arc::clone(&upstream),
                    client,
                    Arc::clone(&activity),
                    idle_timeout,
                    next_id,
                ));
                tracing::trace!(%client, %backend, "udp flow opened");
                let flow = Flow {
                    id: next_id,
                    upstream,
                    activity,
                    task,
                };
                flows.entry(client).insert_entry(flow).into_mut()
            }
        };
        flow.activity.touch();
        let sent = match flow.upstream.send(&datagram).await {
            // The port-unreachable error left on the socket by an earlier datagram, when the
            // container did not listen yet, is reported by this send instead of sending: send
            // again now that it is cleared, so the first datagram after the container starts
            // listening is not lost.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                flow.upstream.send(&datagram).await
            }
            sent => sent,
        };
        if let Err(e) = sent {
            // Drop the datagram and keep the flow, as docker-proxy does.
            tracing::trace!(%client, %backend, error = %e, "proxy send to container failed");
        }
    }
    drop(socket);
    flows.clear();
    tasks.shutdown().await;
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

/// Sends the container's datagrams on `upstream` back to `client` from `listener`, until the
/// flow has been idle for `idle_timeout`. Returns the client and flow id for the listener to
/// forget the flow.
async fn reply(
    listener: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    id: u64,
) -> (SocketAddr, u64) {
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
                        if let Err(e) = listener.send_to(&datagram, client).await {
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
    (client, id)
}
