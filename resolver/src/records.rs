//! The record tables the embedded DNS server answers from.
//!
//! [`RecordDirectory`] holds, for every network, the names of its endpoints (and their
//! aliases) with their addresses, and the reverse map from address to name for PTR answers:
//! libnetwork's per-network `svcRecords` (`svcMap`, `svcIPv6Map`, `ipMap`). The controller
//! updates it as endpoints join and leave. [`SandboxRecords`] is what one sandbox sees: the
//! networks it is attached to, in the sandbox's endpoint order, looked up the way libnetwork's
//! `Sandbox.ResolveName` and `ResolveIP` do.
//!
//! Locking: the directory map and each network's tables sit behind their own `RwLock`, and a
//! sandbox keeps `Arc`s to the tables of its networks, so a query takes one read lock on the
//! sandbox's list and one per network it looks into, and never touches the directory map. An
//! update takes the write lock of one network for a hash-map insert or remove; nothing is
//! rebuilt.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tracing::debug;

use crate::error::{Error, Result};

/// The longest name the directory accepts, in bytes without the trailing dot (RFC 1035).
const MAX_NAME_LEN: usize = 253;
/// The longest label of a name, in bytes (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// Which records a name gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// An address record and the reverse (PTR) record: an endpoint's own name (or, for an
    /// anonymous endpoint, its first alias), as libnetwork adds them.
    Primary,
    /// An address record only: an alias of an endpoint (`--network-alias`), a service name.
    Alias,
}

/// The address family a query asks for: `A` or `AAAA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// IPv4 (`A` records).
    V4,
    /// IPv6 (`AAAA` records).
    V6,
}

/// The answer of a name look-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name has these addresses in the family asked for, in the order they were added.
    Found(Vec<IpAddr>),
    /// The name exists, but only in the other family: the server answers NOERROR with no
    /// records and does not forward the query (libnetwork's "IPv6 miss", for both families).
    NoData,
    /// The name is not known locally.
    NotFound,
}

/// The addresses of one name on one network, each kept once, in insertion order.
#[derive(Debug, Default)]
struct Addresses {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

impl Addresses {
    fn insert(&mut self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => insert_once(&mut self.v4, ip),
            IpAddr::V6(ip) => insert_once(&mut self.v6, ip),
        }
    }

    fn remove(&mut self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => remove_one(&mut self.v4, &ip),
            IpAddr::V6(ip) => remove_one(&mut self.v6, &ip),
        }
    }

    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    fn lookup(&self, family: AddressFamily) -> Lookup {
        let found: Vec<IpAddr> = match family {
            AddressFamily::V4 => self.v4.iter().copied().map(IpAddr::V4).collect(),
            AddressFamily::V6 => self.v6.iter().copied().map(IpAddr::V6).collect(),
        };
        if !found.is_empty() {
            Lookup::Found(found)
        } else if self.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::NoData
        }
    }
}

fn insert_once<T: PartialEq>(set: &mut Vec<T>, value: T) -> bool {
    if set.contains(&value) {
        return false;
    }
    set.push(value);
    true
}

fn remove_one<T: PartialEq>(set: &mut Vec<T>, value: &T) -> bool {
    match set.iter().position(|v| v == value) {
        Some(i) => {
            set.remove(i);
            true
        }
        None => false,
    }
}

/// The tables of one network.
#[derive(Debug, Default)]
struct Tables {
    /// Lower-case name → addresses.
    names: HashMap<String, Addresses>,
    /// Address → names as given (first one answers PTR queries).
    reverse: HashMap<IpAddr, Vec<String>>,
}

/// One network's records, shared by the directory and the sandboxes attached to it.
#[derive(Debug)]
pub(crate) struct NetworkRecords {
    id: String,
    name: String,
    tables: RwLock<Tables>,
}

impl NetworkRecords {
    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks up a lower-case name.
    fn lookup(&self, name: &str, family: AddressFamily) -> Lookup {
        match self.read().names.get(name) {
            Some(addresses) => addresses.lookup(family),
            None => Lookup::NotFound,
        }
    }

    /// `<name>.<network name>` for the first name registered for `ip` with a PTR record.
    fn reverse(&self, ip: IpAddr) -> Option<String> {
        let tables = self.read();
        let name = tables.reverse.get(&ip)?.first()?;
        Some(format!("{name}.{}", self.name))
    }
}

/// The DNS records of every network, shared by all sandboxes (and the controller, which
/// updates it as endpoints join and leave). Cheap to clone: clones share the tables.
///
/// Names are case-insensitive and stored without a trailing dot. Each (name, address) pair is
/// a set member, as in libnetwork's `setmatrix`: adding it twice keeps one copy, and one remove
/// takes it away.
#[derive(Debug, Clone, Default)]
pub struct RecordDirectory {
    networks: Arc<RwLock<HashMap<String, Arc<NetworkRecords>>>>,
}

impl RecordDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the network `id` named `name` (the name matched by `<host>.<network name>`
    /// queries), with no records. Adding a network again under the same name does nothing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty id or name, [`Error::Conflict`] when `id` is in the
    /// directory under another name.
    pub fn add_network(&self, id: &str, name: &str) -> Result<()> {
        let op = || format!("add network {id} ({name}) to the dns directory");
        if id.is_empty() || name.is_empty() {
            return Err(Error::invalid(op(), "empty network id or name"));
        }
        let mut networks = self
            .networks
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match networks.entry(id.to_owned()) {
            Entry::Occupied(e) if e.get().name == name => Ok(()),
            Entry::Occupied(e) => Err(Error::conflict(
                op(),
                format!("the network is already there as {}", e.get().name),
            )),
            Entry::Vacant(e) => {
                e.insert(Arc::new(NetworkRecords {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    tables: RwLock::default(),
                }));
                debug!(network = id, name, "dns network added");
                Ok(())
            }
        }
    }

    /// Removes the network `id` and all its records. Sandboxes still attached to it stop
    /// resolving its names at once (they should be detached too).
    ///
    /// # Errors
    /// [`Error::NetworkNotFound`] when the network is not in the directory.
    pub fn remove_network(&self, id: &str) -> Result<()> {
        let removed = self
            .networks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        let Some(network) = removed else {
            return Err(Error::network_not_found(
                format!("remove network {id} from the dns directory"),
                id,
            ));
        };
        *network.write() = Tables::default();
        debug!(network = id, "dns network removed");
        Ok(())
    }

    /// The ids of the networks in the directory, in no particular order.
    pub fn network_ids(&self) -> Vec<String> {
        self.networks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Adds `name` → `ip` to the network `network_id` (and `ip` → `name` for
    /// [`RecordKind::Primary`]). Returns whether anything was added.
    ///
    /// Names are one or more dot-separated labels of ASCII letters, digits, `-` and `_` (at
    /// most 63 bytes each, 253 in all); a trailing dot is ignored.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed name or an unspecified address,
    /// [`Error::NetworkNotFound`] when the network is not in the directory. Nothing changes
    /// then.
    pub fn add_record(
        &self,
        network_id: &str,
        name: &str,
        ip: IpAddr,
        kind: RecordKind,
    ) -> Result<bool> {
        let op = || format!("add dns record {name} -> {ip} to network {network_id}");
        let (key, display) = normalize_name(name).map_err(|reason| Error::invalid(op(), reason))?;
        if ip.is_unspecified() {
            return Err(Error::invalid(op(), "unspecified address"));
        }
        let network = self
            .network(network_id)
            .ok_or_else(|| Error::network_not_found(op(), network_id))?;

        let mut tables = network.write();
        let mut added = tables.names.entry(key).or_default().insert(ip);
        if kind == RecordKind::Primary {
            let names = tables.reverse.entry(ip).or_default();
            if !names.iter().any(|n| n.eq_ignore_ascii_case(display)) {
                names.push(display.to_owned());
                added = true;
            }
        }
        drop(tables);
        debug!(network = network_id, name, %ip, ?kind, added, "dns record added");
        Ok(added)
    }

    /// Removes `name` → `ip` from the network `network_id` (and `ip` → `name` for
    /// [`RecordKind::Primary`]; pass the kind the record was added with). Returns whether
    /// anything was removed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed name, [`Error::NetworkNotFound`] when the
    /// network is not in the directory. Nothing changes then.
    pub fn remove_record(
        &self,
        network_id: &str,
        name: &str,
        ip: IpAddr,
        kind: RecordKind,
    ) -> Result<bool> {
        let op = || format!("remove dns record {name} -> {ip} from network {network_id}");
        let (key, display) = normalize_name(name).map_err(|reason| Error::invalid(op(), reason))?;
        let network = self
            .network(network_id)
            .ok_or_else(|| Error::network_not_found(op(), network_id))?;

        let mut tables = network.write();
        let mut removed = false;
        if let Entry::Occupied(mut e) = tables.names.entry(key) {
            removed = e.get_mut().remove(ip);
            if e.get().is_empty() {
                e.remove();
            }
        }
        if kind == RecordKind::Primary
            && let Entry::Occupied(mut e) = tables.reverse.entry(ip)
        {
            if let Some(i) = e.get().iter().position(|n| n.eq_ignore_ascii_case(display)) {
                e.get_mut().remove(i);
                removed = true;
            }
            if e.get().is_empty() {
                e.remove();
            }
        }
        drop(tables);
        debug!(network = network_id, name, %ip, ?kind, removed, "dns record removed");
        Ok(removed)
    }

    /// Looks `name` up on one network only (libnetwork's `Network.ResolveName`).
    ///
    /// # Errors
    /// [`Error::NetworkNotFound`] when the network is not in the directory.
    pub fn resolve_name(
        &self,
        network_id: &str,
        name: &str,
        family: AddressFamily,
    ) -> Result<Lookup> {
        let network = self.network(network_id).ok_or_else(|| {
            Error::network_not_found(
                format!("resolve {name} on network {network_id}"),
                network_id,
            )
        })?;
        Ok(network.lookup(&query_key(name), family))
    }

    /// The PTR answer for `ip` on one network, `<name>.<network name>` (libnetwork's
    /// `Network.ResolveIP`).
    ///
    /// # Errors
    /// [`Error::NetworkNotFound`] when the network is not in the directory.
    pub fn resolve_ip(&self, network_id: &str, ip: IpAddr) -> Result<Option<String>> {
        let network = self.network(network_id).ok_or_else(|| {
            Error::network_not_found(format!("resolve {ip} on network {network_id}"), network_id)
        })?;
        Ok(network.reverse(ip))
    }

    fn network(&self, id: &str) -> Option<Arc<NetworkRecords>> {
        self.networks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }
}

/// Checks a record name and returns its look-up key (lower case) and its display form (as
/// given), both without a trailing dot.
fn normalize_name(name: &str) -> Result<(String, &str), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("name longer than {MAX_NAME_LEN} bytes"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label in name".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!("label longer than {MAX_LABEL_LEN} bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "label {label:?} has characters other than letters, digits, '-' and '_'"
            ));
        }
    }
    Ok((name.to_ascii_lowercase(), name))
}

/// The look-up key of a queried name: no trailing dot, lower case.
fn query_key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// One network a sandbox is attached to.
#[derive(Debug, Clone)]
struct Attachment {
    network: Arc<NetworkRecords>,
    /// The sandbox's link aliases on this network (legacy `--link`): alias → target name,
    /// both lower case. Resolvable only from this sandbox.
    links: HashMap<String, String>,
}

/// The names one sandbox can resolve: the networks it is attached to, in the order its
/// endpoints sort in (libnetwork's `Less`), looked up in the directory. Cheap to clone: clones
/// share the attachment list, so the controller can keep one and the server another.
#[derive(Debug, Clone)]
pub struct SandboxRecords {
    directory: RecordDirectory,
    attached: Arc<RwLock<Vec<Attachment>>>,
}

impl SandboxRecords {
    /// A sandbox view of `directory`, attached to no network yet.
    pub fn new(directory: &RecordDirectory) -> Self {
        Self {
            directory: directory.clone(),
            attached: Arc::default(),
        }
    }

    /// The directory this view reads.
    pub fn directory(&self) -> &RecordDirectory {
        &self.directory
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<Attachment>> {
        self.attached.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<Attachment>> {
        self.attached
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Attaches the sandbox to the network `network_id`, after the networks already attached
    /// (use [`SandboxRecords::set_network_order`] to reorder). Its names resolve from the
    /// sandbox at once.
    ///
    /// # Errors
    /// [`Error::NetworkNotFound`] when the network is not in the directory,
    /// [`Error::Conflict`] when it is already attached. Nothing changes then.
    pub fn attach_network(&self, network_id: &str) -> Result<()> {
        let op = || format!("attach network {network_id} to the sandbox's dns");
        let network = self
            .directory
            .network(network_id)
            .ok_or_else(|| Error::network_not_found(op(), network_id))?;
        let mut attached = self.write();
        if attached.iter().any(|a| a.network.id == network_id) {
            return Err(Error::conflict(op(), "the network is already attached"));
        }
        attached.push(Attachment {
            network,
            links: HashMap::new(),
        });
        debug!(network = network_id, "dns network attached to sandbox");
        Ok(())
    }

    /// Detaches the sandbox from the network `network_id`: its names stop resolving from the
    /// sandbox at once, and the sandbox's link aliases on it are dropped.
    ///
    /// # Errors
    /// [`Error::NetworkNotFound`] when the network is not attached. Nothing changes then.
    pub fn detach_network(&self, network_id: &str) -> Result<()> {
        let mut attached = self.write();
        let Some(i) = attached.iter().position(|a| a.network.id == network_id) else {
            return Err(Error::network_not_found(
                format!("detach network {network_id} from the sandbox's dns"),
                network_id,
            ));
        };
        attached.remove(i);
        debug!(network = network_id, "dns network detached from sandbox");
        Ok(())
    }

    /// Reorders the attached networks: `order` lists every attached network id once, first
    /// the one whose names win. The controller calls it when its endpoint order changes.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `order` is not exactly the attached networks. Nothing
    /// changes then.
    pub fn set_network_order(&self, order: &[&str]) -> Result<()> {
        let mut attached = self.write();
        let mut reordered = Vec::with_capacity(attached.len());
        for id in order {
            let Some(a) = attached.iter().find(|a| a.network.id == *id) else {
                return Err(Error::invalid(
                    "reorder the sandbox's dns networks",
                    format!("network {id} is not attached"),
                ));
            };
            if reordered.iter().any(|r: &Attachment| r.network.id == *id) {
                return Err(Error::invalid(
                    "reorder the sandbox's dns networks",
                    format!("network {id} is listed twice"),
                ));
            }
            reordered.push(a.clone());
        }
        if reordered.len() != attached.len() {
            return Err(Error::invalid(
                "reorder the sandbox's dns networks",
                "not every attached network is listed",
            ));
        }
        *attached = reordered;
        Ok(())
    }

    /// The attached network ids, in look-up order.
    pub fn networks(&self) -> Vec<String> {
        self.read().iter().map(|a| a.network.id.clone()).collect()
    }

    /// Replaces the sandbox's link aliases on the network `network_id` (legacy `--link`: the
    /// alias resolves, from this sandbox only, to what `target` resolves to on that network).
    ///
    /// # Errors
    /// [`Error::NetworkNotFound`] when the network is not attached, [`Error::InvalidInput`]
    /// for a malformed alias or target. Nothing changes then.
    pub fn set_link_aliases<I, A, T>(&self, network_id: &str, aliases: I) -> Result<()>
    where
        I: IntoIterator<Item = (A, T)>,
        A: AsRef<str>,
        T: AsRef<str>,
    {
        let op = || format!("set link aliases on network {network_id}");
        let mut links = HashMap::new();
        for (alias, target) in aliases {
            let (alias, _) =
                normalize_name(alias.as_ref()).map_err(|reason| Error::invalid(op(), reason))?;
            let (target, _) =
                normalize_name(target.as_ref()).map_err(|reason| Error::invalid(op(), reason))?;
            links.insert(alias, target);
        }
        let mut attached = self.write();
        let Some(a) = attached.iter_mut().find(|a| a.network.id == network_id) else {
            return Err(Error::network_not_found(op(), network_id));
        };
        a.links = links;
        Ok(())
    }

    /// Resolves `name` as libnetwork's `Sandbox.ResolveName` does: for `a.b.c` it tries
    /// `a.b.c` on every attached network, then `a.b` on the network named `c`, then `a` on the
    /// network named `b.c`; for each candidate, link aliases first, then names (a name that is
    /// a link alias on a network is not looked up as a plain name there); networks in order,
    /// first hit wins. Case-insensitive, trailing dot ignored.
    pub fn resolve_name(&self, name: &str, family: AddressFamily) -> Lookup {
        let name = name.strip_suffix('.').unwrap_or(name);
        let lowered;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = name.to_ascii_lowercase();
            lowered.as_str()
        } else {
            name
        };
        if name.is_empty() {
            return Lookup::NotFound;
        }

        let attached = self.read();
        for (req, network) in candidates(name) {
            for links in [true, false] {
                match resolve_in(&attached, req, network, links, family) {
                    Lookup::NotFound => {}
                    found => return found,
                }
            }
        }
        Lookup::NotFound
    }

    /// Whether `name` has an address of either family (what an MX query needs to be answered
    /// locally).
    pub fn knows_name(&self, name: &str) -> bool {
        self.resolve_name(name, AddressFamily::V4) != Lookup::NotFound
    }

    /// The PTR answer for `ip`: `<name>.<network name>` from the first attached network that
    /// has a reverse record for it (libnetwork's `Sandbox.ResolveIP`).
    pub fn resolve_ip(&self, ip: IpAddr) -> Option<String> {
        self.read().iter().find_map(|a| a.network.reverse(ip))
    }
}

/// The (name, network name) pairs to try for `name`, in libnetwork's order.
fn candidates(name: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    std::iter::once((name, None)).chain(
        name.rmatch_indices('.')
            .map(move |(i, _)| (&name[..i], &name[i + 1..]))
            .filter(|(req, network)| !req.is_empty() && !network.is_empty())
            .map(|(req, network)| (req, Some(network))),
    )
}

/// One pass of libnetwork's `sandbox.resolveName` over the attached networks.
fn resolve_in(
    attached: &[Attachment],
    req: &str,
    network_name: Option<&str>,
    links: bool,
    family: AddressFamily,
) -> Lookup {
    let mut no_data = false;
    for a in attached {
        if network_name.is_some_and(|n| !a.network.name.eq_ignore_ascii_case(n)) {
            continue;
        }
        let target = if links {
            match a.links.get(req) {
                Some(target) => target.as_str(),
                None => continue,
            }
        } else if a.links.contains_key(req) {
            continue;
        } else {
            req
        };
        match a.network.lookup(target, family) {
            Lookup::NotFound => {}
            Lookup::NoData => no_data = true,
            found @ Lookup::Found(_) => return found,
        }
    }
    if no_data {
        Lookup::NoData
    } else {
        Lookup::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn found(ips: &[&str]) -> Lookup {
        Lookup::Found(ips.iter().map(|s| ip(s)).collect())
    }

    /// A directory with networks n1 ("front") and n2 ("back") and a sandbox attached to both.
    fn setup() -> (RecordDirectory, SandboxRecords) {
        let dir = RecordDirectory::new();
        dir.add_network("n1", "front").unwrap();
        dir.add_network("n2", "back").unwrap();
        let sb = SandboxRecords::new(&dir);
        sb.attach_network("n1").unwrap();
        sb.attach_network("n2").unwrap();
        (dir, sb)
    }

    #[test]
    fn names_resolve_case_insensitively_with_or_without_trailing_dot() {
        let (dir, sb) = setup();
        dir.add_record("n1", "Web", ip("10.0.0.2"), RecordKind::Primary)
            .unwrap();
        assert_eq!(
            sb.resolve_name("web", AddressFamily::V4),
            found(&["10.0.0.2"])
        );
        assert_eq!(
            sb.resolve_name("WEB.", AddressFamily::V4),
            found(&["10.0.0.2"])
        );
        assert_eq!(
            sb.resolve_name("wEb.FRONT", AddressFamily::V4),
            found(&["10.0.0.2"])
        );
    }

    #[test]
    fn a_name_with_only_the_other_family_is_no_data() {
        let (dir, sb) = setup();
        dir.add_record("n1", "v4only", ip("10.0.0.2"), RecordKind::Primary)
            .unwrap();
        dir.add_record("n1", "v6only", ip("fd00::2"), RecordKind::Primary)
            .unwrap();
        assert_eq!(sb.resolve_name("v4only", AddressFamily::V6), Lookup::NoData);
        assert_eq!(sb.resolve_name("v6only", AddressFamily::V4), Lookup::NoData);
        assert_eq!(
            sb.resolve_name("v6only", AddressFamily::V6),
            found(&["fd00::2"])
        );
        assert_eq!(
            sb.resolve_name("nobody", AddressFamily::V4),
            Lookup::NotFound
        );
    }

    #[test]
    fn a_later_network_answers_when_an_earlier_one_has_only_the_other_family() {
        let (dir, sb) = setup();
        dir.add_record("n1", "db", ip("10.0.0.3"), RecordKind::Primary)
            .unwrap();
        dir.add_record("n2", "db", ip("fd00::3"), RecordKind::Primary)
            .unwrap();
        assert_eq!(
            sb.resolve_name("db", AddressFamily::V6),
            found(&["fd00::3"])
        );
    }

    #[test]
    fn the_first_attached_network_wins_and_order_can_change() {
        let (dir, sb) = setup();
        dir.add_record("n1", "db", ip("10.0.0.3"), RecordKind::Primary)
            .unwrap();
        dir.add_record("n2", "db", ip("10.1.0.3"), RecordKind::Primary)
            .unwrap();
        assert_eq!(
            sb.resolve_name("db", AddressFamily::V4),
            found(&["10.0.0.3"])
        );
        sb.set_network_order(&["n2", "n1"]).unwrap();
        assert_eq!(sb.networks(), ["n2", "n1"]);
        assert_eq!(
            sb.resolve_name("db", AddressFamily::V4),
            found(&["10.1.0.3"])
        );
        // The network-qualified form picks its network whatever the order.
        assert_eq!(
            sb.resolve_name("db.front", AddressFamily::V4),
            found(&["10.0.0.3"])
        );
    }

    #[test]
    fn reordering_must_list_exactly_the_attached_networks() {
        let (_dir, sb) = setup();
        for bad in [
            &["n1"][..],
            &["n1", "n1"],
            &["n1", "n3"],
            &["n1", "n2", "n3"],
        ] {
            let e = sb.set_network_order(bad).unwrap_err();
            assert_eq!(e.kind(), libnetwork_types::ErrorKind::BadRequest, "{bad:?}");
        }
        assert_eq!(sb.networks(), ["n1", "n2"]);
    }

    #[test]
    fn network_qualified_names_resolve_only_on_that_network() {
        let (dir, sb) = setup();
        dir.add_record("n2", "cache", ip("10.1.0.4"), RecordKind::Primary)
            .unwrap();
        assert_eq!(
            sb.resolve_name("cache.back", AddressFamily::V4),
            found(&["10.1.0.4"])
        );
        assert_eq!(
            sb.resolve_name("cache.front", AddressFamily::V4),
            Lookup::NotFound
        );
    }

    #[test]
    fn dotted_names_and_dotted_network_names_follow_libnetworks_candidates() {
        let dir = RecordDirectory::new();
        dir.add_network("n1", "corp.net").unwrap();
        let sb = SandboxRecords::new(&dir);
        sb.attach_network("n1").unwrap();
        dir.add_record("n1", "svc.v1", ip("10.0.0.9"), RecordKind::Alias)
            .unwrap();
        // The whole name first, then `svc` on network `v1.corp.net` (none), `svc.v1` on
        // `corp.net`.
        assert_eq!(
            sb.resolve_name("svc.v1", AddressFamily::V4),
            found(&["10.0.0.9"])
        );
        assert_eq!(
            sb.resolve_name("svc.v1.corp.net", AddressFamily::V4),
            found(&["10.0.0.9"])
        );
        assert_eq!(
            sb.resolve_name("svc.v1.corp", AddressFamily::V4),
            Lookup::NotFound
        );
    }

    #[test]
    fn names_on_networks_the_sandbox_is_not_attached_to_do_not_resolve() {
        let (dir, sb) = setup();
        dir.add_network("n3", "other").unwrap();
        dir.add_record("n3", "hidden", ip("10.2.0.2"), RecordKind::Primary)
            .unwrap();
        assert_eq!(
            sb.resolve_name("hidden", AddressFamily::V4),
            Lookup::NotFound
        );
        assert_eq!(
            sb.resolve_name("hidden.other", AddressFamily::V4),
            Lookup::NotFound
        );
        assert_eq!(sb.resolve_ip(ip("10.2.0.2")), None);
    }

    #[test]
    fn aliases_share_names_and_records_are_a_set() {
        let (dir, sb) = setup();
        assert!(
            dir.add_record("n1", "web", ip("10.0.0.2"), RecordKind::Alias)
                .unwrap()
        );
        assert!(
            dir.add_record("n1", "web", ip("10.0.0.5"), RecordKind::Alias)
                .unwrap()
        );
        assert!(
            !dir.add_record("n1", "WEB", ip("10.0.0.2"), RecordKind::Alias)
                .unwrap()
        );
        assert_eq!(
            sb.resolve_name("web", AddressFamily::V4),
            found(&["10.0.0.2", "10.0.0.5"])
        );
        assert!(
            dir.remove_record("n1", "web", ip("10.0.0.2"), RecordKind::Alias)
                .unwrap()
        );
        assert_eq!(
            sb.resolve_name("web", AddressFamily::V4),
            found(&["10.0.0.5"])
        );
        assert!(
            dir.remove_record("n1", "web", ip("10.0.0.5"), RecordKind::Alias)
                .unwrap()
        );
        assert!(
            !dir.remove_record("n1", "web", ip("10.0.0.5"), RecordKind::Alias)
                .unwrap()
        );
        assert_eq!(sb.resolve_name("web", AddressFamily::V4), Lookup::NotFound);
    }

    #[test]
    fn primary_names_get_ptr_records_and_aliases_do_not() {
        let (dir, sb) = setup();
        dir.add_record("n2", "Web", ip("10.1.0.2"), RecordKind::Primary)
            .unwrap();
        dir.add_record("n2", "www", ip("10.1.0.2"), RecordKind::Alias)
            .unwrap();
        assert_eq!(sb.resolve_ip(ip("10.1.0.2")).as_deref(), Some("Web.back"));
        assert_eq!(
            dir.resolve_ip("n2", ip("10.1.0.2")).unwrap().as_deref(),
            Some("Web.back")
        );
        dir.remove_record("n2", "web", ip("10.1.0.2"), RecordKind::Primary)
            .unwrap();
        assert_eq!(sb.resolve_ip(ip("10.1.0.2")), None);
        assert_eq!(
            sb.resolve_name("www", AddressFamily::V4),
            found(&["10.1.0.2"])
        );
    }

    #[test]
    fn link_aliases_resolve_to_their_target_only_in_their_sandbox() {
        let (dir, sb) = setup();
        let other = SandboxRecords::new(&dir);
        other.attach_network("n1").unwrap();
        dir.add_record("n1", "db", ip("10.0.0.3"), RecordKind::Primary)
            .unwrap();
        dir.add_record("n1", "mysql", ip("10.0.0.99"), RecordKind::Primary)
            .unwrap();
        sb.set_link_aliases("n1", [("mysql", "db")]).unwrap();
        // The link alias wins over the plain name of the same spelling.
        assert_eq!(
            sb.resolve_name("mysql", AddressFamily::V4),
            found(&["10.0.0.3"])
        );
        assert_eq!(
            other.resolve_name("mysql", AddressFamily::V4),
            found(&["10.0.0.99"])
        );
        sb.set_link_aliases("n1", Vec::<(&str, &str)>::new())
            .unwrap();
        assert_eq!(
            sb.resolve_name("mysql", AddressFamily::V4),
            found(&["10.0.0.99"])
        );
    }

    #[test]
    fn detaching_a_network_hides_its_names() {
        let (dir, sb) = setup();
        dir.add_record("n1", "web", ip("10.0.0.2"), RecordKind::Primary)
            .unwrap();
        sb.detach_network("n1").unwrap();
        assert_eq!(sb.resolve_name("web", AddressFamily::V4), Lookup::NotFound);
        assert!(sb.detach_network("n1").unwrap_err().is_not_found());
        sb.attach_network("n1").unwrap();
        assert_eq!(
            sb.resolve_name("web", AddressFamily::V4),
            found(&["10.0.0.2"])
        );
    }

    #[test]
    fn attaching_twice_or_an_unknown_network_fails() {
        let (_dir, sb) = setup();
        let e = sb.attach_network("n1").unwrap_err();
        assert_eq!(e.kind(), libnetwork_types::ErrorKind::Conflict);
        assert!(sb.attach_network("nope").unwrap_err().is_not_found());
        assert_eq!(sb.networks(), ["n1", "n2"]);
    }

    #[test]
    fn removing_a_network_removes_its_records_everywhere() {
        let (dir, sb) = setup();
        dir.add_record("n1", "web", ip("10.0.0.2"), RecordKind::Primary)
            .unwrap();
        dir.remove_network("n1").unwrap();
        assert_eq!(sb.resolve_name("web", AddressFamily::V4), Lookup::NotFound);
        assert_eq!(sb.resolve_ip(ip("10.0.0.2")), None);
        assert!(dir.remove_network("n1").unwrap_err().is_not_found());
        let e = dir
            .add_record("n1", "web", ip("10.0.0.2"), RecordKind::Primary)
            .unwrap_err();
        assert!(e.is_not_found());
    }

    #[test]
    fn a_network_id_keeps_its_name() {
        let dir = RecordDirectory::new();
        dir.add_network("n1", "front").unwrap();
        dir.add_network("n1", "front").unwrap();
        let e = dir.add_network("n1", "other").unwrap_err();
        assert_eq!(e.kind(), libnetwork_types::ErrorKind::Conflict);
        assert_eq!(dir.network_ids(), ["n1"]);
    }

    #[test]
    fn malformed_records_are_rejected_and_change_nothing() {
        let (dir, sb) = setup();
        for bad in ["", ".", "a..b", "sp ace", "semi;colon", &"x".repeat(64)] {
            let e = dir
                .add_record("n1", bad, ip("10.0.0.2"), RecordKind::Primary)
                .unwrap_err();
            assert_eq!(e.kind(), libnetwork_types::ErrorKind::BadRequest, "{bad:?}");
        }
        let e = dir
            .add_record("n1", "web", ip("0.0.0.0"), RecordKind::Primary)
            .unwrap_err();
        assert_eq!(e.kind(), libnetwork_types::ErrorKind::BadRequest);
        assert_eq!(sb.resolve_ip(ip("10.0.0.2")), None);
        assert_eq!(sb.resolve_name("web", AddressFamily::V4), Lookup::NotFound);
    }

    #[test]
    fn candidates_follow_libnetworks_order() {
        let got: Vec<_> = candidates("a.b.c").collect();
        assert_eq!(
            got,
            [("a.b.c", None), ("a.b", Some("c")), ("a", Some("b.c"))]
        );
        assert_eq!(candidates("a").collect::<Vec<_>>(), [("a", None)]);
    }
}
