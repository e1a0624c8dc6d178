//! JWS-signed vouchers and voucher-requests (`application/voucher-jws+json`,
//! draft-ietf-anima-jws-voucher §3).
//!
//! Output is the RFC 7515 §7.2.1 General JSON Serialization with one signature, whose protected
//! header carries `alg`, `typ` = `voucher-jws+json` and the signer's chain in `x5c`
//! (jws-voucher §3.2). Input may be the general serialization (one or more signatures; one that
//! verifies is enough) or the flattened one (RFC 7515 §7.2.2).
//!
//! The signer is identified by its key only: the first certificate among `x5c`, the caller's
//! extra certificates and the trust anchors whose key verifies the signature, whose chain is
//! then validated under the [`TrustPolicy`]. `kid`, `jwk`, `jku` and `x5u` are never used for
//! trust.

use super::{EnvelopeError, Format, Parsed, Verified, find_signer_and_validate};
use crate::input::{B64URL, decode_base64_lenient};
use crate::keys::{
    KeyError, SignatureAlgorithm, Signer, ecdsa_fixed_to_der, sign_fixed, verify_signature,
};
use crate::pki::chain::TrustPolicy;
use base64::Engine;
use der::{Decode, Encode};
use serde_json::{Map, Value};
use x509_cert::Certificate;

/// The `typ` header value of a JWS voucher or voucher-request (jws-voucher §3.2).
pub const TYP: &str = "voucher-jws+json";

/// Most signatures in one general serialization that are tried (bounds the work an attacker
/// can cause).
pub const MAX_SIGNATURES: usize = 8;

/// Most certificates accepted in the `x5c` headers of one signature.
pub const MAX_CERTIFICATES: usize = 16;

/// base64url as RFC 7515 §2 writes it, tolerating `=` padding on input.
const B64URL_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn malformed(reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        format: Format::Jws,
        reason: reason.into(),
    }
}

/// Sign `payload` (jws-voucher §3; RFC 7515 §5.1): General JSON Serialization with one
/// signature over `ASCII(BASE64URL(protected) "." BASE64URL(payload))`, ECDSA as `r‖s`
/// (RFC 7518 §3.4). `chain` (signer certificate first) goes into `x5c`; when it is empty the
/// header has no `x5c` and the verifier must know the signer's certificate.
pub fn sign(
    payload: &[u8],
    signer: &dyn Signer,
    chain: &[Certificate],
) -> Result<Vec<u8>, EnvelopeError> {
    check_chain_matches_signer(signer, chain)?;
    let mut header = Map::new();
    header.insert("alg".into(), signer.algorithm().jws_alg().into());
    header.insert("typ".into(), TYP.into());
    if !chain.is_empty() {
        let mut x5c = Vec::with_capacity(chain.len());
        for cert in chain {
            let der = cert
                .to_der()
                .map_err(|e| KeyError::SigningFailed(format!("certificate encoding: {e}")))?;
            x5c.push(Value::String(crate::input::B64.encode(der)));
        }
        header.insert("x5c".into(), Value::Array(x5c));
    }
    let header_json = serde_json::to_vec(&Value::Object(header))
        .map_err(|e| KeyError::SigningFailed(format!("header encoding: {e}")))?;
    let protected = B64URL.encode(header_json);
    let payload_b64 = B64URL.encode(payload);
    let signing_input = format!("{protected}.{payload_b64}");
    let signature = sign_fixed(signer, signing_input.as_bytes())?;

    let mut sig_obj = Map::new();
    sig_obj.insert("protected".into(), protected.into());
    sig_obj.insert("signature".into(), B64URL.encode(signature).into());
    let mut top = Map::new();
    top.insert("payload".into(), payload_b64.into());
    top.insert(
        "signatures".into(),
        Value::Array(vec![Value::Object(sig_obj)]),
    );
    serde_json::to_vec(&Value::Object(top))
        .map_err(|e| EnvelopeError::Signing(KeyError::SigningFailed(e.to_string())))
}

/// The first certificate of a non-empty `chain` must carry the signer's key, or the envelope
/// would name a certificate that cannot verify it.
pub(crate) fn check_chain_matches_signer(
    signer: &dyn Signer,
    chain: &[Certificate],
) -> Result<(), EnvelopeError> {
    let Some(first) = chain.first() else {
        return Ok(());
    };
    let spki = first
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| KeyError::MalformedPublicKey(e.to_string()))?;
    if spki != signer.public_key_spki() {
        return Err(EnvelopeError::Signing(KeyError::SigningFailed(
            "the first certificate of the chain does not carry the signer's public key".into(),
        )));
    }
    Ok(())
}

/// Verify a JWS voucher or voucher-request (jws-voucher §3, RFC 7515 §5.2).
///
/// Each signature is tried in order (at most [`MAX_SIGNATURES`]); the first that verifies and
/// whose signer chains to an anchor wins. When none does, the error of the first signature is
/// returned. `alg` must be in the protected header (`ES256`, `ES384`, `EdDSA`; anything else,
/// `none` included, is [`EnvelopeError::UnsupportedAlgorithm`]); a `crit` header is rejected
/// as this implementation understands no JWS extension (RFC 7515 §4.1.11).
pub fn verify(
    bytes: &[u8],
    policy: &TrustPolicy,
    extra: &[Certificate],
) -> Result<Verified, EnvelopeError> {
    let jws = Jws::decode(bytes)?;
    let mut first_err = None;
    for sig in &jws.signatures {
        match verify_one(&jws, sig, policy, extra) {
            Ok(chain) => {
                return Ok(Verified {
                    format: Format::Jws,
                    payload: jws.payload,
                    chain,
                    signing_time: None,
                });
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| malformed("no signatures")))
}

fn verify_one(
    jws: &Jws,
    sig: &RawSignature,
    policy: &TrustPolicy,
    extra: &[Certificate],
) -> Result<Vec<Certificate>, EnvelopeError> {
    let header = Header::decode(sig)?;
    let alg = SignatureAlgorithm::from_jws_alg(&header.alg)
        .ok_or_else(|| EnvelopeError::UnsupportedAlgorithm(format!("JWS alg {:?}", header.alg)))?;
    let signature = B64URL_LENIENT
        .decode(&sig.signature)
        .map_err(|e| malformed(format!("signature is not base64url: {e}")))?;
    check_signature_length(alg, &signature).map_err(malformed)?;
    let signing_input = format!("{}.{}", sig.protected, jws.payload_b64);
    let mut candidates = header.certificates;
    candidates.extend(extra.iter().cloned());
    find_signer_and_validate(&candidates, policy, |spki| {
        verify_fixed_signature(spki, alg, signing_input.as_bytes(), &signature)
    })
}

/// Decode a JWS without verifying it (RFC 7515 §7.2). `algorithm` is the `alg` of the first
/// signature; `certificates` are the `x5c` certificates of all signatures, in order.
pub fn parse(bytes: &[u8]) -> Result<Parsed, EnvelopeError> {
    let jws = Jws::decode(bytes)?;
    let mut algorithm = None;
    let mut certificates = Vec::new();
    for sig in &jws.signatures {
        let header = Header::decode(sig)?;
        algorithm.get_or_insert(header.alg);
        certificates.extend(header.certificates);
    }
    Ok(Parsed {
        format: Format::Jws,
        payload: jws.payload,
        certificates,
        algorithm: algorithm.ok_or_else(|| malformed("no signatures"))?,
    })
}

/// The length a fixed-form signature must have for `alg` (RFC 7518 §3.4, RFC 8037 §3.1).
pub(crate) fn check_signature_length(
    alg: SignatureAlgorithm,
    signature: &[u8],
) -> Result<(), String> {
    let expected = alg.ecdsa_scalar_len().map_or(64, |n| 2 * n);
    if signature.len() != expected {
        return Err(format!(
            "{} signature is {} bytes, expected {expected}",
            alg.jws_alg(),
            signature.len()
        ));
    }
    Ok(())
}

/// Verify a JWS/COSE signature (ECDSA as fixed `r‖s`, Ed25519 raw) over `message` with the key
/// `spki_der`, which must be of the kind `alg` names (RFC 7518 §3.4: ES256 is P-256 only, and
/// so on). A key of another kind is reported as [`KeyError::BadSignature`], so that one
/// unrelated certificate among the candidates does not stop the search for the signer.
pub(crate) fn verify_fixed_signature(
    spki_der: &[u8],
    alg: SignatureAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), KeyError> {
    if !key_fits_algorithm(spki_der, alg) {
        return Err(KeyError::BadSignature);
    }
    match alg.ecdsa_scalar_len() {
        Some(n) => {
            if signature.len() != 2 * n {
                return Err(KeyError::MalformedSignature);
            }
            let der_sig = ecdsa_fixed_to_der(signature)?;
            verify_signature(spki_der, alg.oid(), message, &der_sig)
        }
        None => verify_signature(spki_der, alg.oid(), message, signature),
    }
}

fn key_fits_algorithm(spki_der: &[u8], alg: SignatureAlgorithm) -> bool {
    use const_oid::db::{rfc5912, rfc8410};
    let Ok(spki) = spki::SubjectPublicKeyInfoRef::from_der(spki_der) else {
        return false;
    };
    let curve = || {
        spki.algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
    };
    let key = spki.algorithm.oid;
    match alg {
        SignatureAlgorithm::EcdsaP256Sha256 => {
            key == rfc5912::ID_EC_PUBLIC_KEY && curve() == Some(rfc5912::SECP_256_R_1)
        }
        SignatureAlgorithm::EcdsaP384Sha384 => {
            key == rfc5912::ID_EC_PUBLIC_KEY && curve() == Some(rfc5912::SECP_384_R_1)
        }
        SignatureAlgorithm::Ed25519 => key == rfc8410::ID_ED_25519,
    }
}

/// The envelope's structure: payload and signatures, headers still encoded.
struct Jws {
    payload_b64: String,
    payload: Vec<u8>,
    signatures: Vec<RawSignature>,
}

/// One signature as carried: the protected header exactly as received (the signature covers
/// these characters), the unprotected header, the signature text.
struct RawSignature {
    protected: String,
    unprotected: Option<Map<String, Value>>,
    signature: String,
}

impl Jws {
    /// RFC 7515 §7.2.1 (general) or §7.2.2 (flattened).
    fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let top: Value =
            serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let Value::Object(top) = top else {
            return Err(malformed("not a JSON object"));
        };
        let payload_b64 = match top.get("payload") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(malformed("payload is not a string")),
            None => {
                return Err(malformed(
                    "no payload (detached payloads are not supported)",
                ));
            }
        };
        let payload = B64URL_LENIENT
            .decode(&payload_b64)
            .map_err(|e| malformed(format!("payload is not base64url: {e}")))?;
        let flattened = ["protected", "header", "signature"]
            .iter()
            .any(|k| top.contains_key(*k));
        let signatures = match top.get("signatures") {
            Some(_) if flattened => {
                return Err(malformed(
                    "both \"signatures\" and flattened signature members",
                ));
            }
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    return Err(malformed("\"signatures\" is empty"));
                }
                if list.len() > MAX_SIGNATURES {
                    return Err(malformed(format!(
                        "{} signatures, at most {MAX_SIGNATURES} are accepted",
                        list.len()
                    )));
                }
                list.iter()
                    .map(|v| match v {
                        Value::Object(o) => RawSignature::from_object(o),
                        _ => Err(malformed("a signature is not a JSON object")),
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => return Err(malformed("\"signatures\" is not an array")),
            None if flattened => vec![RawSignature::from_object(&top)?],
            None => return Err(malformed("no signature")),
        };
        Ok(Self {
            payload_b64,
            payload,
            signatures,
        })
    }
}

impl RawSignature {
    fn from_object(o: &Map<String, Value>) -> Result<Self, EnvelopeError> {
        let protected = match o.get("protected") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(malformed("\"protected\" is not a string")),
            // jws-voucher §3.2: alg (and x5c) are in the protected header.
            None => return Err(malformed("no protected header")),
        };
        let unprotected = match o.get("header") {
            Some(Value::Object(h)) => Some(h.clone()),
            Some(_) => return Err(malformed("\"header\" is not a JSON object")),
            None => None,
        };
        let signature = match o.get("signature") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(malformed("\"signature\" is not a string")),
            None => return Err(malformed("no \"signature\"")),
        };
        Ok(Self {
            protected,
            unprotected,
            signature,
        })
    }
}

/// The JOSE header of one signature, checked (RFC 7515 §4, §5.2 steps 2–5).
struct Header {
    alg: String,
    certificates: Vec<Certificate>,
}

impl Header {
    fn decode(sig: &RawSignature) -> Result<Self, EnvelopeError> {
        let json = B64URL_LENIENT
            .decode(&sig.protected)
            .map_err(|e| malformed(format!("protected header is not base64url: {e}")))?;
        // RFC 7515 §5.2 step 4: duplicate header parameter names are rejected.
        let protected: UniqueObject = serde_json::from_slice(&json)
            .map_err(|e| malformed(format!("protected header: {e}")))?;
        let protected = protected.0;
        let unprotected = sig.unprotected.clone().unwrap_or_default();
        // RFC 7515 §7.2.1: the protected and unprotected parameter names are disjoint.
        if let Some(name) = unprotected.keys().find(|k| protected.contains_key(*k)) {
            return Err(malformed(format!(
                "header parameter {name:?} is both protected and unprotected"
            )));
        }
        // RFC 7515 §4.1.11: crit is integrity protected, and we implement no extension.
        if unprotected.contains_key("crit") {
            return Err(malformed("\"crit\" is not in the protected header"));
        }
        if let Some(crit) = protected.get("crit") {
            let names = match crit {
                Value::Array(a) if !a.is_empty() => a,
                _ => return Err(malformed("\"crit\" is not a non-empty array")),
            };
            let first = names
                .first()
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("\"crit\" lists a non-string"))?;
            return Err(malformed(format!(
                "critical header parameter {first:?} is not understood"
            )));
        }
        let alg = match protected.get("alg") {
            Some(Value::String(a)) => a.clone(),
            Some(_) => return Err(malformed("\"alg\" is not a string")),
            None if unprotected.contains_key("alg") => {
                return Err(malformed("\"alg\" is not in the protected header"));
            }
            None => return Err(malformed("no \"alg\"")),
        };
        // jws-voucher §3.2: typ, when present, is "voucher-jws+json" (RFC 7515 §4.1.9: compared
        // case-insensitively, "application/" may be omitted).
        if let Some(typ) = protected.get("typ").or_else(|| unprotected.get("typ")) {
            let ok = typ.as_str().is_some_and(|t| {
                let t = t.trim();
                let bare = t
                    .get(..12)
                    .filter(|prefix| prefix.eq_ignore_ascii_case("application/"))
                    .and_then(|_| t.get(12..))
                    .unwrap_or(t);
                bare.eq_ignore_ascii_case(TYP)
            });
            if !ok {
                return Err(malformed(format!("\"typ\" is {typ}, expected {TYP:?}")));
            }
        }
        let mut certificates = Vec::new();
        for source in [&protected, &unprotected] {
            if let Some(x5c) = source.get("x5c") {
                decode_x5c(x5c, &mut certificates)?;
            }
        }
        Ok(Self { alg, certificates })
    }
}

/// RFC 7515 §4.1.6: an array of standard base64 DER certificates (JSON `\/` escapes are undone
/// by the JSON parser; URL-alphabet and unpadded base64 are tolerated).
fn decode_x5c(x5c: &Value, out: &mut Vec<Certificate>) -> Result<(), EnvelopeError> {
    let Value::Array(entries) = x5c else {
        return Err(malformed("\"x5c\" is not an array"));
    };
    if out.len() + entries.len() > MAX_CERTIFICATES {
        return Err(malformed(format!(
            "more than {MAX_CERTIFICATES} certificates in \"x5c\""
        )));
    }
    for (i, entry) in entries.iter().enumerate() {
        let text = entry
            .as_str()
            .ok_or_else(|| malformed(format!("x5c[{i}] is not a string")))?;
        let der = decode_base64_lenient(text.as_bytes())
            .ok_or_else(|| malformed(format!("x5c[{i}] is not base64")))?;
        let cert = Certificate::from_der(&der)
            .map_err(|e| malformed(format!("x5c[{i}] is not a certificate: {e}")))?;
        out.push(cert);
    }
    Ok(())
}

/// A JSON object that rejects duplicate member names.
struct UniqueObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate header parameter {k:?}"
                        )));
                    }
                    map.insert(k, v);
                }
                Ok(UniqueObject(map))
            }
        }
        d.deserialize_map(Visitor)
    }
}
