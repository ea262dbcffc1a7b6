//! The IPAM driver against the test plugin. Its methods block, so the tests call them from
//! the blocking pool while the plugin runs on the test's runtime.

use std::sync::Arc;
use std::time::Duration;

use libnetwork_driver_remote::{RemoteIpam, ipam::RUNTIME_THREAD, register_ipam_driver};
use libnetwork_driverapi::Registry;
use libnetwork_ipamapi::{Capability, Error as IpamError, Ipam, Options};
use libnetwork_plugins::Plugin;
use libnetwork_types::ErrorKind;
use serde_json::json;

use crate::plugin::{Fault, TestPlugin, ip, net};
use crate::{config, spec};

const IPAM: &[&str] = &["IpamDriver"];

async fn ipam_with(timeout: Duration) -> (tempfile::TempDir, TestPlugin, Arc<RemoteIpam>) {
    let tmp = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::start(&tmp.path().join("testnet.sock"), IPAM, None);
    let activated = Plugin::activate(&spec(&plugin.socket), config(timeout))
        .await
        .unwrap();
    let ipam = Arc::new(RemoteIpam::new(&activated).await.unwrap());
    (tmp, plugin, ipam)
}

/// Runs a blocking IPAM call off the runtime the plugin is served by.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test]
async fn an_ipam_plugin_hands_out_pools_and_addresses_through_the_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::start(&tmp.path().join("testnet.sock"), IPAM, None);
    let activated = Plugin::activate(&spec(&plugin.socket), config(Duration::from_secs(30)))
        .await
        .unwrap();
    let registry = Arc::new(Registry::new());
    register_ipam_driver(&registry, &activated).await.unwrap();

    let entry = registry.ipam("testnet").expect("registered");
    assert_eq!(entry.default_local_address_space, "plugin-local");
    assert_eq!(entry.default_global_address_space, "plugin-global");
    assert_eq!(
        entry.capability,
        Capability {
            requires_mac_address: true,
            requires_request_replay: false
        }
    );
    assert!(!entry.driver.is_built_in());
    let state = plugin.state.clone();
    assert_eq!(
        state.requests("IpamDriver.GetDefaultAddressSpaces"),
        [json!(null)]
    );

    let ipam = entry.driver.clone();
    let (dynamic, fixed) = blocking(move || {
        let dynamic = ipam
            .request_pool("plugin-local", None, None, &Options::new(), false)
            .unwrap();
        let fixed = ipam
            .request_pool(
                "plugin-local",
                Some(net("10.50.0.0/16")),
                Some(net("10.50.4.0/24")),
                &Options::from([("k".to_owned(), "v".to_owned())]),
                false,
            )
            .unwrap();
        (dynamic, fixed)
    })
    .await;
    assert_eq!(dynamic.pool, net("10.200.1.0/24"));
    assert_eq!(dynamic.pool_id, "plugin-local/10.200.1.0/24/10.200.1.0/24");
    assert_eq!(dynamic.meta["com.docker.network.gateway"], "10.200.1.1/24");
    assert_eq!(fixed.pool, net("10.50.0.0/16"));
    assert_eq!(
        state.requests("IpamDriver.RequestPool"),
        [
            json!({"AddressSpace": "plugin-local", "Pool": "", "SubPool": "", "Options": {}, "V6": false}),
            json!({
                "AddressSpace": "plugin-local", "Pool": "10.50.0.0/16",
                "SubPool": "10.50.4.0/24", "Options": {"k": "v"}, "V6": false
            }),
        ]
    );

    let ipam = entry.driver.clone();
    let pool_id = fixed.pool_id.clone();
    let (gateway, first, preferred, taken) = blocking(move || {
        let gateway = ipam
            .request_address(
                &pool_id,
                None,
                &Options::from([(
                    "RequestAddressType".to_owned(),
                    "com.docker.network.gateway".to_owned(),
                )]),
            )
            .unwrap();
        let mac = Options::from([(
            "com.docker.network.endpoint.macaddress".to_owned(),
            "02:42:0a:32:04:01".to_owned(),
        )]);
        let first = ipam.request_address(&pool_id, None, &mac).unwrap();
        let preferred = ipam
            .request_address(&pool_id, Some(ip("10.50.4.77")), &Options::new())
            .unwrap();
        let taken = ipam
            .request_address(&pool_id, Some(ip("10.50.4.77")), &Options::new())
            .unwrap_err();
        ipam.release_address(&pool_id, ip("10.50.4.77")).unwrap();
        (gateway, first, preferred, taken)
    })
    .await;
    assert_eq!(gateway.address, net("10.50.0.1/16"));
    assert_eq!(first.address, net("10.50.4.1/16"));
    assert_eq!(first.meta["mac"], "02:42:0a:32:04:01");
    assert_eq!(preferred.address, net("10.50.4.77/16"));
    assert_eq!(taken.to_string(), "remote: 10.50.4.77 is in use");
    assert_eq!(
        state.requests("IpamDriver.ReleaseAddress"),
        [json!({"PoolID": fixed.pool_id, "Address": "10.50.4.77"})]
    );
    assert_eq!(
        state.allocated(&fixed.pool_id),
        ["10.50.0.1", "10.50.4.1"].map(|a| a.parse::<std::net::Ipv4Addr>().unwrap())
    );

    let ipam = entry.driver.clone();
    let ids = [dynamic.pool_id.clone(), fixed.pool_id.clone()];
    blocking(move || {
        for id in ids {
            ipam.release_pool(&id).unwrap();
        }
    })
    .await;
    assert!(state.pool_ids().is_empty());
}

#[tokio::test]
async fn ipam_plugin_errors_are_remote_errors_with_the_plugins_message() {
    let (_tmp, plugin, ipam) = ipam_with(Duration::from_secs(30)).await;
    plugin.state.fault(
        "IpamDriver.RequestPool",
        Fault::Refuse("address space is full"),
    );
    let err = blocking(move || {
        ipam.request_pool("plugin-local", None, None, &Options::new(), false)
            .unwrap_err()
    })
    .await;
    assert!(
        matches!(&err, IpamError::Remote(m) if m == "address space is full"),
        "{err}"
    );
    assert_eq!(err.to_string(), "remote: address space is full");
}

#[tokio::test]
async fn an_answer_without_an_address_is_no_ip_returned() {
    let (_tmp, _plugin, ipam) = ipam_with(Duration::from_secs(30)).await;
    let err = blocking(move || {
        let pool = ipam
            .request_pool("plugin-local", None, None, &Options::new(), false)
            .unwrap();
        let options = Options::from([("give-nothing".to_owned(), "true".to_owned())]);
        ipam.request_address(&pool.pool_id, None, &options)
            .unwrap_err()
    })
    .await;
    assert!(matches!(err, IpamError::NoIpReturned), "{err}");
}

#[tokio::test]
async fn a_legacy_ipam_plugin_without_capabilities_gets_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::start(&tmp.path().join("testnet.sock"), IPAM, None);
    plugin.state.fault(
        "IpamDriver.GetCapabilities",
        Fault::Status(404, "404 page not found"),
    );
    let activated = Plugin::activate(&spec(&plugin.socket), config(Duration::from_secs(5)))
        .await
        .unwrap();
    let ipam = RemoteIpam::new(&activated).await.unwrap();
    assert_eq!(ipam.capabilities(), Capability::default());

    // A plugin that cannot be reached is an error, not a legacy plugin.
    plugin.kill().await;
    let err = RemoteIpam::new(&activated).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn a_lost_answer_to_a_preferred_address_request_releases_the_address() {
    // Real time: the blocking call runs on the crate's own runtime.
    let (_tmp, plugin, ipam) = ipam_with(Duration::from_millis(300)).await;
    let ipam2 = ipam.clone();
    let pool = blocking(move || {
        ipam2
            .request_pool("plugin-local", None, None, &Options::new(), false)
            .unwrap()
    })
    .await;
    plugin
        .state
        .fault("IpamDriver.RequestAddress", Fault::HangAfter);
    let pool_id = pool.pool_id.clone();
    let err = blocking(move || {
        ipam.request_address(&pool_id, Some(ip("10.200.1.9")), &Options::new())
            .unwrap_err()
    })
    .await;
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let message = err.to_string();
    assert!(
        message.starts_with("ipam plugin testnet: call IpamDriver.RequestAddress"),
        "{message}"
    );
    assert!(
        message.contains("sent IpamDriver.ReleaseAddress to undo it"),
        "{message}"
    );
    assert!(
        plugin.state.allocated(&pool.pool_id).is_empty(),
        "address left allocated"
    );
}

#[tokio::test]
async fn a_blocking_call_from_the_plugin_runtimes_own_thread_is_refused() {
    let (_tmp, _plugin, ipam) = ipam_with(Duration::from_secs(30)).await;
    let err = std::thread::Builder::new()
        .name(RUNTIME_THREAD.to_owned())
        .spawn(move || ipam.default_address_spaces().unwrap_err())
        .unwrap()
        .join()
        .unwrap();
    assert!(err.to_string().contains("would deadlock"), "{err}");
}

#[tokio::test]
async fn blocking_calls_work_from_plain_threads_while_the_caller_runtime_is_busy() {
    let (_tmp, _plugin, ipam) = ipam_with(Duration::from_secs(30)).await;
    // Several threads at once, none of them a runtime's.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let ipam = ipam.clone();
            std::thread::spawn(move || ipam.default_address_spaces().unwrap())
        })
        .collect();
    blocking(move || {
        for call in calls {
            assert_eq!(
                call.join().unwrap(),
                ("plugin-local".to_owned(), "plugin-global".to_owned())
            );
        }
    })
    .await;
}

#[test]
fn a_blocking_call_from_the_only_thread_of_a_runtime_does_not_deadlock() {
    // The plugin runs on a runtime of its own, as a real plugin is another process.
    let plugin_rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("testnet.sock");
    let _plugin = plugin_rt.block_on(async { TestPlugin::start(&socket, IPAM, None) });

    // The caller: a current-thread runtime whose task calls the blocking method directly,
    // after activation left a pooled connection driven by this very thread. A watchdog turns
    // a deadlock into a failure.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spaces = rt.block_on(async {
            let activated = Plugin::activate(&spec(&socket), config(Duration::from_secs(30)))
                .await
                .unwrap();
            let ipam = RemoteIpam::new(&activated).await.unwrap();
            ipam.default_address_spaces().unwrap()
        });
        let _ = done.send(spaces);
    });
    let spaces = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the blocking call deadlocked");
    assert_eq!(
        spaces,
        ("plugin-local".to_owned(), "plugin-global".to_owned())
    );
}

#[tokio::test]
async fn a_pool_answer_that_does_not_parse_is_released_again() {
    let (_tmp, plugin, ipam) = ipam_with(Duration::from_secs(30)).await;
    // The plugin reserves the first dynamic pool but describes it badly.
    plugin.state.fault(
        "IpamDriver.RequestPool",
        Fault::AnswerAfter(json!({
            "PoolID": "plugin-local/10.200.1.0/24/10.200.1.0/24",
            "Pool": "ten-two-hundred"
        })),
    );
    let err = blocking(move || {
        ipam.request_pool("plugin-local", None, None, &Options::new(), false)
            .unwrap_err()
    })
    .await;
    let message = err.to_string();
    assert!(
        message.contains("unusable answer: Pool \"ten-two-hundred\""),
        "{message}"
    );
    assert!(
        message.contains("sent IpamDriver.ReleasePool to undo it"),
        "{message}"
    );
    assert!(plugin.state.pool_ids().is_empty(), "pool left reserved");
}
