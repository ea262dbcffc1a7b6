//! Transmit-limited broadcast queues (memberlist's `TransmitLimitedQueue`).
//!
//! Each queued message is handed out at most `limit` times, least-sent first and newest first
//! among equals, so fresh news spreads before old news is repeated. Queuing a message under a
//! key already present replaces the older message (a newer event for the same entry or
//! attachment makes the older one pointless).

use std::collections::{BTreeMap, HashMap};

use crate::wire::compound_cost;

/// What makes two queued messages about the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum QueueKey {
    /// A table event for one entry.
    Table { table: String, key: String },
    /// A network event for one attachment.
    Network { network: String, node: String },
    /// A message that never replaces another (node events).
    Unique(u64),
}

#[derive(Debug)]
struct Item {
    key: QueueKey,
    msg: Vec<u8>,
}

/// A transmit-limited queue of encoded messages.
#[derive(Debug, Default)]
pub(crate) struct BroadcastQueue {
    next_id: u64,
    // (transmits, u64::MAX - id): iteration order is least sent, then newest.
    items: BTreeMap<(u32, u64), Item>,
    by_key: HashMap<QueueKey, (u32, u64)>,
}

/// How many items are looked at past the first one that did not fit a packet.
const MAX_SKIPS: usize = 32;

impl BroadcastQueue {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A key no other message will share.
    pub(crate) fn unique_key(&mut self) -> QueueKey {
        self.next_id += 1;
        QueueKey::Unique(self.next_id)
    }

    /// Queues `msg`, replacing any message queued under the same key.
    pub(crate) fn push(&mut self, key: QueueKey, msg: Vec<u8>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.items.remove(&old);
        }
        self.next_id += 1;
        let slot = (0, u64::MAX - self.next_id);
        self.by_key.insert(key.clone(), slot);
        self.items.insert(slot, Item { key, msg });
    }

    /// Takes messages whose [`compound_cost`]s fit in `budget` bytes, counting one transmit
    /// for each and dropping those sent `limit` times. A message too large for an empty
    /// packet is returned in the second list (to go over a stream) and counts as sent too.
    pub(crate) fn take(&mut self, budget: usize, limit: u32) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut room = budget;
        let mut picked = Vec::new();
        let mut oversized = Vec::new();
        let mut skips = 0;
        for (slot, item) in &self.items {
            let cost = compound_cost(item.msg.len());
            if cost > budget {
                if oversized.is_empty() && picked.is_empty() {
                    oversized.push(*slot);
                }
                continue;
            }
            if cost <= room {
                room -= cost;
                picked.push(*slot);
            } else {
                skips += 1;
                if skips > MAX_SKIPS {
                    break;
                }
            }
            if room < 16 {
                break;
            }
        }
        let mut send = |slots: Vec<(u32, u64)>| -> Vec<Vec<u8>> {
            let mut out = Vec::with_capacity(slots.len());
            for slot in slots {
                let Some(item) = self.items.remove(&slot) else {
                    continue;
                };
                let sent = slot.0 + 1;
                if sent >= limit {
                    self.by_key.remove(&item.key);
                    out.push(item.msg);
                } else {
                    let next = (sent, slot.1);
                    out.push(item.msg.clone());
                    self.by_key.insert(item.key.clone(), next);
                    self.items.insert(next, item);
                }
            }
            out
        };
        let picked = send(picked);
        let oversized = send(oversized);
        (picked, oversized)
    }
}

/// memberlist's retransmit limit: `mult × ceil(log10(n + 1))`, at least 1.
pub(crate) fn retransmit_limit(mult: u32, n: usize) -> u32 {
    // ceil(log10(n + 1)) is the number of decimal digits of n (0 for n == 0).
    let mut digits = 0u32;
    let mut rest = n;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    mult.saturating_mul(digits).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> QueueKey {
        QueueKey::Table {
            table: "t".into(),
            key: k.into(),
        }
    }

    #[test]
    fn a_newer_message_for_the_same_key_replaces_the_older_one() {
        let mut q = BroadcastQueue::default();
        q.push(key("a"), b"old".to_vec());
        q.push(key("a"), b"new".to_vec());
        assert_eq!(q.len(), 1);
        let (msgs, _) = q.take(1000, 10);
        assert_eq!(msgs, vec![b"new".to_vec()]);
    }

    #[test]
    fn messages_are_dropped_after_their_transmit_limit() {
        let mut q = BroadcastQueue::default();
        q.push(key("a"), b"x".to_vec());
        for _ in 0..3 {
            assert_eq!(q.take(1000, 3).0.len(), 1);
        }
        assert!(q.is_empty());
        assert!(q.take(1000, 3).0.is_empty());
    }

    #[test]
    fn least_sent_messages_go_first_and_a_packet_is_never_overfilled() {
        let mut q = BroadcastQueue::default();
        q.push(key("a"), vec![1; 50]);
        let _ = q.take(1000, 10);
        q.push(key("b"), vec![2; 50]);
        let budget = compound_cost(50);
        let (msgs, _) = q.take(budget, 10);
        assert_eq!(msgs, vec![vec![2; 50]]);
        let (msgs, _) = q.take(budget, 10);
        assert_eq!(msgs.len(), 1);
    }

    #[test]
    fn a_message_larger_than_a_packet_is_handed_out_for_a_stream() {
        let mut q = BroadcastQueue::default();
        q.push(key("big"), vec![0; 5000]);
        let (msgs, big) = q.take(1000, 1);
        assert!(msgs.is_empty());
        assert_eq!(big.len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn retransmit_limit_grows_with_the_log_of_the_cluster() {
        assert_eq!(retransmit_limit(4, 0), 1);
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
        assert_eq!(retransmit_limit(4, 1000), 16);
    }
}
