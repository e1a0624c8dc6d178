//! `POST /.well-known/brski/requestvoucher` (RFC 8995 §5.2–§5.6): check the pledge
//! voucher-request, apply the pledge policy, build and sign the registrar voucher-request, ask
//! the pledge's MASA, check the voucher, store it, and relay it unchanged.

use crate::config::{Accept, UseNonceless};
use crate::db::{self, NewVoucher, Policy};
use crate::masa_client::MasaError;
use crate::server::ManufacturerAnchors;
use crate::server::Registrar;
use crate::wire::{
    BodyEncoding, Reject, accept_allows, accept_allows_a_voucher, encode_body, signed_body,
};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brski_common::brski::registrar::{
    CheckedPledgeRequest, check_nonceless_voucher, check_pledge_voucher_request_with,
    check_voucher_for_relay, sign_registrar_voucher_request,
};
use brski_common::envelope::Format;
use brski_common::pki::chain::validate_chain;
use brski_common::pki::ext::{masa_base_uri, masa_url};
use brski_service::https::{ConnInfo, outcome_logged};
use der::Decode;
use std::sync::Arc;
use x509_cert::Certificate;

/// A successful answer: the voucher with the MASA's Content-Type.
fn voucher_response(content_type: &str, encoding: BodyEncoding, voucher: &[u8]) -> Response {
    let mut resp = (StatusCode::OK, encode_body(encoding, voucher)).into_response();
    let value = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/voucher-cms+json"));
    resp.headers_mut().insert(header::CONTENT_TYPE, value);
    resp
}

/// RFC 8995 §5.3 policy answer for a pending pledge: 202 with Retry-After (RFC 7030 §4.2.3).
fn pending_response(serial: &str, retry_after: u32) -> Response {
    let mut resp = Reject::new(
        202,
        format!("pledge {serial} is waiting for approval; retry later"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    resp
}

/// The MASA URL for this pledge: the IDevID's MASA URL extension, else the manufacturer's
/// configured one (RFC 8995 §2.3.2, §2.8).
fn masa_url_for(s: &Registrar, checked: &CheckedPledgeRequest) -> Result<String, Reject> {
    let idevid = checked
        .idevid()
        .ok_or_else(|| Reject::new(401, "no TLS client certificate"))?;
    // RFC 8995 §5.4: a configured per-manufacturer MASA URL may replace the extension's.
    if let Some(m) = checked.idevid_chain.last().and_then(|a| s.manufacturer(a)) {
        if let (true, Some(url)) = (m.masa_url_overrides, &m.masa_url) {
            return Ok(url.clone());
        }
    }
    match masa_url(idevid) {
        Ok(Some(url)) => Ok(url),
        Ok(None) => checked
            .idevid_chain
            .last()
            .and_then(|anchor| s.manufacturer_masa_url(anchor))
            .map(str::to_string)
            .ok_or_else(|| {
                Reject::new(
                    403,
                    "IDevID has no MASA URL extension and its manufacturer has no masa-url configured",
                )
            }),
        Err(e) => Err(Reject::new(403, format!("IDevID MASA URL extension: {e}"))),
    }
}

pub async fn request_voucher(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&s, &conn, &headers, &body).await {
        // Every answer of `handle` logged its outcome with the status it answers.
        Ok(resp) => {
            let status = resp.status();
            outcome_logged(resp, status)
        }
        Err(reject) => {
            tracing::info!(
                peer = %conn.peer,
                status = reject.status.as_u16(),
                outcome = "refused",
                reason = %reject.reason,
                "requestvoucher"
            );
            let status = reject.status;
            let mut resp = reject.into_response();
            if status == StatusCode::UNAUTHORIZED {
                // RFC 8995 §5.3: after a proximity failure (possible man-in-the-middle) the
                // registrar closes the connection; hyper does on `Connection: close`.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            outcome_logged(resp, status)
        }
    }
}

async fn handle(
    s: &Registrar,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Reject> {
    let peer = conn.peer.to_string();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let format = Format::from_media_type(content_type).ok_or_else(|| {
        Reject::new(
            415,
            format!("Content-Type {content_type:?} is not a voucher-request format"),
        )
    })?;
    let accept = match headers.get(header::ACCEPT) {
        None => None,
        Some(v) => {
            let a = v
                .to_str()
                .map_err(|_| Reject::new(406, "Accept header is not ASCII"))?;
            if !accept_allows_a_voucher(a) {
                return Err(Reject::new(
                    406,
                    format!("Accept {a:?} names no voucher format this registrar relays"),
                ));
            }
            Some(a.to_string())
        }
    };
    let (encoding, pvr) = signed_body(format, body);
    let chain = conn
        .peer_certs
        .iter()
        .map(|d| Certificate::from_der(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Reject::new(400, format!("TLS client certificate: {e}")))?;
    let checked = check_pledge_voucher_request_with(
        format,
        &pvr,
        &chain,
        &s.registrar_cert_der,
        &s.idevid_policy,
        &|validated| s.serial_of_validated(validated),
    )
    .map_err(|e| Reject::new(e.status(), e))?;
    let serial = checked.serial_number.clone();
    let idevid_sha256 = crate::steps::est::fingerprint(
        conn.peer_certs
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default(),
    );
    // The pledge's manufacturer: its own IDevID time policy (RFC 8995 §2.6.2) and voucher
    // anchors (§5.6) apply.
    let manufacturer = checked
        .idevid_chain
        .last()
        .and_then(|anchor| s.manufacturer(anchor))
        .ok_or_else(|| Reject::new(403, "IDevID of no configured manufacturer"))?;
    if let Some(idevid) = checked.idevid() {
        validate_chain(idevid, &chain[1..], &manufacturer.idevid_policy)
            .map_err(|e| Reject::new(403, format!("IDevID: {e}")))?;
    }
    let ctx = RelayContext {
        serial: serial.clone(),
        idevid_sha256: idevid_sha256.clone(),
        peer: peer.clone(),
        accept: accept.clone(),
    };

    // Pledge policy (RFC 8995 §5.3): denied → 404; pending → 202 until allowed.
    let if_new = match s.config.accept {
        Accept::Auto => Policy::Auto,
        Accept::Pending => Policy::Pending,
    };
    let policy = db::record_seen(&s.writer, &serial, &peer, if_new)
        .await
        .map_err(|e| Reject::internal("recording the pledge", e))?;
    match policy {
        Policy::Denied => {
            return Err(Reject::new(
                404,
                format!("pledge {serial} is not accepted in this domain"),
            ));
        }
        Policy::Pending => {
            tracing::info!(%serial, %peer, status = 202, outcome = "pending", "requestvoucher");
            return Ok(pending_response(&serial, s.config.retry_after));
        }
        Policy::Auto | Policy::Allowed => {}
    }

    // An idempotent retry: the voucher already relayed for this nonce (RFC 8995 §5.6).
    let nonce = checked
        .request
        .nonce
        .as_ref()
        .map(|n| n.json_string().into_owned());
    if let Some(n) = &nonce {
        let stored = db::voucher_for_nonce(&s.db, &serial, &idevid_sha256, n)
            .map_err(|e| Reject::internal("reading stored vouchers", e))?;
        if let Some(v) = stored {
            if accept
                .as_deref()
                .is_none_or(|a| accept_allows(a, &v.content_type))
            {
                tracing::info!(%serial, %peer, status = 200, voucher_id = v.id, outcome = "resent", "requestvoucher");
                return Ok(voucher_response(&v.content_type, encoding, &v.voucher));
            }
        }
    }

    let masa_url = masa_url_for(s, &checked)?;
    let base =
        masa_base_uri(&masa_url).map_err(|e| Reject::new(403, format!("IDevID MASA URL: {e}")))?;
    // RFC 7.2: a stored nonceless voucher instead of asking the MASA, when so configured.
    if s.config.use_nonceless_vouchers == UseNonceless::Always {
        if let Some(resp) =
            relay_stored_nonceless(s, &checked, manufacturer, encoding, &ctx).await?
        {
            return Ok(resp);
        }
    }
    let rvr = sign_registrar_voucher_request(
        &checked,
        time::OffsetDateTime::now_utc(),
        &*s.registrar_key,
        &s.registrar_chain,
    )
    .map_err(|e| Reject::internal("signing the registrar voucher-request", e))?;
    tracing::debug!(%serial, %peer, %masa_url, format = format.media_type(), "requesting voucher from MASA");
    let answer = match s
        .masa
        .request_voucher(&base, format, accept.as_deref(), rvr.clone())
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(%serial, %masa_url, error = %e, outcome = "masa-failed", "requestvoucher");
            if e.is_unreachable()
                && s.config.use_nonceless_vouchers == UseNonceless::WhenMasaUnreachable
            {
                if let Some(resp) =
                    relay_stored_nonceless(s, &checked, manufacturer, encoding, &ctx).await?
                {
                    return Ok(resp);
                }
            }
            // RFC 8995 §5.6: the MASA's own answer reaches the pledge.
            return Ok(masa_refusal_response(&e));
        }
    };
    let (_, voucher_bytes) = signed_body(answer.format, &answer.body);
    let voucher = check_voucher_for_relay(
        answer.format,
        &voucher_bytes,
        &checked,
        &manufacturer.voucher_policy,
        &s.registrar_chain,
    )
    .map_err(|e| {
        tracing::warn!(%serial, %masa_url, error = %e, outcome = "voucher-rejected", "requestvoucher");
        Reject::new(502, format!("voucher from the MASA rejected: {e}"))
    })?;
    if voucher.created_on.is_none() {
        // RFC 8366bis §8.4: created-on is optional; relayed, and noted.
        tracing::info!(%serial, %masa_url, "voucher from the MASA has no created-on");
    }
    let assertion = voucher.assertion.map(|a| a.as_str());
    let id = db::store_voucher(
        &s.writer,
        &NewVoucher {
            serial: &serial,
            idevid_sha256: &idevid_sha256,
            nonce: nonce.as_deref(),
            request_format: format.media_type(),
            content_type: &answer.content_type,
            assertion,
            masa_url: &masa_url,
            voucher: &voucher_bytes,
            rvr: Some(&rvr),
        },
    )
    .await
    .map_err(|e| Reject::internal("storing the voucher", e))?;
    tracing::info!(
        %serial,
        %peer,
        %masa_url,
        status = 200,
        voucher_id = id,
        assertion = assertion.unwrap_or("none"),
        outcome = "relayed",
        "requestvoucher"
    );
    Ok(voucher_response(
        &answer.content_type,
        encoding,
        &voucher_bytes,
    ))
}

/// What is needed to store a relayed voucher.
struct RelayContext {
    serial: String,
    idevid_sha256: String,
    peer: String,
    accept: Option<String>,
}

/// The MASA's refusal as the pledge gets it (RFC 8995 §5.6): its 4xx or 503 (with its
/// Retry-After) and reason, else 502.
fn masa_refusal_response(e: &MasaError) -> Response {
    let mut resp = Reject::new(e.status(), e).into_response();
    if let Some(v) = e.retry_after().and_then(|r| HeaderValue::from_str(r).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Relay a stored, unexpired nonceless voucher for this pledge (RFC 8995 §7.2, §7.3), if one
/// still passes the checks made on any voucher before relay.
async fn relay_stored_nonceless(
    s: &Registrar,
    checked: &CheckedPledgeRequest,
    manufacturer: &ManufacturerAnchors,
    encoding: BodyEncoding,
    ctx: &RelayContext,
) -> Result<Option<Response>, Reject> {
    let stored = db::nonceless_vouchers(&s.db, &ctx.serial)
        .map_err(|e| Reject::internal("reading stored nonceless vouchers", e))?;
    let now = time::OffsetDateTime::now_utc();
    for v in stored {
        if ctx
            .accept
            .as_deref()
            .is_some_and(|a| !accept_allows(a, &v.content_type))
        {
            continue;
        }
        let Some(format) = Format::from_media_type(&v.content_type) else {
            continue;
        };
        let voucher = match check_nonceless_voucher(
            format,
            &v.voucher,
            &checked.serial_number,
            &manufacturer.voucher_policy,
            &s.registrar_chain,
            now,
        ) {
            Ok(voucher) => voucher,
            Err(e) => {
                tracing::info!(serial = %ctx.serial, id = v.id, error = %e, "stored nonceless voucher not usable");
                continue;
            }
        };
        let assertion = voucher.assertion.map(|a| a.as_str());
        let id = db::store_voucher(
            &s.writer,
            &NewVoucher {
                serial: &ctx.serial,
                idevid_sha256: &ctx.idevid_sha256,
                nonce: None,
                request_format: format.media_type(),
                content_type: &v.content_type,
                assertion,
                masa_url: &v.masa_url,
                voucher: &v.voucher,
                rvr: None,
            },
        )
        .await
        .map_err(|e| Reject::internal("storing the voucher", e))?;
        tracing::info!(
            serial = %ctx.serial,
            peer = %ctx.peer,
            status = 200,
            voucher_id = id,
            nonceless_id = v.id,
            expires_on = v.expires_on.as_deref().unwrap_or("-"),
            outcome = "relayed-nonceless",
            "requestvoucher"
        );
        return Ok(Some(voucher_response(
            &v.content_type,
            encoding,
            &v.voucher,
        )));
    }
    Ok(None)
}
