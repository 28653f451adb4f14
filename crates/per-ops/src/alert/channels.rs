//! The configured channels ([`Channels`], read from the environment) and static dispatch over
//! the four kinds ([`AnyChannel`]).

use super::severity::{ChannelKind, Severity};
use super::transport::http_client;
use super::types::{Alert, AlertConfigError, Channel, DeliveryError};
use super::{email, pagerduty, slack, sms};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::severity::Severity;
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
}
