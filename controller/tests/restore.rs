//! Restart and crash recovery: a clean restart brings every object back, usable; a process
//! killed at any step of a network, endpoint, sandbox, join or leave operation leaves
//! nothing behind once a new controller has started on the same directories.
//!
//! The crash tests run the flow in a child process (this test binary, running the ignored
//! `crash_child` helper) inside the test's private namespaces; the child kills itself with
//! SIGKILL when the controller reaches the chosen step.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use hickory_proto::op::ResponseCode;
use libnetwork::{
    Config, Controller, EndpointOptions, IpamConf, IpamOptions, JoinOptions, NetworkOptions,
    PortBinding, Protocol, SandboxOptions,
};
use libnetwork_datastore::{RedbStore, Store};

const SUBNET: &str = "10.123.0.0/24";
const HOST_PORT: u16 = 18081;

fn crash_net_options() -> NetworkOptions {
    NetworkOptions {
        ipam: IpamOptions {
            v4: vec![IpamConf {
                preferred_pool: Some(SUBNET.parse().unwrap()),
                ..IpamConf::default()
            }],
            ..IpamOptions::default()
        },
        ..NetworkOptions::default()
    }
}

fn web_options() -> EndpointOptions {
    EndpointOptions {
        aliases: vec!["www".into()],
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

// ----- clean restart -----

#[test]
fn a_clean_restart_brings_back_every_network_endpoint_and_sandbox_usable() {
    common::run(
        "a_clean_restart_brings_back_every_network_endpoint_and_sandbox_usable",
        |dir| async move {
            let config = common::config(&dir);
            let (net_id, web_id, web_addr, web_mac, sb_id, hosts_before, resolv_before) = {
                let c = Controller::new(config.clone()).await?;
                let n = c
                    .new_network("bridge", "crashnet", crash_net_options())
                    .await?;
                c.new_network(
                    "bridge",
                    "template",
                    NetworkOptions {
                        config_only: true,
                        ..NetworkOptions::default()
                    },
                )
                .await?;
                let web = n.create_endpoint("web", web_options()).await?;
                let peer = n
                    .create_endpoint("peer", EndpointOptions::default())
                    .await?;
                n.create_endpoint("idle", EndpointOptions::default())
                    .await?;
                let sb = c
                    .new_sandbox(
                        "c1",
                        SandboxOptions::new()
                            .hostname("web")
                            .domainname("example.com"),
                    )
                    .await?;
                let sb_peer = c
                    .new_sandbox("peer", SandboxOptions::new().hostname("peer"))
                    .await?;
                c.new_sandbox("empty", SandboxOptions::new()).await?;
                web.join(&sb, JoinOptions::default()).await?;
                peer.join(&sb_peer, JoinOptions::default()).await?;
                let info = web.info();
                let out = (
                    n.id().to_owned(),
                    web.id().to_owned(),
                    info.interface.address.context("address")?,
                    info.interface.mac_address.context("mac")?,
                    sb.id().to_owned(),
                    std::fs::read_to_string(sb.hosts_path())?,
                    std::fs::read_to_string(sb.resolv_conf_path())?,
                );
                c.shutdown().await;
                out
            };

            // The store holds libnetwork's JSON shapes.
            {
                let data_dir = config.data_dir.clone();
                let (net_id, web_id, sb_id) = (net_id.clone(), web_id.clone(), sb_id.clone());
                tokio::task::spawn_blocking(move || -> Result<()> {
                    let store = RedbStore::open_in_data_dir(&data_dir)?;
                    let get = |parts: &[&str]| -> Result<serde_json::Value> {
                        let pair = store.get(&libnetwork_datastore::key(parts))?;
                        Ok(serde_json::from_slice(&pair.value)?)
                    };
                    let net = get(&["network", &net_id])?;
                    ensure!(net["name"] == "crashnet" && net["networkType"] == "bridge");
                    ensure!(net["ipamType"] == "default" && net["scope"] == "local");
                    let info: serde_json::Value =
                        serde_json::from_str(net["ipamV4Info"].as_str().context("a string")?)?;
                    ensure!(info[0]["PoolID"] == "LocalDefault/10.123.0.0/24", "{info}");
                    let ep = get(&["endpoint", &net_id, &web_id])?;
                    ensure!(ep["name"] == "web" && ep["sandbox"] == sb_id.as_str());
                    ensure!(ep["ep_iface"]["addr"] == "10.123.0.2/24", "{ep}");
                    ensure!(ep["myAliases"][0] == "www" && ep["joinInfo"]["gw"] == "10.123.0.1");
                    let count = get(&["endpoint_count", &net_id])?;
                    ensure!(count == serde_json::json!({"Count": 3}), "{count}");
                    let sb = get(&["sandbox", &sb_id])?;
                    ensure!(
                        sb["Cid"] == "c1" && sb["Eps"][0]["Eid"] == web_id.as_str(),
                        "{sb}"
                    );
                    Ok(())
                })
                .await??;
            }

            let c = Controller::new(config.clone()).await?;
            let n = c.network_by_name("crashnet")?;
            ensure!(n.id() == net_id);
            ensure!(c.network_by_name("template")?.info().config_only);
            ensure!(c.network_by_name("host").is_ok() && c.network_by_name("none").is_ok());
            ensure!(c.networks().len() == 4, "{:?}", c.networks());
            let web = n.endpoint_by_name("web")?;
            ensure!(web.id() == web_id);
            let info = web.info();
            ensure!(info.interface.address == Some(web_addr));
            ensure!(info.interface.mac_address == Some(web_mac));
            ensure!(info.aliases == ["www"]);
            ensure!(info.sandbox_id.as_deref() == Some(sb_id.as_str()));
            ensure!(n.endpoints().len() == 3);
            let sb = c.sandbox_by_container("c1")?;
            ensure!(sb.id() == sb_id);
            ensure!(sb.endpoints().iter().map(|e| e.name()).collect::<Vec<_>>() == ["web"]);
            ensure!(c.sandboxes().len() == 3);
            // The kernel state is the same, and the files too.
            ensure!(sb.os_sandbox().gateway(false).await? == Some("10.123.0.1".parse()?));
            ensure!(std::fs::read_to_string(sb.hosts_path())? == hosts_before);
            ensure!(std::fs::read_to_string(sb.resolv_conf_path())? == resolv_before);
            let rules = common::command("nft", &["list", "ruleset"])?;
            ensure!(rules.contains(&HOST_PORT.to_string()), "{rules}");
            // The embedded DNS servers are back.
            let peer_sb = c.sandbox_by_container("peer")?;
            let (code, ips) = common::resolve_in(&peer_sb, "www").await?;
            ensure!(
                code == ResponseCode::NoError && ips == [web_addr.addr()],
                "{code:?} {ips:?}"
            );
            // New allocations do not clash with restored ones.
            let fresh = n
                .create_endpoint("fresh", EndpointOptions::default())
                .await?;
            let used: HashSet<_> = n
                .endpoints()
                .iter()
                .filter_map(|e| e.info().interface.address)
                .collect();
            ensure!(used.len() == 4, "{used:?}");
            fresh.delete(false).await?;
            drop(fresh);
            // Everything is usable: leave, join again, delete.
            web.leave(&sb).await?;
            web.join(&sb, JoinOptions::default()).await?;
            ensure!(check_consistent(&c, &dir).await.is_ok());
            cleanup(&c).await?;
            c.shutdown().await;
            drop((n, web, sb, peer_sb, c));
            check_nothing_left(&dir, &config).await
        },
    );
}

// ----- crashes -----

/// The child's flow: a peer joined on the network first, then the web endpoint's whole life,
/// then the teardown of everything. Each step of the controller is reached once in this
/// order, except where `#2` (the second time) is asked for.
async fn crash_flow(config: Config) -> Result<()> {
    let c = Controller::new(config).await?;
    let n = c
        .new_network("bridge", "crashnet", crash_net_options())
        .await?;
    let peer = n
        .create_endpoint("peer", EndpointOptions::default())
        .await?;
    let sb_peer = c
        .new_sandbox("peer", SandboxOptions::new().hostname("peer"))
        .await?;
    peer.join(&sb_peer, JoinOptions::default()).await?;

    let web = n.create_endpoint("web", web_options()).await?;
    let sb = c
        .new_sandbox(
            "c1",
            SandboxOptions::new()
                .hostname("web")
                .domainname("example.com"),
        )
        .await?;
    web.join(&sb, JoinOptions::default()).await?;
    web.leave(&sb).await?;
    web.delete(false).await?;
    sb.delete().await?;

    sb_peer.delete().await?;
    n.delete().await?;
    c.shutdown().await;
    Ok(())
}

#[test]
#[ignore = "helper run as a child process by the crash tests"]
fn crash_child() {
    let (Ok(step), Ok(dir)) = (
        std::env::var("LIBNETWORK_CRASH_STEP"),
        std::env::var("LIBNETWORK_CRASH_DIR"),
    ) else {
        panic!("run only by the crash tests");
    };
    common::init_tracing();
    let (name, nth) = match step.split_once('#') {
        Some((name, n)) => (name.to_owned(), n.parse::<usize>().expect("occurrence")),
        None => (step.clone(), 1),
    };
    let seen = Arc::new(AtomicUsize::new(0));
    let mut config = common::config(Path::new(&dir));
    config.step_hook = Some(Arc::new(move |s: &str| {
        if s == name && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            eprintln!("crash_child: killing myself at {step}");
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(crash_flow(config)).expect("flow");
}

/// Runs the flow in a child process (in this thread's namespaces) that dies at `step`.
fn run_child_until(dir: &Path, step: &str) -> Result<()> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LIBNETWORK_CRASH_STEP", step)
        .env("LIBNETWORK_CRASH_DIR", dir)
        .output()?;
    if out.status.signal() != Some(nix::sys::signal::Signal::SIGKILL as i32) {
        bail!(
            "the child was not killed at {step} ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// For each step: kill the flow there, restart, check that the restored state matches the
/// kernel and is usable, clean everything up and check that nothing is left.
fn crash_at_each(test: &str, steps: &[&str]) {
    common::run(test, |dir| async move {
        for (i, step) in steps.iter().enumerate() {
            let d = dir.join(format!("run{i}"));
            std::fs::create_dir_all(&d)?;
            std::fs::copy(dir.join("host-resolv.conf"), d.join("host-resolv.conf"))?;
            std::fs::copy(dir.join("host-hosts"), d.join("host-hosts"))?;
            let child_dir = d.clone();
            let step_name = (*step).to_owned();
            tokio::task::spawn_blocking(move || run_child_until(&child_dir, &step_name)).await??;
            let config = common::config(&d);
            let c = Controller::new(config.clone())
                .await
                .with_context(|| format!("restart after a crash at {step}"))?;
            // Links of half-made objects are retired by the restore and deleted in the
            // background.
            c.settle().await;
            check_consistent(&c, &d)
                .await
                .with_context(|| format!("state after a crash at {step}"))?;
            exercise(&c)
                .await
                .with_context(|| format!("use after a crash at {step}"))?;
            cleanup(&c)
                .await
                .with_context(|| format!("cleanup after a crash at {step}"))?;
            c.shutdown().await;
            drop(c);
            check_nothing_left(&d, &config)
                .await
                .with_context(|| format!("leftovers after a crash at {step}"))?;
        }
        Ok(())
    });
}

#[test]
fn a_process_killed_mid_join_leaves_nothing_behind() {
    crash_at_each(
        "a_process_killed_mid_join_leaves_nothing_behind",
        &[
            "join:started#2",
            "join:driver-joined#2",
            "join:interface-added#2",
            "join:gateway-set#2",
            "join:connectivity-programmed#2",
            "join:files-updated#2",
        ],
    );
}

#[test]
fn a_process_killed_mid_leave_or_delete_leaves_nothing_behind() {
    crash_at_each(
        "a_process_killed_mid_leave_or_delete_leaves_nothing_behind",
        &[
            "leave:intent-stored",
            "leave:driver-left",
            "endpoint:delete-intent-stored",
            "endpoint:driver-deleted",
            "sandbox:checkpoint-deleted",
            "network:delete-intent-stored",
        ],
    );
}

#[test]
fn a_process_killed_mid_creation_leaves_nothing_behind() {
    crash_at_each(
        "a_process_killed_mid_creation_leaves_nothing_behind",
        &[
            // The predefined host and none networks are created first.
            "network:intent-stored#3",
            "network:driver-created#3",
            "endpoint:intent-stored#2",
            "endpoint:driver-created#2",
            "sandbox:namespace-created#2",
        ],
    );
}

/// The restored state agrees with the kernel: one namespace per sandbox, exactly the joined
/// endpoints' interfaces in each sandbox and on each bridge, the gateway endpoint's default
/// route, and the joined endpoints' names in DNS.
async fn check_consistent(c: &Controller, dir: &Path) -> Result<()> {
    let mut keys: Vec<PathBuf> = std::fs::read_dir(dir.join("run/netns"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    keys.sort();
    let mut want: Vec<PathBuf> = c.sandboxes().iter().map(|s| s.key()).collect();
    want.sort();
    ensure!(keys == want, "namespaces {keys:?}, sandboxes {want:?}");

    let mut joined_per_network: BTreeMap<String, usize> = BTreeMap::new();
    for sb in c.sandboxes() {
        let eps = sb.endpoints();
        let mut names: Vec<String> = eps
            .iter()
            .map(|e| {
                e.info()
                    .interface
                    .dst_name
                    .context("joined endpoint without interface")
            })
            .collect::<Result<_>>()?;
        names.sort();
        let mut ifaces: Vec<String> = sb
            .os_sandbox()
            .interfaces()
            .await?
            .into_iter()
            .map(|i| i.link.name)
            .collect();
        ifaces.sort();
        ensure!(
            ifaces == names,
            "sandbox {}: interfaces {ifaces:?}, endpoints {names:?}",
            sb.container_id()
        );
        let gw = sb.gateway_endpoint().and_then(|e| e.info().gateway);
        ensure!(
            sb.os_sandbox().gateway(false).await? == gw,
            "sandbox {} default route",
            sb.container_id()
        );
        for ep in &eps {
            *joined_per_network
                .entry(ep.network_id().to_owned())
                .or_default() += 1;
            let (code, ips) = common::resolve_in(&sb, &ep.name()).await?;
            ensure!(
                code == ResponseCode::NoError
                    && ips
                        == ep
                            .info()
                            .interface
                            .address
                            .map(|a| a.addr())
                            .into_iter()
                            .collect::<Vec<_>>(),
                "{} resolves to {ips:?} ({code:?})",
                ep.name()
            );
        }
    }
    let links = common::host_links().await?;
    let mut bridges = HashSet::new();
    for n in c.networks() {
        if n.network_type() != "bridge" || n.info().config_only {
            continue;
        }
        let name = format!("br-{}", &n.id()[..12]);
        let bridge = links
            .iter()
            .find(|l| l.name == name)
            .with_context(|| format!("bridge {name} missing"))?;
        bridges.insert(bridge.index);
        let veths = links
            .iter()
            .filter(|l| l.master == Some(bridge.index))
            .count();
        let joined = joined_per_network.get(n.id()).copied().unwrap_or(0);
        ensure!(
            veths == joined,
            "bridge {name}: {veths} veths, {joined} joined endpoints"
        );
    }
    let others: Vec<&str> = links
        .iter()
        .filter(|l| l.name != "lo" && !bridges.contains(&l.index))
        .filter(|l| !l.master.is_some_and(|m| bridges.contains(&m)))
        .map(|l| l.name.as_str())
        .collect();
    ensure!(others.is_empty(), "links no object owns: {others:?}");
    Ok(())
}

/// Uses what was restored: a joined web endpoint leaves and joins again; an unjoined one
/// joins its sandbox; a missing one is created; new endpoints get fresh addresses.
async fn exercise(c: &Controller) -> Result<()> {
    let n = match c.network_by_name("crashnet") {
        Ok(n) => n,
        Err(_) => {
            c.new_network("bridge", "crashnet", crash_net_options())
                .await?
        }
    };
    let sb = match c.sandbox_by_container("c1") {
        Ok(sb) => sb,
        Err(_) => {
            c.new_sandbox("c1", SandboxOptions::new().hostname("web"))
                .await?
        }
    };
    let web = match n.endpoint_by_name("web") {
        Ok(ep) => ep,
        Err(_) => n.create_endpoint("web", web_options()).await?,
    };
    if web.info().sandbox_id.is_some() {
        web.leave(&sb).await?;
    }
    web.join(&sb, JoinOptions::default()).await?;
    let rules = common::command("nft", &["list", "ruleset"])?;
    ensure!(
        rules.contains(&HOST_PORT.to_string()),
        "port not published again: {rules}"
    );
    let (code, ips) = common::resolve_in(&sb, "www").await?;
    ensure!(
        code == ResponseCode::NoError && ips.len() == 1,
        "{code:?} {ips:?}"
    );
    // No address leaked: the endpoints hold the lowest addresses after the gateway's.
    let mut addrs: Vec<u32> = n
        .endpoints()
        .iter()
        .filter_map(|ep| match ep.info().interface.address?.addr() {
            std::net::IpAddr::V4(a) => Some(u32::from(a)),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    addrs.sort_unstable();
    let first = u32::from(std::net::Ipv4Addr::new(10, 123, 0, 2));
    let want: Vec<u32> = (first..).take(addrs.len()).collect();
    ensure!(
        addrs == want,
        "endpoint addresses are not the lowest free ones: {addrs:?}"
    );
    Ok(())
}

/// Deletes every sandbox, endpoint and network that is not predefined.
async fn cleanup(c: &Controller) -> Result<()> {
    for sb in c.sandboxes() {
        sb.delete().await?;
    }
    for n in c.networks() {
        if matches!(n.name().as_str(), "host" | "none") {
            continue;
        }
        for ep in n.endpoints() {
            ep.delete(true).await?;
        }
        n.delete().await?;
    }
    Ok(())
}

/// Nothing is left: no links but `lo`, no namespaces, no firewall rules for the network or
/// its ports, no sandbox files, no store keys but the predefined networks' and IPAM's empty
/// configuration; and the subnet is free again, with its first addresses.
async fn check_nothing_left(dir: &Path, config: &Config) -> Result<()> {
    let links = common::host_link_names().await?;
    ensure!(links.is_empty(), "links left: {links:?}");
    let keys: Vec<_> = std::fs::read_dir(dir.join("run/netns"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    ensure!(keys.is_empty(), "namespaces left: {keys:?}");
    let rules = common::command("nft", &["list", "ruleset"])?;
    for needle in ["10.123.", &HOST_PORT.to_string(), "br-"] {
        ensure!(!rules.contains(needle), "rules left ({needle}): {rules}");
    }
    let files: Vec<_> = std::fs::read_dir(config.files_dir())?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    ensure!(files.is_empty(), "sandbox files left: {files:?}");
    {
        let data_dir = config.data_dir.clone();
        let pairs = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
            let store = RedbStore::open_in_data_dir(&data_dir)?;
            Ok(store
                .list("docker/network/v1.0/")?
                .into_iter()
                .map(|p| p.key)
                .collect())
        })
        .await??;
        let prefix = |key: &str| {
            libnetwork_datastore::parse_key(key)
                .map(|parts| parts[0].clone())
                .unwrap_or_default()
        };
        for key in &pairs {
            let allowed = matches!(prefix(key).as_str(), "network" | "endpoint_count")
                || key.ends_with("/ipam/default/config/LocalDefault/");
            ensure!(allowed, "store key left: {key} (all: {pairs:?})");
        }
        let networks = pairs.iter().filter(|k| prefix(k) == "network").count();
        ensure!(networks == 2, "networks left in the store: {pairs:?}");
    }
    // The subnet is free again and nothing in it is allocated.
    let c = Controller::new(config.clone()).await?;
    let n = c
        .new_network("bridge", "probe", crash_net_options())
        .await?;
    let ep = n
        .create_endpoint("probe", EndpointOptions::default())
        .await?;
    let addr = ep.info().interface.address.map(|a| a.to_string());
    ensure!(
        addr.as_deref() == Some("10.123.0.2/24"),
        "first address {addr:?}"
    );
    ep.delete(false).await?;
    n.delete().await?;
    c.shutdown().await;
    Ok(())
}

#[test]
fn a_sandbox_whose_namespace_is_gone_gets_a_new_one_with_its_endpoints_joined_again() {
    common::run(
        "a_sandbox_whose_namespace_is_gone_gets_a_new_one_with_its_endpoints_joined_again",
        |dir| async move {
            let config = common::config(&dir);
            let key = {
                let c = Controller::new(config.clone()).await?;
                let n = c
                    .new_network("bridge", "crashnet", crash_net_options())
                    .await?;
                let web = n.create_endpoint("web", web_options()).await?;
                let sb = c
                    .new_sandbox("c1", SandboxOptions::new().hostname("web"))
                    .await?;
                web.join(
                    &sb,
                    JoinOptions {
                        priority: 3,
                        ..JoinOptions::default()
                    },
                )
                .await?;
                c.shutdown().await;
                sb.key()
            };
            // As after a reboot: the namespace (and the veth in it) is gone, the key file
            // stays.
            libnetwork_osl::netns::unbind(&key)?;
            std::fs::write(&key, b"")?;
            ensure!(!libnetwork_osl::netns::is_bound(&key));

            let c = Controller::new(config.clone()).await?;
            let sb = c.sandbox_by_container("c1")?;
            ensure!(sb.key() == key && libnetwork_osl::netns::is_bound(&key));
            let web = c.network_by_name("crashnet")?.endpoint_by_name("web")?;
            ensure!(web.info().sandbox_id.as_deref() == Some(sb.id()));
            ensure!(web.info().interface.dst_name.as_deref() == Some("eth0"));
            let ifaces = sb.os_sandbox().interfaces().await?;
            ensure!(
                ifaces.iter().any(|i| i.link.name == "eth0" && i.link.up),
                "{ifaces:?}"
            );
            ensure!(sb.os_sandbox().gateway(false).await? == Some("10.123.0.1".parse()?));
            let (code, ips) = common::resolve_in(&sb, "www").await?;
            ensure!(
                code == ResponseCode::NoError && ips.len() == 1,
                "{code:?} {ips:?}"
            );
            check_consistent(&c, &dir).await?;
            // The join priority survived the rejoin.
            drop((sb, web));
            c.shutdown().await;
            drop(c);
            {
                let data_dir = config.data_dir.clone();
                let priorities = tokio::task::spawn_blocking(move || -> Result<String> {
                    let store = RedbStore::open_in_data_dir(&data_dir)?;
                    let sbs = store.list("docker/network/v1.0/sandbox/")?;
                    Ok(String::from_utf8_lossy(&sbs[0].value).into_owned())
                })
                .await??;
                ensure!(priorities.contains("\"EpPriority\":{"), "{priorities}");
                ensure!(priorities.contains(":3}"), "{priorities}");
            }
            let c = Controller::new(config.clone()).await?;
            cleanup(&c).await?;
            c.shutdown().await;
            drop(c);
            check_nothing_left(&dir, &config).await
        },
    );
}
