//! Test harness: a manufacturer (vendor CA, MASA signer, MASA TLS certificate, IDevIDs), an
//! in-test MASA that really checks registrar voucher-requests and signs vouchers
//! (`brski::masa`), the real `registrar` binary started on loopback in a temporary directory,
//! and pledges as reqwest clients over the provisional TLS of RFC 8995 §5.1.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use brski_common::brski::{masa, paths, pledge};
use brski_common::envelope::{self, Format};
use brski_common::est;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::chain::{TimeCheck, TrustPolicy};
use brski_common::pki::{self, CertificateParams, issue, name_from_parts, profile, self_signed};
use brski_common::tls;
use brski_common::voucher::{Assertion, PledgeExpectations};
use brski_service::https_client::{Connection, Target};
use der::{Decode, Encode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use x509_cert::Certificate;

pub fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

pub fn der(cert: &Certificate) -> Vec<u8> {
    cert.to_der().expect("der")
}

pub fn pem(certs: &[Certificate]) -> String {
    brski_service::files::certs_to_pem(certs)
}

/// A free loopback port (bound and released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A key and its certificate.
pub struct Party {
    pub key: Arc<SoftwareKey>,
    pub cert: Certificate,
}

impl Party {
    pub fn der(&self) -> Vec<u8> {
        der(&self.cert)
    }
}

pub fn issued(params: &CertificateParams, issuer: &Party) -> Party {
    let k = key();
    let cert = issue(
        params,
        k.public_key_spki(),
        Some(&issuer.cert),
        &*issuer.key,
    )
    .expect("issue");
    Party {
        key: Arc::new(k),
        cert,
    }
}

/// A manufacturer: its CA, the MASA's voucher signer and TLS certificate.
pub struct Vendor {
    pub ca: Party,
    pub masa_signer: Party,
    pub masa_tls: Party,
}

impl Vendor {
    pub fn new(name: &str) -> Self {
        let k = key();
        let params =
            profile::vendor_ca(name_from_parts(Some(name), Some(name), None).expect("name"))
                .expect("params");
        let ca = Party {
            cert: self_signed(&params, &k).expect("ca"),
            key: Arc::new(k),
        };
        let masa_signer = issued(
            &profile::masa_voucher_signer(
                name_from_parts(Some("MASA voucher signer"), Some(name), None).expect("name"),
            )
            .expect("params"),
            &ca,
        );
        let masa_tls = issued(
            &profile::tls_server(
                &["localhost"],
                &["127.0.0.1".parse().expect("ip"), "::1".parse().expect("ip")],
            )
            .expect("params"),
            &ca,
        );
        Self {
            ca,
            masa_signer,
            masa_tls,
        }
    }

    /// An IDevID for `serial` naming `masa_url` in its MASA URL extension.
    pub fn mint(&self, serial: &str, masa_url: Option<&str>) -> Party {
        issued(
            &profile::idevid(serial, masa_url, None).expect("params"),
            &self.ca,
        )
    }

    /// The manufacturer anchor as pledges use it (time checks on).
    pub fn policy(&self) -> TrustPolicy {
        TrustPolicy::new(vec![self.ca.cert.clone()])
    }

    /// The anchor as the MASA uses it for IDevIDs: expiry ignored (RFC 8995 §2.6.2).
    pub fn idevid_policy(&self) -> TrustPolicy {
        self.policy().with_time(TimeCheck::Skip)
    }

    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("vendor-ca.crt.pem");
        std::fs::write(&path, pem(std::slice::from_ref(&self.ca.cert))).expect("write");
        path
    }
}

/// What the in-test MASA does with a voucher request.
#[derive(Clone, Debug)]
pub enum MasaMode {
    /// Check the request (8995 §5.5) and issue a voucher (8995 §5.6).
    Issue,
    /// Answer this status with this text/plain reason.
    Refuse(u16, &'static str),
    /// Wait, then issue.
    SlowIssue(Duration),
    /// Issue a voucher signed by a key the pledge's manufacturer never certified.
    IssueWithForeignKey,
    /// Answer this status with this reason and `Retry-After` value.
    RefuseRetryAfter(u16, &'static str, &'static str),
    /// Answer 200 with a body of this many zero bytes.
    HugeBody(usize),
    /// Issue the CMS voucher as base64 labelled with this Content-Type.
    IssueBase64As(&'static str),
    /// Issue a voucher without `created-on` (optional in RFC 8366bis §8.4).
    IssueWithoutCreatedOn,
}

pub struct MasaState {
    vendor: Arc<Vendor>,
    pub mode: Mutex<MasaMode>,
    pub calls: AtomicUsize,
    /// The last registrar voucher-request received and its Content-Type.
    pub last_request: Mutex<Option<(String, Vec<u8>)>>,
    /// The TCP peer of every request (to see connection reuse).
    pub peers: Mutex<Vec<SocketAddr>>,
    /// The TLS client certificate (end entity, DER) of every request, if any.
    pub client_certs: Mutex<Vec<Option<Vec<u8>>>>,
    /// The Authorization header of every request, if any.
    pub authorizations: Mutex<Vec<Option<String>>>,
    /// The audit log by serial (RFC 8995 §5.8.1): an event per voucher issued, plus what a
    /// test adds.
    pub audit: Mutex<std::collections::HashMap<String, Vec<brski_common::audit::AuditEvent>>>,
    /// Serials claimed for nonceless vouchers (the MASA's `claimed` policy, RFC 8995 §7.2).
    pub claimed: Mutex<Vec<String>>,
    /// Sign vouchers with this key and chain instead of the vendor's MASA signer.
    pub voucher_signer: Mutex<Option<(Arc<SoftwareKey>, Vec<Certificate>)>>,
    /// Audit-log requests received.
    pub audit_calls: AtomicUsize,
}

/// The in-test MASA.
pub struct TestMasa {
    pub addr: SocketAddr,
    pub state: Arc<MasaState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestMasa {
    /// The MASA URL for IDevIDs (authority form, RFC 8995 §2.3.2).
    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }
    pub fn set_mode(&self, mode: MasaMode) {
        *self.state.mode.lock().expect("lock") = mode;
    }
}

impl Drop for TestMasa {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn text(status: u16, reason: impl std::fmt::Display) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{reason}\n"),
    )
        .into_response()
}

/// The voucher format a MASA answers for an Accept header: the first voucher type named, else
/// (no Accept, or only wildcards) the request's format.
fn answer_format(accept: Option<&str>, request: Format) -> Format {
    accept
        .and_then(|a| a.split(',').find_map(|m| Format::from_media_type(m.trim())))
        .unwrap_or(request)
}

async fn masa_request_voucher(
    State(m): State<Arc<MasaState>>,
    Extension(conn): Extension<brski_service::https::ConnInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    m.calls.fetch_add(1, Ordering::SeqCst);
    m.record(&conn, &headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    *m.last_request.lock().expect("lock") = Some((content_type.clone(), body.to_vec()));
    let mode = m.mode.lock().expect("lock").clone();
    match mode {
        MasaMode::Refuse(status, reason) => return text(status, reason),
        MasaMode::RefuseRetryAfter(status, reason, retry) => {
            let mut r = text(status, reason);
            r.headers_mut()
                .insert(header::RETRY_AFTER, retry.parse().expect("header"));
            return r;
        }
        MasaMode::HugeBody(len) => return huge_body(len),
        MasaMode::SlowIssue(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    let Some(format) = Format::from_media_type(&content_type) else {
        return text(415, "unsupported Content-Type");
    };
    let checked = match m.check(format, &body) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let Some(pin) = checked.domain_cert().cloned() else {
        return text(403, "no certificate to pin");
    };
    let assertion = if checked.proximity {
        Assertion::Proximity
    } else {
        Assertion::Logged
    };
    let now = time::OffsetDateTime::now_utc();
    // RFC 8995 §7.2: a nonceless voucher carries expires-on.
    let expires = checked
        .nonce
        .is_none()
        .then(|| now + time::Duration::hours(1));
    let mut voucher =
        masa::build_voucher(&checked, assertion, &pin, now, expires).expect("voucher");
    if matches!(mode, MasaMode::IssueWithoutCreatedOn) {
        voucher.created_on = None;
    }
    m.audit
        .lock()
        .expect("lock")
        .entry(checked.serial_number.clone())
        .or_default()
        .push(brski_common::audit::AuditEvent {
            date: "2026-01-01T00:00:00Z".into(),
            domain_id: pki::ext::domain_id_base64(&pin).expect("domain id"),
            nonce: checked.nonce.as_ref().map(|n| n.json_string().into_owned()),
            assertion: brski_common::audit::Assertion::from_text(assertion.as_str()),
            truncated: None,
        });
    let out = answer_format(
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
        format,
    );
    let payload = voucher.to_payload(out).expect("payload");
    let signed = if matches!(mode, MasaMode::IssueWithForeignKey) {
        let rogue = Vendor::new("Rogue");
        envelope::sign(
            out,
            &payload,
            &*rogue.masa_signer.key,
            &[rogue.masa_signer.cert.clone(), rogue.ca.cert.clone()],
        )
    } else if let Some((key, chain)) = m.voucher_signer.lock().expect("lock").clone() {
        envelope::sign(out, &payload, &*key, &chain)
    } else {
        envelope::sign(
            out,
            &payload,
            &*m.vendor.masa_signer.key,
            &[m.vendor.masa_signer.cert.clone(), m.vendor.ca.cert.clone()],
        )
    }
    .expect("sign");
    if let MasaMode::IssueBase64As(ct) = mode {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, ct)],
            est::encode_base64_body(&signed),
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, out.media_type())],
        signed,
    )
        .into_response()
}

/// A 200 of `len` zero bytes labelled as a voucher.
fn huge_body(len: usize) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/voucher-cms+json")],
        vec![0u8; len],
    )
        .into_response()
}

impl MasaState {
    fn record(&self, conn: &brski_service::https::ConnInfo, headers: &HeaderMap) {
        self.peers.lock().expect("lock").push(conn.peer);
        self.client_certs
            .lock()
            .expect("lock")
            .push(conn.peer_certs.first().cloned());
        self.authorizations.lock().expect("lock").push(
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        );
    }

    /// Check a registrar voucher-request (8995 §5.5); a claimed serial may come without a
    /// prior-signed request (a nonceless request, §7.2).
    fn check(
        &self,
        format: Format,
        body: &[u8],
    ) -> Result<masa::CheckedRegistrarRequest, Box<Response>> {
        let signed = masa::verify_registrar_voucher_request(format, body, TimeCheck::Now)
            .map_err(|e| Box::new(text(e.status(), e)))?;
        let claimed = self
            .claimed
            .lock()
            .expect("lock")
            .iter()
            .any(|s| s == signed.serial_number());
        let policy = self.vendor.idevid_policy();
        signed
            .check_pledge_request(masa::PledgeIdevid::Manufacturer(&policy), !claimed)
            .map_err(|e| Box::new(text(e.status(), e)))
    }
}

/// `POST /requestauditlog` (RFC 8995 §5.8.1): the same checks, then the serial's log.
async fn masa_request_audit_log(
    State(m): State<Arc<MasaState>>,
    Extension(conn): Extension<brski_service::https::ConnInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    m.audit_calls.fetch_add(1, Ordering::SeqCst);
    m.record(&conn, &headers);
    let format = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_media_type);
    let Some(format) = format else {
        return text(415, "unsupported Content-Type");
    };
    let checked = match m.check(format, &body) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let events = m
        .audit
        .lock()
        .expect("lock")
        .get(&checked.serial_number)
        .cloned()
        .unwrap_or_default();
    let log = brski_common::audit::AuditLog::new(events)
        .to_json()
        .expect("json");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        log,
    )
        .into_response()
}

/// Start the in-test MASA over TLS (its certificate issued by the vendor CA for 127.0.0.1).
pub async fn start_masa(vendor: Arc<Vendor>, mode: MasaMode) -> TestMasa {
    start_masa_with(vendor, mode, None).await
}

/// [`start_masa`], authenticating TLS clients as `client_auth` says.
pub async fn start_masa_with(
    vendor: Arc<Vendor>,
    mode: MasaMode,
    client_auth: Option<tls::ClientAuth>,
) -> TestMasa {
    let state = Arc::new(MasaState {
        vendor: vendor.clone(),
        mode: Mutex::new(mode),
        calls: AtomicUsize::new(0),
        last_request: Mutex::new(None),
        peers: Mutex::new(Vec::new()),
        client_certs: Mutex::new(Vec::new()),
        authorizations: Mutex::new(Vec::new()),
        audit: Mutex::new(std::collections::HashMap::new()),
        claimed: Mutex::new(Vec::new()),
        voucher_signer: Mutex::new(None),
        audit_calls: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route(paths::REQUEST_VOUCHER, post(masa_request_voucher))
        .route(paths::REQUEST_AUDIT_LOG, post(masa_request_audit_log))
        .with_state(state.clone());
    let signer: Arc<dyn Signer> = vendor.masa_tls.key.clone();
    let key = tls::certified_key(&[vendor.masa_tls.der(), der(&vendor.ca.cert)], signer)
        .expect("certified key");
    let config = Arc::new(tls::server_config_with(key, client_auth).expect("server config"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(brski_service::https::serve(listener, config, app, async {
        let _ = stopped.await;
    }));
    TestMasa {
        addr,
        state,
        stop: Some(stop),
    }
}

pub fn registrar_bin() -> &'static str {
    env!("CARGO_BIN_EXE_registrar")
}

/// `registrar init` in `dir` with the vendor CA (and the vendor CA as MASA TLS anchor), with
/// `--accept auto` unless `extra` names another `--accept` (`pending` is init's default,
/// RFC 8995 §7.3).
pub async fn init_registrar(dir: &Path, vendor_ca: &Path, extra: &[&str]) -> SocketAddr {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let accept: &[&str] = if extra.contains(&"--accept") {
        &[]
    } else {
        &["--accept", "auto"]
    };
    // No CoAPS listener (init's default is [::]:5684) unless a test asks for one.
    let coaps: &[&str] = if extra.contains(&"--coaps-listen") {
        &[]
    } else {
        &["--coaps-listen", ""]
    };
    // Metrics on a port of their own (init's default is a fixed loopback port): tests run
    // side by side; the bound port is in the log ([`RegistrarProc::metrics_addr`]).
    let metrics: &[&str] = if extra.contains(&"--metrics-listen") {
        &[]
    } else {
        &["--metrics-listen", "127.0.0.1:0"]
    };
    let out = tokio::process::Command::new(registrar_bin())
        .arg("init")
        .arg("--dir")
        .arg(dir)
        .args(["--domain", "registrar.example"])
        .arg("--vendor-ca")
        .arg(vendor_ca)
        .arg("--masa-ca")
        .arg(vendor_ca)
        .args(["--listen", &addr.to_string()])
        .args(accept)
        .args(coaps)
        .args(metrics)
        .args(extra)
        .output()
        .await
        .expect("run registrar init");
    assert!(
        out.status.success(),
        "registrar init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    on_postgres_if_asked(dir);
    addr
}

/// With `BRSKI_TEST_DATABASE=postgres`, point a registrar configured with its SQLite file at
/// a PostgreSQL database of its own.
pub fn on_postgres_if_asked(dir: &Path) {
    let line = "database = \"registrar.db\"";
    if on_postgres()
        && std::fs::read_to_string(dir.join("registrar.toml")).is_ok_and(|t| t.contains(line))
    {
        let url = database_url(dir);
        edit_config(dir, |t| t.replace(line, &format!("database = \"{url}\"")));
    }
}

/// Whether the tests run the registrar on PostgreSQL (`BRSKI_TEST_DATABASE=postgres`: a
/// database of its own for each registrar directory, on one server for the test binary)
/// instead of its embedded SQLite file; scripts/test.sh runs them both ways.
pub fn on_postgres() -> bool {
    std::env::var("BRSKI_TEST_DATABASE").as_deref() == Ok("postgres")
}

/// Point the registrar in `dir` back at its SQLite file (for what only SQLite has).
pub fn use_sqlite(dir: &Path) {
    edit_config(dir, |t| {
        t.lines()
            .map(|l| match l.starts_with("database = ") {
                true => "database = \"registrar.db\"",
                false => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
}

/// The PostgreSQL database of the registrar in `dir` (made on first use).
pub fn database_url(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let server = brski_service::pg_server::PgServer::shared()
        .expect("a PostgreSQL server (apt-get install postgresql)");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    let name = format!("registrar_{:016x}", h.finish());
    server.ensure_database(&name).expect("create database");
    server.url(&name)
}

/// One integer from the registrar's database in `dir`: `sqlite` (`?1` = `arg`) on the SQLite
/// file, `postgres` (`$1` = `arg`) on its PostgreSQL database.
pub async fn db_int(dir: &Path, sqlite: &str, postgres: &str, arg: &str) -> i64 {
    if on_postgres() {
        let (client, connection) =
            tokio_postgres::connect(&database_url(dir), tokio_postgres::NoTls)
                .await
                .expect("connect");
        tokio::spawn(connection);
        let row = client.query_one(postgres, &[&arg]).await.expect("query");
        row.get::<_, i64>(0)
    } else {
        let conn = rusqlite::Connection::open(dir.join("registrar.db")).expect("open db");
        conn.query_row(sqlite, [arg], |r| r.get(0)).expect("query")
    }
}

/// Edit `registrar.toml` in `dir`.
pub fn edit_config(dir: &Path, edit: impl FnOnce(String) -> String) {
    let path = dir.join("registrar.toml");
    let text = std::fs::read_to_string(&path).expect("read config");
    std::fs::write(&path, edit(text)).expect("write config");
}

/// A running `registrar serve`.
pub struct RegistrarProc {
    pub child: tokio::process::Child,
    pub dir: PathBuf,
    pub addr: SocketAddr,
}

impl RegistrarProc {
    /// Start `registrar serve`. Should the configured port have been taken meanwhile (ports
    /// come from [`free_port`]), move to another one and try again.
    pub async fn start(dir: &Path, addr: SocketAddr) -> Self {
        let mut addr = addr;
        for _ in 0..3 {
            match Self::try_start(dir, addr).await {
                Ok(proc) => return proc,
                Err(log) if log.contains("cannot listen") => {
                    let next: SocketAddr =
                        format!("127.0.0.1:{}", free_port()).parse().expect("addr");
                    edit_config(dir, |t| {
                        t.replace(
                            &format!("listen = \"{addr}\""),
                            &format!("listen = \"{next}\""),
                        )
                    });
                    addr = next;
                }
                Err(log) => panic!("registrar did not start: {log}"),
            }
        }
        panic!("registrar found no free port");
    }

    async fn try_start(dir: &Path, addr: SocketAddr) -> Result<Self, String> {
        on_postgres_if_asked(dir);
        let log = std::fs::File::create(dir.join("registrar.log")).expect("log file");
        let child = tokio::process::Command::new(registrar_bin())
            .arg("serve")
            .arg("--config")
            .arg(dir.join("registrar.toml"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn registrar serve");
        let mut proc = Self {
            child,
            dir: dir.to_path_buf(),
            addr,
        };
        for _ in 0..200 {
            if let Ok(Some(status)) = proc.child.try_wait() {
                return Err(format!("exited with {status}: {}", proc.log()));
            }
            // Logged once the listener is bound (a port taken by another process is caught by
            // the exit above, not mistaken for this registrar).
            if proc.log().contains("registrar serving") {
                // The backend the configuration names is the one in use.
                let config =
                    std::fs::read_to_string(dir.join("registrar.toml")).unwrap_or_default();
                let backend = match config
                    .lines()
                    .any(|l| l.starts_with("database = \"postgres"))
                {
                    true => "postgres",
                    false => "sqlite",
                };
                assert!(
                    proc.log().contains(&format!("database=\"{backend}\""))
                        || proc.log().contains(&format!("database={backend}")),
                    "the registrar is not on {backend}: {}",
                    proc.log()
                );
                return Ok(proc);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not listening after 10 s: {}", proc.log()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registrar.log")).unwrap_or_default()
    }

    /// The metrics listener's address, as the start line logged it; `None` when off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        metrics_addr_in(&self.log())
    }

    pub fn base(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn cert(&self) -> Certificate {
        brski_service::files::read_certs(&self.dir.join("registrar.crt.pem")).expect("cert")[0]
            .clone()
    }

    pub fn domain_ca(&self) -> Certificate {
        brski_service::files::read_certs(&self.dir.join("domain-ca.crt.pem")).expect("ca")[0]
            .clone()
    }

    pub fn domain_ca_party(&self) -> Party {
        Party {
            key: Arc::new(
                brski_service::files::read_key(&self.dir.join("domain-ca.key.pem")).expect("key"),
            ),
            cert: self.domain_ca(),
        }
    }

    /// `registrar pledges ARGS --config DIR/registrar.toml`.
    pub async fn pledges(&self, args: &[&str]) -> std::process::Output {
        pledges_cmd(&self.dir, args).await
    }

    /// `registrar pledges list --json`, as JSON.
    pub async fn list(&self) -> serde_json::Value {
        list_json(&self.dir).await
    }

    /// The `pledges list --json` entry of `serial`, if any.
    pub async fn pledge(&self, serial: &str) -> Option<serde_json::Value> {
        self.list()
            .await
            .as_array()
            .expect("array")
            .iter()
            .find(|p| p["serial"] == serial)
            .cloned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("pid")
    }
}

pub async fn pledges_cmd(dir: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(registrar_bin())
        .arg("pledges")
        .args(args)
        .arg("--config")
        .arg(dir.join("registrar.toml"))
        .output()
        .await
        .expect("run registrar pledges")
}

pub async fn list_json(dir: &Path) -> serde_json::Value {
    let out = pledges_cmd(dir, &["list", "--json"]).await;
    assert!(
        out.status.success(),
        "pledges list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("pledges list --json is JSON")
}

/// The provisional verifier of 8995 §5.1 that also keeps the registrar's chain, as a pledge
/// must for §5.6.2.
#[derive(Debug, Default)]
pub struct Recording {
    pub chain: Mutex<Vec<Vec<u8>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.as_ref().to_vec()];
        chain.extend(intermediates.iter().map(|c| c.as_ref().to_vec()));
        *self.chain.lock().expect("lock") = chain;
        tls::ProvisionalVerifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp,
            now,
        )
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls::ProvisionalVerifier.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls::ProvisionalVerifier.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        tls::ProvisionalVerifier.supported_verify_schemes()
    }
}

/// An HTTPS client authenticating with `chain`/`key`, provisionally accepting the server.
pub fn client(chain: &[Vec<u8>], key: Arc<SoftwareKey>) -> (reqwest::Client, Arc<Recording>) {
    let signer: Arc<dyn Signer> = key;
    let ck = tls::certified_key(chain, signer).expect("certified key");
    let recording = Arc::new(Recording::default());
    let config = tls::client_config(Some(ck), recording.clone()).expect("client config");
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    (client, recording)
}

/// A pledge: its IDevID, an HTTPS client presenting it, and the registrar chain it saw.
pub struct Pledge {
    pub serial: String,
    pub idevid: Party,
    pub http: reqwest::Client,
    pub seen: Arc<Recording>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    pub fn content_type(&self) -> String {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?.to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

impl Pledge {
    pub fn new(serial: &str, idevid: Party) -> Self {
        let (http, seen) = client(&[idevid.der()], idevid.key.clone());
        Self {
            serial: serial.to_string(),
            idevid,
            http,
            seen,
        }
    }

    /// Connect (a request to an unknown path) to learn the registrar's certificate, as the
    /// TLS handshake shows it (8995 §5.1).
    pub async fn registrar_cert(&self, reg: &RegistrarProc) -> Vec<u8> {
        let a = send(self.http.get(reg.url("/.well-known/brski/")))
            .await
            .expect("connect to the registrar");
        assert_eq!(a.status, 404, "unknown path: {}", a.text());
        self.seen.chain.lock().expect("lock")[0].clone()
    }

    /// A signed PVR naming `registrar_cert_der` (8995 §5.2).
    pub fn pvr(&self, format: Format, registrar_cert_der: &[u8]) -> pledge::PledgeVoucherRequest {
        pledge::build_pledge_voucher_request(
            format,
            &self.serial,
            registrar_cert_der,
            &*self.idevid.key,
            std::slice::from_ref(&self.idevid.cert),
            Some(time::OffsetDateTime::now_utc()),
        )
        .expect("pvr")
    }

    pub async fn post(
        &self,
        reg: &RegistrarProc,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        send(
            self.http
                .post(reg.url(path))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
        .expect("request")
    }

    pub async fn get(&self, reg: &RegistrarProc, path: &str) -> Answer {
        send(self.http.get(reg.url(path))).await.expect("request")
    }

    pub async fn request_voucher(
        &self,
        reg: &RegistrarProc,
        pvr: &pledge::PledgeVoucherRequest,
    ) -> Answer {
        self.post(
            reg,
            paths::REQUEST_VOUCHER,
            pvr.format.media_type(),
            pvr.bytes.clone(),
        )
        .await
    }

    /// Verify a voucher as the pledge does (8995 §5.6.1, §5.6.2).
    pub fn accept(
        &self,
        vendor: &Vendor,
        format: Format,
        voucher: &[u8],
        pvr: &pledge::PledgeVoucherRequest,
    ) -> pledge::AcceptedVoucher {
        let accepted = pledge::accept_voucher(
            format,
            voucher,
            &vendor.policy(),
            &PledgeExpectations::for_request(&pvr.request),
        )
        .expect("pledge accepts the voucher");
        let chain = self.seen.chain.lock().expect("lock").clone();
        pledge::validate_registrar(&accepted.pin, &chain, TimeCheck::Now)
            .expect("registrar chains to the pinned domain certificate");
        accepted
    }

    /// A full voucher exchange in CMS; panics unless the voucher is relayed and accepted.
    pub async fn obtain_voucher(&self, reg: &RegistrarProc, vendor: &Vendor) {
        let cert = self.registrar_cert(reg).await;
        let pvr = self.pvr(Format::Cms, &cert);
        let a = self.request_voucher(reg, &pvr).await;
        assert_eq!(a.status, 200, "voucher: {}", a.text());
        self.accept(vendor, Format::Cms, &a.body, &pvr);
    }
}

/// A registrar with an in-test MASA of its manufacturer, in a temporary directory.
pub struct Setup {
    pub tmp: tempfile::TempDir,
    pub vendor: Arc<Vendor>,
    pub masa: TestMasa,
    pub reg: RegistrarProc,
}

/// [`Setup`]: `registrar init` with `init_extra`, `registrar.toml` changed by `edit`, then
/// `registrar serve`.
pub async fn setup_with(
    mode: MasaMode,
    init_extra: &[&str],
    edit: impl FnOnce(String) -> String,
) -> Setup {
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let vendor = Arc::new(Vendor::new("Vendor"));
    let masa = start_masa(vendor.clone(), mode).await;
    let ca_file = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");
    let addr = init_registrar(&dir, &ca_file, init_extra).await;
    edit_config(&dir, edit);
    let reg = RegistrarProc::start(&dir, addr).await;
    Setup {
        tmp,
        vendor,
        masa,
        reg,
    }
}

/// [`setup_with`] a MASA that issues vouchers and the configuration as `registrar init` writes
/// it.
pub async fn setup() -> Setup {
    setup_with(MasaMode::Issue, &[], |t| t).await
}

impl Setup {
    /// A pledge of this manufacturer, its IDevID naming the MASA.
    pub fn pledge(&self, serial: &str) -> Pledge {
        Pledge::new(serial, self.vendor.mint(serial, Some(&self.masa.url())))
    }
}

/// A CSR for `key` with `subject`, as the base64 body of `/simpleenroll` (RFC 7030 §4.2.1).
pub fn csr_body(subject: &x509_cert::name::Name, key: &dyn Signer) -> String {
    let der = pki::build_csr(subject, key, &pki::CsrParams::default()).expect("csr");
    est::encode_base64_body(&der)
}

/// The single certificate of a certs-only base64 body.
pub fn single_cert(body: &[u8]) -> Certificate {
    let certs = est::decode_certs_only_body(body).expect("certs-only body");
    assert_eq!(certs.len(), 1, "one certificate");
    certs[0].clone()
}

pub fn cert_serial_hex(cert: &Certificate) -> String {
    hex_upper(cert.tbs_certificate().serial_number().as_bytes())
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Re-decode a DER certificate (for tampering tests).
pub fn cert_from_der(d: &[u8]) -> Certificate {
    Certificate::from_der(d).expect("cert")
}

/// `openssl ARGS...`, which must succeed; its output.
pub async fn openssl<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
) -> std::process::Output {
    let out = tokio::process::Command::new("openssl")
        .args(args)
        .output()
        .await
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `metrics_addr=` a daemon's log names (at start), when it is an address.
pub fn metrics_addr_in(log: &str) -> Option<SocketAddr> {
    log.split("metrics_addr=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .trim_matches('"')
        .parse()
        .ok()
}

/// `GET http://ADDR/PATH` on a metrics listener: status, Content-Type and body.
pub async fn scrape_path(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("metrics listener answers");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, resp.text().await.expect("body"))
}

/// `promtool check metrics` on `scrape`, which must pass.
pub fn promtool_check(scrape: &str) {
    brski_service::metrics::promtool_check(scrape).unwrap_or_else(|e| panic!("{e}"));
}

/// The value of one series in a scrape.
#[allow(unused_imports)]
pub use brski_service::metrics::sample;

/// One EST connection of the pledge `p` (its IDevID), whose channel binding the test reads.
pub async fn est_connection(s: &Setup, chain: &[Vec<u8>], key: Arc<SoftwareKey>) -> Connection {
    let signer: Arc<dyn Signer> = key;
    let ck = brski_common::tls::certified_key(chain, signer).expect("certified key");
    let config = brski_common::tls::client_config(Some(ck), Arc::new(Recording::default()))
        .expect("client config");
    let target = Target::parse(&s.reg.base()).expect("target");
    Connection::connect(&target, Arc::new(config), Duration::from_secs(10))
        .await
        .expect("connect")
}

/// POST a CSR on `conn`; (status, reason or body).
pub async fn post_csr(conn: &mut Connection, path: &str, csr_der: &[u8]) -> (u16, Vec<u8>) {
    let r = conn
        .request(
            http::Method::POST,
            path,
            Some("application/pkcs10"),
            None,
            brski_common::est::encode_base64_body(csr_der).as_bytes(),
            Duration::from_secs(10),
        )
        .await
        .expect("request");
    (r.status, r.body)
}
