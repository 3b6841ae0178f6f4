//! Names of cached objects by namespace. The reflector's `Store` answers "this name" in O(1)
//! but "everything in namespace X" only by scanning every object; with one namespace per
//! Workspace, a scan per reconcile makes convergence quadratic. This index is fed by the same
//! watch events as the store, so a reconcile touches only its own namespace's objects.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kube::Resource;
use kube::runtime::watcher::Event;

type Names = HashMap<String, BTreeSet<String>>;

#[derive(Clone, Default)]
pub struct ByNamespace {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    live: Names,
    /// A relist in progress: replaces `live` when it completes, as the store does.
    relist: Option<Names>,
}

impl ByNamespace {
    pub fn apply<K: Resource>(&self, event: &Event<K>) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Apply(o) => insert(&mut g.live, o),
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
            Event::InitApply(o) => insert(g.relist.get_or_insert_with(Names::new), o),
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
        g.live.values().map(BTreeSet::len).sum()
    }

    /// Names of the objects in `namespace`.
    pub fn names(&self, namespace: &str) -> Vec<String> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.live.get(namespace).map(|n| n.iter().cloned().collect()).unwrap_or_default()
    }
}

fn key<K: Resource>(o: &K) -> (String, String) {
    (o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

fn insert<K: Resource>(names: &mut Names, o: &K) {
    let (ns, name) = key(o);
    names.entry(ns).or_default().insert(name);
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
}
