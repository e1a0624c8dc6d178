//! The HTTPS shell around the protocol steps ([`crate::steps`]): each handler turns the request
//! (headers, body, the connection's [`ConnInfo`]) into the step's typed request and the step's
//! [`Outcome`] into a response, with the status of [`brski_common::answer::Class::TABLE`].
//! EST bodies are base64 here (RFC 8951 §3.2), a signed body may be (field leniency);
//! refusals are one line of `text/plain` (RFC 8995 §5.6).

use crate::db::TelemetryKind;
use crate::server::Registrar;
use crate::steps::telemetry::ReportRequest;
use crate::steps::voucher::VoucherRequest;
use crate::steps::{
    Accepts, Declared, Media, MediaRange, Outcome, Peer, Range, Refusal, Transport, est, telemetry,
    voucher,
};
use crate::wire::{BodyEncoding, encode_body, signed_body};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use brski_common::answer::Class;
use brski_common::est::{decode_base64_body, encode_base64_body};
use brski_service::https::{ConnInfo, outcome_logged};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::sync::Arc;

/// The client of `conn`.
pub fn peer(conn: &ConnInfo) -> Peer {
    Peer {
        transport: Transport::Https,
        addr: conn.peer,
        certs: conn.peer_certs.clone(),
        memo: conn.memo.clone(),
        channel_binding: conn.channel_binding.clone(),
    }
}

/// The body's format as its Content-Type declares it; none when absent or not text.
fn content_format(headers: &HeaderMap) -> Option<Declared> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(Declared::new)
}

/// What the client accepts, as its Accept header says.
fn accepts(headers: &HeaderMap) -> Accepts {
    match headers.get(header::ACCEPT).map(|v| v.to_str()) {
        None => Accepts::Anything,
        Some(Err(_)) => Accepts::Unreadable,
        Some(Ok(text)) => Accepts::Ranges {
            ranges: accept_ranges(text),
            label: text.to_string(),
        },
    }
}

/// The ranges of an Accept header that this registrar knows (RFC 9110 §12.5.1): wildcards
/// and [`Media`], in order, with their weights (a `q` that does not parse counts as 1).
fn accept_ranges(text: &str) -> Vec<Range> {
    text.split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let media = match parts.next()?.trim().to_ascii_lowercase().as_str() {
                "*/*" => MediaRange::Any,
                "application/*" => MediaRange::AnyApplication,
                other => MediaRange::Media(Media::from_media_type(other)?),
            };
            let mut q = 1000;
            for p in parts {
                let p = p.trim();
                let weight = p
                    .strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|v| v.trim().parse::<f32>().ok());
                match weight {
                    Some(w) if w <= 0.0 => {
                        q = 0;
                        break;
                    }
                    // At least 1: a weight above 0 does not refuse.
                    Some(w) if w < 1.0 => q = ((w * 1000.0).round() as u16).max(1),
                    _ => {}
                }
            }
            Some(Range { media, q })
        })
        .collect()
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A refusal: its status, the reason as one line of `text/plain`, Retry-After when it has
/// one, and `Connection: close` when the connection must go (hyper closes it then).
pub fn refusal_response(refusal: &Refusal) -> Response {
    let mut resp = text(
        status(refusal.status(Transport::Https)),
        &refusal.reason,
        refusal.retry_after,
    );
    // The MASA's own Retry-After, a date as well as seconds (RFC 9110 §10.2.3).
    let relayed = refusal
        .relayed
        .as_ref()
        .and_then(|r| r.retry_after.as_deref());
    if let Some(value) = relayed.and_then(|r| HeaderValue::from_str(r).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, value);
    }
    if refusal.close {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// `reason` as one line of `text/plain`, with Retry-After `retry_after` seconds.
fn text(status: StatusCode, reason: &str, retry_after: Option<u64>) -> Response {
    let mut resp = (status, format!("{reason}\n")).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(secs) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// The response for `outcome`, a payload's bytes as `encode` writes them; marked as logged
/// (the step wrote the request's outcome line).
fn respond(outcome: Outcome, encode: impl FnOnce(Vec<u8>) -> Vec<u8>) -> Response {
    let code = status(outcome.status(Transport::Https));
    let resp = match outcome {
        Outcome::Done {
            payload: Some(payload),
            ..
        } => {
            let content_type =
                HeaderValue::from_str(&payload.format.label).unwrap_or(HeaderValue::from_static(
                    payload
                        .format
                        .media
                        .map_or("application/octet-stream", |m| m.media_type()),
                ));
            let mut resp = (code, encode(payload.bytes)).into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            resp
        }
        Outcome::Done { payload: None, .. } => code.into_response(),
        Outcome::Pending {
            reason,
            retry_after,
        } => text(code, &reason, Some(retry_after)),
        Outcome::Refused(refusal) => refusal_response(&refusal),
    };
    outcome_logged(resp, code)
}

/// RFC 8951 §3.2: DER in base64 lines.
fn base64(der: Vec<u8>) -> Vec<u8> {
    encode_base64_body(&der).into_bytes()
}

/// `POST /.well-known/brski/requestvoucher` (RFC 8995 §5.2). A signed body sent in base64
/// (leniency for older clients) is answered in base64.
pub async fn request_voucher(State(s): State<Arc<Registrar>>, post: Post) -> Response {
    let content_format = content_format(&post.headers);
    let (encoding, body) = match content_format.as_ref().and_then(|d| d.media) {
        Some(Media::Voucher(format)) => signed_body(format, &post.body),
        _ => (BodyEncoding::Raw, post.body.to_vec()),
    };
    let req = VoucherRequest {
        peer: peer(&post.conn),
        content_format,
        accept: accepts(&post.headers),
        body,
    };
    let outcome = voucher::request_voucher(&s, &req).await;
    respond(outcome, |bytes| encode_body(encoding, &bytes))
}

/// `GET /.well-known/est/cacerts` (RFC 7030 §4.1).
pub async fn cacerts(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
) -> Response {
    respond(est::cacerts(&s, &peer(&conn)), base64)
}

/// `GET /.well-known/est/crl`, and `GET` on `crl-listen`: the domain CA's CRL (RFC 5280 §5),
/// DER as `application/pkix-crl` (RFC 2585 §4.2). 503 with Retry-After while the database
/// cannot be read.
pub async fn crl(State(s): State<Arc<Registrar>>) -> Response {
    match s.current_crl().await {
        Ok(der) => ([(header::CONTENT_TYPE, crate::crl::PKIX_CRL)], der).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "CRL not served");
            let retry = matches!(e, crate::crl::CrlFault::Store(_));
            let status = if retry {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            text(
                status,
                &e.to_string(),
                retry.then_some(u64::from(s.config.retry_after)),
            )
        }
    }
}

/// `GET /.well-known/est/csrattrs` (RFC 7030 §4.5).
pub async fn csrattrs(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
) -> Response {
    respond(est::csrattrs(&s, &peer(&conn)).await, base64)
}

/// What a POST handler reads: the connection, the headers and the body (which
/// [`brski_service::https::serve`] has read whole).
pub struct Post {
    conn: ConnInfo,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Post {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Extension(conn) = Extension::<ConnInfo>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = std::mem::take(&mut parts.headers);
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            conn,
            headers,
            body,
        })
    }
}

impl Post {
    /// An enrollment: the body is a base64 CSR (RFC 8951 §3.2).
    fn enroll_request(&self) -> est::EnrollRequest {
        est::EnrollRequest {
            peer: peer(&self.conn),
            content_format: content_format(&self.headers),
            csr: decode_base64_body(&self.body).map_err(|e| e.to_string()),
        }
    }
}

/// `POST /.well-known/est/simpleenroll` (RFC 7030 §4.2.1).
pub async fn simple_enroll(State(s): State<Arc<Registrar>>, post: Post) -> Response {
    respond(est::simple_enroll(&s, &post.enroll_request()).await, base64)
}

/// `POST /.well-known/est/simplereenroll` (RFC 7030 §4.2.2).
pub async fn simple_reenroll(State(s): State<Arc<Registrar>>, post: Post) -> Response {
    respond(
        est::simple_reenroll(&s, &post.enroll_request()).await,
        base64,
    )
}

/// `POST /.well-known/brski/voucher_status` (RFC 8995 §5.7).
pub async fn voucher_status(State(s): State<Arc<Registrar>>, post: Post) -> Response {
    report(&s, post, TelemetryKind::VoucherStatus).await
}

/// `POST /.well-known/brski/enrollstatus` (RFC 8995 §5.9.4).
pub async fn enroll_status(State(s): State<Arc<Registrar>>, post: Post) -> Response {
    report(&s, post, TelemetryKind::EnrollStatus).await
}

async fn report(s: &Registrar, post: Post, kind: TelemetryKind) -> Response {
    let req = ReportRequest {
        peer: peer(&post.conn),
        kind,
        content_format: content_format(&post.headers),
        body: post.body.to_vec(),
    };
    let mut outcome = telemetry::report(s, &req).await;
    if let Outcome::Refused(r) = &mut outcome {
        // A pledge sending an oversized report does not get to send another on this
        // connection.
        r.close |= r.class == Class::PayloadTooLarge;
    }
    respond(outcome, |bytes| bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::envelope::Format;

    fn accept(text: &str) -> Accepts {
        Accepts::Ranges {
            ranges: accept_ranges(text),
            label: text.to_string(),
        }
    }

    fn voucher_format(f: Format) -> Option<Media> {
        Some(Media::Voucher(f))
    }

    fn allows_a_voucher(text: &str) -> bool {
        [Format::Cms, Format::Jws, Format::Cose]
            .into_iter()
            .any(|f| accept(text).allows(voucher_format(f)))
    }

    #[test]
    fn accept_headers() {
        assert!(allows_a_voucher("application/voucher-cms+json"));
        assert!(allows_a_voucher("text/html, */*;q=0.1"));
        assert!(allows_a_voucher("application/voucher-cose+cbor"));
        assert!(!allows_a_voucher("text/html"));
        assert!(!allows_a_voucher("application/voucher-cms+json;q=0"));
        assert!(!allows_a_voucher(""));
        let a = accept("application/voucher-jws+json, application/voucher-cms+json; q=0.5");
        assert!(a.allows(voucher_format(Format::Cms)));
        assert!(!accept("application/voucher-jws+json").allows(voucher_format(Format::Cms)));
        assert!(accept("application/*").allows(voucher_format(Format::Cose)));
        assert!(Accepts::Anything.allows(None));
        assert!(!Accepts::Unreadable.allows(voucher_format(Format::Cms)));
    }

    #[test]
    fn rfc8995_5_6_the_masa_is_asked_for_what_the_pledge_accepts() {
        assert_eq!(Accepts::Anything.to_header(), None);
        for (pledge, masa) in [
            (
                "application/voucher-cms+json",
                "application/voucher-cms+json",
            ),
            (
                "Application/Voucher-JWS+JSON, application/voucher-cms+json; q=0.5",
                "application/voucher-jws+json, application/voucher-cms+json;q=0.5",
            ),
            ("text/html, */*;q=0.1", "*/*;q=0.1"),
            (
                "application/voucher-cose+cbor;q=0",
                "application/voucher+cose;q=0",
            ),
            ("application/*;q=0.125", "application/*;q=0.125"),
            (
                "application/voucher-cms+json;q=abc",
                "application/voucher-cms+json",
            ),
        ] {
            assert_eq!(
                accept(pledge).to_header().as_deref(),
                Some(masa),
                "{pledge}"
            );
        }
    }

    #[test]
    fn headers_to_typed_requests() {
        let mut headers = HeaderMap::new();
        assert_eq!(accepts(&headers), Accepts::Anything);
        assert_eq!(content_format(&headers), None);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_bytes(b"application/\xff").expect("header"),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/Voucher-CMS+JSON; charset=x"),
        );
        assert_eq!(accepts(&headers), Accepts::Unreadable);
        let declared = content_format(&headers).expect("declared");
        assert_eq!(declared.media, Some(Media::Voucher(Format::Cms)));
        assert_eq!(declared.label, "Application/Voucher-CMS+JSON; charset=x");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn accept_parsing_never_panics(text in "\\PC{0,200}") {
            let a = accept(&text);
            let _ = a.allows(voucher_format(Format::Cms));
            let _ = a.to_header();
            for r in accept_ranges(&text) {
                proptest::prop_assert!(r.q <= 1000);
            }
        }
    }
}
