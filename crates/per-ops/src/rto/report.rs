//! What an RTO run reports: per scenario the measured RTO and RPO against our limit and the
//! runbook's target ([`Outcome`]), as a Markdown table or JSON.

use super::error::{RtoError, error_chain};
use super::scenario::Scenario;
use serde_json::{Value, json};

/// What one scenario measured.
#[derive(Debug, Default)]
pub struct Measured {
    /// Fault → `/readyz` 200, seconds.
    pub rto_secs: f64,
    /// Transactions acknowledged by the load.
    pub acked: usize,
    /// Acknowledged transactions whose receipt is gone after recovery (the RPO).
    pub lost: usize,
    /// Requests of the load that got no acknowledgement.
    pub load_errors: u64,
    /// What was done and seen, for the operator.
    pub notes: Vec<String>,
}

/// One scenario's verdict.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario.
    pub scenario: Scenario,
    /// What it measured (`None`: it could not be run to the end).
    pub measured: Option<Measured>,
    /// Why it could not be run to the end.
    pub error: Option<String>,
    /// RTO within our limit, no loss where none is allowed, and something was acknowledged.
    pub passed: bool,
}

impl Outcome {
    /// The verdict of `result`.
    pub fn of(scenario: Scenario, result: Result<Measured, RtoError>) -> Outcome {
        match result {
            Ok(measured) => {
                let passed = measured.rto_secs <= scenario.limit_secs()
                    && (scenario.loss_allowed() || measured.lost == 0)
                    && measured.acked > 0;
                Outcome {
                    scenario,
                    measured: Some(measured),
                    error: None,
                    passed,
                }
            }
            Err(e) => Outcome {
                scenario,
                measured: None,
                error: Some(error_chain(&e)),
                passed: false,
            },
        }
    }

    /// `{scenario, rto_secs, target_rto_secs, runbook_target, rpo_txs, passed, acked_txs?,
    /// load_errors?, notes?, error?}`.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "scenario": self.scenario.name(),
            "rto_secs": self.measured.as_ref().map(|m| round3(m.rto_secs)),
            "target_rto_secs": self.scenario.limit_secs(),
            "runbook_target": self.scenario.runbook_target(),
            "rpo_txs": self.measured.as_ref().map(|m| m.lost),
            "passed": self.passed,
        });
        if let Some(m) = &self.measured {
            value["acked_txs"] = json!(m.acked);
            value["load_errors"] = json!(m.load_errors);
            value["notes"] = json!(m.notes);
        }
        if let Some(error) = &self.error {
            value["error"] = json!(error);
        }
        value
    }
}

/// The JSON document of a run: one object for one scenario, else an array.
pub fn to_json(results: &[Outcome]) -> Value {
    let mut values: Vec<Value> = results.iter().map(Outcome::to_json).collect();
    if values.len() == 1 {
        values.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(values)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The Markdown table of a run, then each scenario's notes and error.
pub fn table(results: &[Outcome]) -> String {
    let mut out = String::from(
        "| Scenario | Target RTO (runbook) | Our limit | Measured RTO | Data loss (RPO) | Passed |\n\
         |----------|----------------------|-----------|--------------|-----------------|--------|\n",
    );
    for r in results {
        let (rto, rpo) = match &r.measured {
            Some(m) => (
                format!("{:.2} s", m.rto_secs),
                format!("{} txs (of {} acked)", m.lost, m.acked),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        out.push_str(&format!(
            "| {} | {} | {} s | {} | {} | {} |\n",
            r.scenario.name(),
            r.scenario.runbook_target(),
            r.scenario.limit_secs(),
            rto,
            rpo,
            if r.passed { "yes" } else { "NO" }
        ));
    }
    for r in results {
        if let Some(m) = &r.measured {
            for note in &m.notes {
                out.push_str(&format!("{}: {note}\n", r.scenario.name()));
            }
        }
        if let Some(error) = &r.error {
            out.push_str(&format!("{}: error: {error}\n", r.scenario.name()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_json_and_table() {
        let crash = Outcome::of(
            Scenario::Crash,
            Ok(Measured {
                rto_secs: 1.23456,
                acked: 10,
                lost: 1,
                ..Measured::default()
            }),
        );
        assert!(
            !crash.passed,
            "a crash may not lose an acknowledged transaction"
        );
        let disaster = Outcome::of(
            Scenario::Disaster,
            Ok(Measured {
                rto_secs: 5.0,
                acked: 10,
                lost: 3,
                notes: vec!["copied".to_owned()],
                ..Measured::default()
            }),
        );
        assert!(disaster.passed);
        let failed = Outcome::of(
            Scenario::Restart,
            Err(RtoError::io("cannot create /x")(std::io::Error::other(
                "denied",
            ))),
        );
        assert_eq!(failed.error.as_deref(), Some("cannot create /x: denied"));
        let one = to_json(std::slice::from_ref(&crash));
        assert_eq!(one["rto_secs"], 1.235);
        assert_eq!(one["rpo_txs"], 1);
        assert_eq!(one["passed"], false);
        let all = to_json(&[crash, disaster, failed]);
        assert_eq!(all.as_array().map(Vec::len), Some(3));
        assert_eq!(all[2]["rto_secs"], Value::Null);
        assert!(all[2].get("acked_txs").is_none());
        let text = table(&[Outcome::of(
            Scenario::Restart,
            Err(RtoError::Problem("boom".into())),
        )]);
        assert!(
            text.contains("| restart | < 1 min | 2 s | - | - | NO |"),
            "{text}"
        );
        assert!(text.ends_with("restart: error: boom\n"), "{text}");
    }
}
