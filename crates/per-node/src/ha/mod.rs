//! High availability (DESIGN.md §6): Postgres as the shared, fenced log; a hot standby; automatic
//! takeover.
//!
//! - [`pg`]: connections and the schema (`per_schema_migrations`, `per_lease`, `per_log`).
//! - [`lease`]: acquire (epoch + 1: the fencing token), renew, release — all by Postgres's clock.
//! - [`log`]: the fenced append ([`log::PgReplicator`], the sequencer's
//!   [`GroupReplicator`](crate::sequencer::GroupReplicator)) and reading groups back.
//! - [`reconcile`]: at start, the shared log wins over the local WAL.
//! - [`follower`]: the standby loop, the takeover, then the sequencer on the same thread; and the
//!   primary's lease renewer.
//!
//! A node that loses the lease (a failed renewal or a failed fenced append) stops acknowledging at
//! once and exits 1; its supervisor restarts it, and it comes back as a standby. That is simpler and
//! safer than demoting in process (the in-memory state may hold a group that never reached the
//! shared log).

pub mod follower;
pub mod lease;
pub mod log;
pub mod pg;
pub mod reconcile;
pub mod redis;

use std::time::Duration;

/// Default `PER_LEASE_TTL_SECS`.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;
/// A standby further behind than this reports `degraded`.
pub const REPLICATION_LAG_DEGRADED_SECS: u64 = 10;
/// How often a standby polls the shared log when no notification arrives.
pub const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// Groups fetched per query while catching up.
pub const FETCH_GROUPS_MAX: i64 = 256;

/// The HA settings of one node.
#[derive(Clone, Debug)]
pub struct HaConfig {
    /// `PER_DATABASE_URL`.
    pub database_url: String,
    /// `PER_CLUSTER`.
    pub cluster: String,
    /// `PER_NODE_ID` (default: the host name).
    pub node_id: String,
    /// `PER_LEASE_TTL_SECS`.
    pub lease_ttl: Duration,
    /// `PER_ENCRYPTION_KEY_FILE`: with a key, every group in the shared log is sealed with it
    /// (XChaCha20-Poly1305, bound to the cluster and first seq), so Postgres holds no plaintext.
    /// Every node of a cluster needs the same key.
    pub key: Option<std::sync::Arc<per_store::EncryptionKey>>,
}

impl HaConfig {
    /// How often the primary renews its lease.
    pub fn renew_interval(&self) -> Duration {
        (self.lease_ttl / 3).max(Duration::from_millis(100))
    }
}

/// HA problems that `/health` names (kind → whether critical, and the reason): a refused shared-log
/// group, a shared log run without authentication, another live node with this node's id.
#[derive(Debug, Default)]
pub struct HaAlerts {
    alerts: std::sync::Mutex<std::collections::BTreeMap<&'static str, (bool, String)>>,
    /// 0: not HA; 1: the shared log is sealed and authenticated; 2: `PER_HA_INSECURE_LOG=1`.
    log_auth: std::sync::atomic::AtomicU8,
}

impl HaAlerts {
    /// Records whether this HA node seals and authenticates the shared log.
    pub fn set_log_authenticated(&self, authenticated: bool) {
        self.log_auth.store(
            if authenticated { 1 } else { 2 },
            std::sync::atomic::Ordering::Release,
        );
    }

    /// `/health.shared_log`: `authenticated`, `unauthenticated` (the `PER_HA_INSECURE_LOG=1`
    /// opt-out), or none outside HA.
    pub fn shared_log(&self) -> Option<&'static str> {
        match self.log_auth.load(std::sync::atomic::Ordering::Acquire) {
            1 => Some("authenticated"),
            2 => Some("unauthenticated"),
            _ => None,
        }
    }

    /// Sets (or replaces) the alert of `kind`.
    pub fn set(&self, kind: &'static str, critical: bool, reason: String) {
        if let Ok(mut alerts) = self.alerts.lock() {
            alerts.insert(kind, (critical, reason));
        }
    }

    /// Clears the alert of `kind`.
    pub fn clear(&self, kind: &'static str) {
        if let Ok(mut alerts) = self.alerts.lock() {
            alerts.remove(kind);
        }
    }

    /// The alerts, in kind order.
    pub fn list(&self) -> Vec<(bool, String)> {
        self.alerts
            .lock()
            .map(|alerts| alerts.values().cloned().collect())
            .unwrap_or_default()
    }
}

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

/// An HA failure.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// Postgres could not be reached or a statement failed.
    #[error("postgres: {}", per_store::describe_pg_error(.0))]
    Db(#[from] postgres::Error),
    /// The local WAL failed.
    #[error(transparent)]
    Wal(#[from] per_store::WalError),
    /// The local data does not fit the shared log (refuse to start / stop).
    #[error("{0}")]
    Diverged(String),
    /// A shared-log group that is not authenticated by this node's key (plaintext with a key,
    /// another key, or a row moved from another cluster, epoch or place): refused, never applied.
    #[error("shared-log group at seqs {first_seq}..={last_seq} refused: {why}")]
    Unauthenticated {
        /// The row's first seq.
        first_seq: u64,
        /// The row's last seq.
        last_seq: u64,
        /// Why it is refused.
        why: String,
    },
    /// The node's state forbids going on (local data the shared log lacks): refuse, change nothing.
    #[error("{0}")]
    Refused(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl HaError {
    /// Exit code: 3 for an unreachable dependency, 4 for a refusal because of state, 1 for a data
    /// problem.
    pub fn exit_code(&self) -> u8 {
        match self {
            HaError::Db(_) => 3,
            HaError::Wal(per_store::WalError::Io { .. }) => 3,
            HaError::Refused(_) => 4,
            _ => 1,
        }
    }
}
