//! The stored form of the allocator's state: libnetwork's keys and JSON values.
//!
//! - Pool configuration of an address space: key `docker/network/v1.0/ipam/default/config/<AS>/`,
//!   value `{"Scope": "local", "Subnets": {"<pool id>": <pool data>, ...}}`, where pool data is
//!   `{"ParentKey": {"AddressSpace", "Subnet", "ChildSubnet"}, "Pool": "<cidr>",
//!   "Range": {"Sub", "Start", "End"}, "RefCount": n}` (`Range` only for sub-pools, whose
//!   `ParentKey` names their pool and whose `Pool` is that pool's network).
//! - One bitmap per pool: key `docker/network/v1.0/ipam/default/data/<pool id>/`, value
//!   `{"id": "<pool id>", "sequence": "<base64 of the bit sequence bytes>"}`.

use std::collections::BTreeMap;

use libnetwork_bitseq::Sequence;
use serde::{Deserialize, Serialize};

/// Key part of the configuration (libnetwork's `dsConfigKey`).
pub(crate) const CONFIG_KEY: &str = "ipam/default/config";
/// Key part of the bitmaps (libnetwork's `dsDataKey`).
pub(crate) const DATA_KEY: &str = "ipam/default/data";

/// The store key of an address space's pool configuration.
pub(crate) fn config_key(address_space: &str) -> String {
    libnetwork_datastore::key(&[CONFIG_KEY, address_space])
}

/// The store key of a pool's bitmap.
pub(crate) fn data_key(pool_id: &str) -> String {
    libnetwork_datastore::key(&[DATA_KEY, pool_id])
}

/// The prefix of every bitmap key of an address space.
pub(crate) fn data_prefix(address_space: &str) -> String {
    libnetwork_datastore::key(&[DATA_KEY, address_space])
}

/// The pool id of a bitmap key (the inverse of [`data_key`]).
pub(crate) fn pool_id_of_data_key(key: &str) -> Option<&str> {
    let prefix = libnetwork_datastore::key(&[DATA_KEY]);
    key.strip_prefix(prefix.as_str())?.strip_suffix('/')
}

/// An address space's pool configuration (libnetwork's `addrSpace` JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SpaceValue {
    #[serde(rename = "Scope")]
    pub(crate) scope: String,
    #[serde(rename = "Subnets", default)]
    pub(crate) subnets: BTreeMap<String, PoolValue>,
}

/// One pool or sub-pool (libnetwork's `PoolData` JSON). Fields are in the order Go's JSON
/// encoder writes map keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PoolValue {
    #[serde(rename = "ParentKey", default)]
    pub(crate) parent_key: KeyValue,
    #[serde(rename = "Pool", default, skip_serializing_if = "Option::is_none")]
    pub(crate) pool: Option<String>,
    #[serde(rename = "Range", default, skip_serializing_if = "Option::is_none")]
    pub(crate) range: Option<RangeValue>,
    #[serde(rename = "RefCount")]
    pub(crate) ref_count: i64,
}

/// libnetwork's `SubnetKey` JSON (all empty for a pool's own parent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyValue {
    #[serde(rename = "AddressSpace")]
    pub(crate) address_space: String,
    #[serde(rename = "Subnet")]
    pub(crate) subnet: String,
    #[serde(rename = "ChildSubnet")]
    pub(crate) child_subnet: String,
}

/// libnetwork's `AddressRange` JSON: the sub-pool and its first and last ordinals in the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RangeValue {
    #[serde(rename = "End")]
    pub(crate) end: u64,
    #[serde(rename = "Start")]
    pub(crate) start: u64,
    #[serde(rename = "Sub")]
    pub(crate) sub: String,
}

/// A pool's bitmap (libnetwork's bitseq `Handle` JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BitmapValue {
    pub(crate) id: String,
    pub(crate) sequence: Sequence,
}

/// Encodes a bitmap value without copying the sequence.
pub(crate) fn encode_bitmap(id: &str, sequence: &Sequence) -> Vec<u8> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        id: &'a str,
        sequence: &'a Sequence,
    }
    serde_json::to_vec(&Borrowed { id, sequence }).expect("a bitmap always encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_libnetwork_layout() {
        assert_eq!(
            config_key("LocalDefault"),
            "docker/network/v1.0/ipam/default/config/LocalDefault/"
        );
        let data = data_key("LocalDefault/172.17.0.0/16");
        assert_eq!(
            data,
            "docker/network/v1.0/ipam/default/data/LocalDefault/172.17.0.0/16/"
        );
        assert_eq!(
            pool_id_of_data_key(&data),
            Some("LocalDefault/172.17.0.0/16")
        );
        assert!(data.starts_with(&data_prefix("LocalDefault")));
        assert!(!data.starts_with(&data_prefix("Local")));
        assert_eq!(pool_id_of_data_key("docker/network/v1.0/other/x/"), None);
    }

    #[test]
    fn pool_data_marshals_like_libnetwork_with_and_without_range() {
        let master = PoolValue {
            parent_key: KeyValue::default(),
            pool: Some("172.28.0.0/16".into()),
            range: None,
            ref_count: 2,
        };
        let json = serde_json::to_string(&master).unwrap();
        assert_eq!(
            json,
            r#"{"ParentKey":{"AddressSpace":"","Subnet":"","ChildSubnet":""},"Pool":"172.28.0.0/16","RefCount":2}"#
        );
        assert_eq!(serde_json::from_str::<PoolValue>(&json).unwrap(), master);

        let sub = PoolValue {
            parent_key: KeyValue {
                address_space: "LocalDefault".into(),
                subnet: "172.28.0.0/16".into(),
                child_subnet: String::new(),
            },
            pool: Some("172.28.0.0/16".into()),
            range: Some(RangeValue {
                sub: "172.28.30.0/24".into(),
                start: 7680,
                end: 7935,
            }),
            ref_count: 1,
        };
        let json = serde_json::to_string(&sub).unwrap();
        assert_eq!(
            json,
            r#"{"ParentKey":{"AddressSpace":"LocalDefault","Subnet":"172.28.0.0/16","ChildSubnet":""},"Pool":"172.28.0.0/16","Range":{"End":7935,"Start":7680,"Sub":"172.28.30.0/24"},"RefCount":1}"#
        );
        assert_eq!(serde_json::from_str::<PoolValue>(&json).unwrap(), sub);
    }

    #[test]
    fn bitmap_value_is_id_and_base64_sequence() {
        let mut seq = Sequence::new(8);
        seq.set(0).unwrap();
        let bytes = encode_bitmap("LocalDefault/10.0.0.0/29", &seq);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"id":"LocalDefault/10.0.0.0/29","sequence":""#),
            "{text}"
        );
        let back: BitmapValue = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.id, "LocalDefault/10.0.0.0/29");
        assert_eq!(back.sequence, seq);
    }
}
