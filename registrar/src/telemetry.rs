//! `POST /.well-known/brski/voucher_status` (RFC 8995 §5.7) and `/enrollstatus` (§5.9.4):
//! parse the report, store it with the serial taken from the client certificate and whether
//! that certificate was the IDevID or the LDevID, answer 200.

use crate::db::{self, ClientCert, LdevidStatus, NewTelemetry, TelemetryKind};
use crate::server::{Client, Registrar};
use crate::wire::Reject;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brski_common::pki::ext::serial_number;
use brski_common::telemetry::StatusTelemetry;
use brski_service::https::{ConnInfo, outcome_logged};
use std::sync::Arc;

pub async fn voucher_status(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    report(&s, &conn, &headers, &body, TelemetryKind::VoucherStatus).await
}

pub async fn enroll_status(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    report(&s, &conn, &headers, &body, TelemetryKind::EnrollStatus).await
}

async fn report(
    s: &Registrar,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: &[u8],
    kind: TelemetryKind,
) -> Response {
    match handle(s, conn, headers, body, kind).await {
        Ok(()) => outcome_logged(StatusCode::OK.into_response(), StatusCode::OK),
        Err(reject) => {
            tracing::info!(
                peer = %conn.peer,
                status = reject.status.as_u16(),
                outcome = "refused",
                reason = %reject.reason,
                "{}",
                kind.as_str()
            );
            let status = reject.status;
            outcome_logged(reject.into_response(), status)
        }
    }
}

/// The pledge's serial number and the kind of certificate it authenticated with.
pub async fn pledge_identity(
    s: &Registrar,
    conn: &ConnInfo,
) -> Result<(String, ClientCert), Reject> {
    match &*s.classify(conn)? {
        Client::Idevid { chain } => chain
            .first()
            .and_then(serial_number)
            .map(|serial| (serial, ClientCert::Idevid))
            .ok_or_else(|| Reject::new(403, "IDevID subject has no serialNumber")),
        Client::Ldevid { cert, der } => {
            let cert_serial = crate::est::cert_serial_hex(cert);
            match db::ldevid_status(&s.db, &cert_serial, der)
                .map_err(|e| Reject::internal("looking up the LDevID", e))?
            {
                LdevidStatus::Current { pledge_serial }
                | LdevidStatus::Superseded { pledge_serial } => {
                    Ok((pledge_serial, ClientCert::Ldevid))
                }
                LdevidStatus::Revoked { .. } => {
                    Err(Reject::new(403, "client certificate is revoked"))
                }
                LdevidStatus::Unknown => Err(Reject::new(
                    403,
                    "client certificate is not an LDevID issued by this registrar",
                )),
            }
        }
    }
}

async fn handle(
    s: &Registrar,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: &[u8],
    kind: TelemetryKind,
) -> Result<(), Reject> {
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
            return Err(Reject::new(
                415,
                format!("Content-Type {other:?}: telemetry is application/json"),
            ));
        }
    };
    let (serial, client_cert) = pledge_identity(s, conn).await?;
    let parsed = if cbor {
        StatusTelemetry::from_cbor(body)
    } else {
        StatusTelemetry::from_json(body)
    }
    .map_err(|e| Reject::new(400, e))?;
    if parsed.is_newer_version() {
        tracing::warn!(%serial, version = parsed.version, "{}: telemetry version newer than 1", kind.as_str());
    }
    if !parsed.unknown.is_empty() {
        tracing::info!(%serial, unknown = ?parsed.unknown, "{}: unknown fields ignored", kind.as_str());
    }
    let peer = conn.peer.to_string();
    db::store_telemetry(
        &s.writer,
        &NewTelemetry {
            serial: &serial,
            kind,
            status: parsed.status,
            reason: parsed.reason.as_deref(),
            body,
            client_cert,
            peer: &peer,
        },
    )
    .await
    .map_err(|e| Reject::internal("storing telemetry", e))?;
    if kind == TelemetryKind::VoucherStatus && parsed.status {
        crate::audit::check_after_voucher_status(s, &serial).await;
    }
    tracing::info!(
        %serial,
        %peer,
        status = 200,
        report_status = parsed.status,
        reason = parsed.reason.as_deref().unwrap_or(""),
        client_cert = client_cert.as_str(),
        outcome = "stored",
        "{}",
        kind.as_str()
    );
    Ok(())
}
