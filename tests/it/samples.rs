//! Every sample under crds/samples/ applies cleanly to a fresh cluster and settles in the state
//! it asks for.

use serde_json::Value;

#[test]
fn samples_apply_and_settle() {
    let (c, _op) = crate::common::with_operator();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/samples");
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("samples").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(files.len() >= 8, "one sample per feature");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read sample");
        let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
        let docs: Vec<Value> = workspace_operator::yaml::from_str_multi(&text).expect("YAML");
        for ws in docs.iter().filter(|d| d["kind"] == "Workspace") {
            let ns = ws["metadata"]["namespace"].as_str().unwrap();
            let name = ws["metadata"]["name"].as_str().unwrap();
            let want = ws["spec"]["desiredState"].as_str().unwrap_or("Available");
            crate::common::wait_status(&c, ns, name, want);
            assert_eq!(
                c.jsonpath(&["get", "ws", name, "-n", ns], "{.status.conditions[?(@.type==\"Ready\")].status}"),
                "True",
                "{}",
                file.display()
            );
        }
    }
}
