//! Kernel tests of the OS sandbox layer. Each test runs in its own network and mount namespace
//! (`libnetwork_testutil::in_new_netns`), with the sandbox run directory in a temporary
//! directory, so nothing is left behind on the machine, also when a test panics.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, ensure};
use ipnet::IpNet;
use libnetwork_osl::{
    Error, Host, InterfaceOptions, MacAddr, Neighbour, NextHop, Origin, Sandbox, StaticRoute,
    netns, sysctl,
};
use libnetwork_testutil::{in_new_netns, netns_inode, privileged};
use libnetwork_types::ErrorKind;

/// The run directory of a test; on drop, detaches whatever a failed test left mounted under
/// it so that the temporary directory can be removed.
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

/// Runs `body` with a fresh host namespace, a tokio runtime and a run directory.
fn kernel_test<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Host) -> Fut + Send,
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
            body(host).await
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

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn mounted(path: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/thread-self/mountinfo").expect("mountinfo");
    let path = path.to_string_lossy();
    mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*path))
}

async fn new_sandbox(host: &Host, id: &str) -> Result<Sandbox> {
    Ok(host.create_sandbox(&host.key_for(id)).await?)
}

fn addrs(opts: &[&str]) -> InterfaceOptions {
    InterfaceOptions {
        addresses: opts.iter().map(|a| net(a)).collect(),
        ..Default::default()
    }
}

/// Binds a listener inside `server` on `addr`, connects from inside `client`, sends a line
/// and checks the echo.
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

#[test]
fn sandbox_is_bound_to_its_key_and_destroy_leaves_nothing() {
    kernel_test(
        "sandbox_is_bound_to_its_key_and_destroy_leaves_nothing",
        |host| async move {
            let key = host.key_for("0123456789abcdef");
            ensure!(key == host.run_dir().join("netns/0123456789ab"));
            let sb = host.create_sandbox(&key).await?;
            ensure!(netns::is_bound(&key) && mounted(&key));
            ensure!(sb.netns().inode() != host.netns().inode());
            ensure!(host.netns().inode() == netns_inode());
            let lo = sb.netlink().link_by_name("lo").await?;
            ensure!(lo.up, "lo is down in the new sandbox");
            ensure!(sb.interfaces().await?.is_empty());

            sb.destroy()?;
            ensure!(!key.exists(), "key file left behind");
            ensure!(!mounted(&key), "mount left behind");
            Ok(())
        },
    );
}

#[test]
fn creating_on_a_key_where_a_namespace_is_mounted_is_a_conflict() {
    kernel_test(
        "creating_on_a_key_where_a_namespace_is_mounted_is_a_conflict",
        |host| async move {
            let key = host.key_for("twice");
            let sb = host.create_sandbox(&key).await?;
            let err = host.create_sandbox(&key).await.expect_err("second create");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            // The first sandbox is untouched and a new one can be made once it is gone.
            ensure!(sb.netlink().link_by_name("lo").await?.up);
            sb.destroy()?;
            host.create_sandbox(&key).await?.destroy()?;
            Ok(())
        },
    );
}

/// Waits until `host` has `count` spare namespaces ready.
async fn spares_ready(host: &Host, count: usize) -> Result<()> {
    for _ in 0..500 {
        if host.spare_namespaces() == count {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err(anyhow!(
        "{} spare namespaces ready, {count} expected",
        host.spare_namespaces()
    ))
}

#[test]
fn sandboxes_made_from_spare_namespaces_are_fresh_and_distinct() {
    kernel_test(
        "sandboxes_made_from_spare_namespaces_are_fresh_and_distinct",
        |host| async move {
            host.keep_spare_namespaces(2);
            ensure!(
                host.spare_namespaces() == 0,
                "spares made before any sandbox"
            );
            // The first sandbox is made on demand and starts the refill.
            let first = new_sandbox(&host, "spare-first").await?;
            spares_ready(&host, 2).await?;
            let mut sandboxes = vec![first];
            for id in ["spare-a", "spare-b", "spare-c"] {
                let sb = new_sandbox(&host, id).await?;
                ensure!(netns::is_bound(sb.key()) && mounted(sb.key()));
                ensure!(sb.netlink().link_by_name("lo").await?.up, "lo down in {id}");
                ensure!(sb.interfaces().await?.is_empty(), "{id} has interfaces");
                sandboxes.push(sb);
            }
            let mut inodes: Vec<u64> = sandboxes.iter().map(|sb| sb.netns().inode()).collect();
            inodes.push(host.netns().inode());
            inodes.sort_unstable();
            inodes.dedup();
            ensure!(inodes.len() == 5, "two sandboxes share a namespace");
            // Errors name the sandbox's key, not the spare it came from.
            let err = sandboxes[1]
                .netlink()
                .link_by_name("nothere0")
                .await
                .expect_err("no such link");
            ensure!(err.to_string().contains("spare-a"), "{err}");
            spares_ready(&host, 2).await?;
            for sb in sandboxes {
                let key = sb.key().to_path_buf();
                sb.destroy()?;
                ensure!(
                    !key.exists() && !mounted(&key),
                    "{} left behind",
                    key.display()
                );
            }
            Ok(())
        },
    );
}

#[test]
fn a_spare_namespace_is_not_bound_over_a_mounted_key() {
    kernel_test(
        "a_spare_namespace_is_not_bound_over_a_mounted_key",
        |host| async move {
            host.keep_spare_namespaces(1);
            let key = host.key_for("taken");
            let sb = host.create_sandbox(&key).await?;
            spares_ready(&host, 1).await?;
            let err = host.create_sandbox(&key).await.expect_err("second create");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            ensure!(sb.netlink().link_by_name("lo").await?.up);
            sb.destroy()?;
            ensure!(!key.exists(), "key file left behind");
            Ok(())
        },
    );
}

#[test]
fn sandbox_reopened_after_restart_lists_its_interfaces_and_routes() {
    kernel_test(
        "sandbox_reopened_after_restart_lists_its_interfaces_and_routes",
        |host| async move {
            let key = host.key_for("restart");
            {
                let sb = host.create_sandbox(&key).await?;
                sb.create_veth("vh0", "eth", &addrs(&["10.20.0.2/24"]))
                    .await?;
                sb.set_gateway(ip("10.20.0.1")).await?;
            }
            // "Restart": every handle is gone; a new host handle reopens the key.
            let run_dir = host.run_dir().to_path_buf();
            drop(host);
            let host = Host::new(run_dir).await?;
            let sb = host.open_sandbox(&key).await?;
            let ifaces = sb.interfaces().await?;
            ensure!(
                ifaces.len() == 1 && ifaces[0].link.name == "eth0",
                "{ifaces:?}"
            );
            ensure!(
                ifaces[0]
                    .addresses
                    .iter()
                    .any(|a| a.net == net("10.20.0.2/24"))
            );
            ensure!(sb.gateway(false).await? == Some(ip("10.20.0.1")));
            // Without knowing its origin the interface is not touched; once restored it is.
            let err = sb
                .remove_interface("eth0")
                .await
                .expect_err("unknown origin");
            ensure!(err.kind() == ErrorKind::BadRequest, "{err}");
            sb.restore_interface("eth0", Origin::Created).await;
            sb.remove_interface("eth0").await?;
            ensure!(sb.interfaces().await?.is_empty());
            ensure!(
                host.netlink()
                    .link_by_name("vh0")
                    .await
                    .is_err_and(|e| e.is_not_found())
            );
            sb.destroy()?;

            let err = host
                .open_sandbox(&key)
                .await
                .expect_err("open a destroyed sandbox");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            Ok(())
        },
    );
}

#[test]
fn namespace_of_another_thread_becomes_a_sandbox_through_its_proc_path() {
    kernel_test(
        "namespace_of_another_thread_becomes_a_sandbox_through_its_proc_path",
        |host| async move {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let helper = std::thread::spawn(move || {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
                let tid = nix::unistd::gettid();
                ready_tx.send((tid, netns_inode())).expect("send");
                let _ = done_rx.recv();
            });
            let (tid, inode) = ready_rx.recv()?;
            let ns_path = PathBuf::from(format!("/proc/self/task/{tid}/ns/net"));
            let key = host.key_for("external");
            let sb = host.sandbox_for_external_key(&ns_path, &key).await?;
            ensure!(sb.netns().inode() == inode, "bound a different namespace");
            ensure!(
                sb.netlink().link_by_name("lo").await?.up,
                "lo not brought up"
            );
            // The bind mount keeps the namespace once the thread that made it is gone.
            drop(done_tx);
            helper.join().map_err(|_| anyhow!("helper panicked"))?;
            drop(sb);
            let sb = host.open_sandbox(&key).await?;
            ensure!(sb.netns().inode() == inode);
            sb.destroy()?;

            let err = host
                .sandbox_for_external_key(
                    Path::new("/proc/self/task/999999999/ns/net"),
                    &host.key_for("gone"),
                )
                .await
                .expect_err("missing source");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            ensure!(!host.key_for("gone").exists(), "key made for a failed bind");
            Ok(())
        },
    );
}

#[test]
fn moved_interface_gets_its_settings_and_the_listing_shows_them() {
    kernel_test(
        "moved_interface_gets_its_settings_and_the_listing_shows_them",
        |host| async move {
            let sb = new_sandbox(&host, "settings").await?;
            host.netlink().create_veth("vx0", "vx1", None).await?;
            let mac: MacAddr = "02:42:0a:00:00:02".parse()?;
            let opts = InterfaceOptions {
                mac: Some(mac),
                mtu: Some(1400),
                addresses: vec![net("10.0.0.2/24"), net("fd00:1::2/64")],
                link_local_addresses: vec![net("169.254.10.2/16")],
                routes: vec![net("10.99.0.0/16")],
                ..Default::default()
            };
            let link = sb.add_interface("vx1", "eth", &opts).await?;
            ensure!(
                link.name == "eth0" && link.up && link.mtu == 1400 && link.mac == Some(mac),
                "{link:?}"
            );
            ensure!(
                host.netlink()
                    .link_by_name("vx1")
                    .await
                    .is_err_and(|e| e.is_not_found())
            );

            let ifaces = sb.interfaces().await?;
            ensure!(ifaces.len() == 1, "{ifaces:?}");
            let eth0 = &ifaces[0];
            ensure!(eth0.link == link && eth0.master.is_none());
            for want in ["10.0.0.2/24", "fd00:1::2/64", "169.254.10.2/16"] {
                ensure!(
                    eth0.addresses.iter().any(|a| a.net == net(want)),
                    "{want} missing: {eth0:?}"
                );
            }
            let v6 = eth0
                .addresses
                .iter()
                .find(|a| a.net == net("fd00:1::2/64"))
                .expect("listed");
            ensure!(v6.nodad, "IPv6 address added without IFA_F_NODAD");
            let v4 = eth0
                .addresses
                .iter()
                .find(|a| a.net == net("10.0.0.2/24"))
                .expect("listed");
            ensure!(!v4.nodad);

            let routes = sb.routes().await?;
            ensure!(
                routes.iter().any(|r| r.destination == net("10.99.0.0/16")
                    && r.link_scope
                    && r.interface.as_deref() == Some("eth0")),
                "{routes:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn ipv6_is_enabled_on_an_interface_that_has_it_disabled() {
    kernel_test(
        "ipv6_is_enabled_on_an_interface_that_has_it_disabled",
        |host| async move {
            let sb = new_sandbox(&host, "v6off").await?;
            // New links in the sandbox start with IPv6 disabled.
            sb.set_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
                .await?;
            let pair = sb
                .create_veth("v6h", "eth", &addrs(&["fd00:2::2/64"]))
                .await?;
            ensure!(sb.sysctl("net.ipv6.conf.eth0.disable_ipv6").await? == "0");
            let listed = sb.netlink().addresses(Some(pair.sandbox.index)).await?;
            ensure!(
                listed
                    .iter()
                    .any(|a| a.net == net("fd00:2::2/64") && a.nodad),
                "{listed:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn interfaces_take_the_lowest_free_index_of_their_prefix() {
    kernel_test(
        "interfaces_take_the_lowest_free_index_of_their_prefix",
        |host| async move {
            let sb = new_sandbox(&host, "names").await?;
            let a = sb
                .create_veth("na0", "eth", &InterfaceOptions::default())
                .await?;
            host.netlink().create_veth("nb0", "nb1", None).await?;
            let b = sb
                .add_interface("nb1", "eth", &InterfaceOptions::default())
                .await?;
            ensure!(a.sandbox.name == "eth0" && b.name == "eth1", "{a:?} {b:?}");
            let other = sb
                .create_veth("nc0", "vx", &InterfaceOptions::default())
                .await?;
            ensure!(other.sandbox.name == "vx0");
            sb.remove_interface("eth0").await?;
            let c = sb
                .create_veth("nd0", "eth", &InterfaceOptions::default())
                .await?;
            ensure!(c.sandbox.name == "eth0", "{c:?}");
            Ok(())
        },
    );
}

#[test]
fn removing_a_moved_interface_gives_it_back_to_the_host_under_its_name() {
    kernel_test(
        "removing_a_moved_interface_gives_it_back_to_the_host_under_its_name",
        |host| async move {
            let sb = new_sandbox(&host, "moveout").await?;
            host.netlink().create_veth("mo0", "mo1", None).await?;
            sb.add_interface("mo1", "eth", &addrs(&["10.3.0.2/24"]))
                .await?;
            sb.remove_interface("eth0").await?;
            let back = host.netlink().link_by_name("mo1").await?;
            ensure!(!back.up, "{back:?}");
            ensure!(host.netlink().addresses(Some(back.index)).await?.is_empty());
            ensure!(sb.interfaces().await?.is_empty());
            let err = sb
                .remove_interface("eth0")
                .await
                .expect_err("second removal");
            ensure!(err.kind() == ErrorKind::BadRequest, "{err}");
            Ok(())
        },
    );
}

#[test]
fn failing_address_step_sends_the_interface_back_as_it_was() {
    kernel_test(
        "failing_address_step_sends_the_interface_back_as_it_was",
        |host| async move {
            let sb = new_sandbox(&host, "rollback").await?;
            sb.create_veth("rb0", "eth", &addrs(&["10.4.0.2/24"]))
                .await?;
            let hostlink = host.netlink().create_veth("rb1", "rb2", None).await?;
            let peer = host.netlink().link_by_name("rb2").await?;
            host.netlink().set_up(&peer, true).await?;
            let opts = InterfaceOptions {
                mac: Some("02:42:0a:04:00:09".parse()?),
                mtu: Some(1300),
                addresses: vec![net("10.5.0.2/24"), net("10.4.0.3/24")],
                ..Default::default()
            };
            let err = sb
                .add_interface("rb2", "eth", &opts)
                .await
                .expect_err("conflicting address");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            ensure!(err.to_string().contains("10.4.0.3/24"), "{err}");
            // Back in the host, under its name, with its MAC, MTU and up state.
            let back = host.netlink().link_by_name("rb2").await?;
            ensure!(
                back.mac == peer.mac && back.mtu == peer.mtu && back.up,
                "{back:?} vs {peer:?}"
            );
            let names: Vec<String> = sb
                .interfaces()
                .await?
                .into_iter()
                .map(|i| i.link.name)
                .collect();
            ensure!(names == ["eth0"], "{names:?}");
            ensure!(host.netlink().link_by_name(&hostlink.name).await.is_ok());

            // A veth made for the sandbox is deleted, host end included, when a step fails.
            let err = sb
                .create_veth("rb3", "eth", &addrs(&["10.6.0.2/24", "10.6.0.2/24"]))
                .await
                .expect_err("duplicate address");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            ensure!(err.to_string().contains("File exists"), "{err}");
            ensure!(
                host.netlink()
                    .link_by_name("rb3")
                    .await
                    .is_err_and(|e| e.is_not_found())
            );
            ensure!(sb.interfaces().await?.len() == 1);
            Ok(())
        },
    );
}

#[test]
fn adding_several_addresses_removes_those_added_when_one_fails() {
    kernel_test(
        "adding_several_addresses_removes_those_added_when_one_fails",
        |host| async move {
            let sb = new_sandbox(&host, "addrs").await?;
            let pair = sb
                .create_veth("ad0", "eth", &addrs(&["10.7.0.2/24"]))
                .await?;
            let err = sb
                .add_addresses("eth0", &[net("10.8.0.2/24"), net("10.7.0.2/24")])
                .await
                .expect_err("existing address");
            let key = sb.key().display().to_string();
            ensure!(
                err.to_string()
                    == format!(
                        "add address 10.7.0.2/24 to eth0 in sandbox {key}: File exists (os error 17)"
                    ),
                "{err}"
            );
            let listed: Vec<IpNet> = sb
                .netlink()
                .addresses(Some(pair.sandbox.index))
                .await?
                .into_iter()
                .filter(|a| a.net.addr().is_ipv4())
                .map(|a| a.net)
                .collect();
            ensure!(listed == [net("10.7.0.2/24")], "{listed:?}");
            sb.add_addresses("eth0", &[net("10.8.0.2/24"), net("fd00:8::2/64")])
                .await?;
            sb.remove_address("eth0", net("10.8.0.2/24")).await?;
            let err = sb
                .remove_address("eth0", net("10.8.0.2/24"))
                .await
                .expect_err("gone");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            Ok(())
        },
    );
}

#[test]
fn default_gateways_for_ipv4_and_ipv6_go_through_the_interface_that_reaches_them() {
    kernel_test(
        "default_gateways_for_ipv4_and_ipv6_go_through_the_interface_that_reaches_them",
        |host| async move {
            let sb = new_sandbox(&host, "gateways").await?;
            sb.create_veth("gw0", "eth", &addrs(&["10.9.0.2/24", "fd00:9::2/64"]))
                .await?;
            sb.create_veth("gw1", "eth", &addrs(&["10.10.0.2/24"]))
                .await?;
            sb.set_gateway(ip("10.10.0.1")).await?;
            sb.set_gateway(ip("fd00:9::1")).await?;
            ensure!(sb.gateway(false).await? == Some(ip("10.10.0.1")));
            ensure!(sb.gateway(true).await? == Some(ip("fd00:9::1")));
            let routes = sb.routes().await?;
            let v4 = routes
                .iter()
                .find(|r| r.is_default() && r.destination.addr().is_ipv4())
                .expect("v4 default");
            ensure!(v4.interface.as_deref() == Some("eth1"), "{v4:?}");
            let v6 = routes
                .iter()
                .find(|r| r.is_default() && r.destination.addr().is_ipv6())
                .expect("v6 default");
            ensure!(v6.interface.as_deref() == Some("eth0"), "{v6:?}");

            let err = sb
                .set_gateway(ip("10.9.0.1"))
                .await
                .expect_err("second default");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            sb.unset_gateway(ip("10.10.0.1")).await?;
            sb.unset_gateway(ip("fd00:9::1")).await?;
            ensure!(sb.gateway(false).await?.is_none() && sb.gateway(true).await?.is_none());
            let err = sb
                .unset_gateway(ip("10.10.0.1"))
                .await
                .expect_err("no default left");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            Ok(())
        },
    );
}

#[test]
fn gateway_no_interface_reaches_is_an_error_naming_it() {
    kernel_test(
        "gateway_no_interface_reaches_is_an_error_naming_it",
        |host| async move {
            let sb = new_sandbox(&host, "unreach").await?;
            sb.create_veth("un0", "eth", &addrs(&["10.11.0.2/24"]))
                .await?;
            for gw in ["192.0.2.1", "2001:db8::1"] {
                let err = sb
                    .set_gateway(ip(gw))
                    .await
                    .expect_err("unreachable gateway");
                ensure!(err.kind() == ErrorKind::NotFound, "{err}");
                ensure!(
                    err.to_string()
                        .contains(&format!("route for the gateway {gw}")),
                    "{err}"
                );
            }
            // A gateway reachable only through another gateway is not directly reachable either.
            sb.set_gateway(ip("10.11.0.1")).await?;
            let err = sb
                .add_static_route(&StaticRoute {
                    destination: net("10.50.0.0/16"),
                    next_hop: NextHop::Gateway(ip("198.51.100.1")),
                })
                .await
                .expect_err("indirect next hop");
            ensure!(err.to_string().contains("198.51.100.1"), "{err}");
            ensure!(sb.gateway(false).await? == Some(ip("10.11.0.1")));
            Ok(())
        },
    );
}

#[test]
fn static_routes_through_an_interface_or_a_next_hop_are_added_and_removed() {
    kernel_test(
        "static_routes_through_an_interface_or_a_next_hop_are_added_and_removed",
        |host| async move {
            let sb = new_sandbox(&host, "static").await?;
            sb.create_veth("st0", "eth", &addrs(&["10.12.0.2/24", "fd00:12::2/64"]))
                .await?;
            let connected = StaticRoute {
                destination: net("10.60.0.0/16"),
                next_hop: NextHop::Interface("eth0".into()),
            };
            let via = StaticRoute {
                destination: net("10.61.0.0/16"),
                next_hop: NextHop::Gateway(ip("10.12.0.1")),
            };
            let via6 = StaticRoute {
                destination: net("fd00:61::/48"),
                next_hop: NextHop::Gateway(ip("fd00:12::1")),
            };
            for r in [&connected, &via, &via6] {
                sb.add_static_route(r).await?;
            }
            let routes = sb.routes().await?;
            ensure!(routes.iter().any(|r| r.destination == net("10.60.0.0/16")
                && r.link_scope
                && r.gateway.is_none()));
            ensure!(routes.iter().any(|r| r.destination == net("10.61.0.0/16")
                && r.gateway == Some(ip("10.12.0.1"))
                && r.interface.as_deref() == Some("eth0")));
            ensure!(routes.iter().any(
                |r| r.destination == net("fd00:61::/48") && r.gateway == Some(ip("fd00:12::1"))
            ));
            let err = sb
                .add_static_route(&via)
                .await
                .expect_err("duplicate route");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            let err = sb
                .add_static_route(&StaticRoute {
                    destination: net("10.62.0.0/16"),
                    next_hop: NextHop::Interface("eth9".into()),
                })
                .await
                .expect_err("unknown interface");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");

            for r in [&connected, &via, &via6] {
                sb.remove_static_route(r).await?;
            }
            let routes = sb.routes().await?;
            ensure!(!routes.iter().any(|r| {
                [
                    net("10.60.0.0/16"),
                    net("10.61.0.0/16"),
                    net("fd00:61::/48"),
                ]
                .contains(&r.destination)
            }));
            let err = sb
                .remove_static_route(&via)
                .await
                .expect_err("already removed");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            Ok(())
        },
    );
}

#[test]
fn neighbours_are_added_once_replaced_with_force_and_deleted_once() {
    kernel_test(
        "neighbours_are_added_once_replaced_with_force_and_deleted_once",
        |host| async move {
            let sb = new_sandbox(&host, "neigh").await?;
            sb.create_veth("ne0", "eth", &addrs(&["10.13.0.2/24", "fd00:13::2/64"]))
                .await?;
            let mac: MacAddr = "02:42:0a:0d:00:05".parse()?;
            let other: MacAddr = "02:42:0a:0d:00:06".parse()?;
            for addr in ["10.13.0.5", "fd00:13::5"] {
                let n = Neighbour::Ip { ip: ip(addr), mac };
                sb.add_neighbour("eth0", &n, false).await?;
                ensure!(
                    sb.neighbours()
                        .await?
                        .contains(&("eth0".to_string(), n.clone()))
                );
                let err = sb
                    .add_neighbour("eth0", &n, false)
                    .await
                    .expect_err("duplicate");
                ensure!(err.kind() == ErrorKind::Conflict, "{err}");
                let replaced = Neighbour::Ip {
                    ip: ip(addr),
                    mac: other,
                };
                sb.add_neighbour("eth0", &replaced, true).await?;
                let listed = sb.neighbours().await?;
                ensure!(
                    listed.contains(&("eth0".to_string(), replaced.clone()))
                        && !listed.contains(&("eth0".to_string(), n))
                );
                sb.delete_neighbour("eth0", &replaced).await?;
                ensure!(
                    !sb.neighbours()
                        .await?
                        .contains(&("eth0".to_string(), replaced.clone()))
                );
                let err = sb
                    .delete_neighbour("eth0", &replaced)
                    .await
                    .expect_err("unknown");
                ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            }

            // Forwarding entries on the device itself (NTF_SELF), as the overlay driver adds them.
            sb.create_bridge("br0", &InterfaceOptions::default())
                .await?;
            let fdb = Neighbour::Fdb { mac, dst: None };
            sb.add_neighbour("br0", &fdb, false).await?;
            ensure!(
                sb.neighbours()
                    .await?
                    .contains(&("br0".to_string(), fdb.clone()))
            );
            let err = sb
                .add_neighbour("br0", &fdb, false)
                .await
                .expect_err("duplicate fdb");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            sb.delete_neighbour("br0", &fdb).await?;
            ensure!(
                !sb.neighbours()
                    .await?
                    .contains(&("br0".to_string(), fdb.clone()))
            );
            let err = sb
                .delete_neighbour("br0", &fdb)
                .await
                .expect_err("unknown fdb");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            Ok(())
        },
    );
}

#[test]
fn sysctls_are_set_inside_the_sandbox_only_and_undone_on_failure() {
    kernel_test(
        "sysctls_are_set_inside_the_sandbox_only_and_undone_on_failure",
        |host| async move {
            let sb = new_sandbox(&host, "sysctl").await?;
            let outside = || host.netns().run_in(|| sysctl::read("net.ipv4.ip_forward"));
            ensure!(outside().await?? == "0");
            sb.set_sysctl("net.ipv4.ip_forward", "1").await?;
            ensure!(sb.sysctl("net.ipv4.ip_forward").await? == "1");
            ensure!(
                outside().await?? == "0",
                "sysctl leaked to the host namespace"
            );
            // Setting the same value again is a no-op.
            sb.set_sysctl("net.ipv4.ip_forward", "1").await?;

            let err = sb
                .set_sysctls(&[
                    ("net.ipv4.conf.all.arp_notify", "1"),
                    ("net.ipv4.no_such_knob", "1"),
                ])
                .await
                .expect_err("missing key");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            ensure!(
                sb.sysctl("net.ipv4.conf.all.arp_notify").await? == "0",
                "first sysctl not undone"
            );
            let err = sb
                .set_sysctl("kernel.hostname", "x")
                .await
                .expect_err("non-net key");
            ensure!(err.kind() == ErrorKind::BadRequest, "{err}");
            Ok(())
        },
    );
}

#[test]
fn two_sandboxes_joined_by_a_veth_exchange_tcp_data() {
    kernel_test(
        "two_sandboxes_joined_by_a_veth_exchange_tcp_data",
        |host| async move {
            let a = new_sandbox(&host, "tcp-a").await?;
            let b = new_sandbox(&host, "tcp-b").await?;
            host.netlink().create_veth("ta", "tb", None).await?;
            a.add_interface("ta", "eth", &addrs(&["10.14.0.1/24", "fd00:14::1/64"]))
                .await?;
            b.add_interface("tb", "eth", &addrs(&["10.14.0.2/24", "fd00:14::2/64"]))
                .await?;
            tcp_exchange(&a, &b, ip("10.14.0.1")).await?;
            tcp_exchange(&b, &a, ip("fd00:14::2")).await?;
            // The host namespace has no route to the sandboxes.
            let host_ns = host.netns().clone();
            let from_host = host_ns.run_in(|| TcpStream::connect("10.14.0.1:9")).await?;
            ensure!(from_host.is_err(), "the host reached into a sandbox");
            Ok(())
        },
    );
}

#[test]
fn default_route_through_a_forwarding_router_reaches_a_server_beyond_it() {
    kernel_test(
        "default_route_through_a_forwarding_router_reaches_a_server_beyond_it",
        |host| async move {
            let client = new_sandbox(&host, "client").await?;
            let router = new_sandbox(&host, "router").await?;
            let server = new_sandbox(&host, "server").await?;
            client
                .create_veth("cr", "eth", &addrs(&["10.15.1.2/24"]))
                .await?;
            router
                .add_interface("cr", "eth", &addrs(&["10.15.1.1/24"]))
                .await?;
            router
                .create_veth("rs", "eth", &addrs(&["10.15.2.1/24"]))
                .await?;
            server
                .add_interface("rs", "eth", &addrs(&["10.15.2.2/24"]))
                .await?;
            router.set_sysctl("net.ipv4.ip_forward", "1").await?;
            client.set_gateway(ip("10.15.1.1")).await?;
            server.set_gateway(ip("10.15.2.1")).await?;
            tcp_exchange(&server, &client, ip("10.15.2.2")).await?;
            Ok(())
        },
    );
}

#[test]
fn many_sandboxes_are_worked_on_concurrently_from_one_runtime() {
    kernel_test(
        "many_sandboxes_are_worked_on_concurrently_from_one_runtime",
        |host| async move {
            let work = (0..6u8).map(|i| {
                let host = host.clone();
                tokio::spawn(async move {
                    let sb = host
                        .create_sandbox(&host.key_for(&format!("conc{i}")))
                        .await?;
                    sb.create_veth(
                        &format!("cc{i}"),
                        "eth",
                        &addrs(&[&format!("10.16.{i}.2/24")]),
                    )
                    .await?;
                    sb.set_gateway(format!("10.16.{i}.1").parse()?).await?;
                    sb.set_sysctl("net.ipv4.conf.all.arp_notify", "1").await?;
                    anyhow::Ok(sb)
                })
            });
            let sandboxes = futures::future::try_join_all(work).await?;
            for (i, sb) in sandboxes.into_iter().enumerate() {
                let sb = sb?;
                let ifaces = sb.interfaces().await?;
                ensure!(
                    ifaces.len() == 1
                        && ifaces[0]
                            .addresses
                            .iter()
                            .any(|a| a.net == net(&format!("10.16.{i}.2/24")))
                );
                ensure!(sb.gateway(false).await? == Some(format!("10.16.{i}.1").parse()?));
                ensure!(sb.sysctl("net.ipv4.conf.all.arp_notify").await? == "1");
                sb.destroy()?;
            }
            Ok(())
        },
    );
}

#[test]
fn host_handle_creates_bridges_and_veths_and_enslaves_them() {
    kernel_test(
        "host_handle_creates_bridges_and_veths_and_enslaves_them",
        |host| async move {
            let nl = host.netlink();
            let br = nl.create_bridge("hb0").await?;
            let veth = nl.create_veth("hv0", "hv1", None).await?;
            nl.set_master(&veth, &br).await?;
            nl.add_address(&br, net("10.17.0.1/24"), false).await?;
            nl.set_up(&br, true).await?;
            let veth = nl.link_by_name("hv0").await?;
            ensure!(veth.master == Some(br.index) && veth.kind.as_deref() == Some("veth"));
            ensure!(nl.link_by_name("hb0").await?.kind.as_deref() == Some("bridge"));
            ensure!(
                nl.addresses(Some(br.index))
                    .await?
                    .iter()
                    .any(|a| a.net == net("10.17.0.1/24"))
            );
            let err = nl.create_bridge("hb0").await.expect_err("duplicate bridge");
            ensure!(err.kind() == ErrorKind::Conflict, "{err}");
            nl.set_nomaster(&veth).await?;
            ensure!(nl.link_by_name("hv0").await?.master.is_none());
            nl.delete_link(&veth).await?;
            ensure!(
                nl.link_by_name("hv1")
                    .await
                    .is_err_and(|e| e.is_not_found())
            );
            let err: Error = nl.link_by_name("nope0").await.expect_err("missing");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            Ok(())
        },
    );
}

#[test]
fn interface_enslaved_to_a_sandbox_bridge_lists_its_master() {
    kernel_test(
        "interface_enslaved_to_a_sandbox_bridge_lists_its_master",
        |host| async move {
            let sb = new_sandbox(&host, "master").await?;
            let br = sb.create_bridge("br0", &addrs(&["10.18.0.1/24"])).await?;
            ensure!(br.up && br.kind.as_deref() == Some("bridge"), "{br:?}");
            let opts = InterfaceOptions {
                master: Some("br0".into()),
                ..Default::default()
            };
            let pair = sb.create_veth("ms0", "veth", &opts).await?;
            ensure!(pair.sandbox.name == "veth0" && pair.sandbox.master == Some(br.index));
            let ifaces = sb.interfaces().await?;
            let port = ifaces
                .iter()
                .find(|i| i.link.name == "veth0")
                .expect("listed");
            ensure!(
                port.master.as_deref() == Some("br0") && port.link.up,
                "{port:?}"
            );
            // A master that is not in the sandbox fails the whole step, and the pair is gone.
            let opts = InterfaceOptions {
                master: Some("br9".into()),
                ..Default::default()
            };
            let err = sb
                .create_veth("ms1", "veth", &opts)
                .await
                .expect_err("unknown master");
            ensure!(err.kind() == ErrorKind::NotFound, "{err}");
            ensure!(
                host.netlink()
                    .link_by_name("ms1")
                    .await
                    .is_err_and(|e| e.is_not_found())
            );
            sb.remove_interface("veth0").await?;
            sb.remove_interface("br0").await?;
            ensure!(sb.interfaces().await?.is_empty());
            Ok(())
        },
    );
}

#[test]
fn many_sandboxes_reopen_at_once_each_in_its_own_namespace() {
    kernel_test(
        "many_sandboxes_reopen_at_once_each_in_its_own_namespace",
        |host| async move {
            let mut keys = Vec::new();
            for i in 0..3 {
                let key = host.key_for(&format!("many{i}"));
                let sb = host.create_sandbox(&key).await?;
                sb.create_veth(
                    &format!("vm{i}"),
                    "eth",
                    &addrs(&[&format!("10.21.{i}.2/24")]),
                )
                .await?;
                keys.push(key);
            }
            // A key with no namespace on it fails alone, in its place.
            let missing = host.key_for("missing");
            keys.insert(1, missing.clone());

            let opened = host.open_sandboxes(&keys).await;
            ensure!(opened.len() == 4, "{} results", opened.len());
            let mut seen = Vec::new();
            for (key, sb) in keys.iter().zip(opened) {
                if *key == missing {
                    let err = sb.err().context("a missing key opened")?;
                    ensure!(err.kind() == ErrorKind::NotFound, "{err}");
                    continue;
                }
                let sb = sb?;
                ensure!(sb.key() == key);
                ensure!(sb.netns().inode() == netns::Netns::open(key)?.inode());
                // Its handle talks to its own namespace.
                let ifaces = sb.interfaces().await?;
                ensure!(
                    ifaces.len() == 1 && ifaces[0].link.name == "eth0",
                    "{ifaces:?}"
                );
                let addr = ifaces[0].addresses.iter().find(|a| a.net.addr().is_ipv4());
                seen.push(addr.map(|a| a.net.to_string()).context("no address")?);
            }
            ensure!(
                seen == ["10.21.0.2/24", "10.21.1.2/24", "10.21.2.2/24"],
                "{seen:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn bridge_ports_are_listed_with_their_bridge_and_state() {
    kernel_test(
        "bridge_ports_are_listed_with_their_bridge_and_state",
        |host| async move {
            let nl = host.netlink();
            let bridge = nl.create_bridge("brports").await?;
            let up = nl.create_veth("vport0", "vpeer0", None).await?;
            nl.set_master(&up, &bridge).await?;
            nl.set_up(&up, true).await?;
            let down = nl.create_veth("vport1", "vpeer1", None).await?;
            nl.set_master(&down, &bridge).await?;
            // On no bridge: not a port.
            nl.create_veth("vloose", "vpeer2", None).await?;

            let mut ports = nl.bridge_ports().await?;
            ports.sort_by(|a, b| a.name.cmp(&b.name));
            let seen: Vec<(&str, Option<u32>, bool)> = ports
                .iter()
                .map(|p| (p.name.as_str(), p.master, p.up))
                .collect();
            ensure!(
                seen == [
                    ("vport0", Some(bridge.index), true),
                    ("vport1", Some(bridge.index), false)
                ],
                "{ports:?}"
            );
            ensure!(ports.iter().all(|p| p.index != 0 && p.kind.is_none()));

            // The host's lean reader lists the same ports, with the same details.
            let mut lean = host.bridge_ports().await?;
            lean.sort_by(|a, b| a.name.cmp(&b.name));
            ensure!(lean == ports, "{lean:?} != {ports:?}");
            ensure!(
                lean.iter().all(|p| p.mac.is_some() && p.mtu > 0),
                "{lean:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn addresses_of_a_family_lists_only_that_family() {
    kernel_test(
        "addresses_of_a_family_lists_only_that_family",
        |host| async move {
            let nl = host.netlink();
            let br = nl.create_bridge("fam0").await?;
            nl.add_address(&br, net("10.12.0.1/24"), false).await?;
            nl.add_address(&br, net("fd00:12::1/64"), true).await?;
            let v4 = nl.addresses_of_family(false).await?;
            let v6 = nl.addresses_of_family(true).await?;
            ensure!(v4.iter().all(|a| a.net.addr().is_ipv4()), "{v4:?}");
            ensure!(v6.iter().all(|a| a.net.addr().is_ipv6()), "{v6:?}");
            ensure!(
                v4.iter()
                    .any(|a| a.index == br.index && a.net == net("10.12.0.1/24")),
                "{v4:?}"
            );
            ensure!(
                v6.iter()
                    .any(|a| a.index == br.index && a.net == net("fd00:12::1/64")),
                "{v6:?}"
            );
            // Together they are what the unfiltered dump lists.
            let mut all = nl.addresses(None).await?;
            let mut both: Vec<_> = v4.into_iter().chain(v6).collect();
            let key = |a: &libnetwork_osl::Address| (a.index, a.net.to_string());
            all.sort_by_key(key);
            both.sort_by_key(key);
            ensure!(all == both, "{all:?} != {both:?}");
            Ok(())
        },
    );
}
