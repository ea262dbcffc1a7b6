//! The driver registry (libnetwork's `drvregistry` tests): real built-in drivers (host, null,
//! the default IPAM without a store) and small plugin stand-ins, which only exist to be
//! registered and replaced.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use libnetwork_driver_host::HostDriver;
use libnetwork_driver_null::NullDriver;
use libnetwork_driverapi::{
    Capability, CreateNetworkRequest, CreateNetworkResult, Driver, EndpointInterface,
    EndpointOptions, Error, ErrorKind, JoinInfo, JoinOptions, Registry, Sandbox, Scope,
};
use libnetwork_ipam::{DefaultIpam, IpamConfig};
use libnetwork_ipamapi::{
    AllocatedAddress, AllocatedPool, Capability as IpamCapability, Error as IpamError, IpNet, Ipam,
    Options,
};

/// A network plugin stand-in: not built in, global scope, tagged to tell instances apart.
#[derive(Debug)]
struct PluginDriver {
    tag: &'static str,
}

#[async_trait]
impl Driver for PluginDriver {
    fn driver_type(&self) -> &str {
        self.tag
    }
    fn capability(&self) -> Capability {
        Capability::GLOBAL
    }
    fn is_built_in(&self) -> bool {
        false
    }
    async fn create_network(&self, _: &CreateNetworkRequest) -> Result<CreateNetworkResult, Error> {
        Err(Error::NotImplemented("create network"))
    }
    async fn delete_network(&self, _: &str) -> Result<(), Error> {
        Err(Error::NotImplemented("delete network"))
    }
    async fn create_endpoint(
        &self,
        _: &str,
        _: &str,
        _: &mut EndpointInterface,
        _: &EndpointOptions,
    ) -> Result<(), Error> {
        Err(Error::NotImplemented("create endpoint"))
    }
    async fn delete_endpoint(&self, _: &str, _: &str) -> Result<(), Error> {
        Err(Error::NotImplemented("delete endpoint"))
    }
    async fn endpoint_oper_info(
        &self,
        _: &str,
        _: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, Error> {
        Err(Error::NotImplemented("endpoint oper info"))
    }
    async fn join(
        &self,
        _: &str,
        _: &str,
        _: &Sandbox,
        _: &JoinOptions,
    ) -> Result<JoinInfo, Error> {
        Err(Error::NotImplemented("join"))
    }
    async fn leave(&self, _: &str, _: &str) -> Result<(), Error> {
        Err(Error::NotImplemented("leave"))
    }
    async fn program_external_connectivity(
        &self,
        _: &str,
        _: &str,
        _: &EndpointOptions,
    ) -> Result<(), Error> {
        Err(Error::NotImplemented("program external connectivity"))
    }
    async fn revoke_external_connectivity(&self, _: &str, _: &str) -> Result<(), Error> {
        Err(Error::NotImplemented("revoke external connectivity"))
    }
}

/// An IPAM plugin stand-in: not built in, with its own address spaces, or failing to tell
/// them when `spaces` is `None`.
#[derive(Debug)]
struct PluginIpam {
    spaces: Option<(&'static str, &'static str)>,
}

impl Ipam for PluginIpam {
    fn default_address_spaces(&self) -> Result<(String, String), IpamError> {
        match self.spaces {
            Some((l, g)) => Ok((l.to_owned(), g.to_owned())),
            None => Err(IpamError::Backend {
                context: "ask plugin".into(),
                kind: ErrorKind::Unavailable,
                source: Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            }),
        }
    }
    fn request_pool(
        &self,
        _: &str,
        _: Option<IpNet>,
        _: Option<IpNet>,
        _: &Options,
        _: bool,
    ) -> Result<AllocatedPool, IpamError> {
        Err(IpamError::Remote("not served".into()))
    }
    fn release_pool(&self, _: &str) -> Result<(), IpamError> {
        Err(IpamError::Remote("not served".into()))
    }
    fn request_address(
        &self,
        _: &str,
        _: Option<IpAddr>,
        _: &Options,
    ) -> Result<AllocatedAddress, IpamError> {
        Err(IpamError::Remote("not served".into()))
    }
    fn release_address(&self, _: &str, _: IpAddr) -> Result<(), IpamError> {
        Err(IpamError::Remote("not served".into()))
    }
    fn capabilities(&self) -> IpamCapability {
        IpamCapability {
            requires_mac_address: true,
            requires_request_replay: true,
        }
    }
    fn is_built_in(&self) -> bool {
        false
    }
}

fn default_ipam() -> Arc<dyn Ipam> {
    Arc::new(DefaultIpam::new(IpamConfig::default()).expect("default ipam without a store"))
}

fn plugin(tag: &'static str) -> Arc<dyn Driver> {
    Arc::new(PluginDriver { tag })
}

fn plugin_ipam(local: &'static str, global: &'static str) -> Arc<dyn Ipam> {
    Arc::new(PluginIpam {
        spaces: Some((local, global)),
    })
}

fn driver_names(registry: &Registry) -> Vec<String> {
    registry.drivers().into_iter().map(|e| e.name).collect()
}

fn ipam_names(registry: &Registry) -> Vec<String> {
    registry.ipams().into_iter().map(|e| e.name).collect()
}

#[test]
fn a_new_registry_is_empty() {
    let registry = Registry::new();
    assert!(registry.drivers().is_empty());
    assert!(registry.ipams().is_empty());
    assert!(registry.driver("bridge").is_none());
    assert!(registry.ipam("default").is_none());
}

#[test]
fn a_registered_driver_is_found_with_its_capability() {
    let registry = Registry::new();
    let host: Arc<dyn Driver> = Arc::new(HostDriver::new());
    registry.register_driver("host", host.clone()).unwrap();

    let entry = registry.driver("host").expect("host registered");
    assert_eq!(entry.name, "host");
    assert!(Arc::ptr_eq(&entry.driver, &host));
    assert_eq!(entry.capability.data_scope, Scope::Local);
    assert_eq!(entry.capability.connectivity_scope, Scope::Local);
    assert!(registry.driver("null").is_none());
    assert!(registry.driver("hos").is_none());
}

#[test]
fn a_built_in_driver_cannot_be_replaced_and_stays_registered() {
    let registry = Registry::new();
    let first: Arc<dyn Driver> = Arc::new(NullDriver::new());
    registry.register_driver("null", first.clone()).unwrap();

    for replacement in [
        Arc::new(NullDriver::new()) as Arc<dyn Driver>,
        plugin("null"),
    ] {
        let err = registry
            .register_driver("null", replacement)
            .expect_err("built-in replaced");
        assert!(
            matches!(err, Error::ActiveRegistration(ref n) if n == "null"),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Forbidden);
    }
    assert!(Arc::ptr_eq(
        &registry.driver("null").unwrap().driver,
        &first
    ));
    assert_eq!(driver_names(&registry), ["null"]);
}

#[test]
fn a_plugin_is_replaced_by_a_plugin_or_a_built_in_driver() {
    let registry = Registry::new();
    registry.register_driver("weave", plugin("first")).unwrap();
    registry.register_driver("weave", plugin("second")).unwrap();
    let entry = registry.driver("weave").unwrap();
    assert_eq!(entry.driver.driver_type(), "second");
    assert_eq!(entry.capability, Capability::GLOBAL);

    // A built-in driver takes the name over, and then keeps it.
    registry
        .register_driver("weave", Arc::new(HostDriver::new()))
        .unwrap();
    let entry = registry.driver("weave").unwrap();
    assert_eq!(entry.driver.driver_type(), "host");
    assert_eq!(entry.capability, Capability::LOCAL);
    assert!(registry.register_driver("weave", plugin("third")).is_err());
    assert_eq!(driver_names(&registry), ["weave"]);
}

#[test]
fn blank_names_are_refused() {
    let registry = Registry::new();
    for name in ["", "  ", "\t"] {
        let err = registry
            .register_driver(name, Arc::new(HostDriver::new()))
            .expect_err("blank driver name");
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        let err = registry
            .register_ipam_driver(name, default_ipam())
            .expect_err("blank ipam name");
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    }
    assert!(registry.drivers().is_empty());
    assert!(registry.ipams().is_empty());
}

#[test]
fn ipam_default_address_spaces_are_the_ones_the_driver_reported() {
    let registry = Registry::new();
    registry
        .register_ipam_driver("default", default_ipam())
        .unwrap();
    registry
        .register_ipam_driver("plugin", plugin_ipam("PluginLocal", "PluginGlobal"))
        .unwrap();

    assert_eq!(
        registry.ipam_default_address_spaces("default").unwrap(),
        ("LocalDefault".to_owned(), "GlobalDefault".to_owned())
    );
    assert_eq!(
        registry.ipam_default_address_spaces("plugin").unwrap(),
        ("PluginLocal".to_owned(), "PluginGlobal".to_owned())
    );
    let err = registry
        .ipam_default_address_spaces("missing")
        .expect_err("unknown ipam");
    assert!(
        matches!(err, Error::IpamNotFound(ref n) if n == "missing"),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "ipam driver \"missing\" not found");
}

#[test]
fn a_registered_ipam_is_found_with_its_capability() {
    let registry = Registry::new();
    let ipam = default_ipam();
    registry
        .register_ipam_driver("default", ipam.clone())
        .unwrap();
    registry
        .register_ipam_driver("plugin", plugin_ipam("L", "G"))
        .unwrap();

    let entry = registry.ipam("default").expect("default registered");
    assert!(Arc::ptr_eq(&entry.driver, &ipam));
    // Without a store the default IPAM needs its requests replayed after a restart.
    assert_eq!(
        entry.capability,
        IpamCapability {
            requires_mac_address: false,
            requires_request_replay: true
        }
    );
    assert_eq!(entry.default_local_address_space, "LocalDefault");
    let entry = registry.ipam("plugin").expect("plugin registered");
    assert!(entry.capability.requires_mac_address);
    assert!(entry.capability.requires_request_replay);
    assert!(registry.ipam("null").is_none());
}

#[test]
fn a_built_in_ipam_cannot_be_replaced_but_a_plugin_ipam_can() {
    let registry = Registry::new();
    let builtin = default_ipam();
    registry
        .register_ipam_driver("default", builtin.clone())
        .unwrap();
    for replacement in [default_ipam(), plugin_ipam("L", "G")] {
        let err = registry
            .register_ipam_driver("default", replacement)
            .expect_err("built-in ipam replaced");
        assert!(matches!(err, Error::ActiveRegistration(_)), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Forbidden);
    }
    assert!(Arc::ptr_eq(
        &registry.ipam("default").unwrap().driver,
        &builtin
    ));

    registry
        .register_ipam_driver("plugin", plugin_ipam("L1", "G1"))
        .unwrap();
    registry
        .register_ipam_driver("plugin", plugin_ipam("L2", "G2"))
        .unwrap();
    assert_eq!(
        registry.ipam_default_address_spaces("plugin").unwrap(),
        ("L2".to_owned(), "G2".to_owned())
    );
    assert_eq!(ipam_names(&registry), ["default", "plugin"]);
}

#[test]
fn an_ipam_that_cannot_tell_its_address_spaces_is_not_registered() {
    let registry = Registry::new();
    let err = registry
        .register_ipam_driver("flaky", Arc::new(PluginIpam { spaces: None }))
        .expect_err("registered without address spaces");
    assert!(matches!(err, Error::IpamAddressSpaces { ref name, .. } if name == "flaky"));
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string()
            .starts_with("register ipam driver \"flaky\": get default address spaces: ask plugin"),
        "{err}"
    );
    assert!(registry.ipam("flaky").is_none());

    // A failing replacement leaves the registered plugin in place.
    registry
        .register_ipam_driver("flaky", plugin_ipam("L", "G"))
        .unwrap();
    assert!(
        registry
            .register_ipam_driver("flaky", Arc::new(PluginIpam { spaces: None }))
            .is_err()
    );
    assert_eq!(
        registry.ipam_default_address_spaces("flaky").unwrap(),
        ("L".to_owned(), "G".to_owned())
    );
}

#[test]
fn walking_drivers_visits_each_in_name_order_and_stops_on_break() {
    let registry = Registry::new();
    libnetwork_driver_null::register(&registry).unwrap();
    libnetwork_driver_host::register(&registry).unwrap();
    registry.register_driver("remote-x", plugin("x")).unwrap();

    let mut seen = Vec::new();
    registry.walk_drivers(|e| {
        seen.push((e.name.clone(), e.driver.is_built_in()));
        ControlFlow::Continue(())
    });
    assert_eq!(
        seen,
        [
            ("host".to_owned(), true),
            ("null".to_owned(), true),
            ("remote-x".to_owned(), false)
        ]
    );

    let mut visited = 0;
    registry.walk_drivers(|e| {
        visited += 1;
        if e.name == "null" {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!(visited, 2);
}

#[test]
fn walking_ipams_visits_each_in_name_order_and_stops_on_break() {
    let registry = Registry::new();
    registry
        .register_ipam_driver("plugin", plugin_ipam("L", "G"))
        .unwrap();
    registry
        .register_ipam_driver("default", default_ipam())
        .unwrap();

    let mut seen = Vec::new();
    registry.walk_ipams(|e| {
        seen.push((e.name.clone(), e.driver.is_built_in()));
        ControlFlow::Continue(())
    });
    assert_eq!(
        seen,
        [("default".to_owned(), true), ("plugin".to_owned(), false)]
    );

    let mut visited = 0;
    registry.walk_ipams(|_| {
        visited += 1;
        ControlFlow::Break(())
    });
    assert_eq!(visited, 1);
}

#[test]
fn a_walk_callback_may_register_drivers_and_sees_the_snapshot() {
    let registry = Registry::new();
    libnetwork_driver_host::register(&registry).unwrap();
    registry
        .register_ipam_driver("default", default_ipam())
        .unwrap();

    let mut seen = Vec::new();
    registry.walk_drivers(|e| {
        seen.push(e.name.clone());
        registry
            .register_driver("added-during-walk", plugin("a"))
            .unwrap();
        ControlFlow::Continue(())
    });
    assert_eq!(seen, ["host"]);
    assert_eq!(driver_names(&registry), ["added-during-walk", "host"]);

    let mut seen = Vec::new();
    registry.walk_ipams(|e| {
        seen.push(e.name.clone());
        registry
            .register_ipam_driver("ipam-added-during-walk", plugin_ipam("L", "G"))
            .unwrap();
        ControlFlow::Continue(())
    });
    assert_eq!(seen, ["default"]);
    assert_eq!(ipam_names(&registry), ["default", "ipam-added-during-walk"]);
}

#[test]
fn concurrent_registrations_of_one_built_in_name_admit_exactly_one() {
    let registry = Registry::new();
    let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| registry.register_driver("host", Arc::new(HostDriver::new()))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, Error::ActiveRegistration(_)))
    );

    let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| registry.register_ipam_driver("default", default_ipam())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
}

#[tokio::test]
async fn a_looked_up_driver_serves_requests() {
    let registry = Registry::new();
    libnetwork_driver_null::register(&registry).unwrap();
    let driver = registry.driver("null").unwrap().driver;
    let request = CreateNetworkRequest {
        network_id: "none".into(),
        options: Default::default(),
        ipv4: Vec::new(),
        ipv6: Vec::new(),
    };
    driver.create_network(&request).await.unwrap();
    let again = registry.driver("null").unwrap().driver;
    let err = again
        .create_network(&request)
        .await
        .expect_err("one instance");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
}
