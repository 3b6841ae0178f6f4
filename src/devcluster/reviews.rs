//! The review APIs, which store nothing and answer 201 (`pkg/registry/authorization`,
//! `pkg/registry/authentication`): SelfSubjectAccessReview (`kubectl auth can-i`),
//! SelfSubjectRulesReview (`can-i --list`), SubjectAccessReview, LocalSubjectAccessReview,
//! SelfSubjectReview (`kubectl auth whoami`), TokenReview, and TokenRequest (`kubectl create
//! token`, the `serviceaccounts/token` subresource).

use serde_json::{Value, json};

use crate::clock::now_rfc3339;
use crate::errors::{ApiError, FieldError, Result};
use crate::protobuf;
use crate::rbac::{Attributes, ResourceAttributes, Rule};
use crate::registry::ApiServer;
use crate::request::{Reply, Req, ResourcePath, UserInfo};
use crate::resources::Resource;
use crate::store;
use crate::tokens::{ISSUER, Request as TokenSpec};

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn created(body: Value) -> Reply {
    Reply::Json { code: 201, body, headers: Vec::new() }
}

/// What a SubjectAccessReview's spec asks about: exactly one of resource or non-resource.
fn asked(res: &Resource, name: &str, spec: &Value) -> Result<Attributes> {
    let r = spec.get("resourceAttributes").filter(|v| v.is_object());
    let n = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    match (r, n) {
        (Some(r), None) => {
            let resource = match text(r, "subresource") {
                "" => text(r, "resource").to_string(),
                sub => format!("{}/{sub}", text(r, "resource")),
            };
            Ok(Attributes::resource(
                text(r, "verb"),
                ResourceAttributes::new(text(r, "group"), &resource, text(r, "namespace"), text(r, "name")),
            ))
        }
        (None, Some(n)) => Ok(Attributes::non_resource(text(n, "verb"), text(n, "path"))),
        _ => Err(ApiError::invalid(
            &res.kind,
            &res.group,
            name,
            &[FieldError::invalid(
                "spec.resourceAttributes",
                &json!(r.cloned().unwrap_or(Value::Null)),
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
    }
}

fn access_status(server: &ApiServer, user: &UserInfo, a: &Attributes) -> Value {
    let d = server.rbac.authorize(&server.store, user, a);
    let mut status = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        status["reason"] = json!(d.reason);
    }
    if !d.errors.is_empty() {
        status["evaluationError"] = json!(d.errors.join(", "));
    }
    status
}

/// The user a SubjectAccessReview names: its groups as given (the caller adds
/// `system:authenticated` if it means it).
fn subject(spec: &Value) -> UserInfo {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
    };
    let mut user = UserInfo::new(text(spec, "user"), text(spec, "uid"), strings(&spec["groups"]));
    for (k, v) in spec["extra"].as_object().into_iter().flatten() {
        user.extra.insert(k.clone(), strings(v));
    }
    user
}

/// The rules a user holds in a namespace, as SelfSubjectRulesReview lists them.
fn rules_status(server: &ApiServer, user: &UserInfo, namespace: &str) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    let mut errors = Vec::new();
    server.rbac.applying(&server.store, user, namespace, |b| {
        match &b.rules {
            Ok(rules) => {
                for r in rules.iter() {
                    let Rule { verbs, api_groups, resources, resource_names, non_resource_urls } = r;
                    if non_resource_urls.is_empty() {
                        resource_rules.push(json!({"verbs": verbs, "apiGroups": api_groups, "resources": resources,
                            "resourceNames": resource_names}));
                    } else {
                        non_resource_rules.push(json!({"verbs": verbs, "nonResourceURLs": non_resource_urls}));
                    }
                }
            }
            Err(e) => errors.push(e.clone()),
        }
        false
    });
    let mut status = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty()});
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}

impl ApiServer {
    fn review_body(&self, res: &Resource, req: &Req) -> Result<Value> {
        let body = if req.content_type() == "application/vnd.kubernetes.protobuf" {
            protobuf::decode_object(&req.body, res)?
        } else {
            crate::registry::parse_body(&req.body)?
        };
        crate::shape::check(res, &body)?;
        Ok(body)
    }

    /// POST to a review resource.
    pub(crate) fn review(&self, res: &Resource, t: &ResourcePath, req: &Req) -> Result<Reply> {
        let mut body = self.review_body(res, req)?;
        let spec = body["spec"].clone();
        body["apiVersion"] = json!(res.api_version());
        body["kind"] = json!(res.kind);
        let status = match res.plural.as_str() {
            "selfsubjectaccessreviews" => access_status(self, &req.user, &asked(res, "", &spec)?),
            "subjectaccessreviews" | "localsubjectaccessreviews" => {
                if text(&spec, "user").is_empty() && spec["groups"].as_array().is_none_or(Vec::is_empty) {
                    return Err(ApiError::invalid(
                        &res.kind,
                        &res.group,
                        "",
                        &[FieldError::invalid(
                            "spec.user",
                            &json!(""),
                            "at least one of user or group must be specified",
                        )],
                    ));
                }
                let a = asked(res, "", &spec)?;
                if res.plural == "localsubjectaccessreviews" {
                    let ns = t.namespace.as_deref().unwrap_or("");
                    let matches = a.resource.as_ref().is_some_and(|r| r.namespace == ns);
                    if !matches {
                        return Err(ApiError::invalid(
                            &res.kind,
                            &res.group,
                            "",
                            &[FieldError::invalid(
                                "spec.resourceAttributes.namespace",
                                &json!(a.resource.as_ref().map(|r| r.namespace.clone()).unwrap_or_default()),
                                "must match metadata.namespace",
                            )],
                        ));
                    }
                    body["metadata"]["namespace"] = json!(ns);
                }
                access_status(self, &subject(&spec), &a)
            }
            "selfsubjectrulesreviews" => {
                let ns = text(&spec, "namespace");
                if ns.is_empty() {
                    return Err(ApiError::bad_request("no namespace on request"));
                }
                rules_status(self, &req.user, ns)
            }
            "selfsubjectreviews" => json!({"userInfo": req.user.to_json()}),
            "tokenreviews" => {
                let audiences: Option<Vec<String>> = spec["audiences"]
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect());
                match self.authenticate_token(text(&spec, "token"), audiences.as_deref()) {
                    Ok(user) => json!({"authenticated": true, "user": user.to_json(),
                        "audiences": audiences.unwrap_or_else(|| vec![ISSUER.to_string()])}),
                    Err(e) => json!({"authenticated": false, "error": e}),
                }
            }
            _ => return Err(ApiError::no_route()),
        };
        body["status"] = status;
        if let Some(m) = body["metadata"].as_object_mut() {
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        }
        Ok(created(body))
    }

    /// POST `serviceaccounts/{name}/token`: a token for that ServiceAccount.
    pub(crate) fn token_request(&self, t: &ResourcePath, req: &Req) -> Result<Reply> {
        let ns = t.namespace.clone().unwrap_or_default();
        let name = t.name.clone().unwrap_or_default();
        let body = if req.content_type() == "application/vnd.kubernetes.protobuf" {
            protobuf::decode_token_request(&req.body)?
        } else if req.body.is_empty() {
            json!({})
        } else {
            crate::registry::parse_body(&req.body)?
        };
        let spec = &body["spec"];
        let invalid = |field: &str, value: &Value, why: &str| {
            ApiError::invalid("TokenRequest", "authentication.k8s.io", &name, &[FieldError::invalid(field, value, why)])
        };
        let seconds = spec["expirationSeconds"].as_i64().unwrap_or(3600);
        if seconds < 600 {
            return Err(invalid(
                "spec.expirationSeconds",
                &json!(seconds),
                "may not specify a duration less than 10 minutes",
            ));
        }
        if seconds > 1 << 32 {
            return Err(invalid(
                "spec.expirationSeconds",
                &json!(seconds),
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        let g = self.store.lock();
        let sa = g.get("serviceaccounts", &store::key(Some(&ns), &name)).ok_or_else(|| {
            ApiError::not_found(&crate::errors::Named {
                plural: "serviceaccounts".into(),
                name: name.clone(),
                ..Default::default()
            })
        })?;
        let bound = match spec.get("boundObjectRef").filter(|b| b.is_object()) {
            None => None,
            Some(b) => {
                let (kind, bound_name) = (text(b, "kind"), text(b, "name"));
                let collection = match kind {
                    "Pod" => "pods",
                    "Secret" => "secrets",
                    other => {
                        return Err(invalid(
                            "spec.boundObjectRef.kind",
                            &json!(other),
                            "supported values: \"Pod\", \"Secret\"",
                        ));
                    }
                };
                let obj = g.get(collection, &store::key(Some(&ns), bound_name)).ok_or_else(|| {
                    ApiError::not_found(&crate::errors::Named {
                        plural: collection.into(),
                        name: bound_name.into(),
                        ..Default::default()
                    })
                })?;
                let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
                if !text(b, "uid").is_empty() && text(b, "uid") != uid {
                    return Err(ApiError::conflict_message(
                        &crate::errors::Named {
                            plural: collection.into(),
                            name: bound_name.into(),
                            ..Default::default()
                        },
                        format!(
                            "the UID in the bound object reference ({}) does not match the UID in record",
                            text(b, "uid")
                        ),
                        vec![],
                    ));
                }
                Some((kind.to_string(), bound_name.to_string(), uid))
            }
        };
        drop(g);
        let audiences: Vec<String> = match spec["audiences"].as_array().filter(|a| !a.is_empty()) {
            Some(a) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
            None => vec![ISSUER.to_string()],
        };
        let (token, exp) = self.tokens.issue(&TokenSpec {
            namespace: &ns,
            name: &name,
            uid: sa["metadata"]["uid"].as_str().unwrap_or(""),
            audiences: audiences.clone(),
            seconds,
            bound: bound.clone(),
        });
        let expires =
            jiff::Timestamp::from_second(exp).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default();
        let bound_ref =
            bound.map(|(kind, name, uid)| json!({"kind": kind, "apiVersion": "v1", "name": name, "uid": uid}));
        Ok(created(json!({
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": now_rfc3339()},
            "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": bound_ref},
            "status": {"token": token, "expirationTimestamp": expires},
        })))
    }
}
