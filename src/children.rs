//! The objects a Workspace should have in its namespace, derived from the spec alone
//! (spec in, objects out), so the rules are unit-tested without a server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::crd::{AuthType, GrantRole, Management, SubjectKind, Workspace};
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
pub fn namespace(ws: &Workspace) -> Namespace {
    let mut m = meta(ws, &labels::target_namespace(ws), None);
    if let Some(l) = m.labels.as_mut() {
        l.insert(labels::MANAGEMENT.into(), labels::management_str(ws.spec.management).into());
    }
    Namespace { metadata: m, ..Default::default() }
}

/// RoleBindings that give access while the workspace is Available: owner and admins get
/// `admin`; Public workspaces give the public group `view`; Internal ones bind each grant.
pub fn role_bindings(ws: &Workspace, settings: &Settings) -> Vec<RoleBinding> {
    let ns = labels::target_namespace(ws);
    let binding = |name: &str, role: &str, subjects: Vec<Subject>| RoleBinding {
        metadata: meta(ws, name, Some(&ns)),
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
                    SubjectKind::ServiceAccount => service_account(&g.name, &ns),
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

/// The ResourceQuota: `resourceLimits` mirrored; when deactivated, `pods: 0` blocks new pods
/// while every existing object is kept. None when there is nothing to limit.
pub fn quota(ws: &Workspace, deactivated: bool) -> Option<ResourceQuota> {
    let mut hard = BTreeMap::new();
    if let Some(l) = &ws.spec.resource_limits {
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                hard.insert(k.to_string(), Quantity(v.clone()));
            }
        };
        put("limits.cpu", &l.cpu);
        put("limits.memory", &l.memory);
        put("pods", &l.pods);
        put("requests.storage", &l.storage);
        put("requests.nvidia.com/gpu", &l.gpu);
    }
    if deactivated {
        hard.insert("pods".into(), Quantity("0".into()));
    }
    if hard.is_empty() {
        return None;
    }
    let ns = labels::target_namespace(ws);
    Some(ResourceQuota {
        metadata: meta(ws, labels::QUOTA, Some(&ns)),
        spec: Some(ResourceQuotaSpec { hard: Some(hard), ..Default::default() }),
        status: None,
    })
}

/// Quantities the schema pattern lets through but Kubernetes would not store (overflow).
pub fn invalid_quantities(ws: &Workspace) -> Vec<String> {
    let Some(l) = &ws.spec.resource_limits else {
        return Vec::new();
    };
    [("cpu", &l.cpu), ("memory", &l.memory), ("pods", &l.pods), ("storage", &l.storage), ("gpu", &l.gpu)]
        .into_iter()
        .filter_map(|(k, v)| {
            v.as_ref().filter(|v| !quantity_fits(v)).map(|v| format!("resourceLimits.{k}: {v:?} is out of range"))
        })
        .collect()
}

/// Kubernetes stores quantities as int64 scaled values; far larger numbers are refused.
fn quantity_fits(q: &str) -> bool {
    let digits: String = q.chars().take_while(|c| c.is_ascii_digit()).collect();
    let exp = q.find(['e', 'E']).and_then(|i| q[i + 1..].parse::<i32>().ok()).unwrap_or(0);
    digits.trim_start_matches('0').len() as i32 + exp <= 18
}

pub fn is_enrolled(ws: &Workspace) -> bool {
    ws.spec.management == Management::Enrolled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::WorkspaceSpec;

    fn ws(spec: serde_json::Value) -> Workspace {
        let spec: WorkspaceSpec = serde_json::from_value(spec).unwrap();
        let mut w = Workspace::new("team-a", spec);
        w.metadata.namespace = Some("acme".into());
        w.metadata.uid = Some("u-1".into());
        w
    }

    #[test]
    fn public_workspace_binds_owner_admins_and_public_group() {
        let w = ws(serde_json::json!({"owner": "alice", "admins": ["bob", "alice"]}));
        let rbs = role_bindings(&w, &Settings::default());
        assert_eq!(rbs.len(), 2);
        let names: Vec<_> = rbs[0].subjects.as_ref().unwrap().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(rbs[0].role_ref.name, "admin");
        assert_eq!(rbs[1].role_ref.name, "view");
        assert_eq!(rbs[1].subjects.as_ref().unwrap()[0].name, "system:authenticated");
        assert_eq!(rbs[0].metadata.namespace.as_deref(), Some(labels::target_namespace(&w).as_str()));
    }

    #[test]
    fn internal_workspace_groups_grants_by_role() {
        let w = ws(serde_json::json!({"owner": "alice", "authType": "Internal", "grants": [
            {"kind": "User", "name": "carol", "role": "edit"},
            {"kind": "Group", "name": "data", "role": "view"},
            {"kind": "ServiceAccount", "name": "ci:bot", "role": "edit"}]}));
        let rbs = role_bindings(&w, &Settings::default());
        let names: Vec<_> = rbs.iter().map(|r| r.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["workspace-admins", "workspace-grants-view", "workspace-grants-edit"]);
        let sa = &rbs[2].subjects.as_ref().unwrap()[1];
        assert_eq!(
            (sa.kind.as_str(), sa.namespace.as_deref(), sa.name.as_str()),
            ("ServiceAccount", Some("ci"), "bot")
        );
    }

    #[test]
    fn private_workspace_binds_only_owner_and_admins() {
        let w = ws(serde_json::json!({"owner": "alice", "authType": "Private"}));
        assert_eq!(role_bindings(&w, &Settings::default()).len(), 1);
    }

    #[test]
    fn quota_mirrors_limits_and_blocks_pods_when_deactivated() {
        let w = ws(serde_json::json!({"owner": "a", "resourceLimits": {"cpu": "4", "memory": "8Gi", "pods": "20"}}));
        let q = quota(&w, false).unwrap();
        let hard = q.spec.unwrap().hard.unwrap();
        assert_eq!(hard["limits.cpu"].0, "4");
        assert_eq!(hard["pods"].0, "20");
        let q = quota(&w, true).unwrap();
        assert_eq!(q.spec.unwrap().hard.unwrap()["pods"].0, "0");
        let none = ws(serde_json::json!({"owner": "a"}));
        assert!(quota(&none, false).is_none());
        assert_eq!(quota(&none, true).unwrap().spec.unwrap().hard.unwrap().len(), 1);
    }

    #[test]
    fn overflowing_quantities_are_reported() {
        let w =
            ws(serde_json::json!({"owner": "a", "resourceLimits": {"cpu": "99999999999999999999", "memory": "1e30"}}));
        assert_eq!(invalid_quantities(&w).len(), 2);
        let ok = ws(serde_json::json!({"owner": "a", "resourceLimits": {"cpu": "500m", "memory": "64Gi"}}));
        assert!(invalid_quantities(&ok).is_empty());
    }
}
