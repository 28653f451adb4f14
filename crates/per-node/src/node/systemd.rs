//! systemd's notification protocol for `per serve` (`Type=notify`, see
//! `deploy/systemd/noirwire-per.service`), with the `sd-notify` crate:
//!
//! - `STATUS=recovering…` before the WAL replay (start-up can take a while on a long WAL);
//! - `READY=1` only once recovery is done and the API socket is bound;
//! - `WATCHDOG=1` from the node's heartbeat (every second) while the node is healthy — not after a
//!   WAL failure or a lost lease, so systemd restarts a stuck node — only when `WATCHDOG_USEC` is
//!   set (and `WATCHDOG_PID`, when set, is ours);
//! - `STOPPING=1` when a graceful shutdown begins.
//!
//! Every call is a no-op without `NOTIFY_SOCKET`; failures are logged at debug level and ignored.

use crate::node::shared::Shared;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::debug!(%error, "sd_notify failed");
    }
}

/// `STATUS=<text>`.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// `READY=1` with a status naming the address.
pub fn ready(listen: std::net::SocketAddr) {
    let text = format!("serving on {listen}");
    send(&[NotifyState::Ready, NotifyState::Status(&text)]);
}

/// `STOPPING=1`.
pub fn stopping(reason: &str) {
    let text = format!("stopping: {reason}");
    send(&[NotifyState::Stopping, NotifyState::Status(&text)]);
}

/// The watchdog period asked for by systemd: `WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or
/// names this process (as `sd_watchdog_enabled(3)`).
pub fn watchdog_usec() -> Option<u64> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.trim().parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(usec),
    }
}

/// Pings systemd's watchdog from the heartbeat while the node is healthy.
pub struct Watchdog {
    shared: Option<Arc<Shared>>,
}

impl Watchdog {
    /// Enabled when systemd asked for a watchdog.
    pub fn from_env(shared: Arc<Shared>) -> Watchdog {
        let enabled = watchdog_usec();
        if let Some(usec) = enabled {
            tracing::info!(watchdog_usec = usec, "systemd watchdog enabled");
        }
        Watchdog {
            shared: enabled.map(|_| shared),
        }
    }

    /// `WATCHDOG=1`, unless the node is poisoned or fenced.
    pub fn ping(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        if shared.flags.poisoned.load(Ordering::Acquire) || shared.is_fenced() {
            return;
        }
        send(&[NotifyState::Watchdog]);
    }
}
