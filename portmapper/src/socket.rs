//! Host sockets: the proxy's listeners and the probe that finds ports held by other programs.
//!
//! Every socket is created by the thread that runs the caller's future, so it lives in that
//! thread's network namespace (see the crate docs).

use std::io;
use std::net::SocketAddr;

use libnetwork_types::Protocol;
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

/// The backlog asked for on TCP listeners; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// A bound host socket, registered with the tokio reactor, waiting for its proxy task.
#[derive(Debug)]
pub(crate) enum Listener {
    /// A listening TCP socket.
    Tcp(TcpListener),
    /// A bound UDP socket.
    Udp(UdpSocket),
}

/// Binds the proxy's socket for `proto` on `addr`. SCTP is not proxied: `None`.
///
/// Must run inside a tokio runtime (the socket is registered with its reactor).
pub(crate) fn bind_listener(addr: SocketAddr, proto: Protocol) -> io::Result<Option<Listener>> {
    match proto {
        Protocol::Tcp => {
            let socket = bound_socket(addr, Type::STREAM, None)?;
            socket.listen(LISTEN_BACKLOG)?;
            TcpListener::from_std(socket.into()).map(|l| Some(Listener::Tcp(l)))
        }
        Protocol::Udp => {
            let socket = bound_socket(addr, Type::DGRAM, None)?;
            UdpSocket::from_std(socket.into()).map(|s| Some(Listener::Udp(s)))
        }
        Protocol::Sctp => Ok(None),
    }
}

/// Binds `addr` for `proto` and closes the socket again, to find out whether another program
/// holds the port (what Docker does when the userland proxy is off). A bind is enough: it fails
/// on a listening socket even with `SO_REUSEADDR`. SCTP is probed when the kernel has it and
/// skipped when it does not.
pub(crate) fn probe(addr: SocketAddr, proto: Protocol) -> io::Result<()> {
    match proto {
        Protocol::Tcp => bound_socket(addr, Type::STREAM, None).map(drop),
        Protocol::Udp => bound_socket(addr, Type::DGRAM, None).map(drop),
        Protocol::Sctp => {
            let sctp = socket2::Protocol::from(i32::from(Protocol::Sctp.number()));
            match bound_socket(addr, Type::STREAM, Some(sctp)) {
                Ok(socket) => drop(socket),
                Err(e) if sctp_unsupported(&e) => {
                    tracing::debug!(%addr, "sctp is not available in this kernel, probe skipped");
                }
                Err(e) => return Err(e),
            }
            Ok(())
        }
    }
}

/// A non-blocking, close-on-exec socket bound to `addr`. Stream sockets get `SO_REUSEADDR` so
/// that connections of an earlier mapping lingering in `TIME_WAIT` do not block the port (as Go's
/// listeners in docker-proxy); datagram sockets do not, since on UDP it would let two sockets
/// share the port. IPv6 sockets are `IPV6_V6ONLY`, so `[::]:p` and `0.0.0.0:p` are separate
/// bindings, as the port allocator sees them.
fn bound_socket(
    addr: SocketAddr,
    ty: Type,
    protocol: Option<socket2::Protocol>,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, protocol)?;
    if ty == Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Whether a socket() failure says the kernel lacks SCTP.
fn sctp_unsupported(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EPROTONOSUPPORT | Errno::ESOCKTNOSUPPORT | Errno::EAFNOSUPPORT)
    )
}

/// Whether a bind failure means the port is held by another socket.
pub(crate) fn is_addr_in_use(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrInUse
}

/// Whether an I/O failure means the process or the system ran out of a resource (file
/// descriptors, buffer memory), so that a later retry may succeed.
pub(crate) fn is_resource_exhausted(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
}
