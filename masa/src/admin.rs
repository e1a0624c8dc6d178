//! Operator commands on the database (safe while the server runs: SQLite WAL):
//! `claim` (a sales record for the claimed policy), `release` (end a first-owner ownership) and
//! `audit-log` (the RFC 8995 §5.8.1 log of one device).

use crate::config::{MasaConfig, Ownership};
use crate::db;
use crate::error::MasaError;
use brski_common::audit::AuditLog;
use brski_common::pki::ext::domain_id_base64;
use brski_service::files::read_certs;
use brski_service::store::Db;
use der::Encode;
use std::path::Path;

fn open(config: &Path) -> Result<(MasaConfig, Db), MasaError> {
    let cfg = MasaConfig::load(config)?;
    let db = db::open(&cfg.database)?;
    Ok((cfg, db))
}

fn known(db: &Db, serial: &str) -> Result<(), MasaError> {
    match db::device(db, serial)? {
        Some(_) => Ok(()),
        None => Err(MasaError::UnknownSerial(serial.to_string())),
    }
}

/// `masa claim`: record that `serial` was sold to the domain whose CA is the first certificate
/// in `domain_ca` (replacing an earlier claim). Returns the domainID (RFC 8995 §5.8.2) and the
/// configured policy (claims only take effect under [`Ownership::Claimed`]).
pub fn claim(
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
    let (cfg, db) = open(config)?;
    known(&db, serial)?;
    db::set_claim(&db, serial, &record)?;
    Ok((record.domain_id, cfg.ownership))
}

/// `masa release`: forget the first owner of `serial`; `Ok(false)` when it had none.
pub fn release(config: &Path, serial: &str) -> Result<bool, MasaError> {
    let (_, db) = open(config)?;
    known(&db, serial)?;
    Ok(db::release(&db, serial)?)
}

/// `masa audit-log`: the audit log of `serial` as RFC 8995 §5.8.1 JSON, in full or abridged.
pub fn audit_log(config: &Path, serial: &str, abridged: bool) -> Result<String, MasaError> {
    let (_, db) = open(config)?;
    known(&db, serial)?;
    let log = AuditLog::new(db::audit_events(&db, serial)?);
    let log = if abridged { log.abridge() } else { log };
    let json = log.to_json()?;
    String::from_utf8(json).map_err(|e| MasaError::Invalid(e.to_string()))
}
