//! End to end: the daemon, the network commands and `dnet run`, in the test's namespaces.

use std::process::Stdio;

use nix::sys::signal::Signal;

use crate::harness::{
    Background, Env, bash, client_script, kernel_state, privileged_test, server_script,
    wait_for_line,
};

/// Starts `dnet run ... -- python3 -c <server>` in the background and waits until it listens.
fn start_server(env: &Env, run_args: &[&str], port: u16, count: u32) -> Background {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "this test runs its TCP server with python3: install it (apt-get install python3)"
    );
    let script = server_script(port, count);
    let mut args = vec!["run"];
    args.extend_from_slice(run_args);
    args.extend_from_slice(&["--", "python3", "-c", &script]);
    let child = env
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dnet run");
    let mut server = Background::new(child);
    wait_for_line(server.child(), "ready");
    server
}

#[test]
fn two_commands_on_a_network_reach_each_other_by_name() {
    privileged_test("two_commands_on_a_network_reach_each_other_by_name", || {
        let env = Env::new();
        let _daemon = env.start_daemon(&[]);
        env.dnet_ok(&["network", "create", "n1", "--subnet", "10.77.0.0/24"]);
        let server = start_server(&env, &["--network", "n1", "--name", "srv"], 8080, 1);

        let client = env.dnet(&[
            "run",
            "--network",
            "n1",
            "--",
            "bash",
            "-c",
            &client_script("srv", 8080),
        ]);
        assert!(
            client.status.success(),
            "client: {}",
            String::from_utf8_lossy(&client.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&client.stdout), "hello from srv\n");

        let server = server.wait();
        assert!(
            server.status.success(),
            "server: {}",
            String::from_utf8_lossy(&server.stderr)
        );
        // Both sandboxes went with their commands.
        assert_eq!(env.dnet_ok(&["sandbox", "ls", "-q"]), "");
    });
}

#[test]
fn run_gives_the_command_its_own_names_files_and_exit_status() {
    privileged_test(
        "run_gives_the_command_its_own_names_files_and_exit_status",
        || {
            let env = Env::new();
            let _daemon = env.start_daemon(&[]);
            env.dnet_ok(&["network", "create", "n1", "--subnet", "10.78.0.0/24"]);
            let script = "hostname; grep -c '10.78.0.9[[:space:]]*box' /etc/hosts; \
                      grep -c 127.0.0.11 /etc/resolv.conf; ip -o -4 addr show eth0 | grep -c 10.78.0.9; exit 7";
            let out = env.dnet(&[
                "run",
                "--network",
                "n1",
                "--name",
                "box",
                "--ip",
                "10.78.0.9",
                "--",
                "sh",
                "-c",
                script,
            ]);
            assert_eq!(
                out.status.code(),
                Some(7),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), "box\n1\n1\n1\n");
            // The host's files are untouched: the sandbox's were mounted in the command's own
            // mount namespace.
            let hosts = std::fs::read_to_string("/etc/hosts").expect("read /etc/hosts");
            assert!(!hosts.contains("10.78.0.9"));

            let missing = env.dnet(&["run", "--network", "n1", "--", "/nonexistent/command"]);
            assert_eq!(missing.status.code(), Some(127));
            let no_network = env.dnet(&["run", "--network", "nope", "--", "true"]);
            assert_eq!(no_network.status.code(), Some(125));
            let stderr = String::from_utf8_lossy(&no_network.stderr);
            assert!(stderr.contains("404 Not Found"), "{stderr}");
            assert_eq!(env.dnet_ok(&["sandbox", "ls", "-q"]), "");
        },
    );
}

#[test]
fn a_published_port_is_reachable_from_outside_and_from_the_host() {
    privileged_test(
        "a_published_port_is_reachable_from_outside_and_from_the_host",
        || {
            let env = Env::new();
            let _daemon = env.start_daemon(&[]);
            env.dnet_ok(&["network", "create", "web"]);
            let server = start_server(
                &env,
                &["--network", "web", "--name", "www", "-p", "8081:8080"],
                8080,
                2,
            );
            let listed = env.dnet_ok(&["sandbox", "ls"]);
            assert!(listed.contains("0.0.0.0:8081->8080/tcp"), "{listed}");

            // Another namespace stands for a machine outside, linked to this "host" by a veth
            // pair: its traffic arrives on an interface, as real outside traffic does.
            let outside = Background::new(
                std::process::Command::new("unshare")
                    .args(["-n", "sleep", "60"])
                    .spawn()
                    .expect("start the outside namespace"),
            );
            // The namespace exists once unshare has exec'd sleep.
            let pid = outside.pid().to_string();
            let setup = format!(
                "for i in $(seq 100); do [ \"$(readlink /proc/{pid}/exe)\" != \"$(readlink -f $(command -v unshare))\" ] && break; sleep 0.02; done; \
             ip link add out0 type veth peer name out1 netns {pid} && ip addr add 192.0.2.1/24 dev out0 && ip link set out0 up && \
             nsenter -t {pid} -n sh -c 'ip link set lo up && ip addr add 192.0.2.2/24 dev out1 && ip link set out1 up'"
            );
            let out = bash(&setup);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );

            let from_outside = bash(&format!(
                "nsenter -t {pid} -n bash -c '{}'",
                client_script("192.0.2.1", 8081)
            ));
            assert_eq!(
                String::from_utf8_lossy(&from_outside.stdout),
                "hello from www\n",
                "{}",
                String::from_utf8_lossy(&from_outside.stderr)
            );
            let from_host = bash(&client_script("127.0.0.1", 8081));
            assert_eq!(
                String::from_utf8_lossy(&from_host.stdout),
                "hello from www\n",
                "{}",
                String::from_utf8_lossy(&from_host.stderr)
            );
            assert!(server.wait().status.success());
        },
    );
}

#[test]
fn a_restarted_daemon_finds_everything_again_and_running_commands_keep_their_network() {
    privileged_test("a_restarted_daemon_finds_everything_again", || {
        let env = Env::new();
        let daemon = env.start_daemon(&[]);
        env.dnet_ok(&[
            "network",
            "create",
            "n1",
            "--subnet",
            "10.79.0.0/24",
            "--label",
            "k=v",
        ]);
        env.dnet_ok(&["sandbox", "create", "--network", "n1", "--name", "idle"]);
        let live = start_server(
            &env,
            &["--network", "n1", "--name", "live", "--ip", "10.79.0.50"],
            8080,
            3,
        );
        let before = env.dnet_ok(&["network", "inspect", "n1"]);

        let status = daemon.terminate();
        assert!(status.success(), "the daemon stopped with {status}");
        assert!(!env.socket().exists(), "the socket is removed at shutdown");
        // The daemon is gone; the command's sandbox is not.
        let direct = bash(&client_script("10.79.0.50", 8080));
        assert_eq!(String::from_utf8_lossy(&direct.stdout), "hello from live\n");
        let down = env.dnet(&["network", "ls"]);
        assert!(!down.status.success());
        let stderr = String::from_utf8_lossy(&down.stderr);
        assert!(
            stderr.contains("is it running?") && stderr.contains("dnet daemon"),
            "{stderr}"
        );

        let _daemon = env.start_daemon(&[]);
        let after = env.dnet_ok(&["network", "inspect", "n1"]);
        assert_eq!(
            before, after,
            "the network and its endpoints are restored as they were"
        );
        let sandboxes = env.dnet_ok(&["sandbox", "ls"]);
        assert!(
            sandboxes.contains("idle") && sandboxes.contains("live"),
            "{sandboxes}"
        );
        // Names resolve again through the restored DNS.
        let by_name = env.dnet(&[
            "run",
            "--network",
            "n1",
            "--",
            "bash",
            "-c",
            &client_script("live", 8080),
        ]);
        assert_eq!(
            String::from_utf8_lossy(&by_name.stdout),
            "hello from live\n",
            "{}",
            String::from_utf8_lossy(&by_name.stderr)
        );

        // A signal to `dnet run` reaches the command; its sandbox goes with it.
        live.signal(Signal::SIGTERM);
        let out = live.wait();
        assert_eq!(
            out.status.code(),
            Some(128 + 15),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sandboxes = env.dnet_ok(&["sandbox", "ls", "--format", "json"]);
        let sandboxes: serde_json::Value = serde_json::from_str(&sandboxes).unwrap();
        let names: Vec<_> = sandboxes
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["idle"]);
    });
}

/// Removes every sandbox and every network not in `keep` through the command line.
fn remove_all(env: &Env, keep: &[&str]) {
    for id in env.dnet_ok(&["sandbox", "ls", "-q"]).lines() {
        env.dnet_ok(&["sandbox", "rm", id]);
    }
    let networks = env.dnet_ok(&["network", "ls", "--format", "json"]);
    let networks: serde_json::Value = serde_json::from_str(&networks).unwrap();
    for n in networks.as_array().unwrap() {
        let name = n["Name"].as_str().unwrap();
        if !["bridge", "host", "none"].contains(&name) && !keep.contains(&name) {
            env.dnet_ok(&["network", "rm", name]);
        }
    }
}

#[test]
fn a_daemon_killed_mid_operation_leaves_nothing_behind_after_a_restart() {
    privileged_test(
        "a_daemon_killed_mid_operation_leaves_nothing_behind",
        || {
            let env = Env::new();
            let daemon = env.start_daemon(&[]);
            env.dnet_ok(&["network", "create", "n0", "--subnet", "10.80.0.0/24"]);
            // One full run first, so that everything made lazily (chains, sysctls) is in the
            // reference state.
            env.dnet_ok(&["run", "--network", "n0", "-p", "18080:80", "--", "true"]);
            // Kernel state is compared with the daemon stopped: a stopped daemon has finished
            // the interface deletions it does in the background.
            assert!(daemon.terminate().success());
            let reference = kernel_state(&env);

            // The controller's step names (`Config::step_hook`); each operation below reaches
            // its step.
            let steps = [
                ("network:intent-stored", "create"),
                ("network:driver-created", "create"),
                ("network:delete-intent-stored", "delete"),
                ("sandbox:namespace-created", "run"),
                ("endpoint:intent-stored", "run"),
                ("endpoint:driver-created", "run"),
                ("join:started", "run"),
                ("join:driver-joined", "run"),
                ("join:interface-added", "run"),
                ("join:gateway-set", "run"),
                ("join:connectivity-programmed", "run"),
                ("join:files-updated", "run"),
                ("leave:intent-stored", "run"),
                ("leave:driver-left", "run"),
                ("endpoint:delete-intent-stored", "run"),
                ("endpoint:driver-deleted", "run"),
                ("sandbox:checkpoint-deleted", "run"),
            ];
            for (step, operation) in steps {
                let mut doomed = env.spawn_daemon(&["--kill-at-step", step]);
                // Wait for it; it serves until the step is reached.
                let ready = std::time::Instant::now();
                while !crate::harness::ping(&env.socket()) {
                    assert!(
                        ready.elapsed().as_secs() < 60,
                        "{step}: no daemon:\n{}",
                        doomed.log()
                    );
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                match operation {
                    "create" => drop(env.dnet(&["network", "create", "crash"])),
                    "delete" => {
                        env.dnet_ok(&["network", "create", "crash"]);
                        drop(env.dnet(&["network", "rm", "crash"]));
                    }
                    _ => {
                        drop(env.dnet(&["run", "--network", "n0", "-p", "18080:80", "--", "true"]))
                    }
                }
                // The step is reached while the request is served: by the time the client
                // has its answer (a broken connection), the daemon is dead or dying.
                let status = doomed
                    .wait_for(std::time::Duration::from_secs(10))
                    .unwrap_or_else(|| {
                        panic!("{step}: the operation did not reach the step (renamed in the controller?)")
                    });
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(
                    status.signal(),
                    Some(9),
                    "{step}: the daemon was not killed at its step:\n{}",
                    doomed.log()
                );

                let daemon = env.start_daemon(&[]);
                remove_all(&env, &["n0"]);
                // The network that survived still works.
                env.dnet_ok(&["run", "--network", "n0", "-p", "18080:80", "--", "true"]);
                assert!(daemon.terminate().success());
                let state = kernel_state(&env);
                if state != reference {
                    let only = |a: &str, b: &str| -> Vec<String> {
                        a.lines()
                            .filter(|l| !b.lines().any(|m| m == *l))
                            .map(str::to_owned)
                            .collect()
                    };
                    panic!(
                        "{step}: the kernel state differs after restart and clean-up\n\
                         left over: {:#?}\nmissing: {:#?}\nlog:\n{}",
                        only(&state, &reference),
                        only(&reference, &state),
                        std::fs::read_to_string(env.log()).unwrap_or_default()
                    );
                }
            }
        },
    );
}

#[test]
fn prune_removes_unused_networks_only() {
    privileged_test("prune_removes_unused_networks_only", || {
        let env = Env::new();
        let _daemon = env.start_daemon(&[]);
        env.dnet_ok(&["network", "create", "used"]);
        env.dnet_ok(&["network", "create", "unused1"]);
        env.dnet_ok(&["network", "create", "unused2", "--label", "keep"]);
        env.dnet_ok(&["sandbox", "create", "--network", "used", "--name", "s1"]);

        let out = env.dnet_ok(&["network", "prune", "--filter", "label!=keep"]);
        assert_eq!(out, "Deleted Networks:\nunused1\n");
        let out = env.dnet_ok(&["network", "prune"]);
        assert_eq!(out, "Deleted Networks:\nunused2\n");
        let names = env.dnet_ok(&["network", "ls", "--format", "json"]);
        let names: serde_json::Value = serde_json::from_str(&names).unwrap();
        let mut names: Vec<_> = names
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["Name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["bridge", "host", "none", "used"]);
    });
}

#[test]
fn the_demo_runs_the_readme_flow_and_cleans_up() {
    privileged_test("the_demo_runs_the_readme_flow_and_cleans_up", || {
        let before = bash("ip -o link show; nft -s list ruleset");
        let out = std::process::Command::new(crate::harness::DNET)
            .arg("demo")
            .output()
            .expect("run dnet demo");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("Joined endpoint Endpoint1 ("), "{stdout}");
        assert!(
            stdout.contains("to the gateway") && stdout.contains(": ok"),
            "{stdout}"
        );
        assert!(stdout.contains("cleaned up"), "{stdout}");
        // It worked in namespaces of its own: nothing changed here.
        assert_eq!(
            bash("ip -o link show; nft -s list ruleset").stdout,
            before.stdout
        );
    });
}

#[test]
fn the_daemon_owns_its_socket_with_mode_0660_and_logs_json_on_request() {
    privileged_test(
        "the_daemon_owns_its_socket_with_mode_0660_and_logs_json_on_request",
        || {
            use std::os::unix::fs::PermissionsExt;
            let env = Env::new();
            let daemon = env.start_daemon(&["--log-format", "json"]);
            let mode = std::fs::metadata(env.socket())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o660);

            // A second daemon on the same socket refuses to start and leaves the first alone.
            let second = env.dnet(&[
                "daemon",
                "--data-dir",
                "/nonexistent/unused",
                "--run-dir",
                "/nonexistent/unused",
            ]);
            assert!(!second.status.success());
            let stderr = String::from_utf8_lossy(&second.stderr);
            assert!(stderr.contains("already serving"), "{stderr}");
            assert!(crate::harness::ping(&env.socket()));

            assert!(daemon.terminate().success());
            let log = std::fs::read_to_string(env.log()).unwrap();
            let events: Vec<serde_json::Value> = log
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .collect();
            let messages: Vec<_> = events
                .iter()
                .filter_map(|e| e["fields"]["message"].as_str())
                .collect();
            assert!(messages.contains(&"dnet daemon ready"), "{messages:?}");
            assert!(
                messages
                    .iter()
                    .any(|m| m.starts_with("dnet daemon stopped")),
                "{messages:?}"
            );
            // A stale socket file (a daemon that was killed) does not stop the next start.
            std::fs::write(env.socket(), b"").unwrap();
            let again = env.start_daemon(&[]);
            assert!(again.terminate().success());
        },
    );
}

fn thp_enabled(status: &str) -> Option<&str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(str::trim)
}

#[test]
fn the_daemon_runs_without_transparent_huge_pages_and_commands_keep_them() {
    privileged_test(
        "the_daemon_runs_without_transparent_huge_pages_and_commands_keep_them",
        || {
            let env = Env::new();
            let daemon = env.start_daemon(&[]);
            let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
                .expect("the daemon's status");
            assert_eq!(thp_enabled(&status), Some("0"), "{status}");
            // What `dnet run` starts is the user's program: it keeps the machine's setting.
            let own = std::fs::read_to_string("/proc/self/status").expect("the test's status");
            let run = env.dnet_ok(&["run", "--", "cat", "/proc/self/status"]);
            assert_eq!(thp_enabled(&run), thp_enabled(&own), "{run}");
        },
    );
}
