//! Authorization as kube-apiserver does it with `--authorization-mode=RBAC`: the group
//! `system:masters` is allowed everything, then the rules of every ClusterRoleBinding, and of
//! the RoleBindings of the request's namespace, that name the user, one of its groups, or its
//! ServiceAccount. Rules only allow; nothing denies.
//!
//! `bootstrap` seeds the policy a new cluster has, `aggregate` keeps `admin`, `edit` and `view`
//! aggregated, `escalation` refuses RBAC writes that would grant more than the writer holds,
//! and `attributes` turns a request into what is authorized.
//!
//! Approximations: RBAC is the only authorizer (no Node authorizer, no webhook), and
//! aggregation runs at once inside the write rather than in a controller.

pub mod aggregate;
pub mod attributes;
pub mod bootstrap;
pub mod escalation;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::request::{SA_PREFIX, UserInfo};
use crate::store::{self, Bounds, Guard, Store};

pub use attributes::{Attributes, ResourceAttributes};

pub const GROUP: &str = "rbac.authorization.k8s.io";
pub const CLUSTER_ROLES: &str = "rbac.authorization.k8s.io/clusterroles";
pub const CLUSTER_ROLE_BINDINGS: &str = "rbac.authorization.k8s.io/clusterrolebindings";
pub const ROLES: &str = "rbac.authorization.k8s.io/roles";
pub const ROLE_BINDINGS: &str = "rbac.authorization.k8s.io/rolebindings";

/// One PolicyRule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(default, rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

impl Rule {
    /// Does this rule allow the request (`rbac/v1 evaluation_helpers.go`)?
    pub fn allows(&self, a: &Attributes) -> bool {
        if !has(&self.verbs, &a.verb) {
            return false;
        }
        match &a.resource {
            Some(r) => {
                let combined = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                has(&self.api_groups, &r.group)
                    && self.resources.iter().any(|x| {
                        x == "*"
                            || *x == combined
                            || (!r.subresource.is_empty() && x.strip_prefix("*/") == Some(r.subresource.as_str()))
                    })
                    && (self.resource_names.is_empty() || self.resource_names.contains(&r.name))
            }
            None => self
                .non_resource_urls
                .iter()
                .any(|u| u == "*" || *u == a.path || (u.ends_with('*') && a.path.starts_with(&u[..u.len() - 1]))),
        }
    }
}

pub fn rules_of(role: &Value) -> Vec<Rule> {
    serde_json::from_value(role["rules"].clone()).unwrap_or_default()
}

/// A binding's subject, as it matches users.
fn subject_matches(subject: &Value, binding_ns: &str, user: &UserInfo) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            user.name == format!("{}{ns}:{name}", SA_PREFIX)
        }
        _ => false,
    }
}

fn describe_subject(subject: &Value, binding_ns: &str) -> String {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "ServiceAccount" => {
            let ns = subject["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            format!("ServiceAccount \"{name}/{ns}\"")
        }
        kind => format!("{kind} \"{name}\""),
    }
}

/// The outcome of authorizing one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// Why, as SubjectAccessReview's `status.reason` says it.
    pub reason: String,
    /// Bindings that could not be followed (a missing role).
    pub errors: Vec<String>,
}

/// A binding that applies to a user, with the rules of its role (or why there are none).
pub struct Applying<'a> {
    binding: &'a Value,
    subject: &'a Value,
    /// The binding's namespace; empty for a ClusterRoleBinding.
    namespace: &'a str,
    pub rules: Result<Arc<Vec<Rule>>, String>,
}

impl Applying<'_> {
    /// As SubjectAccessReview's reason names it: `RoleBinding "n/ns" of ClusterRole "r" to User "u"`.
    pub fn describe(&self) -> String {
        let role_ref = &self.binding["roleRef"];
        let (kind, role) = (role_ref["kind"].as_str().unwrap_or(""), role_ref["name"].as_str().unwrap_or(""));
        let subject = describe_subject(self.subject, self.namespace);
        match self.namespace {
            "" => format!("ClusterRoleBinding \"{}\" of {kind} \"{role}\" to {subject}", name_of(self.binding)),
            ns => format!("RoleBinding \"{}/{ns}\" of {kind} \"{role}\" to {subject}", name_of(self.binding)),
        }
    }
}

/// ClusterRoles and ClusterRoleBindings, parsed once per change: every request reads them.
#[derive(Default)]
pub struct ClusterPolicy {
    roles: BTreeMap<String, Arc<Vec<Rule>>>,
    bindings: Vec<Arc<Value>>,
}

impl ClusterPolicy {
    pub fn load(g: &Guard<'_>) -> ClusterPolicy {
        let roles = g.collection(CLUSTER_ROLES).values().map(|r| (name_of(r), Arc::new(rules_of(r)))).collect();
        let bindings = g.collection(CLUSTER_ROLE_BINDINGS).values().cloned().collect();
        ClusterPolicy { roles, bindings }
    }
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// The authorizer's state: ClusterRoles and ClusterRoleBindings as it reads them; None after a
/// change.
#[derive(Default)]
pub struct Authorizer {
    policy: RwLock<Option<Arc<ClusterPolicy>>>,
}

impl Authorizer {
    fn cluster_policy(&self, g: &Guard<'_>) -> Arc<ClusterPolicy> {
        if let Some(p) = self.policy.read().unwrap_or_else(|p| p.into_inner()).clone() {
            return p;
        }
        let fresh = Arc::new(ClusterPolicy::load(g));
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Some(fresh.clone());
        fresh
    }

    /// Forget the parsed cluster policy: a ClusterRole or ClusterRoleBinding changed.
    pub(crate) fn policy_changed(&self) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Every binding that names `user`, cluster-wide and (with a namespace) in `namespace`,
    /// with its role's rules: what the authorizer, the rules review and the escalation check
    /// all walk.
    pub(crate) fn applying(
        &self,
        store: &Store,
        user: &UserInfo,
        namespace: &str,
        visit: impl FnMut(&Applying) -> bool,
    ) {
        self.applying_in(&store.lock(), user, namespace, visit)
    }

    /// As `applying`, inside a write that holds the store.
    pub(crate) fn applying_in(
        &self,
        g: &Guard<'_>,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&Applying) -> bool,
    ) {
        let policy = self.cluster_policy(g);
        for b in &policy.bindings {
            let Some(subject) = b["subjects"].as_array().into_iter().flatten().find(|s| subject_matches(s, "", user))
            else {
                continue;
            };
            let role = b["roleRef"]["name"].as_str().unwrap_or("");
            let rules = policy
                .roles
                .get(role)
                .cloned()
                .ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io \"{role}\" not found"));
            if visit(&Applying { binding: b, subject, namespace: "", rules }) {
                return;
            }
        }
        if namespace.is_empty() {
            return;
        }
        let bindings = g.collection(ROLE_BINDINGS);
        for (_, b) in Bounds::new(Some(namespace), None).iter(&bindings) {
            let Some(subject) =
                b["subjects"].as_array().into_iter().flatten().find(|s| subject_matches(s, namespace, user))
            else {
                continue;
            };
            let role = b["roleRef"]["name"].as_str().unwrap_or("");
            let rules = if b["roleRef"]["kind"] == "Role" {
                let r = g.get(ROLES, &store::key(Some(namespace), role)).map(|r| Arc::new(rules_of(&r)));
                r.ok_or_else(|| format!("role.rbac.authorization.k8s.io \"{role}\" not found"))
            } else {
                let r = policy.roles.get(role).cloned();
                r.ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io \"{role}\" not found"))
            };
            if visit(&Applying { binding: b, subject, namespace, rules }) {
                return;
            }
        }
    }

    pub(crate) fn authorize(&self, store: &Store, user: &UserInfo, a: &Attributes) -> Decision {
        if user.is_master() {
            return Decision { allowed: true, ..Decision::default() };
        }
        self.authorize_in(&store.lock(), user, a)
    }

    /// As `authorize`, inside a write that holds the store.
    pub(crate) fn authorize_in(&self, g: &Guard<'_>, user: &UserInfo, a: &Attributes) -> Decision {
        if user.is_master() {
            return Decision { allowed: true, ..Decision::default() };
        }
        let namespace = a.resource.as_ref().map(|r| r.namespace.clone()).unwrap_or_default();
        let mut decision = Decision::default();
        self.applying_in(g, user, &namespace, |binding| {
            match &binding.rules {
                Ok(rules) if rules.iter().any(|r| r.allows(a)) => {
                    decision.allowed = true;
                    decision.reason = format!("RBAC: allowed by {}", binding.describe());
                }
                Ok(_) => {}
                Err(e) => decision.errors.push(e.clone()),
            }
            decision.allowed
        });
        decision
    }
}

/// The 403 kube-apiserver answers a denied request with (`responsewriters/errors.go`).
pub fn forbidden(user: &UserInfo, a: &Attributes, decision: &Decision) -> ApiError {
    let mut message = match &a.resource {
        Some(r) => {
            let qualified = if r.group.is_empty() { r.resource.clone() } else { format!("{}.{}", r.resource, r.group) };
            let object = if r.name.is_empty() { qualified } else { format!("{qualified} \"{}\"", r.name) };
            let resource =
                if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{}\"", r.namespace)
            };
            format!(
                "{object} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
                user.name, a.verb, r.group
            )
        }
        None => format!("forbidden: User \"{}\" cannot {} path \"{}\"", user.name, a.verb, a.path),
    };
    match decision.errors.as_slice() {
        [] => {}
        [one] => message.push_str(&format!(": RBAC: {one}")),
        many => message.push_str(&format!(": RBAC: [{}]", many.join(", "))),
    }
    let message = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let details = match &a.resource {
        Some(r) => {
            let mut d = serde_json::Map::new();
            if !r.name.is_empty() {
                d.insert("name".into(), json!(r.name));
            }
            if !r.group.is_empty() {
                d.insert("group".into(), json!(r.group));
            }
            d.insert("kind".into(), json!(r.resource));
            Value::Object(d)
        }
        None => json!({}),
    };
    ApiError::forbidden_raw(message, details)
}
