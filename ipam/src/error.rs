//! The crate's [`Error`]: configuring the allocator and loading its state.
//!
//! Requests (pools and addresses) answer with the driver contract's
//! [`libnetwork_ipamapi::Error`]; this enum covers what happens before and around them.

use std::sync::Arc;

use libnetwork_ipamapi::Error as ApiError;
use libnetwork_types::ErrorKind;

/// Errors of configuring the allocator and of loading its state from a store. Nothing is
/// created or changed when one is returned.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A default address pool's base is not a network (`{"base": ...}` of
    /// `default-address-pools`).
    #[error("configure default address pools: invalid base pool {0:?}")]
    InvalidBasePool(String),
    /// A default address pool's size is not a prefix length between the base's and the
    /// family's maximum, or would split the base into more than 2^64 pools.
    #[error("configure default address pools: invalid pools size {size} for base {base}")]
    InvalidPoolSize {
        /// The base network.
        base: String,
        /// The size asked for.
        size: i32,
    },
    /// The store could not be read.
    #[error("load ipam state: {0}")]
    Store(#[from] libnetwork_datastore::Error),
    /// A stored value is not what this allocator writes.
    #[error("load ipam state: malformed value at {key}: {reason}")]
    Corrupt {
        /// The store key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidBasePool(_) | Self::InvalidPoolSize { .. } => ErrorKind::BadRequest,
            Self::Store(e) => e.kind(),
            Self::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}

impl From<Error> for ApiError {
    /// State that cannot be (re)loaded surfaces to IPAM callers as a backend failure.
    fn from(e: Error) -> Self {
        Self::Backend {
            context: "ipam state".into(),
            kind: e.kind(),
            source: Arc::new(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_are_bad_requests_and_corruption_is_internal() {
        assert_eq!(
            Error::InvalidBasePool("x".into()).kind(),
            ErrorKind::BadRequest
        );
        let size = Error::InvalidPoolSize {
            base: "10.0.0.0/8".into(),
            size: 4,
        };
        assert_eq!(size.kind(), ErrorKind::BadRequest);
        assert!(size.to_string().contains("invalid pools size 4"), "{size}");
        let corrupt = Error::Corrupt {
            key: "k".into(),
            reason: "r".into(),
        };
        assert_eq!(corrupt.kind(), ErrorKind::Internal);
        let api: ApiError = corrupt.into();
        assert_eq!(api.kind(), ErrorKind::Internal);
        let store: ApiError = Error::Store(libnetwork_datastore::Error::Closed).into();
        assert_eq!(store.kind(), ErrorKind::Unavailable);
    }
}
