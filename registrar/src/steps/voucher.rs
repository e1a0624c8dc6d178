//! `requestvoucher` (RFC 8995 §5.2–§5.6; `/rv`, cBRSKI §6.3): check the pledge
//! voucher-request, apply the pledge policy, build and sign the registrar voucher-request, ask
//! the pledge's MASA, check the voucher, store it, and relay it unchanged.

use super::{Accepts, Declared, Media, Outcome, Payload, Peer, Refusal, Relayed, unfinished};
use crate::config::UseNonceless;
use crate::db::{self, NewVoucher, Policy, Sighting};
use crate::masa_client::MasaError;
use crate::server::ManufacturerAnchors;
use crate::server::Registrar;
use crate::wire::signed_body;
use brski_common::answer::Class;
use brski_common::brski::registrar::{
    CheckedPledgeRequest, check_nonceless_voucher, check_pledge_voucher_request_with,
    check_voucher_for_relay, sign_registrar_voucher_request,
};
use brski_common::envelope::Format;
use brski_common::pki::chain::validate_chain;
use brski_common::pki::ext::{masa_base_uri, masa_url};
use der::Decode;
use x509_cert::Certificate;

/// A pledge voucher-request.
#[derive(Clone, Debug)]
pub struct VoucherRequest {
    pub peer: Peer,
    /// The body's declared format: a signed voucher-request format.
    pub content_format: Option<Declared>,
    /// The voucher formats the pledge accepts (asked of the MASA on its behalf).
    pub accept: Accepts,
    /// The signed voucher-request.
    pub body: Vec<u8>,
}

/// The signed voucher formats.
const VOUCHER_FORMATS: [Format; 3] = [Format::Cms, Format::Jws, Format::Cose];

/// The voucher `bytes`, labelled `content_type` (the MASA's media type, RFC 8995 §5.6).
fn relay(content_type: &str, bytes: &[u8]) -> Outcome {
    Outcome::Done {
        class: Class::Changed,
        payload: Some(Payload {
            format: Declared::new(content_type),
            bytes: bytes.to_vec(),
        }),
    }
}

/// The class of a refusal known by its HTTP status.
fn class_of_status(status: u16) -> Class {
    Class::of_http_refusal(status).unwrap_or(if status < 500 {
        Class::BadRequest
    } else {
        Class::BadGateway
    })
}

/// The MASA URL for this pledge: the IDevID's MASA URL extension, else the manufacturer's
/// configured one (RFC 8995 §2.3.2, §2.8).
fn masa_url_for(s: &Registrar, checked: &CheckedPledgeRequest) -> Result<String, Refusal> {
    let idevid = checked
        .idevid()
        .ok_or_else(|| Refusal::new(Class::Unauthorized, "no TLS client certificate"))?;
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
                Refusal::new(Class::Forbidden,
                    "IDevID has no MASA URL extension and its manufacturer has no masa-url configured",
                )
            }),
        Err(e) => Err(Refusal::new(Class::Forbidden, format!("IDevID MASA URL extension: {e}"))),
    }
}

/// Relay a voucher for a pledge voucher-request, or say why not.
pub async fn request_voucher(s: &Registrar, req: &VoucherRequest) -> Outcome {
    let outcome = answer(s, req).await;
    s.metrics.voucher_request(req.peer.transport, &outcome);
    outcome
}

async fn answer(s: &Registrar, req: &VoucherRequest) -> Outcome {
    match handle(s, req).await {
        // Every outcome of `handle` logged its line.
        Ok(outcome) => outcome,
        Err(refusal) => {
            // RFC 8995 §5.3: after a proximity failure (possible man-in-the-middle) the
            // registrar closes the connection.
            let close = refusal.class == Class::Unauthorized;
            unfinished("requestvoucher", &req.peer, Refusal { close, ..refusal })
        }
    }
}

async fn handle(s: &Registrar, req: &VoucherRequest) -> Result<Outcome, Refusal> {
    let peer = req.peer.addr.to_string();
    let transport = req.peer.transport;
    let format = match req.content_format.as_ref().and_then(|d| d.media) {
        Some(Media::Voucher(format)) => format,
        _ => {
            let label = req.content_format.as_ref().map_or("", |d| d.label.as_str());
            return Err(Refusal::new(
                Class::UnsupportedContentFormat,
                format!("Content-Type {label:?} is not a voucher-request format"),
            ));
        }
    };
    let accept = &req.accept;
    match accept {
        Accepts::Unreadable => {
            return Err(Refusal::new(
                Class::NotAcceptable,
                "Accept header is not ASCII",
            ));
        }
        Accepts::Ranges { label, .. }
            if !VOUCHER_FORMATS
                .iter()
                .any(|f| accept.allows(Some(Media::Voucher(*f)))) =>
        {
            return Err(Refusal::new(
                Class::NotAcceptable,
                format!("Accept {label:?} names no voucher format this registrar relays"),
            ));
        }
        _ => {}
    }
    let pvr = &req.body;
    let chain = req
        .peer
        .certs
        .iter()
        .map(|d| Certificate::from_der(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Refusal::new(Class::BadRequest, format!("TLS client certificate: {e}")))?;
    let checked = check_pledge_voucher_request_with(
        format,
        pvr,
        &chain,
        &s.registrar_cert_der,
        &s.idevid_policy,
        &|validated| s.serial_of_validated(validated),
    )
    .map_err(|e| Refusal::new(class_of_status(e.status()), e))?;
    let serial = checked.serial_number.clone();
    let idevid_sha256 = super::est::fingerprint(
        req.peer
            .certs
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
        .ok_or_else(|| Refusal::new(Class::Forbidden, "IDevID of no configured manufacturer"))?;
    if let Some(idevid) = checked.idevid() {
        validate_chain(idevid, &chain[1..], &manufacturer.idevid_policy)
            .map_err(|e| Refusal::new(Class::Forbidden, format!("IDevID: {e}")))?;
    }
    let ctx = RelayContext {
        serial: serial.clone(),
        idevid_sha256: idevid_sha256.clone(),
        peer: &req.peer,
        accept,
    };

    // Pledge policy (RFC 8995 §5.3): denied → 404; pending → 202 until allowed. A pledge that
    // may go on has its sighting recorded with the voucher (one commit for the request), or
    // after the refusal when there is none; any other at once, which also decides its policy.
    let if_new = match s.config.accept {
        crate::config::Accept::Auto => Policy::Auto,
        crate::config::Accept::Pending => Policy::Pending,
    };
    let sighting = Sighting {
        peer: &peer,
        transport: transport.as_str(),
        policy_if_new: if_new,
    };
    let stored = s
        .store
        .policy(&serial)
        .await
        .map_err(|e| Refusal::store("reading the pledge policy", e))?;
    let (policy, carried) = match db::policy_when_seen(stored, if_new) {
        go_on @ (Policy::Auto | Policy::Allowed) => (go_on, Some(sighting)),
        _ => {
            let now_stored = s
                .store
                .record_seen(&serial, &peer, transport.as_str(), if_new)
                .await
                .map_err(|e| Refusal::store("recording the pledge", e))?;
            (now_stored, None)
        }
    };
    match policy {
        Policy::Denied => {
            return Err(Refusal::new(
                Class::NotFound,
                format!("pledge {serial} is not accepted in this domain"),
            ));
        }
        Policy::Pending => {
            tracing::info!(%serial, %peer, transport = transport.as_str(), status = transport.status(Class::Pending), outcome = "pending", "requestvoucher");
            // RFC 8995 §5.3, RFC 7030 §4.2.3: ask again later.
            return Ok(Outcome::Pending {
                reason: format!("pledge {serial} is waiting for approval; retry later"),
                retry_after: u64::from(s.config.retry_after),
            });
        }
        Policy::Auto | Policy::Allowed => {}
    }
    let mut recorded = carried.is_none();
    let relayed: Result<Outcome, Refusal> = async {
        // An idempotent retry: the voucher already relayed for this nonce (RFC 8995 §5.6).
        let nonce = checked
            .request
            .nonce
            .as_ref()
            .map(|n| n.json_string().into_owned());
        if let Some(n) = &nonce {
            let stored = s
                .store
                .voucher_for_nonce(&serial, &idevid_sha256, n)
                .await
                .map_err(|e| Refusal::store("reading stored vouchers", e))?;
            if let Some(v) = stored {
                if accept.allows(Media::from_media_type(&v.content_type)) {
                    tracing::info!(%serial, %peer, transport = transport.as_str(), status = transport.status(Class::Changed), voucher_id = v.id, outcome = "resent", "requestvoucher");
                    return Ok(relay(&v.content_type, &v.voucher));
                }
            }
        }

        let masa_url = masa_url_for(s, &checked)?;
        let base = masa_base_uri(&masa_url)
            .map_err(|e| Refusal::new(Class::Forbidden, format!("IDevID MASA URL: {e}")))?;
        // RFC 7.2: a stored nonceless voucher instead of asking the MASA, when so configured.
        if s.config.use_nonceless_vouchers == UseNonceless::Always {
            if let Some(relayed) =
                relay_stored_nonceless(s, &checked, manufacturer, &ctx, carried).await?
            {
                recorded = true;
                return Ok(relayed);
            }
        }
        let rvr = sign_registrar_voucher_request(
            &checked,
            time::OffsetDateTime::now_utc(),
            &*s.registrar_key,
            &s.registrar_chain,
        )
        .map_err(|e| Refusal::internal("signing the registrar voucher-request", e))?;
        tracing::debug!(%serial, %peer, %masa_url, format = format.media_type(), "requesting voucher from MASA");
        let answer = match s
            .masa
            .request_voucher(&base, format, accept.to_header().as_deref(), rvr.clone())
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%serial, %masa_url, error = %e, outcome = "masa-failed", "requestvoucher");
                if e.is_unreachable()
                    && s.config.use_nonceless_vouchers == UseNonceless::WhenMasaUnreachable
                {
                    if let Some(relayed) =
                        relay_stored_nonceless(s, &checked, manufacturer, &ctx, carried).await?
                    {
                        recorded = true;
                        return Ok(relayed);
                    }
                }
                // RFC 8995 §5.6: the MASA's own answer reaches the pledge.
                return Ok(masa_refusal(&e).into());
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
            Refusal::new(Class::BadGateway, format!("voucher from the MASA rejected: {e}"))
        })?;
        if voucher.created_on.is_none() {
            // RFC 8366bis §8.4: created-on is optional; relayed, and noted.
            tracing::info!(%serial, %masa_url, "voucher from the MASA has no created-on");
        }
        let assertion = voucher.assertion.map(|a| a.as_str());
        let id = s
            .store
            .store_voucher(&NewVoucher {
                serial: &serial,
                idevid_sha256: &idevid_sha256,
                nonce: nonce.as_deref(),
                request_format: format.media_type(),
                content_type: &answer.content_type,
                assertion,
                masa_url: &masa_url,
                voucher: &voucher_bytes,
                rvr: Some(&rvr),
                sighting: carried,
            })
            .await
            .map_err(|e| Refusal::store("storing the voucher", e))?;
        recorded = true;
        tracing::info!(
            %serial,
            %peer,
            %masa_url,
            transport = transport.as_str(), status = transport.status(Class::Changed),
            voucher_id = id,
            assertion = assertion.unwrap_or("none"),
            outcome = "relayed",
            "requestvoucher"
        );
        Ok(relay(&answer.content_type, &voucher_bytes))
    }
    .await;
    if !recorded {
        if let Err(e) = s
            .store
            .record_seen(&serial, &peer, transport.as_str(), if_new)
            .await
        {
            tracing::error!(%serial, error = %e, "recording the pledge");
        }
    }
    relayed
}

/// What is needed to store a relayed voucher.
struct RelayContext<'a> {
    serial: String,
    idevid_sha256: String,
    peer: &'a Peer,
    accept: &'a Accepts,
}

/// The MASA's refusal as the pledge gets it (RFC 8995 §5.6): its 4xx or 503 (with its
/// Retry-After) and reason, else 502.
fn masa_refusal(e: &MasaError) -> Refusal {
    let status = e.status();
    let retry_after = e.retry_after();
    Refusal {
        retry_after: retry_after.and_then(|r| r.trim().parse().ok()),
        relayed: Some(Relayed {
            status,
            retry_after: retry_after.map(str::to_string),
        }),
        ..Refusal::new(class_of_status(status), e)
    }
}

/// Relay a stored, unexpired nonceless voucher for this pledge (RFC 8995 §7.2, §7.3), if one
/// still passes the checks made on any voucher before relay.
async fn relay_stored_nonceless(
    s: &Registrar,
    checked: &CheckedPledgeRequest,
    manufacturer: &ManufacturerAnchors,
    ctx: &RelayContext<'_>,
    sighting: Option<Sighting<'_>>,
) -> Result<Option<Outcome>, Refusal> {
    let stored = s
        .store
        .nonceless_vouchers(&ctx.serial)
        .await
        .map_err(|e| Refusal::store("reading stored nonceless vouchers", e))?;
    let now = time::OffsetDateTime::now_utc();
    for v in stored {
        if !ctx.accept.allows(Media::from_media_type(&v.content_type)) {
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
        let id = s
            .store
            .store_voucher(&NewVoucher {
                serial: &ctx.serial,
                idevid_sha256: &ctx.idevid_sha256,
                nonce: None,
                request_format: format.media_type(),
                content_type: &v.content_type,
                assertion,
                masa_url: &v.masa_url,
                voucher: &v.voucher,
                rvr: None,
                sighting,
            })
            .await
            .map_err(|e| Refusal::store("storing the voucher", e))?;
        tracing::info!(
            serial = %ctx.serial,
            peer = %ctx.peer.addr,
            transport = ctx.peer.transport.as_str(), status = ctx.peer.transport.status(Class::Changed),
            voucher_id = id,
            nonceless_id = v.id,
            expires_on = v.expires_on.as_deref().unwrap_or("-"),
            outcome = "relayed-nonceless",
            "requestvoucher"
        );
        return Ok(Some(relay(&v.content_type, &v.voucher)));
    }
    Ok(None)
}
