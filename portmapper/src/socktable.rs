//! The kernel's socket tables, asked once for a whole range of host ports: which ports of a
//! binding a socket of another program may hold.
//!
//! Without the userland proxy, a port held by another program must still be reported (see
//! `Inner::probe` in `mapper`). Probe-binding each port of a 10 000-port range costs 10 000
//! `socket`/`bind`/`close` round trips; instead, one `NETLINK_SOCK_DIAG` dump per address
//! family lists the sockets of the caller's network namespace whose local port is in the range
//! (the kernel filters by port with inet_diag bytecode), in every state: listening, connected,
//! closing, in `TIME_WAIT`, and bound but idle (`TCP_BOUND_INACTIVE`, listed by recent kernels
//! only). The ports where such a socket's address overlaps the binding's host address are the
//! candidates, and only those are probe-bound, so the kernel still has the last word on whether
//! the bind would fail (`SO_REUSEADDR`, `IPV6_V6ONLY` and the like).
//!
//! When the kernel cannot list every socket that may hold a port (no `inet_diag`, bound-only
//! TCP sockets not listed, SCTP), the query fails with [`io::ErrorKind::Unsupported`] and the
//! caller probes every port as before.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

use libnetwork_types::Protocol;
use nix::libc;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};

/// `SOCK_DIAG_BY_FAMILY`, the message type of requests and answers.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ROOT | NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;
/// Set on the messages of a dump during which the table changed.
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// `struct inet_diag_msg`.
const MSG_LEN: usize = 72;
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_SKV6ONLY: u16 = 11;
/// Attribute types carry two flag bits above the type.
const NLA_TYPE_MASK: u16 = 0x3fff;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
/// The state of a TCP socket that is bound and nothing else (only recent kernels list it).
const TCP_BOUND_INACTIVE: u32 = 13;
/// Every TCP state, from `TCP_ESTABLISHED` (1) to `TCP_BOUND_INACTIVE`; UDP sockets are
/// `TCP_ESTABLISHED` when connected, `TCP_CLOSE` otherwise.
const ALL_STATES: u32 = ((1 << (TCP_BOUND_INACTIVE + 1)) - 1) & !1;
/// The receive buffer: the kernel makes each part of a dump at most 32 KiB.
const RECV_BUFFER: usize = 32 * 1024;

/// A socket of the kernel's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its local address, as bound (an IPv6 socket may have an IPv4-mapped one).
    pub(crate) addr: IpAddr,
    /// Its local port.
    pub(crate) port: u16,
    /// Whether an IPv6 socket is `IPV6_V6ONLY`; unknown for sockets in `TIME_WAIT`.
    pub(crate) v6only: Option<bool>,
}

/// The ports of `ports` where a `proto` socket of this thread's network namespace is bound to
/// an address that overlaps `host_ip` (as a bind of `host_ip` would see it; IPv6 host sockets
/// are `IPV6_V6ONLY`), sorted and without duplicates. Binding any other port of the range for
/// `proto` on `host_ip` would not meet another socket.
///
/// # Errors
/// [`io::ErrorKind::Unsupported`] when the kernel cannot list every socket that may hold a
/// port (SCTP, or bound-only TCP sockets not listed), or the error of the netlink exchange.
pub(crate) fn occupied_ports(
    proto: Protocol,
    host_ip: IpAddr,
    ports: RangeInclusive<u16>,
) -> io::Result<Vec<u16>> {
    let protocol = match proto {
        Protocol::Tcp if !lists_bound_sockets() => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel does not list bound-only tcp sockets",
            ));
        }
        Protocol::Tcp => libc::IPPROTO_TCP,
        Protocol::Udp => libc::IPPROTO_UDP,
        Protocol::Sctp => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "sctp sockets are not listed",
            ));
        }
    };
    // An IPv4 host address can meet IPv6 sockets that are not IPV6_V6ONLY; an IPv6 one, being
    // IPV6_V6ONLY, only IPv6 sockets.
    let families: &[i32] = match host_ip {
        IpAddr::V4(_) => &[libc::AF_INET, libc::AF_INET6],
        IpAddr::V6(_) => &[libc::AF_INET6],
    };
    let mut diag = DiagSocket::open()?;
    let mut occupied = Vec::new();
    for &family in families {
        diag.dump(family, protocol, ALL_STATES, &ports, |entry| {
            if overlaps(host_ip, entry.addr, entry.v6only) {
                occupied.push(entry.port);
            }
        })?;
    }
    occupied.sort_unstable();
    occupied.dedup();
    Ok(occupied)
}

/// Whether a bind of `ours` (an IPv6 one being `IPV6_V6ONLY`) would meet a socket bound to
/// `theirs`, following the kernel's address comparison for binds (`inet_rcv_saddr_equal`): a
/// wildcard meets every address of its family; an IPv6 wildcard that is not `IPV6_V6ONLY` also
/// meets every IPv4 address, and an IPv4-mapped IPv6 address meets its IPv4 address. When a
/// socket's `IPV6_V6ONLY` is unknown it is taken as unset, which may only add candidates.
pub(crate) fn overlaps(ours: IpAddr, theirs: IpAddr, their_v6only: Option<bool>) -> bool {
    match (ours, theirs) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.is_unspecified() || b.is_unspecified() || a == b,
        (IpAddr::V4(a), IpAddr::V6(b)) => {
            if their_v6only == Some(true) {
                return false;
            }
            if b.is_unspecified() {
                return true;
            }
            match b.to_ipv4_mapped() {
                Some(b) => a.is_unspecified() || b.is_unspecified() || a == b,
                // The kernel makes a socket bound to a specific IPv6 address IPV6_V6ONLY; were
                // it not, only the IPv4 wildcard could meet it.
                None => a.is_unspecified(),
            }
        }
        // Our IPv6 sockets are IPV6_V6ONLY: IPv4 sockets do not meet them.
        (IpAddr::V6(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            b.is_unspecified() || a == b || (a.is_unspecified() && b.to_ipv4_mapped().is_none())
        }
    }
}

/// Whether the kernel lists TCP sockets that are bound and nothing else; without them, the
/// tables would miss a port held by such a socket. Found out once per process, by binding an
/// ephemeral port (which the kernel picks among the free ones) and looking for it.
fn lists_bound_sockets() -> bool {
    static LISTS: OnceLock<bool> = OnceLock::new();
    *LISTS.get_or_init(|| {
        let lists = bound_socket_is_listed();
        tracing::debug!(
            listed = lists.as_ref().ok(),
            error = lists.as_ref().err().map(tracing::field::display),
            "whether the kernel's socket tables list bound-only tcp sockets"
        );
        lists.unwrap_or(false)
    })
}

fn bound_socket_is_listed() -> io::Result<bool> {
    use socket2::{Domain, Socket, Type};
    let bound = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    bound.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
    let port = bound
        .local_addr()?
        .as_socket()
        .map(|addr| addr.port())
        .ok_or_else(|| io::Error::other("a bound ipv4 socket has no ipv4 address"))?;
    let mut listed = false;
    DiagSocket::open()?.dump(
        libc::AF_INET,
        libc::IPPROTO_TCP,
        1 << TCP_BOUND_INACTIVE,
        &(port..=port),
        |entry| listed |= entry.port == port,
    )?;
    Ok(listed)
}

/// A `NETLINK_SOCK_DIAG` socket, created in the calling thread's network namespace.
#[derive(Debug)]
struct DiagSocket {
    fd: OwnedFd,
    seq: u32,
}

impl DiagSocket {
    fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )?;
        Ok(Self { fd, seq: 0 })
    }

    /// Dumps the `protocol` sockets of `family` in `states` whose local port is in `ports`,
    /// calling `each` for every one.
    fn dump(
        &mut self,
        family: i32,
        protocol: i32,
        states: u32,
        ports: &RangeInclusive<u16>,
        mut each: impl FnMut(Entry),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let family = u8::try_from(family).expect("address families fit in a byte");
        let protocol = u8::try_from(protocol).expect("ip protocols fit in a byte");
        let request = dump_request(family, protocol, states, ports, self.seq);
        tracing::trace!(
            family,
            protocol,
            states,
            first_port = ports.start(),
            last_port = ports.end(),
            seq = self.seq,
            "sock_diag dump request"
        );
        sendto(
            self.fd.as_raw_fd(),
            &request,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        let mut buf = vec![0_u8; RECV_BUFFER];
        loop {
            // MSG_TRUNC makes recv return the whole length of a part that did not fit.
            let len = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC)?;
            let part = buf.get(..len).ok_or_else(|| {
                invalid(format!(
                    "sock_diag answer of {len} bytes is larger than the buffer"
                ))
            })?;
            if parse_part(part, self.seq, &mut each)? {
                return Ok(());
            }
        }
    }
}

/// A dump request of `inet_diag` for the sockets of `family` and `protocol` in `states`, with
/// bytecode that keeps those whose local port is in `ports`.
fn dump_request(
    family: u8,
    protocol: u8,
    states: u32,
    ports: &RangeInclusive<u16>,
    seq: u32,
) -> Vec<u8> {
    let bytecode = port_range_bytecode(ports);
    let attr_len = 4 + bytecode.len();
    let len = NLMSG_HDRLEN + REQ_LEN + attr_len;
    let mut msg = Vec::with_capacity(len);
    // struct nlmsghdr
    msg.extend_from_slice(&u32::try_from(len).expect("a short request").to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0_u32.to_ne_bytes());
    // struct inet_diag_req_v2: family, protocol, extensions, padding, states, and a zero socket
    // id (no exact match).
    msg.extend_from_slice(&[family, protocol, 0, 0]);
    msg.extend_from_slice(&states.to_ne_bytes());
    msg.extend_from_slice(&[0; 48]);
    // INET_DIAG_REQ_BYTECODE
    msg.extend_from_slice(
        &u16::try_from(attr_len)
            .expect("a short attribute")
            .to_ne_bytes(),
    );
    msg.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    msg.extend_from_slice(&bytecode);
    msg
}

/// `sport >= start && sport <= end` as `inet_diag` bytecode. Each comparison is an operation
/// (`code`, `yes` offset, `no` offset) followed by a word holding the port; a failed comparison
/// jumps 4 bytes past the end of the program, which rejects the socket, and running off the end
/// exactly accepts it.
fn port_range_bytecode(ports: &RangeInclusive<u16>) -> [u8; 16] {
    let mut code = [0_u8; 16];
    code[0] = INET_DIAG_BC_S_GE;
    code[1] = 8;
    code[2..4].copy_from_slice(&(16_u16 + 4).to_ne_bytes());
    code[6..8].copy_from_slice(&ports.start().to_ne_bytes());
    code[8] = INET_DIAG_BC_S_LE;
    code[9] = 8;
    code[10..12].copy_from_slice(&(8_u16 + 4).to_ne_bytes());
    code[14..16].copy_from_slice(&ports.end().to_ne_bytes());
    code
}

/// Reads one part of the answer to the request `seq`, calling `each` for every socket in it.
/// Returns whether the dump is done.
fn parse_part(mut part: &[u8], seq: u32, each: &mut impl FnMut(Entry)) -> io::Result<bool> {
    while part.len() >= NLMSG_HDRLEN {
        let len = usize::try_from(ne_u32(part, 0)).unwrap_or(usize::MAX);
        let (ty, flags, msg_seq) = (ne_u16(part, 4), ne_u16(part, 6), ne_u32(part, 8));
        let Some(payload) = part.get(NLMSG_HDRLEN..len).filter(|_| len >= NLMSG_HDRLEN) else {
            return Err(invalid(format!("malformed netlink message of {len} bytes")));
        };
        tracing::trace!(ty, flags, seq = msg_seq, len, "sock_diag answer");
        if msg_seq == seq {
            match ty {
                NLMSG_DONE => {
                    // A dump that failed half-way ends with the error.
                    return match payload.get(..4).map(|e| ne_i32(e, 0)) {
                        Some(errno) if errno < 0 => Err(io::Error::from_raw_os_error(-errno)),
                        _ => Ok(true),
                    };
                }
                NLMSG_ERROR => {
                    let errno = payload.get(..4).map_or(0, |e| ne_i32(e, 0));
                    if errno < 0 {
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                }
                SOCK_DIAG_BY_FAMILY => {
                    if flags & NLM_F_DUMP_INTR != 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::Interrupted,
                            "the socket table changed during the dump",
                        ));
                    }
                    let entry = parse_entry(payload)?;
                    tracing::trace!(addr = %entry.addr, port = entry.port, v6only = entry.v6only, "socket in the range");
                    each(entry);
                }
                _ => {}
            }
        }
        part = part.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(false)
}

/// A `struct inet_diag_msg` and its attributes.
fn parse_entry(msg: &[u8]) -> io::Result<Entry> {
    if msg.len() < MSG_LEN {
        return Err(invalid(format!("inet_diag message of {} bytes", msg.len())));
    }
    // family, state, timer, retransmits, then the socket id: source port (big-endian),
    // destination port, source address (4 words), destination address, interface, cookie.
    let port = u16::from_be_bytes([msg[4], msg[5]]);
    let src = &msg[8..24];
    let addr = match i32::from(msg[0]) {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
        libc::AF_INET6 => {
            let octets: [u8; 16] = src.try_into().expect("16 bytes");
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        family => return Err(invalid(format!("inet_diag message of family {family}"))),
    };
    let mut v6only = None;
    let mut attrs = &msg[MSG_LEN..];
    while attrs.len() >= 4 {
        let len = usize::from(ne_u16(attrs, 0));
        let ty = ne_u16(attrs, 2) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return Err(invalid(format!("inet_diag attribute of {len} bytes")));
        }
        if ty == INET_DIAG_SKV6ONLY && len > 4 {
            v6only = Some(attrs[4] != 0);
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(Entry { addr, port, v6only })
}

fn ne_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([buf[at], buf[at + 1]])
}

fn ne_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn ne_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_addresses_meet_their_wildcard_and_themselves() {
        assert!(overlaps(ip("0.0.0.0"), ip("127.0.0.1"), None));
        assert!(overlaps(ip("127.0.0.1"), ip("0.0.0.0"), None));
        assert!(overlaps(ip("127.0.0.1"), ip("127.0.0.1"), None));
        assert!(!overlaps(ip("127.0.0.1"), ip("127.0.0.2"), None));
    }

    #[test]
    fn ipv4_meets_ipv6_sockets_only_when_they_are_not_v6only() {
        assert!(overlaps(ip("0.0.0.0"), ip("::"), Some(false)));
        assert!(overlaps(ip("10.0.0.1"), ip("::"), Some(false)));
        assert!(!overlaps(ip("0.0.0.0"), ip("::"), Some(true)));
        // Unknown (TIME_WAIT) counts as not v6only.
        assert!(overlaps(ip("0.0.0.0"), ip("::"), None));
        assert!(overlaps(ip("10.0.0.1"), ip("::ffff:10.0.0.1"), Some(false)));
        assert!(overlaps(ip("0.0.0.0"), ip("::ffff:10.0.0.1"), Some(false)));
        assert!(!overlaps(
            ip("10.0.0.2"),
            ip("::ffff:10.0.0.1"),
            Some(false)
        ));
        assert!(!overlaps(ip("10.0.0.1"), ip("fd00::1"), Some(true)));
    }

    #[test]
    fn ipv6_meets_only_ipv6_sockets() {
        assert!(!overlaps(ip("::"), ip("0.0.0.0"), None));
        assert!(!overlaps(ip("::1"), ip("127.0.0.1"), None));
        assert!(overlaps(ip("::"), ip("::1"), Some(true)));
        assert!(overlaps(ip("::1"), ip("::"), Some(false)));
        assert!(overlaps(ip("::1"), ip("::1"), Some(true)));
        assert!(!overlaps(ip("::1"), ip("fd00::1"), Some(true)));
        // A v6only wildcard does not meet IPv4-mapped addresses.
        assert!(!overlaps(ip("::"), ip("::ffff:10.0.0.1"), Some(false)));
    }

    #[test]
    fn occupied_ports_are_those_whose_sockets_a_bind_of_the_host_address_meets() {
        use socket2::{Domain, Socket, Type};
        let name = "occupied_ports_are_those_whose_sockets_a_bind_of_the_host_address_meets";
        if !libnetwork_testutil::privileged(name) {
            return;
        }
        libnetwork_testutil::in_new_netns(|| {
            let socket = |ty: Type, addr: &str, port: u16, v6only: bool| {
                let addr = SocketAddr::new(ip(addr), port);
                let socket = Socket::new(Domain::for_address(addr), ty, None).unwrap();
                if addr.is_ipv6() {
                    socket.set_only_v6(v6only).unwrap();
                }
                socket.bind(&addr.into()).unwrap();
                if ty == Type::STREAM {
                    socket.listen(1).unwrap();
                }
                socket
            };
            let _sockets = [
                socket(Type::STREAM, "0.0.0.0", 30000, false),
                socket(Type::STREAM, "::", 30001, true),
                socket(Type::STREAM, "::", 30002, false),
                socket(Type::STREAM, "127.0.0.1", 30003, false),
                socket(Type::STREAM, "::1", 30004, true),
                socket(Type::DGRAM, "0.0.0.0", 30005, false),
                socket(Type::STREAM, "::ffff:127.0.0.1", 30006, false),
                // Outside the range.
                socket(Type::STREAM, "0.0.0.0", 29999, false),
                socket(Type::STREAM, "::", 30010, false),
            ];
            let occupied = |proto, host: &str| occupied_ports(proto, ip(host), 30000..=30009);
            let tcp = Protocol::Tcp;
            assert_eq!(
                occupied(tcp, "0.0.0.0").unwrap(),
                [30000, 30002, 30003, 30006]
            );
            assert_eq!(
                occupied(tcp, "127.0.0.1").unwrap(),
                [30000, 30002, 30003, 30006]
            );
            assert_eq!(occupied(tcp, "127.0.0.2").unwrap(), [30000, 30002]);
            assert_eq!(occupied(tcp, "::").unwrap(), [30001, 30002, 30004]);
            assert_eq!(occupied(tcp, "::1").unwrap(), [30001, 30002, 30004]);
            assert_eq!(occupied(Protocol::Udp, "0.0.0.0").unwrap(), [30005]);
            assert_eq!(occupied(Protocol::Udp, "::").unwrap(), [0_u16; 0]);
            let sctp = occupied(Protocol::Sctp, "0.0.0.0").unwrap_err();
            assert_eq!(sctp.kind(), io::ErrorKind::Unsupported);
        });
    }

    #[test]
    fn bytecode_compares_the_source_port_with_both_ends() {
        let code = port_range_bytecode(&(20000..=29999));
        assert_eq!(
            (code[0], code[1], ne_u16(&code, 2)),
            (INET_DIAG_BC_S_GE, 8, 20)
        );
        assert_eq!(ne_u16(&code, 6), 20000);
        assert_eq!(
            (code[8], code[9], ne_u16(&code, 10)),
            (INET_DIAG_BC_S_LE, 8, 12)
        );
        assert_eq!(ne_u16(&code, 14), 29999);
    }

    #[test]
    fn request_is_a_dump_of_the_family_and_protocol_with_the_bytecode() {
        let msg = dump_request(10, 17, ALL_STATES, &(1..=2), 7);
        assert_eq!(msg.len(), NLMSG_HDRLEN + REQ_LEN + 4 + 16);
        assert_eq!(ne_u32(&msg, 0) as usize, msg.len());
        assert_eq!(ne_u16(&msg, 4), SOCK_DIAG_BY_FAMILY);
        assert_eq!(ne_u16(&msg, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(ne_u32(&msg, 8), 7);
        assert_eq!(&msg[16..18], &[10, 17]);
        assert_eq!(ne_u32(&msg, 20), ALL_STATES);
        assert_eq!(ne_u16(&msg, 74), INET_DIAG_REQ_BYTECODE);
    }

    /// A netlink message of `ty` with `payload`, padded to 4 bytes.
    fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut msg = Vec::new();
        msg.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0_u32.to_ne_bytes());
        msg.extend_from_slice(payload);
        msg.resize(len.next_multiple_of(4), 0);
        msg
    }

    /// An inet_diag message for a socket on `[addr]:port`, with a v6only attribute if given.
    fn diag(addr: Ipv6Addr, port: u16, v6only: Option<bool>) -> Vec<u8> {
        let mut msg = vec![10_u8, 10, 0, 0];
        msg.extend_from_slice(&port.to_be_bytes());
        msg.extend_from_slice(&[0, 0]);
        msg.extend_from_slice(&addr.octets());
        msg.resize(MSG_LEN, 0);
        // An attribute before the one we want, whose length needs padding.
        msg.extend_from_slice(&5_u16.to_ne_bytes());
        msg.extend_from_slice(&5_u16.to_ne_bytes());
        msg.extend_from_slice(&[9, 0, 0, 0]);
        if let Some(v6only) = v6only {
            msg.extend_from_slice(&5_u16.to_ne_bytes());
            msg.extend_from_slice(&INET_DIAG_SKV6ONLY.to_ne_bytes());
            msg.extend_from_slice(&[u8::from(v6only), 0, 0, 0]);
        }
        msg
    }

    #[test]
    fn answer_parts_yield_each_socket_until_done() {
        let mut part = message(
            SOCK_DIAG_BY_FAMILY,
            2,
            3,
            &diag(Ipv6Addr::LOCALHOST, 8080, Some(true)),
        );
        part.extend(message(
            SOCK_DIAG_BY_FAMILY,
            2,
            3,
            &diag(Ipv6Addr::UNSPECIFIED, 8081, None),
        ));
        // An answer to another request is ignored.
        part.extend(message(
            SOCK_DIAG_BY_FAMILY,
            2,
            2,
            &diag(Ipv6Addr::LOCALHOST, 1, None),
        ));
        let mut seen = Vec::new();
        assert!(!parse_part(&part, 3, &mut |e| seen.push(e)).unwrap());
        assert_eq!(
            seen,
            [
                Entry {
                    addr: ip("::1"),
                    port: 8080,
                    v6only: Some(true)
                },
                Entry {
                    addr: ip("::"),
                    port: 8081,
                    v6only: None
                },
            ]
        );
        let done = message(NLMSG_DONE, 2, 3, &0_i32.to_ne_bytes());
        assert!(parse_part(&done, 3, &mut |e| seen.push(e)).unwrap());
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn errors_and_interrupted_dumps_fail_the_query() {
        let error = message(NLMSG_ERROR, 0, 1, &(-libc::ENOENT).to_ne_bytes());
        let e = parse_part(&error, 1, &mut |_| {}).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let failed = message(NLMSG_DONE, 2, 1, &(-libc::ENOBUFS).to_ne_bytes());
        let e = parse_part(&failed, 1, &mut |_| {}).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS));
        let changed = message(
            SOCK_DIAG_BY_FAMILY,
            NLM_F_DUMP_INTR,
            1,
            &diag(Ipv6Addr::LOCALHOST, 1, None),
        );
        let e = parse_part(&changed, 1, &mut |_| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        let short = message(SOCK_DIAG_BY_FAMILY, 0, 1, &[10, 0, 0]);
        let e = parse_part(&short, 1, &mut |_| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
