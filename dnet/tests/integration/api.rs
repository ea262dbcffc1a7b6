//! The API's answers: status codes and bodies for good and bad requests, against the running
//! daemon; a bad request changes nothing and the daemon survives it.

use dnet::client::{Client, Response};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Env, privileged_test};

/// A blocking helper around the async client.
pub(crate) struct Api {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Api {
    pub(crate) fn new(env: &Env) -> Self {
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            client: Client::new(env.socket()),
        }
    }

    /// Sends a request with a raw body; any status.
    pub(crate) fn raw(&mut self, method: Method, path: &str, body: Option<&str>) -> Response {
        let body = body.map(|b| b.as_bytes().to_vec());
        self.runtime
            .block_on(self.client.send(method, path, body))
            .expect("the daemon answers")
    }

    /// Sends a request with a JSON body; the status and the JSON answer (`null` if empty).
    pub(crate) fn json(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let text = body.map(|b| b.to_string());
        let r = self.raw(method, path, text.as_deref());
        let value = if r.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                panic!(
                    "{path}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&r.body)
                )
            })
        };
        (r.status, value)
    }

    /// Asserts an error answer: the status and a `message`.
    pub(crate) fn expect_error(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
        status: StatusCode,
    ) -> String {
        let r = self.raw(method.clone(), path, body);
        assert_eq!(
            r.status,
            status,
            "{method} {path} {body:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v: Value = serde_json::from_slice(&r.body).expect("an error body is JSON");
        let message = v["message"]
            .as_str()
            .expect("an error has a message")
            .to_owned();
        assert!(!message.is_empty());
        message
    }

    /// The networks' names and ids, sorted.
    pub(crate) fn networks(&mut self) -> Vec<(String, String)> {
        let (status, v) = self.json(Method::GET, "/networks", None);
        assert_eq!(status, StatusCode::OK);
        let mut out: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["Name"].as_str().unwrap().to_owned(),
                    n["Id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Whether the daemon still answers.
    pub(crate) fn alive(&mut self) -> bool {
        self.raw(Method::GET, "/_ping", None).status == StatusCode::OK
    }
}

#[test]
fn ping_and_version_negotiate_like_dockers() {
    privileged_test("ping_and_version_negotiate_like_dockers", || {
        let env = Env::new();
        let _daemon = env.start_daemon(&[]);
        let mut api = Api::new(&env);
        let ping = api.raw(Method::GET, "/_ping", None);
        assert_eq!(ping.status, StatusCode::OK);
        assert_eq!(&ping.body[..], b"OK");
        assert_eq!(ping.headers["api-version"], "1.44");
        assert_eq!(ping.headers["ostype"], "linux");
        let head = api.raw(Method::HEAD, "/_ping", None);
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        assert_eq!(head.headers["api-version"], "1.44");

        let (status, version) = api.json(Method::GET, "/v1.44/version", None);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(version["ApiVersion"], "1.44");
        assert_eq!(version["MinAPIVersion"], "1.24");
        assert_eq!(version["Os"], "linux");

        let (status, _) = api.json(Method::GET, "/v1.41/networks", None);
        assert_eq!(status, StatusCode::OK);
        let message = api.expect_error(
            Method::GET,
            "/v1.99/networks",
            None,
            StatusCode::BAD_REQUEST,
        );
        assert!(message.contains("too new"), "{message}");
        api.expect_error(
            Method::GET,
            "/v1.12/networks",
            None,
            StatusCode::BAD_REQUEST,
        );
        api.expect_error(Method::GET, "/containers/json", None, StatusCode::NOT_FOUND);
        let r = api.raw(Method::PUT, "/networks", None);
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    });
}

#[test]
fn network_creation_answers_with_dockers_status_codes_and_bad_requests_change_nothing() {
    privileged_test("network_creation_answers_with_dockers_status_codes", || {
        let env = Env::new();
        let _daemon = env.start_daemon(&[]);
        let mut api = Api::new(&env);

        let (status, created) = api.json(
            Method::POST,
            "/v1.44/networks/create",
            Some(json!({"Name": "n1", "Driver": "bridge", "CheckDuplicate": true,
                        "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.81.0.0/24", "Gateway": "10.81.0.254"}]},
                        "Labels": {"a": "b"}, "Options": null})),
        );
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["Warning"], "");
        let id = created["Id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 64);
        let before = api.networks();

        let bad: [(&str, StatusCode); 11] = [
            ("{\"Name\": \"x\",", StatusCode::BAD_REQUEST),
            ("", StatusCode::BAD_REQUEST),
            ("[1, 2]", StatusCode::BAD_REQUEST),
            (r#"{"Name": ""}"#, StatusCode::BAD_REQUEST),
            (r#"{"Name": "bad/name"}"#, StatusCode::BAD_REQUEST),
            (
                r#"{"Name": "x", "Driver": "nosuchdriver"}"#,
                StatusCode::NOT_FOUND,
            ),
            (
                r#"{"Name": "x", "IPAM": {"Config": [{"Subnet": "10.0.0.0/33"}]}}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                r#"{"Name": "x", "IPAM": {"Config": [{"Subnet": "10.0.0.0/24", "Gateway": "10.1.0.1"}]}}"#,
                StatusCode::BAD_REQUEST,
            ),
            (r#"{"Name": "n1"}"#, StatusCode::CONFLICT),
            (r#"{"Name": "host"}"#, StatusCode::FORBIDDEN),
            (
                r#"{"Name": "x", "Scope": "swarm"}"#,
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (body, status) in bad {
            api.expect_error(Method::POST, "/networks/create", Some(body), status);
            assert!(api.alive(), "the daemon died on {body}");
        }
        // An overlapping subnet is refused by the controller (IPAM): some 4xx.
        let r = api.raw(
            Method::POST,
            "/networks/create",
            Some(r#"{"Name": "x", "IPAM": {"Config": [{"Subnet": "10.81.0.0/24"}]}}"#),
        );
        assert!(
            r.status.is_client_error() || r.status == StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            r.status
        );
        assert_eq!(api.networks(), before, "bad requests changed the networks");

        // Inspect by name, id and id prefix.
        for key in ["n1", &id, &id[..8]] {
            let (status, net) = api.json(Method::GET, &format!("/networks/{key}"), None);
            assert_eq!(status, StatusCode::OK);
            assert_eq!(net["Id"], id);
            assert_eq!(net["IPAM"]["Config"][0]["Gateway"], "10.81.0.254");
            assert_eq!(net["Labels"]["a"], "b");
        }
        let message =
            api.expect_error(Method::GET, "/networks/nosuch", None, StatusCode::NOT_FOUND);
        assert_eq!(message, "network nosuch not found");

        // Filters.
        let (status, listed) = api.json(
            Method::GET,
            "/networks?filters=%7B%22name%22%3A%7B%22n1%22%3Atrue%7D%7D",
            None,
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed.as_array().unwrap().len(), 1);
        let (_, builtin) = api.json(
            Method::GET,
            "/networks?filters=%7B%22type%22%3A%5B%22builtin%22%5D%7D",
            None,
        );
        assert_eq!(builtin.as_array().unwrap().len(), 3);
        api.expect_error(
            Method::GET,
            "/networks?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
            None,
            StatusCode::BAD_REQUEST,
        );
        api.expect_error(
            Method::GET,
            "/networks?filters=notjson",
            None,
            StatusCode::BAD_REQUEST,
        );
    });
}

#[test]
fn removal_connection_and_prune_answer_with_dockers_status_codes() {
    privileged_test(
        "removal_connection_and_prune_answer_with_dockers_status_codes",
        || {
            let env = Env::new();
            let _daemon = env.start_daemon(&[]);
            let mut api = Api::new(&env);
            for name in ["n1", "n2", "n3"] {
                let (status, _) = api.json(
                    Method::POST,
                    "/networks/create",
                    Some(json!({"Name": name})),
                );
                assert_eq!(status, StatusCode::CREATED);
            }
            let (status, sandbox) = api.json(
                Method::POST,
                "/dnet/sandboxes",
                Some(json!({"Name": "c1", "Networks": [{"Network": "n1"}]})),
            );
            assert_eq!(status, StatusCode::CREATED, "{sandbox}");
            assert_eq!(sandbox["Endpoints"][0]["Network"], "n1");

            api.expect_error(
                Method::DELETE,
                "/networks/nosuch",
                None,
                StatusCode::NOT_FOUND,
            );
            for predefined in ["bridge", "host", "none"] {
                api.expect_error(
                    Method::DELETE,
                    &format!("/networks/{predefined}"),
                    None,
                    StatusCode::FORBIDDEN,
                );
            }
            let message =
                api.expect_error(Method::DELETE, "/networks/n1", None, StatusCode::FORBIDDEN);
            assert!(message.contains("active endpoints"), "{message}");

            // Connect and disconnect.
            api.expect_error(
                Method::POST,
                "/networks/n2/connect",
                Some(r#"{"Container": "nosuch"}"#),
                StatusCode::NOT_FOUND,
            );
            api.expect_error(
                Method::POST,
                "/networks/nosuch/connect",
                Some(r#"{"Container": "c1"}"#),
                StatusCode::NOT_FOUND,
            );
            api.expect_error(
                Method::POST,
                "/networks/n2/connect",
                Some("{"),
                StatusCode::BAD_REQUEST,
            );
            api.expect_error(
            Method::POST,
            "/networks/n2/connect",
            Some(r#"{"Container": "c1", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "banana"}}}"#),
            StatusCode::BAD_REQUEST,
        );
            let (status, _) = api.json(
            Method::POST,
            "/networks/n2/connect",
            Some(json!({"Container": "c1", "EndpointConfig": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": ""}}})),
        );
            assert_eq!(status, StatusCode::OK);
            api.expect_error(
                Method::POST,
                "/networks/n2/connect",
                Some(r#"{"Container": "c1"}"#),
                StatusCode::FORBIDDEN,
            );
            let (_, n2) = api.json(Method::GET, "/networks/n2", None);
            let containers = n2["Containers"].as_object().unwrap();
            assert_eq!(containers.len(), 1);
            let (key, ep) = containers.iter().next().unwrap();
            assert_eq!(key, sandbox["Id"].as_str().unwrap());
            assert_eq!(ep["Name"], "c1");
            assert!(ep["IPv4Address"].as_str().unwrap().contains('/'));
            let (status, _) = api.json(
                Method::POST,
                "/networks/n2/disconnect",
                Some(json!({"Container": "c1", "Force": false})),
            );
            assert_eq!(status, StatusCode::OK);
            api.expect_error(
                Method::POST,
                "/networks/n2/disconnect",
                Some(r#"{"Container": "c1"}"#),
                StatusCode::FORBIDDEN,
            );

            // Prune: n2 and n3 go; n1 (used) and the predefined networks stay.
            let (status, pruned) = api.json(Method::POST, "/networks/prune", None);
            assert_eq!(status, StatusCode::OK);
            let mut deleted: Vec<_> = pruned["NetworksDeleted"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            deleted.sort_unstable();
            assert_eq!(deleted, ["n2", "n3"]);
            let names: Vec<_> = api.networks().into_iter().map(|(n, _)| n).collect();
            assert_eq!(names, ["bridge", "host", "n1", "none"]);
            api.expect_error(
                Method::POST,
                "/networks/prune?filters=%7B%22until%22%3A%5B%22soon%22%5D%7D",
                None,
                StatusCode::BAD_REQUEST,
            );

            // Removing the sandbox frees n1.
            let r = api.raw(Method::DELETE, "/dnet/sandboxes/c1", None);
            assert_eq!(r.status, StatusCode::NO_CONTENT);
            let r = api.raw(Method::DELETE, "/networks/n1", None);
            assert_eq!(r.status, StatusCode::NO_CONTENT);
        },
    );
}

#[test]
fn bad_sandbox_requests_are_refused_and_change_nothing() {
    privileged_test(
        "bad_sandbox_requests_are_refused_and_change_nothing",
        || {
            let env = Env::new();
            let _daemon = env.start_daemon(&[]);
            let mut api = Api::new(&env);
            let (status, _) = api.json(
                Method::POST,
                "/networks/create",
                Some(json!({"Name": "n1", "IPAM": {"Config": [{"Subnet": "10.82.0.0/29"}]}})),
            );
            assert_eq!(status, StatusCode::CREATED);
            let (status, _) = api.json(
                Method::POST,
                "/dnet/sandboxes",
                Some(json!({"Name": "taken", "Networks": [{"Network": "n1"}]})),
            );
            assert_eq!(status, StatusCode::CREATED);

            let bad: [(&str, StatusCode); 9] = [
                ("{", StatusCode::BAD_REQUEST),
                (r#"{"Name": "a b"}"#, StatusCode::BAD_REQUEST),
                (
                    r#"{"Networks": [{"Network": "nosuch"}]}"#,
                    StatusCode::NOT_FOUND,
                ),
                (
                    r#"{"Networks": [{"Network": "n1"}, {"Network": "n1"}]}"#,
                    StatusCode::BAD_REQUEST,
                ),
                (
                    r#"{"Networks": [{"Network": "n1", "IPv4Address": "10.82.0.300"}]}"#,
                    StatusCode::BAD_REQUEST,
                ),
                (
                    r#"{"Ports": [{"HostPort": 80, "Port": 80, "Proto": "icmp"}]}"#,
                    StatusCode::BAD_REQUEST,
                ),
                (r#"{"DNS": ["nameserver"]}"#, StatusCode::BAD_REQUEST),
                (r#"{"Name": "taken"}"#, StatusCode::CONFLICT),
                (
                    r#"{"Networks": [{"Network": "host"}, {"Network": "n1"}]}"#,
                    StatusCode::BAD_REQUEST,
                ),
            ];
            for (body, status) in bad {
                api.expect_error(Method::POST, "/dnet/sandboxes", Some(body), status);
            }
            // A static address outside the subnet fails in the controller, after the sandbox was
            // made: everything is undone.
            let r = api.raw(
                Method::POST,
                "/dnet/sandboxes",
                Some(
                    r#"{"Name": "x", "Networks": [{"Network": "n1", "IPv4Address": "10.99.0.2"}]}"#,
                ),
            );
            assert!(r.status.is_client_error(), "{}", r.status);
            let (_, sandboxes) = api.json(Method::GET, "/dnet/sandboxes", None);
            let names: Vec<_> = sandboxes
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["Name"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(names, ["taken"]);
            let (_, n1) = api.json(Method::GET, "/networks/n1", None);
            assert_eq!(n1["Containers"].as_object().unwrap().len(), 1);
            let netns = std::fs::read_dir(env.run_dir().join("netns"))
                .unwrap()
                .count();
            assert_eq!(
                netns, 1,
                "only the sandbox that exists has a namespace file"
            );

            api.expect_error(
                Method::GET,
                "/dnet/sandboxes/nosuch",
                None,
                StatusCode::NOT_FOUND,
            );
            api.expect_error(
                Method::DELETE,
                "/dnet/sandboxes/nosuch",
                None,
                StatusCode::NOT_FOUND,
            );
            assert!(api.alive());
        },
    );
}

#[test]
fn a_request_completes_even_when_its_client_goes_away() {
    privileged_test("a_request_completes_even_when_its_client_goes_away", || {
        use std::io::Write;
        let env = Env::new();
        let _daemon = env.start_daemon(&[]);
        let mut api = Api::new(&env);
        let networks: Vec<Value> = (0..6)
            .map(|i| {
                let name = format!("n{i}");
                let (status, _) = api.json(
                    Method::POST,
                    "/networks/create",
                    Some(json!({"Name": name})),
                );
                assert_eq!(status, StatusCode::CREATED);
                json!({"Network": name})
            })
            .collect();

        // The client sends a long request (a sandbox on six networks) and hangs up once the
        // daemon has started on it: its namespace exists.
        let body = json!({"Name": "gone", "Networks": networks}).to_string();
        let mut stream = std::os::unix::net::UnixStream::connect(env.socket()).unwrap();
        write!(
            stream,
            "POST /dnet/sandboxes HTTP/1.1\r\nHost: dnet\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let started = std::time::Instant::now();
        while !std::fs::read_to_string(env.log())
            .unwrap()
            .contains("sandbox ready")
        {
            assert!(
                started.elapsed().as_secs() < 30,
                "the daemon did not start on the request"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        stream.shutdown(std::net::Shutdown::Both).unwrap();
        drop(stream);

        // The sandbox is finished all the same, with all its endpoints.
        loop {
            let (status, sandbox) = api.json(Method::GET, "/dnet/sandboxes/gone", None);
            if status == StatusCode::OK
                && sandbox["Endpoints"]
                    .as_array()
                    .is_some_and(|e| e.len() == 6)
            {
                break;
            }
            assert!(
                started.elapsed().as_secs() < 30,
                "the sandbox was not finished: {status} {sandbox}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
}
