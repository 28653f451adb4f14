//! E-mail over plain SMTP (lettre): `PER_SMTP_URL` (`smtp://host[:port]`, port 25 by default),
//! `PER_ALERT_EMAIL_FROM`, `PER_ALERT_EMAIL_TO` (comma-separated). One message per alert, to every
//! recipient, text/plain.
//!
//! Limitations (documented): no TLS and no authentication: point it at a local relay (postfix,
//! an SES/Mailgun forwarder on localhost…). `smtps://` and credentials in the URL are refused
//! rather than silently ignored.

use super::severity::ChannelKind;
use super::transport::{DELIVERY_TIMEOUT, error_chain};
use super::types::{Action, Alert, AlertConfigError, Channel, DeliveryError, truncate};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Default SMTP port.
pub const DEFAULT_PORT: u16 = 25;

/// The e-mail channel.
pub struct Email {
    host: String,
    port: u16,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Email {
    /// On when all three variables are set; some but not all is an error.
    pub fn from_settings(
        url: Option<String>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Option<Email>, AlertConfigError> {
        let (url, from, to) = match (url, from, to) {
            (None, None, None) => return Ok(None),
            (Some(url), Some(from), Some(to)) => (url, from, to),
            (url, from, to) => {
                let missing: Vec<&str> = [
                    ("PER_SMTP_URL", url.is_none()),
                    ("PER_ALERT_EMAIL_FROM", from.is_none()),
                    ("PER_ALERT_EMAIL_TO", to.is_none()),
                ]
                .iter()
                .filter(|(_, missing)| *missing)
                .map(|(name, _)| *name)
                .collect();
                return Err(AlertConfigError(format!(
                    "e-mail is half configured: {} not set",
                    missing.join(" and ")
                )));
            }
        };
        let (host, port) = parse_smtp_url(&url)?;
        let from: Mailbox = from.parse().map_err(|e| {
            AlertConfigError(format!(
                "PER_ALERT_EMAIL_FROM is not an e-mail address ({e})"
            ))
        })?;
        let to = to
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|address| {
                address.parse::<Mailbox>().map_err(|e| {
                    AlertConfigError(format!(
                        "PER_ALERT_EMAIL_TO: {address:?} is not an e-mail address ({e})"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(AlertConfigError(
                "PER_ALERT_EMAIL_TO names no recipient".to_owned(),
            ));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(DELIVERY_TIMEOUT))
            .build();
        Ok(Some(Email {
            host,
            port,
            from,
            to,
            transport,
        }))
    }

    /// The message for `alert` (subject: `[per P2] TRIGGERED|RESOLVED <condition> on <source>`).
    pub fn message(&self, alert: &Alert) -> Result<Message, DeliveryError> {
        let verb = match alert.action {
            Action::Trigger => "TRIGGERED",
            Action::Resolve => "RESOLVED",
        };
        let subject = truncate(
            &format!(
                "[per {}] {verb} {} on {}",
                alert.severity, alert.condition, alert.source
            ),
            200,
        );
        let mut body = alert.headline();
        body.push_str("\n\n");
        for line in alert.detail_lines() {
            body.push_str(&line);
            body.push('\n');
        }
        body.push_str(&format!("\ndedup key: {}\n", alert.dedup_key));
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(body)
            .map_err(|e| DeliveryError::permanent(format!("email: cannot build the message: {e}")))
    }
}

/// `smtp://host[:port]` → (host, port). Other schemes, credentials and paths are refused.
pub fn parse_smtp_url(value: &str) -> Result<(String, u16), AlertConfigError> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| AlertConfigError(format!("PER_SMTP_URL is not a valid URL ({e})")))?;
    if url.scheme() != "smtp" {
        return Err(AlertConfigError(format!(
            "PER_SMTP_URL must be smtp://host:port (plain SMTP to a local relay; {}:// is not supported)",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AlertConfigError(
            "PER_SMTP_URL: SMTP authentication is not supported; use a relay that needs none"
                .to_owned(),
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| AlertConfigError("PER_SMTP_URL has no host".to_owned()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, url.port().unwrap_or(DEFAULT_PORT)))
}

impl Channel for Email {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn describe(&self) -> String {
        format!(
            "SMTP {}:{} to {} recipient(s)",
            self.host,
            self.port,
            self.to.len()
        )
    }

    async fn send(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let message = self.message(alert)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) => {
                let text = format!("email: {}", error_chain(&error));
                if error.is_permanent() || error.is_client() {
                    Err(DeliveryError::permanent(text))
                } else {
                    Err(DeliveryError::transient(text))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        assert_eq!(
            parse_smtp_url("smtp://127.0.0.1:2525").unwrap(),
            ("127.0.0.1".to_owned(), 2525)
        );
        assert_eq!(
            parse_smtp_url("smtp://mail.local").unwrap(),
            ("mail.local".to_owned(), 25)
        );
        assert!(parse_smtp_url("smtps://mail.local").is_err());
        assert!(parse_smtp_url("smtp://user:pw@mail.local").is_err());
        assert!(parse_smtp_url("mail.local:25").is_err());
    }
}
