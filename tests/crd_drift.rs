//! `crds/workspace.yaml` must be exactly what `workspace-operator crd` prints.

use std::process::Command;

#[test]
fn committed_crd_matches_the_rust_types() {
    let out = Command::new(env!("CARGO_BIN_EXE_workspace-operator")).arg("crd").output().expect("run crd");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/workspace.yaml"))
        .expect("read crds/workspace.yaml");
    assert!(generated == committed, "crds/workspace.yaml is stale: run `make crds`");
}

#[test]
fn chart_carries_the_same_crd() {
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/workspace.yaml")).expect("read crds");
    let chart = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/charts/workspace-operator/files/workspace.yaml"))
        .expect("read chart copy");
    assert!(committed == chart, "charts/workspace-operator/files/workspace.yaml is stale: run `make crds`");
}
