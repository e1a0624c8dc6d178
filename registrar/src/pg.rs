//! The registrar's state in PostgreSQL, shared by several `registrar serve` instances: the
//! tables of the SQLite schema ([`crate::db`]) as a versioned migration (component
//! `registrar`) and the same operations, their decisions made by the same functions of
//! [`crate::db`].

use crate::db::{
    AttestationSummary, CERT_SUMMARY_COLUMNS, CertSummary, ClientCert, EnrollGate, LdevidStatus,
    NewAttestation, NewAuditCheck, NewCertificate, NewNoncelessVoucher, NewTelemetry, NewVoucher,
    PledgeSummary, Policy, RevokeWhat, StatusReport, StoredCertRow, StoredLdevid, StoredNonceless,
    StoredVoucher, TELEMETRY_PER_WINDOW, TELEMETRY_WINDOW_SECS, TelemetryContext, TelemetryKind,
    TelemetryStored, VoucherWithRequest, audit_text, ldevid_status_of, now, pledge_state, rfc3339,
};
use brski_service::postgres::{GenericClient, Migration, PgError, PgStore, Transaction};
use time::OffsetDateTime;

/// The schema, by version.
pub const MIGRATIONS: [Migration; 3] = [
    Migration {
        version: 1,
        name: "pledges, vouchers, telemetry, certificates, audit checks, nonceless vouchers",
        sql: "
CREATE TABLE pledges (
    serial      TEXT PRIMARY KEY,
    policy      TEXT NOT NULL CHECK (policy IN ('auto', 'allowed', 'denied', 'pending')),
    first_seen  TEXT,
    last_seen   TEXT,
    last_peer   TEXT,
    updated_at  TEXT NOT NULL,
    transport   TEXT
);
CREATE TABLE vouchers (
    id             BIGSERIAL PRIMARY KEY,
    serial         TEXT NOT NULL REFERENCES pledges(serial),
    idevid_sha256  TEXT NOT NULL,
    nonce          TEXT,
    request_format TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    assertion      TEXT,
    masa_url       TEXT NOT NULL,
    voucher        BYTEA NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX vouchers_serial_nonce ON vouchers (serial, nonce);
CREATE TABLE telemetry (
    id          BIGSERIAL PRIMARY KEY,
    serial      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('voucher_status', 'enrollstatus')),
    status      BOOLEAN NOT NULL,
    reason      TEXT,
    body        BYTEA NOT NULL,
    client_cert TEXT NOT NULL CHECK (client_cert IN ('idevid', 'ldevid')),
    voucher_id  BIGINT,
    peer        TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX telemetry_serial_kind ON telemetry (serial, kind);
CREATE TABLE certificates (
    cert_serial    TEXT PRIMARY KEY,
    pledge_serial  TEXT NOT NULL,
    subject        TEXT NOT NULL,
    not_before     TEXT NOT NULL,
    not_after      TEXT NOT NULL,
    der            BYTEA NOT NULL,
    issued_at      TEXT NOT NULL,
    renewed_from   TEXT,
    superseded_by  TEXT,
    revoked        BOOLEAN NOT NULL DEFAULT false,
    voucher_id     BIGINT,
    spki_sha256    TEXT,
    first_seen     TEXT,
    revoked_reason TEXT
);
CREATE INDEX certificates_pledge ON certificates (pledge_serial);
CREATE INDEX certificates_voucher ON certificates (voucher_id);
CREATE INDEX certificates_superseded_by ON certificates (superseded_by);
CREATE TABLE voucher_requests (
    voucher_id     BIGINT PRIMARY KEY REFERENCES vouchers(id),
    request_format TEXT NOT NULL,
    rvr            BYTEA NOT NULL
);
CREATE TABLE audit_checks (
    id         BIGSERIAL PRIMARY KEY,
    serial     TEXT NOT NULL,
    voucher_id BIGINT NOT NULL,
    passed     BOOLEAN NOT NULL,
    reason     TEXT NOT NULL,
    log        BYTEA,
    checked_at TEXT NOT NULL
);
CREATE INDEX audit_checks_voucher ON audit_checks (voucher_id);
CREATE TABLE nonceless_vouchers (
    id           BIGSERIAL PRIMARY KEY,
    serial       TEXT NOT NULL,
    masa_url     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    expires_on   TEXT,
    voucher      BYTEA NOT NULL,
    fetched_at   TEXT NOT NULL
);
CREATE INDEX nonceless_vouchers_serial ON nonceless_vouchers (serial);
-- A telemetry report is also a sighting of the pledge (as the SQLite trigger).
CREATE FUNCTION telemetry_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pledges SET first_seen = COALESCE(first_seen, NEW.received_at),
                       last_seen = NEW.received_at, last_peer = NEW.peer
    WHERE serial = NEW.serial;
    RETURN NEW;
END
$$;
CREATE TRIGGER telemetry_seen AFTER INSERT ON telemetry
    FOR EACH ROW EXECUTE FUNCTION telemetry_seen();
",
    },
    Migration {
        version: 2,
        name: "certificates.revoked_at: the CRL entries' revocationDate",
        sql: "ALTER TABLE certificates ADD COLUMN revoked_at TEXT;",
    },
    Migration {
        version: 3,
        name: "attestations: appraisals of attested enrollments",
        sql: "
CREATE TABLE attestations (
    id           BIGSERIAL PRIMARY KEY,
    serial       TEXT NOT NULL,
    mode         TEXT NOT NULL CHECK (mode IN ('record', 'require')),
    accepted     BOOLEAN NOT NULL,
    failed_check TEXT,
    reason       TEXT,
    passed       TEXT NOT NULL,
    pcr_set      TEXT,
    evidence     BYTEA,
    cert_serial  TEXT,
    appraised_at TEXT NOT NULL
);
CREATE INDEX attestations_serial ON attestations (serial);
",
    },
];

/// The pool for `url`, its schema brought up to date.
pub async fn open(url: &str, ca_certs: &[Vec<u8>]) -> Result<PgStore, PgError> {
    let store = PgStore::connect(url, ca_certs)?;
    store.migrate("registrar", &MIGRATIONS).await?;
    Ok(store)
}

fn policy_of(stored: &str) -> Result<Policy, PgError> {
    Policy::parse(stored).ok_or_else(|| PgError::Schema {
        component: "registrar".into(),
        reason: format!("unknown pledge policy {stored:?}"),
    })
}

/// The stored policy of `serial`, if the serial is known.
pub async fn policy(c: &impl GenericClient, serial: &str) -> Result<Option<Policy>, PgError> {
    let row = c
        .query_opt(
            &c.prepare_cached("SELECT policy FROM pledges WHERE serial = $1")
                .await?,
            &[&serial],
        )
        .await?;
    Ok(row.and_then(|r| Policy::parse(r.get::<_, &str>(0))))
}

/// How many pledges wait for approval (RFC 8995 §7.3).
pub async fn pending_count(c: &impl GenericClient) -> Result<i64, PgError> {
    let row = c
        .query_one(
            &c.prepare_cached("SELECT COUNT(*) FROM pledges WHERE policy = $1")
                .await?,
            &[&Policy::Pending.as_str()],
        )
        .await?;
    Ok(row.get(0))
}

/// Set the policy of `serial` (creating the row).
pub async fn set_policy(
    c: &impl GenericClient,
    serial: &str,
    policy: Policy,
) -> Result<(), PgError> {
    c.execute(
        &c.prepare_cached(
            "INSERT INTO pledges (serial, policy, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (serial) DO UPDATE SET policy = $2, updated_at = $3",
        )
        .await?,
        &[&serial, &policy.as_str(), &now()],
    )
    .await?;
    Ok(())
}

/// [`crate::db::record_seen`]: one statement, an `allowed` or `denied` decision is kept.
pub async fn record_seen(
    c: &impl GenericClient,
    serial: &str,
    peer: &str,
    transport: &str,
    policy_if_new: Policy,
) -> Result<Policy, PgError> {
    let row = c
        .query_one(
            &c.prepare_cached(
                "INSERT INTO pledges (serial, policy, first_seen, last_seen, last_peer, updated_at,
                                  transport)
             VALUES ($1, $2, $3, $3, $4, $3, $5)
             ON CONFLICT (serial) DO UPDATE SET
                 policy = CASE WHEN pledges.policy IN ('allowed', 'denied') THEN pledges.policy
                               ELSE $2 END,
                 first_seen = COALESCE(pledges.first_seen, $3), last_seen = $3, last_peer = $4,
                 updated_at = $3, transport = $5
             RETURNING policy",
            )
            .await?,
            &[&serial, &policy_if_new.as_str(), &now(), &peer, &transport],
        )
        .await?;
    policy_of(row.get(0))
}

/// [`crate::db::voucher_for_nonce`].
pub async fn voucher_for_nonce(
    c: &impl GenericClient,
    serial: &str,
    idevid_sha256: &str,
    nonce: &str,
) -> Result<Option<StoredVoucher>, PgError> {
    let row = c
        .query_opt(
            &c.prepare_cached(
                "SELECT id, content_type, voucher FROM vouchers
             WHERE serial = $1 AND idevid_sha256 = $2 AND nonce = $3
             ORDER BY id DESC LIMIT 1",
            )
            .await?,
            &[&serial, &idevid_sha256, &nonce],
        )
        .await?;
    Ok(row.map(|r| StoredVoucher {
        id: r.get(0),
        content_type: r.get(1),
        voucher: r.get(2),
    }))
}

/// [`crate::db::store_voucher`], in the caller's transaction.
pub async fn store_voucher(tx: &Transaction<'_>, v: &NewVoucher<'_>) -> Result<i64, PgError> {
    if let Some(g) = v.sighting {
        record_seen(tx, v.serial, g.peer, g.transport, g.policy_if_new).await?;
    }
    let row = tx
        .query_one(
            &tx.prepare_cached(
                "INSERT INTO vouchers (serial, idevid_sha256, nonce, request_format, content_type,
                                   assertion, masa_url, voucher, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .await?,
            &[
                &v.serial,
                &v.idevid_sha256,
                &v.nonce,
                &v.request_format,
                &v.content_type,
                &v.assertion,
                &v.masa_url,
                &v.voucher,
                &now(),
            ],
        )
        .await?;
    let id: i64 = row.get(0);
    if let Some(rvr) = v.rvr {
        tx.execute(
            &tx.prepare_cached("INSERT INTO voucher_requests (voucher_id, request_format, rvr) VALUES ($1, $2, $3)").await?,
            &[&id, &v.request_format, &rvr],
        )
        .await?;
    }
    Ok(id)
}

/// [`crate::db::latest_voucher_request`].
pub async fn latest_voucher_request(
    c: &impl GenericClient,
    serial: &str,
) -> Result<Option<VoucherWithRequest>, PgError> {
    let row = c
        .query_opt(
            &c.prepare_cached(
                "SELECT v.id, v.masa_url, r.request_format, r.rvr FROM vouchers v
             JOIN voucher_requests r ON r.voucher_id = v.id
             WHERE v.id = (SELECT MAX(id) FROM vouchers WHERE serial = $1)",
            )
            .await?,
            &[&serial],
        )
        .await?;
    Ok(row.map(|r| VoucherWithRequest {
        voucher_id: r.get(0),
        masa_url: r.get(1),
        request_format: r.get(2),
        rvr: r.get(3),
    }))
}

/// [`crate::db::store_audit_check`].
pub async fn store_audit_check(
    c: &impl GenericClient,
    a: &NewAuditCheck<'_>,
) -> Result<(), PgError> {
    c.execute(
        &c.prepare_cached(
            "INSERT INTO audit_checks (serial, voucher_id, passed, reason, log, checked_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?,
        &[
            &a.serial,
            &a.voucher_id,
            &a.passed,
            &a.reason,
            &a.log,
            &now(),
        ],
    )
    .await?;
    Ok(())
}

/// [`crate::db::store_nonceless_voucher`].
pub async fn store_nonceless_voucher(
    c: &impl GenericClient,
    v: &NewNoncelessVoucher<'_>,
) -> Result<i64, PgError> {
    let row = c
        .query_one(
            &c.prepare_cached("INSERT INTO nonceless_vouchers (serial, masa_url, content_type, expires_on, voucher,
                                             fetched_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id").await?,
            &[
                &v.serial,
                &v.masa_url,
                &v.content_type,
                &v.expires_on,
                &v.voucher,
                &now(),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// [`crate::db::nonceless_vouchers`].
pub async fn nonceless_vouchers(
    c: &impl GenericClient,
    serial: &str,
) -> Result<Vec<StoredNonceless>, PgError> {
    let rows = c
        .query(
            &c.prepare_cached(
                "SELECT id, masa_url, content_type, expires_on, voucher FROM nonceless_vouchers
             WHERE serial = $1 ORDER BY id DESC",
            )
            .await?,
            &[&serial],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StoredNonceless {
            id: r.get(0),
            masa_url: r.get(1),
            content_type: r.get(2),
            expires_on: r.get(3),
            voucher: r.get(4),
        })
        .collect())
}

/// [`crate::db::telemetry_context`].
pub async fn telemetry_context(
    c: &impl GenericClient,
    serial: &str,
) -> Result<TelemetryContext, PgError> {
    let r = c
        .query_one(
            &c.prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM vouchers WHERE serial = $1),
                    EXISTS(SELECT 1 FROM certificates WHERE pledge_serial = $1)",
            )
            .await?,
            &[&serial],
        )
        .await?;
    Ok(TelemetryContext {
        has_voucher: r.get(0),
        has_certificate: r.get(1),
    })
}

/// [`crate::db::store_telemetry_limited`]: the count and the insert under a transaction
/// advisory lock on the serial and kind, so that instances storing reports of one pledge at
/// once cannot exceed the limit (the SQLite store relies on its single writer instead).
pub async fn store_telemetry_limited(
    tx: &Transaction<'_>,
    t: &NewTelemetry<'_>,
) -> Result<TelemetryStored, PgError> {
    let now_t = OffsetDateTime::now_utc();
    let received = rfc3339(now_t);
    let cutoff = rfc3339(now_t - time::Duration::seconds(TELEMETRY_WINDOW_SECS));
    let kind = t.kind.as_str();
    if let Some(cert_serial) = t.ldevid_first_use {
        ldevid_seen(tx, cert_serial).await?;
    }
    tx.execute(
        &tx.prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
            .await?,
        &[&t.serial, &kind],
    )
    .await?;
    let r = tx
        .query_one(
            &tx.prepare_cached(
                "SELECT COUNT(*), MIN(received_at) FROM telemetry
             WHERE serial = $1 AND kind = $2 AND received_at >= $3",
            )
            .await?,
            &[&t.serial, &kind, &cutoff],
        )
        .await?;
    let (recent, oldest): (i64, Option<String>) = (r.get(0), r.get(1));
    if recent >= TELEMETRY_PER_WINDOW {
        return Ok(crate::db::rate_limited(oldest.as_deref(), now_t));
    }
    let client_cert = match t.client_cert {
        ClientCert::Idevid => "idevid",
        ClientCert::Ldevid => "ldevid",
    };
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO telemetry (serial, kind, status, reason, body, client_cert, voucher_id,
                                peer, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, (SELECT MAX(id) FROM vouchers WHERE serial = $1),
                 $7, $8)",
        )
        .await?,
        &[
            &t.serial,
            &kind,
            &t.status,
            &t.reason,
            &t.body,
            &client_cert,
            &t.peer,
            &received,
        ],
    )
    .await?;
    Ok(TelemetryStored::Stored)
}

/// [`crate::db::may_enroll`]: the same one query, in PostgreSQL's dialect.
pub async fn may_enroll(
    c: &impl GenericClient,
    serial: &str,
    idevid_sha256: &str,
) -> Result<(Option<Policy>, EnrollGate), PgError> {
    let r = c
        .query_one(
            &c.prepare_cached(
                "SELECT (SELECT policy FROM pledges WHERE serial = $1),
                    v.id, v.idevid_sha256,
                    (SELECT t.status FROM telemetry t
                     WHERE t.serial = v.serial AND t.kind = 'voucher_status'
                       AND t.voucher_id = v.id
                     ORDER BY t.id DESC LIMIT 1),
                    a.passed, a.reason
             FROM (SELECT 1) AS one
             LEFT JOIN LATERAL (SELECT id, serial, idevid_sha256 FROM vouchers
                                WHERE serial = $1 ORDER BY id DESC LIMIT 1) v ON true
             LEFT JOIN audit_checks a
                    ON a.id = (SELECT MAX(id) FROM audit_checks WHERE voucher_id = v.id)",
            )
            .await?,
            &[&serial],
        )
        .await?;
    let policy: Option<String> = r.get(0);
    let id: Option<i64> = r.get(1);
    let holder: Option<String> = r.get(2);
    let status: Option<bool> = r.get(3);
    let passed: Option<bool> = r.get(4);
    let reason: Option<String> = r.get(5);
    Ok(crate::db::enroll_gate(
        policy.as_deref(),
        id.zip(holder),
        status,
        passed.zip(reason),
        idevid_sha256,
    ))
}

/// [`crate::db::store_attestation`], in the caller's transaction.
pub async fn store_attestation(
    tx: &Transaction<'_>,
    a: &NewAttestation<'_>,
) -> Result<(), PgError> {
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO attestations (serial, mode, accepted, failed_check, reason, passed,
                                   pcr_set, evidence, cert_serial, appraised_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?,
        &[
            &a.serial,
            &a.mode,
            &a.accepted,
            &a.failed_check,
            &a.reason,
            &a.passed,
            &a.pcr_set,
            &a.evidence,
            &a.cert_serial,
            &now(),
        ],
    )
    .await?;
    Ok(())
}

/// [`crate::db::store_certificate`], in the caller's transaction.
pub async fn store_certificate(
    tx: &Transaction<'_>,
    c: &NewCertificate<'_>,
) -> Result<(), PgError> {
    if let Some(a) = &c.attestation {
        store_attestation(tx, a).await?;
    }
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO certificates (cert_serial, pledge_serial, subject, not_before, not_after,
                                   der, issued_at, renewed_from, voucher_id, spki_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?,
        &[
            &c.cert_serial,
            &c.pledge_serial,
            &c.subject,
            &c.not_before,
            &c.not_after,
            &c.der,
            &now(),
            &c.renewed_from,
            &c.voucher_id,
            &c.spki_sha256,
        ],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached(
            "UPDATE certificates
         SET superseded_by = COALESCE(superseded_by, $1), revoked = true,
             revoked_reason = 'superseded by ' || $1, revoked_at = $4
         WHERE pledge_serial = $2 AND cert_serial != $1
           AND cert_serial IS DISTINCT FROM $3 AND NOT revoked",
        )
        .await?,
        &[&c.cert_serial, &c.pledge_serial, &c.renewed_from, &now()],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached("UPDATE certificates SET superseded_by = $1 WHERE cert_serial = $2")
            .await?,
        &[&c.cert_serial, &c.renewed_from],
    )
    .await?;
    Ok(())
}

/// [`crate::db::ldevid_seen`], in the caller's transaction.
pub async fn ldevid_seen(tx: &Transaction<'_>, cert_serial: &str) -> Result<(), PgError> {
    let first = tx
        .execute(
            &tx.prepare_cached(
                "UPDATE certificates SET first_seen = $2
             WHERE cert_serial = $1 AND first_seen IS NULL",
            )
            .await?,
            &[&cert_serial, &now()],
        )
        .await?;
    if first > 0 {
        tx.execute(
            &tx.prepare_cached(
                "UPDATE certificates SET revoked = true, revoked_at = $2,
                 revoked_reason = 'superseded by ' || $1 || ', which is in use'
             WHERE superseded_by = $1 AND NOT revoked",
            )
            .await?,
            &[&cert_serial, &now()],
        )
        .await?;
    }
    Ok(())
}

/// [`crate::db::ldevid_status`]: one read by primary key, with the successor's row.
pub async fn ldevid_status(
    c: &impl GenericClient,
    cert_serial: &str,
    der: &[u8],
) -> Result<LdevidStatus, PgError> {
    let row = c
        .query_opt(
            &c.prepare_cached(
                "SELECT c.pledge_serial, c.der, c.revoked, c.revoked_reason, c.superseded_by,
                    c.first_seen IS NOT NULL, s.first_seen IS NOT NULL
             FROM certificates c
             LEFT JOIN certificates s ON s.cert_serial = c.superseded_by
             WHERE c.cert_serial = $1",
            )
            .await?,
            &[&cert_serial],
        )
        .await?;
    Ok(match row {
        None => LdevidStatus::Unknown,
        Some(r) => ldevid_status_of(
            StoredCertRow {
                pledge_serial: r.get(0),
                der: r.get(1),
                revoked: r.get(2),
                revoked_reason: r.get(3),
                superseded_by: r.get(4),
                seen: r.get(5),
                successor_seen: r.get(6),
            },
            der,
        ),
    })
}

/// [`crate::db::revoke`]: the serial numbers revoked now.
pub async fn revoke(
    c: &impl GenericClient,
    what: &RevokeWhat,
    reason: &str,
) -> Result<Vec<String>, PgError> {
    let (column, value) = match what {
        RevokeWhat::Serial(s) => ("cert_serial", s),
        RevokeWhat::Pledge(p) => ("pledge_serial", p),
    };
    let rows = c
        .query(
            &format!(
                "UPDATE certificates SET revoked = true, revoked_reason = $2, revoked_at = $3
                 WHERE {column} = $1 AND NOT revoked RETURNING cert_serial"
            ),
            &[value, &reason, &now()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn cert_summary(r: &tokio_postgres::Row) -> CertSummary {
    CertSummary {
        cert_serial: r.get(0),
        pledge_serial: r.get(1),
        subject: r.get(2),
        not_after: r.get(3),
        issued_at: r.get(4),
        first_seen: r.get(5),
        superseded_by: r.get(6),
        revoked: r.get(7),
        revoked_at: r.get(8),
        revoked_reason: r.get(9),
    }
}

/// [`crate::db::list_certificates`].
pub async fn list_certificates(
    c: &impl GenericClient,
    pledge: Option<&str>,
) -> Result<Vec<CertSummary>, PgError> {
    let rows = c
        .query(
            &format!(
                "SELECT {CERT_SUMMARY_COLUMNS} FROM certificates
                 WHERE $1::TEXT IS NULL OR pledge_serial = $1 ORDER BY issued_at, cert_serial"
            ),
            &[&pledge],
        )
        .await?;
    Ok(rows.iter().map(cert_summary).collect())
}

/// [`crate::db::revoked_certificates`].
pub async fn revoked_certificates(
    c: &impl GenericClient,
    now: OffsetDateTime,
) -> Result<Vec<CertSummary>, PgError> {
    let rows = c
        .query(
            &format!(
                "SELECT {CERT_SUMMARY_COLUMNS} FROM certificates
                 WHERE revoked AND not_after > $1 ORDER BY cert_serial"
            ),
            &[&rfc3339(now)],
        )
        .await?;
    Ok(rows.iter().map(cert_summary).collect())
}

async fn latest_status(
    c: &impl GenericClient,
    serial: &str,
    kind: TelemetryKind,
) -> Result<Option<StatusReport>, PgError> {
    let row = c
        .query_opt(
            &c.prepare_cached(
                "SELECT status, reason, client_cert, received_at FROM telemetry
             WHERE serial = $1 AND kind = $2 ORDER BY id DESC LIMIT 1",
            )
            .await?,
            &[&serial, &kind.as_str()],
        )
        .await?;
    Ok(row.map(|r| StatusReport {
        status: r.get(0),
        reason: r.get(1),
        client_cert: r.get(2),
        received_at: r.get(3),
    }))
}

/// [`crate::db::list_pledges`].
pub async fn list_pledges(c: &impl GenericClient) -> Result<Vec<PledgeSummary>, PgError> {
    let serials: Vec<String> = c
        .query(
            &c.prepare_cached(
                "SELECT serial FROM pledges UNION SELECT serial FROM telemetry
             UNION SELECT pledge_serial FROM certificates
             UNION SELECT serial FROM attestations ORDER BY 1",
            )
            .await?,
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = Vec::with_capacity(serials.len());
    for serial in serials {
        let pledge = c
            .query_opt(
                &c.prepare_cached(
                    "SELECT policy, last_seen, last_peer, transport FROM pledges WHERE serial = $1",
                )
                .await?,
                &[&serial],
            )
            .await?;
        let (policy, last_seen, last_peer, transport) = match pledge {
            Some(r) => (r.get(0), r.get(1), r.get(2), r.get(3)),
            None => ("unknown".to_string(), None, None, None),
        };
        let voucher_assertion: Option<String> = c
            .query_opt(
                &c.prepare_cached(
                    "SELECT assertion FROM vouchers WHERE serial = $1 ORDER BY id DESC LIMIT 1",
                )
                .await?,
                &[&serial],
            )
            .await?
            .and_then(|r| r.get(0));
        let ldevid: Option<(String, String)> = c
            .query_opt(
                &c.prepare_cached(
                    "SELECT cert_serial, not_after FROM certificates
                 WHERE pledge_serial = $1 AND superseded_by IS NULL AND NOT revoked
                 ORDER BY issued_at DESC LIMIT 1",
                )
                .await?,
                &[&serial],
            )
            .await?
            .map(|r| (r.get(0), r.get(1)));
        let (ldevid_serial, ldevid_not_after) = ldevid.unzip();
        let audit_log = c
            .query_opt(
                &c.prepare_cached(
                    "SELECT passed, reason FROM audit_checks WHERE serial = $1
                 ORDER BY id DESC LIMIT 1",
                )
                .await?,
                &[&serial],
            )
            .await?
            .map(|r| audit_text(r.get(0), r.get::<_, &str>(1)));
        let counts = c
            .query_one(
                &c.prepare_cached(
                    "SELECT (SELECT COUNT(*) FROM vouchers WHERE serial = $1),
                        (SELECT COUNT(*) FROM telemetry WHERE serial = $1),
                        (SELECT COUNT(*) FROM certificates WHERE pledge_serial = $1)",
                )
                .await?,
                &[&serial],
            )
            .await?;
        let attestation = c
            .query_opt(
                &c.prepare_cached(
                    "SELECT mode, accepted, failed_check, reason, passed, pcr_set, cert_serial,
                        appraised_at, evidence
                 FROM attestations WHERE serial = $1 ORDER BY id DESC LIMIT 1",
                )
                .await?,
                &[&serial],
            )
            .await?
            .map(|r| {
                AttestationSummary::from_row(
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get::<_, &str>(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                    r.get(8),
                )
            });
        out.push(PledgeSummary {
            attestation,
            state: pledge_state(&policy, ldevid_serial.is_some()).to_string(),
            policy,
            voucher_assertion,
            voucher_status: latest_status(c, &serial, TelemetryKind::VoucherStatus).await?,
            enrollstatus: latest_status(c, &serial, TelemetryKind::EnrollStatus).await?,
            ldevid_serial,
            ldevid_not_after,
            audit_log,
            last_seen,
            last_peer,
            transport,
            vouchers: counts.get(0),
            telemetry_reports: counts.get(1),
            certificates: counts.get(2),
            serial,
        });
    }
    Ok(out)
}

fn stored_ldevid(r: &tokio_postgres::Row) -> StoredLdevid {
    StoredLdevid {
        cert_serial: r.get(0),
        der: r.get(1),
        spki_sha256: r.get(2),
        revoked: r.get(3),
        superseded: r.get::<_, Option<String>>(4).is_some(),
    }
}

/// [`crate::db::certificate`].
pub async fn certificate(
    c: &impl GenericClient,
    cert_serial: &str,
) -> Result<Option<StoredLdevid>, PgError> {
    let row = c
        .query_opt(
            &c.prepare_cached(
                "SELECT cert_serial, der, spki_sha256, revoked, superseded_by FROM certificates
             WHERE cert_serial = $1",
            )
            .await?,
            &[&cert_serial],
        )
        .await?;
    Ok(row.as_ref().map(stored_ldevid))
}

/// [`crate::db::enrolled_on_voucher`].
pub async fn enrolled_on_voucher(
    c: &impl GenericClient,
    voucher_id: i64,
) -> Result<Option<StoredLdevid>, PgError> {
    let row = c
        .query_opt(
            &c.prepare_cached(
                "SELECT cert_serial, der, spki_sha256, revoked, superseded_by FROM certificates
             WHERE voucher_id = $1 AND renewed_from IS NULL ORDER BY issued_at LIMIT 1",
            )
            .await?,
            &[&voucher_id],
        )
        .await?;
    Ok(row.as_ref().map(stored_ldevid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_service::pg_server::PgServer;

    async fn store() -> (PgServer, PgStore) {
        let server = PgServer::start().expect("a PostgreSQL server (apt-get install postgresql)");
        server
            .create_database("registrar")
            .expect("create database");
        let store = open(&server.url("registrar"), &[]).await.expect("open");
        (server, store)
    }

    fn telemetry<'a>(serial: &'a str, status: bool) -> NewTelemetry<'a> {
        NewTelemetry {
            serial,
            kind: TelemetryKind::VoucherStatus,
            status,
            reason: None,
            body: b"{}",
            client_cert: ClientCert::Idevid,
            peer: "127.0.0.1:1",
            ldevid_first_use: None,
        }
    }

    /// The operations as the SQLite store does them: a pledge seen, a voucher, its status, the
    /// enrollment gate, an LDevID and its renewal, the telemetry limit.
    #[tokio::test]
    async fn the_registrar_flow_on_postgres() {
        let (_server, store) = store().await;
        let mut c = store.client().await.expect("client");
        assert_eq!(
            record_seen(&c, "SN-1", "peer", "https", Policy::Auto)
                .await
                .expect("seen"),
            Policy::Auto
        );
        set_policy(&c, "SN-1", Policy::Denied).await.expect("deny");
        assert_eq!(
            record_seen(&c, "SN-1", "peer", "coaps", Policy::Pending)
                .await
                .expect("seen"),
            Policy::Denied,
            "a decision is kept"
        );
        set_policy(&c, "SN-1", Policy::Allowed)
            .await
            .expect("allow");
        assert_eq!(policy(&c, "SN-1").await.expect("q"), Some(Policy::Allowed));
        assert_eq!(
            may_enroll(&c, "SN-1", "aa").await.expect("gate").1,
            EnrollGate::NoVoucher
        );

        let tx = c.transaction().await.expect("tx");
        let id = store_voucher(
            &tx,
            &NewVoucher {
                serial: "SN-1",
                idevid_sha256: "aa",
                nonce: Some("n"),
                request_format: "cms",
                content_type: "application/voucher-cms+json",
                assertion: Some("proximity"),
                masa_url: "https://masa",
                voucher: b"v",
                rvr: Some(b"rvr"),
                sighting: None,
            },
        )
        .await
        .expect("voucher");
        tx.commit().await.expect("commit");
        assert_eq!(
            voucher_for_nonce(&c, "SN-1", "aa", "n")
                .await
                .expect("q")
                .map(|v| v.id),
            Some(id)
        );
        assert_eq!(
            latest_voucher_request(&c, "SN-1")
                .await
                .expect("q")
                .map(|v| v.rvr),
            Some(b"rvr".to_vec())
        );
        assert_eq!(
            may_enroll(&c, "SN-1", "bb").await.expect("gate").1,
            EnrollGate::OtherIdevid
        );
        assert_eq!(
            may_enroll(&c, "SN-1", "aa").await.expect("gate").1,
            EnrollGate::Open { voucher_id: id }
        );
        let tx = c.transaction().await.expect("tx");
        let stored = store_telemetry_limited(&tx, &telemetry("SN-1", false)).await;
        tx.commit().await.expect("commit");
        assert_eq!(stored.expect("stored"), TelemetryStored::Stored);
        assert_eq!(
            may_enroll(&c, "SN-1", "aa").await.expect("gate").1,
            EnrollGate::VoucherFailed
        );
        store_audit_check(
            &c,
            &NewAuditCheck {
                serial: "SN-1",
                voucher_id: id,
                passed: false,
                reason: "too many",
                log: None,
            },
        )
        .await
        .expect("audit check");

        // The limit: TELEMETRY_PER_WINDOW reports, then a refusal with a retry time.
        for _ in 1..TELEMETRY_PER_WINDOW {
            let tx = c.transaction().await.expect("tx");
            let s = store_telemetry_limited(&tx, &telemetry("SN-1", true)).await;
            tx.commit().await.expect("commit");
            assert_eq!(s.expect("stored"), TelemetryStored::Stored);
        }
        let tx = c.transaction().await.expect("tx");
        let limited = store_telemetry_limited(&tx, &telemetry("SN-1", true)).await;
        tx.commit().await.expect("commit");
        assert!(matches!(
            limited.expect("limited"),
            TelemetryStored::RateLimited { retry_after } if retry_after > 3000
        ));
        let ctx = telemetry_context(&c, "SN-1").await.expect("ctx");
        assert!(ctx.has_voucher && !ctx.has_certificate);

        // An LDevID, then its renewal: the renewed one stays usable until the new one is seen.
        let cert = |serial: &'static str, renewed_from: Option<&'static str>| NewCertificate {
            cert_serial: serial,
            pledge_serial: "SN-1",
            subject: "SERIALNUMBER=SN-1",
            not_before: "2026-01-01T00:00:00Z",
            not_after: "2027-01-01T00:00:00Z",
            der: b"der",
            renewed_from,
            voucher_id: Some(id),
            spki_sha256: "cc",
            attestation: None,
        };
        for (serial, from) in [("C1", None), ("C2", Some("C1"))] {
            let tx = c.transaction().await.expect("tx");
            store_certificate(&tx, &cert(serial, from))
                .await
                .expect("cert");
            tx.commit().await.expect("commit");
        }
        let c1 = certificate(&c, "C1").await.expect("q").expect("C1");
        assert!(c1.superseded && !c1.revoked);
        let tx = c.transaction().await.expect("tx");
        ldevid_seen(&tx, "C2").await.expect("seen");
        tx.commit().await.expect("commit");
        assert!(certificate(&c, "C1").await.expect("q").expect("C1").revoked);
        assert_eq!(
            enrolled_on_voucher(&c, id)
                .await
                .expect("q")
                .map(|l| l.cert_serial),
            Some("C1".into())
        );
        assert!(matches!(
            ldevid_status(&c, "C2", b"der").await.expect("q"),
            LdevidStatus::Current { seen: true, .. }
        ));
        assert_eq!(
            ldevid_status(&c, "C2", b"other").await.expect("q"),
            LdevidStatus::Unknown
        );
        assert!(matches!(
            ldevid_status(&c, "C1", b"der").await.expect("q"),
            LdevidStatus::Revoked { .. }
        ));
        assert_eq!(
            revoke(&c, &RevokeWhat::Pledge("SN-1".into()), "stolen")
                .await
                .expect("revoke"),
            vec!["C2".to_string()]
        );
        assert!(
            revoke(&c, &RevokeWhat::Serial("C2".into()), "again")
                .await
                .expect("revoke")
                .is_empty()
        );

        let nid = store_nonceless_voucher(
            &c,
            &NewNoncelessVoucher {
                serial: "SN-1",
                masa_url: "https://masa",
                content_type: "application/voucher-cms+json",
                expires_on: None,
                voucher: b"nv",
            },
        )
        .await
        .expect("nonceless");
        assert_eq!(
            nonceless_vouchers(&c, "SN-1")
                .await
                .expect("q")
                .first()
                .map(|v| v.id),
            Some(nid)
        );
        let listed = list_pledges(&c).await.expect("list");
        assert_eq!(listed.len(), 1);
        let row = &listed[0];
        assert_eq!(
            (row.serial.as_str(), row.state.as_str(), row.policy.as_str()),
            ("SN-1", "allowed", "allowed"),
            "every LDevID revoked: not enrolled"
        );
        assert_eq!(
            (row.vouchers, row.telemetry_reports, row.certificates),
            (1, 10, 2)
        );
        assert_eq!(row.audit_log.as_deref(), Some("refused: too many"));
        assert_eq!(row.voucher_status.as_ref().map(|s| s.status), Some(true));
        assert_eq!(row.transport.as_deref(), Some("coaps"));
        // The trigger recorded the reports as sightings.
        let seen: Option<String> = c
            .query_one("SELECT last_peer FROM pledges WHERE serial = 'SN-1'", &[])
            .await
            .expect("q")
            .get(0);
        assert_eq!(seen.as_deref(), Some("127.0.0.1:1"));
    }
}
