//! COSE_Sign1 vouchers and voucher-requests (`application/voucher+cose`, cBRSKI §9.2;
//! RFC 9052 §4.2).
//!
//! Output is `18([h'A1 01 alg', unprotected, payload, signature])` with the protected header
//! exactly `{1: alg}` (`h'A10126'` for ES256, cBRSKI §9.2) and the carried certificates in an
//! unprotected `x5bag` (label 32, RFC 9360 §2), as cBRSKI §9.2.3 asks of the MASA. Input may be
//! tagged or untagged; certificates are read from `x5bag` and `x5chain` (33) in either bucket.
//! `kid` (4) is never used for trust. Encoding and decoding are hand-written over `ciborium`
//! values, so that the protected header and payload are verified as the exact bytes received.

use super::jws::{check_chain_matches_signer, check_signature_length, verify_fixed_signature};
use super::{EnvelopeError, Format, Parsed, Verified, find_signer_and_validate};
use crate::keys::{KeyError, SignatureAlgorithm, Signer, sign_fixed};
use crate::pki::chain::TrustPolicy;
use ciborium::Value;
use der::{Decode, Encode};
use std::collections::BTreeSet;
use x509_cert::Certificate;

/// CBOR tag of COSE_Sign1 (RFC 9052 §4.2).
pub const TAG_COSE_SIGN1: u64 = 18;
/// Header label `alg` (RFC 9052 §3.1).
pub const LABEL_ALG: i64 = 1;
/// Header label `crit` (RFC 9052 §3.1).
pub const LABEL_CRIT: i64 = 2;
/// Header label `content type` (RFC 9052 §3.1).
pub const LABEL_CONTENT_TYPE: i64 = 3;
/// Header label `kid` (RFC 9052 §3.1); ignored for trust (cBRSKI §9.2.2).
pub const LABEL_KID: i64 = 4;
/// Header label `x5bag`: an unordered bag of certificates (RFC 9360 §2).
pub const LABEL_X5BAG: i64 = 32;
/// Header label `x5chain`: an ordered chain, signer first (RFC 9360 §2).
pub const LABEL_X5CHAIN: i64 = 33;

/// Most certificates accepted in the `x5bag`/`x5chain` headers of one envelope.
pub const MAX_CERTIFICATES: usize = 16;

/// Labels this implementation processes, and so may appear in `crit` (RFC 9052 §3.1).
const UNDERSTOOD: [i64; 5] = [
    LABEL_ALG,
    LABEL_CONTENT_TYPE,
    LABEL_KID,
    LABEL_X5BAG,
    LABEL_X5CHAIN,
];

fn malformed(reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        format: Format::Cose,
        reason: reason.into(),
    }
}

/// Sign `payload` as a tagged COSE_Sign1 (RFC 9052 §4.4, cBRSKI §9.2). The protected header
/// is `{1: alg}` for the signer's algorithm (-7, -35 or -8). A non-empty `chain` goes into an
/// unprotected `x5bag` (cBRSKI §9.2.3; one certificate as a bare bstr, several as an array,
/// RFC 9360 §2); an empty one leaves the unprotected header `{}` (a PVR, cBRSKI §9.2.2).
pub fn sign(
    payload: &[u8],
    signer: &dyn Signer,
    chain: &[Certificate],
) -> Result<Vec<u8>, EnvelopeError> {
    sign_with_x5chain(payload, signer, &[], chain)
}

/// [`sign`], with `x5chain` (signer first) also in the protected header: for a voucher to a
/// pledge that stores a CA rather than the MASA's signing key, which then survives the
/// registrar's removal of the unprotected certificates (cBRSKI §9.2.3, §6.8; RFC 9360 §2).
pub fn sign_with_x5chain(
    payload: &[u8],
    signer: &dyn Signer,
    x5chain: &[Certificate],
    chain: &[Certificate],
) -> Result<Vec<u8>, EnvelopeError> {
    check_chain_matches_signer(signer, x5chain)?;
    check_chain_matches_signer(signer, chain)?;
    let protected_certs = certificates_der(x5chain)?;
    let mut protected = Vec::with_capacity(8 + protected_certs.iter().map(Vec::len).sum::<usize>());
    put_head(
        &mut protected,
        MAJOR_MAP,
        if protected_certs.is_empty() { 1 } else { 2 },
    );
    put_int(&mut protected, LABEL_ALG);
    put_int(&mut protected, signer.algorithm().cose_alg());
    if !protected_certs.is_empty() {
        put_certificates(&mut protected, LABEL_X5CHAIN, &protected_certs);
    }
    let signature = sign_fixed(signer, &sig_structure1(&protected, payload))?;

    let certs = certificates_der(chain)?;
    let certs_len: usize = certs.iter().map(Vec::len).sum();
    let mut out =
        Vec::with_capacity(protected.len() + payload.len() + certs_len + signature.len() + 32);
    put_head(&mut out, MAJOR_TAG, TAG_COSE_SIGN1);
    put_head(&mut out, MAJOR_ARRAY, 4);
    put_bstr(&mut out, &protected);
    if certs.is_empty() {
        put_head(&mut out, MAJOR_MAP, 0);
    } else {
        put_head(&mut out, MAJOR_MAP, 1);
        put_certificates(&mut out, LABEL_X5BAG, &certs);
    }
    put_bstr(&mut out, payload);
    put_bstr(&mut out, &signature);
    Ok(out)
}

fn certificates_der(chain: &[Certificate]) -> Result<Vec<Vec<u8>>, EnvelopeError> {
    chain
        .iter()
        .map(|c| {
            c.to_der().map_err(|e| {
                EnvelopeError::Signing(KeyError::SigningFailed(format!(
                    "certificate encoding: {e}"
                )))
            })
        })
        .collect()
}

/// `label: COSE_X509`: one certificate as a bare bstr, several as an array (RFC 9360 §2).
fn put_certificates(out: &mut Vec<u8>, label: i64, certs: &[Vec<u8>]) {
    put_int(out, label);
    match certs {
        [one] => put_bstr(out, one),
        several => {
            put_head(out, MAJOR_ARRAY, several.len() as u64);
            for der in several {
                put_bstr(out, der);
            }
        }
    }
}

/// Verify a COSE_Sign1 voucher or voucher-request (RFC 9052 §4.4, cBRSKI §9.2).
///
/// `alg` must be in the protected header (-7, -35 or -8, else
/// [`EnvelopeError::UnsupportedAlgorithm`]). The signer is the first of the envelope's
/// `x5bag`/`x5chain` certificates, `extra` (e.g. the pledge's DTLS client certificate for a
/// PVR, cBRSKI §9.2.2) and the anchors whose key verifies the signature; its chain is then
/// validated under `policy`.
pub fn verify(
    bytes: &[u8],
    policy: &TrustPolicy,
    extra: &[Certificate],
) -> Result<Verified, EnvelopeError> {
    let msg = Sign1::decode(bytes)?;
    let headers = Headers::decode(&msg)?;
    let alg = match headers.alg {
        Alg::Known(a) => a,
        Alg::Other(name) => {
            return Err(EnvelopeError::UnsupportedAlgorithm(format!(
                "COSE alg {name}"
            )));
        }
    };
    check_signature_length(alg, &msg.signature).map_err(malformed)?;
    let tbs = sig_structure1(&msg.protected, &msg.payload);
    let mut candidates = headers.certificates;
    candidates.extend(extra.iter().cloned());
    let chain = find_signer_and_validate(&candidates, policy, |spki| {
        verify_fixed_signature(spki, alg, &tbs, &msg.signature)
    })?;
    Ok(Verified {
        format: Format::Cose,
        payload: msg.payload,
        chain,
        signing_time: None,
    })
}

/// Decode a COSE_Sign1 without verifying it. `algorithm` is the COSE algorithm name (`ES256`,
/// `ES384`, `EdDSA`), or the label's number or text when this implementation does not know it;
/// `certificates` are those of `x5bag` and `x5chain`, protected bucket first.
pub fn parse(bytes: &[u8]) -> Result<Parsed, EnvelopeError> {
    let msg = Sign1::decode(bytes)?;
    let headers = Headers::decode(&msg)?;
    let algorithm = match headers.alg {
        Alg::Known(a) => a.jws_alg().to_string(),
        Alg::Other(name) => name,
    };
    Ok(Parsed {
        format: Format::Cose,
        payload: msg.payload,
        certificates: headers.certificates,
        algorithm,
    })
}

/// Remove `x5bag` and `x5chain` from the unprotected header (cBRSKI §6.8: the registrar strips
/// them before relaying a voucher to the pledge). The protected header, payload and signature
/// are kept byte for byte, so the signature stays valid; other unprotected parameters and the
/// presence of tag 18 are kept.
pub fn strip_unprotected_certs(bytes: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let msg = Sign1::decode(bytes)?;
    let kept: Vec<(Value, Value)> = msg
        .unprotected
        .into_iter()
        .filter(|(k, _)| !is_label(k, LABEL_X5BAG) && !is_label(k, LABEL_X5CHAIN))
        .collect();
    let mut unprotected = Vec::new();
    ciborium::ser::into_writer(&Value::Map(kept), &mut unprotected)
        .map_err(|e| malformed(format!("re-encoding the unprotected header: {e}")))?;
    let mut out = Vec::with_capacity(bytes.len());
    if msg.tagged {
        put_head(&mut out, MAJOR_TAG, TAG_COSE_SIGN1);
    }
    put_head(&mut out, MAJOR_ARRAY, 4);
    put_bstr(&mut out, &msg.protected);
    out.extend_from_slice(&unprotected);
    put_bstr(&mut out, &msg.payload);
    put_bstr(&mut out, &msg.signature);
    Ok(out)
}

/// The bytes signed: `Sig_structure = ["Signature1", protected, external_aad = h'', payload]`
/// (RFC 9052 §4.4), in deterministic encoding.
pub fn sig_structure1(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    const CONTEXT: &str = "Signature1";
    let mut out = Vec::with_capacity(protected.len() + payload.len() + 24);
    put_head(&mut out, MAJOR_ARRAY, 4);
    put_head(&mut out, MAJOR_TEXT, CONTEXT.len() as u64);
    out.extend_from_slice(CONTEXT.as_bytes());
    put_bstr(&mut out, protected);
    put_bstr(&mut out, &[]);
    put_bstr(&mut out, payload);
    out
}

const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;

/// A CBOR head with the shortest argument (RFC 8949 §3, §4.2.1).
fn put_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if let Ok(a) = u8::try_from(arg) {
        out.extend_from_slice(&[m | 24, a]);
    } else if let Ok(a) = u16::try_from(arg) {
        out.push(m | 25);
        out.extend_from_slice(&a.to_be_bytes());
    } else if let Ok(a) = u32::try_from(arg) {
        out.push(m | 26);
        out.extend_from_slice(&a.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

fn put_int(out: &mut Vec<u8>, n: i64) {
    match u64::try_from(n) {
        Ok(u) => put_head(out, MAJOR_UINT, u),
        // -1 - n for negative n is in 0..=i64::MAX.
        Err(_) => put_head(out, MAJOR_NINT, (-1 - n) as u64),
    }
}

fn put_bstr(out: &mut Vec<u8>, bytes: &[u8]) {
    put_head(out, MAJOR_BYTES, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Decode exactly one CBOR data item filling `bytes`.
fn decode_item(bytes: &[u8], what: &str) -> Result<Value, EnvelopeError> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader(&mut rest)
        .map_err(|e| malformed(format!("{what} is not CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} bytes after the {what}", rest.len())));
    }
    Ok(value)
}

/// A header label (RFC 9052 §3: `label = int / tstr`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Label {
    Int(i128),
    Text(String),
}

impl Label {
    fn of(v: &Value) -> Result<Self, EnvelopeError> {
        match v {
            Value::Integer(i) => Ok(Self::Int(i128::from(*i))),
            Value::Text(t) => Ok(Self::Text(t.clone())),
            _ => Err(malformed("a header label is neither an integer nor text")),
        }
    }
}

fn is_label(v: &Value, label: i64) -> bool {
    matches!(v, Value::Integer(i) if i128::from(*i) == i128::from(label))
}

fn get(map: &[(Value, Value)], label: i64) -> Option<&Value> {
    map.iter().find(|(k, _)| is_label(k, label)).map(|(_, v)| v)
}

/// A decoded COSE_Sign1 (RFC 9052 §4.2), byte strings as received.
struct Sign1 {
    tagged: bool,
    protected: Vec<u8>,
    protected_map: Vec<(Value, Value)>,
    unprotected: Vec<(Value, Value)>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl Sign1 {
    fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let (tagged, inner) = match decode_item(bytes, "COSE_Sign1")? {
            Value::Tag(TAG_COSE_SIGN1, inner) => (true, *inner),
            Value::Tag(tag, _) => {
                return Err(malformed(format!(
                    "tag {tag}, expected {TAG_COSE_SIGN1} (COSE_Sign1)"
                )));
            }
            untagged => (false, untagged),
        };
        let Value::Array(items) = inner else {
            return Err(malformed("COSE_Sign1 is not an array"));
        };
        let [protected, unprotected, payload, signature]: [Value; 4] =
            items.try_into().map_err(|items: Vec<Value>| {
                malformed(format!(
                    "COSE_Sign1 has {} elements, expected 4",
                    items.len()
                ))
            })?;
        let Value::Bytes(protected) = protected else {
            return Err(malformed("protected header is not a byte string"));
        };
        // RFC 9052 §3: an empty protected header may be a zero-length byte string.
        let protected_map = if protected.is_empty() {
            Vec::new()
        } else {
            match decode_item(&protected, "protected header")? {
                Value::Map(m) => m,
                _ => return Err(malformed("protected header is not a map")),
            }
        };
        let Value::Map(unprotected) = unprotected else {
            return Err(malformed("unprotected header is not a map"));
        };
        let payload = match payload {
            Value::Bytes(p) => p,
            Value::Null => return Err(malformed("detached payloads are not supported")),
            _ => return Err(malformed("payload is not a byte string")),
        };
        let Value::Bytes(signature) = signature else {
            return Err(malformed("signature is not a byte string"));
        };
        // RFC 9052 §3: a label appears at most once, across both buckets.
        let mut seen = BTreeSet::new();
        for (k, _) in protected_map.iter().chain(unprotected.iter()) {
            let label = Label::of(k)?;
            if !seen.insert(label.clone()) {
                return Err(malformed(format!("header label {label:?} appears twice")));
            }
        }
        Ok(Self {
            tagged,
            protected,
            protected_map,
            unprotected,
            payload,
            signature,
        })
    }
}

enum Alg {
    Known(SignatureAlgorithm),
    /// An algorithm this implementation does not support, by its number or name.
    Other(String),
}

/// The header parameters that matter, checked (RFC 9052 §3.1, RFC 9360 §2).
struct Headers {
    alg: Alg,
    certificates: Vec<Certificate>,
}

impl Headers {
    fn decode(msg: &Sign1) -> Result<Self, EnvelopeError> {
        if get(&msg.unprotected, LABEL_CRIT).is_some() {
            return Err(malformed("crit is not in the protected header"));
        }
        if let Some(crit) = get(&msg.protected_map, LABEL_CRIT) {
            let labels = match crit {
                Value::Array(a) if !a.is_empty() => a,
                _ => return Err(malformed("crit is not a non-empty array")),
            };
            for l in labels {
                let understood = UNDERSTOOD.iter().any(|u| is_label(l, *u));
                if !understood {
                    return Err(malformed(format!(
                        "critical header {:?} is not understood",
                        Label::of(l)?
                    )));
                }
            }
        }
        let alg = match get(&msg.protected_map, LABEL_ALG) {
            Some(Value::Integer(i)) => {
                let n = i128::from(*i);
                match i64::try_from(n)
                    .ok()
                    .and_then(SignatureAlgorithm::from_cose_alg)
                {
                    Some(a) => Alg::Known(a),
                    None => Alg::Other(n.to_string()),
                }
            }
            Some(Value::Text(t)) => Alg::Other(t.clone()),
            Some(_) => return Err(malformed("alg is neither an integer nor text")),
            None if get(&msg.unprotected, LABEL_ALG).is_some() => {
                return Err(malformed("alg is not in the protected header"));
            }
            None => return Err(malformed("no alg in the protected header")),
        };
        let mut certificates = Vec::new();
        for bucket in [&msg.protected_map, &msg.unprotected] {
            for label in [LABEL_X5BAG, LABEL_X5CHAIN] {
                if let Some(v) = get(bucket, label) {
                    decode_certs(v, label, &mut certificates)?;
                }
            }
        }
        Ok(Self { alg, certificates })
    }
}

/// RFC 9360 §2: `COSE_X509 = bstr / [ 2*certs: bstr ]` (a one-element array is tolerated).
fn decode_certs(v: &Value, label: i64, out: &mut Vec<Certificate>) -> Result<(), EnvelopeError> {
    let items: Vec<&Value> = match v {
        Value::Bytes(_) => vec![v],
        Value::Array(a) if !a.is_empty() => a.iter().collect(),
        _ => {
            return Err(malformed(format!(
                "header {label} is neither a certificate nor a non-empty array of them"
            )));
        }
    };
    if out.len() + items.len() > MAX_CERTIFICATES {
        return Err(malformed(format!(
            "more than {MAX_CERTIFICATES} certificates in x5bag/x5chain"
        )));
    }
    for (i, item) in items.into_iter().enumerate() {
        let Value::Bytes(der) = item else {
            return Err(malformed(format!(
                "header {label} entry {i} is not a byte string"
            )));
        };
        let cert = Certificate::from_der(der).map_err(|e| {
            malformed(format!(
                "header {label} entry {i} is not a certificate: {e}"
            ))
        })?;
        out.push(cert);
    }
    Ok(())
}
