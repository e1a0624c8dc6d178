//! Operator commands on the database (safe while the server runs: SQLite WAL, or PostgreSQL):
//! `claim` (a sales record for the claimed policy), `release` (end a first-owner ownership) and
//! `audit-log` (the RFC 8995 §5.8.1 log of one device).

use crate::config::{MasaConfig, Ownership};
use crate::db;
use crate::error::MasaError;
use crate::store::Store;
use brski_common::audit::AuditLog;
use brski_common::pki::ext::domain_id_base64;
use brski_service::files::read_certs;
use der::Encode;
use std::path::Path;

async fn open(config: &Path) -> Result<(MasaConfig, Store), MasaError> {
    let cfg = MasaConfig::load(config)?;
    let store = Store::open(&cfg, false).await?;
    Ok((cfg, store))
}

async fn known(store: &Store, serial: &str) -> Result<(), MasaError> {
    match store.device(serial).await? {
        Some(_) => Ok(()),
        None => Err(MasaError::UnknownSerial(serial.to_string())),
    }
}

/// `masa claim`: record that `serial` was sold to the domain whose CA is the first certificate
/// in `domain_ca` (replacing an earlier claim). Returns the domainID (RFC 8995 §5.8.2) and the
/// configured policy (claims only take effect under [`Ownership::Claimed`]).
pub async fn claim(
    config: &Path,
    serial: &str,
    domain_ca: &Path,
) -> Result<(String, Ownership), MasaError> {
    let ca = read_certs(domain_ca)?
        .into_iter()
        .next()
        .ok_or_else(|| MasaError::Invalid(format!("{}: no certificate", domain_ca.display())))?;
    let record = db::DomainRecord {
        domain_id: domain_id_base64(&ca)?,
        cert: ca.to_der()?,
    };
    let (cfg, store) = open(config).await?;
    known(&store, serial).await?;
    store.set_claim(serial, &record).await?;
    Ok((record.domain_id, cfg.ownership))
}

/// `masa release`: forget the first owner of `serial`; `Ok(false)` when it had none.
pub async fn release(config: &Path, serial: &str) -> Result<bool, MasaError> {
    let (_, store) = open(config).await?;
    known(&store, serial).await?;
    Ok(store.release(serial).await?)
}

/// `masa audit-log`: the audit log of `serial` as RFC 8995 §5.8.1 JSON, in full or abridged.
pub async fn audit_log(config: &Path, serial: &str, abridged: bool) -> Result<String, MasaError> {
    let (_, store) = open(config).await?;
    known(&store, serial).await?;
    let log = AuditLog::new(store.audit_events(serial).await?);
    let log = if abridged { log.abridge() } else { log };
    let json = log.to_json()?;
    String::from_utf8(json).map_err(|e| MasaError::Invalid(e.to_string()))
}
