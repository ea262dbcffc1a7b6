//! The embedded DNS server, queried for real inside sandboxes.
//!
//! Every test runs in its own network and mount namespace (`in_new_netns`), builds its tokio
//! runtime there (so the server's forwarding sockets live in that namespace, the test's
//! "host"), creates sandboxes with the osl (namespaces with only `lo`, up), and asks the
//! server at 127.0.0.11:53 from a thread inside a sandbox, with raw hickory-proto messages or
//! with `dig`. Upstream servers are small responders the test runs on 127.0.0.1 of its host
//! namespace, which the sandboxes cannot reach themselves.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use libnetwork_osl::{Host, Sandbox, netns};
use libnetwork_resolver::{
    DEFAULT_LISTEN, LOCAL_TTL, RecordDirectory, RecordKind, Resolver, ResolverConfig,
    SandboxRecords,
};
use libnetwork_testutil::{in_new_netns, privileged};
use libnetwork_types::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

// ----- harness -----

/// The run directory of a test; detaches leftover sandbox mounts on drop.
struct RunDir(tempfile::TempDir);

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.0.path().join("netns")) {
            for entry in entries.flatten() {
                let _ = netns::unbind(&entry.path());
            }
        }
    }
}

/// Runs `body` in a fresh namespace with a tokio runtime and an osl host.
fn dns_test<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Host) -> Fut + Send,
    Fut: Future<Output = Result<()>>,
{
    if !privileged(name) {
        return;
    }
    in_new_netns(|| {
        let dir = RunDir(tempfile::tempdir().expect("temporary run directory"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let result = rt.block_on(async {
            let host = Host::new(dir.0.path()).await?;
            body(host).await
        });
        drop(rt);
        drop(dir);
        if let Err(e) = result {
            panic!("{name}: {e:#}");
        }
    });
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

async fn sandbox(host: &Host, id: &str) -> Result<Sandbox> {
    Ok(host.create_sandbox(&host.key_for(id)).await?)
}

/// A directory with network n1 ("front") holding c1 (10.0.0.2, fd00::2, alias "web") and c2
/// (10.0.0.3, alias "db"), and network n2 ("back") holding c3 (10.1.0.3).
fn directory() -> Result<RecordDirectory> {
    let dir = RecordDirectory::new();
    dir.add_network("n1", "front")?;
    dir.add_network("n2", "back")?;
    dir.add_record("n1", "c1", ip("10.0.0.2"), RecordKind::Primary)?;
    dir.add_record("n1", "c1", ip("fd00::2"), RecordKind::Primary)?;
    dir.add_record("n1", "web", ip("10.0.0.2"), RecordKind::Alias)?;
    dir.add_record("n1", "c2", ip("10.0.0.3"), RecordKind::Primary)?;
    dir.add_record("n1", "db", ip("10.0.0.3"), RecordKind::Alias)?;
    dir.add_record("n2", "c3", ip("10.1.0.3"), RecordKind::Primary)?;
    Ok(dir)
}

/// Starts a server in `sb` attached to `networks`.
async fn start(
    sb: &Sandbox,
    dir: &RecordDirectory,
    networks: &[&str],
    config: ResolverConfig,
) -> Result<Resolver> {
    let records = SandboxRecords::new(dir);
    for n in networks {
        records.attach_network(n)?;
    }
    Ok(Resolver::start(sb.netns(), records, config).await?)
}

fn config(upstreams: &[SocketAddr]) -> ResolverConfig {
    ResolverConfig {
        upstreams: upstreams.to_vec(),
        ..ResolverConfig::default()
    }
}

// ----- client -----

fn query_bytes(name: &str, qtype: RecordType, edns: bool) -> Result<(Vec<u8>, u16)> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name)?, qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    Ok((m.to_vec()?, m.metadata.id))
}

/// Blocking UDP exchange with `server`, from the calling thread's namespace.
fn udp_exchange(server: SocketAddr, query: &[u8], id: u16) -> Result<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    socket.connect(server)?;
    socket.send(query)?;
    let mut buf = vec![0; 65_535];
    loop {
        let n = socket
            .recv(&mut buf)
            .context("no answer from the embedded server")?;
        let m = Message::from_vec(&buf[..n])?;
        if m.metadata.id == id {
            return Ok(m);
        }
    }
}

/// Blocking TCP exchange with `server`, from the calling thread's namespace.
fn tcp_exchange(server: SocketAddr, query: &[u8]) -> Result<Message> {
    let mut stream = TcpStream::connect(server)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut framed = u16::try_from(query.len())?.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed)?;
    let mut len = [0; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf)?;
    Ok(Message::from_vec(&buf)?)
}

/// Asks the embedded server in `sb` over UDP.
async fn ask(sb: &Sandbox, name: &str, qtype: RecordType) -> Result<Message> {
    let (query, id) = query_bytes(name, qtype, false)?;
    sb.run_in(move || udp_exchange(DEFAULT_LISTEN, &query, id))
        .await?
}

/// Asks the embedded server in `sb` over TCP.
async fn ask_tcp(sb: &Sandbox, name: &str, qtype: RecordType) -> Result<Message> {
    let (query, _) = query_bytes(name, qtype, false)?;
    sb.run_in(move || tcp_exchange(DEFAULT_LISTEN, &query))
        .await?
}

/// The addresses in the answer section.
fn addresses(m: &Message) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

/// Checks a NOERROR answer with exactly `expected` addresses.
fn expect_addresses(m: &Message, expected: &[&str]) -> Result<()> {
    ensure!(
        m.metadata.response_code == ResponseCode::NoError,
        "rcode {:?}",
        m.metadata.response_code
    );
    let mut want: Vec<IpAddr> = expected.iter().map(|s| ip(s)).collect();
    want.sort();
    ensure!(
        addresses(m) == want,
        "answers {:?}, want {want:?}",
        m.answers
    );
    Ok(())
}

// ----- upstream servers run by the tests -----

/// How a test upstream answers a query: `None` stays silent.
type Behaviour = Arc<dyn Fn(&Message, bool) -> Option<Message> + Send + Sync>;

/// A UDP and TCP DNS responder on 127.0.0.1 of the test's host namespace.
struct Upstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Upstream {
    async fn start(behaviour: Behaviour) -> Result<Self> {
        let udp = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
        let addr = udp.local_addr()?;
        let tcp = tokio::net::TcpListener::bind(addr).await?;
        let queries = Arc::new(AtomicUsize::new(0));

        let (b, q) = (Arc::clone(&behaviour), Arc::clone(&queries));
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0; 65_535];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                q.fetch_add(1, Ordering::SeqCst);
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if let Some(answer) = b(&query, false) {
                    let _ = udp.send_to(&answer.to_vec().unwrap(), from).await;
                }
            }
        });
        let (b, q) = (behaviour, Arc::clone(&queries));
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let (b, q) = (Arc::clone(&b), Arc::clone(&q));
                tokio::spawn(async move {
                    let Ok(len) = stream.read_u16().await else {
                        return;
                    };
                    let mut buf = vec![0; usize::from(len)];
                    if stream.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    q.fetch_add(1, Ordering::SeqCst);
                    let Ok(query) = Message::from_vec(&buf) else {
                        return;
                    };
                    if let Some(answer) = b(&query, true) {
                        let bytes = answer.to_vec().unwrap();
                        let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
                        framed.extend_from_slice(&bytes);
                        let _ = stream.write_all(&framed).await;
                    }
                });
            }
        });
        Ok(Self {
            addr,
            queries,
            tasks: vec![udp_task, tcp_task],
        })
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// A response to `query` with `code` and the given addresses as answers.
fn reply(query: &Message, code: ResponseCode, ips: &[IpAddr]) -> Message {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.response_code = code;
    m.add_queries(query.queries.clone());
    let owner = query.queries[0].name().clone();
    for ip in ips {
        let rdata = match ip {
            IpAddr::V4(ip) => RData::A(A(*ip)),
            IpAddr::V6(ip) => RData::AAAA(AAAA(*ip)),
        };
        m.add_answer(Record::from_rdata(owner.clone(), 60, rdata));
    }
    m
}

/// An upstream answering every query with `code` and `ips`.
fn answering(code: ResponseCode, ips: &'static [&'static str]) -> Behaviour {
    Arc::new(move |q, _| {
        let ips: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
        Some(reply(q, code, &ips))
    })
}

// ----- local names -----

#[test]
fn sandboxes_on_one_network_resolve_each_others_names_and_aliases() {
    dns_test(
        "sandboxes_on_one_network_resolve_each_others_names_and_aliases",
        |host| async move {
            let dir = directory()?;
            let (sb1, sb2) = (sandbox(&host, "sb1").await?, sandbox(&host, "sb2").await?);
            let _r1 = start(&sb1, &dir, &["n1"], config(&[])).await?;
            let _r2 = start(&sb2, &dir, &["n1"], config(&[])).await?;

            expect_addresses(&ask(&sb1, "c2", RecordType::A).await?, &["10.0.0.3"])?;
            expect_addresses(&ask(&sb1, "db", RecordType::A).await?, &["10.0.0.3"])?;
            expect_addresses(&ask(&sb2, "c1", RecordType::A).await?, &["10.0.0.2"])?;
            let web = ask(&sb2, "web.", RecordType::A).await?;
            expect_addresses(&web, &["10.0.0.2"])?;
            ensure!(
                web.answers[0].ttl == LOCAL_TTL,
                "ttl {}",
                web.answers[0].ttl
            );
            ensure!(
                web.metadata.recursion_available,
                "local answers advertise recursion"
            );
            Ok(())
        },
    );
}

#[test]
fn names_are_case_insensitive_and_answers_keep_the_querys_spelling() {
    dns_test(
        "names_are_case_insensitive_and_answers_keep_the_querys_spelling",
        |host| async move {
            let dir = directory()?;
            // Names and network names as the user spelt them.
            dir.add_network("n3", "MixedNet")?;
            dir.add_record("n3", "MyApp", ip("10.3.0.2"), RecordKind::Primary)?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1", "n3"], config(&[])).await?;

            let m = ask(&sb, "WeB.FrOnT", RecordType::A).await?;
            expect_addresses(&m, &["10.0.0.2"])?;
            ensure!(
                m.answers[0].name.to_ascii() == "WeB.FrOnT.",
                "owner {}",
                m.answers[0].name
            );
            for name in ["myapp", "MYAPP", "myapp.mixednet", "MyApp.MixedNet."] {
                expect_addresses(&ask(&sb, name, RecordType::A).await?, &["10.3.0.2"])?;
            }
            Ok(())
        },
    );
}

#[test]
fn aaaa_queries_answer_ipv6_and_a_missing_family_is_an_empty_answer() {
    dns_test(
        "aaaa_queries_answer_ipv6_and_a_missing_family_is_an_empty_answer",
        |host| async move {
            let up = Upstream::start(answering(ResponseCode::NoError, &["192.0.2.99"])).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[up.addr])).await?;

            expect_addresses(&ask(&sb, "c1", RecordType::AAAA).await?, &["fd00::2"])?;
            // c2 has only IPv4: NOERROR with no records, and nothing goes upstream.
            let m = ask(&sb, "c2", RecordType::AAAA).await?;
            expect_addresses(&m, &[])?;
            ensure!(up.queries() == 0, "the query was forwarded");
            Ok(())
        },
    );
}

#[test]
fn network_qualified_names_resolve_only_on_their_network() {
    dns_test(
        "network_qualified_names_resolve_only_on_their_network",
        |host| async move {
            let up = Upstream::start(answering(ResponseCode::NXDomain, &[])).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1", "n2"], config(&[up.addr])).await?;

            expect_addresses(&ask(&sb, "c1.front", RecordType::A).await?, &["10.0.0.2"])?;
            expect_addresses(&ask(&sb, "c3.back", RecordType::A).await?, &["10.1.0.3"])?;
            let m = ask(&sb, "c1.back", RecordType::A).await?;
            ensure!(
                m.metadata.response_code == ResponseCode::NXDomain,
                "c1.back answered locally"
            );
            Ok(())
        },
    );
}

#[test]
fn names_on_a_network_the_sandbox_did_not_join_are_not_resolved() {
    dns_test(
        "names_on_a_network_the_sandbox_did_not_join_are_not_resolved",
        |host| async move {
            let up = Upstream::start(answering(ResponseCode::NXDomain, &[])).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[up.addr])).await?;

            for name in ["c3", "c3.back"] {
                let m = ask(&sb, name, RecordType::A).await?;
                ensure!(
                    m.metadata.response_code == ResponseCode::NXDomain,
                    "{name} resolved"
                );
                ensure!(m.answers.is_empty(), "{name} has answers");
            }
            ensure!(up.queries() == 2, "both queries went upstream");
            Ok(())
        },
    );
}

#[test]
fn records_appear_and_disappear_without_restarting_the_server() {
    dns_test(
        "records_appear_and_disappear_without_restarting_the_server",
        |host| async move {
            let up = Upstream::start(answering(ResponseCode::NXDomain, &[])).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let r = start(&sb, &dir, &["n1"], config(&[up.addr])).await?;

            expect_addresses(&ask(&sb, "c2", RecordType::A).await?, &["10.0.0.3"])?;
            dir.remove_record("n1", "c2", ip("10.0.0.3"), RecordKind::Primary)?;
            let m = ask(&sb, "c2", RecordType::A).await?;
            ensure!(
                m.metadata.response_code == ResponseCode::NXDomain,
                "c2 still resolves"
            );

            dir.add_record("n1", "c4", ip("10.0.0.4"), RecordKind::Primary)?;
            expect_addresses(&ask(&sb, "c4", RecordType::A).await?, &["10.0.0.4"])?;

            // Attaching a network makes its names resolve; detaching hides them again.
            r.attach_network("n2")?;
            expect_addresses(&ask(&sb, "c3", RecordType::A).await?, &["10.1.0.3"])?;
            r.detach_network("n2")?;
            let m = ask(&sb, "c3", RecordType::A).await?;
            ensure!(
                m.metadata.response_code == ResponseCode::NXDomain,
                "c3 still resolves"
            );
            Ok(())
        },
    );
}

#[test]
fn ptr_queries_answer_the_name_dot_network() {
    dns_test(
        "ptr_queries_answer_the_name_dot_network",
        |host| async move {
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[])).await?;

            let m = ask(&sb, "2.0.0.10.in-addr.arpa.", RecordType::PTR).await?;
            let ptr: Vec<String> = m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::PTR(p) => Some(p.0.to_ascii()),
                    _ => None,
                })
                .collect();
            ensure!(ptr == ["c1.front."], "ptr answers {ptr:?}");

            let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
            let m = ask(&sb, v6, RecordType::PTR).await?;
            ensure!(m.answers.len() == 1, "ipv6 ptr answers {:?}", m.answers);
            Ok(())
        },
    );
}

#[test]
fn mx_queries_for_local_names_get_an_empty_answer() {
    dns_test(
        "mx_queries_for_local_names_get_an_empty_answer",
        |host| async move {
            let up = Upstream::start(answering(ResponseCode::NXDomain, &[])).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[up.addr])).await?;

            let m = ask(&sb, "c1", RecordType::MX).await?;
            ensure!(m.metadata.response_code == ResponseCode::NoError && m.answers.is_empty());
            ensure!(up.queries() == 0, "the MX query was forwarded");
            Ok(())
        },
    );
}

#[test]
fn dig_resolves_local_names_over_udp_and_tcp() {
    dns_test(
        "dig_resolves_local_names_over_udp_and_tcp",
        |host| async move {
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[])).await?;

            for tcp in [false, true] {
                let out = sb
                    .run_in(move || {
                        let mut cmd = std::process::Command::new("dig");
                        cmd.args(["@127.0.0.11", "+short", "+tries=1", "+time=5", "db.front"]);
                        if tcp {
                            cmd.arg("+tcp");
                        }
                        cmd.output()
                    })
                    .await??;
                let stdout = String::from_utf8_lossy(&out.stdout);
                ensure!(
                    stdout.trim() == "10.0.0.3",
                    "dig (tcp {tcp}) said {stdout:?}"
                );
            }
            Ok(())
        },
    );
}

// ----- forwarding -----

#[test]
fn external_names_are_forwarded_from_a_sandbox_without_connectivity() {
    dns_test(
        "external_names_are_forwarded_from_a_sandbox_without_connectivity",
        |host| async move {
            let up = Upstream::start(answering(ResponseCode::NoError, &["192.0.2.10"])).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[up.addr])).await?;

            // The sandbox has only lo: the upstream at 127.0.0.1 of the host is out of its reach.
            let direct = sb
                .run_in({
                    let (q, id) = query_bytes("example.com", RecordType::A, false)?;
                    let addr = up.addr;
                    move || udp_exchange(addr, &q, id).is_ok()
                })
                .await?;
            ensure!(!direct, "the sandbox reached the upstream by itself");

            let m = ask(&sb, "example.com", RecordType::A).await?;
            expect_addresses(&m, &["192.0.2.10"])?;
            ensure!(up.queries() == 1);
            Ok(())
        },
    );
}

#[test]
fn tcp_queries_are_forwarded_over_tcp() {
    dns_test("tcp_queries_are_forwarded_over_tcp", |host| async move {
        let behaviour: Behaviour = Arc::new(|q, tcp| {
            let ip = if tcp { "192.0.2.2" } else { "192.0.2.1" };
            Some(reply(q, ResponseCode::NoError, &[self::ip(ip)]))
        });
        let up = Upstream::start(behaviour).await?;
        let dir = directory()?;
        let sb = sandbox(&host, "sb1").await?;
        let _r = start(&sb, &dir, &["n1"], config(&[up.addr])).await?;

        expect_addresses(
            &ask_tcp(&sb, "example.com", RecordType::A).await?,
            &["192.0.2.2"],
        )?;
        expect_addresses(
            &ask(&sb, "example.com", RecordType::A).await?,
            &["192.0.2.1"],
        )?;
        // Local names answer over TCP too.
        expect_addresses(&ask_tcp(&sb, "c1", RecordType::A).await?, &["10.0.0.2"])?;
        Ok(())
    });
}

#[test]
fn truncated_udp_answers_are_fetched_again_over_tcp() {
    dns_test(
        "truncated_udp_answers_are_fetched_again_over_tcp",
        |host| async move {
            let behaviour: Behaviour = Arc::new(|q, tcp| {
                if tcp {
                    Some(reply(q, ResponseCode::NoError, &[ip("192.0.2.3")]))
                } else {
                    let mut m = reply(q, ResponseCode::NoError, &[]);
                    m.metadata.truncation = true;
                    Some(m)
                }
            });
            let up = Upstream::start(behaviour).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[up.addr])).await?;

            let m = ask(&sb, "big.example.com", RecordType::A).await?;
            expect_addresses(&m, &["192.0.2.3"])?;
            ensure!(!m.metadata.truncation, "the client got a truncated answer");
            ensure!(up.queries() == 2, "one udp and one tcp query upstream");
            Ok(())
        },
    );
}

#[test]
fn a_silent_first_upstream_fails_over_to_the_second_within_a_second() {
    dns_test(
        "a_silent_first_upstream_fails_over_to_the_second_within_a_second",
        |host| async move {
            // The dead server: a socket that receives and never answers (no ICMP either).
            let dead = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
            let dead_addr = dead.local_addr()?;
            let up = Upstream::start(answering(ResponseCode::NoError, &["192.0.2.20"])).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[dead_addr, up.addr])).await?;

            let started = Instant::now();
            let m = ask(&sb, "example.com", RecordType::A).await?;
            let elapsed = started.elapsed();
            expect_addresses(&m, &["192.0.2.20"])?;
            ensure!(
                elapsed < Duration::from_millis(1500),
                "failover took {elapsed:?}"
            );
            drop(dead);
            Ok(())
        },
    );
}

#[test]
fn a_refusing_or_failing_first_upstream_hands_over_to_the_next() {
    dns_test(
        "a_refusing_or_failing_first_upstream_hands_over_to_the_next",
        |host| async move {
            // Nothing listens on `closed` (connection refused); `failing` answers SERVFAIL.
            let closed = {
                let s = UdpSocket::bind("127.0.0.1:0")?;
                s.local_addr()?
            };
            let failing = Upstream::start(answering(ResponseCode::ServFail, &[])).await?;
            let up = Upstream::start(answering(ResponseCode::NoError, &["192.0.2.30"])).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let mut cfg = config(&[closed, failing.addr, up.addr]);
            // Handing over must not wait for the failover delay.
            cfg.failover_after = Duration::from_secs(30);
            cfg.forward_timeout = Duration::from_secs(60);
            let _r = start(&sb, &dir, &["n1"], cfg).await?;

            expect_addresses(
                &ask(&sb, "example.com", RecordType::A).await?,
                &["192.0.2.30"],
            )?;
            ensure!(failing.queries() == 1 && up.queries() == 1);
            Ok(())
        },
    );
}

#[test]
fn no_upstream_answer_is_servfail_and_nxdomain_is_passed_on() {
    dns_test(
        "no_upstream_answer_is_servfail_and_nxdomain_is_passed_on",
        |host| async move {
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let r = start(&sb, &dir, &["n1"], config(&[])).await?;
            let m = ask(&sb, "example.com", RecordType::A).await?;
            ensure!(
                m.metadata.response_code == ResponseCode::ServFail,
                "{:?}",
                m.metadata
            );

            let nx = Upstream::start(answering(ResponseCode::NXDomain, &[])).await?;
            let failing = Upstream::start(answering(ResponseCode::ServFail, &[])).await?;
            r.set_upstreams(&[nx.addr, failing.addr])?;
            let m = ask(&sb, "nosuch.example.com", RecordType::A).await?;
            ensure!(
                m.metadata.response_code == ResponseCode::NXDomain,
                "{:?}",
                m.metadata
            );
            ensure!(m.metadata.message_type == MessageType::Response);
            Ok(())
        },
    );
}

#[test]
fn queries_over_the_in_flight_bound_are_refused() {
    dns_test(
        "queries_over_the_in_flight_bound_are_refused",
        |host| async move {
            // A slow upstream: it never answers, so forwarded queries stay in flight.
            let silent = Upstream::start(Arc::new(|_, _| None)).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let mut cfg = config(&[silent.addr]);
            cfg.max_in_flight = NonZeroUsize::new(2).unwrap();
            cfg.forward_timeout = Duration::from_secs(3);
            let _r = start(&sb, &dir, &["n1"], cfg).await?;

            let seen = Arc::clone(&silent.queries);
            let (m, local) = sb
                .run_in(move || -> Result<(Message, Message)> {
                    let socket = UdpSocket::bind("127.0.0.1:0")?;
                    socket.connect(DEFAULT_LISTEN)?;
                    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
                    for name in ["one.example.com", "two.example.com"] {
                        socket.send(&query_bytes(name, RecordType::A, false)?.0)?;
                    }
                    // Wait until both are in flight upstream.
                    let waiting = Instant::now();
                    while seen.load(Ordering::SeqCst) < 2 {
                        if waiting.elapsed() > Duration::from_secs(10) {
                            bail!("the first queries never reached the upstream");
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    let (third, id) = query_bytes("three.example.com", RecordType::A, false)?;
                    let refused = udp_exchange_on(&socket, &third, id)?;
                    // Local names are not held back by the bound.
                    let (local, id) = query_bytes("c1", RecordType::A, false)?;
                    let local = udp_exchange_on(&socket, &local, id)?;
                    Ok((refused, local))
                })
                .await??;
            ensure!(
                m.metadata.response_code == ResponseCode::Refused,
                "{:?}",
                m.metadata
            );
            expect_addresses(&local, &["10.0.0.2"])?;
            ensure!(silent.queries() == 2, "the refused query went upstream");
            Ok(())
        },
    );
}

/// Sends `query` on a connected socket and waits for the answer with `id`.
fn udp_exchange_on(socket: &UdpSocket, query: &[u8], id: u16) -> Result<Message> {
    socket.send(query)?;
    let mut buf = vec![0; 65_535];
    loop {
        let n = socket.recv(&mut buf)?;
        let m = Message::from_vec(&buf[..n])?;
        if m.metadata.id == id {
            return Ok(m);
        }
    }
}

#[test]
fn single_label_names_are_not_forwarded_when_the_user_set_ndots() {
    dns_test(
        "single_label_names_are_not_forwarded_when_the_user_set_ndots",
        |host| async move {
            let up = Upstream::start(answering(ResponseCode::NoError, &["192.0.2.40"])).await?;
            let dir = directory()?;
            let (sb1, sb2) = (sandbox(&host, "sb1").await?, sandbox(&host, "sb2").await?);
            let mut cfg = config(&[up.addr]);
            cfg.ndots_set = true;
            let _r1 = start(&sb1, &dir, &["n1"], cfg).await?;
            let _r2 = start(&sb2, &dir, &["n1"], config(&[up.addr])).await?;

            let m = ask(&sb1, "nosuch", RecordType::A).await?;
            expect_addresses(&m, &[])?;
            ensure!(up.queries() == 0, "the single label went upstream");
            // Names with a dot still go out, and without a user ndots single labels do too.
            expect_addresses(
                &ask(&sb1, "nosuch.example", RecordType::A).await?,
                &["192.0.2.40"],
            )?;
            expect_addresses(&ask(&sb2, "nosuch", RecordType::A).await?, &["192.0.2.40"])?;
            ensure!(up.queries() == 2);
            Ok(())
        },
    );
}

#[test]
fn forwarded_answers_are_truncated_to_the_clients_udp_size() {
    dns_test(
        "forwarded_answers_are_truncated_to_the_clients_udp_size",
        |host| async move {
            // 40 A records do not fit in 512 bytes.
            let many: Vec<IpAddr> = (1..=40).map(|i| IpAddr::from([192, 0, 2, i])).collect();
            let behaviour: Behaviour =
                Arc::new(move |q, _| Some(reply(q, ResponseCode::NoError, &many)));
            let up = Upstream::start(behaviour).await?;
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[up.addr])).await?;

            let small = ask(&sb, "many.example.com", RecordType::A).await?;
            ensure!(small.metadata.truncation, "a 512-byte client got no TC bit");
            let (q, id) = query_bytes("many.example.com", RecordType::A, true)?;
            let large = sb
                .run_in(move || udp_exchange(DEFAULT_LISTEN, &q, id))
                .await??;
            ensure!(
                !large.metadata.truncation && large.answers.len() == 40,
                "edns client"
            );
            let full = ask_tcp(&sb, "many.example.com", RecordType::A).await?;
            ensure!(
                full.answers.len() == 40,
                "tcp client got {}",
                full.answers.len()
            );
            Ok(())
        },
    );
}

// ----- lifecycle -----

#[test]
fn stopping_or_dropping_the_server_frees_its_address() {
    dns_test(
        "stopping_or_dropping_the_server_frees_its_address",
        |host| async move {
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let r = start(&sb, &dir, &["n1"], config(&[])).await?;
            expect_addresses(&ask(&sb, "c1", RecordType::A).await?, &["10.0.0.2"])?;
            r.stop().await?;

            // Nothing answers any more.
            let (q, id) = query_bytes("c1", RecordType::A, false)?;
            let answered = sb
                .run_in(move || {
                    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                    socket
                        .set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                    socket.connect(DEFAULT_LISTEN).unwrap();
                    socket.send(&q).unwrap();
                    let mut buf = [0; 512];
                    socket
                        .recv(&mut buf)
                        .is_ok_and(|n| n >= 2 && buf[..2] == id.to_be_bytes())
                })
                .await?;
            ensure!(!answered, "a stopped server answered");

            // The address is free again, for a server that is then dropped.
            let r = start(&sb, &dir, &["n1"], config(&[])).await?;
            expect_addresses(&ask(&sb, "c1", RecordType::A).await?, &["10.0.0.2"])?;
            drop(r);
            // Dropping aborts the tasks; their sockets close once the runtime has dropped them.
            let mut attempts = 0;
            let r = loop {
                match start(&sb, &dir, &["n1"], config(&[])).await {
                    Ok(r) => break r,
                    Err(_) if attempts < 200 => {
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => return Err(e.context("the dropped server kept its address")),
                }
            };
            expect_addresses(&ask(&sb, "c2", RecordType::A).await?, &["10.0.0.3"])?;
            r.stop().await?;
            Ok(())
        },
    );
}

#[test]
fn the_server_can_be_shared_between_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Resolver>();
    assert_send_sync::<SandboxRecords>();
    assert_send_sync::<RecordDirectory>();
}

#[test]
fn a_second_server_on_the_same_address_is_a_conflict() {
    dns_test(
        "a_second_server_on_the_same_address_is_a_conflict",
        |host| async move {
            let dir = directory()?;
            let sb = sandbox(&host, "sb1").await?;
            let _r = start(&sb, &dir, &["n1"], config(&[])).await?;
            let records = SandboxRecords::new(&dir);
            let e = Resolver::start(sb.netns(), records, config(&[]))
                .await
                .unwrap_err();
            ensure!(e.kind() == ErrorKind::Conflict, "{e}");
            Ok(())
        },
    );
}
