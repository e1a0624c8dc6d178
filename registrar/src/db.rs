//! The registrar's state in SQLite (rusqlite): pledges and their policy, vouchers relayed,
//! status telemetry received (RFC 8995 §5.7, §5.9.4) and LDevIDs issued. Reads run on the
//! caller's thread; writes go through the group commit, one statement each, so a crash leaves
//! either the whole step or none of it.

use brski_service::store::{
    Connection, Db, GroupCommit, OptionalExtension, Result, Row, StoreError, params,
};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Idempotent schema (applied on every open).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS pledges (
    serial      TEXT PRIMARY KEY NOT NULL,
    policy      TEXT NOT NULL CHECK (policy IN ('auto', 'allowed', 'denied', 'pending')),
    first_seen  TEXT,
    last_seen   TEXT,
    last_peer   TEXT,
    updated_at  TEXT NOT NULL,
    -- Columns of ADDED_COLUMNS (added to older databases at open):
    transport   TEXT
);
CREATE TABLE IF NOT EXISTS vouchers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    serial         TEXT NOT NULL REFERENCES pledges(serial),
    idevid_sha256  TEXT NOT NULL,
    nonce          TEXT,
    request_format TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    assertion      TEXT,
    masa_url       TEXT NOT NULL,
    voucher        BLOB NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS vouchers_serial_nonce ON vouchers(serial, nonce);
CREATE TABLE IF NOT EXISTS telemetry (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    serial      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('voucher_status', 'enrollstatus')),
    status      INTEGER NOT NULL CHECK (status IN (0, 1)),
    reason      TEXT,
    body        BLOB NOT NULL,
    client_cert TEXT NOT NULL CHECK (client_cert IN ('idevid', 'ldevid')),
    voucher_id  INTEGER,
    peer        TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_serial_kind ON telemetry(serial, kind);
CREATE TABLE IF NOT EXISTS certificates (
    cert_serial   TEXT PRIMARY KEY NOT NULL,
    pledge_serial TEXT NOT NULL,
    subject       TEXT NOT NULL,
    not_before    TEXT NOT NULL,
    not_after     TEXT NOT NULL,
    der           BLOB NOT NULL,
    issued_at     TEXT NOT NULL,
    renewed_from  TEXT,
    superseded_by TEXT,
    revoked       INTEGER NOT NULL DEFAULT 0,
    -- Columns of ADDED_COLUMNS (added to older databases at open):
    voucher_id     INTEGER,
    spki_sha256    TEXT,
    first_seen     TEXT,
    revoked_reason TEXT,
    revoked_at     TEXT
);
CREATE INDEX IF NOT EXISTS certificates_pledge ON certificates(pledge_serial);
-- The registrar voucher-request each voucher was obtained with (replayed to the MASA's
-- /requestauditlog, RFC 8995 §5.8).
CREATE TABLE IF NOT EXISTS voucher_requests (
    voucher_id     INTEGER PRIMARY KEY NOT NULL REFERENCES vouchers(id),
    request_format TEXT NOT NULL,
    rvr            BLOB NOT NULL
);
-- Audit-log checks (RFC 8995 §5.8.3): one row per check of a voucher.
CREATE TABLE IF NOT EXISTS audit_checks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    serial     TEXT NOT NULL,
    voucher_id INTEGER NOT NULL,
    passed     INTEGER NOT NULL CHECK (passed IN (0, 1)),
    reason     TEXT NOT NULL,
    log        BLOB,
    checked_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_checks_voucher ON audit_checks(voucher_id);
-- Nonceless vouchers obtained ahead of time (`registrar vouchers fetch`, RFC 8995 §7.2).
CREATE TABLE IF NOT EXISTS nonceless_vouchers (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    serial        TEXT NOT NULL,
    masa_url      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    expires_on    TEXT,
    voucher       BLOB NOT NULL,
    fetched_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS nonceless_vouchers_serial ON nonceless_vouchers(serial);
-- Appraisals of attested enrollments (SPEC §9): one row per CSR appraised, with the evidence
-- and, when one was issued, the LDevID.
CREATE TABLE IF NOT EXISTS attestations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    serial       TEXT NOT NULL,
    mode         TEXT NOT NULL CHECK (mode IN ('record', 'require')),
    accepted     INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    failed_check TEXT,
    reason       TEXT,
    passed       TEXT NOT NULL,
    pcr_set      TEXT,
    evidence     BLOB,
    cert_serial  TEXT,
    appraised_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attestations_serial ON attestations(serial);
-- A telemetry report is also a sighting of the pledge (one statement stores both).
CREATE TRIGGER IF NOT EXISTS telemetry_seen AFTER INSERT ON telemetry BEGIN
    UPDATE pledges SET first_seen = COALESCE(first_seen, NEW.received_at),
                       last_seen = NEW.received_at, last_peer = NEW.peer
    WHERE serial = NEW.serial;
END;
-- Supersession is written by `store_certificate` itself (it depends on the renewal).
DROP TRIGGER IF EXISTS certificates_supersede;
"#;

/// Columns added to a table after its first release: `ALTER TABLE ... ADD COLUMN` for a
/// database that lacks them, then the indexes on them ([`migrate`]).
const ADDED_COLUMNS: [(&str, &str, &str); 6] = [
    ("certificates", "voucher_id", "INTEGER"),
    ("certificates", "spki_sha256", "TEXT"),
    ("certificates", "first_seen", "TEXT"),
    ("certificates", "revoked_reason", "TEXT"),
    // When it was revoked or superseded: the CRL entry's revocationDate (RFC 5280 §5.1.2.6).
    ("certificates", "revoked_at", "TEXT"),
    // `https` or `coaps`: the transport of the pledge's latest voucher request.
    ("pledges", "transport", "TEXT"),
];

/// Bring a database written by an older release to this schema (after [`SCHEMA`]).
pub fn migrate(db: &Db) -> Result<()> {
    db.write(|conn| {
        for (table, column, kind) in ADDED_COLUMNS {
            let present: bool = conn
                .prepare(&format!(
                    "SELECT EXISTS(SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1)"
                ))?
                .query_row(params![column], |r| r.get(0))?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            }
        }
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS certificates_voucher ON certificates(voucher_id);
             CREATE INDEX IF NOT EXISTS certificates_superseded_by
                 ON certificates(superseded_by);",
        )?;
        Ok(())
    })
}

/// RFC 3339 text of `t` (UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub fn now() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// An administrator's (or the acceptance policy's) decision about a serial number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Accepted by `accept = "auto"`.
    Auto,
    /// `registrar pledges allow`.
    Allowed,
    /// `registrar pledges deny`.
    Denied,
    /// Waiting for `registrar pledges allow` (`accept = "pending"`).
    Pending,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Pending => "pending",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Auto, Self::Allowed, Self::Denied, Self::Pending]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// The stored policy of `serial`, if the serial is known.
pub fn policy(db: &Db, serial: &str) -> Result<Option<Policy>> {
    db.read(|conn| {
        let stored: Option<String> = conn
            .prepare_cached("SELECT policy FROM pledges WHERE serial = ?1")?
            .query_row(params![serial], |r| r.get(0))
            .optional()?;
        Ok(stored.and_then(|p| Policy::parse(&p)))
    })
}

/// How many pledges wait for approval (RFC 8995 §7.3: `pending` in `registrar pledges list`).
pub fn pending_count(db: &Db) -> Result<i64> {
    db.read(|conn| {
        Ok(conn
            .prepare_cached("SELECT COUNT(*) FROM pledges WHERE policy = ?1")?
            .query_row(params![Policy::Pending.as_str()], |r| r.get(0))?)
    })
}

/// Set the policy of `serial` (creating the row), e.g. from `registrar pledges allow`.
pub fn set_policy(db: &Db, serial: &str, policy: Policy) -> Result<()> {
    db.write(|conn| {
        conn.prepare_cached(
            "INSERT INTO pledges (serial, policy, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(serial) DO UPDATE SET policy = ?2, updated_at = ?3",
        )?
        .execute(params![serial, policy.as_str(), now()])?;
        Ok(())
    })
}

/// Record that `serial` was seen from `peer` over `transport`; a new serial gets `policy_if_new`, and a known
/// one whose policy is `Pending` or `Auto` moves to `policy_if_new` when that is `Pending`
/// or `Auto` (so that switching `accept` takes effect). Returns the policy now stored.
pub async fn record_seen(
    writer: &GroupCommit,
    serial: &str,
    peer: &str,
    transport: &str,
    policy_if_new: Policy,
) -> Result<Policy> {
    let (serial, peer, transport) = (serial.to_string(), peer.to_string(), transport.to_string());
    writer
        .write_statement(move |conn: &Connection| {
            upsert_seen(conn, &serial, &peer, &transport, policy_if_new)
        })
        .await
}

/// The one statement of [`record_seen`], in the caller's transaction: an `allowed` or `denied`
/// decision is kept, any other stored policy (or none) becomes `policy_if_new`.
fn upsert_seen(
    conn: &Connection,
    serial: &str,
    peer: &str,
    transport: &str,
    policy_if_new: Policy,
) -> Result<Policy> {
    let stored: String = conn
        .prepare_cached(
            "INSERT INTO pledges (serial, policy, first_seen, last_seen, last_peer,
                                  updated_at, transport)
             VALUES (?1, ?2, ?3, ?3, ?4, ?3, ?5)
             ON CONFLICT(serial) DO UPDATE SET
                 policy = CASE WHEN policy IN ('allowed', 'denied') THEN policy ELSE ?2 END,
                 first_seen = COALESCE(first_seen, ?3), last_seen = ?3, last_peer = ?4,
                 updated_at = ?3, transport = ?5
             RETURNING policy",
        )?
        .query_row(
            params![serial, policy_if_new.as_str(), now(), peer, transport],
            |r| r.get(0),
        )?;
    Policy::parse(&stored)
        .ok_or_else(|| StoreError::Unexpected(format!("unknown pledge policy {stored:?}")))
}

/// The policy [`record_seen`] would store for a pledge whose stored policy is `stored`.
pub fn policy_when_seen(stored: Option<Policy>, policy_if_new: Policy) -> Policy {
    match stored {
        Some(decided @ (Policy::Allowed | Policy::Denied)) => decided,
        _ => policy_if_new,
    }
}

/// A pledge's request as [`record_seen`] records it, carried by a later write of the same
/// request (one commit for the request).
#[derive(Clone, Copy, Debug)]
pub struct Sighting<'a> {
    pub peer: &'a str,
    pub transport: &'a str,
    pub policy_if_new: Policy,
}

/// A voucher relayed to a pledge.
#[derive(Clone, Debug)]
pub struct StoredVoucher {
    pub id: i64,
    pub content_type: String,
    pub voucher: Vec<u8>,
}

/// The voucher relayed earlier to the IDevID `idevid_sha256` of `serial` for `nonce` (an
/// idempotent retry, RFC 8995 §5.6).
pub fn voucher_for_nonce(
    db: &Db,
    serial: &str,
    idevid_sha256: &str,
    nonce: &str,
) -> Result<Option<StoredVoucher>> {
    db.read(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT id, content_type, voucher FROM vouchers
                 WHERE serial = ?1 AND idevid_sha256 = ?2 AND nonce = ?3
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![serial, idevid_sha256, nonce], |r| {
                Ok(StoredVoucher {
                    id: r.get("id")?,
                    content_type: r.get("content_type")?,
                    voucher: r.get("voucher")?,
                })
            })
            .optional()?)
    })
}

/// What is stored about one relayed voucher.
pub struct NewVoucher<'a> {
    pub serial: &'a str,
    /// SHA-256 (hex) of the IDevID the voucher was obtained for.
    pub idevid_sha256: &'a str,
    pub nonce: Option<&'a str>,
    pub request_format: &'a str,
    pub content_type: &'a str,
    pub assertion: Option<&'a str>,
    pub masa_url: &'a str,
    pub voucher: &'a [u8],
    /// The registrar voucher-request the voucher answered (absent for a stored nonceless
    /// voucher relayed without asking the MASA).
    pub rvr: Option<&'a [u8]>,
    /// The request that obtained the voucher, recorded with it as [`record_seen`] does.
    pub sighting: Option<Sighting<'a>>,
}

/// Store a voucher about to be relayed, with its registrar voucher-request and the sighting of
/// the request, in one step.
pub async fn store_voucher(writer: &GroupCommit, v: &NewVoucher<'_>) -> Result<i64> {
    let t = now();
    let serial = v.serial.to_string();
    let idevid_sha256 = v.idevid_sha256.to_string();
    let nonce = v.nonce.map(str::to_string);
    let request_format = v.request_format.to_string();
    let content_type = v.content_type.to_string();
    let assertion = v.assertion.map(str::to_string);
    let masa_url = v.masa_url.to_string();
    let voucher = v.voucher.to_vec();
    let rvr = v.rvr.map(<[u8]>::to_vec);
    let sighting = v
        .sighting
        .map(|g| (g.peer.to_string(), g.transport.to_string(), g.policy_if_new));
    writer
        .write(move |conn: &Connection| {
            if let Some((peer, transport, policy_if_new)) = &sighting {
                upsert_seen(conn, &serial, peer, transport, *policy_if_new)?;
            }
            conn.prepare_cached(
                "INSERT INTO vouchers (serial, idevid_sha256, nonce, request_format,
                                       content_type, assertion, masa_url, voucher, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                serial,
                idevid_sha256,
                nonce,
                request_format,
                content_type,
                assertion,
                masa_url,
                voucher,
                t
            ])?;
            let id = conn.last_insert_rowid();
            if let Some(rvr) = &rvr {
                conn.prepare_cached(
                    "INSERT INTO voucher_requests (voucher_id, request_format, rvr)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, request_format, rvr])?;
            }
            Ok(id)
        })
        .await
}

/// The latest voucher of `serial` with the registrar voucher-request it answered.
#[derive(Clone, Debug)]
pub struct VoucherWithRequest {
    pub voucher_id: i64,
    pub masa_url: String,
    pub request_format: String,
    pub rvr: Vec<u8>,
}

/// The latest voucher relayed to `serial`, if it was obtained with a stored request.
pub fn latest_voucher_request(db: &Db, serial: &str) -> Result<Option<VoucherWithRequest>> {
    db.read(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT v.id, v.masa_url, r.request_format, r.rvr FROM vouchers v
                 JOIN voucher_requests r ON r.voucher_id = v.id
                 WHERE v.id = (SELECT MAX(id) FROM vouchers WHERE serial = ?1)",
            )?
            .query_row(params![serial], |r| {
                Ok(VoucherWithRequest {
                    voucher_id: r.get(0)?,
                    masa_url: r.get(1)?,
                    request_format: r.get(2)?,
                    rvr: r.get(3)?,
                })
            })
            .optional()?)
    })
}

/// An audit-log check of one voucher (RFC 8995 §5.8.3).
pub struct NewAuditCheck<'a> {
    pub serial: &'a str,
    pub voucher_id: i64,
    pub passed: bool,
    pub reason: &'a str,
    pub log: Option<&'a [u8]>,
}

/// Record an audit-log check.
pub async fn store_audit_check(writer: &GroupCommit, a: &NewAuditCheck<'_>) -> Result<()> {
    let (serial, voucher_id, passed) = (a.serial.to_string(), a.voucher_id, i64::from(a.passed));
    let reason = a.reason.to_string();
    let log = a.log.map(<[u8]>::to_vec);
    let t = now();
    writer
        .write_statement(move |conn: &Connection| {
            conn.prepare_cached(
                "INSERT INTO audit_checks (serial, voucher_id, passed, reason, log, checked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![serial, voucher_id, passed, reason, log, t])?;
            Ok(())
        })
        .await
}

/// A nonceless voucher to store (RFC 8995 §7.2).
pub struct NewNoncelessVoucher<'a> {
    pub serial: &'a str,
    pub masa_url: &'a str,
    pub content_type: &'a str,
    /// RFC 3339 `expires-on` of the voucher.
    pub expires_on: Option<&'a str>,
    pub voucher: &'a [u8],
}

/// Store a nonceless voucher fetched ahead of time; returns its id.
pub fn store_nonceless_voucher(db: &Db, v: &NewNoncelessVoucher<'_>) -> Result<i64> {
    db.write(|conn| {
        conn.prepare_cached(
            "INSERT INTO nonceless_vouchers (serial, masa_url, content_type, expires_on,
                                             voucher, fetched_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            v.serial,
            v.masa_url,
            v.content_type,
            v.expires_on,
            v.voucher,
            now()
        ])?;
        Ok(conn.last_insert_rowid())
    })
}

/// A stored nonceless voucher.
#[derive(Clone, Debug)]
pub struct StoredNonceless {
    pub id: i64,
    pub masa_url: String,
    pub content_type: String,
    pub expires_on: Option<String>,
    pub voucher: Vec<u8>,
}

/// The stored nonceless vouchers of `serial`, newest first (the caller checks each).
pub fn nonceless_vouchers(db: &Db, serial: &str) -> Result<Vec<StoredNonceless>> {
    db.read(|conn| {
        let rows = conn
            .prepare_cached(
                "SELECT id, masa_url, content_type, expires_on, voucher
                 FROM nonceless_vouchers WHERE serial = ?1 ORDER BY id DESC",
            )?
            .query_map(params![serial], |r| {
                Ok(StoredNonceless {
                    id: r.get(0)?,
                    masa_url: r.get(1)?,
                    content_type: r.get(2)?,
                    expires_on: r.get(3)?,
                    voucher: r.get(4)?,
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    })
}

/// Which certificate authenticated a telemetry report (RFC 8995 §5.9.4 asks to log it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCert {
    Idevid,
    Ldevid,
}

impl ClientCert {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idevid => "idevid",
            Self::Ldevid => "ldevid",
        }
    }
}

/// The two telemetry resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TelemetryKind {
    /// RFC 8995 §5.7.
    VoucherStatus,
    /// RFC 8995 §5.9.4.
    EnrollStatus,
}

impl TelemetryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VoucherStatus => "voucher_status",
            Self::EnrollStatus => "enrollstatus",
        }
    }
}

/// One telemetry report to store.
pub struct NewTelemetry<'a> {
    pub serial: &'a str,
    pub kind: TelemetryKind,
    pub status: bool,
    pub reason: Option<&'a str>,
    pub body: &'a [u8],
    pub client_cert: ClientCert,
    pub peer: &'a str,
    /// The LDevID that authenticated the report, when this is its first use: recorded as
    /// [`ldevid_seen`] does, in the same transaction (one commit for the request).
    pub ldevid_first_use: Option<&'a str>,
}

/// At most this many telemetry reports are stored per serial and kind within
/// [`TELEMETRY_WINDOW_SECS`]; further ones are refused with 429 and Retry-After, so the pledge
/// knows to send its report again later: the first reports of a window are kept, and the
/// latest one is stored once the window allows (RFC 8995 §5.7 expects one report per voucher).
pub const TELEMETRY_PER_WINDOW: i64 = 10;
/// The rate window of [`TELEMETRY_PER_WINDOW`], in seconds.
pub const TELEMETRY_WINDOW_SECS: i64 = 3600;

/// What the registrar knows of a serial before it takes its telemetry (RFC 8995 §5.7, §5.9.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelemetryContext {
    /// A voucher was relayed to this serial by this registrar.
    pub has_voucher: bool,
    /// An LDevID was issued to this serial.
    pub has_certificate: bool,
}

/// One read: whether `serial` got a voucher or an LDevID from this registrar.
pub fn telemetry_context(db: &Db, serial: &str) -> Result<TelemetryContext> {
    db.read(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM vouchers WHERE serial = ?1) AS v,
                        EXISTS(SELECT 1 FROM certificates WHERE pledge_serial = ?1) AS c",
            )?
            .query_row(params![serial], |r| {
                Ok(TelemetryContext {
                    has_voucher: r.get::<_, i64>("v")? != 0,
                    has_certificate: r.get::<_, i64>("c")? != 0,
                })
            })?)
    })
}

/// Outcome of [`store_telemetry_limited`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TelemetryStored {
    Stored,
    /// [`TELEMETRY_PER_WINDOW`] reports are already stored in the window; the oldest of them
    /// leaves it in `retry_after` seconds.
    RateLimited {
        retry_after: u64,
    },
}

/// Store a telemetry report, linked to the latest voucher of the serial (the trigger
/// `telemetry_seen` updates the pledge's `last_seen` in the same statement), unless
/// [`TELEMETRY_PER_WINDOW`] reports of the same serial and kind were stored in the last
/// [`TELEMETRY_WINDOW_SECS`]; the count and the insert are one job of the single writer, so
/// concurrent reports cannot exceed the limit.
pub async fn store_telemetry_limited(
    writer: &GroupCommit,
    t: &NewTelemetry<'_>,
) -> Result<TelemetryStored> {
    let now_t = OffsetDateTime::now_utc();
    let received = rfc3339(now_t);
    let cutoff = rfc3339(now_t - time::Duration::seconds(TELEMETRY_WINDOW_SECS));
    let serial = t.serial.to_string();
    let kind = t.kind.as_str();
    let status = i64::from(t.status);
    let reason = t.reason.map(str::to_string);
    let body = t.body.to_vec();
    let client_cert = t.client_cert.as_str();
    let peer = t.peer.to_string();
    let first_use = t.ldevid_first_use.map(str::to_string);
    let write = move |conn: &Connection| {
        if let Some(cert_serial) = &first_use {
            mark_ldevid_seen(conn, cert_serial)?;
        }
        let (recent, oldest): (i64, Option<String>) = conn
            .prepare_cached(
                "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM telemetry
                     WHERE serial = ?1 AND kind = ?2 AND received_at >= ?3",
            )?
            .query_row(params![serial, kind, cutoff], |r| {
                Ok((r.get("n")?, r.get("oldest")?))
            })?;
        if recent >= TELEMETRY_PER_WINDOW {
            return Ok(rate_limited(oldest.as_deref(), now_t));
        }
        conn.prepare_cached(
            "INSERT INTO telemetry (serial, kind, status, reason, body, client_cert,
                                        voucher_id, peer, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6,
                         (SELECT MAX(id) FROM vouchers WHERE serial = ?1), ?7, ?8)",
        )?
        .execute(params![
            serial,
            kind,
            status,
            reason,
            body,
            client_cert,
            peer,
            received
        ])?;
        Ok(TelemetryStored::Stored)
    };
    // One statement (SQLite undoes it alone) unless the first use is recorded too.
    if t.ldevid_first_use.is_some() {
        writer.write(write).await
    } else {
        writer.write_statement(write).await
    }
}

/// The refusal of a report beyond [`TELEMETRY_PER_WINDOW`]: the window's oldest report,
/// received at `oldest`, leaves it in `retry_after` seconds (at least 1).
pub fn rate_limited(oldest: Option<&str>, now_t: OffsetDateTime) -> TelemetryStored {
    let leaves = oldest
        .and_then(|o| OffsetDateTime::parse(o, &Rfc3339).ok())
        .map(|o| o + time::Duration::seconds(TELEMETRY_WINDOW_SECS) - now_t)
        .map(|d| d.whole_seconds().max(1))
        .unwrap_or(TELEMETRY_WINDOW_SECS);
    TelemetryStored::RateLimited {
        retry_after: u64::try_from(leaves).unwrap_or(1),
    }
}

/// The gate of [`may_enroll`] from what its query read: the stored policy, the latest
/// voucher's id and holder, the latest voucher_status about it, the latest audit check.
pub fn enroll_gate(
    policy: Option<&str>,
    voucher: Option<(i64, String)>,
    status: Option<bool>,
    audit: Option<(bool, String)>,
    idevid_sha256: &str,
) -> (Option<Policy>, EnrollGate) {
    let policy = policy.and_then(Policy::parse);
    let Some((voucher_id, holder)) = voucher else {
        return (policy, EnrollGate::NoVoucher);
    };
    if holder != idevid_sha256 {
        return (policy, EnrollGate::OtherIdevid);
    }
    let gate = if status == Some(false) {
        EnrollGate::VoucherFailed
    } else if let Some((false, reason)) = audit {
        EnrollGate::AuditLogRefused(reason)
    } else {
        EnrollGate::Open { voucher_id }
    };
    (policy, gate)
}

/// Whether the IDevID `idevid_sha256` of `serial` may enroll (RFC 8995 §5.9.3 after §5.6,
/// §5.7): the pledge's stored policy, and whether the latest voucher relayed for `serial` was
/// obtained by this very IDevID and the latest voucher_status about it is not a failure. One
/// query.
pub fn may_enroll(
    db: &Db,
    serial: &str,
    idevid_sha256: &str,
) -> Result<(Option<Policy>, EnrollGate)> {
    type GateRow = (
        Option<String>,
        Option<(i64, String)>,
        Option<i64>,
        Option<(i64, String)>,
    );
    let (policy, voucher, status, audit): GateRow = db.read(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT (SELECT policy FROM pledges WHERE serial = ?1) AS policy,
                        v.id AS voucher_id, v.idevid_sha256 AS holder,
                        (SELECT t.status FROM telemetry t
                         WHERE t.serial = v.serial AND t.kind = 'voucher_status'
                           AND t.voucher_id = v.id
                         ORDER BY t.id DESC LIMIT 1) AS status,
                        a.passed AS audit_passed, a.reason AS audit_reason
                 FROM (SELECT 1)
                 LEFT JOIN (SELECT id, serial, idevid_sha256 FROM vouchers WHERE serial = ?1
                            ORDER BY id DESC LIMIT 1) v
                 LEFT JOIN audit_checks a
                        ON a.id = (SELECT MAX(id) FROM audit_checks WHERE voucher_id = v.id)",
            )?
            .query_row(params![serial], |r| {
                let passed: Option<i64> = r.get("audit_passed")?;
                let reason: Option<String> = r.get("audit_reason")?;
                let id: Option<i64> = r.get("voucher_id")?;
                let holder: Option<String> = r.get("holder")?;
                Ok((
                    r.get("policy")?,
                    id.zip(holder),
                    r.get("status")?,
                    passed.zip(reason),
                ))
            })?)
    })?;
    Ok(enroll_gate(
        policy.as_deref(),
        voucher,
        status.map(|s| s != 0),
        audit.map(|(passed, reason)| (passed != 0, reason)),
        idevid_sha256,
    ))
}

/// Answer of [`may_enroll`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnrollGate {
    /// The MASA's audit log of the latest voucher broke the `[audit-log]` policy
    /// (RFC 8995 §5.8.3, §11.4); the reason says how.
    AuditLogRefused(String),
    /// Enrollment may go on, on the voucher `voucher_id`.
    Open { voucher_id: i64 },
    /// No voucher was relayed for the serial.
    NoVoucher,
    /// The latest voucher for the serial went to another IDevID with the same serial.
    OtherIdevid,
    /// The pledge reported that the voucher failed (RFC 8995 §5.7).
    VoucherFailed,
}

/// An LDevID to store.
pub struct NewCertificate<'a> {
    pub cert_serial: &'a str,
    pub pledge_serial: &'a str,
    pub subject: &'a str,
    pub not_before: &'a str,
    pub not_after: &'a str,
    pub der: &'a [u8],
    /// The LDevID this one renews (`/simplereenroll`).
    pub renewed_from: Option<&'a str>,
    /// The voucher it was enrolled on (`/simpleenroll`; a renewal keeps its predecessor's).
    pub voucher_id: Option<i64>,
    /// SHA-256 (hex) of the SubjectPublicKeyInfo it certifies.
    pub spki_sha256: &'a str,
    /// The appraisal of the CSR's attestation evidence, stored with the LDevID.
    pub attestation: Option<NewAttestation<'a>>,
}

/// The appraisal of one CSR's attestation evidence (SPEC §9).
#[derive(Clone, Debug)]
pub struct NewAttestation<'a> {
    pub serial: &'a str,
    /// `record` or `require`.
    pub mode: &'a str,
    pub accepted: bool,
    /// The stable name of the check that failed.
    pub failed_check: Option<&'static str>,
    pub reason: Option<String>,
    /// The checks passed, in order, comma-separated.
    pub passed: String,
    /// The accepted PCR set the quote matched.
    pub pcr_set: Option<&'a str>,
    /// The DER AttestationBundle.
    pub evidence: Option<&'a [u8]>,
    /// The LDevID issued, if one was.
    pub cert_serial: Option<&'a str>,
}

/// [`NewAttestation`] owned, for a write job.
#[derive(Clone, Debug)]
struct AttestationRow {
    serial: String,
    mode: String,
    accepted: bool,
    failed_check: Option<&'static str>,
    reason: Option<String>,
    passed: String,
    pcr_set: Option<String>,
    evidence: Option<Vec<u8>>,
    cert_serial: Option<String>,
}

impl From<&NewAttestation<'_>> for AttestationRow {
    fn from(a: &NewAttestation<'_>) -> Self {
        Self {
            serial: a.serial.to_string(),
            mode: a.mode.to_string(),
            accepted: a.accepted,
            failed_check: a.failed_check,
            reason: a.reason.clone(),
            passed: a.passed.clone(),
            pcr_set: a.pcr_set.map(str::to_string),
            evidence: a.evidence.map(<[u8]>::to_vec),
            cert_serial: a.cert_serial.map(str::to_string),
        }
    }
}

fn insert_attestation(conn: &Connection, a: &AttestationRow) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO attestations (serial, mode, accepted, failed_check, reason, passed, pcr_set,
                                   evidence, cert_serial, appraised_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        a.serial,
        a.mode,
        a.accepted,
        a.failed_check,
        a.reason,
        a.passed,
        a.pcr_set,
        a.evidence,
        a.cert_serial,
        now()
    ])?;
    Ok(())
}

/// Store the appraisal of evidence whose CSR got no LDevID (refused under `require`).
pub async fn store_attestation(writer: &GroupCommit, a: &NewAttestation<'_>) -> Result<()> {
    let row = AttestationRow::from(a);
    writer
        .write(move |conn: &Connection| insert_attestation(conn, &row))
        .await
}

/// Store an issued LDevID, in one transaction with what it does to the pledge's others
/// (RFC 7030 §4.2.2): the LDevID it renews is superseded by it but stays usable for renewal
/// until the new one is first seen ([`ldevid_seen`]); every other unrevoked LDevID of the
/// pledge (an older one, a renewal that was never used, or all of them after a new
/// `/simpleenroll`) is superseded and revoked at once.
pub async fn store_certificate(writer: &GroupCommit, c: &NewCertificate<'_>) -> Result<()> {
    let cert_serial = c.cert_serial.to_string();
    let pledge_serial = c.pledge_serial.to_string();
    let subject = c.subject.to_string();
    let not_before = c.not_before.to_string();
    let not_after = c.not_after.to_string();
    let der = c.der.to_vec();
    let renewed_from = c.renewed_from.map(str::to_string);
    let voucher_id = c.voucher_id;
    let spki_sha256 = c.spki_sha256.to_string();
    let attestation = c.attestation.as_ref().map(AttestationRow::from);
    let issued_at = now();
    writer
        .write(move |conn: &Connection| {
            if let Some(a) = &attestation {
                insert_attestation(conn, a)?;
            }
            conn.prepare_cached(
                "INSERT INTO certificates (cert_serial, pledge_serial, subject, not_before,
                                           not_after, der, issued_at, renewed_from,
                                           voucher_id, spki_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                cert_serial,
                pledge_serial,
                subject,
                not_before,
                not_after,
                der,
                issued_at,
                renewed_from,
                voucher_id,
                spki_sha256
            ])?;
            conn.prepare_cached(
                "UPDATE certificates
                 SET superseded_by = COALESCE(superseded_by, ?1), revoked = 1,
                     revoked_reason = 'superseded by ' || ?1, revoked_at = ?4
                 WHERE pledge_serial = ?2 AND cert_serial != ?1
                   AND cert_serial IS NOT ?3 AND revoked = 0",
            )?
            .execute(params![cert_serial, pledge_serial, renewed_from, issued_at])?;
            conn.prepare_cached(
                "UPDATE certificates SET superseded_by = ?1 WHERE cert_serial = ?2",
            )?
            .execute(params![cert_serial, renewed_from])?;
            Ok(())
        })
        .await
}

/// Record that the LDevID `cert_serial` authenticated a request (its first use, RFC 7030
/// §4.2.2): from now on the LDevID it renewed is revoked. Writes only the first time.
pub async fn ldevid_seen(writer: &GroupCommit, cert_serial: &str) -> Result<()> {
    let cert_serial = cert_serial.to_string();
    writer
        .write(move |conn: &Connection| mark_ldevid_seen(conn, &cert_serial))
        .await
}

/// The statements of [`ldevid_seen`], in the caller's transaction.
fn mark_ldevid_seen(conn: &Connection, cert_serial: &str) -> Result<()> {
    let t = now();
    let first = conn
        .prepare_cached(
            "UPDATE certificates SET first_seen = ?2
             WHERE cert_serial = ?1 AND first_seen IS NULL",
        )?
        .execute(params![cert_serial, t])?;
    if first > 0 {
        conn.prepare_cached(
            "UPDATE certificates SET revoked = 1, revoked_at = ?2,
                 revoked_reason = 'superseded by ' || ?1 || ', which is in use'
             WHERE superseded_by = ?1 AND revoked = 0",
        )?
        .execute(params![cert_serial, t])?;
    }
    Ok(())
}

/// What the database says about a certificate presented as an LDevID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LdevidStatus {
    /// Issued here and neither superseded nor revoked; `seen` once it has authenticated a
    /// request.
    Current { pledge_serial: String, seen: bool },
    /// Renewed by `successor`, which has not been used yet: this one may renew again (a lost
    /// answer, RFC 7030 §4.2.2), nothing else.
    Renewed {
        pledge_serial: String,
        successor: String,
    },
    /// Renewed, and the successor is in use (normally revoked by then too).
    Superseded { pledge_serial: String },
    Revoked {
        pledge_serial: String,
        reason: String,
    },
    /// Not issued by this registrar.
    Unknown,
}

/// Look up a certificate by its serial number and exact DER: one read by primary key (with
/// its successor's row, also by primary key), cheap enough for the TLS handshake.
pub fn ldevid_status(db: &Db, cert_serial: &str, der: &[u8]) -> Result<LdevidStatus> {
    type CertRow = (
        String,
        Vec<u8>,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
    );
    let row: Option<CertRow> = db.read(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT c.pledge_serial, c.der, c.revoked, c.revoked_reason, c.superseded_by,
                        c.first_seen, s.first_seen IS NOT NULL AS successor_seen
                 FROM certificates c
                 LEFT JOIN certificates s ON s.cert_serial = c.superseded_by
                 WHERE c.cert_serial = ?1",
            )?
            .query_row(params![cert_serial], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()?)
    })?;
    Ok(match row {
        None => LdevidStatus::Unknown,
        Some((pledge_serial, stored, revoked, reason, successor, seen, successor_seen)) => {
            ldevid_status_of(
                StoredCertRow {
                    pledge_serial,
                    der: stored,
                    revoked: revoked != 0,
                    revoked_reason: reason,
                    superseded_by: successor,
                    seen: seen.is_some(),
                    successor_seen,
                },
                der,
            )
        }
    })
}

/// What [`ldevid_status`] reads of a certificate's row (and its successor's).
pub struct StoredCertRow {
    pub pledge_serial: String,
    pub der: Vec<u8>,
    pub revoked: bool,
    pub revoked_reason: Option<String>,
    pub superseded_by: Option<String>,
    pub seen: bool,
    pub successor_seen: bool,
}

/// The status of a certificate presented as `der`, from its stored row.
pub fn ldevid_status_of(row: StoredCertRow, der: &[u8]) -> LdevidStatus {
    let pledge_serial = row.pledge_serial;
    if row.der != der {
        return LdevidStatus::Unknown;
    }
    match row.superseded_by {
        _ if row.revoked => LdevidStatus::Revoked {
            pledge_serial,
            reason: row.revoked_reason.unwrap_or_else(|| "revoked".into()),
        },
        Some(successor) if !row.successor_seen => LdevidStatus::Renewed {
            pledge_serial,
            successor,
        },
        Some(_) => LdevidStatus::Superseded { pledge_serial },
        None => LdevidStatus::Current {
            pledge_serial,
            seen: row.seen,
        },
    }
}

/// A stored LDevID: its DER and the hash of the key it certifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLdevid {
    pub cert_serial: String,
    pub der: Vec<u8>,
    pub spki_sha256: Option<String>,
    pub revoked: bool,
    pub superseded: bool,
}

fn stored_ldevid(r: &Row<'_>) -> brski_service::store::rusqlite::Result<StoredLdevid> {
    Ok(StoredLdevid {
        cert_serial: r.get("cert_serial")?,
        der: r.get("der")?,
        spki_sha256: r.get("spki_sha256")?,
        revoked: r.get::<_, i64>("revoked")? != 0,
        superseded: r.get::<_, Option<String>>("superseded_by")?.is_some(),
    })
}

/// The LDevID `cert_serial`.
pub fn certificate(db: &Db, cert_serial: &str) -> Result<Option<StoredLdevid>> {
    db.read(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT cert_serial, der, spki_sha256, revoked, superseded_by FROM certificates
                 WHERE cert_serial = ?1",
            )?
            .query_row(params![cert_serial], stored_ldevid)
            .optional()?)
    })
}

/// The LDevID `/simpleenroll` issued on the voucher `voucher_id`, if any (RFC 8995 §5.9.3:
/// one per voucher).
pub fn enrolled_on_voucher(db: &Db, voucher_id: i64) -> Result<Option<StoredLdevid>> {
    db.read(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT cert_serial, der, spki_sha256, revoked, superseded_by FROM certificates
                 WHERE voucher_id = ?1 AND renewed_from IS NULL ORDER BY issued_at LIMIT 1",
            )?
            .query_row(params![voucher_id], stored_ldevid)
            .optional()?)
    })
}

/// Which LDevIDs `registrar certs revoke` revokes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeWhat {
    /// One LDevID by its serial number (upper-case hex).
    Serial(String),
    /// Every unrevoked LDevID of a pledge.
    Pledge(String),
}

/// Revoke LDevIDs (`registrar certs revoke`); the serial numbers revoked now. A revoked
/// LDevID is refused in the TLS handshake from the next connection on.
pub fn revoke(db: &Db, what: &RevokeWhat, reason: &str) -> Result<Vec<String>> {
    let (column, value) = match what {
        RevokeWhat::Serial(s) => ("cert_serial", s),
        RevokeWhat::Pledge(p) => ("pledge_serial", p),
    };
    db.write(|conn| {
        let revoked = conn
            .prepare(&format!(
                "UPDATE certificates SET revoked = 1, revoked_reason = ?2, revoked_at = ?3
                 WHERE {column} = ?1 AND revoked = 0 RETURNING cert_serial"
            ))?
            .query_map(params![value, reason, now()], |r| r.get(0))?
            .collect::<std::result::Result<Vec<String>, _>>()?;
        Ok(revoked)
    })
}

/// An LDevID as `registrar certs list` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CertSummary {
    pub cert_serial: String,
    pub pledge_serial: String,
    pub subject: String,
    pub not_after: String,
    pub issued_at: String,
    pub first_seen: Option<String>,
    pub superseded_by: Option<String>,
    pub revoked: bool,
    pub revoked_at: Option<String>,
    pub revoked_reason: Option<String>,
}

/// The columns [`CertSummary`] reads, in its order.
pub const CERT_SUMMARY_COLUMNS: &str = "cert_serial, pledge_serial, subject, not_after, \
     issued_at, first_seen, superseded_by, revoked, revoked_at, revoked_reason";

fn cert_summary(r: &Row<'_>) -> brski_service::store::rusqlite::Result<CertSummary> {
    Ok(CertSummary {
        cert_serial: r.get(0)?,
        pledge_serial: r.get(1)?,
        subject: r.get(2)?,
        not_after: r.get(3)?,
        issued_at: r.get(4)?,
        first_seen: r.get(5)?,
        superseded_by: r.get(6)?,
        revoked: r.get::<_, i64>(7)? != 0,
        revoked_at: r.get(8)?,
        revoked_reason: r.get(9)?,
    })
}

/// The LDevIDs issued here, oldest first; only `pledge`'s when given.
pub fn list_certificates(db: &Db, pledge: Option<&str>) -> Result<Vec<CertSummary>> {
    db.read(|conn| {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {CERT_SUMMARY_COLUMNS} FROM certificates
                 WHERE ?1 IS NULL OR pledge_serial = ?1 ORDER BY issued_at, cert_serial"
            ))?
            .query_map(params![pledge], cert_summary)?
            .collect::<std::result::Result<Vec<_>, _>>()?)
    })
}

/// The revoked LDevIDs that have not yet expired at `now`: the entries of the CRL (RFC 5280
/// §3.3: an expired certificate may leave the list).
pub fn revoked_certificates(db: &Db, now: OffsetDateTime) -> Result<Vec<CertSummary>> {
    db.read(|conn| {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {CERT_SUMMARY_COLUMNS} FROM certificates
                 WHERE revoked != 0 AND not_after > ?1 ORDER BY cert_serial"
            ))?
            .query_map(params![rfc3339(now)], cert_summary)?
            .collect::<std::result::Result<Vec<_>, _>>()?)
    })
}

/// A status report as shown by `registrar pledges list`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StatusReport {
    pub status: bool,
    pub reason: Option<String>,
    pub client_cert: String,
    pub received_at: String,
}

/// One row of `registrar pledges list`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PledgeSummary {
    pub serial: String,
    /// `allowed`, `denied`, `pending` or `enrolled`.
    pub state: String,
    pub policy: String,
    pub voucher_assertion: Option<String>,
    pub voucher_status: Option<StatusReport>,
    pub enrollstatus: Option<StatusReport>,
    pub ldevid_serial: Option<String>,
    pub ldevid_not_after: Option<String>,
    /// The latest audit-log check (RFC 8995 §5.8.3): `ok: ...` or `refused: ...`.
    pub audit_log: Option<String>,
    pub last_seen: Option<String>,
    pub last_peer: Option<String>,
    /// The transport of the latest voucher request: `https` or `coaps`.
    pub transport: Option<String>,
    /// The latest appraisal of attestation evidence (SPEC §9).
    pub attestation: Option<AttestationSummary>,
    /// How many vouchers, telemetry reports and LDevIDs are stored for this serial.
    pub vouchers: i64,
    pub telemetry_reports: i64,
    pub certificates: i64,
}

/// An appraisal of attestation evidence as `pledges list` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AttestationSummary {
    pub mode: String,
    pub accepted: bool,
    pub failed_check: Option<String>,
    pub reason: Option<String>,
    /// The checks passed, in order.
    pub passed: Vec<String>,
    pub pcr_set: Option<String>,
    /// The LDevID issued on it.
    pub cert_serial: Option<String>,
    pub appraised_at: String,
    /// The DER AttestationBundle, base64 (`registrar inspect` decodes it).
    pub evidence: Option<String>,
}

impl AttestationSummary {
    /// The summary of a stored row (`passed` comma-separated, `evidence` DER).
    #[allow(clippy::too_many_arguments)]
    pub fn from_row(
        mode: String,
        accepted: bool,
        failed_check: Option<String>,
        reason: Option<String>,
        passed: &str,
        pcr_set: Option<String>,
        cert_serial: Option<String>,
        appraised_at: String,
        evidence: Option<Vec<u8>>,
    ) -> Self {
        Self {
            mode,
            accepted,
            failed_check,
            reason,
            passed: passed
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            pcr_set,
            cert_serial,
            appraised_at,
            evidence: evidence.map(|e| brski_common::input::to_base64(&e)),
        }
    }

    /// `accepted`, with the PCR set; or `refused: CHECK`; `(recorded)` when it did not stop
    /// the enrollment.
    pub fn text(&self) -> String {
        if self.accepted {
            match &self.pcr_set {
                Some(set) => format!("accepted ({set})"),
                None => "accepted".into(),
            }
        } else {
            let check = self.failed_check.as_deref().unwrap_or("?");
            match self.cert_serial {
                Some(_) => format!("failed: {check} (recorded)"),
                None => format!("refused: {check}"),
            }
        }
    }
}

fn latest_attestation(conn: &Connection, serial: &str) -> Result<Option<AttestationSummary>> {
    Ok(conn
        .prepare_cached(
            "SELECT mode, accepted, failed_check, reason, passed, pcr_set, cert_serial,
                    appraised_at, evidence
             FROM attestations WHERE serial = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![serial], |r| {
            Ok(AttestationSummary::from_row(
                r.get("mode")?,
                r.get::<_, i64>("accepted")? != 0,
                r.get("failed_check")?,
                r.get("reason")?,
                &r.get::<_, String>("passed")?,
                r.get("pcr_set")?,
                r.get("cert_serial")?,
                r.get("appraised_at")?,
                r.get("evidence")?,
            ))
        })
        .optional()?)
}

fn latest_status(
    conn: &Connection,
    serial: &str,
    kind: TelemetryKind,
) -> Result<Option<StatusReport>> {
    Ok(conn
        .prepare_cached(
            "SELECT status, reason, client_cert, received_at FROM telemetry
             WHERE serial = ?1 AND kind = ?2 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![serial, kind.as_str()], |r| {
            Ok(StatusReport {
                status: r.get::<_, i64>("status")? != 0,
                reason: r.get("reason")?,
                client_cert: r.get("client_cert")?,
                received_at: r.get("received_at")?,
            })
        })
        .optional()?)
}

fn count(conn: &Connection, sql: &'static str, serial: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![serial], |r| r.get("n"))?)
}

/// The state `registrar pledges list` shows for a pledge with `policy` (its stored text).
pub fn pledge_state(policy: &str, has_ldevid: bool) -> &'static str {
    match Policy::parse(policy) {
        Some(Policy::Denied) => "denied",
        Some(Policy::Pending) => "pending",
        _ if has_ldevid => "enrolled",
        Some(Policy::Auto | Policy::Allowed) => "allowed",
        None => "unknown",
    }
}

/// The latest audit-log check as `registrar pledges list` shows it.
pub fn audit_text(passed: bool, reason: &str) -> String {
    if passed {
        format!("ok: {reason}")
    } else {
        format!("refused: {reason}")
    }
}

/// Every serial the registrar knows (from any table), with its state.
pub fn list_pledges(db: &Db) -> Result<Vec<PledgeSummary>> {
    db.read(|conn| {
        let serials: Vec<String> = conn
            .prepare_cached(
                "SELECT serial FROM pledges UNION SELECT serial FROM telemetry
                 UNION SELECT pledge_serial FROM certificates
                 UNION SELECT serial FROM attestations ORDER BY 1",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(serials.len());
        for serial in serials {
            type PledgeRow = (String, Option<String>, Option<String>, Option<String>);
            let pledge: Option<PledgeRow> = conn
                .prepare_cached(
                    "SELECT policy, last_seen, last_peer, transport FROM pledges
                     WHERE serial = ?1",
                )?
                .query_row(params![serial], |r| {
                    Ok((
                        r.get("policy")?,
                        r.get("last_seen")?,
                        r.get("last_peer")?,
                        r.get("transport")?,
                    ))
                })
                .optional()?;
            let (policy, last_seen, last_peer, transport) =
                pledge.unwrap_or_else(|| ("unknown".to_string(), None, None, None));
            let voucher_assertion: Option<String> = conn
                .prepare_cached(
                    "SELECT assertion FROM vouchers WHERE serial = ?1 ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![serial], |r| r.get::<_, Option<String>>("assertion"))
                .optional()?
                .flatten();
            let ldevid: Option<(String, String)> = conn
                .prepare_cached(
                    "SELECT cert_serial, not_after FROM certificates
                     WHERE pledge_serial = ?1 AND superseded_by IS NULL AND revoked = 0
                     ORDER BY issued_at DESC LIMIT 1",
                )?
                .query_row(params![serial], |r| {
                    Ok((r.get("cert_serial")?, r.get("not_after")?))
                })
                .optional()?;
            let (ldevid_serial, ldevid_not_after) = ldevid.unzip();
            let state = pledge_state(&policy, ldevid_serial.is_some());
            let audit_log: Option<String> = conn
                .prepare_cached(
                    "SELECT passed, reason FROM audit_checks WHERE serial = ?1
                     ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![serial], |r| {
                    let passed: i64 = r.get(0)?;
                    let reason: String = r.get(1)?;
                    Ok(audit_text(passed != 0, &reason))
                })
                .optional()?;
            out.push(PledgeSummary {
                attestation: latest_attestation(conn, &serial)?,
                audit_log,
                state: state.to_string(),
                policy,
                voucher_assertion,
                voucher_status: latest_status(conn, &serial, TelemetryKind::VoucherStatus)?,
                enrollstatus: latest_status(conn, &serial, TelemetryKind::EnrollStatus)?,
                ldevid_serial,
                ldevid_not_after,
                last_seen,
                last_peer,
                transport,
                vouchers: count(
                    conn,
                    "SELECT COUNT(*) AS n FROM vouchers WHERE serial = ?1",
                    &serial,
                )?,
                telemetry_reports: count(
                    conn,
                    "SELECT COUNT(*) AS n FROM telemetry WHERE serial = ?1",
                    &serial,
                )?,
                certificates: count(
                    conn,
                    "SELECT COUNT(*) AS n FROM certificates WHERE pledge_serial = ?1",
                    &serial,
                )?,
                serial,
            });
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(dir: &tempfile::TempDir) -> (Db, GroupCommit) {
        let path = dir.path().join("r.db");
        let db = Db::open(&path, SCHEMA).expect("open");
        let writer = GroupCommit::start(&path).expect("writer");
        (db, writer)
    }

    #[tokio::test]
    async fn a_database_of_an_older_release_gets_the_added_columns() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("old.db");
        // The tables as the first release wrote them, without the ADDED_COLUMNS.
        let old = SCHEMA
            .replace("    transport   TEXT\n", "")
            .replace(
                "    voucher_id     INTEGER,\n    spki_sha256    TEXT,\n    first_seen     TEXT,\n    revoked_reason TEXT,\n    revoked_at     TEXT\n",
                "",
            )
            .replace("updated_at  TEXT NOT NULL,\n    -- Columns", "updated_at  TEXT NOT NULL\n    -- Columns")
            .replace("revoked       INTEGER NOT NULL DEFAULT 0,\n    -- Columns", "revoked       INTEGER NOT NULL DEFAULT 0\n    -- Columns");
        assert_ne!(old, SCHEMA);
        let db = Db::open(&path, &old).expect("open the old schema");
        let missing = |db: &Db| -> i64 {
            db.read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM pragma_table_info('pledges') WHERE name = 'transport'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .expect("read")
        };
        assert_eq!(missing(&db), 0);
        migrate(&db).expect("migrate");
        assert_eq!(missing(&db), 1);
        migrate(&db).expect("migrating twice changes nothing");
        let writer = GroupCommit::start(&path).expect("writer");
        record_seen(&writer, "P1", "peer", "coaps", Policy::Auto)
            .await
            .expect("seen");
        let list = list_pledges(&db).expect("list");
        assert_eq!(list[0].transport.as_deref(), Some("coaps"));
    }

    fn certificate<'a>(cert_serial: &'a str, der: &'a [u8]) -> NewCertificate<'a> {
        NewCertificate {
            cert_serial,
            pledge_serial: "P1",
            subject: "SERIALNUMBER=P1",
            not_before: "2026-01-01T00:00:00Z",
            not_after: "2027-01-01T00:00:00Z",
            der,
            renewed_from: None,
            voucher_id: Some(1),
            spki_sha256: "00",
            attestation: None,
        }
    }

    #[tokio::test]
    async fn rfc8995_5_9_4_telemetry_is_a_sighting_of_the_pledge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, writer) = setup(&dir);
        record_seen(&writer, "P1", "[fe80::1]:1", "coaps", Policy::Auto)
            .await
            .expect("seen");
        store_telemetry_limited(
            &writer,
            &NewTelemetry {
                serial: "P1",
                kind: TelemetryKind::EnrollStatus,
                status: true,
                reason: None,
                body: b"{}",
                client_cert: ClientCert::Ldevid,
                peer: "[fe80::2]:2",
                ldevid_first_use: None,
            },
        )
        .await
        .expect("telemetry");
        let list = list_pledges(&db).expect("list");
        let p1 = list.iter().find(|p| p.serial == "P1").expect("P1");
        assert_eq!(p1.last_peer.as_deref(), Some("[fe80::2]:2"));
        assert_eq!(p1.transport.as_deref(), Some("coaps"));
    }

    /// SPEC §9: a refusal is stored alone; an issued LDevID's appraisal with it; `pledges
    /// list` shows the latest, with the evidence.
    #[tokio::test]
    async fn attestation_appraisals_are_stored_and_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, writer) = setup(&dir);
        let refused = NewAttestation {
            serial: "P1",
            mode: "require",
            accepted: false,
            failed_check: Some("pcr_digest"),
            reason: Some("no accepted set".into()),
            passed: "evidence,iak_chain".into(),
            pcr_set: None,
            evidence: Some(b"bundle"),
            cert_serial: None,
        };
        store_attestation(&writer, &refused).await.expect("refusal");
        let p1 = list_pledges(&db).expect("list");
        let a = p1[0].attestation.clone().expect("appraisal");
        assert_eq!(p1[0].serial, "P1");
        assert_eq!(a.text(), "refused: pcr_digest");
        assert_eq!(a.passed, vec!["evidence", "iak_chain"]);
        assert_eq!(a.evidence.as_deref(), Some("YnVuZGxl"));
        assert_eq!(p1[0].certificates, 0);

        let mut issued = certificate("C1", b"der");
        issued.attestation = Some(NewAttestation {
            mode: "record",
            accepted: true,
            failed_check: None,
            reason: None,
            pcr_set: Some("fw-1"),
            cert_serial: Some("C1"),
            ..refused
        });
        store_certificate(&writer, &issued).await.expect("issued");
        let a = list_pledges(&db).expect("list")[0]
            .attestation
            .clone()
            .expect("appraisal");
        assert_eq!(a.text(), "accepted (fw-1)");
        assert_eq!(a.cert_serial.as_deref(), Some("C1"));
        let rows: i64 = db
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM attestations", [], |r| r.get(0))?))
            .expect("count");
        assert_eq!(rows, 2);
    }

    fn current(seen: bool) -> LdevidStatus {
        LdevidStatus::Current {
            pledge_serial: "P1".into(),
            seen,
        }
    }

    #[tokio::test]
    async fn rfc7030_4_2_2_renewed_ldevid_may_renew_until_its_successor_is_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, writer) = setup(&dir);
        store_certificate(&writer, &certificate("01", b"first"))
            .await
            .expect("first");
        assert_eq!(
            ldevid_status(&db, "01", b"first").expect("s"),
            current(false)
        );
        ldevid_seen(&writer, "01").await.expect("seen");
        assert_eq!(
            ldevid_status(&db, "01", b"first").expect("s"),
            current(true)
        );
        // Another DER under the same serial is not this LDevID.
        assert_eq!(
            ldevid_status(&db, "01", b"forged").expect("s"),
            LdevidStatus::Unknown
        );
        // A renewal: the old one may renew again until the new one is used.
        let renewal = |serial, der| NewCertificate {
            renewed_from: Some("01"),
            ..certificate(serial, der)
        };
        store_certificate(&writer, &renewal("02", b"second"))
            .await
            .expect("second");
        assert_eq!(
            ldevid_status(&db, "01", b"first").expect("s"),
            LdevidStatus::Renewed {
                pledge_serial: "P1".into(),
                successor: "02".into()
            }
        );
        // Renewed again from 01 (the answer for 02 was lost): 02, never used, is revoked.
        store_certificate(&writer, &renewal("03", b"third"))
            .await
            .expect("third");
        assert!(matches!(
            ldevid_status(&db, "02", b"second").expect("s"),
            LdevidStatus::Revoked { .. }
        ));
        // 03 in use: 01 is revoked.
        ldevid_seen(&writer, "03").await.expect("seen");
        assert_eq!(
            ldevid_status(&db, "01", b"first").expect("s"),
            LdevidStatus::Revoked {
                pledge_serial: "P1".into(),
                reason: "superseded by 03, which is in use".into()
            }
        );
        assert_eq!(
            ldevid_status(&db, "03", b"third").expect("s"),
            current(true)
        );
        // A certificate serial issued twice is refused, and nothing changes.
        store_certificate(&writer, &certificate("03", b"again"))
            .await
            .expect_err("duplicate serial");
        assert_eq!(
            ldevid_status(&db, "03", b"third").expect("s"),
            current(true)
        );
        // A new /simpleenroll revokes every other LDevID at once.
        store_certificate(&writer, &certificate("04", b"fourth"))
            .await
            .expect("fourth");
        assert_eq!(
            ldevid_status(&db, "03", b"third").expect("s"),
            LdevidStatus::Revoked {
                pledge_serial: "P1".into(),
                reason: "superseded by 04".into()
            }
        );
        assert_eq!(
            revoke(&db, &RevokeWhat::Pledge("P1".into()), "stolen").expect("revoke"),
            vec!["04".to_string()]
        );
        assert!(
            revoke(&db, &RevokeWhat::Serial("04".into()), "again")
                .expect("revoke")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn rfc8995_5_9_3_enroll_gate_reads_policy_and_latest_voucher() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, writer) = setup(&dir);
        assert_eq!(
            may_enroll(&db, "P1", "aa").expect("gate"),
            (None, EnrollGate::NoVoucher)
        );
        record_seen(&writer, "P1", "peer", "https", Policy::Auto)
            .await
            .expect("seen");
        let voucher = |idevid| NewVoucher {
            serial: "P1",
            idevid_sha256: idevid,
            nonce: None,
            request_format: "cms",
            content_type: "application/voucher-cms+json",
            assertion: Some("logged"),
            masa_url: "masa.example",
            voucher: b"v",
            rvr: Some(b"rvr"),
            sighting: None,
        };
        store_voucher(&writer, &voucher("aa"))
            .await
            .expect("voucher");
        assert_eq!(
            may_enroll(&db, "P1", "aa").expect("gate"),
            (Some(Policy::Auto), EnrollGate::Open { voucher_id: 1 })
        );
        assert_eq!(
            may_enroll(&db, "P1", "bb").expect("gate"),
            (Some(Policy::Auto), EnrollGate::OtherIdevid)
        );
        store_telemetry_limited(
            &writer,
            &NewTelemetry {
                serial: "P1",
                kind: TelemetryKind::VoucherStatus,
                status: false,
                reason: Some("bad voucher"),
                body: b"{}",
                client_cert: ClientCert::Idevid,
                peer: "peer",
                ldevid_first_use: None,
            },
        )
        .await
        .expect("telemetry");
        assert_eq!(
            may_enroll(&db, "P1", "aa").expect("gate"),
            (Some(Policy::Auto), EnrollGate::VoucherFailed)
        );
        // A newer voucher opens the gate again.
        store_voucher(&writer, &voucher("aa"))
            .await
            .expect("voucher");
        assert_eq!(
            may_enroll(&db, "P1", "aa").expect("gate"),
            (Some(Policy::Auto), EnrollGate::Open { voucher_id: 2 })
        );
    }
}
