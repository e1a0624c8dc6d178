//! JPY messages of the stateless constrained join proxy (draft-ietf-anima-constrained-join-proxy
//! §4.4, §4.5): each UDP datagram between a pledge and the registrar travels as the CBOR array
//! `[jpy_header : bstr, jpy_content : bstr]`. The header is state only the proxy reads: here
//! the pledge's link-local address, port and interface, encrypted with a key only the proxy
//! holds and authenticated, so that the registrar can echo it unchanged and a forged or altered
//! header is dropped.
//!
//! The header is deterministic for a pledge (one AES-128 block of the pledge's state, then a
//! 128-bit HMAC-SHA256 tag of that block: 32 bytes, the CJP maximum), so that the registrar,
//! which keys a DTLS session by (proxy address, header), sees one session per pledge flow.

use aws_lc_rs::cipher::{
    AES_128, DecryptingKey, DecryptionContext, EncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::hmac;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The longest header a registrar accepts (CJP §4.5.1: the proxy's state fits in 32 bytes).
pub const MAX_HEADER: usize = 32;

/// Why bytes are not a JPY message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JpyError {
    #[error("a JPY message is not well-formed CBOR: {0}")]
    Cbor(String),
    #[error("a JPY message is a CBOR array of at least two byte strings")]
    Shape,
    #[error("the JPY header is longer than {MAX_HEADER} bytes")]
    HeaderTooLong,
}

/// One JPY message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JpyMessage {
    pub header: Vec<u8>,
    pub content: Vec<u8>,
}

fn bstr_head(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=23 => out.push(0x40 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x58, len as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x5a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

impl JpyMessage {
    /// The CBOR encoding (CJP §4.5.2), definite lengths.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.header.len() + self.content.len());
        out.push(0x82);
        bstr_head(&mut out, self.header.len());
        out.extend_from_slice(&self.header);
        bstr_head(&mut out, self.content.len());
        out.extend_from_slice(&self.content);
        out
    }

    /// Decode a JPY message: an array whose first two elements are byte strings (further
    /// elements are ignored, CJP §4.5.2), the header at most [`MAX_HEADER`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, JpyError> {
        let mut reader = bytes;
        let value: ciborium::Value =
            ciborium::from_reader(&mut reader).map_err(|e| JpyError::Cbor(e.to_string()))?;
        if !reader.is_empty() {
            return Err(JpyError::Cbor("data after the array".into()));
        }
        let ciborium::Value::Array(items) = value else {
            return Err(JpyError::Shape);
        };
        let mut items = items.into_iter();
        let (Some(ciborium::Value::Bytes(header)), Some(ciborium::Value::Bytes(content))) =
            (items.next(), items.next())
        else {
            return Err(JpyError::Shape);
        };
        if header.len() > MAX_HEADER {
            return Err(JpyError::HeaderTooLong);
        }
        Ok(Self { header, content })
    }
}

/// The proxy's header key: AES-128 for the state, HMAC-SHA256 for its tag; the key schedules
/// are made once, not per datagram.
pub struct HeaderKey {
    enc: EncryptingKey,
    dec: DecryptingKey,
    mac: hmac::Key,
}

impl std::fmt::Debug for HeaderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderKey(..)")
    }
}

/// The pledge's state in one block: kind (6: link-local IPv6 by interface identifier, 4: IPv4),
/// port, interface index, address bits, zero padding.
fn state(pledge: SocketAddr) -> Option<[u8; 16]> {
    let mut b = [0u8; 16];
    b[1..3].copy_from_slice(&pledge.port().to_be_bytes());
    match pledge {
        SocketAddr::V6(a) => {
            let o = a.ip().octets();
            // fe80::/64: the prefix is implied, the interface identifier carried.
            if o[..8] != [0xfe, 0x80, 0, 0, 0, 0, 0, 0] {
                return None;
            }
            b[0] = 6;
            b[3..7].copy_from_slice(&a.scope_id().to_be_bytes());
            b[7..15].copy_from_slice(&o[8..]);
        }
        SocketAddr::V4(a) => {
            b[0] = 4;
            b[3..7].copy_from_slice(&a.ip().octets());
        }
    }
    Some(b)
}

fn pledge_of(b: &[u8; 16]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([b[1], b[2]]);
    match b[0] {
        6 if b[15] == 0 => {
            let mut o = [0u8; 16];
            o[..2].copy_from_slice(&[0xfe, 0x80]);
            o[8..].copy_from_slice(&b[7..15]);
            let scope = u32::from_be_bytes([b[3], b[4], b[5], b[6]]);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(o),
                port,
                0,
                scope,
            )))
        }
        4 if b[7..].iter().all(|x| *x == 0) => Some(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(b[3], b[4], b[5], b[6]),
            port,
        ))),
        _ => None,
    }
}

impl HeaderKey {
    /// A fresh key (CJP §4.5.1: known only to the proxy; rotated rarely).
    pub fn random() -> Result<Self, aws_lc_rs::error::Unspecified> {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        let rng = SystemRandom::new();
        let mut enc = [0u8; 16];
        let mut mac = [0u8; 32];
        rng.fill(&mut enc)?;
        rng.fill(&mut mac)?;
        Self::from_bytes(enc, &mac)
    }

    pub fn from_bytes(enc: [u8; 16], mac: &[u8]) -> Result<Self, aws_lc_rs::error::Unspecified> {
        Ok(Self {
            enc: EncryptingKey::ecb(UnboundCipherKey::new(&AES_128, &enc)?)?,
            dec: DecryptingKey::ecb(UnboundCipherKey::new(&AES_128, &enc)?)?,
            mac: hmac::Key::new(hmac::HMAC_SHA256, mac),
        })
    }

    /// The header for `pledge`: `None` for an address the header cannot carry (a pledge of
    /// a constrained proxy has a link-local IPv6 address, or IPv4).
    pub fn seal(&self, pledge: SocketAddr) -> Option<Vec<u8>> {
        let mut block = state(pledge)?;
        self.enc.encrypt(&mut block).ok()?;
        let tag = hmac::sign(&self.mac, &block);
        let mut header = block.to_vec();
        header.extend_from_slice(&tag.as_ref()[..16]);
        Some(header)
    }

    /// The pledge a header was sealed for, when it is one of this key's, unaltered.
    pub fn open(&self, header: &[u8]) -> Option<SocketAddr> {
        let (block, tag) = header.split_at_checked(16)?;
        if tag.len() != 16 {
            return None;
        }
        let expected = hmac::sign(&self.mac, block);
        // Constant-time comparison of the tag.
        if aws_lc_rs::constant_time::verify_slices_are_equal(&expected.as_ref()[..16], tag).is_err()
        {
            return None;
        }
        let mut b: [u8; 16] = block.try_into().ok()?;
        self.dec.decrypt(&mut b, DecryptionContext::None).ok()?;
        pledge_of(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pledge() -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(
            "fe80::1234:5678:9abc:def0".parse().expect("ip"),
            49152,
            0,
            7,
        ))
    }

    #[test]
    fn cjp_4_5_2_messages_encode_and_decode() {
        let m = JpyMessage {
            header: vec![1; 16],
            content: vec![0x16; 300],
        };
        let bytes = m.encode();
        assert_eq!(&bytes[..2], &[0x82, 0x50]);
        assert_eq!(JpyMessage::decode(&bytes), Ok(m));
        // Extra elements are ignored; fewer, or other types, are refused.
        assert_eq!(
            JpyMessage::decode(&[0x83, 0x41, 1, 0x41, 2, 0x01]).map(|m| (m.header, m.content)),
            Ok((vec![1], vec![2]))
        );
        assert_eq!(JpyMessage::decode(&[0x81, 0x41, 1]), Err(JpyError::Shape));
        assert_eq!(
            JpyMessage::decode(&[0x82, 0x01, 0x41, 2]),
            Err(JpyError::Shape)
        );
        assert_eq!(JpyMessage::decode(&[0xa0]), Err(JpyError::Shape));
        assert!(matches!(
            JpyMessage::decode(&[0x82, 0x41]),
            Err(JpyError::Cbor(_))
        ));
        assert!(matches!(
            JpyMessage::decode(&[0x82, 0x41, 1, 0x41, 2, 0x00]),
            Err(JpyError::Cbor(_))
        ));
        let long = JpyMessage {
            header: vec![0; 33],
            content: Vec::new(),
        };
        assert_eq!(
            JpyMessage::decode(&long.encode()),
            Err(JpyError::HeaderTooLong)
        );
    }

    #[test]
    fn cjp_appendix_a_messages_decode() {
        for (rel, content_len) in [
            ("join-proxy/A-jpy-pledge-to-registrar.hex", 427),
            ("join-proxy/A-jpy-registrar-to-proxy.hex", 60),
        ] {
            let bytes = crate::test_vectors::bytes(rel);
            let m = JpyMessage::decode(&bytes).expect(rel);
            assert_eq!(m.header.len(), 16, "{rel}");
            assert_eq!(m.content.len(), content_len, "{rel}");
            assert_eq!(m.encode(), bytes, "{rel}: the same encoding");
        }
    }

    #[test]
    fn cjp_4_5_1_a_header_opens_only_with_its_key_and_unaltered() {
        let key = HeaderKey::from_bytes([7; 16], &[9; 32]).expect("key");
        let header = key.seal(pledge()).expect("link-local");
        assert_eq!(header.len(), MAX_HEADER);
        assert_eq!(key.seal(pledge()), Some(header.clone()), "deterministic");
        assert_eq!(key.open(&header), Some(pledge()));
        // Another pledge (port) has another header.
        let other: SocketAddr = match pledge() {
            SocketAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(*a.ip(), 49153, 0, 7)),
            v4 => v4,
        };
        assert_ne!(key.seal(other), Some(header.clone()));
        // Any flipped bit, a truncation, or another key: no pledge.
        for i in 0..header.len() {
            let mut forged = header.clone();
            forged[i] ^= 0x01;
            assert_eq!(key.open(&forged), None, "byte {i}");
        }
        assert_eq!(key.open(&header[..31]), None);
        assert_eq!(key.open(&[]), None);
        let rotated = HeaderKey::from_bytes([8; 16], &[9; 32]).expect("key");
        assert_eq!(rotated.open(&header), None);
        // Global IPv6 addresses are not a constrained pledge's; IPv4 is carried.
        assert_eq!(key.seal("[2001:db8::1]:5684".parse().expect("addr")), None);
        let v4: SocketAddr = "192.0.2.7:5684".parse().expect("addr");
        assert_eq!(key.open(&key.seal(v4).expect("v4")), Some(v4));
    }
}
