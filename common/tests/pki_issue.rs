//! Issuing the suite's certificates (RFC 5280 §4, RFC 8995 §2.3, IEEE 802.1AR profile) and
//! checking them with our chain validation and, independently, with `openssl verify`.
//!
//! The OpenSSL checks FAIL when `openssl` is not installed: CI installs it.

use brski_common::keys::{KeyError, SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::oid::{
    ID_KP_CLIENT_AUTH, ID_KP_CMC_RA, ID_KP_SERVER_AUTH, ID_PE_MASA_URL, TCG_TPM2_HW_TYPE,
};
use brski_common::pki::chain::extension;
use brski_common::pki::ext::{key_identifier, subject_key_identifier};
use brski_common::pki::issue::random_serial;
use brski_common::pki::profile;
use brski_common::pki::{
    CertificateParams, NameError, NotAfter, PkiError, TimeCheck, TrustPolicy, domain_id,
    hardware_module_name, has_eku, idevid_issuer, issue, masa_url, name_from_parts, parse_name,
    self_signed, serial_number, validate_chain,
};
use const_oid::AssociatedOid;
use const_oid::db::rfc4519;
use der::asn1::OctetString;
use der::{Decode, Encode, Tag, Tagged};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::time::Time;

const MASA_URL: &str = "masa.example.com:9443";
const HW_SERIAL: &[u8] = &[0x01, 0x02, 0x03, 0x04];

fn key(alg: SignatureAlgorithm) -> SoftwareKey {
    SoftwareKey::generate(alg).expect("key generation")
}

fn name(s: &str) -> x509_cert::name::Name {
    parse_name(s).expect("name")
}

/// The certificates of one deployment: manufacturer side and owner side.
struct Suite {
    vendor_ca: Certificate,
    masa_signer: Certificate,
    idevid: Certificate,
    masa_tls: Certificate,
    domain_ca: Certificate,
    registrar: Certificate,
    ldevid: Certificate,
}

fn build_suite(ca_alg: SignatureAlgorithm, leaf_alg: SignatureAlgorithm) -> Suite {
    let vendor_key = key(ca_alg);
    let vendor_ca = self_signed(
        &profile::vendor_ca(name("CN=Vendor CA,O=Vendor")).expect("params"),
        &vendor_key,
    )
    .expect("vendor CA");
    let leaf = |params: CertificateParams, ca: &Certificate, ca_key: &SoftwareKey| {
        let k = key(leaf_alg);
        issue(&params, k.public_key_spki(), Some(ca), ca_key).expect("issue")
    };
    let masa_signer = leaf(
        profile::masa_voucher_signer(name("CN=MASA voucher signer,O=Vendor")).expect("params"),
        &vendor_ca,
        &vendor_key,
    );
    let idevid = leaf(
        profile::idevid(
            "JADA-0001",
            Some(MASA_URL),
            Some((TCG_TPM2_HW_TYPE, HW_SERIAL)),
        )
        .expect("params"),
        &vendor_ca,
        &vendor_key,
    );
    let masa_tls = leaf(
        profile::tls_server(&["masa.example.com"], &[IpAddr::V6(Ipv6Addr::LOCALHOST)])
            .expect("params"),
        &vendor_ca,
        &vendor_key,
    );
    let domain_key = key(ca_alg);
    let domain_ca = self_signed(
        &profile::domain_ca(name("CN=Domain CA,O=Owner")).expect("params"),
        &domain_key,
    )
    .expect("domain CA");
    let registrar = leaf(
        profile::registrar(
            name("CN=registrar.owner.example,O=Owner"),
            &["registrar.owner.example"],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )
        .expect("params"),
        &domain_ca,
        &domain_key,
    );
    let ldevid = leaf(
        profile::ldevid(name("CN=JADA-0001,O=Owner")).expect("params"),
        &domain_ca,
        &domain_key,
    );
    Suite {
        vendor_ca,
        masa_signer,
        idevid,
        masa_tls,
        domain_ca,
        registrar,
        ldevid,
    }
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("`openssl` must be installed to run this test (CI installs it)")
}

fn write_pem(dir: &Path, file: &str, cert: &Certificate) -> String {
    let der = cert.to_der().expect("der");
    let path = dir.join(file);
    std::fs::write(&path, brski_common::input::to_pem("CERTIFICATE", &der)).expect("write");
    path.to_str().expect("utf-8 path").to_string()
}

/// `openssl verify -x509_strict [-purpose P] -CAfile ca cert` must print `cert: OK`.
fn assert_openssl_verifies(
    dir: &Path,
    ca: &Certificate,
    cert: &Certificate,
    file: &str,
    purpose: &str,
) {
    let ca_path = write_pem(dir, "ca.pem", ca);
    let cert_path = write_pem(dir, file, cert);
    let out = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        purpose,
        "-CAfile",
        &ca_path,
        &cert_path,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("{cert_path}: OK")),
        "openssl verify {file} (purpose {purpose}): {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_chain(ca: &Certificate, cert: &Certificate, eku: Option<const_oid::ObjectIdentifier>) {
    let mut policy = TrustPolicy::new(vec![ca.clone()]).with_time(TimeCheck::Now);
    if let Some(eku) = eku {
        policy = policy.with_required_eku(eku);
    }
    let path = validate_chain(cert, &[], &policy).expect("chain validates");
    assert_eq!(path.len(), 2);
    assert_eq!(path[1], ca);
}

fn check_suite(ca_alg: SignatureAlgorithm, leaf_alg: SignatureAlgorithm) {
    let s = build_suite(ca_alg, leaf_alg);
    assert_chain(&s.vendor_ca, &s.masa_signer, None);
    assert_chain(&s.vendor_ca, &s.idevid, None);
    assert_chain(&s.vendor_ca, &s.masa_tls, Some(ID_KP_SERVER_AUTH));
    assert_chain(&s.domain_ca, &s.registrar, Some(ID_KP_CMC_RA));
    assert_chain(&s.domain_ca, &s.ldevid, Some(ID_KP_CLIENT_AUTH));
    // The roots validate as their own anchors.
    for root in [&s.vendor_ca, &s.domain_ca] {
        let policy = TrustPolicy::new(vec![root.clone()]).with_time(TimeCheck::Now);
        let path = validate_chain(root, &[], &policy).expect("root");
        assert_eq!(path.len(), 1);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert_openssl_verifies(d, &s.vendor_ca, &s.vendor_ca, "vendor-ca.pem", "any");
    assert_openssl_verifies(d, &s.vendor_ca, &s.masa_signer, "masa.pem", "any");
    assert_openssl_verifies(d, &s.vendor_ca, &s.idevid, "idevid.pem", "any");
    assert_openssl_verifies(d, &s.vendor_ca, &s.masa_tls, "masa-tls.pem", "sslserver");
    assert_openssl_verifies(d, &s.domain_ca, &s.registrar, "registrar.pem", "sslserver");
    assert_openssl_verifies(d, &s.domain_ca, &s.registrar, "registrar.pem", "sslclient");
    assert_openssl_verifies(d, &s.domain_ca, &s.ldevid, "ldevid.pem", "sslclient");

    // ...and refuses a certificate under the wrong anchor, so the checks above can fail.
    let wrong_ca = write_pem(d, "wrong-ca.pem", &s.domain_ca);
    let idevid_path = write_pem(d, "idevid.pem", &s.idevid);
    let out = openssl(&["verify", "-CAfile", &wrong_ca, &idevid_path]);
    assert!(
        !out.status.success(),
        "IDevID must not verify under the domain CA"
    );

    // OpenSSL shows the MASA URL extension and the subject serialNumber of the IDevID.
    let out = openssl(&["x509", "-noout", "-text", "-in", &idevid_path]);
    assert!(out.status.success(), "openssl x509 failed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1.3.6.1.5.5.7.1.32"), "{text}");
    assert!(text.contains(MASA_URL), "{text}");
    assert!(text.contains("serialNumber = JADA-0001"), "{text}");
    assert!(
        text.contains("Not After : Dec 31 23:59:59 9999 GMT"),
        "{text}"
    );
}

#[test]
fn rfc8995_suite_hierarchy_p256_validates_and_openssl_agrees() {
    check_suite(
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureAlgorithm::EcdsaP256Sha256,
    );
}

#[test]
fn rfc8995_suite_hierarchy_p384_validates_and_openssl_agrees() {
    check_suite(
        SignatureAlgorithm::EcdsaP384Sha384,
        SignatureAlgorithm::EcdsaP384Sha384,
    );
}

#[test]
fn rfc8995_suite_hierarchy_ed25519_leaves_validate_and_openssl_agrees() {
    check_suite(
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureAlgorithm::Ed25519,
    );
}

#[test]
fn rfc8410_ed25519_ca_issues_and_validates() {
    let ca_key = key(SignatureAlgorithm::Ed25519);
    let ca = self_signed(
        &profile::vendor_ca(name("CN=Ed CA")).expect("params"),
        &ca_key,
    )
    .expect("ca");
    assert_eq!(
        ca.signature_algorithm().oid,
        SignatureAlgorithm::Ed25519.oid()
    );
    let leaf_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let leaf = issue(
        &profile::idevid("ED-1", None, None).expect("params"),
        leaf_key.public_key_spki(),
        Some(&ca),
        &ca_key,
    )
    .expect("leaf");
    assert_chain(&ca, &leaf, None);
    let dir = tempfile::tempdir().expect("tempdir");
    assert_openssl_verifies(dir.path(), &ca, &leaf, "leaf.pem", "any");
}

fn ext(cert: &Certificate, oid: const_oid::ObjectIdentifier) -> Option<&Extension> {
    cert.tbs_certificate()
        .extensions()
        .and_then(|e| e.iter().find(|x| x.extn_id == oid))
}

#[test]
fn ieee8021ar_idevid_profile_fields() {
    let s = build_suite(
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureAlgorithm::EcdsaP256Sha256,
    );
    let tbs = s.idevid.tbs_certificate();
    assert_eq!(tbs.version(), x509_cert::Version::V3);
    // serialNumber attribute as PrintableString (RFC 8995 §2.3.1).
    let atv = tbs
        .subject()
        .iter()
        .find(|a| a.oid == rfc4519::SERIAL_NUMBER)
        .expect("serialNumber");
    assert_eq!(atv.value.tag(), Tag::PrintableString);
    assert_eq!(serial_number(&s.idevid).as_deref(), Some("JADA-0001"));
    // AKI MUST, SKI not present (802.1AR), AKI = the vendor CA's SKI.
    assert!(ext(&s.idevid, SubjectKeyIdentifier::OID).is_none());
    let aki = extension::<AuthorityKeyIdentifier>(&s.idevid)
        .expect("aki decodes")
        .expect("aki present");
    let ca_ski = subject_key_identifier(&s.vendor_ca)
        .expect("ski")
        .expect("CA has SKI");
    assert_eq!(
        aki.key_identifier.expect("keyIdentifier").as_bytes(),
        &ca_ski[..]
    );
    // idevid-issuer = the AKI extnValue: 04 18 30 16 80 14 <CA SKI> (RFC 8366bis §6.1).
    let mut expected = vec![0x04, 0x18, 0x30, 0x16, 0x80, 0x14];
    expected.extend_from_slice(&ca_ski);
    assert_eq!(idevid_issuer(&s.idevid), expected);
    // keyUsage digitalSignature only, critical; no basicConstraints.
    let ku_ext = ext(&s.idevid, KeyUsage::OID).expect("keyUsage");
    assert!(ku_ext.critical);
    let ku = KeyUsage::from_der(ku_ext.extn_value.as_bytes()).expect("ku");
    assert_eq!(ku, KeyUsage(KeyUsages::DigitalSignature.into()));
    assert!(ext(&s.idevid, BasicConstraints::OID).is_none());
    // MASA URL: non-critical IA5String.
    let url_ext = ext(&s.idevid, ID_PE_MASA_URL).expect("masa url");
    assert!(!url_ext.critical);
    assert_eq!(url_ext.extn_value.as_bytes()[0], 0x16, "IA5String tag");
    assert_eq!(
        masa_url(&s.idevid).expect("masa url"),
        Some(MASA_URL.into())
    );
    // HardwareModuleName in the SAN (RFC 4108), SAN non-critical since the subject is set.
    assert!(!ext(&s.idevid, SubjectAltName::OID).expect("san").critical);
    let hmn = hardware_module_name(&s.idevid)
        .expect("hmn decodes")
        .expect("hmn present");
    assert_eq!(hmn.hw_type, TCG_TPM2_HW_TYPE);
    assert_eq!(hmn.hw_serial_num.as_bytes(), HW_SERIAL);
    // notAfter 99991231235959Z as GeneralizedTime (RFC 8995 §2.6.2).
    let not_after = tbs.validity().not_after;
    assert!(matches!(not_after, Time::GeneralTime(_)));
    assert_eq!(not_after.to_string(), "9999-12-31T23:59:59Z");
    // 16-octet positive serial.
    let serial = tbs.serial_number().as_bytes();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] & 0x80 == 0 && serial[0] != 0);
}

#[test]
fn rfc8995_2_3_1_serial_outside_printable_string_is_utf8() {
    let params = profile::idevid("serial_ü", None, None).expect("params");
    let atv = params.subject.iter().next().expect("attr");
    assert_eq!(atv.value.tag(), Tag::Utf8String);
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let ca = self_signed(&profile::vendor_ca(name("CN=CA")).expect("params"), &k).expect("ca");
    let leaf_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let cert = issue(&params, leaf_key.public_key_spki(), Some(&ca), &k).expect("issue");
    assert_eq!(serial_number(&cert).as_deref(), Some("serial_ü"));
    assert_eq!(masa_url(&cert).expect("no ext"), None);
    assert_eq!(hardware_module_name(&cert).expect("no san"), None);
}

#[test]
fn rfc5280_4_2_1_2_ski_is_sha1_of_subject_public_key() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let ca = self_signed(&profile::domain_ca(name("CN=CA")).expect("params"), &k).expect("ca");
    let spki = spki::SubjectPublicKeyInfoRef::from_der(k.public_key_spki()).expect("spki");
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        spki.subject_public_key.raw_bytes(),
    );
    assert_eq!(
        subject_key_identifier(&ca).expect("ski"),
        Some(digest.as_ref().to_vec())
    );
    // Self-signed: no AKI (RFC 5280 §4.2.1.1 allows omitting it).
    assert!(ext(&ca, AuthorityKeyIdentifier::OID).is_none());
    // The domain CA's domainID is its SKI (RFC 8995 §5.8.2).
    assert_eq!(domain_id(&ca).expect("domain id"), digest.as_ref());
}

#[test]
fn rfc5280_4_2_1_1_aki_falls_back_to_sha1_of_issuer_key() {
    let k = key(SignatureAlgorithm::EcdsaP384Sha384);
    let mut params = profile::vendor_ca(name("CN=CA without SKI")).expect("params");
    params.subject_key_identifier = false;
    let ca = self_signed(&params, &k).expect("ca");
    assert!(ext(&ca, SubjectKeyIdentifier::OID).is_none());
    let leaf_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let leaf = issue(
        &profile::masa_voucher_signer(name("CN=MASA")).expect("params"),
        leaf_key.public_key_spki(),
        Some(&ca),
        &k,
    )
    .expect("leaf");
    let aki = extension::<AuthorityKeyIdentifier>(&leaf)
        .expect("aki")
        .expect("present");
    let expected = key_identifier(ca.tbs_certificate().subject_public_key_info());
    assert_eq!(
        aki.key_identifier.expect("key id").as_bytes(),
        &expected[..]
    );
    assert_chain(&ca, &leaf, None);
}

#[test]
fn rfc8995_5_5_4_registrar_profile() {
    let s = build_suite(
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureAlgorithm::EcdsaP256Sha256,
    );
    let eku = extension::<ExtendedKeyUsage>(&s.registrar)
        .expect("eku")
        .expect("present");
    assert_eq!(
        eku.0,
        vec![ID_KP_CMC_RA, ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH]
    );
    assert!(has_eku(&s.registrar, ID_KP_CMC_RA));
    assert!(!has_eku(&s.ldevid, ID_KP_CMC_RA));
    assert!(has_eku(&s.ldevid, ID_KP_CLIENT_AUTH));
    assert!(!has_eku(&s.masa_signer, ID_KP_CLIENT_AUTH));
    let san = extension::<SubjectAltName>(&s.registrar)
        .expect("san")
        .expect("present");
    assert_eq!(san.0.len(), 2);
    assert!(
        matches!(&san.0[0], GeneralName::DnsName(d) if d.as_str() == "registrar.owner.example")
    );
    assert!(matches!(&san.0[1], GeneralName::IpAddress(ip) if ip.as_bytes() == [127, 0, 0, 1]));
    // SKI present, so the domainID is the SKI (RFC 8995 §5.8.2).
    let ski = subject_key_identifier(&s.registrar)
        .expect("ski")
        .expect("present");
    assert_eq!(domain_id(&s.registrar).expect("domain id"), ski);
    // basicConstraints cA FALSE, critical.
    let bc = ext(&s.registrar, BasicConstraints::OID).expect("bc");
    assert!(bc.critical);
    assert!(
        !BasicConstraints::from_der(bc.extn_value.as_bytes())
            .expect("bc")
            .ca
    );
}

#[test]
fn rfc6125_tls_server_profile() {
    let params =
        profile::tls_server(&["masa.example.com", "alt.example.com"], &[]).expect("params");
    assert_eq!(params.subject.to_string(), "CN=masa.example.com");
    assert_eq!(params.extended_key_usage, vec![ID_KP_SERVER_AUTH]);
    assert_eq!(params.subject_alt_names.len(), 2);
    let by_ip =
        profile::tls_server(&[], &[IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]).expect("params");
    assert_eq!(by_ip.subject.to_string(), "CN=192.0.2.1");
    assert!(matches!(
        profile::tls_server(&[], &[]),
        Err(PkiError::InvalidField {
            field: "subjectAltName",
            ..
        })
    ));
    assert!(matches!(
        profile::tls_server(&["bad name"], &[]),
        Err(PkiError::InvalidField {
            field: "dNSName",
            ..
        })
    ));
}

#[test]
fn rfc5280_4_1_2_5_utctime_through_2049_generalizedtime_from_2050() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let mut params = profile::vendor_ca(name("CN=CA")).expect("params");
    params.not_after = NotAfter::At(time::macros::datetime!(2049-12-31 23:59:59 UTC));
    let cert = self_signed(&params, &k).expect("2049");
    assert!(matches!(
        cert.tbs_certificate().validity().not_after,
        Time::UtcTime(_)
    ));
    params.not_after = NotAfter::At(time::macros::datetime!(2050-01-01 00:00:00 UTC));
    let cert = self_signed(&params, &k).expect("2050");
    assert!(matches!(
        cert.tbs_certificate().validity().not_after,
        Time::GeneralTime(_)
    ));
}

#[test]
fn rfc5280_4_2_1_6_empty_subject_needs_critical_san() {
    let ca_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let ca = self_signed(&profile::domain_ca(name("CN=CA")).expect("params"), &ca_key).expect("ca");
    let leaf_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let mut params = profile::ldevid(x509_cert::name::Name::default()).expect("params");
    let err = issue(&params, leaf_key.public_key_spki(), Some(&ca), &ca_key)
        .expect_err("empty subject without SAN");
    assert!(matches!(err, PkiError::EmptySubject), "{err:?}");
    params.subject_alt_names = profile::alt_names(&["pledge.example"], &[]).expect("alt names");
    let cert = issue(&params, leaf_key.public_key_spki(), Some(&ca), &ca_key).expect("issue");
    assert!(ext(&cert, SubjectAltName::OID).expect("san").critical);
    assert_chain(&ca, &cert, None);

    let mut ca_params = profile::domain_ca(x509_cert::name::Name::default()).expect("params");
    ca_params.subject_alt_names = profile::alt_names(&["ca.example"], &[]).expect("alt");
    let err = self_signed(&ca_params, &ca_key).expect_err("CA with empty subject");
    assert!(matches!(err, PkiError::EmptySubject), "{err:?}");
}

// ---- rejection paths ---------------------------------------------------------------------

struct Fixture {
    ca_key: SoftwareKey,
    ca: Certificate,
    leaf_key: SoftwareKey,
}

fn fixture() -> Fixture {
    let ca_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let ca = self_signed(&profile::vendor_ca(name("CN=CA")).expect("params"), &ca_key).expect("ca");
    Fixture {
        ca_key,
        ca,
        leaf_key: key(SignatureAlgorithm::EcdsaP256Sha256),
    }
}

fn leaf_params() -> CertificateParams {
    profile::masa_voucher_signer(name("CN=leaf")).expect("params")
}

#[test]
fn rfc5280_issue_rejects_a_key_that_is_not_the_issuers() {
    let f = fixture();
    let err = issue(
        &leaf_params(),
        f.leaf_key.public_key_spki(),
        Some(&f.ca),
        &f.leaf_key,
    )
    .expect_err("wrong key");
    assert!(matches!(err, PkiError::IssuerKeyMismatch), "{err:?}");
    let err = issue(
        &leaf_params(),
        f.leaf_key.public_key_spki(),
        None,
        &f.ca_key,
    )
    .expect_err("self-signed with another key");
    assert!(matches!(err, PkiError::SelfSignedKeyMismatch), "{err:?}");
}

#[test]
fn rfc5280_4_2_1_9_issuer_must_be_a_ca() {
    let f = fixture();
    let ee = issue(
        &leaf_params(),
        f.leaf_key.public_key_spki(),
        Some(&f.ca),
        &f.ca_key,
    )
    .expect("ee");
    let other = key(SignatureAlgorithm::EcdsaP256Sha256);
    let err = issue(
        &leaf_params(),
        other.public_key_spki(),
        Some(&ee),
        &f.leaf_key,
    )
    .expect_err("EE as issuer");
    assert!(matches!(err, PkiError::IssuerNotCa), "{err:?}");
}

#[test]
fn rfc5280_4_2_1_3_issuer_needs_key_cert_sign() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let mut params = profile::vendor_ca(name("CN=CA")).expect("params");
    params.key_usage = Some(KeyUsage(KeyUsages::DigitalSignature.into()));
    let ca = self_signed(&params, &k).expect("odd CA");
    let leaf_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let err = issue(&leaf_params(), leaf_key.public_key_spki(), Some(&ca), &k)
        .expect_err("no keyCertSign");
    assert!(
        matches!(err, PkiError::IssuerCannotSignCertificates),
        "{err:?}"
    );
}

#[test]
fn rfc5280_4_2_1_9_path_len_zero_forbids_issuing_a_ca() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let mut params = profile::vendor_ca(name("CN=CA")).expect("params");
    params.basic_constraints = Some(BasicConstraints {
        ca: true,
        path_len_constraint: Some(0),
    });
    let ca = self_signed(&params, &k).expect("ca");
    let sub_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let err = issue(
        &profile::vendor_ca(name("CN=Sub CA")).expect("params"),
        sub_key.public_key_spki(),
        Some(&ca),
        &k,
    )
    .expect_err("pathLen 0");
    assert!(matches!(err, PkiError::PathLengthExceeded), "{err:?}");
    // An end entity is fine.
    let leaf = issue(&leaf_params(), sub_key.public_key_spki(), Some(&ca), &k).expect("ee");
    assert_chain(&ca, &leaf, None);
}

#[test]
fn rfc5280_issuer_with_malformed_basic_constraints_is_rejected() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let mut params = profile::vendor_ca(name("CN=CA")).expect("params");
    params.basic_constraints = None;
    params.extra_extensions.push(Extension {
        extn_id: BasicConstraints::OID,
        critical: true,
        extn_value: OctetString::new(vec![0x30, 0x03, 0x01, 0x01]).expect("octets"),
    });
    let ca = self_signed(&params, &k).expect("ca with broken bc");
    let leaf_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let err = issue(&leaf_params(), leaf_key.public_key_spki(), Some(&ca), &k)
        .expect_err("malformed issuer");
    assert!(matches!(err, PkiError::MalformedIssuer(_)), "{err:?}");
}

#[test]
fn rfc5280_4_1_2_5_validity_must_be_ordered_and_representable() {
    let f = fixture();
    let mut params = leaf_params();
    params.not_after = NotAfter::At(params.not_before - time::Duration::seconds(1));
    let err = issue(
        &params,
        f.leaf_key.public_key_spki(),
        Some(&f.ca),
        &f.ca_key,
    )
    .expect_err("inverted");
    assert!(matches!(err, PkiError::InvalidValidity(_)), "{err:?}");
    let mut params = leaf_params();
    params.not_before = time::macros::datetime!(1969-12-31 23:59:59 UTC);
    let err = issue(
        &params,
        f.leaf_key.public_key_spki(),
        Some(&f.ca),
        &f.ca_key,
    )
    .expect_err("before 1970");
    assert!(matches!(err, PkiError::InvalidValidity(_)), "{err:?}");
}

#[test]
fn rfc5280_4_1_2_2_serial_must_be_positive_and_short() {
    let f = fixture();
    for serial in [vec![], vec![0, 0], vec![1; 21]] {
        let mut params = leaf_params();
        params.serial = serial.clone();
        let err = issue(
            &params,
            f.leaf_key.public_key_spki(),
            Some(&f.ca),
            &f.ca_key,
        )
        .expect_err("bad serial");
        assert!(
            matches!(err, PkiError::InvalidSerial),
            "{serial:?}: {err:?}"
        );
    }
    // 20 octets with the top bit set would need 21: rejected too.
    let mut params = leaf_params();
    params.serial = vec![0x80; 20];
    let err = issue(
        &params,
        f.leaf_key.public_key_spki(),
        Some(&f.ca),
        &f.ca_key,
    )
    .expect_err("21 encoded octets");
    assert!(matches!(err, PkiError::InvalidSerial), "{err:?}");
    // Random serials differ.
    assert_ne!(random_serial().expect("r1"), random_serial().expect("r2"));
}

#[test]
fn rfc5280_4_2_duplicate_extensions_are_rejected() {
    let f = fixture();
    let mut params = leaf_params();
    params.extra_extensions.push(Extension {
        extn_id: KeyUsage::OID,
        critical: true,
        extn_value: OctetString::new(
            KeyUsage(KeyUsages::KeyAgreement.into())
                .to_der()
                .expect("ku"),
        )
        .expect("octets"),
    });
    let err = issue(
        &params,
        f.leaf_key.public_key_spki(),
        Some(&f.ca),
        &f.ca_key,
    )
    .expect_err("duplicate");
    assert!(matches!(err, PkiError::DuplicateExtension(oid) if oid == KeyUsage::OID));
}

#[test]
fn issue_rejects_a_malformed_subject_key() {
    let f = fixture();
    let err = issue(&leaf_params(), b"\x30\x03\x02\x01", Some(&f.ca), &f.ca_key)
        .expect_err("garbage spki");
    assert!(matches!(err, PkiError::MalformedSubjectKey(_)), "{err:?}");
}

#[test]
fn rfc8995_2_3_2_masa_url_must_be_visible_ascii() {
    assert!(matches!(
        profile::idevid("X1", Some("masa example.com"), None),
        Err(PkiError::InvalidField {
            field: "masa_url",
            ..
        })
    ));
    assert!(matches!(
        profile::idevid("X1", Some(""), None),
        Err(PkiError::InvalidField {
            field: "masa_url",
            ..
        })
    ));
    // Set directly on the parameters, the check still applies at issue time.
    let f = fixture();
    let mut params = profile::idevid("X1", None, None).expect("params");
    params.masa_url = Some("mäsa.example".into());
    let err = issue(
        &params,
        f.leaf_key.public_key_spki(),
        Some(&f.ca),
        &f.ca_key,
    )
    .expect_err("non-ascii");
    assert!(
        matches!(
            err,
            PkiError::InvalidField {
                field: "masa_url",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn idevid_requires_a_serial_number() {
    let err = profile::idevid("", None, None).expect_err("empty serial");
    assert!(
        matches!(err, PkiError::Name(NameError::InvalidValue { oid, .. }) if oid == rfc4519::SERIAL_NUMBER),
        "{err:?}"
    );
    assert!(name_from_parts(None, None, Some("")).is_err());
}

/// A signer whose key store fails, or which returns a signature over something else.
#[derive(Debug)]
struct BrokenSigner {
    key: SoftwareKey,
    fail: bool,
}

impl Signer for BrokenSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.key.algorithm()
    }
    fn public_key_spki(&self) -> &[u8] {
        self.key.public_key_spki()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        if self.fail {
            return Err(KeyError::Unavailable("TPM went away".into()));
        }
        let mut other = message.to_vec();
        other.push(0);
        self.key.sign(&other)
    }
}

#[test]
fn issue_reports_signer_failures_and_bad_signatures() {
    let failing = BrokenSigner {
        key: key(SignatureAlgorithm::EcdsaP256Sha256),
        fail: true,
    };
    let params = profile::vendor_ca(name("CN=CA")).expect("params");
    let err = self_signed(&params, &failing).expect_err("signer fails");
    assert!(
        matches!(err, PkiError::Signing(KeyError::Unavailable(_))),
        "{err:?}"
    );
    let wrong = BrokenSigner {
        key: key(SignatureAlgorithm::EcdsaP256Sha256),
        fail: false,
    };
    let err = self_signed(&params, &wrong).expect_err("signature over other bytes");
    assert!(
        matches!(err, PkiError::SignatureCheck(KeyError::BadSignature)),
        "{err:?}"
    );
}
