//! The Redis state cache (`PER_REDIS_URL`): the node taking writes keeps `per:<cluster>:state`
//! (and a PUBLISH on the channel of that name) at its committed seq and root; an HA primary
//! publishes its role and epoch, and after a takeover the new primary does; an unreachable or
//! silent Redis never delays an acknowledgement and only degrades `/health`.
//!
//! Needs Redis on `PER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); the HA case also needs
//! the test Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use common::Node;
use ha_support::{ha_node, start_standby, unique_cluster, wait_for};
use per_testkit::Poll;
use per_wire::client::Wallet;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn redis_url() -> String {
    std::env::var("PER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn redis_addr() -> String {
    redis_url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

fn command(stream: &mut BufReader<TcpStream>, args: &[&str]) -> Option<String> {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.get_mut().write_all(out.as_bytes()).unwrap();
    read_reply(stream)
}

fn read_reply(stream: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    stream.read_line(&mut line).unwrap();
    let line = line.trim_end();
    match &line[..1] {
        "$" => {
            let len: i64 = line[1..].parse().unwrap();
            if len < 0 {
                return None;
            }
            let mut buf = vec![0; len as usize + 2];
            stream.read_exact(&mut buf).unwrap();
            buf.truncate(len as usize);
            Some(String::from_utf8(buf).unwrap())
        }
        "*" => {
            let n: usize = line[1..].parse().unwrap();
            let parts: Vec<String> = (0..n).filter_map(|_| read_reply(stream)).collect();
            Some(parts.join("\n"))
        }
        _ => Some(line[1..].to_owned()),
    }
}

fn connect() -> BufReader<TcpStream> {
    let stream = TcpStream::connect(redis_addr()).expect("the test Redis");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    BufReader::new(stream)
}

fn cached(cluster: &str) -> Option<Value> {
    let mut redis = connect();
    command(&mut redis, &["GET", &format!("per:{cluster}:state")])
        .map(|text| serde_json::from_str(&text).expect("JSON state"))
}

/// Waits until the cached state shows `seq` and `root` (returns it).
fn wait_cached(cluster: &str, seq: u64, root: &Value) -> Value {
    Poll::new(Duration::from_secs(10))
        .every(Duration::from_millis(10))
        .wait_or(
            &format!("redis to show seq {seq}"),
            || format!("redis holds {:?}", cached(cluster)),
            || {
                cached(cluster)
                    .filter(|state| state["seq"].as_u64() == Some(seq) && &state["root"] == root)
            },
        )
}

#[test]
fn ha_redis_state_key_follows_the_committed_seq_and_the_channel_publishes_it() {
    let cluster = unique_cluster("redis");
    let mut node = Node::new();
    node.options.cluster = Some(cluster.clone());
    node.options.env = vec![("PER_REDIS_URL".to_owned(), redis_url())];
    node.start();
    let api = node.api();
    // A subscriber on the channel.
    let mut subscriber = connect();
    command(
        &mut subscriber,
        &["SUBSCRIBE", &format!("per:{cluster}:state")],
    );

    let mut wallet = Wallet::seeded(77);
    let mut lags = Vec::new();
    for round in 0..5 {
        for _ in 0..(round * 7 + 1) {
            api.deposit_new(&mut wallet, 10);
        }
        let info = api.pool_info();
        let seq = info["seq"].as_u64().unwrap();
        let started = Instant::now();
        let state = wait_cached(&cluster, seq, &info["merkle_root"]);
        lags.push(started.elapsed().as_millis());
        assert_eq!(state["role"], "single");
        assert_eq!(state["status"], "accepting_writes");
        assert_eq!(state["cluster"], cluster.as_str());
        assert_eq!(state["epoch"], 1);
    }
    println!("redis key caught up {lags:?} ms after the write was acknowledged");
    let message = read_reply(&mut subscriber).expect("a published message");
    assert!(message.starts_with("message\n"), "{message}");
    let published: Value = serde_json::from_str(message.lines().last().unwrap()).unwrap();
    assert!(published["seq"].as_u64().is_some(), "{message}");
    let health = api.get_ok("/health");
    assert_eq!(health.json["redis"], "ok", "{}", health.text);
    assert_eq!(health.json["status"], "healthy", "{}", health.text);

    // A drain shows in the cache.
    let r = api.post_ok("/admin/drain", &Value::Null, Some(common::ADMIN_TOKEN));
    assert_eq!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cached(&cluster).unwrap()["status"] != "draining" {
        assert!(Instant::now() < deadline, "{:?}", cached(&cluster));
        std::thread::sleep(Duration::from_millis(20));
    }
    node.sigterm(Duration::from_secs(15)).expect("stopped");
}

#[test]
fn ha_redis_primary_publishes_role_and_epoch_and_the_new_primary_takes_over_the_key() {
    let cluster = unique_cluster("redisha");
    let env = [("PER_REDIS_URL", redis_url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut primary = ha_node(&cluster, "node-a", "primary", &env);
    primary.start();
    let mut standby = ha_node(&cluster, "node-b", "standby", &env);
    start_standby(&mut standby);
    let mut wallet = Wallet::seeded(78);
    for _ in 0..10 {
        primary.api().deposit_new(&mut wallet, 10);
    }
    let info = primary.api().pool_info();
    let state = wait_cached(&cluster, 10, &info["merkle_root"]);
    assert_eq!(state["role"], "primary");
    assert_eq!(state["node_id"], "node-a");
    let epoch = state["epoch"].as_u64().unwrap();
    // The standby does not publish, and is healthy on this account.
    let health = standby.api().get_ok("/health");
    assert_eq!(health.json["redis"], "ok", "{}", health.text);
    primary.kill9();
    wait_for(&standby, "the takeover", Duration::from_secs(30), |api| {
        api.get("/readyz").is_ok_and(|r| r.status == 200)
    });
    standby.api().deposit_new(&mut wallet, 10);
    let info = standby.api().pool_info();
    let state = wait_cached(&cluster, 11, &info["merkle_root"]);
    assert_eq!(state["node_id"], "node-b");
    assert_eq!(state["role"], "primary");
    assert!(state["epoch"].as_u64().unwrap() > epoch, "{state}");
}

#[test]
fn ha_redis_unreachable_or_silent_never_blocks_writes_and_degrades_health() {
    // Port 1: connection refused. A listener that never answers: every command times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("redis://{}", silent.local_addr().unwrap());
    for url in ["redis://127.0.0.1:1".to_owned(), silent_url] {
        let mut node = Node::new();
        node.options.env = vec![("PER_REDIS_URL".to_owned(), url.clone())];
        node.start();
        let api = node.api();
        let mut wallet = Wallet::seeded(79);
        let started = Instant::now();
        for _ in 0..50 {
            api.deposit_new(&mut wallet, 10);
        }
        let elapsed = started.elapsed();
        println!(
            "{url}: 50 sequential deposits acknowledged in {} ms",
            elapsed.as_millis()
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "writes were slowed: {elapsed:?}"
        );
        let health = api.get_ok("/health");
        assert_eq!(health.status, 200, "{}", health.text);
        assert_eq!(health.json["status"], "degraded", "{}", health.text);
        assert_eq!(health.json["redis"], "unavailable", "{}", health.text);
        assert!(
            health.json["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r.as_str().unwrap().contains("redis")),
            "{}",
            health.text
        );
        assert_eq!(api.get_ok("/readyz").status, 200);
        node.sigterm(Duration::from_secs(15)).expect("stopped");
    }
    // A bad URL is a usage error at start.
    let node = Node::new();
    let options = common::ServeOptions {
        env: vec![("PER_REDIS_URL".to_owned(), "rediss://x".to_owned())],
        ..Default::default()
    };
    let (status, log) = node.run_expect_exit(&options, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{log}");
}
