//! BRSKI certificate fields read from the published example certificates: serialNumber and
//! MASA URL (RFC 8995 §2.3.1, §2.3.2), `idevid-issuer` (RFC 8366bis §6.1), domainID (RFC 8995
//! §5.8.2), HardwareModuleName (RFC 4108 §5), plus every rejection path.

use base64::Engine;
use brski_common::input::{B64, pem_blocks};
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::oid::{ID_KP_CMC_RA, ID_ON_HARDWARE_MODULE_NAME, ID_PE_MASA_URL};
use brski_common::pki::csr::{requested_extensions, verify_csr};
use brski_common::pki::ext::{
    ExtError, hardware_module_name_in, masa_url_in, name_serial_number, subject_key_identifier,
};
use brski_common::pki::{
    domain_id, domain_id_base64, hardware_module_name, has_eku, idevid_issuer, issue,
    masa_base_uri, masa_url, parse_name, profile, self_signed, serial_number, spki_sha256,
};
use brski_common::test_vectors::{bytes, cert, read};
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Any, OctetString, Utf8StringRef};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName, SubjectKeyIdentifier};

fn serial_tag(c: &Certificate) -> Tag {
    c.tbs_certificate()
        .subject()
        .iter()
        .find(|a| a.oid == const_oid::db::rfc4519::SERIAL_NUMBER)
        .expect("serialNumber attribute")
        .value
        .tag()
}

#[test]
fn rfc8995_2_3_1_c_1_5_serial_number_printable_string() {
    let idevid = cert("rfc8995/C.1.5-pledge-idevid.crt.pem");
    assert_eq!(serial_tag(&idevid), Tag::PrintableString);
    assert_eq!(serial_number(&idevid).as_deref(), Some("00-D0-E5-F2-00-02"));
}

#[test]
fn rfc8995_2_3_1_c_2_1_pvr_signer_serial_number_utf8_string() {
    let idevid = cert("rfc8995/C.2.1-pvr-signer-idevid.crt.pem");
    assert_eq!(serial_tag(&idevid), Tag::Utf8String);
    assert_eq!(serial_number(&idevid).as_deref(), Some("00-D0-E5-F2-00-02"));
}

#[test]
fn rfc8995_2_3_1_serial_number_absent_or_of_another_type() {
    assert_eq!(
        serial_number(&cert("rfc8995/C.1.4-registrar.crt.pem")),
        None
    );
    // serialNumber as IA5String (#hex DER form): not a PrintableString/UTF8String.
    let name = parse_name("serialNumber=#1603414243").expect("name");
    assert_eq!(name_serial_number(&name), None);
    let name = parse_name("CN=x,serialNumber=ABC").expect("name");
    assert_eq!(name_serial_number(&name).as_deref(), Some("ABC"));
}

#[test]
fn rfc8995_2_3_2_c_1_5_masa_url_and_base_uri() {
    let idevid = cert("rfc8995/C.1.5-pledge-idevid.crt.pem");
    let url = masa_url(&idevid).expect("decodes").expect("present");
    assert_eq!(url, "highway-test.example.com:9443");
    assert_eq!(
        masa_base_uri(&url).expect("uri"),
        "https://highway-test.example.com:9443/.well-known/brski"
    );
    assert_eq!(
        masa_url(&cert("rfc8995/C.1.4-registrar.crt.pem")).expect("decodes"),
        None
    );
}

#[test]
fn rfc8995_2_3_2_masa_base_uri_forms() {
    for (value, expected) in [
        ("masa.example", "https://masa.example/.well-known/brski"),
        (
            "[2001:db8::1]:9443",
            "https://[2001:db8::1]:9443/.well-known/brski",
        ),
        // A full URI: authority and path kept, scheme forced to https.
        ("https://masa.example/brski", "https://masa.example/brski"),
        ("http://masa.example:8080/v/", "https://masa.example:8080/v"),
        (
            "http://masa.example",
            "https://masa.example/.well-known/brski",
        ),
        ("masa.example/", "https://masa.example/.well-known/brski"),
    ] {
        assert_eq!(masa_base_uri(value).expect(value), expected, "{value}");
    }
    for (value, reason) in [
        ("", "no authority"),
        ("https://", "no authority"),
        ("/path", "no authority"),
        ("masa example", "not visible ASCII"),
        ("mäsa.example", "not visible ASCII"),
        ("://masa.example", "bad URI scheme"),
        ("h_s://masa.example", "bad URI scheme"),
        ("user@masa.example", "userinfo is not allowed"),
        ("masa.example?x=1", "query or fragment is not allowed"),
        ("masa.example#f", "query or fragment is not allowed"),
    ] {
        let err = masa_base_uri(value).expect_err(value);
        assert_eq!(
            err,
            ExtError::InvalidMasaUrl {
                url: value.to_string(),
                reason
            }
        );
    }
}

fn masa_url_ext(value: &[u8]) -> Extension {
    Extension {
        extn_id: ID_PE_MASA_URL,
        critical: false,
        extn_value: OctetString::new(value).expect("octets"),
    }
}

#[test]
fn rfc8995_2_3_2_masa_url_rejections() {
    // IA5String "a" is fine; the same text as UTF8String is not MASAURLSyntax.
    assert_eq!(
        masa_url_in(&[masa_url_ext(b"\x16\x01a")]).expect("ia5"),
        Some("a".into())
    );
    let err = masa_url_in(&[masa_url_ext(b"\x0c\x01a")]).expect_err("utf8");
    assert!(
        matches!(err, ExtError::Malformed { oid, .. } if oid == ID_PE_MASA_URL),
        "{err:?}"
    );
    let err = masa_url_in(&[masa_url_ext(b"\x16\x05a")]).expect_err("truncated");
    assert!(matches!(err, ExtError::Malformed { .. }), "{err:?}");
    let err =
        masa_url_in(&[masa_url_ext(b"\x16\x01a"), masa_url_ext(b"\x16\x01b")]).expect_err("twice");
    assert_eq!(err, ExtError::Duplicate(ID_PE_MASA_URL));
}

#[test]
fn cbrski_c_pledge_serial_masa_url_and_idevid_issuer() {
    let pledge = cert("cbrski/C-pledge.crt.pem");
    assert_eq!(serial_number(&pledge).as_deref(), Some("JADA123456789"));
    let url = masa_url(&pledge).expect("decodes").expect("present");
    assert_eq!(url, "masa.stok.nl");
    assert_eq!(
        masa_base_uri(&url).expect("uri"),
        "https://masa.stok.nl/.well-known/brski"
    );
    let issuer = idevid_issuer(&pledge);
    assert_eq!(
        hex::encode_upper(&issuer),
        "041830168014CB8D98CA74C51B58DDE7ACEF869A9443A8D666A6"
    );
    // The same bytes as key 5 (idevid-issuer) of the C.4 registrar voucher-request.
    let payload = bytes("cbrski/C.4-rvr.payload.hex");
    let value: ciborium::Value = ciborium::from_reader(payload.as_slice()).expect("cbor");
    let inner = value
        .as_map()
        .and_then(|m| m.first())
        .and_then(|(_, v)| v.as_map())
        .expect("inner map");
    let key5 = inner
        .iter()
        .find(|(k, _)| k.as_integer() == Some(5.into()))
        .and_then(|(_, v)| v.as_bytes())
        .expect("key 5");
    assert_eq!(&issuer, key5);
}

#[test]
fn rfc8366bis_6_1_jws_8_1_idevid_issuer() {
    let text =
        String::from_utf8(read("jws-voucher/8.1-pvr.signer-key-and-chain.pem")).expect("utf-8");
    let certs = pem_blocks(&text, &["CERTIFICATE"]).expect("pem");
    let idevid = Certificate::from_der(&certs[0]).expect("IDevID");
    assert_eq!(serial_number(&idevid).as_deref(), Some("kit-987654321"));
    assert_eq!(
        masa_url(&idevid).expect("decodes").as_deref(),
        Some("masa-test.xyzmanufacturer.com:9443")
    );
    let issuer_b64 = B64.encode(idevid_issuer(&idevid));
    assert_eq!(issuer_b64, "BBgwFoAUlU7Vft0KvopLzyjGaNB2fcQyB/U=");
    // The registrar voucher-request of the same draft carries exactly this value.
    let rvr: serde_json::Value =
        serde_json::from_slice(&bytes("jws-voucher/8.2-rvr.payload.json")).expect("json");
    assert_eq!(
        rvr["ietf-voucher-request:voucher"]["idevid-issuer"].as_str(),
        Some(issuer_b64.as_str())
    );
}

#[test]
fn rfc8366bis_6_1_idevid_issuer_synthesised_from_own_key_without_aki() {
    // The RFC 8995 IDevID has no AKI; its SKI is SHA-1 of its own key (SPEC §2.6).
    let idevid = cert("rfc8995/C.1.5-pledge-idevid.crt.pem");
    let ski = subject_key_identifier(&idevid)
        .expect("ski")
        .expect("present");
    assert_eq!(
        hex::encode_upper(&ski),
        "4588CC9696006437B0BA2365646454 08066C56AD".replace(' ', "")
    );
    let mut expected = vec![0x04, 0x18, 0x30, 0x16, 0x80, 0x14];
    expected.extend_from_slice(&ski);
    assert_eq!(idevid_issuer(&idevid), expected);
}

#[test]
fn rfc8995_5_8_2_c_1_4_domain_id_is_spki_sha256_without_ski() {
    let registrar = cert("rfc8995/C.1.4-registrar.crt.pem");
    assert_eq!(subject_key_identifier(&registrar).expect("ski"), None);
    assert_eq!(
        domain_id_base64(&registrar).expect("domain id"),
        "Oy6w2vS8ar8m/FtEHuzs7sl7LSD3pW9yTCgCecoIL3M="
    );
    assert_eq!(
        B64.encode(spki_sha256(&registrar).expect("sha256")),
        "Oy6w2vS8ar8m/FtEHuzs7sl7LSD3pW9yTCgCecoIL3M="
    );
}

#[test]
fn rfc8995_5_8_2_c_1_3_domain_id_is_ski() {
    let ca = cert("rfc8995/C.1.3-owner-ca.crt.pem");
    assert_eq!(
        hex::encode_upper(domain_id(&ca).expect("domain id")),
        "B9A5F6CB11E107A4492CA708C67C10BC87B37426"
    );
}

#[test]
fn rfc8995_5_5_4_c_1_4_has_cmc_ra_and_masa_cert_does_not() {
    assert!(has_eku(
        &cert("rfc8995/C.1.4-registrar.crt.pem"),
        ID_KP_CMC_RA
    ));
    assert!(!has_eku(&cert("rfc8995/C.1.2-masa.crt.pem"), ID_KP_CMC_RA));
    assert!(has_eku(&cert("cbrski/C-registrar.crt.pem"), ID_KP_CMC_RA));
}

#[test]
fn rfc4108_5_hardware_module_name_from_est_coaps_a_2_csr() {
    let req = verify_csr(&bytes("est-coaps/A.2-sen-request-csr.hex")).expect("csr verifies");
    let exts = requested_extensions(&req).expect("extensionRequest");
    let hmn = hardware_module_name_in(&exts)
        .expect("decodes")
        .expect("present");
    assert_eq!(
        hmn.hw_type,
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.6715.10.1")
    );
    assert_eq!(hmn.hw_serial_num.as_bytes(), [0x01, 0x02, 0x03, 0x04]);
    assert_eq!(
        hardware_module_name(&cert("rfc8995/C.1.5-pledge-idevid.crt.pem")).expect("no SAN"),
        None
    );
}

fn der_ext<T: Encode + AssociatedOid>(value: &T) -> Extension {
    Extension {
        extn_id: T::OID,
        critical: false,
        extn_value: OctetString::new(value.to_der().expect("der")).expect("octets"),
    }
}

#[test]
fn rfc4108_5_hardware_module_name_rejections() {
    // otherName with the HardwareModuleName type but a UTF8String value.
    let bogus = OtherName {
        type_id: ID_ON_HARDWARE_MODULE_NAME,
        value: Any::encode_from(&Utf8StringRef::new("x").expect("utf8")).expect("any"),
    };
    let san = der_ext(&SubjectAltName(vec![GeneralName::OtherName(bogus)]));
    let err = hardware_module_name_in(&[san]).expect_err("bad hmn");
    assert!(
        matches!(err, ExtError::Malformed { oid, .. } if oid == ID_ON_HARDWARE_MODULE_NAME),
        "{err:?}"
    );
    let broken_san = Extension {
        extn_id: SubjectAltName::OID,
        critical: false,
        extn_value: OctetString::new(vec![0x30, 0x02, 0xa0]).expect("octets"),
    };
    let err = hardware_module_name_in(&[broken_san]).expect_err("bad san");
    assert!(
        matches!(err, ExtError::Malformed { oid, .. } if oid == SubjectAltName::OID),
        "{err:?}"
    );
    // A SAN with only a dNSName has no HardwareModuleName.
    let dns = der_ext(&SubjectAltName(
        profile::alt_names(&["a.example"], &[]).expect("alt"),
    ));
    assert_eq!(hardware_module_name_in(&[dns]).expect("ok"), None);
}

/// A certificate carrying `extra` in place of the profile's own SKI/EKU.
fn cert_with(extra: Extension) -> Certificate {
    let k = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    let ca = self_signed(
        &profile::vendor_ca(parse_name("CN=CA").expect("name")).expect("params"),
        &k,
    )
    .expect("ca");
    let leaf = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    let mut params = profile::ldevid(parse_name("CN=leaf").expect("name")).expect("params");
    params.extended_key_usage.clear();
    params.extra_extensions.push(extra);
    issue(&params, leaf.public_key_spki(), Some(&ca), &k).expect("issue")
}

#[test]
fn rfc8995_5_8_2_domain_id_rejects_a_malformed_ski() {
    let c = cert_with(Extension {
        extn_id: SubjectKeyIdentifier::OID,
        critical: false,
        extn_value: OctetString::new(vec![0x02, 0x01, 0x00]).expect("octets"),
    });
    let err = domain_id(&c).expect_err("malformed SKI");
    assert!(
        matches!(err, ExtError::Malformed { oid, .. } if oid == SubjectKeyIdentifier::OID),
        "{err:?}"
    );
}

#[test]
fn rfc5280_4_2_1_12_malformed_eku_lists_nothing() {
    let c = cert_with(Extension {
        extn_id: ExtendedKeyUsage::OID,
        critical: false,
        extn_value: OctetString::new(vec![0x30, 0x03, 0x06, 0x01]).expect("octets"),
    });
    assert!(!has_eku(&c, ID_KP_CMC_RA));
    let ok = cert_with(der_ext(&ExtendedKeyUsage(vec![ID_KP_CMC_RA])));
    assert!(has_eku(&ok, ID_KP_CMC_RA));
}
