//! The write-ahead log of a [`RedbStore`](crate::RedbStore) opened with
//! [`Durability::Deferred`](crate::Durability::Deferred).
//!
//! Deferred writes are committed to redb without an `fdatasync` (redb's `Durability::None`), so
//! a crash of the process would lose them until the next durable commit. Each of them is
//! therefore also appended here, with one plain `write` (no sync), before its caller is answered:
//! the kernel's page cache keeps it whatever happens to the process. At the next durable commit
//! the log is emptied; at open, records newer than the database's revision are applied again.
//! Only a crash of the whole machine can lose the writes made since the last durable commit,
//! and then a torn last record is detected by its checksum and dropped.
//!
//! Record layout (little endian): `magic: u32`, `len: u32` (of the payload), `checksum: u64`
//! (FNV-1a of the payload), payload = `revision: u64`, `ops: u32`, then per op a tag byte
//! (`1` put, `2` delete), `key_len: u32`, key bytes and, for a put, `value_len: u32` and value
//! bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Marks the start of every record ("LNW1").
const MAGIC: u32 = 0x3157_4e4c;
const HEADER: usize = 4 + 4 + 8;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// One logged write: what a request changed, with the revision it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) revision: u64,
    pub(crate) changes: Vec<Change>,
}

/// One key written by a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// The log file, open for appending.
#[derive(Debug)]
pub(crate) struct Wal {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Wal {
    /// The log of the store file at `store`: `<store>.wal`.
    pub(crate) fn path_of(store: &Path) -> PathBuf {
        let mut name = store.as_os_str().to_owned();
        name.push(".wal");
        PathBuf::from(name)
    }

    /// Opens (creating) the log and returns it with the valid records it holds. Bytes after the
    /// last valid record (a write torn by a machine crash) are reported in the third value and
    /// ignored.
    pub(crate) fn open(path: PathBuf) -> io::Result<(Self, Vec<Record>, usize)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, valid) = decode_all(&bytes);
        let len = bytes.len() as u64;
        Ok((Self { path, file, len }, records, bytes.len() - valid))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The log's length, to roll back to if the transaction it was written for fails.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends records with one `write` call, without syncing.
    pub(crate) fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in records {
            encode(r, &mut buf);
        }
        self.file.write_all(&buf)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Cuts the log back to `len` bytes (an append whose transaction failed, or everything
    /// after a durable commit when `len` is 0).
    pub(crate) fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        // Appends go to the end whatever the offset, but keep it consistent for readers.
        self.file.seek(SeekFrom::Start(len))?;
        self.len = len;
        Ok(())
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("keys and values are under 4 GiB");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
}

fn encode(record: &Record, out: &mut Vec<u8>) {
    let mut payload = Vec::new();
    payload.extend_from_slice(&record.revision.to_le_bytes());
    let ops = u32::try_from(record.changes.len()).expect("fewer than 2^32 ops");
    payload.extend_from_slice(&ops.to_le_bytes());
    for change in &record.changes {
        match change {
            Change::Put { key, value } => {
                payload.push(TAG_PUT);
                put_bytes(&mut payload, key.as_bytes());
                put_bytes(&mut payload, value);
            }
            Change::Delete { key } => {
                payload.push(TAG_DELETE);
                put_bytes(&mut payload, key.as_bytes());
            }
        }
    }
    out.extend_from_slice(&MAGIC.to_le_bytes());
    let len = u32::try_from(payload.len()).expect("a record is under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&fnv1a(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// A cursor over a payload; every read fails cleanly past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut r = Reader(payload);
    let revision = r.u64()?;
    let ops = r.u32()?;
    let mut changes = Vec::new();
    for _ in 0..ops {
        let tag = r.take(1)?[0];
        let key = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        changes.push(match tag {
            TAG_PUT => Change::Put {
                key,
                value: r.bytes()?.to_vec(),
            },
            TAG_DELETE => Change::Delete { key },
            _ => return None,
        });
    }
    r.0.is_empty().then_some(Record { revision, changes })
}

/// The records at the start of `bytes` up to the first invalid one, and how many bytes they
/// take.
fn decode_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let magic = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let sum = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if magic != MAGIC || fnv1a(payload) != sum {
            break;
        }
        let Some(record) = decode_payload(payload) else {
            break;
        };
        records.push(record);
        at += HEADER + len;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(revision: u64) -> Record {
        Record {
            revision,
            changes: vec![
                Change::Put {
                    key: format!("k/{revision}"),
                    value: vec![revision as u8; 3],
                },
                Change::Delete { key: "gone".into() },
            ],
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wal");
        let (mut wal, found, torn) = Wal::open(path.clone()).unwrap();
        assert!(found.is_empty());
        assert_eq!(torn, 0);
        wal.append(&[record(1), record(2)]).unwrap();
        wal.append(&[record(3)]).unwrap();
        drop(wal);
        let (_, found, torn) = Wal::open(path).unwrap();
        assert_eq!(found, vec![record(1), record(2), record(3)]);
        assert_eq!(torn, 0);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_dropped_and_the_rest_kept() {
        let mut bytes = Vec::new();
        encode(&record(1), &mut bytes);
        let first = bytes.len();
        encode(&record(2), &mut bytes);
        // Torn: the second record cut short.
        let (found, valid) = decode_all(&bytes[..bytes.len() - 3]);
        assert_eq!(found, vec![record(1)]);
        assert_eq!(valid, first);
        // Corrupt: a flipped byte in the second record's payload.
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let (found, valid) = decode_all(&bytes);
        assert_eq!(found, vec![record(1)]);
        assert_eq!(valid, first);
    }

    #[test]
    fn truncating_rolls_back_an_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wal");
        let (mut wal, _, _) = Wal::open(path.clone()).unwrap();
        wal.append(&[record(1)]).unwrap();
        let len = wal.len();
        wal.append(&[record(2)]).unwrap();
        wal.truncate(len).unwrap();
        wal.append(&[record(3)]).unwrap();
        drop(wal);
        let (_, found, _) = Wal::open(path).unwrap();
        assert_eq!(found, vec![record(1), record(3)]);
    }
}
