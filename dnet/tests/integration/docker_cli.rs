//! The stock `docker` command line manages dnet's networks through its socket.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::harness::{Env, privileged_test};

/// The docker CLI: on PATH, or where Debian's docker.io or a manual install puts it.
fn docker_cli() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("docker"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([
            PathBuf::from("/usr/bin/docker"),
            PathBuf::from("/usr/local/bin/docker"),
        ])
        .find(|p| p.is_file())
}

#[test]
fn the_docker_cli_manages_networks_through_the_socket() {
    let Some(docker) = docker_cli() else {
        if libnetwork_testutil::privileged_required() {
            panic!(
                "no docker CLI found, but LIBNETWORK_TEST_PRIVILEGED=1 requires this test to run (install docker.io)"
            );
        }
        eprintln!(
            "skipped the_docker_cli_manages_networks_through_the_socket: no docker CLI found (install docker.io)"
        );
        return;
    };
    privileged_test("the_docker_cli_manages_networks_through_the_socket", || {
        let env = Env::new();
        let _daemon = env.start_daemon(&[]);
        let config = env.path().join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        let run = |args: &[&str]| -> Output {
            Command::new(&docker)
                .args(args)
                .env("DOCKER_HOST", format!("unix://{}", env.socket().display()))
                .env("DOCKER_CONFIG", &config)
                .env_remove("DOCKER_CONTEXT")
                .env_remove("DOCKER_API_VERSION")
                .output()
                .expect("run docker")
        };
        let ok = |args: &[&str]| -> String {
            let out = run(args);
            assert!(
                out.status.success(),
                "docker {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };

        let id = ok(&[
            "network",
            "create",
            "--subnet",
            "10.83.0.0/24",
            "--gateway",
            "10.83.0.254",
            "--label",
            "team=net",
            "dk1",
        ]);
        let id = id.trim();
        assert_eq!(id.len(), 64, "{id}");
        ok(&["network", "create", "--internal", "dk2"]);

        let listed = ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ]);
        let mut lines: Vec<_> = listed.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "bridge bridge local",
                "dk1 bridge local",
                "dk2 bridge local",
                "host host local",
                "none null local"
            ]
        );
        let filtered = ok(&[
            "network",
            "ls",
            "-q",
            "--no-trunc",
            "--filter",
            "label=team=net",
        ]);
        assert_eq!(filtered.trim(), id);

        let inspected = ok(&["network", "inspect", "dk1"]);
        let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
        let net = &inspected[0];
        assert_eq!(net["Id"], id);
        assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.83.0.0/24");
        assert_eq!(net["IPAM"]["Config"][0]["Gateway"], "10.83.0.254");
        assert_eq!(net["Labels"]["team"], "net");
        let internal = ok(&["network", "inspect", "-f", "{{.Internal}}", "dk2"]);
        assert_eq!(internal.trim(), "true");

        let conflict = run(&["network", "create", "dk1"]);
        assert!(!conflict.status.success());
        assert!(String::from_utf8_lossy(&conflict.stderr).contains("already exists"));
        let missing = run(&["network", "inspect", "nosuch"]);
        assert!(!missing.status.success());
        assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
        let predefined = run(&["network", "rm", "bridge"]);
        assert!(!predefined.status.success());

        // A sandbox keeps dk1 in use; prune takes dk2 only.
        env.dnet_ok(&["sandbox", "create", "--network", "dk1", "--name", "c1"]);
        let pruned = ok(&["network", "prune", "-f"]);
        assert!(
            pruned.contains("dk2") && !pruned.contains("dk1"),
            "{pruned}"
        );
        let in_use = run(&["network", "rm", "dk1"]);
        assert!(!in_use.status.success());
        env.dnet_ok(&["sandbox", "rm", "c1"]);
        assert_eq!(ok(&["network", "rm", "dk1"]).trim(), "dk1");
        let left = ok(&["network", "ls", "--format", "{{.Name}}"]);
        let mut left: Vec<_> = left.lines().collect();
        left.sort_unstable();
        assert_eq!(left, ["bridge", "host", "none"]);
    });
}
