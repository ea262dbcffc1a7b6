//! The error type of the macvlan and ipvlan drivers, and its conversion into the driver
//! contract's error.

use std::fmt;
use std::sync::Arc;

use libnetwork_types::ErrorKind;

/// What went wrong in a macvlan or ipvlan driver.
///
/// Unless a variant says otherwise, the operation that returned it changed nothing: setup steps
/// are undone in reverse order when a later one fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has a value that cannot be parsed or is not allowed (an unknown mode, a bad
    /// MTU, a bad interface name prefix). Nothing changed.
    #[error("parse option {key}={value:?}: {reason}")]
    InvalidOption {
        /// The option key.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The network's IPAM data cannot be used: no IPv4 pool, or the null pool `0.0.0.0/0`
    /// (libnetwork's "ipv4 pool is empty"), or an empty network id. Nothing changed.
    #[error("create network {network}: {reason}")]
    InvalidIpam {
        /// The network.
        network: String,
        /// What is wrong.
        reason: String,
    },
    /// The parent interface cannot be used: `lo`, a name the kernel would refuse, or a
    /// missing parent whose name is not `<link>.<vlan id>` with an id in 1-4094. Nothing
    /// changed.
    #[error("create network {network}: parent interface {parent:?}: {reason}")]
    InvalidParent {
        /// The network.
        network: String,
        /// The parent interface.
        parent: String,
        /// What is wrong.
        reason: String,
    },
    /// Another network of this driver uses the parent interface: libnetwork allows one network
    /// per parent (the same network id given again is a restore, not this error). Nothing
    /// changed.
    #[error("create network {network}: network {other} is already using parent interface {parent}")]
    ParentInUse {
        /// The network being created.
        network: String,
        /// The parent interface.
        parent: String,
        /// The network using it.
        other: String,
    },
    /// A network with this id exists on another parent interface. Nothing changed.
    #[error("create network {network}: network exists on parent interface {parent}")]
    NetworkExists {
        /// The network.
        network: String,
        /// The parent of the existing network.
        parent: String,
    },
    /// A link the operation needs is not on the host: the parent interface, or the link a
    /// VLAN sub-interface is to be made on. Nothing changed.
    #[error("{op}: interface {name} was not found on the host")]
    LinkNotFound {
        /// What was being done.
        op: String,
        /// The missing interface.
        name: String,
    },
    /// The MTU is larger than the parent interface's, which the kernel refuses for stacked
    /// links. Nothing changed.
    #[error(
        "create network {network}: MTU {mtu} is larger than the MTU {parent_mtu} of parent interface {parent}"
    )]
    MtuAboveParent {
        /// The network.
        network: String,
        /// The MTU asked for.
        mtu: u32,
        /// The parent interface.
        parent: String,
        /// Its MTU.
        parent_mtu: u32,
    },
    /// No network with this id. Nothing changed.
    #[error("no network {0}")]
    NoNetwork(String),
    /// No endpoint with this id in the network. Nothing changed.
    #[error("no endpoint {endpoint} in network {network}")]
    NoEndpoint {
        /// The network.
        network: String,
        /// The endpoint.
        endpoint: String,
    },
    /// An endpoint with this id exists already. Nothing changed.
    #[error("create endpoint {0}: endpoint exists")]
    EndpointExists(String),
    /// The endpoint's interface cannot be made as asked: no IPv4 address, an address outside
    /// the network's subnets, a MAC address for an ipvlan interface. Nothing changed.
    #[error("create endpoint {endpoint}: {reason}")]
    InvalidEndpointConfig {
        /// The endpoint.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The endpoint is joined to a sandbox already. Nothing changed.
    #[error("join endpoint {0}: already joined")]
    AlreadyJoined(String),
    /// The endpoint is not joined to a sandbox. Nothing changed.
    #[error("leave endpoint {0}: not joined")]
    NotJoined(String),
    /// The kernel does not know the link type (it answers `EOPNOTSUPP`, which `ip` shows as
    /// "Unknown device type"): no `ipvlan`, `8021q` or `dummy` support is built in and no
    /// module can be loaded. Nothing changed.
    #[error("{op}: the kernel does not support {kind} links: {source}")]
    UnsupportedLinkType {
        /// What was being done.
        op: String,
        /// The link type (`ipvlan`, `vlan`, `dummy`, `macvlan`).
        kind: &'static str,
        /// The osl's error.
        #[source]
        source: libnetwork_osl::Error,
    },
    /// The kernel refused a step. State: unchanged, earlier steps were undone.
    #[error("{op}: {source}")]
    Kernel {
        /// What was being done.
        op: String,
        /// The osl's error.
        #[source]
        source: libnetwork_osl::Error,
    },
    /// The store refused a read or a write. State: the kernel steps of the operation were
    /// undone; nothing was written.
    #[error("{op}: {source}")]
    Store {
        /// What was being done.
        op: String,
        /// The store's error.
        #[source]
        source: libnetwork_datastore::Error,
    },
    /// A step failed and undoing the earlier steps failed too. State: partly applied; `undo`
    /// lists what could not be undone.
    #[error("{error}; undo failed: {}", ErrorList(.undo))]
    RollbackFailed {
        /// The error that made the operation give up.
        error: Box<Self>,
        /// The undo steps that failed.
        undo: Vec<Self>,
    },
    /// Some steps of a best-effort teardown failed; the others were done. State: partly torn
    /// down (the driver forgot the object anyway).
    #[error("{op}: {}", ErrorList(.failures))]
    Teardown {
        /// What was being torn down.
        op: String,
        /// Every step that failed.
        failures: Vec<Self>,
    },
    /// A background task ended without an answer (a panic: a bug). State: unknown.
    #[error("{0}: background task failed")]
    Task(String),
}

/// Displays a list of errors separated by `; `.
struct ErrorList<'a>(&'a [Error]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Error {
    /// The class of this error for the API layer.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidOption { .. }
            | Self::InvalidIpam { .. }
            | Self::InvalidParent { .. }
            | Self::MtuAboveParent { .. }
            | Self::InvalidEndpointConfig { .. } => ErrorKind::BadRequest,
            Self::ParentInUse { .. }
            | Self::NetworkExists { .. }
            | Self::EndpointExists(_)
            | Self::AlreadyJoined(_)
            | Self::NotJoined(_) => ErrorKind::Conflict,
            Self::NoNetwork(_) | Self::NoEndpoint { .. } | Self::LinkNotFound { .. } => {
                ErrorKind::NotFound
            }
            Self::UnsupportedLinkType { .. } => ErrorKind::Unavailable,
            Self::Kernel { source, .. } => source.kind(),
            Self::Store { source, .. } => source.kind(),
            Self::RollbackFailed { .. } | Self::Teardown { .. } | Self::Task(_) => {
                ErrorKind::Internal
            }
        }
    }

    /// Whether this error (or the error a failed rollback wraps) is the kernel refusing a
    /// link type it does not have ([`Error::UnsupportedLinkType`]).
    pub fn is_unsupported_link_type(&self) -> bool {
        match self {
            Self::UnsupportedLinkType { .. } => true,
            Self::RollbackFailed { error, .. } => error.is_unsupported_link_type(),
            _ => false,
        }
    }

    /// A kernel error with what was being done; a refused link type becomes
    /// [`Error::UnsupportedLinkType`].
    pub(crate) fn kernel(op: impl Into<String>, source: libnetwork_osl::Error) -> Self {
        Self::kernel_creating(op, None, source)
    }

    /// [`Error::kernel`] for a request that creates a link of `kind`.
    pub(crate) fn kernel_creating(
        op: impl Into<String>,
        kind: Option<&'static str>,
        source: libnetwork_osl::Error,
    ) -> Self {
        match kind {
            Some(kind) if libnetwork_osl::link_kinds::is_unsupported_link_type(&source) => {
                Self::UnsupportedLinkType {
                    op: op.into(),
                    kind,
                    source,
                }
            }
            _ => Self::Kernel {
                op: op.into(),
                source,
            },
        }
    }

    /// A store error with what was being done.
    pub(crate) fn store(op: impl Into<String>, source: libnetwork_datastore::Error) -> Self {
        Self::Store {
            op: op.into(),
            source,
        }
    }

    /// Wraps `self` with the failures of undo steps, if any.
    pub(crate) fn with_undo(self, undo: Vec<Self>) -> Self {
        if undo.is_empty() {
            self
        } else {
            Self::RollbackFailed {
                error: Box::new(self),
                undo,
            }
        }
    }

    /// `Ok` when `failures` is empty, else a [`Error::Teardown`] listing them.
    pub(crate) fn teardown(op: impl Into<String>, failures: Vec<Self>) -> Result<(), Self> {
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Self::Teardown {
                op: op.into(),
                failures,
            })
        }
    }

    /// The contract's error: `Driver { driver, kind, source }`, naming the driver type.
    pub fn into_driverapi(self, driver: &str) -> libnetwork_driverapi::Error {
        libnetwork_driverapi::Error::Driver {
            driver: driver.to_string(),
            kind: self.kind(),
            source: Arc::new(self),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn os_error(code: i32) -> libnetwork_osl::Error {
        // An osl error as the kernel would make it, through a public path: a missing link.
        let e = io::Error::from_raw_os_error(code);
        libnetwork_osl::Error::Netlink {
            op: "create ipvlan link eth0 in host".into(),
            cause: e,
        }
    }

    #[test]
    fn refused_link_type_is_unavailable_and_recognised() {
        let e = Error::kernel_creating("join endpoint e1", Some("ipvlan"), os_error(95));
        assert!(e.is_unsupported_link_type());
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(
            e.to_string(),
            "join endpoint e1: the kernel does not support ipvlan links: create ipvlan link eth0 \
             in host: Operation not supported (os error 95)"
        );
        // Other refusals keep the kernel's class.
        let e = Error::kernel_creating("join endpoint e1", Some("ipvlan"), os_error(17));
        assert!(!e.is_unsupported_link_type());
        assert_eq!(e.kind(), ErrorKind::Conflict);
        // Without a link being created, EOPNOTSUPP is just a kernel error.
        assert!(!Error::kernel("set mtu", os_error(95)).is_unsupported_link_type());
    }

    #[test]
    fn contract_error_names_the_driver_and_keeps_the_kind() {
        let e = Error::NoNetwork("n1".into()).into_driverapi("ipvlan");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "ipvlan driver: no network n1");
    }

    #[test]
    fn rollback_and_teardown_failures_list_every_error() {
        let e = Error::AlreadyJoined("e1".into()).with_undo(vec![Error::NoNetwork("n".into())]);
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(
            e.to_string(),
            "join endpoint e1: already joined; undo failed: no network n"
        );
        assert!(Error::teardown("delete", Vec::new()).is_ok());
        let e = Error::teardown(
            "delete network n",
            vec![Error::NoNetwork("a".into()), Error::NoNetwork("b".into())],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "delete network n: no network a; no network b"
        );
    }
}
