//! `Controller::start`: the restored sandboxes are compared with the kernel after it returns.
//! Operations on a sandbox (or its endpoints) still being compared wait for it and then see
//! the sandbox set right; operations on anything else go ahead at once; shutdown waits too.
//!
//! The comparison is held at its step (`restore:reconciling`, reached with the sandbox's
//! operations held back) by a step hook that blocks until the test lets it go.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use libnetwork::{
    Config, Controller, EndpointOptions, IpamConf, IpamOptions, JoinOptions, NetworkOptions,
    PortBinding, Protocol, SandboxOptions, netlabel,
};
use libnetwork_driverapi::Driver as _;

const HOST_PORT: u16 = 18082;
/// How long an operation that must wait is given to (wrongly) finish.
const WAIT: Duration = Duration::from_millis(500);
/// The step at which the restore compares a sandbox with the kernel.
const STEP: &str = "restore:reconciling";

fn net_options(subnet: &str) -> NetworkOptions {
    NetworkOptions {
        ipam: IpamOptions {
            v4: vec![IpamConf {
                preferred_pool: Some(subnet.parse().unwrap()),
                ..IpamConf::default()
            }],
            ..IpamOptions::default()
        },
        ..NetworkOptions::default()
    }
}

fn web_options() -> EndpointOptions {
    EndpointOptions {
        port_bindings: vec![PortBinding {
            proto: Protocol::Tcp,
            ip: None,
            port: 80,
            host_ip: None,
            host_port: HOST_PORT,
            host_port_end: 0,
        }],
        ..EndpointOptions::default()
    }
}

/// A step hook that stops the comparison of each sandbox until the test lets it go.
struct Hold {
    reached: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

impl Hold {
    /// Installs the hook in `config`.
    fn install(config: &mut Config) -> Self {
        let (reached_tx, reached) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let reached_tx = Mutex::new(reached_tx);
        let release_rx = Mutex::new(release_rx);
        config.step_hook = Some(Arc::new(move |step: &str| {
            if step == STEP {
                let _ = reached_tx.lock().unwrap().send(());
                // Bounded, so that a broken test cannot hang forever.
                let _ = release_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(60));
            }
        }));
        Self { reached, release }
    }

    /// Waits until a comparison is held.
    async fn reached(self) -> Result<Self> {
        tokio::task::spawn_blocking(move || {
            self.reached
                .recv_timeout(Duration::from_secs(60))
                .context("the restore never compared the sandbox")?;
            Ok(self)
        })
        .await?
    }

    /// Lets the held comparison go.
    fn release(&self) {
        let _ = self.release.send(());
    }
}

/// Makes `c1`, joined to `bg` with a published port, then puts the kernel and the driver out
/// of line with the store as a crash could: the port is withdrawn behind the controller's back
/// and an interface no endpoint owns (`eth1`, a veth pair) is left in the sandbox.
async fn make_drifted_sandbox(config: &Config) -> Result<()> {
    let c = Controller::new(config.clone()).await?;
    let bg = c
        .new_network("bridge", "bg", net_options("10.124.0.0/24"))
        .await?;
    c.new_network("bridge", "bg2", net_options("10.125.0.0/24"))
        .await?;
    let web = bg.create_endpoint("web", web_options()).await?;
    let sb = c.new_sandbox("c1", SandboxOptions::new()).await?;
    web.join(&sb, JoinOptions::default()).await?;
    c.bridge_driver()
        .revoke_external_connectivity(bg.id(), web.id())
        .await?;
    sb.os_sandbox()
        .netlink()
        .create_veth("eth1", "eth1peer", None)
        .await?;
    c.shutdown().await;
    Ok(())
}

#[test]
fn operations_on_a_sandbox_being_compared_with_the_kernel_wait_and_see_it_set_right() {
    common::run(
        "operations_on_a_sandbox_being_compared_with_the_kernel_wait_and_see_it_set_right",
        |dir| async move {
            let mut config = common::config(&dir);
            make_drifted_sandbox(&config).await?;

            let hold = Hold::install(&mut config);
            let c = Controller::start(config).await?;
            let hold = hold.reached().await?;

            // Everything is there, and what does not involve c1 goes ahead.
            let sb = c.sandbox_by_container("c1")?;
            let bg = c.network_by_name("bg")?;
            let web = bg.endpoint_by_name("web")?;
            ensure!(web.info().sandbox_id.as_deref() == Some(sb.id()));
            let other = tokio::time::timeout(
                Duration::from_secs(30),
                c.new_sandbox("other", SandboxOptions::new()),
            )
            .await
            .context("a sandbox could not be made while c1 was compared")??;
            let second = c
                .network_by_name("bg2")?
                .create_endpoint("second", EndpointOptions::default())
                .await?;
            // A join to another sandbox of the same network goes ahead too, and puts its line
            // in c1's hosts file (read for the purpose).
            let peer = bg
                .create_endpoint("peer", EndpointOptions::default())
                .await?;
            tokio::time::timeout(
                Duration::from_secs(30),
                peer.join(&other, JoinOptions::default()),
            )
            .await
            .context("a join to another sandbox waited for c1")??;
            let peer_ip = peer
                .info()
                .interface
                .address
                .context("peer address")?
                .addr()
                .to_string();

            // Operations on c1 and its endpoints wait.
            let mut info = tokio::spawn({
                let web = web.clone();
                async move { web.driver_info().await }
            });
            let mut join = tokio::spawn({
                let (second, sb) = (second.clone(), sb.clone());
                async move { second.join(&sb, JoinOptions::default()).await }
            });
            ensure!(
                tokio::time::timeout(WAIT, &mut info).await.is_err(),
                "the driver info of c1's endpoint was given before c1 was compared"
            );
            ensure!(
                tokio::time::timeout(WAIT, &mut join).await.is_err(),
                "a join to c1 went ahead before c1 was compared"
            );

            hold.release();
            // They see c1 set right: its port published again, the leftover interface gone
            // (so the join takes its name).
            let info = info.await??;
            let ports = info
                .get(netlabel::PORT_MAP)
                .and_then(|v| v.as_array())
                .context("no port map")?;
            ensure!(
                ports
                    .iter()
                    .any(|p| p["HostPort"] == serde_json::json!(HOST_PORT)),
                "port not published again: {info:?}"
            );
            join.await??;
            ensure!(
                second.info().interface.dst_name.as_deref() == Some("eth1"),
                "the join did not get the leftover's name: {:?}",
                second.info().interface
            );
            let names: Vec<String> = sb
                .os_sandbox()
                .interfaces()
                .await?
                .into_iter()
                .map(|i| i.link.name)
                .collect();
            ensure!(!names.iter().any(|n| n == "eth1peer"), "{names:?}");
            ensure!(sb.resolver_addr().is_some(), "no embedded dns server");
            c.restored().await;
            let hosts = sb.hosts_content().context("c1's hosts file is managed")?;
            let peer_lines = hosts
                .lines()
                .filter(|l| l.split_whitespace().next() == Some(peer_ip.as_str()))
                .count();
            ensure!(
                peer_lines == 1,
                "peer in c1's hosts file {peer_lines} times:\n{hosts}"
            );

            second.leave(&sb).await?;
            second.delete(false).await?;
            other.delete().await?;
            ensure!(
                !sb.hosts_content().unwrap_or_default().contains(&peer_ip),
                "the peer's line stayed in c1's hosts file"
            );
            c.shutdown().await;
            Ok(())
        },
    );
}

#[test]
fn shutdown_waits_for_the_comparison_of_restored_sandboxes() {
    common::run(
        "shutdown_waits_for_the_comparison_of_restored_sandboxes",
        |dir| async move {
            let mut config = common::config(&dir);
            make_drifted_sandbox(&config).await?;

            let hold = Hold::install(&mut config);
            let c = Controller::start(config).await?;
            let hold = hold.reached().await?;
            let sb = c.sandbox_by_container("c1")?;
            let mut shutdown = tokio::spawn({
                let c = c.clone();
                async move { c.shutdown().await }
            });
            ensure!(
                tokio::time::timeout(WAIT, &mut shutdown).await.is_err(),
                "shutdown did not wait for the comparison"
            );
            hold.release();
            shutdown.await?;
            // The comparison started the embedded DNS server; shutdown stopped it after.
            ensure!(
                sb.resolver_addr().is_none(),
                "an embedded dns server runs after shutdown"
            );
            Ok(())
        },
    );
}
