//! What `Firewall::new` runs with nftables: the base batch only (no probe, no listing: what an
//! earlier process installed is read back through netlink), and nothing at all when the table
//! already holds the base rules; and a host where `nft` fails is still told apart
//! (`Unavailable`) from a refused batch.
//!
//! As in `no_process.rs`, PATH is the process's, so each test runs its body in a child: it
//! re-runs its own binary, filtered to the test, with a wrapper's directory first on PATH.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use libnetwork_firewall::{Backend, BackendChoice, Firewall, FirewallConfig};
use libnetwork_types::ErrorKind;

use common::{network, tcp_mapping};

/// Set in the child: the directory of the wrapper.
const WRAPPER_DIR: &str = "LIBNETWORK_FIREWALL_NFT_WRAPPER";

/// Runs test `name` again in a child with an `nft` wrapper first on PATH; the wrapper records
/// its arguments in `<dir>/runs` and then runs the real `nft`, or fails when `<dir>/broken`
/// exists. Returns the recorded runs.
fn in_child_with_wrapper(name: &str, broken: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let real = std::env::split_paths(&path)
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
        .expect("nft on PATH");
    let wrapper = dir.path().join("nft");
    let (runs, broken_mark) = (dir.path().join("runs"), dir.path().join("broken"));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nif [ -e '{}' ]; then echo 'broken' >&2; exit 1; fi\n\
             exec '{}' \"$@\"\n",
            runs.display(),
            broken_mark.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    if broken {
        std::fs::write(&broken_mark, "").unwrap();
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("PATH", format!("{}:{path}", dir.path().display()))
        .env(WRAPPER_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "the child test failed: {}\n{stdout}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stderr)
    );
    std::fs::read_to_string(&runs).unwrap_or_default()
}

const SETS_UP: &str = "setting_up_runs_the_base_batch_only_when_the_table_lacks_it";

#[test]
fn setting_up_runs_the_base_batch_only_when_the_table_lacks_it() {
    if !libnetwork_testutil::privileged(SETS_UP) {
        return;
    }
    if std::env::var_os(WRAPPER_DIR).is_some() {
        libnetwork_testutil::in_new_netns(two_starts);
        return;
    }
    let runs = in_child_with_wrapper(SETS_UP, false);
    // The first start installs the base; the second finds it; after a rule of ours is gone,
    // and with IPv6 rules asked for, the base is installed again.
    assert_eq!(
        runs.lines().collect::<Vec<_>>(),
        [
            "-f -",
            "flush chain inet libnetwork postrouting",
            "-f -",
            "-f -",
            "list chain inet libnetwork postrouting",
        ],
        "{runs}"
    );
}

fn nft(args: &[&str]) -> String {
    let out = Command::new("nft").args(args).output().unwrap();
    assert!(out.status.success(), "nft {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// In the child: a first start on a host without our table, then a second one that finds
/// what the first installed (a network and a port mapping, read back through netlink).
fn two_starts() {
    let config = FirewallConfig {
        backend: BackendChoice::Auto,
        ipv6: true,
    };
    let fw = Firewall::new(config.clone()).unwrap();
    assert_eq!(fw.backend(), Backend::Nftables);
    fw.add_network(&network("br-s", "172.31.1.0/24")).unwrap();
    let mapping = tcp_mapping("br-s", 8080..=8080, "172.31.1.2", 80);
    fw.add_port_mappings(std::slice::from_ref(&mapping))
        .unwrap();
    drop(fw);

    let again = Firewall::new(config.clone()).unwrap();
    assert_eq!(again.backend(), Backend::Nftables);
    assert_eq!(again.port_mappings(), vec![mapping]);
    // The network is known: a mapping on its bridge is accepted.
    again
        .add_port_mappings(&[tcp_mapping("br-s", 8081..=8081, "172.31.1.2", 81)])
        .unwrap();
    drop(again);

    // A rule of ours removed behind our back: the base batch runs again, the elements stay.
    nft(&["flush", "chain", "inet", "libnetwork", "postrouting"]);
    let repaired = Firewall::new(config.clone()).unwrap();
    assert_eq!(repaired.port_mappings().len(), 2);
    drop(repaired);

    // Other settings, other rules: the base batch runs again.
    let v4_only = Firewall::new(FirewallConfig {
        ipv6: false,
        ..config
    })
    .unwrap();
    let postrouting = nft(&["list", "chain", "inet", "libnetwork", "postrouting"]);
    assert!(!postrouting.contains("ip6 saddr"), "{postrouting}");
    assert!(postrouting.contains("masquerade"), "{postrouting}");
    v4_only.remove_network("br-s").unwrap();
    assert!(v4_only.port_mappings().is_empty());
}

const BROKEN: &str = "a_failing_nft_makes_nftables_unavailable";

#[test]
fn a_failing_nft_makes_nftables_unavailable() {
    if !libnetwork_testutil::privileged(BROKEN) {
        return;
    }
    if std::env::var_os(WRAPPER_DIR).is_some() {
        libnetwork_testutil::in_new_netns(|| {
            let err = Firewall::new(FirewallConfig {
                backend: BackendChoice::Nftables,
                ipv6: false,
            })
            .expect_err("nft fails");
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert!(err.to_string().contains("probe nftables"), "{err}");
        });
        return;
    }
    let runs = in_child_with_wrapper(BROKEN, true);
    // The base batch failed, then the probe told why.
    assert!(runs.lines().any(|l| l == "-f -"), "{runs}");
    assert!(runs.lines().any(|l| l == "list tables"), "{runs}");
}
