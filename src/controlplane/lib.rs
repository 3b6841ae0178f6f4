//! The real Kubernetes control plane — etcd, kube-apiserver and kube-controller-manager, built
//! from the official sources by `make control-plane` — started on loopback the way
//! controller-runtime's envtest starts it, for tests and `workspace-operator dev --cluster real`.
//! It knows nothing of the operator.

mod pki;
mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pki::Pki;
use process::{Process, free_port};

/// The Kubernetes release built and tested by default: the oldest the operator supports.
pub const DEFAULT_VERSION: &str = "v1.33.13";

/// The admin's user name, in `system:masters`, as kubeadm names it.
pub const ADMIN: &str = "kubernetes-admin";
const MASTERS: &str = "system:masters";

/// The ServiceAccount token issuer, as clusters made by kubeadm name it.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The controllers kube-controller-manager runs here: enough that namespaces really terminate,
/// quota usage is really counted, ServiceAccounts and their tokens exist, the bootstrap
/// `admin`/`edit`/`view` roles get their aggregated rules, and workloads really make pods (no
/// scheduler or kubelet: those stay Pending).
pub const CONTROLLERS: &[&str] = &[
    "namespace",
    "garbagecollector",
    "resourcequota",
    "serviceaccount",
    "serviceaccount-token",
    "clusterrole-aggregation",
    "root-ca-cert-publisher",
    "deployment",
    "replicaset",
    "statefulset",
    "job",
    "cronjob",
    "horizontalpodautoscaling",
    "disruption",
];

fn err(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

/// Where the binaries of one Kubernetes release are.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub dir: PathBuf,
    pub version: String,
}

impl Binaries {
    /// The release `K8S_VERSION` names (default `DEFAULT_VERSION`), in the build cache
    /// `make control-plane` fills; `CONTROL_PLANE_BIN` points elsewhere.
    pub fn locate() -> std::io::Result<Binaries> {
        let version = std::env::var("K8S_VERSION").ok().filter(|v| !v.is_empty());
        let version = version.unwrap_or_else(|| DEFAULT_VERSION.to_string());
        let dir = match std::env::var_os("CONTROL_PLANE_BIN") {
            Some(dir) => PathBuf::from(dir),
            None => cache_dir().join(&version).join("bin"),
        };
        let binaries = Binaries { dir, version };
        for name in ["etcd", "kube-apiserver", "kube-controller-manager"] {
            if !binaries.path(name).is_file() {
                return Err(err(format!(
                    "{} is not built: run `make control-plane K8S_VERSION={}` first",
                    binaries.path(name).display(),
                    binaries.version
                )));
            }
        }
        Ok(binaries)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `$XDG_CACHE_HOME/workspace-operator/kubernetes` (or under `~/.cache`): one directory per release.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("workspace-operator").join("kubernetes")
}

/// A running control plane; dropping it stops every process it started and removes its files.
pub struct ControlPlane {
    url: String,
    version: String,
    pki: Pki,
    // Dropped in reverse order of start: the controller manager, the API server, then etcd.
    processes: Vec<Process>,
    dir: tempfile::TempDir,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        while let Some(p) = self.processes.pop() {
            drop(p);
        }
    }
}

impl ControlPlane {
    /// Start etcd, kube-apiserver and kube-controller-manager on free loopback ports; ready once
    /// the API server's `/readyz` passes and the controllers have made the `default`
    /// ServiceAccount. Start it on a thread that outlives it: its processes die with that thread.
    pub async fn start(binaries: &Binaries) -> std::io::Result<ControlPlane> {
        ControlPlane::start_on(binaries, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// As `start`, with kube-apiserver serving on `listen` (port 0: a free one).
    pub async fn start_on(binaries: &Binaries, listen: SocketAddr) -> std::io::Result<ControlPlane> {
        // A free port is free when looked at, not when etcd or kube-apiserver binds it: another
        // process starting meanwhile (tests start clusters side by side) may take it first.
        // Those starts are tried again on other ports.
        let mut attempt = 1;
        loop {
            match ControlPlane::try_start(binaries, listen).await {
                Err(e) if attempt < 3 && e.to_string().contains("address already in use") => attempt += 1,
                started => return started,
            }
        }
    }

    async fn try_start(binaries: &Binaries, listen: SocketAddr) -> std::io::Result<ControlPlane> {
        let dir = tempfile::Builder::new().prefix("control-plane-").tempdir()?;
        let pki = Pki::new().map_err(err)?;
        let listen = match listen.port() {
            0 => SocketAddr::new(listen.ip(), free_port()?),
            _ => listen,
        };
        let (url, version) = (format!("https://{listen}"), binaries.version.clone());
        let mut plane = ControlPlane { url, version, pki, processes: Vec::new(), dir };
        let files = plane.write_files(listen.ip()).map_err(err)?;
        let etcd = plane.start_etcd(binaries)?;
        plane.start_apiserver(binaries, &files, &etcd, listen)?;
        let admin = plane.client();
        plane
            .wait("kube-apiserver to be ready", Duration::from_secs(120), || async {
                admin.request_text(http_get("/readyz")).await.is_ok()
            })
            .await?;
        plane.start_controller_manager(binaries, &files)?;
        let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(admin.clone(), "default");
        plane
            .wait("kube-controller-manager to make the default ServiceAccount", Duration::from_secs(120), || async {
                accounts.get_opt("default").await.ok().flatten().is_some()
            })
            .await?;
        // Until the aggregation controller has run, `admin`, `edit` and `view` grant nothing.
        let roles: kube::Api<k8s_openapi::api::rbac::v1::ClusterRole> = kube::Api::all(admin.clone());
        plane
            .wait("the bootstrap roles' aggregated rules", Duration::from_secs(120), || async {
                let mut aggregated = true;
                for name in ["admin", "edit", "view"] {
                    let rules = roles.get_opt(name).await.ok().flatten().and_then(|r| r.rules).unwrap_or_default();
                    aggregated &= !rules.is_empty();
                }
                aggregated
            })
            .await?;
        Ok(plane)
    }

    fn write_files(&self, ip: std::net::IpAddr) -> Result<Files, Box<dyn std::error::Error>> {
        let d = self.dir.path();
        let write = |name: &str, text: &str| -> std::io::Result<PathBuf> {
            let path = d.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        let serving = self.pki.serving(ip)?;
        let (sa_key, sa_pub) = pki::signing_key()?;
        Ok(Files {
            ca: write("ca.crt", &self.pki.ca_pem())?,
            serving_cert: write("apiserver.crt", &serving.cert_pem)?,
            serving_key: write("apiserver.key", &serving.key_pem)?,
            sa_key: write("sa.key", &sa_key)?,
            sa_pub: write("sa.pub", &sa_pub)?,
            controller_manager: write(
                "controller-manager.kubeconfig",
                &self.kubeconfig_as("system:kube-controller-manager", &[]),
            )?,
        })
    }

    fn start_etcd(&mut self, binaries: &Binaries) -> std::io::Result<String> {
        let (client, peer) =
            (format!("http://127.0.0.1:{}", free_port()?), format!("http://127.0.0.1:{}", free_port()?));
        let data = self.dir.path().join("etcd");
        let args = [
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=default={peer}"),
            // A throwaway cluster: no fsync (as envtest), quiet logs.
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ];
        self.processes.push(Process::spawn("etcd", &binaries.path("etcd"), &args, self.dir.path())?);
        Ok(client)
    }

    fn start_apiserver(
        &mut self,
        binaries: &Binaries,
        f: &Files,
        etcd: &str,
        listen: SocketAddr,
    ) -> std::io::Result<()> {
        let p = |path: &Path| path.display().to_string();
        let args = [
            format!("--etcd-servers={etcd}"),
            format!("--secure-port={}", listen.port()),
            format!("--bind-address={}", listen.ip()),
            format!("--advertise-address={}", listen.ip()),
            format!("--cert-dir={}", p(&self.dir.path().join("certs"))),
            format!("--tls-cert-file={}", p(&f.serving_cert)),
            format!("--tls-private-key-file={}", p(&f.serving_key)),
            format!("--client-ca-file={}", p(&f.ca)),
            format!("--service-account-issuer={ISSUER}"),
            format!("--service-account-key-file={}", p(&f.sa_pub)),
            format!("--service-account-signing-key-file={}", p(&f.sa_key)),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            // Nothing runs in this cluster to reach the API server through its Service, and from
            // 1.35 the endpoints reconciler refuses a loopback advertise address.
            "--endpoint-reconciler-type=none".into(),
            "--authorization-mode=Node,RBAC".into(),
            // The default plugins (NamespaceLifecycle, LimitRanger, ServiceAccount, PodSecurity,
            // ResourceQuota, the admission policies and webhooks, …), plus what kubeadm adds.
            "--enable-admission-plugins=NodeRestriction".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
        ];
        self.processes.push(Process::spawn(
            "kube-apiserver",
            &binaries.path("kube-apiserver"),
            &args,
            self.dir.path(),
        )?);
        Ok(())
    }

    fn start_controller_manager(&mut self, binaries: &Binaries, f: &Files) -> std::io::Result<()> {
        let p = |path: &Path| path.display().to_string();
        let args = [
            format!("--kubeconfig={}", p(&f.controller_manager)),
            format!("--controllers={}", CONTROLLERS.join(",")),
            // Each controller as its own ServiceAccount, with its bootstrap role, as kubeadm runs it.
            "--use-service-account-credentials=true".into(),
            format!("--service-account-private-key-file={}", p(&f.sa_key)),
            format!("--root-ca-file={}", p(&f.ca)),
            "--leader-elect=false".into(),
            // Nothing here reads its metrics or health: serve nothing.
            "--secure-port=0".into(),
            "--profiling=false".into(),
        ];
        let bin = binaries.path("kube-controller-manager");
        self.processes.push(Process::spawn("kube-controller-manager", &bin, &args, self.dir.path())?);
        Ok(())
    }

    /// Poll `ready` until it holds; fail early, with its log, if a process exits.
    async fn wait<F, Fut>(&mut self, what: &str, timeout: Duration, mut ready: F) -> std::io::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if ready().await {
                return Ok(());
            }
            for p in &mut self.processes {
                if let Some(status) = p.exited() {
                    return Err(err(format!("waiting for {what}: {} exited ({status}):\n{}", p.name, p.tail(30))));
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self.processes.iter().map(|p| format!("{}:\n{}", p.name, p.tail(15))).collect();
                return Err(err(format!("timed out after {timeout:?} waiting for {what}\n{}", logs.join("\n"))));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The Kubernetes release running.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The process ids of etcd, kube-apiserver and kube-controller-manager.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(|p| p.id()).collect()
    }

    /// Where its files and logs are (`<process>.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA that signed the API server's certificate, DER: what a client trusts.
    pub fn ca_der(&self) -> Vec<u8> {
        self.pki.ca_der()
    }

    /// The admin's kubeconfig: a client certificate for `kubernetes-admin` in `system:masters`.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_as(ADMIN, &[MASTERS])
    }

    /// A kubeconfig whose client certificate says `user`, in `groups`.
    pub fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> String {
        let c = self.pki.client(user, groups).expect("the CA signs a client certificate");
        let credentials =
            format!("    client-certificate-data: {}\n    client-key-data: {}\n", b64(&c.cert_pem), b64(&c.key_pem));
        self.kubeconfig_with(user, &credentials)
    }

    /// A kubeconfig that authenticates with a bearer token.
    pub fn kubeconfig_with_token(&self, token: &str) -> String {
        self.kubeconfig_with("token-user", &format!("    token: {token}\n"))
    }

    fn kubeconfig_with(&self, user: &str, credentials: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             contexts:\n- name: {user}@kubernetes\n  context:\n    cluster: kubernetes\n    user: {user}\n    namespace: default\n\
             current-context: {user}@kubernetes\nusers:\n- name: {user}\n  user:\n{credentials}",
            url = self.url,
            ca = b64(&self.pki.ca_pem()),
        )
    }

    fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.url.parse().expect("a loopback URL parses"));
        config.root_cert = Some(vec![self.pki.ca_der()]);
        config
    }

    /// A kube-rs client as the cluster admin; build it inside the caller's runtime.
    pub fn client(&self) -> kube::Client {
        self.client_as(ADMIN, &[MASTERS])
    }

    /// A kube-rs client with a certificate for `user` in `groups`.
    pub fn client_as(&self, user: &str, groups: &[&str]) -> kube::Client {
        let c = self.pki.client(user, groups).expect("the CA signs a client certificate");
        let mut config = self.config();
        config.auth_info.client_certificate_data = Some(b64(&c.cert_pem));
        config.auth_info.client_key_data = Some(b64(&c.key_pem).into());
        kube::Client::try_from(config).expect("a TLS client builds")
    }

    /// A kube-rs client that authenticates with a bearer token.
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        let mut config = self.config();
        config.auth_info.token = Some(token.to_string().into());
        kube::Client::try_from(config).expect("a TLS client builds")
    }
}

struct Files {
    ca: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    sa_key: PathBuf,
    sa_pub: PathBuf,
    controller_manager: PathBuf,
}

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).expect("a GET request builds")
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A control plane started from a thread of its own, which outlives the thread that asked for
/// it (a fixture several tests share, say): its processes die with that thread, so when it is
/// dropped or when the whole process ends. Stops when dropped.
pub struct Background {
    plane: Option<ControlPlane>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn start(binaries: &Binaries) -> std::io::Result<Background> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let binaries = binaries.clone();
        let thread = std::thread::Builder::new().name("control-plane".into()).spawn(move || {
            let started = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|rt| rt.block_on(ControlPlane::start(&binaries)));
            let ok = started.is_ok();
            let _ = ready_tx.send(started);
            if ok {
                // Until the plane is dropped (or the sender with it): the processes' parent.
                let _ = stop_rx.recv();
            }
        })?;
        let plane = ready_rx.recv().map_err(err)??;
        Ok(Background { plane: Some(plane), stop: Some(stop_tx), thread: Some(thread) })
    }
}

impl std::ops::Deref for Background {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        self.plane.as_ref().expect("the plane lives until drop")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        drop(self.plane.take());
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
