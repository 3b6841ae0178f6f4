//! The vocabulary every step shares: the kinds of child a Workspace has, a reference to one,
//! the key an expectation is kept under, and the digest of the operator's marks on a child.
//! A leaf: it names no other module of the controller.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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

    pub(crate) fn namespace(name: &str) -> Self {
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

/// What an expectation (a write not yet seen in the caches) is kept for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A Workspace, by `namespace/name`.
    Workspace(String),
    Child(ChildRef),
}

/// The operator's own labels and annotations on a child: a cached child keeps only a digest
/// of them (see `cache::Cached`).
pub(super) const MARK_LABELS: [&str; 3] = [labels::MANAGED_BY, labels::WORKSPACE_NAMESPACE, labels::WORKSPACE_NAME];
pub(super) const MARK_ANNOTATIONS: [&str; 3] =
    [labels::WORKSPACE_ANNOTATION, labels::UID_ANNOTATION, labels::APPLIED_ANNOTATION];

/// A digest of the operator's own labels and annotations on an object, present or not. Only
/// ever compared within one process, so the hasher need not be stable across versions.
pub fn marks(meta: &ObjectMeta) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    for (keys, map) in [(&MARK_LABELS, &meta.labels), (&MARK_ANNOTATIONS, &meta.annotations)] {
        for k in keys {
            (k, map.as_ref().and_then(|m| m.get(*k))).hash(&mut h);
        }
    }
    h.finish()
}
