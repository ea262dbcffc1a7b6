//! Plugins for the tests: an axum router with scripted replies, served with a connection
//! counter, and a raw socket server for answers no HTTP library would send.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::task::{JoinHandle, JoinSet};

/// What the plugin answers to one method.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// JSON with a status.
    Json(u16, serde_json::Value),
    /// A text body with a status.
    Text(u16, &'static str),
    /// Never answers.
    Hang,
}

/// One request the plugin got.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Replies by path (`/Plugin.Activate`) and the log of requests.
#[derive(Default)]
pub(crate) struct Script {
    replies: Mutex<HashMap<String, Reply>>,
    log: Mutex<Vec<Recorded>>,
}

impl Script {
    pub(crate) fn new(replies: &[(&str, Reply)]) -> Arc<Self> {
        let script = Arc::new(Self::default());
        for (path, reply) in replies {
            script.set(path, reply.clone());
        }
        script
    }

    pub(crate) fn set(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.to_owned(), reply);
    }

    pub(crate) fn log(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn count(&self, path: &str) -> usize {
        self.log().iter().filter(|r| r.path == path).count()
    }
}

/// The scripted handler, for serving a script some other way.
pub(crate) async fn handle_for_tests(state: State<Arc<Script>>, request: Request) -> Response {
    handle(state, request).await
}

async fn handle(State(script): State<Arc<Script>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    script.log.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers,
        body,
    });
    let reply = script.replies.lock().unwrap().get(&path).cloned();
    match reply {
        Some(Reply::Json(status, value)) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/vnd.docker.plugins.v1.2+json")],
            value.to_string(),
        )
            .into_response(),
        Some(Reply::Text(status, text)) => {
            (StatusCode::from_u16(status).unwrap(), Body::from(text)).into_response()
        }
        Some(Reply::Hang) => std::future::pending().await,
        None => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    }
}

/// A plugin served on a unix socket until dropped or killed.
pub(crate) struct TestPlugin {
    pub(crate) socket: PathBuf,
    pub(crate) accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestPlugin {
    /// Serves `script` on `socket` (its directory is created).
    pub(crate) fn start(socket: &Path, script: Arc<Script>) -> Self {
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let listener = UnixListener::bind(socket).unwrap();
        let router = Router::new().fallback(handle).with_state(script);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            // The connections die with this task: killing it is a plugin crash.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            socket: socket.to_path_buf(),
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Kills the plugin: every connection is dropped and the socket file removed.
    pub(crate) async fn kill(self) {
        let Self { socket, task, .. } = self;
        task.abort();
        let _ = task.await;
        let _ = std::fs::remove_file(&socket);
    }
}

/// A raw server: for the n-th connection, reads one request and writes `answers[n]` (or
/// closes without a word for `None`, or when n is past the list), then closes.
pub(crate) fn raw_plugin(socket: &Path, answers: Vec<Option<&'static [u8]>>) -> JoinHandle<()> {
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            read_request(&mut stream).await;
            if let Some(Some(answer)) = answers.get(n) {
                let _ = stream.write_all(answer).await;
            }
            drop(stream);
            n += 1;
        }
    })
}

/// Reads one HTTP request (headers and a Content-Length body).
async fn read_request(stream: &mut tokio::net::UnixStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
