//! Discovery notifications (libnetwork's `discoverapi`), shared by IPAM and network drivers.
//!
//! libnetwork passes a `DiscoveryType` number with an untyped payload; here the type and its
//! payload are one enum, [`DiscoveryData`]. The numbers are kept in
//! [`DiscoveryData::discovery_type`] for plugins that speak libnetwork's JSON.

/// A discovery notification with its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryData {
    /// A node joined or left the cluster (`NodeDiscovery`, 1).
    NodeDiscovery(NodeDiscoveryData),
    /// A datastore was configured or removed (`DatastoreConfig`, 2).
    DatastoreConfig(DatastoreConfigData),
    /// The initial set of encryption keys (`EncryptionKeysConfig`, 3).
    EncryptionKeysConfig(DriverEncryptionConfig),
    /// A change to the encryption keys (`EncryptionKeysUpdate`, 4).
    EncryptionKeysUpdate(DriverEncryptionUpdate),
}

impl DiscoveryData {
    /// libnetwork's `DiscoveryType` number of this notification.
    pub fn discovery_type(&self) -> u8 {
        match self {
            Self::NodeDiscovery(_) => 1,
            Self::DatastoreConfig(_) => 2,
            Self::EncryptionKeysConfig(_) => 3,
            Self::EncryptionKeysUpdate(_) => 4,
        }
    }
}

/// A cluster node (`NodeDiscoveryData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDiscoveryData {
    /// The node's advertised address.
    pub address: String,
    /// The address the node binds to.
    pub bind_address: String,
    /// Whether the node is this host.
    pub self_node: bool,
}

/// A datastore's configuration (`DatastoreConfigData`, without libkv's untyped `Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreConfigData {
    /// `local` or `global`.
    pub scope: String,
    /// The backend (`redb`, `etcd`, ...).
    pub provider: String,
    /// Where the backend is.
    pub address: String,
}

/// The encryption keys a driver starts with (`DriverEncryptionConfig`). Index 0 of both lists
/// is the primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverEncryptionConfig {
    /// The keys.
    pub keys: Vec<Vec<u8>>,
    /// Their Lamport tags.
    pub tags: Vec<u64>,
}

/// A change of the encryption keys (`DriverEncryptionUpdate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverEncryptionUpdate {
    /// A key to add.
    pub key: Vec<u8>,
    /// Its tag.
    pub tag: u64,
    /// The key to make primary.
    pub primary: Vec<u8>,
    /// Its tag.
    pub primary_tag: u64,
    /// A key to remove.
    pub prune: Vec<u8>,
    /// Its tag.
    pub prune_tag: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_types_keep_libnetwork_numbers() {
        let node = DiscoveryData::NodeDiscovery(NodeDiscoveryData {
            address: "a".into(),
            bind_address: "b".into(),
            self_node: false,
        });
        let ds = DiscoveryData::DatastoreConfig(DatastoreConfigData {
            scope: "global".into(),
            provider: "etcd".into(),
            address: "127.0.0.1:2379".into(),
        });
        let keys = DiscoveryData::EncryptionKeysConfig(DriverEncryptionConfig {
            keys: vec![vec![1]],
            tags: vec![1],
        });
        let update = DiscoveryData::EncryptionKeysUpdate(DriverEncryptionUpdate {
            key: vec![2],
            tag: 2,
            primary: vec![2],
            primary_tag: 2,
            prune: vec![1],
            prune_tag: 1,
        });
        let types: Vec<u8> = [node, ds, keys, update]
            .iter()
            .map(DiscoveryData::discovery_type)
            .collect();
        assert_eq!(types, vec![1, 2, 3, 4]);
    }
}
