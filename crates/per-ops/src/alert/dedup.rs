//! Deduplication: one trigger per (target, condition) while it holds, one resolve when it clears.
//!
//! The dedup key is `per-monitor:<target>:<condition>`: stable across monitor restarts, so a
//! restarted monitor re-triggering an open incident lands on the same PagerDuty incident. (A
//! condition that clears while no monitor runs is not resolved automatically.)

use super::severity::Severity;
use super::types::{Action, Alert};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A condition that holds now.
#[derive(Clone, Debug, PartialEq)]
pub struct Firing {
    /// Machine name, e.g. `unreachable`.
    pub condition: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// One human line.
    pub summary: String,
    /// Non-secret details.
    pub details: Map<String, Value>,
}

/// A condition that triggered and has not cleared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Active {
    /// The monitored URL.
    pub target: String,
    /// Machine name.
    pub condition: String,
    /// Severity.
    pub severity: Severity,
    /// Unix seconds of the trigger.
    pub since: u64,
    /// The incident's dedup key.
    pub dedup_key: String,
    /// The trigger's summary.
    pub summary: String,
    #[serde(skip)]
    details: Map<String, Value>,
}

/// The dedup key of a (target, condition).
pub fn dedup_key(target: &str, condition: &str) -> String {
    format!("per-monitor:{target}:{condition}")
}

/// Which conditions are active, per target.
#[derive(Debug, Default)]
pub struct Tracker {
    active: BTreeMap<(String, String), Active>,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Records one observation of `target`: `evaluated` are the conditions it could tell about,
    /// `firing` those of them that hold. Returns the alerts to send: a trigger for each newly
    /// firing condition and a resolve for each evaluated, active condition that no longer fires.
    /// Conditions not evaluated (e.g. every health condition while the target is unreachable) keep
    /// their state.
    pub fn observe(
        &mut self,
        target: &str,
        evaluated: &[&str],
        firing: Vec<Firing>,
        now_unix: u64,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let firing_names: Vec<&str> = firing.iter().map(|f| f.condition).collect();
        for condition in evaluated {
            if firing_names.contains(condition) {
                continue;
            }
            if let Some(active) = self
                .active
                .remove(&(target.to_owned(), (*condition).to_owned()))
            {
                let mut details = active.details.clone();
                details.insert(
                    "active_secs".to_owned(),
                    json!(now_unix.saturating_sub(active.since)),
                );
                alerts.push(Alert {
                    action: Action::Resolve,
                    severity: active.severity,
                    dedup_key: active.dedup_key,
                    source: target.to_owned(),
                    condition: active.condition,
                    summary: active.summary,
                    details,
                });
            }
        }
        for fire in firing {
            let key = (target.to_owned(), fire.condition.to_owned());
            if let Some(active) = self.active.get_mut(&key) {
                // Still firing: keep the latest details for the eventual resolve, send nothing.
                active.details = fire.details;
                continue;
            }
            let dedup_key = dedup_key(target, fire.condition);
            alerts.push(Alert {
                action: Action::Trigger,
                severity: fire.severity,
                dedup_key: dedup_key.clone(),
                source: target.to_owned(),
                condition: fire.condition.to_owned(),
                summary: fire.summary.clone(),
                details: fire.details.clone(),
            });
            self.active.insert(
                key,
                Active {
                    target: target.to_owned(),
                    condition: fire.condition.to_owned(),
                    severity: fire.severity,
                    since: now_unix,
                    dedup_key,
                    summary: fire.summary,
                    details: fire.details,
                },
            );
        }
        alerts
    }

    /// The active conditions, ordered by target then condition.
    pub fn active(&self) -> Vec<&Active> {
        self.active.values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &["unreachable", "status_critical", "snapshot_lag"];

    fn fire(condition: &'static str, severity: Severity) -> Firing {
        Firing {
            condition,
            severity,
            summary: format!("{condition} summary"),
            details: Map::new(),
        }
    }

    #[test]
    fn triggers_once_and_resolves_once() {
        let mut tracker = Tracker::new();
        assert!(tracker.observe("t", ALL, vec![], 0).is_empty());
        let alerts = tracker.observe(
            "t",
            &["unreachable"],
            vec![fire("unreachable", Severity::P1)],
            1,
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].action, Action::Trigger);
        assert_eq!(alerts[0].dedup_key, "per-monitor:t:unreachable");
        for now in 2..10 {
            let again = tracker.observe(
                "t",
                &["unreachable"],
                vec![fire("unreachable", Severity::P1)],
                now,
            );
            assert!(again.is_empty(), "no repeat while it holds");
        }
        assert_eq!(tracker.active().len(), 1);
        let alerts = tracker.observe("t", ALL, vec![], 12);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].action, Action::Resolve);
        assert_eq!(alerts[0].dedup_key, "per-monitor:t:unreachable");
        assert_eq!(alerts[0].details["active_secs"], json!(11));
        assert!(tracker.observe("t", ALL, vec![], 13).is_empty());
        assert!(tracker.active().is_empty());
    }

    #[test]
    fn unevaluated_conditions_keep_their_state_and_targets_are_separate() {
        let mut tracker = Tracker::new();
        let alerts = tracker.observe("a", ALL, vec![fire("snapshot_lag", Severity::P2)], 0);
        assert_eq!(alerts.len(), 1);
        // Unreachable: snapshot_lag is unknown, not resolved.
        let alerts = tracker.observe(
            "a",
            &["unreachable"],
            vec![fire("unreachable", Severity::P1)],
            1,
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(tracker.active().len(), 2);
        // Another target is independent.
        let alerts = tracker.observe("b", ALL, vec![fire("snapshot_lag", Severity::P2)], 1);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].dedup_key, "per-monitor:b:snapshot_lag");
        // Back and healthy: both of a's resolve.
        let alerts = tracker.observe("a", ALL, vec![], 2);
        assert_eq!(alerts.len(), 2);
        assert!(alerts.iter().all(|a| a.action == Action::Resolve));
        assert_eq!(tracker.active().len(), 1);
    }
}
