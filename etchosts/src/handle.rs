//! A hosts file on disk paired with its in-memory model, one mutex per file.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{BuildOptions, Error, HostsFile, Record};

/// Mode of the files this crate writes.
const FILE_MODE: u32 = 0o644;

/// How [`Hosts`] puts changes on disk. There is no default: the right choice depends on
/// whether a running container has the file bind-mounted (then [`WriteMode::InPlace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Write the whole content to a temporary file in the same directory and rename it over
    /// the path. Readers see the old or the new file, never a mix. Every change costs a file
    /// creation, a full write and a rename, and replaces the inode: a container that has the
    /// file bind-mounted keeps seeing the old inode, so use this only for files that are not
    /// (yet) mounted, or that are mounted through their directory.
    Atomic,
    /// Keep the file open and write only the changed bytes with one `pwrite` (the changed
    /// line, or everything after it when its length changed), then cut the file when it
    /// shrank. The inode stays, so a bind-mounted `/etc/hosts` sees every change; the price is
    /// that a reader may see a half-applied change for an instant, as with libnetwork's own
    /// truncate-and-write.
    InPlace,
}

/// A hosts file on disk, with its content held in memory so that each change costs one small
/// write instead of libnetwork's read, parse, rebuild and rewrite.
///
/// Operations take `&self` and are serialised by a mutex inside the handle (libnetwork's
/// per-path lock); share the handle with `Arc`. Keep one handle per file.
///
/// Before each change the handle checks the file's identity, size and modification time; if
/// someone else changed the file (a user editing `/etc/hosts` in the container), it re-reads
/// it first, so their edits are kept as libnetwork keeps them. An edit of the same size within
/// the file system's timestamp granularity can go unnoticed.
#[derive(Debug)]
pub struct Hosts {
    path: PathBuf,
    mode: WriteMode,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    model: HostsFile,
    /// The open file, in [`WriteMode::InPlace`].
    file: Option<File>,
    /// What the file looked like after our last read or write.
    stamp: Option<Stamp>,
    /// A failed in-place write may have left the file half written: trust the model and
    /// rewrite everything on the next change instead of re-reading the file.
    damaged: bool,
}

/// The identity and version of a file as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

impl Hosts {
    /// Writes the file libnetwork's `Build` writes (see [`HostsFile::build`]) at `path`,
    /// replacing any file there, and returns its handle.
    ///
    /// # Errors
    /// The errors of [`HostsFile::build`] (nothing is written), or [`Error::Io`].
    pub fn build(path: &Path, options: &BuildOptions, mode: WriteMode) -> Result<Self, Error> {
        Self::create(path, HostsFile::build(options)?, mode)
    }

    /// Writes `content` at `path`, replacing any file there, and returns its handle.
    ///
    /// # Errors
    /// [`Error::Io`]; with [`WriteMode::InPlace`] an existing file may be partly written.
    pub fn create(path: &Path, mut content: HostsFile, mode: WriteMode) -> Result<Self, Error> {
        content.mark_all_dirty();
        let mut inner = Inner {
            model: content,
            file: None,
            stamp: None,
            damaged: false,
        };
        inner.flush(path, mode)?;
        tracing::debug!(path = %path.display(), ?mode, "wrote hosts file");
        Ok(Self {
            path: path.to_owned(),
            mode,
            inner: Mutex::new(inner),
        })
    }

    /// Opens an existing hosts file.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read (or, in place, opened for writing).
    pub fn open(path: &Path, mode: WriteMode) -> Result<Self, Error> {
        let (model, file, stamp) = load(path, mode)?;
        Ok(Self {
            path: path.to_owned(),
            mode,
            inner: Mutex::new(Inner {
                model,
                file,
                stamp: Some(stamp),
                damaged: false,
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How changes are written.
    pub fn mode(&self) -> WriteMode {
        self.mode
    }

    /// The content as of the last operation.
    pub fn content(&self) -> String {
        self.lock().model.render().to_owned()
    }

    /// Appends `records` (libnetwork's `Add`; an empty slice does nothing, not even I/O).
    ///
    /// # Errors
    /// [`Error::Io`]; the change is then undone in memory (see the variant for the file).
    pub fn add(&self, records: &[Record]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        self.change("add records", |model| {
            model.add(records);
            Ok(())
        })
    }

    /// Removes the lines whose names equal those of one of `records`, whatever their address
    /// (libnetwork's `Delete`). Returns how many lines went.
    ///
    /// # Errors
    /// [`Error::Io`]; the change is then undone in memory (see the variant for the file).
    pub fn delete(&self, records: &[Record]) -> Result<usize, Error> {
        if records.is_empty() {
            return Ok(0);
        }
        self.change("delete records", |model| Ok(model.delete(records)))
    }

    /// Sets the address of the lines whose first name is `hostname` or `hostname.<domain>`
    /// (libnetwork's `Update`). Returns how many lines matched.
    ///
    /// # Errors
    /// [`Error::InvalidName`] (nothing changes), or [`Error::Io`]; the change is then undone
    /// in memory (see the variant for the file).
    pub fn update(&self, ip: IpAddr, hostname: &str) -> Result<usize, Error> {
        self.change("update record", |model| model.update(ip, hostname))
    }

    /// Runs one change: pick up foreign edits, apply, write, undo in memory on failure.
    fn change<T>(
        &self,
        what: &'static str,
        apply: impl FnOnce(&mut HostsFile) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut inner = self.lock();
        inner.refresh(&self.path, self.mode)?;
        inner.model.checkpoint();
        let out = match apply(&mut inner.model) {
            Ok(out) => out,
            Err(error) => {
                inner.model.rollback();
                return Err(error);
            }
        };
        if let Err(error) = inner.flush(&self.path, self.mode) {
            inner.model.rollback();
            if self.mode == WriteMode::InPlace {
                // The file may be torn and longer than any known length: rewrite and cut it.
                inner.damaged = true;
                inner.stamp = None;
            }
            return Err(error);
        }
        inner.model.commit();
        tracing::debug!(path = %self.path.display(), what, "updated hosts file");
        Ok(out)
    }

    /// The state, recovering from a panic in another thread by re-reading the file on the
    /// next change (the model may have been left half edited).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| {
            let mut inner = poisoned.into_inner();
            inner.stamp = None;
            inner.damaged = false;
            self.inner.clear_poison();
            inner
        })
    }
}

impl Inner {
    /// Re-reads the file when it is not the one we last wrote.
    fn refresh(&mut self, path: &Path, mode: WriteMode) -> Result<(), Error> {
        if self.damaged {
            self.model.mark_all_dirty();
            return Ok(());
        }
        let current = fs::metadata(path).map_err(|e| io_error("check hosts file", path, e))?;
        if self.stamp == Some(Stamp::of(&current)) {
            return Ok(());
        }
        tracing::debug!(path = %path.display(), "hosts file changed on disk, re-reading it");
        let (model, file, stamp) = load(path, mode)?;
        self.model = model;
        self.file = file;
        self.stamp = Some(stamp);
        Ok(())
    }

    /// Puts the pending change on disk.
    fn flush(&mut self, path: &Path, mode: WriteMode) -> Result<(), Error> {
        let Some(write) = self.model.pending_write() else {
            return Ok(());
        };
        let content = self.model.render().as_bytes();
        let stamp = match mode {
            WriteMode::Atomic => replace_file(path, content)?,
            WriteMode::InPlace => {
                let context = |e| io_error("write hosts file", path, e);
                if self.file.is_none() {
                    self.file = Some(open_rw(path, true).map_err(context)?);
                }
                let file = self
                    .file
                    .as_ref()
                    .unwrap_or_else(|| unreachable!("opened above"));
                file.write_all_at(&content[write.range.clone()], write.range.start as u64)
                    .map_err(context)?;
                let on_disk = self.stamp.map_or(u64::MAX, |stamp| stamp.len);
                if (write.new_len as u64) < on_disk {
                    file.set_len(write.new_len as u64).map_err(context)?;
                }
                Stamp::of(&file.metadata().map_err(context)?)
            }
        };
        self.model.mark_written();
        self.stamp = Some(stamp);
        self.damaged = false;
        Ok(())
    }
}

/// Reads the file at `path` into a model, with the open file (in place) and its stamp.
fn load(path: &Path, mode: WriteMode) -> Result<(HostsFile, Option<File>, Stamp), Error> {
    let context = |e| io_error("read hosts file", path, e);
    let mut file = match mode {
        WriteMode::Atomic => File::open(path),
        WriteMode::InPlace => open_rw(path, false),
    }
    .map_err(context)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(context)?;
    let stamp = Stamp::of(&file.metadata().map_err(context)?);

    // A hosts file is text; stray bytes become U+FFFD, and the file is rewritten whole on the
    // next change so that disk and model agree.
    let text = String::from_utf8_lossy(&bytes);
    let mut model = HostsFile::parse(&text);
    if matches!(text, Cow::Owned(_)) {
        model.mark_all_dirty();
    }
    let file = (mode == WriteMode::InPlace).then_some(file);
    Ok((model, file, stamp))
}

/// Opens `path` for reading and writing (creating it with mode 0644 when asked).
fn open_rw(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
}

/// Replaces `path` by a new file holding `content` (temporary file + rename) and returns the
/// new file's stamp. Not flushed to disk (no `fsync`): a hosts file is rebuilt from the
/// sandbox's state after a crash, so durability is not worth a disk flush per change.
fn replace_file(path: &Path, content: &[u8]) -> Result<Stamp, Error> {
    let context = |e| io_error("write hosts file", path, e);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".hosts.")
        .tempfile_in(dir)
        .map_err(context)?;
    tmp.write_all(content).map_err(context)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(context)?;
    let stamp = Stamp::of(&tmp.as_file().metadata().map_err(context)?);
    tmp.persist(path).map_err(|e| context(e.error))?;
    Ok(stamp)
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source: Arc::new(source),
    }
}
