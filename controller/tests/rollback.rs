//! Transactional setup: when a driver fails part way, the controller undoes what it did
//! (addresses, records, the sandbox's routes and files, the driver's own join).
//!
//! The failures come from a small driver registered for the test (`faulty`), whose calls fail
//! on demand; everything else (IPAM, store, namespaces, files) is the real thing.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::ensure;
use async_trait::async_trait;
use libnetwork::{
    Controller, EndpointOptions, ErrorKind, IpamConf, IpamOptions, JoinOptions, NetworkOptions,
    SandboxOptions,
};
use libnetwork_driverapi::{
    Capability, CreateNetworkRequest, CreateNetworkResult, Driver, EndpointInterface,
    EndpointOptions as DriverEndpointOptions, Error, JoinInfo, JoinOptions as DriverJoinOptions,
    Sandbox,
};

/// A driver without kernel state whose endpoint creation and join fail while told to.
#[derive(Debug, Default)]
struct Faulty {
    fail_create_endpoint: AtomicBool,
    /// Join reports a gateway no interface reaches, so the sandbox cannot route to it.
    unreachable_gateway: AtomicBool,
    joins: AtomicUsize,
    leaves: AtomicUsize,
}

fn refused(what: &str) -> Error {
    Error::InvalidArgument {
        context: what.to_owned(),
        reason: "refused by the test".to_owned(),
    }
}

#[async_trait]
impl Driver for Faulty {
    fn driver_type(&self) -> &str {
        "faulty"
    }
    fn capability(&self) -> Capability {
        Capability::LOCAL
    }
    fn is_built_in(&self) -> bool {
        false
    }
    async fn create_network(&self, _: &CreateNetworkRequest) -> Result<CreateNetworkResult, Error> {
        Ok(CreateNetworkResult::default())
    }
    async fn delete_network(&self, _: &str) -> Result<(), Error> {
        Ok(())
    }
    async fn create_endpoint(
        &self,
        _: &str,
        _: &str,
        _: &mut EndpointInterface,
        _: &DriverEndpointOptions,
    ) -> Result<(), Error> {
        if self.fail_create_endpoint.load(Ordering::SeqCst) {
            return Err(refused("create endpoint"));
        }
        Ok(())
    }
    async fn delete_endpoint(&self, _: &str, _: &str) -> Result<(), Error> {
        Ok(())
    }
    async fn endpoint_oper_info(
        &self,
        _: &str,
        _: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, Error> {
        Ok(BTreeMap::new())
    }
    async fn join(
        &self,
        _: &str,
        _: &str,
        _: &Sandbox,
        _: &DriverJoinOptions,
    ) -> Result<JoinInfo, Error> {
        self.joins.fetch_add(1, Ordering::SeqCst);
        let gateway = self
            .unreachable_gateway
            .load(Ordering::SeqCst)
            .then(|| "10.200.0.1".parse().unwrap());
        Ok(JoinInfo {
            gateway,
            ..JoinInfo::default()
        })
    }
    async fn leave(&self, _: &str, _: &str) -> Result<(), Error> {
        self.leaves.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn program_external_connectivity(
        &self,
        _: &str,
        _: &str,
        _: &DriverEndpointOptions,
    ) -> Result<(), Error> {
        Ok(())
    }
    async fn revoke_external_connectivity(&self, _: &str, _: &str) -> Result<(), Error> {
        Ok(())
    }
}

fn with_subnet(pool: &str) -> NetworkOptions {
    NetworkOptions {
        ipam: IpamOptions {
            v4: vec![IpamConf {
                preferred_pool: Some(pool.parse().unwrap()),
                ..IpamConf::default()
            }],
            ..IpamOptions::default()
        },
        ..NetworkOptions::default()
    }
}

#[test]
fn a_driver_failure_at_endpoint_creation_releases_the_address_and_stores_nothing() {
    common::run(
        "a_driver_failure_at_endpoint_creation_releases_the_address_and_stores_nothing",
        |dir| async move {
            let config = common::config(&dir);
            let c = Controller::new(config.clone()).await?;
            let faulty = Arc::new(Faulty::default());
            c.registry().register_driver("faulty", faulty.clone())?;
            let n = c
                .new_network("faulty", "n", with_subnet("10.200.0.0/24"))
                .await?;
            faulty.fail_create_endpoint.store(true, Ordering::SeqCst);
            let e = n
                .create_endpoint("ep", EndpointOptions::default())
                .await
                .unwrap_err();
            ensure!(
                e.kind() == ErrorKind::BadRequest,
                "the driver's kind is kept: {e}"
            );
            ensure!(n.endpoints().is_empty());
            faulty.fail_create_endpoint.store(false, Ordering::SeqCst);
            let ep = n.create_endpoint("ep", EndpointOptions::default()).await?;
            ensure!(
                ep.info()
                    .interface
                    .address
                    .map(|a| a.to_string())
                    .as_deref()
                    == Some("10.200.0.2/24"),
                "the failed endpoint's address was released"
            );
            // Nothing of the failed attempt is in the store: after a restart there is one
            // endpoint.
            let id = n.id().to_owned();
            c.shutdown().await;
            drop((ep, n, c));
            let c = Controller::new(config).await?;
            c.registry()
                .register_driver("faulty", Arc::new(Faulty::default()))?;
            let n = c.network_by_id(&id)?;
            ensure!(n.endpoints().len() == 1, "{:?}", n.endpoints());
            Ok(())
        },
    );
}

#[test]
fn a_failed_join_is_undone_in_the_driver_the_sandbox_and_its_files() {
    common::run(
        "a_failed_join_is_undone_in_the_driver_the_sandbox_and_its_files",
        |dir| async move {
            let c = Controller::new(common::light_config(&dir)).await?;
            let faulty = Arc::new(Faulty::default());
            c.registry().register_driver("faulty", faulty.clone())?;
            let n = c
                .new_network("faulty", "n", with_subnet("10.200.0.0/24"))
                .await?;
            let ep = n.create_endpoint("ep", EndpointOptions::default()).await?;
            let sb = c
                .new_sandbox("c", SandboxOptions::new().hostname("box"))
                .await?;
            let hosts_before = std::fs::read_to_string(sb.hosts_path())?;
            let resolv_before = std::fs::read_to_string(sb.resolv_conf_path())?;

            // The gateway cannot be set: the join fails and is undone.
            faulty.unreachable_gateway.store(true, Ordering::SeqCst);
            let e = ep.join(&sb, JoinOptions::default()).await.unwrap_err();
            ensure!(e.kind() == ErrorKind::NotFound, "{e}");
            ensure!(faulty.joins.load(Ordering::SeqCst) == 1);
            ensure!(
                faulty.leaves.load(Ordering::SeqCst) == 1,
                "the driver's join was undone"
            );
            ensure!(ep.info().sandbox_id.is_none());
            ensure!(sb.endpoints().is_empty());
            ensure!(sb.resolve_name("ep").is_empty());
            ensure!(std::fs::read_to_string(sb.hosts_path())? == hosts_before);
            ensure!(std::fs::read_to_string(sb.resolv_conf_path())? == resolv_before);
            ensure!(sb.os_sandbox().gateway(false).await?.is_none());

            // The endpoint is usable: a join that works.
            faulty.unreachable_gateway.store(false, Ordering::SeqCst);
            ep.join(&sb, JoinOptions::default()).await?;
            ensure!(ep.info().sandbox_id.as_deref() == Some(sb.id()));
            ensure!(sb.resolve_name("ep") == [ep.info().interface.address.unwrap().addr()]);
            sb.delete().await?;
            n.delete().await?;
            Ok(())
        },
    );
}
