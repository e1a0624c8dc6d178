//! `voucher_status` (RFC 8995 §5.7) and `enrollstatus` (§5.9.4): parse the report, store it
//! with the serial taken from the client certificate and whether that certificate was the
//! IDevID or the LDevID, answer done.
//!
//! Bounds, so that a pledge cannot fill the disk or the log: a body larger than
//! [`MAX_BODY_BYTES`] is refused (413); `reason` is stored once, truncated to
//! [`MAX_STORED_REASON_CHARS`], and the raw body only when it holds unknown fields; at most
//! [`db::TELEMETRY_PER_WINDOW`] reports per serial and kind are stored per window (429 with a
//! retry time beyond); a voucher_status from a serial that got no voucher from this registrar,
//! and an enrollstatus from one that could not have attempted enrollment (no voucher, no
//! LDevID: §5.9.3 enrollment follows the voucher), are 404. Every string from the pledge is
//! logged escaped and truncated ([`log_safe`]).

use super::{Declared, Media, Outcome, Peer, Refusal, base_type, unfinished};
use crate::db::{self, ClientCert, NewTelemetry, TelemetryKind, TelemetryStored};
use crate::server::{Client, Registrar};
use brski_common::answer::Class;
use brski_common::telemetry::{
    MAX_BODY_BYTES, MAX_STORED_REASON_CHARS, StatusTelemetry, truncate_chars,
};

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

/// A status report.
#[derive(Clone, Debug)]
pub struct ReportRequest {
    pub peer: Peer,
    pub kind: TelemetryKind,
    /// The body's declared format; none declared is JSON (RFC 8995 §5.7).
    pub content_format: Option<Declared>,
    pub body: Vec<u8>,
}

/// Store a `voucher_status` or `enrollstatus` report.
pub async fn report(s: &Registrar, req: &ReportRequest) -> Outcome {
    match store(s, req).await {
        Ok(()) => Outcome::Done {
            class: Class::Changed,
            payload: None,
        },
        Err(refusal) => unfinished(req.kind.as_str(), &req.peer, refusal),
    }
}

/// The pledge's serial number, the kind of certificate it authenticated with, and the LDevID's
/// serial when this is the LDevID's first use (recorded with the report, RFC 7030 §4.2.2).
pub async fn pledge_identity(
    s: &Registrar,
    peer: &Peer,
) -> Result<(String, ClientCert, Option<String>), Refusal> {
    match &*s.classify(peer)? {
        Client::Idevid { chain } => s
            .idevid_serial(chain)
            .map(|serial| (serial, ClientCert::Idevid, None))
            .ok_or_else(|| Refusal::new(Class::Forbidden, "IDevID subject has no serialNumber")),
        Client::Ldevid { cert, der } => {
            super::est::ldevid_holder_unrecorded(s, cert, der, super::est::LdevidUse::Other)
                .await
                .map(|(serial, _, first_use)| (serial, ClientCert::Ldevid, first_use))
        }
    }
}

async fn store(s: &Registrar, req: &ReportRequest) -> Result<(), Refusal> {
    let cbor = match &req.content_format {
        None => false,
        Some(Declared {
            media: Some(Media::Json),
            ..
        }) => false,
        Some(Declared {
            media: Some(Media::Cbor),
            ..
        }) => true,
        Some(other) => {
            return Err(Refusal::new(
                Class::UnsupportedContentFormat,
                format!(
                    "Content-Type {:?}: telemetry is application/json",
                    log_safe(&base_type(&other.label), MAX_LOGGED_CHARS)
                ),
            ));
        }
    };
    let (serial, client_cert, first_use) = pledge_identity(s, &req.peer).await?;
    let mut recorded = false;
    let taken = take(
        s,
        req,
        cbor,
        Identity {
            serial,
            client_cert,
            first_use: first_use.as_deref(),
        },
        &mut recorded,
    )
    .await;
    if let (Some(cert_serial), false) = (&first_use, recorded) {
        // Refused before its write: the LDevID's first use is recorded all the same.
        if let Err(e) = s.store.ldevid_seen(cert_serial).await {
            tracing::error!(%cert_serial, error = %e, "recording the LDevID's first use");
        }
    }
    taken
}

/// Who sent a report, from [`pledge_identity`].
struct Identity<'a> {
    serial: String,
    client_cert: ClientCert,
    first_use: Option<&'a str>,
}

/// Check and store the report of `who`; `recorded` is set once the write that also records
/// the LDevID's first use has committed.
async fn take(
    s: &Registrar,
    req: &ReportRequest,
    cbor: bool,
    who: Identity<'_>,
    recorded: &mut bool,
) -> Result<(), Refusal> {
    let Identity {
        serial,
        client_cert,
        first_use,
    } = who;
    let kind = req.kind;
    let body = &req.body;
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::new(
            Class::PayloadTooLarge,
            format!("telemetry body larger than {MAX_BODY_BYTES} bytes (RFC 8995 §5.7)"),
        ));
    }
    let parsed = if cbor {
        StatusTelemetry::from_cbor(body)
    } else {
        StatusTelemetry::from_json(body)
    }
    .map_err(|e| {
        Refusal::new(
            Class::BadRequest,
            log_safe(&e.to_string(), MAX_LOGGED_CHARS),
        )
    })?;
    let logged_serial = log_safe(&serial, MAX_LOGGED_CHARS);
    let known = s
        .store
        .telemetry_context(&serial)
        .await
        .map_err(|e| Refusal::store("looking up the pledge", e))?;
    match kind {
        // RFC 8995 §5.7: the registrar MAY answer 404 for a voucher it did not relay.
        TelemetryKind::VoucherStatus if !known.has_voucher => {
            return Err(Refusal::new(
                Class::NotFound,
                format!("no voucher was relayed to pledge {logged_serial} by this registrar"),
            ));
        }
        TelemetryKind::EnrollStatus if !known.has_voucher && !known.has_certificate => {
            return Err(Refusal::new(
                Class::NotFound,
                format!("pledge {logged_serial} has not attempted enrollment with this registrar"),
            ));
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
    let peer = req.peer.addr.to_string();
    let reason = parsed
        .reason
        .as_deref()
        .map(|r| truncate_chars(r, MAX_STORED_REASON_CHARS));
    // `reason` and `status` have their columns; the raw body is kept only for what they do
    // not hold (unknown fields), so a report is stored once.
    let stored_body: &[u8] = if parsed.unknown.is_empty() { &[] } else { body };
    let stored = s
        .store
        .store_telemetry_limited(&NewTelemetry {
            serial: &serial,
            kind,
            status: parsed.status,
            reason,
            body: stored_body,
            client_cert,
            peer: &peer,
            ldevid_first_use: first_use,
        })
        .await
        .map_err(|e| Refusal::store("storing telemetry", e))?;
    *recorded = true;
    if let TelemetryStored::RateLimited { retry_after } = stored {
        return Err(Refusal {
            retry_after: Some(retry_after),
            ..Refusal::new(
                Class::TooManyRequests,
                format!(
                    "more than {} {} reports from pledge {logged_serial} within {} s; retry after {retry_after} s",
                    db::TELEMETRY_PER_WINDOW,
                    kind.as_str(),
                    db::TELEMETRY_WINDOW_SECS
                ),
            )
        });
    }
    if kind == TelemetryKind::VoucherStatus && parsed.status {
        crate::audit::check_after_voucher_status(s, &serial).await;
    }
    tracing::info!(
        serial = %logged_serial,
        %peer,
        transport = req.peer.transport.as_str(), status = req.peer.transport.status(Class::Changed),
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
