//! RFC 8995 with the pledge's keys in a TPM 2.0 (a fresh swtpm per test, started here), with the
//! real `masa`, `registrar` and `pledge` binaries: `masa mint --tpm` puts the IDevID key in the
//! TPM (TCG IDevID template), the pledge signs its TLS CertificateVerify, voucher-request and
//! CSR there and keeps its LDevID key there, renewal rotates the LDevID slots, and a TPM that is
//! away is named in the error and waited for by `pledge run`.
//!
//! Needs swtpm and tpm2-tools (`scripts/install-deps.sh`), and the binaries built with
//! `--all-features` (`cargo test --workspace --all-features`).
#![cfg(feature = "tpm")]

mod support;

use brski_common::attest::{AttestationBundle, TpmEvidence};
use brski_common::envelope::{self, Format};
use brski_common::keys::Signer;
use brski_common::keys::tpm::swtpm::Swtpm;
use brski_common::keys::tpm::{IAK_HANDLE, IDEVID_HANDLE, LDEVID_HANDLES, TpmSigner};
use brski_common::oid::{
    TCG_CAP_VERIFIED_TPM_FIXED, TCG_CAP_VERIFIED_TPM_RESIDENCY, TCG_CAP_VERIFIED_TPM_RESTRICTED,
};
use brski_common::pki::chain::TrustPolicy;
use brski_common::pki::ext::{certificate_policies, hardware_module_name};
use der::Encode;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use testbed::loopback::{SuiteOptions, run};
use x509_cert::Certificate;

/// TPM 2.0 Part 2 §6.5.2: TPM_CC_Sign.
const TPM_CC_SIGN: u32 = 0x15d;

fn start_swtpm(dir: &Path) -> Swtpm {
    Swtpm::start(dir.join("swtpm"))
        .expect("swtpm is required for the TPM tests (scripts/install-deps.sh installs it)")
}

/// The SubjectPublicKeyInfo that `tpm2_readpublic` (tpm2-tools) gives for `handle`.
fn readpublic_spki(tcti: &str, handle: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("key.pem");
    run(Command::new("tpm2_readpublic")
        .arg("-c")
        .arg(format!("{handle:#010x}"))
        .args(["-f", "pem", "-o"])
        .arg(&pem)
        .arg("-T")
        .arg(tcti))
    .expect("tpm2_readpublic (tpm2-tools)");
    let text = std::fs::read_to_string(&pem).expect("readpublic pem");
    brski_common::input::pem_block(&text, &["PUBLIC KEY"]).expect("PUBLIC KEY")
}

/// The persistent handles `tpm2_getcap handles-persistent` lists.
fn persistent_handles(tcti: &str) -> Vec<u32> {
    let out = run(Command::new("tpm2_getcap")
        .arg("handles-persistent")
        .arg("-T")
        .arg(tcti))
    .expect("tpm2_getcap");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- 0x"))
        .map(|h| u32::from_str_radix(h.trim(), 16).expect("hex handle"))
        .collect()
}

fn spki(cert: &Certificate) -> Vec<u8> {
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .expect("spki")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("json")
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Whether `bytes` is a private key: holds a PEM private key block, or parses as a key in
/// PEM or DER (PKCS#8, RFC 5915).
fn holds_private_key(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.contains("PRIVATE KEY")
        || brski_common::keys::SoftwareKey::from_pem(&text).is_ok()
        || brski_common::keys::SoftwareKey::from_der(bytes).is_ok()
}

/// A TCP relay in front of swtpm's command port that records the command code of every TPM
/// command (TPM 2.0 Part 1 §18.2: tag, commandSize, commandCode); the control port (next one)
/// is relayed as it is.
struct CommandCounter {
    port: u16,
    codes: Arc<Mutex<Vec<u32>>>,
}

impl CommandCounter {
    fn start(swtpm_port: u16) -> Self {
        let (data, ctrl) = loop {
            let data = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
            let port = data.local_addr().expect("addr").port();
            if let Ok(ctrl) = TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)) {
                break (data, ctrl);
            }
        };
        let port = data.local_addr().expect("addr").port();
        let codes = Arc::new(Mutex::new(Vec::new()));
        let seen = codes.clone();
        std::thread::spawn(move || {
            for client in data.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect((Ipv4Addr::LOCALHOST, swtpm_port)) else {
                    continue;
                };
                copy_in_thread(
                    upstream.try_clone().expect("clone"),
                    client.try_clone().expect("clone"),
                );
                let seen = seen.clone();
                std::thread::spawn(move || forward_commands(client, upstream, &seen));
            }
        });
        std::thread::spawn(move || {
            for client in ctrl.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect((Ipv4Addr::LOCALHOST, swtpm_port + 1)) else {
                    continue;
                };
                copy_in_thread(
                    upstream.try_clone().expect("clone"),
                    client.try_clone().expect("clone"),
                );
                copy_in_thread(client, upstream);
            }
        });
        Self { port, codes }
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *self.codes.lock().expect("lock"))
    }
}

/// Forward whole commands from the client to swtpm (one write each), recording their codes.
fn forward_commands(mut client: TcpStream, mut upstream: TcpStream, seen: &Mutex<Vec<u32>>) {
    let mut header = [0u8; 10];
    while client.read_exact(&mut header).is_ok() {
        let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        let code = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
        let mut body = vec![0u8; size.saturating_sub(header.len())];
        if client.read_exact(&mut body).is_err() {
            break;
        }
        seen.lock().expect("lock").push(code);
        if upstream.write_all(&[&header[..], &body].concat()).is_err() {
            break;
        }
    }
    let _ = upstream.shutdown(std::net::Shutdown::Both);
}

fn copy_in_thread(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

#[test]
fn rfc8995_bootstrap_with_idevid_and_ldevid_in_the_tpm() {
    bootstrap_with_keys_in_the_tpm("https", "TPM-0001");
}

/// cBRSKI over CoAPS with the same TPM keys: OpenSSL's DTLS client signs its
/// CertificateVerify through the TPM (the digest it computed, `TPM2_Sign`), with the IDevID
/// and then with the LDevID, and the COSE voucher-request and the CSR are signed there too.
#[test]
fn cbrski_bootstrap_over_coaps_with_idevid_and_ldevid_in_the_tpm() {
    bootstrap_with_keys_in_the_tpm("coaps", "TPM-0005");
}

fn bootstrap_with_keys_in_the_tpm(transport: &str, serial: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sim = start_swtpm(tmp.path());
    let counter = CommandCounter::start(sim.port());
    let (_suite_dir, mut s) = started(&SuiteOptions {
        transport: transport.into(),
        ..SuiteOptions::default()
    });
    let config = s
        .mint_tpm(serial, &counter.tcti())
        .expect("masa mint --tpm");
    let dir = config.parent().expect("dir").to_path_buf();
    let pledge_toml = std::fs::read_to_string(&config).expect("pledge.toml");
    assert!(
        !pledge_toml.contains("idevid-key") && pledge_toml.contains("[tpm]"),
        "pledge.toml names the TPM key, not a key file:\n{pledge_toml}"
    );
    assert!(!dir.join("idevid.key.pem").exists());

    // The IDevID is for the key tpm2_readpublic shows at the IDevID handle, and carries the
    // TPM 2.0 HardwareModuleName (802.1AR §8.10.4, RFC 4108 §5).
    let idevid = cert(&dir.join("idevid.crt.pem"));
    assert_eq!(
        readpublic_spki(&sim.tcti(), IDEVID_HANDLE),
        spki(&idevid),
        "tpm2_readpublic of the IDevID handle is the certificate's public key"
    );
    let hmn = brski_common::pki::ext::hardware_module_name(&idevid)
        .expect("SAN")
        .expect("HardwareModuleName");
    assert_eq!(hmn.hw_type, brski_common::oid::TCG_TPM2_HW_TYPE);
    assert_eq!(hmn.hw_serial_num.as_bytes(), serial.as_bytes());
    check_iak_certificate(&sim, &dir, &idevid);

    // libtpms self-tests ECDSA on the first TPM2_Sign after start-up and asks for a retry;
    // sign once directly so that the count below is the bootstrap's own.
    TpmSigner::open(&sim.config(), IDEVID_HANDLE)
        .expect("open")
        .sign(b"warm-up")
        .expect("warm-up signature");
    counter.take();

    let started_at = Instant::now();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    let took = started_at.elapsed();
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let codes = counter.take();
    let signs = codes.iter().filter(|c| **c == TPM_CC_SIGN).count();
    eprintln!(
        "{transport}: TPM commands in one bootstrap: {} in all, {signs} TPM2_Sign; bootstrap \
         took {took:?}",
        codes.len()
    );
    // IDevID (D)TLS CertificateVerify, voucher-request, CSR, LDevID (D)TLS CertificateVerify
    // (enrollstatus on a new connection).
    assert_eq!(signs, 4, "TPM signatures per bootstrap");

    // The LDevID's key is TPM-resident: ldevid.tpm and state.json name its handle, and
    // tpm2_readpublic there gives the certificate's key.
    let ldevid = cert(&dir.join("ldevid.crt.pem"));
    let reference = json(&dir.join("ldevid.tpm"));
    let handle = u32::try_from(reference["handle"].as_u64().expect("handle")).expect("u32");
    assert_eq!(handle, LDEVID_HANDLES[0]);
    assert_eq!(json(&dir.join("state.json"))["ldevid-tpm-handle"], handle);
    assert_eq!(readpublic_spki(&sim.tcti(), handle), spki(&ldevid));
    assert_ne!(spki(&ldevid), spki(&idevid));
    assert!(!dir.join("ldevid.key.pem").exists());

    // No file of the pledge holds a private key.
    for f in files(&dir) {
        assert!(
            !holds_private_key(&std::fs::read(&f).expect("read")),
            "{} holds a private key",
            f.display()
        );
    }

    if transport == "https" {
        // The voucher-request the pledge sent verifies (OpenSSL) with the IDevID certificate, which
        // signed it, chaining to the manufacturer CA.
        let signer = dir.join("pvr-signer.pem");
        run(Command::new("openssl")
            .args([
                "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
            ])
            .arg("-in")
            .arg(dir.join("voucher-request.vcj"))
            .arg("-CAfile")
            .arg(dir.join("manufacturer-ca.crt.pem"))
            .arg("-signer")
            .arg(&signer)
            .arg("-out")
            .arg(dir.join("pvr.json")))
        .expect("openssl cms -verify of the voucher-request");
        assert_eq!(
            cert(&signer),
            idevid,
            "the IDevID signed the voucher-request"
        );
        let pvr = json(&dir.join("pvr.json"));
        assert_eq!(pvr["ietf-voucher-request:voucher"]["serial-number"], serial);
        std::fs::remove_file(&signer).expect("rm");
    } else {
        // The COSE voucher-request (cBRSKI §6.2) verifies with the IDevID, which signed it.
        let pvr = std::fs::read(dir.join("voucher-request.vch")).expect("voucher-request.vch");
        let policy = TrustPolicy::new(vec![cert(&dir.join("manufacturer-ca.crt.pem"))]);
        let verified = envelope::verify(Format::Cose, &pvr, &policy, std::slice::from_ref(&idevid))
            .expect("the COSE voucher-request verifies");
        assert_eq!(
            verified.chain[0], idevid,
            "the IDevID signed the voucher-request"
        );
    }
    // The registrar saw the LDevID's TLS client authentication (enrollstatus, RFC 8995 §5.9.4).
    let row = pledge_row(&s, serial).expect("row");
    assert_eq!(row["enrollstatus"]["status"], true, "{row}");
    // Nothing but the IDevID, one LDevID key and the IAK is left in the TPM.
    assert_eq!(
        persistent_handles(&sim.tcti()),
        vec![IDEVID_HANDLE, LDEVID_HANDLES[0], IAK_HANDLE]
    );
    s.stop().expect("stop");
}

/// TPM 2.0 Part 2 §6.5.2: TPM_CC_Certify, TPM_CC_Quote, TPM_CC_PCR_Read.
const TPM_CC_CERTIFY: u32 = 0x148;
const TPM_CC_QUOTE: u32 = 0x158;
const TPM_CC_PCR_READ: u32 = 0x17e;

/// SPEC §9 end to end with the real binaries: the testbed's simulated measured boot, a
/// registrar requiring attestation against its PCR reference file, and a pledge whose IAK
/// certifies its LDevID key and quotes PCRs 0-5 and 7 in the CSR. The registrar's record shows the
/// accepted appraisal, and tpm2_checkquote (tpm2-tools) verifies the pledge's quote with the
/// IAK certificate's key and the PCR values it reported.
#[test]
fn attested_enrollment_with_the_pledge_over_https() {
    attested_enrollment("https", "ATT-0001");
}

/// The same over CoAPS (RFC 9148): the pledge makes its first CSR without asking `/att`
/// (cBRSKI §6.7), the registrar refuses it for lacking evidence (4.00), the pledge asks and
/// sends evidence bound to the DTLS session.
#[test]
fn attested_enrollment_with_the_pledge_over_coaps() {
    attested_enrollment("coaps", "ATT-0002");
}

fn attested_enrollment(transport: &str, serial: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sim = start_swtpm(tmp.path());
    let counter = CommandCounter::start(sim.port());
    let (_suite_dir, mut s) = suite(&SuiteOptions {
        transport: transport.into(),
        ..SuiteOptions::default()
    });
    s.set_attestation(
        "require",
        Some(&testbed::loopback::simulated_boot_reference()),
    )
    .expect("attestation");
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    let config = s
        .mint_tpm(serial, &counter.tcti())
        .expect("masa mint --tpm");
    testbed::loopback::simulate_boot(&sim.config()).expect("simulated boot");
    TpmSigner::open(&sim.config(), IDEVID_HANDLE)
        .expect("open")
        .sign(b"warm-up")
        .expect("warm-up signature");
    counter.take();

    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let codes = counter.take();
    let count = |cc: u32| codes.iter().filter(|c| **c == cc).count();
    eprintln!(
        "{transport}: TPM commands in one attested bootstrap: {} in all, {} TPM2_Certify, {} \
         TPM2_Quote, {} TPM2_PCR_Read, {} TPM2_Sign",
        codes.len(),
        count(TPM_CC_CERTIFY),
        count(TPM_CC_QUOTE),
        count(TPM_CC_PCR_READ),
        count(TPM_CC_SIGN)
    );
    // One CSR with evidence: one certify, one quote (over CoAPS the first CSR, made before
    // /att was asked, carries none).
    assert_eq!(count(TPM_CC_CERTIFY), 1);
    assert_eq!(count(TPM_CC_QUOTE), 1);

    let row = pledge_row(&s, serial).expect("row");
    let a = &row["attestation"];
    assert_eq!(a["accepted"], true, "{row}");
    assert_eq!(a["mode"], "require");
    assert_eq!(a["pcr_set"], "testbed-fw-1.0", "{row}");
    assert_eq!(row["enrollstatus"]["status"], true, "{row}");
    let dir = config.parent().expect("dir");
    let ldevid = cert(&dir.join("ldevid.crt.pem"));
    assert_eq!(
        certificate_policies(&ldevid).expect("policies"),
        vec![TCG_CAP_VERIFIED_TPM_RESIDENCY, TCG_CAP_VERIFIED_TPM_FIXED],
        "the LDevID says its key is TPM-resident"
    );

    // tpm2_checkquote on the quote the pledge sent, from the evidence the registrar stored.
    let der = base64_decode(a["evidence"].as_str().expect("evidence"));
    let bundle = AttestationBundle::from_der(&der).expect("bundle");
    let quote = TpmEvidence::from_bundle(&bundle)
        .expect("statements")
        .quote
        .expect("quote");
    let info =
        brski_common::attest::TpmsAttest::decode(quote.tpms_attest.as_bytes()).expect("info");
    let work = tmp.path();
    let iak = cert(&dir.join("iak.crt.pem"));
    std::fs::write(
        work.join("iak.pem"),
        brski_common::input::to_pem("PUBLIC KEY", &spki(&iak)),
    )
    .expect("write");
    std::fs::write(work.join("quote.attest"), quote.tpms_attest.as_bytes()).expect("write");
    std::fs::write(work.join("quote.sig"), quote.signature.as_bytes()).expect("write");
    let values: Vec<u8> = quote
        .pcr_values
        .as_ref()
        .expect("values")
        .iter()
        .flat_map(|v| v.as_bytes().to_vec())
        .collect();
    std::fs::write(work.join("quote.pcrs"), values).expect("write");
    run(Command::new("tpm2_checkquote")
        .current_dir(work)
        .args([
            "-u",
            "iak.pem",
            "-m",
            "quote.attest",
            "-s",
            "quote.sig",
            "-f",
            "quote.pcrs",
            "-l",
            "sha256:0,1,2,3,4,5,7",
            "-g",
            "sha256",
            "-q",
        ])
        .arg(hex::encode(&info.extra_data)))
    .expect("tpm2_checkquote verifies the pledge's quote");
    s.stop().expect("stop");
}

fn base64_decode(text: &str) -> Vec<u8> {
    brski_common::input::pem_block(
        &format!("-----BEGIN X-----\n{text}\n-----END X-----\n"),
        &["X"],
    )
    .expect("base64")
}

#[test]
fn stopped_tpm_is_named_and_pledge_run_enrolls_once_it_is_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut sim = start_swtpm(tmp.path());
    let (_suite_dir, mut s) = started(&SuiteOptions::default());
    let config = s
        .mint_tpm("TPM-0002", &sim.tcti())
        .expect("masa mint --tpm");
    let dir = config.parent().expect("dir").to_path_buf();
    sim.stop();

    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no TPM reachable") && err.contains(&sim.tcti()),
        "the error names the TPM: {err}"
    );
    for f in ["state.json", "ldevid.crt.pem", "ldevid.tpm", "voucher.vcj"] {
        assert!(!dir.join(f).exists(), "{f} written without a TPM");
    }
    assert!(
        pledge_row(&s, "TPM-0002").is_none(),
        "the registrar was not contacted"
    );

    let log = tmp.path().join("pledge-run.log");
    let mut child = s
        .pledge("run", &config)
        .expect("cmd")
        .arg("--once")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("pledge run");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "pledge run keeps retrying while the TPM is away: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&sim.tcti()),
        "the retries name the TPM"
    );
    sim.start_again().expect("swtpm again");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "pledge run did not enroll");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(json(&dir.join("state.json"))["enrolled"], true);
    assert_eq!(
        readpublic_spki(&sim.tcti(), LDEVID_HANDLES[0]),
        spki(&cert(&dir.join("ldevid.crt.pem")))
    );
    s.stop().expect("stop");
}

#[test]
fn a_wrong_idevid_handle_is_named_and_nothing_is_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sim = start_swtpm(tmp.path());
    let (_suite_dir, s) = started(&SuiteOptions::default());
    let config = s
        .mint_tpm("TPM-0004", &sim.tcti())
        .expect("masa mint --tpm");
    let dir = config.parent().expect("dir").to_path_buf();
    let text = std::fs::read_to_string(&config).expect("pledge.toml");
    let wrong = 0x8102_0005_u32;
    let edited = text.replace(
        &format!("idevid-handle = {IDEVID_HANDLE}"),
        &format!("idevid-handle = {wrong}"),
    );
    assert_ne!(edited, text, "pledge.toml names the IDevID handle:\n{text}");
    std::fs::write(&config, edited).expect("write");
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no key at persistent handle 0x81020005") && err.contains(&sim.tcti()),
        "{err}"
    );
    assert!(!dir.join("state.json").exists() && !dir.join("ldevid.tpm").exists());
    assert!(pledge_row(&s, "TPM-0004").is_none());
}

#[test]
fn rfc7030_4_2_2_renewal_rotates_the_tpm_ldevid_slots() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sim = start_swtpm(tmp.path());
    let (_suite_dir, mut s) = started(&SuiteOptions::default());
    let config = s
        .mint_tpm("TPM-0003", &sim.tcti())
        .expect("masa mint --tpm");
    let dir = config.parent().expect("dir").to_path_buf();
    // The registrar issues LDevIDs for a year; renewing after 1e-7 of that is after ~3 s.
    let mut child = s
        .pledge("run", &config)
        .expect("cmd")
        .args(["--renew-at", "0.0000001"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("run.log")).expect("log"))
        .spawn()
        .expect("pledge run");

    // Watch the LDevID: (certificate, handle) after the bootstrap and after two renewals.
    let mut seen: Vec<(Certificate, u32)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no two renewals: {:?}\n{}",
            seen.iter().map(|(_, h)| h).collect::<Vec<_>>(),
            std::fs::read_to_string(tmp.path().join("run.log")).unwrap_or_default()
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "pledge run exited"
        );
        std::thread::sleep(Duration::from_millis(50));
        let Ok(state) = std::fs::read(dir.join("state.json")) else {
            continue;
        };
        let Ok(reference) = std::fs::read(dir.join("ldevid.tpm")) else {
            continue;
        };
        let (Ok(state), Ok(reference)) = (
            serde_json::from_slice::<serde_json::Value>(&state),
            serde_json::from_slice::<serde_json::Value>(&reference),
        ) else {
            continue;
        };
        let Some(handle) = reference["handle"].as_u64().map(|h| h as u32) else {
            continue;
        };
        let Ok(pem) = std::fs::read_to_string(dir.join("ldevid.crt.pem")) else {
            continue;
        };
        let Ok(der) = brski_common::input::pem_block(&pem, &["CERTIFICATE"]) else {
            continue;
        };
        let Ok(ldevid) = <Certificate as der::Decode>::from_der(&der) else {
            continue;
        };
        // A consistent snapshot: state.json, ldevid.tpm and the certificate agree.
        if state["ldevid-tpm-handle"] != handle || json_spki(&reference) != spki(&ldevid) {
            continue;
        }
        if seen.last().is_none_or(|(c, _)| *c != ldevid) {
            seen.push((ldevid, handle));
        }
    }
    stop_pledge(&mut child);

    let handles: Vec<u32> = seen.iter().map(|(_, h)| *h).collect();
    assert_eq!(
        handles,
        vec![LDEVID_HANDLES[0], LDEVID_HANDLES[1], LDEVID_HANDLES[0]],
        "each renewal makes its key in the other slot"
    );
    let (current, handle) = seen.last().expect("current");
    assert_eq!(readpublic_spki(&sim.tcti(), *handle), spki(current));
    assert_ne!(spki(&seen[0].0), spki(current), "a new key");
    // The previous LDevID key was evicted once the new certificate was stored. With renewal
    // due at once, the next renewal may already have staged a fresh key in the other slot
    // before SIGTERM arrived (recovered at the next start); it is never the previous key.
    let persistent = persistent_handles(&sim.tcti());
    assert!(
        persistent.contains(&IDEVID_HANDLE) && persistent.contains(handle),
        "{persistent:x?}"
    );
    assert!(persistent.len() <= 4, "{persistent:x?}");
    let (previous, previous_handle) = &seen[1];
    if persistent.contains(previous_handle) {
        assert_ne!(
            readpublic_spki(&sim.tcti(), *previous_handle),
            spki(previous),
            "the previous LDevID key was evicted"
        );
    }
    // The renewed certificate validates to the domain CA.
    let verified = run(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(s.registrar_dir.join("domain-ca.crt.pem"))
        .arg(dir.join("ldevid.crt.pem")))
    .expect("openssl verify");
    assert!(String::from_utf8_lossy(&verified.stdout).contains(": OK"));
    s.stop().expect("stop");
}

fn json_spki(reference: &serde_json::Value) -> Vec<u8> {
    reference["public-key"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .unwrap_or_default()
}

/// SIGTERM `pledge run` and wait for its clean exit.
/// `masa mint --tpm` made the IAK beside the IDevID (SPEC §8.2): its certificate is for the
/// key tpm2_readpublic shows at the IAK handle, names the IDevID's device (serialNumber,
/// HardwareModuleName), carries the TCG residency policies, and OpenSSL verifies it against
/// the manufacturer CA. The IDevID carries tcg-cap-verifiedTPMResidency and -Fixed.
fn check_iak_certificate(sim: &Swtpm, dir: &Path, idevid: &Certificate) {
    let iak_path = dir.join("iak.crt.pem");
    let iak = cert(&iak_path);
    assert_eq!(readpublic_spki(&sim.tcti(), IAK_HANDLE), spki(&iak));
    assert_eq!(
        iak.tbs_certificate().subject(),
        idevid.tbs_certificate().subject()
    );
    assert_eq!(
        hardware_module_name(&iak).expect("SAN"),
        hardware_module_name(idevid).expect("SAN")
    );
    assert_eq!(
        certificate_policies(&iak).expect("policies"),
        vec![
            TCG_CAP_VERIFIED_TPM_RESIDENCY,
            TCG_CAP_VERIFIED_TPM_RESTRICTED
        ]
    );
    assert_eq!(
        certificate_policies(idevid).expect("policies"),
        vec![TCG_CAP_VERIFIED_TPM_RESIDENCY, TCG_CAP_VERIFIED_TPM_FIXED]
    );
    let verify = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(dir.join("manufacturer-ca.crt.pem"))
        .arg(&iak_path)
        .output()
        .expect("openssl");
    assert!(
        verify.status.success(),
        "openssl verify of the IAK certificate: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let pledge_toml = std::fs::read_to_string(dir.join("pledge.toml")).expect("pledge.toml");
    assert!(
        pledge_toml.contains("iak-cert = \"iak.crt.pem\"")
            && pledge_toml.contains("iak-handle = 2164391939"),
        "{pledge_toml}"
    );
}

fn stop_pledge(child: &mut std::process::Child) {
    testbed::loopback::signal(child, "TERM").expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "pledge run exits 0 on SIGTERM: {st}");
            return;
        }
        assert!(Instant::now() < deadline, "pledge run ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
