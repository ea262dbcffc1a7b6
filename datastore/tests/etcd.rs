//! The shared store behaviours against [`EtcdStore`] and a real etcd server on loopback.
//!
//! The tests share one `etcd` process (started from PATH with a temporary data dir on free
//! 127.0.0.1 ports) while at least one of them runs; each test keeps its keys under its own
//! name. The server is killed, by its PID, when the last test using it drops it. Without an
//! `etcd` binary the tests are skipped with a printed reason, unless
//! `LIBNETWORK_TEST_PRIVILEGED=1`, where they fail.

#[macro_use]
mod common;

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use common::Fixture;
use libnetwork_datastore::{EtcdStore, Precondition, Scope, WatchEvent, key};
use libnetwork_types::ErrorKind;

/// A running etcd server; dropping it kills and reaps the process.
struct EtcdServer {
    child: Child,
    endpoint: String,
    _data: tempfile::TempDir,
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // `Child::kill` signals exactly this process (by its PID).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl EtcdServer {
    /// Starts etcd and waits until it answers. Retries with fresh ports if the process exits
    /// (another process may have taken a port between probing and binding).
    fn start(binary: &PathBuf) -> Self {
        let mut last_log = String::new();
        for _ in 0..3 {
            let data = tempfile::tempdir().unwrap();
            let (client, peer) = (free_port(), free_port());
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log_path = data.path().join("etcd.log");
            let log = File::create(&log_path).unwrap();
            let child = Command::new(binary)
                .arg("--name=default")
                .arg(format!("--data-dir={}", data.path().join("data").display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=default={peer_url}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start etcd");
            let mut server = Self {
                child,
                endpoint: client_url,
                _data: data,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if server.child.try_wait().unwrap().is_some() {
                    break;
                }
                if EtcdStore::connect(&[&server.endpoint]).is_ok() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("etcd did not become healthy; last log:\n{last_log}");
    }
}

/// The server shared by the tests running now, started on first use.
fn shared_server(test: &str) -> Option<Arc<EtcdServer>> {
    static SERVER: Mutex<Weak<EtcdServer>> = Mutex::new(Weak::new());
    let Some(binary) = etcd_binary() else {
        if libnetwork_testutil::privileged_required() {
            panic!("{test}: etcd is not on PATH, but LIBNETWORK_TEST_PRIVILEGED=1 requires it");
        }
        eprintln!("skipped {test}: etcd is not on PATH (install etcd-server)");
        return None;
    };
    let mut slot = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = slot.upgrade() {
        return Some(server);
    }
    let server = Arc::new(EtcdServer::start(&binary));
    *slot = Arc::downgrade(&server);
    Some(server)
}

fn etcd(name: &str) -> Option<Fixture> {
    let server = shared_server(name)?;
    let store = EtcdStore::connect(&[&server.endpoint]).unwrap();
    Some(Fixture {
        store: Box::new(store),
        ns: name.to_owned(),
        _keep: Box::new(server),
    })
}

store_behaviours!(etcd);

#[test]
fn etcd_store_serves_the_global_scope() {
    let Some(f) = etcd("etcd_store_serves_the_global_scope") else {
        return;
    };
    assert_eq!(f.store.scope(), Scope::Global);
}

#[test]
fn connecting_to_a_dead_endpoint_fails_as_unavailable() {
    let port = free_port();
    let err = EtcdStore::connect(&[format!("http://127.0.0.1:{port}")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().starts_with("connect to etcd "), "{err}");
}

#[test]
fn the_blocking_api_works_from_inside_another_runtime() {
    let name = "the_blocking_api_works_from_inside_another_runtime";
    let Some(f) = etcd(name) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let k = key(&[name, "k"]);
    runtime.block_on(async move {
        let index = f.store.put(&k, b"v", Precondition::None).unwrap();
        assert_eq!(f.store.get(&k).unwrap().index, index);
        let watcher = f.store.watch(&k).unwrap();
        drop(watcher);
        // Dropping the store (and its runtime) inside this runtime must not panic either.
        drop(f);
    });
}

#[test]
fn dropping_one_watcher_leaves_the_others_running() {
    let name = "dropping_one_watcher_leaves_the_others_running";
    let Some(f) = etcd(name) else {
        return;
    };
    let prefix = key(&[name]);
    let dropped = f.store.watch(&prefix).unwrap();
    let kept = f.store.watch(&prefix).unwrap();
    drop(dropped);
    let index = f
        .store
        .put(&key(&[name, "k"]), b"v", Precondition::None)
        .unwrap();
    let event = kept.recv_timeout(Duration::from_secs(20)).unwrap().unwrap();
    assert_eq!(event.index(), index);
    assert!(matches!(event, WatchEvent::Put(_)));
}
