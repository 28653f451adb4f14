//! Helpers of the `ha_*` tests (a module of those test crates, like `common`): HA nodes
//! of a unique cluster on the test Postgres, waiting helpers, and a client that retries a write
//! byte-identically until it is acknowledged.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod proxy_drill;

use crate::common::{Api, Node};
pub use crate::common::{database_url, unique_cluster};
use per_testkit::Poll;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Lease TTL of the test clusters (short, so takeovers are quick); `PER_TEST_HA_TTL_SECS`
/// overrides it (e.g. 5 to measure the failover time with a production-like TTL).
pub fn ttl_secs() -> u64 {
    std::env::var("PER_TEST_HA_TTL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// An HA node of `cluster` (not started), with extra environment.
pub fn ha_node(cluster: &str, node_id: &str, mode: &str, extra: &[(&str, &str)]) -> Node {
    let mut node = Node::new();
    set_mode(&mut node, cluster, node_id, mode);
    for (name, value) in extra {
        node.options
            .env
            .push(((*name).to_owned(), (*value).to_owned()));
    }
    node
}

/// Makes `node` an HA node of `cluster` with `node_id` in `mode` (its environment replaced).
pub fn set_mode(node: &mut Node, cluster: &str, node_id: &str, mode: &str) {
    node.options.cluster = Some(cluster.to_owned());
    node.options.env = vec![
        ("DEPLOYMENT_MODE".to_owned(), mode.to_owned()),
        ("PER_DATABASE_URL".to_owned(), database_url()),
        ("PER_NODE_ID".to_owned(), node_id.to_owned()),
        ("PER_LEASE_TTL_SECS".to_owned(), ttl_secs().to_string()),
        // These tests exercise failover, not the shared log's authentication (ha_log_auth.rs).
        ("PER_HA_INSECURE_LOG".to_owned(), "1".to_owned()),
    ];
}

/// Polls until `check` holds (or fails the test with `what` and the node's log).
pub fn wait_for(node: &Node, what: &str, timeout: Duration, mut check: impl FnMut(&Api) -> bool) {
    let api = node.api();
    Poll::new(timeout).wait_or(
        what,
        || format!("node log:\n{}", node.log()),
        || check(&api).then_some(()),
    );
}

/// Spawns a node that must come up as a standby.
pub fn start_standby(node: &mut Node) {
    node.spawn();
    wait_for(
        node,
        "the standby to serve",
        Duration::from_secs(20),
        |api| {
            api.get("/health")
                .is_ok_and(|r| r.json["role"] == "standby")
        },
    );
}

/// How a retried write ended.
#[derive(Debug, Clone)]
pub struct Retried {
    /// The acknowledgement.
    pub resp: crate::common::Resp,
    /// Attempts made (1: acknowledged at once).
    pub attempts: u32,
    /// Whether an earlier attempt's outcome was unknown (connection error or timeout after
    /// sending): the acknowledgement may be of a resubmission that had already been applied.
    pub in_doubt: bool,
}

/// Sends the same bytes until a 200 (retrying on 5xx and connection errors, for at most
/// `timeout`). Any 4xx fails the test.
pub fn post_until_acked(
    api: &Api,
    path: &str,
    body: &Value,
    token: Option<&str>,
    timeout: Duration,
) -> Retried {
    let bytes = serde_json::to_vec(body).expect("serialize");
    let deadline = Instant::now() + timeout;
    let mut attempts = 0;
    let mut in_doubt = false;
    loop {
        attempts += 1;
        match api.post_raw(path, bytes.clone(), token) {
            Ok(resp) if resp.status == 200 => {
                return Retried {
                    resp,
                    attempts,
                    in_doubt,
                };
            }
            Ok(resp) => {
                assert!(
                    resp.status >= 500,
                    "{path} answered {}: {}",
                    resp.status,
                    resp.text
                );
                // 502/504 from a proxy: the request may have reached a node.
                if resp.status != 503 {
                    in_doubt = true;
                }
            }
            Err(_) => in_doubt = true,
        }
        assert!(
            Instant::now() < deadline,
            "{path}: not acknowledged within {timeout:?} ({attempts} attempts)"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `(seq, merkle_root)` of `/pool/info`, if it answers.
pub fn pool(api: &Api) -> Option<(u64, Value)> {
    let r = api.get("/pool/info").ok()?;
    (r.status == 200).then(|| {
        (
            r.json["seq"].as_u64().unwrap_or(0),
            r.json["merkle_root"].clone(),
        )
    })
}
