//! Request accounting: counts per verb and resource, and optionally every request, so tests and
//! benchmarks can say exactly what a client asked of the server.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

#[derive(Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<(String, String), u64>>,
    log: Mutex<Option<Vec<RequestRecord>>>,
    capturing: AtomicBool,
    captured: Mutex<Vec<Captured>>,
}

/// A request whole, as its client sent it (after authentication), so that a benchmark can send
/// the very same requests to another server.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Who asked (after impersonation).
    pub user: String,
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub content_type: String,
    pub accept: String,
    pub body: Bytes,
}

/// One request as seen by the server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestRecord {
    /// Who asked (after impersonation).
    pub user: String,
    pub user_agent: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
}

pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

impl Counters {
    pub(crate) fn record(&self, rec: RequestRecord) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((rec.verb.clone(), rec.resource.clone()))
            .or_default() += 1;
        if let Some(log) = self.log.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            log.push(rec);
        }
    }

    /// Count for one verb and resource (plural); `""` matches any.
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((v, r), _)| (verb.is_empty() || v == verb) && (resource.is_empty() || r == resource))
            .map(|(_, n)| n)
            .sum()
    }

    /// All write requests (create, update, patch, delete) so far.
    pub fn writes(&self) -> u64 {
        WRITE_VERBS.iter().map(|v| self.get(v, "")).sum()
    }

    /// All read requests (get, list, watch) so far.
    pub fn reads(&self) -> u64 {
        ["get", "list", "watch"].iter().map(|v| self.get(v, "")).sum()
    }

    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Start keeping every request.
    pub fn start_log(&self) {
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    pub fn take_log(&self) -> Vec<RequestRecord> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default()
    }

    /// Start keeping every request whole, bodies included (see `Captured`).
    pub fn start_capture(&self) {
        self.captured.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.capturing.store(true, Ordering::SeqCst);
    }

    /// Stop keeping requests whole; what was kept, in the order it arrived.
    pub fn take_capture(&self) -> Vec<Captured> {
        self.capturing.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn capturing(&self) -> bool {
        self.capturing.load(Ordering::Relaxed)
    }

    pub(crate) fn capture(&self, c: Captured) {
        self.captured.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }
}
