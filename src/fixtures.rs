//! Workspaces for tests and benchmarks, built in one place: `ws("ml").in_ns("acme").private()`.
//! Unit tests take the typed object, integration tests the manifest kubectl applies, the
//! benchmark either; a spec that no typed value can express (bad input) is set as raw JSON.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use crate::crd::{
    AuthType, DeletionPolicy, DesiredState, Grant, GrantRole, Management, ResourceLimits, State, StateReason,
    SubjectKind, Tag, Workspace, WorkspaceSpec, WorkspaceStatus,
};

/// A Workspace named `name` in namespace `default`, owned by `alice@example.com`, with every
/// other field at its default.
pub fn ws(name: &str) -> WorkspaceFixture {
    let spec: WorkspaceSpec =
        serde_json::from_value(json!({"owner": "alice@example.com"})).expect("a spec with an owner is valid");
    let mut w = Workspace::new(name, spec);
    w.metadata.namespace = Some("default".into());
    WorkspaceFixture { ws: w, raw_spec: Vec::new(), spec_text: None }
}

#[derive(Clone, Debug)]
pub struct WorkspaceFixture {
    ws: Workspace,
    /// Spec fields set as raw JSON over the typed spec (None: removed), for input the types
    /// cannot hold.
    raw_spec: Vec<(String, Option<Value>)>,
    /// A whole spec as written, instead of the typed one.
    spec_text: Option<Value>,
}

impl WorkspaceFixture {
    pub fn in_ns(mut self, namespace: &str) -> Self {
        self.ws.metadata.namespace = Some(namespace.into());
        self
    }

    pub fn owner(mut self, owner: &str) -> Self {
        self.ws.spec.owner = owner.into();
        self
    }

    pub fn admins(mut self, admins: &[&str]) -> Self {
        self.ws.spec.admins = Some(admins.iter().map(|a| a.to_string()).collect());
        self
    }

    pub fn display_name(mut self, name: &str) -> Self {
        self.ws.spec.display_name = Some(name.into());
        self
    }

    pub fn auth(mut self, auth: AuthType) -> Self {
        self.ws.spec.auth_type = auth;
        self
    }

    pub fn private(self) -> Self {
        self.auth(AuthType::Private)
    }

    /// An `Internal` workspace with this grant added.
    pub fn grant(mut self, kind: SubjectKind, name: &str, role: GrantRole) -> Self {
        self.ws.spec.auth_type = AuthType::Internal;
        self.ws.spec.grants.get_or_insert_with(Vec::new).push(Grant { kind, name: name.into(), role });
        self
    }

    pub fn enterprise_project(mut self, project: &str) -> Self {
        self.ws.spec.enterprise_project = project.into();
        self
    }

    pub fn resource_group(mut self, group: &str) -> Self {
        self.ws.spec.resource_group = Some(group.into());
        self
    }

    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.ws.spec.tags.get_or_insert_with(Vec::new).push(Tag { key: key.into(), value: value.into() });
        self
    }

    /// One resource limit: `cpu`, `memory`, `pods`, `storage` or `gpu`.
    pub fn limit(mut self, resource: &str, quantity: &str) -> Self {
        let l = self.ws.spec.resource_limits.get_or_insert_with(ResourceLimits::default);
        let slot = match resource {
            "cpu" => &mut l.cpu,
            "memory" => &mut l.memory,
            "pods" => &mut l.pods,
            "storage" => &mut l.storage,
            "gpu" => &mut l.gpu,
            other => panic!("no resource limit called {other}"),
        };
        *slot = Some(IntOrString::String(quantity.into()));
        self
    }

    pub fn default_workspace(mut self) -> Self {
        self.ws.spec.is_default = true;
        self
    }

    /// Adopt the existing namespace `namespace`.
    pub fn enrolled(mut self, namespace: &str) -> Self {
        self.ws.spec.management = Management::Enrolled;
        self.ws.spec.namespace = Some(namespace.into());
        self
    }

    /// Provision this namespace instead of the derived one.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.ws.spec.namespace = Some(namespace.into());
        self
    }

    pub fn desired(mut self, state: DesiredState) -> Self {
        self.ws.spec.desired_state = state;
        self
    }

    pub fn deletion_policy(mut self, policy: DeletionPolicy) -> Self {
        self.ws.spec.deletion_policy = policy;
        self
    }

    /// A spec field as raw JSON, over whatever the typed spec says (bad input).
    pub fn raw(mut self, field: &str, value: Value) -> Self {
        self.raw_spec.push((field.into(), Some(value)));
        self
    }

    /// The whole spec as YAML text, instead of the typed one (bad input of any shape).
    pub fn spec_yaml(mut self, text: &str) -> Self {
        self.spec_text = Some(crate::yaml::from_str(text).expect("the spec is YAML"));
        self
    }

    /// The manifest without this spec field (bad input: a required field left out).
    pub fn without(mut self, field: &str) -> Self {
        self.raw_spec.push((field.into(), None));
        self
    }

    /// As the API server would have stored it: a uid and a creation time.
    pub fn stored(mut self, uid: &str, created: &str) -> Self {
        self.ws.metadata.uid = Some(uid.into());
        self.ws.metadata.creation_timestamp = Some(Time(created.parse().expect("an RFC 3339 timestamp")));
        self
    }

    /// As the controller would have reported it.
    pub fn reported(mut self, state: State, reason: StateReason) -> Self {
        let status = self.ws.status.get_or_insert_with(WorkspaceStatus::default);
        status.status = Some(state);
        status.state_reason = Some(reason);
        self
    }

    pub fn deleting(mut self) -> Self {
        self.ws.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        self
    }

    /// The typed Workspace (raw spec fields must also fit the types).
    pub fn build(self) -> Workspace {
        if self.raw_spec.is_empty() && self.spec_text.is_none() {
            return self.ws;
        }
        serde_json::from_value(self.json()).expect("raw spec fields fit the Workspace type")
    }

    /// The manifest as JSON, raw spec fields included.
    pub fn json(&self) -> Value {
        let mut v = json!({
            "apiVersion": "workspaces.dev/v1alpha1",
            "kind": "Workspace",
            "metadata": {"name": self.ws.metadata.name, "namespace": self.ws.metadata.namespace},
            "spec": self.spec_text.clone().unwrap_or_else(|| json!(self.ws.spec)),
        });
        for (field, value) in &self.raw_spec {
            match (value, v["spec"].as_object_mut()) {
                (Some(value), _) => v["spec"][field] = value.clone(),
                (None, Some(spec)) => {
                    spec.remove(field);
                }
                (None, None) => {}
            }
        }
        v
    }

    /// The manifest for `kubectl apply -f -`.
    pub fn yaml(&self) -> String {
        crate::yaml::to_string(&self.json())
    }
}
