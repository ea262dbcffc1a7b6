//! A bit sequence of up to 2^64 - 1 bits whose memory grows with the number of runs of equal
//! bits, not with its length: libnetwork's `bitseq`, without the store.
//!
//! [`Sequence`] answers "set the first free bit at or after here" (wrapping, for serial
//! allocation), "set the first free bit in this range", set/unset/test one bit, count free bits
//! and iterate set bits, each in `O(log runs)`. It is the allocator underneath `idm` (numeric
//! ids) and `ipam` (addresses).
//!
//! # Mapping to libnetwork
//! - `Handle.SetAny/SetAnyInRange/Set/Unset/IsSet/Unselected/Bits` map to
//!   [`Sequence::set_any`], [`Sequence::set_any_in_range`], [`Sequence::set`],
//!   [`Sequence::unset`], [`Sequence::is_set`], [`Sequence::free_count`] and [`Sequence::len`].
//! - Serial mode is libnetwork's: the sequence remembers the ordinal after the last one a
//!   `set_any*` call handed out; a serial search starts there when it lies inside the range and
//!   wraps to the range start. That cursor is not persisted and not part of equality.
//! - `ToByteArray/FromByteArray` map to [`Sequence::to_bytes`] / [`Sequence::from_bytes`]
//!   (layout below); serde writes the same bytes as a base64 string, the `sequence` field of
//!   libnetwork's `{"id": ..., "sequence": ...}` JSON (the `id` and the store belong to the
//!   store layer).
//! - `CheckConsistency`: decoding skips the zero-count runs that libnetwork repairs, so a
//!   decoded sequence is always consistent.
//!
//! # Byte layout
//! Big-endian `bits: u64 || unselected: u64 || (block: u32 || count: u64)+`, each pair meaning
//! `count` consecutive 32-bit blocks equal to `block`. Ordinal 0 is the most significant bit of
//! the first block. When `bits` is not a multiple of 32 the last block has free padding bits.
//!
//! # Design decisions
//! - Only the maximal runs of *free* bits are stored, in a `BTreeMap`, each under a key in
//!   `[run.end, next_run.start)`. "First free at or after `p`" is the first key `>= p` (or the
//!   next one); the key's slack lets a run shrink at either end and grow upwards in place, so
//!   lowest-first allocation and ascending frees change one value without touching the tree's
//!   shape (see the `sequence` module). libnetwork scans a linked list of blocks, so its cost
//!   grows with fragmentation; ours grows with its logarithm. A fresh or a full sequence of any
//!   length stores at most one run.
//! - The cost is memory on fragmented sequences: a free run takes 25 to 60 bytes (B-tree nodes
//!   are 5 to 11 entries of 24 bytes), where libnetwork spends one list node per run of equal
//!   32-bit blocks (about 32 bytes). Randomly fragmented sequences are up to ten times larger
//!   here (16 runs fit in a block at worst); periodic patterns are where
//!   libnetwork's repeated blocks win outright (every other bit set is one node there and
//!   `len / 2` runs here). Decoding refuses input that would need more than
//!   [`MAX_DECODED_RUNS`] runs, so a few corrupted bytes cannot ask for unbounded memory.
//! - No locks, no store, no I/O: callers own persistence and concurrency (libnetwork mixes a
//!   store and a mutex into its `Handle`).
//! - Decoding is strict where libnetwork trusts its input: truncated bytes, runs that do not
//!   cover exactly `ceil(bits / 32)` blocks, set padding bits and an `unselected` that does not
//!   match the runs are errors ([`Error::Malformed`]), never panics. These checks run on the
//!   `(block, count)` pairs before any run is built.
//!
//! # Layout
//! - `lib.rs`: crate docs and [`Error`].
//! - `sequence`: [`Sequence`] and its bit operations.
//! - `codec`: the byte layout and serde.
#![forbid(unsafe_code)]

mod codec;
mod sequence;

use libnetwork_types::ErrorKind;

pub use codec::MAX_DECODED_RUNS;
pub use sequence::Sequence;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_api_kinds() {
        assert_eq!(Error::NoBitAvailable.kind(), ErrorKind::Unavailable);
        assert_eq!(Error::BitAllocated(3).kind(), ErrorKind::Conflict);
        assert_eq!(
            Error::OutOfRange { ordinal: 9, len: 9 }.kind(),
            ErrorKind::BadRequest
        );
        assert_eq!(
            Error::InvalidRange { start: 2, end: 1 }.kind(),
            ErrorKind::BadRequest
        );
        assert_eq!(Error::Malformed("x".into()).kind(), ErrorKind::BadRequest);
    }

    #[test]
    fn error_messages_name_the_bits() {
        assert_eq!(
            Error::OutOfRange { ordinal: 9, len: 9 }.to_string(),
            "bit 9 does not belong to the sequence of 9 bits"
        );
        assert_eq!(
            Error::InvalidRange { start: 2, end: 1 }.to_string(),
            "invalid bit range [2, 1]"
        );
        assert_eq!(
            Error::BitAllocated(3).to_string(),
            "requested bit 3 is already allocated"
        );
    }
}
