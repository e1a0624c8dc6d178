//! What the fuzz targets share: the certificates they verify against (the RFCs' example
//! certificates from `vectors/`, compiled in), helpers that cut one input into several, and the
//! checks run for each decoder family, so that each target stays a few lines.
//!
//! A check only calls the decoder and what a caller would do next with its result; the fuzzer
//! reports a panic, a timeout or an allocation beyond its limits. Where a decoder has an encoder,
//! the check also asserts that what was accepted re-encodes and decodes to the same value.

use brski_common::envelope::{self, Format, cose};
use brski_common::input;
use brski_common::pki::{TimeCheck, TrustPolicy};
use brski_common::voucher::ExtensionData;
use der::{Decode, Reader, SliceReader};
use std::sync::LazyLock;
use x509_cert::Certificate;

/// The example certificates used as trust anchors and peers.
pub struct Fixtures {
    /// RFC 8995 C.1.1, the manufacturer CA of the Appendix C vouchers and PVRs.
    pub manufacturer_ca: Certificate,
    /// RFC 8995 C.1.4, the registrar whose certificate the C.2.1 PVR names.
    pub registrar: Certificate,
    /// The IDevID that signed the C.2.1 PVR (the TLS client chain of the registrar check).
    pub pvr_idevid: Certificate,
    /// Every CA of the vectors: RFC 8995 manufacturer and owner CAs, the JWS draft's
    /// manufacturer and site CAs, cBRSKI's MASA and domain CAs.
    pub anchors: TrustPolicy,
}

fn certs(vector: &[u8]) -> Vec<Certificate> {
    let (_, items) = input::artifact_bytes(vector).expect("vector decodes");
    items
        .iter()
        .map(|d| Certificate::from_der(d).expect("vector certificate"))
        .collect()
}

fn cert(vector: &[u8]) -> Certificate {
    certs(vector).swap_remove(0)
}

macro_rules! vector {
    ($path:literal) => {
        include_bytes!(concat!("../../vectors/", $path))
    };
}

static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| {
    let mut anchors = vec![
        cert(vector!("rfc8995/C.1.1-manufacturer-ca.crt.pem")),
        cert(vector!("rfc8995/C.1.3-owner-ca.crt.pem")),
        cert(vector!("cbrski/C-masa_ca.crt.pem")),
        cert(vector!("cbrski/C-domain_ca.crt.pem")),
    ];
    // Signer certificate, then its CA.
    for chain in [
        &vector!("jws-voucher/8.1-pvr.signer-key-and-chain.pem")[..],
        vector!("jws-voucher/8.2-rvr.signer-key-and-chain.pem"),
    ] {
        anchors.extend(certs(chain).pop());
    }
    Fixtures {
        manufacturer_ca: anchors[0].clone(),
        registrar: cert(vector!("rfc8995/C.1.4-registrar.crt.pem")),
        pvr_idevid: cert(vector!("rfc8995/C.2.1-pvr-signer-idevid.crt.pem")),
        anchors: TrustPolicy::new(anchors).with_time(TimeCheck::Skip),
    }
});

/// The fixtures, decoded on first use.
pub fn fixtures() -> &'static Fixtures {
    &FIXTURES
}

/// The first byte (to choose between variants of a target) and the rest.
pub fn split_first(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (b, rest),
        None => (0, data),
    }
}

/// One of the three envelope formats, chosen by `selector`.
pub fn format(selector: u8) -> Format {
    match selector % 3 {
        0 => Format::Cms,
        1 => Format::Jws,
        _ => Format::Cose,
    }
}

/// Consecutive DER certificates at the start of `data` (a chain as a TLS peer or an envelope
/// presents it), at most eight.
pub fn certificates(data: &[u8]) -> Vec<Certificate> {
    let mut out = Vec::new();
    let Ok(mut reader) = SliceReader::new(data) else {
        return out;
    };
    while out.len() < 8 && !reader.is_finished() {
        match Certificate::decode(&mut reader) {
            Ok(c) => out.push(c),
            Err(_) => break,
        }
    }
    out
}

/// An envelope of `format`: decoded without verifying, verified against the fixtures' anchors
/// (with the registrar certificate as an out-of-band extra), and for COSE, stripped of its
/// unprotected certificates, which must leave an envelope that still decodes.
pub fn check_envelope(format: Format, data: &[u8]) {
    let fx = fixtures();
    let parsed = envelope::parse(format, data);
    let _ = envelope::verify(format, data, &fx.anchors, &[]);
    let _ = envelope::verify(
        format,
        data,
        &fx.anchors,
        std::slice::from_ref(&fx.registrar),
    );
    match format {
        Format::Cms => {
            let _ = envelope::cms::signing_time(data);
        }
        Format::Cose => {
            let stripped = cose::strip_unprotected_certs(data);
            if let (Ok(parsed), Ok(stripped)) = (&parsed, stripped) {
                let again = cose::parse(&stripped).expect("a stripped COSE_Sign1 decodes");
                assert_eq!(
                    parsed.payload, again.payload,
                    "stripping changed the payload"
                );
            }
        }
        Format::Jws => {}
    }
    let _ = Format::detect(data);
}

/// A voucher and a voucher-request payload in `format` (JSON for CMS and JWS, CBOR for COSE):
/// what decodes re-encodes with every leaf unchanged and an encoding that settles, and the
/// pledge's checks run on the voucher.
pub fn check_voucher(format: Format, data: &[u8]) {
    use brski_common::voucher::{PledgeExpectations, Voucher, VoucherRequest, validate_voucher};
    if let Ok(v) = Voucher::from_payload(format, data) {
        let encode = |v: &Voucher| v.to_payload(format).expect("a decoded voucher encodes");
        let decode =
            |b: &[u8]| Voucher::from_payload(format, b).expect("a re-encoded voucher decodes");
        let again = decode(&encode(&v));
        let leaves = |v: &Voucher| Voucher {
            extension_data: Vec::new(),
            ..v.clone()
        };
        assert_eq!(leaves(&v), leaves(&again), "voucher changed by re-encoding");
        let settled = encode(&again);
        let resettled = encode(&decode(&settled));
        check_extensions(
            &v.extension_data,
            &again.extension_data,
            &settled,
            &resettled,
        );
        let expected = PledgeExpectations::new(v.serial_number.clone(), v.nonce.clone())
            .with_idevid_issuer(v.idevid_issuer.clone());
        let _ = validate_voucher(&v, &expected);
    }
    if let Ok(r) = VoucherRequest::from_payload(format, data) {
        let encode = |r: &VoucherRequest| r.to_payload(format).expect("a decoded request encodes");
        let decode = |b: &[u8]| {
            VoucherRequest::from_payload(format, b).expect("a re-encoded request decodes")
        };
        let again = decode(&encode(&r));
        let leaves = |r: &VoucherRequest| VoucherRequest {
            extension_data: Vec::new(),
            ..r.clone()
        };
        assert_eq!(
            leaves(&r),
            leaves(&again),
            "voucher-request changed by re-encoding"
        );
        let settled = encode(&again);
        let resettled = encode(&decode(&settled));
        check_extensions(
            &r.extension_data,
            &again.extension_data,
            &settled,
            &resettled,
        );
        let _ = r.proximity_form();
    }
}

/// Extension members are carried, not interpreted, so they are held to less than the typed
/// leaves: the same members in the same order, and an encoding that settles after one round
/// (`settled` re-encodes as `resettled`). Their CBOR values cannot be compared as values: a
/// NaN never equals itself, and ciborium reads a small tagged bignum back as an integer.
fn check_extensions(
    first: &[ExtensionData],
    again: &[ExtensionData],
    settled: &[u8],
    resettled: &[u8],
) {
    let members = |data: &[ExtensionData]| -> Vec<String> {
        data.iter()
            .map(|e| match e {
                ExtensionData::Json { member, .. } => member.clone(),
                ExtensionData::Cbor { key, .. } => format!("{key:?}"),
            })
            .collect()
    };
    assert_eq!(members(first), members(again), "extension members changed");
    assert_eq!(settled, resettled, "the encoding does not settle");
}

/// Write `data` to a fresh file and hand its path to `load` (the configuration and credential
/// loaders take paths).
pub fn with_file<T>(data: &[u8], load: impl FnOnce(&std::path::Path) -> T) -> T {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("input");
    std::fs::write(&path, data).expect("write the input");
    load(&path)
}
