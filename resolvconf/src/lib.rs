//! resolv.conf for sandboxes: parse the host's file, derive a container's, write it safely and
//! notice user edits. libnetwork's `resolvconf` package (and the file logic of its
//! `sandbox_dns_unix.go`).
//!
//! # Mapping to libnetwork
//! - `GetNameservers`, `GetNameserversAsCIDR`, `GetSearchDomains`, `GetOptions` map to
//!   [`ResolvConf::nameservers`] (filter by [`Nameserver::is_ipv6`]), [`Nameserver::cidr`],
//!   [`ResolvConf::search`] and [`ResolvConf::options`]; the last `search`/`options` line wins
//!   and `#` starts a comment anywhere in a line, as there.
//! - `FilterResolvDNS` maps to [`filter_nameservers`]: loopback servers (`127.0.0.0/8`, `::1`)
//!   are dropped, IPv6 ones too when the container has no IPv6, and the fallback servers
//!   (8.8.8.8, 8.8.4.4, plus 2001:4860:4860::8888 and ::8844 with IPv6) are appended only
//!   when nothing is left.
//! - `Build(path, dns, search, options)` and the override branch of `setupDNS` map to
//!   [`container_conf`] with [`ContainerDns`] (a `.` search suppresses the search line), then
//!   [`write_atomic`] / [`write_in_place`].
//! - `Path()` (systemd-resolved detection) maps to [`host_path`], which takes both paths so it
//!   can be tested on temporary files. `GetSpecific` maps to [`read`]; the hash format
//!   `sha256:<hex>` is [`hash`].
//! - `updateDNS`'s "leave a user-edited file alone" rule maps to [`write_if_unmodified`].
//! - `rebuildDNS` (embedded resolver at 127.0.0.11, `ndots` checks) maps to
//!   [`embedded_resolver_conf`].
//!
//! # Design decisions
//! - **Lines keep their text.** [`ResolvConf`] is the file's lines, each with its exact text
//!   and its parsed [`Directive`]. Lines we do not change are written back byte for byte, so
//!   comments, `domain`/`sortlist` lines and anything malformed survive in place, and
//!   `parse(render(parse(x))) == parse(x)` holds for any input. libnetwork instead rebuilds the
//!   file from its three lists whenever an override is given, losing everything else.
//! - **Never fail on input.** Parsing is total: a `nameserver` line whose address does not
//!   parse is kept verbatim as [`Directive::Other`] and ignored, as the regexes of libnetwork
//!   ignore it. Values this crate writes (search domains, options) are checked instead, so it
//!   never writes a line it could not read back.
//! - **Host loopback servers are filtered even with search/options overrides.** libnetwork
//!   keeps the host's servers unfiltered when any override is given, which hands a container
//!   `127.0.0.53`; here only an explicit server override is used as given.
//! - **Pure core.** Parsing, filtering and building do no I/O; the file functions are a thin
//!   layer in `file`. Atomic writes use a temporary file in the same directory and `rename`,
//!   with an in-place variant for bind-mounted files, where `rename` cannot work.
//!
//! # Layout
//! - `lib.rs`: crate docs and [`Error`].
//! - `conf`: the model: [`ResolvConf`], [`Line`], [`Directive`], [`Nameserver`].
//! - `container`: deriving a container's file: [`ContainerDns`], [`container_conf`],
//!   [`filter_nameservers`], [`embedded_resolver_conf`].
//! - `file`: hashing, reading, the systemd-resolved path rule and atomic or in-place writes.
#![forbid(unsafe_code)]

mod conf;
mod container;
mod file;

use std::path::PathBuf;
use std::sync::Arc;

use libnetwork_types::ErrorKind;

pub use conf::{Directive, Line, Nameserver, ResolvConf};
pub use container::{
    ContainerDns, DEFAULT_IPV4_NAMESERVERS, DEFAULT_IPV6_NAMESERVERS, container_conf,
    embedded_resolver_conf, filter_nameservers,
};
pub use file::{
    DEFAULT_PATH, File, SYSTEMD_RESOLVED_PATH, SYSTEMD_RESOLVED_STUB, WriteMode, WriteOutcome,
    hash, host_path, only_systemd_resolved_stub, read, read_host, write_atomic,
    write_if_unmodified, write_in_place,
};

/// Errors of resolv.conf handling. Pure operations change nothing when they fail; the file
/// operations say what state they leave.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed. A failed [`write_atomic`] leaves the file unchanged; a
    /// failed [`write_in_place`] may leave it partly written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A nameserver that is not an IP address (with an optional IPv6 zone).
    #[error("parse nameserver: invalid address {0:?}")]
    InvalidNameserver(String),
    /// A search domain that is empty or contains whitespace or `#`. Nothing was changed.
    #[error("set search domains: invalid domain {0:?}")]
    InvalidSearchDomain(String),
    /// A resolver option that is empty or contains whitespace or `#`. Nothing was changed.
    #[error("set resolver options: invalid option {0:?}")]
    InvalidOption(String),
    /// An `ndots` option without a value or with extra `:` parts.
    #[error("check resolver options: invalid ndots option {0:?}")]
    InvalidNdots(String),
    /// An `ndots` value that is not an integer >= 0.
    #[error("check resolver options: invalid number for ndots option {0:?}")]
    InvalidNdotsNumber(String),
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                ErrorKind::Forbidden
            }
            Self::Io { .. } => ErrorKind::Internal,
            Self::InvalidNameserver(_)
            | Self::InvalidSearchDomain(_)
            | Self::InvalidOption(_)
            | Self::InvalidNdots(_)
            | Self::InvalidNdotsNumber(_) => ErrorKind::BadRequest,
        }
    }
}
