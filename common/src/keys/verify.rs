//! Signature verification by `SubjectPublicKeyInfo` and X.509 signature algorithm
//! (RFC 5758 ECDSA, RFC 8017 RSA PKCS#1 v1.5 and PSS, RFC 8410 Ed25519), on aws-lc-rs.

use super::KeyError;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5912, rfc8410};
use der::Decode;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};

/// Verify `sig` over `message` with the public key `spki_der`, for the X.509 signature
/// algorithm `sig_alg` (ECDSA signatures in DER form).
pub fn verify_with_algorithm_id(
    spki_der: &[u8],
    sig_alg: &AlgorithmIdentifierOwned,
    message: &[u8],
    sig: &[u8],
) -> Result<(), KeyError> {
    verify_signature(spki_der, sig_alg.oid, message, sig)
}

/// Verify `sig` over `message` with the public key `spki_der`, for the signature algorithm
/// `sig_oid` (ECDSA signatures in DER form).
pub fn verify_signature(
    spki_der: &[u8],
    sig_oid: ObjectIdentifier,
    message: &[u8],
    sig: &[u8],
) -> Result<(), KeyError> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| KeyError::MalformedPublicKey(e.to_string()))?;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| KeyError::MalformedPublicKey("unaligned public key bit string".into()))?;
    let alg = verification_algorithm(&spki, sig_oid)?;
    UnparsedPublicKey::new(alg, key_bytes)
        .verify(message, sig)
        .map_err(|_| KeyError::BadSignature)
}

fn verification_algorithm(
    spki: &SubjectPublicKeyInfoRef<'_>,
    sig_oid: ObjectIdentifier,
) -> Result<&'static dyn VerificationAlgorithm, KeyError> {
    let key_oid = spki.algorithm.oid;
    let unsupported =
        || KeyError::UnsupportedAlgorithm(format!("signature {sig_oid} with key type {key_oid}"));
    if key_oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as().ok())
            .ok_or_else(|| KeyError::MalformedPublicKey("EC key without named curve".into()))?;
        let p256 = curve == rfc5912::SECP_256_R_1;
        let p384 = curve == rfc5912::SECP_384_R_1;
        return Ok(match sig_oid {
            o if o == rfc5912::ECDSA_WITH_SHA_256 && p256 => &signature::ECDSA_P256_SHA256_ASN1,
            o if o == rfc5912::ECDSA_WITH_SHA_384 && p256 => &signature::ECDSA_P256_SHA384_ASN1,
            o if o == rfc5912::ECDSA_WITH_SHA_256 && p384 => &signature::ECDSA_P384_SHA256_ASN1,
            o if o == rfc5912::ECDSA_WITH_SHA_384 && p384 => &signature::ECDSA_P384_SHA384_ASN1,
            o if o == rfc5912::ECDSA_WITH_SHA_512 && p256 => &signature::ECDSA_P256_SHA512_ASN1,
            o if o == rfc5912::ECDSA_WITH_SHA_512 && p384 => &signature::ECDSA_P384_SHA512_ASN1,
            _ => return Err(unsupported()),
        });
    }
    if key_oid == rfc5912::RSA_ENCRYPTION {
        return Ok(match sig_oid {
            o if o == rfc5912::SHA_256_WITH_RSA_ENCRYPTION => {
                &signature::RSA_PKCS1_2048_8192_SHA256
            }
            o if o == rfc5912::SHA_384_WITH_RSA_ENCRYPTION => {
                &signature::RSA_PKCS1_2048_8192_SHA384
            }
            o if o == rfc5912::SHA_512_WITH_RSA_ENCRYPTION => {
                &signature::RSA_PKCS1_2048_8192_SHA512
            }
            o if o == rfc5912::SHA_1_WITH_RSA_ENCRYPTION => {
                &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            _ => return Err(unsupported()),
        });
    }
    if key_oid == rfc8410::ID_ED_25519 && sig_oid == rfc8410::ID_ED_25519 {
        return Ok(&signature::ED25519);
    }
    Err(unsupported())
}
