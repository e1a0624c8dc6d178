//! Certificate revocation lists (RFC 5280 §5), sans-I/O: the http CRL distribution points of a
//! certificate (§4.2.1.13), checking a fetched CRL against the certificate's issuer (signature,
//! issuer name, nextUpdate) and looking a serial number up in it. For the MASA's revocation
//! check of the registrar's chain (RFC 8995 §5.5.3) and the pledge's when a voucher demands it
//! (RFC 8366bis `domain-cert-revocation-checks`): [`crl_checks`] says which CRLs a chain needs.
//! Fetching is the caller's; [`build_crl`] and [`distribution_point_extension`] issue the same.

use super::chain::verified;
use super::ext::{ExtError, find_extension, subject_key_id};
use crate::keys::Signer;
use const_oid::AssociatedOid;
use der::asn1::{Ia5String, OctetString};
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::Version;
use x509_cert::certificate::Rfc5280;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::crl::{CrlNumber, CrlReason};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlDistributionPoints};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

/// Why a CRL cannot be used, or a certificate is revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    #[error("CRL is malformed: {0}")]
    Malformed(String),
    #[error("CRL is issued by {crl_issuer}, not by the certificate's issuer {issuer}")]
    WrongIssuer { crl_issuer: String, issuer: String },
    #[error("CRL signature does not verify with the issuer's key: {0}")]
    BadSignature(String),
    #[error("CRL is out of date: nextUpdate {0} has passed")]
    Stale(String),
    #[error("CRL is not yet valid: thisUpdate {0}")]
    NotYetValid(String),
}

/// Why the revocation status of a certificate chain is not known to be good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("certificate {0:?} is revoked")]
    Revoked(String),
    #[error("cannot check the revocation of {subject:?}: {reason}")]
    Unknown { subject: String, reason: String },
    /// A CRL's thisUpdate and nextUpdate mean nothing without a trusted clock (RFC 8995 §2.6.1).
    #[error("no trusted clock to tell whether a CRL is current")]
    NoTrustedClock,
}

/// A certificate of a chain whose CRL must be checked: its http distribution points and the
/// certificate of the chain that issued it (and so signs its CRL).
#[derive(Clone, Debug)]
pub struct CrlCheck<'a> {
    pub cert: &'a Certificate,
    pub issuer: &'a Certificate,
    pub uris: Vec<String>,
}

/// The CRLs that checking the revocation of `chain` (end entity first) takes (RFC 5280 §6.3):
/// one for each certificate naming an http CRL distribution point, verified with its issuer
/// found further up the chain (or itself, when self-issued). With `required`, a certificate
/// that is not self-issued and names no such point is [`RevocationError::Unknown`] (the checks
/// are demanded, RFC 8366bis `domain-cert-revocation-checks`); without, it is not checked (RFC
/// 8995 §5.5.3: distribution points are checked "if they are present").
pub fn crl_checks(
    chain: &[Certificate],
    required: bool,
) -> Result<Vec<CrlCheck<'_>>, RevocationError> {
    let mut checks = Vec::new();
    for (i, cert) in chain.iter().enumerate() {
        let unknown = |reason: String| RevocationError::Unknown {
            subject: super::chain::subject_string(cert),
            reason,
        };
        let tbs = cert.tbs_certificate();
        let self_issued = tbs.subject() == tbs.issuer();
        let uris = distribution_points(cert).map_err(|e| unknown(e.to_string()))?;
        if uris.is_empty() {
            if required && !self_issued {
                return Err(unknown("it names no http CRL distribution point".into()));
            }
            continue;
        }
        let issuer = chain
            .get(i + 1..)
            .unwrap_or_default()
            .iter()
            .find(|c| c.tbs_certificate().subject() == tbs.issuer())
            .or(self_issued.then_some(cert))
            .ok_or_else(|| {
                unknown("its issuer is not in the chain, so its CRL cannot be verified".into())
            })?;
        checks.push(CrlCheck { cert, issuer, uris });
    }
    Ok(checks)
}

/// The `http://` URIs among the fullName of `cert`'s CRL distribution points (RFC 5280
/// §4.2.1.13); other schemes (ldap, https) are not listed.
pub fn distribution_points(cert: &Certificate) -> Result<Vec<String>, ExtError> {
    let extensions = cert
        .tbs_certificate()
        .extensions()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(ext) = find_extension(extensions, CrlDistributionPoints::OID)? else {
        return Ok(Vec::new());
    };
    let dps = CrlDistributionPoints::from_der(ext.extn_value.as_bytes()).map_err(|e| {
        ExtError::Malformed {
            oid: CrlDistributionPoints::OID,
            reason: e.to_string(),
        }
    })?;
    Ok(dps
        .0
        .iter()
        .filter_map(|dp| match &dp.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_string()),
            _ => None,
        })
        .filter(|uri| {
            uri.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        })
        .collect())
}

/// A cRLDistributionPoints extension naming `uri` (RFC 5280 §4.2.1.13), to add to
/// [`super::CertificateParams::extra_extensions`].
pub fn distribution_point_extension(uri: &str) -> Result<Extension, CrlError> {
    let uri = Ia5String::new(uri).map_err(|e| CrlError::Malformed(e.to_string()))?;
    let dps = CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::UniformResourceIdentifier(uri),
        ])),
        reasons: None,
        crl_issuer: None,
    }]);
    extension(CrlDistributionPoints::OID, &dps)
}

/// A CRL whose signature verified with its issuer's key.
#[derive(Clone, Debug)]
pub struct VerifiedCrl {
    /// nextUpdate, when given (RFC 5280 §5.1.2.5): when a newer CRL must be fetched.
    pub next_update: Option<OffsetDateTime>,
    /// The revoked serial numbers (DER INTEGER contents).
    revoked: Vec<Vec<u8>>,
}

impl VerifiedCrl {
    /// Whether `cert`'s serial number is listed (RFC 5280 §5.1.2.6).
    pub fn is_revoked(&self, cert: &Certificate) -> bool {
        let serial = cert.tbs_certificate().serial_number().as_bytes();
        self.revoked.iter().any(|r| r.as_slice() == serial)
    }
}

fn instant(t: &Time) -> Option<OffsetDateTime> {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).ok()?;
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// Check the DER CRL `der` for certificates issued by `issuer` at `now`: its issuer is
/// `issuer`'s subject, its signature verifies with `issuer`'s key (RFC 5280 §6.3.3 (f), (g)),
/// thisUpdate is not in the future and nextUpdate, if any, has not passed.
pub fn verify_crl(
    der: &[u8],
    issuer: &Certificate,
    now: OffsetDateTime,
) -> Result<VerifiedCrl, CrlError> {
    let malformed = |e: der::Error| CrlError::Malformed(e.to_string());
    let list: CertificateList = CertificateList::from_der(der).map_err(malformed)?;
    let tbs = &list.tbs_cert_list;
    let tbs_der = tbs.to_der().map_err(malformed)?;
    if list.to_der().map_err(malformed)? != der {
        return Err(CrlError::Malformed("not DER".into()));
    }
    if tbs.signature != list.signature_algorithm {
        return Err(CrlError::Malformed(
            "the signature algorithms inside and outside the TBSCertList differ".into(),
        ));
    }
    let subject = issuer.tbs_certificate().subject();
    if tbs.issuer != *subject {
        return Err(CrlError::WrongIssuer {
            crl_issuer: tbs.issuer.to_string(),
            issuer: subject.to_string(),
        });
    }
    let spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(malformed)?;
    let signature = list
        .signature
        .as_bytes()
        .ok_or_else(|| CrlError::Malformed("signature BIT STRING has unused bits".into()))?;
    verified::check(&spki, &list.signature_algorithm, &tbs_der, signature)
        .map_err(|e| CrlError::BadSignature(e.to_string()))?;
    let this_update = instant(&tbs.this_update)
        .ok_or_else(|| CrlError::Malformed("thisUpdate out of range".into()))?;
    if this_update > now + super::issue::BACKDATE {
        return Err(CrlError::NotYetValid(tbs.this_update.to_string()));
    }
    let next_update = match &tbs.next_update {
        Some(t) => {
            let at =
                instant(t).ok_or_else(|| CrlError::Malformed("nextUpdate out of range".into()))?;
            if at < now {
                return Err(CrlError::Stale(t.to_string()));
            }
            Some(at)
        }
        None => None,
    };
    let revoked = tbs
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| r.serial_number.as_bytes().to_vec())
        .collect();
    Ok(VerifiedCrl {
        next_update,
        revoked,
    })
}

fn x509_time(t: OffsetDateTime) -> Result<Time, CrlError> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| CrlError::Malformed(format!("{t} is before 1970")))?;
    let dt = der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|e| CrlError::Malformed(e.to_string()))?;
    Ok(Time::from(dt))
}

/// One entry of a CRL (RFC 5280 §5.3): the serial number (DER INTEGER contents), when it was
/// revoked and, when known, why (reasonCode; absent means unspecified, §5.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
    pub reason: Option<CrlReason>,
}

/// A v2 CRL (RFC 5280 §5.1) by `issuer` (whose key `issuer_key` is) listing the certificates
/// with `revoked` serial numbers (DER INTEGER contents) as revoked at `this_update`.
pub fn build_crl(
    issuer: &Certificate,
    issuer_key: &dyn Signer,
    revoked: &[&[u8]],
    this_update: OffsetDateTime,
    next_update: Option<OffsetDateTime>,
) -> Result<Vec<u8>, CrlError> {
    let entries: Vec<CrlEntry> = revoked
        .iter()
        .map(|serial| CrlEntry {
            serial: serial.to_vec(),
            revoked_at: this_update,
            reason: None,
        })
        .collect();
    build_crl_entries(issuer, issuer_key, &entries, this_update, next_update)
}

/// A v2 CRL (RFC 5280 §5.1) by `issuer` listing `entries`, with the two extensions a
/// conforming issuer MUST include (§5.2): authorityKeyIdentifier (the issuer's SKI, or its
/// method-1 key id) and cRLNumber (thisUpdate in seconds since 1970, so that it increases
/// from one CRL to the next, and across several instances with synchronised clocks).
pub fn build_crl_entries(
    issuer: &Certificate,
    issuer_key: &dyn Signer,
    entries: &[CrlEntry],
    this_update: OffsetDateTime,
    next_update: Option<OffsetDateTime>,
) -> Result<Vec<u8>, CrlError> {
    let malformed = |e: der::Error| CrlError::Malformed(e.to_string());
    let algorithm = issuer_key.algorithm().algorithm_identifier();
    let revoked_certificates = entries
        .iter()
        .map(|e| {
            let crl_entry_extensions = e
                .reason
                .map(|reason| extension(CrlReason::OID, &reason))
                .transpose()?
                .map(|ext| vec![ext]);
            Ok(RevokedCert {
                serial_number: SerialNumber::<Rfc5280>::new(&e.serial).map_err(malformed)?,
                revocation_date: x509_time(e.revoked_at)?,
                crl_entry_extensions,
            })
        })
        .collect::<Result<Vec<_>, CrlError>>()?;
    let number = u64::try_from(this_update.unix_timestamp())
        .map_err(|_| CrlError::Malformed(format!("{this_update} is before 1970")))?;
    let issuer_tbs = issuer.tbs_certificate();
    let key_id = subject_key_id(issuer).map_err(|e| CrlError::Malformed(e.to_string()))?;
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_id).map_err(malformed)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let crl_extensions = vec![
        extension(AuthorityKeyIdentifier::OID, &aki)?,
        extension(
            CrlNumber::OID,
            &CrlNumber(der::asn1::Uint::new(&number.to_be_bytes()).map_err(malformed)?),
        )?,
    ];
    let tbs = TbsCertList {
        version: Version::V2,
        signature: algorithm.clone(),
        issuer: issuer_tbs.subject().clone(),
        this_update: x509_time(this_update)?,
        next_update: next_update.map(x509_time).transpose()?,
        revoked_certificates: (!revoked_certificates.is_empty()).then_some(revoked_certificates),
        crl_extensions: Some(crl_extensions),
    };
    let tbs_der = tbs.to_der().map_err(malformed)?;
    let signature = issuer_key
        .sign(&tbs_der)
        .map_err(|e| CrlError::BadSignature(e.to_string()))?;
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature: der::asn1::BitString::from_bytes(&signature).map_err(malformed)?,
    }
    .to_der()
    .map_err(malformed)
}

/// A non-critical extension holding `value`.
fn extension(oid: der::oid::ObjectIdentifier, value: &impl Encode) -> Result<Extension, CrlError> {
    let bad = |e: der::Error| CrlError::Malformed(e.to_string());
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(value.to_der().map_err(bad)?).map_err(bad)?,
    })
}
