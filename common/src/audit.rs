//! The MASA audit log (RFC 8995 §5.8.1) and the domainID that identifies a registrar in it
//! (RFC 8995 §5.8.2).
//!
//! ```text
//! audit-log-response = { "version": uint, "events": [ + event ],
//!   "truncation": { ? "nonced duplicates": uint, ? "nonceless duplicates": uint,
//!                   ? "arbitrary": uint } }
//! event = { "date": text, "domainID": text, "nonce": text / null,
//!   "assertion": "verified" / "logged" / "proximity", ? "truncated": uint }
//! ```
//!
//! Encoding is strict: integers, `"nonce": null` for nonceless entries, `truncation` omitted when
//! all counters are zero. Decoding is lenient where the RFC's own example is: numbers written as
//! strings (`"version":"1"`, `"truncated":"0"`), missing counters (= 0), a missing `nonce`
//! (= nonceless), unknown keys (ignored; a version above 1 may add information).

use crate::input::decode_base64_lenient;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The audit-log version this crate writes (RFC 8995 §5.8.1).
pub const VERSION: u64 = 1;

/// Why an audit log could not be decoded or encoded, or a domainID not computed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Not well-formed JSON.
    #[error("audit log is not valid JSON: {0}")]
    Json(String),
    /// The top level, an event or `truncation` is not a JSON object.
    #[error("{0} is not a JSON object")]
    NotAnObject(&'static str),
    /// A mandatory field is absent (`version`, `events`, or an event's `date`, `domainID`,
    /// `assertion`).
    #[error("audit log lacks the mandatory field \"{0}\"")]
    MissingField(&'static str),
    /// A field holds a value of the wrong type.
    #[error("audit log field \"{field}\" is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// An event's `date` is not an RFC 3339 date-time.
    #[error("audit log date {0:?} is not an RFC 3339 date-time")]
    BadDate(String),
    /// Serialization failed.
    #[error("audit log encoding failed: {0}")]
    Encode(String),
}

/// Why the MASA issued a voucher (RFC 8995 §5.8.3, RFC 8366bis §5.3 `assertion`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Assertion {
    Verified,
    Logged,
    Proximity,
    /// A value this crate does not know (a later voucher revision), kept as sent.
    Other(String),
}

impl Assertion {
    /// The JSON text of the value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Verified => "verified",
            Self::Logged => "logged",
            Self::Proximity => "proximity",
            Self::Other(s) => s,
        }
    }

    /// The value for a JSON text.
    pub fn from_text(text: &str) -> Self {
        match text {
            "verified" => Self::Verified,
            "logged" => Self::Logged,
            "proximity" => Self::Proximity,
            other => Self::Other(other.to_string()),
        }
    }
}

/// One voucher issuance in the log (RFC 8995 §5.8.1 `event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// `date`: when the voucher was issued, RFC 3339 text as sent.
    pub date: String,
    /// `domainID`: base64 of the domainID bytes (RFC 8995 §5.8.2), as sent.
    pub domain_id: String,
    /// `nonce`: the voucher's nonce as sent; `None` for a nonceless voucher (JSON `null`).
    pub nonce: Option<String>,
    /// `assertion`.
    pub assertion: Assertion,
    /// `truncated`: how many events for this domainID were abridged into this one.
    pub truncated: Option<u64>,
}

impl AuditEvent {
    /// The parsed `date`.
    pub fn date_time(&self) -> Result<OffsetDateTime, AuditError> {
        OffsetDateTime::parse(&self.date, &Rfc3339)
            .map_err(|_| AuditError::BadDate(self.date.clone()))
    }

    /// The domainID bytes (base64 decoded), if `domain_id` is valid base64.
    pub fn domain_id_bytes(&self) -> Option<Vec<u8>> {
        decode_base64_lenient(self.domain_id.as_bytes())
    }
}

/// `truncation`: counts of events removed from the log (RFC 8995 §5.8.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Truncation {
    /// `"nonced duplicates"`: nonced events abridged into a later one for the same domainID.
    pub nonced_duplicates: u64,
    /// `"nonceless duplicates"`: likewise for nonceless events.
    pub nonceless_duplicates: u64,
    /// `"arbitrary"`: events removed only to shorten the log.
    pub arbitrary: u64,
}

impl Truncation {
    /// Whether nothing was removed (the `truncation` member MAY then be omitted).
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// The audit-log response (RFC 8995 §5.8.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditLog {
    /// `version`; [`VERSION`] today. A larger value is an enhanced format.
    pub version: u64,
    /// `events`, in the order sent.
    pub events: Vec<AuditEvent>,
    /// `truncation` (all zero when absent).
    pub truncation: Truncation,
}

impl AuditLog {
    /// A version-1 log of `events`, nothing truncated.
    pub fn new(events: Vec<AuditEvent>) -> Self {
        Self {
            version: VERSION,
            events,
            truncation: Truncation::default(),
        }
    }

    /// RFC 8995 §5.8.1: the `application/json` body, strict form.
    pub fn to_json(&self) -> Result<Vec<u8>, AuditError> {
        let events: Vec<EventJson<'_>> = self
            .events
            .iter()
            .map(|e| EventJson {
                date: &e.date,
                domain_id: &e.domain_id,
                nonce: e.nonce.as_deref(),
                assertion: e.assertion.as_str(),
                truncated: e.truncated,
            })
            .collect();
        let t = &self.truncation;
        let log = LogJson {
            version: self.version,
            events,
            truncation: (!t.is_zero()).then_some(TruncationJson {
                nonced_duplicates: t.nonced_duplicates,
                nonceless_duplicates: t.nonceless_duplicates,
                arbitrary: t.arbitrary,
            }),
        };
        serde_json::to_vec(&log).map_err(|e| AuditError::Encode(e.to_string()))
    }

    /// RFC 8995 §5.8.1: decode an audit-log body (lenient, see the module documentation).
    /// Every event's `date` must be an RFC 3339 date-time.
    pub fn from_json(bytes: &[u8]) -> Result<Self, AuditError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| AuditError::Json(e.to_string()))?;
        let Value::Object(top) = value else {
            return Err(AuditError::NotAnObject("audit log"));
        };
        let version = lenient_uint(
            top.get("version")
                .ok_or(AuditError::MissingField("version"))?,
            "version",
        )?;
        let Some(events) = top.get("events") else {
            return Err(AuditError::MissingField("events"));
        };
        let Value::Array(events) = events else {
            return Err(AuditError::WrongType {
                field: "events",
                expected: "an array",
            });
        };
        let events = events
            .iter()
            .map(decode_event)
            .collect::<Result<Vec<_>, _>>()?;
        let truncation = match top.get("truncation") {
            None | Some(Value::Null) => Truncation::default(),
            Some(Value::Object(t)) => Truncation {
                nonced_duplicates: counter(t, "nonced duplicates")?,
                nonceless_duplicates: counter(t, "nonceless duplicates")?,
                arbitrary: counter(t, "arbitrary")?,
            },
            Some(_) => return Err(AuditError::NotAnObject("truncation")),
        };
        Ok(Self {
            version,
            events,
            truncation,
        })
    }

    /// RFC 8995 §5.8.1 abridging: for each domainID keep only the most recent nonced and the most
    /// recent nonceless event. The kept event's `truncated` grows by the events folded into it
    /// (including what those had already absorbed), and `truncation` counts the events removed
    /// now. Events stay in their original order; `arbitrary` is unchanged.
    ///
    /// "Most recent" compares the parsed dates; a date that does not parse counts as older than
    /// any that does, and between equal dates the event later in the list wins. domainIDs are
    /// compared as sent.
    pub fn abridge(&self) -> AuditLog {
        // (domainID, nonced?) -> index of the event kept so far.
        let mut latest: HashMap<(&str, bool), usize> = HashMap::new();
        let dates: Vec<Option<OffsetDateTime>> =
            self.events.iter().map(|e| e.date_time().ok()).collect();
        for (i, event) in self.events.iter().enumerate() {
            let key = (event.domain_id.as_str(), event.nonce.is_some());
            let keep_i = match latest.get(&key) {
                Some(&j) if dates.get(j) > dates.get(i) => j,
                _ => i,
            };
            latest.insert(key, keep_i);
        }
        let mut folded: HashMap<usize, u64> = HashMap::new();
        let mut truncation = self.truncation;
        for (i, event) in self.events.iter().enumerate() {
            let key = (event.domain_id.as_str(), event.nonce.is_some());
            let Some(&kept) = latest.get(&key) else {
                continue;
            };
            if kept == i {
                continue;
            }
            let absorbed = 1u64.saturating_add(event.truncated.unwrap_or(0));
            let slot = folded.entry(kept).or_insert(0);
            *slot = slot.saturating_add(absorbed);
            let counter = if event.nonce.is_some() {
                &mut truncation.nonced_duplicates
            } else {
                &mut truncation.nonceless_duplicates
            };
            *counter = counter.saturating_add(1);
        }
        let events = self
            .events
            .iter()
            .enumerate()
            .filter(|(i, e)| latest.get(&(e.domain_id.as_str(), e.nonce.is_some())) == Some(i))
            .map(|(i, e)| {
                let mut e = e.clone();
                if let Some(extra) = folded.get(&i) {
                    e.truncated = Some(e.truncated.unwrap_or(0).saturating_add(*extra));
                }
                e
            })
            .collect();
        AuditLog {
            version: self.version,
            events,
            truncation,
        }
    }
}

fn decode_event(value: &Value) -> Result<AuditEvent, AuditError> {
    let Value::Object(event) = value else {
        return Err(AuditError::NotAnObject("event"));
    };
    let text = |field: &'static str| -> Result<String, AuditError> {
        match event.get(field) {
            None => Err(AuditError::MissingField(field)),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(AuditError::WrongType {
                field,
                expected: "a string",
            }),
        }
    };
    let date = text("date")?;
    if OffsetDateTime::parse(&date, &Rfc3339).is_err() {
        return Err(AuditError::BadDate(date));
    }
    let nonce = match event.get("nonce") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(AuditError::WrongType {
                field: "nonce",
                expected: "a string or null",
            });
        }
    };
    let truncated = match event.get("truncated") {
        None | Some(Value::Null) => None,
        Some(v) => Some(lenient_uint(v, "truncated")?),
    };
    Ok(AuditEvent {
        date,
        domain_id: text("domainID")?,
        nonce,
        assertion: Assertion::from_text(&text("assertion")?),
        truncated,
    })
}

/// A truncation counter; absent or `null` = 0.
fn counter(map: &Map<String, Value>, field: &'static str) -> Result<u64, AuditError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => lenient_uint(v, field),
    }
}

/// An unsigned integer, or decimal digits in a string (the RFC 8995 §5.8.1 example).
fn lenient_uint(value: &Value, field: &'static str) -> Result<u64, AuditError> {
    let wrong = AuditError::WrongType {
        field,
        expected: "an unsigned integer",
    };
    match value {
        Value::Number(n) => n.as_u64().ok_or(wrong),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| wrong)
        }
        _ => Err(wrong),
    }
}

#[derive(Serialize)]
struct LogJson<'a> {
    version: u64,
    events: Vec<EventJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncation: Option<TruncationJson>,
}

#[derive(Serialize)]
struct EventJson<'a> {
    date: &'a str,
    #[serde(rename = "domainID")]
    domain_id: &'a str,
    nonce: Option<&'a str>,
    assertion: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated: Option<u64>,
}

#[derive(Serialize)]
struct TruncationJson {
    #[serde(rename = "nonced duplicates")]
    nonced_duplicates: u64,
    #[serde(rename = "nonceless duplicates")]
    nonceless_duplicates: u64,
    arbitrary: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertion_text_round_trips() {
        for text in ["verified", "logged", "proximity", "agent-proximity"] {
            assert_eq!(Assertion::from_text(text).as_str(), text);
        }
        assert_eq!(
            Assertion::from_text("agent-proximity"),
            Assertion::Other("agent-proximity".into())
        );
    }

    #[test]
    fn lenient_uint_rejects_signs_and_fractions() {
        for bad in [r#""+1""#, r#""-1""#, r#""""#, "1.5", "-1", "true"] {
            let v: Value = serde_json::from_str(bad).expect("json");
            assert!(
                matches!(
                    lenient_uint(&v, "version"),
                    Err(AuditError::WrongType {
                        field: "version",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let v: Value = serde_json::from_str(r#""42""#).expect("json");
        assert_eq!(lenient_uint(&v, "version").expect("digits"), 42);
    }
}
