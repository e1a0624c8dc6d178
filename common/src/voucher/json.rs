//! RFC 7951 JSON encoding of the containers (RFC 8366bis §8.3, SPEC §2.3). Output is strict
//! and compact: leaves in SID order, binary as standard base64 with padding (except
//! `manufacturer-proprietary`: base64url, unpadded), no trailing newline. Input tolerates the
//! quirks of real producers (SPEC §10.3): booleans and numbers as strings, base64 with or
//! without padding or in the url alphabet, `null` for an absent leaf. Duplicate member names
//! are rejected: a signed artifact must mean one thing.

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::leaf::{Container, Kind, Leaf, LeafRef, LeafValue, Seen};
use super::model::{Assertion, DateTime, ExtensionData, ExtensionId, Nonce};
use super::{DecodeError, EncodeError, excerpt};
use crate::input::{B64, B64URL};

/// A JSON value that keeps every object member, so that duplicates can be detected (serde_json's
/// own `Value` keeps only the last one).
#[derive(Debug)]
enum Node {
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Scalar(Value),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        serde_json::Number::from_f64(v)
            .map(|n| Node::Scalar(Value::Number(n)))
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Node>()? {
            members.push(member);
        }
        Ok(Node::Object(members))
    }
}

impl Node {
    /// The serde_json value, rejecting duplicate member names at any depth.
    fn into_value(self) -> Result<Value, DecodeError> {
        Ok(match self {
            Node::Scalar(v) => v,
            Node::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(Node::into_value)
                    .collect::<Result<_, _>>()?,
            ),
            Node::Object(members) => {
                let mut map = serde_json::Map::new();
                for (key, node) in members {
                    if map.contains_key(&key) {
                        return Err(DecodeError::DuplicateMember(excerpt(&key)));
                    }
                    let value = node.into_value()?;
                    map.insert(key, value);
                }
                Value::Object(map)
            }
        })
    }
}

/// Decode a container rooted at one of `roots` (the first is the container's own name).
pub(crate) fn decode<C: Container>(bytes: &[u8], roots: &[&str]) -> Result<C, DecodeError> {
    let schema = C::SCHEMA;
    let node: Node = serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Node::Object(top) = node else {
        return Err(DecodeError::NotAnObject);
    };
    let mut top_names = HashSet::new();
    let mut container = None;
    for (key, value) in top {
        if top_names.contains(&key) {
            return Err(DecodeError::DuplicateMember(excerpt(&key)));
        }
        if roots.contains(&key.as_str()) {
            if container.is_some() {
                return Err(DecodeError::AmbiguousContainer);
            }
            container = Some(value);
        }
        top_names.insert(key);
    }
    let Some(container) = container else {
        return Err(DecodeError::MissingContainer {
            expected: schema.json_name,
        });
    };
    let Node::Object(members) = container else {
        return Err(DecodeError::ContainerNotObject(schema.json_name));
    };

    let mut out = C::default();
    let mut seen = Seen::default();
    let mut names: HashSet<String> = HashSet::new();
    for (key, node) in members {
        if names.contains(&key) {
            return Err(DecodeError::DuplicateMember(excerpt(&key)));
        }
        names.insert(key.clone());
        // A namespace-qualified member belongs to another module: extension data
        // (RFC 8366bis §8.6, RFC 7951 §4).
        if key.contains(':') {
            out.push_extension_data(ExtensionData::Json {
                member: key,
                value: node.into_value()?,
            });
            continue;
        }
        // Unknown leaves are ignored (RFC 8995 §5.6.1, SPEC §10.3).
        let Some(leaf) = schema.leaf_by_name(&key) else {
            continue;
        };
        let Some(value) = leaf_value(leaf, node)? else {
            continue;
        };
        seen.insert(leaf)?;
        out.set(leaf, value)?;
    }
    if !seen.contains(Leaf::SerialNumber) {
        return Err(DecodeError::MissingSerialNumber);
    }
    Ok(out)
}

/// The value of `leaf` from JSON; `None` for `null` (some producers write absent leaves so).
fn leaf_value(leaf: Leaf, node: Node) -> Result<Option<LeafValue>, DecodeError> {
    let name = leaf.name();
    let wrong = |expected| DecodeError::WrongType {
        leaf: name,
        expected,
    };
    let value = match node {
        Node::Scalar(Value::Null) => return Ok(None),
        other => other,
    };
    Ok(Some(match leaf.kind() {
        Kind::Assertion => LeafValue::Assertion(assertion(value)?),
        Kind::DateTime => match value {
            Node::Scalar(Value::String(s)) => {
                LeafValue::DateTime(DateTime::parse(&s).map_err(|e| {
                    DecodeError::InvalidDateTime {
                        leaf: name,
                        reason: e.to_string(),
                    }
                })?)
            }
            _ => return Err(wrong("a date-and-time string")),
        },
        Kind::Boolean => match value {
            Node::Scalar(Value::Bool(b)) => LeafValue::Boolean(b),
            // RFC 8366 §5.2's example writes "true" (SPEC §2.3 gotcha).
            Node::Scalar(Value::String(s)) if s.eq_ignore_ascii_case("true") => {
                LeafValue::Boolean(true)
            }
            Node::Scalar(Value::String(s)) if s.eq_ignore_ascii_case("false") => {
                LeafValue::Boolean(false)
            }
            _ => return Err(wrong("a boolean")),
        },
        Kind::Binary => match value {
            Node::Scalar(Value::String(s)) => LeafValue::Binary(
                decode_binary(&s).ok_or(DecodeError::InvalidBase64 { leaf: name })?,
            ),
            _ => return Err(wrong("a base64 string")),
        },
        Kind::Nonce => match value {
            Node::Scalar(Value::String(s)) => LeafValue::Nonce(Nonce::Text(s).checked()?),
            _ => return Err(wrong("a string")),
        },
        Kind::Text => match value {
            Node::Scalar(Value::String(s)) => LeafValue::Text(s),
            _ => return Err(wrong("a string")),
        },
        Kind::Extensions => match value {
            Node::Array(items) => LeafValue::Extensions(
                items
                    .into_iter()
                    .map(|item| match item {
                        Node::Scalar(Value::String(s)) => Ok(extension_id(s)),
                        Node::Scalar(Value::Number(n)) => n
                            .as_u64()
                            .map(ExtensionId::Sid)
                            .ok_or(wrong("uint64 or string entries")),
                        _ => Err(wrong("uint64 or string entries")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(wrong("an array")),
        },
    }))
}

/// The assertion from its name, or (leniently) its CBOR integer as number or string.
fn assertion(node: Node) -> Result<Assertion, DecodeError> {
    match node {
        Node::Scalar(Value::String(s)) => Assertion::from_name(&s)
            .or_else(|| s.parse::<u64>().ok().and_then(Assertion::from_cbor_value))
            .ok_or_else(|| DecodeError::UnknownAssertion(excerpt(&s))),
        Node::Scalar(Value::Number(n)) => n
            .as_u64()
            .and_then(Assertion::from_cbor_value)
            .ok_or_else(|| DecodeError::UnknownAssertion(n.to_string())),
        _ => Err(DecodeError::WrongType {
            leaf: Leaf::Assertion.name(),
            expected: "an assertion name",
        }),
    }
}

/// An `extensions` entry: RFC 7951 §6.1 writes uint64 as a decimal string, and the union tries
/// uint64 before string (RFC 7951 §6.10).
fn extension_id(s: String) -> ExtensionId {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(sid) = s.parse() {
            return ExtensionId::Sid(sid);
        }
    }
    ExtensionId::Name(s)
}

/// Lenient base64 for `binary` leaves: standard or url alphabet, padding optional, white space
/// ignored, non-zero trailing bits tolerated (the RFC placeholder `base64encodedvalue==` has
/// them).
pub(crate) fn decode_binary(text: &str) -> Option<Vec<u8>> {
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let cleaned: std::borrow::Cow<'_, [u8]> = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        text.bytes().filter(|b| !b.is_ascii_whitespace()).collect()
    } else {
        text.as_bytes().into()
    };
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(&cleaned)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, config).decode(&cleaned))
        .ok()
}

/// Encode a container as compact JSON, leaves in SID order, then extension data.
pub(crate) fn encode<C: Container>(container: &C) -> Result<Vec<u8>, EncodeError> {
    let mut out = String::with_capacity(512);
    out.push('{');
    push_string(&mut out, C::SCHEMA.json_name)?;
    out.push_str(":{");
    let mut first = true;
    for (_, leaf, value) in container.leaves_in_sid_order() {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        push_string(&mut out, leaf.name())?;
        out.push(':');
        match value {
            LeafRef::Assertion(a) => push_string(&mut out, a.as_str())?,
            LeafRef::DateTime(d) => push_string(&mut out, d.as_str())?,
            LeafRef::Boolean(b) => out.push_str(if b { "true" } else { "false" }),
            // Its YANG description asks for base64url in JSON (RFC 8366bis §8.4).
            LeafRef::Binary(bytes) if leaf == Leaf::ManufacturerProprietary => {
                push_string(&mut out, &B64URL.encode(bytes))?
            }
            LeafRef::Binary(bytes) => push_string(&mut out, &B64.encode(bytes))?,
            LeafRef::Nonce(nonce) => push_string(&mut out, &nonce.json_string())?,
            LeafRef::Text(s) => push_string(&mut out, s)?,
            LeafRef::Extensions(ids) => {
                out.push('[');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match id {
                        ExtensionId::Sid(sid) => push_string(&mut out, &sid.to_string())?,
                        ExtensionId::Name(name) => push_string(&mut out, name)?,
                    }
                }
                out.push(']');
            }
        }
    }
    for data in container.extension_data() {
        match data {
            ExtensionData::Json { member, value } => {
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
                push_string(&mut out, member)?;
                out.push(':');
                let text =
                    serde_json::to_string(value).map_err(|e| EncodeError::Json(e.to_string()))?;
                out.push_str(&text);
            }
            ExtensionData::Cbor { key, .. } => {
                return Err(EncodeError::ExtensionDataFormat(key.to_string()));
            }
        }
    }
    out.push_str("}}");
    Ok(out.into_bytes())
}

fn push_string(out: &mut String, s: &str) -> Result<(), EncodeError> {
    let quoted = serde_json::to_string(s).map_err(|e| EncodeError::Json(e.to_string()))?;
    out.push_str(&quoted);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::decode_binary;

    #[test]
    fn binary_leaves_decode_with_or_without_whitespace_and_padding() {
        let bytes = b"\x00\xfb\xff proximity";
        let standard = "APv/IHByb3hpbWl0eQ==";
        assert_eq!(decode_binary(standard).as_deref(), Some(&bytes[..]));
        assert_eq!(
            decode_binary("APv/IHBy\r\n b3hp\tbWl0eQ").as_deref(),
            Some(&bytes[..])
        );
        assert_eq!(
            decode_binary("APv_IHByb3hpbWl0eQ").as_deref(),
            Some(&bytes[..])
        );
        assert_eq!(decode_binary("APv/IHB*b3hpbWl0eQ=="), None);
    }
}
