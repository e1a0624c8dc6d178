//! The MASA's state behind one interface: an SQLite file ([`crate::db`]: one instance, writes
//! group-committed) or a PostgreSQL database ([`crate::pg`]: several instances). The voucher
//! transaction is written once, over [`VoucherTx`], and run by either backend.

use crate::config::{MasaConfig, Ownership};
use crate::db::{self, Device, DomainRecord, IssuedVoucher};
use crate::error::{MasaError, Refusal};
use crate::pg;
use brski_common::audit::AuditEvent;
use brski_common::brski::masa::chain_reaches;
use brski_common::pki::chain::TimeCheck;
use brski_service::config::Database;
use brski_service::metrics::DbMetrics;
use brski_service::postgres::{PgError, PgStore};
use brski_service::store::{Connection, Db, GroupCommit, StoreError, StoreFault};
use der::Decode;
use std::future::Future;
use x509_cert::Certificate;

/// Where the MASA's state is.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite {
        db: Db,
        /// The group-commit writer (`masa serve`); administrative commands write directly.
        writer: Option<GroupCommit>,
    },
    Postgres(PgStore),
}

impl Store {
    /// Open the database `cfg` names, bringing its schema up to date; `serving` starts the
    /// SQLite group-commit writer for `masa serve`.
    pub async fn open(cfg: &MasaConfig, serving: bool) -> Result<Self, MasaError> {
        Self::open_metered(cfg, serving, DbMetrics::default()).await
    }

    /// [`Store::open`], the SQLite writer's commits observed in `metrics`.
    pub async fn open_metered(
        cfg: &MasaConfig,
        serving: bool,
        metrics: DbMetrics,
    ) -> Result<Self, MasaError> {
        match &cfg.database {
            Database::Sqlite(path) => {
                let db = db::open(path)?;
                let writer = match serving {
                    true => Some(db::writer(path, metrics)?),
                    false => None,
                };
                Ok(Self::Sqlite { db, writer })
            }
            Database::Postgres(url) => {
                let ca = brski_service::files::read_certs_der(cfg.database_ca.as_deref())?;
                Ok(Self::Postgres(
                    pg::open(url, &ca).await?.with_metrics(metrics),
                ))
            }
        }
    }

    /// The device minted with `serial`.
    pub async fn device(&self, serial: &str) -> Result<Option<Device>, StoreFault> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::device(db, serial)?),
            Self::Postgres(pg) => Ok(pg::device(&pg.client().await?, serial).await?),
        }
    }

    /// The claim on `serial`.
    pub async fn claim(&self, serial: &str) -> Result<Option<DomainRecord>, StoreFault> {
        match self {
            Self::Sqlite { db, .. } => Ok(db.read(|conn| db::claim(conn, serial))?),
            Self::Postgres(pg) => Ok(pg::claim(&pg.client().await?, serial).await?),
        }
    }

    /// Record (or replace) the claim of `domain` on `serial`.
    pub async fn set_claim(&self, serial: &str, domain: &DomainRecord) -> Result<(), StoreFault> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::set_claim(db, serial, domain)?),
            Self::Postgres(pg) => Ok(pg::set_claim(&pg.client().await?, serial, domain).await?),
        }
    }

    /// Forget the owner of `serial`; `Ok(false)` when it had none.
    pub async fn release(&self, serial: &str) -> Result<bool, StoreFault> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::release(db, serial)?),
            Self::Postgres(pg) => Ok(pg::release(&pg.client().await?, serial).await?),
        }
    }

    /// The audit log of `serial`, oldest first.
    pub async fn audit_events(&self, serial: &str) -> Result<Vec<AuditEvent>, StoreFault> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::audit_events(db, serial)?),
            Self::Postgres(pg) => Ok(pg::audit_events(&pg.client().await?, serial).await?),
        }
    }

    /// Record `devices` as minted, running `then` (which writes their files) before the
    /// transaction commits, so that a device is recorded only once its files are written and
    /// a concurrent mint of the same serial waits, then fails. A serial minted before refuses
    /// with [`MasaError::AlreadyMinted`] and nothing is recorded.
    pub async fn mint<T>(
        &self,
        devices: &[Device],
        then: impl FnOnce() -> Result<T, MasaError>,
    ) -> Result<T, MasaError> {
        match self {
            Self::Sqlite { db, .. } => db.write(|conn| {
                for device in devices {
                    if !db::insert_device(conn, device)? {
                        return Err(MasaError::AlreadyMinted(device.serial.clone()));
                    }
                }
                then()
            }),
            Self::Postgres(pg) => {
                let mut client = pg.client().await?;
                let tx = client.transaction().await.map_err(PgError::from)?;
                for device in devices {
                    if !pg::insert_device(&tx, device).await? {
                        return Err(MasaError::AlreadyMinted(device.serial.clone()));
                    }
                }
                let value = then()?;
                tx.commit().await.map_err(PgError::from)?;
                Ok(value)
            }
        }
    }

    /// The voucher transaction of `issue` ([`OwnedIssue::check_and_record`]), committed
    /// before this returns: group-committed on SQLite, a transaction of its own on PostgreSQL.
    /// `Ok(Err(_))` refuses with nothing written.
    pub async fn issue(&self, issue: OwnedIssue) -> Result<Result<bool, Refusal>, StoreFault> {
        match self {
            Self::Sqlite { db, writer } => {
                let run = move |conn: &Connection| {
                    ready(issue.check_and_record(&mut SqliteTx(conn))).unwrap_or_else(|| {
                        Err(StoreError::Unexpected(
                            "the SQLite voucher transaction did not complete at once".into(),
                        ))
                    })
                };
                Ok(match writer {
                    Some(w) => w.write(run).await?,
                    None => db.write(run)?,
                })
            }
            Self::Postgres(pg) => {
                let began = std::time::Instant::now();
                let mut client = pg.client().await?;
                let tx = client.transaction().await?;
                let decided = issue.check_and_record(&mut PgTx(&tx)).await?;
                if decided.is_ok() {
                    pg.commit(tx, began).await?;
                }
                Ok(decided)
            }
        }
    }
}

/// Everything the voucher's transaction needs, owned by the writer.
pub struct OwnedIssue {
    pub ownership: Ownership,
    pub serial: String,
    pub registrar_chain: Vec<Certificate>,
    /// Recorded as the owner under first-owner when the device has none.
    pub owner_if_first: DomainRecord,
    /// The certificate a nonceless voucher pins, chosen under the claim read before signing:
    /// it must still be at or below the claimed CA (cBRSKI §8.2).
    pub nonceless_pin: Option<Certificate>,
    pub idevid_issuer: Vec<u8>,
    pub created_on: String,
    pub expires_on: Option<String>,
    pub format: &'static str,
    pub nonce: Option<String>,
    pub assertion: &'static str,
    pub voucher: Vec<u8>,
}

impl OwnedIssue {
    /// The ownership check (RFC 8995 §5.5.4: first-owner or the sales claim) and the voucher
    /// with its audit entry; `Ok(Err(_))` refuses with nothing written; `Ok(Ok(true))` when the
    /// first owner was recorded. Under first-owner the owner is decided by inserting this
    /// domain unless one is recorded: of two instances racing for a serial, one inserts, and
    /// the other then reads that owner.
    pub async fn check_and_record<T: VoucherTx>(
        &self,
        tx: &mut T,
    ) -> Result<Result<bool, Refusal>, T::Error> {
        let serial = self.serial.as_str();
        let mut owner_recorded = false;
        match self.ownership {
            Ownership::LogOnly => {}
            Ownership::FirstOwner => {
                if tx
                    .insert_owner_if_none(serial, &self.owner_if_first)
                    .await?
                {
                    owner_recorded = true;
                } else {
                    let Some(owner) = tx.owner(serial).await? else {
                        return Ok(Err(internal("stored owner", "released meanwhile")));
                    };
                    let cert = match Certificate::from_der(&owner.cert) {
                        Ok(cert) => cert,
                        Err(e) => return Ok(Err(internal("stored owner", e))),
                    };
                    if !chain_reaches(&self.registrar_chain, &cert, TimeCheck::Now) {
                        return Ok(Err(Refusal::OwnedByAnotherDomain(self.serial.clone())));
                    }
                }
            }
            Ownership::Claimed => {
                let Some(claim) = tx.claim(serial).await? else {
                    return Ok(Err(Refusal::NotClaimed(self.serial.clone())));
                };
                let ca = match Certificate::from_der(&claim.cert) {
                    Ok(ca) => ca,
                    Err(e) => return Ok(Err(internal("stored claim", e))),
                };
                if !chain_reaches(&self.registrar_chain, &ca, TimeCheck::Now) {
                    return Ok(Err(Refusal::ClaimedByAnotherDomain(self.serial.clone())));
                }
                if let Some(pinned) = &self.nonceless_pin {
                    if !chain_reaches(std::slice::from_ref(pinned), &ca, TimeCheck::Now) {
                        return Ok(Err(internal(
                            "nonceless pin",
                            "the claim changed while the voucher was signed",
                        )));
                    }
                }
            }
        }
        tx.record_voucher(&IssuedVoucher {
            serial,
            idevid_issuer: &self.idevid_issuer,
            created_on: &self.created_on,
            expires_on: self.expires_on.as_deref(),
            format: self.format,
            domain_id: &self.owner_if_first.domain_id,
            nonce: self.nonce.as_deref(),
            assertion: self.assertion,
            voucher: &self.voucher,
        })
        .await?;
        Ok(Ok(owner_recorded))
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> Refusal {
    Refusal::Internal(format!("{what}: {e}"))
}

/// What the voucher transaction reads and writes, in an open transaction of either backend.
pub trait VoucherTx {
    type Error;
    /// Make `domain` the owner of `serial` unless it has one; `true` when it became the owner.
    fn insert_owner_if_none(
        &mut self,
        serial: &str,
        domain: &DomainRecord,
    ) -> impl Future<Output = Result<bool, Self::Error>>;
    fn owner(
        &mut self,
        serial: &str,
    ) -> impl Future<Output = Result<Option<DomainRecord>, Self::Error>>;
    fn claim(
        &mut self,
        serial: &str,
    ) -> impl Future<Output = Result<Option<DomainRecord>, Self::Error>>;
    fn record_voucher(
        &mut self,
        v: &IssuedVoucher<'_>,
    ) -> impl Future<Output = Result<i64, Self::Error>>;
}

/// The writer thread's SQLite transaction: every call completes at once.
struct SqliteTx<'a>(&'a Connection);

impl VoucherTx for SqliteTx<'_> {
    type Error = StoreError;
    async fn insert_owner_if_none(
        &mut self,
        serial: &str,
        domain: &DomainRecord,
    ) -> Result<bool, StoreError> {
        db::insert_owner_if_none(self.0, serial, domain)
    }
    async fn owner(&mut self, serial: &str) -> Result<Option<DomainRecord>, StoreError> {
        db::owner(self.0, serial)
    }
    async fn claim(&mut self, serial: &str) -> Result<Option<DomainRecord>, StoreError> {
        db::claim(self.0, serial)
    }
    async fn record_voucher(&mut self, v: &IssuedVoucher<'_>) -> Result<i64, StoreError> {
        db::record_voucher(self.0, v)
    }
}

/// A PostgreSQL transaction.
struct PgTx<'a, 'c>(&'a brski_service::postgres::Transaction<'c>);

impl VoucherTx for PgTx<'_, '_> {
    type Error = PgError;
    async fn insert_owner_if_none(
        &mut self,
        serial: &str,
        domain: &DomainRecord,
    ) -> Result<bool, PgError> {
        pg::insert_owner_if_none(self.0, serial, domain).await
    }
    async fn owner(&mut self, serial: &str) -> Result<Option<DomainRecord>, PgError> {
        pg::owner(self.0, serial).await
    }
    async fn claim(&mut self, serial: &str) -> Result<Option<DomainRecord>, PgError> {
        pg::claim(self.0, serial).await
    }
    async fn record_voucher(&mut self, v: &IssuedVoucher<'_>) -> Result<i64, PgError> {
        pg::record_voucher(self.0, v).await
    }
}

/// The value of a future that completes without waiting (the SQLite calls, which block on the
/// writer thread instead), polled once; `None` if it would wait.
fn ready<T>(future: impl Future<Output = T>) -> Option<T> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(value) => Some(value),
        std::task::Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
    use brski_common::pki::ext::domain_id_base64;
    use brski_common::pki::{issue, name_from_parts, profile, self_signed};
    use brski_service::pg_server::PgServer;
    use der::Encode;

    /// A domain: its CA (the certificate a first-owner voucher pins) and its registrar chain.
    struct Domain {
        record: DomainRecord,
        chain: Vec<Certificate>,
    }

    fn domain(name: &str) -> Domain {
        let key = || SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
        let ca_key = key();
        let subject = |cn: &str| name_from_parts(Some(cn), Some(name), None).expect("name");
        let ca = self_signed(&profile::domain_ca(subject("CA")).expect("p"), &ca_key).expect("ca");
        let registrar = issue(
            &profile::registrar(subject("registrar"), &["registrar.example"], &[]).expect("p"),
            key().public_key_spki(),
            Some(&ca),
            &ca_key,
        )
        .expect("registrar");
        Domain {
            record: DomainRecord {
                domain_id: domain_id_base64(&ca).expect("domain id"),
                cert: ca.to_der().expect("der"),
            },
            chain: vec![registrar, ca],
        }
    }

    fn voucher_for(serial: &str, d: &Domain) -> OwnedIssue {
        OwnedIssue {
            ownership: Ownership::FirstOwner,
            serial: serial.into(),
            registrar_chain: d.chain.clone(),
            owner_if_first: d.record.clone(),
            nonceless_pin: None,
            idevid_issuer: vec![4, 0],
            created_on: "2026-12-05T00:00:00.000Z".into(),
            expires_on: None,
            format: "cms",
            nonce: Some("bm9uY2U=".into()),
            assertion: "proximity",
            voucher: vec![0x30, 0],
        }
    }

    fn device(serial: &str) -> Device {
        Device {
            serial: serial.into(),
            idevid_issuer: vec![4, 0],
            idevid_cert: vec![0x30, 0],
        }
    }

    /// RFC 8995 §5.5.4 first-owner across instances: 200 concurrent voucher transactions for
    /// 100 serials, one per domain per serial, spread over `instances`. Each serial gets one
    /// owner; every other request is refused as owned by another domain (403); each serial's
    /// audit log holds exactly the voucher that was answered, for the owner's domain.
    async fn first_owner_race(instances: &[Store]) {
        let (a, b) = (domain("Domain A"), domain("Domain B"));
        let serials: Vec<String> = (0..100).map(|i| format!("RACE-{i:03}")).collect();
        let devices: Vec<Device> = serials.iter().map(|s| device(s)).collect();
        instances[0].mint(&devices, || Ok(())).await.expect("mint");
        let mut running = Vec::new();
        for (i, serial) in serials.iter().enumerate() {
            // Alternate which domain asks first and which instance it reaches.
            for (j, d) in [&a, &b].into_iter().enumerate() {
                let store = instances[(i + j) % instances.len()].clone();
                let issue = voucher_for(serial, d);
                let domain_id = d.record.domain_id.clone();
                running.push(tokio::spawn(async move {
                    (domain_id, store.issue(issue).await)
                }));
            }
        }
        let mut winners = std::collections::HashMap::new();
        let mut refused = 0;
        for (k, r) in running.into_iter().enumerate() {
            let (domain_id, answer) = r.await.expect("join");
            let serial = &serials[k / 2];
            match answer.expect("no database fault") {
                Ok(recorded) => {
                    assert!(recorded, "the winner recorded itself as owner");
                    assert!(
                        winners.insert(serial.clone(), domain_id).is_none(),
                        "{serial}: two vouchers"
                    );
                }
                Err(Refusal::OwnedByAnotherDomain(s)) => {
                    assert_eq!(&s, serial);
                    refused += 1;
                }
                Err(other) => panic!("{serial}: {other}"),
            }
        }
        assert_eq!(winners.len(), 100, "every serial has one owner");
        assert_eq!(refused, 100, "every loser refused");
        for serial in &serials {
            let log = instances[instances.len() - 1]
                .audit_events(serial)
                .await
                .expect("audit log");
            assert_eq!(log.len(), 1, "{serial}: {log:?}");
            assert_eq!(Some(&log[0].domain_id), winners.get(serial), "{serial}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn rfc8995_5_5_4_first_owner_race_over_two_postgres_instances() {
        let server = PgServer::start().expect("a PostgreSQL server (apt-get install postgresql)");
        server.create_database("masa").expect("create database");
        let url = server.url("masa");
        let one = Store::Postgres(pg::open(&url, &[]).await.expect("instance 1"));
        let two = Store::Postgres(pg::open(&url, &[]).await.expect("instance 2"));
        first_owner_race(&[one, two]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn rfc8995_5_5_4_first_owner_race_on_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("masa.db");
        let db = db::open(&path).expect("open");
        let writer = Some(db::writer(&path, DbMetrics::default()).expect("writer"));
        first_owner_race(&[Store::Sqlite { db, writer }]).await;
    }

    /// The operations of both backends agree: minting twice refuses and records nothing,
    /// claims replace each other, release forgets the owner.
    #[tokio::test]
    async fn both_backends_mint_claim_and_release_alike() {
        let server = PgServer::start().expect("a PostgreSQL server (apt-get install postgresql)");
        server.create_database("masa").expect("create database");
        let pg = Store::Postgres(pg::open(&server.url("masa"), &[]).await.expect("pg"));
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = Store::Sqlite {
            db: db::open(&dir.path().join("masa.db")).expect("open"),
            writer: None,
        };
        let (a, b) = (domain("Domain A"), domain("Domain B"));
        for store in [pg, sqlite] {
            store
                .mint(&[device("SN-1")], || Ok(()))
                .await
                .expect("mint");
            let again = store
                .mint(&[device("SN-2"), device("SN-1")], || Ok(()))
                .await
                .expect_err("minted before");
            assert!(matches!(again, MasaError::AlreadyMinted(s) if s == "SN-1"));
            assert!(
                store.device("SN-2").await.expect("q").is_none(),
                "rolled back"
            );
            let files_failed = store
                .mint(&[device("SN-3")], || {
                    Err::<(), _>(MasaError::Invalid("disk full".into()))
                })
                .await
                .expect_err("files not written");
            assert!(matches!(files_failed, MasaError::Invalid(_)));
            assert!(
                store.device("SN-3").await.expect("q").is_none(),
                "not recorded"
            );

            store.set_claim("SN-1", &a.record).await.expect("claim");
            store.set_claim("SN-1", &b.record).await.expect("re-claim");
            let claim = store.claim("SN-1").await.expect("q").expect("claim");
            assert_eq!(claim.domain_id, b.record.domain_id);

            assert!(!store.release("SN-1").await.expect("release"));
            let won = store.issue(voucher_for("SN-1", &a)).await.expect("issue");
            assert!(matches!(won, Ok(true)));
            let lost = store.issue(voucher_for("SN-1", &b)).await.expect("issue");
            assert!(matches!(lost, Err(Refusal::OwnedByAnotherDomain(_))));
            let again = store.issue(voucher_for("SN-1", &a)).await.expect("issue");
            assert!(matches!(again, Ok(false)), "the owner asks again");
            assert!(store.release("SN-1").await.expect("release"));
            let after = store.issue(voucher_for("SN-1", &b)).await.expect("issue");
            assert!(matches!(after, Ok(true)), "released: a new first owner");
            assert_eq!(store.audit_events("SN-1").await.expect("log").len(), 3);
            let unknown = store.issue(voucher_for("NOPE", &a)).await;
            assert!(unknown.is_err(), "no voucher for a device never minted");
        }
    }
}
