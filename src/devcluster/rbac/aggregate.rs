//! ClusterRole aggregation (kube-controller-manager's `clusterrole-aggregation` controller),
//! run at once after every ClusterRole write, to a fixed point: a role labelled
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"` joins `view`, hence `edit` and `admin`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{CLUSTER_ROLES, Rule, rules_of};
use crate::store::{self, Guard};

/// A metav1.LabelSelector (matchLabels and matchExpressions) against some labels.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_labels = selector["matchLabels"].as_object().into_iter().flatten().all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match e["operator"].as_str().unwrap_or("") {
            "In" => label(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => !label(key).is_some_and(|v| values.contains(&v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// The rules an aggregated role should have now: for each selector in order, the rules of the
/// roles it picks, in name order, each rule once.
fn aggregate(role: &Value, all: &[Arc<Value>]) -> Vec<Rule> {
    let name = &role["metadata"]["name"];
    let mut rules: Vec<Rule> = Vec::new();
    for selector in role["aggregationRule"]["clusterRoleSelectors"].as_array().into_iter().flatten() {
        for other in all.iter().filter(|o| o["metadata"]["name"] != *name) {
            if selects(selector, &other["metadata"]["labels"]) {
                for r in rules_of(other) {
                    if !rules.contains(&r) {
                        rules.push(r);
                    }
                }
            }
        }
    }
    rules
}

/// Bring every aggregated ClusterRole up to date; returns whether any changed.
pub fn run(g: &mut Guard<'_>) -> bool {
    let mut changed_any = false;
    // Aggregated roles can select each other (view → edit → admin): repeat until nothing moves.
    for _ in 0..8 {
        let all: Vec<Arc<Value>> = g.collection(CLUSTER_ROLES).values().cloned().collect();
        let mut changed = false;
        for role in all.iter().filter(|r| r.get("aggregationRule").is_some_and(|a| !a.is_null())) {
            let rules = aggregate(role, &all);
            if rules_of(role) == rules && !role["rules"].is_null() {
                continue;
            }
            let mut obj = (**role).clone();
            obj["rules"] = json!(rules);
            let rv = g.next_rv();
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let key = store::key(None, role["metadata"]["name"].as_str().unwrap_or(""));
            g.put(&Arc::from(CLUSTER_ROLES), key, Arc::new(obj), rv);
            changed = true;
        }
        changed_any |= changed;
        if !changed {
            break;
        }
    }
    changed_any
}
