//! Server-side printing: `meta.k8s.io/v1` Tables from a CRD version's additionalPrinterColumns
//! (apiextensions `tableconvertor.go`), and for built-in kinds the columns of kube-apiserver's
//! printers (`pkg/printers/internalversion`) for the kinds listed in `builtin_columns`; other
//! built-in kinds get the default convertor's Name and Created At. As the real server, every
//! column is sent, wide ones (priority 1) too; kubectl hides those without `-o wide`.

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
    cell: Cell,
}

enum Cell {
    /// A CRD printer column: a JSONPath rendered by the column's type.
    Path(String),
    /// A built-in printer's cell, computed from the object and the time now.
    Computed(fn(&Value, jiff::Timestamp) -> Value),
}

fn name_column(priority: i64) -> Column {
    Column {
        name: "Name".into(),
        kind: "string".into(),
        format: "name".into(),
        description: NAME_DESC.into(),
        priority,
        cell: Cell::Computed(|o, _| o["metadata"]["name"].clone()),
    }
}

fn columns(res: &Resource) -> Vec<Column> {
    let mut all = match (res.group.as_str(), res.plural.as_str()) {
        // Events are the one printer whose name comes last, and only wide.
        ("" | "events.k8s.io", "events") => Vec::new(),
        _ => vec![name_column(0)],
    };
    all.extend(match &res.custom {
        Some(_) => custom_columns(res),
        None => builtin_columns(res),
    });
    all
}

fn custom_columns(res: &Resource) -> Vec<Column> {
    let Some(custom) = &res.custom else { return Vec::new() };
    let defined = custom.printer_columns.as_slice();
    if defined.is_empty() {
        let age = Column {
            name: "Age".into(),
            kind: "date".into(),
            format: String::new(),
            description: AGE_DESC.into(),
            priority: 0,
            cell: Cell::Path(".metadata.creationTimestamp".into()),
        };
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
                cell: Cell::Path(path),
            }
        })
        .collect()
}

fn computed(name: &str, description: &str, priority: i64, cell: fn(&Value, jiff::Timestamp) -> Value) -> Column {
    Column {
        name: name.into(),
        kind: "string".into(),
        format: String::new(),
        description: description.into(),
        priority,
        cell: Cell::Computed(cell),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// The age of a timestamp, as `translateTimestampSince` prints it.
fn age_of(ts: &Value, now: jiff::Timestamp) -> Option<String> {
    let t = ts.as_str()?.parse::<jiff::Timestamp>().ok()?;
    Some(human_age(now.as_second() - t.as_second()))
}

fn age(obj: &Value, now: jiff::Timestamp) -> Value {
    json!(age_of(&obj["metadata"]["creationTimestamp"], now).unwrap_or_else(|| "<unknown>".into()))
}

/// The columns of kube-apiserver's printer for a built-in kind (`Name` comes first anyway).
fn builtin_columns(res: &Resource) -> Vec<Column> {
    let age_col = || computed("Age", AGE_DESC, 0, age);
    let by_kind: Vec<Column> = match (res.group.as_str(), res.plural.as_str()) {
        ("" | "events.k8s.io", "events") => vec![
            computed("Last Seen", "Time when this Event was last observed.", 0, |o, now| {
                json!(event_last_seen(o, now))
            }),
            computed("Type", "Type of this event (Normal, Warning).", 0, |o, _| json!(text(&o["type"]))),
            computed("Reason", "The reason this event was generated.", 0, |o, _| json!(text(&o["reason"]))),
            computed("Object", "The object that this event is about.", 0, |o, _| json!(event_object(o))),
            computed("Subobject", "The field of the object this event is about.", 1, |o, _| {
                json!(text(&event_regarding(o)["fieldPath"]))
            }),
            computed("Source", "The component reporting this event.", 1, |o, _| json!(event_source(o))),
            computed("Message", "A human-readable description of the status of this operation.", 0, |o, _| {
                json!(text(first_of(o, &["message", "note"])).trim())
            }),
            computed("First Seen", "The time at which the event was first recorded.", 1, |o, now| {
                json!(event_first_seen(o, now))
            }),
            computed("Count", "The number of times this event has occurred.", 1, |o, _| json!(event_count(o))),
            name_column(1),
        ],
        ("", "namespaces") => vec![
            computed("Status", "The status of the namespace", 0, |o, _| json!(text(&o["status"]["phase"]))),
            age_col(),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            computed(
                "Role",
                "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
                0,
                |o, _| json!(format!("{}/{}", text(&o["roleRef"]["kind"]), text(&o["roleRef"]["name"]))),
            ),
            age_col(),
            computed("Users", "Users in the binding", 1, |o, _| json!(subjects(o, "User"))),
            computed("Groups", "Groups in the binding", 1, |o, _| json!(subjects(o, "Group"))),
            computed("ServiceAccounts", "ServiceAccounts in the binding", 1, |o, _| {
                json!(subjects(o, "ServiceAccount"))
            }),
        ],
        ("", "resourcequotas") => vec![
            computed(
                "Request",
                "Request represents a minimum amount of cpu/memory that a container may consume.",
                0,
                |o, _| json!(quota_usage(o, false)),
            ),
            computed(
                "Limit",
                "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                0,
                |o, _| json!(quota_usage(o, true)),
            ),
            age_col(),
        ],
        ("", "serviceaccounts") => vec![
            computed(
                "Secrets",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                0,
                |o, _| json!(o["secrets"].as_array().map(Vec::len).unwrap_or(0)),
            ),
            age_col(),
        ],
        ("networking.k8s.io", "networkpolicies") => vec![
            computed("Pod-Selector", "Selects the pods to which this NetworkPolicy object applies.", 0, |o, _| {
                json!(crate::selectors::format_label_selector(&o["spec"]["podSelector"]))
            }),
            age_col(),
        ],
        ("coordination.k8s.io", "leases") => vec![
            computed("Holder", "holderIdentity contains the identity of the holder of a current lease.", 0, |o, _| {
                json!(text(&o["spec"]["holderIdentity"]))
            }),
            age_col(),
        ],
        ("", "configmaps") => vec![
            computed("Data", "Data contains the configuration data.", 0, |o, _| {
                let n = |k: &str| o[k].as_object().map(|m| m.len()).unwrap_or(0);
                json!(n("data") + n("binaryData"))
            }),
            age_col(),
        ],
        ("", "secrets") => vec![
            computed("Type", "Used to facilitate programmatic handling of secret data.", 0, |o, _| {
                json!(text(&o["type"]))
            }),
            computed("Data", "Data contains the secret data.", 0, |o, _| {
                json!(o["data"].as_object().map(|m| m.len()).unwrap_or(0))
            }),
            age_col(),
        ],
        ("", "pods") => vec![
            computed("Ready", "The aggregate readiness state of this pod for accepting traffic.", 0, |o, _| {
                let total = o["spec"]["containers"].as_array().map(Vec::len).unwrap_or(0);
                let ready = (o["status"]["containerStatuses"].as_array().into_iter().flatten())
                    .filter(|c| c["ready"] == true && c["state"].get("running").is_some())
                    .count();
                json!(format!("{ready}/{total}"))
            }),
            computed("Status", "The aggregate status of the containers in this pod.", 0, |o, _| {
                let phase = text(first_of(&o["status"], &["reason", "phase"]));
                json!(if o["metadata"].get("deletionTimestamp").is_some() { "Terminating".into() } else { phase })
            }),
            computed("Restarts", "The number of times the containers in this pod have been restarted.", 0, |o, _| {
                let n: i64 = (o["status"]["containerStatuses"].as_array().into_iter().flatten())
                    .filter_map(|c| c["restartCount"].as_i64())
                    .sum();
                json!(n.to_string())
            }),
            age_col(),
        ],
        // The default convertor (roles, clusterroles, limitranges and kinds without a printer).
        _ => vec![Column {
            name: "Created At".into(),
            kind: "date".into(),
            format: String::new(),
            description: AGE_DESC.into(),
            priority: 0,
            cell: Cell::Computed(|o, _| o["metadata"]["creationTimestamp"].clone()),
        }],
    };
    by_kind
}

fn first_of<'a>(o: &'a Value, keys: &[&str]) -> &'a Value {
    keys.iter().map(|k| &o[*k]).find(|v| !v.is_null() && v.as_str() != Some("")).unwrap_or(&Value::Null)
}

fn event_regarding(o: &Value) -> &Value {
    first_of(o, &["involvedObject", "regarding"])
}

/// `kind/name` of the object, the kind lower-cased.
fn event_object(o: &Value) -> String {
    let r = event_regarding(o);
    let kind = text(&r["kind"]).to_lowercase();
    match r["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    }
}

fn event_source(o: &Value) -> String {
    let source = first_of(o, &["source", "deprecatedSource"]);
    let component = source["component"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from)
        .unwrap_or_else(|| text(&o["reportingController"]));
    let host = source["host"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from)
        .unwrap_or_else(|| text(&o["reportingInstance"]));
    if host.is_empty() { component } else { format!("{component}, {host}") }
}

fn event_first_seen(o: &Value, now: jiff::Timestamp) -> String {
    let first = first_of(o, &["firstTimestamp", "deprecatedFirstTimestamp", "eventTime"]);
    age_of(first, now).unwrap_or_else(|| "<unknown>".into())
}

fn event_last_seen(o: &Value, now: jiff::Timestamp) -> String {
    if let Some(series) = age_of(&o["series"]["lastObservedTime"], now) {
        return series;
    }
    match age_of(first_of(o, &["lastTimestamp", "deprecatedLastTimestamp"]), now) {
        Some(last) => last,
        None => event_first_seen(o, now),
    }
}

fn event_count(o: &Value) -> i64 {
    o["series"]["count"]
        .as_i64()
        .or_else(|| first_of(o, &["count", "deprecatedCount"]).as_i64())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// The subjects of one kind, as `rbac.SubjectsStrings` lists them (`namespace/name` for
/// ServiceAccounts), joined by ", ".
fn subjects(o: &Value, kind: &str) -> String {
    (o["subjects"].as_array().into_iter().flatten())
        .filter(|s| s["kind"] == kind)
        .map(|s| {
            if kind == "ServiceAccount" {
                format!("{}/{}", text(&s["namespace"]), text(&s["name"]))
            } else {
                text(&s["name"])
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `key: used/hard` for each key of the quota's status, sorted; `limits.*` keys in the Limit
/// column, every other key in Request.
fn quota_usage(o: &Value, limits: bool) -> String {
    let Some(hard) = o["status"]["hard"].as_object() else { return String::new() };
    let mut keys: Vec<&String> = hard.keys().collect();
    keys.sort();
    keys.into_iter()
        .filter(|k| (k.split('.').next() == Some("limits") && k.contains('.')) == limits)
        .map(|k| {
            let used = o["status"]["used"][k.as_str()].as_str().unwrap_or("0");
            format!("{k}: {used}/{}", text(&hard[k.as_str()]))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn table(res: &Resource, objects: &[&Value], meta: Option<Value>, with_headers: bool) -> Value {
    let cols = columns(res);
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(c, obj, now)).collect();
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}})
        })
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta.unwrap_or_else(|| json!({})), "rows": rows});
    if with_headers {
        let defs: Vec<Value> = cols.iter().map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})).collect();
        t["columnDefinitions"] = Value::Array(defs);
    }
    t
}

fn cell(c: &Column, obj: &Value, now: jiff::Timestamp) -> Value {
    let path = match &c.cell {
        Cell::Computed(f) => return f(obj, now),
        Cell::Path(p) => p,
    };
    let found = jsonpath(obj, path);
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
