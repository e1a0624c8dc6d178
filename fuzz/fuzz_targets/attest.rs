//! Attestation evidence from a CSR (draft-ietf-lamps-csr-attestation-28): the AttestationBundle
//! (and the ≤ -21 EvidenceBundle) with its TPM statements, and the TPM 2.0 structures
//! TPMS_ATTEST, TPMT_SIGNATURE and TPMT_PUBLIC; what decodes re-encodes, and the appraisal
//! runs on whatever the statements hold.
#![no_main]
use brski_common::attest::{
    self, AttestationBundle, SignerKey, TpmEvidence, TpmsAttest, TpmtPublic, TpmtSignature,
};
use der::Decode;

fn tpm_structures(data: &[u8]) {
    let _ = TpmsAttest::decode(data);
    let _ = TpmtSignature::decode(data).map(|s| s.hash());
    if let Ok(public) = TpmtPublic::decode(data) {
        assert_eq!(public.as_bytes(), data);
        let _ = public.name();
        let _ = attest::check_certified_attributes(&public);
        let _ = attest::check_signer_restricted(&public);
        if let Ok(spki) = public.spki_der() {
            x509_cert::spki::SubjectPublicKeyInfoRef::from_der(&spki).expect("our SPKI decodes");
            let signer = SignerKey::from_public(public).expect("SPKI made twice");
            let _ = attest::verify_certify(data, data, &signer);
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tpm_structures(data);
    let Ok(bundle) = AttestationBundle::from_der(data) else {
        return;
    };
    let _ = bundle.x509_certs().count();
    if bundle.attestations.iter().all(|s| s.hint.is_none()) {
        let der = bundle.to_der().expect("a decoded bundle encodes");
        let again = AttestationBundle::from_der(&der).expect("an encoded bundle decodes");
        assert_eq!(bundle, again);
        let _ = bundle
            .to_attribute()
            .expect("a decoded bundle makes an attribute");
    }
    let Ok(evidence) = TpmEvidence::from_bundle(&bundle) else {
        return;
    };
    if let Some(c) = &evidence.certify {
        tpm_structures(c.tpms_attest.as_bytes());
        tpm_structures(c.signature.as_bytes());
        if let Some(p) = &c.tpmt_public {
            tpm_structures(p.as_bytes());
            if let Ok(public) = TpmtPublic::decode(p.as_bytes())
                && let Ok(spki) = public.spki_der()
            {
                let signer = SignerKey::from_spki(&spki);
                let _ = attest::appraise_certify(c, &signer, &spki, &[]);
            }
        }
    }
    if let Some(q) = &evidence.quote {
        tpm_structures(q.tpms_attest.as_bytes());
        tpm_structures(q.signature.as_bytes());
    }
});
