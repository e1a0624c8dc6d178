//! Reading the BRSKI-relevant fields of certificates: the IDevID serialNumber and MASA URL
//! (RFC 8995 §2.3.1, §2.3.2), `idevid-issuer` (RFC 8366bis §6.1), the domainID (RFC 8995
//! §5.8.2), the 802.1AR HardwareModuleName (RFC 4108 §5), EKUs and SPKI fingerprints.

use crate::input::B64;
use crate::oid::{ID_ON_HARDWARE_MODULE_NAME, ID_PE_MASA_URL};
use base64::Engine;
use const_oid::db::rfc4519;
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{GeneralName, HardwareModuleName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, ExtendedKeyUsage, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;

/// Why a certificate field could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtError {
    #[error("extension {oid} is malformed: {reason}")]
    Malformed {
        oid: ObjectIdentifier,
        reason: String,
    },
    #[error("extension {0} appears more than once")]
    Duplicate(ObjectIdentifier),
    #[error("MASA URL {url:?} is not usable: {reason}")]
    InvalidMasaUrl { url: String, reason: &'static str },
    #[error("certificate field could not be encoded: {0}")]
    Encoding(String),
}

/// The single extension `oid` among `extensions` (RFC 5280 §4.2: at most one instance).
pub fn find_extension(
    extensions: &[Extension],
    oid: ObjectIdentifier,
) -> Result<Option<&Extension>, ExtError> {
    let mut found = extensions.iter().filter(|e| e.extn_id == oid);
    let first = found.next();
    if found.next().is_some() {
        return Err(ExtError::Duplicate(oid));
    }
    Ok(first)
}

pub fn cert_extensions(cert: &Certificate) -> &[Extension] {
    cert.tbs_certificate()
        .extensions()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn decode_ext<T>(extensions: &[Extension]) -> Result<Option<T>, ExtError>
where
    T: for<'a> Decode<'a> + AssociatedOid,
{
    find_extension(extensions, T::OID)?
        .map(|e| {
            T::from_der(e.extn_value.as_bytes()).map_err(|err| ExtError::Malformed {
                oid: T::OID,
                reason: err.to_string(),
            })
        })
        .transpose()
}

/// The device serial number: the subject's `serialNumber` attribute (2.5.4.5) as a
/// PrintableString or UTF8String (RFC 8995 §2.3.1). `None` when absent or of another type.
pub fn serial_number(cert: &Certificate) -> Option<String> {
    name_serial_number(cert.tbs_certificate().subject())
}

/// The first `serialNumber` attribute of `name` (see [`serial_number`]); also for CSR subjects.
pub fn name_serial_number(name: &Name) -> Option<String> {
    name.iter()
        .filter(|atv| atv.oid == rfc4519::SERIAL_NUMBER)
        .find_map(|atv| {
            PrintableStringRef::try_from(&atv.value)
                .map(|s| s.as_str().to_string())
                .or_else(|_| Utf8StringRef::try_from(&atv.value).map(|s| s.as_str().to_string()))
                .ok()
        })
}

/// The id-pe-masa-url extension value (RFC 8995 §2.3.2), usually an authority `host[:port]`.
pub fn masa_url(cert: &Certificate) -> Result<Option<String>, ExtError> {
    masa_url_in(cert_extensions(cert))
}

/// The id-pe-masa-url value among `extensions` (see [`masa_url`]).
pub fn masa_url_in(extensions: &[Extension]) -> Result<Option<String>, ExtError> {
    let Some(ext) = find_extension(extensions, ID_PE_MASA_URL)? else {
        return Ok(None);
    };
    let url =
        Ia5StringRef::from_der(ext.extn_value.as_bytes()).map_err(|e| ExtError::Malformed {
            oid: ID_PE_MASA_URL,
            reason: e.to_string(),
        })?;
    Ok(Some(url.as_str().to_string()))
}

/// The MASA base URI for a MASA URL extension value (RFC 8995 §2.3.2, §5.4).
///
/// Without a `/` the value is an authority: the result is
/// `https://<authority>/.well-known/brski`. A full URI (`scheme://authority/path`) is allowed:
/// its authority and path are kept (the path defaults to `/.well-known/brski` when empty) and
/// the scheme is always replaced by `https`, since the registrar MUST use HTTPS. No trailing
/// `/`: append `/requestvoucher` etc.
pub fn masa_base_uri(masa_url: &str) -> Result<String, ExtError> {
    let invalid = |reason| ExtError::InvalidMasaUrl {
        url: masa_url.to_string(),
        reason,
    };
    if !masa_url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("not visible ASCII"));
    }
    let rest = match masa_url.find("://") {
        Some(i) => {
            let scheme = masa_url.get(..i).unwrap_or_default();
            if scheme.is_empty()
                || !scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            {
                return Err(invalid("bad URI scheme"));
            }
            masa_url.get(i + 3..).unwrap_or_default()
        }
        None => masa_url,
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(invalid("no authority"));
    }
    if authority.contains('@') {
        return Err(invalid("userinfo is not allowed"));
    }
    if path.starts_with(['?', '#']) {
        return Err(invalid("query or fragment is not allowed"));
    }
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() {
        "/.well-known/brski"
    } else {
        path
    };
    Ok(format!("https://{authority}{path}"))
}

/// `idevid-issuer` for a pledge's IDevID (RFC 8366bis §6.1): the entire authorityKeyIdentifier
/// extnValue OCTET STRING, tag and length included (`04 18 30 16 80 14 <keyIdentifier>` for a
/// 20-octet key id), exactly as in the certificate.
///
/// When the IDevID has no AKI (like the RFC 8995 Appendix C IDevID), the same structure is
/// synthesised from SHA-1 of the certificate's *own* subjectPublicKey (RFC 5280 §4.2.1.2
/// method 1), reading RFC 8366bis §6.1 literally ("the Pledge's IDevID client certificate");
/// see SPEC §2.6. The MASA compares these bytes, so both sides must use this function.
pub fn idevid_issuer(cert: &Certificate) -> Vec<u8> {
    let tbs = cert.tbs_certificate();
    if let Some(aki) = cert_extensions(cert)
        .iter()
        .find(|e| e.extn_id == AuthorityKeyIdentifier::OID)
    {
        if let Ok(der) = aki.extn_value.to_der() {
            return der;
        }
    }
    synthesised_idevid_issuer(tbs.subject_public_key_info())
}

fn synthesised_idevid_issuer(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    // DER of OCTET STRING { SEQUENCE { [0] IMPLICIT OCTET STRING (20) } }, written out because
    // its shape is fixed: 04 18 30 16 80 14 <20 octets>.
    let mut out = Vec::with_capacity(26);
    out.extend_from_slice(&[0x04, 0x18, 0x30, 0x16, 0x80, 0x14]);
    out.extend_from_slice(&key_identifier(spki));
    out
}

/// The key identifier of `cert`'s key, as an authorityKeyIdentifier of what it issues names it
/// (RFC 5280 §4.2.1.1): its subjectKeyIdentifier, or the method-1 key id when it has none.
pub fn subject_key_id(cert: &Certificate) -> Result<Vec<u8>, ExtError> {
    Ok(subject_key_identifier(cert)?.unwrap_or_else(|| {
        key_identifier(cert.tbs_certificate().subject_public_key_info()).to_vec()
    }))
}

/// RFC 5280 §4.2.1.2 method 1: SHA-1 over the subjectPublicKey BIT STRING value (without tag,
/// length and unused-bits octet).
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> [u8; 20] {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        spki.subject_public_key.raw_bytes(),
    );
    let mut out = [0u8; 20];
    out.iter_mut()
        .zip(digest.as_ref())
        .for_each(|(o, d)| *o = *d);
    out
}

/// The subjectKeyIdentifier keyIdentifier, if the certificate has one (RFC 5280 §4.2.1.2).
pub fn subject_key_identifier(cert: &Certificate) -> Result<Option<Vec<u8>>, ExtError> {
    Ok(decode_ext::<SubjectKeyIdentifier>(cert_extensions(cert))?
        .map(|ski| ski.0.as_bytes().to_vec()))
}

/// The domainID of a (pinned-domain) certificate (RFC 8995 §5.8.2), always a function of its
/// public key, so that a domain cannot be impersonated by copying its identifier (§11.2):
///
/// - the subjectKeyIdentifier keyIdentifier when it is the RFC 5280 §4.2.1.2 method-1 value
///   (SHA-1 of the subjectPublicKey BIT STRING), as §5.8.2 names it and as the RFC's examples
///   carry it;
/// - otherwise (no SKI, or an SKI made by another method or simply copied from another
///   certificate) SHA-256 over the DER SubjectPublicKeyInfo (RFC 7469 §2.4).
///
/// The MASA records and releases audit logs by this value and the registrar recognises its own
/// domain by it, so both sides use this function. A malformed SKI is an error.
pub fn domain_id(cert: &Certificate) -> Result<Vec<u8>, ExtError> {
    let spki = cert.tbs_certificate().subject_public_key_info();
    match subject_key_identifier(cert)? {
        Some(ski) if ski == key_identifier(spki) => Ok(ski),
        _ => Ok(spki_sha256(cert)?.to_vec()),
    }
}

/// [`domain_id`] in base64 (RFC 4648 §4), as in audit-log `domainID` (RFC 8995 §5.8.1).
pub fn domain_id_base64(cert: &Certificate) -> Result<String, ExtError> {
    Ok(B64.encode(domain_id(cert)?))
}

/// SHA-256 over the DER SubjectPublicKeyInfo (RFC 7469 §2.4; `pinned-domain-pubk-sha256`).
pub fn spki_sha256(cert: &Certificate) -> Result<[u8; 32], ExtError> {
    let der = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| ExtError::Encoding(e.to_string()))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    let mut out = [0u8; 32];
    out.iter_mut()
        .zip(digest.as_ref())
        .for_each(|(o, d)| *o = *d);
    Ok(out)
}

/// Where a manufacturer's IDevIDs carry the device serial number (RFC 8995 §2.3.1: the
/// subject's serialNumber attribute; registrars SHOULD be configurable per manufacturer to
/// find it elsewhere).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SerialNumberSource {
    /// The subject's serialNumber attribute (2.5.4.5).
    #[default]
    SubjectSerialNumber,
    /// The subject's commonName.
    SubjectCommonName,
    /// The hwSerialNum of the subjectAltName HardwareModuleName (RFC 4108 §5), as UTF-8.
    HardwareModuleName,
}

impl SerialNumberSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubjectSerialNumber => "subject-serial-number",
            Self::SubjectCommonName => "subject-common-name",
            Self::HardwareModuleName => "hardware-module-name",
        }
    }
}

/// The device serial number of `cert` read from `source` (RFC 8995 §2.3.1); `None` when it is
/// not there (or, for a HardwareModuleName, not UTF-8).
pub fn serial_number_from(cert: &Certificate, source: SerialNumberSource) -> Option<String> {
    match source {
        SerialNumberSource::SubjectSerialNumber => serial_number(cert),
        SerialNumberSource::SubjectCommonName => cert
            .tbs_certificate()
            .subject()
            .iter()
            .filter(|atv| atv.oid == rfc4519::CN)
            .find_map(|atv| {
                PrintableStringRef::try_from(&atv.value)
                    .map(|s| s.as_str().to_string())
                    .or_else(|_| {
                        Utf8StringRef::try_from(&atv.value).map(|s| s.as_str().to_string())
                    })
                    .ok()
            }),
        SerialNumberSource::HardwareModuleName => hardware_module_name(cert)
            .ok()
            .flatten()
            .and_then(|h| String::from_utf8(h.hw_serial_num.as_bytes().to_vec()).ok()),
    }
}

/// The subjectAltName entries among `extensions` (a certificate's, or a CSR's requested
/// ones); none when there is no subjectAltName.
pub fn subject_alt_names(extensions: &[Extension]) -> Result<Vec<GeneralName>, ExtError> {
    Ok(decode_ext::<SubjectAltName>(extensions)?
        .map(|san| san.0)
        .unwrap_or_default())
}

/// The HardwareModuleName in the subjectAltName (RFC 4108 §5; 802.1AR DevID), if any.
pub fn hardware_module_name(cert: &Certificate) -> Result<Option<HardwareModuleName>, ExtError> {
    hardware_module_name_in(cert_extensions(cert))
}

/// The HardwareModuleName among `extensions` (e.g. a CSR's requested extensions).
pub fn hardware_module_name_in(
    extensions: &[Extension],
) -> Result<Option<HardwareModuleName>, ExtError> {
    let Some(san) = decode_ext::<SubjectAltName>(extensions)? else {
        return Ok(None);
    };
    for name in &san.0 {
        if let GeneralName::OtherName(other) = name {
            if other.type_id == ID_ON_HARDWARE_MODULE_NAME {
                return other
                    .value
                    .decode_as::<HardwareModuleName>()
                    .map(Some)
                    .map_err(|e| ExtError::Malformed {
                        oid: ID_ON_HARDWARE_MODULE_NAME,
                        reason: e.to_string(),
                    });
            }
        }
    }
    Ok(None)
}

/// The policy identifiers of the certificate's certificatePolicies (RFC 5280 §4.2.1.4), e.g.
/// the TCG residency policies of an IAK or IDevID certificate (SPEC §8.2); none without the
/// extension.
pub fn certificate_policies(cert: &Certificate) -> Result<Vec<ObjectIdentifier>, ExtError> {
    Ok(
        decode_ext::<x509_cert::ext::pkix::CertificatePolicies>(cert_extensions(cert))?
            .map(|p| p.0.into_iter().map(|i| i.policy_identifier).collect())
            .unwrap_or_default(),
    )
}

/// Whether the certificate's extKeyUsage lists `eku` (RFC 5280 §4.2.1.12), e.g. id-kp-cmcRA for
/// a registrar (RFC 8995 §5.5.4). A missing or malformed extension lists nothing.
pub fn has_eku(cert: &Certificate, eku: ObjectIdentifier) -> bool {
    matches!(
        decode_ext::<ExtendedKeyUsage>(cert_extensions(cert)),
        Ok(Some(list)) if list.0.contains(&eku)
    )
}
