//! The in-memory hosts file: rendered bytes, line offsets and a name index, edited by splicing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use crate::Error;
use crate::record::{self, Record};

/// libnetwork's default records, in its order, written verbatim (`fe00::0`, not `fe00::`).
pub const DEFAULT_LINES: [&str; 6] = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
];

/// What a sandbox's hosts file starts with (libnetwork's `Build` arguments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// The container's own address. When set, its line comes first.
    pub ip: Option<IpAddr>,
    /// The container's hostname. Required when [`BuildOptions::ip`] is set.
    pub hostname: String,
    /// The container's domain name; with it the own line lists `hostname.domainname` first.
    pub domainname: String,
    /// Extra records (`--add-host`), after the defaults.
    pub extra: Vec<Record>,
}

/// A hosts file held in memory: its exact bytes plus, per line, where it starts, so that an
/// edit splices only the affected line and reports which bytes of the file changed.
///
/// Pure: no I/O, no locks. [`crate::Hosts`] pairs it with a file on disk.
///
/// Every line ends with a newline; parsing adds a missing final one. Lines are never
/// reordered: records are appended at the end, deleted in place, and updated by replacing
/// their address field only, so comments and formatting of other lines are kept.
#[derive(Debug, Clone, Default)]
pub struct HostsFile {
    /// The content.
    buf: String,
    /// One entry per line, in order; ids increase along the file.
    lines: Vec<LineMeta>,
    /// Record lines by the first label of their first name ([`record::key`]), ids ascending.
    index: HashMap<String, Vec<u64>>,
    /// The id the next appended line gets.
    next_id: u64,
    /// Bytes that differ from what was last written (see [`PendingWrite`]).
    dirty: Option<Dirty>,
    /// Length of the file as last written.
    written_len: usize,
    /// Splices since [`HostsFile::checkpoint`], to undo on [`HostsFile::rollback`]; `None`
    /// outside a checkpoint, so a model used without checkpoints keeps no history.
    journal: Option<Vec<Edit>>,
    /// `dirty` at the last checkpoint.
    checkpoint_dirty: Option<Dirty>,
}

/// Where a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineMeta {
    /// Stable identity, increasing in file order, so a line is found by binary search.
    id: u64,
    /// Byte offset of the line in `buf`.
    start: usize,
    /// Length without the newline.
    len: usize,
    /// Whether the line is a record (and so in the index).
    record: bool,
}

/// The changed bytes: `start..end` of the buffer, or `start..` to its end when a change moved
/// the bytes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dirty {
    start: usize,
    end: Option<usize>,
}

/// One splice, with what it removed.
#[derive(Debug, Clone)]
struct Edit {
    at: usize,
    removed: String,
    inserted: usize,
}

/// What must be written to bring the file on disk up to date: the bytes of
/// [`HostsFile::render`] in `range`, written at `range.start`, then the file cut to `new_len`
/// when it was longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    /// The changed bytes of the content; write them at `range.start`.
    pub range: Range<usize>,
    /// Length of the file as last written.
    pub old_len: usize,
    /// Length of the content now.
    pub new_len: usize,
}

impl PartialEq for HostsFile {
    /// Files are equal when their contents are: everything else derives from the bytes or
    /// records what was written.
    fn eq(&self, other: &Self) -> bool {
        self.buf == other.buf
    }
}

impl Eq for HostsFile {}

impl HostsFile {
    /// Parses hosts file content. Never fails: lines that are not records (comments, blank
    /// lines, lines with a single field) are kept as they are.
    ///
    /// The result counts as written with `text`'s length; when a final newline had to be added
    /// it is pending (see [`HostsFile::pending_write`]).
    pub fn parse(text: &str) -> Self {
        let mut file = Self {
            buf: text.to_owned(),
            written_len: text.len(),
            ..Self::default()
        };
        if !file.buf.is_empty() && !file.buf.ends_with('\n') {
            file.buf.push('\n');
            file.dirty = Some(Dirty {
                start: text.len(),
                end: None,
            });
        }
        file.reindex();
        file
    }

    /// The file libnetwork's `Build` writes: the container's own line (when an address is
    /// given), the default lines, then the extra records. Counts as not yet written.
    ///
    /// # Errors
    /// [`Error::MissingHostname`] when an address is given without hostname, and
    /// [`Error::InvalidName`] for a hostname or domain name that cannot be written.
    pub fn build(options: &BuildOptions) -> Result<Self, Error> {
        let mut text = String::new();

        // The container's own line: `fqdn short` when the name has a dot, else the hostname.
        if let Some(ip) = options.ip {
            text.push_str(&self_record(ip, &options.hostname, &options.domainname)?.line());
            text.push('\n');
        }

        // libnetwork's defaults, then the extra hosts.
        for line in DEFAULT_LINES {
            text.push_str(line);
            text.push('\n');
        }
        for record in &options.extra {
            text.push_str(&record.line());
            text.push('\n');
        }

        let mut file = Self::parse(&text);
        file.written_len = 0;
        file.mark_all_dirty();
        Ok(file)
    }

    /// The content.
    pub fn render(&self) -> &str {
        &self.buf
    }

    /// The lines, in order, without newlines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|line| self.text(line))
    }

    /// The record lines as (address field, names); the address field is not checked.
    pub fn records(&self) -> impl Iterator<Item = (&str, Vec<&str>)> {
        self.lines
            .iter()
            .filter(|line| line.record)
            .filter_map(|line| {
                let text = self.text(line);
                record::fields(text).map(|(ip, names)| (&text[ip], names.collect()))
            })
    }

    /// Appends one line per record (libnetwork's `Add`; nothing for an empty slice).
    pub fn add(&mut self, records: &[Record]) {
        for record in records {
            let text = record.line();
            let start = self.buf.len();
            self.splice(start, 0, &format!("{text}\n"));
            let id = self.next_id;
            self.next_id += 1;
            self.lines.push(LineMeta {
                id,
                start,
                len: text.len(),
                record: true,
            });
            let key = record::key(&record.names()[0]);
            self.index.entry(key.to_owned()).or_default().push(id);
        }
    }

    /// Removes every record line whose names are exactly the names of one of `records`, in
    /// order; addresses are ignored (libnetwork's `Delete`). Returns how many lines went.
    pub fn delete(&mut self, records: &[Record]) -> usize {
        // Find the lines first, then remove from the end so earlier offsets stay valid.
        let mut doomed: Vec<usize> = Vec::new();
        for record in records {
            let key = record::key(&record.names()[0]);
            for &id in self.index.get(key).map(Vec::as_slice).unwrap_or_default() {
                let position = self.position(id);
                let text = self.text(&self.lines[position]);
                if record::fields(text).is_some_and(|(_, names)| names.eq(record.names())) {
                    doomed.push(position);
                }
            }
        }
        doomed.sort_unstable();
        doomed.dedup();
        for &position in doomed.iter().rev() {
            self.remove_line(position);
        }
        doomed.len()
    }

    /// Sets the address of every record line whose first name is `hostname` or starts with
    /// `hostname.` (libnetwork's `Update`; `prefix` does not touch `prefixAndMore`). Only the
    /// address field changes. Returns how many lines matched.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty hostname or one with whitespace or `#`; nothing
    /// changes then.
    pub fn update(&mut self, ip: IpAddr, hostname: &str) -> Result<usize, Error> {
        if !record::is_valid_name(hostname) {
            return Err(Error::InvalidName(hostname.to_owned()));
        }
        let Some(ids) = self.index.get(record::key(hostname)) else {
            return Ok(0);
        };
        let new_ip = ip.to_string();
        let mut targets = Vec::new();
        for &id in ids {
            let position = self.position(id);
            let text = self.text(&self.lines[position]);
            let Some((span, mut names)) = record::fields(text) else {
                continue;
            };
            if names
                .next()
                .is_some_and(|first| record::matches_hostname(first, hostname))
            {
                targets.push((position, span));
            }
        }
        for (position, span) in targets.iter().rev() {
            let line = self.lines[*position];
            let at = line.start + span.start;
            if self.buf[at..line.start + span.end] == new_ip {
                continue;
            }
            self.splice(at, span.len(), &new_ip);
            let delta = new_ip.len() as isize - span.len() as isize;
            self.lines[*position].len = line.len.wrapping_add_signed(delta);
            self.shift(*position + 1, delta);
        }
        Ok(targets.len())
    }

    /// What must be written to the file on disk, if anything.
    pub fn pending_write(&self) -> Option<PendingWrite> {
        let dirty = self.dirty?;
        let end = dirty.end.unwrap_or(self.buf.len()).min(self.buf.len());
        let start = dirty.start.min(end);
        Some(PendingWrite {
            range: start..end,
            old_len: self.written_len,
            new_len: self.buf.len(),
        })
    }

    /// Records that the content is on disk: nothing is pending any more.
    pub fn mark_written(&mut self) {
        self.dirty = None;
        self.written_len = self.buf.len();
    }

    /// Makes the whole content pending, for when the file on disk is unknown or damaged.
    pub fn mark_all_dirty(&mut self) {
        self.dirty = Some(Dirty {
            start: 0,
            end: None,
        });
    }

    /// Starts recording edits, so that [`HostsFile::rollback`] can undo them (until
    /// [`HostsFile::commit`]). A new checkpoint drops the edits recorded so far.
    pub fn checkpoint(&mut self) {
        self.journal = Some(Vec::new());
        self.checkpoint_dirty = self.dirty;
    }

    /// Keeps the edits since the last checkpoint and stops recording.
    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes every edit since the last [`HostsFile::checkpoint`] (the content and the pending
    /// write are as they were then) and stops recording. Does nothing without a checkpoint.
    pub fn rollback(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        if journal.is_empty() {
            return;
        }
        for edit in journal.into_iter().rev() {
            self.buf
                .replace_range(edit.at..edit.at + edit.inserted, &edit.removed);
        }
        self.dirty = self.checkpoint_dirty;
        self.reindex();
    }

    /// Rebuilds line offsets and the index from the bytes.
    fn reindex(&mut self) {
        self.lines.clear();
        self.index.clear();
        let mut start = 0;
        for (id, text) in self.buf.split_terminator('\n').enumerate() {
            let id = id as u64;
            let names = record::fields(text).map(|(_, mut names)| names.next());
            if let Some(Some(first)) = names {
                self.index
                    .entry(record::key(first).to_owned())
                    .or_default()
                    .push(id);
            }
            self.lines.push(LineMeta {
                id,
                start,
                len: text.len(),
                record: names.is_some(),
            });
            start += text.len() + 1;
        }
        self.next_id = self.lines.len() as u64;
    }

    /// The text of a line.
    fn text(&self, line: &LineMeta) -> &str {
        &self.buf[line.start..line.start + line.len]
    }

    /// The position in `lines` of the line with `id` (which must exist).
    fn position(&self, id: u64) -> usize {
        self.lines
            .binary_search_by_key(&id, |line| line.id)
            .unwrap_or_else(|_| unreachable!("index names a line that exists"))
    }

    /// Removes the line at `position` with its newline.
    fn remove_line(&mut self, position: usize) {
        let line = self.lines[position];
        let key = line
            .record
            .then(|| record::fields(self.text(&line)))
            .flatten()
            .and_then(|(_, mut names)| names.next())
            .map(|first| record::key(first).to_owned());
        self.lines.remove(position);
        self.splice(line.start, line.len + 1, "");
        self.shift(position, -((line.len + 1) as isize));
        let Some(key) = key else {
            return;
        };
        if let Some(ids) = self.index.get_mut(&key) {
            if let Ok(at) = ids.binary_search(&line.id) {
                ids.remove(at);
            }
            if ids.is_empty() {
                self.index.remove(&key);
            }
        }
    }

    /// Moves the lines from `position` on by `delta` bytes.
    fn shift(&mut self, position: usize, delta: isize) {
        for line in &mut self.lines[position..] {
            line.start = line.start.wrapping_add_signed(delta);
        }
    }

    /// Replaces `removed` bytes at `at` by `inserted`, journaling and tracking the change.
    fn splice(&mut self, at: usize, removed: usize, inserted: &str) {
        if let Some(journal) = &mut self.journal {
            journal.push(Edit {
                at,
                removed: self.buf[at..at + removed].to_owned(),
                inserted: inserted.len(),
            });
        }
        self.buf.replace_range(at..at + removed, inserted);

        // Same length: only these bytes changed. Otherwise everything after them moved.
        let change = if removed == inserted.len() {
            Dirty {
                start: at,
                end: Some(at + removed),
            }
        } else {
            Dirty {
                start: at,
                end: None,
            }
        };
        self.dirty = Some(match self.dirty {
            None => change,
            Some(old) => Dirty {
                start: old.start.min(change.start),
                end: old.end.zip(change.end).map(|(a, b)| a.max(b)),
            },
        });
    }
}

/// The container's own record: `fqdn short` when the full name has a dot, else the hostname.
fn self_record(ip: IpAddr, hostname: &str, domainname: &str) -> Result<Record, Error> {
    if hostname.is_empty() {
        return Err(Error::MissingHostname);
    }
    let fqdn = if domainname.is_empty() {
        hostname.to_owned()
    } else {
        format!("{hostname}.{domainname}")
    };
    match fqdn.split_once('.') {
        Some((short, _)) => Record::new(ip, [fqdn.clone(), short.to_owned()]),
        None => Record::new(ip, [fqdn]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl HostsFile {
        /// Offsets, flags and index agree with a fresh parse of the bytes.
        fn assert_consistent(&self) {
            let fresh = Self::parse(&self.buf);
            let shape = |f: &Self| -> Vec<(usize, usize, bool)> {
                f.lines.iter().map(|l| (l.start, l.len, l.record)).collect()
            };
            assert_eq!(shape(self), shape(&fresh));
            assert!(self.lines.windows(2).all(|w| w[0].id < w[1].id));
            let positions = |f: &Self| -> Vec<(String, Vec<usize>)> {
                let mut out: Vec<_> = f
                    .index
                    .iter()
                    .map(|(k, ids)| (k.clone(), ids.iter().map(|&id| f.position(id)).collect()))
                    .collect();
                out.sort();
                out
            };
            assert_eq!(positions(self), positions(&fresh));
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, Vec<String>),
        Delete(Vec<String>),
        Update(u8, String),
        Checkpoint,
        Rollback,
        Flush,
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("a.example".to_owned()),
            Just("ab".to_owned()),
            Just("b".to_owned()),
            Just("b.x.y".to_owned()),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), proptest::collection::vec(name(), 1..3)).prop_map(|(n, v)| Op::Add(n, v)),
            proptest::collection::vec(name(), 1..3).prop_map(Op::Delete),
            (
                any::<u8>(),
                prop_oneof![
                    Just("a".to_owned()),
                    Just("b".to_owned()),
                    Just("ab".to_owned())
                ]
            )
                .prop_map(|(n, h)| Op::Update(n, h)),
            Just(Op::Checkpoint),
            Just(Op::Rollback),
            Just(Op::Flush),
        ]
    }

    proptest! {
        #[test]
        fn incremental_state_stays_consistent_and_pending_writes_rebuild_the_file(
            start in "(#[a-z ]{0,5}\n|10\\.0\\.0\\.[0-9] [ab](\\.example)?\n|\n|x\n){0,6}",
            ops in proptest::collection::vec(op(), 0..40),
        ) {
            let mut file = HostsFile::parse(&start);
            let mut disk = start.clone().into_bytes();
            let mut saved = file.buf.clone();
            file.checkpoint();
            for op in ops {
                match op {
                    Op::Add(n, names) => file.add(&[Record::new(ip(n), names).unwrap()]),
                    Op::Delete(names) => {
                        file.delete(&[Record::new(ip(0), names).unwrap()]);
                    }
                    Op::Update(n, host) => {
                        file.update(ip(n), &host).unwrap();
                    }
                    Op::Checkpoint => {
                        file.checkpoint();
                        saved = file.buf.clone();
                    }
                    Op::Rollback => {
                        file.rollback();
                        prop_assert_eq!(&file.buf, &saved);
                        file.checkpoint();
                    }
                    Op::Flush => {
                        // Apply the pending write to a simulated disk, as `Hosts` does.
                        if let Some(write) = file.pending_write() {
                            prop_assert_eq!(write.old_len, disk.len());
                            let bytes = &file.buf.as_bytes()[write.range.clone()];
                            let end = write.range.start + bytes.len();
                            if disk.len() < end {
                                disk.resize(end, 0);
                            }
                            disk[write.range.start..end].copy_from_slice(bytes);
                            disk.truncate(write.new_len);
                            file.mark_written();
                        }
                        prop_assert_eq!(disk.as_slice(), file.buf.as_bytes());
                        file.checkpoint();
                        saved = file.buf.clone();
                    }
                }
                file.assert_consistent();
            }
        }
    }

    #[test]
    fn a_missing_final_newline_is_added_and_pending() {
        let file = HostsFile::parse("10.0.0.1\ta");
        assert_eq!(file.render(), "10.0.0.1\ta\n");
        assert_eq!(
            file.pending_write(),
            Some(PendingWrite {
                range: 10..11,
                old_len: 10,
                new_len: 11
            })
        );
    }

    #[test]
    fn same_length_updates_dirty_only_the_address() {
        let mut file = HostsFile::parse("10.0.0.1\ta\n10.0.0.2\tb\n10.0.0.3\tc\n");
        file.update(ip(9), "b").unwrap();
        let write = file.pending_write().unwrap();
        assert_eq!(write.range, 11..19);
        assert_eq!(&file.render()[write.range], "10.0.0.9");
    }

    #[test]
    fn length_changes_dirty_the_tail() {
        let mut file = HostsFile::parse("10.0.0.1\ta\n10.0.0.2\tb\n10.0.0.3\tc\n");
        file.update(IpAddr::from([10, 0, 0, 200]), "b").unwrap();
        assert_eq!(file.pending_write().unwrap().range, 11..35);
        file.mark_written();
        file.delete(&[Record::new(ip(0), ["c"]).unwrap()]);
        let write = file.pending_write().unwrap();
        assert_eq!(
            (write.range, write.old_len, write.new_len),
            (24..24, 35, 24)
        );
    }
}
