//! What the operator costs the API server: one write per object that must change, no reads
//! for a new Workspace, nothing for an up-to-date one, nothing on a restart.

use std::time::Duration;

use devcluster::FaultKind;
use workspace_operator::crd::AuthType;

use crate::common::{
    Operator, bindings, operator_writes, target_ns, wait_status, with_operator, writes_of_a_reconcile, ws,
};

#[test]
fn hand_edited_children_are_restored() {
    let (c, _op) = with_operator();
    c.apply(&ws("fix").limit("pods", "5").yaml());
    wait_status(&c, "default", "fix", "Available");
    let target = target_ns(&c, "default", "fix");

    c.ok(&["delete", "rolebinding", "workspace-admins", "-n", &target]);
    c.eventually("binding restored", Duration::from_secs(20), || {
        c.kubectl(&["get", "rolebinding", "workspace-admins", "-n", &target]).status.success().then_some(())
    });
    let raise = "{\"spec\":{\"hard\":{\"pods\":\"500\"}}}";
    c.ok(&["patch", "quota", "workspace-quota", "-n", &target, "--type=merge", "-p", raise]);
    c.eventually("quota restored", Duration::from_secs(20), || {
        (c.jsonpath(&["get", "quota", "workspace-quota", "-n", &target], "{.spec.hard.pods}") == "5").then_some(())
    });
}

#[test]
fn a_reconcile_of_an_up_to_date_workspace_writes_nothing() {
    let (c, op) = with_operator();
    c.apply(&ws("still").limit("pods", "5").yaml());
    wait_status(&c, "default", "still", "Available");
    let writes = writes_of_a_reconcile(&c, &op, "still");
    assert!(writes.is_empty(), "no-op reconcile wrote: {writes:?}");
}

#[test]
fn a_restart_in_the_middle_of_provisioning_converges_without_duplicates() {
    let (c, op) = with_operator();
    // RoleBinding writes fail, so provisioning stops halfway (namespace made, access not).
    c.server.faults().fail_next("patch", "rolebindings", 1_000, FaultKind::ServerError);
    c.apply(&ws("half").yaml());
    let target = target_ns(&c, "default", "half");
    c.eventually("namespace created", Duration::from_secs(20), || {
        c.kubectl(&["get", "ns", &target]).status.success().then_some(())
    });
    assert_ne!(c.jsonpath(&["get", "ws", "half"], "{.status.status}"), "Available");
    drop(op);
    c.server.faults().clear();
    let _op = Operator::start(&c);
    wait_status(&c, "default", "half", "Available");
    assert_eq!(bindings(&c, &target).len(), 1, "owner and admins (the default class has no public group)");
    let namespaces = c.ok(&["get", "ns", "-l", "workspaces.dev/workspace-name=half", "-o", "name"]);
    assert_eq!(namespaces.lines().count(), 1, "nothing duplicated: {namespaces}");
}

#[test]
fn a_restart_over_converged_workspaces_writes_nothing() {
    let (c, op) = with_operator();
    let manifest: String =
        (0..20).map(|i| format!("---\n{}", ws(&format!("r{i:02}")).limit("pods", "3").yaml())).collect();
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
    // A class that asks for every kind of child: a public group and container defaults (and,
    // by default, Pod Security labels and network isolation).
    let class =
        r#"{"spec": {"access": {"publicGroup": "staff"}, "resources": {"containerDefaults": {"cpu": "250m"}}}}"#;
    c.ok(&["patch", "workspaceclass", crate::common::DEFAULT_CLASS, "--type=merge", "-p", class]);
    let counters = c.server.counters();
    counters.start_log();
    c.apply(&ws("cost").auth(AuthType::Public).limit("pods", "5").yaml());
    wait_status(&c, "default", "cost", "Available");
    // The Event is the reconcile's last write.
    c.eventually("Provisioned event", Duration::from_secs(20), || {
        let reasons = c.ok(&["get", "events.events.k8s.io", "-n", "default", "-o", "jsonpath={.items[*].reason}"]);
        reasons.contains("Provisioned").then_some(())
    });
    let mut requests: Vec<String> = counters
        .take_log()
        .into_iter()
        .filter(|r| r.user == crate::common::OPERATOR_USER)
        .filter(|r| !["list", "watch"].contains(&r.verb.as_str()))
        .map(|r| {
            let sub = if r.subresource.is_empty() { String::new() } else { format!("/{}", r.subresource) };
            format!("{} {}{sub}", r.verb, r.resource)
        })
        .collect();
    requests.sort();
    // Public access with a quota: the namespace (with its Pod Security labels), two
    // RoleBindings (owner and admins as admin, the public group as view), the quota, the
    // container defaults, the isolating NetworkPolicy, the Workspace's finalizer and labels, its
    // status (a separate subresource), and the transition's Event. No reads: the caches answer.
    assert_eq!(
        requests,
        [
            "create events",
            "create namespaces",
            "patch limitranges",
            "patch networkpolicies",
            "patch resourcequotas",
            "patch rolebindings",
            "patch rolebindings",
            "patch workspaces",
            "patch workspaces/status",
        ],
    );
}

#[test]
fn a_class_change_writes_only_what_it_changes_in_each_of_its_workspaces() {
    let (c, op) = with_operator();
    let manifest: String = (0..3).map(|i| format!("---\n{}", ws(&format!("k{i}")).yaml())).collect();
    c.apply(&manifest);
    for i in 0..3 {
        wait_status(&c, "default", &format!("k{i}"), "Available");
    }
    let patch = |spec: &str| {
        let counters = c.server.counters();
        counters.start_log();
        let before = op.metrics.reconcile_count();
        c.ok(&["patch", "workspaceclass", crate::common::DEFAULT_CLASS, "--type=merge", "-p", spec]);
        op.wait_reconciles(before, 3);
        let mut writes: Vec<String> =
            operator_writes(counters.take_log()).iter().map(|r| format!("{} {}", r.verb, r.resource)).collect();
        writes.sort();
        writes
    };
    // Container defaults: one new LimitRange per workspace, nothing else.
    let added = patch(r#"{"spec": {"resources": {"containerDefaults": {"memory": "256Mi"}}}}"#);
    assert_eq!(added, ["patch limitranges"; 3]);
    for i in 0..3 {
        let target = target_ns(&c, "default", &format!("k{i}"));
        let memory =
            c.jsonpath(&["get", "limits", "workspace-defaults", "-n", &target], "{.spec.limits[0].default.memory}");
        assert_eq!(memory, "256Mi");
    }
    // A change that alters no child writes nothing.
    let unchanged = patch(r#"{"spec": {"access": {"serviceAccountsOutside": true}}}"#);
    assert!(unchanged.is_empty(), "{unchanged:?}");
}

#[test]
fn a_child_changed_while_the_operator_was_down_is_restored_when_it_starts() {
    let (c, op) = with_operator();
    c.apply(&ws("down").admins(&["bob"]).yaml());
    wait_status(&c, "default", "down", "Available");
    let target = target_ns(&c, "default", "down");
    drop(op);
    // While no operator runs, someone widens the admins binding and keeps every label and
    // annotation of the operator's, so nothing in the metadata says it changed.
    let add = r#"[{"op":"add","path":"/subjects/-","value":{"kind":"User","name":"mallory","apiGroup":"rbac.authorization.k8s.io"}}]"#;
    c.ok(&["patch", "rolebinding", "workspace-admins", "-n", &target, "--type=json", "-p", add]);
    let _op = Operator::start(&c);
    let admins = || c.jsonpath(&["get", "rolebinding", "workspace-admins", "-n", &target], "{.subjects[*].name}");
    c.eventually("the admins restored", Duration::from_secs(20), || (!admins().contains("mallory")).then_some(()));
    assert!(admins().contains("bob"), "{}", admins());
}
