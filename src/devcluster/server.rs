//! HTTPS plumbing: accept TLS connections (a client certificate asked for, not required), read
//! requests, authenticate them, write responses and watch streams.

use std::convert::Infallible;
use std::sync::Arc;

use crate::counters::Captured;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::errors::ApiError;
use crate::registry::ApiServer;
use crate::request::{Reply, Req, UserInfo};

/// The real server refuses bodies over 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;

pub type Body = BoxBody<Bytes, Infallible>;

pub async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiServer>, mut shutdown: watch::Receiver<bool>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(state.pki.server_config.clone());
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = conn else { continue };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            // Who the client certificate says the client is, once per connection.
            let chain = tls.get_ref().1.peer_certificates().map(|c| c.to_vec()).unwrap_or_default();
            let x509 = Arc::new(state.pki.authenticate(&chain));
            let service = service_fn(move |req| handle(state.clone(), x509.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.changed() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

async fn handle(
    state: Arc<ApiServer>,
    x509: Arc<std::result::Result<Option<UserInfo>, ()>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    // Authentication, then impersonation, as kube-apiserver's filters run them.
    let user = match state.authenticate(&parts.headers, &x509) {
        Ok(user) => user,
        Err(e) => return Ok(error_response(&e)),
    };
    let user = match state.impersonate(user, &parts.headers) {
        Ok(user) => user,
        Err(e) => return Ok(error_response(&e)),
    };
    let latency = state.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error_response(&ApiError::too_large())),
    };
    let query = parts.uri.query().unwrap_or("").to_string();
    let mut req = Req::new(parts.method, parts.uri.path().to_string(), &query, parts.headers, body);
    req.user = user;
    if state.counters.capturing() {
        state.counters.capture(Captured {
            user: req.user.name.clone(),
            method: req.method.to_string(),
            uri: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            content_type: req.header("content-type").to_string(),
            accept: req.header("accept").to_string(),
            body: req.body.clone(),
        });
    }
    // A handler that fails unexpectedly still answers: a Status, never a dropped connection.
    let reply = match std::panic::AssertUnwindSafe(state.handle(req)).catch_unwind().await {
        Ok(reply) => reply,
        Err(_) => Reply::Error(ApiError::internal("the request's handler failed")),
    };
    Ok(match reply {
        Reply::Json { code, body, headers } => {
            let mut resp = json_response(code, &body);
            for (k, v) in headers {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        }
        Reply::Raw { code, content_type, body } => {
            let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
            *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp
        }
        Reply::Error(e) => error_response(&e),
        Reply::Stream(rx) => stream_response(rx),
    })
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = json_response(e.code, &e.status);
    if let Some(s) = e.retry_after {
        resp.headers_mut().insert("Retry-After", HeaderValue::from(s));
    }
    if e.code == 403 {
        resp.headers_mut().insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
    }
    resp
}

/// A watch: headers go out at once, then one JSON line per event, each flushed as its own chunk.
pub(crate) fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
