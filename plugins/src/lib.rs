//! Docker's plugin protocol (v1): finding plugins in the plugin directories, the activation
//! handshake, and the JSON-over-HTTP client that network and IPAM drivers are called through.
//! This is libnetwork's (moby's) `pkg/plugins`; the drivers that forward to a plugin are in
//! `libnetwork-driver-remote`.
//!
//! A plugin is a process serving HTTP/1.1 on a unix socket (or TCP). The daemon finds it by
//! name ([`Discovery`]), calls `POST /Plugin.Activate` and gets `{"Implements":
//! ["NetworkDriver"]}` ([`Manifest`]), then calls `POST /NetworkDriver.CreateNetwork` and so on
//! with JSON bodies ([`Client`]). [`Plugins`] caches activated plugins by name.
//!
//! # Mapping to Docker
//! - `LocalRegistry.Plugin(name)` / `Scan()` are [`Discovery::find`] / [`Discovery::scan`],
//!   with the same directories ([`DEFAULT_SOCKET_DIR`], [`DEFAULT_SPEC_DIRS`]), file names and
//!   search order; the directories are configurable.
//! - `plugins.Get(name, kind)` / `GetAll(kind)` are [`Plugins::get`] / [`Plugins::get_all`];
//!   `Plugin.Activate` retries with Docker's backoff (1, 2, 4, 8 s; gives up at 30 s), see
//!   [`RetryPolicy`].
//! - `Client.Call` is [`Client::call`]: same path (`/<Method>`), `Accept` header
//!   ([`VERSION_MIMETYPE`]), `Host` header (`plugin.moby.localhost` over unix sockets), only
//!   status 200 is success, and an error status with `{"Err": ".."}` is the plugin's message.
//! - Handlers registered with `plugins.Handle` are replaced by explicit calls: whoever needs a
//!   driver asks [`Plugins::get`] and wraps the plugin (see `libnetwork-driver-remote`).
//!
//! # Layout
//! - [`error`]: [`Error`] and its kinds; [`Error::outcome_unknown`] tells whether a failed call
//!   may have been acted on.
//! - [`addr`]: [`PluginAddr`] (unix socket or TCP).
//! - [`discovery`]: [`Discovery`], [`PluginSpec`].
//! - [`client`]: [`Client`], [`ClientConfig`], [`RetryPolicy`], [`CallOptions`].
//! - [`plugin`]: [`Plugin`], [`Manifest`], [`Plugins`].
//! - [`json`]: Go-like JSON decoding helpers for answer types.
//!
//! # Design decisions
//! - **Async, on hyper 1.** One HTTP/1 connection per exchange, kept alive and reused; a
//!   reused connection is checked with `ready()` before each request.
//! - **No repeated writes.** Docker repeats any call whose HTTP exchange failed, including
//!   after the request was written; here only connection failures (nothing sent) and
//!   idempotent calls are retried, so a lost answer to `CreateEndpoint` never creates two
//!   endpoints. Callers get [`Error::outcome_unknown`] instead and undo what may exist.
//! - **Every call has a deadline** ([`ClientConfig::call_timeout`], 60 s by default); Docker's
//!   driver calls have none.
//! - **Plugin messages are kept verbatim**: [`Error::Plugin`] displays exactly what the plugin
//!   said.
//! - **Not supported**: TLS (`https://`, a `.json` spec's `TLSConfig`) and Windows named
//!   pipes are refused with a clear error; managed (v2) plugins are not discovered. JSON field
//!   names are matched exactly, where Go matches them case-insensitively.
#![forbid(unsafe_code)]

pub mod addr;
pub mod client;
pub mod discovery;
pub mod error;
pub mod json;
pub mod plugin;

pub use addr::PluginAddr;
pub use client::{CallOptions, Client, ClientConfig, RetryPolicy};
pub use discovery::{DEFAULT_SOCKET_DIR, DEFAULT_SPEC_DIRS, Discovery, PluginSpec};
pub use error::Error;
pub use plugin::{Found, Manifest, Plugin, Plugins};

/// The media type of plugin requests and answers (Docker's `VersionMimetype`).
pub const VERSION_MIMETYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// The `Host` header of requests over unix sockets (Docker's `dummyHost`).
pub const UNIX_HOST: &str = "plugin.moby.localhost";

/// The activation handshake method.
pub const ACTIVATE_METHOD: &str = "Plugin.Activate";
