//! Certificate profiles of the suite: RFC 5280 plus the BRSKI and IEEE 802.1AR rules, as
//! [`CertificateParams`] to pass to [`super::issue::issue`].
//!
//! Lifetimes are defaults; change `not_after` (or any other field) before issuing.

use super::issue::{CertificateParams, NotAfter, PkiError};
use super::name::build_name;
use crate::oid::{
    ID_KP_CLIENT_AUTH, ID_KP_CMC_RA, ID_KP_SERVER_AUTH, ID_ON_ACP_NODE_NAME,
    TCG_CAP_VERIFIED_TPM_RESIDENCY, TCG_CAP_VERIFIED_TPM_RESTRICTED,
};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc4519;
use der::Encode;
use der::asn1::{Ia5String, OctetString};
use std::net::IpAddr;
use time::Duration;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{GeneralName, HardwareModuleName, OtherName};
use x509_cert::ext::pkix::{
    BasicConstraints, CertificatePolicies, KeyUsage, KeyUsages, certpolicy::PolicyInformation,
};
use x509_cert::name::Name;

/// Default lifetime of the manufacturer CA.
pub const VENDOR_CA_LIFETIME: Duration = Duration::days(20 * 365);
/// Default lifetime of the domain (owner) CA.
pub const DOMAIN_CA_LIFETIME: Duration = Duration::days(10 * 365);
/// Default lifetime of the MASA voucher-signing certificate.
pub const MASA_SIGNER_LIFETIME: Duration = Duration::days(5 * 365);
/// Default lifetime of registrar certificates.
pub const REGISTRAR_LIFETIME: Duration = Duration::days(2 * 365);
/// Default lifetime of LDevIDs (renewed by the pledge before expiry).
pub const LDEVID_LIFETIME: Duration = Duration::days(365);
/// Default lifetime of TLS server certificates.
pub const TLS_SERVER_LIFETIME: Duration = Duration::days(365);

fn ca(subject: Name, lifetime: Duration) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(subject, lifetime)?;
    p.basic_constraints = Some(BasicConstraints {
        ca: true,
        path_len_constraint: None,
    });
    p.key_usage = Some(KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign));
    p.subject_key_identifier = true;
    Ok(p)
}

fn end_entity(subject: Name, lifetime: Duration) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(subject, lifetime)?;
    p.basic_constraints = Some(BasicConstraints {
        ca: false,
        path_len_constraint: None,
    });
    p.key_usage = Some(KeyUsage(KeyUsages::DigitalSignature.into()));
    Ok(p)
}

/// Manufacturer CA: issues IDevIDs and the MASA certificates; the pledges' trust anchor
/// (RFC 8995 §2.5.3). cA TRUE, keyCertSign|cRLSign, SKI (RFC 5280 §4.2.1.2, §4.2.1.3, §4.2.1.9).
pub fn vendor_ca(subject: Name) -> Result<CertificateParams, PkiError> {
    ca(subject, VENDOR_CA_LIFETIME)
}

/// Domain (owner) CA: issues the registrar certificate and LDevIDs; typically the
/// `pinned-domain-cert` of vouchers (RFC 8995 §5.6). Same shape as [`vendor_ca`].
pub fn domain_ca(subject: Name) -> Result<CertificateParams, PkiError> {
    ca(subject, DOMAIN_CA_LIFETIME)
}

/// MASA voucher signer (RFC 8995 §5.6, RFC 8366bis §7.1): end entity, digitalSignature, SKI.
pub fn masa_voucher_signer(subject: Name) -> Result<CertificateParams, PkiError> {
    let mut p = end_entity(subject, MASA_SIGNER_LIFETIME)?;
    p.subject_key_identifier = true;
    Ok(p)
}

/// IEEE 802.1AR IDevID of a pledge (RFC 8995 §2.3; SPEC §8.1):
/// - subject `serialNumber` = `serial_number` (PrintableString when it fits, else UTF8String;
///   RFC 8995 §2.3.1); set `subject` afterwards to add e.g. a CN, keeping the serialNumber;
/// - authorityKeyIdentifier (802.1AR: MUST), no subjectKeyIdentifier (NOT RECOMMENDED);
/// - keyUsage digitalSignature only (the TCG TPM profile); no basicConstraints;
/// - `masa_url`: non-critical id-pe-masa-url IA5String (RFC 8995 §2.3.2);
/// - `hardware_module`: `(hwType, hwSerialNum)` as a subjectAltName otherName
///   HardwareModuleName (RFC 4108 §5; TPM 2.0 hwType is [`crate::oid::TCG_TPM2_HW_TYPE`]);
/// - notAfter `99991231235959Z` (RFC 8995 §2.6.2).
pub fn idevid(
    serial_number: &str,
    masa_url: Option<&str>,
    hardware_module: Option<(ObjectIdentifier, &[u8])>,
) -> Result<CertificateParams, PkiError> {
    let subject = build_name(&[(rfc4519::SERIAL_NUMBER, serial_number)])?;
    let mut p = CertificateParams::new(subject, Duration::days(1))?;
    p.not_after = NotAfter::NoWellDefinedExpiration;
    p.key_usage = Some(KeyUsage(KeyUsages::DigitalSignature.into()));
    if let Some(url) = masa_url {
        super::issue::check_masa_url(url)?;
        p.masa_url = Some(url.to_string());
    }
    if let Some((hw_type, hw_serial_num)) = hardware_module {
        p.subject_alt_names
            .push(hardware_module_name(hw_type, hw_serial_num)?);
    }
    Ok(p)
}

/// IAK certificate of a device (TCG "TPM 2.0 Keys for Device Identity and Attestation", SPEC
/// §8.2): the IDevID's subject serialNumber and HardwareModuleName, so that a verifier can tell
/// both name one device; keyUsage digitalSignature; certificatePolicies
/// tcg-cap-verifiedTPMResidency and tcg-cap-verifiedTPMRestricted; notAfter
/// `99991231235959Z` like the IDevID.
pub fn iak(
    serial_number: &str,
    hardware_module: (ObjectIdentifier, &[u8]),
) -> Result<CertificateParams, PkiError> {
    let mut p = idevid(serial_number, None, Some(hardware_module))?;
    p.extra_extensions.push(certificate_policies(&[
        TCG_CAP_VERIFIED_TPM_RESIDENCY,
        TCG_CAP_VERIFIED_TPM_RESTRICTED,
    ])?);
    Ok(p)
}

/// A non-critical certificatePolicies extension naming `policies`, without qualifiers
/// (RFC 5280 §4.2.1.4).
pub fn certificate_policies(policies: &[ObjectIdentifier]) -> Result<Extension, PkiError> {
    let value = CertificatePolicies(
        policies
            .iter()
            .map(|&policy_identifier| PolicyInformation {
                policy_identifier,
                policy_qualifiers: None,
            })
            .collect(),
    );
    let der = value
        .to_der()
        .map_err(|e| PkiError::Encoding(e.to_string()))?;
    Ok(Extension {
        extn_id: const_oid::db::rfc5280::ID_CE_CERTIFICATE_POLICIES,
        critical: false,
        extn_value: OctetString::new(der).map_err(|e| PkiError::Encoding(e.to_string()))?,
    })
}

/// A subjectAltName otherName carrying a HardwareModuleName (RFC 4108 §5).
pub fn hardware_module_name(
    hw_type: ObjectIdentifier,
    hw_serial_num: &[u8],
) -> Result<GeneralName, PkiError> {
    let hmn = HardwareModuleName {
        hw_type,
        hw_serial_num: OctetString::new(hw_serial_num).map_err(|e| PkiError::InvalidField {
            field: "hwSerialNum",
            reason: e.to_string(),
        })?,
    };
    let other = OtherName::try_from(&hmn).map_err(|e| PkiError::Encoding(e.to_string()))?;
    Ok(GeneralName::OtherName(other))
}

/// Registrar certificate (RFC 8995 §5.5.4, §5.8.2): EKU id-kp-cmcRA + serverAuth + clientAuth,
/// digitalSignature, SKI (so the domainID is the SKI), SAN with `dns_names` and `ip_addresses`.
pub fn registrar(
    subject: Name,
    dns_names: &[&str],
    ip_addresses: &[IpAddr],
) -> Result<CertificateParams, PkiError> {
    let mut p = end_entity(subject, REGISTRAR_LIFETIME)?;
    p.extended_key_usage = vec![ID_KP_CMC_RA, ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH];
    p.subject_key_identifier = true;
    p.subject_alt_names = alt_names(dns_names, ip_addresses)?;
    Ok(p)
}

/// LDevID issued to a pledge through EST (RFC 8995 §5.9.3): EKU clientAuth, digitalSignature,
/// subject as requested; no SKI (802.1AR DevID profile). Add SANs from the CSR as needed.
pub fn ldevid(subject: Name) -> Result<CertificateParams, PkiError> {
    let mut p = end_entity(subject, LDEVID_LIFETIME)?;
    p.extended_key_usage = vec![ID_KP_CLIENT_AUTH];
    Ok(p)
}

/// TLS server certificate (the MASA's HTTPS endpoint, RFC 8995 §5.4 / RFC 6125 DNS-ID):
/// EKU serverAuth, digitalSignature, SKI; subject CN = the first name; SAN = all names.
pub fn tls_server(
    dns_names: &[&str],
    ip_addresses: &[IpAddr],
) -> Result<CertificateParams, PkiError> {
    let cn = match (dns_names.first(), ip_addresses.first()) {
        (Some(d), _) => (*d).to_string(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => {
            return Err(PkiError::InvalidField {
                field: "subjectAltName",
                reason: "a TLS server certificate needs a DNS name or an IP address".into(),
            });
        }
    };
    let subject = build_name(&[(rfc4519::CN, &cn)])?;
    let mut p = end_entity(subject, TLS_SERVER_LIFETIME)?;
    p.extended_key_usage = vec![ID_KP_SERVER_AUTH];
    p.subject_key_identifier = true;
    p.subject_alt_names = alt_names(dns_names, ip_addresses)?;
    Ok(p)
}

/// Whether `name` is a DNS name in the preferred name syntax (RFC 1034 §3.5, RFC 1123 §2.1):
/// dot-separated labels of letters, digits and inner hyphens, 1 to 63 octets each, 253 in all.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn invalid(field: &'static str, reason: String) -> PkiError {
    PkiError::InvalidField { field, reason }
}

/// An rfc822Name entry (RFC 5280 §4.2.1.6): `local-part@domain`, ASCII, the domain a DNS name.
pub fn rfc822_name(address: &str) -> Result<GeneralName, PkiError> {
    let domain = match address.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && local.bytes().all(|b| b.is_ascii_graphic() && b != b'@') =>
        {
            domain
        }
        _ => {
            return Err(invalid(
                "rfc822Name",
                format!("{address:?} is not local-part@domain"),
            ));
        }
    };
    if !is_dns_name(domain) {
        return Err(invalid(
            "rfc822Name",
            format!("{domain:?} in {address:?} is not a DNS name"),
        ));
    }
    let ia5 = Ia5String::new(address).map_err(|e| invalid("rfc822Name", e.to_string()))?;
    Ok(GeneralName::Rfc822Name(ia5))
}

/// RFC 8994 §6.2.2 `etext`: printable characters other than "@" that may form an extension.
fn is_etext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// An ACP node name (RFC 8994 §6.2.2) as a subjectAltName otherName `AcpNodeName`
/// (IA5String): `[acp-address] ["+" rsub *("+" extension)] "@" acp-domain-name`, the
/// acp-address 32 hex digits or "0", rsub a DNS subdomain, the domain a DNS name.
pub fn acp_node_name(name: &str) -> Result<GeneralName, PkiError> {
    let bad = |why: &str| invalid("AcpNodeName", format!("{name:?}: {why} (RFC 8994 §6.2.2)"));
    let (local, domain) = name
        .split_once('@')
        .ok_or_else(|| bad("no \"@\" acp-domain-name"))?;
    if !is_dns_name(domain) {
        return Err(bad("acp-domain-name is not a DNS name"));
    }
    let mut parts = local.split('+');
    let address = parts.next().unwrap_or_default();
    let address_ok = address.is_empty()
        || address == "0"
        || (address.len() == 32 && address.bytes().all(|b| b.is_ascii_hexdigit()));
    if !address_ok {
        return Err(bad("acp-address is neither 32 hex digits nor \"0\""));
    }
    if let Some(rsub) = parts.next() {
        if !rsub.is_empty() && !is_dns_name(rsub) {
            return Err(bad("rsub is not a DNS subdomain"));
        }
    }
    if !parts.all(|ext| !ext.is_empty() && ext.bytes().all(is_etext)) {
        return Err(bad("an extension is empty or not etext"));
    }
    let ia5 = Ia5String::new(name).map_err(|e| invalid("AcpNodeName", e.to_string()))?;
    Ok(GeneralName::OtherName(OtherName {
        type_id: ID_ON_ACP_NODE_NAME,
        value: der::Any::encode_from(&ia5).map_err(|e| PkiError::Encoding(e.to_string()))?,
    }))
}

/// A subjectAltName entry as people write it: `dNSName "x"`, `otherName AcpNodeName "x"`.
pub fn describe_general_name(name: &GeneralName) -> String {
    match name {
        GeneralName::DnsName(n) => format!("dNSName {:?}", n.as_str()),
        GeneralName::Rfc822Name(n) => format!("rfc822Name {:?}", n.as_str()),
        GeneralName::UniformResourceIdentifier(n) => {
            format!("uniformResourceIdentifier {:?}", n.as_str())
        }
        GeneralName::OtherName(o) if o.type_id == ID_ON_ACP_NODE_NAME => {
            match o.value.decode_as::<Ia5String>() {
                Ok(v) => format!("otherName AcpNodeName {:?}", v.as_str()),
                Err(_) => "otherName AcpNodeName (not an IA5String)".into(),
            }
        }
        GeneralName::OtherName(o) => format!("otherName {}", o.type_id),
        GeneralName::IpAddress(ip) => format!("iPAddress {}", hex::encode(ip.as_bytes())),
        GeneralName::DirectoryName(n) => format!("directoryName \"{n}\""),
        GeneralName::RegisteredId(oid) => format!("registeredID {oid}"),
        GeneralName::EdiPartyName(_) => "ediPartyName".into(),
    }
}

/// dNSName and iPAddress entries (RFC 5280 §4.2.1.6): names must be non-empty visible ASCII.
pub fn alt_names(
    dns_names: &[&str],
    ip_addresses: &[IpAddr],
) -> Result<Vec<GeneralName>, PkiError> {
    let mut out = Vec::with_capacity(dns_names.len() + ip_addresses.len());
    for name in dns_names {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PkiError::InvalidField {
                field: "dNSName",
                reason: format!("{name:?} is not a DNS name"),
            });
        }
        let ia5 = Ia5String::new(*name).map_err(|e| PkiError::InvalidField {
            field: "dNSName",
            reason: e.to_string(),
        })?;
        out.push(GeneralName::DnsName(ia5));
    }
    out.extend(ip_addresses.iter().map(|ip| GeneralName::from(*ip)));
    Ok(out)
}
