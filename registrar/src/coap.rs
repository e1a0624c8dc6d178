//! The CoAPS shell around the protocol steps ([`crate::steps`]), the second beside
//! [`crate::http`]: each request's options and payload become the step's typed request, the
//! step's [`Outcome`] becomes a code of [`brski_common::answer::Class::TABLE`], a Content-Format
//! and the payload as it is (RFC 9148 §4.3: DER, no base64). Refusals carry their reason as
//! diagnostic payload (RFC 7252 §5.5.2), pending answers 5.03 with Max-Age (RFC 9148 §4.7).
//!
//! Resources: cBRSKI §6.3 `/.well-known/brski/{rv,vs,es}`; RFC 9148 §4.1 (Table 1)
//! `/.well-known/est/{crts,sen,sren,att}`, and the RFC 7030 names of the same operations;
//! `/.well-known/core` with RFC 6690 §4.1 query filtering.

use crate::db::TelemetryKind;
use crate::server::Registrar;
use crate::steps::telemetry::ReportRequest;
use crate::steps::voucher::VoucherRequest;
use crate::steps::{
    Accepts, Declared, Media, MediaRange, Outcome, Peer, Range, Refusal, Transport, est, telemetry,
    unfinished, voucher,
};
use brski_common::answer::{Class, CoapCode};
use brski_common::brski::paths;
use brski_common::discovery::link_format::{self, Link};
use brski_common::est::{ContentFormat, decode_certs_only, encode_crts_multipart};
use brski_service::coaps::{Method, Request, Response, SessionInfo};
use der::Encode;
use std::sync::atomic::Ordering;

/// 4.05 Method Not Allowed (RFC 7252 §5.9.2.6): a transport answer, not a step's class.
const METHOD_NOT_ALLOWED: CoapCode = CoapCode::new(4, 5);

/// The client of `session`.
pub fn peer(session: &SessionInfo) -> Peer {
    Peer {
        transport: Transport::Coaps,
        addr: session.peer,
        certs: session.peer_certs.clone(),
        memo: session.memo.clone(),
        channel_binding: session.channel_binding.clone(),
    }
}

/// The body's format as its Content-Format option declares it (RFC 7252 §5.10.3).
fn declared(content_format: Option<u16>) -> Option<Declared> {
    content_format.map(|n| match ContentFormat(n).media_type() {
        Some(media_type) => Declared::new(media_type),
        None => Declared {
            media: None,
            label: format!("content-format {n}"),
        },
    })
}

/// What the client accepts, as its Accept option says (RFC 7252 §5.10.4): one format.
fn accepts(accept: Option<u16>) -> Accepts {
    let Some(n) = accept else {
        return Accepts::Anything;
    };
    let media = ContentFormat(n)
        .media_type()
        .and_then(Media::from_media_type);
    Accepts::Ranges {
        ranges: media
            .map(|m| Range {
                media: MediaRange::Media(m),
                q: 1000,
            })
            .into_iter()
            .collect(),
        label: format!("content-format {n}"),
    }
}

/// The content format of a payload's media type, when it has one.
fn content_format_of(declared: &Declared) -> Option<u16> {
    ContentFormat::from_media_type(&declared.label)
        .or_else(|| {
            declared
                .media
                .and_then(|m| ContentFormat::from_media_type(m.media_type()))
        })
        .map(|cf| cf.0)
}

/// The answer for `outcome` (the step logged its outcome line).
fn respond(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Done { class, payload } => {
            let mut r = Response::empty(class.coap_code());
            if let Some(p) = payload {
                r.content_format = content_format_of(&p.format);
                r.payload = p.bytes;
            }
            r
        }
        Outcome::Pending {
            reason,
            retry_after,
        } => Response {
            max_age: Some(u32::try_from(retry_after).unwrap_or(u32::MAX)),
            ..Response::diagnostic(Class::Pending.coap_code(), &reason)
        },
        Outcome::Refused(r) => refusal(&r),
    }
}

/// A refusal: its code, its reason, Max-Age for its retry time (RFC 8516 §4 for 4.29); the
/// session ends after it when the refusal closes the channel (RFC 8995 §5.3).
fn refusal(r: &Refusal) -> Response {
    Response {
        max_age: r.retry_after.map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        close: r.close,
        ..Response::diagnostic(r.class.coap_code(), &r.reason)
    }
}

/// A refusal of the shell itself, logged as the step's would be.
fn refused(op: &str, peer: &Peer, class: Class, reason: String) -> Response {
    respond(unfinished(op, peer, Refusal::new(class, reason)))
}

/// The representations `/crts` offers (cBRSKI §6.7.5, RFC 9148 §4.3).
const CRTS_FORMATS: [ContentFormat; 3] = [
    ContentFormat::PKCS7_CERTS_ONLY,
    ContentFormat::PKIX_CERT,
    ContentFormat::MULTIPART_CORE,
];
/// What `/sen` and `/sren` answer in (RFC 9148 §4.3).
const ENROLL_FORMATS: [ContentFormat; 2] =
    [ContentFormat::PKCS7_CERTS_ONLY, ContentFormat::PKIX_CERT];

/// The representation asked for, among `offered` (the first when none is asked for).
fn negotiate(accept: Option<u16>, offered: &[ContentFormat]) -> Option<ContentFormat> {
    match accept {
        None => offered.first().copied(),
        Some(n) => offered.iter().copied().find(|cf| cf.0 == n),
    }
}

/// A certs-only answer in the representation `cf`: as it is (281), its first certificate
/// (287), or a `/crts` multipart-core body (62).
fn certs_as(outcome: Outcome, cf: ContentFormat) -> Outcome {
    let Outcome::Done {
        class,
        payload: Some(mut payload),
    } = outcome
    else {
        return outcome;
    };
    if cf == ContentFormat::PKCS7_CERTS_ONLY {
        return Outcome::Done {
            class,
            payload: Some(payload),
        };
    }
    let converted = decode_certs_only(&payload.bytes)
        .map_err(|e| e.to_string())
        .and_then(|certs| match cf {
            ContentFormat::MULTIPART_CORE => {
                encode_crts_multipart(&certs).map_err(|e| e.to_string())
            }
            _ => certs
                .first()
                .ok_or_else(|| "no certificate".to_string())
                .and_then(|c| c.to_der().map_err(|e| e.to_string())),
        });
    match converted {
        Ok(bytes) => {
            payload.bytes = bytes;
            payload.format = Declared {
                media: None,
                label: cf.media_type().unwrap_or_default().to_string(),
            };
            Outcome::Done {
                class,
                payload: Some(payload),
            }
        }
        Err(e) => Refusal::internal("converting certs-only", e).into(),
    }
}

/// One request.
pub async fn handle(s: &Registrar, session: SessionInfo, req: Request) -> Response {
    let peer = peer(&session);
    if s.shutting_down.load(Ordering::Acquire) {
        return refusal(&Refusal {
            retry_after: Some(5),
            ..Refusal::new(Class::ServiceUnavailable, "registrar is shutting down")
        });
    }
    let path = format!("/{}", req.path.join("/"));
    let (op, method) = match paths::coap_resource(&path) {
        _ if path == CORE => ("core", Method::Get),
        Some(r) if r.post => (r.operation(), Method::Post),
        Some(r) => (r.operation(), Method::Get),
        None => {
            tracing::info!(peer = %peer.addr, transport = "coaps", path = %path, outcome = "unknown-path", "not found");
            return Response::diagnostic(
                Class::NotFound.coap_code(),
                &format!("no resource {path}"),
            );
        }
    };
    if req.method != method {
        tracing::info!(peer = %peer.addr, transport = "coaps", method = ?req.method, outcome = "method-not-allowed", "{op}");
        return Response::diagnostic(METHOD_NOT_ALLOWED, "method not allowed");
    }
    match op {
        "core" => discovery(&req.query),
        "requestvoucher" => {
            let request = VoucherRequest {
                peer,
                content_format: declared(req.content_format),
                accept: accepts(req.accept),
                body: req.payload,
            };
            respond(voucher::request_voucher(s, &request).await)
        }
        "voucher_status" | "enrollstatus" => {
            let kind = if op == "voucher_status" {
                TelemetryKind::VoucherStatus
            } else {
                TelemetryKind::EnrollStatus
            };
            let request = ReportRequest {
                peer,
                kind,
                content_format: declared(req.content_format),
                body: req.payload,
            };
            respond(telemetry::report(s, &request).await)
        }
        "cacerts" => match negotiate(req.accept, &CRTS_FORMATS) {
            Some(cf) => respond(certs_as(est::cacerts(s, &peer), cf)),
            None => not_acceptable(op, &peer, req.accept),
        },
        "csrattrs" => match negotiate(req.accept, &[ContentFormat::CSRATTRS]) {
            Some(_) => respond(est::csrattrs(s, &peer).await),
            None => not_acceptable(op, &peer, req.accept),
        },
        _ => {
            let Some(cf) = negotiate(req.accept, &ENROLL_FORMATS) else {
                return not_acceptable(op, &peer, req.accept);
            };
            let request = est::EnrollRequest {
                peer,
                content_format: declared(req.content_format),
                csr: Ok(req.payload),
            };
            let outcome = if op == "simpleenroll" {
                est::simple_enroll(s, &request).await
            } else {
                est::simple_reenroll(s, &request).await
            };
            respond(certs_as(outcome, cf))
        }
    }
}

/// 4.06: the Accept option names no representation of the resource (RFC 7252 §5.10.4).
fn not_acceptable(op: &str, peer: &Peer, accept: Option<u16>) -> Response {
    let n = accept.unwrap_or_default();
    refused(
        op,
        peer,
        Class::NotAcceptable,
        format!("Accept {n}: {op} has no representation in that content format"),
    )
}

/// Where CoRE discovery is (RFC 6690 §4).
const CORE: &str = "/.well-known/core";

/// The links `/.well-known/core` lists (RFC 6690 §5): the BRSKI base resource, then each
/// resource with its type and content formats (cBRSKI Appendix E, RFC 9148 §4.1).
fn links() -> Vec<Link> {
    std::iter::once(Link::new("/.well-known/brski").with("rt", "brski"))
        .chain(
            paths::COAP
                .iter()
                .map(|r| Link::new(r.short).with("rt", r.rt).with("ct", r.ct)),
        )
        .collect()
}

/// `GET /.well-known/core[?filter]` (RFC 6690 §4.1): the links matching the query's filter,
/// `href` or a link attribute; 4.04 when none does (cBRSKI Appendix E).
fn discovery(query: &[String]) -> Response {
    let links = links();
    let selected = link_format::select(&links, query);
    if selected.is_empty() {
        return Response::empty(Class::NotFound.coap_code());
    }
    Response {
        content_format: Some(ContentFormat::LINK_FORMAT.0),
        payload: link_format::encode(selected).into_bytes(),
        ..Response::empty(Class::Content.coap_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(query: &str) -> Option<String> {
        let q: Vec<String> = (!query.is_empty())
            .then(|| query.to_string())
            .into_iter()
            .collect();
        let r = discovery(&q);
        (r.code == CoapCode::CONTENT).then(|| String::from_utf8(r.payload).expect("utf-8"))
    }

    #[test]
    fn rfc6690_4_1_discovery_filters_by_resource_type() {
        let brski = links("rt=brski*").expect("brski links");
        assert!(
            brski.starts_with("</.well-known/brski>;rt=brski,"),
            "{brski}"
        );
        assert!(brski.contains("</.well-known/brski/rv>;rt=brski.rv;ct=836"));
        assert!(brski.contains("</.well-known/brski/vs>;rt=brski.vs;ct=\"50 60\""));
        assert!(!brski.contains("est"));
        let est = links("rt=ace.est*").expect("est links");
        assert!(est.contains("</.well-known/est/crts>;rt=ace.est.crts;ct=\"281 287 62\""));
        assert!(est.contains("</.well-known/est/att>;rt=ace.est.att;ct=285"));
        assert!(!est.contains("brski"));
        assert_eq!(
            links("rt=brski").as_deref(),
            Some("</.well-known/brski>;rt=brski")
        );
        assert_eq!(links("rt=nothing*"), None);
        assert_eq!(
            links("ct=836").as_deref(),
            Some("</.well-known/brski/rv>;rt=brski.rv;ct=836")
        );
        assert_eq!(
            links("").map(|l| l.split(',').count()),
            Some(paths::COAP.len() + 1)
        );
    }

    #[test]
    fn rfc9148_4_3_content_formats_and_accept() {
        let d = declared(Some(836)).expect("declared");
        assert_eq!(
            d.media,
            Some(Media::Voucher(brski_common::envelope::Format::Cose))
        );
        assert_eq!(
            declared(Some(286)).and_then(|d| d.media),
            Some(Media::Pkcs10)
        );
        assert_eq!(declared(Some(60)).and_then(|d| d.media), Some(Media::Cbor));
        let unknown = declared(Some(9999)).expect("declared");
        assert_eq!(unknown.media, None);
        assert_eq!(accepts(None), Accepts::Anything);
        assert!(
            accepts(Some(836)).allows(Some(Media::Voucher(brski_common::envelope::Format::Cose)))
        );
        assert!(
            !accepts(Some(9999)).allows(Some(Media::Voucher(brski_common::envelope::Format::Cose)))
        );
        assert_eq!(
            negotiate(None, &CRTS_FORMATS),
            Some(ContentFormat::PKCS7_CERTS_ONLY)
        );
        assert_eq!(
            negotiate(Some(62), &CRTS_FORMATS),
            Some(ContentFormat::MULTIPART_CORE)
        );
        assert_eq!(negotiate(Some(50), &CRTS_FORMATS), None);
        assert_eq!(
            content_format_of(&Declared::of(Media::CertsOnly)),
            Some(281)
        );
        assert_eq!(
            content_format_of(&Declared::new("application/voucher+cose")),
            Some(836)
        );
    }

    #[test]
    fn rfc9148_4_7_pending_is_5_03_with_max_age() {
        let r = respond(Outcome::Pending {
            reason: "later".into(),
            retry_after: 30,
        });
        assert_eq!(r.code.to_string(), "5.03");
        assert_eq!(r.max_age, Some(30));
        assert_eq!(r.payload, b"later");
    }
}
