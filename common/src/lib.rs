//! BRSKI protocol core (RFC 8995 and its family), shared by the pledge, registrar and MASA.
//!
//! Organised by concept: [`voucher`] (data model and codecs), [`envelope`] (CMS, JWS and COSE
//! signing), [`keys`] (the [`keys::Signer`] trait), [`pki`] (certificates and chains), [`est`]
//! (RFC 7030 encodings), [`attest`] (TPM 2.0 evidence in a CSR), [`telemetry`] and [`audit`];
//! [`answer`] maps a step's outcome to HTTP and CoAP codes. Protocol logic takes bytes and
//! returns bytes or typed errors; sockets live in the daemons.
#![forbid(unsafe_code)]

pub mod answer;
pub mod attest;
pub mod audit;
pub mod brski;
#[cfg(feature = "cli")]
pub mod cli;
pub mod discovery;
pub mod envelope;
pub mod est;
pub mod input;
pub mod inspect;
pub mod jpy;
pub mod keys;
pub mod oid;
pub mod pki;
pub mod telemetry;
pub mod tls;
pub mod voucher;

#[doc(hidden)]
pub mod test_vectors;
