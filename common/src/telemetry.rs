//! Status telemetry: voucher_status and enrollstatus (RFC 8995 §5.7, §5.9.4).
