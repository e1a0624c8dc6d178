//! RFC 8995 §5.8.1 audit log and §5.8.2 domainID.

use brski_common::audit::{Assertion, AuditError, AuditEvent, AuditLog, Truncation, VERSION};
use brski_common::pki::ext::{domain_id, domain_id_base64};
use brski_common::test_vectors::{bytes, cert};

const DOMAIN: &str = "BduJhdHPpfhQLyponf48JzXSGZ8=";

fn event(date: &str, domain: &str, nonce: Option<&str>, truncated: Option<u64>) -> AuditEvent {
    AuditEvent {
        date: date.to_string(),
        domain_id: domain.to_string(),
        nonce: nonce.map(str::to_string),
        assertion: Assertion::Logged,
        truncated,
    }
}

#[test]
fn rfc8995_5_8_1_example_decodes() {
    let log = AuditLog::from_json(&bytes("rfc8995/5.8.1-audit-log-example.json"))
        .expect("5.8.1 example decodes");
    assert_eq!(log.version, 1);
    assert_eq!(log.events.len(), 2);
    let first = &log.events[0];
    assert_eq!(first.date, "2019-05-15T17:25:55.644-04:00");
    assert_eq!(first.domain_id, DOMAIN);
    assert_eq!(first.nonce.as_deref(), Some("VOUFT-WwrEv0NuAQEHoV7Q"));
    assert_eq!(first.assertion, Assertion::Proximity);
    assert_eq!(first.truncated, Some(0));
    let second = &log.events[1];
    assert_eq!(second.date, "2017-05-15T17:25:55.644-04:00");
    assert_eq!(second.domain_id, DOMAIN);
    assert_eq!(second.nonce.as_deref(), Some("f4G6Vi1t8nKo/FieCVgpBg=="));
    assert_eq!(second.assertion, Assertion::Proximity);
    assert_eq!(second.truncated, None);
    assert_eq!(
        log.truncation,
        Truncation {
            nonced_duplicates: 0,
            nonceless_duplicates: 1,
            arbitrary: 2
        }
    );
    assert_eq!(first.domain_id_bytes().map(|b| b.len()), Some(20), "an SKI");
    assert!(first.date_time().expect("RFC 3339") > second.date_time().expect("RFC 3339"));
}

#[test]
fn rfc8995_5_8_1_strict_reencode_uses_integers() {
    let log = AuditLog::from_json(&bytes("rfc8995/5.8.1-audit-log-example.json")).expect("decodes");
    let json = String::from_utf8(log.to_json().expect("encodes")).expect("utf-8");
    assert_eq!(
        json,
        concat!(
            r#"{"version":1,"events":["#,
            r#"{"date":"2019-05-15T17:25:55.644-04:00","domainID":"BduJhdHPpfhQLyponf48JzXSGZ8=","#,
            r#""nonce":"VOUFT-WwrEv0NuAQEHoV7Q","assertion":"proximity","truncated":0},"#,
            r#"{"date":"2017-05-15T17:25:55.644-04:00","domainID":"BduJhdHPpfhQLyponf48JzXSGZ8=","#,
            r#""nonce":"f4G6Vi1t8nKo/FieCVgpBg==","assertion":"proximity"}],"#,
            r#""truncation":{"nonced duplicates":0,"nonceless duplicates":1,"arbitrary":2}}"#
        )
    );
    assert_eq!(
        AuditLog::from_json(json.as_bytes()).expect("re-decodes"),
        log
    );
}

#[test]
fn rfc8995_5_8_1_nonceless_is_null_and_zero_truncation_is_omitted() {
    let log = AuditLog::new(vec![event("2021-04-13T21:43:23Z", DOMAIN, None, None)]);
    assert_eq!(log.version, VERSION);
    let json = String::from_utf8(log.to_json().expect("encodes")).expect("utf-8");
    assert_eq!(
        json,
        r#"{"version":1,"events":[{"date":"2021-04-13T21:43:23Z","domainID":"BduJhdHPpfhQLyponf48JzXSGZ8=","nonce":null,"assertion":"logged"}]}"#
    );
    assert_eq!(AuditLog::from_json(json.as_bytes()).expect("decodes"), log);
}

#[test]
fn rfc8995_5_8_1_lenient_decoding() {
    let json = br#"{"version":1,"events":[
        {"date":"2021-04-13T21:43:23Z","domainID":"AA==","assertion":"verified","truncated":null},
        {"date":"2021-04-13T21:43:24Z","domainID":"AA==","nonce":"n","assertion":"agent-proximity","extra":1}
    ],"truncation":{"arbitrary":"3"},"future":{}}"#;
    let log = AuditLog::from_json(json).expect("decodes");
    assert_eq!(log.events[0].nonce, None, "a missing nonce is nonceless");
    assert_eq!(log.events[0].assertion, Assertion::Verified);
    assert_eq!(log.events[0].truncated, None);
    assert_eq!(
        log.events[1].assertion,
        Assertion::Other("agent-proximity".into())
    );
    assert_eq!(
        log.truncation,
        Truncation {
            nonced_duplicates: 0,
            nonceless_duplicates: 0,
            arbitrary: 3
        }
    );
    let no_truncation = AuditLog::from_json(br#"{"version":"2","events":[]}"#).expect("decodes");
    assert_eq!(no_truncation.version, 2);
    assert!(no_truncation.truncation.is_zero());
}

#[test]
fn rfc8995_5_8_1_abridging_keeps_latest_nonced_and_nonceless_per_domain() {
    let other = "T3RoZXI=";
    let log = AuditLog {
        version: 1,
        events: vec![
            event("2020-01-01T00:00:00Z", DOMAIN, Some("n1"), None),
            event("2020-03-01T00:00:00Z", DOMAIN, Some("n3"), None),
            event("2020-01-05T00:00:00Z", DOMAIN, None, Some(4)),
            event("2020-02-01T00:00:00Z", DOMAIN, Some("n2"), Some(1)),
            event("2020-06-01T00:00:00Z", other, Some("x"), None),
            event("2020-04-01T00:00:00Z", DOMAIN, None, None),
        ],
        truncation: Truncation {
            nonced_duplicates: 1,
            nonceless_duplicates: 4,
            arbitrary: 7,
        },
    };
    let abridged = log.abridge();
    assert_eq!(
        abridged.events,
        vec![
            // n1 (1) and n2 (1 + its 1 earlier) fold into n3.
            event("2020-03-01T00:00:00Z", DOMAIN, Some("n3"), Some(3)),
            event("2020-06-01T00:00:00Z", other, Some("x"), None),
            // The nonceless event of January (1 + its 4 earlier) folds into April's.
            event("2020-04-01T00:00:00Z", DOMAIN, None, Some(5)),
        ]
    );
    assert_eq!(
        abridged.truncation,
        Truncation {
            nonced_duplicates: 3,
            nonceless_duplicates: 5,
            arbitrary: 7
        }
    );
    assert_eq!(abridged.abridge(), abridged, "abridging is idempotent");
}

#[test]
fn rfc8995_5_8_1_abridging_compares_instants_across_offsets() {
    // 10:00-04:00 is 14:00Z, later than 12:00Z.
    let log = AuditLog::new(vec![
        event("2020-01-01T10:00:00-04:00", DOMAIN, Some("a"), None),
        event("2020-01-01T12:00:00Z", DOMAIN, Some("b"), None),
    ]);
    let abridged = log.abridge();
    assert_eq!(abridged.events.len(), 1);
    assert_eq!(abridged.events[0].nonce.as_deref(), Some("a"));
    assert_eq!(abridged.events[0].truncated, Some(1));
    assert_eq!(abridged.truncation.nonced_duplicates, 1);
}

#[test]
fn rfc8995_5_8_1_example_abridged() {
    let log = AuditLog::from_json(&bytes("rfc8995/5.8.1-audit-log-example.json")).expect("decodes");
    let abridged = log.abridge();
    assert_eq!(abridged.events.len(), 1);
    assert_eq!(
        abridged.events[0].nonce.as_deref(),
        Some("VOUFT-WwrEv0NuAQEHoV7Q")
    );
    assert_eq!(abridged.events[0].truncated, Some(1));
    assert_eq!(
        abridged.truncation,
        Truncation {
            nonced_duplicates: 1,
            nonceless_duplicates: 1,
            arbitrary: 2
        }
    );
}

#[test]
fn rfc8995_5_8_2_domain_id_without_ski_is_spki_sha256() {
    let registrar = cert("rfc8995/C.1.4-registrar.crt.pem");
    assert_eq!(
        domain_id_base64(&registrar).expect("domainID"),
        "Oy6w2vS8ar8m/FtEHuzs7sl7LSD3pW9yTCgCecoIL3M="
    );
}

#[test]
fn rfc8995_5_8_2_domain_id_is_the_ski() {
    let owner_ca = cert("rfc8995/C.1.3-owner-ca.crt.pem");
    assert_eq!(
        hex::encode_upper(domain_id(&owner_ca).expect("domainID")),
        "B9A5F6CB11E107A4492CA708C67C10BC87B37426"
    );
}

#[test]
fn rfc8995_5_8_1_rejections() {
    let missing = |json: &[u8], field: &str| match AuditLog::from_json(json) {
        Err(AuditError::MissingField(f)) => assert_eq!(f, field),
        other => panic!("{}: {other:?}", String::from_utf8_lossy(json)),
    };
    missing(br#"{"events":[]}"#, "version");
    missing(br#"{"version":1}"#, "events");
    let ev = |body: &str| format!(r#"{{"version":1,"events":[{body}]}}"#);
    missing(
        ev(r#"{"domainID":"AA==","nonce":null,"assertion":"logged"}"#).as_bytes(),
        "date",
    );
    missing(
        ev(r#"{"date":"2021-04-13T21:43:23Z","nonce":null,"assertion":"logged"}"#).as_bytes(),
        "domainID",
    );
    missing(
        ev(r#"{"date":"2021-04-13T21:43:23Z","domainID":"AA==","nonce":null}"#).as_bytes(),
        "assertion",
    );

    let wrong = |json: &[u8], field: &str| match AuditLog::from_json(json) {
        Err(AuditError::WrongType { field: f, .. }) => assert_eq!(f, field),
        other => panic!("{}: {other:?}", String::from_utf8_lossy(json)),
    };
    wrong(br#"{"version":"x","events":[]}"#, "version");
    wrong(br#"{"version":-1,"events":[]}"#, "version");
    wrong(br#"{"version":1,"events":{}}"#, "events");
    wrong(
        ev(r#"{"date":"2021-04-13T21:43:23Z","domainID":"AA==","nonce":5,"assertion":"logged"}"#)
            .as_bytes(),
        "nonce",
    );
    wrong(
        ev(r#"{"date":"2021-04-13T21:43:23Z","domainID":"AA==","nonce":null,"assertion":"logged","truncated":"-1"}"#)
            .as_bytes(),
        "truncated",
    );
    wrong(
        ev(r#"{"date":"2021-04-13T21:43:23Z","domainID":7,"nonce":null,"assertion":"logged"}"#)
            .as_bytes(),
        "domainID",
    );
    wrong(
        br#"{"version":1,"events":[],"truncation":{"arbitrary":1.5}}"#,
        "arbitrary",
    );

    assert!(matches!(
        AuditLog::from_json(
            ev(r#"{"date":"15 May 2019","domainID":"AA==","nonce":null,"assertion":"logged"}"#)
                .as_bytes()
        ),
        Err(AuditError::BadDate(d)) if d == "15 May 2019"
    ));
    assert!(matches!(
        AuditLog::from_json(b"[]"),
        Err(AuditError::NotAnObject("audit log"))
    ));
    assert!(matches!(
        AuditLog::from_json(br#"{"version":1,"events":[1]}"#),
        Err(AuditError::NotAnObject("event"))
    ));
    assert!(matches!(
        AuditLog::from_json(br#"{"version":1,"events":[],"truncation":"0"}"#),
        Err(AuditError::NotAnObject("truncation"))
    ));
    for bad in [&b""[..], b"{", b"\xfe"] {
        assert!(matches!(AuditLog::from_json(bad), Err(AuditError::Json(_))));
    }
}
