//! `per monitor` (runbook `scripts/monitor.sh`, `checkHealth`): polls `GET <target>/health` of every
//! `--target` each `--interval-secs` and alerts by severity, deduplicated, with resolves.
//!
//! Conditions per target (each its own incident, dedup key `per-monitor:<target>:<condition>`):
//! - `unreachable` (P1): connection error, timeout, or an answer that is not a `/health` document;
//!   HTTP 503 *with* a health body is the node saying `critical`, not unreachable;
//! - `status_critical` (P1) / `status_degraded` (P2): the node's own `status`;
//! - `snapshot_lag` (P2): `snapshot_lag` above `--snapshot-lag-secs-max` (runbook: 5 min);
//! - `tee_attestation` (P1): `tee_attestation_valid == false`, only with `--require-attestation`
//!   (the node's attestation provider `none` is development mode and always reports false).
//!
//! While a target is unreachable its health conditions are unknown and keep their state. Routing:
//! P1 → PagerDuty + Slack + SMS, P2 → Slack + e-mail, P3 → Slack. Each channel has its own
//! delivery queue (alerts stay in order per channel, polling never waits for a slow channel); a
//! failed delivery is retried (429/5xx/transport errors, 3 tries from 500 ms), logged, and makes the
//! verb exit 1 at the end.
//!
//! The rules, the dispatch and the loop are `per_ops::monitor`; this file parses the flags,
//! prints the start-up report and the summary, and maps the outcome to an exit code.
//!
//! Exit: 1 if any delivery failed; else 3 if a target is unreachable at the end; else 1 if another
//! condition is still active at the end ("not stable"); else 0. 2 for usage/configuration errors.

use crate::cli::exit::Exit;
use anyhow::Context;
use clap::Args;
use per_ops::alert::{Channel, Channels, Severity};
use per_ops::monitor::{self, Rules, Target, parse_target};
use per_wire::client::HttpOptions;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Shortest accepted poll interval.
const INTERVAL_MIN_SECS: f64 = 0.05;
/// Flags of `per monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Base URL of a node to watch; repeat for several (`host:port` means http://host:port)
    /// [default: http://$PER_LISTEN, else http://127.0.0.1:8080].
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,
    /// How long to watch: seconds (`300`) or with a unit (`90s`, `5m`, `1h`); default: until
    /// SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Seconds between polls (fractions allowed, e.g. 0.5).
    #[arg(long, default_value_t = 30.0)]
    pub interval_secs: f64,
    /// Timeout of one /health request in seconds [default: the interval, between 1 and 10].
    #[arg(long)]
    pub timeout_secs: Option<f64>,
    /// `snapshot_lag` above this many seconds is a P2 alert (runbook: 5 minutes).
    #[arg(long, default_value_t = 300)]
    pub snapshot_lag_secs_max: u64,
    /// Page (P1) when `tee_attestation_valid` is false. Off by default: the attestation provider
    /// `none` is development mode and always reports false.
    #[arg(long)]
    pub require_attestation: bool,
    /// At the end, one JSON document on stdout: {targets, polls, alerts_sent, resolves_sent,
    /// delivery_failures, conditions_active}.
    #[arg(long)]
    pub json: bool,
}

/// Parses `300`, `0.5`, `90s`, `500ms`, `5m`, `1h`, `1d` into a positive duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 300, 90s, 5m, 1h)"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m, h, d)"
            ));
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 10.0 * 365.0 * 86_400.0 {
        return Err(format!("{text:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs the monitor.
pub fn exec(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    if !args.interval_secs.is_finite() || args.interval_secs < INTERVAL_MIN_SECS {
        return Err(Exit::usage(format!(
            "--interval-secs must be at least {INTERVAL_MIN_SECS}"
        )));
    }
    let interval = Duration::from_secs_f64(args.interval_secs);
    let timeout_secs = args
        .timeout_secs
        .unwrap_or_else(|| args.interval_secs.clamp(1.0, 10.0));
    if !timeout_secs.is_finite() || timeout_secs <= 0.0 || timeout_secs > 300.0 {
        return Err(Exit::usage("--timeout-secs must be in (0, 300]"));
    }
    let timeout = Duration::from_secs_f64(timeout_secs);
    let mut texts = args.targets.clone();
    if texts.is_empty() {
        let listen = std::env::var("PER_LISTEN")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| per_node::config::DEFAULT_LISTEN.to_owned());
        texts.push(listen);
    }
    let mut targets: Vec<Target> = Vec::new();
    for text in &texts {
        let target = parse_target(text).map_err(|e| Exit::usage(e.0))?;
        if !targets.iter().any(|t| t.name == target.name) {
            targets.push(target);
        }
    }
    let channels = Channels::from_env().map_err(|e| Exit::usage(e.to_string()))?;
    let rules = Rules {
        snapshot_lag_secs_max: args.snapshot_lag_secs_max,
        require_attestation: args.require_attestation,
    };

    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let how_long = match args.duration {
        Some(d) => format!("for {} s", d.as_secs_f64()),
        None => "until SIGINT/SIGTERM".to_owned(),
    };
    eprintln!(
        "per monitor: watching {} every {} s (timeout {} s), {how_long}",
        names.join(", "),
        interval.as_secs_f64(),
        timeout.as_secs_f64()
    );
    for line in channels.report() {
        eprintln!("per monitor: channel {line}");
    }
    for severity in [Severity::P1, Severity::P2, Severity::P3] {
        let on: Vec<&str> = channels
            .for_severity(severity)
            .iter()
            .map(|c| c.kind().name())
            .collect();
        if on.is_empty() {
            eprintln!(
                "per monitor: WARNING: no channel is on for {severity}: {severity} alerts are only logged here"
            );
        } else {
            eprintln!("per monitor: {severity} → {}", on.join(", "));
        }
    }
    eprintln!(
        "per monitor: snapshot lag threshold {} s (P2)",
        rules.snapshot_lag_secs_max
    );
    if rules.require_attestation {
        eprintln!("per monitor: TEE attestation required: tee_attestation_valid=false is P1");
    } else {
        eprintln!(
            "per monitor: TEE attestation not required (attestation provider `none` is development mode; pass --require-attestation in production)"
        );
    }

    // No connection reuse: a fresh connection per poll, so a pooled connection the node closed
    // (restart, idle timeout) never reads as "unreachable".
    let http = HttpOptions::new(timeout)
        .connect_timeout(timeout)
        .no_idle_connections()
        .user_agent(concat!("per-monitor/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let run = runtime.block_on(monitor::run(
        targets.clone(),
        channels,
        http,
        interval,
        args.duration,
        rules,
        crate::cli::signal::stop_signal(),
    ));
    runtime.shutdown_timeout(Duration::from_millis(100));

    let summary = run.summary(&names);
    let failures = run.stats.delivery_failures.load(Ordering::Relaxed);
    eprintln!(
        "per monitor: stopped ({}): {} polls, {} alerts and {} resolves delivered, {} delivery failures, {} conditions active",
        run.stopped_by,
        summary["polls"],
        summary["alerts_sent"],
        summary["resolves_sent"],
        failures,
        run.active.len()
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if failures > 0 {
        return Err(Exit::problem(format!(
            "{failures} alert deliveries failed (see the log above)"
        )));
    }
    let unreachable: Vec<&str> = run
        .active
        .iter()
        .filter(|a| a.condition == "unreachable")
        .map(|a| a.target.as_str())
        .collect();
    if !unreachable.is_empty() {
        return Err(Exit::unreachable(format!(
            "unreachable at the end: {}",
            unreachable.join(", ")
        )));
    }
    if !run.active.is_empty() {
        let list: Vec<String> = run
            .active
            .iter()
            .map(|a| format!("{} {} on {}", a.severity, a.condition, a.target))
            .collect();
        return Err(Exit::problem(format!(
            "conditions still active at the end: {}",
            list.join(", ")
        )));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("-3").is_err());
    }
}
