//! The host side: the namespace the daemon runs in, where interfaces come from and go back to,
//! and the run directory where sandbox keys live.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nix::sched::{CloneFlags, setns};
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::handle::NetlinkHandle;
use crate::netns::{self, Netns, Spare};
use crate::sandbox::Sandbox;

/// Length of the id prefix that names a sandbox key, as in libnetwork.
const KEY_ID_LEN: usize = 12;

/// The namespace the caller runs in (the "host"), with its netlink handle, and the run
/// directory under which sandbox namespaces are bound (`<run_dir>/netns/<id12>`).
///
/// Cheap to clone. Drivers use [`Host::netlink`] to create bridges and veth pairs in the host
/// namespace; sandboxes use it to move interfaces in and back out.
#[derive(Debug, Clone)]
pub struct Host {
    run_dir: PathBuf,
    netns: Netns,
    netlink: NetlinkHandle,
    spares: Arc<Spares>,
}

/// Namespaces made ahead of need (see [`Host::keep_spare_namespaces`]), shared by the clones
/// of a [`Host`].
#[derive(Debug, Default)]
struct Spares {
    /// How many to keep.
    wanted: AtomicUsize,
    ready: Mutex<Vec<Spare>>,
    /// Whether a task is making more.
    refilling: AtomicBool,
}

impl Spares {
    fn take(&self) -> Option<Spare> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn count(&self) -> usize {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Starts a task that makes spares until there are as many as wanted, unless one runs.
    fn refill(self: &Arc<Self>) {
        if self.count() >= self.wanted.load(Ordering::Relaxed)
            || self.refilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let spares = Arc::clone(self);
        tokio::spawn(async move {
            while spares.count() < spares.wanted.load(Ordering::Relaxed) {
                match Spare::create().await {
                    Ok(spare) => spares
                        .ready
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(spare),
                    Err(e) => {
                        // Sandboxes are then made as they are asked for.
                        warn!(error = %e, "spare network namespace not made");
                        break;
                    }
                }
            }
            spares.refilling.store(false, Ordering::Release);
        });
    }
}

impl Host {
    /// The host as seen from the calling task's namespace, with sandbox keys under
    /// `run_dir/netns` (libnetwork's default run directory is `/var/run/docker`).
    ///
    /// # Errors
    /// [`Error::Os`](crate::Error::Os) when the namespace or a netlink socket cannot be opened.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn new(run_dir: impl Into<PathBuf>) -> Result<Self> {
        Ok(Self {
            run_dir: run_dir.into(),
            netns: Netns::current()?,
            netlink: NetlinkHandle::current().await?,
            spares: Arc::default(),
        })
    }

    /// The host for the namespace at `path` (any bound file or `/proc/<pid>/ns/net`).
    ///
    /// # Errors
    /// As [`Netns::open`] and [`NetlinkHandle::open`].
    pub async fn open(path: &Path, run_dir: impl Into<PathBuf>) -> Result<Self> {
        let netns = Netns::open(path)?;
        let netlink = NetlinkHandle::open(&netns, format!("namespace {}", path.display())).await?;
        Ok(Self {
            run_dir: run_dir.into(),
            netns,
            netlink,
            spares: Arc::default(),
        })
    }

    /// Every link enslaved to a bridge in the host's namespace, as
    /// [`NetlinkHandle::bridge_ports`] lists them, read on a socket of its own by a reader that
    /// decodes only what a [`Link`](crate::Link) holds: for a restore on a host with many
    /// veths, where decoding every attribute costs more than the kernel's work.
    ///
    /// # Errors
    /// [`Error::Netlink`](crate::Error::Netlink) when the dump fails,
    /// [`Error::Os`](crate::Error::Os) when the namespace cannot be entered.
    pub async fn bridge_ports(&self) -> Result<Vec<crate::Link>> {
        self.netns
            .run_in(crate::portdump::bridge_ports)
            .await?
            .map_err(|e| self.netlink.err("list bridge ports", e))
    }

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The host namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The host namespace's netlink handle.
    pub fn netlink(&self) -> &NetlinkHandle {
        &self.netlink
    }

    /// The key (namespace file) of the sandbox for `id`: `<run_dir>/netns/<first 12 chars of
    /// id>` (libnetwork's `GenerateKey`).
    pub fn key_for(&self, id: &str) -> PathBuf {
        let short: String = id.chars().take(KEY_ID_LEN).collect();
        self.run_dir.join("netns").join(short)
    }

    /// Creates a sandbox: a new network namespace bound to `key`, with `lo` up.
    ///
    /// # Errors
    /// [`Error::Conflict`](crate::Error::Conflict) when a namespace is already bound to `key`,
    /// [`Error::Os`](crate::Error::Os)/[`Error::Netlink`](crate::Error::Netlink) when a step
    /// fails (the key is released again).
    pub async fn create_sandbox(&self, key: &Path) -> Result<Sandbox> {
        if let Some(spare) = self.spares.take() {
            self.spares.refill();
            let (netns, netlink) = spare.bind(key)?;
            info!(key = %key.display(), spare = true, "sandbox ready");
            return Ok(Sandbox::reopened(self.clone(), key, netns, netlink));
        }
        self.spares.refill();
        let netns = netns::create_bound(key).await?;
        match Sandbox::attach(self.clone(), key, netns, true).await {
            Ok(sandbox) => Ok(sandbox),
            Err(e) => {
                let undo = netns::unbind(key).err().into_iter().collect();
                Err(e.with_undo(undo))
            }
        }
    }

    /// Keeps `count` network namespaces made ahead of need, so that [`Host::create_sandbox`]
    /// only binds one to its key (about 0.1 ms) instead of making it (`unshare`, a thread, a
    /// netlink socket and `lo` up: about 0.8 ms here). They are made in the background, the
    /// first after the next [`Host::create_sandbox`] and then each time one is taken; they are
    /// bound to no file, so they vanish with the process. 0 (the default) keeps none (the
    /// spares already made are used up). Shared by every clone of this host.
    pub fn keep_spare_namespaces(&self, count: usize) {
        self.spares.wanted.store(count, Ordering::Relaxed);
    }

    /// How many spare namespaces are ready now (see [`Host::keep_spare_namespaces`]).
    pub fn spare_namespaces(&self) -> usize {
        self.spares.count()
    }

    /// Opens the sandbox bound to `key`, for instance after the daemon restarted. Its
    /// interfaces, routes and neighbours are read from the kernel when asked for; which
    /// interfaces were moved in from the host is not known until
    /// [`Sandbox::restore_interface`] says so.
    ///
    /// # Errors
    /// [`Error::Os`](crate::Error::Os) (`ENOENT` → not found) when nothing is at `key`,
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when it is not a namespace.
    pub async fn open_sandbox(&self, key: &Path) -> Result<Sandbox> {
        let netns = Netns::open(key)?;
        Sandbox::attach(self.clone(), key, netns, false).await
    }

    /// Opens the sandboxes bound to `keys`, as [`Host::open_sandbox`] does for one, in the
    /// order of `keys`. For a restart with many sandboxes: a single thread visits each
    /// namespace in turn to open its netlink socket, where [`Host::open_sandbox`] starts a
    /// thread per sandbox.
    ///
    /// # Errors
    /// Per key, as [`Host::open_sandbox`]; [`Error::Os`](crate::Error::Os) for every key when
    /// the thread cannot be started.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn open_sandboxes(&self, keys: &[PathBuf]) -> Vec<Result<Sandbox>> {
        let to_visit: Vec<(Result<Netns>, Arc<str>)> = keys
            .iter()
            .map(|key| {
                (
                    Netns::open(key),
                    format!("sandbox {}", key.display()).into(),
                )
            })
            .collect();
        let runtime = tokio::runtime::Handle::current();
        let visited = netns::on_new_thread(move || {
            let _entered = runtime.enter();
            to_visit
                .into_iter()
                .map(|(netns, label)| {
                    let netns = netns?;
                    setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                        Error::os(
                            format!("enter network namespace {}", netns.path().display()),
                            e,
                        )
                    })?;
                    let netlink = NetlinkHandle::open_on_this_thread(label)?;
                    Ok((netns, netlink))
                })
                .collect::<Vec<Result<(Netns, NetlinkHandle)>>>()
        })
        .await;
        match visited {
            Ok(visited) => visited
                .into_iter()
                .zip(keys)
                .map(|(opened, key)| {
                    let (netns, netlink) = opened?;
                    debug!(key = %key.display(), "sandbox reopened");
                    Ok(Sandbox::reopened(self.clone(), key, netns, netlink))
                })
                .collect(),
            Err(e) => {
                let cause = e.to_string();
                keys.iter()
                    .map(|key| {
                        Err(Error::os(
                            format!("open sandbox {}", key.display()),
                            std::io::Error::other(cause.clone()),
                        ))
                    })
                    .collect()
            }
        }
    }

    /// Makes a sandbox of an existing namespace (`/proc/<pid>/ns/net` of a process started
    /// elsewhere) by binding it to `key`, then brings its `lo` up: libnetwork's
    /// `GetSandboxForExternalKey`.
    ///
    /// # Errors
    /// As [`netns::bind_existing`]; on a later failure the key is released again.
    pub async fn sandbox_for_external_key(&self, ns_path: &Path, key: &Path) -> Result<Sandbox> {
        let netns = netns::bind_existing(ns_path, key)?;
        match Sandbox::attach(self.clone(), key, netns, true).await {
            Ok(sandbox) => Ok(sandbox),
            Err(e) => {
                let undo = netns::unbind(key).err().into_iter().collect();
                Err(e.with_undo(undo))
            }
        }
    }
}
