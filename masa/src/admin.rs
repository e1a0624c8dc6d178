//! Operator commands on the database (safe while the server runs: SQLite WAL):
//! `claim` (a sales record for the claimed policy), `release` (end a first-owner ownership) and
//! `audit-log` (the RFC 8995 §5.8.1 log of one device).

use crate::config::{MasaConfig, Ownership};
use crate::db;
use crate::error::MasaError;
use brski_common::audit::AuditLog;
use brski_common::pki::ext::domain_id_base64;
use brski_service::files::read_certs;
use der::Encode;
use std::path::Path;

async fn open(config: &Path) -> Result<(MasaConfig, sqlx::SqlitePool), MasaError> {
    let cfg = MasaConfig::load(config)?;
    let pool = db::open(&cfg.database).await?;
    Ok((cfg, pool))
}

async fn known(pool: &sqlx::SqlitePool, serial: &str) -> Result<(), MasaError> {
    match db::device(pool, serial).await? {
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
    let (cfg, pool) = open(config).await?;
    let result = async {
        known(&pool, serial).await?;
        db::set_claim(&pool, serial, &record).await?;
        Ok((record.domain_id.clone(), cfg.ownership))
    }
    .await;
    pool.close().await;
    result
}

/// `masa release`: forget the first owner of `serial`; `Ok(false)` when it had none.
pub async fn release(config: &Path, serial: &str) -> Result<bool, MasaError> {
    let (_, pool) = open(config).await?;
    let result = async {
        known(&pool, serial).await?;
        Ok(db::release(&pool, serial).await?)
    }
    .await;
    pool.close().await;
    result
}

/// `masa audit-log`: the audit log of `serial` as RFC 8995 §5.8.1 JSON, in full or abridged.
pub async fn audit_log(config: &Path, serial: &str, abridged: bool) -> Result<String, MasaError> {
    let (_, pool) = open(config).await?;
    let result = async {
        known(&pool, serial).await?;
        let log = AuditLog::new(db::audit_events(&pool, serial).await?);
        let log = if abridged { log.abridge() } else { log };
        let json = log.to_json()?;
        String::from_utf8(json).map_err(|e| MasaError::Invalid(e.to_string()))
    }
    .await;
    pool.close().await;
    result
}
