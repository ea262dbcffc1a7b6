//! dnet's integration tests: the built binary, driven in namespaces each test creates.

mod harness;

mod api;
mod docker_cli;
mod e2e;
mod openapi;
