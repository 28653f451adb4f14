//! The runbook's `drain_traffic.sh`: stop a node taking new writes (`POST /admin/drain`: new
//! writes answer 503 `Draining`, `/readyz` 503) and wait until the writes in flight are answered;
//! or resume (`POST /admin/resume`).

use crate::error::ProcedureError;
use crate::node_client::NodeClient;
use crate::report::Report;
use serde_json::json;
use std::time::{Duration, Instant};

/// Takes writes again (undoes a drain and a halt).
pub fn resume(node: &NodeClient) -> Result<Report, ProcedureError> {
    let body = node.post_admin("/admin/resume")?;
    Ok(Report::with_exit(
        0,
        json!({
            "ok": true,
            "url": node.base(),
            "draining": false,
            "was_draining": body["was_draining"],
            "accepting_writes": body["accepting_writes"],
        }),
        format!("{} takes writes again", node.base()),
    ))
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
            return Ok(Report::failing(
                1,
                format!(
                    "drain of {} did not finish within {timeout_secs} s",
                    node.base()
                ),
                json!({
                    "ok": false,
                    "url": node.base(),
                    "draining": true,
                    "queue_depth": depth,
                    "seq": body["seq"],
                    "drain_secs": started.elapsed().as_secs_f64(),
                }),
                format!(
                    "{} still has {depth} writes in flight after {timeout_secs} s",
                    node.base()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
        body = node.post_admin("/admin/drain")?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Report::with_exit(
        0,
        json!({
            "ok": true,
            "url": node.base(),
            "draining": true,
            "queue_depth": 0,
            "seq": body["seq"],
            "role": body["role"],
            "drain_secs": secs,
        }),
        format!(
            "{} drained in {secs:.2} s at seq {}: no writes in flight, /readyz is 503 (per drain --resume to undo)",
            node.base(),
            body["seq"]
        ),
    ))
}
