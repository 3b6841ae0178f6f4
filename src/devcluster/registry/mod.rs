//! The registry: the store and the resource catalogue behind every request, and the shared
//! steps of the write pipelines (create, update and patch, delete with its cascades), each in its
//! own module.

mod create;
mod delete;
mod update;

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use crate::builtin;
use crate::counters::Counters;
use crate::errors::{ApiError, Result};
use crate::faults::Faults;
use crate::pki::Pki;
use crate::rbac::{self, Authorizer};
use crate::request::{Reply, Req, ResourcePath};
use crate::resources::{Catalogue, Resource};
use crate::store::{self, Guard, Store};
use crate::table;
use crate::tokens::Tokens;

pub(crate) use create::{WriteOpts, parse_body};

pub struct ApiServer {
    pub(crate) store: Store,
    catalogue: RwLock<Arc<Catalogue>>,
    pub(crate) faults: Faults,
    pub(crate) counters: Counters,
    next_ip: AtomicU32,
    pub(crate) pki: Pki,
    pub(crate) tokens: Tokens,
    pub(crate) rbac: Authorizer,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    /// A new cluster: its CA and signing key, the namespaces and RBAC policy it starts with.
    pub fn new() -> Self {
        let state = ApiServer {
            store: Store::default(),
            catalogue: RwLock::new(Arc::new(Catalogue::new(&[]))),
            faults: Faults::default(),
            counters: Counters::default(),
            next_ip: AtomicU32::new(1),
            pki: Pki::new().expect("the cluster's certificates are made"),
            tokens: Tokens::new().expect("the token signing key is made"),
            rbac: Authorizer::default(),
        };
        {
            let mut g = state.store.lock();
            let opts = WriteOpts::default();
            let seed = |g: &mut Guard<'_>, plural: &str, group: &str, namespace: Option<&str>, obj: Value| {
                let res = state.resource(group, "v1", plural).expect("built in");
                let _ = state.create_locked(g, &res, namespace, obj, &opts);
            };
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                seed(
                    &mut g,
                    "namespaces",
                    "",
                    None,
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                );
            }
            for role in rbac::bootstrap::cluster_roles() {
                seed(&mut g, "clusterroles", rbac::GROUP, None, role);
            }
            for binding in rbac::bootstrap::cluster_role_bindings() {
                seed(&mut g, "clusterrolebindings", rbac::GROUP, None, binding);
            }
        }
        state
    }

    /// What follows a write of `res` in namespace `namespace`, as controllers would do it:
    /// CRDs change the catalogue, ClusterRoles the aggregated roles and the cached policy,
    /// objects in a namespace its quotas' usage.
    pub(crate) fn after_write(&self, g: &mut Guard<'_>, res: &Resource, namespace: Option<&str>) {
        match (res.group.as_str(), res.plural.as_str()) {
            ("apiextensions.k8s.io", "customresourcedefinitions") => self.refresh_catalogue(g),
            (rbac::GROUP, "clusterroles") => {
                rbac::aggregate::run(g);
                self.rbac.policy_changed();
            }
            (rbac::GROUP, "clusterrolebindings") => self.rbac.policy_changed(),
            _ => {}
        }
        if let Some(ns) = namespace {
            crate::quota::refresh(g, &self.catalogue(), res, ns);
        }
    }

    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn resource(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.catalogue().get(group, version, plural)
    }

    /// Rebuild routing and discovery from the stored CRDs (called after every CRD write).
    pub(crate) fn refresh_catalogue(&self, g: &Guard<'_>) {
        let crds: Vec<Arc<Value>> =
            g.collection("apiextensions.k8s.io/customresourcedefinitions").values().cloned().collect();
        *self.catalogue.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Catalogue::new(&crds));
    }

    // ----- reads -------------------------------------------------------------------------------

    pub(crate) fn get(&self, res: &Resource, t: &ResourcePath, name: &str, req: &Req) -> Result<Reply> {
        let obj = self.store.lock().get(&res.collection, &store::key(t.namespace.as_deref(), name));
        let obj = obj.ok_or_else(|| ApiError::not_found(&res.named(name)))?;
        if t.sub.as_deref() == Some("scale") {
            return Ok(Reply::ok(builtin::scale_of(&obj)));
        }
        let obj = builtin::view(res, &obj);
        if req.wants_table() {
            return Ok(Reply::ok(table::table(res, &[&obj], None, true)));
        }
        if req.wants_partial_metadata() {
            return Ok(Reply::ok(partial_metadata(&obj)));
        }
        Ok(Reply::ok(obj))
    }
}

pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

pub(crate) fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or("").to_string()
}

pub(crate) fn string_set(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// Empty finalizers, labels, annotations and ownerReferences are omitted, as the real server
/// does; kube-rs's finalizer helper depends on it.
pub(crate) fn strip_empty_metadata(obj: &mut Value) {
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.retain(|k, v| {
            let empty = match v {
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                Value::Null => true,
                Value::String(s) => s.is_empty() && k != "name",
                _ => false,
            };
            !empty
        });
    }
}
