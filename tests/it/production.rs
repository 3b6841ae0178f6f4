//! The operator as it runs in a pod: its own process, `/metrics` and health probes, JSON logs,
//! SIGTERM, and a leader that is paused past its lease.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::Cluster;
use devcluster::{FaultKind, WRITE_VERBS};
use workspace_operator::crd::{GrantRole, SubjectKind};

struct Process {
    child: Child,
    metrics: String,
}

impl Process {
    fn start(c: &Cluster, identity: &str, extra: &[&str], log: &Path) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let metrics = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(log).expect("log file");
        // As deployed: the chart's ServiceAccount and RBAC, its Lease in its own namespace.
        let child = Command::new(env!("CARGO_BIN_EXE_workspace-operator"))
            .args(["run", "--metrics-addr", &metrics, "--lease-namespace", "workspace-system"])
            .args(extra)
            .env("KUBECONFIG", crate::common::operator_kubeconfig(c))
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
        self.get_with(path, "").map(|(code, _, body)| (code, body))
    }

    /// GET with an Accept header: (status code, Content-Type, body).
    fn get_with(&self, path: &str, accept: &str) -> Option<(u16, String, String)> {
        let mut s = std::net::TcpStream::connect(&self.metrics).ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let content_type = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        Some((code, content_type, body.to_string()))
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
    let c = crate::common::cluster();
    crate::common::install_crd(&c);
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
    c.jsonpath(&["get", "lease", "workspace-operator", "-n", "workspace-system"], "{.spec.holderIdentity}")
}

/// An operator process that reconciled `default/observed` after one failed attempt (an injected
/// 500 on the namespace create); its log file.
fn observed_operator(dir: &Path) -> (Cluster, Process, std::path::PathBuf) {
    let c = crate::common::cluster();
    let log = dir.join("operator.log");
    let p = Process::start(&c, "solo", &["--log-format", "json"], &log);
    // Live at once; not ready while the CRD is missing.
    let (code, _) = crate::common::eventually("/healthz", Duration::from_secs(10), || p.get("/healthz"));
    assert_eq!(code, 200);
    assert_eq!(p.get("/readyz").expect("/readyz").0, 503, "ready without the CRD");
    crate::common::install_crd(&c);
    crate::common::eventually("/readyz 200", Duration::from_secs(20), || (p.get("/readyz")?.0 == 200).then_some(()));
    c.server.faults().fail_next("create", "namespaces", 1, FaultKind::ServerError);
    c.apply(&crate::common::ws("observed").yaml());
    crate::common::wait_status(&c, "default", "observed", "Available");
    crate::common::eventually("metrics after the reconcile", Duration::from_secs(10), || {
        let (_, body) = p.get("/metrics")?;
        (metric(&body, "workspace_operator_workspaces{status=\"Available\"}")? >= 1.0).then_some(())
    });
    (c, p, log)
}

#[test]
fn probes_are_plain_text_and_ready_only_once_the_crd_is_established() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_c, p, _) = observed_operator(dir.path());
    for path in ["/healthz", "/readyz"] {
        let (code, content_type, body) = p.get_with(path, "").expect("probe");
        assert_eq!((code, content_type.as_str(), body.as_str()), (200, "text/plain; charset=utf-8", "ok"));
    }
}

#[test]
fn metrics_are_openmetrics_that_a_real_parser_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_c, p, _) = observed_operator(dir.path());
    // What Prometheus 3 sends.
    let accept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
    let (code, content_type, body) = p.get_with("/metrics", accept).expect("scrape");
    assert_eq!(code, 200);
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let out = crate::common::python_tool("openmetrics.py", &[], &body);
    let families: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let family = |name: &str| {
        families.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no family {name} in:\n{body}"))
    };
    let label_keys = |name: &str| -> Vec<String> {
        let mut keys: Vec<String> = family(name)["samples"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["labels"].as_object().unwrap().keys().cloned().collect::<Vec<_>>())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    };
    // Every metric docs/operations.md documents, with its type and labels.
    assert_eq!(family("workspace_operator_reconciles")["type"], "counter");
    assert!(family("workspace_operator_reconciles")["samples"][0]["name"] == "workspace_operator_reconciles_total");
    assert_eq!(family("workspace_operator_reconcile_failures")["type"], "counter");
    assert_eq!(label_keys("workspace_operator_reconcile_failures"), ["reason"], "the injected 500 is counted");
    assert_eq!(family("workspace_operator_reconcile_duration_seconds")["type"], "histogram");
    assert_eq!(label_keys("workspace_operator_reconcile_duration_seconds"), ["le"]);
    assert_eq!(family("workspace_operator_workspaces")["type"], "gauge");
    assert_eq!(label_keys("workspace_operator_workspaces"), ["status"]);
    assert_eq!(family("workspace_operator_leader")["type"], "gauge");
    assert_eq!(family("workspace_operator_unreadable_workspaces")["type"], "gauge");
    // A scraper that only reads the classic format gets it, counters named with `_total`.
    let (_, content_type, classic) = p.get_with("/metrics", "text/plain;version=0.0.4").expect("scrape");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(classic.contains("# TYPE workspace_operator_reconciles_total counter"), "{classic}");
    assert!(!classic.contains("# EOF"), "{classic}");
}

#[test]
fn logs_are_json_lines_and_a_reconcile_names_its_workspace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, _p, log) = observed_operator(dir.path());
    // Ordinary life: Workspaces come and go, some deleted while a reconcile of theirs is queued.
    for i in 0..10 {
        c.apply(&crate::common::ws(&format!("brief-{i}")).yaml());
    }
    c.ok(&["delete", "ws", "--all", "--wait=false"]);
    crate::common::eventually("every Workspace gone", Duration::from_secs(30), || {
        c.ok(&["get", "ws", "-o", "name"]).trim().is_empty().then_some(())
    });
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let in_span = lines
        .iter()
        .any(|l| l["span"]["namespace"] == "default" && l["span"]["workspace"] == "observed" && l["level"].is_string());
    assert!(in_span, "no log line inside the reconcile span of default/observed:\n{text}");
    // WARN is for what someone on call should look at: here the missing CRD at start and the
    // injected failure, each once.
    let expected = ["reconcile failed", "waiting for the Workspace CRDs (install crds/workspace.yaml)"];
    let warnings: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["level"] == "WARN" && !expected.iter().any(|m| l["message"] == *m)).collect();
    assert!(warnings.is_empty(), "warnings in ordinary life: {warnings:?}");
    assert!(!text.contains('\u{1b}'), "no colour codes in a log written to a file");
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
    let log = log_of(dir.path(), "a.log");
    assert!(log.contains("became leader") && !log.contains('\u{1b}'), "plain text in a file, no colours:\n{log}");
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

/// Write the Lease as another replica would, holding it with this renewTime.
fn hold_lease_as(c: &Cluster, holder: &str, renewed: &str) {
    c.apply(&format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: workspace-operator, namespace: workspace-system}}\nspec: {{holderIdentity: {holder}, leaseDurationSeconds: 15, renewTime: \"{renewed}\", acquireTime: \"{renewed}\"}}\n"
    ));
}

#[test]
fn a_standby_judges_expiry_by_its_own_clock_not_the_leaders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = crate::common::cluster();
    crate::common::install_crd(&c);
    c.ok(&["create", "namespace", "workspace-system"]);
    // The leader's clock is an hour behind: every renewTime it writes looks long expired.
    let behind = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let at = |s: i64| (behind + jiff::SignedDuration::from_secs(s)).strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    hold_lease_as(&c, "skewed", &at(0));
    let _p = Process::start(&c, "solo", &["--leader-elect"], &dir.path().join("solo.log"));
    // For longer than a lease duration the leader keeps renewing: the standby must wait.
    let watched = Instant::now();
    let mut i = 0;
    while watched.elapsed() < Duration::from_secs(20) {
        i += 1;
        hold_lease_as(&c, "skewed", &at(i));
        assert_eq!(holder(&c), "skewed", "taken from a live leader after {:?}", watched.elapsed());
        std::thread::sleep(Duration::from_millis(1000));
    }
    // The leader stops renewing: a lease duration later, by the standby's clock, it takes over.
    c.eventually("the standby to take over", Duration::from_secs(40), || (holder(&c) == "solo").then_some(()));
}

#[test]
fn a_conflict_on_its_own_renewal_is_not_a_lost_lease() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, mut a) = led_by_replica_a(dir.path());
    let renewals = || c.server.counters().get("update", "leases");
    let before = renewals();
    c.server.faults().fail_next("update", "leases", 1, FaultKind::Conflict);
    c.eventually("two more renewals", Duration::from_secs(20), || (renewals() >= before + 2).then_some(()));
    assert!(a.child.try_wait().expect("status").is_none(), "stepped down:\n{}", log_of(dir.path(), "a.log"));
    assert_eq!(holder(&c), "replica-a");
    c.apply(&crate::common::ws("still").yaml());
    crate::common::wait_status(&c, "default", "still", "Available");
}

#[test]
fn a_leader_paused_mid_reconcile_writes_nothing_when_it_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, mut a, b) = leader_and_standby(dir.path(), "first");
    c.ok(&["create", "namespace", "legacy"]);
    c.ok(&["label", "namespace", "legacy", "workspaces.dev/enroll-from=default"]);
    // The leader's reconcile of `late` reads the namespace to enroll; the answer is slow, and
    // the leader is frozen while it waits: its reconcile began while it led.
    let reads = || c.server.counters().get("get", "namespaces");
    let before = reads();
    c.server.faults().fail_next("get", "namespaces", 1, FaultKind::Delay(3000));
    c.apply(&crate::common::ws("late").enrolled("legacy").yaml());
    c.eventually("the leader's read in flight", Duration::from_secs(10), || (reads() > before).then_some(()));
    a.signal("-STOP");
    c.eventually("replica-b to take over", Duration::from_secs(40), || (holder(&c) == "replica-b").then_some(()));
    crate::common::wait_status(&c, "default", "late", "Available");
    drop(b);
    c.server.counters().start_log();
    a.signal("-CONT");
    let code = a.exit_code(Duration::from_secs(30));
    assert_ne!(code, Some(0), "a replica that lost its lease exits non-zero to be restarted");
    let writes: Vec<_> = (c.server.counters().take_log().into_iter())
        .filter(|r| r.user_agent.contains("(replica-a)") && WRITE_VERBS.contains(&r.verb.as_str()))
        .collect();
    assert!(writes.is_empty(), "the deposed leader finished its reconcile: {writes:?}");
}

/// The Workspace CRD with `spec.authType` relaxed to any string, as a hand-edited CRD (or a newer
/// one, then an operator rollback) leaves it.
fn relax_auth_type(c: &Cluster) {
    relax_enum(c, "authType");
}

/// The Workspace CRD with the enum of `spec.<field>` removed.
fn relax_enum(c: &Cluster, field: &str) {
    let path = format!("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/{field}/enum");
    c.ok(&[
        "patch",
        "crd",
        "workspaces.workspaces.dev",
        "--type=json",
        "-p",
        &format!(r#"[{{"op":"remove","path":"{path}"}}]"#),
    ]);
}

/// A provisioned Workspace that stops decoding fails safe: the access its policy may no longer
/// allow (grants, public view) goes, as for a breach of policy; its owner keeps access, and its
/// namespace and data stay.
#[test]
fn a_workspace_that_stops_decoding_loses_its_grants_and_keeps_its_owner() {
    let (c, _op) = crate::common::with_operator();
    c.apply(&crate::common::ws("odd").grant(SubjectKind::User, "victor", GrantRole::View).yaml());
    crate::common::wait_status(&c, "default", "odd", "Available");
    let ns = crate::common::target_ns(&c, "default", "odd");
    assert_eq!(crate::common::bindings(&c, &ns).len(), 2, "the owner's and the grant's");
    relax_enum(&c, "desiredState");
    c.ok(&["patch", "ws", "odd", "--type=merge", "-p", r#"{"spec":{"desiredState":"Sleeping"}}"#]);
    crate::common::wait_status(&c, "default", "odd", "Failed");
    c.eventually("the grant withdrawn", Duration::from_secs(20), || {
        (crate::common::bindings(&c, &ns) == ["rolebinding.rbac.authorization.k8s.io/workspace-admins"]).then_some(())
    });
    assert!(c.kubectl(&["get", "ns", &ns]).status.success(), "the namespace stays");
    // Corrected, it gets its access back.
    c.ok(&["patch", "ws", "odd", "--type=merge", "-p", r#"{"spec":{"desiredState":"Available"}}"#]);
    crate::common::wait_status(&c, "default", "odd", "Available");
    c.eventually("the grant back", Duration::from_secs(20), || {
        (crate::common::bindings(&c, &ns).len() == 2).then_some(())
    });
}

#[test]
fn a_workspace_that_does_not_decode_is_one_failed_workspace_not_an_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = crate::common::cluster();
    crate::common::install_crd(&c);
    relax_auth_type(&c);
    c.apply("apiVersion: workspaces.dev/v1alpha1\nkind: Workspace\nmetadata: {name: weird, namespace: default}\nspec: {displayName: Weird, owner: alice, authType: Weird}\n");
    c.apply(&crate::common::ws("fine").yaml());
    // Started after the bad object is stored: its first list must not fail on it.
    let p = Process::start(&c, "solo", &[], &dir.path().join("operator.log"));
    crate::common::wait_status(&c, "default", "fine", "Available");
    crate::common::wait_status(&c, "default", "weird", "Failed");
    let reason = c.jsonpath(&["get", "ws", "weird"], "{.status.stateReason}: {.status.message}");
    assert!(
        reason.starts_with("InvalidSpec: ") && reason.contains("unknown variant") && reason.contains("Weird"),
        "{reason}"
    );
    let listed = c.ok(&["get", "ws", "-l", "workspaces.dev/status=Failed", "-o", "name"]);
    assert_eq!(listed.trim(), "workspace.workspaces.dev/weird", "the list view shows it");
    let (code, body) = p.get("/metrics").expect("scrape");
    assert_eq!(code, 200);
    assert_eq!(metric(&body, "workspace_operator_unreadable_workspaces "), Some(1.0), "{body}");
    assert_eq!(p.get("/readyz").expect("/readyz").0, 200, "one bad object is not a stalled controller");
    // Other Workspaces keep converging meanwhile.
    c.apply(&crate::common::ws("later").yaml());
    crate::common::wait_status(&c, "default", "later", "Available");
    // Corrected, it is reconciled like any other.
    c.ok(&["patch", "ws", "weird", "--type=merge", "-p", r#"{"spec":{"authType":"Private"}}"#]);
    crate::common::wait_status(&c, "default", "weird", "Available");
    crate::common::eventually("the gauge back to 0", Duration::from_secs(10), || {
        let (_, body) = p.get("/metrics")?;
        (metric(&body, "workspace_operator_unreadable_workspaces ")? == 0.0).then_some(())
    });
}

#[test]
fn readiness_fails_while_the_workspace_watch_keeps_failing_and_returns_when_it_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, p, _) = observed_operator(dir.path());
    for verb in ["list", "watch"] {
        c.server.faults().fail_next(verb, "workspaces", u64::MAX, FaultKind::ServerError);
    }
    c.server.faults().drop_watches();
    crate::common::eventually("/readyz 503 while stalled", Duration::from_secs(60), || {
        (p.get("/readyz")?.0 == 503).then_some(())
    });
    c.server.faults().clear();
    // It reconciles again once the watch's backoff (up to 30 s and jitter by now) has run out,
    // and the watch that delivers the change is ready again.
    c.apply(&crate::common::ws("after").yaml());
    c.eventually("default/after Available", Duration::from_secs(90), || {
        (c.jsonpath(&["get", "ws", "after"], "{.status.status}") == "Available").then_some(())
    });
    crate::common::eventually("/readyz 200 once recovered", Duration::from_secs(20), || {
        (p.get("/readyz")?.0 == 200).then_some(())
    });
}
