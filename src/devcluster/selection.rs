//! What a list, watch or deletecollection selects: a namespace, a label selector and a field
//! selector, read from the request.

use serde_json::Value;

use crate::builtin;
use crate::errors::{ApiError, Result};
use crate::request::{Req, ResourcePath};
use crate::resources::Resource;
use crate::selectors::{FieldSelector, LabelSelector, field_value};
use crate::store::{Change, EventType};

/// What a list or watch selects: a namespace, a label selector and a field selector.
pub(crate) struct Selection {
    pub namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Field labels resolved to JSON paths (the same string for most).
    field_paths: Vec<String>,
}

impl Selection {
    pub(crate) fn from_req(res: &Resource, t: &ResourcePath, req: &Req) -> Result<Self> {
        let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(req.q("fieldSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
        let mut field_paths = Vec::new();
        for key in fields.keys() {
            match builtin::field_label_path(res, key) {
                Some(p) => field_paths.push(p),
                None => {
                    return Err(ApiError::bad_request(format!("field label not supported: {key}")));
                }
            }
        }
        Ok(Selection { namespace: t.namespace.clone(), labels, fields, field_paths })
    }

    pub(crate) fn is_unfiltered(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && obj["metadata"]["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        self.labels.matches(obj["metadata"]["labels"].as_object())
            && self.fields.matches(|k| {
                let idx = self.fields.keys().position(|x| x == k).unwrap_or(0);
                field_value(obj, &self.field_paths[idx])
            })
    }

    /// The event a watcher with this selection sees for a change, if any: objects entering the
    /// selection are ADDED, leaving it DELETED (watch-cache semantics).
    pub(crate) fn event_for(&self, res: &Resource, c: &Change) -> Option<(&'static str, Value)> {
        if *c.collection != *res.collection {
            return None;
        }
        let now = self.matches(&c.object);
        let before = c.previous.as_deref().is_some_and(|p| self.matches(p));
        let kind = match (c.kind, before, now) {
            (EventType::Deleted, true, _) => "DELETED",
            (EventType::Deleted, false, _) => return None,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return None,
        };
        Some((kind, (*c.object).clone()))
    }
}
