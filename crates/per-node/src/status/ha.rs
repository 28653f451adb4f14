//! HA problems `/health` names, recorded by the HA threads.

/// HA problems that `/health` names (kind → whether critical, and the reason): a refused shared-log
/// group, a shared log run without authentication, another live node with this node's id.
#[derive(Debug, Default)]
pub struct HaAlerts {
    alerts: std::sync::Mutex<std::collections::BTreeMap<&'static str, (bool, String)>>,
    /// 0: not HA; 1: the shared log is sealed and authenticated; 2: `PER_HA_INSECURE_LOG=1`.
    log_auth: std::sync::atomic::AtomicU8,
}

impl HaAlerts {
    /// Records whether this HA node seals and authenticates the shared log.
    pub fn set_log_authenticated(&self, authenticated: bool) {
        self.log_auth.store(
            if authenticated { 1 } else { 2 },
            std::sync::atomic::Ordering::Release,
        );
    }

    /// `/health.shared_log`: `authenticated`, `unauthenticated` (the `PER_HA_INSECURE_LOG=1`
    /// opt-out), or none outside HA.
    pub fn shared_log(&self) -> Option<&'static str> {
        match self.log_auth.load(std::sync::atomic::Ordering::Acquire) {
            1 => Some("authenticated"),
            2 => Some("unauthenticated"),
            _ => None,
        }
    }

    /// Sets (or replaces) the alert of `kind`.
    pub fn set(&self, kind: &'static str, critical: bool, reason: String) {
        if let Ok(mut alerts) = self.alerts.lock() {
            alerts.insert(kind, (critical, reason));
        }
    }

    /// Clears the alert of `kind`.
    pub fn clear(&self, kind: &'static str) {
        if let Ok(mut alerts) = self.alerts.lock() {
            alerts.remove(kind);
        }
    }

    /// The alerts, in kind order.
    pub fn list(&self) -> Vec<(bool, String)> {
        self.alerts
            .lock()
            .map(|alerts| alerts.values().cloned().collect())
            .unwrap_or_default()
    }
}
