//! What a request asks, for the authorizer (`endpoints/request/requestinfo.go`): a verb, and a
//! resource (group, resource, subresource, namespace, name) or a non-resource path.

use std::collections::HashMap;

use hyper::Method;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceAttributes {
    /// `resource` may carry its subresource (`pods/log`).
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        ResourceAttributes {
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// None for a non-resource request (`path`).
    pub resource: Option<ResourceAttributes>,
    pub path: String,
}

impl Attributes {
    pub fn resource(verb: &str, r: ResourceAttributes) -> Self {
        Attributes { verb: verb.into(), resource: Some(r), path: String::new() }
    }

    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes { verb: verb.into(), resource: None, path: path.into() }
    }

    /// The attributes of an HTTP request, as kube-apiserver parses them from the URL alone
    /// (before it knows whether the resource exists).
    pub fn of_request(method: &Method, path: &str, query: &HashMap<String, String>) -> Self {
        let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
            _ => return Attributes::non_resource(&method.as_str().to_lowercase(), path),
        };
        let (mut rest, mut watch_path) = (rest, false);
        if rest.first() == Some(&"watch") {
            watch_path = true;
            rest = &rest[1..];
        }
        let mut r = ResourceAttributes { group: group.into(), ..ResourceAttributes::default() };
        let tail: &[&str] = match rest {
            // /namespaces/{name}[/status|/finalize] is the Namespace itself, in its own namespace.
            ["namespaces", ns] | ["namespaces", ns, "status" | "finalize"] if group.is_empty() => {
                r.namespace = ns.to_string();
                rest
            }
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => {
                r.namespace = ns.to_string();
                tail
            }
            tail => tail,
        };
        match tail {
            [resource] => r.resource = resource.to_string(),
            [resource, name] => (r.resource, r.name) = (resource.to_string(), name.to_string()),
            [resource, name, sub, ..] => {
                (r.resource, r.name, r.subresource) = (resource.to_string(), name.to_string(), sub.to_string())
            }
            [] => {}
        }
        let watch = watch_path || query.get("watch").is_some_and(|w| !w.is_empty() && w != "false" && w != "0");
        let verb = match *method {
            Method::GET | Method::HEAD if r.name.is_empty() && watch => "watch",
            Method::GET | Method::HEAD if r.name.is_empty() => "list",
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if r.name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        // A list or watch of one object by name can be allowed by resourceNames.
        if r.name.is_empty()
            && (verb == "list" || verb == "watch")
            && let Some(sel) = query.get("fieldSelector")
            && let Some(name) = sel.split(',').find_map(|p| p.strip_prefix("metadata.name=").map(str::trim))
        {
            r.name = name.to_string();
        }
        Attributes { verb: verb.into(), resource: Some(r), path: path.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: &[(&str, &str)]) -> (String, ResourceAttributes) {
        let q = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let a = Attributes::of_request(&method, path, &q);
        (a.verb, a.resource.unwrap_or_default())
    }

    #[test]
    fn requests_become_attributes_as_kube_apiserver_parses_them() {
        let r = |g: &str, res: &str, ns: &str, name: &str| ResourceAttributes::new(g, res, ns, name);
        #[rustfmt::skip]
        let table = [
            (Method::GET, "/api/v1/namespaces/r2/pods", vec![], "list", r("", "pods", "r2", "")),
            (Method::GET, "/api/v1/namespaces/r2/pods", vec![("watch", "1")], "watch", r("", "pods", "r2", "")),
            (Method::GET, "/api/v1/pods", vec![("watch", "false")], "list", r("", "pods", "", "")),
            (Method::GET, "/api/v1/namespaces/r2/pods", vec![("fieldSelector", "metadata.name=web")], "list", r("", "pods", "r2", "web")),
            (Method::GET, "/apis/apps/v1/namespaces/r2/deployments/web", vec![], "get", r("apps", "deployments", "r2", "web")),
            (Method::PATCH, "/apis/apps/v1/namespaces/r2/deployments/web/scale", vec![], "patch", r("apps", "deployments/scale", "r2", "web")),
            (Method::POST, "/apis/workspaces.dev/v1alpha1/namespaces/a/workspaces", vec![], "create", r("workspaces.dev", "workspaces", "a", "")),
            (Method::GET, "/api/v1/namespaces/r2", vec![], "get", r("", "namespaces", "r2", "r2")),
            (Method::PUT, "/api/v1/namespaces/r2/finalize", vec![], "update", r("", "namespaces/finalize", "r2", "r2")),
            (Method::DELETE, "/api/v1/namespaces/r2/configmaps", vec![], "deletecollection", r("", "configmaps", "r2", "")),
            (Method::POST, "/api/v1/namespaces/a/serviceaccounts/op/token", vec![], "create", r("", "serviceaccounts/token", "a", "op")),
        ];
        for (method, path, query, verb, want) in table {
            assert_eq!(attrs(method.clone(), path, &query), (verb.to_string(), want), "{method} {path}");
        }
        let a = Attributes::of_request(&Method::GET, "/apis/apps/v1", &HashMap::new());
        assert_eq!((a.verb.as_str(), a.resource, a.path.as_str()), ("get", None, "/apis/apps/v1"));
    }
}
