//! The TPM side of attestation (SPEC §8.2, §9): the IAK, TPM2_Certify of a key by it and
//! TPM2_Quote of PCRs. What these return is appraised by [`crate::attest`].

use super::public::{self, CERTIFY_POLICY_SHA256, IDEVID_AUTH_POLICY_SHA256};
use super::{
    TpmConfig, TpmError, close, create_primary_at, load_persistent, read_public_at, tss_error,
    with_tpm,
};
use crate::attest::{
    HashAlg, PcrBank, PcrSelection, TpmCertifyStatement, TpmQuoteStatement, TpmsAttest,
};
use crate::keys::SignatureAlgorithm;
use der::asn1::OctetString;
use tss_esapi::Context;
use tss_esapi::constants::{CommandCode, SessionType};
use tss_esapi::handles::{KeyHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, Digest, DigestList, PcrSelectionList, PcrSlot, Public, SignatureScheme,
    SymmetricDefinition,
};
use tss_esapi::traits::Marshall;

/// Default persistent handle of the IAK (beside [`super::IDEVID_HANDLE`] and the LDevID slots).
pub const IAK_HANDLE: u32 = 0x8102_0003;

/// Most PCR values one `TPM2_PCR_Read` returns (TPM 2.0 Part 3 §22.4: a TPML_DIGEST of at most
/// eight digests).
const PCRS_PER_READ: usize = 8;

/// Attempts at a quote whose PCRs changed between reading them and quoting them.
const QUOTE_ATTEMPTS: u32 = 3;

/// A key in the TPM as an attestation verifier sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmKeyInfo {
    /// The persistent handle.
    pub handle: u32,
    /// The key as a DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// The marshalled TPMT_PUBLIC.
    pub public: Vec<u8>,
    /// The TPM Name: nameAlg ‖ H(TPMT_PUBLIC).
    pub name: Vec<u8>,
}

/// Create the IAK from the TCG IAK template (restricted ECDSA P-256 signing key, Endorsement
/// hierarchy, SPEC §8.2) and persist it at `handle`. The template is fixed, so calling this
/// again returns the same key; another object at `handle` is [`TpmError::HandleOccupied`].
pub fn create_iak_key(config: &TpmConfig, handle: u32) -> Result<TpmKeyInfo, TpmError> {
    let (public, name) = create_primary_at(
        config,
        handle,
        Hierarchy::Endorsement,
        public::iak_p256_template(),
        "build the IAK template",
    )?;
    key_info(config, handle, &public, name)
}

/// The key at the persistent `handle`: any ECC key, restricted or not.
pub fn read_key(config: &TpmConfig, handle: u32) -> Result<TpmKeyInfo, TpmError> {
    let (public, name) = read_public_at(config, handle)?;
    key_info(config, handle, &public, name)
}

fn key_info(
    config: &TpmConfig,
    handle: u32,
    public: &Public,
    name: Vec<u8>,
) -> Result<TpmKeyInfo, TpmError> {
    let unusable = |reason: String| TpmError::UnusableKey {
        tcti: config.tcti.clone(),
        handle,
        reason,
    };
    let Public::Ecc {
        parameters, unique, ..
    } = public
    else {
        return Err(unusable("not an ECC key".into()));
    };
    let alg = match parameters.ecc_curve() {
        EccCurve::NistP256 => SignatureAlgorithm::EcdsaP256Sha256,
        EccCurve::NistP384 => SignatureAlgorithm::EcdsaP384Sha384,
        other => return Err(unusable(format!("ECC curve {other:?}"))),
    };
    let spki = public::ecc_spki(alg, unique.x().value(), unique.y().value())
        .map_err(|e| unusable(format!("public point: {e}")))?;
    let public = public
        .marshall()
        .map_err(|e| tss_error(config, "marshal the public area", Some(handle), e))?;
    Ok(TpmKeyInfo {
        handle,
        spki,
        public,
        name,
    })
}

/// TPM2_Certify (TPM 2.0 Part 3 §18.2) of the key at `object` by the restricted key at
/// `signer` (the IAK), over `qualifying_data`: the `tcg-attest-tpm-certify` statement, with the
/// certified key's TPMT_PUBLIC.
///
/// The object's ADMIN role authorizes the command: by its (empty) authValue when adminWithPolicy
/// is clear (the LDevID); by a policy session through the certify branch of
/// [`IDEVID_AUTH_POLICY_SHA256`] for this suite's IDevID. Any other policy is refused
/// ([`TpmError::UnusableKey`]). Four to six TPM commands.
pub fn certify(
    config: &TpmConfig,
    object: u32,
    signer: u32,
    qualifying_data: &[u8],
) -> Result<TpmCertifyStatement, TpmError> {
    let data = Data::try_from(qualifying_data.to_vec())
        .map_err(|e| tss_error(config, "certify", None, e))?;
    with_tpm(config, |ctx| {
        let object_handle = load_persistent(ctx, config, object)?;
        let signer_handle = match load_persistent(ctx, config, signer) {
            Ok(h) => h,
            Err(e) => {
                close(ctx, object_handle);
                return Err(e);
            }
        };
        let result = certify_loaded(
            ctx,
            config,
            (object, object_handle),
            signer_handle,
            data.clone(),
        );
        close(ctx, object_handle);
        close(ctx, signer_handle);
        result
    })
}

fn certify_loaded(
    ctx: &mut Context,
    config: &TpmConfig,
    (object, object_handle): (u32, ObjectHandle),
    signer_handle: ObjectHandle,
    data: Data,
) -> Result<TpmCertifyStatement, TpmError> {
    let (public, _, _) = ctx
        .execute_without_session(|ctx| ctx.read_public(KeyHandle::from(object_handle)))
        .map_err(|e| tss_error(config, "read the public area", Some(object), e))?;
    let admin = admin_session(ctx, config, object, &public)?;
    let certified =
        ctx.execute_with_sessions((Some(admin), Some(AuthSession::Password), None), |ctx| {
            ctx.certify(
                object_handle,
                KeyHandle::from(signer_handle),
                data,
                SignatureScheme::Null,
            )
        });
    if let AuthSession::PolicySession(_) = admin {
        // The command ends a session without continueSession; flushing again is harmless.
        let _ = ctx.flush_context(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
            admin,
        )));
    }
    let (attest, signature) = certified.map_err(|e| tss_error(config, "certify", None, e))?;
    let marshal = |r: tss_esapi::Result<Vec<u8>>| {
        r.map(OctetString::new)
            .map_err(|e| tss_error(config, "marshal the certify info", None, e))
    };
    Ok(TpmCertifyStatement {
        tpms_attest: marshal(attest.marshall())?.map_err(der_error(config))?,
        signature: marshal(signature.marshall())?.map_err(der_error(config))?,
        tpmt_public: Some(marshal(public.marshall())?.map_err(der_error(config))?),
    })
}

fn der_error(config: &TpmConfig) -> impl Fn(der::Error) -> TpmError + '_ {
    move |e| TpmError::Other {
        tcti: config.tcti.clone(),
        operation: "encode the statement",
        reason: e.to_string(),
    }
}

/// The session that gives the ADMIN role of `public` for TPM2_Certify.
fn admin_session(
    ctx: &mut Context,
    config: &TpmConfig,
    object: u32,
    public: &Public,
) -> Result<AuthSession, TpmError> {
    let (attributes, policy) = match public {
        Public::Ecc {
            object_attributes,
            auth_policy,
            ..
        }
        | Public::Rsa {
            object_attributes,
            auth_policy,
            ..
        } => (object_attributes, auth_policy),
        _ => {
            return Err(TpmError::UnusableKey {
                tcti: config.tcti.clone(),
                handle: object,
                reason: "neither an ECC nor an RSA key".into(),
            });
        }
    };
    if !attributes.admin_with_policy() {
        return Ok(AuthSession::Password);
    }
    if policy.value() != IDEVID_AUTH_POLICY_SHA256 {
        return Err(TpmError::UnusableKey {
            tcti: config.tcti.clone(),
            handle: object,
            reason: format!(
                "its authPolicy {} has no certify branch this suite can satisfy",
                hex::encode(policy.value())
            ),
        });
    }
    let err = |e| tss_error(config, "start the certify policy session", None, e);
    let session = ctx
        .execute_without_session(|ctx| {
            ctx.start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::Null,
                HashingAlgorithm::Sha256,
            )
        })
        .map_err(err)?
        .ok_or_else(|| TpmError::Other {
            tcti: config.tcti.clone(),
            operation: "start the certify policy session",
            reason: "no session returned".into(),
        })?;
    let satisfied = (|| {
        let policy = PolicySession::try_from(session)?;
        let mut branches = DigestList::new();
        branches.add(Digest::try_from(
            public::TCG_IDEVID_AUTH_POLICY_SHA256.as_slice(),
        )?)?;
        branches.add(Digest::try_from(CERTIFY_POLICY_SHA256.as_slice())?)?;
        ctx.execute_without_session(|ctx| {
            ctx.policy_command_code(policy, CommandCode::Certify)?;
            ctx.policy_or(policy, branches)
        })
    })();
    match satisfied {
        Ok(()) => Ok(session),
        Err(e) => {
            let _ = ctx.flush_context(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
                session,
            )));
            Err(tss_error(config, "satisfy the certify policy", None, e))
        }
    }
}

/// TPM2_Quote (TPM 2.0 Part 3 §18.4) by the restricted key at `signer` over `qualifying_data`
/// and the SHA-256 PCRs `pcrs`, with their values (read first with TPM2_PCR_Read, in the
/// quote's order). Should a PCR change between the read and the quote, both are made again.
pub fn quote(
    config: &TpmConfig,
    signer: u32,
    qualifying_data: &[u8],
    pcrs: &[u16],
) -> Result<TpmQuoteStatement, TpmError> {
    let mut sorted: Vec<u16> = pcrs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let slots = sorted
        .iter()
        .map(|&i| {
            1u32.checked_shl(u32::from(i))
                .and_then(|bit| PcrSlot::try_from(bit).ok())
                .ok_or(TpmError::Unsupported {
                    tcti: config.tcti.clone(),
                    what: format!("PCR {i}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = Data::try_from(qualifying_data.to_vec())
        .map_err(|e| tss_error(config, "quote", None, e))?;
    let selection = PcrSelection(vec![PcrBank {
        hash: HashAlg::Sha256,
        pcrs: sorted.clone(),
    }]);
    for _ in 0..QUOTE_ATTEMPTS {
        let (attest, signature, values) = with_tpm(config, |ctx| {
            let values = read_pcrs(ctx, config, &slots)?;
            let key = load_persistent(ctx, config, signer)?;
            let quoted = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                let list = PcrSelectionList::builder()
                    .with_selection(HashingAlgorithm::Sha256, &slots)
                    .build()?;
                ctx.quote(
                    KeyHandle::from(key),
                    data.clone(),
                    SignatureScheme::Null,
                    list,
                )
            });
            close(ctx, key);
            let (attest, signature) =
                quoted.map_err(|e| tss_error(config, "quote", Some(signer), e))?;
            let marshalled = attest
                .marshall()
                .and_then(|a| signature.marshall().map(|s| (a, s)))
                .map_err(|e| tss_error(config, "marshal the quote", None, e))?;
            Ok((marshalled.0, marshalled.1, values))
        })?;
        let info = TpmsAttest::decode(&attest).map_err(|e| TpmError::Other {
            tcti: config.tcti.clone(),
            operation: "quote",
            reason: format!("the TPM's quote does not decode: {e}"),
        })?;
        if !matches!(&info.attested, crate::attest::Attested::Quote { pcr_select, .. } if *pcr_select == selection)
        {
            return Err(TpmError::Other {
                tcti: config.tcti.clone(),
                operation: "quote",
                reason: "the TPM quoted another PCR selection".into(),
            });
        }
        if crate::attest::check_reported_pcr_values(&info, HashAlg::Sha256, &values).is_err() {
            continue;
        }
        let octets = |v: Vec<u8>| OctetString::new(v).map_err(der_error(config));
        return Ok(TpmQuoteStatement {
            tpms_attest: octets(attest)?,
            signature: octets(signature)?,
            pcr_values: Some(values.into_iter().map(octets).collect::<Result<_, _>>()?),
        });
    }
    Err(TpmError::Other {
        tcti: config.tcti.clone(),
        operation: "quote",
        reason: format!("the PCRs changed during each of {QUOTE_ATTEMPTS} quotes"),
    })
}

/// The SHA-256 values of `slots`, ascending, eight per TPM2_PCR_Read.
fn read_pcrs(
    ctx: &mut Context,
    config: &TpmConfig,
    slots: &[PcrSlot],
) -> Result<Vec<Vec<u8>>, TpmError> {
    let mut values = Vec::with_capacity(slots.len());
    for chunk in slots.chunks(PCRS_PER_READ) {
        let err = |e| tss_error(config, "read the PCRs", None, e);
        let list = PcrSelectionList::builder()
            .with_selection(HashingAlgorithm::Sha256, chunk)
            .build()
            .map_err(err)?;
        let (_, _, digests) = ctx
            .execute_without_session(|ctx| ctx.pcr_read(list))
            .map_err(err)?;
        if digests.len() != chunk.len() {
            return Err(TpmError::Unsupported {
                tcti: config.tcti.clone(),
                what: format!(
                    "{} of {} SHA-256 PCRs (is the SHA-256 bank allocated?)",
                    digests.len(),
                    chunk.len()
                ),
            });
        }
        values.extend(digests.value().iter().map(|d| d.value().to_vec()));
    }
    Ok(values)
}

/// The manufacturer's check (SPEC §8.2): the IAK at `iak` certifies the key at `object` over
/// 32 fresh random octets, and the result is appraised as a verifier would
/// ([`crate::attest::appraise_certify`]: signed by the IAK, a restricted key; the certified key
/// is `object`'s, fixedTPM, fixedParent, sensitiveDataOrigin). Both keys are then in one TPM.
/// Returns the IAK. A certify that is not accepted is [`TpmError::UnusableKey`] of `object`.
pub fn prove_same_tpm(config: &TpmConfig, object: u32, iak: u32) -> Result<TpmKeyInfo, TpmError> {
    let iak_key = read_key(config, iak)?;
    let certified = read_key(config, object)?;
    let mut qualifying_data = [0u8; 32];
    aws_lc_rs::rand::fill(&mut qualifying_data).map_err(|_| TpmError::Other {
        tcti: config.tcti.clone(),
        operation: "draw the qualifying data",
        reason: "no randomness".into(),
    })?;
    let statement = certify(config, object, iak, &qualifying_data)?;
    let refused = |e: crate::attest::AttestError| TpmError::UnusableKey {
        tcti: config.tcti.clone(),
        handle: object,
        reason: format!("the IAK at {iak:#010x} does not prove it is in its TPM: {e}"),
    };
    let public = crate::attest::TpmtPublic::decode(&iak_key.public).map_err(|e| {
        refused(crate::attest::AttestError::Malformed {
            part: "IAK TPMT_PUBLIC",
            error: e,
        })
    })?;
    let signer = crate::attest::SignerKey::with_public(&iak_key.spki, public).map_err(refused)?;
    crate::attest::appraise_certify(&statement, &signer, &certified.spki, &qualifying_data)
        .map_err(refused)?;
    Ok(iak_key)
}

/// TPM2_PCR_Extend (TPM 2.0 Part 3 §22.2) of the SHA-256 bank's PCR `pcr` with `digest`, under
/// the PCR's empty authValue: what a boot loader does when it measures the next stage. The
/// testbed uses it to give a software TPM a boot to attest.
pub fn extend_pcr(config: &TpmConfig, pcr: u16, digest: &[u8; 32]) -> Result<(), TpmError> {
    let handle = tss_esapi::handles::PcrHandle::try_from(u32::from(pcr)).map_err(|_| {
        TpmError::Unsupported {
            tcti: config.tcti.clone(),
            what: format!("PCR {pcr}"),
        }
    })?;
    let mut values = tss_esapi::structures::DigestValues::new();
    values.set(
        HashingAlgorithm::Sha256,
        Digest::try_from(digest.as_slice()).map_err(|e| tss_error(config, "extend", None, e))?,
    );
    with_tpm(config, |ctx| {
        ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.pcr_extend(handle, values.clone())
        })
        .map_err(|e| tss_error(config, "extend the PCR", None, e))
    })
}
