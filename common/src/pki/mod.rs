//! Certificates of the suite: profiles, issuing, CSRs, chain validation and the BRSKI
//! extensions (MASA URL, HardwareModuleName, `idevid-issuer`).

pub mod chain;
pub mod crl;
pub mod csr;
pub mod ext;
pub mod issue;
pub mod name;
pub mod profile;

pub use chain::{ChainError, TimeCheck, TrustPolicy, validate_chain};
pub use csr::{CsrError, CsrParams, build_csr, verify_csr};
pub use ext::{
    ExtError, domain_id, domain_id_base64, hardware_module_name, has_eku, idevid_issuer,
    masa_base_uri, masa_url, serial_number, spki_sha256,
};
pub use issue::{CertificateParams, NotAfter, PkiError, issue, self_signed};
pub use name::{NameError, build_name, name_from_parts, parse_name};

#[cfg(test)]
mod chain_tests;
