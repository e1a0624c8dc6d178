//! systemd service notification (`Type=notify`): READY, STATUS, WATCHDOG and STOPPING over
//! `$NOTIFY_SOCKET`. Without systemd these are no-ops.

use sd_notify::NotifyState;
use std::time::Duration;

/// Tell systemd the service is ready, with a status line.
pub fn ready(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Update the status line.
pub fn status(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Status(status)]);
}

/// Tell systemd the service is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// When systemd asked for a watchdog (`WatchdogSec=`), ping it at half the interval until the
/// runtime stops.
pub fn spawn_watchdog() {
    if let Some(interval) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) {
        let period: Duration = interval / 2;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            }
        });
    }
}
