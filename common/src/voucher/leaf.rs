//! The leaves of both containers, their YANG types and their SIDs (RFC 8366bis §8.5, §9.3:
//! the SID tables are normative), and the glue that lets one codec serve both containers.

use super::model::{Assertion, DateTime, ExtensionData, ExtensionId, Nonce};
use super::{DecodeError, VOUCHER_JSON_NAME, VOUCHER_REQUEST_JSON_NAME};

/// A leaf of the voucher or voucher-request container (RFC 8366bis §8.4, §9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Leaf {
    Assertion,
    CreatedOn,
    DomainCertRevocationChecks,
    ExpiresOn,
    IdevidIssuer,
    LastRenewalDate,
    Nonce,
    PinnedDomainCert,
    PinnedDomainPubk,
    PinnedDomainPubkSha256,
    SerialNumber,
    AdditionalConfigurationUrl,
    EstDomain,
    ManufacturerProprietary,
    Extensions,
    PriorSignedVoucherRequest,
    ProximityRegistrarCert,
    ProximityRegistrarPubkSha256,
    ProximityRegistrarPubk,
    AgentProvidedProximityRegistrarCert,
    AgentSignCert,
    AgentSignedData,
}

/// The YANG type of a leaf, as far as the encodings care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `enumeration` (the assertion).
    Assertion,
    /// `yang:date-and-time`.
    DateTime,
    Boolean,
    /// `binary`.
    Binary,
    /// `binary`, kept opaque (SPEC §2.3).
    Nonce,
    /// `string` and `inet:uri`.
    Text,
    /// leaf-list of `union { uint64; string }`.
    Extensions,
}

impl Leaf {
    /// Every leaf, voucher leaves first.
    pub const ALL: [Leaf; 22] = [
        Leaf::Assertion,
        Leaf::CreatedOn,
        Leaf::DomainCertRevocationChecks,
        Leaf::ExpiresOn,
        Leaf::IdevidIssuer,
        Leaf::LastRenewalDate,
        Leaf::Nonce,
        Leaf::PinnedDomainCert,
        Leaf::PinnedDomainPubk,
        Leaf::PinnedDomainPubkSha256,
        Leaf::SerialNumber,
        Leaf::AdditionalConfigurationUrl,
        Leaf::EstDomain,
        Leaf::ManufacturerProprietary,
        Leaf::Extensions,
        Leaf::PriorSignedVoucherRequest,
        Leaf::ProximityRegistrarCert,
        Leaf::ProximityRegistrarPubkSha256,
        Leaf::ProximityRegistrarPubk,
        Leaf::AgentProvidedProximityRegistrarCert,
        Leaf::AgentSignCert,
        Leaf::AgentSignedData,
    ];

    /// The YANG leaf name (also the RFC 7951 JSON member name).
    pub fn name(self) -> &'static str {
        match self {
            Leaf::Assertion => "assertion",
            Leaf::CreatedOn => "created-on",
            Leaf::DomainCertRevocationChecks => "domain-cert-revocation-checks",
            Leaf::ExpiresOn => "expires-on",
            Leaf::IdevidIssuer => "idevid-issuer",
            Leaf::LastRenewalDate => "last-renewal-date",
            Leaf::Nonce => "nonce",
            Leaf::PinnedDomainCert => "pinned-domain-cert",
            Leaf::PinnedDomainPubk => "pinned-domain-pubk",
            Leaf::PinnedDomainPubkSha256 => "pinned-domain-pubk-sha256",
            Leaf::SerialNumber => "serial-number",
            Leaf::AdditionalConfigurationUrl => "additional-configuration-url",
            Leaf::EstDomain => "est-domain",
            Leaf::ManufacturerProprietary => "manufacturer-proprietary",
            Leaf::Extensions => "extensions",
            Leaf::PriorSignedVoucherRequest => "prior-signed-voucher-request",
            Leaf::ProximityRegistrarCert => "proximity-registrar-cert",
            Leaf::ProximityRegistrarPubkSha256 => "proximity-registrar-pubk-sha256",
            Leaf::ProximityRegistrarPubk => "proximity-registrar-pubk",
            Leaf::AgentProvidedProximityRegistrarCert => "agent-provided-proximity-registrar-cert",
            Leaf::AgentSignCert => "agent-sign-cert",
            Leaf::AgentSignedData => "agent-signed-data",
        }
    }

    /// The leaf with YANG name `name`.
    pub fn from_name(name: &str) -> Option<Leaf> {
        Leaf::ALL.into_iter().find(|l| l.name() == name)
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Leaf::Assertion => Kind::Assertion,
            Leaf::CreatedOn | Leaf::ExpiresOn | Leaf::LastRenewalDate => Kind::DateTime,
            Leaf::DomainCertRevocationChecks => Kind::Boolean,
            Leaf::Nonce => Kind::Nonce,
            Leaf::SerialNumber | Leaf::AdditionalConfigurationUrl | Leaf::EstDomain => Kind::Text,
            Leaf::Extensions => Kind::Extensions,
            Leaf::IdevidIssuer
            | Leaf::PinnedDomainCert
            | Leaf::PinnedDomainPubk
            | Leaf::PinnedDomainPubkSha256
            | Leaf::ManufacturerProprietary
            | Leaf::PriorSignedVoucherRequest
            | Leaf::ProximityRegistrarCert
            | Leaf::ProximityRegistrarPubkSha256
            | Leaf::ProximityRegistrarPubk
            | Leaf::AgentProvidedProximityRegistrarCert
            | Leaf::AgentSignCert
            | Leaf::AgentSignedData => Kind::Binary,
        }
    }
}

/// SID of the module `ietf-voucher` (RFC 8366bis §8.5).
pub const VOUCHER_MODULE_SID: u64 = 2450;
/// SID of the container `/ietf-voucher:voucher` (RFC 8366bis §8.5).
pub const VOUCHER_SID: u64 = 2451;
/// SID of the module `ietf-voucher-request` (RFC 8366bis §9.3).
pub const VOUCHER_REQUEST_MODULE_SID: u64 = 2500;
/// SID of the container `/ietf-voucher-request:voucher` (RFC 8366bis §9.3).
pub const VOUCHER_REQUEST_SID: u64 = 2501;

/// The leaves of `/ietf-voucher:voucher` with their SIDs, in SID order (RFC 8366bis §8.5).
pub const VOUCHER_LEAF_SIDS: [(Leaf, u64); 15] = [
    (Leaf::Assertion, 2452),
    (Leaf::CreatedOn, 2453),
    (Leaf::DomainCertRevocationChecks, 2454),
    (Leaf::ExpiresOn, 2455),
    (Leaf::IdevidIssuer, 2456),
    (Leaf::LastRenewalDate, 2457),
    (Leaf::Nonce, 2458),
    (Leaf::PinnedDomainCert, 2459),
    (Leaf::PinnedDomainPubk, 2460),
    (Leaf::PinnedDomainPubkSha256, 2461),
    (Leaf::SerialNumber, 2462),
    (Leaf::AdditionalConfigurationUrl, 2463),
    (Leaf::EstDomain, 2464),
    (Leaf::ManufacturerProprietary, 2465),
    (Leaf::Extensions, 2466),
];

/// The leaves of `/ietf-voucher-request:voucher` with their SIDs, in SID order (RFC 8366bis
/// §9.3). Note `proximity-registrar-pubk-sha256` (2512) before `proximity-registrar-pubk`
/// (2513), and `pinned-domain-pubk*` appended at 2518/2519.
pub const VOUCHER_REQUEST_LEAF_SIDS: [(Leaf, u64); 22] = [
    (Leaf::Assertion, 2502),
    (Leaf::CreatedOn, 2503),
    (Leaf::DomainCertRevocationChecks, 2504),
    (Leaf::ExpiresOn, 2505),
    (Leaf::IdevidIssuer, 2506),
    (Leaf::LastRenewalDate, 2507),
    (Leaf::Nonce, 2508),
    (Leaf::PinnedDomainCert, 2509),
    (Leaf::PriorSignedVoucherRequest, 2510),
    (Leaf::ProximityRegistrarCert, 2511),
    (Leaf::ProximityRegistrarPubkSha256, 2512),
    (Leaf::ProximityRegistrarPubk, 2513),
    (Leaf::SerialNumber, 2514),
    (Leaf::AgentProvidedProximityRegistrarCert, 2515),
    (Leaf::AgentSignCert, 2516),
    (Leaf::AgentSignedData, 2517),
    (Leaf::PinnedDomainPubk, 2518),
    (Leaf::PinnedDomainPubkSha256, 2519),
    (Leaf::AdditionalConfigurationUrl, 2520),
    (Leaf::EstDomain, 2521),
    (Leaf::Extensions, 2522),
    (Leaf::ManufacturerProprietary, 2523),
];

/// What the codecs need to know about a container.
#[derive(Debug)]
pub(crate) struct Schema {
    /// The module-qualified JSON member name of the container.
    pub json_name: &'static str,
    /// The container's SID.
    pub sid: u64,
    /// The leaves and their SIDs, in SID order.
    pub leaves: &'static [(Leaf, u64)],
}

impl Schema {
    pub fn leaf_by_sid(&self, sid: u64) -> Option<Leaf> {
        self.leaves
            .iter()
            .find(|(_, s)| *s == sid)
            .map(|(leaf, _)| *leaf)
    }

    pub fn leaf_by_name(&self, name: &str) -> Option<Leaf> {
        self.leaves
            .iter()
            .find(|(leaf, _)| leaf.name() == name)
            .map(|(leaf, _)| *leaf)
    }
}

pub(crate) const VOUCHER_SCHEMA: Schema = Schema {
    json_name: VOUCHER_JSON_NAME,
    sid: VOUCHER_SID,
    leaves: &VOUCHER_LEAF_SIDS,
};

pub(crate) const VOUCHER_REQUEST_SCHEMA: Schema = Schema {
    json_name: VOUCHER_REQUEST_JSON_NAME,
    sid: VOUCHER_REQUEST_SID,
    leaves: &VOUCHER_REQUEST_LEAF_SIDS,
};

/// A decoded leaf value.
#[derive(Debug)]
pub(crate) enum LeafValue {
    Assertion(Assertion),
    DateTime(DateTime),
    Boolean(bool),
    Binary(Vec<u8>),
    Nonce(Nonce),
    Text(String),
    Extensions(Vec<ExtensionId>),
}

/// A leaf value borrowed for encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeafRef<'a> {
    Assertion(Assertion),
    DateTime(&'a DateTime),
    Boolean(bool),
    Binary(&'a [u8]),
    Nonce(&'a Nonce),
    Text(&'a str),
    Extensions(&'a [ExtensionId]),
}

/// A container the codecs can fill and read: [`super::Voucher`] or [`super::VoucherRequest`].
pub(crate) trait Container: Default {
    const SCHEMA: &'static Schema;

    /// Store a decoded value. The codecs decode by [`Leaf::kind`], so a value of another type
    /// cannot arrive; it is still reported rather than dropped.
    fn set(&mut self, leaf: Leaf, value: LeafValue) -> Result<(), DecodeError>;

    /// The present leaves, in any order.
    fn present(&self) -> Vec<(Leaf, LeafRef<'_>)>;

    fn extension_data(&self) -> &[ExtensionData];
    fn push_extension_data(&mut self, data: ExtensionData);

    /// The present leaves with their SIDs, in SID order (the order both encoders emit).
    fn leaves_in_sid_order(&self) -> Vec<(u64, Leaf, LeafRef<'_>)> {
        let present = self.present();
        Self::SCHEMA
            .leaves
            .iter()
            .filter_map(|(leaf, sid)| {
                present
                    .iter()
                    .find(|(l, _)| l == leaf)
                    .map(|(_, v)| (*sid, *leaf, *v))
            })
            .collect()
    }
}

/// The type mismatch error for `leaf` (see [`Container::set`]).
pub(crate) fn mismatch(leaf: Leaf) -> DecodeError {
    let expected = match leaf.kind() {
        Kind::Assertion => "an assertion",
        Kind::DateTime => "a date-and-time",
        Kind::Boolean => "a boolean",
        Kind::Binary | Kind::Nonce => "binary",
        Kind::Text => "a string",
        Kind::Extensions => "a list of extension identifiers",
    };
    DecodeError::WrongType {
        leaf: leaf.name(),
        expected,
    }
}

/// Tracks which leaves a container already had, to reject a leaf given twice under different
/// keys (a delta SID and its name, say): two values for one leaf make a signed artifact
/// ambiguous.
#[derive(Default)]
pub(crate) struct Seen(u32);

impl Seen {
    pub fn insert(&mut self, leaf: Leaf) -> Result<(), DecodeError> {
        let bit = 1u32 << (leaf as u32);
        if self.0 & bit != 0 {
            return Err(DecodeError::DuplicateLeaf(leaf.name()));
        }
        self.0 |= bit;
        Ok(())
    }

    pub fn contains(&self, leaf: Leaf) -> bool {
        self.0 & (1u32 << (leaf as u32)) != 0
    }
}
