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
//!
//! This file only declares and re-exports: the shared types are in [`types`] (a leaf), the HTTP
//! plumbing in [`transport`], so no channel file imports this one.

pub mod channels;
pub mod dedup;
pub mod deliver;
pub mod email;
pub mod pagerduty;
pub mod severity;
pub mod slack;
pub mod sms;
pub mod transport;
pub mod types;

pub use channels::{AnyChannel, Channels};
pub use deliver::{Delivery, RetryPolicy, deliver};
pub use severity::{ChannelKind, Severity};
pub use transport::{
    CONNECT_TIMEOUT, DELIVERY_TIMEOUT, check_response, error_chain, http_client, parse_http_url,
    transport_error, url_origin,
};
pub use types::{
    Action, Alert, AlertConfigError, Channel, DeliveryError, SUMMARY_CHARS_MAX, truncate,
    value_text,
};
