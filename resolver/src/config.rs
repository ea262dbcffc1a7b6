//! The configuration of one embedded DNS server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::error::{Error, Result};

/// The address the embedded server listens on inside a sandbox, as in libnetwork and Docker.
/// The controller writes it as the sandbox's first nameserver (see
/// `libnetwork_resolvconf::embedded_resolver_conf`).
pub const RESOLVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// The default listen address: `127.0.0.11:53`.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(RESOLVER_IP), DNS_PORT);

/// At most this many upstream servers are used; more are ignored (libnetwork's `maxExtDNS`,
/// also glibc's `MAXNS`).
pub const MAX_UPSTREAMS: usize = 3;

/// The TTL of locally answered records, in seconds (libnetwork's `respTTL`).
pub const LOCAL_TTL: u32 = 600;

/// The default time a forwarded query may take in all (libnetwork's `extIOTimeout`).
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(4);

/// The default time to wait for an upstream server before asking the next one as well.
pub const DEFAULT_FAILOVER_AFTER: Duration = Duration::from_millis(500);

/// The default bound on queries being forwarded at once (libnetwork's `maxConcurrent`).
pub const DEFAULT_MAX_IN_FLIGHT: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// How one sandbox's embedded DNS server listens and forwards.
///
/// ```
/// use std::net::SocketAddr;
/// use libnetwork_resolver::ResolverConfig;
///
/// // The host's resolv.conf nameservers, as the controller read them.
/// let upstreams: Vec<SocketAddr> = ["192.0.2.53:53", "198.51.100.53:53"]
///     .iter()
///     .map(|s| s.parse().unwrap())
///     .collect();
/// let config = ResolverConfig { upstreams, ..ResolverConfig::default() };
/// assert_eq!(config.listen.to_string(), "127.0.0.11:53");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// The address the UDP and TCP sockets are bound to inside the sandbox's namespace.
    /// Default [`DEFAULT_LISTEN`] (`127.0.0.11:53`; `127.0.0.0/8` is on `lo`). Port 0 picks a
    /// free port (UDP and TCP then share it).
    pub listen: SocketAddr,
    /// The servers queries that are not answered locally go to, in order of preference;
    /// usually the host's resolv.conf nameservers on port 53. Only the first
    /// [`MAX_UPSTREAMS`] are used. Sockets to them are opened in the namespace the server's
    /// tokio runtime runs in (the host's), as Docker does, so sandboxes without external
    /// connectivity still resolve external names. Empty: such queries get SERVFAIL.
    pub upstreams: Vec<SocketAddr>,
    /// The time a forwarded query may take in all, across every upstream server; after it
    /// the client gets SERVFAIL (or the best error an upstream sent). Default 4 s
    /// ([`DEFAULT_FORWARD_TIMEOUT`]); must be more than zero.
    pub forward_timeout: Duration,
    /// How long an upstream server may stay silent before the next one is asked as well
    /// (the first server's answer is still accepted if it comes first). A server that
    /// refuses, fails or answers SERVFAIL/REFUSED hands over at once. Default 500 ms
    /// ([`DEFAULT_FAILOVER_AFTER`]), so a dead first server costs half a second; must be
    /// more than zero.
    pub failover_after: Duration,
    /// The number of queries this server forwards at once; a query over the bound gets
    /// REFUSED at once (libnetwork drops it). Local answers never wait on anything and are
    /// not counted. Default 1024 ([`DEFAULT_MAX_IN_FLIGHT`]).
    pub max_in_flight: NonZeroUsize,
    /// Whether the sandbox's resolv.conf sets `ndots` itself (the second value returned by
    /// `libnetwork_resolvconf::embedded_resolver_conf`). When set, an A or AAAA query for a
    /// single-label name that is not known locally gets an empty NOERROR answer instead of
    /// being forwarded, so the client goes on with its search domains (libnetwork's
    /// `NdotsSet`). Default false.
    pub ndots_set: bool,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            upstreams: Vec::new(),
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            failover_after: DEFAULT_FAILOVER_AFTER,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            ndots_set: false,
        }
    }
}

impl ResolverConfig {
    /// Checks the configuration and returns the upstream servers that will be used.
    pub(crate) fn validate(&self) -> Result<Vec<SocketAddr>> {
        let op = "check the embedded dns server's configuration";
        if self.forward_timeout.is_zero() || self.failover_after.is_zero() {
            return Err(Error::invalid(op, "zero forward timeout or failover delay"));
        }
        validate_upstreams(&self.upstreams)
    }
}

/// Checks upstream servers and keeps the first [`MAX_UPSTREAMS`].
pub(crate) fn validate_upstreams(upstreams: &[SocketAddr]) -> Result<Vec<SocketAddr>> {
    for server in upstreams {
        if server.ip().is_unspecified() || server.port() == 0 {
            return Err(Error::invalid(
                "check the upstream dns servers",
                format!("{server} is not a server address"),
            ));
        }
    }
    Ok(upstreams.iter().take(MAX_UPSTREAMS).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_three_upstreams_are_used() {
        let upstreams: Vec<SocketAddr> = (1..=5)
            .map(|i| SocketAddr::from(([192, 0, 2, i], 53)))
            .collect();
        let config = ResolverConfig {
            upstreams: upstreams.clone(),
            ..ResolverConfig::default()
        };
        assert_eq!(config.validate().unwrap(), upstreams[..3]);
    }

    #[test]
    fn unusable_settings_are_rejected() {
        let zero = ResolverConfig {
            forward_timeout: Duration::ZERO,
            ..ResolverConfig::default()
        };
        assert!(zero.validate().is_err());
        let unspecified = ResolverConfig {
            upstreams: vec!["0.0.0.0:53".parse().unwrap()],
            ..ResolverConfig::default()
        };
        assert!(unspecified.validate().is_err());
        let port_zero = ResolverConfig {
            upstreams: vec!["192.0.2.1:0".parse().unwrap()],
            ..ResolverConfig::default()
        };
        assert!(port_zero.validate().is_err());
    }
}
