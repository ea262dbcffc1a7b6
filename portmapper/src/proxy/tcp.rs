//! The TCP proxy: libnetwork's `TCPProxy` as a task.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{StopSignal, stopped};
use crate::socket::is_resource_exhausted;

/// How long the accept loop pauses after running out of file descriptors or memory, so that a
/// full process does not spin on a listener that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` and forwards each one to `backend`, until `stop` says;
/// then closes the listener and every connection it forwards before returning.
pub(crate) async fn serve(listener: TcpListener, backend: SocketAddr, mut stop: StopSignal) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    connections.spawn(forward(client, peer, backend));
                }
                Err(e) => {
                    tracing::debug!(%backend, error = %e, "proxy accept failed");
                    if is_resource_exhausted(&e) {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
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
