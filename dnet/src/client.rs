//! The HTTP client of the daemon's unix socket (hyper 1, one keep-alive connection).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::model::ErrorResponse;

/// The default socket of the daemon.
pub const DEFAULT_SOCKET: &str = "/run/dnet/dnet.sock";

/// The socket path of a `-H`/`DNET_HOST` value: a path, or `unix://` and a path.
///
/// # Errors
/// Other schemes (`tcp://`): only unix sockets are served.
pub fn socket_path(host: &str) -> Result<PathBuf, String> {
    if let Some(path) = host.strip_prefix("unix://") {
        return Ok(PathBuf::from(path));
    }
    if host.contains("://") {
        return Err(format!(
            "unsupported host {host:?}: dnet serves a unix socket (unix:///path or a path)"
        ));
    }
    Ok(PathBuf::from(host))
}

/// Errors of requests to the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket cannot be reached: no daemon runs there (nothing was sent).
    #[error(
        "cannot reach the dnet daemon at {}: {source}; is it running? start one with \
         `sudo dnet daemon` (or point -H/--host or DNET_HOST at its socket)",
        socket.display()
    )]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed during the request; the daemon may or may not have acted.
    #[error("talk to the dnet daemon: {0}")]
    Http(#[source] hyper::Error),
    /// The daemon answered with an error status (it changed nothing, unless the message says
    /// otherwise).
    #[error("{message} ({} {})", status.as_u16(), status.canonical_reason().unwrap_or("error"))]
    Api {
        /// The status.
        status: StatusCode,
        /// The daemon's message.
        message: String,
    },
    /// The answer could not be decoded (the request was carried out).
    #[error("read the dnet daemon's answer: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The class of the error: an API error's status class, Unavailable when the daemon
    /// cannot be reached, Internal for an unreadable answer.
    pub fn kind(&self) -> libnetwork_types::ErrorKind {
        use libnetwork_types::ErrorKind;
        match self {
            Self::Connect { .. } | Self::Http(_) => ErrorKind::Unavailable,
            Self::Api { status, .. } => match status.as_u16() {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                403 => ErrorKind::Forbidden,
                503 => ErrorKind::Unavailable,
                400..=499 => ErrorKind::BadRequest,
                _ => ErrorKind::Internal,
            },
            Self::Decode(_) => ErrorKind::Internal,
        }
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// A client of one daemon; connects on first use and keeps the connection.
#[derive(Debug)]
pub struct Client {
    socket: PathBuf,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    /// A client of the daemon at `socket` (no connection yet).
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            sender: None,
        }
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Connects (or reuses the connection) and waits until it can take a request.
    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ClientError> {
        let reusable = match &mut self.sender {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            let stream =
                UnixStream::connect(&self.socket)
                    .await
                    .map_err(|source| ClientError::Connect {
                        socket: self.socket.clone(),
                        source,
                    })?;
            let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(ClientError::Http)?;
            tokio::spawn(async move {
                // The connection ends when the client is dropped or the daemon closes it.
                let _ = conn.await;
            });
            sender.ready().await.map_err(ClientError::Http)?;
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("a sender was just stored"))
    }

    /// Sends a request; any status is returned (see [`Client::call`] for errors as errors).
    ///
    /// # Errors
    /// [`ClientError::Connect`] and [`ClientError::Http`].
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "dnet");
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Decode(format!("build the request: {e}")))?;
        let sender = self.sender().await?;
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(ClientError::Http(e));
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(ClientError::Http)?.to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and turns error statuses into [`ClientError::Api`].
    ///
    /// # Errors
    /// As [`Client::send`], and [`ClientError::Api`].
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let response = self.send(method, path, body).await?;
        if response.status.is_client_error() || response.status.is_server_error() {
            let message = serde_json::from_slice::<ErrorResponse>(&response.body)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&response.body).trim().to_owned());
            return Err(ClientError::Api {
                status: response.status,
                message,
            });
        }
        Ok(response)
    }

    /// `GET` a JSON value.
    ///
    /// # Errors
    /// As [`Client::call`], and [`ClientError::Decode`].
    pub async fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T, ClientError> {
        let response = self.call(Method::GET, path, None).await?;
        decode(&response.body)
    }

    /// `POST` a JSON value and decode the JSON answer.
    ///
    /// # Errors
    /// As [`Client::call`], and [`ClientError::Decode`].
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let response = self.call(Method::POST, path, Some(body)).await?;
        decode(&response.body)
    }

    /// `POST` a JSON value, ignoring the answer's body.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn post_unit<B: Serialize>(
        &mut self,
        path: &str,
        body: &B,
    ) -> Result<(), ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.call(Method::POST, path, Some(body)).await.map(|_| ())
    }

    /// `DELETE` a resource.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete(&mut self, path: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, path, None).await.map(|_| ())
    }
}

/// Decodes a JSON body.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()))
}

/// Escapes a path segment or query value (everything but unreserved characters).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_unix_sockets_only() {
        assert_eq!(
            socket_path("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert_eq!(
            socket_path("/tmp/y.sock").unwrap(),
            PathBuf::from("/tmp/y.sock")
        );
        assert!(socket_path("tcp://0.0.0.0:2385").is_err());
    }

    #[test]
    fn api_errors_read_as_one_line_with_the_status_meaning() {
        let e = ClientError::Api {
            status: StatusCode::NOT_FOUND,
            message: "network x not found".into(),
        };
        assert_eq!(e.to_string(), "network x not found (404 Not Found)");
    }

    #[test]
    fn escaping_keeps_unreserved_characters() {
        assert_eq!(escape("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(escape("{\"a\":1}"), "%7B%22a%22%3A1%7D");
    }
}
