//! HTTP plumbing the webhook channels share: the client, URL checks that never echo a secret,
//! posting JSON and classifying answers and transport errors into [`DeliveryError`]s.

use super::severity::ChannelKind;
use super::types::{AlertConfigError, DeliveryError, truncate};
use per_wire::client::HttpOptions;
use std::time::Duration;

/// Timeout of one delivery request (connect + answer).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of establishing a connection to a channel.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
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
