//! The cluster's certificates: a CA made at start, the serving certificate (127.0.0.1 and
//! localhost), client certificates issued on request (x509 authentication: CN is the user, each
//! O a group), and the TLS configuration that asks for a client certificate without requiring
//! one, as kube-apiserver does, so a bad certificate is answered 401, not a failed handshake.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName as TlsName, SignatureScheme};

use crate::request::{AUTHENTICATED, UserInfo};

pub struct Pki {
    ca: Certificate,
    ca_key: KeyPair,
    /// The CA, PEM: what kubeconfigs carry as `certificate-authority-data`.
    pub ca_pem: String,
    /// Verifies client certificates against the CA, in the authenticator.
    verifier: Arc<dyn ClientCertVerifier>,
    pub server_config: Arc<ServerConfig>,
}

/// A certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub cert_pem: String,
    pub key_pem: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn name(cn: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

impl Pki {
    pub fn new() -> Result<Pki, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("devcluster-ca", &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = params.self_signed(&ca_key)?;
        let ca_pem = ca.pem();

        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params.distinguished_name = name("kube-apiserver", &[]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let server = params.signed_by(&server_key, &ca, &ca_key)?;

        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
            .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
        let mut server_config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?
            .with_client_cert_verifier(Arc::new(AnyClientCert { provider: provider() }))
            .with_single_cert(vec![server.der().clone(), ca.der().clone()], key)
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Pki { ca, ca_key, ca_pem, verifier, server_config: Arc::new(server_config) })
    }

    /// The CA certificate, DER: what a client trusts.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca.der().to_vec()
    }

    /// A client certificate for `user` in `groups`, signed by the cluster's CA.
    pub fn issue(&self, user: &str, groups: &[&str]) -> Credentials {
        let key = KeyPair::generate().expect("a P-256 key pair generates");
        let mut params = CertificateParams::default();
        params.distinguished_name = name(user, groups);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).expect("the CA signs");
        Credentials { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// The user a client certificate names, once it verifies against the CA (with the client
    /// authentication usage). Err: a certificate that fails verification, which is a 401.
    pub fn authenticate(&self, chain: &[CertificateDer<'static>]) -> Result<Option<UserInfo>, ()> {
        let Some((leaf, intermediates)) = chain.split_first() else { return Ok(None) };
        self.verifier.verify_client_cert(leaf, intermediates, UnixTime::now()).map_err(|_| ())?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|_| ())?;
        let subject = cert.subject();
        let Some(cn) = subject.iter_common_name().next().and_then(|a| a.as_str().ok()) else { return Ok(None) };
        if cn.is_empty() {
            return Ok(None);
        }
        let mut groups: Vec<String> =
            subject.iter_organization().filter_map(|o| o.as_str().ok()).map(String::from).collect();
        groups.push(AUTHENTICATED.into());
        let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(leaf.as_ref()));
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let mut user = UserInfo::new(cn, "", groups);
        user.extra.insert("authentication.kubernetes.io/credential-id".into(), vec![format!("X509SHA256={hex}")]);
        Ok(Some(user))
    }
}

/// Accepts any client certificate at the TLS layer, but checks the handshake signature (proof
/// that the client holds the key); whether the certificate is good is the authenticator's call.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[TlsName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
