//! [`Error`] of the remote drivers, and [`Compensation`]: the call sent to undo a call whose
//! outcome is unknown.

use std::fmt;
use std::sync::Arc;

use libnetwork_types::ErrorKind;

/// A call sent to undo another one (`DeleteEndpoint` after a `CreateEndpoint` that timed out),
/// and how it went. Best effort: its failure is reported, never retried.
#[derive(Debug, Clone)]
pub struct Compensation {
    /// The method sent (`NetworkDriver.DeleteEndpoint`).
    pub method: String,
    /// Its error, if it failed.
    pub error: Option<Box<Error>>,
}

impl fmt::Display for Compensation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            None => write!(f, "sent {} to undo it", self.method),
            Some(e) => write!(f, "sent {} to undo it, which failed too: {e}", self.method),
        }
    }
}

/// Errors of the remote network and IPAM drivers.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Finding, activating or calling the plugin failed; for a plugin-reported error the message
    /// is the plugin's own. Whether the plugin acted is told by
    /// [`libnetwork_plugins::Error::outcome_unknown`]; where it is unknown and the call can be
    /// undone, [`Error::OutcomeUnknown`] is returned instead.
    #[error(transparent)]
    Plugin(#[from] libnetwork_plugins::Error),
    /// The call may have been acted on (timeout, lost connection, garbage answer), so the
    /// driver sent the matching undo call; see [`Compensation`] for how that went.
    #[error("{source}; {compensation}")]
    OutcomeUnknown {
        /// The failed call.
        source: libnetwork_plugins::Error,
        /// The undo call.
        compensation: Compensation,
    },
    /// The plugin said it succeeded, but its answer cannot be used (an unparsable address, an
    /// interface without a name, ...). The driver sent the matching undo call when there is
    /// one.
    #[error(
        "{method} on plugin {plugin}: unusable answer: {reason}{}",
        undo_suffix(compensation)
    )]
    InvalidAnswer {
        /// The plugin.
        plugin: String,
        /// The method called.
        method: String,
        /// What is wrong with the answer.
        reason: String,
        /// The undo call, if any.
        compensation: Option<Compensation>,
    },
    /// The plugin tried to change a field of the endpoint's interface that the controller set
    /// (libnetwork refuses this too). The endpoint was deleted again; the interface is unchanged.
    #[error("{method} on plugin {plugin}: {source}; {compensation}")]
    InterfaceConflict {
        /// The plugin.
        plugin: String,
        /// The method called.
        method: String,
        /// The refused change.
        source: Box<libnetwork_driverapi::Error>,
        /// The `DeleteEndpoint` sent.
        compensation: Compensation,
    },
    /// The plugin's capabilities are not usable: its scope is not `local` or `global`. The
    /// driver is not made.
    #[error(
        "get capabilities of plugin {plugin}: invalid {field}: expecting 'local' or 'global', got \
         {got:?}"
    )]
    InvalidCapability {
        /// The plugin.
        plugin: String,
        /// `Scope` or `ConnectivityScope`.
        field: &'static str,
        /// What the plugin said.
        got: String,
    },
    /// Registering a driver failed (a built-in driver has the plugin's name). Nothing changed
    /// in the registry.
    #[error("register plugin {plugin}: {source}")]
    Register {
        /// The plugin.
        plugin: String,
        /// The registry's error.
        source: Box<libnetwork_driverapi::Error>,
    },
    /// A blocking IPAM call could not run on the plugin runtime (called from that runtime's
    /// own thread, which would deadlock, or the runtime cannot start). Nothing was sent.
    #[error("{operation} on ipam plugin {plugin}: {reason}")]
    Runtime {
        /// The plugin.
        plugin: String,
        /// What was being done.
        operation: String,
        /// Why it could not run.
        reason: String,
    },
}

/// `"; <compensation>"` or nothing.
fn undo_suffix(compensation: &Option<Compensation>) -> String {
    compensation
        .as_ref()
        .map(|c| format!("; {c}"))
        .unwrap_or_default()
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Plugin(e) | Self::OutcomeUnknown { source: e, .. } => e.kind(),
            Self::Register { source, .. } => source.kind(),
            Self::InvalidAnswer { .. }
            | Self::InterfaceConflict { .. }
            | Self::InvalidCapability { .. }
            | Self::Runtime { .. } => ErrorKind::Internal,
        }
    }

    /// The plugin's own error message, when the plugin reported one.
    pub fn plugin_message(&self) -> Option<&str> {
        match self {
            Self::Plugin(e) => e.plugin_message(),
            _ => None,
        }
    }

    /// The undo call sent after this failure, if any.
    pub fn compensation(&self) -> Option<&Compensation> {
        match self {
            Self::OutcomeUnknown { compensation, .. }
            | Self::InterfaceConflict { compensation, .. } => Some(compensation),
            Self::InvalidAnswer { compensation, .. } => compensation.as_ref(),
            _ => None,
        }
    }

    /// This error as a network driver error of the driver `driver` (the plugin's name).
    pub fn into_driver_error(self, driver: &str) -> libnetwork_driverapi::Error {
        if let Self::Register { source, .. } = self {
            return *source;
        }
        libnetwork_driverapi::Error::Driver {
            driver: driver.to_owned(),
            kind: self.kind(),
            source: Arc::new(self),
        }
    }

    /// This error as an IPAM error: a plugin-reported message becomes
    /// [`libnetwork_ipamapi::Error::Remote`] (displayed `remote: <message>`, as libnetwork
    /// does), anything else [`libnetwork_ipamapi::Error::Backend`] with this error's kind.
    pub fn into_ipam_error(self, plugin: &str) -> libnetwork_ipamapi::Error {
        if let Some(message) = self.plugin_message() {
            return libnetwork_ipamapi::Error::Remote(message.to_owned());
        }
        libnetwork_ipamapi::Error::Backend {
            context: format!("ipam plugin {plugin}"),
            kind: self.kind(),
            source: Arc::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn plugin_error(message: &str) -> libnetwork_plugins::Error {
        libnetwork_plugins::Error::Plugin {
            plugin: "weave".into(),
            method: "NetworkDriver.CreateNetwork".into(),
            status: 200,
            message: message.into(),
        }
    }

    #[test]
    fn a_plugin_message_reaches_the_driver_and_ipam_errors_verbatim() {
        let driver = Error::from(plugin_error("subnet taken")).into_driver_error("weave");
        assert_eq!(driver.to_string(), "weave driver: subnet taken");
        assert_eq!(driver.source().unwrap().to_string(), "subnet taken");

        let ipam = Error::from(plugin_error("no pools left")).into_ipam_error("weave");
        assert!(matches!(&ipam, libnetwork_ipamapi::Error::Remote(m) if m == "no pools left"));
        assert_eq!(ipam.to_string(), "remote: no pools left");
    }

    #[test]
    fn compensations_say_what_was_sent_and_how_it_went() {
        let timeout = libnetwork_plugins::Error::Timeout {
            plugin: "p".into(),
            method: "NetworkDriver.CreateEndpoint".into(),
            timeout: std::time::Duration::from_secs(60),
        };
        let ok = Error::OutcomeUnknown {
            source: timeout.clone(),
            compensation: Compensation {
                method: "NetworkDriver.DeleteEndpoint".into(),
                error: None,
            },
        };
        assert!(
            ok.to_string()
                .ends_with("; sent NetworkDriver.DeleteEndpoint to undo it"),
            "{ok}"
        );
        assert_eq!(ok.kind(), ErrorKind::Unavailable);
        let failed = Error::OutcomeUnknown {
            source: timeout.clone(),
            compensation: Compensation {
                method: "NetworkDriver.DeleteEndpoint".into(),
                error: Some(Box::new(Error::Plugin(timeout))),
            },
        };
        assert!(
            failed.to_string().contains("which failed too: call"),
            "{failed}"
        );
        assert!(failed.compensation().unwrap().error.is_some());
    }
}
