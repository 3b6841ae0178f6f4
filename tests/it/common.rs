//! The harness of the operator's tests: a fresh API server with kubectl pointed at it — the
//! local one by default, the real control plane with `TEST_CLUSTER=real` (`make test-real`) —
//! the operator running against it, and readers of what it made.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use devcluster::Background;
pub use devcluster::testkit::{eventually, eventually_async};
use devcluster::{Counters, Faults, RequestRecord, WRITE_VERBS};
use workspace_operator::dev::ApiServer;
pub use workspace_operator::fixtures::ws;

/// A cluster of either backend, with kubectl pointed at it.
pub type Cluster = devcluster::testkit::Cluster<Server>;

/// The API server the tests run against.
pub enum Server {
    Local(Background),
    Real(Box<Real>),
}

/// The real control plane, and a fault-injecting proxy in front of it that every client with a
/// token (the operator) goes through: the tests' faults and request counts apply to those.
pub struct Real {
    plane: controlplane::Background,
    proxy: devcluster::BackgroundProxy,
}

impl ApiServer for Real {
    fn url(&self) -> &str {
        self.plane.url()
    }
    fn kubeconfig(&self) -> String {
        self.plane.kubeconfig()
    }
    fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> String {
        self.plane.kubeconfig_as(user, groups)
    }
    fn kubeconfig_with_token(&self, token: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.proxy.ca_pem());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             contexts:\n- name: proxy\n  context:\n    cluster: proxy\n    user: token\n    namespace: default\n\
             current-context: proxy\nusers:\n- name: token\n  user:\n    token: {token}\n",
            url = self.proxy.url()
        )
    }
    fn client(&self) -> kube::Client {
        self.plane.client()
    }
    fn client_with_token(&self, token: &str) -> kube::Client {
        let mut config = kube::Config::new(self.proxy.url().parse().expect("the proxy's URL parses"));
        config.root_cert = Some(vec![self.proxy.ca_der()]);
        config.auth_info.token = Some(token.to_string().into());
        kube::Client::try_from(config).expect("a TLS client builds")
    }
}

/// Whether the tests run against the real control plane (`TEST_CLUSTER=real`).
pub fn real() -> bool {
    std::env::var("TEST_CLUSTER").is_ok_and(|v| v == "real")
}

/// A fresh, empty cluster of the backend the tests run against.
pub fn cluster() -> Cluster {
    let server = match real() {
        false => Server::Local(Background::start().expect("the local API server starts")),
        true => {
            let binaries = controlplane::Binaries::locate().expect("the real control plane is built");
            let plane = controlplane::Background::start(&binaries).expect("the control plane starts");
            let proxy = devcluster::BackgroundProxy::start(plane.url(), plane.ca_der()).expect("the proxy starts");
            Server::Real(Box::new(Real { plane, proxy }))
        }
    };
    let kubeconfig = server.kubeconfig();
    Cluster::with_server(server, &kubeconfig)
}

/// False, having said so, on the local API server: the rest of the test needs what only
/// kube-apiserver does (`reason`).
pub fn needs_real(reason: &str) -> bool {
    if !real() {
        eprintln!("needs the real control plane ({reason}): run with TEST_CLUSTER=real (make test-real)");
    }
    real()
}

impl std::ops::Deref for Server {
    type Target = dyn ApiServer;
    fn deref(&self) -> &(dyn ApiServer + 'static) {
        match self {
            Server::Local(s) => s.handle(),
            Server::Real(s) => &**s,
        }
    }
}

impl Server {
    /// Faults for every request (local), or for the operator's, through the proxy (real).
    pub fn faults(&self) -> &Faults {
        match self {
            Server::Local(s) => s.faults(),
            Server::Real(r) => r.proxy.faults(),
        }
    }

    /// Counts of every request (local), or of the operator's, through the proxy (real).
    pub fn counters(&self) -> &Counters {
        match self {
            Server::Local(s) => s.counters(),
            Server::Real(r) => r.proxy.counters(),
        }
    }
}

/// A kube-rs client from a kubeconfig's text, as the operator builds its own; inside the
/// caller's runtime.
pub async fn client_from(kubeconfig: &str) -> kube::Client {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("the kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(parsed, &Default::default()).await.expect("the kubeconfig loads");
    kube::Client::try_from(config).expect("a client builds")
}

/// The committed CRD, as users install it.
pub const CRD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/workspace.yaml");

/// Install the committed CRDs with kubectl, wait until they are served, then apply the chart's
/// default WorkspaceClass: the cluster as `helm install` leaves it.
pub fn install_crd(c: &Cluster) {
    c.ok(&["apply", "-f", CRD]);
    c.ok(&["wait", "--for=condition=Established", "crd/workspaces.workspaces.dev", "--timeout=10s"]);
    c.ok(&["wait", "--for=condition=Established", "crd/workspaceclasses.workspaces.dev", "--timeout=10s"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let admin = c.server.client();
        workspace_operator::dev::install_default_class(&admin).await.expect("the chart's default class applies");
    });
}

/// The default class as the chart installs it (release workspace-operator).
pub const DEFAULT_CLASS: &str = "standard";

/// Let Public workspaces of the default class give `group` view, as a platform team would.
pub fn allow_public(c: &Cluster, group: &str) {
    let patch = serde_json::json!({"spec": {"access": {"publicGroup": group}}}).to_string();
    c.ok(&["patch", "workspaceclass", DEFAULT_CLASS, "--type=merge", "-p", &patch]);
}

/// The operator on its own thread and runtime, against a cluster; stops (gracefully) on drop.
pub struct Operator {
    pub metrics: std::sync::Arc<workspace_operator::metrics::Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The operator's identity, as the chart installs it.
pub const OPERATOR_USER: &str = "system:serviceaccount:workspace-system:workspace-operator";

/// Install the chart's RBAC for the operator and return a token of its ServiceAccount.
pub fn operator_token(c: &Cluster) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let admin = c.server.client();
        workspace_operator::dev::install_rbac(&admin).await.expect("the chart's RBAC applies");
        workspace_operator::dev::operator_token(&admin, 3600).await.expect("a token for the operator")
    })
}

/// A kubeconfig that is the operator's ServiceAccount (its RBAC installed).
pub fn operator_kubeconfig(c: &Cluster) -> std::path::PathBuf {
    c.save_kubeconfig("operator-kubeconfig", &c.server.kubeconfig_with_token(&operator_token(c)))
}

impl Operator {
    /// The operator as it runs in a cluster: as its ServiceAccount, with the chart's RBAC.
    pub fn start(c: &Cluster) -> Operator {
        Operator::start_with_token(c, operator_token(c))
    }

    /// As `start`, with a token of the operator's account taken beforehand.
    pub fn start_with_token(c: &Cluster, token: String) -> Operator {
        let metrics = std::sync::Arc::new(workspace_operator::metrics::Metrics::default());
        let settings = workspace_operator::controller::Settings {
            operator_namespace: Some(workspace_operator::dev::OPERATOR_NAMESPACE.into()),
        };
        let config =
            workspace_operator::controller::Config { metrics: Some(metrics.clone()), settings, ..Default::default() };
        let kubeconfig = c.server.kubeconfig_with_token(&token);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                let client = client_from(&kubeconfig).await;
                workspace_operator::controller::run_until(client, config, shutdown).await;
            });
        });
        Operator { metrics, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// Wait until at least `n` more reconciles than `since` completed.
    pub fn wait_reconciles(&self, since: u64, n: u64) {
        eventually("reconciles", Duration::from_secs(20), || {
            (self.metrics.reconcile_count() >= since + n).then_some(())
        });
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cluster with the committed CRD applied through kubectl, and the operator running.
pub fn with_operator() -> (Cluster, Operator) {
    let c = cluster();
    install_crd(&c);
    let op = Operator::start(&c);
    (c, op)
}

/// Wait until Workspace `name` in `ns` reports `status`.
pub fn wait_status(c: &Cluster, ns: &str, name: &str, status: &str) {
    c.eventually(&format!("{ns}/{name} to be {status}"), Duration::from_secs(20), || {
        let s = c.jsonpath(&["get", "ws", name, "-n", ns], "{.status.status}");
        (s == status).then_some(())
    });
}

/// The namespace a Workspace reports as its own.
pub fn target_ns(c: &Cluster, ns: &str, name: &str) -> String {
    c.eventually("status.namespace", Duration::from_secs(20), || {
        let n = c.jsonpath(&["get", "ws", name, "-n", ns], "{.status.namespace}");
        (!n.is_empty()).then_some(n)
    })
}

/// The RoleBindings of a namespace, as `kubectl get -o name` prints them, sorted.
pub fn bindings(c: &Cluster, ns: &str) -> Vec<String> {
    let mut v: Vec<String> = c.ok(&["get", "rolebindings", "-n", ns, "-o", "name"]).lines().map(String::from).collect();
    v.sort();
    v
}

/// Run the kubectl plugin binary against this cluster.
pub fn plugin(c: &Cluster, args: &[&str]) -> Output {
    c.command(env!("CARGO_BIN_EXE_kubectl-workspaces"), args).output().expect("plugin runs")
}

/// The write requests in `log` that were the operator's.
pub fn operator_writes(log: Vec<RequestRecord>) -> Vec<RequestRecord> {
    log.into_iter().filter(|r| r.user == OPERATOR_USER).filter(|r| WRITE_VERBS.contains(&r.verb.as_str())).collect()
}

/// Touch Workspace `name` (in `default`) so it is reconciled once more; the operator's writes.
pub fn writes_of_a_reconcile(c: &Cluster, op: &Operator, name: &str) -> Vec<RequestRecord> {
    let counters = c.server.counters();
    counters.start_log();
    let before = op.metrics.reconcile_count();
    c.ok(&["annotate", "ws", name, "poke=1", "--overwrite"]);
    op.wait_reconciles(before, 1);
    operator_writes(counters.take_log())
}

/// Run a Python tool of `tests/tools/` (in the venv `make test` installs) with `stdin`; its
/// output, which must be a success.
pub fn python_tool(script: &str, args: &[&str], stdin: &str) -> Output {
    let python = std::env::var("HELM_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").to_string());
    let mut child = Command::new(python)
        .arg(format!("{}/tests/tools/{script}", env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tests' Python runs (make test installs it into .venv)");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("the tool finishes");
    assert!(out.status.success(), "{script} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `workspace-operator dev` as a user runs it, in `cwd`, on the tests' backend; stopped on drop.
pub struct Dev {
    child: std::process::Child,
    /// What it printed, up to the line that contains the `until` of `start`.
    pub printed: String,
}

impl Dev {
    pub fn start(cwd: &std::path::Path, args: &[&str], until: &str) -> Dev {
        use std::io::{BufRead, BufReader};
        let log = cwd.join("dev.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_workspace-operator"))
            .arg("dev")
            .args(["--cluster", if real() { "real" } else { "local" }])
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("dev starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut printed = String::new();
        while !printed.contains(until) {
            let Some(Ok(line)) = lines.next() else {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("dev stopped before printing {until:?}:\n{printed}\n{said}");
            };
            printed.push_str(&line);
            printed.push('\n');
        }
        Dev { child, printed }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
