//! `dnet demo`: libnetwork's README flow on the real kernel, told in a few lines.
//!
//! The process first moves into private network and mount namespaces and keeps its state in a
//! temporary directory, so the bridge, the veth pair, the firewall rules and the namespace it
//! makes never touch the machine's own network; it removes them all before it exits.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use libnetwork::{
    BridgeConfig, Config, Controller, EndpointOptions, JoinOptions, NetworkOptions, SandboxOptions,
    netlabel,
};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use crate::nsexec::SandboxEntry;

/// Runs the demo.
///
/// # Errors
/// Without root, or when a step fails (what was made is removed first when possible).
pub fn run() -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "dnet demo needs root: it creates a bridge, a veth pair, firewall rules and a \
             namespace (inside private namespaces, so nothing of this machine changes)"
        );
    }
    // Before any thread exists: unsharing the mount namespace needs a single-threaded
    // process, and the runtime's threads must inherit the private namespaces.
    enter_private_namespaces()?;
    let dir = tempfile::Builder::new()
        .prefix("dnet-demo-")
        .tempdir()
        .context("make a temporary directory")?;
    println!(
        "dnet demo: private network and mount namespaces, state in {}",
        dir.path().display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(readme(dir.path()))
}

/// Unshares the network and mount namespaces of the (single-threaded) process, keeps mounts
/// from propagating back, and brings `lo` up.
fn enter_private_namespaces() -> anyhow::Result<()> {
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
        .context("unshare the network and mount namespaces")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("make the mounts private")?;
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .context("run ip link set lo up")?;
    if !status.success() {
        bail!("ip link set lo up failed: {status}");
    }
    Ok(())
}

/// The README's steps, then a ping from inside the sandbox, then the clean-up.
async fn readme(dir: &Path) -> anyhow::Result<()> {
    let config = Config {
        bridge: BridgeConfig::docker(),
        ..Config::new(dir.join("data"), dir.join("run"))
    };
    let controller = Controller::new(config)
        .await
        .context("start the controller")?;
    println!("controller started: bridge driver with forwarding, NAT and firewall rules");

    let network = controller
        .new_network("bridge", "network1", NetworkOptions::default())
        .await
        .context("create network1")?;
    let info = network.info();
    let pool = info.ipv4_info.first().map(|i| &i.data);
    let subnet = pool.map(|d| d.pool.to_string()).unwrap_or_default();
    let gateway = pool.and_then(|d| d.gateway).map(|g| g.addr());
    println!(
        "network network1 created: id {}, subnet {subnet}, gateway {}",
        &network.id()[..12],
        gateway.map(|g| g.to_string()).unwrap_or_default()
    );

    let result = async {
        let ep = network
            .create_endpoint("Endpoint1", EndpointOptions::default())
            .await
            .context("create Endpoint1")?;
        let address = ep.info().interface.address;
        println!(
            "endpoint Endpoint1 created: address {}",
            address.map(|a| a.to_string()).unwrap_or_default()
        );
        let options = SandboxOptions::new()
            .hostname("test")
            .domainname("docker.io");
        let sbx = match controller.new_sandbox("container1", options).await {
            Ok(sbx) => sbx,
            Err(e) => {
                let _ = ep.delete(true).await;
                return Err(e).context("create the sandbox of container1");
            }
        };
        let joined = async {
            ep.join(&sbx, JoinOptions::default())
                .await
                .context("join Endpoint1 to container1")?;
            let driver_info = ep.driver_info().await.context("read the driver's info")?;
            let mac = driver_info
                .get(netlabel::MAC_ADDRESS)
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            println!(
                "Joined endpoint {} ({mac}) to sandbox {} ({})",
                ep.name(),
                sbx.container_id(),
                sbx.key().display()
            );
            if let Some(gateway) = gateway {
                let entry = SandboxEntry::new(
                    &sbx.key(),
                    Some(&sbx.hosts_path()),
                    Some(&sbx.resolv_conf_path()),
                    Some("test"),
                )?;
                let mut ping = Command::new("ping");
                ping.args(["-c", "1", "-W", "2", &gateway.to_string()]);
                entry.apply(&mut ping);
                let out = tokio::process::Command::from(ping)
                    .output()
                    .await
                    .context("run ping in the sandbox")?;
                let verdict = if out.status.success() {
                    "ok"
                } else {
                    "no answer"
                };
                println!("ping from inside container1 to the gateway {gateway}: {verdict}");
            }
            anyhow::Ok(())
        }
        .await;
        // The sandbox's deletion leaves and deletes its endpoints.
        let deleted = sbx.delete().await.context("delete the sandbox");
        joined.and(deleted)?;
        if let Ok(ep) = network.endpoint_by_id(ep.id()) {
            ep.delete(true).await.context("delete Endpoint1")?;
        }
        anyhow::Ok(())
    }
    .await;
    let removed = network.delete().await.context("delete network1");
    controller.shutdown().await;
    result.and(removed)?;
    println!("cleaned up: sandbox, endpoint, network, bridge and rules removed");
    Ok(())
}
