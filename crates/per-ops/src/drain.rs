//! The runbook's `drain_traffic.sh`: stop a node taking new writes (`POST /admin/drain`: new
//! writes answer 503 `Draining`, `/readyz` 503) and wait until the writes in flight are answered;
//! or resume (`POST /admin/resume`).

use crate::error::ProcedureError;
use crate::node_client::NodeClient;
use crate::report::Report;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `drain --json`: one of three shapes.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum DrainReport {
    /// `--resume`: the node takes writes again.
    Resumed {
        /// Always true.
        ok: bool,
        /// The node.
        url: String,
        /// Always false.
        draining: bool,
        /// Whether it was draining.
        was_draining: Value,
        /// Whether it accepts writes now.
        accepting_writes: Value,
    },
    /// Drained: no write in flight.
    Drained {
        /// Always true.
        ok: bool,
        /// The node.
        url: String,
        /// Always true.
        draining: bool,
        /// Always 0.
        queue_depth: u64,
        /// The node's seq.
        seq: Value,
        /// The node's role.
        role: Value,
        /// Seconds the drain took.
        drain_secs: f64,
    },
    /// Writes still in flight at the deadline.
    Unfinished {
        /// Always false.
        ok: bool,
        /// The node.
        url: String,
        /// Always true.
        draining: bool,
        /// Writes in flight.
        queue_depth: u64,
        /// The node's seq.
        seq: Value,
        /// Seconds waited.
        drain_secs: f64,
    },
}

/// Takes writes again (undoes a drain and a halt).
pub fn resume(node: &NodeClient) -> Result<Report, ProcedureError> {
    let body = node.post_admin("/admin/resume")?;
    let report = DrainReport::Resumed {
        ok: true,
        url: node.base().to_owned(),
        draining: false,
        was_draining: body["was_draining"].clone(),
        accepting_writes: body["accepting_writes"].clone(),
    };
    Report::typed(0, &report, format!("{} takes writes again", node.base()))
}

/// Drains, polling until `queue_depth` is 0; a report that fails with exit 1 when writes are
/// still in flight after `timeout_secs`.
pub fn drain(node: &NodeClient, timeout_secs: u64) -> Result<Report, ProcedureError> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(timeout_secs);
    let mut body = node.post_admin("/admin/drain")?;
    loop {
        let depth = body["queue_depth"].as_u64().unwrap_or(u64::MAX);
        if depth == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let report = DrainReport::Unfinished {
                ok: false,
                url: node.base().to_owned(),
                draining: true,
                queue_depth: depth,
                seq: body["seq"].clone(),
                drain_secs: started.elapsed().as_secs_f64(),
            };
            let human = format!(
                "{} still has {depth} writes in flight after {timeout_secs} s",
                node.base()
            );
            let mut report = Report::typed(1, &report, human)?;
            report.error = Some(format!(
                "drain of {} did not finish within {timeout_secs} s",
                node.base()
            ));
            return Ok(report);
        }
        std::thread::sleep(Duration::from_millis(100));
        body = node.post_admin("/admin/drain")?;
    }
    let secs = started.elapsed().as_secs_f64();
    let report = DrainReport::Drained {
        ok: true,
        url: node.base().to_owned(),
        draining: true,
        queue_depth: 0,
        seq: body["seq"].clone(),
        role: body["role"].clone(),
        drain_secs: secs,
    };
    Report::typed(
        0,
        &report,
        format!(
            "{} drained in {secs:.2} s at seq {}: no writes in flight, /readyz is 503 (per drain --resume to undo)",
            node.base(),
            body["seq"]
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_shape_serializes_as_before() {
        let drained = DrainReport::Drained {
            ok: true,
            url: "u".into(),
            draining: true,
            queue_depth: 0,
            seq: json!(5),
            role: json!("single"),
            drain_secs: 0.25,
        };
        assert_eq!(
            serde_json::to_value(&drained).unwrap(),
            json!({"ok": true, "url": "u", "draining": true, "queue_depth": 0, "seq": 5, "role": "single", "drain_secs": 0.25})
        );
        let resumed = DrainReport::Resumed {
            ok: true,
            url: "u".into(),
            draining: false,
            was_draining: json!(true),
            accepting_writes: Value::Null,
        };
        assert_eq!(
            serde_json::to_value(&resumed).unwrap(),
            json!({"ok": true, "url": "u", "draining": false, "was_draining": true, "accepting_writes": null})
        );
    }
}
