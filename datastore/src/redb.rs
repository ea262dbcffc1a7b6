//! [`RedbStore`]: the local-scope store, one redb file, with group commit.
//!
//! libnetwork keeps its local scope in a boltdb file, `<DataDir>/network/files/local-kv.db`.
//! The default file here is [`DEFAULT_FILE`] under the data directory:
//! `<data-dir>/network/files/local-kv.redb` (a different extension, since the format differs).
//!
//! File layout: table `pairs` maps each key to `(index, value)`; table `meta` holds the last
//! revision handed out under the key `revision`. Every successful write request (a put, a
//! delete or a whole [`Store::apply`]) takes the next revision, and every key it writes gets it
//! as its index, like etcd's `mod_revision`.
//!
//! ## Group commit
//!
//! A durable redb commit costs one or two `fdatasync`s, and that dominates a write. Writers
//! therefore do not commit themselves: they send their request to one committer thread and wait
//! for its answer. The committer takes one request, then drains every request already queued
//! (up to [`MAX_BATCH`]), and runs them all in **one** write transaction, in arrival order:
//! - each request's preconditions are checked against the state left by the requests before it
//!   in the batch, and a request whose check fails is answered with its own error and writes
//!   nothing, without affecting the others;
//! - each request that passes gets its own revision;
//! - the transaction is committed once, durably, and only then is every writer answered and
//!   every watcher told. So each caller still returns only after its write is on disk.
//!
//! A single writer pays one commit per write, as before; N concurrent writers share commits, so
//! the cost per write falls as concurrency rises. If a batch fails as a whole (an I/O error, a
//! failed commit), every request of the batch gets that error and nothing of the batch is
//! written. [`RedbStore::commit_stats`] counts requests and commits, so callers can see how
//! well writes were batched.
//!
//! ## Durability
//!
//! [`Durability::Immediate`] (what [`RedbStore::open`] gives) answers a writer only after the
//! commit is on disk. [`Durability::Deferred`] answers it once the write is committed without a
//! sync and appended to a write-ahead log next to the file (`<file>.wal`, see the `wal` module),
//! and makes a durable commit (which empties the log) at most `within` after the first write it
//! has not synced. A crash of the process loses no answered write (the log is replayed at the
//! next open); a crash of the machine may lose the writes of the last `within`, never leaving a
//! half-applied request. This takes the `fdatasync` (0.6 to 2 ms here) off every writer's path.
//!
//! Reads do not go through the committer: they open their own read transaction, which sees the
//! last committed state (redb readers never block the writer).
//!
//! The file is locked while it is open: a second [`RedbStore::open`] of the same file, from this
//! or another process, fails with [`Error::Open`] until the first store is dropped.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ::redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use tracing::{debug, info, trace, warn};

use crate::wal::{Change, Record, Wal};
use crate::watch::Hub;
use crate::{Error, KvPair, Op, Precondition, Scope, Store, WatchEvent, Watcher};

/// Where the store file lives, relative to the daemon's data directory.
pub const DEFAULT_FILE: &str = "network/files/local-kv.redb";

/// The most write requests one transaction takes; more wait for the next commit.
pub const MAX_BATCH: usize = 256;

/// key -> (index, value)
const PAIRS: TableDefinition<'_, &str, (u64, &[u8])> = TableDefinition::new("pairs");
/// Store-wide counters; only [`REVISION`] for now.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The last revision handed out.
const REVISION: &str = "revision";

/// When a write reaches the disk (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is synced before its writers are answered.
    #[default]
    Immediate,
    /// Writers are answered once their write is committed and logged without a sync; a durable
    /// commit follows at most `within` later.
    Deferred {
        /// The longest a write stays unsynced.
        within: Duration,
    },
}

/// How to open a [`RedbStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedbOptions {
    /// When writes reach the disk.
    pub durability: Durability,
}

/// The local-scope store: one redb file, durable writes, concurrent writers batched into one
/// commit (see the module docs).
pub struct RedbStore {
    path: PathBuf,
    shared: Arc<Shared>,
    /// `None` only while dropping.
    requests: Option<Sender<Request>>,
    /// `None` only while dropping.
    committer: Option<JoinHandle<()>>,
}

/// How well writes were batched since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Write requests (puts, deletes, applies) handled by the committer, failed ones included.
    pub requests: u64,
    /// Commits made for them. `requests / commits` is the mean batch size.
    pub commits: u64,
    /// Commits that synced the file: every commit with [`Durability::Immediate`], one per
    /// `within` at most with [`Durability::Deferred`].
    pub synced: u64,
}

/// What the store and its committer thread share.
struct Shared {
    db: Database,
    /// Watchers. The committer holds this lock from before its commit until it has published
    /// the batch's events, so that a watch starts either before or after a whole commit.
    hub: Mutex<Hub>,
    requests: AtomicU64,
    commits: AtomicU64,
    synced: AtomicU64,
}

/// One write request: its ops (validated) and where to send the outcome.
struct Request {
    ops: Vec<Op>,
    reply: SyncSender<Result<u64, Error>>,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("stats", &self.commit_stats())
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// The default store file under the daemon's data directory ([`DEFAULT_FILE`]).
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join(DEFAULT_FILE)
    }

    /// Opens (creating it and its parent directories if needed) the default store file under
    /// `data_dir`. Errors: as [`RedbStore::open`].
    pub fn open_in_data_dir(data_dir: &Path) -> Result<Self, Error> {
        Self::open(Self::default_path(data_dir))
    }

    /// Opens the store file at `path`, creating it and its parent directories if needed, and
    /// starts its committer thread.
    ///
    /// Errors: [`Error::Open`] when the directory or file cannot be created, the file is not a
    /// redb database, or it is already open (in this process or another one).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, RedbOptions::default())
    }

    /// Opens the store file at `path` like [`RedbStore::open`], with `options`. With
    /// [`Durability::Deferred`], writes a crashed process left in the write-ahead log are applied
    /// first. Whatever the options, a log left by an earlier deferred store is replayed.
    ///
    /// Errors: as [`RedbStore::open`]; also [`Error::Open`] when the log cannot be read or
    /// replayed.
    pub fn open_with(path: impl AsRef<Path>, options: RedbOptions) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source: ::redb::Error| Error::Open {
            path: path.clone(),
            source: Arc::new(source),
        };

        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| open_error(e.into()))?;
        }
        let db = Database::create(&path).map_err(|e| open_error(e.into()))?;

        // Create both tables up front so that readers never meet a missing table.
        let txn = db.begin_write().map_err(|e| open_error(e.into()))?;
        txn.open_table(PAIRS).map_err(|e| open_error(e.into()))?;
        txn.open_table(META).map_err(|e| open_error(e.into()))?;
        txn.commit().map_err(|e| open_error(e.into()))?;

        let (mut wal, records, torn) =
            Wal::open(Wal::path_of(&path)).map_err(|e| open_error(e.into()))?;
        if torn > 0 {
            warn!(path = %wal.path().display(), bytes = torn, "torn tail of the write-ahead log dropped");
        }
        let replayed = replay(&db, &records).map_err(open_error)?;
        wal.truncate(0).map_err(|e| open_error(e.into()))?;
        if replayed > 0 {
            info!(path = %path.display(), writes = replayed, "writes of a crashed process recovered from the log");
        }

        let shared = Arc::new(Shared {
            db,
            hub: Mutex::new(Hub::default()),
            requests: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let committer = {
            let shared = shared.clone();
            let log = match options.durability {
                Durability::Immediate => None,
                Durability::Deferred { within } => Some((wal, within)),
            };
            thread::Builder::new()
                .name("redb-commit".to_owned())
                .spawn(move || run_committer(&shared, &rx, log))
                .map_err(|e| open_error(e.into()))?
        };
        info!(path = %path.display(), durability = ?options.durability, "opened local store");
        Ok(Self {
            path,
            shared,
            requests: Some(tx),
            committer: Some(committer),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write requests and commits so far (see [`CommitStats`]).
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            requests: self.shared.requests.load(Ordering::Relaxed),
            commits: self.shared.commits.load(Ordering::Relaxed),
            synced: self.shared.synced.load(Ordering::Relaxed),
        }
    }

    /// Hands `ops` to the committer and waits until they are durable (or failed).
    fn submit(&self, ops: Vec<Op>) -> Result<u64, Error> {
        crate::validate_ops(&ops)?;
        let (reply, outcome) = mpsc::sync_channel(1);
        self.requests
            .as_ref()
            .ok_or(Error::Closed)?
            .send(Request { ops, reply })
            .map_err(|_| Error::Closed)?;
        // The committer drops `reply` unanswered only if it died.
        outcome.recv().map_err(|_| Error::Closed)?
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&::redb::ReadOnlyTable<&'static str, (u64, &'static [u8])>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let txn = self
            .shared
            .db
            .begin_read()
            .map_err(Error::storage("begin read transaction"))?;
        let table = txn
            .open_table(PAIRS)
            .map_err(Error::storage("open table pairs"))?;
        f(&table)
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the channel ends the committer once it has answered every queued request;
        // joining it makes sure the file is closed (and unlocked) when the store is gone.
        drop(self.requests.take());
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
        debug!(path = %self.path.display(), "closed local store");
    }
}

impl Store for RedbStore {
    fn scope(&self) -> Scope {
        Scope::Local
    }

    fn get(&self, key: &str) -> Result<KvPair, Error> {
        self.read(|table| {
            let guard = table
                .get(key)
                .map_err(Error::storage("read key"))?
                .ok_or_else(|| Error::KeyNotFound(key.to_owned()))?;
            let (index, value) = guard.value();
            Ok(KvPair {
                key: key.to_owned(),
                value: value.to_vec(),
                index,
            })
        })
    }

    fn put(&self, key: &str, value: &[u8], precondition: Precondition) -> Result<u64, Error> {
        self.submit(vec![Op::Put {
            key: key.to_owned(),
            value: value.to_vec(),
            precondition,
        }])
    }

    fn delete(&self, key: &str, precondition: Precondition) -> Result<(), Error> {
        self.submit(vec![Op::Delete {
            key: key.to_owned(),
            precondition,
        }])
        .map(|_| ())
    }

    fn list(&self, prefix: &str) -> Result<Vec<KvPair>, Error> {
        self.read(|table| {
            let mut pairs = Vec::new();
            for entry in table.range(prefix..).map_err(Error::storage("list keys"))? {
                let (k, v) = entry.map_err(Error::storage("list keys"))?;
                let key = k.value();
                if !key.starts_with(prefix) {
                    break;
                }
                let (index, value) = v.value();
                pairs.push(KvPair {
                    key: key.to_owned(),
                    value: value.to_vec(),
                    index,
                });
            }
            Ok(pairs)
        })
    }

    fn apply(&self, ops: Vec<Op>) -> Result<u64, Error> {
        self.submit(ops)
    }

    fn watch(&self, prefix: &str) -> Result<Watcher, Error> {
        Ok(lock_hub(&self.shared).subscribe(prefix))
    }
}

fn lock_hub(shared: &Shared) -> MutexGuard<'_, Hub> {
    // The hub is a list of senders; a panic cannot leave it half-updated.
    shared.hub.lock().unwrap_or_else(|e| e.into_inner())
}

/// The committer thread: batches queued requests until the store is dropped. With a log
/// (deferred durability), commits are not synced; a durable commit follows at most `within`
/// after the first unsynced one, and when the store is dropped.
fn run_committer(shared: &Shared, requests: &Receiver<Request>, mut log: Option<(Wal, Duration)>) {
    // When the oldest unsynced commit was made.
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let first = match (unsynced_since, &log) {
            (Some(since), Some((_, within))) => {
                let wait = (since + *within).saturating_duration_since(Instant::now());
                match requests.recv_timeout(wait) {
                    Ok(request) => request,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if sync(shared, log.as_mut().map(|(wal, _)| wal)) {
                            unsynced_since = None;
                        } else {
                            // Retried after another `within`; the log still holds the writes.
                            unsynced_since = Some(Instant::now());
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match requests.recv() {
                Ok(request) => request,
                Err(_) => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (outcomes, committed) = commit_batch(shared, &batch, log.as_mut().map(|(w, _)| w));
        if committed && log.is_some() && unsynced_since.is_none() {
            unsynced_since = Some(Instant::now());
        }
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            // A writer that went away (it cannot: it blocks on the answer) needs no answer.
            let _ = request.reply.send(outcome);
        }
    }
    if unsynced_since.is_some() {
        sync(shared, log.as_mut().map(|(wal, _)| wal));
    }
}

/// Makes every earlier commit durable with an empty synced commit, then empties the log.
/// Failures are logged (no writer is waiting for this): the log keeps the writes.
fn sync(shared: &Shared, wal: Option<&mut Wal>) -> bool {
    let result = shared
        .db
        .begin_write()
        .map_err(Error::storage("begin sync transaction"))
        .and_then(|txn| txn.commit().map_err(Error::storage("sync commit")));
    if let Err(e) = result {
        warn!(error = %e, "deferred writes not synced yet, will retry");
        return false;
    }
    shared.synced.fetch_add(1, Ordering::Relaxed);
    if let Some(wal) = wal
        && let Err(e) = wal.truncate(0)
    {
        // Harmless: records already in the database are skipped when the log is replayed.
        warn!(path = %wal.path().display(), error = %e, "write-ahead log not emptied");
    }
    trace!("deferred writes synced");
    true
}

/// Runs `batch` in one transaction and one commit; returns one outcome per request and whether
/// something was committed.
fn commit_batch(
    shared: &Shared,
    batch: &[Request],
    wal: Option<&mut Wal>,
) -> (Vec<Result<u64, Error>>, bool) {
    shared
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let deferred = wal.is_some();
    let mut hub = lock_hub(shared);
    match write_batch(&shared.db, batch, wal) {
        Ok(Written {
            outcomes,
            events,
            committed,
        }) => {
            if committed {
                shared.commits.fetch_add(1, Ordering::Relaxed);
                if !deferred {
                    shared.synced.fetch_add(1, Ordering::Relaxed);
                }
            }
            hub.publish(&events);
            (outcomes, committed)
        }
        // Every writer of the batch gets the cause; they report it.
        Err(e) => (batch.iter().map(|_| Err(e.clone())).collect(), false),
    }
}

/// What one group commit did.
struct Written {
    outcomes: Vec<Result<u64, Error>>,
    events: Vec<WatchEvent>,
    /// False when every request failed its checks and nothing was committed.
    committed: bool,
}

/// Applies the requests that pass their checks in one write transaction and commits it: synced
/// without a log, unsynced but logged first with one. An `Err` means the whole batch failed and
/// nothing of it was written (nor logged).
fn write_batch(db: &Database, batch: &[Request], wal: Option<&mut Wal>) -> Result<Written, Error> {
    let mut txn = db
        .begin_write()
        .map_err(Error::storage("begin write transaction"))?;
    let (outcomes, events) = apply_requests(&txn, batch)?;

    if events.is_empty() {
        txn.abort().map_err(Error::storage("abort transaction"))?;
        return Ok(Written {
            outcomes,
            events,
            committed: false,
        });
    }
    match wal {
        None => txn.commit().map_err(Error::storage("commit transaction"))?,
        Some(wal) => {
            txn.set_durability(::redb::Durability::None)
                .map_err(Error::storage("defer the commit"))?;
            let records = log_records(batch, &outcomes);
            let before = wal.len();
            wal.append(&records)
                .map_err(Error::storage("append to the write-ahead log"))?;
            if let Err(e) = txn.commit() {
                // The writers are told the batch failed: it must not come back at replay.
                if let Err(undo) = wal.truncate(before) {
                    warn!(error = %undo, "failed batch not cut from the write-ahead log");
                }
                return Err(Error::storage("commit transaction")(e));
            }
        }
    }
    debug!(
        requests = batch.len(),
        changes = events.len(),
        "group commit done"
    );
    Ok(Written {
        outcomes,
        events,
        committed: true,
    })
}

/// The log records of the requests of `batch` that succeeded.
fn log_records(batch: &[Request], outcomes: &[Result<u64, Error>]) -> Vec<Record> {
    batch
        .iter()
        .zip(outcomes)
        .filter_map(|(request, outcome)| {
            let revision = *outcome.as_ref().ok()?;
            let changes = request
                .ops
                .iter()
                .map(|op| match op {
                    Op::Put { key, value, .. } => Change::Put {
                        key: key.clone(),
                        value: value.clone(),
                    },
                    Op::Delete { key, .. } => Change::Delete { key: key.clone() },
                })
                .collect();
            Some(Record { revision, changes })
        })
        .collect()
}

/// Applies the logged writes newer than the database's revision, in one synced commit.
/// Returns how many were applied.
fn replay(db: &Database, records: &[Record]) -> Result<usize, ::redb::Error> {
    if records.is_empty() {
        return Ok(0);
    }
    let txn = db.begin_write()?;
    let mut applied = 0;
    {
        let mut pairs = txn.open_table(PAIRS)?;
        let mut meta = txn.open_table(META)?;
        let mut revision = meta.get(REVISION)?.map_or(0, |g| g.value());
        let stored = revision;
        for record in records.iter().filter(|r| r.revision > stored) {
            for change in &record.changes {
                match change {
                    Change::Put { key, value } => {
                        pairs.insert(key.as_str(), (record.revision, value.as_slice()))?;
                    }
                    Change::Delete { key } => {
                        pairs.remove(key.as_str())?;
                    }
                }
            }
            revision = record.revision;
            applied += 1;
        }
        meta.insert(REVISION, revision)?;
    }
    txn.commit()?;
    Ok(applied)
}

type Applied = (Vec<Result<u64, Error>>, Vec<WatchEvent>);

/// Checks and writes each request in order inside `txn`.
fn apply_requests(txn: &WriteTransaction, batch: &[Request]) -> Result<Applied, Error> {
    let mut pairs = txn
        .open_table(PAIRS)
        .map_err(Error::storage("open table pairs"))?;
    let mut meta = txn
        .open_table(META)
        .map_err(Error::storage("open table meta"))?;
    let mut revision = meta
        .get(REVISION)
        .map_err(Error::storage("read revision"))?
        .map_or(0, |g| g.value());

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    for request in batch {
        if let Err(e) = check_request(&pairs, &request.ops)? {
            outcomes.push(Err(e));
            continue;
        }
        revision += 1;
        for op in &request.ops {
            match op {
                Op::Put { key, value, .. } => {
                    pairs
                        .insert(key.as_str(), (revision, value.as_slice()))
                        .map_err(Error::storage("write key"))?;
                }
                Op::Delete { key, .. } => {
                    pairs
                        .remove(key.as_str())
                        .map_err(Error::storage("delete key"))?;
                }
            }
            events.push(crate::event_of(op, revision));
        }
        trace!(revision, ops = request.ops.len(), "write request applied");
        outcomes.push(Ok(revision));
    }
    if !events.is_empty() {
        meta.insert(REVISION, revision)
            .map_err(Error::storage("write revision"))?;
    }
    Ok((outcomes, events))
}

/// The outer `Err` is a storage failure (fatal for the batch); the inner one is this request's
/// own precondition failure.
fn check_request(
    pairs: &Table<'_, &str, (u64, &[u8])>,
    ops: &[Op],
) -> Result<Result<(), Error>, Error> {
    for op in ops {
        let current = pairs
            .get(op.key())
            .map_err(Error::storage("read key"))?
            .map(|g| g.value().0);
        if let Err(e) = crate::check_op(op, current) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_lives_under_network_files_of_the_data_dir() {
        assert_eq!(
            RedbStore::default_path(Path::new("/var/lib/docker")),
            Path::new("/var/lib/docker/network/files/local-kv.redb")
        );
    }

    #[test]
    fn a_second_open_of_the_same_file_fails_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        let first = RedbStore::open(&path).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err}");
        assert!(err.to_string().starts_with("open store "), "{err}");
        drop(first);
        RedbStore::open(&path).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        fs::write(&path, b"this is not a redb file, just some bytes of text").unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err}");
    }

    #[test]
    fn requests_failing_their_checks_commit_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("kv.redb")).unwrap();
        store.put("k", b"v", Precondition::Absent).unwrap();
        let before = store.commit_stats();
        store.put("k", b"w", Precondition::Absent).unwrap_err();
        let after = store.commit_stats();
        assert_eq!(after.requests, before.requests + 1);
        assert_eq!(after.commits, before.commits);
    }
}
