//! Alert dispatch of `per monitor`: one delivery queue and worker per configured channel (alerts
//! stay in order per channel, polling never waits for a slow channel); a failed delivery is
//! retried by [`crate::alert::deliver`], logged, and counted.
//!
//! Routing: P1 → PagerDuty + Slack + SMS, P2 → Slack + e-mail, P3 → Slack.

use crate::alert::{Action, Alert, AnyChannel, Channel, ChannelKind, RetryPolicy, deliver};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Alerts waiting per channel before new ones are counted as failed deliveries.
const QUEUE_MAX: usize = 256;
/// How long the end of the run waits for queued deliveries.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Counters the delivery workers and the poll loop share.
#[derive(Debug, Default)]
pub struct Stats {
    /// Polls evaluated.
    pub polls: AtomicU64,
    /// Deliveries queued.
    pub queued: AtomicU64,
    /// Deliveries finished (delivered or failed).
    pub finished: AtomicU64,
    /// Triggers delivered.
    pub alerts_sent: AtomicU64,
    /// Resolves delivered.
    pub resolves_sent: AtomicU64,
    /// Deliveries that failed (after their retries, or never queued).
    pub delivery_failures: AtomicU64,
}

/// One delivery queue and worker per configured channel.
pub struct Dispatcher {
    queues: Vec<(ChannelKind, mpsc::Sender<Arc<Alert>>)>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    stats: Arc<Stats>,
}

impl Dispatcher {
    /// Starts one worker per channel (on the current tokio runtime).
    pub fn start(channels: Vec<AnyChannel>, stats: Arc<Stats>, policy: RetryPolicy) -> Dispatcher {
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
    pub fn dispatch(&self, alert: Alert) {
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
    pub async fn finish(self) {
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
