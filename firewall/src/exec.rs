//! Running the backend tools (`nft`, `iptables-restore`, `iptables-save`, ...) with a batch on
//! standard input.

use std::io::{ErrorKind as IoErrorKind, Write};
use std::process::{Command, Stdio};
use std::thread;

use tracing::trace;

use crate::Error;

/// Why a tool could not be run to completion.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The program is not installed (spawning it gave `ENOENT`).
    Missing(String),
    /// Any other failure: the error the caller should return.
    Failed(Error),
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Missing(msg) => Self::Unavailable(msg),
            RunError::Failed(e) => e,
        }
    }
}

/// Runs `program args...`, feeding `input` on standard input, and returns its standard output.
/// `what` names the step for error messages ("apply nftables batch"). Each line of `input` is
/// logged at trace level.
pub(crate) fn run(
    program: &str,
    args: &[&str],
    input: Option<&str>,
    what: &str,
) -> Result<String, RunError> {
    if let Some(input) = input {
        for line in input.lines() {
            trace!(tool = program, rule = line, "firewall batch line");
        }
    }
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == IoErrorKind::NotFound {
                RunError::Missing(format!("{what}: {program} is not installed"))
            } else {
                RunError::Failed(Error::Internal(format!("{what}: run {program}: {e}")))
            }
        })?;

    // Write the batch from another thread: a tool that answers while still reading (nft
    // --echo) must not block on a full stdout pipe while we block on a full stdin pipe.
    let stdin = child.stdin.take();
    let output = thread::scope(|s| {
        let writer = s.spawn(move || -> std::io::Result<()> {
            if let (Some(mut stdin), Some(input)) = (stdin, input) {
                stdin.write_all(input.as_bytes())?;
            }
            Ok(())
        });
        let output = child.wait_with_output();
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("panicked")));
        (output, written)
    });
    let (output, written) = output;
    let output = output.map_err(|e| {
        RunError::Failed(Error::Internal(format!("{what}: wait for {program}: {e}")))
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let stderr = if stderr.is_empty() {
            format!("{program} exited with {}", output.status)
        } else {
            stderr
        };
        return Err(RunError::Failed(Error::Batch {
            what: what.to_string(),
            stderr,
        }));
    }
    // The tool succeeded, so it read what it needed; a broken pipe here is not a failure.
    if let Err(e) = written
        && e.kind() != IoErrorKind::BrokenPipe
    {
        return Err(RunError::Failed(Error::Internal(format!(
            "{what}: write the batch to {program}: {e}"
        ))));
    }
    String::from_utf8(output.stdout).map_err(|e| {
        RunError::Failed(Error::Internal(format!(
            "{what}: {program} printed invalid utf-8: {e}"
        )))
    })
}
