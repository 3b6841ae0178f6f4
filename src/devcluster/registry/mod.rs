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
use crate::http::{Reply, Req, ResourcePath};
use crate::resources::{Catalogue, Resource};
use crate::store::{self, Guard, Store};
use crate::table;

pub(crate) use create::WriteOpts;

pub struct ApiServer {
    pub(crate) store: Store,
    catalogue: RwLock<Arc<Catalogue>>,
    pub(crate) faults: Faults,
    pub(crate) counters: Counters,
    next_ip: AtomicU32,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    pub fn new() -> Self {
        let state = ApiServer {
            store: Store::default(),
            catalogue: RwLock::new(Arc::new(Catalogue::new(&[]))),
            faults: Faults::default(),
            counters: Counters::default(),
            next_ip: AtomicU32::new(1),
        };
        {
            let mut g = state.store.lock();
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let res = state.resource("", "v1", "namespaces").expect("namespaces are built in");
                let _ = state.create_locked(&mut g, &res, None, obj, &WriteOpts::default());
            }
        }
        state
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
