//! Signing keys: one [`Signer`] trait for every signature the suite makes (CMS, JWS, COSE,
//! certificates, CSRs, TLS CertificateVerify), and signature verification by SPKI.
//!
//! The trait is shaped so that a key which lives inside a TPM and can only sign fits it: it
//! exposes the algorithm and the public key, and signs a message. Signatures are returned in the
//! X.509/CMS form (DER `Ecdsa-Sig-Value` for ECDSA); envelopes that need the fixed `r‖s` form
//! (JWS, COSE) convert with [`ecdsa_der_to_fixed`].

mod software;
pub mod tls;
#[cfg(feature = "tpm")]
pub mod tpm;
mod verify;

pub use software::SoftwareKey;
pub use verify::{verify_signature, verify_with_algorithm_id};

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;

/// Errors from key handling and signing.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("private key could not be parsed: {0}")]
    MalformedPrivateKey(String),
    #[error("public key could not be parsed: {0}")]
    MalformedPublicKey(String),
    #[error("unsupported key or signature algorithm: {0}")]
    UnsupportedAlgorithm(String),
    #[error("signing failed: {0}")]
    SigningFailed(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("malformed ECDSA signature")]
    MalformedSignature,
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

/// Signature algorithms the suite signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// ECDSA over P-256 with SHA-256 (JWS `ES256`, COSE -7).
    EcdsaP256Sha256,
    /// ECDSA over P-384 with SHA-384 (JWS `ES384`, COSE -35).
    EcdsaP384Sha384,
    /// Ed25519 (JWS `EdDSA`, COSE -8).
    Ed25519,
}

impl SignatureAlgorithm {
    /// The X.509/CMS signature algorithm OID (RFC 5758, RFC 8410).
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::EcdsaP256Sha256 => rfc5912::ECDSA_WITH_SHA_256,
            Self::EcdsaP384Sha384 => rfc5912::ECDSA_WITH_SHA_384,
            Self::Ed25519 => const_oid::db::rfc8410::ID_ED_25519,
        }
    }

    /// The digest algorithm OID paired with this signature in CMS (RFC 5652 §5.3).
    pub fn digest_oid(self) -> ObjectIdentifier {
        match self {
            Self::EcdsaP256Sha256 => rfc5912::ID_SHA_256,
            Self::EcdsaP384Sha384 => rfc5912::ID_SHA_384,
            // RFC 8419 §3: Ed25519 in CMS uses SHA-512 for the message digest.
            Self::Ed25519 => rfc5912::ID_SHA_512,
        }
    }

    /// JWS `alg` (RFC 7518 §3.1, RFC 8037).
    pub fn jws_alg(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ES256",
            Self::EcdsaP384Sha384 => "ES384",
            Self::Ed25519 => "EdDSA",
        }
    }

    /// COSE `alg` (RFC 9053 §2.1, §2.2).
    pub fn cose_alg(self) -> i64 {
        match self {
            Self::EcdsaP256Sha256 => -7,
            Self::EcdsaP384Sha384 => -35,
            Self::Ed25519 => -8,
        }
    }

    /// Byte length of one ECDSA scalar, or `None` for EdDSA.
    pub fn ecdsa_scalar_len(self) -> Option<usize> {
        match self {
            Self::EcdsaP256Sha256 => Some(32),
            Self::EcdsaP384Sha384 => Some(48),
            Self::Ed25519 => None,
        }
    }

    /// The algorithm whose JWS name is `alg`.
    pub fn from_jws_alg(alg: &str) -> Option<Self> {
        [Self::EcdsaP256Sha256, Self::EcdsaP384Sha384, Self::Ed25519]
            .into_iter()
            .find(|a| a.jws_alg() == alg)
    }

    /// The algorithm whose COSE number is `alg`.
    pub fn from_cose_alg(alg: i64) -> Option<Self> {
        [Self::EcdsaP256Sha256, Self::EcdsaP384Sha384, Self::Ed25519]
            .into_iter()
            .find(|a| a.cose_alg() == alg)
    }

    /// The X.509 `AlgorithmIdentifier` for this signature (parameters absent, RFC 5758 §3.2).
    pub fn algorithm_identifier(self) -> spki::AlgorithmIdentifierOwned {
        spki::AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: None,
        }
    }

    /// Digest `message` with the hash this algorithm uses in CMS (see [`Self::digest_oid`]).
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::EcdsaP256Sha256 => &aws_lc_rs::digest::SHA256,
            Self::EcdsaP384Sha384 => &aws_lc_rs::digest::SHA384,
            Self::Ed25519 => &aws_lc_rs::digest::SHA512,
        };
        aws_lc_rs::digest::digest(alg, message).as_ref().to_vec()
    }
}

/// A key that can sign: in software, or inside a TPM.
///
/// `sign` receives the whole message (not a digest) and returns the signature in X.509/CMS
/// form: DER `Ecdsa-Sig-Value` for ECDSA, the 64 raw bytes for Ed25519.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The algorithm this key signs with.
    fn algorithm(&self) -> SignatureAlgorithm;
    /// DER `SubjectPublicKeyInfo` of the key.
    fn public_key_spki(&self) -> &[u8];
    /// Sign `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// The private key as PKCS#8 DER, for a protocol stack that needs the key itself (the DTLS
    /// client); `None` when it never leaves its device (a TPM).
    fn pkcs8_der(&self) -> Option<&[u8]> {
        None
    }
    /// Sign a digest that the caller computed with the algorithm's hash, returning a DER
    /// `Ecdsa-Sig-Value`: for a protocol stack that hashes by itself and holds no key (the
    /// DTLS client over a TPM-held key). Keys that only sign whole messages refuse.
    fn sign_digest(&self, _digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        Err(KeyError::UnsupportedAlgorithm(
            "this key signs whole messages, not digests".into(),
        ))
    }
}

/// Convert a DER `Ecdsa-Sig-Value` to the fixed `r‖s` form of JWS and COSE (RFC 7518 §3.4).
pub fn ecdsa_der_to_fixed(der_sig: &[u8], scalar_len: usize) -> Result<Vec<u8>, KeyError> {
    use der::Decode;
    #[derive(der::Sequence)]
    struct EcdsaSig<'a> {
        r: der::asn1::UintRef<'a>,
        s: der::asn1::UintRef<'a>,
    }
    let sig = EcdsaSig::from_der(der_sig).map_err(|_| KeyError::MalformedSignature)?;
    let mut out = vec![0u8; 2 * scalar_len];
    for (i, v) in [sig.r.as_bytes(), sig.s.as_bytes()].into_iter().enumerate() {
        if v.len() > scalar_len {
            return Err(KeyError::MalformedSignature);
        }
        let end = (i + 1) * scalar_len;
        out[end - v.len()..end].copy_from_slice(v);
    }
    Ok(out)
}

/// Convert the fixed `r‖s` form to a DER `Ecdsa-Sig-Value`.
pub fn ecdsa_fixed_to_der(fixed: &[u8]) -> Result<Vec<u8>, KeyError> {
    use der::Encode;
    if fixed.is_empty() || fixed.len() % 2 != 0 {
        return Err(KeyError::MalformedSignature);
    }
    let (r, s) = fixed.split_at(fixed.len() / 2);
    #[derive(der::Sequence)]
    struct EcdsaSig {
        r: der::asn1::Uint,
        s: der::asn1::Uint,
    }
    let sig = EcdsaSig {
        r: der::asn1::Uint::new(r).map_err(|_| KeyError::MalformedSignature)?,
        s: der::asn1::Uint::new(s).map_err(|_| KeyError::MalformedSignature)?,
    };
    sig.to_der().map_err(|_| KeyError::MalformedSignature)
}

/// Sign `message` with `signer` and return the signature in the fixed form JWS and COSE use.
pub fn sign_fixed(signer: &dyn Signer, message: &[u8]) -> Result<Vec<u8>, KeyError> {
    let sig = signer.sign(message)?;
    match signer.algorithm().ecdsa_scalar_len() {
        Some(n) => ecdsa_der_to_fixed(&sig, n),
        None => Ok(sig),
    }
}

#[cfg(test)]
mod tests;
