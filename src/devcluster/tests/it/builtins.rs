//! Built-in kinds as kubectl shows them on a real cluster: the printers' columns, and
//! ResourceQuota admission with its real messages.

use devcluster::testkit::Cluster;

/// The header line and the row of `name` in `kubectl get` output.
fn header_and_row(out: &str, name: &str) -> (Vec<String>, String) {
    let mut lines = out.lines();
    let header =
        lines.next().unwrap_or("").split("  ").map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    let row = lines.find(|l| l.split_whitespace().next() == Some(name)).unwrap_or("").to_string();
    (header, row)
}

#[test]
fn builtin_kinds_print_the_columns_of_kube_apiserver() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "team"]);
    c.apply(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: admins, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
- {kind: Group, name: ops, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: ci, namespace: tools}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: q, namespace: team}
spec: {hard: {pods: "3", limits.cpu: "2"}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-ns, namespace: team}
spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader, namespace: team}
spec: {holderIdentity: replica-a}
---
apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: team}
spec: {limits: [{type: Container, default: {cpu: 500m}}]}
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: w.1, namespace: team}
eventTime: "2026-01-01T00:00:00.000000Z"
type: Warning
reason: Failed
action: Failed
note: "Failed: the namespace is someone else's"
regarding: {kind: Workspace, name: w, namespace: team}
reportingController: workspace-operator
reportingInstance: pod-1
"#,
    );
    // kubectl's arguments, the row's name, the header, and cells of the row.
    type Case<'a> = (Vec<&'a str>, &'a str, Vec<&'a str>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (vec!["get", "ns"], "team", vec!["NAME", "STATUS", "AGE"], vec!["Active"]),
        (
            vec!["get", "rolebindings", "-n", "team", "-o", "wide"],
            "admins",
            vec!["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
            vec!["ClusterRole/admin", "alice", "ops", "tools/ci"],
        ),
        (
            vec!["get", "quota", "-n", "team"],
            "q",
            vec!["NAME", "REQUEST", "LIMIT", "AGE"],
            vec!["pods: 0/3", "limits.cpu: 0/2"],
        ),
        (vec!["get", "netpol", "-n", "team"], "same-ns", vec!["NAME", "POD-SELECTOR", "AGE"], vec!["<none>"]),
        (vec!["get", "leases", "-n", "team"], "leader", vec!["NAME", "HOLDER", "AGE"], vec!["replica-a"]),
        (vec!["get", "limitranges", "-n", "team"], "defaults", vec!["NAME", "CREATED AT"], vec!["T"]),
        (vec!["get", "sa", "-n", "team"], "default", vec!["NAME", "SECRETS", "AGE"], vec![]),
    ];
    for (args, name, header, cells) in cases {
        let out = c.ok(&args);
        let (got, row) = header_and_row(&out, name);
        assert_eq!(got, header, "kubectl {args:?}:\n{out}");
        for cell in cells {
            assert!(row.contains(cell), "kubectl {args:?}: {cell:?} not in {row:?}");
        }
    }
    // Events: LAST SEEN TYPE REASON OBJECT MESSAGE, from either Event API.
    let out = c.ok(&["get", "events", "-n", "team"]);
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "{out}");
    assert!(
        lines[1].contains("Warning") && lines[1].contains("workspace/w") && lines[1].contains("someone else's"),
        "{out}"
    );
    let wide = c.ok(&["get", "events.events.k8s.io", "-n", "team", "-o", "wide"]);
    assert!(wide.contains("workspace-operator, pod-1") && wide.contains("w.1"), "{wide}");
}

#[test]
fn resource_quota_admission_refuses_what_exceeds_a_quota() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "q"]);
    c.apply(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: blocked, namespace: q}\nspec: {hard: {pods: \"0\"}}\n",
    );
    let err = c.fails(&["run", "web", "-n", "q", "--image=nginx"]);
    assert!(
        err.contains(
            r#"pods "web" is forbidden: exceeded quota: blocked, requested: pods=1, used: pods=0, limited: pods=0"#
        ),
        "{err}"
    );
    // Counts and cpu: the quota's status says what is used, and the last that fits fits.
    c.apply("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: blocked, namespace: q}\nspec: {hard: {pods: \"1\", configmaps: \"1\", limits.cpu: \"1\"}}\n");
    let pod = |name: &str, cpu: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: q}}\nspec: {{containers: [{{name: app, image: nginx, resources: {{limits: {{cpu: {cpu}}}}}}}]}}\n"
        )
    };
    let err = String::from_utf8_lossy(&c.with_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Pod\nmetadata: {name: bare, namespace: q}\nspec: {containers: [{name: app, image: nginx}]}\n").stderr).into_owned();
    assert!(err.contains("failed quota: blocked: must specify limits.cpu for: app"), "{err}");
    c.apply(&pod("one", "500m"));
    assert_eq!(c.jsonpath(&["get", "quota", "blocked", "-n", "q"], "{.status.used.pods}"), "1");
    let err = String::from_utf8_lossy(&c.with_stdin(&["apply", "-f", "-"], &pod("two", "500m")).stderr).into_owned();
    assert!(err.contains("exceeded quota: blocked, requested: pods=1, used: pods=1, limited: pods=1"), "{err}");
    c.ok(&["create", "configmap", "a", "-n", "q"]);
    let err = c.fails(&["create", "configmap", "b", "-n", "q"]);
    assert!(
        err.contains("exceeded quota: blocked, requested: configmaps=1, used: configmaps=1, limited: configmaps=1"),
        "{err}"
    );
    // Deleting frees the quota again.
    c.ok(&["delete", "pod", "one", "-n", "q"]);
    c.apply(&pod("two", "1"));
}
