//! The crate's error type.

use std::sync::Arc;

use libnetwork_types::ErrorKind;

/// Everything that can go wrong in networkdb.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is out of range; nothing was created.
    #[error("validate config: {0}")]
    InvalidConfig(String),
    /// A live entry already exists under this table, network and key; nothing changed.
    #[error("create entry: {table}/{network}/{key} already exists")]
    EntryExists {
        /// The table.
        table: String,
        /// The network.
        network: String,
        /// The key.
        key: String,
    },
    /// No entry (or, for reads and deletes, no live entry) exists under this table, network and
    /// key; nothing changed.
    #[error("{op} entry: {table}/{network}/{key} not found")]
    EntryNotFound {
        /// What was being done (`get`, `update`, `delete`).
        op: &'static str,
        /// The table.
        table: String,
        /// The network.
        network: String,
        /// The key.
        key: String,
    },
    /// An entry value is larger than half a stream message, so it could not be bulk-synced;
    /// nothing changed.
    #[error("write entry: value of {len} bytes exceeds {max}")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The largest allowed.
        max: usize,
    },
    /// This node is not a member of the network; nothing changed.
    #[error("{op}: network {network} not joined")]
    NetworkNotJoined {
        /// What was being done.
        op: &'static str,
        /// The network.
        network: String,
    },
    /// Received bytes are not a valid message; the message was dropped and state is unchanged.
    #[error("decode {what}: {reason}")]
    Decode {
        /// Which message or field failed.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A received packet could not be decrypted with any installed key (or was plain text while
    /// encryption is on); it was dropped and state is unchanged.
    #[error("decrypt packet: {0}")]
    Decrypt(&'static str),
    /// An encryption key has a length AES-GCM does not accept; the keyring is unchanged.
    #[error("add key: length {0} is not 16 or 32 bytes")]
    InvalidKey(usize),
    /// The key asked for is not in the keyring; the keyring is unchanged.
    #[error("{0} key: key not found in keyring")]
    KeyNotFound(&'static str),
    /// The primary key cannot be removed; the keyring is unchanged.
    #[error("remove key: cannot remove the primary key")]
    PrimaryKeyRemoval,
    /// The membership layer (foca) refused an operation or a packet. For a packet, the packet
    /// was dropped; for an operation, membership state is unchanged.
    #[error("membership: {0}")]
    Membership(String),
    /// A socket operation of the transport failed; the engine's state is unchanged.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The transport has been closed; nothing was done.
    #[error("networkdb is closed")]
    Closed,
}

impl Error {
    /// The class of this error, for mapping to API status codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidConfig(_)
            | Self::Decode { .. }
            | Self::Decrypt(_)
            | Self::InvalidKey(_)
            | Self::ValueTooLarge { .. } => ErrorKind::BadRequest,
            Self::EntryExists { .. } | Self::PrimaryKeyRemoval => ErrorKind::Conflict,
            Self::EntryNotFound { .. } | Self::KeyNotFound(_) => ErrorKind::NotFound,
            Self::NetworkNotJoined { .. } => ErrorKind::Forbidden,
            Self::Io { .. } | Self::Closed => ErrorKind::Unavailable,
            Self::Membership(_) => ErrorKind::Internal,
        }
    }

    /// True for [`Error::EntryNotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::EntryNotFound { .. })
    }

    pub(crate) fn decode(what: &'static str, reason: impl ToString) -> Self {
        Self::Decode {
            what,
            reason: reason.to_string(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
