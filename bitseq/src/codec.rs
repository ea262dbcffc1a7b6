//! libnetwork's byte layout for a bit sequence, and serde on top of it.
//!
//! The layout (all big-endian): `bits: u64`, `unselected: u64`, then one or more
//! `block: u32, count: u64` pairs, each meaning "`count` consecutive 32-bit blocks equal to
//! `block`". Ordinal 0 is the most significant bit of the first block; the blocks cover
//! `ceil(bits / 32)` blocks, so the last one may have padding bits after `bits`, which are 0.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Sequence};

/// Bits per block.
const BLOCK_BITS: u64 = 32;
/// A block with every bit set.
const BLOCK_FULL: u32 = u32::MAX;
/// Bytes of the `bits || unselected` header.
const HEADER_LEN: usize = 16;
/// Bytes of one `block || count` pair.
const RUN_LEN: usize = 12;

/// The most free runs [`Sequence::from_bytes`] builds. A block that is neither all-set nor
/// all-free repeated `count` times expands into up to `16 * count` runs in our representation;
/// this bound keeps a few bytes of input from asking for unbounded memory, while leaving room
/// for an IPv4 /8 pool with every other address taken (2^23 runs).
pub const MAX_DECODED_RUNS: u64 = 1 << 24;

impl Sequence {
    /// libnetwork's byte layout (see the [module docs](crate#byte-layout)): equal adjacent blocks
    /// are merged into one pair, as libnetwork keeps them. A sequence of 0 bits is written with
    /// one zero-count pair, as libnetwork does.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + RUN_LEN * (2 * self.runs() + 1));
        out.extend_from_slice(&self.len().to_be_bytes());
        out.extend_from_slice(&self.free_count().to_be_bytes());
        let mut blocks = BlockWriter::default();
        let mut next = 0; // first ordinal not yet written
        for range in self.free_ranges() {
            blocks.push_bits(range.start() - next, true);
            blocks.push_bits(range.end() - range.start() + 1, false);
            next = range.end() + 1;
        }
        blocks.push_bits(self.len() - next, true);
        // Padding after the last bit is free, up to the block boundary.
        blocks.push_bits((BLOCK_BITS - self.len() % BLOCK_BITS) % BLOCK_BITS, false);
        let runs = blocks.finish();
        if runs.is_empty() {
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&0u64.to_be_bytes());
        }
        for (block, count) in runs {
            out.extend_from_slice(&block.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
        }
        out
    }

    /// Parses libnetwork's byte layout. Zero-count pairs (a corruption libnetwork's
    /// `CheckConsistency` repairs) are skipped. The serial cursor starts at 0.
    ///
    /// # Errors
    /// [`Error::Malformed`] (never a panic) when the bytes are truncated, the pairs do not cover
    /// exactly `ceil(bits / 32)` blocks, a padding bit is set, `unselected` differs from the
    /// number of free bits, or the sequence would need more than [`MAX_DECODED_RUNS`] runs.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(Error::Malformed(format!(
                "{} bytes is shorter than the header",
                bytes.len()
            )));
        };
        let (bits, unselected) = (be_u64(&header[..8]), be_u64(&header[8..]));
        if body.len() % RUN_LEN != 0 {
            return Err(Error::Malformed(format!(
                "{} bytes of runs is not a multiple of {RUN_LEN}",
                body.len()
            )));
        }
        let pairs = || {
            body.chunks_exact(RUN_LEN)
                .map(|pair| {
                    let block = u32::from_be_bytes([pair[0], pair[1], pair[2], pair[3]]);
                    (block, be_u64(&pair[4..]))
                })
                .filter(|&(_, count)| count > 0)
        };
        // Check the header against the pairs before building anything, so that corrupted
        // counts are refused without expanding them.
        check_pairs(bits, unselected, pairs())?;
        let mut reader = RunReader::new(bits);
        for (block, count) in pairs() {
            reader.push_blocks(block, count)?;
        }
        let seq = Self::from_free_runs(bits, reader.free);
        debug_assert_eq!(seq.free_count(), unselected, "checked by check_pairs");
        Ok(seq)
    }
}

/// Checks, from the `(block, count)` pairs alone (zero counts removed), that they cover exactly
/// the `ceil(bits / 32)` blocks, that padding bits are free, that they hold `unselected` free
/// bits, and that their mixed blocks fit in [`MAX_DECODED_RUNS`] runs.
fn check_pairs(
    bits: u64,
    unselected: u64,
    pairs: impl Iterator<Item = (u32, u64)>,
) -> Result<(), Error> {
    let want_blocks = u128::from(bits.div_ceil(BLOCK_BITS));
    // Sums over at most 2^64 / 12 pairs of u64 values: u128 cannot overflow.
    let (mut blocks, mut zeros, mut mixed_copies) = (0u128, 0u128, 0u128);
    let mut last_block = None;
    for (block, count) in pairs {
        let count = u128::from(count);
        blocks += count;
        if blocks > want_blocks {
            return Err(Error::Malformed(format!(
                "runs cover more than the {want_blocks} blocks of {bits} bits"
            )));
        }
        zeros += count * u128::from(block.count_zeros());
        if block != 0 && block != BLOCK_FULL {
            mixed_copies += count;
        }
        last_block = Some(block);
    }
    if blocks != want_blocks {
        return Err(Error::Malformed(format!(
            "runs cover {blocks} blocks, {bits} bits need {want_blocks}"
        )));
    }
    // Fewer than 32 padding bits, at the end of the last block.
    let padding = want_blocks * u128::from(BLOCK_BITS) - u128::from(bits);
    let padding_mask = ((1u64 << padding) - 1) as u32;
    if last_block.is_some_and(|block| block & padding_mask != 0) {
        return Err(Error::Malformed(format!(
            "a padding bit after the last of {bits} bits is set"
        )));
    }
    let free = zeros - padding;
    if free != u128::from(unselected) {
        return Err(Error::Malformed(format!(
            "header says {unselected} free bits, the runs hold {free}"
        )));
    }
    // Every copy of a mixed block adds at least one free run (the free bits after its last set
    // bit, or before its first one, cannot merge with the next copy's).
    if mixed_copies > u128::from(MAX_DECODED_RUNS) {
        return Err(Error::Malformed(format!(
            "{mixed_copies} partly set blocks need more than {MAX_DECODED_RUNS} runs"
        )));
    }
    Ok(())
}

/// A big-endian u64 from exactly 8 bytes.
fn be_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_be_bytes(buf)
}

/// Turns a stream of "n bits set/free" into merged `(block, count)` pairs.
#[derive(Debug, Default)]
struct BlockWriter {
    /// Finished pairs, adjacent equal blocks merged.
    runs: Vec<(u32, u64)>,
    /// The block being filled, and how many of its bits (from the most significant) are
    /// filled.
    partial: u32,
    partial_bits: u64,
}

impl BlockWriter {
    /// Appends `n` bits, all set or all free.
    fn push_bits(&mut self, mut n: u64, set: bool) {
        // Finish the partial block first.
        if self.partial_bits > 0 {
            let take = n.min(BLOCK_BITS - self.partial_bits);
            if set {
                self.partial |= span_mask(self.partial_bits, take);
            }
            self.partial_bits += take;
            n -= take;
            if self.partial_bits == BLOCK_BITS {
                self.push_blocks(self.partial, 1);
                self.partial = 0;
                self.partial_bits = 0;
            }
        }
        // Whole blocks in one pair.
        let whole = n / BLOCK_BITS;
        if whole > 0 {
            self.push_blocks(if set { BLOCK_FULL } else { 0 }, whole);
        }
        // The rest starts a new partial block.
        let rest = n % BLOCK_BITS;
        if rest > 0 {
            self.partial = if set { span_mask(0, rest) } else { 0 };
            self.partial_bits = rest;
        }
    }

    fn push_blocks(&mut self, block: u32, count: u64) {
        match self.runs.last_mut() {
            Some((last, last_count)) if *last == block => *last_count += count,
            _ => self.runs.push((block, count)),
        }
    }

    fn finish(self) -> Vec<(u32, u64)> {
        debug_assert_eq!(self.partial_bits, 0, "the caller pads to a block boundary");
        self.runs
    }
}

/// A mask of `n` bits starting `first` bits from the most significant bit (`first + n <= 32`).
fn span_mask(first: u64, n: u64) -> u32 {
    debug_assert!(first + n <= BLOCK_BITS);
    if n == 0 {
        return 0;
    }
    // Work in u64 so a 32-bit shift is defined.
    let ones = (1u64 << n) - 1;
    (ones << (BLOCK_BITS - first - n)) as u32
}

/// Turns `(block, count)` pairs into free runs, checking padding and the run budget.
#[derive(Debug)]
struct RunReader {
    /// The sequence's length.
    bits: u64,
    /// The first ordinal of the next block. `u128` because `ceil(bits / 32) * 32` may be 2^64.
    next: u128,
    /// Free runs found so far, as `(start, end)`, ascending; touching runs are merged.
    free: Vec<(u64, u64)>,
}

impl RunReader {
    fn new(bits: u64) -> Self {
        Self {
            bits,
            next: 0,
            free: Vec::new(),
        }
    }

    /// Adds `count` blocks equal to `block`; [`check_pairs`] checked that all pairs fit in the
    /// `ceil(bits / 32)` blocks, leave the padding free, and fit in the run budget.
    fn push_blocks(&mut self, block: u32, count: u64) -> Result<(), Error> {
        let bits = u128::from(self.bits);
        let span_end = self.next + u128::from(count) * u128::from(BLOCK_BITS);
        match block {
            BLOCK_FULL => {}
            0 => self.push_free(self.next, span_end.min(bits) - 1)?,
            mixed => {
                for copy in 0..u128::from(count) {
                    self.push_mixed(self.next + copy * u128::from(BLOCK_BITS), mixed)?;
                }
            }
        }
        self.next = span_end;
        Ok(())
    }

    /// Adds the free runs of one block starting at ordinal `base`.
    fn push_mixed(&mut self, base: u128, block: u32) -> Result<(), Error> {
        let mut bit = 0;
        while bit < 32 {
            // Skip the set bits, then take the free bits that follow.
            bit += (block << bit).leading_ones();
            if bit >= 32 {
                break;
            }
            let free = (block << bit).leading_zeros().min(32 - bit);
            let start = base + u128::from(bit);
            bit += free;
            // Free padding is clipped away.
            let end = (base + u128::from(bit) - 1).min(u128::from(self.bits) - 1);
            if start <= end {
                self.push_free(start, end)?;
            }
        }
        Ok(())
    }

    /// Appends the free run `[start, end]` (both below `bits`), merging with the previous one
    /// when they touch.
    fn push_free(&mut self, start: u128, end: u128) -> Result<(), Error> {
        // Both are below `bits`, a u64.
        let (start, end) = (start as u64, end as u64);
        if let Some(last) = self.free.last_mut()
            && last.1 + 1 == start
        {
            last.1 = end;
            return Ok(());
        }
        if self.free.len() as u64 >= MAX_DECODED_RUNS {
            return Err(Error::Malformed(format!(
                "more than {MAX_DECODED_RUNS} free runs"
            )));
        }
        self.free.push((start, end));
        Ok(())
    }
}

/// Human-readable formats (JSON) get the base64 string of [`Sequence::to_bytes`], as
/// libnetwork's `sequence` field; binary formats get the bytes.
impl Serialize for Sequence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_bytes();
        if serializer.is_human_readable() {
            serializer.serialize_str(&BASE64.encode(bytes))
        } else {
            serializer.serialize_bytes(&bytes)
        }
    }
}

impl<'de> Deserialize<'de> for Sequence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts a base64 string or raw bytes.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Sequence;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 string or bytes of a libnetwork bit sequence")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Sequence, E> {
                let bytes = BASE64
                    .decode(v)
                    .map_err(|e| E::custom(Error::Malformed(format!("base64: {e}"))))?;
                Sequence::from_bytes(&bytes).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Sequence, E> {
                Sequence::from_bytes(v).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Visitor)
        } else {
            deserializer.deserialize_bytes(Visitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds libnetwork's bytes from a header and `(block, count)` pairs.
    fn encode(bits: u64, unselected: u64, runs: &[(u32, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&bits.to_be_bytes());
        out.extend_from_slice(&unselected.to_be_bytes());
        for (block, count) in runs {
            out.extend_from_slice(&block.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
        }
        out
    }

    fn malformed(bytes: &[u8]) -> String {
        match Sequence::from_bytes(bytes) {
            Err(Error::Malformed(why)) => why,
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    #[test]
    fn fresh_sequence_is_one_run_of_zero_blocks() {
        let seq = Sequence::new(8192);
        assert_eq!(seq.to_bytes(), encode(8192, 8192, &[(0, 256)]));
    }

    /// libnetwork's TestMethods: `(0xffffffff, 6)->(0x0, 250)->end` after 192 allocations.
    #[test]
    fn allocated_prefix_is_written_as_full_blocks_then_free_blocks() {
        let mut seq = Sequence::new(8192);
        for _ in 0..192 {
            seq.set_any(false).unwrap();
        }
        let bytes = seq.to_bytes();
        assert_eq!(bytes, encode(8192, 8000, &[(u32::MAX, 6), (0, 250)]));
        assert_eq!(Sequence::from_bytes(&bytes).unwrap(), seq);
    }

    #[test]
    fn ordinal_zero_is_the_most_significant_bit_of_the_first_block() {
        let mut seq = Sequence::new(64);
        seq.set(0).unwrap();
        seq.set(33).unwrap();
        seq.set(63).unwrap();
        assert_eq!(
            seq.to_bytes(),
            encode(64, 61, &[(0x8000_0000, 1), (0x4000_0001, 1)])
        );
    }

    #[test]
    fn partial_last_block_has_free_padding() {
        let mut seq = Sequence::new(40);
        while seq.set_any(false).is_ok() {}
        let bytes = seq.to_bytes();
        assert_eq!(bytes, encode(40, 0, &[(u32::MAX, 1), (0xFF00_0000, 1)]));
        assert_eq!(Sequence::from_bytes(&bytes).unwrap(), seq);

        let fresh = Sequence::new(40);
        assert_eq!(fresh.to_bytes(), encode(40, 40, &[(0, 2)]));
        assert_eq!(Sequence::from_bytes(&fresh.to_bytes()).unwrap(), fresh);
    }

    #[test]
    fn empty_sequence_is_written_with_a_zero_count_run_like_libnetwork() {
        let seq = Sequence::new(0);
        let bytes = seq.to_bytes();
        assert_eq!(bytes, encode(0, 0, &[(0, 0)]));
        assert_eq!(Sequence::from_bytes(&bytes).unwrap(), seq);
        assert_eq!(Sequence::from_bytes(&encode(0, 0, &[])).unwrap(), seq);
    }

    /// libnetwork's TestSerializeDeserialize, on a fragmented sequence.
    #[test]
    fn fragmented_sequence_round_trips_through_bytes() {
        let mut seq = Sequence::new(1000);
        for i in (0..1000).filter(|i| i % 7 == 0 || i % 11 == 3 || (400..700).contains(i)) {
            seq.set(i).unwrap();
        }
        let back = Sequence::from_bytes(&seq.to_bytes()).unwrap();
        assert_eq!(back, seq);
        assert_eq!(back.free_count(), seq.free_count());
        assert!(back.iter_set().eq(seq.iter_set()));
    }

    #[test]
    fn longest_sequence_round_trips_with_its_last_bit_set() {
        let mut seq = Sequence::new(u64::MAX);
        assert_eq!(seq.to_bytes(), encode(u64::MAX, u64::MAX, &[(0, 1 << 59)]));
        seq.set(u64::MAX - 1).unwrap();
        seq.set(0).unwrap();
        let bytes = seq.to_bytes();
        // 2^64 - 1 bits leave 31 bits in the last block; the last ordinal is its bit 30.
        assert_eq!(
            bytes,
            encode(
                u64::MAX,
                u64::MAX - 2,
                &[(0x8000_0000, 1), (0, (1 << 59) - 2), (0x0000_0002, 1)]
            )
        );
        assert_eq!(Sequence::from_bytes(&bytes).unwrap(), seq);
    }

    /// libnetwork's TestIsCorrupted / CheckConsistency: zero-count runs are dropped.
    #[test]
    fn zero_count_runs_are_repaired() {
        let bytes = encode(
            96,
            32 + 31,
            &[
                (0, 0),
                (u32::MAX, 1),
                (0, 0),
                (0x8000_0000, 1),
                (0, 0),
                (0, 1),
                (0, 0),
            ],
        );
        let seq = Sequence::from_bytes(&bytes).unwrap();
        assert_eq!(
            seq.iter_set().collect::<Vec<_>>(),
            (0..33).collect::<Vec<_>>()
        );
        assert_eq!(seq.free_count(), 63);
        assert_eq!(
            seq.to_bytes(),
            encode(96, 63, &[(u32::MAX, 1), (0x8000_0000, 1), (0, 1)])
        );
    }

    #[test]
    fn equal_adjacent_runs_are_merged_on_decode() {
        let bytes = encode(128, 64, &[(u32::MAX, 1), (u32::MAX, 1), (0, 1), (0, 1)]);
        let seq = Sequence::from_bytes(&bytes).unwrap();
        assert_eq!(seq.runs(), 1);
        assert_eq!(seq.to_bytes(), encode(128, 64, &[(u32::MAX, 2), (0, 2)]));
    }

    #[test]
    fn truncated_header_is_an_error() {
        for len in [0, 1, 8, 15] {
            let why = malformed(&vec![0; len]);
            assert!(why.contains("header"), "{why}");
        }
    }

    #[test]
    fn trailing_partial_run_is_an_error() {
        let mut bytes = encode(32, 32, &[(0, 1)]);
        bytes.push(0);
        assert!(malformed(&bytes).contains("multiple of 12"));
    }

    #[test]
    fn runs_covering_too_few_or_too_many_blocks_are_errors() {
        assert!(malformed(&encode(64, 64, &[(0, 1)])).contains("cover 1 blocks"));
        assert!(malformed(&encode(64, 64, &[(0, 3)])).contains("more than the 2 blocks"));
        assert!(malformed(&encode(64, 64, &[])).contains("cover 0 blocks"));
        // Counts whose sum overflows u64.
        assert!(
            malformed(&encode(u64::MAX, 0, &[(u32::MAX, u64::MAX), (u32::MAX, 2)]))
                .contains("more than")
        );
    }

    #[test]
    fn unselected_not_matching_the_runs_is_an_error() {
        let why = malformed(&encode(64, 10, &[(u32::MAX, 1), (0, 1)]));
        assert!(
            why.contains("header says 10 free bits, the runs hold 32"),
            "{why}"
        );
    }

    #[test]
    fn set_padding_bits_are_an_error() {
        // 40 bits: the second block's 24 low bits are padding.
        assert!(malformed(&encode(40, 0, &[(u32::MAX, 2)])).contains("padding"));
        assert!(malformed(&encode(40, 7, &[(u32::MAX, 1), (0x0100_0001, 1)])).contains("padding"));
        // Free padding is fine.
        let seq = Sequence::from_bytes(&encode(40, 7, &[(u32::MAX, 1), (0x0100_0000, 1)])).unwrap();
        assert_eq!(
            seq.iter_set().collect::<Vec<_>>(),
            (0..32).chain([39]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn input_needing_too_many_runs_is_refused_before_building_them() {
        let copies = MAX_DECODED_RUNS + 1;
        let bytes = encode(copies * 32, copies * 16, &[(0xAAAA_AAAA, copies)]);
        assert!(malformed(&bytes).contains("runs"));
        // Within the budget it decodes.
        let bytes = encode(64 * 32, 64 * 16, &[(0xAAAA_AAAA, 64)]);
        let seq = Sequence::from_bytes(&bytes).unwrap();
        assert_eq!(seq.runs(), 64 * 16);
        assert_eq!(seq.to_bytes(), bytes);
    }

    #[test]
    fn serde_json_writes_a_base64_string_of_the_bytes() {
        let mut seq = Sequence::new(8192);
        for _ in 0..192 {
            seq.set_any(false).unwrap();
        }
        let json = serde_json::to_string(&seq).unwrap();
        let expected = BASE64.encode(seq.to_bytes());
        assert_eq!(json, format!("\"{expected}\""));
        let back: Sequence = serde_json::from_str(&json).unwrap();
        assert_eq!(back, seq);
    }

    #[test]
    fn libnetwork_json_object_decodes_through_serde() {
        #[derive(Deserialize)]
        struct Stored {
            id: String,
            sequence: Sequence,
        }
        // The bytes of a 64-bit sequence with bits 0..32 set, as libnetwork stores them.
        let b64 = BASE64.encode(encode(64, 32, &[(u32::MAX, 1), (0, 1)]));
        let json = format!(r#"{{"id":"vxlan-id","sequence":"{b64}"}}"#);
        let stored: Stored = serde_json::from_str(&json).unwrap();
        assert_eq!(stored.id, "vxlan-id");
        assert_eq!(stored.sequence.free_count(), 32);
        assert!(stored.sequence.is_set(31) && !stored.sequence.is_set(32));
    }

    #[test]
    fn serde_rejects_bad_base64_and_bad_bytes() {
        let err = serde_json::from_str::<Sequence>("\"not base64!\"").unwrap_err();
        assert!(
            err.to_string().contains("decode bit sequence: base64"),
            "{err}"
        );
        let err = serde_json::from_str::<Sequence>("\"AAAA\"").unwrap_err();
        assert!(err.to_string().contains("header"), "{err}");
        assert!(serde_json::from_str::<Sequence>("42").is_err());
    }
}
