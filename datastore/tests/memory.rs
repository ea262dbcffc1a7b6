//! The shared store behaviours against [`MemoryStore`].

#[macro_use]
mod common;

use common::Fixture;
use libnetwork_datastore::{MemoryStore, Scope, Store};

fn memory(name: &str) -> Option<Fixture> {
    Some(Fixture {
        store: Box::new(MemoryStore::new()),
        ns: name.to_owned(),
        _keep: Box::new(()),
    })
}

store_behaviours!(memory);

#[test]
fn memory_store_reports_the_scope_it_was_made_for() {
    assert_eq!(MemoryStore::new().scope(), Scope::Local);
    assert_eq!(
        MemoryStore::with_scope(Scope::Global).scope(),
        Scope::Global
    );
}
