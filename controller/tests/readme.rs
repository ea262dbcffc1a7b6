//! libnetwork's README flow with the real bridge driver, checked against the kernel.

mod common;

use anyhow::{Context, ensure};
use libnetwork::{
    Controller, EndpointOptions, JoinOptions, NetworkOptions, SandboxOptions, netlabel,
};

#[test]
fn the_readme_flow_joins_a_bridge_endpoint_to_a_sandbox_and_reports_its_mac() {
    common::run(
        "the_readme_flow_joins_a_bridge_endpoint_to_a_sandbox_and_reports_its_mac",
        |dir| async move {
            // Select and configure the network driver; create a controller.
            let network_type = "bridge";
            let controller = Controller::new(common::config(&dir)).await?;
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
            // The endpoint's operational data.
            let ep_info = ep.driver_info().await?;
            let mac = ep_info
                .get(netlabel::MAC_ADDRESS)
                .and_then(|v| v.as_str())
                .context("no MAC address in the driver info")?
                .to_owned();
            println!(
                "Joined endpoint {} ({}) to sandbox {} ({})",
                ep.name(),
                mac,
                sbx.container_id(),
                sbx.key().display()
            );

            // The kernel agrees: the interface is in the sandbox with that MAC and the
            // endpoint's address, the default route goes to the network's gateway, and the
            // host end is on the network's bridge.
            let info = ep.info();
            let address = info.interface.address.context("no address")?;
            let gateway = info.gateway.context("no gateway")?;
            let v4 = &network.info().ipv4_info[0].data;
            ensure!(
                v4.pool.contains(&address.addr()),
                "{address} not in {}",
                v4.pool
            );
            ensure!(v4.gateway.map(|g| g.addr()) == Some(gateway));
            let dst = info
                .interface
                .dst_name
                .clone()
                .context("no interface name")?;
            ensure!(dst == "eth0", "interface {dst}");
            let ifaces = sbx.os_sandbox().interfaces().await?;
            let iface = ifaces
                .iter()
                .find(|i| i.link.name == dst)
                .context("interface not in the sandbox")?;
            ensure!(iface.link.mac.map(|m| m.to_string()) == Some(mac.clone()));
            ensure!(
                iface.addresses.iter().any(|a| a.net == address),
                "{:?}",
                iface.addresses
            );
            ensure!(sbx.os_sandbox().gateway(false).await? == Some(gateway));
            let bridge_name = format!("br-{}", &network.id()[..12]);
            let links = common::host_links().await?;
            let bridge = links
                .iter()
                .find(|l| l.name == bridge_name)
                .context("no bridge")?;
            ensure!(
                links
                    .iter()
                    .filter(|l| l.master == Some(bridge.index))
                    .count()
                    == 1,
                "one veth on the bridge"
            );

            // The sandbox's files: its own names in hosts, the embedded DNS server in
            // resolv.conf.
            let hosts = std::fs::read_to_string(sbx.hosts_path())?;
            ensure!(
                hosts.contains(&format!("{}\ttest.docker.io test\n", address.addr())),
                "{hosts}"
            );
            let resolv = std::fs::read_to_string(sbx.resolv_conf_path())?;
            ensure!(
                resolv == "search example.test\nnameserver 127.0.0.11\noptions ndots:0\n",
                "{resolv}"
            );

            // Leave, delete: nothing is left.
            ep.leave(&sbx).await?;
            ensure!(ep.info().sandbox_id.is_none());
            ep.delete(false).await?;
            sbx.delete().await?;
            network.delete().await?;
            controller.shutdown().await;
            ensure!(
                common::host_link_names().await?.is_empty(),
                "links left: {:?}",
                common::host_link_names().await?
            );
            ensure!(std::fs::read_dir(dir.join("run/netns"))?.next().is_none());
            Ok(())
        },
    );
}
