//! RFC 8995 §5.5.3: the MASA checks the revocation of the registrar's chain through the CRL
//! distribution points it names, with the real `masa` binary and a small HTTP server here
//! serving CRLs signed with the test CA.

mod support;

use brski_common::envelope::Format;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::crl::{build_crl, distribution_point_extension};
use brski_common::pki::{issue, name_from_parts, profile, self_signed};
use std::collections::HashMap;
use std::sync::Arc;
use support::{Domain, Masa, Party};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

/// A domain whose registrar certificate names `crl_uri` as its CRL distribution point.
fn domain_with_crl_dp(name: &str, crl_uri: &str) -> Domain {
    let ca_key = key();
    let ca_params = profile::domain_ca(
        name_from_parts(Some(&format!("{name} Domain CA")), None, None).expect("name"),
    )
    .expect("profile");
    let ca = Party {
        cert: self_signed(&ca_params, &ca_key).expect("CA"),
        key: ca_key,
    };
    let mut params = profile::registrar(
        name_from_parts(Some(&format!("{name} registrar")), None, None).expect("name"),
        &["registrar.example"],
        &[],
    )
    .expect("profile");
    params
        .extra_extensions
        .push(distribution_point_extension(crl_uri).expect("CRL DP"));
    let registrar_key = key();
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

/// An HTTP/1.0 server on `listener` answering GET PATH with the CRL stored for PATH (404
/// otherwise).
fn crl_server(listener: tokio::net::TcpListener, crls: HashMap<String, Vec<u8>>) {
    let crls = Arc::new(crls);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let crls = crls.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let path = text(&request)
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let response = match crls.get(&path) {
                    Some(crl) => {
                        let mut r = format!(
                            "HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\n\
                             Content-Length: {}\r\n\r\n",
                            crl.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(crl);
                        r
                    }
                    None => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                };
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
}

fn serial(p: &Party) -> Vec<u8> {
    p.cert.tbs_certificate().serial_number().as_bytes().to_vec()
}

fn crl(domain: &Domain, signer: &dyn Signer, revoked: &[&[u8]]) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc();
    build_crl(
        &domain.ca.cert,
        signer,
        revoked,
        now - time::Duration::minutes(1),
        Some(now + time::Duration::hours(1)),
    )
    .expect("CRL")
}

#[tokio::test]
async fn rfc8995_5_5_3_registrar_chain_is_checked_against_its_crl() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-CRL");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dead = support::free_port();
    let uri = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let revoked = domain_with_crl_dp("Revoked", &uri("/revoked.crl"));
    let clean = domain_with_crl_dp("Clean", &uri("/clean.crl"));
    let forged = domain_with_crl_dp("Forged", &uri("/forged.crl"));
    let unreachable = domain_with_crl_dp("Unreachable", &format!("http://127.0.0.1:{dead}/x.crl"));
    let missing = domain_with_crl_dp("Missing", &uri("/missing.crl"));
    let garbage = domain_with_crl_dp("Garbage", &uri("/garbage.crl"));

    let mut crls = HashMap::new();
    crls.insert(
        "/revoked.crl".to_string(),
        crl(
            &revoked,
            &revoked.ca.key,
            &[&serial(&clean.registrar), &serial(&revoked.registrar)],
        ),
    );
    crls.insert(
        "/clean.crl".to_string(),
        crl(&clean, &clean.ca.key, &[&serial(&revoked.registrar)]),
    );
    // Issued in the CA's name, signed with another key.
    crls.insert("/forged.crl".to_string(), crl(&forged, &key(), &[]));
    crls.insert("/garbage.crl".to_string(), b"not a CRL".to_vec());
    crl_server(listener, crls);

    // Listed: 403 naming the revoked certificate; nothing is logged.
    let req = pledge.requests(&revoked, Format::Cms, &masa.vendor_ca);
    let (status, ct, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 403, "{}", text(&body));
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(
        text(&body).trim(),
        "certificate \"CN=Revoked registrar\" of the registrar's chain is revoked"
    );
    let (status, _, body) = masa.request_audit_log(&req.rvr).await;
    assert_eq!(status, 403, "{}", text(&body));

    // Not listed: served (twice, the second time from the cache).
    for _ in 0..2 {
        let req = pledge.requests(&clean, Format::Cms, &masa.vendor_ca);
        let (status, _, body) = masa.request_voucher(&req.rvr).await;
        assert_eq!(status, 200, "{}", text(&body));
    }

    // CRLs that cannot be used refuse the request too, each with its reason.
    for (domain, needle) in [
        (&forged, "CRL signature does not verify"),
        (&unreachable, "unreachable"),
        (&missing, "HTTP status \"404\""),
        (&garbage, "CRL is malformed"),
    ] {
        let req = pledge.requests(domain, Format::Cms, &masa.vendor_ca);
        let (status, _, body) = masa.request_voucher(&req.rvr).await;
        let body = text(&body);
        assert_eq!(status, 403, "{needle}: {body}");
        let subject = domain
            .registrar
            .cert
            .tbs_certificate()
            .subject()
            .to_string();
        assert!(
            body.starts_with(&format!(
                "cannot check the revocation of \"{subject}\": CRL http://"
            )),
            "{body}"
        );
        assert!(body.contains(needle), "{needle}: {body}");
    }

    let out = masa.cli(&["audit-log", "--serial", "SN-CRL"]);
    let log = brski_common::audit::AuditLog::from_json(&out.stdout).expect("log");
    assert_eq!(log.events.len(), 2, "only the clean domain's vouchers");
}
