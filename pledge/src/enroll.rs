//! The EST part of the pledge (RFC 8995 §5.9, RFC 7030 §4): `/cacerts`, `/csrattrs`, the key
//! and CSR, `/simpleenroll` or `/simplereenroll`, and the checks of what comes back.

use crate::error::{Failure, Step};
use crate::session::{Exchange, Session, Transport};
use brski_common::attest::enroll::EvidenceRequest;
use brski_common::brski::paths;
use brski_common::est::{self, CsrAttrs, RequestedKey, media_type};
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::chain::{TimeCheck, TrustPolicy, validate_chain};
use brski_common::pki::csr::{CsrParams, build_csr};
use brski_service::https_client::Response;
use const_oid::db::rfc5912;
use der::{Decode, Encode};
use std::time::Duration;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::name::Name;

/// Decode a certs-only response body (RFC 7030 §4.1.3, §4.2.3): base64 as RFC 8951 asks, or
/// raw DER from servers that send binary.
pub fn decode_certs(step: Step, body: &[u8]) -> Result<Vec<Certificate>, Failure> {
    let decoded = if body.first() == Some(&0x30) {
        est::decode_certs_only(body)
    } else {
        est::decode_certs_only_body(body)
    };
    decoded.map_err(|e| Failure::Protocol {
        step,
        reason: e.to_string(),
    })
}

fn expect_ok(step: Step, r: &Response) -> Result<(), Failure> {
    if r.status == 200 {
        Ok(())
    } else {
        Err(Failure::Refused {
            step,
            status: r.status,
            reason: r.reason(),
        })
    }
}

/// RFC 8995 §5.9.1: fetch the domain CA certificates. They must validate the registrar's
/// certificate chain (`registrar_chain`, end entity first, as presented in TLS), so that the
/// pledge does not install CAs unrelated to the registrar its voucher pinned.
pub async fn cacerts(session: &mut Session, time: TimeCheck) -> Result<Vec<Certificate>, Failure> {
    let r = session
        .send(&Exchange::get(
            Step::CaCerts,
            paths::CACERTS,
            Some(media_type::PKCS7_CERTS_ONLY),
        ))
        .await?;
    expect_ok(Step::CaCerts, &r)?;
    let cacerts = decode_certs(Step::CaCerts, &r.body)?;
    check_cacerts(&cacerts, session.server_chain(), time)?;
    Ok(cacerts)
}

/// The CA certificates must validate the registrar's chain.
pub fn check_cacerts(
    cacerts: &[Certificate],
    registrar_chain: &[Vec<u8>],
    time: TimeCheck,
) -> Result<(), Failure> {
    let protocol = |reason: String| Failure::Protocol {
        step: Step::CaCerts,
        reason,
    };
    let chain = registrar_chain
        .iter()
        .map(|d| Certificate::from_der(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| protocol(format!("registrar certificate: {e}")))?;
    let (leaf, rest) = chain
        .split_first()
        .ok_or_else(|| protocol("no registrar certificate".into()))?;
    validate_chain(
        leaf,
        rest,
        &TrustPolicy::new(cacerts.to_vec()).with_time(time),
    )
    .map(|_| ())
    .map_err(|e| {
        protocol(format!(
            "the CA certificates do not validate the registrar's certificate: {e}"
        ))
    })
}

/// RFC 8995 §5.9.2: ask for the CSR attributes. `None` when the registrar has none (204, 404)
/// or sends something unusable (logged; the registrar then judges the CSR it gets), or
/// refuses (logged: the CSR is then made with the defaults).
pub async fn csrattrs(session: &mut Session) -> Result<Option<CsrAttrs>, Failure> {
    match csrattrs_answer(session).await? {
        Ok(attrs) => Ok(attrs),
        Err(refused) => {
            tracing::warn!(step = "csrattrs", reason = %refused, "no CSR attributes; using defaults");
            Ok(None)
        }
    }
}

/// GET /csrattrs (RFC 7030 §4.5): the attributes, `None` when the server has none (204, 404)
/// or sends something unusable (logged), or the refusal of any other status.
pub async fn csrattrs_answer(
    session: &mut Session,
) -> Result<Result<Option<CsrAttrs>, Failure>, Failure> {
    let r = session
        .send(&Exchange::get(
            Step::CsrAttrs,
            paths::CSRATTRS,
            Some(media_type::CSRATTRS),
        ))
        .await?;
    Ok(match r.status {
        200 => {
            let parsed = if r.body.first() == Some(&0x30) {
                CsrAttrs::from_der(&r.body)
            } else {
                CsrAttrs::from_body(&r.body)
            };
            match parsed {
                Ok(a) => Ok(Some(a)),
                Err(e) => {
                    tracing::warn!(step = "csrattrs", error = %e, "unusable CSR attributes; using defaults");
                    Ok(None)
                }
            }
        }
        204 | 404 => Ok(None),
        _ => expect_ok(Step::CsrAttrs, &r).map(|()| None),
    })
}

/// The LDevID key algorithm: what the CSR attributes ask for when this pledge can make it
/// (P-256, P-384, Ed25519), else P-256.
pub fn key_algorithm(attrs: Option<&CsrAttrs>) -> SignatureAlgorithm {
    let requested = attrs.and_then(CsrAttrs::requested_key);
    match requested {
        None | Some(RequestedKey::Ec { curve: None }) => SignatureAlgorithm::EcdsaP256Sha256,
        Some(RequestedKey::Ec { curve: Some(c) }) if c == rfc5912::SECP_256_R_1 => {
            SignatureAlgorithm::EcdsaP256Sha256
        }
        Some(RequestedKey::Ec { curve: Some(c) }) if c == rfc5912::SECP_384_R_1 => {
            SignatureAlgorithm::EcdsaP384Sha384
        }
        Some(RequestedKey::Ed25519) => SignatureAlgorithm::Ed25519,
        Some(other) => {
            tracing::warn!(requested = ?other, "cannot make the requested key type; using P-256");
            SignatureAlgorithm::EcdsaP256Sha256
        }
    }
}

/// A fresh key of `alg`.
pub fn generate_key(alg: SignatureAlgorithm) -> Result<SoftwareKey, Failure> {
    SoftwareKey::generate(alg).map_err(|e| Failure::Internal(format!("key generation: {e}")))
}

/// What a CSR holds besides the channel binding: the subject, the key, and the extensions
/// to request (what `/csrattrs` asks for, RFC 8995 §5.9.2; or those of the LDevID renewed,
/// RFC 7030 §4.2.2).
pub struct CsrRequest<'a> {
    pub subject: &'a Name,
    pub key: &'a dyn Signer,
    pub extensions: Vec<Extension>,
    /// The attestation evidence for the session whose channel binding it is given (SPEC §9),
    /// when the registrar asks for it and the pledge can make it.
    pub evidence: Option<&'a Evidence<'a>>,
}

/// Makes the `id-aa-attestation` attribute for a CSR sent on the session with this channel
/// binding.
pub type Evidence<'a> =
    dyn Fn(&[u8]) -> Result<x509_cert::attr::Attribute, Failure> + Send + Sync + 'a;

/// A DER PKCS#10 request; with `channel_binding`, linked to the TLS connection it is sent on
/// by its challengePassword (RFC 7030 §3.5, the RFC 9266 `tls-exporter` in place of
/// tls-unique).
pub fn csr(request: &CsrRequest<'_>, channel_binding: Option<&[u8]>) -> Result<Vec<u8>, Failure> {
    let mut attributes = Vec::new();
    if let Some(evidence) = request.evidence {
        let binding = channel_binding.ok_or_else(|| {
            Failure::Internal(
                "attestation evidence needs the session's channel binding (RFC 9266), which \
                 this connection does not have"
                    .into(),
            )
        })?;
        attributes.push(evidence(binding)?);
    }
    let params = CsrParams {
        extensions: request.extensions.clone(),
        challenge_password: channel_binding.map(est::pop_linking_value),
        attributes,
    };
    build_csr(request.subject, request.key, &params)
        .map_err(|e| Failure::Internal(format!("CSR: {e}")))
}

/// The extensions `/csrattrs` asks the CSR to request with their values (RFC 8995 §5.9.2,
/// RFC 8994 §6.2.2: e.g. a subjectAltName with the ACP node name).
pub fn requested_extensions(attrs: Option<&CsrAttrs>) -> Vec<Extension> {
    attrs.map(CsrAttrs::extension_templates).unwrap_or_default()
}

/// The attestation evidence `/csrattrs` asks for (SPEC §9), if any; an unreadable request is
/// logged and ignored (the registrar decides what a CSR without evidence gets).
pub fn evidence_request(attrs: Option<&CsrAttrs>) -> Option<EvidenceRequest> {
    match EvidenceRequest::from_csr_attrs(attrs?) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(step = "csrattrs", error = %e, "unreadable attestation request; sending no evidence");
            None
        }
    }
}

/// The longest wait between two attempts while the registrar answers 202 (RFC 7030 §4.2.3):
/// a Retry-After beyond it is not honoured in full.
pub const PENDING_RETRY_CAP: Duration = Duration::from_secs(60);

/// POST a CSR to `path` (simpleenroll or simplereenroll), made for each connection it is
/// sent on, waiting out 202 answers as the registrar's `Retry-After` says, at most
/// [`PENDING_RETRY_CAP`] each and `max_wait` in all (RFC 7030 §4.2.3); decode the certs-only
/// reply.
pub async fn enroll(
    session: &mut Session,
    step: Step,
    path: &str,
    request: &CsrRequest<'_>,
    max_wait: Duration,
) -> Result<Vec<Certificate>, Failure> {
    // RFC 8951: base64 over HTTPS; RFC 9148 §4.3: DER as it is over CoAP.
    let transport = session.transport();
    let make = |binding: Option<&[u8]>| {
        csr(request, binding).map(|der| match transport {
            Transport::Https => est::encode_base64_body(&der).into_bytes(),
            Transport::Coaps => der,
        })
    };
    let x =
        Exchange::post(step, path, media_type::PKCS10, &[]).accepting(media_type::PKCS7_CERTS_ONLY);
    let r = session
        .send_made_until_done(&x, &make, Some(PENDING_RETRY_CAP), max_wait)
        .await?;
    expect_ok(step, &r)?;
    decode_certs(step, &r.body)
}

/// Check the certificates the registrar issued: one of them carries `key`'s public key, and
/// it validates to `domain_ca`. Returns what to keep as the LDevID chain: the certificate, then
/// any intermediates up to (not including) the domain CA.
pub fn check_issued(
    step: Step,
    mut certs: Vec<Certificate>,
    key: &dyn Signer,
    domain_ca: &[Certificate],
    time: TimeCheck,
) -> Result<Vec<Certificate>, Failure> {
    let ours = certs.iter().position(|c| {
        c.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .is_ok_and(|spki| spki == key.public_key_spki())
    });
    let Some(i) = ours else {
        return Err(Failure::Protocol {
            step,
            reason: "the issued certificate is not for this pledge's new key".into(),
        });
    };
    let ldevid = certs.remove(i);
    let policy = TrustPolicy::new(domain_ca.to_vec()).with_time(time);
    let mut path = validate_chain(&ldevid, &certs, &policy).map_err(|e| Failure::Protocol {
        step,
        reason: format!("the issued certificate does not validate to the domain CA: {e}"),
    })?;
    if path.len() > 1 {
        path.pop();
    }
    Ok(path.into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::est::{AttrOrOid, RawOid};
    use brski_common::pki::{issue, name_from_parts, profile, self_signed};
    use der::Any;
    use proptest::prelude::*;

    fn attrs_for_ec(curve: Option<const_oid::ObjectIdentifier>) -> CsrAttrs {
        CsrAttrs(vec![match curve {
            Some(c) => AttrOrOid::Attribute {
                oid: RawOid::from(rfc5912::ID_EC_PUBLIC_KEY),
                values: vec![Any::from(&c)],
            },
            None => AttrOrOid::Oid(RawOid::from(rfc5912::ID_EC_PUBLIC_KEY)),
        }])
    }

    #[test]
    fn rfc8995_5_9_2_requested_key_types_are_honoured_where_supported() {
        assert_eq!(key_algorithm(None), SignatureAlgorithm::EcdsaP256Sha256);
        assert_eq!(
            key_algorithm(Some(&attrs_for_ec(Some(rfc5912::SECP_384_R_1)))),
            SignatureAlgorithm::EcdsaP384Sha384
        );
        assert_eq!(
            key_algorithm(Some(&attrs_for_ec(Some(rfc5912::SECP_256_R_1)))),
            SignatureAlgorithm::EcdsaP256Sha256
        );
        assert_eq!(
            key_algorithm(Some(&attrs_for_ec(None))),
            SignatureAlgorithm::EcdsaP256Sha256
        );
        let ed = CsrAttrs(vec![AttrOrOid::Oid(RawOid::from(
            const_oid::db::rfc8410::ID_ED_25519,
        ))]);
        assert_eq!(key_algorithm(Some(&ed)), SignatureAlgorithm::Ed25519);
        // Unsupported: P-521 and RSA fall back to P-256.
        assert_eq!(
            key_algorithm(Some(&attrs_for_ec(Some(rfc5912::SECP_521_R_1)))),
            SignatureAlgorithm::EcdsaP256Sha256
        );
        let rsa = CsrAttrs(vec![AttrOrOid::Oid(RawOid::from(rfc5912::RSA_ENCRYPTION))]);
        assert_eq!(
            key_algorithm(Some(&rsa)),
            SignatureAlgorithm::EcdsaP256Sha256
        );
    }

    struct Ca {
        key: SoftwareKey,
        cert: Certificate,
    }

    fn ca(name: &str) -> Ca {
        let key = generate_key(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
        let cert = self_signed(
            &profile::domain_ca(name_from_parts(Some(name), None, None).expect("n")).expect("p"),
            &key,
        )
        .expect("ca");
        Ca { key, cert }
    }

    fn ldevid(ca: &Ca, key: &SoftwareKey) -> Certificate {
        issue(
            &profile::ldevid(name_from_parts(None, None, Some("SN-1")).expect("n")).expect("p"),
            key.public_key_spki(),
            Some(&ca.cert),
            &ca.key,
        )
        .expect("issue")
    }

    #[test]
    fn rfc7030_4_2_3_issued_certificate_is_for_our_key_and_chains_to_the_domain_ca() {
        let domain = ca("Domain CA");
        let key = generate_key(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
        let cert = ldevid(&domain, &key);
        let kept = check_issued(
            Step::SimpleEnroll,
            vec![domain.cert.clone(), cert.clone()],
            &key,
            std::slice::from_ref(&domain.cert),
            TimeCheck::Now,
        )
        .expect("ok");
        assert_eq!(kept, vec![cert.clone()], "the domain CA itself is not kept");

        let other_key = generate_key(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
        let err = check_issued(
            Step::SimpleEnroll,
            vec![cert.clone()],
            &other_key,
            std::slice::from_ref(&domain.cert),
            TimeCheck::Now,
        )
        .expect_err("another key");
        assert!(
            matches!(&err, Failure::Protocol { step: Step::SimpleEnroll, reason } if reason.contains("not for this pledge's new key")),
            "{err}"
        );

        let rogue = ca("Rogue CA");
        let err = check_issued(
            Step::SimpleReenroll,
            vec![ldevid(&rogue, &key)],
            &key,
            std::slice::from_ref(&domain.cert),
            TimeCheck::Now,
        )
        .expect_err("another CA");
        assert!(
            matches!(&err, Failure::Protocol { step: Step::SimpleReenroll, reason } if reason.contains("does not validate to the domain CA")),
            "{err}"
        );
    }

    #[test]
    fn rfc8995_5_9_1_cacerts_must_validate_the_registrar() {
        let domain = ca("Domain CA");
        let key = generate_key(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
        let registrar = issue(
            &profile::registrar(
                name_from_parts(Some("registrar"), None, None).expect("n"),
                &["registrar.example"],
                &[],
            )
            .expect("p"),
            key.public_key_spki(),
            Some(&domain.cert),
            &domain.key,
        )
        .expect("issue");
        let chain = vec![registrar.to_der().expect("der")];
        check_cacerts(std::slice::from_ref(&domain.cert), &chain, TimeCheck::Now).expect("ok");
        let other = ca("Other CA");
        let err = check_cacerts(std::slice::from_ref(&other.cert), &chain, TimeCheck::Now)
            .expect_err("unrelated CA");
        assert!(
            matches!(&err, Failure::Protocol { step: Step::CaCerts, reason } if reason.contains("do not validate the registrar")),
            "{err}"
        );
        let err = check_cacerts(
            std::slice::from_ref(&domain.cert),
            &[vec![0x30, 0x00]],
            TimeCheck::Now,
        )
        .expect_err("garbage");
        assert!(matches!(
            err,
            Failure::Protocol {
                step: Step::CaCerts,
                ..
            }
        ));
    }

    #[test]
    fn certs_only_bodies_in_base64_or_der() {
        let domain = ca("Domain CA");
        let der = est::encode_certs_only(std::slice::from_ref(&domain.cert)).expect("der");
        let b64 = est::encode_base64_body(&der);
        assert_eq!(
            decode_certs(Step::CaCerts, b64.as_bytes()).expect("b64"),
            vec![domain.cert.clone()]
        );
        assert_eq!(
            decode_certs(Step::CaCerts, &der).expect("der"),
            vec![domain.cert.clone()]
        );
        assert!(matches!(
            decode_certs(Step::CaCerts, b"not base64 !"),
            Err(Failure::Protocol {
                step: Step::CaCerts,
                ..
            })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn certs_only_decoder_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_certs(Step::SimpleEnroll, &body);
        }
    }
}
