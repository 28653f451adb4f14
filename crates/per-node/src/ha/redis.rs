//! The Redis state cache (`PER_REDIS_URL`, runbook "Redis: current state cache"): a node that takes
//! writes (the primary, or a single node) publishes `{root, seq, epoch, role, status, node_id,
//! cluster, updated_at_ms}` to the key `per:<cluster>:state` (`SET`) and on the channel of the same
//! name (`PUBLISH`) after its commit groups.
//!
//! Off the write path: a tokio task polls the committed seq (an atomic, set by the sequencer once a
//! group is durable) every [`POLL_INTERVAL`], so bursts of groups coalesce to the latest state and
//! the sequencer never waits for Redis. The pair (seq, root) is read under the state's read lock on a
//! blocking thread. A missing or unreachable Redis only degrades `/health` (reason "redis state
//! cache unavailable"); it is retried every [`RETRY_INTERVAL`]. Standbys do not publish.
//!
//! The client is the `redis` crate (one multiplexed connection; `AUTH`/`SELECT` come from the URL:
//! `redis://[user:password@]host[:port][/db]`). No TLS (`rediss://` is refused at start).

use crate::clock::unix_millis;
use crate::config::DeploymentMode;
use crate::node::shared::Shared;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the committed seq is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The state is republished at least this often (so the key's `updated_at_ms` shows liveness).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before reconnecting after a failure.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Bound on connecting and on each command.
pub const IO_TIMEOUT: Duration = Duration::from_millis(1000);

/// Where to publish.
#[derive(Clone)]
pub struct RedisTarget {
    /// The whole URL (may hold a password: never printed).
    url: String,
    host: String,
    port: u16,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisTarget({})", self.address())
    }
}

impl RedisTarget {
    /// Parses `redis://[user:password@]host[:port][/db]`.
    pub fn parse(url: &str) -> Result<RedisTarget, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if parsed.scheme() != "redis" {
            return Err(format!(
                "scheme {} is not supported (redis:// only)",
                parsed.scheme()
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| "the URL has no host".to_owned())?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        match parsed.path().trim_start_matches('/') {
            "" => {}
            text => {
                text.parse::<u32>()
                    .map_err(|_| format!("database {text} is not a number"))?;
            }
        }
        Ok(RedisTarget {
            url: url.to_owned(),
            host,
            port: parsed.port().unwrap_or(6379),
        })
    }

    /// `host:port`, for messages (never the password).
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The key (and channel) of a cluster's state.
pub fn state_key(cluster: &str) -> String {
    format!("per:{cluster}:state")
}

/// One RESP connection.
/// One connection to Redis, every command bounded by [`IO_TIMEOUT`].
struct Connection {
    inner: redis::aio::MultiplexedConnection,
}

impl Connection {
    async fn open(target: &RedisTarget) -> Result<Connection, String> {
        let client =
            redis::Client::open(target.url.as_str()).map_err(|e| format!("redis URL: {e}"))?;
        let inner = tokio::time::timeout(IO_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| format!("connecting to {} timed out", target.address()))?
            .map_err(|e| format!("cannot connect to {}: {e}", target.address()))?;
        Ok(Connection { inner })
    }

    /// `SET key value` then `PUBLISH key value`.
    async fn set_and_publish(&mut self, key: &str, value: &str) -> Result<(), String> {
        tokio::time::timeout(IO_TIMEOUT, async {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query_async::<()>(&mut self.inner)
                .await?;
            redis::cmd("PUBLISH")
                .arg(key)
                .arg(value)
                .query_async::<i64>(&mut self.inner)
                .await
        })
        .await
        .map_err(|_| "command timed out".to_owned())?
        .map(|_| ())
        .map_err(|e| format!("redis: {e}"))
    }
}

/// What is published.
fn status_of(shared: &Shared) -> &'static str {
    if shared.is_fenced() {
        "fenced"
    } else if shared.flags.poisoned.load(Ordering::Acquire) {
        "poisoned"
    } else if shared.flags.halted.load(Ordering::Acquire) {
        "halted"
    } else if shared.is_draining() {
        "draining"
    } else if shared.flags.shutting_down.load(Ordering::Acquire) {
        "shutting_down"
    } else if shared.accepting_writes() {
        "accepting_writes"
    } else {
        "not_accepting_writes"
    }
}

/// Starts the publisher task on the current runtime. It runs until the runtime stops.
pub fn spawn_publisher(
    shared: Arc<Shared>,
    target: RedisTarget,
    cluster: String,
    node_id: String,
) -> tokio::task::JoinHandle<()> {
    shared.redis.configured.store(true, Ordering::Release);
    tokio::spawn(publish_loop(shared, target, cluster, node_id))
}

fn record_error(shared: &Shared, error: &str) {
    let was_ok = shared.redis.ok.swap(false, Ordering::AcqRel);
    if let Ok(mut last) = shared.redis.last_error.lock() {
        last.clear();
        last.push_str(error);
    }
    if was_ok {
        tracing::warn!(
            error,
            "redis state cache unavailable; writes are unaffected"
        );
    }
}

async fn publish_loop(shared: Arc<Shared>, target: RedisTarget, cluster: String, node_id: String) {
    let key = state_key(&cluster);
    let mut connection: Option<Connection> = None;
    let mut published: Option<(u64, u64, &'static str, &'static str)> = None;
    let mut published_at = Instant::now();
    let mut retry_at = Instant::now();
    // Until the first success the cache counts as unavailable.
    record_error(&shared, "not connected yet");
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let role = shared.role();
        if role == DeploymentMode::Standby {
            // The primary publishes; a standby keeps quiet (and healthy on this account).
            shared.redis.ok.store(true, Ordering::Release);
            continue;
        }
        let seq_hint = shared.metrics.seq.get().max(0) as u64;
        let status = status_of(&shared);
        let current = (seq_hint, shared.epoch(), role.as_str(), status);
        if published == Some(current) && published_at.elapsed() < REFRESH_INTERVAL {
            continue;
        }
        if connection.is_none() {
            if Instant::now() < retry_at {
                continue;
            }
            match Connection::open(&target).await {
                Ok(c) => connection = Some(c),
                Err(error) => {
                    record_error(&shared, &error);
                    retry_at = Instant::now() + RETRY_INTERVAL;
                    continue;
                }
            }
        }
        // (seq, root) as one consistent pair, read on a blocking thread (the sequencer holds the
        // write lock while it commits a group).
        let reader = shared.clone();
        let pair = tokio::task::spawn_blocking(move || {
            reader.read_state().map(|s| (s.seq(), s.root().to_hex()))
        })
        .await
        .ok()
        .flatten();
        let (seq, root) = match pair {
            Some((seq, root)) => (seq, Some(root)),
            None => (seq_hint, None),
        };
        let value = json!({
            "cluster": cluster,
            "node_id": node_id,
            "role": role.as_str(),
            "status": status,
            "epoch": shared.epoch(),
            "seq": seq,
            "root": root,
            "updated_at_ms": unix_millis(),
        })
        .to_string();
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let result = conn.set_and_publish(&key, &value).await;
        match result {
            Ok(_) => {
                if !shared.redis.ok.swap(true, Ordering::AcqRel) {
                    tracing::info!(redis = %target.address(), key, "publishing the state to redis");
                }
                shared.redis.published_seq.store(seq, Ordering::Release);
                published = Some((seq_hint, current.1, current.2, current.3));
                published_at = Instant::now();
            }
            Err(error) => {
                record_error(&shared, &error);
                connection = None;
                retry_at = Instant::now() + RETRY_INTERVAL;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let t = RedisTarget::parse("redis://:pw@10.0.0.1:6380/2").expect("parse");
        assert_eq!(t.address(), "10.0.0.1:6380");
        assert!(
            !format!("{t:?}").contains("pw"),
            "Debug never shows the password"
        );
        let t = RedisTarget::parse("redis://localhost").expect("parse");
        assert_eq!(t.port, 6379);
        assert!(RedisTarget::parse("rediss://x").is_err());
        assert!(RedisTarget::parse("redis://x/abc").is_err());
        assert_eq!(state_key("c1"), "per:c1:state");
    }
}
