//! The monitor's rules (runbook `scripts/monitor.sh`, `checkHealth`): what a target is, one poll
//! of its `/health` ([`probe`]), and which conditions that poll fires ([`evaluate`]).
//!
//! Conditions per target (each its own incident, dedup key `per-monitor:<target>:<condition>`):
//! - `unreachable` (P1): connection error, timeout, or an answer that is not a `/health` document;
//!   HTTP 503 *with* a health body is the node saying `critical`, not unreachable;
//! - `status_critical` (P1) / `status_degraded` (P2): the node's own `status`;
//! - `snapshot_lag` (P2): `snapshot_lag` above the threshold (runbook: 5 min);
//! - `tee_attestation` (P1): `tee_attestation_valid == false`, only when attestation is required
//!   (the node's attestation provider `none` is development mode and always reports false).
//!
//! While a target is unreachable its health conditions are unknown and keep their state.

use crate::alert::dedup::Firing;
use crate::alert::{Severity, error_chain};
use per_wire::health::{HealthReport, HealthStatus};
use serde_json::{Map, Value, json};

/// Every condition a health document answers for.
pub const HEALTH_CONDITIONS: &[&str] = &[
    "unreachable",
    "status_critical",
    "status_degraded",
    "snapshot_lag",
    "tee_attestation",
];
/// The only condition an unreachable target answers for.
pub const UNREACHABLE_ONLY: &[&str] = &["unreachable"];
/// Fields of `/health` copied into alerts (never anything else).
pub const HEALTH_FIELDS: &[&str] = &[
    "status",
    "reasons",
    "snapshot_lag",
    "pending_tx_count",
    "last_heartbeat",
    "last_settlement",
    "tee_attestation_valid",
    "tee_attestation",
    "role",
    "epoch",
    "seq",
    "version",
    "wal_writer",
    "accepting_writes",
    "settlement",
];

/// A target: the URL polled and the name alerts carry (no credentials, query or fragment).
#[derive(Clone, Debug)]
pub struct Target {
    /// The name alerts carry: `scheme://host[:port][/path]`, no credentials, query or fragment.
    pub name: String,
    /// `<url>/health`.
    pub health_url: reqwest::Url,
}

/// A `--target` that is not an http(s) URL with a host (a usage error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

/// Parses a target: `host:port` means `http://host:port`.
pub fn parse_target(text: &str) -> Result<Target, TargetError> {
    let trimmed = text.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| TargetError(format!("--target {text:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(TargetError(format!(
            "--target {text:?} must be an http:// or https:// URL with a host"
        )));
    }
    let mut shown = url.clone();
    // Errors mean the URL cannot carry credentials at all; nothing to strip then.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    let name = shown.as_str().trim_end_matches('/').to_owned();
    let mut health_url = url;
    let path = format!("{}/health", health_url.path().trim_end_matches('/'));
    health_url.set_path(&path);
    Ok(Target { name, health_url })
}

/// What one poll saw.
#[derive(Debug)]
pub enum Observation {
    /// No `/health` document: the error (never a URL with secrets).
    Unreachable(String),
    /// A `/health` document and the HTTP status it came with.
    Health {
        /// HTTP status (503 for `critical`).
        http_status: u16,
        /// The document.
        report: Box<HealthReport>,
    },
}

/// Polls `target`'s `/health` once.
pub async fn probe(http: &reqwest::Client, target: &Target) -> Observation {
    let response = match http.get(target.health_url.clone()).send().await {
        Ok(response) => response,
        Err(error) => {
            let error = error.without_url();
            let text = if error.is_timeout() {
                "timed out".to_owned()
            } else {
                error_chain(&error)
            };
            return Observation::Unreachable(text);
        }
    };
    let http_status = response.status().as_u16();
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => return Observation::Unreachable(error_chain(&error.without_url())),
    };
    match serde_json::from_str::<HealthReport>(&text) {
        Ok(report) => Observation::Health {
            http_status,
            report: Box::new(report),
        },
        Err(_) => {
            Observation::Unreachable(format!("HTTP {http_status} without a /health document"))
        }
    }
}

/// The thresholds of the conditions.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// `snapshot_lag` above this is a P2 alert (runbook: 5 minutes).
    pub snapshot_lag_secs_max: u64,
    /// Page (P1) when `tee_attestation_valid` is false.
    pub require_attestation: bool,
}

/// The conditions `observation` tells about, and those that fire.
pub fn evaluate(
    target: &str,
    observation: &Observation,
    rules: Rules,
) -> (&'static [&'static str], Vec<Firing>) {
    match observation {
        Observation::Unreachable(error) => {
            let mut details = Map::new();
            details.insert("error".to_owned(), json!(error));
            let firing = Firing {
                condition: "unreachable",
                severity: Severity::P1,
                summary: format!("per executor unreachable at {target}"),
                details,
            };
            (UNREACHABLE_ONLY, vec![firing])
        }
        Observation::Health {
            http_status,
            report,
        } => {
            let mut details = Map::new();
            details.insert("http_status".to_owned(), json!(http_status));
            // The report as the node sent it (the same type serializes it there).
            let body = serde_json::to_value(report.as_ref()).unwrap_or(Value::Null);
            for field in HEALTH_FIELDS {
                if let Some(value) = body.get(*field) {
                    details.insert((*field).to_owned(), value.clone());
                }
            }
            let reasons = Some(report.reasons.join("; ")).filter(|r| !r.is_empty());
            let because = reasons.map(|r| format!(": {r}")).unwrap_or_default();
            let mut firing = Vec::new();
            match report.status {
                HealthStatus::Critical => firing.push(Firing {
                    condition: "status_critical",
                    severity: Severity::P1,
                    summary: format!("per health check failed: critical at {target}{because}"),
                    details: details.clone(),
                }),
                HealthStatus::Degraded => firing.push(Firing {
                    condition: "status_degraded",
                    severity: Severity::P2,
                    summary: format!("per health check failed: degraded at {target}{because}"),
                    details: details.clone(),
                }),
                HealthStatus::Healthy => {}
            }
            let lag = report.snapshot_lag;
            if lag > rules.snapshot_lag_secs_max {
                let mut lag_details = details.clone();
                lag_details.insert("lag_seconds".to_owned(), json!(lag));
                lag_details.insert(
                    "threshold_seconds".to_owned(),
                    json!(rules.snapshot_lag_secs_max),
                );
                firing.push(Firing {
                    condition: "snapshot_lag",
                    severity: Severity::P2,
                    summary: format!(
                        "snapshot lag {lag} s exceeds {} s at {target}",
                        rules.snapshot_lag_secs_max
                    ),
                    details: lag_details,
                });
            }
            if rules.require_attestation && !report.tee_attestation_valid {
                let mut tee_details = details.clone();
                tee_details.insert(
                    "action_required".to_owned(),
                    json!("Investigate TEE validity (runbook: Service Halt)"),
                );
                firing.push(Firing {
                    condition: "tee_attestation",
                    severity: Severity::P1,
                    summary: format!("TEE attestation check failed at {target}"),
                    details: tee_details,
                });
            }
            (HEALTH_CONDITIONS, firing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_target("127.0.0.1:8080").unwrap();
        assert_eq!(t.name, "http://127.0.0.1:8080");
        assert_eq!(t.health_url.as_str(), "http://127.0.0.1:8080/health");
        let t = parse_target("https://user:pw@per.example.com/api/?token=x").unwrap();
        assert_eq!(t.name, "https://per.example.com/api");
        assert_eq!(t.health_url.path(), "/api/health");
        assert!(parse_target("ftp://x").is_err());
    }

    fn health(body: Value, http_status: u16) -> Observation {
        Observation::Health {
            http_status,
            report: Box::new(serde_json::from_value(body).unwrap()),
        }
    }

    const RULES: Rules = Rules {
        snapshot_lag_secs_max: 300,
        require_attestation: false,
    };

    #[test]
    fn conditions_from_health() {
        let (_, firing) = evaluate(
            "t",
            &health(
                json!({"status": "healthy", "snapshot_lag": 10, "tee_attestation_valid": false}),
                200,
            ),
            RULES,
        );
        assert!(firing.is_empty(), "attestation is not required by default");
        let (_, firing) = evaluate(
            "t",
            &health(
                json!({"status": "critical", "reasons": ["halted"], "snapshot_lag": 301}),
                503,
            ),
            RULES,
        );
        let names: Vec<_> = firing.iter().map(|f| (f.condition, f.severity)).collect();
        assert_eq!(
            names,
            vec![
                ("status_critical", Severity::P1),
                ("snapshot_lag", Severity::P2)
            ]
        );
        assert!(firing[0].summary.contains("halted"));
        let (_, firing) = evaluate(
            "t",
            &health(
                json!({"status": "degraded", "tee_attestation_valid": false}),
                200,
            ),
            Rules {
                require_attestation: true,
                ..RULES
            },
        );
        let names: Vec<_> = firing.iter().map(|f| (f.condition, f.severity)).collect();
        assert_eq!(
            names,
            vec![
                ("status_degraded", Severity::P2),
                ("tee_attestation", Severity::P1)
            ]
        );
        let (evaluated, firing) = evaluate("t", &Observation::Unreachable("refused".into()), RULES);
        assert_eq!(evaluated, UNREACHABLE_ONLY);
        assert_eq!(firing[0].severity, Severity::P1);
    }
}
