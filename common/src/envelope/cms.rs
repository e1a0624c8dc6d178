//! CMS SignedData envelope for vouchers and voucher-requests (`application/voucher-cms+json`,
//! RFC 5652 §5, RFC 8366bis §7.1, RFC 8995 §3, §5.2, §5.5).
//!
//! Signing produces DER `ContentInfo(id-signedData)` with SignedData version 3, eContentType
//! id-ct-animaJSONVoucher, the carried chain in `certificates`, and one `SignerInfo` (identified
//! by issuerAndSerialNumber) with the signed attributes contentType, signingTime and
//! messageDigest.
//!
//! Verification accepts what deployed implementations send (RFC 8366bis §7.1; every published
//! example): eContentType id-data or id-ct-animaJSONVoucher, SignedData v1 or v3, a signer named
//! by issuerAndSerialNumber or subjectKeyIdentifier. The signature over the signed attributes is
//! checked over the attribute bytes exactly as received, so a sender that did not sort its
//! SET OF still verifies. Input must be DER (as RFC 8366 §5.4 requires); BER is rejected.

use super::{EnvelopeError, Format, Parsed, Verified};
use crate::keys::{KeyError, Signer, verify_signature};
use crate::oid::{ID_CT_ANIMA_JSON_VOUCHER, ID_DATA, ID_SIGNED_DATA};
use crate::pki::chain::{TrustPolicy, validate_chain};
use ::cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use ::cms::content_info::{CmsVersion, ContentInfo};
use ::cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{AnyRef, OctetString, OctetStringRef, SetOfVec};
use der::{Any, Decode, Encode, Header, Reader, SliceReader, Tag, TagNumber, Tagged};
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
use std::borrow::Cow;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::time::Time;

/// At most this many `SignerInfo`s are examined; a voucher has exactly one (RFC 8366bis §7.1).
/// The bound keeps a crafted envelope from buying many signature verifications.
pub const MAX_SIGNER_INFOS: usize = 16;

/// At most this many certificates are accepted in `certificates` (RFC 8366 §5.4 asks for the
/// chain up to the anchor, a handful in practice). Bounds the path-building pool.
pub const MAX_CERTIFICATES: usize = 64;

/// Sign `payload` as CMS SignedData (RFC 5652 §5, RFC 8366bis §7.1), with signingTime now.
///
/// `chain` is carried in `certificates` and must start with the signer's certificate, which
/// names the signer (issuerAndSerialNumber). `certificates` is a DER `SET OF`, so the carried
/// certificates appear in DER order, not necessarily in the order of `chain`.
pub fn sign(
    payload: &[u8],
    signer: &dyn Signer,
    chain: &[Certificate],
) -> Result<Vec<u8>, EnvelopeError> {
    sign_at(payload, signer, chain, time::OffsetDateTime::now_utc())
}

/// [`sign`] with the signingTime attribute (RFC 5652 §11.3) set to `signing_time`.
pub fn sign_at(
    payload: &[u8],
    signer: &dyn Signer,
    chain: &[Certificate],
    signing_time: time::OffsetDateTime,
) -> Result<Vec<u8>, EnvelopeError> {
    let signer_cert = chain.first().ok_or_else(|| {
        EnvelopeError::Signing(KeyError::SigningFailed(
            "no signer certificate: chain must start with it".into(),
        ))
    })?;
    let cert_spki = signer_cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(encoding_error)?;
    if cert_spki != signer.public_key_spki() {
        return Err(EnvelopeError::Signing(KeyError::SigningFailed(
            "the first certificate of the chain does not carry the signer's public key".into(),
        )));
    }

    let alg = signer.algorithm();
    let digest_alg = AlgorithmIdentifierOwned {
        oid: alg.digest_oid(),
        parameters: None,
    };
    // RFC 5652 §11.1–§11.3: contentType, messageDigest, signingTime (UTCTime up to 2049).
    let signing_time =
        Time::try_from(std::time::SystemTime::from(signing_time)).map_err(encoding_error)?;
    let signed_attrs: SetOfVec<Attribute> = SetOfVec::try_from(vec![
        attribute(rfc5911::ID_CONTENT_TYPE, &ID_CT_ANIMA_JSON_VOUCHER)?,
        attribute(rfc5911::ID_SIGNING_TIME, &signing_time)?,
        attribute(
            rfc5911::ID_MESSAGE_DIGEST,
            &OctetString::new(alg.digest(payload)).map_err(encoding_error)?,
        )?,
    ])
    .map_err(encoding_error)?;
    // RFC 5652 §5.4: the signature covers the DER of the SET OF signed attributes.
    let signature = signer.sign(&signed_attrs.to_der().map_err(encoding_error)?)?;

    let tbs = signer_cert.tbs_certificate();
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: alg.algorithm_identifier(),
        signature: OctetString::new(signature).map_err(encoding_error)?,
        unsigned_attrs: None,
    };

    let mut certificates = Vec::with_capacity(chain.len());
    for cert in chain {
        let choice = CertificateChoices::Certificate(cert.clone());
        if !certificates.contains(&choice) {
            certificates.push(choice);
        }
    }
    let signed_data = SignedData {
        // RFC 5652 §5.1: version 3 because eContentType is not id-data.
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg]).map_err(encoding_error)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_CT_ANIMA_JSON_VOUCHER,
            econtent: Some(Any::new(Tag::OctetString, payload.to_vec()).map_err(encoding_error)?),
        },
        certificates: Some(CertificateSet::try_from(certificates).map_err(encoding_error)?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info]).map_err(encoding_error)?,
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(encoding_error)?,
    }
    .to_der()
    .map_err(encoding_error)
}

/// Verify a CMS voucher or voucher-request (RFC 5652 §5.6, RFC 8366bis §7.1, RFC 8995 §5.5.3,
/// §5.6.1) and validate the signer's chain under `policy`.
///
/// The signer certificate is looked up in the envelope's `certificates`, then in `extra`, then
/// among `policy.anchors`; the envelope's certificates and `extra` form the intermediate pool.
/// With several `SignerInfo`s, the envelope verifies if one of them does.
pub fn verify(
    bytes: &[u8],
    policy: &TrustPolicy,
    extra: &[Certificate],
) -> Result<Verified, EnvelopeError> {
    let signed = decode(bytes)?;
    let payload = signed.payload()?;
    let pool: Cow<'_, [Certificate]> = if extra.is_empty() {
        Cow::Borrowed(&signed.certificates)
    } else {
        Cow::Owned(
            signed
                .certificates
                .iter()
                .chain(extra)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let mut best: Option<EnvelopeError> = None;
    for signer_info in &signed.signer_infos {
        match verify_signer_info(&signed, signer_info, payload, extra, &pool, policy) {
            Ok(chain) => {
                let signing_time = signer_info
                    .signed_attrs
                    .as_ref()
                    .and_then(|a| a.signing_time.as_ref())
                    .map(offset_date_time)
                    .transpose()?;
                return Ok(Verified {
                    format: Format::Cms,
                    payload: payload.to_vec(),
                    chain,
                    signing_time,
                });
            }
            Err(e) => {
                if best.as_ref().is_none_or(|b| rank(&e) > rank(b)) {
                    best = Some(e);
                }
            }
        }
    }
    Err(best.unwrap_or_else(|| malformed("SignedData has no SignerInfo")))
}

/// Decode a CMS voucher without verifying it: the eContent, the carried certificates (the
/// first `SignerInfo`'s signer first when it is among them) and the name of the first
/// `SignerInfo`'s signature algorithm (e.g. `ecdsa-with-SHA256`).
pub fn parse(bytes: &[u8]) -> Result<Parsed, EnvelopeError> {
    let signed = decode(bytes)?;
    let payload = signed.payload()?.to_vec();
    let first = signed
        .signer_infos
        .first()
        .ok_or_else(|| malformed("SignedData has no SignerInfo"))?;
    let mut certificates = signed.certificates.clone();
    if let Some(i) = certificates.iter().position(|c| sid_matches(&first.sid, c)) {
        let signer = certificates.remove(i);
        certificates.insert(0, signer);
    }
    let algorithm = const_oid::db::DB
        .by_oid(&first.signature_alg)
        .map(str::to_string)
        .unwrap_or_else(|| first.signature_alg.to_string());
    Ok(Parsed {
        format: Format::Cms,
        payload,
        certificates,
        algorithm,
    })
}

/// The signingTime signed attribute (RFC 5652 §11.3) of the first `SignerInfo` that has one,
/// without verifying anything.
pub fn signing_time(bytes: &[u8]) -> Option<time::OffsetDateTime> {
    let signed = decode(bytes).ok()?;
    let t = signed
        .signer_infos
        .iter()
        .find_map(|si| si.signed_attrs.as_ref()?.signing_time)?;
    let secs = i64::try_from(t.to_unix_duration().as_secs()).ok()?;
    time::OffsetDateTime::from_unix_timestamp(secs).ok()
}

// ---------------------------------------------------------------------------------------------
// Verification

fn verify_signer_info(
    signed: &SignedDataRef<'_>,
    signer_info: &SignerInfoRef<'_>,
    payload: &[u8],
    extra: &[Certificate],
    pool: &[Certificate],
    policy: &TrustPolicy,
) -> Result<Vec<Certificate>, EnvelopeError> {
    // RFC 5652 §5.4: with signed attributes the signature covers them, and they bind the
    // content through messageDigest; without them it covers the content itself.
    let message: &[u8] = match &signer_info.signed_attrs {
        Some(attrs) => {
            // RFC 5652 §11.1: contentType is required and must match eContentType.
            let content_type = attrs
                .content_type
                .ok_or_else(|| malformed("signed attributes lack contentType (RFC 5652 §11.1)"))?;
            if content_type != signed.econtent_type {
                return Err(malformed(format!(
                    "contentType attribute {content_type} differs from eContentType {}",
                    signed.econtent_type
                )));
            }
            let expected = attrs.message_digest.ok_or_else(|| {
                malformed("signed attributes lack messageDigest (RFC 5652 §11.2)")
            })?;
            if digest(signer_info.digest_alg, payload)?.as_ref() != expected {
                return Err(EnvelopeError::DigestMismatch);
            }
            &attrs.der
        }
        None if signed.econtent_type == ID_DATA => payload,
        None => {
            return Err(malformed(
                "signed attributes are required when eContentType is not id-data \
                 (RFC 8366bis §7.1)",
            ));
        }
    };
    let sig_oid = signature_oid(signer_info)?;

    let mut found = false;
    let mut err = EnvelopeError::SignerNotFound;
    for cert in signed
        .certificates
        .iter()
        .chain(extra)
        .chain(&policy.anchors)
    {
        if !sid_matches(&signer_info.sid, cert) {
            continue;
        }
        found = true;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| malformed(format!("signer public key: {e}")))?;
        match verify_signature(&spki, sig_oid, message, signer_info.signature) {
            Ok(()) => {
                return Ok(validate_chain(cert, pool, policy)?
                    .into_iter()
                    .cloned()
                    .collect());
            }
            Err(KeyError::UnsupportedAlgorithm(a)) => err = EnvelopeError::UnsupportedAlgorithm(a),
            Err(KeyError::MalformedPublicKey(m)) => {
                err = malformed(format!("signer public key: {m}"));
            }
            Err(_) => err = EnvelopeError::BadSignature,
        }
    }
    if !found {
        return Err(EnvelopeError::SignerNotFound);
    }
    Err(err)
}

/// How far verification of one `SignerInfo` got before failing; the furthest failure is the
/// one reported when several `SignerInfo`s all fail.
fn rank(e: &EnvelopeError) -> u8 {
    match e {
        EnvelopeError::Malformed { .. } | EnvelopeError::Signing(_) => 0,
        EnvelopeError::SignerNotFound => 1,
        EnvelopeError::UnsupportedAlgorithm(_) => 2,
        EnvelopeError::DigestMismatch => 3,
        EnvelopeError::BadSignature => 4,
        EnvelopeError::Untrusted(_) => 5,
    }
}

/// The X.509 signature algorithm to verify with. Besides the usual ecdsa-with-SHA* and
/// Ed25519, senders may name just the key type (id-ecPublicKey, RFC 5753 §2.1.1 allows only
/// the former, but it is seen; rsaEncryption, RFC 3370 §3.2), with the hash taken from the
/// digest algorithm.
fn signature_oid(signer_info: &SignerInfoRef<'_>) -> Result<ObjectIdentifier, EnvelopeError> {
    let sig = signer_info.signature_alg;
    let dig = signer_info.digest_alg;
    let pick = |table: [(ObjectIdentifier, ObjectIdentifier); 3]| {
        table
            .into_iter()
            .find(|(d, _)| *d == dig)
            .map(|(_, s)| s)
            .ok_or_else(|| {
                EnvelopeError::UnsupportedAlgorithm(format!("signature {sig} with digest {dig}"))
            })
    };
    if sig == rfc5912::ID_EC_PUBLIC_KEY {
        return pick([
            (rfc5912::ID_SHA_256, rfc5912::ECDSA_WITH_SHA_256),
            (rfc5912::ID_SHA_384, rfc5912::ECDSA_WITH_SHA_384),
            (rfc5912::ID_SHA_512, rfc5912::ECDSA_WITH_SHA_512),
        ]);
    }
    if sig == rfc5912::RSA_ENCRYPTION {
        return pick([
            (rfc5912::ID_SHA_256, rfc5912::SHA_256_WITH_RSA_ENCRYPTION),
            (rfc5912::ID_SHA_384, rfc5912::SHA_384_WITH_RSA_ENCRYPTION),
            (rfc5912::ID_SHA_512, rfc5912::SHA_512_WITH_RSA_ENCRYPTION),
        ]);
    }
    Ok(sig)
}

/// The digest of `data` for a CMS digest algorithm (RFC 5754 §2; SHA-512 for Ed25519,
/// RFC 8419 §3).
fn digest(alg: ObjectIdentifier, data: &[u8]) -> Result<aws_lc_rs::digest::Digest, EnvelopeError> {
    let algorithm = match alg {
        a if a == rfc5912::ID_SHA_256 => &aws_lc_rs::digest::SHA256,
        a if a == rfc5912::ID_SHA_384 => &aws_lc_rs::digest::SHA384,
        a if a == rfc5912::ID_SHA_512 => &aws_lc_rs::digest::SHA512,
        a => return Err(EnvelopeError::UnsupportedAlgorithm(format!("digest {a}"))),
    };
    Ok(aws_lc_rs::digest::digest(algorithm, data))
}

/// Whether `cert` is the one `sid` names (RFC 5652 §5.3). A certificate without a
/// subjectKeyIdentifier extension matches the key identifier RFC 5280 §4.2.1.2 method 1
/// derives from its key (SHA-1 of the subjectPublicKey bits).
fn sid_matches(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            tbs.serial_number() == &isn.serial_number && tbs.issuer() == &isn.issuer
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            match tbs.get_extension::<SubjectKeyIdentifier>() {
                Ok(Some((_, own))) => own.0.as_bytes() == ski.0.as_bytes(),
                Ok(None) => {
                    let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, key)
                        .as_ref()
                        == ski.0.as_bytes()
                }
                Err(_) => false,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding: a borrowed view of the parts of SignedData that verification needs, keeping the
// signed attributes' bytes as received.

/// SignedData (RFC 5652 §5.1), borrowed from the input.
struct SignedDataRef<'a> {
    econtent_type: ObjectIdentifier,
    econtent: Option<&'a [u8]>,
    certificates: Vec<Certificate>,
    signer_infos: Vec<SignerInfoRef<'a>>,
}

impl<'a> SignedDataRef<'a> {
    /// The eContent, for the content types a voucher may have (RFC 8366bis §7.1).
    fn payload(&self) -> Result<&'a [u8], EnvelopeError> {
        if self.econtent_type != ID_CT_ANIMA_JSON_VOUCHER && self.econtent_type != ID_DATA {
            return Err(malformed(format!(
                "eContentType {} is neither id-ct-animaJSONVoucher nor id-data",
                self.econtent_type
            )));
        }
        self.econtent
            .ok_or_else(|| malformed("no eContent (a detached signature is not a voucher)"))
    }
}

/// SignerInfo (RFC 5652 §5.3), borrowed from the input.
struct SignerInfoRef<'a> {
    sid: SignerIdentifier,
    digest_alg: ObjectIdentifier,
    signed_attrs: Option<SignedAttrs<'a>>,
    signature_alg: ObjectIdentifier,
    signature: &'a [u8],
}

/// The signed attributes (RFC 5652 §5.3, §11) of one SignerInfo.
struct SignedAttrs<'a> {
    /// `SET OF Attribute` with the received content: what the signature covers (§5.4).
    der: Vec<u8>,
    content_type: Option<ObjectIdentifier>,
    message_digest: Option<&'a [u8]>,
    signing_time: Option<Time>,
}

/// A decoding failure, turned into [`EnvelopeError::Malformed`] at the module boundary.
struct DecodeError(String);

impl From<der::Error> for DecodeError {
    fn from(e: der::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<DecodeError> for EnvelopeError {
    fn from(e: DecodeError) -> Self {
        malformed(e.0)
    }
}

type DecodeResult<T> = Result<T, DecodeError>;

fn context(number: u32) -> Tag {
    Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(number),
    }
}

/// Whether the next element (if any) has tag `tag`.
fn next_is(reader: &SliceReader<'_>, tag: Tag) -> bool {
    !reader.is_finished() && Tag::peek(reader).is_ok_and(|t| t == tag)
}

/// Read an element that must carry `tag`.
fn expect<'a>(reader: &mut SliceReader<'a>, tag: Tag, what: &str) -> DecodeResult<AnyRef<'a>> {
    let any = AnyRef::decode(reader)?;
    if any.tag() != tag {
        return Err(DecodeError(format!(
            "{what}: expected {tag}, found {}",
            any.tag()
        )));
    }
    Ok(any)
}

/// ContentInfo (RFC 5652 §3) holding SignedData.
fn decode(bytes: &[u8]) -> Result<SignedDataRef<'_>, EnvelopeError> {
    let mut reader = SliceReader::new(bytes).map_err(DecodeError::from)?;
    let content_info = expect(&mut reader, Tag::Sequence, "ContentInfo")?;
    reader.finish().map_err(DecodeError::from)?;
    let signed = content_info.sequence(|r| -> DecodeResult<_> {
        let content_type = ObjectIdentifier::decode(r)?;
        if content_type != ID_SIGNED_DATA {
            return Err(DecodeError(format!(
                "ContentInfo contentType {content_type} is not id-signedData"
            )));
        }
        let content = expect(r, context(0), "ContentInfo content")?;
        let mut inner = SliceReader::new(content.value())?;
        let signed_data = expect(&mut inner, Tag::Sequence, "SignedData")?;
        inner.finish()?;
        signed_data.sequence(decode_signed_data)
    })?;
    Ok(signed)
}

fn decode_signed_data<'a>(r: &mut SliceReader<'a>) -> DecodeResult<SignedDataRef<'a>> {
    // Any CMSVersion is accepted (RFC 8366bis §7.1: v1 is deprecated but still sent).
    CmsVersion::decode(r)?;
    expect(r, Tag::Set, "digestAlgorithms")?;
    let (econtent_type, econtent) =
        expect(r, Tag::Sequence, "encapContentInfo")?.sequence(|r| -> DecodeResult<_> {
            let econtent_type = ObjectIdentifier::decode(r)?;
            let econtent = if r.is_finished() {
                None
            } else {
                let wrapper = expect(r, context(0), "eContent")?;
                Some(<&OctetStringRef>::from_der(wrapper.value())?.as_bytes())
            };
            Ok((econtent_type, econtent))
        })?;
    let mut certificates = Vec::new();
    if next_is(r, context(0)) {
        let set = AnyRef::decode(r)?;
        let mut certs = SliceReader::new(set.value())?;
        while !certs.is_finished() {
            let tlv = certs.tlv_bytes()?;
            // CertificateChoices (RFC 5652 §10.2.2): only `certificate` is of use here; the
            // obsolete and other forms are tagged [0]..[3] and skipped.
            if tlv.first() == Some(&0x30) {
                if certificates.len() >= MAX_CERTIFICATES {
                    return Err(DecodeError(format!(
                        "more than {MAX_CERTIFICATES} certificates"
                    )));
                }
                certificates.push(Certificate::from_der(tlv)?);
            }
        }
    }
    if next_is(r, context(1)) {
        AnyRef::decode(r)?; // crls: not used
    }
    let signer_infos_set = expect(r, Tag::Set, "signerInfos")?;
    let mut reader = SliceReader::new(signer_infos_set.value())?;
    let mut signer_infos = Vec::new();
    while !reader.is_finished() {
        if signer_infos.len() >= MAX_SIGNER_INFOS {
            return Err(DecodeError(format!(
                "more than {MAX_SIGNER_INFOS} SignerInfos"
            )));
        }
        let info = expect(&mut reader, Tag::Sequence, "SignerInfo")?;
        signer_infos.push(info.sequence(decode_signer_info)?);
    }
    Ok(SignedDataRef {
        econtent_type,
        econtent,
        certificates,
        signer_infos,
    })
}

fn decode_signer_info<'a>(r: &mut SliceReader<'a>) -> DecodeResult<SignerInfoRef<'a>> {
    CmsVersion::decode(r)?;
    let sid = SignerIdentifier::decode(r)?;
    let digest_alg = AlgorithmIdentifierRef::decode(r)?.oid;
    let signed_attrs = if next_is(r, context(0)) {
        Some(decode_signed_attrs(AnyRef::decode(r)?.value())?)
    } else {
        None
    };
    let signature_alg = AlgorithmIdentifierRef::decode(r)?.oid;
    let signature = <&OctetStringRef>::decode(r)?.as_bytes();
    if next_is(
        r,
        Tag::ContextSpecific {
            constructed: true,
            number: TagNumber(1),
        },
    ) {
        AnyRef::decode(r)?; // unsignedAttrs: not used
    }
    Ok(SignerInfoRef {
        sid,
        digest_alg,
        signed_attrs,
        signature_alg,
        signature,
    })
}

/// The content of `signedAttrs [0] IMPLICIT SET SIZE (1..MAX) OF Attribute` (RFC 5652 §5.3).
fn decode_signed_attrs(content: &[u8]) -> DecodeResult<SignedAttrs<'_>> {
    let mut der = Header::new(Tag::Set, content.len().try_into()?).to_der()?;
    der.extend_from_slice(content);
    let mut attrs = SignedAttrs {
        der,
        content_type: None,
        message_digest: None,
        signing_time: None,
    };
    let mut reader = SliceReader::new(content)?;
    if reader.is_finished() {
        return Err(DecodeError("empty signed attributes".into()));
    }
    while !reader.is_finished() {
        let (attr_type, values) =
            expect(&mut reader, Tag::Sequence, "Attribute")?.sequence(|r| -> DecodeResult<_> {
                Ok((
                    ObjectIdentifier::decode(r)?,
                    expect(r, Tag::Set, "attrValues")?,
                ))
            })?;
        // RFC 5652 §11.1–§11.3: these three are single-valued and appear at most once.
        let duplicate = || DecodeError(format!("signed attribute {attr_type} appears twice"));
        if attr_type == rfc5911::ID_CONTENT_TYPE {
            let v = single_value(values, attr_type)?;
            let oid = ObjectIdentifier::from_der(v)?;
            if attrs.content_type.replace(oid).is_some() {
                return Err(duplicate());
            }
        } else if attr_type == rfc5911::ID_MESSAGE_DIGEST {
            let v = single_value(values, attr_type)?;
            let d = <&OctetStringRef>::from_der(v)?.as_bytes();
            if attrs.message_digest.replace(d).is_some() {
                return Err(duplicate());
            }
        } else if attr_type == rfc5911::ID_SIGNING_TIME {
            let v = single_value(values, attr_type)?;
            let t = Time::from_der(v)?;
            if attrs.signing_time.replace(t).is_some() {
                return Err(duplicate());
            }
        }
    }
    Ok(attrs)
}

/// The one value (TLV bytes) of an attribute that must have exactly one.
fn single_value(values: AnyRef<'_>, attr_type: ObjectIdentifier) -> DecodeResult<&[u8]> {
    let mut reader = SliceReader::new(values.value())?;
    if reader.is_finished() {
        return Err(DecodeError(format!(
            "signed attribute {attr_type} has no value"
        )));
    }
    let value = reader.tlv_bytes()?;
    if !reader.is_finished() {
        return Err(DecodeError(format!(
            "signed attribute {attr_type} has more than one value"
        )));
    }
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn attribute(oid: ObjectIdentifier, value: &impl Encode) -> Result<Attribute, EnvelopeError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![
            Any::from_der(&value.to_der().map_err(encoding_error)?).map_err(encoding_error)?,
        ])
        .map_err(encoding_error)?,
    })
}

/// An X.509 `Time` (UTCTime or GeneralizedTime) as an instant.
fn offset_date_time(t: &Time) -> Result<time::OffsetDateTime, EnvelopeError> {
    i64::try_from(t.to_unix_duration().as_secs())
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| malformed(format!("signingTime {t} out of range")))
}

fn malformed(reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        format: Format::Cms,
        reason: reason.into(),
    }
}

fn encoding_error(e: der::Error) -> EnvelopeError {
    malformed(format!("cannot encode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_info_ranking_prefers_later_failures() {
        let order = [
            malformed("x"),
            EnvelopeError::SignerNotFound,
            EnvelopeError::UnsupportedAlgorithm("x".into()),
            EnvelopeError::DigestMismatch,
            EnvelopeError::BadSignature,
            EnvelopeError::Untrusted(crate::pki::chain::ChainError::Untrusted {
                subject: String::new(),
            }),
        ];
        for pair in order.windows(2) {
            assert!(rank(&pair[0]) < rank(&pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn signed_attrs_bytes_keep_received_order() {
        // Two attributes in non-DER order (messageDigest before contentType): the bytes the
        // signature covers must be the received content under a SET tag, not a re-sorted copy.
        let md = Attribute {
            oid: rfc5911::ID_MESSAGE_DIGEST,
            values: SetOfVec::try_from(vec![
                Any::encode_from(&OctetString::new(vec![7u8; 32]).expect("octets")).expect("any"),
            ])
            .expect("set"),
        };
        let ct = Attribute {
            oid: rfc5911::ID_CONTENT_TYPE,
            values: SetOfVec::try_from(vec![Any::encode_from(&ID_DATA).expect("any")])
                .expect("set"),
        };
        let mut content = md.to_der().expect("md");
        content.extend(ct.to_der().expect("ct"));
        let attrs = decode_signed_attrs(&content).ok().expect("decodes");
        assert_eq!(attrs.der[0], 0x31);
        assert_eq!(&attrs.der[2..], &content[..]);
        assert_eq!(attrs.content_type, Some(ID_DATA));
        assert_eq!(attrs.message_digest, Some(&[7u8; 32][..]));
    }
}
