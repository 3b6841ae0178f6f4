//! The HTTP face of the server: the routing from URL and method to a resource and a verb
//! (kube-apiserver's `endpoints` layer), over the request and reply of `request`.

use std::sync::Arc;

use hyper::Method;
use serde_json::json;

use crate::counters::RequestRecord;
use crate::discovery;
use crate::errors::{ApiError, Result};
use crate::faults::FaultKind;
use crate::list::expired_continue;
use crate::rbac::{self, Attributes};
use crate::registry::ApiServer;
use crate::request::{Reply, Req, ResourcePath};
use crate::resources::Resource;

enum Route {
    Version,
    Health,
    Discovery(String),
    OpenApiV3Root,
    OpenApiV3(String),
    Resource { group: String, version: String, plural: String, target: ResourcePath },
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
            ("namespaces", ResourcePath { namespace: None, name: s(name), sub: s(sub) })
        }
        ["namespaces", ns, plural, rest @ ..] => {
            let (name, sub) = match rest {
                [] => (None, None),
                [n] => (s(n), None),
                [n, sub] => (s(n), s(sub)),
                _ => return Route::NotFound,
            };
            (*plural, ResourcePath { namespace: s(ns), name, sub })
        }
        [plural] => (*plural, ResourcePath { namespace: None, name: None, sub: None }),
        [plural, name] => (*plural, ResourcePath { namespace: None, name: s(name), sub: None }),
        [plural, name, sub] => (*plural, ResourcePath { namespace: None, name: s(name), sub: s(sub) }),
        _ => return Route::NotFound,
    };
    Route::Resource { group: group.into(), version: version.into(), plural: plural.into(), target }
}

impl ApiServer {
    pub async fn handle(self: &Arc<Self>, req: Req) -> Reply {
        // Authorization comes before routing: an unknown type is forbidden, not missing.
        let attributes = Attributes::of_request(&req.method, &req.path, &req.query);
        let decision = self.rbac.authorize(&self.store, &req.user, &attributes);
        if !decision.allowed {
            return rbac::forbidden(&req.user, &attributes, &decision).into();
        }
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

    async fn resource_request(self: &Arc<Self>, res: Arc<Resource>, t: ResourcePath, req: Req) -> Result<Reply> {
        if t.namespace.is_some() && !res.namespaced {
            return Err(ApiError::no_route());
        }
        match t.sub.as_deref() {
            None => {}
            Some("status") if res.status => {}
            Some("scale") if res.scale => {}
            Some("finalize") if res.plural == "namespaces" => {}
            Some("token") if res.token && req.method == Method::POST => {}
            Some(_) => return Err(ApiError::no_route()),
        }
        if res.review || t.sub.as_deref() == Some("token") {
            return self.create_only(&res, &t, &req);
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
                return Err(ApiError::method_not_allowed(&verb, &res.named("")));
            }
        };
        self.counters.record(RequestRecord {
            user: req.user.name.clone(),
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
            Some(FaultKind::Conflict) => {
                let name = t.name.clone().unwrap_or_default();
                return Err(ApiError::conflict(&res.named(&name)));
            }
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

    /// Reviews and TokenRequests: POST only, nothing stored.
    fn create_only(&self, res: &Resource, t: &ResourcePath, req: &Req) -> Result<Reply> {
        if req.method != Method::POST {
            return Err(ApiError::method_not_allowed(req.method.as_str(), &res.named("")));
        }
        let sub = t.sub.clone().unwrap_or_default();
        self.counters.record(RequestRecord {
            user: req.user.name.clone(),
            user_agent: req.header("user-agent").to_string(),
            verb: "create".into(),
            group: res.group.clone(),
            resource: res.plural.clone(),
            subresource: sub.clone(),
            namespace: t.namespace.clone().unwrap_or_default(),
        });
        if sub == "token" { self.token_request(t, req) } else { self.review(res, t, req) }
    }
}
