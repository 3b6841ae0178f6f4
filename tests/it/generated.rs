//! What is generated or assembled from the sources stays in step with them: the committed CRDs,
//! the chart's copy of them, and the image's dependency tree.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn committed_crd_matches_the_rust_types() {
    let out = Command::new(env!("CARGO_BIN_EXE_workspace-operator")).arg("crd").output().expect("run crd");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(crate::common::CRD).expect("read crds/workspace.yaml");
    assert!(generated == committed, "crds/workspace.yaml is stale: run `make crds`");
}

#[test]
fn chart_carries_the_same_crd() {
    let committed = std::fs::read(crate::common::CRD).expect("read crds");
    let chart = std::fs::read(format!("{ROOT}/charts/workspace-operator/crds/workspace.yaml")).expect("chart copy");
    assert!(committed == chart, "charts/workspace-operator/crds/workspace.yaml is stale: run `make crds`");
}

/// The crates in the operator's normal dependency tree with these cargo flags.
fn dependency_tree(flags: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-e", "normal", "-p", "workspace-operator", "--prefix", "none", "--offline"])
        .args(flags)
        .current_dir(ROOT)
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split(' ').next()).map(String::from).collect()
}

#[test]
fn the_image_carries_no_crate_of_the_local_api_server_nor_of_the_real_control_planes_harness() {
    let dockerfile = std::fs::read_to_string(format!("{ROOT}/charts/Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.contains("--no-default-features"), "the image is built without the `dev` feature");
    // The local API server, and what only it needs (kube and its own dependencies bring the rest).
    let server_only = ["devcluster", "controlplane", "rcgen", "imbl", "rand", "prost", "k8s-pb", "kube-cel", "cel"];
    let image = dependency_tree(&["--no-default-features"]);
    for krate in server_only {
        assert!(!image.iter().any(|c| c == krate), "the image's dependency tree has {krate}");
    }
    let dev = dependency_tree(&[]);
    assert!(dev.iter().any(|c| c == "devcluster"), "`workspace-operator dev` embeds the server");
    assert!(dev.iter().any(|c| c == "controlplane"), "`workspace-operator dev --cluster real` starts the real one");
}
