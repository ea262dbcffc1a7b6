//! Configuration, with libnetwork's defaults.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use crate::error::{Error, Result};

/// The port networkdb listens on by default (memberlist's default), for both UDP and TCP.
pub const DEFAULT_PORT: u16 = 7946;

/// Tunables of one networkdb node. [`Config::default`] gives libnetwork's values; tests shrink
/// the intervals.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node's name, the owner name of its entries (libnetwork's NodeID). `None` picks 12
    /// random hex digits, as libnetwork does, so each start is a new node.
    pub node_name: Option<String>,
    /// Starting epoch of the node's membership identity (see [`crate::Member`]). Must grow
    /// across restarts on one address; the tokio transport uses the wall clock in ms when
    /// this is 0. Default 0.
    pub epoch: u64,
    /// Largest datagram sent or accepted, in bytes, including encryption overhead. Range
    /// 512..=65_000. Default 1400 (libnetwork's PacketBufferSize; set it to the control-plane
    /// MTU minus 100).
    pub packet_size: NonZeroUsize,
    /// Largest stream message (one bulk-sync chunk or push/pull), in bytes; larger states are
    /// split. Range 4 KiB..=64 MiB. Default 1 MiB.
    pub max_stream_message: NonZeroUsize,
    /// How often queued events are gossiped. Range 1 ms..=60 s. Default 200 ms.
    pub gossip_interval: Duration,
    /// How many random nodes receive each gossip round (per network for table events, cluster
    /// wide for node and network events). Default 3.
    pub gossip_nodes: NonZeroUsize,
    /// A queued event is sent `retransmit_mult × ceil(log10(n + 1))` times, n being the number
    /// of nodes it is meant for. Default 4.
    pub retransmit_mult: NonZeroU32,
    /// How often each joined network is bulk-synced with a few random members. Range
    /// 100 ms..=1 h. Default 30 s (memberlist's PushPullInterval).
    pub bulk_sync_interval: Duration,
    /// How many random members each network is bulk-synced with per round. Default 2.
    pub bulk_sync_nodes: NonZeroUsize,
    /// How many known members a node bulk-syncs with when it joins a network (libnetwork syncs
    /// with all of them). Default 3.
    pub join_sync_nodes: NonZeroUsize,
    /// How often the node-to-network attachments are exchanged with one random node.
    /// Range 100 ms..=1 h. Default 30 s.
    pub push_pull_interval: Duration,
    /// How long a deleted entry is kept as a tombstone before it is reaped. Range
    /// 1 s..=24 h (whole seconds on the wire). Default 30 min.
    pub reap_entry_interval: Duration,
    /// How often the reaper runs. Range 100 ms..=reap_entry_interval. Default 5 s.
    pub reap_period: Duration,
    /// How long a failed or departed node is remembered. Default 24 h.
    pub node_reap_interval: Duration,
    /// How often a random failed node is contacted again. Default 1 s.
    pub reconnect_interval: Duration,
    /// Interval between failure-detection probes (SWIM). Default 1 s.
    pub probe_interval: Duration,
    /// How long a probe waits for its ack before asking others. Default 500 ms.
    pub probe_timeout: Duration,
    /// Suspicion lasts `suspicion_mult × max(1, log10(n)) × probe_interval`. Default 4.
    pub suspicion_mult: NonZeroU32,
    /// Received entries from a bulk sync are not re-gossiped while a network's queue holds
    /// more than this many events. Default 500.
    pub max_queue_len_broadcast_on_sync: usize,
    /// Encryption keys (16 or 32 bytes each); the first is the primary, used to encrypt.
    /// Empty means plain text. Default empty.
    pub keys: Vec<Vec<u8>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: None,
            epoch: 0,
            packet_size: NonZeroUsize::new(1400).expect("non-zero"),
            max_stream_message: NonZeroUsize::new(1 << 20).expect("non-zero"),
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: NonZeroUsize::new(3).expect("non-zero"),
            retransmit_mult: NonZeroU32::new(4).expect("non-zero"),
            bulk_sync_interval: Duration::from_secs(30),
            bulk_sync_nodes: NonZeroUsize::new(2).expect("non-zero"),
            join_sync_nodes: NonZeroUsize::new(3).expect("non-zero"),
            push_pull_interval: Duration::from_secs(30),
            reap_entry_interval: Duration::from_secs(30 * 60),
            reap_period: Duration::from_secs(5),
            node_reap_interval: Duration::from_secs(24 * 3600),
            reconnect_interval: Duration::from_secs(1),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            suspicion_mult: NonZeroU32::new(4).expect("non-zero"),
            max_queue_len_broadcast_on_sync: 500,
            keys: Vec::new(),
        }
    }
}

impl Config {
    /// How long a departed network attachment is kept: the entry reap interval plus five
    /// reaper periods (libnetwork's reapNetworkInterval, 30 min 25 s by default).
    pub fn reap_network_interval(&self) -> Duration {
        self.reap_entry_interval + self.reap_period * 5
    }

    /// Checks every range documented on the fields.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        fn range(name: &str, v: Duration, lo: Duration, hi: Duration) -> Result<()> {
            if v < lo || v > hi {
                return Err(Error::InvalidConfig(format!(
                    "{name} {v:?} is outside {lo:?}..={hi:?}"
                )));
            }
            Ok(())
        }
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        if !(512..=65_000).contains(&self.packet_size.get()) {
            return Err(Error::InvalidConfig(format!(
                "packet_size {} is outside 512..=65000",
                self.packet_size
            )));
        }
        if !(4096..=64 << 20).contains(&self.max_stream_message.get()) {
            return Err(Error::InvalidConfig(format!(
                "max_stream_message {} is outside 4096..=67108864",
                self.max_stream_message
            )));
        }
        range("gossip_interval", self.gossip_interval, ms(1), s(60))?;
        range(
            "bulk_sync_interval",
            self.bulk_sync_interval,
            ms(100),
            s(3600),
        )?;
        range(
            "push_pull_interval",
            self.push_pull_interval,
            ms(100),
            s(3600),
        )?;
        range(
            "reap_entry_interval",
            self.reap_entry_interval,
            s(1),
            s(24 * 3600),
        )?;
        range(
            "reap_period",
            self.reap_period,
            ms(100),
            self.reap_entry_interval,
        )?;
        range(
            "node_reap_interval",
            self.node_reap_interval,
            s(1),
            s(30 * 24 * 3600),
        )?;
        range(
            "reconnect_interval",
            self.reconnect_interval,
            ms(10),
            s(3600),
        )?;
        range("probe_interval", self.probe_interval, ms(10), s(60))?;
        range(
            "probe_timeout",
            self.probe_timeout,
            ms(1),
            self.probe_interval,
        )?;
        for key in &self.keys {
            if !matches!(key.len(), 16 | 32) {
                return Err(Error::InvalidKey(key.len()));
            }
        }
        if let Some(name) = &self.node_name
            && (name.is_empty() || name.len() > 255)
        {
            return Err(Error::InvalidConfig(
                "node_name must be 1..=255 bytes".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_libnetworks_and_valid() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(DEFAULT_PORT, 7946);
        assert_eq!(c.gossip_interval, Duration::from_millis(200));
        assert_eq!(c.gossip_nodes.get(), 3);
        assert_eq!(c.bulk_sync_interval, Duration::from_secs(30));
        assert_eq!(c.reap_entry_interval, Duration::from_secs(1800));
        assert_eq!(c.reap_network_interval(), Duration::from_secs(1825));
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let c = Config {
            packet_size: NonZeroUsize::new(100).unwrap(),
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(Error::InvalidConfig(_))));
        let c = Config {
            reap_period: Duration::from_secs(3600),
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(Error::InvalidConfig(_))));
        let c = Config {
            keys: vec![vec![0; 7]],
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(Error::InvalidKey(7))));
    }
}
