//! Bad options are refused with a bad request and create nothing; good ones shape the bridge.

use anyhow::{Result, bail, ensure};
use libnetwork_datastore::key;
use libnetwork_driver_bridge::{BridgeIfaceCreator, labels};
use libnetwork_driverapi::{CreateNetworkRequest, Driver, ErrorKind};

use crate::common::{Bed, Fw, attach, network};
use crate::kernel_tests;

/// Creates `request`, expecting a bad request that changes nothing.
async fn refused(bed: &Bed, driver: &impl Driver, request: &CreateNetworkRequest) -> Result<()> {
    let links = bed.host_links().await?;
    let rules = bed.ruleset()?;
    let records = bed.store.list(&key(&["bridge"]))?;
    match driver.create_network(request).await {
        Ok(_) => bail!("{request:?} was accepted"),
        Err(e) => ensure!(e.kind() == ErrorKind::BadRequest, "{e} is {:?}", e.kind()),
    }
    ensure!(bed.host_links().await? == links, "links changed");
    ensure!(bed.ruleset()? == rules, "rules changed");
    ensure!(
        bed.store.list(&key(&["bridge"]))? == records,
        "store changed"
    );
    Ok(())
}

async fn bad_options_are_bad_requests_and_create_nothing(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    refused(
        &bed,
        &driver,
        &network(
            "bad1",
            "10.10.1.0/24",
            &[("com.docker.network.bridge.colour", "red")],
        ),
    )
    .await?;
    for mtu in ["-1", "70000", "12", "lots"] {
        refused(
            &bed,
            &driver,
            &network("bad2", "10.10.1.0/24", &[(labels::MTU, mtu)]),
        )
        .await?;
    }
    refused(
        &bed,
        &driver,
        &network("bad3", "10.10.1.0/24", &[(labels::ENABLE_ICC, "sometimes")]),
    )
    .await?;

    // A bridge name used by another network of the driver.
    driver
        .create_network(&network(
            "net1",
            "10.10.1.0/24",
            &[(labels::BRIDGE_NAME, "brshared")],
        ))
        .await?;
    refused(
        &bed,
        &driver,
        &network("net2", "10.10.2.0/24", &[(labels::BRIDGE_NAME, "brshared")]),
    )
    .await?;
    // An existing interface that is not a bridge.
    refused(
        &bed,
        &driver,
        &network("net3", "10.10.3.0/24", &[(labels::BRIDGE_NAME, "vout")]),
    )
    .await?;
    driver.delete_network("net1").await?;
    ensure!(!bed.host_links().await?.contains(&"brshared".to_string()));
    Ok(())
}

kernel_tests!(bad_options_are_bad_requests_and_create_nothing: without_firewall, nftables, iptables);

async fn existing_ids_and_overlapping_subnets_are_conflicts(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let again = driver
        .create_network(&network("net1", "10.10.9.0/24", &[]))
        .await
        .expect_err("same id");
    ensure!(again.kind() == ErrorKind::Conflict, "{again}");
    let overlap = driver
        .create_network(&network("net2", "10.10.0.0/16", &[]))
        .await
        .expect_err("overlapping subnet");
    ensure!(overlap.kind() == ErrorKind::Conflict, "{overlap}");
    Ok(())
}

kernel_tests!(existing_ids_and_overlapping_subnets_are_conflicts: without_firewall);

async fn bridge_gets_the_gateway_mtu_and_sysctls(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network(
            "0123456789abcdef",
            "10.10.1.0/24",
            &[
                (labels::MTU, "1400"),
                (labels::CONTAINER_IFACE_PREFIX, "ctr"),
            ],
        ))
        .await?;
    let nl = bed.host.netlink();
    let bridge = nl.link_by_name("br-0123456789ab").await?;
    ensure!(bridge.kind.as_deref() == Some("bridge") && bridge.up && bridge.mtu == 1400);
    let mac = bridge.mac.expect("bridge MAC");
    ensure!(mac.0[..2] == [0x02, 0x42], "bridge MAC {mac}");
    let addresses = nl.addresses(Some(bridge.index)).await?;
    ensure!(
        addresses
            .iter()
            .any(|a| a.net == "10.10.1.1/24".parse().unwrap()),
        "{addresses:?}"
    );
    let cfg = driver.network_config("0123456789abcdef").expect("network");
    ensure!(cfg.bridge_iface_creator == BridgeIfaceCreator::Driver);

    // The container interface: prefix, MTU, MAC from the IPv4 address.
    let a = bed.sandbox("container-a").await?;
    let ea = attach(&driver, "0123456789abcdef", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    ensure!(ea.name() == "ctr0", "interface {}", ea.name());
    ensure!(ea.interface.mac == Some("02:42:0a:0a:01:02".parse()?));
    let inside = a.interfaces().await?;
    let [iface] = inside.as_slice() else {
        bail!("interfaces {inside:?}");
    };
    ensure!(iface.link.mtu == 1400 && iface.link.up);
    ensure!(iface.link.mac == Some("02:42:0a:0a:01:02".parse()?));
    ensure!(
        iface
            .addresses
            .iter()
            .any(|a| a.net == "10.10.1.2/24".parse().unwrap())
    );
    ensure!(ea.join.gateway == Some("10.10.1.1".parse()?));
    let host_end = nl
        .link_by_name(
            &driver
                .endpoint_host_name("0123456789abcdef", "ep-a")
                .await
                .expect("endpoint"),
        )
        .await?;
    ensure!(host_end.master == Some(bridge.index) && host_end.mtu == 1400 && host_end.up);
    ensure!(host_end.name.len() == 11 && host_end.name.starts_with("veth"));
    Ok(())
}

kernel_tests!(bridge_gets_the_gateway_mtu_and_sysctls: without_firewall);

async fn an_existing_bridge_is_used_and_kept(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let nl = bed.host.netlink();
    let user = nl.create_bridge("usrbr").await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network(
            "net1",
            "10.10.1.0/24",
            &[(labels::BRIDGE_NAME, "usrbr")],
        ))
        .await?;
    let cfg = driver.network_config("net1").expect("network");
    ensure!(cfg.bridge_iface_creator == BridgeIfaceCreator::User);
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let ea = attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &[]).await?;
    let server = crate::common::Server::bind(a.netns(), crate::common::sa(ea.ip(), 0)).await?;
    let port = server.port();
    crate::common::exchange(&server, b.netns(), crate::common::sa(ea.ip(), port)).await?;
    driver.delete_network("net1").await?;
    let kept = nl.link_by_name("usrbr").await?;
    ensure!(kept.index == user.index, "the user's bridge was deleted");
    Ok(())
}

kernel_tests!(an_existing_bridge_is_used_and_kept: without_firewall);

async fn default_bridge_must_be_docker0_and_is_kept(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    let links = bed.host_links().await?;
    let err = driver
        .create_network(&network(
            "def1",
            "172.17.0.0/16",
            &[
                (labels::DEFAULT_BRIDGE, "true"),
                (labels::BRIDGE_NAME, "notdocker0"),
            ],
        ))
        .await
        .expect_err("a default bridge not called docker0");
    ensure!(err.kind() == ErrorKind::Forbidden, "{err}");
    ensure!(bed.host_links().await? == links, "links changed");

    driver
        .create_network(&network(
            "def2",
            "172.17.0.0/16",
            &[(labels::DEFAULT_BRIDGE, "true")],
        ))
        .await?;
    ensure!(bed.host_links().await?.contains(&"docker0".to_string()));
    driver.delete_network("def2").await?;
    ensure!(
        bed.host_links().await?.contains(&"docker0".to_string()),
        "the default bridge was deleted"
    );
    Ok(())
}

kernel_tests!(default_bridge_must_be_docker0_and_is_kept: without_firewall);

async fn concurrent_creations_of_one_network_let_exactly_one_succeed(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    let request = network("net1", "10.10.1.0/24", &[]);
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let driver = driver.clone();
            let request = request.clone();
            tokio::spawn(async move { driver.create_network(&request).await })
        })
        .collect();
    let mut ok = 0;
    for attempt in attempts {
        match attempt.await? {
            Ok(_) => ok += 1,
            Err(e) => ensure!(e.kind() == ErrorKind::Conflict, "{e}"),
        }
    }
    ensure!(ok == 1, "{ok} creations succeeded");
    Ok(())
}

kernel_tests!(concurrent_creations_of_one_network_let_exactly_one_succeed: without_firewall);

async fn inhibit_ipv4_leaves_the_bridge_without_an_ipv4_address(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network(
            "net1",
            "10.10.1.0/24",
            &[(labels::INHIBIT_IPV4, "true")],
        ))
        .await?;
    let nl = bed.host.netlink();
    let bridge = nl.link_by_name("br-net1").await?;
    let addresses = nl.addresses(Some(bridge.index)).await?;
    ensure!(
        !addresses.iter().any(|a| a.net.addr().is_ipv4()),
        "bridge has {addresses:?}"
    );
    // Containers on it still talk to each other.
    let a = bed.sandbox("container-a").await?;
    let b = bed.sandbox("container-b").await?;
    let ea = attach(&driver, "net1", "ep-a", &a, "10.10.1.2/24", &[]).await?;
    attach(&driver, "net1", "ep-b", &b, "10.10.1.3/24", &[]).await?;
    let server = crate::common::Server::bind(a.netns(), crate::common::sa(ea.ip(), 0)).await?;
    let port = server.port();
    crate::common::exchange(&server, b.netns(), crate::common::sa(ea.ip(), port)).await?;
    Ok(())
}

kernel_tests!(inhibit_ipv4_leaves_the_bridge_without_an_ipv4_address: without_firewall);
