//! The userland proxy: one tokio task per published binding (a single port or a whole range),
//! forwarding to the container.
//!
//! This replaces libnetwork's `docker-proxy` child process (one per port). The host sockets of
//! a binding are plain non-blocking sockets in a [`PortSet`]: an epoll set of their own, which
//! is the only thing registered with the tokio reactor, and which tells the binding's task
//! which of its ports have a connection or a datagram waiting. So a port costs a socket and its
//! slot in the set (no task, no reactor registration, no buffer), and a 10 000-port range is one
//! task.
//!
//! The task owns its sockets and the tasks of its connections or flows (in a
//! [`JoinSet`](tokio::task::JoinSet)). When the stop signal comes (the [`Stop`] sender is
//! dropped), it stops every task it started, waits for them and returns, so once it has ended
//! every socket of the mapping is closed: the host ports, the connections and the flows. Idle
//! listeners hold no buffers: a TCP connection's copy buffers exist while it is open, and UDP
//! datagrams are read into one buffer per worker thread before being copied out at their size.
//!
//! - [`tcp`]: accept, connect to the container, copy both ways with half-close.
//! - [`udp`]: one flow per client address and host port, with an idle timeout.

pub(crate) mod tcp;
pub(crate) mod udp;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The stop signal of a mapping's proxy task: dropping it stops it.
pub(crate) type Stop = watch::Sender<()>;

/// What a proxy task watches for the stop signal.
pub(crate) type StopSignal = watch::Receiver<()>;

/// A stop signal and the receiver to give its task.
pub(crate) fn stop_signal() -> (Stop, StopSignal) {
    watch::channel(())
}

/// Waits until the stop signal's sender is dropped.
async fn stopped(signal: &mut StopSignal) {
    // Nothing is ever sent: `changed` only returns, with an error, once the sender is gone.
    while signal.changed().await.is_ok() {}
}

/// The most ports reported by one [`PortSet::ready`].
const READY_BATCH: usize = 64;

/// The host sockets of one binding, in the order of its host ports, with an epoll set that
/// watches them all for input.
///
/// The epoll set is level-triggered, so a socket with more waiting than its task took in one go
/// is reported again. Dropping the set closes the epoll instance first, which drops every
/// socket's registration at once, and then the sockets.
#[derive(Debug)]
pub(crate) struct PortSet<S> {
    /// Declared first so that it is closed before the sockets.
    epoll: AsyncFd<EpollFd>,
    sockets: Vec<S>,
}

/// An epoll instance as a file descriptor the reactor can watch.
#[derive(Debug)]
struct EpollFd(Epoll);

impl AsRawFd for EpollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.as_raw_fd()
    }
}

impl<S: AsFd> PortSet<S> {
    /// An empty set with room for `capacity` sockets, registered with the current tokio
    /// runtime's reactor.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub(crate) fn with_capacity(capacity: usize) -> io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        // Deprecated in favour of the `unsafe` `AsyncFd::register_with_interest`, because an
        // arbitrary `AsRawFd` may close or swap its descriptor while registered. `EpollFd` owns
        // its descriptor for its whole life and is never handed out mutably (`get_mut` is not
        // used), which is the condition the unsafe constructor asks the caller to uphold.
        #[allow(deprecated)]
        let epoll = AsyncFd::with_interest(EpollFd(epoll), Interest::READABLE)?;
        Ok(Self {
            epoll,
            sockets: Vec::with_capacity(capacity),
        })
    }

    /// Adds the socket of the next host port.
    pub(crate) fn push(&mut self, socket: S) -> io::Result<()> {
        let index = u64::try_from(self.sockets.len()).expect("a set holds at most 65536 sockets");
        let event = EpollEvent::new(EpollFlags::EPOLLIN, index);
        self.epoll.get_ref().0.add(socket.as_fd(), event)?;
        self.sockets.push(socket);
        Ok(())
    }

    /// The number of sockets.
    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    /// The socket of the `index`th host port.
    fn get(&self, index: usize) -> Option<&S> {
        self.sockets.get(index)
    }

    /// Waits until at least one socket has input, and returns the indexes of those that do (at
    /// most [`READY_BATCH`]; the others are reported by the next call). Cancel-safe.
    async fn ready(&self) -> io::Result<Vec<usize>> {
        loop {
            let mut guard = self.epoll.readable().await?;
            let mut events = [EpollEvent::empty(); READY_BATCH];
            let n = self
                .epoll
                .get_ref()
                .0
                .wait(&mut events, EpollTimeout::ZERO)?;
            if n == 0 {
                // Nothing left: wait for the reactor's next edge (kept if one came meanwhile).
                guard.clear_ready();
                continue;
            }
            return Ok(events[..n]
                .iter()
                .filter_map(|event| usize::try_from(event.data()).ok())
                .collect());
        }
    }
}

/// The bound host sockets of one binding, before its proxy task starts.
#[derive(Debug)]
pub(crate) enum Listeners {
    /// Listening TCP sockets.
    Tcp(PortSet<TcpListener>),
    /// Bound UDP sockets.
    Udp(PortSet<UdpSocket>),
}

impl Listeners {
    /// The number of host sockets.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Tcp(set) => set.len(),
            Self::Udp(set) => set.len(),
        }
    }
}

/// Where a binding forwards: host port `i` of the binding goes to `port + i` of `ip`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backend {
    /// The container's address.
    pub(crate) ip: IpAddr,
    /// The container port of the first host port.
    pub(crate) port: u16,
}

impl Backend {
    /// The container address and port of the `index`th host port.
    fn of(self, index: usize) -> SocketAddr {
        let offset = u16::try_from(index).expect("a range has at most 65536 ports");
        SocketAddr::new(self.ip, self.port.wrapping_add(offset))
    }
}

/// Starts the proxy task of `listeners` on `tasks`, forwarding to `backend` until `stop` says.
pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    listeners: Listeners,
    backend: Backend,
    udp_idle_timeout: Duration,
    stop: StopSignal,
) {
    match listeners {
        Listeners::Tcp(set) => tasks.spawn(tcp::serve(set, backend, stop)),
        Listeners::Udp(set) => tasks.spawn(udp::serve(set, backend, udp_idle_timeout, stop)),
    };
}
