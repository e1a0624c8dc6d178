//! Object identifiers used by BRSKI that are not in `const_oid::db`.

use const_oid::ObjectIdentifier as Oid;

/// id-kp-cmcRA: the registrar's EKU, checked by the MASA (RFC 6402 §2.10, RFC 8995 §5.5.4).
pub const ID_KP_CMC_RA: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.28");
/// id-kp-serverAuth (RFC 5280 §4.2.1.12).
pub const ID_KP_SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
/// id-kp-clientAuth (RFC 5280 §4.2.1.12).
pub const ID_KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
/// id-pe-masa-url: the MASA URL extension of an IDevID (RFC 8995 §2.3.2).
pub const ID_PE_MASA_URL: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.32");
/// id-ct-animaJSONVoucher: eContentType of CMS vouchers (RFC 8366bis §7.1).
pub const ID_CT_ANIMA_JSON_VOUCHER: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.40");
/// id-data: the eContentType every published example uses instead (RFC 5652 §4).
pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
/// id-signedData (RFC 5652 §5.1).
pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// id-on-hardwareModuleName: otherName of the 802.1AR SAN (RFC 4108 §5).
pub const ID_ON_HARDWARE_MODULE_NAME: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.8.4");
/// id-on-AcpNodeName, the ACP node name otherName (RFC 8994 §6.2.2).
pub const ID_ON_ACP_NODE_NAME: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.8.10");
/// TCG hwType for a TPM 2.0 (TCG EK Credential Profile; SPEC 8.2).
pub const TCG_TPM2_HW_TYPE: Oid = Oid::new_unwrap("2.23.133.1.2");
/// tcg-cap-verifiedTPMResidency: the key was verified to be in a TPM (TCG "TPM 2.0 Keys for
/// Device Identity and Attestation", certificate policies; SPEC §8.2).
pub const TCG_CAP_VERIFIED_TPM_RESIDENCY: Oid = Oid::new_unwrap("2.23.133.11.1.1");
/// tcg-cap-verifiedTPMFixed: the key was verified to be fixedTPM (SPEC §8.2).
pub const TCG_CAP_VERIFIED_TPM_FIXED: Oid = Oid::new_unwrap("2.23.133.11.1.2");
/// tcg-cap-verifiedTPMRestricted: the key was verified to be a restricted TPM key, the IAK's
/// policy (SPEC §8.2).
pub const TCG_CAP_VERIFIED_TPM_RESTRICTED: Oid = Oid::new_unwrap("2.23.133.11.1.3");
/// challengePassword (RFC 2985 §5.4.1), used in CsrAttrs to ask for tls-unique PoP (RFC 7030 §3.5).
pub const CHALLENGE_PASSWORD: Oid = Oid::new_unwrap("1.2.840.113549.1.9.7");
/// extensionRequest (RFC 2985 §5.4.2).
pub const EXTENSION_REQUEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.14");
/// id-aa-attestation (draft-ietf-lamps-csr-attestation §4.3).
pub const ID_AA_ATTESTATION: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.59");
/// tcg-attest-tpm-certify: a TPM2_Certify statement in an AttestationBundle (TCG arc
/// tcg-attest 2.23.133.20; TPM appendix of draft-ietf-lamps-csr-attestation ≤ -21).
pub const TCG_ATTEST_TPM_CERTIFY: Oid = Oid::new_unwrap("2.23.133.20.1");
/// This project's private arc: the UUID OID `2.25.99194508980389381633711711611798982350`
/// (UUID 4aa02ae2-5b07-4b19-9be1-cf7eab308ece; ITU-T X.667 lets anyone name things under a
/// fresh UUID without registration). Its arcs exceed `const_oid`'s 32 bits, so OIDs under it
/// are given as DER content octets (`est::RawOid`).
pub const BRSKI_SUITE_ARC: &str = "2.25.99194508980389381633711711611798982350";
/// `{ BRSKI_SUITE_ARC 1 }`: this suite's TPM2_Quote statement (`attest::TpmQuoteStatement`),
/// as DER content octets; no TCG or IETF document defines one.
pub const TPM_QUOTE_STATEMENT: &[u8] = &[
    0x69, 0x81, 0x95, 0xa0, 0x95, 0xb8, 0xcb, 0xb0, 0xba, 0xac, 0xb3, 0x9b, 0xf0, 0xf3, 0xef, 0xea,
    0xd9, 0xc2, 0x9d, 0x4e, 0x01,
];
