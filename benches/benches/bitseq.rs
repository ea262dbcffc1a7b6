//! Criterion benchmarks of `libnetwork_bitseq::Sequence`, per operation.
//!
//! Run (release, short):
//! `CARGO_TARGET_DIR=/var/cache/rlibnetwork/target cargo bench -p libnetwork-benches --bench bitseq -- --warm-up-time 1 --measurement-time 3`
//!
//! Every case times single operations (`iter_custom`), so criterion's time is the time of one
//! operation. The state lives across criterion's calls and cycles: once a sequence is full (or
//! empty) it is reset outside the timed section, so the average covers whole fills.
//!
//! - `bitseq/set_any_until_full/{2^16,2^20}/{serial,lowest}`: `set_any` on a sequence being
//!   filled from empty to full.
//! - `bitseq/unset_all/{2^16,2^20}/{ascending,shuffled}`: `unset` of every bit of a full
//!   sequence, in order or in a seeded random order.
//! - `bitseq/set_any_after_holes/{2^20_with_2^16_holes,2^24_with_2^20_holes}/{serial,lowest}`:
//!   a full sequence with seeded random holes (2^16 in 2^20 bits, a million in 2^24 bits),
//!   `set_any` until it is full again.
//!
//! libnetwork's Go code takes 290-410 ns per `SetAny` and 275-360 ns per `Unset` on 2^16 and
//! 2^20 bits (measured on the machine these benches were written on).
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use libnetwork_bitseq::Sequence;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

const SIZES: [(&str, u64); 2] = [("2^16", 1 << 16), ("2^20", 1 << 20)];

fn mode_name(serial: bool) -> &'static str {
    if serial { "serial" } else { "lowest" }
}

/// Times `iters` calls of `set_any(serial)`, refilling from `fresh` (untimed) whenever `seq` is
/// full. `seq` persists across calls so that every phase of a fill is sampled evenly.
fn time_set_any(seq: &mut Sequence, fresh: &Sequence, serial: bool, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut remaining = iters;
    while remaining > 0 {
        if seq.is_full() {
            *seq = fresh.clone();
        }
        let batch = remaining.min(seq.free_count());
        let start = Instant::now();
        for _ in 0..batch {
            black_box(seq.set_any(serial).unwrap());
        }
        total += start.elapsed();
        remaining -= batch;
    }
    total
}

fn set_any_until_full(c: &mut Criterion) {
    let mut group = c.benchmark_group("bitseq/set_any_until_full");
    for (name, len) in SIZES {
        for serial in [true, false] {
            let fresh = Sequence::new(len);
            let mut seq = fresh.clone();
            group.bench_function(format!("{name}/{}", mode_name(serial)), |b| {
                b.iter_custom(|iters| time_set_any(&mut seq, &fresh, serial, iters))
            });
        }
    }
    group.finish();
}

fn unset_all(c: &mut Criterion) {
    let mut group = c.benchmark_group("bitseq/unset_all");
    for (name, len) in SIZES {
        let mut full = Sequence::new(len);
        while full.set_any(false).is_ok() {}
        let mut shuffled: Vec<u64> = (0..len).collect();
        shuffled.shuffle(&mut StdRng::seed_from_u64(16));
        let ascending: Vec<u64> = (0..len).collect();
        for (order_name, order) in [("ascending", ascending), ("shuffled", shuffled)] {
            let mut seq = full.clone();
            let mut next = 0usize;
            group.bench_function(format!("{name}/{order_name}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut remaining = iters;
                    while remaining > 0 {
                        if next == order.len() {
                            seq = full.clone();
                            next = 0;
                        }
                        let batch = remaining.min((order.len() - next) as u64) as usize;
                        let ordinals = &order[next..next + batch];
                        let start = Instant::now();
                        for &ordinal in ordinals {
                            seq.unset(black_box(ordinal)).unwrap();
                        }
                        total += start.elapsed();
                        next += batch;
                        remaining -= batch as u64;
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

fn set_any_after_holes(c: &mut Criterion) {
    let mut group = c.benchmark_group("bitseq/set_any_after_holes");
    for (name, len, holes) in [
        ("2^20_with_2^16_holes", 1u64 << 20, 1u64 << 16),
        ("2^24_with_2^20_holes", 1 << 24, 1 << 20),
    ] {
        let mut holed = Sequence::new(len);
        while holed.set_any(false).is_ok() {}
        let mut rng = StdRng::seed_from_u64(len);
        while holed.free_count() < holes {
            holed.unset(rng.random_range(0..len)).unwrap();
        }
        for serial in [true, false] {
            let mut seq = holed.clone();
            group.bench_function(format!("{name}/{}", mode_name(serial)), |b| {
                b.iter_custom(|iters| time_set_any(&mut seq, &holed, serial, iters))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, set_any_until_full, unset_all, set_any_after_holes);
criterion_main!(benches);
