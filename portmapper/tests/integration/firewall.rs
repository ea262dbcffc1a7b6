//! With the firewall: a container-like setup (a sandbox with a veth on a bridge) in the test's
//! private namespace, which plays the host.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use libnetwork_firewall::{Firewall, FirewallConfig, NetworkRules};
use libnetwork_osl::{Host, InterfaceOptions, Sandbox};
use libnetwork_portmapper::{Error, PortMapper, PortMapperConfig};
use libnetwork_types::{ErrorKind, PortBinding};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{LOCALHOST, in_netns, tcp, tcp_port_is_free};

const BRIDGE: &str = "br-pm";
const GATEWAY: &str = "172.30.0.1";
const CONTAINER: &str = "172.30.0.2";

/// A bridge with a container on it, a server in the container, and the firewall.
struct Setup {
    firewall: Arc<Firewall>,
    // Kept so that the run directory and the sandbox outlive the test body.
    _run_dir: tempfile::TempDir,
    _sandbox: Sandbox,
}

/// Builds the setup; the container answers every connection to port 80 with the address it saw
/// the connection come from.
async fn setup(hairpin: bool) -> anyhow::Result<Setup> {
    let run_dir = tempfile::tempdir()?;
    let host = Host::new(run_dir.path()).await?;
    let bridge = host.netlink().create_bridge(BRIDGE).await?;
    host.netlink()
        .add_address(&bridge, format!("{GATEWAY}/24").parse()?, false)
        .await?;
    host.netlink().set_up(&bridge, true).await?;
    let sandbox = host.create_sandbox(&host.key_for("c1")).await?;
    let opts = InterfaceOptions {
        addresses: vec![format!("{CONTAINER}/24").parse()?],
        ..InterfaceOptions::default()
    };
    let pair = sandbox.create_veth("vpm0", "eth", &opts).await?;
    host.netlink().set_master(&pair.host, &bridge).await?;
    host.netlink().set_up(&pair.host, true).await?;
    sandbox.set_gateway(GATEWAY.parse()?).await?;

    let std_listener = sandbox
        .run_in(|| std::net::TcpListener::bind((CONTAINER, 80)))
        .await??;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    tokio::spawn(async move {
        while let Ok((mut conn, peer)) = listener.accept().await {
            let _ = conn.write_all(peer.to_string().as_bytes()).await;
        }
    });

    let firewall = tokio::task::spawn_blocking(move || {
        let firewall = Firewall::new(FirewallConfig::default())?;
        firewall.add_network(&NetworkRules {
            bridge: BRIDGE.into(),
            ipv4_subnet: "172.30.0.0/24".parse()?,
            ipv6_subnet: None,
            masquerade: true,
            snat_source: None,
            icc: true,
            internal: false,
            hairpin,
        })?;
        anyhow::Ok(firewall)
    })
    .await??;
    Ok(Setup {
        firewall: Arc::new(firewall),
        _run_dir: run_dir,
        _sandbox: sandbox,
    })
}

fn pm(userland_proxy: bool, firewall: &Arc<Firewall>) -> PortMapper {
    PortMapper::new(
        PortMapperConfig {
            userland_proxy,
            ..PortMapperConfig::default()
        },
        Some(Arc::clone(firewall)),
    )
}

fn container() -> IpAddr {
    CONTAINER.parse().expect("container address")
}

/// Connects to `to` and returns the local address and what the container says it saw.
async fn ask(to: SocketAddr) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let mut conn = TcpStream::connect(to)
        .await
        .with_context(|| format!("connect to {to}"))?;
    let local = conn.local_addr()?;
    let mut seen = String::new();
    conn.read_to_string(&mut seen).await?;
    Ok((
        local,
        seen.parse()
            .with_context(|| format!("answer {seen:?} from {to}"))?,
    ))
}

fn installed(firewall: &Firewall) -> usize {
    firewall.port_mappings().len()
}

#[test]
fn published_port_answers_through_the_proxy_and_through_dnat_until_unmapped() {
    in_netns(
        "published_port_answers_through_the_proxy_and_through_dnat_until_unmapped",
        || async {
            let s = setup(false).await?;
            let pm = pm(true, &s.firewall);
            // The IPv4 binding and an IPv6 host address in front of the IPv4-only container.
            let mut v6_front = tcp(80, 8080);
            v6_front.host_ip = Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            let published = pm
                .map(BRIDGE, container(), &[tcp(80, 8080), v6_front])
                .await?;
            // One DNAT rule: none across address families.
            assert_eq!(installed(&s.firewall), 1);

            // Loopback goes through the proxy, which connects from the bridge's address.
            let (_, seen) = ask(SocketAddr::new(LOCALHOST, 8080)).await?;
            assert_eq!(seen.ip(), GATEWAY.parse::<IpAddr>()?);
            let (_, seen) = ask(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 8080)).await?;
            assert_eq!(seen.ip(), GATEWAY.parse::<IpAddr>()?);
            // The host's bridge address is DNATed: the container sees the client's own address
            // and port (the proxy would connect from a port of its own).
            let (local, seen) = ask(SocketAddr::new(GATEWAY.parse()?, 8080)).await?;
            assert_eq!(seen, local);

            pm.unmap(&published).await?;
            assert_eq!(installed(&s.firewall), 0);
            assert_eq!(pm.allocated_ports(), 0);
            assert!(TcpStream::connect((LOCALHOST, 8080)).await.is_err());
            assert!(TcpStream::connect((GATEWAY, 8080)).await.is_err());
            Ok(())
        },
    );
}

#[test]
fn without_the_proxy_only_dnat_answers() {
    in_netns("without_the_proxy_only_dnat_answers", || async {
        let s = setup(true).await?;
        let pm = pm(false, &s.firewall);
        let published = pm.map(BRIDGE, container(), &[tcp(80, 8080)]).await?;
        let (local, seen) = ask(SocketAddr::new(GATEWAY.parse()?, 8080)).await?;
        assert_eq!(seen, local);
        // Loopback is not DNATed, and nothing listens there.
        assert!(TcpStream::connect((LOCALHOST, 8080)).await.is_err());
        pm.unmap(&published).await?;
        assert_eq!(installed(&s.firewall), 0);
        assert!(TcpStream::connect((GATEWAY, 8080)).await.is_err());
        Ok(())
    });
}

#[test]
fn host_range_is_one_dnat_rule_forwarding_port_to_port() {
    in_netns(
        "host_range_is_one_dnat_rule_forwarding_port_to_port",
        || async {
            let s = setup(true).await?;
            let pm = pm(false, &s.firewall);
            // Host 9000-9009 to container 71-80: only host port 9009 reaches the server on 80.
            let range = PortBinding {
                host_port_end: 9009,
                ..tcp(71, 9000)
            };
            pm.map(BRIDGE, container(), &[range]).await?;
            assert_eq!(installed(&s.firewall), 1);
            let (local, seen) = ask(SocketAddr::new(GATEWAY.parse()?, 9009)).await?;
            assert_eq!(seen, local);
            // Host port 9000 goes to container port 71, where nothing listens.
            assert!(TcpStream::connect((GATEWAY, 9000)).await.is_err());
            pm.unmap_all().await?;
            assert_eq!(installed(&s.firewall), 0);
            Ok(())
        },
    );
}

#[test]
fn firewall_refusal_undoes_the_whole_mapping() {
    in_netns("firewall_refusal_undoes_the_whole_mapping", || async {
        let s = setup(false).await?;
        let pm = pm(true, &s.firewall);
        // The firewall has no network on this bridge.
        let e = pm
            .map("br-other", container(), &[tcp(80, 8080), tcp(81, 8081)])
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Firewall { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(pm.allocated_ports(), 0);
        assert!(pm.mappings().is_empty());
        assert!(tcp_port_is_free(8080) && tcp_port_is_free(8081));
        assert_eq!(installed(&s.firewall), 0);
        Ok(())
    });
}

#[test]
fn port_held_by_another_program_installs_no_rule() {
    in_netns("port_held_by_another_program_installs_no_rule", || async {
        let s = setup(false).await?;
        let _other = std::net::TcpListener::bind("0.0.0.0:8081")?;
        for proxy in [true, false] {
            let pm = pm(proxy, &s.firewall);
            let e = pm
                .map(BRIDGE, container(), &[tcp(80, 8080), tcp(81, 8081)])
                .await
                .unwrap_err();
            assert!(e.is_conflict(), "{e}");
            assert_eq!(installed(&s.firewall), 0);
            assert_eq!(pm.allocated_ports(), 0);
        }
        Ok(())
    });
}

#[test]
fn dropped_map_future_still_finishes_the_mapping() {
    in_netns("dropped_map_future_still_finishes_the_mapping", || async {
        let s = setup(false).await?;
        let pm = pm(true, &s.firewall);
        let bindings = [tcp(80, 8080)];
        {
            // Polled once: the ports are bound and the firewall batch is running; then dropped.
            let mut map = std::pin::pin!(pm.map(BRIDGE, container(), &bindings));
            tokio::select! {
                biased;
                _ = &mut map => anyhow::bail!("the firewall batch finished within one poll"),
                () = std::future::ready(()) => {}
            }
        }
        // The mapping completes anyway: nothing is left reserved without being published.
        while pm.mappings().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(installed(&s.firewall), 1);
        let (_, seen) = ask(SocketAddr::new(LOCALHOST, 8080)).await?;
        assert_eq!(seen.ip(), GATEWAY.parse::<IpAddr>()?);
        pm.unmap_all().await?;
        assert_eq!(installed(&s.firewall), 0);
        Ok(())
    });
}
