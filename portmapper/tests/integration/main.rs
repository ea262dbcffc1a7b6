//! Integration tests of the port mapper. Every test that binds a socket runs in a private
//! network namespace (skipped with a message when not privileged).

mod allocation;
mod conflict;
mod firewall;
mod proxy_tcp;
mod proxy_udp;
mod ranges;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Mutex, MutexGuard, PoisonError};

use libnetwork_portmapper::{PortMapper, PortMapperConfig, PortRange};
use libnetwork_testutil::{in_new_netns, privileged};
use libnetwork_types::{PortBinding, Protocol};

/// Serialises the tests of this binary. A child process forked by another test's thread (`ip`
/// in the namespace setup, `nft` in the firewall) holds copies of every descriptor of the process
/// until it execs, so a socket this test just closed could briefly still hold its port, and
/// assertions that a port is free would be racy.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `test` on a multi-thread tokio runtime built inside a fresh network namespace.
fn in_netns<F, Fut>(name: &str, test: F)
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if !privileged(name) {
        return;
    }
    let _serial = serial();
    in_new_netns(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build the runtime");
        // A guard against hangs (a lost FIN or datagram leaves a reader waiting), not a timing
        // check: every test takes milliseconds.
        match rt.block_on(async { tokio::time::timeout(HANG_GUARD, test()).await }) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{name}: {e:#}"),
            Err(_) => panic!("{name}: still waiting after {HANG_GUARD:?}"),
        }
    });
}

/// How long a multi-thread test may wait before it is considered hung.
const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `test` on a current-thread runtime with paused time, inside a fresh network namespace.
fn in_netns_paused<F, Fut>(name: &str, test: F)
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if !privileged(name) {
        return;
    }
    let _serial = serial();
    in_new_netns(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("build the runtime");
        if let Err(e) = rt.block_on(test()) {
            panic!("{name}: {e:#}");
        }
    });
}

/// The dynamic range of the test mappers.
const DYNAMIC: (u16, u16) = (40000, 40009);

/// A mapper without firewall, with a small dynamic range.
fn mapper(userland_proxy: bool) -> PortMapper {
    PortMapper::new(
        PortMapperConfig {
            userland_proxy,
            dynamic_range: Some(PortRange::new(DYNAMIC.0, DYNAMIC.1).unwrap()),
            ..PortMapperConfig::default()
        },
        None,
    )
}

const CONTAINER: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 17, 0, 2));
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A binding of container port `port` to `host_port..=host_port_end` on every address.
fn binding(proto: Protocol, port: u16, host_port: u16, host_port_end: u16) -> PortBinding {
    PortBinding {
        proto,
        ip: None,
        port,
        host_ip: None,
        host_port,
        host_port_end,
    }
}

fn tcp(port: u16, host_port: u16) -> PortBinding {
    binding(Protocol::Tcp, port, host_port, 0)
}

/// Whether another program could bind TCP `0.0.0.0:port` now (the port is neither held by a
/// proxy nor by anything else).
fn tcp_port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).is_ok()
}
