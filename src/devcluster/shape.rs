//! Bodies in the shape of a Kubernetes object, checked before anything reads them: a JSON
//! object whose `apiVersion` and `kind` are strings and whose `metadata` has the types of
//! ObjectMeta. kube-apiserver decodes into Go structs and refuses anything else with 400; the
//! handlers here index JSON freely, so nothing reaches them unchecked.

use serde_json::Value;

use crate::errors::{ApiError, Result};
use crate::resources::Resource;

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Does a JSON value fit a Go type?
type Fits = fn(&Value) -> bool;

/// The Go type each ObjectMeta field decodes into, and whether a JSON value fits it.
fn meta_field(key: &str) -> Option<(&'static str, Fits)> {
    let string: Fits = |v| v.is_string();
    let strings_map: Fits = |v| v.as_object().is_some_and(|m| m.values().all(|x| x.is_string() || x.is_null()));
    let objects: Fits = |v| v.as_array().is_some_and(|a| a.iter().all(Value::is_object));
    Some(match key {
        "name" | "generateName" | "namespace" | "uid" | "resourceVersion" | "selfLink" => ("string", string),
        "creationTimestamp" | "deletionTimestamp" => ("v1.Time", string),
        "generation" | "deletionGracePeriodSeconds" => ("int64", |v| v.is_i64() || v.is_u64()),
        "labels" | "annotations" => ("map[string]string", strings_map),
        "finalizers" => ("[]string", |v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string))),
        "ownerReferences" => ("[]v1.OwnerReference", objects),
        "managedFields" => ("[]v1.ManagedFieldsEntry", |v| {
            v.as_array().is_some_and(|a| {
                a.iter().all(|e| e.is_object() && (e["fieldsV1"].is_null() || e["fieldsV1"].is_object()))
            })
        }),
        _ => return None,
    })
}

/// Refuse, as kube-apiserver's decoder would, a body that is not an object of `res`'s shape.
pub fn check(res: &Resource, body: &Value) -> Result<()> {
    let Some(top) = body.as_object() else {
        return Err(ApiError::bad_request(format!(
            r#"couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }}"#,
            json_type(body)
        )));
    };
    let cannot = |what: &str, v: &Value, go: &str| {
        ApiError::bad_request(format!(
            r#"{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal {} into Go struct field {what} of type {go}"#,
            json_type(v),
            kind = res.kind,
            version = res.version,
        ))
    };
    for key in ["apiVersion", "kind"] {
        if let Some(v) = top.get(key).filter(|v| !v.is_null() && !v.is_string()) {
            return Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go struct field .{key} of type string",
                json_type(v)
            )));
        }
    }
    match top.get("metadata") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(meta)) => {
            for (key, v) in meta {
                if v.is_null() {
                    continue;
                }
                if let Some((go, fits)) = meta_field(key)
                    && !fits(v)
                {
                    return Err(cannot(&format!("ObjectMeta.metadata.{key}"), v, go));
                }
            }
            Ok(())
        }
        Some(v) => Err(cannot(&format!("{}.metadata", res.kind), v, "v1.ObjectMeta")),
    }
}
