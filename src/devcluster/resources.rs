//! The resource catalogue: built-in kinds stored without controllers, plus whatever the stored
//! CustomResourceDefinitions declare. Rebuilt whenever a CRD changes, so discovery, routing and
//! admission always agree with the CRDs in the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::validation::NameRule;

/// One servable resource at one group/version.
#[derive(Debug, Clone)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status: bool,
    pub scale: bool,
    pub name_rule: NameRule,
    pub tracks_generation: bool,
    /// A review: create-only, answered and never stored (SubjectAccessReview and the like).
    pub review: bool,
    /// ServiceAccounts' `token` subresource (TokenRequest).
    pub token: bool,
    /// Storage is shared across versions (and between the two Event APIs).
    pub collection: Arc<str>,
    /// For custom resources: the version's schema and presentation.
    pub custom: Option<Arc<CustomVersion>>,
}

#[derive(Debug, Clone)]
pub struct CustomVersion {
    pub schema: Value,
    /// The schema's CEL rules, compiled; None when it has none.
    pub rules: Option<Arc<kube::core::cel::CompiledSchema>>,
    pub printer_columns: Vec<Value>,
    pub selectable_fields: Vec<String>,
    pub crd_name: String,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn is_custom(&self) -> bool {
        self.custom.is_some()
    }

    pub fn named(&self, name: &str) -> crate::errors::Named {
        crate::errors::Named { group: self.group.clone(), plural: self.plural.clone(), name: name.into() }
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
    name_rule: NameRule,
    generation: bool,
    categories: &'static [&'static str],
    review: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        status: false,
        scale: false,
        name_rule: NameRule::Subdomain,
        generation: false,
        categories: &[],
        review: false,
    }
}

const fn review(group: &'static str, kind: &'static str, plural: &'static str, namespaced: bool) -> Builtin {
    Builtin { review: true, name_rule: NameRule::PathSegment, ..b(group, "v1", kind, plural, namespaced, &[]) }
}

fn builtins() -> Vec<Builtin> {
    use NameRule::*;
    vec![
        Builtin { status: true, name_rule: Label, ..b("", "v1", "Namespace", "namespaces", false, &["ns"]) },
        b("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
        b("", "v1", "Secret", "secrets", true, &[]),
        b("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
        Builtin {
            status: true,
            name_rule: Label,
            categories: &["all"],
            ..b("", "v1", "Service", "services", true, &["svc"])
        },
        Builtin { status: true, ..b("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"]) },
        Builtin { name_rule: PathSegment, ..b("", "v1", "Event", "events", true, &["ev"]) },
        Builtin { status: true, categories: &["all"], ..b("", "v1", "Pod", "pods", true, &["po"]) },
        b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"]),
        b("", "v1", "LimitRange", "limitranges", true, &["limits"]),
        Builtin {
            status: true,
            scale: true,
            generation: true,
            categories: &["all"],
            ..b("apps", "v1", "Deployment", "deployments", true, &["deploy"])
        },
        Builtin {
            status: true,
            scale: true,
            generation: true,
            categories: &["all"],
            ..b("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"])
        },
        Builtin {
            status: true,
            scale: true,
            generation: true,
            name_rule: Label,
            categories: &["all"],
            ..b("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"])
        },
        Builtin {
            status: true,
            generation: true,
            categories: &["all"],
            ..b("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"])
        },
        Builtin { status: true, generation: true, categories: &["all"], ..b("batch", "v1", "Job", "jobs", true, &[]) },
        Builtin {
            status: true,
            generation: true,
            categories: &["all"],
            ..b("batch", "v1", "CronJob", "cronjobs", true, &["cj"])
        },
        // kube-apiserver never sets an HPA's generation.
        Builtin {
            status: true,
            categories: &["all"],
            ..b("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, &["hpa"])
        },
        Builtin { name_rule: PathSegment, ..b("events.k8s.io", "v1", "Event", "events", true, &["ev"]) },
        Builtin { name_rule: PathSegment, ..b("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[]) },
        Builtin {
            name_rule: PathSegment,
            ..b("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[])
        },
        Builtin {
            name_rule: PathSegment,
            ..b("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[])
        },
        Builtin {
            name_rule: PathSegment,
            ..b("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[])
        },
        b("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
        review("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews", false),
        review("authorization.k8s.io", "SelfSubjectRulesReview", "selfsubjectrulesreviews", false),
        review("authorization.k8s.io", "SubjectAccessReview", "subjectaccessreviews", false),
        review("authorization.k8s.io", "LocalSubjectAccessReview", "localsubjectaccessreviews", true),
        review("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews", false),
        review("authentication.k8s.io", "TokenReview", "tokenreviews", false),
        Builtin {
            status: true,
            generation: true,
            ..b("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"])
        },
        Builtin {
            generation: true,
            ..b("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"])
        },
        // Admission policies are stored (charts ship them), not enforced.
        Builtin {
            status: true,
            generation: true,
            ..b(
                "admissionregistration.k8s.io",
                "v1",
                "ValidatingAdmissionPolicy",
                "validatingadmissionpolicies",
                false,
                &[],
            )
        },
        Builtin {
            generation: true,
            ..b(
                "admissionregistration.k8s.io",
                "v1",
                "ValidatingAdmissionPolicyBinding",
                "validatingadmissionpolicybindings",
                false,
                &[],
            )
        },
        Builtin {
            status: true,
            generation: true,
            ..b(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                &["crd", "crds"],
            )
        },
    ]
}

/// All servable resources, indexed for routing and for discovery.
#[derive(Debug, Default, Clone)]
pub struct Catalogue {
    /// (group, version, plural) -> resource
    by_path: BTreeMap<(String, String, String), Arc<Resource>>,
    /// Groups in discovery order, each with its versions in preference order.
    groups: Vec<(String, Vec<String>)>,
}

impl Catalogue {
    pub fn new(crds: &[Arc<Value>]) -> Self {
        let mut cat = Catalogue::default();
        for bi in builtins() {
            // Both Event APIs are one store, as on a real cluster.
            let collection = if bi.plural == "events" {
                "events".to_string()
            } else if bi.group.is_empty() {
                bi.plural.to_string()
            } else {
                format!("{}/{}", bi.group, bi.plural)
            };
            cat.add(Resource {
                group: bi.group.into(),
                version: bi.version.into(),
                kind: bi.kind.into(),
                plural: bi.plural.into(),
                singular: bi.kind.to_lowercase(),
                namespaced: bi.namespaced,
                short_names: bi.short.iter().map(|s| s.to_string()).collect(),
                categories: bi.categories.iter().map(|s| s.to_string()).collect(),
                status: bi.status,
                scale: bi.scale,
                name_rule: bi.name_rule,
                tracks_generation: bi.generation,
                review: bi.review,
                token: bi.group.is_empty() && bi.plural == "serviceaccounts",
                collection: collection.into(),
                custom: None,
            });
        }
        for crd in crds {
            cat.add_crd(crd);
        }
        cat
    }

    fn add(&mut self, r: Resource) {
        match self.groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version.clone());
                }
            }
            None => self.groups.push((r.group.clone(), vec![r.version.clone()])),
        }
        self.by_path.insert((r.group.clone(), r.version.clone(), r.plural.clone()), Arc::new(r));
    }

    fn add_crd(&mut self, crd: &Value) {
        // A CRD being deleted keeps serving until its objects are gone (real server: Terminating).
        let spec = &crd["spec"];
        let group = spec["group"].as_str().unwrap_or_default().to_string();
        let names = &spec["names"];
        let plural = names["plural"].as_str().unwrap_or_default().to_string();
        let kind = names["kind"].as_str().unwrap_or_default().to_string();
        let strs = |v: &Value| -> Vec<String> {
            v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
        };
        let mut versions: Vec<&Value> = spec["versions"].as_array().map(|v| v.iter().collect()).unwrap_or_default();
        versions.retain(|v| v["served"].as_bool().unwrap_or(false));
        // Preferred version first: the real server sorts by Kubernetes version priority; the
        // storage version first is a close, predictable approximation.
        versions.sort_by_key(|v| !v["storage"].as_bool().unwrap_or(false));
        let crd_name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        for v in versions {
            let version = v["name"].as_str().unwrap_or_default().to_string();
            let selectable = v["selectableFields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f["jsonPath"].as_str())
                        .map(|p| p.trim_start_matches('.').to_string())
                        .collect()
                })
                .unwrap_or_default();
            self.add(Resource {
                group: group.clone(),
                version,
                kind: kind.clone(),
                plural: plural.clone(),
                singular: names["singular"].as_str().map(String::from).unwrap_or_else(|| kind.to_lowercase()),
                namespaced: spec["scope"] == "Namespaced",
                short_names: strs(&names["shortNames"]),
                categories: strs(&names["categories"]),
                status: v["subresources"]["status"].is_object(),
                scale: v["subresources"]["scale"].is_object(),
                name_rule: NameRule::Subdomain,
                tracks_generation: true,
                collection: format!("{group}/{plural}").into(),
                review: false,
                token: false,
                custom: Some(Arc::new(CustomVersion {
                    rules: super::admission::compile_rules(&v["schema"]["openAPIV3Schema"]),
                    schema: v["schema"]["openAPIV3Schema"].clone(),
                    printer_columns: v["additionalPrinterColumns"].as_array().cloned().unwrap_or_default(),
                    selectable_fields: selectable,
                    crd_name: crd_name.clone(),
                })),
            });
        }
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.by_path.get(&(group.to_string(), version.to_string(), plural.to_string())).cloned()
    }

    pub fn groups(&self) -> &[(String, Vec<String>)] {
        &self.groups
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Resource>> + 'a {
        self.by_path.values().filter(move |r| r.group == group && r.version == version)
    }

    /// The preferred-version resource that stores `collection`.
    pub fn by_collection(&self, collection: &str) -> Option<Arc<Resource>> {
        for (g, versions) in &self.groups {
            for v in versions {
                if let Some(r) = self.in_group_version(g, v).find(|r| &*r.collection == collection) {
                    return Some(r.clone());
                }
            }
        }
        None
    }
}
