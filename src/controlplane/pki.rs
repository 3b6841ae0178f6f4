//! The certificates a control plane needs, made at start: one CA that signs the serving
//! certificate and every client certificate (x509 authentication: CN is the user, each O a
//! group), and the key pair ServiceAccount tokens are signed with.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

pub struct Pki {
    ca: Certificate,
    ca_key: KeyPair,
}

/// A certificate and its private key, PEM.
pub struct Credentials {
    pub cert_pem: String,
    pub key_pem: String,
}

fn name(cn: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn leaf(params: &mut CertificateParams, usage: ExtendedKeyUsagePurpose) {
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
}

impl Pki {
    pub fn new() -> Result<Pki, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("workspace-operator-test-ca", &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = params.self_signed(&ca_key)?;
        Ok(Pki { ca, ca_key })
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    pub fn ca_der(&self) -> Vec<u8> {
        self.ca.der().to_vec()
    }

    /// kube-apiserver's serving certificate: loopback, the address it serves on, and the
    /// in-cluster names a client may use.
    pub fn serving(&self, ip: std::net::IpAddr) -> Result<Credentials, rcgen::Error> {
        let names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"];
        let mut params = CertificateParams::new(names.map(String::from).to_vec())?;
        params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        if !ip.is_loopback() && !ip.is_unspecified() {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        params.distinguished_name = name("kube-apiserver", &[]);
        leaf(&mut params, ExtendedKeyUsagePurpose::ServerAuth);
        self.sign(params)
    }

    /// A client certificate for `user` in `groups`.
    pub fn client(&self, user: &str, groups: &[&str]) -> Result<Credentials, rcgen::Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(user, groups);
        leaf(&mut params, ExtendedKeyUsagePurpose::ClientAuth);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<Credentials, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca, &self.ca_key)?;
        Ok(Credentials { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// The ServiceAccount token signing key (P-256, ES256), private and public, PEM.
pub fn signing_key() -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}
