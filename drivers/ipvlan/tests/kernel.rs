//! Kernel tests of the ipvlan driver, each in its own network and mount namespace, with one end
//! of a veth pair as the parent. Where the kernel has no ipvlan (or no 802.1Q) links, the
//! tests that need them check that the refusal changed nothing, print the kernel's answer and
//! skip; every other failure fails.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, ensure};
use ipnet::IpNet;
use libnetwork_datastore::{self as datastore, RedbStore, Store};
use libnetwork_driver_ipvlan::{Error, IpvlanDriver};
use libnetwork_driverapi::{
    self as driverapi, CreateNetworkRequest, Driver, EndpointInterface, EndpointOptions, IpamData,
    JoinInfo, JoinInterface, JoinOptions, NetworkOptions, RouteType,
};
use libnetwork_osl::{Host, IpvlanFlag, IpvlanMode, Link, LinkKind, MacAddr, Sandbox, netns};
use libnetwork_testutil::{in_new_netns, privileged};
use libnetwork_types::ErrorKind;

/// Removes what a failed test left mounted under the run directory.
struct RunDir(tempfile::TempDir);

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.0.path().join("netns")) {
            for entry in entries.flatten() {
                let _ = netns::unbind(&entry.path());
            }
        }
    }
}

/// What a test body gets: the host namespace and a directory for its store.
struct Ctx {
    host: Host,
    dir: std::path::PathBuf,
}

impl Ctx {
    async fn driver(&self) -> Result<(IpvlanDriver, Arc<dyn Store>)> {
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(self.dir.join("local-kv.db"))?);
        let driver = IpvlanDriver::new(self.host.clone(), Some(Arc::clone(&store))).await?;
        Ok((driver, store))
    }

    async fn sandbox(&self, id: &str) -> Result<Sandbox> {
        Ok(self.host.create_sandbox(&self.host.key_for(id)).await?)
    }
}

/// Runs `body` in a fresh host namespace with a tokio runtime and a run directory.
fn kernel_test<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Ctx) -> Fut + Send,
    Fut: Future<Output = Result<()>>,
{
    if !privileged(name) {
        return;
    }
    in_new_netns(|| {
        let dir = RunDir(tempfile::tempdir().expect("temporary run directory"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let result = rt.block_on(async {
            let host = Host::new(dir.0.path()).await?;
            body(Ctx {
                host,
                dir: dir.0.path().to_path_buf(),
            })
            .await
        });
        drop(rt);
        drop(dir);
        if let Err(e) = result {
            panic!("{name}: {e:#}");
        }
    });
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

/// A create request for a network on 10.<n>.0.0/24 with gateway .1.
fn request(id: &str, n: u8, options: &[(&str, &str)]) -> CreateNetworkRequest {
    CreateNetworkRequest {
        network_id: id.into(),
        options: NetworkOptions {
            driver_options: options
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            ..NetworkOptions::default()
        },
        ipv4: vec![IpamData {
            address_space: "LocalDefault".into(),
            pool: net(&format!("10.{n}.0.0/24")),
            gateway: Some(net(&format!("10.{n}.0.1/24"))),
            aux_addresses: Default::default(),
        }],
        ipv6: Vec::new(),
    }
}

fn iface(addr: &str) -> EndpointInterface {
    EndpointInterface {
        address: Some(net(addr)),
        ..EndpointInterface::default()
    }
}

/// A veth pair in the host namespace, both ends up; returns the parent end.
async fn parent(host: &Host, name: &str, wire: &str) -> Result<Link> {
    let nl = host.netlink();
    let link = nl.create_veth(name, wire, None).await?;
    nl.set_up(&link, true).await?;
    nl.set_up(&nl.link_by_name(wire).await?, true).await?;
    Ok(nl.link_by_name(name).await?)
}

/// The ipvlan driver's own error inside a contract error.
fn own(e: &driverapi::Error) -> &Error {
    match e {
        driverapi::Error::Driver { driver, source, .. } => {
            assert_eq!(driver, "ipvlan");
            source
                .downcast_ref::<Error>()
                .expect("an ipvlan driver error")
        }
        other => panic!("not a driver error: {other:?}"),
    }
}

/// Joins `eid` to `sandbox`. `Ok(None)` when the kernel refused the ipvlan link type, after
/// checking that the refusal left the endpoint unjoined and the sandbox empty, and printing
/// why `test` skips.
async fn join_or_skip(
    test: &str,
    driver: &IpvlanDriver,
    nid: &str,
    eid: &str,
    sandbox: &Sandbox,
) -> Result<Option<JoinInfo>> {
    match driver
        .join(nid, eid, sandbox, &JoinOptions::default())
        .await
    {
        Ok(info) => Ok(Some(info)),
        Err(e) if own(&e).is_unsupported_link_type() => {
            ensure!(e.kind() == ErrorKind::Unavailable, "{e}");
            let record = driver
                .endpoint_record(nid, eid)
                .await
                .context("endpoint kept")?;
            ensure!(record.joined.is_none(), "{record:?}");
            let links = sandbox.netlink().links().await?;
            ensure!(links.iter().all(|l| l.name == "lo"), "left: {links:?}");
            eprintln!("skipped {test}: the kernel refused the link type: {e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Binds a listener inside `server` on `addr`, connects from inside `client` and checks an
/// echo.
async fn tcp_exchange(server: &Sandbox, client: &Sandbox, addr: IpAddr) -> Result<()> {
    let listener = server
        .run_in(move || TcpListener::bind(SocketAddr::new(addr, 0)))
        .await??;
    let target = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0; 5];
        conn.read_exact(&mut buf)?;
        conn.write_all(&buf)?;
        Ok(buf)
    });
    let answer = client
        .run_in(move || -> std::io::Result<Vec<u8>> {
            let mut conn = TcpStream::connect(target)?;
            conn.write_all(b"hello")?;
            let mut buf = vec![0; 5];
            conn.read_exact(&mut buf)?;
            Ok(buf)
        })
        .await?
        .with_context(|| format!("connect to {target}"))?;
    let received = echo.join().map_err(|_| anyhow!("echo thread panicked"))??;
    ensure!(received == b"hello" && answer == b"hello", "data mismatch");
    Ok(())
}

fn stored_keys(store: &Arc<dyn Store>, kind: &str) -> Result<Vec<String>> {
    Ok(store
        .list(&datastore::key(&["ipvlan", kind]))?
        .into_iter()
        .map(|p| p.key)
        .collect())
}

#[test]
fn l2_endpoints_on_one_parent_exchange_tcp_data() {
    const NAME: &str = "l2_endpoints_on_one_parent_exchange_tcp_data";
    kernel_test(NAME, |ctx| async move {
        let phys = parent(&ctx.host, "phys0", "wire0").await?;
        let (driver, _store) = ctx.driver().await?;
        driver
            .create_network(&request("net1", 60, &[("parent", "phys0")]))
            .await?;
        let a = ctx.sandbox("sba").await?;
        let b = ctx.sandbox("sbb").await?;
        let mut ep = iface("10.60.0.2/24");
        driver
            .create_endpoint("net1", "ep1", &mut ep, &EndpointOptions::default())
            .await?;
        // An ipvlan interface has the parent's MAC: the driver sets none.
        ensure!(ep.mac.is_none(), "{ep:?}");
        driver
            .create_endpoint(
                "net1",
                "ep2",
                &mut iface("10.60.0.3/24"),
                &EndpointOptions::default(),
            )
            .await?;

        let Some(info) = join_or_skip(NAME, &driver, "net1", "ep1", &a).await? else {
            return Ok(());
        };
        ensure!(
            info.interface
                == Some(JoinInterface::InSandbox {
                    name: "eth0".into()
                })
        );
        ensure!(info.gateway == Some("10.60.0.1".parse()?), "{info:?}");
        let (link, kind) = a.netlink().link_kind_by_name("eth0").await?;
        ensure!(
            kind == Some(LinkKind::Ipvlan {
                parent: phys.index,
                mode: IpvlanMode::L2,
                flag: IpvlanFlag::Bridge
            }),
            "{kind:?}"
        );
        ensure!(link.mac == phys.mac, "{link:?} vs {phys:?}");
        driver
            .join("net1", "ep2", &b, &JoinOptions::default())
            .await?;
        tcp_exchange(&a, &b, "10.60.0.2".parse()?).await?;
        driver.leave("net1", "ep1").await?;
        driver.settle().await;
        ensure!(a.netlink().link_by_name("eth0").await.is_err());
        Ok(())
    });
}

#[test]
fn l3_endpoints_get_default_routes_on_their_interface_and_exchange_tcp_data() {
    const NAME: &str = "l3_endpoints_get_default_routes_on_their_interface_and_exchange_tcp_data";
    kernel_test(NAME, |ctx| async move {
        parent(&ctx.host, "phys0", "wire0").await?;
        let (driver, _store) = ctx.driver().await?;
        driver
            .create_network(&request(
                "net1",
                61,
                &[
                    ("parent", "phys0"),
                    ("ipvlan_mode", "l3"),
                    ("ipvlan_flag", "bridge"),
                ],
            ))
            .await?;
        let a = ctx.sandbox("sba").await?;
        let b = ctx.sandbox("sbb").await?;
        for (eid, addr) in [("ep1", "10.61.0.2/24"), ("ep2", "10.61.0.3/24")] {
            driver
                .create_endpoint("net1", eid, &mut iface(addr), &EndpointOptions::default())
                .await?;
        }
        let Some(info) = join_or_skip(NAME, &driver, "net1", "ep1", &a).await? else {
            return Ok(());
        };
        ensure!(
            info.gateway.is_none() && info.disable_gateway_service,
            "{info:?}"
        );
        ensure!(
            info.static_routes.len() == 1
                && info.static_routes[0].destination == net("0.0.0.0/0")
                && info.static_routes[0].route_type == RouteType::Connected,
            "{info:?}"
        );
        driver
            .join("net1", "ep2", &b, &JoinOptions::default())
            .await?;
        tcp_exchange(&b, &a, "10.61.0.3".parse()?).await?;
        Ok(())
    });
}

#[test]
fn a_mac_address_is_refused_and_nothing_is_stored() {
    kernel_test(
        "a_mac_address_is_refused_and_nothing_is_stored",
        |ctx| async move {
            parent(&ctx.host, "phys0", "wire0").await?;
            let (driver, store) = ctx.driver().await?;
            driver
                .create_network(&request("net1", 62, &[("parent", "phys0")]))
                .await?;
            let mac: MacAddr = "02:aa:bb:cc:dd:ee".parse()?;
            let opts = EndpointOptions {
                mac_address: Some(mac),
                ..EndpointOptions::default()
            };
            let err = driver
                .create_endpoint("net1", "ep1", &mut iface("10.62.0.2/24"), &opts)
                .await
                .expect_err("MAC accepted");
            ensure!(err.kind() == ErrorKind::BadRequest, "{err}");
            ensure!(
                err.to_string()
                    .contains("ipvlan interfaces do not support custom mac address"),
                "{err}"
            );
            let mut given = iface("10.62.0.2/24");
            given.mac = Some(mac);
            ensure!(
                driver
                    .create_endpoint("net1", "ep1", &mut given, &EndpointOptions::default())
                    .await
                    .is_err()
            );
            ensure!(driver.endpoint_record("net1", "ep1").await.is_none());
            ensure!(stored_keys(&store, "endpoint")?.is_empty());
            Ok(())
        },
    );
}

#[test]
fn network_without_parent_gets_a_di_parent_deleted_with_it() {
    kernel_test(
        "network_without_parent_gets_a_di_parent_deleted_with_it",
        |ctx| async move {
            let (driver, store) = ctx.driver().await?;
            let id = "abcdef0123456789";
            driver.create_network(&request(id, 63, &[])).await?;
            let nl = ctx.host.netlink();
            let di = nl.link_by_name("di-abcdef012345").await?;
            ensure!(matches!(di.kind.as_deref(), Some("dummy" | "bridge")) && di.up);
            let cfg = driver.network_config(id).context("network")?;
            ensure!(cfg.internal && cfg.created_parent);
            let json: serde_json::Value = serde_json::from_slice(
                &store.list(&datastore::key(&["ipvlan", "network"]))?[0].value,
            )?;
            ensure!(
                json["IpvlanMode"] == "l2" && json["IpvlanFlag"] == "bridge",
                "{json}"
            );
            ensure!(json["Parent"] == "di-abcdef012345" && json["CreatedSubIface"] == true);
            driver.delete_network(id).await?;
            ensure!(nl.link_by_name("di-abcdef012345").await.is_err());
            ensure!(stored_keys(&store, "network")?.is_empty());
            Ok(())
        },
    );
}

#[test]
fn vlan_parent_is_created_for_an_ipvlan_network() {
    const NAME: &str = "vlan_parent_is_created_for_an_ipvlan_network";
    kernel_test(NAME, |ctx| async move {
        let phys = parent(&ctx.host, "phys0", "wire0").await?;
        let (driver, store) = ctx.driver().await?;
        let nl = ctx.host.netlink();
        match driver
            .create_network(&request("net1", 64, &[("parent", "phys0.30")]))
            .await
        {
            Err(e) if own(&e).is_unsupported_link_type() => {
                ensure!(driver.network_config("net1").is_none());
                ensure!(nl.link_by_name("phys0.30").await.is_err());
                ensure!(stored_keys(&store, "network")?.is_empty());
                eprintln!("skipped {NAME}: the kernel refused the link type: {e}");
                return Ok(());
            }
            other => other?,
        };
        let (_, kind) = nl.link_kind_by_name("phys0.30").await?;
        ensure!(
            kind == Some(LinkKind::Vlan {
                parent: phys.index,
                id: 30
            }),
            "{kind:?}"
        );
        driver.delete_network("net1").await?;
        ensure!(nl.link_by_name("phys0.30").await.is_err());
        Ok(())
    });
}

#[test]
fn restarted_driver_restores_modes_and_endpoints() {
    kernel_test(
        "restarted_driver_restores_modes_and_endpoints",
        |ctx| async move {
            parent(&ctx.host, "phys0", "wire0").await?;
            {
                let (driver, _store) = ctx.driver().await?;
                driver
                    .create_network(&request(
                        "net1",
                        65,
                        &[
                            ("parent", "phys0"),
                            ("ipvlan_mode", "l3s"),
                            ("ipvlan_flag", "private"),
                        ],
                    ))
                    .await?;
                driver
                    .create_endpoint(
                        "net1",
                        "ep1",
                        &mut iface("10.65.0.2/24"),
                        &EndpointOptions::default(),
                    )
                    .await?;
            }
            let (driver, _store) = ctx.driver().await?;
            let cfg = driver.network_config("net1").context("restored")?;
            ensure!(cfg.mode.mode == IpvlanMode::L3s && cfg.mode.flag == IpvlanFlag::Private);
            let ep = driver.endpoint_record("net1", "ep1").await.context("ep1")?;
            ensure!(ep.addr == Some(net("10.65.0.2/24")) && ep.mac.is_none());
            let err = driver
                .create_network(&request("net2", 66, &[("parent", "phys0")]))
                .await
                .expect_err("parent in use");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            Ok(())
        },
    );
}
