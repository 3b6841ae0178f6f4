//! List views over 1,200 Workspaces in four namespaces and every state (one fixture, shared): kubectl's label and
//! field selectors, and the `kubectl workspaces list` plugin, checked against the expected sets
//! computed from the specs the test created.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::{Cluster, Operator, plugin, ws};
use devcluster::FaultKind;
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;
use workspace_operator::crd::{DesiredState, Workspace};

const N: usize = 1200;
const NAMESPACES: [&str; 4] = ["org-a", "org-b", "org-c", "org-d"];
const OWNERS: [&str; 5] = ["alice@example.com", "bob@example.com", "carol", "dave", "erin"];
const PROJECTS: [&str; 3] = ["default", "research", "prod-ml"];
const AUTH: [&str; 3] = ["Public", "Private", "Internal"];
const WORDS: [&str; 4] = ["vision", "speech", "ranking", "forecast"];

#[derive(Clone, Debug)]
struct Spec {
    i: usize,
    ns: &'static str,
    name: String,
    owner: &'static str,
    project: &'static str,
    auth: &'static str,
    display: String,
    status: &'static str,
}

fn specs() -> Vec<Spec> {
    (0..N)
        .map(|i| {
            let desired = if i % 11 == 0 {
                "Deleted"
            } else if i % 7 == 0 {
                "Deactivated"
            } else {
                "Available"
            };
            Spec {
                i,
                ns: NAMESPACES[i % 4],
                name: format!("ws-{i:04}"),
                owner: OWNERS[i % 5],
                project: PROJECTS[i % 3],
                auth: AUTH[(i / 3) % 3],
                display: format!("Project {i} {}", WORDS[i % 4]),
                // Every 50th asks for a namespace of the cluster's own (refused by policy).
                status: if i % 50 == 0 { "Failed" } else { desired },
            }
        })
        .collect()
}

fn workspace(s: &Spec) -> Workspace {
    let desired = match s.status {
        "Failed" | "Available" => DesiredState::Available,
        other => other.parse().expect("a desired state"),
    };
    let w = ws(&s.name)
        .in_ns(s.ns)
        .owner(s.owner)
        .enterprise_project(s.project)
        .auth(s.auth.parse().expect("an auth type"))
        .display_name(&s.display)
        .desired(desired);
    if s.i % 50 == 0 { w.namespace("kube-public").build() } else { w.build() }
}

struct Fixture {
    c: Cluster,
    _op: Operator,
    specs: Vec<Spec>,
}

fn fixture() -> Fixture {
    let (c, op) = crate::common::with_operator();
    crate::common::allow_public(&c, "system:authenticated");
    for ns in NAMESPACES {
        c.ok(&["create", "namespace", ns]);
    }
    let specs = specs();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = c.server.client();
        futures::stream::iter(specs.clone())
            .map(|s| {
                let api: Api<Workspace> = Api::namespaced(client.clone(), s.ns);
                async move { api.create(&PostParams::default(), &workspace(&s)).await.map(|_| ()) }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .expect("create workspaces");
        let api: Api<Workspace> = Api::all(client);
        let want: BTreeSet<(String, String)> = specs.iter().map(|s| (s.name.clone(), s.status.to_string())).collect();
        crate::common::eventually_async("all workspaces settled", Duration::from_secs(180), || {
            let api = api.clone();
            let want = want.clone();
            async move {
                let list = api.list(&ListParams::default()).await.ok()?;
                let have: BTreeSet<(String, String)> = list
                    .items
                    .iter()
                    .filter(|w| {
                        w.labels().get("workspaces.dev/status")
                            == w.status.as_ref().and_then(|s| s.status).map(|s| s.as_str().to_string()).as_ref()
                    })
                    .map(|w| {
                        (
                            w.metadata.name.clone().unwrap_or_default(),
                            w.status
                                .as_ref()
                                .and_then(|s| s.status)
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_default(),
                        )
                    })
                    .collect();
                if have != want {
                    let missing: Vec<_> = want.difference(&have).take(5).collect();
                    eprintln!("not settled: {} differ, e.g. {missing:?}", want.difference(&have).count());
                }
                (have == want).then_some(())
            }
        })
        .await;
    });
    Fixture { c, _op: op, specs }
}

fn names(lines: &str) -> BTreeSet<String> {
    lines.lines().map(|l| l.rsplit('/').next().unwrap_or(l).to_string()).filter(|l| !l.is_empty()).collect()
}

fn expect(specs: &[Spec], f: impl Fn(&Spec) -> bool) -> BTreeSet<String> {
    specs.iter().filter(|s| f(s)).map(|s| s.name.clone()).collect()
}

fn plugin_json(c: &Cluster, args: &[&str]) -> Value {
    let mut a = vec!["list", "-o", "json"];
    a.extend_from_slice(args);
    let out = plugin(c, &a);
    assert!(out.status.success(), "plugin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("plugin prints JSON")
}

fn plugin_names(v: &Value) -> BTreeSet<String> {
    v["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .map(|w| w["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The 1,200 Workspaces, settled, shared by every test that only reads them.
fn shared() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(fixture)
}

fn kubectl_names(c: &Cluster, args: &[&str]) -> BTreeSet<String> {
    let mut a = vec!["get", "ws", "-A", "-o", "name"];
    a.extend_from_slice(args);
    names(&c.ok(&a))
}

#[test]
fn label_selectors_filter_on_every_operator_across_namespaces() {
    let Fixture { c, specs, .. } = shared();
    assert_eq!(
        kubectl_names(c, &["-l", "workspaces.dev/status=Available"]),
        expect(specs, |s| s.status == "Available")
    );
    assert_eq!(
        kubectl_names(c, &["-l", "workspaces.dev/status in (Deactivated,Deleted)"]),
        expect(specs, |s| s.status == "Deactivated" || s.status == "Deleted")
    );
    assert_eq!(
        kubectl_names(c, &["-l", "workspaces.dev/status!=Available,workspaces.dev/auth-type=Private"]),
        expect(specs, |s| s.status != "Available" && s.auth == "Private")
    );
    assert_eq!(
        kubectl_names(c, &["-l", "workspaces.dev/enterprise-project=research", "--chunk-size=50"]),
        expect(specs, |s| s.project == "research")
    );
}

#[test]
fn field_selectors_filter_on_the_selectable_fields() {
    let Fixture { c, specs, .. } = shared();
    assert_eq!(
        kubectl_names(c, &["--field-selector", "spec.owner=alice@example.com,status.status=Available"]),
        expect(specs, |s| s.owner == "alice@example.com" && s.status == "Available")
    );
    assert_eq!(kubectl_names(c, &["--field-selector", "spec.authType!=Public"]), expect(specs, |s| s.auth != "Public"));
}

#[test]
fn a_namespaced_list_is_the_organizations_workspaces() {
    let Fixture { c, specs, .. } = shared();
    let org_b = names(&c.ok(&["get", "ws", "-n", "org-b", "-o", "name"]));
    assert_eq!(org_b, expect(specs, |s| s.ns == "org-b"));
}

#[test]
fn kubectl_prints_the_declared_columns() {
    let Fixture { c, .. } = shared();
    let table = c.ok(&["get", "ws", "-n", "org-a", "-o", "wide", "--chunk-size=100"]);
    let header = table.lines().next().unwrap_or("");
    for col in [
        "NAME",
        "DISPLAY NAME",
        "OWNER",
        "DESIRED",
        "STATUS",
        "REASON",
        "AGE",
        "ENTERPRISE PROJECT",
        "AUTH",
        "NAMESPACE",
        "STATUS UPDATED",
    ] {
        assert!(header.contains(col), "missing {col}: {header}");
    }
}

#[test]
fn the_plugin_returns_every_workspace_once_over_small_pages_in_the_cloud_apis_json_shape() {
    let Fixture { c, .. } = shared();
    let all = plugin_json(c, &["-A", "--chunk-size", "7"]);
    assert_eq!(all["total_count"], N);
    assert_eq!(plugin_names(&all).len(), N, "small pages return every item exactly once");
    let w = &all["workspaces"][0];
    for key in [
        "id",
        "name",
        "display_name",
        "description",
        "owner",
        "admins",
        "enterprise_project_id",
        "auth_type",
        "status",
        "state_reason",
        "desired_state",
        "create_time",
        "update_time",
        "status_updated",
        "tags",
        "namespace",
        "is_default",
    ] {
        assert!(w.get(key).is_some(), "JSON lacks {key}: {w}");
    }
}

#[test]
fn the_plugin_filters_alone_and_combined() {
    let Fixture { c, specs, .. } = shared();
    let cases: Vec<(Vec<&str>, BTreeSet<String>)> = vec![
        (vec!["--status", "Failed"], expect(specs, |s| s.status == "Failed")),
        (vec!["--owner", "bob@example.com"], expect(specs, |s| s.owner == "bob@example.com")),
        (vec!["--enterprise-project", "prod-ml"], expect(specs, |s| s.project == "prod-ml")),
        (vec!["--auth-type", "internal"], expect(specs, |s| s.auth == "Internal")),
        (vec!["--name", "RANKING"], expect(specs, |s| s.display.contains("ranking"))),
        (
            vec!["--status", "Available", "--owner", "carol", "--enterprise-project", "research"],
            expect(specs, |s| s.status == "Available" && s.owner == "carol" && s.project == "research"),
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["-A"];
        a.extend_from_slice(&args);
        let got = plugin_json(c, &a);
        assert_eq!(plugin_names(&got), want, "plugin {args:?}");
        assert_eq!(got["total_count"], want.len(), "total for {args:?}");
    }
}

#[test]
fn the_plugin_finds_workspaces_by_one_id_or_several() {
    let Fixture { c, .. } = shared();
    let some = plugin_json(c, &["-A", "--limit", "3"]);
    let ids: Vec<String> =
        some["workspaces"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 3);
    let one = plugin_json(c, &["-A", "--id", &ids[0]]);
    assert_eq!(one["total_count"], 1);
    let three = plugin_json(c, &["-A", "--id", &ids.join(",")]);
    let found: BTreeSet<String> =
        three["workspaces"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(found, ids.iter().cloned().collect());
}

#[test]
fn the_plugin_sorts_and_pages_by_offset_or_page_number() {
    let Fixture { c, specs, .. } = shared();
    let mut by_name: Vec<String> = expect(specs, |s| s.ns == "org-c").into_iter().collect();
    by_name.sort();
    by_name.reverse();
    let page =
        plugin_json(c, &["-n", "org-c", "--sort-by", "name", "--order", "desc", "--offset", "10", "--limit", "5"]);
    let got: Vec<String> =
        page["workspaces"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, by_name[10..15].to_vec());
    assert_eq!(page["total_count"], by_name.len());
    let pg = plugin_json(
        c,
        &["-n", "org-c", "--sort-by", "name", "--order", "desc", "--page-number", "3", "--page-size", "5"],
    );
    assert_eq!(pg["workspaces"], page["workspaces"], "page 3 of 5 is offset 10, limit 5");
    let created = plugin_json(c, &["-A", "--sort-by", "create_time", "--limit", "50"]);
    let times: Vec<&str> =
        created["workspaces"].as_array().unwrap().iter().map(|w| w["create_time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|p| p[0] <= p[1]), "sorted by creation time");
}

#[test]
fn the_plugin_prints_a_table_with_a_count() {
    let Fixture { c, specs, .. } = shared();
    let out = plugin(c, &["list", "-n", "org-d", "--limit", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let total = expect(specs, |s| s.ns == "org-d").len();
    assert!(text.starts_with("NAME") && text.contains(&format!("3 of {total} workspaces")), "{text}");
}

/// Its own cluster: the fault it injects must not reach the other tests' lists. The plugin runs
/// as a ServiceAccount that may list the organization's Workspaces, with a token: on the real
/// control plane, such clients go through the fault-injecting proxy.
#[test]
fn the_plugin_restarts_a_list_whose_continue_token_expired() {
    let c = crate::common::cluster();
    crate::common::install_crd(&c);
    c.ok(&["create", "namespace", "org"]);
    let manifest: String = (0..250).map(|i| format!("---\n{}", ws(&format!("w{i:03}")).in_ns("org").yaml())).collect();
    c.apply(&manifest);
    c.ok(&["create", "serviceaccount", "reader", "-n", "org"]);
    c.ok(&["create", "role", "reader", "-n", "org", "--verb=list", "--resource=workspaces.workspaces.dev"]);
    c.ok(&["create", "rolebinding", "reader", "-n", "org", "--role=reader", "--serviceaccount=org:reader"]);
    let token = c.ok(&["create", "token", "reader", "-n", "org"]);
    let reader = c.save_kubeconfig("reader", &c.server.kubeconfig_with_token(token.trim()));
    c.server.faults().fail_next("list", "workspaces", 1, FaultKind::ExpireContinue);
    let before = c.server.counters().get("list", "workspaces");
    let args = ["list", "-o", "json", "-n", "org", "--chunk-size", "100"];
    let out = c.command(env!("CARGO_BIN_EXE_kubectl-workspaces"), &args).env("KUBECONFIG", reader).output();
    let out = out.expect("plugin runs");
    assert!(out.status.success(), "plugin: {}", String::from_utf8_lossy(&out.stderr));
    let restarted: Value = serde_json::from_slice(&out.stdout).expect("plugin prints JSON");
    assert_eq!(plugin_names(&restarted).len(), 250, "every Workspace, each once");
    assert!(c.server.counters().get("list", "workspaces") - before > 3, "the list started over after the 410");
}

#[test]
fn plugin_fails_cleanly() {
    let c = crate::common::cluster();
    for bad in [
        vec!["list", "--status", "Sleeping"],
        vec!["list", "--sort-by", "size"],
        vec!["list", "--page-size", "0"],
        vec!["list", "-o", "xml"],
    ] {
        let out = plugin(&c, &bad);
        assert!(!out.status.success(), "{bad:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one clear line for {bad:?}: {err}");
    }
    // No CRD installed: the list is refused and said so.
    let out = plugin(&c, &["list", "-A"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "), "{}", String::from_utf8_lossy(&out.stderr));
    // Unreachable cluster.
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    std::fs::write(&kc, devcluster::kubeconfig_for("http://127.0.0.1:9")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-workspaces"))
        .args(["list", "--kubeconfig", kc.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot reach the cluster") && err.trim().lines().count() == 1, "{err}");
}
