//! Kernel tests of the macvlan driver. Each test runs in its own network and mount namespace
//! (`libnetwork_testutil::in_new_netns`); the "physical" parent is one end of a veth pair in
//! the test's host namespace (both ends up), and the other end stands for the wire, where the
//! network's gateway lives. Sandboxes are real namespaces; traffic is real TCP.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use ipnet::IpNet;
use libnetwork_datastore::{self as datastore, RedbStore, Store};
use libnetwork_driver_macvlan::{Error, MacvlanDriver};
use libnetwork_driverapi::{
    self as driverapi, CreateNetworkRequest, Driver, EndpointInterface, EndpointOptions, IpamData,
    JoinInterface, JoinOptions, NetworkOptions, netlabel,
};
use libnetwork_osl::{Host, Link, LinkKind, MacAddr, MacvlanMode, Sandbox, netns};
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

/// What a test body gets: the host namespace, and a directory for its store.
struct Ctx {
    host: Host,
    dir: std::path::PathBuf,
}

impl Ctx {
    fn store(&self) -> Result<Arc<dyn Store>> {
        Ok(Arc::new(RedbStore::open(self.dir.join("local-kv.db"))?))
    }

    async fn driver(&self) -> Result<(MacvlanDriver, Arc<dyn Store>)> {
        let store = self.store()?;
        let driver = MacvlanDriver::new(self.host.clone(), Some(Arc::clone(&store))).await?;
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

fn pool(pool: &str, gateway: &str) -> IpamData {
    IpamData {
        address_space: "LocalDefault".into(),
        pool: net(pool),
        gateway: Some(net(gateway)),
        aux_addresses: Default::default(),
    }
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
        ipv4: vec![pool(&format!("10.{n}.0.0/24"), &format!("10.{n}.0.1/24"))],
        ipv6: Vec::new(),
    }
}

fn iface(addr: &str) -> EndpointInterface {
    EndpointInterface {
        address: Some(net(addr)),
        ..EndpointInterface::default()
    }
}

/// A veth pair in the host namespace, both ends up; the first end is the parent, the other
/// the wire (given `wire_addr`, where the gateway lives).
async fn parent(host: &Host, name: &str, wire: &str, wire_addr: Option<&str>) -> Result<Link> {
    let nl = host.netlink();
    let link = nl.create_veth(name, wire, None).await?;
    nl.set_up(&link, true).await?;
    let wire = nl.link_by_name(wire).await?;
    if let Some(addr) = wire_addr {
        nl.add_address(&wire, net(addr), false).await?;
    }
    nl.set_up(&wire, true).await?;
    Ok(nl.link_by_name(name).await?)
}

/// The macvlan driver's own error inside a contract error.
fn own(e: &driverapi::Error) -> &Error {
    match e {
        driverapi::Error::Driver { driver, source, .. } => {
            assert_eq!(driver, "macvlan");
            source
                .downcast_ref::<Error>()
                .expect("a macvlan driver error")
        }
        other => panic!("not a driver error: {other:?}"),
    }
}

/// Creates an endpoint with `addr` and joins it to `sandbox`; returns the interface name.
async fn attach(
    driver: &MacvlanDriver,
    nid: &str,
    eid: &str,
    addr: &str,
    sandbox: &Sandbox,
) -> Result<String> {
    driver
        .create_endpoint(nid, eid, &mut iface(addr), &EndpointOptions::default())
        .await?;
    let info = driver
        .join(nid, eid, sandbox, &JoinOptions::default())
        .await?;
    match info.interface {
        Some(JoinInterface::InSandbox { name }) => Ok(name),
        other => Err(anyhow!("join answered {other:?}")),
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

/// Connects from inside `client` (whose interface is `ifname`) to `target` and returns
/// whether it worked. Address resolution is made to give up after one 100 ms try, so that an
/// unreachable peer is reported at once rather than after seconds.
async fn connects(client: &Sandbox, ifname: &str, target: SocketAddr) -> Result<bool> {
    let solicit = format!("net.ipv4.neigh.{ifname}.mcast_solicit");
    let retrans = format!("net.ipv4.neigh.{ifname}.retrans_time_ms");
    client
        .set_sysctls(&[(solicit.as_str(), "1"), (retrans.as_str(), "100")])
        .await?;
    let result = client
        .run_in(move || TcpStream::connect_timeout(&target, Duration::from_secs(5)))
        .await?;
    Ok(result.is_ok())
}

/// Whether a link called `name` exists in `sandbox`.
async fn has_link(sandbox: &Sandbox, name: &str) -> Result<bool> {
    match sandbox.netlink().link_by_name(name).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The keys stored under `docker/network/v1.0/macvlan/<kind>/`.
fn stored_keys(store: &Arc<dyn Store>, kind: &str) -> Result<Vec<String>> {
    Ok(store
        .list(&datastore::key(&["macvlan", kind]))?
        .into_iter()
        .map(|p| p.key)
        .collect())
}

#[test]
fn two_sandboxes_on_one_parent_exchange_tcp_data_and_reach_the_gateway() {
    kernel_test(
        "two_sandboxes_on_one_parent_exchange_tcp_data_and_reach_the_gateway",
        |ctx| async move {
            let phys = parent(&ctx.host, "phys0", "wire0", Some("10.40.0.1/24")).await?;
            let (driver, _store) = ctx.driver().await?;
            driver
                .create_network(&request("net1", 40, &[("parent", "phys0")]))
                .await?;
            let a = ctx.sandbox("sba").await?;
            let b = ctx.sandbox("sbb").await?;

            let mut ep = iface("10.40.0.2/24");
            driver
                .create_endpoint("net1", "ep1", &mut ep, &EndpointOptions::default())
                .await?;
            // The MAC is derived from the IPv4 address and given back.
            let mac: MacAddr = "02:42:0a:28:00:02".parse()?;
            ensure!(ep.mac == Some(mac), "{ep:?}");
            let info = driver
                .join("net1", "ep1", &a, &JoinOptions::default())
                .await?;
            ensure!(
                info.interface
                    == Some(JoinInterface::InSandbox {
                        name: "eth0".into()
                    }),
                "{info:?}"
            );
            ensure!(info.gateway == Some("10.40.0.1".parse()?), "{info:?}");
            ensure!(info.static_routes.is_empty() && !info.disable_gateway_service);

            // The interface was born in the sandbox: a macvlan on the parent, bridge mode, with
            // its MAC and address, up.
            let (link, kind) = a.netlink().link_kind_by_name("eth0").await?;
            ensure!(
                kind == Some(LinkKind::Macvlan {
                    parent: phys.index,
                    mode: MacvlanMode::Bridge
                }),
                "{kind:?}"
            );
            ensure!(link.mac == Some(mac) && link.up, "{link:?}");
            let addrs = a.netlink().addresses(Some(link.index)).await?;
            ensure!(
                addrs.iter().any(|x| x.net == net("10.40.0.2/24")),
                "{addrs:?}"
            );
            ensure!(ctx.host.netlink().link_by_name("eth0").await.is_err());

            let b_if = attach(&driver, "net1", "ep2", "10.40.0.3/24", &b).await?;
            ensure!(b_if == "eth0");
            tcp_exchange(&a, &b, "10.40.0.2".parse()?).await?;
            tcp_exchange(&b, &a, "10.40.0.3".parse()?).await?;

            // The gateway on the wire is reached through the parent.
            let gw_listener = TcpListener::bind("10.40.0.1:0")?;
            let gw = gw_listener.local_addr()?;
            ensure!(connects(&a, "eth0", gw).await?, "gateway {gw} not reached");

            // Leave takes the interface out of the sandbox; the parent stays.
            driver.leave("net1", "ep1").await?;
            driver.settle().await;
            ensure!(!has_link(&a, "eth0").await?);
            ensure!(ctx.host.netlink().link_by_name("phys0").await.is_ok());
            let err = driver.leave("net1", "ep1").await.expect_err("second leave");
            ensure!(matches!(own(&err), Error::NotJoined(_)), "{err}");
            Ok(())
        },
    );
}

#[test]
fn private_mode_keeps_endpoints_apart_but_lets_them_reach_the_wire() {
    kernel_test(
        "private_mode_keeps_endpoints_apart_but_lets_them_reach_the_wire",
        |ctx| async move {
            parent(&ctx.host, "phys0", "wire0", Some("10.41.0.1/24")).await?;
            let (driver, _store) = ctx.driver().await?;
            driver
                .create_network(&request(
                    "net1",
                    41,
                    &[("parent", "phys0"), ("macvlan_mode", "private")],
                ))
                .await?;
            let a = ctx.sandbox("sba").await?;
            let b = ctx.sandbox("sbb").await?;
            let a_if = attach(&driver, "net1", "ep1", "10.41.0.2/24", &a).await?;
            attach(&driver, "net1", "ep2", "10.41.0.3/24", &b).await?;
            let (_, kind) = a.netlink().link_kind_by_name(&a_if).await?;
            ensure!(
                matches!(
                    kind,
                    Some(LinkKind::Macvlan {
                        mode: MacvlanMode::Private,
                        ..
                    })
                ),
                "{kind:?}"
            );

            // The wire answers: the interface works.
            let wire_listener = TcpListener::bind("10.41.0.1:0")?;
            ensure!(
                connects(&a, &a_if, wire_listener.local_addr()?).await?,
                "the wire is not reached"
            );
            // The other endpoint of the network does not.
            let peer = b.run_in(|| TcpListener::bind("10.41.0.3:0")).await??;
            let target = peer.local_addr()?;
            ensure!(
                !connects(&a, &a_if, target).await?,
                "private macvlans reached each other"
            );
            Ok(())
        },
    );
}

#[test]
fn network_without_parent_gets_its_own_isolated_parent_and_is_internal() {
    kernel_test(
        "network_without_parent_gets_its_own_isolated_parent_and_is_internal",
        |ctx| async move {
            let (driver, _store) = ctx.driver().await?;
            let id = "0123456789abcdef";
            driver.create_network(&request(id, 42, &[])).await?;
            let cfg = driver.network_config(id).context("network")?;
            ensure!(cfg.parent == "dm-0123456789ab" && cfg.internal && cfg.created_parent);
            let dm = ctx.host.netlink().link_by_name("dm-0123456789ab").await?;
            // A dummy link where the kernel has them, else a bridge without ports.
            ensure!(
                matches!(dm.kind.as_deref(), Some("dummy" | "bridge")) && dm.up,
                "{dm:?}"
            );

            let a = ctx.sandbox("sba").await?;
            let b = ctx.sandbox("sbb").await?;
            attach(&driver, id, "ep1", "10.42.0.2/24", &a).await?;
            driver
                .create_endpoint(
                    id,
                    "ep2",
                    &mut iface("10.42.0.3/24"),
                    &EndpointOptions::default(),
                )
                .await?;
            let info = driver.join(id, "ep2", &b, &JoinOptions::default()).await?;
            // Internal: no gateway.
            ensure!(
                info.gateway.is_none() && info.static_routes.is_empty(),
                "{info:?}"
            );
            tcp_exchange(&a, &b, "10.42.0.2".parse()?).await?;

            // A second network without parent gets another parent.
            driver
                .create_network(&request("fedcba9876543210", 43, &[]))
                .await?;
            ensure!(
                ctx.host
                    .netlink()
                    .link_by_name("dm-fedcba987654")
                    .await
                    .is_ok()
            );

            // Deleting the network deletes its parent and its endpoints' interfaces.
            driver.delete_network(id).await?;
            driver.settle().await;
            ensure!(
                ctx.host
                    .netlink()
                    .link_by_name("dm-0123456789ab")
                    .await
                    .is_err_and(|e| e.is_not_found())
            );
            ensure!(!has_link(&a, "eth0").await? && !has_link(&b, "eth0").await?);
            ensure!(driver.network_config(id).is_none());
            Ok(())
        },
    );
}

#[test]
fn a_second_network_on_a_parent_is_refused_and_the_same_one_again_changes_nothing() {
    kernel_test(
        "a_second_network_on_a_parent_is_refused_and_the_same_one_again_changes_nothing",
        |ctx| async move {
            parent(&ctx.host, "phys0", "wire0", None).await?;
            parent(&ctx.host, "phys1", "wire1", None).await?;
            let (driver, store) = ctx.driver().await?;
            driver
                .create_network(&request("net1", 44, &[("parent", "phys0")]))
                .await?;
            let err = driver
                .create_network(&request("net2", 45, &[("parent", "phys0")]))
                .await
                .expect_err("second network on phys0");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            ensure!(
                err.to_string()
                    == "macvlan driver: create network net2: network net1 is already using \
                        parent interface phys0",
                "{err}"
            );
            ensure!(driver.network_config("net2").is_none());
            // The same network again (a restore): accepted, nothing changes.
            driver
                .create_network(&request("net1", 44, &[("parent", "phys0")]))
                .await?;
            // The same id on another parent: a conflict.
            let err = driver
                .create_network(&request("net1", 44, &[("parent", "phys1")]))
                .await
                .expect_err("same id elsewhere");
            ensure!(matches!(own(&err), Error::NetworkExists { .. }), "{err}");
            // Another parent is fine.
            driver
                .create_network(&request("net3", 46, &[("parent", "phys1")]))
                .await?;
            ensure!(stored_keys(&store, "network")?.len() == 2);
            Ok(())
        },
    );
}

#[test]
fn bad_parents_and_options_are_refused_and_change_nothing() {
    kernel_test(
        "bad_parents_and_options_are_refused_and_change_nothing",
        |ctx| async move {
            let phys = parent(&ctx.host, "phys0", "wire0", None).await?;
            let (driver, store) = ctx.driver().await?;
            let cases: [(&[(&str, &str)], ErrorKind); 6] = [
                (&[("parent", "lo")], ErrorKind::BadRequest),
                // Missing, and not named <link>.<vlan id>.
                (&[("parent", "nope0")], ErrorKind::BadRequest),
                // A VLAN of a link that does not exist.
                (&[("parent", "nope0.10")], ErrorKind::NotFound),
                (&[("parent", "phys0.4095")], ErrorKind::BadRequest),
                (
                    &[("parent", "phys0"), ("macvlan_mode", "l2")],
                    ErrorKind::BadRequest,
                ),
                (
                    &[
                        ("parent", "phys0"),
                        (netlabel::DRIVER_MTU, &(phys.mtu + 1).to_string()),
                    ],
                    ErrorKind::BadRequest,
                ),
            ];
            for (options, kind) in cases {
                let err = driver
                    .create_network(&request("bad", 47, options))
                    .await
                    .expect_err("bad network accepted");
                ensure!(err.kind() == kind, "{options:?}: {err}");
            }
            let mut no_pool = request("bad", 47, &[("parent", "phys0")]);
            no_pool.ipv4.clear();
            let err = driver.create_network(&no_pool).await.expect_err("no pool");
            ensure!(err.to_string().contains("ipv4 pool is empty"), "{err}");

            ensure!(driver.network_config("bad").is_none());
            ensure!(stored_keys(&store, "network")?.is_empty());
            let links = ctx.host.netlink().links().await?;
            ensure!(links.len() == 3, "links left: {links:?}");
            Ok(())
        },
    );
}

#[test]
fn endpoints_take_given_macs_need_an_address_in_a_subnet_and_are_unique() {
    kernel_test(
        "endpoints_take_given_macs_need_an_address_in_a_subnet_and_are_unique",
        |ctx| async move {
            parent(&ctx.host, "phys0", "wire0", None).await?;
            let (driver, store) = ctx.driver().await?;
            driver
                .create_network(&request("net1", 48, &[("parent", "phys0")]))
                .await?;

            // A MAC asked for is kept.
            let mac: MacAddr = "02:aa:bb:cc:dd:ee".parse()?;
            let mut ep = iface("10.48.0.5/24");
            let opts = EndpointOptions {
                mac_address: Some(mac),
                ..EndpointOptions::default()
            };
            driver
                .create_endpoint("net1", "ep1", &mut ep, &opts)
                .await?;
            ensure!(ep.mac == Some(mac));
            let oper = driver.endpoint_oper_info("net1", "ep1").await?;
            ensure!(oper[netlabel::MAC_ADDRESS] == mac.to_string(), "{oper:?}");
            let sb = ctx.sandbox("sb").await?;
            driver
                .join("net1", "ep1", &sb, &JoinOptions::default())
                .await?;
            ensure!(sb.netlink().link_by_name("eth0").await?.mac == Some(mac));
            let err = driver
                .join("net1", "ep1", &sb, &JoinOptions::default())
                .await
                .expect_err("second join");
            ensure!(matches!(own(&err), Error::AlreadyJoined(_)), "{err}");

            let err = driver
                .create_endpoint("net1", "ep1", &mut iface("10.48.0.6/24"), &opts)
                .await
                .expect_err("same id");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            for bad in ["10.49.0.2/24", "10.48.0.2/16"] {
                let err = driver
                    .create_endpoint("net1", "ep2", &mut iface(bad), &EndpointOptions::default())
                    .await
                    .expect_err("address outside the subnet");
                ensure!(err.kind() == ErrorKind::BadRequest, "{bad}: {err}");
            }
            let err = driver
                .create_endpoint(
                    "net1",
                    "ep2",
                    &mut EndpointInterface::default(),
                    &EndpointOptions::default(),
                )
                .await
                .expect_err("no address");
            ensure!(err.to_string().contains("no IPv4 address"), "{err}");
            let err = driver
                .create_endpoint("nope", "ep2", &mut iface("10.48.0.2/24"), &opts)
                .await
                .expect_err("no network");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            ensure!(stored_keys(&store, "endpoint")?.len() == 1);

            // Two interfaces with one MAC on one parent: the kernel refuses the second (after
            // the driver's retries), and nothing is left of it.
            driver
                .create_endpoint("net1", "ep3", &mut iface("10.48.0.7/24"), &opts)
                .await?;
            let other = ctx.sandbox("other").await?;
            let err = driver
                .join("net1", "ep3", &other, &JoinOptions::default())
                .await
                .expect_err("duplicate MAC on the parent");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            ensure!(!has_link(&other, "eth0").await?);
            ensure!(
                driver
                    .endpoint_record("net1", "ep3")
                    .await
                    .context("ep3")?
                    .joined
                    .is_none()
            );
            driver.delete_endpoint("net1", "ep3").await?;

            // Deleting a joined endpoint removes its interface and its record.
            driver.delete_endpoint("net1", "ep1").await?;
            driver.settle().await;
            ensure!(!has_link(&sb, "eth0").await?);
            ensure!(stored_keys(&store, "endpoint")?.is_empty());
            Ok(())
        },
    );
}

#[test]
fn sandbox_destroyed_without_leave_lets_the_endpoint_leave_and_join_again() {
    kernel_test(
        "sandbox_destroyed_without_leave_lets_the_endpoint_leave_and_join_again",
        |ctx| async move {
            parent(&ctx.host, "phys0", "wire0", None).await?;
            let (driver, _store) = ctx.driver().await?;
            driver
                .create_network(&request("net1", 50, &[("parent", "phys0")]))
                .await?;
            let first = ctx.sandbox("first").await?;
            attach(&driver, "net1", "ep1", "10.50.0.2/24", &first).await?;
            first.destroy()?;

            // A new sandbox on the same key is another namespace, whose eth0 (same name, same
            // index) is not the endpoint's: leave finds nothing of its own to remove.
            let reused = ctx.sandbox("first").await?;
            let pair = reused
                .create_veth("hostv0", "eth", &Default::default())
                .await?;
            ensure!(pair.sandbox.name == "eth0");
            driver.leave("net1", "ep1").await?;
            driver.settle().await;
            ensure!(
                has_link(&reused, "eth0").await?,
                "another namespace's eth0 was deleted"
            );

            // Joined again, then its sandbox destroyed again: the next join elsewhere works
            // although the kernel may still be tearing the old interface down.
            let second = ctx.sandbox("second").await?;
            driver
                .join("net1", "ep1", &second, &JoinOptions::default())
                .await?;
            second.destroy()?;
            let third = ctx.sandbox("third").await?;
            driver
                .join("net1", "ep1", &third, &JoinOptions::default())
                .await?;
            ensure!(has_link(&third, "eth0").await?);
            Ok(())
        },
    );
}

#[test]
fn restarted_driver_restores_networks_and_endpoints_from_the_store() {
    kernel_test(
        "restarted_driver_restores_networks_and_endpoints_from_the_store",
        |ctx| async move {
            parent(&ctx.host, "phys0", "wire0", None).await?;
            let a = ctx.sandbox("sba").await?;
            let b = ctx.sandbox("sbb").await?;
            {
                let (driver, _store) = ctx.driver().await?;
                driver
                    .create_network(&request(
                        "net1",
                        51,
                        &[("parent", "phys0"), ("macvlan_mode", "vepa")],
                    ))
                    .await?;
                driver
                    .create_network(&request("internal1", 52, &[]))
                    .await?;
                attach(&driver, "net1", "ep1", "10.51.0.2/24", &a).await?;
                driver
                    .create_endpoint(
                        "net1",
                        "ep2",
                        &mut iface("10.51.0.3/24"),
                        &EndpointOptions::default(),
                    )
                    .await?;
            }

            let (driver, store) = ctx.driver().await?;
            let cfg = driver.network_config("net1").context("net1 restored")?;
            ensure!(cfg.parent == "phys0" && cfg.mode.mode == MacvlanMode::Vepa);
            let internal = driver
                .network_config("internal1")
                .context("internal1 restored")?;
            ensure!(internal.created_parent && internal.internal);
            let ep1 = driver
                .endpoint_record("net1", "ep1")
                .await
                .context("ep1 restored")?;
            ensure!(ep1.joined.is_some() && ep1.src_name == "eth0", "{ep1:?}");

            // The parent rule holds across the restart.
            let err = driver
                .create_network(&request("net2", 53, &[("parent", "phys0")]))
                .await
                .expect_err("parent in use");
            ensure!(matches!(own(&err), Error::ParentInUse { .. }), "{err}");

            // The endpoint joined before the restart leaves; the other one joins.
            driver.leave("net1", "ep1").await?;
            driver.settle().await;
            ensure!(!has_link(&a, "eth0").await?);
            driver
                .join("net1", "ep2", &b, &JoinOptions::default())
                .await?;
            ensure!(has_link(&b, "eth0").await?);

            // Deleting everything leaves no record and no parent the driver made.
            driver.delete_network("net1").await?;
            driver.delete_network("internal1").await?;
            driver.settle().await;
            ensure!(stored_keys(&store, "network")?.is_empty());
            ensure!(stored_keys(&store, "endpoint")?.is_empty());
            ensure!(!has_link(&b, "eth0").await?);
            ensure!(
                ctx.host
                    .netlink()
                    .link_by_name("dm-internal1")
                    .await
                    .is_err()
            );
            ensure!(ctx.host.netlink().link_by_name("phys0").await.is_ok());
            Ok(())
        },
    );
}

#[test]
fn restarted_driver_makes_a_missing_parent_it_had_made_again() {
    kernel_test(
        "restarted_driver_makes_a_missing_parent_it_had_made_again",
        |ctx| async move {
            {
                let (driver, _store) = ctx.driver().await?;
                driver
                    .create_network(&request("internal1", 54, &[]))
                    .await?;
            }
            // The parent disappears while no driver runs (a reboot).
            let nl = ctx.host.netlink();
            nl.delete_link(&nl.link_by_name("dm-internal1").await?)
                .await?;
            let (driver, _store) = ctx.driver().await?;
            ensure!(driver.network_config("internal1").is_some());
            ensure!(nl.link_by_name("dm-internal1").await?.up);
            Ok(())
        },
    );
}

#[test]
fn vlan_parent_is_created_with_the_network_and_deleted_with_it() {
    const NAME: &str = "vlan_parent_is_created_with_the_network_and_deleted_with_it";
    kernel_test(NAME, |ctx| async move {
        let phys = parent(&ctx.host, "phys0", "wire0", None).await?;
        let (driver, store) = ctx.driver().await?;
        let nl = ctx.host.netlink();
        match driver
            .create_network(&request("net1", 55, &[("parent", "phys0.10")]))
            .await
        {
            Err(e) if own(&e).is_unsupported_link_type() => {
                // The refusal changed nothing.
                ensure!(e.kind() == ErrorKind::Unavailable, "{e}");
                ensure!(driver.network_config("net1").is_none());
                ensure!(nl.link_by_name("phys0.10").await.is_err());
                ensure!(stored_keys(&store, "network")?.is_empty());
                eprintln!("skipped {NAME}: the kernel refused the link type: {e}");
                return Ok(());
            }
            other => other?,
        };
        let (vlan, kind) = nl.link_kind_by_name("phys0.10").await?;
        ensure!(
            kind == Some(LinkKind::Vlan {
                parent: phys.index,
                id: 10
            }) && vlan.up,
            "{kind:?} {vlan:?}"
        );
        ensure!(
            driver
                .network_config("net1")
                .context("network")?
                .created_parent
        );
        driver.delete_network("net1").await?;
        ensure!(nl.link_by_name("phys0.10").await.is_err());
        ensure!(nl.link_by_name("phys0").await.is_ok());
        Ok(())
    });
}

#[test]
fn existing_parent_is_never_deleted_with_the_network() {
    kernel_test(
        "existing_parent_is_never_deleted_with_the_network",
        |ctx| async move {
            // A user-made link whose name looks like a VLAN sub-interface.
            let nl = ctx.host.netlink();
            let link = nl.create_veth("phys0.20", "wire0", None).await?;
            nl.set_up(&link, true).await?;
            let (driver, _store) = ctx.driver().await?;
            driver
                .create_network(&request("net1", 56, &[("parent", "phys0.20")]))
                .await?;
            ensure!(
                !driver
                    .network_config("net1")
                    .context("network")?
                    .created_parent
            );
            driver.delete_network("net1").await?;
            ensure!(nl.link_by_name("phys0.20").await.is_ok());
            Ok(())
        },
    );
}
