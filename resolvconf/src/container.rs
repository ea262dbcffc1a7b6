//! Deriving a container's resolv.conf from the host's (pure).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Error, Nameserver, ResolvConf};

/// Google's public resolvers, libnetwork's IPv4 fallback.
pub const DEFAULT_IPV4_NAMESERVERS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
];

/// Google's public resolvers, libnetwork's IPv6 fallback (used when the container has IPv6).
pub const DEFAULT_IPV6_NAMESERVERS: [IpAddr; 2] = [
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844)),
];

/// How a container's resolv.conf is derived from the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDns {
    /// Whether the container has IPv6 connectivity. Without it, IPv6 nameservers (zoned
    /// link-local ones included) are dropped from the host's list.
    pub ipv6: bool,
    /// Servers replacing the host's (`--dns`). Used as given: no loopback or IPv6 filtering,
    /// since the user asked for exactly these.
    pub nameservers: Option<Vec<Nameserver>>,
    /// Domains replacing the host's search list (`--dns-search`); `["."]` or an empty list
    /// means no search line at all.
    pub search: Option<Vec<String>>,
    /// Options replacing the host's (`--dns-option`); an empty list means no options line.
    pub options: Option<Vec<String>>,
    /// IPv4 servers used when no host nameserver is left after filtering. Default: 8.8.8.8,
    /// 8.8.4.4.
    pub fallback_ipv4: Vec<Nameserver>,
    /// IPv6 servers added to the fallback when [`ContainerDns::ipv6`] is set. Default:
    /// 2001:4860:4860::8888, 2001:4860:4860::8844.
    pub fallback_ipv6: Vec<Nameserver>,
}

impl Default for ContainerDns {
    /// IPv4 only, no overrides, libnetwork's fallback servers.
    fn default() -> Self {
        Self {
            ipv6: false,
            nameservers: None,
            search: None,
            options: None,
            fallback_ipv4: DEFAULT_IPV4_NAMESERVERS.map(Nameserver::new).to_vec(),
            fallback_ipv6: DEFAULT_IPV6_NAMESERVERS.map(Nameserver::new).to_vec(),
        }
    }
}

impl ContainerDns {
    /// Whether any of servers, search or options is overridden.
    pub fn has_overrides(&self) -> bool {
        self.nameservers.is_some() || self.search.is_some() || self.options.is_some()
    }
}

/// Removes the nameservers a container cannot use: loopback addresses (`127.0.0.0/8`, `::1`,
/// which would be the container's own loopback) and, without IPv6, every IPv6 address. When
/// none is left, appends the fallback servers (IPv4, plus IPv6 when `ipv6`). Other lines are
/// kept. libnetwork's `FilterResolvDNS`. Returns whether the fallback was used.
pub fn filter_nameservers(conf: &mut ResolvConf, settings: &ContainerDns) -> bool {
    conf.retain_nameservers(|server| !server.is_loopback() && (settings.ipv6 || !server.is_ipv6()));
    if conf.nameservers().next().is_some() {
        return false;
    }
    conf.append_nameservers(&settings.fallback_ipv4);
    if settings.ipv6 {
        conf.append_nameservers(&settings.fallback_ipv6);
    }
    true
}

/// The container's resolv.conf: the host's file with its nameservers filtered
/// ([`filter_nameservers`]) unless overridden, then the overrides of `settings` applied, each
/// category independently. Comments and lines this crate does not interpret are kept.
///
/// # Errors
/// [`Error::InvalidSearchDomain`] or [`Error::InvalidOption`] for override values that cannot
/// be written on one line.
pub fn container_conf(host: &ResolvConf, settings: &ContainerDns) -> Result<ResolvConf, Error> {
    let mut conf = host.clone();

    // Servers: the user's list as given, or the host's minus what a container cannot reach.
    match &settings.nameservers {
        Some(servers) => conf.set_nameservers(servers),
        None => {
            if filter_nameservers(&mut conf, settings) {
                tracing::info!(
                    ipv6 = settings.ipv6,
                    "no usable host nameserver, using fallback servers"
                );
            }
        }
    }

    // Search and options replace the host's independently.
    if let Some(search) = &settings.search {
        conf.set_search(search)?;
    }
    if let Some(options) = &settings.options {
        conf.set_options(options)?;
    }
    Ok(conf)
}

/// The file for a container served by the embedded DNS server at `resolver`: nameservers are
/// `resolver` followed by the file's IPv6 nameservers (which the embedded server does not
/// forward to); search and options are kept; `ndots:0` is added unless the options already set
/// a valid `ndots`. Returns the file and whether the user had set `ndots` (libnetwork's
/// `rebuildDNS`).
///
/// # Errors
/// [`Error::InvalidNdots`] or [`Error::InvalidNdotsNumber`] for a malformed `ndots` option;
/// nothing is built then.
pub fn embedded_resolver_conf(
    conf: &ResolvConf,
    resolver: IpAddr,
) -> Result<(ResolvConf, bool), Error> {
    let ndots_set = conf.ndots()?.is_some();
    let mut out = conf.clone();

    // The embedded server first, then the IPv6 servers it does not proxy.
    let mut servers = vec![Nameserver::new(resolver)];
    servers.extend(conf.nameservers().filter(|s| s.is_ipv6()).cloned());
    out.set_nameservers(&servers);

    // Without a user ndots, names with a dot are still tried in the search domains first.
    if !ndots_set {
        let mut options = conf.options().unwrap_or_default().to_vec();
        options.push("ndots:0".to_owned());
        out.set_options(&options)?;
    }
    Ok((out, ndots_set))
}
