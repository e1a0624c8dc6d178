//! `registrar vouchers fetch`: obtain a nonceless voucher ahead of time for a claimed device
//! (RFC 8995 §7.2, §7.3, §11.1): a registrar voucher-request without nonce and without
//! prior-signed request, sent to the MASA; the voucher is checked and stored, and relayed
//! later to that pledge (`use-nonceless-vouchers`).

use crate::config::RegistrarConfig;
use crate::db::NewNoncelessVoucher;
use crate::server::Registrar;
use brski_common::brski::registrar::check_nonceless_voucher;
use brski_common::envelope::{self, Format};
use brski_common::pki::ext::masa_base_uri;
use brski_common::voucher::VoucherRequest;
use std::path::PathBuf;

/// `registrar vouchers ...`.
#[derive(Debug, clap::Args)]
pub struct VouchersArgs {
    #[command(subcommand)]
    pub action: VouchersAction,
    /// The registrar's configuration file.
    #[arg(long, global = true, default_value = "registrar.toml")]
    pub config: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum VouchersAction {
    /// Request a nonceless voucher for a serial number and store it (RFC 8995 §7.2).
    Fetch {
        /// The device's serial number.
        #[arg(long)]
        serial: String,
        /// The MASA (`host:port` or URI); default: the first manufacturer's `masa-url`.
        #[arg(long)]
        masa_url: Option<String>,
        /// The IDevID's authorityKeyIdentifier extension value (hex), as `idevid-issuer`.
        #[arg(long, value_name = "HEX")]
        idevid_issuer: Option<String>,
    },
}

/// Run `registrar vouchers ...`; the text to print.
pub async fn run(args: &VouchersArgs) -> Result<String, String> {
    let config = RegistrarConfig::load(&args.config).map_err(|e| e.to_string())?;
    let VouchersAction::Fetch {
        serial,
        masa_url,
        idevid_issuer,
    } = &args.action;
    let masa_url = masa_url
        .clone()
        .or_else(|| config.manufacturers.iter().find_map(|m| m.masa_url.clone()))
        .ok_or("no --masa-url and no manufacturer masa-url configured")?;
    let base = masa_base_uri(&masa_url).map_err(|e| format!("--masa-url: {e}"))?;
    let idevid_issuer = idevid_issuer
        .as_deref()
        .map(hex::decode)
        .transpose()
        .map_err(|e| format!("--idevid-issuer: {e}"))?;
    let s = Registrar::load(config).await.map_err(|e| e.to_string())?;

    let mut request = VoucherRequest::new(serial.clone());
    request.created_on = Some(
        time::OffsetDateTime::now_utc()
            .try_into()
            .map_err(|e| format!("created-on: {e}"))?,
    );
    request.idevid_issuer = idevid_issuer;
    let format = Format::Cms;
    let payload = request.to_payload(format).map_err(|e| e.to_string())?;
    let rvr = envelope::sign(format, &payload, &*s.registrar_key, &s.registrar_chain)
        .map_err(|e| format!("signing the registrar voucher-request: {e}"))?;
    let answer = s
        .masa
        .request_voucher(&base, format, Some(format.media_type()), rvr)
        .await
        .map_err(|e| e.to_string())?;
    let (_, bytes) = crate::wire::signed_body(answer.format, &answer.body);
    // The device's manufacturer is not known without its IDevID: any manufacturer's voucher
    // anchors.
    let anchors: Vec<_> = s
        .manufacturers
        .iter()
        .flat_map(|m| m.voucher_policy.anchors.iter().cloned())
        .collect();
    let voucher = check_nonceless_voucher(
        answer.format,
        &bytes,
        serial,
        &brski_common::pki::chain::TrustPolicy::new(anchors),
        &s.registrar_chain,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|e| format!("voucher from the MASA rejected: {e}"))?;
    let expires_on = voucher.expires_on.as_ref().map(|t| t.as_str().to_string());
    let id = s
        .store
        .store_nonceless_voucher(&NewNoncelessVoucher {
            serial,
            masa_url: &masa_url,
            content_type: &answer.content_type,
            expires_on: expires_on.as_deref(),
            voucher: &bytes,
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "nonceless voucher {id} for {serial} stored, expires-on {}",
        expires_on.as_deref().unwrap_or("-")
    ))
}
