//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch for
//! built-in kinds. Server-side apply lives in `managed.rs`.
//!
//! Approximation: the real server reads strategic-merge metadata (merge keys, patch strategies)
//! from the Go types; here it is a fixed table (`merge_key`, `is_primitive_set`) covering the
//! built-ins this server serves. A list not in the table is replaced whole, as an atomic list.

use serde_json::{Map, Value};

use super::errors::ApiError;
use super::resources::Resource;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Merge,
    Json,
    Strategic,
    Apply,
}

pub fn apply(kind: Kind, current: &Value, patch: &Value, res: &Resource) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match kind {
        Kind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal into Go value of type map[string]interface {}",
                ));
            }
            json_patch::merge(&mut doc, patch);
        }
        Kind::Json => {
            let ops = normalise_json_patch(&doc, patch)?;
            let ops: json_patch::Patch = serde_json::from_value(ops)
                .map_err(|e| ApiError::bad_request(format!("json: cannot unmarshal: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|_| {
                ApiError::invalid_plain("the server rejected our request due to an error in our request")
            })?;
        }
        Kind::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal into Go value of type map[string]interface {}",
                ));
            }
            strategic_merge(&mut doc, patch, &res.kind, "");
        }
        Kind::Apply => unreachable!("server-side apply is handled by managed::apply"),
    }
    Ok(doc)
}

/// go-jsonpatch treats `test` of a missing path against `null` as a success; kube-rs's
/// finalizer helper relies on it, so such ops are dropped before applying.
fn normalise_json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch"))?;
    let kept: Vec<Value> = ops
        .iter()
        .filter(|op| {
            !(op["op"] == "test" && op["value"].is_null() && doc.pointer(op["path"].as_str().unwrap_or("")).is_none())
        })
        .cloned()
        .collect();
    Ok(Value::Array(kept))
}

/// Merge keys of the lists that strategic merge patch merges rather than replaces.
fn merge_key(kind: &str, path: &str) -> Option<&'static str> {
    let tail = path.rsplit('.').next().unwrap_or(path);
    match (tail, path) {
        ("containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets", _) => {
            Some("name")
        }
        ("volumeMounts", _) => Some("mountPath"),
        ("ports", p) if p.ends_with("containers.ports") || p.contains("Containers.ports") => Some("containerPort"),
        ("ports", _) if kind == "Service" => Some("port"),
        ("conditions", _) => Some("type"),
        ("ownerReferences", _) => Some("uid"),
        ("hostAliases", _) => Some("ip"),
        ("secrets", _) if kind == "ServiceAccount" => Some("name"),
        _ => None,
    }
}

/// Lists of primitives merged as sets.
fn is_primitive_set(path: &str) -> bool {
    path == "metadata.finalizers"
}

fn strategic_merge(doc: &mut Value, patch: &Value, kind: &str, path: &str) {
    let (Some(target), Some(p)) = (doc.as_object_mut(), patch.as_object()) else {
        *doc = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = p.clone();
        replaced.remove("$patch");
        *target = replaced;
        return;
    }
    if let Some(retain) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    // The live order of each list the patch orders, taken before the merge changes it.
    let live_orders: Vec<(String, Vec<Value>, Vec<Value>)> = p
        .iter()
        .filter_map(|(k, order)| {
            let list = k.strip_prefix("$setElementOrder/")?;
            let live = target.get(list).and_then(Value::as_array).cloned().unwrap_or_default();
            Some((list.to_string(), order.as_array()?.clone(), live))
        })
        .collect();
    for (k, v) in p {
        if k == "$retainKeys" || k == "$patch" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(arr), Some(del)) = (target.get_mut(list).and_then(Value::as_array_mut), v.as_array()) {
                arr.retain(|x| !del.contains(x));
            }
            continue;
        }
        let child_path = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(_) => {
                let entry = target.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
                if entry.is_object() {
                    strategic_merge(entry, v, kind, &child_path);
                } else {
                    *entry = strip_directives(v);
                }
            }
            Value::Array(items) => {
                if let Some(key) = merge_key(kind, &child_path) {
                    let base = target.entry(k.clone()).or_insert_with(|| Value::Array(Vec::new()));
                    merge_list(base, items, key, kind, &child_path);
                } else if is_primitive_set(&child_path) {
                    let base = target.entry(k.clone()).or_insert_with(|| Value::Array(Vec::new()));
                    if let Some(arr) = base.as_array_mut() {
                        for item in items {
                            if !arr.contains(item) {
                                arr.push(item.clone());
                            }
                        }
                    }
                } else {
                    target.insert(k.clone(), Value::Array(items.iter().map(strip_directives).collect()));
                }
            }
            _ => {
                target.insert(k.clone(), v.clone());
            }
        }
    }
    for (list, order, live) in live_orders {
        let child_path = if path.is_empty() { list.clone() } else { format!("{path}.{list}") };
        let key = merge_key(kind, &child_path);
        if let Some(Value::Array(merged)) = target.get_mut(&list) {
            *merged = set_element_order(std::mem::take(merged), &order, &live, key);
        }
    }
}

fn merge_list(base: &mut Value, items: &[Value], key: &str, kind: &str, path: &str) {
    if !base.is_array() {
        *base = Value::Array(Vec::new());
    }
    let Some(arr) = base.as_array_mut() else {
        return;
    };
    for item in items {
        let k = item.get(key).cloned().unwrap_or(Value::Null);
        let pos = arr.iter().position(|x| x.get(key) == Some(&k));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                arr.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => strategic_merge(&mut arr[i], item, kind, path),
            None => arr.push(strip_directives(item)),
        }
    }
}

/// `$setElementOrder`, as the API server applies it: the items named in `order` take that order;
/// items only the server has keep their place relative to the live list, interleaved with the
/// ordered ones (apimachinery's normalizeElementOrder and mergeSortedSlice).
fn set_element_order(merged: Vec<Value>, order: &[Value], live: &[Value], key: Option<&str>) -> Vec<Value> {
    let id = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let position = |list: &[Value], v: &Value| list.iter().position(|x| id(x) == id(v));
    let (mut ordered, server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| position(order, v).is_some());
    ordered.sort_by_key(|v| position(order, v));
    let mut out = Vec::with_capacity(ordered.len() + server_only.len());
    let (mut left, mut right) = (server_only.into_iter().peekable(), ordered.into_iter().peekable());
    loop {
        match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                // A server-only item goes first only when the live list had it before the other.
                let first = matches!((position(live, l), position(live, r)), (Some(a), Some(b)) if a < b);
                out.extend(if first { left.next() } else { right.next() });
            }
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (None, None) => return out,
        }
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k.clone(), strip_directives(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_by_name_with_delete_directive() {
        let mut doc = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"image": "2", "name": "a"}, {"$patch": "delete", "name": "b"}]}}}});
        strategic_merge(&mut doc, &patch, "Deployment", "");
        assert_eq!(doc["spec"]["template"]["spec"]["containers"], json!([{"name": "a", "image": "2"}]));
    }

    #[test]
    fn set_element_order_keeps_server_only_items_in_their_live_place() {
        let names = |v: &Value| -> Vec<String> {
            v["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().into()).collect()
        };
        let mut doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}],
            "containers": [{"name": "c"}]}});
        strategic_merge(&mut doc, &patch, "Pod", "");
        assert_eq!(names(&doc), ["x", "b", "a", "c"]);
        // The directive alone reorders; applied to a list already in that order, it changes nothing.
        let before = doc.clone();
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}]}});
        strategic_merge(&mut doc, &patch, "Pod", "");
        assert_eq!(doc, before);
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]}});
        strategic_merge(&mut doc, &patch, "Pod", "");
        assert_eq!(names(&doc), ["x", "c", "b", "a"]);
    }

    #[test]
    fn json_patch_test_of_missing_path_against_null_passes() {
        let doc = json!({"metadata": {"name": "x"}});
        let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                           {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]);
        let ops = normalise_json_patch(&doc, &patch).unwrap();
        assert_eq!(ops.as_array().unwrap().len(), 1);
    }
}
