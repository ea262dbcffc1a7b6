//! The embedded DNS server of a sandbox: one server per sandbox at `127.0.0.11:53`, answering
//! the names and aliases of every endpoint on the networks the sandbox joined, their reverse
//! (PTR) records, and forwarding everything else to the host's upstream servers.
//!
//! This is libnetwork's `resolver.go`/`resolver_unix.go` (the server) together with the
//! DNS-facing parts of its controller: the per-network record tables (`svcRecords`,
//! [`RecordDirectory`]) and the sandbox's look-up order (`Sandbox.ResolveName` and
//! `ResolveIP`, [`SandboxRecords`]). The controller owns one [`RecordDirectory`], adds a
//! network's records as endpoints join and removes them as they leave, gives each sandbox a
//! [`SandboxRecords`] attached to its networks in endpoint order, and starts a [`Resolver`]
//! in the sandbox's namespace with a [`ResolverConfig`] (upstream servers from the host's
//! resolv.conf). The sandbox's own resolv.conf is the controller's job
//! (`libnetwork_resolvconf::embedded_resolver_conf` with [`RESOLVER_IP`]).
//!
//! ```no_run
//! # async fn demo(sandbox: &libnetwork_osl::Sandbox) -> Result<(), libnetwork_resolver::Error> {
//! use libnetwork_resolver::{RecordDirectory, RecordKind, Resolver, ResolverConfig, SandboxRecords};
//!
//! let directory = RecordDirectory::new();
//! directory.add_network("3f2a", "backend")?;
//! directory.add_record("3f2a", "db", "172.18.0.2".parse().unwrap(), RecordKind::Primary)?;
//!
//! let records = SandboxRecords::new(&directory);
//! records.attach_network("3f2a")?;
//! let config = ResolverConfig {
//!     upstreams: vec!["192.0.2.53:53".parse().unwrap()],
//!     ..ResolverConfig::default()
//! };
//! let resolver = Resolver::start(sandbox.netns(), records, config).await?;
//! // ... `db` and `db.backend` now resolve inside the sandbox ...
//! resolver.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`records`]: [`RecordDirectory`] (per-network tables), [`SandboxRecords`] (one sandbox's
//!   attached networks and libnetwork's look-up order), [`Lookup`].
//! - [`config`]: [`ResolverConfig`] and libnetwork's constants (address, TTL, timeouts).
//! - [`server`]: [`Resolver`]: sockets in the sandbox, hickory-server, local answers.
//! - `forward`: forwarding to the upstream servers with failover and the in-flight bound.
//! - [`error`]: [`Error`] and its [`ErrorKind`](libnetwork_types::ErrorKind) mapping.
//!
//! # Design decisions
//! - **Sockets bound inside, tasks outside.** A thread that joins the sandbox's namespace
//!   ([`libnetwork_osl::Netns::run_in`]) binds UDP and TCP sockets on `127.0.0.11:53`
//!   (`127.0.0.0/8` is on `lo`, which the osl brings up), and tokio adopts them with
//!   `from_std`. A socket stays in the namespace it was made in, so the server runs on the
//!   ordinary runtime, and the sockets that forward queries, made on runtime workers, are in
//!   the host's namespace, as Docker's are: internal sandboxes still resolve external names.
//!   libnetwork binds ephemeral ports and DNATs port 53 to them with iptables inside the
//!   namespace; binding port 53 directly needs no firewall rules (we run as root).
//! - **hickory-server without a catalog.** hickory's [`Server`](hickory_server::Server)
//!   runs the sockets; a custom `RequestHandler` answers from our own tables, so records
//!   change with a hash-map insert or remove (no zone is rebuilt, nothing restarts) and
//!   forwarded answers keep every record the upstream sent.
//! - **Lock-light look-ups.** Each network's tables sit behind their own `RwLock`; a
//!   sandbox holds `Arc`s to its networks' tables, so a query takes uncontended read locks
//!   and never the directory's lock. The benchmark measures look-ups with and without a
//!   concurrent writer.
//! - **Failover by overlapping.** A silent upstream server is given
//!   [`ResolverConfig::failover_after`] (500 ms) before the next one is asked as well; the
//!   first acceptable answer wins, within [`ResolverConfig::forward_timeout`] (4 s, as
//!   libnetwork). libnetwork waits the full 4 s for each server in turn.
//! - **Deliberate differences from libnetwork.** A name known locally in one family only
//!   answers NOERROR with no records for the other family (libnetwork does so only for AAAA
//!   on networks without IPv6, and forwards A queries for IPv6-only names); network names in
//!   `name.network` match case-insensitively (libnetwork compares them exactly); queries over
//!   the in-flight bound get REFUSED (libnetwork drops them), and queries no upstream answers
//!   get SERVFAIL (libnetwork sends nothing), so clients move on at once; a query without a
//!   question gets FORMERR and other opcodes NOTIMP (libnetwork ignores them); PTR queries for
//!   names that are not addresses are forwarded (libnetwork drops them); a truncated UDP
//!   answer from upstream is fetched again over TCP (libnetwork passes it on); forwarded
//!   queries get a fresh random id per attempt. SRV answers are not given locally:
//!   libnetwork's service table is filled only by its tests, so SRV queries are forwarded.
//!   Names learnt from upstream answers are not tracked (`HandleQueryResp`, a swarm-only
//!   feature).
//! - **Logging.** Lifecycle at info, record and attachment changes and upstream failures at
//!   debug, every query at trace. hickory-server itself logs every answered query at info
//!   (target `hickory_server`); a daemon should filter that target to `warn`.

#![forbid(unsafe_code)]

pub mod config;
pub mod error;
mod forward;
pub mod records;
pub mod server;

pub use config::{
    DEFAULT_FAILOVER_AFTER, DEFAULT_FORWARD_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_IN_FLIGHT,
    DNS_PORT, LOCAL_TTL, MAX_UPSTREAMS, RESOLVER_IP, ResolverConfig,
};
pub use error::{Error, Result};
pub use records::{AddressFamily, Lookup, RecordDirectory, RecordKind, SandboxRecords};
pub use server::Resolver;
