//! Sandboxes: creation rules, endpoint order and the gateway, hosts and resolv.conf, host
//! networking, and service discovery through the real embedded DNS server.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, ensure};
use hickory_proto::op::ResponseCode;
use libnetwork::{
    Controller, EndpointOptions, ErrorKind, IpamConf, IpamOptions, JoinOptions, NetworkOptions,
    SandboxOptions,
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
fn a_container_has_one_sandbox_found_by_id_and_by_container() {
    common::run(
        "a_container_has_one_sandbox_found_by_id_and_by_container",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let e = c.new_sandbox("", SandboxOptions::new()).await.unwrap_err();
            ensure!(e.kind() == ErrorKind::BadRequest, "{e}");
            let sb = c.new_sandbox("c1", SandboxOptions::new()).await?;
            ensure!(sb.id().len() == 64);
            ensure!(sb.key() == dir.join("run/netns").join(&sb.id()[..12]));
            ensure!(libnetwork_osl::netns::is_bound(&sb.key()));
            let e = c
                .new_sandbox("c1", SandboxOptions::new())
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Forbidden, "{e}");
            ensure!(c.sandbox_by_id(sb.id())?.container_id() == "c1");
            ensure!(c.sandbox_by_container("c1")?.id() == sb.id());
            ensure!(c.sandbox_by_container("c9").unwrap_err().kind() == ErrorKind::NotFound);
            ensure!(c.sandboxes().len() == 1);
            c.sandbox_destroy("c1").await?;
            c.sandbox_destroy("c1").await?;
            ensure!(!sb.key().exists());
            ensure!(!dir.join("data/network/files").join(sb.id()).exists());
            ensure!(sb.delete().await.unwrap_err().kind() == ErrorKind::NotFound);
            Ok(())
        },
    );
}

#[test]
fn the_highest_priority_endpoint_with_a_gateway_gives_the_default_route() {
    common::run(
        "the_highest_priority_endpoint_with_a_gateway_gives_the_default_route",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let a = c
                .new_network("bridge", "a-net", with_subnet("10.81.0.0/24"))
                .await?;
            let b = c
                .new_network("bridge", "b-net", with_subnet("10.82.0.0/24"))
                .await?;
            let internal = c
                .new_network(
                    "bridge",
                    "0-internal",
                    NetworkOptions {
                        internal: true,
                        ..with_subnet("10.83.0.0/24")
                    },
                )
                .await?;
            let sb = c.new_sandbox("c", SandboxOptions::new()).await?;
            let ea = a.create_endpoint("ea", EndpointOptions::default()).await?;
            let eb = b.create_endpoint("eb", EndpointOptions::default()).await?;
            let ei = internal
                .create_endpoint("ei", EndpointOptions::default())
                .await?;

            ei.join(&sb, JoinOptions::default()).await?;
            ensure!(
                sb.gateway_endpoint().is_none(),
                "an internal network gives no gateway"
            );
            ensure!(sb.os_sandbox().gateway(false).await?.is_none());
            ea.join(&sb, JoinOptions::default()).await?;
            ensure!(sb.gateway_endpoint().context("gateway")?.id() == ea.id());
            ensure!(sb.os_sandbox().gateway(false).await? == Some("10.81.0.1".parse()?));
            // A higher priority takes the gateway over.
            eb.join(
                &sb,
                JoinOptions {
                    priority: 5,
                    ..JoinOptions::default()
                },
            )
            .await?;
            let order: Vec<String> = sb.endpoints().iter().map(|e| e.name()).collect();
            ensure!(order == ["eb", "ea", "ei"], "{order:?}");
            ensure!(sb.gateway_endpoint().context("gateway")?.id() == eb.id());
            ensure!(sb.os_sandbox().gateway(false).await? == Some("10.82.0.1".parse()?));
            let routes = common::sandbox_routes(&sb).await?;
            ensure!(routes.matches("default").count() == 1, "{routes}");
            // Interfaces are numbered in join order.
            ensure!(ei.info().interface.dst_name.as_deref() == Some("eth0"));
            ensure!(ea.info().interface.dst_name.as_deref() == Some("eth1"));
            ensure!(eb.info().interface.dst_name.as_deref() == Some("eth2"));
            // When it leaves, the next one takes the gateway back.
            eb.leave(&sb).await?;
            ensure!(sb.gateway_endpoint().context("gateway")?.id() == ea.id());
            ensure!(sb.os_sandbox().gateway(false).await? == Some("10.81.0.1".parse()?));
            // The sandbox can reach its gateway.
            let ping = sb
                .os_sandbox()
                .run_in(|| common::command("ping", &["-c", "1", "-W", "2", "10.81.0.1"]))
                .await?;
            ensure!(ping.is_ok(), "{ping:?}");
            // Deleting the sandbox leaves and deletes its endpoints, so the networks can go.
            sb.delete().await?;
            ensure!(a.endpoints().is_empty() && internal.endpoints().is_empty());
            eb.delete(false).await?;
            for n in [a, b, internal] {
                n.delete().await?;
            }
            Ok(())
        },
    );
}

#[test]
fn hosts_files_have_own_names_extra_hosts_and_peers_on_the_same_network() {
    common::run(
        "hosts_files_have_own_names_extra_hosts_and_peers_on_the_same_network",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n = c
                .new_network("bridge", "front", with_subnet("10.90.0.0/24"))
                .await?;
            let other = c
                .new_network("bridge", "back", with_subnet("10.91.0.0/24"))
                .await?;
            let web = n
                .create_endpoint(
                    "web",
                    EndpointOptions {
                        aliases: vec!["www".into()],
                        ..EndpointOptions::default()
                    },
                )
                .await?;
            let db = n.create_endpoint("db", EndpointOptions::default()).await?;
            let hidden = other
                .create_endpoint("hidden", EndpointOptions::default())
                .await?;
            let sb_web = c
                .new_sandbox(
                    "web",
                    SandboxOptions::new()
                        .hostname("web")
                        .domainname("example.com")
                        .extra_host("printer", "192.0.2.9".parse()?),
                )
                .await?;
            let sb_db = c
                .new_sandbox("db", SandboxOptions::new().hostname("db"))
                .await?;
            let sb_hidden = c
                .new_sandbox("hidden", SandboxOptions::new().hostname("h"))
                .await?;
            web.join(&sb_web, JoinOptions::default()).await?;
            db.join(&sb_db, JoinOptions::default()).await?;
            hidden.join(&sb_hidden, JoinOptions::default()).await?;

            let hosts = std::fs::read_to_string(sb_web.hosts_path())?;
            ensure!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
            ensure!(hosts.contains("192.0.2.9\tprinter\n"), "{hosts}");
            ensure!(
                hosts.contains("10.90.0.2\tweb.example.com web\n"),
                "{hosts}"
            );
            ensure!(hosts.contains("10.90.0.3\tdb\n"), "{hosts}");
            ensure!(!hosts.contains("hidden"), "{hosts}");
            let hosts_db = std::fs::read_to_string(sb_db.hosts_path())?;
            ensure!(hosts_db.contains("10.90.0.2\tweb www\n"), "{hosts_db}");
            ensure!(hosts_db.contains("10.90.0.3\tdb\n"), "{hosts_db}");

            // When db leaves, both files forget it.
            db.leave(&sb_db).await?;
            let hosts = std::fs::read_to_string(sb_web.hosts_path())?;
            ensure!(!hosts.contains("10.90.0.3"), "{hosts}");
            let hosts_db = std::fs::read_to_string(sb_db.hosts_path())?;
            ensure!(!hosts_db.contains("10.90.0."), "{hosts_db}");
            ensure!(
                hosts_db.ends_with("ff02::2\tip6-allrouters\n"),
                "{hosts_db}"
            );
            for sb in [sb_web, sb_db, sb_hidden] {
                sb.delete().await?;
            }
            db.delete(false).await?;
            n.delete().await?;
            other.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn resolv_conf_follows_dns_options_and_the_embedded_server() {
    common::run(
        "resolv_conf_follows_dns_options_and_the_embedded_server",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n = c
                .new_network("bridge", "n", NetworkOptions::default())
                .await?;
            let sb = c
                .new_sandbox(
                    "c",
                    SandboxOptions {
                        dns_search: vec!["corp.example".into()],
                        dns_options: vec!["ndots:2".into()],
                        ..SandboxOptions::new()
                    },
                )
                .await?;
            let before = std::fs::read_to_string(sb.resolv_conf_path())?;
            ensure!(
                before == "search corp.example\nnameserver 192.0.2.53\noptions ndots:2\n",
                "{before}"
            );
            let ep = n.create_endpoint("ep", EndpointOptions::default()).await?;
            ep.join(&sb, JoinOptions::default()).await?;
            // The user's ndots is kept; the embedded server comes first.
            let after = std::fs::read_to_string(sb.resolv_conf_path())?;
            ensure!(
                after == "search corp.example\nnameserver 127.0.0.11\noptions ndots:2\n",
                "{after}"
            );
            ensure!(sb.resolver_addr().map(|a| a.to_string()).as_deref() == Some("127.0.0.11:53"));

            // Resolution disabled: no server, the file keeps the host's servers.
            let sb2 = c.new_sandbox("c2", SandboxOptions::new()).await?;
            let quiet = n
                .create_endpoint(
                    "quiet",
                    EndpointOptions {
                        disable_resolution: true,
                        ..EndpointOptions::default()
                    },
                )
                .await?;
            quiet.join(&sb2, JoinOptions::default()).await?;
            ensure!(sb2.resolver_addr().is_none());
            ensure!(
                std::fs::read_to_string(sb2.resolv_conf_path())?
                    == "search example.test\nnameserver 192.0.2.53\n"
            );
            sb.delete().await?;
            sb2.delete().await?;
            n.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn host_network_sandboxes_share_the_hosts_namespace() {
    common::run(
        "host_network_sandboxes_share_the_hosts_namespace",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let host = c.network_by_name("host")?;
            let sb1 = c
                .new_sandbox("h1", SandboxOptions::new().use_default_sandbox())
                .await?;
            let sb2 = c
                .new_sandbox("h2", SandboxOptions::new().use_default_sandbox())
                .await?;
            ensure!(sb1.is_host_network());
            ensure!(sb1.key() == dir.join("run/netns/default") && sb2.key() == sb1.key());
            ensure!(
                sb1.os_sandbox().netns().inode() == libnetwork_testutil::netns_inode(),
                "the sandbox is the test's own namespace"
            );
            // The host's files are copied.
            ensure!(std::fs::read_to_string(sb1.resolv_conf_path())? == common::HOST_RESOLV_CONF);
            ensure!(std::fs::read_to_string(sb1.hosts_path())? == "127.0.0.1\tlocalhost\n");
            let ep1 = host
                .create_endpoint("h1", EndpointOptions::default())
                .await?;
            let ep2 = host
                .create_endpoint("h2", EndpointOptions::default())
                .await?;
            ep1.join(&sb1, JoinOptions::default()).await?;
            ep2.join(&sb2, JoinOptions::default()).await?;
            ensure!(ep1.info().interface.address.is_none());
            ensure!(
                common::host_link_names().await?.is_empty(),
                "no interface was made"
            );
            sb1.delete().await?;
            sb2.delete().await?;
            ensure!(host.endpoints().is_empty());
            Ok(())
        },
    );
}

#[test]
fn sandboxes_on_one_network_resolve_each_other_by_name_and_alias_and_connect() {
    common::run(
        "sandboxes_on_one_network_resolve_each_other_by_name_and_alias_and_connect",
        |dir| async move {
            let c = Controller::new(common::config(&dir)).await?;
            let n = c
                .new_network("bridge", "app", with_subnet("10.95.0.0/24"))
                .await?;
            let other = c
                .new_network("bridge", "elsewhere", with_subnet("10.96.0.0/24"))
                .await?;
            let server_ep = n
                .create_endpoint(
                    "server",
                    EndpointOptions {
                        aliases: vec!["api".into()],
                        ..EndpointOptions::default()
                    },
                )
                .await?;
            let client_ep = n
                .create_endpoint("client", EndpointOptions::default())
                .await?;
            let far_ep = other
                .create_endpoint("faraway", EndpointOptions::default())
                .await?;
            let server = c
                .new_sandbox("server", SandboxOptions::new().hostname("server"))
                .await?;
            let client = c
                .new_sandbox("client", SandboxOptions::new().hostname("client"))
                .await?;
            let far = c.new_sandbox("far", SandboxOptions::new()).await?;
            server_ep.join(&server, JoinOptions::default()).await?;
            client_ep.join(&client, JoinOptions::default()).await?;
            far_ep.join(&far, JoinOptions::default()).await?;
            let server_ip = server_ep
                .info()
                .interface
                .address
                .context("address")?
                .addr();

            // Name and alias, through the server at 127.0.0.11 inside the client.
            for name in ["server", "api", "SERVER.app", "api.app."] {
                let (code, ips) = common::resolve_in(&client, name).await?;
                ensure!(
                    code == ResponseCode::NoError && ips == [server_ip],
                    "{name}: {code:?} {ips:?}"
                );
            }
            ensure!(client.resolve_ip(server_ip).as_deref() == Some("server.app"));
            // A name on another network is not known here (no upstream answers in the test:
            // the query is not answered with an address).
            let (_, ips) = common::resolve_in(&client, "faraway").await?;
            ensure!(ips.is_empty(), "faraway resolved to {ips:?}");
            let (_, ips) = common::resolve_in(&far, "server").await?;
            ensure!(
                ips.is_empty(),
                "server resolved from another network: {ips:?}"
            );

            // TCP from the client to the address it resolved.
            let listener = server
                .os_sandbox()
                .run_in(move || TcpListener::bind(SocketAddr::new(server_ip, 8080)))
                .await??;
            let accept = std::thread::spawn(move || -> std::io::Result<String> {
                let (mut s, _) = listener.accept()?;
                let mut buf = String::new();
                s.read_to_string(&mut buf)?;
                Ok(buf)
            });
            let (_, ips) = common::resolve_in(&client, "api").await?;
            let target: IpAddr = *ips.first().context("no address for api")?;
            client
                .os_sandbox()
                .run_in(move || -> std::io::Result<()> {
                    let mut s = TcpStream::connect_timeout(
                        &SocketAddr::new(target, 8080),
                        Duration::from_secs(5),
                    )?;
                    s.write_all(b"hello over the bridge")
                })
                .await??;
            let got = accept.join().expect("accept thread")?;
            ensure!(got == "hello over the bridge", "{got}");

            // A removed endpoint's name stops resolving.
            server.delete().await?;
            let (_, ips) = common::resolve_in(&client, "server").await?;
            ensure!(ips.is_empty(), "server still resolves to {ips:?}");
            ensure!(client.resolve_name("api").is_empty());
            client.delete().await?;
            far.delete().await?;
            n.delete().await?;
            other.delete().await?;
            Ok(())
        },
    );
}

#[test]
fn concurrent_containers_on_one_network_each_get_their_own_address_and_leave_nothing() {
    common::run(
        "concurrent_containers_on_one_network_each_get_their_own_address_and_leave_nothing",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let n = c
                .new_network("bridge", "busy", with_subnet("10.97.0.0/24"))
                .await?;
            let mut tasks = Vec::new();
            for i in 0..8 {
                let c = c.clone();
                let n = n.clone();
                tasks.push(tokio::spawn(async move {
                    let ep = n
                        .create_endpoint(&format!("ep{i}"), EndpointOptions::default())
                        .await?;
                    let sb = c
                        .new_sandbox(
                            &format!("c{i}"),
                            SandboxOptions::new().hostname(format!("h{i}")),
                        )
                        .await?;
                    ep.join(&sb, JoinOptions::default()).await?;
                    let addr = ep.info().interface.address.context("address")?;
                    // The sandbox resolves its own endpoint once joined.
                    ensure!(sb.resolve_name(&format!("ep{i}")) == [addr.addr()]);
                    anyhow::Ok((ep, sb, addr))
                }));
            }
            let mut joined = Vec::new();
            for t in tasks {
                joined.push(t.await??);
            }
            let addrs: std::collections::HashSet<_> = joined.iter().map(|(_, _, a)| *a).collect();
            ensure!(addrs.len() == 8, "{addrs:?}");
            // Each hosts file lists the seven peers.
            for (_, sb, _) in &joined {
                let hosts = std::fs::read_to_string(sb.hosts_path())?;
                let peers = (0..8)
                    .filter(|i| hosts.contains(&format!("\tep{i}\n")))
                    .count();
                ensure!(peers == 7, "{hosts}");
            }
            let mut tasks = Vec::new();
            for (ep, sb, _) in joined {
                tasks.push(tokio::spawn(async move {
                    ep.leave(&sb).await?;
                    ep.delete(false).await?;
                    sb.delete().await?;
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            ensure!(n.endpoints().is_empty() && c.sandboxes().is_empty());
            n.delete().await?;
            c.shutdown().await;
            ensure!(common::host_link_names().await?.is_empty());
            Ok(())
        },
    );
}
