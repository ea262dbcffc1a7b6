//! Property test: any sequence of ID manager operations behaves like a `BTreeSet` of
//! allocated ids.

use std::collections::BTreeSet;

use libnetwork_idm::{Error, Idm};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    GetId(bool),
    GetSpecific(u64),
    GetInRange(u64, u64, bool),
    Release(u64),
}

/// An id near the set: `start - 2 ..= end + 2`, from an offset into that window (clamped).
fn id_near(start: u64, end: u64, n: u64) -> u64 {
    let low = start.saturating_sub(2);
    let high = end.saturating_add(2);
    low.saturating_add(n % (high - low).saturating_add(1).max(1))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(Op::GetId),
        2 => any::<u64>().prop_map(Op::GetSpecific),
        3 => (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(a, b, s)| Op::GetInRange(a, b, s)),
        3 => any::<u64>().prop_map(Op::Release),
    ]
}

fn set_range() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        (0u64..50, 0u64..80).prop_map(|(s, n)| (s, s + n)),
        (0u64..40).prop_map(|n| (u64::MAX - n, u64::MAX)),
        (1u64 << 30..(1 << 30) + 20, 0u64..60).prop_map(|(s, n)| (s, s + n)),
    ]
}

/// The reference: allocated ids plus the serial cursor (the id after the last handed out).
struct Model {
    start: u64,
    end: u64,
    taken: BTreeSet<u64>,
    next: Option<u64>,
}

impl Model {
    fn first_free(&self, from: u64, to: u64) -> Option<u64> {
        (from..=to).find(|id| !self.taken.contains(id))
    }

    fn get_in_range(&mut self, start: u64, end: u64, serial: bool) -> Result<u64, Error> {
        if start > end || start < self.start || end > self.end {
            return Err(Error::InvalidRange { start, end });
        }
        let from = match self.next {
            Some(next) if serial && next > start && next <= end => next,
            _ => start,
        };
        let found = self
            .first_free(from, end)
            .or_else(|| {
                (from > start)
                    .then(|| self.first_free(start, from - 1))
                    .flatten()
            })
            .ok_or(Error::Exhausted { start, end })?;
        self.taken.insert(found);
        self.next = found.checked_add(1);
        Ok(found)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_operations_match_a_btreeset_model((start, end) in set_range(), ops in prop::collection::vec(op(), 0..150)) {
        let mut idm = Idm::new(start, end).unwrap();
        let mut model = Model { start, end, taken: BTreeSet::new(), next: None };
        let out_of_range = |id| Error::OutOfRange { id, start, end };
        for op in ops {
            match op {
                Op::GetId(serial) => {
                    let expected = model
                        .get_in_range(start, end, serial)
                        .map_err(|_| Error::Exhausted { start, end });
                    prop_assert_eq!(idm.get_id(serial), expected);
                }
                Op::GetSpecific(n) => {
                    let id = id_near(start, end, n);
                    let expected = if !(start..=end).contains(&id) {
                        Err(out_of_range(id))
                    } else if model.taken.insert(id) {
                        Ok(())
                    } else {
                        Err(Error::AlreadyAllocated(id))
                    };
                    prop_assert_eq!(idm.get_specific_id(id), expected);
                }
                Op::GetInRange(a, b, serial) => {
                    let (a, b) = (id_near(start, end, a), id_near(start, end, b));
                    let (a, b) = if a <= b || b % 8 == 0 { (a, b) } else { (b, a) };
                    prop_assert_eq!(idm.get_id_in_range(a, b, serial), model.get_in_range(a, b, serial));
                }
                Op::Release(n) => {
                    let id = id_near(start, end, n);
                    let expected = if (start..=end).contains(&id) {
                        model.taken.remove(&id);
                        Ok(())
                    } else {
                        Err(out_of_range(id))
                    };
                    prop_assert_eq!(idm.release(id), expected);
                }
            }
            prop_assert_eq!(idm.free_count(), end - start + 1 - model.taken.len() as u64);
        }
        prop_assert!(idm.iter_allocated().eq(model.taken.iter().copied()));
        for id in model.start.saturating_sub(2)..=model.end.saturating_add(2).min(model.start.saturating_add(200)) {
            prop_assert_eq!(idm.is_allocated(id), model.taken.contains(&id));
        }
    }
}
