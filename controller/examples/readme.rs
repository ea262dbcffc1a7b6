//! libnetwork's README flow in Rust: a controller with the bridge driver, a network, an
//! endpoint, a sandbox with a hostname and a domain name, a join, and the endpoint's driver
//! information (its MAC address among it), printed as the README prints it.
//!
//! Needs root. It runs in private network and mount namespaces, with its data and run
//! directories in a temporary directory, so nothing of the machine's own network is touched,
//! and it removes everything it made before exiting:
//!
//! ```text
//! cargo run -p libnetwork --example readme
//! ```

use anyhow::Context as _;
use libnetwork::{
    Config, Controller, EndpointOptions, JoinOptions, NetworkOptions, SandboxOptions, netlabel,
};

fn main() -> anyhow::Result<()> {
    if !libnetwork_testutil::privileged("readme example") {
        return Ok(());
    }
    // Private namespaces first, so that the runtime's threads inherit them.
    libnetwork_testutil::enter_private_namespaces();
    let dir = tempfile::tempdir().context("make a temporary directory")?;
    let runtime = tokio::runtime::Runtime::new().context("start the runtime")?;
    runtime.block_on(readme(dir.path()))
}

async fn readme(dir: &std::path::Path) -> anyhow::Result<()> {
    // Select and configure the network driver.
    let network_type = "bridge";
    let config = Config::new(dir.join("data"), dir.join("run"))
        .driver_option(network_type, "EnableIPForwarding", "true")
        .driver_option(network_type, "EnableIPTables", "true");

    // Create a new controller instance.
    let controller = Controller::new(config).await?;

    // Create a network for containers to join.
    let network = controller
        .new_network(network_type, "network1", NetworkOptions::default())
        .await?;

    // For each new container: allocate IP and interfaces.
    let ep = network
        .create_endpoint("Endpoint1", EndpointOptions::default())
        .await?;

    // Create the sandbox for the container.
    let sbx = controller
        .new_sandbox(
            "container1",
            SandboxOptions::new()
                .hostname("test")
                .domainname("docker.io"),
        )
        .await?;

    // A sandbox can join the endpoint via the join API.
    ep.join(&sbx, JoinOptions::default()).await?;

    // The endpoint's operational data, from the driver.
    let ep_info = ep.driver_info().await?;
    let mac_address = ep_info
        .get(netlabel::MAC_ADDRESS)
        .and_then(|v| v.as_str())
        .context("the driver gave no MAC address")?;
    println!(
        "Joined endpoint {} ({}) to sandbox {} ({})",
        ep.name(),
        mac_address,
        sbx.container_id(),
        sbx.key().display()
    );

    // Clean up: the sandbox's deletion leaves and deletes its endpoints.
    sbx.delete().await?;
    network.delete().await?;
    controller.shutdown().await;
    Ok(())
}
