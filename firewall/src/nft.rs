//! The nftables backend: everything lives in our own `table inet libnetwork`.
//!
//! Every rule is fixed and installed by [`Nft::new`] (and [`Nft::reapply`]) with one
//! `nft -f -` run, which [`Nft::new`] skips when the table already holds exactly those rules:
//! the first one carries a digest of the whole base batch in its comment, and the rules of our
//! chains are counted (a dump over netlink). What belongs to a network or a port mapping is an
//! *element* of a set or map that those rules consult, so adding or removing a network or a
//! mapping is one nftables netlink transaction of element additions and deletions (`nftnl`),
//! without a process:
//!
//! ```text
//! table inet libnetwork
//!   set bridges    { type ifname }                  every bridge of ours
//!   set same       { type ifname . ifname }         "br" . "br" for every bridge
//!   set no-icc     { type ifname }                  bridges with icc off
//!   set internal   { type ifname }                  internal networks
//!   set no-hairpin { type ifname }                  bridges whose traffic is never DNATed
//!   set masq       { type ifname }                  bridges with masquerade on (not internal)
//!   map snat4      { type ifname : ipv4_addr }      bridge : snat source
//!   set nets4      { type ipv4_addr . ifname; flags interval }  subnet . bridge of networks
//!   set nets6      { type ipv6_addr . ifname; flags interval }  with masquerade or hairpin
//!   map pub4       { type inet_proto . inet_service : ipv4_addr; flags interval }
//!   map pub4-host  { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval }
//!   map pub4-port  { type inet_proto . inet_service : ipv4_addr . inet_service }
//!   map pub4-host-port { type ipv4_addr . inet_proto . inet_service
//!                        : ipv4_addr . inet_service }
//!   map pub6, pub6-host, pub6-port, pub6-host-port     the same for IPv6
//!   chain docker-user                                  the user's chain; created, never flushed
//!   chain forward     filter/forward:
//!       jump docker-user
//!       iifname . oifname @same iifname != @no-icc accept
//!       iifname . oifname @same iifname != @internal ct status dnat accept
//!       iifname . oifname @same drop
//!       iifname @bridges oifname @bridges drop
//!       iifname @internal drop
//!       oifname @internal drop
//!       iifname @bridges accept
//!       oifname @bridges ct state established,related accept
//!       oifname @bridges ct status dnat accept
//!       oifname @bridges drop
//!   chain prerouting  nat/prerouting:   iifname != @no-hairpin fib daddr type local
//!                                       jump published
//!   chain output      nat/output:       (ip daddr != 127.0.0.0/8 | ip6 daddr != ::1)
//!                                       fib daddr type local jump published
//!   chain postrouting nat/postrouting:
//!       ip saddr . oifname @nets4 oifname != @no-hairpin ct status dnat masquerade  (and ip6)
//!       iifname . oifname @same return
//!       ip saddr . iifname @nets4 snat ip to iifname map @snat4
//!       ip saddr . iifname @nets4 iifname @masq masquerade                           (and ip6)
//!   chain published
//!       meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport
//!           map @pub4-host-port
//!       dnat ip to ip daddr . meta l4proto . th dport map @pub4-host
//!       meta nfproto ipv4 meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport
//!           map @pub4-port
//!       meta nfproto ipv4 dnat ip to meta l4proto . th dport map @pub4
//!       (and the same four for IPv6)
//! ```
//!
//! IPv6 rules are only installed with IPv6 on; the IPv6 sets always exist.
//!
//! Sets keyed by names, and maps of single ports, are hash tables: changing an element costs a
//! few microseconds. Interval sets with concatenated keys (nftables' pipapo backend) cost tens
//! of microseconds to add to and one to three hundred to delete from, so they hold only what
//! needs ranges: each network's subnets (`nets4`, `nets6`, one element each) and port ranges.
//!
//! A port range whose container ports are the host ports is one interval element
//! (`tcp . 8000-8999 : 172.17.0.2`); a single port, or a range whose container ports are
//! shifted (nftables has no shifted ranges), is one element per port in a `-port` map
//! (`tcp . 8080 : 172.17.0.2 . 80`). Host-specific maps are consulted first, and single ports
//! before ranges, so where mappings overlap the more specific one wins whatever the order they
//! were added in. Two ranges of the same kind over the same port (same map) cannot both be
//! elements: the kernel refuses the second (`EEXIST`), which the port allocator never lets
//! happen.
//!
//! Every element carries a comment tag (`tag`): the mapping for mapping elements, the whole
//! network settings for network elements. [`Nft::new`] reads the elements back over netlink,
//! with their tags, so a restarted process knows the networks and mappings of an earlier one well
//! enough to remove (and re-apply) them. Removal deletes elements whether they are still there
//! or not (add, then delete, in the same transaction: deleting an element that is already gone
//! would fail the whole transaction), so elements deleted behind our back do not make it fail;
//! re-adding a network deletes its old elements and adds the new ones in one transaction.
//!
//! The netlink socket is opened by [`Nft::new`], in the network namespace of the calling thread;
//! later changes apply there whatever thread makes them.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use tracing::{debug, warn};

use crate::exec::{self, RunError};
use crate::nftnl::{Batch, Conn, Element, Value};
use crate::{Error, NetworkRules, PortMapping, tag};

/// The table, as nft commands name it.
const TABLE: &str = "inet libnetwork";
/// The table's name, for netlink.
const TABLE_NAME: &str = "libnetwork";

/// The user's chain, jumped to first from `forward`: created, never flushed.
const USER_CHAIN: &str = "docker-user";

const BRIDGES: &str = "bridges";
const SAME: &str = "same";
const NO_ICC: &str = "no-icc";
const INTERNAL: &str = "internal";
const NO_HAIRPIN: &str = "no-hairpin";
const MASQ: &str = "masq";
const SNAT4: &str = "snat4";
const NETS4: &str = "nets4";
const NETS6: &str = "nets6";

/// Every set and map: kind, name, and definition.
const SETS: [(&str, &str, &str); 17] = [
    ("set", BRIDGES, "type ifname;"),
    ("set", SAME, "type ifname . ifname;"),
    ("set", NO_ICC, "type ifname;"),
    ("set", INTERNAL, "type ifname;"),
    ("set", NO_HAIRPIN, "type ifname;"),
    ("set", MASQ, "type ifname;"),
    ("map", SNAT4, "type ifname : ipv4_addr;"),
    ("set", NETS4, "type ipv4_addr . ifname; flags interval;"),
    ("set", NETS6, "type ipv6_addr . ifname; flags interval;"),
    (
        "map",
        "pub4",
        "type inet_proto . inet_service : ipv4_addr; flags interval;",
    ),
    (
        "map",
        "pub4-host",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval;",
    ),
    (
        "map",
        "pub4-port",
        "type inet_proto . inet_service : ipv4_addr . inet_service;",
    ),
    (
        "map",
        "pub4-host-port",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
    ),
    (
        "map",
        "pub6",
        "type inet_proto . inet_service : ipv6_addr; flags interval;",
    ),
    (
        "map",
        "pub6-host",
        "type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval;",
    ),
    (
        "map",
        "pub6-port",
        "type inet_proto . inet_service : ipv6_addr . inet_service;",
    ),
    (
        "map",
        "pub6-host-port",
        "type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service;",
    ),
];

/// The map of a port mapping: by family, host-specific or not, and one element per port or one
/// for the whole range.
fn mapping_set(ipv6: bool, host: bool, per_port: bool) -> &'static str {
    match (ipv6, host, per_port) {
        (false, false, false) => "pub4",
        (false, true, false) => "pub4-host",
        (false, false, true) => "pub4-port",
        (false, true, true) => "pub4-host-port",
        (true, false, false) => "pub6",
        (true, true, false) => "pub6-host",
        (true, false, true) => "pub6-port",
        (true, true, true) => "pub6-host-port",
    }
}

/// The nftables backend's state: what is installed, as far as this process knows.
#[derive(Debug)]
pub(crate) struct Nft {
    ipv6: bool,
    conn: Conn,
    /// Networks by bridge; `None` for a bridge found in the `bridges` set whose settings no
    /// element comment told.
    networks: BTreeMap<String, Option<NetworkRules>>,
    /// Installed port mappings.
    mappings: HashSet<PortMapping>,
}

impl Nft {
    /// Whether nftables can be used here: `nft list tables` runs and succeeds. Run only when
    /// [`Nft::new`] fails, to tell a host without nftables from a refused batch.
    fn probe() -> Result<(), Error> {
        exec::run("nft", &["list", "tables"], None, "probe nftables")
            .map(drop)
            .map_err(|e| match e {
                RunError::Missing(msg) => Error::Unavailable(msg),
                RunError::Failed(e) => Error::Unavailable(format!("probe nftables: {e}")),
            })
    }

    /// Reads back what an earlier process left (the elements of our sets, and our rules,
    /// through the netlink socket, without a process) and installs the base structure with
    /// one `nft -f -` run unless the table already holds it: every set, and exactly the rules
    /// of our chains, the first one marked with the digest of the base batch (so a table of
    /// another layout, or whose rules were changed, is refilled). The base batch keeps the
    /// elements of sets that exist.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when nftables cannot be used here (no `nft`, no netlink socket, or
    /// `nft list tables` fails too); [`Error::Batch`] / [`Error::Internal`] otherwise.
    pub(crate) fn new(ipv6: bool) -> Result<Self, Error> {
        let conn = Conn::open().map_err(|e| {
            Error::Unavailable(format!("set up nftables: open a netlink socket: {e}"))
        })?;
        let mut nft = Self {
            ipv6,
            conn,
            networks: BTreeMap::new(),
            mappings: HashSet::new(),
        };
        let base = Self::base_batch(ipv6);
        // Reading fails where nf_tables is missing: the base batch then tells why.
        let loaded = nft.load();
        let in_place = match &loaded {
            Ok(true) => nft.base_in_place(&base).unwrap_or_else(|e| {
                debug!(error = %e, "cannot read the nftables rules, re-installing them");
                false
            }),
            Ok(false) => false,
            Err(e) => {
                debug!(error = %e, "cannot read the nftables sets");
                false
            }
        };
        if in_place {
            debug!("nftables base structure in place");
        } else {
            if let Err(e) = nft.apply_base(&base) {
                // A host without nftables fails the base batch too: say so as the probe would.
                if e.kind() != libnetwork_types::ErrorKind::Unavailable {
                    Self::probe()?;
                }
                return Err(e);
            }
            if loaded.is_err() {
                nft.load()?;
            }
        }
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
        self.mappings.iter().cloned().collect()
    }

    /// Installs a network's elements, or replaces those of a network on the same bridge (old
    /// ones deleted, new ones added, in one transaction).
    pub(crate) fn add_network(&mut self, rules: &NetworkRules) -> Result<(), Error> {
        let mut batch = Batch::new(TABLE_NAME);
        match self.networks.get(&rules.bridge) {
            Some(Some(old)) if old == rules => {}
            Some(Some(old)) => delete_all(&mut batch, network_elements(old)),
            Some(None) => delete_all(&mut batch, name_elements(&rules.bridge)),
            None => {}
        }
        for (set, elements) in by_set(network_elements(rules)) {
            batch.add(set, elements);
        }
        self.conn
            .apply(&batch, &format!("add network {}", rules.bridge))?;
        self.networks
            .insert(rules.bridge.clone(), Some(rules.clone()));
        Ok(())
    }

    /// Removes a network: its elements and those of its port mappings, in one transaction.
    pub(crate) fn remove_network(&mut self, bridge: &str) -> Result<(), Error> {
        let Some(rules) = self.networks.get(bridge) else {
            return Ok(());
        };
        let mut elements = match rules {
            Some(rules) => network_elements(rules),
            None => name_elements(bridge),
        };
        for m in self.mappings.iter().filter(|m| m.bridge == bridge) {
            elements.extend(mapping_elements(m));
        }
        let mut batch = Batch::new(TABLE_NAME);
        delete_all(&mut batch, elements);
        self.conn
            .apply(&batch, &format!("remove network {bridge}"))?;
        self.networks.remove(bridge);
        self.mappings.retain(|m| m.bridge != bridge);
        Ok(())
    }

    /// Adds the elements of the mappings not installed yet, in one transaction.
    pub(crate) fn add_mappings(&mut self, mappings: &[PortMapping]) -> Result<(), Error> {
        let mut seen = HashSet::new();
        let new: Vec<&PortMapping> = mappings
            .iter()
            .filter(|m| !self.mappings.contains(*m) && seen.insert(*m))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new(TABLE_NAME);
        for (set, elements) in by_set(new.iter().flat_map(|m| mapping_elements(m)).collect()) {
            batch.add(set, elements);
        }
        self.conn
            .apply(&batch, &format!("add {} port mappings", new.len()))?;
        self.mappings.extend(new.into_iter().cloned());
        Ok(())
    }

    /// Deletes the elements of the installed mappings among `mappings`, in one transaction.
    pub(crate) fn remove_mappings(&mut self, mappings: &[PortMapping]) -> Result<(), Error> {
        let installed: HashSet<&PortMapping> = mappings
            .iter()
            .filter(|m| self.mappings.contains(*m))
            .collect();
        if installed.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new(TABLE_NAME);
        delete_all(
            &mut batch,
            installed.iter().flat_map(|m| mapping_elements(m)).collect(),
        );
        self.conn
            .apply(&batch, &format!("remove {} port mappings", installed.len()))?;
        for m in mappings {
            self.mappings.remove(m);
        }
        Ok(())
    }

    /// Installs the base structure again, then the elements of every network this process
    /// knows the settings of and of every mapping of a known network.
    pub(crate) fn reapply(&mut self) -> Result<(), Error> {
        let base = Self::base_batch(self.ipv6);
        self.apply_base(&base)?;
        let mut elements = Vec::new();
        for rules in self.networks.values().flatten() {
            elements.extend(network_elements(rules));
        }
        let unknown: Vec<&String> = self
            .networks
            .iter()
            .filter_map(|(bridge, rules)| rules.is_none().then_some(bridge))
            .collect();
        if !unknown.is_empty() {
            warn!(
                ?unknown,
                "the settings of these networks are unknown, not re-creating them"
            );
        }
        for m in &self.mappings {
            if self.networks.contains_key(&m.bridge) {
                elements.extend(mapping_elements(m));
            }
        }
        let mut batch = Batch::new(TABLE_NAME);
        for (set, elements) in by_set(elements) {
            batch.add(set, elements);
        }
        self.conn
            .apply(&batch, "re-install networks and port mappings")
    }

    fn apply_base(&self, base: &BaseBatch) -> Result<(), Error> {
        exec::run(
            "nft",
            &["-f", "-"],
            Some(&base.script),
            "install the nftables base structure",
        )?;
        Ok(())
    }

    /// Whether our table holds exactly the rules of `base` in our chains (the user's
    /// `docker-user` chain aside), the first forward rule carrying `base`'s mark.
    fn base_in_place(&mut self, base: &BaseBatch) -> Result<bool, Error> {
        let Some(rules) = self.conn.rules(TABLE_NAME)? else {
            return Ok(false);
        };
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut marked = false;
        for rule in rules.iter().filter(|r| r.chain != USER_CHAIN) {
            *counts.entry(rule.chain.clone()).or_default() += 1;
            marked |= rule.chain == "forward" && rule.comment.as_deref() == Some(&base.mark);
        }
        Ok(marked && counts == base.rules)
    }

    /// The base structure: the table, sets and maps are created if missing (keeping their
    /// elements), every chain but `docker-user` is ours and refilled.
    fn base_batch(ipv6: bool) -> BaseBatch {
        let mut b = vec![format!("add table {TABLE}")];
        for (kind, name, definition) in SETS {
            b.push(format!("add {kind} {TABLE} {name} {{ {definition} }}"));
        }
        b.push(format!("add chain {TABLE} {USER_CHAIN}"));
        b.push(format!("add chain {TABLE} published"));
        b.push(format!("flush chain {TABLE} published"));
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
        let mut rule = |chain: &str, r: &str| b.push(format!("add rule {TABLE} {chain} {r}"));

        // Forwarding. Traffic within a bridge first, then between our bridges, then in and out.
        for r in [
            "jump docker-user",
            "iifname . oifname @same iifname != @no-icc accept",
            // With icc off, published ports stay reachable through the host address (hairpin).
            "iifname . oifname @same iifname != @internal ct status dnat accept",
            "iifname . oifname @same drop",
            "iifname @bridges oifname @bridges drop",
            "iifname @internal drop",
            "oifname @internal drop",
            "iifname @bridges accept",
            "oifname @bridges ct state established,related accept",
            "oifname @bridges ct status dnat accept",
            "oifname @bridges drop",
        ] {
            rule("forward", r);
        }

        rule(
            "prerouting",
            "iifname != @no-hairpin fib daddr type local jump published",
        );
        rule(
            "output",
            "ip daddr != 127.0.0.0/8 fib daddr type local jump published",
        );
        if ipv6 {
            rule(
                "output",
                "ip6 daddr != ::1 fib daddr type local jump published",
            );
        }

        // Source NAT. A container reaching a published port of its own network through a host
        // address is masqueraded, so that the answer comes back through the host and is
        // un-NATed (with br_netfilter, such bridged traffic has no input interface here, so the
        // match is on the output interface). Traffic that stays on its bridge is left alone;
        // traffic from a bridge's subnet leaving it is source-NATed or masqueraded.
        rule(
            "postrouting",
            "ip saddr . oifname @nets4 oifname != @no-hairpin ct status dnat masquerade",
        );
        if ipv6 {
            rule(
                "postrouting",
                "ip6 saddr . oifname @nets6 oifname != @no-hairpin ct status dnat masquerade",
            );
        }
        rule("postrouting", "iifname . oifname @same return");
        rule(
            "postrouting",
            "ip saddr . iifname @nets4 snat ip to iifname map @snat4",
        );
        rule(
            "postrouting",
            "ip saddr . iifname @nets4 iifname @masq masquerade",
        );
        if ipv6 {
            rule(
                "postrouting",
                "ip6 saddr . iifname @nets6 iifname @masq masquerade",
            );
        }

        // Published ports: host-specific maps first and, among each, single ports before ranges
        // (so a port mapped on its own wins over a range that covers it).
        let families: &[(&str, &str, &str, bool)] = if ipv6 {
            &[
                ("ipv4", "ip", "ip daddr", false),
                ("ipv6", "ip6", "ip6 daddr", true),
            ]
        } else {
            &[("ipv4", "ip", "ip daddr", false)]
        };
        for &(nfproto, family, daddr, v6) in families {
            for (host, per_port) in [(true, true), (true, false), (false, true), (false, false)] {
                let set = mapping_set(v6, host, per_port);
                let mut r = Vec::new();
                if !host {
                    // Without a host address in the key, nothing limits the rule to the family.
                    r.push(format!("meta nfproto {nfproto}"));
                }
                if per_port {
                    // A port in the data needs a transport protocol that has ports.
                    r.push("meta l4proto { tcp, udp, sctp }".to_string());
                }
                let key = if host {
                    format!("{daddr} . meta l4proto . th dport")
                } else {
                    "meta l4proto . th dport".to_string()
                };
                r.push(format!("dnat {family} to {key} map @{set}"));
                rule("published", &r.join(" "));
            }
        }

        let mut rules: BTreeMap<String, usize> = BTreeMap::new();
        let prefix = format!("add rule {TABLE} ");
        for line in &b {
            if let Some(chain) = line.strip_prefix(&prefix).and_then(|r| r.split(' ').next()) {
                *rules.entry(chain.to_string()).or_default() += 1;
            }
        }
        let mark = format!("libnetwork base {:016x}", fnv1a(b.join("\n").as_bytes()));
        let first = format!("{prefix}forward jump {USER_CHAIN}");
        if let Some(line) = b.iter_mut().find(|l| **l == first) {
            line.push_str(&format!(" comment \"{mark}\""));
        }
        BaseBatch {
            script: b.join("\n"),
            mark,
            rules,
        }
    }

    /// Reads the elements of our sets: networks (elements of `bridges`, and the settings in
    /// element comments) and port mappings (element comments of the `pub` maps). A set (or
    /// the table) that does not exist has nothing. Returns whether every set exists.
    fn load(&mut self) -> Result<bool, Error> {
        let mut every_set = true;
        for (_, set, _) in SETS {
            let Some(elements) = self.conn.set_elements(TABLE_NAME, set)? else {
                every_set = false;
                continue;
            };
            for element in elements {
                let comment = element.comment.as_deref();
                if let Some(rules) = comment.and_then(tag::parse_network_rules) {
                    self.networks.insert(rules.bridge.clone(), Some(rules));
                } else if let Some(m) = comment.and_then(tag::parse_mapping) {
                    self.mappings.insert(m);
                }
                if set == BRIDGES {
                    // An interface name, NUL-padded.
                    let name = element.key.split(|b| *b == 0).next().unwrap_or_default();
                    if let Ok(bridge) = std::str::from_utf8(name)
                        && !bridge.is_empty()
                    {
                        self.networks.entry(bridge.to_string()).or_insert(None);
                    }
                }
            }
        }
        Ok(every_set)
    }
}

/// The base structure's `nft -f` script, the mark its first rule carries (a digest of the rest
/// of the script) and how many rules each of its chains has.
#[derive(Debug, Clone)]
struct BaseBatch {
    script: String,
    mark: String,
    rules: BTreeMap<String, usize>,
}

/// The 64-bit FNV-1a digest: stable across builds and Rust versions, as the base mark must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Groups elements by set, keeping their order within each set.
fn by_set(elements: Vec<(&'static str, Element)>) -> BTreeMap<&'static str, Vec<Element>> {
    let mut sets: BTreeMap<&'static str, Vec<Element>> = BTreeMap::new();
    for (set, element) in elements {
        sets.entry(set).or_default().push(element);
    }
    sets
}

/// Appends deleting `elements`, whether each is still there or not. Each key is deleted once:
/// a second deletion in the same transaction would fail it.
fn delete_all(batch: &mut Batch, elements: Vec<(&'static str, Element)>) {
    let mut seen = HashSet::new();
    let unique = elements
        .into_iter()
        .filter(|(set, e)| seen.insert((*set, e.key.clone(), e.key_end.clone())))
        .collect();
    for (set, elements) in by_set(unique) {
        batch.delete_if_present(set, elements);
    }
}

fn element(key: Value, key_end: Option<Value>, data: Option<Value>, tag: &str) -> Element {
    Element {
        key,
        key_end,
        data,
        comment: Some(tag.to_string()),
    }
}

/// The elements of a network, each tagged with its settings.
fn network_elements(rules: &NetworkRules) -> Vec<(&'static str, Element)> {
    let tag = tag::network_rules(rules);
    let br = rules.bridge.as_str();
    let name = || Value::new().ifname(br);
    let mut out = vec![
        (BRIDGES, element(name(), None, None, &tag)),
        (SAME, element(name().ifname(br), None, None, &tag)),
    ];
    if !rules.icc {
        out.push((NO_ICC, element(name(), None, None, &tag)));
    }
    if rules.internal {
        out.push((INTERNAL, element(name(), None, None, &tag)));
    }
    if !rules.hairpin {
        out.push((NO_HAIRPIN, element(name(), None, None, &tag)));
    }
    if rules.internal || !(rules.masquerade || rules.hairpin) {
        return out;
    }
    // The subnets, for source NAT and hairpin masquerading.
    let v4 = rules.ipv4_subnet.trunc();
    let first = Value::new().ipv4(v4.network()).ifname(br);
    let last = Value::new().ipv4(v4.broadcast()).ifname(br);
    out.push((NETS4, element(first, Some(last), None, &tag)));
    if let Some(v6) = rules.ipv6_subnet.map(|n| n.trunc()) {
        let first = Value::new().ipv6(v6.network()).ifname(br);
        let last = Value::new().ipv6(v6.broadcast()).ifname(br);
        out.push((NETS6, element(first, Some(last), None, &tag)));
    }
    if rules.masquerade {
        // IPv4 traffic goes to the source NAT rule first when there is one; IPv6 traffic is
        // always masqueraded.
        out.push((MASQ, element(name(), None, None, &tag)));
        if let Some(source) = rules.snat_source {
            let data = Value::new().ipv4(source);
            out.push((SNAT4, element(name(), None, Some(data), &tag)));
        }
    }
    out
}

/// The elements keyed by a bridge name alone: what can be removed of a network whose settings
/// are unknown.
fn name_elements(bridge: &str) -> Vec<(&'static str, Element)> {
    let name = || Value::new().ifname(bridge);
    let untagged = |key: Value| Element {
        key,
        key_end: None,
        data: None,
        comment: None,
    };
    vec![
        (BRIDGES, untagged(name())),
        (SAME, untagged(name().ifname(bridge))),
        (NO_ICC, untagged(name())),
        (INTERNAL, untagged(name())),
        (NO_HAIRPIN, untagged(name())),
    ]
}

/// The elements of a port mapping, each tagged with it: one interval element for a range whose
/// container ports are the host ports, one element per port (in a hash map, much cheaper to
/// change than an interval map) for a single port or a shifted range.
fn mapping_elements(m: &PortMapping) -> Vec<(&'static str, Element)> {
    let tag = tag::mapping(m);
    let host = |v: Value| match m.host_ip {
        Some(IpAddr::V4(ip)) => v.ipv4(ip),
        Some(IpAddr::V6(ip)) => v.ipv6(ip),
        None => v,
    };
    let container = |v: Value| match m.container_ip {
        IpAddr::V4(ip) => v.ipv4(ip),
        IpAddr::V6(ip) => v.ipv6(ip),
    };
    let proto = m.protocol.number();
    let (start, end) = (*m.host_ports.start(), *m.host_ports.end());
    let per_port = m.container_port != start || start == end;
    let set = mapping_set(m.container_ip.is_ipv6(), m.host_ip.is_some(), per_port);
    if !per_port {
        let first = host(Value::new()).proto(proto).port(start);
        let last = host(Value::new()).proto(proto).port(end);
        let data = container(Value::new());
        return vec![(set, element(first, Some(last), Some(data), &tag))];
    }
    (0..=end - start)
        .map(|i| {
            let key = host(Value::new()).proto(proto).port(start + i);
            let data = container(Value::new()).port(m.container_port + i);
            (set, element(key, None, Some(data), &tag))
        })
        .collect()
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

    fn shown(elements: &[(&str, Element)]) -> Vec<String> {
        elements
            .iter()
            .map(|(set, e)| format!("{set}: {e}"))
            .collect()
    }

    #[test]
    fn a_range_with_the_same_ports_is_one_interval_element() {
        let m = mapping(8000..=17999, 8000);
        let elements = mapping_elements(&m);
        // tcp . 8000-17999 : 172.17.0.2
        assert_eq!(
            shown(&elements),
            [format!(
                "pub4: 00000006 0000401f - 00000006 00004f46 : 020011ac comment {:?}",
                tag::mapping(&m)
            )]
        );
    }

    #[test]
    fn a_shifted_range_is_one_element_per_port() {
        let m = mapping(8000..=8002, 9000);
        let elements = mapping_elements(&m);
        let keys: Vec<String> = elements
            .iter()
            .map(|(set, e)| format!("{set}: {} : {}", e.key, e.data.as_ref().unwrap()))
            .collect();
        // tcp . 8000 : 172.17.0.2 . 9000, ...
        assert_eq!(
            keys,
            [
                "pub4-port: 00000006 0000401f : 020011ac 00002823",
                "pub4-port: 00000006 0000411f : 020011ac 00002923",
                "pub4-port: 00000006 0000421f : 020011ac 00002a23",
            ]
        );
        assert!(elements.iter().all(|(_, e)| e.key_end.is_none()));
    }

    #[test]
    fn a_range_ending_at_the_last_port_does_not_overflow() {
        let elements = mapping_elements(&mapping(65533..=65535, 1));
        assert_eq!(elements.len(), 3);
        let elements = mapping_elements(&mapping(1..=3, 65533));
        assert_eq!(elements.len(), 3);
    }

    #[test]
    fn a_single_port_is_one_element_of_a_port_map() {
        let m = mapping(80..=80, 80);
        let elements = mapping_elements(&m);
        // tcp . 80 : 172.17.0.2 . 80
        assert_eq!(
            shown(&elements),
            [format!(
                "pub4-port: 00000006 00005000 : 020011ac 00005000 comment {:?}",
                tag::mapping(&m)
            )]
        );
    }

    #[test]
    fn host_specific_mappings_go_to_host_maps_keyed_by_the_address() {
        let mut m = mapping(53..=54, 53);
        m.protocol = Protocol::Udp;
        m.host_ip = Some("192.168.77.1".parse().unwrap());
        let elements = mapping_elements(&m);
        assert_eq!(elements.len(), 1);
        assert_eq!(elements[0].0, "pub4-host");
        // 192.168.77.1 . udp . 53-54
        assert_eq!(elements[0].1.key.to_string(), "014da8c0 00000011 00003500");
        assert_eq!(
            elements[0].1.key_end.as_ref().unwrap().to_string(),
            "014da8c0 00000011 00003600"
        );

        let m = PortMapping {
            host_ip: Some("fd00::1".parse().unwrap()),
            container_ip: "fd00:30:1::2".parse().unwrap(),
            container_port: 443,
            ..mapping(8443..=8443, 443)
        };
        let elements = mapping_elements(&m);
        assert_eq!(elements.len(), 1);
        assert_eq!(elements[0].0, "pub6-host-port");
        assert_eq!(
            elements[0].1.key.to_string(),
            "000000fd 00000000 00000000 01000000 00000006 0000fb20"
        );
        assert_eq!(
            elements[0].1.data.as_ref().unwrap().to_string(),
            "300000fd 00000100 00000000 02000000 0000bb01"
        );
    }

    #[test]
    fn network_elements_follow_the_settings() {
        let rules = NetworkRules {
            bridge: "br-a".into(),
            ipv4_subnet: "172.30.1.1/24".parse().unwrap(),
            ipv6_subnet: Some("fd00:30:1::1/64".parse().unwrap()),
            masquerade: true,
            snat_source: None,
            icc: true,
            internal: false,
            hairpin: true,
        };
        let sets = |rules: &NetworkRules| -> Vec<&str> {
            network_elements(rules).iter().map(|(s, _)| *s).collect()
        };
        assert_eq!(sets(&rules), [BRIDGES, SAME, NETS4, NETS6, MASQ]);
        let nets4 = &network_elements(&rules)[2].1;
        // 172.30.1.0/24 . "br-a": the subnet's first and last address.
        assert_eq!(
            nets4.to_string(),
            format!(
                "00011eac 612d7262 00000000 00000000 00000000 - \
                 ff011eac 612d7262 00000000 00000000 00000000 comment {:?}",
                tag::network_rules(&rules)
            )
        );

        let snat = NetworkRules {
            snat_source: Some("192.168.77.3".parse().unwrap()),
            ..rules.clone()
        };
        assert_eq!(sets(&snat), [BRIDGES, SAME, NETS4, NETS6, MASQ, SNAT4]);
        // "br-a" : 192.168.77.3
        assert_eq!(
            network_elements(&snat)[5]
                .1
                .data
                .as_ref()
                .unwrap()
                .to_string(),
            "034da8c0"
        );

        let closed = NetworkRules {
            icc: false,
            internal: true,
            hairpin: false,
            ..rules.clone()
        };
        assert_eq!(sets(&closed), [BRIDGES, SAME, NO_ICC, INTERNAL, NO_HAIRPIN]);

        let hairpin_only = NetworkRules {
            masquerade: false,
            ipv6_subnet: None,
            ..rules.clone()
        };
        assert_eq!(sets(&hairpin_only), [BRIDGES, SAME, NETS4]);

        let plain = NetworkRules {
            masquerade: false,
            hairpin: false,
            ..rules
        };
        assert_eq!(sets(&plain), [BRIDGES, SAME, NO_HAIRPIN]);
    }

    #[test]
    fn the_base_batch_marks_its_first_rule_with_a_digest_of_the_rest() {
        let v4 = Nft::base_batch(false);
        let v6 = Nft::base_batch(true);
        let first = |b: &BaseBatch| {
            b.script
                .lines()
                .find(|l| l.starts_with("add rule inet libnetwork forward"))
                .unwrap()
                .to_string()
        };
        assert_eq!(
            first(&v4),
            format!(
                "add rule inet libnetwork forward jump docker-user comment \"{}\"",
                v4.mark
            )
        );
        assert!(v4.mark.starts_with("libnetwork base "), "{}", v4.mark);
        // The same settings give the same mark; other rules another one.
        assert_eq!(Nft::base_batch(false).mark, v4.mark);
        assert_ne!(v6.mark, v4.mark);
        assert_eq!(v4.script.matches(&v4.mark).count(), 1);
        // Rules are counted per chain; the user's chain has none of ours.
        let count = |b: &BaseBatch, chain: &str| b.rules.get(chain).copied().unwrap_or(0);
        assert_eq!(count(&v4, "forward"), 11);
        assert_eq!(count(&v4, "output"), 1);
        assert_eq!(count(&v6, "output"), 2);
        assert_eq!(count(&v4, "published"), 4);
        assert_eq!(count(&v6, "published"), 8);
        assert_eq!(count(&v4, USER_CHAIN), 0);
        let total: usize = v6.rules.values().sum();
        assert_eq!(
            v6.script
                .lines()
                .filter(|l| l.starts_with("add rule"))
                .count(),
            total
        );
    }

    #[test]
    fn the_digest_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_key_is_deleted_once_per_batch() {
        // Two mappings that differ only in their bridge have the same element.
        let a = mapping(8080..=8080, 80);
        let b = PortMapping {
            bridge: "br1".into(),
            ..a.clone()
        };
        let mut batch = Batch::new(TABLE_NAME);
        delete_all(
            &mut batch,
            [mapping_elements(&a), mapping_elements(&b)].concat(),
        );
        // Added once, deleted once.
        assert_eq!(batch.len(), 2);
    }
}
