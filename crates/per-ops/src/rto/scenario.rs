//! The four faults an RTO run injects, with our pass limits and the runbook's targets (a leaf:
//! the scenarios and the report both name them).

/// Which fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// SIGTERM and start again.
    Restart,
    /// SIGKILL under load and start again.
    Crash,
    /// Stop; corrupt the newest snapshot and flip a byte in the middle of the live WAL segment,
    /// so the node refuses to start; then the runbook's Scenario 2: `find-valid-snapshot`,
    /// `replay-wal --from-snapshot latest --force`, start. Acknowledged transactions after the
    /// damage are lost (the runbook allows it): reported as RPO.
    Corruption,
    /// A `capture-snapshot --output` copy is taken mid-load, outside the data dir; the node is
    /// killed and the whole data dir deleted; `restore-snapshot --file <copy> --force` into an
    /// empty data dir, start. RPO = the transactions acknowledged after the copy.
    Disaster,
}

impl Scenario {
    /// All four, in the order `--scenario all` runs them.
    pub const ALL: [Scenario; 4] = [
        Scenario::Restart,
        Scenario::Crash,
        Scenario::Corruption,
        Scenario::Disaster,
    ];

    /// The name in flags, reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Restart => "restart",
            Scenario::Crash => "crash",
            Scenario::Corruption => "corruption",
            Scenario::Disaster => "disaster",
        }
    }

    /// Our pass limit in seconds (tighter than the runbook's targets).
    pub fn limit_secs(self) -> f64 {
        match self {
            Scenario::Restart => 2.0,
            Scenario::Crash => 10.0,
            Scenario::Corruption => 60.0,
            Scenario::Disaster => 3600.0,
        }
    }

    /// The runbook's target ("Recovery Time Objectives").
    pub fn runbook_target(self) -> &'static str {
        match self {
            Scenario::Restart => "< 1 min",
            Scenario::Crash => "< 5 min",
            Scenario::Corruption => "< 15 min",
            Scenario::Disaster => "< 1 hour",
        }
    }

    /// Whether acknowledged transactions may be lost.
    pub fn loss_allowed(self) -> bool {
        matches!(self, Scenario::Corruption | Scenario::Disaster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_tighter_than_the_runbook_and_only_data_faults_may_lose() {
        assert_eq!(
            Scenario::ALL.map(Scenario::name),
            ["restart", "crash", "corruption", "disaster"]
        );
        assert_eq!(Scenario::Restart.limit_secs(), 2.0);
        assert!(!Scenario::Crash.loss_allowed());
        assert!(Scenario::Disaster.loss_allowed());
    }
}
