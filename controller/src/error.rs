//! The controller's error type and its mapping onto [`ErrorKind`].

use std::fmt;
use std::sync::Arc;

use libnetwork_types::ErrorKind;

/// A `Result` with the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of controller operations.
///
/// Unless a variant says otherwise, the operation that returned it changed nothing: setup
/// steps are undone when a later step fails ([`Error::RollbackFailed`] says when undoing failed
/// as well), and teardowns try every step and report each failure ([`Error::Teardown`]).
///
/// libnetwork's `error.go` maps as follows: `ErrNoSuchNetwork`, `UnknownNetworkError` →
/// [`Error::NoSuchNetwork`] (NotFound); `ErrNoSuchEndpoint`, `UnknownEndpointError` →
/// [`Error::NoSuchEndpoint`] (NotFound); `ErrInvalidNetworkDriver`, `NetworkTypeError` →
/// [`Error::UnknownDriver`] (NotFound); `ErrInvalidID` → [`Error::InvalidId`] (BadRequest);
/// `ErrInvalidName` → [`Error::InvalidName`] (BadRequest); `NetworkNameError` →
/// [`Error::NetworkExists`] (Conflict: libnetwork says Forbidden, and does not check names at
/// all, see the crate docs); `ActiveEndpointsError` → [`Error::ActiveEndpoints`] (Forbidden);
/// `ActiveContainerError` → [`Error::ActiveContainer`] (Forbidden); `InvalidContainerIDError`
/// → [`Error::InvalidContainerId`] (BadRequest); `ErrDataStoreNotInitialized` →
/// [`Error::NoStore`] (Unavailable). Wrapped errors of the store, IPAM, drivers and the kernel
/// keep the kind of their source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No network with this name or id.
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// No endpoint with this name or id in the network.
    #[error("endpoint {0} not found")]
    NoSuchEndpoint(String),
    /// No sandbox with this id or for this container.
    #[error("sandbox {0} not found")]
    NoSuchSandbox(String),
    /// No network driver is registered for the network type.
    #[error("create network: could not find a network driver for type {0:?}")]
    UnknownDriver(String),
    /// No IPAM driver is registered under the name.
    #[error("create network: could not find an ipam driver named {0:?}")]
    UnknownIpam(String),
    /// A name is empty or blank (libnetwork's `ErrInvalidName`).
    #[error("{0}: invalid name (empty or blank)")]
    InvalidName(&'static str),
    /// An id is empty or cannot be part of a store key (libnetwork's `ErrInvalidID`).
    #[error("{op}: invalid id {id:?}")]
    InvalidId {
        /// What was being done.
        op: &'static str,
        /// The id as given.
        id: String,
    },
    /// A container id is empty (libnetwork's `InvalidContainerIDError`).
    #[error("create sandbox: invalid container id {0:?}")]
    InvalidContainerId(String),
    /// A network with this name or id exists already.
    #[error("create network: network with {what} {value} already exists")]
    NetworkExists {
        /// `name` or `id`.
        what: &'static str,
        /// The name or id.
        value: String,
    },
    /// The network still has endpoints.
    #[error("delete network: network {name} id {id} has active endpoints")]
    ActiveEndpoints {
        /// The network's name.
        name: String,
        /// The network's id.
        id: String,
    },
    /// The endpoint is still joined to a sandbox.
    #[error("delete endpoint: endpoint with name {name} id {id} has active containers")]
    ActiveContainer {
        /// The endpoint's name.
        name: String,
        /// The endpoint's id.
        id: String,
    },
    /// The operation is understood but not allowed (libnetwork's Forbidden errors: duplicate
    /// endpoint names, predefined networks, config-only rules, joins and leaves in the wrong
    /// state).
    #[error("{op}: {reason}")]
    Forbidden {
        /// What was being done.
        op: String,
        /// Why it is not allowed.
        reason: String,
    },
    /// The request is malformed or asks for something impossible.
    #[error("{op}: {reason}")]
    BadRequest {
        /// What was being done.
        op: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Every pool of the network is full.
    #[error("create endpoint: no available IPv{} addresses on this network's address pools", if *.v6 { 6 } else { 4 })]
    NoAvailableAddress {
        /// Whether IPv6 addresses were asked for.
        v6: bool,
    },
    /// No store serves the scope the object lives in.
    #[error("{op}: no datastore is configured for scope {scope}")]
    NoStore {
        /// What was being done.
        op: String,
        /// The scope.
        scope: String,
    },
    /// The datastore failed.
    #[error("{op}: {source}")]
    Store {
        /// What was being done.
        op: String,
        /// The store's error.
        #[source]
        source: libnetwork_datastore::Error,
    },
    /// An IPAM driver failed.
    #[error("{op}: {source}")]
    Ipam {
        /// What was being done.
        op: String,
        /// The driver's error.
        #[source]
        source: libnetwork_ipamapi::Error,
    },
    /// The default IPAM driver could not be started.
    #[error("start the default ipam driver: {0}")]
    IpamInit(#[source] libnetwork_ipam::Error),
    /// A network driver (or the driver registry) failed.
    #[error("{op}: {source}")]
    Driver {
        /// What was being done.
        op: String,
        /// The driver's error.
        #[source]
        source: libnetwork_driverapi::Error,
    },
    /// The bridge driver could not be started.
    #[error("start the bridge driver: {0}")]
    BridgeInit(#[source] libnetwork_driver_bridge::Error),
    /// The firewall could not be set up.
    #[error("set up the firewall: {0}")]
    Firewall(#[source] libnetwork_firewall::Error),
    /// A namespace, link, address or route operation failed.
    #[error("{op}: {source}")]
    Os {
        /// What was being done.
        op: String,
        /// The kernel layer's error.
        #[source]
        source: Arc<libnetwork_osl::Error>,
    },
    /// A hosts file could not be built or changed.
    #[error("{op}: {source}")]
    Hosts {
        /// What was being done.
        op: String,
        /// The error.
        #[source]
        source: libnetwork_etchosts::Error,
    },
    /// A resolv.conf could not be built or written.
    #[error("{op}: {source}")]
    ResolvConf {
        /// What was being done.
        op: String,
        /// The error.
        #[source]
        source: libnetwork_resolvconf::Error,
    },
    /// A file or directory operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A step failed, and undoing the earlier steps failed too: state is partly changed;
    /// `undo` lists what could not be undone (a restart of the controller cleans it up).
    #[error("{error}; undo failed: {}", List(.undo))]
    RollbackFailed {
        /// The error that made the operation give up.
        error: Box<Self>,
        /// The undo steps that failed.
        undo: Vec<Self>,
    },
    /// Some steps of a best-effort teardown failed; the others were done.
    #[error("{op}: {}", List(.failures))]
    Teardown {
        /// What was being torn down.
        op: String,
        /// Every step that failed.
        failures: Vec<Self>,
    },
    /// A bug or an inconsistency the controller cannot explain.
    #[error("{0}")]
    Internal(String),
}

/// Displays errors separated by `; `.
struct List<'a>(&'a [Error]);

impl fmt::Display for List<'_> {
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
    /// The API class of this error (wrapped errors keep their source's kind).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoSuchNetwork(_)
            | Self::NoSuchEndpoint(_)
            | Self::NoSuchSandbox(_)
            | Self::UnknownDriver(_)
            | Self::UnknownIpam(_) => ErrorKind::NotFound,
            Self::InvalidName(_)
            | Self::InvalidId { .. }
            | Self::InvalidContainerId(_)
            | Self::BadRequest { .. } => ErrorKind::BadRequest,
            Self::NetworkExists { .. } => ErrorKind::Conflict,
            Self::ActiveEndpoints { .. }
            | Self::ActiveContainer { .. }
            | Self::Forbidden { .. } => ErrorKind::Forbidden,
            Self::NoAvailableAddress { .. } | Self::NoStore { .. } => ErrorKind::Unavailable,
            Self::Store { source, .. } => source.kind(),
            Self::Ipam { source, .. } => source.kind(),
            Self::IpamInit(source) => source.kind(),
            Self::Driver { source, .. } => source.kind(),
            Self::BridgeInit(source) => source.kind(),
            Self::Firewall(source) => source.kind(),
            Self::Os { source, .. } => source.kind(),
            Self::Hosts { source, .. } => source.kind(),
            Self::ResolvConf { source, .. } => source.kind(),
            Self::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
                _ => ErrorKind::Internal,
            },
            Self::RollbackFailed { error, .. } => error.kind(),
            Self::Teardown { failures, .. } => match failures.as_slice() {
                [only] => only.kind(),
                _ => ErrorKind::Internal,
            },
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn forbidden(op: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Forbidden {
            op: op.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn bad_request(op: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::BadRequest {
            op: op.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn store(op: impl Into<String>) -> impl FnOnce(libnetwork_datastore::Error) -> Self {
        let op = op.into();
        move |source| Self::Store { op, source }
    }

    pub(crate) fn ipam(op: impl Into<String>) -> impl FnOnce(libnetwork_ipamapi::Error) -> Self {
        let op = op.into();
        move |source| Self::Ipam { op, source }
    }

    pub(crate) fn driver(
        op: impl Into<String>,
    ) -> impl FnOnce(libnetwork_driverapi::Error) -> Self {
        let op = op.into();
        move |source| Self::Driver { op, source }
    }

    pub(crate) fn os(op: impl Into<String>) -> impl FnOnce(libnetwork_osl::Error) -> Self {
        let op = op.into();
        move |source| Self::Os {
            op,
            source: Arc::new(source),
        }
    }

    pub(crate) fn hosts(op: impl Into<String>) -> impl FnOnce(libnetwork_etchosts::Error) -> Self {
        let op = op.into();
        move |source| Self::Hosts { op, source }
    }

    pub(crate) fn resolv(
        op: impl Into<String>,
    ) -> impl FnOnce(libnetwork_resolvconf::Error) -> Self {
        let op = op.into();
        move |source| Self::ResolvConf { op, source }
    }

    pub(crate) fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let op = op.into();
        move |source| Self::Io {
            op,
            source: Arc::new(source),
        }
    }

    /// This error, with the undo steps that failed after it (unchanged when none failed).
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

    /// `Ok` when nothing failed, else [`Error::Teardown`].
    pub(crate) fn teardown(op: impl Into<String>, failures: Vec<Self>) -> Result<()> {
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Self::Teardown {
                op: op.into(),
                failures,
            })
        }
    }

    /// Whether the error says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_errors_keep_the_kind_of_their_source() {
        let store = Error::Store {
            op: "store network".into(),
            source: libnetwork_datastore::Error::KeyModified("k".into()),
        };
        assert_eq!(store.kind(), ErrorKind::Conflict);
        let ipam = Error::Ipam {
            op: "allocate".into(),
            source: libnetwork_ipamapi::Error::NoAvailableIps("p".into()),
        };
        assert_eq!(ipam.kind(), ErrorKind::Unavailable);
        let driver = Error::Driver {
            op: "delete network".into(),
            source: libnetwork_driverapi::Error::NoNetwork("n".into()),
        };
        assert_eq!(driver.kind(), ErrorKind::NotFound);
        let rolled = Error::bad_request("x", "y").with_undo(vec![Error::Internal("z".into())]);
        assert_eq!(rolled.kind(), ErrorKind::BadRequest);
        assert!(rolled.to_string().contains("undo failed: z"));
    }

    #[test]
    fn libnetwork_error_kinds_are_kept() {
        let active = Error::ActiveEndpoints {
            name: "n".into(),
            id: "i".into(),
        };
        assert_eq!(active.kind(), ErrorKind::Forbidden);
        assert_eq!(
            active.to_string(),
            "delete network: network n id i has active endpoints"
        );
        assert_eq!(Error::NoSuchNetwork("x".into()).kind(), ErrorKind::NotFound);
        assert_eq!(
            Error::InvalidName("create network").kind(),
            ErrorKind::BadRequest
        );
        let dup = Error::NetworkExists {
            what: "name",
            value: "n".into(),
        };
        assert_eq!(dup.kind(), ErrorKind::Conflict);
        assert_eq!(
            dup.to_string(),
            "create network: network with name n already exists"
        );
        assert_eq!(
            Error::NoAvailableAddress { v6: true }.kind(),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn a_teardown_with_one_failure_has_that_failures_kind() {
        let one = Error::teardown("x", vec![Error::NoSuchEndpoint("e".into())]).unwrap_err();
        assert_eq!(one.kind(), ErrorKind::NotFound);
        let two = Error::teardown(
            "x",
            vec![
                Error::NoSuchEndpoint("e".into()),
                Error::bad_request("a", "b"),
            ],
        )
        .unwrap_err();
        assert_eq!(two.kind(), ErrorKind::Internal);
        assert!(Error::teardown("x", vec![]).is_ok());
    }
}
