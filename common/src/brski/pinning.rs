//! The MASA's choice of what a voucher pins (cBRSKI §8.2, §8.3; RFC 8995 §5.5.2), sans I/O:
//! from the registrar's validated chain and the proximity form of the pledge's request.

use crate::pki::chain::same_key;
use crate::voucher::{Pin, PinForm};
use der::Encode;
use x509_cert::Certificate;

/// Why no pin could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("the registrar's chain is empty")]
    NoRegistrarCertificate,
    #[error("cannot encode the pinned certificate or key: {0}")]
    Encoding(#[from] der::Error),
}

/// The certificate a voucher pins (cBRSKI §8.2), from the registrar's validated `chain`
/// (registrar first, anchor last):
///
/// 1. a nonced voucher pins the most specific (lowest-level) CA, `chain[1]`;
/// 2. a nonceless one the least specific (highest-level) CA that the MASA's policy allows for
///    this domain: the chain certificate with `ceiling`'s key, or the top of the chain when
///    `ceiling` is `None` or above the chain.
///
/// A chain of the registrar alone pins the registrar (§8.2 does not apply). `None` for an
/// empty chain.
pub fn pinned_certificate<'a>(
    chain: &'a [Certificate],
    nonced: bool,
    ceiling: Option<&Certificate>,
) -> Option<&'a Certificate> {
    if nonced {
        return chain.get(1).or_else(|| chain.first());
    }
    let allowed = ceiling
        .and_then(|c| chain.iter().position(|x| same_key(x, c)))
        .unwrap_or(chain.len().saturating_sub(1));
    chain.get(allowed)
}

/// The pin of a voucher (cBRSKI §8.2, §8.3): `pinned-domain-pubk` with the registrar's key
/// when the pledge asked with `proximity-registrar-pubk`, `pinned-domain-pubk-sha256` for the
/// `-sha256` form (an RPK pin is always the registrar's, §8.3), else `pinned-domain-cert`
/// with the certificate [`pinned_certificate`] chooses.
pub fn choose_pin(
    chain: &[Certificate],
    nonced: bool,
    requested: Option<PinForm>,
    ceiling: Option<&Certificate>,
) -> Result<Pin, PinError> {
    let registrar = chain.first().ok_or(PinError::NoRegistrarCertificate)?;
    let spki = || {
        registrar
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
    };
    Ok(match requested {
        Some(PinForm::Pubk) => Pin::DomainPubk(spki()?),
        Some(PinForm::PubkSha256) => Pin::DomainPubkSha256(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki()?)
                .as_ref()
                .to_vec(),
        ),
        Some(PinForm::Cert) | None => Pin::DomainCert(
            pinned_certificate(chain, nonced, ceiling)
                .ok_or(PinError::NoRegistrarCertificate)?
                .to_der()?,
        ),
    })
}
