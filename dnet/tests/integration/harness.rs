//! The test harness: a directory per test with the daemon's data and run directories and
//! socket, the daemon as a child process killed in `Drop`, the `dnet` binary as a client, and
//! a snapshot of the namespace's kernel state.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The binary under test.
pub(crate) const DNET: &str = env!("CARGO_BIN_EXE_dnet");

/// How long a daemon may take to come up or go down (generous: debug builds, 2 cores).
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `body` in fresh network and mount namespaces, or prints why it is skipped.
pub(crate) fn privileged_test(name: &str, body: impl FnOnce() + Send) {
    if !libnetwork_testutil::privileged(name) {
        return;
    }
    libnetwork_testutil::in_new_netns(body);
}

/// A test's directory: data, run directory and socket.
pub(crate) struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A new directory.
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("dnet-test-")
                .tempdir()
                .expect("temporary directory"),
        }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's socket.
    pub(crate) fn socket(&self) -> PathBuf {
        self.path().join("dnet.sock")
    }

    /// The daemon's run directory.
    pub(crate) fn run_dir(&self) -> PathBuf {
        self.path().join("run")
    }

    /// The daemon's log file.
    pub(crate) fn log(&self) -> PathBuf {
        self.path().join("daemon.log")
    }

    /// A `dnet` command talking to this test's daemon.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DNET);
        cmd.args(args)
            .env("DNET_HOST", self.socket())
            .env_remove("DNET_LOG");
        cmd
    }

    /// Runs `dnet` and returns its output.
    pub(crate) fn dnet(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run dnet")
    }

    /// Runs `dnet`, asserts success, returns its standard output.
    pub(crate) fn dnet_ok(&self, args: &[&str]) -> String {
        let out = self.dnet(args);
        assert!(
            out.status.success(),
            "dnet {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Starts the daemon with extra arguments and waits until it answers.
    pub(crate) fn start_daemon(&self, extra: &[&str]) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("open the daemon's log");
        let data = self.path().join("data");
        let run = self.run_dir();
        let mut args = vec![
            "daemon",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--run-dir",
            run.to_str().expect("utf-8 path"),
            "--log-level",
            "info,dnet=debug",
        ];
        args.extend_from_slice(extra);
        let child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        let mut daemon = Daemon {
            child,
            socket: self.socket(),
            log: self.log(),
        };
        daemon.wait_ready();
        daemon
    }

    /// Starts the daemon without waiting for it (for daemons expected to die).
    pub(crate) fn spawn_daemon(&self, extra: &[&str]) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("open the daemon's log");
        let data = self.path().join("data");
        let run = self.run_dir();
        let mut args = vec![
            "daemon",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--run-dir",
            run.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        let child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        Daemon {
            child,
            socket: self.socket(),
            log: self.log(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Namespace files the daemon bound under the run directory are mounts of this
        // thread's mount namespace; detach them so the directory can be removed.
        let prefix = self.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// A running daemon; killed (SIGKILL) when dropped.
pub(crate) struct Daemon {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// The process id.
    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"))
    }

    /// The log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the daemon answers a ping; panics with its log if it exits or never does.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the daemon") {
                panic!(
                    "the daemon exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            if ping(&self.socket) {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the daemon did not answer within {DEADLINE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for the process to end.
    pub(crate) fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the daemon") {
                return Some(status);
            }
            if started.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to end.
    pub(crate) fn wait(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the daemon") {
                return status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the daemon did not exit within {DEADLINE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits; returns the exit status.
    pub(crate) fn terminate(mut self) -> ExitStatus {
        kill(self.pid(), Signal::SIGTERM).expect("signal the daemon");
        self.wait()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Whether a daemon answers `GET /_ping` on the socket.
pub(crate) fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: dnet\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.ends_with("OK")
}

/// A process killed (SIGKILL) when dropped: background `dnet run`s, helper namespaces.
pub(crate) struct Background(Option<Child>);

impl Background {
    /// Watches a child.
    pub(crate) fn new(child: Child) -> Self {
        Self(Some(child))
    }

    /// The child.
    pub(crate) fn child(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("the child is there until waited for")
    }

    /// The process id.
    pub(crate) fn pid(&self) -> Pid {
        let child = self
            .0
            .as_ref()
            .expect("the child is there until waited for");
        Pid::from_raw(i32::try_from(child.id()).expect("pid fits"))
    }

    /// Sends a signal.
    pub(crate) fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal the process");
    }

    /// Waits for the process and returns its output.
    pub(crate) fn wait(mut self) -> Output {
        let child = self.0.take().expect("the child is there until waited for");
        child.wait_with_output().expect("wait for the process")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0
            && matches!(child.try_wait(), Ok(None))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A small TCP server: prints `ready`, then answers `count` connections with
/// `hello from <hostname>`.
pub(crate) fn server_script(port: u16, count: u32) -> String {
    format!(
        "import socket\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('', {port}))\n\
         s.listen(8)\n\
         print('ready', flush=True)\n\
         for _ in range({count}):\n\
         \x20   c, _ = s.accept()\n\
         \x20   c.sendall(('hello from ' + socket.gethostname() + '\\n').encode())\n\
         \x20   c.close()\n"
    )
}

/// A bash one-liner that connects to `host:port` and prints what it reads.
pub(crate) fn client_script(host: &str, port: u16) -> String {
    format!("exec 3<>/dev/tcp/{host}/{port} && cat <&3")
}

/// Runs `bash -c script` in this namespace with a time limit; its standard output.
pub(crate) fn bash(script: &str) -> Output {
    Command::new("timeout")
        .args(["20", "bash", "-c", script])
        .output()
        .expect("run bash")
}

/// Reads lines of a child's standard output until one equals `line`.
pub(crate) fn wait_for_line(child: &mut Child, line: &str) {
    use std::io::BufRead;
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut got = String::new();
    loop {
        got.clear();
        let n = reader.read_line(&mut got).expect("read the child's output");
        assert!(n > 0, "the process ended before printing {line:?}");
        if got.trim() == line {
            return;
        }
    }
}

/// The kernel state of the current network namespace and of the test's run directory:
/// links, addresses, routes, the nftables rules, namespace files and mounts. Comparable
/// between two points of a test.
pub(crate) fn kernel_state(env: &Env) -> String {
    let run = |program: &str, args: &[&str]| -> String {
        let out = Command::new(program)
            .args(args)
            .output()
            .expect("run a tool");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut links: Vec<String> = run("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect();
    links.sort();
    let mut addresses: Vec<String> = run("ip", &["-o", "addr", "show"])
        .lines()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    addresses.sort();
    // Without the carrier state ("linkdown"), which follows the bridge's ports with a delay.
    let mut routes: Vec<String> = run("ip", &["-o", "route", "show"])
        .lines()
        .map(|l| l.replace(" linkdown", ""))
        .collect();
    routes.sort();
    let rules = run("nft", &["-s", "list", "ruleset"]);
    let netns: Vec<String> = std::fs::read_dir(env.run_dir().join("netns"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let prefix = env.path().to_string_lossy().into_owned();
    let mounts: Vec<String> = std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    format!(
        "links: {links:?}\naddresses: {addresses:#?}\nroutes: {routes:#?}\nnamespace files: {netns:?}\nmounts: {mounts:?}\nrules:\n{rules}"
    )
}
