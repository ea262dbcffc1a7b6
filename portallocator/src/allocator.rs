//! The allocator: which ports each (address, protocol) holds, and the search for free ones.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use crate::bitset::PortSet;
use crate::types::protocol_index;
use crate::{Error, PortRange, PortRequest, Protocol};

/// Number of (address family, protocol) slots: IPv4 and IPv6 times tcp, udp and sctp.
const SLOTS: usize = 2 * Protocol::ALL.len();

/// Host ports in use, per (host address, protocol), with libnetwork's search order.
///
/// Pure state: no I/O, no locks. Share it behind the caller's own mutex.
///
/// # Conflicts
/// A port taken on an address blocks it for that address. In addition, and unlike libnetwork,
/// the unspecified address of a family (`0.0.0.0`, `::`) overlaps every specific address of
/// that family: `0.0.0.0:80/tcp` cannot be taken while `10.0.0.1:80/tcp` is held and the other
/// way round, exactly as the kernel would refuse the second `bind`. IPv4 and IPv6 never
/// conflict with each other, and IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as
/// the IPv4 address they map.
///
/// # Search order
/// Every (address, protocol, range) remembers the last port it handed out; a dynamic or range
/// request continues after it and wraps to the range start, so a released port is reused only
/// after the rest of the range has been tried (libnetwork's behaviour).
#[derive(Debug, Clone)]
pub struct PortAllocator {
    /// The range searched by [`PortRequest::Dynamic`].
    dynamic: PortRange,
    /// Per (family, protocol): the unspecified address's ports and the union of the ports of
    /// every specific address.
    slots: [Slot; SLOTS],
    /// Specific (non-unspecified) addresses.
    specific: BTreeMap<Key, Binding>,
}

/// A specific address and protocol as a map key: the slot first (so one family and protocol
/// form a contiguous key range), then the address bits. Plain integers compare much faster in
/// the map's search than `(IpAddr, Protocol)`, whose derived order dominated the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    slot: u8,
    bits: u128,
}

impl Key {
    /// The key of `ip` (canonical) in `slot`.
    fn new(slot: usize, ip: IpAddr) -> Self {
        let bits = match ip {
            IpAddr::V4(v4) => u128::from(v4.to_bits()),
            IpAddr::V6(v6) => v6.to_bits(),
        };
        Self {
            slot: slot as u8,
            bits,
        }
    }

    /// The address this key stands for.
    fn ip(self) -> IpAddr {
        if usize::from(self.slot) < Protocol::ALL.len() {
            IpAddr::V4(Ipv4Addr::from_bits(self.bits as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from_bits(self.bits))
        }
    }

    /// Every key of `slot`.
    fn slot_range(slot: usize) -> RangeInclusive<Self> {
        let slot = slot as u8;
        Self { slot, bits: 0 }..=Self {
            slot,
            bits: u128::MAX,
        }
    }
}

/// The ports one address holds for one protocol, and its search cursors.
#[derive(Debug, Clone, Default)]
struct Binding {
    ports: PortSet,
    /// The last port handed out per searched range. Nearly always one or two entries, so a
    /// vector beats a map.
    cursors: Vec<(PortRange, u16)>,
}

/// Per (address family, protocol) state shared by all addresses of that family.
#[derive(Debug, Clone, Default)]
struct Slot {
    /// The unspecified address (`0.0.0.0` or `::`).
    any: Binding,
    /// Ports held by at least one specific address of the family.
    union: PortSet,
    /// For ports held by two or more specific addresses, how many hold them; a port absent
    /// from this map but in `union` is held by exactly one address. Keeps `union` exact on
    /// release without scanning every address.
    shared: HashMap<u16, u32>,
}

impl Slot {
    fn add_specific(&mut self, port: u16) {
        if !self.union.insert(port) {
            *self.shared.entry(port).or_insert(1) += 1;
        }
    }

    fn remove_specific(&mut self, port: u16) {
        match self.shared.get_mut(&port) {
            Some(count) if *count > 2 => *count -= 1,
            Some(_) => {
                self.shared.remove(&port);
            }
            None => {
                self.union.remove(port);
            }
        }
    }
}

impl Binding {
    /// Takes the first port of `range` after the range's cursor (wrapping) that is neither held
    /// by this binding nor in `blocked`, and moves the cursor to it.
    #[inline(always)]
    fn take_in(&mut self, blocked: &PortSet, range: PortRange) -> Option<u16> {
        let (start, end) = (range.start(), range.end());
        let cursor = self.cursors.iter().position(|(r, _)| *r == range);
        let next = match cursor.map(|index| self.cursors[index].1) {
            Some(last) if last < end => last + 1,
            _ => start,
        };
        let port = self.ports.first_free(blocked, next, end).or_else(|| {
            (next > start)
                .then(|| self.ports.first_free(blocked, start, next - 1))
                .flatten()
        })?;
        self.ports.insert(port);
        match cursor {
            Some(index) => self.cursors[index].1 = port,
            None => self.cursors.push((range, port)),
        }
        Some(port)
    }
}

/// Where an address's state lives.
enum Target {
    /// The unspecified address of the slot.
    Any(usize),
    /// A specific address in the slot.
    Specific(usize),
}

/// The canonical form of `ip` (IPv4-mapped IPv6 becomes IPv4) and where its state lives.
///
/// Matches the address once instead of calling `to_canonical`, `is_ipv6` and `is_unspecified`
/// in turn: that sequence made the compiler spill and reload the address through the stack
/// (a store-forwarding stall costing about a third of a sequential allocation).
#[inline]
fn target(ip: IpAddr, proto: Protocol) -> (IpAddr, Target) {
    let (ip, family, unspecified) = match ip {
        IpAddr::V4(v4) => (ip, 0, v4.to_bits() == 0),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), 0, v4.to_bits() == 0),
            None => (ip, 1, v6.to_bits() == 0),
        },
    };
    let slot = family * Protocol::ALL.len() + protocol_index(proto);
    if unspecified {
        (ip, Target::Any(slot))
    } else {
        (ip, Target::Specific(slot))
    }
}

impl PortAllocator {
    /// An allocator with nothing allocated whose dynamic requests use `dynamic` (see
    /// [`crate::system_port_range`] for the kernel's range).
    pub fn new(dynamic: PortRange) -> Self {
        Self {
            dynamic,
            slots: Default::default(),
            specific: BTreeMap::new(),
        }
    }

    /// An allocator using the kernel's dynamic range, read from
    /// `/proc/sys/net/ipv4/ip_local_port_range` (49153-65535 when it cannot be read). This is
    /// the only constructor that does I/O.
    pub fn with_system_range() -> Self {
        Self::new(crate::system_port_range())
    }

    /// The range searched by [`PortRequest::Dynamic`].
    pub fn dynamic_range(&self) -> PortRange {
        self.dynamic
    }

    /// Reserves a port on `ip` for `proto`: `port` itself, or any free port of the dynamic range
    /// when `port` is 0 (libnetwork's `RequestPort`). Returns the port reserved.
    ///
    /// # Errors
    /// See [`PortAllocator::request`].
    pub fn request_port(&mut self, ip: IpAddr, proto: Protocol, port: u16) -> Result<u16, Error> {
        self.request_port_in_range(ip, proto, port, port)
    }

    /// Reserves a port on `ip` for `proto` following libnetwork's `RequestPortInRange`
    /// convention (see [`PortRequest::from_bounds`]). Returns the port reserved.
    ///
    /// # Errors
    /// [`Error::InvalidPortRange`] for bounds that are neither `(0, 0)`, `(p, p)` nor a range,
    /// and the errors of [`PortAllocator::request`].
    pub fn request_port_in_range(
        &mut self,
        ip: IpAddr,
        proto: Protocol,
        start: u16,
        end: u16,
    ) -> Result<u16, Error> {
        let request = PortRequest::from_bounds(start, end)?;
        self.request(ip, proto, request)
    }

    /// Reserves a port on `ip` for `proto` and returns it.
    ///
    /// # Errors
    /// - [`Error::PortAlreadyAllocated`] when a specific port is held by `ip` or by an
    ///   overlapping address (see the type's docs);
    /// - [`Error::AllPortsAllocated`] when no port of the searched range is free.
    ///
    /// The allocator is unchanged on error.
    pub fn request(
        &mut self,
        ip: IpAddr,
        proto: Protocol,
        request: PortRequest,
    ) -> Result<u16, Error> {
        let range = match request {
            PortRequest::Specific(port) => return self.request_specific(ip, proto, port.get()),
            PortRequest::Dynamic => self.dynamic,
            PortRequest::InRange(range) => range,
        };
        match target(ip, proto) {
            (ip, Target::Any(slot)) => {
                let Slot { any, union, .. } = &mut self.slots[slot];
                any.take_in(union, range)
                    .ok_or_else(|| exhausted(ip, proto, range))
            }
            (ip, Target::Specific(slot)) => {
                let binding = self.specific.entry(Key::new(slot, ip)).or_default();
                let slot = &mut self.slots[slot];
                let port = binding
                    .take_in(&slot.any.ports, range)
                    .ok_or_else(|| exhausted(ip, proto, range))?;
                slot.add_specific(port);
                Ok(port)
            }
        }
    }

    fn request_specific(&mut self, ip: IpAddr, proto: Protocol, port: u16) -> Result<u16, Error> {
        let (ip, target) = target(ip, proto);
        if let Some(holder) = self.holder(ip, proto, port) {
            return Err(Error::PortAlreadyAllocated {
                ip,
                proto,
                port,
                holder,
            });
        }
        match target {
            Target::Any(slot) => {
                self.slots[slot].any.ports.insert(port);
            }
            Target::Specific(slot) => {
                let binding = self.specific.entry(Key::new(slot, ip)).or_default();
                binding.ports.insert(port);
                self.slots[slot].add_specific(port);
            }
        }
        Ok(port)
    }

    /// An address holding a port that `ip` cannot take alongside: `ip` itself first, then the
    /// overlapping unspecified or specific address.
    fn holder(&self, ip: IpAddr, proto: Protocol, port: u16) -> Option<IpAddr> {
        let (ip, target) = target(ip, proto);
        if self.is_allocated(ip, proto, port) {
            return Some(ip);
        }
        match target {
            Target::Any(slot) if self.slots[slot].union.contains(port) => self
                .specific
                .range(Key::slot_range(slot))
                .find(|(_, binding)| binding.ports.contains(port))
                .map(|(key, _)| key.ip()),
            Target::Specific(slot) if self.slots[slot].any.ports.contains(port) => {
                Some(unspecified_like(ip))
            }
            _ => None,
        }
    }

    /// Whether `ip` itself holds `port` for `proto` (overlapping addresses not considered).
    pub fn is_allocated(&self, ip: IpAddr, proto: Protocol, port: u16) -> bool {
        match target(ip, proto) {
            (_, Target::Any(slot)) => self.slots[slot].any.ports.contains(port),
            (ip, Target::Specific(slot)) => self
                .specific
                .get(&Key::new(slot, ip))
                .is_some_and(|binding| binding.ports.contains(port)),
        }
    }

    /// Whether a request for exactly `port` on `ip` would succeed now.
    pub fn is_available(&self, ip: IpAddr, proto: Protocol, port: u16) -> bool {
        port != 0 && self.holder(ip, proto, port).is_none()
    }

    /// Frees `port` on `ip` for `proto`. Returns whether it was held; releasing a port that is
    /// not held is not an error (libnetwork's `ReleasePort` never fails). The search cursors
    /// stay where they are.
    pub fn release_port(&mut self, ip: IpAddr, proto: Protocol, port: u16) -> bool {
        match target(ip, proto) {
            (_, Target::Any(slot)) => self.slots[slot].any.ports.remove(port),
            (ip, Target::Specific(slot)) => {
                let Some(binding) = self.specific.get_mut(&Key::new(slot, ip)) else {
                    return false;
                };
                if !binding.ports.remove(port) {
                    return false;
                }
                self.slots[slot].remove_specific(port);
                true
            }
        }
    }

    /// Frees every port of every address and forgets the search cursors.
    pub fn release_all(&mut self) {
        self.slots = Default::default();
        self.specific.clear();
    }

    /// The ports `ip` holds for `proto`, ascending.
    pub fn allocated_ports(&self, ip: IpAddr, proto: Protocol) -> Vec<u16> {
        match target(ip, proto) {
            (_, Target::Any(slot)) => self.slots[slot].any.ports.iter().collect(),
            (ip, Target::Specific(slot)) => self
                .specific
                .get(&Key::new(slot, ip))
                .map(|binding| binding.ports.iter().collect())
                .unwrap_or_default(),
        }
    }

    /// Total number of ports held, over all addresses and protocols.
    pub fn allocated_count(&self) -> usize {
        let any: u32 = self.slots.iter().map(|slot| slot.any.ports.len()).sum();
        let specific: u32 = self.specific.values().map(|b| b.ports.len()).sum();
        (any + specific) as usize
    }
}

impl Default for PortAllocator {
    /// An allocator over [`PortRange::DEFAULT_DYNAMIC`] (no I/O).
    fn default() -> Self {
        Self::new(PortRange::DEFAULT_DYNAMIC)
    }
}

/// The error of an exhausted range, kept out of line so the hot path stays small.
#[cold]
#[inline(never)]
fn exhausted(ip: IpAddr, proto: Protocol, range: PortRange) -> Error {
    Error::AllPortsAllocated { ip, proto, range }
}

/// The unspecified address of `ip`'s family.
fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}
