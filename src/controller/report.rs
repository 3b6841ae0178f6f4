//! Report: what the Workspace itself says about its state — the list-view labels with the
//! finalizer, the status, and an Event for each change of state. Each is written only when it
//! differs from what the Workspace already carries.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use crate::controller::error::ReportError;
use crate::controller::status::{self, Outcome};
use crate::controller::{Context, Key, apply::is_status};
use crate::crd::{State, Workspace};
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
    let have = ws.labels();
    let mut patch_labels = serde_json::Map::new();
    for (k, v) in &want {
        if have.get(k) != Some(v) {
            patch_labels.insert(k.clone(), json!(v));
        }
    }
    for k in labels::LIST_LABELS {
        if have.contains_key(k) && !want.contains_key(k) {
            patch_labels.insert(k.into(), serde_json::Value::Null);
        }
    }
    let has_finalizer = ws.finalizers().iter().any(|f| f == labels::FINALIZER);
    if patch_labels.is_empty() && has_finalizer {
        return Ok(());
    }
    let mut meta = json!({"resourceVersion": ws.resource_version()});
    if !patch_labels.is_empty() {
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

/// Write the status when it differs, and record an Event when the state changes. The Event's
/// reason is the outcome's, or `cause` (an error's category) when an error brought the change.
pub async fn status(
    ws: &mut Workspace,
    ctx: &Context,
    target: &str,
    outcome: &Outcome,
    cause: Option<&'static str>,
) -> Result<(), ReportError> {
    let old = ws.status.clone();
    let now = jiff::Timestamp::now();
    let observed = status::Observed {
        generation: ws.metadata.generation.unwrap_or(0),
        desired: ws.spec.desired_state,
        namespace: Some(target.to_string()),
        workspace_id: labels::workspace_id(ws.metadata.uid.as_deref().unwrap_or("")),
        now: &now,
    };
    let next = status::next(old.as_ref(), outcome, &observed);
    ctx.metrics.observe_state(&labels::workspace_key(ws), outcome.state);
    if old.as_ref() == Some(&next) {
        return Ok(());
    }
    // Only over the version this status was worked out from: a success then leaves a version
    // that is the operator's own (its watch event is an echo), and a write someone made since
    // is a conflict and a retry, not an event mistaken for the operator's.
    let patch = json!({"metadata": {"resourceVersion": ws.resource_version()}, "status": next});
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
