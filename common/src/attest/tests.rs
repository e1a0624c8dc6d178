//! Appraisal of real evidence from swtpm (`vectors/tpm-attest/`, made by
//! `scripts/make-attest-vectors.sh`), and the CSR-attestation draft's sample CSR.

use super::*;
use crate::est::RawOid;
use crate::oid::{TCG_ATTEST_TPM_CERTIFY, TPM_QUOTE_STATEMENT};
use crate::test_vectors::bytes;
use der::Decode;
use der::asn1::OctetString;

fn v(name: &str) -> Vec<u8> {
    bytes(&format!("tpm-attest/{name}"))
}

fn public(key: &str) -> TpmtPublic {
    TpmtPublic::decode(&v(&format!("{key}.tpmt_public.hex"))).expect("TPMT_PUBLIC")
}

fn spki(key: &str) -> Vec<u8> {
    let pem = crate::test_vectors::read(&format!("tpm-attest/{key}.spki.pem"));
    let text = String::from_utf8(pem).expect("utf-8");
    crate::input::pem_block(&text, &["PUBLIC KEY"]).expect("PUBLIC KEY")
}

fn qualifying() -> Vec<u8> {
    v("qualifying-data.hex")
}

fn octets(b: Vec<u8>) -> OctetString {
    OctetString::new(b).expect("octet string")
}

fn certify(name: &str, certified: &str) -> TpmCertifyStatement {
    TpmCertifyStatement {
        tpms_attest: octets(v(&format!("{name}.attest.hex"))),
        signature: octets(v(&format!("{name}.sig.hex"))),
        tpmt_public: Some(octets(v(&format!("{certified}.tpmt_public.hex")))),
    }
}

fn quote() -> TpmQuoteStatement {
    TpmQuoteStatement {
        tpms_attest: octets(v("quote.attest.hex")),
        signature: octets(v("quote.sig.hex")),
        pcr_values: Some(pcr_values().into_iter().map(octets).collect()),
    }
}

fn pcr_values() -> Vec<Vec<u8>> {
    v("quote.pcrs.hex").chunks(32).map(<[u8]>::to_vec).collect()
}

fn iak(key: &str) -> SignerKey {
    SignerKey::with_public(&spki(key), public(key)).expect("IAK public matches its SPKI")
}

/// Appraise certify statement `name` (certified public area of `certified`) by IAK `signer`
/// for a CSR with the key of `csr`, with the vectors' qualifying data.
fn appraise(
    name: &str,
    certified: &str,
    signer: &SignerKey,
    csr: &str,
) -> Result<TpmsAttest, AttestError> {
    appraise_certify(&certify(name, certified), signer, &spki(csr), &qualifying())
}

/// `bytes` with its last octet changed.
fn tampered(bytes: &OctetString) -> OctetString {
    let mut b = bytes.as_bytes().to_vec();
    if let Some(last) = b.last_mut() {
        *last ^= 1;
    }
    octets(b)
}

fn quote_selection() -> PcrSelection {
    PcrSelection(vec![PcrBank {
        hash: HashAlg::Sha256,
        pcrs: vec![0, 1, 2, 16],
    }])
}

fn reference(values: Vec<Vec<u8>>) -> PcrSet {
    PcrSet::new(quote_selection(), values).expect("reference set")
}

#[test]
fn tpmt_public_spki_and_name_agree_with_tpm2_tools() {
    for key in ["iak-ecc", "iak-rsa", "ldevid", "other", "soft"] {
        let p = public(key);
        assert_eq!(p.spki_der().expect("spki"), spki(key), "{key} SPKI");
        assert_eq!(p.name(), v(&format!("{key}.name.hex")), "{key} Name");
    }
    let iak = public("iak-ecc");
    assert!(iak.has(tpm::attr::RESTRICTED | tpm::attr::SIGN_ENCRYPT | tpm::attr::FIXED_TPM));
    assert!(!public("ldevid").has(tpm::attr::RESTRICTED));
    assert!(matches!(
        public("iak-rsa").key,
        PublicKey::Rsa { key_bits: 2048, .. }
    ));
}

#[test]
fn tpms_attest_fields_of_a_certify_and_a_quote() {
    let info = TpmsAttest::decode(&v("certify-ecc.attest.hex")).expect("certify");
    assert_eq!(info.attest_type, tpm::TPM_ST_ATTEST_CERTIFY);
    assert_eq!(info.extra_data, qualifying());
    let Attested::Certify {
        name,
        qualified_name,
    } = &info.attested
    else {
        panic!("not a certify: {info:?}");
    };
    assert_eq!(*name, v("ldevid.name.hex"));
    // The Qualified Name hashes the parent's into the child's: same length, other value.
    assert_eq!(qualified_name.len(), name.len());
    assert_ne!(qualified_name, name);
    let q = TpmsAttest::decode(&v("quote.attest.hex")).expect("quote");
    let Attested::Quote {
        pcr_select,
        pcr_digest,
    } = &q.attested
    else {
        panic!("not a quote: {q:?}");
    };
    assert_eq!(*pcr_select, quote_selection());
    assert_eq!(*pcr_digest, HashAlg::Sha256.digest(&v("quote.pcrs.hex")));
    assert_eq!(
        TpmtSignature::decode(&v("certify-rsa.sig.hex"))
            .expect("sig")
            .hash(),
        HashAlg::Sha256
    );
}

#[test]
fn genuine_certify_by_ecc_and_rsa_iak_is_accepted() {
    for (name, key) in [("certify-ecc", "iak-ecc"), ("certify-rsa", "iak-rsa")] {
        let info = appraise_certify(
            &certify(name, "ldevid"),
            &iak(key),
            &spki("ldevid"),
            &qualifying(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.extra_data, qualifying());
    }
    // With only the IAK certificate's SPKI (no TPMT_PUBLIC) the restricted check is skipped.
    appraise(
        "certify-ecc",
        "ldevid",
        &SignerKey::from_spki(&spki("iak-ecc")),
        "ldevid",
    )
    .expect("accepted");
}

#[test]
fn tampered_certify_info_fails_the_signature() {
    let mut stmt = certify("certify-ecc", "ldevid");
    stmt.tpms_attest = tampered(&stmt.tpms_attest);
    let err = appraise_certify(&stmt, &iak("iak-ecc"), &spki("ldevid"), &qualifying());
    assert_eq!(err, Err(AttestError::CertifySignature));
}

#[test]
fn certify_signed_by_another_key_fails_the_signature() {
    // The ECC IAK's certify info checked against the RSA IAK is refused: key of another type.
    let err = appraise("certify-ecc", "ldevid", &iak("iak-rsa"), "ldevid");
    assert!(
        matches!(err, Err(AttestError::UnsupportedSignature(_))),
        "{err:?}"
    );
    // Signed by `other` (same curve), checked against the IAK.
    let err = appraise("certify-by-other", "ldevid", &iak("iak-ecc"), "ldevid");
    assert_eq!(err, Err(AttestError::CertifySignature));
}

#[test]
fn certify_by_a_non_restricted_key_is_refused() {
    let signer = SignerKey::with_public(&spki("other"), public("other")).expect("signer");
    let err = appraise("certify-by-other", "ldevid", &signer, "ldevid");
    assert_eq!(
        err,
        Err(AttestError::SignerNotRestricted("restricted".into()))
    );
}

#[test]
fn iak_public_of_another_key_is_refused() {
    let err = SignerKey::with_public(&spki("iak-ecc"), public("other"));
    assert_eq!(err, Err(AttestError::SignerPublicMismatch));
}

#[test]
fn evidence_for_another_key_is_refused() {
    // The CSR's key is `other`, the certified public area `ldevid`'s.
    let err = appraise("certify-ecc", "ldevid", &iak("iak-ecc"), "other");
    assert_eq!(err, Err(AttestError::CertifiedKeyNotCsrKey));
    // The CSR's key and the public area are `other`'s, the certified Name `ldevid`'s.
    let err = appraise("certify-ecc", "other", &iak("iak-ecc"), "other");
    assert_eq!(err, Err(AttestError::CertifiedNameMismatch));
}

#[test]
fn certified_key_not_made_in_the_tpm_is_refused() {
    let err = appraise("certify-soft", "soft", &iak("iak-ecc"), "soft");
    assert_eq!(
        err,
        Err(AttestError::CertifiedKeyAttributes(
            "fixedTPM, fixedParent, sensitiveDataOrigin".into()
        ))
    );
}

#[test]
fn wrong_qualifying_data_is_refused() {
    let mut stale = qualifying();
    stale[0] ^= 0xff;
    let err = appraise_certify(
        &certify("certify-ecc", "ldevid"),
        &iak("iak-ecc"),
        &spki("ldevid"),
        &stale,
    );
    assert_eq!(err, Err(AttestError::CertifyQualifyingData));
    let err = appraise_quote(
        &quote(),
        &iak("iak-ecc"),
        &stale,
        &[reference(pcr_values())],
    );
    assert_eq!(err, Err(AttestError::QuoteQualifyingData));
}

#[test]
fn certify_without_public_area_is_refused() {
    let mut stmt = certify("certify-ecc", "ldevid");
    stmt.tpmt_public = None;
    let err = appraise_certify(&stmt, &iak("iak-ecc"), &spki("ldevid"), &qualifying());
    assert_eq!(err, Err(AttestError::MissingCertifiedPublic));
}

#[test]
fn a_quote_is_not_a_certify_and_back() {
    let err = verify_certify(&v("quote.attest.hex"), &v("quote.sig.hex"), &iak("iak-ecc"));
    assert_eq!(
        err,
        Err(AttestError::WrongAttestType {
            part: "certify info",
            expected: tpm::TPM_ST_ATTEST_CERTIFY,
            found: tpm::TPM_ST_ATTEST_QUOTE,
        })
    );
    let err = verify_quote(
        &v("certify-ecc.attest.hex"),
        &v("certify-ecc.sig.hex"),
        &iak("iak-ecc"),
    );
    assert!(
        matches!(err, Err(AttestError::WrongAttestType { .. })),
        "{err:?}"
    );
}

#[test]
fn genuine_quote_matches_the_second_accepted_set() {
    let mut other = pcr_values();
    other[0] = vec![0x11; 32];
    let accepted = [reference(other), reference(pcr_values())];
    assert_eq!(
        appraise_quote(&quote(), &iak("iak-ecc"), &qualifying(), &accepted),
        Ok(1)
    );
    // Without reported values the digest alone decides.
    let mut bare = quote();
    bare.pcr_values = None;
    assert_eq!(
        appraise_quote(&bare, &iak("iak-ecc"), &qualifying(), &accepted),
        Ok(1)
    );
}

#[test]
fn pcr_values_not_in_the_accepted_sets_are_refused() {
    let mut changed = pcr_values();
    changed[3][0] ^= 1;
    let err = appraise_quote(
        &quote(),
        &iak("iak-ecc"),
        &qualifying(),
        &[reference(changed)],
    );
    assert_eq!(err, Err(AttestError::PcrDigestNotAccepted));
    // A policy over other PCRs.
    let fewer = PcrSelection(vec![PcrBank {
        hash: HashAlg::Sha256,
        pcrs: vec![0, 1, 2],
    }]);
    let set = PcrSet::new(fewer, pcr_values()[..3].to_vec()).expect("set");
    let err = appraise_quote(&quote(), &iak("iak-ecc"), &qualifying(), &[set]);
    assert_eq!(err, Err(AttestError::PcrSelectionNotAccepted));
    // No accepted set at all.
    let err = appraise_quote(&quote(), &iak("iak-ecc"), &qualifying(), &[]);
    assert_eq!(err, Err(AttestError::PcrSelectionNotAccepted));
}

#[test]
fn reported_pcr_values_that_do_not_match_the_quote_are_refused() {
    let mut stmt = quote();
    let mut values = pcr_values();
    values[0][0] ^= 1;
    stmt.pcr_values = Some(values.into_iter().map(octets).collect());
    let err = appraise_quote(
        &stmt,
        &iak("iak-ecc"),
        &qualifying(),
        &[reference(pcr_values())],
    );
    assert_eq!(err, Err(AttestError::PcrValuesMismatch));
}

#[test]
fn tampered_quote_fails_the_signature() {
    let mut stmt = quote();
    stmt.tpms_attest = tampered(&stmt.tpms_attest);
    let err = appraise_quote(
        &stmt,
        &iak("iak-ecc"),
        &qualifying(),
        &[reference(pcr_values())],
    );
    assert_eq!(err, Err(AttestError::QuoteSignature));
}

#[test]
fn pcr_reference_sets_are_checked() {
    assert!(matches!(
        PcrSet::new(quote_selection(), pcr_values()[..3].to_vec()),
        Err(AttestError::InvalidPcrSet(_))
    ));
    let mut short = pcr_values();
    short[1].pop();
    assert!(matches!(
        PcrSet::new(quote_selection(), short),
        Err(AttestError::InvalidPcrSet(_))
    ));
}

#[test]
fn bundle_round_trips_and_yields_the_evidence() {
    let evidence = TpmEvidence {
        certify: Some(certify("certify-ecc", "ldevid")),
        quote: Some(quote()),
    };
    let bundle = evidence.to_bundle(Vec::new()).expect("bundle");
    let der = bundle.to_der().expect("der");
    let back = AttestationBundle::from_der(&der).expect("decodes");
    assert_eq!(back, bundle);
    assert_eq!(back.attestations.len(), 2);
    assert_eq!(
        back.attestations[0].stmt_type,
        RawOid::from(TCG_ATTEST_TPM_CERTIFY)
    );
    assert_eq!(back.attestations[1].stmt_type, quote_statement_oid());
    assert_eq!(TpmEvidence::from_bundle(&back), Ok(evidence));
}

#[test]
fn a_second_statement_of_one_kind_is_refused() {
    let evidence = TpmEvidence {
        certify: Some(certify("certify-ecc", "ldevid")),
        quote: Some(quote()),
    };
    for (index, kind) in [(0, "certify"), (1, "quote")] {
        let mut bundle = evidence.to_bundle(Vec::new()).expect("bundle");
        let copy = bundle.attestations[index].clone();
        bundle.attestations.push(copy);
        let back = AttestationBundle::from_der(&bundle.to_der().expect("der")).expect("decodes");
        assert_eq!(
            TpmEvidence::from_bundle(&back),
            Err(AttestError::DuplicateStatement(kind))
        );
    }
}

#[test]
fn quote_statement_oid_is_under_the_uuid_arc() {
    let oid = quote_statement_oid();
    assert_eq!(oid.as_bytes(), TPM_QUOTE_STATEMENT);
    assert_eq!(
        oid.to_string(),
        format!("{}.1", crate::oid::BRSKI_SUITE_ARC)
    );
}

#[test]
fn bundle_in_a_csr_attribute_round_trips() {
    use crate::keys::{SignatureAlgorithm, SoftwareKey};
    use crate::pki::csr::{CsrParams, build_csr, parse_csr};
    let bundle = TpmEvidence {
        certify: Some(certify("certify-ecc", "ldevid")),
        quote: None,
    }
    .to_bundle(Vec::new())
    .expect("bundle");
    let key = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    let params = CsrParams {
        attributes: vec![bundle.to_attribute().expect("attribute")],
        ..CsrParams::default()
    };
    let subject = "CN=pledge".parse().expect("name");
    let der = build_csr(&subject, &key, &params).expect("csr");
    let req = parse_csr(&der).expect("parses");
    assert_eq!(AttestationBundle::from_csr(&req), Ok(Some(bundle)));
}

#[test]
fn two_attestation_attributes_or_two_values_are_refused() {
    use crate::keys::{SignatureAlgorithm, SoftwareKey};
    use crate::pki::csr::{CsrParams, build_csr, parse_csr};
    let bundle = TpmEvidence {
        certify: Some(certify("certify-ecc", "ldevid")),
        quote: Some(quote()),
    }
    .to_bundle(Vec::new())
    .expect("bundle");
    let attribute = bundle.to_attribute().expect("attribute");
    let key = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    let subject = "CN=pledge".parse().expect("name");
    let csr = |attributes| {
        let params = CsrParams {
            attributes,
            ..CsrParams::default()
        };
        parse_csr(&build_csr(&subject, &key, &params).expect("csr")).expect("parses")
    };
    let other = TpmEvidence {
        certify: Some(certify("certify-rsa", "ldevid")),
        quote: None,
    }
    .to_bundle(Vec::new())
    .expect("bundle")
    .to_attribute()
    .expect("attribute");
    // build_csr refuses a second attribute of one type, so add it to the parsed request.
    let mut twice = csr(vec![attribute.clone()]);
    twice
        .info
        .attributes
        .insert(other.clone())
        .expect("a second attribute");
    assert_eq!(
        AttestationBundle::from_csr(&twice),
        Err(BundleError::DuplicateAttribute)
    );
    let mut two_values = attribute;
    for value in other.values.iter() {
        two_values
            .values
            .insert(value.clone())
            .expect("a second value");
    }
    assert_eq!(
        AttestationBundle::from_csr(&csr(vec![two_values])),
        Err(BundleError::AttributeValues(2))
    );
    assert_eq!(AttestationBundle::from_csr(&csr(Vec::new())), Ok(None));
}

#[test]
fn draft_sample_csr_attribute_is_read() {
    let der = crate::test_vectors::bytes("csr-attestation/sample-tcgAttestTpmCertify.csr.pem");
    let req = crate::pki::csr::parse_csr(&der).expect("parses");
    let bundle = AttestationBundle::from_csr(&req)
        .expect("bundle")
        .expect("id-aa-attestation present");
    assert_eq!(bundle.attestations.len(), 1);
    let stmt = &bundle.attestations[0];
    assert_eq!(stmt.stmt_type, RawOid::from(TCG_ATTEST_TPM_CERTIFY));
    assert_eq!(stmt.hint.as_deref(), Some("tpmverifier.example.com"));
    assert!(bundle.x509_certs().count() > 0);
    let evidence = TpmEvidence::from_bundle(&bundle).expect("evidence");
    let certify = evidence.certify.expect("certify statement");
    assert_eq!(certify.tpms_attest.as_bytes().len(), 145);
    assert_eq!(certify.signature.as_bytes().len(), 256);
    let info = TpmsAttest::decode(certify.tpms_attest.as_bytes()).expect("TPMS_ATTEST");
    assert_eq!(info.attest_type, tpm::TPM_ST_ATTEST_CERTIFY);
    TpmtSignature::decode(certify.signature.as_bytes())
        .expect_err("256 bytes without a TPMT header: the sample carries a raw RSA signature");
    let public = TpmtPublic::decode(certify.tpmt_public.expect("tpmTPublic").as_bytes())
        .expect("TPMT_PUBLIC");
    // The sample's certified key is the CSR's key, and the certify info names it.
    assert_eq!(
        public.spki_der().expect("spki"),
        crate::pki::csr::spki_der(&req).expect("csr spki")
    );
    assert!(matches!(&info.attested, Attested::Certify { name, .. } if *name == public.name()));
    // The -28 encoder refuses the old hint.
    assert_eq!(bundle.to_der(), Err(BundleError::HintNotInDraft28));
}

#[test]
fn truncated_or_padded_tpm_structures_are_errors() {
    type Decoder = fn(&[u8]) -> Result<(), TpmError>;
    let decoders: [(&str, Decoder); 5] = [
        ("certify-ecc.attest.hex", |b| {
            TpmsAttest::decode(b).map(drop)
        }),
        ("quote.attest.hex", |b| TpmsAttest::decode(b).map(drop)),
        ("certify-ecc.sig.hex", |b| {
            TpmtSignature::decode(b).map(drop)
        }),
        ("certify-rsa.sig.hex", |b| {
            TpmtSignature::decode(b).map(drop)
        }),
        ("iak-rsa.tpmt_public.hex", |b| {
            TpmtPublic::decode(b).map(drop)
        }),
    ];
    for (file, decode) in decoders {
        let full = v(file);
        decode(&full).unwrap_or_else(|e| panic!("{file}: {e}"));
        for len in 0..full.len() {
            assert!(decode(&full[..len]).is_err(), "{file} cut to {len}");
        }
        let mut padded = full.clone();
        padded.push(0);
        assert!(
            matches!(decode(&padded), Err(TpmError::Trailing { count: 1, .. })),
            "{file} padded"
        );
    }
    let mut bad_magic = v("certify-ecc.attest.hex");
    bad_magic[0] = 0;
    assert_eq!(
        TpmsAttest::decode(&bad_magic),
        Err(TpmError::NotTpmGenerated(0x0054_4347))
    );
}

#[test]
fn malformed_bundles_are_errors() {
    assert!(matches!(
        AttestationBundle::from_der(&[0x30, 0x02, 0x30, 0x00]),
        Err(BundleError::Empty)
    ));
    assert!(AttestationBundle::from_der(&[0x30, 0x03, 0x30, 0x00]).is_err());
    assert!(AttestationBundle::from_der(&[]).is_err());
    // A statement whose type is not an OID.
    let not_oid = [
        0x30, 0x09, 0x30, 0x07, 0x30, 0x05, 0x02, 0x01, 0x01, 0x05, 0x00,
    ];
    assert!(matches!(
        AttestationBundle::from_der(&not_oid),
        Err(BundleError::Malformed(_))
    ));
    // A statement with a hint decodes; with a fourth field after the hint it does not.
    let hint = [
        0x30, 0x0c, 0x30, 0x0a, 0x30, 0x08, 0x06, 0x01, 0x2a, 0x05, 0x00, 0x16, 0x01, 0x68,
    ];
    let read = AttestationBundle::from_der(&hint).expect("hint shape");
    assert_eq!(read.attestations[0].hint.as_deref(), Some("h"));
    let four = [
        0x30, 0x0f, 0x30, 0x0d, 0x30, 0x0b, 0x06, 0x01, 0x2a, 0x05, 0x00, 0x16, 0x01, 0x68, 0x02,
        0x01, 0x01,
    ];
    assert!(matches!(
        AttestationBundle::from_der(&four),
        Err(BundleError::Malformed(_))
    ));
    // certs may hold certificates and other formats ([3]), not attribute certificates ([2]).
    let other_cert = [
        0x30, 0x0d, 0x30, 0x07, 0x30, 0x05, 0x06, 0x01, 0x2a, 0x05, 0x00, 0x30, 0x02, 0xa3, 0x00,
    ];
    let read = AttestationBundle::from_der(&other_cert).expect("other certificate format");
    assert!(matches!(read.certs.as_slice(), [BundleCert::Other(_)]));
    let mut attr_cert = other_cert;
    attr_cert[13] = 0xa2;
    assert!(matches!(
        AttestationBundle::from_der(&attr_cert),
        Err(BundleError::Malformed(_))
    ));
    // A certify statement that is not the TCG SEQUENCE.
    let bundle = AttestationBundle {
        attestations: vec![AttestationStatement {
            stmt_type: RawOid::from(TCG_ATTEST_TPM_CERTIFY),
            stmt: der::Any::from_der(&[0x05, 0x00]).expect("NULL"),
            hint: None,
        }],
        certs: Vec::new(),
    };
    assert!(matches!(
        TpmEvidence::from_bundle(&bundle),
        Err(AttestError::Bundle(BundleError::MalformedStatement { .. }))
    ));
}
