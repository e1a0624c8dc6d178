#![cfg(feature = "tpm")]
//! TPM2_Certify and TPM2_Quote by the IAK (SPEC §8.2, §9) against a software TPM (swtpm),
//! appraised by `brski_common::attest` and checked with tpm2-tools (`tpm2_checkquote`,
//! `tpm2_readpublic`).
//!
//! Each test runs its own swtpm. They fail, not skip, when swtpm or tpm2-tools are missing
//! (scripts/install-deps.sh installs them).

use brski_common::attest::{
    self, AttestError, Attested, PcrBank, PcrSelection, PcrSet, SignerKey, TpmtPublic,
};
use brski_common::input;
use brski_common::keys::Signer;
use brski_common::keys::tpm::{
    self, IAK_AUTH_POLICY_SHA256, IAK_HANDLE, IDEVID_HANDLE, LDEVID_HANDLES, TpmCurve, TpmError,
};
use std::process::Command;

mod tpm_support;
use tpm_support::Tpm;

fn iak_signer(key: &tpm::TpmKeyInfo) -> SignerKey {
    let public = TpmtPublic::decode(&key.public).expect("IAK TPMT_PUBLIC");
    SignerKey::with_public(&key.spki, public).expect("IAK SPKI and TPMT_PUBLIC agree")
}

#[test]
fn tcg_devid_iak_is_a_restricted_endorsement_key_tpm2_tools_agree() {
    let tpm = Tpm::start();
    let iak = tpm::create_iak_key(&tpm.config(), IAK_HANDLE).expect("IAK");
    // The fixed template gives the same key again.
    let again = tpm::create_iak_key(&tpm.config(), IAK_HANDLE).expect("IAK again");
    assert_eq!(again, iak);
    assert_eq!(tpm::read_key(&tpm.config(), IAK_HANDLE).expect("read"), iak);

    let pem = tpm.file("iak.pem");
    let text = tpm.tool(
        "tpm2_readpublic",
        &["-c", "0x81020003", "-f", "pem", "-o", &pem],
    );
    let der = input::pem_block(
        &std::fs::read_to_string(&pem).expect("pem"),
        &["PUBLIC KEY"],
    )
    .expect("PUBLIC KEY");
    assert_eq!(der, iak.spki, "SPKI differs from tpm2_readpublic's");
    for a in ["restricted", "sign", "fixedtpm", "adminwithpolicy"] {
        assert!(text.contains(a), "{a} missing: {text}");
    }
    assert!(
        text.contains(&hex::encode(IAK_AUTH_POLICY_SHA256)),
        "{text}"
    );
    let name = tpm.file("iak.name");
    tpm.tool("tpm2_readpublic", &["-c", "0x81020003", "-n", &name]);
    assert_eq!(std::fs::read(&name).expect("name"), iak.name);
    let public = TpmtPublic::decode(&iak.public).expect("TPMT_PUBLIC");
    assert_eq!(public.name(), iak.name);
}

/// The manufacturer's proof (SPEC §8.2): the IAK certifies the IDevID, whose ADMIN role is
/// given by the certify branch of its authPolicy.
#[test]
fn iak_certifies_the_idevid_through_its_policy() {
    let tpm = Tpm::start();
    let config = tpm.config();
    let idevid = tpm::create_idevid_key(&config, IDEVID_HANDLE, TpmCurve::P256).expect("IDevID");
    let iak = tpm::create_iak_key(&config, IAK_HANDLE).expect("IAK");
    let qualifying = [0x5a; 32];
    let statement = tpm::certify(&config, IDEVID_HANDLE, IAK_HANDLE, &qualifying).expect("certify");
    let info = attest::appraise_certify(
        &statement,
        &iak_signer(&iak),
        idevid.public_key_spki(),
        &qualifying,
    )
    .expect("genuine certify is accepted");
    let Attested::Certify { name, .. } = &info.attested else {
        panic!("not a certify info")
    };
    let idevid_info = tpm::read_key(&config, IDEVID_HANDLE).expect("read IDevID");
    assert_eq!(name, &idevid_info.name);

    // The manufacturer's check in one call.
    assert_eq!(
        tpm::prove_same_tpm(&config, IDEVID_HANDLE, IAK_HANDLE).expect("same TPM"),
        iak
    );

    // Other qualifying data, or another key than the certified one, is refused.
    assert!(matches!(
        attest::appraise_certify(
            &statement,
            &iak_signer(&iak),
            idevid.public_key_spki(),
            &[0; 32]
        ),
        Err(AttestError::CertifyQualifyingData)
    ));
    let ldevid = tpm::create_ldevid_key(&config, LDEVID_HANDLES[0]).expect("LDevID");
    assert!(matches!(
        attest::appraise_certify(
            &statement,
            &iak_signer(&iak),
            ldevid.public_key_spki(),
            &qualifying
        ),
        Err(AttestError::CertifiedKeyNotCsrKey)
    ));

    // No session stays behind: each certify flushes its policy session.
    for _ in 0..4 {
        tpm::certify(&config, IDEVID_HANDLE, IAK_HANDLE, &qualifying).expect("certify again");
    }
    let sessions = tpm.handles("handles-loaded-session");
    assert!(sessions.is_empty(), "sessions left loaded: {sessions:x?}");
}

/// The pledge's evidence (SPEC §9): the IAK certifies the LDevID (password ADMIN role).
#[test]
fn iak_certifies_an_ldevid() {
    let tpm = Tpm::start();
    let config = tpm.config();
    let iak = tpm::create_iak_key(&config, IAK_HANDLE).expect("IAK");
    let ldevid = tpm::create_ldevid_key(&config, LDEVID_HANDLES[1]).expect("LDevID");
    let qualifying = b"enrollment-0001";
    let statement =
        tpm::certify(&config, LDEVID_HANDLES[1], IAK_HANDLE, qualifying).expect("certify");
    attest::appraise_certify(
        &statement,
        &iak_signer(&iak),
        ldevid.public_key_spki(),
        qualifying,
    )
    .expect("accepted");
}

/// A key whose authPolicy has no branch this suite satisfies cannot be certified, and the
/// error says why.
#[test]
fn certify_of_a_key_with_a_foreign_policy_is_refused() {
    let tpm = Tpm::start();
    let config = tpm.config();
    tpm::create_iak_key(&config, IAK_HANDLE).expect("IAK");
    // The IAK itself is adminWithPolicy with the TCG IAK policy.
    let err = tpm::certify(&config, IAK_HANDLE, IAK_HANDLE, b"x").expect_err("foreign policy");
    assert!(tpm::prove_same_tpm(&config, IAK_HANDLE, IAK_HANDLE).is_err());
    assert!(
        matches!(&err, TpmError::UnusableKey { handle: IAK_HANDLE, reason, .. } if reason.contains("certify branch")),
        "{err}"
    );
    // An unrestricted signer cannot sign a TPM2_Certify... it can: the TPM allows it, but the
    // verifier refuses such a signer (attest::check_signer_restricted).
    let idevid = tpm::create_idevid_key(&config, IDEVID_HANDLE, TpmCurve::P256).expect("IDevID");
    let ldevid = tpm::create_ldevid_key(&config, LDEVID_HANDLES[0]).expect("LDevID");
    let statement =
        tpm::certify(&config, LDEVID_HANDLES[0], IDEVID_HANDLE, b"q").expect("certify by IDevID");
    let idevid_info = tpm::read_key(&config, IDEVID_HANDLE).expect("read");
    let signer = SignerKey::with_public(
        idevid.public_key_spki(),
        TpmtPublic::decode(&idevid_info.public).expect("public"),
    )
    .expect("signer");
    assert!(matches!(
        attest::appraise_certify(&statement, &signer, ldevid.public_key_spki(), b"q"),
        Err(AttestError::SignerNotRestricted(_))
    ));
    // And the manufacturer's check refuses an unrestricted "IAK".
    let err =
        tpm::prove_same_tpm(&config, LDEVID_HANDLES[0], IDEVID_HANDLE).expect_err("not an IAK");
    assert!(
        matches!(&err, TpmError::UnusableKey { reason, .. } if reason.contains("not a restricted signing key")),
        "{err}"
    );
}

/// TPM2_Quote by the IAK, appraised against reference values and checked by tpm2_checkquote
/// (tpm2-tools) with the PCR values tpm2_pcrread reads.
#[test]
fn quote_by_the_iak_is_appraised_and_tpm2_checkquote_agrees() {
    let tpm = Tpm::start();
    let config = tpm.config();
    let iak = tpm::create_iak_key(&config, IAK_HANDLE).expect("IAK");
    tpm.tool(
        "tpm2_pcrextend",
        &["16:sha256=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"],
    );
    let qualifying = [0x11u8; 32];
    let pcrs = [16u16, 0, 7, 1, 2, 3, 4, 5, 6, 8, 9];
    let statement = tpm::quote(&config, IAK_HANDLE, &qualifying, &pcrs).expect("quote");
    let values: Vec<Vec<u8>> = statement
        .pcr_values
        .as_ref()
        .expect("values")
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
    assert_eq!(values.len(), 11);
    let mut sorted = pcrs.to_vec();
    sorted.sort_unstable();
    let selection = PcrSelection(vec![PcrBank {
        hash: attest::HashAlg::Sha256,
        pcrs: sorted,
    }]);
    // PCR 16 (the last) holds SHA-256(0…0 ‖ the extended digest).
    let extended = hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
        .expect("hex");
    assert_eq!(
        values[10],
        attest::HashAlg::Sha256.digest(&[vec![0; 32], extended].concat())
    );
    let reference = PcrSet::new(selection.clone(), values.clone()).expect("set");
    let other = PcrSet::new(selection, vec![vec![0; 32]; 11]).expect("set");
    assert_eq!(
        attest::appraise_quote(
            &statement,
            &iak_signer(&iak),
            &qualifying,
            &[other.clone(), reference]
        ),
        Ok(1)
    );
    assert_eq!(
        attest::appraise_quote(&statement, &iak_signer(&iak), &qualifying, &[other]),
        Err(AttestError::PcrDigestNotAccepted)
    );

    // tpm2_checkquote: signature by the IAK's public key, qualifying data, and the PCR digest
    // of the values tpm2_pcrread reads (tpm2-tools 5.4 reads at most 8 PCRs into its file, so
    // this quote covers fewer).
    let pcr_list = "sha256:0,1,7,16";
    let statement = tpm::quote(&config, IAK_HANDLE, &qualifying, &[0, 1, 7, 16]).expect("quote");
    let write = |name: &str, bytes: &[u8]| {
        let path = tpm.file(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let pem = write("iak.pem", input::to_pem("PUBLIC KEY", &iak.spki).as_bytes());
    let msg = write("quote.attest", statement.tpms_attest.as_bytes());
    let sig = write("quote.sig", statement.signature.as_bytes());
    let pcr_file = tpm.file("quote.pcrs");
    tpm.tool("tpm2_pcrread", &[pcr_list, "-o", &pcr_file]);
    let q = hex::encode(qualifying);
    let ok = Command::new("tpm2_checkquote")
        .args([
            "-u", &pem, "-m", &msg, "-s", &sig, "-f", &pcr_file, "-l", pcr_list, "-g", "sha256",
            "-q", &q,
        ])
        .output()
        .expect("tpm2_checkquote");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // And it refuses other qualifying data.
    let bad = Command::new("tpm2_checkquote")
        .args([
            "-u", &pem, "-m", &msg, "-s", &sig, "-f", &pcr_file, "-l", pcr_list, "-g", "sha256",
            "-q", "00",
        ])
        .output()
        .expect("tpm2_checkquote");
    assert!(!bad.status.success());
}

#[test]
fn quote_of_a_pcr_beyond_the_bank_is_an_error() {
    let tpm = Tpm::start();
    let config = tpm.config();
    tpm::create_iak_key(&config, IAK_HANDLE).expect("IAK");
    let err = tpm::quote(&config, IAK_HANDLE, b"q", &[40]).expect_err("PCR 40");
    assert!(
        matches!(err, TpmError::Unsupported { ref what, .. } if what.contains("PCR 40")),
        "{err}"
    );
}

/// extend_pcr does what tpm2_pcrread then shows: SHA-256(old ‖ digest).
#[test]
fn extend_pcr_is_what_tpm2_pcrread_reads() {
    let tpm = Tpm::start();
    tpm::extend_pcr(&tpm.config(), 23, &[7; 32]).expect("extend");
    let out = tpm.file("pcr23");
    tpm.tool("tpm2_pcrread", &["sha256:23", "-o", &out]);
    let expected = attest::HashAlg::Sha256.digest(&[[0u8; 32], [7u8; 32]].concat());
    assert_eq!(std::fs::read(&out).expect("read"), expected);
    assert!(matches!(
        tpm::extend_pcr(&tpm.config(), 99, &[0; 32]),
        Err(TpmError::Unsupported { .. })
    ));
}
