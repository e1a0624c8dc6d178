//! The pledge's keys inside a TPM 2.0 (cargo feature `tpm`; SPEC §8.2): the IDevID key made by
//! the factory (`masa mint --tpm`) and the LDevID keys, which alternate between two persistent
//! handles so that renewal (RFC 7030 §4.2.2) never destroys the key still in use.
//!
//! Every TPM failure is a [`Failure::Tpm`] naming the TCTI. The TPM being away, busy or in
//! dictionary-attack lockout is transient (`pledge run` retries soon); anything else (no key at
//! the handle, a key that is not the certificate's) is retried slowly, since an operator may
//! fix it without restarting the daemon.

use crate::error::Failure;
use brski_common::attest::enroll::EvidenceRequest;
use brski_common::keys::Signer;
use std::sync::Arc;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;

/// Default LDevID handles (the same as `brski_common::keys::tpm::LDEVID_HANDLES`, which only
/// exists with the `tpm` feature).
pub const DEFAULT_LDEVID_HANDLES: [u32; 2] = [0x8102_0001, 0x8102_0002];

/// The LDevID slot a renewal creates its key in: the one of `handles` not in use by `current`.
pub fn next_slot(handles: [u32; 2], current: u32) -> u32 {
    if current == handles[0] {
        handles[1]
    } else {
        handles[0]
    }
}

#[cfg(feature = "tpm")]
mod imp {
    use super::*;
    use brski_common::attest::enroll::qualifying_data;
    use brski_common::attest::{BundleCert, TpmEvidence};
    use brski_common::keys::tpm::{self, TpmConfig, TpmError, TpmSigner};

    pub(super) fn failure(e: TpmError) -> Failure {
        Failure::Tpm {
            transient: e.is_transient(),
            reason: e.to_string(),
        }
    }

    fn config(tcti: &str) -> Result<TpmConfig, Failure> {
        TpmConfig::new(tcti).map_err(failure)
    }

    /// Check that `tcti` parses (at start-up, so that a typo is a configuration error).
    pub fn check_tcti(tcti: &str) -> Result<(), String> {
        TpmConfig::new(tcti).map(|_| ()).map_err(|e| e.to_string())
    }

    /// The signer of the key at `handle` (two `TPM2_ReadPublic`), which must have the public
    /// key `spki` (the certificate's).
    pub fn open(
        tcti: &str,
        handle: u32,
        spki: &[u8],
        what: &str,
    ) -> Result<Arc<dyn Signer>, Failure> {
        let signer = TpmSigner::open(&config(tcti)?, handle).map_err(failure)?;
        if signer.public_key_spki() != spki {
            return Err(Failure::Tpm {
                transient: false,
                reason: format!(
                    "TPM at {tcti}: the key at {handle:#010x} is not the key of the {what} certificate"
                ),
            });
        }
        Ok(Arc::new(signer))
    }

    /// A fresh LDevID key at `handle` (TCG LDevID template, P-256), replacing what was there.
    pub fn create_ldevid(tcti: &str, handle: u32) -> Result<Arc<dyn Signer>, Failure> {
        let signer = tpm::create_ldevid_key(&config(tcti)?, handle).map_err(failure)?;
        Ok(Arc::new(signer))
    }

    /// Evict the key at `handle`; `Ok(false)` when there was none.
    pub fn evict(tcti: &str, handle: u32) -> Result<bool, Failure> {
        match tpm::evict(&config(tcti)?, handle) {
            Ok(()) => Ok(true),
            Err(TpmError::NoKeyAtHandle { .. }) => Ok(false),
            Err(e) => Err(failure(e)),
        }
    }

    /// The `id-aa-attestation` attribute for a CSR of the key at `key` sent on the session
    /// whose channel binding is `channel_binding` (SPEC §9): TPM2_Certify of the key by the
    /// IAK at `iak` and, when `request` names PCRs, TPM2_Quote of them, both over the
    /// qualifying data of the session, with `iak_chain`.
    pub fn attestation(
        tcti: &str,
        iak: u32,
        key: u32,
        iak_chain: &[Certificate],
        request: &EvidenceRequest,
        channel_binding: &[u8],
    ) -> Result<Attribute, Failure> {
        let config = config(tcti)?;
        let qualifying = qualifying_data(channel_binding);
        let certify = tpm::certify(&config, key, iak, &qualifying).map_err(failure)?;
        let quote = if request.quote_pcrs.is_empty() {
            None
        } else {
            Some(tpm::quote(&config, iak, &qualifying, &request.quote_pcrs).map_err(failure)?)
        };
        let certs = iak_chain
            .iter()
            .map(|c| BundleCert::X509(Box::new(c.clone())))
            .collect();
        TpmEvidence {
            certify: Some(certify),
            quote,
        }
        .to_bundle(certs)
        .and_then(|b| b.to_attribute())
        .map_err(|e| Failure::Internal(format!("attestation evidence: {e}")))
    }
}

#[cfg(not(feature = "tpm"))]
mod imp {
    use super::*;

    const NOT_BUILT: &str = "the key is in a TPM, but TPM support is not built into this pledge (build with --features tpm)";

    fn not_built() -> Failure {
        Failure::Config(NOT_BUILT.into())
    }

    pub fn check_tcti(_tcti: &str) -> Result<(), String> {
        Err(NOT_BUILT.into())
    }

    pub fn open(_: &str, _: u32, _: &[u8], _: &str) -> Result<Arc<dyn Signer>, Failure> {
        Err(not_built())
    }

    pub fn create_ldevid(_: &str, _: u32) -> Result<Arc<dyn Signer>, Failure> {
        Err(not_built())
    }

    pub fn evict(_: &str, _: u32) -> Result<bool, Failure> {
        Err(not_built())
    }

    pub fn attestation(
        _: &str,
        _: u32,
        _: u32,
        _: &[Certificate],
        _: &EvidenceRequest,
        _: &[u8],
    ) -> Result<Attribute, Failure> {
        Err(not_built())
    }
}

pub use imp::{attestation, check_tcti, create_ldevid, evict, open};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_uses_the_other_slot() {
        let h = DEFAULT_LDEVID_HANDLES;
        assert_eq!(next_slot(h, h[0]), h[1]);
        assert_eq!(next_slot(h, h[1]), h[0]);
        // A key recorded at a handle outside the configured pair moves into the first slot.
        assert_eq!(next_slot(h, 0x8101_0000), h[0]);
    }

    #[cfg(feature = "tpm")]
    #[test]
    fn default_handles_are_the_common_crate_ones() {
        assert_eq!(
            DEFAULT_LDEVID_HANDLES,
            brski_common::keys::tpm::LDEVID_HANDLES
        );
    }

    #[cfg(feature = "tpm")]
    #[test]
    fn busy_and_lockout_are_retried_soon_a_wrong_handle_slowly() {
        use brski_common::keys::tpm::TpmError;
        let tcti = || "device:/dev/tpmrm0".to_string();
        for (e, transient) in [
            (
                TpmError::Busy {
                    tcti: tcti(),
                    reason: "TPM_RC_RETRY".into(),
                },
                true,
            ),
            (TpmError::Lockout { tcti: tcti() }, true),
            (
                TpmError::NoKeyAtHandle {
                    tcti: tcti(),
                    handle: 0x8102_0005,
                },
                false,
            ),
            (
                TpmError::KeyChanged {
                    tcti: tcti(),
                    handle: 0x8102_0000,
                },
                false,
            ),
        ] {
            let text = e.to_string();
            let f = imp::failure(e);
            assert!(
                matches!(&f, Failure::Tpm { transient: t, reason } if *t == transient && *reason == text),
                "{f:?}"
            );
            assert!(f.to_string().contains("device:/dev/tpmrm0"), "{f}");
            assert!(!f.is_fatal(), "pledge run keeps retrying: {f}");
            assert_eq!(f.exit_code(), 1);
        }
    }

    #[cfg(not(feature = "tpm"))]
    #[test]
    fn without_the_feature_a_tpm_key_is_a_configuration_error() {
        let Err(e) = open("device:/dev/tpmrm0", 0x8102_0000, &[], "IDevID") else {
            panic!("a TPM key opened without TPM support");
        };
        assert!(
            matches!(&e, Failure::Config(m) if m.contains("--features tpm")),
            "{e:?}"
        );
        assert!(check_tcti("device:/dev/tpmrm0").is_err());
    }

    #[cfg(feature = "tpm")]
    #[test]
    fn a_stopped_tpm_is_a_transient_failure_naming_the_tcti() {
        // Nothing listens on port 1 of the loopback.
        let tcti = "swtpm:host=127.0.0.1,port=1";
        let Err(err) = create_ldevid(tcti, DEFAULT_LDEVID_HANDLES[0]) else {
            panic!("a key made without a TPM");
        };
        assert!(
            matches!(&err, Failure::Tpm { transient: true, reason } if reason.contains(tcti)),
            "{err:?}"
        );
        assert!(err.is_transient() && !err.is_fatal());
        assert_eq!(err.exit_code(), 1);
        assert!(check_tcti("nonsense:::").is_err());
        assert!(check_tcti(tcti).is_ok());
    }
}
