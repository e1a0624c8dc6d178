//! Software keys on aws-lc-rs: ECDSA P-256/P-384 and Ed25519.

use super::{KeyError, SignatureAlgorithm, Signer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key held in memory.
pub struct SoftwareKey {
    inner: Inner,
    alg: SignatureAlgorithm,
    spki: Vec<u8>,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn ecdsa_signing(alg: SignatureAlgorithm) -> &'static signature::EcdsaSigningAlgorithm {
    match alg {
        SignatureAlgorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}

impl SoftwareKey {
    /// Generate a fresh key for `alg`.
    pub fn generate(alg: SignatureAlgorithm) -> Result<Self, KeyError> {
        let failed = |e: aws_lc_rs::error::Unspecified| KeyError::SigningFailed(e.to_string());
        match alg {
            SignatureAlgorithm::Ed25519 => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(failed)?;
                Self::from_pkcs8_der(pkcs8.as_ref())
            }
            // Kept as generated: parsing it back from PKCS#8 would check the key again.
            _ => Self::from_ecdsa(
                EcdsaKeyPair::generate(ecdsa_signing(alg)).map_err(failed)?,
                alg,
            ),
        }
    }

    /// Load a private key from DER: PKCS#8 (RFC 5208/5958) or SEC1 `ECPrivateKey` (RFC 5915).
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(k) = Self::from_pkcs8_der(der) {
            return Ok(k);
        }
        for alg in [
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureAlgorithm::EcdsaP384Sha384,
        ] {
            if let Ok(kp) = EcdsaKeyPair::from_private_key_der(ecdsa_signing(alg), der) {
                return Self::from_ecdsa(kp, alg);
            }
        }
        Err(KeyError::MalformedPrivateKey(
            "not a PKCS#8 or SEC1 P-256/P-384/Ed25519 private key".into(),
        ))
    }

    /// Load a private key from PEM (`PRIVATE KEY` or `EC PRIVATE KEY`). Lines before the
    /// PEM block (such as `#` comments) are ignored.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = crate::input::pem_block(pem, &["PRIVATE KEY", "EC PRIVATE KEY"])
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
        Self::from_der(&der)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        for alg in [
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureAlgorithm::EcdsaP384Sha384,
        ] {
            if let Ok(kp) = EcdsaKeyPair::from_pkcs8(ecdsa_signing(alg), der) {
                return Self::from_ecdsa(kp, alg);
            }
        }
        let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
        let pkcs8 = kp
            .to_pkcs8()
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?
            .as_ref()
            .to_vec();
        let spki = spki_der(
            const_oid::db::rfc8410::ID_ED_25519,
            None,
            kp.public_key().as_ref(),
        )?;
        Ok(Self {
            inner: Inner::Ed25519(kp),
            alg: SignatureAlgorithm::Ed25519,
            spki,
            pkcs8,
            rng: SystemRandom::new(),
        })
    }

    fn from_ecdsa(kp: EcdsaKeyPair, alg: SignatureAlgorithm) -> Result<Self, KeyError> {
        let curve = match alg {
            SignatureAlgorithm::EcdsaP384Sha384 => const_oid::db::rfc5912::SECP_384_R_1,
            _ => const_oid::db::rfc5912::SECP_256_R_1,
        };
        let spki = spki_der(
            const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
            Some(curve),
            kp.public_key().as_ref(),
        )?;
        let pkcs8 = kp
            .to_pkcs8v1()
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?
            .as_ref()
            .to_vec();
        Ok(Self {
            inner: Inner::Ecdsa(kp),
            alg,
            spki,
            pkcs8,
            rng: SystemRandom::new(),
        })
    }

    /// The private key as PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The private key as a PKCS#8 PEM document.
    pub fn to_pkcs8_pem(&self) -> String {
        crate::input::to_pem("PRIVATE KEY", &self.pkcs8)
    }
}

fn spki_der(
    alg: const_oid::ObjectIdentifier,
    curve: Option<const_oid::ObjectIdentifier>,
    key: &[u8],
) -> Result<Vec<u8>, KeyError> {
    use der::Encode;
    let parameters = curve.as_ref().map(der::Any::from);
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: alg,
            parameters,
        },
        subject_public_key: der::asn1::BitString::from_bytes(key)
            .map_err(|e| KeyError::MalformedPublicKey(e.to_string()))?,
    };
    spki.to_der()
        .map_err(|e| KeyError::MalformedPublicKey(e.to_string()))
}

impl Signer for SoftwareKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }

    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Ecdsa(kp) => kp
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| KeyError::SigningFailed(e.to_string())),
            Inner::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
        }
    }

    fn pkcs8_der(&self) -> Option<&[u8]> {
        Some(self.to_pkcs8_der())
    }
}
