//! The remote drivers against a real plugin (the test plugin in `plugin.rs`) on a unix
//! socket: JSON on the wire, errors, undo calls, IPAM, registration, and (privileged) traffic
//! between sandboxes joined through the plugin.

mod ipam;
mod kernel;
mod network;
mod plugin;
mod registry;

use std::time::Duration;

use libnetwork_plugins::{ClientConfig, PluginAddr, PluginSpec, RetryPolicy};

/// A client configuration without retries (failures show at once) and with `timeout`.
pub(crate) fn config(timeout: Duration) -> ClientConfig {
    ClientConfig {
        call_timeout: timeout,
        retry: RetryPolicy::NONE,
        ..ClientConfig::default()
    }
}

/// The spec of the plugin at `socket`.
pub(crate) fn spec(socket: &std::path::Path) -> PluginSpec {
    PluginSpec {
        name: "testnet".into(),
        addr: PluginAddr::Unix(socket.to_path_buf()),
        source: socket.to_path_buf(),
    }
}
