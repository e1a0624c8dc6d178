//! Certification path validation against a set of trust anchors (RFC 5280 §6, reduced to what
//! BRSKI needs: names, signatures, validity, basicConstraints, keyUsage, EKU on the leaf).

use crate::keys::KeyError;
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};

/// Whether and when certificate validity periods are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeCheck {
    /// Check against the system clock.
    #[default]
    Now,
    /// Check against this instant.
    At(time::OffsetDateTime),
    /// Do not check (a pledge with no trusted clock, 8995 §2.6.1; expired example certificates).
    Skip,
    /// Check notBefore against the system clock but not notAfter: an IDevID past its notAfter
    /// is accepted (8995 §2.6.2), one not yet valid is not.
    IgnoreExpiry,
}

/// What a signer's certificate must satisfy to be trusted.
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    /// Trust anchors. A certificate whose public key equals an anchor's is trusted directly.
    pub anchors: Vec<Certificate>,
    /// Validity period checks.
    pub time: TimeCheck,
    /// An extended key usage the end-entity certificate must list (e.g. id-kp-cmcRA, 8995 §5.5.4).
    pub required_eku: Option<ObjectIdentifier>,
}

impl TrustPolicy {
    /// A policy trusting `anchors`, checking times against the system clock.
    pub fn new(anchors: Vec<Certificate>) -> Self {
        Self {
            anchors,
            ..Self::default()
        }
    }

    /// The same policy with time checks `time`.
    pub fn with_time(mut self, time: TimeCheck) -> Self {
        self.time = time;
        self
    }

    /// The same policy requiring `eku` on the end-entity certificate.
    pub fn with_required_eku(mut self, eku: ObjectIdentifier) -> Self {
        self.required_eku = Some(eku);
        self
    }
}

/// Why a certificate path was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("no path from the certificate {subject} to a trust anchor")]
    Untrusted { subject: String },
    #[error("certificate {subject} has expired (notAfter {not_after})")]
    Expired { subject: String, not_after: String },
    #[error("certificate {subject} is not yet valid (notBefore {not_before})")]
    NotYetValid { subject: String, not_before: String },
    #[error("certificate {subject} lacks the required extended key usage {eku}")]
    MissingEku {
        subject: String,
        eku: ObjectIdentifier,
    },
    #[error("certificate {subject} is malformed: {reason}")]
    Malformed { subject: String, reason: String },
    #[error("certificate {subject} has an unrecognised critical extension {oid}")]
    UnknownCriticalExtension {
        subject: String,
        oid: ObjectIdentifier,
    },
}

/// Maximum number of certificates in a path, anchor included.
const MAX_DEPTH: usize = 8;
/// Maximum number of certificate signature checks while building one path: bounds the work an
/// attacker can cause with many cross-signed certificates under one name.
const MAX_SIGNATURE_CHECKS: usize = 64;

/// Validate `leaf` up to one of `policy.anchors`, using `pool` for intermediates.
///
/// Returns the path, leaf first and anchor last (a single element when the leaf's key is itself
/// an anchor's key).
pub fn validate_chain<'a>(
    leaf: &'a Certificate,
    pool: &'a [Certificate],
    policy: &'a TrustPolicy,
) -> Result<Vec<&'a Certificate>, ChainError> {
    build_path(leaf, pool, policy).map_err(|e| {
        e.unwrap_or_else(|| ChainError::Untrusted {
            subject: subject_string(leaf),
        })
    })
}

/// Whether `leaf` validates under `policy`, as [`validate_chain`] decides, without describing
/// why not: for trying one policy after another, where a miss is expected.
pub fn chains_to(leaf: &Certificate, pool: &[Certificate], policy: &TrustPolicy) -> bool {
    build_path(leaf, pool, policy).is_ok()
}

/// [`validate_chain`]; `Err(None)` when no path leads to an anchor and nothing more specific
/// went wrong.
fn build_path<'a>(
    leaf: &'a Certificate,
    pool: &'a [Certificate],
    policy: &'a TrustPolicy,
) -> Result<Vec<&'a Certificate>, Option<ChainError>> {
    check_leaf(leaf, policy)?;
    let mut path = vec![leaf];
    let mut best_err = None;
    let mut budget = MAX_SIGNATURE_CHECKS;
    if extend(&mut path, pool, policy, &mut best_err, &mut budget) {
        for cert in &path {
            check_time(cert, policy.time)?;
        }
        return Ok(path);
    }
    Err(best_err)
}

fn check_leaf(leaf: &Certificate, policy: &TrustPolicy) -> Result<(), ChainError> {
    check_critical_extensions(leaf)?;
    if let Some(eku) = policy.required_eku {
        let listed = extension::<ExtendedKeyUsage>(leaf)?
            .map(|e| e.0.contains(&eku))
            .unwrap_or(false);
        if !listed {
            return Err(ChainError::MissingEku {
                subject: subject_string(leaf),
                eku,
            });
        }
    }
    Ok(())
}

/// Depth-first path building: `path` ends in the certificate whose issuer is sought.
fn extend<'a>(
    path: &mut Vec<&'a Certificate>,
    pool: &'a [Certificate],
    policy: &'a TrustPolicy,
    best_err: &mut Option<ChainError>,
    budget: &mut usize,
) -> bool {
    let Some(&current) = path.last() else {
        return false;
    };
    // The current certificate's key is an anchor's key: trusted directly.
    if policy.anchors.iter().any(|a| same_key(a, current)) {
        return true;
    }
    if path.len() >= MAX_DEPTH {
        return false;
    }
    let issuer = current.tbs_certificate().issuer();
    // Anchors first, then intermediates from the pool.
    for (candidate, is_anchor) in policy
        .anchors
        .iter()
        .map(|c| (c, true))
        .chain(pool.iter().map(|c| (c, false)))
    {
        if candidate.tbs_certificate().subject() != issuer {
            continue;
        }
        if path.iter().any(|p| same_key(p, candidate)) {
            continue;
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        if !signed_by(current, candidate) {
            continue;
        }
        if !is_anchor {
            if let Err(e) = check_ca(candidate) {
                best_err.get_or_insert(e);
                continue;
            }
        }
        path.push(candidate);
        if is_anchor || extend(path, pool, policy, best_err, budget) {
            return true;
        }
        path.pop();
    }
    false
}

/// Whether `issuer`'s key signed `cert`.
pub fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    verify_issued_by(cert, issuer).is_ok()
}

/// Verify the signature on `cert` with `issuer`'s key, reporting why it failed.
///
/// A signature that verified once is remembered (see [`verified`]), so the same certificate
/// checked again under the same issuer key (in the TLS handshake, then on the voucher-request's
/// signer, then at the MASA) costs a digest instead of a public-key operation.
pub fn verify_issued_by(cert: &Certificate, issuer: &Certificate) -> Result<(), KeyError> {
    let p = SignatureParts::of(cert, issuer)?;
    verified::check(&p.spki, cert.signature_algorithm(), &p.tbs, p.signature)
}

/// Whether the signature on `cert` by `issuer`'s key is remembered as verified (nothing is
/// verified here).
pub fn remembered(cert: &Certificate, issuer: &Certificate) -> bool {
    SignatureParts::of(cert, issuer).is_ok_and(|p| {
        verified::remembers(&p.spki, cert.signature_algorithm(), &p.tbs, p.signature)
    })
}

/// The DER that a certificate's signature check depends on, besides its algorithm.
struct SignatureParts<'a> {
    spki: Vec<u8>,
    tbs: Vec<u8>,
    signature: &'a [u8],
}

impl<'a> SignatureParts<'a> {
    fn of(cert: &'a Certificate, issuer: &Certificate) -> Result<Self, KeyError> {
        let der = |e: der::Error| KeyError::MalformedPublicKey(e.to_string());
        Ok(Self {
            tbs: cert.tbs_certificate().to_der().map_err(der)?,
            signature: cert
                .signature()
                .as_bytes()
                .ok_or(KeyError::MalformedSignature)?,
            spki: issuer
                .tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .map_err(der)?,
        })
    }
}

/// A bounded, process-wide memory of certificate signatures that verified: the SHA-256 of the
/// issuer's key, the algorithm, the signed TBSCertificate and the signature. Verification is a
/// pure function of those four, so a hit is as good as verifying again; failures are never
/// remembered. Validity periods, CA flags and EKUs are checked on every validation regardless.
pub mod verified {
    use crate::keys::KeyError;
    use spki::AlgorithmIdentifierOwned;
    use std::collections::{HashSet, VecDeque};
    use std::sync::{Mutex, OnceLock, PoisonError};

    /// Most signatures remembered (oldest forgotten first): about 0.5 MB at most.
    pub const CAPACITY: usize = 4096;

    type Key = [u8; 32];

    #[derive(Default)]
    struct Memory {
        set: HashSet<Key>,
        order: VecDeque<Key>,
    }

    fn memory() -> &'static Mutex<Memory> {
        static MEMORY: OnceLock<Mutex<Memory>> = OnceLock::new();
        MEMORY.get_or_init(Mutex::default)
    }

    /// The memory's key for these parts (each length-prefixed, so no two splits collide).
    fn key(parts: &[&[u8]]) -> Key {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }

    fn contains(key: &Key) -> bool {
        memory()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set
            .contains(key)
    }

    fn insert(key: Key) {
        let mut m = memory().lock().unwrap_or_else(PoisonError::into_inner);
        if m.set.insert(key) {
            m.order.push_back(key);
            while m.order.len() > CAPACITY {
                if let Some(old) = m.order.pop_front() {
                    m.set.remove(&old);
                }
            }
        }
    }

    /// Verify `signature` over `tbs` with `spki` under `algorithm`, unless that exact signature
    /// verified before; remember it when it does.
    pub fn check(
        spki: &[u8],
        algorithm: &AlgorithmIdentifierOwned,
        tbs: &[u8],
        signature: &[u8],
    ) -> Result<(), KeyError> {
        let key = key_of(spki, algorithm, tbs, signature)?;
        if contains(&key) {
            return Ok(());
        }
        crate::keys::verify_with_algorithm_id(spki, algorithm, tbs, signature)?;
        insert(key);
        Ok(())
    }

    /// Whether that exact signature is remembered (nothing is verified).
    pub fn remembers(
        spki: &[u8],
        algorithm: &AlgorithmIdentifierOwned,
        tbs: &[u8],
        signature: &[u8],
    ) -> bool {
        key_of(spki, algorithm, tbs, signature).is_ok_and(|k| contains(&k))
    }

    fn key_of(
        spki: &[u8],
        algorithm: &AlgorithmIdentifierOwned,
        tbs: &[u8],
        signature: &[u8],
    ) -> Result<Key, KeyError> {
        let algorithm = der::Encode::to_der(algorithm)
            .map_err(|e| KeyError::MalformedPublicKey(e.to_string()))?;
        Ok(key(&[spki, &algorithm, tbs, signature]))
    }

    /// How many signatures are remembered now.
    pub fn len() -> usize {
        memory()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .order
            .len()
    }
}

/// Whether two certificates carry the same public key.
pub fn same_key(a: &Certificate, b: &Certificate) -> bool {
    a.tbs_certificate().subject_public_key_info() == b.tbs_certificate().subject_public_key_info()
}

fn check_ca(cert: &Certificate) -> Result<(), ChainError> {
    check_critical_extensions(cert)?;
    let is_ca = extension::<BasicConstraints>(cert)?
        .map(|bc| bc.ca)
        .unwrap_or(false);
    if !is_ca {
        return Err(ChainError::Malformed {
            subject: subject_string(cert),
            reason: "issuer certificate is not a CA (basicConstraints)".into(),
        });
    }
    if let Some(ku) = extension::<KeyUsage>(cert)? {
        if !ku.0.contains(KeyUsages::KeyCertSign) {
            return Err(ChainError::Malformed {
                subject: subject_string(cert),
                reason: "issuer certificate lacks keyCertSign".into(),
            });
        }
    }
    Ok(())
}

/// Whether `cert` is within its validity period at `time`.
pub(crate) fn check_time(cert: &Certificate, time: TimeCheck) -> Result<(), ChainError> {
    let now = match time {
        TimeCheck::Skip => return Ok(()),
        TimeCheck::Now | TimeCheck::IgnoreExpiry => time::OffsetDateTime::now_utc(),
        TimeCheck::At(t) => t,
    };
    let validity = cert.tbs_certificate().validity();
    let not_before = to_offset(validity.not_before.to_unix_duration());
    let not_after = to_offset(validity.not_after.to_unix_duration());
    if now < not_before {
        return Err(ChainError::NotYetValid {
            subject: subject_string(cert),
            not_before: validity.not_before.to_string(),
        });
    }
    if now > not_after && time != TimeCheck::IgnoreExpiry {
        return Err(ChainError::Expired {
            subject: subject_string(cert),
            not_after: validity.not_after.to_string(),
        });
    }
    Ok(())
}

fn to_offset(d: std::time::Duration) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(d.as_secs() as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

const KNOWN_CRITICAL: &[ObjectIdentifier] = &[
    rfc5280::ID_CE_BASIC_CONSTRAINTS,
    rfc5280::ID_CE_KEY_USAGE,
    rfc5280::ID_CE_EXT_KEY_USAGE,
    rfc5280::ID_CE_SUBJECT_ALT_NAME,
    rfc5280::ID_CE_CERTIFICATE_POLICIES,
];

fn check_critical_extensions(cert: &Certificate) -> Result<(), ChainError> {
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        if ext.critical && !KNOWN_CRITICAL.contains(&ext.extn_id) {
            return Err(ChainError::UnknownCriticalExtension {
                subject: subject_string(cert),
                oid: ext.extn_id,
            });
        }
    }
    Ok(())
}

/// Decode the extension `T` of `cert`, if present.
pub fn extension<T>(cert: &Certificate) -> Result<Option<T>, ChainError>
where
    T: for<'a> Decode<'a> + const_oid::AssociatedOid,
{
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        if ext.extn_id == T::OID {
            return T::from_der(ext.extn_value.as_bytes())
                .map(Some)
                .map_err(|e| ChainError::Malformed {
                    subject: subject_string(cert),
                    reason: format!("extension {}: {e}", T::OID),
                });
        }
    }
    Ok(None)
}

/// The subject DN in RFC 4514 form, for messages.
pub fn subject_string(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}
