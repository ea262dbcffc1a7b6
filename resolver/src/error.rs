//! The crate's error type.

use std::io;
use std::sync::Arc;

use libnetwork_types::ErrorKind;

/// What went wrong in the record directory or the embedded DNS server.
///
/// Every message starts with what was being done and names the network, record or address
/// involved, for example `add record web -> 10.0.0.2 to network 3f2a: network not found`.
/// Answering queries never returns an error: a query that cannot be answered gets a DNS error
/// code (SERVFAIL, REFUSED) instead.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name, network id or network name is malformed. State: unchanged.
    #[error("{op}: {reason}")]
    InvalidInput {
        /// What was being done.
        op: String,
        /// What is wrong with the input.
        reason: String,
    },
    /// The network is not in the directory, or not attached to the sandbox. State: unchanged.
    #[error("{op}: network {network} not found")]
    NetworkNotFound {
        /// What was being done.
        op: String,
        /// The network id asked for.
        network: String,
    },
    /// The network id is already in the directory under another name, or already attached to
    /// the sandbox. State: unchanged.
    #[error("{op}: {reason}")]
    Conflict {
        /// What was being done.
        op: String,
        /// What it clashes with.
        reason: String,
    },
    /// Entering the sandbox's network namespace to bind the listening sockets failed. State:
    /// unchanged (no server was started).
    #[error("{op}: {source}")]
    Namespace {
        /// What was being done.
        op: String,
        /// The sandbox layer's error.
        source: Arc<libnetwork_osl::Error>,
    },
    /// Binding or registering a listening socket failed (the address is taken, or the
    /// namespace has no such address). State: unchanged (sockets already bound were closed).
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The system's answer.
        source: Arc<io::Error>,
    },
    /// A task of the server ended with an error while it was being stopped. State: the server
    /// is stopped and its sockets are closed anyway.
    #[error("{op}: {reason}")]
    Server {
        /// What was being done.
        op: String,
        /// What the server reported.
        reason: String,
    },
}

impl Error {
    /// The class of this error for the API layer.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidInput { .. } => ErrorKind::BadRequest,
            Self::NetworkNotFound { .. } => ErrorKind::NotFound,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Namespace { source, .. } => source.kind(),
            Self::Io { source, .. } => match source.kind() {
                io::ErrorKind::AddrInUse => ErrorKind::Conflict,
                io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
                io::ErrorKind::AddrNotAvailable => ErrorKind::BadRequest,
                _ => ErrorKind::Internal,
            },
            Self::Server { .. } => ErrorKind::Internal,
        }
    }

    /// Whether the network asked for does not exist (in the directory or in the sandbox).
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    pub(crate) fn invalid(op: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            op: op.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn network_not_found(op: impl Into<String>, network: &str) -> Self {
        Self::NetworkNotFound {
            op: op.into(),
            network: network.to_owned(),
        }
    }

    pub(crate) fn conflict(op: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Conflict {
            op: op.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source: Arc::new(source),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_send_sync_and_map_to_api_kinds() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();

        let busy = Error::io("bind", io::Error::from(io::ErrorKind::AddrInUse));
        assert_eq!(busy.kind(), ErrorKind::Conflict);
        assert!(Error::network_not_found("attach", "n1").is_not_found());
        assert_eq!(Error::invalid("add", "empty").kind(), ErrorKind::BadRequest);
        assert_eq!(
            Error::network_not_found("attach network n1", "n1").to_string(),
            "attach network n1: network n1 not found"
        );
    }
}
