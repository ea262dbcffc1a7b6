//! [`Error`]: what can go wrong finding, activating and calling a plugin.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libnetwork_types::ErrorKind;

/// Errors of plugin discovery, activation and calls.
///
/// Discovery and activation change nothing when they fail. For a failed call, the variant says
/// whether the plugin can have acted on it: [`Error::outcome_unknown`] is true when the request
/// went out and no clear answer came back, so the plugin may or may not have done the work.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name cannot name a plugin (empty, a path, `.` or `..`). Nothing was looked up.
    #[error("find plugin {name:?}: invalid plugin name: {reason}")]
    InvalidName {
        /// The name asked for.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No socket or spec file of that name is in the plugin directories.
    #[error("find plugin {name:?}: not found in {searched}")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The directories searched, comma separated.
        searched: String,
    },
    /// A spec file exists but cannot be read or does not hold a usable address.
    #[error("read plugin spec {}: {reason}", path.display())]
    InvalidSpec {
        /// The spec file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A plugin address is not one this client can talk to.
    #[error("parse plugin address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address text.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// A plugin directory exists but cannot be listed.
    #[error("scan plugin directory {}: {source}", path.display())]
    Scan {
        /// The directory.
        path: PathBuf,
        /// The system's error.
        source: Arc<std::io::Error>,
    },
    /// No connection could be made to the plugin, even after retrying. Nothing was sent.
    #[error(
        "call {method} on plugin {plugin}: connect to {addr}: {source} (gave up after {attempts} \
         attempt{})",
        if *attempts == 1 { "" } else { "s" }
    )]
    Connect {
        /// The plugin's name.
        plugin: String,
        /// The method being called.
        method: String,
        /// The plugin's address.
        addr: String,
        /// How many connections were tried.
        attempts: u32,
        /// The last connection error.
        source: Arc<std::io::Error>,
    },
    /// The request went out but no complete answer came within the timeout. The outcome is
    /// unknown.
    #[error(
        "call {method} on plugin {plugin}: no answer within {timeout:?}; the plugin may or may \
         not have acted on it"
    )]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The method being called.
        method: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The connection failed after the request went out (the plugin died or closed it before
    /// answering). The outcome is unknown.
    #[error(
        "call {method} on plugin {plugin}: connection lost before the answer: {reason}; the plugin \
         may or may not have acted on it"
    )]
    Transport {
        /// The plugin's name.
        plugin: String,
        /// The method being called.
        method: String,
        /// What the HTTP layer said.
        reason: String,
    },
    /// The plugin reported an error: a non-empty `Err` (network drivers, and any plugin answering
    /// with an HTTP error status) or `Error` (IPAM drivers) field in its JSON answer. The message
    /// is the plugin's own. The plugin says it did not do the work.
    #[error("{message}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// The method called.
        method: String,
        /// The HTTP status of the answer (200 when the error came in a normal answer).
        status: u16,
        /// The plugin's message, verbatim.
        message: String,
    },
    /// The plugin answered with an HTTP status other than 200 and no error message of its own
    /// (404 usually means the plugin does not implement the method).
    #[error("call {method} on plugin {plugin}: http status {status}: {body}")]
    Status {
        /// The plugin's name.
        plugin: String,
        /// The method called.
        method: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The answer is not HTTP, not JSON, or not of the expected shape. The plugin may have acted
    /// on the request: the outcome is unknown.
    #[error("call {method} on plugin {plugin}: invalid answer: {reason}")]
    InvalidResponse {
        /// The plugin's name.
        plugin: String,
        /// The method called.
        method: String,
        /// What is wrong, with the start of the answer.
        reason: String,
    },
    /// The request could not be encoded. Nothing was sent.
    #[error("call {method} on plugin {plugin}: encode request: {reason}")]
    Encode {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: String,
        /// What went wrong.
        reason: String,
    },
    /// The plugin activated but does not implement the kind of driver asked for (its
    /// `Implements` list lacks it). The plugin stays active for other kinds.
    #[error("get plugin {name}: plugin does not implement {wanted} (it implements {implements:?})")]
    NotImplements {
        /// The plugin's name.
        name: String,
        /// The kind asked for (`NetworkDriver`, `IpamDriver`, ...).
        wanted: String,
        /// What its manifest lists.
        implements: Vec<String>,
    },
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } | Self::NotImplements { .. } => ErrorKind::NotFound,
            Self::InvalidName { .. } | Self::InvalidAddress { .. } => ErrorKind::BadRequest,
            Self::Connect { .. } | Self::Timeout { .. } | Self::Transport { .. } => {
                ErrorKind::Unavailable
            }
            Self::Plugin { status: 404, .. } | Self::Status { status: 404, .. } => {
                ErrorKind::NotFound
            }
            Self::InvalidSpec { .. }
            | Self::Scan { .. }
            | Self::Plugin { .. }
            | Self::Status { .. }
            | Self::InvalidResponse { .. }
            | Self::Encode { .. } => ErrorKind::Internal,
        }
    }

    /// Whether the plugin may have acted on the call although it failed: the request went out
    /// and the answer timed out, was cut off, was garbage, or was an HTTP error without a
    /// message of the plugin's (other than 404). Callers undo such calls where they can.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport { .. } | Self::InvalidResponse { .. } => true,
            Self::Status { status, .. } => *status != 404,
            _ => false,
        }
    }

    /// Whether the plugin answered that it does not know the method (HTTP 404), as plugins
    /// written before a method existed do.
    pub fn is_method_not_found(&self) -> bool {
        matches!(
            self,
            Self::Status { status: 404, .. } | Self::Plugin { status: 404, .. }
        )
    }

    /// The plugin's own error message, when the plugin reported one.
    pub fn plugin_message(&self) -> Option<&str> {
        match self {
            Self::Plugin { message, .. } => Some(message),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin_error(status: u16) -> Error {
        Error::Plugin {
            plugin: "p".into(),
            method: "NetworkDriver.CreateNetwork".into(),
            status,
            message: "no such pool".into(),
        }
    }

    #[test]
    fn a_plugin_error_displays_only_the_plugins_message() {
        let e = plugin_error(200);
        assert_eq!(e.to_string(), "no such pool");
        assert_eq!(e.plugin_message(), Some("no such pool"));
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(!e.outcome_unknown());
        assert_eq!(plugin_error(404).kind(), ErrorKind::NotFound);
    }

    #[test]
    fn only_answers_that_leave_the_outcome_open_count_as_unknown() {
        let timeout = Error::Timeout {
            plugin: "p".into(),
            method: "m".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.outcome_unknown());
        assert_eq!(timeout.kind(), ErrorKind::Unavailable);
        let status = |status| Error::Status {
            plugin: "p".into(),
            method: "m".into(),
            status,
            body: String::new(),
        };
        assert!(status(500).outcome_unknown());
        assert!(!status(404).outcome_unknown());
        assert!(status(404).is_method_not_found());
        let connect = Error::Connect {
            plugin: "p".into(),
            method: "m".into(),
            addr: "unix:///x".into(),
            attempts: 1,
            source: Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert!(!connect.outcome_unknown());
        assert!(
            connect.to_string().ends_with("(gave up after 1 attempt)"),
            "{connect}"
        );
    }
}
