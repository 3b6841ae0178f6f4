//! The operator as it runs in a pod: its own process, `/metrics` and health probes, JSON logs,
//! SIGTERM, and a leader that is paused past its lease.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::Cluster;
use devcluster::{FaultKind, WRITE_VERBS};

struct Process {
    child: Child,
    metrics: String,
}

impl Process {
    fn start(c: &Cluster, identity: &str, extra: &[&str], log: &Path) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let metrics = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_workspace-operator"))
            .args(["run", "--metrics-addr", &metrics, "--lease-namespace", "default"])
            .args(extra)
            .env("KUBECONFIG", c.kubeconfig())
            .env("POD_NAME", identity)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("operator process");
        Process { child, metrics }
    }

    /// GET a path on the metrics port: (status code, body), or None while it is not listening.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = std::net::TcpStream::connect(&self.metrics).ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((code, body))
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().expect("kill").success();
        assert!(ok, "kill {sig}");
    }

    /// Wait for the process to exit; its exit code.
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let child = &mut self.child;
        crate::common::eventually("the operator to exit", within, || child.try_wait().ok().flatten()).code()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric(body: &str, prefix: &str) -> Option<f64> {
    body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

/// A cluster with the Workspace CRD, and `replica-a` started with leader election and leading.
fn led_by_replica_a(dir: &Path) -> (Cluster, Process) {
    let c = Cluster::start();
    c.ok(&["apply", "-f", crate::common::CRD]);
    let a = Process::start(&c, "replica-a", &["--leader-elect"], &dir.join("a.log"));
    c.eventually("replica-a to lead", Duration::from_secs(20), || (holder(&c) == "replica-a").then_some(()));
    (c, a)
}

/// `led_by_replica_a`, plus `replica-b` as a standby, once `first` has been made Available.
fn leader_and_standby(dir: &Path, first: &str) -> (Cluster, Process, Process) {
    let (c, a) = led_by_replica_a(dir);
    let b = Process::start(&c, "replica-b", &["--leader-elect"], &dir.join("b.log"));
    c.apply(&crate::common::ws(first).yaml());
    crate::common::wait_status(&c, "default", first, "Available");
    (c, a, b)
}

fn holder(c: &Cluster) -> String {
    c.jsonpath(&["get", "lease", "workspace-operator", "-n", "default"], "{.spec.holderIdentity}")
}

#[test]
fn metrics_probes_and_json_logs() {
    let c = Cluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("operator.log");
    let p = Process::start(&c, "solo", &["--log-format", "json"], &log);
    // Live at once; not ready while the CRD is missing.
    let (code, _) = crate::common::eventually("/healthz", Duration::from_secs(10), || p.get("/healthz"));
    assert_eq!(code, 200);
    assert_eq!(p.get("/readyz").expect("/readyz").0, 503, "ready without the CRD");
    c.ok(&["apply", "-f", crate::common::CRD]);
    crate::common::eventually("/readyz 200", Duration::from_secs(20), || (p.get("/readyz")?.0 == 200).then_some(()));

    // One failed attempt (an injected 500 on the namespace create), then success.
    c.server.faults().fail_next("create", "namespaces", 1, FaultKind::ServerError);
    c.apply(&crate::common::ws("observed").yaml());
    crate::common::wait_status(&c, "default", "observed", "Available");
    let body = crate::common::eventually("metrics after the reconcile", Duration::from_secs(10), || {
        let (_, body) = p.get("/metrics")?;
        (metric(&body, "workspace_operator_workspaces{status=\"Available\"}")? >= 1.0).then_some(body)
    });
    assert!(metric(&body, "workspace_operator_reconciles_total").unwrap_or(0.0) >= 1.0, "{body}");
    let failures: f64 = body
        .lines()
        .filter(|l| l.starts_with("workspace_operator_reconcile_failures_total{reason="))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(failures >= 1.0, "the injected failure is counted by reason:\n{body}");
    assert!(metric(&body, "workspace_operator_reconcile_duration_seconds_count").unwrap_or(0.0) >= 1.0, "{body}");
    assert!(body.contains("workspace_operator_reconcile_duration_seconds_bucket{le="), "{body}");
    assert!(body.contains("# TYPE workspace_operator_leader gauge"), "{body}");

    // Every log line is a JSON object; reconciles carry the Workspace in their span.
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let in_span = lines
        .iter()
        .any(|l| l["span"]["namespace"] == "default" && l["span"]["workspace"] == "observed" && l["level"].is_string());
    assert!(in_span, "no log line inside the reconcile span of default/observed:\n{text}");
}

#[test]
fn sigterm_releases_the_lease_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, mut p) = led_by_replica_a(dir.path());
    c.apply(&crate::common::ws("term").yaml());
    crate::common::wait_status(&c, "default", "term", "Available");
    let (_, body) = p.get("/metrics").expect("metrics");
    assert_eq!(metric(&body, "workspace_operator_leader"), Some(1.0), "{body}");

    p.signal("-TERM");
    assert_eq!(p.exit_code(Duration::from_secs(30)), Some(0), "{}", log_of(dir.path(), "a.log"));
    // Released, so a standby need not wait for the lease to expire.
    assert_eq!(holder(&c), "", "the lease still names a holder");
}

#[test]
fn leader_killed_standby_takes_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, mut a, b) = leader_and_standby(dir.path(), "before");
    // Exactly one replica reconciles: the standby holds no lease and writes nothing.
    assert_eq!(holder(&c), "replica-a");

    a.child.kill().expect("kill -9 the leader");
    let killed = Instant::now();
    let _ = a.child.wait();
    c.apply(&crate::common::ws("after").yaml());
    crate::common::wait_status(&c, "default", "after", "Available");
    let failover = killed.elapsed();
    assert_eq!(holder(&c), "replica-b");
    assert!(failover < Duration::from_secs(30), "failover took {failover:?}");
    eprintln!("failover (kill -9 of the leader until the next Workspace is Available): {failover:?}");
    drop(b);
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

#[test]
fn paused_leader_is_replaced_and_never_writes_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, mut a, b) = leader_and_standby(dir.path(), "first");

    // A hung leader: it neither renews nor steps down.
    a.signal("-STOP");
    c.eventually("replica-b to take over", Duration::from_secs(40), || (holder(&c) == "replica-b").then_some(()));
    c.apply(&crate::common::ws("second").yaml());
    crate::common::wait_status(&c, "default", "second", "Available");

    // With the new leader gone too, a Workspace arrives that nobody has reconciled. The old
    // leader resumes with a stale belief in its lease and work in its queue: it must not act on
    // it, and exits for a clean restart when it sees the lease is not its own.
    drop(b);
    c.server.counters().start_log();
    c.apply(&crate::common::ws("third").yaml());
    // Its first look at the lease is slow, so the queued work is reached before the answer.
    c.server.faults().fail_next("get", "leases", 1, FaultKind::Delay(3000));
    a.signal("-CONT");
    let code = a.exit_code(Duration::from_secs(30));
    assert_ne!(code, Some(0), "a replica that lost its lease exits non-zero to be restarted");
    let writes: Vec<_> = c
        .server
        .counters()
        .take_log()
        .into_iter()
        .filter(|r| r.user_agent.contains("(replica-a)") && WRITE_VERBS.contains(&r.verb.as_str()))
        .collect();
    assert!(writes.is_empty(), "the deposed leader wrote: {writes:?}\n{}", log_of(dir.path(), "a.log"));
    assert_eq!(c.jsonpath(&["get", "ws", "third"], "{.metadata.finalizers}"), "");
}
