//! Value types: transport protocols, port ranges and port requests.

use std::fmt;
use std::num::NonZeroU16;

use crate::Error;

pub use libnetwork_types::Protocol;

/// Position of `proto` in [`Protocol::ALL`].
pub(crate) fn protocol_index(proto: Protocol) -> usize {
    match proto {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Sctp => 2,
    }
}

/// Parses `tcp`, `udp` or `sctp`, ignoring case (libnetwork's `ParseProtocol`).
///
/// # Errors
/// [`Error::UnknownProtocol`] for anything else.
pub fn parse_protocol(name: &str) -> Result<Protocol, Error> {
    name.parse()
        .map_err(|_| Error::UnknownProtocol(name.to_owned()))
}

/// An inclusive range of ports `start..=end` with `1 <= start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    /// The range used when the kernel's dynamic range cannot be read: 49153-65535, as
    /// libnetwork.
    pub const DEFAULT_DYNAMIC: Self = Self {
        start: 49153,
        end: 65535,
    };

    /// The range `start..=end`.
    ///
    /// # Errors
    /// [`Error::InvalidPortRange`] when `start` is 0 or `end < start`.
    pub fn new(start: u16, end: u16) -> Result<Self, Error> {
        if start == 0 || end < start {
            return Err(Error::InvalidPortRange { start, end });
        }
        Ok(Self { start, end })
    }

    /// The first port of the range.
    pub fn start(self) -> u16 {
        self.start
    }

    /// The last port of the range (inclusive).
    pub fn end(self) -> u16 {
        self.end
    }

    /// Number of ports in the range (at least 1).
    pub fn len(self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    /// Always false: a range holds at least one port. Present for symmetry with
    /// [`PortRange::len`].
    pub fn is_empty(self) -> bool {
        false
    }

    /// Whether `port` lies in the range.
    pub fn contains(self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// What a caller asks the allocator for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortRequest {
    /// Any free port of the allocator's dynamic range.
    Dynamic,
    /// Exactly this port.
    Specific(NonZeroU16),
    /// Any free port of this range.
    InRange(PortRange),
}

impl PortRequest {
    /// Reads libnetwork's `(start, end)` convention: `(0, 0)` is [`PortRequest::Dynamic`],
    /// `(p, p)` is [`PortRequest::Specific`] and `start < end` is [`PortRequest::InRange`].
    ///
    /// # Errors
    /// [`Error::InvalidPortRange`] when exactly one bound is 0 or `end < start`.
    pub fn from_bounds(start: u16, end: u16) -> Result<Self, Error> {
        match (NonZeroU16::new(start), start == end) {
            (None, true) => Ok(Self::Dynamic),
            (Some(port), true) => Ok(Self::Specific(port)),
            _ => PortRange::new(start, end).map(Self::InRange),
        }
    }
}
