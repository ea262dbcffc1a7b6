//! The `null` network driver (libnetwork's `drivers/null`): containers on the null network get
//! a sandbox of their own with nothing in it but the loopback interface.
//!
//! The driver owns no kernel state. There is one null network: the first
//! [`create_network`](Driver::create_network) records its id, every later one is refused, and
//! [`delete_network`](Driver::delete_network) is always refused, as in libnetwork. Endpoint
//! operations do nothing, and [`join`](Driver::join) reports no interface, no gateway and no
//! routes: the sandbox keeps only `lo`, which the sandbox layer brings up when it creates the
//! namespace. The controller skips IPAM for the network, as for `host`.
//!
//! # Layout
//! - this file: [`NullDriver`] (the `null` kind of the host crate's [`SingleInstanceDriver`],
//!   which both drivers share), [`register`] and the tests.
//!
//! # Design decisions
//! - The driver's own [`Error`] converts into [`libnetwork_driverapi::Error::Driver`] with the
//!   driver type `null`, so the controller sees the kind (Forbidden) and the message.
//! - Like libnetwork, a second `create_network` is refused even with the id of the existing
//!   network: the controller creates the null network once per driver instance.
#![forbid(unsafe_code)]

pub use libnetwork_driver_host::{Error, NetworkKind, SingleInstanceDriver};
use libnetwork_driverapi::Registry;

/// The `null` network kind.
#[derive(Debug)]
pub struct Null;

impl NetworkKind for Null {
    const NETWORK_TYPE: &'static str = "null";
}

/// The network type of this driver.
pub const NETWORK_TYPE: &str = Null::NETWORK_TYPE;

/// The null driver.
pub type NullDriver = SingleInstanceDriver<Null>;

/// Registers a new [`NullDriver`] for the network type [`NETWORK_TYPE`] (libnetwork's
/// `null.Init`).
///
/// # Errors
/// As [`Registry::register_driver`]: [`libnetwork_driverapi::Error::ActiveRegistration`] when
/// a built-in driver is registered as `null` already.
pub fn register(registry: &Registry) -> Result<(), libnetwork_driverapi::Error> {
    NullDriver::register(registry)
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use libnetwork_driverapi::{IpamData, NetworkOptions, Scope};
    use libnetwork_testutil::{in_new_netns, privileged};

    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use libnetwork_driverapi::{
        Capability, CreateNetworkRequest, CreateNetworkResult, Driver, EndpointInterface,
        EndpointOptions, JoinInfo, JoinOptions,
    };
    use libnetwork_types::ErrorKind;

    fn request(id: &str) -> CreateNetworkRequest {
        CreateNetworkRequest {
            network_id: id.to_owned(),
            options: NetworkOptions::default(),
            ipv4: Vec::new(),
            ipv6: Vec::new(),
        }
    }

    /// The null driver's own error inside a driverapi error.
    fn own_error(e: &libnetwork_driverapi::Error) -> &Error {
        match e {
            libnetwork_driverapi::Error::Driver { driver, source, .. } => {
                assert_eq!(driver, NETWORK_TYPE);
                source.downcast_ref::<Error>().expect("a null driver error")
            }
            other => panic!("not a driver error: {other:?}"),
        }
    }

    #[test]
    fn reports_its_type_and_local_scopes_and_is_built_in() {
        let d = NullDriver::new();
        assert_eq!(d.driver_type(), "null");
        assert_eq!(d.capability().data_scope, Scope::Local);
        assert_eq!(d.capability().connectivity_scope, Scope::Local);
        assert!(d.is_built_in());
    }

    #[tokio::test]
    async fn only_one_network_is_allowed_and_a_refusal_keeps_the_first() {
        let d = NullDriver::new();
        assert_eq!(
            d.create_network(&request("n1")).await.unwrap(),
            CreateNetworkResult::default()
        );

        for id in ["n2", "n1"] {
            let err = d
                .create_network(&request(id))
                .await
                .expect_err("second network");
            assert_eq!(err.kind(), ErrorKind::Forbidden);
            assert_eq!(
                err.to_string(),
                format!(
                    "null driver: create network {id}: only one instance of \"null\" network is \
                     allowed"
                )
            );
            assert_eq!(
                own_error(&err),
                &Error::SingleInstance {
                    network_type: NETWORK_TYPE,
                    requested: id.to_owned(),
                    existing: "n1".to_owned()
                }
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_admit_exactly_one_network() {
        let d = Arc::new(NullDriver::new());
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let d = d.clone();
                tokio::spawn(async move { d.create_network(&request(&format!("n{i}"))).await })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => created += 1,
                Err(e) => assert_eq!(e.kind(), ErrorKind::Forbidden),
            }
        }
        assert_eq!(created, 1);
    }

    #[tokio::test]
    async fn deleting_is_always_forbidden() {
        let d = NullDriver::new();
        let err = d
            .delete_network("n1")
            .await
            .expect_err("delete before create");
        assert_eq!(err.kind(), ErrorKind::Forbidden);

        d.create_network(&request("n1")).await.unwrap();
        let err = d
            .delete_network("n1")
            .await
            .expect_err("delete the null network");
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert_eq!(
            err.to_string(),
            "null driver: delete network n1: network of type \"null\" cannot be deleted"
        );
        assert_eq!(
            own_error(&err),
            &Error::NotDeletable {
                network_type: NETWORK_TYPE,
                network: "n1".to_owned(),
            }
        );
        // Still there: a new network is refused.
        assert!(d.create_network(&request("n2")).await.is_err());
    }

    #[tokio::test]
    async fn endpoint_operations_do_nothing_and_succeed() {
        let d = NullDriver::new();
        d.create_network(&request("n1")).await.unwrap();
        let mut iface = EndpointInterface {
            address: Some("10.0.0.2/24".parse().unwrap()),
            ..Default::default()
        };
        let before = iface.clone();
        let options = EndpointOptions {
            exposed_ports: vec!["tcp/80".parse().unwrap()],
            ..Default::default()
        };
        d.create_endpoint("n1", "e1", &mut iface, &options)
            .await
            .unwrap();
        assert_eq!(iface, before, "the interface was changed");
        assert!(d.endpoint_oper_info("n1", "e1").await.unwrap().is_empty());
        d.program_external_connectivity("n1", "e1", &options)
            .await
            .unwrap();
        d.revoke_external_connectivity("n1", "e1").await.unwrap();
        d.leave("n1", "e1").await.unwrap();
        d.delete_endpoint("n1", "e1").await.unwrap();
        // Endpoints are not tracked, so none is ever missing.
        d.delete_endpoint("n1", "never-created").await.unwrap();
    }

    #[tokio::test]
    async fn network_allocation_is_not_implemented() {
        let d = NullDriver::new();
        let pool = IpamData {
            address_space: "LocalDefault".into(),
            pool: "10.0.0.0/24".parse().unwrap(),
            gateway: None,
            aux_addresses: BTreeMap::new(),
        };
        let err = d
            .network_allocate("n1", &BTreeMap::new(), &[pool], &[])
            .await
            .expect_err("allocate");
        assert!(matches!(
            err,
            libnetwork_driverapi::Error::NotImplemented(_)
        ));
        assert!(d.network_free("n1").await.is_err());
    }

    #[test]
    fn register_adds_one_built_in_null_driver() {
        let registry = Registry::new();
        register(&registry).unwrap();
        let entry = registry.driver(NETWORK_TYPE).expect("registered");
        assert_eq!(entry.driver.driver_type(), NETWORK_TYPE);
        assert_eq!(entry.capability, Capability::LOCAL);

        let err = register(&registry).expect_err("second registration");
        assert!(
            matches!(err, libnetwork_driverapi::Error::ActiveRegistration(ref n) if n == "null")
        );
        let mut names = Vec::new();
        registry.walk_drivers(|e| {
            names.push(e.name.clone());
            ControlFlow::Continue(())
        });
        assert_eq!(names, ["null"]);
    }

    #[test]
    fn join_reports_no_interface_and_leaves_only_loopback_up_in_the_sandbox() {
        let name = "join_reports_no_interface_and_leaves_only_loopback_up_in_the_sandbox";
        if !privileged(name) {
            return;
        }
        in_new_netns(|| {
            let dir = tempfile::tempdir().expect("run directory");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let result: anyhow::Result<()> = rt.block_on(async {
                let host = libnetwork_osl::Host::new(dir.path()).await?;
                let sandbox = host.create_sandbox(&host.key_for("sandbox1")).await?;
                let host_links = host.netlink().links().await?;

                let d = NullDriver::new();
                d.create_network(&request("n1")).await?;
                let info = d
                    .join("n1", "e1", &sandbox, &JoinOptions::default())
                    .await?;
                anyhow::ensure!(info == JoinInfo::default(), "unexpected join info {info:?}");

                let links = sandbox.netlink().links().await?;
                let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
                anyhow::ensure!(names == ["lo"], "sandbox links {names:?}");
                anyhow::ensure!(links[0].up, "loopback is down");
                anyhow::ensure!(
                    host.netlink().links().await? == host_links,
                    "host links changed"
                );
                d.leave("n1", "e1").await?;
                sandbox.destroy()?;
                Ok(())
            });
            if let Err(e) = result {
                panic!("{name}: {e:#}");
            }
        });
    }
}
