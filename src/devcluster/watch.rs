//! Watches: initial events or the history since a resourceVersion, then live changes, with
//! bookmarks, timeouts and in-stream 410 errors as kube-apiserver's watch cache sends them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::builtin;
use crate::errors::{ApiError, Result};
use crate::list::list_options_invalid;
use crate::registry::{ApiServer, partial_metadata};
use crate::request::{Reply, Req, ResourcePath};
use crate::resources::Resource;
use crate::selection::Selection;
use crate::store::{Bounds, Change};
use crate::table;

impl ApiServer {
    pub(crate) fn watch(self: &Arc<Self>, res: Arc<Resource>, t: ResourcePath, req: &Req) -> Result<Reply> {
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
        let partial = !table && req.wants_partial_metadata();
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
            let mut w = WatchWriter { tx, res: res.clone(), table, partial, header_sent: false };
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
                        let bm = bookmark(&res, start_rv, true, partial);
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
                            let _ = w.send_raw("BOOKMARK", bookmark(&res, last_rv, false, partial)).await;
                        }
                        return;
                    }
                    _ = &mut dropped => return,
                    _ = ticker.tick() => {
                        if bookmarks && w.send_raw("BOOKMARK", bookmark(&res, last_rv, false, partial)).await.is_err() {
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
    /// `as=PartialObjectMetadata`: each object as its metadata only, as metadata informers ask.
    partial: bool,
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
        } else if self.partial {
            partial_metadata(&obj)
        } else {
            obj
        };
        self.send_raw(kind, obj).await
    }

    async fn send_raw(&mut self, kind: &str, obj: Value) -> std::result::Result<(), ()> {
        let mut line = event_line(kind, &obj);
        line.push(b'\n');
        self.tx.send(Bytes::from(line)).await.map_err(|_| ())
    }
}

/// A watch event as the real server encodes it (Go's `metav1.WatchEvent`): "type", then
/// "object". A JSON map would sort "object" first, and clients that decode the event as a
/// tagged enum (kube-rs's `WatchEvent`) would then buffer the whole object before reading it.
fn event_line(kind: &str, obj: &Value) -> Vec<u8> {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(b"{\"type\":");
    // Neither can fail: a &str and a Value always serialize.
    let _ = serde_json::to_writer(&mut line, kind);
    line.extend_from_slice(b",\"object\":");
    let _ = serde_json::to_writer(&mut line, obj);
    line.push(b'}');
    line
}

fn bookmark(res: &Resource, rv: u64, initial_end: bool, partial: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    if partial {
        return json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta});
    }
    json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta})
}
