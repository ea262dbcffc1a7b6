//! Removing endpoints and networks leaves no rule, link, allocated port or record behind.

use anyhow::{Result, ensure};
use libnetwork_datastore::key;
use libnetwork_driverapi::{Driver, PortBinding};

use crate::common::{Bed, Fw, attach, detach, network, tcp_binding};
use crate::kernel_tests;

async fn removing_endpoints_and_network_leaves_nothing_behind(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    let links_before = bed.host_links().await?;
    let rules_before = bed.ruleset()?;

    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let range = PortBinding {
        host_port_end: 18089,
        ..tcp_binding(80, 18080)
    };
    attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[range]).await?;
    attach(
        &driver,
        "net1",
        "ep-b",
        &b,
        "10.10.1.3/24",
        &[tcp_binding(81, 0)],
    )
    .await?;
    ensure!(driver.port_mapper().allocated_ports() == 11);
    let rules_during = bed.ruleset()?;
    if fw != Fw::None {
        ensure!(rules_during.contains("br-net1"), "no rule names the bridge");
    }

    detach(&driver, "net1", "ep-a").await?;
    // ep-b is left joined and published: deleting the network takes it along.
    driver.delete_network("net1").await?;
    driver.settle().await;

    ensure!(
        bed.host_links().await? == links_before,
        "links left: {:?}",
        bed.host_links().await?
    );
    for sandbox in [&a, &b] {
        let left = sandbox.interfaces().await?;
        ensure!(left.is_empty(), "sandbox interfaces left: {left:?}");
    }
    ensure!(driver.port_mapper().allocated_ports() == 0, "ports left");
    ensure!(driver.port_mapper().mappings().is_empty(), "mappings left");
    if let Some(fw) = driver.firewall() {
        ensure!(fw.port_mappings().is_empty(), "firewall port mappings left");
    }
    let rules_after = bed.ruleset()?;
    ensure!(
        !rules_after.contains("br-net1") && !rules_after.contains("10.10.1."),
        "rules left:\n{rules_after}"
    );
    if fw == Fw::Nftables {
        ensure!(
            rules_after == rules_before,
            "ruleset changed:\n{rules_before}\n---\n{rules_after}"
        );
    }
    let records = bed.store.list(&key(&["bridge"]))?;
    let endpoint_records = bed.store.list(&key(&["bridge-endpoint"]))?;
    ensure!(
        records.is_empty() && endpoint_records.is_empty(),
        "records left"
    );
    Ok(())
}

kernel_tests!(removing_endpoints_and_network_leaves_nothing_behind: nftables, iptables);

async fn leave_removes_the_interface_once_background_work_ends(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    let host_name = driver
        .endpoint_host_name("net1", "ep-a")
        .await
        .expect("endpoint exists");
    ensure!(bed.host_links().await?.contains(&host_name));

    driver.leave("net1", "ep-a").await?;
    // Both ends are down at once, so no traffic passes any more, and the sandbox's name and
    // route are free: another endpoint of the subnet joins as eth0 right away.
    let link = bed.host.netlink().link_by_name(&host_name).await;
    ensure!(link.map(|l| !l.up).unwrap_or(true), "host end still up");
    let inside = a.interfaces().await?;
    ensure!(
        inside.iter().all(|i| !i.link.up && i.link.name != "eth0"),
        "sandbox end still in service: {inside:?}"
    );
    let eb = attach(&driver, "net1", "ep-b", &a, "10.10.1.3/24", &[]).await?;
    ensure!(eb.name() == "eth0", "joined as {}", eb.name());
    driver.leave("net1", "ep-b").await?;
    driver.delete_endpoint("net1", "ep-b").await?;
    driver.settle().await;
    ensure!(!bed.host_links().await?.contains(&host_name), "veth left");
    ensure!(a.interfaces().await?.is_empty(), "sandbox interface left");

    // Joining again works, and a second leave right away too.
    driver.join("net1", "ep-a", &a, &Default::default()).await?;
    ensure!(a.interfaces().await?.len() == 1);
    driver.leave("net1", "ep-a").await?;
    driver.join("net1", "ep-a", &a, &Default::default()).await?;
    driver.leave("net1", "ep-a").await?;
    driver.delete_endpoint("net1", "ep-a").await?;
    driver.delete_network("net1").await?;
    driver.settle().await;
    ensure!(a.interfaces().await?.is_empty(), "sandbox interface left");
    ensure!(
        !bed.host_links()
            .await?
            .iter()
            .any(|l| l.starts_with("veth"))
    );
    Ok(())
}

kernel_tests!(leave_removes_the_interface_once_background_work_ends: without_firewall);

async fn leaving_after_the_sandbox_is_destroyed_leaves_nothing(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let links = bed.host_links().await?;
    let a = bed.sandbox("container-a").await?;
    attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    a.destroy()?;
    driver.leave("net1", "ep-a").await?;
    driver.delete_endpoint("net1", "ep-a").await?;
    driver.settle().await;
    ensure!(bed.host_links().await? == links, "links left");
    Ok(())
}

kernel_tests!(leaving_after_the_sandbox_is_destroyed_leaves_nothing: without_firewall);

/// A deleted network's bridge is deleted in the background, but its name is free at once: a
/// new network can take it, and the background deletion leaves the new bridge alone.
async fn a_deleted_networks_bridge_name_is_free_at_once(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    let name = [(libnetwork_driver_bridge::labels::BRIDGE_NAME, "brreuse")];
    driver
        .create_network(&network("net1", "10.10.1.0/24", &name))
        .await?;
    let first = bed.host.netlink().link_by_name("brreuse").await?;
    driver.delete_network("net1").await?;
    ensure!(
        !bed.host_links().await?.contains(&"brreuse".to_string()),
        "the old bridge still has the name"
    );
    driver
        .create_network(&network("net2", "10.10.1.0/24", &name))
        .await?;
    driver.settle().await;
    let second = bed.host.netlink().link_by_name("brreuse").await?;
    ensure!(second.index != first.index, "the old bridge was reused");
    ensure!(second.up, "the new bridge is down");
    let addrs = bed.host.netlink().addresses(Some(second.index)).await?;
    ensure!(
        addrs.iter().any(|a| a.net.to_string() == "10.10.1.1/24"),
        "the new bridge lost its gateway: {addrs:?}"
    );
    let links = bed.host_links().await?;
    ensure!(
        !links.iter().any(|l| l.starts_with("lnrm")),
        "the retired bridge was not deleted: {links:?}"
    );
    driver.delete_network("net2").await?;
    Ok(())
}

kernel_tests!(a_deleted_networks_bridge_name_is_free_at_once: without_firewall);
