//! Host sockets: the proxy's listeners and the probe that finds ports held by other programs.
//!
//! Every socket is created by the thread that runs the caller's future, so it lives in that
//! thread's network namespace (see the crate docs). Sockets are made non-blocking and
//! close-on-exec by `socket(2)` itself, and the proxy's sockets stay plain standard-library
//! sockets: they are watched through their range's epoll set (see `proxy::PortSet`), not
//! registered with the tokio reactor one by one.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use libnetwork_types::Protocol;
use socket2::{Domain, Socket, Type};

/// The backlog asked for on TCP listeners; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds and listens on `addr`: a TCP socket of the proxy, non-blocking.
pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = bound_socket(addr, Type::STREAM, None)?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Binds `addr`: a UDP socket of the proxy, non-blocking.
pub(crate) fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    bound_socket(addr, Type::DGRAM, None).map(Into::into)
}

/// What a probe found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probed {
    /// The port could be bound: nothing else holds it.
    Free,
    /// The kernel has no SCTP, so there is nothing to probe (and no SCTP socket can hold the
    /// port either).
    Unsupported,
}

/// Binds `addr` for `proto` and closes the socket again, to find out whether another program
/// holds the port (what Docker does when the userland proxy is off). A bind is enough: it fails
/// on a listening socket even with `SO_REUSEADDR`.
pub(crate) fn probe(addr: SocketAddr, proto: Protocol) -> io::Result<Probed> {
    match proto {
        Protocol::Tcp => bound_socket(addr, Type::STREAM, None).map(|_| Probed::Free),
        Protocol::Udp => bound_socket(addr, Type::DGRAM, None).map(|_| Probed::Free),
        Protocol::Sctp => {
            let sctp = socket2::Protocol::from(i32::from(Protocol::Sctp.number()));
            match bound_socket(addr, Type::STREAM, Some(sctp)) {
                Ok(_) => Ok(Probed::Free),
                Err(e) if sctp_unsupported(&e) => Ok(Probed::Unsupported),
                Err(e) => Err(e),
            }
        }
    }
}

/// A non-blocking, close-on-exec socket bound to `addr` (both flags set by `socket(2)`, so no
/// `fcntl` follows). Stream sockets get `SO_REUSEADDR` so that connections of an earlier mapping
/// lingering in `TIME_WAIT` do not block the port (as Go's listeners in docker-proxy); datagram
/// sockets do not, since on UDP it would let two sockets share the port. IPv6 sockets are
/// `IPV6_V6ONLY`, so `[::]:p` and `0.0.0.0:p` are separate bindings, as the port allocator sees
/// them.
fn bound_socket(
    addr: SocketAddr,
    ty: Type,
    protocol: Option<socket2::Protocol>,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty.nonblocking(), protocol)?;
    if ty == Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
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
