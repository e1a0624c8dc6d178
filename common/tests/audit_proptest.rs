//! Property tests: the audit-log decoder never panics; abridging keeps its invariants.

use brski_common::audit::{Assertion, AuditEvent, AuditLog, Truncation};
use brski_common::test_vectors::bytes;
use brski_common::test_vectors::mutate;
use proptest::prelude::*;
use std::collections::HashSet;

fn check_decode(data: &[u8]) {
    if let Ok(log) = AuditLog::from_json(data) {
        let json = log.to_json().expect("decoded log re-encodes");
        assert_eq!(AuditLog::from_json(&json).expect("re-decodes"), log);
        let _ = log.abridge();
    }
}

fn event() -> impl Strategy<Value = AuditEvent> {
    (
        0u8..4,
        prop::sample::select(vec!["AA==", "AQ==", "Ag=="]),
        prop::option::of("[a-z]{1,4}"),
        prop::sample::select(vec![
            Assertion::Verified,
            Assertion::Logged,
            Assertion::Proximity,
        ]),
        prop::option::of(0u64..5),
        0u8..2,
    )
        .prop_map(
            |(day, domain, nonce, assertion, truncated, bad_date)| AuditEvent {
                date: if bad_date == 1 && day == 3 {
                    "not a date".to_string()
                } else {
                    format!("2020-01-0{}T00:00:00Z", day + 1)
                },
                domain_id: domain.to_string(),
                nonce,
                assertion,
                truncated,
            },
        )
}

fn log() -> impl Strategy<Value = AuditLog> {
    (
        prop::collection::vec(event(), 0..12),
        0u64..3,
        0u64..3,
        0u64..3,
    )
        .prop_map(|(events, a, b, c)| AuditLog {
            version: 1,
            events,
            truncation: Truncation {
                nonced_duplicates: a,
                nonceless_duplicates: b,
                arbitrary: c,
            },
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        check_decode(&data);
    }

    #[test]
    fn mutated_example_never_panics(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        check_decode(&mutate(bytes("rfc8995/5.8.1-audit-log-example.json"), &edits));
    }

    #[test]
    fn abridging_invariants(log in log()) {
        let abridged = log.abridge();
        // At most one event per (domainID, nonced?) remains, and every key survives.
        let keys = |l: &AuditLog| -> Vec<(String, bool)> {
            l.events.iter().map(|e| (e.domain_id.clone(), e.nonce.is_some())).collect()
        };
        let kept = keys(&abridged);
        let unique: HashSet<_> = kept.iter().cloned().collect();
        prop_assert_eq!(unique.len(), kept.len());
        prop_assert_eq!(unique, keys(&log).into_iter().collect::<HashSet<_>>());
        // Nothing is lost: removed events and what they carried are counted.
        let removed = (log.events.len() - abridged.events.len()) as u64;
        let carried = |l: &AuditLog| l.events.iter().map(|e| e.truncated.unwrap_or(0)).sum::<u64>();
        prop_assert_eq!(carried(&abridged), carried(&log) + removed);
        let t0 = log.truncation;
        let t1 = abridged.truncation;
        prop_assert_eq!(
            (t1.nonced_duplicates - t0.nonced_duplicates) + (t1.nonceless_duplicates - t0.nonceless_duplicates),
            removed
        );
        prop_assert_eq!(t1.arbitrary, t0.arbitrary);
        // The kept event is the latest of its key.
        for kept in &abridged.events {
            for e in &log.events {
                if e.domain_id == kept.domain_id && e.nonce.is_some() == kept.nonce.is_some() {
                    if let (Ok(a), Ok(b)) = (e.date_time(), kept.date_time()) {
                        prop_assert!(a <= b);
                    }
                }
            }
        }
        prop_assert_eq!(abridged.abridge(), abridged.clone());
    }

    #[test]
    fn logs_round_trip_through_json(log in log()) {
        let log = AuditLog {
            events: log.events.into_iter().filter(|e| e.date_time().is_ok()).collect(),
            ..log
        };
        prop_assert_eq!(AuditLog::from_json(&log.to_json().expect("encodes")).expect("decodes"), log);
    }
}
