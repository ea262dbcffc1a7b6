//! Criterion benchmarks for the libnetwork crates; see the files in `benches/`.
#![forbid(unsafe_code)]
