//! Request accounting: counts per verb and resource, and optionally every request, so tests and
//! benchmarks can say exactly what a client asked of the server.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<(String, String), u64>>,
    log: Mutex<Option<Vec<RequestRecord>>>,
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
}
