//! The crate's error type.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libnetwork_types::ErrorKind;

/// Errors of store operations. Unless a variant says otherwise, the store is unchanged.
///
/// Backend sources are kept behind `Arc` so that the error is `Clone`: one failed group commit
/// answers every writer of its batch with the same cause.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key does not exist.
    #[error("key not found: {0}")]
    KeyNotFound(String),
    /// A precondition did not hold (libkv's ErrKeyModified / ErrKeyExists).
    #[error("key modified: {0}")]
    KeyModified(String),
    /// A key is malformed: empty, or (for [`crate::parse_key`]) outside the root.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An atomic batch is malformed (empty, or names one key twice).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// The redb file could not be created or opened (another process may hold it). No store
    /// was opened.
    #[error("open store {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb or the file system said.
        #[source]
        source: Arc<::redb::Error>,
    },
    /// A redb read or write failed. A failed write transaction is aborted, so the file is
    /// unchanged; after an I/O error redb may refuse every later write until it is reopened.
    #[error("{context}: {source}")]
    Storage {
        /// What was being done (`commit transaction`, `read key`, ...).
        context: &'static str,
        /// What redb said.
        #[source]
        source: Arc<::redb::Error>,
    },
    /// An etcd request failed or could not be sent. A failed write may still have been applied
    /// by the server when the answer was lost on the way back.
    #[error("{context}: {source}")]
    Etcd {
        /// What was being done.
        context: String,
        /// What the etcd client said.
        #[source]
        source: Arc<etcd_client::Error>,
    },
    /// An etcd request got no answer in time. As for [`Error::Etcd`], a write may still have
    /// been applied.
    #[error("{context}: no answer within {timeout:?}")]
    Timeout {
        /// What was being done.
        context: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// The etcd backend's runtime could not be started. No store was created.
    #[error("start etcd client runtime: {0}")]
    Runtime(#[source] Arc<std::io::Error>),
    /// The store is shutting down (its committer or runtime is gone); nothing was written.
    #[error("store closed")]
    Closed,
    /// A watch ended: the store was closed, or the backend cancelled or lost the watch. No more
    /// events follow; watch again (and re-read) to resume.
    #[error("watch ended: {0}")]
    WatchEnded(String),
    /// An object could not be encoded as JSON; nothing was written.
    #[error("encode object {key}: {source}")]
    Encode {
        /// The object's key.
        key: String,
        /// What serde_json said.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// A stored value is not the JSON of the expected object.
    #[error("decode object {key}: {source}")]
    Decode {
        /// The key of the value.
        key: String,
        /// What serde_json said.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The backend answered something this crate does not understand (a bug or a foreign
    /// writer): for example a non-UTF-8 key in etcd.
    #[error("unexpected backend answer: {0}")]
    Unexpected(String),
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::KeyNotFound(_) => ErrorKind::NotFound,
            Self::KeyModified(_) => ErrorKind::Conflict,
            Self::InvalidKey { .. } | Self::InvalidBatch(_) => ErrorKind::BadRequest,
            Self::Open { .. }
            | Self::Etcd { .. }
            | Self::Timeout { .. }
            | Self::Closed
            | Self::WatchEnded(_) => ErrorKind::Unavailable,
            Self::Storage { .. }
            | Self::Runtime(_)
            | Self::Encode { .. }
            | Self::Decode { .. }
            | Self::Unexpected(_) => ErrorKind::Internal,
        }
    }

    /// Whether this is [`Error::KeyNotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::KeyNotFound(_))
    }

    /// Whether this is [`Error::KeyModified`] (a lost optimistic-concurrency race).
    pub fn is_modified(&self) -> bool {
        matches!(self, Self::KeyModified(_))
    }

    /// Wraps a redb failure with what was being done.
    pub(crate) fn storage<E: Into<::redb::Error>>(context: &'static str) -> impl FnOnce(E) -> Self {
        move |source| Self::Storage {
            context,
            source: Arc::new(source.into()),
        }
    }

    /// Wraps an etcd client failure with what was being done.
    pub(crate) fn etcd(context: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> Self {
        move |source| Self::Etcd {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_errors_map_to_not_found_and_conflict() {
        assert_eq!(Error::KeyNotFound("k".into()).kind(), ErrorKind::NotFound);
        assert_eq!(Error::KeyModified("k".into()).kind(), ErrorKind::Conflict);
        assert_eq!(
            Error::InvalidBatch("x".into()).kind(),
            ErrorKind::BadRequest
        );
        assert_eq!(Error::Closed.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn storage_errors_name_what_was_being_done() {
        let e = Error::storage("commit transaction")(::redb::Error::DatabaseClosed);
        assert!(e.to_string().starts_with("commit transaction: "), "{e}");
        assert_eq!(e.kind(), ErrorKind::Internal);
        let copy = e.clone();
        assert_eq!(copy.to_string(), e.to_string());
    }
}
