//! The driver's error type and its mapping to the driver contract's error.

use std::fmt;
use std::sync::Arc;

use libnetwork_types::ErrorKind;

/// What went wrong in the bridge driver.
///
/// Unless a variant says otherwise, the operation that returned it changed nothing: setup steps
/// are undone in reverse order when a later one fails. Errors of the layers below are part of
/// the message (`cause` fields), so they are not repeated as a `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has a value that cannot be parsed or is out of range (libnetwork's "failed
    /// to parse ... value"). Nothing changed.
    #[error("parse option {key}={value:?}: {reason}")]
    InvalidOption {
        /// The option key.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `com.docker.network.bridge.*` option this driver does not know. Nothing changed.
    #[error("parse options: unknown bridge option {0:?}")]
    UnknownOption(String),
    /// The MTU is negative or outside what an Ethernet link accepts (68..=65535; 0 keeps the
    /// kernel's default). Nothing changed.
    #[error("parse options: invalid MTU {0} (want 0 or 68..=65535)")]
    InvalidMtu(i64),
    /// The IPAM data cannot configure a bridge (no IPv4 pool, empty pool, gateway outside
    /// the pool, ...). Nothing changed.
    #[error("check address pools of network {network}: {reason}")]
    InvalidIpam {
        /// The network.
        network: String,
        /// What is wrong.
        reason: String,
    },
    /// More than one pool of one family was given; a bridge has one subnet per family.
    /// Nothing changed.
    #[error("check address pools of network {0}: bridge driver doesn't support multiple subnets")]
    MultipleSubnets(String),
    /// A default gateway (`DefaultGatewayIPv4`/`DefaultGatewayIPv6` auxiliary address) lies
    /// outside the network's subnet. Nothing changed.
    #[error("check default gateway {gateway} of network {network}: outside the subnet")]
    InvalidGateway {
        /// The network.
        network: String,
        /// The gateway.
        gateway: String,
    },
    /// A network with this id exists already. Nothing changed.
    #[error("create network {0}: network exists")]
    NetworkExists(String),
    /// Another network of this driver uses the bridge name (the issue asks for a bad-request
    /// answer, libnetwork answers forbidden). Nothing changed.
    #[error("create network {network}: bridge name {bridge} is used by network {other}")]
    BridgeNameInUse {
        /// The network being created.
        network: String,
        /// The bridge name.
        bridge: String,
        /// The network that uses it.
        other: String,
    },
    /// The subnet overlaps the subnet of another network of this driver. Nothing changed.
    #[error("create network {network}: subnet {subnet} overlaps network {other}")]
    SubnetOverlap {
        /// The network being created.
        network: String,
        /// Its subnet.
        subnet: String,
        /// The network it overlaps.
        other: String,
    },
    /// A link with the bridge's name exists and is not a bridge. Nothing changed.
    #[error("create network {network}: existing interface {name} is not a bridge")]
    NotABridge {
        /// The network being created.
        network: String,
        /// The interface name.
        name: String,
    },
    /// The default bridge must be called `docker0` unless it exists already
    /// (libnetwork's `NonDefaultBridgeExistError`). Nothing changed.
    #[error("create network {network}: default bridge {name} does not exist")]
    NonDefaultBridge {
        /// The network being created.
        network: String,
        /// The requested name.
        name: String,
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
    /// The endpoint's interface or options cannot be used (no IPv4 address, an address
    /// outside the subnet, a bad port binding). Nothing changed.
    #[error("configure endpoint {endpoint}: {reason}")]
    InvalidEndpointConfig {
        /// The endpoint.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// An IPv6 address must be derived from the MAC but the subnet has fewer than 48 host
    /// bits. Nothing changed.
    #[error(
        "configure endpoint {endpoint}: subnet {subnet} is too small, at least 48 host bits are needed"
    )]
    Ipv6SubnetTooSmall {
        /// The endpoint.
        endpoint: String,
        /// The network's IPv6 subnet.
        subnet: String,
    },
    /// The endpoint is joined to a sandbox already. Nothing changed.
    #[error("join endpoint {0}: already joined")]
    AlreadyJoined(String),
    /// The endpoint is not joined to a sandbox. Nothing changed.
    #[error("leave endpoint {0}: not joined")]
    NotJoined(String),
    /// No free host interface name was found after a few random tries. Nothing changed.
    #[error("name a host interface: no free name found")]
    NoFreeName,
    /// The kernel refused a step. State: unchanged, earlier steps were undone.
    #[error("{op}: {cause}")]
    Kernel {
        /// What was being done.
        op: String,
        /// The osl's error.
        cause: libnetwork_osl::Error,
    },
    /// The kernel refused a link request made on the driver's own netlink socket (attaching a
    /// veth to its bridge, retiring it). State: unchanged (a join undoes its veth).
    #[error("{op}: {cause}")]
    Link {
        /// What was being done.
        op: String,
        /// The netlink error.
        cause: rtnetlink::Error,
    },
    /// A system call failed (opening a netlink socket). Nothing changed.
    #[error("{op}: {cause}")]
    Io {
        /// What was being done.
        op: String,
        /// The system's answer.
        cause: std::io::Error,
    },
    /// The store refused a read or a write. State: the kernel steps of the operation were
    /// undone; nothing was written.
    #[error("{op}: {cause}")]
    Store {
        /// What was being done.
        op: String,
        /// The store's error.
        cause: libnetwork_datastore::Error,
    },
    /// The firewall refused to install or remove rules. When installing, nothing was
    /// changed (earlier steps were undone); when removing, the rest of the teardown was done.
    #[error("{op}: {cause}")]
    Firewall {
        /// What was being done.
        op: String,
        /// The firewall's error.
        cause: libnetwork_firewall::Error,
    },
    /// The port mapper refused to publish or withdraw ports. When publishing, nothing was
    /// published; when withdrawing, the ports were freed anyway.
    #[error("{op}: {cause}")]
    Ports {
        /// What was being done.
        op: String,
        /// The port mapper's error.
        cause: libnetwork_portmapper::Error,
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
            | Self::UnknownOption(_)
            | Self::InvalidMtu(_)
            | Self::InvalidIpam { .. }
            | Self::InvalidGateway { .. }
            | Self::BridgeNameInUse { .. }
            | Self::NotABridge { .. }
            | Self::InvalidEndpointConfig { .. } => ErrorKind::BadRequest,
            Self::MultipleSubnets(_)
            | Self::NonDefaultBridge { .. }
            | Self::Ipv6SubnetTooSmall { .. } => ErrorKind::Forbidden,
            Self::NetworkExists(_)
            | Self::SubnetOverlap { .. }
            | Self::EndpointExists(_)
            | Self::AlreadyJoined(_)
            | Self::NotJoined(_) => ErrorKind::Conflict,
            Self::NoNetwork(_) | Self::NoEndpoint { .. } => ErrorKind::NotFound,
            Self::NoFreeName => ErrorKind::Unavailable,
            Self::Kernel { cause, .. } => cause.kind(),
            Self::Store { cause, .. } => cause.kind(),
            Self::Firewall { cause, .. } => cause.kind(),
            Self::Ports { cause, .. } => cause.kind(),
            Self::Link { cause, .. } => match crate::links::errno(cause) {
                Some(nix::libc::ENODEV | nix::libc::ENOENT) => ErrorKind::NotFound,
                Some(nix::libc::EEXIST | nix::libc::EBUSY) => ErrorKind::Conflict,
                Some(nix::libc::EINVAL | nix::libc::ERANGE) => ErrorKind::BadRequest,
                Some(nix::libc::EPERM | nix::libc::EACCES) => ErrorKind::Forbidden,
                _ => ErrorKind::Internal,
            },
            Self::Io { .. }
            | Self::RollbackFailed { .. }
            | Self::Teardown { .. }
            | Self::Task(_) => ErrorKind::Internal,
        }
    }

    /// A kernel error with what was being done.
    pub(crate) fn kernel(op: impl Into<String>, cause: libnetwork_osl::Error) -> Self {
        Self::Kernel {
            op: op.into(),
            cause,
        }
    }

    /// A store error with what was being done.
    pub(crate) fn store(op: impl Into<String>, cause: libnetwork_datastore::Error) -> Self {
        Self::Store {
            op: op.into(),
            cause,
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
}

impl From<Error> for libnetwork_driverapi::Error {
    /// The contract's error: `Driver { driver: "bridge", kind, source }`.
    fn from(e: Error) -> Self {
        Self::Driver {
            driver: crate::DRIVER_TYPE.to_string(),
            kind: e.kind(),
            source: Arc::new(e),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
