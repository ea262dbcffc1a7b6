//! Measures durable write latency of the redb store: a baseline of plain redb (one durable
//! transaction per put, no store), one writer through the store, then 8 concurrent writers
//! sharing group commits.
//!
//! Run (release, a few seconds):
//!     cargo run --release -p libnetwork-datastore --example redb_latency [-- <dir> [writes]]
//!
//! `<dir>` defaults to a temporary directory (make sure it is on a real disk, not tmpfs);
//! `writes` is the number of puts per writer (default 300).

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use libnetwork_datastore::{Precondition, RedbStore, Store, key};

const WRITERS: usize = 8;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tmp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let writes: usize = args.next().map_or(Ok(300), |w| w.parse())?;
    let value = vec![b'x'; 200];

    // Baseline: plain redb, one durable write transaction per put, on the calling thread.
    {
        const TABLE: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("t");
        let db = redb::Database::create(dir.join("baseline.redb"))?;
        let mut samples = Vec::with_capacity(writes);
        for i in 0..writes {
            let k = key(&["raw", &i.to_string()]);
            let start = Instant::now();
            let txn = db.begin_write()?;
            txn.open_table(TABLE)?
                .insert(k.as_str(), value.as_slice())?;
            txn.commit()?;
            samples.push(start.elapsed());
        }
        println!(
            "plain redb: median commit latency {:?} ({writes} commits)",
            median(samples)
        );
    }

    let store = RedbStore::open(dir.join("latency.redb"))?;

    // One writer: every put is its own durable commit.
    let mut single = Vec::with_capacity(writes);
    for i in 0..writes {
        let k = key(&["single", &i.to_string()]);
        let start = Instant::now();
        store.put(&k, &value, Precondition::None)?;
        single.push(start.elapsed());
    }
    println!(
        "1 writer:  median put latency {:?} ({writes} puts)",
        median(single)
    );

    // Eight writers at once: puts queue up behind a commit and share the next one.
    let before = store.commit_stats();
    let start = Instant::now();
    let latencies: Vec<Duration> = thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|t| {
                let (store, value) = (&store, &value);
                s.spawn(move || {
                    (0..writes)
                        .map(|i| {
                            let k = key(&["multi", &t.to_string(), &i.to_string()]);
                            let start = Instant::now();
                            store.put(&k, value, Precondition::None).expect("put");
                            start.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect()
    });
    let wall = start.elapsed();
    let after = store.commit_stats();
    let total = WRITERS * writes;
    let commits = after.commits - before.commits;
    println!(
        "{WRITERS} writers: {total} puts in {wall:?}: {:?} per write, median put latency {:?}, \
         {commits} commits ({:.1} puts per commit)",
        wall / u32::try_from(total)?,
        median(latencies),
        total as f64 / commits as f64,
    );
    Ok(())
}
