//! Severities (the runbook's P1/P2/P3, also spelled CRITICAL/WARNING/INFO) and the channels each
//! one goes to: P1 → PagerDuty + Slack + SMS, P2 → Slack + e-mail, P3 → Slack.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// Critical: page someone now.
    P1,
    /// Warning: someone looks today.
    P2,
    /// Information.
    P3,
}

/// The kinds of alert channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// PagerDuty Events API v2.
    PagerDuty,
    /// Slack incoming webhook.
    Slack,
    /// E-mail over SMTP.
    Email,
    /// An SMS gateway's webhook.
    Sms,
}

impl ChannelKind {
    /// Every kind, in the order they are reported.
    pub const ALL: [ChannelKind; 4] = [
        ChannelKind::PagerDuty,
        ChannelKind::Slack,
        ChannelKind::Email,
        ChannelKind::Sms,
    ];

    /// Lowercase name (`pagerduty`, `slack`, `email`, `sms`).
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::PagerDuty => "pagerduty",
            ChannelKind::Slack => "slack",
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
        }
    }

    /// The environment variables that turn this channel on.
    pub fn required_env(self) -> &'static str {
        match self {
            ChannelKind::PagerDuty => "PER_PAGERDUTY_ROUTING_KEY",
            ChannelKind::Slack => "PER_SLACK_WEBHOOK_URL",
            ChannelKind::Email => "PER_SMTP_URL, PER_ALERT_EMAIL_FROM and PER_ALERT_EMAIL_TO",
            ChannelKind::Sms => "PER_SMS_WEBHOOK_URL and PER_SMS_TO",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Severity {
    /// The channels an alert of this severity goes to (runbook "Alerting Channels").
    pub fn channels(self) -> &'static [ChannelKind] {
        match self {
            Severity::P1 => &[ChannelKind::PagerDuty, ChannelKind::Slack, ChannelKind::Sms],
            Severity::P2 => &[ChannelKind::Slack, ChannelKind::Email],
            Severity::P3 => &[ChannelKind::Slack],
        }
    }

    /// PagerDuty's `payload.severity`.
    pub fn pagerduty(self) -> &'static str {
        match self {
            Severity::P1 => "critical",
            Severity::P2 => "warning",
            Severity::P3 => "info",
        }
    }

    /// `P1`, `P2` or `P3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    /// `P1|P2|P3` or the runbook's `CRITICAL|WARNING|INFO`, any case.
    fn from_str(text: &str) -> Result<Severity, String> {
        match text.trim().to_ascii_uppercase().as_str() {
            "P1" | "CRITICAL" => Ok(Severity::P1),
            "P2" | "WARNING" => Ok(Severity::P2),
            "P3" | "INFO" => Ok(Severity::P3),
            _ => Err(format!(
                "unknown severity {text:?}: use P1|P2|P3 or CRITICAL|WARNING|INFO"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings() {
        assert_eq!("CRITICAL".parse(), Ok(Severity::P1));
        assert_eq!("warning".parse(), Ok(Severity::P2));
        assert_eq!("Info".parse(), Ok(Severity::P3));
        assert_eq!("p1".parse(), Ok(Severity::P1));
        assert!("P4".parse::<Severity>().is_err());
    }

    #[test]
    fn routes_as_the_runbook() {
        assert_eq!(
            Severity::P1.channels(),
            &[ChannelKind::PagerDuty, ChannelKind::Slack, ChannelKind::Sms]
        );
        assert_eq!(
            Severity::P2.channels(),
            &[ChannelKind::Slack, ChannelKind::Email]
        );
        assert_eq!(Severity::P3.channels(), &[ChannelKind::Slack]);
    }
}
