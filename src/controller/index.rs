//! Names of cached Workspaces by namespace. The reflector's `Store` answers "this name" in
//! O(1) but "everything in namespace X" only by scanning every object; with one namespace per
//! Workspace, a scan per reconcile makes convergence quadratic. This index is fed by the same
//! watch events as the store, so a reconcile touches only its own namespace's objects.
//!
//! It also keeps, per Workspace, a digest of its list-view labels, which the store does not
//! hold (see `strip`): the report step only asks whether they are as wanted, and a label map
//! costs a Workspace about a kilobyte.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};

use kube::Resource;
use kube::runtime::watcher::Event;

use crate::labels;

/// Per namespace, each name with the digest of its list-view labels.
type Names = HashMap<String, BTreeMap<String, u64>>;

#[derive(Clone, Default)]
pub struct ByNamespace {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    live: Names,
    /// A relist in progress: replaces `live` when it completes, as the store does.
    relist: Option<Names>,
    /// Keys random to the process, so nobody can choose label values whose digest passes for
    /// the wanted ones.
    hasher: std::hash::RandomState,
}

impl ByNamespace {
    pub fn apply<K: Resource>(&self, event: &Event<K>) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Apply(o) => {
                let digest = digest(&g.hasher, o.meta().labels.as_ref());
                insert(&mut g.live, o, digest)
            }
            Event::Delete(o) => {
                let (ns, name) = key(o);
                if let Some(names) = g.live.get_mut(&ns) {
                    names.remove(&name);
                    if names.is_empty() {
                        g.live.remove(&ns);
                    }
                }
            }
            Event::Init => g.relist = Some(Names::new()),
            Event::InitApply(o) => {
                let digest = digest(&g.hasher, o.meta().labels.as_ref());
                insert(g.relist.get_or_insert_with(Names::new), o, digest)
            }
            Event::InitDone => {
                if let Some(names) = g.relist.take() {
                    g.live = names;
                }
            }
        }
    }

    /// The namespaces that hold at least one object, sorted (what is built from them, such as
    /// a message, must not change from one call to the next).
    pub fn namespaces(&self) -> Vec<String> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = g.live.keys().cloned().collect();
        names.sort();
        names
    }

    /// How many objects there are.
    pub fn count(&self) -> usize {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.live.values().map(BTreeMap::len).sum()
    }

    /// Names of the objects in `namespace`.
    pub fn names(&self, namespace: &str) -> Vec<String> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.live.get(namespace).map(|n| n.keys().cloned().collect()).unwrap_or_default()
    }

    /// Do the list-view labels of the Workspace `namespace/name`, as last seen, read `want`?
    /// `None` when it has not been seen.
    pub fn labels_read(&self, namespace: &str, name: &str, want: &BTreeMap<String, String>) -> Option<bool> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let seen = *g.live.get(namespace)?.get(name)?;
        Some(seen == digest(&g.hasher, Some(want)))
    }
}

/// A digest of the list-view labels in `labels`, present or not.
fn digest(hasher: &std::hash::RandomState, labels: Option<&BTreeMap<String, String>>) -> u64 {
    hasher.hash_one(labels::LIST_LABELS.map(|k| labels.and_then(|l| l.get(k))))
}

/// What a Workspace about to be cached keeps of its metadata, once this index has the digest of
/// its list-view labels: no annotations, no labels, no managedFields. No reconcile reads them,
/// and whoever writes Workspaces decides their size (up to 256 KiB each), so kept they would be
/// memory a tenant could fill.
pub fn strip(meta: &mut kube::api::ObjectMeta) {
    meta.managed_fields = None;
    meta.annotations = None;
    meta.labels = None;
}

fn key<K: Resource>(o: &K) -> (String, String) {
    (o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

fn insert<K: Resource>(names: &mut Names, o: &K, digest: u64) {
    let (ns, name) = key(o);
    names.entry(ns).or_default().insert(name, digest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    use kube::api::ObjectMeta;

    fn rb(ns: &str, name: &str) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta { namespace: Some(ns.into()), name: Some(name.into()), ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn follows_applies_deletes_and_relists() {
        let idx = ByNamespace::default();
        idx.apply(&Event::Apply(rb("a", "x")));
        idx.apply(&Event::Apply(rb("a", "y")));
        idx.apply(&Event::Apply(rb("b", "x")));
        idx.apply(&Event::Delete(rb("a", "x")));
        assert_eq!(idx.names("a"), ["y"]);
        assert_eq!(idx.names("b"), ["x"]);
        assert_eq!(idx.namespaces(), ["a", "b"]);
        assert_eq!(idx.count(), 2);
        // During a relist the old view stays; when it completes, only what it listed remains.
        idx.apply(&Event::<RoleBinding>::Init);
        idx.apply(&Event::InitApply(rb("c", "z")));
        assert_eq!(idx.names("a"), ["y"]);
        idx.apply(&Event::<RoleBinding>::InitDone);
        assert!(idx.names("a").is_empty());
        assert_eq!(idx.names("c"), ["z"]);
    }

    fn labelled(name: &str, pairs: &[(&str, &str)]) -> RoleBinding {
        let mut o = rb("a", name);
        o.metadata.labels = Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        o
    }

    #[test]
    fn the_list_labels_last_seen_are_kept_as_a_digest_and_only_they_count() {
        let idx = ByNamespace::default();
        let want: BTreeMap<String, String> = [(labels::STATUS.to_string(), "Available".to_string())].into();
        assert_eq!(idx.labels_read("a", "x", &want), None, "never seen");
        idx.apply(&Event::Apply(labelled("x", &[(labels::STATUS, "Available"), ("team", "t")])));
        assert_eq!(idx.labels_read("a", "x", &want), Some(true), "other labels do not count");
        idx.apply(&Event::Apply(labelled("x", &[(labels::STATUS, "Failed")])));
        assert_eq!(idx.labels_read("a", "x", &want), Some(false), "the latest version counts");
        idx.apply(&Event::Apply(labelled("x", &[(labels::STATUS, "Available"), (labels::DEFAULT, "true")])));
        assert_eq!(idx.labels_read("a", "x", &want), Some(false), "one too many");
        idx.apply(&Event::Delete(labelled("x", &[])));
        assert_eq!(idx.labels_read("a", "x", &want), None, "forgotten with the object");
    }

    #[test]
    fn a_cached_workspace_keeps_none_of_its_labels_or_annotations() {
        let mut meta = labelled("x", &[(labels::STATUS, "Available"), ("team", "t")]).metadata;
        meta.annotations = Some([("big".to_string(), "x".repeat(200_000))].into());
        strip(&mut meta);
        assert_eq!((meta.labels, meta.annotations), (None, None));
        assert_eq!(meta.name.as_deref(), Some("x"), "its name stays");
    }
}
