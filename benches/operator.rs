//! `make bench`: how fast the operator converges, how many API requests it spends, how much
//! memory it needs, and how fast list views are — against the in-process local API server, with
//! the operator as its own process (the release binary), as it runs in a cluster.
//!
//! Prints a table, then one line of `key=value` figures (read by scripts).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use devcluster::{Background, Captured, Handle};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use workspace_operator::crd::Workspace;
use workspace_operator::fixtures::ws;

const WORKSPACES: &str = "workspaces.dev/workspaces";
/// How long the operator is watched idle for its settled RSS: past two of jemalloc's 10 s decays
/// of freed pages.
const SETTLE: Duration = Duration::from_secs(25);

struct Operator {
    child: Child,
    metrics: String,
}

impl Operator {
    fn start(kubeconfig: &std::path::Path) -> Operator {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18080);
        // `BENCH_OPERATOR` runs another build of the operator against the same workload (A/B).
        let binary = std::env::var("BENCH_OPERATOR").unwrap_or(env!("CARGO_BIN_EXE_workspace-operator").into());
        let child = Command::new(binary)
            .args(["run", "--metrics-addr", &format!("127.0.0.1:{port}"), "--concurrency", "32"])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the operator");
        Operator { child, metrics: format!("127.0.0.1:{port}") }
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }

    /// RSS once the operator is idle: the lowest of samples over `span`, which covers more than
    /// one period in which its allocator returns freed pages to the system. What convergence
    /// left behind (scheduler queues, buffers) is then gone; the caches remain.
    fn settled_rss_mib(&self, span: Duration) -> f64 {
        let end = Instant::now() + span;
        let mut low = self.rss_mib();
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(500));
            low = low.min(self.rss_mib());
        }
        low
    }

    /// User plus system CPU the operator process has used so far, in milliseconds.
    fn cpu_ms(&self) -> f64 {
        stat_cpu_ms(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Is `/readyz` answering 200?
    fn ready(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(&self.metrics) else { return false };
        let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.starts_with("HTTP/1.1 200")
    }

    /// Completed reconciles, from the operator's own /metrics.
    fn reconciles(&self) -> u64 {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(&self.metrics) else { return 0 };
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.lines()
            .find(|l| l.starts_with("workspace_operator_reconciles_total "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_of(ws: &Value) -> &str {
    ws["status"]["status"].as_str().unwrap_or("")
}

/// Wait until every Workspace whose name starts with `prefix` is `status`; returns when each was
/// first seen so (polling the store in-process, which costs the server no request).
fn wait_all(state: &Handle, prefix: &str, n: usize, status: &str, timeout: Duration) -> HashMap<String, Instant> {
    let deadline = Instant::now() + timeout;
    let mut seen: HashMap<String, Instant> = HashMap::new();
    while seen.len() < n {
        let now = Instant::now();
        for ws in state.objects(WORKSPACES) {
            let name = ws["metadata"]["name"].as_str().unwrap_or("");
            if name.starts_with(prefix) && status_of(&ws) == status && !seen.contains_key(name) {
                seen.insert(name.to_string(), now);
            }
        }
        assert!(Instant::now() < deadline, "{prefix}: only {}/{n} reached {status} in {timeout:?}", seen.len());
        std::thread::sleep(Duration::from_millis(if n > 20_000 { 200 } else { 25 }));
    }
    seen
}

fn workspace(name: &str, ns: &str, i: usize) -> Workspace {
    let project = ["default", "research", "prod"][i % 3];
    ws(name)
        .in_ns(ns)
        .owner(&format!("user{}@example.com", i % 50))
        .enterprise_project(project)
        .limit("pods", "20")
        .build()
}

async fn create_workspaces(client: &kube::Client, ns: &str, prefix: &str, n: usize) -> HashMap<String, Instant> {
    let api: Api<Workspace> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("{prefix}{i:06}");
                api.create(&PostParams::default(), &workspace(&name, ns, i)).await.map(|_| (name, Instant::now()))
            }
        })
        .buffer_unordered(32)
        .try_collect()
        .await
        .expect("create workspaces")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Row(&'static str, String);

/// Record a figure, and show it at once: the whole run takes a while.
fn push(rows: &mut Vec<Row>, row: Row) {
    eprintln!("{:<75} {}", row.0, row.1);
    rows.push(row);
}

/// Mean time of a 500-item page selected by `labels`, over ten requests, decoded as kube-rs
/// clients do.
fn page_ms(rt: &tokio::runtime::Runtime, client: &kube::Client, labels: &str) -> f64 {
    let api: Api<Workspace> = Api::all(client.clone());
    let start = Instant::now();
    for _ in 0..10 {
        let page = rt.block_on(api.list(&ListParams::default().labels(labels).limit(500))).expect("page");
        assert_eq!(page.items.len(), 500, "{labels}");
    }
    start.elapsed().as_secs_f64() * 100.0
}

/// Workspaces as a user creates them, with the list labels the operator would add.
async fn create_labelled(client: &kube::Client, ns: &str, range: std::ops::Range<usize>) {
    let api: Api<Workspace> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(range)
        .map(|i| {
            let api = api.clone();
            async move {
                let mut ws = workspace(&format!("w{i:06}"), ns, i);
                ws.metadata.labels =
                    Some(workspace_operator::labels::list_labels(&ws, workspace_operator::crd::State::Available));
                api.create(&PostParams::default(), &ws).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create labelled workspaces");
}

/// Mean time of a 500-item filtered page as the server sends it: HTTP, and parsing into untyped
/// JSON to count the items, but no typed decoding.
fn raw_page_ms(rt: &tokio::runtime::Runtime, client: &kube::Client) -> f64 {
    let path = "/apis/workspaces.dev/v1alpha1/workspaces?labelSelector=workspaces.dev%2Fenterprise-project%3Dresearch&limit=500";
    let start = Instant::now();
    for _ in 0..10 {
        let req = hyper::Request::get(path).body(Vec::new()).expect("request");
        let body = rt.block_on(client.request_text(req)).expect("page");
        let page: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(page["items"].as_array().map(Vec::len), Some(500));
    }
    start.elapsed().as_secs_f64() * 100.0
}

/// Create 5,000 ConfigMaps (round `round`) in namespace `ns`, 32 in flight: the seconds taken.
async fn config_map_writes(client: &kube::Client, ns: &str, round: usize) -> f64 {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let n = 5_000;
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let cm = ConfigMap {
                    metadata: ObjectMeta { name: Some(format!("c{round}-{i}")), ..Default::default() },
                    ..Default::default()
                };
                api.create(&PostParams::default(), &cm).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("load");
    start.elapsed().as_secs_f64()
}

/// `n` RoleBindings in `ns` that carry the operator's labels but name a Workspace that does not
/// exist: what a workspace owner (who holds `admin` there) can create to flood the operator.
async fn flood_bindings(client: &kube::Client, ns: &str, n: usize) {
    let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let rb: RoleBinding = serde_json::from_value(json!({
                    "metadata": {"name": format!("flood-{i:06}"),
                        "labels": {"app.kubernetes.io/managed-by": "workspace-operator",
                            "workspaces.dev/workspace-namespace": "bench-1k", "workspaces.dev/workspace-name": "nobody"},
                        "annotations": {"workspaces.dev/workspace": "bench-1k/nobody"}},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "Group", "name": format!("team-{i}"), "apiGroup": "rbac.authorization.k8s.io"}]}))
                .expect("binding");
                api.create(&PostParams::default(), &rb).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("flood");
}

/// What a tenant can make the operator hold: `n` Workspaces in `ns_ws` with a 200 KB
/// annotation each (anyone who may write Workspaces), and `n` RoleBindings in the workspace
/// namespace `ns_rb` that carry the operator's labels and a 200 KB `workspaces.dev/workspace`
/// annotation (anyone who is `admin` there).
async fn hostile_objects(client: &kube::Client, ns_ws: &str, ns_rb: &str, n: usize) {
    let padding = "x".repeat(std::env::var("BENCH_PAD").ok().and_then(|v| v.parse().ok()).unwrap_or(200 * 1024));
    let workspaces: Api<Workspace> = Api::namespaced(client.clone(), ns_ws);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns_rb);
    futures::stream::iter(0..n)
        .map(|i| {
            let (workspaces, bindings, padding) = (workspaces.clone(), bindings.clone(), padding.clone());
            async move {
                let mut ws = workspace(&format!("bench-hostile-{i:04}"), ns_ws, i);
                ws.metadata.annotations = Some([("bench/padding".to_string(), padding.clone())].into());
                workspaces.create(&PostParams::default(), &ws).await?;
                let rb: RoleBinding = serde_json::from_value(json!({
                    "metadata": {"name": format!("forged-{i:04}"),
                        "labels": {"app.kubernetes.io/managed-by": "workspace-operator",
                            "workspaces.dev/workspace-namespace": "bench-1k", "workspaces.dev/workspace-name": "nobody"},
                        "annotations": {"workspaces.dev/workspace": format!("bench-1k/{padding}")}},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "Group", "name": format!("team-{i}"), "apiGroup": "rbac.authorization.k8s.io"}]}))
                .expect("binding");
                bindings.create(&PostParams::default(), &rb).await.map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("hostile objects");
}

/// The operator's settled RSS growth over the hostile objects (MiB), and how long 100 new
/// Workspaces then take to be Available (s).
fn hostile(rt: &tokio::runtime::Runtime, client: &kube::Client, state: &Handle, operator: &Operator) -> (f64, f64) {
    let target = state
        .objects(WORKSPACES)
        .iter()
        .find(|w| w["metadata"]["name"] == "bench-1k-000001")
        .and_then(|w| w["status"]["namespace"].as_str().map(String::from))
        .expect("a workspace namespace");
    let before = operator.settled_rss_mib(SETTLE);
    rt.block_on(make_namespace(client, "bench-hostile"));
    rt.block_on(hostile_objects(client, "bench-hostile", &target, 1_000));
    wait_all(state, "bench-hostile-", 1_000, "Available", Duration::from_secs(600));
    let start = Instant::now();
    rt.block_on(create_workspaces(client, "bench-hostile", "bench-after-hostile-", 100));
    wait_all(state, "bench-after-hostile-", 100, "Available", Duration::from_secs(300));
    let after_s = start.elapsed().as_secs_f64();
    (operator.settled_rss_mib(SETTLE) - before, after_s)
}

/// `n` Deployments of 2 replicas in each of `namespaces`, as a workspace's owner would run them.
async fn create_deployments(client: &kube::Client, namespaces: &[String], n: usize) {
    futures::stream::iter(namespaces.iter().flat_map(|ns| (0..n).map(move |i| (ns.clone(), i))))
        .map(|(ns, i)| {
            let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &ns);
            async move {
                let d = serde_json::from_value(json!({
                    "metadata": {"name": format!("app-{i}")},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                        "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                            "spec": {"containers": [{"name": "c", "image": "busybox",
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}))
                .expect("deployment");
                api.create(&PostParams::default(), &d).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("deployments");
}

async fn make_namespace(client: &kube::Client, name: &str) {
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    nss.create(&PostParams::default(), &ns).await.expect("namespace");
}

/// Where a captured request must wait for another: requests on one object or in one target
/// namespace go in order (a child after its namespace, a Workspace's status after its create);
/// the rest may pass each other, as the operator's concurrent reconciles do.
fn chain(c: &Captured) -> String {
    let path = c.uri.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // After /api/v1 or /apis/<group>/<version>.
    let rest: &[&str] = match parts.first() {
        Some(&"api") => parts.get(2..).unwrap_or_default(),
        _ => parts.get(3..).unwrap_or_default(),
    };
    let body_name =
        || serde_json::from_slice::<Value>(&c.body).ok().and_then(|v| v["metadata"]["name"].as_str().map(String::from));
    match rest {
        // A namespace: created by name (in the body), or labelled.
        ["namespaces"] => body_name().unwrap_or_default(),
        ["namespaces", name] => name.to_string(),
        ["namespaces", ns, "workspaces", name, ..] => format!("workspace {ns}/{name}"),
        ["namespaces", ns, "workspaces"] => format!("workspace {ns}/{}", body_name().unwrap_or_default()),
        ["namespaces", _, "events", ..] => format!("event {}", body_name().unwrap_or_default()),
        ["namespaces", ns, ..] => ns.to_string(),
        other => other.join("/"),
    }
}

/// A captured request as it can be sent to another server: resourceVersions are that server's
/// own, so a precondition on one is dropped, and a watch starts from now.
fn rebuilt(c: &Captured) -> (String, Vec<u8>) {
    let uri = match c.uri.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query.split('&').filter(|p| !p.starts_with("resourceVersion")).collect();
            format!("{path}?{}", kept.join("&"))
        }
        None => c.uri.clone(),
    };
    let mut body = c.body.to_vec();
    if let Ok(mut v) = serde_json::from_slice::<Value>(&c.body) {
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            if meta.remove("resourceVersion").is_some() {
                body = serde_json::to_vec(&v).unwrap_or(body);
            }
        } else if let Some(pre) = v.get_mut("preconditions").and_then(Value::as_object_mut) {
            // A delete's uid and version are the first server's.
            pre.clear();
            body = serde_json::to_vec(&v).unwrap_or(body);
        }
    }
    (uri, body)
}

/// `c` as it can be sent to the replay's server (see `rebuilt`), made before the clock starts.
fn prepared(c: Captured) -> Captured {
    let (uri, body) = rebuilt(&c);
    Captured { uri, body: body.into(), ..c }
}

async fn send(client: &kube::Client, c: &Captured) -> Option<kube::client::Body> {
    let mut req = hyper::Request::builder().method(c.method.as_str()).uri(c.uri.as_str());
    for (k, v) in [("content-type", &c.content_type), ("accept", &c.accept)] {
        if !v.is_empty() {
            req = req.header(k, v.as_str());
        }
    }
    let resp = client.send(req.body(kube::client::Body::from(c.body.clone())).ok()?).await.ok()?;
    resp.status().is_success().then(|| resp.into_body())
}

/// Send `work` (captured from the operator and the benchmark while 10,000 Workspaces converged)
/// to a fresh server set up as the first was, with the operator's watches open: the rate the
/// API server alone sustains for that work. Returns seconds and requests that failed.
/// The client runs on one thread of its own, as the operator does, so that its CPU can be read
/// and set beside the operator's: what the same requests and watches cost with nothing decoded.
fn replay(watches: &[Captured], work: Vec<Captured>) -> Replayed {
    std::thread::scope(|s| s.spawn(|| replay_on_this_thread(watches, work)).join().expect("replay thread"))
}

fn replay_on_this_thread(watches: &[Captured], work: Vec<Captured>) -> Replayed {
    use http_body_util::BodyExt;
    let rt = &tokio::runtime::Builder::new_current_thread().enable_all().build().expect("replay runtime");
    let server = Background::start().expect("replay server");
    let admin = rt.block_on(async { server.client() });
    let operator = rt.block_on(async {
        workspace_operator::dev::install_crds(&admin).await.expect("CRD");
        workspace_operator::dev::install_default_class(&admin).await.expect("default class");
        workspace_operator::dev::install_rbac(&admin).await.expect("RBAC");
        make_namespace(&admin, "bench-10k").await;
        let token = workspace_operator::dev::operator_token(&admin, 3600).await.expect("token");
        server.client_with_token(&token)
    });
    let operator_user = watches.first().map(|w| w.user.clone()).unwrap_or_default();
    let client_of = |c: &Captured| if c.user == operator_user { operator.clone() } else { admin.clone() };
    let (opened, mut open) = tokio::sync::mpsc::channel(watches.len().max(1));
    let drains: Vec<_> = watches
        .iter()
        .map(|w| {
            let (client, w, opened) = (client_of(w), prepared(w.clone()), opened.clone());
            rt.spawn(async move {
                let body = send(&client, &w).await;
                let _ = opened.send(()).await;
                if let Some(mut body) = body {
                    while let Some(Ok(_)) = body.frame().await {}
                }
            })
        })
        .collect();
    // Every watch open before the clock starts, as the operator's were.
    rt.block_on(async {
        for _ in 0..watches.len() {
            open.recv().await;
        }
    });
    const LANES: usize = 64;
    let mut lanes: Vec<Vec<Captured>> = vec![Vec::new(); LANES];
    for c in work.into_iter().filter(|c| !c.uri.contains("watch=true")) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        chain(&c).hash(&mut h);
        lanes[(h.finish() % LANES as u64) as usize].push(prepared(c));
    }
    let start = Instant::now();
    let cpu0 = stat_cpu_ms("/proc/thread-self/stat");
    let failed: usize = rt
        .block_on(futures::future::join_all(lanes.into_iter().map(|lane| {
            let (operator, admin, user) = (operator.clone(), admin.clone(), operator_user.clone());
            async move {
                let mut failed = 0;
                for c in &lane {
                    let client = if c.user == user { &operator } else { &admin };
                    match send(client, c).await {
                        Some(body) => drop(body.collect().await),
                        None => failed += 1,
                    }
                }
                failed
            }
        })))
        .into_iter()
        .sum();
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_ms = stat_cpu_ms("/proc/thread-self/stat") - cpu0;
    drains.iter().for_each(|d| d.abort());
    Replayed { elapsed, failed, cpu_ms }
}

struct Replayed {
    elapsed: f64,
    failed: usize,
    /// CPU of the client's thread while it sent the work.
    cpu_ms: f64,
}

/// utime + stime of a /proc `stat` file, in ms.
fn stat_cpu_ms(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): utime and
    // stime are the 12th and 13th, in clock ticks of 1/100 s on Linux.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let field = |i: usize| rest.split_whitespace().nth(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) * 10.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows: Vec<Row> = Vec::new();
    let mut figures: Vec<(&str, String)> = Vec::new();

    // `BENCH_ONLY=server`: the server's own figures, a minute instead of many.
    // `BENCH_ONLY=operator`: the operator from 1,000 to the backlog, without the server's
    // figures (for profiling the operator: a few minutes). `BENCH_ONLY=fleet`: the operator
    // through to 100,000, still without the server's figures (for its memory: a quarter hour).
    // `BENCH_ONLY=hostile`: 1,000 Workspaces, then what a tenant can make the operator hold.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let (server_writes_per_s, sa_writes_per_s, authz_overhead_pct, rbac_overhead_pct) = if only == "operator"
        || only == "fleet"
        || only == "hostile"
    {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    } else {
        // Server headroom, on a server of its own with one thread and nothing else running: simple
        // writes per second, then filtered pages with 10,000 and 100,000 Workspaces stored.
        let headroom = Background::start_on(1).expect("one-thread server");
        let one = rt.block_on(async { headroom.client() });
        rt.block_on(workspace_operator::dev::install_crds(&one)).expect("CRD");
        // The same writes as the cluster admin (system:masters: no RBAC evaluated) and as a
        // ServiceAccount that holds `edit` through a RoleBinding (its token and RBAC checked on
        // every request), in alternating rounds so that both meet the same machine.
        rt.block_on(make_namespace(&one, "load-admin"));
        let loader = rt.block_on(async {
            make_namespace(&one, "load-sa").await;
            let sas: Api<ServiceAccount> = Api::namespaced(one.clone(), "load-sa");
            let sa = ServiceAccount {
                metadata: ObjectMeta { name: Some("loader".into()), ..Default::default() },
                ..Default::default()
            };
            sas.create(&PostParams::default(), &sa).await.expect("service account");
            let binding: RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": "loader-edit"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"kind": "ServiceAccount", "name": "loader", "namespace": "load-sa"}]}))
            .expect("binding");
            Api::<RoleBinding>::namespaced(one.clone(), "load-sa")
                .create(&PostParams::default(), &binding)
                .await
                .expect("bind");
            headroom.client_with_token(&headroom.token_for("load-sa", "loader").expect("a token"))
        });
        // And a user with a client certificate and the same `edit`: RBAC evaluated, but the same
        // way of authenticating as the admin, which tells the authorizer's cost from the token's.
        let certified = rt.block_on(async {
            let binding: RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": "certified-edit"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"kind": "User", "name": "certified", "apiGroup": "rbac.authorization.k8s.io"}]}))
            .expect("binding");
            Api::<RoleBinding>::namespaced(one.clone(), "load-sa")
                .create(&PostParams::default(), &binding)
                .await
                .expect("bind");
            headroom.client_as("certified", &[])
        });
        let (mut admin_s, mut sa_s, mut cert_s) = (0.0, 0.0, 0.0);
        let rounds = 4;
        for round in 0..rounds {
            admin_s += rt.block_on(config_map_writes(&one, "load-admin", round));
            sa_s += rt.block_on(config_map_writes(&loader, "load-sa", round));
            cert_s += rt.block_on(config_map_writes(&certified, "load-sa", round + rounds));
        }
        let per_round = 5_000.0;
        let server_writes_per_s = rounds as f64 * per_round / admin_s;
        let sa_writes_per_s = rounds as f64 * per_round / sa_s;
        let cert_writes_per_s = rounds as f64 * per_round / cert_s;
        let authz_overhead_pct = 100.0 * (sa_s / admin_s - 1.0);
        let rbac_overhead_pct = 100.0 * (cert_s / admin_s - 1.0);
        push(
            &mut rows,
            Row("server, one thread: ConfigMap creates/s as admin (32 in flight)", format!("{server_writes_per_s:.0}")),
        );
        push(
            &mut rows,
            Row(
                "server, one thread: ConfigMap creates/s as a certified user with edit (RBAC)",
                format!("{cert_writes_per_s:.0} ({rbac_overhead_pct:+.1}% time per write)"),
            ),
        );
        push(
            &mut rows,
            Row(
                "server, one thread: ConfigMap creates/s as a ServiceAccount with edit (RBAC)",
                format!("{sa_writes_per_s:.0} ({authz_overhead_pct:+.1}% time per write)"),
            ),
        );
        rt.block_on(make_namespace(&one, "stored"));
        let mut stored = 0;
        for n in [10_000, 100_000] {
            rt.block_on(create_labelled(&one, "stored", stored..n));
            stored = n;
            push(
                &mut rows,
                Row(
                    if n == 10_000 {
                        "server, one thread: filtered page of 500 of 10,000 (ms, untyped JSON, mean of 10)"
                    } else {
                        "server, one thread: filtered page of 500 of 100,000 (ms, untyped JSON, mean of 10)"
                    },
                    format!("{:.1}", raw_page_ms(&rt, &one)),
                ),
            );
        }
        drop(headroom);
        (server_writes_per_s, sa_writes_per_s, authz_overhead_pct, rbac_overhead_pct)
    };
    if only == "server" {
        return;
    }
    let server = Background::start().expect("server");
    let state = server.handle().clone();
    let counters = server.counters();
    let client = rt.block_on(async { server.client() });
    rt.block_on(workspace_operator::dev::install_crds(&client)).expect("CRD");
    // The operator as deployed: the chart's ServiceAccount and RBAC.
    let token = rt.block_on(async {
        workspace_operator::dev::install_default_class(&client).await.expect("default class");
        workspace_operator::dev::install_rbac(&client).await.expect("RBAC");
        workspace_operator::dev::operator_token(&client, 24 * 3600).await.expect("token")
    });
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig_with_token(&token)).expect("kubeconfig");

    // Convergence of 1,000 and 10,000 Workspaces created at once. The server keeps every
    // request whole meanwhile: the operator's watches (opened at its start) and all the requests
    // of the 10,000, for the replay below.
    counters.start_capture();
    let operator = Operator::start(&kubeconfig);
    let mut watches: Vec<Captured> = Vec::new();
    let mut work: Vec<Captured> = Vec::new();
    let mut p50 = 0.0;
    let mut p99 = 0.0;
    let mut throughput = 0.0;
    let mut writes_per_ws = 0.0;
    let mut reads_per_ws = 0.0;
    let mut cpu_ms_per_ws = 0.0;
    let mut converge = HashMap::new();
    let sizes: &[(usize, &str)] =
        if only == "hostile" { &[(1_000, "bench-1k")] } else { &[(1_000, "bench-1k"), (10_000, "bench-10k")] };
    for &(n, ns) in sizes {
        rt.block_on(make_namespace(&client, ns));
        if n == 10_000 {
            let early = counters.take_capture();
            watches = early.into_iter().filter(|c| c.uri.contains("watch=true")).collect();
            // One of each: kube-runtime opens a watch again when one times out.
            let mut seen = std::collections::HashSet::new();
            watches.retain(|c| seen.insert(c.uri.split('?').next().unwrap_or_default().to_string()));
            counters.start_capture();
        }
        let (w0, r0) = (counters.writes(), counters.reads());
        let cpu0 = operator.cpu_ms();
        let start = Instant::now();
        let created = rt.block_on(create_workspaces(&client, ns, &format!("{ns}-"), n));
        let ready = wait_all(&state, &format!("{ns}-"), n, "Available", Duration::from_secs(900));
        let elapsed = start.elapsed().as_secs_f64();
        if n == 10_000 {
            work = counters.take_capture();
        }
        let mut latencies: Vec<f64> = ready
            .iter()
            .filter_map(|(k, t)| created.get(k).map(|c| t.saturating_duration_since(*c).as_secs_f64() * 1000.0))
            .collect();
        latencies.sort_by(|a, b| a.total_cmp(b));
        // The benchmark's own requests: n creates and one namespace.
        let op_writes = counters.writes().saturating_sub(w0 + n as u64 + 1);
        let op_reads = counters.reads().saturating_sub(r0);
        converge.insert(n, elapsed);
        let cpu_per_ws = (operator.cpu_ms() - cpu0) / n as f64;
        push(
            &mut rows,
            Row(
                if n == 1_000 {
                    "  operator CPU per workspace (ms), 1,000"
                } else {
                    "  operator CPU per workspace (ms), 10,000"
                },
                format!("{cpu_per_ws:.3}"),
            ),
        );
        if n == 10_000 {
            cpu_ms_per_ws = cpu_per_ws;
            p50 = percentile(&latencies, 0.5);
            p99 = percentile(&latencies, 0.99);
            throughput = n as f64 / elapsed;
            writes_per_ws = op_writes as f64 / n as f64;
            reads_per_ws = op_reads as f64 / n as f64;
        }
        push(
            &mut rows,
            Row(if n == 1_000 { "converge 1,000 (s)" } else { "converge 10,000 (s)" }, format!("{elapsed:.2}")),
        );
        push(
            &mut rows,
            Row(
                if n == 1_000 { "  p50 / p99 ready (ms), 1,000" } else { "  p50 / p99 ready (ms), 10,000" },
                format!("{:.0} / {:.0}", percentile(&latencies, 0.5), percentile(&latencies, 0.99)),
            ),
        );
        push(
            &mut rows,
            Row(
                if n == 1_000 {
                    "  operator writes / reads per workspace, 1,000"
                } else {
                    "  operator writes / reads per workspace, 10,000"
                },
                format!("{:.2} / {:.2}", op_writes as f64 / n as f64, op_reads as f64 / n as f64),
            ),
        );
    }
    if only == "hostile" {
        counters.take_capture();
        let (growth, after_s) = hostile(&rt, &client, &state, &operator);
        push(&mut rows, hostile_row(growth));
        push(&mut rows, Row("  then 100 new Workspaces Available (s)", format!("{after_s:.2}")));
        print(&rows, &[("hostile_rss_mib", format!("{growth:.1}")), ("after_hostile_100_s", format!("{after_s:.2}"))]);
        return;
    }
    push(
        &mut rows,
        Row(
            "client: typed filtered page of 500 of 11,000 Workspaces, operator running (ms)",
            format!("{:.1}", page_ms(&rt, &client, "workspaces.dev/enterprise-project=research")),
        ),
    );
    let events_per_ws = counters.get("create", "events") as f64 / 11_000.0;
    push(&mut rows, Row("  of which Event creates per workspace", format!("{events_per_ws:.2}")));
    // The real ceiling: the same requests from a minimal client against a fresh server.
    let captured = work.len();
    let replayed = replay(&watches, work);
    let (replay_s, replay_failed) = (replayed.elapsed, replayed.failed);
    let limit_ws_per_s = 10_000.0 / replay_s;
    let replay_cpu_ms_per_ws = replayed.cpu_ms / 10_000.0;
    let server_fraction = throughput / limit_ws_per_s;
    push(
        &mut rows,
        Row(
            "replay: the 10,000's requests, minimal client, fresh server (Workspaces/s)",
            format!(
                "{limit_ws_per_s:.0} ({captured} requests in {replay_s:.1} s, {replay_failed} failed, {} watches)",
                watches.len()
            ),
        ),
    );
    push(&mut rows, Row("  operator rate / replay rate (server_fraction)", format!("{server_fraction:.2}")));
    push(
        &mut rows,
        Row(
            "  replay client CPU per workspace (ms), nothing decoded, creates included (thread busy)",
            format!("{replay_cpu_ms_per_ws:.3} ({:.0}%)", replayed.cpu_ms / 10.0 / replay_s),
        ),
    );
    let rss_10k = operator.rss_mib();
    push(&mut rows, Row("operator RSS with 11,000 Workspaces cached (MiB)", format!("{rss_10k:.1}")));

    // A full resync: a restarted operator reconciles every converged Workspace.
    drop(operator);
    let w0 = counters.writes();
    let operator = Operator::start(&kubeconfig);
    let deadline = Instant::now() + Duration::from_secs(600);
    while operator.reconciles() < 11_000 {
        assert!(Instant::now() < deadline, "resync did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let resync_writes = counters.writes() - w0;
    push(&mut rows, Row("writes by a full resync of 11,000 converged Workspaces", resync_writes.to_string()));

    // Transitions: 1,000 Deactivated, then Available again, each running three Deployments that
    // deactivation scales to 0 and reactivation back.
    let namespaces: Vec<String> = (state.objects(WORKSPACES).iter())
        .filter(|w| w["metadata"]["namespace"] == "bench-1k")
        .filter_map(|w| w["status"]["namespace"].as_str().map(String::from))
        .collect();
    rt.block_on(create_deployments(&client, &namespaces, 3));
    let api: Api<Workspace> = Api::namespaced(client.clone(), "bench-1k");
    let set_state = |desired: &'static str| {
        rt.block_on(async {
            futures::stream::iter(0..1000)
                .map(|i| {
                    let api = api.clone();
                    async move {
                        api.patch(
                            &format!("bench-1k-{i:06}"),
                            &PatchParams::default(),
                            &Patch::Merge(json!({"spec": {"desiredState": desired}})),
                        )
                        .await
                        .map(|_| ())
                    }
                })
                .buffer_unordered(32)
                .try_collect::<Vec<_>>()
                .await
                .expect("patch");
        })
    };
    let (w0, r0) = (counters.writes(), counters.reads());
    let start = Instant::now();
    set_state("Deactivated");
    wait_all(&state, "bench-1k-", 1000, "Deactivated", Duration::from_secs(300));
    let deactivate_s = start.elapsed().as_secs_f64();
    let deactivate_writes = (counters.writes() - w0 - 1000) as f64 / 1000.0;
    let deactivate_reads = (counters.reads() - r0) as f64 / 1000.0;
    let (w0, r0) = (counters.writes(), counters.reads());
    let start = Instant::now();
    set_state("Available");
    wait_all(&state, "bench-1k-", 1000, "Available", Duration::from_secs(300));
    let reactivate_s = start.elapsed().as_secs_f64();
    let reactivate_writes = (counters.writes() - w0 - 1000) as f64 / 1000.0;
    let reactivate_reads = (counters.reads() - r0) as f64 / 1000.0;
    push(
        &mut rows,
        Row(
            "deactivate 1,000 with 3 Deployments each (s) / operator writes / reads per workspace",
            format!("{deactivate_s:.2} / {deactivate_writes:.2} / {deactivate_reads:.2}"),
        ),
    );
    push(
        &mut rows,
        Row(
            "reactivate 1,000 (s) / operator writes / reads per workspace",
            format!("{reactivate_s:.2} / {reactivate_writes:.2} / {reactivate_reads:.2}"),
        ),
    );

    // A cold start over a backlog: 10,000 Workspaces stored while no operator runs (an install
    // over Git-managed objects), then the operator started.
    drop(operator);
    rt.block_on(make_namespace(&client, "bench-backlog"));
    rt.block_on(create_workspaces(&client, "bench-backlog", "bench-backlog-", 10_000));
    let start = Instant::now();
    let operator = Operator::start(&kubeconfig);
    wait_all(&state, "bench-backlog-", 10_000, "Available", Duration::from_secs(900));
    let backlog_s = start.elapsed().as_secs_f64();
    let backlog_cpu_s = operator.cpu_ms() / 1000.0;
    push(
        &mut rows,
        Row(
            "backlog: start over 10,000 new Workspaces, all Available (s) / operator CPU (s)",
            format!("{backlog_s:.2} / {backlog_cpu_s:.2}"),
        ),
    );
    if only == "operator" {
        print(
            &rows,
            &[
                ("cpu_ms_per_workspace", format!("{cpu_ms_per_ws:.3}")),
                ("replay_cpu_ms_per_workspace", format!("{replay_cpu_ms_per_ws:.3}")),
                ("backlog_10000_s", format!("{backlog_s:.2}")),
                ("rss_10k_mib", format!("{rss_10k:.1}")),
            ],
        );
        return;
    }

    // A flood: 20,000 RoleBindings with the operator's labels, made by a workspace owner in their
    // own namespace; then 100 new Workspaces must still converge.
    let rss_before = operator.rss_mib();
    let flooded = state
        .objects(WORKSPACES)
        .iter()
        .find(|w| w["metadata"]["name"] == "bench-1k-000001")
        .and_then(|w| w["status"]["namespace"].as_str().map(String::from))
        .expect("a workspace namespace");
    let start = Instant::now();
    rt.block_on(flood_bindings(&client, &flooded, 20_000));
    let flood_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    rt.block_on(create_workspaces(&client, "bench-backlog", "bench-after-flood-", 100));
    wait_all(&state, "bench-after-flood-", 100, "Available", Duration::from_secs(300));
    let after_flood_s = start.elapsed().as_secs_f64();
    let flood_rss_mib = operator.rss_mib() - rss_before;
    push(
        &mut rows,
        Row(
            "flood: 20,000 labelled RoleBindings in one namespace: RSS growth (MiB)",
            format!("{flood_rss_mib:.1} (created in {flood_s:.1} s)"),
        ),
    );
    push(&mut rows, Row("  then 100 new Workspaces Available (s)", format!("{after_flood_s:.2}")));
    let (hostile_rss_mib, after_hostile_s) = hostile(&rt, &client, &state, &operator);
    push(&mut rows, hostile_row(hostile_rss_mib));
    push(&mut rows, Row("  then 100 new Workspaces Available (s)", format!("{after_hostile_s:.2}")));

    // 100,000 Workspaces: memory of the cache, and list views over them.
    let big = 100_000 - 21_100;
    let rss_after_backlog = operator.rss_mib();
    let settled_before = operator.settled_rss_mib(SETTLE);
    rt.block_on(make_namespace(&client, "bench-100k"));
    let start = Instant::now();
    rt.block_on(create_workspaces(&client, "bench-100k", "bench-100k-", big));
    wait_all(&state, "bench-100k-", big, "Available", Duration::from_secs(3600));
    let converge_100k = start.elapsed().as_secs_f64();
    push(&mut rows, Row("converge 78,900 more, to 100,000 (s)", format!("{converge_100k:.1}")));
    let rss_100k = operator.rss_mib();
    // From 21,100 to 100,000 cached: the growth per Workspace with its children.
    let bytes_per_ws = (rss_100k - rss_after_backlog) * 1048576.0 / big as f64;
    let rss_100k_settled = operator.settled_rss_mib(SETTLE);
    let bytes_per_ws_settled = (rss_100k_settled - settled_before) * 1048576.0 / big as f64;
    push(&mut rows, Row("operator RSS with 100,000 Workspaces cached (MiB)", format!("{rss_100k:.1}")));
    push(
        &mut rows,
        Row("  bytes per cached Workspace with its children (21,100 to 100,000)", format!("{bytes_per_ws:.0}")),
    );
    push(
        &mut rows,
        Row(
            "  the same, settled: RSS (MiB) / bytes per Workspace",
            format!("{rss_100k_settled:.1} / {bytes_per_ws_settled:.0}"),
        ),
    );

    // A restart over 100,000 converged Workspaces: time until ready and every one reconciled,
    // and the writes that costs (none are needed).
    drop(operator);
    let w0 = counters.writes();
    let start = Instant::now();
    let operator = Operator::start(&kubeconfig);
    let deadline = Instant::now() + Duration::from_secs(1800);
    while !operator.ready() {
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready_s = start.elapsed().as_secs_f64();
    while operator.reconciles() < 100_000 {
        assert!(Instant::now() < deadline, "the restart did not reconcile every Workspace");
        std::thread::sleep(Duration::from_millis(100));
    }
    let restart_100k_s = start.elapsed().as_secs_f64();
    let restart_writes = counters.writes() - w0;
    push(
        &mut rows,
        Row(
            "restart over 100,000 converged: ready (s) / all reconciled (s) / writes",
            format!("{ready_s:.2} / {restart_100k_s:.1} / {restart_writes}"),
        ),
    );
    drop(operator);

    // List views: the first page and the whole list, as `kubectl workspaces list` fetches them.
    let api: Api<Workspace> = Api::all(client.clone());
    let start = Instant::now();
    let page = rt
        .block_on(api.list(&ListParams::default().labels("workspaces.dev/status=Available").limit(500)))
        .expect("page");
    let first_page_ms = start.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(page.items.len(), 500);
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-workspaces"))
        .args(["list", "-A", "--status", "Available", "--chunk-size", "500", "--limit", "10", "-o", "json"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("plugin");
    let list_full_ms = start.elapsed().as_secs_f64() * 1000.0;
    let listed: Value = serde_json::from_slice(&out.stdout).expect("plugin JSON");
    assert_eq!(listed["total_count"], 100_000);
    push(&mut rows, Row("list: first page of 500, status=Available, of 100,000 (ms)", format!("{first_page_ms:.1}")));
    push(
        &mut rows,
        Row("list: kubectl workspaces list --status Available, all 100,000 (ms)", format!("{list_full_ms:.0}")),
    );
    push(
        &mut rows,
        Row(
            "client: typed filtered page of 500 of 100,000 Workspaces (ms)",
            format!("{:.1}", page_ms(&rt, &client, "workspaces.dev/enterprise-project=research")),
        ),
    );

    figures.extend([
        ("converge_1000_s", format!("{:.2}", converge[&1_000])),
        ("converge_10000_s", format!("{:.2}", converge[&10_000])),
        ("throughput_ws_per_s", format!("{throughput:.0}")),
        ("p50_ready_ms", format!("{p50:.0}")),
        ("p99_ready_ms", format!("{p99:.0}")),
        ("writes_per_workspace", format!("{writes_per_ws:.2}")),
        ("reads_per_workspace", format!("{reads_per_ws:.2}")),
        ("resync_writes", resync_writes.to_string()),
        ("deactivate_1000_s", format!("{deactivate_s:.2}")),
        ("deactivate_writes_per_workspace", format!("{deactivate_writes:.2}")),
        ("reactivate_1000_s", format!("{reactivate_s:.2}")),
        ("reactivate_writes_per_workspace", format!("{reactivate_writes:.2}")),
        ("rss_10k_mib", format!("{rss_10k:.1}")),
        ("rss_100k_mib", format!("{rss_100k:.1}")),
        ("bytes_per_workspace", format!("{bytes_per_ws:.0}")),
        ("rss_100k_settled_mib", format!("{rss_100k_settled:.1}")),
        ("bytes_per_workspace_settled", format!("{bytes_per_ws_settled:.0}")),
        ("cpu_ms_per_workspace", format!("{cpu_ms_per_ws:.3}")),
        ("replay_cpu_ms_per_workspace", format!("{replay_cpu_ms_per_ws:.3}")),
        ("backlog_10000_s", format!("{backlog_s:.2}")),
        ("flood_rss_mib", format!("{flood_rss_mib:.1}")),
        ("hostile_rss_mib", format!("{hostile_rss_mib:.1}")),
        ("restart_100k_ready_s", format!("{ready_s:.2}")),
        ("restart_100k_writes", restart_writes.to_string()),
        ("list_first_page_ms", format!("{first_page_ms:.1}")),
        ("list_full_ms", format!("{list_full_ms:.0}")),
        ("server_writes_per_s", format!("{server_writes_per_s:.0}")),
        ("server_writes_per_s_sa", format!("{sa_writes_per_s:.0}")),
        ("authz_overhead_pct", format!("{authz_overhead_pct:.1}")),
        ("rbac_overhead_pct", format!("{rbac_overhead_pct:.1}")),
        ("limit_ws_per_s", format!("{limit_ws_per_s:.0}")),
        ("server_fraction", format!("{server_fraction:.2}")),
    ]);
    print(&rows, &figures);
}

fn hostile_row(growth: f64) -> Row {
    Row(
        "hostile: 1,000 Workspaces + 1,000 forged RoleBindings, 200 KB annotations each: settled RSS growth (MiB)",
        format!("{growth:.1}"),
    )
}

fn print(rows: &[Row], figures: &[(&str, String)]) {
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!(
        "workspace-operator benchmark ({} cores)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    for Row(k, v) in rows {
        println!("{k:<width$}  {v}");
    }
    println!("{}", figures.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
}
