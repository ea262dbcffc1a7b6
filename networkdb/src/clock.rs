//! Lamport clocks.

/// A Lamport clock: local events [`increment`](Self::increment) it, received events
/// [`witness`](Self::witness) their time, so a later event always carries a larger time than
/// every event its author had seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LamportClock {
    time: u64,
}

impl LamportClock {
    /// The current time (0 before any event).
    pub fn time(&self) -> u64 {
        self.time
    }

    /// Advances the clock for a local event and returns the event's time.
    pub fn increment(&mut self) -> u64 {
        self.time = self.time.saturating_add(1);
        self.time
    }

    /// Records a received time: the clock moves past it if it was not already.
    pub fn witness(&mut self, seen: u64) {
        if seen >= self.time {
            self.time = seen.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increment_returns_strictly_growing_times() {
        let mut c = LamportClock::default();
        assert_eq!(c.increment(), 1);
        assert_eq!(c.increment(), 2);
    }

    #[test]
    fn witnessing_a_later_time_moves_past_it_and_an_earlier_one_does_nothing() {
        let mut c = LamportClock::default();
        c.witness(10);
        assert_eq!(c.time(), 11);
        assert_eq!(c.increment(), 12);
        c.witness(3);
        assert_eq!(c.time(), 12);
    }
}
