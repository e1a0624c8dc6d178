//! Distinguished names (RFC 5280 §4.1.2.4, §4.1.2.6): building a DN from parts, and parsing the
//! RFC 4514 string form (`"CN=pledge,O=Vendor"`).
//!
//! String types follow RFC 5280 §4.1.2.4: UTF8String for DirectoryString attributes,
//! PrintableString for `countryName`, IA5String for `domainComponent` and `emailAddress`, and
//! for `serialNumber` PrintableString when the value fits its character set, else UTF8String
//! (RFC 8995 §2.3.1 example IDevIDs use both).

use const_oid::ObjectIdentifier;
use const_oid::db::{rfc3280, rfc4519};
use der::asn1::{Any, Ia5StringRef, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Decode, Encode};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

/// Why a distinguished name could not be built or parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("the distinguished name string is empty")]
    Empty,
    #[error("`{0}` is not of the form TYPE=VALUE")]
    MissingEquals(String),
    #[error("unknown attribute type `{0}`")]
    UnknownAttribute(String),
    #[error("bad escape sequence in `{0}`")]
    BadEscape(String),
    #[error("invalid value for attribute {oid}: {reason}")]
    InvalidValue {
        oid: ObjectIdentifier,
        reason: String,
    },
    #[error("distinguished name could not be encoded: {0}")]
    Encoding(String),
}

/// Short names accepted by [`parse_name`] (RFC 4514 §3, RFC 4519), matched case-insensitively.
const ATTRIBUTE_TYPES: &[(&str, ObjectIdentifier)] = &[
    ("CN", rfc4519::CN),
    ("commonName", rfc4519::CN),
    ("C", rfc4519::C),
    ("countryName", rfc4519::C),
    ("L", rfc4519::L),
    ("localityName", rfc4519::L),
    ("ST", rfc4519::ST),
    ("stateOrProvinceName", rfc4519::ST),
    ("STREET", rfc4519::STREET),
    ("O", rfc4519::O),
    ("organizationName", rfc4519::O),
    ("OU", rfc4519::OU),
    ("organizationalUnitName", rfc4519::OU),
    ("serialNumber", rfc4519::SERIAL_NUMBER),
    ("title", rfc4519::TITLE),
    ("SN", rfc4519::SN),
    ("surname", rfc4519::SN),
    ("givenName", rfc4519::GIVEN_NAME),
    ("DC", rfc4519::DC),
    ("domainComponent", rfc4519::DC),
    ("UID", rfc4519::UID),
    ("emailAddress", rfc3280::EMAIL_ADDRESS),
];

/// Upper bounds on value length in characters (RFC 5280 Appendix A.1 `ub-*`).
fn upper_bound(oid: ObjectIdentifier) -> Option<usize> {
    match oid {
        o if o == rfc4519::CN => Some(64),
        o if o == rfc4519::O => Some(64),
        o if o == rfc4519::OU => Some(64),
        o if o == rfc4519::SERIAL_NUMBER => Some(64),
        o if o == rfc4519::L => Some(128),
        o if o == rfc4519::ST => Some(128),
        o if o == rfc3280::EMAIL_ADDRESS => Some(255),
        _ => None,
    }
}

/// Encode `value` for attribute `oid` with the string type RFC 5280 §4.1.2.4 asks for.
pub fn attribute_value(oid: ObjectIdentifier, value: &str) -> Result<Any, NameError> {
    let invalid = |reason: &str| NameError::InvalidValue {
        oid,
        reason: reason.into(),
    };
    if value.is_empty() {
        return Err(invalid("empty value"));
    }
    if let Some(max) = upper_bound(oid) {
        if value.chars().count() > max {
            return Err(invalid(&format!("longer than {max} characters")));
        }
    }
    let encoded = if oid == rfc4519::C {
        if value.len() != 2 {
            return Err(invalid("countryName must be a two-letter code"));
        }
        let s = PrintableStringRef::new(value).map_err(|_| invalid("not a PrintableString"))?;
        Any::encode_from(&s)
    } else if oid == rfc4519::SERIAL_NUMBER {
        match PrintableStringRef::new(value) {
            Ok(s) => Any::encode_from(&s),
            Err(_) => Any::encode_from(&utf8(oid, value)?),
        }
    } else if oid == rfc4519::DC || oid == rfc3280::EMAIL_ADDRESS {
        let s = Ia5StringRef::new(value).map_err(|_| invalid("not an IA5String"))?;
        Any::encode_from(&s)
    } else {
        Any::encode_from(&utf8(oid, value)?)
    };
    encoded.map_err(|e| NameError::Encoding(e.to_string()))
}

fn utf8(oid: ObjectIdentifier, value: &str) -> Result<Utf8StringRef<'_>, NameError> {
    Utf8StringRef::new(value).map_err(|e| NameError::InvalidValue {
        oid,
        reason: e.to_string(),
    })
}

/// Build a DN from `(attribute type, value)` pairs in DER order (most significant first, e.g.
/// `O` before `CN`), one attribute per RDN.
pub fn build_name(attributes: &[(ObjectIdentifier, &str)]) -> Result<Name, NameError> {
    let rdns = attributes
        .iter()
        .map(|(oid, value)| {
            Ok(vec![AttributeTypeAndValue {
                oid: *oid,
                value: attribute_value(*oid, value)?,
            }])
        })
        .collect::<Result<Vec<_>, NameError>>()?;
    name_from_rdns(rdns)
}

/// A DN from the parts BRSKI certificates use, in the order `O`, `CN`, `serialNumber` (absent
/// parts are left out). The IDevID serial goes in `serialNumber` (RFC 8995 §2.3.1).
pub fn name_from_parts(
    common_name: Option<&str>,
    organization: Option<&str>,
    serial_number: Option<&str>,
) -> Result<Name, NameError> {
    let mut attrs = Vec::new();
    if let Some(o) = organization {
        attrs.push((rfc4519::O, o));
    }
    if let Some(cn) = common_name {
        attrs.push((rfc4519::CN, cn));
    }
    if let Some(sn) = serial_number {
        attrs.push((rfc4519::SERIAL_NUMBER, sn));
    }
    build_name(&attrs)
}

fn name_from_rdns(rdns: Vec<Vec<AttributeTypeAndValue>>) -> Result<Name, NameError> {
    let enc = |e: der::Error| NameError::Encoding(e.to_string());
    let mut seq = Vec::with_capacity(rdns.len());
    for atvs in rdns {
        let set = SetOfVec::try_from(atvs).map_err(enc)?;
        seq.push(RelativeDistinguishedName::from(set));
    }
    // `Name` has no public constructor from its RDN sequence; both share one DER encoding.
    let der = RdnSequence::from(seq).to_der().map_err(enc)?;
    Name::from_der(&der).map_err(enc)
}

/// Parse an RFC 4514 string such as `"CN=Registrar,O=Example"` into a DN.
///
/// As in RFC 4514 §2.1 the leftmost RDN is the *last* one in DER order. Multi-valued RDNs
/// (`+`), `\`-escapes (special characters and `\XX` hex pairs) and `#`-hex DER values are
/// understood; unescaped spaces around types, `=` and separators are ignored. Attribute types
/// are the short names of RFC 4519 (case-insensitive) or dotted OIDs.
pub fn parse_name(s: &str) -> Result<Name, NameError> {
    if s.trim().is_empty() {
        return Err(NameError::Empty);
    }
    let bytes = s.as_bytes();
    let mut rdns: Vec<Vec<AttributeTypeAndValue>> = Vec::new();
    let mut current = Vec::new();
    let mut pos = 0;
    loop {
        let rest = s.get(pos..).unwrap_or_default();
        let eq = match rest.find(['=', ',', '+']) {
            Some(i) if rest.as_bytes().get(i) == Some(&b'=') => i,
            _ => return Err(NameError::MissingEquals(rest.trim().to_string())),
        };
        let ty = rest.get(..eq).unwrap_or_default().trim();
        let oid = attribute_type(ty)?;
        pos += eq + 1;
        let (value, next, end) = parse_value(bytes, pos, oid)?;
        current.push(AttributeTypeAndValue { oid, value });
        pos = next;
        match end {
            End::Input => {
                rdns.push(current);
                break;
            }
            End::Rdn => rdns.push(std::mem::take(&mut current)),
            End::Multi => {}
        }
    }
    rdns.reverse();
    name_from_rdns(rdns)
}

fn attribute_type(ty: &str) -> Result<ObjectIdentifier, NameError> {
    if let Some((_, oid)) = ATTRIBUTE_TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(ty))
    {
        return Ok(*oid);
    }
    if ty.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(oid) = ObjectIdentifier::new(ty) {
            return Ok(oid);
        }
    }
    Err(NameError::UnknownAttribute(ty.to_string()))
}

enum End {
    Input,
    Rdn,
    Multi,
}

/// Parse one attribute value starting at `start`; returns the value, the index after the
/// separator, and which separator ended it.
fn parse_value(
    bytes: &[u8],
    start: usize,
    oid: ObjectIdentifier,
) -> Result<(Any, usize, End), NameError> {
    let mut i = start;
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    let value_start = i;
    let mut out = Vec::new();
    // Length of `out` up to its last escaped or non-space byte: unescaped trailing spaces go.
    let mut keep = 0;
    let mut end = End::Input;
    let hex_form = bytes.get(i) == Some(&b'#');
    if hex_form {
        i += 1;
    }
    while let Some(&b) = bytes.get(i) {
        match b {
            b',' | b';' => {
                end = End::Rdn;
                i += 1;
                break;
            }
            b'+' => {
                end = End::Multi;
                i += 1;
                break;
            }
            b'\\' if !hex_form => {
                let escaped = escape_at(bytes, i + 1).ok_or_else(|| {
                    NameError::BadEscape(lossy(bytes.get(value_start..).unwrap_or_default()))
                })?;
                out.push(escaped.0);
                keep = out.len();
                i += 1 + escaped.1;
            }
            _ => {
                out.push(b);
                if b != b' ' {
                    keep = out.len();
                }
                i += 1;
            }
        }
    }
    out.truncate(keep);
    let value = if hex_form {
        let text = String::from_utf8_lossy(&out);
        let der = hex::decode(text.trim()).map_err(|e| NameError::InvalidValue {
            oid,
            reason: format!("bad #hex value: {e}"),
        })?;
        Any::from_der(&der).map_err(|e| NameError::InvalidValue {
            oid,
            reason: format!("#hex value is not DER: {e}"),
        })?
    } else {
        let text = String::from_utf8(out).map_err(|_| NameError::InvalidValue {
            oid,
            reason: "escaped bytes are not UTF-8".into(),
        })?;
        attribute_value(oid, &text)?
    };
    Ok((value, i, end))
}

/// The byte an escape at `at` (just after the backslash) stands for, and how many input bytes
/// it used (RFC 4514 §2.4, §3).
fn escape_at(bytes: &[u8], at: usize) -> Option<(u8, usize)> {
    let first = *bytes.get(at)?;
    if b" \"#+,;<=>\\".contains(&first) {
        return Some((first, 1));
    }
    let hi = (first as char).to_digit(16)?;
    let lo = (*bytes.get(at + 1)? as char).to_digit(16)?;
    Some((u8::try_from(hi * 16 + lo).ok()?, 2))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Tag;
    use der::Tagged;

    fn tags(name: &Name) -> Vec<(ObjectIdentifier, Tag)> {
        name.iter().map(|a| (a.oid, a.value.tag())).collect()
    }

    #[test]
    fn rfc5280_4_1_2_4_string_types() {
        let name = build_name(&[
            (rfc4519::C, "NL"),
            (rfc4519::O, "Vendor"),
            (rfc4519::DC, "example"),
            (rfc4519::SERIAL_NUMBER, "00-D0-E5-F2-00-02"),
        ])
        .expect("name");
        assert_eq!(
            tags(&name),
            vec![
                (rfc4519::C, Tag::PrintableString),
                (rfc4519::O, Tag::Utf8String),
                (rfc4519::DC, Tag::Ia5String),
                (rfc4519::SERIAL_NUMBER, Tag::PrintableString),
            ]
        );
        // '_' is outside the PrintableString set.
        let name = build_name(&[(rfc4519::SERIAL_NUMBER, "serial_1")]).expect("name");
        assert_eq!(tags(&name), vec![(rfc4519::SERIAL_NUMBER, Tag::Utf8String)]);
    }

    #[test]
    fn rfc4514_parse_reverses_and_round_trips_display() {
        let name = parse_name("CN=Registrar,O=Example Org,C=NL").expect("parse");
        let oids: Vec<_> = name.iter().map(|a| a.oid).collect();
        assert_eq!(oids, vec![rfc4519::C, rfc4519::O, rfc4519::CN]);
        assert_eq!(
            name,
            build_name(&[
                (rfc4519::C, "NL"),
                (rfc4519::O, "Example Org"),
                (rfc4519::CN, "Registrar")
            ])
            .expect("build")
        );
        assert_eq!(parse_name(&name.to_string()).expect("reparse"), name);
    }

    #[test]
    fn rfc4514_escapes_multivalue_hex_and_openssl_spacing() {
        let name = parse_name(r"CN=a\,b\2Bc\20,O=x").expect("parse");
        let cn = name.common_name().expect("cn").expect("present");
        assert_eq!(cn.value(), "a,b+c ");
        let name = parse_name("CN=x+serialNumber=42").expect("multi");
        assert_eq!(name.iter_rdn().count(), 1);
        assert_eq!(name.iter().count(), 2);
        let name = parse_name("CN=#0c03616263").expect("hex");
        assert_eq!(
            name.common_name().expect("cn").expect("present").value(),
            "abc"
        );
        let spaced = parse_name("CN = x, O = example Inc , C = US").expect("spaced");
        assert_eq!(
            spaced,
            parse_name("CN=x,O=example Inc,C=US").expect("compact")
        );
        let by_oid = parse_name("2.5.4.3=x").expect("oid");
        assert_eq!(by_oid, parse_name("cn=x").expect("lower"));
    }

    #[test]
    fn rfc4514_rejections() {
        assert_eq!(parse_name("  "), Err(NameError::Empty));
        assert!(matches!(
            parse_name("CN=x,O"),
            Err(NameError::MissingEquals(s)) if s == "O"
        ));
        assert!(matches!(
            parse_name("XX=1"),
            Err(NameError::UnknownAttribute(s)) if s == "XX"
        ));
        assert!(matches!(
            parse_name(r"CN=a\q"),
            Err(NameError::BadEscape(_))
        ));
        assert!(matches!(
            parse_name("C=NLD"),
            Err(NameError::InvalidValue { oid, .. }) if oid == rfc4519::C
        ));
        assert!(matches!(
            parse_name("CN="),
            Err(NameError::InvalidValue { oid, .. }) if oid == rfc4519::CN
        ));
        assert!(matches!(
            parse_name(r"CN=\ff"),
            Err(NameError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse_name("CN=#zz"),
            Err(NameError::InvalidValue { .. })
        ));
        let long = "x".repeat(65);
        assert!(matches!(
            build_name(&[(rfc4519::CN, &long)]),
            Err(NameError::InvalidValue { .. })
        ));
        assert!(matches!(
            build_name(&[(rfc3280::EMAIL_ADDRESS, "ü@example.com")]),
            Err(NameError::InvalidValue { .. })
        ));
    }

    #[test]
    fn name_from_parts_orders_o_cn_serial() {
        let name = name_from_parts(Some("pledge"), Some("Vendor"), Some("JADA1")).expect("name");
        assert_eq!(name.to_string(), "SERIALNUMBER=JADA1,CN=pledge,O=Vendor");
    }
}
