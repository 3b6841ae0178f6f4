//! Observe: what the caches say about a Workspace, read once per reconcile, with its derived
//! facts (the target namespace) computed once. The only requests are GETs of namespaces the
//! caches cannot know about (they hold only namespaces labelled as the operator's): the target,
//! and the organization's own when its class offers itself to some organizations only.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use crate::controller::cache::Cached;
use crate::controller::child::Kind;
use crate::controller::context::Context;
use crate::controller::error::ObserveError;
use crate::controller::workloads::{self, Census, Found};
use crate::crd::{Management, WorkloadKind, Workspace, WorkspaceClass};
use crate::labels;

#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// The namespace the Workspace provisions: `spec.namespace`, or derived from its name.
    pub target: String,
    /// Its WorkspaceClass: the one it names, or the default; None when there is none.
    pub class: Option<Arc<WorkspaceClass>>,
    pub namespace: Seen,
    /// The labels of the Workspace's own namespace, read only when its class selects
    /// organizations.
    pub organization_labels: Option<BTreeMap<String, String>>,
    /// The namespaces that hold Workspaces (organizations), gathered only for a Managed
    /// Workspace that names its namespace.
    pub organizations: Vec<String>,
    /// An older default Workspace of the same namespace, when this one is a default too.
    pub older_default: Option<String>,
    /// The workspace's RoleBindings in the target namespace, as cached.
    pub bindings: Vec<Cached>,
    /// Its quota, LimitRange and NetworkPolicy there, as cached.
    pub quota: Option<Cached>,
    pub limit_range: Option<Cached>,
    pub network_policy: Option<Cached>,
}

impl Observation {
    /// The class, or the built-in defaults when none was found: the plan goes ahead only with a
    /// class, so the defaults serve only a teardown whose class has since gone.
    pub fn class_or_default(&self) -> Arc<WorkspaceClass> {
        self.class.clone().unwrap_or_else(|| Arc::new(WorkspaceClass::new("", Default::default())))
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Seen {
    Found(Box<Namespace>),
    Missing,
    /// Not looked up: a new Workspace creates its namespace without reading first.
    #[default]
    Unread,
}

/// What the reconcile of `ws` needs to know before the plan can say whether its namespace must
/// be read (`plan::skips_lookup`); `children` completes it. `teardown`: the Workspace is going.
pub async fn observe(ws: &Workspace, ctx: &Context, teardown: bool) -> Result<Observation, ObserveError> {
    let target = labels::target_namespace(ws);
    let class = match &ws.spec.class_name {
        Some(name) => ctx.classes.get(&ObjectRef::new(name)),
        None => default_class(&ctx.classes.state()),
    };
    // Only a default looks at its neighbours, and only at those of its own namespace: a scan
    // of every Workspace per reconcile would make a fleet's convergence quadratic.
    let older_default = match ws.namespace() {
        Some(org) if ws.spec.is_default && !teardown => {
            let same: Vec<_> = (ctx.workspaces_by_ns.names(&org).into_iter())
                .filter_map(|name| ctx.workspaces.get(&ObjectRef::new(&name).within(&org)))
                .collect();
            older_default(ws, same.iter().filter_map(|w| w.0.as_ref().ok()))
        }
        _ => None,
    };
    let selects = class.as_ref().is_some_and(|c| c.spec.organizations.is_some());
    let organization_labels = match ws.namespace() {
        Some(org) if selects && !teardown => get_namespace(ctx, &org).await?.map(|ns| ns.labels().clone()),
        _ => None,
    };
    let organizations = match (&ws.spec.namespace, ws.spec.management) {
        (Some(_), Management::Managed) if !teardown => ctx.workspaces_by_ns.namespaces(),
        _ => Vec::new(),
    };
    Ok(Observation { target, class, organization_labels, organizations, older_default, ..Default::default() })
}

/// The namespace and the Workspace's children in it: the namespace from the cache, else read
/// when `lookup` (a teardown always looks it up: there is nothing to create).
pub async fn children(ws: &Workspace, ctx: &Context, obs: &mut Observation, lookup: bool) -> Result<(), ObserveError> {
    let target = obs.target.clone();
    let namespace = match ctx.children.get(Kind::Namespace, &target, &target).and_then(|c| c.to_namespace()) {
        Some(ns) => Seen::Found(Box::new(ns)),
        None if !lookup => Seen::Unread,
        None => match get_namespace(ctx, &target).await? {
            Some(ns) => Seen::Found(Box::new(ns)),
            None => Seen::Missing,
        },
    };
    // A child of this Workspace: in its namespace and annotated with its `namespace/name`.
    let key = labels::workspace_key(ws);
    let belongs = |c: &Cached| c.workspace.as_deref() == Some(key.as_str());
    let one = |kind, name| ctx.children.get(kind, &target, name).filter(belongs);
    obs.bindings = ctx.children.in_namespace(Kind::RoleBinding, &target, belongs);
    obs.quota = one(Kind::ResourceQuota, labels::QUOTA);
    obs.limit_range = one(Kind::LimitRange, labels::LIMIT_RANGE);
    obs.network_policy = one(Kind::NetworkPolicy, labels::NETWORK_POLICY);
    obs.namespace = namespace;
    Ok(())
}

/// The default WorkspaceClass: of those annotated as the default, the oldest (then by name).
pub fn default_class(all: &[Arc<WorkspaceClass>]) -> Option<Arc<WorkspaceClass>> {
    let key = |c: &WorkspaceClass| (c.metadata.creation_timestamp.clone().map(|t| t.0), c.name_any());
    all.iter().filter(|c| c.is_default()).min_by_key(|c| key(c)).cloned()
}

/// Is the Workspace CRD being deleted? Read only when a Workspace is.
pub async fn crd_terminating(ctx: &Context) -> Result<bool, ObserveError> {
    let api: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let name = <Workspace as kube::CustomResourceExt>::crd_name();
    match api.get_opt(name).await {
        Ok(crd) => Ok(crd.is_none_or(|c| c.metadata.deletion_timestamp.is_some())),
        Err(source) => Err(ObserveError::Crd { source }),
    }
}

pub async fn get_namespace(ctx: &Context, name: &str) -> Result<Option<Namespace>, ObserveError> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    api.get_opt(name).await.map_err(|source| ObserveError::Namespace { name: name.into(), source })
}

/// The workloads of a workspace namespace, read when it is deactivated or reactivated (never on
/// a resync: the status records what was done). Pods and DaemonSets are only counted, so they
/// are read as metadata.
pub async fn workloads(ctx: &Context, target: &str) -> Result<(Vec<Found>, Census), ObserveError> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ListParams;
    let err = |source| ObserveError::Workloads { namespace: target.into(), source };
    let client = &ctx.client;
    let lp = ListParams::default();
    fn found(
        kind: WorkloadKind,
        m: &kube::api::ObjectMeta,
        replicas: Option<i32>,
        suspended: bool,
        template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
    ) -> Found {
        let controller = m.owner_references.iter().flatten().find(|o| o.controller == Some(true));
        Found {
            kind,
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            replicas,
            suspended,
            controller: controller.map(|o| o.uid.clone()),
            requests: workloads::requests(template),
        }
    }
    let mut all = Vec::new();
    for d in Api::<Deployment>::namespaced(client.clone(), target).list(&lp).await.map_err(err)? {
        let spec = d.spec.as_ref();
        let replicas = Some(spec.and_then(|s| s.replicas).unwrap_or(1));
        all.push(found(WorkloadKind::Deployment, &d.metadata, replicas, false, spec.map(|s| &s.template)));
    }
    for d in Api::<StatefulSet>::namespaced(client.clone(), target).list(&lp).await.map_err(err)? {
        let spec = d.spec.as_ref();
        let replicas = Some(spec.and_then(|s| s.replicas).unwrap_or(1));
        all.push(found(WorkloadKind::StatefulSet, &d.metadata, replicas, false, spec.map(|s| &s.template)));
    }
    for d in Api::<ReplicaSet>::namespaced(client.clone(), target).list(&lp).await.map_err(err)? {
        let spec = d.spec.as_ref();
        let replicas = Some(spec.and_then(|s| s.replicas).unwrap_or(1));
        all.push(found(WorkloadKind::ReplicaSet, &d.metadata, replicas, false, spec.and_then(|s| s.template.as_ref())));
    }
    for j in Api::<Job>::namespaced(client.clone(), target).list(&lp).await.map_err(err)? {
        let spec = j.spec.as_ref();
        // A finished Job runs nothing: there is nothing to stop.
        let done = j.status.as_ref().and_then(|s| s.completion_time.as_ref()).is_some();
        let suspended = done || spec.and_then(|s| s.suspend).unwrap_or(false);
        let parallelism = Some(spec.and_then(|s| s.parallelism).unwrap_or(1));
        all.push(found(WorkloadKind::Job, &j.metadata, parallelism, suspended, spec.map(|s| &s.template)));
    }
    for c in Api::<CronJob>::namespaced(client.clone(), target).list(&lp).await.map_err(err)? {
        let suspended = c.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
        all.push(found(WorkloadKind::CronJob, &c.metadata, None, suspended, None));
    }
    let daemon_sets = Api::<DaemonSet>::namespaced(client.clone(), target).list_metadata(&lp).await.map_err(err)?;
    let pods = Api::<Pod>::namespaced(client.clone(), target).list_metadata(&lp).await.map_err(err)?;
    let bare_pods = pods.items.iter().filter(|p| p.metadata.owner_references.as_ref().is_none_or(Vec::is_empty));
    let census = Census { bare_pods: bare_pods.count() as i32, daemon_sets: daemon_sets.items.len() as i32 };
    Ok((all, census))
}

/// The oldest default Workspace of a namespace wins; of `others` (the same namespace), the
/// oldest default that is older than `ws`, if `ws` is a default too.
pub fn older_default<'a>(ws: &Workspace, others: impl IntoIterator<Item = &'a Workspace>) -> Option<String> {
    if !ws.spec.is_default {
        return None;
    }
    let key = |w: &Workspace| (w.metadata.creation_timestamp.clone().map(|t| t.0), w.name_any());
    let mine = key(ws);
    others
        .into_iter()
        .filter(|w| w.namespace() == ws.namespace() && w.spec.is_default && w.metadata.deletion_timestamp.is_none())
        .filter(|w| w.name_any() != ws.name_any() && key(w) < mine)
        .map(|w| w.name_any())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ws;

    #[test]
    fn the_oldest_default_wins() {
        let at = |name: &str, t: &str| ws(name).default_workspace().stored(name, t).build();
        let first = at("first", "2026-01-01T00:00:00Z");
        let second = at("second", "2026-01-02T00:00:00Z");
        let twin = at("a-twin", "2026-01-02T00:00:00Z");
        let plain = ws("plain").stored("p", "2025-01-01T00:00:00Z").build();
        let elsewhere = ws("other").in_ns("org").default_workspace().stored("o", "2025-01-01T00:00:00Z").build();
        let all = [&first, &second, &twin, &plain, &elsewhere];
        assert_eq!(older_default(&first, all), None, "the oldest is the default");
        assert_eq!(older_default(&second, all), Some("a-twin".into()), "same age: the name decides");
        assert_eq!(older_default(&twin, all), Some("first".into()));
        assert_eq!(older_default(&plain, all), None, "not a default, no conflict");
        let gone = ws("first").default_workspace().stored("first", "2026-01-01T00:00:00Z").deleting().build();
        assert_eq!(older_default(&twin, [&gone, &twin]), None, "a deleted default no longer counts");
    }
}
