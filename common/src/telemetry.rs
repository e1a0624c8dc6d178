//! Status telemetry: `voucher_status` (RFC 8995 §5.7) and `enrollstatus` (RFC 8995 §5.9.4), one
//! map for both, as JSON over HTTPS and as CBOR with text keys over CoAPS (cBRSKI §6.5.1).
//!
//! ```text
//! status-post = { "version": uint, "status": bool, ? "reason": text,
//!                 ? "reason-context": { $$arbitrary-map } }
//! ```
//!
//! Encoding is strict (lowercase keys, integer version, keys in the order above). Decoding is
//! lenient where deployed peers and the RFC's own examples are: a version written as a string
//! (`"1"`), a boolean written as a string (`"true"`), `null` for an absent optional field, and
//! unknown keys, which are ignored and listed in [`StatusTelemetry::unknown`] for logging
//! (RFC 8995 §5.7).

use crate::input::B64;
use base64::Engine;
use ciborium::Value;
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// The telemetry version this crate writes (RFC 8995 §5.7).
pub const VERSION: u64 = 1;

/// The largest telemetry body a registrar accepts, in bytes. The CDDL of RFC 8995 §5.7 (also
/// used by §5.9.4) is a version, a boolean, a human-readable reason and a small context map:
/// 4 KiB holds a long reason with room to spare.
pub const MAX_BODY_BYTES: usize = 4096;

/// How many characters of `reason` a registrar stores (RFC 8995 §5.7: a human-readable
/// explanation, not a document).
pub const MAX_STORED_REASON_CHARS: usize = 1024;

/// The first `max_chars` characters of `s`.
pub fn truncate_chars(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Why a telemetry body could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Not well-formed JSON.
    #[error("telemetry is not valid JSON: {0}")]
    Json(String),
    /// Not well-formed CBOR, or data after the map.
    #[error("telemetry is not valid CBOR: {0}")]
    Cbor(String),
    /// The top level is not a map (JSON object).
    #[error("telemetry is not a map")]
    NotAMap,
    /// A mandatory field (`version`, `status`) is absent.
    #[error("telemetry lacks the mandatory field \"{0}\"")]
    MissingField(&'static str),
    /// A field holds a value of the wrong type.
    #[error("telemetry field \"{field}\" is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// A known field appears twice.
    #[error("telemetry field \"{0}\" appears more than once")]
    DuplicateField(&'static str),
    /// The `reason-context` cannot be written as JSON (a map key that is not text, an integer or
    /// a boolean).
    #[error("reason-context cannot be written as JSON: {0}")]
    NotJson(String),
    /// Serialization failed.
    #[error("telemetry encoding failed: {0}")]
    Encode(String),
}

/// The `reason-context` map (RFC 8995 §5.7: `{ $$arbitrary-map }`), kept as CBOR data items in
/// their original order so that JSON and CBOR bodies both round-trip. Keys may be integers in
/// CBOR (cBRSKI App. B.2 uses `{0: "Additional information"}`).
///
/// Written as JSON, integer and boolean keys become their decimal or `true`/`false` text, byte
/// strings become standard base64 text and tags are dropped (their content is written).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReasonContext(pub Vec<(Value, Value)>);

impl ReasonContext {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an entry (builder style).
    pub fn with(mut self, key: impl Into<Value>, value: impl Into<Value>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }

    /// The value of the first entry whose key is the text `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
    }
}

/// A voucher status (RFC 8995 §5.7) or enrollment status (RFC 8995 §5.9.4) report.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusTelemetry {
    /// `version`; [`VERSION`] today. A larger value is an extended format (log and alert).
    pub version: u64,
    /// `status`: whether the voucher validated / the enrollment succeeded.
    pub status: bool,
    /// `reason`: human-readable explanation; SHOULD be present on failure.
    pub reason: Option<String>,
    /// `reason-context`: additional information, not standardized.
    pub reason_context: Option<ReasonContext>,
    /// Keys the decoder did not know, in order (RFC 8995 §5.7: log and ignore). Never encoded.
    pub unknown: Vec<String>,
}

impl StatusTelemetry {
    /// A success report without a reason.
    pub fn success() -> Self {
        Self {
            version: VERSION,
            status: true,
            reason: None,
            reason_context: None,
            unknown: Vec::new(),
        }
    }

    /// A failure report with `reason` (RFC 8995 §5.7: SHOULD be given on failure).
    pub fn failure(reason: impl Into<String>) -> Self {
        Self {
            status: false,
            reason: Some(reason.into()),
            ..Self::success()
        }
    }

    /// Attach a `reason-context`.
    pub fn with_reason_context(mut self, context: ReasonContext) -> Self {
        self.reason_context = Some(context);
        self
    }

    /// RFC 8995 §5.7: a version above [`VERSION`] is a format this crate only partly knows.
    pub fn is_newer_version(&self) -> bool {
        self.version > VERSION
    }

    /// RFC 8995 §5.7: the `application/json` body.
    pub fn to_json(&self) -> Result<Vec<u8>, TelemetryError> {
        serde_json::to_vec(&JsonTelemetry(self)).map_err(|e| TelemetryError::NotJson(e.to_string()))
    }

    /// RFC 8995 §5.7: decode an `application/json` body.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TelemetryError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| TelemetryError::Json(e.to_string()))?;
        Self::from_value(value)
    }

    /// cBRSKI §6.5.1: the `application/cbor` (content format 60) body, text keys.
    pub fn to_cbor(&self) -> Result<Vec<u8>, TelemetryError> {
        let mut map = vec![
            (Value::from("version"), Value::from(self.version)),
            (Value::from("status"), Value::from(self.status)),
        ];
        if let Some(reason) = &self.reason {
            map.push((Value::from("reason"), Value::from(reason.as_str())));
        }
        if let Some(context) = &self.reason_context {
            map.push((Value::from("reason-context"), Value::Map(context.0.clone())));
        }
        let mut out = Vec::new();
        ciborium::into_writer(&Value::Map(map), &mut out)
            .map_err(|e| TelemetryError::Encode(e.to_string()))?;
        Ok(out)
    }

    /// cBRSKI §6.5.1: decode an `application/cbor` body. Data after the map is rejected.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, TelemetryError> {
        let mut reader = bytes;
        let value: Value =
            ciborium::from_reader(&mut reader).map_err(|e| TelemetryError::Cbor(e.to_string()))?;
        if !reader.is_empty() {
            return Err(TelemetryError::Cbor("data after the telemetry map".into()));
        }
        Self::from_value(value)
    }

    fn from_value(value: Value) -> Result<Self, TelemetryError> {
        let Value::Map(entries) = value else {
            return Err(TelemetryError::NotAMap);
        };
        let mut version = None;
        let mut status = None;
        let mut reason: Option<Option<String>> = None;
        let mut reason_context: Option<Option<ReasonContext>> = None;
        let mut unknown = Vec::new();
        for (key, value) in entries {
            let Value::Text(key) = key else {
                unknown.push(describe_key(&key));
                continue;
            };
            match key.as_str() {
                "version" => set_once(&mut version, "version", lenient_uint(&value)?)?,
                "status" => set_once(&mut status, "status", lenient_bool(&value)?)?,
                "reason" => {
                    let text = match value {
                        Value::Text(text) => Some(text),
                        Value::Null => None,
                        _ => {
                            return Err(TelemetryError::WrongType {
                                field: "reason",
                                expected: "text",
                            });
                        }
                    };
                    set_once(&mut reason, "reason", text)?;
                }
                "reason-context" => {
                    let context = match value {
                        Value::Map(map) => Some(ReasonContext(map)),
                        Value::Null => None,
                        _ => {
                            return Err(TelemetryError::WrongType {
                                field: "reason-context",
                                expected: "a map",
                            });
                        }
                    };
                    set_once(&mut reason_context, "reason-context", context)?;
                }
                _ => unknown.push(key),
            }
        }
        Ok(Self {
            version: version.ok_or(TelemetryError::MissingField("version"))?,
            status: status.ok_or(TelemetryError::MissingField("status"))?,
            reason: reason.flatten(),
            reason_context: reason_context.flatten(),
            unknown,
        })
    }
}

fn set_once<T>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), TelemetryError> {
    if slot.is_some() {
        return Err(TelemetryError::DuplicateField(field));
    }
    *slot = Some(value);
    Ok(())
}

/// `version`: an unsigned integer, or decimal digits in a string (the RFC 8995 draft examples).
fn lenient_uint(value: &Value) -> Result<u64, TelemetryError> {
    let wrong = TelemetryError::WrongType {
        field: "version",
        expected: "an unsigned integer",
    };
    match value {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| wrong),
        Value::Text(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
            t.parse().map_err(|_| wrong)
        }
        _ => Err(wrong),
    }
}

/// `status`: a boolean, or `"true"` / `"false"` in a string (any case).
fn lenient_bool(value: &Value) -> Result<bool, TelemetryError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Text(t) if t.eq_ignore_ascii_case("true") => Ok(true),
        Value::Text(t) if t.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(TelemetryError::WrongType {
            field: "status",
            expected: "a boolean",
        }),
    }
}

/// How an unknown non-text key is reported.
fn describe_key(key: &Value) -> String {
    match key {
        Value::Integer(i) => i128::from(*i).to_string(),
        other => format!("{other:?}"),
    }
}

/// The JSON name of a CBOR map key.
fn json_key(key: &Value) -> Result<String, String> {
    match key {
        Value::Text(t) => Ok(t.clone()),
        Value::Integer(i) => Ok(i128::from(*i).to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("map key {other:?} has no JSON form")),
    }
}

/// Serializes the top-level telemetry map in the strict form.
struct JsonTelemetry<'a>(&'a StatusTelemetry);

impl Serialize for JsonTelemetry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let len = 2 + usize::from(t.reason.is_some()) + usize::from(t.reason_context.is_some());
        let mut map = serializer.serialize_map(Some(len))?;
        map.serialize_entry("version", &t.version)?;
        map.serialize_entry("status", &t.status)?;
        if let Some(reason) = &t.reason {
            map.serialize_entry("reason", reason)?;
        }
        if let Some(context) = &t.reason_context {
            map.serialize_entry("reason-context", &JsonMap(&context.0))?;
        }
        map.end()
    }
}

/// Serializes a CBOR map as a JSON object, in order.
struct JsonMap<'a>(&'a [(Value, Value)]);

impl Serialize for JsonMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(&json_key(key).map_err(S::Error::custom)?, &JsonValue(value))?;
        }
        map.end()
    }
}

/// Serializes a CBOR data item as JSON (see [`ReasonContext`] for the mapping).
struct JsonValue<'a>(&'a Value);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Integer(i) => {
                let n = i128::from(*i);
                if let Ok(u) = u64::try_from(n) {
                    serializer.serialize_u64(u)
                } else if let Ok(i) = i64::try_from(n) {
                    serializer.serialize_i64(i)
                } else {
                    serializer.serialize_i128(n)
                }
            }
            Value::Bytes(b) => serializer.serialize_str(&B64.encode(b)),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Text(t) => serializer.serialize_str(t),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Null => serializer.serialize_unit(),
            Value::Tag(_, inner) => JsonValue(inner).serialize(serializer),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&JsonValue(item))?;
                }
                seq.end()
            }
            Value::Map(entries) => JsonMap(entries).serialize(serializer),
            other => Err(S::Error::custom(format!("{other:?} has no JSON form"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_the_fields() {
        let ok = StatusTelemetry::success();
        assert_eq!(
            (ok.version, ok.status, ok.reason.as_deref()),
            (1, true, None)
        );
        let failed = StatusTelemetry::failure("bad voucher")
            .with_reason_context(ReasonContext::new().with("step", "signature"));
        assert!(!failed.status);
        assert_eq!(failed.reason.as_deref(), Some("bad voucher"));
        assert_eq!(
            failed.reason_context.as_ref().and_then(|c| c.get("step")),
            Some(&Value::from("signature"))
        );
        assert!(!failed.is_newer_version());
    }

    #[test]
    fn json_keys_for_cbor_keys() {
        assert_eq!(json_key(&Value::from(-3)).as_deref(), Ok("-3"));
        assert_eq!(json_key(&Value::from(true)).as_deref(), Ok("true"));
        assert!(json_key(&Value::Bytes(vec![1])).is_err());
    }
}
