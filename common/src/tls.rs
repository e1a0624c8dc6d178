//! rustls configurations for the BRSKI-EST channel (RFC 8995 §5.1, §5.6.2):
//!
//! - the pledge's *provisional* client, which accepts any registrar certificate (handshake
//!   signatures are still verified) so that the chain can be checked against the voucher's pin
//!   later;
//! - the *pinned* client, which trusts only the voucher's pinned domain certificate;
//! - the registrar's server, which requires a client certificate chaining to a configured
//!   manufacturer (IDevID) or domain (LDevID) anchor.
//!
//! Certificates are validated with [`crate::pki::chain`], the same code that validates envelope
//! signers; the TLS client key is any [`Signer`] through [`TlsSigningKey`].

use crate::keys::Signer;
use crate::keys::tls::TlsSigningKey;
use crate::pki::chain::{TimeCheck, TrustPolicy, chains_to, validate_chain, verify_issued_by};
use der::Decode;
use rustls::SupportedCipherSuite;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::hash::HashAlgorithm;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::{Arc, OnceLock};
use x509_cert::Certificate;

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("certificate chain is empty")]
    EmptyChain,
}

/// The process-wide crypto provider: aws-lc-rs, with the AES-128-GCM/SHA-256 suites first
/// (TLS_AES_128_GCM_SHA256 is the suite every TLS 1.3 peer must implement, RFC 8446 §9.1, and
/// SHA-256 is hardware-accelerated where SHA-384 often is not). Built once.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut p = rustls::crypto::aws_lc_rs::default_provider();
            // A stable sort: within each hash, the default order is kept.
            p.cipher_suites.sort_by_key(|s| {
                let common = match s {
                    SupportedCipherSuite::Tls13(s) => &s.common,
                    SupportedCipherSuite::Tls12(s) => &s.common,
                };
                common.hash_provider.algorithm() != HashAlgorithm::SHA256
            });
            Arc::new(p)
        })
        .clone()
}

fn algorithms() -> &'static WebPkiSupportedAlgorithms {
    static ALGORITHMS: OnceLock<WebPkiSupportedAlgorithms> = OnceLock::new();
    ALGORITHMS.get_or_init(|| provider().signature_verification_algorithms)
}

/// The handshake-signature methods every verifier here shares: signatures are always checked
/// with aws-lc-rs, whatever the verifier decides about the certificate (8995 §5.1).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, algorithms())
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, algorithms())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms().supported_schemes()
        }
    };
}

fn to_certs(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(Certificate, Vec<Certificate>), rustls::Error> {
    let bad = |_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding);
    let leaf = Certificate::from_der(end_entity.as_ref()).map_err(bad)?;
    let pool = intermediates
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((leaf, pool))
}

fn chain_error(e: crate::pki::chain::ChainError) -> rustls::Error {
    use crate::pki::chain::ChainError as C;
    rustls::Error::InvalidCertificate(match e {
        C::Expired { .. } => rustls::CertificateError::Expired,
        C::NotYetValid { .. } => rustls::CertificateError::NotValidYet,
        C::Untrusted { .. } => rustls::CertificateError::UnknownIssuer,
        C::MissingEku { .. } => rustls::CertificateError::InvalidPurpose,
        other => rustls::CertificateError::Other(rustls::OtherError(Arc::new(other))),
    })
}

/// A `CertifiedKey` from a chain (end entity first) and a [`Signer`].
pub fn certified_key(
    chain: &[Vec<u8>],
    key: Arc<dyn Signer>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    if chain.is_empty() {
        return Err(TlsError::EmptyChain);
    }
    let certs = chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    Ok(Arc::new(CertifiedKey::new(
        certs,
        Arc::new(TlsSigningKey(key)),
    )))
}

#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct FixedServerCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedServerCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Accepts a server certificate whose key is not (yet) trusted: the provisional state of 8995
/// §5.1. The handshake signature is verified, and so is each presented certificate's signature
/// ([`presented_chain_signatures`]); the caller must keep the presented chain and validate it
/// against the voucher's pin (8995 §5.6.2) before trusting anything received.
#[derive(Debug)]
pub struct ProvisionalVerifier;

/// 8995 §5.1: "The signature in the certificate MUST be validated even if a signing key can not
/// (yet) be validated." Each presented certificate must be signed by the next one presented;
/// the last, when it names itself as issuer, by its own key (a last one issued by a CA not
/// presented cannot be checked yet).
pub fn presented_chain_signatures(chain: &[Certificate]) -> Result<(), rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
    for pair in chain.windows(2) {
        if let [cert, issuer] = pair {
            verify_issued_by(cert, issuer).map_err(|_| bad())?;
        }
    }
    if let Some(last) = chain.last() {
        let tbs = last.tbs_certificate();
        if tbs.subject() == tbs.issuer() {
            verify_issued_by(last, last).map_err(|_| bad())?;
        }
    }
    Ok(())
}

impl ServerCertVerifier for ProvisionalVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Every presented certificate must decode, and its signature verify.
        let (leaf, rest) = to_certs(end_entity, intermediates)?;
        let chain: Vec<Certificate> = std::iter::once(leaf).chain(rest).collect();
        presented_chain_signatures(&chain)?;
        Ok(ServerCertVerified::assertion())
    }
    handshake_signatures!();
}

/// Trusts a server whose chain validates to the given anchors (the voucher's pinned domain
/// certificate after imprint, 8995 §5.6.2). The server name is not checked: the pledge does not
/// know the registrar's name (SNI is omitted, cBRSKI §6.3).
#[derive(Debug)]
pub struct AnchoredServerVerifier {
    policy: TrustPolicy,
}

impl AnchoredServerVerifier {
    pub fn new(policy: TrustPolicy) -> Self {
        Self { policy }
    }
}

impl ServerCertVerifier for AnchoredServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (leaf, pool) = to_certs(end_entity, intermediates)?;
        validate_chain(&leaf, &pool, &self.policy).map_err(chain_error)?;
        Ok(ServerCertVerified::assertion())
    }
    handshake_signatures!();
}

/// A check the TLS server makes on a client certificate that validated: e.g. that an LDevID has
/// not been revoked or superseded. `Some(reason)` refuses the handshake.
pub trait CertRefusal: std::fmt::Debug + Send + Sync {
    fn refusal(&self, leaf: &Certificate) -> Option<String>;
}

/// Why a client certificate was refused by a [`CertRefusal`].
#[derive(Debug, thiserror::Error)]
#[error("client certificate refused: {0}")]
pub struct Refused(pub String);

/// How a TLS server authenticates its clients.
#[derive(Clone, Debug, Default)]
pub struct ClientAuth {
    /// A client certificate must validate under one of these.
    pub policies: Vec<TrustPolicy>,
    /// Whether a client may connect without a certificate (RFC 7030 §4.1.1: `/cacerts`); the
    /// application then decides per request.
    pub optional: bool,
    /// A further check of a certificate that validated.
    pub refusal: Option<Arc<dyn CertRefusal>>,
}

/// Requires a client certificate that validates under one of several policies: manufacturer
/// anchors for IDevIDs (expiry optionally ignored, 8995 §2.6.2) and the domain CA for LDevIDs.
#[derive(Debug)]
pub struct ClientCertPolicyVerifier {
    auth: ClientAuth,
}

impl ClientCertPolicyVerifier {
    pub fn new(policies: Vec<TrustPolicy>) -> Self {
        Self::with_auth(ClientAuth {
            policies,
            ..ClientAuth::default()
        })
    }

    pub fn with_auth(auth: ClientAuth) -> Self {
        Self { auth }
    }
}

impl ClientCertVerifier for ClientCertPolicyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        !self.auth.optional
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let (leaf, pool) = to_certs(end_entity, intermediates)?;
        if self
            .auth
            .policies
            .iter()
            .any(|policy| chains_to(&leaf, &pool, policy))
        {
            if let Some(reason) = self.auth.refusal.as_ref().and_then(|r| r.refusal(&leaf)) {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(Refused(reason)))),
                ));
            }
            return Ok(ClientCertVerified::assertion());
        }
        // Refused: the first policy's reason, worked out only now.
        let first_err = self
            .auth
            .policies
            .iter()
            .find_map(|policy| validate_chain(&leaf, &pool, policy).err());
        Err(first_err
            .map(chain_error)
            .unwrap_or(rustls::Error::NoCertificatesPresented))
    }
    handshake_signatures!();
}

/// A TLS client configuration authenticating with `client` (IDevID or LDevID chain and key),
/// verifying the server with `verifier`; SNI is omitted (cBRSKI §6.3, updating 8995).
pub fn client_config(
    client: Option<Arc<CertifiedKey>>,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client {
        Some(k) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(k))),
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = false;
    // Each connection authenticates with a certificate of its own (IDevID, then LDevID): no
    // session is resumed, so none is kept.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// The pledge's provisional client (8995 §5.1).
pub fn provisional_client_config(
    client: Arc<CertifiedKey>,
) -> Result<rustls::ClientConfig, TlsError> {
    client_config(Some(client), Arc::new(ProvisionalVerifier))
}

/// A client that trusts only `anchors` (the pinned domain certificate, or the domain CA after
/// enrollment), authenticating with `client`.
pub fn anchored_client_config(
    client: Option<Arc<CertifiedKey>>,
    anchors: Vec<Certificate>,
    time: TimeCheck,
) -> Result<rustls::ClientConfig, TlsError> {
    let policy = TrustPolicy::new(anchors).with_time(time);
    client_config(client, Arc::new(AnchoredServerVerifier::new(policy)))
}

/// A server presenting `server` and, when `client_policies` is given, requiring a client
/// certificate valid under one of them.
pub fn server_config(
    server: Arc<CertifiedKey>,
    client_policies: Option<Vec<TrustPolicy>>,
) -> Result<rustls::ServerConfig, TlsError> {
    server_config_with(
        server,
        client_policies.map(|policies| ClientAuth {
            policies,
            ..ClientAuth::default()
        }),
    )
}

/// A server presenting `server` and authenticating clients as `client_auth` says (no client
/// authentication when `None`).
pub fn server_config_with(
    server: Arc<CertifiedKey>,
    client_auth: Option<ClientAuth>,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        Some(a) => {
            builder.with_client_cert_verifier(Arc::new(ClientCertPolicyVerifier::with_auth(a)))
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(FixedServerCert(server)));
    // No TLS 1.3 session tickets: clients here never resume (each connection authenticates
    // with its own certificate), so tickets would only cost work on every handshake.
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// Asks for a client certificate and accepts any well-formed chain (every certificate must
/// decode), verifying the handshake signature with its key, like [`ProvisionalVerifier`] does
/// for servers: for the MASA, which cannot know the registrars' CAs in advance (RFC 8995 §5.4)
/// and authenticates the registrar by matching the client certificate's key with the signer of
/// the voucher-request (§5.5.4). The application must make that match.
#[derive(Debug)]
pub struct AnyClientCertVerifier {
    mandatory: bool,
}

impl AnyClientCertVerifier {
    /// `mandatory`: whether a client without a certificate fails the handshake.
    pub fn new(mandatory: bool) -> Self {
        Self { mandatory }
    }
}

impl ClientCertVerifier for AnyClientCertVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        to_certs(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }
    handshake_signatures!();
}

/// A server presenting `server` that asks every client for a certificate and takes any
/// well-formed one ([`AnyClientCertVerifier`]); `mandatory` refuses clients without one.
pub fn server_config_any_client(
    server: Arc<CertifiedKey>,
    mandatory: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(AnyClientCertVerifier::new(mandatory)))
        .with_cert_resolver(Arc::new(FixedServerCert(server)));
    config.send_tls13_tickets = 0;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{SignatureAlgorithm, SoftwareKey};
    use crate::pki::{issue, parse_name, profile, self_signed};
    use der::Encode;
    use rustls::{CipherSuite, ClientConnection, ServerConnection};

    fn key() -> Arc<SoftwareKey> {
        Arc::new(SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key"))
    }

    /// A client connection to `registrar.example` and a server connection, not yet started.
    fn connections(
        client: rustls::ClientConfig,
        server: rustls::ServerConfig,
    ) -> (ClientConnection, ServerConnection) {
        let client = ClientConnection::new(
            Arc::new(client),
            ServerName::try_from("registrar.example").expect("name"),
        )
        .expect("client");
        let server = ServerConnection::new(Arc::new(server)).expect("server");
        (client, server)
    }

    /// A self-signed `CN=Domain CA` with its key.
    fn domain_ca() -> (Arc<SoftwareKey>, Certificate) {
        let ca_key = key();
        let ca = self_signed(
            &profile::domain_ca(parse_name("CN=Domain CA").expect("name")).expect("params"),
            ca_key.as_ref(),
        )
        .expect("CA");
        (ca_key, ca)
    }

    /// Move TLS records both ways until neither side has anything to send; the number of bytes
    /// the server sent after its side of the handshake was complete.
    fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> usize {
        let mut after_handshake = 0;
        for _ in 0..16 {
            let mut moved = false;
            while client.wants_write() {
                let mut buf = Vec::new();
                client.write_tls(&mut buf).expect("client write");
                server.read_tls(&mut buf.as_slice()).expect("server read");
                server.process_new_packets().expect("server process");
                moved = true;
            }
            while server.wants_write() {
                let mut buf = Vec::new();
                server.write_tls(&mut buf).expect("server write");
                if !server.is_handshaking() {
                    after_handshake += buf.len();
                }
                client.read_tls(&mut buf.as_slice()).expect("client read");
                client.process_new_packets().expect("client process");
                moved = true;
            }
            if !moved {
                return after_handshake;
            }
        }
        panic!("handshake did not settle");
    }

    /// A full handshake of the pledge's provisional client (authenticating with a fresh
    /// certificate) with a server presenting `chain`: the client's error, if any.
    fn provisional_handshake(
        chain: &[Vec<u8>],
        server_key: Arc<SoftwareKey>,
    ) -> Result<(), rustls::Error> {
        let client_key = key();
        let client_cert = self_signed(
            &profile::ldevid(parse_name("CN=pledge").expect("name")).expect("params"),
            client_key.as_ref(),
        )
        .expect("client cert")
        .to_der()
        .expect("der");
        let server_config =
            server_config(certified_key(chain, server_key).expect("server key"), None)
                .expect("server config");
        let client_config = provisional_client_config(
            certified_key(&[client_cert], client_key).expect("client key"),
        )
        .expect("client config");
        let (mut client, mut server) = connections(client_config, server_config);
        for _ in 0..16 {
            while client.wants_write() {
                let mut buf = Vec::new();
                client.write_tls(&mut buf).expect("client write");
                server.read_tls(&mut buf.as_slice()).expect("server read");
                // The server's own failure follows the client's; the client's is the verdict.
                let _ = server.process_new_packets();
            }
            while server.wants_write() {
                let mut buf = Vec::new();
                server.write_tls(&mut buf).expect("server write");
                client.read_tls(&mut buf.as_slice()).expect("client read");
                client.process_new_packets()?;
            }
            if !client.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not settle");
    }

    #[test]
    fn rfc8995_5_1_provisional_chain_with_a_bad_signature_is_refused() {
        let (ca_key, ca) = domain_ca();
        let server_key = key();
        let leaf = issue(
            &profile::tls_server(&["registrar.example"], &[]).expect("params"),
            server_key.public_key_spki(),
            Some(&ca),
            ca_key.as_ref(),
        )
        .expect("issue")
        .to_der()
        .expect("der");
        let ca_der = ca.to_der().expect("der");
        // The untouched chain, and the leaf alone (its issuer not presented), are accepted
        // provisionally: the key is not trusted yet, only the signatures are checked.
        assert_eq!(
            provisional_handshake(&[leaf.clone(), ca_der.clone()], server_key.clone()),
            Ok(())
        );
        assert_eq!(
            provisional_handshake(std::slice::from_ref(&leaf), server_key.clone()),
            Ok(())
        );
        // The leaf's signature altered (its last byte, inside the ECDSA signature's s): the
        // handshake signature still verifies with the leaf's key, the certificate's does not.
        let mut tampered = leaf.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 0x01;
        }
        assert_eq!(
            provisional_handshake(&[tampered, ca_der.clone()], server_key.clone()),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature
            ))
        );
        // The leaf followed by a CA of the same name that did not sign it.
        let impostor = domain_ca().1.to_der().expect("der");
        assert_eq!(
            provisional_handshake(&[leaf.clone(), impostor], server_key.clone()),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature
            ))
        );
        // A self-signed last certificate whose own signature is broken.
        let mut broken_root = ca_der;
        if let Some(last) = broken_root.last_mut() {
            *last ^= 0x01;
        }
        assert_eq!(
            provisional_handshake(&[leaf, broken_root], server_key),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature
            ))
        );
    }

    #[test]
    fn rfc8446_9_1_aes_128_gcm_sha256_is_preferred() {
        let first = provider().cipher_suites.first().map(|s| s.suite());
        assert_eq!(first, Some(CipherSuite::TLS13_AES_128_GCM_SHA256));
        // Every default suite is still offered.
        assert_eq!(
            provider().cipher_suites.len(),
            rustls::crypto::aws_lc_rs::default_provider()
                .cipher_suites
                .len()
        );
    }

    #[test]
    fn rfc8995_5_1_handshake_with_client_certificate_sends_no_session_tickets() {
        let (ca_key, ca) = domain_ca();
        let leaf = |params, k: &Arc<SoftwareKey>| {
            issue(&params, k.public_key_spki(), Some(&ca), ca_key.as_ref())
                .expect("issue")
                .to_der()
                .expect("der")
        };
        let (server_key, client_key) = (key(), key());
        let server_cert = leaf(
            profile::tls_server(&["registrar.example"], &[]).expect("params"),
            &server_key,
        );
        let client_cert = leaf(
            profile::ldevid(parse_name("CN=pledge").expect("name")).expect("params"),
            &client_key,
        );
        let server_config = server_config(
            certified_key(&[server_cert], server_key).expect("server key"),
            Some(vec![TrustPolicy::new(vec![ca.clone()])]),
        )
        .expect("server config");
        let client_config = anchored_client_config(
            Some(
                certified_key(std::slice::from_ref(&client_cert), client_key).expect("client key"),
            ),
            vec![ca],
            TimeCheck::Now,
        )
        .expect("client config");
        let (mut client, mut server) = connections(client_config, server_config);
        let after_handshake = pump(&mut client, &mut server);
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(
            client.negotiated_cipher_suite().map(|s| s.suite()),
            Some(CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        assert_eq!(
            server.peer_certificates().map(|c| c[0].as_ref().to_vec()),
            Some(client_cert)
        );
        // After the handshake the server sent nothing more: no NewSessionTicket.
        assert_eq!(after_handshake, 0);
    }
}
