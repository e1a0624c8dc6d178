//! Issue 13, the MASA side, against the real `masa` binary: the domainID is a function of the
//! domain key (RFC 8995 §5.8.2, §11.2), the audit log is released by it (§5.8.1), nonces keep
//! the YANG length (RFC 8366bis §8.4), numeric settings are range-checked at load, and
//! `masa mint` refuses serials that would display as another.

mod support;

use base64::Engine;
use brski_common::audit::AuditLog;
use brski_common::envelope::{self, Format};
use brski_common::input::B64;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::ext::{
    domain_id_base64, idevid_issuer, spki_sha256, subject_key_identifier,
};
use brski_common::pki::{issue, name_from_parts, profile, self_signed};
use brski_common::voucher::{Nonce, VoucherRequest};
use der::Encode;
use der::asn1::OctetString;
use der::oid::AssociatedOid;
use support::{Domain, Masa, Party, Pledge};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

/// A domain whose self-signed CA carries exactly `ski` as subjectKeyIdentifier (its own key is
/// fresh), with a registrar certificate (id-kp-cmcRA) issued by it.
fn domain_with_ski(name: &str, ski: Vec<u8>) -> Domain {
    let ca_key = key();
    let mut p = profile::domain_ca(
        name_from_parts(Some(&format!("{name} Domain CA")), None, None).expect("name"),
    )
    .expect("profile");
    p.subject_key_identifier = false;
    p.extra_extensions.push(Extension {
        extn_id: SubjectKeyIdentifier::OID,
        critical: false,
        extn_value: OctetString::new(
            SubjectKeyIdentifier(OctetString::new(ski).expect("octets"))
                .to_der()
                .expect("der"),
        )
        .expect("octets"),
    });
    let ca = Party {
        cert: self_signed(&p, &ca_key).expect("CA"),
        key: ca_key,
    };
    let registrar_key = key();
    let params = profile::registrar(
        name_from_parts(Some(&format!("{name} registrar")), None, None).expect("name"),
        &["registrar.example"],
        &[],
    )
    .expect("profile");
    let registrar = Party {
        cert: issue(
            &params,
            registrar_key.public_key_spki(),
            Some(&ca.cert),
            &ca.key,
        )
        .expect("registrar"),
        key: registrar_key,
    };
    Domain {
        ca,
        registrar,
        root: None,
    }
}

/// The victim's domainID and a rogue domain whose CA copies the victim CA's SKI.
fn victim_and_rogue() -> (Domain, Domain) {
    let victim = Domain::new("Victim");
    let ski = subject_key_identifier(&victim.ca.cert)
        .expect("SKI")
        .expect("the domain CA has an SKI");
    let rogue = domain_with_ski("Rogue", ski.clone());
    assert_eq!(
        subject_key_identifier(&rogue.ca.cert).expect("SKI"),
        Some(ski),
        "the rogue CA carries the victim's SKI"
    );
    (victim, rogue)
}

fn events_of(masa: &Masa, serial: &str) -> AuditLog {
    let out = masa.cli(&["audit-log", "--serial", serial]);
    assert!(out.status.success(), "{out:?}");
    AuditLog::from_json(&out.stdout).expect("audit log JSON")
}

#[tokio::test]
async fn rfc8995_5_8_2_domain_id_is_the_spki_hash_not_a_copied_ski() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-VICTIM");
    let (victim, rogue) = victim_and_rogue();
    let victim_id = domain_id_base64(&victim.ca.cert).expect("victim domainID");
    let rogue_id = domain_id_base64(&rogue.ca.cert).expect("rogue domainID");
    assert_eq!(
        rogue_id,
        B64.encode(spki_sha256(&rogue.ca.cert).expect("sha256")),
        "the rogue's domainID is the hash of its own key"
    );
    assert_ne!(victim_id, rogue_id);

    let req = pledge.requests(&victim, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));

    // The rogue cannot read the victim's log: it never received a voucher (never-owner).
    let rogue_req = pledge.requests(&rogue, Format::Cms, &masa.vendor_ca);
    let (status, ct, body) = masa.request_audit_log(&rogue_req.rvr).await;
    assert_eq!(status, 404, "{}", text(&body));
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(
        text(&body).contains("no voucher for device \"SN-VICTIM\" was ever issued to this domain"),
        "{}",
        text(&body)
    );

    // Its own voucher (log-only) is logged under its own domainID: the victim's entries are
    // untouched.
    let (status, _, body) = masa.request_voucher(&rogue_req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    let log = events_of(&masa, "SN-VICTIM");
    let ids: Vec<&str> = log.events.iter().map(|e| e.domain_id.as_str()).collect();
    assert_eq!(ids, [victim_id.as_str(), rogue_id.as_str()]);
}

#[tokio::test]
async fn rfc8995_5_8_2_first_owner_does_not_take_a_copied_ski_for_the_owner() {
    let masa = Masa::start("first-owner");
    let pledge = masa.mint("SN-OWNED");
    let (victim, rogue) = victim_and_rogue();
    let req = pledge.requests(&victim, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));

    let rogue_req = pledge.requests(&rogue, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&rogue_req.rvr).await;
    assert_eq!(status, 403, "{}", text(&body));
    assert!(
        text(&body).contains("owned by another domain"),
        "{}",
        text(&body)
    );
    let (status, _, body) = masa.request_audit_log(&rogue_req.rvr).await;
    assert_eq!(status, 404, "{}", text(&body));
    // Nothing was logged for the rogue.
    let log = events_of(&masa, "SN-OWNED");
    assert_eq!(log.events.len(), 1);
    assert_eq!(
        log.events[0].domain_id,
        domain_id_base64(&victim.ca.cert).expect("domainID")
    );
}

#[tokio::test]
async fn rfc8995_5_8_1_a_registrar_reads_its_log_under_its_own_domain_id() {
    // A domain CA whose SKI is not the RFC 5280 method-1 value (SHA-1 over the whole SPKI):
    // its domainID is the SHA-256 of its SPKI, in the log and in the registrar's computation.
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-OWNLOG");
    let domain = domain_with_ski("OtherMethod", vec![0x42; 20]);
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    let (status, ct, body) = masa.request_audit_log(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(ct, "application/json");
    let log = AuditLog::from_json(&body).expect("RFC 8995 §5.8.1 JSON");
    let own = B64.encode(spki_sha256(&domain.ca.cert).expect("sha256"));
    assert_eq!(domain_id_base64(&domain.ca.cert).expect("domainID"), own);
    assert_eq!(log.events.len(), 1);
    assert_eq!(log.events[0].domain_id, own);
    assert_eq!(
        log.events[0].nonce.as_deref(),
        Some(req.pvr.nonce.json_string().as_ref())
    );
}

/// A CMS PVR and the RVR wrapping it, both carrying `nonce` (built without the registrar's
/// checks, which refuse such a nonce themselves).
fn rvr_with_nonce(pledge: &Pledge, domain: &Domain, nonce: &str) -> Vec<u8> {
    let now = brski_common::brski::date_time(time::OffsetDateTime::now_utc());
    let mut pvr = VoucherRequest::new(pledge.serial.clone());
    pvr.nonce = Some(Nonce::Text(nonce.into()));
    pvr.created_on = Some(now.clone());
    pvr.proximity_registrar_cert = Some(domain.registrar.der());
    let pvr = envelope::sign(
        Format::Cms,
        &pvr.to_payload(Format::Cms).expect("payload"),
        &pledge.idevid.key,
        std::slice::from_ref(&pledge.idevid.cert),
    )
    .expect("sign pvr");
    let mut rvr = VoucherRequest::new(pledge.serial.clone());
    rvr.nonce = Some(Nonce::Text(nonce.into()));
    rvr.created_on = Some(now);
    rvr.idevid_issuer = Some(idevid_issuer(&pledge.idevid.cert));
    rvr.prior_signed_voucher_request = Some(pvr);
    envelope::sign(
        Format::Cms,
        &rvr.to_payload(Format::Cms).expect("payload"),
        &domain.registrar.key,
        &domain.chain(),
    )
    .expect("sign rvr")
}

#[tokio::test]
async fn rfc8366bis_8_4_empty_nonce_is_refused_400_under_first_owner() {
    let masa = Masa::start("first-owner");
    let pledge = masa.mint("SN-EMPTY-NONCE");
    let domain = Domain::new("EmptyNonce");
    for nonce in ["", "AAAA"] {
        let (status, ct, body) = masa
            .request_voucher(&rvr_with_nonce(&pledge, &domain, nonce))
            .await;
        assert_eq!(status, 400, "{nonce:?}: {}", text(&body));
        assert!(ct.starts_with("text/plain"), "{ct}");
        assert!(
            text(&body).contains("leaf `nonce` is"),
            "{nonce:?}: {}",
            text(&body)
        );
    }
    assert!(events_of(&masa, "SN-EMPTY-NONCE").events.is_empty());
    // Nobody became the owner: a proper request of the domain is still served.
    let (status, _, body) = masa
        .request_voucher(&rvr_with_nonce(&pledge, &domain, "-_XE9zK9q8Ll1qylMtLKeg"))
        .await;
    assert_eq!(status, 200, "{}", text(&body));
}

#[test]
fn masa_toml_numeric_settings_are_range_checked_at_load() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("m");
    init(&dir, &format!("127.0.0.1:{}", support::free_port()));
    let config = dir.join("masa.toml");
    let c = config.to_str().expect("utf-8");

    let out = support::masa(&["check-config", "--config", c]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("ok"), "{out:?}");

    let original = std::fs::read_to_string(&config).expect("read");
    for value in ["18446744073709551615", "9223372036854775807", "0"] {
        std::fs::write(
            &config,
            original.replace(
                "nonceless-voucher-lifetime = 1200",
                &format!("nonceless-voucher-lifetime = {value}"),
            ),
        )
        .expect("write");
        let out = support::masa(&["serve", "--config", c]);
        assert!(!out.status.success(), "{value}: {out:?}");
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{value}: {err}");
        assert!(err.contains("nonceless-voucher-lifetime"), "{value}: {err}");

        let out = support::masa(&["check-config", "--config", c]);
        assert!(!out.status.success(), "{value}: {out:?}");
        let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 1, "{value}: {lines:?}");
        assert!(lines[0].contains("nonceless-voucher-lifetime"), "{lines:?}");
    }

    // Several problems: one line each (a value, and a key file that is gone).
    std::fs::write(
        &config,
        original.replace(
            "nonceless-voucher-lifetime = 1200",
            "nonceless-voucher-lifetime = 0",
        ),
    )
    .expect("write");
    std::fs::remove_file(dir.join("masa-signer.key.pem")).expect("remove");
    let out = support::masa(&["check-config", "--config", c]);
    assert!(!out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("nonceless-voucher-lifetime"), "{lines:?}");
    assert!(lines[1].contains("signer-key"), "{lines:?}");
}

/// `masa init` in `dir`, listening on `listen`, metrics on a free port.
fn init(dir: &std::path::Path, listen: &str) {
    let out = support::masa(&[
        "init",
        "--dir",
        dir.to_str().expect("utf-8"),
        "--listen",
        listen,
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn check_config_and_serve_name_a_listen_port_in_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("m");
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let listen = addr.to_string();
    init(&dir, &listen);
    let c = dir.join("masa.toml");
    let c = c.to_str().expect("utf-8");
    let out = support::masa(&["check-config", "--config", c]);
    assert!(!out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let expected = format!("listen: cannot listen on {addr}: ");
    assert!(lines[0].contains(&expected), "{lines:?}");
    let words = lines[0].split_once("listen: ").expect("key").1;
    let out = support::masa(&["serve", "--config", c]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        text(&out.stderr).contains(words),
        "serve: {out:?}, check-config said {words:?}"
    );
    drop(held);
    let out = support::masa(&["check-config", "--config", c]);
    assert!(out.status.success(), "the port is free again: {out:?}");
}

/// A problem with a file is named by its key, in the same words from check-config and serve.
#[test]
fn check_config_and_serve_name_the_key_of_a_bad_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("m");
    init(&dir, "127.0.0.1:0");
    let c = dir.join("masa.toml");
    let c = c.to_str().expect("utf-8");
    let toml = std::fs::read_to_string(c).expect("masa.toml");
    let file_of = |key: &str| {
        let line = toml
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} in masa.toml"));
        dir.join(line.split('"').nth(1).expect("quoted path"))
    };
    // One planted problem at a time: a missing certificate, then a key of another certificate.
    let signer_cert = file_of("signer-cert");
    let saved = std::fs::read(&signer_cert).expect("read");
    std::fs::remove_file(&signer_cert).expect("rm");
    let tls_key = file_of("tls-key");
    for (key, undo) in [("signer-cert: ", true), ("tls-key: ", false)] {
        if !undo {
            std::fs::write(&signer_cert, &saved).expect("restore");
            std::fs::copy(file_of("signer-key"), &tls_key).expect("copy");
        }
        let out = support::masa(&["check-config", "--config", c]);
        assert!(!out.status.success(), "{out:?}");
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with(key), "{lines:?}");
        let out = support::masa(&["serve", "--config", c]);
        assert!(!out.status.success(), "{out:?}");
        assert!(
            text(&out.stderr).contains(lines[0]),
            "serve: {out:?}, check-config said {:?}",
            lines[0]
        );
    }
}

#[test]
fn rfc8995_2_3_1_mint_refuses_blank_and_control_character_serials() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("m");
    let out = support::masa(&["init", "--dir", dir.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    let config = dir.join("masa.toml");
    for (serial, why) in [
        ("   ", "is blank"),
        ("SN\u{7f}1", "U+007F"),
        ("SN\u{85}1", "U+0085"),
        ("SN\u{1b}[31m", "U+001B"),
        ("\u{202E}1-NS", "U+202E"),
        ("SN\u{2066}1", "U+2066"),
        ("SN\u{061C}1", "U+061C"),
        ("SN\u{200F}", "U+200F"),
    ] {
        let out_dir = tmp.path().join("pledge");
        let out = support::masa(&[
            "mint",
            "--config",
            config.to_str().expect("utf-8"),
            "--serial",
            serial,
            "--out",
            out_dir.to_str().expect("utf-8"),
        ]);
        assert!(!out.status.success(), "{serial:?}: {out:?}");
        let err = text(&out.stderr);
        assert!(err.contains(why), "{serial:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!out_dir.exists(), "nothing written for {serial:?}");
    }
    // Nor was any device recorded.
    let db = brski_service::store::Db::open(&dir.join("masa.db"), "SELECT 1;").expect("db");
    let count: i64 = db
        .read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM devices", [], |r| r.get(0))?))
        .expect("count");
    assert_eq!(count, 0);
}

#[tokio::test]
async fn rfc8995_5_8_2_domain_ids_stored_by_an_older_masa_are_recomputed_from_the_key() {
    if support::on_postgres() {
        // Older MASAs kept their state in SQLite only: there is no older PostgreSQL schema.
        eprintln!("SQLite only: an older MASA's database");
        return;
    }
    let masa = Masa::start("first-owner");
    let pledge = masa.mint("SN-MIGRATE");
    // The SKI is not the method-1 value: an older MASA stored it as the domainID.
    let domain = domain_with_ski("Migrate", vec![0x24; 20]);
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    let own = B64.encode(spki_sha256(&domain.ca.cert).expect("sha256"));
    let old = B64.encode([0x24; 20]);

    // Rewrite the database as the older MASA left it.
    let db = brski_service::store::Db::open(&masa.dir.join("masa.db"), "SELECT 1;").expect("db");
    db.write(|conn| -> brski_service::store::Result<()> {
        for table in ["vouchers", "audit_log", "owners"] {
            conn.execute(
                &format!("UPDATE {table} SET domain_id = ?1"),
                brski_service::store::params![old],
            )?;
        }
        conn.execute_batch("PRAGMA user_version = 0")?;
        Ok(())
    })
    .expect("rewrite");
    drop(db);

    // Any command opening the database brings it up to date.
    let log = events_of(&masa, "SN-MIGRATE");
    assert_eq!(log.events.len(), 1);
    assert_eq!(log.events[0].domain_id, own);
    let db = brski_service::store::Db::open(&masa.dir.join("masa.db"), "SELECT 1;").expect("db");
    let stored: Vec<String> = db
        .read(|conn| {
            let mut out = Vec::new();
            for table in ["vouchers", "audit_log", "owners"] {
                out.push(
                    conn.query_row(&format!("SELECT domain_id FROM {table}"), [], |r| r.get(0))?,
                );
            }
            Ok(out)
        })
        .expect("read");
    assert_eq!(stored, [own.clone(), own.clone(), own.clone()]);
    // And the registrar still reads its log.
    let (status, _, body) = masa.request_audit_log(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
}
