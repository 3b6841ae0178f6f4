//! The tenant boundary, tried as a hostile tenant would: `tina` may manage Workspaces in her
//! organization's namespace `team-a` and nothing else. Every way she tries to reach further
//! through the operator is refused at admission (naming the field) or ends as a Failed status
//! that says why; afterwards she has no access outside her own workspace namespaces and nothing
//! outside them changed. The positive side too: an owner runs workloads, a viewer only reads,
//! and a deactivated workspace's users lose their access.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use workspace_operator::labels::derived_namespace;

use crate::common::{Cluster, DEFAULT_CLASS, target_ns, wait_status};

const ORG: &str = "team-a";

/// The platform admin's side: organizations, namespaces that consent (or not), classes, and
/// another team's workspace.
fn platform(c: &Cluster) {
    for ns in ["team-a", "team-b", "monitoring", "team-a-shared", "team-a-x", "ingress"] {
        c.ok(&["create", "namespace", ns]);
    }
    c.ok(&["label", "namespace", "team-b", "tier=apps"]);
    for (ns, org) in [("legacy-a", "team-a"), ("legacy-b", "team-b"), ("legacy-q", "team-a")] {
        c.ok(&["create", "namespace", ns]);
        c.ok(&["label", "namespace", ns, &format!("workspaces.dev/enroll-from={org}")]);
    }
    // The platform's own quota, under the name a workspace's quota would have.
    c.ok(&["create", "quota", "workspace-quota", "--hard=pods=100", "-n", "legacy-q"]);
    // The default class: grants of view and edit only, at most 8 cpus, no public group.
    let standard =
        r#"{"spec": {"access": {"allowedRoles": ["view", "edit"]}, "resources": {"maxLimits": {"cpu": "8"}}}}"#;
    c.ok(&["patch", "workspaceclass", DEFAULT_CLASS, "--type=merge", "-p", standard]);
    // A permissive class offered to the platform's own organizations only.
    c.apply(
        "apiVersion: workspaces.dev/v1alpha1\nkind: WorkspaceClass\nmetadata: {name: platform-only}\nspec:\n  organizations: {matchLabels: {tier: platform}}\n  access: {publicGroup: system:authenticated}\n",
    );
    c.apply(&crate::common::ws("data").in_ns("team-b").owner("bob").yaml());
    wait_status(c, "team-b", "data", "Available");
    // An organization whose name begins with team-a's prefix.
    c.apply(&crate::common::ws("tools").in_ns("team-a-x").owner("xavier").yaml());
    wait_status(c, "team-a-x", "tools", "Available");
    // tina: Workspaces in team-a, nothing more.
    c.apply(&workspaces_role(ORG));
    c.ok(&["create", "rolebinding", "tina", "--role=workspaces", "--user=tina", "-n", ORG]);
    // She also runs an organization named as infrastructure prefixes begin.
    c.apply(&workspaces_role("ingress"));
    c.ok(&["create", "rolebinding", "tina", "--role=workspaces", "--user=tina", "-n", "ingress"]);
}

fn workspaces_role(namespace: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: workspaces, namespace: {namespace}}}\nrules:\n- apiGroups: [workspaces.dev]\n  resources: [workspaces]\n  verbs: [get, list, watch, create, update, patch, delete]\n"
    )
}

struct User {
    kubeconfig: PathBuf,
}

impl User {
    fn new(c: &Cluster, name: &str) -> User {
        User { kubeconfig: c.save_kubeconfig(&format!("{name}.kubeconfig"), &c.server.kubeconfig_as(name, &[])) }
    }

    fn kubectl(&self, c: &Cluster, args: &[&str]) -> Output {
        c.kubectl_with(&self.kubeconfig, args)
    }

    fn apply(&self, c: &Cluster, manifest: &str) -> Output {
        let path = self.kubeconfig.with_extension("manifest.yaml");
        std::fs::write(&path, manifest).expect("write manifest");
        self.kubectl(c, &["apply", "-f", path.to_str().unwrap()])
    }

    fn can(&self, c: &Cluster, verb: &str, resource: &str, ns: &str) -> bool {
        self.kubectl(c, &["auth", "can-i", verb, resource, "-n", ns]).status.success()
    }

    /// Must be refused by authorization (RBAC or the escalation check).
    fn forbidden(&self, c: &Cluster, what: &str, args: &[&str]) {
        let out = self.kubectl(c, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("forbidden"), "{what}: not forbidden: {stderr}");
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything the operator could touch, outside team-a and its workspace namespaces: each
/// object's identity and content (labels, annotations and the fields that grant or limit).
fn outside(c: &Cluster) -> BTreeMap<String, String> {
    let kinds = "namespaces,rolebindings,roles,resourcequotas,limitranges,networkpolicies,serviceaccounts,configmaps,clusterroles,clusterrolebindings,workspaceclasses,workspaces";
    let list: Value = serde_json::from_str(&c.ok(&["get", kinds, "-A", "-o", "json"])).expect("JSON");
    let mine = |ns: &str, obj: &Value| {
        let ann = &obj["metadata"]["annotations"]["workspaces.dev/workspace"];
        ns == ORG || ann.as_str().is_some_and(|w| w.starts_with("team-a/"))
    };
    let namespaces: BTreeSet<String> = (list["items"].as_array().into_iter().flatten())
        .filter(|o| o["kind"] == "Namespace" && mine(o["metadata"]["name"].as_str().unwrap_or_default(), o))
        .map(|o| o["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut out = BTreeMap::new();
    for o in list["items"].as_array().into_iter().flatten() {
        let m = &o["metadata"];
        let ns = m["namespace"].as_str().unwrap_or_default();
        let name = m["name"].as_str().unwrap_or_default();
        if namespaces.contains(ns) || (o["kind"] == "Namespace" && namespaces.contains(name)) {
            continue;
        }
        let mut annotations = m["annotations"].clone();
        if let Some(a) = annotations.as_object_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        let content = [&m["labels"], &annotations, &o["spec"], &o["subjects"], &o["roleRef"], &o["rules"], &o["data"]];
        out.insert(format!("{} {ns}/{name}", o["kind"].as_str().unwrap_or_default()), format!("{content:?}"));
    }
    out
}

fn manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: workspaces.dev/v1alpha1\nkind: Workspace\nmetadata: {{name: {name}, namespace: {ORG}}}\nspec:\n  owner: tina\n{spec}"
    )
}

#[test]
fn a_tenant_reaches_nothing_beyond_its_own_workspaces_through_the_operator() {
    let (c, op) = crate::common::with_operator();
    platform(&c);
    let tina = User::new(&c, "tina");
    let theirs = target_ns(&c, "team-b", "data");
    let before = outside(&c);

    // Refused at admission, naming the field.
    #[rustfmt::skip]
    let refused: [(&str, &str, &str); 7] = [
        ("a system owner", "  owner: system:admin\n", "spec.owner"),
        ("a system admin", "  admins: [\"system:serviceaccount:workspace-system:workspace-operator\"]\n", "spec.admins"),
        ("a grant to system:masters", "  authType: Internal\n  grants: [{kind: Group, name: \"system:masters\", role: view}]\n", "spec.grants[0]"),
        ("a grant to every signed-in user", "  authType: Internal\n  grants: [{kind: Group, name: \"system:authenticated\", role: view}]\n", "spec.grants[0]"),
        ("a grant to a system user", "  authType: Internal\n  grants: [{kind: User, name: \"system:kube-scheduler\", role: edit}]\n", "spec.grants[0]"),
        ("a ServiceAccount written as a path", "  authType: Internal\n  grants: [{kind: ServiceAccount, name: kube-system/default, role: view}]\n", "spec.grants[0]"),
        ("an unknown role", "  authType: Internal\n  grants: [{kind: User, name: u, role: cluster-admin}]\n", "spec.grants[0].role"),
    ];
    for (i, (what, spec, field)) in refused.iter().enumerate() {
        // The spec's owner line is replaced where the attempt sets its own.
        let text = manifest(&format!("refused-{i}"), spec).replace("  owner: tina\n  owner:", "  owner:");
        let out = tina.apply(&c, &text);
        assert!(!out.status.success(), "{what}: accepted");
        assert!(stderr(&out).contains(field), "{what}: the message names {field}: {}", stderr(&out));
    }

    // Accepted, then Failed with a reason and a message that says what to do.
    let their_future = derived_namespace("team-b", "future");
    let lookalike = derived_namespace("team-a-y", "ml");
    #[rustfmt::skip]
    let failed: Vec<(&str, String, &str)> = vec![
        ("enrolling kube-system", "  management: Enrolled\n  namespace: kube-system\n".into(), "PolicyViolation"),
        ("enrolling the operator's namespace", "  management: Enrolled\n  namespace: workspace-system\n".into(), "PolicyViolation"),
        ("enrolling default", "  management: Enrolled\n  namespace: default\n".into(), "PolicyViolation"),
        ("enrolling a namespace that consents to another team", "  management: Enrolled\n  namespace: legacy-b\n".into(), "NamespaceNotFound"),
        ("enrolling a namespace that never consented", "  management: Enrolled\n  namespace: team-a-shared\n".into(), "NamespaceNotFound"),
        ("enrolling another organization", "  management: Enrolled\n  namespace: team-b\n".into(), "NamespaceNotFound"),
        ("enrolling another team's workspace", format!("  management: Enrolled\n  namespace: {theirs}\n"), "NamespaceNotFound"),
        ("enrolling a namespace that does not exist", "  management: Enrolled\n  namespace: nowhere\n".into(), "NamespaceNotFound"),
        ("enrolling an infrastructure namespace", "  management: Enrolled\n  namespace: monitoring\n".into(), "PolicyViolation"),
        ("a namespace outside the prefix", "  namespace: cert-manager\n".into(), "PolicyViolation"),
        ("another team's future namespace", format!("  namespace: {their_future}\n"), "PolicyViolation"),
        ("a derived name of a look-alike organization", format!("  namespace: {lookalike}\n"), "PolicyViolation"),
        ("an existing namespace in the prefix", "  namespace: team-a-shared\n".into(), "NamespaceConflict"),
        ("a name in a more specific organization's prefix", "  namespace: team-a-x-data\n".into(), "PolicyViolation"),
        ("enrolling over the platform's own quota", "  management: Enrolled\n  namespace: legacy-q\n  resourceLimits: {pods: 3}\n".into(), "NamespaceConflict"),
        ("limits beyond the class, in micro-cores", "  resourceLimits: {cpu: 64000000u}\n".into(), "PolicyViolation"),
        ("another namespace's ServiceAccount", "  authType: Internal\n  grants: [{kind: ServiceAccount, name: \"kube-system:default\", role: view}]\n".into(), "PolicyViolation"),
        ("a role beyond the class", "  authType: Internal\n  grants: [{kind: User, name: carol, role: admin}]\n".into(), "PolicyViolation"),
        ("limits beyond the class", "  resourceLimits: {cpu: 64}\n".into(), "PolicyViolation"),
        ("Public without a public group", "  authType: Public\n".into(), "PolicyViolation"),
        ("a class not offered to team-a", "  className: platform-only\n  authType: Public\n".into(), "PolicyViolation"),
        ("a class that does not exist", "  className: gold\n".into(), "ClassNotFound"),
    ];
    for (i, (what, spec, _)) in failed.iter().enumerate() {
        let out = tina.apply(&c, &manifest(&format!("try-{i:02}"), spec));
        assert!(out.status.success(), "{what}: refused at admission: {}", stderr(&out));
    }
    let mut enrollments = BTreeSet::new();
    for (i, (what, spec, reason)) in failed.iter().enumerate() {
        let name = format!("try-{i:02}");
        wait_status(&c, ORG, &name, "Failed");
        let get = |path: &str| c.jsonpath(&["get", "ws", &name, "-n", ORG], path);
        let message = get("{.status.message}");
        assert_eq!(get("{.status.stateReason}"), *reason, "{what}: {message}");
        assert!(!message.is_empty(), "{what}: a message says why");
        // Nothing she may not read: no other organization, no other Workspace (beyond the
        // namespace she named herself).
        let target = spec.lines().find_map(|l| l.trim().strip_prefix("namespace: ")).unwrap_or("<none>");
        let rest = message.replace(target, "<namespace>");
        assert!(["team-b", "data", "tools", "team-a-x"].iter().all(|w| !rest.contains(w)), "{what}: {message}");
        if *reason == "NamespaceNotFound" {
            enrollments.insert(rest);
        }
    }
    // A missing namespace, another team's, another workspace's, and one that did not consent
    // read the same: Workspaces are no way to learn which namespaces exist, or whose they are.
    assert_eq!(enrollments.len(), 1, "refused enrollments tell their causes apart: {enrollments:#?}");
    let events = c.ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        ORG,
        "-o",
        "jsonpath={range .items[*]}{.regarding.name}={.reason} {end}",
    ]);
    for (i, (what, _, reason)) in failed.iter().enumerate() {
        assert!(events.contains(&format!("try-{i:02}={reason}")), "{what}: an Event says so: {events}");
    }
    assert!(!c.kubectl(&["get", "namespace", "cert-manager"]).status.success(), "nothing created outside the prefix");
    let platform_quota = c.jsonpath(&["get", "quota", "workspace-quota", "-n", "legacy-q"], "{.spec.hard.pods}");
    assert_eq!(platform_quota, "100", "the platform's quota is not seized");

    // A workspace of her own: tina owns it, victor may view it.
    let mine = manifest(
        "mine",
        "  authType: Internal\n  grants: [{kind: User, name: victor, role: view}]\n  resourceLimits: {pods: 5}\n",
    );
    assert!(tina.apply(&c, &mine).status.success());
    wait_status(&c, ORG, "mine", "Available");
    let ns = target_ns(&c, ORG, "mine");
    let cap = c.jsonpath(&["get", "quota", "workspace-quota", "-n", &ns], "{.spec.hard.limits\\.cpu}");
    assert_eq!(cap, "8", "a limit the class caps is bounded even when the Workspace leaves it out");

    // The children the operator wrote: edited or deleted by the owner, restored by the operator.
    let add_mallory = r#"[{"op": "add", "path": "/subjects/-", "value": {"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}}]"#;
    let out =
        tina.kubectl(&c, &["patch", "rolebinding", "workspace-admins", "-n", &ns, "--type=json", "-p", add_mallory]);
    assert!(out.status.success(), "an admin may edit RoleBindings: {}", stderr(&out));
    let admins = || c.jsonpath(&["get", "rolebinding", "workspace-admins", "-n", &ns], "{.subjects[*].name}");
    c.eventually("the admins restored", std::time::Duration::from_secs(20), || (admins() == "tina").then_some(()));
    let hide = ["label", "rolebinding", "workspace-admins", "-n", &ns, "app.kubernetes.io/managed-by-"];
    assert!(tina.kubectl(&c, &hide).status.success());
    assert!(
        tina.kubectl(&c, &["patch", "rolebinding", "workspace-admins", "-n", &ns, "--type=json", "-p", add_mallory])
            .status
            .success()
    );
    c.eventually("a hidden binding restored", std::time::Duration::from_secs(20), || {
        (admins() == "tina").then_some(())
    });
    assert!(tina.kubectl(&c, &["delete", "networkpolicy", "workspace-isolation", "-n", &ns]).status.success());
    c.eventually("the isolation restored", std::time::Duration::from_secs(20), || {
        c.kubectl(&["get", "networkpolicy", "workspace-isolation", "-n", &ns]).status.success().then_some(())
    });
    // List-view labels she forges on her Workspace (the operator caches only their digest):
    // put back, so list views never show her workspace as what it is not.
    let forge =
        ["label", "ws", "mine", "-n", ORG, "workspaces.dev/status=Deleted", "workspaces.dev/owner-", "--overwrite"];
    assert!(tina.kubectl(&c, &forge).status.success(), "she may label her Workspaces");
    let list_labels = "{.metadata.labels.workspaces\\.dev/status} {.metadata.labels.workspaces\\.dev/owner}";
    c.eventually("forged list labels put back", std::time::Duration::from_secs(20), || {
        (c.jsonpath(&["get", "ws", "mine", "-n", ORG], list_labels) == "Available tina").then_some(())
    });
    // The status is the operator's alone, which is what lets its cache keep a Workspace's
    // status bare (see `status::shrink`): her write to the status subresource, here of the bare
    // form itself, is refused, and the status stays as the operator wrote it.
    let bare = r#"{"status":{"status":"Available","conditions":[{"type":"","status":"","reason":"","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    let status_write = ["patch", "ws", "mine", "-n", ORG, "--subresource=status", "--type=merge", "-p", bare];
    tina.forbidden(&c, "a write to her Workspace's status", &status_write);
    assert_eq!(c.jsonpath(&["get", "ws", "mine", "-n", ORG], "{.status.conditions[0].type}"), "Ready");
    // Bindings forged with the operator's labels: one passed off as her Workspace's is not the
    // operator's to keep, so it goes with the access it gave; one passed off as another team's
    // Workspace is neither taken for theirs nor deleted (the operator did not create it).
    let forged = |name: &str, owner: &str| {
        let (org, ws) = owner.split_once('/').unwrap();
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app.kubernetes.io/managed-by: workspace-operator, workspaces.dev/workspace-namespace: {org}, workspaces.dev/workspace-name: {ws}}}\n  annotations: {{workspaces.dev/workspace: {owner}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}}\nsubjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: mallory}}]\n"
        )
    };
    let mallory_can = || c.kubectl(&["auth", "can-i", "get", "secrets", "-n", &ns, "--as=mallory"]).status.success();
    let out = tina.apply(&c, &forged("workspace-extra", &format!("{ORG}/mine")));
    assert!(out.status.success(), "an admin may bind admin in her namespace: {}", stderr(&out));
    c.eventually("a forged binding of her Workspace pruned", std::time::Duration::from_secs(20), || {
        (!c.kubectl(&["get", "rolebinding", "workspace-extra", "-n", &ns]).status.success()).then_some(())
    });
    assert!(!mallory_can(), "the forged access went with it");
    let since = op.metrics.reconcile_count();
    let out = tina.apply(&c, &forged("workspace-theirs", "team-b/data"));
    assert!(out.status.success(), "{}", stderr(&out));
    // team-b's Workspace (named by the forgery) and hers (a label change) are reconciled after
    // it, and the forged binding is still there.
    let touch = ["label", "ws", "mine", "-n", ORG, "touched=1"];
    assert!(tina.kubectl(&c, &touch).status.success());
    op.wait_reconciles(since, 2);
    assert!(c.kubectl(&["get", "rolebinding", "workspace-theirs", "-n", &ns]).status.success(), "not deleted");
    assert!(!c.kubectl(&["auth", "can-i", "get", "secrets", "-n", &theirs, "--as=mallory"]).status.success());
    assert!(tina.kubectl(&c, &["delete", "rolebinding", "workspace-theirs", "-n", &ns]).status.success());
    // What the operator wrote and an admin may not change.
    tina.forbidden(&c, "deleting the quota", &["delete", "quota", "workspace-quota", "-n", &ns]);
    tina.forbidden(
        &c,
        "loosening Pod Security",
        &["label", "namespace", &ns, "pod-security.kubernetes.io/enforce=privileged", "--overwrite"],
    );
    tina.forbidden(&c, "deleting the namespace", &["delete", "namespace", &ns]);
    tina.forbidden(
        &c,
        "binding cluster-admin",
        &["create", "rolebinding", "pwn", "--clusterrole=cluster-admin", "--user=tina", "-n", &ns],
    );
    // What would let her past the boundary.
    tina.forbidden(
        &c,
        "consenting for another namespace",
        &["label", "namespace", "legacy-b", "workspaces.dev/enroll-from=team-a", "--overwrite"],
    );
    let other_team = manifest("sneaky", "").replace("namespace: team-a", "namespace: team-b");
    let out = tina.apply(&c, &other_team);
    assert!(!out.status.success() && stderr(&out).contains("forbidden"), "a Workspace in team-b: {}", stderr(&out));
    tina.forbidden(
        &c,
        "editing the class",
        &[
            "patch",
            "workspaceclass",
            DEFAULT_CLASS,
            "--type=merge",
            "-p",
            r#"{"spec":{"access":{"publicGroup":"system:authenticated"}}}"#,
        ],
    );
    let class = "apiVersion: workspaces.dev/v1alpha1\nkind: WorkspaceClass\nmetadata: {name: mine}\nspec: {}\n";
    let out = tina.apply(&c, class);
    assert!(!out.status.success() && stderr(&out).contains("forbidden"), "creating a class: {}", stderr(&out));

    // Switching her workspace to a class not offered to her: Failed, and the grant withdrawn.
    assert_eq!(crate::common::bindings(&c, &ns).len(), 2, "admins and the grant");
    let switch = r#"{"spec": {"className": "platform-only"}}"#;
    assert!(tina.kubectl(&c, &["patch", "ws", "mine", "-n", ORG, "--type=merge", "-p", switch]).status.success());
    wait_status(&c, ORG, "mine", "Failed");
    assert_eq!(c.jsonpath(&["get", "ws", "mine", "-n", ORG], "{.status.stateReason}"), "PolicyViolation");
    c.eventually("the grant withdrawn", std::time::Duration::from_secs(20), || {
        (crate::common::bindings(&c, &ns) == ["rolebinding.rbac.authorization.k8s.io/workspace-admins"]).then_some(())
    });
    let back = r#"{"spec": {"className": null}}"#;
    assert!(tina.kubectl(&c, &["patch", "ws", "mine", "-n", ORG, "--type=merge", "-p", back]).status.success());
    wait_status(&c, ORG, "mine", "Available");

    // With everything tried: access only inside her own workspace namespaces.
    let all = c.ok(&["get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}"]);
    let own: BTreeSet<String> = c
        .ok(&["get", "ws", "-n", ORG, "-o", "jsonpath={.items[*].status.namespace}"])
        .split_whitespace()
        .map(String::from)
        .collect();
    for other in all.split_whitespace().filter(|n| !own.contains(*n) && *n != ORG) {
        for (verb, resource) in
            [("create", "pods"), ("get", "secrets"), ("create", "rolebindings"), ("get", "configmaps")]
        {
            assert!(!tina.can(&c, verb, resource, other), "tina may {verb} {resource} in {other}");
        }
    }
    for (verb, resource) in [("create", "pods"), ("get", "secrets")] {
        assert!(!tina.can(&c, verb, resource, ORG), "tina may {verb} {resource} in her organization's namespace");
    }
    // And nothing outside them changed.
    let after = outside(&c);
    let changed: Vec<&String> = before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(changed.is_empty(), "changed outside team-a's workspaces: {changed:?}");
}

#[test]
fn owners_run_workloads_viewers_only_read_and_deactivation_takes_access_away() {
    let (c, _op) = crate::common::with_operator();
    c.ok(&["create", "namespace", ORG]);
    let spec =
        "  authType: Internal\n  grants: [{kind: User, name: victor, role: view}]\n  resourceLimits: {pods: 5}\n";
    c.apply(&manifest("lab", spec));
    wait_status(&c, ORG, "lab", "Available");
    let ns = target_ns(&c, ORG, "lab");
    let (tina, victor) = (User::new(&c, "tina"), User::new(&c, "victor"));
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: job, namespace: {ns}}}\nspec: {{containers: [{{name: main, image: busybox}}]}}\n"
    );
    let out = tina.apply(&c, &pod);
    assert!(out.status.success(), "the owner runs a workload: {}", stderr(&out));
    assert!(victor.kubectl(&c, &["get", "pod", "job", "-n", &ns]).status.success(), "a viewer reads");
    victor.forbidden(&c, "a viewer starting a pod", &["run", "x", "--image=busybox", "-n", &ns]);
    victor.forbidden(&c, "a viewer reading secrets", &["get", "secrets", "-n", &ns]);
    assert!(tina.can(&c, "create", "deployments.apps", &ns));

    let off = r#"{"spec": {"desiredState": "Deactivated"}}"#;
    c.ok(&["patch", "ws", "lab", "-n", ORG, "--type=merge", "-p", off]);
    wait_status(&c, ORG, "lab", "Deactivated");
    assert!(!tina.can(&c, "create", "pods", &ns), "the owner's access is gone");
    assert!(!victor.can(&c, "get", "pods", &ns), "the viewer's access is gone");
    assert!(c.kubectl(&["get", "pod", "job", "-n", &ns]).status.success(), "the workload's data is kept");
}

/// The edges of the boundary: a well-known infrastructure name inside her own prefix, numbers
/// admission would once accept but the operator could not read, a namespace owner's tightening,
/// a release that would loosen what she planted under, and quota keys beyond her own five.
#[test]
fn at_the_edges_a_tenant_gains_nothing_either() {
    let (c, op) = crate::common::with_operator();
    platform(&c);
    let tina = User::new(&c, "tina");
    let enforce =
        |ns: &str| c.jsonpath(&["get", "namespace", ns], "{.metadata.labels.pod-security\\.kubernetes\\.io/enforce}");

    // An organization named `ingress` may name `ingress-*` namespaces, but not the one an
    // ingress controller installed later would take for its own.
    let squat = manifest("edge", "  namespace: ingress-nginx\n").replace("namespace: team-a}", "namespace: ingress}");
    assert!(tina.apply(&c, &squat).status.success());
    wait_status(&c, "ingress", "edge", "Failed");
    let said = c.jsonpath(&["get", "ws", "edge", "-n", "ingress"], "{.status.stateReason}: {.status.message}");
    assert!(said.starts_with("PolicyViolation: ") && said.contains("reserved"), "{said}");
    assert!(!c.kubectl(&["get", "namespace", "ingress-nginx"]).status.success(), "nothing created");

    // Numbers beyond 32 bits, which admission accepts, are read as the amounts they are: the
    // Workspace is carried out (or refused by its class), never left unreadable with its access.
    assert!(
        tina.apply(&c, &manifest("huge", "  resourceLimits: {pods: 3000000000, gpu: 9999999999}\n")).status.success()
    );
    wait_status(&c, ORG, "huge", "Available");
    let huge = target_ns(&c, ORG, "huge");
    let pods = c.jsonpath(&["get", "quota", "workspace-quota", "-n", &huge], "{.spec.hard.pods}");
    // kube-apiserver writes it as 3G; the amount is what counts.
    assert_eq!(workspace_operator::controller::policy::amount(&pods), Some(3e9), "the quota holds the amount: {pods}");
    assert!(tina.apply(&c, &manifest("greedy", "  resourceLimits: {cpu: 3000000000}\n")).status.success());
    wait_status(&c, ORG, "greedy", "Failed");
    let said = c.jsonpath(&["get", "ws", "greedy", "-n", ORG], "{.status.stateReason}");
    assert_eq!(said, "PolicyViolation", "beyond the class's 8 cpus, as any other amount");
    assert!(tina.kubectl(&c, &["delete", "ws", "huge", "greedy", "-n", ORG]).status.success());
    c.eventually("both deleted", std::time::Duration::from_secs(30), || {
        let left = c.ok(&["get", "ws", "-n", ORG, "-o", "name"]);
        (!left.contains("huge") && !left.contains("greedy")).then_some(())
    });

    // Enrolled, a namespace that had no Pod Security level gets the class's.
    let legacy = manifest("legacy", "  management: Enrolled\n  namespace: legacy-a\n");
    assert!(tina.apply(&c, &legacy).status.success());
    wait_status(&c, ORG, "legacy", "Available");
    assert_eq!(enforce("legacy-a"), "baseline");
    let privileged = "apiVersion: v1\nkind: Pod\nmetadata: {name: root, namespace: legacy-a}\nspec:\n  containers: [{name: c, image: busybox, securityContext: {privileged: true}}]\n";
    let cronjob = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: later, namespace: legacy-a}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: c, image: busybox, securityContext: {privileged: true}}]\n";
    // Pod Security is enforced (and CronJobs served) by kube-apiserver, not the local server.
    if crate::common::real() {
        let out = tina.apply(&c, privileged);
        assert!(!out.status.success() && stderr(&out).contains("violates PodSecurity"), "{}", stderr(&out));
        // She plants a workload whose pods would be privileged, for after the release.
        let out = tina.apply(&c, cronjob);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // The namespace's owner tightens it; a reconcile of her Workspace leaves it so.
    c.ok(&["label", "namespace", "legacy-a", "pod-security.kubernetes.io/enforce=restricted", "--overwrite"]);
    let since = op.metrics.reconcile_count();
    assert!(tina.kubectl(&c, &["annotate", "ws", "legacy", "-n", ORG, "poke=1"]).status.success());
    op.wait_reconciles(since, 1);
    assert_eq!(enforce("legacy-a"), "restricted", "a reconcile undid the owner's tightening");
    // Released, it stays as strict as it was: her CronJob's pods are refused as they were.
    assert!(tina.kubectl(&c, &["delete", "ws", "legacy", "-n", ORG]).status.success());
    c.eventually("the Workspace gone", std::time::Duration::from_secs(30), || {
        (!c.kubectl(&["get", "ws", "legacy", "-n", ORG]).status.success()).then_some(())
    });
    let management = c.jsonpath(&["get", "namespace", "legacy-a"], "{.metadata.labels.workspaces\\.dev/management}");
    assert_eq!((management.as_str(), enforce("legacy-a").as_str()), ("", "restricted"), "released, not loosened");
    if crate::common::real() {
        let out = c.with_stdin(&["apply", "-f", "-"], privileged);
        assert!(!out.status.success() && stderr(&out).contains("violates PodSecurity"), "{}", stderr(&out));
    }

    // Quota keys beyond a Workspace's own five, set by the platform, bound every workspace.
    let bad = r#"{"spec": {"resources": {"quota": {"bogus key": "1", "pods": "5", "secrets": "many"}}}}"#;
    let refused = c.kubectl(&["patch", "workspaceclass", DEFAULT_CLASS, "--type=merge", "-p", bad]);
    let err = stderr(&refused);
    assert!(!refused.status.success() && err.contains("spec.resources.quota"), "{err}");
    let quota = r#"{"spec": {"resources": {"quota": {"services.loadbalancers": "0", "services.nodeports": "0", "requests.ephemeral-storage": "10Gi"}}}}"#;
    c.ok(&["patch", "workspaceclass", DEFAULT_CLASS, "--type=merge", "-p", quota]);
    assert!(tina.apply(&c, &manifest("bounded", "")).status.success());
    wait_status(&c, ORG, "bounded", "Available");
    let ns = target_ns(&c, ORG, "bounded");
    let hard =
        |key: &str| c.jsonpath(&["get", "quota", "workspace-quota", "-n", &ns], &format!("{{.spec.hard.{key}}}"));
    assert_eq!(hard("services\\.loadbalancers"), "0");
    assert_eq!(hard("requests\\.ephemeral-storage"), "10Gi");
    tina.forbidden(
        &c,
        "raising the quota",
        &[
            "patch",
            "quota",
            "workspace-quota",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"hard":{"services.loadbalancers":"5"}}}"#,
        ],
    );
    if crate::common::real() {
        let lb = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: lb, namespace: {ns}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n"
        );
        let out = tina.apply(&c, &lb);
        assert!(!out.status.success() && stderr(&out).contains("exceeded quota"), "{}", stderr(&out));
    }
}

/// Deactivation stops workloads only in a Workspace's own namespace — one it enrolled counts,
/// another team's does not — and never for a Workspace that is Failed.
#[test]
fn deactivation_reaches_only_a_workspaces_own_namespace() {
    let (c, _op) = crate::common::with_operator();
    platform(&c);
    let tina = User::new(&c, "tina");
    let theirs = target_ns(&c, "team-b", "data");
    let web = |ns: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: c, image: busybox}}]\n"
        )
    };
    let replicas = |ns: &str| c.jsonpath(&["get", "deployment", "web", "-n", ns], "{.spec.replicas}");
    c.apply(&web(&theirs));
    c.apply(&web("legacy-a"));
    // Another team's workspace namespace, enrolled and deactivated at once: refused, untouched.
    let grab =
        manifest("grab", &format!("  management: Enrolled\n  namespace: {theirs}\n  desiredState: Deactivated\n"));
    assert!(tina.apply(&c, &grab).status.success());
    wait_status(&c, ORG, "grab", "Failed");
    // Her own enrolled namespace: stopped.
    let mine = manifest("mine", "  management: Enrolled\n  namespace: legacy-a\n  desiredState: Deactivated\n");
    assert!(tina.apply(&c, &mine).status.success());
    wait_status(&c, ORG, "mine", "Deactivated");
    c.eventually("hers stopped", std::time::Duration::from_secs(20), || (replicas("legacy-a") == "0").then_some(()));
    assert_eq!(replicas(&theirs), "2", "another team's workload untouched");
    // A workspace of hers that breaks its class: Failed, and its workloads left as they are.
    assert!(tina.apply(&c, &manifest("over", "")).status.success());
    wait_status(&c, ORG, "over", "Available");
    let over = target_ns(&c, ORG, "over");
    c.apply(&web(&over));
    let breach = r#"{"spec": {"resourceLimits": {"cpu": "64"}, "desiredState": "Deactivated"}}"#;
    assert!(tina.kubectl(&c, &["patch", "ws", "over", "-n", ORG, "--type=merge", "-p", breach]).status.success());
    wait_status(&c, ORG, "over", "Failed");
    assert_eq!(replicas(&over), "2", "nothing is stopped for a Workspace that is Failed");
    assert_eq!(replicas(&theirs), "2");
}
