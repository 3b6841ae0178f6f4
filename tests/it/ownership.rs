//! Whose namespace is whose: a Workspace never takes a namespace that is not its own, adopts
//! only when enrolled, and never deletes what it adopted.

use std::time::Duration;

use workspace_operator::crd::{GrantRole, SubjectKind};

use crate::common::{wait_status, with_operator, writes_of_a_reconcile, ws};

#[test]
fn a_managed_workspace_never_takes_an_existing_namespace() {
    let (c, op) = with_operator();
    // In the organization's prefix (default-), so only the namespace's owner is in the way.
    c.ok(&["create", "namespace", "default-taken"]);
    c.apply(&ws("grab").namespace("default-taken").yaml());
    wait_status(&c, "default", "grab", "Failed");
    assert_eq!(c.jsonpath(&["get", "ws", "grab"], "{.status.stateReason}"), "NamespaceConflict");
    assert_eq!(c.jsonpath(&["get", "ws", "grab"], "{.metadata.labels.workspaces\\.dev/status}"), "Failed");
    assert_eq!(
        c.jsonpath(&["get", "ns", "default-taken"], "{.metadata.labels}"),
        "{\"kubernetes.io/metadata.name\":\"default-taken\"}"
    );
    // Found to be someone else's, the namespace is not tried again: a retry writes nothing.
    let writes = writes_of_a_reconcile(&c, &op, "grab");
    assert!(writes.is_empty(), "a reconcile of a settled conflict wrote: {writes:?}");
    c.ok(&["delete", "ws", "grab", "--timeout=20s"]);
    assert!(
        c.kubectl(&["get", "ns", "default-taken"]).status.success(),
        "a namespace the operator did not create survives"
    );
}

#[test]
fn an_enrolled_namespace_is_adopted_then_released_and_never_deleted() {
    let (c, _op) = with_operator();
    c.ok(&["create", "namespace", "legacy"]);
    // The namespace consents, and has a Pod Security level of its own, stricter than the class's.
    c.ok(&[
        "label",
        "namespace",
        "legacy",
        "workspaces.dev/enroll-from=default",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    c.ok(&["annotate", "namespace", "legacy", "team=analytics"]);
    let found = (
        c.jsonpath(&["get", "ns", "legacy"], "{.metadata.labels}"),
        c.jsonpath(&["get", "ns", "legacy"], "{.metadata.annotations}"),
    );
    c.ok(&["create", "configmap", "precious", "-n", "legacy", "--from-literal=k=v"]);
    let delete = workspace_operator::crd::DeletionPolicy::Delete;
    c.apply(&ws("old").enrolled("legacy").deletion_policy(delete).yaml());
    wait_status(&c, "default", "old", "Available");
    assert_eq!(c.jsonpath(&["get", "ns", "legacy"], "{.metadata.labels.workspaces\\.dev/management}"), "Enrolled");
    let level = |mode: &str| {
        c.jsonpath(&["get", "ns", "legacy"], &format!("{{.metadata.labels.pod-security\\.kubernetes\\.io/{mode}}}"))
    };
    assert_eq!(
        (level("enforce"), level("warn")),
        ("restricted".into(), "restricted".into()),
        "tightened, never loosened"
    );
    c.ok(&["delete", "ws", "old", "--timeout=20s"]);
    assert_eq!(c.jsonpath(&["get", "cm", "precious", "-n", "legacy"], "{.data.k}"), "v");
    let released = (
        c.jsonpath(&["get", "ns", "legacy"], "{.metadata.labels}"),
        c.jsonpath(&["get", "ns", "legacy"], "{.metadata.annotations}"),
    );
    // Given back as it was found, but for Pod Security: no looser than while it was enrolled,
    // so nothing admitted meanwhile runs with more privilege after.
    let without_pod_security = |labels: &str| {
        let mut l: serde_json::Map<String, serde_json::Value> = serde_json::from_str(labels).expect("labels");
        l.retain(|k, _| !k.starts_with("pod-security.kubernetes.io/"));
        l
    };
    assert_eq!(without_pod_security(&released.0), without_pod_security(&found.0), "labels as found");
    assert_eq!(released.1, found.1, "annotations as found");
    assert_eq!(
        (level("enforce"), level("warn"), level("audit")),
        ("restricted".into(), "restricted".into(), "restricted".into())
    );
}

#[test]
fn enrolling_a_missing_namespace_fails_with_namespace_not_found() {
    let (c, _op) = with_operator();
    c.apply(&ws("ghost").enrolled("nowhere").yaml());
    wait_status(&c, "default", "ghost", "Failed");
    assert_eq!(c.jsonpath(&["get", "ws", "ghost"], "{.status.stateReason}"), "NamespaceNotFound");
}

#[test]
fn a_second_default_in_a_namespace_is_a_conflict() {
    let (c, _op) = with_operator();
    c.ok(&["create", "namespace", "org"]);
    c.apply(&ws("first").in_ns("org").default_workspace().yaml());
    wait_status(&c, "org", "first", "Available");
    c.apply(&ws("second").in_ns("org").default_workspace().yaml());
    wait_status(&c, "org", "second", "Failed");
    assert_eq!(c.jsonpath(&["get", "ws", "second", "-n", "org"], "{.status.stateReason}"), "DefaultConflict");
    c.ok(&["wait", "ws/second", "-n", "org", "--for=condition=Stalled", "--timeout=10s"]);
}

#[test]
fn a_stale_management_label_never_makes_an_enrolled_namespace_deletable() {
    let (c, _op) = with_operator();
    c.ok(&["create", "namespace", "stale"]);
    // What detaching by hand leaves behind: the operator's management label, saying Managed.
    c.ok(&["label", "namespace", "stale", "workspaces.dev/enroll-from=default", "workspaces.dev/management=Managed"]);
    c.ok(&["create", "configmap", "precious", "-n", "stale", "--from-literal=k=v"]);
    let delete = workspace_operator::crd::DeletionPolicy::Delete;
    c.apply(&ws("st").enrolled("stale").deletion_policy(delete).yaml());
    wait_status(&c, "default", "st", "Available");
    c.ok(&["delete", "ws", "st", "--timeout=20s"]);
    assert_eq!(
        c.jsonpath(&["get", "ns", "stale"], "{.status.phase}"),
        "Active",
        "an enrolled namespace is never deleted"
    );
    assert_eq!(c.jsonpath(&["get", "cm", "precious", "-n", "stale"], "{.data.k}"), "v");
}

#[test]
fn deleting_the_crd_is_not_a_teardown_and_keeps_every_namespace() {
    let (c, _op) = with_operator();
    let delete = workspace_operator::crd::DeletionPolicy::Delete;
    c.apply(&ws("kept").deletion_policy(delete).yaml());
    wait_status(&c, "default", "kept", "Available");
    let target = crate::common::target_ns(&c, "default", "kept");
    let access = crate::common::bindings(&c, &target);
    assert!(!access.is_empty());
    // An uninstall gone wrong, or a GitOps prune: the CRD goes, with every Workspace.
    c.ok(&["delete", "crd", "workspaces.workspaces.dev", "--timeout=30s"]);
    assert!(!c.kubectl(&["get", "crd", "workspaces.workspaces.dev"]).status.success(), "the deletion completes");
    assert_eq!(c.jsonpath(&["get", "ns", &target], "{.status.phase}"), "Active", "not deleted, whatever the policy");
    assert_eq!(crate::common::bindings(&c, &target), access, "nothing revoked either");
}

/// Two Enrolled Workspaces applied together on one namespace, a hundred times over: in each
/// pair one has it, the other is refused, and no binding the loser wrote is left behind (each
/// adoption is written over the version of the namespace it was judged on).
#[test]
fn two_workspaces_racing_to_enroll_one_namespace_leave_no_orphaned_binding() {
    const N: usize = 100;
    let (c, _op) = with_operator();
    let namespaces: String = (0..N)
        .map(|i| format!("---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: race-{i}, labels: {{workspaces.dev/enroll-from: default}}}}\n"))
        .collect();
    c.apply(&namespaces);
    let pair = |i: usize| {
        let racer = |who: &str| {
            let grant = (SubjectKind::User, format!("grantee-{who}"), GrantRole::View);
            ws(&format!("{who}-{i}")).enrolled(&format!("race-{i}")).grant(grant.0, &grant.1, grant.2).yaml()
        };
        format!("---\n{}---\n{}", racer("a"), racer("b"))
    };
    c.apply(&(0..N).map(pair).collect::<String>());
    let states = || -> std::collections::BTreeMap<String, String> {
        let out = c.ok(&["get", "ws", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.status} {end}"]);
        out.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
    };
    let settled = c.eventually("every racer settled", Duration::from_secs(120), || {
        let s = states();
        (s.len() == 2 * N && s.values().all(|v| v == "Available" || v == "Failed")).then_some(s)
    });
    let annotations = c.ok(&[
        "get",
        "rolebindings",
        "-A",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.namespace}={.metadata.annotations.workspaces\.dev/workspace} {end}"#,
    ]);
    for i in 0..N {
        let (a, b) = (&settled[&format!("a-{i}")], &settled[&format!("b-{i}")]);
        let winner = match (a.as_str(), b.as_str()) {
            ("Available", "Failed") => format!("default/a-{i}"),
            ("Failed", "Available") => format!("default/b-{i}"),
            other => panic!("race-{i}: one must win, one must lose: {other:?}"),
        };
        let ns = format!("race-{i}");
        let owners: Vec<&str> =
            annotations.split_whitespace().filter_map(|kv| kv.strip_prefix(&format!("{ns}="))).collect();
        assert!(
            !owners.is_empty() && owners.iter().all(|o| *o == winner),
            "{ns}: bindings of {owners:?}, won by {winner}"
        );
    }
}
