//! TPM 2.0 keys (cargo feature `tpm`): a [`Signer`] whose private key never leaves the TPM,
//! and the creation of the IEEE 802.1AR DevID keys from the TCG templates (SPEC §8.2).
//!
//! Keys are addressed by persistent handle. Every operation opens its own connection to the TPM
//! (through the TCTI in [`TpmConfig`]) and closes it before returning:
//!
//! - swtpm and `/dev/tpm0` serve one client at a time, so a connection held open would lock out
//!   every other user of the TPM (tpm2-tools, a second key of the same process);
//! - a TPM that goes away and comes back (simulator restart, resource manager restart) works
//!   again on the next call, with nothing to reset;
//! - every transient object made is flushed (`TPM2_FlushContext`) and every ESYS handle of a
//!   persistent object closed (`Esys_TR_Close`) before the connection closes, so a long-running
//!   daemon never fills the TPM's object slots, even on a TPM without a resource manager.
//!
//! Calls through one TCTI are serialised inside the process. One signature costs two TPM
//! commands: `TPM2_ReadPublic` (to get an ESYS handle for the persistent key, whose name is
//! compared with the one recorded at [`TpmSigner::open`]) and `TPM2_Sign` with a password
//! session and the null hashcheck ticket over a digest computed in software (the first
//! signature after a TPM start may cost one more `TPM2_Sign`: libtpms self-tests ECDSA and
//! answers TPM_RC_RETRY, which ESYS resubmits). Each signature is verified in software before it
//! is returned. Opening the connection adds no TPM command.
//!
//! The owner and endorsement hierarchies and the keys are used with empty authorization values
//! (the state of a TPM that has not been taken ownership of with a password).

mod attest;
mod error;
mod public;
#[doc(hidden)]
pub mod swtpm;

pub use attest::{
    IAK_HANDLE, TpmKeyInfo, certify, create_iak_key, extend_pcr, prove_same_tpm, quote, read_key,
};
pub use error::TpmError;
pub use public::{
    IAK_AUTH_POLICY_SHA256, IDEVID_AUTH_POLICY_SHA256, IDEVID_UNIQUE, LDEVID_UNIQUE,
    TCG_IDEVID_AUTH_POLICY_SHA256,
};

use super::{KeyError, SignatureAlgorithm, Signer};
use error::{RC0_NV_DEFINED, RcClass, classify, describe, raw_rc};
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, HashScheme, HashcheckTicket, Signature, SignatureScheme};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::{Context, TctiNameConf};

/// Default persistent handle of the IDevID key (this suite's default; a platform provisioned
/// elsewhere may use another handle, passed explicitly).
pub const IDEVID_HANDLE: u32 = 0x8102_0000;

/// Default persistent handles of the LDevID key: two slots, so that renewal creates the next
/// key in the free slot while the current one still authenticates, and evicts the old one
/// only once the new certificate is in hand.
pub const LDEVID_HANDLES: [u32; 2] = [0x8102_0001, 0x8102_0002];

/// Persistent handles (TPM 2.0 Part 2 §7.4: TPM_HT_PERSISTENT).
const PERSISTENT: RangeInclusive<u32> = 0x8100_0000..=0x81ff_ffff;
/// Persistent handles the owner may make with `TPM2_EvictControl` (Part 3 §28.5: the platform
/// range starts at 0x81800000).
const OWNER_PERSISTENT: RangeInclusive<u32> = 0x8100_0000..=0x817f_ffff;

/// Attempts of one operation when the TPM answers with a retry warning.
const ATTEMPTS: u32 = 3;

/// Curves a TPM key can be created on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TpmCurve {
    /// NIST P-256 (TPM_ECC_NIST_P256), signing with ECDSA-SHA256.
    P256,
    /// NIST P-384 (TPM_ECC_NIST_P384), signing with ECDSA-SHA384.
    P384,
}

/// Where the TPM is: a TCTI configuration string, as tpm2-tools' `-T` takes it
/// (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `mssim:...`, `tabrmd:...`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TpmConfig {
    pub tcti: String,
}

impl TpmConfig {
    /// A configuration for `tcti`, checked with the TSS's TCTI name parser.
    pub fn new(tcti: impl Into<String>) -> Result<Self, TpmError> {
        let config = Self { tcti: tcti.into() };
        config.name_conf()?;
        Ok(config)
    }

    fn name_conf(&self) -> Result<TctiNameConf, TpmError> {
        TctiNameConf::from_str(&self.tcti).map_err(|e| TpmError::InvalidTcti {
            tcti: self.tcti.clone(),
            reason: e.to_string(),
        })
    }
}

impl FromStr for TpmConfig {
    type Err = TpmError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl std::fmt::Display for TpmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.tcti)
    }
}

/// The process-wide lock of one TCTI: operations on one TPM run one at a time.
fn tcti_lock(tcti: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    locks.entry(tcti.to_string()).or_default().clone()
}

/// Run `f` on a fresh connection to the TPM, under the TCTI's lock, retrying a few times when
/// the TPM asks to be retried. The connection is closed when `f` returns.
fn with_tpm<T>(
    config: &TpmConfig,
    mut f: impl FnMut(&mut Context) -> Result<T, TpmError>,
) -> Result<T, TpmError> {
    let name_conf = config.name_conf()?;
    let lock = tcti_lock(&config.tcti);
    let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
    let mut attempt = 1;
    loop {
        let mut ctx = Context::new(name_conf.clone()).map_err(|e| TpmError::Unreachable {
            tcti: config.tcti.clone(),
            reason: describe(&e),
        })?;
        let result = f(&mut ctx);
        drop(ctx);
        match result {
            Err(TpmError::Busy { .. }) if attempt < ATTEMPTS => {
                std::thread::sleep(Duration::from_millis(50 * u64::from(attempt)));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Map a TSS error of `operation` to a [`TpmError`]; `handle` is the persistent handle the
/// command addressed, if any (TPM_RC_HANDLE then means no key there).
fn tss_error(
    config: &TpmConfig,
    operation: &'static str,
    handle: Option<u32>,
    e: tss_esapi::Error,
) -> TpmError {
    let tcti = config.tcti.clone();
    let reason = describe(&e);
    match raw_rc(&e).map(classify) {
        Some(RcClass::Transport) => TpmError::Unreachable { tcti, reason },
        Some(RcClass::Busy) => TpmError::Busy { tcti, reason },
        Some(RcClass::Lockout) => TpmError::Lockout { tcti },
        Some(RcClass::Handle) if handle.is_some() => TpmError::NoKeyAtHandle {
            tcti,
            handle: handle.unwrap_or_default(),
        },
        Some(RcClass::Curve) => TpmError::Unsupported {
            tcti,
            what: format!("{operation}: {reason}"),
        },
        _ => TpmError::Other {
            tcti,
            operation,
            reason,
        },
    }
}

fn persistent_handle(handle: u32) -> Result<PersistentTpmHandle, TpmError> {
    if !PERSISTENT.contains(&handle) {
        return Err(TpmError::InvalidHandle(handle));
    }
    PersistentTpmHandle::new(handle).map_err(|_| TpmError::InvalidHandle(handle))
}

fn owner_persistent_handle(handle: u32) -> Result<PersistentTpmHandle, TpmError> {
    if !OWNER_PERSISTENT.contains(&handle) {
        return Err(TpmError::InvalidHandle(handle));
    }
    persistent_handle(handle)
}

/// An ESYS handle for the persistent object at `handle` (one `TPM2_ReadPublic`). The caller
/// closes it with [`close`].
fn load_persistent(
    ctx: &mut Context,
    config: &TpmConfig,
    handle: u32,
) -> Result<ObjectHandle, TpmError> {
    let tpm_handle = TpmHandle::Persistent(persistent_handle(handle)?);
    ctx.execute_without_session(|ctx| ctx.tr_from_tpm_public(tpm_handle))
        .map_err(|e| tss_error(config, "read the public area", Some(handle), e))
}

/// The public area and TPM Name of the persistent object at `handle` (`TPM2_ReadPublic` twice:
/// once for the ESYS handle, once for the area).
fn read_public_at(
    config: &TpmConfig,
    handle: u32,
) -> Result<(tss_esapi::structures::Public, Vec<u8>), TpmError> {
    persistent_handle(handle)?;
    with_tpm(config, |ctx| {
        let object = load_persistent(ctx, config, handle)?;
        let read = ctx.read_public(KeyHandle::from(object));
        close(ctx, object);
        let (public, name, _) =
            read.map_err(|e| tss_error(config, "read the public area", Some(handle), e))?;
        Ok((public, name.value().to_vec()))
    })
}

/// Release an ESYS handle of a persistent object (no TPM command). A failure leaves the handle
/// to the context, which closes it when dropped.
fn close(ctx: &mut Context, mut object: ObjectHandle) {
    let _ = ctx.tr_close(&mut object);
}

/// A signing key held in a TPM at a persistent handle.
pub struct TpmSigner {
    config: TpmConfig,
    handle: u32,
    alg: SignatureAlgorithm,
    spki: Vec<u8>,
    /// The TPM name (nameAlg ‖ H(public area)) of the key, to notice a replaced key.
    name: Vec<u8>,
}

impl std::fmt::Debug for TpmSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmSigner")
            .field("tcti", &self.config.tcti)
            .field("handle", &format_args!("{:#010x}", self.handle))
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TpmSigner {
    /// The existing key at the persistent `handle`: an unrestricted ECDSA signing key on P-256
    /// or P-384. Two TPM commands (`TPM2_ReadPublic` twice).
    pub fn open(config: &TpmConfig, handle: u32) -> Result<Self, TpmError> {
        let (public, name) = read_public_at(config, handle)?;
        Self::from_public(config, handle, &public, name)
    }

    fn from_public(
        config: &TpmConfig,
        handle: u32,
        public: &tss_esapi::structures::Public,
        name: Vec<u8>,
    ) -> Result<Self, TpmError> {
        let (alg, spki) = public::signing_key_info(public).map_err(|p| match p {
            public::KeyProblem::Curve(what) => TpmError::Unsupported {
                tcti: config.tcti.clone(),
                what,
            },
            public::KeyProblem::Unusable(reason) => TpmError::UnusableKey {
                tcti: config.tcti.clone(),
                handle,
                reason,
            },
        })?;
        Ok(Self {
            config: config.clone(),
            handle,
            alg,
            spki,
            name,
        })
    }

    /// The persistent handle of the key.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// The TPM the key is in.
    pub fn config(&self) -> &TpmConfig {
        &self.config
    }

    /// Sign `message` (hashed here with the algorithm's hash), returning a DER
    /// `Ecdsa-Sig-Value` (RFC 3279 §2.2.3), with the TPM error on failure.
    pub fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, TpmError> {
        let der = self.try_sign_digest(&self.alg.digest(message))?;
        super::verify_signature(&self.spki, self.alg.oid(), message, &der).map_err(|_| {
            TpmError::BadSignature {
                tcti: self.config.tcti.clone(),
                handle: self.handle,
            }
        })?;
        Ok(der)
    }

    /// Sign a digest of the key's hash (the TPM checks its length: TPM2_Sign without a ticket,
    /// Part 3 §20.2), returning a DER `Ecdsa-Sig-Value`. The caller verifies it: only the
    /// caller has the message.
    pub fn try_sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, TpmError> {
        let fixed = with_tpm(&self.config, |ctx| self.sign_digest(ctx, digest))?;
        super::ecdsa_fixed_to_der(&fixed).map_err(|_| TpmError::BadSignature {
            tcti: self.config.tcti.clone(),
            handle: self.handle,
        })
    }

    /// `TPM2_ReadPublic` + `TPM2_Sign`; returns `r‖s`, each left-padded to the scalar length.
    fn sign_digest(&self, ctx: &mut Context, digest: &[u8]) -> Result<Vec<u8>, TpmError> {
        let object = load_persistent(ctx, &self.config, self.handle)?;
        let result = self.sign_loaded(ctx, object, digest);
        close(ctx, object);
        result
    }

    fn sign_loaded(
        &self,
        ctx: &mut Context,
        object: ObjectHandle,
        digest: &[u8],
    ) -> Result<Vec<u8>, TpmError> {
        let err = |op, e| tss_error(&self.config, op, Some(self.handle), e);
        let name = ctx
            .tr_get_name(object)
            .map_err(|e| err("read the key name", e))?;
        if name.value() != self.name.as_slice() {
            return Err(TpmError::KeyChanged {
                tcti: self.config.tcti.clone(),
                handle: self.handle,
            });
        }
        let hash = public::hashing_algorithm(self.alg).ok_or_else(|| TpmError::Unsupported {
            tcti: self.config.tcti.clone(),
            what: format!("{:?}", self.alg),
        })?;
        let digest = Digest::try_from(digest).map_err(|e| err("sign", e))?;
        let ticket = null_hashcheck_ticket().map_err(|e| err("sign", e))?;
        let scheme = SignatureScheme::EcDsa {
            hash_scheme: HashScheme::new(hash),
        };
        let signature = ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.sign(KeyHandle::from(object), digest, scheme, ticket)
            })
            .map_err(|e| err("sign", e))?;
        let Signature::EcDsa(ecc) = signature else {
            return Err(TpmError::Other {
                tcti: self.config.tcti.clone(),
                operation: "sign",
                reason: format!("the TPM returned a {:?} signature", signature.algorithm()),
            });
        };
        let len = self.alg.ecdsa_scalar_len().unwrap_or_default();
        fixed_signature(ecc.signature_r().value(), ecc.signature_s().value(), len).ok_or_else(
            || TpmError::BadSignature {
                tcti: self.config.tcti.clone(),
                handle: self.handle,
            },
        )
    }
}

impl Signer for TpmSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }

    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.try_sign(message).map_err(KeyError::from)
    }

    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        // ECDSA on P-256 and P-384 hashes with SHA-256 and SHA-384: digest and scalar agree.
        if Some(digest.len()) != self.alg.ecdsa_scalar_len() {
            return Err(KeyError::UnsupportedAlgorithm(format!(
                "a {}-octet digest for {:?}",
                digest.len(),
                self.alg
            )));
        }
        self.try_sign_digest(digest).map_err(KeyError::from)
    }
}

/// `r‖s` with each of the TPM's `r` and `s` (TPM2B_ECC_PARAMETER, which may be shorter than
/// the scalar) left-padded to `len` octets; `None` if one is empty or longer than `len`.
fn fixed_signature(r: &[u8], s: &[u8], len: usize) -> Option<Vec<u8>> {
    if r.is_empty() || s.is_empty() || r.len() > len || s.len() > len {
        return None;
    }
    let mut fixed = vec![0u8; 2 * len];
    fixed[len - r.len()..len].copy_from_slice(r);
    fixed[2 * len - s.len()..].copy_from_slice(s);
    Some(fixed)
}

/// The null hashcheck ticket (TPM 2.0 Part 2 §10.7.6): an unrestricted key signs any digest.
fn null_hashcheck_ticket() -> tss_esapi::Result<HashcheckTicket> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
}

/// Create the IDevID key from the TCG template H-2 with `TPM2_CreatePrimary` in the
/// Endorsement hierarchy, persist it at `handle` with `TPM2_EvictControl` and flush the
/// transient copy (TCG "TPM 2.0 Keys for Device Identity and Attestation", SPEC §8.2).
///
/// The template is fixed, so the TPM derives the same key each time: calling this again when
/// that key is already at `handle` returns it; a different object at `handle` is left alone
/// and reported as [`TpmError::HandleOccupied`]. Only P-256 is offered: the SHA-384 authPolicy
/// digest of template H-3 is not confirmed here, so [`TpmCurve::P384`] is
/// [`TpmError::Unsupported`].
pub fn create_idevid_key(
    config: &TpmConfig,
    handle: u32,
    curve: TpmCurve,
) -> Result<TpmSigner, TpmError> {
    if curve != TpmCurve::P256 {
        return Err(TpmError::Unsupported {
            tcti: config.tcti.clone(),
            what: format!(
                "IDevID on {curve:?}: the TCG template H-3 authPolicy (SHA-384) is not confirmed; use P-256"
            ),
        });
    }
    let (public, name) = create_primary_at(
        config,
        handle,
        Hierarchy::Endorsement,
        public::idevid_p256_template(),
        "build the IDevID template",
    )?;
    TpmSigner::from_public(config, handle, &public, name)
}

/// Create an LDevID key (a P-256 ECDSA primary of the Owner hierarchy, see the template in
/// `public.rs`: unique = "LDEVID" ‖ handle ‖ 16 random octets, so each call makes a fresh key)
/// and persist it at `handle`, evicting whatever key was there (after the new key has been
/// made). [`IDEVID_HANDLE`] is refused.
pub fn create_ldevid_key(config: &TpmConfig, handle: u32) -> Result<TpmSigner, TpmError> {
    if handle == IDEVID_HANDLE {
        return Err(TpmError::ReservedHandle(handle));
    }
    owner_persistent_handle(handle)?;
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| TpmError::Other {
        tcti: config.tcti.clone(),
        operation: "draw the LDevID nonce",
        reason: "no randomness".into(),
    })?;
    let (public, name) = create_primary_at(
        config,
        handle,
        Hierarchy::Owner,
        public::ldevid_template(handle, &nonce),
        "build the LDevID template",
    )?;
    TpmSigner::from_public(config, handle, &public, name)
}

/// Evict the persistent object at `handle` (`TPM2_EvictControl` with owner authorization).
///
/// An IDevID evicted this way is not lost for good: [`create_idevid_key`] derives it again.
pub fn evict(config: &TpmConfig, handle: u32) -> Result<(), TpmError> {
    let persistent = owner_persistent_handle(handle)?;
    with_tpm(config, |ctx| {
        let object = load_persistent(ctx, config, handle)?;
        evict_loaded(ctx, config, object, handle, persistent)
    })
}

/// Evict the loaded persistent `object`; on failure its ESYS handle is closed.
fn evict_loaded(
    ctx: &mut Context,
    config: &TpmConfig,
    object: ObjectHandle,
    handle: u32,
    persistent: PersistentTpmHandle,
) -> Result<(), TpmError> {
    let result = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.evict_control(Provision::Owner, object, Persistent::Persistent(persistent))
    });
    match result {
        // On success ESYS has released the handle of the evicted object.
        Ok(_) => Ok(()),
        Err(e) => {
            close(ctx, object);
            Err(tss_error(config, "evict", Some(handle), e))
        }
    }
}

/// Create a primary key from `template` under `hierarchy` and persist it at `handle`. The
/// Endorsement hierarchy's keys come from fixed templates, so the key already at `handle` is
/// kept when it is this very key; an Owner key replaces whatever was there.
fn create_primary_at(
    config: &TpmConfig,
    handle: u32,
    hierarchy: Hierarchy,
    template: tss_esapi::Result<tss_esapi::structures::Public>,
    building: &'static str,
) -> Result<(tss_esapi::structures::Public, Vec<u8>), TpmError> {
    let persistent = owner_persistent_handle(handle)?;
    let template = template.map_err(|e| TpmError::Other {
        tcti: config.tcti.clone(),
        operation: building,
        reason: describe(&e),
    })?;
    let replace = hierarchy == Hierarchy::Owner;
    with_tpm(config, |ctx| {
        create_and_persist(
            ctx, config, hierarchy, &template, handle, persistent, replace,
        )
    })
}

/// `TPM2_CreatePrimary` under `hierarchy`, then persist at `handle` and flush the transient.
/// With `replace`, an object already at `handle` is evicted first; without, the call succeeds
/// only if that object is this very key.
fn create_and_persist(
    ctx: &mut Context,
    config: &TpmConfig,
    hierarchy: Hierarchy,
    template: &tss_esapi::structures::Public,
    handle: u32,
    persistent: PersistentTpmHandle,
    replace: bool,
) -> Result<(tss_esapi::structures::Public, Vec<u8>), TpmError> {
    let created = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.create_primary(hierarchy, template.clone(), None, None, None, None)
        })
        .map_err(|e| tss_error(config, "create the key", None, e))?;
    let transient = ObjectHandle::from(created.key_handle);
    let result = persist(ctx, config, transient, handle, persistent, replace);
    // Flushed whatever happened; should the flush fail, dropping the context retries it.
    let _ = ctx.flush_context(transient);
    result.map(|name| (created.out_public, name))
}

fn persist(
    ctx: &mut Context,
    config: &TpmConfig,
    transient: ObjectHandle,
    handle: u32,
    persistent: PersistentTpmHandle,
    replace: bool,
) -> Result<Vec<u8>, TpmError> {
    let name = ctx
        .tr_get_name(transient)
        .map_err(|e| tss_error(config, "read the key name", None, e))?
        .value()
        .to_vec();
    if replace {
        match load_persistent(ctx, config, handle) {
            Ok(old) => evict_loaded(ctx, config, old, handle, persistent)?,
            Err(TpmError::NoKeyAtHandle { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let stored = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.evict_control(
            Provision::Owner,
            transient,
            Persistent::Persistent(persistent),
        )
    });
    match stored {
        Ok(object) => {
            close(ctx, object);
            Ok(name)
        }
        Err(e) if !replace && raw_rc(&e).map(classify) == Some(RcClass::Error0(RC0_NV_DEFINED)) => {
            let existing = load_persistent(ctx, config, handle)?;
            let existing_name = ctx.tr_get_name(existing).map(|n| n.value().to_vec());
            close(ctx, existing);
            match existing_name {
                Ok(n) if n == name => Ok(name),
                Ok(_) => Err(TpmError::HandleOccupied {
                    tcti: config.tcti.clone(),
                    handle,
                }),
                Err(e) => Err(tss_error(config, "read the key name", Some(handle), e)),
            }
        }
        Err(e) => Err(tss_error(config, "persist the key", Some(handle), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tss_esapi::constants::response_code::Tss2ResponseCode;

    fn config() -> TpmConfig {
        TpmConfig::new("swtpm:host=127.0.0.1,port=2321").expect("TCTI")
    }

    fn mapped(rc: u32, handle: Option<u32>) -> TpmError {
        let e = tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(rc));
        tss_error(&config(), "sign", handle, e)
    }

    #[test]
    fn response_codes_map_to_tpm_errors_naming_the_tcti() {
        let h = Some(IDEVID_HANDLE);
        assert!(matches!(mapped(0x922, h), TpmError::Busy { .. }));
        assert!(matches!(mapped(0x90a, h), TpmError::Busy { .. }));
        assert!(matches!(mapped(0x921, h), TpmError::Lockout { .. }));
        assert!(matches!(
            mapped(0x18b, h),
            TpmError::NoKeyAtHandle {
                handle: IDEVID_HANDLE,
                ..
            }
        ));
        // TPM_RC_HANDLE of a command that names no persistent key is not "no key".
        assert!(matches!(mapped(0x18b, None), TpmError::Other { .. }));
        assert!(matches!(mapped(0x0a_000a, h), TpmError::Unreachable { .. }));
        assert!(matches!(mapped(0x2a6, h), TpmError::Unsupported { .. }));
        assert!(matches!(
            mapped(0x98e, h),
            TpmError::Other {
                operation: "sign",
                ..
            }
        ));
        for rc in [0x922, 0x921, 0x18b, 0x0a_000a, 0x2a6, 0x98e] {
            let text = mapped(rc, h).to_string();
            assert!(text.contains("swtpm:host=127.0.0.1,port=2321"), "{text}");
        }
        assert!(mapped(0x922, h).is_transient());
        assert!(!mapped(0x98e, h).is_transient());
    }

    #[test]
    fn tpm_error_becomes_key_error_unavailable() {
        let e: KeyError = mapped(0x921, None).into();
        assert!(matches!(e, KeyError::Unavailable(m) if m.contains("lockout")));
    }

    #[test]
    fn handles_outside_the_owner_persistent_range_are_refused() {
        for h in [0, 0x80ff_ffff, 0x8180_0000, 0x81ff_ffff, 0x8200_0000] {
            assert!(
                matches!(owner_persistent_handle(h), Err(TpmError::InvalidHandle(x)) if x == h)
            );
        }
        assert!(persistent_handle(0x81ff_ffff).is_ok());
        assert!(owner_persistent_handle(IDEVID_HANDLE).is_ok());
        assert!(owner_persistent_handle(LDEVID_HANDLES[1]).is_ok());
    }

    #[test]
    fn fixed_signature_pads_and_rejects() {
        assert_eq!(
            fixed_signature(&[1], &[2, 3], 4),
            Some(vec![0, 0, 0, 1, 0, 0, 2, 3])
        );
        assert_eq!(fixed_signature(&[1; 5], &[2], 4), None);
        assert_eq!(fixed_signature(&[], &[2], 4), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_tpm_signature_values_pad_or_fail(
            r in proptest::collection::vec(any::<u8>(), 0..70),
            s in proptest::collection::vec(any::<u8>(), 0..70),
            p384 in any::<bool>(),
        ) {
            let len = if p384 { 48 } else { 32 };
            match fixed_signature(&r, &s, len) {
                Some(f) => {
                    prop_assert_eq!(f.len(), 2 * len);
                    prop_assert!(f[..len].ends_with(&r) && f[len..].ends_with(&s));
                    // And the DER conversion accepts it.
                    prop_assert!(crate::keys::ecdsa_fixed_to_der(&f).is_ok());
                }
                None => prop_assert!(r.is_empty() || s.is_empty() || r.len() > len || s.len() > len),
            }
        }
    }
}
