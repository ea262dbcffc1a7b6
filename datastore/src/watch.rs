//! Watching a key prefix: the [`Watcher`] handed out by [`crate::Store::watch`], and the
//! in-process fan-out used by the memory and redb backends.
//!
//! Each watcher owns an unbounded std channel. The in-process backends publish the events of a
//! transaction to every matching watcher right after it committed (while still holding the lock
//! that orders their commits), so a watcher sees exactly the changes committed after
//! [`crate::Store::watch`] returned, in commit order. A watcher that is not drained keeps its
//! events in memory.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Duration;

use crate::{Error, WatchEvent};

/// What travels from a backend to a watcher: an event, or the reason the watch ended.
pub(crate) type WatchItem = Result<WatchEvent, Error>;

/// The receiving end of a watch on a key prefix. Dropping it ends the subscription.
///
/// Once the watch has ended (the store was dropped, or the backend lost the watch) every
/// receive returns [`Error::WatchEnded`]; events already queued are delivered first.
pub struct Watcher {
    prefix: String,
    rx: Receiver<WatchItem>,
    /// Dropped together with the watcher; its `Drop` tells the backend to stop.
    _cancel: Box<dyn Send>,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher fed by `rx`; `cancel` is dropped when the watcher is.
    pub(crate) fn new(prefix: &str, rx: Receiver<WatchItem>, cancel: Box<dyn Send>) -> Self {
        Self {
            prefix: prefix.to_owned(),
            rx,
            _cancel: cancel,
        }
    }

    /// The prefix this watcher follows.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Blocks until the next event. Errors: [`Error::WatchEnded`].
    pub fn recv(&self) -> Result<WatchEvent, Error> {
        match self.rx.recv() {
            Ok(item) => item,
            Err(mpsc::RecvError) => Err(ended()),
        }
    }

    /// Waits at most `timeout` for the next event; `Ok(None)` when none came.
    /// Errors: [`Error::WatchEnded`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<WatchEvent>, Error> {
        match self.rx.recv_timeout(timeout) {
            Ok(item) => item.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(ended()),
        }
    }

    /// The next event if one is queued, without waiting. Errors: [`Error::WatchEnded`].
    pub fn try_recv(&self) -> Result<Option<WatchEvent>, Error> {
        match self.rx.try_recv() {
            Ok(item) => item.map(Some),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(ended()),
        }
    }
}

fn ended() -> Error {
    Error::WatchEnded("store closed".to_owned())
}

/// Sets its flag when dropped (the watcher went away).
struct Unsubscribe(Arc<AtomicBool>);

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

struct Subscriber {
    prefix: String,
    tx: Sender<WatchItem>,
    gone: Arc<AtomicBool>,
}

/// The in-process fan-out of the memory and redb backends. Callers hold it behind the lock
/// that orders their commits.
#[derive(Default)]
pub(crate) struct Hub {
    subscribers: Vec<Subscriber>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}

impl Hub {
    /// A new watcher on `prefix`.
    pub(crate) fn subscribe(&mut self, prefix: &str) -> Watcher {
        self.prune();
        let (tx, rx) = mpsc::channel();
        let gone = Arc::new(AtomicBool::new(false));
        self.subscribers.push(Subscriber {
            prefix: prefix.to_owned(),
            tx,
            gone: gone.clone(),
        });
        Watcher::new(prefix, rx, Box::new(Unsubscribe(gone)))
    }

    /// Hands `events` (of one or more committed transactions, in commit order) to every
    /// matching watcher.
    pub(crate) fn publish(&mut self, events: &[WatchEvent]) {
        self.prune();
        for sub in &self.subscribers {
            for event in events.iter().filter(|e| e.key().starts_with(&sub.prefix)) {
                // A receiver dropped since the prune: it is removed at the next prune.
                let _ = sub.tx.send(Ok(event.clone()));
            }
        }
    }

    /// How many watchers are subscribed (dropped ones not counted).
    #[cfg(test)]
    pub(crate) fn len(&mut self) -> usize {
        self.prune();
        self.subscribers.len()
    }

    fn prune(&mut self) {
        self.subscribers.retain(|s| !s.gone.load(Ordering::Acquire));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KvPair;

    fn put(key: &str, index: u64) -> WatchEvent {
        WatchEvent::Put(KvPair {
            key: key.to_owned(),
            value: b"v".to_vec(),
            index,
        })
    }

    #[test]
    fn hub_delivers_only_events_under_the_prefix() {
        let mut hub = Hub::default();
        let w = hub.subscribe("a/");
        hub.publish(&[put("a/1", 1), put("ab/2", 2), put("a/3", 3)]);
        assert_eq!(w.try_recv().unwrap(), Some(put("a/1", 1)));
        assert_eq!(w.try_recv().unwrap(), Some(put("a/3", 3)));
        assert_eq!(w.try_recv().unwrap(), None);
    }

    #[test]
    fn dropping_a_watcher_unsubscribes_it() {
        let mut hub = Hub::default();
        let w = hub.subscribe("");
        let _kept = hub.subscribe("");
        assert_eq!(hub.len(), 2);
        drop(w);
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn a_dropped_hub_ends_the_watch() {
        let mut hub = Hub::default();
        let w = hub.subscribe("");
        hub.publish(&[put("k", 1)]);
        drop(hub);
        assert_eq!(w.recv().unwrap(), put("k", 1));
        assert!(matches!(w.recv(), Err(Error::WatchEnded(_))));
    }
}
