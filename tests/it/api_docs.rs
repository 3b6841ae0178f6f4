//! The Workspace API as users meet it: `kubectl explain` documents every field, and limits are
//! written as ResourceQuota takes them (numbers or strings).

use crate::common::{target_ns, wait_status, with_operator, ws};

/// Every field under `path`, as `kubectl explain --recursive` lists them, has a description.
#[test]
fn kubectl_explain_documents_every_field() {
    let (c, _op) = with_operator();
    for path in [
        "workspace",
        "workspace.spec",
        "workspace.spec.grants",
        "workspace.spec.tags",
        "workspace.spec.resourceLimits",
        "workspace.status",
    ] {
        let out = c.ok(&["explain", path]);
        assert!(!out.contains("<no description>"), "kubectl explain {path}:\n{out}");
    }
    let limits = c.ok(&["explain", "workspace.spec.resourceLimits"]);
    for key in ["limits.cpu", "limits.memory", "requests.storage", "requests.nvidia.com/gpu"] {
        assert!(limits.contains(key), "the quota key of each limit is documented: {key}\n{limits}");
    }
    let spec = c.ok(&["explain", "workspace.spec"]);
    assert!(!spec.to_lowercase().contains("seed"), "{spec}");
}

#[test]
fn limits_are_numbers_or_quantity_strings_as_in_a_resource_quota() {
    let (c, _op) = with_operator();
    let manifest =
        ws("counted").spec_yaml("owner: alice\nresourceLimits: {pods: 50, cpu: 2, memory: 8Gi, gpu: \"4\"}").yaml();
    c.apply(&manifest);
    wait_status(&c, "default", "counted", "Available");
    let target = target_ns(&c, "default", "counted");
    let hard =
        |key: &str| c.jsonpath(&["get", "quota", "workspace-quota", "-n", &target], &format!("{{.spec.hard.{key}}}"));
    assert_eq!(hard("pods"), "50");
    assert_eq!(hard("limits\\.cpu"), "2");
    assert_eq!(hard("limits\\.memory"), "8Gi");
    assert_eq!(hard("requests\\.nvidia\\.com/gpu"), "4");
}
