//! Hostile bytes: every malformed body, on every write path of a built-in kind and of a custom
//! resource, gets an answer (a Status below 500), never a dropped connection or a crash.

use devcluster::testkit::Cluster;
use serde_json::{Value, json};

use crate::widgets::{WIDGET_CRD, widget};

/// Bodies of every wrong shape: not an object, metadata of the wrong type, each ObjectMeta
/// field of the wrong type, spec and status of the wrong type.
fn fragments() -> Vec<Value> {
    let mut out = vec![json!([]), json!("x"), json!(1), json!(null), json!(true), json!({})];
    for metadata in [json!("x"), json!([]), json!(1), json!(null), json!(true)] {
        out.push(json!({ "metadata": metadata }));
    }
    for (field, value) in [
        ("name", json!(1)),
        ("name", json!([])),
        ("namespace", json!(1)),
        ("generateName", json!({})),
        ("labels", json!([])),
        ("labels", json!("x")),
        ("labels", json!({"a": 1})),
        ("labels", json!({"a": {"b": "c"}})),
        ("annotations", json!("x")),
        ("annotations", json!({"a": []})),
        ("resourceVersion", json!(5)),
        ("resourceVersion", json!({})),
        ("uid", json!(7)),
        ("generation", json!("x")),
        ("creationTimestamp", json!(1)),
        ("deletionTimestamp", json!([])),
        ("finalizers", json!("x")),
        ("finalizers", json!([1])),
        ("finalizers", json!({})),
        ("ownerReferences", json!({})),
        ("ownerReferences", json!([1])),
        ("managedFields", json!({})),
        ("managedFields", json!([1])),
        ("managedFields", json!([{"manager": "x", "fieldsV1": []}])),
        ("managedFields", json!([{"manager": 1, "fieldsV1": {"f:data": 1}}])),
    ] {
        out.push(json!({ "metadata": { field: value } }));
    }
    for (key, value) in [
        ("apiVersion", json!(1)),
        ("kind", json!([])),
        ("spec", json!("x")),
        ("spec", json!([])),
        ("spec", json!({"size": "big", "tags": "x"})),
        ("status", json!("x")),
        ("status", json!([])),
        ("data", json!([])),
        ("data", json!({"a": 1})),
    ] {
        out.push(json!({ key: value }));
    }
    out
}

/// A valid object of the kind with one of the fragment's top-level fields put over it.
fn over(valid: &Value, fragment: &Value) -> Value {
    let mut v = valid.clone();
    if let Some(f) = fragment.as_object() {
        for (k, x) in f {
            if k == "metadata" && x.is_object() {
                for (mk, mv) in x.as_object().into_iter().flatten() {
                    v["metadata"][mk] = mv.clone();
                }
            } else {
                v[k] = x.clone();
            }
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_malformed_write_goes_unanswered() {
    let c = Cluster::start();
    c.apply(WIDGET_CRD);
    c.ok(&["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=10s"]);
    c.ok(&["create", "namespace", "h"]);
    c.ok(&["create", "configmap", "c", "-n", "h", "--from-literal=k=v"]);
    c.apply(&widget("w", "h", 1, "red", &[]));
    let client = c.server.client();
    let kinds = [
        (
            "/api/v1/namespaces/h/configmaps",
            "c",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        ),
        (
            "/apis/example.com/v1/namespaces/h/widgets",
            "w",
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}),
        ),
    ];
    let mut sent = 0;
    let mut failures = Vec::new();
    for (collection, name, valid) in &kinds {
        let item = format!("{collection}/{name}");
        for fragment in fragments() {
            let bodies = [fragment.clone(), over(valid, &fragment)];
            for body in &bodies {
                let text = body.to_string();
                let json_patches = [
                    body.clone(),
                    json!([{"op": "add", "path": "/metadata", "value": body}]),
                    json!([{"op": "replace", "path": "", "value": body}]),
                    json!([{"op": "add", "path": "/metadata/labels", "value": body}]),
                    json!([{"op": "test", "path": "/metadata/name", "value": body}]),
                    json!([{"op": "move", "from": "/metadata", "path": "/spec"}]),
                ];
                let mut requests: Vec<(&str, String, &str, String)> = vec![
                    ("POST", collection.to_string(), "application/json", text.clone()),
                    ("PUT", item.clone(), "application/json", text.clone()),
                    ("PUT", format!("{item}/status"), "application/json", text.clone()),
                    ("PATCH", item.clone(), "application/merge-patch+json", text.clone()),
                    ("PATCH", format!("{item}/status"), "application/merge-patch+json", text.clone()),
                    ("PATCH", item.clone(), "application/strategic-merge-patch+json", text.clone()),
                    ("PATCH", format!("{item}?fieldManager=fuzz"), "application/apply-patch+yaml", text.clone()),
                    ("PATCH", format!("{item}/status?fieldManager=fuzz"), "application/apply-patch+yaml", text.clone()),
                    ("DELETE", format!("{collection}/nothing-here"), "application/json", text.clone()),
                    (
                        "POST",
                        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews".into(),
                        "application/json",
                        text.clone(),
                    ),
                    (
                        "POST",
                        "/api/v1/namespaces/h/serviceaccounts/default/token".into(),
                        "application/json",
                        text.clone(),
                    ),
                ];
                for p in &json_patches {
                    requests.push(("PATCH", item.clone(), "application/json-patch+json", p.to_string()));
                }
                for (method, path, content_type, body) in requests {
                    let request = http::Request::builder()
                        .method(method)
                        .uri(&path)
                        .header("content-type", content_type)
                        .body(body.clone().into_bytes())
                        .expect("a request");
                    sent += 1;
                    match client.request_text(request).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code < 500 => {}
                        Err(e) => failures.push(format!("{method} {path} {content_type} {body}: {e}")),
                    }
                }
            }
        }
    }
    assert!(sent > 700, "{sent} requests");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests went unanswered or failed inside:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // And the server still serves.
    c.ok(&["get", "configmaps,widgets", "-n", "h"]);
}

#[test]
fn a_malformed_body_is_refused_with_the_decoders_words() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "h"]);
    let out = c.with_stdin(&["create", "--raw", "/api/v1/namespaces/h/configmaps", "-f", "-"], r#"{"metadata": "x"}"#);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal string into Go struct field ConfigMap.metadata of type v1.ObjectMeta"#),
        "{err}"
    );
    let out = c.with_stdin(&["create", "--raw", "/api/v1/namespaces/h/configmaps", "-f", "-"], "[]");
    assert!(String::from_utf8_lossy(&out.stderr).contains("couldn't get version/kind; json parse error"));
}
