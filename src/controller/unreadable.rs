//! Workspaces the operator cannot read: objects stored under a looser schema (a value a newer
//! CRD allowed before a rollback, a hand-relaxed CRD) that do not decode into the typed model.
//! Each is reported on itself as one Failed Workspace, written without the typed model, while
//! every other Workspace keeps converging. It fails safe: the access its owner did not need
//! (public and grant bindings) is withdrawn, as for a breach of policy, since nothing can say
//! the policy still allows it; the owner keeps access and every object stays.

use kube::api::{Api, ApiResource, DynamicObject, Patch};
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use k8s_openapi::api::rbac::v1::RoleBinding;

use crate::controller::apply;
use crate::controller::cache::Cached;
use crate::controller::child::Kind;
use crate::controller::context::Context;
use crate::controller::error::{ObserveError, ReportError, Result};
use crate::controller::status::{self, Outcome};
use crate::controller::{observe, report};
use crate::crd::{DesiredState, State, StateReason, Workspace, WorkspaceStatus};
use crate::labels;

/// What an unreadable Workspace says about itself. A Workspace being deleted keeps its
/// finalizer: without its spec the operator knows neither its namespace's deletion policy nor
/// which access to revoke, and guessing could lose data or leave access behind.
pub fn outcome(error: &str, deleting: bool) -> Outcome {
    if deleting {
        let msg = format!(
            "cannot be torn down: the stored object does not decode ({error}); correct it (or the CRD) and the deletion completes"
        );
        Outcome::new(State::DeleteFailed, StateReason::InvalidSpec, msg)
    } else {
        Outcome::new(State::Failed, StateReason::InvalidSpec, format!("the stored object does not decode: {error}"))
    }
}

/// Report `invalid` as Failed / InvalidSpec: the list-view status label and the status, each
/// only when it differs, and an Event when the state changes. Then wait for the object to change.
pub async fn report(invalid: &InvalidObject, ctx: &Context) -> Result<Action> {
    let (Some(ns), Some(name)) = (invalid.metadata.namespace.as_deref(), invalid.metadata.name.as_deref()) else {
        return Ok(Action::await_change());
    };
    let key = format!("{ns}/{name}");
    ctx.metrics.set_unreadable(&key, true);
    warn!(error = %invalid.error, "the Workspace does not decode: reported as Failed");
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ApiResource::erase::<Workspace>(&()));
    // Read afresh: the cache holds only the metadata of an object that does not decode.
    let obj = match api.get_opt(name).await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(Action::await_change()),
        Err(source) => return Err(ObserveError::Workspace { name: key, source }.into()),
    };
    let deleting = obj.metadata.deletion_timestamp.is_some();
    // The CRD itself is going: let go without teardown, as for every other Workspace.
    if deleting && observe::crd_terminating(ctx).await? {
        let finalizers: Vec<&String> = obj.finalizers().iter().filter(|f| *f != labels::FINALIZER).collect();
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
        api.patch(name, &labels::patch_params(), &Patch::Merge(patch)).await.map_err(ReportError::Finalizer)?;
        ctx.metrics.forget(&key);
        return Ok(Action::await_change());
    }
    // The status is ours and decodes even when the spec does not; anything else counts as none.
    let old: Option<WorkspaceStatus> = obj.data.get("status").and_then(|s| serde_json::from_value(s.clone()).ok());
    // Its namespace read as plain text, so that a status a newer operator wrote (a state this
    // one does not know) still names it.
    if let Some(target) = obj.data.pointer("/status/namespace").and_then(|n| n.as_str()) {
        withdraw_access(ctx, target, &key).await?;
    }
    let outcome = outcome(&invalid.error, deleting);
    if obj.labels().get(labels::STATUS).map(String::as_str) != Some(outcome.state.as_str()) {
        let patch = json!({"metadata": {"labels": {labels::STATUS: outcome.state.as_str()}}});
        api.patch(name, &labels::patch_params(), &Patch::Merge(patch)).await.map_err(ReportError::Metadata)?;
    }
    let now = jiff::Timestamp::now();
    let observed = status::Observed {
        generation: obj.metadata.generation.unwrap_or(0),
        desired: DesiredState::Available,
        namespace: old.as_ref().and_then(|s| s.namespace.clone()),
        workspace_id: labels::workspace_id(obj.metadata.uid.as_deref().unwrap_or("")),
        now: &now,
    };
    let next = status::next(old.as_ref(), &outcome, &observed);
    ctx.metrics.observe_state(&key, outcome.state);
    if old.as_ref() == Some(&next) {
        return Ok(Action::await_change());
    }
    let patched = api
        .patch_status(name, &labels::patch_params(), &Patch::Merge(json!({"status": next})))
        .await
        .map_err(ReportError::Status)?;
    if old.and_then(|s| s.status) != Some(outcome.state) {
        let object = patched.object_ref(&ApiResource::erase::<Workspace>(&()));
        report::state_changed(ctx, &outcome, None, &object).await;
    }
    Ok(Action::await_change())
}

/// Every RoleBinding of the Workspace `key` in `target` but its owners' (the cache names them by
/// their marks alone), deleted.
async fn withdraw_access(ctx: &Context, target: &str, key: &str) -> Result<()> {
    let belongs = |c: &Cached| c.workspace.as_deref() == Some(key);
    let bindings = ctx.children.in_namespace(Kind::RoleBinding, target, belongs);
    apply::prune::<RoleBinding>(ctx, target, &[labels::ADMINS_BINDING], &bindings).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_workspace_is_failed_and_one_being_deleted_keeps_its_finalizer() {
        let table = [
            (false, State::Failed, "the stored object does not decode"),
            (true, State::DeleteFailed, "cannot be torn down"),
        ];
        for (deleting, state, says) in table {
            let o = outcome("unknown variant `Weird`", deleting);
            assert_eq!((o.state, o.reason), (state, StateReason::InvalidSpec), "deleting: {deleting}");
            assert!(o.message.contains(says) && o.message.contains("unknown variant `Weird`"), "{}", o.message);
        }
    }
}
