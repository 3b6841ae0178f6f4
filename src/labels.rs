//! Every label key, annotation key, finalizer and field manager the operator uses, and the one
//! place that derives names and label values from a Workspace. The controller, the CLI and the
//! kubectl plugin all call these.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::crd::{State, Workspace};

pub const GROUP: &str = "workspaces.dev";
pub const FINALIZER: &str = "workspaces.dev/cleanup";
pub const FIELD_MANAGER: &str = "workspace-operator";

/// Every write names the operator as its field manager, so `managedFields` say who wrote what
/// and a GitOps tool's server-side apply can tell its fields from the operator's.
pub fn patch_params() -> kube::api::PatchParams {
    kube::api::PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

pub fn post_params() -> kube::api::PostParams {
    kube::api::PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

/// Labels on Workspaces, kept current by the controller so lists filter on the API server.
pub const STATUS: &str = "workspaces.dev/status";
pub const DESIRED_STATE: &str = "workspaces.dev/desired-state";
pub const ENTERPRISE_PROJECT: &str = "workspaces.dev/enterprise-project";
pub const AUTH_TYPE: &str = "workspaces.dev/auth-type";
pub const DEFAULT: &str = "workspaces.dev/default";
pub const RESOURCE_GROUP: &str = "workspaces.dev/resource-group";
pub const OWNER: &str = "workspaces.dev/owner";
pub const LIST_LABELS: [&str; 7] =
    [STATUS, DESIRED_STATE, ENTERPRISE_PROJECT, AUTH_TYPE, DEFAULT, RESOURCE_GROUP, OWNER];

/// On the namespace: a fingerprint of who besides the owner has access (admins, grants,
/// authType), so that a retained namespace is taken back only with no wider access than it had.
pub const ACCESS_ANNOTATION: &str = "workspaces.dev/access";

/// On every child: a fingerprint of the content the operator applied. The caches hold only
/// children's metadata, so this is how a reconcile knows a child is as it wants it.
pub const APPLIED_ANNOTATION: &str = "workspaces.dev/applied";
/// Labels and annotations on the objects the operator creates or adopts.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "workspace-operator";
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=workspace-operator";
pub const WORKSPACE_NAMESPACE: &str = "workspaces.dev/workspace-namespace";
pub const WORKSPACE_NAME: &str = "workspaces.dev/workspace-name";
/// On a namespace: `Managed` (the operator created it) or `Enrolled` (adopted; never deleted).
pub const MANAGEMENT: &str = "workspaces.dev/management";
/// The exact `namespace/name` of the owning Workspace (label values are length-limited).
pub const WORKSPACE_ANNOTATION: &str = "workspaces.dev/workspace";
/// The uid of the owning Workspace: a namespace is only ever deleted when this matches.
pub const UID_ANNOTATION: &str = "workspaces.dev/workspace-uid";
/// On a namespace, written only in the request that created it: the uid of the Workspace that
/// created it. Only that Workspace may ever delete it.
pub const CREATED_ANNOTATION: &str = "workspaces.dev/created-by-uid";
/// On a namespace: the owner of its Workspace. A Workspace recreated under the same name takes
/// a retained namespace back only with the same owner.
pub const OWNER_ANNOTATION: &str = "workspaces.dev/owner";
/// On an enrolled namespace: the labels and annotations the operator added or changed, with
/// their earlier values (null: not there), so that a release restores exactly what it found.
pub const BEFORE_ANNOTATION: &str = "workspaces.dev/before-enrollment";

/// Names of the children inside a workspace namespace.
pub const ADMINS_BINDING: &str = "workspace-admins";
pub const PUBLIC_BINDING: &str = "workspace-public-view";
pub const GRANTS_BINDING_PREFIX: &str = "workspace-grants-";
pub const QUOTA: &str = "workspace-quota";
pub const LIMIT_RANGE: &str = "workspace-defaults";
pub const NETWORK_POLICY: &str = "workspace-isolation";

/// The namespace a Workspace provisions: `spec.namespace`, or one derived from its namespace and
/// name that is a valid DNS label, stable, and collision-safe (a hash of `namespace/name`). A
/// Workspace provisioned when derived names carried a 32-bit hash keeps its namespace: its
/// status names it, and only that exact legacy name is taken from the status.
pub fn target_namespace(ws: &Workspace) -> String {
    if let Some(ns) = &ws.spec.namespace {
        return ns.clone();
    }
    let namespace = ws.metadata.namespace.as_deref().unwrap_or("default");
    let name = ws.metadata.name.as_deref().unwrap_or("");
    let legacy = derived_with(namespace, name, &hash_hex(&format!("{namespace}/{name}"), 4));
    match ws.status.as_ref().and_then(|s| s.namespace.as_deref()) {
        Some(provisioned) if provisioned == legacy => legacy,
        _ => derived_namespace(namespace, name),
    }
}

/// The fingerprint of a Workspace's access besides its owner: admins, grants and authType, in
/// a stable order.
pub fn access_fingerprint(ws: &Workspace) -> String {
    let mut admins = ws.spec.admins.clone().unwrap_or_default();
    admins.sort();
    admins.dedup();
    let mut grants: Vec<String> =
        ws.spec.grants.iter().flatten().map(|g| serde_json::to_string(g).unwrap_or_default()).collect();
    grants.sort();
    grants.dedup();
    access_hash(&admins, &grants, ws.spec.auth_type.as_str())
}

/// The access fingerprint of a Workspace with nobody but its owner: what a namespace retained
/// before the fingerprint was recorded is taken to have had.
pub fn owner_only_access() -> String {
    access_hash(&[], &[], crate::crd::AuthType::Private.as_str())
}

fn access_hash(admins: &[String], grants: &[String], auth_type: &str) -> String {
    let access = serde_json::json!({"admins": admins, "grants": grants, "authType": auth_type});
    short_hash(&access.to_string())
}

pub fn derived_namespace(namespace: &str, name: &str) -> String {
    derived_with(namespace, name, &short_hash(&format!("{namespace}/{name}")))
}

fn derived_with(namespace: &str, name: &str, hash: &str) -> String {
    let readable: String = format!("{namespace}-{name}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let readable: String = readable.chars().take(63 - 1 - hash.len()).collect();
    let readable = readable.trim_matches('-');
    if readable.is_empty() { format!("ws-{hash}") } else { format!("{readable}-{hash}") }
}

/// Does `name` end as derived names do (`-` and the hash)? Such names are reserved for the
/// Workspaces they derive from: another organization could otherwise take one before its
/// Workspace exists.
pub fn looks_derived(name: &str) -> bool {
    ends_with_hash(name, HASH_BYTES * 2) || ends_with_hash(name, 8)
}

fn ends_with_hash(s: &str, hex: usize) -> bool {
    s.len() > hex
        && s.as_bytes()[s.len() - hex - 1] == b'-'
        && s[s.len() - hex..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// 64 bits of SHA-256: what keeps distinct names and values apart.
const HASH_BYTES: usize = 8;

fn short_hash(s: &str) -> String {
    hash_hex(s, HASH_BYTES)
}

fn hash_hex(s: &str, bytes: usize) -> String {
    Sha256::digest(s.as_bytes()).iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}

/// A label value for any string, distinct for distinct strings. A valid label value is used as
/// it is, unless it ends as mapped values do; anything else maps to its valid characters (`@`
/// becomes `_at_`, others `_`), cut to 46 characters, plus `-` and sixteen hex digits of its
/// SHA-256. So an unchanged value never ends with such a hash, every mapped one does, and two
/// mapped ones differ in their hash.
pub fn label_value(s: &str) -> String {
    if is_label_value(s) && !ends_with_hash(s, HASH_BYTES * 2) {
        return s.to_string();
    }
    let mapped: String = s
        .chars()
        .flat_map(|c| match c {
            '@' => "_at_".chars().collect::<Vec<_>>(),
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' => vec![c],
            _ => vec!['_'],
        })
        .collect();
    let keep = 63 - 1 - HASH_BYTES * 2;
    let trimmed: String = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric()).chars().take(keep).collect();
    let trimmed = trimmed.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let hash = short_hash(s);
    if trimmed.is_empty() { format!("x-{hash}") } else { format!("{trimmed}-{hash}") }
}

fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() <= 63
        && (b.is_empty()
            || (b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()))
}

/// The list-view labels a Workspace should carry when its status is `status`.
pub fn list_labels(ws: &Workspace, status: State) -> BTreeMap<String, String> {
    let spec = &ws.spec;
    let mut l = BTreeMap::new();
    l.insert(STATUS.into(), status.as_str().into());
    l.insert(DESIRED_STATE.into(), spec.desired_state.as_str().into());
    l.insert(ENTERPRISE_PROJECT.into(), label_value(&spec.enterprise_project));
    l.insert(AUTH_TYPE.into(), spec.auth_type.as_str().into());
    l.insert(DEFAULT.into(), spec.is_default.to_string());
    if let Some(rg) = &spec.resource_group {
        l.insert(RESOURCE_GROUP.into(), label_value(rg));
    }
    l.insert(OWNER.into(), label_value(&spec.owner));
    l
}

/// Labels that tie a child object to its Workspace.
pub fn child_labels(ws: &Workspace) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    l.insert(WORKSPACE_NAMESPACE.into(), ws.metadata.namespace.clone().unwrap_or_default());
    l.insert(WORKSPACE_NAME.into(), label_value(ws.metadata.name.as_deref().unwrap_or("")));
    l
}

pub fn child_annotations(ws: &Workspace) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(WORKSPACE_ANNOTATION.into(), workspace_key(ws));
    a.insert(UID_ANNOTATION.into(), ws.metadata.uid.clone().unwrap_or_default());
    a
}

/// `namespace/name` of a Workspace, as recorded on its children.
pub fn workspace_key(ws: &Workspace) -> String {
    format!("{}/{}", ws.metadata.namespace.as_deref().unwrap_or(""), ws.metadata.name.as_deref().unwrap_or(""))
}

/// The Workspace a child's `workspaces.dev/workspace` annotation names, when it is one a
/// Workspace could have: `namespace/name`, a DNS label and a DNS subdomain. Anything else — a
/// forged annotation of any length, say — names no Workspace, and costs the caches nothing.
pub fn named_workspace(annotation: &str) -> Option<(&str, &str)> {
    let (ns, name) = annotation.split_once('/')?;
    let dns = |s: &str, max: usize, dots: bool| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.'))
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    (dns(ns, 63, false) && dns(name, 253, true)).then_some((ns, name))
}

/// The id format of cloud workspace APIs: the uid without hyphens.
pub fn workspace_id(uid: &str) -> String {
    uid.replace('-', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_annotation_a_workspace_could_have_names_one() {
        let long = "a".repeat(200_000);
        #[rustfmt::skip]
        type Case<'a> = (&'a str, String, Option<(&'a str, &'a str)>);
        let table: Vec<Case> = vec![
            ("a workspace", "team-a/ml".into(), Some(("team-a", "ml"))),
            ("a dotted name", "team-a/ml.v2".into(), Some(("team-a", "ml.v2"))),
            ("no slash", "team-a".into(), None),
            ("a path", "team-a/ml/x".into(), None),
            ("upper case", "Team/ml".into(), None),
            ("a namespace too long", format!("{}/ml", "a".repeat(64)), None),
            ("a name too long", format!("team/{}", "a".repeat(254)), None),
            ("a forged 200 KB value", format!("team/{long}"), None),
            ("empty parts", "/".into(), None),
        ];
        for (case, annotation, want) in table {
            assert_eq!(named_workspace(&annotation), want, "{case}");
        }
    }

    #[test]
    fn derived_namespaces_are_valid_stable_and_collision_safe() {
        let a = derived_namespace("acme", "a-b");
        let b = derived_namespace("acme-a", "b");
        assert_ne!(a, b, "same readable part, different hash");
        assert_eq!(a, derived_namespace("acme", "a-b"));
        let long = derived_namespace(&"n".repeat(63), &"x.y".repeat(80));
        assert!(long.len() <= 63, "{long}");
        for name in [&long, &a] {
            let b = name.as_bytes();
            assert!(b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-'), "{name}");
            assert!(b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric(), "{name}");
        }
    }

    #[test]
    fn a_workspace_provisioned_with_a_legacy_name_keeps_it() {
        let mut w = crate::fixtures::ws("a").in_ns("acme").build();
        assert_eq!(target_namespace(&w), derived_namespace("acme", "a"));
        let legacy = derived_with("acme", "a", &hash_hex("acme/a", 4));
        w.status = Some(crate::crd::WorkspaceStatus { namespace: Some(legacy.clone()), ..Default::default() });
        assert_eq!(target_namespace(&w), legacy);
        w.status = Some(crate::crd::WorkspaceStatus { namespace: Some("kube-system".into()), ..Default::default() });
        assert_eq!(target_namespace(&w), derived_namespace("acme", "a"), "the status names no other namespace");
    }

    proptest::proptest! {
        #[test]
        fn distinct_strings_have_distinct_valid_label_values(a in "\\PC{0,80}", b in "\\PC{0,80}") {
            let (va, vb) = (label_value(&a), label_value(&b));
            proptest::prop_assert!(is_label_value(&va), "{va}");
            proptest::prop_assert!(a == b || va != vb, "{a:?} and {b:?} both map to {va}");
        }

        #[test]
        fn a_valid_value_and_a_mapped_one_never_meet(s in "[a-z0-9@._-]{1,40}") {
            let mapped = label_value(&s);
            // The value whose mapping is `mapped`, written as a label value itself, maps elsewhere.
            proptest::prop_assert!(mapped == s || label_value(&mapped) != mapped, "{s:?} -> {mapped}");
        }

        #[test]
        fn derived_namespaces_are_distinct_dns_labels(
            a in ("[a-z0-9-]{1,63}", "[a-z0-9.-]{1,80}"),
            b in ("[a-z0-9-]{1,63}", "[a-z0-9.-]{1,80}"),
        ) {
            let (na, nb) = (derived_namespace(&a.0, &a.1), derived_namespace(&b.0, &b.1));
            proptest::prop_assert!(na.len() <= 63 && is_label_value(&na) && na == na.to_lowercase(), "{na}");
            proptest::prop_assert!(a == b || na != nb, "{a:?} and {b:?} both derive {na}");
            proptest::prop_assert!(looks_derived(&na));
        }
    }

    #[test]
    fn label_values_are_valid_and_distinct() {
        assert_eq!(label_value("alice"), "alice");
        let mapped = label_value("alice@example.com");
        assert!(mapped.starts_with("alice_at_example.com-"), "{mapped}");
        assert!(is_label_value(&mapped));
        assert_ne!(label_value("a@b"), label_value("a#b"));
        // A valid value that looks mapped is mapped too, so it cannot meet the value it mimics.
        assert_ne!(label_value(&mapped), mapped, "{mapped}");
        assert!(is_label_value(&label_value(&"x".repeat(100))));
        assert!(is_label_value(&label_value("-lead")));
        assert!(is_label_value(&label_value("@@@")));
    }
}
