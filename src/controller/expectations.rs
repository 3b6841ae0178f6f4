//! Writes the watch caches have not shown yet.
//!
//! A reconcile reads from watch caches, and those lag the operator's own writes by a moment. A
//! reconcile that runs in that moment (triggered by another watch) would see the old object and
//! write again: a wasted request, or a 409 on a stale resourceVersion. So each write records the
//! resourceVersion it produced; until the cache shows that version (or a short grace period
//! passes, after which the cache is trusted again), the object is treated as already written.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a write is expected to take to reach the caches.
pub const GRACE: Duration = Duration::from_secs(5);
/// How soon a reconcile that waits for a write looks again if no event has woken it first (when
/// another writer's version hides the operator's, no event ever shows the operator's own).
pub const RECHECK: Duration = Duration::from_secs(1);

pub struct Expectations<K> {
    written: Mutex<HashMap<K, Written>>,
}

struct Written {
    /// The version the write left (None: deleted).
    rv: Option<String>,
    /// Versions earlier writes left that the watch has not shown yet: a reconcile that writes
    /// a Workspace's labels and then its status expects both events.
    earlier: Vec<String>,
    at: Instant,
    /// A reconcile found the write not yet in the cache and waits for its watch event.
    awaited: bool,
}

impl<K> Default for Expectations<K> {
    fn default() -> Self {
        Expectations { written: Mutex::default() }
    }
}

impl<K: Eq + Hash + Clone> Expectations<K> {
    /// Record a write of `key` that left it at `rv` (None: deleted).
    pub fn wrote(&self, key: &K, rv: Option<String>) {
        let mut w = self.lock();
        let mut earlier = Vec::new();
        if let Some(before) = w.remove(key).filter(|b| b.at.elapsed() <= GRACE) {
            earlier = before.earlier;
            earlier.extend(before.rv);
            // Only the last few can still be on their way.
            let extra = earlier.len().saturating_sub(4);
            earlier.drain(..extra);
        }
        w.insert(key.clone(), Written { rv, earlier, at: Instant::now(), awaited: false });
    }

    /// Is a recent write of `key` not yet visible in a cache that shows `cached_rv`? A yes
    /// means the caller waits for the write's watch event.
    pub fn pending(&self, key: &K, cached_rv: Option<&str>) -> bool {
        let mut w = self.lock();
        let Some(written) = w.get_mut(key) else { return false };
        let caught_up = written.rv.as_deref() == cached_rv;
        if caught_up || written.at.elapsed() > GRACE {
            w.remove(key);
            return false;
        }
        written.awaited = true;
        true
    }

    /// The watch shows `key` at `rv`. True when that is the operator's own write and no
    /// reconcile waits for it: the reconcile that wrote it has done its work, so the event need
    /// not start another. The expectation is settled then.
    pub fn echo(&self, key: &K, rv: Option<&str>) -> bool {
        let mut w = self.lock();
        let (Some(written), Some(rv)) = (w.get_mut(key), rv) else { return false };
        if written.awaited {
            return false;
        }
        if written.rv.as_deref() == Some(rv) {
            w.remove(key);
            return true;
        }
        match written.earlier.iter().position(|e| e == rv) {
            Some(i) => {
                written.earlier.remove(i);
                true
            }
            None => false,
        }
    }

    /// A reconcile begins for the Workspace whose children `in_scope` picks. Its caches may not
    /// show yet what an earlier reconcile wrote there (a binding created a moment ago is not in
    /// the snapshot, so it could be neither kept nor pruned): each such write is awaited from
    /// now on, so its event wakes the Workspace again. True when there is one. Writes older
    /// than the grace are forgotten here too (the caches are trusted again after it).
    pub fn await_all(&self, in_scope: impl Fn(&K) -> bool) -> bool {
        let mut w = self.lock();
        w.retain(|_, e| e.at.elapsed() <= GRACE);
        let mut any = false;
        for (_, e) in w.iter_mut().filter(|(k, _)| in_scope(k)) {
            e.awaited = true;
            any = true;
        }
        any
    }

    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Written>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The resourceVersion each child had when the operator last wrote it, or first found it as it
/// wants it. The caches hold only children's metadata: a version that has moved since means
/// someone else changed the child, whose content is not cached, so it is applied again.
///
/// One entry per child of the fleet, so keys and versions are kept as digests (16 bytes where
/// their strings took some 180), under keys random to the process, so nobody can make two
/// collide on purpose; by chance, with 2^-64 per pair, a collision costs a needless write.
pub struct Versions<K> {
    seen: Mutex<HashMap<u64, u64>>,
    hasher: std::hash::RandomState,
    key: std::marker::PhantomData<fn(&K)>,
}

impl<K> Default for Versions<K> {
    fn default() -> Self {
        Versions { seen: Mutex::default(), hasher: std::hash::RandomState::new(), key: std::marker::PhantomData }
    }
}

impl<K: Hash> Versions<K> {
    /// Has `key` changed since the operator last wrote or saw it? A child seen for the first
    /// time (after a start) is taken as found, and its version remembered.
    pub fn moved(&self, key: &K, cached_rv: Option<&str>) -> bool {
        let Some(cached) = cached_rv else { return false };
        let cached = self.hasher.hash_one(cached);
        *self.lock().entry(self.hasher.hash_one(key)).or_insert(cached) != cached
    }

    pub fn record(&self, key: &K, rv: Option<String>) {
        let key = self.hasher.hash_one(key);
        match rv {
            Some(rv) => self.lock().insert(key, self.hasher.hash_one(rv.as_str())),
            None => self.lock().remove(&key),
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_until_the_cache_shows_the_write() {
        let e = Expectations::default();
        assert!(!e.pending(&"a", Some("1")));
        e.wrote(&"a", Some("5".into()));
        assert!(e.pending(&"a", Some("4")), "cache still has the old version");
        assert!(e.pending(&"a", None));
        assert!(!e.pending(&"a", Some("5")), "caught up");
        assert!(!e.pending(&"a", Some("4")), "forgotten once seen: later edits are real");
        e.wrote(&"b", None);
        assert!(e.pending(&"b", Some("3")), "deleted, cache still has it");
        assert!(!e.pending(&"b", None));
    }

    #[test]
    fn only_an_echo_of_the_operators_own_write_that_nobody_awaits_is_dropped() {
        let e = Expectations::default();
        assert!(!e.echo(&"a", Some("5")), "no write of ours: a real change");
        e.wrote(&"a", Some("5".into()));
        assert!(!e.echo(&"a", Some("4")), "someone else's version");
        assert!(e.echo(&"a", Some("5")), "our own write, nobody waiting");
        assert!(!e.pending(&"a", Some("4")), "settled by the echo");
        assert!(!e.echo(&"a", Some("5")), "once only: a later event at that version is not ours to drop");
        e.wrote(&"b", Some("7".into()));
        assert!(e.pending(&"b", Some("6")), "a reconcile now waits for it");
        assert!(!e.echo(&"b", Some("7")), "its event must wake that reconcile");
        e.wrote(&"c", None);
        assert!(!e.echo(&"c", None), "a deletion is never dropped");
        e.wrote(&"d", Some("10".into()));
        e.wrote(&"d", Some("11".into()));
        assert!(e.echo(&"d", Some("10")), "an earlier write of the same reconcile: its event is an echo too");
        assert!(!e.echo(&"d", Some("10")), "once only");
        assert!(e.echo(&"d", Some("11")));
        e.wrote(&"f", Some("20".into()));
        e.wrote(&"f", Some("21".into()));
        assert!(e.pending(&"f", Some("20")), "a reconcile waits for the last write");
        assert!(!e.echo(&"f", Some("20")), "so no event of it is dropped");
    }

    #[test]
    fn a_write_an_earlier_reconcile_made_is_awaited_by_the_next_one() {
        let e = Expectations::default();
        e.wrote(&("ns-a", "grant"), Some("5".into()));
        e.wrote(&("ns-b", "grant"), Some("8".into()));
        assert!(e.await_all(|k| k.0 == "ns-a"), "a write in ns-a is not seen yet");
        assert!(
            !e.echo(&("ns-a", "grant"), Some("5")),
            "its event must wake the Workspace: the reconcile may have missed it"
        );
        assert!(e.echo(&("ns-b", "grant"), Some("8")), "another Workspace's write is not affected");
        assert!(!e.await_all(|k| k.0 == "ns-c"), "nothing outstanding there");
    }

    #[test]
    fn a_version_moved_by_someone_else_is_drift_and_a_first_sight_is_not() {
        let v = Versions::default();
        assert!(!v.moved(&"a", Some("3")), "first seen after a start: taken as found");
        assert!(!v.moved(&"a", Some("3")));
        assert!(v.moved(&"a", Some("4")), "someone else wrote it");
        v.record(&"a", Some("5".into()));
        assert!(!v.moved(&"a", Some("5")), "our own write");
        v.record(&"a", None);
        assert!(!v.moved(&"a", Some("9")), "forgotten once deleted");
        assert!(!v.moved(&"b", Some("9")), "each key apart");
        assert!(v.moved(&"b", Some("10")));
        assert!(!v.moved(&"a", Some("9")));
    }
}
