#![cfg(feature = "tpm")]
//! The TPM 2.0 signer against a software TPM (swtpm), checked with tpm2-tools and OpenSSL:
//! TCG DevID key creation (SPEC §8.2), signatures in CMS, JWS and COSE envelopes and in a TLS
//! handshake (RFC 8995 §5.1: the IDevID signs the CertificateVerify), no leaked TPM objects,
//! reconnection, LDevID slots, and every TPM error.
//!
//! Each test runs its own swtpm. They fail, not skip, when swtpm, tpm2-tools or openssl are
//! missing (scripts/install-deps.sh installs them).

use brski_common::envelope::{self, Format};
use brski_common::keys::tpm::{
    self, IDEVID_AUTH_POLICY_SHA256, IDEVID_HANDLE, LDEVID_HANDLES, TpmConfig, TpmCurve, TpmError,
    TpmSigner,
};
use brski_common::keys::{KeyError, SignatureAlgorithm, Signer, SoftwareKey, verify_signature};
use brski_common::oid::TCG_TPM2_HW_TYPE;
use brski_common::pki::chain::{TimeCheck, TrustPolicy};
use brski_common::pki::{build_name, issue, profile, self_signed};
use brski_common::{input, tls};
use const_oid::db::rfc4519;
use der::Encode;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use x509_cert::Certificate;

const PAYLOAD: &[u8] = br#"{"ietf-voucher-request:voucher":{"assertion":"proximity","serial-number":"TPM-0001","nonce":"62a2e7693d82fcda2624de58fb6722e5"}}"#;

mod tpm_support;
use tpm_support::{Tpm, hex_handle};

// ---------------------------------------------------------------------------------------------
// Helpers

/// The `value:` of a `key:` block in tpm2_readpublic's YAML output.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    let head = format!("{key}:");
    text.lines()
        .skip_while(|l| *l != head)
        .nth(1)
        .and_then(|l| l.trim().strip_prefix("value: "))
        .unwrap_or_else(|| panic!("no {key} in tpm2_readpublic output:\n{text}"))
}

/// The SPKI `tpm2_readpublic -f pem` writes for `handle`.
fn readpublic_spki(tpm: &Tpm, handle: u32) -> (Vec<u8>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("key.pem");
    let text = tpm.tool(
        "tpm2_readpublic",
        &[
            "-c",
            &hex_handle(handle),
            "-f",
            "pem",
            "-o",
            pem.to_str().expect("utf-8 path"),
        ],
    );
    let pem = std::fs::read_to_string(&pem).expect("readpublic PEM");
    let der = input::pem_block(&pem, &["PUBLIC KEY"]).expect("PUBLIC KEY block");
    (der, text)
}

/// A software vendor CA and an IDevID certificate for `key` (802.1AR profile, TPM 2.0
/// HardwareModuleName).
fn vendor_pki(key: &dyn Signer) -> (Certificate, Certificate) {
    let ca_key = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("CA key");
    let ca_params =
        profile::vendor_ca(build_name(&[(rfc4519::CN, "TPM test vendor CA")]).expect("name"))
            .expect("CA params");
    let ca = self_signed(&ca_params, &ca_key).expect("CA certificate");
    let params = profile::idevid(
        "TPM-0001",
        Some("https://masa.example:9443"),
        Some((TCG_TPM2_HW_TYPE, b"swtpm-0001")),
    )
    .expect("IDevID params");
    let cert = issue(&params, key.public_key_spki(), Some(&ca), &ca_key).expect("IDevID cert");
    (ca, cert)
}

fn assert_verifies(key: &dyn Signer, message: &[u8], sig: &[u8]) {
    verify_signature(key.public_key_spki(), key.algorithm().oid(), message, sig)
        .expect("signature verifies with the key's SPKI");
}

fn openssl() -> Command {
    let probe = Command::new("openssl").arg("version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "the openssl binary is required for the interoperability tests"
    );
    Command::new("openssl")
}

// ---------------------------------------------------------------------------------------------
// Key creation (TCG "TPM 2.0 Keys for Device Identity and Attestation", SPEC §8.2)

#[test]
fn tcg_devid_idevid_key_is_what_tpm2_readpublic_shows() {
    let tpm = Tpm::start();
    let key = tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256)
        .expect("create IDevID");
    assert_eq!(key.algorithm(), SignatureAlgorithm::EcdsaP256Sha256);
    assert_eq!(key.handle(), 0x8102_0000);

    let (spki, text) = readpublic_spki(&tpm, IDEVID_HANDLE);
    assert_eq!(
        spki,
        key.public_key_spki(),
        "SPKI differs from tpm2_readpublic's"
    );

    let attributes = field(&text, "attributes");
    let set: Vec<&str> = attributes.split('|').collect();
    for a in [
        "fixedtpm",
        "fixedparent",
        "sensitivedataorigin",
        "userwithauth",
        "adminwithpolicy",
        "sign",
    ] {
        assert!(set.contains(&a), "{a} missing from {attributes}");
    }
    for a in ["restricted", "decrypt", "noda"] {
        assert!(!set.contains(&a), "{a} set in {attributes}");
    }
    assert!(
        text.contains(&hex::encode(IDEVID_AUTH_POLICY_SHA256)),
        "authPolicy missing: {text}"
    );
    assert_eq!(field(&text, "type"), "ecc");
    assert_eq!(field(&text, "curve-id"), "NIST p256");
    assert_eq!(field(&text, "name-alg"), "sha256");
    assert_eq!(field(&text, "scheme"), "ecdsa");
    assert_eq!(field(&text, "scheme-halg"), "sha256");
    assert_eq!(field(&text, "sym-alg"), "null");
    // "IDEVID" as the unique value does not survive: the TPM replaces it with the point.
    assert!(!text.contains(&hex::encode("IDEVID")), "{text}");

    // The same template in the same TPM is the same key: creating again returns it.
    let again = tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256)
        .expect("create IDevID again");
    assert_eq!(again.public_key_spki(), key.public_key_spki());
    assert_eq!(tpm.handles("handles-persistent"), vec![IDEVID_HANDLE]);
    assert!(tpm.handles("handles-transient").is_empty());
}

#[test]
fn idevid_creation_leaves_a_foreign_key_at_the_handle_alone() {
    let tpm = Tpm::start();
    tpm.tools_key(
        "o",
        "ecc256:ecdsa-sha256",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
        IDEVID_HANDLE,
    );
    let (before, _) = readpublic_spki(&tpm, IDEVID_HANDLE);
    match tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256) {
        Err(TpmError::HandleOccupied { handle, tcti }) => {
            assert_eq!(handle, IDEVID_HANDLE);
            assert_eq!(tcti, tpm.sim.tcti());
        }
        other => panic!("expected HandleOccupied, got {other:?}"),
    }
    let (after, _) = readpublic_spki(&tpm, IDEVID_HANDLE);
    assert_eq!(before, after, "the foreign key was replaced");
    assert!(tpm.handles("handles-transient").is_empty());
}

#[test]
fn idevid_on_p384_is_unsupported() {
    let tpm = Tpm::start();
    match tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P384) {
        Err(TpmError::Unsupported { what, .. }) => assert!(what.contains("P384"), "{what}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert!(tpm.handles("handles-persistent").is_empty());
}

#[test]
fn ldevid_slots_rotate_next_to_the_idevid() {
    let tpm = Tpm::start();
    let config = tpm.config();
    let idevid = tpm::create_idevid_key(&config, IDEVID_HANDLE, TpmCurve::P256).expect("IDevID");
    let first = tpm::create_ldevid_key(&config, LDEVID_HANDLES[0]).expect("LDevID slot 1");
    let sig = first.sign(PAYLOAD).expect("sign with slot 1");
    assert_verifies(&first, PAYLOAD, &sig);
    let (spki, text) = readpublic_spki(&tpm, LDEVID_HANDLES[0]);
    assert_eq!(spki, first.public_key_spki());
    assert_eq!(
        field(&text, "attributes"),
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|sign"
    );

    let second = tpm::create_ldevid_key(&config, LDEVID_HANDLES[1]).expect("LDevID slot 2");
    assert_ne!(second.public_key_spki(), first.public_key_spki());
    assert_ne!(second.public_key_spki(), idevid.public_key_spki());
    tpm::evict(&config, LDEVID_HANDLES[0]).expect("evict slot 1");

    assert_eq!(
        tpm.handles("handles-persistent"),
        vec![IDEVID_HANDLE, LDEVID_HANDLES[1]]
    );
    assert!(tpm.handles("handles-transient").is_empty());
    match first.try_sign(PAYLOAD) {
        Err(TpmError::NoKeyAtHandle { handle, .. }) => assert_eq!(handle, LDEVID_HANDLES[0]),
        other => panic!("expected NoKeyAtHandle for the evicted key, got {other:?}"),
    }
    let sig = second.sign(PAYLOAD).expect("sign with slot 2");
    assert_verifies(&second, PAYLOAD, &sig);
    let sig = idevid.sign(PAYLOAD).expect("sign with the IDevID");
    assert_verifies(&idevid, PAYLOAD, &sig);

    // A slot used before gets a fresh key, not the old one back.
    let third = tpm::create_ldevid_key(&config, LDEVID_HANDLES[0]).expect("LDevID slot 1 again");
    assert_ne!(third.public_key_spki(), first.public_key_spki());
}

#[test]
fn ldevid_replaces_the_key_at_its_handle_and_the_old_signer_notices() {
    let tpm = Tpm::start();
    let config = tpm.config();
    let old = tpm::create_ldevid_key(&config, LDEVID_HANDLES[0]).expect("LDevID");
    let new = tpm::create_ldevid_key(&config, LDEVID_HANDLES[0]).expect("replacement LDevID");
    assert_ne!(old.public_key_spki(), new.public_key_spki());
    assert_eq!(tpm.handles("handles-persistent"), vec![LDEVID_HANDLES[0]]);
    match old.try_sign(PAYLOAD) {
        Err(TpmError::KeyChanged { handle, .. }) => assert_eq!(handle, LDEVID_HANDLES[0]),
        other => panic!("expected KeyChanged, got {other:?}"),
    }
    match old.sign(PAYLOAD) {
        Err(KeyError::Unavailable(msg)) => assert!(msg.contains("changed"), "{msg}"),
        other => panic!("expected KeyError::Unavailable, got {other:?}"),
    }
    let sig = new.sign(PAYLOAD).expect("new key signs");
    assert_verifies(&new, PAYLOAD, &sig);
}

#[test]
fn ldevid_may_not_take_the_idevid_handle_or_a_platform_handle() {
    let tpm = Tpm::start();
    let config = tpm.config();
    assert!(matches!(
        tpm::create_ldevid_key(&config, IDEVID_HANDLE),
        Err(TpmError::ReservedHandle(0x8102_0000))
    ));
    assert!(matches!(
        tpm::create_ldevid_key(&config, 0x8180_0000),
        Err(TpmError::InvalidHandle(0x8180_0000))
    ));
    assert!(matches!(
        tpm::create_idevid_key(&config, 0x8000_0001, TpmCurve::P256),
        Err(TpmError::InvalidHandle(0x8000_0001))
    ));
    assert!(matches!(
        TpmSigner::open(&config, 0x0100_0000),
        Err(TpmError::InvalidHandle(0x0100_0000))
    ));
    assert!(matches!(
        tpm::evict(&config, 0x4000_0001),
        Err(TpmError::InvalidHandle(0x4000_0001))
    ));
    assert!(tpm.handles("handles-persistent").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Opening existing keys

#[test]
fn wrong_handle_is_no_key_at_handle() {
    let tpm = Tpm::start();
    match TpmSigner::open(&tpm.config(), 0x8102_0005) {
        Err(TpmError::NoKeyAtHandle { handle, tcti }) => {
            assert_eq!(handle, 0x8102_0005);
            assert_eq!(tcti, tpm.sim.tcti());
        }
        other => panic!("expected NoKeyAtHandle, got {other:?}"),
    }
    assert!(matches!(
        tpm::evict(&tpm.config(), 0x8102_0005),
        Err(TpmError::NoKeyAtHandle {
            handle: 0x8102_0005,
            ..
        })
    ));
}

#[test]
fn p384_key_made_by_tpm2_tools_signs_with_ecdsa_sha384() {
    let tpm = Tpm::start();
    tpm.tools_key(
        "o",
        "ecc384:ecdsa-sha384",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
        0x8100_0010,
    );
    let key = TpmSigner::open(&tpm.config(), 0x8100_0010).expect("open P-384 key");
    assert_eq!(key.algorithm(), SignatureAlgorithm::EcdsaP384Sha384);
    let (spki, _) = readpublic_spki(&tpm, 0x8100_0010);
    assert_eq!(spki, key.public_key_spki());
    for i in 0..8u8 {
        let message = [PAYLOAD, &[i]].concat();
        let sig = key.sign(&message).expect("sign");
        assert_verifies(&key, &message, &sig);
    }
}

#[test]
fn keys_that_cannot_sign_messages_are_refused() {
    let tpm = Tpm::start();
    let config = tpm.config();
    tpm.tools_key(
        "o",
        "rsa2048:rsassa-sha256",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
        0x8100_0020,
    );
    tpm.tools_key(
        "o",
        "ecc256:ecdsa-sha256:null",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|restricted",
        0x8100_0021,
    );
    tpm.tools_key(
        "o",
        "ecc256:null:aes128cfb",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|decrypt|restricted",
        0x8100_0022,
    );
    tpm.tools_key(
        "o",
        "ecc521:ecdsa-sha512",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
        0x8100_0023,
    );
    for (handle, needle) in [
        (0x8100_0020, "not an ECC key"),
        (0x8100_0021, "restricted"),
        (0x8100_0022, "sign attribute is clear"),
    ] {
        match TpmSigner::open(&config, handle) {
            Err(TpmError::UnusableKey {
                handle: h, reason, ..
            }) => {
                assert_eq!(h, handle);
                assert!(reason.contains(needle), "{handle:#x}: {reason}");
            }
            other => panic!("{handle:#x}: expected UnusableKey, got {other:?}"),
        }
    }
    match TpmSigner::open(&config, 0x8100_0023) {
        Err(TpmError::Unsupported { what, .. }) => assert!(what.contains("P521"), "{what}"),
        other => panic!("expected Unsupported for P-521, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures in the envelopes (RFC 8366bis §7.1, jws-voucher §3, cBRSKI §9.2)

#[test]
fn rfc8366bis_7_1_cms_signed_by_the_tpm_verifies_here_and_with_openssl() {
    let tpm = Tpm::start();
    let key = tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256)
        .expect("create IDevID");
    let (ca, cert) = vendor_pki(&key);
    let der =
        envelope::sign(Format::Cms, PAYLOAD, &key, std::slice::from_ref(&cert)).expect("CMS sign");
    let verified = envelope::verify(Format::Cms, &der, &TrustPolicy::new(vec![ca.clone()]), &[])
        .expect("CMS verifies");
    assert_eq!(verified.payload, PAYLOAD);
    assert_eq!(verified.signer(), Some(&cert));

    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("pvr.der");
    let anchor = dir.path().join("ca.pem");
    let out = dir.path().join("out.json");
    std::fs::write(&input, &der).expect("write CMS");
    std::fs::write(
        &anchor,
        input::to_pem("CERTIFICATE", &ca.to_der().expect("CA DER")),
    )
    .expect("write CA");
    let result = openssl()
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(&input)
        .arg("-CAfile")
        .arg(&anchor)
        .args(["-purpose", "any", "-out"])
        .arg(&out)
        .output()
        .expect("run openssl");
    assert!(
        result.status.success(),
        "openssl cms -verify: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(std::fs::read(&out).expect("openssl output"), PAYLOAD);
}

#[test]
fn jws_and_cose_signed_by_the_tpm_verify() {
    let tpm = Tpm::start();
    let key = tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256)
        .expect("create IDevID");
    let (ca, cert) = vendor_pki(&key);
    let policy = TrustPolicy::new(vec![ca]);
    for format in [Format::Jws, Format::Cose] {
        let bytes = envelope::sign(format, PAYLOAD, &key, std::slice::from_ref(&cert))
            .unwrap_or_else(|e| panic!("{format:?} sign: {e}"));
        let verified = envelope::verify(format, &bytes, &policy, &[])
            .unwrap_or_else(|e| panic!("{format:?} verify: {e}"));
        assert_eq!(verified.payload, PAYLOAD);
        assert_eq!(verified.signer(), Some(&cert));
    }
}

/// The digest path that OpenSSL's DTLS client takes: the TPM signs what it is given, when its
/// length is the key's hash (TPM 2.0 Part 3 §20.2: TPM2_Sign without a ticket would refuse
/// others; they are refused before the TPM sees them).
#[test]
fn digests_of_the_key_hash_are_signed_and_others_refused() {
    let tpm = Tpm::start();
    let key = tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256)
        .expect("create IDevID");
    let digest = SignatureAlgorithm::EcdsaP256Sha256.digest(b"transcript");
    let sig = Signer::sign_digest(&key, &digest).expect("sign digest");
    assert_verifies(&key, b"transcript", &sig);
    for wrong in [
        &digest[..20],
        &SignatureAlgorithm::EcdsaP384Sha384.digest(b"transcript")[..],
    ] {
        assert!(matches!(
            Signer::sign_digest(&key, wrong),
            Err(KeyError::UnsupportedAlgorithm(_))
        ));
    }
    // A software key signs whole messages only.
    let soft = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    assert!(matches!(
        soft.sign_digest(&digest),
        Err(KeyError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn signatures_verify_with_the_spki_and_only_for_their_message() {
    let tpm = Tpm::start();
    let key = tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256)
        .expect("create IDevID");
    let opened = TpmSigner::open(&tpm.config(), IDEVID_HANDLE).expect("open");
    assert_eq!(opened.public_key_spki(), key.public_key_spki());
    let a = key.sign(b"message a").expect("sign a");
    let b = opened.sign(b"message b").expect("sign b");
    assert_verifies(&key, b"message a", &a);
    assert_verifies(&key, b"message b", &b);
    assert!(matches!(
        verify_signature(
            key.public_key_spki(),
            key.algorithm().oid(),
            b"message b",
            &a
        ),
        Err(KeyError::BadSignature)
    ));
    // Empty and large messages are hashed in software before the TPM sees them.
    for message in [&b""[..], &vec![0x5a; 100_000][..]] {
        let sig = key.sign(message).expect("sign");
        assert_verifies(&key, message, &sig);
    }
}

#[test]
fn one_signer_serves_many_threads_and_two_keys_share_one_tpm() {
    let tpm = Tpm::start();
    let idevid = Arc::new(
        tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256).expect("IDevID"),
    );
    let ldevid =
        Arc::new(tpm::create_ldevid_key(&tpm.config(), LDEVID_HANDLES[0]).expect("LDevID"));
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let key: Arc<TpmSigner> = if t % 2 == 0 {
                idevid.clone()
            } else {
                ldevid.clone()
            };
            std::thread::spawn(move || {
                for i in 0..10u8 {
                    let message = [t, i];
                    let sig = key.sign(&message).expect("sign");
                    assert_verifies(key.as_ref(), &message, &sig);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("signing thread");
    }
    assert!(tpm.handles("handles-transient").is_empty());
}

// ---------------------------------------------------------------------------------------------
// TLS (RFC 8995 §5.1: the IDevID key makes the CertificateVerify)

/// Move TLS records from `from` to `to` until `from` has nothing more to send.
fn transfer(from: &mut rustls::Connection, to: &mut rustls::Connection) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).expect("write_tls");
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("read_tls");
        to.process_new_packets().expect("TLS processing");
    }
}

#[test]
fn rfc8995_5_1_tls_client_certificate_key_in_the_tpm() {
    let tpm = Tpm::start();
    let key = Arc::new(
        tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256).expect("IDevID"),
    );
    let (vendor_ca, idevid_cert) = vendor_pki(key.as_ref());
    let idevid_der = idevid_cert.to_der().expect("IDevID DER");

    let server_key = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    let server_cert = self_signed(
        &profile::tls_server(&["registrar.example"], &[]).expect("params"),
        &server_key,
    )
    .expect("server cert");
    let server_ck = tls::certified_key(&[server_cert.to_der().expect("DER")], Arc::new(server_key))
        .expect("server key");
    let server_config = tls::server_config(
        server_ck,
        Some(vec![
            TrustPolicy::new(vec![vendor_ca]).with_time(TimeCheck::Now),
        ]),
    )
    .expect("server config");
    let client_ck =
        tls::certified_key(std::slice::from_ref(&idevid_der), key.clone()).expect("client key");
    let client_config = tls::provisional_client_config(client_ck).expect("client config");

    let mut client = rustls::Connection::from(
        rustls::ClientConnection::new(
            Arc::new(client_config),
            "registrar.example".try_into().expect("server name"),
        )
        .expect("client"),
    );
    let mut server = rustls::Connection::from(
        rustls::ServerConnection::new(Arc::new(server_config)).expect("server"),
    );
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        transfer(&mut client, &mut server);
        transfer(&mut server, &mut client);
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    let peer = server.peer_certificates().expect("client certificate");
    assert_eq!(peer.len(), 1);
    assert_eq!(peer[0].as_ref(), idevid_der.as_slice());

    client.writer().write_all(b"ping").expect("write");
    transfer(&mut client, &mut server);
    let mut got = [0u8; 4];
    server.reader().read_exact(&mut got).expect("read");
    assert_eq!(&got, b"ping");
    assert!(tpm.handles("handles-transient").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Resources, round trips, failures

#[test]
fn five_hundred_signatures_leave_no_transient_objects_or_sessions() {
    let tpm = Tpm::start();
    let key = tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256)
        .expect("create IDevID");
    for i in 0..500u32 {
        let message = i.to_be_bytes();
        let sig = key
            .sign(&message)
            .unwrap_or_else(|e| panic!("signature {i}: {e}"));
        if i % 50 == 0 {
            assert_verifies(&key, &message, &sig);
        }
    }
    // swtpm has no resource manager: anything left behind would still be listed here.
    assert!(tpm.handles("handles-transient").is_empty());
    assert!(tpm.handles("handles-loaded-session").is_empty());
    assert!(tpm.handles("handles-saved-session").is_empty());
    assert_eq!(tpm.handles("handles-persistent"), vec![IDEVID_HANDLE]);
}

/// A TCP relay in front of swtpm that records the command code of every TPM command on the
/// command channel (TPM 2.0 Part 1 §18: tag, commandSize, commandCode).
struct CountingProxy {
    port: u16,
    commands: Arc<Mutex<Vec<u32>>>,
}

impl CountingProxy {
    fn start(target: u16) -> Self {
        let (data, ctrl) = loop {
            let data = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
            let port = data.local_addr().expect("addr").port();
            if let Ok(ctrl) = TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)) {
                break (data, ctrl);
            }
        };
        let port = data.local_addr().expect("addr").port();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let seen = commands.clone();
        std::thread::spawn(move || {
            for client in data.incoming().flatten() {
                let upstream = TcpStream::connect((Ipv4Addr::LOCALHOST, target)).expect("swtpm");
                relay(
                    upstream.try_clone().expect("clone"),
                    client.try_clone().expect("clone"),
                );
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let (mut client, mut upstream) = (client, upstream);
                    let mut header = [0u8; 10];
                    while client.read_exact(&mut header).is_ok() {
                        let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
                        let code = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
                        let mut body = vec![0u8; (size as usize).saturating_sub(10)];
                        if client.read_exact(&mut body).is_err() {
                            break;
                        }
                        seen.lock().expect("lock").push(code);
                        // One write per command: swtpm reads a command with one recv().
                        if upstream.write_all(&[&header[..], &body].concat()).is_err() {
                            break;
                        }
                    }
                    let _ = upstream.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        std::thread::spawn(move || {
            for client in ctrl.incoming().flatten() {
                let upstream =
                    TcpStream::connect((Ipv4Addr::LOCALHOST, target + 1)).expect("swtpm ctrl");
                relay(
                    upstream.try_clone().expect("clone"),
                    client.try_clone().expect("clone"),
                );
                relay(client, upstream);
            }
        });
        Self { port, commands }
    }

    fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *self.commands.lock().expect("lock"))
    }
}

/// Copy `from` to `to` in a thread until `from` closes.
fn relay(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

#[test]
fn one_signature_costs_two_tpm_commands() {
    const TPM_CC_READ_PUBLIC: u32 = 0x173;
    const TPM_CC_SIGN: u32 = 0x15d;
    let tpm = Tpm::start();
    tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256).expect("IDevID");
    let proxy = CountingProxy::start(tpm.sim.port());
    let config =
        TpmConfig::new(format!("swtpm:host=127.0.0.1,port={}", proxy.port)).expect("proxy TCTI");
    let key = TpmSigner::open(&config, IDEVID_HANDLE).expect("open through the proxy");
    assert_eq!(proxy.take(), vec![TPM_CC_READ_PUBLIC, TPM_CC_READ_PUBLIC]);
    // The first ECDSA signature after TPM2_Startup makes libtpms self-test ECDSA and answer
    // TPM_RC_RETRY, which ESYS resubmits by itself: one extra TPM2_Sign, once per boot.
    key.sign(PAYLOAD).expect("first signature");
    let first = proxy.take();
    assert_eq!(first[..2], [TPM_CC_READ_PUBLIC, TPM_CC_SIGN]);
    assert!(first[2..].iter().all(|c| *c == TPM_CC_SIGN), "{first:x?}");
    for _ in 0..3 {
        let sig = key.sign(PAYLOAD).expect("sign");
        assert_verifies(&key, PAYLOAD, &sig);
        assert_eq!(proxy.take(), vec![TPM_CC_READ_PUBLIC, TPM_CC_SIGN]);
    }
}

#[test]
fn stopped_tpm_is_unreachable_by_name_and_the_same_signer_signs_once_it_is_back() {
    let mut tpm = Tpm::start();
    let key = tpm::create_idevid_key(&tpm.config(), IDEVID_HANDLE, TpmCurve::P256)
        .expect("create IDevID");
    key.sign(PAYLOAD).expect("sign before the stop");
    let tcti = tpm.sim.tcti();

    tpm.sim.stop();
    match key.try_sign(PAYLOAD) {
        Err(TpmError::Unreachable { tcti: t, reason }) => {
            assert_eq!(t, tcti);
            assert!(!reason.is_empty());
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    match key.sign(PAYLOAD) {
        Err(KeyError::Unavailable(msg)) => assert!(msg.contains(&tcti), "{msg}"),
        other => panic!("expected KeyError::Unavailable, got {other:?}"),
    }
    assert!(matches!(
        TpmSigner::open(&tpm.config(), IDEVID_HANDLE),
        Err(TpmError::Unreachable { .. })
    ));
    assert!(
        TpmError::Unreachable {
            tcti: tcti.clone(),
            reason: String::new()
        }
        .is_transient()
    );

    tpm.sim.start_again().expect("restart swtpm");
    let sig = key.sign(PAYLOAD).expect("sign after the restart");
    assert_verifies(&key, PAYLOAD, &sig);
    // The key persisted in the state directory.
    let reopened = TpmSigner::open(&tpm.config(), IDEVID_HANDLE).expect("open after restart");
    assert_eq!(reopened.public_key_spki(), key.public_key_spki());
}

#[test]
fn dictionary_attack_lockout_is_reported_and_the_noda_ldevid_still_signs() {
    let tpm = Tpm::start();
    let config = tpm.config();
    let idevid = tpm::create_idevid_key(&config, IDEVID_HANDLE, TpmCurve::P256).expect("IDevID");
    let ldevid = tpm::create_ldevid_key(&config, LDEVID_HANDLES[0]).expect("LDevID");
    // One authorization failure allowed, then one wrong password on the IDevID.
    tpm.tool(
        "tpm2_dictionarylockout",
        &["-s", "-n", "1", "-t", "600", "-l", "600"],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = dir.path().join("msg");
    std::fs::write(&msg, PAYLOAD).expect("write");
    let failed = tpm.tool_output(
        "tpm2_sign",
        &[
            "-c",
            &hex_handle(IDEVID_HANDLE),
            "-p",
            "wrong",
            "-g",
            "sha256",
            "-o",
            dir.path().join("sig").to_str().expect("path"),
            msg.to_str().expect("path"),
        ],
    );
    assert!(!failed.status.success(), "a wrong password signed");

    match idevid.try_sign(PAYLOAD) {
        Err(TpmError::Lockout { tcti }) => assert_eq!(tcti, tpm.sim.tcti()),
        other => panic!("expected Lockout, got {other:?}"),
    }
    let sig = ldevid
        .sign(PAYLOAD)
        .expect("the noDA LDevID signs in lockout");
    assert_verifies(&ldevid, PAYLOAD, &sig);
}

#[test]
fn invalid_tcti_is_refused() {
    for tcti in ["bogus:whatever", "", "swtpm:port=notanumber"] {
        match TpmConfig::new(tcti) {
            Err(TpmError::InvalidTcti { tcti: t, .. }) => assert_eq!(t, tcti),
            other => panic!("{tcti:?}: expected InvalidTcti, got {other:?}"),
        }
    }
    let parsed: TpmConfig = "device:/dev/tpmrm0".parse().expect("device TCTI");
    assert_eq!(parsed.to_string(), "device:/dev/tpmrm0");
    // A configuration deserialised without the check is checked when used.
    let unchecked = TpmConfig {
        tcti: "bogus".into(),
    };
    assert!(matches!(
        TpmSigner::open(&unchecked, IDEVID_HANDLE),
        Err(TpmError::InvalidTcti { .. })
    ));
}

#[test]
fn nothing_listening_is_unreachable() {
    let port = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        l.local_addr().expect("addr").port()
    };
    let config = TpmConfig::new(format!("swtpm:host=127.0.0.1,port={port}")).expect("TCTI");
    match tpm::create_ldevid_key(&config, LDEVID_HANDLES[0]) {
        Err(e @ TpmError::Unreachable { .. }) => {
            assert!(e.to_string().contains(&config.tcti), "{e}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
