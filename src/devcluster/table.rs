//! Server-side printing: `meta.k8s.io/v1` Tables from a CRD version's additionalPrinterColumns
//! (apiextensions `tableconvertor.go`), and Name/Age for built-in kinds.

use serde_json::{Value, json};

use super::resources::Resource;

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

struct Column {
    name: String,
    kind: String,
    format: String,
    description: String,
    priority: i64,
    path: String,
}

fn columns(res: &Resource) -> Vec<Column> {
    let age = Column {
        name: "Age".into(),
        kind: "date".into(),
        format: String::new(),
        description: AGE_DESC.into(),
        priority: 0,
        path: ".metadata.creationTimestamp".into(),
    };
    let defined = res.custom.as_ref().map(|c| c.printer_columns.as_slice()).unwrap_or(&[]);
    if defined.is_empty() {
        return vec![age];
    }
    defined
        .iter()
        .map(|c| {
            let path = c["jsonPath"].as_str().unwrap_or("").to_string();
            Column {
                name: c["name"].as_str().unwrap_or("").into(),
                kind: c["type"].as_str().unwrap_or("string").into(),
                format: c["format"].as_str().unwrap_or("").into(),
                description: c["description"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| format!("Custom resource definition column (in JSONPath format): {path}")),
                priority: c["priority"].as_i64().unwrap_or(0),
                path,
            }
        })
        .collect()
}

pub fn table(res: &Resource, objects: &[&Value], meta: Option<Value>, with_headers: bool) -> Value {
    let cols = columns(res);
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut cells = vec![obj["metadata"]["name"].clone()];
            for c in &cols {
                cells.push(cell(c, obj, now));
            }
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}})
        })
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta.unwrap_or_else(|| json!({})), "rows": rows});
    if with_headers {
        let mut defs =
            vec![json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0})];
        defs.extend(cols.iter().map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})));
        t["columnDefinitions"] = Value::Array(defs);
    }
    t
}

fn cell(c: &Column, obj: &Value, now: jiff::Timestamp) -> Value {
    let found = jsonpath(obj, &c.path);
    let Some(v) = found.first() else {
        return Value::Null;
    };
    match c.kind.as_str() {
        "integer" => v.as_i64().map(Value::from).unwrap_or(Value::Null),
        "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::from).unwrap_or(Value::Null),
        "date" => match v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
            Some(t) => json!(human_age(now.as_second() - t.as_second())),
            None => json!("<invalid>"),
        },
        _ => {
            let parts: Vec<String> = found
                .iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            json!(parts.join(","))
        }
    }
}

/// A small JSONPath subset: `.a.b`, `.a[0]`, `.a[*].b` and `.a[?(@.k=="v")].b`.
pub fn jsonpath<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    let mut cur = vec![obj];
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            cur = cur.into_iter().filter_map(|v| v.get(name)).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Vec::new();
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            cur = cur
                .into_iter()
                .flat_map(|v| -> Vec<&Value> {
                    let Some(arr) = v.as_array() else {
                        return Vec::new();
                    };
                    if inner == "*" {
                        arr.iter().collect()
                    } else if let Ok(i) = inner.parse::<usize>() {
                        arr.get(i).into_iter().collect()
                    } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                        let Some((k, want)) = f.split_once("==") else {
                            return Vec::new();
                        };
                        let want = want.trim().trim_matches('"').trim_matches('\'');
                        arr.iter().filter(|it| it.get(k.trim()).and_then(Value::as_str) == Some(want)).collect()
                    } else {
                        Vec::new()
                    }
                })
                .collect();
        } else {
            return Vec::new();
        }
    }
    cur.into_iter().filter(|v| !v.is_null()).collect()
}

/// k8s.io/apimachinery `duration.HumanDuration`.
pub fn human_age(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 { format!("{m}m") } else { format!("{m}m{}s", s % 60) }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 { format!("{h}h") } else { format!("{h}h{}m", m % 60) }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 { format!("{d}d") } else { format!("{d}d{}h", h % 24) }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 { format!("{y}y") } else { format!("{y}y{}d", d % 365) }
    } else {
        format!("{}y", d / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_as_kubectl_prints_them() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(150), "2m30s");
        assert_eq!(human_age(900), "15m");
        assert_eq!(human_age(3 * 3600 + 120), "3h2m");
        assert_eq!(human_age(3 * 86400 + 3600), "3d1h");
    }

    #[test]
    fn jsonpath_subset() {
        let o =
            json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"), vec![&json!("True")]);
        assert_eq!(jsonpath(&o, ".status.conditions[0].type"), vec![&json!("A")]);
        assert!(jsonpath(&o, ".spec.x").is_empty());
    }
}
