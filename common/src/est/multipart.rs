//! `application/multipart-core` (RFC 8710 §2; content format 62), used by EST-coaps for
//! server-side key generation (RFC 9148 §5.3) and for `/crts` with several certificates
//! (cBRSKI §6.7.5).
//!
//! ```text
//! multipart-core = [* multipart-part]
//! multipart-part = (type: uint .size 2, part: bytes / null)
//! ```

use super::{ContentFormat, EstError};
use ciborium::Value;
use der::{Decode, Encode};
use x509_cert::Certificate;

/// One representation in a multipart-core body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartPart {
    pub content_format: ContentFormat,
    /// The representation; `None` is CBOR `null`, an optional part that is not given.
    pub representation: Option<Vec<u8>>,
}

impl MultipartPart {
    /// A part carrying `representation`.
    pub fn new(content_format: ContentFormat, representation: impl Into<Vec<u8>>) -> Self {
        Self {
            content_format,
            representation: Some(representation.into()),
        }
    }
}

/// Append a CBOR head (RFC 8949 §3) with the shortest argument encoding.
fn head(major: u8, value: u64, out: &mut Vec<u8>) {
    let major = major << 5;
    match value {
        0..=23 => out.push(major | value as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, value as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

/// RFC 8710 §2: encode `parts` as a definite-length CBOR array.
pub fn encode_multipart_core(parts: &[MultipartPart]) -> Vec<u8> {
    let mut out = Vec::new();
    head(4, 2 * parts.len() as u64, &mut out);
    for part in parts {
        head(0, u64::from(part.content_format.0), &mut out);
        match &part.representation {
            Some(bytes) => {
                head(2, bytes.len() as u64, &mut out);
                out.extend_from_slice(bytes);
            }
            None => out.push(0xf6),
        }
    }
    out
}

/// RFC 8710 §2: decode a multipart-core body. The format is strict: anything that is not an
/// array of (uint ≤ 65535, bytes or null) pairs, or trailing data, is rejected.
pub fn decode_multipart_core(bytes: &[u8]) -> Result<Vec<MultipartPart>, EstError> {
    let malformed = |reason: &str| EstError::Malformed(format!("multipart-core: {reason}"));
    let mut reader = bytes;
    let value: Value =
        ciborium::from_reader(&mut reader).map_err(|e| malformed(&format!("CBOR: {e}")))?;
    if !reader.is_empty() {
        return Err(malformed("trailing data after the array"));
    }
    let Value::Array(items) = value else {
        return Err(malformed("not an array"));
    };
    if items.len() % 2 != 0 {
        return Err(malformed("odd number of array elements"));
    }
    let mut parts = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(format), Some(representation)) = (items.next(), items.next()) {
        let Value::Integer(format) = format else {
            return Err(malformed("content format is not an unsigned integer"));
        };
        let format =
            u16::try_from(format).map_err(|_| malformed("content format is not a uint .size 2"))?;
        let representation = match representation {
            Value::Bytes(b) => Some(b),
            Value::Null => None,
            _ => return Err(malformed("representation is neither bytes nor null")),
        };
        parts.push(MultipartPart {
            content_format: ContentFormat(format),
            representation,
        });
    }
    Ok(parts)
}

/// cBRSKI §6.7.5: the `/crts` multipart body `[287, cert, 287, cert, …]`, in the order given
/// (the issuer of the client's certificate first, up to the domain's top CA).
pub fn encode_crts_multipart(certs: &[Certificate]) -> Result<Vec<u8>, EstError> {
    if certs.is_empty() {
        return Err(EstError::NoCertificates);
    }
    let mut parts = Vec::with_capacity(certs.len());
    for cert in certs {
        let der = cert.to_der().map_err(|e| EstError::Encode(e.to_string()))?;
        parts.push(MultipartPart::new(ContentFormat::PKIX_CERT, der));
    }
    Ok(encode_multipart_core(&parts))
}

/// cBRSKI §6.7.5: the certificates of a `/crts` multipart body; every part must be a
/// `application/pkix-cert` (287) DER certificate.
pub fn decode_crts_multipart(bytes: &[u8]) -> Result<Vec<Certificate>, EstError> {
    let mut certs = Vec::new();
    for part in decode_multipart_core(bytes)? {
        if part.content_format != ContentFormat::PKIX_CERT {
            return Err(EstError::UnexpectedContentFormat(part.content_format.0));
        }
        let der = part
            .representation
            .ok_or_else(|| EstError::Malformed("multipart-core: /crts part is null".to_string()))?;
        certs.push(
            Certificate::from_der(&der)
                .map_err(|e| EstError::Malformed(format!("certificate in /crts: {e}")))?,
        );
    }
    if certs.is_empty() {
        return Err(EstError::NoCertificates);
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_use_the_shortest_form() {
        for (value, expected) in [
            (0u64, vec![0x00]),
            (23, vec![0x17]),
            (24, vec![0x18, 24]),
            (255, vec![0x18, 0xff]),
            (256, vec![0x19, 0x01, 0x00]),
            (65535, vec![0x19, 0xff, 0xff]),
            (65536, vec![0x1a, 0, 1, 0, 0]),
            (1 << 32, vec![0x1b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ] {
            let mut out = Vec::new();
            head(0, value, &mut out);
            assert_eq!(out, expected, "{value}");
        }
    }

    #[test]
    fn null_part_round_trips() {
        let parts = vec![
            MultipartPart {
                content_format: ContentFormat::PKCS8,
                representation: None,
            },
            MultipartPart::new(ContentFormat(0), b"x".to_vec()),
        ];
        let bytes = encode_multipart_core(&parts);
        assert_eq!(bytes, [0x84, 0x19, 0x01, 0x1c, 0xf6, 0x00, 0x41, b'x']);
        assert_eq!(decode_multipart_core(&bytes).expect("decodes"), parts);
    }
}
