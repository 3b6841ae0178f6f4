//! Request handling: routing, reads, watches and the write pipeline shared by create, update,
//! patch and delete.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use hyper::{HeaderMap, Method};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::errors::{ApiError, FieldError};
use super::resources::{Catalogue, Resource};
use super::selectors::{FieldSelector, LabelSelector, field_value};
use super::store::{self, Bounds, Change, EventType, Guard, Store};
use super::{
    Counters, FaultKind, Faults, RequestRecord, admission, builtin, discovery, managed, patch, protobuf, table,
};

pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn new(method: Method, path: String, query: &str, headers: HeaderMap, body: Bytes) -> Self {
        // form_urlencoded decodes `+` as a space and tolerates kube-rs's empty `?&` pairs.
        let query = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Req { method, path, query, headers, body }
    }

    fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str).filter(|s| !s.is_empty())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    fn header(&self, key: &str) -> &str {
        self.headers.get(key).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn accept(&self) -> &str {
        self.header("accept")
    }

    fn content_type(&self) -> &str {
        self.header("content-type").split(';').next().unwrap_or("").trim()
    }

    fn wants_table(&self) -> bool {
        // Walk Accept in order: the first supported entry wins.
        for part in self.accept().split(',') {
            let p = part.trim();
            if p.contains("as=Table") && p.contains("g=meta.k8s.io") {
                return true;
            }
            if p.starts_with("application/json") || p.starts_with("*/*") || p.contains("protobuf") {
                return false;
            }
        }
        false
    }

    fn wants_partial_metadata(&self) -> bool {
        self.accept().split(',').next().is_some_and(|p| p.contains("as=PartialObjectMetadata"))
    }

    fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }
}

pub enum Reply {
    Json { code: u16, body: Value, headers: Vec<(&'static str, String)> },
    Raw { code: u16, content_type: &'static str, body: Vec<u8> },
    Error(ApiError),
    Stream(mpsc::Receiver<Bytes>),
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply::Json { code: 200, body, headers: Vec::new() }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::Error(e)
    }
}

type Result<T> = std::result::Result<T, ApiError>;
/// Extra response headers (warnings).
type Headers = Vec<(&'static str, String)>;

/// The path of a resource request.
#[derive(Debug, Clone)]
struct Target {
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Version,
    Health,
    Discovery(String),
    OpenApiV3Root,
    OpenApiV3(String),
    Resource { group: String, version: String, plural: String, target: Target },
    NotFound,
}

fn route(path: &str) -> Route {
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] | ["api", "v1"] | ["apis"] | ["apis", _] | ["apis", _, _] => Route::Discovery(path.to_string()),
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let s = |x: &&str| Some(x.to_string());
    let (plural, target) = match rest {
        // /api/v1/namespaces/{name}/status is the Namespace's own subresource.
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            ("namespaces", Target { namespace: None, name: s(name), sub: s(sub) })
        }
        ["namespaces", ns, plural, rest @ ..] => {
            let (name, sub) = match rest {
                [] => (None, None),
                [n] => (s(n), None),
                [n, sub] => (s(n), s(sub)),
                _ => return Route::NotFound,
            };
            (*plural, Target { namespace: s(ns), name, sub })
        }
        [plural] => (*plural, Target { namespace: None, name: None, sub: None }),
        [plural, name] => (*plural, Target { namespace: None, name: s(name), sub: None }),
        [plural, name, sub] => (*plural, Target { namespace: None, name: s(name), sub: s(sub) }),
        _ => return Route::NotFound,
    };
    Route::Resource { group: group.into(), version: version.into(), plural: plural.into(), target }
}

pub struct State {
    pub(crate) store: Store,
    catalogue: RwLock<Arc<Catalogue>>,
    pub(crate) faults: Faults,
    pub(crate) counters: Counters,
    next_ip: AtomicU32,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    pub fn new() -> Self {
        let state = State {
            store: Store::default(),
            catalogue: RwLock::new(Arc::new(Catalogue::new(&[]))),
            faults: Faults::default(),
            counters: Counters::default(),
            next_ip: AtomicU32::new(1),
        };
        {
            let mut g = state.store.lock();
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let res = state.resource("", "v1", "namespaces").expect("namespaces are built in");
                let _ = state.create_locked(&mut g, &res, None, obj, &WriteOpts::default());
            }
        }
        state
    }

    /// Every stored object of a collection (`group/plural`, or `plural` for the core group),
    /// read without a request: for tests and benchmarks that must not disturb the counters.
    pub fn objects(&self, collection: &str) -> Vec<Arc<Value>> {
        self.store.lock().collection(collection).values().cloned().collect()
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Forget the change history: watches resuming from before now get 410 Expired.
    pub fn compact_history(&self) {
        self.store.lock().compact();
    }

    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn resource(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.catalogue().get(group, version, plural)
    }

    /// Rebuild routing and discovery from the stored CRDs (called after every CRD write).
    fn refresh_catalogue(&self, g: &Guard<'_>) {
        let crds: Vec<Arc<Value>> =
            g.collection("apiextensions.k8s.io/customresourcedefinitions").values().cloned().collect();
        *self.catalogue.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Catalogue::new(&crds));
    }

    pub async fn handle(self: &Arc<Self>, req: Req) -> Reply {
        match route(&req.path) {
            Route::Version => Reply::ok(json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
                "platform": "linux/amd64",
            })),
            Route::Health => Reply::Raw { code: 200, content_type: "text/plain", body: b"ok".to_vec() },
            Route::Discovery(path) => discovery::discovery(&self.catalogue(), &path, req.accept()),
            Route::OpenApiV3Root => discovery::openapi_root(&self.catalogue()),
            Route::OpenApiV3(gv) => discovery::openapi_doc(&self.catalogue(), &gv),
            Route::NotFound => ApiError::no_route().into(),
            Route::Resource { group, version, plural, target } => {
                let Some(res) = self.resource(&group, &version, &plural) else {
                    return ApiError::no_route().into();
                };
                match self.resource_request(res, target, req).await {
                    Ok(r) => r,
                    Err(e) => Reply::Error(e),
                }
            }
        }
    }

    async fn resource_request(self: &Arc<Self>, res: Arc<Resource>, t: Target, req: Req) -> Result<Reply> {
        if t.namespace.is_some() && !res.namespaced {
            return Err(ApiError::no_route());
        }
        match t.sub.as_deref() {
            None => {}
            Some("status") if res.status => {}
            Some("scale") if res.scale => {}
            Some("finalize") if res.plural == "namespaces" => {}
            Some(_) => return Err(ApiError::no_route()),
        }
        let verb = match (&req.method, &t.name) {
            (&Method::GET, Some(_)) => "get",
            (&Method::GET, None) if req.flag("watch") => "watch",
            (&Method::GET, None) => "list",
            (&Method::POST, None) => "create",
            (&Method::PUT, Some(_)) => "update",
            (&Method::PATCH, Some(_)) => "patch",
            (&Method::DELETE, Some(_)) => "delete",
            (&Method::DELETE, None) => "deletecollection",
            (m, _) => {
                let verb = m.as_str().to_uppercase();
                return Err(ApiError::method_not_allowed(&verb, &res.target("")));
            }
        };
        self.counters.record(RequestRecord {
            user_agent: req.header("user-agent").to_string(),
            verb: verb.into(),
            group: res.group.clone(),
            resource: res.plural.clone(),
            subresource: t.sub.clone().unwrap_or_default(),
            namespace: t.namespace.clone().unwrap_or_default(),
        });
        match self.faults.check(verb, &res.plural, req.q("continue").is_some()) {
            Some(FaultKind::Throttle(secs)) => return Err(ApiError::too_many_requests(secs)),
            Some(FaultKind::ExpireContinue) => return Err(expired_continue()),
            Some(FaultKind::Delay(ms)) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
            Some(_) => return Err(ApiError::internal("injected fault")),
            None => {}
        }
        let name = t.name.clone().unwrap_or_default();
        match verb {
            "get" => self.get(&res, &t, &name, &req),
            "list" => self.list(&res, &t, &req),
            "watch" => self.watch(res, t, &req),
            "create" => self.create(&res, &t, &req),
            "update" => self.update(&res, &t, &name, &req),
            "patch" => self.patch(&res, &t, &name, &req),
            "delete" => self.delete(&res, &t, &name, &req),
            _ => self.delete_collection(&res, &t, &req),
        }
    }

    // ----- reads -------------------------------------------------------------------------------

    fn get(&self, res: &Resource, t: &Target, name: &str, req: &Req) -> Result<Reply> {
        let obj = self.store.lock().get(&res.collection, &store::key(t.namespace.as_deref(), name));
        let obj = obj.ok_or_else(|| ApiError::not_found(&res.target(name)))?;
        if t.sub.as_deref() == Some("scale") {
            return Ok(Reply::ok(builtin::scale_of(&obj)));
        }
        let obj = builtin::view(res, &obj);
        if req.wants_table() {
            return Ok(Reply::ok(table::table(res, &[&obj], None, true)));
        }
        if req.wants_partial_metadata() {
            return Ok(Reply::ok(partial_metadata(&obj)));
        }
        Ok(Reply::ok(obj))
    }

    fn list(&self, res: &Resource, t: &Target, req: &Req) -> Result<Reply> {
        let sel = Selection::from_req(res, t, req)?;
        if req.q("resourceVersionMatch").is_some() && req.q("resourceVersion").is_none() {
            return Err(list_options_invalid(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if req.q("sendInitialEvents").is_some() {
            return Err(list_options_invalid("sendInitialEvents", "sendInitialEvents is forbidden for list"));
        }
        let limit: usize = req.q("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        let (snapshot, rv, after) = {
            let mut g = self.store.lock();
            match req.q("continue") {
                Some(token) => {
                    let (rv, after) = decode_continue(token)?;
                    let snap = g.snapshot(rv, &res.collection).ok_or_else(expired_continue)?;
                    (snap, rv, Some(after))
                }
                None => {
                    let rv = g.current_rv();
                    if req.q("resourceVersionMatch") == Some("Exact")
                        && req.q("resourceVersion").and_then(|r| r.parse::<u64>().ok()) != Some(rv)
                    {
                        return Err(ApiError::gone("The resourceVersion for the provided list is too old."));
                    }
                    let snap = g.collection(&res.collection);
                    if limit > 0 {
                        g.save_snapshot(rv, res.collection.clone(), snap.clone());
                    }
                    (snap, rv, None)
                }
            }
        };
        let bounds = Bounds::new(sel.namespace.as_deref(), after.as_deref());
        let mut items: Vec<Value> = Vec::new();
        let mut next_key: Option<Arc<str>> = None;
        let mut iter = bounds.iter(&snapshot);
        for (key, obj) in iter.by_ref() {
            if !sel.matches(obj) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                next_key = Some(key.clone());
                break;
            }
            items.push(builtin::view(res, obj));
        }
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if let Some(first_unreturned) = next_key {
            // The token points at the last returned key; the next page starts after it.
            let last_key = items.last().map(|o| object_key(res, o)).unwrap_or_else(|| first_unreturned.to_string());
            meta["continue"] = json!(encode_continue(rv, &last_key));
            if sel.is_unfiltered() {
                meta["remainingItemCount"] = json!(1 + iter.count());
            }
        }
        if req.wants_table() {
            let refs: Vec<&Value> = items.iter().collect();
            return Ok(Reply::ok(table::table(res, &refs, Some(meta), true)));
        }
        if req.wants_partial_metadata() {
            let items: Vec<Value> = items.iter().map(partial_metadata).collect();
            return Ok(Reply::ok(json!({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items,
            })));
        }
        Ok(Reply::ok(json!({
            "kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": meta, "items": items,
        })))
    }

    fn watch(self: &Arc<Self>, res: Arc<Resource>, t: Target, req: &Req) -> Result<Reply> {
        let sel = Selection::from_req(&res, &t, req)?;
        let send_initial = req.q("sendInitialEvents").map(|v| v == "true");
        let rv_match = req.q("resourceVersionMatch");
        if let Some(m) = rv_match {
            if send_initial.is_none() {
                return Err(list_options_invalid(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if m != "NotOlderThan" {
                return Err(list_options_invalid(
                    "resourceVersionMatch",
                    &format!("resourceVersionMatch \"{m}\" is not supported for watch"),
                ));
            }
        }
        if send_initial.is_some() {
            if rv_match != Some("NotOlderThan") {
                return Err(list_options_invalid(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless resourceVersionMatch is NotOlderThan",
                ));
            }
            if !req.flag("allowWatchBookmarks") {
                return Err(list_options_invalid(
                    "allowWatchBookmarks",
                    "allowWatchBookmarks must be true when sendInitialEvents is provided",
                ));
            }
        }
        let timeout = req
            .q("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let bookmarks = req.flag("allowWatchBookmarks");
        let table = req.wants_table();
        let rv_param = req.q("resourceVersion").unwrap_or("").to_string();
        let (tx, rx) = mpsc::channel::<Bytes>(1024);

        // Under the lock: the initial events and the subscription, so nothing falls in between.
        let (initial, mut sub, start_rv, too_old) = {
            let g = self.store.lock();
            let current = g.current_rv();
            let sub = g.subscribe();
            let want_initial =
                send_initial == Some(true) || (send_initial.is_none() && (rv_param.is_empty() || rv_param == "0"));
            if want_initial {
                let snap = g.collection(&res.collection);
                let bounds = Bounds::new(sel.namespace.as_deref(), None);
                let objs: Vec<Arc<Value>> =
                    bounds.iter(&snap).filter(|(_, o)| sel.matches(o)).map(|(_, o)| o.clone()).collect();
                (Initial::Objects(objs), sub, current, None)
            } else {
                let rv: u64 = rv_param
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv_param}")))?;
                if rv > current {
                    // The real server answers 504 "Too large resource version"; an in-stream 410
                    // makes clients relist instead of retrying the same version forever.
                    (Initial::None, sub, rv, Some(format!("too old resource version: {rv} ({current})")))
                } else {
                    match g.changes_since(rv) {
                        Some(changes) => (Initial::Changes(changes), sub, rv, None),
                        None => (
                            Initial::None,
                            sub,
                            rv,
                            Some(format!("too old resource version: {rv} ({})", g.compacted_rv())),
                        ),
                    }
                }
            }
        };
        let state = self.clone();
        let drop_gen = self.faults.drop_generation.load(Ordering::SeqCst);
        tokio::spawn(async move {
            let mut w = WatchWriter { tx, res: res.clone(), table, header_sent: false };
            if let Some(msg) = too_old {
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": msg, "reason": "Expired", "code": 410});
                let _ = w.send_raw("ERROR", status).await;
                return;
            }
            let mut last_rv = start_rv;
            match initial {
                Initial::Objects(objs) => {
                    for o in objs {
                        if w.send("ADDED", &o).await.is_err() {
                            return;
                        }
                    }
                    if send_initial == Some(true) {
                        let bm = bookmark(&res, start_rv, true);
                        if w.send_raw("BOOKMARK", bm).await.is_err() {
                            return;
                        }
                    }
                }
                Initial::Changes(changes) => {
                    for c in changes {
                        last_rv = c.rv;
                        if let Some((kind, obj)) = sel.event_for(&res, &c)
                            && w.send(kind, &obj).await.is_err()
                        {
                            return;
                        }
                    }
                }
                Initial::None => {}
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut ticker = tokio::time::interval(Duration::from_secs(5));
            ticker.tick().await;
            let dropped = state.faults.drop_watches.notified();
            tokio::pin!(dropped);
            if state.faults.drop_generation.load(Ordering::SeqCst) != drop_gen {
                return;
            }
            loop {
                tokio::select! {
                    _ = &mut deadline => {
                        if bookmarks {
                            let _ = w.send_raw("BOOKMARK", bookmark(&res, last_rv, false)).await;
                        }
                        return;
                    }
                    _ = &mut dropped => return,
                    _ = ticker.tick() => {
                        if bookmarks && w.send_raw("BOOKMARK", bookmark(&res, last_rv, false)).await.is_err() {
                            return;
                        }
                    }
                    _ = w.tx.closed() => return,
                    msg = sub.recv() => match msg {
                        Ok(c) => {
                            if c.rv <= last_rv {
                                continue;
                            }
                            last_rv = c.rv;
                            if let Some((kind, obj)) = sel.event_for(&res, &c)
                                && w.send(kind, &obj).await.is_err()
                            {
                                return;
                            }
                        }
                        // A watcher too slow to keep up is closed; the client re-watches from
                        // its last resourceVersion, as after any dropped connection.
                        Err(_) => return,
                    }
                }
            }
        });
        Ok(Reply::Stream(rx))
    }

    // ----- writes ------------------------------------------------------------------------------

    fn decode_body(&self, res: &Resource, req: &Req) -> Result<Value> {
        match req.content_type() {
            "application/vnd.kubernetes.protobuf" => protobuf::decode_object(&req.body, res),
            "application/json" | "" | "application/yaml" | "*/*" => parse_body(&req.body),
            _ => Err(ApiError::unsupported_media(
                "application/json, application/yaml, application/vnd.kubernetes.protobuf",
            )),
        }
    }

    fn write_opts(&self, req: &Req, sub: Option<&str>) -> WriteOpts {
        WriteOpts {
            dry_run: req.dry_run(),
            field_validation: match req.q("fieldValidation") {
                Some("Strict") => FieldValidation::Strict,
                Some("Ignore") => FieldValidation::Ignore,
                _ => FieldValidation::Warn,
            },
            manager: req
                .q("fieldManager")
                .map(String::from)
                .unwrap_or_else(|| default_manager(req.header("user-agent"))),
            subresource: sub.map(String::from),
            force: req.flag("force"),
            apply: false,
        }
    }

    fn create(&self, res: &Arc<Resource>, t: &Target, req: &Req) -> Result<Reply> {
        let body = self.decode_body(res, req)?;
        check_type(res, &body)?;
        let body = builtin::to_storage(res, body);
        let opts = self.write_opts(req, None);
        let mut g = self.store.lock();
        let (obj, warnings) = self.create_locked(&mut g, res, t.namespace.as_deref(), body, &opts)?;
        drop(g);
        Ok(Reply::Json { code: 201, body: builtin::view(res, &obj), headers: warnings })
    }

    fn create_locked(
        &self,
        g: &mut Guard<'_>,
        res: &Arc<Resource>,
        namespace: Option<&str>,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<(Value, Headers)> {
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let meta = &mut obj["metadata"];
        if let Some(ns) = namespace {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(b) if !b.is_empty() && b != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => meta["namespace"] = json!(ns),
            }
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        let has_name = meta.get("name").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        if !has_name && let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
            let name = format!("{prefix}{}", random_suffix());
            meta["name"] = json!(name);
        }
        let name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(ns) = namespace {
            match g.get("namespaces", &store::key(None, ns)) {
                None => {
                    return Err(ApiError::not_found(&super::errors::Target {
                        plural: "namespaces".into(),
                        name: ns.into(),
                        ..Default::default()
                    }));
                }
                Some(n) if n["metadata"].get("deletionTimestamp").is_some() => {
                    return Err(ApiError::forbidden(
                        &res.target(&name),
                        &format!("unable to create new content in namespace {ns} because it is being terminated"),
                    ));
                }
                _ => {}
            }
        }
        // The server owns these.
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove(k);
            }
        }
        if res.status {
            // Status is written through /status only.
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        let warnings = self.admit(res, &mut obj, None, opts)?;
        let key = store::key(namespace, &name);
        if g.get(&res.collection, &key).is_some() {
            return Err(ApiError::already_exists(&res.target(&name)));
        }
        builtin::on_create(res, &mut obj, &self.next_ip);
        if obj["apiVersion"].as_str().unwrap_or("").is_empty() {
            obj["apiVersion"] = json!(res.api_version());
        }
        if obj["kind"].as_str().unwrap_or("").is_empty() {
            obj["kind"] = json!(res.kind);
        }
        let meta = &mut obj["metadata"];
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["creationTimestamp"] = json!(now_rfc3339());
        if res.tracks_generation {
            meta["generation"] = json!(1);
        }
        managed::record_update(
            None,
            &mut obj,
            &opts.manager,
            if opts.is_apply() { "Apply" } else { "Update" },
            &res.api_version(),
            None,
        );
        strip_empty_metadata(&mut obj);
        if opts.dry_run {
            return Ok((obj, warnings));
        }
        let rv = g.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Arc::new(obj);
        g.put(&res.collection, key, stored.clone(), rv);
        if res.plural == "customresourcedefinitions" {
            self.refresh_catalogue(g);
        }
        Ok(((*stored).clone(), warnings))
    }

    /// Pruning, defaulting and validation; returns `Warning` headers for fieldValidation=Warn.
    fn admit(&self, res: &Resource, obj: &mut Value, old: Option<&Value>, opts: &WriteOpts) -> Result<Headers> {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let mut errors = super::validation::validate_metadata(&obj["metadata"], res.name_rule);
        let mut unknown = Vec::new();
        if let Some(custom) = &res.custom {
            admission::prune_and_default(&custom.schema, obj, &mut unknown);
            if errors.is_empty() {
                errors.extend(admission::validate(&custom.schema, custom.rules.as_deref(), obj, old));
            }
        } else {
            errors.extend(builtin::validate(res, obj, old));
        }
        if !unknown.is_empty() && opts.field_validation == FieldValidation::Strict {
            let list: Vec<String> = unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect();
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
                list.join(", "),
                kind = res.kind,
                v = res.version
            )));
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(&res.kind, &res.group, &name, &errors));
        }
        let mut headers = Vec::new();
        if opts.field_validation == FieldValidation::Warn {
            for u in unknown {
                headers.push(("Warning", format!("299 - \"unknown field \\\"{u}\\\"\"")));
            }
        }
        Ok(headers)
    }

    fn update(&self, res: &Arc<Resource>, t: &Target, name: &str, req: &Req) -> Result<Reply> {
        let body = self.decode_body(res, req)?;
        if t.sub.as_deref() == Some("scale") {
            return self.update_scale(res, t, name, body, req);
        }
        check_type(res, &body)?;
        let body_name = body["metadata"]["name"].as_str().unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body = builtin::to_storage(res, body);
        let opts = self.write_opts(req, t.sub.as_deref());
        let mut g = self.store.lock();
        let key = store::key(t.namespace.as_deref(), name);
        let current = g.get(&res.collection, &key).ok_or_else(|| ApiError::not_found(&res.target(name)))?;
        match body["metadata"]["resourceVersion"].as_str().filter(|s| !s.is_empty()) {
            Some(rv) if rv != current["metadata"]["resourceVersion"] => {
                return Err(ApiError::conflict(&res.target(name)));
            }
            Some(_) => {}
            None if res.is_custom() || res.plural == "customresourcedefinitions" => {
                return Err(ApiError::invalid(
                    &res.kind,
                    &res.group,
                    name,
                    &[FieldError::invalid("metadata.resourceVersion", &json!(0), "must be specified for an update")],
                ));
            }
            None => {}
        }
        let (obj, code, headers) = self.replace_locked(&mut g, res, key, &current, body, &opts)?;
        drop(g);
        Ok(Reply::Json { code, body: builtin::view(res, &obj), headers })
    }

    /// The write pipeline of update and patch: merge with the stored object according to the
    /// subresource, admit, and store unless nothing changed.
    fn replace_locked(
        &self,
        g: &mut Guard<'_>,
        res: &Arc<Resource>,
        key: Arc<str>,
        current: &Arc<Value>,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<(Value, u16, Headers)> {
        let mut obj = match opts.subresource.as_deref() {
            Some("status") => {
                let mut o = (**current).clone();
                o["status"] = body.get("status").cloned().unwrap_or(Value::Null);
                if o["status"].is_null()
                    && let Some(m) = o.as_object_mut()
                {
                    m.remove("status");
                }
                o
            }
            _ => {
                let mut o = body;
                if res.status {
                    match current.get("status") {
                        Some(s) => o["status"] = s.clone(),
                        None => {
                            if let Some(m) = o.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                o
            }
        };
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        // Server-owned metadata survives any write.
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match current["metadata"].get(k) {
                Some(v) => obj["metadata"][k] = v.clone(),
                None => {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        obj["apiVersion"] = current["apiVersion"].clone();
        obj["kind"] = current["kind"].clone();
        if current["metadata"].get("deletionTimestamp").is_some() {
            let old_f = string_set(&current["metadata"]["finalizers"]);
            let new_f = string_set(&obj["metadata"]["finalizers"]);
            if new_f.iter().any(|f| !old_f.contains(f)) {
                return Err(ApiError::invalid(
                    &res.kind,
                    &res.group,
                    &name_of(current),
                    &[FieldError::forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted",
                    )],
                ));
            }
        }
        let headers = self.admit(res, &mut obj, Some(current), opts)?;
        builtin::on_update(res, &mut obj, current);
        if res.tracks_generation && spec_changed(res, current, &obj) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            obj["metadata"]["generation"] = json!(generation);
        }
        builtin::simulate_status(res, &mut obj);
        strip_empty_metadata(&mut obj);
        // managedFields are bookkeeping: compare without them so a no-op write stays a no-op.
        managed::carry_over(current, &mut obj, opts.is_apply());
        if obj == **current {
            return Ok(((**current).clone(), 200, headers));
        }
        managed::record_update(
            Some(current),
            &mut obj,
            &opts.manager,
            if opts.is_apply() { "Apply" } else { "Update" },
            &res.api_version(),
            opts.subresource.as_deref(),
        );
        if opts.dry_run {
            return Ok((obj, 200, headers));
        }
        let rv = g.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let finalized =
            obj["metadata"].get("deletionTimestamp").is_some() && string_set(&obj["metadata"]["finalizers"]).is_empty();
        let stored = Arc::new(obj);
        if finalized {
            g.remove(&res.collection, &key, stored.clone(), rv);
            self.after_removal(g, res, &stored);
        } else {
            g.put(&res.collection, key, stored.clone(), rv);
        }
        if res.plural == "customresourcedefinitions" {
            self.refresh_catalogue(g);
        }
        Ok(((*stored).clone(), 200, headers))
    }

    fn update_scale(&self, res: &Arc<Resource>, t: &Target, name: &str, scale: Value, req: &Req) -> Result<Reply> {
        let opts = self.write_opts(req, None);
        let mut g = self.store.lock();
        let key = store::key(t.namespace.as_deref(), name);
        let current = g.get(&res.collection, &key).ok_or_else(|| ApiError::not_found(&res.target(name)))?;
        let mut obj = (*current).clone();
        obj["spec"]["replicas"] = scale["spec"]["replicas"].clone();
        let (obj, _, _) = self.replace_locked(&mut g, res, key, &current, obj, &opts)?;
        Ok(Reply::ok(builtin::scale_of(&obj)))
    }

    fn patch(&self, res: &Arc<Resource>, t: &Target, name: &str, req: &Req) -> Result<Reply> {
        let ct = req.content_type();
        let kind = match ct {
            "application/merge-patch+json" => patch::Kind::Merge,
            "application/json-patch+json" => patch::Kind::Json,
            "application/strategic-merge-patch+json" if !res.is_custom() => patch::Kind::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" if ct.ends_with("yaml") => {
                patch::Kind::Apply
            }
            _ => {
                let accepted = if res.is_custom() {
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                } else {
                    "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
                };
                return Err(ApiError::unsupported_media(accepted));
            }
        };
        let mut opts = self.write_opts(req, t.sub.as_deref());
        if kind == patch::Kind::Apply {
            if req.q("fieldManager").is_none() {
                return Err(ApiError::invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    &[FieldError::required("fieldManager", "is required for apply patch")],
                ));
            }
            opts.apply = true;
        }
        let patch_body: Value = match kind {
            patch::Kind::Apply => crate::yaml::from_str(std::str::from_utf8(&req.body).unwrap_or(""))
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
            _ => parse_body(&req.body)?,
        };
        let mut g = self.store.lock();
        let key = store::key(t.namespace.as_deref(), name);
        let current = match g.get(&res.collection, &key) {
            Some(c) => c,
            None if kind == patch::Kind::Apply && t.sub.is_none() => {
                // Server-side apply creates what does not exist.
                check_type(res, &patch_body)?;
                let mut body = patch_body;
                body["metadata"]["name"] = json!(name);
                let (obj, warnings) = self.create_locked(&mut g, res, t.namespace.as_deref(), body, &opts)?;
                return Ok(Reply::Json { code: 201, body: builtin::view(res, &obj), headers: warnings });
            }
            None => return Err(ApiError::not_found(&res.target(name))),
        };
        if t.sub.as_deref() == Some("scale") {
            let scale = patch::apply(patch::Kind::Merge, &builtin::scale_of(&current), &patch_body, res)?;
            drop(g);
            return self.update_scale(res, t, name, scale, req);
        }
        if let Some(rv) = patch_body["metadata"]["resourceVersion"].as_str()
            && kind != patch::Kind::Apply
            && rv != current["metadata"]["resourceVersion"]
        {
            return Err(ApiError::conflict(&res.target(name)));
        }
        let mut patched = if kind == patch::Kind::Apply {
            check_type(res, &patch_body)?;
            managed::apply(res, &current, &patch_body, &opts.manager, opts.force, opts.subresource.as_deref())?
        } else {
            builtin::to_storage(res, patch::apply(kind, &builtin::view(res, &current), &patch_body, res)?)
        };
        if kind == patch::Kind::Json || kind == patch::Kind::Merge {
            // Strict validation of a patch reports against the patched object, as a 422.
            if opts.field_validation == FieldValidation::Strict
                && let Some(custom) = &res.custom
            {
                let mut probe = patched.clone();
                let mut unknown = Vec::new();
                admission::prune_and_default(&custom.schema, &mut probe, &mut unknown);
                if !unknown.is_empty() {
                    let list: Vec<String> = unknown.iter().map(|u| format!("unknown field \\\"{u}\\\"")).collect();
                    let text = serde_json::to_string(&patched).unwrap_or_default();
                    return Err(ApiError::invalid(
                        "",
                        "",
                        name,
                        &[FieldError::custom(
                            "FieldValueInvalid",
                            "patch",
                            format!("Invalid value: {text:?}: strict decoding error: {}", list.join(", ")),
                        )],
                    ));
                }
            }
        }
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        let (obj, code, headers) = self.replace_locked(&mut g, res, key, &current, patched, &opts)?;
        drop(g);
        Ok(Reply::Json { code, body: builtin::view(res, &obj), headers })
    }

    fn delete(&self, res: &Arc<Resource>, t: &Target, name: &str, req: &Req) -> Result<Reply> {
        let opts = delete_options(req)?;
        let mut g = self.store.lock();
        let key = store::key(t.namespace.as_deref(), name);
        let current = g.get(&res.collection, &key).ok_or_else(|| ApiError::not_found(&res.target(name)))?;
        if let Some(uid) = opts["preconditions"]["uid"].as_str()
            && uid != current["metadata"]["uid"]
        {
            return Err(ApiError::conflict_message(
                &res.target(name),
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    current["metadata"]["uid"].as_str().unwrap_or("")
                ),
                vec![],
            ));
        }
        if let Some(rv) = opts["preconditions"]["resourceVersion"].as_str()
            && rv != current["metadata"]["resourceVersion"]
        {
            return Err(ApiError::conflict(&res.target(name)));
        }
        let dry_run = req.dry_run() || opts["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
        let obj = self.delete_locked(&mut g, res, &key, &current, dry_run);
        drop(g);
        Ok(Reply::ok(builtin::view(res, &obj)))
    }

    /// Delete one object: mark it when finalizers (or namespace content) hold it, else remove it.
    fn delete_locked(
        &self,
        g: &mut Guard<'_>,
        res: &Arc<Resource>,
        key: &Arc<str>,
        current: &Arc<Value>,
        dry_run: bool,
    ) -> Value {
        let is_namespace = res.plural == "namespaces";
        let is_crd = res.plural == "customresourcedefinitions";
        let held = !string_set(&current["metadata"]["finalizers"]).is_empty() || is_namespace || is_crd;
        if dry_run {
            return (**current).clone();
        }
        if held {
            if current["metadata"].get("deletionTimestamp").is_some() {
                return (**current).clone();
            }
            let mut obj = (**current).clone();
            obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if is_namespace {
                obj["status"]["phase"] = json!("Terminating");
            }
            let rv = g.next_rv();
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let stored = Arc::new(obj);
            g.put(&res.collection, key.clone(), stored.clone(), rv);
            if is_namespace || is_crd {
                self.cascade(g, res, &stored);
            }
            return (*stored).clone();
        }
        let mut obj = (**current).clone();
        let rv = g.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Arc::new(obj);
        g.remove(&res.collection, key, stored.clone(), rv);
        self.after_removal(g, res, &stored);
        (*stored).clone()
    }

    /// Namespace and CRD deletion: delete what they contain; they go once it is all gone.
    fn cascade(&self, g: &mut Guard<'_>, res: &Arc<Resource>, owner: &Arc<Value>) {
        let cat = self.catalogue();
        let victims: Vec<(Arc<Resource>, Arc<str>)> = if res.plural == "namespaces" {
            let ns = name_of(owner);
            g.keys_in_namespace(&ns)
                .into_iter()
                .filter_map(|(coll, key)| cat.by_collection(&coll).map(|r| (r, key)))
                .collect()
        } else {
            let group = owner["spec"]["group"].as_str().unwrap_or("");
            let plural = owner["spec"]["names"]["plural"].as_str().unwrap_or("");
            let coll = format!("{group}/{plural}");
            match cat.by_collection(&coll) {
                Some(r) => g.collection(&coll).keys().map(|k| (r.clone(), k.clone())).collect(),
                None => Vec::new(),
            }
        };
        for (r, key) in victims {
            if let Some(obj) = g.get(&r.collection, &key) {
                self.delete_locked(g, &r, &key, &obj, false);
            }
        }
        self.finish_container(g, res, owner);
    }

    /// After an object is removed, a terminating namespace or CRD it was holding may go too.
    fn after_removal(&self, g: &mut Guard<'_>, res: &Arc<Resource>, removed: &Value) {
        if res.plural == "customresourcedefinitions" {
            let coll = format!(
                "{}/{}",
                removed["spec"]["group"].as_str().unwrap_or(""),
                removed["spec"]["names"]["plural"].as_str().unwrap_or("")
            );
            g.drop_collection(&coll);
            self.refresh_catalogue(g);
            return;
        }
        let cat = self.catalogue();
        if let Some(ns) = removed["metadata"]["namespace"].as_str()
            && let Some(nsobj) = g.get("namespaces", &store::key(None, ns))
            && nsobj["metadata"].get("deletionTimestamp").is_some()
            && let Some(nsres) = cat.get("", "v1", "namespaces")
        {
            self.finish_container(g, &nsres, &nsobj);
        }
        if let Some(custom) = &res.custom
            && let Some(crd) =
                g.get("apiextensions.k8s.io/customresourcedefinitions", &store::key(None, &custom.crd_name))
            && crd["metadata"].get("deletionTimestamp").is_some()
            && let Some(crdres) = cat.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        {
            self.finish_container(g, &crdres, &crd);
        }
    }

    fn finish_container(&self, g: &mut Guard<'_>, res: &Arc<Resource>, owner: &Value) {
        let empty = if res.plural == "namespaces" {
            g.keys_in_namespace(&name_of(owner)).is_empty()
        } else {
            let coll = format!(
                "{}/{}",
                owner["spec"]["group"].as_str().unwrap_or(""),
                owner["spec"]["names"]["plural"].as_str().unwrap_or("")
            );
            g.collection(&coll).is_empty()
        };
        let key = store::key(None, &name_of(owner));
        let Some(current) = g.get(&res.collection, &key) else {
            return;
        };
        if !empty || !string_set(&current["metadata"]["finalizers"]).is_empty() {
            return;
        }
        let mut obj = (*current).clone();
        let rv = g.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Arc::new(obj);
        g.remove(&res.collection, &key, stored.clone(), rv);
        self.after_removal(g, res, &stored);
    }

    fn delete_collection(&self, res: &Arc<Resource>, t: &Target, req: &Req) -> Result<Reply> {
        let sel = Selection::from_req(res, t, req)?;
        let mut g = self.store.lock();
        let snap = g.collection(&res.collection);
        let bounds = Bounds::new(sel.namespace.as_deref(), None);
        let matching: Vec<(Arc<str>, Arc<Value>)> =
            bounds.iter(&snap).filter(|(_, o)| sel.matches(o)).map(|(k, o)| (k.clone(), o.clone())).collect();
        let mut items = Vec::new();
        for (key, obj) in matching {
            items.push(builtin::view(res, &self.delete_locked(&mut g, res, &key, &obj, req.dry_run())));
        }
        let rv = g.current_rv();
        Ok(Reply::ok(
            json!({"kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        ))
    }
}

enum Initial {
    Objects(Vec<Arc<Value>>),
    Changes(Vec<Arc<Change>>),
    None,
}

struct WatchWriter {
    tx: mpsc::Sender<Bytes>,
    res: Arc<Resource>,
    table: bool,
    header_sent: bool,
}

impl WatchWriter {
    async fn send(&mut self, kind: &str, obj: &Value) -> std::result::Result<(), ()> {
        let obj = builtin::view(&self.res, obj);
        let obj = if self.table {
            // Only the first event carries column definitions, as the real server does.
            let t = table::table(&self.res, &[&obj], None, !self.header_sent);
            self.header_sent = true;
            t
        } else {
            obj
        };
        self.send_raw(kind, obj).await
    }

    async fn send_raw(&mut self, kind: &str, obj: Value) -> std::result::Result<(), ()> {
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
        line.push(b'\n');
        self.tx.send(Bytes::from(line)).await.map_err(|_| ())
    }
}

fn bookmark(res: &Resource, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta})
}

/// What a list or watch selects: a namespace, a label selector and a field selector.
struct Selection {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Field labels resolved to JSON paths (the same string for most).
    field_paths: Vec<String>,
}

impl Selection {
    fn from_req(res: &Resource, t: &Target, req: &Req) -> Result<Self> {
        let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(req.q("fieldSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
        let mut field_paths = Vec::new();
        for key in fields.keys() {
            match builtin::field_label_path(res, key) {
                Some(p) => field_paths.push(p),
                None => {
                    return Err(ApiError::bad_request(format!("field label not supported: {key}")));
                }
            }
        }
        Ok(Selection { namespace: t.namespace.clone(), labels, fields, field_paths })
    }

    fn is_unfiltered(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && obj["metadata"]["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        self.labels.matches(obj["metadata"]["labels"].as_object())
            && self.fields.matches(|k| {
                let idx = self.fields.keys().position(|x| x == k).unwrap_or(0);
                field_value(obj, &self.field_paths[idx])
            })
    }

    /// The event a watcher with this selection sees for a change, if any: objects entering the
    /// selection are ADDED, leaving it DELETED (watch-cache semantics).
    fn event_for(&self, res: &Resource, c: &Change) -> Option<(&'static str, Value)> {
        if *c.collection != *res.collection {
            return None;
        }
        let now = self.matches(&c.object);
        let before = c.previous.as_deref().is_some_and(|p| self.matches(p));
        let kind = match (c.kind, before, now) {
            (EventType::Deleted, true, _) => "DELETED",
            (EventType::Deleted, false, _) => return None,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return None,
        };
        Some((kind, (*c.object).clone()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Strict,
    #[default]
    Warn,
    Ignore,
}

#[derive(Clone, Debug, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub manager: String,
    pub subresource: Option<String>,
    pub force: bool,
    pub apply: bool,
}

impl WriteOpts {
    fn is_apply(&self) -> bool {
        self.apply
    }
}

/// The real server defaults the field manager to the user agent's program name.
fn default_manager(user_agent: &str) -> String {
    let prog = user_agent.split('/').next().unwrap_or("").trim();
    if prog.is_empty() { "unknown".into() } else { prog.chars().take(128).collect() }
}

fn parse_body(body: &[u8]) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(body)
        .or_else(|_| crate::yaml::from_str::<Value>(std::str::from_utf8(body).unwrap_or("")))
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}

fn check_type(res: &Resource, body: &Value) -> Result<()> {
    let api_version = body["apiVersion"].as_str().unwrap_or("");
    let kind = body["kind"].as_str().unwrap_or("");
    if (!api_version.is_empty() && api_version != res.api_version()) || (!kind.is_empty() && kind != res.kind) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    Ok(())
}

fn delete_options(req: &Req) -> Result<Value> {
    let mut opts = if req.body.is_empty() {
        json!({})
    } else if req.content_type() == "application/vnd.kubernetes.protobuf" {
        protobuf::decode_delete_options(&req.body)?
    } else {
        parse_body(&req.body).unwrap_or_else(|_| json!({}))
    };
    if let Some(p) = req.q("propagationPolicy") {
        opts["propagationPolicy"] = json!(p);
    }
    Ok(opts)
}

fn list_options_invalid(field: &str, detail: &str) -> ApiError {
    ApiError::invalid("ListOptions", "meta.k8s.io", "", &[FieldError::forbidden(field, detail)])
}

fn encode_continue(rv: u64, key: &str) -> String {
    use base64::Engine;
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, String)> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, start))
}

fn expired_continue() -> ApiError {
    ApiError::gone(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
    )
}

fn object_key(res: &Resource, obj: &Value) -> String {
    let ns = if res.namespaced { obj["metadata"]["namespace"].as_str() } else { None };
    store::key(ns, obj["metadata"]["name"].as_str().unwrap_or("")).to_string()
}

fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or("").to_string()
}

fn string_set(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// Did anything outside metadata (and status, for kinds with a status subresource) change?
fn spec_changed(res: &Resource, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            if res.status {
                m.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

/// Empty finalizers, labels, annotations and ownerReferences are omitted, as the real server
/// does; kube-rs's finalizer helper depends on it.
fn strip_empty_metadata(obj: &mut Value) {
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.retain(|k, v| {
            let empty = match v {
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                Value::Null => true,
                Value::String(s) => s.is_empty() && k != "name",
                _ => false,
            };
            !empty
        });
    }
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
