//! A bit sequence of up to 2^64 - 1 bits whose memory grows with the number of runs of equal
//! bits, not with its length (libnetwork's `bitseq`).
//!
//! API CONTRACT (fixed so that idm and ipam can be written against it; the implementation is in
//! progress):
#![forbid(unsafe_code)]

use libnetwork_types::ErrorKind;

/// Errors of bit sequence operations. None of them changes the sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No free bit is left in the sequence or in the requested range.
    #[error("no bit available")]
    NoBitAvailable,
    /// The bit asked for is already set.
    #[error("requested bit {0} is already allocated")]
    BitAllocated(u64),
    /// The ordinal is not below the sequence's length.
    #[error("bit {ordinal} does not belong to the sequence of {len} bits")]
    OutOfRange {
        /// The ordinal asked for.
        ordinal: u64,
        /// The sequence's length.
        len: u64,
    },
    /// `start > end`, or `end` is not below the sequence's length.
    #[error("invalid bit range [{start}, {end}]")]
    InvalidRange {
        /// First ordinal of the range.
        start: u64,
        /// Last ordinal of the range (inclusive).
        end: u64,
    },
    /// Serialised bytes or JSON could not be decoded.
    #[error("decode bit sequence: {0}")]
    Malformed(String),
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoBitAvailable => ErrorKind::Unavailable,
            Self::BitAllocated(_) => ErrorKind::Conflict,
            Self::OutOfRange { .. } | Self::InvalidRange { .. } | Self::Malformed(_) => {
                ErrorKind::BadRequest
            }
        }
    }
}

/// A sequence of `len` bits, all free when created.
#[derive(Debug, Clone)]
pub struct Sequence {}

impl Sequence {
    /// A sequence of `len` free bits.
    pub fn new(len: u64) -> Self {
        let _ = len;
        todo!()
    }
    /// Number of bits.
    pub fn len(&self) -> u64 {
        todo!()
    }
    /// Number of free bits.
    pub fn free_count(&self) -> u64 {
        todo!()
    }
    /// Whether `ordinal` is set (false when out of range).
    pub fn is_set(&self, ordinal: u64) -> bool {
        let _ = ordinal;
        todo!()
    }
    /// Sets one specific bit. Errors: OutOfRange, BitAllocated.
    pub fn set(&mut self, ordinal: u64) -> Result<(), Error> {
        let _ = ordinal;
        todo!()
    }
    /// Clears one bit; clearing a free bit is not an error. Errors: OutOfRange.
    pub fn unset(&mut self, ordinal: u64) -> Result<(), Error> {
        let _ = ordinal;
        todo!()
    }
    /// Sets the lowest free bit (serial = false) or the first free bit at or after the one after
    /// the last bit this value handed out, wrapping (serial = true). Returns its ordinal.
    pub fn set_any(&mut self, serial: bool) -> Result<u64, Error> {
        let _ = serial;
        todo!()
    }
    /// Like `set_any` within `[start, end]` (inclusive). Errors: InvalidRange, NoBitAvailable.
    pub fn set_any_in_range(&mut self, start: u64, end: u64, serial: bool) -> Result<u64, Error> {
        let _ = (start, end, serial);
        todo!()
    }
    /// Iterates the set bits in ascending order.
    pub fn iter_set(&self) -> impl Iterator<Item = u64> + '_ {
        std::iter::empty()
    }
    /// libnetwork's byte layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!()
    }
    /// Parses libnetwork's byte layout; malformed bytes give `Error::Malformed`, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let _ = bytes;
        todo!()
    }
}
