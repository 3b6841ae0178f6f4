//! Who is asking (kube-apiserver's authentication and impersonation filters): a client
//! certificate signed by the cluster's CA, else a ServiceAccount token, else anonymous; then,
//! if asked for and allowed, the identity being impersonated.
//!
//! Approximations (no flags to set them): no OIDC, no webhook token authenticator, no static
//! token file; every credential is re-checked on every request, without a cache.

use std::collections::BTreeMap;

use hyper::HeaderMap;

use crate::errors::{ApiError, Result};
use crate::rbac::{Attributes, ResourceAttributes};
use crate::registry::ApiServer;
use crate::request::{ANONYMOUS, AUTHENTICATED, SA_PREFIX, UNAUTHENTICATED, UserInfo};

/// The groups every authenticated identity is in, added as kube-apiserver's group adder does.
fn with_authenticated(mut groups: Vec<String>, name: &str) -> Vec<String> {
    if name != ANONYMOUS && !groups.iter().any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    groups
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl ApiServer {
    /// The authenticator chain: x509, then bearer token, then anonymous. Err is a 401: a bad
    /// certificate or token is never taken for anonymous.
    ///
    /// `x509` is what the connection's client certificate says (`Pki::authenticate`), worked
    /// out once per connection: the certificate cannot change within it.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        x509: &std::result::Result<Option<UserInfo>, ()>,
    ) -> Result<UserInfo> {
        if let Ok(Some(user)) = x509 {
            return Ok(user.clone());
        }
        if let Some(token) = bearer(headers) {
            return self.authenticate_token(token, None).map_err(|_| ApiError::unauthorized());
        }
        match x509 {
            Err(()) => Err(ApiError::unauthorized()),
            Ok(_) => Ok(UserInfo::anonymous()),
        }
    }

    /// A ServiceAccount token: signed by this cluster, for `audiences` (default: the API's),
    /// not expired, and its ServiceAccount (and any object it is bound to) still there with the
    /// same uid.
    pub(crate) fn authenticate_token(
        &self,
        token: &str,
        audiences: Option<&[String]>,
    ) -> std::result::Result<UserInfo, String> {
        let claims = self.tokens.verify(token, audiences)?;
        let k = &claims.kubernetes;
        let g = self.store.lock();
        let live_uid = |collection: &str, name: &str| -> Option<String> {
            let obj = g.get(collection, &crate::store::key(Some(&k.namespace), name))?;
            obj["metadata"]["uid"].as_str().map(String::from)
        };
        if live_uid("serviceaccounts", &k.serviceaccount.name).as_deref() != Some(k.serviceaccount.uid.as_str()) {
            return Err("service account token has been invalidated".into());
        }
        let mut user = UserInfo::new(
            &format!("{SA_PREFIX}{}:{}", k.namespace, k.serviceaccount.name),
            &k.serviceaccount.uid,
            vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", k.namespace),
                AUTHENTICATED.into(),
            ],
        );
        for (collection, bound, extra) in [("pods", &k.pod, "pod"), ("secrets", &k.secret, "secret")] {
            if let Some(b) = bound {
                if live_uid(collection, &b.name).as_deref() != Some(b.uid.as_str()) {
                    return Err(format!("the {extra} the token is bound to no longer exists"));
                }
                user.extra.insert(format!("authentication.kubernetes.io/{extra}-name"), vec![b.name.clone()]);
                user.extra.insert(format!("authentication.kubernetes.io/{extra}-uid"), vec![b.uid.clone()]);
            }
        }
        user.extra.insert("authentication.kubernetes.io/credential-id".into(), vec![format!("JTI={}", claims.jti)]);
        Ok(user)
    }

    /// Act as the identity the `Impersonate-*` headers ask for, if `user` may: each header is
    /// checked as verb `impersonate`, in the order user, groups, extras, uid.
    pub(crate) fn impersonate(&self, user: UserInfo, headers: &HeaderMap) -> Result<UserInfo> {
        let values = |name: &str| -> Vec<String> {
            headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(String::from).collect()
        };
        let as_user = values("impersonate-user").into_iter().next();
        let as_groups = values("impersonate-group");
        let as_uid = values("impersonate-uid").into_iter().next();
        let mut as_extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in headers {
            if let Some(key) = k.as_str().strip_prefix("impersonate-extra-") {
                let key = percent_decode(&key.to_ascii_lowercase());
                as_extra.entry(key).or_default().extend(v.to_str().ok().map(String::from));
            }
        }
        let Some(name) = as_user else {
            if !as_groups.is_empty() || as_uid.is_some() || !as_extra.is_empty() {
                return Err(ApiError::raw(500, "requested [{Kind:Group ...} ...] without impersonating a user".into()));
            }
            return Ok(user);
        };
        let check = |attrs: ResourceAttributes| -> Result<()> {
            let a = Attributes::resource("impersonate", attrs);
            let decision = self.rbac.authorize(&self.store, &user, &a);
            if decision.allowed { Ok(()) } else { Err(crate::rbac::forbidden(&user, &a, &decision)) }
        };
        let mut groups = as_groups.clone();
        match name.strip_prefix(SA_PREFIX).and_then(|r| r.split_once(':')) {
            Some((ns, sa)) => {
                check(ResourceAttributes::new("", "serviceaccounts", ns, sa))?;
                if as_groups.is_empty() {
                    groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
                }
            }
            None => check(ResourceAttributes::new("", "users", "", &name))?,
        }
        for g in &as_groups {
            check(ResourceAttributes::new("", "groups", "", g))?;
        }
        for (key, vals) in &as_extra {
            for v in vals {
                check(ResourceAttributes::new("authentication.k8s.io", &format!("userextras/{key}"), "", v))?;
            }
        }
        if let Some(uid) = &as_uid {
            check(ResourceAttributes::new("authentication.k8s.io", "uids", "", uid))?;
        }
        let groups = if name == ANONYMOUS {
            if groups.iter().any(|g| g == UNAUTHENTICATED) {
                groups
            } else {
                [groups, vec![UNAUTHENTICATED.into()]].concat()
            }
        } else {
            with_authenticated(groups, &name)
        };
        Ok(UserInfo { name, uid: as_uid.unwrap_or_default(), groups, extra: as_extra })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
