//! The registrar's protocol steps, one per operation (RFC 8995 §5, RFC 7030 §4), independent
//! of the transport. A step takes a typed request (the [`Peer`] as its secure channel
//! established it, the body, its declared format and what the client accepts) and returns an
//! [`Outcome`]: a body in a format, pending, or a refusal of a [`Class`] with its reason. Each
//! step logs the request's one outcome line.
//!
//! [`crate::http`] is the HTTPS shell around the steps; a CoAP shell (RFC 9148, cBRSKI) is the
//! second, reading its codes from the same table ([`brski_common::answer`]).

pub mod est;
pub mod telemetry;
pub mod voucher;

use brski_common::answer::Class;
use brski_common::envelope::Format;
use brski_common::est::{ContentFormat, media_type};
use brski_service::https::ConnMemo;
use std::net::SocketAddr;
use std::sync::Arc;

/// The secure transport a request came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/1.1 over TLS (RFC 8995 §5, RFC 7030 §3).
    Https,
    /// CoAP over DTLS 1.2 (RFC 9148, cBRSKI §6).
    Coaps,
}

impl Transport {
    /// The status this transport answers `class` with (what an outcome line records): the
    /// HTTP status, or the CoAP code `c.dd` written as the number `cdd` (4.15 is 415).
    pub fn status(self, class: Class) -> u16 {
        match self {
            Self::Https => class.http_status(),
            Self::Coaps => {
                let code = class.coap_code();
                u16::from(code.class()) * 100 + u16::from(code.detail())
            }
        }
    }

    /// The name in outcome lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Coaps => "coaps",
        }
    }
}

/// The client, as its secure channel established it.
#[derive(Clone, Debug)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// The client's certificate chain, DER, end entity first; empty without client
    /// authentication.
    pub certs: Arc<Vec<Vec<u8>>>,
    /// What was derived from the channel's handshake, kept for its later requests.
    pub memo: ConnMemo,
    /// The RFC 9266 `tls-exporter` channel binding, which a CSR's challengePassword must
    /// carry (RFC 7030 §3.5).
    pub channel_binding: Option<Arc<[u8]>>,
}

/// The body formats the steps read and write (RFC 8995 §5, RFC 7030 §4; CoAP content formats
/// in RFC 9148 §5.1 and cBRSKI §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// A signed voucher or voucher-request (RFC 8366bis §7.1, jws-voucher §6.1, cBRSKI §9).
    Voucher(Format),
    /// A PKCS#10 CSR (RFC 7030 §4.2.1).
    Pkcs10,
    /// Certs-only CMS (RFC 7030 §4.1.3, §4.2.3).
    CertsOnly,
    /// CSR attributes (RFC 7030 §4.5.2).
    CsrAttrs,
    /// JSON telemetry (RFC 8995 §5.7, §5.9.4).
    Json,
    /// CBOR telemetry (cBRSKI §6.3.1).
    Cbor,
}

impl Media {
    /// What a media type names, case and parameters aside (but certs-only's `smime-type`);
    /// `None` for a type this registrar does not read or write.
    pub fn from_media_type(text: &str) -> Option<Self> {
        if let Some(format) = Format::from_media_type(text) {
            return Some(Self::Voucher(format));
        }
        if ContentFormat::from_media_type(text) == Some(ContentFormat::PKCS7_CERTS_ONLY) {
            return Some(Self::CertsOnly);
        }
        match base_type(text).as_str() {
            media_type::PKCS10 => Some(Self::Pkcs10),
            media_type::CSRATTRS => Some(Self::CsrAttrs),
            media_type::JSON => Some(Self::Json),
            media_type::CBOR => Some(Self::Cbor),
            _ => None,
        }
    }

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Voucher(format) => format.media_type(),
            Self::Pkcs10 => media_type::PKCS10,
            Self::CertsOnly => media_type::PKCS7_CERTS_ONLY,
            Self::CsrAttrs => media_type::CSRATTRS,
            Self::Json => media_type::JSON,
            Self::Cbor => media_type::CBOR,
        }
    }
}

/// `type/subtype` of a media type, lower-cased, without parameters.
pub fn base_type(text: &str) -> String {
    text.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A body's format as declared: what it names, and the words it came with (quoted in a
/// refusal; a relayed voucher keeps the MASA's, RFC 8995 §5.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    /// `None`: a format this registrar does not know.
    pub media: Option<Media>,
    pub label: String,
}

impl Declared {
    /// The format a media type names.
    pub fn new(label: &str) -> Self {
        Self {
            media: Media::from_media_type(label),
            label: label.to_string(),
        }
    }

    /// `media`, in its own words.
    pub fn of(media: Media) -> Self {
        Self {
            media: Some(media),
            label: media.media_type().to_string(),
        }
    }
}

/// The formats a client accepts for the answer (RFC 9110 §12.5.1; the Accept option of
/// RFC 7252 §5.10.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepts {
    /// None named: whatever the step answers.
    Anything,
    /// The ranges this registrar knows, in the client's order, and the client's words.
    Ranges { ranges: Vec<Range>, label: String },
    /// Named, but not readably (an HTTP Accept header that is not ASCII).
    Unreadable,
}

/// A range of acceptable formats with its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub media: MediaRange,
    /// The weight in thousandths (RFC 9110 §12.4.2); 0 refuses the range.
    pub q: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaRange {
    /// `*/*`.
    Any,
    /// `application/*` (every [`Media`] is one).
    AnyApplication,
    Media(Media),
}

impl MediaRange {
    fn name(self) -> &'static str {
        match self {
            Self::Any => "*/*",
            Self::AnyApplication => "application/*",
            Self::Media(media) => media.media_type(),
        }
    }
}

impl Accepts {
    /// Whether an answer in `media` (`None`: a format this registrar does not know) is
    /// acceptable.
    pub fn allows(&self, media: Option<Media>) -> bool {
        match self {
            Self::Anything => true,
            Self::Unreadable => false,
            Self::Ranges { ranges, .. } => ranges.iter().any(|r| {
                r.q > 0
                    && match r.media {
                        MediaRange::Any | MediaRange::AnyApplication => true,
                        MediaRange::Media(m) => Some(m) == media,
                    }
            }),
        }
    }

    /// An HTTP Accept header that asks for what the client accepts (the registrar's request
    /// to the MASA, RFC 8995 §5.4): its ranges in its order, with their weights; `None` when
    /// it named none.
    pub fn to_header(&self) -> Option<String> {
        let Self::Ranges { ranges, .. } = self else {
            return None;
        };
        let items: Vec<String> = ranges
            .iter()
            .map(|r| match r.q {
                1000.. => r.media.name().to_string(),
                q => format!("{};q={}", r.media.name(), f32::from(q) / 1000.0),
            })
            .collect();
        Some(items.join(", "))
    }
}

/// A body and its format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub format: Declared,
    pub bytes: Vec<u8>,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (class [`Class::Content`] or [`Class::Changed`]), answered with `payload` or, when
    /// there is nothing to send back, with the class alone.
    Done {
        class: Class,
        payload: Option<Payload>,
    },
    /// Not yet: ask again after `retry_after` seconds (RFC 7030 §4.2.3, RFC 9148 §5.7).
    Pending { reason: String, retry_after: u64 },
    /// Refused (RFC 8995 §5.6).
    Refused(Refusal),
}

impl Outcome {
    /// The class the outcome is answered with.
    pub fn class(&self) -> Class {
        match self {
            Self::Done { class, .. } => *class,
            Self::Pending { .. } => Class::Pending,
            Self::Refused(r) => r.class,
        }
    }

    /// The status `transport` answers the outcome with.
    pub fn status(&self, transport: Transport) -> u16 {
        match self {
            Self::Refused(r) => r.status(transport),
            other => transport.status(other.class()),
        }
    }
}

impl From<Refusal> for Outcome {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

/// A refusal: its class and a one-line reason (RFC 8995 §5.6: `text/plain` over HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub class: Class,
    pub reason: String,
    /// Seconds after which the client may ask again (a 429, a MASA's 503).
    pub retry_after: Option<u64>,
    /// The channel is closed after the answer (RFC 8995 §5.3: after a proximity failure).
    pub close: bool,
    /// The MASA's refusal this one relays (RFC 8995 §5.6).
    pub relayed: Option<Relayed>,
}

/// A MASA's refusal as the MASA said it, which an HTTPS answer repeats: its status (a 4xx the
/// table may not have) and its Retry-After (seconds or a date).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relayed {
    pub status: u16,
    pub retry_after: Option<String>,
}

/// Retry-After (seconds) of a 503 while the database is unavailable (RFC 9110 §10.2.3): a
/// restarting database server is usually back within seconds.
pub const STORE_RETRY_AFTER: u64 = 5;

impl Refusal {
    pub fn new(class: Class, reason: impl std::fmt::Display) -> Self {
        Self {
            class,
            reason: crate::masa_client::one_line(&reason.to_string(), 400),
            retry_after: None,
            close: false,
            relayed: None,
        }
    }

    /// A failure of this registrar (database, signing), logged with its cause.
    pub fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{what}");
        Self::new(Class::Internal, format!("internal error: {what}"))
    }

    /// A fault of the database: 503 (5.03) with Retry-After while it cannot be reached
    /// (several instances share it; it comes back), else an internal error.
    pub fn store(what: &str, e: brski_service::store::StoreFault) -> Self {
        if !e.is_unavailable() {
            return Self::internal(what, e);
        }
        tracing::warn!(error = %e, "{what}: the database is unavailable");
        Self {
            retry_after: Some(STORE_RETRY_AFTER),
            ..Self::new(
                Class::ServiceUnavailable,
                format!("{what}: the database is unavailable, try again later"),
            )
        }
    }

    /// The status `transport` answers the refusal with.
    pub fn status(&self, transport: Transport) -> u16 {
        match (transport, &self.relayed) {
            (Transport::Https, Some(relayed)) => relayed.status,
            _ => transport.status(self.class),
        }
    }
}

/// `outcome`, after its one outcome line when it ended pending or refused; a step logs a done
/// one itself, with what was done.
pub fn unfinished(op: &str, peer: &Peer, outcome: impl Into<Outcome>) -> Outcome {
    let outcome = outcome.into();
    let (what, reason) = match &outcome {
        Outcome::Done { .. } => return outcome,
        Outcome::Pending { reason, .. } => ("pending", reason),
        Outcome::Refused(r) => ("refused", &r.reason),
    };
    tracing::info!(
        peer = %peer.addr,
        transport = peer.transport.as_str(),
        status = outcome.status(peer.transport),
        outcome = what,
        reason = %reason,
        "{op}"
    );
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_name_media_both_ways() {
        for media in [
            Media::Voucher(Format::Cms),
            Media::Voucher(Format::Jws),
            Media::Voucher(Format::Cose),
            Media::Pkcs10,
            Media::CertsOnly,
            Media::CsrAttrs,
            Media::Json,
            Media::Cbor,
        ] {
            assert_eq!(Media::from_media_type(media.media_type()), Some(media));
        }
        assert_eq!(
            Media::from_media_type("Application/JSON; charset=utf-8"),
            Some(Media::Json)
        );
        assert_eq!(
            Media::from_media_type("application/voucher-cose+cbor"),
            Some(Media::Voucher(Format::Cose))
        );
        assert_eq!(Media::from_media_type("application/pkcs7-mime"), None);
        assert_eq!(Media::from_media_type("text/plain"), None);
        assert_eq!(Media::from_media_type(""), None);
        let declared = Declared::new("application/PKCS10; x=y");
        assert_eq!(declared.media, Some(Media::Pkcs10));
        assert_eq!(declared.label, "application/PKCS10; x=y");
        assert_eq!(base_type(&declared.label), "application/pkcs10");
    }

    #[test]
    fn refusals_are_one_line() {
        let r = Refusal::new(Class::Forbidden, "two\nlines");
        assert_eq!(r.reason, "two lines");
        assert_eq!(r.status(Transport::Https), 403);
        let o = Outcome::Pending {
            reason: "later".into(),
            retry_after: 60,
        };
        assert_eq!(o.status(Transport::Https), 202);
        // RFC 9148 §4.7: 5.03 (with Max-Age) over CoAP.
        assert_eq!(o.status(Transport::Coaps), 503);
        assert_eq!(r.status(Transport::Coaps), 403);
        assert_eq!(Transport::Coaps.status(Class::Content), 205);
        assert_eq!(
            Transport::Coaps.status(Class::UnsupportedContentFormat),
            415
        );
    }
}
