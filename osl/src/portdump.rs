//! A lean dump of bridge ports: `bridge link show` read with a socket of its own and a parser
//! that looks only at what a [`Link`] holds.
//!
//! The route handle decodes every attribute of every answer into owned values (bridge port
//! options, link stats, ...). On a host with a thousand veths that is most of the cost of the
//! dump: about 10 ms of decoding for 4 ms of kernel work, and several times that when the
//! process is busy starting. This reader copies nothing but the name.
//!
//! The socket is opened in the namespace of the calling thread: [`crate::Host::bridge_ports`]
//! runs it on a thread inside the host's namespace.

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use tracing::trace;

use crate::link::{Link, MacAddr};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const AF_BRIDGE: u8 = 7;
/// `struct ifinfomsg`: family, pad, type, index, flags, change.
const IFINFOMSG_LEN: usize = 16;
const IFF_UP: u32 = 0x1;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// How long to wait for the kernel (it answers a dump at once; this guards against a kernel
/// that never does).
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// The request's sequence number: the socket serves one dump.
const SEQ: u32 = 1;

/// Every link enslaved to a bridge in the calling thread's namespace, as
/// [`NetlinkHandle::bridge_ports`](crate::NetlinkHandle::bridge_ports) lists them. Blocking.
pub(crate) fn bridge_ports() -> io::Result<Vec<Link>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    setsockopt(
        &socket,
        sockopt::ReceiveTimeout,
        &TimeVal::new(RECV_TIMEOUT.as_secs().try_into().unwrap_or(5), 0),
    )?;
    let request = request();
    trace!(bytes = request.len(), "netlink dump of bridge ports");
    socket.send_to(&request, &SocketAddr::new(0, 0), 0)?;
    let mut ports = Vec::new();
    // Large enough for any datagram of a dump (the kernel fills at most 32 KiB).
    let mut rx = Vec::with_capacity(64 * 1024);
    loop {
        rx.clear();
        socket.recv(&mut rx, 0)?;
        match parse(&rx, &mut ports) {
            Part::More => {}
            Part::Done => return Ok(ports),
            Part::Failed(errno) => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// `RTM_GETLINK` dump request for the bridge family, with an empty `ifinfomsg`.
fn request() -> Vec<u8> {
    let len = u32::try_from(NLMSG_HDRLEN + IFINFOMSG_LEN).unwrap_or(u32::MAX);
    let mut buf = Vec::with_capacity(NLMSG_HDRLEN + IFINFOMSG_LEN);
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf.extend_from_slice(&SEQ.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.push(AF_BRIDGE);
    buf.resize(NLMSG_HDRLEN + IFINFOMSG_LEN, 0);
    buf
}

/// What a datagram of the answer brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    More,
    Done,
    /// The kernel refused the dump with this errno.
    Failed(i32),
}

fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([data[at], data[at + 1]])
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Reads the messages of one datagram, adding the ports (links with a master) to `out`.
fn parse(mut data: &[u8], out: &mut Vec<Link>) -> Part {
    let mut part = Part::More;
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            break;
        }
        let message = &data[..len];
        if u32_at(message, 8) == SEQ {
            match u16_at(message, 4) {
                NLMSG_DONE => part = Part::Done,
                NLMSG_ERROR if len >= NLMSG_HDRLEN + 4 => {
                    let errno = -(u32_at(message, NLMSG_HDRLEN) as i32);
                    part = if errno == 0 {
                        Part::Done
                    } else {
                        Part::Failed(errno)
                    };
                }
                RTM_NEWLINK if len >= NLMSG_HDRLEN + IFINFOMSG_LEN => {
                    if let Some(link) = port(&message[NLMSG_HDRLEN..])
                        && link.master.is_some()
                    {
                        out.push(link);
                    }
                }
                _ => {}
            }
        }
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    part
}

/// The link in a `RTM_NEWLINK` payload (`ifinfomsg` then attributes); `None` without a name.
fn port(payload: &[u8]) -> Option<Link> {
    let mut link = Link {
        index: u32_at(payload, 4),
        name: String::new(),
        mac: None,
        mtu: 0,
        master: None,
        up: u32_at(payload, 8) & IFF_UP != 0,
        kind: None,
    };
    let mut attrs = &payload[IFINFOMSG_LEN..];
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0));
        if len < 4 || len > attrs.len() {
            break;
        }
        let value = &attrs[4..len];
        match u16_at(attrs, 2) & NLA_TYPE_MASK {
            IFLA_IFNAME => {
                let name = value.split(|b| *b == 0).next().unwrap_or_default();
                link.name = String::from_utf8_lossy(name).into_owned();
            }
            IFLA_ADDRESS => link.mac = MacAddr::from_slice(value),
            IFLA_MTU if value.len() >= 4 => link.mtu = u32_at(value, 0),
            IFLA_MASTER if value.len() >= 4 => {
                link.master = Some(u32_at(value, 0)).filter(|m| *m != 0);
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        attrs = &attrs[aligned.min(attrs.len())..];
    }
    (!link.name.is_empty()).then_some(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
        let len = u16::try_from(4 + value.len()).unwrap();
        buf.extend_from_slice(&len.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(value);
        while !buf.len().is_multiple_of(4) {
            buf.push(0);
        }
    }

    /// A `RTM_NEWLINK` answer as the kernel sends one for a bridge port.
    fn answer(seq: u32, index: u32, flags: u32, name: &str, master: Option<u32>) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        m.extend_from_slice(&0x2u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[AF_BRIDGE, 0, 1, 0]);
        m.extend_from_slice(&index.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        attr(&mut m, IFLA_IFNAME, format!("{name}\0").as_bytes());
        // Attributes the reader skips: a nested one (with the nested flag) and an odd length.
        attr(&mut m, 26 | 0x8000, &[8, 0, 1, 0, 0, 0, 0, 0]);
        attr(&mut m, 33, &[1]);
        if let Some(master) = master {
            attr(&mut m, IFLA_MASTER, &master.to_ne_bytes());
        }
        attr(&mut m, IFLA_MTU, &1500u32.to_ne_bytes());
        attr(&mut m, IFLA_ADDRESS, &[2, 0x42, 0xac, 0x11, 0, 2]);
        let len = u32::try_from(m.len()).unwrap();
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    fn end(seq: u32, kind: u16, errno: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&20u32.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0x2u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&errno.to_ne_bytes());
        m
    }

    #[test]
    fn the_request_asks_for_a_dump_of_the_bridge_family() {
        let r = request();
        assert_eq!(r.len(), 32);
        assert_eq!(u32_at(&r, 0), 32);
        assert_eq!(u16_at(&r, 4), RTM_GETLINK);
        assert_eq!(u16_at(&r, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(r[16], AF_BRIDGE);
        assert!(r[17..].iter().all(|b| *b == 0));
    }

    #[test]
    fn ports_are_read_with_index_name_master_state_mtu_and_mac() {
        let mut data = answer(SEQ, 7, IFF_UP | 0x1000, "veth1234567", Some(3));
        data.extend(answer(SEQ, 8, 0x1000, "veth89abcde", Some(4)));
        let mut out = Vec::new();
        assert_eq!(parse(&data, &mut out), Part::More);
        let seen: Vec<_> = out
            .iter()
            .map(|l| (l.index, l.name.as_str(), l.master, l.up, l.mtu))
            .collect();
        assert_eq!(
            seen,
            [
                (7, "veth1234567", Some(3), true, 1500),
                (8, "veth89abcde", Some(4), false, 1500)
            ]
        );
        assert_eq!(
            out[0].mac.map(|m| m.to_string()),
            Some("02:42:ac:11:00:02".to_string())
        );
        assert!(out.iter().all(|l| l.kind.is_none()));
    }

    #[test]
    fn links_without_a_master_and_answers_to_other_requests_are_skipped() {
        let mut data = answer(SEQ, 2, IFF_UP, "br0", None);
        data.extend(answer(SEQ + 1, 9, IFF_UP, "vethother", Some(2)));
        data.extend(end(SEQ + 1, NLMSG_DONE, 0));
        let mut out = Vec::new();
        assert_eq!(parse(&data, &mut out), Part::More);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn the_dump_ends_with_done_or_an_error() {
        let mut out = Vec::new();
        assert_eq!(parse(&end(SEQ, NLMSG_DONE, 0), &mut out), Part::Done);
        assert_eq!(
            parse(&end(SEQ, NLMSG_ERROR, -nix::libc::EBUSY), &mut out),
            Part::Failed(nix::libc::EBUSY)
        );
        // A truncated message is not read past.
        let whole = answer(SEQ, 7, IFF_UP, "veth1234567", Some(3));
        assert_eq!(parse(&whole[..whole.len() - 4], &mut out), Part::More);
        assert!(out.is_empty());
    }
}
