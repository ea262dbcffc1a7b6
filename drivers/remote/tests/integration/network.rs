//! The network driver against the test plugin (everything but joins, which need a sandbox:
//! see `kernel.rs`).

use std::error::Error as _;
use std::time::Duration;

use libnetwork_driver_remote::{Error, RemoteDriver};
use libnetwork_driverapi::{
    Capability, CreateNetworkRequest, DiscoveryData, Driver, EndpointInterface, EndpointOptions,
    IpamData, Labels, NetworkOptions, Scope,
};
use libnetwork_ipamapi::discover::{DatastoreConfigData, NodeDiscoveryData};
use libnetwork_plugins::Plugin;
use libnetwork_types::{ErrorKind, MacAddr, Protocol, TransportPort};
use serde_json::json;

use crate::plugin::{Fault, TestPlugin, net};
use crate::{config, spec};

const NET: &[&str] = &["NetworkDriver"];

/// A plugin on a fresh socket and its driver.
async fn driver_with(timeout: Duration) -> (tempfile::TempDir, TestPlugin, RemoteDriver) {
    let tmp = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::start(&tmp.path().join("testnet.sock"), NET, None);
    let activated = Plugin::activate(&spec(&plugin.socket), config(timeout))
        .await
        .unwrap();
    let driver = RemoteDriver::new(&activated).await.unwrap();
    (tmp, plugin, driver)
}

async fn driver() -> (tempfile::TempDir, TestPlugin, RemoteDriver) {
    driver_with(Duration::from_secs(30)).await
}

fn network_request(id: &str) -> CreateNetworkRequest {
    CreateNetworkRequest {
        network_id: id.into(),
        options: NetworkOptions {
            driver_options: Labels::from([("mode".to_owned(), "l2".to_owned())]),
            enable_ipv6: false,
            ..Default::default()
        },
        ipv4: vec![IpamData {
            address_space: "LocalDefault".into(),
            pool: "10.77.0.0/24".parse().unwrap(),
            gateway: Some("10.77.0.1/24".parse().unwrap()),
            aux_addresses: Default::default(),
        }],
        ipv6: vec![],
    }
}

fn address(s: &str) -> EndpointInterface {
    EndpointInterface {
        address: Some(net(s)),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_plugins_scopes_become_the_driver_capability() {
    let (_tmp, plugin, driver) = driver().await;
    assert_eq!(driver.capability(), Capability::LOCAL);
    assert_eq!(driver.driver_type(), "testnet");
    assert!(!driver.is_built_in());
    assert_eq!(
        plugin.state.requests("NetworkDriver.GetCapabilities"),
        [json!(null)]
    );

    let activated = Plugin::activate(&spec(&plugin.socket), config(Duration::from_secs(5)))
        .await
        .unwrap();
    plugin
        .state
        .set_capabilities(json!({"Scope": "local", "ConnectivityScope": "global"}));
    let c = RemoteDriver::new(&activated).await.unwrap().capability();
    assert_eq!(
        (c.data_scope, c.connectivity_scope),
        (Scope::Local, Scope::Global)
    );

    for bad in [
        json!({}),
        json!({"Scope": "fake"}),
        json!({"Scope": "global", "ConnectivityScope": "x"}),
    ] {
        plugin.state.set_capabilities(bad.clone());
        let err = RemoteDriver::new(&activated).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidCapability { .. }),
            "{bad}: {err}"
        );
        assert!(
            err.to_string().contains("expecting 'local' or 'global'"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_plugin_of_another_kind_gives_no_network_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::start(&tmp.path().join("ipam.sock"), &["IpamDriver"], None);
    let activated = Plugin::activate(&spec(&plugin.socket), config(Duration::from_secs(5)))
        .await
        .unwrap();
    let err = RemoteDriver::new(&activated).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Plugin(libnetwork_plugins::Error::NotImplements { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn network_and_endpoint_calls_carry_dockers_json() {
    let (_tmp, plugin, driver) = driver().await;
    let state = &plugin.state;

    driver.create_network(&network_request("n1")).await.unwrap();
    assert_eq!(
        state.requests("NetworkDriver.CreateNetwork"),
        [json!({
            "NetworkID": "n1",
            "Options": {
                "com.docker.network.generic": {"mode": "l2"},
                "com.docker.network.enable_ipv6": false
            },
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.77.0.0/24", "Gateway": "10.77.0.1/24"}],
            "IPv6Data": []
        })]
    );

    // The plugin fills in the MAC the controller left unset.
    let mut iface = address("10.77.0.2/24");
    let options = EndpointOptions {
        exposed_ports: vec![TransportPort {
            proto: Protocol::Tcp,
            port: 8080,
        }],
        ..Default::default()
    };
    driver
        .create_endpoint("n1", "e1", &mut iface, &options)
        .await
        .unwrap();
    assert_eq!(
        iface.mac,
        Some(MacAddr([0x02, 0x42, 0xc0, 0xa8, 0x00, 0x01]))
    );
    assert_eq!(iface.address, Some(net("10.77.0.2/24")));
    assert_eq!(
        state.requests("NetworkDriver.CreateEndpoint"),
        [json!({
            "NetworkID": "n1",
            "EndpointID": "e1",
            "Interface": {"Address": "10.77.0.2/24", "AddressIPv6": "", "MacAddress": ""},
            "Options": {
                "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 8080}],
                "com.docker.network.portmap": []
            }
        })]
    );

    let info = driver.endpoint_oper_info("n1", "e1").await.unwrap();
    assert_eq!(info["endpoint"], json!("e1"));
    driver
        .program_external_connectivity("n1", "e1", &options)
        .await
        .unwrap();
    assert_eq!(
        state.requests("NetworkDriver.ProgramExternalConnectivity")[0]["Options"]["com.docker.network.endpoint.exposedports"],
        json!([{"Proto": 6, "Port": 8080}])
    );
    driver
        .revoke_external_connectivity("n1", "e1")
        .await
        .unwrap();
    driver.delete_endpoint("n1", "e1").await.unwrap();
    driver.delete_network("n1").await.unwrap();
    for method in [
        "EndpointOperInfo",
        "RevokeExternalConnectivity",
        "DeleteEndpoint",
    ] {
        assert_eq!(
            state.requests(&format!("NetworkDriver.{method}")),
            [json!({"NetworkID": "n1", "EndpointID": "e1"})],
            "{method}"
        );
    }
    assert_eq!(
        state.requests("NetworkDriver.DeleteNetwork"),
        [json!({"NetworkID": "n1"})]
    );
    assert!(state.network_ids().is_empty() && state.endpoint_ids().is_empty());
}

#[tokio::test]
async fn allocation_and_node_discovery_are_forwarded_and_other_notifications_are_not() {
    let (_tmp, plugin, driver) = driver().await;
    let options = driver
        .network_allocate("n1", &Labels::new(), &network_request("n1").ipv4, &[])
        .await
        .unwrap();
    assert_eq!(options["vni"], "4097");
    driver.network_free("n1").await.unwrap();
    assert_eq!(
        plugin.state.requests("NetworkDriver.FreeNetwork"),
        [json!({"NetworkID": "n1"})]
    );

    let node = DiscoveryData::NodeDiscovery(NodeDiscoveryData {
        address: "192.0.2.10".into(),
        bind_address: "0.0.0.0".into(),
        self_node: true,
    });
    driver.discover_new(&node).await.unwrap();
    driver.discover_delete(&node).await.unwrap();
    let store = DiscoveryData::DatastoreConfig(DatastoreConfigData {
        scope: "global".into(),
        provider: "etcd".into(),
        address: "127.0.0.1:2379".into(),
    });
    driver.discover_new(&store).await.unwrap();
    assert_eq!(
        plugin.state.requests("NetworkDriver.DiscoverNew"),
        [json!({
            "DiscoveryType": 1,
            "DiscoveryData": {"Address": "192.0.2.10", "BindAddress": "0.0.0.0", "Self": true}
        })]
    );
    assert_eq!(
        plugin.state.requests("NetworkDriver.DiscoverDelete").len(),
        1
    );
}

#[tokio::test]
async fn a_plugin_refusal_surfaces_its_message_and_nothing_is_undone() {
    let (_tmp, plugin, driver) = driver().await;
    plugin.state.fault(
        "NetworkDriver.CreateNetwork",
        Fault::Refuse("no vlan left on trunk0"),
    );
    let err = driver
        .create_network(&network_request("n1"))
        .await
        .unwrap_err();
    assert_eq!(err.source().unwrap().to_string(), "no vlan left on trunk0");
    assert_eq!(err.to_string(), "testnet driver: no vlan left on trunk0");
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(
        plugin
            .state
            .requests("NetworkDriver.DeleteNetwork")
            .is_empty()
    );

    // A refused endpoint leaves the interface as it was.
    plugin.state.heal("NetworkDriver.CreateNetwork");
    driver.create_network(&network_request("n1")).await.unwrap();
    plugin.state.fault(
        "NetworkDriver.CreateEndpoint",
        Fault::Refuse("address pool exhausted"),
    );
    let mut iface = address("10.77.0.2/24");
    let err = driver
        .create_endpoint("n1", "e1", &mut iface, &EndpointOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.source().unwrap().to_string(), "address pool exhausted");
    assert_eq!(iface, address("10.77.0.2/24"), "interface untouched");
}

#[tokio::test(start_paused = true)]
async fn a_create_endpoint_that_times_out_is_undone_with_delete_endpoint() {
    let (_tmp, plugin, driver) = driver_with(Duration::from_secs(30)).await;
    driver.create_network(&network_request("n1")).await.unwrap();
    // The plugin creates the endpoint but never answers.
    plugin
        .state
        .fault("NetworkDriver.CreateEndpoint", Fault::HangAfter);
    let mut iface = address("10.77.0.2/24");
    let err = driver
        .create_endpoint("n1", "e1", &mut iface, &EndpointOptions::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("no answer within 30s"), "{message}");
    assert!(
        message.contains("sent NetworkDriver.DeleteEndpoint to undo it"),
        "{message}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        plugin.state.requests("NetworkDriver.DeleteEndpoint"),
        [json!({"NetworkID": "n1", "EndpointID": "e1"})]
    );
    assert!(
        plugin.state.endpoint_ids().is_empty(),
        "endpoint left in the plugin"
    );
    assert_eq!(iface, address("10.77.0.2/24"));
}

#[tokio::test]
async fn a_create_network_answered_with_garbage_is_undone_with_delete_network() {
    let (_tmp, plugin, driver) = driver().await;
    plugin
        .state
        .fault("NetworkDriver.CreateNetwork", Fault::GarbageAfter);
    let err = driver
        .create_network(&network_request("n1"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("invalid answer: not JSON"), "{message}");
    assert!(message.contains("503 Service Unavailable"), "{message}");
    assert!(
        message.contains("sent NetworkDriver.DeleteNetwork to undo it"),
        "{message}"
    );
    assert!(
        plugin.state.network_ids().is_empty(),
        "network left in the plugin"
    );
}

#[tokio::test]
async fn a_plugin_dying_during_create_endpoint_is_reported_with_the_failed_undo() {
    let (_tmp, plugin, driver) = driver().await;
    driver.create_network(&network_request("n1")).await.unwrap();
    plugin
        .state
        .fault("NetworkDriver.CreateEndpoint", Fault::HangAfter);
    let state = plugin.state.clone();
    let call = tokio::spawn(async move {
        let mut iface = address("10.77.0.2/24");
        driver
            .create_endpoint("n1", "e1", &mut iface, &EndpointOptions::default())
            .await
    });
    while state.requests("NetworkDriver.CreateEndpoint").is_empty() {
        tokio::task::yield_now().await;
    }
    plugin.kill().await;
    let err = call.await.unwrap().unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("connection lost before the answer"),
        "{message}"
    );
    assert!(
        message.contains("sent NetworkDriver.DeleteEndpoint to undo it, which failed too"),
        "{message}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn an_endpoint_whose_plugin_changes_a_set_address_is_deleted_again() {
    let (_tmp, plugin, driver) = driver().await;
    driver.create_network(&network_request("n1")).await.unwrap();
    plugin.state.fault(
        "NetworkDriver.CreateEndpoint",
        Fault::AnswerAfter(json!({"Interface": {"Address": "10.77.0.99/24"}})),
    );
    let mut iface = address("10.77.0.2/24");
    let err = driver
        .create_endpoint("n1", "e1", &mut iface, &EndpointOptions::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("already set to 10.77.0.2/24"), "{message}");
    assert!(
        message.contains("sent NetworkDriver.DeleteEndpoint to undo it"),
        "{message}"
    );
    assert!(plugin.state.endpoint_ids().is_empty());
    assert_eq!(iface, address("10.77.0.2/24"), "interface untouched");

    // The same address echoed back, and a MAC given, are fine.
    plugin.state.fault(
        "NetworkDriver.CreateEndpoint",
        Fault::AnswerAfter(json!({"Interface": {
            "Address": "10.77.0.2/24", "AddressIPv6": "fd00::2/64", "MacAddress": "02:00:00:00:00:01"
        }})),
    );
    driver
        .create_endpoint("n1", "e1", &mut iface, &EndpointOptions::default())
        .await
        .unwrap();
    assert_eq!(iface.address_ipv6, Some(net("fd00::2/64")));
    assert_eq!(iface.mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
}

#[tokio::test]
async fn an_endpoint_answer_that_does_not_parse_is_deleted_again() {
    let (_tmp, plugin, driver) = driver().await;
    driver.create_network(&network_request("n1")).await.unwrap();
    plugin.state.fault(
        "NetworkDriver.CreateEndpoint",
        Fault::AnswerAfter(json!({"Interface": {"MacAddress": "not-a-mac"}})),
    );
    let mut iface = EndpointInterface::default();
    let err = driver
        .create_endpoint("n1", "e1", &mut iface, &EndpointOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unusable answer: MacAddress"),
        "{err}"
    );
    assert!(plugin.state.endpoint_ids().is_empty());
    assert_eq!(iface, EndpointInterface::default());
}

#[tokio::test]
async fn external_connectivity_unknown_to_the_plugin_is_success_but_other_404s_are_not() {
    let (_tmp, plugin, driver) = driver().await;
    for method in [
        "NetworkDriver.ProgramExternalConnectivity",
        "NetworkDriver.RevokeExternalConnectivity",
        "NetworkDriver.CreateNetwork",
    ] {
        plugin
            .state
            .fault(method, Fault::Status(404, "404 page not found"));
    }
    driver
        .program_external_connectivity("n1", "e1", &EndpointOptions::default())
        .await
        .unwrap();
    driver
        .revoke_external_connectivity("n1", "e1")
        .await
        .unwrap();
    let err = driver
        .create_network(&network_request("n1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("http status 404"), "{err}");
    // A 404 says the plugin did nothing: no undo.
    assert!(
        plugin
            .state
            .requests("NetworkDriver.DeleteNetwork")
            .is_empty()
    );
}
