//! The monitor's loop: poll every target, evaluate, track incidents, dispatch alerts; stop at
//! the end of the duration or on a signal.

use super::dispatch::{Dispatcher, Stats};
use super::rules::{Observation, Rules, Target, evaluate, probe};
use crate::alert::dedup::{Active, Tracker};
use crate::alert::{Channels, RetryPolicy};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// What a run ended with.
pub struct RunOutcome {
    /// The counters at the end.
    pub stats: Arc<Stats>,
    /// Conditions still active at the end.
    pub active: Vec<Active>,
    /// Why the run ended (`duration elapsed`, `SIGTERM`, ...).
    pub stopped_by: &'static str,
}

/// Polls every target each `interval` until `duration` passes or `signal` resolves (with the
/// reason to report), alerting through `channels`; then waits (bounded) for queued deliveries.
pub async fn run(
    targets: Vec<Target>,
    channels: Channels,
    http: reqwest::Client,
    interval: Duration,
    duration: Option<Duration>,
    rules: Rules,
    signal: impl Future<Output = &'static str>,
) -> RunOutcome {
    let stats = Arc::new(Stats::default());
    let dispatcher = Dispatcher::start(channels.on, stats.clone(), RetryPolicy::default());
    let mut tracker = Tracker::new();
    let deadline = duration.map(|d| Instant::now() + d);
    let stop = stop_when(deadline, signal);
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

impl RunOutcome {
    /// The `--json` summary: `{targets, polls, alerts_sent, resolves_sent, delivery_failures,
    /// conditions_active, stopped_by}`.
    pub fn summary(&self, targets: &[&str]) -> Value {
        let active: Vec<Value> = self
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
        let stats = &self.stats;
        json!({
            "targets": targets,
            "polls": stats.polls.load(Ordering::Relaxed),
            "alerts_sent": stats.alerts_sent.load(Ordering::Relaxed),
            "resolves_sent": stats.resolves_sent.load(Ordering::Relaxed),
            "delivery_failures": stats.delivery_failures.load(Ordering::Relaxed),
            "conditions_active": active,
            "stopped_by": self.stopped_by,
        })
    }
}

/// Resolves when the run should stop: the deadline passed, or `signal` resolved.
async fn stop_when(
    deadline: Option<Instant>,
    signal: impl Future<Output = &'static str>,
) -> &'static str {
    let until = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = until => "duration elapsed",
        signal = signal => signal,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
