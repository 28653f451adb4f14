//! Another live process with this node's id in its cluster: refused at start, reported while it lasts.

use super::config::HaConfig;
use super::pg;
use std::time::Duration;

/// `/health` alert kind of another live node with this node's id.
const DUPLICATE_NODE_ID: &str = "duplicate_node_id";

/// Every 5 s, looks for another live process using this node's id in its cluster and reports it
/// in `/health` (critical) until it is gone. (At start, such a node refuses to start.)
pub fn spawn_duplicate_watch(
    config: HaConfig,
    shared: std::sync::Arc<crate::node::shared::Shared>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("per-node-id-watch".to_owned())
        .spawn(move || {
            let mut client = None;
            while !shared
                .flags
                .shutting_down
                .load(std::sync::atomic::Ordering::Acquire)
            {
                if client.is_none() {
                    client = pg::connect(&config).ok();
                }
                if let Some(c) = client.as_mut() {
                    match pg::duplicate_node_sessions(c, &config) {
                        Ok(others) if others.is_empty() => shared.ha_alerts.clear(DUPLICATE_NODE_ID),
                        Ok(others) => {
                            let reason = format!(
                                "another live node uses PER_NODE_ID={:?} in cluster {:?} ({}): give each node its own id",
                                config.node_id,
                                config.cluster,
                                others.join(", ")
                            );
                            tracing::error!(%reason, "duplicate node id");
                            shared.ha_alerts.set(DUPLICATE_NODE_ID, true, reason);
                        }
                        Err(_) => client = None,
                    }
                }
                std::thread::sleep(Duration::from_secs(5));
            }
        })
        .map(|_| ())
}

/// The host name (default node id).
pub fn host_name() -> String {
    if let Ok(name) = std::env::var("HOSTNAME")
        && !name.trim().is_empty()
    {
        return name.trim().to_owned();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "per-node".to_owned())
}
