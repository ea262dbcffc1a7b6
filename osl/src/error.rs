//! The crate's error type.

use std::fmt;
use std::io;

use libnetwork_types::ErrorKind;

/// What went wrong in the OS sandbox layer.
///
/// Every message starts with what was being done, names the interface, address, route or
/// namespace involved, and ends with what the kernel said, for example
/// `add address 10.0.0.2/24 to eth0 in sandbox /run/docker/netns/0123456789ab: File exists (os
/// error 17)`.
///
/// Unless a variant says otherwise, the operation that returned it left the kernel as it found it:
/// multi-step operations undo their earlier steps before returning the error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused a netlink request (`cause` carries its errno). State: unchanged.
    #[error("{op}: {cause}")]
    Netlink {
        /// What was being done, with the object and namespace it was done to.
        op: String,
        /// The kernel's answer (or a broken netlink connection). Part of the message, so not
        /// repeated as a `source()`.
        cause: io::Error,
    },
    /// A system call on a namespace, a mount, a thread or a file failed. State: unchanged.
    #[error("{op}: {cause}")]
    Os {
        /// What was being done.
        op: String,
        /// The system's answer (part of the message).
        cause: io::Error,
    },
    /// A link, route, neighbour or namespace named in the request does not exist. State:
    /// unchanged.
    #[error("{op}: {what} not found")]
    NotFound {
        /// What was being done.
        op: String,
        /// The missing object.
        what: String,
    },
    /// The request clashes with what is already there (for example an address that overlaps a
    /// route of the sandbox, or a namespace already mounted on a key). State: unchanged.
    #[error("{op}: {reason}")]
    Conflict {
        /// What was being done.
        op: String,
        /// Why it clashes.
        reason: String,
    },
    /// The request is malformed (bad sysctl key, bad prefix, ...). State: unchanged.
    #[error("{op}: {reason}")]
    InvalidInput {
        /// What was being done.
        op: String,
        /// What is wrong with the input.
        reason: String,
    },
    /// A step of a multi-step operation failed and undoing the earlier steps failed too. State:
    /// partly applied: `undo` lists what could not be undone.
    #[error("{error}; undo failed: {}", ErrorList(.undo))]
    RollbackFailed {
        /// The error that made the operation give up (part of the message).
        error: Box<Self>,
        /// The undo steps that failed.
        undo: Vec<Self>,
    },
    /// Some steps of a best-effort teardown failed; the others were done. State: partly torn
    /// down.
    #[error("{op}: {}", ErrorList(.failures))]
    Teardown {
        /// What was being torn down.
        op: String,
        /// Every step that failed.
        failures: Vec<Self>,
    },
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
    /// The class of this error for the API layer: missing links/routes/neighbours are
    /// `NotFound`, existing ones `Conflict`, bad input `BadRequest`, missing privileges
    /// `Forbidden`, and other kernel failures `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Netlink { cause, .. } | Self::Os { cause, .. } => errno_kind(cause),
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::InvalidInput { .. } => ErrorKind::BadRequest,
            Self::RollbackFailed { .. } | Self::Teardown { .. } => ErrorKind::Internal,
        }
    }

    /// Whether the kernel or a check said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// The errno behind this error, if it came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Netlink { cause, .. } | Self::Os { cause, .. } => cause.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn netlink(op: impl Into<String>, cause: io::Error) -> Self {
        Self::Netlink {
            op: op.into(),
            cause,
        }
    }

    pub(crate) fn os(op: impl Into<String>, cause: impl Into<io::Error>) -> Self {
        Self::Os {
            op: op.into(),
            cause: cause.into(),
        }
    }

    pub(crate) fn invalid(op: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            op: op.into(),
            reason: reason.into(),
        }
    }

    /// Wraps `self` with the failures of the undo steps, if any.
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
}

/// Maps a kernel errno to an error kind.
fn errno_kind(e: &io::Error) -> ErrorKind {
    use nix::errno::Errno;
    let Some(code) = e.raw_os_error() else {
        return ErrorKind::Internal;
    };
    match Errno::from_raw(code) {
        Errno::ENOENT | Errno::ENODEV | Errno::ESRCH | Errno::ENXIO | Errno::EADDRNOTAVAIL => {
            ErrorKind::NotFound
        }
        Errno::EEXIST | Errno::EBUSY | Errno::EADDRINUSE | Errno::ENOTEMPTY => ErrorKind::Conflict,
        Errno::EPERM | Errno::EACCES => ErrorKind::Forbidden,
        Errno::EINVAL
        | Errno::ERANGE
        | Errno::EAFNOSUPPORT
        | Errno::EOPNOTSUPP
        | Errno::ENETUNREACH
        | Errno::EHOSTUNREACH
        | Errno::ENAMETOOLONG
        | Errno::ENOTDIR => ErrorKind::BadRequest,
        _ => ErrorKind::Internal,
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errnos_map_to_kinds() {
        let e = |code| Error::netlink("op", io::Error::from_raw_os_error(code));
        assert_eq!(e(libc_enoent()).kind(), ErrorKind::NotFound);
        assert_eq!(e(17).kind(), ErrorKind::Conflict);
        assert_eq!(e(1).kind(), ErrorKind::Forbidden);
        assert_eq!(e(22).kind(), ErrorKind::BadRequest);
        assert_eq!(e(5).kind(), ErrorKind::Internal);
    }

    fn libc_enoent() -> i32 {
        2
    }

    #[test]
    fn netlink_error_message_names_the_operation_and_the_kernel_answer() {
        let e = Error::netlink(
            "add address 10.0.0.2/24 to eth0 in sandbox /run/x",
            io::Error::from_raw_os_error(17),
        );
        assert_eq!(
            e.to_string(),
            "add address 10.0.0.2/24 to eth0 in sandbox /run/x: File exists (os error 17)"
        );
    }

    #[test]
    fn rollback_failure_lists_the_undo_errors_and_is_internal() {
        let e = Error::invalid("add interface", "bad").with_undo(vec![Error::NotFound {
            op: "move back".into(),
            what: "link eth0".into(),
        }]);
        assert_eq!(
            e.to_string(),
            "add interface: bad; undo failed: move back: link eth0 not found"
        );
        assert_eq!(e.kind(), ErrorKind::Internal);
        let plain = Error::invalid("add interface", "bad").with_undo(Vec::new());
        assert_eq!(plain.kind(), ErrorKind::BadRequest);
    }
}
