//! Test harness: a real `masa` process in a temporary directory on a free loopback port, pledges
//! minted by it, test domains (CA + registrar) and voucher-requests built with the protocol core.
#![allow(dead_code)]

use brski_common::brski::{pledge, registrar};
use brski_common::envelope::{self, Format};
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::chain::TrustPolicy;
use brski_common::pki::ext::{idevid_issuer, spki_sha256};
use brski_common::pki::{issue, name_from_parts, profile, self_signed};
use brski_common::voucher::{Assertion, Nonce, PinForm, VoucherRequest};
use brski_service::config::PledgeConfig;
use brski_service::files::{read_certs, read_key};
use brski_service::pg_server::PgServer;
use der::Encode;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use x509_cert::Certificate;

pub const MASA: &str = env!("CARGO_BIN_EXE_masa");

/// A key and its certificate.
pub struct Party {
    pub key: SoftwareKey,
    pub cert: Certificate,
}

impl Party {
    pub fn der(&self) -> Vec<u8> {
        self.cert.to_der().expect("der")
    }
}

fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

/// An owner domain: its CA and a registrar certificate issued by it; for a two-level domain
/// (cBRSKI Figure 1) `ca` is the sub-CA and `root` the domain CA that issued it.
pub struct Domain {
    pub ca: Party,
    pub registrar: Party,
    pub root: Option<Party>,
}

impl Domain {
    /// A domain whose registrar certificate has id-kp-cmcRA (RFC 8995 §5.5.4).
    pub fn new(name: &str) -> Self {
        let ca = ca(&format!("{name} Domain CA"));
        let params = profile::registrar(
            name_from_parts(Some(&format!("{name} registrar")), None, None).expect("name"),
            &["registrar.example"],
            &[],
        )
        .expect("profile");
        let registrar = issued(&params, &ca);
        Self {
            ca,
            registrar,
            root: None,
        }
    }

    /// Domain CA → sub-CA → registrar (cBRSKI Figure 1).
    pub fn two_level(name: &str) -> Self {
        let root = ca(&format!("{name} Domain CA"));
        let sub = issued(
            &profile::domain_ca(
                name_from_parts(Some(&format!("{name} sub-CA")), None, None).expect("name"),
            )
            .expect("profile"),
            &root,
        );
        let params = profile::registrar(
            name_from_parts(Some(&format!("{name} registrar")), None, None).expect("name"),
            &["registrar.example"],
            &[],
        )
        .expect("profile");
        let registrar = issued(&params, &sub);
        Self {
            ca: sub,
            registrar,
            root: Some(root),
        }
    }

    /// A domain whose "registrar" certificate is a plain TLS server certificate (no cmcRA).
    pub fn without_cmc_ra(name: &str) -> Self {
        let ca = ca(&format!("{name} Domain CA"));
        let registrar = issued(
            &profile::tls_server(&["not-a-registrar.example"], &[]).expect("profile"),
            &ca,
        );
        Self {
            ca,
            registrar,
            root: None,
        }
    }

    /// The chain the registrar carries in its requests: registrar certificate, domain CA (and
    /// the root of a two-level domain).
    pub fn chain(&self) -> Vec<Certificate> {
        let mut chain = vec![self.registrar.cert.clone(), self.ca.cert.clone()];
        chain.extend(self.root.as_ref().map(|r| r.cert.clone()));
        chain
    }

    /// Write the domain CA to `path` (PEM).
    pub fn write_ca(&self, path: &Path) {
        std::fs::write(
            path,
            brski_service::files::certs_to_pem(std::slice::from_ref(&self.ca.cert)),
        )
        .expect("write CA");
    }
}

fn ca(cn: &str) -> Party {
    let key = key();
    let params =
        profile::domain_ca(name_from_parts(Some(cn), None, None).expect("name")).expect("profile");
    let cert = self_signed(&params, &key).expect("ca");
    Party { key, cert }
}

fn issued(params: &brski_common::pki::CertificateParams, issuer: &Party) -> Party {
    let key = key();
    let cert = issue(
        params,
        key.public_key_spki(),
        Some(&issuer.cert),
        &issuer.key,
    )
    .expect("issue");
    Party { key, cert }
}

/// A pledge as the factory made it.
pub struct Pledge {
    pub serial: String,
    pub idevid: Party,
    pub dir: PathBuf,
}

/// A pledge voucher-request and the registrar voucher-request wrapping it.
pub struct Requests {
    pub pvr: pledge::PledgeVoucherRequest,
    pub rvr: Vec<u8>,
}

impl Pledge {
    /// The pledge's PVR to `domain`'s registrar, checked by that registrar and wrapped into its
    /// RVR (RFC 8995 §5.2, §5.3, §5.5).
    pub fn requests(&self, domain: &Domain, format: Format, vendor_ca: &Certificate) -> Requests {
        let now = time::OffsetDateTime::now_utc();
        let pvr = pledge::build_pledge_voucher_request(
            format,
            &self.serial,
            &domain.registrar.der(),
            &self.idevid.key,
            std::slice::from_ref(&self.idevid.cert),
            Some(now),
        )
        .expect("pvr");
        self.relayed(domain, vendor_ca, pvr)
    }

    /// `pvr` checked by `domain`'s registrar over this pledge's TLS session and wrapped into the
    /// registrar's RVR (RFC 8995 §5.3, §5.5).
    fn relayed(
        &self,
        domain: &Domain,
        vendor_ca: &Certificate,
        pvr: pledge::PledgeVoucherRequest,
    ) -> Requests {
        let checked = registrar::check_pledge_voucher_request(
            pvr.format,
            &pvr.bytes,
            std::slice::from_ref(&self.idevid.cert),
            &domain.registrar.der(),
            &TrustPolicy::new(vec![vendor_ca.clone()]),
        )
        .expect("registrar accepts the pledge");
        let rvr = registrar::sign_registrar_voucher_request(
            &checked,
            time::OffsetDateTime::now_utc(),
            &domain.registrar.key,
            &domain.chain(),
        )
        .expect("rvr");
        Requests { pvr, rvr }
    }

    /// A COSE PVR naming the registrar by `form` (its certificate, key or key hash; cBRSKI
    /// §9), checked by `domain`'s registrar and wrapped into its COSE RVR (§8.1, §9.2.1).
    pub fn cose_requests(
        &self,
        domain: &Domain,
        vendor_ca: &Certificate,
        form: PinForm,
    ) -> Requests {
        let nonce = Nonce::generate().expect("nonce");
        let mut request = VoucherRequest::new(self.serial.clone());
        request.assertion = Some(Assertion::Proximity);
        request.nonce = Some(nonce.clone());
        let spki = domain.registrar.key.public_key_spki().to_vec();
        match form {
            PinForm::Cert => request.proximity_registrar_cert = Some(domain.registrar.der()),
            PinForm::Pubk => request.proximity_registrar_pubk = Some(spki),
            PinForm::PubkSha256 => {
                request.proximity_registrar_pubk_sha256 = Some(
                    spki_sha256(&domain.registrar.cert)
                        .expect("sha256")
                        .to_vec(),
                )
            }
        }
        let bytes = envelope::sign(
            Format::Cose,
            &request.to_payload(Format::Cose).expect("payload"),
            &self.idevid.key,
            &[],
        )
        .expect("sign");
        let pvr = pledge::PledgeVoucherRequest {
            format: Format::Cose,
            bytes,
            nonce,
            request,
        };
        self.relayed(domain, vendor_ca, pvr)
    }

    /// The RVR with `edit` applied to the registrar voucher-request before signing.
    pub fn edited_rvr(
        &self,
        domain: &Domain,
        vendor_ca: &Certificate,
        edit: impl FnOnce(&mut VoucherRequest),
    ) -> (pledge::PledgeVoucherRequest, Vec<u8>) {
        let now = time::OffsetDateTime::now_utc();
        let pvr = pledge::build_pledge_voucher_request(
            Format::Cms,
            &self.serial,
            &domain.registrar.der(),
            &self.idevid.key,
            std::slice::from_ref(&self.idevid.cert),
            Some(now),
        )
        .expect("pvr");
        let checked = registrar::check_pledge_voucher_request(
            Format::Cms,
            &pvr.bytes,
            std::slice::from_ref(&self.idevid.cert),
            &domain.registrar.der(),
            &TrustPolicy::new(vec![vendor_ca.clone()]),
        )
        .expect("registrar accepts the pledge");
        let mut request = registrar::build_registrar_voucher_request(&checked, now);
        edit(&mut request);
        let rvr = envelope::sign(
            Format::Cms,
            &request.to_payload(Format::Cms).expect("payload"),
            &domain.registrar.key,
            &domain.chain(),
        )
        .expect("sign");
        (pvr, rvr)
    }

    /// A nonceless RVR (RFC 8995 §7.3: no pledge request, no nonce; serial and idevid-issuer
    /// known out of band).
    pub fn nonceless_rvr(&self, domain: &Domain) -> Vec<u8> {
        let mut request = VoucherRequest::new(self.serial.clone());
        request.created_on = Some(brski_common::brski::date_time(
            time::OffsetDateTime::now_utc(),
        ));
        request.idevid_issuer = Some(idevid_issuer(&self.idevid.cert));
        envelope::sign(
            Format::Cms,
            &request.to_payload(Format::Cms).expect("payload"),
            &domain.registrar.key,
            &domain.chain(),
        )
        .expect("sign")
    }
}

/// Whether the tests run `masa` on PostgreSQL (`BRSKI_TEST_DATABASE=postgres`: each MASA on a
/// server of its own) instead of its embedded SQLite file; scripts/test.sh runs them both ways.
pub fn on_postgres() -> bool {
    std::env::var("BRSKI_TEST_DATABASE").as_deref() == Ok("postgres")
}

/// A running `masa serve`.
pub struct Masa {
    /// The PostgreSQL server holding its state, when [`on_postgres`].
    pub pg: Option<PgServer>,
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    pub vendor_ca: Certificate,
    vendor_key: SoftwareKey,
    child: Option<Child>,
}

/// A free loopback port (bound, read and released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("addr").port()
}

/// Run `masa ARGS`; the output.
pub fn masa(args: &[&str]) -> Output {
    Command::new(MASA).args(args).output().expect("run masa")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Masa {
    /// `masa init` with `ownership` in a fresh directory, optionally `edit` masa.toml, then serve.
    pub fn start_with(ownership: &str, edit: impl FnOnce(String) -> String) -> Self {
        Self::start_on(on_postgres(), ownership, edit)
    }

    /// [`Masa::start_with`], with its state in a PostgreSQL server of its own when `postgres`.
    pub fn start_on(postgres: bool, ownership: &str, edit: impl FnOnce(String) -> String) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("masa");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let out = masa(&[
            "init",
            "--dir",
            path_str(&dir),
            "--listen",
            &listen,
            // A port of its own: tests run side by side ([`Masa::metrics_addr`]).
            "--metrics-listen",
            "127.0.0.1:0",
            "--ownership",
            ownership,
        ]);
        assert!(out.status.success(), "init: {out:?}");
        let config = dir.join("masa.toml");
        let mut text = std::fs::read_to_string(&config).expect("read masa.toml");
        let pg = postgres.then(|| {
            let server =
                PgServer::start().expect("a PostgreSQL server (apt-get install postgresql)");
            server.create_database("masa").expect("create database");
            let line = "database = \"masa.db\"";
            assert!(text.contains(line), "{text}");
            text = text.replace(line, &format!("database = \"{}\"", server.url("masa")));
            server
        });
        std::fs::write(&config, edit(text)).expect("write masa.toml");
        let vendor_ca = read_certs(&dir.join("vendor-ca.crt.pem"))
            .expect("vendor CA")
            .remove(0);
        let vendor_key = read_key(&dir.join("vendor-ca.key.pem")).expect("vendor key");
        let on_pg = pg.is_some();
        let mut m = Self {
            pg,
            tmp,
            dir,
            config,
            port,
            vendor_ca,
            vendor_key,
            child: None,
        };
        m.serve();
        let backend = if on_pg { "postgres" } else { "sqlite" };
        assert!(
            m.log().contains(&format!("database=\"{backend}\"")),
            "masa serve opened its state in {backend}: {}",
            m.log()
        );
        m
    }

    /// Another `masa serve` of this MASA, on its PostgreSQL database: a copy of its directory
    /// (configuration, keys, certificates) listening on a port of its own.
    pub fn another_instance(&self) -> Self {
        assert!(self.pg.is_some(), "instances share a PostgreSQL database");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("masa");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&self.dir)
            .arg(&dir)
            .status()
            .expect("cp");
        assert!(copied.success());
        let _ = std::fs::remove_file(dir.join("serve.log"));
        let port = free_port();
        let config = dir.join("masa.toml");
        let text = std::fs::read_to_string(&config).expect("read masa.toml");
        let line = format!("listen = \"127.0.0.1:{}\"", self.port);
        assert!(text.contains(&line), "{text}");
        std::fs::write(
            &config,
            text.replace(&line, &format!("listen = \"127.0.0.1:{port}\"")),
        )
        .expect("write masa.toml");
        let mut m = Self {
            pg: None,
            tmp,
            dir,
            config,
            port,
            vendor_ca: self.vendor_ca.clone(),
            vendor_key: read_key(&self.dir.join("vendor-ca.key.pem")).expect("vendor key"),
            child: None,
        };
        m.serve();
        m
    }

    /// Rows of two text columns from the MASA's PostgreSQL database.
    pub async fn text_pairs(&self, sql: &str) -> Vec<(String, String)> {
        let server = self.pg.as_ref().expect("on PostgreSQL");
        pg_client(server)
            .await
            .query(sql, &[])
            .await
            .expect("query")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// [`Masa::start_with`] without editing the configuration.
    pub fn start(ownership: &str) -> Self {
        Self::start_with(ownership, |t| t)
    }

    fn serve(&mut self) {
        let log = std::fs::File::create(self.dir.join("serve.log")).expect("log file");
        let child = Command::new(MASA)
            .args(["serve", "--config", path_str(&self.config)])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn masa serve");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("masa serve exited early with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "masa serve did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn sqlite(&self) -> brski_service::store::Db {
        brski_service::store::Db::open(&self.dir.join("masa.db"), "SELECT 1;").expect("db")
    }

    /// Run `sqlite` or `postgres` (the same change in each dialect) on the MASA's database.
    pub async fn execute(&self, sqlite: &str, postgres: &str) -> u64 {
        match &self.pg {
            None => self
                .sqlite()
                .write(|conn| -> brski_service::store::Result<u64> {
                    Ok(conn.execute_batch(sqlite).map(|()| conn.changes())?)
                })
                .expect("execute"),
            Some(server) => pg_client(server)
                .await
                .execute(postgres, &[])
                .await
                .expect("execute"),
        }
    }

    /// The integer that `sql` (the same in both dialects) selects from the MASA's database.
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.pg {
            None => self
                .sqlite()
                .read(|conn| Ok(conn.query_row(sql, [], |r| r.get(0))?))
                .expect("count"),
            Some(server) => pg_client(server)
                .await
                .query_one(sql, &[])
                .await
                .expect("count")
                .get(0),
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// The metrics listener's address, as `masa serve` logged it (bound before the HTTPS
    /// listener, so known once that one answers).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.log()
            .split("metrics_addr=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .trim_matches('"')
            .parse()
            .ok()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `masa mint` a pledge with `serial`.
    pub fn mint(&self, serial: &str) -> Pledge {
        let out_dir = self.tmp.path().join(format!("pledge-{serial}"));
        let out = self.cli(&["mint", "--serial", serial, "--out", path_str(&out_dir)]);
        assert!(out.status.success(), "mint: {out:?}");
        let cfg = PledgeConfig::load(&out_dir.join("pledge.toml")).expect("pledge.toml");
        assert_eq!(cfg.serial_number, serial);
        let cert = read_certs(&cfg.idevid_cert).expect("idevid").remove(0);
        let key = read_key(cfg.idevid_key.as_deref().expect("key file")).expect("idevid key");
        Pledge {
            serial: serial.into(),
            idevid: Party { key, cert },
            dir: out_dir,
        }
    }

    /// A pledge with an IDevID from this vendor CA that `masa mint` never recorded.
    pub fn unminted(&self, serial: &str) -> Pledge {
        let key = key();
        let cert = issue(
            &profile::idevid(serial, Some(&format!("localhost:{}", self.port)), None)
                .expect("profile"),
            key.public_key_spki(),
            Some(&self.vendor_ca),
            &self.vendor_key,
        )
        .expect("issue");
        Pledge {
            serial: serial.into(),
            idevid: Party { key, cert },
            dir: self.tmp.path().to_path_buf(),
        }
    }

    /// Run a `masa` subcommand with `--config` of this MASA.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut all = vec![args[0], "--config", path_str(&self.config)];
        all.extend_from_slice(&args[1..]);
        masa(&all)
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// An HTTPS client trusting only the vendor CA (which issued the MASA's TLS certificate).
    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.dir.join("vendor-ca.crt.pem")).expect("vendor CA");
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
            .build()
            .expect("client")
    }

    /// POST `body` to `path` with these headers.
    pub async fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String, Vec<u8>) {
        let mut req = self.client().post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = req.send().await.expect("response");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = resp.bytes().await.expect("body").to_vec();
        (status, ct, bytes)
    }

    /// POST an RVR to requestvoucher as CMS.
    pub async fn request_voucher(&self, rvr: &[u8]) -> (u16, String, Vec<u8>) {
        self.post(
            brski_common::brski::paths::REQUEST_VOUCHER,
            Some(Format::Cms.media_type()),
            None,
            rvr.to_vec(),
        )
        .await
    }

    /// POST an RVR to requestauditlog as CMS.
    pub async fn request_audit_log(&self, rvr: &[u8]) -> (u16, String, Vec<u8>) {
        self.post(
            brski_common::brski::paths::REQUEST_AUDIT_LOG,
            Some(Format::Cms.media_type()),
            None,
            rvr.to_vec(),
        )
        .await
    }

    /// Send SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Wait for the server to exit (at most `limit`).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "masa serve did not exit");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether the server process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

/// A connection to the MASA's PostgreSQL database.
async fn pg_client(server: &PgServer) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server.url("masa"), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

impl Drop for Masa {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
