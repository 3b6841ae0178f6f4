//! GitOps: Argo CD's health script (run by a real Lua interpreter) on real Workspace objects,
//! the conditions kstatus reads, and no drift from the operator's own writes.

use serde_json::Value;
use workspace_operator::crd::DesiredState;

const LUA: &str = include_str!("../../charts/workspace-operator/files/argocd-health.lua");

fn health(objs: &[Value]) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/workspace-operator/files/argocd-health.lua");
    let out = crate::common::python_tool("helmtool.py", &["lua-health", script], &serde_json::to_string(objs).unwrap());
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

#[test]
fn argocd_health_kstatus_conditions_and_no_drift() {
    assert!(include_str!("../../docs/operations.md").contains(LUA), "the operations page shows the tested script");
    let (c, _op) = crate::common::with_operator();
    c.ok(&["create", "namespace", "default-taken"]);
    c.apply(&crate::common::ws("ok").yaml());
    c.apply(&crate::common::ws("paused").desired(DesiredState::Deactivated).yaml());
    c.apply(&crate::common::ws("bad").namespace("default-taken").yaml());
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

fn resource_version(c: &crate::common::Cluster, name: &str) -> String {
    c.jsonpath(&["get", "ws", name], "{.metadata.resourceVersion}")
}

#[test]
fn server_side_reapply_of_an_unchanged_manifest_never_conflicts_with_the_operator() {
    let (c, _op) = crate::common::with_operator();
    let manifest = crate::common::ws("synced").limit("pods", "3").yaml();
    let ssa = |args: &[&str]| {
        let mut a = vec!["apply", "--server-side", "-f", "-"];
        a.extend_from_slice(args);
        c.with_stdin(&a, &manifest)
    };
    assert!(ssa(&[]).status.success());
    crate::common::wait_status(&c, "default", "synced", "Available");

    // The operator's labels, finalizer and status are its own fields, recorded as such.
    let managers = c.jsonpath(&["get", "ws", "synced"], "{.metadata.managedFields[*].manager}");
    assert!(managers.split(' ').any(|m| m == "workspace-operator"), "managers: {managers}");
    assert!(!managers.contains("unknown"), "every write of the operator names its manager: {managers}");

    // Re-applied as Flux, Argo CD and kubectl do on every sync: no conflict and no write.
    let before = resource_version(&c, "synced");
    let again = ssa(&[]);
    assert!(again.status.success(), "re-apply conflicts: {}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(resource_version(&c, "synced"), before, "an unchanged re-apply stores nothing");
    let diff = c.with_stdin(&["diff", "--server-side", "-f", "-"], &manifest);
    assert!(diff.status.success(), "the operator's writes show as drift:\n{}", String::from_utf8_lossy(&diff.stdout));

    // A label someone added by hand is theirs; the re-apply still goes through and keeps it.
    c.ok(&["label", "ws", "synced", "team=ml"]);
    let again = ssa(&[]);
    assert!(again.status.success(), "re-apply after kubectl label: {}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(c.jsonpath(&["get", "ws", "synced"], "{.metadata.labels.team}"), "ml");

    // kube-rs, as Flux applies: its own manager, no force.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let api: kube::Api<workspace_operator::crd::Workspace> = kube::Api::namespaced(c.server.client(), "default");
        let ws = crate::common::ws("synced").limit("pods", "3").build();
        api.patch("synced", &kube::api::PatchParams::apply("kustomize-controller"), &kube::api::Patch::Apply(&ws))
            .await
            .expect("a Flux-style apply without force succeeds");
    });
    // A real disagreement is still a conflict, on the field, naming who set it.
    c.ok(&["label", "ws", "synced", "tier=gold"]);
    let other = crate::common::ws("synced").limit("pods", "3").json();
    let mut other = other;
    other["metadata"]["labels"] = serde_json::json!({"tier": "silver"});
    let out = c.with_stdin(&["apply", "--server-side", "-f", "-"], &other.to_string());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(".metadata.labels.tier") && err.contains("kubectl-label"), "{err}");
}
