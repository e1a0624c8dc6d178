//! Decoding any artifact of the suite to JSON for people: vouchers and voucher-requests in CMS,
//! JWS or COSE; certificates; CSRs; EST bodies; telemetry; the audit log. With trust anchors,
//! the envelope's signature is verified and the signer chain reported.

use crate::envelope::{self, Format};
use crate::input::{Encoding, artifact_bytes};
use crate::pki::chain::{TimeCheck, TrustPolicy};
use der::{Decode, Encode};
use serde_json::{Value, json};
use x509_cert::Certificate;

/// Why an artifact could not be inspected or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("cannot read input: {0}")]
    Input(#[from] crate::input::InputError),
    #[error(
        "not an artifact this tool knows (tried: voucher envelopes, certificates, CSRs, EST bodies, telemetry, audit log)"
    )]
    Unknown,
    #[error("signature verification failed: {0}")]
    Verification(#[from] envelope::EnvelopeError),
    #[error("trust anchor file holds no certificate")]
    NoAnchor,
}

/// What to check while inspecting.
#[derive(Clone, Debug, Default)]
pub struct InspectOptions {
    /// Trust anchors; when empty the signature is reported as not checked.
    pub anchors: Vec<Certificate>,
    /// Whether certificate validity periods are checked.
    pub time: TimeCheck,
}

impl InspectOptions {
    /// Options trusting the certificates in a PEM/DER/base64 file's contents.
    pub fn with_anchor_file(data: &[u8], check_time: bool) -> Result<Self, InspectError> {
        let (_, items) = artifact_bytes(data)?;
        let anchors: Vec<Certificate> = items
            .iter()
            .filter_map(|d| Certificate::from_der(d).ok())
            .collect();
        if anchors.is_empty() {
            return Err(InspectError::NoAnchor);
        }
        Ok(Self {
            anchors,
            time: if check_time {
                TimeCheck::Now
            } else {
                TimeCheck::Skip
            },
        })
    }
}

/// Decode `data` (a file's contents) and describe it as JSON.
pub fn inspect(data: &[u8], opts: &InspectOptions) -> Result<Value, InspectError> {
    let (encoding, items) = artifact_bytes(data)?;
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        let mut v = inspect_one(item, encoding, opts)?;
        if let Value::Object(m) = &mut v {
            m.insert("encoding".into(), json!(encoding_name(encoding)));
        }
        out.push(v);
    }
    Ok(if out.len() == 1 {
        out.swap_remove(0)
    } else {
        Value::Array(out)
    })
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Pem => "pem",
        Encoding::Der => "der",
        Encoding::Base64 => "base64",
        Encoding::Hex => "hex",
        Encoding::Text => "text",
    }
}

fn inspect_one(
    item: &[u8],
    encoding: Encoding,
    opts: &InspectOptions,
) -> Result<Value, InspectError> {
    if encoding == Encoding::Text {
        return inspect_json_text(item, opts);
    }
    if let Some(v) = try_signed_envelope(item, opts)? {
        return Ok(v);
    }
    if let Some(v) = decoders::decode_binary(item) {
        return Ok(v);
    }
    // A base64 file may hold JSON text (a JWS, telemetry) rather than DER.
    if item.first() == Some(&b'{') {
        return inspect_json_text(item, opts);
    }
    Err(InspectError::Unknown)
}

fn inspect_json_text(item: &[u8], opts: &InspectOptions) -> Result<Value, InspectError> {
    let value: Value = serde_json::from_slice(item).map_err(|_| InspectError::Unknown)?;
    if value.get("payload").is_some() {
        if let Some(v) = try_signed_envelope(item, opts)? {
            return Ok(v);
        }
    }
    decoders::decode_json(&value).ok_or(InspectError::Unknown)
}

/// A voucher envelope: decoded, and verified when anchors are given.
fn try_signed_envelope(item: &[u8], opts: &InspectOptions) -> Result<Option<Value>, InspectError> {
    let Some(format) = Format::detect(item) else {
        return Ok(None);
    };
    let Ok(parsed) = envelope::parse(format, item) else {
        return Ok(None);
    };
    let content = decoders::decode_payload(&parsed.payload);
    let kind = content
        .as_ref()
        .and_then(|c| c.get("artifact"))
        .cloned()
        .unwrap_or(json!("signed-payload"));
    let signature = if opts.anchors.is_empty() {
        json!({"verdict": "not checked (no trust anchor given)"})
    } else {
        let policy = TrustPolicy {
            anchors: opts.anchors.clone(),
            time: opts.time,
            required_eku: None,
        };
        let verified = envelope::verify(format, item, &policy, &[])?;
        json!({
            "verdict": "verified",
            "signer_chain": verified.chain.iter().map(cert_summary).collect::<Vec<_>>(),
        })
    };
    Ok(Some(json!({
        "artifact": kind,
        "envelope": {
            "format": format_name(format),
            "media_type": format.media_type(),
            "algorithm": parsed.algorithm,
            "certificates": parsed.certificates.iter().map(cert_summary).collect::<Vec<_>>(),
        },
        "content": content.as_ref().and_then(|c| c.get("content").cloned()).unwrap_or_else(|| json!(hex::encode(&parsed.payload))),
        "details": content.as_ref().and_then(|c| c.get("details").cloned()),
        "signature": signature,
    })))
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Cms => "cms",
        Format::Jws => "jws",
        Format::Cose => "cose",
    }
}

/// A short JSON description of a certificate.
pub fn cert_summary(cert: &Certificate) -> Value {
    let tbs = cert.tbs_certificate();
    json!({
        "subject": tbs.subject().to_string(),
        "issuer": tbs.issuer().to_string(),
        "serial": hex::encode(tbs.serial_number().as_bytes()),
        "not_before": tbs.validity().not_before.to_string(),
        "not_after": tbs.validity().not_after.to_string(),
        "sha256": cert.to_der().map(|d| hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &d))).unwrap_or_default(),
    })
}

/// The decoders for each kind of artifact, tried in turn.
mod decoders {
    use super::cert_summary;
    use crate::attest::{AttestationBundle, Attested, TpmEvidence, TpmsAttest};
    use crate::envelope::Format;
    use crate::telemetry::StatusTelemetry;
    use crate::voucher::{Voucher, VoucherRequest};
    use crate::{audit, est, pki};
    use der::Decode;
    use serde_json::{Value, json};
    use x509_cert::Certificate;

    fn to_value(json_bytes: &[u8]) -> Option<Value> {
        serde_json::from_slice(json_bytes).ok()
    }

    /// A voucher or voucher-request payload, JSON (CMS, JWS) or CBOR (COSE), rendered in the
    /// RFC 7951 JSON form.
    pub fn decode_payload(payload: &[u8]) -> Option<Value> {
        let format = if payload.first() == Some(&b'{') {
            Format::Cms
        } else {
            Format::Cose
        };
        if let Ok(v) = Voucher::from_payload(format, payload) {
            let content = v
                .to_json()
                .ok()
                .and_then(|j| to_value(&j))
                .unwrap_or(Value::Null);
            let mut out = json!({"artifact": "voucher", "content": content});
            if let Some(cert) = v
                .pinned_domain_cert
                .as_deref()
                .and_then(|d| Certificate::from_der(d).ok())
            {
                out["details"] = json!({"pinned-domain-cert": certificate(&cert)});
            }
            return Some(out);
        }
        if let Ok(r) = VoucherRequest::from_payload(format, payload) {
            let content = r
                .to_json()
                .ok()
                .and_then(|j| to_value(&j))
                .unwrap_or(Value::Null);
            let mut out = json!({"artifact": "voucher-request", "content": content});
            if let Some(prior) = &r.prior_signed_voucher_request {
                out["details"] = json!({"prior-signed-voucher-request": describe_prior(prior)});
            }
            if let Some(cert) = r
                .proximity_registrar_cert
                .as_deref()
                .and_then(|d| Certificate::from_der(d).ok())
            {
                out["details"]["proximity-registrar-cert"] = certificate(&cert);
            }
            return Some(out);
        }
        None
    }

    /// The prior-signed pledge request inside a registrar request: decoded, not verified.
    fn describe_prior(prior: &[u8]) -> Value {
        let Some(format) = Format::detect(prior) else {
            return json!("unrecognised");
        };
        match crate::envelope::parse(format, prior) {
            Ok(p) => json!({
                "format": format.media_type(),
                "certificates": p.certificates.iter().map(cert_summary).collect::<Vec<_>>(),
                "content": decode_payload(&p.payload).and_then(|v| v.get("content").cloned()),
            }),
            Err(e) => json!(format!("undecodable: {e}")),
        }
    }

    /// A JSON artifact: voucher, voucher-request (unsigned), telemetry or audit log.
    pub fn decode_json(value: &Value) -> Option<Value> {
        let text = serde_json::to_vec(value).ok()?;
        if let Some(v) = decode_payload(&text) {
            return Some(v);
        }
        let obj = value.as_object()?;
        if obj.contains_key("events") {
            let log = audit::AuditLog::from_json(&text).ok()?;
            let strict = log.to_json().ok().and_then(|j| to_value(&j))?;
            return Some(json!({"artifact": "audit-log", "content": strict}));
        }
        if obj.contains_key("status") {
            let t = StatusTelemetry::from_json(&text).ok()?;
            return Some(json!({"artifact": "status-telemetry", "content": telemetry_json(&t)}));
        }
        None
    }

    fn telemetry_json(t: &StatusTelemetry) -> Value {
        let mut v = t.to_json().ok().and_then(|j| to_value(&j)).unwrap_or_else(
            || json!({"version": t.version, "status": t.status, "reason": t.reason}),
        );
        if !t.unknown.is_empty() {
            if let Value::Object(m) = &mut v {
                m.insert("ignored-unknown-keys".into(), json!(t.unknown));
            }
        }
        v
    }

    /// A certificate with the BRSKI fields of interest.
    fn certificate(cert: &Certificate) -> Value {
        let mut v = cert_summary(cert);
        if let Value::Object(m) = &mut v {
            if let Some(serial) = pki::ext::serial_number(cert) {
                m.insert("serial-number".into(), json!(serial));
            }
            if let Ok(Some(url)) = pki::ext::masa_url(cert) {
                m.insert("masa-url".into(), json!(url));
            }
            if let Ok(Some(hw)) = pki::ext::hardware_module_name(cert) {
                m.insert(
                    "hardware-module-name".into(),
                    json!({"hw-type": hw.hw_type.to_string(), "hw-serial-num": hex::encode(hw.hw_serial_num.as_bytes())}),
                );
            }
            let ekus: Vec<String> = [
                (crate::oid::ID_KP_CMC_RA, "id-kp-cmcRA"),
                (crate::oid::ID_KP_SERVER_AUTH, "id-kp-serverAuth"),
                (crate::oid::ID_KP_CLIENT_AUTH, "id-kp-clientAuth"),
            ]
            .iter()
            .filter(|(oid, _)| pki::ext::has_eku(cert, *oid))
            .map(|(_, n)| (*n).to_string())
            .collect();
            if !ekus.is_empty() {
                m.insert("extended-key-usage".into(), json!(ekus));
            }
            if let Ok(id) = pki::ext::domain_id_base64(cert) {
                m.insert("domain-id".into(), json!(id));
            }
            if let Ok(policies) = pki::ext::certificate_policies(cert) {
                if !policies.is_empty() {
                    let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
                    m.insert("certificate-policies".into(), json!(names));
                }
            }
        }
        v
    }

    /// An AttestationBundle (draft-ietf-lamps-csr-attestation §4.1): its statements, TPM ones
    /// decoded (type, qualifying data, what was certified or quoted), and its certificates.
    fn attestation_bundle(bundle: &AttestationBundle) -> Value {
        let statements: Vec<Value> = bundle
            .attestations
            .iter()
            .map(|s| json!({"type": s.stmt_type.to_string()}))
            .collect();
        let mut v = json!({
            "statements": statements,
            "certificates": bundle.x509_certs().map(certificate).collect::<Vec<_>>(),
        });
        match TpmEvidence::from_bundle(bundle) {
            Ok(evidence) => {
                if let Some(c) = &evidence.certify {
                    v["tpm-certify"] = tpms_attest(c.tpms_attest.as_bytes());
                }
                if let Some(q) = &evidence.quote {
                    v["tpm-quote"] = tpms_attest(q.tpms_attest.as_bytes());
                }
            }
            Err(e) => v["error"] = json!(e.to_string()),
        }
        v
    }

    fn tpms_attest(bytes: &[u8]) -> Value {
        match TpmsAttest::decode(bytes) {
            Err(e) => json!({"error": e.to_string()}),
            Ok(info) => {
                let mut v = json!({
                    "qualifying-data": hex::encode(&info.extra_data),
                    "signer": hex::encode(&info.qualified_signer),
                    "reset-count": info.clock_info.reset_count,
                });
                match &info.attested {
                    Attested::Certify { name, .. } => {
                        v["certified-name"] = json!(hex::encode(name))
                    }
                    Attested::Quote {
                        pcr_select,
                        pcr_digest,
                    } => {
                        let banks: Vec<Value> = pcr_select
                            .0
                            .iter()
                            .map(|b| json!({"hash": format!("{:?}", b.hash), "pcrs": b.pcrs}))
                            .collect();
                        v["pcrs"] = json!(banks);
                        v["pcr-digest"] = json!(hex::encode(pcr_digest));
                    }
                }
                v
            }
        }
    }

    /// A binary (DER or CBOR) artifact that is not a signed envelope.
    pub fn decode_binary(item: &[u8]) -> Option<Value> {
        if let Ok(cert) = Certificate::from_der(item) {
            return Some(json!({"artifact": "certificate", "content": certificate(&cert)}));
        }
        if let Ok(req) = pki::csr::parse_csr(item) {
            let verdict = match pki::csr::verify_csr(item) {
                Ok(_) => "self-signature verified".to_string(),
                Err(e) => format!("self-signature does not verify: {e}"),
            };
            let extensions: Vec<String> = pki::csr::requested_extensions(&req)
                .map(|exts| exts.iter().map(|e| e.extn_id.to_string()).collect())
                .unwrap_or_default();
            let mut content = json!({
                "subject": req.info.subject.to_string(),
                "requested-extensions": extensions,
                "challenge-password": pki::csr::challenge_password(&req).ok().flatten().is_some(),
                "signature": verdict,
            });
            match AttestationBundle::from_csr(&req) {
                Ok(Some(bundle)) => content["attestation"] = attestation_bundle(&bundle),
                Ok(None) => {}
                Err(e) => content["attestation"] = json!({"error": e.to_string()}),
            }
            return Some(json!({"artifact": "csr", "content": content}));
        }
        if let Ok(certs) = est::decode_certs_only(item) {
            return Some(json!({"artifact": "est-certs-only", "content": {
                "certificates": certs.iter().map(certificate).collect::<Vec<_>>(),
            }}));
        }
        if let Ok(bundle) = AttestationBundle::from_der(item) {
            return Some(
                json!({"artifact": "attestation-bundle", "content": attestation_bundle(&bundle)}),
            );
        }
        if let Ok(attrs) = est::CsrAttrs::from_der(item) {
            let items: Vec<String> = attrs.oids().map(|o| o.to_string()).collect();
            return Some(json!({"artifact": "est-csrattrs", "content": {
                "items": items,
                "challenge-password": attrs.requests_challenge_password(),
            }}));
        }
        if let Some(v) = decode_payload(item) {
            return Some(v);
        }
        if let Ok(t) = StatusTelemetry::from_cbor(item) {
            return Some(json!({"artifact": "status-telemetry", "content": telemetry_json(&t)}));
        }
        if let Ok(parts) = est::decode_multipart_core(item) {
            return Some(
                json!({"artifact": "multipart-core", "content": parts.iter().map(|p| json!({
                "content-format": p.content_format.0,
                "length": p.representation.as_ref().map(|r| r.len()),
            })).collect::<Vec<_>>()}),
            );
        }
        None
    }
}
