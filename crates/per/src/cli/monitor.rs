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
//! Exit: 1 if any delivery failed; else 3 if a target is unreachable at the end; else 1 if another
//! condition is still active at the end ("not stable"); else 0. 2 for usage/configuration errors.

use crate::cli::exit::Exit;
use anyhow::Context;
use clap::Args;
use per_ops::alert::dedup::{Firing, Tracker};
use per_ops::alert::{
    Action, Alert, AnyChannel, Channel, ChannelKind, Channels, RetryPolicy, Severity, deliver,
    error_chain,
};
use per_wire::client::HttpOptions;
use per_wire::health::{HealthReport, HealthStatus};
use serde_json::{Map, Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Every condition a health document answers for.
const HEALTH_CONDITIONS: &[&str] = &[
    "unreachable",
    "status_critical",
    "status_degraded",
    "snapshot_lag",
    "tee_attestation",
];
/// The only condition an unreachable target answers for.
const UNREACHABLE_ONLY: &[&str] = &["unreachable"];
/// Alerts waiting per channel before new ones are counted as failed deliveries.
const QUEUE_MAX: usize = 256;
/// How long the end of the run waits for queued deliveries.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Shortest accepted poll interval.
const INTERVAL_MIN_SECS: f64 = 0.05;
/// Fields of `/health` copied into alerts (never anything else).
const HEALTH_FIELDS: &[&str] = &[
    "status",
    "reasons",
    "snapshot_lag",
    "pending_tx_count",
    "last_heartbeat",
    "last_settlement",
    "tee_attestation_valid",
    "tee_attestation",
    "role",
    "epoch",
    "seq",
    "version",
    "wal_writer",
    "accepting_writes",
    "settlement",
];

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

/// A target: the URL polled and the name alerts carry (no credentials, query or fragment).
#[derive(Clone, Debug)]
struct Target {
    name: String,
    health_url: reqwest::Url,
}

fn parse_target(text: &str) -> anyhow::Result<Target> {
    let trimmed = text.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| Exit::usage(format!("--target {text:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Exit::usage(format!(
            "--target {text:?} must be an http:// or https:// URL with a host"
        )));
    }
    let mut shown = url.clone();
    // Errors mean the URL cannot carry credentials at all; nothing to strip then.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    let name = shown.as_str().trim_end_matches('/').to_owned();
    let mut health_url = url;
    let path = format!("{}/health", health_url.path().trim_end_matches('/'));
    health_url.set_path(&path);
    Ok(Target { name, health_url })
}

/// What one poll saw.
#[derive(Debug)]
enum Observation {
    Unreachable(String),
    Health {
        http_status: u16,
        report: Box<HealthReport>,
    },
}

async fn probe(http: &reqwest::Client, target: &Target) -> Observation {
    let response = match http.get(target.health_url.clone()).send().await {
        Ok(response) => response,
        Err(error) => {
            let error = error.without_url();
            let text = if error.is_timeout() {
                "timed out".to_owned()
            } else {
                error_chain(&error)
            };
            return Observation::Unreachable(text);
        }
    };
    let http_status = response.status().as_u16();
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => return Observation::Unreachable(error_chain(&error.without_url())),
    };
    match serde_json::from_str::<HealthReport>(&text) {
        Ok(report) => Observation::Health {
            http_status,
            report: Box::new(report),
        },
        Err(_) => {
            Observation::Unreachable(format!("HTTP {http_status} without a /health document"))
        }
    }
}

/// The thresholds of the conditions.
#[derive(Clone, Copy, Debug)]
struct Rules {
    snapshot_lag_secs_max: u64,
    require_attestation: bool,
}

/// The conditions `observation` tells about, and those that fire.
fn evaluate(
    target: &str,
    observation: &Observation,
    rules: Rules,
) -> (&'static [&'static str], Vec<Firing>) {
    match observation {
        Observation::Unreachable(error) => {
            let mut details = Map::new();
            details.insert("error".to_owned(), json!(error));
            let firing = Firing {
                condition: "unreachable",
                severity: Severity::P1,
                summary: format!("per executor unreachable at {target}"),
                details,
            };
            (UNREACHABLE_ONLY, vec![firing])
        }
        Observation::Health {
            http_status,
            report,
        } => {
            let mut details = Map::new();
            details.insert("http_status".to_owned(), json!(http_status));
            // The report as the node sent it (the same type serializes it there).
            let body = serde_json::to_value(report.as_ref()).unwrap_or(Value::Null);
            for field in HEALTH_FIELDS {
                if let Some(value) = body.get(*field) {
                    details.insert((*field).to_owned(), value.clone());
                }
            }
            let reasons = Some(report.reasons.join("; ")).filter(|r| !r.is_empty());
            let because = reasons.map(|r| format!(": {r}")).unwrap_or_default();
            let mut firing = Vec::new();
            match report.status {
                HealthStatus::Critical => firing.push(Firing {
                    condition: "status_critical",
                    severity: Severity::P1,
                    summary: format!("per health check failed: critical at {target}{because}"),
                    details: details.clone(),
                }),
                HealthStatus::Degraded => firing.push(Firing {
                    condition: "status_degraded",
                    severity: Severity::P2,
                    summary: format!("per health check failed: degraded at {target}{because}"),
                    details: details.clone(),
                }),
                HealthStatus::Healthy => {}
            }
            let lag = report.snapshot_lag;
            if lag > rules.snapshot_lag_secs_max {
                let mut lag_details = details.clone();
                lag_details.insert("lag_seconds".to_owned(), json!(lag));
                lag_details.insert(
                    "threshold_seconds".to_owned(),
                    json!(rules.snapshot_lag_secs_max),
                );
                firing.push(Firing {
                    condition: "snapshot_lag",
                    severity: Severity::P2,
                    summary: format!(
                        "snapshot lag {lag} s exceeds {} s at {target}",
                        rules.snapshot_lag_secs_max
                    ),
                    details: lag_details,
                });
            }
            if rules.require_attestation && !report.tee_attestation_valid {
                let mut tee_details = details.clone();
                tee_details.insert(
                    "action_required".to_owned(),
                    json!("Investigate TEE validity (runbook: Service Halt)"),
                );
                firing.push(Firing {
                    condition: "tee_attestation",
                    severity: Severity::P1,
                    summary: format!("TEE attestation check failed at {target}"),
                    details: tee_details,
                });
            }
            (HEALTH_CONDITIONS, firing)
        }
    }
}

/// Counters the delivery workers and the poll loop share.
#[derive(Debug, Default)]
struct Stats {
    polls: AtomicU64,
    queued: AtomicU64,
    finished: AtomicU64,
    alerts_sent: AtomicU64,
    resolves_sent: AtomicU64,
    delivery_failures: AtomicU64,
}

/// One delivery queue and worker per configured channel.
struct Dispatcher {
    queues: Vec<(ChannelKind, mpsc::Sender<Arc<Alert>>)>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    stats: Arc<Stats>,
}

impl Dispatcher {
    fn start(channels: Vec<AnyChannel>, stats: Arc<Stats>, policy: RetryPolicy) -> Dispatcher {
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for channel in channels {
            let (sender, mut receiver) = mpsc::channel::<Arc<Alert>>(QUEUE_MAX);
            queues.push((channel.kind(), sender));
            let stats = stats.clone();
            workers.push(tokio::spawn(async move {
                while let Some(alert) = receiver.recv().await {
                    let delivery = deliver(&channel, &alert, policy).await;
                    let kind = channel.kind();
                    let what = action_word(alert.action);
                    match delivery.result {
                        Ok(()) => {
                            let counter = match alert.action {
                                Action::Trigger => &stats.alerts_sent,
                                Action::Resolve => &stats.resolves_sent,
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            eprintln!(
                                "per monitor: {kind}: delivered {what} {} {} ({} {})",
                                alert.condition,
                                alert.source,
                                delivery.attempts,
                                tries(delivery.attempts)
                            );
                        }
                        Err(error) => {
                            stats.delivery_failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!(
                                "per monitor: {kind}: DELIVERY FAILED for {what} {} {} after {} {}: {error}",
                                alert.condition,
                                alert.source,
                                delivery.attempts,
                                tries(delivery.attempts)
                            );
                        }
                    }
                    stats.finished.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        Dispatcher {
            queues,
            workers,
            stats,
        }
    }

    /// Logs `alert` and queues it on every configured channel of its severity.
    fn dispatch(&self, alert: Alert) {
        let kinds = alert.severity.channels();
        let on: Vec<&str> = kinds
            .iter()
            .filter(|k| self.queues.iter().any(|(q, _)| q == *k))
            .map(|k| k.name())
            .collect();
        let route = if on.is_empty() {
            format!("no {} channel is on: logged only", alert.severity)
        } else {
            format!("→ {}", on.join(", "))
        };
        eprintln!(
            "per monitor: {} {} ({route})",
            action_word(alert.action),
            alert.headline()
        );
        let alert = Arc::new(alert);
        for (kind, sender) in &self.queues {
            if !kinds.contains(kind) {
                continue;
            }
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
            if sender.try_send(alert.clone()).is_err() {
                self.stats.finished.fetch_add(1, Ordering::Relaxed);
                self.stats.delivery_failures.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "per monitor: {kind}: DELIVERY FAILED: {QUEUE_MAX} alerts already waiting for this channel"
                );
            }
        }
    }

    /// Closes the queues and waits (bounded) for the deliveries still queued.
    async fn finish(self) {
        drop(self.queues);
        let mut workers = self.workers;
        let waited = tokio::time::timeout(DRAIN_TIMEOUT, async {
            for worker in workers.iter_mut() {
                let _ = worker.await;
            }
        })
        .await;
        if waited.is_err() {
            for worker in &workers {
                worker.abort();
            }
            let queued = self.stats.queued.load(Ordering::Relaxed);
            let finished = self.stats.finished.load(Ordering::Relaxed);
            let lost = queued.saturating_sub(finished);
            self.stats
                .delivery_failures
                .fetch_add(lost, Ordering::Relaxed);
            eprintln!(
                "per monitor: gave up on {lost} queued deliveries after {} s",
                DRAIN_TIMEOUT.as_secs()
            );
        }
    }
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Trigger => "TRIGGER",
        Action::Resolve => "RESOLVE",
    }
}

fn tries(n: u32) -> &'static str {
    if n == 1 { "try" } else { "tries" }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Resolves when the run should stop: the duration elapsed, SIGTERM or SIGINT.
async fn stop_signal(deadline: Option<Instant>) -> &'static str {
    let until = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = until => "duration elapsed",
        signal = crate::cli::signal::stop_signal() => signal,
    }
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
        let target = parse_target(text)?;
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
    let run = runtime.block_on(run(
        targets.clone(),
        channels,
        http,
        interval,
        args.duration,
        rules,
    ));
    runtime.shutdown_timeout(Duration::from_millis(100));

    let active: Vec<Value> = run
        .active
        .iter()
        .map(|a| {
            json!({
                "target": a.target,
                "condition": a.condition,
                "severity": a.severity,
                "since": a.since,
                "dedup_key": a.dedup_key,
                "summary": a.summary,
            })
        })
        .collect();
    let stats = &run.stats;
    let failures = stats.delivery_failures.load(Ordering::Relaxed);
    let summary = json!({
        "targets": names,
        "polls": stats.polls.load(Ordering::Relaxed),
        "alerts_sent": stats.alerts_sent.load(Ordering::Relaxed),
        "resolves_sent": stats.resolves_sent.load(Ordering::Relaxed),
        "delivery_failures": failures,
        "conditions_active": active,
        "stopped_by": run.stopped_by,
    });
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

/// What a run ended with.
struct RunOutcome {
    stats: Arc<Stats>,
    active: Vec<per_ops::alert::dedup::Active>,
    stopped_by: &'static str,
}

async fn run(
    targets: Vec<Target>,
    channels: Channels,
    http: reqwest::Client,
    interval: Duration,
    duration: Option<Duration>,
    rules: Rules,
) -> RunOutcome {
    let stats = Arc::new(Stats::default());
    let dispatcher = Dispatcher::start(channels.on, stats.clone(), RetryPolicy::default());
    let mut tracker = Tracker::new();
    let deadline = duration.map(|d| Instant::now() + d);
    let stop = stop_signal(deadline);
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopped_by = loop {
        tokio::select! {
            biased;
            reason = &mut stop => break reason,
            _ = ticker.tick() => {}
        }
        let polls: Vec<_> = targets
            .iter()
            .map(|target| {
                let http = http.clone();
                let target = target.clone();
                tokio::spawn(async move { probe(&http, &target).await })
            })
            .collect();
        let mut observations = Vec::with_capacity(polls.len());
        let mut stopped = None;
        for (target, poll) in targets.iter().zip(polls) {
            let observation = tokio::select! {
                biased;
                reason = &mut stop => { stopped = Some(reason); break; }
                joined = poll => match joined {
                    Ok(observation) => observation,
                    Err(error) => Observation::Unreachable(format!("poll task failed: {error}")),
                },
            };
            observations.push((target, observation));
        }
        if let Some(reason) = stopped {
            break reason;
        }
        let now = unix_now();
        for (target, observation) in observations {
            stats.polls.fetch_add(1, Ordering::Relaxed);
            let (evaluated, firing) = evaluate(&target.name, &observation, rules);
            for alert in tracker.observe(&target.name, evaluated, firing, now) {
                dispatcher.dispatch(alert);
            }
        }
    };
    dispatcher.finish().await;
    RunOutcome {
        stats,
        active: tracker.active().into_iter().cloned().collect(),
        stopped_by,
    }
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

    #[test]
    fn targets() {
        let t = parse_target("127.0.0.1:8080").unwrap();
        assert_eq!(t.name, "http://127.0.0.1:8080");
        assert_eq!(t.health_url.as_str(), "http://127.0.0.1:8080/health");
        let t = parse_target("https://user:pw@per.example.com/api/?token=x").unwrap();
        assert_eq!(t.name, "https://per.example.com/api");
        assert_eq!(t.health_url.path(), "/api/health");
        assert!(parse_target("ftp://x").is_err());
    }

    fn health(body: Value, http_status: u16) -> Observation {
        Observation::Health {
            http_status,
            report: Box::new(serde_json::from_value(body).unwrap()),
        }
    }

    const RULES: Rules = Rules {
        snapshot_lag_secs_max: 300,
        require_attestation: false,
    };

    #[test]
    fn conditions_from_health() {
        let (_, firing) = evaluate(
            "t",
            &health(
                json!({"status": "healthy", "snapshot_lag": 10, "tee_attestation_valid": false}),
                200,
            ),
            RULES,
        );
        assert!(firing.is_empty(), "attestation is not required by default");
        let (_, firing) = evaluate(
            "t",
            &health(
                json!({"status": "critical", "reasons": ["halted"], "snapshot_lag": 301}),
                503,
            ),
            RULES,
        );
        let names: Vec<_> = firing.iter().map(|f| (f.condition, f.severity)).collect();
        assert_eq!(
            names,
            vec![
                ("status_critical", Severity::P1),
                ("snapshot_lag", Severity::P2)
            ]
        );
        assert!(firing[0].summary.contains("halted"));
        let (_, firing) = evaluate(
            "t",
            &health(
                json!({"status": "degraded", "tee_attestation_valid": false}),
                200,
            ),
            Rules {
                require_attestation: true,
                ..RULES
            },
        );
        let names: Vec<_> = firing.iter().map(|f| (f.condition, f.severity)).collect();
        assert_eq!(
            names,
            vec![
                ("status_degraded", Severity::P2),
                ("tee_attestation", Severity::P1)
            ]
        );
        let (evaluated, firing) = evaluate("t", &Observation::Unreachable("refused".into()), RULES);
        assert_eq!(evaluated, UNREACHABLE_ONLY);
        assert_eq!(firing[0].severity, Severity::P1);
    }
}
