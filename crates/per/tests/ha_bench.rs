//! HA benchmarks (ignored by default; they print numbers for docs/BENCHMARKS.md):
//!
//! - `ha_bench_replication_lag`: a primary and a standby, `per loadgen --mix deposit --rate R`
//!   (default 1000 tx/s, `PER_BENCH_RATE`) for `PER_BENCH_SECS` (default 10) against the primary,
//!   while two threads poll `/pool/info` of both nodes every millisecond. For every seq the primary
//!   was first seen at (t_p), the lag is the time until the standby was first seen at that seq or
//!   beyond (t_s − t_p). Both polls add at most their period (≈ 1–2 ms with the HTTP round trip).
//! - `ha_bench_failover_times`: `PER_BENCH_KILLS` (default 10) kill -9s of the current primary; each
//!   time is from the kill to the first write acknowledged by the other node (a client resubmitting
//!   every 25 ms); the killed node is restarted as a standby before the next kill. The TTL is
//!   `PER_TEST_HA_TTL_SECS` (default 2).
//!
//! ```sh
//! cargo test -p per --test ha_bench -- --ignored --nocapture --test-threads 1
//! PER_TEST_HA_TTL_SECS=5 cargo test -p per --test ha_bench ha_bench_failover_times -- --ignored --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use common::{DEPOSIT_TOKEN, Node};
use ha_support::{ha_node, post_until_acked, start_standby, ttl_secs, unique_cluster, wait_for};
use per_wire::client::Wallet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at]
}

/// Polls `/pool/info` of `api` every millisecond until `stop`: (time, seq) at each change.
fn sampler(api: common::Api, stop: Arc<AtomicBool>, origin: Instant) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        if let Some((seq, _)) = ha_support::pool(&api)
            && out.last().is_none_or(|(_, s)| *s != seq)
        {
            out.push((origin.elapsed().as_secs_f64() * 1000.0, seq));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    out
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn ha_bench_replication_lag() {
    let rate = env_u64("PER_BENCH_RATE", 1000);
    let secs = env_u64("PER_BENCH_SECS", 10);
    let cluster = unique_cluster("benchlag");
    let mut primary = ha_node(&cluster, "node-a", "primary", &[]);
    primary.start();
    let mut standby = ha_node(&cluster, "node-b", "standby", &[]);
    start_standby(&mut standby);
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let p = {
        let (api, stop) = (primary.api(), stop.clone());
        std::thread::spawn(move || sampler(api, stop, origin))
    };
    let s = {
        let (api, stop) = (standby.api(), stop.clone());
        std::thread::spawn(move || sampler(api, stop, origin))
    };
    let out = std::process::Command::new(common::per_bin())
        .args([
            "loadgen",
            "--mix",
            "deposit",
            "--rate",
            &rate.to_string(),
            "--duration",
            &secs.to_string(),
            "--target",
            &primary.api().base,
            "--deposit-token",
            DEPOSIT_TOKEN,
            "--json",
        ])
        .output()
        .expect("per loadgen");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    let primary_samples = p.join().unwrap();
    let standby_samples = s.join().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let mut lags = Vec::new();
    let mut j = 0;
    for (tp, seq) in &primary_samples {
        while j < standby_samples.len() && standby_samples[j].1 < *seq {
            j += 1;
        }
        if let Some((ts, _)) = standby_samples.get(j) {
            lags.push((ts - tp).max(0.0));
        }
    }
    lags.sort_by(f64::total_cmp);
    let (pseq, sseq) = (
        primary_samples.last().unwrap().1,
        standby_samples.last().unwrap().1,
    );
    println!(
        "replication lag at {rate} tx/s for {secs} s (loadgen ok {} of {} sent, primary write p50 {} ms p99 {} ms): {} seqs compared, lag p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; final seq primary {pseq} standby {sseq}",
        report["ok"],
        report["sent"],
        report["p50_ms"],
        report["p99_ms"],
        lags.len(),
        quantile(&lags, 0.5),
        quantile(&lags, 0.9),
        quantile(&lags, 0.99),
        quantile(&lags, 1.0)
    );
    assert_eq!(pseq, sseq, "the standby ended behind");
    assert!(lags.len() > 100, "too few samples");
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn ha_bench_failover_times() {
    let kills = env_u64("PER_BENCH_KILLS", 10);
    let cluster = unique_cluster("benchfo");
    let mut a = ha_node(&cluster, "node-a", "primary", &[]);
    a.start();
    let mut b = ha_node(&cluster, "node-b", "standby", &[]);
    start_standby(&mut b);
    let mut wallet = Wallet::seeded(99);
    let (mut primary, mut standby): (&mut Node, &mut Node) = (&mut a, &mut b);
    let mut times = Vec::new();
    for round in 0..kills {
        // Some writes on the primary, the standby caught up.
        for _ in 0..20 {
            primary.api().deposit_new(&mut wallet, 10);
        }
        let seq = primary.api().pool_info()["seq"].as_u64().unwrap();
        wait_for(standby, "catch-up", Duration::from_secs(20), |api| {
            ha_support::pool(api).is_some_and(|(s, _)| s == seq)
        });
        primary.kill9();
        let killed = Instant::now();
        let note = wallet.note(10);
        let body = wallet.deposit_body(&note);
        let r = post_until_acked(
            &standby.api(),
            "/deposit",
            &body,
            Some(DEPOSIT_TOKEN),
            Duration::from_secs(60),
        );
        let ms = killed.elapsed().as_secs_f64() * 1000.0;
        println!(
            "kill {}: failover {ms:.0} ms ({} attempts)",
            round + 1,
            r.attempts
        );
        times.push(ms);
        // The killed node comes back as a standby.
        primary.options.env.retain(|(k, _)| k != "DEPLOYMENT_MODE");
        primary
            .options
            .env
            .push(("DEPLOYMENT_MODE".to_owned(), "standby".to_owned()));
        start_standby(primary);
        std::mem::swap(&mut primary, &mut standby);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "failover over {} kill -9s with TTL {} s: min {:.0} ms, p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms, mean {:.0} ms",
        times.len(),
        ttl_secs(),
        times[0],
        quantile(&times, 0.5),
        quantile(&times, 0.9),
        times[times.len() - 1],
        mean
    );
}
