//! `masa serve`: the BRSKI-MASA HTTPS endpoints (RFC 8995 §5.4–§5.8).
//!
//! - `POST /.well-known/brski/requestvoucher`: check the registrar voucher-request (§5.5), apply
//!   the ownership policy, sign the voucher in the format Accept asks for (§5.6), store it with
//!   its audit entry in one committed transaction, then answer.
//! - `POST /.well-known/brski/requestauditlog`: the same checks, then the device's audit log
//!   (§5.8.1), abridged.
//!
//! Every other path is 404. Refusals carry the §5.6 status and a one-line text/plain reason.

use crate::config::{MasaConfig, Ownership};
use crate::db::{Device, DomainRecord};
use crate::error::{MasaError, Refusal};
use crate::media::{BodyEncoding, decode_body, negotiate};
use crate::store::{OwnedIssue, Store};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use brski_common::audit::AuditLog;
use brski_common::brski::masa::{
    CheckedRegistrarRequest, PledgeIdevid, RegistrarRequestError, build_voucher_pinning,
    verify_registrar_voucher_request,
};
use brski_common::brski::paths;
use brski_common::brski::pinning::pinned_certificate;
use brski_common::envelope::{self, EnvelopeError, Format, cose};
use brski_common::keys::{Signer, SoftwareKey};
use brski_common::pki::chain::{ChainError, TimeCheck, TrustPolicy, same_key, subject_string};
use brski_common::pki::ext::domain_id_base64;
use brski_common::voucher::Assertion;
use brski_service::https::{ConnInfo, outcome_logged};
use brski_service::metrics::prometheus_client::metrics::counter::Counter;
use brski_service::metrics::prometheus_client::registry::Registry;
use brski_service::{files, https, metrics, notify};
use der::{Decode, Encode};
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};
use std::path::Path;
use std::sync::Arc;
use time::OffsetDateTime;
use tracing::{Instrument, field};
use x509_cert::Certificate;

/// Largest request body accepted (a registrar voucher-request with its chains is a few KiB).
const MAX_BODY: usize = 256 * 1024;

/// What the handlers share.
pub struct App {
    /// Devices, ownership and the audit log (SQLite with group-committed voucher
    /// transactions, or PostgreSQL shared with other instances).
    store: Store,
    vendor_policy: TrustPolicy,
    signer: SoftwareKey,
    /// The voucher signer's certificate and the vendor CA, carried in every voucher.
    signer_chain: Vec<Certificate>,
    ownership: Ownership,
    nonceless_lifetime: time::Duration,
    /// `require-client-cert`: a request without a TLS client certificate is refused.
    require_client_cert: bool,
    /// CRLs of registrar chains (RFC 8995 §5.5.3).
    revocation: brski_service::crl::Revocation,
    metrics: VoucherMetrics,
}

/// Voucher requests (RFC 8995 §5.5) and what became of them.
#[derive(Clone, Debug, Default)]
struct VoucherMetrics {
    requests: Counter,
    issued: Counter,
    /// Label `reason`: [`Refusal::outcome`], or `body-unreadable`.
    refused: metrics::Counter1,
}

impl VoucherMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "masa_voucher_requests",
            "Voucher requests received (RFC 8995 section 5.5)",
            m.requests.clone(),
        );
        registry.register(
            "masa_vouchers_issued",
            "Vouchers issued (RFC 8995 section 5.6)",
            m.issued.clone(),
        );
        registry.register(
            "masa_voucher_refusals",
            "Voucher requests refused, by reason",
            m.refused.clone(),
        );
        m
    }

    fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&[("reason", reason)]).inc();
    }
}

/// A registrar voucher-request that passed every check that does not depend on ownership.
struct Accepted {
    encoding: BodyEncoding,
    checked: CheckedRegistrarRequest,
    device: Device,
    /// The domain's certificate in a nonced voucher: the registrar's issuing CA when carried
    /// (RFC 8995 §5.5.2, cBRSKI §8.2).
    domain_cert: Certificate,
    /// base64 domainID of `domain_cert` (RFC 8995 §5.8.2).
    domain_id: String,
    /// No nonce, or no prior-signed pledge request (RFC 8995 §7.3).
    nonceless: bool,
}

/// The first certificate of the file that `key` of masa.toml names; errors name the key, in
/// the words of `masa check-config`.
fn first_cert(key: &str, path: &Path) -> Result<Certificate, MasaError> {
    files::read_certs(path)
        .map_err(|e| MasaError::Invalid(format!("{key}: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| MasaError::Invalid(format!("{key}: {}: no certificate", path.display())))
}

/// The private key in the file that `key` of masa.toml names; errors name the key.
fn key_file(key: &str, path: &Path) -> Result<SoftwareKey, MasaError> {
    files::read_key(path).map_err(|e| MasaError::Invalid(format!("{key}: {e}")))
}

/// `{what}-key` must be the key of `{what}-cert`, in the words of `masa check-config`.
fn check_key_matches(
    cert: &Certificate,
    key: &SoftwareKey,
    what: &str,
    files: (&Path, &Path),
) -> Result<(), MasaError> {
    let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
    if spki != key.public_key_spki() {
        let (cert_file, key_file) = files;
        return Err(MasaError::Invalid(format!(
            "{what}-key: {} is not the key of {}",
            key_file.display(),
            cert_file.display()
        )));
    }
    Ok(())
}

/// `masa serve`: run until SIGTERM/SIGINT, then drain in-flight requests and close the database.
pub async fn serve(config: &Path) -> Result<(), MasaError> {
    let cfg = MasaConfig::load(config)?;
    let vendor_ca = first_cert("vendor-ca-cert", &cfg.vendor_ca_cert)?;
    let signer_cert = first_cert("signer-cert", &cfg.signer_cert)?;
    let signer = key_file("signer-key", &cfg.signer_key)?;
    check_key_matches(
        &signer_cert,
        &signer,
        "signer",
        (&cfg.signer_cert, &cfg.signer_key),
    )?;
    let tls_chain = files::read_certs(&cfg.tls_cert)
        .map_err(|e| MasaError::Invalid(format!("tls-cert: {e}")))?;
    let tls_key = key_file("tls-key", &cfg.tls_key)?;
    if let Some(leaf) = tls_chain.first() {
        check_key_matches(leaf, &tls_key, "tls", (&cfg.tls_cert, &cfg.tls_key))?;
    }
    let tls_der = tls_chain
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()?;
    // RFC 8995 §5.4: a client certificate is always asked for (any chain: registrars' CAs are
    // not known here), and demanded with `require-client-cert`; its key must be the signer of
    // the voucher-request (see `App::accept`).
    let tls = brski_common::tls::server_config_any_client(
        brski_common::tls::certified_key(&tls_der, Arc::new(tls_key))?,
        cfg.require_client_cert,
    )?;
    let mut registry = metrics::registry();
    let conns = metrics::ConnMetrics::register(&mut registry);
    let db_metrics = metrics::DbMetrics::register(&mut registry);
    let voucher_metrics = VoucherMetrics::register(&mut registry);
    let store = Store::open_metered(&cfg, true, db_metrics).await?;
    tracing::info!(database = cfg.database.kind(), "state opened");
    let app = Arc::new(App {
        store,
        // The pledge's IDevID is checked without the clock: an IDevID's expiry must not stop a
        // device from being onboarded (RFC 8995 §2.6.2), and the MASA also requires the exact
        // IDevID it minted for the serial.
        vendor_policy: TrustPolicy::new(vec![vendor_ca.clone()]).with_time(TimeCheck::Skip),
        signer,
        signer_chain: vec![signer_cert, vendor_ca],
        ownership: cfg.ownership,
        nonceless_lifetime: cfg.nonceless_lifetime(),
        require_client_cert: cfg.require_client_cert,
        revocation: brski_service::crl::Revocation::default(),
        metrics: voucher_metrics,
    });
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    // Bound before the HTTPS listener, so that its address is logged once that one answers.
    if let Some(addr) = cfg.metrics_addr().map_err(MasaError::Invalid)? {
        let bound = metrics::spawn(addr, Arc::new(registry), None, async {
            let _ = metrics_stopped.await;
        })
        .await
        .map_err(|source| MasaError::Bind { addr, source })?;
        tracing::info!(metrics_addr = %bound, "serving metrics on /metrics");
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| MasaError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    tracing::info!(%addr, ownership = cfg.ownership.as_str(), masa_url = %cfg.masa_url, "listening");
    notify::ready(&format!("listening on {addr}"));
    notify::spawn_watchdog();
    let shutdown = async {
        brski_service::shutdown_signal().await;
        notify::stopping();
    };
    https::serve_metered(
        listener,
        Arc::new(tls),
        router(app),
        shutdown,
        https::Limits::default(),
        conns,
    )
    .await;
    let _ = stop_metrics.send(());
    tracing::info!("database closed; stopped");
    Ok(())
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(paths::REQUEST_VOUCHER, post(request_voucher))
        .route(paths::REQUEST_AUDIT_LOG, post(request_audit_log))
        .fallback(not_found)
        .with_state(app)
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found".into())
}

fn text(status: StatusCode, reason: String) -> Response {
    (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        format!("{reason}\n"),
    )
        .into_response()
}

fn refuse(refusal: &Refusal) -> Response {
    let status =
        StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match refusal {
        Refusal::Internal(detail) | Refusal::Unavailable(detail) => {
            tracing::error!(
                outcome = refusal.outcome(),
                status = status.as_u16(),
                detail,
                "failed"
            );
        }
        _ => tracing::info!(
            outcome = refusal.outcome(),
            status = status.as_u16(),
            reason = %refusal.reason(),
            "refused"
        ),
    }
    let mut response = text(status, refusal.reason());
    if let Refusal::Unavailable(_) = refusal {
        // RFC 9110 §10.2.3: when to try again; a database back within seconds is the usual case.
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_UNAVAILABLE),
        );
    }
    outcome_logged(response, status)
}

/// Retry-After (seconds) of a 503 while the database is unavailable.
const RETRY_AFTER_UNAVAILABLE: &str = "5";

fn header(headers: &HeaderMap, name: http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn request_span(req: &Request, endpoint: &'static str) -> tracing::Span {
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.peer.to_string())
        .unwrap_or_default();
    tracing::info_span!(
        "brski",
        endpoint,
        peer,
        serial = field::Empty,
        domain_id = field::Empty
    )
}

/// The request body, or a 413/400 response.
async fn body_bytes(req: Request) -> Result<(HeaderMap, Vec<u8>), Response> {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => Ok((parts.headers, b.to_vec())),
        Err(e) => {
            tracing::info!(outcome = "body-unreadable", error = %e, "refused");
            let status = StatusCode::PAYLOAD_TOO_LARGE;
            Err(outcome_logged(
                text(
                    status,
                    format!("request body unreadable or larger than {MAX_BODY} bytes"),
                ),
                status,
            ))
        }
    }
}

fn request_format(headers: &HeaderMap) -> Result<Format, Refusal> {
    let content_type = header(headers, CONTENT_TYPE).unwrap_or_default();
    Format::from_media_type(&content_type).ok_or(Refusal::UnsupportedMediaType(content_type))
}

/// The TLS client's end-entity certificate (DER), when it presented one.
fn client_leaf(req: &Request) -> Option<Vec<u8>> {
    req.extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.peer_certs.first().cloned())
}

async fn request_voucher(State(app): State<Arc<App>>, req: Request) -> Response {
    let span = request_span(&req, "requestvoucher");
    let client = client_leaf(&req);
    async move {
        app.metrics.requests.inc();
        let (headers, body) = match body_bytes(req).await {
            Ok(b) => b,
            Err(resp) => {
                app.metrics.refused("body-unreadable");
                return resp;
            }
        };
        match app.voucher(&headers, &body, client.as_deref()).await {
            Ok((format, encoding, bytes)) => {
                app.metrics.issued.inc();
                let mut resp = (
                    StatusCode::OK,
                    [(CONTENT_TYPE, HeaderValue::from_static(format.media_type()))],
                    Body::from(bytes),
                )
                    .into_response();
                if encoding == BodyEncoding::Base64 {
                    resp.headers_mut().insert(
                        http::HeaderName::from_static("content-transfer-encoding"),
                        HeaderValue::from_static("base64"),
                    );
                }
                // `voucher` logged "voucher issued".
                outcome_logged(resp, StatusCode::OK)
            }
            Err(refusal) => {
                app.metrics.refused(refusal.outcome());
                refuse(&refusal)
            }
        }
    }
    .instrument(span)
    .await
}

async fn request_audit_log(State(app): State<Arc<App>>, req: Request) -> Response {
    let span = request_span(&req, "requestauditlog");
    let client = client_leaf(&req);
    async move {
        let (headers, body) = match body_bytes(req).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        match app.audit_log(&headers, &body, client.as_deref()).await {
            // `audit_log` logged "audit log sent".
            Ok(json) => outcome_logged(
                (
                    StatusCode::OK,
                    [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    json,
                )
                    .into_response(),
                StatusCode::OK,
            ),
            Err(refusal) => refuse(&refusal),
        }
    }
    .instrument(span)
    .await
}

fn internal(what: &str) -> impl FnOnce(String) -> Refusal + '_ {
    move |e| Refusal::Internal(format!("{what}: {e}"))
}

impl App {
    /// The checks both endpoints make (RFC 8995 §5.5): the request verifies, its device was
    /// minted here with the IDevID it presents, and a nonceless request is only taken under the
    /// claimed policy (§5.5.4, §7.4).
    async fn accept(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        client: Option<&[u8]>,
    ) -> Result<Accepted, Refusal> {
        let format = request_format(headers)?;
        let (raw, encoding) = decode_body(format, body);
        let signed = verify_registrar_voucher_request(format, &raw, TimeCheck::Now)?;
        self.authenticate(client, signed.registrar_certificate())?;
        let serial = signed.serial_number().to_owned();
        tracing::Span::current().record("serial", serial.as_str());
        let device = self
            .store
            .device(&serial)
            .await?
            .ok_or_else(|| Refusal::UnknownDevice(serial.clone()))?;
        // 8995 §5.5.5: the pledge's request is verified with the IDevID this MASA minted for
        // the device, and must carry exactly that certificate.
        let known = Certificate::from_der(&device.idevid_cert)
            .map_err(|e| internal("stored IDevID")(e.to_string()))?;
        let idevid = PledgeIdevid::Known {
            idevid: &known,
            manufacturer: &self.vendor_policy,
        };
        let checked = signed
            .check_pledge_request(idevid, false)
            .map_err(|e| match e {
                RegistrarRequestError::NotTheKnownIdevid => Refusal::ForeignIdevid(serial.clone()),
                other => other.into(),
            })?;
        if checked
            .request
            .idevid_issuer
            .as_ref()
            .is_some_and(|i| *i != device.idevid_issuer)
        {
            return Err(Refusal::ForeignIdevid(serial));
        }
        let nonceless = checked.nonce.is_none() || checked.idevid.is_none();
        if nonceless && self.ownership != Ownership::Claimed {
            return Err(if checked.idevid.is_none() {
                Refusal::Request(RegistrarRequestError::NoPriorRequest)
            } else {
                Refusal::NoncelessNotAllowed
            });
        }
        let domain_cert = checked.domain_cert().cloned().ok_or(Refusal::Request(
            RegistrarRequestError::Signature(EnvelopeError::SignerNotFound),
        ))?;
        let domain_id = domain_id_of(&domain_cert)?;
        tracing::Span::current().record("domain_id", domain_id.as_str());
        tracing::info!(
            outcome = "verified",
            request_format = format_name(format),
            encoding = encoding.as_str(),
            proximity = checked.proximity,
            nonceless,
            "registrar voucher-request verified"
        );
        Ok(Accepted {
            encoding,
            checked,
            device,
            domain_cert,
            domain_id,
            nonceless,
        })
    }

    /// requestvoucher: the signed voucher in the negotiated format and the request's encoding.
    async fn voucher(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        client: Option<&[u8]>,
    ) -> Result<(Format, BodyEncoding, Vec<u8>), Refusal> {
        let request = request_format(headers)?;
        // Several Accept fields are one comma-separated list (RFC 9110 §5.3).
        let accept = headers
            .get_all(ACCEPT)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .reduce(|a, b| format!("{a}, {b}"));
        let answer = negotiate(accept.as_deref(), request)
            .ok_or_else(|| Refusal::NotAcceptable(accept.clone().unwrap_or_default()))?;
        let a = self.accept(headers, body, client).await?;
        self.revocation
            .check_chain(
                &a.checked.registrar_chain,
                false,
                time::OffsetDateTime::now_utc(),
            )
            .await?;
        let serial = a.checked.serial_number.as_str();

        let proven = if a.checked.proximity {
            Assertion::Proximity
        } else {
            Assertion::Logged
        };
        let assertion = match self.ownership {
            Ownership::LogOnly | Ownership::FirstOwner => proven,
            Ownership::Claimed => Assertion::Verified,
        };
        let chain = &a.checked.registrar_chain;
        let now = OffsetDateTime::now_utc();
        // The lifetime is range-checked at load; the sum is still checked, never a panic.
        let expires_on = match a.nonceless {
            false => None,
            true => {
                let limit = now.checked_add(self.nonceless_lifetime).ok_or_else(|| {
                    internal("expires-on")("now + nonceless-voucher-lifetime overflows".into())
                })?;
                Some(
                    chain
                        .first()
                        .and_then(not_after)
                        .map_or(limit, |registrar_end| limit.min(registrar_end)),
                )
            }
        };
        // cBRSKI §8.2: a nonced voucher pins the most specific CA, a nonceless one the highest
        // CA the claim allows; §8.3: the registrar's key when the pledge named it by its key.
        let nonced = a.checked.nonce.is_some();
        let ceiling = match (nonced, self.ownership) {
            (false, Ownership::Claimed) => self.claimed_ca(serial).await?,
            _ => None,
        };
        let pin = a
            .checked
            .pin(ceiling.as_ref())
            .map_err(|e| internal("pin")(e.to_string()))?;
        let domain_cert = pinned_certificate(chain, nonced, ceiling.as_ref())
            .unwrap_or(&a.domain_cert)
            .clone();
        let domain_id = if domain_cert == a.domain_cert {
            a.domain_id.clone()
        } else {
            domain_id_of(&domain_cert)?
        };
        let voucher = build_voucher_pinning(&a.checked, assertion, &pin, now, expires_on);
        let payload = voucher
            .to_payload(answer)
            .map_err(|e| internal("voucher encoding")(e.to_string()))?;
        // Signed before the write (signing is the slow part); the voucher leaves only if the
        // ownership check below passes and its audit entry is committed.
        let signed = match answer {
            // cBRSKI §9.2.3: the whole chain in the unprotected x5bag, for the registrar; the
            // signer's certificate also protected, for a pledge that stores only the vendor CA
            // once the registrar has removed the unprotected certificates (§6.8).
            Format::Cose => cose::sign_with_x5chain(
                &payload,
                &self.signer,
                self.signer_chain.get(..1).unwrap_or_default(),
                &self.signer_chain,
            ),
            _ => envelope::sign(answer, &payload, &self.signer, &self.signer_chain),
        }
        .map_err(|e| internal("voucher signing")(e.to_string()))?;
        let created_on = voucher
            .created_on
            .as_ref()
            .map(|d| d.as_str().to_string())
            .unwrap_or_default();
        let expires_text = voucher.expires_on.as_ref().map(|d| d.as_str().to_string());
        let nonce = a
            .checked
            .nonce
            .as_ref()
            .map(|n| n.json_string().into_owned());
        let record = OwnedIssue {
            ownership: self.ownership,
            serial: serial.to_string(),
            registrar_chain: chain.clone(),
            owner_if_first: DomainRecord {
                domain_id,
                cert: domain_cert
                    .to_der()
                    .map_err(|e| internal("pin encoding")(e.to_string()))?,
            },
            nonceless_pin: (!nonced).then_some(domain_cert),
            idevid_issuer: a.device.idevid_issuer.clone(),
            created_on,
            expires_on: expires_text,
            format: format_name(answer),
            nonce,
            assertion: assertion.as_str(),
            voucher: signed.clone(),
        };
        // RFC 8995 §5.6: the ownership check, the voucher and its audit entry are one
        // transaction (group-committed, synchronous=FULL) that commits before the voucher leaves.
        let owner_recorded = self.store.issue(record).await??;
        if owner_recorded {
            tracing::info!(outcome = "owner-recorded", "first owner of the device");
        }
        tracing::info!(
            outcome = "voucher",
            assertion = assertion.as_str(),
            format = format_name(answer),
            encoding = a.encoding.as_str(),
            nonceless = a.nonceless,
            "voucher issued"
        );
        Ok((answer, a.encoding, a.encoding.encode(signed)))
    }

    /// requestauditlog (RFC 8995 §5.8.1): the abridged log, for a domain that has received a
    /// voucher for the device; 404 for others (never-owner).
    async fn audit_log(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        client: Option<&[u8]>,
    ) -> Result<Vec<u8>, Refusal> {
        let a = self.accept(headers, body, client).await?;
        self.revocation
            .check_chain(
                &a.checked.registrar_chain,
                false,
                time::OffsetDateTime::now_utc(),
            )
            .await?;
        let serial = a.checked.serial_number.as_str();
        let events = self.store.audit_events(serial).await?;
        // The domain is any certificate of its chain that a voucher may have pinned (a
        // nonceless voucher pins a higher CA than a nonced one, cBRSKI §8.2).
        let ours: Vec<String> = a
            .checked
            .registrar_chain
            .iter()
            .filter_map(|c| domain_id_base64(c).ok())
            .collect();
        if !events.iter().any(|e| ours.contains(&e.domain_id)) {
            return Err(Refusal::NeverOwner(serial.to_string()));
        }
        let json = AuditLog::new(events)
            .abridge()
            .to_json()
            .map_err(|e| internal("audit log")(e.to_string()))?;
        tracing::info!(outcome = "audit-log", "audit log sent");
        Ok(json)
    }
}

impl App {
    /// RFC 8995 §5.4, §5.5.4: the MASA authenticates the registrar by its TLS client
    /// certificate, which must carry the key that signed the voucher-request. Required with
    /// `require-client-cert`; without it a certificate is optional, but one that is presented
    /// must still be the signer's (a client showing another identity than it signs with is
    /// refused either way).
    fn authenticate(
        &self,
        client: Option<&[u8]>,
        signer: Option<&Certificate>,
    ) -> Result<(), Refusal> {
        let Some(client) = client else {
            return if self.require_client_cert {
                Err(Refusal::ClientCertificateRequired)
            } else {
                Ok(())
            };
        };
        let client = Certificate::from_der(client)
            .map_err(|e| internal("TLS client certificate")(e.to_string()))?;
        match signer {
            Some(signer) if same_key(&client, signer) => Ok(()),
            _ => Err(Refusal::ClientCertificateNotSigner(subject_string(&client))),
        }
    }
}

impl App {
    /// The CA recorded by `masa claim` for `serial`, if any (the transaction checks it again).
    async fn claimed_ca(&self, serial: &str) -> Result<Option<Certificate>, Refusal> {
        let Some(claim) = self.store.claim(serial).await? else {
            return Ok(None);
        };
        Certificate::from_der(&claim.cert)
            .map(Some)
            .map_err(|e| internal("stored claim")(e.to_string()))
    }
}

/// base64 domainID of `cert` (RFC 8995 §5.8.2); a certificate it cannot be computed for is a
/// malformed registrar chain.
fn domain_id_of(cert: &Certificate) -> Result<String, Refusal> {
    domain_id_base64(cert).map_err(|e| {
        Refusal::Request(RegistrarRequestError::RegistrarCertificate(
            ChainError::Malformed {
                subject: subject_string(cert),
                reason: e.to_string(),
            },
        ))
    })
}

/// notAfter of `cert`; `None` when it does not fit an `OffsetDateTime`.
fn not_after(cert: &Certificate) -> Option<OffsetDateTime> {
    let d = cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration();
    OffsetDateTime::from_unix_timestamp(i64::try_from(d.as_secs()).ok()?).ok()
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Cms => "cms",
        Format::Jws => "jws",
        Format::Cose => "cose",
    }
}
