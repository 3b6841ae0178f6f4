//! API errors as `metav1.Status` objects, in the exact shapes of k8s.io/apimachinery
//! `api/errors/errors.go`, so kubectl and kube-rs classify and print them as on a real cluster.

use serde_json::{Value, json};

pub(crate) type Result<T> = std::result::Result<T, ApiError>;
/// Extra response headers (warnings).
pub(crate) type Headers = Vec<(&'static str, String)>;

/// One field error (`field.Error`), rendered as `<field>: <message>` by kubectl.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

/// Go's `%q`-like rendering of a value inside "Invalid value: ...".
pub fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        Value::Null => "\"null\"".into(),
        other => other.to_string(),
    }
}

impl FieldError {
    pub fn required(field: &str, detail: &str) -> Self {
        let message = if detail.is_empty() { "Required value".into() } else { format!("Required value: {detail}") };
        FieldError { reason: "FieldValueRequired", field: field.into(), message }
    }

    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", render_value(value)),
        }
    }

    pub fn not_supported(field: &str, value: &Value, supported: &[Value]) -> Self {
        let list: Vec<String> = supported.iter().map(render_value).collect();
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {}: supported values: {}", render_value(value), list.join(", ")),
        }
    }

    pub fn forbidden(field: &str, detail: &str) -> Self {
        FieldError { reason: "FieldValueForbidden", field: field.into(), message: format!("Forbidden: {detail}") }
    }

    pub fn too_long(field: &str, max: usize) -> Self {
        FieldError {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        }
    }

    pub fn too_many(field: &str, actual: usize, max: usize) -> Self {
        FieldError {
            reason: "FieldValueTooMany",
            field: field.into(),
            message: format!("Too many: {actual}: must have at most {max} items"),
        }
    }

    pub fn duplicate(field: &str, value: &Value) -> Self {
        FieldError {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", render_value(value)),
        }
    }

    pub fn custom(reason: &'static str, field: &str, message: String) -> Self {
        FieldError { reason, field: field.into(), message }
    }

    fn text(&self) -> String {
        if self.field.is_empty() { self.message.clone() } else { format!("{}: {}", self.field, self.message) }
    }
}

/// An error response: HTTP code plus a Status body, and extra headers where one applies.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub status: Value,
    pub retry_after: Option<u64>,
}

/// What a NotFound/Conflict/... message names: `plural[.group]` and the object name.
#[derive(Debug, Clone, Default)]
pub struct Named {
    pub group: String,
    pub plural: String,
    pub name: String,
}

impl Named {
    fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    fn details(&self) -> Value {
        let mut d = json!({"name": self.name, "kind": self.plural});
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

fn status(code: u16, reason: &str, message: String, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

impl ApiError {
    fn new(code: u16, reason: &str, message: String, details: Option<Value>) -> Self {
        ApiError { code, status: status(code, reason, message, details), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into(), None)
    }

    pub fn no_route() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource".into(), Some(json!({})))
    }

    pub fn not_found(t: &Named) -> Self {
        Self::new(404, "NotFound", format!("{} {:?} not found", t.qualified(), t.name), Some(t.details()))
    }

    pub fn already_exists(t: &Named) -> Self {
        Self::new(409, "AlreadyExists", format!("{} {:?} already exists", t.qualified(), t.name), Some(t.details()))
    }

    pub fn conflict(t: &Named) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
                t.qualified(),
                t.name
            ),
            Some(t.details()),
        )
    }

    pub fn conflict_message(t: &Named, message: String, causes: Vec<Value>) -> Self {
        let mut d = t.details();
        d["causes"] = Value::Array(causes);
        Self::new(409, "Conflict", message, Some(d))
    }

    /// 401, whatever the cause (`filters/authentication.go`).
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into(), None)
    }

    /// A 403 whose message and details were composed already (the authorizer's).
    pub fn forbidden_raw(message: String, details: Value) -> Self {
        Self::new(403, "Forbidden", message, Some(details))
    }

    /// Another status code with a plain message.
    pub fn raw(code: u16, message: String) -> Self {
        let reason = if code >= 500 { "InternalError" } else { "BadRequest" };
        Self::new(code, reason, message, None)
    }

    pub fn forbidden(t: &Named, why: &str) -> Self {
        Self::new(403, "Forbidden", format!("{} {:?} is forbidden: {why}", t.qualified(), t.name), Some(t.details()))
    }

    pub fn method_not_allowed(verb: &str, t: &Named) -> Self {
        let mut d = t.details();
        d.as_object_mut().map(|m| m.remove("name"));
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on resources of kind {:?}", t.qualified()),
            Some(d),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message.into(), None)
    }

    pub fn too_large() -> Self {
        Self::new(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728".into(), None)
    }

    pub fn unsupported_media(accepted: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: {accepted}"),
            None,
        )
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.".into(),
            Some(json!({"retryAfterSeconds": retry_after})),
        );
        e.retry_after = Some(retry_after);
        e
    }

    pub fn internal(err: &str) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {err}"),
            Some(json!({"causes": [{"message": err}]})),
        )
    }

    /// 422 Invalid with field causes: `<Kind>[.<group>] "<name>" is invalid: <aggregate>`.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let aggregate = match errors {
            [one] => one.text(),
            many => format!("[{}]", many.iter().map(FieldError::text).collect::<Vec<_>>().join(", ")),
        };
        let causes: Vec<Value> =
            errors.iter().map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field})).collect();
        let mut details = json!({"name": name, "kind": kind, "causes": causes});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self::new(422, "Invalid", format!("{qualified} {name:?} is invalid: {aggregate}"), Some(details))
    }

    /// 422 Invalid without causes, as a failed JSON patch `test` produces.
    pub fn invalid_plain(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message.into(), None)
    }
}
