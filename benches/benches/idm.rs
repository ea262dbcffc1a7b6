//! Criterion benchmarks of `libnetwork_idm::Idm`, per operation.
//!
//! Run (release, short):
//! `CARGO_TARGET_DIR=/var/cache/rlibnetwork/target cargo bench -p libnetwork-benches --bench idm -- --warm-up-time 1 --measurement-time 3`
//!
//! - `idm/get_id_until_exhausted/1..=100000/{serial,lowest}`: `get_id` on the set
//!   `[1, 100000]` from empty until exhausted. Each criterion iteration is one call; the set
//!   persists across criterion's calls and is reset (untimed) once exhausted, so the average
//!   covers whole fills. libnetwork's Go code takes about 300 ns per `GetID` here.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use libnetwork_idm::Idm;

fn get_id_until_exhausted(c: &mut Criterion) {
    let mut group = c.benchmark_group("idm/get_id_until_exhausted");
    let fresh = Idm::new(1, 100_000).unwrap();
    for serial in [true, false] {
        let mut idm = fresh.clone();
        let name = if serial { "serial" } else { "lowest" };
        group.bench_function(format!("1..=100000/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut remaining = iters;
                while remaining > 0 {
                    if idm.free_count() == 0 {
                        idm = fresh.clone();
                    }
                    let batch = remaining.min(idm.free_count());
                    let start = Instant::now();
                    for _ in 0..batch {
                        black_box(idm.get_id(serial).unwrap());
                    }
                    total += start.elapsed();
                    remaining -= batch;
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, get_id_until_exhausted);
criterion_main!(benches);
