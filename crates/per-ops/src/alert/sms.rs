//! SMS through a gateway's webhook: `POST {to, message}` (JSON) to `PER_SMS_WEBHOOK_URL`, with `to`
//! from `PER_SMS_TO` as given (one number, or the gateway's own list syntax); any 2xx is success.
//! Messages are one short line: the headline, cut to [`MESSAGE_CHARS_MAX`].

use super::severity::ChannelKind;
use super::transport::{parse_http_url, post_json_expect_2xx, url_origin};
use super::types::{Alert, AlertConfigError, Channel, DeliveryError, truncate};
use serde_json::{Value, json};

/// Longest SMS text we send (two concatenated SMS segments).
pub const MESSAGE_CHARS_MAX: usize = 300;

/// The SMS channel.
pub struct Sms {
    url: reqwest::Url,
    to: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms")
            .field("url", &url_origin(&self.url))
            .finish_non_exhaustive()
    }
}

impl Sms {
    /// On when both the webhook URL and the recipient are set; one without the other is an error.
    pub fn from_settings(
        url: Option<String>,
        to: Option<String>,
        http: reqwest::Client,
    ) -> Result<Option<Sms>, AlertConfigError> {
        match (url, to) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(AlertConfigError(
                "PER_SMS_WEBHOOK_URL is set but PER_SMS_TO is not".to_owned(),
            )),
            (None, Some(_)) => Err(AlertConfigError(
                "PER_SMS_TO is set but PER_SMS_WEBHOOK_URL is not".to_owned(),
            )),
            (Some(url), Some(to)) => Ok(Some(Sms {
                url: parse_http_url("PER_SMS_WEBHOOK_URL", &url)?,
                to,
                http,
            })),
        }
    }

    /// The gateway body of `alert`.
    pub fn body(&self, alert: &Alert) -> Value {
        json!({"to": self.to, "message": message_text(alert)})
    }
}

/// `per: [P1] summary` cut to [`MESSAGE_CHARS_MAX`] (a resolve reads `per: RESOLVED [P1] …`).
pub fn message_text(alert: &Alert) -> String {
    truncate(&format!("per: {}", alert.headline()), MESSAGE_CHARS_MAX)
}

impl Channel for Sms {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn describe(&self) -> String {
        format!("gateway at {}", url_origin(&self.url))
    }

    async fn send(&self, alert: &Alert) -> Result<(), DeliveryError> {
        post_json_expect_2xx(&self.http, &self.url, &self.body(alert), ChannelKind::Sms).await
    }
}
