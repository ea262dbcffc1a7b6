//! The port mapper's configuration.

use std::num::NonZeroU32;
use std::time::Duration;

use libnetwork_portallocator::PortRange;

/// How a [`PortMapper`](crate::PortMapper) publishes ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapperConfig {
    /// Run the userland proxy: a tokio task per binding that listens on each of its host ports
    /// and forwards to the container, so that traffic the DNAT rules do not see (from the
    /// host's loopback, or from a container back to its own published port when hairpin NAT is
    /// off) still arrives. When off, the host ports are only checked while mapping (probe-bound,
    /// or for large ranges looked up in the kernel's socket tables), to report a port taken by
    /// another program. Docker's default is on (`--userland-proxy=true`).
    pub userland_proxy: bool,
    /// How long a UDP flow of the proxy (one client address) lives without a datagram in either
    /// direction. Any positive duration; Docker's proxy uses 90 s.
    pub udp_idle_timeout: Duration,
    /// How many ports a request for an ephemeral host port tries before giving up when the
    /// ports chosen are in use by another program (explicit ports are tried once). libnetwork
    /// tries 10 times.
    pub dynamic_port_attempts: NonZeroU32,
    /// The range ephemeral host ports come from; `None` reads the kernel's
    /// `net.ipv4.ip_local_port_range` when the mapper is created (49153-65535 if unreadable),
    /// as libnetwork does.
    pub dynamic_range: Option<PortRange>,
}

impl PortMapperConfig {
    /// Docker's UDP flow idle timeout.
    pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
    /// libnetwork's number of attempts for ephemeral host ports.
    pub const DEFAULT_DYNAMIC_PORT_ATTEMPTS: NonZeroU32 = NonZeroU32::new(10).unwrap();
}

impl Default for PortMapperConfig {
    /// The userland proxy on, 90 s UDP idle timeout, 10 attempts, the kernel's dynamic range.
    fn default() -> Self {
        Self {
            userland_proxy: true,
            udp_idle_timeout: Self::DEFAULT_UDP_IDLE_TIMEOUT,
            dynamic_port_attempts: Self::DEFAULT_DYNAMIC_PORT_ATTEMPTS,
            dynamic_range: None,
        }
    }
}
