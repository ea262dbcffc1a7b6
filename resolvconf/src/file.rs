//! Reading and writing resolv.conf files, hashing, and finding the host's real file.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::{Error, ResolvConf};

/// The host's resolv.conf.
pub const DEFAULT_PATH: &str = "/etc/resolv.conf";

/// systemd-resolved's list of the real upstream servers, used instead of [`DEFAULT_PATH`] when
/// that only points at the local stub resolver.
pub const SYSTEMD_RESOLVED_PATH: &str = "/run/systemd/resolve/resolv.conf";

/// systemd-resolved's stub listener address.
pub const SYSTEMD_RESOLVED_STUB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));

/// Mode of the files this crate writes.
const FILE_MODE: u32 = 0o644;

/// The `sha256:<hex>` digest of `content`, libnetwork's format for `resolv.conf.hash`.
pub fn hash(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A resolv.conf read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Where it was read from.
    pub path: PathBuf,
    /// The content (invalid UTF-8 replaced by U+FFFD, see [`read`]).
    pub content: String,
    /// [`hash`] of the bytes on disk.
    pub hash: String,
}

impl File {
    /// The parsed content.
    pub fn parse(&self) -> ResolvConf {
        ResolvConf::parse(&self.content)
    }
}

/// Reads the file at `path` (libnetwork's `GetSpecific`). The hash is taken over the raw
/// bytes; the content is decoded leniently (a resolv.conf is ASCII; stray bytes, for example in
/// a comment, become U+FFFD rather than failing the container).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read (kind NotFound when it does not exist).
pub fn read(path: &Path) -> Result<File, Error> {
    let bytes = fs::read(path).map_err(|e| io_error("read resolv.conf", path, e))?;
    Ok(File {
        path: path.to_owned(),
        hash: hash(&bytes),
        content: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Whether the file's only nameserver is systemd-resolved's stub (`127.0.0.53`).
pub fn only_systemd_resolved_stub(conf: &ResolvConf) -> bool {
    let mut servers = conf.nameservers();
    matches!(
        (servers.next(), servers.next()),
        (Some(server), None) if server.addr() == SYSTEMD_RESOLVED_STUB
    )
}

/// Which file describes the host's real resolvers: `upstream` (systemd-resolved's list) when
/// `host`'s only nameserver is `127.0.0.53` and `upstream` exists, `host` otherwise (also when
/// `host` cannot be read). libnetwork's `Path()`, with the paths as parameters; callers
/// normally pass [`DEFAULT_PATH`] and [`SYSTEMD_RESOLVED_PATH`] and may cache the answer, as
/// libnetwork does once per process.
pub fn host_path(host: &Path, upstream: &Path) -> PathBuf {
    let Ok(file) = read(host) else {
        return host.to_owned();
    };
    if only_systemd_resolved_stub(&file.parse()) && upstream.exists() {
        tracing::debug!(
            host = %host.display(),
            upstream = %upstream.display(),
            "host resolv.conf points at systemd-resolved, using its upstream servers"
        );
        return upstream.to_owned();
    }
    host.to_owned()
}

/// Reads the host's effective resolv.conf ([`host_path`] then [`read`]).
///
/// # Errors
/// [`Error::Io`] when the chosen file cannot be read.
pub fn read_host(host: &Path, upstream: &Path) -> Result<File, Error> {
    read(&host_path(host, upstream))
}

/// Writes `content` to `path` atomically: a temporary file in the same directory, mode 0644,
/// flushed to disk, then renamed over `path`. Readers see the old or the new file, never a
/// mix. Returns the [`hash`] of `content`.
///
/// Do not use this on a path that is a bind-mount target or source seen through a bind mount
/// (a container's `/etc/resolv.conf`): `rename` fails there with `EBUSY` on the mount point, or
/// replaces the inode so the container keeps seeing the old file. Use [`write_in_place`] then.
///
/// # Errors
/// [`Error::Io`]; `path` is unchanged and the temporary file is removed.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<String, Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let context = |e| io_error("write resolv.conf", path, e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".resolv.conf.")
        .tempfile_in(dir)
        .map_err(context)?;
    tmp.write_all(content).map_err(context)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(context)?;
    tmp.as_file().sync_all().map_err(context)?;
    tmp.persist(path).map_err(|e| context(e.error))?;
    tracing::debug!(path = %path.display(), bytes = content.len(), "wrote resolv.conf (rename)");
    Ok(hash(content))
}

/// Overwrites `path` in place (creating it with mode 0644 if missing): writes `content` from
/// offset 0, truncates to its length and flushes. The inode is kept, so this works on
/// bind-mounted files where [`write_atomic`] cannot; the price is that a concurrent reader may
/// see a mix of old and new bytes for an instant. Returns the [`hash`] of `content`.
///
/// # Errors
/// [`Error::Io`]; the file may then be partly written.
pub fn write_in_place(path: &Path, content: &[u8]) -> Result<String, Error> {
    let context = |e| io_error("write resolv.conf in place", path, e);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(context)?;
    file.write_all(content).map_err(context)?;
    file.set_len(content.len() as u64).map_err(context)?;
    file.sync_all().map_err(context)?;
    tracing::debug!(path = %path.display(), bytes = content.len(), "wrote resolv.conf (in place)");
    Ok(hash(content))
}

/// How [`write_if_unmodified`] replaces the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// [`write_atomic`]: temporary file and rename.
    Atomic,
    /// [`write_in_place`]: for bind-mounted files.
    InPlace,
}

/// What [`write_if_unmodified`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file still had the expected hash and now holds the new content.
    Written {
        /// Hash of the new content, to keep for the next rewrite.
        hash: String,
    },
    /// The file's hash differs from the expected one: someone edited it, so it was left alone
    /// (libnetwork's `updateDNS` rule).
    UserModified {
        /// Hash of the file as found.
        current_hash: String,
    },
}

/// Replaces the file at `path` by `content` only if its current hash is `expected_hash` (the
/// hash returned when this crate last wrote it), so that a user's edits survive.
///
/// The check and the write are not one atomic step: an edit landing between them is lost.
/// libnetwork has the same window; closing it would need a lock the editing user does not
/// take.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read (a missing file is an error, not an edit) or
/// written.
pub fn write_if_unmodified(
    path: &Path,
    content: &[u8],
    expected_hash: &str,
    mode: WriteMode,
) -> Result<WriteOutcome, Error> {
    let current = read(path)?;
    if current.hash != expected_hash {
        tracing::info!(path = %path.display(), "resolv.conf was edited, leaving it alone");
        return Ok(WriteOutcome::UserModified {
            current_hash: current.hash,
        });
    }
    let hash = match mode {
        WriteMode::Atomic => write_atomic(path, content)?,
        WriteMode::InPlace => write_in_place(path, content)?,
    };
    Ok(WriteOutcome::Written { hash })
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source: Arc::new(source),
    }
}
