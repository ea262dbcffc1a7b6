//! IPv6 networks: link-local and gateway on the bridge, addresses derived from the MAC,
//! traffic between containers over IPv6.

use anyhow::{Result, ensure};
use libnetwork_driver_bridge::netutils::ipv6_from_mac;
use libnetwork_driverapi::{Driver, ErrorKind};

use crate::common::{Bed, Fw, Server, attach, exchange, network, sa, with_ipv6};
use crate::kernel_tests;

async fn two_containers_talk_over_ipv6(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&with_ipv6(
            network("net6", "10.10.6.0/24", &[]),
            "fd00:6::/64",
        ))
        .await?;
    let nl = bed.host.netlink();
    let bridge = nl.link_by_name("br-net6").await?;
    let addresses = nl.addresses(Some(bridge.index)).await?;
    for want in ["fe80::1/64", "fd00:6::1/64", "10.10.6.1/24"] {
        ensure!(
            addresses.iter().any(|a| a.net == want.parse().unwrap()),
            "bridge lacks {want}: {addresses:?}"
        );
    }
    let accept_ra = bed
        .host
        .netns()
        .run_in(|| std::fs::read_to_string("/proc/sys/net/ipv6/conf/br-net6/accept_ra"))
        .await??;
    ensure!(accept_ra.trim() == "0", "accept_ra {accept_ra}");

    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let ea = attach(&driver, "net6", "ep-a", &a, "10.10.6.2/24", &[]).await?;
    let eb = attach(&driver, "net6", "ep-b", &b, "10.10.6.3/24", &[]).await?;
    // No IPv6 address was given: it comes from the MAC.
    let a6 = ea.interface.address_ipv6.expect("derived IPv6 address");
    let mac = ea.interface.mac.expect("MAC");
    ensure!(Some(a6) == ipv6_from_mac("fd00:6::/64".parse()?, mac));
    ensure!(a6.to_string() == "fd00:6::242:a0a:602/64", "{a6}");
    ensure!(ea.join.gateway_ipv6 == Some("fd00:6::1".parse()?));

    let server = Server::bind(a.netns(), sa(a6.addr(), 0)).await?;
    let port = server.port();
    let peer = exchange(&server, b.netns(), sa(a6.addr(), port)).await?;
    let b6 = eb.interface.address_ipv6.expect("derived IPv6 address");
    ensure!(peer.ip() == b6.addr(), "server saw {peer}");
    Ok(())
}

kernel_tests!(two_containers_talk_over_ipv6: without_firewall, nftables, iptables);

async fn ipv6_subnets_smaller_than_80_bits_cannot_derive_addresses(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&with_ipv6(
            network("net6", "10.10.6.0/24", &[]),
            "fd00:6::/96",
        ))
        .await?;
    let mut iface = libnetwork_driverapi::EndpointInterface {
        address: Some("10.10.6.2/24".parse()?),
        ..Default::default()
    };
    let err = driver
        .create_endpoint("net6", "ep", &mut iface, &Default::default())
        .await
        .expect_err("/96 has too few host bits");
    ensure!(err.kind() == ErrorKind::Forbidden, "{err}");
    // With an address given, the endpoint is fine.
    iface.address_ipv6 = Some("fd00:6::5/96".parse()?);
    driver
        .create_endpoint("net6", "ep", &mut iface, &Default::default())
        .await?;
    Ok(())
}

kernel_tests!(ipv6_subnets_smaller_than_80_bits_cannot_derive_addresses: without_firewall);

/// The restore reads the host's IPv6 addresses only for IPv6 networks: a restarted driver
/// finds the IPv6 bridge's addresses (and adds none twice) next to an IPv4-only network.
async fn restarted_driver_keeps_the_addresses_of_an_ipv6_bridge(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    {
        let driver = bed.driver().await?;
        driver
            .create_network(&with_ipv6(
                network("net6", "10.10.6.0/24", &[]),
                "fd00:6::/64",
            ))
            .await?;
        driver
            .create_network(&network("net4", "10.10.4.0/24", &[]))
            .await?;
    }
    let driver = bed.driver().await?;
    ensure!(driver.network_config("net6").is_some(), "net6 not restored");
    ensure!(driver.network_config("net4").is_some(), "net4 not restored");
    let nl = bed.host.netlink();
    let bridge = nl.link_by_name("br-net6").await?;
    let addresses = nl.addresses(Some(bridge.index)).await?;
    for want in ["fe80::1/64", "fd00:6::1/64", "10.10.6.1/24"] {
        let count = addresses
            .iter()
            .filter(|a| a.net == want.parse().unwrap())
            .count();
        ensure!(count == 1, "{want} {count} times: {addresses:?}");
    }
    let a = bed.sandbox("container-a").await?;
    let ea = attach(&driver, "net6", "ep-a", &a, "10.10.6.2/24", &[]).await?;
    ensure!(ea.join.gateway_ipv6 == Some("fd00:6::1".parse()?));
    Ok(())
}

kernel_tests!(restarted_driver_keeps_the_addresses_of_an_ipv6_bridge: without_firewall);
