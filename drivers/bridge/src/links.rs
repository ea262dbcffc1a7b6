//! Host-side link requests the osl does not wrap, on a netlink socket of the driver's own:
//! putting a veth on its bridge in one request (master, MTU, hairpin, up), and deleting veths
//! in batches.
//!
//! # Batched deletion
//! Deleting a link holds the kernel's RTNL lock for one RCU synchronisation (17 to 43 ms
//! here), during which every other netlink change of the host waits, a new join included.
//! The kernel deletes all links of a *group* in one request with a single synchronisation
//! (`ip link del group N`): 20 veth pairs go in about 34 ms against 425 ms one by one. So a
//! veth to remove is *retired*: set down and moved to [`REAP_GROUP`] in one cheap request (no
//! traffic passes any more), and a background task deletes the whole group at most
//! [`REAP_WINDOW`] after the first retirement, then tells everyone waiting.

use std::time::Duration;

use libnetwork_osl::{Host, Link};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{LinkBridgePort, LinkUnspec};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, trace, warn};

use nix::libc::ENODEV;

use crate::error::{Error, Result};

/// The link group of veths waiting for deletion (`ip link show group 1819176050`). Every link
/// of this group in the driver's namespace is deleted by the reaper: it must be used by no one
/// else.
pub const REAP_GROUP: u32 = 0x6c6e_6272;

/// How long the reaper collects retired veths before deleting them in one request.
pub const REAP_WINDOW: Duration = Duration::from_millis(50);

/// The errno of a netlink error, if it carries one.
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}

/// The driver's netlink socket in the host namespace and its reaper.
#[derive(Debug, Clone)]
pub(crate) struct HostLinks {
    handle: rtnetlink::Handle,
    /// Waiters of the next batch; the reaper ends when every sender is gone.
    reaper: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl HostLinks {
    /// Opens a netlink socket from a thread inside the host namespace and starts the reaper.
    pub(crate) async fn open(host: &Host) -> Result<Self> {
        let op = "open a netlink socket for host links";
        let runtime = tokio::runtime::Handle::current();
        let opened = host
            .netns()
            .run_in(move || {
                let _entered = runtime.enter();
                rtnetlink::new_connection()
            })
            .await
            .map_err(|e| Error::kernel(op, e))?;
        let (conn, handle, _) = opened.map_err(|e| Error::Io {
            op: op.into(),
            cause: e,
        })?;
        tokio::spawn(conn);
        let (reaper, waiters) = mpsc::unbounded_channel();
        tokio::spawn(reap(handle.clone(), waiters));
        Ok(Self { handle, reaper })
    }

    /// Puts the host end of a veth on `bridge`, sets its MTU and (without the userland proxy)
    /// hairpin mode, and brings it up: `ip link set dev NAME master BRIDGE mtu MTU up` in one
    /// request, then `ip link set dev NAME type bridge_slave hairpin on`.
    pub(crate) async fn attach_port(
        &self,
        link: &Link,
        bridge: &Link,
        mtu: Option<u32>,
        hairpin: bool,
    ) -> Result<()> {
        let mut msg = LinkUnspec::new_with_index(link.index).controller(bridge.index);
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        let op = || format!("attach {} to {}", link.name, bridge.name);
        trace!(link = %link.name, bridge = %bridge.name, "netlink set master, up");
        self.handle
            .link()
            .set(msg.up().build())
            .execute()
            .await
            .map_err(|cause| Error::Link { op: op(), cause })?;
        if hairpin {
            let msg = LinkBridgePort::new(link.index).hairpin(true).build();
            self.handle
                .link()
                .set_port(msg)
                .execute()
                .await
                .map_err(|cause| Error::Link {
                    op: format!("set hairpin mode on {}", link.name),
                    cause,
                })?;
        }
        Ok(())
    }

    /// Retires a veth: down and into [`REAP_GROUP`] now (`ip link set dev NAME down group
    /// N`), deleted with the next batch. The receiver fires once it is deleted. A link already
    /// gone (its sandbox was destroyed) is fine.
    pub(crate) async fn retire(&self, link: &Link) -> Result<oneshot::Receiver<()>> {
        let msg = LinkUnspec::new_with_index(link.index)
            .down()
            .link_group(REAP_GROUP)
            .build();
        let (done, deleted) = oneshot::channel();
        match self.handle.link().set(msg).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(ENODEV) => {
                debug!(link = %link.name, "veth already gone");
                let _ = done.send(());
                return Ok(deleted);
            }
            Err(cause) => {
                return Err(Error::Link {
                    op: format!("retire {}", link.name),
                    cause,
                });
            }
        }
        if self.reaper.send(done).is_err() {
            warn!(link = %link.name, "reaper stopped, veth left for the next start");
        }
        Ok(deleted)
    }

    /// Retires a bridge like a veth ([`HostLinks::retire`]), and also renames it to
    /// `lnrm<index>` so that its name is free at once for a new network. Down, it carries no
    /// traffic and its routes are gone; it is deleted with the next batch. A bridge already
    /// gone is fine.
    pub(crate) async fn retire_bridge(&self, link: &Link) -> Result<()> {
        let deleted = self.retire(link).await?;
        let spare = format!("lnrm{}", link.index);
        let msg = LinkUnspec::new_with_index(link.index)
            .name(spare.clone())
            .build();
        match self.handle.link().set(msg).execute().await {
            Ok(()) => trace!(bridge = %link.name, %spare, "retired bridge renamed"),
            // Deleted already (by the reaper's batch, or by someone else).
            Err(e) if errno(&e) == Some(ENODEV) => {}
            Err(cause) => {
                return Err(Error::Link {
                    op: format!("rename retired bridge {}", link.name),
                    cause,
                });
            }
        }
        drop(deleted);
        Ok(())
    }

    /// Has the reaper delete what an earlier process left in the group, without waiting.
    pub(crate) fn kick(&self) {
        let (done, _) = oneshot::channel();
        let _ = self.reaper.send(done);
    }

    /// Waits until every link retired so far (and any left in the group by an earlier
    /// process) is deleted.
    pub(crate) async fn flush(&self) {
        let (done, deleted) = oneshot::channel();
        if self.reaper.send(done).is_ok() {
            let _ = deleted.await;
        }
    }
}

/// The reaper: on the first waiter, waits [`REAP_WINDOW`] for more, deletes the group in one
/// request, and answers every waiter of the batch. Ends when the driver is gone and nothing
/// is left to delete.
async fn reap(
    handle: rtnetlink::Handle,
    mut waiters: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) {
    while let Some(first) = waiters.recv().await {
        tokio::time::sleep(REAP_WINDOW).await;
        let mut batch = vec![first];
        while let Ok(more) = waiters.try_recv() {
            batch.push(more);
        }
        let mut request = handle.link().del(0);
        request
            .message_mut()
            .attributes
            .push(LinkAttribute::Group(REAP_GROUP));
        match request.execute().await {
            Ok(()) => debug!(waiters = batch.len(), "retired veths deleted"),
            // An empty group (everything went with its sandbox).
            Err(e) if errno(&e) == Some(ENODEV) => {}
            // Not returned to anyone: the callers have moved on. The links stay in the group
            // and go with the next batch or the next start.
            Err(e) => warn!(error = %e, "retired veths not deleted"),
        }
        for waiter in batch {
            let _ = waiter.send(());
        }
    }
}
