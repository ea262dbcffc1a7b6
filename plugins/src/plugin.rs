//! [`Plugin`] (an activated plugin) and [`Plugins`] (the activated plugins by name, Docker's
//! `plugins.Get`/`GetAll`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::json::null_as_default;
use crate::{
    ACTIVATE_METHOD, CallOptions, Client, ClientConfig, Discovery, Error, PluginAddr, PluginSpec,
};

/// The answer to `Plugin.Activate`: which kinds of driver the plugin implements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `NetworkDriver`, `IpamDriver`, `VolumeDriver`, ...
    #[serde(rename = "Implements", default, deserialize_with = "null_as_default")]
    pub implements: Vec<String>,
}

/// An activated plugin: its address, a client, and its manifest.
#[derive(Debug)]
pub struct Plugin {
    name: String,
    source: PathBuf,
    client: Client,
    manifest: Manifest,
}

impl Plugin {
    /// Activates the plugin of `spec`: calls `Plugin.Activate` (retrying, with Docker's backoff
    /// in [`ClientConfig::retry`], while the plugin cannot be reached or drops the connection)
    /// and reads its manifest.
    ///
    /// # Errors
    /// The call's errors ([`Error::Connect`] when the plugin never answered,
    /// [`Error::InvalidResponse`] when the answer is not a manifest).
    pub async fn activate(spec: &PluginSpec, config: ClientConfig) -> Result<Self, Error> {
        let client = Client::new(spec.name.clone(), spec.addr.clone(), config);
        let options = CallOptions {
            error_field: None,
            idempotent: true,
        };
        let manifest: Manifest = client.call_without_args(ACTIVATE_METHOD, options).await?;
        info!(
            plugin = %spec.name,
            addr = %spec.addr,
            implements = ?manifest.implements,
            "activated plugin"
        );
        Ok(Self {
            name: spec.name.clone(),
            source: spec.source.clone(),
            client,
            manifest,
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it listens.
    pub fn addr(&self) -> &PluginAddr {
        self.client.addr()
    }

    /// The socket or spec file it was found by.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// A client of the plugin (clones share its connections).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether its manifest lists `kind` (`NetworkDriver`, `IpamDriver`).
    pub fn implements(&self, kind: &str) -> bool {
        self.manifest.implements.iter().any(|k| k == kind)
    }

    /// `Ok` when the plugin implements `kind`.
    ///
    /// # Errors
    /// [`Error::NotImplements`].
    pub fn check_implements(&self, kind: &str) -> Result<(), Error> {
        if self.implements(kind) {
            return Ok(());
        }
        Err(Error::NotImplements {
            name: self.name.clone(),
            wanted: kind.to_owned(),
            implements: self.manifest.implements.clone(),
        })
    }
}

/// One cached activation; the async lock makes concurrent getters of one plugin share one
/// activation.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Plugin>>>>;

/// What [`Plugins::get_all`] found.
#[derive(Debug, Default)]
pub struct Found {
    /// The plugins that implement the kind asked for, by name.
    pub plugins: Vec<Arc<Plugin>>,
    /// The plugins that could not be found or activated.
    pub failed: Vec<Error>,
}

/// Plugins found through a [`Discovery`] and activated once each (Docker's plugin storage).
/// A failed activation is not remembered: the next `get` tries again.
#[derive(Debug)]
pub struct Plugins {
    discovery: Discovery,
    config: ClientConfig,
    slots: Mutex<BTreeMap<String, Slot>>,
}

impl Plugins {
    /// Plugins found through `discovery`, called with `config`.
    pub fn new(discovery: Discovery, config: ClientConfig) -> Self {
        Self {
            discovery,
            config,
            slots: Mutex::new(BTreeMap::new()),
        }
    }

    /// The discovery in use.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The client configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The plugin `name`, activated, implementing `kind` (Docker's `plugins.Get`). The first
    /// call finds and activates it; later calls return the same plugin.
    ///
    /// # Errors
    /// Discovery errors ([`Error::NotFound`], ...), activation errors, and
    /// [`Error::NotImplements`] when the plugin does not implement `kind` (it stays active).
    pub async fn get(&self, name: &str, kind: &str) -> Result<Arc<Plugin>, Error> {
        let plugin = self.activated(name).await?;
        plugin.check_implements(kind)?;
        Ok(plugin)
    }

    /// Every plugin in the directories that implements `kind`, activated (Docker's
    /// `plugins.GetAll`). Plugins that cannot be activated are listed in [`Found::failed`];
    /// plugins of other kinds are left out.
    ///
    /// # Errors
    /// [`Error::Scan`] when a directory cannot be listed.
    pub async fn get_all(&self, kind: &str) -> Result<Found, Error> {
        let discovery = self.discovery.clone();
        let names = run_blocking(move || discovery.scan()).await?;
        let mut found = Found::default();
        for name in names {
            match self.activated(&name).await {
                Ok(plugin) if plugin.implements(kind) => found.plugins.push(plugin),
                Ok(plugin) => debug!(plugin = %plugin.name(), kind, "plugin is of another kind"),
                Err(e) => found.failed.push(e),
            }
        }
        Ok(found)
    }

    /// The plugins activated so far, by name.
    pub async fn active(&self) -> Vec<Arc<Plugin>> {
        let slots: Vec<Slot> = self.lock_slots().values().cloned().collect();
        let mut active = Vec::new();
        for slot in slots {
            if let Some(plugin) = slot.lock().await.as_ref() {
                active.push(plugin.clone());
            }
        }
        active
    }

    /// Forgets the activation of `name` (for instance after the plugin restarted): the next
    /// `get` finds and activates it again. Returns whether it was active.
    pub async fn forget(&self, name: &str) -> bool {
        let slot = self.lock_slots().remove(name);
        match slot {
            Some(slot) => slot.lock().await.take().is_some(),
            None => false,
        }
    }

    /// Finds and activates `name`, or returns its cached activation.
    async fn activated(&self, name: &str) -> Result<Arc<Plugin>, Error> {
        let slot = self
            .lock_slots()
            .entry(name.to_owned())
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if let Some(plugin) = cached.as_ref() {
            return Ok(plugin.clone());
        }
        let discovery = self.discovery.clone();
        let owned = name.to_owned();
        let spec = run_blocking(move || discovery.find(&owned)).await?;
        let plugin = Arc::new(Plugin::activate(&spec, self.config).await?);
        *cached = Some(plugin.clone());
        Ok(plugin)
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs a directory look-up on the blocking pool.
async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}
