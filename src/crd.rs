//! The `Workspace` custom resource: spec (desired state), status (observed state).
//!
//! Every rule that can be declared is declared here, so the API server refuses bad input at
//! admission with a message naming the field. What only the controller can know (a namespace
//! owned by someone else, a second default) is reported in the status instead.

// kube-derive takes repeated `printcolumn`/`selectable` attributes by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strum::{EnumString, IntoStaticStr, VariantArray};

/// An enum of the API. Each variant has one name on the wire, the one serde gives it; strum
/// repeats serde's renaming (`wire_names_agree_with_serde` checks that they agree), so labels,
/// Events, metrics and the plugin take names from `as_str`, parse them back in any case, and
/// list them all from `VARIANTS`.
macro_rules! api_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)* }) => {
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
        #[derive(IntoStaticStr, EnumString, VariantArray)]
        #[strum(ascii_case_insensitive)]
        $(#[$meta])*
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

/// A workspace: an access-controlled, quota-bounded area of the cluster (one namespace).
///
/// The Workspace's own namespace is its organization: whoever may write Workspaces there decides
/// the organization's workspaces.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "workspaces.dev",
    version = "v1alpha1",
    kind = "Workspace",
    doc = "A workspace: an access-controlled, quota-bounded namespace for a team or a project, provisioned, deactivated and torn down by workspace-operator.",
    plural = "workspaces",
    shortname = "ws",
    category = "all",
    namespaced,
    status = "WorkspaceStatus",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Owner", type_ = "string", json_path = ".spec.owner"),
    printcolumn(name = "Desired", type_ = "string", json_path = ".spec.desiredState"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.stateReason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Enterprise Project", type_ = "string", json_path = ".spec.enterpriseProject", priority = 1),
    printcolumn(name = "Auth", type_ = "string", json_path = ".spec.authType", priority = 1),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace", priority = 1),
    printcolumn(name = "Status Updated", type_ = "date", json_path = ".status.statusUpdated", priority = 1),
    selectable = ".status.status",
    selectable = ".spec.owner",
    selectable = ".spec.enterpriseProject",
    selectable = ".spec.desiredState",
    selectable = ".spec.authType",
    selectable = ".spec.resourceGroup",
    selectable = ".status.workspaceId"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.grants) || size(self.grants) == 0 || self.authType == 'Internal'")
    .message("grants are allowed only when authType is Internal").field_path(".grants"))]
#[x_kube(validation = Rule::new("self.management != 'Enrolled' || has(self.__namespace__)")
    .message("namespace is required when management is Enrolled").field_path(".namespace")
    .reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("has(self.__namespace__) == has(oldSelf.__namespace__)")
    .message("namespace is immutable: it cannot be added or removed after creation"))]
#[x_kube(validation = Rule::new("!has(self.admins) || !self.admins.exists(a, a == self.owner)")
    .message("the owner must not also be listed in admins").field_path(".admins"))]
pub struct WorkspaceSpec {
    /// Human-readable name shown in lists; 1 to 50 characters.
    #[schemars(length(min = 1, max = 50))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,

    /// What the workspace is for; at most 256 characters.
    #[schemars(length(max = 256))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// An http(s) URL of the workspace's logo; at most 2048 characters.
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,

    /// The owner's Kubernetes user name, as the cluster's authentication reports it (for example
    /// an e-mail address). The owner gets the `admin` ClusterRole in the workspace namespace.
    #[schemars(length(min = 1, max = 253))]
    pub owner: String,

    /// Further Kubernetes user names that get `admin` in the workspace namespace: at most 50,
    /// each once, not the owner.
    #[schemars(length(max = 50), inner(length(min = 1, max = 253)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admins: Option<Vec<String>>,

    /// Who gets access besides owner and admins: `Public` (the platform's public group gets
    /// `view`), `Private` (nobody) or `Internal` (the subjects listed in `grants`).
    #[serde(default)]
    pub auth_type: AuthType,

    /// Extra access, only when authType is `Internal`: each grant gives a user, a group or a
    /// ServiceAccount a ClusterRole (`view`, `edit` or `admin`) in the workspace namespace; at
    /// most 100.
    #[schemars(length(max = 100))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<Grant>>,

    /// The project the workspace is accounted to, for lists and reports: 1 to 64 letters,
    /// digits, `-` or `_`; `default` when not set.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    #[serde(default = "default_enterprise_project")]
    pub enterprise_project: String,

    /// The pool of compute the workspace draws from, for lists: a valid label value (1 to 63
    /// letters, digits, `-`, `_` or `.`, beginning and ending with a letter or digit).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,

    /// Free-form key/value pairs shown in lists; at most 20.
    #[schemars(length(max = 20))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,

    /// Limits for the workspace namespace as a whole, kept in its ResourceQuota
    /// `workspace-quota` (numbers or quantity strings): cpu is `limits.cpu`, memory
    /// `limits.memory`, pods `pods`, storage `requests.storage`, gpu `requests.nvidia.com/gpu`.
    /// With a cpu or memory limit, a pod whose containers set no cpu or memory limits is refused
    /// unless a LimitRange gives them defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_limits: Option<ResourceLimits>,

    /// Marks the organization's default workspace. At most one per namespace: the oldest wins,
    /// and a later one is Failed with DefaultConflict.
    #[serde(default)]
    pub is_default: bool,

    /// `Managed` (the default): the operator creates the namespace, and may delete it with
    /// deletionPolicy Delete. `Enrolled`: it adopts the existing namespace named in `namespace`
    /// and never deletes it. Cannot be changed.
    #[x_kube(validation = Rule::new("self == oldSelf").message("management is immutable"))]
    #[serde(default)]
    pub management: Management,

    /// The namespace to create (Managed) or adopt (Enrolled). When not set, one is derived from
    /// this Workspace's namespace and name, with a hash that keeps it unique. Cannot be added,
    /// removed or changed after creation.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("namespace is immutable"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// `Available` (the default); `Deactivated`: access revoked and new pods blocked, every
    /// object kept; `Deleted`: access revoked, and the namespace deleted only with deletionPolicy
    /// Delete (otherwise kept, with new pods blocked).
    #[serde(default)]
    pub desired_state: DesiredState,

    /// What happens to a namespace the operator created when the workspace is deleted: `Retain`
    /// (the default) keeps it and its data, `Delete` deletes it. An enrolled namespace is never
    /// deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_enterprise_project() -> String {
    "default".into()
}

api_enum! {
    #[derive(Default)]
    pub enum AuthType {
        #[default]
        Public,
        Private,
        Internal,
    }
}

api_enum! {
    #[derive(Default)]
    pub enum Management {
        #[default]
        Managed,
        Enrolled,
    }
}

api_enum! {
    #[derive(Default)]
    pub enum DesiredState {
        #[default]
        Available,
        Deactivated,
        Deleted,
    }
}

api_enum! {
    #[derive(Default)]
    pub enum DeletionPolicy {
        #[default]
        Retain,
        Delete,
    }
}

/// Access for one subject.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Grant {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: SubjectKind,
    /// A user or group name; for a ServiceAccount `namespace:name`, or a bare name for one in the
    /// workspace namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The ClusterRole the subject gets in the workspace namespace: `view`, `edit` or `admin`.
    pub role: GrantRole,
}

api_enum! {
    pub enum SubjectKind {
        User,
        Group,
        ServiceAccount,
    }
}

api_enum! {
    #[serde(rename_all = "lowercase")]
    #[strum(serialize_all = "lowercase")]
    pub enum GrantRole {
        View,
        Edit,
        Admin,
    }
}

impl GrantRole {
    /// The built-in ClusterRole this role binds to: the one of the same name.
    pub fn cluster_role(self) -> &'static str {
        self.as_str()
    }
}

/// A key/value pair.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Tag {
    /// 1 to 128 characters.
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    /// At most 255 characters.
    #[schemars(length(max = 255))]
    #[serde(default)]
    pub value: String,
}

/// A quantity, as ResourceQuota's `hard` takes it: an integer, or a string such as `500m`, `2`
/// or `128Gi`.
const QUANTITY_RULE: &str = "isQuantity(string(self)) && quantity(string(self)).sign() >= 0";
const QUANTITY_MESSAGE: &str = "must be a quantity such as 500m, 2, 128Gi";
/// A count: an integer, or a string of digits.
const COUNT_RULE: &str = "string(self).matches('^[0-9]+$')";
const COUNT_MESSAGE: &str = "must be a whole number such as 20";

/// Limits for the whole workspace namespace, kept in its ResourceQuota.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct ResourceLimits {
    /// CPU of all containers together (`limits.cpu`), such as `500m`, `2` or `16`.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<IntOrString>,
    /// Memory of all containers together (`limits.memory`), such as `512Mi` or `128Gi`.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<IntOrString>,
    /// How many pods may exist at once (`pods`).
    #[x_kube(validation = Rule::new(COUNT_RULE).message(COUNT_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<IntOrString>,
    /// Storage all PersistentVolumeClaims may request together (`requests.storage`), such as
    /// `1Ti`.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<IntOrString>,
    /// NVIDIA GPUs all containers may request together (`requests.nvidia.com/gpu`).
    #[x_kube(validation = Rule::new(COUNT_RULE).message(COUNT_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<IntOrString>,
}

impl ResourceLimits {
    /// Each limit that is set, by name, as the quantity text Kubernetes stores.
    pub fn quantities(&self) -> Vec<(&'static str, String)> {
        let text = |v: &IntOrString| match v {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::String(s) => s.clone(),
        };
        [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("pods", &self.pods),
            ("storage", &self.storage),
            ("gpu", &self.gpu),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| (name, text(v))))
        .collect()
    }
}

/// The observed state, written only by the controller through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// Where the workspace is in its lifecycle: Pending, Provisioning, Available, Deactivated,
    /// Failed, Deleting, Deleted or DeleteFailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<State>,
    /// Why it is in that state, as one word (for example Provisioned or NamespaceConflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<StateReason>,
    /// The details, for a person: what happened and, for a failure, what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_updated: Option<String>,
    /// When the controller first saw the current generation of the spec (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the workspace is in the state it asks for), `Reconciling` and `Stalled`, as
    /// kstatus, Flux and `kubectl wait` read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The namespace provisioned (or adopted) for this workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Workspace's uid without hyphens, as cloud workspace APIs write their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
}

api_enum! {
    /// Lifecycle states; the README maps them to the states of cloud workspace APIs.
    pub enum State {
        Pending,
        Provisioning,
        Available,
        Deactivated,
        Failed,
        Deleting,
        Deleted,
        DeleteFailed,
    }
}

api_enum! {
    /// Why the workspace is in its state: a closed set, documented in the README.
    pub enum StateReason {
        /// Seen for the first time; nothing done yet.
        Created,
        /// Namespace, access and quota are in place.
        Provisioned,
        /// The user asked for Deactivated or Deleted.
        UserRequested,
        /// The target namespace exists and belongs to someone else.
        NamespaceConflict,
        /// An Enrolled workspace names a namespace that does not exist.
        NamespaceNotFound,
        /// The spec passed admission but cannot be carried out (e.g. a bad quantity).
        InvalidSpec,
        /// Another Workspace in the same namespace is already the default.
        DefaultConflict,
        /// An API call failed while provisioning; retried with backoff.
        ProvisioningFailed,
        /// An API call failed while tearing down; retried with backoff.
        DeletionFailed,
        /// The namespace is being deleted by the operator (deletionPolicy Delete).
        NamespaceTerminating,
    }
}

/// The CRD as YAML, exactly as committed in `crds/workspace.yaml`.
pub fn crd_yaml() -> String {
    let crd = Workspace::crd();
    let mut out = String::from("# Generated by `workspace-operator crd`; do not edit by hand.\n");
    out.push_str(&crate::yaml::to_string(&crd));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_declares_names_columns_and_selectable_fields() {
        let crd = serde_json::to_value(Workspace::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "workspaces.workspaces.dev");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "ws");
        let version = &crd["spec"]["versions"][0];
        let fields = version["selectableFields"].as_array().unwrap();
        assert!(fields.len() <= 8, "Kubernetes allows at most 8 selectable fields");
        let wide: Vec<_> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 1)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(wide, ["Enterprise Project", "Auth", "Namespace", "Status Updated"]);
    }

    fn agree<T>()
    where
        T: VariantArray + Serialize + Copy + Into<&'static str> + std::str::FromStr + PartialEq + std::fmt::Debug,
    {
        for v in T::VARIANTS {
            let name: &'static str = (*v).into();
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(name));
            assert_eq!(T::from_str(name).ok(), Some(*v));
            assert_eq!(T::from_str(&name.to_ascii_lowercase()).ok(), Some(*v), "parsing ignores case");
        }
    }

    #[test]
    fn wire_names_agree_with_serde() {
        agree::<AuthType>();
        agree::<Management>();
        agree::<DesiredState>();
        agree::<DeletionPolicy>();
        agree::<SubjectKind>();
        agree::<GrantRole>();
        agree::<State>();
        agree::<StateReason>();
    }

    #[test]
    fn spec_defaults_are_the_safe_and_common_choices() {
        let spec: WorkspaceSpec = serde_json::from_value(serde_json::json!({"owner": "alice"})).unwrap();
        assert_eq!(spec.auth_type, AuthType::Public);
        assert_eq!(spec.enterprise_project, "default");
        assert_eq!(spec.desired_state, DesiredState::Available);
        assert_eq!(spec.deletion_policy, DeletionPolicy::Retain);
        assert_eq!(spec.management, Management::Managed);
    }
}
