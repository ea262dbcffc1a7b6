//! Value types and error kinds shared by every libnetwork crate.
//!
//! libnetwork's Go `types` package gives errors marker methods (`NotFound()`, `BadRequest()`,
//! `Forbidden()`, ...) that its REST API maps to HTTP status codes. Here every library crate has
//! its own `thiserror` enum, and each of those enums has a `kind()` method returning the
//! [`ErrorKind`] defined in this crate, so the controller and the daemon can map any error to a
//! status without knowing where it came from.
//!
//! Layout:
//! - [`ErrorKind`]: the small set of error classes and their HTTP status codes.
//! - `net` ([`MacAddr`], [`Protocol`], [`TransportPort`], [`PortBinding`]): value types that
//!   cross crate boundaries (the osl, the drivers, the port mapper and the controller).
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

mod net;

pub use net::{MacAddr, ParseError, PortBinding, Protocol, TransportPort};

/// The class of an error, as the API layer sees it.
///
/// Maps libnetwork's marker interfaces onto six classes: `NoService` and `Timeout` become
/// [`ErrorKind::Unavailable`], `NotImplemented` becomes [`ErrorKind::BadRequest`] (the request
/// asked for something this build cannot do), and `Retry` stays internal to the crate that
/// retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The object asked for does not exist.
    NotFound,
    /// The request is malformed or asks for something impossible.
    BadRequest,
    /// The request clashes with existing state (already allocated, modified concurrently,
    /// overlapping).
    Conflict,
    /// The request is understood but not allowed.
    Forbidden,
    /// A resource is exhausted or a backend cannot be reached; a later retry may succeed.
    Unavailable,
    /// A bug or an unexpected failure of the system underneath.
    Internal,
}

impl ErrorKind {
    /// The HTTP status code the daemon answers with for this kind of error.
    pub fn http_status(self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::BadRequest => 400,
            Self::Conflict => 409,
            Self::Forbidden => 403,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::NotFound => "not found",
            Self::BadRequest => "bad request",
            Self::Conflict => "conflict",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_a_distinct_http_status() {
        let kinds = [
            ErrorKind::NotFound,
            ErrorKind::BadRequest,
            ErrorKind::Conflict,
            ErrorKind::Forbidden,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ];
        let mut codes: Vec<u16> = kinds.iter().map(|k| k.http_status()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes, vec![400, 403, 404, 409, 500, 503]);
    }
}
