//! The registrar's Prometheus metrics (served by [`brski_service::metrics`] on
//! `metrics-listen`): voucher requests (RFC 8995 §5.5), enrollments and renewals (RFC 7030
//! §4.2) by transport and outcome, appraisals of attestation evidence (SPEC §9), pending
//! pledges (RFC 8995 §7.3), and MASA round trips (RFC 8995 §5.4); with the shared connection
//! and database families.

use crate::steps::{Outcome, Transport};
use brski_common::answer::Class;
use brski_service::metrics::prometheus_client::metrics::family::Family;
use brski_service::metrics::prometheus_client::metrics::gauge::Gauge;
use brski_service::metrics::prometheus_client::metrics::histogram::Histogram;
use brski_service::metrics::prometheus_client::registry::Registry;
use brski_service::metrics::{self, ConnMetrics, Counter2, DbMetrics, Label};
use std::sync::Arc;

/// MASA round-trip latency by resource and outcome.
pub type MasaLatency = Family<[Label; 2], Histogram, fn() -> Histogram>;

/// Every metric of one registrar, and the registry serving them.
#[derive(Clone, Debug)]
pub struct RegistrarMetrics {
    pub registry: Arc<Registry>,
    pub conns: ConnMetrics,
    pub db: DbMetrics,
    pub masa_latency: MasaLatency,
    voucher_requests: Counter2,
    enrollments: Counter2,
    renewals: Counter2,
    attestations: Counter2,
    pending_pledges: Gauge,
}

impl Default for RegistrarMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RegistrarMetrics {
    /// Every family registered in a new registry.
    pub fn new() -> Self {
        let mut registry = metrics::registry();
        let conns = ConnMetrics::register(&mut registry);
        let db = DbMetrics::register(&mut registry);
        let masa_latency: MasaLatency = Family::new_with_constructor(metrics::latency_histogram);
        registry.register(
            "registrar_masa_request_duration_seconds",
            "Round trip of one request to a MASA (RFC 8995 section 5.4), by resource and outcome",
            masa_latency.clone(),
        );
        let voucher_requests = Counter2::default();
        registry.register(
            "registrar_voucher_requests",
            "Pledge voucher requests (RFC 8995 section 5.2) by transport and outcome: issued, \
             pending, or the class of the refusal",
            voucher_requests.clone(),
        );
        let enrollments = Counter2::default();
        registry.register(
            "registrar_enrollments",
            "simpleenroll requests (RFC 7030 section 4.2.1) by transport and outcome",
            enrollments.clone(),
        );
        let renewals = Counter2::default();
        registry.register(
            "registrar_renewals",
            "simplereenroll requests (RFC 7030 section 4.2.2) by transport and outcome",
            renewals.clone(),
        );
        let attestations = Counter2::default();
        registry.register(
            "registrar_attestations",
            "Appraisals of the attestation evidence of CSRs, by the manufacturer's attestation \
             mode and result: accepted, or the check that failed",
            attestations.clone(),
        );
        let pending_pledges = Gauge::default();
        registry.register(
            "registrar_pending_pledges",
            "Pledges waiting for `registrar pledges allow` (RFC 8995 section 7.3)",
            pending_pledges.clone(),
        );
        Self {
            registry: Arc::new(registry),
            conns,
            db,
            masa_latency,
            voucher_requests,
            enrollments,
            renewals,
            attestations,
            pending_pledges,
        }
    }

    /// A voucher request over `transport` ended with `outcome`.
    pub fn voucher_request(&self, transport: Transport, outcome: &Outcome) {
        count(&self.voucher_requests, transport, outcome);
    }

    /// A `/simpleenroll` over `transport` ended with `outcome`.
    pub fn enrollment(&self, transport: Transport, outcome: &Outcome) {
        count(&self.enrollments, transport, outcome);
    }

    /// A `/simplereenroll` over `transport` ended with `outcome`.
    pub fn renewal(&self, transport: Transport, outcome: &Outcome) {
        count(&self.renewals, transport, outcome);
    }

    /// An appraisal under `mode` ended with `result`: `accepted`, or the stable name of the
    /// failed check (a closed set, `AttestError::check`).
    pub fn attestation(&self, mode: &'static str, result: &'static str) {
        self.attestations
            .get_or_create(&[("mode", mode), ("result", result)])
            .inc();
    }

    /// The number of pledges pending now.
    pub fn set_pending_pledges(&self, n: i64) {
        self.pending_pledges.set(n);
    }
}

fn count(family: &Counter2, transport: Transport, outcome: &Outcome) {
    family
        .get_or_create(&[
            ("transport", transport.as_str()),
            ("outcome", outcome_label(outcome)),
        ])
        .inc();
}

/// `issued`, `pending`, or the refusal's class: a closed set.
pub fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Done { .. } => "issued",
        Outcome::Pending { .. } => "pending",
        Outcome::Refused(r) => class_label(r.class),
    }
}

fn class_label(class: Class) -> &'static str {
    match class {
        Class::Content | Class::Changed => "done",
        Class::Pending => "pending",
        Class::BadRequest => "bad-request",
        Class::Unauthorized => "unauthorized",
        Class::Forbidden => "forbidden",
        Class::NotFound => "not-found",
        Class::NotAcceptable => "not-acceptable",
        Class::PayloadTooLarge => "payload-too-large",
        Class::UnsupportedContentFormat => "unsupported-content-format",
        Class::TooManyRequests => "too-many-requests",
        Class::Internal => "internal-error",
        Class::BadGateway => "bad-gateway",
        Class::ServiceUnavailable => "service-unavailable",
    }
}
