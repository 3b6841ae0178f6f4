//! Prometheus metrics, and the `/metrics`, `/healthz` and `/readyz` endpoints on one port.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    states: Mutex<HashMap<String, State>>,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("workspace_operator");
        let reconciles = Counter::default();
        let failures = Family::<ReasonLabel, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let workspaces = Family::<StatusLabel, Gauge>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles that completed", reconciles.clone());
        registry.register("reconcile_failures", "Reconciles that failed, by reason", failures.clone());
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile", duration.clone());
        registry.register("workspaces", "Workspaces by status, as last reconciled", workspaces.clone());
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            workspaces,
            leader,
            states: Mutex::default(),
            ready: AtomicBool::new(false),
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

    pub fn forget(&self, key: &str) {
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

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` until the process ends.
pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Response, StatusCode};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (code, body) = match req.uri().path() {
                        "/metrics" => (StatusCode::OK, metrics.encode()),
                        "/healthz" | "/livez" => (StatusCode::OK, "ok".to_string()),
                        "/readyz" if metrics.is_ready() => (StatusCode::OK, "ok".to_string()),
                        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_string()),
                        _ => (StatusCode::NOT_FOUND, "not found".to_string()),
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = code;
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
