//! Alert delivery for `per monitor` and `per notify-incident`: one [`Channel`] trait, four channels
//! (PagerDuty Events API v2, a Slack incoming webhook, e-mail over plain SMTP, an SMS gateway's
//! webhook), configured from the environment (a channel without its settings is off), routed by
//! [`Severity`] as the runbook says, delivered with bounded retries, and deduplicated by
//! [`dedup::Tracker`].
//!
//! Alerts carry the target, condition, severity, status and the node's `/health` reasons; never a
//! routing key, webhook URL, token or any other secret. Webhook URLs and routing keys are secrets
//! themselves, so errors never print them (reqwest errors are stripped of their URL).
//!
//! Transport: HTTP channels use reqwest with rustls (https works, no OpenSSL); e-mail is plain SMTP
//! (`smtp://host:port`, no TLS, no authentication) for a local relay.

pub mod dedup;
pub mod email;
pub mod pagerduty;
pub mod severity;
pub mod slack;
pub mod sms;

pub use severity::{ChannelKind, Severity};

use per_wire::client::HttpOptions;
use serde::Serialize;
use serde_json::{Map, Value};
use std::future::Future;
use std::time::Duration;

/// Timeout of one delivery request (connect + answer).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of establishing a connection to a channel.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
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

    /// Delivers one alert once (retries are the caller's, see [`deliver`]).
    fn send(&self, alert: &Alert) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

/// Any configured channel (static dispatch over the four kinds).
#[derive(Debug)]
pub enum AnyChannel {
    /// PagerDuty.
    PagerDuty(pagerduty::PagerDuty),
    /// Slack.
    Slack(slack::Slack),
    /// E-mail.
    Email(email::Email),
    /// SMS.
    Sms(sms::Sms),
}

impl Channel for AnyChannel {
    fn kind(&self) -> ChannelKind {
        match self {
            AnyChannel::PagerDuty(c) => c.kind(),
            AnyChannel::Slack(c) => c.kind(),
            AnyChannel::Email(c) => c.kind(),
            AnyChannel::Sms(c) => c.kind(),
        }
    }

    fn describe(&self) -> String {
        match self {
            AnyChannel::PagerDuty(c) => c.describe(),
            AnyChannel::Slack(c) => c.describe(),
            AnyChannel::Email(c) => c.describe(),
            AnyChannel::Sms(c) => c.describe(),
        }
    }

    async fn send(&self, alert: &Alert) -> Result<(), DeliveryError> {
        match self {
            AnyChannel::PagerDuty(c) => c.send(alert).await,
            AnyChannel::Slack(c) => c.send(alert).await,
            AnyChannel::Email(c) => c.send(alert).await,
            AnyChannel::Sms(c) => c.send(alert).await,
        }
    }
}

/// A configuration problem of the alert variables (exit code 2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("alert configuration: {0}")]
pub struct AlertConfigError(pub String);

/// The configured channels and, for the others, why they are off.
#[derive(Debug, Default)]
pub struct Channels {
    /// Channels that are on.
    pub on: Vec<AnyChannel>,
    /// Channels that are off, with the variables that would turn them on.
    pub off: Vec<(ChannelKind, String)>,
}

impl Channels {
    /// Reads the contract's variables from the process environment.
    pub fn from_env() -> Result<Channels, AlertConfigError> {
        Channels::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (empty values count as unset). A channel with some but
    /// not all of its settings is an error, so a typo never silently turns paging off.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Channels, AlertConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let http = http_client()?;
        let mut channels = Channels::default();
        let off = |kind: ChannelKind| (kind, format!("set {} to turn it on", kind.required_env()));
        match pagerduty::PagerDuty::from_settings(
            get("PER_PAGERDUTY_ROUTING_KEY"),
            get("PER_PAGERDUTY_URL"),
            http.clone(),
        )? {
            Some(c) => channels.on.push(AnyChannel::PagerDuty(c)),
            None => channels.off.push(off(ChannelKind::PagerDuty)),
        }
        match slack::Slack::from_settings(get("PER_SLACK_WEBHOOK_URL"), http.clone())? {
            Some(c) => channels.on.push(AnyChannel::Slack(c)),
            None => channels.off.push(off(ChannelKind::Slack)),
        }
        match email::Email::from_settings(
            get("PER_SMTP_URL"),
            get("PER_ALERT_EMAIL_FROM"),
            get("PER_ALERT_EMAIL_TO"),
        )? {
            Some(c) => channels.on.push(AnyChannel::Email(c)),
            None => channels.off.push(off(ChannelKind::Email)),
        }
        match sms::Sms::from_settings(get("PER_SMS_WEBHOOK_URL"), get("PER_SMS_TO"), http)? {
            Some(c) => channels.on.push(AnyChannel::Sms(c)),
            None => channels.off.push(off(ChannelKind::Sms)),
        }
        Ok(channels)
    }

    /// The channel of `kind`, if it is on.
    pub fn get(&self, kind: ChannelKind) -> Option<&AnyChannel> {
        self.on.iter().find(|c| c.kind() == kind)
    }

    /// The channels of `severity` that are on.
    pub fn for_severity(&self, severity: Severity) -> Vec<&AnyChannel> {
        severity
            .channels()
            .iter()
            .filter_map(|kind| self.get(*kind))
            .collect()
    }

    /// The channels of `severity` that are off.
    pub fn missing_for(&self, severity: Severity) -> Vec<ChannelKind> {
        severity
            .channels()
            .iter()
            .copied()
            .filter(|kind| self.get(*kind).is_none())
            .collect()
    }

    /// One line per channel: on (where to) or off (which variables to set).
    pub fn report(&self) -> Vec<String> {
        ChannelKind::ALL
            .iter()
            .map(|kind| match self.get(*kind) {
                Some(channel) => format!("{kind}: on ({})", channel.describe()),
                None => {
                    let why = self
                        .off
                        .iter()
                        .find(|(k, _)| k == kind)
                        .map(|(_, why)| why.as_str())
                        .unwrap_or("not configured");
                    format!("{kind}: off ({why})")
                }
            })
            .collect()
    }
}

/// The HTTP client every HTTP channel shares (bounded timeouts, no redirects to elsewhere).
pub fn http_client() -> Result<reqwest::Client, AlertConfigError> {
    HttpOptions::new(DELIVERY_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .no_redirects()
        .user_agent(concat!("per/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AlertConfigError(format!("cannot build the HTTP client: {}", e.0)))
}

/// Parses an `http://` or `https://` URL from variable `name` (the value is never echoed: it may
/// hold a secret).
pub fn parse_http_url(name: &str, value: &str) -> Result<reqwest::Url, AlertConfigError> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| AlertConfigError(format!("{name} is not a valid URL ({e})")))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        _ => Err(AlertConfigError(format!(
            "{name} must be an http:// or https:// URL with a host"
        ))),
    }
}

/// `scheme://host[:port]` of a URL: where a channel delivers, without path, query or credentials
/// (webhook paths and queries hold secrets).
pub fn url_origin(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// POSTs `body` as JSON to a webhook-style endpoint and accepts any 2xx (PagerDuty, SMS gateways).
pub(crate) async fn post_json_expect_2xx(
    http: &reqwest::Client,
    url: &reqwest::Url,
    body: &serde_json::Value,
    kind: ChannelKind,
) -> Result<(), DeliveryError> {
    let response = http
        .post(url.clone())
        .json(body)
        .send()
        .await
        .map_err(|e| transport_error(kind, e))?;
    check_response(kind, response, |status, _| (200..300).contains(&status)).await
}

/// A reqwest transport error as a retryable delivery error, without the (secret) URL.
pub fn transport_error(channel: ChannelKind, error: reqwest::Error) -> DeliveryError {
    let error = error.without_url();
    let what = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        format!("cannot connect ({})", error_chain(&error))
    } else {
        error_chain(&error)
    };
    DeliveryError::transient(format!("{channel}: {what}"))
}

/// An error and its sources, joined with ": ".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Classifies an HTTP answer: `ok(status, body)` says whether it is a success; otherwise 429 and
/// 5xx are retryable (honouring `Retry-After` in seconds) and every other status is permanent.
pub async fn check_response(
    channel: ChannelKind,
    response: reqwest::Response,
    ok: impl Fn(u16, &str) -> bool,
) -> Result<(), DeliveryError> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    if ok(status, &body) {
        return Ok(());
    }
    let excerpt = truncate(body.trim(), 200);
    let message = if excerpt.is_empty() {
        format!("{channel}: HTTP {status}")
    } else {
        format!("{channel}: HTTP {status}: {excerpt}")
    };
    if status == 429 || (500..=599).contains(&status) {
        Err(DeliveryError {
            message,
            retryable: true,
            retry_after,
        })
    } else {
        Err(DeliveryError::permanent(message))
    }
}

/// How often and how patiently a delivery is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (≥ 1).
    pub attempts: u32,
    /// Wait before the second try; doubles each time.
    pub first_delay: Duration,
    /// Longest wait between tries (also caps `Retry-After`).
    pub delay_max: Duration,
}

impl Default for RetryPolicy {
    /// 3 tries, 500 ms then 1 s, `Retry-After` honoured up to 10 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(500),
            delay_max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let backoff = self.first_delay.saturating_mul(factor);
        backoff
            .max(retry_after.unwrap_or_default())
            .min(self.delay_max)
    }
}

/// The outcome of one alert on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The channel.
    pub channel: ChannelKind,
    /// Tries made.
    pub attempts: u32,
    /// Ok, or the last error.
    pub result: Result<(), DeliveryError>,
}

/// Sends `alert` on `channel`, retrying retryable failures with exponential backoff; logs each
/// failed try on stderr.
pub async fn deliver(channel: &AnyChannel, alert: &Alert, policy: RetryPolicy) -> Delivery {
    let kind = channel.kind();
    let attempts_max = policy.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match channel.send(alert).await {
            Ok(()) => {
                return Delivery {
                    channel: kind,
                    attempts: attempt,
                    result: Ok(()),
                };
            }
            Err(error) if error.retryable && attempt < attempts_max => {
                let wait = policy.delay(attempt, error.retry_after);
                eprintln!(
                    "per: {kind} delivery try {attempt}/{attempts_max} failed: {error}; retrying in {} ms",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                return Delivery {
                    channel: kind,
                    attempts: attempt,
                    result: Err(error),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn nothing_configured_means_every_channel_off() {
        let channels = Channels::from_lookup(lookup(&[])).unwrap();
        assert!(channels.on.is_empty());
        assert_eq!(channels.off.len(), 4);
        let report = channels.report().join("\n");
        assert!(report.contains("pagerduty: off (set PER_PAGERDUTY_ROUTING_KEY"));
        assert!(report.contains("sms: off (set PER_SMS_WEBHOOK_URL and PER_SMS_TO"));
        assert_eq!(
            channels.missing_for(Severity::P2),
            vec![ChannelKind::Slack, ChannelKind::Email]
        );
    }

    #[test]
    fn everything_configured_and_no_secret_in_the_report() {
        let channels = Channels::from_lookup(lookup(&[
            ("PER_PAGERDUTY_ROUTING_KEY", "R0UTINGKEYSECRET"),
            ("PER_PAGERDUTY_URL", "http://127.0.0.1:9/v2/enqueue"),
            (
                "PER_SLACK_WEBHOOK_URL",
                "https://hooks.example.com/services/T0/B0/SECRETPATH",
            ),
            ("PER_SMTP_URL", "smtp://127.0.0.1:2525"),
            ("PER_ALERT_EMAIL_FROM", "per@example.com"),
            ("PER_ALERT_EMAIL_TO", "a@example.com, b@example.com"),
            (
                "PER_SMS_WEBHOOK_URL",
                "http://sms.example.com/send?token=SECRETTOKEN",
            ),
            ("PER_SMS_TO", "+15550100"),
        ]))
        .unwrap();
        assert_eq!(channels.on.len(), 4);
        let report = channels.report().join("\n");
        for secret in ["R0UTINGKEYSECRET", "SECRETPATH", "SECRETTOKEN"] {
            assert!(!report.contains(secret), "{report}");
        }
        assert_eq!(channels.for_severity(Severity::P1).len(), 3);
    }

    #[test]
    fn half_configured_channels_are_errors() {
        for vars in [
            &[("PER_SMS_WEBHOOK_URL", "http://x.example/")][..],
            &[("PER_SMS_TO", "+1555")][..],
            &[("PER_SMTP_URL", "smtp://127.0.0.1:25")][..],
            &[("PER_ALERT_EMAIL_TO", "a@example.com")][..],
            &[("PER_PAGERDUTY_URL", "http://127.0.0.1:9/")][..],
            &[("PER_SLACK_WEBHOOK_URL", "ftp://nope")][..],
            &[
                ("PER_SMTP_URL", "smtps://127.0.0.1:465"),
                ("PER_ALERT_EMAIL_FROM", "per@example.com"),
                ("PER_ALERT_EMAIL_TO", "a@example.com"),
            ][..],
        ] {
            assert!(
                Channels::from_lookup(lookup(vars)).is_err(),
                "{vars:?} must be refused"
            );
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, None), Duration::from_millis(500));
        assert_eq!(policy.delay(2, None), Duration::from_secs(1));
        assert_eq!(policy.delay(3, None), Duration::from_secs(2));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(policy.delay(40, None), Duration::from_secs(10));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
    }

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
