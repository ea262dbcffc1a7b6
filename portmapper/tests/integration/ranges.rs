//! Large port ranges: ports held by other programs inside them, with the proxy on (a listener
//! per port) and off (the kernel's socket tables, then a probe of the ports found there), for
//! every combination of IPv4 and IPv6, wildcard and specific addresses; forwarding through a
//! range's single proxy task; and unmapping every port.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use anyhow::Context;
use libnetwork_portmapper::{Error, PortMapper};
use libnetwork_types::{ErrorKind, PortBinding, Protocol};
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{CONTAINER, LOCALHOST, in_netns, mapper};

/// The first host port of the ranges.
const FIRST: u16 = 20_000;
/// A range long enough for the socket tables to be asked instead of probing each port.
const LARGE: u16 = 1000;
/// The port held by the other program, in the middle of the range.
const HELD: u16 = 20_500;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// `len` host ports of `proto` from `first` on `host_ip`, onto container ports from 10000 of
/// a container address of the host address's family.
fn range(proto: Protocol, host_ip: IpAddr, first: u16, len: u16) -> PortBinding {
    let container = if host_ip.is_ipv4() {
        CONTAINER
    } else {
        ip("fd00::2")
    };
    PortBinding {
        proto,
        ip: Some(container),
        port: 10_000,
        host_ip: Some(host_ip),
        host_port: first,
        host_port_end: first + len - 1,
    }
}

/// Whether mapping `len` ports of `proto` from `first` on `host_ip` is refused because a port
/// is in use by another program (then the error names `host_ip:HELD` and nothing is left
/// reserved); a mapping that works is unmapped again.
async fn refused(
    pm: &PortMapper,
    proto: Protocol,
    host_ip: IpAddr,
    first: u16,
    len: u16,
) -> anyhow::Result<bool> {
    match pm
        .map("br0", CONTAINER, &[range(proto, host_ip, first, len)])
        .await
    {
        Ok(published) => {
            pm.unmap(&published).await?;
            Ok(false)
        }
        Err(e @ Error::PortInUse { .. }) => {
            assert_eq!(e.kind(), ErrorKind::Conflict);
            let held = format!("{}/{proto}", SocketAddr::new(host_ip, HELD));
            assert!(e.to_string().contains(&held), "{e} does not name {held}");
            assert_eq!(pm.allocated_ports(), 0);
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// Asks, with the proxy on and off, for the held port alone (probed or bound) and for a large
/// range around it (socket tables with the proxy off), whether the mapping is refused, and
/// checks every answer against `expected`.
async fn assert_refused(proto: Protocol, ours: &str, expected: bool, held: &str) {
    for proxy in [true, false] {
        let pm = mapper(proxy);
        for (first, len) in [(HELD, 1), (FIRST, LARGE)] {
            let got = refused(&pm, proto, ip(ours), first, len)
                .await
                .unwrap_or_else(|e| panic!("{held}, mapping {ours}: {e:#}"));
            assert_eq!(
                got,
                expected,
                "{held}: mapping {len} {proto} port(s) on {ours} with the proxy {}",
                if proxy { "on" } else { "off" }
            );
        }
    }
}

/// A held port's address, whether it is `IPV6_V6ONLY`, and our host addresses with whether a
/// mapping on each is refused.
type Case = (&'static str, bool, &'static [(&'static str, bool)]);

/// A socket of another program bound to `addr` (IPv6 ones with `v6only` as given), listening
/// for TCP.
fn held(proto: Protocol, addr: &str, v6only: bool) -> Socket {
    let addr = SocketAddr::new(ip(addr), HELD);
    let ty = match proto {
        Protocol::Tcp => Type::STREAM,
        _ => Type::DGRAM,
    };
    let socket = Socket::new(Domain::for_address(addr), ty, None).expect("socket");
    if addr.is_ipv6() {
        socket.set_only_v6(v6only).expect("IPV6_V6ONLY");
    }
    socket
        .bind(&addr.into())
        .expect("bind the other program's port");
    if proto == Protocol::Tcp {
        socket.listen(16).expect("listen");
    }
    socket
}

#[test]
fn tcp_port_held_inside_a_large_range_is_found_for_every_address_combination() {
    in_netns(
        "tcp_port_held_inside_a_large_range_is_found_for_every_address_combination",
        || async {
            let cases: &[Case] = &[
                (
                    "0.0.0.0",
                    false,
                    &[("0.0.0.0", true), ("127.0.0.1", true), ("::", false)],
                ),
                (
                    "127.0.0.1",
                    false,
                    &[("0.0.0.0", true), ("127.0.0.2", false), ("::", false)],
                ),
                (
                    "::",
                    true,
                    &[("0.0.0.0", false), ("::", true), ("::1", true)],
                ),
                (
                    "::",
                    false,
                    &[("0.0.0.0", true), ("127.0.0.1", true), ("::", true)],
                ),
                ("::1", true, &[("::", true), ("0.0.0.0", false)]),
                (
                    "::ffff:127.0.0.1",
                    false,
                    &[
                        ("127.0.0.1", true),
                        ("0.0.0.0", true),
                        ("127.0.0.2", false),
                        ("::", false),
                    ],
                ),
            ];
            for &(addr, v6only, ours) in cases {
                let _other = held(Protocol::Tcp, addr, v6only);
                let name = format!("tcp [{addr}]:{HELD} v6only={v6only}");
                for &(ours, expected) in ours {
                    assert_refused(Protocol::Tcp, ours, expected, &name).await;
                }
            }
            Ok(())
        },
    );
}

#[test]
fn udp_port_held_inside_a_large_range_is_found_for_every_address_combination() {
    in_netns(
        "udp_port_held_inside_a_large_range_is_found_for_every_address_combination",
        || async {
            let cases: &[Case] = &[
                ("0.0.0.0", false, &[("127.0.0.1", true), ("::", false)]),
                (
                    "127.0.0.1",
                    false,
                    &[("0.0.0.0", true), ("127.0.0.2", false)],
                ),
                ("::", true, &[("0.0.0.0", false), ("::1", true)]),
                ("::", false, &[("0.0.0.0", true), ("::", true)]),
                ("::1", true, &[("::", true), ("0.0.0.0", false)]),
            ];
            for &(addr, v6only, ours) in cases {
                let _other = held(Protocol::Udp, addr, v6only);
                let name = format!("udp [{addr}]:{HELD} v6only={v6only}");
                for &(ours, expected) in ours {
                    assert_refused(Protocol::Udp, ours, expected, &name).await;
                }
            }
            Ok(())
        },
    );
}

#[test]
fn tcp_socket_only_bound_inside_a_large_range_holds_its_port() {
    in_netns(
        "tcp_socket_only_bound_inside_a_large_range_holds_its_port",
        || async {
            // Bound, not listening, not connected: the state only recent kernels list.
            let other = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            other.bind(&SocketAddr::new(ip("0.0.0.0"), HELD).into())?;
            assert_refused(Protocol::Tcp, "0.0.0.0", true, "bound-only tcp socket").await;
            Ok(())
        },
    );
}

#[test]
fn connection_from_a_port_inside_a_large_range_holds_it() {
    in_netns(
        "connection_from_a_port_inside_a_large_range_holds_it",
        || async {
            let server = TcpListener::bind((LOCALHOST, 7000))?;
            // A client whose local port is in the range (as an outgoing connection's ephemeral
            // port may be).
            let client = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            client.bind(&SocketAddr::new(LOCALHOST, HELD).into())?;
            client.connect(&SocketAddr::new(LOCALHOST, 7000).into())?;
            let _accepted = server.accept()?;
            // Only the client's side is on the port: the server side is on 7000.
            assert_refused(Protocol::Tcp, "0.0.0.0", true, "connected tcp socket").await;
            Ok(())
        },
    );
}

#[test]
fn socket_in_the_tables_that_the_kernel_lets_bind_beside_does_not_refuse_the_range() {
    in_netns(
        "socket_in_the_tables_that_the_kernel_lets_bind_beside_does_not_refuse_the_range",
        || async {
            // Bound with SO_REUSEADDR and not listening: listed in the socket tables, yet the
            // kernel lets another SO_REUSEADDR socket bind (the probe) and listen (the proxy)
            // on the port, so the port is not reported.
            let other = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            other.set_reuse_address(true)?;
            other.bind(&SocketAddr::new(ip("0.0.0.0"), HELD).into())?;
            assert_refused(
                Protocol::Tcp,
                "0.0.0.0",
                false,
                "bound tcp socket with SO_REUSEADDR",
            )
            .await;
            Ok(())
        },
    );
}

#[test]
fn ephemeral_ports_outside_the_range_do_not_refuse_it() {
    in_netns(
        "ephemeral_ports_outside_the_range_do_not_refuse_it",
        || async {
            // Sockets just outside both ends of the range, and on every address family.
            let _below = TcpListener::bind(("0.0.0.0", FIRST - 1))?;
            let _above = TcpListener::bind(("::", FIRST + LARGE))?;
            let _udp = UdpSocket::bind(("0.0.0.0", FIRST + LARGE))?;
            for proxy in [true, false] {
                let pm = mapper(proxy);
                for proto in [Protocol::Tcp, Protocol::Udp] {
                    assert!(!refused(&pm, proto, ip("0.0.0.0"), FIRST, LARGE).await?);
                }
            }
            Ok(())
        },
    );
}

#[test]
fn unmapping_large_ranges_frees_every_port() {
    in_netns("unmapping_large_ranges_frees_every_port", || async {
        let pm = mapper(true);
        let any = ip("0.0.0.0");
        let bindings = [
            range(Protocol::Tcp, any, FIRST, LARGE),
            range(Protocol::Udp, any, FIRST, LARGE),
        ];
        let published = pm.map("br0", CONTAINER, &bindings).await?;
        assert_eq!(pm.allocated_ports(), 2 * usize::from(LARGE));
        assert!(TcpListener::bind(("0.0.0.0", HELD)).is_err());
        assert!(UdpSocket::bind(("0.0.0.0", HELD)).is_err());
        pm.unmap(&published).await?;
        assert_eq!(pm.allocated_ports(), 0);
        for port in FIRST..FIRST + LARGE {
            TcpListener::bind(("0.0.0.0", port)).with_context(|| format!("tcp {port}"))?;
            UdpSocket::bind(("0.0.0.0", port)).with_context(|| format!("udp {port}"))?;
        }
        // And they can be published again at once.
        pm.map("br0", CONTAINER, &published).await?;
        Ok(())
    });
}

/// A TCP container stand-in on `127.0.0.1:port` that answers each connection with its port
/// and closes.
async fn tcp_answer_port(port: u16) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((LOCALHOST, port)).await?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(port.to_string().as_bytes()).await;
        }
    });
    Ok(())
}

/// A UDP container stand-in on `127.0.0.1:port` that answers each datagram with its port, the
/// datagram and the address it came from.
async fn udp_answer_port(port: u16) -> anyhow::Result<()> {
    let socket = tokio::net::UdpSocket::bind((LOCALHOST, port)).await?;
    tokio::spawn(async move {
        let mut buf = [0_u8; 64];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]);
            let answer = format!("{port}:{text}:{from}");
            let _ = socket.send_to(answer.as_bytes(), from).await;
        }
    });
    Ok(())
}

#[test]
fn every_port_of_a_large_range_forwards_to_its_own_container_port() {
    in_netns(
        "every_port_of_a_large_range_forwards_to_its_own_container_port",
        || async {
            let offsets = [0, 1, 500, LARGE - 1];
            for offset in offsets {
                tcp_answer_port(7000 + offset).await?;
                udp_answer_port(7000 + offset).await?;
            }
            let pm = mapper(true);
            let bindings = [Protocol::Tcp, Protocol::Udp].map(|proto| PortBinding {
                proto,
                ip: Some(LOCALHOST),
                port: 7000,
                host_ip: Some(LOCALHOST),
                host_port: FIRST,
                host_port_end: FIRST + LARGE - 1,
            });
            pm.map("br0", LOCALHOST, &bindings).await?;
            let clients = [
                tokio::net::UdpSocket::bind((LOCALHOST, 0)).await?,
                tokio::net::UdpSocket::bind((LOCALHOST, 0)).await?,
            ];
            // The flow each (client, host port) got, as the container saw it.
            let mut flows = Vec::new();
            for offset in offsets {
                let host_port = FIRST + offset;
                let mut conn = tokio::net::TcpStream::connect((LOCALHOST, host_port)).await?;
                let mut answer = String::new();
                conn.read_to_string(&mut answer).await?;
                assert_eq!(answer, (7000 + offset).to_string(), "tcp {host_port}");
                for (i, client) in clients.iter().enumerate() {
                    for round in 0..2 {
                        let msg = format!("c{i}r{round}");
                        client
                            .send_to(msg.as_bytes(), (LOCALHOST, host_port))
                            .await?;
                        let mut buf = [0_u8; 128];
                        let (n, from) = client.recv_from(&mut buf).await?;
                        // The answer comes back from the host port the client sent to.
                        assert_eq!(from, SocketAddr::new(LOCALHOST, host_port));
                        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let (port, rest) = answer.split_once(':').expect("port:");
                        assert_eq!(port, (7000 + offset).to_string(), "udp {host_port}");
                        let (text, flow) = rest.split_once(':').expect("text:flow");
                        assert_eq!(text, msg);
                        if round == 0 {
                            flows.push(flow.to_owned());
                        } else {
                            // The second datagram went through the same flow.
                            assert_eq!(flows.last().map(String::as_str), Some(flow));
                        }
                    }
                }
            }
            // One flow per client and host port.
            let distinct: std::collections::HashSet<_> = flows.iter().collect();
            assert_eq!(distinct.len(), offsets.len() * clients.len());
            Ok(())
        },
    );
}
