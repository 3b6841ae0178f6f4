//! The Workspace controller: wiring (watches, caches, context), `reconcile` and `error_policy`.
//!
//! A reconcile reads only from the watch caches (plus one GET when a namespace it does not yet
//! own is involved), writes only what differs from the desired state, and reports the outcome
//! in the status. Reconciling an up-to-date Workspace makes no write requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::children::{self, Settings};
use crate::crd::{DeletionPolicy, DesiredState, Management, State, StateReason, Workspace};
use crate::error::{Error, Result};
use crate::events::{Note, Recorder};
use crate::expectations::Expectations;
use crate::index::ByNamespace;
use crate::labels;
use crate::metrics::Metrics;
use crate::status::{self, Outcome};

/// Operator settings from flags.
#[derive(Clone)]
pub struct Config {
    pub settings: Settings,
    /// How many Workspaces are reconciled at once.
    pub concurrency: u16,
    /// Limit the Workspaces watched to one namespace (None: all).
    pub namespace: Option<String>,
    pub metrics: Option<Arc<Metrics>>,
    /// With leader election: reconcile only while the lease is ours.
    pub fence: Option<crate::leader::Fence>,
}

impl Default for Config {
    fn default() -> Self {
        Config { settings: Settings::default(), concurrency: 16, namespace: None, metrics: None, fence: None }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    recorder: Recorder,
    workspaces: Store<Workspace>,
    namespaces: Store<Namespace>,
    bindings: Store<RoleBinding>,
    bindings_by_ns: ByNamespace,
    quotas: Store<ResourceQuota>,
    /// Consecutive failures per Workspace, for exponential backoff (reset on success).
    failures: Mutex<HashMap<ObjectRef<Workspace>, u32>>,
    /// Writes the caches have not shown yet.
    expect: Expectations,
    pub metrics: Arc<Metrics>,
    fence: Option<crate::leader::Fence>,
}

/// Cached objects carry what reconciles read and nothing else: managedFields and the
/// last-applied annotation are most of an object's size and are never needed here.
fn strip<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// The Workspace named in a child's annotation.
fn owner_of<K: Resource>(obj: &K) -> Option<ObjectRef<Workspace>> {
    let key = obj.annotations().get(labels::WORKSPACE_ANNOTATION)?;
    let (ns, name) = key.split_once('/')?;
    Some(ObjectRef::new(name).within(ns))
}

/// Run the controller until `shutdown` resolves (in-flight reconciles are finished first).
pub async fn run_until(client: Client, config: Config, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let workspaces: Api<Workspace> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let children = watcher::Config::default().labels(labels::MANAGED_SELECTOR);
    let (ws_store, ws_writer) = reflector::store();
    let ws_stream = watcher(workspaces, watcher::Config::default())
        .default_backoff()
        .modify(strip)
        .reflect(ws_writer)
        .touched_objects();
    let (ns_store, ns_writer) = reflector::store();
    let ns_stream = watcher(Api::<Namespace>::all(client.clone()), children.clone())
        .default_backoff()
        // Namespace status only repeats deletionTimestamp, which is in the metadata.
        .modify(|ns: &mut Namespace| {
            strip(ns);
            ns.status = None;
        })
        .reflect(ns_writer)
        .touched_objects();
    let (rb_store, rb_writer) = reflector::store();
    let rb_index = ByNamespace::default();
    let indexer = rb_index.clone();
    let rb_stream = watcher(Api::<RoleBinding>::all(client.clone()), children.clone())
        .default_backoff()
        .modify(strip)
        .inspect_ok(move |ev| indexer.apply(ev))
        .reflect(rb_writer)
        .touched_objects();
    let (q_store, q_writer) = reflector::store();
    let q_stream = watcher(Api::<ResourceQuota>::all(client.clone()), children)
        .default_backoff()
        // Quotas are compared by spec; the status (hard and used, rewritten by the quota
        // controller) is most of a quota's size.
        .modify(|q: &mut ResourceQuota| {
            strip(q);
            q.status = None;
        })
        .reflect(q_writer)
        .touched_objects();

    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), labels::FIELD_MANAGER, std::env::var("POD_NAME").ok()),
        client,
        settings: config.settings.clone(),
        workspaces: ws_store.clone(),
        namespaces: ns_store,
        bindings: rb_store,
        bindings_by_ns: rb_index,
        quotas: q_store,
        failures: Mutex::default(),
        expect: Expectations::default(),
        metrics: config.metrics.clone().unwrap_or_default(),
        fence: config.fence.clone(),
    });
    let shutdown = shutdown.shared();
    let synced = ws_store.clone();
    // kube-runtime holds its runner until the Workspace cache has synced; a stop that comes
    // before then would wait for a sync that can no longer happen, so end at once instead
    // (nothing can be in flight yet).
    let stop_unsynced = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.await;
            if !is_synced(&synced) {
                return;
            }
            future::pending::<()>().await
        }
    };
    let controller = Controller::for_stream(ws_stream, ws_store)
        .watches_stream(ns_stream, |o| owner_of(&o))
        .watches_stream(rb_stream, |o| owner_of(&o))
        .watches_stream(q_stream, |o| owner_of(&o))
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| {
            if let Err(e) = res {
                warn!(error = %e, "reconcile stream");
            }
            future::ready(())
        });
    tokio::select! {
        _ = controller => {}
        _ = stop_unsynced => info!("stopped before the Workspace cache synced"),
    }
}

/// Run until the process is stopped.
pub async fn run(client: Client, config: Config) {
    run_until(client, config, future::pending()).await
}

#[instrument(skip_all, fields(namespace = ws.namespace().unwrap_or_default(), workspace = ws.name_any()))]
async fn reconcile(ws: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action> {
    if ctx.fence.as_ref().is_some_and(|f| !f.holds()) {
        // Leadership lapsed; the process is stepping down and a new leader reconciles this.
        warn!("lease not renewed in time: not reconciling");
        return Ok(Action::await_change());
    }
    // Until the child caches have synced, a missing child means nothing: a reconcile right
    // after a start would re-create what exists (the Controller only waits for Workspaces).
    // Check without waiting: these caches fill only while the Controller polls its streams,
    // which it stops doing while every reconcile slot is taken.
    if !(is_synced(&ctx.namespaces) && is_synced(&ctx.bindings) && is_synced(&ctx.quotas)) {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let _timer = ctx.metrics.reconcile_timer();
    if ctx.expect.pending(&ws_key(&ws), ws.resource_version().as_deref()) {
        // Our own last write has not reached the cache; its watch event will bring us back.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let result =
        if ws.metadata.deletion_timestamp.is_some() { cleanup(&ws, &ctx).await } else { apply(&ws, &ctx).await };
    if result.is_ok() {
        ctx.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&ObjectRef::from_obj(&*ws));
        ctx.metrics.reconciled();
    }
    result
}

/// Has this cache completed its first list? Answers at once, never waits.
fn is_synced<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

fn error_policy(ws: Arc<Workspace>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(err.reason());
    let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    let n = failures.entry(ObjectRef::from_obj(&*ws)).or_default();
    *n = n.saturating_add(1);
    let delay = Duration::from_millis(250u64.saturating_mul(1 << (*n).min(10))).min(Duration::from_secs(300));
    warn!(error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn api<K>(ctx: &Context, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    Api::namespaced(ctx.client.clone(), namespace.unwrap_or("default"))
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

// ----- the Workspace alive -----------------------------------------------------------------------

/// What to do about the target namespace, decided from reads alone.
enum Plan {
    /// Nothing to write to children: the outcome is known (a conflict, a missing namespace...).
    Done(Outcome),
    /// Provision, creating the namespace when `None`.
    Go(Option<Box<Namespace>>),
}

fn ws_key(ws: &Workspace) -> String {
    format!("workspace/{}", labels::workspace_key(ws))
}

async fn apply(cached: &Workspace, ctx: &Context) -> Result<Action> {
    let mut ws = cached.clone();
    let ns_name = labels::target_namespace(&ws);
    let plan = plan(&ws, ctx, &ns_name).await?;
    let predicted = match &plan {
        Plan::Done(o) => o.state,
        Plan::Go(_) => status::goal(ws.spec.desired_state),
    };
    // The finalizer goes on before anything is created, so nothing can be left behind.
    ensure_metadata(&mut ws, ctx, predicted).await?;
    let (outcome, settling) = match plan {
        Plan::Done(o) => (o, false),
        Plan::Go(found) => match provision(&ws, ctx, &ns_name, found).await {
            Ok(done) => done,
            Err(e) => {
                // Say so, then retry with backoff: the status stays truthful while it fails.
                let failing = Outcome::new(State::Provisioning, StateReason::ProvisioningFailed, e.to_string());
                let reported = async {
                    ensure_metadata(&mut ws, ctx, failing.state).await?;
                    report(&mut ws, ctx, &failing).await
                };
                if let Err(again) = reported.await {
                    warn!(error = %again, "reporting a failed provisioning");
                }
                return Err(e);
            }
        },
    };
    if outcome.state != predicted {
        ensure_metadata(&mut ws, ctx, outcome.state).await?;
    }
    report(&mut ws, ctx, &outcome).await?;
    Ok(match (outcome.state, outcome.reason) {
        _ if settling => Action::requeue(Duration::from_secs(2)),
        (State::Failed, StateReason::InvalidSpec) => Action::await_change(),
        (State::Failed, _) => Action::requeue(Duration::from_secs(30)),
        (State::Provisioning | State::Deleting | State::Pending, _) => Action::requeue(Duration::from_secs(2)),
        _ => Action::requeue(Duration::from_secs(3600)),
    })
}

/// Decide from reads what this reconcile can do: blocked by the spec, by another default, or
/// by a namespace that belongs to someone else; otherwise provision.
async fn plan(ws: &Workspace, ctx: &Context, ns_name: &str) -> Result<Plan> {
    let invalid = children::invalid_quantities(ws);
    if !invalid.is_empty() {
        return Ok(Plan::Done(Outcome::new(State::Failed, StateReason::InvalidSpec, invalid.join("; "))));
    }
    if let Some(other) = default_conflict(ws, ctx) {
        let msg = format!("Workspace {other} is already the default in this namespace");
        return Ok(Plan::Done(Outcome::new(State::Failed, StateReason::DefaultConflict, msg)));
    }
    let first_time = ws.status.is_none();
    if first_time
        && ws.spec.management == Management::Managed
        && ws.spec.desired_state != DesiredState::Deleted
        && ctx.namespaces.get(&ObjectRef::new(ns_name)).is_none()
    {
        // A new Workspace's namespace is most likely new too: create it without reading first,
        // and look whose it is only if the create answers 409 (the cache holds only namespaces
        // labelled as ours). Later reconciles read first, so a namespace found to be someone
        // else's is not retried by create, nor the labels predicted Available each time.
        return Ok(Plan::Go(None));
    }
    let Some(ns) = find_namespace(ctx, ns_name).await? else {
        return Ok(match (ws.spec.management, ws.spec.desired_state) {
            (Management::Enrolled, _) => {
                let msg = format!("namespace {ns_name} to enroll does not exist");
                Plan::Done(Outcome::new(State::Failed, StateReason::NamespaceNotFound, msg))
            }
            (_, DesiredState::Deleted) => {
                let msg = format!("namespace {ns_name} does not exist; nothing to keep");
                Plan::Done(Outcome::new(State::Deleted, StateReason::UserRequested, msg))
            }
            _ => Plan::Go(None),
        });
    };
    match ownership(ws, &ns) {
        Ownership::Foreign(why) => Ok(Plan::Done(Outcome::new(State::Failed, StateReason::NamespaceConflict, why))),
        _ => Ok(Plan::Go(Some(Box::new(ns)))),
    }
}

/// The namespace from the cache of labelled namespaces, or from the API when it is not ours.
async fn find_namespace(ctx: &Context, name: &str) -> Result<Option<Namespace>> {
    if let Some(ns) = ctx.namespaces.get(&ObjectRef::new(name)) {
        return Ok(Some((*ns).clone()));
    }
    get_namespace(ctx, name).await
}

async fn get_namespace(ctx: &Context, name: &str) -> Result<Option<Namespace>> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    api.get_opt(name).await.map_err(|source| Error::Read { what: format!("namespace {name}"), source })
}

enum Ownership {
    /// Recorded for this very Workspace.
    Ours,
    /// Kept from an earlier Workspace of the same namespace and name, or unowned and enrolled.
    Adoptable,
    Foreign(String),
}

fn ownership(ws: &Workspace, ns: &Namespace) -> Ownership {
    let name = ns.name_any();
    let ann = ns.annotations();
    let recorded_uid = ann.get(labels::UID_ANNOTATION);
    let recorded_ws = ann.get(labels::WORKSPACE_ANNOTATION);
    let key = labels::workspace_key(ws);
    if recorded_uid.is_some() && recorded_uid == ws.metadata.uid.as_ref() {
        return Ownership::Ours;
    }
    if recorded_ws == Some(&key) {
        return Ownership::Adoptable;
    }
    match recorded_ws {
        Some(other) => Ownership::Foreign(format!("namespace {name} belongs to Workspace {other}")),
        None if recorded_uid.is_none() && ws.spec.management == Management::Enrolled => Ownership::Adoptable,
        None => Ownership::Foreign(format!(
            "namespace {name} already exists and was not created for this Workspace; set management: Enrolled to adopt it"
        )),
    }
}

/// The oldest default Workspace in the namespace wins; any other default is in conflict.
fn default_conflict(ws: &Workspace, ctx: &Context) -> Option<String> {
    if !ws.spec.is_default {
        return None;
    }
    let key = |w: &Workspace| (w.metadata.creation_timestamp.clone().map(|t| t.0), w.name_any());
    let mine = key(ws);
    ctx.workspaces
        .state()
        .iter()
        .filter(|w| w.namespace() == ws.namespace() && w.spec.is_default && w.metadata.deletion_timestamp.is_none())
        .filter(|w| w.name_any() != ws.name_any() && key(w) < mine)
        .map(|w| w.name_any())
        .min()
}

/// Finalizer and list-view labels in one write, and only when they differ. `ws` becomes the
/// stored object, so later writes of the same reconcile carry its resourceVersion.
async fn ensure_metadata(ws: &mut Workspace, ctx: &Context, status: State) -> Result<()> {
    let want = labels::list_labels(ws, status);
    let have = ws.labels();
    let mut patch_labels = serde_json::Map::new();
    for (k, v) in &want {
        if have.get(k) != Some(v) {
            patch_labels.insert(k.clone(), json!(v));
        }
    }
    for k in labels::LIST_LABELS {
        if have.contains_key(k) && !want.contains_key(k) {
            patch_labels.insert(k.into(), serde_json::Value::Null);
        }
    }
    let has_finalizer = ws.finalizers().iter().any(|f| f == labels::FINALIZER);
    if patch_labels.is_empty() && has_finalizer {
        return Ok(());
    }
    let mut meta = json!({"resourceVersion": ws.resource_version()});
    if !patch_labels.is_empty() {
        meta["labels"] = serde_json::Value::Object(patch_labels);
    }
    if !has_finalizer {
        let mut f: Vec<String> = ws.finalizers().to_vec();
        f.push(labels::FINALIZER.into());
        meta["finalizers"] = json!(f);
    }
    let api: Api<Workspace> = api(ctx, ws.namespace().as_deref());
    let patched = api
        .patch(&ws.name_any(), &PatchParams::default(), &Patch::Merge(json!({"metadata": meta})))
        .await
        .map_err(|source| Error::Write { what: "Workspace labels and finalizer".into(), source })?;
    ctx.expect.wrote(&ws_key(ws), patched.resource_version());
    *ws = patched;
    Ok(())
}

/// Bring the namespace, access and quota to the desired state; report what was reached, and
/// whether some write of a moment ago has yet to show in the caches.
async fn provision(
    ws: &Workspace,
    ctx: &Context,
    ns_name: &str,
    found: Option<Box<Namespace>>,
) -> Result<(Outcome, bool)> {
    let ns = match found {
        None => create_namespace(ws, ctx, ns_name).await?,
        Some(ns) => *ns,
    };
    if let Ownership::Foreign(why) = ownership(ws, &ns) {
        return Ok((Outcome::new(State::Failed, StateReason::NamespaceConflict, why), false));
    }
    let ns = label_namespace(ws, ctx, ns).await?;
    if ns.metadata.deletion_timestamp.is_some() {
        let state = if ws.spec.desired_state == DesiredState::Deleted { State::Deleting } else { State::Provisioning };
        let msg = format!("namespace {ns_name} is terminating");
        return Ok((Outcome::new(state, StateReason::NamespaceTerminating, msg), false));
    }
    let (outcome, settling) = match ws.spec.desired_state {
        DesiredState::Available => {
            let a = sync_bindings(ws, ctx, ns_name, children::role_bindings(ws, &ctx.settings)).await?;
            let b = sync_quota(ws, ctx, ns_name, children::quota(ws, false)).await?;
            let msg = format!("namespace {ns_name} is ready");
            (Outcome::new(State::Available, StateReason::Provisioned, msg), a || b)
        }
        DesiredState::Deactivated => {
            let a = sync_bindings(ws, ctx, ns_name, Vec::new()).await?;
            let b = sync_quota(ws, ctx, ns_name, children::quota(ws, true)).await?;
            let msg = format!("access to {ns_name} revoked and new pods blocked; data kept");
            (Outcome::new(State::Deactivated, StateReason::UserRequested, msg), a || b)
        }
        DesiredState::Deleted => {
            let a = sync_bindings(ws, ctx, ns_name, Vec::new()).await?;
            if deletable(ws, &ns) {
                delete_namespace(ctx, ns_name).await?;
                let msg = format!("deleting namespace {ns_name}");
                return Ok((Outcome::new(State::Deleting, StateReason::NamespaceTerminating, msg), true));
            }
            let b = sync_quota(ws, ctx, ns_name, children::quota(ws, true)).await?;
            let msg = format!("access to {ns_name} revoked; namespace retained");
            (Outcome::new(State::Deleted, StateReason::UserRequested, msg), a || b)
        }
    };
    Ok((outcome, settling))
}

/// Create the namespace, or on 409 return the one that exists, whoever it belongs to.
async fn create_namespace(ws: &Workspace, ctx: &Context, name: &str) -> Result<Namespace> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api.create(&PostParams::default(), &children::namespace(ws)).await {
        Ok(ns) => {
            info!(namespace = name, "created namespace");
            Ok(ns)
        }
        Err(e) if is_status(&e, 409) => match get_namespace(ctx, name).await? {
            Some(ns) => Ok(ns),
            // Gone again between the two requests: the retry starts over.
            None => Err(Error::Write { what: format!("namespace {name}"), source: e }),
        },
        Err(source) => Err(Error::Write { what: format!("namespace {name}"), source }),
    }
}

/// Labels and annotations as they should be: records adoption and repairs hand edits.
async fn label_namespace(ws: &Workspace, ctx: &Context, ns: Namespace) -> Result<Namespace> {
    let want = children::namespace(ws);
    let mut want_labels = want.metadata.labels.clone().unwrap_or_default();
    // Keep how the namespace came to be ours: created (Managed) or adopted (Enrolled).
    if let Some(m) = ns.labels().get(labels::MANAGEMENT) {
        want_labels.insert(labels::MANAGEMENT.into(), m.clone());
    }
    let want_ann = want.metadata.annotations.clone().unwrap_or_default();
    let differs = |have: &BTreeMap<String, String>, want: &BTreeMap<String, String>| {
        want.iter().any(|(k, v)| have.get(k) != Some(v))
    };
    if !differs(ns.labels(), &want_labels) && !differs(ns.annotations(), &want_ann) {
        return Ok(ns);
    }
    let name = ns.name_any();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let patch = json!({"metadata": {"labels": want_labels, "annotations": want_ann}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|source| Error::Write { what: format!("namespace {name} labels"), source })
}

/// Only a namespace the operator created for this very Workspace is ever deleted.
fn deletable(ws: &Workspace, ns: &Namespace) -> bool {
    ws.spec.deletion_policy == DeletionPolicy::Delete
        && ns.labels().get(labels::MANAGEMENT).map(String::as_str) == Some("Managed")
        && ns.annotations().get(labels::UID_ANNOTATION) == ws.metadata.uid.as_ref()
}

async fn delete_namespace(ctx: &Context, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            info!(namespace = name, "deleting namespace");
            Ok(())
        }
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(source) => Err(Error::Delete { what: format!("namespace {name}"), source }),
    }
}

fn belongs_to<K: Resource>(obj: &K, ws: &Workspace, ns: &str) -> bool {
    obj.meta().namespace.as_deref() == Some(ns)
        && obj.annotations().get(labels::WORKSPACE_ANNOTATION).map(String::as_str)
            == Some(labels::workspace_key(ws).as_str())
}

fn labelled_as<K: Resource>(have: &K, want: &K) -> bool {
    let sub = |h: &BTreeMap<String, String>, w: &BTreeMap<String, String>| w.iter().all(|(k, v)| h.get(k) == Some(v));
    sub(have.labels(), want.labels()) && sub(have.annotations(), want.annotations())
}

/// Make the workspace's RoleBindings exactly `want`: apply what differs, delete the rest.
/// Returns true when a recent write has yet to show in the cache.
async fn sync_bindings(ws: &Workspace, ctx: &Context, ns: &str, want: Vec<RoleBinding>) -> Result<bool> {
    let api: Api<RoleBinding> = api(ctx, Some(ns));
    let have: Vec<Arc<RoleBinding>> = (ctx.bindings_by_ns.names(ns).into_iter())
        .filter_map(|name| ctx.bindings.get(&ObjectRef::new(&name).within(ns)))
        .filter(|rb| belongs_to(&**rb, ws, ns))
        .collect();
    let mut settling = false;
    for rb in &want {
        let name = rb.name_any();
        let key = format!("rolebinding/{ns}/{name}");
        let current = have.iter().find(|h| h.name_any() == name);
        if current.is_some_and(|h| h.role_ref == rb.role_ref && h.subjects == rb.subjects && labelled_as(&**h, rb)) {
            ctx.expect.forget(&key);
            continue;
        }
        if ctx.expect.pending(&key, current.and_then(|h| h.resource_version()).as_deref()) {
            settling = true;
            continue;
        }
        if let Some(h) = current
            && h.role_ref != rb.role_ref
        {
            // roleRef is immutable: replace the binding.
            delete_opt(&api, &name).await?;
        }
        let written = api
            .patch(&name, &PatchParams::apply(labels::FIELD_MANAGER).force(), &Patch::Apply(rb))
            .await
            .map_err(|source| Error::Write { what: format!("rolebinding {ns}/{name}"), source })?;
        ctx.expect.wrote(&key, written.resource_version());
    }
    for h in have.iter().filter(|h| !want.iter().any(|w| w.name_any() == h.name_any())) {
        let key = format!("rolebinding/{ns}/{}", h.name_any());
        if ctx.expect.pending(&key, h.resource_version().as_deref()) {
            settling = true;
            continue;
        }
        delete_opt(&api, &h.name_any()).await?;
        ctx.expect.wrote(&key, None);
    }
    Ok(settling)
}

async fn sync_quota(ws: &Workspace, ctx: &Context, ns: &str, want: Option<ResourceQuota>) -> Result<bool> {
    let api: Api<ResourceQuota> = api(ctx, Some(ns));
    let key = format!("resourcequota/{ns}/{}", labels::QUOTA);
    let have = ctx.quotas.get(&ObjectRef::new(labels::QUOTA).within(ns)).filter(|q| belongs_to(&**q, ws, ns));
    let hard = |q: &ResourceQuota| q.spec.as_ref().and_then(|s| s.hard.clone());
    let matches = match (&have, &want) {
        (Some(h), Some(w)) => hard(h) == hard(w) && labelled_as(&**h, w),
        (None, None) => true,
        _ => false,
    };
    if matches {
        ctx.expect.forget(&key);
        return Ok(false);
    }
    if ctx.expect.pending(&key, have.as_ref().and_then(|h| h.resource_version()).as_deref()) {
        return Ok(true);
    }
    match want {
        Some(q) => {
            let written = api
                .patch(labels::QUOTA, &PatchParams::apply(labels::FIELD_MANAGER).force(), &Patch::Apply(&q))
                .await
                .map_err(|source| Error::Write { what: format!("resourcequota {ns}/{}", labels::QUOTA), source })?;
            ctx.expect.wrote(&key, written.resource_version());
        }
        None => {
            delete_opt(&api, labels::QUOTA).await?;
            ctx.expect.wrote(&key, None);
        }
    }
    Ok(false)
}

async fn delete_opt<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(source) => Err(Error::Delete { what: name.into(), source }),
    }
}

/// Write the status when it differs, and record an Event when the state changes.
async fn report(ws: &mut Workspace, ctx: &Context, outcome: &Outcome) -> Result<()> {
    let old = ws.status.clone();
    let now = jiff::Timestamp::now();
    let observed = status::Observed {
        generation: ws.metadata.generation.unwrap_or(0),
        desired: ws.spec.desired_state,
        namespace: Some(labels::target_namespace(ws)),
        workspace_id: labels::workspace_id(ws.metadata.uid.as_deref().unwrap_or("")),
        now: &now,
    };
    let next = status::next(old.as_ref(), outcome, &observed);
    ctx.metrics.observe_state(&labels::workspace_key(ws), outcome.state);
    if old.as_ref() == Some(&next) {
        return Ok(());
    }
    let api: Api<Workspace> = api(ctx, ws.namespace().as_deref());
    let patched = api
        .patch_status(&ws.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": next})))
        .await
        .map_err(Error::Status)?;
    if patched.resource_version() != ws.resource_version() {
        ctx.expect.wrote(&ws_key(ws), patched.resource_version());
    }
    *ws = patched;
    if old.and_then(|s| s.status) != Some(outcome.state) {
        let note = Note {
            warning: matches!(outcome.state, State::Failed | State::DeleteFailed),
            reason: outcome.reason.as_str(),
            action: outcome.state.as_str(),
            message: format!("{}: {}", outcome.state.as_str(), outcome.message),
        };
        // An event that cannot be recorded must not fail the reconcile.
        if let Err(e) = ctx.recorder.publish(&note, &ws.object_ref(&())).await {
            warn!(error = %e, "recording event");
        }
    }
    Ok(())
}

// ----- the Workspace deleted ---------------------------------------------------------------------

/// `kubectl delete`: revoke access, release or delete the namespace by policy, then let go.
async fn cleanup(cached: &Workspace, ctx: &Context) -> Result<Action> {
    let mut ws = cached.clone();
    if !ws.finalizers().iter().any(|f| f == labels::FINALIZER) {
        return Ok(Action::await_change());
    }
    if ws.status.as_ref().and_then(|s| s.status) != Some(State::Deleting) {
        report(&mut ws, ctx, &Outcome::new(State::Deleting, StateReason::UserRequested, "tearing down")).await?;
    }
    if let Err(e) = teardown(&ws, ctx).await {
        let outcome = Outcome::new(State::DeleteFailed, StateReason::DeletionFailed, e.to_string());
        report(&mut ws, ctx, &outcome).await?;
        return Err(e);
    }
    let api: Api<Workspace> = api(ctx, ws.namespace().as_deref());
    let finalizers: Vec<String> = ws.finalizers().iter().filter(|f| *f != labels::FINALIZER).cloned().collect();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": ws.resource_version()}});
    match api.patch(&ws.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(Error::Finalizer(e.to_string())),
    }
    ctx.metrics.forget(&labels::workspace_key(&ws));
    ctx.expect.forget(&ws_key(&ws));
    Ok(Action::await_change())
}

async fn teardown(ws: &Workspace, ctx: &Context) -> Result<()> {
    let ns_name = labels::target_namespace(ws);
    let Some(ns) = find_namespace(ctx, &ns_name).await? else { return Ok(()) };
    // Never touch a namespace this Workspace does not own (a conflict, or another Workspace's).
    if !matches!(ownership(ws, &ns), Ownership::Ours) {
        return Ok(());
    }
    sync_bindings(ws, ctx, &ns_name, Vec::new()).await?;
    if deletable(ws, &ns) {
        return delete_namespace(ctx, &ns_name).await;
    }
    sync_quota(ws, ctx, &ns_name, None).await?;
    if ns.labels().get(labels::MANAGEMENT).map(String::as_str) == Some("Enrolled") {
        // Give an adopted namespace back as it was found.
        let mut labels_patch = serde_json::Map::new();
        for k in [labels::MANAGED_BY, labels::WORKSPACE_NAMESPACE, labels::WORKSPACE_NAME, labels::MANAGEMENT] {
            labels_patch.insert(k.into(), serde_json::Value::Null);
        }
        let patch = json!({"metadata": {"labels": labels_patch,
            "annotations": {labels::WORKSPACE_ANNOTATION: null, labels::UID_ANNOTATION: null}}});
        Api::<Namespace>::all(ctx.client.clone())
            .patch(&ns_name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|source| Error::Write { what: format!("namespace {ns_name} release"), source })?;
    }
    Ok(())
}
