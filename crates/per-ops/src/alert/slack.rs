//! Slack incoming webhook: `POST {text, blocks: [section (mrkdwn)]}` to `PER_SLACK_WEBHOOK_URL`;
//! success is HTTP 200 with the body `ok`. The webhook URL is a secret: it is never printed.

use super::severity::{ChannelKind, Severity};
use super::transport::{check_response, parse_http_url, transport_error, url_origin};
use super::types::{Action, Alert, AlertConfigError, Channel, DeliveryError, truncate};
use serde_json::{Value, json};

/// Longest section text Slack accepts is 3000 characters.
const SECTION_CHARS_MAX: usize = 2900;

/// The Slack channel.
pub struct Slack {
    url: reqwest::Url,
    http: reqwest::Client,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("url", &url_origin(&self.url))
            .finish_non_exhaustive()
    }
}

impl Slack {
    /// On when the webhook URL is set.
    pub fn from_settings(
        url: Option<String>,
        http: reqwest::Client,
    ) -> Result<Option<Slack>, AlertConfigError> {
        let Some(url) = url else {
            return Ok(None);
        };
        let url = parse_http_url("PER_SLACK_WEBHOOK_URL", &url)?;
        Ok(Some(Slack { url, http }))
    }
}

/// Escapes the three characters mrkdwn treats specially.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The webhook body: `text` (notification fallback) and one mrkdwn section with the details.
pub fn message_body(alert: &Alert) -> Value {
    let icon = match (alert.action, alert.severity) {
        (Action::Resolve, _) => ":white_check_mark:",
        (Action::Trigger, Severity::P1) => ":rotating_light:",
        (Action::Trigger, Severity::P2) => ":warning:",
        (Action::Trigger, Severity::P3) => ":information_source:",
    };
    let headline = escape(&alert.headline());
    let mut section = format!("{icon} *{headline}*");
    for line in alert.detail_lines() {
        section.push_str("\n• ");
        section.push_str(&escape(&line));
    }
    json!({
        "text": headline,
        "blocks": [{
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&section, SECTION_CHARS_MAX)},
        }],
    })
}

impl Channel for Slack {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Slack
    }

    fn describe(&self) -> String {
        format!("webhook at {}", url_origin(&self.url))
    }

    async fn send(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let response = self
            .http
            .post(self.url.clone())
            .json(&message_body(alert))
            .send()
            .await
            .map_err(|e| transport_error(ChannelKind::Slack, e))?;
        check_response(ChannelKind::Slack, response, |status, body| {
            status == 200 && body.trim() == "ok"
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use serde_json::Map;

    #[test]
    fn body_has_text_and_a_mrkdwn_section() {
        let mut details = Map::new();
        details.insert("reasons".into(), json!(["a < b", "c"]));
        let alert = Alert {
            action: Action::Resolve,
            severity: Severity::P1,
            dedup_key: "k".into(),
            source: "http://n".into(),
            condition: "unreachable".into(),
            summary: "per unreachable at http://n".into(),
            details,
        };
        let body = message_body(&alert);
        assert_eq!(body["text"], "RESOLVED [P1] per unreachable at http://n");
        assert_eq!(body["blocks"][0]["type"], "section");
        assert_eq!(body["blocks"][0]["text"]["type"], "mrkdwn");
        let text = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.contains("reasons: a &lt; b; c"), "{text}");
    }
}
