//! The MASA's durable state in SQLite (rusqlite through `brski_service::store`: WAL,
//! synchronous=FULL): devices minted by the factory, first-owner records, sales claims, issued
//! vouchers and the audit log of RFC 8995 §5.8.1. Reads run on the caller's thread; the
//! server's writes go through the group commit. A voucher and its audit entry are written in
//! one transaction that commits before the voucher is sent (RFC 8995 §5.6: the log is updated
//! when the voucher is issued).

use brski_common::audit::{Assertion, AuditEvent};
use brski_service::store::{
    self, Connection, Db, GroupCommit, OptionalExtension, StoreError, params,
};
use std::path::Path;

/// The schema; every statement is idempotent.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    serial        TEXT PRIMARY KEY NOT NULL,
    idevid_issuer BLOB NOT NULL,
    idevid_cert   BLOB NOT NULL,
    minted_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS owners (
    serial      TEXT PRIMARY KEY NOT NULL REFERENCES devices(serial),
    domain_id   TEXT NOT NULL,
    domain_cert BLOB NOT NULL,
    since       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    serial     TEXT PRIMARY KEY NOT NULL REFERENCES devices(serial),
    domain_id  TEXT NOT NULL,
    domain_ca  BLOB NOT NULL,
    claimed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vouchers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    serial     TEXT NOT NULL REFERENCES devices(serial),
    created_on TEXT NOT NULL,
    expires_on TEXT,
    format     TEXT NOT NULL,
    domain_id  TEXT NOT NULL,
    nonce      TEXT,
    assertion  TEXT NOT NULL,
    voucher    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    serial        TEXT NOT NULL REFERENCES devices(serial),
    idevid_issuer BLOB NOT NULL,
    date          TEXT NOT NULL,
    domain_id     TEXT NOT NULL,
    nonce         TEXT,
    assertion     TEXT NOT NULL,
    voucher_id    INTEGER NOT NULL REFERENCES vouchers(id)
);
CREATE INDEX IF NOT EXISTS audit_log_by_serial ON audit_log(serial, id);
";

/// `PRAGMA user_version` from which every stored domainID is `domain_id_base64` of its
/// certificate, a function of the key (RFC 8995 §5.8.2, §11.2); older databases may hold an
/// SKI copied from the certificate.
const DOMAIN_ID_OF_THE_KEY: i64 = 1;

/// Open (creating if needed) the database at `path`, bringing the stored domainIDs up to date.
pub fn open(path: &Path) -> Result<Db, crate::error::MasaError> {
    let db = Db::open(path, SCHEMA)?;
    db.write(migrate_domain_ids)?;
    Ok(db)
}

/// Recompute the domainIDs of owners and claims from their stored certificates, and of
/// vouchers and their audit entries from the voucher's `pinned-domain-cert`, once; a row whose
/// certificate cannot be read keeps its value. Idempotent.
fn migrate_domain_ids(conn: &Connection) -> store::Result<()> {
    use brski_common::envelope::{self, Format};
    use brski_common::pki::ext::domain_id_base64;
    use brski_common::voucher::Voucher;
    use der::Decode;
    use x509_cert::Certificate;

    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= DOMAIN_ID_OF_THE_KEY {
        return Ok(());
    }
    let of_cert = |der: &[u8]| {
        Certificate::from_der(der)
            .ok()
            .and_then(|c| domain_id_base64(&c).ok())
    };
    for (table, column) in [("owners", "domain_cert"), ("claims", "domain_ca")] {
        let rows: Vec<(String, Vec<u8>)> = conn
            .prepare(&format!("SELECT serial, {column} FROM {table}"))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (serial, der) in rows {
            if let Some(id) = of_cert(&der) {
                conn.execute(
                    &format!("UPDATE {table} SET domain_id = ?1 WHERE serial = ?2"),
                    params![id, serial],
                )?;
            }
        }
    }
    let vouchers: Vec<(i64, String, Vec<u8>)> = conn
        .prepare("SELECT id, format, voucher FROM vouchers")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (id, format, signed) in vouchers {
        let format = match format.as_str() {
            "cms" => Format::Cms,
            "jws" => Format::Jws,
            "cose" => Format::Cose,
            _ => continue,
        };
        let pin = envelope::parse(format, &signed)
            .ok()
            .and_then(|p| Voucher::from_payload(format, &p.payload).ok())
            .and_then(|v| v.pinned_domain_cert);
        if let Some(id_text) = pin.as_deref().and_then(of_cert) {
            conn.execute(
                "UPDATE vouchers SET domain_id = ?1 WHERE id = ?2",
                params![id_text, id],
            )?;
            conn.execute(
                "UPDATE audit_log SET domain_id = ?1 WHERE voucher_id = ?2",
                params![id_text, id],
            )?;
        }
    }
    conn.execute_batch(&format!("PRAGMA user_version = {DOMAIN_ID_OF_THE_KEY}"))?;
    Ok(())
}

/// The group-commit writer of the database at `path` (opened by [`open`] first).
pub fn writer(
    path: &Path,
    metrics: brski_service::metrics::DbMetrics,
) -> Result<GroupCommit, crate::error::MasaError> {
    Ok(GroupCommit::start_metered(path, metrics)?)
}

/// A device the factory minted.
#[derive(Clone, Debug)]
pub struct Device {
    pub serial: String,
    /// `idevid-issuer` of its IDevID (RFC 8366bis §6.1).
    pub idevid_issuer: Vec<u8>,
    /// DER of its IDevID.
    pub idevid_cert: Vec<u8>,
}

/// A domain that owns a device (first-owner) or claimed it (claimed).
#[derive(Clone, Debug)]
pub struct DomainRecord {
    /// base64 domainID (RFC 8995 §5.8.2).
    pub domain_id: String,
    /// DER of the domain certificate (the pinned cert, or the claimed domain CA).
    pub cert: Vec<u8>,
}

/// What is recorded when a voucher is issued.
#[derive(Clone, Debug)]
pub struct IssuedVoucher<'a> {
    pub serial: &'a str,
    pub idevid_issuer: &'a [u8],
    /// `created-on` of the voucher, which is also the audit entry's `date`.
    pub created_on: &'a str,
    pub expires_on: Option<&'a str>,
    pub format: &'a str,
    pub domain_id: &'a str,
    /// The nonce as its JSON string; `None` for a nonceless voucher.
    pub nonce: Option<&'a str>,
    pub assertion: &'a str,
    pub voucher: &'a [u8],
}

pub(crate) fn now() -> String {
    brski_common::brski::date_time(time::OffsetDateTime::now_utc())
        .as_str()
        .to_string()
}

/// Record a minted device; `Ok(false)` when the serial was minted before.
pub fn insert_device(conn: &Connection, device: &Device) -> store::Result<bool> {
    let done = conn
        .prepare_cached(
            "INSERT INTO devices (serial, idevid_issuer, idevid_cert, minted_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(serial) DO NOTHING",
        )?
        .execute(params![
            device.serial,
            device.idevid_issuer,
            device.idevid_cert,
            now()
        ])?;
    Ok(done == 1)
}

/// The device minted with `serial`.
pub fn device(db: &Db, serial: &str) -> store::Result<Option<Device>> {
    db.read(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT serial, idevid_issuer, idevid_cert FROM devices WHERE serial = ?1",
            )?
            .query_row(params![serial], |r| {
                Ok(Device {
                    serial: r.get(0)?,
                    idevid_issuer: r.get(1)?,
                    idevid_cert: r.get(2)?,
                })
            })
            .optional()?)
    })
}

/// The first owner of `serial`.
pub fn owner(conn: &Connection, serial: &str) -> store::Result<Option<DomainRecord>> {
    domain_record(
        conn,
        "SELECT domain_id, domain_cert FROM owners WHERE serial = ?1",
        serial,
    )
}

/// The domain record that `sql` (selecting domain ID and certificate by serial) finds.
fn domain_record(
    conn: &Connection,
    sql: &str,
    serial: &str,
) -> store::Result<Option<DomainRecord>> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![serial], |r| {
            Ok(DomainRecord {
                domain_id: r.get(0)?,
                cert: r.get(1)?,
            })
        })
        .optional()?)
}

/// Make `domain` the owner of `serial` unless it has one; `Ok(true)` when it became the owner.
pub fn insert_owner_if_none(
    conn: &Connection,
    serial: &str,
    domain: &DomainRecord,
) -> store::Result<bool> {
    let done = conn
        .prepare_cached(
            "INSERT INTO owners (serial, domain_id, domain_cert, since) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(serial) DO NOTHING",
        )?
        .execute(params![serial, domain.domain_id, domain.cert, now()])?;
    Ok(done == 1)
}

/// Forget the owner of `serial`; `Ok(false)` when it had none.
pub fn release(db: &Db, serial: &str) -> store::Result<bool> {
    let done = db.write::<_, StoreError>(|conn| {
        Ok(conn.execute("DELETE FROM owners WHERE serial = ?1", params![serial])?)
    })?;
    Ok(done > 0)
}

/// The claim on `serial`.
pub fn claim(conn: &Connection, serial: &str) -> store::Result<Option<DomainRecord>> {
    domain_record(
        conn,
        "SELECT domain_id, domain_ca FROM claims WHERE serial = ?1",
        serial,
    )
}

/// Record (or replace) the claim of `domain` on `serial`.
pub fn set_claim(db: &Db, serial: &str, domain: &DomainRecord) -> store::Result<()> {
    db.write(|conn| {
        conn.execute(
            "INSERT INTO claims (serial, domain_id, domain_ca, claimed_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(serial) DO UPDATE SET domain_id = excluded.domain_id,
                 domain_ca = excluded.domain_ca, claimed_at = excluded.claimed_at",
            params![serial, domain.domain_id, domain.cert, now()],
        )?;
        Ok(())
    })
}

/// Store an issued voucher and its audit entry (RFC 8995 §5.8.1 event) in `conn`'s open
/// transaction (the caller's transaction or savepoint makes the two statements one change).
/// The voucher's id.
pub fn record_voucher(conn: &Connection, v: &IssuedVoucher<'_>) -> store::Result<i64> {
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO vouchers (serial, created_on, expires_on, format, domain_id, nonce,
                                   assertion, voucher)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        )?
        .query_row(
            params![
                v.serial,
                v.created_on,
                v.expires_on,
                v.format,
                v.domain_id,
                v.nonce,
                v.assertion,
                v.voucher
            ],
            |r| r.get(0),
        )?;
    conn.prepare_cached(
        "INSERT INTO audit_log (serial, idevid_issuer, date, domain_id, nonce, assertion,
                                voucher_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        v.serial,
        v.idevid_issuer,
        v.created_on,
        v.domain_id,
        v.nonce,
        v.assertion,
        id
    ])?;
    Ok(id)
}

/// The audit log of `serial`, oldest first.
pub fn audit_events(db: &Db, serial: &str) -> store::Result<Vec<AuditEvent>> {
    db.read(|conn| {
        let mut stmt = conn.prepare_cached(
            "SELECT date, domain_id, nonce, assertion FROM audit_log WHERE serial = ?1 ORDER BY id",
        )?;
        let events = stmt
            .query_map(params![serial], |r| {
                let assertion: String = r.get(3)?;
                Ok(AuditEvent {
                    date: r.get(0)?,
                    domain_id: r.get(1)?,
                    nonce: r.get(2)?,
                    assertion: Assertion::from_text(&assertion),
                    truncated: None,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(events)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &tempfile::TempDir) -> Db {
        open(&dir.path().join("t.db")).expect("open")
    }

    fn device(serial: &str) -> Device {
        Device {
            serial: serial.into(),
            idevid_issuer: vec![4, 1, 0],
            idevid_cert: vec![0x30, 0],
        }
    }

    fn issued<'a>(created_on: &'a str, nonce: Option<&'a str>) -> IssuedVoucher<'a> {
        IssuedVoucher {
            serial: "A",
            idevid_issuer: &[4],
            created_on,
            expires_on: None,
            format: "cms",
            domain_id: "ZG9t",
            nonce,
            assertion: "logged",
            voucher: &[0x30],
        }
    }

    #[test]
    fn devices_are_minted_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db(&dir);
        assert!(
            db.write(|conn| insert_device(conn, &device("A")))
                .expect("insert")
        );
        assert!(
            !db.write(|conn| insert_device(conn, &device("A")))
                .expect("again")
        );
        let d = super::device(&db, "A").expect("q").expect("found");
        assert_eq!(d.idevid_issuer, vec![4, 1, 0]);
        assert!(super::device(&db, "B").expect("q").is_none());
    }

    #[test]
    fn owners_claims_and_the_audit_log_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db(&dir);
        db.write(|conn| insert_device(conn, &device("A")))
            .expect("insert");
        let dom = DomainRecord {
            domain_id: "ZG9t".into(),
            cert: vec![1, 2, 3],
        };
        let ids = db
            .write::<_, StoreError>(|conn| {
                assert!(owner(conn, "A")?.is_none());
                assert!(insert_owner_if_none(conn, "A", &dom)?);
                let other = DomainRecord {
                    domain_id: "b3RoZXI=".into(),
                    cert: vec![9],
                };
                assert!(!insert_owner_if_none(conn, "A", &other)?, "one owner");
                let mut ids = Vec::new();
                for nonce in [Some("bm9uY2U="), None] {
                    ids.push(record_voucher(
                        conn,
                        &issued("2024-01-01T00:00:00.000Z", nonce),
                    )?);
                }
                Ok(ids)
            })
            .expect("record");
        assert!(ids[0] < ids[1], "{ids:?}");
        assert_eq!(
            db.read(|conn| owner(conn, "A"))
                .expect("q")
                .expect("owner")
                .cert,
            vec![1, 2, 3]
        );
        let events = audit_events(&db, "A").expect("events");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].nonce.as_deref(), Some("bm9uY2U="));
        assert_eq!(events[1].nonce, None);
        assert_eq!(events[1].assertion, Assertion::Logged);
        let voucher_ids: Vec<i64> = db
            .read(|conn| {
                let mut stmt = conn.prepare("SELECT voucher_id FROM audit_log ORDER BY id")?;
                let rows = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .expect("voucher ids");
        assert_eq!(voucher_ids, ids);
        assert!(release(&db, "A").expect("release"));
        assert!(!release(&db, "A").expect("release again"));

        set_claim(&db, "A", &dom).expect("claim");
        let other = DomainRecord {
            domain_id: "b3RoZXI=".into(),
            cert: vec![9],
        };
        set_claim(&db, "A", &other).expect("re-claim");
        let c = db.read(|conn| claim(conn, "A")).expect("q").expect("claim");
        assert_eq!((c.domain_id.as_str(), c.cert), ("b3RoZXI=", vec![9]));
    }

    #[test]
    fn a_rolled_back_voucher_leaves_no_audit_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db(&dir);
        db.write(|conn| insert_device(conn, &device("A")))
            .expect("insert");
        let err = db
            .write(|conn| {
                record_voucher(conn, &issued("2024-01-01T00:00:00Z", None))?;
                Err::<(), _>(store::StoreError::Unexpected("roll back".into()))
            })
            .expect_err("rolled back");
        assert!(matches!(err, store::StoreError::Unexpected(_)), "{err:?}");
        assert!(audit_events(&db, "A").expect("events").is_empty());
    }

    #[test]
    fn unknown_serials_cannot_be_owned_or_logged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db(&dir);
        let dom = DomainRecord {
            domain_id: "x".into(),
            cert: vec![],
        };
        assert!(
            db.write(|conn| insert_owner_if_none(conn, "nope", &dom))
                .is_err()
        );
        assert!(
            db.write(|conn| record_voucher(conn, &issued("2024-01-01T00:00:00Z", None)))
                .is_err()
        );
    }
}
