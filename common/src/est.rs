//! EST message encodings (RFC 7030, RFC 8951).
