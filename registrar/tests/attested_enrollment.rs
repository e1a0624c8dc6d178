#![cfg(feature = "tpm")]
//! Attested enrollment (SPEC §9) with the real `registrar` binary under
//! `attestation = "require"`: evidence from a software TPM (swtpm) that the CSR's key is in the
//! device's TPM and that the device booted into a state of the PCR reference file is accepted,
//! whether made by this suite or by hand with tpm2-tools; each way to cheat is refused with
//! the status and the check it failed, nothing is issued, and the refusal is recorded.
//!
//! Needs swtpm and tpm2-tools (`scripts/install-deps.sh`).

mod support;

use brski_common::attest::enroll::qualifying_data;
use brski_common::attest::{
    AttestationBundle, BundleCert, TpmCertifyStatement, TpmEvidence, TpmQuoteStatement,
};
use brski_common::brski::paths;
use brski_common::keys::tpm::swtpm::Swtpm;
use brski_common::keys::tpm::{self, IAK_HANDLE, LDEVID_HANDLES, TpmCurve, TpmSigner};
use brski_common::keys::{SignatureAlgorithm, Signer};
use brski_common::oid::{
    TCG_CAP_VERIFIED_TPM_FIXED, TCG_CAP_VERIFIED_TPM_RESIDENCY, TCG_TPM2_HW_TYPE,
};
use brski_common::pki::csr::{CsrParams, build_csr};
use brski_common::pki::ext::certificate_policies;
use brski_common::pki::{issue, profile};
use brski_service::https_client::Connection;
use der::asn1::{OctetString, SetOfVec};
use der::{Decode, Encode};
use std::path::Path;
use support::*;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

/// What the device's firmware measured into PCR 0 at boot.
const FIRMWARE: &[u8] = b"firmware 2.1";
const PCRS: [u16; 2] = [0, 7];

fn sha256(data: &[u8]) -> Vec<u8> {
    brski_common::attest::HashAlg::Sha256.digest(data)
}

/// A device: a software TPM that booted `FIRMWARE`, holding the IAK and LDevID keys, and an
/// IDevID (software key: the registrar checks the IAK against the IDevID's names) with the TPM
/// HardwareModuleName; and a registrar requiring evidence, whose PCR reference file accepts
/// that boot.
struct Lab {
    s: Setup,
    sim: Swtpm,
    _dir: tempfile::TempDir,
    serial: String,
    pledge: Pledge,
    iak_cert: Certificate,
}

impl Lab {
    async fn new(serial: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = Swtpm::start(dir.path().join("tpm")).expect("swtpm (apt-get install swtpm)");
        let firmware: [u8; 32] = sha256(FIRMWARE).try_into().expect("32");
        tpm::extend_pcr(&sim.config(), 0, &firmware).expect("measured boot");
        let pcr0 = sha256(&[[0u8; 32].as_slice(), &firmware].concat());
        let reference = dir.path().join("pcrs.toml");
        std::fs::write(
            &reference,
            format!(
                "pcrs = [0, 7]\n[[set]]\nname = \"fw-2.0\"\nvalues = [\"{}\", \"{}\"]\n\
                 [[set]]\nname = \"fw-2.1\"\nvalues = [\"{}\", \"{}\"]\n",
                hex::encode([1u8; 32]),
                hex::encode([0u8; 32]),
                hex::encode(&pcr0),
                hex::encode([0u8; 32]),
            ),
        )
        .expect("write");
        let reference_line = format!("pcr-reference = {:?}", reference.display().to_string());
        let s = setup_with(MasaMode::Issue, &[], move |t| {
            t.replace("# attestation = \"require\"", "attestation = \"require\"")
                .replace(
                    "# pcr-reference = \"manufacturers/pcr-reference.toml\"",
                    &reference_line,
                )
        })
        .await;
        let hmn = (TCG_TPM2_HW_TYPE, serial.as_bytes());
        let idevid = issued(
            &profile::idevid(serial, Some(&s.masa.url()), Some(hmn)).expect("params"),
            &s.vendor.ca,
        );
        let iak = tpm::create_iak_key(&sim.config(), IAK_HANDLE).expect("IAK");
        let iak_cert = iak_certificate(&s.vendor.ca, serial, &iak.spki, true);
        let pledge = Pledge::new(serial, idevid);
        pledge.obtain_voucher(&s.reg, &s.vendor).await;
        Self {
            s,
            sim,
            _dir: dir,
            serial: serial.to_string(),
            pledge,
            iak_cert,
        }
    }

    fn config(&self) -> tpm::TpmConfig {
        self.sim.config()
    }

    /// A fresh LDevID key in the TPM at `slot`.
    fn ldevid(&self, slot: usize) -> TpmSigner {
        tpm::create_ldevid_key(&self.config(), LDEVID_HANDLES[slot]).expect("LDevID key")
    }

    /// An EST connection of the pledge (its IDevID).
    async fn connect(&self) -> Connection {
        est_connection(
            &self.s,
            &[self.pledge.idevid.der()],
            self.pledge.idevid.key.clone(),
        )
        .await
    }

    /// The suite's evidence for the key at `key_slot`, over the qualifying data of `binding`.
    fn evidence(&self, key_slot: usize, binding: &[u8]) -> TpmEvidence {
        let q = qualifying_data(binding);
        TpmEvidence {
            certify: Some(
                tpm::certify(&self.config(), LDEVID_HANDLES[key_slot], IAK_HANDLE, &q)
                    .expect("certify"),
            ),
            quote: Some(tpm::quote(&self.config(), IAK_HANDLE, &q, &PCRS).expect("quote")),
        }
    }

    /// The CSR of `key` with the IDevID subject and `attributes`.
    fn csr(&self, key: &dyn Signer, attributes: Vec<Attribute>) -> Vec<u8> {
        let subject = self.pledge.idevid.cert.tbs_certificate().subject().clone();
        build_csr(
            &subject,
            key,
            &CsrParams {
                attributes,
                ..CsrParams::default()
            },
        )
        .expect("csr")
    }

    async fn enroll(&self, conn: &mut Connection, csr: &[u8]) -> (u16, String) {
        let (status, body) = post_csr(conn, paths::SIMPLE_ENROLL, csr).await;
        (status, String::from_utf8_lossy(&body).trim().to_string())
    }

    /// The pledge's row in `registrar pledges list --json`.
    async fn row(&self) -> serde_json::Value {
        self.s.reg.pledge(&self.serial).await.expect("listed")
    }

    /// The CSR was refused with `status` for `check`: nothing issued, the refusal stored.
    async fn assert_refused(&self, answer: (u16, String), status: u16, check: &str) {
        assert_eq!(answer.0, status, "{}", answer.1);
        assert!(
            answer
                .1
                .contains(&format!("attestation refused, check {check}: ")),
            "{}",
            answer.1
        );
        let row = self.row().await;
        assert_eq!(row["certificates"], 0, "{row}");
        assert_eq!(row["attestation"]["accepted"], false, "{row}");
        assert_eq!(row["attestation"]["failed_check"], check, "{row}");
        assert_eq!(row["attestation"]["mode"], "require", "{row}");
        assert!(row["attestation"]["cert_serial"].is_null(), "{row}");
    }
}

/// An IAK certificate for `spki` naming the device `serial`, by `issuer`; with the
/// tcg-cap-verifiedTPMRestricted policy when `restricted`.
fn iak_certificate(issuer: &Party, serial: &str, spki: &[u8], restricted: bool) -> Certificate {
    let hmn = (TCG_TPM2_HW_TYPE, serial.as_bytes());
    let params = if restricted {
        profile::iak(serial, hmn).expect("params")
    } else {
        profile::idevid(serial, None, Some(hmn)).expect("params")
    };
    issue(&params, spki, Some(&issuer.cert), &*issuer.key).expect("issue")
}

fn attribute(evidence: &TpmEvidence, iak_cert: &Certificate) -> Attribute {
    evidence
        .to_bundle(vec![BundleCert::X509(Box::new(iak_cert.clone()))])
        .and_then(|b| b.to_attribute())
        .expect("attribute")
}

/// A CSR whose attributes are `attributes` as given (two of one type included), signed by
/// `key`: what `build_csr` refuses to make.
fn raw_csr(subject: &Name, key: &dyn Signer, attributes: Vec<Attribute>) -> Vec<u8> {
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key: x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(key.public_key_spki())
            .expect("spki"),
        attributes: SetOfVec::try_from(attributes).expect("set"),
    };
    let signature = key.sign(&info.to_der().expect("der")).expect("sign");
    CertReq {
        info,
        algorithm: key.algorithm().algorithm_identifier(),
        signature: der::asn1::BitString::from_bytes(&signature).expect("bits"),
    }
    .to_der()
    .expect("der")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attested_enrollment_is_accepted_recorded_and_shown() {
    let lab = Lab::new("ATT-OK").await;
    // First a CSR without evidence, refused.
    let software = brski_common::keys::SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256)
        .expect("key");
    let mut first = lab.connect().await;
    let refused = lab.csr(&software, vec![]);
    assert_eq!(lab.enroll(&mut first, &refused).await.0, 400);

    let key = lab.ldevid(0);
    let mut conn = lab.connect().await;
    let binding = conn.channel_binding().expect("binding").to_vec();
    let evidence = lab.evidence(0, &binding);
    let csr = lab.csr(&key, vec![attribute(&evidence, &lab.iak_cert)]);
    let (status, body) = lab.enroll(&mut conn, &csr).await;
    assert_eq!(status, 200, "{body}");
    let ldevid = single_cert(body.as_bytes());
    // The evidence proved the key TPM-resident: the LDevID says so (TCG policies).
    assert_eq!(
        certificate_policies(&ldevid).expect("policies"),
        vec![TCG_CAP_VERIFIED_TPM_RESIDENCY, TCG_CAP_VERIFIED_TPM_FIXED]
    );
    let row = lab.row().await;
    let a = &row["attestation"];
    assert_eq!(a["accepted"], true, "{row}");
    assert_eq!(a["pcr_set"], "fw-2.1", "{row}");
    assert_eq!(
        a["passed"],
        serde_json::json!([
            "evidence",
            "iak_chain",
            "iak_restricted",
            "same_device",
            "certify",
            "quote"
        ])
    );
    assert_eq!(a["cert_serial"], cert_serial_hex(&ldevid));
    // The stored evidence is the bundle the CSR carried.
    let stored = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(a["evidence"].as_str().expect("b64"))
            .expect("base64")
    };
    assert_eq!(
        AttestationBundle::from_der(&stored).expect("bundle"),
        AttestationBundle::from_csr(&CertReq::from_der(&csr).expect("csr"))
            .expect("bundle")
            .expect("some")
    );
    // The metrics count both appraisals.
    let addr = lab.s.reg.metrics_addr().expect("metrics_addr= in the log");
    let (_, _, scrape) = scrape_path(addr, "/metrics").await;
    promtool_check(&scrape);
    let count = |result: &str| {
        sample(
            &scrape,
            &format!("brski_registrar_attestations_total{{mode=\"require\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(count("accepted"), Some(1.0), "{scrape}");
    assert_eq!(count("evidence"), Some(1.0), "{scrape}");

    // The table shows the latest.
    let table = pledges_cmd(&lab.s.tmp.path().join("registrar"), &["list"]).await;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("ATTESTATION") && table.contains("accepted (fw-2.1)"),
        "{table}"
    );

    // openssl and `registrar inspect` show the attestation attribute of the CSR.
    let file = lab._dir.path().join("csr.der");
    std::fs::write(&file, &csr).expect("write");
    let text = openssl(&[
        "req",
        "-inform",
        "DER",
        "-noout",
        "-text",
        "-in",
        path(&file),
    ])
    .await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("1.2.840.113549.1.9.16.2.59"), "{text}");
    let out = tokio::process::Command::new(registrar_bin())
        .args(["inspect", path(&file)])
        .output()
        .await
        .expect("inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let att = &v["content"]["attestation"];
    assert_eq!(
        att["tpm-certify"]["qualifying-data"],
        hex::encode(qualifying_data(&binding)),
        "{v}"
    );
    assert_eq!(
        att["tpm-quote"]["pcrs"][0]["pcrs"],
        serde_json::json!([0, 7]),
        "{v}"
    );
    assert_eq!(att["certificates"][0]["serial-number"], "ATT-OK", "{v}");
}

/// Evidence made by hand with tpm2-tools (`scripts/tpm-evidence.sh`: TPM2_Certify sent raw,
/// `tpm2_quote`, `tpm2_pcrread`) is accepted as the suite's own is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_made_with_tpm2_tools_is_accepted() {
    let lab = Lab::new("ATT-TOOLS").await;
    let key = lab.ldevid(0);
    let mut conn = lab.connect().await;
    let q = qualifying_data(conn.channel_binding().expect("binding"));
    let out = lab._dir.path().join("by-hand");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tpm-evidence.sh");
    let run = tokio::process::Command::new("bash")
        .arg(&script)
        .args([
            "0x81020003",
            "0x81020001",
            &hex::encode(&q),
            "0,7",
            path(&out),
        ])
        .env("TPM2TOOLS_TCTI", lab.sim.tcti())
        .output()
        .await
        .expect("bash");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |name: &str| std::fs::read(out.join(name)).expect(name);
    let octets = |b: Vec<u8>| OctetString::new(b).expect("octets");
    let values = read("quote.pcrs");
    let evidence = TpmEvidence {
        certify: Some(TpmCertifyStatement {
            tpms_attest: octets(read("certify.attest")),
            signature: octets(read("certify.sig")),
            tpmt_public: Some(octets(read("key.tpmt_public"))),
        }),
        quote: Some(TpmQuoteStatement {
            tpms_attest: octets(read("quote.attest")),
            signature: octets(read("quote.sig")),
            pcr_values: Some(values.chunks(32).map(|v| octets(v.to_vec())).collect()),
        }),
    };
    let csr = lab.csr(&key, vec![attribute(&evidence, &lab.iak_cert)]);
    let (status, body) = lab.enroll(&mut conn, &csr).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(lab.row().await["attestation"]["accepted"], true);
}

/// Cheat: a software key (no evidence at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csr_without_evidence_is_refused() {
    let lab = Lab::new("ATT-NONE").await;
    let software = brski_common::keys::SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256)
        .expect("key");
    let mut conn = lab.connect().await;
    let csr = lab.csr(&software, vec![]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 400, "evidence").await;
}

/// Cheat: genuine evidence for another key than the CSR's (a software key, or another TPM
/// key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_for_another_key_is_refused() {
    let lab = Lab::new("ATT-KEY").await;
    lab.ldevid(0);
    let mut conn = lab.connect().await;
    let binding = conn.channel_binding().expect("binding").to_vec();
    let evidence = lab.evidence(0, &binding);
    let software = brski_common::keys::SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256)
        .expect("key");
    let csr = lab.csr(&software, vec![attribute(&evidence, &lab.iak_cert)]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 403, "certified_key_is_csr_key")
        .await;
}

/// Cheat: the certify signed by a key that is not a certified restricted IAK: an unrestricted
/// TPM key certified like an IDevID (no tcg-cap-verifiedTPMRestricted), and an IAK certified
/// by another manufacturer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certify_by_an_unrestricted_or_foreign_key_is_refused() {
    let lab = Lab::new("ATT-SIGNER").await;
    let key = lab.ldevid(0);
    let config = lab.config();
    // An unrestricted key of the same TPM signs the certify (the TPM allows it).
    let other = tpm::create_idevid_key(&config, 0x8102_0000, TpmCurve::P256).expect("key");
    let mut conn = lab.connect().await;
    let q = qualifying_data(conn.channel_binding().expect("binding"));
    let evidence = TpmEvidence {
        certify: Some(tpm::certify(&config, LDEVID_HANDLES[0], 0x8102_0000, &q).expect("certify")),
        quote: None,
    };
    let cert = iak_certificate(
        &lab.s.vendor.ca,
        "ATT-SIGNER",
        other.public_key_spki(),
        false,
    );
    let csr = lab.csr(&key, vec![attribute(&evidence, &cert)]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 403, "iak_restricted").await;

    // The genuine IAK, but certified by a CA that is not the manufacturer's.
    let foreign = Vendor::new("Foreign vendor");
    let iak = tpm::read_key(&config, IAK_HANDLE).expect("IAK");
    let cert = iak_certificate(&foreign.ca, "ATT-SIGNER", &iak.spki, true);
    let evidence = lab.evidence(0, conn.channel_binding().expect("binding"));
    let csr = lab.csr(&key, vec![attribute(&evidence, &cert)]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 403, "iak_chain").await;
}

/// Cheat: the IAK certificate of another device of the same manufacturer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iak_of_another_device_is_refused() {
    let lab = Lab::new("ATT-DEV").await;
    let key = lab.ldevid(0);
    let iak = tpm::read_key(&lab.config(), IAK_HANDLE).expect("IAK");
    let cert = iak_certificate(&lab.s.vendor.ca, "ATT-OTHER", &iak.spki, true);
    let mut conn = lab.connect().await;
    let evidence = lab.evidence(0, conn.channel_binding().expect("binding"));
    let csr = lab.csr(&key, vec![attribute(&evidence, &cert)]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 403, "same_device").await;
}

/// Cheat: evidence made for another session (stale, or replayed from elsewhere): its
/// qualifying data is not this session's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_of_another_session_is_refused() {
    let lab = Lab::new("ATT-STALE").await;
    let key = lab.ldevid(0);
    let old = lab.connect().await;
    let evidence = lab.evidence(0, old.channel_binding().expect("binding"));
    let mut conn = lab.connect().await;
    let csr = lab.csr(&key, vec![attribute(&evidence, &lab.iak_cert)]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 403, "certify_qualifying_data")
        .await;
}

/// Cheat: a device whose PCRs match no accepted set (it booted other firmware).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcr_values_not_in_the_policy_are_refused() {
    let lab = Lab::new("ATT-PCR").await;
    let key = lab.ldevid(0);
    tpm::extend_pcr(&lab.config(), 7, &[0x66; 32]).expect("extend");
    let mut conn = lab.connect().await;
    let evidence = lab.evidence(0, conn.channel_binding().expect("binding"));
    let csr = lab.csr(&key, vec![attribute(&evidence, &lab.iak_cert)]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 403, "pcr_digest").await;
}

/// Cheat: a quote whose PCR digest was edited to an accepted one: its signature fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_quote_is_refused() {
    let lab = Lab::new("ATT-TAMPER").await;
    let key = lab.ldevid(0);
    tpm::extend_pcr(&lab.config(), 7, &[0x66; 32]).expect("extend");
    let mut conn = lab.connect().await;
    let mut evidence = lab.evidence(0, conn.channel_binding().expect("binding"));
    let quote = evidence.quote.as_mut().expect("quote");
    let mut attest = quote.tpms_attest.as_bytes().to_vec();
    // The pcrDigest is the last 32 octets: put the accepted set's digest there, and the
    // accepted values beside it.
    let firmware = sha256(FIRMWARE);
    let accepted = [
        sha256(&[[0u8; 32].as_slice(), &firmware].concat()),
        vec![0u8; 32],
    ];
    let n = attest.len();
    attest[n - 32..].copy_from_slice(&sha256(&accepted.concat()));
    quote.tpms_attest = OctetString::new(attest).expect("octets");
    quote.pcr_values = Some(
        accepted
            .iter()
            .map(|v| OctetString::new(v.clone()).expect("octets"))
            .collect(),
    );
    let csr = lab.csr(&key, vec![attribute(&evidence, &lab.iak_cert)]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 403, "quote_signature").await;
}

/// Cheat: two attestation attributes (or one with two values): which evidence counts would
/// be ambiguous (draft-ietf-lamps-csr-attestation §4.3: one attribute, one value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_attestation_attributes_are_refused() {
    let lab = Lab::new("ATT-TWO").await;
    let key = lab.ldevid(0);
    let mut conn = lab.connect().await;
    let binding = conn.channel_binding().expect("binding").to_vec();
    let genuine = attribute(&lab.evidence(0, &binding), &lab.iak_cert);
    let second = attribute(&lab.evidence(0, &binding), &lab.iak_cert);
    let subject = lab.pledge.idevid.cert.tbs_certificate().subject().clone();
    let csr = raw_csr(&subject, &key, vec![genuine.clone(), second.clone()]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 403, "bundle").await;

    let mut values = genuine.values.clone();
    values
        .insert(second.values.get(0).expect("value").clone())
        .expect("insert");
    let two_values = Attribute {
        oid: genuine.oid,
        values,
    };
    let csr = raw_csr(&subject, &key, vec![two_values]);
    let answer = lab.enroll(&mut conn, &csr).await;
    lab.assert_refused(answer, 403, "bundle").await;
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
