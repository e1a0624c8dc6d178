//! RFC 8995 §5.8.2 / §11.2: the domainID is a function of the domain certificate's key, never
//! an identifier the certificate merely claims.

use base64::Engine;
use brski_common::input::B64;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::ext::{domain_id, domain_id_base64, key_identifier, spki_sha256};
use brski_common::pki::{name_from_parts, profile, self_signed};
use const_oid::AssociatedOid;
use der::Encode;
use der::asn1::OctetString;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

/// A self-signed domain CA; with `ski` its subjectKeyIdentifier is exactly those bytes.
fn ca(cn: &str, key: &SoftwareKey, ski: Option<Vec<u8>>) -> Certificate {
    let mut p =
        profile::domain_ca(name_from_parts(Some(cn), None, None).expect("name")).expect("profile");
    if let Some(ski) = ski {
        p.subject_key_identifier = false;
        p.extra_extensions.push(Extension {
            extn_id: SubjectKeyIdentifier::OID,
            critical: false,
            extn_value: OctetString::new(
                SubjectKeyIdentifier(OctetString::new(ski).expect("octets"))
                    .to_der()
                    .expect("der"),
            )
            .expect("octets"),
        });
    }
    self_signed(&p, key).expect("CA")
}

#[test]
fn rfc8995_5_8_2_domain_id_is_the_spki_hash_not_a_copied_ski() {
    let victim = ca("Victim CA", &key(), None);
    let victim_id = domain_id(&victim).expect("victim domainID");
    // The victim's SKI is the method-1 key identifier, so it is the victim's domainID.
    assert_eq!(
        victim_id,
        key_identifier(victim.tbs_certificate().subject_public_key_info()).to_vec()
    );

    // A rogue CA of another key carrying the victim's SKI gets the hash of its own key.
    let rogue = ca("Victim CA", &key(), Some(victim_id.clone()));
    let rogue_id = domain_id(&rogue).expect("rogue domainID");
    assert_ne!(rogue_id, victim_id);
    assert_eq!(rogue_id, spki_sha256(&rogue).expect("sha256").to_vec());
    assert_eq!(
        domain_id_base64(&rogue).expect("base64"),
        B64.encode(spki_sha256(&rogue).expect("sha256"))
    );
}

#[test]
fn rfc8995_5_8_2_an_ski_of_another_method_gives_the_spki_hash() {
    // SHA-1 over the whole SPKI (RFC 7093-style, not RFC 5280 method 1): still the key's, but
    // not checkable as method 1, so the SHA-256 of the SPKI is used.
    let k = key();
    let other_method = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        k.public_key_spki(),
    )
    .as_ref()
    .to_vec();
    let c = ca("Other Method CA", &k, Some(other_method.clone()));
    let id = domain_id(&c).expect("domainID");
    assert_ne!(id, other_method);
    assert_eq!(id.len(), 32);
    assert_eq!(id, spki_sha256(&c).expect("sha256").to_vec());

    // Two certificates of one key with the method-1 SKI share the domainID.
    let a = ca("Same Key A", &k, None);
    let b = ca("Same Key B", &k, None);
    assert_eq!(domain_id(&a).expect("a"), domain_id(&b).expect("b"));
}
