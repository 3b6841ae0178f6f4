//! The Workspace controller end to end: kubectl in, cluster objects and status out.

mod common;

use std::time::Duration;

use common::{Cluster, Operator, wait_status, with_operator, workspace};
use workspace_operator::devcluster::{FaultKind, RequestRecord};

fn ns_of(c: &Cluster, ns: &str, name: &str) -> String {
    c.eventually("status.namespace", Duration::from_secs(20), || {
        let n = c.jsonpath(&["get", "ws", name, "-n", ns], "{.status.namespace}");
        (!n.is_empty()).then_some(n)
    })
}

fn bindings(c: &Cluster, ns: &str) -> Vec<String> {
    let mut v: Vec<String> = c.ok(&["get", "rolebindings", "-n", ns, "-o", "name"]).lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn available_deactivated_deleted_and_back() {
    let (c, _op) = with_operator();
    c.ok(&["create", "namespace", "acme"]);
    c.apply(&workspace("ml", "acme", "  admins: [bob]\n  resourceLimits: {cpu: \"4\", memory: 8Gi, pods: \"20\"}\n"));
    wait_status(&c, "acme", "ml", "Available");
    c.ok(&["wait", "ws/ml", "-n", "acme", "--for=condition=Ready", "--timeout=10s"]);
    let target = ns_of(&c, "acme", "ml");
    assert_eq!(
        bindings(&c, &target),
        [
            "rolebinding.rbac.authorization.k8s.io/workspace-admins",
            "rolebinding.rbac.authorization.k8s.io/workspace-public-view"
        ]
    );
    assert_eq!(
        c.jsonpath(&["get", "rolebinding", "workspace-admins", "-n", &target], "{.subjects[*].name}"),
        "alice@example.com bob"
    );
    assert_eq!(c.jsonpath(&["get", "quota", "workspace-quota", "-n", &target], "{.spec.hard.pods}"), "20");
    assert_eq!(
        c.jsonpath(&["get", "ws", "ml", "-n", "acme"], "{.metadata.labels.workspaces\\.dev/status}"),
        "Available"
    );
    let id = c.jsonpath(&["get", "ws", "ml", "-n", "acme"], "{.status.workspaceId}");
    assert_eq!(id, c.jsonpath(&["get", "ws", "ml", "-n", "acme"], "{.metadata.uid}").replace('-', ""));

    // Data that must survive every transition.
    c.ok(&["create", "configmap", "data", "-n", &target, "--from-literal=k=v"]);

    c.ok(&["patch", "ws", "ml", "-n", "acme", "--type=merge", "-p", "{\"spec\":{\"desiredState\":\"Deactivated\"}}"]);
    wait_status(&c, "acme", "ml", "Deactivated");
    c.eventually("access revoked", Duration::from_secs(10), || bindings(&c, &target).is_empty().then_some(()));
    assert_eq!(c.jsonpath(&["get", "quota", "workspace-quota", "-n", &target], "{.spec.hard.pods}"), "0");
    assert_eq!(c.jsonpath(&["get", "cm", "data", "-n", &target], "{.data.k}"), "v");
    assert_eq!(c.jsonpath(&["get", "ws", "ml", "-n", "acme"], "{.status.stateReason}"), "UserRequested");

    c.ok(&["patch", "ws", "ml", "-n", "acme", "--type=merge", "-p", "{\"spec\":{\"desiredState\":\"Available\"}}"]);
    wait_status(&c, "acme", "ml", "Available");
    c.eventually("access restored", Duration::from_secs(10), || (bindings(&c, &target).len() == 2).then_some(()));
    assert_eq!(c.jsonpath(&["get", "quota", "workspace-quota", "-n", &target], "{.spec.hard.pods}"), "20");

    // Deleted with the default Retain policy: a record, access gone, namespace and data kept.
    c.ok(&["patch", "ws", "ml", "-n", "acme", "--type=merge", "-p", "{\"spec\":{\"desiredState\":\"Deleted\"}}"]);
    wait_status(&c, "acme", "ml", "Deleted");
    assert!(bindings(&c, &target).is_empty());
    assert_eq!(c.jsonpath(&["get", "cm", "data", "-n", &target], "{.data.k}"), "v");

    c.ok(&["patch", "ws", "ml", "-n", "acme", "--type=merge", "-p", "{\"spec\":{\"desiredState\":\"Available\"}}"]);
    wait_status(&c, "acme", "ml", "Available");
    assert_eq!(c.jsonpath(&["get", "cm", "data", "-n", &target], "{.data.k}"), "v");

    // Events record each transition.
    let events = c.ok(&["get", "events", "-n", "acme", "-o", "jsonpath={.items[*].reason}"]);
    assert!(events.contains("Provisioned") && events.contains("UserRequested"), "{events}");
}

#[test]
fn deletion_policies_retain_and_delete() {
    let (c, _op) = with_operator();
    c.apply(&workspace("keep", "default", ""));
    c.apply(&workspace("drop", "default", "  deletionPolicy: Delete\n"));
    wait_status(&c, "default", "keep", "Available");
    wait_status(&c, "default", "drop", "Available");
    let keep_ns = ns_of(&c, "default", "keep");
    let drop_ns = ns_of(&c, "default", "drop");

    c.ok(&["delete", "ws", "keep", "--timeout=20s"]);
    c.ok(&["delete", "ws", "drop", "--timeout=20s"]);
    assert!(c.kubectl(&["get", "ns", &keep_ns]).status.success(), "Retain keeps the namespace");
    assert!(bindings(&c, &keep_ns).is_empty(), "access is revoked on delete");
    c.eventually("namespace deleted", Duration::from_secs(20), || {
        (!c.kubectl(&["get", "ns", &drop_ns]).status.success()).then_some(())
    });

    // A Workspace recreated with the same name takes its retained namespace back.
    c.apply(&workspace("keep", "default", ""));
    wait_status(&c, "default", "keep", "Available");
    assert_eq!(ns_of(&c, "default", "keep"), keep_ns);
    let uid = c.jsonpath(&["get", "ws", "keep"], "{.metadata.uid}");
    c.eventually("re-adopted", Duration::from_secs(10), || {
        (c.jsonpath(&["get", "ns", &keep_ns], "{.metadata.annotations.workspaces\\.dev/workspace-uid}") == uid)
            .then_some(())
    });
}

#[test]
fn enrollment_conflicts_and_defaults() {
    let (c, op) = with_operator();
    c.ok(&["create", "namespace", "legacy"]);
    c.ok(&["create", "configmap", "precious", "-n", "legacy", "--from-literal=k=v"]);
    c.ok(&["create", "namespace", "taken"]);

    // Managed onto an existing namespace: a conflict, nothing touched.
    c.apply(&workspace("grab", "default", "  namespace: taken\n"));
    wait_status(&c, "default", "grab", "Failed");
    assert_eq!(c.jsonpath(&["get", "ws", "grab"], "{.status.stateReason}"), "NamespaceConflict");
    assert_eq!(c.jsonpath(&["get", "ws", "grab"], "{.metadata.labels.workspaces\\.dev/status}"), "Failed");
    assert_eq!(
        c.jsonpath(&["get", "ns", "taken"], "{.metadata.labels}"),
        "{\"kubernetes.io/metadata.name\":\"taken\"}"
    );
    // Found to be someone else's, the namespace is not tried again: a retry writes nothing.
    let writes = writes_of_a_reconcile(&c, &op, "grab");
    assert!(writes.is_empty(), "a reconcile of a settled conflict wrote: {writes:?}");
    c.ok(&["delete", "ws", "grab", "--timeout=20s"]);
    assert!(c.kubectl(&["get", "ns", "taken"]).status.success(), "a namespace the operator did not create survives");

    // Enrolled: adopted, never deleted, released on delete.
    c.apply(&workspace("old", "default", "  management: Enrolled\n  namespace: legacy\n  deletionPolicy: Delete\n"));
    wait_status(&c, "default", "old", "Available");
    assert_eq!(c.jsonpath(&["get", "ns", "legacy"], "{.metadata.labels.workspaces\\.dev/management}"), "Enrolled");
    c.ok(&["delete", "ws", "old", "--timeout=20s"]);
    assert_eq!(c.jsonpath(&["get", "cm", "precious", "-n", "legacy"], "{.data.k}"), "v");
    assert_eq!(c.jsonpath(&["get", "ns", "legacy"], "{.metadata.labels.workspaces\\.dev/management}"), "");

    // Enrolled naming a missing namespace.
    c.apply(&workspace("ghost", "default", "  management: Enrolled\n  namespace: nowhere\n"));
    wait_status(&c, "default", "ghost", "Failed");
    assert_eq!(c.jsonpath(&["get", "ws", "ghost"], "{.status.stateReason}"), "NamespaceNotFound");

    // Two defaults in one namespace: the second is a conflict.
    c.ok(&["create", "namespace", "org"]);
    c.apply(&workspace("first", "org", "  isDefault: true\n"));
    wait_status(&c, "org", "first", "Available");
    c.apply(&workspace("second", "org", "  isDefault: true\n"));
    wait_status(&c, "org", "second", "Failed");
    assert_eq!(c.jsonpath(&["get", "ws", "second", "-n", "org"], "{.status.stateReason}"), "DefaultConflict");
    c.ok(&["wait", "ws/second", "-n", "org", "--for=condition=Stalled", "--timeout=10s"]);
}

#[test]
fn hand_edits_are_repaired_and_noop_reconciles_write_nothing() {
    let (c, op) = with_operator();
    c.apply(&workspace("fix", "default", "  resourceLimits: {pods: \"5\"}\n"));
    wait_status(&c, "default", "fix", "Available");
    let target = ns_of(&c, "default", "fix");

    c.ok(&["delete", "rolebinding", "workspace-admins", "-n", &target]);
    c.eventually("binding restored", Duration::from_secs(20), || {
        c.kubectl(&["get", "rolebinding", "workspace-admins", "-n", &target]).status.success().then_some(())
    });
    c.ok(&[
        "patch",
        "quota",
        "workspace-quota",
        "-n",
        &target,
        "--type=merge",
        "-p",
        "{\"spec\":{\"hard\":{\"pods\":\"500\"}}}",
    ]);
    c.eventually("quota restored", Duration::from_secs(20), || {
        (c.jsonpath(&["get", "quota", "workspace-quota", "-n", &target], "{.spec.hard.pods}") == "5").then_some(())
    });

    // A reconcile of an up-to-date Workspace makes no write request.
    let writes = writes_of_a_reconcile(&c, &op, "fix");
    assert!(writes.is_empty(), "no-op reconcile wrote: {writes:?}");
}

/// Touch Workspace `name` (in `default`) so it is reconciled once more; the operator's writes.
fn writes_of_a_reconcile(c: &Cluster, op: &Operator, name: &str) -> Vec<RequestRecord> {
    let counters = c.server.counters();
    counters.start_log();
    let before = op.metrics.reconcile_count();
    c.ok(&["annotate", "ws", name, "poke=1", "--overwrite"]);
    op.wait_reconciles(before, 1);
    operator_writes(counters.take_log())
}

fn operator_writes(log: Vec<RequestRecord>) -> Vec<RequestRecord> {
    log.into_iter()
        .filter(|r| !r.user_agent.starts_with("kubectl"))
        .filter(|r| workspace_operator::devcluster::WRITE_VERBS.contains(&r.verb.as_str()))
        .collect()
}

#[test]
fn restart_in_the_middle_of_provisioning_converges() {
    let (c, op) = with_operator();
    // RoleBinding writes fail, so provisioning stops halfway (namespace made, access not).
    c.server.faults().fail_next("patch", "rolebindings", 1_000, FaultKind::ServerError);
    c.apply(&workspace("half", "default", ""));
    let target = ns_of(&c, "default", "half");
    c.eventually("namespace created", Duration::from_secs(20), || {
        c.kubectl(&["get", "ns", &target]).status.success().then_some(())
    });
    assert_ne!(c.jsonpath(&["get", "ws", "half"], "{.status.status}"), "Available");
    drop(op);
    c.server.faults().clear();
    let _op = Operator::start(&c);
    wait_status(&c, "default", "half", "Available");
    assert_eq!(bindings(&c, &target).len(), 2);
    let namespaces = c.ok(&["get", "ns", "-l", "workspaces.dev/workspace-name=half", "-o", "name"]);
    assert_eq!(namespaces.lines().count(), 1, "nothing duplicated: {namespaces}");
}

#[test]
fn restart_resyncs_without_writing() {
    let (c, op) = with_operator();
    let manifest: String = (0..20)
        .map(|i| format!("---\n{}", workspace(&format!("r{i:02}"), "default", "  resourceLimits: {pods: \"3\"}\n")))
        .collect();
    c.apply(&manifest);
    for i in 0..20 {
        wait_status(&c, "default", &format!("r{i:02}"), "Available");
    }
    drop(op);
    // A restarted operator whose namespace cache is slow to fill must not take "not cached yet"
    // for "missing": every Workspace is reconciled, nothing is written.
    c.server.faults().fail_next("list", "namespaces", 1, FaultKind::Delay(2000));
    let counters = c.server.counters();
    counters.start_log();
    let op = Operator::start(&c);
    op.wait_reconciles(0, 20);
    let writes = operator_writes(counters.take_log());
    assert!(writes.is_empty(), "a resync of converged Workspaces wrote: {writes:?}");
}

#[test]
fn a_new_workspace_costs_one_write_per_object_and_no_reads() {
    let (c, _op) = with_operator();
    let counters = c.server.counters();
    counters.start_log();
    c.apply(&workspace("cost", "default", "  resourceLimits: {pods: \"5\"}\n"));
    wait_status(&c, "default", "cost", "Available");
    // The Event is the reconcile's last write.
    c.eventually("Provisioned event", Duration::from_secs(20), || {
        let reasons = c.ok(&["get", "events.events.k8s.io", "-n", "default", "-o", "jsonpath={.items[*].reason}"]);
        reasons.contains("Provisioned").then_some(())
    });
    let mut requests: Vec<String> = counters
        .take_log()
        .into_iter()
        .filter(|r| !r.user_agent.starts_with("kubectl"))
        .filter(|r| !["list", "watch"].contains(&r.verb.as_str()))
        .map(|r| {
            format!(
                "{} {}{}",
                r.verb,
                r.resource,
                if r.subresource.is_empty() { String::new() } else { format!("/{}", r.subresource) }
            )
        })
        .collect();
    requests.sort();
    // Public access with a quota: the namespace, two RoleBindings (owner and admins as admin,
    // the public group as view), the quota, the Workspace's finalizer and labels, its status
    // (a separate subresource), and the transition's Event. No reads: the caches answer.
    assert_eq!(
        requests,
        [
            "create events",
            "create namespaces",
            "patch resourcequotas",
            "patch rolebindings",
            "patch rolebindings",
            "patch workspaces",
            "patch workspaces/status",
        ],
    );
}
