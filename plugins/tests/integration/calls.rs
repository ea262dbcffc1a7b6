//! Calls: shapes on the wire, plugin errors, timeouts, garbage, dying plugins, reuse of
//! connections, TCP.

use std::time::Duration;

use libnetwork_plugins::{
    CallOptions, Client, ClientConfig, Discovery, Error, PluginAddr, Plugins, RetryPolicy,
};
use libnetwork_types::ErrorKind;
use serde::Deserialize;
use serde_json::json;

use crate::server::{Reply, Script, TestPlugin, raw_plugin};

const NET: CallOptions = CallOptions {
    error_field: Some("Err"),
    idempotent: false,
};

#[derive(Debug, Deserialize, PartialEq)]
struct Caps {
    #[serde(rename = "Scope")]
    scope: String,
}

fn client(socket: &std::path::Path) -> Client {
    let config = ClientConfig {
        retry: RetryPolicy::NONE,
        ..ClientConfig::default()
    };
    Client::new("test", PluginAddr::Unix(socket.to_path_buf()), config)
}

#[tokio::test]
async fn a_call_posts_json_to_the_method_path_and_decodes_the_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[(
        "/NetworkDriver.GetCapabilities",
        Reply::Json(200, json!({"Scope": "local", "Extra": 1})),
    )]);
    let server = TestPlugin::start(&tmp.path().join("p.sock"), script.clone());
    let client = client(&server.socket);

    let caps: Caps = client
        .call(
            "NetworkDriver.GetCapabilities",
            &json!({"NetworkID": "n1"}),
            NET,
        )
        .await
        .unwrap();
    assert_eq!(
        caps,
        Caps {
            scope: "local".into()
        }
    );
    let request = &script.log()[0];
    assert_eq!(request.path, "/NetworkDriver.GetCapabilities");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&request.body).unwrap(),
        json!({"NetworkID": "n1"})
    );
    assert_eq!(
        request.headers["content-type"],
        "application/vnd.docker.plugins.v1.2+json"
    );
}

#[tokio::test]
async fn the_plugins_error_message_is_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[
        ("/A", Reply::Json(200, json!({"Err": "network n1 is busy"}))),
        ("/B", Reply::Json(500, json!({"Err": "plugin exploded"}))),
        (
            "/C",
            Reply::Json(200, json!({"Err": "", "Scope": "global"})),
        ),
        ("/D", Reply::Json(200, json!({"Error": "pool exhausted"}))),
        (
            "/E",
            Reply::Json(200, json!({"Err": null, "Scope": "local"})),
        ),
    ]);
    let server = TestPlugin::start(&tmp.path().join("p.sock"), script);
    let client = client(&server.socket);

    let err = client.call::<Caps>("A", &json!({}), NET).await.unwrap_err();
    assert_eq!(err.to_string(), "network n1 is busy");
    assert!(matches!(err, Error::Plugin { status: 200, .. }));
    assert!(!err.outcome_unknown(), "the plugin said it failed");

    let err = client.call::<Caps>("B", &json!({}), NET).await.unwrap_err();
    assert_eq!(err.plugin_message(), Some("plugin exploded"));
    assert!(matches!(err, Error::Plugin { status: 500, .. }));

    // An empty or null message is success.
    let caps: Caps = client.call("C", &json!({}), NET).await.unwrap();
    assert_eq!(caps.scope, "global");
    let caps: Caps = client.call("E", &json!({}), NET).await.unwrap();
    assert_eq!(caps.scope, "local");

    // IPAM drivers answer in `Error`.
    let ipam = CallOptions {
        error_field: Some("Error"),
        idempotent: false,
    };
    let err = client
        .call::<serde_json::Value>("D", &json!({}), ipam)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "pool exhausted");
}

#[tokio::test]
async fn an_unknown_method_is_a_404_status_error() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestPlugin::start(&tmp.path().join("p.sock"), Script::new(&[]));
    let client = client(&server.socket);
    let err = client
        .call::<Caps>("NetworkDriver.Nope", &json!({}), NET)
        .await
        .unwrap_err();
    assert!(err.is_method_not_found(), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("http status 404"), "{err}");
    assert!(err.to_string().contains("404 page not found"), "{err}");
}

#[tokio::test]
async fn garbage_answers_are_invalid_responses_with_an_excerpt() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[
        ("/NotJson", Reply::Text(200, "<html>oops</html>")),
        ("/Empty", Reply::Text(200, "")),
        ("/Shape", Reply::Json(200, json!({"Scope": 5}))),
        ("/ErrType", Reply::Json(200, json!({"Err": ["x"]}))),
        (
            "/Html500",
            Reply::Text(500, "<h1>Internal Server Error</h1>"),
        ),
    ]);
    let server = TestPlugin::start(&tmp.path().join("p.sock"), script);
    let client = client(&server.socket);
    for (method, needle) in [
        ("NotJson", "not JSON"),
        ("Empty", "empty answer"),
        ("Shape", "unexpected shape"),
        ("ErrType", "Err is not a string"),
    ] {
        let err = client
            .call::<Caps>(method, &json!({}), NET)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidResponse { .. }),
            "{method}: {err}"
        );
        assert!(err.to_string().contains(needle), "{method}: {err}");
        assert!(err.outcome_unknown(), "{method}");
    }
    let err = client
        .call::<Caps>("Html500", &json!({}), NET)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 500, .. }), "{err}");
    assert!(err.to_string().contains("Internal Server Error"), "{err}");
    assert!(err.outcome_unknown());
}

#[tokio::test]
async fn answers_that_are_not_http_are_invalid_responses() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("raw.sock");
    let _server = raw_plugin(&socket, vec![Some(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")]);
    let err = client(&socket)
        .call::<Caps>("NetworkDriver.GetCapabilities", &json!({}), NET)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("not an HTTP answer"), "{err}");
}

#[tokio::test]
async fn an_answer_larger_than_the_limit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let big = "x".repeat(4096);
    let script = Script::new(&[("/Big", Reply::Json(200, json!({ "Scope": big })))]);
    let server = TestPlugin::start(&tmp.path().join("p.sock"), script);
    let config = ClientConfig {
        retry: RetryPolicy::NONE,
        max_response_bytes: 1024,
        ..ClientConfig::default()
    };
    let client = Client::new("big", PluginAddr::Unix(server.socket.clone()), config);
    let err = client
        .call::<Caps>("Big", &json!({}), NET)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("longer than 1024 bytes"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_plugin_that_does_not_answer_in_time_is_a_timeout_with_outcome_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[("/NetworkDriver.CreateNetwork", Reply::Hang)]);
    let server = TestPlugin::start(&tmp.path().join("p.sock"), script.clone());
    let err = client(&server.socket)
        .call::<serde_json::Value>("NetworkDriver.CreateNetwork", &json!({}), NET)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { timeout, .. } if timeout == Duration::from_secs(60)));
    assert!(err.outcome_unknown());
    assert!(
        err.to_string().contains("may or may not have acted"),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // The request reached the plugin once and was not repeated.
    assert_eq!(script.count("/NetworkDriver.CreateNetwork"), 1);
}

#[tokio::test]
async fn a_plugin_that_dies_mid_call_is_a_transport_error_and_the_call_is_not_repeated() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[("/NetworkDriver.CreateEndpoint", Reply::Hang)]);
    let server = TestPlugin::start(&tmp.path().join("p.sock"), script.clone());
    let client = client(&server.socket);

    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call::<serde_json::Value>("NetworkDriver.CreateEndpoint", &json!({}), NET)
                .await
        })
    };
    // Kill the plugin once it holds the request.
    while script.count("/NetworkDriver.CreateEndpoint") == 0 {
        tokio::task::yield_now().await;
    }
    server.kill().await;
    let err = call.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert!(err.outcome_unknown());
    assert_eq!(script.count("/NetworkDriver.CreateEndpoint"), 1);

    // A raw plugin that reads the request and hangs up is the same.
    let socket = tmp.path().join("raw.sock");
    let _raw = raw_plugin(&socket, vec![None, None]);
    let err = crate::calls::client(&socket)
        .call::<serde_json::Value>("NetworkDriver.CreateEndpoint", &json!({}), NET)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
}

#[tokio::test]
async fn connections_are_kept_alive_and_replaced_when_the_plugin_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("p.sock");
    let caps = Reply::Json(200, json!({"Scope": "local"}));
    let script = Script::new(&[("/Caps", caps.clone())]);
    let server = TestPlugin::start(&socket, script.clone());
    let client = client(&socket);
    for _ in 0..5 {
        let _: Caps = client.call("Caps", &json!({}), NET).await.unwrap();
    }
    assert_eq!(server.accepted(), 1, "one connection for sequential calls");

    // The plugin restarts; the idle connection is dead and is replaced transparently.
    server.kill().await;
    let restarted = TestPlugin::start(&socket, Script::new(&[("/Caps", caps)]));
    let _: Caps = client.call("Caps", &json!({}), NET).await.unwrap();
    assert_eq!(restarted.accepted(), 1);
}

#[tokio::test]
async fn concurrent_calls_use_separate_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(&[("/Caps", Reply::Json(200, json!({"Scope": "local"})))]);
    let server = TestPlugin::start(&tmp.path().join("p.sock"), script.clone());
    let client = client(&server.socket);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call::<Caps>("Caps", &json!({}), NET).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().scope, "local");
    }
    assert_eq!(script.count("/Caps"), 8);
    assert!(server.accepted() >= 1);
}

#[tokio::test]
async fn a_missing_socket_is_a_connect_error_and_nothing_was_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let err = client(&tmp.path().join("gone.sock"))
        .call::<Caps>("Caps", &json!({}), NET)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { attempts: 1, .. }), "{err}");
    assert!(!err.outcome_unknown());
}

#[tokio::test]
async fn tcp_plugins_found_by_spec_file_are_called_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = Script::new(&[
        (
            "/Plugin.Activate",
            Reply::Json(200, json!({"Implements": ["NetworkDriver"]})),
        ),
        ("/Caps", Reply::Json(200, json!({"Scope": "global"}))),
    ]);
    let router = axum::Router::new()
        .fallback(crate::server::handle_for_tests)
        .with_state(script.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
    std::fs::write(
        tmp.path().join("etc/remote.spec"),
        format!("tcp://127.0.0.1:{port}\n"),
    )
    .unwrap();
    let plugins = Plugins::new(
        Discovery::new([tmp.path().join("run")], [tmp.path().join("etc")]),
        ClientConfig::default(),
    );
    let plugin = plugins.get("remote", "NetworkDriver").await.unwrap();
    let caps: Caps = plugin.client().call("Caps", &json!({}), NET).await.unwrap();
    assert_eq!(caps.scope, "global");
    let log = script.log();
    assert_eq!(log[0].headers["host"], format!("127.0.0.1:{port}").as_str());
}
