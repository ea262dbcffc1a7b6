//! Network namespaces bound to files, and running code inside them.
//!
//! A sandbox's namespace lives as long as something refers to it: a bind mount of its nsfs inode
//! onto a plain file (the sandbox key), an open file descriptor, or a thread inside it. Creating
//! one works like `ip netns add`, without running `ip`: a throw-away OS thread calls
//! `unshare(CLONE_NEWNET)` and bind-mounts `/proc/thread-self/ns/net` (its own namespace; not
//! `/proc/self`, which is the thread-group leader's) onto the key file, then exits.
//!
//! Namespace switches (`unshare`, `setns`) change only the calling thread, so they happen only
//! on threads this module starts for the purpose, never on a tokio worker.

use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statfs::{NSFS_MAGIC, fstatfs, statfs};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::handle::NetlinkHandle;
use crate::link::Link;

/// The calling thread's own network namespace, as a path usable from that thread.
const THREAD_SELF_NETNS: &str = "/proc/thread-self/ns/net";

/// An open handle on a network namespace: a file descriptor on its nsfs inode, and the path it
/// was opened from. Clones share the descriptor; the namespace stays alive at least as long as
/// one clone does.
#[derive(Debug, Clone)]
pub struct Netns {
    fd: Arc<OwnedFd>,
    path: PathBuf,
    inode: u64,
}

impl Netns {
    /// Opens the calling thread's network namespace (`/proc/thread-self/ns/net`).
    ///
    /// # Errors
    /// [`Error::Os`] when `/proc` cannot be read.
    pub fn current() -> Result<Self> {
        Self::open(THREAD_SELF_NETNS)
    }

    /// Opens the network namespace at `path`: a file a namespace is bind-mounted on (a sandbox
    /// key, `/run/netns/NAME`) or a `/proc/<pid>/ns/net` link. Like `ip netns exec` resolving a
    /// name.
    ///
    /// # Errors
    /// [`Error::Os`] (`ENOENT` → not found) when the path cannot be opened, and
    /// [`Error::InvalidInput`] when it is not a namespace.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let op = || format!("open network namespace {}", path.display());
        let file = File::open(path).map_err(|e| Error::os(op(), e))?;
        let fs = fstatfs(&file).map_err(|e| Error::os(op(), e))?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(Error::invalid(
                op(),
                "not a namespace (no namespace is mounted there)",
            ));
        }
        let inode = file.metadata().map_err(|e| Error::os(op(), e))?.ino();
        Ok(Self {
            fd: Arc::new(OwnedFd::from(file)),
            path: path.to_path_buf(),
            inode,
        })
    }

    /// The path the namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's inode number: two handles refer to the same namespace when their inodes
    /// are equal (what `ip netns identify` compares).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// The descriptor, for netlink attributes such as `IFLA_NET_NS_FD`. Valid while `self` lives.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Runs `f` on a new OS thread that first joins this namespace (`setns`), and returns what
    /// `f` returns: the equivalent of `ip netns exec`, or of libnetwork's `InvokeFunc`. Sockets
    /// `f` creates stay in the namespace after the thread ends, so this is how to bind a
    /// listener inside a sandbox. The thread also shares the caller's mount namespace.
    ///
    /// # Errors
    /// [`Error::Os`] when the thread cannot be started or cannot join the namespace.
    ///
    /// # Panics
    /// Resumes a panic of `f` on the caller.
    pub async fn run_in<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let fd = Arc::clone(&self.fd);
        let path = self.path.clone();
        on_new_thread(move || {
            setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::os(format!("enter network namespace {}", path.display()), e))?;
            Ok(f())
        })
        .await?
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Runs `f` on a fresh OS thread and waits for it without blocking the async runtime. A panic
/// in `f` is resumed on the caller. The thread ends after `f`, so whatever namespace `f` moved
/// it into is never reused by other work.
pub(crate) async fn on_new_thread<F, R>(f: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    thread::Builder::new()
        .name("osl-netns".into())
        .spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(result);
        })
        .map_err(|e| Error::os("start a namespace thread", e))?;
    match rx.await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(panic)) => panic::resume_unwind(panic),
        Err(_) => Err(Error::os(
            "wait for a namespace thread",
            std::io::Error::other("the thread ended without an answer"),
        )),
    }
}

/// Creates a new network namespace and binds it to the file `key` (like `ip netns add`),
/// creating the key's directory and the file if needed, then opens it.
///
/// A plain file left at `key` (by a crash after an unmount) is reused; a namespace still
/// mounted there is an error, where libnetwork would silently unmount it: the caller destroys
/// a sandbox it no longer wants.
///
/// # Errors
/// [`Error::Conflict`] when a namespace is already mounted on `key`, [`Error::Os`] when a
/// system call fails (nothing is left behind then).
pub async fn create_bound(key: &Path) -> Result<Netns> {
    let op = || format!("create network namespace {}", key.display());
    let created = prepare_key_file(key, &op)?;

    // A throw-away thread moves into a new namespace and pins it with a bind mount.
    let target = key.to_path_buf();
    let bound = on_new_thread(move || -> nix::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some(THREAD_SELF_NETNS),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .await
    .and_then(|r| r.map_err(|e| Error::os(op(), e)));
    if let Err(e) = bound {
        if created {
            let _ = fs::remove_file(key);
        }
        return Err(e);
    }

    Netns::open(key).inspect_err(|_| {
        let _ = unbind(key);
    })
}

/// A network namespace made ahead of need, bound to no key yet, with a netlink socket open
/// inside it and `lo` up: see [`crate::Host::keep_spare_namespaces`]. Dropping it frees the
/// namespace (nothing else refers to it).
#[derive(Debug)]
pub(crate) struct Spare {
    fd: OwnedFd,
    pub(crate) netlink: NetlinkHandle,
}

impl Spare {
    /// Makes a namespace on a throw-away thread (`unshare`), keeps a descriptor on it, opens
    /// its netlink socket from inside and sets `lo` up.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub(crate) async fn create() -> Result<Self> {
        let op = "create a spare network namespace";
        let runtime = tokio::runtime::Handle::current();
        let (fd, netlink) = on_new_thread(move || -> Result<(OwnedFd, NetlinkHandle)> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::os(op, e))?;
            let fd = OwnedFd::from(File::open(THREAD_SELF_NETNS).map_err(|e| Error::os(op, e))?);
            let _entered = runtime.enter();
            let netlink = NetlinkHandle::open_on_this_thread("spare namespace".into())?;
            Ok((fd, netlink))
        })
        .await??;
        netlink.set_up(&Link::loopback(), true).await?;
        Ok(Self { fd, netlink })
    }

    /// Binds the namespace to the file `key` (as [`create_bound`] does for a new one) and
    /// opens it there. On failure nothing is left at `key`, and the spare is gone.
    ///
    /// # Errors
    /// As [`create_bound`].
    pub(crate) fn bind(self, key: &Path) -> Result<(Netns, NetlinkHandle)> {
        let op = || format!("create network namespace {}", key.display());
        let created = prepare_key_file(key, &op)?;
        let source = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        if let Err(e) = mount(
            Some(source.as_str()),
            key,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            if created {
                let _ = fs::remove_file(key);
            }
            return Err(Error::os(op(), e));
        }
        let netns = Netns::open(key).inspect_err(|_| {
            let _ = unbind(key);
        })?;
        let label = format!("sandbox {}", key.display());
        Ok((netns, self.netlink.relabeled(label.into())))
    }
}

/// Bind-mounts an existing namespace (`/proc/<pid>/ns/net`, another bound file) onto the file
/// `key` and opens it: libnetwork's `GetSandboxForExternalKey`.
///
/// # Errors
/// [`Error::Os`] when `ns_path` is not there or the mount fails, [`Error::InvalidInput`] when
/// `ns_path` is not a network namespace, [`Error::Conflict`] when a namespace is already
/// mounted on `key`.
pub fn bind_existing(ns_path: &Path, key: &Path) -> Result<Netns> {
    let op = || {
        format!(
            "bind network namespace {} to {}",
            ns_path.display(),
            key.display()
        )
    };
    // Check the source first so that bad input changes nothing.
    let source = Netns::open(ns_path)?;
    let created = prepare_key_file(key, &op)?;
    if let Err(e) = mount(
        Some(ns_path),
        key,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        if created {
            let _ = fs::remove_file(key);
        }
        return Err(Error::os(op(), e));
    }
    let bound = Netns::open(key).inspect_err(|_| {
        let _ = unbind(key);
    })?;
    debug_assert_eq!(bound.inode(), source.inode());
    Ok(bound)
}

/// Makes sure `key` is a plain file with nothing mounted on it; returns whether it was created.
fn prepare_key_file(key: &Path, op: &dyn Fn() -> String) -> Result<bool> {
    if let Some(dir) = key.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::os(op(), e))?;
    }
    match statfs(key) {
        Ok(fs) if fs.filesystem_type() == NSFS_MAGIC => {
            return Err(Error::Conflict {
                op: op(),
                reason: "a network namespace is already mounted there".into(),
            });
        }
        Ok(_) => return Ok(false),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::os(op(), e)),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(key)
        .map_err(|e| Error::os(op(), e))?;
    Ok(true)
}

/// Releases the namespace bound to `key`: a lazy unmount (`MNT_DETACH`, so open descriptors and
/// sockets keep working until they close) and removal of the file, like `ip netns del`.
/// Best effort: both steps are tried, and every failure is reported.
///
/// # Errors
/// [`Error::Teardown`] listing the steps that failed; a missing mount or file is not a failure.
pub fn unbind(key: &Path) -> Result<()> {
    let mut failures = Vec::new();
    match umount2(key, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => failures.push(Error::os(format!("unmount {}", key.display()), e)),
    }
    match fs::remove_file(key) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => failures.push(Error::os(format!("remove {}", key.display()), e)),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Teardown {
            op: format!("release network namespace {}", key.display()),
            failures,
        })
    }
}

/// Whether a namespace is mounted on `path`.
pub fn is_bound(path: &Path) -> bool {
    statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}
