//! A netlink route socket bound to one network namespace, and the request plumbing the
//! per-family modules (`link`, `addr`, `route`, `neigh`) build on.
//!
//! A netlink socket stays in the namespace it was created in, whatever thread later uses it. So
//! a handle for another namespace is opened once, from a short-lived thread that joined that
//! namespace (with the runtime entered, because the socket registers with tokio's reactor when
//! it is created), and then used from any task: no namespace switch per request.

use std::fmt;
use std::io;
use std::sync::Arc;

use futures::StreamExt;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tracing::trace;

use crate::error::{Error, Result};
use crate::netns::Netns;

/// Flags of a request that creates an object and fails if it exists (`ip ... add`).
pub(crate) const CREATE_EXCL: u16 = NLM_F_CREATE | NLM_F_EXCL;
/// Flags of a request that creates or replaces an object (`ip ... replace`).
pub(crate) const CREATE_REPLACE: u16 = NLM_F_CREATE | NLM_F_REPLACE;

/// A netlink route handle for one network namespace: the "host" handle drivers use for their
/// own namespace, and each sandbox's handle for its namespace.
///
/// Cheap to clone; clones share one socket. The socket's task ends when the last clone is
/// dropped. Every method is named and documented after the `ip` command it matches.
#[derive(Clone)]
pub struct NetlinkHandle {
    inner: rtnetlink::Handle,
    /// The kernel runs one dump per socket at a time (a second one gets `EBUSY`), so dumps
    /// from concurrent tasks take turns.
    dump_lock: Arc<tokio::sync::Mutex<()>>,
    /// How errors name the namespace: `host` or `sandbox <key>`.
    label: Arc<str>,
}

impl fmt::Debug for NetlinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetlinkHandle")
            .field("namespace", &self.label)
            .finish_non_exhaustive()
    }
}

impl NetlinkHandle {
    /// Opens a handle on the namespace of the thread that runs this call. In a tokio runtime
    /// every worker is in the namespace of the thread that built the runtime (threads inherit
    /// it), unless someone called `setns` on a worker, which this crate never does.
    ///
    /// # Errors
    /// [`Error::Os`] when the socket cannot be opened.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn current() -> Result<Self> {
        let (conn, inner, _) =
            rtnetlink::new_connection().map_err(|e| Error::os("open netlink socket", e))?;
        tokio::spawn(conn);
        Ok(Self {
            inner,
            dump_lock: Arc::default(),
            label: "host".into(),
        })
    }

    /// Opens a handle on the namespace `netns`, from a thread that joins it for the purpose.
    /// `label` names the namespace in error messages.
    ///
    /// # Errors
    /// [`Error::Os`] when the thread cannot join the namespace or the socket cannot be opened.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn open(netns: &Netns, label: impl Into<Arc<str>>) -> Result<Self> {
        let runtime = tokio::runtime::Handle::current();
        let opened = netns
            .run_in(move || {
                let _entered = runtime.enter();
                rtnetlink::new_connection()
            })
            .await?;
        let label = label.into();
        let (conn, inner, _) =
            opened.map_err(|e| Error::os(format!("open netlink socket in {label}"), e))?;
        tokio::spawn(conn);
        Ok(Self {
            inner,
            dump_lock: Arc::default(),
            label,
        })
    }

    /// Opens a handle on the namespace of the calling thread, without waiting: for a thread
    /// that visits several namespaces in turn (see [`crate::Host::open_sandboxes`]). The
    /// thread must have entered the tokio runtime (`Handle::enter`), with which the socket
    /// registers and on which its connection task is spawned.
    pub(crate) fn open_on_this_thread(label: Arc<str>) -> Result<Self> {
        let (conn, inner, _) = rtnetlink::new_connection()
            .map_err(|e| Error::os(format!("open netlink socket in {label}"), e))?;
        tokio::spawn(conn);
        Ok(Self {
            inner,
            dump_lock: Arc::default(),
            label,
        })
    }

    /// The same socket, named `label` in errors and logs (a spare namespace's handle once the
    /// namespace is bound to a sandbox key).
    pub(crate) fn relabeled(self, label: Arc<str>) -> Self {
        Self { label, ..self }
    }

    /// How errors name this handle's namespace (`host`, `sandbox <key>`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Sends a request that expects only an acknowledgement.
    pub(crate) async fn ack(&self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        trace!(namespace = %self.label, request = ?req.payload, "netlink request");
        let mut responses = self.inner.clone().request(req).map_err(closed)?;
        while let Some(msg) = responses.next().await {
            if let NetlinkPayload::Error(err) = msg.payload
                && err.code.is_some()
            {
                return Err(err.to_io());
            }
        }
        Ok(())
    }

    /// Sends a request answered by one message (a `get` of one object).
    pub(crate) async fn get(&self, msg: RouteNetlinkMessage) -> io::Result<RouteNetlinkMessage> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST;
        trace!(namespace = %self.label, request = ?req.payload, "netlink get");
        let mut responses = self.inner.clone().request(req).map_err(closed)?;
        let mut answer = None;
        while let Some(msg) = responses.next().await {
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => answer = Some(m),
                NetlinkPayload::Error(err) if err.code.is_some() => return Err(err.to_io()),
                _ => {}
            }
        }
        answer.ok_or_else(|| io::Error::other("netlink answered without a message"))
    }

    /// Sends a dump request and collects every answer.
    pub(crate) async fn dump(
        &self,
        msg: RouteNetlinkMessage,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let _turn = self.dump_lock.lock().await;
        trace!(namespace = %self.label, request = ?req.payload, "netlink dump");
        let mut responses = self.inner.clone().request(req).map_err(closed)?;
        let mut out = Vec::new();
        while let Some(msg) = responses.next().await {
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(err) if err.code.is_some() => return Err(err.to_io()),
                _ => {}
            }
        }
        Ok(out)
    }

    /// An error naming this handle's namespace: `{what} in {namespace}: {source}`.
    pub(crate) fn err(&self, what: impl fmt::Display, source: io::Error) -> Error {
        Error::netlink(format!("{what} in {}", self.label), source)
    }

    /// A not-found error naming this handle's namespace.
    pub(crate) fn not_found(&self, what: impl fmt::Display, object: impl Into<String>) -> Error {
        Error::NotFound {
            op: format!("{what} in {}", self.label),
            what: object.into(),
        }
    }
}

/// The error for a request the connection could not take (its task has ended).
fn closed(_: rtnetlink::Error) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "netlink connection closed")
}
