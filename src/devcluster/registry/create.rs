//! Create, and the admission every write passes through (metadata validation; pruning,
//! defaulting, schema and CEL validation for custom resources; fieldValidation).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::now_rfc3339;
use crate::errors::{ApiError, Headers, Result};
use crate::registry::{ApiServer, strip_empty_metadata};
use crate::request::{Reply, Req, ResourcePath, UserInfo};
use crate::resources::Resource;
use crate::store::{self, Guard};
use crate::{admission, builtin, managed, protobuf, quota, shape, validation};

impl ApiServer {
    pub(crate) fn decode_body(&self, res: &Resource, req: &Req) -> Result<Value> {
        let body = match req.content_type() {
            "application/vnd.kubernetes.protobuf" => protobuf::decode_object(&req.body, res)?,
            "application/json" | "" | "application/yaml" | "*/*" => parse_body(&req.body)?,
            _ => {
                return Err(ApiError::unsupported_media(
                    "application/json, application/yaml, application/vnd.kubernetes.protobuf",
                ));
            }
        };
        shape::check(res, &body)?;
        Ok(body)
    }

    pub(crate) fn write_opts(&self, req: &Req, sub: Option<&str>) -> WriteOpts {
        WriteOpts {
            user: req.user.clone(),
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

    pub(crate) fn create(&self, res: &Arc<Resource>, t: &ResourcePath, req: &Req) -> Result<Reply> {
        let body = self.decode_body(res, req)?;
        check_type(res, &body)?;
        let body = builtin::to_storage(res, body);
        let opts = self.write_opts(req, None);
        let mut g = self.store.lock();
        let (obj, warnings) = self.create_locked(&mut g, res, t.namespace.as_deref(), body, &opts)?;
        drop(g);
        Ok(Reply::Json { code: 201, body: builtin::view(res, &obj), headers: warnings })
    }

    pub(crate) fn create_locked(
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
                    return Err(ApiError::not_found(&crate::errors::Named {
                        plural: "namespaces".into(),
                        name: ns.into(),
                        ..Default::default()
                    }));
                }
                Some(n) if n["metadata"].get("deletionTimestamp").is_some() => {
                    return Err(ApiError::forbidden(
                        &res.named(&name),
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
        self.rbac.check_escalation(g, &opts.user, res, None, &obj)?;
        if let Some(ns) = namespace {
            quota::admit_create(g, &self.catalogue(), res, ns, &obj)?;
        }
        let key = store::key(namespace, &name);
        if g.get(&res.collection, &key).is_some() {
            return Err(ApiError::already_exists(&res.named(&name)));
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
        self.after_write(g, res, namespace);
        if res.plural == "namespaces" && res.group.is_empty() {
            self.populate_namespace(g, &name);
        }
        Ok(((*stored).clone(), warnings))
    }

    /// What kube-controller-manager adds to every new namespace: its `default` ServiceAccount.
    fn populate_namespace(&self, g: &mut Guard<'_>, namespace: &str) {
        let Some(sa) = self.resource("", "v1", "serviceaccounts") else { return };
        let obj = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
        let opts = WriteOpts { manager: "kube-controller-manager".into(), ..WriteOpts::default() };
        let _ = self.create_locked(g, &sa, Some(namespace), obj, &opts);
    }

    /// Pruning, defaulting and validation; returns `Warning` headers for fieldValidation=Warn.
    pub(crate) fn admit(
        &self,
        res: &Resource,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOpts,
    ) -> Result<Headers> {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let mut errors = validation::validate_metadata(&obj["metadata"], res.name_rule);
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Strict,
    #[default]
    Warn,
    Ignore,
}

#[derive(Clone, Debug)]
pub struct WriteOpts {
    /// Who writes: RBAC writes are checked against what they hold.
    pub user: UserInfo,
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub manager: String,
    pub subresource: Option<String>,
    pub force: bool,
    pub apply: bool,
}

/// The server's own writes (bootstrap objects, a namespace's default ServiceAccount).
impl Default for WriteOpts {
    fn default() -> Self {
        WriteOpts {
            user: UserInfo::system(),
            dry_run: false,
            field_validation: FieldValidation::default(),
            manager: String::new(),
            subresource: None,
            force: false,
            apply: false,
        }
    }
}

impl WriteOpts {
    pub(crate) fn is_apply(&self) -> bool {
        self.apply
    }
}

/// The real server defaults the field manager to the user agent's program name.
fn default_manager(user_agent: &str) -> String {
    let prog = user_agent.split('/').next().unwrap_or("").trim();
    if prog.is_empty() { "unknown".into() } else { prog.chars().take(128).collect() }
}

pub(crate) fn parse_body(body: &[u8]) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(body)
        .or_else(|_| crate::yaml::from_str::<Value>(std::str::from_utf8(body).unwrap_or("")))
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}

pub(crate) fn check_type(res: &Resource, body: &Value) -> Result<()> {
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

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}
