//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Ownership is tracked per manager in the FieldsV1 format: `f:<field>` for map fields and
//! `k:{...}` for entries of lists merged by key (`x-kubernetes-list-type: map`, or the merge
//! keys of built-in lists); other lists are owned whole (atomic). Apply merges the applied
//! configuration into the live object, removes fields its manager applied before and no longer
//! applies (unless another manager owns them), and refuses to take a leaf field another manager
//! owns and set to a different value unless `force=true`. Conflicts are only ever on leaves (a
//! scalar, an atomic list, an empty map, a keyed list item): two managers that set different
//! keys of one map share it, and identifying metadata (`name`, `namespace`, ...) belongs to no
//! one, so re-applying an unchanged manifest never conflicts.
//!
//! Approximation: sets of primitive values (`x-kubernetes-list-type: set`) are owned whole,
//! not per value (`v:` entries) as the real server does.

use serde_json::{Map, Value, json};

use super::errors::ApiError;
use super::resources::Resource;
use crate::clock::now_rfc3339;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Key(Map<String, Value>),
}

type Path = Vec<Step>;

/// Keep the stored managedFields on every write but apply (clients do not edit them).
pub fn carry_over(current: &Value, obj: &mut Value, is_apply: bool) {
    if is_apply {
        return;
    }
    match current["metadata"].get("managedFields") {
        Some(m) => obj["metadata"]["managedFields"] = m.clone(),
        None => {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        }
    }
}

/// Record an Update by `manager`: it now owns every leaf field that changed, and no one else does.
pub fn record_update(
    old: Option<&Value>,
    obj: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    sub: Option<&str>,
) {
    if operation == "Apply" && old.is_some() {
        return; // apply() already wrote its entry
    }
    let mut changed = Vec::new();
    diff_leaves(old.unwrap_or(&Value::Null), obj, &mut Vec::new(), &mut changed, None);
    if changed.is_empty() && old.is_some() {
        return;
    }
    let mut entries = entries_of(obj);
    for e in entries.iter_mut() {
        if e.manager != manager || e.operation != operation || e.sub.as_deref() != sub {
            for p in &changed {
                remove_path(&mut e.fields, p);
            }
        }
    }
    let entry = match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == operation && e.sub.as_deref() == sub)
    {
        Some(e) => e,
        None => {
            entries.push(Entry::new(manager, operation, api_version, sub));
            entries.last_mut().expect("just pushed")
        }
    };
    for p in &changed {
        insert_path(&mut entry.fields, p);
    }
    entry.time = now_rfc3339();
    entry.api_version = api_version.into();
    write_entries(obj, entries);
}

/// Server-side apply of `applied` by `manager` onto `current`.
pub fn apply(
    res: &Resource,
    current: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    sub: Option<&str>,
) -> Result<Value, ApiError> {
    let scope: Vec<&str> = if sub == Some("status") { vec!["status"] } else { Vec::new() };
    let keys = |path: &[String]| list_keys(res, path);
    let mut new_set = Map::new();
    fields_of(applied, &mut Vec::new(), &mut new_set, &keys, &scope);
    let mut leaves = Vec::new();
    leaves_of(&new_set, &mut Vec::new(), &mut leaves);

    let mut entries = entries_of(current);
    let mine = |e: &Entry| e.manager == manager && e.operation == "Apply" && e.sub.as_deref() == sub;
    // Conflicts: fields another manager owns, which this apply would set to another value.
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for e in entries.iter().filter(|e| !mine(e)) {
        for leaf in &leaves {
            if owns_leaf(&e.fields, leaf) && get_path(current, leaf) != get_path(applied, leaf) {
                conflicts.push((e.manager.clone(), render_path(leaf)));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let target = res.named(current["metadata"]["name"].as_str().unwrap_or(""));
        let gv = res.api_version();
        let msg = if conflicts.len() == 1 {
            format!("Apply failed with 1 conflict: conflict with \"{}\" using {gv}: {}", conflicts[0].0, conflicts[0].1)
        } else {
            let lines: Vec<String> =
                conflicts.iter().map(|(m, f)| format!("conflict with \"{m}\" using {gv}: {f}")).collect();
            format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
        };
        let causes = conflicts
            .iter()
            .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {gv}"), "field": f}))
            .collect();
        return Err(ApiError::conflict_message(&target, msg, causes));
    }
    // Taken fields (forced, or set to the same value) are now shared or moved.
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        for leaf in &leaves {
            if force && owns_leaf(&e.fields, leaf) && get_path(current, leaf) != get_path(applied, leaf) {
                remove_path(&mut e.fields, leaf);
            }
        }
    }
    let mut merged = current.clone();
    merge_apply(&mut merged, applied, &mut Vec::new(), &keys);
    // Fields this manager applied before and no longer applies go, unless someone else owns them.
    if let Some(prev) = entries.iter().find(|e| mine(e)) {
        let mut old_leaves = Vec::new();
        leaves_of(&prev.fields, &mut Vec::new(), &mut old_leaves);
        for leaf in old_leaves {
            let still = contains_path(&new_set, &leaf);
            let others = entries.iter().filter(|e| !mine(e)).any(|e| contains_path(&e.fields, &leaf));
            if !still && !others {
                delete_path(&mut merged, &leaf);
            }
        }
    }
    let entry_changed;
    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            entry_changed = e.fields != new_set;
            e.fields = new_set;
            if entry_changed {
                e.time = now_rfc3339();
            }
            e.api_version = res.api_version();
        }
        None => {
            let mut e = Entry::new(manager, "Apply", &res.api_version(), sub);
            e.fields = new_set;
            entries.push(e);
        }
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}

struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    sub: Option<String>,
    fields: Map<String, Value>,
}

impl Entry {
    fn new(manager: &str, operation: &str, api_version: &str, sub: Option<&str>) -> Self {
        Entry {
            manager: manager.into(),
            operation: operation.into(),
            api_version: api_version.into(),
            time: now_rfc3339(),
            sub: sub.map(String::from),
            fields: Map::new(),
        }
    }
}

fn entries_of(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or("").into(),
                    operation: e["operation"].as_str().unwrap_or("").into(),
                    api_version: e["apiVersion"].as_str().unwrap_or("").into(),
                    time: e["time"].as_str().unwrap_or("").into(),
                    sub: e["subresource"].as_str().map(String::from),
                    fields: e["fieldsV1"].as_object().cloned().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": e.fields});
            if let Some(s) = e.sub {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if list.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(list);
    }
}

/// Metadata fields that are the server's or identify the object: never owned.
const UNOWNED_META: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn skip_top(path: &[String], key: &str, scope: &[&str]) -> bool {
    if path.is_empty() {
        if key == "apiVersion" || key == "kind" {
            return true;
        }
        if !scope.is_empty() && !scope.contains(&key) {
            return true;
        }
    }
    path.len() == 1 && path[0] == "metadata" && UNOWNED_META.contains(&key)
}

fn fields_of(
    v: &Value,
    path: &mut Vec<String>,
    out: &mut Map<String, Value>,
    keys: &dyn Fn(&[String]) -> Option<Vec<String>>,
    scope: &[&str],
) {
    let Some(m) = v.as_object() else { return };
    for (k, child) in m {
        if skip_top(path, k, scope) {
            continue;
        }
        path.push(k.clone());
        let mut node = Map::new();
        match child {
            Value::Object(cm) if !cm.is_empty() => {
                fields_of(child, path, &mut node, keys, &[]);
                if node.is_empty() {
                    // Only fields no one owns (`metadata: {name: x}`): nothing of it is set.
                    path.pop();
                    continue;
                }
            }
            Value::Array(items) => {
                if let Some(key_names) = keys(path) {
                    for item in items {
                        let mut inner = Map::new();
                        inner.insert(".".into(), json!({}));
                        fields_of(item, path, &mut inner, keys, &[]);
                        node.insert(format!("k:{}", Value::Object(key_of(item, &key_names))), Value::Object(inner));
                    }
                }
            }
            _ => {}
        }
        path.pop();
        out.insert(format!("f:{k}"), Value::Object(node));
    }
}

fn key_of(item: &Value, names: &[String]) -> Map<String, Value> {
    names.iter().filter_map(|n| item.get(n).map(|v| (n.clone(), v.clone()))).collect()
}

/// Leaf paths of a field set: nodes with no children other than ".".
fn leaves_of(set: &Map<String, Value>, prefix: &mut Path, out: &mut Vec<Path>) {
    for (k, v) in set {
        if k == "." {
            continue;
        }
        let step = if let Some(f) = k.strip_prefix("f:") {
            Step::Field(f.into())
        } else if let Some(key) = k.strip_prefix("k:") {
            Step::Key(serde_json::from_str(key).unwrap_or_default())
        } else {
            continue;
        };
        prefix.push(step);
        let children = v.as_object().map(|c| c.keys().any(|x| x != ".")).unwrap_or(false);
        if children {
            leaves_of(v.as_object().expect("checked"), prefix, out);
        } else {
            out.push(prefix.clone());
        }
        prefix.pop();
    }
}

fn step_key(s: &Step) -> String {
    match s {
        Step::Field(f) => format!("f:{f}"),
        Step::Key(k) => format!("k:{}", Value::Object(k.clone())),
    }
}

fn contains_path(set: &Map<String, Value>, path: &Path) -> bool {
    let mut cur = set;
    for (i, s) in path.iter().enumerate() {
        match cur.get(&step_key(s)) {
            Some(Value::Object(next)) => {
                if i + 1 == path.len() {
                    return true;
                }
                if next.keys().all(|k| k == ".") {
                    return true; // an owned ancestor leaf (atomic) covers the path
                }
                cur = next;
            }
            _ => return false,
        }
    }
    false
}

/// Does the set own `path` as a leaf: the path itself with nothing below it, or an ancestor
/// owned whole (atomic)? A map that only contains other owned fields is not owned by this set.
fn owns_leaf(set: &Map<String, Value>, path: &Path) -> bool {
    let mut cur = set;
    for s in path {
        match cur.get(&step_key(s)) {
            Some(Value::Object(next)) if next.keys().all(|k| k == ".") => return true,
            Some(Value::Object(next)) => cur = next,
            _ => return false,
        }
    }
    false
}

fn insert_path(set: &mut Map<String, Value>, path: &Path) {
    let mut cur = set;
    for s in path {
        let next = cur.entry(step_key(s)).or_insert_with(|| json!({}));
        if !next.is_object() {
            *next = json!({});
        }
        cur = next.as_object_mut().expect("object");
    }
}

fn remove_path(set: &mut Map<String, Value>, path: &Path) {
    fn rec(cur: &mut Map<String, Value>, path: &[Step]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let k = step_key(first);
        if rest.is_empty() {
            cur.remove(&k);
            return;
        }
        if let Some(Value::Object(next)) = cur.get_mut(&k) {
            rec(next, rest);
            if next.is_empty() {
                cur.remove(&k);
            }
        }
    }
    rec(set, path);
}

fn get_path<'a>(obj: &'a Value, path: &Path) -> Option<&'a Value> {
    let mut cur = obj;
    for s in path {
        cur = match s {
            Step::Field(f) => cur.get(f)?,
            Step::Key(k) => cur.as_array()?.iter().find(|it| k.iter().all(|(kk, kv)| it.get(kk) == Some(kv)))?,
        };
    }
    Some(cur)
}

fn delete_path(obj: &mut Value, path: &Path) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for s in parent {
        cur = match s {
            Step::Field(f) => match cur.get_mut(f) {
                Some(c) => c,
                None => return,
            },
            Step::Key(k) => match cur
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|it| k.iter().all(|(kk, kv)| it.get(kk) == Some(kv))))
            {
                Some(c) => c,
                None => return,
            },
        };
    }
    match last {
        Step::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Step::Key(k) => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|it| !k.iter().all(|(kk, kv)| it.get(kk) == Some(kv)));
            }
        }
    }
}

fn render_path(path: &Path) -> String {
    path.iter()
        .map(|s| match s {
            Step::Field(f) => format!(".{f}"),
            Step::Key(k) => format!("[{}]", k.iter().map(|(a, b)| format!("{a}={b}")).collect::<Vec<_>>().join(",")),
        })
        .collect()
}

/// Merge maps recursively, lists with keys by key, everything else replaced.
fn merge_apply(
    live: &mut Value,
    applied: &Value,
    path: &mut Vec<String>,
    keys: &dyn Fn(&[String]) -> Option<Vec<String>>,
) {
    match (live.as_object_mut(), applied.as_object()) {
        (Some(l), Some(a)) => {
            for (k, v) in a {
                if path.len() == 1 && path[0] == "metadata" && UNOWNED_META.contains(&k.as_str()) && k != "name" {
                    continue;
                }
                path.push(k.clone());
                match l.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge_apply(existing, v, path, keys),
                    Some(existing) if existing.is_array() && v.is_array() && keys(path).is_some() => {
                        let names = keys(path).unwrap_or_default();
                        let arr = existing.as_array_mut().expect("array");
                        for item in v.as_array().expect("array") {
                            let k = key_of(item, &names);
                            match arr.iter_mut().find(|it| key_of(it, &names) == k) {
                                Some(slot) => merge_apply(slot, item, path, keys),
                                None => arr.push(item.clone()),
                            }
                        }
                    }
                    _ => {
                        l.insert(k.clone(), v.clone());
                    }
                }
                path.pop();
            }
        }
        _ => *live = applied.clone(),
    }
}

/// Keys of a list merged by key at `path`: from the CRD schema, or built-in merge keys.
fn list_keys(res: &Resource, path: &[String]) -> Option<Vec<String>> {
    if let Some(custom) = &res.custom {
        let mut s = &custom.schema;
        for p in path {
            s = if s["type"] == "array" { &s["items"]["properties"][p] } else { &s["properties"][p] };
        }
        if s["x-kubernetes-list-type"] == "map" {
            return s["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|k| k.iter().filter_map(|x| x.as_str().map(String::from)).collect());
        }
        return None;
    }
    let last = path.last()?.as_str();
    let key = match last {
        "containers" | "initContainers" | "env" | "volumes" | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "ports" if path.iter().any(|p| p == "containers" || p == "initContainers") => "containerPort",
        "ports" if res.kind == "Service" => "port",
        _ => return None,
    };
    Some(vec![key.to_string()])
}

/// Leaf fields that differ between two objects (added, changed or removed).
fn diff_leaves(old: &Value, new: &Value, path: &mut Path, out: &mut Vec<Path>, _scope: Option<&str>) {
    match (old.as_object(), new.as_object()) {
        (o, Some(n)) => {
            for (k, nv) in n {
                if path.is_empty() && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                if path.len() == 1 && path[0] == Step::Field("metadata".into()) && UNOWNED_META.contains(&k.as_str()) {
                    continue;
                }
                let ov = o.and_then(|o| o.get(k)).unwrap_or(&Value::Null);
                if ov == nv {
                    continue;
                }
                path.push(Step::Field(k.clone()));
                if nv.as_object().is_some_and(|m| !m.is_empty()) {
                    diff_leaves(ov, nv, path, out, None);
                } else {
                    out.push(path.clone());
                }
                path.pop();
            }
        }
        _ => {
            if old != new && !path.is_empty() {
                out.push(path.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Catalogue;
    use std::sync::Arc;

    fn res() -> Arc<Resource> {
        Catalogue::new(&[]).get("", "v1", "configmaps").unwrap()
    }

    #[test]
    fn apply_removes_fields_no_longer_applied_and_detects_conflicts() {
        let r = res();
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        let a1 =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let o1 = apply(&r, &live, &a1, "m1", false, None).unwrap();
        assert_eq!(o1["data"], json!({"a": "1", "b": "2"}));
        let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let o2 = apply(&r, &o1, &a2, "m1", false, None).unwrap();
        assert_eq!(o2["data"], json!({"a": "1"}));
        let a3 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "other"}});
        let err = apply(&r, &o2, &a3, "m2", false, None).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err.status["message"].as_str().unwrap().contains("conflict with \"m1\" using v1: .data.a"));
        let o3 = apply(&r, &o2, &a3, "m2", true, None).unwrap();
        assert_eq!(o3["data"]["a"], "other");
    }

    #[test]
    fn conflicts_are_only_on_leaves_another_manager_set_differently() {
        let r = res();
        let manifest = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"},
            "data": {"a": "1"}});
        let live = apply(&r, &json!({}), &manifest, "kubectl", false, None).unwrap();
        // Another manager adds labels and a data key with an update.
        let mut edited = live.clone();
        edited["metadata"]["labels"] = json!({"x": "1"});
        edited["metadata"]["finalizers"] = json!(["f"]);
        edited["data"]["b"] = json!("2");
        record_update(Some(&live), &mut edited, "operator", "Update", "v1", None);
        // Re-applying the unchanged manifest shares the object: no conflict, nothing lost.
        let again = apply(&r, &edited, &manifest, "kubectl", false, None).expect("no conflict");
        assert_eq!(again["metadata"]["labels"], json!({"x": "1"}));
        assert_eq!(again["data"], json!({"a": "1", "b": "2"}));
        // The same value for another's leaf is shared, a different one conflicts on that leaf.
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "1"}}});
        assert!(apply(&r, &edited, &same, "flux", false, None).is_ok());
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "2"}}});
        let err = apply(&r, &edited, &other, "flux", false, None).unwrap_err();
        let msg = err.status["message"].as_str().unwrap();
        assert!(msg.contains("conflict with \"operator\" using v1: .metadata.labels.x"), "{msg}");
    }
}
