//! `/_ping` and `/version`: what clients ask before anything else, to negotiate the API
//! version.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::model::{API_VERSION, Component, MIN_API_VERSION, Platform, VersionResponse};

/// The headers of a ping answer (Docker's: the API version, the OS type, no caching).
fn ping_headers() -> [(HeaderName, HeaderValue); 6] {
    [
        (
            HeaderName::from_static("api-version"),
            HeaderValue::from_static(API_VERSION),
        ),
        (
            HeaderName::from_static("ostype"),
            HeaderValue::from_static("linux"),
        ),
        (
            HeaderName::from_static("docker-experimental"),
            HeaderValue::from_static("false"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, must-revalidate"),
        ),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        ),
    ]
}

/// `GET /_ping`: `OK`.
pub(super) async fn ping() -> Response {
    (ping_headers(), "OK").into_response()
}

/// `HEAD /_ping`: the headers only.
pub(super) async fn ping_head() -> Response {
    (ping_headers(), "").into_response()
}

/// `GET /version`.
pub(super) async fn version(State(state): State<AppState>) -> Json<VersionResponse> {
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Json(VersionResponse {
        platform: Platform {
            name: "dnet (libnetwork in Rust)".to_owned(),
        },
        components: vec![Component {
            name: "dnet".to_owned(),
            version: version.clone(),
        }],
        version,
        api_version: API_VERSION.to_owned(),
        min_api_version: MIN_API_VERSION.to_owned(),
        git_commit: String::new(),
        go_version: "rustc".to_owned(),
        os: std::env::consts::OS.to_owned(),
        arch: arch.to_owned(),
        kernel_version: state.inner.kernel_version.clone(),
    })
}
