//! Ports held by other programs on the host.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use libnetwork_portmapper::{Error, PortMapper, PortMapperConfig, PortRange};
use libnetwork_types::{ErrorKind, Protocol};

use crate::{CONTAINER, DYNAMIC, binding, in_netns, mapper, tcp, tcp_port_is_free};

fn held_tcp(port: u16) -> TcpListener {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .expect("bind the other program's port")
}

fn assert_in_use(e: &Error, addr: &str) {
    assert!(matches!(e, Error::PortInUse { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains(addr), "{e} does not name {addr}");
}

#[test]
fn tcp_port_held_by_another_program_is_a_conflict_with_the_proxy() {
    in_netns(
        "tcp_port_held_by_another_program_is_a_conflict_with_the_proxy",
        || async {
            let _other = held_tcp(8080);
            let pm = mapper(true);
            let e = pm
                .map("br0", CONTAINER, &[tcp(80, 8080)])
                .await
                .unwrap_err();
            assert_in_use(&e, "0.0.0.0:8080/tcp");
            assert_eq!(pm.allocated_ports(), 0);
            assert!(pm.mappings().is_empty());
            Ok(())
        },
    );
}

#[test]
fn tcp_port_held_by_another_program_is_a_conflict_without_the_proxy() {
    in_netns(
        "tcp_port_held_by_another_program_is_a_conflict_without_the_proxy",
        || async {
            let other = held_tcp(8080);
            let pm = mapper(false);
            let e = pm
                .map("br0", CONTAINER, &[tcp(80, 8080)])
                .await
                .unwrap_err();
            assert_in_use(&e, "0.0.0.0:8080/tcp");
            assert_eq!(pm.allocated_ports(), 0);
            // Without the proxy the port is only probed: once the other program is gone, the
            // mapping works and leaves the port to whoever binds it.
            drop(other);
            pm.map("br0", CONTAINER, &[tcp(80, 8080)]).await?;
            assert!(tcp_port_is_free(8080));
            Ok(())
        },
    );
}

#[test]
fn udp_port_held_by_another_program_is_a_conflict() {
    in_netns("udp_port_held_by_another_program_is_a_conflict", || async {
        let _other = UdpSocket::bind("127.0.0.1:5353")?;
        for proxy in [true, false] {
            let pm = mapper(proxy);
            let e = pm
                .map("br0", CONTAINER, &[binding(Protocol::Udp, 53, 5353, 0)])
                .await
                .unwrap_err();
            assert_in_use(&e, "0.0.0.0:5353/udp");
            assert_eq!(pm.allocated_ports(), 0);
        }
        Ok(())
    });
}

#[test]
fn range_with_one_port_held_by_another_program_leaves_nothing_reserved() {
    in_netns(
        "range_with_one_port_held_by_another_program_leaves_nothing_reserved",
        || async {
            let _other = held_tcp(9005);
            for proxy in [true, false] {
                let pm = mapper(proxy);
                let e = pm
                    .map(
                        "br0",
                        CONTAINER,
                        &[tcp(22, 2222), binding(Protocol::Tcp, 80, 9000, 9009)],
                    )
                    .await
                    .unwrap_err();
                assert_in_use(&e, "0.0.0.0:9005/tcp");
                assert_eq!(pm.allocated_ports(), 0);
                for port in (9000..9005).chain([2222]) {
                    assert!(
                        tcp_port_is_free(port),
                        "port {port} still bound after the rollback"
                    );
                }
            }
            Ok(())
        },
    );
}

#[test]
fn ephemeral_port_held_by_another_program_is_skipped() {
    in_netns(
        "ephemeral_port_held_by_another_program_is_skipped",
        || async {
            let _a = held_tcp(DYNAMIC.0);
            let _b = held_tcp(DYNAMIC.0 + 1);
            for proxy in [true, false] {
                let pm = mapper(proxy);
                let published = pm.map("br0", CONTAINER, &[tcp(80, 0)]).await?;
                assert_eq!(published[0].host_port, DYNAMIC.0 + 2);
                assert_eq!(pm.allocated_ports(), 1);
                pm.unmap_all().await?;
            }
            Ok(())
        },
    );
}

#[test]
fn ephemeral_ports_give_up_after_the_configured_attempts() {
    in_netns(
        "ephemeral_ports_give_up_after_the_configured_attempts",
        || async {
            let _held: Vec<_> = (DYNAMIC.0..DYNAMIC.0 + 3).map(held_tcp).collect();
            let pm = PortMapper::new(
                PortMapperConfig {
                    dynamic_port_attempts: 3.try_into()?,
                    dynamic_range: Some(PortRange::new(DYNAMIC.0, DYNAMIC.1)?),
                    ..PortMapperConfig::default()
                },
                None,
            );
            let e = pm.map("br0", CONTAINER, &[tcp(80, 0)]).await.unwrap_err();
            assert_in_use(&e, &format!("0.0.0.0:{}/tcp", DYNAMIC.0 + 2));
            assert_eq!(pm.allocated_ports(), 0);
            // The next request goes on after the ports tried.
            let published = pm.map("br0", CONTAINER, &[tcp(80, 0)]).await?;
            assert_eq!(published[0].host_port, DYNAMIC.0 + 3);
            Ok(())
        },
    );
}
