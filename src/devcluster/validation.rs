//! Validation of object metadata, with the messages of k8s.io/apimachinery `validation.go`.

use serde_json::Value;

use super::errors::FieldError;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Why `key` is not a valid label or annotation key, if it is not.
pub fn label_key_errors(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if !is_dns1123_subdomain(p) {
            return Some(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
        }
    }
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !is_qualified_name_part(name) {
        return Some(QUALIFIED_NAME_MSG.into());
    }
    None
}

pub fn label_value_errors(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        return Some(LABEL_VALUE_MSG.into());
    }
    None
}

/// How names of a kind are validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    Subdomain,
    Label,
    /// Events, Leases and the like take any path segment name.
    PathSegment,
}

/// Validate `metadata` of an object about to be stored; errors name the field.
pub fn validate_metadata(meta: &Value, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        let bad = match rule {
            NameRule::Subdomain if !is_dns1123_subdomain(name) => Some(DNS1123_SUBDOMAIN_MSG),
            NameRule::Label if !is_dns1123_label(name) => Some(DNS1123_LABEL_MSG),
            NameRule::PathSegment if name == "." || name == ".." || name.contains('/') || name.contains('%') => {
                Some("may not contain '/' or '%', and may not be '.' or '..'")
            }
            _ => None,
        };
        if let Some(msg) = bad {
            errs.push(FieldError::invalid("metadata.name", &Value::String(name.into()), msg));
        }
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(e) = label_key_errors(k) {
                errs.push(FieldError::invalid("metadata.labels", &Value::String(k.clone()), &e));
            }
            match v.as_str() {
                Some(s) => {
                    if let Some(e) = label_value_errors(s) {
                        errs.push(FieldError::invalid("metadata.labels", &Value::String(s.into()), &e));
                    }
                }
                None => errs.push(FieldError::invalid("metadata.labels", v, "label values must be strings")),
            }
        }
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            if let Some(e) = label_key_errors(k) {
                errs.push(FieldError::invalid("metadata.annotations", &Value::String(k.clone()), &e));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldError::too_long("metadata.annotations", 256 * 1024));
        }
    }
    if let Some(fins) = meta.get("finalizers").and_then(Value::as_array) {
        for f in fins {
            let s = f.as_str().unwrap_or("");
            if let Some(e) = label_key_errors(s) {
                errs.push(FieldError::invalid("metadata.finalizers", f, &e));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert!(is_dns1123_label("a-b1"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(label_key_errors("workspaces.dev/status").is_none());
        assert!(label_key_errors("/x").is_some());
        assert!(label_value_errors("alice@example.com").is_some());
        assert!(label_value_errors("").is_none());
    }
}
