//! [`Client`]: JSON over HTTP/1.1 to one plugin (Docker's `pkg/plugins/client.go`).
//!
//! Every call is `POST /<Method>` (`/NetworkDriver.CreateNetwork`) with a JSON body (empty for
//! calls without arguments) and the headers `Accept` and `Content-Type`
//! [`VERSION_MIMETYPE`]; the answer must be status 200 with a JSON
//! body. Connections are kept alive and reused; a reused connection is checked with
//! `ready()` first, and a request the connection refused before writing it is moved to a new
//! connection.
//!
//! # Retries and timeouts
//! - A connection that cannot be made is retried with Docker's backoff ([`RetryPolicy`]: 1 s,
//!   2 s, 4 s, 8 s, ... while the elapsed time plus the next delay stays under 30 s). Nothing was
//!   sent, so every call may be retried.
//! - Once the request is written, a call is never repeated, unlike Docker (which repeats any
//!   call whose HTTP exchange failed): repeating `CreateEndpoint` after a lost answer could
//!   create it twice. Idempotent calls ([`CallOptions::idempotent`], e.g. `Plugin.Activate`)
//!   are repeated when the connection broke before the answer.
//! - The whole exchange (write, answer, body) has one deadline, [`ClientConfig::call_timeout`].
//!   Docker has none for driver calls; a plugin that hangs would hang the daemon.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;
use tracing::{debug, trace, warn};

use crate::json;
use crate::{Error, PluginAddr, VERSION_MIMETYPE};

/// At most this many idle connections are kept per plugin.
const MAX_IDLE: usize = 4;

/// How long to keep trying to reach a plugin that does not accept connections, and how long
/// to wait between tries (Docker's `backoff` and `abort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay; each retry doubles it.
    pub first_delay: Duration,
    /// The largest delay.
    pub max_delay: Duration,
    /// Give up when the time since the first try plus the next delay reaches this.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// Docker's: 1 s doubling up to 30 s, giving up at 30 s.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            give_up_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries: the first failure is final.
    pub const NONE: Self = Self {
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        give_up_after: Duration::ZERO,
    };

    /// The delay before retry number `retries` (0 for the first retry).
    pub fn delay(&self, retries: u32) -> Duration {
        let factor = 1u32.checked_shl(retries.min(31)).unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// Whether to give up instead of waiting `next_delay` after `elapsed` of trying.
    pub fn gives_up(&self, elapsed: Duration, next_delay: Duration) -> bool {
        elapsed + next_delay >= self.give_up_after
    }
}

/// How a [`Client`] talks to its plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Deadline of one exchange, from writing the request to the end of the answer (default
    /// 60 s). The outcome of a call that hits it is unknown.
    pub call_timeout: Duration,
    /// Deadline of one connection attempt (default 10 s).
    pub connect_timeout: Duration,
    /// Retries of connections (and of idempotent calls whose connection broke).
    pub retry: RetryPolicy,
    /// Answers longer than this many bytes are refused (default 16 MiB).
    pub max_response_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_response_bytes: 16 << 20,
        }
    }
}

/// Per-call options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// The answer field carrying the plugin's error message: `Err` for network drivers,
    /// `Error` for IPAM drivers; `None` for calls whose answer has none (`Plugin.Activate`).
    /// A non-empty value fails the call with [`Error::Plugin`].
    pub error_field: Option<&'static str>,
    /// The call may be repeated when the connection breaks before the answer.
    pub idempotent: bool,
}

/// A connection that can take a request.
type Sender = SendRequest<Full<Bytes>>;

/// A client of one plugin. Cheap to clone; clones share the idle connections. Safe to use
/// from many tasks, and from tasks of different runtimes (each connection is driven by a task
/// of the runtime that opened it; a connection whose runtime is gone reads as closed and is
/// replaced).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    plugin: String,
    addr: PluginAddr,
    host: String,
    config: ClientConfig,
    idle: Mutex<Vec<Sender>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("plugin", &self.inner.plugin)
            .field("addr", &self.inner.addr)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed.
enum AttemptError {
    /// No connection; nothing was sent.
    Connect(std::io::Error),
    /// The call failed after or without sending; see the error.
    Failed(Error),
}

/// Why sending on one connection failed.
enum SendError {
    /// The connection refused the request before writing it.
    NotSent(Box<Request<Full<Bytes>>>),
    /// The HTTP exchange failed after the request was handed over.
    Http(hyper::Error),
    /// The answer's body failed or was too long.
    Body(String),
}

impl Client {
    /// A client of the plugin `plugin` at `addr`. No connection is made until the first call.
    pub fn new(plugin: impl Into<String>, addr: PluginAddr, config: ClientConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                plugin: plugin.into(),
                host: addr.http_host(),
                addr,
                config,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.inner.plugin
    }

    /// The plugin's address.
    pub fn addr(&self) -> &PluginAddr {
        &self.inner.addr
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Calls `method` with `args` encoded as JSON and decodes the answer.
    ///
    /// # Errors
    /// [`Error::Encode`], [`Error::Connect`], [`Error::Timeout`], [`Error::Transport`],
    /// [`Error::Status`], [`Error::Plugin`] (the plugin's message), [`Error::InvalidResponse`]
    /// (not JSON, or not of the shape of `R`).
    pub async fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        args: &(impl Serialize + ?Sized),
        options: CallOptions,
    ) -> Result<R, Error> {
        let body = serde_json::to_vec(args).map_err(|e| Error::Encode {
            plugin: self.inner.plugin.clone(),
            method: method.to_owned(),
            reason: e.to_string(),
        })?;
        let answer = self
            .call_raw(method, Some(Bytes::from(body)), options)
            .await?;
        self.decode(method, &answer, options)
    }

    /// Calls `method` with an empty body (as Docker does for calls without arguments) and
    /// decodes the answer.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_without_args<R: DeserializeOwned>(
        &self,
        method: &str,
        options: CallOptions,
    ) -> Result<R, Error> {
        let answer = self.call_raw(method, None, options).await?;
        self.decode(method, &answer, options)
    }

    /// Calls `method` with `body` as it is and returns the answer's body. A status other than
    /// 200 is an error ([`Error::Plugin`] when the body is JSON with a non-empty `Err` or
    /// [`CallOptions::error_field`], [`Error::Status`] otherwise); a 200 answer is returned
    /// unchecked.
    ///
    /// # Errors
    /// As [`Client::call`], without the decoding errors.
    pub async fn call_raw(
        &self,
        method: &str,
        body: Option<Bytes>,
        options: CallOptions,
    ) -> Result<Bytes, Error> {
        let body = body.unwrap_or_default();
        let policy = self.inner.config.retry;
        let started = Instant::now();
        let mut retries = 0;
        loop {
            let error = match self.attempt(method, &body).await {
                Ok(answer) => return Ok(answer),
                Err(AttemptError::Connect(e)) => Error::Connect {
                    plugin: self.inner.plugin.clone(),
                    method: method.to_owned(),
                    addr: self.inner.addr.to_string(),
                    attempts: retries + 1,
                    source: Arc::new(e),
                },
                Err(AttemptError::Failed(e @ Error::Transport { .. })) if options.idempotent => e,
                Err(AttemptError::Failed(e)) => return Err(e),
            };
            let delay = policy.delay(retries);
            if policy.gives_up(started.elapsed(), delay) {
                return Err(error);
            }
            warn!(plugin = %self.inner.plugin, method, %error, ?delay, "plugin call failed, retrying");
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }

    /// One try: a connection (idle or new), the exchange, the status check.
    async fn attempt(&self, method: &str, body: &Bytes) -> Result<Bytes, AttemptError> {
        let mut request = Some(
            self.request(method, body.clone())
                .map_err(AttemptError::Failed)?,
        );
        let timeout = self.inner.config.call_timeout;
        let mut first_deadline = None;
        loop {
            let (mut sender, reused) = match self.take_idle().await {
                Some(sender) => (sender, true),
                None => (self.connect().await.map_err(AttemptError::Connect)?, false),
            };
            // The clock starts when the first connection is ready to take the request.
            let deadline = *first_deadline.get_or_insert_with(|| Instant::now() + timeout);
            let Some(req) = request.take() else {
                unreachable!("a request is present at the top of every iteration");
            };
            trace!(plugin = %self.inner.plugin, method, reused, "sending plugin request");
            let exchanged =
                tokio::time::timeout_at(deadline, self.exchange(&mut sender, req)).await;
            let failed = |e| Err(AttemptError::Failed(e));
            return match exchanged {
                Err(_) => failed(Error::Timeout {
                    plugin: self.inner.plugin.clone(),
                    method: method.to_owned(),
                    timeout,
                }),
                Ok(Ok((status, answer))) => {
                    self.put_idle(sender);
                    self.check_status(method, status, answer)
                        .map_err(AttemptError::Failed)
                }
                Ok(Err(SendError::NotSent(req))) if reused => {
                    // The idle connection went away under us; the request was not written.
                    request = Some(*req);
                    continue;
                }
                Ok(Err(SendError::NotSent(_))) => Err(AttemptError::Connect(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "the plugin closed the new connection before the request was written",
                ))),
                Ok(Err(SendError::Http(e))) if e.is_parse() => failed(Error::InvalidResponse {
                    plugin: self.inner.plugin.clone(),
                    method: method.to_owned(),
                    reason: format!("not an HTTP answer: {e}"),
                }),
                Ok(Err(SendError::Http(e))) => failed(Error::Transport {
                    plugin: self.inner.plugin.clone(),
                    method: method.to_owned(),
                    reason: e.to_string(),
                }),
                Ok(Err(SendError::Body(reason))) => failed(Error::InvalidResponse {
                    plugin: self.inner.plugin.clone(),
                    method: method.to_owned(),
                    reason,
                }),
            };
        }
    }

    /// Builds `POST /<method>`.
    fn request(&self, method: &str, body: Bytes) -> Result<Request<Full<Bytes>>, Error> {
        let uri = if method.starts_with('/') {
            method.to_owned()
        } else {
            format!("/{method}")
        };
        Request::post(uri)
            .header(HOST, &self.inner.host)
            .header(ACCEPT, VERSION_MIMETYPE)
            .header(CONTENT_TYPE, VERSION_MIMETYPE)
            .body(Full::new(body))
            .map_err(|e| Error::Encode {
                plugin: self.inner.plugin.clone(),
                method: method.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Sends `req` and reads the whole answer.
    async fn exchange(
        &self,
        sender: &mut Sender,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), SendError> {
        let response =
            sender
                .try_send_request(req)
                .await
                .map_err(|mut e| match e.take_message() {
                    Some(req) => SendError::NotSent(Box::new(req)),
                    None => SendError::Http(e.into_error()),
                })?;
        let status = response.status();
        let limit = self.inner.config.max_response_bytes;
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    SendError::Body(format!("the answer is longer than {limit} bytes"))
                } else {
                    match e.downcast::<hyper::Error>() {
                        Ok(e) => SendError::Http(*e),
                        Err(e) => SendError::Body(e.to_string()),
                    }
                }
            })?;
        Ok((status, body.to_bytes()))
    }

    /// Turns a non-200 answer into an error.
    fn check_status(
        &self,
        method: &str,
        status: StatusCode,
        answer: Bytes,
    ) -> Result<Bytes, Error> {
        if status == StatusCode::OK {
            return Ok(answer);
        }
        // Like Docker: a JSON body with an error message is the plugin's error; anything else
        // is reported with the start of the body.
        let message = json::first_value(&answer).ok().and_then(|v| {
            ["Err", "Error"]
                .iter()
                .find_map(|f| v.get(f).and_then(|m| m.as_str()).filter(|m| !m.is_empty()))
                .map(str::to_owned)
        });
        Err(match message {
            Some(message) => Error::Plugin {
                plugin: self.inner.plugin.clone(),
                method: method.to_owned(),
                status: status.as_u16(),
                message,
            },
            None => Error::Status {
                plugin: self.inner.plugin.clone(),
                method: method.to_owned(),
                status: status.as_u16(),
                body: json::excerpt(&answer),
            },
        })
    }

    /// Decodes a 200 answer, checking the error field first.
    fn decode<R: DeserializeOwned>(
        &self,
        method: &str,
        answer: &[u8],
        options: CallOptions,
    ) -> Result<R, Error> {
        let invalid = |reason: String| Error::InvalidResponse {
            plugin: self.inner.plugin.clone(),
            method: method.to_owned(),
            reason,
        };
        let value = json::first_value(answer)
            .map_err(|e| invalid(format!("{e}: {}", json::excerpt(answer))))?;
        if let Some(field) = options.error_field {
            match value.get(field) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(message)) if message.is_empty() => {}
                Some(serde_json::Value::String(message)) => {
                    return Err(Error::Plugin {
                        plugin: self.inner.plugin.clone(),
                        method: method.to_owned(),
                        status: 200,
                        message: message.clone(),
                    });
                }
                Some(other) => return Err(invalid(format!("{field} is not a string: {other}"))),
            }
        }
        serde_json::from_value(value)
            .map_err(|e| invalid(format!("unexpected shape: {e}: {}", json::excerpt(answer))))
    }

    /// An idle connection that is still open.
    async fn take_idle(&self) -> Option<Sender> {
        loop {
            let mut sender = self
                .inner
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()?;
            // A closed connection fails here and is dropped (dependencies.md, gotcha 10).
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// Keeps a connection for later calls.
    fn put_idle(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// Opens a new connection and starts its driving task on the current runtime.
    async fn connect(&self) -> std::io::Result<Sender> {
        let timeout = self.inner.config.connect_timeout;
        let connecting = async {
            match &self.inner.addr {
                PluginAddr::Unix(path) => handshake(UnixStream::connect(path).await?).await,
                PluginAddr::Tcp { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    handshake(stream).await
                }
            }
        };
        let sender = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {timeout:?}"),
                )
            })??;
        debug!(plugin = %self.inner.plugin, addr = %self.inner.addr, "connected to plugin");
        Ok(sender)
    }
}

/// The HTTP/1 handshake over a fresh stream; the connection task runs until the peer or the
/// last [`Sender`] goes away.
async fn handshake<S>(stream: S) -> std::io::Result<Sender>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "plugin connection ended with an error");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_retry_policy_is_dockers_backoff() {
        let p = RetryPolicy::default();
        let delays: Vec<u64> = (0..7).map(|r| p.delay(r).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        // Tries at 0 s, then after 1, 2, 4 and 8 s (15 s in all); 15 + 16 reaches 30: give up.
        let mut elapsed = Duration::ZERO;
        let mut tries = 1;
        let mut retries = 0;
        while !p.gives_up(elapsed, p.delay(retries)) {
            elapsed += p.delay(retries);
            retries += 1;
            tries += 1;
        }
        assert_eq!(tries, 5);
        assert_eq!(elapsed, Duration::from_secs(15));
        assert_eq!(p.delay(200), Duration::from_secs(30));
    }

    #[test]
    fn no_retry_gives_up_at_once() {
        assert!(RetryPolicy::NONE.gives_up(Duration::ZERO, RetryPolicy::NONE.delay(0)));
    }
}
