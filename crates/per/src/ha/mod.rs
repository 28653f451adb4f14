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
    #[error("postgres: {0}")]
    Db(#[from] postgres::Error),
    /// The local WAL failed.
    #[error(transparent)]
    Wal(#[from] per_store::WalError),
    /// The local data does not fit the shared log (refuse to start / stop).
    #[error("{0}")]
    Diverged(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl HaError {
    /// Exit code: 3 for an unreachable dependency, 1 for a data problem.
    pub fn exit_code(&self) -> u8 {
        match self {
            HaError::Db(_) => 3,
            HaError::Wal(per_store::WalError::Io { .. }) => 3,
            _ => 1,
        }
    }
}
