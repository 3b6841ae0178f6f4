//! What the HTTP layer and the handlers below it share: the request as the handlers see it
//! (with the identity it is served as) and the reply they give. A leaf: it names only `errors`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use hyper::{HeaderMap, Method};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::errors::ApiError;

pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
pub const MASTERS: &str = "system:masters";
pub const ANONYMOUS: &str = "system:anonymous";
pub const SA_PREFIX: &str = "system:serviceaccount:";

/// The identity a request is served as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(name: &str, uid: &str, groups: Vec<String>) -> UserInfo {
        UserInfo { name: name.into(), uid: uid.into(), groups, extra: BTreeMap::new() }
    }

    pub fn anonymous() -> UserInfo {
        UserInfo::new(ANONYMOUS, "", vec![UNAUTHENTICATED.into()])
    }

    /// The server itself, for the objects it creates on its own (bootstrap policy, a new
    /// namespace's default ServiceAccount).
    pub fn system() -> UserInfo {
        UserInfo::new("system:apiserver", "", vec![MASTERS.into(), AUTHENTICATED.into()])
    }

    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    /// As the review APIs (`status.userInfo`) and TokenReview write it.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Who asks, once authenticated (and impersonated).
    pub user: UserInfo,
}

impl Req {
    pub fn new(method: Method, path: String, query: &str, headers: HeaderMap, body: Bytes) -> Self {
        // form_urlencoded decodes `+` as a space and tolerates kube-rs's empty `?&` pairs.
        let query = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Req { method, path, query, headers, body, user: UserInfo::anonymous() }
    }

    pub(crate) fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    pub(crate) fn header(&self, key: &str) -> &str {
        self.headers.get(key).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub(crate) fn accept(&self) -> &str {
        self.header("accept")
    }

    pub(crate) fn content_type(&self) -> &str {
        self.header("content-type").split(';').next().unwrap_or("").trim()
    }

    pub(crate) fn wants_table(&self) -> bool {
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

    pub(crate) fn wants_partial_metadata(&self) -> bool {
        self.accept().split(',').next().is_some_and(|p| p.contains("as=PartialObjectMetadata"))
    }

    pub(crate) fn dry_run(&self) -> bool {
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
    pub(crate) fn ok(body: Value) -> Self {
        Reply::Json { code: 200, body, headers: Vec::new() }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::Error(e)
    }
}

/// The object part of a resource URL: namespace, name and subresource.
#[derive(Debug, Clone)]
pub(crate) struct ResourcePath {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}
