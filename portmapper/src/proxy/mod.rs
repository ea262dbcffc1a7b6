//! The userland proxy: one tokio task per published host port, forwarding to the container.
//!
//! This replaces libnetwork's `docker-proxy` child process (one per port). A listener task owns
//! its socket and the tasks of its connections or flows (in a [`JoinSet`](tokio::task::JoinSet)).
//! When the stop signal comes (the [`Stop`] sender is dropped), it stops every task it started,
//! waits for them and returns, so once the listener tasks have ended every socket of the
//! mapping is closed: the host port, the connections and the flows. Idle
//! listeners hold no buffers: a TCP connection's copy buffers exist while it is open, and UDP
//! datagrams are read into one buffer per worker thread before being copied out at their size.
//!
//! - [`tcp`]: accept, connect to the container, copy both ways with half-close.
//! - [`udp`]: one flow per client address with an idle timeout.

pub(crate) mod tcp;
pub(crate) mod udp;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::socket::Listener;

/// The stop signal of a mapping's proxy tasks: dropping it stops them all.
pub(crate) type Stop = watch::Sender<()>;

/// What a proxy task watches for the stop signal.
pub(crate) type StopSignal = watch::Receiver<()>;

/// A stop signal and the receiver to give its tasks.
pub(crate) fn stop_signal() -> (Stop, StopSignal) {
    watch::channel(())
}

/// Waits until the stop signal's sender is dropped.
async fn stopped(signal: &mut StopSignal) {
    // Nothing is ever sent: `changed` only returns, with an error, once the sender is gone.
    while signal.changed().await.is_ok() {}
}

/// Starts the proxy task of `listener` on `tasks`, forwarding to `backend` until `stop` says.
pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    listener: Listener,
    backend: SocketAddr,
    udp_idle_timeout: Duration,
    stop: StopSignal,
) {
    match listener {
        Listener::Tcp(listener) => tasks.spawn(tcp::serve(listener, backend, stop)),
        Listener::Udp(socket) => tasks.spawn(udp::serve(socket, backend, udp_idle_timeout, stop)),
    };
}
