//! Kernel tests of stacked and virtual links (macvlan, ipvlan, 802.1Q, dummy). Each runs in
//! its own network and mount namespace; the "physical" parent is one end of a veth pair in the
//! test's host namespace. Kinds this kernel lacks (it may have no ipvlan, vlan or dummy) make
//! their test print the kernel's refusal and skip; any other failure fails the test.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};

use anyhow::{Context, Result, anyhow, ensure};
use ipnet::IpNet;
use libnetwork_osl::link_kinds::is_unsupported_link_type;
use libnetwork_osl::{
    Error, Host, InterfaceOptions, IpvlanFlag, IpvlanMode, Link, LinkKind, MacAddr, MacvlanMode,
    Sandbox, netns,
};
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

/// Runs `body` in a fresh host namespace with a tokio runtime and a run directory.
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

/// Prints why `test` is skipped: the kernel refused the link type.
fn skip(test: &str, refusal: &Error) {
    eprintln!("skipped {test}: the kernel refused the link type: {refusal}");
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

/// A veth pair in the host namespace, both ends up; returns the end used as the parent.
async fn parent(host: &Host, name: &str, peer: &str) -> Result<Link> {
    let nl = host.netlink();
    let link = nl.create_veth(name, peer, None).await?;
    nl.set_up(&link, true).await?;
    nl.set_up(&nl.link_by_name(peer).await?, true).await?;
    Ok(nl.link_by_name(name).await?)
}

async fn sandbox(host: &Host, id: &str) -> Result<Sandbox> {
    Ok(host.create_sandbox(&host.key_for(id)).await?)
}

/// Binds a listener inside `server`, connects from inside `client` and checks an echo.
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
fn macvlans_born_inside_two_sandboxes_on_one_parent_exchange_tcp_data() {
    kernel_test(
        "macvlans_born_inside_two_sandboxes_on_one_parent_exchange_tcp_data",
        |host| async move {
            let parent = parent(&host, "phys0", "wire0").await?;
            let kind = LinkKind::Macvlan {
                parent: parent.index,
                mode: MacvlanMode::Bridge,
            };
            let a = sandbox(&host, "mva").await?;
            let b = sandbox(&host, "mvb").await?;
            let mac = MacAddr([0x02, 0x42, 10, 31, 0, 2]);
            let opts = InterfaceOptions {
                mac: Some(mac),
                mtu: Some(1400),
                addresses: vec![net("10.31.0.2/24")],
                ..Default::default()
            };
            let link = a.create_interface(&kind, "eth", &opts).await?;
            ensure!(link.name == "eth0" && link.up, "{link:?}");
            ensure!(link.mac == Some(mac) && link.mtu == 1400, "{link:?}");
            let (_, read) = a.netlink().link_kind_by_name("eth0").await?;
            ensure!(read == Some(kind), "kind read back: {read:?}");
            // Born inside: the host has no such link.
            ensure!(
                host.netlink()
                    .link_by_name("eth0")
                    .await
                    .is_err_and(|e| e.is_not_found())
            );

            let opts_b = InterfaceOptions {
                addresses: vec![net("10.31.0.3/24")],
                ..Default::default()
            };
            b.create_interface(&kind, "eth", &opts_b).await?;
            tcp_exchange(&a, &b, "10.31.0.2".parse()?).await?;

            a.remove_interface("eth0").await?;
            ensure!(
                a.netlink()
                    .link_by_name("eth0")
                    .await
                    .is_err_and(|e| e.is_not_found())
            );
            Ok(())
        },
    );
}

#[test]
fn interface_that_cannot_be_configured_is_deleted() {
    kernel_test(
        "interface_that_cannot_be_configured_is_deleted",
        |host| async move {
            let parent = parent(&host, "phys0", "wire0").await?;
            let sb = sandbox(&host, "bad").await?;
            let kind = LinkKind::Macvlan {
                parent: parent.index,
                mode: MacvlanMode::Private,
            };
            // A macvlan cannot have a larger MTU than its parent.
            let opts = InterfaceOptions {
                mtu: Some(parent.mtu + 1000),
                ..Default::default()
            };
            let err = sb
                .create_interface(&kind, "eth", &opts)
                .await
                .expect_err("MTU above the parent's");
            ensure!(err.kind() == ErrorKind::BadRequest, "{err}");
            let links = sb.netlink().links().await?;
            ensure!(
                links.iter().all(|l| l.name == "lo"),
                "left behind: {links:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn missing_parent_is_not_found() {
    kernel_test("missing_parent_is_not_found", |host| async move {
        let sb = sandbox(&host, "orphan").await?;
        let kind = LinkKind::Macvlan {
            parent: 999,
            mode: MacvlanMode::Bridge,
        };
        let err = sb
            .create_interface(&kind, "eth", &InterfaceOptions::default())
            .await
            .expect_err("no parent 999");
        ensure!(err.kind() == ErrorKind::NotFound, "{err}");
        Ok(())
    });
}

#[test]
fn ipvlan_is_born_inside_a_sandbox_with_its_mode_and_flag() {
    const NAME: &str = "ipvlan_is_born_inside_a_sandbox_with_its_mode_and_flag";
    kernel_test(NAME, |host| async move {
        let parent = parent(&host, "phys0", "wire0").await?;
        let sb = sandbox(&host, "ipv").await?;
        let kind = LinkKind::Ipvlan {
            parent: parent.index,
            mode: IpvlanMode::L3,
            flag: IpvlanFlag::Private,
        };
        let opts = InterfaceOptions {
            addresses: vec![net("10.32.0.2/24")],
            ..Default::default()
        };
        let link = match sb.create_interface(&kind, "eth", &opts).await {
            Err(e) if is_unsupported_link_type(&e) => {
                // Nothing is left behind by the refusal.
                let links = sb.netlink().links().await?;
                ensure!(links.iter().all(|l| l.name == "lo"), "left: {links:?}");
                skip(NAME, &e);
                return Ok(());
            }
            other => other?,
        };
        ensure!(link.name == "eth0" && link.up);
        let (_, read) = sb.netlink().link_kind_by_name("eth0").await?;
        ensure!(read == Some(kind), "kind read back: {read:?}");
        Ok(())
    });
}

#[test]
fn vlan_sub_interface_gets_its_id_and_parent() {
    const NAME: &str = "vlan_sub_interface_gets_its_id_and_parent";
    kernel_test(NAME, |host| async move {
        let parent = parent(&host, "phys0", "wire0").await?;
        let nl = host.netlink();
        let err = nl
            .create_vlan("phys0.0", &parent, 0)
            .await
            .expect_err("vlan id 0");
        ensure!(err.kind() == ErrorKind::BadRequest, "{err}");
        let vlan = match nl.create_vlan("phys0.10", &parent, 10).await {
            Err(e) if is_unsupported_link_type(&e) => {
                ensure!(nl.link_by_name("phys0.10").await.is_err());
                skip(NAME, &e);
                return Ok(());
            }
            other => other?,
        };
        ensure!(vlan.kind.as_deref() == Some("vlan"));
        let (_, read) = nl.link_kind_by_name("phys0.10").await?;
        ensure!(
            read == Some(LinkKind::Vlan {
                parent: parent.index,
                id: 10
            }),
            "{read:?}"
        );
        Ok(())
    });
}

#[test]
fn dummy_link_is_created_with_its_kind() {
    const NAME: &str = "dummy_link_is_created_with_its_kind";
    kernel_test(NAME, |host| async move {
        let nl = host.netlink();
        let dummy = match nl.create_dummy("dm-test").await {
            Err(e) if is_unsupported_link_type(&e) => {
                skip(NAME, &e);
                return Ok(());
            }
            other => other?,
        };
        ensure!(dummy.kind.as_deref() == Some("dummy"));
        let (_, read) = nl.link_kind_by_name("dm-test").await?;
        ensure!(read == Some(LinkKind::Dummy));
        Ok(())
    });
}

#[test]
fn kinds_of_other_links_read_back_as_none() {
    kernel_test(
        "kinds_of_other_links_read_back_as_none",
        |host| async move {
            let nl = host.netlink();
            parent(&host, "v0", "v1").await?;
            let (link, kind) = nl.link_kind_by_name("v0").await?;
            ensure!(link.name == "v0" && kind.is_none(), "{kind:?}");
            let err = nl.link_kind_by_name("nope0").await.expect_err("missing");
            ensure!(err.is_not_found(), "{err}");
            Ok(())
        },
    );
}
