//! `per loadgen --rate R --duration S [--target URL] [--mix deposit|transfer|mixed] [--json]`:
//! an open-loop load generator that spends real notes.
//!
//! **Open loop.** Tick `i` of the measured phase is due at `start + i/R`, whatever the node's
//! latency: the scheduler never waits for an answer, and each latency is measured from the tick's
//! *scheduled* instant to the end of the response (no coordinated omission). A tick that cannot be
//! sent — no unspent note ready, or `--in-flight-max` requests already in flight — is counted as an
//! error (`no_note_ready`, `dropped_in_flight_max`) and never blocks the schedule.
//!
//! **Workload.** Phase 1 (not measured) deposits a pool of notes — `--prepare-notes`, default
//! `clamp(2·R, 64, 20 000)` — with at most 256 deposits in flight, retrying `503`s. Phase 2 sends,
//! per `--mix`: `transfer` (default) spends a pooled note entirely into a receiver note, about half
//! the time with a change output, and puts the outputs back in the pool at the leaf indices the
//! node answered; `deposit` sends deposits only (no preparation); `mixed` sends ~10% deposits
//! (fed into the pool), ~85% transfers and ~5% withdrawals (a tenth of a note to
//! `11111111111111111111111111111111`, the change back into the pool). A spend refused with a 503
//! or never delivered (connection refused) returns its note to the pool; after any other error the
//! note is dropped. Above four times the prepared pool, transfers stop making change so memory
//! stays bounded on long runs. Notes come from `per::client::Wallet`, seeded by `--seed` (random
//! by default; reusing a seed against the same node replays the same notes and deposits).
//!
//! The deposit token comes from `PER_DEPOSIT_TOKEN` (or `--deposit-token`), else
//! `--deposit-token-file` / `PER_DEPOSIT_TOKEN_FILE`, else `<--data-dir>/deposit.token`
//! (`--data-dir` / `PER_DATA_DIR`, default `./per-data`). It is never printed.
//!
//! **Report.** With `--json`, exactly one JSON document on stdout:
//! ```text
//! { "target", "mix", "rate", "duration_secs", "measured_secs", "prepared_notes",
//!   "sent", "ok", "errors", "dropped", "error_rate", "achieved_rate",
//!   "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms",
//!   "errors_by_kind": {"<kind>": n, ...}, "interrupted", "max_error_rate", "passed" }
//! ```
//! - `sent`: ticks fired (each one transaction the schedule asked for); `ok + errors == sent`.
//! - `dropped`: the errors that never reached the wire (`no_note_ready` + `dropped_in_flight_max`).
//! - `achieved_rate`: `ok / measured_secs`, where `measured_secs` runs from the first tick to the
//!   last answer (the schedule plus the drain of in-flight requests).
//! - latencies (`*_ms`, milliseconds, µs precision, from an HDR histogram with 3 significant
//!   digits) cover acknowledged transactions only; `null` when none was.
//! - `errors_by_kind`: `http_<status>_<ErrorName>` (from the error body), `connect`, `timeout`,
//!   `io` (connection lost mid-request), `bad_response`, `no_note_ready`,
//!   `dropped_in_flight_max`, `abandoned` (still unanswered when the drain bound ran out).
//! - `passed`: false only when `--max-error-rate` is set and `error_rate` exceeds it.
//!
//! Without `--json`, the same in a few human lines. A progress line (elapsed, sent, ok, errors,
//! the last second's ok rate, p99 so far, in flight) is rewritten on stderr about once a second,
//! only when stderr is a terminal. SIGINT stops the schedule early; the summary is still printed
//! (`interrupted: true`).
//!
//! `--report-every SECS` prints one `interval t=…` line on stderr every SECS of the measured phase
//! (and one for the last partial interval): the interval's ok rate, ok and error counts, p50/p99/max
//! latency, then the node's RSS (`per_process_resident_memory_bytes`) and snapshot-writer state
//! (`per_snapshot_writer_lag_seconds`, `_age_seconds`, `_failures`, `_fulls_written`,
//! `_deltas_written`, `_coalesced`, `_state_clones`) read from `/metrics` (`-` when unreadable).
//! With `--json` the report gains `"report_every_secs"` and `"intervals": [{"t_secs", "ok",
//! "errors", "rate", "p50_ms", "p99_ms", "max_ms", "node": {"rss_bytes", ...} | null}, ...]`.
//!
//! `--ack-log FILE` appends one JSON line per acknowledged transaction, preparation deposits
//! included — `{"kind", "receipt_id", "seq", "new_root", "leaf_indices", "output_commitments"}`
//! (a deposit has `leaf_indices: [leaf_index]`, `output_commitments: [commitment]`) — written
//! before the transaction is counted, one `write` per line. No secret or note opening is logged.
//!
//! Exit codes: 0 the run completed (even with errors); 1 `--max-error-rate` exceeded, or the ack
//! log could not be written; 2 bad flags or no usable deposit token; 3 the node cannot be reached
//! (before or while preparing).

mod intervals;
mod stats;
mod workload;

use crate::cli::exit::Exit;
use anyhow::Context;
use clap::Args;
use per_node::config::DEFAULT_DATA_DIR;
use per_wire::client::{ApiClient, CallError};
use per_wire::tokens::Token;
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
pub use workload::Mix;

/// Highest accepted `--rate`.
const RATE_MAX: f64 = 1_000_000.0;
/// Smallest and largest default pool.
const POOL_MIN: usize = 64;
const POOL_MAX: usize = 20_000;

/// Flags of `per loadgen`.
#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// Transactions per second to schedule (open loop).
    #[arg(long)]
    pub rate: f64,
    /// How long to schedule: seconds, or with a unit (`90s`, `5m`, `1h`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,
    /// Base URL of the node.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// What to send: deposit | transfer | mixed.
    #[arg(long, value_enum, default_value_t = Mix::Transfer)]
    pub mix: Mix,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Data directory holding `deposit.token` (when no token is configured otherwise).
    #[arg(long, env = "PER_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Deposit bearer token (prefer PER_DEPOSIT_TOKEN_FILE).
    #[arg(long, env = "PER_DEPOSIT_TOKEN", hide_env_values = true)]
    pub deposit_token: Option<String>,
    /// File holding the deposit token.
    #[arg(long, env = "PER_DEPOSIT_TOKEN_FILE")]
    pub deposit_token_file: Option<PathBuf>,
    /// Seed of the wallet (notes, secrets, deposit references) [default: random].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Requests in flight at most; a tick past it is counted as `dropped_in_flight_max`.
    #[arg(long, default_value_t = 10_000)]
    pub in_flight_max: u64,
    /// Exit 1 when errors/sent exceeds this fraction (0..=1) [default: never].
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Append one JSON line per acknowledged transaction to FILE.
    #[arg(long, value_name = "FILE")]
    pub ack_log: Option<PathBuf>,
    /// Notes to deposit before measuring [default: clamp(2·rate, 64, 20000)].
    #[arg(long)]
    pub prepare_notes: Option<usize>,
    /// Every SECS of the measured phase, a line on stderr (rate, p50/p99/max, errors, and the
    /// node's RSS and snapshot-writer state from `/metrics`); with `--json`, also the report's
    /// `intervals` array.
    #[arg(long, value_name = "SECS")]
    pub report_every: Option<u64>,
}

/// Parses `90`, `90s`, `1.5m`, `1h`, `250ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 60, 90s, 5m, 1h)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit `{unit}` (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 30.0 * 86_400.0 {
        return Err("duration must be > 0 and at most 30 days".to_owned());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The checked plan of a run.
struct Plan {
    ticks: u64,
    pool: usize,
    timeout: Duration,
    seed: u64,
}

fn plan(args: &LoadgenArgs) -> anyhow::Result<Plan> {
    if !args.rate.is_finite() || args.rate <= 0.0 || args.rate > RATE_MAX {
        return Err(Exit::usage(format!(
            "--rate must be > 0 and ≤ {RATE_MAX} transactions per second"
        )));
    }
    let ticks = (args.rate * args.duration.as_secs_f64() + 1e-9).floor();
    if ticks < 1.0 {
        return Err(Exit::usage(
            "--rate × --duration must schedule at least one transaction",
        ));
    }
    if args.timeout_ms == 0 || args.timeout_ms > 3_600_000 {
        return Err(Exit::usage("--timeout-ms must be between 1 and 3600000"));
    }
    if args.report_every == Some(0) {
        return Err(Exit::usage("--report-every must be > 0 seconds"));
    }
    if args.in_flight_max == 0 {
        return Err(Exit::usage("--in-flight-max must be > 0"));
    }
    if let Some(max) = args.max_error_rate
        && !(0.0..=1.0).contains(&max)
    {
        return Err(Exit::usage("--max-error-rate must be between 0 and 1"));
    }
    if args.prepare_notes == Some(0) && args.mix.spends() {
        return Err(Exit::usage(
            "--prepare-notes must be > 0 for a mix that spends notes",
        ));
    }
    let url = reqwest::Url::parse(&args.target)
        .map_err(|e| Exit::usage(format!("--target {}: {e}", args.target)))?;
    if url.scheme() != "http" {
        return Err(Exit::usage(
            "--target must be an http:// URL (this build has no TLS client)",
        ));
    }
    let default_pool = ((args.rate * 2.0).ceil() as usize).clamp(POOL_MIN, POOL_MAX);
    Ok(Plan {
        ticks: ticks as u64,
        pool: if args.mix.spends() {
            args.prepare_notes.unwrap_or(default_pool)
        } else {
            0
        },
        timeout: Duration::from_millis(args.timeout_ms),
        seed: args.seed.unwrap_or_else(rand::random),
    })
}

/// The deposit token: `PER_DEPOSIT_TOKEN`, else the token file, else `<data-dir>/deposit.token`.
fn deposit_token(args: &LoadgenArgs) -> anyhow::Result<Token> {
    if let Some(value) = &args.deposit_token {
        let value = value.trim();
        if value.is_empty() {
            return Err(Exit::usage("PER_DEPOSIT_TOKEN is empty"));
        }
        return Ok(Token::new(value));
    }
    let path = args
        .deposit_token_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("deposit.token"));
    Token::read_file(&path).map_err(|e| {
        Exit::usage(format!(
            "no deposit token: {e} (set PER_DEPOSIT_TOKEN, --deposit-token-file or --data-dir)"
        ))
    })
}

/// Runs the load generator.
pub fn exec(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    let plan = plan(&args)?;
    let token = deposit_token(&args)?;
    let ack =
        match &args.ack_log {
            Some(path) => Some(workload::AckLog::open(path).map_err(|e| {
                Exit::usage(format!("cannot open --ack-log {}: {e}", path.display()))
            })?),
            None => None,
        };
    let client = ApiClient::new(&args.target, plan.timeout, Some(token))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("per-loadgen")
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(run(&args, &plan, client, ack))?;
    runtime.shutdown_timeout(Duration::from_millis(100));

    if args.json {
        println!("{}", report.json);
    } else {
        print!("{}", report.human);
    }
    if report.ack_failures > 0 {
        return Err(Exit::problem(format!(
            "{} acknowledged transactions could not be written to the ack log",
            report.ack_failures
        )));
    }
    if !report.passed {
        eprintln!(
            "per loadgen: error rate {:.4} exceeds --max-error-rate {}",
            report.error_rate,
            args.max_error_rate.unwrap_or(0.0)
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

struct Report {
    json: Value,
    human: String,
    error_rate: f64,
    passed: bool,
    ack_failures: u64,
}

async fn run(
    args: &LoadgenArgs,
    plan: &Plan,
    client: ApiClient,
    ack: Option<workload::AckLog>,
) -> anyhow::Result<Report> {
    // Is anything there? (Exit 3 rather than a run of connection errors.)
    if let Err(error) = client.get_json("/pool/info").await {
        let reachable_but_odd = matches!(error, CallError::Http { .. } | CallError::BadResponse(_));
        let message = format!("{}/pool/info: {error}", client.base());
        return Err(if reachable_but_odd {
            Exit::unreachable(format!("{message} (is this a per node?)"))
        } else {
            Exit::unreachable(format!("cannot reach the node: {message}"))
        });
    }
    let progress = std::io::stderr().is_terminal();
    let stats = Arc::new(stats::Stats::new().context("latency histogram")?);
    let pool_cap = plan.pool.saturating_mul(4).max(256);
    let ctx = Arc::new(workload::Ctx::new(
        client, stats, ack, pool_cap, plan.seed, args.mix,
    ));
    if plan.pool > 0 {
        workload::prepare(&ctx, plan.pool, progress).await?;
    }
    let schedule = workload::Schedule {
        rate: args.rate,
        ticks: plan.ticks,
        in_flight_max: args.in_flight_max,
        drain_max: plan.timeout + Duration::from_secs(2),
    };
    let intervals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop_intervals = Arc::new(tokio::sync::Notify::new());
    let interval_task = args.report_every.map(|secs| {
        tokio::spawn(intervals::report_loop(
            ctx.stats.clone(),
            ctx.client.clone(),
            Duration::from_secs(secs),
            stop_intervals.clone(),
            intervals.clone(),
        ))
    });
    let measured = workload::measure(&ctx, &schedule, progress).await;
    if let Some(task) = interval_task {
        stop_intervals.notify_one();
        let _ = task.await;
    }
    let ack_failures = ctx.ack.as_ref().map_or(0, workload::AckLog::failures);
    let mut report = report(args, plan, &measured, ack_failures);
    if let Some(secs) = args.report_every {
        let intervals = std::mem::take(&mut *intervals.lock().unwrap_or_else(|e| e.into_inner()));
        report.json["report_every_secs"] = json!(secs);
        report.json["intervals"] = Value::Array(intervals);
    }
    Ok(report)
}

fn report(
    args: &LoadgenArgs,
    plan: &Plan,
    measured: &workload::Measured,
    ack_failures: u64,
) -> Report {
    let snap = &measured.snapshot;
    let secs = measured.elapsed.as_secs_f64().max(1e-9);
    let achieved_rate = snap.ok as f64 / secs;
    let error_rate = if snap.sent == 0 {
        0.0
    } else {
        snap.errors as f64 / snap.sent as f64
    };
    let passed = args.max_error_rate.is_none_or(|max| error_rate <= max);
    let dropped = [stats::NO_NOTE_READY, stats::DROPPED_IN_FLIGHT_MAX]
        .iter()
        .filter_map(|kind| snap.errors_by_kind.get(*kind))
        .sum::<u64>();
    let hist = &snap.latency_us;
    let any = snap.ok > 0;
    let quantile = |q: f64| any.then(|| stats::to_ms(hist.value_at_quantile(q)));
    let max_ms = any.then(|| stats::to_ms(hist.max()));
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let mean_ms = any.then(|| round(hist.mean() / 1000.0));
    let json = json!({
        "target": args.target,
        "mix": args.mix.as_str(),
        "rate": args.rate,
        "duration_secs": args.duration.as_secs_f64(),
        "measured_secs": round(secs),
        "prepared_notes": plan.pool,
        "sent": snap.sent,
        "ok": snap.ok,
        "errors": snap.errors,
        "dropped": dropped,
        "error_rate": error_rate,
        "achieved_rate": round(achieved_rate),
        "p50_ms": quantile(0.50),
        "p90_ms": quantile(0.90),
        "p99_ms": quantile(0.99),
        "p999_ms": quantile(0.999),
        "max_ms": max_ms,
        "mean_ms": mean_ms,
        "errors_by_kind": snap.errors_by_kind,
        "interrupted": measured.interrupted,
        "max_error_rate": args.max_error_rate,
        "passed": passed,
    });
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    let mut human = format!(
        "per loadgen: {} mix at {}/s for {:.1}s against {}{}\n\
         sent {}  ok {}  errors {} ({:.2}%, {} never sent)  achieved {:.1}/s over {:.1}s\n\
         latency ms (from scheduled send): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n",
        args.mix.as_str(),
        args.rate,
        args.duration.as_secs_f64(),
        args.target,
        if measured.interrupted {
            " (interrupted)"
        } else {
            ""
        },
        snap.sent,
        snap.ok,
        snap.errors,
        error_rate * 100.0,
        dropped,
        achieved_rate,
        secs,
        ms(quantile(0.50)),
        ms(quantile(0.90)),
        ms(quantile(0.99)),
        ms(quantile(0.999)),
        ms(max_ms),
    );
    if !snap.errors_by_kind.is_empty() {
        let kinds: Vec<String> = snap
            .errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        human.push_str(&format!("errors by kind: {}\n", kinds.join(", ")));
    }
    Report {
        json,
        human,
        error_rate,
        passed,
        ack_failures,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
