//! The identity foca (SWIM) knows a node by.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A node's identity in the membership layer: its name (the owner name of its table entries),
/// its address and an epoch.
///
/// The epoch makes a restarted or renewed node a new identity: when foca learns that the
/// cluster declared this node down, it renews the identity (epoch + 1) and rejoins at once.
/// Of two identities on one address, the one with the larger epoch (then the larger name)
/// wins, so a restarted process must start from a larger epoch than its predecessor; the
/// tokio transport uses the wall clock in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    /// The node's name (libnetwork's NodeID).
    pub name: String,
    /// Where the node receives packets and streams.
    pub addr: SocketAddr,
    /// Grows each time the node renews its identity.
    pub epoch: u64,
}

impl foca::Identity for Member {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            name: self.name.clone(),
            addr: self.addr,
            epoch: self.epoch.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.epoch, &self.name) > (adversary.epoch, &adversary.name)
    }
}

#[cfg(test)]
mod tests {
    use foca::Identity;

    use super::*;

    fn member(name: &str, epoch: u64) -> Member {
        Member {
            name: name.into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            epoch,
        }
    }

    #[test]
    fn a_renewed_identity_keeps_its_name_and_wins_over_the_old_one() {
        let old = member("a", 4);
        let new = old.renew().unwrap();
        assert_eq!(new.name, "a");
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn a_restart_with_a_larger_epoch_wins_the_address() {
        assert!(member("new", 9).win_addr_conflict(&member("old", 3)));
    }
}
