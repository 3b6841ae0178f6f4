//! The platform's policy, from the Workspace's WorkspaceClass, and the rules that hold whatever
//! the class says: decided from the spec alone (pure). A Workspace that breaks one is Failed
//! with PolicyViolation, and the message says which rule and how to comply.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::crd::{AuthType, Management, ResourceLimits, SubjectKind, Workspace, WorkspaceClass};
use crate::labels;

/// Namespaces that are the cluster's own: never enrolled, never named by a Workspace.
pub const SYSTEM_NAMESPACES: [&str; 4] = ["kube-system", "kube-public", "kube-node-lease", "default"];

/// Namespaces a class reserves when it names none: where well-known cluster infrastructure
/// installs itself. A tenant who held one would be `admin` where that software later lands.
pub const RESERVED_NAMES: &[&str] = &[
    "argo-*",
    "argocd",
    "calico-apiserver",
    "calico-system",
    "cattle-*",
    "cert-manager",
    "cilium-*",
    "crossplane-system",
    "external-dns",
    "external-secrets",
    "fleet-*",
    "flux-system",
    "gatekeeper-system",
    "gpu-operator",
    "ingress-nginx",
    "istio-system",
    "karpenter",
    "keda",
    "knative-*",
    "kube-*",
    "kubernetes-dashboard",
    "kyverno",
    "linkerd",
    "linkerd-*",
    "longhorn-system",
    "metallb-system",
    "monitoring",
    "openshift",
    "openshift-*",
    "rook-ceph",
    "tekton-*",
    "tigera-operator",
    "vault",
    "velero",
];

/// The entry of `reserved` that `namespace` falls under, if any.
pub fn reserved<'a>(reserved: &'a [impl AsRef<str>], namespace: &str) -> Option<&'a str> {
    reserved.iter().map(AsRef::as_ref).find(|r| match r.strip_suffix('*') {
        Some(prefix) => namespace.starts_with(prefix),
        None => namespace == *r,
    })
}

/// The label by which a namespace's owner consents to its enrollment by an organization.
pub const ENROLL_FROM: &str = "workspaces.dev/enroll-from";

/// Where a Workspace would be carried out: facts the spec does not hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct Site<'a> {
    /// The namespace it provisions.
    pub target: &'a str,
    /// The operator's own namespace, if known: never a workspace's.
    pub protected: Option<&'a str>,
    /// The labels of its organization's namespace; read only when the class selects
    /// organizations (None: not read, or the namespace is gone).
    pub organization_labels: Option<&'a BTreeMap<String, String>>,
    /// The other organizations (namespaces that hold Workspaces), for an explicit namespace.
    pub organizations: &'a [String],
}

/// Why `ws` may not be carried out under `class`, if it may not. Its organization is the
/// Workspace's own namespace.
pub fn violation(ws: &Workspace, class: &WorkspaceClass, site: Site) -> Option<String> {
    let name = class.name_any();
    let organization = ws.namespace().unwrap_or_default();
    let spec = &ws.spec;
    let policy = &class.spec;
    let Site { target, protected, organization_labels, organizations } = site;
    if let Some(selector) = &policy.organizations {
        let offered = Selector::try_from(selector.clone())
            .is_ok_and(|s| organization_labels.is_some_and(|labels| s.matches(labels)));
        if !offered {
            return Some(format!(
                "WorkspaceClass {name} is not offered to organization {organization}: choose another class in spec.className"
            ));
        }
    }
    // The class's own list adds to the well-known names: a class a tenant may choose never
    // frees them. Which entry matched is not said (a tenant may not read the class).
    let own = policy.namespace.reserved_names.as_deref().unwrap_or_default();
    if reserved(RESERVED_NAMES, target).is_some() || reserved(own, target).is_some() {
        return Some(format!(
            "namespace {target} is reserved for cluster infrastructure by WorkspaceClass {name}: choose another name in spec.namespace"
        ));
    }
    if let Some(ns) = &spec.namespace {
        if SYSTEM_NAMESPACES.contains(&ns.as_str()) || Some(ns.as_str()) == protected {
            return Some(format!("namespace {ns} is the cluster's own: no Workspace may have it"));
        }
        if !policy.namespace.allow_explicit_name && spec.management == Management::Managed {
            return Some(format!(
                "WorkspaceClass {name} does not let Workspaces name their namespace: leave spec.namespace out"
            ));
        }
        let own_derived = labels::derived_namespace(&organization, &ws.name_any());
        if spec.management == Management::Managed && labels::looks_derived(ns) && *ns != own_derived {
            return Some(format!(
                "namespace {ns} ends as derived names do (a hash): those are reserved for their Workspaces; choose another name, or leave spec.namespace out"
            ));
        }
        // Prefixes nest (team-, team-a-): a name within a more specific organization's prefix,
        // or that organization's own name, is that organization's. Which organization is not
        // said: the Workspace's readers may not know of it.
        let nearer = organizations.iter().filter(|o| **o != organization && o.starts_with(&format!("{organization}-")));
        if nearer.into_iter().any(|o| ns == o || ns.starts_with(&format!("{o}-")))
            && spec.management == Management::Managed
        {
            return Some(format!(
                "namespace {ns} is within another organization's prefix: name it {organization}-<something> outside it, or leave spec.namespace out"
            ));
        }
        if spec.management == Management::Managed && !ns.starts_with(&format!("{organization}-")) {
            return Some(format!(
                "namespace {ns} is outside this organization's prefix: name it {organization}-<something>, or leave spec.namespace out"
            ));
        }
    }
    if spec.management == Management::Enrolled && !policy.enrollment.allowed {
        return Some(format!("WorkspaceClass {name} does not allow enrolling existing namespaces"));
    }
    if spec.auth_type == AuthType::Public && policy.access.public_group.as_deref().is_none_or(str::is_empty) {
        return Some(format!(
            "WorkspaceClass {name} names no public group, so no workspace of it may be Public: use Private or Internal"
        ));
    }
    for g in spec.grants.iter().flatten() {
        if !policy.access.allowed_roles.contains(&g.role) {
            let allowed: Vec<&str> = policy.access.allowed_roles.iter().map(|r| r.as_str()).collect();
            return Some(format!(
                "grant of {} to {} {}: WorkspaceClass {name} allows only the roles {}",
                g.role.as_str(),
                g.kind.as_str(),
                g.name,
                allowed.join(", ")
            ));
        }
        if g.kind == SubjectKind::ServiceAccount && !policy.access.service_accounts_outside {
            let ns = g.name.split(':').next().unwrap_or_default();
            if ns != target && ns != organization {
                return Some(format!(
                    "grant to ServiceAccount {}: WorkspaceClass {name} allows ServiceAccounts of {target} and {organization} only",
                    g.name
                ));
            }
        }
    }
    let max = policy.resources.max_limits.as_ref()?;
    let asked = limits(ws, class)?;
    let allowed: Vec<(&str, String)> = max.quantities();
    for (limit, value) in asked.quantities() {
        let Some((_, most)) = allowed.iter().find(|(l, _)| *l == limit) else { continue };
        match (amount(&value), amount(most)) {
            (Some(v), Some(m)) if v <= m => {}
            (Some(_), Some(_)) => {
                return Some(format!(
                    "resourceLimits.{limit} {value} is more than WorkspaceClass {name} allows ({most})"
                ));
            }
            _ => {
                return Some(format!(
                    "resourceLimits.{limit} {value} cannot be compared with the most WorkspaceClass {name} allows ({most}): write it as a number with a suffix such as m, Ki, Mi or Gi"
                ));
            }
        }
    }
    None
}

/// The limits that apply, limit by limit: the Workspace's own; else the class's default; else
/// the class's maximum, so that a limit the class caps is always bounded, even for a Workspace
/// that leaves it out.
pub fn limits(ws: &Workspace, class: &WorkspaceClass) -> Option<ResourceLimits> {
    let own = ws.spec.resource_limits.clone().unwrap_or_default();
    let resources = &class.spec.resources;
    let default = resources.default_limits.clone().unwrap_or_default();
    let max = resources.max_limits.clone().unwrap_or_default();
    let merged = ResourceLimits {
        cpu: own.cpu.or(default.cpu).or(max.cpu),
        memory: own.memory.or(default.memory).or(max.memory),
        pods: own.pods.or(default.pods).or(max.pods),
        storage: own.storage.or(default.storage).or(max.storage),
        gpu: own.gpu.or(default.gpu).or(max.gpu),
    };
    (merged != ResourceLimits::default()).then_some(merged)
}

/// A quantity as a number of base units, near enough to compare two (`500m`, `2`, `128Gi`,
/// `1e3`, `64000000u`). None for anything that is not a Kubernetes quantity, which the caller
/// treats as a breach rather than a pass.
pub fn amount(q: &str) -> Option<f64> {
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let binary = |power: i32| 1024f64.powi(power);
    let factor = match suffix {
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    let value = number.parse::<f64>().ok()? * factor;
    (value.is_finite() && value >= 0.0).then_some(value)
}

/// A limit as text, whichever way it was written.
pub fn text(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use crate::crd::{GrantRole, WorkspaceClassSpec};
    use crate::fixtures::ws;

    fn class(edit: impl FnOnce(&mut WorkspaceClassSpec)) -> WorkspaceClass {
        let mut spec = WorkspaceClassSpec::default();
        edit(&mut spec);
        WorkspaceClass::new("standard", spec)
    }

    const TARGET: &str = "acme-ml-0000";

    #[test]
    fn the_policy_refuses_what_the_class_does_not_offer() {
        let open = class(|s| {
            s.access.public_group = Some("staff".into());
        });
        let strict = class(|s| {
            s.namespace.allow_explicit_name = false;
            s.enrollment.allowed = false;
            s.access.allowed_roles = vec![GrantRole::View];
            s.resources.max_limits = Some(ResourceLimits {
                cpu: Some(IntOrString::String("8".into())),
                memory: Some(IntOrString::String("32Gi".into())),
                ..Default::default()
            });
        });
        let acme = |name: &str| ws(name).in_ns("acme");
        #[rustfmt::skip]
        let table: Vec<(&str, Workspace, &WorkspaceClass, Option<&str>)> = vec![
            ("a plain private workspace", acme("a").build(), &strict, None),
            ("public with a group", acme("a").auth(AuthType::Public).build(), &open, None),
            ("public without a group", acme("a").auth(AuthType::Public).build(), &strict, Some("names no public group")),
            ("a namespace in the prefix", acme("a").namespace("acme-data").build(), &open, None),
            ("a namespace outside the prefix", acme("a").namespace("monitoring").build(), &open, Some("outside this organization's prefix")),
            ("another organization's prefix", acme("a").namespace("acmex-data").build(), &open, Some("outside this organization's prefix")),
            ("another team's derived name", acme("a").namespace(&crate::labels::derived_namespace("acme-x", "ml")).build(), &open, Some("ends as derived names do")),
            ("its own derived name", acme("a").namespace(&crate::labels::derived_namespace("acme", "a")).build(), &open, None),
            ("explicit names not allowed", acme("a").namespace("acme-data").build(), &strict, Some("does not let Workspaces name")),
            ("a system namespace", acme("a").enrolled("kube-system").build(), &open, Some("the cluster's own")),
            ("default", acme("a").enrolled("default").build(), &open, Some("the cluster's own")),
            ("enrollment not allowed", acme("a").enrolled("legacy").build(), &strict, Some("does not allow enrolling")),
            ("enrollment allowed", acme("a").enrolled("legacy").build(), &open, None),
            ("a role the class allows", acme("a").grant(SubjectKind::User, "u", GrantRole::View).build(), &strict, None),
            ("a role beyond the class", acme("a").grant(SubjectKind::User, "u", GrantRole::Edit).build(), &strict, Some("allows only the roles view")),
            ("a ServiceAccount of the organization", acme("a").grant(SubjectKind::ServiceAccount, "acme:ci", GrantRole::View).build(), &open, None),
            ("a ServiceAccount of the workspace", acme("a").grant(SubjectKind::ServiceAccount, &format!("{TARGET}:bot"), GrantRole::View).build(), &open, None),
            ("another team's ServiceAccount", acme("a").grant(SubjectKind::ServiceAccount, "team-b:ci", GrantRole::View).build(), &open, Some("allows ServiceAccounts of")),
            ("limits within", acme("a").limit("cpu", "4").limit("memory", "16Gi").build(), &strict, None),
            ("cpu beyond", acme("a").limit("cpu", "16").build(), &strict, Some("resourceLimits.cpu 16 is more than")),
            ("memory beyond", acme("a").limit("memory", "64Gi").build(), &strict, Some("resourceLimits.memory 64Gi")),
            ("millicores within", acme("a").limit("cpu", "7500m").build(), &strict, None),
            ("micro-cores beyond", acme("a").limit("cpu", "64000000u").build(), &strict, Some("resourceLimits.cpu 64000000u is more than")),
            ("nano-cores within", acme("a").limit("cpu", "500000000n").build(), &strict, None),
            ("an exponent beyond", acme("a").limit("cpu", "1e3").build(), &strict, Some("is more than")),
            ("a fraction of a unit within", acme("a").limit("memory", "0.5Ki").build(), &strict, None),
            ("exa beyond", acme("a").limit("memory", "1E").build(), &strict, Some("is more than")),
            ("not a quantity", acme("a").limit("cpu", "8x").build(), &strict, Some("cannot be compared")),
        ];
        for (case, w, c, want) in table {
            let got = violation(&w, c, site());
            match want {
                None => assert_eq!(got, None, "{case}"),
                Some(text) => assert!(got.as_deref().is_some_and(|g| g.contains(text)), "{case}: {got:?}"),
            }
        }
        let own = ws("a").in_ns("acme").enrolled("workspace-system").build();
        assert!(violation(&own, &open, site()).is_some(), "the operator's namespace");
    }

    #[test]
    fn well_known_infrastructure_namespaces_are_reserved_unless_the_class_says_otherwise() {
        let default = class(|_| {});
        let own_list = class(|s| s.namespace.reserved_names = Some(vec!["team-a-prod".into(), "shared-*".into()]));
        let none = class(|s| s.namespace.reserved_names = Some(vec![]));
        let at = |org: &str, ns: &str, c: &WorkspaceClass, enrolled: bool| {
            let w = if enrolled { ws("w").in_ns(org).enrolled(ns) } else { ws("w").in_ns(org).namespace(ns) };
            violation(&w.build(), c, Site { target: ns, ..site() })
        };
        #[rustfmt::skip]
        type Case<'a> = (&'a str, &'a str, &'a str, &'a WorkspaceClass, bool, Option<&'a str>);
        let table: Vec<Case> = vec![
            ("an organization named ingress", "ingress", "ingress-nginx", &default, false, Some("reserved")),
            ("an organization named cert", "cert", "cert-manager", &default, false, Some("reserved")),
            ("an organization named istio", "istio", "istio-system", &default, false, Some("reserved")),
            ("a prefix pattern", "kube", "kube-anything", &default, false, Some("reserved")),
            ("enrolling one", "team-a", "monitoring", &default, true, Some("reserved")),
            ("a name near one", "ingress", "ingress-nginx-dev", &default, false, None),
            ("the class's own list", "team-a", "team-a-prod", &own_list, false, Some("reserved")),
            (
                "the class's own list adds to the defaults",
                "ingress",
                "ingress-nginx",
                &own_list,
                false,
                Some("reserved"),
            ),
            ("the class's own pattern", "shared", "shared-x", &own_list, false, Some("reserved")),
            ("an empty list frees nothing", "cert", "cert-manager", &none, false, Some("reserved")),
        ];
        for (case, org, ns, c, enrolled, want) in table {
            let got = at(org, ns, c, enrolled);
            match want {
                None => assert_eq!(got, None, "{case}"),
                Some(text) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(text) && g.contains("reserved")),
                    "{case}: {got:?}"
                ),
            }
        }
    }

    type Labels = BTreeMap<String, String>;

    fn site() -> Site<'static> {
        Site { target: TARGET, protected: Some("workspace-system"), organization_labels: None, organizations: &[] }
    }

    #[test]
    fn a_class_that_selects_organizations_is_refused_to_the_others() {
        let selector = LabelSelector {
            match_labels: Some([("tier".to_string(), "platform".to_string())].into()),
            ..Default::default()
        };
        let only_platform = class(|s| s.organizations = Some(selector));
        let w = ws("a").in_ns("acme").build();
        let platform: Labels = [("tier".to_string(), "platform".to_string())].into();
        let other: Labels = [("tier".to_string(), "apps".to_string())].into();
        #[rustfmt::skip]
        let table: Vec<(&str, Option<&Labels>, bool)> = vec![
            ("a selected organization", Some(&platform), true),
            ("another organization", Some(&other), false),
            ("labels unknown", None, false),
        ];
        for (case, labels, offered) in table {
            let got = violation(&w, &only_platform, Site { organization_labels: labels, ..site() });
            assert_eq!(got.is_none(), offered, "{case}: {got:?}");
        }
        let everyone = class(|_| {});
        assert_eq!(violation(&w, &everyone, site()), None, "unset: every organization");
    }

    #[test]
    fn each_limit_left_out_takes_the_class_default_else_its_maximum() {
        let int = |i| Some(IntOrString::Int(i));
        let c = class(|s| {
            s.resources.default_limits = Some(ResourceLimits { pods: int(10), ..Default::default() });
            s.resources.max_limits = Some(ResourceLimits { cpu: int(8), pods: int(50), ..Default::default() });
        });
        let own = |w: crate::fixtures::WorkspaceFixture| limits(&w.build(), &c).unwrap_or_default();
        let none = own(ws("a"));
        assert_eq!((none.pods, none.cpu.clone()), (int(10), int(8)), "the default, and the cap");
        let some = own(ws("a").limit("pods", "3"));
        assert_eq!((some.pods, some.cpu), (Some(IntOrString::String("3".into())), int(8)), "one set, the rest filled");
        assert_eq!(none.memory, None, "neither a default nor a cap: unlimited");
        assert_eq!(limits(&ws("a").build(), &class(|_| {})), None, "nothing to limit");
    }

    #[test]
    fn a_name_within_a_more_specific_organization_is_refused() {
        let open = class(|_| {});
        let orgs = ["team".to_string(), "team-a".to_string(), "other".to_string()];
        let at = |org: &str, ns: &str| {
            let w = ws("w").in_ns(org).namespace(ns).build();
            violation(&w, &open, Site { organizations: &orgs, ..site() })
        };
        #[rustfmt::skip]
        let table = [
            ("team", "team-a", Some("within another organization's prefix")),
            ("team", "team-a-data", Some("within another organization's prefix")),
            ("team", "team-ab", None),
            ("team", "team-data", None),
            ("team-a", "team-a-data", None),
        ];
        for (org, ns, want) in table {
            let got = at(org, ns);
            match want {
                None => assert_eq!(got, None, "{org} naming {ns}"),
                Some(text) => assert!(got.as_deref().is_some_and(|g| g.contains(text)), "{org} naming {ns}: {got:?}"),
            }
        }
    }
}
