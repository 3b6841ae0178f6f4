//! The Helm chart through Helm's own engine (helm-python-sdk): strict lint, rendering, schema,
//! install/upgrade/uninstall against the local API server, and proof that the ClusterRole
//! covers every call the operator makes.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::common::{Cluster, wait_status, ws};
use serde_json::{Value, json};
use workspace_operator::crd::{DeletionPolicy, GrantRole, SubjectKind};

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

    // The chart's CRD is crds/workspace.yaml plus the keep annotation.
    let mut crd = objs["CustomResourceDefinition/workspaces.workspaces.dev"].clone();
    assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    crd["metadata"].as_object_mut().unwrap().remove("annotations");
    let committed: Value = workspace_operator::yaml::from_str(include_str!("../../crds/workspace.yaml")).unwrap();
    assert_eq!(crd, committed);
}

#[test]
fn values_change_the_rendering_and_bad_values_are_refused() {
    let objs = render(json!({
        "replicas": 3, "watchNamespace": "teams", "logFormat": "text", "publicGroup": "staff",
        "metrics": {"serviceMonitor": {"enabled": true}}, "podDisruptionBudget": {"enabled": true},
        "crds": {"install": false}, "nodeSelector": {"pool": "ops"},
    }))
    .expect("renders");
    let dep = &objs["Deployment/wo-workspace-operator"];
    assert_eq!(dep["spec"]["replicas"], 3);
    let args = dep["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap().clone();
    for a in ["--watch-namespace=teams", "--log-format=text", "--public-group=staff"] {
        assert!(args.contains(&json!(a)), "{args:?}");
    }
    assert_eq!(dep["spec"]["template"]["spec"]["nodeSelector"]["pool"], "ops");
    assert!(objs.contains_key("ServiceMonitor/wo-workspace-operator"));
    assert!(objs.contains_key("PodDisruptionBudget/wo-workspace-operator"));
    assert!(!objs.contains_key("CustomResourceDefinition/workspaces.workspaces.dev"));

    for bad in [
        json!({"replicas": "two"}),
        json!({"bogus": 1}),
        json!({"logFormat": "xml"}),
        json!({"image": {"pullPolicy": "Sometimes"}}),
    ] {
        assert!(render(bad.clone()).is_err(), "schema should refuse {bad}");
    }
    let err = render(json!({"replicas": 2, "leaderElection": {"enabled": false}})).unwrap_err();
    assert!(err.contains("leaderElection"), "{err}");
}

#[test]
fn install_upgrade_uninstall_against_the_local_api_server() {
    let c = Cluster::start();
    let kc = c.kubeconfig();
    let kc = kc.to_str().unwrap();
    helm(&["install", kc, CHART, "wo", "workspace-system", "{}"]).expect("install");
    assert_eq!(
        c.jsonpath(&["get", "deploy", "wo-workspace-operator", "-n", "workspace-system"], "{.spec.replicas}"),
        "1"
    );
    c.ok(&["wait", "--for=condition=Established", "crd/workspaces.workspaces.dev", "--timeout=10s"]);
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
}

/// Does any rule grant `verb` on `group`/`resource`?
fn allowed(rules: &[Value], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        let has = |f: &str, v: &str| r[f].as_array().is_some_and(|a| a.iter().any(|x| x == v));
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

#[test]
fn cluster_role_covers_every_call_the_operator_makes() {
    let objs = render(json!({})).expect("renders");
    let cluster_rules = objs["ClusterRole/wo-workspace-operator"]["rules"].as_array().unwrap().clone();
    let lease_rules = objs["Role/wo-workspace-operator-leader-election"]["rules"].as_array().unwrap().clone();

    let (c, op) = crate::common::with_operator();
    c.server.counters().start_log();
    c.ok(&["create", "namespace", "legacy"]);
    c.apply(&ws("a").admins(&["bob"]).limit("pods", "3").yaml());
    c.apply(&ws("b").enrolled("legacy").yaml());
    c.apply(&ws("d").deletion_policy(DeletionPolicy::Delete).grant(SubjectKind::Group, "g", GrantRole::Edit).yaml());
    for n in ["a", "b", "d"] {
        wait_status(&c, "default", n, "Available");
    }
    c.ok(&["patch", "ws", "a", "--type=merge", "-p", "{\"spec\":{\"desiredState\":\"Deactivated\"}}"]);
    wait_status(&c, "default", "a", "Deactivated");
    c.ok(&["delete", "ws", "a", "b", "d", "--timeout=20s"]);
    drop(op);
    // Leader election and the CRD wait, as `run` does them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let e = workspace_operator::leader::Elector::new(
            c.server.client(),
            workspace_operator::leader::LeaseConfig::new("default", "wo-workspace-operator", "me"),
        );
        tokio::time::timeout(Duration::from_secs(10), e.acquire()).await.expect("lease acquired");
        e.release().await;
        let crds: kube::Api<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        > = kube::Api::all(c.server.client());
        crds.get("workspaces.workspaces.dev").await.expect("crd");
    });
    let log = c.server.counters().take_log();
    let calls: std::collections::BTreeSet<_> = log
        .into_iter()
        .filter(|r| !r.user_agent.starts_with("kubectl"))
        .map(|r| {
            (
                r.group,
                if r.subresource.is_empty() { r.resource } else { format!("{}/{}", r.resource, r.subresource) },
                r.verb,
            )
        })
        .collect();
    assert!(calls.len() >= 10, "the operator made calls: {calls:?}");
    for (group, resource, verb) in &calls {
        let ok = allowed(&cluster_rules, group, resource, verb)
            || (resource == "leases" && allowed(&lease_rules, group, resource, verb));
        assert!(ok, "the chart's RBAC does not allow {verb} {group}/{resource}");
    }
}

#[test]
fn plain_manifests_match_the_chart_and_apply_with_kustomize() {
    let out = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/helmtool.py"))
        .args(["manifests", CHART, "{\"crds\":{\"install\":false}}", "workspace-operator", "workspace-system"])
        .output()
        .expect("render");
    let committed = include_str!("../../crds/operator/operator.yaml");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "crds/operator/operator.yaml is stale: run `make manifests`"
    );
    let c = Cluster::start();
    c.ok(&["apply", "-k", concat!(env!("CARGO_MANIFEST_DIR"), "/crds")]);
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
