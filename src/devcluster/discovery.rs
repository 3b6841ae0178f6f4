//! Discovery (aggregated and legacy) and OpenAPI v3 documents, derived from the catalogue.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::errors::ApiError;
use super::resources::{Catalogue, Resource};
use crate::request::Reply;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

pub fn discovery(cat: &Catalogue, path: &str, accept: &str) -> Reply {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let wants_aggregated =
        accept.split(',').next().is_some_and(|a| a.contains("as=APIGroupDiscoveryList") && a.contains("v=v2"));
    match parts.as_slice() {
        ["api"] if wants_aggregated => aggregated(cat, true),
        ["apis"] if wants_aggregated => aggregated(cat, false),
        ["api"] => ok(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})),
        ["api", "v1"] => ok(resource_list(cat, "", "v1")),
        ["apis"] => {
            let groups: Vec<Value> =
                cat.groups().iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| api_group(g, vs)).collect();
            ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["apis", g] => match cat.groups().iter().find(|(name, _)| name == g) {
            Some((g, vs)) => ok(api_group(g, vs)),
            None => ApiError::no_route().into(),
        },
        ["apis", g, v] if cat.groups().iter().any(|(name, vs)| name == g && vs.iter().any(|x| x == v)) => {
            ok(resource_list(cat, g, v))
        }
        _ => ApiError::no_route().into(),
    }
}

/// Reviews are create-only; everything else takes every verb.
fn verbs(r: &Resource) -> Vec<&'static str> {
    if r.review { vec!["create"] } else { VERBS.to_vec() }
}

fn ok(body: Value) -> Reply {
    Reply::Json { code: 200, body, headers: Vec::new() }
}

fn api_group(g: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": vs, "preferredVersion": vs[0]})
}

fn resource_list(cat: &Catalogue, g: &str, v: &str) -> Value {
    let mut resources = Vec::new();
    for r in cat.in_group_version(g, v) {
        let mut entry = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": verbs(r)});
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        if r.status {
            resources
                .push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.scale {
            resources
                .push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        if r.token {
            resources.push(json!({"name": format!("{}/token", r.plural), "singularName": "", "namespaced": true,
                "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"]}));
        }
    }
    let gv = if g.is_empty() { v.to_string() } else { format!("{g}/{v}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn aggregated(cat: &Catalogue, core: bool) -> Reply {
    let mut items = Vec::new();
    for (g, versions) in cat.groups() {
        if g.is_empty() != core {
            continue;
        }
        let vs: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = cat.in_group_version(g, v).map(|r| aggregated_resource(r)).collect();
                json!({"version": v, "freshness": "Current", "resources": resources})
            })
            .collect();
        items.push(json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs}));
    }
    let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items});
    Reply::Json { code: 200, body, headers: vec![("content-type", AGGREGATED.to_string())] }
}

fn aggregated_resource(r: &Resource) -> Value {
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut subs = Vec::new();
    if r.status {
        subs.push(json!({"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}));
    }
    if r.scale {
        subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]}));
    }
    if r.token {
        subs.push(json!({"subresource": "token", "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}, "verbs": ["create"]}));
    }
    let mut e = json!({"resource": r.plural, "responseKind": kind,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular, "verbs": verbs(r)});
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        e["subresources"] = json!(subs);
    }
    e
}

fn gv_path(g: &str, v: &str) -> String {
    if g.is_empty() { format!("api/{v}") } else { format!("apis/{g}/{v}") }
}

pub fn openapi_root(cat: &Catalogue) -> Reply {
    let mut paths = serde_json::Map::new();
    for (g, versions) in cat.groups() {
        for v in versions {
            let doc = gv_document(cat, g, v);
            let hash = hex_upper(&Sha256::digest(doc.to_string().as_bytes()));
            let p = gv_path(g, v);
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}));
        }
    }
    ok(json!({"paths": paths}))
}

pub fn openapi_doc(cat: &Catalogue, gv: &str) -> Reply {
    let parts: Vec<&str> = gv.split('/').collect();
    let (g, v) = match parts.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return ApiError::no_route().into(),
    };
    if !cat.groups().iter().any(|(name, vs)| name == g && vs.iter().any(|x| x == v)) {
        return ApiError::no_route().into();
    }
    ok(gv_document(cat, g, v))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

const API_VERSION_DESC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DESC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn schema_name(r: &Resource) -> String {
    let group = if r.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else {
        r.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{}", r.version, r.kind)
}

/// One group-version's document: a PATCH operation per resource (so kubectl and Helm see that
/// the server validates fields itself) and a schema per kind.
fn gv_document(cat: &Catalogue, g: &str, v: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for r in cat.in_group_version(g, v) {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let prefix = format!("/{}", gv_path(g, v));
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let patch_ref = json!({"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}});
        paths.insert(
            item,
            json!({"patch": {
            "operationId": format!("patch{}", r.kind), "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                {"name": "force", "in": "query", "schema": {"type": "boolean"}},
            ],
            "requestBody": {"content": {
                "application/json-patch+json": patch_ref, "application/merge-patch+json": patch_ref,
                "application/apply-patch+yaml": patch_ref}},
            "responses": {"200": {"description": "OK"}}}}),
        );
        // apiextensions-apiserver's OpenAPI builder gives every CRD the type and object metadata
        // of a Kubernetes object, with their standard descriptions (what `kubectl explain` shows).
        let type_meta = json!({
            "apiVersion": {"type": "string", "description": API_VERSION_DESC},
            "kind": {"type": "string", "description": KIND_DESC},
            "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}],
                         "description": METADATA_DESC},
        });
        let mut schema = match &r.custom {
            Some(c) => {
                let mut s = c.schema.clone();
                for (k, v) in type_meta.as_object().into_iter().flatten() {
                    s["properties"][k] = v.clone();
                }
                s
            }
            None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": type_meta}),
        };
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(schema_name(r), schema);
    }
    schemas.insert("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(), json!({"type": "object"}));
    schemas.insert("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(), json!({"type": "object", "properties": {
        "name": {"type": "string"}, "generateName": {"type": "string"}, "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "uid": {"type": "string"}, "resourceVersion": {"type": "string"}, "generation": {"type": "integer", "format": "int64"},
        "creationTimestamp": {"type": "string", "format": "date-time"},
        "deletionTimestamp": {"type": "string", "format": "date-time"},
        "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}));
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": paths,
           "components": {"schemas": schemas}})
}
