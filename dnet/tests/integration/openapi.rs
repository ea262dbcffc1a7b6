//! The OpenAPI description (`dnet/openapi.json`) and the server agree: the same routes and
//! methods, and live answers carry the documented fields.

use std::collections::BTreeSet;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::Api;
use crate::harness::{Env, privileged_test};

fn document() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("read openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

#[test]
fn the_document_lists_exactly_the_routes_and_methods_served() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .map(move |m| (path.clone(), m.to_ascii_uppercase()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = dnet::api::route_table()
        .into_iter()
        .flat_map(|(path, methods)| {
            methods
                .into_iter()
                .map(move |m| (path.to_owned(), m.to_string()))
        })
        .collect();
    assert_eq!(documented, served);
}

/// Resolves a `$ref`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("local reference");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Checks `value` against `schema`: types, required fields, nested objects and arrays.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    let ok = match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        _ => true,
    };
    assert!(ok, "{at}: {value} is not of type {}", schema["type"]);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required {
            let field = field.as_str().unwrap();
            assert!(
                value.get(field).is_some(),
                "{at}: required field {field} missing in {value}"
            );
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (k, v) in obj {
            if let Some(s) = props.get(k) {
                validate(doc, s, v, &format!("{at}.{k}"));
            }
        }
    }
    if let (Some(extra), Some(obj)) = (schema.get("additionalProperties"), value.as_object())
        && extra.is_object()
    {
        for (k, v) in obj {
            validate(doc, extra, v, &format!("{at}[{k}]"));
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(doc, items, v, &format!("{at}[{i}]"));
        }
    }
}

/// Checks a live answer against the document's response for `path`, `method` and `status`.
fn check(doc: &Value, path: &str, method: &str, status: StatusCode, body: &Value) {
    let response = &doc["paths"][path][method]["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path}: status {status} is not documented"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema"
    );
    validate(doc, schema, body, &format!("{method} {path} {status}"));
}

#[test]
fn live_answers_carry_the_documented_fields() {
    privileged_test("live_answers_carry_the_documented_fields", || {
        let doc = document();
        let env = Env::new();
        let _daemon = env.start_daemon(&[]);
        let mut api = Api::new(&env);

        let (s, v) = api.json(
            Method::POST,
            "/networks/create",
            Some(json!({"Name": "n1"})),
        );
        check(&doc, "/networks/create", "post", s, &v);
        let (s, v) = api.json(
            Method::POST,
            "/networks/create",
            Some(json!({"Name": "n1"})),
        );
        check(&doc, "/networks/create", "post", s, &v);
        let (s, v) = api.json(
            Method::POST,
            "/networks/create",
            Some(json!({"Name": "x", "Driver": "nosuch"})),
        );
        check(&doc, "/networks/create", "post", s, &v);
        let (s, v) = api.json(
            Method::POST,
            "/dnet/sandboxes",
            Some(json!({"Name": "c1", "Networks": [{"Network": "n1"}], "Ports": [{"HostPort": 0, "Port": 80}]})),
        );
        check(&doc, "/dnet/sandboxes", "post", s, &v);
        assert_eq!(v["Ports"][0]["Port"], 80);
        let (s, v) = api.json(Method::GET, "/networks", None);
        check(&doc, "/networks", "get", s, &v);
        let (s, v) = api.json(Method::GET, "/networks/n1", None);
        check(&doc, "/networks/{id}", "get", s, &v);
        assert_eq!(v["Containers"].as_object().unwrap().len(), 1);
        let (s, v) = api.json(Method::GET, "/networks/nosuch", None);
        check(&doc, "/networks/{id}", "get", s, &v);
        let (s, v) = api.json(Method::DELETE, "/networks/bridge", None);
        check(&doc, "/networks/{id}", "delete", s, &v);
        let (s, v) = api.json(Method::GET, "/dnet/sandboxes", None);
        check(&doc, "/dnet/sandboxes", "get", s, &v);
        let (s, v) = api.json(Method::GET, "/dnet/sandboxes/c1", None);
        check(&doc, "/dnet/sandboxes/{id}", "get", s, &v);
        let (s, v) = api.json(Method::GET, "/version", None);
        check(&doc, "/version", "get", s, &v);
        let (s, v) = api.json(Method::POST, "/networks/prune", None);
        check(&doc, "/networks/prune", "post", s, &v);
        let (s, v) = api.json(
            Method::POST,
            "/networks/n1/disconnect",
            Some(json!({"Container": "nosuch"})),
        );
        check(&doc, "/networks/{id}/disconnect", "post", s, &v);
    });
}
