//! The test kit: start a server, reach it (URL, kubeconfig, kube-rs client), and steer it (fault
//! injection, request counters, history compaction). This is the crate's whole public surface.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use crate::counters::Counters;
use crate::faults::Faults;
use crate::registry::ApiServer;

/// What callers hold of a running server. Cheap to clone; shared by `DevCluster` and
/// `Background`, which deref to it.
#[derive(Clone)]
pub struct Handle {
    url: String,
    server: Arc<ApiServer>,
}

impl Handle {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig that kubectl, Helm and kube-rs accept.
    pub fn kubeconfig(&self) -> String {
        kubeconfig_for(&self.url)
    }

    /// A kube-rs client for this server; build it inside the caller's runtime.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("a loopback URL parses"));
        kube::Client::try_from(config).expect("a plain-HTTP client builds")
    }

    pub fn faults(&self) -> &Faults {
        &self.server.faults
    }

    pub fn counters(&self) -> &Counters {
        &self.server.counters
    }

    /// Forget the change history: watches resuming from before now get 410 Expired.
    pub fn compact(&self) {
        self.server.store.lock().compact();
    }

    /// Every stored object of a collection (`group/plural`, or `plural` for the core group),
    /// read without a request: for tests and benchmarks that must not disturb the counters.
    pub fn objects(&self, collection: &str) -> Vec<Arc<Value>> {
        self.server.store.lock().collection(collection).values().cloned().collect()
    }
}

/// A server on the caller's runtime; dropping it stops it.
pub struct DevCluster {
    handle: Handle,
    addr: SocketAddr,
    _shutdown: watch::Sender<bool>,
}

impl DevCluster {
    /// Start on `addr` (use port 0 for any free port) with the namespaces a new cluster has.
    pub async fn start(addr: SocketAddr) -> std::io::Result<DevCluster> {
        let server = Arc::new(ApiServer::new());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(crate::server::serve(listener, server.clone(), rx));
        Ok(DevCluster { handle: Handle { url: format!("http://{addr}"), server }, addr, _shutdown: tx })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Deref for DevCluster {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

pub fn kubeconfig_for(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: {url}\n\
         contexts:\n- name: dev\n  context:\n    cluster: dev\n    user: dev\n    namespace: default\n\
         current-context: dev\nusers:\n- name: dev\n  user:\n    token: dev\n"
    )
}

/// A server on its own thread and runtime, so blocking callers (kubectl in tests, benchmark
/// drivers) and async ones can share it. Stops when dropped.
pub struct Background {
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Start on a free loopback port, served by two threads.
    pub fn start() -> std::io::Result<Background> {
        Background::start_on(2)
    }

    /// As `start`, on `threads` threads: one thread is how the benchmark measures what the
    /// server does with one core.
    pub fn start_on(threads: usize) -> std::io::Result<Background> {
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
                match DevCluster::start("127.0.0.1:0".parse().expect("loopback parses")).await {
                    Ok(cluster) => {
                        let _ = ready_tx.send(Ok(cluster.handle.clone()));
                        let _ = stop_rx.await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
        let handle = ready_rx.recv().map_err(std::io::Error::other)??;
        Ok(Background { handle, stop: Some(stop_tx), thread: Some(thread) })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Deref for Background {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
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
