//! Port allocator benchmarks.
//!
//! `allocate_whole_range` is libnetwork's `BenchmarkAllocatePorts`: per iteration, allocate
//! every port of the default dynamic range (49153-65535, 16 383 ports) on `0.0.0.0/tcp` in
//! order, asserting each result, then `release_all`. Criterion's throughput line gives ports per
//! second; the time per iteration divided by 16 383 is the cost per port (libnetwork: about
//! 110 ns per port).
//!
//! `allocate_whole_range_specific` does the same on `10.0.0.1/tcp` while `0.0.0.0` holds a few
//! ports outside the range, so every search also consults the unspecified address's bitset.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use libnetwork_portallocator::{PortAllocator, PortRange, Protocol};

fn allocate_range(pa: &mut PortAllocator, ip: IpAddr, range: PortRange) {
    for expected in range.start()..=range.end() {
        let port = pa.request_port(ip, Protocol::Tcp, 0).unwrap();
        assert_eq!(port, expected);
    }
}

fn allocate_whole_range(c: &mut Criterion) {
    let range = PortRange::DEFAULT_DYNAMIC;
    let mut group = c.benchmark_group("portallocator");
    group.throughput(Throughput::Elements(u64::from(range.len())));

    let mut pa = PortAllocator::new(range);
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    group.bench_function("allocate_whole_range", |b| {
        b.iter(|| {
            allocate_range(&mut pa, black_box(any), range);
            pa.release_all();
        })
    });

    let specific = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    group.bench_function("allocate_whole_range_specific", |b| {
        b.iter(|| {
            for port in [80, 443, 8080] {
                pa.request_port(any, Protocol::Tcp, port).unwrap();
            }
            allocate_range(&mut pa, black_box(specific), range);
            pa.release_all();
        })
    });
    group.finish();
}

criterion_group!(benches, allocate_whole_range);
criterion_main!(benches);
