//! The HTTP body form of EST messages: base64 of the DER (RFC 7030 §4, RFC 8951 §3.2), and
//! PKCS#10 requests (RFC 7030 §4.2.1).

use super::EstError;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use der::{Decode, Encode};
use x509_cert::request::CertReq;

/// Line length of the base64 we send (the PEM convention, RFC 7468 §2).
const LINE: usize = 64;

/// Standard alphabet; padding accepted whether present or not.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// RFC 8951 §3.2: base64 (RFC 4648 §4) of `der`, in 64-column lines each ending in CRLF.
/// Empty input gives an empty string.
pub fn encode_base64_body(der: &[u8]) -> String {
    let b64 = crate::input::B64.encode(der);
    let mut out = String::with_capacity(b64.len() + 2 * (b64.len() / LINE + 1));
    for (i, c) in b64.chars().enumerate() {
        if i > 0 && i % LINE == 0 {
            out.push_str("\r\n");
        }
        out.push(c);
    }
    if !out.is_empty() {
        out.push_str("\r\n");
    }
    out
}

/// RFC 8951 §3.2: decode a base64 body, ignoring white space (spaces, tabs, CR, LF) anywhere and
/// accepting missing padding. Only the standard alphabet is accepted (RFC 4648 §4).
pub fn decode_base64_body(body: &[u8]) -> Result<Vec<u8>, EstError> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(EstError::EmptyBody);
    }
    LENIENT
        .decode(&compact)
        .map_err(|e| EstError::BadBase64(e.to_string()))
}

/// RFC 7030 §4.2.1: parse a DER PKCS#10 request (`application/pkcs10`; CoAP content format 286).
/// The self-signature is not checked here.
pub fn decode_pkcs10(der: &[u8]) -> Result<CertReq, EstError> {
    CertReq::from_der(der).map_err(|e| EstError::Malformed(format!("PKCS#10 request: {e}")))
}

/// RFC 7030 §4.2.1: parse the base64 body of `/simpleenroll` or `/simplereenroll`.
pub fn decode_pkcs10_body(body: &[u8]) -> Result<CertReq, EstError> {
    decode_pkcs10(&decode_base64_body(body)?)
}

/// The DER of a PKCS#10 request.
pub fn encode_pkcs10(csr: &CertReq) -> Result<Vec<u8>, EstError> {
    csr.to_der().map_err(|e| EstError::Encode(e.to_string()))
}

/// RFC 7030 §4.2.1: the base64 body of `/simpleenroll` or `/simplereenroll`.
pub fn encode_pkcs10_body(csr: &CertReq) -> Result<String, EstError> {
    Ok(encode_base64_body(&encode_pkcs10(csr)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_64_columns_with_crlf() {
        let body = encode_base64_body(&[0xA5; 100]);
        let lines: Vec<&str> = body.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "{body:?}");
        assert_eq!(lines[0].len(), 64);
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 8);
        assert_eq!(lines[3], "", "body ends with CRLF");
        assert_eq!(body.matches('\n').count(), body.matches("\r\n").count());
        assert_eq!(
            decode_base64_body(body.as_bytes()).expect("round trip"),
            vec![0xA5; 100]
        );
    }

    #[test]
    fn exact_multiple_of_64_has_no_empty_line() {
        let body = encode_base64_body(&[7; 48]);
        assert_eq!(body.len(), 64 + 2);
        assert!(body.ends_with("\r\n"));
        assert_eq!(encode_base64_body(&[]), "");
    }

    #[test]
    fn url_alphabet_is_rejected() {
        assert!(matches!(
            decode_base64_body(b"-_-_"),
            Err(EstError::BadBase64(_))
        ));
    }

    #[test]
    fn white_space_only_is_empty() {
        assert!(matches!(
            decode_base64_body(b" \r\n\t "),
            Err(EstError::EmptyBody)
        ));
    }
}
