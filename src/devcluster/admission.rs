//! Admission of custom resources, in the order of the real server's apiextensions handler:
//! prune unknown fields, handle nulls, apply defaults, validate against the structural schema
//! (messages from kube-openapi `errors/schema.go`), then run `x-kubernetes-validations` CEL rules
//! with `kube-cel` when the structural validation found nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use regex::Regex;
use serde_json::{Map, Value, json};

use super::errors::FieldError;

/// Drop fields the schema does not declare (recording their paths), replace nulls, and apply
/// defaults, recursively. The root keeps apiVersion, kind and metadata.
pub fn prune_and_default(schema: &Value, obj: &mut Value, unknown: &mut Vec<String>) {
    if let Some(m) = obj.as_object_mut() {
        for (k, v) in m.iter_mut() {
            if k == "apiVersion" || k == "kind" || k == "metadata" {
                continue;
            }
            if let Some(s) = schema["properties"].get(k) {
                walk(s, v, k, unknown);
            }
        }
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
        m.retain(|k, _| {
            let keep = k == "apiVersion"
                || k == "kind"
                || k == "metadata"
                || preserve
                || schema["properties"].get(k).is_some();
            if !keep {
                unknown.push(k.clone());
            }
            keep
        });
        fix_nulls_and_defaults(schema, m);
    }
}

fn walk(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(m) => {
            let embedded = schema["x-kubernetes-embedded-resource"] == true;
            if let Some(props) = schema["properties"].as_object() {
                let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
                m.retain(|k, _| {
                    let keep = props.contains_key(k)
                        || preserve
                        || (embedded && ["apiVersion", "kind", "metadata"].contains(&k.as_str()));
                    if !keep {
                        unknown.push(format!("{path}.{k}"));
                    }
                    keep
                });
                for (k, v) in m.iter_mut() {
                    if let Some(s) = props.get(k) {
                        walk(s, v, &format!("{path}.{k}"), unknown);
                    }
                }
            } else if schema["additionalProperties"].is_object() {
                let s = &schema["additionalProperties"];
                for (k, v) in m.iter_mut() {
                    walk(s, v, &format!("{path}.{k}"), unknown);
                }
            } else if schema["x-kubernetes-preserve-unknown-fields"] != true
                && schema["additionalProperties"] != true
                && !embedded
            {
                // An object node with neither properties nor additionalProperties keeps nothing.
                if schema["type"] == "object" {
                    for k in m.keys() {
                        unknown.push(format!("{path}.{k}"));
                    }
                    m.clear();
                }
            }
            fix_nulls_and_defaults(schema, m);
        }
        Value::Array(items) => {
            let s = &schema["items"];
            if s.is_object() {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(s, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

fn fix_nulls_and_defaults(schema: &Value, m: &mut Map<String, Value>) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    for (k, s) in props {
        match m.get(k) {
            Some(Value::Null) if s["nullable"] != true => match s.get("default") {
                Some(d) => {
                    let mut d = d.clone();
                    walk(s, &mut d, k, &mut Vec::new());
                    m.insert(k.clone(), d);
                }
                None => {
                    m.remove(k);
                }
            },
            None => {
                if let Some(d) = s.get("default") {
                    let mut d = d.clone();
                    walk(s, &mut d, k, &mut Vec::new());
                    m.insert(k.clone(), d);
                }
            }
            _ => {}
        }
    }
}

/// Structural validation followed by CEL rules.
pub fn validate(schema: &Value, rules: Option<&CompiledSchema>, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            if k == "metadata" || k == "apiVersion" || k == "kind" {
                continue;
            }
            match obj.get(k) {
                Some(v) => check(s, v, k, &mut errs),
                None if is_required(schema, k) => errs.push(FieldError::required(k, "")),
                None => {}
            }
        }
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if r != "metadata" && obj.get(r).is_none() && !errs.iter().any(|e| e.field == r) {
                errs.push(FieldError::required(r, ""));
            }
        }
    }
    if errs.iter().any(|e| e.reason == "FieldValueTypeInvalid" || e.message.contains("must be of type")) {
        return errs;
    }
    if errs.is_empty()
        && let Some(rules) = rules
    {
        errs.extend(run_cel(schema, rules, obj, old));
    }
    errs
}

fn is_required(schema: &Value, key: &str) -> bool {
    schema["required"].as_array().is_some_and(|r| r.iter().any(|x| x == key))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if v.is_null() {
        if s["nullable"] == true {
            return;
        }
        errs.push(FieldError::invalid(
            path,
            &json!("null"),
            &format!("{path} in body must be of type {}: \"null\"", s["type"].as_str().unwrap_or("object")),
        ));
        return;
    }
    let int_or_string = s["x-kubernetes-int-or-string"] == true;
    if int_or_string {
        if !(v.is_string() || type_name(v) == "integer") {
            errs.push(FieldError::invalid(
                path,
                &json!(type_name(v)),
                &format!("{path} in body must be of type integer,string: {:?}", type_name(v)),
            ));
            return;
        }
    } else if let Some(t) = s["type"].as_str() {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            errs.push(FieldError::invalid(
                path,
                &json!(actual),
                &format!("{path} in body must be of type {t}: {actual:?}"),
            ));
            return;
        }
    }
    if let Some(e) = s["enum"].as_array()
        && !e.contains(v)
    {
        errs.push(FieldError::not_supported(path, v, e));
    }
    match v {
        Value::String(text) => check_string(s, text, v, path, errs),
        Value::Number(n) => check_number(s, n, v, path, errs),
        Value::Array(items) => check_array(s, items, v, path, errs),
        Value::Object(m) => check_object(s, m, path, errs),
        _ => {}
    }
}

fn check_string(s: &Value, text: &str, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let len = text.chars().count() as u64;
    if let Some(min) = s["minLength"].as_u64()
        && len < min
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body should be at least {min} chars long")));
    }
    if let Some(max) = s["maxLength"].as_u64()
        && len > max
    {
        errs.push(FieldError::too_long(path, max as usize));
    }
    if let Some(p) = s["pattern"].as_str() {
        match cached_regex(p) {
            Some(re) if !re.is_match(text) => {
                errs.push(FieldError::invalid(path, v, &format!("{path} in body should match '{p}'")));
            }
            _ => {}
        }
    }
    if let Some(f) = s["format"].as_str()
        && let Some(e) = format_error(f, text)
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body must be of type {f}: {e}")));
    }
}

fn check_number(s: &Value, n: &serde_json::Number, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let x = n.as_f64().unwrap_or(0.0);
    let shown = |b: &Value| b.to_string();
    if let Some(min) = s.get("minimum").filter(|m| m.is_number()) {
        let m = min.as_f64().unwrap_or(0.0);
        if s["exclusiveMinimum"] == true && x <= m {
            errs.push(FieldError::invalid(path, v, &format!("{path} in body should be greater than {}", shown(min))));
        } else if x < m {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{path} in body should be greater than or equal to {}", shown(min)),
            ));
        }
    }
    if let Some(max) = s.get("maximum").filter(|m| m.is_number()) {
        let m = max.as_f64().unwrap_or(0.0);
        if s["exclusiveMaximum"] == true && x >= m {
            errs.push(FieldError::invalid(path, v, &format!("{path} in body should be less than {}", shown(max))));
        } else if x > m {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{path} in body should be less than or equal to {}", shown(max)),
            ));
        }
    }
    if let Some(mult) = s["multipleOf"].as_f64()
        && mult != 0.0
        && (x / mult).fract() != 0.0
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body should be a multiple of {}", s["multipleOf"])));
    }
    match s["format"].as_str() {
        Some("int32") if n.as_i64().is_some_and(|i| i < i32::MIN as i64 || i > i32::MAX as i64) => {
            errs.push(FieldError::invalid(path, v, &format!("{path} in body must be of type int32: \"{n}\"")));
        }
        _ => {}
    }
}

fn check_array(s: &Value, items: &[Value], v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(min) = s["minItems"].as_u64()
        && (items.len() as u64) < min
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body should have at least {min} items")));
    }
    if let Some(max) = s["maxItems"].as_u64()
        && items.len() as u64 > max
    {
        errs.push(FieldError::too_many(path, items.len(), max as usize));
    }
    let item_schema = &s["items"];
    if item_schema.is_object() {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), errs);
        }
    }
    match s["x-kubernetes-list-type"].as_str() {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errs.push(FieldError::duplicate(&format!("{path}[{i}]"), item));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = s["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of =
                |it: &Value| keys.iter().map(|k| it.get(*k).cloned().unwrap_or(Value::Null)).collect::<Vec<_>>();
            for (i, item) in items.iter().enumerate() {
                let k = key_of(item);
                if items[..i].iter().any(|o| key_of(o) == k) {
                    let shown: Map<String, Value> =
                        keys.iter().zip(k.iter()).map(|(a, b)| (a.to_string(), b.clone())).collect();
                    errs.push(FieldError::duplicate(
                        &format!("{path}[{i}]"),
                        &Value::String(Value::Object(shown).to_string()),
                    ));
                }
            }
        }
        _ => {
            if s["uniqueItems"] == true {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        errs.push(FieldError::invalid(
                            path,
                            v,
                            &format!("{path} in body shouldn't contain duplicates"),
                        ));
                        break;
                    }
                }
            }
        }
    }
}

fn check_object(s: &Value, m: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(req) = s["required"].as_array() {
        for r in req.iter().filter_map(Value::as_str) {
            if !m.contains_key(r) {
                errs.push(FieldError::required(&format!("{path}.{r}"), ""));
            }
        }
    }
    if let Some(max) = s["maxProperties"].as_u64()
        && m.len() as u64 > max
    {
        errs.push(FieldError::too_many(path, m.len(), max as usize));
    }
    if let Some(min) = s["minProperties"].as_u64()
        && (m.len() as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            &Value::Object(m.clone()),
            &format!("{path} in body should have at least {min} properties"),
        ));
    }
    if let Some(props) = s["properties"].as_object() {
        for (k, v) in m {
            if let Some(ps) = props.get(k) {
                check(ps, v, &format!("{path}.{k}"), errs);
            }
        }
    } else if s["additionalProperties"].is_object() {
        for (k, v) in m {
            check(&s["additionalProperties"], v, &format!("{path}.{k}"), errs);
        }
    }
}

/// The formats the real server checks (kube-openapi `strfmt`), for the common ones.
fn format_error(format: &str, text: &str) -> Option<&'static str> {
    let ok = match format {
        "date-time" => text.parse::<jiff::Timestamp>().is_ok(),
        "date" => text.parse::<jiff::civil::Date>().is_ok() && text.len() == 10,
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(text).is_ok()
        }
        "uuid" => uuid::Uuid::parse_str(text).is_ok(),
        "hostname" => super::validation::is_dns1123_subdomain(&text.to_lowercase()),
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<std::net::Ipv6Addr>().is_ok(),
        "uri" => text.contains(':'),
        "email" => text.contains('@'),
        _ => true,
    };
    (!ok).then_some("invalid format")
}

fn cached_regex(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    c.entry(pattern.to_string()).or_insert_with(|| Regex::new(pattern).ok()).clone()
}

/// The schema's CEL rules compiled, once per CRD version rather than per request: compiling
/// (and even finding) them costs more than the rest of admission.
pub fn compile_rules(schema: &Value) -> Option<Arc<CompiledSchema>> {
    fn has_rules(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.contains_key("x-kubernetes-validations") || m.values().any(has_rules),
            Value::Array(a) => a.iter().any(has_rules),
            _ => false,
        }
    }
    has_rules(schema).then(|| Arc::new(compile_schema(schema)))
}

fn run_cel(schema: &Value, compiled: &CompiledSchema, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    thread_local! {
        static VALIDATOR: Validator = Validator::new();
    }
    let result = VALIDATOR.with(|v| v.validate_compiled(compiled, obj, old));
    match result {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| {
                let field = e.field_path.clone();
                let reason = e.reason.as_deref().unwrap_or("FieldValueInvalid");
                let detail = &e.message;
                match reason {
                    "FieldValueRequired" => {
                        FieldError::custom("FieldValueRequired", &field, format!("Required value: {detail}"))
                    }
                    "FieldValueForbidden" => {
                        FieldError::custom("FieldValueForbidden", &field, format!("Forbidden: {detail}"))
                    }
                    "FieldValueDuplicate" => {
                        FieldError::custom("FieldValueDuplicate", &field, format!("Duplicate value: {detail}"))
                    }
                    _ => {
                        let t = schema_type_at(schema, &field);
                        FieldError::custom("FieldValueInvalid", &field, format!("Invalid value: {t:?}: {detail}"))
                    }
                }
            })
            .collect(),
    }
}

/// The schema type at a dotted path like `spec.grants[0].name`.
fn schema_type_at(schema: &Value, path: &str) -> String {
    let mut s = schema;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indexed) = match part.find('[') {
            Some(i) => (&part[..i], true),
            None => (part, false),
        };
        s = &s["properties"][name];
        if indexed {
            s = &s["items"];
        }
    }
    s["type"].as_str().unwrap_or("object").to_string()
}

/// Light structural-schema checks on a CRD version's schema (apiextensions validation).
pub fn structural_errors(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    structural(schema, path, true, &mut errs);
    errs
}

fn structural(s: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let Some(m) = s.as_object() else { return };
    for forbidden in ["$ref", "definitions", "id", "additionalItems", "patternProperties", "dependencies"] {
        if m.contains_key(forbidden) {
            errs.push(FieldError::forbidden(&format!("{path}.{forbidden}"), &format!("{forbidden} is forbidden")));
        }
    }
    if m.get("uniqueItems") == Some(&Value::Bool(true)) {
        errs.push(FieldError::forbidden(
            &format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let typed = m.get("type").and_then(Value::as_str).is_some_and(|t| !t.is_empty());
    let exempt = m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !typed && !exempt && !root {
        errs.push(FieldError::required(&format!("{path}.type"), "must not be empty for specified object fields"));
    }
    if m.contains_key("properties") && m.get("additionalProperties").is_some_and(|a| a != &Value::Bool(false)) {
        errs.push(FieldError::forbidden(
            &format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            if root && k == "metadata" {
                continue;
            }
            structural(v, &format!("{path}.properties[{k}]"), false, errs);
        }
    }
    if let Some(items) = m.get("items") {
        structural(items, &format!("{path}.items"), false, errs);
    }
    if let Some(ap) = m.get("additionalProperties").filter(|a| a.is_object()) {
        structural(ap, &format!("{path}.additionalProperties"), false, errs);
    }
    if m.contains_key("x-kubernetes-list-map-keys")
        && m.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map")
    {
        errs.push(FieldError::invalid(
            &format!("{path}.x-kubernetes-list-type"),
            m.get("x-kubernetes-list-type").unwrap_or(&Value::Null),
            "must be map if x-kubernetes-list-map-keys is non-empty",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["size"],
            "x-kubernetes-validations": [{"rule": "self.size <= 10 || self.mode == 'big'", "message": "size too big"}],
            "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 100},
            "mode": {"type": "string", "enum": ["small", "big"], "default": "small"},
            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "opt": {"type": "string", "nullable": true},
        }}}})
    }

    fn check_all(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let s = schema();
        validate(&s, compile_rules(&s).as_deref(), obj, old)
    }

    #[test]
    fn prunes_defaults_and_reports_unknown_fields() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"size": 1, "bogus": 1, "opt": null}, "extra": 1});
        let mut unknown = Vec::new();
        prune_and_default(&schema(), &mut obj, &mut unknown);
        assert_eq!(unknown, vec!["spec.bogus".to_string(), "extra".to_string()]);
        assert_eq!(obj["spec"]["mode"], "small");
        assert!(obj["spec"]["opt"].is_null() && obj["spec"].get("opt").is_some());
    }

    #[test]
    fn structural_rules_name_the_field() {
        let obj = json!({"spec": {"size": 0, "name": "ABCDEFG", "mode": "x", "tags": ["a", "a"]}});
        let errs = check_all(&obj, None);
        let text: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        assert!(
            text.contains(
                &"spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1".to_string()
            ),
            "{text:?}"
        );
        assert!(
            text.contains(&"spec.mode: Unsupported value: \"x\": supported values: \"small\", \"big\"".to_string()),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.starts_with("spec.name: Too long")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("should match '^[a-z]+$'")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("spec.tags[1]: Duplicate value")), "{text:?}");
        let errs = check_all(&json!({"spec": {"size": "x"}}), None);
        assert_eq!(errs[0].message, "Invalid value: \"string\": spec.size in body must be of type integer: \"string\"");
    }

    #[test]
    fn cel_rules_run_after_structural_validation() {
        let errs = check_all(&json!({"spec": {"size": 11, "mode": "small"}}), None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert_eq!(errs[0].message, "Invalid value: \"object\": size too big");
        assert!(check_all(&json!({"spec": {"size": 11, "mode": "big"}}), None).is_empty());
    }
}
