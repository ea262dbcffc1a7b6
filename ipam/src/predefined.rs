//! Predefined pools (libnetwork's `ipamutils`): the networks handed out when a pool request
//! names no pool, and Docker's `default-address-pools` configuration that replaces them.
//!
//! A list is a sequence of base networks, each split into pools of one size. The lists are not
//! materialised: the global default alone has 65 536 pools, and a configured IPv6 base may
//! split into billions. [`PredefinedPools::get`] computes the n-th pool.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::addr::{bounds, from_int, host_bits};

/// One entry of Docker's `default-address-pools`: split `base` into pools of prefix length
/// `size` (libnetwork's `NetworkToSplit`; JSON `{"base": "10.10.0.0/16", "size": 24}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkToSplit {
    /// The network to split, in CIDR notation.
    pub base: String,
    /// The prefix length of the pools.
    pub size: i32,
}

impl NetworkToSplit {
    /// Shorthand for building an entry.
    pub fn new(base: impl Into<String>, size: i32) -> Self {
        Self {
            base: base.into(),
            size,
        }
    }
}

/// One validated base: `count` pools of prefix length `size` starting at `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    base: IpNet,
    size: u8,
    count: u128,
}

impl Split {
    /// Host bits of each pool of this split.
    fn pool_host_bits(&self) -> u32 {
        u32::from(self.base.max_prefix_len() - self.size)
    }

    /// The `k`-th pool of this split (`k < count`).
    fn nth(&self, k: u128) -> IpNet {
        let (first, _) = bounds(&self.base);
        // `k << host bits` stays inside the base because `k < 2^(size - base prefix)`; when the
        // shift is the full width, `k` can only be 0.
        let offset = k.checked_shl(self.pool_host_bits()).unwrap_or(0);
        let ip = from_int(first + offset, &self.base);
        // `size` was checked against the family's maximum.
        IpNet::new(ip, self.size).expect("validated prefix length")
    }
}

/// An ordered list of predefined pools, given as bases split into equal pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredefinedPools {
    splits: Vec<Split>,
    total: u128,
}

impl PredefinedPools {
    /// Validates and builds a list, as libnetwork's `ipamutils` does: every base must be a
    /// network, and every size a prefix length between the base's (inclusive) and the family's
    /// maximum. A base given with host bits set means its network. An empty list is allowed
    /// (no pool can then be picked automatically).
    ///
    /// # Errors
    /// [`Error::InvalidBasePool`], [`Error::InvalidPoolSize`] (also when one base would split
    /// into more than 2^64 pools).
    pub fn new(list: &[NetworkToSplit]) -> Result<Self, Error> {
        let mut splits = Vec::with_capacity(list.len());
        let mut total: u128 = 0;
        for entry in list {
            let base: IpNet = entry
                .base
                .trim()
                .parse()
                .map_err(|_| Error::InvalidBasePool(entry.base.clone()))?;
            let base = base.trunc();
            let invalid_size = || Error::InvalidPoolSize {
                base: entry.base.clone(),
                size: entry.size,
            };
            let size = u8::try_from(entry.size).map_err(|_| invalid_size())?;
            if size == 0 || size < base.prefix_len() || size > base.max_prefix_len() {
                return Err(invalid_size());
            }
            let split_bits = size - base.prefix_len();
            if split_bits > 64 {
                return Err(invalid_size());
            }
            let count = 1u128 << split_bits;
            total += count;
            splits.push(Split { base, size, count });
        }
        Ok(Self { splits, total })
    }

    /// libnetwork's local-scope defaults: `172.17.0.0/16` … `172.31.0.0/16`, then
    /// `192.168.0.0/16` split into /20s (31 pools).
    pub fn local_default() -> Self {
        let list = [
            NetworkToSplit::new("172.17.0.0/16", 16),
            NetworkToSplit::new("172.18.0.0/16", 16),
            NetworkToSplit::new("172.19.0.0/16", 16),
            NetworkToSplit::new("172.20.0.0/14", 16),
            NetworkToSplit::new("172.24.0.0/14", 16),
            NetworkToSplit::new("172.28.0.0/14", 16),
            NetworkToSplit::new("192.168.0.0/16", 20),
        ];
        Self::new(&list).expect("valid built-in list")
    }

    /// libnetwork's global-scope defaults: `10.0.0.0/8` split into /24s (65 536 pools).
    pub fn global_default() -> Self {
        Self::new(&[NetworkToSplit::new("10.0.0.0/8", 24)]).expect("valid built-in list")
    }

    /// Number of pools in the list.
    pub fn len(&self) -> u128 {
        self.total
    }

    /// Whether the list has no pool.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The pool at `index`, or `None` past the end.
    pub fn get(&self, index: u128) -> Option<IpNet> {
        let (split, k, _) = self.locate(index)?;
        Some(split.nth(k))
    }

    /// Iterates the pools in order.
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.splits
            .iter()
            .flat_map(|s| (0..s.count).map(move |k| s.nth(k)))
    }

    /// The split holding `index`, the offset inside it, and the index of its first pool.
    fn locate(&self, index: u128) -> Option<(&Split, u128, u128)> {
        let mut start = 0u128;
        for split in &self.splits {
            if index < start + split.count {
                return Some((split, index - start, start));
            }
            start += split.count;
        }
        None
    }

    /// The first index in `[from, to)` whose pool is of the wanted family (`v6`) and not
    /// blocked, with its pool. `blocked` returns, for a blocked pool, the last address (as an
    /// integer) of what blocks it, so that every pool up to that address is skipped at once.
    pub(crate) fn find(
        &self,
        from: u128,
        to: u128,
        v6: bool,
        mut blocked: impl FnMut(&IpNet) -> Option<u128>,
    ) -> Option<(u128, IpNet)> {
        let mut index = from;
        while index < to {
            let (split, k, split_start) = self.locate(index)?;
            let split_end = split_start + split.count;
            if matches!(split.base, IpNet::V6(_)) != v6 {
                index = split_end;
                continue;
            }
            let pool = split.nth(k);
            match blocked(&pool) {
                None => return Some((index, pool)),
                Some(last_blocked) => {
                    // Skip to the first pool of this split that starts after `last_blocked`.
                    let (base_first, _) = bounds(&split.base);
                    let past = last_blocked
                        .saturating_sub(base_first)
                        .checked_shr(split.pool_host_bits())
                        .unwrap_or(0)
                        .saturating_add(1);
                    index = (split_start + past.max(k + 1)).min(split_end);
                }
            }
        }
        None
    }
}

/// Whether any of `nets` overlaps `pool`; if so, the largest last address among them.
pub(crate) fn last_blocking(pool: &IpNet, nets: impl IntoIterator<Item = IpNet>) -> Option<u128> {
    nets.into_iter()
        .filter(|n| crate::addr::overlaps(pool, n))
        .map(|n| bounds(&n).1)
        .max()
}

/// Whether `net` is a default route (`0.0.0.0/0`, `::/0`), which every pool would overlap.
pub(crate) fn is_default_route(net: &IpNet) -> bool {
    host_bits(net) == net.max_prefix_len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn local_defaults_are_the_31_libnetwork_pools_in_order() {
        let pools: Vec<String> = PredefinedPools::local_default()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(pools.len(), 31);
        let mut expected: Vec<String> = (17..=31).map(|b| format!("172.{b}.0.0/16")).collect();
        expected.extend((0..16).map(|i| format!("192.168.{}.0/20", i * 16)));
        assert_eq!(pools, expected);
    }

    #[test]
    fn global_defaults_are_65536_slash_24s_of_10_0_0_0_8() {
        let g = PredefinedPools::global_default();
        assert_eq!(g.len(), 65_536);
        assert_eq!(g.get(0), Some(net("10.0.0.0/24")));
        assert_eq!(g.get(1), Some(net("10.0.1.0/24")));
        assert_eq!(g.get(256), Some(net("10.1.0.0/24")));
        assert_eq!(g.get(65_535), Some(net("10.255.255.0/24")));
        assert_eq!(g.get(65_536), None);
        assert!(g.iter().all(|n| n.prefix_len() == 24));
    }

    #[test]
    fn configured_lists_split_every_base_in_order() {
        // libnetwork's TestInitAddressPools: two /16 bases split into /24s.
        let p = PredefinedPools::new(&[
            NetworkToSplit::new("172.80.0.0/16", 24),
            NetworkToSplit::new("172.90.0.0/16", 24),
        ])
        .unwrap();
        assert_eq!(p.len(), 512);
        assert_eq!(p.get(0), Some(net("172.80.0.0/24")));
        assert_eq!(p.get(127), Some(net("172.80.127.0/24")));
        assert_eq!(p.get(255), Some(net("172.80.255.0/24")));
        assert_eq!(p.get(256), Some(net("172.90.0.0/24")));
        assert_eq!(p.get(383), Some(net("172.90.127.0/24")));
        assert_eq!(p.get(511), Some(net("172.90.255.0/24")));
        // TestConfigGlobalScopeDefaultNetworks.
        let g = PredefinedPools::new(&[NetworkToSplit::new("30.0.0.0/8", 24)]).unwrap();
        assert_eq!(g.len(), 65_536);
        assert_eq!(g.get(0), Some(net("30.0.0.0/24")));
    }

    #[test]
    fn configuration_parses_from_docker_json() {
        let list: Vec<NetworkToSplit> =
            serde_json::from_str(r#"[{"base":"10.10.0.0/16","size":24}]"#).unwrap();
        assert_eq!(list, vec![NetworkToSplit::new("10.10.0.0/16", 24)]);
        let p = PredefinedPools::new(&list).unwrap();
        assert_eq!(p.get(3), Some(net("10.10.3.0/24")));
        // IPv6 bases split like IPv4 ones.
        let v6 = PredefinedPools::new(&[NetworkToSplit::new("fd00::/48", 64)]).unwrap();
        assert_eq!(v6.len(), 65_536);
        assert_eq!(v6.get(1), Some(net("fd00:0:0:1::/64")));
        assert!(PredefinedPools::new(&[]).unwrap().is_empty());
    }

    #[test]
    fn invalid_bases_and_sizes_are_rejected() {
        let err = PredefinedPools::new(&[NetworkToSplit::new("10.10.0.0", 24)]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidBasePool(ref b) if b == "10.10.0.0"),
            "{err}"
        );
        let err = PredefinedPools::new(&[NetworkToSplit::new("nonsense/8", 24)]).unwrap_err();
        assert!(matches!(err, Error::InvalidBasePool(_)), "{err}");
        for size in [0, -1, 15, 33] {
            let err =
                PredefinedPools::new(&[NetworkToSplit::new("10.10.0.0/16", size)]).unwrap_err();
            assert!(
                matches!(err, Error::InvalidPoolSize { size: s, .. } if s == size),
                "{err}"
            );
        }
        // More than 2^64 pools from one base.
        let err = PredefinedPools::new(&[NetworkToSplit::new("fd00::/8", 80)]).unwrap_err();
        assert!(matches!(err, Error::InvalidPoolSize { .. }), "{err}");
        // A size equal to the base's prefix is one pool.
        let one = PredefinedPools::new(&[NetworkToSplit::new("10.10.0.0/16", 16)]).unwrap();
        assert_eq!(one.iter().collect::<Vec<_>>(), vec![net("10.10.0.0/16")]);
    }

    #[test]
    fn find_skips_whole_blocked_ranges_and_other_families() {
        let p = PredefinedPools::new(&[
            NetworkToSplit::new("fd00::/120", 124),
            NetworkToSplit::new("10.0.0.0/8", 24),
        ])
        .unwrap();
        // A v4 search skips the 16 IPv6 pools; a /9 blocker skips its 32768 /24s in one step.
        let mut calls = 0;
        let blocker = net("10.0.0.0/9");
        let found = p.find(0, p.len(), false, |pool| {
            calls += 1;
            last_blocking(pool, [blocker])
        });
        assert_eq!(found, Some((16 + 32_768, net("10.128.0.0/24"))));
        assert_eq!(calls, 2);
        let v6 = p.find(0, p.len(), true, |_| None);
        assert_eq!(v6, Some((0, net("fd00::/124"))));
        assert_eq!(
            p.find(0, p.len(), true, |pool| last_blocking(
                pool,
                [net("fd00::/64")]
            )),
            None
        );
    }
}
