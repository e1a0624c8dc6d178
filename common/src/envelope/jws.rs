//! jws envelope (stub: to be implemented).

use super::{EnvelopeError, Parsed, Verified};
use crate::keys::Signer;
use crate::pki::chain::TrustPolicy;
use x509_cert::Certificate;

/// Sign `payload`.
pub fn sign(
    _payload: &[u8],
    _signer: &dyn Signer,
    _chain: &[Certificate],
) -> Result<Vec<u8>, EnvelopeError> {
    todo!()
}

/// Verify an envelope.
pub fn verify(
    _bytes: &[u8],
    _policy: &TrustPolicy,
    _extra: &[Certificate],
) -> Result<Verified, EnvelopeError> {
    todo!()
}

/// Decode without verifying.
pub fn parse(_bytes: &[u8]) -> Result<Parsed, EnvelopeError> {
    todo!()
}
