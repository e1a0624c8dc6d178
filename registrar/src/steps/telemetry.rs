//! `POST /.well-known/brski/voucher_status` (RFC 8995 §5.7) and `/enrollstatus` (§5.9.4):
//! parse the report, store it with the serial taken from the client certificate and whether
//! that certificate was the IDevID or the LDevID, answer 200.
//!
//! Bounds, so that a pledge cannot fill the disk or the log: a body larger than
//! [`MAX_BODY_BYTES`] is refused with 413 without being read whole; `reason` is stored once,
//! truncated to [`MAX_STORED_REASON_CHARS`], and the raw body only when it holds unknown
//! fields; at most [`db::TELEMETRY_PER_WINDOW`] reports per serial and kind are stored per
//! window (429 with Retry-After beyond); a voucher_status from a serial that got no voucher
//! from this registrar, and an enrollstatus from one that could not have attempted enrollment
//! (no voucher, no LDevID: §5.9.3 enrollment follows the voucher), are 404. Every string from
//! the pledge is logged escaped and truncated ([`log_safe`]).

use crate::db::{self, ClientCert, NewTelemetry, TelemetryKind, TelemetryStored};
use crate::server::{Client, Registrar};
use crate::wire::{Refused, Reject};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brski_common::telemetry::{
    MAX_BODY_BYTES, MAX_STORED_REASON_CHARS, StatusTelemetry, truncate_chars,
};
use brski_service::https::{ConnInfo, outcome_logged};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;

/// How many characters of a pledge-provided string go into one log line.
pub const MAX_LOGGED_CHARS: usize = 200;

/// `s` made safe for a one-line log record: at most `max_chars` characters (then `…`), with
/// backslash, control characters (CR, LF, ESC, …) and the Unicode bidirectional controls
/// (Trojan Source, CVE-2021-42574) written as escapes, so that a value from a pledge can
/// neither start a forged line nor reorder what an operator reads.
// A local helper: `brski_common::input::escape_for_log`, where present, is the shared one.
pub fn log_safe(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 2));
    for (n, c) in s.chars().enumerate() {
        if n == max_chars {
            out.push('…');
            break;
        }
        let bidi = matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}');
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || bidi => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The body, read at most [`MAX_BODY_BYTES`] far: 413 when the Content-Length or the bytes
/// themselves go beyond it (never axum's 2 MB buffering).
async fn bounded_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Reject> {
    let too_large = || {
        Reject::new(
            413,
            format!("telemetry body larger than {MAX_BODY_BYTES} bytes (RFC 8995 §5.7)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Reject::new(400, format!("reading the telemetry body: {e}"))),
    }
}

pub async fn voucher_status(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    report(&s, &conn, &headers, body, TelemetryKind::VoucherStatus).await
}

pub async fn enroll_status(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    report(&s, &conn, &headers, body, TelemetryKind::EnrollStatus).await
}

async fn report(
    s: &Registrar,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: Body,
    kind: TelemetryKind,
) -> Response {
    match handle(s, conn, headers, body, kind).await {
        Ok(()) => outcome_logged(StatusCode::OK.into_response(), StatusCode::OK),
        Err(Refused {
            reject,
            retry_after,
        }) => {
            tracing::info!(
                peer = %conn.peer,
                status = reject.status.as_u16(),
                outcome = "refused",
                reason = %reject.reason,
                "{}",
                kind.as_str()
            );
            let status = reject.status;
            let mut resp = Refused {
                reject,
                retry_after,
            }
            .into_response();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                // The rest of the body is not read: do not keep the connection for another
                // request behind it.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            outcome_logged(resp, status)
        }
    }
}

/// The pledge's serial number and the kind of certificate it authenticated with.
pub async fn pledge_identity(
    s: &Registrar,
    conn: &ConnInfo,
) -> Result<(String, ClientCert), Reject> {
    match &*s.classify(conn)? {
        Client::Idevid { chain } => s
            .idevid_serial(chain)
            .map(|serial| (serial, ClientCert::Idevid))
            .ok_or_else(|| Reject::new(403, "IDevID subject has no serialNumber")),
        Client::Ldevid { cert, der } => {
            crate::est::ldevid_holder(s, cert, der, crate::est::LdevidUse::Other)
                .await
                .map(|(serial, _)| (serial, ClientCert::Ldevid))
        }
    }
}

async fn handle(
    s: &Registrar,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: Body,
    kind: TelemetryKind,
) -> Result<(), Refused> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let cbor = match content_type.as_deref() {
        None | Some("application/json") => false,
        Some("application/cbor") => true,
        Some(other) => {
            return Err(Refused::from(Reject::new(
                415,
                format!(
                    "Content-Type {:?}: telemetry is application/json",
                    log_safe(other, MAX_LOGGED_CHARS)
                ),
            )));
        }
    };
    let (serial, client_cert) = pledge_identity(s, conn).await?;
    let body = bounded_body(headers, body).await?;
    let parsed = if cbor {
        StatusTelemetry::from_cbor(&body)
    } else {
        StatusTelemetry::from_json(&body)
    }
    .map_err(|e| Reject::new(400, log_safe(&e.to_string(), MAX_LOGGED_CHARS)))?;
    let logged_serial = log_safe(&serial, MAX_LOGGED_CHARS);
    let known = db::telemetry_context(&s.db, &serial)
        .map_err(|e| Reject::internal("looking up the pledge", e))?;
    match kind {
        // RFC 8995 §5.7: the registrar MAY answer 404 for a voucher it did not relay.
        TelemetryKind::VoucherStatus if !known.has_voucher => {
            return Err(Refused::from(Reject::new(
                404,
                format!("no voucher was relayed to pledge {logged_serial} by this registrar"),
            )));
        }
        TelemetryKind::EnrollStatus if !known.has_voucher && !known.has_certificate => {
            return Err(Refused::from(Reject::new(
                404,
                format!("pledge {logged_serial} has not attempted enrollment with this registrar"),
            )));
        }
        _ => {}
    }
    if parsed.is_newer_version() {
        tracing::warn!(serial = %logged_serial, version = parsed.version, "{}: telemetry version newer than 1", kind.as_str());
    }
    let unknown: Vec<String> = parsed
        .unknown
        .iter()
        .take(16)
        .map(|u| log_safe(u, 64))
        .collect();
    if !unknown.is_empty() {
        tracing::info!(serial = %logged_serial, unknown = ?unknown, "{}: unknown fields ignored", kind.as_str());
    }
    let peer = conn.peer.to_string();
    let reason = parsed
        .reason
        .as_deref()
        .map(|r| truncate_chars(r, MAX_STORED_REASON_CHARS));
    // `reason` and `status` have their columns; the raw body is kept only for what they do
    // not hold (unknown fields), so a report is stored once.
    let stored_body: &[u8] = if parsed.unknown.is_empty() {
        &[]
    } else {
        &body
    };
    let stored = db::store_telemetry_limited(
        &s.writer,
        &NewTelemetry {
            serial: &serial,
            kind,
            status: parsed.status,
            reason,
            body: stored_body,
            client_cert,
            peer: &peer,
        },
    )
    .await
    .map_err(|e| Reject::internal("storing telemetry", e))?;
    if let TelemetryStored::RateLimited { retry_after } = stored {
        return Err(Refused {
            reject: Reject::new(
                429,
                format!(
                    "more than {} {} reports from pledge {logged_serial} within {} s; retry after {retry_after} s",
                    db::TELEMETRY_PER_WINDOW,
                    kind.as_str(),
                    db::TELEMETRY_WINDOW_SECS
                ),
            ),
            retry_after: Some(retry_after),
        });
    }
    if kind == TelemetryKind::VoucherStatus && parsed.status {
        crate::audit::check_after_voucher_status(s, &serial).await;
    }
    tracing::info!(
        serial = %logged_serial,
        %peer,
        status = 200,
        report_status = parsed.status,
        reason = %log_safe(parsed.reason.as_deref().unwrap_or(""), MAX_LOGGED_CHARS),
        client_cert = client_cert.as_str(),
        outcome = "stored",
        "{}",
        kind.as_str()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_safe_escapes_controls_and_bidi_and_truncates() {
        assert_eq!(
            log_safe("a\nb\r\x1b[31m\\", 100),
            "a\\nb\\r\\u{001b}[31m\\\\"
        );
        assert_eq!(log_safe("x\u{202E}y", 100), "x\\u{202e}y");
        assert_eq!(log_safe("abcdef", 3), "abc…");
        assert_eq!(log_safe("é中", 5), "é中");
    }
}
