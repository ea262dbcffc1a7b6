//! Property tests: request/release sequences checked against a `BTreeSet` model.

use std::collections::BTreeSet;
use std::sync::Arc;

use libnetwork_datastore::MemoryStore;
use libnetwork_ipamapi::{Ipam, Options};
use proptest::prelude::*;

use super::*;
use crate::addr::address_at;
use crate::{DefaultIpam, IpamConfig};

/// The pool under test: 64 addresses, ordinals 0 (network) and 63 (broadcast) reserved.
const POOL: &str = "10.9.0.0/26";
/// A sub-pool of it: ordinals 16 to 31.
const SUB: &str = "10.9.0.16/28";
const RESERVED: [u64; 2] = [0, 63];

#[derive(Debug, Clone)]
enum Step {
    /// Any address, from the sub-pool or the pool, serial or lowest-first.
    Any { sub: bool, serial: bool },
    /// A preferred address (by ordinal).
    Preferred(u64),
    /// Release an address (by ordinal).
    Release(u64),
    /// Start a new driver on the same store (driver test only).
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>()).prop_map(|(sub, serial)| Step::Any { sub, serial }),
        2 => (0u64..64).prop_map(Step::Preferred),
        3 => (0u64..64).prop_map(Step::Release),
        1 => Just(Step::Restart),
    ]
}

/// What the allocator should do: the allocated ordinals and the serial cursor.
#[derive(Debug, Default)]
struct Model {
    allocated: BTreeSet<u64>,
    cursor: u64,
}

/// What a step should answer: an ordinal, or the kind of error.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Ordinal(u64),
    Released,
    Reserved,
    InUse,
    Exhausted,
}

impl Model {
    fn free(&self, o: u64) -> bool {
        !RESERVED.contains(&o) && !self.allocated.contains(&o)
    }

    fn apply(&mut self, step: &Step) -> Option<Expect> {
        Some(match *step {
            Step::Any { sub, serial } => {
                let (start, end) = if sub { (16, 31) } else { (0, 63) };
                let from = if serial && self.cursor > start && self.cursor <= end {
                    self.cursor
                } else {
                    start
                };
                let found = (from..=end).chain(start..from).find(|&o| self.free(o));
                match found {
                    Some(o) => {
                        self.allocated.insert(o);
                        self.cursor = o + 1;
                        Expect::Ordinal(o)
                    }
                    None => Expect::Exhausted,
                }
            }
            Step::Preferred(o) if RESERVED.contains(&o) => Expect::Reserved,
            Step::Preferred(o) if !self.allocated.insert(o) => Expect::InUse,
            Step::Preferred(o) => Expect::Ordinal(o),
            Step::Release(o) if RESERVED.contains(&o) => Expect::Reserved,
            Step::Release(o) => {
                self.allocated.remove(&o);
                Expect::Released
            }
            Step::Restart => return None,
        })
    }
}

fn outcome(result: Result<Option<IpAddr>, ApiError>) -> Expect {
    let pool = net(POOL);
    match result {
        Ok(Some(addr)) => Expect::Ordinal(crate::addr::ordinal_of(&pool, addr).unwrap()),
        Ok(None) => Expect::Released,
        Err(ApiError::ReservedAddress { .. }) => Expect::Reserved,
        Err(ApiError::IpAlreadyAllocated { .. }) => Expect::InUse,
        Err(ApiError::NoAvailableIps(_)) => Expect::Exhausted,
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn how(serial: bool) -> AddressRequest {
    AddressRequest {
        serial,
        gateway: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn allocator_matches_a_set_model(steps in prop::collection::vec(step(), 1..200)) {
        let mut a = Allocator::default();
        let pool_id = sub_pool(&mut a, POOL, SUB);
        let master_id = format!("{LOCAL}/{POOL}");
        let pool = net(POOL);
        let mut model = Model::default();
        for step in &steps {
            let Some(expected) = model.apply(step) else { continue };
            let result = match *step {
                Step::Any { sub, serial } => {
                    let id = if sub { &pool_id } else { &master_id };
                    a.request_address(id, None, how(serial)).map(|n| Some(n.addr()))
                }
                Step::Preferred(o) => {
                    a.request_address(&pool_id, Some(address_at(&pool, o)), ANY)
                        .map(|n| Some(n.addr()))
                }
                Step::Release(o) => a.release_address(&pool_id, address_at(&pool, o)).map(|()| None),
                Step::Restart => unreachable!(),
            };
            prop_assert_eq!(outcome(result), expected, "{:?}", step);
        }
        let set: BTreeSet<u64> = a.allocation(&pool_id).unwrap().iter_set().collect();
        let mut expected = model.allocated.clone();
        expected.extend(RESERVED);
        prop_assert_eq!(set, expected);
    }

    #[test]
    fn persisted_driver_matches_a_set_model_across_restarts(
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let store = Arc::new(MemoryStore::new());
        let start = || {
            DefaultIpam::new(IpamConfig {
                local_store: Some(store.clone()),
                ..IpamConfig::default()
            })
            .unwrap()
        };
        let mut driver = start();
        let serial_opts = Options::from([(
            libnetwork_ipamapi::ALLOC_SERIAL_PREFIX.to_owned(),
            "true".to_owned(),
        )]);
        let none = Options::new();
        let master_id = driver
            .request_pool(LOCAL, Some(net(POOL)), None, &none, false)
            .unwrap()
            .pool_id;
        let pool_id = driver
            .request_pool(LOCAL, Some(net(POOL)), Some(net(SUB)), &none, false)
            .unwrap()
            .pool_id;
        let pool = net(POOL);
        let mut model = Model::default();
        for step in &steps {
            let Some(expected) = model.apply(step) else {
                // The serial cursor is not persisted: a new driver starts lowest-first.
                driver = start();
                model.cursor = 0;
                continue;
            };
            let result = match *step {
                Step::Any { sub, serial } => {
                    let id = if sub { &pool_id } else { &master_id };
                    let opts = if serial { &serial_opts } else { &none };
                    driver.request_address(id, None, opts).map(|a| Some(a.address.addr()))
                }
                Step::Preferred(o) => driver
                    .request_address(&pool_id, Some(address_at(&pool, o)), &none)
                    .map(|a| Some(a.address.addr())),
                Step::Release(o) => {
                    driver.release_address(&pool_id, address_at(&pool, o)).map(|()| None)
                }
                Step::Restart => unreachable!(),
            };
            prop_assert_eq!(outcome(result), expected, "{:?}", step);
        }
        // What a fresh driver loads is what the model says.
        let loaded = start().snapshot();
        let set: BTreeSet<u64> = loaded.allocation(&pool_id).unwrap().iter_set().collect();
        let mut expected = model.allocated.clone();
        expected.extend(RESERVED);
        prop_assert_eq!(set, expected);
    }
}
