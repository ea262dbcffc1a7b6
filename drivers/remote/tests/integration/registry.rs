//! Registration into the driver registry: by activated plugin, and by name through discovery.

use std::sync::Arc;
use std::time::Duration;

use libnetwork_driver_remote::{Error, load_ipam_driver, load_network_driver, register_plugin};
use libnetwork_driverapi::{Capability, Registry};
use libnetwork_plugins::{Discovery, Plugin, Plugins};
use serde_json::json;

use crate::plugin::TestPlugin;
use crate::{config, spec};

#[tokio::test]
async fn a_plugin_registers_for_each_kind_it_implements_and_may_replace_a_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::start(
        &tmp.path().join("testnet.sock"),
        &["NetworkDriver", "IpamDriver"],
        None,
    );
    let activated = Plugin::activate(&spec(&plugin.socket), config(Duration::from_secs(30)))
        .await
        .unwrap();
    let registry = Arc::new(Registry::new());

    let registered = register_plugin(&registry, &activated).await.unwrap();
    assert!(registered.network.is_some() && registered.ipam.is_some());
    let driver = registry.driver("testnet").expect("network driver");
    assert_eq!(driver.capability, Capability::LOCAL);
    assert_eq!(driver.driver.driver_type(), "testnet");
    assert!(registry.ipam("testnet").is_some());

    // The plugin restarts with other capabilities: registering again replaces it.
    plugin.state.set_capabilities(json!({"Scope": "global"}));
    register_plugin(&registry, &activated).await.unwrap();
    assert_eq!(
        registry.driver("testnet").unwrap().capability,
        Capability::GLOBAL
    );
}

#[tokio::test]
async fn a_plugin_cannot_replace_a_built_in_driver() {
    let tmp = tempfile::tempdir().unwrap();
    // A plugin named like the built-in null driver.
    let plugin = TestPlugin::start(&tmp.path().join("run/null.sock"), &["NetworkDriver"], None);
    let registry = Registry::new();
    libnetwork_driver_null::register(&registry).unwrap();
    let plugins = Plugins::new(
        Discovery::new([tmp.path().join("run")], [tmp.path().join("etc")]),
        config(Duration::from_secs(30)),
    );
    let err = load_network_driver(&registry, &plugins, "null")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Register { source, .. }
            if matches!(**source, libnetwork_driverapi::Error::ActiveRegistration(_))),
        "{err}"
    );
    assert!(registry.driver("null").unwrap().driver.is_built_in());
    // The plugin was asked, then refused by the registry.
    assert_eq!(
        plugin.state.requests("NetworkDriver.GetCapabilities").len(),
        1
    );
}

#[tokio::test]
async fn drivers_are_loaded_by_name_through_the_plugin_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let _net = TestPlugin::start(&tmp.path().join("run/weave.sock"), &["NetworkDriver"], None);
    let _ipam = TestPlugin::start(
        &tmp.path().join("run/infoblox/infoblox.sock"),
        &["IpamDriver"],
        None,
    );
    let registry = Arc::new(Registry::new());
    let plugins = Plugins::new(
        Discovery::new([tmp.path().join("run")], [tmp.path().join("etc")]),
        config(Duration::from_secs(30)),
    );

    let weave = load_network_driver(&registry, &plugins, "weave")
        .await
        .unwrap();
    assert_eq!(weave.name, "weave");
    let infoblox = load_ipam_driver(&registry, &plugins, "infoblox")
        .await
        .unwrap();
    assert_eq!(infoblox.default_local_address_space, "plugin-local");

    let err = load_network_driver(&registry, &plugins, "infoblox")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Plugin(libnetwork_plugins::Error::NotImplements { .. })
        ),
        "{err}"
    );
    let err = load_network_driver(&registry, &plugins, "absent")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), libnetwork_types::ErrorKind::NotFound, "{err}");
    assert!(registry.driver("absent").is_none() && registry.driver("infoblox").is_none());
}
