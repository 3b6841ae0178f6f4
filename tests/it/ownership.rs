//! Whose namespace is whose: a Workspace never takes a namespace that is not its own, adopts
//! only when enrolled, and never deletes what it adopted.

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
    assert_eq!(released, found, "given back exactly as it was found");
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
