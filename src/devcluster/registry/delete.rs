//! Delete: preconditions, finalizers, and the cascades of namespaces and CRDs (their contents
//! go first; the container goes when it is empty and unfinalized).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::now_rfc3339;
use crate::errors::{ApiError, Result};
use crate::registry::create::parse_body;
use crate::registry::{ApiServer, name_of, string_set};
use crate::request::{Reply, Req, ResourcePath};
use crate::resources::Resource;
use crate::selection::Selection;
use crate::store::{self, Bounds, Guard};
use crate::{builtin, protobuf};

impl ApiServer {
    pub(crate) fn delete(&self, res: &Arc<Resource>, t: &ResourcePath, name: &str, req: &Req) -> Result<Reply> {
        let opts = delete_options(req)?;
        let mut g = self.store.lock();
        let key = store::key(t.namespace.as_deref(), name);
        let current = g.get(&res.collection, &key).ok_or_else(|| ApiError::not_found(&res.named(name)))?;
        if let Some(uid) = opts["preconditions"]["uid"].as_str()
            && uid != current["metadata"]["uid"]
        {
            return Err(ApiError::conflict_message(
                &res.named(name),
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    current["metadata"]["uid"].as_str().unwrap_or("")
                ),
                vec![],
            ));
        }
        if let Some(rv) = opts["preconditions"]["resourceVersion"].as_str()
            && rv != current["metadata"]["resourceVersion"]
        {
            return Err(ApiError::conflict(&res.named(name)));
        }
        let dry_run = req.dry_run() || opts["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
        let obj = self.delete_locked(&mut g, res, &key, &current, dry_run);
        drop(g);
        Ok(Reply::ok(builtin::view(res, &obj)))
    }

    /// Delete one object: mark it when finalizers (or namespace content) hold it, else remove it.
    pub(crate) fn delete_locked(
        &self,
        g: &mut Guard<'_>,
        res: &Arc<Resource>,
        key: &Arc<str>,
        current: &Arc<Value>,
        dry_run: bool,
    ) -> Value {
        let is_namespace = res.plural == "namespaces";
        let is_crd = res.plural == "customresourcedefinitions";
        let held = !string_set(&current["metadata"]["finalizers"]).is_empty() || is_namespace || is_crd;
        if dry_run {
            return (**current).clone();
        }
        if held {
            if current["metadata"].get("deletionTimestamp").is_some() {
                return (**current).clone();
            }
            let mut obj = (**current).clone();
            obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if is_namespace {
                obj["status"]["phase"] = json!("Terminating");
            }
            let rv = g.next_rv();
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let stored = Arc::new(obj);
            g.put(&res.collection, key.clone(), stored.clone(), rv);
            if is_namespace || is_crd {
                self.cascade(g, res, &stored);
            }
            return (*stored).clone();
        }
        let mut obj = (**current).clone();
        let rv = g.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Arc::new(obj);
        g.remove(&res.collection, key, stored.clone(), rv);
        self.after_removal(g, res, &stored);
        (*stored).clone()
    }

    /// Namespace and CRD deletion: delete what they contain; they go once it is all gone.
    fn cascade(&self, g: &mut Guard<'_>, res: &Arc<Resource>, owner: &Arc<Value>) {
        let cat = self.catalogue();
        let victims: Vec<(Arc<Resource>, Arc<str>)> = if res.plural == "namespaces" {
            let ns = name_of(owner);
            g.keys_in_namespace(&ns)
                .into_iter()
                .filter_map(|(coll, key)| cat.by_collection(&coll).map(|r| (r, key)))
                .collect()
        } else {
            let group = owner["spec"]["group"].as_str().unwrap_or("");
            let plural = owner["spec"]["names"]["plural"].as_str().unwrap_or("");
            let coll = format!("{group}/{plural}");
            match cat.by_collection(&coll) {
                Some(r) => g.collection(&coll).keys().map(|k| (r.clone(), k.clone())).collect(),
                None => Vec::new(),
            }
        };
        for (r, key) in victims {
            if let Some(obj) = g.get(&r.collection, &key) {
                self.delete_locked(g, &r, &key, &obj, false);
            }
        }
        self.finish_container(g, res, owner);
    }

    /// After an object is removed, a terminating namespace or CRD it was holding may go too.
    pub(crate) fn after_removal(&self, g: &mut Guard<'_>, res: &Arc<Resource>, removed: &Value) {
        if res.plural == "customresourcedefinitions" {
            let coll = format!(
                "{}/{}",
                removed["spec"]["group"].as_str().unwrap_or(""),
                removed["spec"]["names"]["plural"].as_str().unwrap_or("")
            );
            g.drop_collection(&coll);
            self.refresh_catalogue(g);
            return;
        }
        self.after_write(g, res, removed["metadata"]["namespace"].as_str());
        let cat = self.catalogue();
        if let Some(ns) = removed["metadata"]["namespace"].as_str()
            && let Some(nsobj) = g.get("namespaces", &store::key(None, ns))
            && nsobj["metadata"].get("deletionTimestamp").is_some()
            && let Some(nsres) = cat.get("", "v1", "namespaces")
        {
            self.finish_container(g, &nsres, &nsobj);
        }
        if let Some(custom) = &res.custom
            && let Some(crd) =
                g.get("apiextensions.k8s.io/customresourcedefinitions", &store::key(None, &custom.crd_name))
            && crd["metadata"].get("deletionTimestamp").is_some()
            && let Some(crdres) = cat.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        {
            self.finish_container(g, &crdres, &crd);
        }
    }

    fn finish_container(&self, g: &mut Guard<'_>, res: &Arc<Resource>, owner: &Value) {
        let empty = if res.plural == "namespaces" {
            g.keys_in_namespace(&name_of(owner)).is_empty()
        } else {
            let coll = format!(
                "{}/{}",
                owner["spec"]["group"].as_str().unwrap_or(""),
                owner["spec"]["names"]["plural"].as_str().unwrap_or("")
            );
            g.collection(&coll).is_empty()
        };
        let key = store::key(None, &name_of(owner));
        let Some(current) = g.get(&res.collection, &key) else {
            return;
        };
        if !empty || !string_set(&current["metadata"]["finalizers"]).is_empty() {
            return;
        }
        let mut obj = (*current).clone();
        let rv = g.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Arc::new(obj);
        g.remove(&res.collection, &key, stored.clone(), rv);
        self.after_removal(g, res, &stored);
    }

    pub(crate) fn delete_collection(&self, res: &Arc<Resource>, t: &ResourcePath, req: &Req) -> Result<Reply> {
        let sel = Selection::from_req(res, t, req)?;
        let mut g = self.store.lock();
        let snap = g.collection(&res.collection);
        let bounds = Bounds::new(sel.namespace.as_deref(), None);
        let matching: Vec<(Arc<str>, Arc<Value>)> =
            bounds.iter(&snap).filter(|(_, o)| sel.matches(o)).map(|(k, o)| (k.clone(), o.clone())).collect();
        let mut items = Vec::new();
        for (key, obj) in matching {
            items.push(builtin::view(res, &self.delete_locked(&mut g, res, &key, &obj, req.dry_run())));
        }
        let rv = g.current_rv();
        Ok(Reply::ok(
            json!({"kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        ))
    }
}

fn delete_options(req: &Req) -> Result<Value> {
    let mut opts = if req.body.is_empty() {
        json!({})
    } else if req.content_type() == "application/vnd.kubernetes.protobuf" {
        protobuf::decode_delete_options(&req.body)?
    } else {
        parse_body(&req.body).unwrap_or_else(|_| json!({}))
    };
    if !opts.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: the DeleteOptions must be a JSON object",
        ));
    }
    if !opts["preconditions"].is_null() && !opts["preconditions"].is_object() {
        return Err(ApiError::bad_request("json: cannot unmarshal into Go struct field DeleteOptions.preconditions"));
    }
    if let Some(p) = req.q("propagationPolicy") {
        opts["propagationPolicy"] = json!(p);
    }
    Ok(opts)
}
