//! Deactivation that frees compute: what runs in a deactivated workspace stops, recorded first,
//! and comes back exactly as it was on reactivation; what someone changed meanwhile stays as they
//! set it; what cannot be stopped without losing it keeps running, and the status says so.

use std::time::Duration;

use crate::common::{Cluster, target_ns, wait_status, with_operator, ws};

/// A pod template that requests 100m of CPU and 64Mi of memory.
const TEMPLATE: &str = "template:\n    metadata: {labels: {app: APP}}\n    spec:\n      containers: [{name: c, image: busybox, command: [sleep, '3600'], resources: {requests: {cpu: 100m, memory: 64Mi}}}]";

fn template(app: &str, indent: &str) -> String {
    TEMPLATE.replace("APP", app).replace('\n', &format!("\n{indent}"))
}

/// Every kind of workload a team runs, in namespace `ns`.
fn workloads(c: &Cluster, ns: &str) {
    let selector = |app: &str| format!("selector: {{matchLabels: {{app: {app}}}}}");
    let manifest = [
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  replicas: 3\n  {}\n  {}\n", selector("web"), template("web", "")),
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: idle, namespace: {ns}}}\nspec:\n  replicas: 0\n  {}\n  {}\n", selector("idle"), template("idle", "")),
        format!("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db, namespace: {ns}}}\nspec:\n  replicas: 2\n  serviceName: db\n  {}\n  {}\n  volumeClaimTemplates: [{{metadata: {{name: data}}, spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}}}]\n", selector("db"), template("db", "")),
        format!("apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: bare, namespace: {ns}}}\nspec:\n  replicas: 1\n  {}\n  {}\n", selector("bare"), template("bare", "")),
        format!("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: agent, namespace: {ns}}}\nspec:\n  {}\n  {}\n", selector("agent"), template("agent", "")),
        format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: train, namespace: {ns}}}\nspec:\n  parallelism: 2\n  completions: 4\n  template:\n    metadata: {{labels: {{app: train}}}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: busybox, resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}}}]\n"),
        format!("apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: nightly, namespace: {ns}}}\nspec:\n  schedule: '0 3 * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: c, image: busybox}}]\n"),
        format!("apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: paused, namespace: {ns}}}\nspec:\n  schedule: '0 4 * * *'\n  suspend: true\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: c, image: busybox}}]\n"),
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: notebook, namespace: {ns}}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n"),
    ]
    .join("---\n");
    c.apply(&manifest);
}

fn replicas(c: &Cluster, ns: &str, kind: &str, name: &str) -> String {
    c.jsonpath(&["get", kind, name, "-n", ns], "{.spec.replicas}")
}

fn suspended(c: &Cluster, ns: &str, kind: &str, name: &str) -> String {
    c.jsonpath(&["get", kind, name, "-n", ns], "{.spec.suspend}")
}

fn set_desired(c: &Cluster, name: &str, state: &str) {
    let patch = format!("{{\"spec\":{{\"desiredState\":\"{state}\"}}}}");
    c.ok(&["patch", "ws", name, "--type=merge", "-p", &patch]);
}

/// Pods of `app` that exist (and are not being deleted), for the real control plane, where
/// the controllers make and remove them.
fn pods(c: &Cluster, ns: &str, app: &str) -> usize {
    let out = c.ok(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}:{.metadata.deletionTimestamp} {end}",
    ]);
    out.split_whitespace().filter(|p| p.ends_with(':')).count()
}

#[test]
fn deactivation_stops_what_runs_and_reactivation_gives_back_exactly_that() {
    let (c, _op) = with_operator();
    c.apply(&ws("busy").yaml());
    wait_status(&c, "default", "busy", "Available");
    let ns = target_ns(&c, "default", "busy");
    workloads(&c, &ns);
    let claims = || c.ok(&["get", "pvc", "-n", &ns, "-o", "name"]).lines().count();
    if crate::common::real() {
        c.eventually("the workloads' pods", Duration::from_secs(60), || {
            (pods(&c, &ns, "web") == 3 && pods(&c, &ns, "db") >= 1 && pods(&c, &ns, "train") == 2).then_some(())
        });
    }

    set_desired(&c, "busy", "Deactivated");
    wait_status(&c, "default", "busy", "Deactivated");
    let stopped = |path: &str| c.jsonpath(&["get", "ws", "busy"], path);
    c.eventually("every workload stopped", Duration::from_secs(20), || {
        let all = [
            replicas(&c, &ns, "deployment", "web"),
            replicas(&c, &ns, "statefulset", "db"),
            replicas(&c, &ns, "replicaset", "bare"),
        ];
        (all == ["0", "0", "0"]).then_some(())
    });
    assert_eq!(suspended(&c, &ns, "job", "train"), "true");
    assert_eq!(suspended(&c, &ns, "cronjob", "nightly"), "true");
    assert_eq!(replicas(&c, &ns, "deployment", "idle"), "0", "already at 0: left alone");
    let record = stopped("{range .status.workloads.stopped[*]}{.kind}/{.name}={.replicas} {end}");
    let mut record: Vec<&str> = record.split_whitespace().collect();
    record.sort();
    assert_eq!(record, ["CronJob/nightly=", "Deployment/web=3", "Job/train=", "ReplicaSet/bare=1", "StatefulSet/db=2"]);
    // What keeps running, and why: the bare pod (deleting it would lose it) and the DaemonSet.
    let kept = stopped("{.status.workloads.keptRunning} {.status.workloads.barePods} {.status.workloads.daemonSets}");
    assert_eq!(kept, "2 1 1");
    // 3 + 2 + 1 pods and a Job of 2, each of 100m and 64Mi.
    assert_eq!(stopped("{.status.workloads.freedCpu} {.status.workloads.freedMemory}"), "800m 512Mi");
    let listed = c.ok(&["get", "ws", "busy"]);
    assert!(listed.lines().next().is_some_and(|h| h.contains("STILL RUNNING")), "{listed}");
    assert!(listed.lines().nth(1).is_some_and(|l| l.split_whitespace().any(|w| w == "2")), "{listed}");
    if crate::common::real() {
        c.eventually("the pods gone", Duration::from_secs(60), || {
            (pods(&c, &ns, "web") == 0 && pods(&c, &ns, "db") == 0 && pods(&c, &ns, "train") == 0).then_some(())
        });
        // The StatefulSet's claims (made by its controller, one per pod it started) stay.
        assert!(claims() >= 1, "the StatefulSet's PersistentVolumeClaims are kept");
    }
    let kept_claims = claims();
    // A person's decisions while it is deactivated stand: a ReplicaSet scaled by hand.
    c.ok(&["scale", "replicaset", "bare", "-n", &ns, "--replicas=5"]);

    set_desired(&c, "busy", "Available");
    wait_status(&c, "default", "busy", "Available");
    c.eventually("the record dropped", Duration::from_secs(20), || {
        stopped("{.status.workloads}").is_empty().then_some(())
    });
    assert_eq!(replicas(&c, &ns, "deployment", "web"), "3");
    assert_eq!(replicas(&c, &ns, "statefulset", "db"), "2");
    assert_eq!(replicas(&c, &ns, "replicaset", "bare"), "5", "left as the person set it");
    assert_eq!(replicas(&c, &ns, "deployment", "idle"), "0");
    assert_eq!(suspended(&c, &ns, "job", "train"), "false");
    assert_eq!(suspended(&c, &ns, "cronjob", "nightly"), "false");
    assert_eq!(suspended(&c, &ns, "cronjob", "paused"), "true", "it was suspended before: it stays so");
    assert_eq!(claims(), kept_claims, "every claim still there");
    if crate::common::real() {
        c.eventually("the pods back", Duration::from_secs(60), || {
            (pods(&c, &ns, "web") == 3 && pods(&c, &ns, "train") == 2).then_some(())
        });
    }
}

#[test]
fn a_class_that_keeps_workloads_leaves_them_running() {
    let (c, _op) = with_operator();
    let keep = r#"{"spec": {"deactivation": {"workloads": "Keep"}}}"#;
    c.ok(&["patch", "workspaceclass", crate::common::DEFAULT_CLASS, "--type=merge", "-p", keep]);
    c.apply(&ws("kept").yaml());
    wait_status(&c, "default", "kept", "Available");
    let ns = target_ns(&c, "default", "kept");
    workloads(&c, &ns);
    set_desired(&c, "kept", "Deactivated");
    wait_status(&c, "default", "kept", "Deactivated");
    assert_eq!(replicas(&c, &ns, "deployment", "web"), "3");
    assert_eq!(suspended(&c, &ns, "cronjob", "nightly"), "false");
    assert_eq!(c.jsonpath(&["get", "ws", "kept"], "{.status.workloads}"), "", "nothing recorded");
}

/// Argo CD or Flux re-applying the Deployment (server-side, without `replicas`, as the GitOps
/// docs advise) neither scales it back up nor loses the record.
#[test]
fn a_gitops_reapply_without_replicas_keeps_the_workspace_stopped_and_the_record() {
    let (c, _op) = with_operator();
    c.apply(&ws("synced").yaml());
    wait_status(&c, "default", "synced", "Available");
    let ns = target_ns(&c, "default", "synced");
    let manifest = |replicas: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n{replicas}  selector: {{matchLabels: {{app: web}}}}\n  {}\n",
            template("web", "")
        )
    };
    let apply = |text: &str| {
        let out = c.with_stdin(&["apply", "--server-side", "--field-manager=argocd", "-f", "-"], text);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    apply(&manifest("  replicas: 4\n"));
    set_desired(&c, "synced", "Deactivated");
    wait_status(&c, "default", "synced", "Deactivated");
    c.eventually("stopped", Duration::from_secs(20), || (replicas(&c, &ns, "deployment", "web") == "0").then_some(()));
    // The sync after the operator's change, with replicas left to the cluster.
    apply(&manifest(""));
    assert_eq!(replicas(&c, &ns, "deployment", "web"), "0", "the re-apply did not scale it up");
    assert_eq!(c.jsonpath(&["get", "ws", "synced"], "{.status.workloads.stopped[0].replicas}"), "4");
    set_desired(&c, "synced", "Available");
    wait_status(&c, "default", "synced", "Available");
    c.eventually("back to 4", Duration::from_secs(20), || {
        (replicas(&c, &ns, "deployment", "web") == "4").then_some(())
    });
}

/// A Deployment a HorizontalPodAutoscaler scales comes back at the replicas it had: the
/// operator leaves the autoscaler alone (Kubernetes stops autoscaling a target at 0).
#[test]
fn an_autoscaled_deployment_comes_back_at_its_recorded_replicas() {
    let (c, _op) = with_operator();
    c.apply(&ws("scaled").yaml());
    wait_status(&c, "default", "scaled", "Available");
    let ns = target_ns(&c, "default", "scaled");
    workloads(&c, &ns);
    c.apply(&format!(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\n  minReplicas: 2\n  maxReplicas: 6\n  metrics: [{{type: Resource, resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}}}]\n"
    ));
    set_desired(&c, "scaled", "Deactivated");
    wait_status(&c, "default", "scaled", "Deactivated");
    c.eventually("stopped", Duration::from_secs(20), || (replicas(&c, &ns, "deployment", "web") == "0").then_some(()));
    set_desired(&c, "scaled", "Available");
    wait_status(&c, "default", "scaled", "Available");
    c.eventually("back", Duration::from_secs(20), || (replicas(&c, &ns, "deployment", "web") == "3").then_some(()));
    let hpa = c.jsonpath(&["get", "hpa", "web", "-n", &ns], "{.spec.minReplicas}/{.spec.maxReplicas}");
    assert_eq!(hpa, "2/6", "the autoscaler as it was");
}

/// Once deactivated, a workspace's resync reads and writes nothing: its status records what was
/// done to its workloads, so nothing is listed again.
#[test]
fn a_resync_of_a_deactivated_workspace_reads_and_writes_nothing() {
    let (c, op) = with_operator();
    c.apply(&ws("quiet").in_ns("default").yaml());
    wait_status(&c, "default", "quiet", "Available");
    let ns = target_ns(&c, "default", "quiet");
    workloads(&c, &ns);
    set_desired(&c, "quiet", "Deactivated");
    wait_status(&c, "default", "quiet", "Deactivated");
    c.eventually("stopped", Duration::from_secs(20), || (replicas(&c, &ns, "deployment", "web") == "0").then_some(()));
    let counters = c.server.counters();
    counters.start_log();
    let before = op.metrics.reconcile_count();
    c.ok(&["annotate", "ws", "quiet", "poke=1"]);
    op.wait_reconciles(before, 1);
    let requests: Vec<String> = (counters.take_log().into_iter())
        .filter(|r| r.user == crate::common::OPERATOR_USER && r.verb != "watch")
        .map(|r| format!("{} {}", r.verb, r.resource))
        .collect();
    assert!(requests.is_empty(), "a resync of a deactivated workspace sent {requests:?}");
}
