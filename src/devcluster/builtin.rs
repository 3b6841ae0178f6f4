//! What built-in kinds do on a real cluster that clients notice: defaults the API server fills
//! in, status that controllers would write at once (no pods ever run here), the two views of
//! Events, and the field labels each kind supports.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

use super::errors::FieldError;
use super::resources::Resource;
use crate::clock::now_rfc3339;

/// The object as served at `res`'s group/version.
pub fn view(res: &Resource, obj: &Value) -> Value {
    let mut out =
        if res.plural == "events" && res.group == "events.k8s.io" { core_to_events(obj) } else { obj.clone() };
    out["apiVersion"] = json!(res.api_version());
    out["kind"] = json!(res.kind);
    out
}

/// The object as stored: events.k8s.io Events are kept in their core/v1 form.
pub fn to_storage(res: &Resource, obj: Value) -> Value {
    if res.plural == "events" && res.group == "events.k8s.io" { events_to_core(&obj) } else { obj }
}

const EVENT_FIELDS: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn rename(obj: &Value, from_new: bool) -> Value {
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        for (new, core) in EVENT_FIELDS {
            let (from, to) = if from_new { (new, core) } else { (core, new) };
            if let Some(v) = m.remove(from) {
                m.insert(to.to_string(), v);
            }
        }
    }
    out
}

fn events_to_core(obj: &Value) -> Value {
    let mut out = rename(obj, true);
    out["apiVersion"] = json!("v1");
    if out.get("reportingInstance").is_none() {
        out["reportingInstance"] = json!("");
    }
    out
}

fn core_to_events(obj: &Value) -> Value {
    rename(obj, false)
}

/// The JSON path a field selector label reads, if `res` supports it.
pub fn field_label_path(res: &Resource, label: &str) -> Option<String> {
    if label == "metadata.name" || (label == "metadata.namespace" && res.namespaced) {
        return Some(label.into());
    }
    if let Some(custom) = &res.custom {
        return custom.selectable_fields.iter().find(|f| *f == label).cloned();
    }
    let ok = match (res.group.as_str(), res.plural.as_str()) {
        ("", "events") => {
            label.starts_with("involvedObject.") || ["reason", "reportingComponent", "source", "type"].contains(&label)
        }
        ("events.k8s.io", "events") => {
            let mapped = if let Some(rest) = label.strip_prefix("regarding.") {
                format!("involvedObject.{rest}")
            } else if label == "reportingController" {
                "reportingComponent".into()
            } else if ["reason", "type"].contains(&label) {
                label.into()
            } else {
                return None;
            };
            return Some(mapped);
        }
        ("", "secrets") => label == "type",
        ("", "namespaces") => label == "status.phase",
        ("", "pods") => {
            ["spec.nodeName", "status.phase", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName"]
                .contains(&label)
        }
        _ => false,
    };
    ok.then(|| label.to_string())
}

pub fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let labels = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| l.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","));
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": labels.unwrap_or_default()},
    })
}

/// Defaults and controller-written status for a new object.
pub fn on_create(res: &Resource, obj: &mut Value, next_ip: &AtomicU32) {
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => {
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "services") => {
            let spec = &mut obj["spec"];
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
            if spec["clusterIP"].is_null() && spec["type"] != "ExternalName" {
                let n = next_ip.fetch_add(1, Ordering::Relaxed);
                let ip = format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff);
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
            if spec["sessionAffinity"].is_null() {
                spec["sessionAffinity"] = json!("None");
            }
            default_service_ports(spec);
            obj["status"] = json!({"loadBalancer": {}});
        }
        ("", "secrets") => {
            merge_string_data(obj);
            if obj["type"].is_null() {
                obj["type"] = json!("Opaque");
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => crd_defaults(obj, None),
        // The defaults of k8s.io/kubernetes pkg/apis/{apps,batch,autoscaling}/*/defaults.go
        // that clients read back (no controller runs here: their status stays as created).
        ("apps", "statefulsets") => {
            let spec = &mut obj["spec"];
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
            obj["status"] = json!({"replicas": 0, "availableReplicas": 0});
        }
        ("apps", "daemonsets") => {
            let spec = &mut obj["spec"];
            default(spec, "revisionHistoryLimit", json!(10));
            let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}});
            default(spec, "updateStrategy", strategy);
            obj["status"] = json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0});
        }
        ("batch", "jobs") => {
            let spec = &mut obj["spec"];
            if spec["completions"].is_null() && spec["parallelism"].is_null() {
                spec["completions"] = json!(1);
            }
            default(spec, "parallelism", json!(1));
            default(spec, "backoffLimit", json!(6));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            default(spec, "manualSelector", json!(false));
            default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            obj["status"] = json!({});
        }
        ("batch", "cronjobs") => {
            let spec = &mut obj["spec"];
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            obj["status"] = json!({});
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            default(&mut obj["spec"], "minReplicas", json!(1));
            obj["status"] = json!({"currentMetrics": null, "desiredReplicas": 0});
        }
        _ => {}
    }
    simulate_status(res, obj);
}

fn default(spec: &mut Value, field: &str, value: Value) {
    if spec[field].is_null() {
        spec[field] = value;
    }
}

/// What survives or follows from an update.
pub fn on_update(res: &Resource, obj: &mut Value, old: &Value) {
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => {
            obj["spec"] = old["spec"].clone();
            if obj["status"]["phase"].is_null() {
                obj["status"] = old["status"].clone();
            }
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
        }
        ("", "services") => {
            for k in ["clusterIP", "clusterIPs"] {
                if obj["spec"][k].is_null() && !old["spec"][k].is_null() {
                    obj["spec"][k] = old["spec"][k].clone();
                }
            }
            if obj["spec"]["type"].is_null() {
                obj["spec"]["type"] = json!("ClusterIP");
            }
            if obj["spec"]["sessionAffinity"].is_null() {
                obj["spec"]["sessionAffinity"] = json!("None");
            }
            default_service_ports(&mut obj["spec"]);
        }
        ("", "secrets") => {
            merge_string_data(obj);
            if obj["type"].is_null() {
                obj["type"] = old["type"].clone();
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => crd_defaults(obj, Some(old)),
        ("apps", "deployments") | ("apps", "replicasets") => default_replicas(obj),
        _ => {}
    }
}

fn default_replicas(obj: &mut Value) {
    if obj["spec"]["replicas"].is_null() {
        obj["spec"]["replicas"] = json!(1);
    }
}

fn default_service_ports(spec: &mut Value) {
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            if p["protocol"].is_null() {
                p["protocol"] = json!("TCP");
            }
            if p["targetPort"].is_null() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
}

fn merge_string_data(obj: &mut Value) {
    use base64::Engine;
    if let Some(sd) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
        && let Some(sd) = sd.as_object()
    {
        for (k, v) in sd {
            let enc = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or(""));
            obj["data"][k] = json!(enc);
        }
    }
}

/// No controllers run here; write the status they would write at once, so waits succeed.
/// Called once the write's generation is settled, so observedGeneration matches it.
pub fn simulate_status(res: &Resource, obj: &mut Value) {
    match (res.group.as_str(), res.plural.as_str()) {
        ("apps", "deployments") | ("apps", "replicasets") => {
            default_replicas(obj);
            let n = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
            let mut status =
                json!({"observedGeneration": generation, "replicas": n, "readyReplicas": n, "availableReplicas": n});
            if res.plural == "deployments" {
                status["updatedReplicas"] = json!(n);
                let now = now_rfc3339();
                status["conditions"] = json!([
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now},
                ]);
                if let Some(old) = obj.get("status")
                    && old.get("observedGeneration") == status.get("observedGeneration")
                    && old.get("replicas") == status.get("replicas")
                {
                    return; // unchanged: keep the stored status (and its timestamps)
                }
            }
            obj["status"] = status;
        }
        ("policy", "poddisruptionbudgets") => {
            let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
            obj["status"] = json!({"observedGeneration": generation, "currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0});
        }
        _ => {}
    }
}

fn crd_defaults(obj: &mut Value, old: Option<&Value>) {
    let names = &mut obj["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    if names["singular"].is_null() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    if obj["spec"]["conversion"].is_null() {
        obj["spec"]["conversion"] = json!({"strategy": "None"});
    }
    let storage: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .map(|vs| vs.iter().filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect())
        .unwrap_or_default();
    let mut stored = old.and_then(|o| o["status"]["storedVersions"].as_array().cloned()).unwrap_or_default();
    for s in storage {
        if !stored.contains(&s) {
            stored.push(s);
        }
    }
    let now = now_rfc3339();
    let conditions = match old.and_then(|o| o["status"]["conditions"].as_array()) {
        Some(c) if !c.is_empty() => Value::Array(c.clone()),
        _ => json!([
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ]),
    };
    let mut accepted = obj["spec"]["names"].clone();
    if accepted["categories"].is_null()
        && let Some(m) = accepted.as_object_mut()
    {
        m.remove("categories");
    }
    obj["status"] = json!({"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored});
    if obj["metadata"]["deletionTimestamp"].is_string() {
        if let Some(c) = obj["status"]["conditions"].as_array_mut() {
            c.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress", "message": "CustomResourceDefinition marked for deletion; CR deletion in progress", "lastTransitionTime": now}));
        }
    }
}

/// Validation of built-in kinds beyond metadata: what clients of this server rely on.
pub fn validate(res: &Resource, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match (res.group.as_str(), res.plural.as_str()) {
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            if let Some(old) = old
                && old["roleRef"] != obj["roleRef"]
            {
                errs.push(FieldError::invalid("roleRef", &obj["roleRef"], "cannot change roleRef"));
            }
            if obj["roleRef"]["name"].as_str().unwrap_or("").is_empty() {
                errs.push(FieldError::required("roleRef.name", ""));
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => errs.extend(validate_crd(obj, old)),
        ("batch", "jobs") | ("batch", "cronjobs") => {
            let (template, path) = match res.plural.as_str() {
                "jobs" => (&obj["spec"]["template"], "spec.template.spec.restartPolicy"),
                _ => (
                    &obj["spec"]["jobTemplate"]["spec"]["template"],
                    "spec.jobTemplate.spec.template.spec.restartPolicy",
                ),
            };
            let policy = &template["spec"]["restartPolicy"];
            if !matches!(policy.as_str(), Some("OnFailure" | "Never")) {
                errs.push(match policy.is_null() {
                    true => FieldError::required(path, "valid values: \"OnFailure\", \"Never\""),
                    false => FieldError::not_supported(path, policy, &[json!("OnFailure"), json!("Never")]),
                });
            }
            if res.plural == "cronjobs" && obj["spec"]["schedule"].as_str().is_none_or(str::is_empty) {
                errs.push(FieldError::required("spec.schedule", ""));
            }
        }
        ("apps", "statefulsets" | "daemonsets") if obj["spec"]["selector"].is_null() => {
            errs.push(FieldError::required("spec.selector", ""));
        }
        _ => {}
    }
    errs
}

fn validate_crd(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid("spec.group", &json!(group), "should be a domain with at least one dot"));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    }
    if spec["names"]["kind"].as_str().unwrap_or("").is_empty() {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid("metadata.name", &json!(name), "must be spec.names.plural+\".\"+spec.group"));
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        _ => {
            errs.push(FieldError::not_supported("spec.scope", &spec["scope"], &[json!("Cluster"), json!("Namespaced")]))
        }
    }
    if let Some(old) = old {
        if old["spec"]["scope"] != spec["scope"] {
            errs.push(FieldError::invalid("spec.scope", &spec["scope"], "field is immutable"));
        }
        if old["spec"]["group"] != spec["group"] {
            errs.push(FieldError::invalid("spec.group", &spec["group"], "field is immutable"));
        }
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required("spec.versions", "must have exactly one version marked as storage version"));
    }
    let storage = versions.iter().filter(|v| v["storage"] == true).count();
    if !versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let schema = &v["schema"]["openAPIV3Schema"];
        if !schema.is_object() {
            errs.push(FieldError::required(
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
            continue;
        }
        if schema["type"] != "object" {
            errs.push(FieldError::invalid(
                &format!("spec.versions[{i}].schema.openAPIV3Schema.type"),
                &schema["type"],
                "must be object at the root",
            ));
        }
        errs.extend(super::admission::structural_errors(schema, &format!("spec.versions[{i}].schema.openAPIV3Schema")));
        if let Some(fields) = v["selectableFields"].as_array()
            && fields.len() > 8
        {
            errs.push(FieldError::too_many(&format!("spec.versions[{i}].selectableFields"), fields.len(), 8));
        }
    }
    errs
}
