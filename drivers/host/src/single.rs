//! The single-instance driver shared by `host` and `null`: one network per driver, never
//! deleted, endpoints without kernel state.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use libnetwork_driverapi::{
    Capability, CreateNetworkRequest, CreateNetworkResult, Driver, EndpointInterface,
    EndpointOptions, JoinInfo, JoinOptions, Registry, Sandbox,
};
use libnetwork_types::ErrorKind;
use tracing::info;

/// Which network type a [`SingleInstanceDriver`] serves (`host`, `null`).
pub trait NetworkKind: fmt::Debug + Send + Sync + 'static {
    /// The network type, which is also the driver's name in the registry.
    const NETWORK_TYPE: &'static str;
}

/// Errors of the single-instance drivers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A network of this type exists already; there is only one. Nothing changed.
    #[error(
        "create network {requested}: only one instance of \"{network_type}\" network is allowed"
    )]
    SingleInstance {
        /// The driver's network type.
        network_type: &'static str,
        /// The id of the network asked for.
        requested: String,
        /// The id of the existing network.
        existing: String,
    },
    /// The network cannot be deleted. Nothing changed.
    #[error("delete network {network}: network of type \"{network_type}\" cannot be deleted")]
    NotDeletable {
        /// The driver's network type.
        network_type: &'static str,
        /// The id of the network.
        network: String,
    },
}

impl Error {
    /// The API class of this error: both variants are Forbidden.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::SingleInstance { .. } | Self::NotDeletable { .. } => ErrorKind::Forbidden,
        }
    }

    /// The network type of the driver that failed.
    pub fn network_type(&self) -> &'static str {
        match self {
            Self::SingleInstance { network_type, .. } | Self::NotDeletable { network_type, .. } => {
                network_type
            }
        }
    }
}

impl From<Error> for libnetwork_driverapi::Error {
    fn from(e: Error) -> Self {
        Self::Driver {
            driver: e.network_type().to_owned(),
            kind: e.kind(),
            source: Arc::new(e),
        }
    }
}

/// A driver with exactly one network of type `K::NETWORK_TYPE`, created once and never
/// deleted, whose endpoint operations do nothing (libnetwork's `host` and `null` drivers).
#[derive(Debug)]
pub struct SingleInstanceDriver<K: NetworkKind> {
    /// The id of the network, once created.
    network: Mutex<Option<String>>,
    kind: PhantomData<fn() -> K>,
}

impl<K: NetworkKind> SingleInstanceDriver<K> {
    /// A driver with no network yet.
    pub fn new() -> Self {
        Self {
            network: Mutex::new(None),
            kind: PhantomData,
        }
    }

    /// Registers a new driver under `K::NETWORK_TYPE` (libnetwork's `Init`).
    ///
    /// # Errors
    /// As [`Registry::register_driver`]:
    /// [`libnetwork_driverapi::Error::ActiveRegistration`] when a built-in driver is registered
    /// under that name already.
    pub fn register(registry: &Registry) -> Result<(), libnetwork_driverapi::Error> {
        registry.register_driver(K::NETWORK_TYPE, Arc::new(Self::new()))
    }
}

impl<K: NetworkKind> Default for SingleInstanceDriver<K> {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl<K: NetworkKind> Driver for SingleInstanceDriver<K> {
    fn driver_type(&self) -> &str {
        K::NETWORK_TYPE
    }

    fn capability(&self) -> Capability {
        Capability::LOCAL
    }

    async fn create_network(
        &self,
        request: &CreateNetworkRequest,
    ) -> Result<CreateNetworkResult, libnetwork_driverapi::Error> {
        let mut network = self.network.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = network.as_ref() {
            return Err(Error::SingleInstance {
                network_type: K::NETWORK_TYPE,
                requested: request.network_id.clone(),
                existing: existing.clone(),
            }
            .into());
        }
        *network = Some(request.network_id.clone());
        info!(network_id = %request.network_id, network_type = K::NETWORK_TYPE, "created network");
        Ok(CreateNetworkResult::default())
    }

    async fn delete_network(&self, network_id: &str) -> Result<(), libnetwork_driverapi::Error> {
        Err(Error::NotDeletable {
            network_type: K::NETWORK_TYPE,
            network: network_id.to_owned(),
        }
        .into())
    }

    async fn create_endpoint(
        &self,
        _network_id: &str,
        _endpoint_id: &str,
        _interface: &mut EndpointInterface,
        _options: &EndpointOptions,
    ) -> Result<(), libnetwork_driverapi::Error> {
        Ok(())
    }

    async fn delete_endpoint(
        &self,
        _network_id: &str,
        _endpoint_id: &str,
    ) -> Result<(), libnetwork_driverapi::Error> {
        Ok(())
    }

    async fn endpoint_oper_info(
        &self,
        _network_id: &str,
        _endpoint_id: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, libnetwork_driverapi::Error> {
        Ok(BTreeMap::new())
    }

    async fn join(
        &self,
        _network_id: &str,
        _endpoint_id: &str,
        _sandbox: &Sandbox,
        _options: &JoinOptions,
    ) -> Result<JoinInfo, libnetwork_driverapi::Error> {
        Ok(JoinInfo::default())
    }

    async fn leave(
        &self,
        _network_id: &str,
        _endpoint_id: &str,
    ) -> Result<(), libnetwork_driverapi::Error> {
        Ok(())
    }

    async fn program_external_connectivity(
        &self,
        _network_id: &str,
        _endpoint_id: &str,
        _options: &EndpointOptions,
    ) -> Result<(), libnetwork_driverapi::Error> {
        Ok(())
    }

    async fn revoke_external_connectivity(
        &self,
        _network_id: &str,
        _endpoint_id: &str,
    ) -> Result<(), libnetwork_driverapi::Error> {
        Ok(())
    }
}
