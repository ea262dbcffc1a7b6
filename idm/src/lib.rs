//! A numeric ID manager: hands out integers from an inclusive range `[start, end]`, lowest
//! first or serially (round-robin), on top of a [`libnetwork_bitseq::Sequence`]
//! (libnetwork's `idm`).
//!
//! Used for VXLAN network identifiers and similar numbered resources. Id `start + i` is bit
//! `i` of the sequence.
//!
//! # Mapping to libnetwork
//! - `New(ds, id, start, end)` is [`Idm::new`]; `GetID`, `GetSpecificID`, `GetIDInRange` and
//!   `Release` are [`Idm::get_id`], [`Idm::get_specific_id`], [`Idm::get_id_in_range`] and
//!   [`Idm::release`].
//! - Serial mode is the bit sequence's: the next serial id is the one after the last id handed
//!   out, wrapping to the start (so after taking 50, 51, 52 and releasing 50, the next is 53).
//! - Persistence is the caller's: [`Idm::sequence`] gives the bits to store (serde writes
//!   libnetwork's base64 bytes) and [`Idm::from_sequence`] restores them.
//!
//! # Design decisions (differences from libnetwork)
//! - A single-id set (`start == end`) is allowed; libnetwork requires `end > start` for no
//!   stated reason. `end < start` is [`Error::InvalidRange`], and so is `[0, u64::MAX]`, whose
//!   2^64 ids exceed the 2^64 - 1 bits a sequence can hold.
//! - [`Idm::release`] reports an id outside the set instead of ignoring every error; releasing
//!   a free id is still not an error.
//! - No store id, no datastore, no locks: the value is owned by its caller.
//! - Errors are typed ([`Error`]) rather than plain strings, with the bit sequence's errors
//!   translated from ordinals back to ids.
//!
//! # Layout
//! - `lib.rs`: [`Idm`] and [`Error`].
#![forbid(unsafe_code)]

use libnetwork_bitseq::Sequence;
use libnetwork_types::ErrorKind;

/// Errors of ID manager operations. None of them changes the set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The range is empty (`end < start`), holds more than 2^64 - 1 ids, or (for a sub-range)
    /// does not lie inside the set.
    #[error("invalid id range [{start}, {end}]")]
    InvalidRange {
        /// First id of the range.
        start: u64,
        /// Last id of the range (inclusive).
        end: u64,
    },
    /// The id does not belong to the set.
    #[error("id {id} is outside the set [{start}, {end}]")]
    OutOfRange {
        /// The id asked for.
        id: u64,
        /// First id of the set.
        start: u64,
        /// Last id of the set.
        end: u64,
    },
    /// The id asked for is already allocated.
    #[error("id {0} is already allocated")]
    AlreadyAllocated(u64),
    /// Every id of the set, or of the requested sub-range, is allocated.
    #[error("no id available in [{start}, {end}]")]
    Exhausted {
        /// First id searched.
        start: u64,
        /// Last id searched.
        end: u64,
    },
    /// [`Idm::from_sequence`] got a sequence whose length is not the size of the set.
    #[error("restore id set [{start}, {end}]: the sequence has {len} bits")]
    SequenceLength {
        /// First id of the set.
        start: u64,
        /// Last id of the set.
        end: u64,
        /// The sequence's length.
        len: u64,
    },
}

impl Error {
    /// The API class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidRange { .. } | Self::OutOfRange { .. } | Self::SequenceLength { .. } => {
                ErrorKind::BadRequest
            }
            Self::AlreadyAllocated(_) => ErrorKind::Conflict,
            Self::Exhausted { .. } => ErrorKind::Unavailable,
        }
    }
}

/// Allocates ids from `[start, end]` (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idm {
    /// First id.
    start: u64,
    /// Last id (inclusive).
    end: u64,
    /// Bit `i` is id `start + i`.
    bits: Sequence,
}

impl Idm {
    /// An ID manager with every id of `[start, end]` free.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] when `end < start` or the range is `[0, u64::MAX]`.
    pub fn new(start: u64, end: u64) -> Result<Self, Error> {
        let len = Self::set_len(start, end)?;
        Ok(Self {
            start,
            end,
            bits: Sequence::new(len),
        })
    }

    /// An ID manager over `[start, end]` whose allocated ids are the set bits of `bits` (as
    /// stored from [`sequence`](Self::sequence)). Serial allocation starts over at `start`.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] as for [`new`](Self::new), [`Error::SequenceLength`] when
    /// `bits.len()` is not the number of ids in the range.
    pub fn from_sequence(start: u64, end: u64, bits: Sequence) -> Result<Self, Error> {
        let len = Self::set_len(start, end)?;
        if bits.len() != len {
            return Err(Error::SequenceLength {
                start,
                end,
                len: bits.len(),
            });
        }
        Ok(Self { start, end, bits })
    }

    /// First id of the set.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Last id of the set (inclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Number of free ids.
    pub fn free_count(&self) -> u64 {
        self.bits.free_count()
    }

    /// The underlying bits, for persistence.
    pub fn sequence(&self) -> &Sequence {
        &self.bits
    }

    /// Whether `id` is allocated (false outside the set).
    pub fn is_allocated(&self, id: u64) -> bool {
        id.checked_sub(self.start)
            .is_some_and(|ordinal| self.bits.is_set(ordinal))
    }

    /// Iterates the allocated ids in ascending order.
    pub fn iter_allocated(&self) -> impl Iterator<Item = u64> + '_ {
        self.bits.iter_set().map(|ordinal| self.start + ordinal)
    }

    /// Allocates the lowest free id (`serial = false`) or the first free id after the last one
    /// handed out, wrapping to `start` (`serial = true`).
    ///
    /// # Errors
    /// [`Error::Exhausted`] when every id is allocated.
    pub fn get_id(&mut self, serial: bool) -> Result<u64, Error> {
        self.bits
            .set_any(serial)
            .map(|ordinal| self.start + ordinal)
            .map_err(|_| Error::Exhausted {
                start: self.start,
                end: self.end,
            })
    }

    /// Allocates `id`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when `id` is outside the set, [`Error::AlreadyAllocated`] when it
    /// is taken.
    pub fn get_specific_id(&mut self, id: u64) -> Result<(), Error> {
        let ordinal = self.ordinal(id)?;
        self.bits
            .set(ordinal)
            .map_err(|_| Error::AlreadyAllocated(id))
    }

    /// Like [`get_id`](Self::get_id) within `[start, end]`, which must lie inside the set. The
    /// serial search starts after the last id handed out when that lies inside the sub-range,
    /// and wraps to its start.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] when `start > end` or the sub-range is not inside the set,
    /// [`Error::Exhausted`] when every id of the sub-range is allocated.
    pub fn get_id_in_range(&mut self, start: u64, end: u64, serial: bool) -> Result<u64, Error> {
        if start > end || start < self.start || end > self.end {
            return Err(Error::InvalidRange { start, end });
        }
        self.bits
            .set_any_in_range(start - self.start, end - self.start, serial)
            .map(|ordinal| self.start + ordinal)
            .map_err(|_| Error::Exhausted { start, end })
    }

    /// Frees `id`; freeing a free id is not an error.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when `id` is outside the set.
    pub fn release(&mut self, id: u64) -> Result<(), Error> {
        let ordinal = self.ordinal(id)?;
        // In range by construction, so unset cannot fail.
        self.bits.unset(ordinal).map_err(|_| self.out_of_range(id))
    }

    /// The number of ids in `[start, end]`, which must fit a sequence's `u64` length.
    fn set_len(start: u64, end: u64) -> Result<u64, Error> {
        end.checked_sub(start)
            .and_then(|span| span.checked_add(1))
            .ok_or(Error::InvalidRange { start, end })
    }

    /// The bit of `id`, or `OutOfRange`.
    fn ordinal(&self, id: u64) -> Result<u64, Error> {
        if (self.start..=self.end).contains(&id) {
            Ok(id - self.start)
        } else {
            Err(self.out_of_range(id))
        }
    }

    fn out_of_range(&self, id: u64) -> Error {
        Error::OutOfRange {
            id,
            start: self.start,
            end: self.end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libnetwork's TestNew, with our single-id decision.
    #[test]
    fn new_rejects_an_empty_range_and_the_full_u64_range() {
        assert_eq!(
            Idm::new(10, 9),
            Err(Error::InvalidRange { start: 10, end: 9 })
        );
        assert_eq!(
            Idm::new(0, u64::MAX),
            Err(Error::InvalidRange {
                start: 0,
                end: u64::MAX
            })
        );
        assert_eq!(Idm::new(0, 10).unwrap().free_count(), 11);
        assert_eq!(Idm::new(1, u64::MAX).unwrap().free_count(), u64::MAX);
        assert_eq!(Idm::new(0, u64::MAX - 1).unwrap().free_count(), u64::MAX);
    }

    #[test]
    fn single_id_set_hands_out_its_id_once() {
        let mut idm = Idm::new(7, 7).unwrap();
        assert_eq!(idm.get_id(false), Ok(7));
        assert_eq!(idm.get_id(true), Err(Error::Exhausted { start: 7, end: 7 }));
        idm.release(7).unwrap();
        assert_eq!(idm.get_id(true), Ok(7));
    }

    /// libnetwork's TestAllocate.
    #[test]
    fn ids_come_lowest_first_until_exhausted_and_are_reused_after_release() {
        let mut idm = Idm::new(50, 52).unwrap();
        assert_eq!(
            idm.get_specific_id(49),
            Err(Error::OutOfRange {
                id: 49,
                start: 50,
                end: 52
            })
        );
        assert_eq!(
            idm.get_specific_id(53),
            Err(Error::OutOfRange {
                id: 53,
                start: 50,
                end: 52
            })
        );
        assert_eq!(idm.get_id(false), Ok(50));
        assert_eq!(idm.get_id(false), Ok(51));
        assert_eq!(idm.get_id(false), Ok(52));
        let exhausted = idm.get_id(false).unwrap_err();
        assert_eq!(exhausted, Error::Exhausted { start: 50, end: 52 });
        assert_eq!(exhausted.kind(), ErrorKind::Unavailable);
        idm.release(50).unwrap();
        assert_eq!(idm.get_id(false), Ok(50));
        idm.release(52).unwrap();
        assert_eq!(idm.get_specific_id(52), Ok(()));
        let taken = idm.get_specific_id(52).unwrap_err();
        assert_eq!(taken, Error::AlreadyAllocated(52));
        assert_eq!(taken.kind(), ErrorKind::Conflict);
    }

    /// libnetwork's TestAllocateSerial.
    #[test]
    fn serial_allocation_does_not_reuse_a_released_id_until_it_wraps() {
        let mut idm = Idm::new(50, 55).unwrap();
        for want in 50..=52 {
            assert_eq!(idm.get_id(true), Ok(want));
        }
        idm.release(50).unwrap();
        assert_eq!(idm.get_id(true), Ok(53));
        assert_eq!(idm.get_id(true), Ok(54));
        assert_eq!(idm.get_id(true), Ok(55));
        assert_eq!(idm.get_id(true), Ok(50));
        assert_eq!(
            idm.get_id(true),
            Err(Error::Exhausted { start: 50, end: 55 })
        );
    }

    /// libnetwork's TestAllocateInRange.
    #[test]
    fn range_allocation_checks_the_sub_range_and_stays_inside_it() {
        let mut idm = Idm::new(0, 10).unwrap();
        assert_eq!(
            idm.get_id_in_range(5, 4, false),
            Err(Error::InvalidRange { start: 5, end: 4 })
        );
        assert_eq!(
            idm.get_id_in_range(5, 11, false),
            Err(Error::InvalidRange { start: 5, end: 11 })
        );
        assert_eq!(idm.get_id_in_range(6, 6, false), Ok(6));
        assert_eq!(
            idm.get_id_in_range(6, 6, false),
            Err(Error::Exhausted { start: 6, end: 6 })
        );
        assert_eq!(idm.get_id_in_range(5, 10, false), Ok(5));
        assert_eq!(idm.get_id_in_range(5, 10, false), Ok(7));
        idm.release(6).unwrap();
        assert_eq!(idm.get_id_in_range(5, 10, false), Ok(6));
        for want in 8..=10 {
            assert_eq!(idm.get_id_in_range(5, 10, false), Ok(want));
        }
        assert_eq!(
            idm.get_id_in_range(5, 10, false),
            Err(Error::Exhausted { start: 5, end: 10 })
        );
        assert_eq!(idm.get_id(false), Ok(0));

        // A large set starting at 4096 (the overlay VNI layout).
        let mut idm = Idm::new(4096, (1 << 24) - 1).unwrap();
        assert_eq!(idm.get_id_in_range(4096, (1 << 24) - 1, true), Ok(4096));
        assert_eq!(
            idm.get_id_in_range(1 << 23, (1 << 24) - 1, true),
            Ok(1 << 23)
        );
        assert_eq!(idm.get_specific_id((1 << 24) - 1), Ok(()));
        assert_eq!(idm.free_count(), (1 << 24) - 4096 - 3);
        assert_eq!(
            idm.iter_allocated().collect::<Vec<_>>(),
            vec![4096, 1 << 23, (1 << 24) - 1]
        );
    }

    #[test]
    fn release_outside_the_set_is_an_error_and_of_a_free_id_is_not() {
        let mut idm = Idm::new(100, 200).unwrap();
        let err = idm.release(99).unwrap_err();
        assert_eq!(
            err,
            Error::OutOfRange {
                id: 99,
                start: 100,
                end: 200
            }
        );
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert_eq!(idm.release(150), Ok(()));
        assert_eq!(idm.free_count(), 101);
    }

    #[test]
    fn set_ending_at_u64_max_hands_out_its_last_id() {
        let mut idm = Idm::new(u64::MAX - 2, u64::MAX).unwrap();
        assert_eq!(idm.get_specific_id(u64::MAX), Ok(()));
        assert!(idm.is_allocated(u64::MAX));
        assert!(!idm.is_allocated(0));
        assert_eq!(idm.get_id(true), Ok(u64::MAX - 2));
        assert_eq!(idm.get_id(true), Ok(u64::MAX - 1));
        assert!(idm.get_id(true).is_err());
    }

    #[test]
    fn restoring_from_a_sequence_keeps_the_allocated_ids() {
        let mut idm = Idm::new(10, 20).unwrap();
        idm.get_specific_id(12).unwrap();
        idm.get_specific_id(20).unwrap();
        let stored = Sequence::from_bytes(&idm.sequence().to_bytes()).unwrap();
        let restored = Idm::from_sequence(10, 20, stored.clone()).unwrap();
        assert_eq!(restored, idm);
        assert_eq!(
            Idm::from_sequence(10, 21, stored),
            Err(Error::SequenceLength {
                start: 10,
                end: 21,
                len: 11
            })
        );
    }

    #[test]
    fn errors_map_to_api_kinds() {
        let bad_request = [
            Error::InvalidRange { start: 2, end: 1 },
            Error::OutOfRange {
                id: 0,
                start: 1,
                end: 2,
            },
            Error::SequenceLength {
                start: 1,
                end: 2,
                len: 5,
            },
        ];
        for err in bad_request {
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
        }
        assert_eq!(Error::AlreadyAllocated(1).kind(), ErrorKind::Conflict);
        assert_eq!(
            Error::Exhausted { start: 1, end: 2 }.kind(),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn error_messages_name_the_ids() {
        assert_eq!(
            Error::Exhausted { start: 1, end: 9 }.to_string(),
            "no id available in [1, 9]"
        );
        assert_eq!(
            Error::AlreadyAllocated(4).to_string(),
            "id 4 is already allocated"
        );
    }
}
