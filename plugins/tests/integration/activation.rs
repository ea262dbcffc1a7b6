//! Discovery plus activation through `Plugins`, and the activation handshake's retries.

use std::sync::Arc;
use std::time::Duration;

use libnetwork_plugins::{
    ClientConfig, Discovery, Error, Plugin, PluginAddr, PluginSpec, Plugins, RetryPolicy,
};
use serde_json::json;

use crate::server::{Reply, Script, TestPlugin};

fn manifest(kinds: &[&str]) -> Reply {
    Reply::Json(200, json!({ "Implements": kinds }))
}

/// Plugins looking in `<tmp>/run` for sockets and `<tmp>/etc` for specs.
fn plugins(tmp: &tempfile::TempDir, config: ClientConfig) -> Plugins {
    Plugins::new(
        Discovery::new([tmp.path().join("run")], [tmp.path().join("etc")]),
        config,
    )
}

fn quick() -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy::NONE,
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn activation_sends_dockers_handshake_and_is_done_once() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[("/Plugin.Activate", manifest(&["NetworkDriver"]))]);
    let server = TestPlugin::start(&tmp.path().join("run/net.sock"), script.clone());
    let plugins = plugins(&tmp, quick());

    let first = plugins.get("net", "NetworkDriver").await.unwrap();
    let second = plugins.get("net", "NetworkDriver").await.unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(first.name(), "net");
    assert_eq!(first.addr(), &PluginAddr::Unix(server.socket.clone()));
    assert_eq!(first.manifest().implements, ["NetworkDriver"]);
    assert_eq!(script.count("/Plugin.Activate"), 1);

    let request = &script.log()[0];
    assert_eq!(request.method, "POST");
    assert!(request.body.is_empty(), "activation has no body");
    assert_eq!(request.headers["host"], "plugin.moby.localhost");
    assert_eq!(
        request.headers["accept"],
        "application/vnd.docker.plugins.v1.2+json"
    );
    assert_eq!(plugins.active().await.len(), 1);
}

#[tokio::test]
async fn a_plugin_that_implements_another_kind_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[("/Plugin.Activate", manifest(&["IpamDriver"]))]);
    let _server = TestPlugin::start(&tmp.path().join("run/ipam.sock"), script);
    let plugins = plugins(&tmp, quick());

    let err = plugins.get("ipam", "NetworkDriver").await.unwrap_err();
    assert!(
        matches!(&err, Error::NotImplements { wanted, implements, .. }
            if wanted == "NetworkDriver" && implements == &["IpamDriver"]),
        "{err}"
    );
    assert_eq!(err.kind(), libnetwork_types::ErrorKind::NotFound);
    // It stays active for the kind it implements.
    assert!(plugins.get("ipam", "IpamDriver").await.is_ok());
}

#[tokio::test]
async fn a_manifest_that_is_not_json_fails_activation_and_is_not_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[("/Plugin.Activate", Reply::Text(200, "hello"))]);
    let _server = TestPlugin::start(&tmp.path().join("run/bad.sock"), script.clone());
    let plugins = plugins(&tmp, quick());

    let err = plugins.get("bad", "NetworkDriver").await.unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("\"hello\""), "{err}");
    // The next get tries again, and succeeds once the plugin is fixed.
    script.set("/Plugin.Activate", manifest(&["NetworkDriver"]));
    assert!(plugins.get("bad", "NetworkDriver").await.is_ok());
    assert_eq!(script.count("/Plugin.Activate"), 2);
}

#[tokio::test]
async fn forgetting_a_plugin_activates_it_again() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[("/Plugin.Activate", manifest(&["NetworkDriver"]))]);
    let _server = TestPlugin::start(&tmp.path().join("run/p.sock"), script.clone());
    let plugins = plugins(&tmp, quick());
    plugins.get("p", "NetworkDriver").await.unwrap();
    assert!(plugins.forget("p").await);
    assert!(!plugins.forget("p").await);
    plugins.get("p", "NetworkDriver").await.unwrap();
    assert_eq!(script.count("/Plugin.Activate"), 2);
}

#[tokio::test(start_paused = true)]
async fn activation_retries_until_the_plugin_listens() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("late.sock");
    let spec = PluginSpec {
        name: "late".into(),
        addr: PluginAddr::Unix(socket.clone()),
        source: socket.clone(),
    };
    let script = Script::new(&[("/Plugin.Activate", manifest(&["NetworkDriver"]))]);
    // The plugin comes up 2.5 s after the first try: tries at 0, 1 and 3 s.
    let starter = {
        let script = script.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            TestPlugin::start(&socket, script)
        })
    };
    let plugin = Plugin::activate(&spec, ClientConfig::default())
        .await
        .unwrap();
    assert!(plugin.implements("NetworkDriver"));
    assert_eq!(script.count("/Plugin.Activate"), 1);
    drop(starter.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn activation_gives_up_after_dockers_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("never.sock");
    let spec = PluginSpec {
        name: "never".into(),
        addr: PluginAddr::Unix(socket.clone()),
        source: socket,
    };
    let err = Plugin::activate(&spec, ClientConfig::default())
        .await
        .unwrap_err();
    // Tries at 0, 1, 3, 7 and 15 s; waiting 16 s more would pass 30 s.
    assert!(matches!(err, Error::Connect { attempts: 5, .. }), "{err}");
    assert!(err.to_string().contains("never.sock"), "{err}");
    assert_eq!(err.kind(), libnetwork_types::ErrorKind::Unavailable);
}

#[tokio::test]
async fn activation_is_repeated_when_the_plugin_drops_the_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("flaky.sock");
    const MANIFEST: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 32\r\n\r\n{\"Implements\":[\"NetworkDriver\"]}";
    // The first connection reads the request and closes without answering.
    let _server = crate::server::raw_plugin(&socket, vec![None, Some(MANIFEST)]);
    let spec = PluginSpec {
        name: "flaky".into(),
        addr: PluginAddr::Unix(socket.clone()),
        source: socket,
    };
    let config = ClientConfig {
        retry: RetryPolicy {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            give_up_after: Duration::from_secs(30),
        },
        ..ClientConfig::default()
    };
    let plugin = Plugin::activate(&spec, config).await.unwrap();
    assert!(plugin.implements("NetworkDriver"));
}

#[tokio::test]
async fn get_all_activates_every_plugin_of_the_kind_and_reports_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Script::new(&[(
        "/Plugin.Activate",
        manifest(&["NetworkDriver", "IpamDriver"]),
    )]);
    let ipam = Script::new(&[("/Plugin.Activate", manifest(&["IpamDriver"]))]);
    let _a = TestPlugin::start(&tmp.path().join("run/a.sock"), net);
    let _b = TestPlugin::start(&tmp.path().join("run/b/b.sock"), ipam);
    std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
    std::fs::write(
        tmp.path().join("etc/dead.spec"),
        format!("unix://{}", tmp.path().join("nothing.sock").display()),
    )
    .unwrap();
    let plugins = plugins(&tmp, quick());

    let found = plugins.get_all("IpamDriver").await.unwrap();
    let names: Vec<&str> = found.plugins.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(found.failed.len(), 1);
    assert!(matches!(&found.failed[0], Error::Connect { plugin, .. } if plugin == "dead"));

    let found = plugins.get_all("NetworkDriver").await.unwrap();
    let names: Vec<&str> = found.plugins.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["a"]);
}

#[tokio::test]
async fn concurrent_gets_of_one_plugin_share_one_activation() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[("/Plugin.Activate", manifest(&["NetworkDriver"]))]);
    let _server = TestPlugin::start(&tmp.path().join("run/p.sock"), script.clone());
    let plugins = Arc::new(plugins(&tmp, quick()));
    let gets: Vec<_> = (0..6)
        .map(|_| {
            let plugins = plugins.clone();
            tokio::spawn(async move { plugins.get("p", "NetworkDriver").await })
        })
        .collect();
    let mut activated = Vec::new();
    for get in gets {
        activated.push(get.await.unwrap().unwrap());
    }
    assert!(activated.iter().all(|p| Arc::ptr_eq(p, &activated[0])));
    assert_eq!(script.count("/Plugin.Activate"), 1);
}
