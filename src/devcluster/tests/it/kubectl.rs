//! The local API server, driven by the real kubectl binary with a CRD of the tests' own.

use std::time::Duration;

use devcluster::testkit::Cluster;

use crate::widgets::{WIDGET_CRD, widget};

fn with_widgets() -> Cluster {
    let c = Cluster::start();
    c.apply(WIDGET_CRD);
    c.ok(&["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=10s"]);
    c
}

#[test]
fn thousand_objects_listed_selected_and_paged() {
    let c = with_widgets();
    c.ok(&["create", "namespace", "bulk"]);
    let colors = ["red", "green", "blue"];
    let mut manifest = String::new();
    for i in 0..1200 {
        let tier = if i % 2 == 0 { "web" } else { "db" };
        let env = ["prod", "dev", "test"][i % 3];
        manifest.push_str("---\n");
        manifest.push_str(&widget(
            &format!("w{i:04}"),
            "bulk",
            (i % 10 + 1) as i64,
            colors[i % 3],
            &[("tier", tier), ("env", env)],
        ));
    }
    let out = c.with_stdin(&["create", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let names = c.ok(&["get", "wg", "-n", "bulk", "-o", "name"]);
    assert_eq!(names.lines().count(), 1200);
    let count = |sel: &str| c.ok(&["get", "wg", "-n", "bulk", "-l", sel, "-o", "name"]).lines().count();
    assert_eq!(count("tier=web"), 600);
    assert_eq!(count("tier==web"), 600);
    assert_eq!(count("tier!=web"), 600);
    assert_eq!(count("env in (prod,dev)"), 800);
    assert_eq!(count("env notin (prod,dev)"), 400);
    assert_eq!(count("tier"), 1200);
    assert_eq!(count("!tier"), 0);
    assert_eq!(count("tier=web,env=prod"), 200);
    let err = c.fails(&["get", "wg", "-n", "bulk", "-l", "tier in web"]);
    assert!(
        err.contains("unable to parse requirement") || err.contains("BadRequest") || err.contains("found"),
        "{err}"
    );

    let one = c.ok(&["get", "wg", "-n", "bulk", "--field-selector", "metadata.name=w0007", "-o", "name"]);
    assert_eq!(one.trim(), "widget.example.com/w0007");
    // A CRD's selectableFields, with = and !=.
    assert_eq!(
        c.ok(&["get", "wg", "-n", "bulk", "--field-selector", "spec.color=green", "-o", "name"]).lines().count(),
        400
    );
    assert_eq!(
        c.ok(&["get", "wg", "-n", "bulk", "--field-selector", "spec.color!=green", "-o", "name"]).lines().count(),
        800
    );
    let err = c.fails(&["get", "wg", "-n", "bulk", "--field-selector", "spec.mode=small"]);
    assert!(err.contains("field label not supported: spec.mode"), "{err}");

    // Paging: nothing lost, nothing duplicated.
    let paged = c.ok(&["get", "wg", "-n", "bulk", "--chunk-size=7", "-o", "name"]);
    let mut seen: Vec<&str> = paged.lines().collect();
    assert_eq!(seen.len(), 1200);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1200);
    let paged_sel = c.ok(&["get", "wg", "-n", "bulk", "--chunk-size=13", "-l", "env=dev", "-o", "name"]);
    assert_eq!(paged_sel.lines().count(), 400);

    for fmt in ["yaml", "json"] {
        let out = c.ok(&["get", "wg", "w0001", "-n", "bulk", "-o", fmt]);
        assert!(out.contains("w0001") && out.contains("resourceVersion"), "{out}");
    }
}

#[test]
fn table_columns_defaults_and_admission_messages() {
    let c = with_widgets();
    c.apply(&widget("a", "default", 3, "blue", &[]));
    let table = c.ok(&["get", "wg", "a"]);
    let header = table.lines().next().unwrap_or("");
    for col in ["NAME", "SIZE", "COLOR", "PHASE", "AGE"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(!header.contains("MODE"), "priority-1 columns only with -o wide: {table}");
    assert!(c.ok(&["get", "wg", "a", "-o", "wide"]).lines().next().unwrap_or("").contains("MODE"));
    // Defaults appear on created objects.
    assert_eq!(c.jsonpath(&["get", "wg", "a"], "{.spec.mode}"), "small");

    let bad = |manifest: &str| {
        let out = c.with_stdin(&["apply", "-f", "-"], manifest);
        assert!(!out.status.success(), "should be refused: {manifest}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = bad(&widget("b", "default", 11, "red", &[]));
    assert!(
        err.contains("The Widget \"b\" is invalid") && err.contains("spec: Invalid value: \"object\": size too big"),
        "{err}"
    );
    let err = bad(&widget("b", "default", 0, "red", &[]));
    assert!(
        err.contains("spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"),
        "{err}"
    );
    let err = bad(&widget("b", "default", 1, "pink", &[]));
    assert!(
        err.contains("spec.color: Unsupported value: \"pink\": supported values: \"red\", \"green\", \"blue\""),
        "{err}"
    );
    let err = bad("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: b}\nspec: {size: 1, name: NOPE}\n");
    assert!(err.contains("spec.name: Invalid value: \"NOPE\": spec.name in body should match '^[a-z]+$'"), "{err}");
    let err =
        bad("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: b}\nspec: {size: 1, tags: [a, b, c, d]}\n");
    assert!(err.contains("spec.tags: Too many: 4: must have at most 3 items"), "{err}");
    let err = bad("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: b}\nspec: {color: red}\n");
    assert!(err.contains("spec.size: Required value"), "{err}");
    let err = bad("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: b}\nspec: {size: \"x\"}\n");
    assert!(err.contains("spec.size in body must be of type integer"), "{err}");

    // Unknown fields: refused under kubectl's default strict validation, pruned without it.
    let unknown = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: u}\nspec: {size: 1, bogus: 1}\n";
    let err = bad(unknown);
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
    let out = c.with_stdin(&["apply", "--validate=false", "-f", "-"], unknown);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!c.jsonpath(&["get", "wg", "u"], "{.spec}").contains("bogus"));

    // Immutable field through oldSelf.
    c.apply("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: s}\nspec: {size: 1, serial: abc}\n");
    let err = bad("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: s}\nspec: {size: 1, serial: xyz}\n");
    assert!(err.contains("spec.serial: Invalid value: \"string\": serial is immutable"), "{err}");
}

#[test]
fn writes_patches_and_concurrency_control() {
    let c = with_widgets();
    // Client-side apply twice: create, then update.
    c.apply(&widget("p", "default", 2, "red", &[]));
    c.apply(&widget("p", "default", 4, "red", &[]));
    assert_eq!(c.jsonpath(&["get", "wg", "p"], "{.spec.size}"), "4");

    c.ok(&["label", "wg", "p", "team=x"]);
    c.ok(&["annotate", "wg", "p", "note=hello"]);
    assert_eq!(c.jsonpath(&["get", "wg", "p"], "{.metadata.labels.team}"), "x");
    c.ok(&["patch", "wg", "p", "--type=merge", "-p", "{\"spec\":{\"size\":5}}"]);
    c.ok(&["patch", "wg", "p", "--type=json", "-p", "[{\"op\":\"replace\",\"path\":\"/spec/size\",\"value\":6}]"]);
    assert_eq!(c.jsonpath(&["get", "wg", "p"], "{.spec.size}"), "6");
    let err =
        c.fails(&["patch", "wg", "p", "--type=json", "-p", "[{\"op\":\"test\",\"path\":\"/spec/size\",\"value\":1}]"]);
    assert!(err.contains("Invalid") || err.contains("rejected"), "{err}");
    let err = c.fails(&["patch", "wg", "p", "-p", "{\"spec\":{\"size\":7}}"]);
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("unknown format"),
        "strategic merge refused on CRs: {err}"
    );

    // Status subresource: spec ignored there, status ignored on the main resource.
    c.ok(&[
        "patch",
        "wg",
        "p",
        "--subresource=status",
        "--type=merge",
        "-p",
        "{\"status\":{\"phase\":\"Ready\"},\"spec\":{\"size\":9}}",
    ]);
    assert_eq!(c.jsonpath(&["get", "wg", "p"], "{.status.phase}/{.spec.size}/{.metadata.generation}"), "Ready/6/4");

    // Server-side apply, and a dry run that stores nothing.
    let ssa = c.with_stdin(&["apply", "--server-side", "-f", "-"], &widget("q", "default", 3, "green", &[]));
    assert!(ssa.status.success(), "{}", String::from_utf8_lossy(&ssa.stderr));
    let dry = c.with_stdin(&["create", "--dry-run=server", "-f", "-"], &widget("dry", "default", 3, "green", &[]));
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert!(c.fails(&["get", "wg", "dry"]).contains("NotFound"));

    // Replace with a stale object: conflict.
    let stale = c.ok(&["get", "wg", "q", "-o", "yaml"]);
    c.ok(&["patch", "wg", "q", "--type=merge", "-p", "{\"spec\":{\"size\":4}}"]);
    let out = c.with_stdin(&["replace", "-f", "-"], &stale);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the object has been modified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Two managers applying the same field conflict; a field dropped from an apply is removed.
    let m1 = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: r}\nspec: {size: 2, name: abc}\n";
    assert!(c.with_stdin(&["apply", "--server-side", "--field-manager=one", "-f", "-"], m1).status.success());
    let m2 = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: r}\nspec: {size: 3}\n";
    let out = c.with_stdin(&["apply", "--server-side", "--field-manager=two", "-f", "-"], m2);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("conflict"), "{}", String::from_utf8_lossy(&out.stderr));
    let m1b = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: r}\nspec: {size: 2}\n";
    assert!(c.with_stdin(&["apply", "--server-side", "--field-manager=one", "-f", "-"], m1b).status.success());
    assert_eq!(c.jsonpath(&["get", "wg", "r"], "{.spec.name}"), "");
}

#[test]
fn wait_watch_finalizers_and_namespace_cascade() {
    let c = with_widgets();
    c.ok(&["create", "namespace", "tmp"]);
    c.apply(&widget("f", "tmp", 2, "red", &[]));
    c.ok(&[
        "patch",
        "wg",
        "f",
        "-n",
        "tmp",
        "--type=merge",
        "-p",
        "{\"metadata\":{\"finalizers\":[\"example.com/hold\"]}}",
    ]);

    // get -w sees a change made after it started.
    let mut watch = std::process::Command::new("kubectl")
        .args(["get", "wg", "-n", "tmp", "-w", "--output-watch-events", "--request-timeout=20s"])
        .env("KUBECONFIG", c.kubeconfig())
        .env("HOME", c.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    c.ok(&["patch", "wg", "f", "-n", "tmp", "--type=merge", "-p", "{\"spec\":{\"size\":3}}"]);
    c.ok(&["wait", "wg/f", "-n", "tmp", "--for=jsonpath={.spec.size}=3", "--timeout=10s"]);

    // Deletion held by a finalizer, then released.
    c.ok(&["delete", "wg", "f", "-n", "tmp", "--wait=false"]);
    assert!(!c.jsonpath(&["get", "wg", "f", "-n", "tmp"], "{.metadata.deletionTimestamp}").is_empty());
    c.ok(&["patch", "wg", "f", "-n", "tmp", "--type=merge", "-p", "{\"metadata\":{\"finalizers\":null}}"]);
    c.eventually("widget gone", Duration::from_secs(10), || {
        c.kubectl(&["get", "wg", "f", "-n", "tmp"]).status.success().then_some(()).xor(Some(()))
    });
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("watch output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("MODIFIED") && text.contains("DELETED"), "watch saw: {text}");

    // Namespace deletion cascades to everything in it.
    c.apply(&widget("g", "tmp", 2, "red", &[]));
    c.ok(&["create", "configmap", "cm", "-n", "tmp", "--from-literal=a=b"]);
    c.ok(&["create", "secret", "generic", "s", "-n", "tmp", "--from-literal=a=b"]);
    c.ok(&["delete", "namespace", "tmp", "--timeout=20s"]);
    assert!(c.fails(&["get", "namespace", "tmp"]).contains("NotFound"));
    assert!(c.ok(&["get", "wg,cm,secret", "-n", "tmp", "-o", "name"]).trim().is_empty());
}

#[test]
fn imperative_creates_send_protobuf() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "pb"]);
    c.ok(&["create", "secret", "generic", "s1", "-n", "pb", "--from-literal=password=hunter2"]);
    c.ok(&["create", "configmap", "c1", "-n", "pb", "--from-literal=k=v"]);
    c.ok(&["create", "serviceaccount", "sa1", "-n", "pb"]);
    c.ok(&["create", "quota", "q1", "-n", "pb", "--hard=pods=10,limits.cpu=2", "--scopes=NotTerminating"]);
    assert_eq!(c.jsonpath(&["get", "quota", "q1", "-n", "pb"], "{.spec.hard.pods}/{.spec.hard.limits\\.cpu}"), "10/2");
    assert_eq!(c.jsonpath(&["get", "quota", "q1", "-n", "pb"], "{.spec.scopes}"), "[\"NotTerminating\"]");
    assert_eq!(c.jsonpath(&["get", "secret", "s1", "-n", "pb"], "{.data.password}"), "aHVudGVyMg==");
    assert_eq!(c.jsonpath(&["get", "cm", "c1", "-n", "pb"], "{.data.k}"), "v");
    let err = c.fails(&["create", "configmap", "c2", "-n", "missing", "--from-literal=k=v"]);
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");
}

fn deployment(image: &str, env: &[(&str, &str)], sidecar: bool) -> String {
    let env: String = env.iter().map(|(k, v)| format!("        - {{name: {k}, value: \"{v}\"}}\n")).collect();
    let sidecar = if sidecar { "      - {name: sidecar, image: busybox:1.36}\n" } else { "" };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 2\n  \
         selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      \
         containers:\n      - name: app\n        image: {image}\n        env:\n{env}{sidecar}"
    )
}

#[test]
fn client_side_apply_of_builtins_uses_strategic_merge() {
    let c = Cluster::start();
    c.apply(&deployment("nginx:1.27", &[("A", "1"), ("B", "2")], false));
    // Someone else adds a container and a label; a re-apply must keep what it never managed.
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=strategic",
        "-p",
        r#"{"metadata":{"labels":{"team":"web"}},"spec":{"template":{"spec":{"containers":[{"name":"debug","image":"alpine:3"}]}}}}"#,
    ]);
    let names = c.jsonpath(&["get", "deploy", "web"], "{.spec.template.spec.containers[*].name}");
    assert_eq!(names, "app debug", "strategic merge adds by the merge key `name`, replacing nothing");

    // Re-apply: new image, env B dropped, env C added, a sidecar added.
    let out = c.apply(&deployment("nginx:1.28", &[("A", "1"), ("C", "3")], true));
    assert!(out.contains("configured"), "{out}");
    let containers = |path: &str| c.jsonpath(&["get", "deploy", "web"], path);
    assert_eq!(containers("{.spec.template.spec.containers[?(@.name==\"app\")].image}"), "nginx:1.28");
    assert_eq!(containers("{.spec.template.spec.containers[?(@.name==\"app\")].env[*].name}"), "A C");
    // The applied order first, the server-only container where it stood relative to them.
    assert_eq!(containers("{.spec.template.spec.containers[*].name}"), "app sidecar debug");
    assert_eq!(containers("{.metadata.labels.team}"), "web");
    // Applying the same manifest again changes nothing.
    let rv = containers("{.metadata.resourceVersion}");
    // kubectl still sends a patch (the element order, since the live list has an item the
    // manifest lacks), as against a real server; the server finds nothing to change.
    c.apply(&deployment("nginx:1.28", &[("A", "1"), ("C", "3")], true));
    assert_eq!(containers("{.spec.template.spec.containers[*].name}"), "app sidecar debug");
    assert_eq!(containers("{.metadata.resourceVersion}"), rv, "a patch that changes nothing stores nothing");
    assert_eq!(containers("{.status.observedGeneration}"), containers("{.metadata.generation}"));

    // A RoleBinding's subjects have no merge key: the applied list replaces the old one.
    let rb = |subjects: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: rb, namespace: default}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}\nsubjects:\n{subjects}"
        )
    };
    c.apply(&rb("- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}\n- {kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}\n"));
    c.apply(&rb("- {kind: User, name: carol, apiGroup: rbac.authorization.k8s.io}\n"));
    assert_eq!(c.jsonpath(&["get", "rolebinding", "rb"], "{.subjects[*].name}"), "carol");
}
