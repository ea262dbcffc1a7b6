//! `dnet run`: a command in a new sandbox, like a container without an image.
//!
//! The daemon creates the sandbox and joins it to the networks (one request); the command is
//! spawned inside it ([`crate::nsexec`]); signals sent to dnet are passed to the command; when
//! the command exits, the sandbox is removed and dnet exits with the command's status (128 +
//! the signal number when it was killed by a signal, as shells report it).
//!
//! The command runs in dnet's process group, so a terminal's Ctrl-C and Ctrl-\ already reach
//! it: SIGINT and SIGQUIT are passed on only when dnet's standard input is not a terminal.

use std::path::Path;
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::client::{Client, escape};
use crate::model::{SandboxCreateRequest, SandboxResource};
use crate::nsexec::SandboxEntry;

/// dnet's own failure before the command ran (Docker's `docker run` uses the same code).
pub const EXIT_DNET_FAILED: u8 = 125;
/// The command exists but cannot be run.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// The signals passed on to the command.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGINT,
    Signal::SIGQUIT,
];

/// Runs `command` in a new sandbox made from `request`; returns the exit code.
pub async fn run(socket: &Path, request: SandboxCreateRequest, command: &[String]) -> u8 {
    let Some((program, args)) = command.split_first() else {
        eprintln!("dnet: run: no command given (dnet run [OPTIONS] -- CMD [ARGS...])");
        return EXIT_DNET_FAILED;
    };
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("dnet: run: entering a sandbox needs root (CAP_SYS_ADMIN)");
        return EXIT_DNET_FAILED;
    }
    // Signals are caught before the sandbox exists, so that none can kill dnet between the
    // sandbox's creation and the command's start and leave the sandbox behind.
    let (tx, mut signals) = mpsc::unbounded_channel();
    let from_terminal = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    for sig in FORWARDED {
        if from_terminal && matches!(sig, Signal::SIGINT | Signal::SIGQUIT) {
            // Still caught, so that dnet outlives the command and removes the sandbox.
            if let Ok(mut stream) = signal(SignalKind::from_raw(sig as i32)) {
                tokio::spawn(async move { while stream.recv().await.is_some() {} });
            }
            continue;
        }
        match signal(SignalKind::from_raw(sig as i32)) {
            Ok(mut stream) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        if tx.send(sig).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => eprintln!("dnet: run: cannot catch {sig}: {e}"),
        }
    }

    let mut client = Client::new(socket);
    let sandbox: SandboxResource = match client.post("/dnet/sandboxes", &request).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dnet: run: create the sandbox: {e}");
            return EXIT_DNET_FAILED;
        }
    };
    drop(client);
    // A signal that came during the creation means: do not start the command.
    if let Ok(sig) = signals.try_recv() {
        remove_sandbox(socket, &sandbox).await;
        return 128 + sig as u8;
    }

    let code = match spawn(&sandbox, program, args) {
        Ok(child) => wait(child, &mut signals).await,
        Err(code) => code,
    };
    remove_sandbox(socket, &sandbox).await;
    code
}

/// Starts the command inside the sandbox.
fn spawn(
    sandbox: &SandboxResource,
    program: &str,
    args: &[String],
) -> Result<tokio::process::Child, u8> {
    let entry = SandboxEntry::new(
        Path::new(&sandbox.key),
        Some(Path::new(&sandbox.hosts_path)),
        Some(Path::new(&sandbox.resolv_conf_path)),
        Some(&sandbox.hostname),
    )
    .map_err(|e| {
        eprintln!("dnet: run: {e:#}");
        EXIT_DNET_FAILED
    })?;
    let mut command = Command::new(program);
    command.args(args);
    entry.apply(&mut command);
    tokio::process::Command::from(command).spawn().map_err(|e| {
        eprintln!("dnet: run: start {program}: {e}");
        match e.kind() {
            std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
            std::io::ErrorKind::PermissionDenied => EXIT_CANNOT_EXECUTE,
            _ => EXIT_DNET_FAILED,
        }
    })
}

/// Waits for the command, passing signals on; returns its exit code.
async fn wait(
    mut child: tokio::process::Child,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
) -> u8 {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some(sig) = signals.recv() => {
                if let Some(pid) = pid {
                    let _ = kill(pid, sig);
                }
            }
        }
    };
    match status {
        Ok(status) => exit_code(status),
        Err(e) => {
            eprintln!("dnet: run: wait for the command: {e}");
            EXIT_DNET_FAILED
        }
    }
}

/// The shell's exit code of a finished process.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(EXIT_DNET_FAILED),
        (None, Some(sig)) => 128u8.wrapping_add(u8::try_from(sig).unwrap_or(0)),
        (None, None) => EXIT_DNET_FAILED,
    }
}

/// Removes the sandbox; says how to do it by hand when the daemon cannot.
async fn remove_sandbox(socket: &Path, sandbox: &SandboxResource) {
    let mut client = Client::new(socket);
    let path = format!("/dnet/sandboxes/{}", escape(&sandbox.id));
    if let Err(e) = client.delete(&path).await {
        eprintln!(
            "dnet: run: remove sandbox {}: {e}; remove it later with `dnet sandbox rm {}`",
            sandbox.name, sandbox.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_codes_follow_the_shells_convention() {
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(0)), 0);
        // Killed by SIGKILL (9).
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
    }
}
