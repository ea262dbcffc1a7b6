//! Running a command inside a sandbox: in the sandbox's network namespace (entered by its key
//! path), in a private mount namespace where the sandbox's hosts file and resolv.conf are
//! bind-mounted over `/etc/hosts` and `/etc/resolv.conf`, and in a private UTS namespace with
//! the sandbox's hostname.
//!
//! The namespaces are entered in the child between fork and exec
//! ([`std::os::unix::process::CommandExt::pre_exec`]), so the calling process (and its
//! threads) never leave their own namespaces. This is the one place dnet uses `unsafe`.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};

/// What a child needs to enter a sandbox, prepared before the fork (nothing is allocated
/// after it).
#[derive(Debug)]
pub struct SandboxEntry {
    netns: File,
    hosts: Option<CString>,
    resolv_conf: Option<CString>,
    hostname: Option<CString>,
}

impl SandboxEntry {
    /// Opens the sandbox's namespace file `key`; `hosts` and `resolv_conf` are mounted over
    /// the files of `/etc` and `hostname` set, when given.
    ///
    /// # Errors
    /// When the key cannot be opened, or a path or the hostname contains a NUL byte.
    pub fn new(
        key: &Path,
        hosts: Option<&Path>,
        resolv_conf: Option<&Path>,
        hostname: Option<&str>,
    ) -> anyhow::Result<Self> {
        let netns = File::open(key)
            .with_context(|| format!("open the sandbox's namespace {}", key.display()))?;
        let c = |bytes: &[u8]| CString::new(bytes).context("a path or name contains a NUL byte");
        Ok(Self {
            netns,
            hosts: hosts.map(|p| c(p.as_os_str().as_bytes())).transpose()?,
            resolv_conf: resolv_conf
                .map(|p| c(p.as_os_str().as_bytes()))
                .transpose()?,
            hostname: hostname
                .filter(|h| !h.is_empty())
                .map(|h| c(h.as_bytes()))
                .transpose()?,
        })
    }

    /// Makes `command` enter the sandbox when it is spawned.
    #[allow(unsafe_code)]
    pub fn apply(self, command: &mut Command) {
        let enter = move || -> std::io::Result<()> { self.enter() };
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe work is allowed. It makes only system calls (setns, unshare,
        // mount, sethostname) through nix, on data prepared before the fork: an open file
        // descriptor and NUL-terminated strings, which nix passes to the kernel without
        // allocating (`NixPath` for `CStr`, `OsStr` for the hostname). It takes no lock and
        // touches no state shared with other threads of the parent.
        unsafe {
            command.pre_exec(enter);
        }
    }

    /// The child's steps: network namespace, private mounts, files, hostname.
    fn enter(&self) -> std::io::Result<()> {
        setns(&self.netns, CloneFlags::CLONE_NEWNET)?;
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)?;
        // The bind mounts below must not propagate to the mount namespace we came from.
        mount(
            None::<&CStr>,
            c"/",
            None::<&CStr>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&CStr>,
        )?;
        if let Some(hosts) = &self.hosts {
            bind_file(hosts, c"/etc/hosts")?;
        }
        if let Some(resolv_conf) = &self.resolv_conf {
            bind_file(resolv_conf, c"/etc/resolv.conf")?;
        }
        if let Some(hostname) = &self.hostname {
            nix::unistd::sethostname(OsStr::from_bytes(hostname.as_bytes()))?;
        }
        Ok(())
    }
}

/// Bind-mounts `source` over `target`.
fn bind_file(source: &CStr, target: &CStr) -> nix::Result<()> {
    mount(
        Some(source),
        target,
        None::<&CStr>,
        MsFlags::MS_BIND,
        None::<&CStr>,
    )
}
