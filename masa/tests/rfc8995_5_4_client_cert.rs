//! RFC 8995 §5.4, §5.5.4: the MASA authenticates the registrar by its TLS client certificate,
//! which must carry the key that signed the registrar voucher-request; `require-client-cert`
//! makes the certificate mandatory. Against the real `masa` binary with rustls clients.

mod support;

use brski_common::brski::paths;
use brski_common::envelope::Format;
use brski_common::keys::SoftwareKey;
use brski_common::pki::chain::TimeCheck;
use brski_common::tls::{anchored_client_config, certified_key};
use der::Encode;
use std::sync::Arc;
use support::{Domain, Masa, Party};

const CMS: &str = "application/voucher-cms+json";

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// An HTTPS client trusting the vendor CA that authenticates with `party` (chain `chain`).
fn client_with(masa: &Masa, party: &Party, chain: &[&Party]) -> reqwest::Client {
    let key = SoftwareKey::from_der(party.key.to_pkcs8_der()).expect("key copy");
    let ders: Vec<Vec<u8>> = chain
        .iter()
        .map(|p| p.cert.to_der().expect("der"))
        .collect();
    let tls = anchored_client_config(
        Some(certified_key(&ders, Arc::new(key)).expect("certified key")),
        vec![masa.vendor_ca.clone()],
        TimeCheck::Now,
    )
    .expect("tls config");
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .expect("client")
}

async fn post(
    client: &reqwest::Client,
    masa: &Masa,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, String), reqwest::Error> {
    let resp = client
        .post(masa.url(path))
        .header("content-type", CMS)
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, text(&resp.bytes().await?)))
}

#[tokio::test]
async fn rfc8995_5_4_required_client_certificate_must_be_the_rvr_signer() {
    let masa = Masa::start_with("log-only", |t| {
        assert!(
            t.contains("# require-client-cert = false"),
            "init documents the key"
        );
        t.replace(
            "# require-client-cert = false",
            "require-client-cert = true",
        )
    });
    let pledge = masa.mint("SN-MTLS");
    let domain = Domain::new("Mtls");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);

    // Without a client certificate the handshake fails: no answer at all.
    let err = post(
        &masa.client(),
        &masa,
        paths::REQUEST_VOUCHER,
        req.rvr.clone(),
    )
    .await
    .expect_err("handshake without a client certificate");
    assert!(!err.is_status(), "{err:?}");

    // The registrar's own certificate: served, and the audit log too.
    let registrar = client_with(&masa, &domain.registrar, &[&domain.registrar, &domain.ca]);
    let (status, body) = post(&registrar, &masa, paths::REQUEST_VOUCHER, req.rvr.clone())
        .await
        .expect("answer");
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&registrar, &masa, paths::REQUEST_AUDIT_LOG, req.rvr.clone())
        .await
        .expect("answer");
    assert_eq!(status, 200, "{body}");

    // Another certificate of the same domain (its CA) than the one that signed the RVR: 401.
    let other = client_with(&masa, &domain.ca, &[&domain.ca]);
    for path in [paths::REQUEST_VOUCHER, paths::REQUEST_AUDIT_LOG] {
        let (status, body) = post(&other, &masa, path, req.rvr.clone())
            .await
            .expect("answer");
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(
            body.trim(),
            "the voucher-request is not signed with the key of the TLS client certificate \
             \"CN=Mtls Domain CA\"",
            "{path}"
        );
    }
    // Only the one voucher was logged.
    let out = masa.cli(&["audit-log", "--serial", "SN-MTLS"]);
    let log = brski_common::audit::AuditLog::from_json(&out.stdout).expect("log");
    assert_eq!(log.events.len(), 1);
}

#[tokio::test]
async fn rfc8995_5_4_optional_client_certificate_still_must_match_when_presented() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-OPT");
    let domain = Domain::new("Opt");
    let stranger = Domain::new("Stranger");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);

    // No certificate: accepted (the default).
    let (status, body) = post(
        &masa.client(),
        &masa,
        paths::REQUEST_VOUCHER,
        req.rvr.clone(),
    )
    .await
    .expect("answer");
    assert_eq!(status, 200, "{body}");
    // The signer's certificate: accepted.
    let registrar = client_with(&masa, &domain.registrar, &[&domain.registrar, &domain.ca]);
    let (status, body) = post(&registrar, &masa, paths::REQUEST_VOUCHER, req.rvr.clone())
        .await
        .expect("answer");
    assert_eq!(status, 200, "{body}");
    // Another registrar's certificate: 401, nothing logged.
    let other = client_with(
        &masa,
        &stranger.registrar,
        &[&stranger.registrar, &stranger.ca],
    );
    let (status, body) = post(&other, &masa, paths::REQUEST_VOUCHER, req.rvr.clone())
        .await
        .expect("answer");
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("not signed with the key of the TLS client certificate"),
        "{body}"
    );
    let out = masa.cli(&["audit-log", "--serial", "SN-OPT"]);
    let log = brski_common::audit::AuditLog::from_json(&out.stdout).expect("log");
    assert_eq!(log.events.len(), 2);
}
