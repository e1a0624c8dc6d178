//! YANG-CBOR encoding of the containers (RFC 9254; RFC 8366bis §8.5, §9.3; cBRSKI §9.1,
//! §15.2.2; SPEC §2.4). Output: the container SID at the top, delta SIDs inside, enumerations
//! as integers, binary as byte strings, dates as text. Input also accepts absolute SIDs under
//! tag 47 and names instead of SIDs, mixed.

use std::collections::HashSet;

use ciborium::Value;

use super::leaf::{Container, Kind, Leaf, LeafRef, LeafValue, Schema, Seen};
use super::model::{Assertion, CborExtensionKey, DateTime, ExtensionData, ExtensionId, Nonce};
use super::{DecodeError, EncodeError, excerpt};

/// CBOR tag for an absolute SID used where a delta is expected (RFC 9254 §3.2).
const TAG_SID: u64 = 47;

/// SIDs allocated to `ietf-voucher` and `ietf-voucher-request` (RFC 8366bis §12.6): an unknown
/// absolute SID in this range is a leaf this code does not know, not extension data.
const VOUCHER_MODULES_RANGE: std::ops::RangeInclusive<u64> = 2450..=2549;

/// What a key of the container map designates.
enum Key {
    Leaf(Leaf),
    Extension(CborExtensionKey),
    Unknown,
}

/// Decode a container; the top-level key is the container's SID (plain or tag 47) or name.
pub(crate) fn decode<C: Container>(bytes: &[u8]) -> Result<C, DecodeError> {
    let schema = C::SCHEMA;
    let mut rest = bytes;
    let value: Value =
        ciborium::de::from_reader(&mut rest).map_err(|e| DecodeError::Cbor(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    let Value::Map(top) = value else {
        return Err(DecodeError::NotAnObject);
    };
    let mut container = None;
    for (key, value) in top {
        if is_root_key(schema, &key) {
            if container.is_some() {
                return Err(DecodeError::AmbiguousContainer);
            }
            container = Some(value);
        }
    }
    let Some(container) = container else {
        return Err(DecodeError::MissingContainer {
            expected: schema.json_name,
        });
    };
    let Value::Map(members) = container else {
        return Err(DecodeError::ContainerNotObject(schema.json_name));
    };

    let mut out = C::default();
    let mut seen = Seen::default();
    let mut extension_keys = HashSet::new();
    for (key, value) in members {
        match resolve_key(schema, key) {
            Key::Leaf(leaf) => {
                let Some(value) = leaf_value(leaf, value)? else {
                    continue;
                };
                seen.insert(leaf)?;
                out.set(leaf, value)?;
            }
            Key::Extension(key) => {
                if !extension_keys.insert(key.clone()) {
                    return Err(DecodeError::DuplicateMember(excerpt(&key.to_string())));
                }
                out.push_extension_data(ExtensionData::Cbor { key, value });
            }
            // Unknown leaves are ignored (RFC 8995 §5.6.1, SPEC §10.3).
            Key::Unknown => {}
        }
    }
    if !seen.contains(Leaf::SerialNumber) {
        return Err(DecodeError::MissingSerialNumber);
    }
    Ok(out)
}

fn is_root_key(schema: &Schema, key: &Value) -> bool {
    match key {
        Value::Integer(i) => u64::try_from(*i).ok() == Some(schema.sid),
        Value::Tag(TAG_SID, inner) => {
            matches!(&**inner, Value::Integer(i) if u64::try_from(*i).ok() == Some(schema.sid))
        }
        Value::Text(name) => name == schema.json_name,
        _ => false,
    }
}

fn resolve_key(schema: &Schema, key: Value) -> Key {
    match key {
        // A delta from the container's SID (RFC 9254 §3.2).
        Value::Integer(delta) => {
            let absolute = i128::from(schema.sid) + i128::from(delta);
            u64::try_from(absolute)
                .ok()
                .and_then(|sid| schema.leaf_by_sid(sid))
                .map_or(Key::Unknown, Key::Leaf)
        }
        Value::Tag(TAG_SID, inner) => match *inner {
            Value::Integer(i) => match u64::try_from(i) {
                Ok(sid) => match schema.leaf_by_sid(sid) {
                    Some(leaf) => Key::Leaf(leaf),
                    None if VOUCHER_MODULES_RANGE.contains(&sid) => Key::Unknown,
                    None => Key::Extension(CborExtensionKey::Sid(sid)),
                },
                Err(_) => Key::Unknown,
            },
            _ => Key::Unknown,
        },
        Value::Text(name) => {
            if name.contains(':') {
                Key::Extension(CborExtensionKey::Name(name))
            } else {
                schema.leaf_by_name(&name).map_or(Key::Unknown, Key::Leaf)
            }
        }
        _ => Key::Unknown,
    }
}

/// The value of `leaf` from CBOR; `None` for `null`, as in JSON.
fn leaf_value(leaf: Leaf, value: Value) -> Result<Option<LeafValue>, DecodeError> {
    let name = leaf.name();
    let wrong = |expected| DecodeError::WrongType {
        leaf: name,
        expected,
    };
    if value.is_null() {
        return Ok(None);
    }
    Ok(Some(match leaf.kind() {
        Kind::Assertion => LeafValue::Assertion(match value {
            Value::Integer(i) => u64::try_from(i)
                .ok()
                .and_then(Assertion::from_cbor_value)
                .ok_or_else(|| DecodeError::UnknownAssertion(i128::from(i).to_string()))?,
            // Names instead of enumeration integers (cBRSKI §15.2.2).
            Value::Text(s) => Assertion::from_name(&s)
                .ok_or_else(|| DecodeError::UnknownAssertion(excerpt(&s)))?,
            _ => return Err(wrong("an enumeration integer")),
        }),
        Kind::DateTime => match value {
            Value::Text(s) => LeafValue::DateTime(DateTime::parse(&s).map_err(|e| {
                DecodeError::InvalidDateTime {
                    leaf: name,
                    reason: e.to_string(),
                }
            })?),
            _ => return Err(wrong("a date-and-time text string")),
        },
        Kind::Boolean => match value {
            Value::Bool(b) => LeafValue::Boolean(b),
            _ => return Err(wrong("a boolean")),
        },
        Kind::Binary => match value {
            Value::Bytes(b) => LeafValue::Binary(b),
            _ => return Err(wrong("a byte string")),
        },
        Kind::Nonce => match value {
            Value::Bytes(b) => LeafValue::Nonce(Nonce::Bytes(b).checked()?),
            _ => return Err(wrong("a byte string")),
        },
        Kind::Text => match value {
            Value::Text(s) => LeafValue::Text(s),
            _ => return Err(wrong("a text string")),
        },
        Kind::Extensions => match value {
            Value::Array(items) => LeafValue::Extensions(
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::Integer(i) => u64::try_from(i)
                            .map(ExtensionId::Sid)
                            .map_err(|_| wrong("uint64 or text entries")),
                        Value::Text(s) => Ok(ExtensionId::Name(s)),
                        _ => Err(wrong("uint64 or text entries")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(wrong("an array")),
        },
    }))
}

/// Encode a container: `{ container-SID: { delta: value, … } }`, leaves in SID order, then
/// extension data under its absolute SID (tag 47) or name.
pub(crate) fn encode<C: Container>(container: &C) -> Result<Vec<u8>, EncodeError> {
    let parent = C::SCHEMA.sid;
    let mut members = Vec::new();
    for (sid, _, value) in container.leaves_in_sid_order() {
        let key = match sid.checked_sub(parent) {
            Some(delta) => Value::Integer(delta.into()),
            None => Value::Tag(TAG_SID, Box::new(Value::Integer(sid.into()))),
        };
        let value = match value {
            LeafRef::Assertion(a) => Value::Integer(a.cbor_value().into()),
            LeafRef::DateTime(d) => Value::Text(d.as_str().to_owned()),
            LeafRef::Boolean(b) => Value::Bool(b),
            LeafRef::Binary(bytes) => Value::Bytes(bytes.to_vec()),
            LeafRef::Nonce(nonce) => {
                Value::Bytes(nonce.to_bytes().ok_or(EncodeError::NonceNotBinary)?)
            }
            LeafRef::Text(s) => Value::Text(s.to_owned()),
            LeafRef::Extensions(ids) => Value::Array(
                ids.iter()
                    .map(|id| match id {
                        ExtensionId::Sid(sid) => Value::Integer((*sid).into()),
                        ExtensionId::Name(name) => Value::Text(name.clone()),
                    })
                    .collect(),
            ),
        };
        members.push((key, value));
    }
    for data in container.extension_data() {
        match data {
            ExtensionData::Cbor { key, value } => {
                let key = match key {
                    CborExtensionKey::Sid(sid) => {
                        Value::Tag(TAG_SID, Box::new(Value::Integer((*sid).into())))
                    }
                    CborExtensionKey::Name(name) => Value::Text(name.clone()),
                };
                members.push((key, value.clone()));
            }
            ExtensionData::Json { member, .. } => {
                return Err(EncodeError::ExtensionDataFormat(member.clone()));
            }
        }
    }
    let top = Value::Map(vec![(Value::Integer(parent.into()), Value::Map(members))]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&top, &mut out).map_err(|e| EncodeError::Cbor(e.to_string()))?;
    Ok(out)
}
