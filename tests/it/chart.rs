//! The Helm chart through Helm's own engine (helm-python-sdk): strict lint, rendering, schema,
//! install/upgrade/uninstall against the local API server, and proof that the ClusterRole
//! covers every call the operator makes.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::common::ws;
use serde_json::{Value, json};
use workspace_operator::crd::{GrantRole, SubjectKind};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/workspace-operator");

fn python() -> String {
    std::env::var("HELM_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").to_string())
}

fn helm(args: &[&str]) -> Result<Value, String> {
    let out = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/helmtool.py"))
        .args(args)
        .output()
        .expect("the Helm engine runs (make test installs it into .venv)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON from helmtool"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Rendered objects keyed by "Kind/name".
fn render(values: Value) -> Result<BTreeMap<String, Value>, String> {
    let files = helm(&["render", CHART, &values.to_string(), "wo", "workspace-system"])?;
    let mut out = BTreeMap::new();
    for (_, text) in files.as_object().expect("files") {
        let docs: Vec<Value> =
            workspace_operator::yaml::from_str_multi(text.as_str().unwrap_or("")).unwrap_or_default();
        for d in docs.into_iter().filter(|d| d.is_object()) {
            out.insert(
                format!("{}/{}", d["kind"].as_str().unwrap_or(""), d["metadata"]["name"].as_str().unwrap_or("")),
                d,
            );
        }
    }
    Ok(out)
}

#[test]
fn strict_lint_passes() {
    let report = helm(&["lint", CHART, "{}"]).expect("lint runs");
    let serious: Vec<&Value> =
        report["messages"].as_array().unwrap().iter().filter(|m| m["severity"].as_i64() >= Some(2)).collect();
    assert!(serious.is_empty() && report["errors"].as_array().unwrap().is_empty(), "{report}");
}

#[test]
fn rendered_security_rbac_and_crd() {
    let objs = render(json!({})).expect("renders");
    let dep = &objs["Deployment/wo-workspace-operator"];
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert!(c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["args"].as_array().unwrap().contains(&json!("--leader-elect")));

    for (key, obj) in &objs {
        if key.starts_with("ClusterRole/") || key.starts_with("Role/") {
            for rule in obj["rules"].as_array().unwrap() {
                for field in ["apiGroups", "resources", "verbs"] {
                    assert!(!rule[field].as_array().unwrap().contains(&json!("*")), "wildcard in {key}: {rule}");
                }
                if rule["verbs"].as_array().unwrap().contains(&json!("bind")) {
                    assert_eq!(
                        rule["resourceNames"],
                        json!(["admin", "edit", "view"]),
                        "bind limited by resourceNames"
                    );
                }
            }
        }
    }

    // The CRDs come from the chart's crds/ directory (installed before any template, so the
    // default class below can be created in the same install); the templates carry none.
    assert!(!objs.keys().any(|k| k.starts_with("CustomResourceDefinition/")));
    let class = &objs["WorkspaceClass/standard"];
    assert_eq!(class["metadata"]["annotations"]["workspaces.dev/is-default-class"], "true");
    assert_eq!(class["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    assert_eq!(class["spec"], json!({}), "every policy at its safe default");
}

#[test]
fn values_change_the_rendering_and_bad_values_are_refused() {
    let objs = render(json!({
        "replicas": 3, "watchNamespace": "teams", "logFormat": "text",
        "metrics": {"serviceMonitor": {"enabled": true}}, "podDisruptionBudget": {"enabled": true},
        "defaultClass": {"name": "teams", "spec": {"access": {"publicGroup": "staff"}}},
        "nodeSelector": {"pool": "ops"},
    }))
    .expect("renders");
    let dep = &objs["Deployment/wo-workspace-operator"];
    assert_eq!(dep["spec"]["replicas"], 3);
    let args = dep["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap().clone();
    for a in ["--watch-namespace=teams", "--log-format=text"] {
        assert!(args.contains(&json!(a)), "{args:?}");
    }
    assert_eq!(dep["spec"]["template"]["spec"]["nodeSelector"]["pool"], "ops");
    assert!(objs.contains_key("ServiceMonitor/wo-workspace-operator"));
    assert!(objs.contains_key("PodDisruptionBudget/wo-workspace-operator"));
    assert_eq!(objs["WorkspaceClass/teams"]["spec"]["access"]["publicGroup"], "staff");
    let without = render(json!({"defaultClass": {"create": false}})).expect("renders");
    assert!(!without.keys().any(|k| k.starts_with("WorkspaceClass/")));

    for bad in [
        json!({"replicas": "two"}),
        json!({"bogus": 1}),
        json!({"logFormat": "xml"}),
        json!({"image": {"pullPolicy": "Sometimes"}}),
        json!({"defaultClass": {"name": "Not A Name"}}),
        json!({"publicGroup": "system:authenticated"}),
    ] {
        assert!(render(bad.clone()).is_err(), "schema should refuse {bad}");
    }
    let err = render(json!({"replicas": 2, "leaderElection": {"enabled": false}})).unwrap_err();
    assert!(err.contains("leaderElection"), "{err}");
    // Without leader election a rolling update would run two reconciling pods for a while.
    let single = render(json!({"leaderElection": {"enabled": false}})).expect("renders");
    assert_eq!(single["Deployment/wo-workspace-operator"]["spec"]["strategy"]["type"], "Recreate");
    let elected = render(json!({})).expect("renders");
    assert!(
        elected["Deployment/wo-workspace-operator"]["spec"]["strategy"].is_null(),
        "a rolling update, with a lease"
    );
}

#[test]
fn install_upgrade_uninstall_with_helms_engine() {
    let c = crate::common::cluster();
    let kc = c.kubeconfig();
    let kc = kc.to_str().unwrap();
    helm(&["install", kc, CHART, "wo", "workspace-system", "{}"]).expect("install");
    assert_eq!(
        c.jsonpath(&["get", "deploy", "wo-workspace-operator", "-n", "workspace-system"], "{.spec.replicas}"),
        "1"
    );
    c.ok(&["wait", "--for=condition=Established", "crd/workspaces.workspaces.dev", "--timeout=10s"]);
    let default = c.jsonpath(&["get", "workspaceclasses"], "{.items[*].metadata.name}");
    assert_eq!(default, "standard", "the chart installs the default class with the CRDs");
    helm(&["upgrade", kc, CHART, "wo", "workspace-system", "{\"replicas\": 2}"]).expect("upgrade");
    assert_eq!(
        c.jsonpath(&["get", "deploy", "wo-workspace-operator", "-n", "workspace-system"], "{.spec.replicas}"),
        "2"
    );
    let releases = c.ok(&["get", "secrets", "-n", "workspace-system", "-l", "owner=helm", "-o", "name"]);
    assert_eq!(releases.lines().count(), 2, "two release revisions: {releases}");
    helm(&["uninstall", kc, "wo", "workspace-system"]).expect("uninstall");
    assert!(!c.kubectl(&["get", "deploy", "wo-workspace-operator", "-n", "workspace-system"]).status.success());
    assert!(c.kubectl(&["get", "crd", "workspaces.workspaces.dev"]).status.success(), "the CRD is kept");
    assert!(c.kubectl(&["get", "workspaceclass", "standard"]).status.success(), "the class is kept");
}

/// Does any rule grant `verb` on `group`/`resource`?
/// The operator process as the chart deploys it (its ServiceAccount, leader election in its
/// namespace) with `rbac` as its RBAC: does a new Workspace get everything it should, the
/// Provisioned Event included, and does the operator lead and turn ready, within `within`?
fn operator_works_with(rbac: &[Value], within: Duration) -> Result<(), String> {
    let c = crate::common::cluster();
    crate::common::install_crd(&c);
    let kubeconfig = crate::common::operator_kubeconfig(&c);
    // Replace the chart's roles with the ones under test.
    for role in rbac {
        let out = c.with_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &role.to_string());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_workspace-operator"))
        .args([
            "run",
            "--leader-elect",
            "--lease-namespace",
            "workspace-system",
            "--metrics-addr",
            &metrics.to_string(),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", "solo")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).expect("log"))
        .spawn()
        .expect("operator");
    c.apply(&ws("w").limit("pods", "10").yaml());
    let deadline = std::time::Instant::now() + within;
    let wait = |what: &str, done: &dyn Fn() -> bool| -> Result<(), String> {
        while !done() {
            if std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
                return Err(format!("{what}\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    };
    let provisioned = || {
        let available = c.jsonpath(&["get", "ws", "w"], "{.status.status}") == "Available";
        let event = c.ok(&["get", "events.events.k8s.io", "-o", "jsonpath={.items[*].reason}"]).contains("Provisioned");
        let leads = c
            .jsonpath(&["get", "lease", "workspace-operator", "-n", "workspace-system"], "{.spec.holderIdentity}")
            == "solo";
        let ready = std::net::TcpStream::connect(metrics).ok().and_then(|mut s| {
            use std::io::{Read, Write};
            s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out.starts_with("HTTP/1.1 200"))
        }) == Some(true);
        available && event && leads && ready
    };
    // Deactivation stops every kind of workload, and reactivation gives each back.
    let workloads_are = |stopped: bool| {
        let ns = c.jsonpath(&["get", "ws", "w"], "{.status.namespace}");
        let get = |kind: &str, path: &str| c.jsonpath(&["get", kind, "x", "-n", &ns], path);
        let (replicas, suspend) = if stopped { ("0", "true") } else { ("1", "false") };
        let state = if stopped { "Deactivated" } else { "Available" };
        c.jsonpath(&["get", "ws", "w"], "{.status.status}") == state
            && ["deployment", "statefulset", "replicaset"].iter().all(|k| get(k, "{.spec.replicas}") == replicas)
            && ["job", "cronjob"].iter().all(|k| get(k, "{.spec.suspend}") == suspend)
    };
    let result = wait("provisioned, leading and ready", &provisioned)
        .and_then(|_| {
            let ns = c.jsonpath(&["get", "ws", "w"], "{.status.namespace}");
            c.apply(&every_workload(&ns));
            c.ok(&["patch", "ws", "w", "--type=merge", "-p", r#"{"spec":{"desiredState":"Deactivated"}}"#]);
            wait("workloads stopped", &|| workloads_are(true))
        })
        .and_then(|_| {
            c.ok(&["patch", "ws", "w", "--type=merge", "-p", r#"{"spec":{"desiredState":"Available"}}"#]);
            wait("workloads given back", &|| workloads_are(false))
        });
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// One of each workload deactivation stops or counts, named `x`, in `ns`.
fn every_workload(ns: &str) -> String {
    let pod = "{metadata: {labels: {app: x}}, spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}";
    let scalable = |kind: &str| {
        let service = if kind == "StatefulSet" { "serviceName: x, " } else { "" };
        format!(
            "apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: x, namespace: {ns}}}\nspec: {{replicas: 1, {service}selector: {{matchLabels: {{app: x}}}}, template: {pod}}}\n"
        )
    };
    [
        scalable("Deployment").replace("restartPolicy: Never, ", ""),
        scalable("StatefulSet").replace("restartPolicy: Never, ", ""),
        scalable("ReplicaSet").replace("restartPolicy: Never, ", ""),
        format!("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: x, namespace: {ns}}}\nspec: {{selector: {{matchLabels: {{app: x}}}}, template: {}}}\n", pod.replace("restartPolicy: Never, ", "")),
        format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: x, namespace: {ns}}}\nspec: {{template: {pod}}}\n"),
        format!("apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: x, namespace: {ns}}}\nspec: {{schedule: '0 3 * * *', jobTemplate: {{spec: {{template: {pod}}}}}}}\n"),
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: x, namespace: {ns}}}\nspec: {{containers: [{{name: c, image: busybox}}]}}\n"),
    ]
    .join("---\n")
}

/// Least privilege, enforced: the operator works on exactly the chart's RBAC, and without any
/// one of its rules it does not.
#[test]
fn the_operator_works_on_the_charts_rbac_and_needs_every_rule_of_it() {
    // The chart as installed (release workspace-operator): its committed rendering.
    let docs: Vec<Value> =
        workspace_operator::yaml::from_str_multi(include_str!("../../crds/operator/operator.yaml")).expect("YAML");
    let find = |kind: &str| docs.iter().find(|d| d["kind"] == kind).cloned().expect("rendered");
    let (cluster_role, lease_role) = (find("ClusterRole"), find("Role"));
    operator_works_with(&[cluster_role.clone(), lease_role.clone()], Duration::from_secs(30))
        .expect("the operator works on the chart's RBAC");
    let mut cases: Vec<(String, Vec<Value>)> = Vec::new();
    for (role, other) in [(&cluster_role, &lease_role), (&lease_role, &cluster_role)] {
        for (i, rule) in role["rules"].as_array().expect("rules").iter().enumerate() {
            let mut less = role.clone();
            less["rules"].as_array_mut().expect("rules").remove(i);
            cases.push((rule.to_string(), vec![less, other.clone()]));
        }
    }
    for (dropped, rbac) in cases {
        assert!(
            operator_works_with(&rbac, Duration::from_secs(6)).is_err(),
            "the operator works without this rule of the chart, so the chart grants too much: {dropped}"
        );
    }
}

#[test]
fn plain_manifests_match_the_chart_and_apply_with_kustomize() {
    let out = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/helmtool.py"))
        .args(["manifests", CHART, "{}", "workspace-operator", "workspace-system"])
        .output()
        .expect("render");
    let committed = include_str!("../../crds/operator/operator.yaml");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "crds/operator/operator.yaml is stale: run `make manifests`"
    );
    // As the installation guide says: the CRDs first (kubectl maps every kind before it applies any), then
    // the rest.
    let c = crate::common::cluster();
    c.ok(&["apply", "-f", crate::common::CRD]);
    c.ok(&["wait", "--for=condition=Established", "crd/workspaceclasses.workspaces.dev", "--timeout=10s"]);
    c.ok(&["apply", "-k", concat!(env!("CARGO_MANIFEST_DIR"), "/crds")]);
    let default =
        c.jsonpath(&["get", "workspaceclass", "standard"], "{.metadata.annotations.workspaces\\.dev/is-default-class}");
    assert_eq!(default, "true", "the default class comes with the operator");
    assert_eq!(c.jsonpath(&["get", "deploy", "workspace-operator", "-n", "workspace-system"], "{.spec.replicas}"), "1");
    c.ok(&["wait", "--for=condition=Established", "crd/workspaces.workspaces.dev", "--timeout=10s"]);
}

#[test]
fn dev_without_the_controller_is_an_empty_cluster_the_chart_installs_into() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    let args = ["--no-controller", "--listen", "127.0.0.1:0", "--kubeconfig", kc.to_str().unwrap()];
    let _dev = crate::common::Dev::start(dir.path(), &args, "export KUBECONFIG");
    let kubectl = |args: &[&str]| {
        Command::new("kubectl").args(args).env("KUBECONFIG", &kc).env("HOME", dir.path()).output().expect("kubectl")
    };
    crate::common::eventually("the dev server to answer", Duration::from_secs(30), || {
        kubectl(&["get", "ns", "default"]).status.success().then_some(())
    });
    let crds = kubectl(&["get", "crd", "-o", "name"]);
    assert!(crds.status.success() && crds.stdout.is_empty(), "a fresh cluster has no CRD");
    helm(&["install", kc.to_str().unwrap(), CHART, "wo", "workspace-system", "{}"]).expect("install");
    assert!(kubectl(&["get", "crd", "workspaces.workspaces.dev"]).status.success(), "the chart installed the CRD");
}

#[test]
fn the_chart_points_at_nothing_that_does_not_exist() {
    let files = helm(&["render", CHART, "{}", "wo", "workspace-system"]).expect("renders");
    let notes = files
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with("NOTES.txt"))
        .map(|(_, v)| v.as_str().unwrap_or(""));
    let notes = notes.expect("NOTES.txt renders");
    assert!(notes.contains("charts/Dockerfile") && !notes.contains("https://"), "{notes}");
    let chart = std::fs::read_to_string(format!("{CHART}/Chart.yaml")).expect("Chart.yaml");
    let values = std::fs::read_to_string(format!("{CHART}/values.yaml")).expect("values.yaml");
    for text in [&chart, &values] {
        assert!(
            !text.contains("example.invalid") && !text.contains("ghcr.io"),
            "a placeholder or unpublished place:\n{text}"
        );
    }
    assert!(values.contains("charts/Dockerfile"), "values.yaml says where the image comes from");
}

#[test]
fn helm_as_a_user_who_may_not_install_the_chart_is_refused_in_kube_apiservers_words() {
    let c = crate::common::cluster();
    c.ok(&["create", "namespace", "workspace-system"]);
    c.ok(&[
        "create",
        "rolebinding",
        "deployer-admin",
        "-n",
        "workspace-system",
        "--clusterrole=admin",
        "--user=deployer",
    ]);
    let deployer = c.save_kubeconfig("deployer", &c.server.kubeconfig_as("deployer", &[]));
    let err = helm(&["install", deployer.to_str().unwrap(), CHART, "wo", "workspace-system", "{}"])
        .expect_err("namespace admin cannot install cluster-wide RBAC and a CRD");
    assert!(err.contains(r#"is forbidden: User "deployer" cannot"#), "{err}");
    assert!(
        !c.kubectl(&["get", "clusterrole", "wo-workspace-operator"]).status.success(),
        "nothing cluster-wide was created"
    );
}

/// The fence the chart puts around the operator's own rights holds on kube-apiserver, where it
/// is enforced: as the operator's ServiceAccount, what its RBAC alone would allow outside the
/// workspaces is refused by the policy, and what it does for a Workspace still goes through.
#[test]
fn the_fence_keeps_the_operators_own_rights_inside_the_workspaces() {
    if !crate::common::needs_real("ValidatingAdmissionPolicy enforcement") {
        return;
    }
    let (c, _op) = crate::common::with_operator();
    c.apply(&ws("fenced").grant(SubjectKind::User, "victor", GrantRole::Edit).yaml());
    crate::common::wait_status(&c, "default", "fenced", "Available");
    let ns = crate::common::target_ns(&c, "default", "fenced");
    let operator = crate::common::operator_kubeconfig(&c);
    let as_operator = |args: &[&str]| c.kubectl_with(&operator, args);
    let refused = |what: &str, args: &[&str], says: &str| {
        let out = as_operator(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("workspace-operator-fence") && err.contains(says),
            "{what}: {err}"
        );
    };
    c.ok(&["create", "namespace", "elsewhere"]);
    for (what, target, says) in [
        ("admin in kube-system", "kube-system", "writes nothing in namespace kube-system"),
        ("admin in default", "default", "writes nothing in namespace default"),
        ("admin in its own namespace", "workspace-system", "writes nothing in namespace workspace-system"),
        ("admin in a namespace that is no workspace", "elsewhere", "only in namespaces that are workspaces"),
    ] {
        refused(what, &["create", "rolebinding", "pwn", "--clusterrole=admin", "--user=mallory", "-n", target], says);
    }
    refused(
        "deleting a namespace it did not create",
        &["delete", "namespace", "elsewhere", "--wait=false"],
        "deletes only namespaces it created",
    );
    refused(
        "a quota outside the workspaces",
        &["create", "quota", "q", "--hard=pods=0", "-n", "elsewhere"],
        "only in namespaces that are workspaces",
    );
    // Nor can it unlock the fence by writing the marks itself.
    let created = ["annotate", "namespace", "elsewhere", "workspaces.dev/created-by-uid=x"];
    refused("recording itself as a namespace's creator", &created, "never writes who created a namespace");
    let mark = ["label", "namespace", "elsewhere", "app.kubernetes.io/managed-by=workspace-operator"];
    refused("marking a namespace that did not consent", &mark, "only a namespace that consented");
    let consent = ["label", "namespace", "elsewhere", "workspaces.dev/enroll-from=default"];
    refused("consenting for a namespace", &consent, "never writes a namespace's consent");
    c.ok(&["label", "namespace", "elsewhere", "pod-security.kubernetes.io/enforce=restricted"]);
    let loosen = ["label", "namespace", "elsewhere", "pod-security.kubernetes.io/enforce=privileged", "--overwrite"];
    refused("loosening a namespace's Pod Security", &loosen, "only tightens the Pod Security");
    refused("creating an unmarked namespace", &["create", "namespace", "squat"], "creates only namespaces marked");
    // Inside a workspace, what it does for a Workspace goes through.
    let ok = as_operator(&["create", "rolebinding", "extra", "--clusterrole=view", "--user=viewer", "-n", &ns]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}
