//! The alert and the channel contract every channel file implements (a leaf of `alert/`: the
//! channels, the transport helpers and delivery import it, it imports only the severities).

use super::severity::{ChannelKind, Severity};
use serde::Serialize;
use serde_json::{Map, Value};
use std::future::Future;
use std::time::Duration;

/// Longest `summary` we send (PagerDuty's limit is 1024 characters).
pub const SUMMARY_CHARS_MAX: usize = 1000;

/// Whether an alert opens or closes an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A condition started (PagerDuty `trigger`).
    Trigger,
    /// The condition cleared (PagerDuty `resolve`, "RESOLVED" elsewhere).
    Resolve,
}

/// One alert, as every channel receives it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Trigger or resolve.
    pub action: Action,
    /// P1, P2 or P3.
    pub severity: Severity,
    /// Identifies the incident: the same key triggers once and resolves it.
    pub dedup_key: String,
    /// Where it happened: the monitored URL (without credentials or query), or a host name.
    pub source: String,
    /// What happened, as a short machine name (`unreachable`, `status_critical`, `incident`, …).
    pub condition: String,
    /// One human line (without the severity or RESOLVED prefix).
    pub summary: String,
    /// Non-secret details: status, reasons, lag, seq, role, version, error text.
    pub details: Map<String, Value>,
}

impl Alert {
    /// `[P1] summary` or `RESOLVED [P1] summary`, cut to [`SUMMARY_CHARS_MAX`].
    pub fn headline(&self) -> String {
        let line = match self.action {
            Action::Trigger => format!("[{}] {}", self.severity, self.summary),
            Action::Resolve => format!("RESOLVED [{}] {}", self.severity, self.summary),
        };
        truncate(&line, SUMMARY_CHARS_MAX)
    }

    /// `key: value` lines of the details (strings unquoted, lists joined with "; ").
    pub fn detail_lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("source: {}", self.source),
            format!("condition: {}", self.condition),
            format!("severity: {}", self.severity),
        ];
        for (key, value) in &self.details {
            lines.push(format!("{key}: {}", value_text(value)));
        }
        lines
    }
}

/// A value as plain text: strings without quotes, arrays joined with "; ".
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join("; "),
        Value::Null => "none".to_owned(),
        other => other.to_string(),
    }
}

/// `text` cut to at most `chars_max` characters (an ellipsis marks the cut).
pub fn truncate(text: &str, chars_max: usize) -> String {
    if text.chars().count() <= chars_max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(chars_max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Why a delivery failed, and whether trying again may help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// What went wrong (never a secret).
    pub message: String,
    /// A transport error, timeout, 429 or 5xx: worth retrying.
    pub retryable: bool,
    /// The receiver's `Retry-After`, if any.
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure retrying cannot fix (4xx other than 429, a rejected address…).
    pub fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }
}

/// An alert channel.
pub trait Channel: Send + Sync {
    /// Which kind of channel this is.
    fn kind(&self) -> ChannelKind;

    /// Where it delivers, without secrets (for the start-up report).
    fn describe(&self) -> String;

    /// Delivers one alert once (retries are the caller's: `alert::deliver`).
    fn send(&self, alert: &Alert) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

/// A configuration problem of the alert variables (exit code 2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("alert configuration: {0}")]
pub struct AlertConfigError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_marks_resolves() {
        let mut alert = Alert {
            action: Action::Trigger,
            severity: Severity::P1,
            dedup_key: "k".into(),
            source: "http://n".into(),
            condition: "unreachable".into(),
            summary: "per unreachable".into(),
            details: Map::new(),
        };
        assert_eq!(alert.headline(), "[P1] per unreachable");
        alert.action = Action::Resolve;
        assert_eq!(alert.headline(), "RESOLVED [P1] per unreachable");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
