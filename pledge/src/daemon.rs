//! `pledge run`: bootstrap when not enrolled, retrying with backoff (RFC 8995 §4.1: a new
//! nonce per attempt), then keep the LDevID renewed with `/simplereenroll` (RFC 7030 §4.2.2)
//! before it expires. Reports to systemd (READY, STATUS, WATCHDOG, STOPPING).

use crate::bootstrap::{self, anchored_credentials, describe};
use crate::discovery::Discovery;
use crate::enroll;
use crate::error::{Failure, Step};
use crate::identity::Identity;
use crate::session::Session;
use crate::state::{Enrollment, StateDir};
use crate::timing::Backoff;
use brski_common::brski::paths;
use brski_service::notify;
use const_oid::AssociatedOid;
use std::time::{Duration, SystemTime};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectAltName;

/// Options of `pledge run`.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Exit after the first successful enrollment (or at once when already enrolled).
    pub once: bool,
    /// Renew when this fraction of the LDevID's lifetime has passed.
    pub renew_at: f64,
    pub bootstrap: bootstrap::Options,
}

/// Retry delays while the registrar or the MASA is unreachable or answers 5xx.
const QUICK: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// Retry delays after a rejection (voucher or pin check failed, 4xx): RFC 8995 §4.1 backs off
/// to at most one hour.
const SLOW: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(3600));
/// Long sleeps are cut into pieces so that wall-clock changes (suspend, NTP) are noticed.
const SLEEP_SLICE: Duration = Duration::from_secs(300);

/// Run until SIGTERM/SIGINT (exit cleanly) or, with `once`, until enrolled.
pub async fn run(id: &Identity, options: &Options) -> Result<(), Failure> {
    notify::ready("starting");
    notify::spawn_watchdog();
    let result = tokio::select! {
        r = main_loop(id, options) => r,
        () = brski_service::shutdown_signal() => Ok(()),
    };
    notify::stopping();
    result
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

async fn sleep_until(at: SystemTime) {
    loop {
        let Ok(left) = at.duration_since(SystemTime::now()) else {
            return;
        };
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(SLEEP_SLICE)).await;
    }
}

async fn main_loop(id: &Identity, options: &Options) -> Result<(), Failure> {
    let state = StateDir::new(id.state_dir());
    state.ensure()?;
    let mut quick = Backoff::new(QUICK.0, QUICK.1);
    let mut slow = Backoff::new(SLOW.0, SLOW.1);
    // RFC 8995 §4.1: without a configured registrar, join proxies are found by discovery.
    let mut discovery = match id.discover {
        true => Some(Discovery::start(id.transport)?),
        false => None,
    };
    loop {
        state.recover()?;
        let enrollment = match state.load_enrollment(&id.serial, id.time_check()) {
            Ok(e) => e,
            Err(reason) => {
                tracing::info!(serial = %id.serial, %reason, "not enrolled; bootstrapping");
                notify::status("bootstrapping");
                let attempt = match discovery.as_mut() {
                    Some(d) => d.bootstrap(id, &state, &options.bootstrap).await,
                    None => bootstrap::attempt(id, &state, &options.bootstrap).await,
                };
                match attempt {
                    Ok(summary) => {
                        tracing::info!(serial = %id.serial, outcome = "enrolled", %summary, "bootstrap complete");
                        quick.reset();
                        slow.reset();
                        if options.once {
                            println!("{summary}");
                            return Ok(());
                        }
                    }
                    Err(f) if f.is_fatal() => return Err(f),
                    Err(f) => {
                        let delay = if f.is_transient() {
                            quick.next_delay()
                        } else {
                            slow.next_delay()
                        };
                        tracing::warn!(
                            serial = %id.serial,
                            registrar = %id.registrar_url,
                            outcome = "failed",
                            error = %f,
                            retry_in_ms = delay.as_millis() as u64,
                            "bootstrap failed"
                        );
                        notify::status(&format!(
                            "bootstrap failed ({f}); retrying in {} s",
                            delay.as_secs()
                        ));
                        tokio::time::sleep(delay).await;
                    }
                }
                continue;
            }
        };
        let (subject, issuer, not_after) = describe(&enrollment.ldevid);
        if options.once {
            println!(
                "already enrolled: serial {}, registrar {}, LDevID subject \"{subject}\" issued by \"{issuer}\", valid until {not_after}",
                id.serial, enrollment.state.registrar
            );
            return Ok(());
        }
        let due = enrollment.renewal_time(options.renew_at);
        tracing::info!(serial = %id.serial, step = "renew", outcome = "scheduled", due = %rfc3339(due), %not_after, "enrolled");
        notify::status(&format!("enrolled; renewal due {}", rfc3339(due)));
        sleep_until(due).await;
        let renewing = match discovery.as_mut() {
            Some(d) => match d.next().await {
                Some(proxy) => {
                    let (url, target) = crate::discovery::proxy_target(&proxy, id.transport);
                    renew(&id.via(url, target), &state, &enrollment, options).await
                }
                None => Err(Failure::Internal("discovery stopped".into())),
            },
            None => renew(id, &state, &enrollment, options).await,
        };
        match renewing {
            Ok(()) => {
                tracing::info!(serial = %id.serial, step = "renew", outcome = "renewed", "LDevID renewed");
                quick.reset();
                slow.reset();
            }
            Err(f) if f.is_fatal() => return Err(f),
            Err(f) => {
                let expiry = enrollment.not_after();
                let left = expiry
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    tracing::warn!(serial = %id.serial, error = %f, "LDevID expired before it could be renewed; bootstrapping again");
                    state.forget()?;
                    continue;
                }
                let delay = if f.is_transient() {
                    quick.next_delay()
                } else {
                    slow.next_delay()
                }
                .min(left);
                tracing::warn!(
                    serial = %id.serial,
                    step = "renew",
                    outcome = "failed",
                    error = %f,
                    retry_in_ms = delay.as_millis() as u64,
                    "renewal failed"
                );
                notify::status(&format!(
                    "renewal failed ({f}); retrying in {} s",
                    delay.as_secs()
                ));
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The subjectAltName of the current LDevID, to request again (RFC 7030 §4.2.2: the renewed
/// certificate keeps subject and subjectAltName).
fn san_extension(enrollment: &Enrollment) -> Vec<Extension> {
    enrollment
        .ldevid
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == SubjectAltName::OID)
        .cloned()
        .collect()
}

/// RFC 7030 §4.2.2: a new key and certificate, authenticated by the current LDevID, with the
/// registrar trusted through the domain CA; then `/enrollstatus` with the new LDevID. After a
/// lost answer the next attempt renews again from the same LDevID, which the registrar allows
/// until the new one is first used.
async fn renew(
    id: &Identity,
    state: &StateDir,
    enrollment: &Enrollment,
    options: &Options,
) -> Result<(), Failure> {
    let time = id.time_check();
    let tpm = id.ldevid_tpm();
    let current = enrollment.key.signer(tpm.map(|(tcti, _)| tcti))?;
    let credentials = anchored_credentials(
        &enrollment.chain_der()?,
        current.clone(),
        enrollment.domain_ca.clone(),
        time,
    );
    let mut session = Session::open(&id.registrar, id.transport, &credentials).await?;
    // With a TPM, the new key goes into the slot not in use: the current key keeps
    // authenticating until the new certificate is stored.
    let slot = tpm.map(|(_, handles)| {
        crate::tpm::next_slot(handles, enrollment.key.tpm_handle().unwrap_or(handles[1]))
    });
    let (key, signer) = bootstrap::new_ldevid_key(id, current.algorithm(), slot)?;
    let request = enroll::CsrRequest {
        subject: enrollment.ldevid.tbs_certificate().subject(),
        key: signer.as_ref(),
        extensions: san_extension(enrollment),
        // The registrar asks for evidence at enrollment only (SPEC §9).
        evidence: None,
    };
    tracing::info!(serial = %id.serial, step = "simplereenroll", "renewing the LDevID");
    let certs = enroll::enroll(
        &mut session,
        Step::SimpleReenroll,
        paths::SIMPLE_REENROLL,
        &request,
        options.bootstrap.max_wait,
    )
    .await?;
    let chain = enroll::check_issued(
        Step::SimpleReenroll,
        certs,
        signer.as_ref(),
        &enrollment.domain_ca,
        time,
    )?;
    state.commit_renewal(&key, &chain)?;
    // Only now is the old TPM key of no use (its certificate is replaced on disk).
    let old = enrollment
        .key
        .tpm_handle()
        .filter(|old| key.tpm_handle() != Some(*old));
    if let (Some((tcti, _)), Some(old)) = (tpm, old) {
        match crate::tpm::evict(tcti, old) {
            Ok(_) => {
                tracing::info!(serial = %id.serial, handle = %format_args!("{old:#010x}"), "old LDevID key evicted")
            }
            Err(e) => {
                tracing::warn!(serial = %id.serial, handle = %format_args!("{old:#010x}"), error = %e, "cannot evict the old LDevID key; the next renewal replaces it")
            }
        }
    }
    // The new LDevID's first use: the registrar revokes the old one from then on (RFC 7030
    // §4.2.2), and learns of the renewal (RFC 8995 §5.9.4).
    drop(session);
    match chain
        .iter()
        .map(der::Encode::to_der)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(chain_der) => {
            bootstrap::enroll_status_success(
                id,
                signer.clone(),
                &chain_der,
                enrollment.domain_ca.clone(),
                time,
            )
            .await
        }
        Err(e) => tracing::warn!(step = "enrollstatus", error = %e, "cannot report the renewal"),
    }
    Ok(())
}
