//! The MASA audit log (RFC 8995 §5.8.1).
