//! PagerDuty Events API v2: `POST {routing_key, event_action: trigger|resolve, dedup_key, payload}`
//! to `PER_PAGERDUTY_URL` (default the public enqueue URL); success is HTTP 202 (any 2xx is
//! accepted). A resolve carries the trigger's `dedup_key`, which closes the incident.

use super::severity::ChannelKind;
use super::transport::{parse_http_url, post_json_expect_2xx, url_origin};
use super::types::{Action, Alert, AlertConfigError, Channel, DeliveryError};
use serde_json::{Value, json};

/// PagerDuty's Events API v2 enqueue URL.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The PagerDuty channel.
pub struct PagerDuty {
    routing_key: String,
    url: reqwest::Url,
    http: reqwest::Client,
}

impl std::fmt::Debug for PagerDuty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDuty")
            .field("url", &url_origin(&self.url))
            .finish_non_exhaustive()
    }
}

impl PagerDuty {
    /// On when the routing key is set; the URL alone is a configuration error.
    pub fn from_settings(
        routing_key: Option<String>,
        url: Option<String>,
        http: reqwest::Client,
    ) -> Result<Option<PagerDuty>, AlertConfigError> {
        let Some(routing_key) = routing_key else {
            if url.is_some() {
                return Err(AlertConfigError(
                    "PER_PAGERDUTY_URL is set but PER_PAGERDUTY_ROUTING_KEY is not".to_owned(),
                ));
            }
            return Ok(None);
        };
        let url = parse_http_url("PER_PAGERDUTY_URL", url.as_deref().unwrap_or(DEFAULT_URL))?;
        Ok(Some(PagerDuty {
            routing_key,
            url,
            http,
        }))
    }

    /// The Events API v2 body of `alert`.
    pub fn body(&self, alert: &Alert) -> Value {
        event_body(&self.routing_key, alert)
    }
}

/// The Events API v2 body: a trigger has the full payload; a resolve only needs the key.
pub fn event_body(routing_key: &str, alert: &Alert) -> Value {
    match alert.action {
        Action::Trigger => json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": alert.dedup_key,
            "payload": {
                "summary": alert.headline(),
                "source": alert.source,
                "severity": alert.severity.pagerduty(),
                "component": "per",
                "class": alert.condition,
                "custom_details": alert.details,
            },
        }),
        Action::Resolve => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": alert.dedup_key,
        }),
    }
}

impl Channel for PagerDuty {
    fn kind(&self) -> ChannelKind {
        ChannelKind::PagerDuty
    }

    fn describe(&self) -> String {
        format!("Events API v2 at {}", url_origin(&self.url))
    }

    async fn send(&self, alert: &Alert) -> Result<(), DeliveryError> {
        post_json_expect_2xx(
            &self.http,
            &self.url,
            &self.body(alert),
            ChannelKind::PagerDuty,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use serde_json::Map;

    #[test]
    fn trigger_and_resolve_bodies() {
        let mut details = Map::new();
        details.insert("status".into(), json!("critical"));
        let mut alert = Alert {
            action: Action::Trigger,
            severity: Severity::P2,
            dedup_key: "per-monitor:http://n:status_degraded".into(),
            source: "http://n".into(),
            condition: "status_degraded".into(),
            summary: "per health degraded at http://n".into(),
            details,
        };
        let body = event_body("key", &alert);
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["routing_key"], "key");
        assert_eq!(body["payload"]["severity"], "warning");
        assert_eq!(body["payload"]["source"], "http://n");
        assert_eq!(body["payload"]["custom_details"]["status"], "critical");
        alert.action = Action::Resolve;
        let body = event_body("key", &alert);
        assert_eq!(body["event_action"], "resolve");
        assert_eq!(body["dedup_key"], "per-monitor:http://n:status_degraded");
        assert!(body.get("payload").is_none());
    }
}
