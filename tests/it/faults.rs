//! Faults from the local API server: each scenario ends with every Workspace in its desired
//! state, nothing duplicated and nothing lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Cluster, Operator};
use devcluster::FaultKind;

const N: usize = 24;

fn create_all(c: &Cluster, prefix: &str) {
    let mut manifest = String::new();
    for i in 0..N {
        manifest.push_str("---\n");
        manifest.push_str(&crate::common::ws(&format!("{prefix}-{i:02}")).limit("pods", "4").yaml());
    }
    // Injected faults hit kubectl too; like a user, apply again until every object is in.
    c.eventually("all Workspaces created", Duration::from_secs(30), || {
        let _ = c.with_stdin(&["apply", "-f", "-"], &manifest);
        let names = c.jsonpath(&["get", "ws"], "{.items[*].metadata.name}");
        (names.split_whitespace().filter(|n| n.starts_with(prefix)).count() == N).then_some(())
    });
}

/// Every Workspace Available; then, with faults cleared, exactly one namespace, one RoleBinding
/// (owner and admins: the default class has no public group), a quota and a NetworkPolicy.
fn assert_converged(c: &Cluster, prefix: &str) -> Duration {
    let took = wait_available(c, prefix);
    // Inspect with faults off so a failed read is not mistaken for a missing object.
    c.server.faults().clear();
    assert_children(c, prefix);
    took
}

fn wait_available(c: &Cluster, prefix: &str) -> Duration {
    let start = Instant::now();
    c.eventually(&format!("{prefix}: all Available"), Duration::from_secs(90), || {
        let out = c.jsonpath(&["get", "ws"], "{range .items[*]}{.metadata.name}={.status.status} {end}");
        let ok = out.split_whitespace().filter(|w| w.starts_with(prefix) && w.ends_with("=Available")).count();
        (ok == N).then_some(())
    });
    start.elapsed()
}

/// Every workspace's children, read in one request per kind.
fn assert_children(c: &Cluster, prefix: &str) {
    let names = |args: &[&str]| -> Vec<String> {
        let path = "{range .items[*]}{.metadata.labels.workspaces\\.dev/workspace-name}{\"\\n\"}{end}";
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-l", "app.kubernetes.io/managed-by=workspace-operator", "-o"]);
        let expr = format!("jsonpath={path}");
        all.push(&expr);
        c.ok(&all).lines().filter(|n| n.starts_with(prefix)).map(String::from).collect()
    };
    let count = |list: &[String], name: &str| list.iter().filter(|n| *n == name).count();
    let (namespaces, bindings) = (names(&["namespaces"]), names(&["rolebindings", "-A"]));
    let (quotas, isolation) = (names(&["resourcequotas", "-A"]), names(&["networkpolicies", "-A"]));
    for i in 0..N {
        let name = format!("{prefix}-{i:02}");
        assert_eq!(count(&namespaces, &name), 1, "{name}: one namespace");
        assert_eq!(count(&bindings, &name), 1, "{name}: bindings");
        assert_eq!(count(&quotas, &name), 1, "{name}: quota");
        assert_eq!(count(&isolation, &name), 1, "{name}: isolation");
    }
}

#[test]
fn ten_percent_server_errors() {
    let (c, _op) = crate::common::with_operator();
    c.server.faults().fail_next("", "", 100_000, FaultKind::EveryNth(10));
    create_all(&c, "err");
    let took = assert_converged(&c, "err");
    eprintln!("10% 500s: converged in {took:?}");
}

#[test]
fn throttling_with_retry_after() {
    let (c, _op) = crate::common::with_operator();
    c.server.faults().fail_next("patch", "workspaces", 30, FaultKind::Throttle(1));
    c.server.faults().fail_next("create", "namespaces", 10, FaultKind::Throttle(1));
    create_all(&c, "slow");
    let took = assert_converged(&c, "slow");
    eprintln!("429 with Retry-After: converged in {took:?}");
}

#[test]
fn watches_dropped_and_history_compacted() {
    let (c, _op) = crate::common::with_operator();
    let stop = AtomicBool::new(false);
    let took = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(700));
                c.server.faults().drop_watches();
                n += 1;
                // The local API server forgets its history; kube-apiserver's is etcd's own.
                if n % 3 == 0
                    && let crate::common::Server::Local(local) = &c.server
                {
                    local.compact();
                }
            }
        });
        create_all(&c, "drop");
        let took = wait_available(&c, "drop");
        stop.store(true, Ordering::SeqCst);
        took
    });
    assert_children(&c, "drop");
    // Changes after the storm are still seen.
    c.ok(&["patch", "ws", "drop-00", "--type=merge", "-p", "{\"spec\":{\"desiredState\":\"Deactivated\"}}"]);
    crate::common::wait_status(&c, "default", "drop-00", "Deactivated");
    eprintln!("watches dropped every 0.7 s, compacted every 2.1 s (local): converged in {took:?}");
}

#[test]
fn concurrent_edits_conflict_and_converge() {
    let (c, _op) = crate::common::with_operator();
    create_all(&c, "edit");
    // Users annotate Workspaces while the operator writes them: its preconditioned writes 409.
    for round in 0..3 {
        for i in 0..N {
            c.ok(&["annotate", "ws", &format!("edit-{i:02}"), &format!("round={round}"), "--overwrite"]);
        }
    }
    let took = assert_converged(&c, "edit");
    eprintln!("concurrent edits: converged in {took:?}");
}

#[test]
fn operator_stopped_mid_provisioning_and_restarted() {
    let (c, op) = crate::common::with_operator();
    // Slow every request down so the kill lands in the middle of provisioning.
    c.server.faults().set_latency(Duration::from_millis(30));
    create_all(&c, "kill");
    c.eventually("some provisioned", Duration::from_secs(20), || {
        (c.ok(&["get", "ns", "-l", "app.kubernetes.io/managed-by=workspace-operator", "-o", "name"]).lines().count()
            >= 3)
            .then_some(())
    });
    drop(op);
    c.server.faults().set_latency(Duration::ZERO);
    let _op = Operator::start(&c);
    let took = assert_converged(&c, "kill");
    eprintln!("restart mid-provisioning: converged in {took:?} after the restart");
}

#[test]
fn stop_requested_while_the_api_server_fails() {
    let c = crate::common::cluster();
    c.ok(&["apply", "-f", crate::common::CRD]);
    let token = crate::common::operator_token(&c);
    // Every request fails, so the operator's caches never sync before it is told to stop.
    c.server.faults().fail_next("", "", 1_000_000, FaultKind::ServerError);
    let op = Operator::start_with_token(&c, token);
    let stopping = std::thread::spawn(move || drop(op));
    c.eventually("the operator to stop", Duration::from_secs(10), || stopping.is_finished().then_some(()));
}
