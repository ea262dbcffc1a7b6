//! Hosts file benchmarks: incremental changes against libnetwork's rewrite-everything way.
//!
//! `etchosts/update_1000`: one `update` of the record in the middle of a file holding the
//! defaults plus 1000 records, alternating between two addresses.
//! - `in_place_len_change`: [`WriteMode::InPlace`], addresses of different lengths, so the
//!   changed line and everything after it (about half the file) is written with one `pwrite`;
//! - `in_place_same_len`: [`WriteMode::InPlace`], addresses of equal length, so only the
//!   address bytes are written;
//! - `atomic`: [`WriteMode::Atomic`], the whole buffer to a temporary file and a rename;
//! - `libnetwork_rewrite`: the baseline, written with std only the way libnetwork's
//!   `etchosts.Update` works: read the file, replace the address on the matching lines, write
//!   the whole file back (truncate + write).
//!
//! `etchosts/delete_255`: libnetwork's `BenchmarkDelete` shape: a file with the defaults plus
//! 255 records is set up outside the timing, then one `delete` of one record is timed (ours in
//! both modes, and the std-only read-filter-rewrite baseline).
//!
//! Each group runs twice: on `disk` (a temporary directory under the system's temp dir, ext4
//! on our machines) and on `tmpfs` (`/dev/shm`, skipped when missing). On ext4 a rename over an
//! existing file and a truncate-to-zero followed by a write both make the kernel start
//! writeback of the new data (the `auto_da_alloc` heuristic), which dominates the atomic and
//! libnetwork numbers there; tmpfs shows the cost without the disk.
#![allow(missing_docs)]

use std::fs;
use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use libnetwork_etchosts::{BuildOptions, Hosts, Record, WriteMode};

fn record(i: usize) -> Record {
    let ip = IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]);
    Record::new(ip, [format!("host{i}")]).unwrap()
}

fn hosts_file(path: &Path, records: usize, mode: WriteMode) -> Hosts {
    let hosts = Hosts::build(path, &BuildOptions::default(), mode).unwrap();
    let records: Vec<Record> = (0..records).map(record).collect();
    hosts.add(&records).unwrap();
    hosts
}

/// libnetwork's `Update`: re-read the file, replace the address of the lines whose first name
/// (after a tab) is `hostname` or `hostname.*`, write everything back.
fn libnetwork_update(path: &Path, ip: &str, hostname: &str) {
    let old = fs::read_to_string(path).unwrap();
    let mut new = String::with_capacity(old.len() + 16);
    for line in old.split_inclusive('\n') {
        let replaced = line.split_once('\t').and_then(|(_, names)| {
            let rest = names.strip_prefix(hostname)?;
            rest.starts_with(|c: char| c.is_whitespace() || c == '.')
                .then(|| {
                    new.push_str(ip);
                    new.push('\t');
                    new.push_str(names);
                })
        });
        if replaced.is_none() {
            new.push_str(line);
        }
    }
    fs::write(path, new).unwrap();
}

/// libnetwork's `Delete`: re-read the file, drop the lines ending in `\t<hosts>`, write
/// everything back.
fn libnetwork_delete(path: &Path, hosts: &str) {
    let old = fs::read_to_string(path).unwrap();
    let suffix = format!("\t{hosts}");
    let mut new = String::with_capacity(old.len());
    for line in old.lines() {
        if line.is_empty() || line.ends_with(&suffix) {
            continue;
        }
        new.push_str(line);
        new.push('\n');
    }
    fs::write(path, new).unwrap();
}

/// The directories to run in: a disk-backed temporary directory and, when present, tmpfs.
fn places() -> Vec<(&'static str, tempfile::TempDir)> {
    let mut places = vec![("disk", tempfile::tempdir().unwrap())];
    if let Ok(dir) = tempfile::tempdir_in("/dev/shm") {
        places.push(("tmpfs", dir));
    }
    places
}

fn update_1000(c: &mut Criterion) {
    for (place, dir) in places() {
        let path = dir.path().join("hosts");
        let mut group = c.benchmark_group(format!("etchosts/update_1000/{place}"));

        for (name, mode, ips) in [
            (
                "in_place_len_change",
                WriteMode::InPlace,
                ["10.1.0.5", "10.1.0.105"],
            ),
            (
                "in_place_same_len",
                WriteMode::InPlace,
                ["10.1.0.5", "10.1.0.6"],
            ),
            ("atomic", WriteMode::Atomic, ["10.1.0.5", "10.1.0.105"]),
        ] {
            let hosts = hosts_file(&path, 1000, mode);
            let ips: [IpAddr; 2] = ips.map(|ip| ip.parse().unwrap());
            let mut turn = 0;
            group.bench_function(name, |b| {
                b.iter(|| {
                    turn ^= 1;
                    assert_eq!(hosts.update(black_box(ips[turn]), "host500").unwrap(), 1);
                })
            });
        }

        drop(hosts_file(&path, 1000, WriteMode::Atomic));
        let ips = ["10.1.0.5", "10.1.0.105"];
        let mut turn = 0;
        group.bench_function("libnetwork_rewrite", |b| {
            b.iter(|| {
                turn ^= 1;
                libnetwork_update(&path, black_box(ips[turn]), "host500");
            })
        });
        group.finish();
        assert!(fs::read_to_string(&path).unwrap().contains("\thost500\n"));
    }
}

fn delete_255(c: &mut Criterion) {
    for (place, dir) in places() {
        let path = dir.path().join("hosts");
        let mut group = c.benchmark_group(format!("etchosts/delete_255/{place}"));
        let doomed = [record(128)];

        for (name, mode) in [
            ("in_place", WriteMode::InPlace),
            ("atomic", WriteMode::Atomic),
        ] {
            group.bench_function(name, |b| {
                b.iter_batched(
                    || hosts_file(&path, 255, mode),
                    |hosts| {
                        assert_eq!(hosts.delete(black_box(&doomed)).unwrap(), 1);
                        hosts
                    },
                    BatchSize::PerIteration,
                )
            });
        }

        let content = hosts_file(&path, 255, WriteMode::Atomic).content();
        group.bench_function("libnetwork_rewrite", |b| {
            b.iter_batched(
                || fs::write(&path, &content).unwrap(),
                |()| libnetwork_delete(&path, black_box("host128")),
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, update_1000, delete_255);
criterion_main!(benches);
