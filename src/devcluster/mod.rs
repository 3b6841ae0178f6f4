//! A Kubernetes-API-compatible server for tests, benchmarks and local try-out.
//!
//! No real kube-apiserver can run where this project is developed, so this module carries one
//! that real, unmodified clients (kubectl, Helm's engine, kube-rs) talk to over plain HTTP on
//! loopback. It follows the Kubernetes API conventions; `shared/reference/apiserver-contract.md`
//! records what the clients send and expect. Everything is kept in memory; every request is
//! treated as coming from a cluster admin.
//!
//! Known approximations (each is what a test-server can reasonably do):
//! - Server-side apply tracks field ownership per manager at the granularity of fields and of
//!   `x-kubernetes-list-type: map` entries; atomic lists are owned whole.
//! - Built-in kinds are stored without schemas: they are not pruned or type-checked beyond
//!   metadata, and strategic merge patch knows the merge keys of the kinds listed in `patch.rs`.
//! - No garbage collector for ownerReferences; no quota admission; pods never run.
//!
//! The operator never imports this module outside `dev`, tests and benchmarks.

mod admission;
mod api;
mod builtin;
mod discovery;
pub mod errors;
mod managed;
mod patch;
mod protobuf;
pub mod resources;
pub mod selectors;
mod server;
pub mod store;
mod table;
pub mod validation;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

pub use api::State;

/// A running server; dropping it stops it.
pub struct DevCluster {
    addr: SocketAddr,
    state: Arc<State>,
    _shutdown: watch::Sender<bool>,
}

impl DevCluster {
    /// Start on `addr` (use port 0 for any free port) with the namespaces a new cluster has.
    pub async fn start(addr: SocketAddr) -> std::io::Result<DevCluster> {
        let state = Arc::new(State::new());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(server::serve(listener, state.clone(), rx));
        Ok(DevCluster { addr, state, _shutdown: tx })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// A kubeconfig that kubectl, Helm and kube-rs accept.
    pub fn kubeconfig(&self) -> String {
        kubeconfig_for(&self.url())
    }

    /// A kube-rs client for this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("a loopback URL parses"));
        kube::Client::try_from(config).expect("a plain-HTTP client builds")
    }

    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }
}

pub fn kubeconfig_for(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: {url}\n\
         contexts:\n- name: dev\n  context:\n    cluster: dev\n    user: dev\n    namespace: default\n\
         current-context: dev\nusers:\n- name: dev\n  user:\n    token: dev\n"
    )
}

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
}

/// Fault injection for tests, through the in-process handle.
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
            match rule.kind {
                FaultKind::EveryNth(n) => {
                    rule.remaining -= 1;
                    if self.counter.fetch_add(1, Ordering::Relaxed) % n.max(1) == 0 {
                        hit = Some(FaultKind::ServerError);
                    }
                }
                kind => {
                    rule.remaining -= 1;
                    hit = Some(kind);
                }
            }
            break;
        }
        rules.retain(|r| r.remaining > 0);
        hit
    }
}

/// Request counters per verb and resource, readable by tests and benchmarks.
#[derive(Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<(String, String), u64>>,
    log: Mutex<Option<Vec<RequestRecord>>>,
}

/// One request as seen by the server, for RBAC coverage checks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestRecord {
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

    /// Start keeping every request (for RBAC coverage checks).
    pub fn start_log(&self) {
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    pub fn take_log(&self) -> Vec<RequestRecord> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default()
    }
}

/// A server on its own thread and runtime, so blocking callers (kubectl in tests, benchmark
/// drivers) and async ones can share it. Stops when dropped.
pub struct Background {
    url: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Start on a free loopback port; with `operator`, the Workspace CRD is installed and the
    /// controller runs against the server.
    pub fn start(operator: Option<crate::controller::Config>) -> std::io::Result<Background> {
        Background::start_on(operator, 2)
    }

    /// As `start`, with the server (and the controller, if any) on `threads` threads: one
    /// thread is how the benchmark measures what the server does with one core.
    pub fn start_on(operator: Option<crate::controller::Config>, threads: usize) -> std::io::Result<Background> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("devcluster".into()).spawn(move || {
            let runtime = match threads {
                1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
                n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
            };
            let rt = match runtime {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let cluster = match DevCluster::start("127.0.0.1:0".parse().expect("loopback parses")).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if let Some(config) = operator {
                    let client = cluster.client();
                    if let Err(e) = crate::dev::install_crd(&client).await {
                        let _ = ready_tx.send(Err(std::io::Error::other(e.to_string())));
                        return;
                    }
                    tokio::spawn(crate::controller::run(client, config));
                }
                let _ = ready_tx.send(Ok((cluster.url(), cluster.state().clone())));
                let _ = stop_rx.await;
            });
        })?;
        let (url, state) = ready_rx.recv().map_err(std::io::Error::other)??;
        Ok(Background { url, state, stop: Some(stop_tx), thread: Some(thread) })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    pub fn kubeconfig(&self) -> String {
        kubeconfig_for(&self.url)
    }

    /// A kube-rs client; build it inside the caller's runtime.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("a loopback URL parses"));
        kube::Client::try_from(config).expect("a plain-HTTP client builds")
    }

    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }

    /// Forget the change history: watches resuming from before now get 410 Expired.
    pub fn compact(&self) {
        self.state.store.lock().compact();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
