//! TPM public areas: the DevID key templates, and the X.509 `SubjectPublicKeyInfo` of an ECC
//! public area (RFC 5480 §2).

use crate::keys::SignatureAlgorithm;
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use der::asn1::BitString;
use der::{Any, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Digest, EccParameter, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, Public,
    PublicBuilder, PublicEccParametersBuilder, SymmetricDefinitionObject,
};

/// authPolicy of the IDevID template H-2 (ECC NIST P-256, SHA-256) of TCG "TPM 2.0 Keys for
/// Device Identity and Attestation" v1.00 r12 (SPEC §8.2).
pub const TCG_IDEVID_AUTH_POLICY_SHA256: [u8; 32] = [
    0xad, 0x6b, 0x3a, 0x22, 0x84, 0xfd, 0x69, 0x8a, 0x07, 0x10, 0xbf, 0x5c, 0xc1, 0xb9, 0xbd, 0xf1,
    0x5e, 0x25, 0x32, 0xe3, 0xf6, 0x01, 0xfa, 0x4b, 0x93, 0xa6, 0xa8, 0xfa, 0x8d, 0xe5, 0x79, 0xea,
];

/// authPolicy of this suite's IDevID: `PolicyOR(TCG H-2 authPolicy, PolicyCommandCode(
/// TPM_CC_Certify))` (TPM 2.0 Part 1 §19.7: the policy of the OR's first branch still works).
///
/// The second branch lets the key be the object of TPM2_Certify (which needs the ADMIN role,
/// Part 3 §18.2: a policy session, as adminWithPolicy is set). The manufacturer needs that to
/// prove, with the IAK, that the IDevID lives in the IAK's TPM; the TCG policy alone does not
/// say how it is satisfied. Certifying a key discloses nothing and changes nothing.
pub const IDEVID_AUTH_POLICY_SHA256: [u8; 32] = [
    0xeb, 0x7f, 0x88, 0xdc, 0x59, 0xcb, 0x72, 0xb9, 0xe0, 0x29, 0x41, 0x34, 0x4b, 0x0c, 0x43, 0xd8,
    0x9a, 0x92, 0x1b, 0x5c, 0xe4, 0x93, 0x43, 0x55, 0x76, 0xa3, 0x22, 0x22, 0x2e, 0x42, 0xb3, 0x96,
];

/// The policy digest after `TPM2_PolicyCommandCode(TPM_CC_Certify)` from the empty policy: the
/// second branch of [`IDEVID_AUTH_POLICY_SHA256`].
pub const CERTIFY_POLICY_SHA256: [u8; 32] = [
    0x04, 0x8e, 0x9a, 0x3a, 0xce, 0x08, 0x58, 0x3f, 0x79, 0xf3, 0x44, 0xff, 0x78, 0x5b, 0xbe, 0xa9,
    0xf0, 0x7a, 0xc7, 0xfa, 0x33, 0x25, 0xb3, 0xd4, 0x9a, 0x21, 0xdd, 0x51, 0x94, 0xc6, 0x58, 0x50,
];

/// authPolicy of the IAK template (ECC NIST P-256, SHA-256) of the TCG DevID specification
/// (SPEC §8.2).
pub const IAK_AUTH_POLICY_SHA256: [u8; 32] = [
    0x54, 0x37, 0x18, 0x23, 0x26, 0xe4, 0x14, 0xfc, 0xa7, 0x97, 0xd5, 0xf1, 0x74, 0x61, 0x5a, 0x16,
    0x41, 0xf6, 0x12, 0x55, 0x79, 0x7c, 0x3a, 0x2b, 0x22, 0xc2, 0x2d, 0x12, 0x0b, 0x2d, 0x1e, 0x07,
];

/// `unique` of the IAK template: ASCII "IAK" in both coordinates.
pub const IAK_UNIQUE: &[u8] = b"IAK";

/// `unique` of the IDevID template: ASCII "IDEVID" in both coordinates.
pub const IDEVID_UNIQUE: &[u8] = b"IDEVID";
/// Prefix of the LDevID `unique.x`.
pub const LDEVID_UNIQUE: &[u8] = b"LDEVID";

/// The IDevID template H-2 of the TCG DevID specification (SPEC §8.2): ECC NIST P-256, nameAlg
/// SHA-256, fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, adminWithPolicy, sign; not
/// restricted, not decrypt; scheme ECDSA-SHA256; unique "IDEVID"; authPolicy
/// [`IDEVID_AUTH_POLICY_SHA256`], which adds a certify branch to the TCG one. Created with `TPM2_CreatePrimary` in the Endorsement hierarchy, the same template
/// always yields the same key (until the endorsement seed changes).
pub(crate) fn idevid_p256_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(true)
        .with_sign_encrypt(true)
        .build()?;
    ecc_signing_template(
        attributes,
        Digest::try_from(IDEVID_AUTH_POLICY_SHA256.as_slice())?,
        EccPoint::new(
            EccParameter::try_from(IDEVID_UNIQUE)?,
            EccParameter::try_from(IDEVID_UNIQUE)?,
        ),
    )
}

/// The IAK template of the TCG DevID specification (SPEC §8.2), P-256: as the IDevID's but
/// restricted (it signs only structures the TPM makes: TPM2_Certify, TPM2_Quote), authPolicy
/// [`IAK_AUTH_POLICY_SHA256`], unique "IAK".
pub(crate) fn iak_p256_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(true)
        .with_restricted(true)
        .with_sign_encrypt(true)
        .build()?;
    ecc_signing_template(
        attributes,
        Digest::try_from(IAK_AUTH_POLICY_SHA256.as_slice())?,
        EccPoint::new(
            EccParameter::try_from(IAK_UNIQUE)?,
            EccParameter::try_from(IAK_UNIQUE)?,
        ),
    )
}

/// The LDevID template: ECC NIST P-256, nameAlg SHA-256, scheme ECDSA-SHA256, fixedTPM,
/// fixedParent, sensitiveDataOrigin, userWithAuth, noDA, sign; not restricted, not decrypt;
/// empty authPolicy; unique.x = "LDEVID" ‖ handle (4 octets, big-endian), unique.y = `nonce`.
///
/// The key is a primary of the Owner hierarchy. The random `nonce` makes every creation a
/// fresh key, so renewing into a slot used before does not bring an old key back. noDA is set
/// because the authValue is empty: dictionary-attack protection guards nothing here, and a
/// lockout caused by another application would otherwise cut the device off its domain.
pub(crate) fn ldevid_template(handle: u32, nonce: &[u8]) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_sign_encrypt(true)
        .build()?;
    let mut x = LDEVID_UNIQUE.to_vec();
    x.extend_from_slice(&handle.to_be_bytes());
    ecc_signing_template(
        attributes,
        Digest::default(),
        EccPoint::new(EccParameter::try_from(x)?, EccParameter::try_from(nonce)?),
    )
}

fn ecc_signing_template(
    attributes: tss_esapi::attributes::ObjectAttributes,
    auth_policy: Digest,
    unique: EccPoint,
) -> tss_esapi::Result<Public> {
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(auth_policy)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new()
                .with_symmetric(SymmetricDefinitionObject::Null)
                .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
                .with_curve(EccCurve::NistP256)
                .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                .with_is_signing_key(true)
                .with_is_decryption_key(false)
                .with_restricted(attributes.restricted())
                .build()?,
        )
        .with_ecc_unique_identifier(unique)
        .build()
}

/// Why a public area cannot back a [`crate::keys::Signer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyProblem {
    /// An ECC key on a curve this crate does not sign with.
    Curve(String),
    /// Not an unrestricted ECDSA signing key, or a malformed point.
    Unusable(String),
}

/// The signature algorithm and SPKI of a TPM public area, if it is an unrestricted ECC signing
/// key on P-256 or P-384 whose scheme is ECDSA with the curve's hash, or left open (TPM_ALG_NULL).
pub(crate) fn signing_key_info(
    public: &Public,
) -> Result<(SignatureAlgorithm, Vec<u8>), KeyProblem> {
    let Public::Ecc {
        object_attributes,
        parameters,
        unique,
        ..
    } = public
    else {
        return Err(KeyProblem::Unusable("not an ECC key".into()));
    };
    if !object_attributes.sign_encrypt() {
        return Err(KeyProblem::Unusable("the sign attribute is clear".into()));
    }
    if object_attributes.decrypt() {
        return Err(KeyProblem::Unusable("a decryption key".into()));
    }
    if object_attributes.restricted() {
        return Err(KeyProblem::Unusable(
            "a restricted key (it signs only TPM-made structures)".into(),
        ));
    }
    let (alg, hash) = match parameters.ecc_curve() {
        EccCurve::NistP256 => (
            SignatureAlgorithm::EcdsaP256Sha256,
            HashingAlgorithm::Sha256,
        ),
        EccCurve::NistP384 => (
            SignatureAlgorithm::EcdsaP384Sha384,
            HashingAlgorithm::Sha384,
        ),
        other => return Err(KeyProblem::Curve(format!("ECC curve {other:?}"))),
    };
    match parameters.ecc_scheme() {
        EccScheme::Null => {}
        EccScheme::EcDsa(h) if h.hashing_algorithm() == hash => {}
        other => {
            return Err(KeyProblem::Unusable(format!(
                "signing scheme {other:?}, expected ECDSA with {hash:?}"
            )));
        }
    }
    let spki = ecc_spki(alg, unique.x().value(), unique.y().value())
        .map_err(|e| KeyProblem::Unusable(format!("public point: {e}")))?;
    Ok((alg, spki))
}

/// The hash the TPM is told to sign with for `alg`.
pub(crate) fn hashing_algorithm(alg: SignatureAlgorithm) -> Option<HashingAlgorithm> {
    match alg {
        SignatureAlgorithm::EcdsaP256Sha256 => Some(HashingAlgorithm::Sha256),
        SignatureAlgorithm::EcdsaP384Sha384 => Some(HashingAlgorithm::Sha384),
        SignatureAlgorithm::Ed25519 => None,
    }
}

/// DER `SubjectPublicKeyInfo` of the ECC point (`x`, `y`) for `alg`: id-ecPublicKey with the
/// namedCurve parameter and the uncompressed point `04 ‖ x ‖ y` (RFC 5480 §2.1.1, §2.2; SEC 1
/// §2.3.3). Coordinates shorter than the field are left-padded with zeros (TPM2B values may
/// drop leading zero octets); longer ones are rejected.
pub(crate) fn ecc_spki(alg: SignatureAlgorithm, x: &[u8], y: &[u8]) -> Result<Vec<u8>, String> {
    let (curve, len): (ObjectIdentifier, usize) = match alg {
        SignatureAlgorithm::EcdsaP256Sha256 => (rfc5912::SECP_256_R_1, 32),
        SignatureAlgorithm::EcdsaP384Sha384 => (rfc5912::SECP_384_R_1, 48),
        SignatureAlgorithm::Ed25519 => return Err("not an ECDSA algorithm".into()),
    };
    if x.is_empty() || y.is_empty() {
        return Err("empty coordinate".into());
    }
    if x.len() > len || y.len() > len {
        return Err(format!("coordinate longer than {len} octets"));
    }
    let mut point = vec![0u8; 1 + 2 * len];
    point[0] = 0x04;
    point[1 + len - x.len()..1 + len].copy_from_slice(x);
    point[1 + 2 * len - y.len()..].copy_from_slice(y);
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&curve).map_err(|e| e.to_string())?),
        },
        subject_public_key: BitString::from_bytes(&point).map_err(|e| e.to_string())?,
    };
    spki.to_der().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc5480_2_spki_of_a_p256_point() {
        let x = [0x11u8; 32];
        let y = [0x22u8; 32];
        let der = ecc_spki(SignatureAlgorithm::EcdsaP256Sha256, &x, &y).expect("spki");
        // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 04‖x‖y }
        let head = hex::decode(
            "3059301306072a8648ce3d020106082a8648ce3d030107034200\
             04",
        )
        .expect("hex");
        assert_eq!(&der[..head.len()], head.as_slice());
        assert_eq!(&der[head.len()..head.len() + 32], &x);
        assert_eq!(&der[head.len() + 32..], &y);
    }

    #[test]
    fn short_coordinates_are_left_padded() {
        let der = ecc_spki(SignatureAlgorithm::EcdsaP384Sha384, &[1], &[2, 3]).expect("spki");
        let point = &der[der.len() - 97..];
        assert_eq!(point[0], 4);
        assert!(point[1..48].iter().all(|b| *b == 0));
        assert_eq!(point[48], 1);
        assert!(point[49..95].iter().all(|b| *b == 0));
        assert_eq!(&point[95..], &[2, 3]);
    }

    #[test]
    fn long_or_empty_coordinates_are_rejected() {
        let alg = SignatureAlgorithm::EcdsaP256Sha256;
        assert!(ecc_spki(alg, &[1; 33], &[1; 32]).is_err());
        assert!(ecc_spki(alg, &[1; 32], &[]).is_err());
        assert!(ecc_spki(SignatureAlgorithm::Ed25519, &[1; 32], &[1; 32]).is_err());
    }

    #[test]
    fn tcg_devid_template_h2_idevid() {
        let t = idevid_p256_template().expect("template");
        let Public::Ecc {
            object_attributes: a,
            auth_policy,
            parameters,
            unique,
            name_hashing_algorithm,
        } = t
        else {
            panic!("not ECC")
        };
        assert!(a.fixed_tpm() && a.fixed_parent() && a.sensitive_data_origin());
        assert!(a.user_with_auth() && a.admin_with_policy() && a.sign_encrypt());
        assert!(!a.restricted() && !a.decrypt() && !a.no_da());
        assert_eq!(auth_policy.value(), IDEVID_AUTH_POLICY_SHA256);
        assert_eq!(name_hashing_algorithm, HashingAlgorithm::Sha256);
        assert_eq!(parameters.ecc_curve(), EccCurve::NistP256);
        assert_eq!(unique.x().value(), b"IDEVID");
        assert_eq!(unique.y().value(), b"IDEVID");
    }

    fn sha256(parts: &[&[u8]]) -> Vec<u8> {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for p in parts {
            ctx.update(p);
        }
        ctx.finish().as_ref().to_vec()
    }

    /// TPM 2.0 Part 3 §23.11 (PolicyCommandCode: H(old ‖ TPM_CC_PolicyCommandCode ‖ code)) and
    /// §23.6 (PolicyOR: H(0…0 ‖ TPM_CC_PolicyOR ‖ digests)).
    #[test]
    fn idevid_auth_policy_is_the_tcg_policy_or_certify() {
        let certify = sha256(&[&[0; 32], &0x16Cu32.to_be_bytes(), &0x148u32.to_be_bytes()]);
        assert_eq!(certify, CERTIFY_POLICY_SHA256);
        let or = sha256(&[
            &[0; 32],
            &0x171u32.to_be_bytes(),
            &TCG_IDEVID_AUTH_POLICY_SHA256,
            &CERTIFY_POLICY_SHA256,
        ]);
        assert_eq!(or, IDEVID_AUTH_POLICY_SHA256);
    }

    #[test]
    fn tcg_devid_iak_template_is_restricted_signing() {
        let t = iak_p256_template().expect("template");
        let Public::Ecc {
            object_attributes: a,
            auth_policy,
            parameters,
            unique,
            ..
        } = &t
        else {
            panic!("not ECC")
        };
        assert!(a.fixed_tpm() && a.fixed_parent() && a.sensitive_data_origin());
        assert!(a.user_with_auth() && a.admin_with_policy() && a.sign_encrypt());
        assert!(a.restricted() && !a.decrypt());
        assert_eq!(parameters.ecc_curve(), EccCurve::NistP256);
        assert_eq!(auth_policy.value(), IAK_AUTH_POLICY_SHA256);
        assert_eq!(unique.x().value(), b"IAK");
        assert!(matches!(
            signing_key_info(&t),
            Err(KeyProblem::Unusable(r)) if r.contains("restricted")
        ));
    }

    #[test]
    fn ldevid_template_is_unrestricted_nda_signing() {
        let t = ldevid_template(0x8102_0001, &[7; 16]).expect("template");
        let Public::Ecc {
            object_attributes: a,
            auth_policy,
            unique,
            ..
        } = t
        else {
            panic!("not ECC")
        };
        assert!(a.sign_encrypt() && a.no_da() && a.fixed_tpm() && a.user_with_auth());
        assert!(!a.restricted() && !a.decrypt() && !a.admin_with_policy());
        assert!(auth_policy.value().is_empty());
        assert_eq!(unique.x().value(), b"LDEVID\x81\x02\x00\x01");
        assert_eq!(unique.y().value(), &[7; 16]);
    }

    #[test]
    fn templates_are_usable_signing_keys_and_restricted_ones_are_not() {
        let t = idevid_p256_template().expect("template");
        // The template's unique is not a curve point, but the shape checks pass.
        assert_eq!(
            signing_key_info(&t).map(|(alg, _)| alg),
            Ok(SignatureAlgorithm::EcdsaP256Sha256)
        );
        let restricted = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(
                ObjectAttributesBuilder::new()
                    .with_sign_encrypt(true)
                    .with_restricted(true)
                    .build()
                    .expect("attrs"),
            )
            .with_ecc_parameters(
                PublicEccParametersBuilder::new()
                    .with_symmetric(SymmetricDefinitionObject::Null)
                    .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
                    .with_curve(EccCurve::NistP256)
                    .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                    .with_is_signing_key(true)
                    .with_restricted(true)
                    .build()
                    .expect("params"),
            )
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
            .expect("public");
        assert!(matches!(
            signing_key_info(&restricted),
            Err(KeyProblem::Unusable(r)) if r.contains("restricted")
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_coordinates_give_a_parsable_spki_or_an_error(
            x in proptest::collection::vec(any::<u8>(), 0..80),
            y in proptest::collection::vec(any::<u8>(), 0..80),
            p384 in any::<bool>(),
        ) {
            let (alg, len) = if p384 {
                (SignatureAlgorithm::EcdsaP384Sha384, 48)
            } else {
                (SignatureAlgorithm::EcdsaP256Sha256, 32)
            };
            match ecc_spki(alg, &x, &y) {
                Ok(der) => {
                    prop_assert!(!x.is_empty() && !y.is_empty() && x.len() <= len && y.len() <= len);
                    use der::Decode;
                    let spki = SubjectPublicKeyInfoOwned::from_der(&der).expect("reparse");
                    prop_assert_eq!(spki.subject_public_key.raw_bytes().len(), 1 + 2 * len);
                }
                Err(_) => prop_assert!(x.is_empty() || y.is_empty() || x.len() > len || y.len() > len),
            }
        }
    }
}
