//! Report: what the Workspace itself says about its state — the list-view labels with the
//! finalizer, the status, and an Event for each change of state. Each is written only when it
//! differs from what the Workspace already carries.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::controller::child::Key;
use crate::controller::context::Context;
use crate::controller::error::{ReportError, is_status};
use crate::controller::status::{self, Outcome};
use crate::crd::{State, WorkloadsStatus, Workspace};
use crate::events::Note;
use crate::labels;

fn api(ctx: &Context, ws: &Workspace) -> Api<Workspace> {
    Api::namespaced(ctx.client.clone(), ws.namespace().as_deref().unwrap_or("default"))
}

pub fn workspace_key(ws: &Workspace) -> Key {
    Key::Workspace(labels::workspace_key(ws))
}

/// Finalizer and list-view labels in one write, and only when they differ. `ws` becomes the
/// stored object, so later writes of the same reconcile carry its resourceVersion.
pub async fn metadata(ws: &mut Workspace, ctx: &Context, state: State) -> Result<(), ReportError> {
    let want = labels::list_labels(ws, state);
    let (namespace, name) = (ws.namespace().unwrap_or_default(), ws.name_any());
    let indexed = ctx.workspaces_by_ns.labels_read(&namespace, &name, &want);
    let labelled = labels_as_wanted(ws.labels(), &want, indexed);
    let has_finalizer = ws.finalizers().iter().any(|f| f == labels::FINALIZER);
    if labelled && has_finalizer {
        return Ok(());
    }
    let mut meta = json!({"resourceVersion": ws.resource_version()});
    if !labelled {
        // Every list-view label, wanted or removed (null on one that is not there changes
        // nothing): which of them differ is not known, only that some do.
        let patch_labels: serde_json::Map<_, _> = (labels::LIST_LABELS.iter())
            .map(|k| (k.to_string(), want.get(*k).map_or(serde_json::Value::Null, |v| json!(v))))
            .collect();
        meta["labels"] = serde_json::Value::Object(patch_labels);
    }
    if !has_finalizer {
        let mut f: Vec<String> = ws.finalizers().to_vec();
        f.push(labels::FINALIZER.into());
        meta["finalizers"] = json!(f);
    }
    let patched = api(ctx, ws)
        .patch(&ws.name_any(), &labels::patch_params(), &Patch::Merge(json!({"metadata": meta})))
        .await
        .map_err(ReportError::Metadata)?;
    ctx.expect.wrote(&workspace_key(ws), patched.resource_version());
    *ws = patched;
    Ok(())
}

/// Do a Workspace's list-view labels read `want`? A Workspace from the cache carries none of
/// them, and the index answers (`indexed`) from their digest; one this reconcile has written
/// since carries them all, and answers for itself.
fn labels_as_wanted(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>, indexed: Option<bool>) -> bool {
    if labels::LIST_LABELS.iter().any(|k| have.contains_key(*k)) {
        return labels::LIST_LABELS.iter().all(|k| have.get(*k) == want.get(*k));
    }
    indexed.unwrap_or(false)
}

/// Write the status when it differs, and record an Event when the state changes. The Event's
/// reason is the outcome's, or `cause` (an error's category) when an error brought the change.
pub async fn status(
    ws: &mut Workspace,
    ctx: &Context,
    target: &str,
    outcome: &Outcome,
    cause: Option<&'static str>,
) -> Result<(), ReportError> {
    let workspace_id = labels::workspace_id(ws.metadata.uid.as_deref().unwrap_or(""));
    // From the cache, its status is bare (see `status::shrink`).
    let old = ws.status.clone().map(|mut s| {
        status::restore(&mut s, &workspace_id);
        s
    });
    let now = jiff::Timestamp::now();
    let observed = status::Observed {
        generation: ws.metadata.generation.unwrap_or(0),
        desired: ws.spec.desired_state,
        namespace: Some(target.to_string()),
        workspace_id,
        now: &now,
    };
    let next = status::next(old.as_ref(), outcome, &observed);
    ctx.metrics.observe_state(&labels::workspace_key(ws), outcome.state);
    if old.as_ref() == Some(&next) {
        return Ok(());
    }
    if let Some(detail) = &outcome.detail {
        info!(state = outcome.state.as_str(), reason = outcome.reason.as_str(), detail, "{}", outcome.message);
    }
    // Only over the version this status was worked out from: a success then leaves a version
    // that is the operator's own (its watch event is an echo), and a write someone made since
    // is a conflict and a retry, not an event mistaken for the operator's.
    let mut status = json!(next);
    // A merge patch leaves what it does not name: a record no longer kept is removed by name.
    if next.workloads.is_none() && old.as_ref().is_some_and(|o| o.workloads.is_some()) {
        status["workloads"] = serde_json::Value::Null;
    }
    let patch = json!({"metadata": {"resourceVersion": ws.resource_version()}, "status": status});
    let patched = api(ctx, ws)
        .patch_status(&ws.name_any(), &labels::patch_params(), &Patch::Merge(patch))
        .await
        .map_err(ReportError::Status)?;
    if patched.resource_version() != ws.resource_version() {
        ctx.expect.wrote(&workspace_key(ws), patched.resource_version());
    }
    *ws = patched;
    if old.and_then(|s| s.status) != Some(outcome.state) {
        state_changed(ctx, outcome, cause, &ws.object_ref(&())).await;
    }
    Ok(())
}

/// Keep the record of stopped workloads in the status before any of them is changed, over the
/// version it was worked out from (see `workloads`).
pub async fn workloads(ws: &mut Workspace, ctx: &Context, record: &WorkloadsStatus) -> Result<(), ReportError> {
    let patch = json!({"metadata": {"resourceVersion": ws.resource_version()}, "status": {"workloads": record}});
    let patched = api(ctx, ws)
        .patch_status(&ws.name_any(), &labels::patch_params(), &Patch::Merge(patch))
        .await
        .map_err(ReportError::Status)?;
    ctx.expect.wrote(&workspace_key(ws), patched.resource_version());
    *ws = patched;
    Ok(())
}

/// Record a change of state as an Event on `object`: a warning for a failure or when an error
/// (`cause`, its category) brought it.
pub async fn state_changed(ctx: &Context, outcome: &Outcome, cause: Option<&'static str>, object: &ObjectReference) {
    let note = Note {
        warning: matches!(outcome.state, State::Failed | State::DeleteFailed) || cause.is_some(),
        reason: cause.unwrap_or(outcome.reason.as_str()),
        action: outcome.state.as_str(),
        message: format!("{}: {}", outcome.state.as_str(), outcome.message),
    };
    // An event that cannot be recorded must not fail the reconcile.
    if let Err(e) = ctx.recorder.publish(&note, object).await {
        warn!(error = %e, "recording event");
    }
}

/// Let the Workspace go: its finalizer is the last thing the operator removes.
pub async fn release(ws: &Workspace, ctx: &Context) -> Result<(), ReportError> {
    let finalizers: Vec<String> = ws.finalizers().iter().filter(|f| *f != labels::FINALIZER).cloned().collect();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": ws.resource_version()}});
    match api(ctx, ws).patch(&ws.name_any(), &labels::patch_params(), &Patch::Merge(patch)).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(ReportError::Finalizer(e)),
    }
    ctx.metrics.forget(&labels::workspace_key(ws));
    ctx.expect.forget(&workspace_key(ws));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn list_labels_are_judged_by_the_object_when_it_carries_them_else_by_the_index() {
        let want = map(&[(labels::STATUS, "Available"), (labels::OWNER, "ann")]);
        let cases = [
            ("cached copy, index agrees", map(&[]), Some(true), true),
            ("cached copy, index disagrees", map(&[]), Some(false), false),
            ("cached copy, never indexed", map(&[]), None, false),
            ("a user's own label does not count as list labels", map(&[("team", "x")]), Some(true), true),
            ("written this reconcile, as wanted", want.clone(), Some(false), true),
            (
                "written this reconcile, one differs",
                map(&[(labels::STATUS, "Failed"), (labels::OWNER, "ann")]),
                Some(true),
                false,
            ),
            (
                "written this reconcile, an extra one",
                map(&[(labels::STATUS, "Available"), (labels::OWNER, "ann"), (labels::DEFAULT, "true")]),
                Some(true),
                false,
            ),
        ];
        for (case, have, indexed, expected) in cases {
            assert_eq!(labels_as_wanted(&have, &want, indexed), expected, "{case}");
        }
    }
}
