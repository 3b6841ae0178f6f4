//! For tests against the server: a server with its own kubeconfig and kubectl cache in a temp
//! directory, the real kubectl pointed at it, and polling with a deadline (never a sleep as
//! synchronisation). The kubectl side works for any server that has a kubeconfig: tests that run
//! against another API server hold theirs in a `Cluster` too.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::kit::Background;

pub struct Cluster<S = Background> {
    pub server: S,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// A fresh, empty server.
    pub fn start() -> Cluster {
        let server = Background::start().expect("server starts");
        let kubeconfig = server.kubeconfig();
        Cluster::with_server(server, &kubeconfig)
    }
}

impl<S> Cluster<S> {
    /// A running `server`, reached with `kubeconfig` (the admin's).
    pub fn with_server(server: S, kubeconfig: &str) -> Cluster<S> {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).expect("write kubeconfig");
        Cluster { server, dir }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `program` with this cluster's kubeconfig, and a HOME and kubectl cache of its own.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path());
        cmd
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let cache = format!("--cache-dir={}", self.dir.path().join("cache").display());
        let mut all = vec![cache.as_str()];
        all.extend_from_slice(args);
        self.command("kubectl", &all)
    }

    /// Run kubectl (the real binary) against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command(args).output().expect("kubectl runs")
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

    /// kubectl with `input` on stdin (`-f -`).
    pub fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("kubectl finishes")
    }

    /// `kubectl apply -f -` that must succeed; returns stdout.
    pub fn apply(&self, manifest: &str) -> String {
        let out = self.with_stdin(&["apply", "-f", "-"], manifest);
        assert!(out.status.success(), "apply failed:\n{}\n{manifest}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A jsonpath read through kubectl.
    pub fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let expr = format!("jsonpath={path}");
        let mut a: Vec<&str> = args.to_vec();
        a.extend_from_slice(&["-o", &expr]);
        String::from_utf8_lossy(&self.kubectl(&a).stdout).into_owned()
    }

    /// Poll `f` until it returns Some, or panic with `what` after `timeout`.
    pub fn eventually<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        eventually(what, timeout, f)
    }

    /// Write a kubeconfig of this cluster (`Handle::kubeconfig_as` and friends make them) to a
    /// file of its own; its path, for `kubectl_with`.
    pub fn save_kubeconfig(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Run kubectl with another kubeconfig (another user).
    pub fn kubectl_with(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Output {
        let mut cmd = self.kubectl_command(args);
        cmd.env("KUBECONFIG", kubeconfig);
        cmd.output().expect("kubectl runs")
    }
}

/// Poll `f` until it returns Some, or panic with `what` after `timeout`.
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

/// As `eventually`, for async checks.
pub async fn eventually_async<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
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
