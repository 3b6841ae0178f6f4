//! Build: the objects a Workspace should have, from its spec, its class and the goal alone
//! (in: spec and policy; out: objects; no client), so every rule is unit-tested without a server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::controller::policy;

use crate::crd::{
    AuthType, DesiredState, GrantRole, Isolation, Management, PodSecurityLevel, SubjectKind, Workspace, WorkspaceClass,
};
use crate::labels;

/// Settings that come from the operator's flags rather than from a Workspace or its class.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The operator's own namespace: never a workspace's.
    pub operator_namespace: Option<String>,
}

/// What the children should look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Access granted, the quota mirrors the limits.
    Available,
    /// No access; the quota blocks new pods; every object is kept.
    Deactivated,
    /// As Deactivated, and only limits that block pods remain: a kept, inert namespace.
    Deleted,
    /// The Workspace itself is gone (`kubectl delete`) and its namespace kept: a created one
    /// stays inert as under Deleted; an enrolled one is given back with nothing of the
    /// operator's in it.
    Released,
}

impl From<DesiredState> for Goal {
    fn from(d: DesiredState) -> Goal {
        match d {
            DesiredState::Available => Goal::Available,
            DesiredState::Deactivated => Goal::Deactivated,
            DesiredState::Deleted => Goal::Deleted,
        }
    }
}

/// Every child the applier keeps in step, destructured there without `..`: a new kind of child
/// that nobody applies does not compile.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub bindings: Vec<RoleBinding>,
    pub quota: Option<ResourceQuota>,
    pub limit_range: Option<LimitRange>,
    pub network_policy: Option<NetworkPolicy>,
}

pub fn children(ws: &Workspace, class: &WorkspaceClass, target: &str, goal: Goal) -> Children {
    let (bindings, quota_blocks) = match goal {
        Goal::Available => (role_bindings(ws, class, target), false),
        Goal::Released if ws.spec.management == Management::Enrolled => {
            return Children { bindings: Vec::new(), quota: None, limit_range: None, network_policy: None };
        }
        Goal::Deactivated | Goal::Deleted | Goal::Released => (Vec::new(), true),
    };
    Children {
        bindings,
        quota: quota(ws, class, target, quota_blocks),
        limit_range: limit_range(ws, class, target),
        network_policy: network_policy(ws, class, target),
    }
}

fn meta(ws: &Workspace, name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(String::from),
        labels: Some(labels::child_labels(ws)),
        annotations: Some(labels::child_annotations(ws)),
        ..Default::default()
    }
}

/// The namespace as the operator labels it: created (`Managed`) or adopted (`Enrolled`), with
/// the class's Pod Security levels and its labels and annotations.
pub fn namespace(ws: &Workspace, class: &WorkspaceClass, target: &str) -> Namespace {
    let mut m = meta(ws, target, None);
    let policy = &class.spec.namespace;
    let l = m.labels.get_or_insert_with(BTreeMap::new);
    l.insert(labels::MANAGEMENT.into(), ws.spec.management.as_str().into());
    let security = &policy.pod_security;
    for (mode, level) in [("enforce", security.enforce), ("warn", security.warn), ("audit", security.audit)] {
        l.insert(format!("pod-security.kubernetes.io/{mode}"), level.as_str().into());
    }
    // A class's labels and annotations never take the operator's own keys.
    for (k, v) in policy.labels.iter().flatten().filter(|(k, _)| !own_key(k)) {
        l.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let a = m.annotations.get_or_insert_with(BTreeMap::new);
    a.insert(labels::OWNER_ANNOTATION.into(), ws.spec.owner.clone());
    a.insert(labels::ACCESS_ANNOTATION.into(), labels::access_fingerprint(ws));
    for (k, v) in policy.annotations.iter().flatten().filter(|(k, _)| !own_key(k)) {
        a.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Namespace { metadata: m, ..Default::default() }
}

/// The namespace as the operator creates it: as [`namespace`], plus the record that this very
/// Workspace created it, written in the create itself and never later.
pub fn namespace_to_create(ws: &Workspace, class: &WorkspaceClass, target: &str) -> Namespace {
    let mut ns = namespace(ws, class, target);
    let uid = ws.metadata.uid.clone().unwrap_or_default();
    ns.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(labels::CREATED_ANNOTATION.into(), uid);
    ns
}

/// What an enrolled namespace carried before the operator changed it: each label and
/// annotation it added (None) or changed (the earlier value). Kept on the namespace as JSON.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Before {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, Option<String>>,
}

impl Before {
    fn of(ns: &Namespace) -> Before {
        let recorded = ns.metadata.annotations.as_ref().and_then(|a| a.get(labels::BEFORE_ANNOTATION));
        recorded.and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default()
    }
}

/// The operator's own keys: removed on release, never recorded.
fn own_key(key: &str) -> bool {
    key.starts_with("workspaces.dev/")
}

const POD_SECURITY_MODES: [&str; 3] =
    ["pod-security.kubernetes.io/enforce", "pod-security.kubernetes.io/warn", "pod-security.kubernetes.io/audit"];

/// How strict the Pod Security label `mode` at `level` is, as Pod Security Admission reads it:
/// none is the loosest (the cluster's default, privileged unless configured otherwise); levels
/// are matched exactly (`Baseline` is no level); a level it does not know is `restricted` when
/// enforcing, and `privileged` when warning or auditing.
fn strictness(mode: &str, level: Option<&str>) -> u8 {
    match level {
        None => 0,
        Some(l) if l == PodSecurityLevel::Privileged.as_str() => 1,
        Some(l) if l == PodSecurityLevel::Baseline.as_str() => 2,
        Some(l) if l == PodSecurityLevel::Restricted.as_str() => 3,
        Some(_) if mode.ends_with("/enforce") => 3,
        Some(_) => 0,
    }
}

/// The stricter of two levels of `mode`; `b` when they are as strict.
fn stricter<'a>(mode: &str, a: Option<&'a str>, b: &'a str) -> &'a str {
    match a {
        Some(a) if strictness(mode, Some(a)) > strictness(mode, Some(b)) => a,
        _ => b,
    }
}

/// The merge patch that makes the existing namespace `have` carry what `want` (from
/// [`namespace`]) asks, or None when it already does. On an enrolled namespace the Pod Security
/// levels are only ever tightened: each is the stricter of the class's and the one the namespace
/// carries now, so neither enrollment nor a later reconcile undoes what its owner tightened. Every
/// label or annotation added or changed is recorded with its earlier value, for [`release_patch`].
pub fn namespace_patch(have: &Namespace, want: &Namespace) -> Option<serde_json::Value> {
    // A namespace keeps the management it was created or enrolled with once it is recorded as
    // a Workspace's (its uid annotation, which only the operator and the platform can write);
    // until then a `management` label found on it means nothing.
    let owned = have.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(labels::UID_ANNOTATION));
    let label = |ns: &Namespace| ns.metadata.labels.as_ref().and_then(|l| l.get(labels::MANAGEMENT)).cloned();
    let management = if owned { label(have).or(label(want)) } else { label(want) };
    let enrolled = management.as_deref() == Some(Management::Enrolled.as_str());
    let mut before = Before::of(have);
    let recorded = before.clone();
    let empty = BTreeMap::new();
    let changes = |have: &BTreeMap<String, String>,
                   want: &BTreeMap<String, String>,
                   before: &mut BTreeMap<String, Option<String>>| {
        let mut out = serde_json::Map::new();
        for (k, v) in want {
            if k == labels::MANAGEMENT && owned && have.contains_key(k) {
                continue;
            }
            let v = match enrolled && POD_SECURITY_MODES.contains(&k.as_str()) {
                true => stricter(k, have.get(k).map(String::as_str), v),
                false => v.as_str(),
            };
            if have.get(k).map(String::as_str) != Some(v) {
                out.insert(k.clone(), v.into());
                if enrolled && !own_key(k) && !before.contains_key(k) {
                    before.insert(k.clone(), have.get(k).cloned());
                }
            }
        }
        out
    };
    let meta = (&have.metadata, &want.metadata);
    let labels =
        changes(meta.0.labels.as_ref().unwrap_or(&empty), meta.1.labels.as_ref().unwrap_or(&empty), &mut before.labels);
    let mut annotations = changes(
        meta.0.annotations.as_ref().unwrap_or(&empty),
        meta.1.annotations.as_ref().unwrap_or(&empty),
        &mut before.annotations,
    );
    if before != recorded {
        let json = serde_json::to_string(&before).unwrap_or_default();
        annotations.insert(labels::BEFORE_ANNOTATION.into(), json.into());
    }
    if labels.is_empty() && annotations.is_empty() {
        return None;
    }
    Some(serde_json::json!({"metadata": {"labels": labels, "annotations": annotations}}))
}

/// The merge patch that gives an enrolled namespace back: the operator's own keys go, and what
/// it added or changed returns to what was there before — except a Pod Security level, which
/// stays the stricter of what was found and what it carries now. A workload planted while the
/// namespace was enrolled was admitted under that level; loosening it on release would let the
/// workload's next pods run with more privilege than its author ever had. The namespace's owner
/// loosens it by hand once they have checked what the workspace left behind.
pub fn release_patch(have: &Namespace) -> serde_json::Value {
    let before = Before::of(have);
    let restore = |have: Option<&BTreeMap<String, String>>, before: &BTreeMap<String, Option<String>>| {
        let mut out = serde_json::Map::new();
        for k in have.into_iter().flat_map(|m| m.keys()).filter(|k| own_key(k)) {
            out.insert(k.clone(), serde_json::Value::Null);
        }
        for (k, v) in before {
            let now = have.and_then(|m| m.get(k)).map(String::as_str);
            if POD_SECURITY_MODES.contains(&k.as_str()) && strictness(k, v.as_deref()) <= strictness(k, now) {
                continue;
            }
            out.insert(k.clone(), v.clone().map_or(serde_json::Value::Null, Into::into));
        }
        out
    };
    let mut labels = restore(have.metadata.labels.as_ref(), &before.labels);
    let mut annotations = restore(have.metadata.annotations.as_ref(), &before.annotations);
    // The consent stays: it is the namespace owner's, not the operator's.
    labels.remove(policy::ENROLL_FROM);
    annotations.remove(policy::ENROLL_FROM);
    serde_json::json!({"metadata": {"labels": labels, "annotations": annotations}})
}

/// RoleBindings that give access while the workspace is Available: owner and admins get
/// `admin`; Public workspaces give the class's public group `view`; Internal ones bind each grant.
pub fn role_bindings(ws: &Workspace, class: &WorkspaceClass, target: &str) -> Vec<RoleBinding> {
    let binding = |name: &str, role: &str, subjects: Vec<Subject>| RoleBinding {
        metadata: meta(ws, name, Some(target)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(subjects),
    };
    let mut admins = vec![user(&ws.spec.owner)];
    for a in ws.spec.admins.iter().flatten() {
        if !admins.iter().any(|s| s.name == *a) {
            admins.push(user(a));
        }
    }
    let owner_role = class.spec.access.owner_role.cluster_role();
    let mut out = vec![binding(labels::ADMINS_BINDING, owner_role, admins)];
    match ws.spec.auth_type {
        AuthType::Public => {
            // The policy refused a Public workspace whose class names no group.
            if let Some(g) = class.spec.access.public_group.as_deref().filter(|g| !g.is_empty()) {
                out.push(binding(labels::PUBLIC_BINDING, "view", vec![group(g)]));
            }
        }
        AuthType::Private => {}
        AuthType::Internal => {
            let mut by_role: BTreeMap<GrantRole, Vec<Subject>> = BTreeMap::new();
            for g in ws.spec.grants.iter().flatten() {
                let subject = match g.kind {
                    SubjectKind::User => user(&g.name),
                    SubjectKind::Group => group(&g.name),
                    SubjectKind::ServiceAccount => service_account(&g.name, target),
                };
                let list = by_role.entry(g.role).or_default();
                if !list.contains(&subject) {
                    list.push(subject);
                }
            }
            for (role, subjects) in by_role {
                let name = format!("{}{}", labels::GRANTS_BINDING_PREFIX, role.cluster_role());
                out.push(binding(&name, role.cluster_role(), subjects));
            }
        }
    }
    out
}

fn user(name: &str) -> Subject {
    Subject {
        kind: "User".into(),
        name: name.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        namespace: None,
    }
}

fn group(name: &str) -> Subject {
    Subject {
        kind: "Group".into(),
        name: name.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        namespace: None,
    }
}

/// `namespace:name` (admission refuses anything else; a bare name would mean one in the
/// workspace namespace).
fn service_account(name: &str, default_ns: &str) -> Subject {
    let (ns, n) = name.split_once(':').unwrap_or((default_ns, name));
    Subject { kind: "ServiceAccount".into(), name: n.into(), api_group: None, namespace: Some(ns.into()) }
}

/// The ResourceQuota: the limits (the Workspace's, or its class's defaults) mirrored; when
/// blocked, `pods: 0` stops new pods while every existing object is kept. None when there is
/// nothing to limit.
pub fn quota(ws: &Workspace, class: &WorkspaceClass, target: &str, blocked: bool) -> Option<ResourceQuota> {
    let mut hard = BTreeMap::new();
    for (limit, quantity) in policy::limits(ws, class).iter().flat_map(|l| l.quantities()) {
        hard.insert(quota_key(limit).to_string(), Quantity(quantity));
    }
    // The class's own keys; those of `resourceLimits` stay the Workspace's (admission refuses
    // them in the class, and a class stored before that rule cannot take them over).
    for (key, amount) in class.spec.resources.quota.iter().flatten() {
        hard.entry(key.clone()).or_insert_with(|| Quantity(policy::text(&amount.0)));
    }
    if blocked {
        hard.insert("pods".into(), Quantity("0".into()));
    }
    if hard.is_empty() {
        return None;
    }
    Some(ResourceQuota {
        metadata: meta(ws, labels::QUOTA, Some(target)),
        spec: Some(ResourceQuotaSpec { hard: Some(hard), ..Default::default() }),
        status: None,
    })
}

/// The class's container defaults as a LimitRange: containers that set no cpu or memory get
/// these as requests and limits, so a quota on cpu or memory still admits their pods.
pub fn limit_range(ws: &Workspace, class: &WorkspaceClass, target: &str) -> Option<LimitRange> {
    let defaults = class.spec.resources.container_defaults.as_ref()?;
    let values: BTreeMap<String, Quantity> = [("cpu", &defaults.cpu), ("memory", &defaults.memory)]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), Quantity(policy::text(v)))))
        .collect();
    if values.is_empty() {
        return None;
    }
    let item = LimitRangeItem {
        type_: "Container".into(),
        default: Some(values.clone()),
        default_request: Some(values),
        ..Default::default()
    };
    Some(LimitRange {
        metadata: meta(ws, labels::LIMIT_RANGE, Some(target)),
        spec: Some(LimitRangeSpec { limits: vec![item] }),
    })
}

/// Network isolation: ingress to the workspace's pods only from its own namespace and from the
/// namespaces the class selects. None when the class asks for no isolation.
pub fn network_policy(ws: &Workspace, class: &WorkspaceClass, target: &str) -> Option<NetworkPolicy> {
    let net = &class.spec.network;
    if net.isolation == Isolation::None {
        return None;
    }
    let mut from = vec![NetworkPolicyPeer { pod_selector: Some(LabelSelector::default()), ..Default::default() }];
    if let Some(selector) = &net.allow_from_namespaces {
        from.push(NetworkPolicyPeer { namespace_selector: Some(selector.clone()), ..Default::default() });
    }
    Some(NetworkPolicy {
        metadata: meta(ws, labels::NETWORK_POLICY, Some(target)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule { from: Some(from), ports: None }]),
            ..Default::default()
        }),
    })
}

/// The ResourceQuota key a resource limit is kept under.
pub fn quota_key(limit: &str) -> &'static str {
    match limit {
        "cpu" => "limits.cpu",
        "memory" => "limits.memory",
        "pods" => "pods",
        "storage" => "requests.storage",
        _ => "requests.nvidia.com/gpu",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ContainerDefaults, PodSecurityLevel, WorkspaceClassSpec};
    use crate::fixtures::ws;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    const T: &str = "acme-team-a-1234abcd";

    fn names(c: &Children) -> Vec<String> {
        c.bindings.iter().map(|b| b.metadata.name.clone().unwrap_or_default()).collect()
    }

    type Hard = Option<BTreeMap<String, String>>;

    fn hard(c: &Children) -> Hard {
        let q = c.quota.as_ref()?;
        let hard = q.spec.as_ref()?.hard.as_ref()?;
        Some(hard.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
    }

    fn map(pairs: &[(&str, &str)]) -> Hard {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// The default class, with a public group so that Public workspaces can be built.
    fn open() -> WorkspaceClass {
        let mut spec = WorkspaceClassSpec::default();
        spec.access.public_group = Some("system:authenticated".into());
        WorkspaceClass::new("standard", spec)
    }

    #[test]
    fn children_for_each_goal() {
        let c = open();
        let limited = ws("a").auth(AuthType::Public).limit("cpu", "4").limit("pods", "20").build();
        let unlimited = ws("b").auth(AuthType::Public).build();
        let enrolled = ws("c").enrolled("legacy").limit("cpu", "4").build();
        #[rustfmt::skip]
        let table: Vec<(&Workspace, Goal, Vec<&str>, Hard)> = vec![
            (&limited, Goal::Available, vec!["workspace-admins", "workspace-public-view"], map(&[("limits.cpu", "4"), ("pods", "20")])),
            (&limited, Goal::Deactivated, vec![], map(&[("limits.cpu", "4"), ("pods", "0")])),
            (&limited, Goal::Deleted, vec![], map(&[("limits.cpu", "4"), ("pods", "0")])),
            (&limited, Goal::Released, vec![], map(&[("limits.cpu", "4"), ("pods", "0")])),
            (&enrolled, Goal::Released, vec![], None),
            (&unlimited, Goal::Available, vec!["workspace-admins", "workspace-public-view"], None),
            (&unlimited, Goal::Deactivated, vec![], map(&[("pods", "0")])),
            (&unlimited, Goal::Released, vec![], map(&[("pods", "0")])),
        ];
        for (w, goal, bindings, quota) in table {
            let c = children(w, &c, T, goal);
            assert_eq!(names(&c), bindings, "{goal:?}");
            assert_eq!(hard(&c), quota, "{goal:?}");
        }
    }

    #[test]
    fn every_goal_but_an_enrolled_release_keeps_isolation_and_container_defaults() {
        let mut c = open();
        c.spec.resources.container_defaults =
            Some(ContainerDefaults { cpu: Some(IntOrString::String("250m".into())), memory: None });
        let w = ws("a").build();
        for goal in [Goal::Available, Goal::Deactivated, Goal::Deleted, Goal::Released] {
            let got = children(&w, &c, T, goal);
            let lr = got.limit_range.expect("container defaults are a LimitRange");
            let item = &lr.spec.unwrap().limits[0];
            assert_eq!(item.default.as_ref().unwrap()["cpu"].0, "250m", "{goal:?}");
            assert!(item.default_request.as_ref().unwrap().get("memory").is_none(), "{goal:?}");
            assert!(got.network_policy.is_some(), "{goal:?}: isolation is the default");
        }
        let enrolled = ws("a").enrolled("legacy").build();
        let released = children(&enrolled, &c, T, Goal::Released);
        assert_eq!((released.limit_range, released.network_policy), (None, None), "given back as found");
        c.spec.network.isolation = Isolation::None;
        c.spec.resources.container_defaults = None;
        let got = children(&w, &c, T, Goal::Available);
        assert_eq!((got.limit_range, got.network_policy), (None, None), "the class asks for neither");
    }

    #[test]
    fn isolation_admits_the_same_namespace_and_those_the_class_selects() {
        let mut c = open();
        let selector = LabelSelector {
            match_labels: Some([("role".to_string(), "ingress".to_string())].into()),
            ..Default::default()
        };
        c.spec.network.allow_from_namespaces = Some(selector.clone());
        let np = network_policy(&ws("a").build(), &c, T).unwrap().spec.unwrap();
        assert_eq!(np.policy_types.as_deref(), Some(&["Ingress".to_string()][..]));
        assert_eq!(np.pod_selector, Some(LabelSelector::default()), "every pod of the namespace");
        let from = np.ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(from[0].pod_selector, Some(LabelSelector::default()), "pods of the same namespace");
        assert_eq!(from[0].namespace_selector, None);
        assert_eq!(from[1].namespace_selector, Some(selector));
    }

    #[test]
    fn public_workspace_binds_owner_admins_and_the_class_public_group() {
        let w = ws("a").auth(AuthType::Public).owner("alice").admins(&["bob", "alice"]).build();
        let rbs = role_bindings(&w, &open(), T);
        assert_eq!(rbs.len(), 2);
        let names: Vec<_> = rbs[0].subjects.as_ref().unwrap().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"], "the owner first, each subject once");
        assert_eq!(rbs[0].role_ref.name, "admin");
        assert_eq!(rbs[1].role_ref.name, "view");
        assert_eq!(rbs[1].subjects.as_ref().unwrap()[0].name, "system:authenticated");
        assert_eq!(rbs[0].metadata.namespace.as_deref(), Some(T));
        let closed = WorkspaceClass::new("closed", WorkspaceClassSpec::default());
        assert_eq!(role_bindings(&w, &closed, T).len(), 1, "no public group, no public binding");
    }

    #[test]
    fn internal_workspace_groups_grants_by_role() {
        let w = ws("a")
            .grant(SubjectKind::User, "carol", GrantRole::Edit)
            .grant(SubjectKind::Group, "data", GrantRole::View)
            .grant(SubjectKind::ServiceAccount, "ci:bot", GrantRole::Edit)
            .grant(SubjectKind::ServiceAccount, "local", GrantRole::Edit)
            .build();
        let rbs = role_bindings(&w, &open(), T);
        let names: Vec<_> = rbs.iter().map(|r| r.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["workspace-admins", "workspace-grants-view", "workspace-grants-edit"]);
        let sa = |i: usize| {
            let s = &rbs[2].subjects.as_ref().unwrap()[i];
            (s.kind.clone(), s.namespace.clone(), s.name.clone())
        };
        assert_eq!(sa(1), ("ServiceAccount".into(), Some("ci".into()), "bot".into()));
        assert_eq!(sa(2), ("ServiceAccount".into(), Some(T.into()), "local".into()), "a bare name is local");
    }

    #[test]
    fn private_workspace_binds_only_owner_and_admins() {
        let w = ws("a").private().build();
        assert_eq!(role_bindings(&w, &open(), T).len(), 1);
    }

    #[test]
    fn namespace_records_its_workspace_management_and_the_class_pod_security() {
        let w = ws("a").in_ns("acme").stored("u-1", "2026-01-01T00:00:00Z").enrolled("legacy").build();
        let mut c = open();
        c.spec.namespace.labels = Some([("cost-centre".to_string(), "42".to_string())].into());
        c.spec.namespace.pod_security.enforce = PodSecurityLevel::Restricted;
        let ns = namespace(&w, &c, "legacy");
        let l = ns.metadata.labels.as_ref().unwrap();
        assert_eq!(l[labels::MANAGEMENT], "Enrolled");
        assert_eq!(l["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(l["pod-security.kubernetes.io/warn"], "restricted");
        assert_eq!(l["cost-centre"], "42");
        let ann = ns.metadata.annotations.unwrap();
        assert_eq!(ann[labels::WORKSPACE_ANNOTATION], "acme/a");
        assert_eq!(ann[labels::UID_ANNOTATION], "u-1");
        let plain = namespace(&w, &WorkspaceClass::new("d", WorkspaceClassSpec::default()), "legacy");
        assert_eq!(plain.metadata.labels.unwrap()["pod-security.kubernetes.io/enforce"], "baseline", "the default");
    }

    fn namespace_with(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
        let map = |pairs: &[(&str, &str)]| Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        Namespace {
            metadata: ObjectMeta {
                name: Some("legacy".into()),
                labels: map(labels),
                annotations: map(annotations),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// `have` after a merge patch (null removes a key), as the API server would leave it.
    fn patched(have: &Namespace, patch: &serde_json::Value) -> Namespace {
        let mut out = have.clone();
        for (field, map) in [("labels", &mut out.metadata.labels), ("annotations", &mut out.metadata.annotations)] {
            let map = map.get_or_insert_with(BTreeMap::new);
            for (k, v) in patch["metadata"][field].as_object().into_iter().flatten() {
                match v.as_str() {
                    Some(v) => map.insert(k.clone(), v.into()),
                    None => map.remove(k),
                };
            }
        }
        out
    }

    const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

    #[test]
    fn enrollment_only_tightens_pod_security_and_release_never_loosens_it() {
        let w = ws("a").in_ns("acme").stored("u-1", "2026-01-01T00:00:00Z").enrolled("legacy").build();
        let mut c = open();
        c.spec.namespace.labels = Some([("cost-centre".to_string(), "42".to_string())].into());
        let want = namespace(&w, &c, "legacy");
        let consent = (policy::ENROLL_FROM, "acme");
        let without = |ns: &Namespace| {
            let mut l = ns.metadata.labels.clone().unwrap_or_default();
            POD_SECURITY_MODES.iter().for_each(|m| drop(l.remove(*m)));
            l
        };
        #[rustfmt::skip]
        let table: Vec<(&str, Namespace, &str)> = vec![
            ("no level: the class's, kept on release", namespace_with(&[consent], &[]), "baseline"),
            ("looser: tightened, kept on release", namespace_with(&[consent, (ENFORCE, "privileged")], &[]), "baseline"),
            ("stricter: kept", namespace_with(&[consent, (ENFORCE, "restricted")], &[]), "restricted"),
            ("unknown: as strict as restricted, kept", namespace_with(&[consent, (ENFORCE, "lax")], &[]), "lax"),
            ("mis-cased: no level, so as strict as restricted, kept", namespace_with(&[consent, (ENFORCE, "Baseline")], &[]), "Baseline"),
            ("managed by another tool", namespace_with(&[consent, (labels::MANAGED_BY, "Helm"), ("cost-centre", "7")], &[("note", "x")]), "baseline"),
        ];
        for (case, found, level) in table {
            let patch = namespace_patch(&found, &want).expect("an enrollment writes");
            let enrolled = patched(&found, &patch);
            assert_eq!(enrolled.metadata.labels.as_ref().unwrap()[ENFORCE], level, "{case}");
            assert_eq!(enrolled.metadata.labels.as_ref().unwrap()[labels::MANAGEMENT], "Enrolled", "{case}");
            assert_eq!(namespace_patch(&enrolled, &want), None, "{case}: a second reconcile writes nothing");
            let released = patched(&enrolled, &release_patch(&enrolled));
            assert_eq!(released.metadata.labels.as_ref().unwrap()[ENFORCE], level, "{case}: never loosened");
            assert_eq!(without(&released), without(&found), "{case}: every other label as found");
            let annotations = released.metadata.annotations.clone().filter(|a| !a.is_empty());
            assert_eq!(annotations, found.metadata.annotations.clone().filter(|a| !a.is_empty()), "{case}");
        }
    }

    #[test]
    fn an_unknown_warn_or_audit_level_is_as_loose_as_privileged_as_pod_security_reads_it() {
        let w = ws("a").in_ns("acme").stored("u-1", "2026-01-01T00:00:00Z").enrolled("legacy").build();
        let want = namespace(&w, &open(), "legacy");
        const WARN: &str = "pod-security.kubernetes.io/warn";
        let found = namespace_with(&[(policy::ENROLL_FROM, "acme"), (WARN, "lax"), (ENFORCE, "Restricted")], &[]);
        let enrolled = patched(&found, &namespace_patch(&found, &want).unwrap());
        let labels = enrolled.metadata.labels.unwrap();
        assert_eq!(labels[WARN], "restricted", "an unknown warn level warns of nothing: the class's");
        assert_eq!(labels[ENFORCE], "Restricted", "an unknown enforce level enforces restricted: kept");
    }

    #[test]
    fn what_the_namespaces_owner_tightened_while_enrolled_stays() {
        let w = ws("a").in_ns("acme").stored("u-1", "2026-01-01T00:00:00Z").enrolled("legacy").build();
        let want = namespace(&w, &open(), "legacy");
        let found = namespace_with(&[(policy::ENROLL_FROM, "acme")], &[]);
        let mut enrolled = patched(&found, &namespace_patch(&found, &want).unwrap());
        enrolled.metadata.labels.as_mut().unwrap().insert(ENFORCE.into(), "restricted".into());
        assert_eq!(namespace_patch(&enrolled, &want), None, "a reconcile leaves the owner's level");
        let released = patched(&enrolled, &release_patch(&enrolled));
        assert_eq!(released.metadata.labels.unwrap()[ENFORCE], "restricted", "and so does the release");
    }

    #[test]
    fn a_class_change_reaches_a_created_namespace_but_never_loosens_an_enrolled_one() {
        let managed = ws("a").in_ns("acme").stored("u-1", "2026-01-01T00:00:00Z").build();
        let mut strict = open();
        strict.spec.namespace.pod_security.enforce = PodSecurityLevel::Restricted;
        let created = namespace(&managed, &strict, T);
        let patch = namespace_patch(&created, &namespace(&managed, &open(), T)).expect("the class loosened");
        assert_eq!(patch["metadata"]["labels"][ENFORCE], "baseline", "a created namespace follows its class");

        let w = ws("a").in_ns("acme").stored("u-1", "2026-01-01T00:00:00Z").enrolled("legacy").build();
        let found = namespace_with(&[(policy::ENROLL_FROM, "acme"), (ENFORCE, "baseline")], &[]);
        let enrolled = patched(&found, &namespace_patch(&found, &namespace(&w, &strict, "legacy")).unwrap());
        assert_eq!(enrolled.metadata.labels.as_ref().unwrap()[ENFORCE], "restricted");
        let mut loose = open();
        loose.spec.namespace.pod_security.enforce = PodSecurityLevel::Privileged;
        let again = namespace_patch(&enrolled, &namespace(&w, &loose, "legacy"));
        let relaxed = again.map(|p| patched(&enrolled, &p)).unwrap_or(enrolled);
        assert_eq!(relaxed.metadata.labels.as_ref().unwrap()[ENFORCE], "restricted", "never loosened");
    }

    #[test]
    fn the_class_decides_the_role_of_owner_and_admins() {
        let w = ws("a").admins(&["bob"]).build();
        assert_eq!(role_bindings(&w, &open(), T)[0].role_ref.name, "admin", "the default");
        let mut c = open();
        c.spec.access.owner_role = GrantRole::Edit;
        assert_eq!(role_bindings(&w, &c, T)[0].role_ref.name, "edit");
    }

    #[test]
    fn a_management_label_on_a_namespace_not_yet_recorded_means_nothing() {
        let w = ws("a").in_ns("acme").stored("u-1", "2026-01-01T00:00:00Z").enrolled("legacy").build();
        let found = namespace_with(&[(policy::ENROLL_FROM, "acme"), (labels::MANAGEMENT, "Managed")], &[]);
        let enrolled = patched(&found, &namespace_patch(&found, &namespace(&w, &open(), "legacy")).unwrap());
        assert_eq!(enrolled.metadata.labels.as_ref().unwrap()[labels::MANAGEMENT], "Enrolled");
        let released = patched(&enrolled, &release_patch(&enrolled));
        assert_eq!(released.metadata.labels.unwrap().get(labels::MANAGEMENT), None);
        // Once recorded, the namespace keeps the management it was created with.
        let kept = namespace_with(&[(labels::MANAGEMENT, "Managed")], &[(labels::UID_ANNOTATION, "u-0")]);
        let patch = namespace_patch(&kept, &namespace(&w, &open(), "legacy")).unwrap();
        assert!(patch["metadata"]["labels"].get(labels::MANAGEMENT).is_none(), "{patch}");
    }

    #[test]
    fn a_class_never_sets_the_operators_own_keys() {
        let mut c = open();
        c.spec.namespace.labels = Some([(labels::MANAGEMENT.to_string(), "Managed".to_string())].into());
        c.spec.namespace.annotations = Some([(labels::UID_ANNOTATION.to_string(), "forged".to_string())].into());
        let w = ws("a").stored("u-1", "2026-01-01T00:00:00Z").enrolled("legacy").build();
        let ns = namespace(&w, &c, "legacy");
        assert_eq!(ns.metadata.labels.unwrap()[labels::MANAGEMENT], "Enrolled");
        assert_eq!(ns.metadata.annotations.unwrap()[labels::UID_ANNOTATION], "u-1");
    }
}
