//! The registrar's appraisal of attestation evidence (SPEC §9), one thread: what each attested
//! enrollment adds to the registrar's CPU. Measured on the real swtpm evidence of
//! `vectors/tpm-attest/` (ECDSA P-256 IAK): the IAK certificate's chain (a software vendor CA,
//! P-256; a different certificate each time, as for a new pledge), the TPM2_Certify statement (signature, qualifying data, certified key and its
//! attributes) and the TPM2_Quote statement (signature, reported PCR values, PCR digest
//! against one accepted set), and all three as `appraise_enrollment` runs them.
//!
//! `cargo bench -p brski-common --bench attest`. Under `cargo test` each operation runs once.

use brski_common::attest::{
    self, HashAlg, PcrBank, PcrSelection, PcrSet, SignerKey, TpmCertifyStatement, TpmQuoteStatement,
};
use brski_common::keys::{SignatureAlgorithm, SoftwareKey};
use brski_common::pki::chain::{TrustPolicy, validate_chain};
use brski_common::pki::{build_name, issue, profile, self_signed};
use brski_common::test_vectors::{bytes, read};
use const_oid::db::rfc4519;
use der::asn1::OctetString;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn run_for() -> Duration {
    if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(2)
    } else {
        Duration::ZERO
    }
}

/// Operations per second of `op` (which must succeed) over about [`run_for`].
fn rate(name: &str, mut op: impl FnMut() -> bool) -> bool {
    let (limit, start) = (run_for(), Instant::now());
    let mut n: u64 = 0;
    loop {
        if !op() {
            println!("{name}: failed");
            return false;
        }
        n += 1;
        if start.elapsed() >= limit {
            break;
        }
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    println!("{name}: {per_s:.0} ops/s ({:.1} us each)", 1e6 / per_s);
    true
}

fn v(name: &str) -> Vec<u8> {
    bytes(&format!("tpm-attest/{name}"))
}

fn octets(b: Vec<u8>) -> OctetString {
    OctetString::new(b).expect("octet string")
}

fn main() {
    let pem = String::from_utf8(read("tpm-attest/iak-ecc.spki.pem")).expect("utf-8");
    let iak_spki = brski_common::input::pem_block(&pem, &["PUBLIC KEY"]).expect("SPKI");
    let pem = String::from_utf8(read("tpm-attest/ldevid.spki.pem")).expect("utf-8");
    let ldevid_spki = brski_common::input::pem_block(&pem, &["PUBLIC KEY"]).expect("SPKI");
    let qualifying = v("qualifying-data.hex");
    let certify = TpmCertifyStatement {
        tpms_attest: octets(v("certify-ecc.attest.hex")),
        signature: octets(v("certify-ecc.sig.hex")),
        tpmt_public: Some(octets(v("ldevid.tpmt_public.hex"))),
    };
    let values: Vec<Vec<u8>> = v("quote.pcrs.hex").chunks(32).map(<[u8]>::to_vec).collect();
    let quote = TpmQuoteStatement {
        tpms_attest: octets(v("quote.attest.hex")),
        signature: octets(v("quote.sig.hex")),
        pcr_values: Some(values.iter().cloned().map(octets).collect()),
    };
    let selection = PcrSelection(vec![PcrBank {
        hash: HashAlg::Sha256,
        pcrs: vec![0, 1, 2, 16],
    }]);
    let accepted = vec![PcrSet::new(selection, values).expect("set")];
    // The registrar knows the IAK by its certificate only (no TPMT_PUBLIC).
    let signer = SignerKey::from_spki(&iak_spki);

    let ca_key = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    let ca = self_signed(
        &profile::vendor_ca(build_name(&[(rfc4519::CN, "Bench vendor CA")]).expect("name"))
            .expect("params"),
        &ca_key,
    )
    .expect("CA");
    // One IAK certificate per device, more than the memory of verified signatures holds
    // (`pki::chain`, 4096): each validation verifies its signature, as for a new pledge.
    let iak_certs: Vec<_> = (0..2 * 4096)
        .map(|i| {
            let serial = format!("BENCH-{i}");
            let hmn = (brski_common::oid::TCG_TPM2_HW_TYPE, serial.as_bytes());
            issue(
                &profile::iak(&serial, hmn).expect("params"),
                &iak_spki,
                Some(&ca),
                &ca_key,
            )
            .expect("IAK certificate")
        })
        .collect();
    let policy = TrustPolicy::new(vec![ca]);
    let next = std::cell::Cell::new(0usize);
    let chain = || {
        let i = next.get();
        next.set((i + 1) % iak_certs.len());
        validate_chain(&iak_certs[i], &[], &policy).is_ok()
    };
    let certify_ok =
        || attest::appraise_certify(&certify, &signer, &ldevid_spki, &qualifying).is_ok();
    let quote_ok = || attest::appraise_quote(&quote, &signer, &qualifying, &accepted) == Ok(0);
    let mut ok = rate("iak_chain", || black_box(chain()));
    ok &= rate("certify", || black_box(certify_ok()));
    ok &= rate("quote", || black_box(quote_ok()));
    ok &= rate("all_three", || {
        black_box(chain() && certify_ok() && quote_ok())
    });
    if !ok {
        std::process::exit(1);
    }
}
