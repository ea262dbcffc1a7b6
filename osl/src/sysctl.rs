//! Network sysctls (`sysctl -w net.…`) of one namespace.
//!
//! Everything under `/proc/sys/net` belongs to the network namespace of the thread that opens
//! the file, so these functions are run on a thread that joined the sandbox (see
//! [`Netns::run_in`](crate::Netns::run_in)); the sandbox wraps them. Keys outside `net.` are
//! shared by the whole machine and refused, so that a sandbox can never change the host.
//! Writes read the current value first and skip the write when it already matches, which keeps
//! them idempotent and cheap (netavark does the same).

use std::fs;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The file under `/proc/sys` for `key`, written either with dots (`net.ipv4.ip_forward`) or,
/// for names that contain dots themselves (an interface `eth0.100`), with slashes
/// (`net/ipv6/conf/eth0.100/disable_ipv6`).
///
/// # Errors
/// [`Error::InvalidInput`] for an empty component, `.`/`..`, or a key outside `net`.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let op = || format!("resolve sysctl {key:?}");
    let separator = if key.contains('/') { '/' } else { '.' };
    let parts: Vec<&str> = key.split(separator).collect();
    if parts.first() != Some(&"net") || parts.len() < 2 {
        return Err(Error::invalid(
            op(),
            "only per-namespace keys under net. can be set in a sandbox",
        ));
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\0'))
    {
        return Err(Error::invalid(op(), "malformed key"));
    }
    let mut path = PathBuf::from("/proc/sys");
    path.extend(parts);
    Ok(path)
}

/// Reads a sysctl of the calling thread's namespace, trimmed.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad key, [`Error::Os`] (`ENOENT` → not found) when it cannot
/// be read.
pub fn read(key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    let value =
        fs::read_to_string(&path).map_err(|e| Error::os(format!("read sysctl {key}"), e))?;
    Ok(value.trim().to_string())
}

/// Writes a sysctl of the calling thread's namespace unless it already has `value`. Returns
/// the previous value.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad key, [`Error::Os`] when it cannot be read or written.
pub fn write(key: &str, value: &str) -> Result<String> {
    let old = read(key)?;
    if old != value.trim() {
        let path = sysctl_path(key)?;
        fs::write(&path, value.trim())
            .map_err(|e| Error::os(format!("set sysctl {key}={value}"), e))?;
    }
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_slashed_keys_map_to_proc_sys() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv6/conf/eth0.100/disable_ipv6").unwrap(),
            PathBuf::from("/proc/sys/net/ipv6/conf/eth0.100/disable_ipv6")
        );
    }

    #[test]
    fn keys_outside_net_or_escaping_proc_sys_are_refused() {
        for bad in [
            "kernel.hostname",
            "net",
            "net..ipv4",
            "net/../kernel/hostname",
            "",
            "vm.swappiness",
        ] {
            let err = sysctl_path(bad).unwrap_err();
            assert_eq!(err.kind(), libnetwork_types::ErrorKind::BadRequest, "{bad}");
        }
    }
}
