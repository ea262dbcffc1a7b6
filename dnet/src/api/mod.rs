//! The daemon's HTTP API: Docker's network endpoints, the ping and version endpoints clients
//! negotiate with, and dnet's own sandbox endpoints under `/dnet/`.
//!
//! Every route is also served under a version prefix (`/v1.44/networks`); a prefix newer than
//! [`API_VERSION`] is refused with 400, as the Docker daemon does. Errors are JSON
//! `{"message": ...}` with the status of the error's [`ErrorKind`] (404 not found, 400 bad
//! request, 409 conflict, 403 forbidden, 503 unavailable, 500 internal).
//!
//! The router is built from [`routes`], the same table [`route_table`] returns, so the
//! OpenAPI description (`dnet/openapi.json`) can be checked against what is really served.

mod networks;
mod sandboxes;
mod system;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, head, post};
use libnetwork::Controller;
use libnetwork_types::ErrorKind;
use tower::Layer as _;

use crate::model::{API_VERSION, ErrorResponse, MIN_API_VERSION};

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    controller: Controller,
    kernel_version: String,
}

impl AppState {
    /// The state of a daemon serving `controller`.
    pub fn new(controller: Controller) -> Self {
        let kernel_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Self {
            inner: Arc::new(StateInner {
                controller,
                kernel_version,
            }),
        }
    }

    /// The controller.
    pub fn controller(&self) -> &Controller {
        &self.inner.controller
    }
}

/// An error answer: a status and a one-line message, sent as `{"message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 409 Conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
}

/// The status code of an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl From<libnetwork::Error> for ApiError {
    fn from(e: libnetwork::Error) -> Self {
        Self::new(status_of(e.kind()), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON request body; malformed JSON is a 400 with serde's reason.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid JSON: the request body is empty",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Runs a handler's changes in a task of their own, so that they complete even when the
/// client goes away: hyper drops a request's future when its connection closes, and a
/// controller operation dropped halfway would be left for the next restart to repair.
pub(crate) async fn detached<T: Send + 'static>(
    work: impl Future<Output = ApiResult<T>> + Send + 'static,
) -> ApiResult<T> {
    tokio::spawn(work).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's task failed: {e}"),
        )
    })?
}

/// One route: a path and its handlers by method.
#[derive(Debug)]
pub struct Route {
    /// The path, in axum's syntax (`/networks/{id}`).
    pub path: &'static str,
    /// The handlers.
    pub methods: Vec<(Method, MethodRouter<AppState>)>,
}

/// Every route the daemon serves (without the version prefix).
pub fn routes() -> Vec<Route> {
    fn route(path: &'static str, methods: Vec<(Method, MethodRouter<AppState>)>) -> Route {
        Route { path, methods }
    }
    vec![
        route(
            "/_ping",
            vec![
                (Method::GET, get(system::ping)),
                (Method::HEAD, head(system::ping_head)),
            ],
        ),
        route("/version", vec![(Method::GET, get(system::version))]),
        route("/networks", vec![(Method::GET, get(networks::list))]),
        route(
            "/networks/create",
            vec![(Method::POST, post(networks::create))],
        ),
        route(
            "/networks/prune",
            vec![(Method::POST, post(networks::prune))],
        ),
        route(
            "/networks/{id}",
            vec![
                (Method::GET, get(networks::inspect)),
                (Method::DELETE, delete(networks::remove)),
            ],
        ),
        route(
            "/networks/{id}/connect",
            vec![(Method::POST, post(networks::connect))],
        ),
        route(
            "/networks/{id}/disconnect",
            vec![(Method::POST, post(networks::disconnect))],
        ),
        route(
            "/dnet/sandboxes",
            vec![
                (Method::GET, get(sandboxes::list)),
                (Method::POST, post(sandboxes::create)),
            ],
        ),
        route(
            "/dnet/sandboxes/{id}",
            vec![
                (Method::GET, get(sandboxes::inspect)),
                (Method::DELETE, delete(sandboxes::remove)),
            ],
        ),
    ]
}

/// The served paths and their methods, as [`routes`] has them (for the OpenAPI check).
pub fn route_table() -> Vec<(&'static str, Vec<Method>)> {
    routes()
        .into_iter()
        .map(|r| (r.path, r.methods.into_iter().map(|(m, _)| m).collect()))
        .collect()
}

/// The API's router (without the version prefix handling, which [`serve`] adds).
pub fn router(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    for route in routes() {
        let mut methods: MethodRouter<AppState> = MethodRouter::new();
        for (_, handler) in route.methods {
            methods = methods.merge(handler);
        }
        router = router.route(route.path, methods);
    }
    router
        .fallback(not_found)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Logs every request at debug: method, path, status and time taken.
async fn log_request(req: Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Serves the API on `listener` until `shutdown` completes, then waits for the requests in
/// flight.
///
/// # Errors
/// When accepting connections fails.
pub async fn serve(
    listener: tokio::net::UnixListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::middleware::map_request(strip_version_prefix).layer(router(state));
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The answer for paths the API does not have.
async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("page not found: {}", uri.path()))
}

/// Removes a `/vX.Y` prefix, refusing versions newer than [`API_VERSION`] or older than
/// [`MIN_API_VERSION`].
async fn strip_version_prefix(mut req: Request) -> Result<Request, ApiError> {
    let path = req.uri().path();
    let Some((version, rest)) = split_version(path) else {
        return Ok(req);
    };
    if version_cmp(version, API_VERSION).is_gt() {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if version_cmp(version, MIN_API_VERSION).is_lt() {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is \
             {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    let rest = rest.to_owned();
    let mut parts = req.uri().clone().into_parts();
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| ApiError::bad_request("invalid request path"))?,
    );
    *req.uri_mut() =
        Uri::from_parts(parts).map_err(|_| ApiError::bad_request("invalid request path"))?;
    Ok(req)
}

/// Splits `/v1.44/networks` into `("1.44", "/networks")`; `None` without a version prefix.
fn split_version(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/v")?;
    let (version, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    let (major, minor) = version.split_once('.')?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(major) && numeric(minor)).then_some((version, rest))
}

/// Compares two `major.minor` versions numerically.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |v: &str| {
        let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
        (
            major.parse::<u64>().unwrap_or(0),
            minor.parse::<u64>().unwrap_or(0),
        )
    };
    parse(a).cmp(&parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_recognised() {
        assert_eq!(
            split_version("/v1.44/networks"),
            Some(("1.44", "/networks"))
        );
        assert_eq!(
            split_version("/v1.41/networks/x/connect"),
            Some(("1.41", "/networks/x/connect"))
        );
        assert_eq!(split_version("/v1.44"), Some(("1.44", "/")));
        assert_eq!(split_version("/networks"), None);
        assert_eq!(split_version("/version"), None);
        assert_eq!(split_version("/v1/networks"), None);
        assert_eq!(split_version("/vx.y/networks"), None);
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_cmp("1.9", "1.44").is_lt());
        assert!(version_cmp("1.50", "1.44").is_gt());
        assert!(version_cmp("1.44", "1.44").is_eq());
    }

    #[test]
    fn every_route_has_methods_and_a_unique_path() {
        let table = route_table();
        let mut paths: Vec<_> = table.iter().map(|(p, _)| *p).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), table.len());
        assert!(table.iter().all(|(_, m)| !m.is_empty()));
    }
}
