//! Withdrawing published ports in batches, off the caller's path.
//!
//! Removing rules costs nf_tables one RCU synchronisation per transaction (about 16 ms here,
//! with `nft` and `iptables-restore` alike, whatever the number of rules in it), where adding
//! them costs about 4 ms (mostly the tool's start). So `revoke_external_connectivity` hands the
//! endpoint's bindings to the `Unpublisher` and returns: its worker collects the bindings
//! revoked within [`UNPUBLISH_WINDOW`] and unmaps them in one call of the port mapper (proxies
//! stopped, one firewall batch, host ports freed). Until then the host ports stay reserved, so
//! an ephemeral port is never handed out twice, and publishing a port that is still being
//! withdrawn waits for the withdrawal (`Unpublisher::wait_for`). Failures of a batch cannot
//! be returned to a caller that has moved on: they are logged, and a restarted driver removes
//! firewall mappings no endpoint owns.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use libnetwork_portmapper::PortMapper;
use libnetwork_types::PortBinding;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// How long the worker collects revoked bindings before unmapping them in one call.
pub const UNPUBLISH_WINDOW: Duration = Duration::from_millis(50);

enum Job {
    /// Unmap these bindings (registered as pending under `id`).
    Unmap(u64, Vec<PortBinding>),
    /// Answer once every job sent before has been done.
    Flush(oneshot::Sender<()>),
}

/// Bindings handed over and not yet unmapped, by job id.
type Pending = Arc<Mutex<Vec<(u64, Vec<PortBinding>)>>>;

/// The queue of bindings to unmap and its worker.
#[derive(Debug, Clone)]
pub(crate) struct Unpublisher {
    jobs: mpsc::UnboundedSender<Job>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unmap(id, b) => write!(f, "Unmap({id}, {} bindings)", b.len()),
            Self::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Unpublisher {
    /// Starts the worker on the current runtime. It ends once every handle is gone and the
    /// queue is empty.
    pub(crate) fn start(ports: Arc<PortMapper>) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let pending = Pending::default();
        tokio::spawn(work(ports, queue, Arc::clone(&pending)));
        Self {
            jobs,
            pending,
            next_id: Arc::default(),
        }
    }

    /// Queues `bindings` (operational bindings of the port mapper) for unmapping.
    pub(crate) fn unpublish(&self, bindings: Vec<PortBinding>) {
        if bindings.is_empty() {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending).push((id, bindings.clone()));
        if self.jobs.send(Job::Unmap(id, bindings)).is_err() {
            // Only when the runtime is shutting down; the restart cleans up.
            warn!("unpublisher stopped, bindings left published");
        }
    }

    /// Waits until every binding queued so far is unmapped.
    pub(crate) async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        if self.jobs.send(Job::Flush(done)).is_ok() {
            let _ = finished.await;
        }
    }

    /// Waits for the withdrawal of pending bindings whose host ports a new request for
    /// `wanted` could clash with (same protocol, overlapping explicit host ports; ephemeral
    /// requests never clash, the pending ports being still reserved).
    pub(crate) async fn wait_for(&self, wanted: &[PortBinding]) {
        let clash = {
            let pending = lock(&self.pending);
            wanted
                .iter()
                .any(|w| pending.iter().flat_map(|(_, b)| b).any(|p| overlaps(w, p)))
        };
        if clash {
            debug!("waiting for ports being unpublished");
            self.flush().await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The host ports of a binding; `None` for an ephemeral request.
fn host_ports(b: &PortBinding) -> Option<RangeInclusive<u16>> {
    (b.host_port != 0).then(|| b.host_port..=b.host_port_end.max(b.host_port))
}

/// Whether a request `w` could need a host port held by the pending binding `p`.
fn overlaps(w: &PortBinding, p: &PortBinding) -> bool {
    match (host_ports(w), host_ports(p)) {
        (Some(a), Some(b)) => w.proto == p.proto && a.start() <= b.end() && b.start() <= a.end(),
        _ => false,
    }
}

async fn work(ports: Arc<PortMapper>, mut queue: mpsc::UnboundedReceiver<Job>, pending: Pending) {
    while let Some(first) = queue.recv().await {
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut take = |job: Job, batch: &mut Vec<(u64, Vec<PortBinding>)>| match job {
            Job::Unmap(id, b) => batch.push((id, b)),
            Job::Flush(done) => flushes.push(done),
        };
        take(first, &mut batch);
        if !batch.is_empty() {
            // Collect more, unless someone is already waiting.
            let waited = tokio::time::timeout(UNPUBLISH_WINDOW, async {
                loop {
                    match queue.recv().await {
                        Some(Job::Flush(done)) => return Some(done),
                        Some(job) => take(job, &mut batch),
                        None => return None,
                    }
                }
            })
            .await;
            if let Ok(Some(done)) = waited {
                take(Job::Flush(done), &mut batch);
            }
        }
        while let Ok(job) = queue.try_recv() {
            take(job, &mut batch);
        }
        if !batch.is_empty() {
            let bindings: Vec<PortBinding> =
                batch.iter().flat_map(|(_, b)| b.iter().copied()).collect();
            match ports.unmap(&bindings).await {
                Ok(()) => debug!(bindings = bindings.len(), "ports unpublished"),
                // Nobody waits for this answer any more; see the module docs.
                Err(e) => warn!(error = %e, "ports not fully unpublished"),
            }
            let done: Vec<u64> = batch.iter().map(|(id, _)| *id).collect();
            lock(&pending).retain(|(id, _)| !done.contains(id));
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use libnetwork_types::Protocol;

    use super::*;

    fn b(proto: Protocol, host_port: u16, host_port_end: u16) -> PortBinding {
        PortBinding {
            proto,
            ip: None,
            port: 80,
            host_ip: None,
            host_port,
            host_port_end,
        }
    }

    #[test]
    fn only_explicit_overlapping_ports_of_one_protocol_clash() {
        let pending = b(Protocol::Tcp, 8000, 8009);
        assert!(overlaps(&b(Protocol::Tcp, 8005, 0), &pending));
        assert!(overlaps(&b(Protocol::Tcp, 7990, 8000), &pending));
        assert!(!overlaps(&b(Protocol::Tcp, 8010, 8020), &pending));
        assert!(!overlaps(&b(Protocol::Udp, 8005, 0), &pending));
        assert!(!overlaps(&b(Protocol::Tcp, 0, 0), &pending));
    }
}
