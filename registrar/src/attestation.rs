//! Attested enrollment (SPEC §9): per manufacturer, whether `/csrattrs` asks for TPM evidence
//! and what happens to a CSR without valid evidence; the PCR reference values; the record of
//! each appraisal. The checks themselves are `brski_common::attest::enroll`.

pub use crate::config::{AttestationMode, load_pcr_policy};
use crate::db::NewAttestation;
use crate::server::ManufacturerAnchors;
use crate::steps::{Peer, Refusal};
use brski_common::answer::Class;
use brski_common::attest::AttestError;
use brski_common::attest::enroll::{
    Appraisal, EnrollmentContext, EvidenceRequest, appraise_enrollment,
};
use x509_cert::Certificate;
use x509_cert::request::CertReq;

/// What `/csrattrs` asks of a pledge of manufacturer `m`, if anything.
pub fn request(m: &ManufacturerAnchors) -> Option<EvidenceRequest> {
    (m.attestation != AttestationMode::Off).then(|| m.pcr_policy.request())
}

/// The appraisal of an enrollment's evidence and what to do with it.
pub struct Verdict {
    pub appraisal: Appraisal,
    pub mode: AttestationMode,
}

impl Verdict {
    /// The row to store, with the certificate issued (`cert_serial`) when there is one.
    pub fn record<'a>(
        &'a self,
        serial: &'a str,
        cert_serial: Option<&'a str>,
    ) -> NewAttestation<'a> {
        let a = &self.appraisal;
        NewAttestation {
            serial,
            mode: self.mode.as_str(),
            accepted: a.result.is_ok(),
            failed_check: a.failed_check(),
            reason: a.result.as_ref().err().map(|e| e.to_string()),
            passed: a.passed.join(","),
            pcr_set: a.result.as_ref().ok().and_then(|ok| ok.pcr_set.as_deref()),
            evidence: a.evidence.as_deref(),
            cert_serial,
        }
    }

    /// Under `require`, the refusal of evidence that failed, naming the check: 400 for a CSR
    /// without evidence (it lacks what `/csrattrs` asks for, as RFC 7030 §4.5.2 has it; a
    /// cBRSKI pledge then asks `/att`, §6.7), 403 for evidence that does not prove what it
    /// must.
    pub fn refusal(&self) -> Option<Refusal> {
        let e = self.appraisal.result.as_ref().err()?;
        let class = match e {
            AttestError::MissingEvidence => Class::BadRequest,
            _ => Class::Forbidden,
        };
        (self.mode == AttestationMode::Require).then(|| {
            Refusal::new(
                class,
                format!("attestation refused, check {}: {e}", e.check()),
            )
        })
    }

    /// Whether the evidence proved the key TPM-resident (the issued LDevID may say so).
    pub fn proved_residency(&self) -> bool {
        self.appraisal.result.is_ok()
    }
}

/// Appraise the evidence in `csr` of a pledge of manufacturer `m` authenticated by `idevid`
/// on `peer`'s session; `None` when the manufacturer's mode is `off`.
pub fn appraise(
    m: &ManufacturerAnchors,
    idevid: &Certificate,
    csr: &CertReq,
    peer: &Peer,
) -> Option<Verdict> {
    if m.attestation == AttestationMode::Off {
        return None;
    }
    let appraisal = appraise_enrollment(&EnrollmentContext {
        csr,
        idevid,
        manufacturer: &m.idevid_policy,
        channel_binding: peer.channel_binding.as_deref(),
        pcr_policy: &m.pcr_policy,
    });
    Some(Verdict {
        appraisal,
        mode: m.attestation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pcrs.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn a_pcr_reference_file_gives_named_sets() {
        let zero = "00".repeat(32);
        let one = "11".repeat(32);
        let (_d, p) = write(&format!(
            "pcrs = [7, 0]\n[[set]]\nname = \"fw-1\"\nvalues = [\"{zero}\", \"{one}\"]\n\
             [[set]]\nname = \"fw-2\"\nvalues = [\"{one}\", \"{one}\"]\n"
        ));
        let policy = load_pcr_policy(&p).expect("policy");
        assert_eq!(policy.pcrs, vec![0, 7]);
        assert_eq!(policy.sets.len(), 2);
        assert_eq!(policy.sets[1].0, "fw-2");
        assert_eq!(policy.request().quote_pcrs, vec![0, 7]);
    }

    #[test]
    fn bad_pcr_reference_files_say_what_is_wrong() {
        let v = "00".repeat(32);
        for (text, needle) in [
            ("pcrs = []\n".to_string(), "pcrs is empty"),
            (
                format!("pcrs = [24]\n[[set]]\nname = \"a\"\nvalues = [\"{v}\"]\n"),
                "PCR 24",
            ),
            ("pcrs = [0]\n".to_string(), "no [[set]]"),
            (
                "pcrs = [0]\n[[set]]\nname = \"a\"\nvalues = [\"zz\"]\n".to_string(),
                "set \"a\"",
            ),
            (
                "pcrs = [0, 1]\n[[set]]\nname = \"a\"\nvalues = [\"00\"]\n".to_string(),
                "1 values for 2 PCRs",
            ),
            ("pcrs = [0]\nextra = 1\n".to_string(), "unknown field"),
        ] {
            let (_d, p) = write(&text);
            let e = load_pcr_policy(&p).expect_err(&text);
            assert!(e.contains(needle) && e.contains("pcrs.toml"), "{text}: {e}");
        }
    }
}
