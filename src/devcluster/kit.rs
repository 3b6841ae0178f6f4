//! The test kit: start a server, reach it as whom you like (an admin's kubeconfig and kube-rs
//! client, a user's certificate, a ServiceAccount's token), and steer it (fault injection,
//! request counters, history compaction). With `testkit`, the crate's whole public surface.

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

    /// The cluster admin's kubeconfig, as kubeadm writes it: the CA, and a client certificate
    /// for `kubernetes-admin` in `system:masters`.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_as(ADMIN, &[crate::request::MASTERS])
    }

    /// A kubeconfig whose client certificate says `user`, in `groups`.
    pub fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> String {
        let c = self.server.pki.issue(user, groups);
        let user_yaml =
            format!("    client-certificate-data: {}\n    client-key-data: {}\n", b64(&c.cert_pem), b64(&c.key_pem));
        self.kubeconfig_with(user, &user_yaml)
    }

    /// A kubeconfig that authenticates with a bearer token (and no certificate).
    pub fn kubeconfig_with_token(&self, token: &str) -> String {
        self.kubeconfig_with("token-user", &format!("    token: {token}\n"))
    }

    fn kubeconfig_with(&self, user: &str, credentials: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             contexts:\n- name: {user}@kubernetes\n  context:\n    cluster: kubernetes\n    user: {user}\n    namespace: default\n\
             current-context: {user}@kubernetes\nusers:\n- name: {user}\n  user:\n{credentials}",
            url = self.url,
            ca = b64(&self.server.pki.ca_pem),
        )
    }

    fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.url.parse().expect("a loopback URL parses"));
        config.root_cert = Some(vec![self.server.pki.ca_der()]);
        config
    }

    /// A kube-rs client as the cluster admin; build it inside the caller's runtime.
    pub fn client(&self) -> kube::Client {
        self.client_as(ADMIN, &[crate::request::MASTERS])
    }

    /// A kube-rs client with a certificate for `user` in `groups`.
    pub fn client_as(&self, user: &str, groups: &[&str]) -> kube::Client {
        let c = self.server.pki.issue(user, groups);
        let mut config = self.config();
        config.auth_info.client_certificate_data = Some(b64(&c.cert_pem));
        config.auth_info.client_key_data = Some(b64(&c.key_pem).into());
        kube::Client::try_from(config).expect("a TLS client builds")
    }

    /// A kube-rs client with no credentials at all (anonymous).
    pub fn client_anonymous(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("a TLS client builds")
    }

    /// A kube-rs client that authenticates with a bearer token.
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        let mut config = self.config();
        config.auth_info.token = Some(token.to_string().into());
        kube::Client::try_from(config).expect("a TLS client builds")
    }

    /// A token for an existing ServiceAccount (valid an hour, for the API), as the TokenRequest
    /// API would issue it; None when there is no such ServiceAccount.
    pub fn token_for(&self, namespace: &str, name: &str) -> Option<String> {
        let sa = self.server.store.lock().get("serviceaccounts", &crate::store::key(Some(namespace), name))?;
        let uid = sa["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let (token, _) = self.server.tokens.issue(&crate::tokens::Request {
            namespace,
            name,
            uid: &uid,
            audiences: vec![crate::tokens::ISSUER.to_string()],
            seconds: 3600,
            bound: None,
        });
        Some(token)
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
        Ok(DevCluster { handle: Handle { url: format!("https://{addr}"), server }, addr, _shutdown: tx })
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

/// The admin's user name, as kubeadm names it.
pub const ADMIN: &str = "kubernetes-admin";

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A kubeconfig for `url` without credentials (a cluster that is not there, say).
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
