//! The nftables backend: everything lives in our own `table inet libnetwork`.
//!
//! Structure (installed by [`Nft::new`], base chains flushed and refilled on every start):
//!
//! ```text
//! table inet libnetwork
//!   set bridges      { type ifname }            every bridge of ours (isolation)
//!   set no-hairpin   { type ifname }            bridges whose traffic is never DNATed
//!   map from-bridge  { type ifname : verdict }  bridge -> jump from-<br>
//!   map to-bridge    { type ifname : verdict }  bridge -> jump to-<br>
//!   map nat-from     { type ifname : verdict }  bridge -> jump nat-<br> (traffic leaving it)
//!   map nat-to       { type ifname : verdict }  bridge -> jump nat-<br> (traffic entering it)
//!   chain docker-user                           the user's chain; created, never flushed
//!   chain forward     filter/forward:    jump docker-user; iifname vmap @from-bridge;
//!                                        oifname vmap @to-bridge
//!   chain prerouting  nat/prerouting:    iifname != @no-hairpin fib daddr type local
//!                                        jump published
//!   chain output      nat/output:        (ip daddr != 127.0.0.0/8 | ip6 daddr != ::1)
//!                                        fib daddr type local jump published
//!   chain postrouting nat/postrouting:   iifname vmap @nat-from; oifname vmap @nat-to
//!   chain published                      one DNAT rule per port mapping, tagged by comment
//! ```
//!
//! Each network adds three regular chains and one element per set/map, all keyed by the bridge
//! name (the NAT chain is reached by output interface too: when br_netfilter bridges a hairpin
//! connection after DNAT, postrouting sees no input interface), so a network is replaced by flushing and refilling its chains and removed by deleting
//! its elements and chains: no rule handles are needed except for port mappings, whose handles
//! come back from `nft --echo --handle` (and from listing the table at start).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use serde_json::Value;
use tracing::{debug, warn};

use crate::exec::{self, RunError};
use crate::{Error, NetworkRules, PortMapping, tag};

/// The table, as nft commands name it.
const TABLE: &str = "inet libnetwork";

/// The verdict maps keyed by bridge, and the prefix of the per-network chain each jumps to.
const MAPS: [(&str, &str); 4] = [
    ("from-bridge", "from"),
    ("to-bridge", "to"),
    ("nat-from", "nat"),
    ("nat-to", "nat"),
];

/// The nftables backend's state: what is installed, as far as this process knows.
#[derive(Debug)]
pub(crate) struct Nft {
    ipv6: bool,
    /// Networks by bridge; `None` for a network found in the kernel at start whose settings this
    /// process has not been told yet.
    networks: BTreeMap<String, Option<NetworkRules>>,
    /// Installed port mappings and the handles of their rules.
    mappings: HashMap<PortMapping, u64>,
}

impl Nft {
    /// Whether nftables can be used here: `nft list tables` runs and succeeds.
    pub(crate) fn probe() -> Result<(), Error> {
        exec::run("nft", &["list", "tables"], None, "probe nftables")
            .map(drop)
            .map_err(|e| match e {
                RunError::Missing(msg) => Error::Unavailable(msg),
                RunError::Failed(e) => Error::Unavailable(format!("probe nftables: {e}")),
            })
    }

    /// Installs the base structure and reads back what an earlier process left.
    pub(crate) fn new(ipv6: bool) -> Result<Self, Error> {
        let mut nft = Self {
            ipv6,
            networks: BTreeMap::new(),
            mappings: HashMap::new(),
        };
        nft.apply(&nft.base_batch(), "install the nftables base structure")?;
        nft.load()?;
        debug!(
            networks = nft.networks.len(),
            mappings = nft.mappings.len(),
            "nftables state found"
        );
        Ok(nft)
    }

    /// Whether a network on `bridge` is installed.
    pub(crate) fn has_network(&self, bridge: &str) -> bool {
        self.networks.contains_key(bridge)
    }

    /// The installed port mappings.
    pub(crate) fn mappings(&self) -> Vec<PortMapping> {
        self.mappings.keys().cloned().collect()
    }

    /// Installs or replaces a network's chains and elements in one transaction.
    pub(crate) fn add_network(&mut self, rules: &NetworkRules) -> Result<(), Error> {
        let mut batch = Vec::new();
        network_batch(&mut batch, rules);
        self.apply(&batch.join("\n"), &format!("add network {}", rules.bridge))?;
        self.networks
            .insert(rules.bridge.clone(), Some(rules.clone()));
        Ok(())
    }

    /// Removes a network: its port mappings, elements and chains, in one transaction.
    pub(crate) fn remove_network(&mut self, bridge: &str) -> Result<(), Error> {
        if !self.networks.contains_key(bridge) {
            return Ok(());
        }
        let what = format!("remove network {bridge}");
        let result = self.apply(&self.remove_network_batch(bridge).join("\n"), &what);
        if let Err(Error::Batch { .. }) = result {
            // A mapping rule may have been deleted behind our back, which makes its handle
            // stale: read the table again and retry once.
            warn!(
                bridge,
                "removing the network failed, retrying with the current ruleset"
            );
            self.load()?;
            self.apply(&self.remove_network_batch(bridge).join("\n"), &what)?;
        } else {
            result?;
        }
        self.networks.remove(bridge);
        self.mappings.retain(|m, _| m.bridge != bridge);
        Ok(())
    }

    fn remove_network_batch(&self, bridge: &str) -> Vec<String> {
        let mut batch = Vec::new();
        for (m, handle) in &self.mappings {
            if m.bridge == bridge {
                batch.push(format!("delete rule {TABLE} published handle {handle}"));
            }
        }
        let q = quoted(bridge);
        // `add` then `delete` removes an element whether it is there or not; the chains must
        // exist for the map elements that jump to them.
        for chain in ["from", "to", "nat"] {
            batch.push(format!("add chain {TABLE} {chain}-{bridge}"));
        }
        for set in ["bridges", "no-hairpin"] {
            batch.push(format!("add element {TABLE} {set} {{ {q} }}"));
            batch.push(format!("delete element {TABLE} {set} {{ {q} }}"));
        }
        for (map, chain) in MAPS {
            batch.push(format!(
                "add element {TABLE} {map} {{ {q} : jump {chain}-{bridge} }}"
            ));
            batch.push(format!("delete element {TABLE} {map} {{ {q} }}"));
        }
        for chain in ["from", "to", "nat"] {
            batch.push(format!("flush chain {TABLE} {chain}-{bridge}"));
            batch.push(format!("delete chain {TABLE} {chain}-{bridge}"));
        }
        batch
    }

    /// Adds the DNAT rules of the mappings not installed yet, in one transaction.
    pub(crate) fn add_mappings(&mut self, mappings: &[PortMapping]) -> Result<(), Error> {
        let mut seen = HashSet::new();
        let new: Vec<&PortMapping> = mappings
            .iter()
            .filter(|m| !self.mappings.contains_key(*m) && seen.insert(*m))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let batch: Vec<String> = new.iter().map(|m| mapping_rule(m)).collect();
        let what = format!("add {} port mappings", new.len());
        let echoed = exec::run(
            "nft",
            &["--echo", "--handle", "-f", "-"],
            Some(&batch.join("\n")),
            &what,
        )?;
        let handles = echoed_handles(&echoed);
        let mut missing = false;
        for m in new {
            match handles.get(&tag::mapping(m)) {
                Some(&handle) => {
                    self.mappings.insert(m.clone(), handle);
                }
                None => missing = true,
            }
        }
        if missing {
            // The rules are in; only their handles did not come back. Read them from the table.
            debug!("nft did not echo every handle, listing the table");
            self.load()?;
        }
        Ok(())
    }

    /// Deletes the rules of the installed mappings among `mappings`, in one transaction.
    pub(crate) fn remove_mappings(&mut self, mappings: &[PortMapping]) -> Result<(), Error> {
        let what = format!("remove {} port mappings", mappings.len());
        let result = self.apply_removal(mappings, &what);
        if let Err(Error::Batch { .. }) = result {
            warn!("removing port mappings failed, retrying with the current ruleset");
            self.load()?;
            self.apply_removal(mappings, &what)?;
        } else {
            result?;
        }
        for m in mappings {
            self.mappings.remove(m);
        }
        Ok(())
    }

    fn apply_removal(&self, mappings: &[PortMapping], what: &str) -> Result<(), Error> {
        let handles: HashSet<u64> = mappings
            .iter()
            .filter_map(|m| self.mappings.get(m).copied())
            .collect();
        if handles.is_empty() {
            return Ok(());
        }
        let batch: Vec<String> = handles
            .iter()
            .map(|h| format!("delete rule {TABLE} published handle {h}"))
            .collect();
        self.apply(&batch.join("\n"), what).map(drop)
    }

    /// Installs the base structure again, then every network this process knows the settings
    /// of and every mapping that went missing.
    pub(crate) fn reapply(&mut self) -> Result<(), Error> {
        let wanted: Vec<PortMapping> = self.mappings.keys().cloned().collect();
        self.apply(&self.base_batch(), "install the nftables base structure")?;
        self.load()?;
        let mut batch = Vec::new();
        for rules in self.networks.values().flatten() {
            network_batch(&mut batch, rules);
        }
        if !batch.is_empty() {
            self.apply(&batch.join("\n"), "re-install networks")?;
        }
        let missing: Vec<PortMapping> = wanted
            .into_iter()
            .filter(|m| self.networks.contains_key(&m.bridge))
            .collect();
        self.add_mappings(&missing)
    }

    fn apply(&self, batch: &str, what: &str) -> Result<String, Error> {
        Ok(exec::run("nft", &["-f", "-"], Some(batch), what)?)
    }

    /// The base structure: sets, maps and chains are created if missing (keeping their
    /// content), the four base chains are owned by us and refilled.
    fn base_batch(&self) -> String {
        let mut b = vec![
            format!("add table {TABLE}"),
            format!("add set {TABLE} bridges {{ type ifname; }}"),
            format!("add set {TABLE} no-hairpin {{ type ifname; }}"),
        ];
        for (map, _) in MAPS {
            b.push(format!(
                "add map {TABLE} {map} {{ type ifname : verdict; }}"
            ));
        }
        b.push(format!("add chain {TABLE} docker-user"));
        b.push(format!("add chain {TABLE} published"));
        let base = [
            ("forward", "filter hook forward priority filter"),
            ("prerouting", "nat hook prerouting priority dstnat"),
            ("output", "nat hook output priority -100"),
            ("postrouting", "nat hook postrouting priority srcnat"),
        ];
        for (chain, spec) in base {
            b.push(format!(
                "add chain {TABLE} {chain} {{ type {spec}; policy accept; }}"
            ));
            b.push(format!("flush chain {TABLE} {chain}"));
        }
        let rule = |chain: &str, r: &str| format!("add rule {TABLE} {chain} {r}");
        b.push(rule("forward", "jump docker-user"));
        b.push(rule("forward", "iifname vmap @from-bridge"));
        b.push(rule("forward", "oifname vmap @to-bridge"));
        b.push(rule(
            "prerouting",
            "iifname != @no-hairpin fib daddr type local jump published",
        ));
        b.push(rule(
            "output",
            "ip daddr != 127.0.0.0/8 fib daddr type local jump published",
        ));
        if self.ipv6 {
            b.push(rule(
                "output",
                "ip6 daddr != ::1 fib daddr type local jump published",
            ));
        }
        b.push(rule("postrouting", "iifname vmap @nat-from"));
        b.push(rule("postrouting", "oifname vmap @nat-to"));
        b.join("\n")
    }

    /// Reads the table: which networks exist (elements of `from-bridge`) and which mapping
    /// rules (tagged rules of `published`, with their handles).
    fn load(&mut self) -> Result<(), Error> {
        let what = "list the nftables table";
        let out = exec::run(
            "nft",
            &["-j", "-a", "list", "table", "inet", "libnetwork"],
            None,
            what,
        )?;
        let json: Value = serde_json::from_str(&out)
            .map_err(|e| Error::Internal(format!("{what}: parse nft json: {e}")))?;
        let items = json
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Internal(format!("{what}: no nftables array in nft json")))?;
        let mut mappings = HashMap::new();
        for item in items {
            if let Some(map) = item.get("map")
                && map.get("name").and_then(Value::as_str) == Some("from-bridge")
            {
                for bridge in elements(map) {
                    self.networks.entry(bridge.to_string()).or_insert(None);
                }
            }
            if let Some(rule) = item.get("rule")
                && rule.get("chain").and_then(Value::as_str) == Some("published")
                && let Some(m) = rule
                    .get("comment")
                    .and_then(Value::as_str)
                    .and_then(tag::parse_mapping)
                && let Some(handle) = rule.get("handle").and_then(Value::as_u64)
            {
                mappings.insert(m, handle);
            }
        }
        self.mappings = mappings;
        Ok(())
    }
}

/// The keys of a set or map in nft's JSON: plain values, `[key, value]` pairs, or
/// `{"elem": {"val": key, ...}}` objects.
fn elements(set: &Value) -> Vec<&str> {
    fn key(e: &Value) -> Option<&str> {
        match e {
            Value::String(s) => Some(s.as_str()),
            Value::Array(pair) => pair.first().and_then(Value::as_str),
            Value::Object(_) => e.pointer("/elem/val").and_then(Value::as_str),
            _ => None,
        }
    }
    match set.get("elem") {
        Some(Value::Array(elems)) => elems.iter().filter_map(key).collect(),
        Some(single) => key(single).into_iter().collect(),
        None => Vec::new(),
    }
}

/// `"br0"`, quoted for nft (bridge names are validated to need no escaping).
fn quoted(bridge: &str) -> String {
    format!("\"{bridge}\"")
}

/// Appends the commands that install or replace a network.
fn network_batch(b: &mut Vec<String>, rules: &NetworkRules) {
    let br = &rules.bridge;
    let q = quoted(br);
    let from = format!("from-{br}");
    let to = format!("to-{br}");
    let nat = format!("nat-{br}");
    for chain in [&from, &to, &nat] {
        b.push(format!("add chain {TABLE} {chain}"));
        b.push(format!("flush chain {TABLE} {chain}"));
    }
    let rule = |chain: &str, r: &str| format!("add rule {TABLE} {chain} {r}");
    let icc = if rules.icc { "accept" } else { "drop" };

    // Leaving the bridge (forward, iifname == br). Every path ends in a verdict, so `to-<br>`
    // only ever sees traffic from outside our bridges.
    if rules.internal {
        b.push(rule(&from, &format!("oifname {q} {icc}")));
        b.push(rule(&from, "drop"));
    } else {
        if !rules.icc {
            // Published ports stay reachable through the host address (hairpin).
            b.push(rule(&from, &format!("oifname {q} ct status dnat accept")));
        }
        b.push(rule(&from, &format!("oifname {q} {icc}")));
        b.push(rule(&from, "oifname @bridges drop"));
        b.push(rule(&from, "accept"));
    }

    // Entering the bridge from outside our bridges (forward, oifname == br).
    if !rules.internal {
        b.push(rule(&to, "ct state established,related accept"));
        b.push(rule(&to, "ct status dnat accept"));
    }
    b.push(rule(&to, "drop"));

    // Source NAT (postrouting, iifname or oifname == br).
    if !rules.internal {
        if rules.hairpin {
            // A container reaching a published port of its own network through a host address:
            // masquerade, so that the answer comes back through the host and is un-NATed.
            let v4 = rules.ipv4_subnet.trunc();
            b.push(rule(
                &nat,
                &format!("ip saddr {v4} oifname {q} ct status dnat masquerade"),
            ));
            if let Some(v6) = rules.ipv6_subnet {
                let v6 = v6.trunc();
                b.push(rule(
                    &nat,
                    &format!("ip6 saddr {v6} oifname {q} ct status dnat masquerade"),
                ));
            }
        }
        if rules.masquerade {
            let v4 = rules.ipv4_subnet.trunc();
            let target = rules
                .snat_source
                .map_or_else(|| "masquerade".to_string(), |ip| format!("snat ip to {ip}"));
            b.push(rule(
                &nat,
                &format!("ip saddr {v4} oifname != {q} {target}"),
            ));
            if let Some(v6) = rules.ipv6_subnet {
                let v6 = v6.trunc();
                b.push(rule(
                    &nat,
                    &format!("ip6 saddr {v6} oifname != {q} masquerade"),
                ));
            }
        }
    }

    b.push(format!("add element {TABLE} bridges {{ {q} }}"));
    b.push(format!(
        "add element {TABLE} from-bridge {{ {q} : jump {from} }}"
    ));
    b.push(format!(
        "add element {TABLE} to-bridge {{ {q} : jump {to} }}"
    ));
    b.push(format!(
        "add element {TABLE} nat-from {{ {q} : jump {nat} }}"
    ));
    b.push(format!("add element {TABLE} nat-to {{ {q} : jump {nat} }}"));
    b.push(format!("add element {TABLE} no-hairpin {{ {q} }}"));
    if rules.hairpin {
        b.push(format!("delete element {TABLE} no-hairpin {{ {q} }}"));
    }
}

/// The `add rule` command of a port mapping: one rule whatever the size of the range.
fn mapping_rule(m: &PortMapping) -> String {
    let (nfproto, family, daddr) = match m.container_ip {
        IpAddr::V4(_) => ("ipv4", "ip", "ip daddr"),
        IpAddr::V6(_) => ("ipv6", "ip6", "ip6 daddr"),
    };
    let mut r = format!("add rule {TABLE} published meta nfproto {nfproto}");
    if let Some(host) = m.host_ip {
        r.push_str(&format!(" {daddr} {host}"));
    }
    let (start, end) = (*m.host_ports.start(), *m.host_ports.end());
    r.push_str(&format!(" meta l4proto {} th dport {start}", m.protocol));
    if end != start {
        r.push_str(&format!("-{end}"));
    }
    let cip = m.container_ip;
    if m.container_port == start {
        // The port is kept: one address for the whole range.
        r.push_str(&format!(" dnat {family} to {cip}"));
    } else if end == start {
        let addr = match cip {
            IpAddr::V4(ip) => format!("{ip}:{}", m.container_port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", m.container_port),
        };
        r.push_str(&format!(" dnat {family} to {addr}"));
    } else {
        // nft 1.0 has no shifted port ranges: an anonymous map, one element per port, still in
        // one rule.
        let elems: Vec<String> = (start..=end)
            .zip(m.container_port..)
            .map(|(host, container)| format!("{host} : {cip} . {container}"))
            .collect();
        r.push_str(&format!(
            " dnat {family} to th dport map {{ {} }}",
            elems.join(", ")
        ));
    }
    r.push_str(&format!(" comment \"{}\"", tag::mapping(m)));
    r
}

/// The handles `nft --echo --handle` printed for tagged rules, by tag.
fn echoed_handles(out: &str) -> HashMap<String, u64> {
    let mut handles = HashMap::new();
    for line in out.lines() {
        let Some((rule, handle)) = line.rsplit_once("# handle ") else {
            continue;
        };
        let Some((_, after)) = rule.split_once("comment \"") else {
            continue;
        };
        let Some((comment, _)) = after.split_once('"') else {
            continue;
        };
        if let Ok(handle) = handle.trim().parse() {
            handles.insert(comment.to_string(), handle);
        }
    }
    handles
}

#[cfg(test)]
mod tests {
    use libnetwork_types::Protocol;

    use super::*;

    fn mapping(ports: std::ops::RangeInclusive<u16>, container_port: u16) -> PortMapping {
        PortMapping {
            protocol: Protocol::Tcp,
            host_ip: None,
            host_ports: ports,
            container_ip: "172.17.0.2".parse().unwrap(),
            container_port,
            bridge: "br0".into(),
        }
    }

    #[test]
    fn a_range_with_the_same_ports_is_one_rule_without_a_map() {
        let r = mapping_rule(&mapping(8000..=17999, 8000));
        assert!(
            r.contains("th dport 8000-17999 dnat ip to 172.17.0.2 comment"),
            "{r}"
        );
    }

    #[test]
    fn a_shifted_range_is_one_rule_with_a_map() {
        let r = mapping_rule(&mapping(8000..=8002, 9000));
        assert!(
            r.contains(
                "dnat ip to th dport map { 8000 : 172.17.0.2 . 9000, 8001 : 172.17.0.2 . 9001, \
                 8002 : 172.17.0.2 . 9002 }"
            ),
            "{r}"
        );
        assert_eq!(r.lines().count(), 1);
    }

    #[test]
    fn echoed_handles_are_found_by_comment() {
        let out = "add rule inet libnetwork published handle 24 udp dport 53 dnat ip to \
                   172.17.0.3 comment \"a\" # handle 25\n\
                   add rule inet libnetwork published udp dport 54 comment \"b\" # handle 26\n\
                   # new generation 4 by process 10187 (nft)\n";
        let h = echoed_handles(out);
        assert_eq!(h.get("a"), Some(&25));
        assert_eq!(h.get("b"), Some(&26));
        assert_eq!(h.len(), 2);
    }
}
