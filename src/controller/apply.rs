//! Apply: bring the cluster to the built children with as few requests as possible. One generic
//! applier for every namespaced child compares with the cache, writes only the difference, and
//! prunes only what the observation found to be the Workspace's; the namespace, which is created
//! rather than applied, has its own small steps.

use std::fmt;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::controller::build;
use crate::controller::cache::{Amounts, Cached};
use crate::controller::child::{ChildRef, Key, Kind, marks};
use crate::controller::context::Context;
use crate::controller::error::{ApplyError, is_status};
use crate::controller::workloads::Change;
use crate::crd::WorkloadKind;
use crate::labels;

/// A namespaced child the generic applier keeps in step. The caches hold only its metadata
/// (any owner of a workspace can create RoleBindings and NetworkPolicies bearing the operator's
/// labels by the thousand: they cost the operator their metadata, never their content). So a
/// child is as the operator wants it when it carries the fingerprint of the wanted content and
/// nobody has written it since the operator did.
pub trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + fmt::Debug
{
    const KIND: Kind;

    /// Can a write fail because a field cannot change (so the child is deleted and created)?
    const IMMUTABLE_FIELDS: bool = false;

    /// Has someone else changed the content since the operator wrote it? By default: another
    /// manager owns some of its content (seen even across a restart of the operator), or its
    /// version moved since the operator wrote or first saw it. A kind whose content is cached
    /// answers from it instead.
    fn drifted(ctx: &Context, key: &Key, _want: &Self, cached: &Cached) -> bool {
        cached.other_writers || ctx.versions.moved(key, cached.version().as_deref())
    }
}

impl Child for RoleBinding {
    const KIND: Kind = Kind::RoleBinding;
    /// roleRef is immutable.
    const IMMUTABLE_FIELDS: bool = true;
}

/// Quotas are cached with their `spec.hard`, because the quota controller rewrites their status
/// on every pod created or deleted: a moved version says nothing about the spec.
impl Child for ResourceQuota {
    const KIND: Kind = Kind::ResourceQuota;

    /// Compared by amount: the API server stores `1024Mi` as `1Gi`.
    fn drifted(_ctx: &Context, _key: &Key, want: &Self, cached: &Cached) -> bool {
        let want = Amounts::of(want.spec.as_ref().and_then(|s| s.hard.as_ref()));
        cached.hard.as_ref().is_none_or(|have| !have.same(&want))
    }
}

impl Child for LimitRange {
    const KIND: Kind = Kind::LimitRange;
}

impl Child for NetworkPolicy {
    const KIND: Kind = Kind::NetworkPolicy;
}

/// `want` with the fingerprint of its content (everything but the fingerprint) as an annotation.
fn fingerprinted<K: Child>(want: &K) -> K {
    let bytes = serde_json::to_vec(want).unwrap_or_default();
    let digest: String = Sha256::digest(&bytes).iter().take(8).map(|b| format!("{b:02x}")).collect();
    let mut w = want.clone();
    w.annotations_mut().insert(labels::APPLIED_ANNOTATION.into(), digest);
    w
}

fn child_ref<K: Child>(namespace: &str, name: &str) -> ChildRef {
    ChildRef::new(K::KIND, Some(namespace), name)
}

/// Does the cached child carry the operator's labels and annotations as `want` has them
/// (others may have added their own)?
fn labelled_as<K: Resource>(have: &Cached, want: &K) -> bool {
    have.marks == marks(want.meta())
}

/// Make the Workspace's children of one kind in `namespace` exactly `want`: apply what differs
/// from `have` (the cached ones that are the Workspace's), delete the rest. Returns true when a
/// write of a moment ago has yet to show in the cache (the reconcile comes back for it).
pub async fn sync<K: Child>(ctx: &Context, namespace: &str, want: &[K], have: &[Cached]) -> Result<bool, ApplyError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let mut settling = false;
    for w in want {
        let w = fingerprinted(w);
        let name = w.name_any();
        let key = Key::Child(child_ref::<K>(namespace, &name));
        let current = have.iter().find(|h| *h.name == *name);
        let cached_rv = current.and_then(Cached::version);
        let cached_rv = cached_rv.as_deref();
        if current.is_some_and(|h| labelled_as(h, &w) && !K::drifted(ctx, &key, &w, h)) {
            ctx.expect.forget(&key);
            continue;
        }
        if ctx.expect.pending(&key, cached_rv) {
            settling = true;
            continue;
        }
        let child = || child_ref::<K>(namespace, &name);
        let params = PatchParams::apply(labels::FIELD_MANAGER).force();
        let written = match api.patch(&name, &params, &Patch::Apply(&w)).await {
            // A field that cannot change (a RoleBinding's roleRef): replace the child.
            Err(e) if K::IMMUTABLE_FIELDS && is_immutable_field(&e) => {
                delete_child(&api, child(), None).await?;
                api.patch(&name, &params, &Patch::Apply(&w)).await
            }
            other => other,
        }
        .map_err(|source| ApplyError::Write { child: child(), source })?;
        ctx.expect.wrote(&key, written.resource_version());
        ctx.versions.record(&key, written.resource_version());
    }
    let keep: Vec<String> = want.iter().map(|w| w.name_any()).collect();
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    Ok(prune::<K>(ctx, namespace, &keep, have).await? || settling)
}

/// Delete the Workspace's cached children of one kind in `namespace`, except those named in `keep`.
pub async fn prune<K: Child>(
    ctx: &Context,
    namespace: &str,
    keep: &[&str],
    have: &[Cached],
) -> Result<bool, ApplyError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let mut settling = false;
    for h in have.iter().filter(|h| !keep.contains(&&*h.name)) {
        let key = Key::Child(child_ref::<K>(namespace, &h.name));
        if ctx.expect.pending(&key, h.version().as_deref()) {
            settling = true;
            continue;
        }
        let uid = h.uid.as_ref().map(ToString::to_string);
        delete_child(&api, child_ref::<K>(namespace, &h.name), uid).await?;
        ctx.expect.wrote(&key, None);
        ctx.versions.record(&key, None);
    }
    Ok(settling)
}

/// The first of `want` that exists under its name but is not this Workspace's (`key` in its
/// workspace annotation) — a platform's own quota in a namespace being enrolled, say. Read
/// rather than cached: the caches hold only objects labelled as the operator's.
pub async fn foreign<K: Child>(
    ctx: &Context,
    namespace: &str,
    want: &[K],
    key: &str,
) -> Result<Option<ChildRef>, ApplyError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    for w in want {
        let child = child_ref::<K>(namespace, &w.name_any());
        let found =
            api.get_opt(&child.name).await.map_err(|source| ApplyError::Read { child: child.clone(), source })?;
        if found.is_some_and(|f| f.annotations().get(labels::WORKSPACE_ANNOTATION).map(String::as_str) != Some(key)) {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

/// A 422 that names `roleRef`: the only field of a child that cannot change. Any other 422
/// (an admission policy, say) must not make the operator delete a working child.
fn is_immutable_field(e: &kube::Error) -> bool {
    let kube::Error::Api(s) = e else { return false };
    let causes = s.details.as_ref().map(|d| d.causes.as_slice()).unwrap_or_default();
    s.code == 422 && causes.iter().any(|c| c.field == "roleRef")
}

/// Delete, taking "already gone" for success; with `uid`, only the object of that uid (the one
/// observed), never one recreated under the name since.
async fn delete_child<K: Child>(api: &Api<K>, child: ChildRef, uid: Option<String>) -> Result<(), ApplyError> {
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&child.name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        Err(source) => Err(ApplyError::Delete { child, source }),
    }
}

/// Create the namespace, or on 409 return the one that exists, whoever it belongs to.
pub async fn create_namespace(ctx: &Context, want: &Namespace) -> Result<Namespace, ApplyError> {
    let name = want.name_any();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api.create(&labels::post_params(), want).await {
        Ok(ns) => {
            info!(namespace = name, "created namespace");
            Ok(ns)
        }
        Err(e) if is_status(&e, 409) => match api.get_opt(&name).await {
            Ok(Some(ns)) => Ok(ns),
            // Gone again between the two requests, or unreadable: the retry starts over.
            _ => Err(ApplyError::Create { child: ChildRef::namespace(&name), source: e }),
        },
        Err(source) => Err(ApplyError::Create { child: ChildRef::namespace(&name), source }),
    }
}

/// Bring an existing namespace's labels and annotations in step (see `build::namespace_patch`).
pub async fn label_namespace(ctx: &Context, ns: Namespace, want: &Namespace) -> Result<Namespace, ApplyError> {
    let Some(patch) = build::namespace_patch(&ns, want) else { return Ok(ns) };
    patch_namespace(ctx, &ns, patch).await
}

/// Give an adopted namespace back as it was found (see `build::release_patch`).
pub async fn release_namespace(ctx: &Context, ns: &Namespace) -> Result<(), ApplyError> {
    patch_namespace(ctx, ns, build::release_patch(ns)).await.map(|_| ())
}

/// Write over the very version the namespace was judged on: whether it may be adopted, whose
/// it is, whether it still consents. Another writer in between (a second Workspace enrolling it,
/// its owner withdrawing consent) makes this a 409, and the retry judges it afresh.
async fn patch_namespace(ctx: &Context, ns: &Namespace, mut patch: serde_json::Value) -> Result<Namespace, ApplyError> {
    let name = ns.name_any();
    patch["metadata"]["resourceVersion"] = ns.resource_version().into();
    Api::<Namespace>::all(ctx.client.clone())
        .patch(&name, &labels::patch_params(), &Patch::Merge(patch))
        .await
        .map_err(|source| ApplyError::Write { child: ChildRef::namespace(&name), source })
}

/// Stop or restart one workload: its `scale` subresource, or its `spec.suspend` (the only
/// writes the operator makes to a workload). One deleted meanwhile needs nothing.
pub async fn change_workload(ctx: &Context, namespace: &str, change: &Change) -> Result<(), ApplyError> {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    let client = ctx.client.clone();
    let params = labels::patch_params();
    let (kind, name, done) = match change {
        Change::Scale { kind, name, replicas } => {
            let patch = Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}}));
            let done = match kind {
                WorkloadKind::StatefulSet => {
                    Api::<StatefulSet>::namespaced(client, namespace).patch_scale(name, &params, &patch).await
                }
                WorkloadKind::ReplicaSet => {
                    Api::<ReplicaSet>::namespaced(client, namespace).patch_scale(name, &params, &patch).await
                }
                _ => Api::<Deployment>::namespaced(client, namespace).patch_scale(name, &params, &patch).await,
            };
            (kind, name, done.map(|_| ()))
        }
        Change::Suspend { kind, name, suspend } => {
            let patch = Patch::Merge(serde_json::json!({"spec": {"suspend": suspend}}));
            let done = match kind {
                WorkloadKind::CronJob => {
                    Api::<CronJob>::namespaced(client, namespace).patch(name, &params, &patch).await.map(|_| ())
                }
                _ => Api::<Job>::namespaced(client, namespace).patch(name, &params, &patch).await.map(|_| ()),
            };
            (kind, name, done)
        }
    };
    match done {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(source) => {
            Err(ApplyError::Workload { kind: kind.as_str(), namespace: namespace.into(), name: name.clone(), source })
        }
    }
}

/// Delete the namespace as observed: the uid precondition makes sure that a namespace recreated
/// under the same name since is never the one deleted.
pub async fn delete_namespace(ctx: &Context, ns: &Namespace) -> Result<(), ApplyError> {
    let name = ns.name_any();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: ns.uid(), resource_version: None }),
        ..DeleteParams::background()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            info!(namespace = name, "deleting namespace");
            Ok(())
        }
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(source) => Err(ApplyError::Delete { child: ChildRef::namespace(&name), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::cache::Token;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn child(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |pairs: &[(&str, &str)]| Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        ObjectMeta {
            name: Some("workspace-admins".into()),
            namespace: Some("ws-a".into()),
            resource_version: Some("7".into()),
            uid: Some("u-1".into()),
            creation_timestamp: None,
            labels: map(labels),
            annotations: map(annotations),
            finalizers: Some(vec!["x".into()]),
            ..Default::default()
        }
    }

    const OURS: [(&str, &str); 3] = [
        (labels::MANAGED_BY, labels::MANAGED_BY_VALUE),
        (labels::WORKSPACE_NAMESPACE, "team-a"),
        (labels::WORKSPACE_NAME, "a"),
    ];
    const NOTES: [(&str, &str); 3] = [
        (labels::WORKSPACE_ANNOTATION, "team-a/a"),
        (labels::UID_ANNOTATION, "w-1"),
        (labels::APPLIED_ANNOTATION, "f1"),
    ];

    fn cached(meta: ObjectMeta) -> Cached {
        Cached::of(Kind::RoleBinding, &RoleBinding { metadata: meta, ..Default::default() })
    }

    #[test]
    fn a_cached_child_keeps_its_workspace_and_a_digest_of_the_operators_marks_only() {
        let want = child(&OURS, &NOTES);
        let c = cached(child(&[&OURS[..], &[("team", "x")]].concat(), &[&NOTES[..], &[("note", "y")]].concat()));
        assert_eq!(&*c.name, "workspace-admins");
        let text = |t: &Option<Token>| t.as_ref().map(ToString::to_string);
        assert_eq!((text(&c.resource_version), text(&c.uid)), (Some("7".into()), Some("u-1".into())));
        assert_eq!(c.workspace.as_deref(), Some("team-a/a"));
        assert_eq!(c.marks, marks(&want), "others' keys do not count");
    }

    #[test]
    fn the_marks_are_every_label_and_annotation_the_operator_puts_on_a_child() {
        use crate::controller::child::{MARK_ANNOTATIONS, MARK_LABELS};
        use crate::crd::WorkspaceClass;
        let ws = crate::fixtures::ws("a").in_ns("team-a").owner("ann@example.com").limit("pods", "2").build();
        let class = WorkspaceClass::new("standard", Default::default());
        let c = build::children(&ws, &class, "team-a-a", build::Goal::Available);
        let mut metas: Vec<ObjectMeta> = c.bindings.iter().map(|b| fingerprinted(b).metadata).collect();
        metas.extend(c.quota.iter().map(|q| fingerprinted(q).metadata));
        metas.extend(c.limit_range.iter().map(|o| fingerprinted(o).metadata));
        metas.extend(c.network_policy.iter().map(|o| fingerprinted(o).metadata));
        assert!(metas.len() >= 2, "a binding and a quota at least");
        let sorted = |keys: &[&str]| {
            let mut v: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            v.sort();
            v
        };
        for meta in metas {
            let keys =
                |m: &Option<BTreeMap<String, String>>| m.iter().flatten().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            let name = meta.name.clone().unwrap_or_default();
            assert_eq!(
                keys(&meta.labels),
                sorted(&MARK_LABELS),
                "{name}: a label added to children must be marked too"
            );
            assert_eq!(keys(&meta.annotations), sorted(&MARK_ANNOTATIONS), "{name}: so must an annotation");
        }
    }

    #[test]
    fn a_mark_removed_or_changed_is_told_from_the_wanted_one() {
        let want = marks(&child(&OURS, &NOTES));
        let cases = [
            ("a label removed", child(&OURS[..2], &NOTES)),
            ("a label changed", child(&[OURS[0], OURS[1], (labels::WORKSPACE_NAME, "b")], &NOTES)),
            ("an older fingerprint", child(&OURS, &[NOTES[0], NOTES[1], (labels::APPLIED_ANNOTATION, "f0")])),
            ("another Workspace's", child(&OURS, &[(labels::WORKSPACE_ANNOTATION, "team-a/b"), NOTES[1], NOTES[2]])),
        ];
        for (case, meta) in cases {
            assert_ne!(cached(meta).marks, want, "{case}");
        }
    }
}
