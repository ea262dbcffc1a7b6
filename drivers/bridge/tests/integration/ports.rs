//! Published ports: from the outside (real client address), from the host (loopback through
//! the proxy, and the host's own address), and hairpin from another container.

use anyhow::{Result, ensure};
use libnetwork_driver_bridge::{DriverConfig, labels};
use libnetwork_driverapi::{Driver, PortBinding, Protocol, TransportPort};

use crate::common::{
    Bed, Fw, HOST_OUTSIDE_IP, OUTSIDE_IP, Server, attach, exchange, ip, network, sa, tcp_binding,
};
use crate::kernel_tests;

async fn published_port_answers_from_outside_host_and_other_containers(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let ea = attach(
        &driver,
        "net1",
        "ep-a",
        &a,
        "10.10.1.2/24",
        &[tcp_binding(8080, 18080)],
    )
    .await?;
    let eb = attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &[]).await?;
    let published = sa(ip(HOST_OUTSIDE_IP), 18080);
    let container = sa(ip("0.0.0.0"), 8080);

    // From the outside: DNAT, and the server sees the real client.
    let server = Server::bind(a.netns(), container).await?;
    let peer = exchange(&server, bed.outside.netns(), published).await?;
    ensure!(peer.ip() == ip(OUTSIDE_IP), "outside client seen as {peer}");

    // From the host, on loopback (through the userland proxy).
    exchange(&server, bed.host.netns(), sa(ip("127.0.0.1"), 18080)).await?;

    // From the host, on its own address.
    exchange(&server, bed.host.netns(), published).await?;

    // Hairpin: another container of the network through the host's address.
    let peer = exchange(&server, b.netns(), published).await?;
    ensure!(
        peer.ip() == eb.ip() || peer.ip() == ip("10.10.1.1"),
        "hairpin client seen as {peer}"
    );

    // The operational bindings say where the port is published.
    let info = driver.endpoint_oper_info("net1", "ep-a").await?;
    let map: Vec<PortBinding> = serde_json::from_value(info[labels::PORT_MAP].clone())?;
    ensure!(
        map.iter().any(|b| b.host_port == 18080
            && b.port == 8080
            && b.ip == Some(ea.ip())
            && b.proto == Protocol::Tcp),
        "port map {map:?}"
    );
    ensure!(info[labels::MAC_ADDRESS] == "02:42:0a:0a:01:02");
    Ok(())
}

kernel_tests!(published_port_answers_from_outside_host_and_other_containers: nftables, iptables);

async fn ephemeral_ports_and_exposed_ports_are_reported(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    let exposed = TransportPort {
        proto: Protocol::Tcp,
        port: 9000,
    };
    let options = libnetwork_driverapi::EndpointOptions {
        port_bindings: vec![tcp_binding(9000, 0)],
        exposed_ports: vec![exposed],
        ..Default::default()
    };
    driver
        .program_external_connectivity("net1", "ep-a", &options)
        .await?;
    let info = driver.endpoint_oper_info("net1", "ep-a").await?;
    let map: Vec<PortBinding> = serde_json::from_value(info[labels::PORT_MAP].clone())?;
    let exposed_back: Vec<TransportPort> =
        serde_json::from_value(info[labels::EXPOSED_PORTS].clone())?;
    ensure!(exposed_back == vec![exposed], "exposed {exposed_back:?}");
    let [binding] = map.as_slice() else {
        anyhow::bail!("want one binding, got {map:?}");
    };
    ensure!(binding.host_port != 0, "no host port chosen");

    // The chosen port answers from the outside.
    let server = Server::bind(a.netns(), sa(ip("0.0.0.0"), 9000)).await?;
    exchange(
        &server,
        bed.outside.netns(),
        sa(ip(HOST_OUTSIDE_IP), binding.host_port),
    )
    .await?;
    Ok(())
}

kernel_tests!(ephemeral_ports_and_exposed_ports_are_reported: nftables, iptables);

async fn published_port_range_maps_each_port(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    let range = PortBinding {
        host_port_end: 20099,
        ..tcp_binding(7000, 20000)
    };
    attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[range]).await?;
    // Host port 20042 forwards to container port 7042.
    let server = Server::bind(a.netns(), sa(ip("0.0.0.0"), 7042)).await?;
    exchange(&server, bed.outside.netns(), sa(ip(HOST_OUTSIDE_IP), 20042)).await?;
    ensure!(driver.port_mapper().allocated_ports() == 100);
    Ok(())
}

kernel_tests!(published_port_range_maps_each_port: nftables, iptables);

async fn without_userland_proxy_published_ports_use_hairpin_nat(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed
        .driver_with(DriverConfig {
            enable_userland_proxy: false,
            ..bed.config()
        })
        .await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    attach(
        &driver,
        "net1",
        "ep-a",
        &a,
        "10.10.1.2/24",
        &[tcp_binding(8080, 18080)],
    )
    .await?;
    attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &[]).await?;
    let published = sa(ip(HOST_OUTSIDE_IP), 18080);
    let container = sa(ip("0.0.0.0"), 8080);

    let server = Server::bind(a.netns(), container).await?;
    let peer = exchange(&server, bed.outside.netns(), published).await?;
    ensure!(peer.ip() == ip(OUTSIDE_IP), "outside client seen as {peer}");
    exchange(&server, bed.host.netns(), published).await?;
    // Another container, through the host address: hairpin NAT.
    exchange(&server, b.netns(), published).await?;
    // The container itself: back out of the port it came in by (bridge hairpin mode).
    exchange(&server, a.netns(), published).await?;
    Ok(())
}

kernel_tests!(without_userland_proxy_published_ports_use_hairpin_nat: nftables, iptables);

async fn revoked_ports_stop_answering_and_can_be_published_again_at_once(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let published = sa(ip(HOST_OUTSIDE_IP), 18080);
    let container = sa(ip("0.0.0.0"), 8080);
    let binding = [tcp_binding(8080, 18080)];
    attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &binding).await?;
    let on_a = Server::bind(a.netns(), container).await?;
    exchange(&on_a, bed.outside.netns(), published).await?;

    // Revoked from a, the same host port is published for b right away.
    driver.revoke_external_connectivity("net1", "ep-a").await?;
    eprintln!(
        "DEBUG mappings after revoke: {:?}",
        driver.port_mapper().mappings()
    );
    attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &binding).await?;
    let on_b = Server::bind(b.netns(), container).await?;
    let peer = exchange(&on_b, bed.outside.netns(), published).await?;
    ensure!(peer.ip() == ip(OUTSIDE_IP));
    ensure!(driver.port_mapper().allocated_ports() == 1);

    // Once revoked and settled, nothing answers and nothing is held.
    driver.revoke_external_connectivity("net1", "ep-b").await?;
    driver.settle().await;
    crate::common::blocked(&on_b, bed.outside.netns(), published).await?;
    ensure!(driver.port_mapper().allocated_ports() == 0);
    if let Some(fw) = driver.firewall() {
        ensure!(fw.port_mappings().is_empty(), "mappings left");
    }
    Ok(())
}

kernel_tests!(revoked_ports_stop_answering_and_can_be_published_again_at_once: nftables, iptables);

async fn host_binding_option_sets_the_default_host_address(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network(
            "net1",
            "10.10.1.0/24",
            &[(labels::HOST_BINDING_IPV4, HOST_OUTSIDE_IP)],
        ))
        .await?;
    let a = bed.sandbox("container-a").await?;
    attach(
        &driver,
        "net1",
        "ep-a",
        &a,
        "10.10.1.2/24",
        &[tcp_binding(8080, 18080)],
    )
    .await?;
    let info = driver.endpoint_oper_info("net1", "ep-a").await?;
    let map: Vec<PortBinding> = serde_json::from_value(info[labels::PORT_MAP].clone())?;
    ensure!(
        map.iter().all(|b| b.host_ip == Some(ip(HOST_OUTSIDE_IP))),
        "port map {map:?}"
    );
    let server = Server::bind(a.netns(), sa(ip("0.0.0.0"), 8080)).await?;
    exchange(&server, bed.outside.netns(), sa(ip(HOST_OUTSIDE_IP), 18080)).await?;
    // Not published on the other host addresses (loopback here).
    crate::common::blocked(&server, bed.host.netns(), sa(ip("127.0.0.1"), 18080)).await?;
    Ok(())
}

kernel_tests!(host_binding_option_sets_the_default_host_address: nftables, iptables);
