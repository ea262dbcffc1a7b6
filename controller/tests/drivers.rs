//! The controller with every driver it has: macvlan and ipvlan networks on a parent interface
//! made in the test's namespace, network and IPAM plugins served by the test on a unix socket
//! (found through a spec file in a plugin directory of the test's configuration), unknown
//! driver names, and restarts with macvlan and plugin networks.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use libnetwork::config::{PluginClientConfig, PluginRetryPolicy};
use libnetwork::{
    Config, Controller, EndpointOptions, Error, ErrorKind, IpamConf, IpamOptions, JoinOptions,
    LocalStore, Network, NetworkOptions, Sandbox, SandboxOptions,
};
use libnetwork_osl::{Host, NetlinkHandle, netns};
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tokio::task::{JoinHandle, JoinSet};

// ----- the test's wire: a parent interface and a namespace on its other end -----

/// The other end of the parent interface, in a namespace of its own (another machine on the
/// parent's wire). Its key is detached on drop, also when the test fails.
struct Wire {
    sandbox: Option<libnetwork_osl::Sandbox>,
    run_dir: PathBuf,
}

impl Wire {
    /// A veth pair: `parent` in the test's namespace (up, no address), its peer inside a new
    /// namespace with `address` (the network's gateway), up.
    async fn new(dir: &Path, parent: &str, address: &str) -> Result<Self> {
        let run_dir = dir.join("wire-run");
        let host = Host::new(&run_dir).await?;
        let sandbox = host.create_sandbox(&host.key_for("wire")).await?;
        let wire = Self {
            sandbox: Some(sandbox),
            run_dir,
        };
        let sandbox = wire.sandbox();
        let nl = host.netlink();
        let link = nl
            .create_veth(parent, "wire0", Some(sandbox.netns()))
            .await?;
        nl.set_up(&link, true).await?;
        let peer = sandbox.netlink().link_by_name("wire0").await?;
        sandbox
            .netlink()
            .add_address(&peer, address.parse()?, false)
            .await?;
        sandbox.netlink().set_up(&peer, true).await?;
        Ok(wire)
    }

    fn sandbox(&self) -> &libnetwork_osl::Sandbox {
        self.sandbox.as_ref().expect("wire namespace")
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        if let Some(sandbox) = self.sandbox.take() {
            let _ = sandbox.destroy();
        }
        if let Ok(entries) = std::fs::read_dir(self.run_dir.join("netns")) {
            for entry in entries.flatten() {
                let _ = netns::unbind(&entry.path());
            }
        }
    }
}

/// Network options for a stacked driver on `parent`, with one IPv4 subnet and its gateway.
fn stacked_options(parent: &str, subnet: &str, gateway: &str) -> NetworkOptions {
    NetworkOptions {
        driver_options: BTreeMap::from([("parent".to_owned(), parent.to_owned())]),
        ipam: IpamOptions {
            v4: vec![IpamConf {
                preferred_pool: Some(subnet.parse().unwrap()),
                gateway: Some(gateway.parse().unwrap()),
                ..IpamConf::default()
            }],
            ..IpamOptions::default()
        },
        ..NetworkOptions::default()
    }
}

/// The sandbox's interfaces other than `lo`: (name, kind, MAC, addresses).
async fn sandbox_interfaces(
    sb: &Sandbox,
) -> Result<Vec<(String, Option<String>, Option<String>, Vec<IpNet>)>> {
    let mut out = Vec::new();
    for i in sb.os_sandbox().interfaces().await? {
        if i.link.name == "lo" {
            continue;
        }
        let addresses = i
            .addresses
            .iter()
            .filter(|a| !a.link_scope)
            .map(|a| a.net)
            .collect();
        out.push((
            i.link.name,
            i.link.kind,
            i.link.mac.map(|m| m.to_string()),
            addresses,
        ));
    }
    Ok(out)
}

/// Connects from inside `sb` to a listener in the wire's namespace on `to`, sends a line and
/// reads the answer; returns the address the listener saw the connection come from.
async fn reach_wire(wire: &Wire, sb: &Sandbox, to: IpAddr) -> Result<IpAddr> {
    let listener = wire
        .sandbox()
        .run_in(move || TcpListener::bind(SocketAddr::new(to, 0)))
        .await??;
    let target = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<SocketAddr> {
        let (mut conn, from) = listener.accept()?;
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf)?;
        conn.write_all(b"pong")?;
        Ok(from)
    });
    let answer = sb
        .os_sandbox()
        .run_in(move || -> std::io::Result<Vec<u8>> {
            let mut conn = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            conn.write_all(b"ping")?;
            let mut answer = Vec::new();
            conn.read_to_end(&mut answer)?;
            Ok(answer)
        })
        .await??;
    let from = server
        .join()
        .map_err(|_| anyhow::anyhow!("listener panicked"))??;
    ensure!(answer == b"pong", "answer {answer:?}");
    Ok(from.ip())
}

/// Checks that the endpoint `ep` of `net` is joined to `sb` with its address on an interface
/// of `kind` that has the endpoint's MAC, and that the wire's `gateway` is reached from it.
async fn check_attached(
    wire: &Wire,
    net: &Network,
    ep_name: &str,
    sb: &Sandbox,
    kind: &str,
    gateway: &str,
) -> Result<()> {
    let ep = net.endpoint_by_name(ep_name)?;
    let info = ep.info();
    ensure!(
        info.sandbox_id.as_deref() == Some(sb.id()),
        "endpoint {ep_name} not joined to the sandbox: {info:?}"
    );
    let address = info.interface.address.context("endpoint has no address")?;
    let interfaces = sandbox_interfaces(sb).await?;
    let found = interfaces
        .iter()
        .find(|(_, _, _, addrs)| addrs.contains(&address))
        .with_context(|| format!("{address} is on no interface: {interfaces:?}"))?;
    ensure!(
        found.1.as_deref() == Some(kind),
        "{address} is on a {:?} interface, not {kind}",
        found.1
    );
    ensure!(
        Some(&found.0) == info.interface.dst_name.as_ref(),
        "interface {} is not the endpoint's {:?}",
        found.0,
        info.interface.dst_name
    );
    if kind == "macvlan" {
        ensure!(
            found.2 == info.interface.mac_address.map(|m| m.to_string()),
            "interface MAC {:?}, endpoint MAC {:?}",
            found.2,
            info.interface.mac_address
        );
    }
    let gateway: IpAddr = gateway.parse()?;
    ensure!(
        sb.os_sandbox().gateway(false).await? == Some(gateway),
        "the default route does not go through {gateway}"
    );
    let from = reach_wire(wire, sb, gateway).await?;
    ensure!(from == address.addr(), "the wire saw {from}, not {address}");
    Ok(())
}

// ----- macvlan and ipvlan -----

#[test]
fn a_macvlan_endpoint_joined_through_the_controller_gets_its_address_and_reaches_the_parents_wire()
{
    common::run(
        "a_macvlan_endpoint_joined_through_the_controller_gets_its_address_and_reaches_the_parents_wire",
        |dir| async move {
            let wire = Wire::new(&dir, "mvparent", "10.61.0.1/24").await?;
            let c = Controller::new(common::light_config(&dir)).await?;
            ensure!(
                c.registry().driver("macvlan").is_some(),
                "macvlan not registered"
            );
            let net = c
                .new_network(
                    "macvlan",
                    "mv",
                    stacked_options("mvparent", "10.61.0.0/24", "10.61.0.1"),
                )
                .await?;
            let ep = net
                .create_endpoint("web", EndpointOptions::default())
                .await?;
            ensure!(
                ep.info().interface.address == Some("10.61.0.2/24".parse()?),
                "address {:?}",
                ep.info().interface.address
            );
            let sb = c.new_sandbox("c1", SandboxOptions::new()).await?;
            ep.join(&sb, JoinOptions::default()).await?;
            check_attached(&wire, &net, "web", &sb, "macvlan", "10.61.0.1").await?;

            // Teardown leaves the parent (the driver did not make it) and nothing else.
            ep.leave(&sb).await?;
            ensure!(
                sandbox_interfaces(&sb).await?.is_empty(),
                "interfaces left after the leave"
            );
            ep.delete(false).await?;
            sb.delete().await?;
            net.delete().await?;
            c.settle().await;
            ensure!(
                common::host_link_names().await? == ["mvparent"],
                "host links {:?}",
                common::host_link_names().await?
            );
            Ok(())
        },
    );
}

#[test]
fn an_ipvlan_endpoint_joined_through_the_controller_gets_its_address_or_the_kernel_refusal_is_reported()
 {
    let name = "an_ipvlan_endpoint_joined_through_the_controller_gets_its_address_or_the_kernel_refusal_is_reported";
    common::run(name, |dir| async move {
        let wire = Wire::new(&dir, "ivparent", "10.64.0.1/24").await?;
        let c = Controller::new(common::light_config(&dir)).await?;
        let net = c
            .new_network(
                "ipvlan",
                "iv",
                stacked_options("ivparent", "10.64.0.0/24", "10.64.0.1"),
            )
            .await?;
        let ep = net
            .create_endpoint("web", EndpointOptions::default())
            .await?;
        let sb = c.new_sandbox("c1", SandboxOptions::new()).await?;
        match ep.join(&sb, JoinOptions::default()).await {
            Ok(()) => {
                check_attached(&wire, &net, "web", &sb, "ipvlan", "10.64.0.1").await?;
                ep.leave(&sb).await?;
            }
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                // The kernel refused the link type: the error says so, and nothing changed.
                ensure!(
                    e.to_string()
                        .contains("the kernel does not support ipvlan links"),
                    "the refusal does not name ipvlan: {e}"
                );
                ensure!(
                    ep.info().sandbox_id.is_none(),
                    "endpoint marked joined after a refused join"
                );
                ensure!(
                    sandbox_interfaces(&sb).await?.is_empty(),
                    "interfaces left by a refused join"
                );
                eprintln!("{name}: kernel part skipped: {e}");
            }
            Err(e) => return Err(e.into()),
        }
        ep.delete(false).await?;
        sb.delete().await?;
        net.delete().await?;
        c.settle().await;
        ensure!(common::host_link_names().await? == ["ivparent"]);
        Ok(())
    });
}

#[test]
fn a_macvlan_network_and_its_joined_endpoint_come_back_usable_after_a_restart() {
    common::run(
        "a_macvlan_network_and_its_joined_endpoint_come_back_usable_after_a_restart",
        |dir| async move {
            let wire = Wire::new(&dir, "mvparent", "10.65.0.1/24").await?;
            let config = Config {
                local_store: LocalStore::Redb,
                ..common::light_config(&dir)
            };
            let (net_id, sb_id) = {
                let c = Controller::new(config.clone()).await?;
                let net = c
                    .new_network(
                        "macvlan",
                        "mv",
                        stacked_options("mvparent", "10.65.0.0/24", "10.65.0.1"),
                    )
                    .await?;
                let ep = net
                    .create_endpoint("web", EndpointOptions::default())
                    .await?;
                let sb = c.new_sandbox("c1", SandboxOptions::new()).await?;
                ep.join(&sb, JoinOptions::default()).await?;
                c.shutdown().await;
                (net.id().to_owned(), sb.id().to_owned())
            };

            let c = Controller::new(config).await?;
            let net = c.network_by_name("mv")?;
            ensure!(net.id() == net_id && net.network_type() == "macvlan");
            let sb = c.sandbox_by_id(&sb_id)?;
            check_attached(&wire, &net, "web", &sb, "macvlan", "10.65.0.1").await?;

            // The restored network takes new endpoints, and is deleted with its driver's help.
            let ep2 = net
                .create_endpoint("db", EndpointOptions::default())
                .await?;
            let sb2 = c.new_sandbox("c2", SandboxOptions::new()).await?;
            ep2.join(&sb2, JoinOptions::default()).await?;
            check_attached(&wire, &net, "db", &sb2, "macvlan", "10.65.0.1").await?;
            for sb in [sb, sb2] {
                sb.delete().await?;
            }
            net.delete().await?;
            c.settle().await;
            ensure!(common::host_link_names().await? == ["mvparent"]);
            Ok(())
        },
    );
}

// ----- plugins -----

/// A network and IPAM driver plugin speaking Docker's plugin protocol on a unix socket, from
/// Docker's documented JSON (plain `serde_json` values). A join makes a veth pair in the test's
/// namespace and hands one end to the controller.
struct TestPlugin {
    state: Arc<PluginState>,
    task: JoinHandle<()>,
}

struct PluginState {
    implements: Vec<&'static str>,
    netlink: NetlinkHandle,
    /// Every request: (method, body).
    log: Mutex<Vec<(String, Value)>>,
    /// Host ends of the veth pairs made by joins, by endpoint id.
    joined: Mutex<BTreeMap<String, String>>,
    /// The next address the IPAM side gives (host part in 10.63.0.0/24).
    next_host: Mutex<u8>,
}

impl TestPlugin {
    /// Serves on `socket` a plugin implementing `implements`.
    async fn start(socket: &Path, implements: &[&'static str]) -> Result<Self> {
        std::fs::create_dir_all(socket.parent().context("socket directory")?)?;
        let listener = UnixListener::bind(socket)?;
        let state = Arc::new(PluginState {
            implements: implements.to_vec(),
            netlink: NetlinkHandle::current().await?,
            log: Mutex::default(),
            joined: Mutex::default(),
            next_host: Mutex::new(2),
        });
        let router = Router::new().fallback(serve).with_state(state.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { state, task })
    }

    /// The bodies received for `method` (`NetworkDriver.Join`), in order.
    fn requests(&self, method: &str) -> Vec<Value> {
        self.state
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// The methods called, in order, without activation and capability calls.
    fn calls(&self) -> Vec<String> {
        self.state
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| m.clone())
            .filter(|m| !m.ends_with("Activate") && !m.ends_with("Capabilities"))
            .collect()
    }
}

impl Drop for TestPlugin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(state): State<Arc<PluginState>>, request: Request) -> Response {
    let method = request.uri().path().trim_start_matches('/').to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    state
        .log
        .lock()
        .unwrap()
        .push((method.clone(), body.clone()));
    let answer = match answer(&state, &method, &body).await {
        Ok(Some(answer)) => answer,
        Ok(None) => return (StatusCode::NOT_FOUND, "404 page not found").into_response(),
        Err(message) if method.starts_with("IpamDriver.") => json!({ "Error": message }),
        Err(message) => json!({ "Err": message }),
    };
    (
        [("content-type", "application/vnd.docker.plugins.v1.2+json")],
        answer.to_string(),
    )
        .into_response()
}

fn text(body: &Value, field: &str) -> String {
    body[field].as_str().unwrap_or_default().to_owned()
}

/// The plugin's answer to `method`; `None` for a method it does not know (404).
async fn answer(state: &PluginState, method: &str, body: &Value) -> Result<Option<Value>, String> {
    let endpoint = text(body, "EndpointID");
    let short: String = endpoint.chars().take(8).collect();
    let answer = match method {
        "Plugin.Activate" => json!({ "Implements": state.implements }),
        "NetworkDriver.GetCapabilities" => json!({ "Scope": "local" }),
        "NetworkDriver.CreateEndpoint"
            if body["Interface"]["MacAddress"]
                .as_str()
                .unwrap_or_default()
                .is_empty() =>
        {
            json!({ "Interface": { "MacAddress": "02:42:ac:1f:00:07" } })
        }
        "NetworkDriver.Join" => {
            let (host_end, container_end) = (format!("tph{short}"), format!("tpc{short}"));
            let link = state
                .netlink
                .create_veth(&host_end, &container_end, None)
                .await
                .map_err(|e| e.to_string())?;
            state
                .netlink
                .set_up(&link, true)
                .await
                .map_err(|e| e.to_string())?;
            state.joined.lock().unwrap().insert(endpoint, host_end);
            json!({ "InterfaceName": { "SrcName": container_end, "DstPrefix": "eth" } })
        }
        "NetworkDriver.Leave" => {
            let host_end = state.joined.lock().unwrap().remove(&endpoint);
            let host_end = host_end.ok_or(format!("endpoint {endpoint} is not joined"))?;
            // Deleting one end deletes the pair, wherever the other end is.
            if let Ok(link) = state.netlink.link_by_name(&host_end).await {
                state
                    .netlink
                    .delete_link(&link)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            json!({})
        }
        "NetworkDriver.EndpointOperInfo" => json!({ "Value": {} }),
        "NetworkDriver.CreateNetwork"
        | "NetworkDriver.DeleteNetwork"
        | "NetworkDriver.CreateEndpoint"
        | "NetworkDriver.DeleteEndpoint"
        | "NetworkDriver.ProgramExternalConnectivity"
        | "NetworkDriver.RevokeExternalConnectivity"
        | "NetworkDriver.DiscoverNew"
        | "NetworkDriver.DiscoverDelete"
        | "IpamDriver.ReleasePool"
        | "IpamDriver.ReleaseAddress" => json!({}),
        "IpamDriver.GetCapabilities" => json!({ "RequiresMACAddress": false }),
        "IpamDriver.GetDefaultAddressSpaces" => json!({
            "LocalDefaultAddressSpace": "tp-local",
            "GlobalDefaultAddressSpace": "tp-global"
        }),
        "IpamDriver.RequestPool" => {
            json!({ "PoolID": "tp-pool", "Pool": "10.63.0.0/24", "Data": {} })
        }
        "IpamDriver.RequestAddress" => {
            let gateway = body["Options"]["RequestAddressType"] == "com.docker.network.gateway";
            let address = if gateway {
                "10.63.0.1/24".to_owned()
            } else {
                let mut next = state.next_host.lock().unwrap();
                *next += 1;
                format!("10.63.0.{}/24", *next - 1)
            };
            json!({ "Address": address, "Data": {} })
        }
        _ => return Ok(None),
    };
    Ok(Some(answer))
}

/// The test's plugin directories: `plugin-sockets` (empty) and `plugin-specs`, where
/// `tp.spec` points at the plugin's socket `plugin-run/tp.sock`.
fn plugin_config(dir: &Path) -> Config {
    Config {
        plugin_client: PluginClientConfig {
            call_timeout: Duration::from_secs(10),
            retry: PluginRetryPolicy::NONE,
            ..PluginClientConfig::default()
        },
        ..common::light_config(dir)
            .plugin_dirs([dir.join("plugin-sockets")], [dir.join("plugin-specs")])
    }
}

/// Serves the test plugin `tp` and writes its spec file.
async fn start_plugin(dir: &Path, implements: &[&'static str]) -> Result<TestPlugin> {
    let socket = dir.join("plugin-run/tp.sock");
    let plugin = TestPlugin::start(&socket, implements).await?;
    std::fs::create_dir_all(dir.join("plugin-specs"))?;
    std::fs::write(
        dir.join("plugin-specs/tp.spec"),
        format!("unix://{}\n", socket.display()),
    )?;
    Ok(plugin)
}

#[test]
fn a_network_plugin_gets_create_network_create_endpoint_and_join_from_the_controller() {
    common::run(
        "a_network_plugin_gets_create_network_create_endpoint_and_join_from_the_controller",
        |dir| async move {
            let plugin = start_plugin(&dir, &["NetworkDriver"]).await?;
            let c = Controller::new(plugin_config(&dir)).await?;
            ensure!(
                c.registry().driver("tp").is_none(),
                "plugin loaded before use"
            );

            let options = NetworkOptions {
                ipam: IpamOptions {
                    v4: vec![IpamConf {
                        preferred_pool: Some("10.62.0.0/24".parse()?),
                        ..IpamConf::default()
                    }],
                    ..IpamOptions::default()
                },
                driver_options: BTreeMap::from([("color".to_owned(), "blue".to_owned())]),
                ..NetworkOptions::default()
            };
            let net = c.new_network("tp", "plugnet", options).await?;
            let registered = c.registry().driver("tp").context("plugin not registered")?;
            ensure!(!registered.driver.is_built_in());
            let created = plugin.requests("NetworkDriver.CreateNetwork");
            ensure!(created.len() == 1, "CreateNetwork calls: {created:?}");
            ensure!(created[0]["NetworkID"] == net.id(), "{}", created[0]);
            ensure!(
                created[0]["IPv4Data"][0]["Pool"] == "10.62.0.0/24"
                    && created[0]["IPv4Data"][0]["Gateway"] == "10.62.0.1/24",
                "{}",
                created[0]
            );
            ensure!(
                created[0]["Options"]["com.docker.network.generic"]["color"] == "blue",
                "{}",
                created[0]
            );

            let ep = net
                .create_endpoint("web", EndpointOptions::default())
                .await?;
            let created = plugin.requests("NetworkDriver.CreateEndpoint");
            ensure!(created.len() == 1, "CreateEndpoint calls: {created:?}");
            ensure!(
                created[0]["NetworkID"] == net.id()
                    && created[0]["EndpointID"] == ep.id()
                    && created[0]["Interface"]["Address"] == "10.62.0.2/24",
                "{}",
                created[0]
            );
            // The MAC the plugin chose is the endpoint's.
            ensure!(
                ep.info().interface.mac_address.map(|m| m.to_string())
                    == Some("02:42:ac:1f:00:07".to_owned()),
                "{:?}",
                ep.info().interface
            );

            let sb = c.new_sandbox("c1", SandboxOptions::new()).await?;
            ep.join(&sb, JoinOptions::default()).await?;
            let joins = plugin.requests("NetworkDriver.Join");
            ensure!(joins.len() == 1, "Join calls: {joins:?}");
            ensure!(
                joins[0]["NetworkID"] == net.id()
                    && joins[0]["EndpointID"] == ep.id()
                    && joins[0]["SandboxKey"] == sb.key().display().to_string(),
                "{}",
                joins[0]
            );
            // The plugin's interface is in the sandbox with the endpoint's address and MAC.
            let interfaces = sandbox_interfaces(&sb).await?;
            ensure!(
                interfaces
                    == [(
                        "eth0".to_owned(),
                        Some("veth".to_owned()),
                        Some("02:42:ac:1f:00:07".to_owned()),
                        vec!["10.62.0.2/24".parse::<IpNet>()?]
                    )],
                "{interfaces:?}"
            );

            ep.leave(&sb).await?;
            ep.delete(false).await?;
            sb.delete().await?;
            net.delete().await?;
            let lifecycle: Vec<String> = plugin
                .calls()
                .into_iter()
                .filter(|m| {
                    m.ends_with("Network")
                        || m.ends_with("Endpoint")
                        || m.ends_with("Join")
                        || m.ends_with("Leave")
                })
                .collect();
            ensure!(
                lifecycle
                    == [
                        "NetworkDriver.CreateNetwork",
                        "NetworkDriver.CreateEndpoint",
                        "NetworkDriver.Join",
                        "NetworkDriver.Leave",
                        "NetworkDriver.DeleteEndpoint",
                        "NetworkDriver.DeleteNetwork"
                    ],
                "calls {:?}",
                plugin.calls()
            );
            c.settle().await;
            ensure!(
                common::host_link_names().await?.is_empty(),
                "host links {:?}",
                common::host_link_names().await?
            );
            Ok(())
        },
    );
}

#[test]
fn an_ipam_plugin_gives_a_network_its_pool_and_gateway_and_endpoints_their_addresses() {
    common::run(
        "an_ipam_plugin_gives_a_network_its_pool_and_gateway_and_endpoints_their_addresses",
        |dir| async move {
            let plugin = start_plugin(&dir, &["IpamDriver"]).await?;
            let c = Controller::new(plugin_config(&dir)).await?;
            let options = NetworkOptions {
                ipam: IpamOptions {
                    driver: "tp".into(),
                    ..IpamOptions::default()
                },
                ..NetworkOptions::default()
            };
            let net = c.new_network("bridge", "plugpool", options).await?;
            let info = net.info();
            let v4 = info.ipv4_info.first().context("no ipv4 pool")?;
            ensure!(
                v4.pool_id == "tp-pool"
                    && v4.data.pool == "10.63.0.0/24".parse()?
                    && v4.data.gateway == Some("10.63.0.1/24".parse()?)
                    && v4.data.address_space == "tp-local",
                "{v4:?}"
            );
            let ep = net
                .create_endpoint("web", EndpointOptions::default())
                .await?;
            ensure!(
                ep.info().interface.address == Some("10.63.0.2/24".parse()?),
                "{:?}",
                ep.info().interface
            );
            ep.delete(false).await?;
            net.delete().await?;
            let released = plugin.requests("IpamDriver.ReleaseAddress");
            ensure!(
                released.iter().any(|r| r["Address"] == "10.63.0.2"),
                "released {released:?}"
            );
            ensure!(
                plugin.requests("IpamDriver.ReleasePool").len() == 1,
                "calls {:?}",
                plugin.calls()
            );
            Ok(())
        },
    );
}

#[test]
fn an_unknown_driver_or_ipam_name_is_not_found_and_creates_nothing() {
    common::run(
        "an_unknown_driver_or_ipam_name_is_not_found_and_creates_nothing",
        |dir| async move {
            // `tp` exists, but only as an IPAM driver.
            let plugin = start_plugin(&dir, &["IpamDriver"]).await?;
            let c = Controller::new(plugin_config(&dir)).await?;
            let before: Vec<String> = c.networks().iter().map(|n| n.name()).collect();

            let e = c
                .new_network("nosuch", "n1", NetworkOptions::default())
                .await
                .unwrap_err();
            ensure!(
                matches!(&e, Error::UnknownDriver(name) if name == "nosuch"),
                "{e}"
            );
            ensure!(e.kind() == ErrorKind::NotFound, "{e}");
            ensure!(
                e.to_string()
                    == "create network: could not find a network driver for type \"nosuch\"",
                "{e}"
            );

            let options = NetworkOptions {
                ipam: IpamOptions {
                    driver: "nosuchipam".into(),
                    ..IpamOptions::default()
                },
                ..NetworkOptions::default()
            };
            let e = c.new_network("bridge", "n2", options).await.unwrap_err();
            ensure!(matches!(&e, Error::UnknownIpam(_)), "{e}");
            ensure!(e.kind() == ErrorKind::NotFound, "{e}");

            // A plugin that is no network driver (libnetwork's ErrNotImplements).
            let e = c
                .new_network("tp", "n3", NetworkOptions::default())
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::NotFound, "{e}");
            ensure!(
                e.to_string().contains("load network driver plugin \"tp\"")
                    && e.to_string().contains("does not implement NetworkDriver"),
                "{e}"
            );
            ensure!(c.registry().driver("tp").is_none());

            let after: Vec<String> = c.networks().iter().map(|n| n.name()).collect();
            ensure!(before == after, "networks {before:?} became {after:?}");
            ensure!(
                plugin.calls().is_empty(),
                "the plugin was called: {:?}",
                plugin.calls()
            );
            ensure!(common::host_link_names().await?.is_empty());
            Ok(())
        },
    );
}

#[test]
fn a_plugin_network_finds_its_plugin_after_a_restart_or_says_it_is_missing() {
    common::run(
        "a_plugin_network_finds_its_plugin_after_a_restart_or_says_it_is_missing",
        |dir| async move {
            let plugin = start_plugin(&dir, &["NetworkDriver", "IpamDriver"]).await?;
            let config = Config {
                local_store: LocalStore::Redb,
                ..plugin_config(&dir)
            };
            let options = NetworkOptions {
                ipam: IpamOptions {
                    driver: "tp".into(),
                    ..IpamOptions::default()
                },
                ..NetworkOptions::default()
            };
            let net_id = {
                let c = Controller::new(config.clone()).await?;
                let net = c.new_network("tp", "plugnet", options.clone()).await?;
                c.shutdown().await;
                net.id().to_owned()
            };

            // The plugin is there: loaded at start, for both of its roles.
            {
                let c = Controller::new(config.clone()).await?;
                ensure!(
                    c.registry().driver("tp").is_some() && c.registry().ipam("tp").is_some(),
                    "plugin not loaded at start"
                );
                let net = c.network_by_id(&net_id)?;
                let ep = net
                    .create_endpoint("web", EndpointOptions::default())
                    .await?;
                ensure!(ep.info().interface.address == Some("10.63.0.2/24".parse()?));
                let created = plugin.requests("NetworkDriver.CreateEndpoint");
                ensure!(
                    created.len() == 1 && created[0]["NetworkID"] == net_id.as_str(),
                    "{created:?}"
                );
                ep.delete(false).await?;
                c.shutdown().await;
            }

            // The plugin is gone: the start goes on, the network is there, and its use says
            // which driver is missing.
            std::fs::rename(
                dir.join("plugin-specs/tp.spec"),
                dir.join("plugin-specs/tp.away"),
            )?;
            let c = Controller::new(config).await?;
            ensure!(c.registry().driver("tp").is_none());
            let net = c.network_by_id(&net_id)?;
            let e = net
                .create_endpoint("db", EndpointOptions::default())
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::NotFound, "{e}");
            ensure!(e.to_string().contains("\"tp\""), "{e}");

            // Back again: a network that names it loads it, and the old network works too.
            std::fs::rename(
                dir.join("plugin-specs/tp.away"),
                dir.join("plugin-specs/tp.spec"),
            )?;
            let other = c.new_network("tp", "other", options).await?;
            let ep = net
                .create_endpoint("db", EndpointOptions::default())
                .await?;
            ep.delete(false).await?;
            other.delete().await?;
            net.delete().await?;
            let deleted = plugin.requests("NetworkDriver.DeleteNetwork");
            ensure!(
                deleted.iter().any(|d| d["NetworkID"] == net_id.as_str()),
                "{deleted:?}"
            );
            if c.registry().driver("tp").is_none() {
                bail!("plugin not registered after a network named it");
            }
            Ok(())
        },
    );
}
