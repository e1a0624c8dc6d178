//! Voucher and voucher-request data model (RFC 8366bis §8, §9) with JSON (RFC 7951) and
//! CBOR (YANG-SID, RFC 9254) codecs. Pure data, no crypto.
