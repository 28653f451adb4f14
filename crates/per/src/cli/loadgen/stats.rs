//! What the measured phase counts: one latency histogram (µs, 3 significant digits) of the
//! acknowledged requests, counters, errors by kind, and the live progress line.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Error kind: a transfer or withdrawal tick found no unspent note ready.
pub const NO_NOTE_READY: &str = "no_note_ready";
/// Error kind: a tick found `--in-flight-max` requests already in flight.
pub const DROPPED_IN_FLIGHT_MAX: &str = "dropped_in_flight_max";
/// Error kind: a request still unanswered when the drain bound ran out.
pub const ABANDONED: &str = "abandoned";

struct Inner {
    latency_us: Histogram<u64>,
    ok: u64,
    /// The current `--report-every` interval (reset by [`Stats::take_interval`]).
    interval: Interval,
    errors: BTreeMap<String, u64>,
    /// Set by [`Stats::freeze`]: later outcomes are ignored, so the report stays consistent.
    frozen: bool,
}

/// Shared counters of the measured phase.
pub struct Stats {
    /// Ticks fired (each is one transaction the schedule asked for).
    pub sent: AtomicU64,
    /// Requests on the wire right now.
    pub in_flight: AtomicU64,
    inner: Mutex<Inner>,
}

/// The counts of one `--report-every` interval.
#[derive(Clone)]
pub struct Interval {
    /// Acknowledged transactions.
    pub ok: u64,
    /// Errors of every kind.
    pub errors: u64,
    /// Latencies of the acknowledged transactions.
    pub latency_us: Histogram<u64>,
}

/// A consistent copy of the counters.
pub struct Snapshot {
    /// Ticks fired.
    pub sent: u64,
    /// Acknowledged (2xx) transactions.
    pub ok: u64,
    /// Errors of every kind.
    pub errors: u64,
    /// Errors by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Latencies of the acknowledged transactions.
    pub latency_us: Histogram<u64>,
}

impl Stats {
    /// Empty counters.
    pub fn new() -> Result<Stats, hdrhistogram::CreationError> {
        // Auto-resizing: a latency is never out of range (3 significant digits always).
        let latency_us = Histogram::<u64>::new(3)?;
        let interval = Interval {
            ok: 0,
            errors: 0,
            latency_us: latency_us.clone(),
        };
        Ok(Stats {
            sent: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                latency_us,
                ok: 0,
                interval,
                errors: BTreeMap::new(),
                frozen: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent counters: keep counting.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An acknowledged transaction and its latency from the scheduled send time.
    pub fn record_ok(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut inner = self.lock();
        if inner.frozen {
            return;
        }
        inner.ok += 1;
        // Auto-resizes; saturates only if growing failed.
        if inner.latency_us.record(micros).is_err() {
            inner.latency_us.saturating_record(micros);
        }
        inner.interval.ok += 1;
        if inner.interval.latency_us.record(micros).is_err() {
            inner.interval.latency_us.saturating_record(micros);
        }
    }

    /// The counts since the previous call (the current interval), and a fresh interval.
    pub fn take_interval(&self) -> Interval {
        let mut inner = self.lock();
        let mut latency_us = inner.interval.latency_us.clone();
        latency_us.reset();
        std::mem::replace(
            &mut inner.interval,
            Interval {
                ok: 0,
                errors: 0,
                latency_us,
            },
        )
    }

    /// An error of `kind` (not in the latency histogram).
    pub fn record_error(&self, kind: &str) {
        self.record_errors(kind, 1);
    }

    /// `count` errors of `kind` at once.
    pub fn record_errors(&self, kind: &str, count: u64) {
        let mut inner = self.lock();
        if count > 0 && !inner.frozen {
            *inner.errors.entry(kind.to_owned()).or_insert(0) += count;
            inner.interval.errors += count;
        }
    }

    /// Ok count and p99 (ms) so far, for the progress line.
    fn progress(&self) -> (u64, u64, Option<f64>) {
        let inner = self.lock();
        let errors = inner.errors.values().sum();
        let p99 = (inner.ok > 0).then(|| to_ms(inner.latency_us.value_at_quantile(0.99)));
        (inner.ok, errors, p99)
    }

    /// Stops counting and returns the final counters; every tick still unanswered becomes an
    /// error of kind [`ABANDONED`], so `ok + errors == sent`.
    pub fn freeze(&self) -> Snapshot {
        let mut inner = self.lock();
        inner.frozen = true;
        let sent = self.sent.load(Ordering::Acquire);
        let answered = inner.ok + inner.errors.values().sum::<u64>();
        if sent > answered {
            *inner.errors.entry(ABANDONED.to_owned()).or_insert(0) += sent - answered;
        }
        Snapshot {
            sent,
            ok: inner.ok,
            errors: inner.errors.values().sum(),
            errors_by_kind: inner.errors.clone(),
            latency_us: inner.latency_us.clone(),
        }
    }
}

/// Microseconds to milliseconds, rounded to the microsecond.
pub fn to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Prints `label: elapsed sent ok errors rate p99` on stderr (a terminal) every second until
/// `stop` is notified; the line is rewritten in place and cleared at the end.
pub async fn progress_loop(
    stats: std::sync::Arc<Stats>,
    started: tokio::time::Instant,
    stop: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_ok = 0u64;
    let mut last_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.notified() => break,
        }
        let (ok, errors, p99) = stats.progress();
        let now = tokio::time::Instant::now();
        let window = now.duration_since(last_at).as_secs_f64().max(1e-3);
        let rate = (ok - last_ok.min(ok)) as f64 / window;
        last_ok = ok;
        last_at = now;
        let p99 = p99.map_or_else(|| "-".to_owned(), |p| format!("{p:.1}ms"));
        let line = format!(
            "loadgen {:>5.0}s  sent {}  ok {}  errors {}  rate {:.0}/s  p99 {}  in-flight {}",
            now.duration_since(started).as_secs_f64(),
            stats.sent.load(Ordering::Relaxed),
            ok,
            errors,
            rate,
            p99,
            stats.in_flight.load(Ordering::Relaxed),
        );
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{line}");
        let _ = stderr.flush();
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "\r\x1b[2K");
    let _ = stderr.flush();
}
