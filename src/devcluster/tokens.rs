//! ServiceAccount tokens: JWTs signed with a key made at start, with the claims kube-apiserver
//! puts in them (`pkg/serviceaccount/claims.go`), issued by the TokenRequest API and checked on
//! every request.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::KeyPair;
use serde::{Deserialize, Serialize};

/// The issuer, and the one audience the API accepts by default, as on a kubeadm cluster.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

pub struct Tokens {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Tokens whose signature was checked already, with their claims: a signature does not
    /// change, so it is checked once; expiry and audience are checked on every use (and the
    /// caller checks the account still exists).
    verified: Mutex<HashMap<String, Claims>>,
}

/// Verified signatures kept at most; past that the cache starts over.
const VERIFIED_CAP: usize = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// What a TokenRequest asks for.
pub struct Request<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub audiences: Vec<String>,
    pub seconds: i64,
    /// A Pod or Secret the token lives and dies with: (kind, name, uid).
    pub bound: Option<(String, String, String)>,
}

impl Tokens {
    pub fn new() -> Result<Tokens, rcgen::Error> {
        let key = KeyPair::generate()?;
        let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(key.public_key_der()));
        use base64::Engine;
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        Ok(Tokens {
            kid,
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_der(key.public_key_raw()),
            verified: Mutex::default(),
        })
    }

    /// A signed token and its expiry (Unix seconds).
    pub fn issue(&self, r: &Request<'_>) -> (String, i64) {
        let now = jiff::Timestamp::now().as_second();
        let bound = |kind: &str| {
            r.bound
                .as_ref()
                .filter(|(k, _, _)| k == kind)
                .map(|(_, name, uid)| Ref { name: name.clone(), uid: uid.clone() })
        };
        let claims = Claims {
            iss: ISSUER.into(),
            sub: format!("system:serviceaccount:{}:{}", r.namespace, r.name),
            aud: r.audiences.clone(),
            exp: now + r.seconds,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaims {
                namespace: r.namespace.into(),
                serviceaccount: Ref { name: r.name.into(), uid: r.uid.into() },
                pod: bound("Pod"),
                secret: bound("Secret"),
            },
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding).expect("ES256 signing does not fail");
        (token, claims.exp)
    }

    /// The claims of a token this cluster signed, for one of `audiences` (default: the API's),
    /// within its validity (a minute of leeway, as kube-apiserver allows).
    pub fn verify(&self, token: &str, audiences: Option<&[String]>) -> Result<Claims, String> {
        let known = self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned();
        if let Some(claims) = known {
            let now = jiff::Timestamp::now().as_second();
            let wanted: &[String] = audiences.unwrap_or(&[]);
            let audience_ok = if wanted.is_empty() {
                claims.aud.iter().any(|a| a == ISSUER)
            } else {
                claims.aud.iter().any(|a| wanted.contains(a))
            };
            return match (now <= claims.exp + 60 && now + 60 >= claims.nbf, audience_ok) {
                (true, true) => Ok(claims),
                (false, _) => Err("ExpiredSignature".into()),
                (_, false) => Err("InvalidAudience".into()),
            };
        }
        let claims = self.verify_signed(token, audiences)?;
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_CAP {
            cache.clear();
        }
        cache.insert(token.to_string(), claims.clone());
        Ok(claims)
    }

    fn verify_signed(&self, token: &str, audiences: Option<&[String]>) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err("the token was not signed by this cluster".into());
        }
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = 60;
        v.validate_nbf = true;
        v.set_issuer(&[ISSUER]);
        match audiences {
            Some(a) => v.set_audience(a),
            None => v.set_audience(&[ISSUER]),
        }
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map(|d| d.claims).map_err(|e| e.to_string())
    }
}
