//! Escalation prevention on RBAC writes (`pkg/registry/rbac/*/policybased`): a Role or
//! ClusterRole may only be written by someone allowed to `escalate` it or who holds every rule
//! it grants; a binding only by someone allowed to `bind` its role or who holds every rule of
//! that role. So a namespace `admin` can bind `view`, `edit` or `admin` there, but never
//! `cluster-admin`, and cannot write a Role with more than it has.

use serde_json::Value;

use super::{Attributes, Authorizer, ResourceAttributes, Rule, rules_of};
use crate::errors::{ApiError, Result};
use crate::request::UserInfo;
use crate::resources::Resource;
use crate::store::{self, Guard};

/// One verb on one thing: what rules are split into to compare them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Atom {
    Resource { group: String, resource: String, name: String, verb: String },
    Url { url: String, verb: String },
}

fn atoms(rule: &Rule) -> Vec<Atom> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in &rule.non_resource_urls {
            out.push(Atom::Url { url: url.clone(), verb: verb.clone() });
        }
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let names =
                    if rule.resource_names.is_empty() { vec![String::new()] } else { rule.resource_names.clone() };
                for name in names {
                    out.push(Atom::Resource {
                        group: group.clone(),
                        resource: resource.clone(),
                        name,
                        verb: verb.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Does an owned rule cover one atom? A requested `*` is covered only by an owned `*`.
fn covered(owned: &Rule, atom: &Atom) -> bool {
    let has = |list: &[String], x: &str| list.iter().any(|y| y == "*" || y == x);
    match atom {
        Atom::Resource { group, resource, name, verb } => {
            has(&owned.verbs, verb)
                && has(&owned.api_groups, group)
                && owned.resources.iter().any(|r| {
                    r == "*"
                        || r == resource
                        || resource.split_once('/').is_some_and(|(_, sub)| r.strip_prefix("*/") == Some(sub))
                })
                && (owned.resource_names.is_empty() || owned.resource_names.iter().any(|n| n == name))
        }
        Atom::Url { url, verb } => {
            has(&owned.verbs, verb)
                && owned
                    .non_resource_urls
                    .iter()
                    .any(|u| u == "*" || u == url || (u.ends_with('*') && url.starts_with(&u[..u.len() - 1])))
        }
    }
}

/// `{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["web"], Verbs:["patch"]}`, one line
/// per missing rule, atoms of one group, resource and name merged by verb, sorted as strings.
fn describe(missing: &[Atom]) -> String {
    let quoted = |xs: &[String]| xs.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(" ");
    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    for atom in missing {
        let (key, verb) = match atom {
            Atom::Resource { group, resource, name, verb } => {
                let names = if name.is_empty() { String::new() } else { format!(", ResourceNames:[{name:?}]") };
                (format!("APIGroups:[{group:?}], Resources:[{resource:?}]{names}"), verb)
            }
            Atom::Url { url, verb } => (format!("NonResourceURLs:[{url:?}]"), verb),
        };
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some((_, verbs)) => verbs.push(verb.clone()),
            None => merged.push((key, vec![verb.clone()])),
        }
    }
    let mut lines: Vec<String> = merged.into_iter().map(|(k, v)| format!("{{{k}, Verbs:[{}]}}", quoted(&v))).collect();
    lines.sort();
    lines.join("\n")
}

impl Authorizer {
    /// What of `requested` the user does not hold in `namespace`; and bindings that could not
    /// be followed.
    fn not_held(
        &self,
        g: &Guard<'_>,
        user: &UserInfo,
        namespace: &str,
        requested: &[Rule],
    ) -> (Vec<Atom>, Vec<String>) {
        let mut owned: Vec<Rule> = Vec::new();
        let mut errors = Vec::new();
        self.applying_in(g, user, namespace, |b| {
            match &b.rules {
                Ok(rules) => owned.extend(rules.iter().cloned()),
                Err(e) => errors.push(e.clone()),
            }
            false
        });
        let mut missing: Vec<Atom> =
            requested.iter().flat_map(atoms).filter(|a| !owned.iter().any(|o| covered(o, a))).collect();
        missing.sort();
        missing.dedup();
        (missing, errors)
    }

    /// Refuse an RBAC write that would grant more than its writer holds.
    pub(crate) fn check_escalation(
        &self,
        g: &Guard<'_>,
        user: &UserInfo,
        res: &Resource,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<()> {
        if user.is_master() || res.group != super::GROUP {
            return Ok(());
        }
        if let Some(old) = old
            && same_but_owners_and_finalizers(old, new)
        {
            return Ok(());
        }
        let namespace = new["metadata"]["namespace"].as_str().unwrap_or("").to_string();
        let name = new["metadata"]["name"].as_str().unwrap_or("").to_string();
        let allowed = |verb: &str, resource: &str, name: &str| {
            let a = Attributes::resource(verb, ResourceAttributes::new(super::GROUP, resource, &namespace, name));
            self.authorize_in(g, user, &a).allowed
        };
        let requested: Vec<Rule> = match res.plural.as_str() {
            "roles" | "clusterroles" => {
                let aggregation = new.get("aggregationRule").is_some_and(|a| !a.is_null())
                    || old.is_some_and(|o| o.get("aggregationRule").is_some_and(|a| !a.is_null()));
                if aggregation {
                    let everything = [
                        Rule {
                            verbs: vec!["*".into()],
                            api_groups: vec!["*".into()],
                            resources: vec!["*".into()],
                            ..Rule::default()
                        },
                        Rule { verbs: vec!["*".into()], non_resource_urls: vec!["*".into()], ..Rule::default() },
                    ];
                    if !self.not_held(g, user, "", &everything).0.is_empty() {
                        return Err(ApiError::forbidden(
                            &res.named(&name),
                            "must have cluster-admin privileges to use the aggregationRule",
                        ));
                    }
                    return Ok(());
                }
                // POST carries no name, so `escalate` limited by resourceNames never allows a create.
                let target = if old.is_some() { name.as_str() } else { "" };
                if allowed("escalate", &res.plural, target) {
                    return Ok(());
                }
                rules_of(new)
            }
            "rolebindings" | "clusterrolebindings" => {
                let role_ref = &new["roleRef"];
                let role = role_ref["name"].as_str().unwrap_or("");
                let kind = if role_ref["kind"] == "Role" { "roles" } else { "clusterroles" };
                if allowed("bind", kind, role) {
                    return Ok(());
                }
                let stored = if kind == "roles" {
                    g.get(super::ROLES, &store::key(Some(&namespace), role))
                } else {
                    g.get(super::CLUSTER_ROLES, &store::key(None, role))
                };
                let Some(stored) = stored else {
                    let singular = &kind[..kind.len() - 1];
                    return Err(ApiError::not_found(&crate::errors::Named {
                        group: super::GROUP.into(),
                        plural: singular.into(),
                        name: role.into(),
                    }));
                };
                rules_of(&stored)
            }
            _ => return Ok(()),
        };
        let (missing, errors) = self.not_held(g, user, &namespace, &requested);
        if missing.is_empty() {
            return Ok(());
        }
        let groups = user.groups.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>().join(" ");
        let mut why = format!(
            "user {:?} (groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            describe(&missing)
        );
        if !errors.is_empty() {
            why.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
        }
        Err(ApiError::forbidden(&res.named(&name), &why))
    }
}

/// An update that changes only ownerReferences or finalizers is not checked.
fn same_but_owners_and_finalizers(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            for k in ["ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation"] {
                m.remove(k);
            }
        }
        v
    };
    strip(old) == strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Rule {
        let s = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect();
        Rule {
            verbs: s(verbs),
            api_groups: s(groups),
            resources: s(resources),
            resource_names: s(names),
            ..Rule::default()
        }
    }

    #[test]
    fn a_rule_covers_only_what_it_names_and_a_star_only_a_star() {
        let owned = [
            rule(&[""], &["pods", "*/scale"], &[], &["get", "list"]),
            rule(&["apps"], &["deployments"], &["web"], &["patch"]),
        ];
        let held = |r: Rule| atoms(&r).iter().all(|a| owned.iter().any(|o| covered(o, a)));
        assert!(held(rule(&[""], &["pods"], &[], &["get"])));
        assert!(held(rule(&[""], &["deployments/scale"], &[], &["list"])), "*/scale covers every scale");
        assert!(held(rule(&["apps"], &["deployments"], &["web"], &["patch"])));
        assert!(!held(rule(&["apps"], &["deployments"], &[], &["patch"])), "a name does not cover all names");
        assert!(!held(rule(&[""], &["pods"], &[], &["*"])), "a requested * needs an owned *");
        assert!(!held(rule(&[""], &["secrets"], &[], &["get"])));
    }

    #[test]
    fn missing_rules_are_listed_as_kube_apiserver_words_them() {
        let missing = [
            Atom::Resource { group: "".into(), resource: "secrets".into(), name: "".into(), verb: "get".into() },
            Atom::Resource { group: "".into(), resource: "secrets".into(), name: "".into(), verb: "list".into() },
            Atom::Resource {
                group: "apps".into(),
                resource: "deployments".into(),
                name: "web".into(),
                verb: "patch".into(),
            },
        ];
        assert_eq!(
            describe(&missing),
            "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}\n{APIGroups:[\"apps\"], Resources:[\"deployments\"], ResourceNames:[\"web\"], Verbs:[\"patch\"]}"
        );
    }
}
