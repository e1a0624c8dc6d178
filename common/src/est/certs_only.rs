//! Certs-only CMS: the "CMC Simple PKI Response" that `/cacerts`, `/simpleenroll` and
//! `/simplereenroll` return (RFC 7030 §4.1.3, §4.2.3; RFC 5272 §4.1; content format 281,
//! RFC 9148 §5.3): a SignedData with eContentType id-data, no eContent, no signerInfos, and the
//! certificates.

use super::EstError;
use super::body::{decode_base64_body, encode_base64_body};
use crate::oid::{ID_DATA, ID_SIGNED_DATA};
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::EncapsulatedContentInfo;
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use x509_cert::Certificate;

/// SignedData (RFC 5652 §5.1) with the certificate list kept in wire order and the parts a
/// certs-only message leaves empty read as raw TLVs.
#[derive(Sequence)]
struct CertsOnlySignedData {
    version: CmsVersion,
    digest_algorithms: Any,
    encap_content_info: EncapsulatedContentInfo,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    certificates: Option<Vec<CertificateChoices>>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    crls: Option<Vec<Any>>,
    signer_infos: Any,
}

fn empty_set() -> Result<Any, EstError> {
    Any::new(Tag::Set, Vec::new()).map_err(|e| EstError::Encode(e.to_string()))
}

/// RFC 7030 §4.1.3 / §4.2.3: DER of a certs-only SignedData carrying `certs`.
///
/// Certificates are written in the order given (the issued certificate first, for
/// `/simpleenroll`), which is valid BER; like OpenSSL and the RFC 7030 examples, an empty `crls`
/// field is included. At least one certificate is required.
pub fn encode_certs_only(certs: &[Certificate]) -> Result<Vec<u8>, EstError> {
    if certs.is_empty() {
        return Err(EstError::NoCertificates);
    }
    let signed_data = CertsOnlySignedData {
        version: CmsVersion::V1,
        digest_algorithms: empty_set()?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(
            certs
                .iter()
                .cloned()
                .map(CertificateChoices::Certificate)
                .collect(),
        ),
        crls: Some(Vec::new()),
        signer_infos: empty_set()?,
    };
    let content_info = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(|e| EstError::Encode(e.to_string()))?,
    };
    content_info
        .to_der()
        .map_err(|e| EstError::Encode(e.to_string()))
}

/// RFC 7030 §4.1.3 / §4.2.3: the certificates of a DER certs-only SignedData, in wire order.
///
/// Rejects (with [`EstError::NotCertsOnly`]) content other than SignedData, an eContentType other
/// than id-data, an eContent, signerInfos, and non-X.509 certificate formats; CRLs are ignored.
pub fn decode_certs_only(der: &[u8]) -> Result<Vec<Certificate>, EstError> {
    let content_info = ContentInfo::from_der(der)
        .map_err(|e| EstError::Malformed(format!("CMS ContentInfo: {e}")))?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(EstError::NotCertsOnly("content type is not id-signedData"));
    }
    let signed_data = content_info
        .content
        .to_der()
        .and_then(|inner| CertsOnlySignedData::from_der(&inner))
        .map_err(|e| EstError::Malformed(format!("CMS SignedData: {e}")))?;
    if signed_data.digest_algorithms.tag() != Tag::Set {
        return Err(EstError::Malformed(
            "CMS SignedData: digestAlgorithms is not a SET".into(),
        ));
    }
    if signed_data.signer_infos.tag() != Tag::Set {
        return Err(EstError::Malformed(
            "CMS SignedData: signerInfos is not a SET".into(),
        ));
    }
    if !signed_data.signer_infos.value().is_empty() {
        return Err(EstError::NotCertsOnly("SignedData has signerInfos"));
    }
    let encap = &signed_data.encap_content_info;
    if encap.econtent_type != ID_DATA {
        return Err(EstError::NotCertsOnly("eContentType is not id-data"));
    }
    if encap.econtent.is_some() {
        return Err(EstError::NotCertsOnly("SignedData carries eContent"));
    }
    let mut certs = Vec::new();
    for choice in signed_data.certificates.unwrap_or_default() {
        match choice {
            CertificateChoices::Certificate(cert) => certs.push(cert),
            CertificateChoices::Other(_) => {
                return Err(EstError::NotCertsOnly(
                    "certificate set holds a non-X.509 certificate format",
                ));
            }
        }
    }
    if certs.is_empty() {
        return Err(EstError::NoCertificates);
    }
    Ok(certs)
}

/// RFC 8951 §3.2: the base64 HTTP body of a certs-only response.
pub fn encode_certs_only_body(certs: &[Certificate]) -> Result<String, EstError> {
    Ok(encode_base64_body(&encode_certs_only(certs)?))
}

/// RFC 8951 §3.2: the certificates of a base64 certs-only HTTP body.
pub fn decode_certs_only_body(body: &[u8]) -> Result<Vec<Certificate>, EstError> {
    decode_certs_only(&decode_base64_body(body)?)
}
