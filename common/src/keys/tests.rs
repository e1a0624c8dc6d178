use super::*;

#[test]
fn software_keys_sign_and_verify_each_algorithm() {
    for alg in [
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureAlgorithm::EcdsaP384Sha384,
        SignatureAlgorithm::Ed25519,
    ] {
        let key = SoftwareKey::generate(alg).expect("generate");
        let sig = key.sign(b"hello").expect("sign");
        verify_signature(key.public_key_spki(), alg.oid(), b"hello", &sig).expect("verify");
        assert!(matches!(
            verify_signature(key.public_key_spki(), alg.oid(), b"hellO", &sig),
            Err(KeyError::BadSignature)
        ));
        // A PKCS#8 round trip keeps the same public key.
        let again = SoftwareKey::from_der(key.to_pkcs8_der()).expect("reload");
        assert_eq!(again.public_key_spki(), key.public_key_spki());
    }
}

#[test]
fn ecdsa_fixed_and_der_forms_round_trip() {
    let key = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("generate");
    let der_sig = key.sign(b"m").expect("sign");
    let fixed = ecdsa_der_to_fixed(&der_sig, 32).expect("to fixed");
    assert_eq!(fixed.len(), 64);
    let back = ecdsa_fixed_to_der(&fixed).expect("to der");
    verify_signature(
        key.public_key_spki(),
        SignatureAlgorithm::EcdsaP256Sha256.oid(),
        b"m",
        &back,
    )
    .expect("verify converted");
    assert!(ecdsa_der_to_fixed(&[0x30, 0x03, 0x02], 32).is_err());
    assert!(ecdsa_fixed_to_der(&[1, 2, 3]).is_err());
}

#[test]
fn loads_sec1_and_pkcs8_vector_keys() {
    let dir = crate::test_vectors::dir();
    for (file, alg) in [
        (
            "rfc8995/C.1.2-masa.key.pem",
            SignatureAlgorithm::EcdsaP256Sha256,
        ),
        (
            "rfc8995/C.1.1-manufacturer-ca.key.pem",
            SignatureAlgorithm::EcdsaP384Sha384,
        ),
        (
            "jws-voucher/8.3-voucher.signer-key-and-chain.pem",
            SignatureAlgorithm::EcdsaP256Sha256,
        ),
    ] {
        let pem = std::fs::read_to_string(dir.join(file)).expect("read vector");
        let key = SoftwareKey::from_pem(&pem).expect(file);
        assert_eq!(key.algorithm(), alg, "{file}");
    }
}
