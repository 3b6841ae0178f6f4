//! A fault-injecting proxy in front of another API server (kube-apiserver, in tests on the real
//! control plane): the same `Faults` and `Counters` as this crate's own server, for the
//! requests that go through it. It passes each request on as sent — a bearer token included,
//! so the API server behind it decides who is asking — after counting it and, when a fault
//! rule matches, answering in that API server's place.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::counters::{Counters, RequestRecord};
use crate::errors::{ApiError, Named};
use crate::faults::{FaultKind, Faults};
use crate::pki::Pki;
use crate::rbac::Attributes;
use crate::server::{Body, error_response, stream_response};

/// The proxy, on the caller's runtime; stops when dropped.
pub struct FaultProxy {
    url: String,
    ca_pem: String,
    ca_der: Vec<u8>,
    faults: Arc<Faults>,
    counters: Arc<Counters>,
    _shutdown: watch::Sender<bool>,
}

struct Upstream {
    client: kube::Client,
    faults: Arc<Faults>,
    counters: Arc<Counters>,
}

impl FaultProxy {
    /// Listen on a free loopback port and pass requests on to `upstream` (an HTTPS URL whose
    /// certificate `upstream_ca` signed, DER).
    pub async fn start(upstream: &str, upstream_ca: Vec<u8>) -> std::io::Result<FaultProxy> {
        let mut config = kube::Config::new(upstream.parse().map_err(std::io::Error::other)?);
        config.root_cert = Some(vec![upstream_ca]);
        // Watches stay open as long as the API server keeps them.
        config.read_timeout = None;
        let client = kube::Client::try_from(config).map_err(std::io::Error::other)?;
        let pki = Pki::new().map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let (faults, counters) = (Arc::new(Faults::default()), Arc::new(Counters::default()));
        let upstream = Arc::new(Upstream { client, faults: faults.clone(), counters: counters.clone() });
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve(listener, pki.server_config.clone(), upstream, rx));
        Ok(FaultProxy { url, ca_pem: pki.ca_pem.clone(), ca_der: pki.ca_der(), faults, counters, _shutdown: tx })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA that signed the proxy's serving certificate, PEM: what its clients trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The same CA, DER: what a kube-rs client trusts.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca_der.clone()
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    upstream: Arc<Upstream>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = conn else { continue };
        let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            let service = service_fn(move |req| pass_on(upstream.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

async fn pass_on(up: Arc<Upstream>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let query: HashMap<String, String> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let attributes = Attributes::of_request(&parts.method, parts.uri.path(), &query);
    let resource = attributes.resource.clone().unwrap_or_default();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    up.counters.record(RequestRecord {
        user: token_subject(&header("authorization")),
        user_agent: header("user-agent"),
        verb: attributes.verb.clone(),
        group: resource.group.clone(),
        resource: resource.resource.clone(),
        subresource: resource.subresource.clone(),
        namespace: resource.namespace.clone(),
    });
    let latency = up.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let named = Named { group: resource.group.clone(), plural: resource.resource.clone(), name: resource.name.clone() };
    match up.faults.check(&attributes.verb, &resource.resource, query.contains_key("continue")) {
        Some(FaultKind::Throttle(secs)) => return Ok(error_response(&ApiError::too_many_requests(secs))),
        Some(FaultKind::ExpireContinue) => return Ok(error_response(&crate::list::expired_continue())),
        Some(FaultKind::Delay(ms)) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
        Some(FaultKind::Conflict) => return Ok(error_response(&ApiError::conflict(&named))),
        Some(_) => return Ok(error_response(&ApiError::internal("injected fault"))),
        None => {}
    }
    let Ok(body) = Limited::new(body, 3 * 1024 * 1024).collect().await else {
        return Ok(error_response(&ApiError::too_large()));
    };
    let mut request = Request::from_parts(parts, body.to_bytes().to_vec());
    // The client's own TLS connection reached us; the API server's is ours.
    *request.uri_mut() = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/").parse().unwrap_or_default();
    request.headers_mut().remove("host");
    let response = match up.client.send(request.map(kube::client::Body::from)).await {
        Ok(r) => r,
        Err(e) => return Ok(error_response(&ApiError::internal(&format!("the API server behind the proxy: {e}")))),
    };
    let (parts, body) = response.into_parts();
    let body = match attributes.verb.as_str() {
        "watch" => until_dropped(body, up.faults.clone()),
        _ => match body.collect().await {
            Ok(b) => Full::new(b.to_bytes()).boxed(),
            Err(e) => return Ok(error_response(&ApiError::internal(&format!("the API server behind the proxy: {e}")))),
        },
    };
    Ok(Response::from_parts(parts, body))
}

/// A watch's stream, ended when the test drops every watch (`Faults::drop_watches`).
fn until_dropped(mut body: kube::client::Body, faults: Arc<Faults>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let generation = faults.drop_generation.load(Ordering::SeqCst);
    tokio::spawn(async move {
        loop {
            let dropped = faults.drop_watches.notified();
            if faults.drop_generation.load(Ordering::SeqCst) != generation {
                return;
            }
            let frame = tokio::select! {
                frame = body.frame() => frame,
                _ = dropped => return,
            };
            let Some(Ok(frame)) = frame else { return };
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                return;
            }
        }
    });
    stream_response(rx).into_body()
}

/// Who a ServiceAccount token says it is (its `sub`), read without verifying it: the API server
/// behind the proxy verifies; the proxy only files the request under a name.
fn token_subject(authorization: &str) -> String {
    use base64::Engine;
    let payload = authorization.strip_prefix("Bearer ").and_then(|t| t.split('.').nth(1)).unwrap_or("");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok();
    let claims: Option<serde_json::Value> = claims.and_then(|c| serde_json::from_slice(&c).ok());
    claims.and_then(|c| c["sub"].as_str().map(String::from)).unwrap_or_default()
}

/// A proxy on a thread and runtime of its own, so blocking callers (tests) can hold it. Stops
/// when dropped.
pub struct BackgroundProxy {
    proxy: Option<FaultProxy>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundProxy {
    pub fn start(upstream: &str, upstream_ca: Vec<u8>) -> std::io::Result<BackgroundProxy> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let upstream = upstream.to_string();
        let thread = std::thread::Builder::new().name("fault-proxy".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(ready_tx.send(Err(e))),
            };
            rt.block_on(async move {
                let started = FaultProxy::start(&upstream, upstream_ca).await;
                let ok = started.is_ok();
                let _ = ready_tx.send(started);
                if ok {
                    let _ = stop_rx.await;
                }
            });
        })?;
        let proxy = ready_rx.recv().map_err(std::io::Error::other)??;
        Ok(BackgroundProxy { proxy: Some(proxy), stop: Some(stop_tx), thread: Some(thread) })
    }
}

impl std::ops::Deref for BackgroundProxy {
    type Target = FaultProxy;
    fn deref(&self) -> &FaultProxy {
        self.proxy.as_ref().expect("the proxy lives until drop")
    }
}

impl Drop for BackgroundProxy {
    fn drop(&mut self) {
        drop(self.proxy.take());
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
