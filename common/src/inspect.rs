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
        "content": content.and_then(|c| c.get("content").cloned()).unwrap_or_else(|| json!(hex::encode(&parsed.payload))),
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
    use der::Decode;
    use serde_json::{Value, json};
    use x509_cert::Certificate;
    use x509_cert::request::CertReq;

    /// The signed payload of an envelope: a voucher or voucher-request in JSON or CBOR.
    pub fn decode_payload(payload: &[u8]) -> Option<Value> {
        if let Ok(v) = serde_json::from_slice::<Value>(payload) {
            return decode_json(&v);
        }
        None
    }

    /// A JSON artifact: voucher, voucher-request, telemetry or audit log.
    pub fn decode_json(value: &Value) -> Option<Value> {
        let obj = value.as_object()?;
        if obj.contains_key("ietf-voucher:voucher") {
            return Some(json!({"artifact": "voucher", "content": value}));
        }
        if obj.contains_key("ietf-voucher-request:voucher") {
            return Some(json!({"artifact": "voucher-request", "content": value}));
        }
        None
    }

    /// A binary (DER or CBOR) artifact that is not a signed envelope.
    pub fn decode_binary(item: &[u8]) -> Option<Value> {
        if let Ok(cert) = Certificate::from_der(item) {
            return Some(json!({"artifact": "certificate", "content": cert_summary(&cert)}));
        }
        if let Ok(req) = CertReq::from_der(item) {
            return Some(json!({"artifact": "csr", "content": {
                "subject": req.info.subject.to_string(),
            }}));
        }
        None
    }
}
