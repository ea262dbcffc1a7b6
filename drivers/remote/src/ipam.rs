//! [`RemoteIpam`]: an IPAM driver that forwards every call to a plugin (libnetwork's
//! `ipams/remote`).
//!
//! The [`Ipam`] trait is blocking and the plugin client is async. Each blocking call is
//! spawned onto a small runtime of this crate (one worker thread named
//! [`RUNTIME_THREAD`], started on first use and shared by every remote IPAM driver) and the
//! calling thread waits for the result on a channel. This works from any thread: a plain
//! thread, a `spawn_blocking` task, and even (though it blocks a worker, which callers should
//! avoid) an async task of any other runtime, current-thread ones included; `block_on` on the
//! caller's own runtime would panic inside a runtime or deadlock a current-thread one. The only
//! thread that must not call is the runtime's own worker, which is refused with
//! [`Error::Runtime`] instead of deadlocking. For the same reason the driver has a client of
//! its own, whose connections are opened and driven on the plugin runtime only.
//!
//! A blocking call from an async task still stalls that task's worker thread for a plugin
//! round trip; async callers should use `spawn_blocking`, as for any [`Ipam`].

use std::future::Future;
use std::net::IpAddr;
use std::sync::OnceLock;

use ipnet::IpNet;
use libnetwork_ipamapi::{
    AllocatedAddress, AllocatedPool, Capability, Ipam, Options, PLUGIN_ENDPOINT_TYPE,
};
use libnetwork_plugins::{CallOptions, Client, Plugin};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::runtime::{Builder, Runtime};
use tracing::{debug, info};

use crate::error::{Compensation, Error};
use crate::ipam_api as api;

/// The name of the worker thread that runs plugin calls of the blocking IPAM methods.
pub const RUNTIME_THREAD: &str = "ipam-plugin";

/// IPAM calls report errors in `Error`; none is repeated once sent.
const CALL: CallOptions = CallOptions {
    error_field: Some("Error"),
    idempotent: false,
};

/// Calls that only read may be repeated.
const READ: CallOptions = CallOptions {
    error_field: Some("Error"),
    idempotent: true,
};

/// The runtime of the blocking IPAM calls, or why it could not start.
fn runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(RUNTIME_THREAD)
                .enable_all()
                .build()
                .map_err(|e| format!("start the ipam plugin runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// An IPAM driver served by a plugin.
#[derive(Debug, Clone)]
pub struct RemoteIpam {
    name: String,
    client: Client,
    capability: Capability,
}

impl RemoteIpam {
    /// The IPAM driver for an activated plugin: checks that it implements `IpamDriver` and
    /// asks its capabilities. A plugin that does not know `GetCapabilities` (it answers 404, or
    /// with an error message) gets the default capabilities, as libnetwork gives legacy plugins.
    ///
    /// # Errors
    /// [`Error::Plugin`] with [`libnetwork_plugins::Error::NotImplements`], or the
    /// `GetCapabilities` call's error when the plugin cannot be reached or answers garbage.
    pub async fn new(plugin: &Plugin) -> Result<Self, Error> {
        plugin.check_implements(PLUGIN_ENDPOINT_TYPE)?;
        Self::with_client(plugin.name(), plugin.client().clone()).await
    }

    /// The IPAM driver for the plugin `name` reached through `client`.
    ///
    /// # Errors
    /// As [`RemoteIpam::new`], without the manifest check.
    pub async fn with_client(name: &str, client: Client) -> Result<Self, Error> {
        let answer = client
            .call_without_args::<api::GetCapabilityResponse>(&method("GetCapabilities"), READ)
            .await;
        let capability = match answer {
            Ok(caps) => Capability {
                requires_mac_address: caps.requires_mac_address,
                requires_request_replay: caps.requires_request_replay,
            },
            Err(e) if e.is_method_not_found() || e.plugin_message().is_some() => {
                info!(plugin = name, error = %e, "ipam plugin has no capabilities, using defaults");
                Capability::default()
            }
            Err(e) => return Err(e.into()),
        };
        info!(
            plugin = name,
            requires_mac_address = capability.requires_mac_address,
            requires_request_replay = capability.requires_request_replay,
            "ipam plugin capabilities"
        );
        // A client of its own: its connections are all opened, and driven, by the plugin
        // runtime. A connection opened on the caller's runtime could not make progress while
        // that runtime's only thread waits in a blocking call.
        let client = Client::new(name, client.addr().clone(), *client.config());
        Ok(Self {
            name: name.to_owned(),
            client,
            capability,
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `IpamDriver.<name>` on the plugin runtime and waits for it; `args` `None` sends
    /// an empty body, as Docker does for calls without arguments.
    fn call<R>(
        &self,
        name: &'static str,
        args: Option<&(impl Serialize + ?Sized)>,
        options: CallOptions,
    ) -> Result<R, Error>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let args = args.map(serde_json::to_value).transpose().map_err(|e| {
            libnetwork_plugins::Error::Encode {
                plugin: self.name.clone(),
                method: method(name),
                reason: e.to_string(),
            }
        })?;
        let client = self.client.clone();
        debug!(plugin = %self.name, method = name, "calling ipam plugin");
        let answer = self.block_on(name, async move {
            match args {
                Some(args) => client.call(&method(name), &args, options).await,
                None => client.call_without_args(&method(name), options).await,
            }
        })?;
        answer.map_err(Error::from)
    }

    /// Sends an undo call, best effort.
    fn undo(&self, name: &'static str, args: &impl Serialize) -> Compensation {
        debug!(plugin = %self.name, method = name, "undoing an ipam plugin call");
        Compensation {
            method: method(name),
            error: self
                .call::<api::Response>(name, Some(args), CALL)
                .err()
                .map(Box::new),
        }
    }

    /// Runs `future` on the plugin runtime and waits for its output.
    fn block_on<T: Send + 'static>(
        &self,
        operation: &str,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, Error> {
        let refuse = |reason: String| Error::Runtime {
            plugin: self.name.clone(),
            operation: operation.to_owned(),
            reason,
        };
        if std::thread::current().name() == Some(RUNTIME_THREAD) {
            return Err(refuse(
                "called from the plugin runtime's own thread, which would deadlock".to_owned(),
            ));
        }
        let runtime = runtime().map_err(refuse)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            // The caller waits on the other end; it is gone only if it panicked.
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| refuse("the plugin call was dropped".to_owned()))
    }

    fn ipam_error(&self, e: Error) -> libnetwork_ipamapi::Error {
        e.into_ipam_error(&self.name)
    }

    /// An answer that cannot be used, as an IPAM error.
    fn invalid(
        &self,
        name: &str,
        reason: String,
        compensation: Option<Compensation>,
    ) -> libnetwork_ipamapi::Error {
        self.ipam_error(Error::InvalidAnswer {
            plugin: self.name.clone(),
            method: method(name),
            reason,
            compensation,
        })
    }
}

/// `IpamDriver.<name>`.
fn method(name: &str) -> String {
    format!("{PLUGIN_ENDPOINT_TYPE}.{name}")
}

impl Ipam for RemoteIpam {
    fn default_address_spaces(&self) -> Result<(String, String), libnetwork_ipamapi::Error> {
        let answer: api::GetAddressSpacesResponse = self
            .call("GetDefaultAddressSpaces", None::<&()>, READ)
            .map_err(|e| self.ipam_error(e))?;
        Ok((
            answer.local_default_address_space,
            answer.global_default_address_space,
        ))
    }

    fn request_pool(
        &self,
        address_space: &str,
        pool: Option<IpNet>,
        sub_pool: Option<IpNet>,
        options: &Options,
        v6: bool,
    ) -> Result<AllocatedPool, libnetwork_ipamapi::Error> {
        let request = api::RequestPoolRequest {
            address_space: address_space.to_owned(),
            pool: pool.map(|p| p.to_string()).unwrap_or_default(),
            sub_pool: sub_pool.map(|p| p.to_string()).unwrap_or_default(),
            options: options.clone(),
            v6,
        };
        // A pool whose answer was lost cannot be released: its id is the plugin's.
        let answer: api::RequestPoolResponse = self
            .call("RequestPool", Some(&request), CALL)
            .map_err(|e| self.ipam_error(e))?;
        if answer.pool_id.is_empty() {
            return Err(self.invalid("RequestPool", "no PoolID".into(), None));
        }
        let pool: IpNet = match answer.pool.parse() {
            Ok(pool) => pool,
            Err(e) => {
                // The plugin holds a pool it could not describe; give it back.
                let undo = api::ReleasePoolRequest {
                    pool_id: answer.pool_id.clone(),
                };
                let compensation = self.undo("ReleasePool", &undo);
                let reason = format!("Pool {:?}: {e}", answer.pool);
                return Err(self.invalid("RequestPool", reason, Some(compensation)));
            }
        };
        debug!(plugin = %self.name, pool_id = %answer.pool_id, %pool, "ipam plugin gave a pool");
        Ok(AllocatedPool {
            pool_id: answer.pool_id,
            pool,
            meta: answer.data,
        })
    }

    fn release_pool(&self, pool_id: &str) -> Result<(), libnetwork_ipamapi::Error> {
        let request = api::ReleasePoolRequest {
            pool_id: pool_id.to_owned(),
        };
        self.call::<api::Response>("ReleasePool", Some(&request), CALL)
            .map_err(|e| self.ipam_error(e))?;
        Ok(())
    }

    fn request_address(
        &self,
        pool_id: &str,
        preferred: Option<IpAddr>,
        options: &Options,
    ) -> Result<AllocatedAddress, libnetwork_ipamapi::Error> {
        let request = api::RequestAddressRequest {
            pool_id: pool_id.to_owned(),
            address: preferred.map(|a| a.to_string()).unwrap_or_default(),
            options: options.clone(),
        };
        let answer = match self.call::<api::RequestAddressResponse>(
            "RequestAddress",
            Some(&request),
            CALL,
        ) {
            Ok(answer) => answer,
            // A preferred address whose answer was lost is known: give it back.
            Err(Error::Plugin(e)) if e.outcome_unknown() && !request.address.is_empty() => {
                let undo = api::ReleaseAddressRequest {
                    pool_id: pool_id.to_owned(),
                    address: request.address.clone(),
                };
                let compensation = self.undo("ReleaseAddress", &undo);
                return Err(self.ipam_error(Error::OutcomeUnknown {
                    source: e,
                    compensation,
                }));
            }
            Err(e) => return Err(self.ipam_error(e)),
        };
        if answer.address.is_empty() {
            return Err(libnetwork_ipamapi::Error::NoIpReturned);
        }
        let address: IpNet = answer.address.parse().map_err(|e| {
            self.invalid(
                "RequestAddress",
                format!("Address {:?}: {e}", answer.address),
                None,
            )
        })?;
        Ok(AllocatedAddress {
            address,
            meta: answer.data,
        })
    }

    fn release_address(
        &self,
        pool_id: &str,
        address: IpAddr,
    ) -> Result<(), libnetwork_ipamapi::Error> {
        let request = api::ReleaseAddressRequest {
            pool_id: pool_id.to_owned(),
            address: address.to_string(),
        };
        self.call::<api::Response>("ReleaseAddress", Some(&request), CALL)
            .map_err(|e| self.ipam_error(e))?;
        Ok(())
    }

    fn capabilities(&self) -> Capability {
        self.capability
    }

    fn is_built_in(&self) -> bool {
        false
    }
}
