//! Property tests: any sequence of operations on a [`Sequence`] behaves like a `BTreeSet` of
//! set ordinals, for lengths that are not multiples of 32 and lengths near `u64::MAX`.

use std::collections::BTreeSet;

use libnetwork_bitseq::{Error, Sequence};
use proptest::prelude::*;

/// Where an ordinal is picked, relative to the sequence's length (resolved once it is known).
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// `n % 64`: near the start.
    Low(u64),
    /// `len - 1 - n % 64`: near the end.
    High(u64),
    /// `n % len`: anywhere.
    Any(u64),
    /// `len + n % 4`: out of range.
    Out(u64),
}

impl Pick {
    fn resolve(self, len: u64) -> u64 {
        match self {
            Self::Low(n) => n % 64,
            Self::High(n) => len.saturating_sub(1).saturating_sub(n % 64),
            Self::Any(n) => n.checked_rem(len).unwrap_or(0),
            Self::Out(n) => len.saturating_add(n % 4),
        }
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        4 => any::<u64>().prop_map(Pick::Low),
        4 => any::<u64>().prop_map(Pick::High),
        3 => any::<u64>().prop_map(Pick::Any),
        1 => any::<u64>().prop_map(Pick::Out),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Set(Pick),
    Unset(Pick),
    SetAny(bool),
    SetAnyInRange(Pick, Pick, bool),
    IsSet(Pick),
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => pick().prop_map(Op::Set),
        4 => pick().prop_map(Op::Unset),
        4 => any::<bool>().prop_map(Op::SetAny),
        4 => (pick(), pick(), any::<bool>()).prop_map(|(a, b, s)| Op::SetAnyInRange(a, b, s)),
        2 => pick().prop_map(Op::IsSet),
        1 => Just(Op::Check),
    ]
}

fn length() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..300,
        2 => (u64::MAX - 70)..=u64::MAX,
        1 => Just(1u64 << 40),
        1 => Just((1u64 << 32) + 17),
    ]
}

/// The reference: the set ordinals, and libnetwork's serial cursor.
#[derive(Debug)]
struct Model {
    len: u64,
    set: BTreeSet<u64>,
    next: u64,
}

impl Model {
    /// The lowest free ordinal in `[from, to]`. Walks at most `set.len() + 1` ordinals.
    fn first_free(&self, from: u64, to: u64) -> Option<u64> {
        let mut candidate = from;
        for &taken in self.set.range(from..=to) {
            if taken != candidate {
                break;
            }
            candidate = candidate.checked_add(1)?;
        }
        (candidate <= to).then_some(candidate)
    }

    fn set_any_in_range(&mut self, start: u64, end: u64, serial: bool) -> Result<u64, Error> {
        if start > end || end >= self.len {
            return Err(Error::InvalidRange { start, end });
        }
        let from = if serial && self.next > start && self.next <= end {
            self.next
        } else {
            start
        };
        let found = self.first_free(from, end).or_else(|| {
            (from > start)
                .then(|| self.first_free(start, from - 1))
                .flatten()
        });
        let ordinal = found.ok_or(Error::NoBitAvailable)?;
        self.set.insert(ordinal);
        self.next = ordinal + 1;
        Ok(ordinal)
    }
}

/// Checks everything observable about `seq` against the model.
fn check_all(seq: &Sequence, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(seq.len(), model.len);
    prop_assert_eq!(seq.free_count(), model.len - model.set.len() as u64);
    prop_assert!(seq.iter_set().eq(model.set.iter().copied()));
    prop_assert_eq!(seq.is_full(), model.set.len() as u64 == model.len);
    // Set and free ranges tile the sequence, alternating.
    let mut ranges: Vec<_> = seq
        .set_ranges()
        .chain(seq.free_ranges())
        .map(|r| (*r.start(), *r.end()))
        .collect();
    ranges.sort_unstable();
    let mut next = 0u64;
    for (start, end) in &ranges {
        prop_assert_eq!(*start, next);
        prop_assert!(start <= end);
        next = end.wrapping_add(1);
    }
    prop_assert_eq!(next, model.len);
    // Byte and JSON round trips keep the bits.
    let bytes = seq.to_bytes();
    prop_assert_eq!(&Sequence::from_bytes(&bytes).unwrap(), seq);
    let json = serde_json::to_string(seq).unwrap();
    prop_assert_eq!(&serde_json::from_str::<Sequence>(&json).unwrap(), seq);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_operations_match_a_btreeset_model(len in length(), ops in prop::collection::vec(op(), 0..120)) {
        let mut seq = Sequence::new(len);
        let mut model = Model { len, set: BTreeSet::new(), next: 0 };
        for op in ops {
            match op {
                Op::Set(p) => {
                    let ordinal = p.resolve(len);
                    let expected = if ordinal >= len {
                        Err(Error::OutOfRange { ordinal, len })
                    } else if !model.set.insert(ordinal) {
                        Err(Error::BitAllocated(ordinal))
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(seq.set(ordinal), expected);
                }
                Op::Unset(p) => {
                    let ordinal = p.resolve(len);
                    let expected = if ordinal >= len {
                        Err(Error::OutOfRange { ordinal, len })
                    } else {
                        model.set.remove(&ordinal);
                        Ok(())
                    };
                    prop_assert_eq!(seq.unset(ordinal), expected);
                }
                Op::SetAny(serial) => {
                    let expected = match len.checked_sub(1) {
                        Some(last) => model.set_any_in_range(0, last, serial),
                        None => Err(Error::NoBitAvailable),
                    };
                    prop_assert_eq!(seq.set_any(serial), expected);
                }
                Op::SetAnyInRange(a, b, serial) => {
                    let (start, end) = (a.resolve(len), b.resolve(len));
                    let expected = model.set_any_in_range(start, end, serial);
                    prop_assert_eq!(seq.set_any_in_range(start, end, serial), expected);
                }
                Op::IsSet(p) => {
                    let ordinal = p.resolve(len);
                    prop_assert_eq!(seq.is_set(ordinal), model.set.contains(&ordinal));
                }
                Op::Check => check_all(&seq, &model)?,
            }
            prop_assert_eq!(seq.free_count(), len - model.set.len() as u64);
        }
        check_all(&seq, &model)?;
    }

    #[test]
    fn filling_a_small_sequence_hands_out_every_bit_once(len in 0u64..200, serial: bool, holes in prop::collection::vec(any::<u64>(), 0..40)) {
        let mut seq = Sequence::new(len);
        while seq.set_any(serial).is_ok() {}
        prop_assert!(seq.is_full());
        prop_assert_eq!(seq.runs(), 0);
        let mut model: BTreeSet<u64> = (0..len).collect();
        for hole in holes {
            if let Some(ordinal) = hole.checked_rem(len) {
                seq.unset(ordinal).unwrap();
                model.remove(&ordinal);
            }
        }
        let mut refilled = BTreeSet::new();
        while let Ok(ordinal) = seq.set_any(serial) {
            prop_assert!(refilled.insert(ordinal));
            prop_assert!(!model.contains(&ordinal));
        }
        prop_assert_eq!(refilled.len() as u64 + model.len() as u64, len);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(seq) = Sequence::from_bytes(&bytes) {
            // Whatever decodes re-encodes to something that decodes to the same bits.
            prop_assert_eq!(Sequence::from_bytes(&seq.to_bytes()).unwrap(), seq);
        }
    }

    #[test]
    fn decoding_corrupted_valid_bytes_never_panics(
        len in length(),
        sets in prop::collection::vec(any::<u64>(), 0..20),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut seq = Sequence::new(len);
        for s in sets {
            if let Some(ordinal) = s.checked_rem(len) {
                let _ = seq.set(ordinal);
            }
        }
        let mut bytes = seq.to_bytes();
        for (at, xor) in flips {
            let at = at % bytes.len();
            bytes[at] ^= xor;
        }
        // Malformed or a consistent sequence; either way no panic and no runaway memory.
        if let Ok(decoded) = Sequence::from_bytes(&bytes) {
            prop_assert!(decoded.free_count() <= decoded.len());
        }
    }
}
