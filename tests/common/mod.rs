//! Shared test harness: a local API server per test, kubectl pointed at it, and polling with a
//! deadline (never sleeps as synchronisation).

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use workspace_operator::devcluster::Background;

pub struct Cluster {
    pub server: Background,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// A fresh server; with `operator`, the Workspace CRD and controller too.
    pub fn start(operator: bool) -> Cluster {
        let config = operator.then(workspace_operator::controller::Config::default);
        Self::start_with(config)
    }

    pub fn start_with(config: Option<workspace_operator::controller::Config>) -> Cluster {
        let server = Background::start(config).expect("server starts");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("kubeconfig"), server.kubeconfig()).expect("write kubeconfig");
        Cluster { server, dir }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path());
        cmd
    }

    /// Run kubectl (the real binary) against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let cache = self.dir.path().join("cache");
        let mut v: Vec<String> = vec![format!("--cache-dir={}", cache.display())];
        v.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        self.command("kubectl", &refs).output().expect("kubectl runs")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl that must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail, printed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// kubectl with a manifest on stdin (`-f -`).
    pub fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        let cache = self.dir.path().join("cache");
        let mut v: Vec<String> = vec![format!("--cache-dir={}", cache.display())];
        v.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        let mut child = self
            .command("kubectl", &refs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("kubectl finishes")
    }

    pub fn apply(&self, manifest: &str) -> String {
        let out = self.with_stdin(&["apply", "-f", "-"], manifest);
        assert!(out.status.success(), "apply failed:\n{}\n{manifest}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run the kubectl plugin binary against this server.
    pub fn plugin(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_kubectl-workspaces"), args).output().expect("plugin runs")
    }

    /// Poll `f` until it returns Some, or panic with `what` after `timeout`.
    pub fn eventually<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        eventually(what, timeout, f)
    }

    /// A jsonpath read through kubectl.
    pub fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let mut a: Vec<&str> = args.to_vec();
        let expr = format!("jsonpath={path}");
        a.extend_from_slice(&["-o", &expr]);
        let out = self.kubectl(&a);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(500));
    }
}

pub async fn eventually_async<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(500));
    }
}

/// A CRD of the tests' own (not the Workspace one), exercising every admission feature.
pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wg], listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Mode, type: string, jsonPath: .spec.mode, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    selectableFields:
    - jsonPath: .spec.color
    - jsonPath: .spec.size
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: "self.size <= 10 || self.mode == 'big'"
              message: size too big
            properties:
              size: {type: integer, minimum: 1, maximum: 100}
              color: {type: string, enum: [red, green, blue], default: red}
              mode: {type: string, default: small}
              name: {type: string, pattern: '^[a-z]+$', maxLength: 8}
              tags: {type: array, maxItems: 3, items: {type: string}}
              serial:
                type: string
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: serial is immutable}
          status:
            type: object
            properties:
              phase: {type: string}
"#;

pub fn widget(name: &str, ns: &str, size: i64, color: &str, labels: &[(&str, &str)]) -> String {
    let labels: String = labels.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    let labels = if labels.is_empty() { String::new() } else { format!("  labels:\n{labels}") };
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: {ns}\n{labels}spec:\n  size: {size}\n  color: {color}\n"
    )
}

/// The operator on its own thread and runtime, against a cluster; stops (gracefully) on drop.
pub struct Operator {
    pub metrics: std::sync::Arc<workspace_operator::metrics::Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Operator {
    pub fn start(c: &Cluster) -> Operator {
        let metrics = std::sync::Arc::new(workspace_operator::metrics::Metrics::default());
        let config = workspace_operator::controller::Config { metrics: Some(metrics.clone()), ..Default::default() };
        let url = c.server.url().to_string();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let client = kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
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
    let c = Cluster::start(false);
    c.ok(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/crds/workspace.yaml")]);
    c.ok(&["wait", "--for=condition=Established", "crd/workspaces.workspaces.dev", "--timeout=10s"]);
    let op = Operator::start(&c);
    (c, op)
}

/// Wait until Workspace `name` in `ns` reports `status`; returns the full jsonpath reading.
pub fn wait_status(c: &Cluster, ns: &str, name: &str, status: &str) {
    c.eventually(&format!("{ns}/{name} to be {status}"), Duration::from_secs(20), || {
        let s = c.jsonpath(&["get", "ws", name, "-n", ns], "{.status.status}");
        (s == status).then_some(())
    });
}

pub fn workspace(name: &str, ns: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: workspaces.dev/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  owner: alice@example.com\n{extra_spec}"
    )
}
