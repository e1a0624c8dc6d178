use super::*;
use openssl::ec::EcGroup;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{MessageDigest, hash};
use openssl::nid::Nid;
use openssl::sign::{Signer, Verifier};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

fn software(nid: Nid) -> EcKey<Private> {
    EcKey::generate(&EcGroup::from_curve_name(nid).expect("group")).expect("key")
}

/// A "remote" signer: the key is here, but it is handed only digests.
fn remote(key: EcKey<Private>, seen: Arc<Mutex<Vec<Vec<u8>>>>) -> Arc<SignDigest> {
    Arc::new(move |digest: &[u8]| {
        seen.lock().expect("lock").push(digest.to_vec());
        EcdsaSig::sign(digest, &key).ok()?.to_der().ok()
    })
}

fn verifies(public: &EcKeyRef<Private>, md: MessageDigest, message: &[u8], sig: &[u8]) -> bool {
    let public = EcKey::from_public_key(public.group(), public.public_key()).expect("public");
    let public = PKey::from_ec_key(public).expect("pkey");
    let mut v = Verifier::new(md, &public).expect("verifier");
    v.verify_oneshot(sig, message).expect("verify")
}

#[test]
fn openssl_signs_through_the_hook_with_the_digest_it_computed() {
    for (nid, md) in [
        (Nid::X9_62_PRIME256V1, MessageDigest::sha256()),
        (Nid::SECP384R1, MessageDigest::sha384()),
    ] {
        let private = software(nid);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let key = external_ec_key(&private, remote(private.clone(), seen.clone())).expect("key");
        let message = b"handshake transcript";
        let sig = Signer::new(md, &key)
            .expect("signer")
            .sign_oneshot_to_vec(message)
            .expect("sign");
        assert!(verifies(&private, md, message, &sig));
        let expected = hash(md, message).expect("hash").to_vec();
        assert_eq!(*seen.lock().expect("lock"), vec![expected]);
    }
}

#[test]
fn the_key_holds_no_private_scalar() {
    let private = software(Nid::X9_62_PRIME256V1);
    let key = external_ec_key(&private, remote(private.clone(), Arc::default())).expect("key");
    let ec = key.ec_key().expect("ec");
    assert!(ec.private_key_to_der().is_err());
    assert!(key.private_key_to_pkcs8().is_err());
    assert!(key.public_eq(&PKey::from_ec_key(private).expect("pkey")));
}

#[test]
fn a_signer_that_fails_fails_the_signature_and_nothing_else() {
    let private = software(Nid::X9_62_PRIME256V1);
    let calls = Arc::new(AtomicUsize::new(0));
    let refusing: Vec<Arc<SignDigest>> = vec![
        Arc::new(|_: &[u8]| None),
        Arc::new(|_: &[u8]| Some(vec![0x30, 0x03, 0x02, 0x01])),
        Arc::new(|_: &[u8]| Some(Vec::new())),
        {
            let calls = calls.clone();
            Arc::new(move |_: &[u8]| {
                calls.fetch_add(1, Ordering::SeqCst);
                panic!("signer panics")
            })
        },
    ];
    for sign in refusing {
        let key = external_ec_key(&private, sign).expect("key");
        let signed = Signer::new(MessageDigest::sha256(), &key)
            .expect("signer")
            .sign_oneshot_to_vec(b"m");
        assert!(signed.is_err());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the panicking signer was called"
    );
}

#[test]
fn the_signer_lives_as_long_as_the_key_and_its_copies() {
    let private = software(Nid::X9_62_PRIME256V1);
    let sign = remote(private.clone(), Arc::default());
    let key = external_ec_key(&private, sign.clone()).expect("key");
    assert_eq!(Arc::strong_count(&sign), 2);
    let ec = key.ec_key().expect("ec");
    // SAFETY: `ec` is a live EC_KEY; the copy is freed below.
    let copy = unsafe { openssl_sys::EC_KEY_dup(ec.as_ptr()) };
    assert!(!copy.is_null());
    assert_eq!(
        Arc::strong_count(&sign),
        3,
        "the copy holds its own reference"
    );
    // SAFETY: `copy` was made by EC_KEY_dup above and is not used after this.
    unsafe { openssl_sys::EC_KEY_free(copy) };
    assert_eq!(Arc::strong_count(&sign), 2);
    drop(ec);
    drop(key);
    assert_eq!(Arc::strong_count(&sign), 1, "freed with the last key");
}

#[test]
fn keys_of_other_origins_are_not_touched() {
    // An ordinary key frees with no value at the index, and signs with its own scalar.
    let private = software(Nid::X9_62_PRIME256V1);
    let _external = external_ec_key(&private, remote(private.clone(), Arc::default()));
    let key = PKey::from_ec_key(private.clone()).expect("pkey");
    let sig = Signer::new(MessageDigest::sha256(), &key)
        .expect("signer")
        .sign_oneshot_to_vec(b"m")
        .expect("sign");
    assert!(verifies(&private, MessageDigest::sha256(), b"m", &sig));
}

#[test]
fn client_sigalgs_take_openssl_names_and_refuse_others() {
    let ctx = openssl::ssl::SslContext::builder(openssl::ssl::SslMethod::dtls())
        .expect("ctx")
        .build();
    let mut ssl = openssl::ssl::Ssl::new(&ctx).expect("ssl");
    assert!(set_client_sigalgs(&mut ssl, c"ECDSA+SHA256").is_ok());
    assert!(set_client_sigalgs(&mut ssl, c"ECDSA+SHA384:ECDSA+SHA256").is_ok());
    assert!(set_client_sigalgs(&mut ssl, c"NOPE+SHA1").is_err());
}
