//! The Workspace lifecycle through kubectl: what each desired state means in the cluster.

use std::time::Duration;

use workspace_operator::crd::{AuthType, DeletionPolicy, DesiredState};

use crate::common::{Cluster, Operator, allow_public, bindings, target_ns, wait_status, with_operator, ws};

const ADMINS_AND_PUBLIC: [&str; 2] = [
    "rolebinding.rbac.authorization.k8s.io/workspace-admins",
    "rolebinding.rbac.authorization.k8s.io/workspace-public-view",
];

/// `ml` in `acme` with an admin and limits, Available; its namespace.
fn available_ml() -> (Cluster, Operator, String) {
    let (c, op) = with_operator();
    c.ok(&["create", "namespace", "acme"]);
    allow_public(&c, "system:authenticated");
    let manifest = ws("ml")
        .in_ns("acme")
        .auth(AuthType::Public)
        .admins(&["bob"])
        .limit("cpu", "4")
        .limit("memory", "8Gi")
        .limit("pods", "20")
        .yaml();
    c.apply(&manifest);
    wait_status(&c, "acme", "ml", "Available");
    let target = target_ns(&c, "acme", "ml");
    (c, op, target)
}

fn set_desired(c: &Cluster, state: DesiredState) {
    let patch = format!("{{\"spec\":{{\"desiredState\":\"{}\"}}}}", state.as_str());
    c.ok(&["patch", "ws", "ml", "-n", "acme", "--type=merge", "-p", &patch]);
    wait_status(c, "acme", "ml", state.as_str());
}

fn pods_quota(c: &Cluster, target: &str) -> String {
    c.jsonpath(&["get", "quota", "workspace-quota", "-n", target], "{.spec.hard.pods}")
}

/// Try to start a pod (with limits, as the quota asks) in `target`: kubectl's error, if any.
fn start_pod(c: &Cluster, target: &str) -> Option<String> {
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: {target}}}\nspec: {{containers: [{{name: app, image: nginx, resources: {{limits: {{cpu: 100m, memory: 64Mi}}}}}}]}}\n"
    );
    let out = c.with_stdin(&["apply", "-f", "-"], &pod);
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

fn data(c: &Cluster, target: &str) -> String {
    c.jsonpath(&["get", "cm", "data", "-n", target], "{.data.k}")
}

#[test]
fn available_gives_owner_and_admins_admin_the_public_group_view_and_a_quota() {
    let (c, _op, target) = available_ml();
    c.ok(&["wait", "ws/ml", "-n", "acme", "--for=condition=Ready", "--timeout=10s"]);
    assert_eq!(bindings(&c, &target), ADMINS_AND_PUBLIC);
    assert_eq!(
        c.jsonpath(&["get", "rolebinding", "workspace-admins", "-n", &target], "{.subjects[*].name}"),
        "alice@example.com bob"
    );
    assert_eq!(pods_quota(&c, &target), "20");
    assert_eq!(
        c.jsonpath(&["get", "ws", "ml", "-n", "acme"], "{.metadata.labels.workspaces\\.dev/status}"),
        "Available"
    );
    let id = c.jsonpath(&["get", "ws", "ml", "-n", "acme"], "{.status.workspaceId}");
    assert_eq!(id, c.jsonpath(&["get", "ws", "ml", "-n", "acme"], "{.metadata.uid}").replace('-', ""));
}

#[test]
fn deactivation_revokes_access_blocks_new_pods_and_keeps_data() {
    let (c, _op, target) = available_ml();
    c.ok(&["create", "configmap", "data", "-n", &target, "--from-literal=k=v"]);
    set_desired(&c, DesiredState::Deactivated);
    c.eventually("access revoked", Duration::from_secs(10), || bindings(&c, &target).is_empty().then_some(()));
    assert_eq!(pods_quota(&c, &target), "0");
    let refused = start_pod(&c, &target).expect("a new pod is refused");
    assert!(
        refused.contains("exceeded quota: workspace-quota, requested: pods=1, used: pods=0, limited: pods=0"),
        "{refused}"
    );
    assert_eq!(data(&c, &target), "v");
    assert_eq!(c.jsonpath(&["get", "ws", "ml", "-n", "acme"], "{.status.stateReason}"), "UserRequested");
}

#[test]
fn reactivation_restores_access_and_limits() {
    let (c, _op, target) = available_ml();
    set_desired(&c, DesiredState::Deactivated);
    set_desired(&c, DesiredState::Available);
    c.eventually("access restored", Duration::from_secs(10), || {
        (bindings(&c, &target) == ADMINS_AND_PUBLIC).then_some(())
    });
    assert_eq!(pods_quota(&c, &target), "20");
    assert_eq!(start_pod(&c, &target), None, "pods run again");
}

#[test]
fn deleted_with_retain_revokes_access_and_keeps_the_namespace_and_its_data() {
    let (c, _op, target) = available_ml();
    c.ok(&["create", "configmap", "data", "-n", &target, "--from-literal=k=v"]);
    set_desired(&c, DesiredState::Deleted);
    assert!(bindings(&c, &target).is_empty());
    assert_eq!(pods_quota(&c, &target), "0", "a kept namespace runs no new pods");
    assert_eq!(data(&c, &target), "v");
}

#[test]
fn a_deleted_workspace_made_available_again_takes_its_namespace_back() {
    let (c, _op, target) = available_ml();
    c.ok(&["create", "configmap", "data", "-n", &target, "--from-literal=k=v"]);
    set_desired(&c, DesiredState::Deleted);
    set_desired(&c, DesiredState::Available);
    assert_eq!(target_ns(&c, "acme", "ml"), target);
    assert_eq!(data(&c, &target), "v");
}

#[test]
fn every_change_of_state_is_recorded_as_an_event() {
    let (c, _op, _) = available_ml();
    set_desired(&c, DesiredState::Deactivated);
    let events = c.ok(&["get", "events", "-n", "acme", "-o", "jsonpath={.items[*].reason}"]);
    assert!(events.contains("Provisioned") && events.contains("UserRequested"), "{events}");
    // As `kubectl get events` prints them on a cluster: what, about which object, and why.
    let table = c.ok(&["get", "events", "-n", "acme"]);
    assert!(table.starts_with("LAST SEEN"), "{table}");
    let row = table.lines().find(|l| l.contains("UserRequested")).unwrap_or_default();
    assert!(row.contains("Normal") && row.contains("workspace/ml") && row.contains("Deactivated:"), "{table}");
}

#[test]
fn kubectl_delete_with_retain_keeps_the_namespace_and_revokes_access() {
    let (c, _op) = with_operator();
    c.apply(&ws("keep").limit("pods", "5").yaml());
    wait_status(&c, "default", "keep", "Available");
    let keep_ns = target_ns(&c, "default", "keep");
    c.ok(&["delete", "ws", "keep", "--timeout=20s"]);
    assert!(c.kubectl(&["get", "ns", &keep_ns]).status.success(), "Retain keeps the namespace");
    assert!(bindings(&c, &keep_ns).is_empty(), "access is revoked on delete");
    assert_eq!(pods_quota(&c, &keep_ns), "0", "a kept namespace stays inert");
    assert!(start_pod(&c, &keep_ns).is_some(), "no new pod runs in it");
}

#[test]
fn kubectl_delete_with_delete_policy_removes_the_namespace_it_created() {
    let (c, _op) = with_operator();
    c.apply(&ws("drop").deletion_policy(DeletionPolicy::Delete).yaml());
    wait_status(&c, "default", "drop", "Available");
    let drop_ns = target_ns(&c, "default", "drop");
    c.ok(&["delete", "ws", "drop", "--timeout=20s"]);
    c.eventually("namespace deleted", Duration::from_secs(20), || {
        (!c.kubectl(&["get", "ns", &drop_ns]).status.success()).then_some(())
    });
}

#[test]
fn a_recreated_workspace_takes_back_its_retained_namespace() {
    let (c, _op) = with_operator();
    c.apply(&ws("keep").limit("pods", "5").yaml());
    wait_status(&c, "default", "keep", "Available");
    let keep_ns = target_ns(&c, "default", "keep");
    c.ok(&["delete", "ws", "keep", "--timeout=20s"]);
    assert_eq!(pods_quota(&c, &keep_ns), "0", "retained inert in between");
    c.apply(&ws("keep").limit("pods", "5").yaml());
    wait_status(&c, "default", "keep", "Available");
    assert_eq!(target_ns(&c, "default", "keep"), keep_ns);
    let uid = c.jsonpath(&["get", "ws", "keep"], "{.metadata.uid}");
    c.eventually("re-adopted", Duration::from_secs(10), || {
        (c.jsonpath(&["get", "ns", &keep_ns], "{.metadata.annotations.workspaces\\.dev/workspace-uid}") == uid)
            .then_some(())
    });
    c.eventually("its limits back", Duration::from_secs(10), || (pods_quota(&c, &keep_ns) == "5").then_some(()));
}

#[test]
fn a_retained_namespace_goes_back_only_to_the_same_owner_and_never_to_be_deleted() {
    let (c, _op) = with_operator();
    c.ok(&["create", "namespace", "org"]);
    c.apply(&ws("lab").in_ns("org").owner("alice").yaml());
    wait_status(&c, "org", "lab", "Available");
    let kept = target_ns(&c, "org", "lab");
    c.ok(&["create", "configmap", "results", "-n", &kept, "--from-literal=k=v"]);
    c.ok(&["delete", "ws", "lab", "-n", "org", "--timeout=20s"]);
    // Someone who may create Workspaces in org, under the same name: not the same owner.
    let grab = ws("lab").in_ns("org").owner("mallory").deletion_policy(DeletionPolicy::Delete);
    c.apply(&grab.yaml());
    wait_status(&c, "org", "lab", "Failed");
    let get = |path: &str| c.jsonpath(&["get", "ws", "lab", "-n", "org"], path);
    assert_eq!(get("{.status.stateReason}"), "NamespaceConflict");
    assert!(get("{.status.message}").contains("kubectl annotate namespace"), "{}", get("{.status.message}"));
    assert!(bindings(&c, &kept).is_empty(), "no access for the newcomer");
    // Naming the old owner, with herself as an admin: no more access than it had, or not at all.
    let posing = ws("lab").in_ns("org").owner("alice").admins(&["mallory"]).deletion_policy(DeletionPolicy::Delete);
    c.apply(&posing.yaml());
    c.eventually("the new spec seen", Duration::from_secs(20), || {
        (get("{.status.observedGeneration}") == get("{.metadata.generation}")).then_some(())
    });
    assert_eq!(get("{.status.status}/{.status.stateReason}"), "Failed/NamespaceConflict");
    assert!(bindings(&c, &kept).is_empty(), "no access for the poser");
    // An administrator hands it over; the new Workspace, asking for Delete, still cannot delete it.
    c.ok(&["annotate", "namespace", &kept, "workspaces.dev/owner=alice", "workspaces.dev/access=*", "--overwrite"]);
    c.ok(&["annotate", "ws", "lab", "-n", "org", "poke=1"]);
    wait_status(&c, "org", "lab", "Available");
    c.ok(&["patch", "ws", "lab", "-n", "org", "--type=merge", "-p", r#"{"spec":{"desiredState":"Deleted"}}"#]);
    wait_status(&c, "org", "lab", "Deleted");
    assert_eq!(c.jsonpath(&["get", "cm", "results", "-n", &kept], "{.data.k}"), "v", "it did not create it");
}
