//! ResourceQuota, as kube-apiserver's ResourceQuota admission plugin and the quota controller
//! do it together, but synchronously: a create that would take a namespace over a quota's
//! `hard` is refused with the real `exceeded quota` message, and each quota's `status.used` is
//! recomputed after every change in its namespace (so `status` is never unknown here).
//!
//! Counted: pods (`pods`, `count/pods`, cpu and memory requests and limits, extended resources
//! as `requests.<name>`), persistent volume claims (`requests.storage`), and the object count of
//! every kind (`count/<resource>[.<group>]`, plus the legacy names `configmaps`, `secrets`,
//! `services`, `persistentvolumeclaims`, `resourcequotas`). Approximations: init containers are
//! not counted, and quota scopes, services' node ports and storage classes are not known.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::errors::{ApiError, Result};
use crate::resources::{Catalogue, Resource};
use crate::store::{self, Bounds, Guard};

const QUOTAS: &str = "resourcequotas";

/// An amount in thousandths of its unit, and whether it was written with a binary suffix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Amount {
    milli: i128,
    binary: bool,
}

/// A Kubernetes quantity (`500m`, `2`, `1.5Gi`, `1e3`): None when it is not one.
fn parse(q: &str) -> Option<Amount> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{whole}{frac}");
    let mantissa: i128 = digits.parse().ok()?;
    let scale = 10i128.checked_pow(frac.len() as u32)?;
    let (factor, divisor, binary): (i128, i128, bool) = match suffix {
        "" => (1000, 1, false),
        "m" => (1, 1, false),
        "k" => (1000 * 1000, 1, false),
        "M" => (1000 * 1_000_000, 1, false),
        "G" => (1000 * 1_000_000_000, 1, false),
        "T" => (1000 * 1_000_000_000_000, 1, false),
        "P" => (1000 * 1_000_000_000_000_000, 1, false),
        "E" => (1000 * 1_000_000_000_000_000_000, 1, false),
        "Ki" => (1000 << 10, 1, true),
        "Mi" => (1000 << 20, 1, true),
        "Gi" => (1000 << 30, 1, true),
        "Ti" => (1000 << 40, 1, true),
        "Pi" => (1000 << 50, 1, true),
        "Ei" => (1000 << 60, 1, true),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            if exp >= 0 {
                (1000 * 10i128.checked_pow(exp as u32)?, 1, false)
            } else {
                (1000, 10i128.checked_pow((-exp) as u32)?, false)
            }
        }
        _ => return None,
    };
    Some(Amount { milli: mantissa.checked_mul(factor)? / divisor / scale, binary })
}

/// As `resource.Quantity.String()` prints it, near enough: the largest suffix that keeps the
/// value whole, binary for amounts written in binary.
fn format(a: Amount) -> String {
    if a.milli % 1000 != 0 {
        return format!("{}m", a.milli);
    }
    let units = a.milli / 1000;
    if units == 0 {
        return "0".into();
    }
    let suffixes: &[(&str, i128)] = if a.binary {
        &[("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
    } else {
        &[
            ("E", 1_000_000_000_000_000_000),
            ("P", 1_000_000_000_000_000),
            ("T", 1_000_000_000_000),
            ("G", 1_000_000_000),
            ("M", 1_000_000),
            ("k", 1000),
        ]
    };
    suffixes
        .iter()
        .find(|(_, f)| units % f == 0)
        .map(|(s, f)| format!("{}{s}", units / f))
        .unwrap_or_else(|| units.to_string())
}

type Usage = BTreeMap<String, Amount>;

fn add(total: &mut Usage, key: &str, a: Amount) {
    let slot = total.entry(key.to_string()).or_default();
    slot.milli += a.milli;
    slot.binary |= a.binary;
}

fn one() -> Amount {
    Amount { milli: 1000, binary: false }
}

/// What an object of `res` charges: its object count, and for pods and claims what they ask.
fn usage(res: &Resource, obj: &Value) -> Usage {
    let mut u = Usage::new();
    let count = if res.group.is_empty() {
        format!("count/{}", res.plural)
    } else {
        format!("count/{}.{}", res.plural, res.group)
    };
    add(&mut u, &count, one());
    if res.group.is_empty()
        && matches!(
            res.plural.as_str(),
            "configmaps" | "secrets" | "services" | "persistentvolumeclaims" | "resourcequotas"
        )
    {
        add(&mut u, &res.plural, one());
    }
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "pods") if !matches!(obj["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) => {
            add(&mut u, "pods", one());
            for c in obj["spec"]["containers"].as_array().into_iter().flatten() {
                let limits = &c["resources"]["limits"];
                // The API defaults a container's requests to its limits.
                let requests = |k: &str| c["resources"]["requests"].get(k).or_else(|| limits.get(k));
                let mut names: Vec<String> = (c["resources"]["requests"].as_object().into_iter().flatten())
                    .chain(limits.as_object().into_iter().flatten())
                    .map(|(k, _)| k.clone())
                    .collect();
                names.sort();
                names.dedup();
                for name in names {
                    if let Some(a) = requests(&name).and_then(Value::as_str).and_then(parse) {
                        add(&mut u, &format!("requests.{name}"), a);
                        if name == "cpu" || name == "memory" {
                            add(&mut u, &name, a);
                        }
                    }
                    if let Some(a) = limits.get(&name).and_then(Value::as_str).and_then(parse) {
                        add(&mut u, &format!("limits.{name}"), a);
                    }
                }
            }
        }
        ("", "persistentvolumeclaims") => {
            if let Some(a) = obj["spec"]["resources"]["requests"]["storage"].as_str().and_then(parse) {
                add(&mut u, "requests.storage", a);
            }
        }
        _ => {}
    }
    u
}

/// The cpu and memory a quota limits that a container of this pod does not declare, as the
/// pod evaluator's `must specify` check finds them.
fn missing_declarations(hard: &Value, pod: &Value) -> Option<String> {
    const DECLARED: [&str; 6] = ["cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];
    let required: Vec<&str> = DECLARED.into_iter().filter(|k| hard.get(*k).is_some()).collect();
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let limits = &c["resources"]["limits"];
        let requests = &c["resources"]["requests"];
        for key in &required {
            let resource = key.rsplit('.').next().unwrap_or(key);
            let declared = if key.starts_with("limits.") {
                limits.get(resource).is_some()
            } else {
                requests.get(resource).is_some() || limits.get(resource).is_some()
            };
            if !declared {
                missing.entry(key).or_default().push(c["name"].as_str().unwrap_or("").to_string());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(k, mut names)| {
            names.sort();
            format!("{k} for: {}", names.join(","))
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// Can an object of `res` count against quota key `key`? Pods count against compute keys,
/// claims against storage, every kind against its own count; nothing else. What lets a write of
/// a kind that no quota of its namespace limits skip the usage sum (kube-apiserver keeps usage
/// in the quota's status instead of summing it, so a namespace of 20,000 RoleBindings must not
/// make each write cost 20,000 lookups here).
fn counts(res: &Resource, key: &str) -> bool {
    let core = res.group.is_empty();
    let count = if core { format!("count/{}", res.plural) } else { format!("count/{}.{}", res.plural, res.group) };
    match (core, res.plural.as_str()) {
        _ if key == count => true,
        (true, "pods") => {
            key == "pods"
                || key == "cpu"
                || key == "memory"
                || key.starts_with("requests.")
                || key.starts_with("limits.")
        }
        (true, "persistentvolumeclaims") => key == "persistentvolumeclaims" || key == "requests.storage",
        (true, p) => key == p && matches!(p, "configmaps" | "secrets" | "services" | "resourcequotas"),
        _ => false,
    }
}

/// Does some quota among `quotas` limit what objects of `res` use?
fn limits_kind(quotas: &[Arc<Value>], res: &Resource) -> bool {
    quotas.iter().any(|q| q["spec"]["hard"].as_object().into_iter().flatten().any(|(k, _)| counts(res, k)))
}

/// What the objects of a namespace use now.
fn used(g: &Guard<'_>, cat: &Catalogue, namespace: &str) -> Usage {
    let mut total = Usage::new();
    for (collection, key) in g.keys_in_namespace(namespace) {
        let (Some(res), Some(obj)) = (cat.by_collection(&collection), g.get(&collection, &key)) else { continue };
        for (k, a) in usage(&res, &obj) {
            add(&mut total, &k, a);
        }
    }
    total
}

fn quotas(g: &Guard<'_>, namespace: &str) -> Vec<Arc<Value>> {
    let coll = g.collection(QUOTAS);
    Bounds::new(Some(namespace), None).iter(&coll).map(|(_, q)| q.clone()).collect()
}

/// `key=value,...` for `keys` (a key the usage lacks is 0, as in a quota's `status.used`).
fn pretty(u: &Usage, keys: &[String]) -> String {
    keys.iter().map(|k| format!("{k}={}", format(u.get(k).copied().unwrap_or_default()))).collect::<Vec<_>>().join(",")
}

/// Refuse a create that a quota of its namespace does not allow.
pub(crate) fn admit_create(g: &Guard<'_>, cat: &Catalogue, res: &Resource, namespace: &str, obj: &Value) -> Result<()> {
    let quotas = quotas(g, namespace);
    if !limits_kind(&quotas, res) {
        return Ok(());
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or_else(|| obj["metadata"]["generateName"].as_str())
        .unwrap_or("Unknown");
    let requested = usage(res, obj);
    let used = used(g, cat, namespace);
    for q in quotas {
        let qname = q["metadata"]["name"].as_str().unwrap_or("");
        let hard = &q["spec"]["hard"];
        if res.plural == "pods"
            && res.group.is_empty()
            && let Some(why) = missing_declarations(hard, obj)
        {
            return Err(ApiError::forbidden(&res.named(name), &format!("failed quota: {qname}: {why}")));
        }
        let mut exceeded: Vec<String> = Vec::new();
        for (k, h) in hard.as_object().into_iter().flatten() {
            let (Some(want), Some(limit)) = (requested.get(k), h.as_str().and_then(parse)) else { continue };
            let now = used.get(k).map(|a| a.milli).unwrap_or(0);
            if now + want.milli > limit.milli {
                exceeded.push(k.clone());
            }
        }
        if !exceeded.is_empty() {
            exceeded.sort();
            let hard_usage: Usage =
                exceeded.iter().filter_map(|k| Some((k.clone(), hard[k.as_str()].as_str().and_then(parse)?))).collect();
            let why = format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                pretty(&requested, &exceeded),
                pretty(&used, &exceeded),
                pretty(&hard_usage, &exceeded)
            );
            return Err(ApiError::forbidden(&res.named(name), &why));
        }
    }
    Ok(())
}

/// Bring `status` (hard and used) of every quota in `namespace` up to date, as the quota
/// controller would; a quota whose status is already right is not written.
pub(crate) fn refresh(g: &mut Guard<'_>, cat: &Catalogue, res: &Resource, namespace: &str) {
    let quotas = quotas(g, namespace);
    let quota_written = res.group.is_empty() && res.plural == "resourcequotas";
    if quotas.is_empty() || !(quota_written || limits_kind(&quotas, res)) {
        return;
    }
    let used_now = used(g, cat, namespace);
    for q in quotas {
        let hard = q["spec"]["hard"].clone();
        let used: serde_json::Map<String, Value> = (hard.as_object().into_iter().flatten())
            .map(|(k, _)| (k.clone(), json!(used_now.get(k).map(|a| format(*a)).unwrap_or_else(|| "0".into()))))
            .collect();
        let status = if hard.is_object() { json!({"hard": hard, "used": used}) } else { json!({}) };
        if q["status"] == status {
            continue;
        }
        let mut obj = (*q).clone();
        obj["status"] = status;
        let rv = g.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = store::key(Some(namespace), obj["metadata"]["name"].as_str().unwrap_or(""));
        g.put(&Arc::from(QUOTAS), key, Arc::new(obj), rv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kinds_a_quota_key_counts_make_its_namespace_usage_summed() {
        let cat = Catalogue::new(&[]);
        let core = |plural: &str| cat.get("", "v1", plural).expect("a built-in kind");
        let rbac = cat.get("rbac.authorization.k8s.io", "v1", "rolebindings").expect("RBAC");
        #[rustfmt::skip]
        let table = [
            (core("pods"), "pods", true), (core("pods"), "limits.cpu", true), (core("pods"), "memory", true),
            (core("pods"), "count/pods", true), (core("pods"), "requests.storage", true),
            (core("persistentvolumeclaims"), "requests.storage", true), (core("persistentvolumeclaims"), "limits.cpu", false),
            (core("configmaps"), "configmaps", true), (core("configmaps"), "pods", false),
            (rbac.clone(), "count/rolebindings.rbac.authorization.k8s.io", true), (rbac.clone(), "pods", false),
            (rbac, "rolebindings", false),
        ];
        for (res, key, counted) in table {
            assert_eq!(counts(&res, key), counted, "{} {key}", res.plural);
        }
    }

    #[test]
    fn quantities_parse_and_print_as_kubernetes_writes_them() {
        for (text, milli, printed) in [
            ("500m", 500, "500m"),
            ("2", 2000, "2"),
            ("1.5", 1500, "1500m"),
            ("1Gi", 1000 << 30, "1Gi"),
            ("1536Mi", 1_536_000 << 20, "1536Mi"),
            ("2k", 2_000_000, "2k"),
            ("1e3", 1_000_000, "1k"),
        ] {
            let a = parse(text).unwrap_or_else(|| panic!("{text} parses"));
            assert_eq!(a.milli, milli, "{text}");
            assert_eq!(format(a), printed, "{text}");
        }
        assert!(parse("lots").is_none());
        assert!(parse("8GB").is_none());
    }

    #[test]
    fn missing_cpu_and_memory_limits_are_named_per_container() {
        let hard = json!({"limits.cpu": "4", "limits.memory": "8Gi", "pods": "10"});
        let pod = json!({"spec": {"containers": [
            {"name": "app", "resources": {"limits": {"cpu": "1"}}},
            {"name": "side"}]}});
        assert_eq!(
            missing_declarations(&hard, &pod).as_deref(),
            Some("must specify limits.cpu for: side; limits.memory for: app,side")
        );
    }
}
