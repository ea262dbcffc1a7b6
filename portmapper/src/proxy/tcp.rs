//! The TCP proxy: libnetwork's `TCPProxy` as one task per binding.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::{Backend, PortSet, StopSignal, stopped};
use crate::socket::is_resource_exhausted;

/// How long the accept loop pauses after running out of file descriptors or memory, so that a
/// full process does not spin on a listener that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The most connections taken from one listener in a row, so that a busy port does not starve
/// the other ports of its range (the set reports it again).
const ACCEPT_BATCH: usize = 32;

/// Accepts connections on every listener of `listeners` and forwards each one to the
/// listener's container port, until `stop` says; then closes the listeners and every
/// connection it forwards before returning.
pub(crate) async fn serve(listeners: PortSet<TcpListener>, backend: Backend, mut stop: StopSignal) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            ready = listeners.ready() => match ready {
                Ok(ready) => {
                    for index in ready {
                        let Some(listener) = listeners.get(index) else { continue };
                        let backend = backend.of(index);
                        if let Err(e) = accept_batch(listener, backend, &mut connections) {
                            tracing::debug!(%backend, error = %e, "proxy accept failed, pausing");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(%backend.ip, error = %e, "proxy listener set failed");
                    break;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listeners);
    connections.shutdown().await;
}

/// Accepts the connections waiting on `listener` (at most [`ACCEPT_BATCH`]) and starts
/// forwarding each to `backend`. Fails only when the process or the system is out of a
/// resource (file descriptors, memory).
fn accept_batch(
    listener: &TcpListener,
    backend: SocketAddr,
    connections: &mut JoinSet<()>,
) -> io::Result<()> {
    for _ in 0..ACCEPT_BATCH {
        let accepted = listener.accept().and_then(|(client, peer)| {
            client.set_nonblocking(true)?;
            Ok((TcpStream::from_std(client)?, peer))
        });
        match accepted {
            Ok((client, peer)) => {
                connections.spawn(forward(client, peer, backend));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if is_resource_exhausted(&e) => return Err(e),
            // A connection reset before it was accepted, and the like: the set reports the
            // listener again if more are waiting.
            Err(e) => {
                tracing::debug!(%backend, error = %e, "proxy accept failed");
                break;
            }
        }
    }
    Ok(())
}

/// Connects to `backend` and copies bytes both ways until both directions are closed. An end of
/// stream from one side shuts down writing towards the other (half-close), and the other
/// direction goes on until it ends too.
async fn forward(mut client: TcpStream, peer: SocketAddr, backend: SocketAddr) {
    let mut upstream = match TcpStream::connect(backend).await {
        Ok(upstream) => upstream,
        Err(e) => {
            // Dropping the client closes its connection, as docker-proxy does.
            tracing::debug!(%peer, %backend, error = %e, "proxy connect to container failed");
            return;
        }
    };
    match copy_bidirectional(&mut client, &mut upstream).await {
        Ok((sent, received)) => {
            tracing::trace!(%peer, %backend, sent, received, "proxied connection closed");
        }
        Err(e) => tracing::trace!(%peer, %backend, error = %e, "proxied connection failed"),
    }
}
