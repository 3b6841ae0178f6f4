//! Writes the watch caches have not shown yet.
//!
//! A reconcile reads from watch caches, and those lag the operator's own writes by a moment. A
//! reconcile that runs in that moment (triggered by another watch) would see the old object and
//! write again: a wasted request, or a 409 on a stale resourceVersion. So each write records the
//! resourceVersion it produced; until the cache shows that version (or a short grace period
//! passes, after which the cache is trusted again), the object is treated as already written.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a write is expected to take to reach the caches.
const GRACE: Duration = Duration::from_secs(5);

pub struct Expectations<K> {
    written: Mutex<HashMap<K, (Option<String>, Instant)>>,
}

impl<K> Default for Expectations<K> {
    fn default() -> Self {
        Expectations { written: Mutex::default() }
    }
}

impl<K: Eq + Hash + Clone> Expectations<K> {
    /// Record a write of `key` that left it at `rv` (None: deleted).
    pub fn wrote(&self, key: &K, rv: Option<String>) {
        self.lock().insert(key.clone(), (rv, Instant::now()));
    }

    /// Is a recent write of `key` not yet visible in a cache that shows `cached_rv`?
    pub fn pending(&self, key: &K, cached_rv: Option<&str>) -> bool {
        let mut w = self.lock();
        let Some((rv, at)) = w.get(key) else { return false };
        let caught_up = rv.as_deref() == cached_rv;
        if caught_up || at.elapsed() > GRACE {
            w.remove(key);
            return false;
        }
        true
    }

    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Option<String>, Instant)>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
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
}
