//! Fault injection: make chosen requests fail, slow down or lose their watches, so tests can
//! show how clients behave when the API server misbehaves.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A rule that makes matching requests fail: the next `remaining` requests whose verb and
/// resource match (empty = any).
#[derive(Debug, Clone)]
pub struct FaultRule {
    pub verb: String,
    pub resource: String,
    pub remaining: u64,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, Copy)]
pub enum FaultKind {
    /// 500 InternalError.
    ServerError,
    /// 429 TooManyRequests with this Retry-After (seconds).
    Throttle(u64),
    /// Fail every `n`-th matching request with 500 (a steady error rate).
    EveryNth(u64),
    /// 410 Expired on a list that continues an earlier page (its snapshot is gone).
    ExpireContinue,
    /// Answer correctly, but only after this many milliseconds (a slow API server).
    Delay(u64),
    /// 409 Conflict, as when another writer changed the object first.
    Conflict,
}

#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    counter: AtomicU64,
    latency_ms: AtomicU64,
    pub(crate) drop_watches: tokio::sync::Notify,
    pub(crate) drop_generation: AtomicU64,
}

impl Faults {
    /// Make the next `n` requests matching `verb` and `resource` (plural; empty = any) fail.
    pub fn fail_next(&self, verb: &str, resource: &str, n: u64, kind: FaultKind) {
        self.lock().push(FaultRule { verb: verb.into(), resource: resource.into(), remaining: n, kind });
    }

    pub fn clear(&self) {
        self.lock().clear();
        self.latency_ms.store(0, Ordering::Relaxed);
    }

    /// Add latency to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms.store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    /// End every open watch stream now (clients see the connection close and re-watch).
    pub fn drop_watches(&self) {
        self.drop_generation.fetch_add(1, Ordering::SeqCst);
        self.drop_watches.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn check(&self, verb: &str, resource: &str, continues: bool) -> Option<FaultKind> {
        let mut rules = self.lock();
        let mut hit = None;
        for rule in rules.iter_mut() {
            let matches = (rule.verb.is_empty() || rule.verb == verb)
                && (rule.resource.is_empty() || rule.resource == resource)
                && rule.remaining > 0
                && (continues || !matches!(rule.kind, FaultKind::ExpireContinue));
            if !matches {
                continue;
            }
            rule.remaining -= 1;
            hit = match rule.kind {
                FaultKind::EveryNth(n) => {
                    (self.counter.fetch_add(1, Ordering::Relaxed) % n.max(1) == 0).then_some(FaultKind::ServerError)
                }
                kind => Some(kind),
            };
            break;
        }
        rules.retain(|r| r.remaining > 0);
        hit
    }
}
