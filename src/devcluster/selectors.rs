//! Label and field selectors, in the grammar of k8s.io/apimachinery `labels/selector.go` and
//! `fields/selector.go`.

use std::collections::BTreeSet;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(pub Vec<LabelReq>);

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Parser { s: text.as_bytes(), pos: 0, text }.selector().map(LabelSelector)
    }

    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.contains(x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x < *n),
        })
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, tok: &str) -> bool {
        if self.s[self.pos..].starts_with(tok.as_bytes()) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    /// An identifier or value: everything up to whitespace or an operator character.
    fn word(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || b"=!,()<>".contains(&c) {
                break;
            }
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn error(&self, what: &str) -> String {
        format!("unable to parse requirement: {what}")
    }

    fn selector(&mut self) -> Result<Vec<LabelReq>, String> {
        let mut reqs = Vec::new();
        self.skip_ws();
        if self.pos == self.s.len() {
            return Ok(reqs);
        }
        loop {
            reqs.push(self.requirement()?);
            self.skip_ws();
            match self.peek() {
                None => return Ok(reqs),
                Some(b',') => {
                    self.pos += 1;
                }
                Some(c) => {
                    return Err(format!("found '{}', expected: ',' or 'end of string'", c as char));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelReq, String> {
        self.skip_ws();
        if self.eat("!") {
            self.skip_ws();
            let key = self.word().to_string();
            validate_key(&key)?;
            return Ok(LabelReq::NotExists(key));
        }
        let key = self.word().to_string();
        if key.is_empty() {
            return Err(self.error("found '', expected: identifier"));
        }
        validate_key(&key)?;
        self.skip_ws();
        let op_start = self.pos;
        let op = if self.eat("==") {
            "=="
        } else if self.eat("!=") {
            "!="
        } else if self.eat("=") {
            "="
        } else if self.eat(">") {
            ">"
        } else if self.eat("<") {
            "<"
        } else if self.peek().is_none() || self.peek() == Some(b',') {
            return Ok(LabelReq::Exists(key));
        } else {
            let w = self.word().to_string();
            match w.as_str() {
                "in" => "in",
                "notin" => "notin",
                _ => {
                    self.pos = op_start;
                    return Err(format!("found '{w}', expected: in, notin, =, ==, !=, gt, lt"));
                }
            }
        };
        self.skip_ws();
        match op {
            "in" | "notin" => {
                if !self.eat("(") {
                    return Err(self.error("found '', expected: '('"));
                }
                let mut values = BTreeSet::new();
                loop {
                    self.skip_ws();
                    let v = self.word().to_string();
                    validate_value(&v)?;
                    values.insert(v);
                    self.skip_ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat(")") {
                        break;
                    }
                    return Err(self.error("found '', expected: ',', ')'"));
                }
                Ok(if op == "in" { LabelReq::In(key, values) } else { LabelReq::NotIn(key, values) })
            }
            ">" | "<" => {
                let v = self.word();
                let n: i64 =
                    v.parse().map_err(|_| format!("for 'Gt', 'Lt' operators, the value must be an integer: {v}"))?;
                Ok(if op == ">" { LabelReq::Gt(key, n) } else { LabelReq::Lt(key, n) })
            }
            _ => {
                let v = self.word().to_string();
                validate_value(&v)?;
                Ok(if op == "!=" { LabelReq::NotEq(key, v) } else { LabelReq::Eq(key, v) })
            }
        }
    }
}

fn validate_key(key: &str) -> Result<(), String> {
    crate::validation::label_key_errors(key).map_or(Ok(()), |e| Err(format!("key: Invalid value: \"{key}\": {e}")))
}

fn validate_value(value: &str) -> Result<(), String> {
    crate::validation::label_value_errors(value)
        .map_or(Ok(()), |e| Err(format!("values[0][{value}]: Invalid value: \"{value}\": {e}")))
}

/// A field selector: `k=v`, `k==v`, `k!=v`, comma-separated, all ANDed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_unescaped(text, ',') {
            if part.trim().is_empty() {
                continue;
            }
            let (key, eq, value) = if let Some(i) = find_unescaped(&part, "!=") {
                (&part[..i], false, &part[i + 2..])
            } else if let Some(i) = find_unescaped(&part, "==") {
                (&part[..i], true, &part[i + 2..])
            } else if let Some(i) = find_unescaped(&part, "=") {
                (&part[..i], true, &part[i + 1..])
            } else {
                return Err(format!("invalid selector: '{text}'; can't understand '{part}'"));
            };
            reqs.push((key.trim().to_string(), eq, unescape(value)));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _, _)| k.as_str())
    }

    /// Match using `field` to read a field label's value from the object (missing = "").
    pub fn matches(&self, field: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|(k, eq, v)| {
            let actual = field(k).unwrap_or_default();
            (actual == *v) == *eq
        })
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if let Some(l) = out.last_mut() {
                l.push('\\');
                l.push(c);
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(String::new());
        } else if let Some(l) = out.last_mut() {
            l.push(c);
        }
    }
    out
}

fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(pat) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Read a field selector path like `spec.owner` or `metadata.name` from an object, as the
/// string the real server compares (booleans and numbers in their JSON text).
/// A `metav1.LabelSelector` as `metav1.FormatLabelSelector` prints it: requirements sorted by
/// key, `<none>` for the empty selector that selects everything.
pub fn format_label_selector(selector: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in selector["matchLabels"].as_object().into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("").to_string();
        let mut values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        values.sort_unstable();
        let text = match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".into(),
        };
        reqs.push((key, text));
    }
    if reqs.is_empty() {
        return "<none>".into();
    }
    reqs.sort();
    reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
}

pub fn field_value(object: &Value, path: &str) -> Option<String> {
    let mut cur = object;
    for part in path.trim_start_matches('.').split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn every_label_operator() {
        let l = labels(json!({"env": "prod", "tier": "web", "n": "5"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m("env=prod"));
        assert!(m("env==prod"));
        assert!(!m("env!=prod"));
        assert!(m("missing!=x"));
        assert!(m("env in (prod, dev)"));
        assert!(!m("env notin (prod)"));
        assert!(m("missing notin (prod)"));
        assert!(m("tier"));
        assert!(m("!missing"));
        assert!(!m("!tier"));
        assert!(m("n>4,n<6"));
        assert!(m(" env = prod , tier in (web) "));
        assert!(m(""));
    }

    #[test]
    fn label_syntax_errors() {
        assert!(LabelSelector::parse("env in prod").is_err());
        assert!(LabelSelector::parse("env=prod=").is_err());
        assert!(LabelSelector::parse("a b").is_err());
        assert!(LabelSelector::parse("-bad-=x").is_err());
    }

    #[test]
    fn field_selectors_with_escapes() {
        let f = FieldSelector::parse("metadata.name=a\\,b,status.phase!=Active").unwrap();
        assert_eq!(f.0[0], ("metadata.name".into(), true, "a,b".into()));
        assert_eq!(f.0[1], ("status.phase".into(), false, "Active".into()));
        let obj = json!({"metadata": {"name": "a,b"}, "status": {"phase": "Terminating"}});
        assert!(f.matches(|k| field_value(&obj, k)));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
