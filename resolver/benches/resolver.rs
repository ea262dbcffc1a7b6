//! Queries per second and latency of the embedded DNS server, with its own load generator.
//!
//! `CARGO_TARGET_DIR=/var/cache/rlibnetwork/target cargo bench -p libnetwork-resolver`
//!
//! Runs in a private network namespace (root needed; prints a skip line and exits otherwise).
//! A sandbox gets an embedded server at 127.0.0.11:53 (on a 2-worker tokio runtime) attached
//! to a network of 1000 names, and an upstream responder runs on 127.0.0.1:5300 of the
//! bench's namespace (a plain thread answering every query with one A record). The load
//! generator is `CLIENTS` threads, each with one UDP socket made inside the sandbox and
//! `WINDOW` queries outstanding (a new query goes out as each answer comes back), timing each
//! query from send to answer. Cases:
//! - `local`: A queries for names of the network, answered from the records;
//! - `forwarded`: A queries for `example.com`, answered by the upstream through the server.
//!
//! Each case runs `ROUNDS` times (`RESOLVER_BENCH_SECONDS` seconds each, default 3, after a
//! 1 s warm-up); the summary line gives the median over rounds of queries per second and of
//! each round's median and p99 latency. A last section times `SandboxRecords::resolve_name`
//! alone, without and with a thread adding and removing records on the same network.
//!
//! Under `cargo test` (no `--bench` argument) every case runs once for a fraction of a second
//! as a smoke test.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use libnetwork_osl::{Host, Sandbox};
use libnetwork_resolver::{
    AddressFamily, DEFAULT_LISTEN, Lookup, RecordDirectory, RecordKind, Resolver, ResolverConfig,
    SandboxRecords,
};

const CLIENTS: usize = 2;
const WINDOW: usize = 8;
const ROUNDS: usize = 3;
const NAMES: usize = 1000;
const UPSTREAM: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5300);

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("resolver bench skipped: needs root (private network namespace)");
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let seconds = std::env::var("RESOLVER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    let (warm_up, measure, rounds) = if full {
        (
            Duration::from_secs(1),
            Duration::from_secs_f64(seconds),
            ROUNDS,
        )
    } else {
        (Duration::from_millis(50), Duration::from_millis(200), 1)
    };

    libnetwork_testutil::enter_private_namespaces();
    let run_dir = tempfile::tempdir().expect("run directory");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let directory = RecordDirectory::new();
    directory.add_network("n1", "bench").expect("network");
    for i in 0..NAMES {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32 + 2));
        directory
            .add_record("n1", &format!("c{i}"), ip, RecordKind::Primary)
            .expect("record");
    }
    let records = SandboxRecords::new(&directory);
    records.attach_network("n1").expect("attach");

    let upstream = start_upstream();
    let (sandbox, resolver) = rt.block_on(async {
        let host = Host::new(run_dir.path()).await.expect("host");
        let sandbox = host
            .create_sandbox(&host.key_for("bench"))
            .await
            .expect("sandbox");
        let config = ResolverConfig {
            upstreams: vec![UPSTREAM],
            ..ResolverConfig::default()
        };
        let resolver = Resolver::start(sandbox.netns(), records.clone(), config)
            .await
            .expect("resolver");
        (sandbox, resolver)
    });

    println!(
        "embedded dns: {CLIENTS} client threads x {WINDOW} queries in flight, {rounds} round(s) \
         of {measure:?} after {warm_up:?} warm-up"
    );
    for case in [Case::Local, Case::Forwarded] {
        let mut results = Vec::new();
        for round in 0..rounds {
            let sockets = rt.block_on(client_sockets(&sandbox));
            let r = run_load(case, sockets, warm_up, measure);
            println!(
                "  {:<9} round {}: {:>8.0} qps, median {:>6.0} µs, p99 {:>6.0} µs, {} answers, {} lost",
                case.name(),
                round + 1,
                r.qps,
                r.median_us,
                r.p99_us,
                r.answered,
                r.lost
            );
            results.push(r);
        }
        println!(
            "{:<9} median of rounds: {:.0} qps, latency median {:.0} µs, p99 {:.0} µs",
            case.name(),
            median(results.iter().map(|r| r.qps)),
            median(results.iter().map(|r| r.median_us)),
            median(results.iter().map(|r| r.p99_us)),
        );
    }

    rt.block_on(resolver.stop()).expect("stop");
    drop(upstream);
    lookup_bench(&directory, &records, full);
    drop(sandbox);
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Local,
    Forwarded,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Forwarded => "forwarded",
        }
    }

    /// The query names of this case.
    fn names(self) -> Vec<String> {
        match self {
            Self::Local => (0..NAMES).map(|i| format!("c{i}")).collect(),
            Self::Forwarded => vec!["example.com".into()],
        }
    }
}

struct RoundResult {
    qps: f64,
    median_us: f64,
    p99_us: f64,
    answered: usize,
    lost: usize,
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One UDP socket per client, made inside the sandbox and connected to the server.
async fn client_sockets(sandbox: &Sandbox) -> Vec<UdpSocket> {
    sandbox
        .run_in(|| {
            (0..CLIENTS)
                .map(|_| {
                    let s = UdpSocket::bind("127.0.0.1:0").expect("client socket");
                    s.connect(DEFAULT_LISTEN).expect("connect");
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .expect("timeout");
                    s
                })
                .collect()
        })
        .await
        .expect("enter sandbox")
}

/// Encoded A queries for `names`, id 0 (patched per send).
fn encoded_queries(names: &[String]) -> Vec<Vec<u8>> {
    names
        .iter()
        .map(|n| {
            let mut m = Message::query();
            m.metadata.recursion_desired = true;
            m.add_query(Query::query(
                Name::from_ascii(n).expect("name"),
                RecordType::A,
            ));
            m.to_vec().expect("encode")
        })
        .collect()
}

/// Drives `sockets` for `warm_up + measure`, counting answers and latencies in `measure`.
fn run_load(
    case: Case,
    sockets: Vec<UdpSocket>,
    warm_up: Duration,
    measure: Duration,
) -> RoundResult {
    let queries = Arc::new(encoded_queries(&case.names()));
    let start = Instant::now() + Duration::from_millis(10);
    let (from, until) = (start + warm_up, start + warm_up + measure);
    let handles: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            let queries = Arc::clone(&queries);
            thread::spawn(move || client(&socket, &queries, start, from, until))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut lost = 0;
    for h in handles {
        let (l, n) = h.join().expect("client thread");
        latencies.extend(l);
        lost += n;
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(f64::NAN, |d: &Duration| d.as_secs_f64() * 1e6)
    };
    RoundResult {
        qps: latencies.len() as f64 / measure.as_secs_f64(),
        median_us: pct(0.5),
        p99_us: pct(0.99),
        answered: latencies.len(),
        lost,
    }
}

/// One client: keeps `WINDOW` queries outstanding; returns the latencies of the queries sent
/// and answered within [from, until), and how many queries got no answer.
fn client(
    socket: &UdpSocket,
    queries: &[Vec<u8>],
    start: Instant,
    from: Instant,
    until: Instant,
) -> (Vec<Duration>, usize) {
    while Instant::now() < start {
        thread::yield_now();
    }
    let mut sent_at: Vec<Option<Instant>> = vec![None; 1 << 16];
    let mut next_id: u16 = 0;
    let mut next_query = 0;
    let mut latencies = Vec::with_capacity(1 << 20);
    let mut lost = 0;
    let mut buf = [0u8; 1500];

    let mut send = |sent_at: &mut Vec<Option<Instant>>| {
        let mut q = queries[next_query % queries.len()].clone();
        next_query += 1;
        next_id = next_id.wrapping_add(1);
        q[..2].copy_from_slice(&next_id.to_be_bytes());
        sent_at[usize::from(next_id)] = Some(Instant::now());
        socket.send(&q).expect("send query");
    };

    for _ in 0..WINDOW {
        send(&mut sent_at);
    }
    while Instant::now() < until {
        match socket.recv(&mut buf) {
            Ok(n) if n >= 12 => {
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                let Some(sent) = sent_at[usize::from(id)].take() else {
                    continue;
                };
                let now = Instant::now();
                if sent >= from && now < until {
                    latencies.push(now - sent);
                }
                send(&mut sent_at);
            }
            Ok(_) => {}
            Err(_) => {
                // Timed out: whatever is outstanding is lost; refill the window.
                let stale = sent_at.iter_mut().filter(|s| s.is_some()).count();
                lost += stale;
                sent_at.iter_mut().for_each(|s| *s = None);
                for _ in 0..WINDOW {
                    send(&mut sent_at);
                }
            }
        }
    }
    (latencies, lost)
}

/// A plain upstream: answers each query with the question and one A record (192.0.2.1).
struct UpstreamThread {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Drop for UpstreamThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn start_upstream() -> UpstreamThread {
    let socket = UdpSocket::bind(UPSTREAM).expect("bind upstream");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !flag.load(Ordering::Relaxed) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if n < 12 {
                continue;
            }
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80; // QR
            answer[3] |= 0x80; // RA
            answer[6..8].copy_from_slice(&1u16.to_be_bytes()); // ANCOUNT
            answer[8..12].fill(0); // NSCOUNT, ARCOUNT
            // Owner: a pointer to the question's name at offset 12.
            answer.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
            let _ = socket.send_to(&answer, from);
        }
    });
    UpstreamThread {
        stop,
        handle: Some(handle),
    }
}

/// Times `SandboxRecords::resolve_name` alone, without and with a concurrent writer.
fn lookup_bench(directory: &RecordDirectory, records: &SandboxRecords, full: bool) {
    let iterations = if full { 2_000_000 } else { 10_000 };
    let names: Vec<String> = (0..NAMES).map(|i| format!("c{i}")).collect();
    let time = |label: &str| {
        let started = Instant::now();
        for i in 0..iterations {
            let found = records.resolve_name(black_box(&names[i % NAMES]), AddressFamily::V4);
            assert!(matches!(found, Lookup::Found(_)));
        }
        let ns = started.elapsed().as_secs_f64() * 1e9 / iterations as f64;
        println!("lookup {label}: {ns:.0} ns per resolve_name");
    };
    time("alone");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (directory, stop) = (directory.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut updates = 0u64;
            let ip = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
            while !stop.load(Ordering::Relaxed) {
                directory
                    .add_record("n1", "churn", ip, RecordKind::Primary)
                    .expect("add");
                directory
                    .remove_record("n1", "churn", ip, RecordKind::Primary)
                    .expect("remove");
                updates += 2;
            }
            updates
        })
    };
    let started = Instant::now();
    time("with a writer");
    stop.store(true, Ordering::Relaxed);
    let updates = writer.join().expect("writer");
    let per_s = updates as f64 / started.elapsed().as_secs_f64();
    println!("  (the writer made {per_s:.0} record updates per second meanwhile)");
}
