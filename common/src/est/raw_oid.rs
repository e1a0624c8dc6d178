//! An OBJECT IDENTIFIER kept as its DER content octets (X.690 §8.19).
//!
//! `const_oid::ObjectIdentifier` cannot hold every OID: it rejects a second arc above 39 under
//! the root arc 2 (X.660 allows any) and arcs above 32 bits. The RFC 7030 §A.2 CSR attributes
//! example uses `2.999.1`, so CSR attributes keep OIDs in this form.

use super::EstError;
use const_oid::ObjectIdentifier;
use std::fmt;

/// An OBJECT IDENTIFIER as DER content octets: any arcs, each at most 128 bits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawOid(Vec<u8>);

impl RawOid {
    /// Validate DER content octets (X.690 §8.19.2: base-128 subidentifiers, high bit on all but
    /// the last octet of each, no leading 0x80 octet).
    pub fn from_der_content(bytes: &[u8]) -> Result<Self, EstError> {
        let malformed = |why: &str| EstError::Malformed(format!("OBJECT IDENTIFIER: {why}"));
        if bytes.is_empty() {
            return Err(malformed("empty"));
        }
        if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            return Err(malformed("last subidentifier is unterminated"));
        }
        for sub in bytes.split_inclusive(|b| b & 0x80 == 0) {
            if sub.first() == Some(&0x80) {
                return Err(malformed("subidentifier is not minimally encoded"));
            }
            if sub.len() > 19 || (sub.len() == 19 && sub.first().is_some_and(|b| *b > 0x83)) {
                return Err(malformed("arc exceeds 128 bits"));
            }
        }
        Ok(Self(bytes.to_vec()))
    }

    /// Parse dotted-decimal notation (`2.999.1`).
    pub fn new(dotted: &str) -> Result<Self, EstError> {
        let malformed = || EstError::Malformed(format!("OBJECT IDENTIFIER {dotted:?}"));
        let arcs: Vec<u128> = dotted
            .split('.')
            .map(|arc| {
                if arc.is_empty() || !arc.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                arc.parse::<u128>().ok()
            })
            .collect::<Option<_>>()
            .ok_or_else(malformed)?;
        let [first, second, rest @ ..] = arcs.as_slice() else {
            return Err(malformed());
        };
        if *first > 2 || (*first < 2 && *second > 39) {
            return Err(malformed());
        }
        let head = (first * 40).checked_add(*second).ok_or_else(malformed)?;
        let mut out = Vec::new();
        for arc in std::iter::once(head).chain(rest.iter().copied()) {
            let mut groups = Vec::new();
            let mut value = arc;
            loop {
                groups.push((value & 0x7f) as u8);
                value >>= 7;
                if value == 0 {
                    break;
                }
            }
            for (i, group) in groups.iter().enumerate().rev() {
                out.push(if i == 0 { *group } else { group | 0x80 });
            }
        }
        Ok(Self(out))
    }

    /// The DER content octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The same OID as a `const_oid` value, when that type can represent it.
    pub fn to_object_identifier(&self) -> Option<ObjectIdentifier> {
        ObjectIdentifier::from_bytes(&self.0).ok()
    }

    /// The arcs (validated: each fits in 128 bits).
    pub fn arcs(&self) -> Vec<u128> {
        let mut subids = Vec::new();
        let mut value = 0u128;
        for b in &self.0 {
            value = (value << 7) | u128::from(b & 0x7f);
            if b & 0x80 == 0 {
                subids.push(value);
                value = 0;
            }
        }
        let mut arcs = Vec::with_capacity(subids.len() + 1);
        if let Some((head, rest)) = subids.split_first() {
            let (first, second) = match *head {
                h if h < 40 => (0, h),
                h if h < 80 => (1, h - 40),
                h => (2, h - 80),
            };
            arcs.push(first);
            arcs.push(second);
            arcs.extend_from_slice(rest);
        }
        arcs
    }
}

impl From<ObjectIdentifier> for RawOid {
    fn from(oid: ObjectIdentifier) -> Self {
        Self(oid.as_bytes().to_vec())
    }
}

impl From<&ObjectIdentifier> for RawOid {
    fn from(oid: &ObjectIdentifier) -> Self {
        Self(oid.as_bytes().to_vec())
    }
}

impl PartialEq<ObjectIdentifier> for RawOid {
    fn eq(&self, other: &ObjectIdentifier) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Display for RawOid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arc) in self.arcs().iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{arc}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RawOid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawOid({self})")
    }
}

impl std::str::FromStr for RawOid {
    type Err = EstError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x690_8_19_arcs_beyond_const_oid() {
        let oid = RawOid::new("2.999.1").expect("parses");
        assert_eq!(oid.as_bytes(), [0x88, 0x37, 0x01]);
        assert_eq!(oid.to_string(), "2.999.1");
        assert_eq!(oid.to_object_identifier(), None);
        assert_eq!(
            RawOid::from_der_content(&[0x88, 0x37, 0x01]).expect("valid"),
            oid
        );
        let uuid = "2.25.329800735698586629295641978511506172918";
        assert_eq!(RawOid::new(uuid).expect("128-bit arc").to_string(), uuid);
    }

    #[test]
    fn x690_8_19_agrees_with_const_oid() {
        let known = crate::oid::CHALLENGE_PASSWORD;
        let raw = RawOid::new(&known.to_string()).expect("parses");
        assert_eq!(raw, known);
        assert_eq!(raw, RawOid::from(known));
        assert_eq!(raw.to_object_identifier(), Some(known));
        assert_eq!(raw.to_string(), known.to_string());
        assert_eq!(RawOid::new("0.39").expect("0.39").as_bytes(), [39]);
        assert_eq!(RawOid::new("1.0").expect("1.0").to_string(), "1.0");
    }

    #[test]
    fn x690_8_19_rejects_bad_encodings() {
        for bad in [&[][..], &[0x88], &[0x80, 0x01], &[0x2a, 0x80, 0x01]] {
            assert!(
                matches!(RawOid::from_der_content(bad), Err(EstError::Malformed(_))),
                "{bad:?}"
            );
        }
        let too_big = [&[0xff; 19][..], &[0x7f]].concat();
        assert!(matches!(
            RawOid::from_der_content(&too_big),
            Err(EstError::Malformed(_))
        ));
        for bad in [
            "",
            "1",
            "3.1",
            "1.40",
            "1..2",
            "1.2.x",
            "+1.2",
            "2.340282366920938463463374607431768211455",
        ] {
            assert!(
                matches!(RawOid::new(bad), Err(EstError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
