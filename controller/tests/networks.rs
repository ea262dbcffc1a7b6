//! Network rules: names, ids, the predefined networks, deletion, configuration-only networks,
//! IPAM configurations, lookups and walkers.

mod common;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use anyhow::{Context, ensure};
use libnetwork::{
    Controller, EndpointOptions, Error, ErrorKind, IpamConf, IpamOptions, NetworkOptions,
};

fn subnet(pool: &str, gateway: Option<&str>) -> IpamOptions {
    IpamOptions {
        v4: vec![IpamConf {
            preferred_pool: Some(pool.parse().unwrap()),
            gateway: gateway.map(|g| g.parse().unwrap()),
            ..IpamConf::default()
        }],
        ..IpamOptions::default()
    }
}

#[test]
fn blank_names_and_bad_ids_are_refused_as_bad_requests() {
    common::run(
        "blank_names_and_bad_ids_are_refused_as_bad_requests",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            for name in ["", "  "] {
                let e = c
                    .new_network("null", name, NetworkOptions::default())
                    .await
                    .unwrap_err();
                ensure!(matches!(e, Error::InvalidName(_)), "{e}");
                ensure!(e.kind() == ErrorKind::BadRequest);
            }
            let e = c
                .new_network(
                    "bridge",
                    "n",
                    NetworkOptions {
                        id: Some("a/b".into()),
                        ..NetworkOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::BadRequest, "{e}");
            ensure!(c.network_by_name("").unwrap_err().kind() == ErrorKind::BadRequest);
            ensure!(c.network_by_id("").unwrap_err().kind() == ErrorKind::BadRequest);
            Ok(())
        },
    );
}

#[test]
fn network_names_and_ids_are_unique_and_ids_are_random_hex() {
    common::run(
        "network_names_and_ids_are_unique_and_ids_are_random_hex",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n1 = c
                .new_network("bridge", "net1", NetworkOptions::default())
                .await?;
            ensure!(n1.id().len() == 64 && n1.id().bytes().all(|b| b.is_ascii_hexdigit()));
            let dup = c
                .new_network("bridge", "net1", NetworkOptions::default())
                .await
                .unwrap_err();
            ensure!(dup.kind() == ErrorKind::Conflict, "{dup}");
            ensure!(
                dup.to_string().contains("name net1 already exists"),
                "{dup}"
            );
            let same_id = c
                .new_network(
                    "bridge",
                    "net2",
                    NetworkOptions {
                        id: Some(n1.id().to_owned()),
                        ..NetworkOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(same_id.kind() == ErrorKind::Conflict, "{same_id}");
            let n2 = c
                .new_network(
                    "bridge",
                    "net2",
                    NetworkOptions {
                        id: Some("my-own-id".into()),
                        ..NetworkOptions::default()
                    },
                )
                .await?;
            ensure!(n2.id() == "my-own-id");
            ensure!(n1.id() != n2.id());
            // The refused creations left nothing: exactly the two bridges exist.
            let bridges = common::host_link_names().await?;
            ensure!(bridges.len() == 2, "{bridges:?}");
            n1.delete().await?;
            n2.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn the_predefined_host_and_none_networks_exist_and_cannot_be_deleted() {
    common::run(
        "the_predefined_host_and_none_networks_exist_and_cannot_be_deleted",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let host = c.network_by_name("host")?;
            let none = c.network_by_name("none")?;
            ensure!(host.network_type() == "host");
            ensure!(none.network_type() == "null");
            for n in [&host, &none] {
                let e = n.delete().await.unwrap_err();
                ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            }
            ensure!(c.network_by_id(host.id())?.name() == "host");
            // Only one host network.
            let e = c
                .new_network("host", "host2", NetworkOptions::default())
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            ensure!(c.network_by_name("host2").is_err());
            Ok(())
        },
    );
}

#[test]
fn a_network_with_endpoints_cannot_be_deleted_and_a_deleted_one_is_gone() {
    common::run(
        "a_network_with_endpoints_cannot_be_deleted_and_a_deleted_one_is_gone",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n = c
                .new_network("bridge", "busy", NetworkOptions::default())
                .await?;
            let ep = n.create_endpoint("ep", EndpointOptions::default()).await?;
            let e = n.delete().await.unwrap_err();
            ensure!(matches!(e, Error::ActiveEndpoints { .. }), "{e}");
            ensure!(e.kind() == ErrorKind::Forbidden);
            ensure!(
                e.to_string()
                    == format!(
                        "delete network: network busy id {} has active endpoints",
                        n.id()
                    ),
                "{e}"
            );
            ensure!(c.network_by_name("busy").is_ok());
            ep.delete(false).await?;
            n.delete().await?;
            let again = n.delete().await.unwrap_err();
            ensure!(again.kind() == ErrorKind::NotFound, "{again}");
            ensure!(c.network_by_name("busy").unwrap_err().kind() == ErrorKind::NotFound);
            c.settle().await;
            ensure!(common::host_link_names().await?.is_empty());
            Ok(())
        },
    );
}

#[test]
fn unknown_drivers_and_ipam_drivers_are_not_found() {
    common::run(
        "unknown_drivers_and_ipam_drivers_are_not_found",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let e = c
                .new_network("overlay", "o", NetworkOptions::default())
                .await
                .unwrap_err();
            ensure!(
                matches!(e, Error::UnknownDriver(_)) && e.kind() == ErrorKind::NotFound,
                "{e}"
            );
            let e = c
                .new_network(
                    "bridge",
                    "b",
                    NetworkOptions {
                        ipam: IpamOptions {
                            driver: "nope".into(),
                            ..IpamOptions::default()
                        },
                        ..NetworkOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::NotFound, "{e}");
            ensure!(c.builtin_drivers() == ["bridge", "host", "ipvlan", "macvlan", "null"]);
            ensure!(c.builtin_ipam_drivers() == ["default", "null"]);
            Ok(())
        },
    );
}

#[test]
fn the_null_ipam_driver_gives_a_bridge_network_no_pool() {
    common::run(
        "the_null_ipam_driver_gives_a_bridge_network_no_pool",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let e = c
                .new_network(
                    "bridge",
                    "b",
                    NetworkOptions {
                        ipam: IpamOptions {
                            driver: "null".into(),
                            ..IpamOptions::default()
                        },
                        ..NetworkOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::BadRequest, "{e}");
            ensure!(common::host_link_names().await?.is_empty());
            Ok(())
        },
    );
}

#[test]
fn configuration_only_networks_follow_libnetworks_rules() {
    common::run(
        "configuration_only_networks_follow_libnetworks_rules",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            // Operator fields are not allowed on a configuration network.
            let e = c
                .new_network(
                    "bridge",
                    "cfg",
                    NetworkOptions {
                        config_only: true,
                        internal: true,
                        ..NetworkOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            let cfg = c
                .new_network(
                    "bridge",
                    "cfg",
                    NetworkOptions {
                        config_only: true,
                        ipam: subnet("10.77.0.0/24", Some("10.77.0.254")),
                        driver_options: BTreeMap::from([(
                            "com.docker.network.bridge.name".to_owned(),
                            "cfgbr0".to_owned(),
                        )]),
                        ..NetworkOptions::default()
                    },
                )
                .await?;
            ensure!(cfg.network_type() == "null" && cfg.info().config_only);
            ensure!(cfg.info().scope == "local");
            // No endpoints on it, and nothing in the kernel.
            let e = cfg
                .create_endpoint("ep", EndpointOptions::default())
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            ensure!(common::host_link_names().await?.is_empty());

            // A network made from it may not set its own configuration.
            let e = c
                .new_network(
                    "bridge",
                    "user",
                    NetworkOptions {
                        config_from: Some("cfg".into()),
                        enable_ipv6: true,
                        ..NetworkOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            let e = c
                .new_network(
                    "bridge",
                    "user",
                    NetworkOptions {
                        config_from: Some("missing".into()),
                        ..NetworkOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::NotFound, "{e}");
            // It takes the configuration network's subnet, gateway and driver options.
            let user = c
                .new_network(
                    "bridge",
                    "user",
                    NetworkOptions {
                        config_from: Some("cfg".into()),
                        ..NetworkOptions::default()
                    },
                )
                .await?;
            let info = user.info();
            ensure!(info.config_from.as_deref() == Some("cfg"));
            ensure!(info.ipv4_info[0].data.pool.to_string() == "10.77.0.0/24");
            ensure!(
                info.ipv4_info[0]
                    .data
                    .gateway
                    .map(|g| g.to_string())
                    .as_deref()
                    == Some("10.77.0.254/24")
            );
            ensure!(common::host_link_names().await? == ["cfgbr0"]);
            // The configuration network is in use until the user goes.
            let e = cfg.delete().await.unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            user.delete().await?;
            cfg.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn ipam_configurations_give_the_subnet_gateway_and_auxiliary_addresses() {
    common::run(
        "ipam_configurations_give_the_subnet_gateway_and_auxiliary_addresses",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let mut ipam = subnet("10.34.0.0/16", Some("10.34.255.254"));
            ipam.v4[0].sub_pool = Some("10.34.1.0/24".parse()?);
            ipam.v4[0]
                .aux_addresses
                .insert("printer".into(), "10.34.1.5".parse()?);
            let n = c
                .new_network(
                    "bridge",
                    "n",
                    NetworkOptions {
                        ipam: ipam.clone(),
                        ..NetworkOptions::default()
                    },
                )
                .await?;
            let data = &n.info().ipv4_info[0].data;
            ensure!(data.gateway.map(|g| g.to_string()).as_deref() == Some("10.34.255.254/16"));
            ensure!(data.aux_addresses["printer"].to_string() == "10.34.1.5/16");
            // Endpoints come from the range, never the auxiliary address.
            let mut seen = Vec::new();
            for i in 0..6 {
                let ep = n
                    .create_endpoint(&format!("ep{i}"), EndpointOptions::default())
                    .await?;
                seen.push(
                    ep.info()
                        .interface
                        .address
                        .context("address")?
                        .addr()
                        .to_string(),
                );
            }
            ensure!(
                seen == [
                    "10.34.1.0",
                    "10.34.1.1",
                    "10.34.1.2",
                    "10.34.1.3",
                    "10.34.1.4",
                    "10.34.1.6"
                ],
                "{seen:?}"
            );
            for ep in n.endpoints() {
                ep.delete(false).await?;
            }
            n.delete().await?;

            // An auxiliary address outside the pool is forbidden; nothing stays allocated.
            let mut bad = subnet("10.35.0.0/16", None);
            bad.v4[0]
                .aux_addresses
                .insert("x".into(), "10.99.0.1".parse()?);
            let e = c
                .new_network(
                    "bridge",
                    "bad",
                    NetworkOptions {
                        ipam: bad,
                        ..NetworkOptions::default()
                    },
                )
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            // The same subnet is free again, and its first address goes to the gateway.
            let n = c
                .new_network(
                    "bridge",
                    "good",
                    NetworkOptions {
                        ipam: subnet("10.35.0.0/16", None),
                        ..NetworkOptions::default()
                    },
                )
                .await?;
            ensure!(
                n.info().ipv4_info[0]
                    .data
                    .gateway
                    .map(|g| g.to_string())
                    .as_deref()
                    == Some("10.35.0.1/16")
            );
            n.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn a_driver_failure_releases_the_pool_and_the_gateway() {
    common::run(
        "a_driver_failure_releases_the_pool_and_the_gateway",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let options = |mtu: &str| NetworkOptions {
                ipam: subnet("10.34.0.0/16", Some("10.34.255.254")),
                driver_options: BTreeMap::from([(
                    "com.docker.network.driver.mtu".to_owned(),
                    mtu.to_owned(),
                )]),
                ..NetworkOptions::default()
            };
            let e = c
                .new_network("bridge", "n", options("1"))
                .await
                .unwrap_err();
            ensure!(matches!(e, Error::Driver { .. }), "{e}");
            ensure!(c.network_by_name("n").is_err());
            // Neither the pool nor the explicit gateway leaked.
            let n = c.new_network("bridge", "n", options("1500")).await?;
            let ep = n.create_endpoint("ep", EndpointOptions::default()).await?;
            ensure!(
                ep.info()
                    .interface
                    .address
                    .map(|a| a.to_string())
                    .as_deref()
                    == Some("10.34.0.1/16")
            );
            ep.delete(false).await?;
            n.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn networks_are_found_by_name_and_id_and_walked() {
    common::run(
        "networks_are_found_by_name_and_id_and_walked",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let a = c
                .new_network("bridge", "a", NetworkOptions::default())
                .await?;
            let b = c
                .new_network("bridge", "b", NetworkOptions::default())
                .await?;
            ensure!(c.network_by_name("a")?.id() == a.id());
            ensure!(c.network_by_id(b.id())?.name() == "b");
            ensure!(c.network_by_name("zzz").unwrap_err().kind() == ErrorKind::NotFound);
            let mut names: Vec<String> = c.networks().iter().map(|n| n.name()).collect();
            names.sort();
            ensure!(names == ["a", "b", "host", "none"], "{names:?}");
            let mut walked = 0;
            c.walk_networks(|_| {
                walked += 1;
                if walked == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            ensure!(walked == 2);
            // Automatic pools do not overlap.
            let pa = a.info().ipv4_info[0].data.pool;
            let pb = b.info().ipv4_info[0].data.pool;
            ensure!(
                !pa.contains(&pb.network()) && !pb.contains(&pa.network()),
                "{pa} {pb}"
            );
            a.delete().await?;
            b.delete().await?;
            Ok(())
        },
    );
}

/// Starts etcd on 127.0.0.1:2379 in the test's namespace; `None` when it is not installed.
fn start_etcd(dir: &std::path::Path) -> anyhow::Result<Option<std::process::Child>> {
    if std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped the etcd part: etcd is not installed");
        return Ok(None);
    }
    let child = std::process::Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            "http://127.0.0.1:2379",
            "--advertise-client-urls",
            "http://127.0.0.1:2379",
            "--listen-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-cluster",
            "default=http://127.0.0.1:2380",
            "--name",
            "default",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    for _ in 0..200 {
        if std::net::TcpStream::connect("127.0.0.1:2379").is_ok() {
            return Ok(Some(child));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    anyhow::bail!("etcd did not start")
}

#[test]
fn global_scope_networks_live_in_the_global_store() {
    common::run(
        "global_scope_networks_live_in_the_global_store",
        |dir| async move {
            let global = NetworkOptions {
                scope: Some("global".into()),
                ..NetworkOptions::default()
            };
            // Without a global store the scope is unavailable.
            let c = Controller::new(common::light_config(&dir)).await?;
            let e = c
                .new_network("bridge", "g", global.clone())
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Unavailable, "{e}");
            drop(c);

            let Some(mut etcd) = tokio::task::block_in_place(|| start_etcd(&dir))? else {
                return Ok(());
            };
            let result = async {
                let mut config = common::light_config(&dir);
                config.local_store = libnetwork::LocalStore::RedbAt(dir.join("local.redb"));
                config.global_store = Some(libnetwork::GlobalStore::Etcd(vec![
                    "http://127.0.0.1:2379".into(),
                ]));
                let (id, pool) = {
                    let c = Controller::new(config.clone()).await?;
                    let n = c.new_network("bridge", "g", global.clone()).await?;
                    let info = n.info();
                    ensure!(info.scope == "global");
                    let pool = info.ipv4_info[0].data.pool;
                    ensure!(
                        "10.0.0.0/8".parse::<ipnet::IpNet>()?.contains(&pool),
                        "global pools come from 10.0.0.0/8: {pool}"
                    );
                    let ep = n.create_endpoint("ep", EndpointOptions::default()).await?;
                    let sb = c
                        .new_sandbox("c", libnetwork::SandboxOptions::new())
                        .await?;
                    ep.join(&sb, libnetwork::JoinOptions::default()).await?;
                    c.shutdown().await;
                    (n.id().to_owned(), pool)
                };
                // The network and its endpoint are in etcd.
                let keys = tokio::task::spawn_blocking(|| -> anyhow::Result<Vec<String>> {
                    use libnetwork_datastore::Store as _;
                    let store =
                        libnetwork_datastore::EtcdStore::connect(&["http://127.0.0.1:2379"])?;
                    Ok(store
                        .list("docker/network/v1.0/")?
                        .into_iter()
                        .map(|p| p.key)
                        .collect())
                })
                .await??;
                ensure!(
                    keys.iter().any(|k| k.ends_with(&format!("/network/{id}/"))),
                    "{keys:?}"
                );
                ensure!(
                    keys.iter().any(|k| k.contains(&format!("/endpoint/{id}/"))),
                    "{keys:?}"
                );
                // A restart brings it back from etcd.
                let c = Controller::new(config).await?;
                let n = c.network_by_name("g")?;
                ensure!(n.id() == id && n.info().ipv4_info[0].data.pool == pool);
                let ep = n.endpoint_by_name("ep")?;
                ensure!(ep.info().sandbox_id.is_some());
                c.sandbox_by_container("c")?.delete().await?;
                n.delete().await?;
                c.shutdown().await;
                Ok(())
            }
            .await;
            let _ = etcd.kill();
            let _ = etcd.wait();
            result
        },
    );
}
