//! Observe: what the caches say about a Workspace, read once per reconcile, with its derived
//! facts (the target namespace) computed once. The only request is a GET of a namespace the
//! caches cannot know about (they hold only namespaces labelled as the operator's).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::controller::Context;
use crate::controller::error::ObserveError;
use crate::controller::plan;
use crate::crd::Workspace;
use crate::labels;

#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// The namespace the Workspace provisions: `spec.namespace`, or derived from its name.
    pub target: String,
    pub namespace: Seen,
    /// An older default Workspace of the same namespace, when this one is a default too.
    pub older_default: Option<String>,
    /// The workspace's RoleBindings in the target namespace, as cached.
    pub bindings: Vec<Arc<RoleBinding>>,
    /// The workspace's quota in the target namespace, as cached.
    pub quota: Option<Arc<ResourceQuota>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Seen {
    Found(Box<Namespace>),
    Missing,
    /// Not looked up: a new Workspace creates its namespace without reading first.
    #[default]
    Unread,
}

/// What the reconcile of `ws` needs to know. `teardown`: the Workspace is going, so the
/// namespace is always looked up (there is nothing to create).
pub async fn observe(ws: &Workspace, ctx: &Context, teardown: bool) -> Result<Observation, ObserveError> {
    let target = labels::target_namespace(ws);
    let older_default = if teardown {
        None
    } else {
        let all = ctx.workspaces.state();
        plan::older_default(ws, all.iter().map(|w| &**w))
    };
    let skip_lookup =
        !teardown && (plan::precheck(ws, older_default.as_deref()).is_some() || plan::creates_blindly(ws));
    let namespace = match ctx.namespaces.get(&ObjectRef::new(&target)) {
        Some(ns) => Seen::Found(Box::new((*ns).clone())),
        None if skip_lookup => Seen::Unread,
        None => match get_namespace(ctx, &target).await? {
            Some(ns) => Seen::Found(Box::new(ns)),
            None => Seen::Missing,
        },
    };
    let bindings = (ctx.bindings_by_ns.names(&target).into_iter())
        .filter_map(|name| ctx.bindings.get(&ObjectRef::new(&name).within(&target)))
        .filter(|rb| belongs_to(&**rb, ws, &target))
        .collect();
    let quota =
        ctx.quotas.get(&ObjectRef::new(labels::QUOTA).within(&target)).filter(|q| belongs_to(&**q, ws, &target));
    Ok(Observation { target, namespace, older_default, bindings, quota })
}

pub async fn get_namespace(ctx: &Context, name: &str) -> Result<Option<Namespace>, ObserveError> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    api.get_opt(name).await.map_err(|source| ObserveError::Namespace { name: name.into(), source })
}

/// A child of this Workspace: in its namespace and annotated with its `namespace/name`.
fn belongs_to<K: Resource>(obj: &K, ws: &Workspace, target: &str) -> bool {
    obj.meta().namespace.as_deref() == Some(target)
        && obj.annotations().get(labels::WORKSPACE_ANNOTATION).map(String::as_str)
            == Some(labels::workspace_key(ws).as_str())
}
