//! Voucher envelope throughput: sign and full verify (signature, digest and chain validation
//! against the manufacturer anchor) per second, one thread, for CMS, JWS and COSE.
//!
//! `cargo bench -p brski-common --bench envelope`. The signer is the RFC 8995 C.1.2 MASA key
//! (P-256) with its certificate, anchored at C.1.1 (P-384), like a MASA signing vouchers.
//! `*_pinned_signer` verifies against the signer's own certificate as anchor (no chain
//! signature to check), which separates the envelope's cost from the P-384 CA signature.
//! Under `cargo test` (no `--bench` argument) each operation runs once, as a smoke test.

use brski_common::envelope::{self, Format};
use brski_common::keys::SoftwareKey;
use brski_common::pki::chain::{TimeCheck, TrustPolicy};
use brski_common::test_vectors::{cert, read};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long each measurement runs: 2 s under `cargo bench`, one operation under `cargo test`.
fn run_for() -> Duration {
    static RUN_FOR: OnceLock<Duration> = OnceLock::new();
    *RUN_FOR.get_or_init(|| {
        if std::env::args().any(|a| a == "--bench") {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        }
    })
}

/// Run `op` repeatedly for about [`run_for`]; operations per second, or `None` if `op` fails.
fn rate(mut op: impl FnMut() -> bool) -> Option<f64> {
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        for _ in 0..16 {
            if !op() {
                return None;
            }
        }
        n += 16;
        if start.elapsed() >= run_for() {
            break;
        }
    }
    Some(n as f64 / start.elapsed().as_secs_f64())
}

fn report(name: &str, r: Option<f64>) {
    match r {
        Some(r) => println!("{name}: {r:.0} ops/s"),
        None => println!("{name}: n/a"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects formats by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // The RFC 8995 C.2.3 voucher's JSON (869 bytes) as the payload.
    let raw = read("rfc8995/C.2.3-voucher.econtent.json");
    let body = brski_common::input::strip_comment_lines(&raw);
    let voucher = body.strip_suffix(b"\n").unwrap_or(body).to_vec();
    let voucher = voucher.as_slice();
    let pem = String::from_utf8(read("rfc8995/C.1.2-masa.key.pem")).expect("key file");
    let key = SoftwareKey::from_pem(&pem).expect("MASA key");
    let chain = vec![cert("rfc8995/C.1.2-masa.crt.pem")];
    // The example certificates are expired; time checks would only add a clock read.
    let policy = TrustPolicy::new(vec![cert("rfc8995/C.1.1-manufacturer-ca.crt.pem")])
        .with_time(TimeCheck::Skip);
    let pinned = TrustPolicy::new(chain.clone()).with_time(TimeCheck::Skip);

    let mut failed = false;
    for (label, format) in [
        ("cms", Format::Cms),
        ("jws", Format::Jws),
        ("cose", Format::Cose),
    ] {
        if !filter.is_empty() && !filter.iter().any(|f| label.contains(f.as_str())) {
            continue;
        }
        let signed = envelope::sign(format, voucher, &key, &chain).expect("sign");
        let sign_rate = rate(|| envelope::sign(format, black_box(voucher), &key, &chain).is_ok());
        let verify_rate = rate(|| {
            envelope::verify(format, black_box(&signed), &policy, &[])
                .is_ok_and(|v| v.payload == voucher)
        });
        // The same with the signer's own certificate as the anchor: the envelope alone,
        // without the P-384 signature of the manufacturer CA on the signer certificate.
        let pinned_rate = rate(|| {
            envelope::verify(format, black_box(&signed), &pinned, &[])
                .is_ok_and(|v| v.payload == voucher)
        });
        for (name, r) in [
            ("sign_p256", sign_rate),
            ("verify_p256", verify_rate),
            ("verify_p256_pinned_signer", pinned_rate),
        ] {
            failed |= r.is_none();
            report(&format!("{label}_{name}"), r);
        }
    }
    assert!(!failed, "an operation failed");
}
