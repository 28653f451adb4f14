//! `per notify-incident --severity S --message M` (runbook `scripts/notify_incident.sh`): sends one
//! incident notice to every configured channel of that severity (P1 → PagerDuty + Slack + SMS,
//! P2 → Slack + e-mail, P3 → Slack), with the usual retries.
//!
//! Severities: `P1|P2|P3` or the runbook's `CRITICAL|WARNING|INFO`. Exit 1 if any delivery failed,
//! 2 if no channel of that severity is configured (the message names the variables to set).

use crate::cli::exit::Exit;
use anyhow::Context;
use clap::Args;
use per_ops::alert::{Action, Alert, Channel, Channels, Delivery, RetryPolicy, Severity, deliver};
use serde_json::{Map, Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Flags of `per notify-incident`.
#[derive(Debug, Args)]
pub struct NotifyIncidentArgs {
    /// P1|P2|P3, or CRITICAL (P1), WARNING (P2), INFO (P3).
    #[arg(long, value_parser = |s: &str| s.parse::<Severity>())]
    pub severity: Severity,
    /// What happened (sent as is: put no secrets in it).
    #[arg(long)]
    pub message: String,
    /// Where it happened (PagerDuty `source`) [default: this host's name].
    #[arg(long)]
    pub source: Option<String>,
    /// PagerDuty dedup key; reuse one to add to an open incident [default: a fresh key].
    #[arg(long)]
    pub dedup_key: Option<String>,
    /// One JSON document on stdout: {severity, dedup_key, deliveries: [{channel, ok, attempts,
    /// error?}], channels_off}.
    #[arg(long)]
    pub json: bool,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "per".to_owned())
}

/// Sends the notice.
pub fn exec(args: NotifyIncidentArgs) -> anyhow::Result<ExitCode> {
    let message = args.message.trim().to_owned();
    if message.is_empty() {
        return Err(Exit::usage("--message must not be empty"));
    }
    let channels = Channels::from_env().map_err(|e| Exit::usage(e.to_string()))?;
    let severity = args.severity;
    let missing = channels.missing_for(severity);
    let on: Vec<Arc<per_ops::alert::AnyChannel>> = channels
        .on
        .into_iter()
        .filter(|c| severity.channels().contains(&c.kind()))
        .map(Arc::new)
        .collect();
    if on.is_empty() {
        let wanted: Vec<String> = severity
            .channels()
            .iter()
            .map(|k| format!("{k}: {}", k.required_env()))
            .collect();
        return Err(Exit::usage(format!(
            "no alert channel is configured for {severity}; set at least one of: {}",
            wanted.join("; ")
        )));
    }
    for kind in &missing {
        eprintln!(
            "per notify-incident: WARNING: {kind} is off for {severity} (set {})",
            kind.required_env()
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let dedup_key = args.dedup_key.clone().unwrap_or_else(|| {
        format!(
            "per-incident:{}-{:08x}",
            now.as_secs(),
            rand::random::<u32>()
        )
    });
    let source = args.source.clone().unwrap_or_else(host_name);
    let mut details = Map::new();
    details.insert("message".to_owned(), json!(message));
    details.insert("time_unix".to_owned(), json!(now.as_secs()));
    let alert = Arc::new(Alert {
        action: Action::Trigger,
        severity,
        dedup_key: dedup_key.clone(),
        source,
        condition: "incident".to_owned(),
        summary: message,
        details,
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let deliveries: Vec<Delivery> = runtime.block_on(async {
        let handles: Vec<_> = on
            .iter()
            .map(|channel| {
                let channel = channel.clone();
                let alert = alert.clone();
                tokio::spawn(async move { deliver(&channel, &alert, RetryPolicy::default()).await })
            })
            .collect();
        let mut out = Vec::new();
        for (channel, handle) in on.iter().zip(handles) {
            out.push(match handle.await {
                Ok(delivery) => delivery,
                Err(error) => Delivery {
                    channel: channel.kind(),
                    attempts: 0,
                    result: Err(per_ops::alert::DeliveryError::permanent(format!(
                        "delivery task failed: {error}"
                    ))),
                },
            });
        }
        out
    });
    runtime.shutdown_timeout(Duration::from_millis(100));

    let mut failed = 0;
    let mut rows = Vec::new();
    for delivery in &deliveries {
        let mut row = json!({
            "channel": delivery.channel,
            "ok": delivery.result.is_ok(),
            "attempts": delivery.attempts,
        });
        match &delivery.result {
            Ok(()) => eprintln!(
                "per notify-incident: {}: delivered ({} tries)",
                delivery.channel, delivery.attempts
            ),
            Err(error) => {
                failed += 1;
                row["error"] = Value::String(error.message.clone());
                eprintln!(
                    "per notify-incident: {}: DELIVERY FAILED after {} tries: {error}",
                    delivery.channel, delivery.attempts
                );
            }
        }
        rows.push(row);
    }
    if args.json {
        let out = json!({
            "severity": severity,
            "dedup_key": dedup_key,
            "deliveries": rows,
            "channels_off": missing,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if failed > 0 {
        return Err(Exit::problem(format!(
            "{failed} of {} deliveries failed",
            deliveries.len()
        )));
    }
    Ok(ExitCode::SUCCESS)
}
