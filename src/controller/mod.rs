//! The Workspace controller: wiring (watches, caches, context), `reconcile` and `error_policy`.
//!
//! A reconcile is a pipeline of small steps, one module each:
//! `observe` (the caches, read once) → `plan` (pure: proceed or blocked) → `build` (pure: the
//! desired children) → `apply` (one generic applier, writes only the difference) → `report`
//! (labels, status, Event). Reconciling an up-to-date Workspace makes no write requests.

pub mod apply;
pub mod build;
pub mod cache;
pub mod child;
pub mod context;
pub mod error;
pub mod expectations;
pub mod index;
pub mod observe;
pub mod plan;
pub mod policy;
pub mod report;
pub mod status;
pub mod unreadable;
pub mod workloads;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{debug, info, instrument, warn};

pub use build::Settings;
use build::{Children, Goal};
use error::{Error, Result};
use observe::{Observation, Seen};
use plan::{Ownership, Plan};
use status::Outcome;

use crate::crd::{
    DesiredState, Management, State, StateReason, WorkloadsOnDeactivation, WorkloadsStatus, Workspace, WorkspaceClass,
};
use crate::events::Recorder;
use crate::labels;
use crate::metrics::Metrics;
use cache::Cached;
use child::{ChildRef, Key, Kind};
use context::Context;
use expectations::{Expectations, Versions};
use index::ByNamespace;

pub use crate::crd::Guarded;

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

/// Report each event of a watch to the health /readyz answers from. Every list attempt begins
/// with `Init` (and a relist sends `InitApply`), even one that then fails: only an event that
/// shows the watch delivers counts as recovery.
fn watch_health<K, E>(
    metrics: &Arc<Metrics>,
    watch: &'static str,
) -> impl Fn(&Result<watcher::Event<K>, E>) + use<K, E> {
    let metrics = metrics.clone();
    move |event| match event {
        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
        Ok(_) => metrics.watch_result(watch, true),
        Err(_) => metrics.watch_result(watch, false),
    }
}

/// File each event of a child's watch in the cache, before it can trigger a reconcile.
fn feed<K: Resource, F: Fn(&K) -> Cached>(
    cache: &cache::Children,
    kind: Kind,
    of: F,
) -> impl Fn(&watcher::Event<K>) + use<K, F> {
    let cache = cache.clone();
    move |event| cache.apply(kind, event, &of)
}

/// Keep a watch event as a trigger unless it only shows the operator's own write that no
/// reconcile waits for (see `Expectations::echo`). The cache takes it either way.
fn not_an_echo<K: Resource, F: Fn(&K) -> Key>(
    expect: &Arc<Expectations<Key>>,
    key: F,
) -> impl Fn(&watcher::Event<K>) -> future::Ready<bool> + use<K, F> {
    let expect = expect.clone();
    move |event| {
        future::ready(match event {
            watcher::Event::Apply(o) => !expect.echo(&key(o), o.meta().resource_version.as_deref()),
            _ => true,
        })
    }
}

/// The expectation key of a child of `kind`.
fn child_key<K: Resource>(kind: Kind) -> impl Fn(&K) -> Key {
    move |o| Key::Child(ChildRef::new(kind, o.meta().namespace.as_deref(), &o.name_any()))
}

/// The Workspace named in a child's annotation.
fn owner_of<K: Resource>(obj: &K) -> Option<ObjectRef<Guarded>> {
    let (ns, name) = labels::named_workspace(obj.annotations().get(labels::WORKSPACE_ANNOTATION)?)?;
    Some(ObjectRef::new(name).within(ns))
}

/// Run the controller until `shutdown` resolves (in-flight reconciles are finished first).
pub async fn run_until(client: Client, config: Config, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let workspaces: Api<Guarded> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let children = watcher::Config::default().labels(labels::MANAGED_SELECTOR);
    let expect: Arc<Expectations<Key>> = Arc::default();
    let (ws_store, ws_writer) = reflector::store();
    let ws_index = ByNamespace::default();
    let ws_indexer = ws_index.clone();
    let ws_index_resync = ws_index.clone();
    let metrics = config.metrics.clone().unwrap_or_default();
    let ws_stream = watcher(workspaces, watcher::Config::default())
        .default_backoff()
        // A watch that keeps failing is a stalled controller: /readyz says so.
        .inspect(watch_health(&metrics, "workspaces"))
        // A Workspace gone without its finalizer (removed by hand) is counted no more.
        .inspect({
            let metrics = metrics.clone();
            move |event| {
                if let Ok(watcher::Event::Delete(ws)) = event {
                    metrics.forget(&format!("{}/{}", ws.namespace().unwrap_or_default(), ws.name_any()));
                }
            }
        })
        .inspect_ok(move |ev| ws_indexer.apply(ev))
        .modify(|w: &mut Guarded| {
            index::strip(w.meta_mut());
            if let Ok(w) = w.0.as_mut()
                && let Some(status) = w.status.as_mut()
            {
                status::shrink(status, &labels::workspace_id(w.metadata.uid.as_deref().unwrap_or_default()));
            }
        })
        .reflect(ws_writer)
        // The Workspace's own label and status writes: the reconcile that made them is done.
        .try_filter(not_an_echo(&expect, |w: &Guarded| {
            Key::Workspace(format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any()))
        }))
        .touched_objects();
    // Children are watched as metadata where that is all the applier reads, and cached as the
    // few facts it reads of them (see `cache`).
    let cache = cache::Children::default();
    let ns_stream = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), children.clone())
        .default_backoff()
        .inspect(watch_health(&metrics, "namespaces"))
        .inspect_ok(feed(&cache, Kind::Namespace, Cached::of_namespace))
        .touched_objects();
    let rb_stream = watcher(Api::<PartialObjectMeta<RoleBinding>>::all(client.clone()), children.clone())
        .default_backoff()
        .inspect(watch_health(&metrics, "rolebindings"))
        .inspect_ok(feed(&cache, Kind::RoleBinding, |o| Cached::of(Kind::RoleBinding, o)))
        .try_filter(not_an_echo(&expect, child_key(Kind::RoleBinding)))
        .touched_objects();
    let q_stream = watcher(Api::<ResourceQuota>::all(client.clone()), children.clone())
        .default_backoff()
        .inspect(watch_health(&metrics, "resourcequotas"))
        .inspect_ok(feed(&cache, Kind::ResourceQuota, Cached::of_quota))
        .try_filter(not_an_echo(&expect, child_key(Kind::ResourceQuota)))
        .touched_objects();
    let lr_stream = watcher(Api::<PartialObjectMeta<LimitRange>>::all(client.clone()), children.clone())
        .default_backoff()
        .inspect(watch_health(&metrics, "limitranges"))
        .inspect_ok(feed(&cache, Kind::LimitRange, |o| Cached::of(Kind::LimitRange, o)))
        .try_filter(not_an_echo(&expect, child_key(Kind::LimitRange)))
        .touched_objects();
    let np_stream = watcher(Api::<PartialObjectMeta<NetworkPolicy>>::all(client.clone()), children.clone())
        .default_backoff()
        .inspect(watch_health(&metrics, "networkpolicies"))
        .inspect_ok(feed(&cache, Kind::NetworkPolicy, |o| Cached::of(Kind::NetworkPolicy, o)))
        .try_filter(not_an_echo(&expect, child_key(Kind::NetworkPolicy)))
        .touched_objects();
    let (class_store, class_writer) = reflector::store();
    let class_stream = watcher(Api::<WorkspaceClass>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .inspect(watch_health(&metrics, "workspaceclasses"))
        // Classes are the platform's, few, and read by their annotations (the default class):
        // they keep all but what is never read.
        .modify(|c: &mut WorkspaceClass| {
            c.metadata.managed_fields = None;
            if let Some(a) = c.metadata.annotations.as_mut() {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        })
        .reflect(class_writer)
        .touched_objects();
    // A class changes: every Workspace that names it, or may be taking the default, is
    // reconciled (each writes only what really changes).
    let of_class = {
        let workspaces = ws_store.clone();
        move |class: WorkspaceClass| {
            let name = class.name_any();
            workspaces
                .state()
                .iter()
                .filter(|w| w.0.as_ref().is_ok_and(|w| w.spec.class_name.as_deref().is_none_or(|n| n == name)))
                .map(|w| ObjectRef::from_obj(&**w))
                .collect::<Vec<_>>()
        }
    };

    // Workspaces are listed only once every child cache has synced: a reconcile before then
    // would take a missing child for one to create. Waiting here, not in reconcile, means no
    // reconcile is spent (and requeued on a timer) while they fill.
    let children_synced = {
        let (class, cache) = (class_store.clone(), cache.clone());
        async move {
            let _ = futures::join!(class.wait_until_ready(), cache.wait_until_ready());
        }
    };
    let ws_stream = futures::stream::once(async move {
        children_synced.await;
        ws_stream
    })
    .flatten();
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), labels::FIELD_MANAGER, std::env::var("POD_NAME").ok()),
        client,
        settings: config.settings.clone(),
        workspaces: ws_store.clone(),
        workspaces_by_ns: ws_index,
        children: cache,
        classes: class_store,
        failures: Mutex::default(),
        expect: expect.clone(),
        versions: Versions::default(),
        metrics,
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
        .watches_stream(lr_stream, |o| owner_of(&o))
        .watches_stream(np_stream, |o| owner_of(&o))
        .watches_stream(class_stream, of_class)
        .reconcile_on(resync(ws_index_resync, RESYNC))
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| {
            use kube::runtime::controller::Error as Stream;
            match res {
                // A Workspace deleted while its reconcile was queued: an ordinary race. A failed
                // reconcile: error_policy has logged it already.
                Err(e @ (Stream::ObjectNotFound(_) | Stream::ReconcilerFailed(..))) => {
                    debug!(error = %e, "reconcile stream")
                }
                Err(e) => warn!(error = %e, "reconcile stream"),
                Ok(_) => {}
            }
            future::ready(())
        });
    tokio::select! {
        _ = controller => {}
        _ = stop_unsynced => info!("stopped before the Workspace cache synced"),
    }
}

/// How often every Workspace is reconciled with no event to say it changed: a safety net for
/// a change no watch showed.
pub const RESYNC: Duration = Duration::from_secs(3600);

/// Every Workspace once per `period`, one at a time, spread evenly over it, the first round a
/// period after the start (when every Workspace has just been reconciled). Not a requeue per
/// Workspace: each would hold a kube-runtime scheduler entry, some 2 KB, for the whole hour.
pub fn resync(index: ByNamespace, period: Duration) -> impl futures::Stream<Item = ObjectRef<Guarded>> + Send {
    // Never all at once, even when a round runs late: the controller takes triggers as fast as
    // they come, and each waits in its scheduler.
    const FLOOR: Duration = Duration::from_millis(1);
    struct Round {
        namespaces: Vec<String>,
        due: Vec<ObjectRef<Guarded>>,
        step: Duration,
        deadline: tokio::time::Instant,
        visited: usize,
        first: bool,
    }
    let now = tokio::time::Instant::now();
    let start = Round { namespaces: Vec::new(), due: Vec::new(), step: period, deadline: now, visited: 0, first: true };
    futures::stream::unfold(start, move |mut round| {
        let index = index.clone();
        async move {
            loop {
                if let Some(next) = round.due.pop() {
                    tokio::time::sleep(round.step).await;
                    round.visited += 1;
                    return Some((next, round));
                }
                if let Some(ns) = round.namespaces.pop() {
                    round.due = index.names(&ns).iter().rev().map(|n| ObjectRef::new(n).within(&ns)).collect();
                    // What is left of the round over what is left to visit, counted afresh at each
                    // namespace: Workspaces created meanwhile must not stretch the round.
                    let left = index.count().saturating_sub(round.visited).max(round.due.len()).max(1);
                    let time_left = round.deadline.saturating_duration_since(tokio::time::Instant::now());
                    round.step = (time_left / u32::try_from(left).unwrap_or(u32::MAX)).max(FLOOR);
                    continue;
                }
                if std::mem::take(&mut round.first) {
                    tokio::time::sleep(period).await;
                }
                // A new round: taken a namespace at a time, so it never holds every name at once.
                if index.count() == 0 {
                    tokio::time::sleep(period).await;
                    continue;
                }
                round.namespaces = index.namespaces();
                round.namespaces.reverse();
                round.deadline = tokio::time::Instant::now() + period;
                round.visited = 0;
            }
        }
    })
}

/// Run until the process is stopped.
pub async fn run(client: Client, config: Config) {
    run_until(client, config, future::pending()).await
}

#[instrument(skip_all, fields(namespace = obj.namespace().unwrap_or_default(), workspace = obj.name_any()))]
async fn reconcile(obj: Arc<Guarded>, ctx: Arc<Context>) -> Result<Action> {
    if ctx.fence.as_ref().is_some_and(|f| !f.holds()) {
        // Leadership lapsed; the process is stepping down and a new leader reconciles this.
        warn!("lease not renewed in time: not reconciling");
        // Come back: a lapse may be brief, and the change that triggered this must not be lost.
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    // The Workspace watch starts only once the child caches have synced (see run_until), so
    // this holds; it stays as a guard, since a missing child means nothing before then. Check
    // without waiting: the caches fill only while the Controller polls its streams, which it
    // stops doing while every reconcile slot is taken.
    let synced = ctx.children.is_synced() && is_synced(&ctx.classes);
    if !synced {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let _timer = ctx.metrics.reconcile_timer();
    let ws = match &obj.0 {
        Ok(ws) => ws,
        Err(invalid) => return unreadable::report(invalid, &ctx).await,
    };
    ctx.metrics.set_unreadable(&labels::workspace_key(ws), false);
    if ctx.expect.pending(&report::workspace_key(ws), ws.resource_version().as_deref()) {
        // Our own last write has not reached the cache; its watch event will bring us back. The
        // timer is for when someone else's write came first, so ours never shows as such: it
        // looks again soon, and the cache is trusted once the grace is over.
        return Ok(Action::requeue(expectations::RECHECK));
    }
    let target = labels::target_namespace(ws);
    let unseen =
        ctx.expect.await_all(|k| matches!(k, Key::Child(c) if c.namespace.as_deref() == Some(target.as_str())));
    let result = if ws.metadata.deletion_timestamp.is_some() {
        finalize(ws, &ctx, unseen).await
    } else {
        reconcile_live(ws, &ctx, unseen).await
    };
    if result.is_ok() {
        ctx.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&ObjectRef::from_obj(&*obj));
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

fn error_policy(obj: Arc<Guarded>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(err.category());
    let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    let n = failures.entry(ObjectRef::from_obj(&*obj)).or_default();
    *n = n.saturating_add(1);
    let delay = Duration::from_millis(250u64.saturating_mul(1 << (*n).min(10))).min(Duration::from_secs(300));
    warn!(error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

// ----- the Workspace alive -----------------------------------------------------------------------

/// `unseen`: a child written by an earlier reconcile may be missing from the caches.
async fn reconcile_live(cached: &Workspace, ctx: &Context, unseen: bool) -> Result<Action> {
    let mut ws = cached.clone();
    let mut obs = observe::observe(&ws, ctx, false).await?;
    let lookup = !plan::skips_lookup(&ws, &obs, &ctx.settings);
    observe::children(&ws, ctx, &mut obs, lookup).await?;
    let plan = plan::plan(&ws, &obs, &ctx.settings);
    let predicted = match &plan {
        Plan::Blocked(o) => o.state,
        Plan::Provision(_) => status::goal(ws.spec.desired_state),
    };
    // The finalizer goes on before anything is created, so nothing can be left behind.
    report::metadata(&mut ws, ctx, predicted).await?;
    let (outcome, settling) = match plan {
        Plan::Blocked(o) if plan::withdraws_access(&o) => (o, withdraw_access(ctx, &obs).await?),
        Plan::Blocked(o) => (o, false),
        Plan::Provision(found) => match provision(&mut ws, ctx, &obs, found).await {
            Ok(done) => done,
            // Judged on a version that changed meanwhile: the retry judges afresh.
            Err(e) if e.is_conflict() => return Err(e),
            Err(e) => {
                // Say so, then retry with backoff: the status stays truthful while it fails.
                let failing = Outcome::new(State::Provisioning, StateReason::ProvisioningFailed, e.to_string());
                let reported = async {
                    report::metadata(&mut ws, ctx, failing.state).await?;
                    report::status(&mut ws, ctx, &obs.target, &failing, Some(e.category())).await
                };
                if let Err(again) = reported.await {
                    warn!(error = %again, "reporting a failed provisioning");
                }
                return Err(e);
            }
        },
    };
    if outcome.state != predicted {
        report::metadata(&mut ws, ctx, outcome.state).await?;
    }
    report::status(&mut ws, ctx, &obs.target, &outcome, None).await?;
    Ok(match (outcome.state, outcome.reason) {
        // A write has yet to show in a child cache: its watch event brings the Workspace back
        // (the timer as above).
        _ if settling || unseen => Action::requeue(expectations::RECHECK),
        (State::Failed, StateReason::InvalidSpec) => Action::await_change(),
        (State::Failed, _) => Action::requeue(Duration::from_secs(30)),
        (State::Provisioning | State::Deleting | State::Pending, _) => Action::requeue(Duration::from_secs(2)),
        // Looked at again by the hourly resync (see `resync`), or by the next change.
        _ => Action::await_change(),
    })
}

/// Bring the namespace and its children to the desired state; report what was reached, and
/// whether some write of a moment ago has yet to show in the caches.
async fn provision(
    ws: &mut Workspace,
    ctx: &Context,
    obs: &Observation,
    found: Option<Box<Namespace>>,
) -> Result<(Outcome, bool)> {
    let target = obs.target.as_str();
    // The plan proceeds only with a class.
    let class = obs.class_or_default();
    let want_ns = build::namespace(ws, &class, target);
    let ns = match found {
        Some(ns) => *ns,
        None => apply::create_namespace(ctx, &build::namespace_to_create(ws, &class, target)).await?,
    };
    let goal = Goal::from(ws.spec.desired_state);
    let children = build::children(ws, &class, target, goal);
    // A namespace that answered a create with 409 is looked at only now.
    match plan::ownership(ws, &ns) {
        Ownership::Foreign(why) => return Ok((plan::refused(why), false)),
        // Taken over, nothing of it may be seized: an object under a child's name that is not
        // the Workspace's stops the adoption.
        Ownership::Adoptable => {
            if let Some(child) = foreign_child(ctx, target, &children, &labels::workspace_key(ws)).await? {
                let why = format!(
                    "{child} exists and is not this Workspace's: the operator would overwrite it; rename or remove it, or enroll another namespace"
                );
                return Ok((Outcome::new(State::Failed, StateReason::NamespaceConflict, why), false));
            }
        }
        Ownership::Ours => {}
    }
    let ns = apply::label_namespace(ctx, ns, &want_ns).await?;
    if ns.metadata.deletion_timestamp.is_some() {
        let state = if ws.spec.desired_state == DesiredState::Deleted { State::Deleting } else { State::Provisioning };
        let msg = format!("namespace {target} is terminating");
        return Ok((Outcome::new(state, StateReason::NamespaceTerminating, msg), false));
    }
    if ws.spec.desired_state == DesiredState::Deleted && plan::deletable(ws, &ns) {
        apply::prune::<RoleBinding>(ctx, target, &[], &obs.bindings).await?;
        apply::delete_namespace(ctx, &ns).await?;
        let msg = format!("deleting namespace {target}");
        return Ok((Outcome::new(State::Deleting, StateReason::NamespaceTerminating, msg), true));
    }
    let settling = sync_children(ctx, obs, children).await?;
    let outcome = match goal {
        Goal::Available => {
            let ready =
                Outcome::new(State::Available, StateReason::Provisioned, format!("namespace {target} is ready"));
            match resume_workloads(ws, ctx, target).await? {
                true => ready.with_workloads(None),
                false => ready,
            }
        }
        Goal::Deactivated if class.spec.deactivation.workloads == WorkloadsOnDeactivation::ScaleToZero => {
            let w = pause_workloads(ws, ctx, target).await?;
            let msg = format!(
                "access to {target} revoked and new pods blocked; data kept; {} workloads stopped, {} kept running",
                w.stopped.len(),
                w.kept_running
            );
            Outcome::new(State::Deactivated, StateReason::UserRequested, msg).with_workloads(Some(w))
        }
        Goal::Deactivated => Outcome::new(
            State::Deactivated,
            StateReason::UserRequested,
            format!("access to {target} revoked and new pods blocked; data kept"),
        ),
        Goal::Deleted | Goal::Released => Outcome::new(
            State::Deleted,
            StateReason::UserRequested,
            format!("access to {target} revoked; namespace retained"),
        ),
    };
    Ok((outcome, settling))
}

/// Deactivation that frees compute: what runs is recorded in the status, then stopped (see
/// `workloads`). Done once per generation: a resync of a deactivated workspace reads and
/// writes nothing.
async fn pause_workloads(ws: &mut Workspace, ctx: &Context, target: &str) -> Result<WorkloadsStatus> {
    let old = ws.status.as_ref();
    let done =
        old.is_some_and(|s| s.status == Some(State::Deactivated) && s.observed_generation == ws.metadata.generation);
    if let Some(w) = old.and_then(|s| s.workloads.clone()).filter(|_| done) {
        return Ok(w);
    }
    let recorded = old.and_then(|s| s.workloads.as_ref()).map(|w| w.stopped.clone()).unwrap_or_default();
    let (found, census) = observe::workloads(ctx, target).await?;
    let (record, changes) = workloads::pause(&found, census, &recorded);
    if record.stopped != recorded {
        report::workloads(ws, ctx, &record).await?;
    }
    for change in &changes {
        apply::change_workload(ctx, target, change).await?;
    }
    Ok(record)
}

/// Reactivation: each recorded workload gets back what it had, unless someone changed it
/// meanwhile. True when there was a record, which the status then drops.
async fn resume_workloads(ws: &Workspace, ctx: &Context, target: &str) -> Result<bool> {
    let Some(recorded) = ws.status.as_ref().and_then(|s| s.workloads.as_ref()) else { return Ok(false) };
    if !recorded.stopped.is_empty() {
        let (found, _) = observe::workloads(ctx, target).await?;
        let (changes, left) = workloads::resume(&found, &recorded.stopped);
        for change in &changes {
            apply::change_workload(ctx, target, change).await?;
        }
        info!(restarted = changes.len(), left_as_set = left, "workloads given back");
    }
    Ok(true)
}

/// The first child the Workspace would write over someone else's object of the same name.
async fn foreign_child(ctx: &Context, target: &str, children: &Children, key: &str) -> Result<Option<ChildRef>> {
    let Children { bindings, quota, limit_range, network_policy } = children;
    if let Some(c) = apply::foreign(ctx, target, bindings, key).await? {
        return Ok(Some(c));
    }
    if let Some(c) = apply::foreign(ctx, target, quota.as_slice(), key).await? {
        return Ok(Some(c));
    }
    if let Some(c) = apply::foreign(ctx, target, limit_range.as_slice(), key).await? {
        return Ok(Some(c));
    }
    Ok(apply::foreign(ctx, target, network_policy.as_slice(), key).await?)
}

/// Owners and admins keep their access; the public and grant bindings go (see
/// `plan::withdraws_access`). True when a write has yet to show in the caches.
async fn withdraw_access(ctx: &Context, obs: &Observation) -> Result<bool> {
    Ok(apply::prune::<RoleBinding>(ctx, &obs.target, &[labels::ADMINS_BINDING], &obs.bindings).await?)
}

/// Every kind of child, applied in turn; true when some write has yet to show in the caches.
async fn sync_children(ctx: &Context, obs: &Observation, children: Children) -> Result<bool> {
    let Children { bindings, quota, limit_range, network_policy } = children;
    // Access that goes is revoked first and access that comes is granted last, after the
    // limits and the isolation: a write that fails in between never leaves more access than
    // either the old or the new state gives.
    let wanted: Vec<String> = bindings.iter().map(|b| b.name_any()).collect();
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let a = apply::prune::<RoleBinding>(ctx, &obs.target, &wanted, &obs.bindings).await?;
    let b = apply::sync(ctx, &obs.target, quota.as_slice(), obs.quota.as_slice()).await?;
    let c = apply::sync(ctx, &obs.target, limit_range.as_slice(), obs.limit_range.as_slice()).await?;
    let d = apply::sync(ctx, &obs.target, network_policy.as_slice(), obs.network_policy.as_slice()).await?;
    let e = apply::sync(ctx, &obs.target, &bindings, &obs.bindings).await?;
    Ok(a || b || c || d || e)
}

// ----- the Workspace deleted ---------------------------------------------------------------------

/// `kubectl delete`: revoke access, release or delete the namespace by policy, then let go.
async fn finalize(cached: &Workspace, ctx: &Context, unseen: bool) -> Result<Action> {
    let mut ws = cached.clone();
    if !ws.finalizers().iter().any(|f| f == labels::FINALIZER) {
        return Ok(Action::await_change());
    }
    // The CRD itself is going (an uninstall gone wrong, a GitOps prune): every Workspace is
    // let go without touching what it made, so the deletion completes and every namespace stays.
    if observe::crd_terminating(ctx).await? {
        info!("the Workspace CRD is being deleted: releasing without teardown");
        report::release(&ws, ctx).await?;
        return Ok(Action::await_change());
    }
    let target = labels::target_namespace(&ws);
    if ws.status.as_ref().and_then(|s| s.status) != Some(State::Deleting) {
        let tearing = Outcome::new(State::Deleting, StateReason::UserRequested, "tearing down");
        report::status(&mut ws, ctx, &target, &tearing, None).await?;
    }
    let settling = match teardown(&ws, ctx).await {
        Ok(settling) => settling,
        // Judged on a version that changed meanwhile: the retry judges afresh.
        Err(e) if e.is_conflict() => return Err(e),
        Err(e) => {
            let outcome = Outcome::new(State::DeleteFailed, StateReason::DeletionFailed, e.to_string());
            report::status(&mut ws, ctx, &target, &outcome, Some(e.category())).await?;
            return Err(e);
        }
    };
    // A child written a moment ago may not be in the caches yet, so not revoked: the
    // Workspace keeps its finalizer until the caches show every write (its event wakes it).
    if settling || unseen {
        return Ok(Action::requeue(expectations::RECHECK));
    }
    report::release(&ws, ctx).await?;
    Ok(Action::await_change())
}

/// True when some write has yet to show in the caches (the finalizer stays until it has).
async fn teardown(ws: &Workspace, ctx: &Context) -> Result<bool> {
    let mut obs = observe::observe(ws, ctx, true).await?;
    observe::children(ws, ctx, &mut obs, true).await?;
    let Seen::Found(ns) = &obs.namespace else { return Ok(false) };
    // Never touch a namespace this Workspace does not own (a conflict, or another Workspace's).
    if plan::ownership(ws, ns) != Ownership::Ours {
        return Ok(false);
    }
    if plan::deletable(ws, ns) {
        // Everything in it goes with the namespace.
        apply::prune::<RoleBinding>(ctx, &obs.target, &[], &obs.bindings).await?;
        apply::delete_namespace(ctx, ns).await?;
        return Ok(false);
    }
    let class = obs.class_or_default();
    if sync_children(ctx, &obs, build::children(ws, &class, &obs.target, Goal::Released)).await? {
        return Ok(true);
    }
    // By the Workspace's own (immutable) management, not the namespace's label, which its
    // owner may change: an enrolled namespace is always handed back.
    if ws.spec.management == Management::Enrolled {
        apply::release_namespace(ctx, ns).await?;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use tokio::time::Instant;

    fn add(index: &ByNamespace, ns: &str, name: &str) {
        index.apply(&watcher::Event::Apply(crate::fixtures::ws(name).in_ns(ns).build()));
    }

    async fn next(stream: &mut (impl futures::Stream<Item = ObjectRef<Guarded>> + Unpin)) -> String {
        stream.next().await.expect("endless").to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn the_resync_visits_every_workspace_once_a_period_and_only_after_the_first() {
        let index = ByNamespace::default();
        for (ns, name) in [("a", "x"), ("a", "y"), ("b", "x")] {
            add(&index, ns, name);
        }
        let began = Instant::now();
        let mut stream = std::pin::pin!(resync(index, RESYNC));
        let mut first = HashSet::new();
        for _ in 0..3 {
            first.insert(next(&mut stream).await);
        }
        assert_eq!(first.len(), 3, "each once: {first:?}");
        let took = began.elapsed();
        assert!(took > RESYNC && took <= RESYNC * 2, "a period of quiet, then a round over one: {took:?}");
        let again = next(&mut stream).await;
        assert!(first.contains(&again), "then round after round");
        assert!(began.elapsed() <= RESYNC * 2 + RESYNC / 2);
    }

    #[tokio::test(start_paused = true)]
    async fn workspaces_created_during_a_round_do_not_stretch_it() {
        let index = ByNamespace::default();
        add(&index, "a", "x");
        add(&index, "b", "x");
        let mut stream = std::pin::pin!(resync(index.clone(), RESYNC));
        let began = Instant::now();
        assert!(next(&mut stream).await.ends_with("/x.a"), "namespaces in order");
        for i in 0..1000 {
            add(&index, "b", &format!("new-{i}"));
        }
        let mut seen = HashSet::new();
        while seen.len() < 1001 {
            seen.insert(next(&mut stream).await);
        }
        let took = began.elapsed();
        // A quiet period, then a round of one: it ends on time, give or take the last step.
        assert!(took <= RESYNC * 2 + Duration::from_secs(5), "the round ends on time: {took:?}");
    }
}
