//! The `pledge` binary against an in-test registrar and MASA (see `harness`): the bootstrap of
//! RFC 8995 §5 end to end, every refusal the pledge must make, the daemon's retries and
//! renewal, and crash safety of the state directory.

mod harness;

use brski_common::brski::paths;
use brski_common::envelope::{self, Format};
use brski_common::keys::{Signer, SoftwareKey};
use brski_common::pki::chain::{TimeCheck, TrustPolicy, validate_chain};
use brski_common::voucher::{Assertion, VoucherRequest};
use brski_service::files::read_certs;
use const_oid::db::rfc5912;
use der::Encode;
use harness::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const EXIT_REJECTED: i32 = 2;
const EXIT_LOCAL: i32 = 1;

/// The files of a successful enrollment, consistent with each other and with the harness's
/// domain CA; returns the LDevID.
fn assert_enrolled(p: &PledgeDir, world: &World, voucher_file: &str) -> x509_cert::Certificate {
    for f in [
        "ldevid.crt.pem",
        "ldevid.key.pem",
        "domain-ca.crt.pem",
        "state.json",
        voucher_file,
    ] {
        assert!(p.exists(f), "{f} missing; files: {:?}", p.files());
    }
    let ldevid = read_certs(&p.path("ldevid.crt.pem")).expect("ldevid")[0].clone();
    let key =
        SoftwareKey::from_pem(&std::fs::read_to_string(p.path("ldevid.key.pem")).expect("key"))
            .expect("key parses");
    assert_eq!(
        ldevid
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .expect("spki"),
        key.public_key_spki(),
        "the LDevID key and certificate belong together"
    );
    assert_eq!(
        ldevid.tbs_certificate().subject(),
        p.idevid.tbs_certificate().subject(),
        "the LDevID subject is the IDevID subject"
    );
    assert_eq!(
        read_certs(&p.path("domain-ca.crt.pem")).expect("ca"),
        vec![world.domain_ca.cert.clone()]
    );
    validate_chain(
        &ldevid,
        &[],
        &TrustPolicy::new(vec![world.domain_ca.cert.clone()]).with_time(TimeCheck::Now),
    )
    .expect("LDevID chains to the domain CA");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path("state.json")).expect("state")).expect("json");
    assert_eq!(state["enrolled"], true);
    assert_eq!(state["serial"], p.serial.as_str());
    assert_no_temporary_files(p);
    ldevid
}

fn assert_not_enrolled(p: &PledgeDir) {
    for f in ["ldevid.crt.pem", "ldevid.key.pem", "state.json"] {
        assert!(!p.exists(f), "{f} must not exist; files: {:?}", p.files());
    }
    assert_no_temporary_files(p);
}

fn assert_no_temporary_files(p: &PledgeDir) {
    let tmp: Vec<String> = p
        .files()
        .into_iter()
        .filter(|f| f.contains(".tmp."))
        .collect();
    assert!(tmp.is_empty(), "half-written files left: {tmp:?}");
}

/// No file holding a private key may be readable by group or others.
fn assert_keys_private(p: &PledgeDir) {
    for name in p.files() {
        let path = p.path(&name);
        let text = std::fs::read(&path).expect("read");
        if String::from_utf8_lossy(&text).contains("PRIVATE KEY") {
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
        }
    }
}

fn mtime(p: &PledgeDir, name: &str) -> std::time::SystemTime {
    std::fs::metadata(p.path(name))
        .expect("meta")
        .modified()
        .expect("mtime")
}

fn openssl_verify(ca: &std::path::Path, cert: &std::path::Path) -> std::process::Output {
    std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg(cert)
        .output()
        .expect("openssl runs")
}

/// `pledge bootstrap` of a new pledge `serial` of `world`, its `pledge.toml` edited by `edit`,
/// against a harness registrar behaving as `behaviour`.
async fn bootstrap_with(
    world: &std::sync::Arc<World>,
    serial: &str,
    behaviour: Behaviour,
    edit: impl Fn(String) -> String,
) -> (std::process::Output, PledgeDir, Registrar) {
    let registrar = Registrar::start(world.clone(), behaviour).await;
    let p = pledge_dir(world, serial, "cms", Some(&registrar.url));
    std::fs::write(&p.config, edit(p.config_text())).expect("write");
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    (out, p, registrar)
}

fn without_trusted_clock(text: String) -> String {
    text.replace("trust-clock = true", "trust-clock = false")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_bootstrap_enrolls_and_reports() {
    let world = world();
    let registrar = Registrar::start(world.clone(), Behaviour::default()).await;
    let p = pledge_dir(&world, "SN-HAPPY", "cms", Some(&registrar.url));
    let config = p.config.to_string_lossy().to_string();

    let out = pledge(&["bootstrap", "--config", &config]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(
        line.starts_with("enrolled: serial SN-HAPPY, voucher assertion proximity, LDevID subject"),
        "{line}"
    );
    assert!(line.contains("Domain CA"), "issuer named: {line}");

    let ldevid = assert_enrolled(&p, &world, "voucher.vcj");
    assert_keys_private(&p);
    // Independent check of the issued chain.
    let v = openssl_verify(&p.path("domain-ca.crt.pem"), &p.path("ldevid.crt.pem"));
    assert!(
        v.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    // The kept voucher verifies with the manufacturer's anchor, independently.
    let cms = std::process::Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in",
        ])
        .arg(p.path("voucher.vcj"))
        .arg("-CAfile")
        .arg(p.path("manufacturer-ca.crt.pem"))
        .output()
        .expect("openssl runs");
    assert!(
        cms.status.success(),
        "openssl cms -verify: {}",
        String::from_utf8_lossy(&cms.stderr)
    );
    let payload: serde_json::Value = serde_json::from_slice(&cms.stdout).expect("voucher JSON");
    assert_eq!(
        payload["ietf-voucher:voucher"]["serial-number"], "SN-HAPPY",
        "{payload}"
    );
    // state.json is written last.
    let state_time = mtime(&p, "state.json");
    for f in [
        "ldevid.crt.pem",
        "ldevid.key.pem",
        "domain-ca.crt.pem",
        "voucher.vcj",
    ] {
        assert!(mtime(&p, f) <= state_time, "{f} written after state.json");
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path("state.json")).expect("state")).expect("json");
    assert_eq!(state["registrar"], registrar.url.as_str());

    {
        let log = registrar.log();
        assert_eq!(
            log.requests,
            vec![
                paths::REQUEST_VOUCHER,
                paths::VOUCHER_STATUS,
                paths::CACERTS,
                paths::CSRATTRS,
                paths::SIMPLE_ENROLL,
                paths::ENROLL_STATUS,
            ],
            "the RFC 8995 §5 sequence"
        );
        assert_eq!(log.voucher_status.len(), 1);
        assert!(log.voucher_status[0].status);
        assert_eq!(log.enroll_status.len(), 1);
        let (status, over_ldevid) = &log.enroll_status[0];
        assert!(status.status);
        assert!(
            *over_ldevid,
            "success enrollstatus on a new connection authenticated with the LDevID"
        );
        assert_eq!(log.issued, vec![ldevid]);
        assert_eq!(
            log.handshakes, 2,
            "one persistent connection for the bootstrap (RFC 8995 §5), one with the LDevID"
        );
        let pvr = pvr_payload(&log.pvrs[0]);
        assert!(pvr.created_on.is_some(), "created-on with a trusted clock");
        assert_eq!(pvr.serial_number, "SN-HAPPY");
        assert_eq!(pvr.assertion, Some(Assertion::Proximity));
        assert_eq!(
            pvr.proximity_registrar_cert,
            Some(world.registrar.cert.to_der().expect("der")),
            "proximity-registrar-cert is the registrar's TLS certificate"
        );
    }

    // Idempotent: a second run finds the enrollment and sends nothing.
    let again = pledge(&["bootstrap", "--config", &config]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stdout(&again).starts_with("already enrolled: serial SN-HAPPY"));
    assert_eq!(registrar.log().requests.len(), 6, "no new request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_bootstrap_with_jws_and_cose_vouchers() {
    let world = world();
    let registrar = Registrar::start(world.clone(), Behaviour::default()).await;
    for (format, file) in [("jws", "voucher.vjj"), ("cose", "voucher.vch")] {
        let p = pledge_dir(&world, &format!("SN-{format}"), format, None);
        let config = p.config.to_string_lossy().to_string();
        // The registrar comes from the command line here.
        let out = pledge(&[
            "bootstrap",
            "--config",
            &config,
            "--registrar",
            &registrar.url,
        ])
        .await;
        assert_eq!(out.status.code(), Some(0), "{format}: {}", stderr(&out));
        assert_enrolled(&p, &world, file);
        assert!(!p.exists("voucher.vcj"), "{format}");
    }
}

/// The payload of a CMS voucher-request as received by the harness.
fn pvr_payload(bytes: &[u8]) -> VoucherRequest {
    let parsed = envelope::parse(Format::Cms, bytes).expect("CMS");
    VoucherRequest::from_payload(Format::Cms, &parsed.payload).expect("voucher-request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_2_6_1_pledge_without_a_trusted_clock_enrolls() {
    let world = world();
    let registrar = Registrar::start(world.clone(), Behaviour::default()).await;
    let p = pledge_dir(&world, "SN-NOCLOCK", "cms", Some(&registrar.url));
    let text = p.config_text();
    assert!(text.contains("trust-clock = true"), "{text}");
    std::fs::write(
        &p.config,
        text.replace("trust-clock = true", "trust-clock = false"),
    )
    .expect("write");
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_enrolled(&p, &world, "voucher.vcj");
    let pvr = pvr_payload(&registrar.log().pvrs[0]);
    assert_eq!(
        pvr.created_on, None,
        "no created-on without a trusted clock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_2_6_1_voucher_created_in_the_future_is_refused() {
    let world = world();
    let ahead = || Behaviour {
        created_on_ahead: Some(time::Duration::hours(1)),
        ..Behaviour::default()
    };
    let (out, p, registrar) = bootstrap_with(&world, "SN-FUTURE", ahead(), |t| t).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    let why = reason(&out);
    assert!(
        why.starts_with("pledge: voucher rejected: voucher created-on 20")
            && why.ends_with(" is in the future (more than 300 s ahead of this pledge's clock)"),
        "{why}"
    );
    assert_not_enrolled(&p);
    assert!(!p.exists("voucher.vcj"));
    {
        let log = registrar.log();
        assert_eq!(log.voucher_status.len(), 1);
        assert!(!log.voucher_status[0].status, "failure reported");
        assert_eq!(log.enroll_started, 0);
    }
    // A pledge without a trusted clock may ignore the voucher's time stamps (§2.6.1).
    let (out, _p, _r) =
        bootstrap_with(&world, "SN-FUTURE-NOCLOCK", ahead(), without_trusted_clock).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_2_6_1_cms_signing_time_in_the_future_is_refused() {
    let behaviour = Behaviour {
        signing_time_ahead: Some(time::Duration::hours(1)),
        ..Behaviour::default()
    };
    let (out, p, _r) = bootstrap_with(&world(), "SN-SIGNED-LATER", behaviour, |t| t).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    let why = reason(&out);
    assert!(
        why.starts_with("pledge: voucher rejected: voucher signingTime 20")
            && why.ends_with("Z is in the future (more than 300 s ahead of this pledge's clock)"),
        "{why}"
    );
    assert_not_enrolled(&p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8366bis_8_4_voucher_without_created_on_is_accepted_and_logged() {
    let world = world();
    let behaviour = Behaviour {
        omit_created_on: true,
        ..Behaviour::default()
    };
    let (out, p, _r) = bootstrap_with(&world, "SN-UNDATED", behaviour, |t| t).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_enrolled(&p, &world, "voucher.vcj");
    assert!(
        stderr(&out).contains(
            "the voucher has no created-on (optional in RFC 8366bis); its age is not checked"
        ),
        "{}",
        stderr(&out)
    );
}

/// A bootstrap against a registrar relaying a nonceless voucher that expires `lifetime` from
/// now, with `pledge.toml` edited by `edit`.
async fn nonceless_bootstrap(
    serial: &str,
    lifetime: time::Duration,
    edit: impl Fn(String) -> String,
) -> (
    std::process::Output,
    PledgeDir,
    Registrar,
    std::sync::Arc<World>,
) {
    let world = world();
    let behaviour = Behaviour {
        nonceless_expires_in: Some(lifetime),
        ..Behaviour::default()
    };
    let (out, p, registrar) = bootstrap_with(&world, serial, behaviour, edit).await;
    (out, p, registrar, world)
}

fn accepting_nonceless(text: String) -> String {
    assert!(text.contains("accept-nonceless-vouchers = false"), "{text}");
    text.replace(
        "accept-nonceless-vouchers = false",
        "accept-nonceless-vouchers = true",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_7_2_nonceless_voucher_is_refused_by_default() {
    let (out, p, registrar, _) =
        nonceless_bootstrap("SN-NONCELESS-OFF", time::Duration::minutes(20), |t| t).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert_eq!(
        reason(&out),
        "pledge: voucher rejected: voucher has no nonce and nonceless vouchers are not accepted"
    );
    assert_not_enrolled(&p);
    assert!(
        !registrar.log().voucher_status[0].status,
        "failure reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_7_2_nonceless_voucher_accepted_by_policy_with_a_trusted_clock() {
    let (out, p, registrar, world) = nonceless_bootstrap(
        "SN-NONCELESS-ON",
        time::Duration::minutes(20),
        accepting_nonceless,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_enrolled(&p, &world, "voucher.vcj");
    assert!(registrar.log().voucher_status[0].status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_7_2_expired_nonceless_voucher_is_refused() {
    let (out, p, _registrar, _) = nonceless_bootstrap(
        "SN-NONCELESS-EXPIRED",
        -time::Duration::minutes(1),
        accepting_nonceless,
    )
    .await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    let why = reason(&out);
    assert!(
        why.starts_with("pledge: voucher rejected: voucher expired at 20"),
        "{why}"
    );
    assert_not_enrolled(&p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_7_2_nonceless_voucher_without_a_trusted_clock_is_refused() {
    let (out, p, _registrar, _) =
        nonceless_bootstrap("SN-NONCELESS-NOCLOCK", time::Duration::minutes(20), |t| {
            without_trusted_clock(accepting_nonceless(t))
        })
        .await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert_eq!(
        reason(&out),
        "pledge: voucher rejected: voucher has no nonce, and without a trusted clock its expires-on cannot be checked"
    );
    assert_not_enrolled(&p);
}

/// What the CRL distribution point named by the registrar's certificate serves.
enum CrlPoint {
    /// Nothing listens there.
    Unreachable,
    /// This CRL, made for the world.
    Serves(fn(&World) -> Vec<u8>),
}

/// A bootstrap against a registrar whose vouchers demand revocation checks (RFC 8366bis
/// `domain-cert-revocation-checks: true`), its certificate naming a CRL distribution point
/// on loopback, and `pledge.toml` edited by `edit`.
async fn revocation_bootstrap(
    serial: &str,
    point: CrlPoint,
    edit: impl Fn(String) -> String,
) -> (std::process::Output, PledgeDir, Registrar) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let uri = format!(
        "http://127.0.0.1:{}/domain.crl",
        listener.local_addr().expect("addr").port()
    );
    let world = world_with_crl(Some(&uri));
    match point {
        CrlPoint::Unreachable => drop(listener),
        CrlPoint::Serves(make) => crl_server(listener, make(&world)),
    }
    bootstrap_with(&world, serial, checking_revocation(), edit).await
}

fn checking_revocation() -> Behaviour {
    Behaviour {
        revocation_checks: true,
        ..Behaviour::default()
    }
}

/// A current CRL of the domain CA listing `revoked` serial numbers.
fn domain_crl(world: &World, revoked: &[&[u8]]) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc();
    brski_common::pki::crl::build_crl(
        &world.domain_ca.cert,
        world.domain_ca.key.as_ref(),
        revoked,
        now,
        Some(now + time::Duration::hours(1)),
    )
    .expect("CRL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8366bis_8_4_revocation_checks_demanded_pass_with_a_current_crl() {
    let (out, p, registrar) = revocation_bootstrap(
        "SN-CRL-GOOD",
        CrlPoint::Serves(|w| domain_crl(w, &[])),
        |t| t,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the registrar's chain is not revoked"),
        "{}",
        stderr(&out)
    );
    assert!(p.exists("state.json"));
    assert!(registrar.log().voucher_status[0].status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8366bis_8_4_revoked_registrar_certificate_refuses_the_voucher() {
    let (out, p, registrar) = revocation_bootstrap(
        "SN-CRL-REVOKED",
        CrlPoint::Serves(|w| {
            let serial = w
                .registrar
                .cert
                .tbs_certificate()
                .serial_number()
                .as_bytes();
            domain_crl(w, &[serial])
        }),
        |t| t,
    )
    .await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert_eq!(
        reason(&out),
        "pledge: domain-cert-revocation-checks: certificate \"CN=registrar\" is revoked"
    );
    assert_not_enrolled(&p);
    let log = registrar.log();
    assert_eq!(
        log.requests,
        vec![paths::REQUEST_VOUCHER, paths::VOUCHER_STATUS],
        "no EST with a revoked registrar"
    );
    assert!(!log.voucher_status[0].status, "failure reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8366bis_8_4_revocation_checks_that_cannot_be_made_refuse_the_voucher() {
    const PREFIX: &str = "pledge: domain-cert-revocation-checks: ";
    // The registrar's certificate names no distribution point.
    let (out, p, _r) = bootstrap_with(&world(), "SN-CRL-NONE", checking_revocation(), |t| t).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert_eq!(
        reason(&out),
        format!(
            "{PREFIX}cannot check the revocation of \"CN=registrar\": it names no http CRL distribution point"
        )
    );
    assert_not_enrolled(&p);

    // The distribution point does not answer.
    let (out, p, _r) = revocation_bootstrap("SN-CRL-DOWN", CrlPoint::Unreachable, |t| t).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    let why = reason(&out);
    assert!(
        why.starts_with(&format!(
            "{PREFIX}cannot check the revocation of \"CN=registrar\": CRL http://127.0.0.1:"
        )) && why.contains("/domain.crl: unreachable: "),
        "{why}"
    );
    assert_not_enrolled(&p);

    // A CRL under the domain CA's name, signed with another key.
    let (out, p, _r) = revocation_bootstrap(
        "SN-CRL-FORGED",
        CrlPoint::Serves(|w| {
            let now = time::OffsetDateTime::now_utc();
            brski_common::pki::crl::build_crl(
                &w.domain_ca.cert,
                w.other_domain_ca.key.as_ref(),
                &[],
                now,
                Some(now + time::Duration::hours(1)),
            )
            .expect("CRL")
        }),
        |t| t,
    )
    .await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    let why = reason(&out);
    assert!(
        why.contains("/domain.crl: CRL signature does not verify with the issuer's key"),
        "{why}"
    );
    assert_not_enrolled(&p);

    // Without a trusted clock a CRL's currency cannot be judged.
    let (out, p, _r) = revocation_bootstrap(
        "SN-CRL-NOCLOCK",
        CrlPoint::Serves(|w| domain_crl(w, &[])),
        without_trusted_clock,
    )
    .await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert_eq!(
        reason(&out),
        format!("{PREFIX}no trusted clock to tell whether a CRL is current")
    );
    assert_not_enrolled(&p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_1_voucher_for_another_nonce_is_rejected() {
    let world = world();
    let registrar = Registrar::start(
        world.clone(),
        Behaviour {
            voucher_other_nonce: true,
            ..Behaviour::default()
        },
    )
    .await;
    let p = pledge_dir(&world, "SN-NONCE", "cms", Some(&registrar.url));
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert_eq!(
        reason(&out),
        "pledge: voucher rejected: voucher nonce is not the nonce this pledge sent"
    );
    assert_not_enrolled(&p);
    assert!(!p.exists("voucher.vcj"), "a rejected voucher is not kept");
    let log = registrar.log();
    assert_eq!(log.voucher_status.len(), 1);
    assert!(!log.voucher_status[0].status, "failure reported");
    assert!(
        log.voucher_status[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("nonce")),
        "{:?}",
        log.voucher_status[0]
    );
    assert_eq!(log.enroll_started, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_2_voucher_pinning_another_domain_stops_enrollment() {
    let world = world();
    // The MASA pins the other domain's CA (the owner of record is another registrar), and this
    // registrar relays the voucher without checking it.
    let registrar = Registrar::start(
        world.clone(),
        Behaviour {
            pin_other_domain: true,
            ..Behaviour::default()
        },
    )
    .await;
    let p = pledge_dir(&world, "SN-PIN", "cms", Some(&registrar.url));
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert!(
        reason(&out).starts_with("pledge: registrar certificate is not pinned by the voucher"),
        "{}",
        reason(&out)
    );
    assert_not_enrolled(&p);
    assert!(!p.exists("voucher.vcj"));
    assert!(!p.exists("domain-ca.crt.pem"));
    let log = registrar.log();
    assert_eq!(
        log.requests,
        vec![paths::REQUEST_VOUCHER, paths::VOUCHER_STATUS],
        "no EST request reached the registrar"
    );
    assert!(!log.voucher_status[0].status);
    assert_eq!(
        log.voucher_status[0].reason.as_deref(),
        Some("registrar certificate is not pinned by the voucher")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_pending_voucher_request_is_resent_identically() {
    let world = world();
    let behaviour = Behaviour {
        pending: 2,
        ..Behaviour::default()
    };
    let (registrar, p) = bootstrapped(&world, behaviour, "SN-202").await;
    assert_enrolled(&p, &world, "voucher.vcj");
    let log = registrar.log();
    assert_eq!(log.pvrs.len(), 3, "two 202 answers, then 200");
    assert!(
        log.pvrs.iter().all(|b| *b == log.pvrs[0]),
        "the identical voucher-request bytes are resent (same nonce, no re-signing)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_request_is_resent_on_a_new_connection_to_the_same_registrar() {
    let world = world();
    let registrar = Registrar::start(
        world.clone(),
        Behaviour {
            pending: 1,
            close_on_pending: true,
            ..Behaviour::default()
        },
    )
    .await;
    let p = pledge_dir(&world, "SN-RECONNECT", "cms", Some(&registrar.url));
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_enrolled(&p, &world, "voucher.vcj");
    let log = registrar.log();
    assert_eq!(
        log.handshakes, 3,
        "first connection, reconnection after `Connection: close`, LDevID connection"
    );
    assert_eq!(log.pvrs.len(), 2);
    assert_eq!(
        log.pvrs[0], log.pvrs[1],
        "identical bytes on the new connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_new_connection_must_present_the_same_registrar_certificate() {
    let world = world();
    let registrar = Registrar::start(
        world.clone(),
        Behaviour {
            pending: 1,
            close_on_pending: true,
            switch_cert_on_reconnect: true,
            ..Behaviour::default()
        },
    )
    .await;
    let p = pledge_dir(&world, "SN-SWITCH", "cms", Some(&registrar.url));
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert_eq!(
        reason(&out),
        "pledge: requestvoucher: the registrar presented another certificate chain on a new connection"
    );
    assert_not_enrolled(&p);
    let log = registrar.log();
    assert_eq!(log.handshakes, 2);
    assert_eq!(
        log.pvrs.len(),
        1,
        "nothing sent to the other certificate's holder"
    );
}

/// RFC 8995 §5: the pledge refused, at `step`, a new connection presenting another chain.
fn assert_refused_changed_chain(out: &std::process::Output, p: &PledgeDir, step: &str) {
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(out));
    assert_eq!(
        reason(out),
        format!(
            "pledge: {step}: the registrar presented another certificate chain on a new connection"
        )
    );
    assert_not_enrolled(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_new_connection_must_present_the_same_registrar_chain() {
    // The same end-entity certificate, but another CA certificate after it (same name and
    // key, so every signature still verifies): not the chain the pledge saw first.
    let behaviour = Behaviour {
        pending: 1,
        close_on_pending: true,
        reissued_ca_on_reconnect: true,
        ..Behaviour::default()
    };
    let (out, p, registrar) = bootstrap_with(&world(), "SN-CHAIN", behaviour, |t| t).await;
    assert_refused_changed_chain(&out, &p, "requestvoucher");
    let log = registrar.log();
    assert_eq!(log.handshakes, 2);
    assert_eq!(log.pvrs.len(), 1, "nothing resent over the changed chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_reconnection_after_the_voucher_must_present_the_pinned_chain() {
    // The connection drops after the voucher was accepted against the first chain; EST on
    // the new connection must see that very chain again.
    let behaviour = Behaviour {
        close_after_voucher_status: true,
        reissued_ca_on_reconnect: true,
        ..Behaviour::default()
    };
    let (out, p, registrar) = bootstrap_with(&world(), "SN-DROP", behaviour, |t| t).await;
    assert_refused_changed_chain(&out, &p, "cacerts");
    assert!(!p.exists("domain-ca.crt.pem"));
    let log = registrar.log();
    assert_eq!(log.voucher_status.len(), 1);
    assert!(log.voucher_status[0].status, "the voucher was accepted");
    assert_eq!(
        log.requests,
        vec![paths::REQUEST_VOUCHER, paths::VOUCHER_STATUS],
        "no EST request went over the changed chain"
    );
}

/// `pledge bootstrap --max-wait 2` against a registrar behaving as `behaviour` gives up at
/// `step` as still pending, enrolling nothing.
async fn gives_up_pending(
    world: &std::sync::Arc<World>,
    behaviour: Behaviour,
    serial: &str,
    step: &str,
) -> Registrar {
    let registrar = Registrar::start(world.clone(), behaviour).await;
    let p = pledge_dir(world, serial, "cms", Some(&registrar.url));
    let out = pledge(&[
        "bootstrap",
        "--config",
        &p.config.to_string_lossy(),
        "--max-wait",
        "2",
    ])
    .await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert!(
        reason(&out).starts_with(&format!("pledge: {step}: still pending after")),
        "{}",
        reason(&out)
    );
    assert_not_enrolled(&p);
    registrar
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_pending_beyond_max_wait_gives_up() {
    let world = world();
    let behaviour = Behaviour {
        pending: usize::MAX,
        ..Behaviour::default()
    };
    let registrar = gives_up_pending(&world, behaviour, "SN-WAIT", "requestvoucher").await;
    let log = registrar.log();
    assert!((2..=3).contains(&log.pvrs.len()), "{}", log.pvrs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_refusal_is_reported_with_status_and_reason() {
    let world = world();
    let registrar = Registrar::start(
        world.clone(),
        Behaviour {
            refuse_voucher: Some((403, "pledge denied by policy")),
            ..Behaviour::default()
        },
    )
    .await;
    let p = pledge_dir(&world, "SN-DENIED", "cms", Some(&registrar.url));
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert_eq!(
        reason(&out),
        "pledge: requestvoucher: registrar answered 403: pledge denied by policy"
    );
    assert_not_enrolled(&p);
    assert_eq!(
        registrar.log().voucher_status.len(),
        0,
        "no voucher, no status"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_9_1_cacerts_that_do_not_validate_the_registrar_are_refused() {
    let world = world();
    let registrar = Registrar::start(
        world.clone(),
        Behaviour {
            cacerts_other_domain: true,
            ..Behaviour::default()
        },
    )
    .await;
    let p = pledge_dir(&world, "SN-CACERTS", "cms", Some(&registrar.url));
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert!(
        reason(&out).starts_with(
            "pledge: cacerts: the CA certificates do not validate the registrar's certificate"
        ),
        "{}",
        reason(&out)
    );
    assert_not_enrolled(&p);
    assert!(!p.exists("domain-ca.crt.pem"));
    let log = registrar.log();
    assert_eq!(log.enroll_started, 0);
    assert_eq!(log.enroll_status.len(), 1, "failure reported");
    let (status, over_ldevid) = &log.enroll_status[0];
    assert!(!status.status);
    assert!(!over_ldevid, "on the same (IDevID) connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_2_3_certificate_for_another_key_is_refused() {
    let world = world();
    let registrar = Registrar::start(
        world.clone(),
        Behaviour {
            ldevid_wrong_key: true,
            ..Behaviour::default()
        },
    )
    .await;
    let p = pledge_dir(&world, "SN-WRONGKEY", "cms", Some(&registrar.url));
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(EXIT_REJECTED), "{}", stderr(&out));
    assert_eq!(
        reason(&out),
        "pledge: simpleenroll: the issued certificate is not for this pledge's new key"
    );
    assert_not_enrolled(&p);
    let log = registrar.log();
    assert_eq!(log.enroll_status.len(), 1);
    assert!(!log.enroll_status[0].0.status);
    assert!(
        !log.enroll_status[0].1,
        "failure reported on the same connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_9_2_csrattrs_key_type_is_honoured() {
    let world = world();
    for (reply, want) in [
        (CsrAttrsReply::P384, Some(rfc5912::SECP_384_R_1)),
        (CsrAttrsReply::Ed25519, None),
        (CsrAttrsReply::NotFound, Some(rfc5912::SECP_256_R_1)),
    ] {
        let registrar = Registrar::start(
            world.clone(),
            Behaviour {
                csrattrs: reply,
                ..Behaviour::default()
            },
        )
        .await;
        let p = pledge_dir(&world, "SN-ATTRS", "cms", Some(&registrar.url));
        let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
        assert_eq!(out.status.code(), Some(0), "{reply:?}: {}", stderr(&out));
        let ldevid = assert_enrolled(&p, &world, "voucher.vcj");
        let alg = &ldevid.tbs_certificate().subject_public_key_info().algorithm;
        match want {
            Some(curve) => {
                assert_eq!(alg.oid, rfc5912::ID_EC_PUBLIC_KEY, "{reply:?}");
                let params = alg.parameters.as_ref().expect("curve");
                assert_eq!(
                    params
                        .decode_as::<const_oid::ObjectIdentifier>()
                        .expect("oid"),
                    curve,
                    "{reply:?}"
                );
            }
            None => assert_eq!(alg.oid, const_oid::db::rfc8410::ID_ED_25519),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_and_connectivity_errors_exit_1() {
    let world = world();
    // The registrar is not running.
    let url = format!("https://127.0.0.1:{}", free_port());
    let p = pledge_dir(&world, "SN-CONF", "cms", Some(&url));
    let config = p.config.to_string_lossy().to_string();
    let out = pledge(&["bootstrap", "--config", &config]).await;
    assert_eq!(out.status.code(), Some(EXIT_LOCAL), "{}", stderr(&out));
    assert!(
        reason(&out).starts_with("pledge: registrar unreachable: cannot connect to 127.0.0.1:"),
        "{}",
        reason(&out)
    );
    assert_not_enrolled(&p);

    let out = pledge(&[
        "bootstrap",
        "--config",
        &config,
        "--registrar",
        "http://x:1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(EXIT_LOCAL));
    assert!(
        reason(&out).contains("the scheme must be https"),
        "{}",
        reason(&out)
    );

    let missing = p.path("nothing.toml").to_string_lossy().to_string();
    let out = pledge(&["bootstrap", "--config", &missing]).await;
    assert_eq!(out.status.code(), Some(EXIT_LOCAL));
    assert!(reason(&out).starts_with("pledge: "), "{}", reason(&out));

    // An IDevID key in a TPM needs support that is not built.
    std::fs::write(
        &p.config,
        format!(
            "{}\n[tpm]\ntcti = \"device:/dev/tpmrm0\"\nidevid-handle = 2164391936\n",
            p.config_text()
        ),
    )
    .expect("write");
    let out = pledge(&["bootstrap", "--config", &config]).await;
    assert_eq!(out.status.code(), Some(EXIT_LOCAL));
    // Built with the TPM: the (absent) TPM is named; without: the missing support is.
    let expected = if cfg!(feature = "tpm") {
        "no TPM reachable at TCTI device:/dev/tpmrm0"
    } else {
        "TPM support is not built"
    };
    assert!(reason(&out).contains(expected), "{}", reason(&out));
    assert_not_enrolled(&p);

    // A bad command line is a configuration error too, not a rejection.
    let out = pledge(&["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(EXIT_LOCAL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_retries_until_the_registrar_is_up() {
    let world = world();
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let p = pledge_dir(&world, "SN-RUN", "cms", Some(&url));
    let notify_path = p.path("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let child = spawn(
        &["run", "--config", &p.config.to_string_lossy(), "--once"],
        &[("NOTIFY_SOCKET", notify_path.as_path())],
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let registrar = Registrar::start_on(port, world.clone(), Behaviour::default()).await;
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("enrolled in time")
        .expect("output");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("enrolled: serial SN-RUN"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("bootstrap failed"),
        "the first attempts failed and were retried: {}",
        stderr(&out)
    );
    assert_enrolled(&p, &world, "voucher.vcj");
    assert_eq!(registrar.count(paths::SIMPLE_ENROLL), 1);

    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = notify.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    let all = messages.join("\n");
    assert!(all.contains("READY=1"), "{all}");
    assert!(all.contains("STATUS=bootstrapping"), "{all}");
    assert!(all.contains("STOPPING=1"), "{all}");

    // Enrolled: `run --once` finds the enrollment and contacts nobody.
    let again = pledge(&["run", "--config", &p.config.to_string_lossy(), "--once"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stdout(&again).starts_with("already enrolled: serial SN-RUN"),
        "{}",
        stdout(&again)
    );
    assert_eq!(registrar.count(paths::REQUEST_VOUCHER), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_2_2_run_renews_a_short_lived_ldevid() {
    let world = world();
    let registrar = Registrar::start(
        world.clone(),
        Behaviour {
            ldevid_lifetime: Some(Duration::from_secs(8)),
            ..Behaviour::default()
        },
    )
    .await;
    let p = pledge_dir(&world, "SN-RENEW", "cms", Some(&registrar.url));
    let child = spawn(
        &[
            "run",
            "--config",
            &p.config.to_string_lossy(),
            "--renew-at",
            "0.5",
        ],
        &[],
    );
    assert!(
        wait_for(Duration::from_secs(30), || p.exists("state.json")).await,
        "enrolled"
    );
    let first = read_certs(&p.path("ldevid.crt.pem")).expect("ldevid")[0].clone();
    let first_key = std::fs::read(p.path("ldevid.key.pem")).expect("key");
    assert!(
        wait_for(Duration::from_secs(30), || registrar
            .count(paths::SIMPLE_REENROLL)
            >= 1
            && read_certs(&p.path("ldevid.crt.pem"))
                .is_ok_and(|c| c[0] != first))
        .await,
        "renewed within the LDevID's lifetime"
    );
    signal(&child, "TERM");
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("stopped in time")
        .expect("output");
    assert_eq!(
        out.status.code(),
        Some(0),
        "clean exit on SIGTERM: {}",
        stderr(&out)
    );

    let renewed = assert_enrolled(&p, &world, "voucher.vcj");
    assert_ne!(renewed, first);
    assert_ne!(
        std::fs::read(p.path("ldevid.key.pem")).expect("key"),
        first_key,
        "a new key"
    );
    assert_keys_private(&p);
    assert!(registrar.log().issued.contains(&renewed));
    assert_eq!(
        registrar.count(paths::REQUEST_VOUCHER),
        1,
        "renewal needs no voucher"
    );
    assert!(!p.exists("ldevid-renew.crt.pem") && !p.exists("ldevid-renew.key.pem"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_bootstrap_leaves_no_credentials_and_a_rerun_enrolls() {
    let world = world();
    let registrar = Registrar::start(
        world.clone(),
        Behaviour {
            enroll_delay: Some(Duration::from_secs(30)),
            ..Behaviour::default()
        },
    )
    .await;
    let p = pledge_dir(&world, "SN-KILL", "cms", Some(&registrar.url));
    let config = p.config.to_string_lossy().to_string();
    let child = spawn(&["bootstrap", "--config", &config], &[]);
    assert!(
        wait_for(Duration::from_secs(30), || registrar.log().enroll_started
            >= 1)
        .await,
        "the pledge got to simpleenroll"
    );
    signal(&child, "KILL");
    let out = child.wait_with_output().await.expect("output");
    assert!(!out.status.success());
    // Killed between voucher and enrollment: a voucher, but no credentials and no state.
    assert!(p.exists("voucher.vcj"));
    assert_not_enrolled(&p);

    registrar.set_behaviour(Behaviour::default());
    let out = pledge(&["bootstrap", "--config", &config]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_enrolled(&p, &world, "voucher.vcj");
    assert_keys_private(&p);
    assert_eq!(
        registrar.count(paths::REQUEST_VOUCHER),
        2,
        "started over with a new voucher"
    );
    let pvrs = &registrar.log().pvrs;
    assert_ne!(pvrs[0], pvrs[1], "a fresh nonce for the new attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_2_3_pending_simpleenroll_is_resent_after_retry_after() {
    let world = world();
    let behaviour = Behaviour {
        enroll_pending: 2,
        ..Behaviour::default()
    };
    let (registrar, p) = bootstrapped(&world, behaviour, "SN-EST-202").await;
    assert_enrolled(&p, &world, "voucher.vcj");
    assert_eq!(
        registrar.count(paths::SIMPLE_ENROLL),
        3,
        "two 202, then 200"
    );
    // Each CSR sent was linked to its connection (RFC 7030 §3.5).
    assert!(registrar.log().csrs.iter().all(|(linked, _)| *linked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_2_3_retry_after_is_bounded_by_max_wait() {
    let world = world();
    let behaviour = Behaviour {
        enroll_pending: usize::MAX,
        enroll_retry_after: Some("86400"),
        ..Behaviour::default()
    };
    let started = std::time::Instant::now();
    gives_up_pending(&world, behaviour, "SN-EST-WAIT", "simpleenroll").await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a day's Retry-After is not waited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_9_2_csr_follows_csrattrs_names_and_pop_linking() {
    let world = world();
    let behaviour = Behaviour {
        csrattrs: CsrAttrsReply::P256WithNames,
        ..Behaviour::default()
    };
    let (registrar, p) = bootstrapped(&world, behaviour, "SN-NAMES").await;
    assert_enrolled(&p, &world, "voucher.vcj");
    let log = registrar.log();
    let (linked, extensions) = log.csrs.last().expect("a CSR").clone();
    assert!(linked, "challengePassword = the connection's tls-exporter");
    let asked = csr_attrs(CsrAttrsReply::P256WithNames)
        .expect("attrs")
        .extension_templates();
    assert_eq!(extensions, asked, "the subjectAltName asked for, as given");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cbrski_transport_configuration_errors_exit_1() {
    let world = world();
    let url = format!("https://127.0.0.1:{}", free_port());
    let p = pledge_dir(&world, "SN-TRANSPORT", "cms", Some(&url));
    let config = p.config.to_string_lossy().to_string();
    let original = p.config_text();
    for (text, expected) in [
        (
            format!("transport = \"coaps\"\n{original}"),
            "transport: \"coaps\" differs from the registrar URL's scheme",
        ),
        (
            format!("transport = \"udp\"\n{original}"),
            "transport: \"udp\" is not one of https, coaps",
        ),
    ] {
        std::fs::write(&p.config, &text).expect("write");
        let out = pledge(&["bootstrap", "--config", &config]).await;
        assert_eq!(out.status.code(), Some(EXIT_LOCAL), "{}", stderr(&out));
        assert!(reason(&out).contains(expected), "{}", reason(&out));
        assert_not_enrolled(&p);
    }
    // A coaps URL with `transport = "https"` is refused the same way.
    std::fs::write(&p.config, format!("transport = \"https\"\n{original}")).expect("write");
    let out = pledge(&[
        "bootstrap",
        "--config",
        &config,
        "--registrar",
        "coaps://127.0.0.1:5684",
    ])
    .await;
    assert_eq!(out.status.code(), Some(EXIT_LOCAL), "{}", stderr(&out));
    assert!(
        reason(&out).contains("differs from the registrar URL's scheme"),
        "{}",
        reason(&out)
    );
}
