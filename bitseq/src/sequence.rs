//! The [`Sequence`] type: free runs kept in an ordered map, and the bit operations on it.
//!
//! # Representation
//! Only the maximal runs of *free* bits are stored, in a `BTreeMap<u64, Run>`. Each run is
//! stored under a key that bounds it from above, with slack:
//!
//! `run.start <= run.end <= key < next_run.start` (and `key < len` for the last run).
//!
//! Keys are therefore ordered like the runs, and "the first run ending at or after `p`" is the
//! first key `>= p`, or the one after it when `p` falls in the first one's slack (the set bits
//! between its `end` and its `key`). The slack lets a run shrink from either side and grow
//! upwards without changing its key, so allocating the lowest bit, or freeing bits in ascending
//! order, changes a value in place; only splitting, merging, or a run outgrowing its key
//! touches the map's structure. New keys are chosen as high as possible (just below the next
//! run) to leave room for growth.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use crate::Error;

/// A maximal run of free bits, `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: u64,
    end: u64,
}

/// A change to the map's structure left over after a run was edited in place.
#[derive(Debug)]
enum Fixup {
    /// Nothing left to do.
    None,
    /// Remove the run under this key (it became empty).
    Remove(u64),
    /// Insert this run under this key (the lower half of a split run).
    Insert(u64, Run),
}

/// Sets `ordinal`, a bit of `run` (stored under `key`), editing the run in place.
fn carve(key: u64, run: &mut Run, ordinal: u64) -> Fixup {
    debug_assert!(run.start <= ordinal && ordinal <= run.end);
    if run.start == run.end {
        Fixup::Remove(key)
    } else if ordinal == run.start {
        run.start += 1;
        Fixup::None
    } else if ordinal == run.end {
        run.end -= 1;
        Fixup::None
    } else {
        // The upper half keeps the key; the lower half takes the highest key it may have.
        let lower = Run {
            start: run.start,
            end: ordinal - 1,
        };
        run.start = ordinal + 1;
        Fixup::Insert(ordinal, lower)
    }
}

/// A sequence of `len` bits (ordinals `0..len`), all free when created.
///
/// Memory is proportional to the number of maximal runs of free bits (see
/// [`runs`](Self::runs)); every operation is `O(log runs)`.
///
/// Equality compares the length and the bits; the serial cursor (see
/// [`set_any`](Self::set_any)) is not part of it.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Number of bits.
    len: u64,
    /// Number of free bits (the sum of the lengths of the runs in `free`).
    free_count: u64,
    /// Maximal runs of free bits under keys with slack (see the module docs). Runs never
    /// touch: two runs with no set bit between them would be one run.
    free: BTreeMap<u64, Run>,
    /// The ordinal after the last one handed out by `set_any*`: where a serial search starts.
    /// Not persisted and not part of equality, as in libnetwork.
    next: u64,
}

impl PartialEq for Sequence {
    fn eq(&self, other: &Self) -> bool {
        // Keys depend on history; only the runs are the value.
        self.len == other.len && self.free.values().eq(other.free.values())
    }
}

impl Eq for Sequence {}

impl Sequence {
    /// A sequence of `len` free bits.
    pub fn new(len: u64) -> Self {
        Self::from_free_runs(len, len.checked_sub(1).map(|last| (0, last)))
    }

    /// Builds a sequence from its free runs `(start, end)`: ascending, non-overlapping, each
    /// `start <= end < len` (the caller guarantees it); touching runs are merged here.
    pub(crate) fn from_free_runs(len: u64, runs: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut merged: Vec<Run> = Vec::new();
        let mut free_count = 0;
        for (start, end) in runs {
            debug_assert!(start <= end && end < len);
            free_count += end - start + 1;
            match merged.last_mut() {
                Some(last) if last.end + 1 == start => last.end = end,
                _ => merged.push(Run { start, end }),
            }
        }
        // Each run's key is as high as it may be: just below the next run, or the last bit.
        let keys = merged
            .iter()
            .skip(1)
            .map(|next| next.start - 1)
            .chain(len.checked_sub(1));
        Self {
            len,
            free_count,
            free: keys.zip(merged.iter().copied()).collect(),
            next: 0,
        }
    }

    /// Number of bits.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the sequence has no bits at all (`len() == 0`; such a sequence can hand out
    /// nothing).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of free bits (libnetwork's `Unselected`).
    pub fn free_count(&self) -> u64 {
        self.free_count
    }

    /// Whether no bit is free.
    pub fn is_full(&self) -> bool {
        self.free_count == 0
    }

    /// Whether `ordinal` is set (false when out of range).
    pub fn is_set(&self, ordinal: u64) -> bool {
        // Only the first run keyed at or after `ordinal` can hold it: a run before has a
        // smaller key, hence end; a run after starts after that run's key.
        ordinal < self.len
            && self
                .free
                .range(ordinal..)
                .next()
                .is_none_or(|(_, run)| ordinal < run.start || run.end < ordinal)
    }

    /// Sets one specific bit.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when `ordinal >= len()`, [`Error::BitAllocated`] when it is
    /// already set. The sequence is unchanged on error. The serial cursor is not moved.
    pub fn set(&mut self, ordinal: u64) -> Result<(), Error> {
        self.check_ordinal(ordinal)?;
        let fixup = match self.free.range_mut(ordinal..).next() {
            Some((&key, run)) if run.start <= ordinal && ordinal <= run.end => {
                carve(key, run, ordinal)
            }
            _ => return Err(Error::BitAllocated(ordinal)),
        };
        self.apply(fixup);
        self.free_count -= 1;
        Ok(())
    }

    /// Clears one bit; clearing a free bit is not an error.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when `ordinal >= len()` (nothing changes).
    pub fn unset(&mut self, ordinal: u64) -> Result<(), Error> {
        self.check_ordinal(ordinal)?;
        let last = self.len - 1;
        // The runs that matter all have keys >= ordinal - 1: the one ending just before the bit
        // (`lower`), the one starting just after it (`upper`), and a run ending further below
        // whose slack reaches the bit (`owner`: its key may have to move below the bit).
        let mut runs = self.free.range_mut(ordinal.saturating_sub(1)..);
        let mut current = runs.next();
        let owner = match &current {
            Some((key, run)) if run.end + 1 < ordinal => Some(**key),
            _ => None,
        };
        if owner.is_some() {
            current = runs.next();
        }
        let mut lower = None;
        let mut upper = None;
        // The start of the first run above the bit that does not touch it.
        let mut above = None;
        match current {
            Some((_, run)) if run.start <= ordinal && ordinal <= run.end => return Ok(()),
            Some((&key, run)) if run.end + 1 == ordinal => {
                lower = Some((key, run));
                match runs.next() {
                    Some((_, run)) if run.start == ordinal + 1 => upper = Some(run),
                    next => above = next.map(|(_, run)| run.start),
                }
            }
            Some((_, run)) if run.start == ordinal + 1 => upper = Some(run),
            next => above = next.map(|(_, run)| run.start),
        }
        // The highest key a run ending at `ordinal` may have.
        let max_key = above.map_or(last, |start| start - 1);
        match (lower, upper) {
            (Some((lower_key, lower)), Some(upper)) => {
                // Merge into the upper run, whose key already bounds the result.
                upper.start = lower.start;
                self.free.remove(&lower_key);
            }
            (Some((key, lower)), None) => {
                if key >= ordinal {
                    lower.end = ordinal; // within the slack: in place
                } else {
                    let grown = Run {
                        start: lower.start,
                        end: ordinal,
                    };
                    self.free.remove(&key);
                    self.free.insert(max_key, grown);
                }
            }
            (None, Some(upper)) => {
                upper.start = ordinal;
                self.lower_key_below(owner, ordinal);
            }
            (None, None) => {
                self.lower_key_below(owner, ordinal);
                self.free.insert(
                    max_key,
                    Run {
                        start: ordinal,
                        end: ordinal,
                    },
                );
            }
        }
        self.free_count += 1;
        Ok(())
    }

    /// Sets the lowest free bit (`serial = false`) or, with `serial = true`, the first free bit
    /// at or after the one after the last bit this value handed out, wrapping to 0. Returns its
    /// ordinal.
    ///
    /// # Errors
    /// [`Error::NoBitAvailable`] when every bit is set (nothing changes).
    pub fn set_any(&mut self, serial: bool) -> Result<u64, Error> {
        match self.len.checked_sub(1) {
            Some(last) => self.set_any_in_range(0, last, serial),
            None => Err(Error::NoBitAvailable),
        }
    }

    /// Like [`set_any`](Self::set_any) within `[start, end]` (inclusive): the serial search
    /// starts at the cursor when it lies inside `(start, end]` and wraps to `start`.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] when `start > end` or `end >= len()`, [`Error::NoBitAvailable`]
    /// when every bit of the range is set. Nothing changes on error.
    pub fn set_any_in_range(&mut self, start: u64, end: u64, serial: bool) -> Result<u64, Error> {
        if start > end || end >= self.len {
            return Err(Error::InvalidRange { start, end });
        }
        let from = if serial && self.next > start && self.next <= end {
            self.next
        } else {
            start
        };
        let found = match self.claim_first(from, end) {
            Some(ordinal) => Some(ordinal),
            None if from > start => self.claim_first(start, from - 1),
            None => None,
        };
        let ordinal = found.ok_or(Error::NoBitAvailable)?;
        // `ordinal < len <= u64::MAX`, so this cannot overflow.
        self.next = ordinal + 1;
        Ok(ordinal)
    }

    /// Iterates the set bits in ascending order.
    pub fn iter_set(&self) -> impl Iterator<Item = u64> + '_ {
        self.set_ranges().flatten()
    }

    /// Iterates the maximal ranges of free bits in ascending order.
    pub fn free_ranges(&self) -> impl Iterator<Item = RangeInclusive<u64>> + '_ {
        self.free.values().map(|run| run.start..=run.end)
    }

    /// Iterates the maximal ranges of set bits in ascending order.
    pub fn set_ranges(&self) -> impl Iterator<Item = RangeInclusive<u64>> + '_ {
        // The gaps before each free run, then the gap after the last one.
        let mut cursor = Some(0u64);
        let mut runs = self.free.values();
        std::iter::from_fn(move || {
            loop {
                let from = cursor?;
                match runs.next() {
                    Some(run) => {
                        cursor = run.end.checked_add(1);
                        if run.start > from {
                            return Some(from..=run.start - 1);
                        }
                    }
                    None => {
                        cursor = None;
                        if from < self.len {
                            return Some(from..=self.len - 1);
                        }
                    }
                }
            }
        })
    }

    /// Number of maximal runs of free bits stored. Memory use is proportional to it: 1 for a
    /// fresh sequence, 0 for a full one, whatever the length.
    pub fn runs(&self) -> usize {
        self.free.len()
    }

    /// An estimate (an upper bound from the B-tree's node size and minimum fill) of the heap
    /// memory this sequence uses, in bytes.
    pub fn approx_heap_bytes(&self) -> usize {
        // std's B-tree nodes hold at most 11 entries, and every node but the root at least 5.
        // A leaf of 11 (u64, Run) entries is about 280 bytes, an internal node 100 more.
        const LEAF_BYTES: usize = 280;
        const INTERNAL_BYTES: usize = 380;
        match self.free.len() {
            0 => LEAF_BYTES, // an emptied map may keep its root leaf
            runs => {
                let leaves = runs.div_ceil(5);
                let internals = leaves.div_ceil(5);
                leaves * LEAF_BYTES + internals * INTERNAL_BYTES
            }
        }
    }

    /// `OutOfRange` unless `ordinal < len`.
    fn check_ordinal(&self, ordinal: u64) -> Result<(), Error> {
        if ordinal < self.len {
            Ok(())
        } else {
            Err(Error::OutOfRange {
                ordinal,
                len: self.len,
            })
        }
    }

    /// Sets and returns the lowest free bit in `[from, to]`, if any.
    fn claim_first(&mut self, from: u64, to: u64) -> Option<u64> {
        // Fast path: the first run holds the answer (the usual case when allocating lowest
        // first); its entry can be edited or removed without another search.
        let mut first = self.free.first_entry()?;
        if first.get().end >= from {
            let ordinal = first.get().start.max(from);
            if ordinal > to {
                return None;
            }
            let key = *first.key();
            match carve(key, first.get_mut(), ordinal) {
                Fixup::Remove(_) => {
                    first.remove();
                }
                fixup => self.apply(fixup),
            }
            self.free_count -= 1;
            return Some(ordinal);
        }
        // The first run ending at or after `from`: the first keyed at or after it, or the next
        // one when `from` falls in that run's slack.
        let mut runs = self.free.range_mut(from..);
        let (&key, run) = match runs.next()? {
            (_, run) if run.end < from => runs.next()?,
            found => found,
        };
        let ordinal = run.start.max(from);
        if ordinal > to {
            return None;
        }
        let fixup = carve(key, run, ordinal);
        self.apply(fixup);
        self.free_count -= 1;
        Some(ordinal)
    }

    /// Applies what [`carve`] left to do.
    fn apply(&mut self, fixup: Fixup) {
        match fixup {
            Fixup::None => {}
            Fixup::Remove(key) => {
                self.free.remove(&key);
            }
            Fixup::Insert(key, run) => {
                self.free.insert(key, run);
            }
        }
    }

    /// Moves the key of the run under `key` (if any) below `ordinal`, which a new run is about
    /// to start at. The run ends before `ordinal - 1`, so `ordinal - 1` is a valid key.
    fn lower_key_below(&mut self, key: Option<u64>, ordinal: u64) {
        if let Some(key) = key
            && key >= ordinal
            && let Some(run) = self.free.remove(&key)
        {
            self.free.insert(ordinal - 1, run);
        }
    }

    /// Panics unless the representation invariants hold (see the module docs).
    #[cfg(test)]
    pub(crate) fn assert_invariants(&self) {
        let mut previous: Option<Run> = None;
        let mut free = 0;
        let entries: Vec<(u64, Run)> = self.free.iter().map(|(&k, &r)| (k, r)).collect();
        for (i, &(key, run)) in entries.iter().enumerate() {
            assert!(run.start <= run.end && run.end <= key, "{key} -> {run:?}");
            match entries.get(i + 1) {
                Some((_, next)) => assert!(key < next.start, "{key} -> {run:?}, {next:?}"),
                None => assert!(key < self.len, "{key} -> {run:?}, len {}", self.len),
            }
            if let Some(previous) = previous {
                assert!(previous.end + 1 < run.start, "{previous:?} touches {run:?}");
            }
            previous = Some(run);
            free += run.end - run.start + 1;
        }
        assert_eq!(free, self.free_count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// The set bits, collected.
    fn set_bits(seq: &Sequence) -> Vec<u64> {
        seq.iter_set().collect()
    }

    /// The runs' keys, in order.
    fn keys(seq: &Sequence) -> Vec<u64> {
        seq.free.keys().copied().collect()
    }

    /// A full sequence of `len` bits.
    fn full(len: u64) -> Sequence {
        let mut seq = Sequence::new(len);
        while seq.set_any(false).is_ok() {}
        seq
    }

    #[test]
    fn a_new_run_takes_the_highest_key_so_ascending_frees_grow_it_in_place() {
        let mut seq = full(100);
        seq.unset(0).unwrap();
        assert_eq!(keys(&seq), vec![99]);
        seq.unset(1).unwrap();
        seq.unset(2).unwrap();
        assert_eq!(keys(&seq), vec![99], "the key did not move");
        assert_eq!(seq.free_ranges().collect::<Vec<_>>(), vec![0..=2]);
        seq.assert_invariants();
    }

    #[test]
    fn a_run_born_in_anothers_slack_pushes_that_key_below_it() {
        let mut seq = full(20);
        seq.unset(0).unwrap(); // [0, 0] keyed 19
        seq.unset(10).unwrap(); // [0, 0] must be keyed below 10
        seq.assert_invariants();
        assert_eq!(keys(&seq), vec![9, 19]);
        seq.unset(9).unwrap(); // [10, 10] grows down to 9: [0, 0] must be keyed below 9
        seq.assert_invariants();
        assert_eq!(keys(&seq), vec![8, 19]);
        assert_eq!(seq.free_ranges().collect::<Vec<_>>(), vec![0..=0, 9..=10]);
        // Bits in a slack are set, and searches skip the slack.
        assert!(seq.is_set(5));
        assert_eq!(seq.set(5), Err(Error::BitAllocated(5)));
        assert_eq!(seq.set_any_in_range(1, 19, false), Ok(9));
        seq.assert_invariants();
    }

    #[test]
    fn a_run_outgrowing_its_key_is_rekeyed_below_the_next_run() {
        let mut seq = Sequence::new(10);
        seq.set(5).unwrap(); // split: [0, 4] keyed 5, [6, 9] keyed 9
        assert_eq!(keys(&seq), vec![5, 9]);
        seq.set(6).unwrap();
        seq.set(7).unwrap(); // [8, 9] keyed 9
        seq.unset(5).unwrap(); // [0, 5] still fits under 5
        assert_eq!(keys(&seq), vec![5, 9]);
        seq.unset(6).unwrap(); // [0, 6] does not: keyed just below [8, 9]
        assert_eq!(keys(&seq), vec![7, 9]);
        assert_eq!(seq.free_ranges().collect::<Vec<_>>(), vec![0..=6, 8..=9]);
        seq.assert_invariants();
        seq.unset(7).unwrap();
        assert_eq!(seq, Sequence::new(10));
        seq.assert_invariants();
    }

    /// One operation of the invariant property test.
    #[derive(Debug, Clone)]
    enum Op {
        Set(u64),
        Unset(u64),
        SetAny(bool),
        InRange(u64, u64, bool),
    }

    proptest! {
        #[test]
        fn representation_invariants_hold_after_any_operations(
            len in prop_oneof![1u64..64, (u64::MAX - 64)..=u64::MAX],
            ops in prop::collection::vec(prop_oneof![
                (0u64..128).prop_map(Op::Set),
                (0u64..128).prop_map(Op::Unset),
                any::<bool>().prop_map(Op::SetAny),
                (0u64..128, 0u64..128, any::<bool>()).prop_map(|(a, b, s)| Op::InRange(a, b, s)),
            ], 0..200),
        ) {
            // Ordinals land near both ends of long sequences.
            let at = |n: u64| if n < 64 { n } else { len - 1 - (n - 64) % len.min(64) };
            let mut seq = Sequence::new(len);
            for op in ops {
                match op {
                    Op::Set(n) => drop(seq.set(at(n))),
                    Op::Unset(n) => drop(seq.unset(at(n))),
                    Op::SetAny(serial) => drop(seq.set_any(serial)),
                    Op::InRange(a, b, serial) => {
                        let (a, b) = (at(a).min(at(b)), at(a).max(at(b)));
                        drop(seq.set_any_in_range(a, b, serial));
                    }
                }
                seq.assert_invariants();
            }
            let rebuilt = Sequence::from_free_runs(len, seq.free_ranges().map(|r| (*r.start(), *r.end())));
            rebuilt.assert_invariants();
            prop_assert_eq!(rebuilt, seq);
        }
    }

    #[test]
    fn fresh_sequence_is_all_free_in_one_run() {
        let seq = Sequence::new(1000);
        assert_eq!(seq.len(), 1000);
        assert_eq!(seq.free_count(), 1000);
        assert_eq!(seq.runs(), 1);
        assert!(!seq.is_set(0) && !seq.is_set(999));
        assert_eq!(set_bits(&seq), Vec::<u64>::new());
    }

    #[test]
    fn set_and_unset_a_bit_round_trips() {
        let mut seq = Sequence::new(100);
        seq.set(42).unwrap();
        assert!(seq.is_set(42));
        assert_eq!(seq.free_count(), 99);
        assert_eq!(seq.runs(), 2);
        seq.unset(42).unwrap();
        assert!(!seq.is_set(42));
        assert_eq!(seq, Sequence::new(100));
        assert_eq!(seq.runs(), 1);
    }

    #[test]
    fn setting_a_set_bit_is_an_error_and_changes_nothing() {
        let mut seq = Sequence::new(64);
        seq.set(3).unwrap();
        let before = seq.clone();
        assert_eq!(seq.set(3), Err(Error::BitAllocated(3)));
        assert_eq!(seq, before);
        assert_eq!(seq.free_count(), 63);
    }

    #[test]
    fn out_of_range_ordinals_are_rejected_and_read_as_unset() {
        let mut seq = Sequence::new(10);
        assert_eq!(
            seq.set(10),
            Err(Error::OutOfRange {
                ordinal: 10,
                len: 10
            })
        );
        assert_eq!(
            seq.unset(u64::MAX),
            Err(Error::OutOfRange {
                ordinal: u64::MAX,
                len: 10
            })
        );
        assert!(!seq.is_set(10));
        assert_eq!(seq, Sequence::new(10));
    }

    #[test]
    fn unsetting_a_free_bit_is_not_an_error() {
        let mut seq = Sequence::new(10);
        seq.unset(5).unwrap();
        assert_eq!(seq, Sequence::new(10));
        assert_eq!(seq.free_count(), 10);
    }

    #[test]
    fn unset_merges_with_both_neighbours() {
        let mut seq = Sequence::new(10);
        for i in 0..10 {
            seq.set(i).unwrap();
        }
        assert_eq!(seq.runs(), 0);
        seq.unset(3).unwrap();
        seq.unset(5).unwrap();
        assert_eq!(seq.runs(), 2);
        seq.unset(4).unwrap();
        assert_eq!(seq.runs(), 1);
        assert_eq!(seq.free_ranges().collect::<Vec<_>>(), vec![3..=5]);
        assert_eq!(set_bits(&seq), vec![0, 1, 2, 6, 7, 8, 9]);
    }

    #[test]
    fn set_splits_runs_at_either_end_and_in_the_middle() {
        let mut seq = Sequence::new(10);
        seq.set(0).unwrap();
        seq.set(9).unwrap();
        seq.set(5).unwrap();
        assert_eq!(seq.free_ranges().collect::<Vec<_>>(), vec![1..=4, 6..=8]);
        assert_eq!(
            seq.set_ranges().collect::<Vec<_>>(),
            vec![0..=0, 5..=5, 9..=9]
        );
    }

    #[test]
    fn empty_sequence_has_nothing_to_hand_out() {
        let mut seq = Sequence::new(0);
        assert!(seq.is_empty());
        assert_eq!(seq.set_any(false), Err(Error::NoBitAvailable));
        assert_eq!(seq.set_any(true), Err(Error::NoBitAvailable));
        assert_eq!(seq.set(0), Err(Error::OutOfRange { ordinal: 0, len: 0 }));
        assert_eq!(set_bits(&seq), Vec::<u64>::new());
    }

    /// libnetwork's TestSetUnset: fill everything, both errors, free everything.
    #[test]
    fn filling_every_bit_then_freeing_all_restores_a_fresh_sequence() {
        for serial in [false, true] {
            let n = 8 * 1024;
            let mut seq = Sequence::new(n);
            for i in 0..n {
                assert_eq!(seq.set_any(serial), Ok(i));
            }
            assert!(seq.is_full());
            assert_eq!(seq.runs(), 0);
            assert_eq!(seq.set_any(serial), Err(Error::NoBitAvailable));
            assert_eq!(seq.set(50), Err(Error::BitAllocated(50)));
            for i in 0..n {
                seq.unset(i).unwrap();
            }
            assert_eq!(seq, Sequence::new(n));
            assert_eq!(seq.free_count(), n);
        }
    }

    /// libnetwork's TestOffsetSetUnset.
    #[test]
    fn freed_bit_is_found_by_a_range_search_starting_below_it() {
        let n = 1024;
        let mut seq = Sequence::new(n);
        for _ in 0..n {
            seq.set_any(false).unwrap();
        }
        seq.unset(288).unwrap();
        assert_eq!(seq.set_any_in_range(32, 500, false), Ok(288));
    }

    /// libnetwork's TestSetInRange.
    #[test]
    fn range_allocation_validates_and_stays_in_range() {
        let n = 5 * 1024;
        let mut seq = Sequence::new(n);
        seq.set(100).unwrap();
        assert_eq!(
            seq.set_any_in_range(4, 3, false),
            Err(Error::InvalidRange { start: 4, end: 3 })
        );
        assert_eq!(
            seq.set_any_in_range(0, n, false),
            Err(Error::InvalidRange { start: 0, end: n })
        );
        assert_eq!(
            seq.set_any_in_range(100, 100, false),
            Err(Error::NoBitAvailable)
        );
        assert_eq!(seq.set_any_in_range(100, 101, false), Ok(101));
        assert_eq!(seq.set_any_in_range(n - 1, n - 1, false), Ok(n - 1));
        assert_eq!(
            seq.set_any_in_range(n - 1, n - 1, false),
            Err(Error::NoBitAvailable)
        );

        // Sizes that are not a multiple of 32, including their last bit.
        for size in [1, 31, 33, 63, 65, 1000, 1023] {
            let mut seq = Sequence::new(size);
            assert_eq!(
                seq.set_any_in_range(size - 1, size - 1, false),
                Ok(size - 1)
            );
            for i in 0..size - 1 {
                assert_eq!(seq.set_any_in_range(0, size - 1, false), Ok(i));
            }
            assert_eq!(
                seq.set_any_in_range(0, size - 1, false),
                Err(Error::NoBitAvailable)
            );
        }
    }

    /// libnetwork's TestSetAnyInRange: the "last block of a run" split regression.
    #[test]
    fn range_allocation_across_run_splits_finds_the_right_bits() {
        let mut seq = Sequence::new(256);
        seq.set(0).unwrap();
        seq.set(255).unwrap();
        assert_eq!(seq.set_any_in_range(128, 255, false), Ok(128));
        assert_eq!(seq.set_any_in_range(128, 255, false), Ok(129));
        assert_eq!(seq.set_any_in_range(246, 255, false), Ok(246));
        assert_eq!(seq.set_any_in_range(246, 255, false), Ok(247));
        assert_eq!(set_bits(&seq), vec![0, 128, 129, 246, 247, 255]);
    }

    /// libnetwork's TestSetRollover / TestSetRolloverSerial.
    #[test]
    fn allocation_after_partial_frees_fills_every_bit() {
        for serial in [false, true] {
            let n = 16 * 1024;
            let mut seq = Sequence::new(n);
            for _ in 0..n / 2 {
                seq.set_any(serial).unwrap();
            }
            for i in (0..n / 2).step_by(3) {
                seq.unset(i).unwrap();
            }
            let freed = (0..n / 2).step_by(3).count() as u64;
            assert_eq!(seq.free_count(), n / 2 + freed);
            let first = seq.set_any(serial).unwrap();
            // Serial continues after the last handed out; lowest-first takes the first hole.
            assert_eq!(first, if serial { n / 2 } else { 0 });
            while seq.set_any(serial).is_ok() {}
            assert!(seq.is_full());
            assert_eq!(set_bits(&seq).len() as u64, n);
        }
    }

    /// libnetwork's TestGetFirstAvailableFromCurrent and TestAllocateSerial.
    #[test]
    fn serial_search_continues_after_the_last_handed_out_and_wraps() {
        let mut seq = Sequence::new(8);
        for i in 0..4 {
            assert_eq!(seq.set_any(true), Ok(i));
        }
        seq.unset(1).unwrap();
        assert_eq!(seq.set_any(true), Ok(4), "serial skips the freed lower bit");
        for i in 5..8 {
            assert_eq!(seq.set_any(true), Ok(i));
        }
        assert_eq!(seq.set_any(true), Ok(1), "serial wraps to the start");
        assert_eq!(seq.set_any(true), Err(Error::NoBitAvailable));

        let mut seq = Sequence::new(8);
        seq.set_any(false).unwrap();
        seq.set_any(false).unwrap();
        seq.unset(0).unwrap();
        assert_eq!(seq.set_any(false), Ok(0), "non-serial takes the lowest");
    }

    #[test]
    fn serial_range_search_ignores_a_cursor_outside_the_range() {
        let mut seq = Sequence::new(100);
        assert_eq!(seq.set_any_in_range(90, 99, true), Ok(90));
        // The cursor (91) lies above [10, 20]: the search starts at the range start.
        assert_eq!(seq.set_any_in_range(10, 20, true), Ok(10));
        assert_eq!(seq.set_any_in_range(10, 20, true), Ok(11));
        seq.unset(10).unwrap();
        assert_eq!(seq.set_any_in_range(10, 20, true), Ok(12));
        // Wrap inside the range once its top is reached.
        for i in 13..=20 {
            assert_eq!(seq.set_any_in_range(10, 20, true), Ok(i));
        }
        assert_eq!(seq.set_any_in_range(10, 20, true), Ok(10));
        assert_eq!(
            seq.set_any_in_range(10, 20, true),
            Err(Error::NoBitAvailable)
        );
    }

    #[test]
    fn set_does_not_move_the_serial_cursor() {
        let mut seq = Sequence::new(10);
        assert_eq!(seq.set_any(true), Ok(0));
        seq.set(7).unwrap();
        assert_eq!(seq.set_any(true), Ok(1));
    }

    /// libnetwork's TestRandomAllocateDeallocate, with a fixed permutation for "random".
    #[test]
    fn setting_and_freeing_every_bit_in_scattered_order_ends_in_one_run() {
        let mut seq = Sequence::new(512);
        for i in 0..512 {
            seq.set(i * 37 % 512).unwrap();
        }
        assert!(seq.is_full());
        for i in 0..512 {
            seq.unset(i * 101 % 512).unwrap();
            seq.assert_invariants();
        }
        assert_eq!(seq.runs(), 1);
        assert_eq!(seq, Sequence::new(512));
    }

    /// libnetwork's TestAllocateRandomDeallocate (and its serial variant).
    #[test]
    fn refilling_scattered_frees_restores_the_half_full_layout() {
        for serial in [false, true] {
            let mut seq = Sequence::new(1024);
            for _ in 0..512 {
                seq.set_any(serial).unwrap();
            }
            let half = seq.clone();
            for i in 0..128 {
                seq.unset(i * 37 % 512).unwrap();
            }
            assert_eq!(seq.free_count(), 512 + 128);
            for _ in 0..128 {
                let ordinal = seq.set_any_in_range(0, 511, serial).unwrap();
                assert!(ordinal < 512);
            }
            assert_eq!(seq, half);
            seq.assert_invariants();
        }
    }

    #[test]
    fn serial_cursor_is_not_part_of_equality() {
        let mut a = Sequence::new(10);
        a.set_any(true).unwrap();
        a.unset(0).unwrap();
        assert_eq!(a, Sequence::new(10));
    }

    #[test]
    fn largest_sequence_handles_its_last_bit() {
        let len = u64::MAX;
        let last = len - 1;
        let mut seq = Sequence::new(len);
        assert_eq!(seq.free_count(), u64::MAX);
        assert_eq!(seq.set_any_in_range(last, last, true), Ok(last));
        assert!(seq.is_set(last));
        // The cursor is now `len`, past every range: serial starts over at the start.
        assert_eq!(seq.set_any(true), Ok(0));
        assert_eq!(
            seq.set_ranges().collect::<Vec<_>>(),
            vec![0..=0, last..=last]
        );
        seq.unset(last).unwrap();
        seq.unset(0).unwrap();
        assert_eq!(seq, Sequence::new(len));
    }

    #[test]
    fn full_sequence_of_2_pow_20_bits_stores_no_run_and_under_a_kib() {
        let mut seq = Sequence::new(1 << 20);
        while seq.set_any(false).is_ok() {}
        assert_eq!(seq.runs(), 0);
        assert!(seq.approx_heap_bytes() + size_of::<Sequence>() < 1024);

        // Also when filled bit by bit in a scattered order.
        let mut seq = Sequence::new(1 << 20);
        for i in (0..1u64 << 20).rev() {
            seq.set(i).unwrap();
        }
        assert_eq!(seq.runs(), 0);
        assert!(seq.approx_heap_bytes() + size_of::<Sequence>() < 1024);
    }

    #[test]
    fn memory_estimate_grows_with_runs_not_length() {
        let big = Sequence::new(u64::MAX);
        assert_eq!(big.runs(), 1);
        assert!(big.approx_heap_bytes() < 1024);
        let mut holes = Sequence::new(1000);
        for i in (0..1000).step_by(2) {
            holes.set(i).unwrap();
        }
        assert_eq!(holes.runs(), 500);
        assert!(holes.approx_heap_bytes() > big.approx_heap_bytes());
    }
}
