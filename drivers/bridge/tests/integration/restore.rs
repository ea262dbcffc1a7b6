//! A new driver on the same store and namespaces finds and reuses what exists: bridges kept,
//! joined endpoints and published ports restored, leftovers removed.

use anyhow::{Result, ensure};
use libnetwork_datastore::{key, put_object};
use libnetwork_driver_bridge::links::REAP_GROUP;
use libnetwork_driver_bridge::store::EndpointRecord;
use libnetwork_driverapi::{Driver, EndpointInterface, EndpointOptions};

use crate::common::{
    Bed, Fw, HOST_OUTSIDE_IP, OUTSIDE_IP, Server, attach, detach, exchange, ip, network, sa, sh,
    tcp_binding,
};
use crate::kernel_tests;

async fn restarted_driver_reuses_networks_endpoints_and_ports(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let nl = bed.host.netlink();
    let links_before = bed.host_links().await?;
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;

    let (bridge_index, left_name) = {
        let driver = bed.driver().await?;
        driver
            .create_network(&network("net1", "10.10.1.0/24", &[]))
            .await?;
        attach(
            &driver,
            "net1",
            "ep-a",
            &a,
            "10.10.1.2/24",
            &[tcp_binding(80, 18080)],
        )
        .await?;
        attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &[]).await?;
        // ep-c exists but is not joined.
        let mut iface = EndpointInterface {
            address: Some("10.10.1.4/24".parse()?),
            ..Default::default()
        };
        driver
            .create_endpoint("net1", "ep-c", &mut iface, &EndpointOptions::default())
            .await?;
        let left = driver
            .endpoint_host_name("net1", "ep-c")
            .await
            .expect("ep-c");
        let index = nl.link_by_name("br-net1").await?.index;
        // The process stops here, without any teardown.
        (index, left)
    };

    // What a crash can leave: a veth of ep-c that was being deleted (down, on the bridge),
    // a veth on the bridge that belongs to no endpoint, and the record of an endpoint whose
    // network is gone.
    let bridge = nl.link_by_name("br-net1").await?;
    for name in [left_name.as_str(), "vethdead000"] {
        let veth = nl
            .create_veth(name, &format!("p{}", &name[4..]), None)
            .await?;
        nl.set_master(&veth, &bridge).await?;
    }
    // A veth retired (in the reap group) but not yet deleted when the process stopped.
    nl.create_veth("vethgrave01", "pgrave01", None).await?;
    sh(
        "ip",
        &[
            "link",
            "set",
            "vethgrave01",
            "group",
            &REAP_GROUP.to_string(),
        ],
    )?;
    let mut stale = EndpointRecord::new(
        "ep-gone",
        "net-gone",
        "veth0000000".into(),
        "02:42:0a:63:00:02".parse()?,
        Some("10.99.0.2/24".parse()?),
        None,
    );
    put_object(bed.store.as_ref(), &mut stale)?;

    let driver = bed.driver().await?;
    driver.settle().await;
    ensure!(
        nl.link_by_name("br-net1").await?.index == bridge_index,
        "the bridge was made again"
    );
    let links = bed.host_links().await?;
    ensure!(
        !links.contains(&left_name),
        "leftover veth of ep-c kept: {links:?}"
    );
    ensure!(
        !links.contains(&"vethdead000".to_string()),
        "stale veth kept"
    );
    ensure!(
        bed.store
            .get(&key(&["bridge-endpoint", "ep-gone"]))
            .is_err(),
        "stale record kept"
    );

    // The published port answers again, from the outside and through the proxy.
    let container = sa(ip("0.0.0.0"), 80);
    let server = Server::bind(a.netns(), container).await?;
    let peer = exchange(&server, bed.outside.netns(), sa(ip(HOST_OUTSIDE_IP), 18080)).await?;
    if fw != Fw::None {
        // Without a firewall only the proxy forwards, from its own address.
        ensure!(peer.ip() == ip(OUTSIDE_IP), "outside client seen as {peer}");
    }
    exchange(&server, bed.host.netns(), sa(ip("127.0.0.1"), 18080)).await?;
    ensure!(driver.port_mapper().allocated_ports() == 1);
    // Containers still talk.
    let server = Server::bind(a.netns(), sa(ip("10.10.1.2"), 0)).await?;
    let port = server.port();
    exchange(&server, b.netns(), sa(ip("10.10.1.2"), port)).await?;

    // Joined endpoints are known as joined; the unjoined one can join now.
    let again = driver
        .join("net1", "ep-a", &a, &Default::default())
        .await
        .expect_err("ep-a is joined");
    ensure!(
        again.kind() == libnetwork_driverapi::ErrorKind::Conflict,
        "{again}"
    );
    let c = bed.sandbox("container-c").await?;
    driver.join("net1", "ep-c", &c, &Default::default()).await?;

    // Everything can be removed as usual.
    detach(&driver, "net1", "ep-a").await?;
    detach(&driver, "net1", "ep-b").await?;
    detach(&driver, "net1", "ep-c").await?;
    driver.delete_network("net1").await?;
    driver.settle().await;
    ensure!(bed.host_links().await? == links_before, "links left");
    ensure!(driver.port_mapper().allocated_ports() == 0);
    if let Some(fw) = driver.firewall() {
        ensure!(fw.port_mappings().is_empty(), "port mappings left");
    }
    ensure!(bed.store.list(&key(&["bridge"]))?.is_empty());
    ensure!(bed.store.list(&key(&["bridge-endpoint"]))?.is_empty());
    Ok(())
}

kernel_tests!(restarted_driver_reuses_networks_endpoints_and_ports: without_firewall, nftables, iptables);

async fn restore_recreates_a_missing_bridge(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    {
        let driver = bed.driver().await?;
        driver
            .create_network(&network("net1", "10.10.1.0/24", &[]))
            .await?;
    }
    let nl = bed.host.netlink();
    nl.delete_link(&nl.link_by_name("br-net1").await?).await?;
    let driver = bed.driver().await?;
    let bridge = nl.link_by_name("br-net1").await?;
    ensure!(bridge.up);
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &[]).await?;
    let server = Server::bind(a.netns(), sa(ip("10.10.1.2"), 0)).await?;
    let port = server.port();
    exchange(&server, b.netns(), sa(ip("10.10.1.2"), port)).await?;
    driver.delete_network("net1").await?;
    Ok(())
}

kernel_tests!(restore_recreates_a_missing_bridge: without_firewall);

async fn a_network_that_cannot_be_restored_keeps_its_records(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    {
        let driver = bed.driver().await?;
        driver
            .create_network(&network(
                "net2",
                "10.10.2.0/24",
                &[(libnetwork_driver_bridge::labels::BRIDGE_NAME, "brtwo")],
            ))
            .await?;
        let mut iface = EndpointInterface {
            address: Some("10.10.2.5/24".parse()?),
            ..Default::default()
        };
        driver
            .create_endpoint("net2", "ep-x", &mut iface, &EndpointOptions::default())
            .await?;
    }
    // The bridge's name is now taken by something that is not a bridge.
    let nl = bed.host.netlink();
    nl.delete_link(&nl.link_by_name("brtwo").await?).await?;
    nl.create_veth("brtwo", "brtwo-peer", None).await?;

    let driver = bed.driver().await?;
    ensure!(driver.network_config("net2").is_none(), "net2 restored");
    ensure!(
        bed.store.get(&key(&["bridge", "net2"])).is_ok(),
        "network record lost"
    );
    ensure!(
        bed.store.get(&key(&["bridge-endpoint", "ep-x"])).is_ok(),
        "endpoint record lost"
    );
    Ok(())
}

kernel_tests!(a_network_that_cannot_be_restored_keeps_its_records: without_firewall);

async fn restore_of_several_networks_finds_joined_endpoints_and_removes_a_veth_on_no_bridge(
    fw: Fw,
) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let nl = bed.host.netlink();
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let left_name = {
        let driver = bed.driver().await?;
        for (id, subnet) in [("net1", "10.10.1.0/24"), ("net2", "10.10.2.0/24")] {
            driver.create_network(&network(id, subnet, &[])).await?;
        }
        attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
        attach(&driver, "net2", "ep-b", &b, "10.10.2.2/24", &[]).await?;
        let mut iface = EndpointInterface {
            address: Some("10.10.1.4/24".parse()?),
            ..Default::default()
        };
        driver
            .create_endpoint("net1", "ep-c", &mut iface, &EndpointOptions::default())
            .await?;
        driver
            .endpoint_host_name("net1", "ep-c")
            .await
            .expect("ep-c")
    };
    // A join of ep-c cut short after its veth was made, before it went on the bridge.
    nl.create_veth(&left_name, "pleft00", None).await?;

    let driver = bed.driver().await?;
    driver.settle().await;
    let links = bed.host_links().await?;
    ensure!(
        !links.contains(&left_name),
        "veth of ep-c on no bridge kept: {links:?}"
    );
    // Both networks came back with their joined endpoints known as joined.
    for (nid, eid, sb) in [("net1", "ep-a", &a), ("net2", "ep-b", &b)] {
        let again = driver
            .join(nid, eid, sb, &Default::default())
            .await
            .expect_err("joined");
        ensure!(
            again.kind() == libnetwork_driverapi::ErrorKind::Conflict,
            "{eid}: {again}"
        );
    }
    // ep-c joins with its own host name again.
    let c = bed.sandbox("container-c").await?;
    driver.join("net1", "ep-c", &c, &Default::default()).await?;
    ensure!(bed.host_links().await?.contains(&left_name));
    for (nid, eid) in [("net1", "ep-a"), ("net2", "ep-b"), ("net1", "ep-c")] {
        detach(&driver, nid, eid).await?;
    }
    driver.delete_network("net1").await?;
    driver.delete_network("net2").await?;
    Ok(())
}

kernel_tests!(
    restore_of_several_networks_finds_joined_endpoints_and_removes_a_veth_on_no_bridge:
        without_firewall,
    nftables
);

/// The restore sets the stored networks' bridges up while the firewall starts; when the
/// firewall then fails, the driver does not start and a bridge it made is gone again.
async fn a_firewall_that_fails_at_restore_leaves_no_bridge_made(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    {
        let driver = bed.driver().await?;
        driver
            .create_network(&network("net1", "10.10.1.0/24", &[]))
            .await?;
    }
    let nl = bed.host.netlink();
    nl.delete_link(&nl.link_by_name("br-net1").await?).await?;
    // A table of ours whose `bridges` set has another type: the base batch is refused.
    sh(
        "nft",
        &["add table inet libnetwork; add set inet libnetwork bridges { type ipv4_addr; }"],
    )?;
    let config = libnetwork_driver_bridge::DriverConfig {
        enable_iptables: true,
        ..bed.config()
    };
    let started = libnetwork_driver_bridge::BridgeDriver::new(
        bed.host.clone(),
        libnetwork_driver_bridge::BridgeDriverOptions {
            config,
            store: Some(std::sync::Arc::clone(&bed.store)),
            firewall: None,
            port_mapper: None,
        },
    )
    .await;
    let Err(e) = started else {
        anyhow::bail!("the driver started with a broken firewall");
    };
    ensure!(e.to_string().contains("firewall"), "{e}");
    let left = nl.link_by_name("br-net1").await;
    ensure!(
        left.as_ref().is_err_and(|e| e.is_not_found()),
        "bridge left: {left:?}"
    );
    Ok(())
}

kernel_tests!(a_firewall_that_fails_at_restore_leaves_no_bridge_made: without_firewall);
