//! The iptables backend: Docker's chains in the `filter` and `nat` tables, changed with one
//! `iptables-restore --noflush` run per change (plus one `ip6tables-restore` run when IPv6 is
//! on).
//!
//! Base structure (installed by [`Iptables::new`], repaired when found out of order):
//!
//! ```text
//! filter FORWARD      -j DOCKER-USER                      always first
//!                     -j DOCKER-FORWARD                   always second
//! filter DOCKER-USER  the user's chain; created if missing, never flushed or changed
//! filter DOCKER-FORWARD -j DOCKER-ISOLATION-STAGE-1       always first, then per network
//! filter DOCKER, DOCKER-ISOLATION-STAGE-1, DOCKER-ISOLATION-STAGE-2   per network
//! nat PREROUTING      -m addrtype --dst-type LOCAL -j DOCKER
//! nat OUTPUT          ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
//! nat DOCKER          per-network RETURNs first, then one DNAT rule per port mapping
//! ```
//!
//! Every rule of a network carries the comment `lnnet,<bridge>` and every mapping rule a
//! comment encoding the mapping, so a later process finds them in `iptables-save` output.
//! Rules are deleted with `-D` and their exact specification, which `iptables-restore` applies
//! atomically with the rest of the batch; a `-D` of a rule that is gone fails the whole batch,
//! so a failed removal reads the ruleset again and retries once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use tracing::{debug, error, warn};

use crate::exec::{self, RunError};
use crate::{Error, NetworkRules, PortMapping, tag};

/// The chains of the `filter` table we create.
const FILTER_CHAINS: [&str; 5] = [
    "DOCKER-USER",
    "DOCKER-FORWARD",
    "DOCKER",
    "DOCKER-ISOLATION-STAGE-1",
    "DOCKER-ISOLATION-STAGE-2",
];

/// An iptables table we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Table {
    Filter,
    Nat,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::Nat => "nat",
        }
    }
}

/// One rule, as `-A`/`-D` take it: `<chain> <spec>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    table: Table,
    chain: String,
    spec: String,
}

impl Rule {
    fn new(table: Table, chain: &str, spec: impl Into<String>) -> Self {
        Self {
            table,
            chain: chain.to_string(),
            spec: spec.into(),
        }
    }
}

/// One line of a restore batch.
#[derive(Debug, Clone)]
enum Op {
    NewChain(Table, &'static str),
    Append(Rule),
    /// Insert at the top of the chain.
    Insert(Rule),
    Delete(Rule),
}

impl Op {
    fn table(&self) -> Table {
        match self {
            Self::NewChain(t, _) => *t,
            Self::Append(r) | Self::Insert(r) | Self::Delete(r) => r.table,
        }
    }

    fn line(&self) -> String {
        match self {
            Self::NewChain(_, chain) => format!("-N {chain}"),
            Self::Append(r) => format!("-A {} {}", r.chain, r.spec),
            Self::Insert(r) => format!("-I {} 1 {}", r.chain, r.spec),
            Self::Delete(r) => format!("-D {} {}", r.chain, r.spec),
        }
    }

    /// The operation that undoes this one (a created chain is left, empty).
    fn inverse(&self) -> Option<Self> {
        match self {
            Self::NewChain(..) => None,
            Self::Append(r) | Self::Insert(r) => Some(Self::Delete(r.clone())),
            Self::Delete(r) => Some(Self::Append(r.clone())),
        }
    }
}

/// The `iptables-save` output of one family: declared chains and rules, per table.
#[derive(Debug, Default)]
struct Saved {
    chains: HashSet<(String, String)>,
    rules: Vec<Rule>,
}

impl Saved {
    fn parse(out: &str) -> Self {
        let mut saved = Self::default();
        let mut table = None;
        for line in out.lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = match name.trim() {
                    "filter" => Some(Table::Filter),
                    "nat" => Some(Table::Nat),
                    _ => None,
                };
                continue;
            }
            let Some(t) = table else { continue };
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(chain) = decl.split_whitespace().next() {
                    saved
                        .chains
                        .insert((t.name().to_string(), chain.to_string()));
                }
            } else if let Some(rule) = line.strip_prefix("-A ")
                && let Some((chain, spec)) = rule.split_once(' ')
            {
                saved.rules.push(Rule::new(t, chain, spec));
            }
        }
        saved
    }

    fn has_chain(&self, table: Table, chain: &str) -> bool {
        self.chains
            .contains(&(table.name().to_string(), chain.to_string()))
    }

    fn chain_rules(&self, table: Table, chain: &str) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.table == table && r.chain == chain)
            .map(|r| r.spec.as_str())
            .collect()
    }
}

/// The comment of a rule specification, without quotes.
fn comment(spec: &str) -> Option<&str> {
    let (_, rest) = spec.split_once("--comment ")?;
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split_once('"').map(|(c, _)| c),
        None => rest.split_whitespace().next(),
    }
}

/// One address family: its tools and the tagged rules installed in it.
#[derive(Debug)]
struct Family {
    v6: bool,
    restore: &'static str,
    save: &'static str,
    /// Rules of each network, in the form `-D` takes.
    networks: HashMap<String, Vec<Rule>>,
    /// The DNAT rule of each installed mapping.
    mappings: HashMap<PortMapping, Rule>,
}

impl Family {
    fn new(v6: bool) -> Self {
        Self {
            v6,
            restore: if v6 {
                "ip6tables-restore"
            } else {
                "iptables-restore"
            },
            save: if v6 {
                "ip6tables-save"
            } else {
                "iptables-save"
            },
            networks: HashMap::new(),
            mappings: HashMap::new(),
        }
    }

    fn loopback(&self) -> &'static str {
        if self.v6 { "::1/128" } else { "127.0.0.0/8" }
    }

    fn read(&self) -> Result<Saved, Error> {
        let what = format!("read the ruleset with {}", self.save);
        let out = exec::run(self.save, &[], None, &what)?;
        Ok(Saved::parse(&out))
    }

    /// Replaces the model of tagged rules with what `saved` holds.
    fn load(&mut self, saved: &Saved) {
        self.networks.clear();
        self.mappings.clear();
        for rule in &saved.rules {
            let Some(c) = comment(&rule.spec) else {
                continue;
            };
            if let Some(bridge) = tag::parse_network(c) {
                self.networks
                    .entry(bridge.to_string())
                    .or_default()
                    .push(rule.clone());
            } else if let Some(m) = tag::parse_mapping(c) {
                self.mappings.insert(m, rule.clone());
            }
        }
    }

    /// What the base structure lacks in `saved`.
    fn base_ops(&self, saved: &Saved) -> Vec<Op> {
        let mut ops = Vec::new();
        for chain in FILTER_CHAINS {
            if !saved.has_chain(Table::Filter, chain) {
                ops.push(Op::NewChain(Table::Filter, chain));
            }
        }
        if !saved.has_chain(Table::Nat, "DOCKER") {
            ops.push(Op::NewChain(Table::Nat, "DOCKER"));
        }
        ensure_head(
            &mut ops,
            saved,
            Table::Filter,
            "FORWARD",
            &["-j DOCKER-USER", "-j DOCKER-FORWARD"],
        );
        ensure_head(
            &mut ops,
            saved,
            Table::Filter,
            "DOCKER-FORWARD",
            &["-j DOCKER-ISOLATION-STAGE-1"],
        );
        let hooks = [
            (
                "PREROUTING",
                "-m addrtype --dst-type LOCAL -j DOCKER".to_string(),
            ),
            (
                "OUTPUT",
                format!(
                    "! -d {} -m addrtype --dst-type LOCAL -j DOCKER",
                    self.loopback()
                ),
            ),
        ];
        for (chain, spec) in hooks {
            if !saved
                .chain_rules(Table::Nat, chain)
                .contains(&spec.as_str())
            {
                ops.push(Op::Append(Rule::new(Table::Nat, chain, spec)));
            }
        }
        ops
    }

    /// Runs one batch; an empty batch runs nothing.
    fn apply(&self, ops: &[Op], what: &str) -> Result<(), Error> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for table in [Table::Filter, Table::Nat] {
            let lines: Vec<String> = ops
                .iter()
                .filter(|op| op.table() == table)
                .map(Op::line)
                .collect();
            if lines.is_empty() {
                continue;
            }
            text.push('*');
            text.push_str(table.name());
            text.push('\n');
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
            text.push_str("COMMIT\n");
        }
        exec::run(self.restore, &["-w", "--noflush"], Some(&text), what)?;
        Ok(())
    }
}

/// Makes `want` the first rules of `chain`: when they are not, deletes every copy of them and
/// inserts them at the top.
fn ensure_head(ops: &mut Vec<Op>, saved: &Saved, table: Table, chain: &str, want: &[&str]) {
    let present = saved.chain_rules(table, chain);
    if present.len() >= want.len() && present[..want.len()] == *want {
        return;
    }
    for spec in present.iter().filter(|s| want.contains(s)) {
        ops.push(Op::Delete(Rule::new(table, chain, *spec)));
    }
    for spec in want.iter().rev() {
        ops.push(Op::Insert(Rule::new(table, chain, *spec)));
    }
}

/// The iptables backend's state.
#[derive(Debug)]
pub(crate) struct Iptables {
    families: Vec<Family>,
    /// Networks by bridge; `None` for a network found at start whose settings this process has
    /// not been told yet.
    networks: BTreeMap<String, Option<NetworkRules>>,
}

impl Iptables {
    /// Whether iptables (and ip6tables with `ipv6`) can be used: `iptables-save` runs.
    pub(crate) fn probe(ipv6: bool) -> Result<(), Error> {
        let tools: &[&str] = if ipv6 {
            &["iptables-save", "ip6tables-save"]
        } else {
            &["iptables-save"]
        };
        for tool in tools {
            exec::run(tool, &[], None, "probe iptables").map_err(|e| match e {
                RunError::Missing(msg) => Error::Unavailable(msg),
                RunError::Failed(e) => Error::Unavailable(format!("probe iptables: {e}")),
            })?;
        }
        Ok(())
    }

    /// Installs the base structure in each family and reads back what an earlier process left.
    pub(crate) fn new(ipv6: bool) -> Result<Self, Error> {
        let mut families = vec![Family::new(false)];
        if ipv6 {
            families.push(Family::new(true));
        }
        let mut ipt = Self {
            families,
            networks: BTreeMap::new(),
        };
        ipt.install_base()?;
        debug!(networks = ipt.networks.len(), "iptables state found");
        Ok(ipt)
    }

    /// Repairs the base structure of every family and reloads the tagged rules.
    fn install_base(&mut self) -> Result<(), Error> {
        for family in &mut self.families {
            let saved = family.read()?;
            let what = format!("install the base chains with {}", family.restore);
            family.apply(&family.base_ops(&saved), &what)?;
            family.load(&saved);
            for bridge in family.networks.keys() {
                self.networks.entry(bridge.clone()).or_insert(None);
            }
        }
        Ok(())
    }

    /// Reloads the tagged rules of every family from the kernel.
    fn reload(&mut self) -> Result<(), Error> {
        for family in &mut self.families {
            let saved = family.read()?;
            family.load(&saved);
        }
        Ok(())
    }

    pub(crate) fn has_network(&self, bridge: &str) -> bool {
        self.networks.contains_key(bridge)
    }

    pub(crate) fn mappings(&self) -> Vec<PortMapping> {
        self.families
            .iter()
            .flat_map(|f| f.mappings.keys().cloned())
            .collect()
    }

    /// Runs one batch per family (`ops[i]` for family `i`) as one transaction: when a later
    /// family fails, the earlier ones are undone.
    fn apply_all(&self, ops: &[Vec<Op>], what: &str) -> Result<(), Error> {
        for (i, family) in self.families.iter().enumerate() {
            if let Err(e) = family.apply(&ops[i], what) {
                for (done, family) in self.families.iter().enumerate().take(i) {
                    let undo: Vec<Op> = ops[done].iter().rev().filter_map(Op::inverse).collect();
                    if let Err(undo_err) = family.apply(&undo, &format!("undo: {what}")) {
                        error!(error = %undo_err, "undoing a partly applied firewall change failed");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    pub(crate) fn add_network(&mut self, rules: &NetworkRules) -> Result<(), Error> {
        let ops: Vec<Vec<Op>> = self
            .families
            .iter()
            .map(|f| {
                let mut ops: Vec<Op> = f
                    .networks
                    .get(&rules.bridge)
                    .into_iter()
                    .flatten()
                    .map(|r| Op::Delete(r.clone()))
                    .collect();
                ops.extend(network_ops(f.v6, rules));
                ops
            })
            .collect();
        self.apply_all(&ops, &format!("add network {}", rules.bridge))?;
        for (family, ops) in self.families.iter_mut().zip(&ops) {
            let added: Vec<Rule> = ops
                .iter()
                .filter_map(|op| match op {
                    Op::Append(r) | Op::Insert(r) => Some(r.clone()),
                    _ => None,
                })
                .collect();
            if added.is_empty() {
                family.networks.remove(&rules.bridge);
            } else {
                family.networks.insert(rules.bridge.clone(), added);
            }
        }
        self.networks
            .insert(rules.bridge.clone(), Some(rules.clone()));
        Ok(())
    }

    pub(crate) fn remove_network(&mut self, bridge: &str) -> Result<(), Error> {
        if !self.networks.contains_key(bridge) {
            return Ok(());
        }
        let what = format!("remove network {bridge}");
        let result = self.apply_all(&self.remove_network_ops(bridge), &what);
        if let Err(Error::Batch { .. }) = result {
            warn!(
                bridge,
                "removing the network failed, retrying with the current ruleset"
            );
            self.reload()?;
            self.apply_all(&self.remove_network_ops(bridge), &what)?;
        } else {
            result?;
        }
        for family in &mut self.families {
            family.networks.remove(bridge);
            family.mappings.retain(|m, _| m.bridge != bridge);
        }
        self.networks.remove(bridge);
        Ok(())
    }

    fn remove_network_ops(&self, bridge: &str) -> Vec<Vec<Op>> {
        self.families
            .iter()
            .map(|f| {
                let maps = f
                    .mappings
                    .iter()
                    .filter(|(m, _)| m.bridge == bridge)
                    .map(|(_, r)| Op::Delete(r.clone()));
                let nets = f.networks.get(bridge).into_iter().flatten();
                maps.chain(nets.map(|r| Op::Delete(r.clone()))).collect()
            })
            .collect()
    }

    pub(crate) fn add_mappings(&mut self, mappings: &[PortMapping]) -> Result<(), Error> {
        let mut seen = HashSet::new();
        let mut added: Vec<Vec<(PortMapping, Rule)>> = vec![Vec::new(); self.families.len()];
        for m in mappings {
            let i = self.family_of(m);
            if !self.families[i].mappings.contains_key(m) && seen.insert(m) {
                added[i].push((m.clone(), mapping_rule(m)));
            }
        }
        let ops: Vec<Vec<Op>> = added
            .iter()
            .map(|rules| rules.iter().map(|(_, r)| Op::Append(r.clone())).collect())
            .collect();
        let count: usize = added.iter().map(Vec::len).sum();
        self.apply_all(&ops, &format!("add {count} port mappings"))?;
        for (family, added) in self.families.iter_mut().zip(added) {
            family.mappings.extend(added);
        }
        Ok(())
    }

    pub(crate) fn remove_mappings(&mut self, mappings: &[PortMapping]) -> Result<(), Error> {
        let what = format!("remove {} port mappings", mappings.len());
        let result = self.apply_all(&self.remove_mapping_ops(mappings), &what);
        if let Err(Error::Batch { .. }) = result {
            warn!("removing port mappings failed, retrying with the current ruleset");
            self.reload()?;
            self.apply_all(&self.remove_mapping_ops(mappings), &what)?;
        } else {
            result?;
        }
        for family in &mut self.families {
            for m in mappings {
                family.mappings.remove(m);
            }
        }
        Ok(())
    }

    fn remove_mapping_ops(&self, mappings: &[PortMapping]) -> Vec<Vec<Op>> {
        let wanted: HashSet<&PortMapping> = mappings.iter().collect();
        self.families
            .iter()
            .map(|f| {
                f.mappings
                    .iter()
                    .filter(|(m, _)| wanted.contains(m))
                    .map(|(_, r)| Op::Delete(r.clone()))
                    .collect()
            })
            .collect()
    }

    /// The index of the family a mapping's rule goes to (the lib drops IPv6 mappings when
    /// IPv6 is off, so the IPv6 family exists whenever it is asked for).
    fn family_of(&self, m: &PortMapping) -> usize {
        match m.container_ip {
            IpAddr::V4(_) => 0,
            IpAddr::V6(_) => self.families.len() - 1,
        }
    }

    pub(crate) fn reapply(&mut self) -> Result<(), Error> {
        let wanted = self.mappings();
        self.install_base()?;
        let known: Vec<NetworkRules> = self.networks.values().flatten().cloned().collect();
        for rules in &known {
            self.add_network(rules)?;
        }
        let wanted: Vec<PortMapping> = wanted
            .into_iter()
            .filter(|m| self.networks.contains_key(&m.bridge))
            .collect();
        self.add_mappings(&wanted)
    }
}

/// The rules of a network in one family, in the order they are applied.
fn network_ops(v6: bool, r: &NetworkRules) -> Vec<Op> {
    let br = &r.bridge;
    let subnet = if v6 {
        match r.ipv6_subnet {
            Some(net) => net.trunc().to_string(),
            None => return Vec::new(),
        }
    } else {
        r.ipv4_subnet.trunc().to_string()
    };
    let c = format!("-m comment --comment {}", tag::network(br));
    let icc = if r.icc { "ACCEPT" } else { "DROP" };
    let filter = |chain: &str, spec: String| Op::Append(Rule::new(Table::Filter, chain, spec));
    let mut ops = Vec::new();
    if r.internal {
        // No traffic between the bridge and anything else, whatever the state.
        ops.push(filter(
            "DOCKER-ISOLATION-STAGE-1",
            format!("-i {br} ! -o {br} {c} -j DROP"),
        ));
        ops.push(filter(
            "DOCKER-ISOLATION-STAGE-1",
            format!("! -i {br} -o {br} {c} -j DROP"),
        ));
        ops.push(filter(
            "DOCKER-FORWARD",
            format!("-i {br} -o {br} {c} -j {icc}"),
        ));
        return ops;
    }
    let ct = "-m conntrack --ctstate";
    ops.push(filter(
        "DOCKER-FORWARD",
        format!("-o {br} {ct} RELATED,ESTABLISHED {c} -j ACCEPT"),
    ));
    ops.push(filter("DOCKER-FORWARD", format!("-o {br} {c} -j DOCKER")));
    ops.push(filter(
        "DOCKER-FORWARD",
        format!("-i {br} -o {br} {c} -j {icc}"),
    ));
    ops.push(filter(
        "DOCKER-FORWARD",
        format!("-i {br} ! -o {br} {c} -j ACCEPT"),
    ));
    // Into the bridge: published (DNATed) traffic only, also from the bridge itself (hairpin).
    ops.push(filter("DOCKER", format!("-o {br} {ct} DNAT {c} -j ACCEPT")));
    ops.push(filter("DOCKER", format!("! -i {br} -o {br} {c} -j DROP")));
    ops.push(filter(
        "DOCKER-ISOLATION-STAGE-1",
        format!("-i {br} ! -o {br} {c} -j DOCKER-ISOLATION-STAGE-2"),
    ));
    ops.push(filter(
        "DOCKER-ISOLATION-STAGE-2",
        format!("-o {br} {c} -j DROP"),
    ));

    let nat = |chain: &str, spec: String| Op::Insert(Rule::new(Table::Nat, chain, spec));
    if r.masquerade {
        let target = match (v6, r.snat_source) {
            (false, Some(ip)) => format!("SNAT --to-source {ip}"),
            _ => "MASQUERADE".to_string(),
        };
        ops.push(nat(
            "POSTROUTING",
            format!("-s {subnet} ! -o {br} {c} -j {target}"),
        ));
    }
    if r.hairpin {
        ops.push(nat(
            "POSTROUTING",
            format!("-s {subnet} -o {br} {ct} DNAT {c} -j MASQUERADE"),
        ));
    } else {
        // Traffic from the bridge to a published port is the userland proxy's.
        ops.push(nat("DOCKER", format!("-i {br} {c} -j RETURN")));
    }
    ops
}

/// The DNAT rule of a mapping: one rule whatever the size of the range; a shifted range uses
/// the `<first>-<last>/<base>` form (Linux 4.19, iptables 1.8).
fn mapping_rule(m: &PortMapping) -> Rule {
    let proto = m.protocol.as_str();
    let (start, end) = (*m.host_ports.start(), *m.host_ports.end());
    let mut spec = String::new();
    if let Some(host) = m.host_ip {
        let len = if host.is_ipv4() { 32 } else { 128 };
        spec.push_str(&format!("-d {host}/{len} "));
    }
    spec.push_str(&format!("-p {proto} -m {proto} --dport {start}"));
    if end != start {
        spec.push_str(&format!(":{end}"));
    }
    let cip = match m.container_ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let last = m.container_port as u32 + u32::from(end - start);
    let target = if m.container_port == start {
        cip
    } else if end == start {
        format!("{cip}:{}", m.container_port)
    } else {
        format!("{cip}:{}-{last}/{start}", m.container_port)
    };
    spec.push_str(&format!(
        " -m comment --comment {} -j DNAT --to-destination {target}",
        tag::mapping(m)
    ));
    Rule::new(Table::Nat, "DOCKER", spec)
}

#[cfg(test)]
mod tests {
    use libnetwork_types::Protocol;

    use super::*;

    #[test]
    fn comments_are_read_quoted_or_not() {
        assert_eq!(
            comment("-o br0 -m comment --comment \"lnnet,br0\" -j ACCEPT"),
            Some("lnnet,br0")
        );
        assert_eq!(comment("-m comment --comment m1 -j DNAT"), Some("m1"));
        assert_eq!(comment("-j ACCEPT"), None);
    }

    #[test]
    fn a_shifted_range_uses_the_base_port_syntax() {
        let m = PortMapping {
            protocol: Protocol::Udp,
            host_ip: Some("10.0.0.1".parse().unwrap()),
            host_ports: 8000..=8999,
            container_ip: "172.17.0.2".parse().unwrap(),
            container_port: 9000,
            bridge: "br0".into(),
        };
        let r = mapping_rule(&m);
        assert!(
            r.spec
                .starts_with("-d 10.0.0.1/32 -p udp -m udp --dport 8000:8999 "),
            "{r:?}"
        );
        assert!(
            r.spec
                .ends_with("-j DNAT --to-destination 172.17.0.2:9000-9999/8000"),
            "{r:?}"
        );
    }

    #[test]
    fn a_misplaced_head_is_deleted_and_inserted_again() {
        let saved = Saved::parse(
            "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j ACCEPT\n-A FORWARD -j DOCKER-USER\nCOMMIT\n",
        );
        let mut ops = Vec::new();
        ensure_head(
            &mut ops,
            &saved,
            Table::Filter,
            "FORWARD",
            &["-j DOCKER-USER", "-j X"],
        );
        let lines: Vec<String> = ops.iter().map(Op::line).collect();
        assert_eq!(
            lines,
            [
                "-D FORWARD -j DOCKER-USER",
                "-I FORWARD 1 -j X",
                "-I FORWARD 1 -j DOCKER-USER"
            ]
        );
    }
}
