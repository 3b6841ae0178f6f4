//! Build: the objects a Workspace should have, from its spec and the goal alone (spec in,
//! objects out, no client), so every rule is unit-tested without a server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::crd::{AuthType, DesiredState, GrantRole, SubjectKind, Workspace};
use crate::labels;

/// Settings that come from the operator's flags rather than the spec.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The group that `Public` workspaces grant `view` to.
    pub public_group: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { public_group: "system:authenticated".into() }
    }
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
    /// The Workspace itself is gone (`kubectl delete`): nothing of the operator's remains.
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
}

pub fn children(ws: &Workspace, settings: &Settings, target: &str, goal: Goal) -> Children {
    match goal {
        Goal::Available => Children { bindings: role_bindings(ws, settings, target), quota: quota(ws, target, false) },
        Goal::Deactivated | Goal::Deleted => Children { bindings: Vec::new(), quota: quota(ws, target, true) },
        Goal::Released => Children { bindings: Vec::new(), quota: None },
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

/// The namespace as the operator labels it: created (`Managed`) or adopted (`Enrolled`).
pub fn namespace(ws: &Workspace, target: &str) -> Namespace {
    let mut m = meta(ws, target, None);
    if let Some(l) = m.labels.as_mut() {
        l.insert(labels::MANAGEMENT.into(), ws.spec.management.as_str().into());
    }
    Namespace { metadata: m, ..Default::default() }
}

/// RoleBindings that give access while the workspace is Available: owner and admins get
/// `admin`; Public workspaces give the public group `view`; Internal ones bind each grant.
pub fn role_bindings(ws: &Workspace, settings: &Settings, target: &str) -> Vec<RoleBinding> {
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
    let mut out = vec![binding(labels::ADMINS_BINDING, "admin", admins)];
    match ws.spec.auth_type {
        AuthType::Public => out.push(binding(labels::PUBLIC_BINDING, "view", vec![group(&settings.public_group)])),
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

/// `namespace:name`, or a bare name meaning a ServiceAccount in the workspace namespace.
fn service_account(name: &str, default_ns: &str) -> Subject {
    let (ns, n) = name.split_once(':').unwrap_or((default_ns, name));
    Subject { kind: "ServiceAccount".into(), name: n.into(), api_group: None, namespace: Some(ns.into()) }
}

/// The ResourceQuota: `resourceLimits` mirrored; when blocked, `pods: 0` stops new pods while
/// every existing object is kept. None when there is nothing to limit.
pub fn quota(ws: &Workspace, target: &str, blocked: bool) -> Option<ResourceQuota> {
    let mut hard = BTreeMap::new();
    for (limit, quantity) in ws.spec.resource_limits.iter().flat_map(|l| l.quantities()) {
        hard.insert(quota_key(limit).to_string(), Quantity(quantity));
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
    use crate::fixtures::ws;

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

    #[test]
    fn children_for_each_goal() {
        let s = Settings::default();
        let limited = ws("a").limit("cpu", "4").limit("pods", "20").build();
        let unlimited = ws("b").build();
        #[rustfmt::skip]
        let table: Vec<(&Workspace, Goal, Vec<&str>, Hard)> = vec![
            (&limited, Goal::Available, vec!["workspace-admins", "workspace-public-view"], map(&[("limits.cpu", "4"), ("pods", "20")])),
            (&limited, Goal::Deactivated, vec![], map(&[("limits.cpu", "4"), ("pods", "0")])),
            (&limited, Goal::Deleted, vec![], map(&[("limits.cpu", "4"), ("pods", "0")])),
            (&limited, Goal::Released, vec![], None),
            (&unlimited, Goal::Available, vec!["workspace-admins", "workspace-public-view"], None),
            (&unlimited, Goal::Deactivated, vec![], map(&[("pods", "0")])),
            (&unlimited, Goal::Released, vec![], None),
        ];
        for (w, goal, bindings, quota) in table {
            let c = children(w, &s, T, goal);
            assert_eq!(names(&c), bindings, "{goal:?}");
            assert_eq!(hard(&c), quota, "{goal:?}");
        }
    }

    #[test]
    fn public_workspace_binds_owner_admins_and_public_group() {
        let w = ws("a").owner("alice").admins(&["bob", "alice"]).build();
        let rbs = role_bindings(&w, &Settings::default(), T);
        assert_eq!(rbs.len(), 2);
        let names: Vec<_> = rbs[0].subjects.as_ref().unwrap().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"], "the owner first, each subject once");
        assert_eq!(rbs[0].role_ref.name, "admin");
        assert_eq!(rbs[1].role_ref.name, "view");
        assert_eq!(rbs[1].subjects.as_ref().unwrap()[0].name, "system:authenticated");
        assert_eq!(rbs[0].metadata.namespace.as_deref(), Some(T));
    }

    #[test]
    fn internal_workspace_groups_grants_by_role() {
        let w = ws("a")
            .grant(SubjectKind::User, "carol", GrantRole::Edit)
            .grant(SubjectKind::Group, "data", GrantRole::View)
            .grant(SubjectKind::ServiceAccount, "ci:bot", GrantRole::Edit)
            .grant(SubjectKind::ServiceAccount, "local", GrantRole::Edit)
            .build();
        let rbs = role_bindings(&w, &Settings::default(), T);
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
        assert_eq!(role_bindings(&w, &Settings::default(), T).len(), 1);
    }

    #[test]
    fn namespace_records_its_workspace_and_management() {
        let w = ws("a").in_ns("acme").stored("u-1", "2026-01-01T00:00:00Z").enrolled("legacy").build();
        let ns = namespace(&w, "legacy");
        assert_eq!(ns.metadata.labels.as_ref().unwrap()[labels::MANAGEMENT], "Enrolled");
        let ann = ns.metadata.annotations.unwrap();
        assert_eq!(ann[labels::WORKSPACE_ANNOTATION], "acme/a");
        assert_eq!(ann[labels::UID_ANNOTATION], "u-1");
    }
}
