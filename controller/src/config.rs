//! The controller's configuration (libnetwork's `config` package).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use libnetwork_datastore::Durability;
use libnetwork_datastore::Store;
use libnetwork_driver_bridge::DriverConfig as BridgeConfig;
use libnetwork_firewall::BackendChoice;
use libnetwork_ipam::NetworkToSplit;
pub use libnetwork_plugins::{
    ClientConfig as PluginClientConfig, Discovery as PluginDiscovery,
    RetryPolicy as PluginRetryPolicy,
};

use crate::error::{Error, Result};

/// libnetwork's default data directory (`DataDir`).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/docker";

/// libnetwork's default exec root (`ExecRoot`); sandbox keys live under `<exec root>/netns`.
pub const DEFAULT_EXEC_ROOT: &str = "/var/run/docker";

/// The prefix daemon labels must have to be kept ([`Config::labels`]).
pub const LABEL_PREFIX: &str = "com.docker.network";

/// The longest a change to the local store stays unsynced with the default
/// [`Config::store_durability`].
pub const DEFAULT_SYNC_WITHIN: Duration = Duration::from_millis(50);

/// Where the local scope is persisted.
#[derive(Clone, Default)]
pub enum LocalStore {
    /// A redb file: `path`, or `<data dir>/network/files/local-kv.redb` when `None` (the
    /// default). Opened (and locked) by [`crate::Controller::new`].
    #[default]
    Redb,
    /// A redb file at this path.
    RedbAt(PathBuf),
    /// In memory only: nothing survives the controller (tests).
    Memory,
    /// A store the caller built (shared with other code, or a custom backend).
    Custom(Arc<dyn Store>),
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redb => f.write_str("Redb"),
            Self::RedbAt(p) => f.debug_tuple("RedbAt").field(p).finish(),
            Self::Memory => f.write_str("Memory"),
            Self::Custom(s) => f.debug_tuple("Custom").field(s).finish(),
        }
    }
}

/// Where the global scope (networks shared by a cluster) is persisted.
#[derive(Clone)]
pub enum GlobalStore {
    /// An etcd cluster, by client endpoints (`http://127.0.0.1:2379`).
    Etcd(Vec<String>),
    /// A store the caller built.
    Custom(Arc<dyn Store>),
}

impl fmt::Debug for GlobalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Etcd(e) => f.debug_tuple("Etcd").field(e).finish(),
            Self::Custom(s) => f.debug_tuple("Custom").field(s).finish(),
        }
    }
}

/// A callback told the name of each step of an operation as the controller reaches it (see
/// [`Config::step_hook`]).
pub type StepHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The controller's configuration. `Default` is libnetwork's: `/var/lib/docker`,
/// `/var/run/docker`, a redb store in the data directory, the predefined address pools, the
/// bridge driver with everything off (libnetwork's behaviour without driver options; Docker's
/// daemon turns forwarding, iptables and the userland proxy on: [`BridgeConfig::docker`]).
#[derive(Clone)]
pub struct Config {
    /// The data directory: the local store and the sandboxes' `hosts` and `resolv.conf` files
    /// (`<data dir>/network/files/<sandbox id>/`).
    pub data_dir: PathBuf,
    /// The run directory: sandbox keys (namespace files) are bound under `<exec root>/netns`.
    pub exec_root: PathBuf,
    /// The local store.
    pub local_store: LocalStore,
    /// When writes to a redb local store reach the disk. The default,
    /// [`Durability::Deferred`] within [`DEFAULT_SYNC_WITHIN`], answers each operation without
    /// waiting for an `fdatasync`: a crash of the process loses nothing (the store's write-ahead
    /// log is replayed at the next start), a crash of the machine may lose the last 50 ms of
    /// changes, most of which describe kernel state the crash destroyed anyway.
    /// [`Durability::Immediate`] syncs every operation (about 1 ms each on an SSD).
    pub store_durability: Durability,
    /// How many network namespaces to make ahead of need, so that a new sandbox only binds
    /// one to its key (see `libnetwork_osl::Host::keep_spare_namespaces`): 0.1 ms instead of
    /// 0.8 ms here. The first is made after the first sandbox; 0 turns this off.
    pub spare_namespaces: usize,
    /// The global store, if networks of scope `global` are wanted.
    pub global_store: Option<GlobalStore>,
    /// Replaces the local predefined address pools (Docker's `default-address-pools`).
    pub default_address_pools: Option<Vec<NetworkToSplit>>,
    /// Replaces the global predefined address pools.
    pub global_address_pools: Option<Vec<NetworkToSplit>>,
    /// The bridge driver's settings (libnetwork's `OptionDriverConfig("bridge", ...)`);
    /// [`Config::driver_options`] entries for `bridge` override them.
    pub bridge: BridgeConfig,
    /// Generic driver options by driver type (libnetwork's `OptionDriverConfig`). The bridge
    /// driver reads `EnableIPForwarding`, `EnableIPTables`, `EnableIP6Tables` and
    /// `EnableUserlandProxy` (`true`/`false`).
    pub driver_options: BTreeMap<String, BTreeMap<String, String>>,
    /// Which firewall backend the bridge driver programs (when iptables are enabled).
    pub firewall_backend: BackendChoice,
    /// Upstream DNS servers of the embedded resolver; `None` takes the host's nameservers
    /// from [`Config::host_resolv_conf`] (or systemd-resolved's upstream file).
    pub dns_upstreams: Option<Vec<IpAddr>>,
    /// The host's resolv.conf, origin of the sandboxes' files.
    pub host_resolv_conf: PathBuf,
    /// The host's hosts file, copied for sandboxes on the host network.
    pub host_hosts: PathBuf,
    /// Daemon labels; only those starting with [`LABEL_PREFIX`] are kept (libnetwork's
    /// `OptionLabels`).
    pub labels: Vec<String>,
    /// Whether sandboxes get the embedded DNS server (when the resolver is available) and a
    /// resolv.conf pointing at it.
    pub embedded_dns: bool,
    /// Whether the predefined `host` and `none` networks are created at start-up.
    pub predefined_networks: bool,
    /// Where network and IPAM plugins are looked for when a network names a driver that is not
    /// built in (libnetwork's `loadDriver`/`loadIPAMDriver`). Docker's directories by default:
    /// sockets in `/run/docker/plugins`, spec files in `/etc/docker/plugins`, then
    /// `/usr/lib/docker/plugins`; [`Config::plugin_dirs`] sets others.
    pub plugin_discovery: PluginDiscovery,
    /// How plugins are called. Docker's settings by default: a plugin that does not accept
    /// connections is tried again after 1, 2, 4 and 8 s (giving up after 30 s), and a call
    /// gets no answer for 60 s at most.
    pub plugin_client: PluginClientConfig,
    /// Called with the name of every step of network, endpoint and sandbox operations
    /// (`"join:driver-joined"`, ...), before the step's effects are stored. For tests that
    /// stop a process at a chosen step; `None` in production.
    pub step_hook: Option<StepHook>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("exec_root", &self.exec_root)
            .field("local_store", &self.local_store)
            .field("store_durability", &self.store_durability)
            .field("spare_namespaces", &self.spare_namespaces)
            .field("global_store", &self.global_store)
            .field("default_address_pools", &self.default_address_pools)
            .field("bridge", &self.bridge)
            .field("driver_options", &self.driver_options)
            .field("firewall_backend", &self.firewall_backend)
            .field("dns_upstreams", &self.dns_upstreams)
            .field("embedded_dns", &self.embedded_dns)
            .field("predefined_networks", &self.predefined_networks)
            .field("plugin_discovery", &self.plugin_discovery)
            .field("plugin_client", &self.plugin_client)
            .field("step_hook", &self.step_hook.as_ref().map(|_| "<hook>"))
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            exec_root: PathBuf::from(DEFAULT_EXEC_ROOT),
            local_store: LocalStore::default(),
            store_durability: Durability::Deferred {
                within: DEFAULT_SYNC_WITHIN,
            },
            spare_namespaces: 1,
            global_store: None,
            default_address_pools: None,
            global_address_pools: None,
            bridge: BridgeConfig::default(),
            driver_options: BTreeMap::new(),
            firewall_backend: BackendChoice::Auto,
            dns_upstreams: None,
            host_resolv_conf: PathBuf::from(libnetwork_resolvconf::DEFAULT_PATH),
            host_hosts: PathBuf::from("/etc/hosts"),
            labels: Vec::new(),
            embedded_dns: true,
            predefined_networks: true,
            plugin_discovery: PluginDiscovery::default(),
            plugin_client: PluginClientConfig::default(),
            step_hook: None,
        }
    }
}

impl Config {
    /// The default configuration with these data and run directories.
    pub fn new(data_dir: impl Into<PathBuf>, exec_root: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            exec_root: exec_root.into(),
            ..Self::default()
        }
    }

    /// Adds a generic option for a driver (libnetwork's `OptionDriverConfig`).
    pub fn driver_option(
        mut self,
        driver: &str,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.driver_options
            .entry(driver.to_owned())
            .or_default()
            .insert(key.into(), value.into());
        self
    }

    /// Looks for plugin sockets (`NAME.sock`, `NAME/NAME.sock`) in `socket_dirs` and for
    /// spec files (`NAME.spec`, `NAME.json`, also one level down) in `spec_dirs`, each in the
    /// order given, instead of Docker's directories.
    pub fn plugin_dirs(
        mut self,
        socket_dirs: impl IntoIterator<Item = impl Into<PathBuf>>,
        spec_dirs: impl IntoIterator<Item = impl Into<PathBuf>>,
    ) -> Self {
        self.plugin_discovery = PluginDiscovery::new(socket_dirs, spec_dirs);
        self
    }

    /// The labels kept: those starting with [`LABEL_PREFIX`].
    pub fn network_labels(&self) -> Vec<String> {
        self.labels
            .iter()
            .filter(|l| l.starts_with(LABEL_PREFIX))
            .cloned()
            .collect()
    }

    /// Where sandboxes' resolution files live: `<data dir>/network/files`.
    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("network").join("files")
    }

    /// The bridge settings with the `bridge` entries of [`Config::driver_options`] applied.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an unknown key or a value that is not a boolean.
    pub fn bridge_config(&self) -> Result<BridgeConfig> {
        let mut cfg = self.bridge;
        let Some(options) = self
            .driver_options
            .get(libnetwork_driver_bridge::DRIVER_TYPE)
        else {
            return Ok(cfg);
        };
        for (key, value) in options {
            let op = "configure the bridge driver";
            let flag = match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(Error::bad_request(
                        op,
                        format!("option {key}: {value:?} is not a boolean"),
                    ));
                }
            };
            match key.as_str() {
                "EnableIPForwarding" => cfg.enable_ip_forwarding = flag,
                "EnableIPTables" => cfg.enable_iptables = flag,
                "EnableIP6Tables" => cfg.enable_ip6tables = flag,
                "EnableUserlandProxy" => cfg.enable_userland_proxy = flag,
                _ => return Err(Error::bad_request(op, format!("unknown option {key}"))),
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_network_labels_are_kept() {
        let config = Config {
            labels: vec![
                "com.docker.network.driver.bridge.x=1".into(),
                "com.docker.network.y=2".into(),
                "com.docker.storage.z=3".into(),
                "com.docker.network=4".into(),
            ],
            ..Config::default()
        };
        assert_eq!(config.network_labels().len(), 3);
    }

    #[test]
    fn bridge_driver_options_override_the_typed_settings() {
        let config = Config::default()
            .driver_option("bridge", "EnableIPTables", "true")
            .driver_option("bridge", "EnableUserlandProxy", "false");
        let cfg = config.bridge_config().unwrap();
        assert!(cfg.enable_iptables);
        assert!(!cfg.enable_userland_proxy);
        assert!(!cfg.enable_ip_forwarding);

        let bad = Config::default().driver_option("bridge", "EnableIPTables", "maybe");
        assert_eq!(
            bad.bridge_config().unwrap_err().kind(),
            libnetwork_types::ErrorKind::BadRequest
        );
        let unknown = Config::default().driver_option("bridge", "Frobnicate", "true");
        assert!(unknown.bridge_config().is_err());
    }

    #[test]
    fn defaults_are_libnetworks() {
        let config = Config::default();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/docker"));
        assert_eq!(config.exec_root, PathBuf::from("/var/run/docker"));
        assert_eq!(
            config.files_dir(),
            PathBuf::from("/var/lib/docker/network/files")
        );
        assert!(config.embedded_dns);
    }

    #[test]
    fn plugins_are_looked_for_in_dockers_directories_unless_told_otherwise() {
        let config = Config::default();
        assert_eq!(
            config.plugin_discovery.socket_dirs(),
            [PathBuf::from("/run/docker/plugins")]
        );
        assert_eq!(
            config.plugin_discovery.spec_dirs(),
            [
                PathBuf::from("/etc/docker/plugins"),
                PathBuf::from("/usr/lib/docker/plugins")
            ]
        );
        let config = Config::default().plugin_dirs(["/tmp/sockets"], ["/tmp/a", "/tmp/b"]);
        assert_eq!(
            config.plugin_discovery.socket_dirs(),
            [PathBuf::from("/tmp/sockets")]
        );
        assert_eq!(
            config.plugin_discovery.spec_dirs(),
            [PathBuf::from("/tmp/a"), PathBuf::from("/tmp/b")]
        );
    }
}
