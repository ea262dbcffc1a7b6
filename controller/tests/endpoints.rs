//! Endpoint options and rules: static addresses, MAC, aliases, ports, IPv6, exhaustion,
//! duplicate names, deletion while joined, info before and after joins.

mod common;

use anyhow::{Context, ensure};
use libnetwork::{
    Controller, EndpointOptions, Error, ErrorKind, IpamConf, IpamOptions, JoinOptions,
    NetworkOptions, PortBinding, Protocol, SandboxOptions, TransportPort, netlabel,
};

fn with_subnet(pool: &str) -> NetworkOptions {
    NetworkOptions {
        ipam: IpamOptions {
            v4: vec![IpamConf {
                preferred_pool: Some(pool.parse().unwrap()),
                ..IpamConf::default()
            }],
            ..IpamOptions::default()
        },
        ..NetworkOptions::default()
    }
}

#[test]
fn static_addresses_macs_and_aliases_are_given_to_the_endpoint() {
    common::run(
        "static_addresses_macs_and_aliases_are_given_to_the_endpoint",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n = c
                .new_network("bridge", "n", with_subnet("10.50.0.0/24"))
                .await?;
            let mac = "02:00:00:00:aa:01".parse()?;
            let ep = n
                .create_endpoint(
                    "web",
                    EndpointOptions {
                        ipv4_address: Some("10.50.0.77".parse()?),
                        mac_address: Some(mac),
                        aliases: vec!["www".into()],
                        dns_names: vec!["site".into()],
                        ..EndpointOptions::default()
                    },
                )
                .await?;
            let info = ep.info();
            ensure!(
                info.interface.address.map(|a| a.to_string()).as_deref() == Some("10.50.0.77/24")
            );
            ensure!(info.interface.mac_address == Some(mac));
            ensure!(info.aliases == ["www"] && info.dns_names == ["site"]);
            // Before a join there is no gateway and no sandbox.
            ensure!(info.gateway.is_none() && info.sandbox_id.is_none());
            let driver_info = ep.driver_info().await?;
            ensure!(driver_info[netlabel::MAC_ADDRESS] == mac.to_string());

            // Joined, the kernel has that MAC and address.
            let sb = c
                .new_sandbox("c1", SandboxOptions::new().hostname("web"))
                .await?;
            ep.join(&sb, JoinOptions::default()).await?;
            let ifaces = sb.os_sandbox().interfaces().await?;
            let eth0 = ifaces
                .iter()
                .find(|i| i.link.name == "eth0")
                .context("eth0")?;
            ensure!(eth0.link.mac == Some(mac));
            ensure!(
                eth0.addresses
                    .iter()
                    .any(|a| a.net.to_string() == "10.50.0.77/24")
            );
            ensure!(ep.info().gateway.map(|g| g.to_string()).as_deref() == Some("10.50.0.1"));
            ensure!(ep.info().sandbox_id.as_deref() == Some(sb.id()));

            // A taken address, and one outside the network.
            let e = n
                .create_endpoint(
                    "other",
                    EndpointOptions {
                        ipv4_address: Some("10.50.0.77".parse()?),
                        ..EndpointOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Conflict, "{e}");
            let e = n
                .create_endpoint(
                    "other",
                    EndpointOptions {
                        ipv4_address: Some("10.51.0.5".parse()?),
                        ..EndpointOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::BadRequest, "{e}");
            ensure!(
                e.to_string()
                    .contains("does not belong to any of this network's subnets"),
                "{e}"
            );
            ensure!(n.endpoints().len() == 1);
            sb.delete().await?;
            ensure!(
                n.endpoints().is_empty(),
                "sandbox deletion deletes its endpoints"
            );
            n.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn endpoint_names_are_unique_per_network_and_blank_ones_are_refused() {
    common::run(
        "endpoint_names_are_unique_per_network_and_blank_ones_are_refused",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n = c
                .new_network("bridge", "n", NetworkOptions::default())
                .await?;
            let ep = n.create_endpoint("ep1", EndpointOptions::default()).await?;
            let e = n
                .create_endpoint("ep1", EndpointOptions::default())
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            ensure!(
                e.to_string()
                    .contains("endpoint with name ep1 already exists in network n")
            );
            let e = n
                .create_endpoint("", EndpointOptions::default())
                .await
                .unwrap_err();
            ensure!(matches!(e, Error::InvalidName(_)), "{e}");
            ensure!(n.endpoint_by_name("ep1")?.id() == ep.id());
            ensure!(n.endpoint_by_id(ep.id())?.name() == "ep1");
            ensure!(n.endpoint_by_name("nope").unwrap_err().kind() == ErrorKind::NotFound);
            ep.delete(false).await?;
            ensure!(ep.delete(false).await.unwrap_err().kind() == ErrorKind::NotFound);
            n.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn a_joined_endpoint_is_deleted_only_when_forced() {
    common::run(
        "a_joined_endpoint_is_deleted_only_when_forced",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n = c
                .new_network("bridge", "n", NetworkOptions::default())
                .await?;
            let ep = n.create_endpoint("ep", EndpointOptions::default()).await?;
            let sb = c.new_sandbox("c", SandboxOptions::new()).await?;
            ep.join(&sb, JoinOptions::default()).await?;
            let e = ep.delete(false).await.unwrap_err();
            ensure!(matches!(e, Error::ActiveContainer { .. }), "{e}");
            ensure!(e.kind() == ErrorKind::Forbidden);
            // A second join, to another sandbox, is forbidden too.
            let sb2 = c.new_sandbox("c2", SandboxOptions::new()).await?;
            let e = ep.join(&sb2, JoinOptions::default()).await.unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            // Leaving a sandbox it is not in, or leaving twice, is forbidden.
            let e = ep.leave(&sb2).await.unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            ep.delete(true).await?;
            ensure!(n.endpoints().is_empty());
            ensure!(sb.endpoints().is_empty());
            ensure!(
                sb.os_sandbox()
                    .interfaces()
                    .await?
                    .iter()
                    .all(|i| !i.link.up || i.link.name != "eth0")
            );
            let other = n
                .create_endpoint("other", EndpointOptions::default())
                .await?;
            let e = other.leave(&sb).await.unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            ensure!(
                e.to_string()
                    .contains("cannot leave endpoint with no attached sandbox"),
                "{e}"
            );
            other.delete(false).await?;
            sb.delete().await?;
            sb2.delete().await?;
            n.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn a_full_network_has_no_address_for_another_endpoint() {
    common::run(
        "a_full_network_has_no_address_for_another_endpoint",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            // A /29 has six usable addresses: the gateway and five endpoints.
            let n = c
                .new_network("bridge", "small", with_subnet("10.60.0.0/29"))
                .await?;
            let mut eps = Vec::new();
            for i in 0..5 {
                eps.push(
                    n.create_endpoint(&format!("ep{i}"), EndpointOptions::default())
                        .await?,
                );
            }
            let e = n
                .create_endpoint("one-too-many", EndpointOptions::default())
                .await
                .unwrap_err();
            ensure!(matches!(e, Error::NoAvailableAddress { v6: false }), "{e}");
            ensure!(e.kind() == ErrorKind::Unavailable);
            // Freeing one makes room again.
            eps.pop().unwrap().delete(false).await?;
            n.create_endpoint("fits", EndpointOptions::default())
                .await?;
            for ep in n.endpoints() {
                ep.delete(false).await?;
            }
            n.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn ipv6_networks_give_endpoints_ipv6_addresses() {
    common::run(
        "ipv6_networks_give_endpoints_ipv6_addresses",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n = c
                .new_network(
                    "bridge",
                    "v6",
                    NetworkOptions {
                        enable_ipv6: true,
                        ipam: IpamOptions {
                            v6: vec![IpamConf {
                                preferred_pool: Some("fd00:1::/64".parse()?),
                                ..IpamConf::default()
                            }],
                            ..IpamOptions::default()
                        },
                        ..NetworkOptions::default()
                    },
                )
                .await?;
            ensure!(n.info().enable_ipv6 && n.info().ipv6_info.len() == 1);
            let ep = n
                .create_endpoint(
                    "ep",
                    EndpointOptions {
                        ipv6_address: Some("fd00:1::42".parse()?),
                        ..EndpointOptions::default()
                    },
                )
                .await?;
            ensure!(
                ep.info()
                    .interface
                    .address_ipv6
                    .map(|a| a.to_string())
                    .as_deref()
                    == Some("fd00:1::42/64")
            );
            ensure!(ep.info().interface.address.is_some());
            let sb = c.new_sandbox("c", SandboxOptions::new()).await?;
            ep.join(&sb, JoinOptions::default()).await?;
            ensure!(ep.info().gateway_ipv6.map(|g| g.to_string()).as_deref() == Some("fd00:1::1"));
            ensure!(
                sb.os_sandbox()
                    .gateway(true)
                    .await?
                    .map(|g| g.to_string())
                    .as_deref()
                    == Some("fd00:1::1")
            );
            sb.delete().await?;
            // An IPv6 address on an IPv4-only network is a bad request.
            let v4 = c
                .new_network("bridge", "v4", NetworkOptions::default())
                .await?;
            let e = v4
                .create_endpoint(
                    "ep",
                    EndpointOptions {
                        ipv6_address: Some("fd00:1::43".parse()?),
                        ..EndpointOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::BadRequest, "{e}");
            v4.delete().await?;
            n.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn port_bindings_are_published_while_the_endpoint_is_the_gateway() {
    common::run(
        "port_bindings_are_published_while_the_endpoint_is_the_gateway",
        |dir| async move {
            let c = Controller::new(common::config(&dir)).await?;
            let n = c
                .new_network("bridge", "pub", with_subnet("10.70.0.0/24"))
                .await?;
            let binding = PortBinding {
                proto: Protocol::Tcp,
                ip: None,
                port: 80,
                host_ip: None,
                host_port: 18080,
                host_port_end: 0,
            };
            let ep = n
                .create_endpoint(
                    "web",
                    EndpointOptions {
                        exposed_ports: vec![TransportPort {
                            proto: Protocol::Tcp,
                            port: 80,
                        }],
                        port_bindings: vec![binding],
                        ..EndpointOptions::default()
                    },
                )
                .await?;
            ensure!(ep.info().port_bindings == [binding]);
            let sb = c.new_sandbox("c", SandboxOptions::new()).await?;
            ep.join(&sb, JoinOptions::default()).await?;
            let published = ep.driver_info().await?[netlabel::PORT_MAP].clone();
            let published = published.as_array().context("port map")?;
            ensure!(published.len() == 1, "{published:?}");
            ensure!(published[0]["HostPort"] == 18080 && published[0]["IP"] == "10.70.0.2");
            let rules = common::command("nft", &["list", "ruleset"])?;
            ensure!(rules.contains("18080"), "{rules}");
            ep.leave(&sb).await?;
            // The bridge driver withdraws revoked ports in the background.
            c.bridge_driver().settle().await;
            let published = ep.driver_info().await?[netlabel::PORT_MAP].clone();
            ensure!(
                published.as_array().is_none_or(Vec::is_empty),
                "{published}"
            );
            let rules = common::command("nft", &["list", "ruleset"])?;
            ensure!(!rules.contains("18080"), "{rules}");
            ep.delete(false).await?;
            sb.delete().await?;
            n.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn link_local_addresses_must_be_link_local() {
    common::run(
        "link_local_addresses_must_be_link_local",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n = c
                .new_network("bridge", "n", NetworkOptions::default())
                .await?;
            let e = n
                .create_endpoint(
                    "ep",
                    EndpointOptions {
                        link_local_addresses: vec!["10.0.0.1".parse()?],
                        ..EndpointOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::BadRequest, "{e}");
            let ep = n
                .create_endpoint(
                    "ep",
                    EndpointOptions {
                        link_local_addresses: vec!["169.254.7.7".parse()?],
                        ..EndpointOptions::default()
                    },
                )
                .await?;
            ensure!(
                ep.info()
                    .interface
                    .link_local_addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    == ["169.254.7.7/16"]
            );
            let sb = c.new_sandbox("c", SandboxOptions::new()).await?;
            ep.join(&sb, JoinOptions::default()).await?;
            let ifaces = sb.os_sandbox().interfaces().await?;
            ensure!(ifaces.iter().any(|i| {
                i.addresses
                    .iter()
                    .any(|a| a.net.to_string() == "169.254.7.7/16")
            }));
            sb.delete().await?;
            n.delete().await?;
            Ok(())
        },
    );
}
