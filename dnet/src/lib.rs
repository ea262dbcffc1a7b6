//! dnet: the daemon and command line of the Rust libnetwork (libnetwork's `cmd/dnet`, `api/`
//! and `client/`).
//!
//! `dnet daemon` runs the network controller with its embedded redb store and serves an HTTP
//! API on a unix socket (`/run/dnet/dnet.sock`, mode 0660). The network endpoints follow the
//! Docker Engine API (same paths, field names and status codes, with `/_ping`, `/version` and
//! `/vX.Y/` prefixes for version negotiation), so Docker's own command line manages dnet's
//! networks with `DOCKER_HOST=unix:///run/dnet/dnet.sock docker network ls`. Sandboxes have
//! endpoints of their own under `/dnet/`. The API is described in `dnet/openapi.json`.
//!
//! The other commands are clients of that API: `dnet network create|ls|inspect|rm|prune|
//! connect|disconnect`, `dnet sandbox create|ls|inspect|rm`, and `dnet run`, which runs a
//! command in a new sandbox (its own network namespace, hosts file and resolv.conf) so that
//! commands on one network reach each other by name, like containers. `dnet demo` runs
//! libnetwork's README flow in private namespaces, without a daemon.
//!
//! # Layout
//! - [`cli`]: the command line (clap) and the client commands.
//! - [`daemon`]: start-up, logging, the socket, signals and shutdown.
//! - [`api`]: the HTTP handlers and the route table.
//! - [`model`]: the JSON bodies (Docker's shapes for networks, dnet's for sandboxes).
//! - [`filters`]: Docker's list filters.
//! - [`client`]: the hyper client of the unix socket.
//! - [`run`]: `dnet run`.
//! - [`nsexec`]: entering a sandbox between fork and exec (the crate's only `unsafe`).
//! - [`demo`]: `dnet demo`.
//!
//! # Design decisions
//! - **Docker's API rather than libnetwork's.** libnetwork's `api/` package had its own REST
//!   shapes (`/networks` with `network_type`, `/services`, `/sandboxes`); dnet serves Docker's
//!   network API instead, because that is what existing clients speak. libnetwork's
//!   endpoint and service resources are not exposed: endpoints are made by connecting a
//!   sandbox (Docker's `connect`) or by creating a sandbox with its networks.
//! - **A sandbox and its networks in one request.** `POST /dnet/sandboxes` creates the
//!   sandbox, then an endpoint named after it on each network, joined in order (the first
//!   network gets the highest priority and so provides the gateway); any failure removes
//!   what was made. `dnet run` needs one round trip before it can start the command.
//! - **Names.** A sandbox's name is its container id in the controller and its endpoints'
//!   name, hence its DNS name on each network. Network names are unique (409 on a clash);
//!   `bridge`, `host` and `none` are predefined: they cannot be created, removed or pruned
//!   (403). Lookups take an exact id, then an exact name, then a unique id prefix.
//! - **The daemon binds its socket only when it is ready**, after the restore, and at a
//!   temporary name that is renamed into place, so the socket never has other permissions
//!   than 0660 and a client never reaches a half-started daemon.
//! - **Entering a sandbox happens in the child between fork and exec**, with the namespace
//!   file opened and every string prepared before the fork; the parent never changes
//!   namespace, so the client's and the daemon's threads are never affected.
//! - **Errors.** Controller errors map through [`libnetwork::ErrorKind`] to HTTP statuses
//!   (NotFound 404, BadRequest 400, Conflict 409, Forbidden 403, Unavailable 503, Internal
//!   500) with Docker's `{"message": ...}` body; requests are checked before anything
//!   changes. The command line prints one line with the status's meaning and exits non-zero.

pub mod api;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod demo;
pub mod filters;
pub mod model;
pub mod nsexec;
pub mod run;
