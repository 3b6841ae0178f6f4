//! The local API server with kube-rs clients: watchers, reflectors, 410 handling, and
//! concurrent writers and watchers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use devcluster::testkit::{Cluster, eventually_async};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};

fn cm(name: &str, value: u64) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(BTreeMap::from([("n".to_string(), value.to_string())])),
        ..Default::default()
    }
}

async fn create_many(client: &Client, ns: &str, n: usize) {
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &Namespace { metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() }, ..Default::default() },
    )
    .await
    .expect("namespace");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &cm(&format!("cm-{i:05}"), 0)).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_over_paginated_list_survives_drops_and_410() {
    let c = Cluster::start();
    let client = c.server.client();
    create_many(&client, "r", 1000).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "r");
    let (reader, writer) = reflector::store();
    let inits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inits2 = inits.clone();
    let stream = watcher(api.clone(), watcher::Config::default().page_size(50))
        .default_backoff()
        .inspect_ok(move |e| {
            if matches!(e, watcher::Event::InitDone) {
                inits2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(async move { stream.for_each(|_| futures::future::ready(())).await });
    reader.wait_until_ready().await.expect("store ready");
    assert_eq!(reader.len(), 1000, "a paginated initial list of 50 per page fills the store");
    let lists = c.server.counters().get("list", "configmaps");
    assert!(lists >= 20, "pages were fetched ({lists} lists)");

    // A dropped watch resumes from its last version and sees what changed meanwhile.
    c.server.faults().drop_watches();
    api.replace("cm-00001", &PostParams::default(), &{
        let mut o = api.get("cm-00001").await.unwrap();
        o.data = Some(BTreeMap::from([("n".into(), "1".into())]));
        o
    })
    .await
    .unwrap();
    eventually_async("change after drop", Duration::from_secs(15), || {
        let r = reader.clone();
        async move {
            r.get(&reflector::ObjectRef::new("cm-00001").within("r"))
                .and_then(|o| o.data.as_ref().and_then(|d| d.get("n").cloned()))
                .filter(|n| n == "1")
        }
    })
    .await;
    let before = inits.load(std::sync::atomic::Ordering::SeqCst);

    // History compacted while the watch is down: the resume gets 410 and the watcher relists.
    // Re-watches fail until the compaction is done, so the resume cannot slip in before it.
    c.server.faults().fail_next("watch", "configmaps", u64::MAX, devcluster::FaultKind::ServerError);
    c.server.faults().drop_watches();
    api.create(&PostParams::default(), &cm("late", 7)).await.unwrap();
    c.server.compact();
    c.server.faults().clear();
    // The 500s and the 410 each add a backoff step (0.8 s doubling to 30 s, with jitter, reset
    // only after 120 s without errors): allow for several.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let relisted = inits.load(std::sync::atomic::Ordering::SeqCst) > before;
        let late = reader.get(&reflector::ObjectRef::new("late").within("r")).is_some();
        if relisted && late {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no relist after 410 in 120 s: relisted {relisted}, late seen {late}, {} cached, {} watches and {} lists sent",
            reader.len(),
            c.server.counters().get("watch", "configmaps"),
            c.server.counters().get("list", "configmaps"),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reader.len(), 1001);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_semantics_on_the_wire() {
    let c = Cluster::start();
    let client = c.server.client();
    create_many(&client, "w", 3).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "w");
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();
    // A watch from the list's version sees only later changes, in order.
    let mut stream = api.watch(&WatchParams::default().labels("sel=yes"), &rv).await.unwrap().boxed();
    let mut o = api.get("cm-00000").await.unwrap();
    o.labels_mut().insert("sel".into(), "yes".into());
    let o = api.replace("cm-00000", &PostParams::default(), &o).await.unwrap();
    let mut o2 = o.clone();
    o2.labels_mut().insert("sel".into(), "no".into());
    api.replace("cm-00000", &PostParams::default(), &o2).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await.unwrap().unwrap().unwrap();
    assert!(
        matches!(first, WatchEvent::Added(ref x) if x.name_any() == "cm-00000"),
        "entering the selection is ADDED: {first:?}"
    );
    let second = tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(second, WatchEvent::Deleted(_)), "leaving the selection is DELETED: {second:?}");

    // A version older than the history: an in-stream ERROR 410, not an HTTP error.
    c.server.compact();
    let mut old = api.watch(&WatchParams::default(), &rv).await.expect("a 200 stream").boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), old.try_next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(ev, WatchEvent::Error(ref e) if e.code == 410), "{ev:?}");

    // A no-op write bumps no resourceVersion.
    let cur = api.get("cm-00001").await.unwrap();
    let same = api.replace("cm-00001", &PostParams::default(), &cur).await.unwrap();
    assert_eq!(cur.resource_version(), same.resource_version());
}

/// Go's metav1.WatchEvent encodes "type" before "object", and clients read in that order:
/// kube-rs decodes the event as a tagged enum and buffers the whole object when it comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_event_names_its_type_before_its_object() {
    let c = Cluster::start();
    let client = c.server.client();
    create_many(&client, "t", 2).await;
    for accept in ["application/json", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"] {
        let path = "/api/v1/namespaces/t/configmaps?watch=true&resourceVersion=0&timeoutSeconds=1";
        let req = hyper::Request::get(path).header("Accept", accept).body(Vec::new()).unwrap();
        let body = client.request_text(req).await.expect("watch");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 2, "{body}");
        for line in lines {
            assert!(line.starts_with(r#"{"type":"ADDED","object":{"#), "{accept}: {line}");
            let event: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
            assert!(event["object"]["metadata"]["name"].is_string(), "{line}");
        }
    }
}

/// 8 writers (read-modify-write with retries) and 4 watchers over 10,000 objects: every watcher
/// sees every change once and in order, and no update is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_watchers() {
    let c = Cluster::start();
    let client = c.server.client();
    create_many(&client, "busy", 10_000).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "busy");
    let rv = api.list_metadata(&ListParams::default().limit(1)).await.unwrap().metadata.resource_version.unwrap();

    const WRITERS: usize = 8;
    const PER_WRITER: usize = 150;
    let mut watchers = Vec::new();
    for _ in 0..4 {
        let api = api.clone();
        let rv = rv.clone();
        watchers.push(tokio::spawn(async move {
            let mut seen: Vec<(u64, String, u64)> = Vec::new();
            let mut stream = api.watch(&WatchParams::default().timeout(120), &rv).await.unwrap().boxed();
            while seen.len() < WRITERS * PER_WRITER {
                match tokio::time::timeout(Duration::from_secs(60), stream.try_next()).await {
                    Ok(Ok(Some(WatchEvent::Modified(o)))) => {
                        let n = o.data.as_ref().and_then(|d| d.get("n")).and_then(|n| n.parse().ok()).unwrap_or(0);
                        seen.push((o.resource_version().unwrap().parse().unwrap(), o.name_any(), n));
                    }
                    Ok(Ok(Some(_))) => {}
                    other => panic!("watch ended early: {other:?}"),
                }
            }
            seen
        }));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let api = api.clone();
        writers.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..PER_WRITER {
                // A hot set of 50 objects, so writers collide.
                let name = format!("cm-{:05}", (w * 7 + i * 13) % 50);
                loop {
                    let mut o = api.get(&name).await.unwrap();
                    let n: u64 = o.data.as_ref().and_then(|d| d.get("n")).and_then(|n| n.parse().ok()).unwrap_or(0);
                    o.data = Some(BTreeMap::from([("n".into(), (n + 1).to_string())]));
                    match api.replace(&name, &PostParams::default(), &o).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for w in writers {
        conflicts += w.await.unwrap();
    }
    // No lost update: the counters add up to the writes made.
    let total: u64 = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.data.as_ref().and_then(|d| d.get("n")).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0))
        .sum();
    assert_eq!(total, (WRITERS * PER_WRITER) as u64, "({conflicts} conflicts were retried)");
    for w in watchers {
        let seen = w.await.unwrap();
        assert_eq!(seen.len(), WRITERS * PER_WRITER, "every change seen exactly once");
        assert!(seen.windows(2).all(|p| p[0].0 < p[1].0), "in resourceVersion order");
        let mut per_object: HashMap<String, u64> = HashMap::new();
        for (_, name, n) in &seen {
            let last = per_object.entry(name.clone()).or_default();
            assert_eq!(*n, *last + 1, "{name}: each value once, in order");
            *last = *n;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_watch_carries_metadata_only() {
    let c = Cluster::start();
    let client = c.server.client();
    create_many(&client, "m", 3).await;
    // On the wire, as metadata informers ask: every event's object is PartialObjectMetadata.
    let path = "/api/v1/namespaces/m/configmaps?watch=true&resourceVersion=0&timeoutSeconds=1";
    let req = hyper::Request::get(path)
        .header("Accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
        .body(Vec::new())
        .unwrap();
    let body = client.request_text(req).await.expect("watch");
    let events: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(events.len(), 3, "{body}");
    for e in &events {
        assert_eq!((e["type"].as_str(), e["object"]["kind"].as_str()), (Some("ADDED"), Some("PartialObjectMetadata")));
        assert!(e["object"].get("data").is_none() && e["object"]["metadata"]["name"].is_string(), "{e}");
    }
    // And kube-rs's metadata reflector follows later changes.
    let api: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), "m");
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default()).reflect(writer).applied_objects();
    let task = tokio::spawn(async move { stream.for_each(|_| futures::future::ready(())).await });
    reader.wait_until_ready().await.expect("store ready");
    assert_eq!(reader.len(), 3);
    let mut labelled = cm("late", 1);
    labelled.labels_mut().insert("tier".into(), "gold".into());
    Api::<ConfigMap>::namespaced(client.clone(), "m").create(&PostParams::default(), &labelled).await.unwrap();
    eventually_async("the new object's metadata", Duration::from_secs(10), || {
        let r = reader.clone();
        async move {
            r.get(&reflector::ObjectRef::new("late").within("m"))
                .filter(|o| o.labels().get("tier").map(String::as_str) == Some("gold"))
                .map(|_| ())
        }
    })
    .await;
    task.abort();
}

/// A benchmark replays what a client sent: the capture keeps each request whole (who, method,
/// path and query, content type, body), in order, and only while it is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_keeps_requests_whole_and_in_order_only_while_on() {
    let c = Cluster::start();
    let client = c.server.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = |name: &str| Namespace {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        ..Default::default()
    };
    nss.create(&PostParams::default(), &ns("before")).await.expect("namespace");
    c.server.counters().start_capture();
    nss.create(&PostParams::default(), &ns("during")).await.expect("namespace");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "during");
    api.create(&PostParams::default(), &cm("one", 1)).await.expect("create");
    api.get("one").await.expect("get");
    let captured = c.server.counters().take_capture();
    nss.create(&PostParams::default(), &ns("after")).await.expect("namespace");
    assert!(c.server.counters().take_capture().is_empty(), "nothing kept once taken");
    // The path as sent (kube-rs may add an empty query).
    let path = |uri: &str| uri.split('?').next().unwrap_or_default().to_string();
    let seen: Vec<(&str, String)> = captured.iter().map(|r| (r.method.as_str(), path(&r.uri))).collect();
    assert_eq!(
        seen,
        [
            ("POST", "/api/v1/namespaces".to_string()),
            ("POST", "/api/v1/namespaces/during/configmaps".to_string()),
            ("GET", "/api/v1/namespaces/during/configmaps/one".to_string()),
        ]
    );
    let body: serde_json::Value = serde_json::from_slice(&captured[1].body).expect("JSON body");
    assert_eq!(body["data"]["n"], "1");
    assert_eq!(captured[1].content_type, "application/json");
    assert!(captured.iter().all(|r| r.user == captured[0].user && !r.user.is_empty()));
}
