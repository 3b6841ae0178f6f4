//! Prometheus metrics, and the `/metrics`, `/healthz` and `/readyz` endpoints on one port.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::State;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<ReasonLabel, Counter>,
    duration: Histogram,
    workspaces: Family<StatusLabel, Gauge>,
    leader: Gauge,
    unreadable: Gauge,
    states: Mutex<HashMap<String, State>>,
    unreadable_keys: Mutex<HashSet<String>>,
    ready: AtomicBool,
    watches: Mutex<HashMap<&'static str, Streak>>,
}

/// The Workspace watch's current run of failures: when it began and when it last failed.
#[derive(Default)]
struct Streak {
    first: Option<Instant>,
    last: Option<Instant>,
}

/// A watch that has failed again and again for this long is stalled (kube-runtime's backoff
/// caps at 30 s, plus as much jitter, plus the request's own time, so a stalled watch fails
/// again within `QUIET`)...
const STALLED_AFTER: Duration = Duration::from_secs(20);
/// ...and one that has not failed for this long has recovered, even without an event since.
const QUIET: Duration = Duration::from_secs(120);

impl Streak {
    fn record(&mut self, ok: bool, now: Instant) {
        if ok {
            *self = Streak::default();
            return;
        }
        if self.last.is_none_or(|l| now.duration_since(l) > QUIET) {
            self.first = Some(now);
        }
        self.last = Some(now);
    }

    fn stalled(&self, now: Instant) -> bool {
        match (self.first, self.last) {
            (Some(first), Some(last)) => {
                last.duration_since(first) >= STALLED_AFTER && now.duration_since(last) <= QUIET
            }
            _ => false,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("workspace_operator");
        let reconciles = Counter::default();
        let failures = Family::<ReasonLabel, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let workspaces = Family::<StatusLabel, Gauge>::default();
        let leader = Gauge::default();
        let unreadable = Gauge::default();
        registry.register("reconciles", "Reconciles that completed", reconciles.clone());
        registry.register("reconcile_failures", "Reconciles that failed, by reason", failures.clone());
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile", duration.clone());
        registry.register("workspaces", "Workspaces by status, as last reconciled", workspaces.clone());
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        registry.register(
            "unreadable_workspaces",
            "Workspaces stored under a looser schema that do not decode (each reported Failed on itself)",
            unreadable.clone(),
        );
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            workspaces,
            leader,
            unreadable,
            states: Mutex::default(),
            unreadable_keys: Mutex::default(),
            ready: AtomicBool::new(false),
            watches: Mutex::default(),
        }
    }
}

/// Records a reconcile's duration when dropped.
pub struct Timer<'a> {
    start: Instant,
    histogram: &'a Histogram,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

impl Metrics {
    pub fn reconcile_timer(&self) -> Timer<'_> {
        Timer { start: Instant::now(), histogram: &self.duration }
    }

    pub fn reconciled(&self) {
        self.reconciles.inc();
    }

    /// Completed reconciles so far (tests wait on it instead of sleeping).
    pub fn reconcile_count(&self) -> u64 {
        self.reconciles.get()
    }

    pub fn failed(&self, reason: &str) {
        self.failures.get_or_create(&ReasonLabel { reason: reason.into() }).inc();
    }

    /// Track the state of each Workspace so the gauge counts Workspaces, not reconciles.
    pub fn observe_state(&self, key: &str, state: State) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let previous = states.insert(key.to_string(), state);
        if previous != Some(state) {
            if let Some(p) = previous {
                self.workspaces.get_or_create(&StatusLabel { status: p.as_str().into() }).dec();
            }
            self.workspaces.get_or_create(&StatusLabel { status: state.as_str().into() }).inc();
        }
    }

    /// Count `key` among the Workspaces that do not decode, or no longer.
    pub fn set_unreadable(&self, key: &str, unreadable: bool) {
        let mut keys = self.unreadable_keys.lock().unwrap_or_else(|p| p.into_inner());
        let changed = if unreadable { keys.insert(key.to_string()) } else { keys.remove(key) };
        if changed {
            self.unreadable.set(keys.len() as i64);
        }
    }

    /// What a watch of the controller last yielded: an event that shows it delivers (true) or
    /// an error (false).
    pub fn watch_result(&self, watch: &'static str, ok: bool) {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        watches.entry(watch).or_default().record(ok, Instant::now());
    }

    pub fn forget(&self, key: &str) {
        self.set_unreadable(key, false);
        if let Some(p) = self.states.lock().unwrap_or_else(|p| p.into_inner()).remove(key) {
            self.workspaces.get_or_create(&StatusLabel { status: p.as_str().into() }).dec();
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Ready once the CRDs are established, and for as long as no watch of the controller is
    /// stalled (failing again and again, so nothing would be reconciled).
    pub fn is_ready(&self) -> bool {
        let now = Instant::now();
        let watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let stalled = watches.values().any(|w| w.stalled(now));
        self.ready.load(Ordering::Relaxed) && !stalled
    }

    /// The metrics in OpenMetrics text, the format Prometheus asks for first.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The body and Content-Type a scrape with this Accept header gets: OpenMetrics unless the
/// scraper asks for the classic text format only (a scraper that sends no Accept, or `*/*`, can
/// read either and gets OpenMetrics, as Prometheus 3 prefers).
pub fn negotiate(accept: &str, openmetrics: String) -> (String, &'static str) {
    let wants_classic = accept.contains("text/plain") && !accept.contains("application/openmetrics-text");
    if wants_classic { (classic_text(&openmetrics), PROMETHEUS_TEXT) } else { (openmetrics, OPENMETRICS) }
}

/// OpenMetrics text as the classic Prometheus text format: a counter family is named with its
/// `_total` suffix there, `# UNIT` lines and the `# EOF` terminator do not exist.
fn classic_text(openmetrics: &str) -> String {
    let counters: Vec<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::new();
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# TYPE ", "# HELP "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Serve `/metrics`, `/healthz` and `/readyz` until the process ends.
pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    serve_on(tokio::net::TcpListener::bind(addr).await?, metrics).await
}

pub async fn serve_on(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
    use hyper::{Response, StatusCode};
    loop {
        let (stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    const TEXT: &str = "text/plain; charset=utf-8";
                    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
                    let (code, (body, content_type)) = match req.uri().path() {
                        "/metrics" => (StatusCode::OK, negotiate(accept, metrics.encode())),
                        "/healthz" | "/livez" => (StatusCode::OK, ("ok".to_string(), TEXT)),
                        "/readyz" if metrics.is_ready() => (StatusCode::OK, ("ok".to_string(), TEXT)),
                        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, ("not ready".to_string(), TEXT)),
                        _ => (StatusCode::NOT_FOUND, ("not found".to_string(), TEXT)),
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = code;
                    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_get_openmetrics_unless_they_ask_for_the_classic_format_only() {
        let m = Metrics::default();
        m.reconciled();
        let prometheus3 = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        let (body, ct) = negotiate(prometheus3, m.encode());
        assert_eq!(ct, OPENMETRICS);
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(body.contains("# TYPE workspace_operator_reconciles counter"), "{body}");
        assert_eq!(negotiate("", m.encode()).1, OPENMETRICS);
        let (classic, ct) = negotiate("text/plain;version=0.0.4", m.encode());
        assert_eq!(ct, PROMETHEUS_TEXT);
        assert!(classic.contains("# TYPE workspace_operator_reconciles_total counter"), "{classic}");
        assert!(classic.contains("workspace_operator_reconciles_total 1"), "{classic}");
        assert!(!classic.contains("# EOF"), "{classic}");
    }
}

#[cfg(test)]
mod streak_tests {
    use super::*;

    #[test]
    fn only_a_watch_that_keeps_failing_is_stalled() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // (failures at these seconds, then an event?, asked at, stalled?)
        #[rustfmt::skip]
        let table: [(&[u64], bool, u64, bool); 6] = [
            (&[], false, 100, false),
            (&[0], false, 31, false),                       // one failure, silently recovered
            (&[0, 1, 3, 6, 12, 25], false, 30, true),       // backing off, still failing
            (&[0, 1, 3, 6, 12, 25], true, 30, false),       // an event came: recovered
            (&[0, 1, 3, 6, 12, 25], false, 150, false),     // quiet for longer than a retry
            (&[0, 1, 3, 200, 201], false, 202, false),      // a new run of failures starts afresh
        ];
        for (failures, recovered, asked, stalled) in table {
            let mut s = Streak::default();
            for f in failures {
                s.record(false, at(*f));
            }
            if recovered {
                s.record(true, at(failures.last().copied().unwrap_or(0)));
            }
            assert_eq!(s.stalled(at(asked)), stalled, "{failures:?} recovered {recovered} at {asked}");
        }
    }
}
