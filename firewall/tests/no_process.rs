//! With nftables, changing networks and port mappings runs no process: once `Firewall::new` has
//! installed the base structure, the `nft` this test puts first on PATH refuses to run (so the
//! change would fail) and records that it was asked to.
//!
//! PATH is the process's, so the test runs its body in a child: it re-runs its own binary,
//! filtered to this test, with the wrapper's directory first on PATH. Nothing changes the
//! environment of a running test process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use libnetwork_firewall::{BackendChoice, Firewall, FirewallConfig, PortMapping};
use libnetwork_types::Protocol;

use common::{network, ruleset, tcp_mapping};

/// Set in the child: the directory of the wrapper.
const GUARD_DIR: &str = "LIBNETWORK_FIREWALL_NFT_GUARD";
const TEST: &str = "changes_run_no_nft_process";

#[test]
fn changes_run_no_nft_process() {
    if !libnetwork_testutil::privileged(TEST) {
        return;
    }
    if let Some(dir) = std::env::var_os(GUARD_DIR) {
        libnetwork_testutil::in_new_netns(|| changes(Path::new(&dir)));
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let real = std::env::split_paths(&path)
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
        .expect("nft on PATH");
    let wrapper = dir.path().join("nft");
    let (armed, spawned) = (dir.path().join("armed"), dir.path().join("spawned"));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo \"$*\" >> '{}'; exit 1; fi\nexec '{}' \"$@\"\n",
            armed.display(),
            spawned.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let child = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env("PATH", format!("{}:{path}", dir.path().display()))
        .env(GUARD_DIR, dir.path())
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "the child test failed: {}\n{}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    // The child did run the changes (a filter that matched nothing would also succeed).
    assert!(
        String::from_utf8_lossy(&child.stdout).contains("1 passed"),
        "{}",
        String::from_utf8_lossy(&child.stdout)
    );
    assert!(
        !spawned.exists(),
        "nft was run: {}",
        std::fs::read_to_string(&spawned).unwrap_or_default()
    );

    // The guard catches a run: armed, the wrapper fails and records it.
    std::fs::write(&armed, "").unwrap();
    let out = Command::new(&wrapper)
        .args(["list", "tables"])
        .status()
        .unwrap();
    assert!(!out.success());
    assert_eq!(std::fs::read_to_string(&spawned).unwrap(), "list tables\n");
}

/// In the child, in a private namespace: sets up, arms the wrapper, and makes every kind of
/// change.
fn changes(dir: &Path) {
    let fw = Firewall::new(FirewallConfig {
        backend: BackendChoice::Nftables,
        ipv6: true,
    })
    .unwrap();
    let base = ruleset(BackendChoice::Nftables);
    std::fs::write(dir.join("armed"), "").unwrap();

    let mut net = network("br-a", "172.30.1.0/24");
    net.ipv6_subnet = Some("fd00:30:1::/64".parse().unwrap());
    fw.add_network(&net).unwrap();
    fw.add_network(&network("br-b", "172.30.2.0/24")).unwrap();
    // Replacing a network.
    net.icc = false;
    net.snat_source = Some("192.168.77.3".parse().unwrap());
    fw.add_network(&net).unwrap();
    let mappings = [
        tcp_mapping("br-a", 8080..=8080, "172.30.1.2", 80),
        tcp_mapping("br-a", 8000..=8999, "172.30.1.2", 8000),
        tcp_mapping("br-a", 9100..=9199, "172.30.1.2", 9000),
        PortMapping {
            protocol: Protocol::Udp,
            host_ip: Some("fd00:77::1".parse().unwrap()),
            host_ports: 53..=53,
            container_ip: "fd00:30:1::2".parse().unwrap(),
            container_port: 53,
            bridge: "br-a".into(),
        },
    ];
    fw.add_port_mappings(&mappings).unwrap();
    fw.add_port_mappings(&[tcp_mapping("br-b", 7000..=7000, "172.30.2.2", 7000)])
        .unwrap();
    fw.remove_port_mappings(&mappings[..2]).unwrap();
    fw.remove_network("br-a").unwrap();
    fw.remove_network("br-b").unwrap();
    assert!(fw.port_mappings().is_empty());

    std::fs::remove_file(dir.join("armed")).unwrap();
    assert_eq!(ruleset(BackendChoice::Nftables), base);
}
