//! Lists: what a request selects (namespace, label and field selectors), pages over one
//! consistent snapshot, and continue tokens that resume it.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::builtin;
use crate::errors::{ApiError, FieldError, Result};
use crate::registry::{ApiServer, partial_metadata};
use crate::request::{Reply, Req, ResourcePath};
use crate::resources::Resource;
use crate::selection::Selection;
use crate::store::{self, Bounds};
use crate::table;

impl ApiServer {
    pub(crate) fn list(&self, res: &Resource, t: &ResourcePath, req: &Req) -> Result<Reply> {
        let sel = Selection::from_req(res, t, req)?;
        if req.q("resourceVersionMatch").is_some() && req.q("resourceVersion").is_none() {
            return Err(list_options_invalid(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if req.q("sendInitialEvents").is_some() {
            return Err(list_options_invalid("sendInitialEvents", "sendInitialEvents is forbidden for list"));
        }
        let limit: usize = req.q("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        let (snapshot, rv, after) = {
            let mut g = self.store.lock();
            match req.q("continue") {
                Some(token) => {
                    let (rv, after) = decode_continue(token)?;
                    let snap = g.snapshot(rv, &res.collection).ok_or_else(expired_continue)?;
                    (snap, rv, Some(after))
                }
                None => {
                    let rv = g.current_rv();
                    if req.q("resourceVersionMatch") == Some("Exact")
                        && req.q("resourceVersion").and_then(|r| r.parse::<u64>().ok()) != Some(rv)
                    {
                        return Err(ApiError::gone("The resourceVersion for the provided list is too old."));
                    }
                    let snap = g.collection(&res.collection);
                    if limit > 0 {
                        g.save_snapshot(rv, res.collection.clone(), snap.clone());
                    }
                    (snap, rv, None)
                }
            }
        };
        let bounds = Bounds::new(sel.namespace.as_deref(), after.as_deref());
        let mut items: Vec<Value> = Vec::new();
        let mut next_key: Option<Arc<str>> = None;
        let mut iter = bounds.iter(&snapshot);
        for (key, obj) in iter.by_ref() {
            if !sel.matches(obj) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                next_key = Some(key.clone());
                break;
            }
            items.push(builtin::view(res, obj));
        }
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if let Some(first_unreturned) = next_key {
            // The token points at the last returned key; the next page starts after it.
            let last_key = items.last().map(|o| object_key(res, o)).unwrap_or_else(|| first_unreturned.to_string());
            meta["continue"] = json!(encode_continue(rv, &last_key));
            if sel.is_unfiltered() {
                meta["remainingItemCount"] = json!(1 + iter.count());
            }
        }
        if req.wants_table() {
            let refs: Vec<&Value> = items.iter().collect();
            return Ok(Reply::ok(table::table(res, &refs, Some(meta), true)));
        }
        if req.wants_partial_metadata() {
            let items: Vec<Value> = items.iter().map(partial_metadata).collect();
            return Ok(Reply::ok(json!({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items,
            })));
        }
        Ok(Reply::ok(json!({
            "kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": meta, "items": items,
        })))
    }
}

pub(crate) fn list_options_invalid(field: &str, detail: &str) -> ApiError {
    ApiError::invalid("ListOptions", "meta.k8s.io", "", &[FieldError::forbidden(field, detail)])
}

fn encode_continue(rv: u64, key: &str) -> String {
    use base64::Engine;
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, String)> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, start))
}

pub(crate) fn expired_continue() -> ApiError {
    ApiError::gone(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
    )
}

fn object_key(res: &Resource, obj: &Value) -> String {
    let ns = if res.namespaced { obj["metadata"]["namespace"].as_str() } else { None };
    store::key(ns, obj["metadata"]["name"].as_str().unwrap_or("")).to_string()
}
