//! rustls adapter: any [`Signer`] as a rustls `SigningKey`, so that the TLS CertificateVerify
//! is made by the same key (software or TPM) that signs voucher requests.

use super::{SignatureAlgorithm as Alg, Signer};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::{SignatureScheme, sign};
use std::sync::Arc;

/// A rustls signing key backed by a [`Signer`].
#[derive(Debug)]
pub struct TlsSigningKey(pub Arc<dyn Signer>);

impl TlsSigningKey {
    fn scheme(&self) -> SignatureScheme {
        match self.0.algorithm() {
            Alg::EcdsaP256Sha256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            Alg::EcdsaP384Sha384 => SignatureScheme::ECDSA_NISTP384_SHA384,
            Alg::Ed25519 => SignatureScheme::ED25519,
        }
    }
}

impl sign::SigningKey for TlsSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn sign::Signer>> {
        let scheme = self.scheme();
        offered.contains(&scheme).then(|| {
            Box::new(TlsSigner {
                key: self.0.clone(),
                scheme,
            }) as Box<dyn sign::Signer>
        })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.0.public_key_spki()))
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        match self.0.algorithm() {
            Alg::EcdsaP256Sha256 | Alg::EcdsaP384Sha384 => rustls::SignatureAlgorithm::ECDSA,
            Alg::Ed25519 => rustls::SignatureAlgorithm::ED25519,
        }
    }
}

#[derive(Debug)]
struct TlsSigner {
    key: Arc<dyn Signer>,
    scheme: SignatureScheme,
}

impl sign::Signer for TlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key
            .sign(message)
            .map_err(|e| rustls::Error::General(format!("signing key: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
