//! Shared helpers for the workspace's tests: privilege checks and private namespaces.
//!
//! Tests that touch the kernel's network state never run in the machine's own namespaces. They
//! call [`privileged`] first, which answers whether the process may create namespaces (and prints
//! why a test is skipped when it may not), then run their body through [`in_new_netns`], which
//! runs it on a fresh OS thread that has its own network namespace and its own private mount
//! namespace. Threads and processes started from that thread inherit both, so a tokio runtime
//! built inside the closure works entirely inside the private namespace, and everything the test
//! made there disappears with the thread, even when the test panics.
//!
//! Under `LIBNETWORK_TEST_PRIVILEGED=1` (set by CI) a missing privilege is a test failure rather
//! than a skip.

use std::process::Command;
use std::thread;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::Uid;

/// The variable that turns a missing privilege into a failure.
pub const PRIVILEGED_ENV: &str = "LIBNETWORK_TEST_PRIVILEGED";

/// Whether privileged tests must run (the variable is set to `1`).
pub fn privileged_required() -> bool {
    std::env::var(PRIVILEGED_ENV).is_ok_and(|v| v == "1")
}

/// Whether this process may create network namespaces. When it may not, prints a line saying
/// that `test` is skipped and why, and returns false.
///
/// # Panics
/// When the privilege is missing and [`PRIVILEGED_ENV`] is `1`.
pub fn privileged(test: &str) -> bool {
    let reason = if !Uid::effective().is_root() {
        Some("not running as root")
    } else if !can_unshare_netns() {
        Some("cannot create a network namespace (missing CAP_SYS_ADMIN?)")
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) if privileged_required() => {
            panic!("{test}: {reason}, but {PRIVILEGED_ENV}=1 requires privileged tests to run")
        }
        Some(reason) => {
            eprintln!("skipped {test}: {reason}");
            false
        }
    }
}

/// Probes, on a throw-away thread, whether `unshare(CLONE_NEWNET)` works.
fn can_unshare_netns() -> bool {
    thread::spawn(|| unshare(CloneFlags::CLONE_NEWNET).is_ok())
        .join()
        .unwrap_or(false)
}

/// Runs `f` on a new OS thread that first moves into a new network namespace (with `lo` up) and
/// a new mount namespace whose mounts do not propagate back to the host. Returns what `f`
/// returns; a panic in `f` is resumed on the caller's thread.
///
/// # Panics
/// When the namespaces cannot be created, or when `f` panics.
pub fn in_new_netns<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    thread::scope(|s| {
        let handle = s.spawn(|| {
            enter_private_namespaces();
            f()
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Moves the calling thread into fresh network and mount namespaces and brings `lo` up.
///
/// # Panics
/// When a step fails: a test must never go on in the machine's own namespaces.
pub fn enter_private_namespaces() {
    let before = netns_inode();
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
        .expect("unshare network and mount namespaces");
    // Mounts made by the test (namespace files bound under a temporary run directory) must not
    // propagate to the host's mount namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make the private mount namespace's mounts private");
    assert_ne!(
        before,
        netns_inode(),
        "the test thread is still in the host's network namespace"
    );
    // Child processes inherit the namespaces of the thread that starts them.
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("run ip link set lo up");
    assert!(status.success(), "ip link set lo up failed: {status}");
}

/// The inode of the calling thread's network namespace.
pub fn netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .expect("stat /proc/thread-self/ns/net")
        .ino()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_runs_in_a_namespace_other_than_the_callers() {
        if !privileged("closure_runs_in_a_namespace_other_than_the_callers") {
            return;
        }
        let outer = netns_inode();
        let inner = in_new_netns(netns_inode);
        assert_ne!(outer, inner);
        assert_eq!(outer, netns_inode());
    }

    #[test]
    fn panics_inside_the_namespace_reach_the_caller() {
        if !privileged("panics_inside_the_namespace_reach_the_caller") {
            return;
        }
        let result = std::panic::catch_unwind(|| in_new_netns(|| panic!("boom")));
        assert!(result.is_err());
    }
}
