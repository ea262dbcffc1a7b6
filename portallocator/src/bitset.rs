//! A dense set of the 65 536 port numbers: one bit per port, 8 KiB when it holds anything.

/// Number of 64-bit words covering every `u16`.
const WORDS: usize = 1 << 10;

/// A set of ports. Bit `p % 64` of word `p / 64` stands for port `p`.
///
/// The words are allocated on the first insert and freed when the set becomes empty again, so
/// an address that holds nothing costs a few bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct PortSet {
    words: Option<Box<[u64; WORDS]>>,
    len: u32,
}

impl PortSet {
    /// Whether `port` is in the set.
    #[inline]
    pub(crate) fn contains(&self, port: u16) -> bool {
        match &self.words {
            Some(words) => words[usize::from(port) / 64] & bit(port) != 0,
            None => false,
        }
    }

    /// Adds `port`; returns false (and changes nothing) when it was already there.
    #[inline]
    pub(crate) fn insert(&mut self, port: u16) -> bool {
        let words = self.words.get_or_insert_with(zeroed_words);
        let word = &mut words[usize::from(port) / 64];
        if *word & bit(port) != 0 {
            return false;
        }
        *word |= bit(port);
        self.len += 1;
        true
    }

    /// Removes `port`; returns false when it was not there.
    #[inline]
    pub(crate) fn remove(&mut self, port: u16) -> bool {
        let Some(words) = &mut self.words else {
            return false;
        };
        let word = &mut words[usize::from(port) / 64];
        if *word & bit(port) == 0 {
            return false;
        }
        *word &= !bit(port);
        self.len -= 1;
        if self.len == 0 {
            self.words = None;
        }
        true
    }

    /// Number of ports in the set.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// Iterates the ports in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.words.iter().flat_map(|words| {
            words.iter().enumerate().flat_map(|(index, &word)| {
                let base = index * 64;
                SetBits(word).map(move |offset| (base + offset) as u16)
            })
        })
    }

    /// The lowest port of `from..=to` that is neither in `self` nor in `blocked`, searched a
    /// word (64 ports) at a time. `from <= to` is the caller's promise.
    #[inline(always)]
    pub(crate) fn first_free(&self, blocked: &Self, from: u16, to: u16) -> Option<u16> {
        debug_assert!(from <= to);
        let (first, last) = (usize::from(from) / 64, usize::from(to) / 64);
        for index in first..=last {
            // Ports of the word outside `from..=to` count as taken.
            let mut taken = word_at(self, index) | word_at(blocked, index);
            if index == first {
                taken |= bit(from) - 1;
            }
            if index == last && to % 64 != 63 {
                taken |= !((bit(to) << 1) - 1);
            }
            if taken != u64::MAX {
                let offset = (!taken).trailing_zeros() as usize;
                return Some((index * 64 + offset) as u16);
            }
        }
        None
    }
}

/// The mask of `port` inside its word.
#[inline]
fn bit(port: u16) -> u64 {
    1 << (port % 64)
}

/// Word `index` of `set`, all zeros when the set has no words.
#[inline]
fn word_at(set: &PortSet, index: usize) -> u64 {
    match &set.words {
        Some(words) => words[index],
        None => 0,
    }
}

/// A zeroed word array, allocated directly on the heap (no 8 KiB stack temporary).
fn zeroed_words() -> Box<[u64; WORDS]> {
    vec![0u64; WORDS]
        .into_boxed_slice()
        .try_into()
        .unwrap_or_else(|_| unreachable!("the vector has exactly WORDS elements"))
}

/// Offsets of the set bits of a word, lowest first.
struct SetBits(u64);

impl Iterator for SetBits {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let offset = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_remove_report_whether_the_set_changed() {
        let mut set = PortSet::default();
        assert!(set.insert(80));
        assert!(!set.insert(80));
        assert!(set.contains(80));
        assert_eq!(set.len(), 1);
        assert!(set.remove(80));
        assert!(!set.remove(80));
        assert_eq!(set.len(), 0);
        assert!(set.words.is_none(), "an empty set frees its words");
    }

    #[test]
    fn first_free_honours_both_bounds_inside_one_word() {
        let mut set = PortSet::default();
        let none = PortSet::default();
        for port in 64..70 {
            set.insert(port);
        }
        assert_eq!(set.first_free(&none, 64, 127), Some(70));
        assert_eq!(set.first_free(&none, 64, 69), None);
        assert_eq!(set.first_free(&none, 66, 66), None);
        assert_eq!(set.first_free(&none, 71, 71), Some(71));
    }

    #[test]
    fn first_free_skips_ports_of_the_blocking_set() {
        let mut own = PortSet::default();
        let mut blocked = PortSet::default();
        own.insert(0);
        blocked.insert(1);
        assert_eq!(own.first_free(&blocked, 0, 10), Some(2));
    }

    #[test]
    fn first_free_crosses_words_and_reaches_the_last_port() {
        let mut set = PortSet::default();
        let none = PortSet::default();
        for port in 100..=u16::MAX - 1 {
            set.insert(port);
        }
        assert_eq!(set.first_free(&none, 100, u16::MAX), Some(u16::MAX));
        set.insert(u16::MAX);
        assert_eq!(set.first_free(&none, 100, u16::MAX), None);
    }

    #[test]
    fn iter_lists_ports_in_ascending_order() {
        let mut set = PortSet::default();
        for port in [65535, 0, 64, 63, 1000] {
            set.insert(port);
        }
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 63, 64, 1000, 65535]);
    }
}
