//! GitOps: Argo CD's health script (run by a real Lua interpreter) on real Workspace objects,
//! the conditions kstatus reads, and no drift from the operator's own writes.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use workspace_operator::crd::DesiredState;

const LUA: &str = include_str!("../../charts/workspace-operator/files/argocd-health.lua");

fn health(objs: &[Value]) -> Vec<Value> {
    let python = std::env::var("HELM_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").to_string());
    let mut child = Command::new(python)
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helm/helmtool.py"),
            "lua-health",
            concat!(env!("CARGO_MANIFEST_DIR"), "/charts/workspace-operator/files/argocd-health.lua"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python with lupa (make test installs it)");
    child.stdin.take().unwrap().write_all(serde_json::to_string(objs).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

#[test]
fn argocd_health_kstatus_conditions_and_no_drift() {
    assert!(include_str!("../../README.md").contains(LUA), "the README shows the tested script");
    let (c, _op) = crate::common::with_operator();
    c.ok(&["create", "namespace", "taken"]);
    c.apply(&crate::common::ws("ok").yaml());
    c.apply(&crate::common::ws("paused").desired(DesiredState::Deactivated).yaml());
    c.apply(&crate::common::ws("bad").namespace("taken").yaml());
    crate::common::wait_status(&c, "default", "ok", "Available");
    crate::common::wait_status(&c, "default", "paused", "Deactivated");
    crate::common::wait_status(&c, "default", "bad", "Failed");
    let get = |n: &str| -> Value { serde_json::from_str(&c.ok(&["get", "ws", n, "-o", "json"])).unwrap() };
    let (ok, off, bad) = (get("ok"), get("paused"), get("bad"));
    let mut fresh = ok.clone();
    fresh.as_object_mut().unwrap().remove("status");
    let mut stale = ok.clone();
    stale["metadata"]["generation"] = (ok["metadata"]["generation"].as_i64().unwrap() + 1).into();

    let hs = health(&[ok.clone(), off, bad.clone(), fresh, stale]);
    let statuses: Vec<&str> = hs.iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Healthy", "Healthy", "Degraded", "Progressing", "Progressing"]);
    assert!(hs[2]["message"].as_str().unwrap().starts_with("NamespaceConflict"));

    // kstatus: Reconciling and Stalled carry the meaning, with observedGeneration current.
    for (obj, stalled) in [(&ok, "False"), (&bad, "True")] {
        let conds = obj["status"]["conditions"].as_array().unwrap();
        let get = |t: &str| conds.iter().find(|c| c["type"] == t).unwrap();
        assert_eq!(get("Reconciling")["status"], "False");
        assert_eq!(get("Stalled")["status"], stalled);
        assert_eq!(get("Ready")["observedGeneration"], obj["metadata"]["generation"]);
    }

    // The operator's labels, finalizer and status are no drift against the applied manifest.
    let out = c.with_stdin(&["diff", "-f", "-"], &crate::common::ws("ok").yaml());
    assert!(out.status.success(), "kubectl diff shows drift:\n{}", String::from_utf8_lossy(&out.stdout));
}
