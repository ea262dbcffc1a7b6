//! Traffic between containers and to the outside: ICC, isolation, internal networks,
//! masquerading.

use anyhow::{Result, ensure};
use libnetwork_driver_bridge::labels;
use libnetwork_driverapi::Driver;
use libnetwork_osl::{NextHop, StaticRoute};

use crate::common::{
    Bed, Fw, HOST_OUTSIDE_IP, OUTSIDE_IP, Server, attach, blocked, detach, exchange, ip, network,
    sa,
};
use crate::kernel_tests;

async fn two_endpoints_on_one_network_exchange_tcp_data(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let ea = attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    let eb = attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &[]).await?;

    let server = Server::bind(a.netns(), sa(ea.ip(), 0)).await?;
    let port = server.port();
    let peer = exchange(&server, b.netns(), sa(ea.ip(), port)).await?;
    ensure!(peer.ip() == eb.ip(), "server saw {peer}, want {}", eb.ip());

    detach(&driver, "net1", "ep-a").await?;
    detach(&driver, "net1", "ep-b").await?;
    driver.delete_network("net1").await?;
    Ok(())
}

kernel_tests!(two_endpoints_on_one_network_exchange_tcp_data: without_firewall, nftables, iptables);

async fn endpoints_on_two_networks_cannot_reach_each_other(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    driver
        .create_network(&network("net2", "10.10.2.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let ea = attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    attach(&driver, "net2", "ep-b", &b, "10.10.2.2/24", &[]).await?;

    let server = Server::bind(a.netns(), sa(ip("0.0.0.0"), 0)).await?;
    let target = sa(ea.ip(), server.port());
    blocked(&server, b.netns(), target).await?;
    // The same server answers the host, so the block is the isolation.
    let peer = exchange(&server, bed.host.netns(), target).await?;
    ensure!(peer.ip() == ip("10.10.1.1"), "host reached a from {peer}");
    Ok(())
}

kernel_tests!(endpoints_on_two_networks_cannot_reach_each_other: nftables, iptables);

async fn icc_off_blocks_traffic_between_containers(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network(
            "net1",
            "10.10.1.0/24",
            &[(labels::ENABLE_ICC, "false")],
        ))
        .await?;
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let ea = attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &[]).await?;

    let server = Server::bind(a.netns(), sa(ip("0.0.0.0"), 0)).await?;
    let target = sa(ea.ip(), server.port());
    blocked(&server, b.netns(), target).await?;
    // The container itself still reaches the outside.
    let outside = Server::bind(bed.outside.netns(), sa(ip(OUTSIDE_IP), 0)).await?;
    let port = outside.port();
    exchange(&outside, a.netns(), sa(ip(OUTSIDE_IP), port)).await?;
    Ok(())
}

kernel_tests!(icc_off_blocks_traffic_between_containers: nftables, iptables);

async fn internal_network_reaches_nothing_outside(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    let mut request = network("net1", "10.10.1.0/24", &[]);
    request.options.internal = true;
    driver.create_network(&request).await?;
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let ea = attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    let eb = attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &[]).await?;
    ensure!(ea.join.gateway.is_none(), "internal network gave a gateway");

    // Even with a route through the bridge, nothing outside is reached.
    a.add_static_route(&StaticRoute {
        destination: "198.51.100.0/24".parse()?,
        next_hop: NextHop::Gateway(ip("10.10.1.1")),
    })
    .await?;
    let outside = Server::bind(bed.outside.netns(), sa(ip(OUTSIDE_IP), 0)).await?;
    blocked(&outside, a.netns(), sa(ip(OUTSIDE_IP), outside.port())).await?;
    // Inside the network, containers talk.
    let server = Server::bind(a.netns(), sa(ea.ip(), 0)).await?;
    let port = server.port();
    let peer = exchange(&server, b.netns(), sa(ea.ip(), port)).await?;
    ensure!(peer.ip() == eb.ip());
    Ok(())
}

kernel_tests!(internal_network_reaches_nothing_outside: nftables, iptables);

async fn outbound_traffic_is_masqueraded(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;

    let outside = Server::bind(bed.outside.netns(), sa(ip(OUTSIDE_IP), 0)).await?;
    let port = outside.port();
    let peer = exchange(&outside, a.netns(), sa(ip(OUTSIDE_IP), port)).await?;
    ensure!(
        peer.ip() == ip(HOST_OUTSIDE_IP),
        "outside saw {peer}, want the host's address"
    );
    Ok(())
}

kernel_tests!(outbound_traffic_is_masqueraded: nftables, iptables);

async fn host_ipv4_option_sources_outbound_traffic_from_that_address(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    // A second host address on the outside link to SNAT to.
    let vout = bed.host.netlink().link_by_name("vout").await?;
    bed.host
        .netlink()
        .add_address(&vout, "198.51.100.9/24".parse()?, false)
        .await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network(
            "net1",
            "10.10.1.0/24",
            &[(labels::HOST_IPV4, "198.51.100.9")],
        ))
        .await?;
    let a = bed.sandbox("container-a").await?;
    attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    let outside = Server::bind(bed.outside.netns(), sa(ip(OUTSIDE_IP), 0)).await?;
    let port = outside.port();
    let peer = exchange(&outside, a.netns(), sa(ip(OUTSIDE_IP), port)).await?;
    ensure!(peer.ip() == ip("198.51.100.9"), "outside saw {peer}");
    Ok(())
}

kernel_tests!(host_ipv4_option_sources_outbound_traffic_from_that_address: nftables, iptables);
