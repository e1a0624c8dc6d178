//! `registrar check-config`: every key of `registrar.toml` and every file it names, checked
//! as `registrar serve` would use them, each problem reported on its own line.

use crate::config::RegistrarConfig;
use crate::server::{StartError, first_cert, key_file, key_matches};
use brski_common::oid::ID_KP_CMC_RA;
use brski_common::pki::chain::signed_by;
use brski_common::pki::ext::has_eku;
use brski_service::files::read_certs;
use std::path::Path;

/// The problems of the configuration at `path`; empty when `registrar serve` can start with it.
pub fn problems(path: &Path) -> Vec<String> {
    let c = match RegistrarConfig::load_unchecked(path) {
        Ok(c) => c,
        Err(e) => return vec![crate::masa_client::one_line(&e.to_string(), 2000)],
    };
    let mut out = c.validate();
    let mut problem = |p: String| out.push(p);

    // Ports free, in the words `registrar serve` refuses with.
    let udp = [
        ("coaps-listen", c.coaps_addr()),
        ("jpy-listen", c.jpy_addr()),
    ];
    let tcp = [
        ("listen", Some(c.listen)),
        ("metrics-listen", c.metrics_addr().ok().flatten()),
        ("crl-listen", c.crl_addr().ok().flatten()),
    ];
    let ports = tcp.into_iter().map(|(key, a)| (key, a, false)).chain(
        udp.into_iter()
            .filter_map(|(key, a)| a.ok().map(|a| (key, a, true))),
    );
    for (key, addr, is_udp) in ports {
        if let Some(addr) = addr {
            if let Err(source) = brski_service::config::port_free(addr, is_udp) {
                problem(format!("{key}: {}", StartError::Listen { addr, source }));
            }
        }
    }

    let registrar_cert =
        first_cert("registrar-cert", &c.registrar_cert).map_err(|e| problem(e.to_string()));
    let registrar_key =
        key_file("registrar-key", &c.registrar_key).map_err(|e| problem(e.to_string()));
    let domain_ca =
        first_cert("domain-ca-cert", &c.domain_ca_cert).map_err(|e| problem(e.to_string()));
    let domain_ca_key =
        key_file("domain-ca-key", &c.domain_ca_key).map_err(|e| problem(e.to_string()));
    if let (Ok(cert), Ok(key)) = (&registrar_cert, &registrar_key) {
        if !key_matches(cert, key) {
            problem(format!(
                "registrar-key {} is not the key of registrar-cert {}",
                c.registrar_key.display(),
                c.registrar_cert.display()
            ));
        }
    }
    if let Ok(cert) = &registrar_cert {
        // RFC 8995 §5.5.4: the registrar signs voucher-requests as an RA.
        if !has_eku(cert, ID_KP_CMC_RA) {
            problem(format!(
                "registrar-cert {} has no extended key usage id-kp-cmcRA (RFC 8995 §5.5.4)",
                c.registrar_cert.display()
            ));
        }
    }
    if let (Ok(ca), Ok(key)) = (&domain_ca, &domain_ca_key) {
        if !key_matches(ca, key) {
            problem(format!(
                "domain-ca-key {} is not the key of domain-ca-cert {}",
                c.domain_ca_key.display(),
                c.domain_ca_cert.display()
            ));
        }
    }
    if let (Ok(cert), Ok(ca)) = (&registrar_cert, &domain_ca) {
        if !signed_by(cert, ca) {
            problem(format!(
                "registrar-cert {} is not issued by the domain CA {}",
                c.registrar_cert.display(),
                c.domain_ca_cert.display()
            ));
        }
    }
    for m in &c.manufacturers {
        match read_certs(&m.ca) {
            Ok(certs) if certs.is_empty() => problem(format!(
                "manufacturer ca {}: no certificate",
                m.ca.display()
            )),
            Ok(_) => {}
            Err(e) => problem(format!("manufacturer ca: {e}")),
        }
        if let Some(p) = &m.pcr_reference {
            if let Err(e) = crate::config::load_pcr_policy(p) {
                problem(e);
            }
        }
    }
    if let Some(masa_ca) = &c.masa_ca {
        match read_certs(masa_ca) {
            Ok(certs) if certs.is_empty() => {
                problem(format!("masa-ca {}: no certificate", masa_ca.display()))
            }
            Ok(_) => {}
            Err(e) => problem(format!("masa-ca: {e}")),
        }
    }
    if let Some(p) = c.database.sqlite_path().and_then(database_problem) {
        problem(p);
    }
    if let Some(ca) = &c.database_ca {
        match read_certs(ca) {
            Ok(certs) if certs.is_empty() => {
                problem(format!("database-ca {}: no certificate", ca.display()))
            }
            Ok(_) => {}
            Err(e) => problem(format!("database-ca: {e}")),
        }
    }
    out
}

/// Whether the database can be opened for writing (an absent one: whether its directory
/// takes a new file), without creating it.
fn database_problem(db: &Path) -> Option<String> {
    if db.exists() {
        let conn = match rusqlite_open(db) {
            Ok(c) => c,
            Err(e) => return Some(format!("database {}: {e}", db.display())),
        };
        return match conn.integrity_ok() {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "database {} failed its integrity check",
                db.display()
            )),
            Err(e) => Some(format!("database {}: {e}", db.display())),
        };
    }
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Some(format!(
            "database {}: {} is not a directory",
            db.display(),
            dir.display()
        )),
        Ok(m) if m.permissions().readonly() => Some(format!(
            "database {}: directory {} is not writable",
            db.display(),
            dir.display()
        )),
        Ok(_) => None,
        Err(e) => Some(format!("database {}: {}: {e}", db.display(), dir.display())),
    }
}

/// Open an existing database read-write (its idempotent schema applied, as `serve` does).
fn rusqlite_open(db: &Path) -> Result<brski_service::store::Db, String> {
    if std::fs::metadata(db).is_ok_and(|m| m.permissions().readonly()) {
        return Err("not writable".into());
    }
    crate::server::open_db(db).map_err(|e| e.to_string())
}
