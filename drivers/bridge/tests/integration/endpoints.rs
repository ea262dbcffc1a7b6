//! Endpoint records, MACs, and the errors of unknown or misused endpoints.

use anyhow::{Result, ensure};
use libnetwork_datastore::key;
use libnetwork_driverapi::{
    Driver, EndpointInterface, EndpointOptions, ErrorKind, JoinOptions, MacAddr,
};

use crate::common::{Bed, Fw, attach, network, tcp_binding};
use crate::kernel_tests;

async fn records_use_libnetwork_keys_and_field_names(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    attach(
        &driver,
        "net1",
        "ep-a",
        &a,
        "10.10.1.2/24",
        &[tcp_binding(80, 18080)],
    )
    .await?;

    let net = bed.store.get(&key(&["bridge", "net1"]))?;
    let net: serde_json::Value = serde_json::from_slice(&net.value)?;
    ensure!(
        net["ID"] == "net1" && net["BridgeName"] == "br-net1",
        "{net}"
    );
    ensure!(net["EnableICC"] == true && net["EnableIPMasquerade"] == true);
    ensure!(net["AddressIPv4"] == "10.10.1.1/24" && net["BridgeIfaceCreator"] == 1);
    ensure!(net["Mtu"] == 0 && net["Internal"] == false && net["EnableIPv6"] == false);

    let ep = bed.store.get(&key(&["bridge-endpoint", "ep-a"]))?;
    let ep: serde_json::Value = serde_json::from_slice(&ep.value)?;
    ensure!(ep["id"] == "ep-a" && ep["nid"] == "net1", "{ep}");
    ensure!(ep["MacAddress"] == "02:42:0a:0a:01:02" && ep["Addr"] == "10.10.1.2/24");
    ensure!(
        ep["SrcName"]
            .as_str()
            .is_some_and(|s| s.starts_with("veth") && s.len() == 11)
    );
    ensure!(ep["PortMapping"][0]["HostPort"] == 18080, "{ep}");
    ensure!(ep["PortMapping"][0]["IP"] == "10.10.1.2", "{ep}");
    ensure!(
        ep["ExternalConnConfig"]["PortBindings"][0]["Port"] == 80,
        "{ep}"
    );

    // Revoking forgets the mapping in the record too.
    driver.revoke_external_connectivity("net1", "ep-a").await?;
    let ep = bed.store.get(&key(&["bridge-endpoint", "ep-a"]))?;
    let ep: serde_json::Value = serde_json::from_slice(&ep.value)?;
    ensure!(
        ep["PortMapping"].as_array().is_some_and(Vec::is_empty),
        "{ep}"
    );
    Ok(())
}

kernel_tests!(records_use_libnetwork_keys_and_field_names: without_firewall);

async fn mac_comes_from_the_option_or_the_ipv4_address(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "172.30.0.0/16", &[]))
        .await?;
    let mut derived = EndpointInterface {
        address: Some("172.30.4.5/16".parse()?),
        ..Default::default()
    };
    driver
        .create_endpoint("net1", "ep-a", &mut derived, &EndpointOptions::default())
        .await?;
    ensure!(derived.mac == Some(MacAddr::from_ipv4("172.30.4.5".parse()?)));
    ensure!(derived.mac == Some("02:42:ac:1e:04:05".parse()?));

    let wanted: MacAddr = "02:00:00:00:00:aa".parse()?;
    let mut chosen = EndpointInterface {
        address: Some("172.30.4.6/16".parse()?),
        ..Default::default()
    };
    driver
        .create_endpoint(
            "net1",
            "ep-b",
            &mut chosen,
            &EndpointOptions {
                mac_address: Some(wanted),
                ..Default::default()
            },
        )
        .await?;
    ensure!(chosen.mac == Some(wanted));
    let b = bed.sandbox("container-b").await?;
    driver
        .join("net1", "ep-b", &b, &JoinOptions::default())
        .await?;
    let inside = b.interfaces().await?;
    ensure!(inside[0].link.mac == Some(wanted), "{inside:?}");
    Ok(())
}

kernel_tests!(mac_comes_from_the_option_or_the_ipv4_address: without_firewall);

async fn unknown_and_misused_endpoints_get_clear_errors(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    let kind = |r: Result<(), libnetwork_driverapi::Error>| r.expect_err("an error").kind();

    let mut iface = EndpointInterface {
        address: Some("10.10.1.2/24".parse()?),
        ..Default::default()
    };
    let opts = EndpointOptions::default();
    ensure!(
        kind(
            driver
                .create_endpoint("nope", "ep", &mut iface.clone(), &opts)
                .await
        ) == ErrorKind::NotFound
    );
    ensure!(kind(driver.leave("net1", "nope").await) == ErrorKind::NotFound);
    ensure!(kind(driver.delete_endpoint("net1", "nope").await) == ErrorKind::NotFound);
    ensure!(kind(driver.delete_network("nope").await) == ErrorKind::NotFound);

    // No IPv4 address, or one outside the subnet.
    let mut none = EndpointInterface::default();
    ensure!(
        kind(driver.create_endpoint("net1", "ep", &mut none, &opts).await) == ErrorKind::BadRequest
    );
    let mut outside = EndpointInterface {
        address: Some("10.99.0.2/24".parse()?),
        ..Default::default()
    };
    ensure!(
        kind(
            driver
                .create_endpoint("net1", "ep", &mut outside, &opts)
                .await
        ) == ErrorKind::BadRequest
    );

    driver
        .create_endpoint("net1", "ep", &mut iface, &opts)
        .await?;
    ensure!(
        kind(
            driver
                .create_endpoint("net1", "ep", &mut iface.clone(), &opts)
                .await
        ) == ErrorKind::Conflict
    );
    ensure!(kind(driver.leave("net1", "ep").await) == ErrorKind::Conflict);
    driver
        .join("net1", "ep", &a, &JoinOptions::default())
        .await?;
    ensure!(
        driver
            .join("net1", "ep", &a, &JoinOptions::default())
            .await
            .expect_err("joined twice")
            .kind()
            == ErrorKind::Conflict
    );
    // A failed join left nothing: still one interface.
    ensure!(a.interfaces().await?.len() == 1);
    Ok(())
}

kernel_tests!(unknown_and_misused_endpoints_get_clear_errors: without_firewall);

async fn failed_join_leaves_no_link_behind(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let a = bed.sandbox("container-a").await?;
    // The sandbox already has a route over the endpoint's subnet, so the address is refused
    // inside the sandbox after the veth was made.
    let pair = a
        .create_veth(
            "vblock",
            "blk",
            &libnetwork_osl::InterfaceOptions {
                addresses: vec!["10.10.1.200/24".parse()?],
                ..Default::default()
            },
        )
        .await?;
    let links = bed.host_links().await?;
    let mut iface = EndpointInterface {
        address: Some("10.10.1.2/24".parse()?),
        ..Default::default()
    };
    driver
        .create_endpoint("net1", "ep", &mut iface, &EndpointOptions::default())
        .await?;
    let err = driver
        .join("net1", "ep", &a, &JoinOptions::default())
        .await
        .expect_err("address conflicts with a route");
    ensure!(err.kind() == ErrorKind::Conflict, "{err}");
    ensure!(bed.host_links().await? == links, "links changed");
    ensure!(
        a.interfaces().await?.len() == 1,
        "sandbox interfaces changed"
    );
    let _ = pair;
    Ok(())
}

kernel_tests!(failed_join_leaves_no_link_behind: without_firewall);

async fn concurrent_attaches_on_one_network_all_work(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let driver = bed.driver().await?;
    driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    let mut sandboxes = Vec::new();
    for i in 0..8 {
        sandboxes.push(std::sync::Arc::new(
            bed.sandbox(&format!("container-{i}")).await?,
        ));
    }
    let tasks: Vec<_> = sandboxes
        .iter()
        .enumerate()
        .map(|(i, sandbox)| {
            let driver = driver.clone();
            let sandbox = std::sync::Arc::clone(sandbox);
            tokio::spawn(async move {
                let eid = format!("ep-{i}");
                let ip = format!("10.10.1.{}/24", 10 + i);
                attach(&driver, "net1", &eid, &sandbox, &ip, &[tcp_binding(80, 0)]).await
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let mut names = Vec::new();
    for i in 0..8 {
        names.push(
            driver
                .endpoint_host_name("net1", &format!("ep-{i}"))
                .await
                .expect("endpoint"),
        );
    }
    names.sort();
    names.dedup();
    ensure!(names.len() == 8, "host names repeat: {names:?}");
    ensure!(driver.port_mapper().allocated_ports() == 8);

    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let driver = driver.clone();
            tokio::spawn(
                async move { crate::common::detach(&driver, "net1", &format!("ep-{i}")).await },
            )
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    driver.settle().await;
    ensure!(driver.port_mapper().allocated_ports() == 0);
    ensure!(
        !bed.host_links()
            .await?
            .iter()
            .any(|l| l.starts_with("veth"))
    );
    Ok(())
}

kernel_tests!(concurrent_attaches_on_one_network_all_work: without_firewall, nftables);

async fn the_driver_registers_as_bridge(fw: Fw) -> Result<()> {
    let bed = Bed::new(fw).await?;
    let registry = libnetwork_driverapi::Registry::new();
    let driver = libnetwork_driver_bridge::register(
        &registry,
        bed.host.clone(),
        libnetwork_driver_bridge::BridgeDriverOptions::default(),
    )
    .await?;
    let found = registry.driver("bridge").expect("registered");
    ensure!(found.name == "bridge" && found.driver.driver_type() == "bridge");
    ensure!(found.capability == driver.capability());
    ensure!(found.capability.data_scope == libnetwork_driverapi::Scope::Local);
    // The registered driver is the one returned: a network made through it is seen by both.
    found
        .driver
        .create_network(&network("net1", "10.10.1.0/24", &[]))
        .await?;
    ensure!(driver.network_config("net1").is_some());
    Ok(())
}

kernel_tests!(the_driver_registers_as_bridge: without_firewall);
