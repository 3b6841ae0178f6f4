//! Update (PUT) and patch: merge with the stored object as the subresource allows, admit, and
//! store unless nothing changed.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::errors::{ApiError, FieldError, Headers, Result};
use crate::rbac::{Attributes, ResourceAttributes};
use crate::registry::create::{FieldValidation, WriteOpts, check_type, parse_body};
use crate::registry::{ApiServer, name_of, string_set, strip_empty_metadata};
use crate::request::{Reply, Req, ResourcePath};
use crate::resources::Resource;
use crate::store::{self, Guard};
use crate::{admission, builtin, managed, patch, shape};

impl ApiServer {
    pub(crate) fn update(&self, res: &Arc<Resource>, t: &ResourcePath, name: &str, req: &Req) -> Result<Reply> {
        let body = self.decode_body(res, req)?;
        if t.sub.as_deref() == Some("scale") {
            return self.update_scale(res, t, name, body, req);
        }
        check_type(res, &body)?;
        let body_name = body["metadata"]["name"].as_str().unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body = builtin::to_storage(res, body);
        let opts = self.write_opts(req, t.sub.as_deref());
        let mut g = self.store.lock();
        let key = store::key(t.namespace.as_deref(), name);
        let current = g.get(&res.collection, &key).ok_or_else(|| ApiError::not_found(&res.named(name)))?;
        match body["metadata"]["resourceVersion"].as_str().filter(|s| !s.is_empty()) {
            Some(rv) if rv != current["metadata"]["resourceVersion"] => {
                return Err(ApiError::conflict(&res.named(name)));
            }
            Some(_) => {}
            None if res.is_custom() || res.plural == "customresourcedefinitions" => {
                return Err(ApiError::invalid(
                    &res.kind,
                    &res.group,
                    name,
                    &[FieldError::invalid("metadata.resourceVersion", &json!(0), "must be specified for an update")],
                ));
            }
            None => {}
        }
        let (obj, code, headers) = self.replace_locked(&mut g, res, key, &current, body, &opts)?;
        drop(g);
        Ok(Reply::Json { code, body: builtin::view(res, &obj), headers })
    }

    /// The write pipeline of update and patch: merge with the stored object according to the
    /// subresource, admit, and store unless nothing changed.
    pub(crate) fn replace_locked(
        &self,
        g: &mut Guard<'_>,
        res: &Arc<Resource>,
        key: Arc<str>,
        current: &Arc<Value>,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<(Value, u16, Headers)> {
        let mut obj = match opts.subresource.as_deref() {
            Some("status") => {
                let mut o = (**current).clone();
                o["status"] = body.get("status").cloned().unwrap_or(Value::Null);
                if o["status"].is_null()
                    && let Some(m) = o.as_object_mut()
                {
                    m.remove("status");
                }
                o
            }
            _ => {
                let mut o = body;
                if res.status {
                    match current.get("status") {
                        Some(s) => o["status"] = s.clone(),
                        None => {
                            if let Some(m) = o.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                o
            }
        };
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        // Server-owned metadata survives any write.
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match current["metadata"].get(k) {
                Some(v) => obj["metadata"][k] = v.clone(),
                None => {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        obj["apiVersion"] = current["apiVersion"].clone();
        obj["kind"] = current["kind"].clone();
        if current["metadata"].get("deletionTimestamp").is_some() {
            let old_f = string_set(&current["metadata"]["finalizers"]);
            let new_f = string_set(&obj["metadata"]["finalizers"]);
            if new_f.iter().any(|f| !old_f.contains(f)) {
                return Err(ApiError::invalid(
                    &res.kind,
                    &res.group,
                    &name_of(current),
                    &[FieldError::forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted",
                    )],
                ));
            }
        }
        let headers = self.admit(res, &mut obj, Some(current), opts)?;
        self.rbac.check_escalation(g, &opts.user, res, Some(current), &obj)?;
        builtin::on_update(res, &mut obj, current);
        if res.tracks_generation && spec_changed(res, current, &obj) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            obj["metadata"]["generation"] = json!(generation);
        }
        builtin::simulate_status(res, &mut obj);
        strip_empty_metadata(&mut obj);
        // managedFields are bookkeeping: compare without them so a no-op write stays a no-op.
        managed::carry_over(current, &mut obj, opts.is_apply());
        if obj == **current {
            return Ok(((**current).clone(), 200, headers));
        }
        managed::record_update(
            Some(current),
            &mut obj,
            &opts.manager,
            if opts.is_apply() { "Apply" } else { "Update" },
            &res.api_version(),
            opts.subresource.as_deref(),
        );
        if opts.dry_run {
            return Ok((obj, 200, headers));
        }
        let rv = g.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let finalized =
            obj["metadata"].get("deletionTimestamp").is_some() && string_set(&obj["metadata"]["finalizers"]).is_empty();
        let stored = Arc::new(obj);
        if finalized {
            g.remove(&res.collection, &key, stored.clone(), rv);
            self.after_removal(g, res, &stored);
        } else {
            g.put(&res.collection, key, stored.clone(), rv);
        }
        self.after_write(g, res, stored["metadata"]["namespace"].as_str());
        Ok(((*stored).clone(), 200, headers))
    }

    fn update_scale(
        &self,
        res: &Arc<Resource>,
        t: &ResourcePath,
        name: &str,
        scale: Value,
        req: &Req,
    ) -> Result<Reply> {
        let opts = self.write_opts(req, None);
        let mut g = self.store.lock();
        let key = store::key(t.namespace.as_deref(), name);
        let current = g.get(&res.collection, &key).ok_or_else(|| ApiError::not_found(&res.named(name)))?;
        let mut obj = (*current).clone();
        obj["spec"]["replicas"] = scale["spec"]["replicas"].clone();
        let (obj, _, _) = self.replace_locked(&mut g, res, key, &current, obj, &opts)?;
        Ok(Reply::ok(builtin::scale_of(&obj)))
    }

    pub(crate) fn patch(&self, res: &Arc<Resource>, t: &ResourcePath, name: &str, req: &Req) -> Result<Reply> {
        let ct = req.content_type();
        let kind = match ct {
            "application/merge-patch+json" => patch::Kind::Merge,
            "application/json-patch+json" => patch::Kind::Json,
            "application/strategic-merge-patch+json" if !res.is_custom() => patch::Kind::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" if ct.ends_with("yaml") => {
                patch::Kind::Apply
            }
            _ => {
                let accepted = if res.is_custom() {
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                } else {
                    "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
                };
                return Err(ApiError::unsupported_media(accepted));
            }
        };
        let mut opts = self.write_opts(req, t.sub.as_deref());
        if kind == patch::Kind::Apply {
            if req.q("fieldManager").is_none() {
                return Err(ApiError::invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    &[FieldError::required("fieldManager", "is required for apply patch")],
                ));
            }
            opts.apply = true;
        }
        let patch_body: Value = match kind {
            patch::Kind::Apply => crate::yaml::from_str(std::str::from_utf8(&req.body).unwrap_or(""))
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
            _ => parse_body(&req.body)?,
        };
        match kind {
            patch::Kind::Json if !patch_body.is_array() => {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                    if patch_body.is_object() { "object" } else { "non-array" }
                )));
            }
            patch::Kind::Json => {}
            patch::Kind::Apply => shape::check(res, &patch_body)?,
            _ if !patch_body.is_object() => {
                return Err(ApiError::bad_request("the patch must be a JSON object"));
            }
            _ => {}
        }
        let mut g = self.store.lock();
        let key = store::key(t.namespace.as_deref(), name);
        let current = match g.get(&res.collection, &key) {
            Some(c) => c,
            None if kind == patch::Kind::Apply && t.sub.is_none() => {
                // Server-side apply creates what does not exist, which needs `create` too.
                let create = Attributes::resource(
                    "create",
                    ResourceAttributes::new(&res.group, &res.plural, t.namespace.as_deref().unwrap_or(""), name),
                );
                let decision = self.rbac.authorize_in(&g, &req.user, &create);
                if !decision.allowed {
                    return Err(crate::rbac::forbidden(&req.user, &create, &decision));
                }
                check_type(res, &patch_body)?;
                let mut body = patch_body;
                body["metadata"]["name"] = json!(name);
                let (obj, warnings) = self.create_locked(&mut g, res, t.namespace.as_deref(), body, &opts)?;
                return Ok(Reply::Json { code: 201, body: builtin::view(res, &obj), headers: warnings });
            }
            None => return Err(ApiError::not_found(&res.named(name))),
        };
        if t.sub.as_deref() == Some("scale") {
            let scale = patch::apply(patch::Kind::Merge, &builtin::scale_of(&current), &patch_body, res)?;
            drop(g);
            return self.update_scale(res, t, name, scale, req);
        }
        if let Some(rv) = patch_body["metadata"]["resourceVersion"].as_str()
            && kind != patch::Kind::Apply
            && rv != current["metadata"]["resourceVersion"]
        {
            return Err(ApiError::conflict(&res.named(name)));
        }
        let mut patched = if kind == patch::Kind::Apply {
            check_type(res, &patch_body)?;
            managed::apply(res, &current, &patch_body, &opts.manager, opts.force, opts.subresource.as_deref())?
        } else {
            builtin::to_storage(res, patch::apply(kind, &builtin::view(res, &current), &patch_body, res)?)
        };
        // What a patch made must still be an object of this kind.
        shape::check(res, &patched)?;
        if kind == patch::Kind::Json || kind == patch::Kind::Merge {
            // Strict validation of a patch reports against the patched object, as a 422.
            if opts.field_validation == FieldValidation::Strict
                && let Some(custom) = &res.custom
            {
                let mut probe = patched.clone();
                let mut unknown = Vec::new();
                admission::prune_and_default(&custom.schema, &mut probe, &mut unknown);
                if !unknown.is_empty() {
                    let list: Vec<String> = unknown.iter().map(|u| format!("unknown field \\\"{u}\\\"")).collect();
                    let text = serde_json::to_string(&patched).unwrap_or_default();
                    return Err(ApiError::invalid(
                        "",
                        "",
                        name,
                        &[FieldError::custom(
                            "FieldValueInvalid",
                            "patch",
                            format!("Invalid value: {text:?}: strict decoding error: {}", list.join(", ")),
                        )],
                    ));
                }
            }
        }
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        let (obj, code, headers) = self.replace_locked(&mut g, res, key, &current, patched, &opts)?;
        drop(g);
        Ok(Reply::Json { code, body: builtin::view(res, &obj), headers })
    }
}

/// Did anything outside metadata (and status, for kinds with a status subresource) change?
fn spec_changed(res: &Resource, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            if res.status {
                m.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}
