//! Reservation of host ports: specific, ephemeral and ranges; release; rollback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libnetwork_portmapper::Error;
use libnetwork_types::{ErrorKind, Protocol};

use crate::{CONTAINER, DYNAMIC, binding, in_netns, mapper, tcp, tcp_port_is_free};

#[test]
fn specific_host_port_is_published_and_reported() {
    in_netns("specific_host_port_is_published_and_reported", || async {
        let pm = mapper(false);
        let published = pm.map("br0", CONTAINER, &[tcp(80, 8080)]).await?;
        assert_eq!(published.len(), 1);
        let b = published[0];
        assert_eq!(b.proto, Protocol::Tcp);
        assert_eq!(b.ip, Some(CONTAINER));
        assert_eq!(b.port, 80);
        assert_eq!(b.host_ip, Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        assert_eq!((b.host_port, b.host_port_end), (8080, 8080));
        assert_eq!(pm.mappings(), published);
        assert_eq!(pm.allocated_ports(), 1);
        Ok(())
    });
}

#[test]
fn host_port_zero_gets_ports_of_the_dynamic_range_in_order() {
    in_netns(
        "host_port_zero_gets_ports_of_the_dynamic_range_in_order",
        || async {
            let pm = mapper(true);
            let first = pm.map("br0", CONTAINER, &[tcp(80, 0)]).await?;
            let second = pm
                .map(
                    "br0",
                    CONTAINER,
                    &[tcp(81, 0), binding(Protocol::Udp, 53, 0, 0)],
                )
                .await?;
            assert_eq!(first[0].host_port, DYNAMIC.0);
            assert_eq!(first[0].host_port_end, DYNAMIC.0);
            assert_eq!(second[0].host_port, DYNAMIC.0 + 1);
            // Protocols have their own ports.
            assert_eq!(second[1].host_port, DYNAMIC.0);
            assert!(
                !tcp_port_is_free(DYNAMIC.0),
                "the proxy listens on the ephemeral port"
            );
            Ok(())
        },
    );
}

#[test]
fn ephemeral_ports_run_out_with_an_unavailable_error() {
    in_netns(
        "ephemeral_ports_run_out_with_an_unavailable_error",
        || async {
            let pm = mapper(false);
            let all = vec![tcp(80, 0); usize::from(DYNAMIC.1 - DYNAMIC.0 + 1)];
            pm.map("br0", CONTAINER, &all).await?;
            let e = pm.map("br0", CONTAINER, &[tcp(80, 0)]).await.unwrap_err();
            assert!(matches!(e, Error::Allocate { .. }), "{e}");
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            Ok(())
        },
    );
}

#[test]
fn host_range_publishes_every_port_onto_a_container_range() {
    in_netns(
        "host_range_publishes_every_port_onto_a_container_range",
        || async {
            let pm = mapper(true);
            let published = pm
                .map("br0", CONTAINER, &[binding(Protocol::Tcp, 80, 9000, 9009)])
                .await?;
            assert_eq!(
                (published[0].host_port, published[0].host_port_end),
                (9000, 9009)
            );
            assert_eq!(published[0].port, 80);
            assert_eq!(pm.allocated_ports(), 10);
            for port in 9000..=9009 {
                assert!(!tcp_port_is_free(port), "port {port} has no proxy listener");
            }
            assert!(tcp_port_is_free(9010));
            Ok(())
        },
    );
}

#[test]
fn publishing_a_published_port_again_is_a_conflict() {
    in_netns(
        "publishing_a_published_port_again_is_a_conflict",
        || async {
            let pm = mapper(false);
            pm.map("br0", CONTAINER, &[tcp(80, 8080)]).await?;
            let e = pm
                .map("br1", CONTAINER, &[tcp(81, 8080)])
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Allocate { .. }), "{e}");
            assert!(e.is_conflict());
            assert!(e.to_string().contains("0.0.0.0:8080/tcp"), "{e}");
            // A specific address overlaps the unspecified one of its family.
            let mut specific = tcp(81, 8080);
            specific.host_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert!(
                pm.map("br1", CONTAINER, &[specific])
                    .await
                    .unwrap_err()
                    .is_conflict()
            );
            // Another protocol does not.
            pm.map("br1", CONTAINER, &[binding(Protocol::Udp, 81, 8080, 0)])
                .await?;
            assert_eq!(pm.allocated_ports(), 2);
            Ok(())
        },
    );
}

#[test]
fn different_specific_host_addresses_are_independent() {
    in_netns(
        "different_specific_host_addresses_are_independent",
        || async {
            let pm = mapper(true);
            let mut a = tcp(80, 8080);
            a.host_ip = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
            let mut b = tcp(80, 8080);
            b.host_ip = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
            pm.map("br0", CONTAINER, &[a, b]).await?;
            assert_eq!(pm.mappings().len(), 2);
            Ok(())
        },
    );
}

#[test]
fn ipv4_and_ipv6_unspecified_host_addresses_are_separate_bindings() {
    in_netns(
        "ipv4_and_ipv6_unspecified_host_addresses_are_separate_bindings",
        || async {
            let pm = mapper(true);
            let mut v6 = tcp(80, 8080);
            v6.ip = Some("fd00::2".parse()?);
            let published = pm.map("br0", CONTAINER, &[tcp(80, 8080), v6]).await?;
            assert_eq!(
                published[0].host_ip,
                Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            );
            assert_eq!(
                published[1].host_ip,
                Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
            );
            assert_eq!(published[1].ip, Some("fd00::2".parse()?));
            Ok(())
        },
    );
}

#[test]
fn failed_mapping_undoes_the_bindings_before_it() {
    in_netns("failed_mapping_undoes_the_bindings_before_it", || async {
        let pm = mapper(true);
        pm.map("br0", CONTAINER, &[tcp(80, 8080)]).await?;
        let e = pm
            .map(
                "br1",
                CONTAINER,
                &[
                    tcp(81, 8081),
                    binding(Protocol::Tcp, 82, 8082, 8089),
                    tcp(80, 8080),
                ],
            )
            .await
            .unwrap_err();
        assert!(e.is_conflict(), "{e}");
        assert_eq!(pm.allocated_ports(), 1);
        assert_eq!(pm.mappings().len(), 1);
        for port in 8081..=8089 {
            assert!(
                tcp_port_is_free(port),
                "port {port} still bound after the rollback"
            );
        }
        pm.map(
            "br1",
            CONTAINER,
            &[tcp(81, 8081), binding(Protocol::Tcp, 82, 8082, 8089)],
        )
        .await?;
        Ok(())
    });
}

#[test]
fn malformed_binding_changes_nothing() {
    in_netns("malformed_binding_changes_nothing", || async {
        let pm = mapper(true);
        let e = pm
            .map(
                "br0",
                CONTAINER,
                &[tcp(80, 8080), binding(Protocol::Tcp, 80, 9000, 8999)],
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidBinding { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(pm.allocated_ports(), 0);
        assert!(tcp_port_is_free(8080));
        Ok(())
    });
}

#[test]
fn host_address_not_on_this_host_is_a_bad_request() {
    in_netns("host_address_not_on_this_host_is_a_bad_request", || async {
        let pm = mapper(true);
        let mut b = tcp(80, 8080);
        b.host_ip = Some("192.0.2.1".parse()?);
        let e = pm.map("br0", CONTAINER, &[b]).await.unwrap_err();
        assert!(matches!(e, Error::Bind { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(pm.allocated_ports(), 0);
        Ok(())
    });
}

#[test]
fn unmap_frees_the_ports_and_closes_the_sockets() {
    in_netns("unmap_frees_the_ports_and_closes_the_sockets", || async {
        let pm = mapper(true);
        let published = pm
            .map(
                "br0",
                CONTAINER,
                &[tcp(80, 8080), binding(Protocol::Udp, 53, 9000, 9004)],
            )
            .await?;
        assert!(!tcp_port_is_free(8080));
        pm.unmap(&published).await?;
        assert_eq!(pm.allocated_ports(), 0);
        assert!(pm.mappings().is_empty());
        assert!(tcp_port_is_free(8080));
        for port in 9000..=9004 {
            std::net::UdpSocket::bind(("0.0.0.0", port))?;
        }
        // The same ports can be published again at once.
        pm.map("br0", CONTAINER, &published).await?;
        Ok(())
    });
}

#[test]
fn unmapping_a_binding_that_is_not_published_is_not_found() {
    in_netns(
        "unmapping_a_binding_that_is_not_published_is_not_found",
        || async {
            let pm = mapper(false);
            let published = pm
                .map("br0", CONTAINER, &[tcp(80, 8080), tcp(81, 8081)])
                .await?;
            pm.unmap(&published[..1]).await?;
            let e = pm.unmap(&published).await.unwrap_err();
            // The second binding was still unmapped.
            assert!(matches!(e, Error::NotMapped { .. }), "{e}");
            assert_eq!(e.kind(), ErrorKind::NotFound);
            assert!(e.to_string().contains("0.0.0.0:8080/tcp"), "{e}");
            assert_eq!(pm.allocated_ports(), 0);
            let e = pm.unmap(&published).await.unwrap_err();
            assert!(
                matches!(&e, Error::Teardown(failures) if failures.len() == 2),
                "{e}"
            );
            assert_eq!(e.kind(), ErrorKind::NotFound);
            Ok(())
        },
    );
}

#[test]
fn unmap_all_removes_every_mapping() {
    in_netns("unmap_all_removes_every_mapping", || async {
        let pm = mapper(true);
        pm.map(
            "br0",
            CONTAINER,
            &[tcp(80, 8080), binding(Protocol::Tcp, 80, 9000, 9099)],
        )
        .await?;
        pm.map("br1", CONTAINER, &[binding(Protocol::Udp, 53, 0, 0)])
            .await?;
        pm.unmap_all().await?;
        assert_eq!(pm.allocated_ports(), 0);
        assert!(pm.mappings().is_empty());
        assert!(tcp_port_is_free(8080) && tcp_port_is_free(9050));
        Ok(())
    });
}

#[test]
fn sctp_is_published_without_a_proxy_listener() {
    in_netns("sctp_is_published_without_a_proxy_listener", || async {
        let pm = mapper(true);
        let published = pm
            .map(
                "br0",
                CONTAINER,
                &[binding(Protocol::Sctp, 80, 8080, 0), tcp(80, 8080)],
            )
            .await?;
        assert_eq!(published[0].proto, Protocol::Sctp);
        assert_eq!(pm.allocated_ports(), 2);
        pm.unmap(&published).await?;
        assert_eq!(pm.allocated_ports(), 0);
        Ok(())
    });
}
