//! Protobuf request bodies. Helm v4 (client-go typed clients) writes release Secrets and
//! DeleteOptions as protobuf, and kubectl's imperative `create` generators do too; answers go
//! out as JSON, which both accept.

use base64::Engine;
use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use super::errors::ApiError;
use super::resources::Resource;

const MAGIC: &[u8] = b"k8s\0";

fn unwrap_envelope(body: &[u8]) -> Result<Unknown, ApiError> {
    let raw = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| ApiError::bad_request("provided protobuf is not a Kubernetes envelope"))?;
    Unknown::decode(raw).map_err(|e| ApiError::bad_request(format!("unable to decode protobuf: {e}")))
}

fn bad(e: prost::DecodeError) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf: {e}"))
}

/// Decode an object body for `res` into its JSON form.
pub fn decode_object(body: &[u8], res: &Resource) -> Result<Value, ApiError> {
    let env = unwrap_envelope(body)?;
    let raw = env.raw.unwrap_or_default();
    let mut obj = match (res.group.as_str(), res.kind.as_str()) {
        ("", "Secret") => {
            let s = core::Secret::decode(raw.as_slice()).map_err(bad)?;
            let mut o = json!({"metadata": object_meta(s.metadata)});
            if !s.data.is_empty() {
                let data: Map<String, Value> = s
                    .data
                    .into_iter()
                    .map(|(k, v)| (k, json!(base64::engine::general_purpose::STANDARD.encode(v))))
                    .collect();
                o["data"] = Value::Object(data);
            }
            if !s.string_data.is_empty() {
                o["stringData"] = json!(s.string_data);
            }
            if let Some(t) = s.r#type {
                o["type"] = json!(t);
            }
            if let Some(i) = s.immutable {
                o["immutable"] = json!(i);
            }
            o
        }
        ("", "ConfigMap") => {
            let c = core::ConfigMap::decode(raw.as_slice()).map_err(bad)?;
            let mut o = json!({"metadata": object_meta(c.metadata)});
            if !c.data.is_empty() {
                o["data"] = json!(c.data);
            }
            if !c.binary_data.is_empty() {
                let data: Map<String, Value> = c
                    .binary_data
                    .into_iter()
                    .map(|(k, v)| (k, json!(base64::engine::general_purpose::STANDARD.encode(v))))
                    .collect();
                o["binaryData"] = Value::Object(data);
            }
            if let Some(i) = c.immutable {
                o["immutable"] = json!(i);
            }
            o
        }
        ("", "Namespace") => {
            let n = core::Namespace::decode(raw.as_slice()).map_err(bad)?;
            json!({"metadata": object_meta(n.metadata)})
        }
        ("", "ServiceAccount") => {
            let s = core::ServiceAccount::decode(raw.as_slice()).map_err(bad)?;
            let mut o = json!({"metadata": object_meta(s.metadata)});
            if let Some(a) = s.automount_service_account_token {
                o["automountServiceAccountToken"] = json!(a);
            }
            o
        }
        // `kubectl create quota`: hard limits and scopes (a scope selector is not generated).
        ("", "ResourceQuota") => {
            let q = core::ResourceQuota::decode(raw.as_slice()).map_err(bad)?;
            let spec = q.spec.unwrap_or_default();
            let hard: Map<String, Value> =
                spec.hard.into_iter().map(|(k, v)| (k, json!(v.string.unwrap_or_default()))).collect();
            let mut o = json!({"metadata": object_meta(q.metadata), "spec": {}});
            if !hard.is_empty() {
                o["spec"]["hard"] = Value::Object(hard);
            }
            if !spec.scopes.is_empty() {
                o["spec"]["scopes"] = json!(spec.scopes);
            }
            o
        }
        ("rbac.authorization.k8s.io", "Role") => {
            let r = rbac::Role::decode(raw.as_slice()).map_err(bad)?;
            json!({"metadata": object_meta(r.metadata), "rules": rules(r.rules)})
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            let r = rbac::ClusterRole::decode(raw.as_slice()).map_err(bad)?;
            let mut o = json!({"metadata": object_meta(r.metadata), "rules": rules(r.rules)});
            if let Some(a) = r.aggregation_rule {
                let selectors: Vec<Value> =
                    a.cluster_role_selectors.into_iter().map(|s| json!({"matchLabels": s.match_labels})).collect();
                o["aggregationRule"] = json!({"clusterRoleSelectors": selectors});
            }
            o
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            let b = rbac::RoleBinding::decode(raw.as_slice()).map_err(bad)?;
            json!({"metadata": object_meta(b.metadata), "subjects": subjects(b.subjects), "roleRef": role_ref(b.role_ref)})
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            let b = rbac::ClusterRoleBinding::decode(raw.as_slice()).map_err(bad)?;
            json!({"metadata": object_meta(b.metadata), "subjects": subjects(b.subjects), "roleRef": role_ref(b.role_ref)})
        }
        ("authorization.k8s.io", "SelfSubjectAccessReview") => {
            let r = authz::SelfSubjectAccessReview::decode(raw.as_slice()).map_err(bad)?;
            let spec = r.spec.unwrap_or_default();
            json!({"metadata": object_meta(r.metadata), "spec": access_spec(spec.resource_attributes, spec.non_resource_attributes)})
        }
        ("authorization.k8s.io", "SubjectAccessReview" | "LocalSubjectAccessReview") => {
            let (metadata, spec) = if res.kind == "SubjectAccessReview" {
                let r = authz::SubjectAccessReview::decode(raw.as_slice()).map_err(bad)?;
                (r.metadata, r.spec.unwrap_or_default())
            } else {
                let r = authz::LocalSubjectAccessReview::decode(raw.as_slice()).map_err(bad)?;
                (r.metadata, r.spec.unwrap_or_default())
            };
            let mut s = access_spec(spec.resource_attributes, spec.non_resource_attributes);
            s["user"] = json!(spec.user.unwrap_or_default());
            s["groups"] = json!(spec.groups);
            s["uid"] = json!(spec.uid.unwrap_or_default());
            let extra: Map<String, Value> = spec.extra.into_iter().map(|(k, v)| (k, json!(v.items))).collect();
            s["extra"] = Value::Object(extra);
            json!({"metadata": object_meta(metadata), "spec": s})
        }
        ("authorization.k8s.io", "SelfSubjectRulesReview") => {
            let r = authz::SelfSubjectRulesReview::decode(raw.as_slice()).map_err(bad)?;
            let ns = r.spec.and_then(|s| s.namespace).unwrap_or_default();
            json!({"metadata": object_meta(r.metadata), "spec": {"namespace": ns}})
        }
        ("authentication.k8s.io", "SelfSubjectReview") => {
            let r = authn::SelfSubjectReview::decode(raw.as_slice()).map_err(bad)?;
            json!({"metadata": object_meta(r.metadata)})
        }
        ("authentication.k8s.io", "TokenReview") => {
            let r = authn::TokenReview::decode(raw.as_slice()).map_err(bad)?;
            let spec = r.spec.unwrap_or_default();
            json!({"metadata": object_meta(r.metadata), "spec": {"token": spec.token.unwrap_or_default(), "audiences": spec.audiences}})
        }
        _ => {
            return Err(ApiError::unsupported_media("application/json, application/yaml"));
        }
    };
    obj["apiVersion"] = json!(res.api_version());
    obj["kind"] = json!(res.kind);
    Ok(obj)
}

/// A TokenRequest body (`kubectl create token` sends it as protobuf).
pub fn decode_token_request(body: &[u8]) -> Result<Value, ApiError> {
    let env = unwrap_envelope(body)?;
    let r = authn::TokenRequest::decode(env.raw.unwrap_or_default().as_slice()).map_err(bad)?;
    let spec = r.spec.unwrap_or_default();
    let mut s = json!({"audiences": spec.audiences});
    if let Some(e) = spec.expiration_seconds {
        s["expirationSeconds"] = json!(e);
    }
    if let Some(b) = spec.bound_object_ref {
        s["boundObjectRef"] = json!({"kind": b.kind, "apiVersion": b.api_version, "name": b.name, "uid": b.u_id});
    }
    Ok(
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": object_meta(r.metadata), "spec": s}),
    )
}

fn rules(rules: Vec<rbac::PolicyRule>) -> Value {
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|r| {
            let mut o = json!({"verbs": r.verbs});
            for (k, v) in [
                ("apiGroups", r.api_groups),
                ("resources", r.resources),
                ("resourceNames", r.resource_names),
                ("nonResourceURLs", r.non_resource_ur_ls),
            ] {
                if !v.is_empty() {
                    o[k] = json!(v);
                }
            }
            o
        })
        .collect();
    Value::Array(rules)
}

fn subjects(subjects: Vec<rbac::Subject>) -> Value {
    let subjects: Vec<Value> = subjects
        .into_iter()
        .map(|s| {
            let mut o = json!({"kind": s.kind, "name": s.name});
            if let Some(g) = s.api_group.filter(|g| !g.is_empty()) {
                o["apiGroup"] = json!(g);
            }
            if let Some(n) = s.namespace.filter(|n| !n.is_empty()) {
                o["namespace"] = json!(n);
            }
            o
        })
        .collect();
    Value::Array(subjects)
}

fn role_ref(r: Option<rbac::RoleRef>) -> Value {
    let r = r.unwrap_or_default();
    json!({"apiGroup": r.api_group, "kind": r.kind, "name": r.name})
}

fn access_spec(
    resource: Option<authz::ResourceAttributes>,
    non_resource: Option<authz::NonResourceAttributes>,
) -> Value {
    let mut s = json!({});
    if let Some(r) = resource {
        s["resourceAttributes"] = json!({"namespace": r.namespace, "verb": r.verb, "group": r.group, "version": r.version,
            "resource": r.resource, "subresource": r.subresource, "name": r.name});
    }
    if let Some(n) = non_resource {
        s["nonResourceAttributes"] = json!({"path": n.path, "verb": n.verb});
    }
    s
}

pub fn decode_delete_options(body: &[u8]) -> Result<Value, ApiError> {
    let env = unwrap_envelope(body)?;
    let d = meta::DeleteOptions::decode(env.raw.unwrap_or_default().as_slice()).map_err(bad)?;
    let mut o = json!({});
    if let Some(p) = d.propagation_policy {
        o["propagationPolicy"] = json!(p);
    }
    if let Some(g) = d.grace_period_seconds {
        o["gracePeriodSeconds"] = json!(g);
    }
    if !d.dry_run.is_empty() {
        o["dryRun"] = json!(d.dry_run);
    }
    if let Some(p) = d.preconditions {
        if let Some(uid) = p.uid {
            o["preconditions"]["uid"] = json!(uid);
        }
        if let Some(rv) = p.resource_version {
            o["preconditions"]["resourceVersion"] = json!(rv);
        }
    }
    Ok(o)
}

fn object_meta(m: Option<meta::ObjectMeta>) -> Value {
    let Some(m) = m else { return json!({}) };
    let mut o = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            o.insert(k.into(), json!(v));
        }
    };
    put("name", m.name);
    put("generateName", m.generate_name);
    put("namespace", m.namespace);
    put("uid", m.uid);
    put("resourceVersion", m.resource_version);
    if !m.labels.is_empty() {
        o.insert("labels".into(), json!(m.labels));
    }
    if !m.annotations.is_empty() {
        o.insert("annotations".into(), json!(m.annotations));
    }
    if !m.finalizers.is_empty() {
        o.insert("finalizers".into(), json!(m.finalizers));
    }
    if !m.owner_references.is_empty() {
        let refs: Vec<Value> = m
            .owner_references
            .into_iter()
            .map(|r| {
                json!({"apiVersion": r.api_version, "kind": r.kind, "name": r.name, "uid": r.uid,
                       "controller": r.controller, "blockOwnerDeletion": r.block_owner_deletion})
            })
            .collect();
        o.insert("ownerReferences".into(), Value::Array(refs));
    }
    Value::Object(o)
}
