//! Bad input, table-driven: every invalid Workspace is refused at admission with a message that
//! names the field, or reported as Failed with a stateReason; nothing foreign is touched.

use crate::common::wait_status;

enum Expect {
    /// kubectl apply fails; stderr contains both strings (the field and the rule).
    Refused(&'static str, &'static str),
    /// Accepted, then reported Failed with this stateReason.
    Failed(&'static str),
}
use Expect::*;

/// A Workspace in `bad` whose whole spec is `spec`, as written.
fn ws(name: &str, spec: &str) -> String {
    crate::common::ws(name).in_ns("bad").spec_yaml(spec).yaml()
}

fn long(n: usize) -> String {
    "a".repeat(n)
}

#[test]
fn invalid_workspaces_are_refused_or_failed() {
    let (c, op) = crate::common::with_operator();
    c.ok(&["create", "namespace", "bad"]);
    c.ok(&["create", "namespace", "foreign"]);
    c.ok(&["create", "namespace", "bad-foreign"]);
    c.apply(&ws("holder", "  owner: o\n  isDefault: true\n"));
    wait_status(&c, "bad", "holder", "Available");
    let holder_ns = c.jsonpath(&["get", "ws", "holder", "-n", "bad"], "{.status.namespace}");

    let admins51: String = (0..51).map(|i| format!("u{i},")).collect();
    let grants101: String = (0..101).map(|i| format!("{{kind: User, name: u{i}, role: view}},")).collect();
    let tags21: String = (0..21).map(|i| format!("{{key: k{i}, value: v}},")).collect();
    let cases: Vec<(&str, String, Expect)> = vec![
        ("no owner", "  displayName: x\n".into(), Refused("spec.owner", "Required value")),
        ("empty owner", "  owner: \"\"\n".into(), Refused("spec.owner", "at least 1 chars long")),
        (
            "owner too long",
            format!("  owner: {}\n", long(254)),
            Refused("spec.owner", "Too long: may not be more than 253"),
        ),
        (
            "empty displayName",
            "  owner: o\n  displayName: \"\"\n".into(),
            Refused("spec.displayName", "at least 1 chars long"),
        ),
        (
            "displayName too long",
            format!("  owner: o\n  displayName: {}\n", long(51)),
            Refused("spec.displayName", "Too long: may not be more than 50"),
        ),
        (
            "description too long",
            format!("  owner: o\n  description: {}\n", long(257)),
            Refused("spec.description", "Too long: may not be more than 256"),
        ),
        ("logoUrl not http", "  owner: o\n  logoUrl: ftp://x/y.png\n".into(), Refused("spec.logoUrl", "should match")),
        ("logoUrl not a URL", "  owner: o\n  logoUrl: not a url\n".into(), Refused("spec.logoUrl", "should match")),
        ("empty admin", "  owner: o\n  admins: [\"\"]\n".into(), Refused("spec.admins[0]", "at least 1 chars long")),
        ("duplicate admin", "  owner: o\n  admins: [a, a]\n".into(), Refused("spec.admins[1]", "Duplicate value")),
        (
            "too many admins",
            format!("  owner: o\n  admins: [{admins51}]\n"),
            Refused("spec.admins", "Too many: 51: must have at most 50"),
        ),
        (
            "owner also admin",
            "  owner: o\n  admins: [o]\n".into(),
            Refused("spec.admins", "the owner must not also be listed in admins"),
        ),
        (
            "unknown authType",
            "  owner: o\n  authType: Secret\n".into(),
            Refused("spec.authType", "Unsupported value: \"Secret\""),
        ),
        (
            "grants with the default authType",
            "  owner: o\n  grants: [{kind: User, name: u, role: view}]\n".into(),
            Refused("spec.grants", "grants are allowed only when authType is Internal"),
        ),
        (
            "grants with Public",
            "  owner: o\n  authType: Public\n  grants: [{kind: User, name: u, role: view}]\n".into(),
            Refused("spec.grants", "only when authType is Internal"),
        ),
        (
            "a system owner",
            "  owner: system:admin\n".into(),
            Refused("spec.owner", "must not be a system: name"),
        ),
        (
            "a system admin",
            "  owner: o\n  admins: [\"system:serviceaccount:kube-system:default\"]\n".into(),
            Refused("spec.admins", "must not be a system: name"),
        ),
        (
            "a grant to a system group",
            "  owner: o\n  authType: Internal\n  grants: [{kind: Group, name: \"system:masters\", role: view}]\n".into(),
            Refused("spec.grants[0]", "must not be a system: name"),
        ),
        (
            "a malformed ServiceAccount grant",
            "  owner: o\n  authType: Internal\n  grants: [{kind: ServiceAccount, name: kube-system/default, role: view}]\n".into(),
            Refused("spec.grants[0]", "a ServiceAccount is namespace:name"),
        ),
        (
            "grant kind",
            "  owner: o\n  authType: Internal\n  grants: [{kind: Robot, name: u, role: view}]\n".into(),
            Refused("spec.grants[0].kind", "Unsupported value: \"Robot\""),
        ),
        (
            "grant role",
            "  owner: o\n  authType: Internal\n  grants: [{kind: User, name: u, role: owner}]\n".into(),
            Refused("spec.grants[0].role", "Unsupported value: \"owner\""),
        ),
        (
            "grant name empty",
            "  owner: o\n  authType: Internal\n  grants: [{kind: User, name: \"\", role: view}]\n".into(),
            Refused("spec.grants[0].name", "at least 1 chars long"),
        ),
        (
            "grant without role",
            "  owner: o\n  authType: Internal\n  grants: [{kind: User, name: u}]\n".into(),
            Refused("spec.grants[0].role", "Required value"),
        ),
        (
            "too many grants",
            format!("  owner: o\n  authType: Internal\n  grants: [{grants101}]\n"),
            Refused("spec.grants", "Too many: 101: must have at most 100"),
        ),
        (
            "empty project",
            "  owner: o\n  enterpriseProject: \"\"\n".into(),
            Refused("spec.enterpriseProject", "at least 1 chars long"),
        ),
        (
            "project with space",
            "  owner: o\n  enterpriseProject: has space\n".into(),
            Refused("spec.enterpriseProject", "should match '^[A-Za-z0-9_-]+$'"),
        ),
        (
            "project too long",
            format!("  owner: o\n  enterpriseProject: {}\n", long(65)),
            Refused("spec.enterpriseProject", "Too long: may not be more than 64"),
        ),
        ("resource group", "  owner: o\n  resourceGroup: -rg\n".into(), Refused("spec.resourceGroup", "should match")),
        (
            "too many tags",
            format!("  owner: o\n  tags: [{tags21}]\n"),
            Refused("spec.tags", "Too many: 21: must have at most 20"),
        ),
        (
            "empty tag key",
            "  owner: o\n  tags: [{key: \"\", value: v}]\n".into(),
            Refused("spec.tags[0].key", "at least 1 chars long"),
        ),
        (
            "tag key too long",
            format!("  owner: o\n  tags: [{{key: {}, value: v}}]\n", long(129)),
            Refused("spec.tags[0].key", "Too long: may not be more than 128"),
        ),
        (
            "tag value too long",
            format!("  owner: o\n  tags: [{{key: k, value: {}}}]\n", long(256)),
            Refused("spec.tags[0].value", "Too long: may not be more than 255"),
        ),
        ("tag without key", "  owner: o\n  tags: [{value: v}]\n".into(), Refused("spec.tags[0].key", "Required value")),
        (
            "cpu garbage",
            "  owner: o\n  resourceLimits: {cpu: lots}\n".into(),
            Refused("spec.resourceLimits.cpu", "must be a quantity such as 500m, 2, 128Gi"),
        ),
        (
            "memory unit",
            "  owner: o\n  resourceLimits: {memory: 8GB}\n".into(),
            Refused("spec.resourceLimits.memory", "must be a quantity such as 500m, 2, 128Gi"),
        ),
        (
            "negative memory",
            "  owner: o\n  resourceLimits: {memory: -1Gi}\n".into(),
            Refused("spec.resourceLimits.memory", "must be a quantity such as 500m, 2, 128Gi"),
        ),
        (
            "fractional pods",
            "  owner: o\n  resourceLimits: {pods: \"1.5\"}\n".into(),
            Refused("spec.resourceLimits.pods", "must be a whole number such as 20"),
        ),
        (
            "negative gpu",
            "  owner: o\n  resourceLimits: {gpu: -1}\n".into(),
            Refused("spec.resourceLimits.gpu", "must be a whole number such as 20"),
        ),
        (
            "limit of the wrong type",
            "  owner: o\n  resourceLimits: {pods: [1]}\n".into(),
            Refused("spec.resourceLimits.pods", "Invalid value"),
        ),
        (
            "isDefault type",
            "  owner: o\n  isDefault: \"maybe\"\n".into(),
            Refused("spec.isDefault", "must be of type boolean"),
        ),
        (
            "management",
            "  owner: o\n  management: Owned\n".into(),
            Refused("spec.management", "Unsupported value: \"Owned\""),
        ),
        (
            "enrolled without namespace",
            "  owner: o\n  management: Enrolled\n".into(),
            Refused("spec.namespace", "namespace is required when management is Enrolled"),
        ),
        ("namespace syntax", "  owner: o\n  namespace: Bad_NS\n".into(), Refused("spec.namespace", "should match")),
        (
            "namespace too long",
            format!("  owner: o\n  namespace: {}\n", long(64)),
            Refused("spec.namespace", "Too long: may not be more than 63"),
        ),
        (
            "desiredState",
            "  owner: o\n  desiredState: Paused\n".into(),
            Refused("spec.desiredState", "Unsupported value: \"Paused\""),
        ),
        (
            "deletionPolicy",
            "  owner: o\n  deletionPolicy: Wipe\n".into(),
            Refused("spec.deletionPolicy", "Unsupported value: \"Wipe\""),
        ),
        ("unknown field", "  owner: o\n  color: blue\n".into(), Refused("unknown field", "spec.color")),
        ("spec not an object", String::new(), Refused("spec", "Required value")),
        // What only the controller can know.
        ("foreign namespace", "  owner: o\n  namespace: bad-foreign\n".into(), Failed("NamespaceConflict")),
        ("outside the prefix", "  owner: o\n  namespace: foreign\n".into(), Failed("PolicyViolation")),
        ("enroll without consent", "  owner: o\n  management: Enrolled\n  namespace: foreign\n".into(), Failed("NamespaceNotFound")),
        ("enroll a system namespace", "  owner: o\n  management: Enrolled\n  namespace: kube-system\n".into(), Failed("PolicyViolation")),
        ("Public without a public group", "  owner: o\n  authType: Public\n".into(), Failed("PolicyViolation")),
        ("no such class", "  owner: o\n  className: gold\n".into(), Failed("ClassNotFound")),
        (
            "another workspace's namespace",
            format!("  owner: o\n  management: Enrolled\n  namespace: {holder_ns}\n"),
            Failed("NamespaceNotFound"),
        ),
        (
            "enroll missing namespace",
            "  owner: o\n  management: Enrolled\n  namespace: nowhere\n".into(),
            Failed("NamespaceNotFound"),
        ),
        ("second default", "  owner: o\n  isDefault: true\n".into(), Failed("DefaultConflict")),
        (
            "overflowing quantity",
            "  owner: o\n  resourceLimits: {cpu: \"99999999999999999999\"}\n".into(),
            Failed("InvalidSpec"),
        ),
    ];
    let mut refused = 0;
    let mut failed = 0;
    for (i, (what, spec, expect)) in cases.iter().enumerate() {
        let name = format!("case-{i:02}");
        let manifest = ws(&name, spec);
        let out = c.with_stdin(&["apply", "-f", "-"], &manifest);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match expect {
            Refused(field, msg) => {
                assert!(!out.status.success(), "{what}: accepted but should be refused");
                assert!(
                    stderr.contains(field) && stderr.contains(msg),
                    "{what}: expected {field:?} and {msg:?} in:\n{stderr}"
                );
                refused += 1;
            }
            Failed(reason) => {
                assert!(out.status.success(), "{what}: refused: {stderr}");
                wait_status(&c, "bad", &name, "Failed");
                assert_eq!(&c.jsonpath(&["get", "ws", &name, "-n", "bad"], "{.status.stateReason}"), reason, "{what}");
                assert!(
                    !c.jsonpath(&["get", "ws", &name, "-n", "bad"], "{.status.message}").is_empty(),
                    "{what}: a message says why"
                );
                failed += 1;
            }
        }
    }
    // A malformed name, and changes to immutable fields.
    let err = c.with_stdin(&["apply", "-f", "-"], &ws("Bad_Name", "  owner: o\n"));
    assert!(String::from_utf8_lossy(&err.stderr).contains("metadata.name: Invalid value: \"Bad_Name\""));
    c.apply(&ws("fixed", "  owner: o\n  namespace: ws-fixed\n"));
    c.apply(&ws("derived", "  owner: o\n"));
    let immutable = [
        (ws("fixed", "  owner: o\n  namespace: ws-other\n"), "namespace is immutable"),
        (ws("fixed", "  owner: o\n"), "namespace is immutable: it cannot be added or removed after creation"),
        (ws("derived", "  owner: o\n  namespace: ws-late\n"), "cannot be added or removed"),
        (ws("fixed", "  owner: o\n  namespace: ws-fixed\n  management: Enrolled\n"), "management is immutable"),
    ];
    for (manifest, msg) in immutable {
        let out = c.with_stdin(&["apply", "-f", "-"], &manifest);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(msg),
            "{msg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        refused += 1;
    }
    assert!(refused + failed + 1 >= 40, "{refused} refused, {failed} failed");

    // Nothing foreign was touched, and the controller is still working.
    assert_eq!(
        c.jsonpath(&["get", "ns", "foreign"], "{.metadata.labels}"),
        "{\"kubernetes.io/metadata.name\":\"foreign\"}"
    );
    assert_eq!(
        c.jsonpath(&["get", "ns", &holder_ns], "{.metadata.annotations.workspaces\\.dev/workspace}"),
        "bad/holder"
    );
    c.ok(&["delete", "ws", "-n", "bad", "--all", "--timeout=30s"]);
    assert!(c.kubectl(&["get", "ns", "foreign"]).status.success());
    c.apply(&ws("after", "  owner: o\n"));
    wait_status(&c, "bad", "after", "Available");
    assert!(op.metrics.reconcile_count() > 0);
    eprintln!("bad input: {refused} refused at admission, {failed} reported Failed");
}
