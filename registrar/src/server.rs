//! `registrar serve`: the HTTPS server for pledges (BRSKI-EST, RFC 8995 §5) and EST clients
//! (RFC 7030). Every resource but `/cacerts` (RFC 7030 §4.1.1) requires a client certificate:
//! an IDevID of a configured manufacturer or an LDevID of the domain CA.

use crate::config::RegistrarConfig;
use crate::db;
use crate::masa_client::MasaClient;
use crate::metrics::RegistrarMetrics;
use crate::steps::{Peer, Refusal};
use crate::store::Store;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use brski_common::answer::Class;
use brski_common::brski::paths;
use brski_common::keys::{Signer, SoftwareKey};
use brski_common::oid::ID_KP_CLIENT_AUTH;
use brski_common::pki::chain::{TimeCheck, TrustPolicy, chains_to, signed_by, validate_chain};
use brski_service::files::{read_certs, read_key};
use brski_service::https::outcome_logged;
use brski_service::store::{Db, StoreError};
use der::{Decode, Encode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use x509_cert::Certificate;

/// One configured manufacturer.
#[derive(Debug)]
pub struct ManufacturerAnchors {
    pub anchors: Vec<Certificate>,
    /// MASA URL for IDevIDs without the MASA URL extension (RFC 8995 §2.8).
    pub masa_url: Option<String>,
    /// `masa_url` also replaces the IDevID's MASA URL extension (RFC 8995 §5.4).
    pub masa_url_overrides: bool,
    /// This manufacturer's IDevIDs: its anchors, expiry ignored when configured (§2.6.2).
    pub idevid_policy: TrustPolicy,
    /// Vouchers from this manufacturer's MASA: `voucher-ca` (default `ca`) with time checks.
    pub voucher_policy: TrustPolicy,
    /// Where its IDevIDs carry the serial number (RFC 8995 §2.3.1).
    pub serial_number_from: brski_common::pki::ext::SerialNumberSource,
    /// Attested enrollment of its pledges (SPEC §9).
    pub attestation: crate::attestation::AttestationMode,
    /// The PCRs its pledges quote and the accepted values (empty: no quote asked).
    pub pcr_policy: brski_common::attest::enroll::PcrPolicy,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Registrar {
    pub config: RegistrarConfig,
    /// The state: an SQLite file or a PostgreSQL database shared by several instances.
    pub store: Store,
    pub masa: MasaClient,
    /// DER of the registrar's TLS certificate: what `proximity-registrar-cert` must equal.
    pub registrar_cert_der: Vec<u8>,
    /// Registrar certificate, then the domain CA: carried in registrar voucher-requests
    /// (RFC 8995 §5.5) and presented in TLS.
    pub registrar_chain: Vec<Certificate>,
    pub registrar_key: Arc<SoftwareKey>,
    pub domain_ca: Certificate,
    pub domain_ca_key: SoftwareKey,
    pub manufacturers: Vec<ManufacturerAnchors>,
    /// IDevIDs: every manufacturer's anchors, expiry ignored when any manufacturer allows it
    /// (RFC 8995 §2.6.2; notBefore always checked). A voucher request is then held to its own
    /// manufacturer's [`ManufacturerAnchors::idevid_policy`].
    pub idevid_policy: TrustPolicy,
    /// LDevIDs: the domain CA, with time checks and id-kp-clientAuth.
    pub ldevid_policy: TrustPolicy,
    pub shutting_down: AtomicBool,
    pub metrics: RegistrarMetrics,
    /// The latest CRL of the domain CA ([`crate::crl`]).
    pub crl: crate::crl::CrlCache,
}

/// Why the registrar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    File(#[from] brski_service::files::FileError),
    #[error("{0}")]
    Invalid(String),
    #[error("database {path}: {source}")]
    Database { path: String, source: StoreError },
    #[error("database {0} failed its integrity check")]
    Integrity(String),
    #[error("database: {0}")]
    Postgres(#[from] brski_service::postgres::PgError),
    #[error("MASA client: {0}")]
    MasaClient(#[from] crate::masa_client::ClientError),
    #[error("TLS: {0}")]
    Tls(#[from] brski_common::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The first certificate of the file that `key` of registrar.toml names; errors name the key.
pub(crate) fn first_cert(key: &str, path: &std::path::Path) -> Result<Certificate, StartError> {
    read_certs(path)
        .map_err(|e| StartError::Invalid(format!("{key}: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| StartError::Invalid(format!("{key}: {}: no certificate", path.display())))
}

/// The private key in the file that `key` of registrar.toml names; errors name the key.
pub(crate) fn key_file(key: &str, path: &std::path::Path) -> Result<SoftwareKey, StartError> {
    read_key(path).map_err(|e| StartError::Invalid(format!("{key}: {e}")))
}

pub(crate) fn key_matches(cert: &Certificate, key: &SoftwareKey) -> bool {
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .is_ok_and(|spki| spki == key.public_key_spki())
}

/// Open the database at `path` (creating it and the schema when needed).
pub fn open_db(path: &std::path::Path) -> Result<Db, StartError> {
    let database = |source| StartError::Database {
        path: path.display().to_string(),
        source,
    };
    let db = Db::open(path, db::SCHEMA).map_err(database)?;
    db::migrate(&db).map_err(database)?;
    Ok(db)
}

/// Refuses, in the TLS handshake, an LDevID this registrar revoked or superseded (RFC 7030
/// §4.2.2; `registrar certs revoke`): one read of the certificate's row by primary key. A
/// renewed LDevID whose successor has not been used yet passes; the handlers then let it
/// renew and nothing else.
#[derive(Debug)]
pub struct LdevidRefusal {
    store: Store,
    /// The domain CA's subject: only certificates it issued are looked up (an IDevID is
    /// not, so a database that is away refuses no IDevID).
    domain_ca_subject: x509_cert::name::Name,
}

/// How long the handshake waits for PostgreSQL's answer about an LDevID.
const LDEVID_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl LdevidRefusal {
    /// The LDevID's state. The TLS and DTLS verifiers are synchronous: on PostgreSQL the
    /// worker thread running the handshake blocks for the query (the runtime moves its other
    /// tasks elsewhere), so every instance sees a revocation at once.
    fn status(&self, serial: &str, der: &[u8]) -> Result<db::LdevidStatus, String> {
        match &self.store {
            Store::Sqlite { db, .. } => {
                db::ldevid_status(db, serial, der).map_err(|e| e.to_string())
            }
            Store::Postgres(_) => {
                let handle = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
                if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
                    return Err("no multi-threaded runtime to wait for the database on".into());
                }
                let lookup = self.store.ldevid_status(serial, der);
                tokio::task::block_in_place(|| {
                    handle.block_on(tokio::time::timeout(LDEVID_LOOKUP_TIMEOUT, lookup))
                })
                .map_err(|_| "the database did not answer in time".to_string())?
                .map_err(|e| e.to_string())
            }
        }
    }
}

impl brski_common::tls::CertRefusal for LdevidRefusal {
    fn refusal(&self, leaf: &Certificate) -> Option<String> {
        if leaf.tbs_certificate().issuer() != &self.domain_ca_subject {
            return None;
        }
        let der = leaf.to_der().ok()?;
        let serial = crate::steps::est::cert_serial_hex(leaf);
        match self.status(&serial, &der) {
            Ok(db::LdevidStatus::Revoked { reason, .. }) => {
                Some(format!("LDevID {serial} is revoked: {reason}"))
            }
            Ok(db::LdevidStatus::Superseded { .. }) => {
                Some(format!("LDevID {serial} is superseded by one in use"))
            }
            Ok(_) => None,
            // Fail closed: an LDevID whose state cannot be read is not let in.
            Err(e) => Some(format!("LDevID {serial}: its state cannot be read: {e}")),
        }
    }
}

/// The MASA client (RFC 8995 §5.4): the registrar's certificate and key as TLS client
/// identity unless a `[[masa]]` names another, `masa-ca` (or that MASA's `ca`) as TLS anchors.
fn masa_client_for(
    config: &RegistrarConfig,
    registrar_key: Arc<SoftwareKey>,
) -> Result<MasaClient, StartError> {
    use crate::masa_client::{ClientIdentity, EndpointSettings};
    let identity = |cert: &std::path::Path,
                    key_path: &std::path::Path,
                    key: Arc<dyn Signer>|
     -> Result<ClientIdentity, StartError> {
        let chain = read_certs(cert)?
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StartError::Invalid(format!("{}: {e}", cert.display())))?;
        let mut pem = std::fs::read(cert)
            .map_err(|e| StartError::Invalid(format!("{}: {e}", cert.display())))?;
        pem.push(b'\n');
        pem.extend(
            std::fs::read(key_path)
                .map_err(|e| StartError::Invalid(format!("{}: {e}", key_path.display())))?,
        );
        Ok(ClientIdentity { chain, key, pem })
    };
    let own_key: Arc<dyn Signer> = registrar_key;
    let own = identity(&config.registrar_cert, &config.registrar_key, own_key)?;
    // The registrar certificate alone would not chain at the MASA: carry the domain CA too.
    let own = ClientIdentity {
        chain: {
            let mut c = own.chain;
            c.push(
                first_cert("domain-ca-cert", &config.domain_ca_cert)?
                    .to_der()
                    .map_err(|e| StartError::Invalid(format!("domain CA: {e}")))?,
            );
            c
        },
        ..own
    };
    let masa_ca = match &config.masa_ca {
        Some(p) => read_certs(p)?,
        None => Vec::new(),
    };
    let default = EndpointSettings {
        anchors: masa_ca.clone(),
        client: Some(own.clone()),
        basic: None,
    };
    let mut per_masa = Vec::new();
    for m in &config.masas {
        let base = brski_common::pki::ext::masa_base_uri(&m.url)
            .map_err(|e| StartError::Invalid(format!("[[masa]] url: {e}")))?;
        let client = match (&m.client_cert, &m.client_key) {
            (Some(cert), Some(key)) => {
                let signer: Arc<dyn Signer> = Arc::new(read_key(key)?);
                identity(cert, key, signer)?
            }
            _ => own.clone(),
        };
        let anchors = match &m.ca {
            Some(p) => read_certs(p)?,
            None => masa_ca.clone(),
        };
        let basic = m.username.clone().zip(m.password.clone());
        per_masa.push((
            base,
            EndpointSettings {
                anchors,
                client: Some(client),
                basic,
            },
        ));
    }
    Ok(MasaClient::new(
        &default,
        &per_masa,
        Duration::from_secs(u64::from(config.masa_timeout)),
    )?)
}

impl Registrar {
    /// Load keys, certificates and anchors named by `config`, open the database and build the
    /// MASA client.
    pub async fn load(config: RegistrarConfig) -> Result<Self, StartError> {
        let registrar_cert = first_cert("registrar-cert", &config.registrar_cert)?;
        let registrar_key = Arc::new(key_file("registrar-key", &config.registrar_key)?);
        let domain_ca = first_cert("domain-ca-cert", &config.domain_ca_cert)?;
        let domain_ca_key = key_file("domain-ca-key", &config.domain_ca_key)?;
        if !key_matches(&registrar_cert, &registrar_key) {
            return Err(StartError::Invalid(format!(
                "{} is not the key of {}",
                config.registrar_key.display(),
                config.registrar_cert.display()
            )));
        }
        if !key_matches(&domain_ca, &domain_ca_key) {
            return Err(StartError::Invalid(format!(
                "{} is not the key of {}",
                config.domain_ca_key.display(),
                config.domain_ca_cert.display()
            )));
        }
        if !signed_by(&registrar_cert, &domain_ca) {
            return Err(StartError::Invalid(format!(
                "{} is not issued by the domain CA {}",
                config.registrar_cert.display(),
                config.domain_ca_cert.display()
            )));
        }
        let registrar_cert_der = registrar_cert
            .to_der()
            .map_err(|e| StartError::Invalid(format!("registrar certificate: {e}")))?;
        let idevid_time = |allow_expired: bool| {
            if allow_expired {
                TimeCheck::IgnoreExpiry
            } else {
                TimeCheck::Now
            }
        };
        let mut manufacturers = Vec::new();
        for m in &config.manufacturers {
            let anchors = read_certs(&m.ca)?;
            let voucher_anchors = match &m.voucher_ca {
                Some(p) => read_certs(p)?,
                None => anchors.clone(),
            };
            let allow_expired = m
                .allow_expired_idevid
                .unwrap_or(config.allow_expired_idevid);
            let pcr_policy = match &m.pcr_reference {
                Some(p) => crate::attestation::load_pcr_policy(p).map_err(StartError::Invalid)?,
                None => Default::default(),
            };
            manufacturers.push(ManufacturerAnchors {
                idevid_policy: TrustPolicy::new(anchors.clone())
                    .with_time(idevid_time(allow_expired)),
                voucher_policy: TrustPolicy::new(voucher_anchors),
                anchors,
                masa_url: m.masa_url.clone(),
                masa_url_overrides: m.masa_url_overrides,
                serial_number_from: m.serial_number_from,
                attestation: m.attestation,
                pcr_policy,
            });
        }
        let all_anchors: Vec<Certificate> = manufacturers
            .iter()
            .flat_map(|m| m.anchors.iter().cloned())
            .collect();
        let any_expired_allowed = manufacturers
            .iter()
            .any(|m| m.idevid_policy.time == TimeCheck::IgnoreExpiry);
        let metrics = RegistrarMetrics::new();
        let masa = masa_client_for(&config, registrar_key.clone())?
            .with_latency(metrics.masa_latency.clone());
        let store = Store::open_metered(&config, metrics.db.clone()).await?;
        tracing::info!(database = config.database.kind(), "state opened");
        Ok(Self {
            idevid_policy: TrustPolicy::new(all_anchors)
                .with_time(idevid_time(any_expired_allowed)),
            ldevid_policy: TrustPolicy::new(vec![domain_ca.clone()])
                .with_required_eku(ID_KP_CLIENT_AUTH),
            registrar_chain: vec![registrar_cert, domain_ca.clone()],
            registrar_cert_der,
            registrar_key,
            domain_ca,
            domain_ca_key,
            manufacturers,
            masa,
            store,
            config,
            shutting_down: AtomicBool::new(false),
            metrics,
            crl: crate::crl::CrlCache::default(),
        })
    }

    /// The domain CA's current CRL (DER), built from the database when it has changed.
    pub async fn current_crl(&self) -> Result<axum::body::Bytes, crate::crl::CrlFault> {
        let validity = time::Duration::hours(i64::from(self.config.crl_validity_hours));
        self.crl
            .current(&self.store, &self.domain_ca, &self.domain_ca_key, validity)
            .await
    }

    /// The TLS and DTLS servers' check of LDevIDs.
    fn ldevid_refusal(&self) -> LdevidRefusal {
        LdevidRefusal {
            store: self.store.clone(),
            domain_ca_subject: self.domain_ca.tbs_certificate().subject().clone(),
        }
    }

    /// The TLS server configuration: the registrar chain, and client certificates that are
    /// IDevIDs of a configured manufacturer or LDevIDs of the domain CA and not refused by
    /// [`LdevidRefusal`]. A client certificate is optional in the handshake (RFC 7030
    /// §4.1.1: `/cacerts` without one) and required by every other resource. TLS 1.2 needs
    /// the extended master secret (RFC 7627), so that the `tls-exporter` channel binding is
    /// unique to the connection (RFC 9266 §4.2).
    pub fn tls_config(&self) -> Result<rustls::ServerConfig, StartError> {
        let chain = self
            .registrar_chain
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StartError::Invalid(format!("registrar chain: {e}")))?;
        let signer: Arc<dyn Signer> = self.registrar_key.clone();
        let key = brski_common::tls::certified_key(&chain, signer)?;
        let mut config = brski_common::tls::server_config_with(
            key,
            Some(brski_common::tls::ClientAuth {
                policies: vec![self.idevid_policy.clone(), self.ldevid_policy.clone()],
                optional: true,
                refusal: Some(Arc::new(self.ldevid_refusal())),
            }),
        )?;
        config.require_ems = true;
        Ok(config)
    }

    /// Which kind of certificate the client presented. The answer depends only on the TLS
    /// session, so it is computed on the connection's first request and kept for the others
    /// (as the handshake's own validation, it is not repeated within one connection).
    pub fn classify(&self, peer: &Peer) -> Result<Arc<Client>, Refusal> {
        if let Some(known) = peer.memo.get::<Client>() {
            return Ok(known);
        }
        let client = Arc::new(self.classify_chain(peer)?);
        peer.memo.set(client.clone());
        Ok(client)
    }

    fn classify_chain(&self, peer: &Peer) -> Result<Client, Refusal> {
        let chain = peer
            .certs
            .iter()
            .map(|d| Certificate::from_der(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Refusal::new(Class::BadRequest, format!("TLS client certificate: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(Refusal::new(
                Class::Unauthorized,
                "no TLS client certificate",
            ));
        };
        let pool = chain.get(1..).unwrap_or_default();
        if chains_to(leaf, pool, &self.idevid_policy) {
            return Ok(Client::Idevid { chain });
        }
        match validate_chain(leaf, pool, &self.ldevid_policy) {
            Ok(_) => Ok(Client::Ldevid {
                cert: Box::new(leaf.clone()),
                der: peer.certs.first().cloned().unwrap_or_default(),
            }),
            Err(e) => Err(Refusal::new(
                Class::Forbidden,
                format!("TLS client certificate is neither an IDevID nor an LDevID: {e}"),
            )),
        }
    }

    /// The configured MASA URL of the manufacturer whose anchor is `anchor`.
    pub fn manufacturer_masa_url(&self, anchor: &Certificate) -> Option<&str> {
        self.manufacturer(anchor)
            .and_then(|m| m.masa_url.as_deref())
    }

    /// The serial number of the pledge whose validated IDevID chain (end entity first,
    /// manufacturer anchor last) is `chain`, read where its manufacturer puts it (§2.3.1).
    pub fn serial_of_validated(&self, chain: &[Certificate]) -> Option<String> {
        let source = chain
            .last()
            .and_then(|anchor| self.manufacturer(anchor))
            .map(|m| m.serial_number_from)
            .unwrap_or_default();
        brski_common::pki::ext::serial_number_from(chain.first()?, source)
    }

    /// The serial number of the pledge whose IDevID chain `presented` (end entity first, as
    /// in the TLS handshake, which validated it) is (§2.3.1). When every manufacturer keeps it
    /// in the subject serialNumber that is read directly; otherwise the manufacturer is the one
    /// whose anchors the chain validates to.
    pub fn idevid_serial(&self, presented: &[Certificate]) -> Option<String> {
        use brski_common::pki::ext::{SerialNumberSource, serial_number_from};
        let leaf = presented.first()?;
        if self
            .manufacturers
            .iter()
            .all(|m| m.serial_number_from == SerialNumberSource::SubjectSerialNumber)
        {
            return serial_number_from(leaf, SerialNumberSource::SubjectSerialNumber);
        }
        let m = self.idevid_manufacturer(presented)?;
        serial_number_from(leaf, m.serial_number_from)
    }

    /// The manufacturer of the IDevID chain `presented` when it wants attestation (SPEC §9);
    /// without a chain check when no manufacturer does.
    pub fn attesting_manufacturer(
        &self,
        presented: &[Certificate],
    ) -> Option<&ManufacturerAnchors> {
        let on =
            |m: &&ManufacturerAnchors| m.attestation != crate::attestation::AttestationMode::Off;
        if !self.manufacturers.iter().any(|m| on(&m)) {
            return None;
        }
        self.idevid_manufacturer(presented).filter(on)
    }

    /// The manufacturer whose anchors the IDevID chain `presented` (end entity first)
    /// validates to.
    pub fn idevid_manufacturer(&self, presented: &[Certificate]) -> Option<&ManufacturerAnchors> {
        let leaf = presented.first()?;
        let pool = presented.get(1..).unwrap_or_default();
        self.manufacturers
            .iter()
            .find(|m| chains_to(leaf, pool, &m.idevid_policy))
    }

    /// The manufacturer whose anchor is `anchor` (the last certificate of a validated IDevID
    /// chain).
    pub fn manufacturer(&self, anchor: &Certificate) -> Option<&ManufacturerAnchors> {
        self.manufacturers.iter().find(|m| {
            m.anchors
                .iter()
                .any(|a| brski_common::pki::chain::same_key(a, anchor))
        })
    }
}

/// The authenticated TLS client.
#[derive(Clone, Debug)]
pub enum Client {
    /// An IDevID of a configured manufacturer; `chain` as presented, end entity first.
    Idevid { chain: Vec<Certificate> },
    /// A certificate issued by the domain CA (to be looked up in the database).
    Ldevid {
        cert: Box<Certificate>,
        der: Vec<u8>,
    },
}

/// 503 while shutting down (RFC 8995 §5.6 lets the pledge retry).
async fn refuse_when_stopping(
    State(s): State<Arc<Registrar>>,
    req: Request,
    next: Next,
) -> Response {
    if s.shutting_down.load(Ordering::Acquire) {
        let refusal = Refusal::new(Class::ServiceUnavailable, "registrar is shutting down");
        return crate::http::refusal_response(&refusal);
    }
    next.run(req).await
}

async fn not_found(req: Request) -> Response {
    tracing::info!(
        path = req.uri().path(),
        outcome = "unknown-path",
        "not found"
    );
    let refusal = Refusal::new(Class::NotFound, format!("no resource {}", req.uri().path()));
    outcome_logged(
        crate::http::refusal_response(&refusal),
        StatusCode::NOT_FOUND,
    )
}

/// The routes (RFC 8995 §5, §8.3; RFC 7030 §3.2.2).
pub fn router(state: Arc<Registrar>) -> Router {
    Router::new()
        .route(paths::REQUEST_VOUCHER, post(crate::http::request_voucher))
        .route(
            paths::LEGACY_REQUEST_VOUCHER,
            post(crate::http::request_voucher),
        )
        .route(paths::VOUCHER_STATUS, post(crate::http::voucher_status))
        .route(paths::ENROLL_STATUS, post(crate::http::enroll_status))
        .route(paths::CACERTS, get(crate::http::cacerts))
        .route(paths::CSRATTRS, get(crate::http::csrattrs))
        .route(crate::crl::EST_CRL_PATH, get(crate::http::crl))
        .route(paths::SIMPLE_ENROLL, post(crate::http::simple_enroll))
        .route(paths::SIMPLE_REENROLL, post(crate::http::simple_reenroll))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_when_stopping,
        ))
        .with_state(state)
}

/// The CoAPS server's DTLS identity and client authentication: the same registrar chain and
/// the same client certificate rules as [`Registrar::tls_config`] (so `proximity-registrar-cert`
/// names the DTLS certificate as it names the TLS one).
fn coaps_setup(
    s: &Registrar,
) -> Result<
    (
        brski_service::coaps::Identity,
        brski_common::tls::ClientAuth,
    ),
    StartError,
> {
    let chain = s
        .registrar_chain
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::Invalid(format!("registrar chain: {e}")))?;
    let identity = brski_service::coaps::Identity {
        chain,
        key: brski_service::coaps::IdentityKey::Pkcs8(s.registrar_key.to_pkcs8_der().to_vec()),
    };
    let auth = brski_common::tls::ClientAuth {
        policies: vec![s.idevid_policy.clone(), s.ldevid_policy.clone()],
        optional: true,
        refusal: Some(Arc::new(s.ldevid_refusal())),
    };
    Ok((identity, auth))
}

/// Before each scrape: the pledges waiting for approval, counted in the database (RFC 8995
/// §7.3).
fn pending_pledges_gauge(state: &Arc<Registrar>) -> brski_service::metrics::BeforeScrape {
    let state = Arc::downgrade(state);
    Arc::new(move || {
        let state = state.clone();
        Box::pin(async move {
            let Some(s) = state.upgrade() else { return };
            match s.store.pending_count().await {
                Ok(n) => s.metrics.set_pending_pledges(n),
                Err(e) => tracing::warn!(error = %e, "metrics: pending pledges not counted"),
            }
        })
    })
}

/// Run the HTTPS server and, when `coaps-listen` is set, the CoAPS server, until
/// SIGTERM/SIGINT; then both drain their requests and the database is closed.
pub async fn serve(config: RegistrarConfig) -> Result<(), StartError> {
    let listen = config.listen;
    let coaps_addr = config.coaps_addr().map_err(StartError::Invalid)?;
    let jpy_addr = config.jpy_addr().map_err(StartError::Invalid)?;
    let state = Arc::new(Registrar::load(config).await?);
    let tls = Arc::new(state.tls_config()?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(listen);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_text = match state.config.metrics_addr().map_err(StartError::Invalid)? {
        Some(addr) => {
            let mut stop = stop_rx.clone();
            brski_service::metrics::spawn(
                addr,
                state.metrics.registry.clone(),
                Some(pending_pledges_gauge(&state)),
                async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                },
            )
            .await
            .map_err(|source| StartError::Listen { addr, source })?
            .to_string()
        }
        None => "off".to_string(),
    };
    let crl_text = match state.config.crl_addr().map_err(StartError::Invalid)? {
        Some(addr) => {
            let mut stop = stop_rx.clone();
            let app = Router::new()
                .route(&state.config.crl_path(), get(crate::http::crl))
                .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
                .with_state(state.clone());
            let shutdown = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            brski_service::metrics::spawn_plain(addr, app, shutdown, "crl")
                .await
                .map_err(|source| StartError::Listen { addr, source })?
                .to_string()
        }
        None => "off".to_string(),
    };
    let mut coaps_local = None;
    let mut coaps_task = None;
    if let Some(addr) = coaps_addr {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        coaps_local = Some(socket.local_addr().unwrap_or(addr));
        let jpy = match jpy_addr {
            Some(addr) => Some(
                tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(|source| StartError::Listen { addr, source })?,
            ),
            None => None,
        };
        if let Some(j) = &jpy {
            tracing::info!(jpy = %j.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "JPY listener for stateless join proxies");
        }
        let (identity, auth) = coaps_setup(&state)?;
        let s = state.clone();
        let handler: brski_service::coaps::Handler = Arc::new(move |session, req| {
            let s = s.clone();
            Box::pin(async move { crate::coap::handle(&s, session, req).await })
        });
        let mut stop = stop_rx.clone();
        let conns = state.metrics.conns.clone();
        coaps_task = Some(tokio::spawn(async move {
            brski_service::coaps::serve_jpy_metered(
                socket,
                jpy,
                &identity,
                auth,
                handler,
                brski_service::coaps::Limits::default(),
                conns,
                async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                },
            )
            .await
        }));
    }
    let coaps_text = coaps_local.map_or_else(|| "off".to_string(), |a| a.to_string());
    tracing::info!(listen = %local, coaps = %coaps_text, metrics_addr = %metrics_text, crl_addr = %crl_text, domain = %state.config.domain, accept = state.config.accept.as_str(), "registrar serving");
    brski_service::notify::ready(&format!("serving on {local} (HTTPS), {coaps_text} (CoAPS)"));
    brski_service::notify::spawn_watchdog();
    let app = router(state.clone());
    let stopping = state.clone();
    brski_service::https::serve_metered(
        listener,
        tls,
        app,
        async move {
            brski_service::shutdown_signal().await;
            stopping.shutting_down.store(true, Ordering::Release);
            brski_service::notify::stopping();
            let _ = stop_tx.send(true);
        },
        brski_service::https::Limits::default(),
        state.metrics.conns.clone(),
    )
    .await;
    if let Some(task) = coaps_task {
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "CoAPS server failed"),
            Err(e) => tracing::warn!(error = %e, "CoAPS server task failed"),
            Ok(Ok(())) => {}
        }
    }
    tracing::info!("registrar stopped");
    Ok(())
}
