//! What every reconcile shares: the client, the caches and the expectations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controller::build::Settings;
use crate::controller::cache::Children;
use crate::controller::child::Key;
use crate::controller::expectations::{Expectations, Versions};
use crate::controller::index::ByNamespace;
use crate::crd::{Guarded, WorkspaceClass};
use crate::events::Recorder;
use crate::metrics::Metrics;

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub(super) recorder: Recorder,
    pub(super) workspaces: Store<Guarded>,
    pub(super) workspaces_by_ns: ByNamespace,
    /// Namespaces, RoleBindings, quotas, LimitRanges and NetworkPolicies, as reconciles read them.
    pub(super) children: Children,
    pub(super) classes: Store<WorkspaceClass>,
    /// Consecutive failures per Workspace, for exponential backoff (reset on success).
    pub(super) failures: Mutex<HashMap<ObjectRef<Guarded>, u32>>,
    /// Writes the caches have not shown yet.
    pub(super) expect: Arc<Expectations<Key>>,
    /// The versions of children as the operator last wrote or found them.
    pub(super) versions: Versions<Key>,
    pub metrics: Arc<Metrics>,
    pub(super) fence: Option<crate::leader::Fence>,
}
