//! The `Workspace` custom resource: spec (desired state), status (observed state).
//!
//! Every rule that can be declared is declared here, so the API server refuses bad input at
//! admission with a message naming the field. What only the controller can know (a namespace
//! owned by someone else, a second default) is reported in the status instead.

// kube-derive takes repeated `printcolumn`/`selectable` attributes by design.
#![allow(clippy::duplicated_attributes)]

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::error_boundary::InvalidObject;
use kube::{CustomResource, CustomResourceExt, KubeSchema, Resource};
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
    printcolumn(name = "Still Running", type_ = "integer", json_path = ".status.workloads.keptRunning"),
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
    /// The WorkspaceClass whose policy applies; the default class when not set.
    #[schemars(length(min = 1, max = 253))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,

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
    /// an e-mail address); not a `system:` name. The owner gets the `admin` ClusterRole in the
    /// workspace namespace.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("!self.startsWith('system:')").message(SYSTEM_NAME))]
    pub owner: String,

    /// Further Kubernetes user names that get `admin` in the workspace namespace: at most 50,
    /// each once, not the owner, none a `system:` name.
    #[schemars(length(max = 50), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = Rule::new("self.all(a, !a.startsWith('system:'))").message(SYSTEM_NAME))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admins: Option<Vec<String>>,

    /// Who gets access besides owner and admins: `Private` (nobody; the default), `Public` (the
    /// group the WorkspaceClass names gets `view`) or `Internal` (the subjects in `grants`).
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
        Public,
        #[default]
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
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' || !self.name.startsWith('system:')").message(SYSTEM_NAME).field_path(".name"))]
#[x_kube(validation = Rule::new(SERVICE_ACCOUNT_RULE).message("a ServiceAccount is namespace:name, both DNS labels (for example team-a:ci)").field_path(".name"))]
pub struct Grant {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: SubjectKind,
    /// A user or group name (not a `system:` one), or for a ServiceAccount `namespace:name`.
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

const SYSTEM_NAME: &str = "must not be a system: name: those are the cluster's own identities";
const SERVICE_ACCOUNT_RULE: &str = "self.kind != 'ServiceAccount' || self.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";

/// A quantity, as ResourceQuota's `hard` takes it: an integer, or a string such as `500m`, `2`
/// or `128Gi`, not negative. (Not `quantity(…).sign()`, which kube-apiserver's CEL does not
/// compile, `sign` being a function there; nor a comparison, whose cost grows with the amount:
/// a negative quantity is one written with a minus sign.)
const QUANTITY_RULE: &str = "isQuantity(string(self)) && !string(self).startsWith('-')";
const QUANTITY_MESSAGE: &str = "must be a quantity such as 500m, 2, 128Gi";
/// A count: an integer, or a string of digits.
const COUNT_RULE: &str = "string(self).matches('^[0-9]+$')";
const COUNT_MESSAGE: &str = "must be a whole number such as 20";

/// Everything admission accepts must decode. kube-apiserver stores any integer an
/// `int-or-string` field is given, but `IntOrString` holds 32 bits: a larger integer is read as
/// the same amount written as text, rather than leaving the Workspace unreadable.
fn wide_int_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<IntOrString>, D::Error> {
    use serde::de::Error;
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(IntOrString::String(s)),
        Some(serde_json::Value::Number(n)) => Some(match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => IntOrString::Int(i),
            None => IntOrString::String(n.to_string()),
        }),
        Some(other) => return Err(D::Error::custom(format!("expected an integer or a string, found {other}"))),
    })
}

/// Limits for the whole workspace namespace, kept in its ResourceQuota.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct ResourceLimits {
    /// CPU of all containers together (`limits.cpu`), such as `500m`, `2` or `16`.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wide_int_or_string")]
    pub cpu: Option<IntOrString>,
    /// Memory of all containers together (`limits.memory`), such as `512Mi` or `128Gi`.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wide_int_or_string")]
    pub memory: Option<IntOrString>,
    /// How many pods may exist at once (`pods`).
    #[x_kube(validation = Rule::new(COUNT_RULE).message(COUNT_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wide_int_or_string")]
    pub pods: Option<IntOrString>,
    /// Storage all PersistentVolumeClaims may request together (`requests.storage`), such as
    /// `1Ti`.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wide_int_or_string")]
    pub storage: Option<IntOrString>,
    /// NVIDIA GPUs all containers may request together (`requests.nvidia.com/gpu`).
    #[x_kube(validation = Rule::new(COUNT_RULE).message(COUNT_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wide_int_or_string")]
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
    /// What deactivation did to the workloads in the namespace (with its class's
    /// `deactivation.workloads: ScaleToZero`), and what reactivation gives back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<WorkloadsStatus>,
}

/// The workloads of a deactivated workspace: those stopped, with what each had, and those that
/// kept running, with why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadsStatus {
    /// Each workload scaled to zero or suspended, with what it had: recorded before it was
    /// changed, and given back on reactivation unless someone changed it meanwhile.
    // Every field is always written: the status is written by merge patches, which keep what
    // they leave out.
    #[serde(default)]
    pub stopped: Vec<StoppedWorkload>,
    /// Workloads that kept running: bare pods, DaemonSets, and workloads another controller owns.
    #[serde(default)]
    pub kept_running: i32,
    /// Pods without an owner, left running: deleting them would lose what they hold.
    #[serde(default)]
    pub bare_pods: i32,
    /// DaemonSets, left alone.
    #[serde(default)]
    pub daemon_sets: i32,
    /// Workloads another controller owns, left to it (it would undo a change).
    #[serde(default)]
    pub owned: i32,
    /// The CPU requests no longer running: the stopped pod templates times their replicas.
    #[serde(default)]
    pub freed_cpu: Option<String>,
    /// The memory requests no longer running.
    #[serde(default)]
    pub freed_memory: Option<String>,
}

/// One workload deactivation stopped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoppedWorkload {
    pub kind: WorkloadKind,
    pub name: String,
    /// Which object, so that one deleted and made again under the name is not taken for it.
    pub uid: String,
    /// The replicas it had (Deployments, StatefulSets, ReplicaSets); a Job or CronJob was
    /// running (not suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

api_enum! {
    /// The workloads deactivation stops.
    pub enum WorkloadKind {
        Deployment,
        StatefulSet,
        ReplicaSet,
        Job,
        CronJob,
    }
}

api_enum! {
    /// Lifecycle states; docs/workspace.md maps them to the states of cloud workspace APIs.
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
    /// Why the workspace is in its state: a closed set, documented in docs/workspace.md.
    pub enum StateReason {
        /// Seen for the first time; nothing done yet.
        Created,
        /// Namespace, access and quota are in place.
        Provisioned,
        /// The user asked for Deactivated or Deleted.
        UserRequested,
        /// The target namespace exists and belongs to someone else, or does not consent.
        NamespaceConflict,
        /// An Enrolled workspace names a namespace that does not exist.
        NamespaceNotFound,
        /// The spec passed admission but cannot be carried out (e.g. a bad quantity).
        InvalidSpec,
        /// Another Workspace in the same namespace is already the default.
        DefaultConflict,
        /// The Workspace names no WorkspaceClass that exists, and there is no default.
        ClassNotFound,
        /// The Workspace asks for what its WorkspaceClass, or the operator's own rules, refuse.
        PolicyViolation,
        /// An API call failed while provisioning; retried with backoff.
        ProvisioningFailed,
        /// An API call failed while tearing down; retried with backoff.
        DeletionFailed,
        /// The namespace is being deleted by the operator (deletionPolicy Delete).
        NamespaceTerminating,
    }
}

/// A Workspace as the watch delivers it: decoded, or (stored under a looser schema) only its
/// metadata and the decoding error, so one bad object cannot stop the list of all the others.
/// kube's `DeserializeGuard` does the same with two copies of every object; this decodes one
/// and leaves out its managedFields, which nothing reads and which are most of its size.
#[derive(Clone, Debug)]
pub struct Guarded(pub Result<Workspace, InvalidObject>);

impl<'de> Deserialize<'de> for Guarded {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut buffer = serde_json::Value::deserialize(deserializer)?;
        if let Some(meta) = buffer.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
            meta.remove("managedFields");
        }
        match Workspace::deserialize(&buffer) {
            Ok(ws) => Ok(Guarded(Ok(ws))),
            Err(e) => {
                let metadata =
                    buffer.get("metadata").map(ObjectMeta::deserialize).transpose().map_err(D::Error::custom)?;
                Ok(Guarded(Err(InvalidObject { error: e.to_string(), metadata: metadata.unwrap_or_default() })))
            }
        }
    }
}

impl Resource for Guarded {
    type DynamicType = ();
    type Scope = <Workspace as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Workspace::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Workspace::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Workspace::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Workspace::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.0.as_ref().map_or_else(|e| &e.metadata, Workspace::meta)
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.as_mut().map_or_else(|e| &mut e.metadata, Workspace::meta_mut)
    }
}

// ----- WorkspaceClass ----------------------------------------------------------------------------

/// The annotation that makes a WorkspaceClass the default, as for StorageClass and IngressClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "workspaces.dev/is-default-class";

/// Platform policy for Workspaces: what a Workspace may ask for, and what every workspace
/// namespace gets. A Workspace names one in `spec.className`; without it, the class annotated
/// `workspaces.dev/is-default-class: "true"` applies (of two defaults, the older). Every field
/// defaults to the safe choice.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "workspaces.dev",
    version = "v1alpha1",
    kind = "WorkspaceClass",
    doc = "Platform policy for Workspaces: what they may ask for, and what every workspace namespace gets.",
    plural = "workspaceclasses",
    shortname = "wsclass",
    printcolumn(
        name = "Default",
        type_ = "string",
        json_path = ".metadata.annotations.workspaces\\.dev/is-default-class"
    ),
    printcolumn(name = "Pod Security", type_ = "string", json_path = ".spec.namespace.podSecurity.enforce"),
    printcolumn(name = "Public Group", type_ = "string", json_path = ".spec.access.publicGroup"),
    printcolumn(name = "Enrollment", type_ = "boolean", json_path = ".spec.enrollment.allowed"),
    printcolumn(name = "Isolation", type_ = "string", json_path = ".spec.network.isolation"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceClassSpec {
    /// The organizations (the namespaces Workspaces live in) that may use this class, by their
    /// labels; unset, every organization. A Workspace of another is Failed with PolicyViolation,
    /// so a permissive class can be offered to some teams only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizations: Option<LabelSelector>,
    /// What every workspace namespace gets, and whether Workspaces may name theirs.
    #[serde(default)]
    pub namespace: NamespacePolicy,
    /// Whether Workspaces may adopt existing namespaces (each still needs its namespace's consent).
    #[serde(default)]
    pub enrollment: EnrollmentPolicy,
    /// Who may be given access to a workspace, and what access.
    #[serde(default)]
    pub access: AccessPolicy,
    /// Limits: those of a Workspace that sets none, the most one may ask for, and the defaults
    /// of containers that set none.
    #[serde(default)]
    pub resources: ResourcePolicy,
    /// Network isolation of workspace namespaces.
    #[serde(default)]
    pub network: NetworkIsolation,
    /// What deactivation does beyond revoking access and blocking new pods.
    #[serde(default)]
    pub deactivation: DeactivationPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeactivationPolicy {
    /// `ScaleToZero` (the default): Deployments, StatefulSets and ReplicaSets go to 0 replicas
    /// and Jobs and CronJobs are suspended, each given back exactly on reactivation. `Keep`:
    /// running workloads keep running (new pods are refused all the same).
    #[serde(default)]
    pub workloads: WorkloadsOnDeactivation,
}

api_enum! {
    #[derive(Default)]
    pub enum WorkloadsOnDeactivation {
        #[default]
        ScaleToZero,
        Keep,
    }
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacePolicy {
    /// The Pod Security Admission levels of every workspace namespace, created or enrolled.
    #[serde(default)]
    pub pod_security: PodSecurity,
    /// Labels every workspace namespace carries (a team's cost centre, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations every workspace namespace carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Whether a Workspace may name its namespace (`spec.namespace`); a Managed one only within
    /// its organization's prefix (`<organization>-`). Default true.
    #[serde(default = "yes")]
    pub allow_explicit_name: bool,
    /// Namespaces no Workspace may have, created or enrolled, besides the well-known namespaces
    /// of cluster infrastructure that are always reserved (ingress-nginx, cert-manager,
    /// istio-system, monitoring, flux-system, argocd, kube-*, openshift-*, …), which software
    /// installed later takes to be its own: exact names, and `prefix-*` for every name that
    /// begins with `prefix-`.
    #[x_kube(validation = Rule::new(RESERVED_RULE).message(RESERVED_MESSAGE))]
    #[schemars(length(max = 512), inner(length(max = 63)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_names: Option<Vec<String>>,
}

const RESERVED_RULE: &str = "self.all(n, n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(-[*])?$'))";
const RESERVED_MESSAGE: &str = "each entry is a namespace name, or a prefix ending in -* (such as kube-*)";

impl Default for NamespacePolicy {
    fn default() -> Self {
        NamespacePolicy {
            pod_security: PodSecurity::default(),
            labels: None,
            annotations: None,
            allow_explicit_name: true,
            reserved_names: None,
        }
    }
}

/// Pod Security Admission levels (`pod-security.kubernetes.io/<mode>` labels).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct PodSecurity {
    /// Pods that break it are refused. Default `baseline`.
    #[serde(default = "baseline")]
    pub enforce: PodSecurityLevel,
    /// Pods that break it are admitted with a warning. Default `restricted`.
    #[serde(default = "restricted")]
    pub warn: PodSecurityLevel,
    /// Pods that break it are admitted and recorded in the audit log. Default `restricted`.
    #[serde(default = "restricted")]
    pub audit: PodSecurityLevel,
}

fn baseline() -> PodSecurityLevel {
    PodSecurityLevel::Baseline
}

fn restricted() -> PodSecurityLevel {
    PodSecurityLevel::Restricted
}

impl Default for PodSecurity {
    fn default() -> Self {
        PodSecurity { enforce: baseline(), warn: restricted(), audit: restricted() }
    }
}

api_enum! {
    #[serde(rename_all = "lowercase")]
    #[strum(serialize_all = "lowercase")]
    pub enum PodSecurityLevel {
        Privileged,
        Baseline,
        Restricted,
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EnrollmentPolicy {
    /// Whether Workspaces may adopt an existing namespace that consents (it carries the label
    /// `workspaces.dev/enroll-from: <organization>`). Default true.
    #[serde(default = "yes")]
    pub allowed: bool,
}

impl Default for EnrollmentPolicy {
    fn default() -> Self {
        EnrollmentPolicy { allowed: true }
    }
}

fn admin_role() -> GrantRole {
    GrantRole::Admin
}

fn all_roles() -> Vec<GrantRole> {
    vec![GrantRole::View, GrantRole::Edit, GrantRole::Admin]
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicy {
    /// The group `Public` workspaces grant `view` to (for example `system:authenticated`).
    /// Without it, no workspace of this class may be Public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_group: Option<String>,
    /// The roles grants may give. Default view, edit and admin.
    #[serde(default = "all_roles")]
    pub allowed_roles: Vec<GrantRole>,
    /// The role the owner and admins get in the workspace namespace. Default `admin`, which
    /// lets them manage RoleBindings there too; `edit` keeps access in the operator's hands.
    #[serde(default = "admin_role")]
    pub owner_role: GrantRole,
    /// Whether a grant may name a ServiceAccount outside the workspace's namespace and its
    /// organization's. Default false.
    #[serde(default)]
    pub service_accounts_outside: bool,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            public_group: None,
            allowed_roles: all_roles(),
            owner_role: admin_role(),
            service_accounts_outside: false,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicy {
    /// The limits of a Workspace that sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_limits: Option<ResourceLimits>,
    /// The most a Workspace may ask for; more is Failed with PolicyViolation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_limits: Option<ResourceLimits>,
    /// The cpu and memory requests and limits of containers that set none, written as a
    /// LimitRange: with a cpu or memory limit on the workspace, pods without their own are then
    /// still admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_defaults: Option<ContainerDefaults>,
    /// Limits every workspace's ResourceQuota carries besides those of `resourceLimits`, which
    /// a Workspace cannot raise or remove: any ResourceQuota key, such as
    /// `services.loadbalancers: "0"`, `services.nodeports: "0"`, `persistentvolumeclaims: "20"`,
    /// `requests.ephemeral-storage: 50Gi`, `count/jobs.batch: "100"` or `requests.amd.com/gpu: "0"`.
    #[x_kube(validation = Rule::new(QUOTA_KEY_RULE).message(QUOTA_KEY_MESSAGE))]
    #[x_kube(validation = Rule::new(QUOTA_OWNED_RULE).message(QUOTA_OWNED_MESSAGE))]
    #[schemars(extend("maxProperties" = 64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<BTreeMap<String, QuotaAmount>>,
}

/// One amount of a class's `quota`, written as a string (`"0"`, `"50Gi"`): its rule is checked
/// value by value, and only a bounded string keeps that within kube-apiserver's cost budget for
/// CEL rules over 64 amounts (an `int-or-string` counts as unbounded).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct QuotaAmount(pub IntOrString);

impl JsonSchema for QuotaAmount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "QuotaAmount".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "maxLength": 64,
            "description": "An amount, as a string: \"0\", \"20\" or \"50Gi\".",
            "x-kubernetes-validations": [{"rule": QUOTA_AMOUNT_RULE, "message": QUOTA_AMOUNT_MESSAGE}],
        })
    }
}

impl<'de> Deserialize<'de> for QuotaAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        wide_int_or_string(d)?.map(QuotaAmount).ok_or_else(|| D::Error::custom("an amount, not null"))
    }
}

/// A ResourceQuota key kube-apiserver counts: a standard resource, an object count
/// (`count/<resource>[.<group>]`), an extended resource's requests (`requests.<domain>/<name>`),
/// or a storage class's (`<class>.storageclass.storage.k8s.io/<requests.storage|persistentvolumeclaims>`).
const QUOTA_KEY_RULE: &str = "self.all(k, k.matches('^(pods|services|services[.]loadbalancers|services[.]nodeports|persistentvolumeclaims|configmaps|secrets|replicationcontrollers|resourcequotas|cpu|memory|storage|ephemeral-storage|requests[.](cpu|memory|storage|ephemeral-storage)|limits[.](cpu|memory|ephemeral-storage))$') || k.matches('^count/[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$') || k.matches('^requests[.][a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)+/[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$') || k.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?[.]storageclass[.]storage[.]k8s[.]io/(requests[.]storage|persistentvolumeclaims)$'))";
const QUOTA_KEY_MESSAGE: &str =
    "each key must be a ResourceQuota key, such as services.loadbalancers, count/jobs.batch or requests.amd.com/gpu";
/// The keys `resourceLimits` writes are the Workspace's own, bounded by `maxLimits`.
const QUOTA_OWNED_RULE: &str =
    "!self.exists(k, k in ['limits.cpu', 'limits.memory', 'pods', 'requests.storage', 'requests.nvidia.com/gpu'])";
const QUOTA_OWNED_MESSAGE: &str = "limits.cpu, limits.memory, pods, requests.storage and requests.nvidia.com/gpu come from resourceLimits: bound them with defaultLimits and maxLimits";
const QUOTA_AMOUNT_RULE: &str = "isQuantity(self) && !self.startsWith('-')";
const QUOTA_AMOUNT_MESSAGE: &str = "each amount must be a quantity such as \"0\", \"20\" or \"50Gi\"";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct ContainerDefaults {
    /// CPU of a container that sets none (its request and its limit), such as `500m`.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wide_int_or_string")]
    pub cpu: Option<IntOrString>,
    /// Memory of a container that sets none (its request and its limit), such as `512Mi`.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wide_int_or_string")]
    pub memory: Option<IntOrString>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkIsolation {
    /// `Namespace` (the default): a NetworkPolicy admits ingress to workspace pods only from the
    /// same namespace and from the namespaces `allowFromNamespaces` selects. `None`: no policy.
    #[serde(default)]
    pub isolation: Isolation,
    /// Namespaces whose pods may reach every workspace (an ingress controller's, say), by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_from_namespaces: Option<LabelSelector>,
}

api_enum! {
    #[derive(Default)]
    pub enum Isolation {
        #[default]
        Namespace,
        None,
    }
}

impl WorkspaceClass {
    pub fn is_default(&self) -> bool {
        self.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION)).map(String::as_str)
            == Some("true")
    }
}

/// Both CRDs as YAML, exactly as committed in `crds/workspace.yaml`. Each tells Argo CD and
/// Flux never to prune or delete it: deleting a CRD deletes every object of its kind.
pub fn crd_yaml() -> String {
    let mut out = String::from("# Generated by `workspace-operator crd`; do not edit by hand.\n");
    for (i, mut crd) in [Workspace::crd(), WorkspaceClass::crd()].into_iter().enumerate() {
        let annotations = crd.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert("argocd.argoproj.io/sync-options".into(), "Prune=false,Delete=false".into());
        annotations.insert("kustomize.toolkit.fluxcd.io/prune".into(), "disabled".into());
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&crate::yaml::to_string(&crd));
    }
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
        agree::<PodSecurityLevel>();
        agree::<Isolation>();
        agree::<AuthType>();
        agree::<Management>();
        agree::<DesiredState>();
        agree::<DeletionPolicy>();
        agree::<SubjectKind>();
        agree::<GrantRole>();
        agree::<State>();
        agree::<StateReason>();
    }

    fn guarded(spec: serde_json::Value) -> Guarded {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "workspaces.dev/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "w", "namespace": "team", "resourceVersion": "7",
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1"}]},
            "spec": spec,
        }))
        .expect("a Workspace with readable metadata always decodes")
    }

    #[test]
    fn a_readable_workspace_decodes_whole_but_for_its_managed_fields() {
        let g = guarded(serde_json::json!({"owner": "alice", "displayName": "A"}));
        let ws = g.0.as_ref().expect("readable");
        assert_eq!((ws.spec.owner.as_str(), ws.spec.display_name.as_deref()), ("alice", Some("A")));
        assert_eq!(g.meta().resource_version.as_deref(), Some("7"));
        assert_eq!(g.meta().managed_fields, None, "never read, so never decoded");
    }

    #[test]
    fn an_unreadable_workspace_keeps_its_metadata_and_the_error() {
        let g = guarded(serde_json::json!({"owner": "alice", "desiredState": "Sleeping"}));
        let invalid = g.0.as_ref().expect_err("no such desired state");
        assert!(invalid.error.contains("Sleeping"), "{}", invalid.error);
        assert_eq!((g.meta().namespace.as_deref(), g.meta().name.as_deref()), (Some("team"), Some("w")));
        let no_meta: Result<Guarded, _> = serde_json::from_value(serde_json::json!({"metadata": {"name": 5}}));
        assert!(no_meta.is_err(), "metadata that does not decode leaves nothing to report on");
    }

    #[test]
    fn spec_defaults_are_the_safe_and_common_choices() {
        let spec: WorkspaceSpec = serde_json::from_value(serde_json::json!({"owner": "alice"})).unwrap();
        assert_eq!(spec.auth_type, AuthType::Private, "Public must be asked for");
        assert_eq!(spec.enterprise_project, "default");
        assert_eq!(spec.desired_state, DesiredState::Available);
        assert_eq!(spec.deletion_policy, DeletionPolicy::Retain);
        assert_eq!(spec.management, Management::Managed);
    }

    #[test]
    fn an_empty_class_is_the_safe_choice_and_equals_the_rust_default() {
        let spec: WorkspaceClassSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(spec, WorkspaceClassSpec::default(), "serde defaults and Default agree");
        let ps = &spec.namespace.pod_security;
        assert_eq!(
            (ps.enforce, ps.warn, ps.audit),
            (PodSecurityLevel::Baseline, PodSecurityLevel::Restricted, PodSecurityLevel::Restricted)
        );
        assert_eq!(spec.access.public_group, None, "nothing is public unless the platform says so");
        assert!(!spec.access.service_accounts_outside);
        assert_eq!(spec.network.isolation, Isolation::Namespace);
        assert!(spec.enrollment.allowed, "enrollment still needs the namespace's consent");
        assert!(spec.resources.max_limits.is_none());
    }
}
