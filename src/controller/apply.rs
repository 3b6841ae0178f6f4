//! Apply: bring the cluster to the built children with as few requests as possible. One generic
//! applier for every namespaced child compares with the cache, writes only the difference, and
//! prunes only what the observation found to be the Workspace's; the namespace, which is created
//! rather than applied, has its own small steps.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::info;

use crate::controller::build;
use crate::controller::error::ApplyError;
use crate::controller::observe::get_namespace;
use crate::controller::{Context, Key};
use crate::labels;

/// The kinds of object a Workspace has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Namespace,
    RoleBinding,
    ResourceQuota,
    LimitRange,
    NetworkPolicy,
}

/// One child object, by kind, namespace and name: what an error names and what an expectation
/// is kept for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChildRef {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ChildRef {
    pub fn new(kind: Kind, namespace: Option<&str>, name: &str) -> Self {
        ChildRef { kind, namespace: namespace.map(String::from), name: name.into() }
    }

    fn namespace(name: &str) -> Self {
        ChildRef::new(Kind::Namespace, None, name)
    }
}

impl fmt::Display for ChildRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = format!("{:?}", self.kind).to_lowercase();
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

/// A namespaced child the generic applier keeps in step.
pub trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + fmt::Debug
{
    const KIND: Kind;

    /// Does the cached object already carry what `want` says, apart from labels and annotations?
    fn same_content(have: &Self, want: &Self) -> bool;

    /// Must `have` be deleted before `want` can be written (a field that cannot change)?
    fn replaces(_have: &Self, _want: &Self) -> bool {
        false
    }
}

impl Child for RoleBinding {
    const KIND: Kind = Kind::RoleBinding;

    fn same_content(have: &Self, want: &Self) -> bool {
        have.role_ref == want.role_ref && have.subjects == want.subjects
    }

    /// roleRef is immutable.
    fn replaces(have: &Self, want: &Self) -> bool {
        have.role_ref != want.role_ref
    }
}

impl Child for ResourceQuota {
    const KIND: Kind = Kind::ResourceQuota;

    fn same_content(have: &Self, want: &Self) -> bool {
        let hard = |q: &ResourceQuota| q.spec.as_ref().and_then(|s| s.hard.clone());
        hard(have) == hard(want)
    }
}

impl Child for LimitRange {
    const KIND: Kind = Kind::LimitRange;

    fn same_content(have: &Self, want: &Self) -> bool {
        have.spec == want.spec
    }
}

impl Child for NetworkPolicy {
    const KIND: Kind = Kind::NetworkPolicy;

    fn same_content(have: &Self, want: &Self) -> bool {
        have.spec == want.spec
    }
}

fn child_ref<K: Child>(namespace: &str, name: &str) -> ChildRef {
    ChildRef::new(K::KIND, Some(namespace), name)
}

/// Is every label and annotation of `want` on `have` (others may be there too)?
fn labelled_as<K: Resource>(have: &K, want: &K) -> bool {
    let sub = |h: &BTreeMap<String, String>, w: &BTreeMap<String, String>| w.iter().all(|(k, v)| h.get(k) == Some(v));
    sub(have.labels(), want.labels()) && sub(have.annotations(), want.annotations())
}

/// Make the Workspace's children of one kind in `namespace` exactly `want`: apply what differs
/// from `have` (the cached ones that are the Workspace's), delete the rest. Returns true when a
/// write of a moment ago has yet to show in the cache (the reconcile comes back for it).
pub async fn sync<K: Child>(ctx: &Context, namespace: &str, want: &[K], have: &[Arc<K>]) -> Result<bool, ApplyError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let mut settling = false;
    for w in want {
        let name = w.name_any();
        let key = Key::Child(child_ref::<K>(namespace, &name));
        let current = have.iter().find(|h| h.name_any() == name);
        if current.is_some_and(|h| K::same_content(h, w) && labelled_as(&**h, w)) {
            ctx.expect.forget(&key);
            continue;
        }
        if ctx.expect.pending(&key, current.and_then(|h| h.resource_version()).as_deref()) {
            settling = true;
            continue;
        }
        if let Some(h) = current
            && K::replaces(h, w)
        {
            delete_child(&api, child_ref::<K>(namespace, &name)).await?;
        }
        let written = api
            .patch(&name, &PatchParams::apply(labels::FIELD_MANAGER).force(), &Patch::Apply(w))
            .await
            .map_err(|source| ApplyError::Write { child: child_ref::<K>(namespace, &name), source })?;
        ctx.expect.wrote(&key, written.resource_version());
    }
    for h in have.iter().filter(|h| !want.iter().any(|w| w.name_any() == h.name_any())) {
        let key = Key::Child(child_ref::<K>(namespace, &h.name_any()));
        if ctx.expect.pending(&key, h.resource_version().as_deref()) {
            settling = true;
            continue;
        }
        delete_child(&api, child_ref::<K>(namespace, &h.name_any())).await?;
        ctx.expect.wrote(&key, None);
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

/// Delete, taking "already gone" for success.
async fn delete_child<K: Child>(api: &Api<K>, child: ChildRef) -> Result<(), ApplyError> {
    match api.delete(&child.name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(source) => Err(ApplyError::Delete { child, source }),
    }
}

pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
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
        Err(e) if is_status(&e, 409) => match get_namespace(ctx, &name).await {
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
    patch_namespace(ctx, &ns.name_any(), patch).await
}

/// Give an adopted namespace back as it was found (see `build::release_patch`).
pub async fn release_namespace(ctx: &Context, ns: &Namespace) -> Result<(), ApplyError> {
    patch_namespace(ctx, &ns.name_any(), build::release_patch(ns)).await.map(|_| ())
}

async fn patch_namespace(ctx: &Context, name: &str, patch: serde_json::Value) -> Result<Namespace, ApplyError> {
    Api::<Namespace>::all(ctx.client.clone())
        .patch(name, &labels::patch_params(), &Patch::Merge(patch))
        .await
        .map_err(|source| ApplyError::Write { child: ChildRef::namespace(name), source })
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
