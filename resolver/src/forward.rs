//! Forwarding queries to the upstream servers.
//!
//! A query is forwarded as the client sent it, with a fresh random id per attempt, from a
//! fresh socket (so a fresh ephemeral port) created on a tokio worker, that is in the
//! namespace the runtime runs in. An answer counts only when it comes from the server asked
//! (connected sockets), carries the id sent and echoes the question.
//!
//! Servers are tried in order. The next one is asked as soon as the current one fails
//! (connection refused, SERVFAIL, REFUSED, a non-authoritative NXDOMAIN, any other error code,
//! as libnetwork), or when it stays silent for `failover_after`; slower servers asked earlier
//! are still listened to, and the first acceptable answer wins. When nothing acceptable comes
//! before the forward timeout, the best error answer received is returned (NXDOMAIN before
//! SERVFAIL), or nothing.
//!
//! UDP queries go out over UDP; a truncated answer is asked again over TCP from the same
//! server (and returned truncated if that fails, so the client retries over TCP itself). TCP
//! queries go out over TCP.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::{debug, trace, warn};

/// The largest DNS message over UDP (and the receive buffer for one).
const MAX_UDP_MESSAGE: usize = 65_535;
/// How often "too many queries in flight" may be logged (libnetwork's `logInterval`).
const OVERLOAD_LOG_INTERVAL: Duration = Duration::from_secs(2);

/// Response codes, as in the header's low four bits.
const RCODE_NOERROR: u8 = 0;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_REFUSED: u8 = 5;

/// How the client's query reached the server, and so how it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Over UDP (retried over TCP when the answer is truncated).
    Udp,
    /// Over TCP.
    Tcp,
}

/// What forwarding produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// An upstream server's answer (raw message, with the id of the last attempt).
    Answer(Vec<u8>),
    /// Too many queries are being forwarded already.
    Overloaded,
    /// No upstream server, or none answered in time.
    NoAnswer,
}

/// The forwarding half of one embedded server.
#[derive(Debug)]
pub(crate) struct Forwarder {
    upstreams: RwLock<Arc<[SocketAddr]>>,
    timeout: Duration,
    failover_after: Duration,
    max_in_flight: usize,
    in_flight: AtomicUsize,
    last_overload_log: Mutex<Option<Instant>>,
}

impl Forwarder {
    pub(crate) fn new(
        upstreams: Vec<SocketAddr>,
        timeout: Duration,
        failover_after: Duration,
        max_in_flight: usize,
    ) -> Self {
        Self {
            upstreams: RwLock::new(upstreams.into()),
            timeout,
            failover_after,
            max_in_flight,
            in_flight: AtomicUsize::new(0),
            last_overload_log: Mutex::new(None),
        }
    }

    /// The upstream servers in use.
    pub(crate) fn upstreams(&self) -> Arc<[SocketAddr]> {
        Arc::clone(
            &self
                .upstreams
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Replaces the upstream servers; queries already being forwarded keep the old list.
    pub(crate) fn set_upstreams(&self, upstreams: Vec<SocketAddr>) {
        *self
            .upstreams
            .write()
            .unwrap_or_else(PoisonError::into_inner) = upstreams.into();
    }

    /// The number of queries being forwarded now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Forwards the raw `query` (at least a header) to the upstream servers.
    pub(crate) async fn forward(&self, query: &[u8], transport: Transport) -> Outcome {
        let Some(_permit) = self.acquire() else {
            self.log_overload();
            return Outcome::Overloaded;
        };
        let servers = self.upstreams();
        if servers.is_empty() {
            return Outcome::NoAnswer;
        }
        match self.exchange_all(&servers, query, transport).await {
            Some(answer) => Outcome::Answer(answer),
            None => Outcome::NoAnswer,
        }
    }

    fn acquire(&self) -> Option<Permit<'_>> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Permit(&self.in_flight))
    }

    fn log_overload(&self) {
        let now = Instant::now();
        let mut last = self
            .last_overload_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| now.duration_since(t) >= OVERLOAD_LOG_INTERVAL) {
            *last = Some(now);
            warn!(
                max = self.max_in_flight,
                "more than the allowed number of dns queries in flight; refusing"
            );
        }
    }

    /// Asks the servers in turn (overlapping when one is slow) and returns the first
    /// acceptable answer, or the best error answer.
    async fn exchange_all(
        &self,
        servers: &[SocketAddr],
        query: &[u8],
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let question = question_span(query);
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let failover = tokio::time::sleep(self.failover_after);
        tokio::pin!(failover);

        let mut pending = FuturesUnordered::new();
        pending.push(attempt(servers[0], query, question.clone(), transport));
        let mut next = 1;
        let mut fallback: Option<Vec<u8>> = None;

        loop {
            tokio::select! {
                Some((server, result)) = pending.next() => {
                    match result {
                        Ok(answer) if acceptable(&answer) => return Some(answer),
                        Ok(answer) => {
                            debug!(%server, rcode = rcode(&answer), "upstream dns server answered with an error");
                            if fallback.as_deref().is_none_or(|f| rank(&answer) >= rank(f)) {
                                fallback = Some(answer);
                            }
                        }
                        Err(error) => debug!(%server, %error, "upstream dns server failed"),
                    }
                    if next < servers.len() {
                        pending.push(attempt(servers[next], query, question.clone(), transport));
                        next += 1;
                        failover.as_mut().reset(tokio::time::Instant::now() + self.failover_after);
                    } else if pending.is_empty() {
                        return fallback;
                    }
                }
                () = &mut failover, if next < servers.len() => {
                    debug!(server = %servers[next - 1], "upstream dns server is slow; asking the next one too");
                    pending.push(attempt(servers[next], query, question.clone(), transport));
                    next += 1;
                    failover.as_mut().reset(tokio::time::Instant::now() + self.failover_after);
                }
                () = &mut deadline => {
                    debug!(timeout = ?self.timeout, "no upstream dns server answered in time");
                    return fallback;
                }
            }
        }
    }
}

/// One slot of the in-flight bound, released when dropped (also when the query's task is
/// aborted).
struct Permit<'a>(&'a AtomicUsize);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One server, asked once: over UDP (then TCP if truncated) or over TCP.
async fn attempt(
    server: SocketAddr,
    query: &[u8],
    question: Option<Range<usize>>,
    transport: Transport,
) -> (SocketAddr, io::Result<Vec<u8>>) {
    let result = match transport {
        Transport::Tcp => tcp_exchange(server, query, question).await,
        Transport::Udp => match udp_exchange(server, query, question.clone()).await {
            Ok(answer) if truncated(&answer) => {
                trace!(%server, "truncated upstream answer; asking again over tcp");
                match tcp_exchange(server, query, question).await {
                    Ok(full) => Ok(full),
                    Err(error) => {
                        debug!(%server, %error, "tcp retry failed; passing the truncated answer on");
                        Ok(answer)
                    }
                }
            }
            other => other,
        },
    };
    (server, result)
}

async fn udp_exchange(
    server: SocketAddr,
    query: &[u8],
    question: Option<Range<usize>>,
) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    let (message, id) = with_random_id(query);
    socket.send(&message).await?;

    let mut buf = Vec::with_capacity(MAX_UDP_MESSAGE);
    loop {
        buf.clear();
        socket.recv_buf(&mut buf).await?;
        if is_answer_to(&buf, id, &message, question.clone()) {
            return Ok(buf);
        }
        trace!(%server, "ignoring a datagram that does not answer the query");
    }
}

async fn tcp_exchange(
    server: SocketAddr,
    query: &[u8],
    question: Option<Range<usize>>,
) -> io::Result<Vec<u8>> {
    let (message, id) = with_random_id(query);
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long for tcp"))?;
    let mut stream = TcpStream::connect(server).await?;
    stream.set_nodelay(true)?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&message);
    stream.write_all(&framed).await?;

    loop {
        let len = usize::from(stream.read_u16().await?);
        let mut buf = vec![0; len];
        stream.read_exact(&mut buf).await?;
        if is_answer_to(&buf, id, &message, question.clone()) {
            return Ok(buf);
        }
        trace!(%server, "ignoring a tcp message that does not answer the query");
    }
}

/// A copy of `query` with a fresh random id.
fn with_random_id(query: &[u8]) -> (Vec<u8>, u16) {
    let id: u16 = rand::random();
    let mut message = query.to_vec();
    message[..2].copy_from_slice(&id.to_be_bytes());
    (message, id)
}

/// The byte range of the first question of a message (name, type, class), when the message
/// has one written without compression (as queries are).
pub(crate) fn question_span(message: &[u8]) -> Option<Range<usize>> {
    let count = u16::from_be_bytes([*message.get(4)?, *message.get(5)?]);
    if count == 0 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = usize::from(*message.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        at += 1 + len;
    }
    let end = at + 4;
    (end <= message.len()).then_some(12..end)
}

/// Whether `answer` is a response with `id` that echoes the question of `query`.
fn is_answer_to(answer: &[u8], id: u16, query: &[u8], question: Option<Range<usize>>) -> bool {
    if answer.len() < 12 || answer[..2] != id.to_be_bytes() || answer[2] & 0x80 == 0 {
        return false;
    }
    match question {
        Some(span) => answer
            .get(span.clone())
            .is_some_and(|q| q.eq_ignore_ascii_case(&query[span])),
        None => true,
    }
}

fn rcode(message: &[u8]) -> u8 {
    message[3] & 0x0F
}

fn truncated(message: &[u8]) -> bool {
    message[2] & 0x02 != 0
}

fn authoritative(message: &[u8]) -> bool {
    message[2] & 0x04 != 0
}

/// Whether an answer ends the search: success, or an authoritative NXDOMAIN.
fn acceptable(message: &[u8]) -> bool {
    match rcode(message) {
        RCODE_NOERROR => true,
        RCODE_NXDOMAIN => authoritative(message),
        _ => false,
    }
}

/// How good an error answer is as a last resort: server failures are worth least.
fn rank(message: &[u8]) -> u8 {
    match rcode(message) {
        RCODE_SERVFAIL | RCODE_REFUSED => 0,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `web.` type A class IN with id 0x1234.
    fn query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn the_question_of_a_query_is_found() {
        let q = query();
        assert_eq!(question_span(&q), Some(12..21));
        assert_eq!(question_span(&q[..15]), None);
        let mut none = q.clone();
        none[5] = 0;
        assert_eq!(question_span(&none), None);
    }

    #[test]
    fn only_responses_with_the_id_and_question_sent_are_answers() {
        let q = query();
        let span = question_span(&q);
        let mut answer = q.clone();
        answer[2] |= 0x80;
        assert!(is_answer_to(&answer, 0x1234, &q, span.clone()));
        assert!(!is_answer_to(&answer, 0x4321, &q, span.clone()));
        assert!(
            !is_answer_to(&q, 0x1234, &q, span.clone()),
            "a query is not an answer"
        );
        let mut upper = answer.clone();
        upper[13] = b'W';
        assert!(
            is_answer_to(&upper, 0x1234, &q, span.clone()),
            "case may differ"
        );
        let mut other = answer.clone();
        other[13] = b'x';
        assert!(!is_answer_to(&other, 0x1234, &q, span));
    }

    #[test]
    fn errors_hand_over_to_the_next_server_except_authoritative_nxdomain() {
        let mut m = query();
        m[2] |= 0x80;
        assert!(acceptable(&m));
        m[3] = RCODE_NXDOMAIN;
        assert!(!acceptable(&m));
        m[2] |= 0x04;
        assert!(acceptable(&m));
        m[3] = RCODE_SERVFAIL;
        assert!(!acceptable(&m));
        assert!(
            rank(&m)
                < rank(&{
                    let mut n = m.clone();
                    n[3] = RCODE_NXDOMAIN;
                    n
                })
        );
    }

    #[test]
    fn the_in_flight_bound_is_released_when_permits_drop() {
        let f = Forwarder::new(
            Vec::new(),
            Duration::from_secs(1),
            Duration::from_secs(1),
            2,
        );
        let a = f.acquire().unwrap();
        let b = f.acquire().unwrap();
        assert!(f.acquire().is_none());
        assert_eq!(f.in_flight(), 2);
        drop(a);
        let c = f.acquire().unwrap();
        drop((b, c));
        assert_eq!(f.in_flight(), 0);
    }
}
