//! The PostgreSQL backend against a real server of its own (`initdb` + `pg_ctl`, Debian's
//! `postgresql`): connections, versioned migrations applied once by instances starting
//! together, a newer schema refused, constraint violations told apart, and an unreachable
//! server told apart from a refused statement.

use brski_service::pg_server::PgServer;
use brski_service::postgres::{Migration, PgError, PgStore};

const MIGRATIONS: [Migration; 2] = [
    Migration {
        version: 1,
        name: "devices",
        sql: "CREATE TABLE devices (serial TEXT PRIMARY KEY, minted_at TIMESTAMPTZ NOT NULL);",
    },
    Migration {
        version: 2,
        name: "owners",
        sql: "CREATE TABLE owners (serial TEXT PRIMARY KEY REFERENCES devices(serial),
                                   domain_id TEXT NOT NULL);",
    },
];

fn server(db: &str) -> (PgServer, String) {
    let server = PgServer::start()
        .expect("a PostgreSQL server (scripts/install-deps.sh installs postgresql)");
    server.create_database(db).expect("create database");
    let url = server.url(db);
    (server, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_applied_once_by_instances_starting_together() {
    let (_server, url) = server("migrate");
    // Eight instances, each with its own pool, start at once.
    let mut starts = Vec::new();
    for _ in 0..8 {
        let store = PgStore::connect(&url, &[]).expect("pool");
        starts.push(tokio::spawn(async move {
            store.migrate("masa", &MIGRATIONS).await
        }));
    }
    let mut applied = Vec::new();
    for s in starts {
        applied.push(s.await.expect("join").expect("migrate"));
    }
    // Exactly one instance applied both versions; the others found the schema current.
    let applying: Vec<_> = applied.iter().filter(|a| !a.is_empty()).collect();
    assert_eq!(applying, vec![&vec![1, 2]], "{applied:?}");

    let store = PgStore::connect(&url, &[]).expect("pool");
    let client = store.client().await.expect("client");
    let rows = client
        .query(
            "SELECT version, name FROM schema_migrations WHERE component = 'masa' ORDER BY version",
            &[],
        )
        .await
        .expect("query");
    let recorded: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(recorded, vec![(1, "devices".into()), (2, "owners".into())]);
    // Components are versioned apart.
    assert_eq!(
        store.migrate("registrar", &MIGRATIONS[..1]).await.ok(),
        None,
        "the registrar's version 1 would create the same table again"
    );
    assert!(
        store
            .migrate("masa", &MIGRATIONS)
            .await
            .expect("again")
            .is_empty()
    );
}

#[tokio::test]
async fn a_schema_newer_than_the_program_is_refused() {
    let (_server, url) = server("newer");
    let store = PgStore::connect(&url, &[]).expect("pool");
    store.migrate("masa", &MIGRATIONS).await.expect("migrate");
    let e = store
        .migrate("masa", &MIGRATIONS[..1])
        .await
        .expect_err("older program");
    assert!(
        matches!(&e, PgError::Schema { reason, .. } if reason.contains("version 2, newer than this program's 1")),
        "{e}"
    );
    let misnumbered = [Migration {
        version: 2,
        ..MIGRATIONS[0]
    }];
    let e = store
        .migrate("other", &misnumbered)
        .await
        .expect_err("misnumbered");
    assert!(matches!(e, PgError::Schema { .. }), "{e}");
}

#[tokio::test]
async fn a_failed_migration_leaves_nothing_behind() {
    let (_server, url) = server("failed");
    let store = PgStore::connect(&url, &[]).expect("pool");
    let broken = [
        MIGRATIONS[0],
        Migration {
            version: 2,
            name: "broken",
            sql: "CREATE TABLE owners (serial TEXT REFERENCES nowhere(serial));",
        },
    ];
    let e = store.migrate("masa", &broken).await.expect_err("broken");
    assert!(
        matches!(&e, PgError::Schema { reason, .. } if reason.contains("migration 2 (broken)")),
        "{e}"
    );
    // Version 1 was rolled back with it: the good migrations apply from the start.
    assert_eq!(
        store.migrate("masa", &MIGRATIONS).await.expect("migrate"),
        vec![1, 2]
    );
}

#[tokio::test]
async fn unique_violations_and_an_unreachable_server_are_told_apart() {
    let (server, url) = server("errors");
    let store = PgStore::connect(&url, &[]).expect("pool");
    store.migrate("masa", &MIGRATIONS).await.expect("migrate");
    let client = store.client().await.expect("client");
    let insert = "INSERT INTO devices (serial, minted_at) VALUES ($1, now())";
    client.execute(insert, &[&"SN-1"]).await.expect("insert");
    let again = PgError::from(
        client
            .execute(insert, &[&"SN-1"])
            .await
            .expect_err("duplicate"),
    );
    assert!(
        again.is_unique_violation() && !again.is_unavailable(),
        "{again}"
    );
    // A value that does not convert is a fault here, not the server's absence.
    let row = client
        .query_one("SELECT 1::int4", &[])
        .await
        .expect("query");
    let wrong_type = PgError::from(row.try_get::<_, String>(0).expect_err("int4 is no text"));
    assert!(
        !wrong_type.is_unavailable() && !wrong_type.is_unique_violation(),
        "{wrong_type}"
    );
    drop(client);

    server.stop().expect("stop");
    let down = match store.client().await {
        Ok(c) => PgError::from(c.query("SELECT 1", &[]).await.expect_err("server down")),
        Err(e) => e,
    };
    assert!(
        down.is_unavailable() && !down.is_unique_violation(),
        "{down}"
    );

    // Back on the same port: the pool connects again, nothing restarted here.
    server.restart().expect("restart");
    let mut back = None;
    for _ in 0..3 {
        if let Ok(c) = store.client().await {
            if let Ok(rows) = c.query("SELECT count(*) FROM devices", &[]).await {
                back = Some(rows[0].get::<_, i64>(0));
                break;
            }
        }
    }
    assert_eq!(back, Some(1), "the committed row survived the restart");
}

#[test]
fn tls_without_a_ca_is_a_configuration_error() {
    let e = PgStore::connect("postgres://u@127.0.0.1:1/db?sslmode=require", &[])
        .expect_err("no anchors");
    assert!(matches!(e, PgError::Tls(_)), "{e}");
    let e = PgStore::connect("postgres://u@[::1", &[]).expect_err("bad url");
    assert!(matches!(e, PgError::Url(_)), "{e}");
}

/// TLS to PostgreSQL (rustls): with `sslmode=require` the server's certificate must validate
/// under the configured CA; under another CA the connection is refused.
#[tokio::test]
async fn tls_to_the_server_validates_its_certificate() {
    use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
    use brski_common::pki::{issue, name_from_parts, profile, self_signed};
    use der::{Encode, EncodePem};
    let key = || SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    let ca = |name: &str| {
        let k = key();
        let params =
            profile::vendor_ca(name_from_parts(Some(name), Some(name), None).expect("name"))
                .expect("params");
        (self_signed(&params, &k).expect("ca"), k)
    };
    let (db_ca, db_ca_key) = ca("Database CA");
    let (other_ca, _) = ca("Other CA");
    let server_key = key();
    let params = profile::tls_server(&[], &["127.0.0.1".parse().expect("ip")]).expect("params");
    let cert = issue(
        &params,
        server_key.public_key_spki(),
        Some(&db_ca),
        &db_ca_key,
    )
    .expect("issue");
    let server = PgServer::start_with_tls(
        &cert.to_pem(der::pem::LineEnding::LF).expect("pem"),
        &server_key.to_pkcs8_pem(),
    )
    .expect("a PostgreSQL server with TLS");
    server.create_database("tls").expect("create database");
    let url = format!("{}?sslmode=require", server.url("tls"));

    let store = PgStore::connect(&url, &[db_ca.to_der().expect("der")]).expect("pool");
    let client = store.client().await.expect("a TLS connection");
    let rows = client
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query");
    assert!(
        rows[0].get::<_, bool>(0),
        "the server reports the connection as TLS"
    );

    let stranger = PgStore::connect(&url, &[other_ca.to_der().expect("der")]).expect("pool");
    let e = stranger
        .client()
        .await
        .expect_err("an unknown server certificate");
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(
        chain.contains("TLS handshake") && chain.contains("UnknownIssuer"),
        "{chain}"
    );
}
