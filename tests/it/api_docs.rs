//! The Workspace API as users meet it: `kubectl explain` documents every field, and limits are
//! written as ResourceQuota takes them (numbers or strings).

use crate::common::{target_ns, wait_status, with_operator, ws};

/// Every field under `path`, as `kubectl explain --recursive` lists them, has a description.
#[test]
fn kubectl_explain_documents_every_field() {
    let (c, _op) = with_operator();
    // kube-apiserver publishes a new CRD's OpenAPI a moment after the CRD is established.
    c.eventually("the Workspace's OpenAPI", std::time::Duration::from_secs(30), || {
        c.kubectl(&["explain", "workspace"]).status.success().then_some(())
    });
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

/// Whatever the API server admits as a Workspace's limits, the operator can read: limits drawn
/// at random (integers of any size, quantity-like and arbitrary strings) are created through the
/// API, and each one admitted is decoded, as stored, into the operator's types.
#[test]
fn every_limit_admission_accepts_decodes() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use serde_json::{Value, json};

    let c = crate::common::cluster();
    crate::common::install_crd(&c);
    let amount = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0..=i32::MAX as i64).prop_map(Value::from),
        "[0-9]{1,22}(m|k|M|G|Ki|Mi|Gi|Ti|E|e[0-9]{1,2})?".prop_map(Value::from),
        "-?[0-9.]{1,6}[a-zA-Z]{0,2}".prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    const KEYS: [&str; 5] = ["cpu", "memory", "storage", "pods", "gpu"];
    let limits = proptest::collection::btree_map(proptest::sample::select(&KEYS[..]), amount, 1..=5);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let api: kube::Api<kube::core::DynamicObject> = rt.block_on(async {
        let resource = kube::core::ApiResource::erase::<workspace_operator::crd::Workspace>(&());
        kube::Api::namespaced_with(c.server.client(), "default", &resource)
    });
    let (admitted, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let cases = if crate::common::real() { 96 } else { 256 };
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let outcome = runner.run(&limits, |limits| {
        let name = format!("p{}", admitted.get() + refused.get());
        let body = json!({
            "apiVersion": "workspaces.dev/v1alpha1", "kind": "Workspace",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"owner": "alice", "resourceLimits": limits},
        });
        let obj: kube::core::DynamicObject = serde_json::from_value(body).expect("an object");
        match rt.block_on(api.create(&Default::default(), &obj)) {
            Ok(stored) => {
                admitted.set(admitted.get() + 1);
                let stored = serde_json::to_value(&stored).expect("JSON");
                let read = serde_json::from_value::<workspace_operator::crd::Workspace>(stored.clone());
                prop_assert!(read.is_ok(), "admitted but unreadable: {stored}: {read:?}");
            }
            Err(kube::Error::Api(s)) if s.code == 422 => refused.set(refused.get() + 1),
            Err(e) => panic!("neither admitted nor refused: {e}"),
        }
        Ok(())
    });
    outcome.expect("everything admitted decodes");
    let (admitted, refused) = (admitted.get(), refused.get());
    assert!(admitted > 10 && refused > 10, "both sides tried: {admitted} admitted, {refused} refused");
}
