//! The embedded DNS server of one sandbox: sockets, query handling, lifecycle.
//!
//! The UDP and TCP sockets are bound on a thread inside the sandbox's network namespace
//! ([`Netns::run_in`]) and handed to tokio with `from_std`: a socket stays in the namespace it
//! was created in, so the server's tasks run on ordinary workers (in the host's namespace),
//! and so do the sockets that forward queries upstream. hickory-server's [`Server`] runs the
//! sockets; our [`RequestHandler`] answers from the sandbox's [`SandboxRecords`] and forwards
//! the rest upstream (module `forward`). No zone or catalog is built: a record update is a
//! hash-map insert that the next query sees.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, LowerQuery, Message, Metadata, OpCode, ResponseCode,
};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use libnetwork_osl::Netns;
use rand::seq::SliceRandom;
use tracing::{debug, info, trace};

use crate::config::{self, LOCAL_TTL, ResolverConfig};
use crate::error::{Error, Result};
use crate::forward::{Forwarder, Outcome, Transport};
use crate::records::{AddressFamily, Lookup, SandboxRecords};

/// How long a TCP client connection may stay idle before the server closes it.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 16;
/// The smallest UDP payload every client accepts (RFC 1035).
const MIN_UDP_PAYLOAD: u16 = 512;

/// A running embedded DNS server for one sandbox (libnetwork's `Resolver`).
///
/// Answers A and AAAA queries for the names of the networks the sandbox is attached to (see
/// [`SandboxRecords::resolve_name`]), MX queries for those names with an empty answer, PTR
/// queries for their addresses, and forwards everything else to the upstream servers. Stop it
/// with [`Resolver::stop`]; dropping it also stops it (the tasks are aborted and the sockets
/// close as the runtime drops them).
pub struct Resolver {
    listen: SocketAddr,
    netns: Netns,
    records: SandboxRecords,
    forwarder: Arc<Forwarder>,
    server: Server<Handler>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("listen", &self.listen)
            .field("netns", &self.netns.path())
            .field("networks", &self.records.networks())
            .field("upstreams", &self.forwarder.upstreams())
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Binds UDP and TCP sockets on `config.listen` inside `netns` (a sandbox's namespace,
    /// whose `lo` must be up) and starts serving `records` on them: libnetwork's
    /// `SetupFunc` followed by `Start`, without the iptables redirection (the sockets are
    /// bound on port 53 directly).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad configuration, [`Error::Namespace`] when the
    /// namespace cannot be entered, [`Error::Io`] when a socket cannot be bound (for instance
    /// because a server already listens there). Nothing is left running then.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start(
        netns: &Netns,
        records: SandboxRecords,
        config: ResolverConfig,
    ) -> Result<Self> {
        let upstreams = config.validate()?;
        let listen = config.listen;
        let op = || {
            format!(
                "bind the embedded dns server on {listen} in {}",
                netns.path().display()
            )
        };

        // Sockets made on a thread inside the namespace stay there.
        let (udp, tcp) = netns
            .run_in(move || bind_sockets(listen))
            .await
            .map_err(|e| Error::Namespace {
                op: op(),
                source: Arc::new(e),
            })?
            .map_err(|e| Error::io(op(), e))?;
        let local = udp.local_addr().map_err(|e| Error::io(op(), e))?;
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(|e| Error::io(op(), e))?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(|e| Error::io(op(), e))?;

        let forwarder = Arc::new(Forwarder::new(
            upstreams,
            config.forward_timeout,
            config.failover_after,
            config.max_in_flight.get(),
        ));
        let handler = Handler {
            records: records.clone(),
            forwarder: Arc::clone(&forwarder),
            ndots_set: config.ndots_set,
        };
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        info!(
            listen = %local,
            netns = %netns.path().display(),
            upstreams = ?forwarder.upstreams(),
            "embedded dns server started"
        );
        Ok(Self {
            listen: local,
            netns: netns.clone(),
            records,
            forwarder,
            server,
        })
    }

    /// The address the server listens on inside the sandbox (`127.0.0.11:53` by default):
    /// libnetwork's `NameServer`.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The names the server answers from; attach and detach networks through it (or through
    /// a clone the controller kept).
    pub fn records(&self) -> &SandboxRecords {
        &self.records
    }

    /// Attaches the sandbox to a network; see [`SandboxRecords::attach_network`].
    ///
    /// # Errors
    /// As [`SandboxRecords::attach_network`].
    pub fn attach_network(&self, network_id: &str) -> Result<()> {
        self.records.attach_network(network_id)
    }

    /// Detaches the sandbox from a network; see [`SandboxRecords::detach_network`].
    ///
    /// # Errors
    /// As [`SandboxRecords::detach_network`].
    pub fn detach_network(&self, network_id: &str) -> Result<()> {
        self.records.detach_network(network_id)
    }

    /// The upstream servers in use.
    pub fn upstreams(&self) -> Vec<SocketAddr> {
        self.forwarder.upstreams().to_vec()
    }

    /// Replaces the upstream servers (libnetwork's `SetExtServers`; only the first
    /// [`MAX_UPSTREAMS`](config::MAX_UPSTREAMS) are used). Queries being forwarded finish
    /// with the old list.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unspecified address or port 0; nothing changes then.
    pub fn set_upstreams(&self, upstreams: &[SocketAddr]) -> Result<()> {
        let upstreams = config::validate_upstreams(upstreams)?;
        debug!(?upstreams, "embedded dns upstream servers changed");
        self.forwarder.set_upstreams(upstreams);
        Ok(())
    }

    /// The number of queries being forwarded now.
    pub fn forwarding(&self) -> usize {
        self.forwarder.in_flight()
    }

    /// Stops the server: stops accepting queries, drops the queries being answered, closes
    /// the sockets, and waits for its tasks to end. The address can be bound again afterwards.
    ///
    /// # Errors
    /// [`Error::Server`] when a task had failed; the server is stopped all the same.
    pub async fn stop(mut self) -> Result<()> {
        let result = self.server.shutdown_gracefully().await;
        info!(listen = %self.listen, netns = %self.netns.path().display(), "embedded dns server stopped");
        result.map_err(|e| Error::Server {
            op: format!("stop the embedded dns server on {}", self.listen),
            reason: e.to_string(),
        })
    }
}

/// Binds the UDP socket, then the TCP listener on the same address (and, for port 0, the
/// port UDP got).
fn bind_sockets(
    listen: SocketAddr,
) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let udp = std::net::UdpSocket::bind(listen)?;
    udp.set_nonblocking(true)?;
    let tcp = std::net::TcpListener::bind(udp.local_addr()?)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

/// What the records say about a query.
enum Local {
    /// Answer with these records.
    Answer(Vec<Record>),
    /// Answer NOERROR with no records.
    NoData,
    /// Not ours: forward it.
    Forward,
}

/// Answers queries for one server.
struct Handler {
    records: SandboxRecords,
    forwarder: Arc<Forwarder>,
    ndots_set: bool,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        if request.metadata.op_code != OpCode::Query {
            return respond(request, response, ResponseCode::NotImp, &[]).await;
        }
        let Some(query) = request.queries.queries().first() else {
            return respond(request, response, ResponseCode::FormErr, &[]).await;
        };
        trace!(name = %query.name(), qtype = %query.query_type(), "dns query");

        match self.answer_locally(query) {
            Local::Answer(records) => {
                respond(request, response, ResponseCode::NoError, &records).await
            }
            Local::NoData => respond(request, response, ResponseCode::NoError, &[]).await,
            Local::Forward => self.forward(request, response).await,
        }
    }
}

impl Handler {
    fn answer_locally(&self, query: &LowerQuery) -> Local {
        if query.query_class() != DNSClass::IN {
            return Local::Forward;
        }
        let qtype = query.query_type();
        let family = match qtype {
            RecordType::A => AddressFamily::V4,
            RecordType::AAAA => AddressFamily::V6,
            RecordType::PTR => return self.answer_ptr(query),
            RecordType::MX => {
                // An implicit MX: the name exists, it just has no mail exchanger.
                let name = query.name().to_string();
                return if self.records.knows_name(&name) {
                    Local::NoData
                } else {
                    Local::Forward
                };
            }
            _ => return Local::Forward,
        };

        let name = query.name().to_string();
        match self.records.resolve_name(&name, family) {
            Lookup::Found(mut ips) => {
                ips.shuffle(&mut rand::rng());
                let owner = query.original().name().clone();
                let records = ips
                    .into_iter()
                    .map(|ip| {
                        let rdata = match ip {
                            IpAddr::V4(ip) => RData::A(A(ip)),
                            IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
                        };
                        Record::from_rdata(owner.clone(), LOCAL_TTL, rdata)
                    })
                    .collect();
                Local::Answer(records)
            }
            Lookup::NoData => Local::NoData,
            // With a user ndots, the client will try its search domains next: do not leak
            // the bare name upstream.
            Lookup::NotFound if self.ndots_set && !name.trim_end_matches('.').contains('.') => {
                Local::NoData
            }
            Lookup::NotFound => Local::Forward,
        }
    }

    fn answer_ptr(&self, query: &LowerQuery) -> Local {
        let name = query.name().to_string();
        let Some(ip) = parse_reverse_name(&name) else {
            return Local::Forward;
        };
        let Some(host) = self.records.resolve_ip(ip) else {
            return Local::Forward;
        };
        let Ok(target) = Name::from_ascii(format!("{host}.")) else {
            return Local::Forward;
        };
        let owner = query.original().name().clone();
        Local::Answer(vec![Record::from_rdata(
            owner,
            LOCAL_TTL,
            RData::PTR(PTR(target)),
        )])
    }

    async fn forward<R: ResponseHandler>(&self, request: &Request, response: R) -> ResponseInfo {
        let transport = match request.protocol() {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        match self.forwarder.forward(request.as_slice(), transport).await {
            Outcome::Answer(bytes) => match Message::from_vec(&bytes) {
                Ok(answer) => relay(request, response, answer).await,
                Err(error) => {
                    debug!(%error, "cannot parse the upstream answer");
                    respond(request, response, ResponseCode::ServFail, &[]).await
                }
            },
            Outcome::Overloaded => respond(request, response, ResponseCode::Refused, &[]).await,
            Outcome::NoAnswer => respond(request, response, ResponseCode::ServFail, &[]).await,
        }
    }
}

/// The EDNS section of a response: present when the query had one, advertising the
/// client's own payload size, which is also the size the response is truncated to.
fn response_edns(request: &Request, upstream: Option<Edns>) -> Option<Edns> {
    request.edns.as_ref()?;
    let mut edns = upstream.unwrap_or_default();
    edns.set_max_payload(request.max_payload().max(MIN_UDP_PAYLOAD));
    Some(edns)
}

/// Sends a locally made response.
async fn respond<R: ResponseHandler>(
    request: &Request,
    mut response: R,
    code: ResponseCode,
    answers: &[Record],
) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.recursion_available = true;
    metadata.response_code = code;
    let edns = response_edns(request, None);
    let message = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
        metadata,
        answers.iter(),
        &[],
        &[],
        &[],
    );
    match response.send_response(message).await {
        Ok(info) => info,
        Err(error) => send_failed(request, &error),
    }
}

/// Sends an upstream server's answer on, with the client's id and question.
async fn relay<R: ResponseHandler>(
    request: &Request,
    mut response: R,
    answer: Message,
) -> ResponseInfo {
    let Message {
        metadata: upstream,
        answers,
        authorities,
        additionals,
        edns,
        ..
    } = answer;
    let mut metadata = upstream;
    metadata.id = request.metadata.id;
    let edns = response_edns(request, edns);
    let message = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
        metadata,
        answers.iter(),
        authorities.iter(),
        &[],
        additionals.iter(),
    );
    match response.send_response(message).await {
        Ok(info) => info,
        Err(error) => send_failed(request, &error),
    }
}

fn send_failed(request: &Request, error: &dyn fmt::Display) -> ResponseInfo {
    debug!(src = %request.src(), %error, "cannot send the dns response");
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

/// The address of a full reverse name (`4.3.2.1.in-addr.arpa.`, or 32 nibbles then
/// `ip6.arpa.`); partial names (whole networks) are not addresses.
pub(crate) fn parse_reverse_name(name: &str) -> Option<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let mut labels = rest.split('.');
        for octet in octets.iter_mut().rev() {
            let label = labels.next()?;
            if label.is_empty() || label.len() > 3 || !label.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *octet = label.parse().ok()?;
        }
        return labels
            .next()
            .is_none()
            .then(|| Ipv4Addr::from(octets).into());
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let mut value: u128 = 0;
    let mut count = 0;
    for (i, label) in rest.split('.').enumerate() {
        let mut chars = label.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return None;
        };
        let nibble = c.to_digit(16)?;
        if i >= 32 {
            return None;
        }
        value |= u128::from(nibble) << (4 * i);
        count += 1;
    }
    (count == 32).then(|| Ipv6Addr::from(value).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_reverse_names_parse_to_addresses() {
        assert_eq!(
            parse_reverse_name("2.0.0.10.in-addr.arpa."),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(
            parse_reverse_name("2.0.0.10.IN-ADDR.ARPA"),
            Some("10.0.0.2".parse().unwrap())
        );
        let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
        assert_eq!(parse_reverse_name(v6), Some("fd00::2".parse().unwrap()));
        for partial in [
            "0.10.in-addr.arpa.",
            "1.2.0.0.10.in-addr.arpa.",
            "256.0.0.10.in-addr.arpa.",
            "+1.0.0.10.in-addr.arpa.",
            "0.d.f.ip6.arpa.",
            "example.com.",
        ] {
            assert_eq!(parse_reverse_name(partial), None, "{partial}");
        }
    }
}
