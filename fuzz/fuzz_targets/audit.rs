//! The MASA's audit log (RFC 8995 §5.8.1) as the registrar receives it; what decodes
//! re-encodes to the same log.
#![no_main]
use brski_common::audit::AuditLog;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(log) = AuditLog::from_json(data) {
        for event in &log.events {
            let _ = event.date_time();
            let _ = event.domain_id_bytes();
        }
        let _ = log.abridge();
        let json = log.to_json().expect("a decoded log encodes");
        let again = AuditLog::from_json(&json).expect("a re-encoded log decodes");
        assert_eq!(log, again);
    }
});
