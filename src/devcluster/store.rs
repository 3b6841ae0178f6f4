//! In-memory object storage with a global resourceVersion, a bounded change history for
//! watches, and immutable snapshots for consistent paginated lists.
//!
//! Collections are persistent ordered maps (`imbl::OrdMap`): taking a snapshot for a paginated
//! list is O(1), so every page of one list shows the same state, as the real server's etcd
//! reads at a fixed revision do. Keys are `namespace/name` (`/name` for cluster-scoped objects),
//! the order etcd lists in.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use imbl::OrdMap;
use serde_json::Value;
use tokio::sync::broadcast;

pub type Collection = OrdMap<Arc<str>, Arc<Value>>;

/// How many changes the watch history keeps; older resourceVersions get 410 Expired.
pub const DEFAULT_HISTORY: usize = 200_000;
/// How many list snapshots are kept for continue tokens.
const SNAPSHOTS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as recorded in the history and fanned out to watchers.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub collection: Arc<str>,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The object before the change, so selector-filtered watches can see it leave the selection.
    pub previous: Option<Arc<Value>>,
}

pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
}

pub struct Inner {
    rv: u64,
    collections: HashMap<Arc<str>, Collection>,
    history: VecDeque<Arc<Change>>,
    history_cap: usize,
    /// Every resourceVersion at or below this one is compacted away.
    compacted: u64,
    snapshots: VecDeque<(u64, Arc<str>, Collection)>,
}

pub fn key(namespace: Option<&str>, name: &str) -> Arc<str> {
    format!("{}/{}", namespace.unwrap_or(""), name).into()
}

impl Default for Store {
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY)
    }
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        let (changes, _) = broadcast::channel(65_536);
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                collections: HashMap::new(),
                history: VecDeque::new(),
                history_cap,
                compacted: 0,
                snapshots: VecDeque::new(),
            }),
            changes,
        }
    }

    pub fn lock(&self) -> Guard<'_> {
        Guard { inner: self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()), changes: &self.changes }
    }
}

/// Exclusive access to the store: all writes and consistent reads go through one of these.
pub struct Guard<'a> {
    inner: MutexGuard<'a, Inner>,
    changes: &'a broadcast::Sender<Arc<Change>>,
}

impl Guard<'_> {
    pub fn current_rv(&self) -> u64 {
        self.inner.rv
    }

    pub fn get(&self, collection: &str, key: &str) -> Option<Arc<Value>> {
        self.inner.collections.get(collection)?.get(key).cloned()
    }

    pub fn collection(&self, collection: &str) -> Collection {
        self.inner.collections.get(collection).cloned().unwrap_or_default()
    }

    /// Reserve the next resourceVersion (the caller stamps it on the object it stores).
    pub fn next_rv(&mut self) -> u64 {
        self.inner.rv += 1;
        self.inner.rv
    }

    /// Store `object` (already stamped with `rv`) and record the change.
    pub fn put(&mut self, collection: &Arc<str>, key: Arc<str>, object: Arc<Value>, rv: u64) {
        let map = self.inner.collections.entry(collection.clone()).or_default();
        let previous = map.insert(key, object.clone());
        let kind = if previous.is_some() { EventType::Modified } else { EventType::Added };
        self.record(Change { rv, collection: collection.clone(), kind, object, previous });
    }

    /// Remove an object; `last` is its final state stamped with the deletion's resourceVersion.
    pub fn remove(&mut self, collection: &Arc<str>, key: &str, last: Arc<Value>, rv: u64) {
        let previous = self.inner.collections.get_mut(collection).and_then(|m| m.remove(key));
        self.record(Change { rv, collection: collection.clone(), kind: EventType::Deleted, object: last, previous });
    }

    pub fn drop_collection(&mut self, collection: &str) {
        self.inner.collections.remove(collection);
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        let inner = &mut *self.inner;
        inner.history.push_back(change.clone());
        while inner.history.len() > inner.history_cap {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// The oldest resourceVersion a watch may resume from.
    pub fn compacted_rv(&self) -> u64 {
        self.inner.compacted
    }

    /// Changes after `rv` (exclusive) in resourceVersion order, or `None` when `rv` is compacted.
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.inner.compacted {
            return None;
        }
        let history = &self.inner.history;
        let start = history.partition_point(|c| c.rv <= rv);
        Some(history.range(start..).cloned().collect())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// Forget all history up to now: watches and continue tokens from before get 410.
    pub fn compact(&mut self) {
        let inner = &mut *self.inner;
        inner.history.clear();
        inner.compacted = inner.rv;
        inner.snapshots.clear();
    }

    pub fn save_snapshot(&mut self, rv: u64, collection: Arc<str>, snapshot: Collection) {
        let snaps = &mut self.inner.snapshots;
        if snaps.iter().any(|(r, c, _)| *r == rv && *c == collection) {
            return;
        }
        snaps.push_back((rv, collection, snapshot));
        while snaps.len() > SNAPSHOTS {
            snaps.pop_front();
        }
    }

    pub fn snapshot(&self, rv: u64, collection: &str) -> Option<Collection> {
        if rv < self.inner.compacted {
            return None;
        }
        self.inner.snapshots.iter().find(|(r, c, _)| *r == rv && &**c == collection).map(|(_, _, s)| s.clone())
    }

    /// Every stored object of every collection whose key is in `namespace`.
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<(Arc<str>, Arc<str>)> {
        let prefix = format!("{namespace}/");
        let end = format!("{namespace}0"); // '0' sorts right after '/'
        let mut out = Vec::new();
        for (coll, map) in &self.inner.collections {
            for (k, _) in map
                .range::<_, str>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Excluded(end.as_str())))
            {
                out.push((coll.clone(), k.clone()));
            }
        }
        out
    }
}

/// Key bounds of a list: optionally one namespace, optionally starting after a continue key.
pub struct Bounds {
    lo: std::ops::Bound<String>,
    hi: std::ops::Bound<String>,
}

impl Bounds {
    pub fn new(namespace: Option<&str>, after: Option<&str>) -> Self {
        use std::ops::Bound;
        let (lo, hi) = match namespace {
            // '0' sorts right after '/', so this range is exactly the namespace's keys.
            Some(ns) => (format!("{ns}/"), Bound::Excluded(format!("{ns}0"))),
            None => (String::new(), Bound::Unbounded),
        };
        let lo = match after {
            Some(a) if a >= lo.as_str() => Bound::Excluded(a.to_string()),
            _ => Bound::Included(lo),
        };
        Bounds { lo, hi }
    }

    pub fn iter<'a>(&'a self, map: &'a Collection) -> impl Iterator<Item = (&'a Arc<str>, &'a Arc<Value>)> + 'a {
        map.range::<_, str>((as_str_bound(&self.lo), as_str_bound(&self.hi)))
    }
}

fn as_str_bound(b: &std::ops::Bound<String>) -> std::ops::Bound<&str> {
    match b {
        std::ops::Bound::Included(s) => std::ops::Bound::Included(s.as_str()),
        std::ops::Bound::Excluded(s) => std::ops::Bound::Excluded(s.as_str()),
        std::ops::Bound::Unbounded => std::ops::Bound::Unbounded,
    }
}
