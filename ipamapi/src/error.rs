//! The errors of the IPAM contract.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use libnetwork_types::ErrorKind;

/// Errors of IPAM drivers. Unless a variant says otherwise, nothing changed.
///
/// libnetwork's well-known errors map onto the variants as follows (kinds per
/// [`ErrorKind`]; libnetwork's `Forbidden` for overlaps and double allocations becomes
/// `Conflict`, its `NoService` becomes `Unavailable`):
///
/// | libnetwork | variant | kind |
/// |---|---|---|
/// | `ErrIpamInternalError` | [`Error::Internal`] | Internal |
/// | `ErrInvalidAddressSpace` | [`Error::InvalidAddressSpace`] | BadRequest |
/// | `ErrInvalidPool` | [`Error::InvalidPool`] | BadRequest |
/// | `ErrInvalidSubPool` | [`Error::InvalidSubPool`] | BadRequest |
/// | `ErrInvalidRequest` | [`Error::InvalidRequest`] | BadRequest |
/// | `ErrPoolNotFound`, `ErrBadPool` | [`Error::PoolNotFound`] | NotFound |
/// | `ErrOverlapPool`, `ErrPoolOverlap` | [`Error::PoolOverlap`] | Conflict |
/// | `ErrNoAvailablePool` | [`Error::NoAvailablePool`] | Unavailable |
/// | `ErrNoAvailableIPs` | [`Error::NoAvailableIps`] | Unavailable |
/// | `ErrNoIPReturned` | [`Error::NoIpReturned`] | Unavailable |
/// | `ErrIPAlreadyAllocated` | [`Error::IpAlreadyAllocated`] | Conflict |
/// | `ErrIPOutOfRange` | [`Error::IpOutOfRange`] | BadRequest |
///
/// [`Error::InvalidPoolId`], [`Error::ReservedAddress`], [`Error::Backend`] and
/// [`Error::Remote`] are new: libnetwork reports those cases with untyped errors.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A driver bug or an inconsistent state.
    #[error("ipam internal error: {0}")]
    Internal(String),
    /// The address space is empty or not served by the driver.
    #[error("invalid address space {0:?}")]
    InvalidAddressSpace(String),
    /// The pool cannot be used (for example a driver that only serves IPv4 got an IPv6 pool).
    #[error("invalid address pool {pool}: {reason}")]
    InvalidPool {
        /// The pool asked for.
        pool: IpNet,
        /// Why it cannot be used.
        reason: String,
    },
    /// The sub-pool cannot be used: given without a pool, of another family, or not inside the
    /// pool.
    #[error("invalid address sub-pool {sub_pool}: {reason}")]
    InvalidSubPool {
        /// The sub-pool asked for.
        sub_pool: IpNet,
        /// Why it cannot be used.
        reason: String,
    },
    /// The request is malformed in a way no other variant describes.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A pool id is not of the driver's form.
    #[error("invalid pool id {0:?}")]
    InvalidPoolId(String),
    /// No pool with this id is reserved.
    #[error("address pool {0} not found")]
    PoolNotFound(String),
    /// The requested pool overlaps a pool already reserved in the address space (or is the
    /// same pool, or the same sub-pool of the same pool).
    #[error(
        "pool {requested} overlaps with existing pool {existing} in address space {address_space}"
    )]
    PoolOverlap {
        /// The address space.
        address_space: String,
        /// The pool (or sub-pool) asked for.
        requested: IpNet,
        /// The reserved pool (or sub-pool) it overlaps.
        existing: IpNet,
    },
    /// No predefined pool of the requested family is free (or none is configured).
    #[error(
        "no available, non-overlapping IPv{} pool among the defaults of address space \
         {address_space}",
        if *v6 { 6 } else { 4 }
    )]
    NoAvailablePool {
        /// The address space.
        address_space: String,
        /// Whether an IPv6 pool was asked for.
        v6: bool,
    },
    /// Every address of the pool (or of its sub-pool range) is allocated.
    #[error("no available addresses in pool {0}")]
    NoAvailableIps(String),
    /// A driver answered without an address.
    #[error("no address returned")]
    NoIpReturned,
    /// The preferred address is already allocated.
    #[error("address {address} is already allocated in pool {pool_id}")]
    IpAlreadyAllocated {
        /// The address asked for.
        address: IpAddr,
        /// The pool id.
        pool_id: String,
    },
    /// The address is not inside the pool (or, for very large IPv6 pools, outside the part of
    /// the pool the driver allocates from).
    #[error("address {address} is out of range of pool {pool}")]
    IpOutOfRange {
        /// The address asked for.
        address: IpAddr,
        /// The pool.
        pool: IpNet,
    },
    /// The address is the pool's network (or IPv4 broadcast) address, which is never handed
    /// out.
    #[error("address {address} is reserved in pool {pool} (network or broadcast address)")]
    ReservedAddress {
        /// The address asked for.
        address: IpAddr,
        /// The pool.
        pool: IpNet,
    },
    /// The driver's backend (its store) failed. For the kind, see the source: a store that
    /// cannot be reached is `Unavailable`.
    #[error("{context}: {source}")]
    Backend {
        /// What was being done.
        context: String,
        /// The kind of the underlying failure.
        kind: ErrorKind,
        /// The underlying failure.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A remote driver answered with an error message.
    #[error("remote: {0}")]
    Remote(String),
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Internal(_) | Self::Remote(_) => ErrorKind::Internal,
            Self::InvalidAddressSpace(_)
            | Self::InvalidPool { .. }
            | Self::InvalidSubPool { .. }
            | Self::InvalidRequest(_)
            | Self::InvalidPoolId(_)
            | Self::IpOutOfRange { .. }
            | Self::ReservedAddress { .. } => ErrorKind::BadRequest,
            Self::PoolNotFound(_) => ErrorKind::NotFound,
            Self::PoolOverlap { .. } | Self::IpAlreadyAllocated { .. } => ErrorKind::Conflict,
            Self::NoAvailablePool { .. } | Self::NoAvailableIps(_) | Self::NoIpReturned => {
                ErrorKind::Unavailable
            }
            Self::Backend { kind, .. } => *kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_error_names_both_pools_and_is_a_conflict() {
        let e = Error::PoolOverlap {
            address_space: "LocalDefault".into(),
            requested: "10.1.0.0/16".parse().unwrap(),
            existing: "10.0.0.0/8".parse().unwrap(),
        };
        let msg = e.to_string();
        assert!(
            msg.contains("10.1.0.0/16") && msg.contains("10.0.0.0/8"),
            "{msg}"
        );
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn kinds_follow_the_libnetwork_table() {
        let pool: IpNet = "10.0.0.0/24".parse().unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let cases = [
            (Error::Internal("x".into()), ErrorKind::Internal),
            (
                Error::InvalidAddressSpace(String::new()),
                ErrorKind::BadRequest,
            ),
            (
                Error::InvalidPool {
                    pool,
                    reason: "x".into(),
                },
                ErrorKind::BadRequest,
            ),
            (
                Error::InvalidSubPool {
                    sub_pool: pool,
                    reason: "x".into(),
                },
                ErrorKind::BadRequest,
            ),
            (Error::InvalidRequest("x".into()), ErrorKind::BadRequest),
            (Error::InvalidPoolId("x".into()), ErrorKind::BadRequest),
            (Error::PoolNotFound("x".into()), ErrorKind::NotFound),
            (
                Error::NoAvailablePool {
                    address_space: "a".into(),
                    v6: true,
                },
                ErrorKind::Unavailable,
            ),
            (Error::NoAvailableIps("p".into()), ErrorKind::Unavailable),
            (Error::NoIpReturned, ErrorKind::Unavailable),
            (
                Error::IpAlreadyAllocated {
                    address: ip,
                    pool_id: "p".into(),
                },
                ErrorKind::Conflict,
            ),
            (
                Error::IpOutOfRange { address: ip, pool },
                ErrorKind::BadRequest,
            ),
            (
                Error::ReservedAddress { address: ip, pool },
                ErrorKind::BadRequest,
            ),
            (Error::Remote("boom".into()), ErrorKind::Internal),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind, "{e}");
            let msg = e.to_string();
            assert!(!msg.ends_with('.'), "{msg}");
            assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
        }
    }

    #[test]
    fn backend_errors_keep_the_kind_and_source_of_the_failure() {
        let source = std::io::Error::other("disk on fire");
        let e = Error::Backend {
            context: "persist ipam state".into(),
            kind: ErrorKind::Unavailable,
            source: Arc::new(source),
        };
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.to_string(), "persist ipam state: disk on fire");
        assert!(std::error::Error::source(&e).is_some());
        let copy = e.clone();
        assert_eq!(copy.to_string(), e.to_string());
    }

    #[test]
    fn no_available_pool_names_the_family() {
        let v4 = Error::NoAvailablePool {
            address_space: "LocalDefault".into(),
            v6: false,
        };
        let v6 = Error::NoAvailablePool {
            address_space: "LocalDefault".into(),
            v6: true,
        };
        assert!(v4.to_string().contains("IPv4 pool"), "{v4}");
        assert!(v6.to_string().contains("IPv6 pool"), "{v6}");
    }
}
