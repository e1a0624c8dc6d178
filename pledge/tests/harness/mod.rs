//! An in-test registrar and MASA for driving the real `pledge` binary: an HTTPS server on
//! `brski_service::https::serve` whose routes run the real exchanges of
//! `brski_common::brski::{registrar, masa}` (PVR checks, RVR signing, MASA checks and voucher
//! signing, relay checks), EST with a domain CA, and telemetry collection. `Behaviour` makes
//! it misbehave in the ways the tests need; everything it saw is in `Log`.

#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use brski_common::brski::{date_time, masa, paths, registrar};
use brski_common::envelope::{self, Format};
use brski_common::est::{self, AttrOrOid, CsrAttrs, RawOid, media_type};
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::chain::{TimeCheck, TrustPolicy, validate_chain};
use brski_common::pki::{self, NotAfter, issue, name_from_parts, profile, self_signed};
use brski_common::telemetry::StatusTelemetry;
use brski_common::tls;
use brski_common::voucher::{Assertion, Nonce};
use brski_service::config::PledgeConfig;
use brski_service::files::{certs_to_pem, write_atomic};
use brski_service::https::ConnInfo;
use const_oid::db::{rfc5912, rfc8410};
use der::{Decode, Encode};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use x509_cert::Certificate;

pub struct Party {
    pub key: Arc<SoftwareKey>,
    pub cert: Certificate,
}

impl Party {
    pub fn der(&self) -> Vec<u8> {
        self.cert.to_der().expect("der")
    }
}

fn key(alg: SignatureAlgorithm) -> SoftwareKey {
    SoftwareKey::generate(alg).expect("key")
}

fn ca(cn: &str, vendor: bool) -> Party {
    let key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let name = name_from_parts(Some(cn), Some("Example"), None).expect("name");
    let params = if vendor {
        profile::vendor_ca(name)
    } else {
        profile::domain_ca(name)
    }
    .expect("params");
    let cert = self_signed(&params, &key).expect("ca");
    Party {
        key: Arc::new(key),
        cert,
    }
}

fn issued(params: pki::CertificateParams, issuer: &Party) -> Party {
    let key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let cert = issue(
        &params,
        key.public_key_spki(),
        Some(&issuer.cert),
        issuer.key.as_ref(),
    )
    .expect("issue");
    Party {
        key: Arc::new(key),
        cert,
    }
}

/// A registrar certificate of `domain`, naming `crl` as its CRL distribution point if given.
fn registrar_cert(domain: &Party, cn: &str, crl: Option<&str>) -> Party {
    let mut params = profile::registrar(
        name_from_parts(Some(cn), None, None).expect("n"),
        &["localhost"],
        &["127.0.0.1".parse().expect("ip")],
    )
    .expect("p");
    if let Some(uri) = crl {
        params
            .extra_extensions
            .push(pki::crl::distribution_point_extension(uri).expect("CRL DP"));
    }
    issued(params, domain)
}

/// The manufacturer (vendor CA, MASA signer) and two owner domains, each with a registrar.
pub struct World {
    pub vendor: Party,
    pub masa: Party,
    pub domain_ca: Party,
    pub registrar: Party,
    /// A second domain: its CA is what a voucher "for another domain" pins.
    pub other_domain_ca: Party,
    pub other_registrar: Party,
    /// The domain CA issued again: same name and key, another serial number.
    pub domain_ca_reissued: Certificate,
}

pub fn world() -> Arc<World> {
    world_with_crl(None)
}

/// [`world`], with the registrar's certificate naming `crl` as its CRL distribution point.
pub fn world_with_crl(crl: Option<&str>) -> Arc<World> {
    let vendor = ca("Vendor CA", true);
    let masa = issued(
        profile::masa_voucher_signer(name_from_parts(Some("MASA"), None, None).expect("n"))
            .expect("p"),
        &vendor,
    );
    let domain_ca = ca("Domain CA", false);
    let registrar = registrar_cert(&domain_ca, "registrar", crl);
    let other_domain_ca = ca("Other Domain CA", false);
    let other_registrar = registrar_cert(&other_domain_ca, "other registrar", None);
    let domain_ca_reissued = self_signed(
        &profile::domain_ca(name_from_parts(Some("Domain CA"), Some("Example"), None).expect("n"))
            .expect("params"),
        domain_ca.key.as_ref(),
    )
    .expect("reissued CA");
    Arc::new(World {
        vendor,
        masa,
        domain_ca,
        registrar,
        other_domain_ca,
        other_registrar,
        domain_ca_reissued,
    })
}

impl World {
    fn vendor_policy(&self) -> TrustPolicy {
        TrustPolicy::new(vec![self.vendor.cert.clone()])
    }

    fn domain_policy(&self) -> TrustPolicy {
        TrustPolicy::new(vec![self.domain_ca.cert.clone()])
    }

    fn registrar_chain(&self) -> Vec<Certificate> {
        vec![self.registrar.cert.clone(), self.domain_ca.cert.clone()]
    }
}

/// What `/csrattrs` answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CsrAttrsReply {
    /// id-ecPublicKey on secp256r1 and ecdsa-with-SHA256 (the suite's registrar).
    #[default]
    P256,
    P384,
    Ed25519,
    NotFound,
    /// P-256, challengePassword (RFC 7030 §3.5) and an extensionRequest subjectAltName with
    /// [`ACP_NODE_NAME`] and [`DNS_NAME`] (RFC 8995 §5.9.2, RFC 8994 §6.2.2).
    P256WithNames,
}

/// The ACP node name asked for by [`CsrAttrsReply::P256WithNames`].
pub const ACP_NODE_NAME: &str = "fd89b714f3db00000200000064000000+pledge@acp.example.net";
/// The dNSName asked for by [`CsrAttrsReply::P256WithNames`].
pub const DNS_NAME: &str = "pledge.example.net";

/// The CSR attributes of `reply` (`None` for a 404).
pub fn csr_attrs(reply: CsrAttrsReply) -> Option<CsrAttrs> {
    let ec = |curve: const_oid::ObjectIdentifier, sig: const_oid::ObjectIdentifier| {
        vec![
            AttrOrOid::Attribute {
                oid: RawOid::from(rfc5912::ID_EC_PUBLIC_KEY),
                values: vec![der::Any::from(&curve)],
            },
            AttrOrOid::Oid(RawOid::from(sig)),
        ]
    };
    Some(CsrAttrs(match reply {
        CsrAttrsReply::NotFound => return None,
        CsrAttrsReply::P256 => ec(rfc5912::SECP_256_R_1, rfc5912::ECDSA_WITH_SHA_256),
        CsrAttrsReply::P384 => ec(rfc5912::SECP_384_R_1, rfc5912::ECDSA_WITH_SHA_384),
        CsrAttrsReply::Ed25519 => vec![AttrOrOid::Oid(RawOid::from(rfc8410::ID_ED_25519))],
        CsrAttrsReply::P256WithNames => {
            let mut names = vec![profile::acp_node_name(ACP_NODE_NAME).expect("acp")];
            names.extend(profile::alt_names(&[DNS_NAME], &[]).expect("dns"));
            let san = x509_cert::ext::Extension {
                extn_id: const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
                critical: false,
                extn_value: der::asn1::OctetString::new(
                    x509_cert::ext::pkix::SubjectAltName(names)
                        .to_der()
                        .expect("der"),
                )
                .expect("octets"),
            };
            let mut attrs = ec(rfc5912::SECP_256_R_1, rfc5912::ECDSA_WITH_SHA_256);
            attrs.push(AttrOrOid::Oid(RawOid::from(
                brski_common::oid::CHALLENGE_PASSWORD,
            )));
            attrs.push(AttrOrOid::Attribute {
                oid: RawOid::from(brski_common::oid::EXTENSION_REQUEST),
                values: vec![der::Any::encode_from(&vec![san]).expect("any")],
            });
            attrs
        }
    }))
}

/// Ways for the harness to misbehave.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Answer this many voucher requests with 202 + `Retry-After: 1` first.
    pub pending: usize,
    /// Refuse voucher requests with this status and reason.
    pub refuse_voucher: Option<(u16, &'static str)>,
    /// The MASA signs a voucher with another nonce, and the registrar relays it unchecked.
    pub voucher_other_nonce: bool,
    /// The MASA pins the other domain's CA, and the registrar relays it unchecked.
    pub pin_other_domain: bool,
    /// `/cacerts` returns the other domain's CA.
    pub cacerts_other_domain: bool,
    /// `/simpleenroll` certifies another key than the CSR's.
    pub ldevid_wrong_key: bool,
    /// `/simpleenroll` waits this long before answering.
    pub enroll_delay: Option<Duration>,
    /// LDevID lifetime (default one year).
    pub ldevid_lifetime: Option<Duration>,
    pub csrattrs: CsrAttrsReply,
    /// 202 answers carry `Connection: close`, so the pledge must reconnect to resend.
    pub close_on_pending: bool,
    /// Connections after the first present the other domain's registrar certificate.
    pub switch_cert_on_reconnect: bool,
    /// Answer this many `/simpleenroll` requests with 202 + `Retry-After` first (RFC 7030
    /// §4.2.3).
    pub enroll_pending: usize,
    /// The Retry-After of those 202 answers (default "1").
    pub enroll_retry_after: Option<&'static str>,
    /// Connections after the first present the same registrar certificate, followed by the
    /// reissued domain CA instead of the original one.
    pub reissued_ca_on_reconnect: bool,
    /// The voucher_status answer carries `Connection: close`, so EST needs a new connection.
    pub close_after_voucher_status: bool,
    /// The MASA's voucher says it was created this long after now.
    pub created_on_ahead: Option<time::Duration>,
    /// The MASA's voucher has no `created-on`.
    pub omit_created_on: bool,
    /// The MASA's CMS voucher carries a signingTime this long after now.
    pub signing_time_ahead: Option<time::Duration>,
    /// The MASA's voucher says `domain-cert-revocation-checks: true` (RFC 8366bis §8.4).
    pub revocation_checks: bool,
    /// The MASA issues a nonceless voucher expiring this long after now (RFC 8995 §7.4.1), and
    /// the registrar relays it as if it had been stored (§7.3).
    pub nonceless_expires_in: Option<time::Duration>,
}

/// What the harness saw.
#[derive(Default, Debug)]
pub struct Log {
    /// Paths of all requests, in order.
    pub requests: Vec<String>,
    /// Every voucher-request body received.
    pub pvrs: Vec<Vec<u8>>,
    pub voucher_status: Vec<StatusTelemetry>,
    /// enrollstatus reports, with whether the TLS client was an LDevID of the domain.
    pub enroll_status: Vec<(StatusTelemetry, bool)>,
    pub enroll_started: usize,
    pub issued: Vec<Certificate>,
    pub vouchered: HashSet<String>,
    /// TLS handshakes (full ones: the harness does not resume sessions).
    pub handshakes: usize,
    /// Per CSR received: whether its challengePassword was the channel binding of the
    /// connection it came on (RFC 7030 §3.5), and the extensions it requested.
    pub csrs: Vec<(bool, Vec<x509_cert::ext::Extension>)>,
}

pub struct Shared {
    pub world: Arc<World>,
    pub behaviour: Mutex<Behaviour>,
    pub log: Mutex<Log>,
}

impl Shared {
    fn behaviour(&self) -> Behaviour {
        self.behaviour.lock().expect("lock").clone()
    }

    fn record(&self, path: &str) {
        self.log.lock().expect("lock").requests.push(path.into());
    }
}

fn text(status: u16, reason: impl std::fmt::Display) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{reason}\n"),
    )
        .into_response()
}

fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type.to_string())],
        body.into(),
    )
        .into_response()
}

fn peer_chain(conn: &ConnInfo) -> Vec<Certificate> {
    conn.peer_certs
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .collect()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The MASA: RFC 8995 §5.5 checks of the registrar voucher-request, then the voucher (§5.6).
fn masa_voucher(
    world: &World,
    b: &Behaviour,
    format: Format,
    rvr: &[u8],
) -> Result<Vec<u8>, (u16, String)> {
    let checked = masa::check_registrar_voucher_request(
        format,
        rvr,
        &world.vendor_policy(),
        TimeCheck::Now,
        true,
    )
    .map_err(|e| (e.status(), e.to_string()))?;
    let pin = if b.pin_other_domain {
        world.other_domain_ca.cert.clone()
    } else {
        checked
            .domain_cert()
            .cloned()
            .ok_or((403, "no domain certificate".to_string()))?
    };
    let assertion = if checked.proximity {
        Assertion::Proximity
    } else {
        Assertion::Logged
    };
    let mut voucher = masa::build_voucher(
        &checked,
        assertion,
        &pin,
        time::OffsetDateTime::now_utc(),
        None,
    )
    .map_err(|e| (500, e.to_string()))?;
    if b.voucher_other_nonce {
        voucher.nonce = Some(Nonce::generate().expect("nonce"));
    }
    let now = time::OffsetDateTime::now_utc();
    if let Some(ahead) = b.created_on_ahead {
        voucher.created_on = Some(date_time(now + ahead));
    }
    if b.omit_created_on {
        voucher.created_on = None;
    }
    if b.revocation_checks {
        voucher.domain_cert_revocation_checks = Some(true);
    }
    if let Some(lifetime) = b.nonceless_expires_in {
        voucher.nonce = None;
        voucher.expires_on = Some(date_time(now + lifetime));
    }
    let payload = voucher
        .to_payload(format)
        .map_err(|e| (500, e.to_string()))?;
    let chain = [world.masa.cert.clone(), world.vendor.cert.clone()];
    match (format, b.signing_time_ahead) {
        (Format::Cms, Some(ahead)) => {
            envelope::cms::sign_at(&payload, world.masa.key.as_ref(), &chain, now + ahead)
        }
        _ => envelope::sign(format, &payload, world.masa.key.as_ref(), &chain),
    }
    .map_err(|e| (500, e.to_string()))
}

async fn request_voucher(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<ConnInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.record(paths::REQUEST_VOUCHER);
    let b = s.behaviour();
    let w = &s.world;
    let Some(format) = header_str(&headers, header::CONTENT_TYPE).and_then(Format::from_media_type)
    else {
        return text(415, "unsupported Content-Type");
    };
    if let Some(accept) = header_str(&headers, header::ACCEPT) {
        if Format::from_media_type(accept) != Some(format) {
            return text(406, "Accept differs from the request's format");
        }
    }
    let received = {
        let mut log = s.log.lock().expect("lock");
        log.pvrs.push(body.to_vec());
        log.pvrs.len()
    };
    if received <= b.pending {
        let connection = if b.close_on_pending {
            "close"
        } else {
            "keep-alive"
        };
        return (
            StatusCode::ACCEPTED,
            [(header::RETRY_AFTER, "1"), (header::CONNECTION, connection)],
            "pending approval\n",
        )
            .into_response();
    }
    if let Some((status, reason)) = b.refuse_voucher {
        return text(status, reason);
    }
    let checked = match registrar::check_pledge_voucher_request(
        format,
        &body,
        &peer_chain(&conn),
        &w.registrar.der(),
        &w.vendor_policy(),
    ) {
        Ok(c) => c,
        Err(e) => return text(e.status(), e),
    };
    let rvr = match registrar::sign_registrar_voucher_request(
        &checked,
        time::OffsetDateTime::now_utc(),
        w.registrar.key.as_ref(),
        &w.registrar_chain(),
    ) {
        Ok(r) => r,
        Err(e) => return text(500, e),
    };
    let voucher = match masa_voucher(w, &b, format, &rvr) {
        Ok(v) => v,
        Err((status, reason)) => return text(502, format!("MASA answered {status}: {reason}")),
    };
    // A correct registrar refuses to relay a bad voucher; the misbehaving modes relay it
    // anyway, to show that the pledge checks for itself.
    if !(b.pin_other_domain || b.voucher_other_nonce || b.nonceless_expires_in.is_some()) {
        if let Err(e) = registrar::check_voucher_for_relay(
            format,
            &voucher,
            &checked,
            &w.vendor_policy(),
            &w.registrar_chain(),
        ) {
            return text(502, e);
        }
    }
    s.log
        .lock()
        .expect("lock")
        .vouchered
        .insert(checked.serial_number.clone());
    ok(format.media_type(), voucher)
}

async fn voucher_status(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    s.record(paths::VOUCHER_STATUS);
    match StatusTelemetry::from_json(&body) {
        Ok(t) => {
            s.log.lock().expect("lock").voucher_status.push(t);
            if s.behaviour().close_after_voucher_status {
                return (StatusCode::OK, [(header::CONNECTION, "close")], "ok\n").into_response();
            }
            text(200, "ok")
        }
        Err(e) => text(400, e),
    }
}

async fn enroll_status(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    s.record(paths::ENROLL_STATUS);
    let chain = peer_chain(&conn);
    let ldevid = chain
        .split_first()
        .is_some_and(|(leaf, rest)| validate_chain(leaf, rest, &s.world.domain_policy()).is_ok());
    match StatusTelemetry::from_json(&body) {
        Ok(t) => {
            s.log.lock().expect("lock").enroll_status.push((t, ldevid));
            text(200, "ok")
        }
        Err(e) => text(400, e),
    }
}

async fn cacerts(State(s): State<Arc<Shared>>) -> Response {
    s.record(paths::CACERTS);
    let ca = if s.behaviour().cacerts_other_domain {
        &s.world.other_domain_ca.cert
    } else {
        &s.world.domain_ca.cert
    };
    match est::encode_certs_only_body(std::slice::from_ref(ca)) {
        Ok(body) => ok(media_type::PKCS7_CERTS_ONLY, body),
        Err(e) => text(500, e),
    }
}

async fn csrattrs(State(s): State<Arc<Shared>>) -> Response {
    s.record(paths::CSRATTRS);
    let Some(attrs) = csr_attrs(s.behaviour().csrattrs) else {
        return text(404, "no CSR attributes");
    };
    match attrs.to_body() {
        Ok(body) => ok(media_type::CSRATTRS, body),
        Err(e) => text(500, e),
    }
}

fn issue_ldevid(
    w: &World,
    b: &Behaviour,
    subject: &x509_cert::name::Name,
    spki: &[u8],
) -> Result<Certificate, String> {
    let mut params = profile::ldevid(subject.clone()).map_err(|e| e.to_string())?;
    if let Some(lifetime) = b.ldevid_lifetime {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(1);
        params.not_after = NotAfter::At(now + lifetime);
    }
    let other = key(SignatureAlgorithm::EcdsaP256Sha256);
    let spki = if b.ldevid_wrong_key {
        other.public_key_spki()
    } else {
        spki
    };
    issue(
        &params,
        spki,
        Some(&w.domain_ca.cert),
        w.domain_ca.key.as_ref(),
    )
    .map_err(|e| e.to_string())
}

/// Check a base64 CSR body (RFC 7030 §4.2.1) whose subject must be `subject`, received on
/// `conn`, against the CSR attributes served (for `/simpleenroll`); issue.
fn enroll_csr(
    s: &Shared,
    b: &Behaviour,
    conn: &ConnInfo,
    body: &[u8],
    subject: &x509_cert::name::Name,
    attrs: Option<CsrAttrs>,
) -> Response {
    let der = match est::decode_base64_body(body) {
        Ok(d) => d,
        Err(e) => return text(400, e),
    };
    let req = match pki::csr::verify_csr(&der) {
        Ok(r) => r,
        Err(e) => return text(400, e),
    };
    let linked = match pki::csr::challenge_password(&req) {
        Ok(Some(pw)) => conn
            .channel_binding
            .as_deref()
            .is_some_and(|cb| est::pop_linking_value(cb) == pw),
        _ => false,
    };
    let extensions = pki::csr::requested_extensions(&req).unwrap_or_default();
    s.log.lock().expect("lock").csrs.push((linked, extensions));
    if let Some(attrs) = attrs {
        if let Err(e) = attrs.check_csr(&req) {
            return text(400, e);
        }
    }
    if pki::csr::subject(&req) != subject {
        return text(400, "CSR subject differs from the client certificate's");
    }
    let spki = match pki::csr::spki_der(&req) {
        Ok(k) => k,
        Err(e) => return text(400, e),
    };
    match issue_ldevid(&s.world, b, subject, &spki) {
        Ok(cert) => {
            s.log.lock().expect("lock").issued.push(cert.clone());
            match est::encode_certs_only_body(&[cert]) {
                Ok(body) => ok(media_type::PKCS7_CERTS_ONLY, body),
                Err(e) => text(500, e),
            }
        }
        Err(e) => text(500, e),
    }
}

async fn simple_enroll(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    s.record(paths::SIMPLE_ENROLL);
    s.log.lock().expect("lock").enroll_started += 1;
    let b = s.behaviour();
    if let Some(d) = b.enroll_delay {
        tokio::time::sleep(d).await;
    }
    let chain = peer_chain(&conn);
    let Some((idevid, rest)) = chain.split_first() else {
        return text(401, "no client certificate");
    };
    if validate_chain(idevid, rest, &s.world.vendor_policy()).is_err() {
        return text(403, "not an IDevID");
    }
    let serial = pki::ext::serial_number(idevid).unwrap_or_default();
    if !s.log.lock().expect("lock").vouchered.contains(&serial) {
        return text(403, "no voucher for this pledge");
    }
    let pending = {
        let mut behaviour = s.behaviour.lock().expect("lock");
        let pending = behaviour.enroll_pending > 0;
        behaviour.enroll_pending = behaviour.enroll_pending.saturating_sub(1);
        pending
    };
    if pending {
        let mut r = text(202, "pending");
        r.headers_mut().insert(
            header::RETRY_AFTER,
            b.enroll_retry_after.unwrap_or("1").parse().expect("header"),
        );
        return r;
    }
    let attrs = csr_attrs(b.csrattrs);
    enroll_csr(
        &s,
        &b,
        &conn,
        &body,
        idevid.tbs_certificate().subject(),
        attrs,
    )
}

async fn simple_reenroll(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    s.record(paths::SIMPLE_REENROLL);
    let b = s.behaviour();
    let chain = peer_chain(&conn);
    let Some((ldevid, rest)) = chain.split_first() else {
        return text(401, "no client certificate");
    };
    if validate_chain(ldevid, rest, &s.world.domain_policy()).is_err() {
        return text(403, "not an LDevID of this domain");
    }
    enroll_csr(
        &s,
        &b,
        &conn,
        &body,
        ldevid.tbs_certificate().subject(),
        None,
    )
}

/// The registrar's certificate, or the other domain's registrar certificate for connections
/// after the first when `switch_cert_on_reconnect` is set.
#[derive(Debug)]
struct CertResolver {
    shared: Arc<Shared>,
    ours: Arc<rustls::sign::CertifiedKey>,
    other: Arc<rustls::sign::CertifiedKey>,
    reissued: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for CertResolver {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let earlier = {
            let mut log = self.shared.log.lock().expect("lock");
            log.handshakes += 1;
            log.handshakes - 1
        };
        let b = self.shared.behaviour();
        if earlier > 0 && b.switch_cert_on_reconnect {
            Some(self.other.clone())
        } else if earlier > 0 && b.reissued_ca_on_reconnect {
            Some(self.reissued.clone())
        } else {
            Some(self.ours.clone())
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

fn certified(party: &Party, ca: &Party) -> Arc<rustls::sign::CertifiedKey> {
    let key: Arc<dyn Signer> = party.key.clone();
    tls::certified_key(&[party.der(), ca.der()], key).expect("certified key")
}

/// A running harness registrar.
pub struct Registrar {
    pub url: String,
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Registrar {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Registrar {
    pub async fn start(world: Arc<World>, behaviour: Behaviour) -> Self {
        Self::start_on(0, world, behaviour).await
    }

    pub async fn start_on(port: u16, world: Arc<World>, behaviour: Behaviour) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let policies = vec![world.vendor_policy(), world.domain_policy()];
        let resolver = CertResolver {
            ours: certified(&world.registrar, &world.domain_ca),
            other: certified(&world.other_registrar, &world.other_domain_ca),
            reissued: {
                let key: Arc<dyn Signer> = world.registrar.key.clone();
                let chain = [
                    world.registrar.der(),
                    world.domain_ca_reissued.to_der().expect("der"),
                ];
                tls::certified_key(&chain, key).expect("certified key")
            },
            shared: Arc::new(Shared {
                world,
                behaviour: Mutex::new(behaviour),
                log: Mutex::new(Log::default()),
            }),
        };
        let shared = resolver.shared.clone();
        let mut server = rustls::ServerConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(Arc::new(tls::ClientCertPolicyVerifier::new(policies)))
            .with_cert_resolver(Arc::new(resolver));
        // Full handshakes only, so that every connection shows its certificate.
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        let app = Router::new()
            .route(paths::REQUEST_VOUCHER, post(request_voucher))
            .route(paths::VOUCHER_STATUS, post(voucher_status))
            .route(paths::ENROLL_STATUS, post(enroll_status))
            .route(paths::CACERTS, get(cacerts))
            .route(paths::CSRATTRS, get(csrattrs))
            .route(paths::SIMPLE_ENROLL, post(simple_enroll))
            .route(paths::SIMPLE_REENROLL, post(simple_reenroll))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(brski_service::https::serve(
            listener,
            Arc::new(server),
            app,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            url: format!("https://127.0.0.1:{}", addr.port()),
            addr,
            shared,
            stop: Some(stop),
        }
    }

    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.shared.log.lock().expect("lock")
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.shared.behaviour.lock().expect("lock") = b;
    }

    /// How many requests went to `path`.
    pub fn count(&self, path: &str) -> usize {
        self.log().requests.iter().filter(|p| *p == path).count()
    }
}

/// An HTTP server on `listener` serving `crl` at `/domain.crl` (a CRL distribution point, RFC
/// 5280 §4.2.1.13), until the test's runtime ends.
pub fn crl_server(listener: tokio::net::TcpListener, crl: Vec<u8>) {
    let app = Router::new().route(
        "/domain.crl",
        get(move || async move { ([(header::CONTENT_TYPE, "application/pkix-crl")], crl) }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A pledge as the factory leaves it: IDevID, key, manufacturer anchor, `pledge.toml`.
pub struct PledgeDir {
    pub dir: tempfile::TempDir,
    pub serial: String,
    pub config: PathBuf,
    pub idevid: Certificate,
}

impl PledgeDir {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// Names of all files in the directory.
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config).expect("config")
    }
}

pub fn pledge_dir(world: &World, serial: &str, format: &str, registrar: Option<&str>) -> PledgeDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let idevid = issue(
        &profile::idevid(serial, Some("masa.example:9443"), None).expect("p"),
        key.public_key_spki(),
        Some(&world.vendor.cert),
        world.vendor.key.as_ref(),
    )
    .expect("idevid");
    let p = |n: &str| dir.path().join(n);
    write_atomic(
        &p("idevid.crt.pem"),
        certs_to_pem(std::slice::from_ref(&idevid)).as_bytes(),
        0o644,
    )
    .expect("write");
    write_atomic(&p("idevid.key.pem"), key.to_pkcs8_pem().as_bytes(), 0o600).expect("write");
    write_atomic(
        &p("manufacturer-ca.crt.pem"),
        certs_to_pem(std::slice::from_ref(&world.vendor.cert)).as_bytes(),
        0o644,
    )
    .expect("write");
    let config = PledgeConfig {
        serial_number: serial.into(),
        idevid_cert: "idevid.crt.pem".into(),
        idevid_key: Some("idevid.key.pem".into()),
        tpm: None,
        iak_cert: None,
        manufacturer_anchor: "manufacturer-ca.crt.pem".into(),
        state_dir: None,
        registrar: registrar.map(str::to_string),
        voucher_format: Some(format.into()),
        transport: None,
        trust_clock: true,
        accept_nonceless_vouchers: false,
    };
    let path = p("pledge.toml");
    std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write");
    PledgeDir {
        dir,
        serial: serial.into(),
        config: path,
        idevid,
    }
}

pub const PLEDGE: &str = env!("CARGO_BIN_EXE_pledge");

fn command(args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(PLEDGE);
    c.args(args)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Run `pledge ARGS` to completion (at most 120 s).
pub async fn pledge(args: &[&str]) -> Output {
    let child = command(args).spawn().expect("spawn pledge");
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("pledge finished in time")
        .expect("pledge output")
}

/// Start `pledge ARGS` in the background, with `env` set.
pub fn spawn(args: &[&str], env: &[(&str, &Path)]) -> tokio::process::Child {
    let mut c = command(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("spawn pledge")
}

/// Send `signal` (e.g. "TERM", "KILL") to a process.
pub fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Wait (at most `limit`) until `cond` holds.
pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// A harness registrar behaving as `behaviour` and a pledge `serial` that `pledge bootstrap`
/// must have enrolled with it (exit 0).
pub async fn bootstrapped(
    world: &Arc<World>,
    behaviour: Behaviour,
    serial: &str,
) -> (Registrar, PledgeDir) {
    let registrar = Registrar::start(world.clone(), behaviour).await;
    let p = pledge_dir(world, serial, "cms", Some(&registrar.url));
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (registrar, p)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The last line of stderr: the pledge's one-line reason on failure.
pub fn reason(o: &Output) -> String {
    stderr(o)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}
