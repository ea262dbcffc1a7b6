//! [`EtcdStore`]: the global scope over etcd's v3 API (`etcd-client`).
//!
//! libnetwork reached etcd through libkv (v2 API in its days). Here every write is one etcd
//! transaction:
//! - indexes are etcd's `mod_revision` (store-wide, like the redb backend's revisions);
//! - [`Precondition::Absent`] is the compare `create_revision == 0`, [`Precondition::Index`] is
//!   `create_revision > 0 && mod_revision == i`, and a delete always requires
//!   `create_revision > 0` (the key exists);
//! - a transaction whose compares fail reads every key it names in its `else` branch, at the
//!   same revision, and the shared precondition rules of [`crate::Store`] turn those reads into
//!   [`Error::KeyNotFound`] or [`Error::KeyModified`] for the first op that failed;
//! - [`Store::apply`] puts all of its ops' compares and writes into one transaction, so it is
//!   all-or-nothing and takes one revision;
//! - [`Store::list`] is a plain range read with the prefix, sorted by key (`get_stream`, the
//!   paginated read, is not implemented by etcd 3.4);
//! - [`Store::watch`] is an etcd watch with the prefix; it returns once etcd has confirmed that
//!   the watch exists, so every change committed afterwards is delivered.
//!
//! ## Blocking bridge
//!
//! `etcd-client` is async while [`Store`] is blocking. The store owns a small multi-threaded
//! tokio runtime on its own threads ([`RUNTIME_THREADS`]); each call spawns its request on that
//! runtime and waits for the answer on a std channel. The calling thread never enters the
//! runtime, so calling the store from inside another tokio runtime does not panic (it does block
//! that worker thread for the round trip: async callers should use `spawn_blocking`). Each
//! request gets at most [`REQUEST_TIMEOUT`]. Dropping the store shuts its runtime down in the
//! background, which ends its watches.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse, WatchOptions, WatchStream,
};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::watch::WatchItem;
use crate::{Error, KvPair, Op, Precondition, Scope, Store, WatchEvent, Watcher};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request (including connecting) may take before [`Error::Timeout`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Worker threads of the store's own runtime.
pub const RUNTIME_THREADS: usize = 2;

/// The global-scope store: a client of an etcd cluster.
pub struct EtcdStore {
    endpoints: Vec<String>,
    client: Client,
    runtime: OwnedRuntime,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// A runtime that is shut down without blocking when dropped, so that dropping the store from
/// inside another runtime does not panic.
struct OwnedRuntime(Option<Runtime>);

impl OwnedRuntime {
    fn get(&self) -> &Runtime {
        self.0.as_ref().expect("the runtime lives until drop")
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (`host:port` or `http://host:port`) and
    /// checks that it answers.
    ///
    /// Errors: [`Error::Runtime`] when the runtime cannot start, [`Error::Etcd`] or
    /// [`Error::Timeout`] when no endpoint answers.
    pub fn connect<S: AsRef<str>>(endpoints: &[S]) -> Result<Self, Error> {
        let endpoints: Vec<String> = endpoints.iter().map(|e| e.as_ref().to_owned()).collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("etcd-store")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(Arc::new(e)))?;
        let runtime = OwnedRuntime(Some(runtime));

        let context = format!("connect to etcd {}", endpoints.join(","));
        let eps = endpoints.clone();
        let client = block(&runtime, &context, {
            let context = context.clone();
            async move {
                let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
                let mut client = Client::connect(eps, Some(options))
                    .await
                    .map_err(Error::etcd(context.clone()))?;
                // Connecting is lazy: ask for the status so that a dead cluster fails here.
                let status = client.status().await.map_err(Error::etcd(context))?;
                debug!(version = status.version(), "etcd answered");
                Ok(client)
            }
        })?;
        info!(endpoints = %endpoints.join(","), "connected to global store");
        Ok(Self {
            endpoints,
            client,
            runtime,
        })
    }

    /// The endpoints this store was connected to.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Runs one request on the store's runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        context: &str,
        fut: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        block(&self.runtime, context, fut)
    }

    /// One etcd transaction for `ops` (see the module docs); returns its revision.
    fn transact(&self, ops: Vec<Op>) -> Result<u64, Error> {
        crate::validate_ops(&ops)?;
        let context = match ops.as_slice() {
            [Op::Put { key, .. }] => format!("put {key}"),
            [Op::Delete { key, .. }] => format!("delete {key}"),
            _ => format!("apply {} operations", ops.len()),
        };

        let mut compares = Vec::new();
        let mut writes = Vec::with_capacity(ops.len());
        let mut reads = Vec::with_capacity(ops.len());
        for op in &ops {
            compares.extend(compares_of(op));
            writes.push(match op {
                Op::Put { key, value, .. } => TxnOp::put(key.as_str(), value.as_slice(), None),
                Op::Delete { key, .. } => TxnOp::delete(key.as_str(), None),
            });
            reads.push(TxnOp::get(op.key(), None));
        }
        let txn = Txn::new().when(compares).and_then(writes).or_else(reads);

        let mut client = self.client.clone();
        let ctx = context.clone();
        let response = self.block(&context, async move {
            client.txn(txn).await.map_err(Error::etcd(ctx))
        })?;
        if response.succeeded() {
            return revision_of(response.header());
        }

        // The `else` branch read every key at the revision the compares saw: find the op whose
        // precondition failed and report it as the other backends would.
        for (op, read) in ops.iter().zip(response.op_responses()) {
            let TxnOpResponse::Get(read) = read else {
                return Err(Error::Unexpected(format!(
                    "{context}: failed transaction answered without reads"
                )));
            };
            let current = read
                .kvs()
                .first()
                .map(|kv| u64::try_from(kv.mod_revision()).unwrap_or(0));
            crate::check_op(op, current)?;
        }
        Err(Error::Unexpected(format!(
            "{context}: transaction failed although every precondition holds"
        )))
    }
}

/// Spawns `fut` on `runtime`, bounded by [`REQUEST_TIMEOUT`], and blocks until it is done.
fn block<T: Send + 'static>(
    runtime: &OwnedRuntime,
    context: &str,
    fut: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = mpsc::sync_channel(1);
    runtime.get().spawn(async move {
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, fut).await;
        let _ = tx.send(outcome);
    });
    match rx.recv() {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_elapsed)) => Err(Error::Timeout {
            context: context.to_owned(),
            timeout: REQUEST_TIMEOUT,
        }),
        // The task was dropped unfinished: the runtime is shutting down.
        Err(_) => Err(Error::Closed),
    }
}

/// The compares that encode `op`'s precondition.
fn compares_of(op: &Op) -> Vec<Compare> {
    let key = op.key();
    let exists = || Compare::create_revision(key, CompareOp::Greater, 0);
    let index_is = |i: u64| {
        // An index etcd cannot have (above i64::MAX) must never match.
        Compare::mod_revision(key, CompareOp::Equal, i64::try_from(i).unwrap_or(-1))
    };
    match (op, op.precondition()) {
        (Op::Put { .. }, Precondition::None) => vec![],
        (Op::Put { .. }, Precondition::Absent) => {
            vec![Compare::create_revision(key, CompareOp::Equal, 0)]
        }
        (_, Precondition::Index(i)) => vec![exists(), index_is(i)],
        (Op::Delete { .. }, Precondition::None) => vec![exists()],
        // Exists and absent at once: always fails, and the read decides which error it is.
        (Op::Delete { .. }, Precondition::Absent) => {
            vec![exists(), Compare::create_revision(key, CompareOp::Equal, 0)]
        }
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Result<u64, Error> {
    header
        .and_then(|h| u64::try_from(h.revision()).ok())
        .ok_or_else(|| Error::Unexpected("etcd answered without a revision".to_owned()))
}

fn pair_of(kv: &etcd_client::KeyValue) -> Result<KvPair, Error> {
    let key = kv
        .key_str()
        .map_err(|_| Error::Unexpected(format!("key {:?} is not utf-8", kv.key())))?;
    Ok(KvPair {
        key: key.to_owned(),
        value: kv.value().to_vec(),
        index: u64::try_from(kv.mod_revision()).unwrap_or(0),
    })
}

impl Store for EtcdStore {
    fn scope(&self) -> Scope {
        Scope::Global
    }

    fn get(&self, key: &str) -> Result<KvPair, Error> {
        let mut client = self.client.clone();
        let context = format!("get {key}");
        let k = key.to_owned();
        let ctx = context.clone();
        let response = self.block(&context, async move {
            client.get(k, None).await.map_err(Error::etcd(ctx))
        })?;
        match response.kvs().first() {
            Some(kv) => pair_of(kv),
            None => Err(Error::KeyNotFound(key.to_owned())),
        }
    }

    fn put(&self, key: &str, value: &[u8], precondition: Precondition) -> Result<u64, Error> {
        self.transact(vec![Op::Put {
            key: key.to_owned(),
            value: value.to_vec(),
            precondition,
        }])
    }

    fn delete(&self, key: &str, precondition: Precondition) -> Result<(), Error> {
        self.transact(vec![Op::Delete {
            key: key.to_owned(),
            precondition,
        }])
        .map(|_| ())
    }

    fn list(&self, prefix: &str) -> Result<Vec<KvPair>, Error> {
        let mut client = self.client.clone();
        let context = format!("list {prefix}");
        let p = prefix.to_owned();
        let ctx = context.clone();
        let response = self.block(&context, async move {
            let options = GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Key, SortOrder::Ascend);
            client.get(p, Some(options)).await.map_err(Error::etcd(ctx))
        })?;
        response.kvs().iter().map(pair_of).collect()
    }

    fn apply(&self, ops: Vec<Op>) -> Result<u64, Error> {
        self.transact(ops)
    }

    fn watch(&self, prefix: &str) -> Result<Watcher, Error> {
        let mut client = self.client.clone();
        let context = format!("watch {prefix}");
        let p = prefix.to_owned();
        let ctx = context.clone();
        let stream = self.block(&context, async move {
            let mut stream = client
                .watch(p, Some(WatchOptions::new().with_prefix()))
                .await
                .map_err(Error::etcd(ctx.clone()))?;
            // etcd confirms the watch before it sends events: from then on every commit is seen.
            match stream.message().await.map_err(Error::etcd(ctx.clone()))? {
                Some(r) if r.created() && !r.canceled() => Ok(stream),
                Some(r) => Err(Error::WatchEnded(format!(
                    "{ctx}: etcd refused the watch: {}",
                    r.cancel_reason()
                ))),
                None => Err(Error::WatchEnded(format!(
                    "{ctx}: etcd closed the watch stream"
                ))),
            }
        })?;

        let (tx, rx) = mpsc::channel();
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        self.runtime
            .get()
            .spawn(forward(stream, tx, cancel_rx, prefix.to_owned()));
        Ok(Watcher::new(prefix, rx, Box::new(cancel_tx)))
    }
}

/// Forwards etcd watch events to a [`Watcher`] until the watcher is dropped (`cancel` fires)
/// or etcd ends the watch. Dropping the stream ends the watch on the server.
async fn forward(
    mut stream: WatchStream,
    tx: Sender<WatchItem>,
    mut cancel: oneshot::Receiver<()>,
    prefix: String,
) {
    loop {
        let message = tokio::select! {
            _ = &mut cancel => {
                debug!(prefix, "watcher dropped, ending etcd watch");
                return;
            }
            message = stream.message() => message,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                let _ = tx.send(Err(Error::WatchEnded(format!(
                    "watch {prefix}: etcd closed the watch stream"
                ))));
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(Error::WatchEnded(format!("watch {prefix}: {e}"))));
                return;
            }
        };
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let item = match pair_of(kv) {
                Ok(pair) => match event.event_type() {
                    EventType::Put => WatchEvent::Put(pair),
                    EventType::Delete => WatchEvent::Delete {
                        key: pair.key,
                        index: pair.index,
                    },
                },
                Err(e) => {
                    // A key written by someone else; this crate never writes one.
                    warn!(prefix, error = %e, "skipping watch event");
                    continue;
                }
            };
            if tx.send(Ok(item)).is_err() {
                return;
            }
        }
        if response.canceled() {
            let _ = tx.send(Err(Error::WatchEnded(format!(
                "watch {prefix}: etcd cancelled the watch: {}",
                response.cancel_reason()
            ))));
            return;
        }
    }
}
