//! Attested enrollment (SPEC §9, draft-ietf-lamps-csr-attestation-28): what the registrar asks
//! for in `/csrattrs`, the qualifying data both sides derive from the connection, and the
//! registrar's appraisal of the evidence in a CSR, check by check.
//!
//! The qualifying data is derived from the RFC 9266 `tls-exporter` channel binding of the
//! TLS or DTLS session that carries the CSR. The registrar's own random contributes to it (the
//! handshake), so it is fresh; it differs for every session, so evidence made for one session
//! (another device's, or this device's in an earlier state) is refused on another; and it
//! needs no state in the registrar, so any instance behind a load balancer can appraise.

use super::bundle::{AttestationBundle, TpmEvidence};
use super::tpm::{HashAlg, PcrBank, PcrSelection};
use super::{AttestError, PcrSet, SignerKey, appraise_certify, appraise_quote};
use crate::est::{AttrOrOid, CsrAttrs, RawOid};
use crate::oid::{ID_AA_ATTESTATION, TCG_CAP_VERIFIED_TPM_RESTRICTED};
use crate::pki::chain::{TrustPolicy, validate_chain};
use crate::pki::ext::{certificate_policies, hardware_module_name, serial_number};
use der::{Any, Decode, Encode};
use x509_cert::Certificate;
use x509_cert::request::CertReq;

/// `{ BRSKI_SUITE_ARC 2 }`, DER content octets: the `/csrattrs` attribute naming the PCRs of
/// the SHA-256 bank the pledge is to quote, `SEQUENCE OF INTEGER` (PCR indices). No TCG or
/// IETF text defines how a verifier asks for PCRs in EST.
pub const QUOTE_PCRS_ATTRIBUTE: &[u8] = &[
    0x69, 0x81, 0x95, 0xa0, 0x95, 0xb8, 0xcb, 0xb0, 0xba, 0xac, 0xb3, 0x9b, 0xf0, 0xf3, 0xef, 0xea,
    0xd9, 0xc2, 0x9d, 0x4e, 0x02,
];

/// Label hashed before the channel binding into the qualifying data.
const QUALIFYING_DATA_LABEL: &[u8] = b"BRSKI attested enrollment qualifying data";

/// The qualifying data (TPM2_Certify and TPM2_Quote `qualifyingData`) of a CSR sent on the
/// session whose RFC 9266 `tls-exporter` is `channel_binding`:
/// SHA-256(label ‖ channel binding), 32 octets.
pub fn qualifying_data(channel_binding: &[u8]) -> Vec<u8> {
    HashAlg::Sha256.digest(&[QUALIFYING_DATA_LABEL, channel_binding].concat())
}

fn quote_pcrs_oid() -> RawOid {
    RawOid::from_der_content(QUOTE_PCRS_ATTRIBUTE).unwrap_or_else(|_| unreachable!())
}

/// What the registrar asks of the pledge's TPM in `/csrattrs`: an `id-aa-attestation`
/// attribute in the CSR (the bare OID, RFC 7030 §4.5.2: "include this attribute"), holding a
/// certify statement of the CSR's key and, when `quote_pcrs` is not empty, a quote of those
/// SHA-256 PCRs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvidenceRequest {
    pub quote_pcrs: Vec<u16>,
}

impl EvidenceRequest {
    /// The `/csrattrs` entries of this request.
    pub fn to_attrs(&self) -> Result<Vec<AttrOrOid>, der::Error> {
        let mut attrs = vec![AttrOrOid::Oid(RawOid::from(ID_AA_ATTESTATION))];
        if !self.quote_pcrs.is_empty() {
            let pcrs: Vec<u32> = self.quote_pcrs.iter().map(|&p| u32::from(p)).collect();
            attrs.push(AttrOrOid::Attribute {
                oid: quote_pcrs_oid(),
                values: vec![Any::from_der(&pcrs.to_der()?)?],
            });
        }
        Ok(attrs)
    }

    /// The request in a `/csrattrs` answer, if it makes one. PCR indices that are not
    /// integers from 0 to 1023 are an error.
    pub fn from_csr_attrs(attrs: &CsrAttrs) -> Result<Option<Self>, der::Error> {
        if !attrs.mentions(&RawOid::from(ID_AA_ATTESTATION)) {
            return Ok(None);
        }
        let mut quote_pcrs = Vec::new();
        for v in attrs.attribute(&quote_pcrs_oid()).unwrap_or_default() {
            let ints: Vec<u32> = Vec::from_der(&v.to_der()?)?;
            for i in ints {
                let n = u16::try_from(i).ok().filter(|n| *n < 1024).ok_or_else(|| {
                    der::Error::from(der::ErrorKind::Value {
                        tag: der::Tag::Integer,
                    })
                })?;
                quote_pcrs.push(n);
            }
        }
        quote_pcrs.sort_unstable();
        quote_pcrs.dedup();
        Ok(Some(Self { quote_pcrs }))
    }
}

/// The PCR values a registrar accepts for one manufacturer: the PCRs it asks to be quoted,
/// and named sets of their values (several firmware versions, say). No PCRs: no quote asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrPolicy {
    pub pcrs: Vec<u16>,
    pub sets: Vec<(String, PcrSet)>,
}

impl PcrPolicy {
    /// A policy for the SHA-256 `pcrs` with `sets` of values, each in ascending PCR order.
    pub fn new(mut pcrs: Vec<u16>, sets: Vec<(String, Vec<Vec<u8>>)>) -> Result<Self, AttestError> {
        pcrs.sort_unstable();
        pcrs.dedup();
        let selection = PcrSelection(vec![PcrBank {
            hash: HashAlg::Sha256,
            pcrs: pcrs.clone(),
        }]);
        let sets = sets
            .into_iter()
            .map(|(name, values)| Ok((name, PcrSet::new(selection.clone(), values)?)))
            .collect::<Result<_, AttestError>>()?;
        Ok(Self { pcrs, sets })
    }

    /// What `/csrattrs` asks for under this policy.
    pub fn request(&self) -> EvidenceRequest {
        EvidenceRequest {
            quote_pcrs: self.pcrs.clone(),
        }
    }
}

/// What the verifier knows of the enrollment it appraises.
pub struct EnrollmentContext<'a> {
    /// The CSR (its signature already verified).
    pub csr: &'a CertReq,
    /// The device's IDevID, as authenticated on the session.
    pub idevid: &'a Certificate,
    /// The manufacturer's anchors, to which the IAK certificate must chain.
    pub manufacturer: &'a TrustPolicy,
    /// The RFC 9266 `tls-exporter` of the session that carried the CSR.
    pub channel_binding: Option<&'a [u8]>,
    /// The PCRs to have been quoted and the accepted values.
    pub pcr_policy: &'a PcrPolicy,
}

/// The checks of [`appraise_enrollment`], in order, by the names stored for them.
pub const ENROLLMENT_CHECKS: [&str; 6] = [
    "evidence",
    "iak_chain",
    "iak_restricted",
    "same_device",
    "certify",
    "quote",
];

/// The outcome of [`appraise_enrollment`]: the checks that passed, in order, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appraisal {
    pub passed: Vec<&'static str>,
    pub result: Result<Accepted, AttestError>,
    /// The DER AttestationBundle as the CSR carried it, when it had one.
    pub evidence: Option<Vec<u8>>,
}

/// What accepted evidence proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The accepted PCR set the quote matched (none when no quote was asked for).
    pub pcr_set: Option<String>,
}

impl Appraisal {
    /// The stable name of the check that failed, if one did.
    pub fn failed_check(&self) -> Option<&'static str> {
        self.result.as_ref().err().map(AttestError::check)
    }
}

/// Appraise the evidence of an enrollment's CSR (SPEC §9): in order,
/// 1. `evidence`: one `id-aa-attestation` attribute, a well-formed bundle with one certify
///    statement and at most one quote statement, and an X.509 certificate first (the IAK's);
/// 2. `iak_chain`: the IAK certificate chains, through the bundle's other certificates, to the
///    manufacturer's anchors;
/// 3. `iak_restricted`: the manufacturer certified the IAK as restricted
///    (tcg-cap-verifiedTPMRestricted);
/// 4. `same_device`: the IAK names the device of the IDevID (subject serialNumber, and
///    HardwareModuleName when either has one);
/// 5. `certify`: [`appraise_certify`] with the qualifying data of this session: signed by the
///    IAK, of the CSR's key, fixedTPM, fixedParent, sensitiveDataOrigin;
/// 6. `quote`: when the policy names PCRs, [`appraise_quote`] against its sets.
pub fn appraise_enrollment(ctx: &EnrollmentContext<'_>) -> Appraisal {
    let mut passed = Vec::new();
    let mut evidence = None;
    let result = run_checks(ctx, &mut passed, &mut evidence);
    Appraisal {
        passed,
        result,
        evidence,
    }
}

fn run_checks(
    ctx: &EnrollmentContext<'_>,
    passed: &mut Vec<&'static str>,
    evidence: &mut Option<Vec<u8>>,
) -> Result<Accepted, AttestError> {
    let bundle = AttestationBundle::from_csr(ctx.csr)?.ok_or(AttestError::MissingEvidence)?;
    *evidence = bundle.to_der().ok();
    let statements = TpmEvidence::from_bundle(&bundle)?;
    let certify = statements
        .certify
        .as_ref()
        .ok_or(AttestError::MissingStatement("certify"))?;
    let mut certs = bundle.x509_certs();
    let iak = certs.next().ok_or(AttestError::MissingIakCertificate)?;
    let pool: Vec<Certificate> = certs.cloned().collect();
    passed.push("evidence");

    validate_chain(iak, &pool, ctx.manufacturer)
        .map_err(|e| AttestError::IakChain(e.to_string()))?;
    passed.push("iak_chain");

    let policies = certificate_policies(iak).map_err(|e| AttestError::IakChain(e.to_string()))?;
    if !policies.contains(&TCG_CAP_VERIFIED_TPM_RESTRICTED) {
        return Err(AttestError::IakNotRestricted);
    }
    passed.push("iak_restricted");

    check_same_device(iak, ctx.idevid)?;
    passed.push("same_device");

    let qualifying = qualifying_data(ctx.channel_binding.ok_or(AttestError::NoChannelBinding)?);
    let signer = SignerKey::from_spki(
        &iak.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| AttestError::IakChain(e.to_string()))?,
    );
    let csr_key = ctx
        .csr
        .info
        .public_key
        .to_der()
        .map_err(|e| AttestError::IakChain(e.to_string()))?;
    appraise_certify(certify, &signer, &csr_key, &qualifying)?;
    passed.push("certify");

    if ctx.pcr_policy.pcrs.is_empty() {
        return Ok(Accepted { pcr_set: None });
    }
    let quote = statements
        .quote
        .as_ref()
        .ok_or(AttestError::MissingStatement("quote"))?;
    let sets: Vec<PcrSet> = ctx.pcr_policy.sets.iter().map(|(_, s)| s.clone()).collect();
    let index = appraise_quote(quote, &signer, &qualifying, &sets)?;
    passed.push("quote");
    Ok(Accepted {
        pcr_set: ctx.pcr_policy.sets.get(index).map(|(name, _)| name.clone()),
    })
}

/// The IAK certificate names the IDevID's device: the same subject serialNumber, and the same
/// HardwareModuleName when either carries one.
fn check_same_device(iak: &Certificate, idevid: &Certificate) -> Result<(), AttestError> {
    let iak_serial = serial_number(iak);
    if iak_serial.is_none() || iak_serial != serial_number(idevid) {
        return Err(AttestError::OtherDevice("serialNumber".into()));
    }
    let hmn = |c: &Certificate| {
        hardware_module_name(c)
            .map_err(|e| AttestError::OtherDevice(format!("HardwareModuleName: {e}")))
            .map(|h| h.and_then(|h| h.to_der().ok()))
    };
    if hmn(iak)? != hmn(idevid)? {
        return Err(AttestError::OtherDevice("HardwareModuleName".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oid::BRSKI_SUITE_ARC;

    #[test]
    fn quote_pcrs_attribute_is_arc_2_of_the_suite_arc() {
        assert_eq!(quote_pcrs_oid().to_string(), format!("{BRSKI_SUITE_ARC}.2"));
    }

    #[test]
    fn evidence_request_round_trips_through_csrattrs() {
        let request = EvidenceRequest {
            quote_pcrs: vec![0, 7, 16, 23],
        };
        let attrs = CsrAttrs(request.to_attrs().expect("attrs"));
        let der = attrs.to_der().expect("der");
        let back = CsrAttrs::from_der(&der).expect("decode");
        assert_eq!(EvidenceRequest::from_csr_attrs(&back), Ok(Some(request)));
        // Certify only: the bare OID.
        let certify_only = CsrAttrs(EvidenceRequest::default().to_attrs().expect("attrs"));
        assert_eq!(certify_only.0.len(), 1);
        assert_eq!(
            EvidenceRequest::from_csr_attrs(&certify_only),
            Ok(Some(EvidenceRequest::default()))
        );
        // No request without id-aa-attestation.
        assert_eq!(EvidenceRequest::from_csr_attrs(&CsrAttrs(vec![])), Ok(None));
    }

    #[test]
    fn pcr_indices_out_of_range_are_refused() {
        let bad: Vec<u32> = vec![1024];
        let attrs = CsrAttrs(vec![
            AttrOrOid::Oid(RawOid::from(ID_AA_ATTESTATION)),
            AttrOrOid::Attribute {
                oid: quote_pcrs_oid(),
                values: vec![Any::from_der(&bad.to_der().expect("der")).expect("any")],
            },
        ]);
        assert!(EvidenceRequest::from_csr_attrs(&attrs).is_err());
    }

    #[test]
    fn qualifying_data_is_bound_to_the_channel() {
        let a = qualifying_data(&[1; 32]);
        assert_eq!(a.len(), 32);
        assert_ne!(a, qualifying_data(&[2; 32]));
        assert_ne!(a, vec![1; 32]);
    }
}
