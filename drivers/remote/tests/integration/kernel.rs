//! Privileged: sandboxes joined through the test plugin, which makes a bridge per network
//! and a veth pair per join in the host namespace. The test does the controller's part:
//! it moves the plugin's interface into each sandbox and checks TCP between them.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use libnetwork_driver_remote::register_network_driver;
use libnetwork_driverapi::{
    CreateNetworkRequest, Driver, EndpointInterface, EndpointOptions, IpamData, JoinInterface,
    JoinOptions, Registry, RouteType,
};
use libnetwork_osl::{Host, InterfaceOptions, NextHop, Sandbox, StaticRoute};
use libnetwork_plugins::Plugin;
use libnetwork_testutil::{in_new_netns, privileged};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::plugin::{Fault, TestPlugin, net};
use crate::{config, spec};

/// Runs `body` on a fresh runtime inside a private network namespace.
fn in_netns<F>(name: &str, body: impl FnOnce(tempfile::TempDir) -> F + Send)
where
    F: Future<Output = anyhow::Result<()>>,
{
    if !privileged(name) {
        return;
    }
    in_new_netns(|| {
        let dir = tempfile::tempdir().expect("run directory");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        if let Err(e) = rt.block_on(body(dir)) {
            panic!("{name}: {e:#}");
        }
    });
}

fn network(id: &str) -> CreateNetworkRequest {
    CreateNetworkRequest {
        network_id: id.into(),
        options: Default::default(),
        ipv4: vec![IpamData {
            address_space: "LocalDefault".into(),
            pool: "10.77.0.0/24".parse().unwrap(),
            gateway: None,
            aux_addresses: Default::default(),
        }],
        ipv6: vec![],
    }
}

/// Creates an endpoint, a sandbox, joins them through the driver and moves the plugin's
/// interface in, as the controller does. Returns the sandbox and its interface name.
async fn attach(
    host: &Host,
    driver: &Arc<dyn Driver>,
    endpoint: &str,
    address: &str,
) -> anyhow::Result<(Sandbox, String)> {
    let mut iface = EndpointInterface {
        address: Some(net(address)),
        ..Default::default()
    };
    driver
        .create_endpoint("n1", endpoint, &mut iface, &EndpointOptions::default())
        .await?;
    ensure!(iface.mac.is_some(), "the plugin gave no MAC");
    let sandbox = host.create_sandbox(&host.key_for(endpoint)).await?;
    let info = driver
        .join("n1", endpoint, &sandbox, &JoinOptions::default())
        .await?;
    let Some(JoinInterface::Host {
        src_name,
        dst_prefix,
    }) = info.interface
    else {
        anyhow::bail!("join gave no host interface: {info:?}");
    };
    let options = InterfaceOptions {
        mac: iface.mac,
        addresses: iface.address.into_iter().collect(),
        ..Default::default()
    };
    let link = sandbox
        .add_interface(&src_name, &dst_prefix, &options)
        .await?;
    for route in &info.static_routes {
        ensure!(route.route_type == RouteType::Connected, "route {route:?}");
        sandbox
            .add_static_route(&StaticRoute {
                destination: route.destination,
                next_hop: NextHop::Interface(link.name.clone()),
            })
            .await?;
    }
    Ok((sandbox, link.name))
}

#[test]
fn tcp_flows_between_two_sandboxes_joined_through_a_plugin() {
    in_netns(
        "tcp_flows_between_two_sandboxes_joined_through_a_plugin",
        |dir| async move {
            let host = Host::new(dir.path()).await?;
            let plugin = TestPlugin::start(
                &dir.path().join("plugins/testnet.sock"),
                &["NetworkDriver"],
                Some(host.netlink().clone()),
            );
            let activated =
                Plugin::activate(&spec(&plugin.socket), config(Duration::from_secs(30))).await?;
            let registry = Registry::new();
            register_network_driver(&registry, &activated).await?;
            let driver = registry.driver("testnet").context("registered")?.driver;

            driver.create_network(&network("n1")).await?;
            let (a, a_if) = attach(&host, &driver, "aaaa1111", "10.77.0.2/24").await?;
            let (b, b_if) = attach(&host, &driver, "bbbb2222", "10.77.0.3/24").await?;
            ensure!(a_if == "eth0" && b_if == "eth0", "names {a_if} {b_if}");
            let joins = plugin.state.requests("NetworkDriver.Join");
            ensure!(
                joins[0]
                    == json!({
                        "NetworkID": "n1", "EndpointID": "aaaa1111",
                        "SandboxKey": a.key().display().to_string(), "Options": {}
                    }),
                "join request {}",
                joins[0]
            );

            // A server in sandbox A, a client in sandbox B.
            let listener = a
                .run_in(|| std::net::TcpListener::bind("10.77.0.2:7000"))
                .await??;
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let server = tokio::spawn(async move {
                let (mut stream, peer) = listener.accept().await?;
                let mut buf = [0u8; 4];
                stream.read_exact(&mut buf).await?;
                stream
                    .write_all(format!("pong from {peer}").as_bytes())
                    .await?;
                anyhow::Ok(buf)
            });
            let answer = b
                .run_in(|| -> std::io::Result<String> {
                    let to: SocketAddr = "10.77.0.2:7000".parse().unwrap();
                    let mut stream =
                        std::net::TcpStream::connect_timeout(&to, Duration::from_secs(10))?;
                    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                    stream.write_all(b"ping")?;
                    let mut answer = String::new();
                    stream.read_to_string(&mut answer)?;
                    Ok(answer)
                })
                .await??;
            ensure!(&server.await?? == b"ping", "server got something else");
            ensure!(
                answer.starts_with("pong from 10.77.0.3:"),
                "client got {answer:?}"
            );

            // Tear down as the controller does: interface out, leave, delete.
            for (sandbox, name, endpoint) in [(a, a_if, "aaaa1111"), (b, b_if, "bbbb2222")] {
                sandbox.remove_interface(&name).await?;
                driver.leave("n1", endpoint).await?;
                driver.delete_endpoint("n1", endpoint).await?;
                sandbox.destroy()?;
            }
            driver.delete_network("n1").await?;
            let left: Vec<String> = host
                .netlink()
                .links()
                .await?
                .into_iter()
                .map(|l| l.name)
                .filter(|n| n != "lo")
                .collect();
            ensure!(left.is_empty(), "links left in the host: {left:?}");
            ensure!(
                plugin.state.network_ids().is_empty(),
                "plugin kept a network"
            );
            Ok(())
        },
    );
}

#[test]
fn a_join_answer_with_an_unusable_gateway_is_undone_with_leave() {
    in_netns(
        "a_join_answer_with_an_unusable_gateway_is_undone_with_leave",
        |dir| async move {
            let host = Host::new(dir.path()).await?;
            let plugin = TestPlugin::start(&dir.path().join("p.sock"), &["NetworkDriver"], None);
            let activated =
                Plugin::activate(&spec(&plugin.socket), config(Duration::from_secs(30))).await?;
            let driver = libnetwork_driver_remote::RemoteDriver::new(&activated).await?;
            driver.create_network(&network("n1")).await?;
            let mut iface = EndpointInterface::default();
            driver
                .create_endpoint("n1", "e1", &mut iface, &EndpointOptions::default())
                .await?;
            let sandbox = host.create_sandbox(&host.key_for("e1")).await?;
            plugin.state.fault(
                "NetworkDriver.Join",
                Fault::AnswerAfter(json!({
                    "InterfaceName": {"SrcName": "veth9", "DstPrefix": "eth"},
                    "Gateway": "10.77.0.300"
                })),
            );
            let err = driver
                .join("n1", "e1", &sandbox, &JoinOptions::default())
                .await
                .expect_err("join with a bad gateway accepted");
            let message = err.to_string();
            ensure!(
                message.contains("unusable answer: Gateway \"10.77.0.300\""),
                "{message}"
            );
            ensure!(
                message.contains("sent NetworkDriver.Leave to undo it"),
                "{message}"
            );
            ensure!(
                plugin.state.joined.lock().unwrap().is_empty(),
                "still joined"
            );
            sandbox.destroy()?;
            Ok(())
        },
    );
}

#[test]
fn a_join_that_times_out_is_undone_with_leave() {
    in_netns(
        "a_join_that_times_out_is_undone_with_leave",
        |dir| async move {
            let host = Host::new(dir.path()).await?;
            let plugin = TestPlugin::start(&dir.path().join("p.sock"), &["NetworkDriver"], None);
            let activated =
                Plugin::activate(&spec(&plugin.socket), config(Duration::from_millis(500))).await?;
            let driver = libnetwork_driver_remote::RemoteDriver::new(&activated).await?;
            driver.create_network(&network("n1")).await?;
            let mut iface = EndpointInterface::default();
            driver
                .create_endpoint("n1", "e1", &mut iface, &EndpointOptions::default())
                .await?;
            let sandbox = host.create_sandbox(&host.key_for("e1")).await?;
            plugin.state.fault("NetworkDriver.Join", Fault::HangAfter);
            let err = driver
                .join("n1", "e1", &sandbox, &JoinOptions::default())
                .await
                .expect_err("join without an answer accepted");
            let message = err.to_string();
            ensure!(message.contains("no answer within 500ms"), "{message}");
            ensure!(
                message.contains("sent NetworkDriver.Leave to undo it"),
                "{message}"
            );
            ensure!(
                plugin.state.joined.lock().unwrap().is_empty(),
                "still joined"
            );
            sandbox.destroy()?;
            Ok(())
        },
    );
}
