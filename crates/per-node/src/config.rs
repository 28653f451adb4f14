//! Node configuration with the contract's precedence: flag > environment > config file > default.
//!
//! Flags and environment variables are both read by clap (`#[arg(env = ...)]`), so a flag wins over
//! its variable; whatever neither sets falls back to the TOML file given by `--config`, then to the
//! defaults here. Every limit is named `*_max` and lives in [`Limits`].

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default `limits.backup_lag_max_secs`: a target whose newest copy is older than this degrades
/// `/health`.
pub const BACKUP_LAG_MAX_SECS_DEFAULT: u64 = 300;

/// Default `limits.backup_archive_delay_ms`: an acknowledged group is in every reachable target
/// within about this long (the archiver uploads every half of it).
pub const ARCHIVE_DELAY_MS_DEFAULT: u64 = 1000;

/// The node's role (`DEPLOYMENT_MODE`). `primary` and `standby` need `PER_DATABASE_URL` (see
/// [`crate::ha`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentMode {
    /// The embedded default: one node, no external services.
    Single,
    /// HA primary (Postgres-fenced shared log).
    Primary,
    /// HA hot standby.
    Standby,
}

impl DeploymentMode {
    /// Lowercase role name for `/health` and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeploymentMode::Single => "single",
            DeploymentMode::Primary => "primary",
            DeploymentMode::Standby => "standby",
        }
    }
}

/// Log line format (`PER_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines.
    Text,
}

/// Every bound of the node, in one place.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Commands waiting for the sequencer; past this, requests get `Overloaded`.
    pub queue_max: usize,
    /// Transactions in one commit group (one write + one fdatasync).
    pub group_records_max: usize,
    /// Largest accepted request body.
    pub body_bytes_max: usize,
    /// WAL segment size before rotation.
    pub segment_bytes_max: u64,
    /// Largest WAL record.
    pub record_bytes_max: u32,
    /// Receipts kept for exactly-once lookups.
    pub receipts_max: usize,
    /// Leaves the executor assigns before answering `TreeFull` (≤ 2^24, the tree's capacity).
    pub leaves_max: u64,
    /// Concurrent HTTP connections; past this, new connections wait in the kernel's listen backlog
    /// until one closes. Must fit under `RLIMIT_NOFILE` with `fds_reserved` to spare (checked at
    /// start: the soft limit is raised, or this is clamped with a warning).
    pub connections_max: usize,
    /// File descriptors kept free for everything but client connections (WAL segments and
    /// directories, snapshots, Postgres/Redis/S3/L1 clients, the runtime), so a connection flood
    /// can never make a WAL rotation fail and poison the writer.
    pub fds_reserved: usize,
    /// Seconds a connection may take to send a complete request head, counted from when it starts
    /// waiting for one (a new connection, or the end of the previous answer on a kept-alive one).
    pub header_read_timeout_secs: u64,
    /// Seconds a write may take to send its whole body (counted from its head). The body is read
    /// in full before the write enters the sequencer queue or counts as in flight for a drain;
    /// past this the client gets 408 `RequestTimeout` and the connection is closed.
    pub body_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in progress (HTTP/1.1 keep-alive and
    /// HTTP/2 alike) before the node closes it (above nginx's 60 s upstream keep-alive, so a
    /// load balancer closes first).
    pub idle_timeout_secs: u64,
    /// Seconds a graceful shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// Unsettled transactions above which `/health` degrades (runbook: 10k).
    pub pending_tx_degraded_max: u64,
    /// Seconds without a snapshot above which `/health` degrades (runbook: 5 min).
    pub snapshot_lag_degraded_secs_max: u64,
    /// A snapshot every this many transactions (runbook: 100).
    pub snapshot_every_txs: u64,
    /// Delta snapshots on one full snapshot before the next full one.
    pub snapshot_delta_chain_max: u32,
    /// Restore points retention always keeps (runbook: "check last 10 snapshots").
    pub snapshot_restore_points_min: usize,
    /// Full snapshots retention always keeps, each with its delta chain (default 2): independent
    /// restore points, so one bad full file never leaves only the WAL. WAL retention keeps every
    /// record after the oldest kept full.
    pub snapshot_full_kept_min: usize,
    /// Sealed WAL segments waiting for compression on the snapshot thread.
    pub snapshot_jobs_max: usize,
    /// Memory budget of effects handed to a busy snapshot writer, in records (≈ 300 bytes each);
    /// past it they are replaced by one copy of the state (counted as a snapshot failure).
    pub snapshot_pending_records_max: usize,
    /// Seconds the snapshot writer may stay behind the sequencer before `/health` degrades and
    /// one snapshot failure is counted (behind for less is normal: hand-overs are coalesced).
    pub snapshot_behind_secs_max: u64,
    /// Seconds a remote backup target may fail, or an object wait for it, before `/health`
    /// degrades naming the target (`PER_BACKUP_LAG_MAX_SECS`).
    pub backup_lag_max_secs: u64,
    /// Live-WAL archiving: an acknowledged commit group reaches every reachable remote target
    /// within about this many milliseconds (one `walpart` object per target every half of it).
    pub backup_archive_delay_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_max: 4096,
            group_records_max: 1024,
            body_bytes_max: 16 * 1024,
            segment_bytes_max: 64 * 1024 * 1024,
            record_bytes_max: 1024 * 1024,
            receipts_max: 100_000,
            leaves_max: per_core::LEAF_CAPACITY,
            connections_max: 4096,
            fds_reserved: 256,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
            idle_timeout_secs: 75,
            shutdown_grace_secs: 10,
            pending_tx_degraded_max: 10_000,
            snapshot_lag_degraded_secs_max: 300,
            snapshot_every_txs: 100,
            snapshot_delta_chain_max: 1000,
            snapshot_restore_points_min: 10,
            snapshot_full_kept_min: per_store::snapshot::FULL_KEPT_MIN_DEFAULT,
            snapshot_jobs_max: 4,
            snapshot_pending_records_max: 200_000,
            snapshot_behind_secs_max: 60,
            backup_lag_max_secs: BACKUP_LAG_MAX_SECS_DEFAULT,
            backup_archive_delay_ms: ARCHIVE_DELAY_MS_DEFAULT,
        }
    }
}

/// The `per.toml` file: every key optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `DEPLOYMENT_MODE`.
    pub deployment_mode: Option<DeploymentMode>,
    /// `PER_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `PER_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `SNAPSHOT_INTERVAL` in seconds.
    pub snapshot_interval_secs: Option<u64>,
    /// `PER_CLUSTER`.
    pub cluster: Option<String>,
    /// `PER_LOG`.
    pub log: Option<String>,
    /// `PER_LOG_FORMAT`.
    pub log_format: Option<LogFormat>,
    /// `PER_ADMIN_TOKEN_FILE`.
    pub admin_token_file: Option<PathBuf>,
    /// `PER_DEPOSIT_TOKEN_FILE`.
    pub deposit_token_file: Option<PathBuf>,
    /// `PER_ENCRYPTION_KEY_FILE`.
    pub encryption_key_file: Option<PathBuf>,
    /// `PER_DATABASE_URL` (HA: the lease and the shared log).
    pub database_url: Option<String>,
    /// `PER_NODE_ID` (HA; default: the host name).
    pub node_id: Option<String>,
    /// `PER_LEASE_TTL_SECS` (HA; default 10).
    pub lease_ttl_secs: Option<u64>,
    /// `PER_BACKUP_S3_URL` (`s3://bucket/prefix`: the S3/R2 backup target).
    pub backup_s3_url: Option<String>,
    /// Bounds.
    pub limits: Limits,
}

/// Why the configuration cannot be used (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or a combination is unsupported.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl FileConfig {
    /// Reads `path`, or the empty config when no path is given.
    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

/// Default data directory (`./per-data`).
pub const DEFAULT_DATA_DIR: &str = "per-data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default cluster name.
pub const DEFAULT_CLUSTER: &str = "default";
/// Default snapshot interval (runbook: 5 minutes).
pub const DEFAULT_SNAPSHOT_INTERVAL_SECS: u64 = 300;

impl Limits {
    /// The bounds the state machine enforces.
    pub fn state_limits(&self) -> per_core::StateLimits {
        per_core::StateLimits {
            receipts_max: self.receipts_max,
            leaves_max: self.leaves_max,
        }
    }

    /// Rejects bounds that would make the node unsafe or useless.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("queue_max", self.queue_max as u64),
            ("group_records_max", self.group_records_max as u64),
            ("body_bytes_max", self.body_bytes_max as u64),
            ("receipts_max", self.receipts_max as u64),
            ("leaves_max", self.leaves_max),
            ("connections_max", self.connections_max as u64),
            ("fds_reserved", self.fds_reserved as u64),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("record_bytes_max", u64::from(self.record_bytes_max)),
            ("snapshot_every_txs", self.snapshot_every_txs),
            (
                "snapshot_restore_points_min",
                self.snapshot_restore_points_min as u64,
            ),
            ("snapshot_full_kept_min", self.snapshot_full_kept_min as u64),
            ("snapshot_jobs_max", self.snapshot_jobs_max as u64),
            (
                "snapshot_pending_records_max",
                self.snapshot_pending_records_max as u64,
            ),
            ("snapshot_behind_secs_max", self.snapshot_behind_secs_max),
            ("backup_lag_max_secs", self.backup_lag_max_secs),
            ("backup_archive_delay_ms", self.backup_archive_delay_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("limits.{name} must be > 0")));
            }
        }
        if self.leaves_max > per_core::LEAF_CAPACITY {
            return Err(ConfigError::Invalid(format!(
                "limits.leaves_max must be ≤ {} (the tree's capacity)",
                per_core::LEAF_CAPACITY
            )));
        }
        if self.segment_bytes_max < 4096 {
            return Err(ConfigError::Invalid(
                "limits.segment_bytes_max must be ≥ 4096".to_owned(),
            ));
        }
        self.validate_combinations()
    }

    /// Rejects combinations of bounds that break an invariant of the node (each message says
    /// which one and how to fix it).
    fn validate_combinations(&self) -> Result<(), ConfigError> {
        if self.receipts_max < self.group_records_max {
            // A commit group inserts up to group_records_max receipts before any of them is
            // answered: a smaller book would evict a committed transaction's receipt before its
            // answer (and its exactly-once lookup).
            return Err(ConfigError::Invalid(format!(
                "limits.receipts_max ({}) must be ≥ limits.group_records_max ({}): a committed transaction's receipt must not be evicted before it is answered",
                self.receipts_max, self.group_records_max
            )));
        }
        if u64::from(self.record_bytes_max) < RECORD_BYTES_MIN {
            return Err(ConfigError::Invalid(format!(
                "limits.record_bytes_max ({}) must be ≥ {RECORD_BYTES_MIN}: the WAL writer refuses a larger record and a refused group stops the node",
                self.record_bytes_max
            )));
        }
        if (self.record_bytes_max as usize) < self.body_bytes_max {
            // A transaction's record is smaller than its JSON body (binary fields instead of hex),
            // so this keeps every accepted body loggable.
            return Err(ConfigError::Invalid(format!(
                "limits.record_bytes_max ({}) must be ≥ limits.body_bytes_max ({}): an accepted request must always fit in one WAL record",
                self.record_bytes_max, self.body_bytes_max
            )));
        }
        Ok(())
    }

    /// The smallest `record_bytes_max` this node accepts for a settlement batch of
    /// `batch_txs_max` transactions: its WAL record lists one nullifier per transaction.
    pub fn record_bytes_needed_for_batch(batch_txs_max: u64) -> u64 {
        RECORD_BYTES_MIN.saturating_add(batch_txs_max.saturating_mul(BATCH_BYTES_PER_TX))
    }
}

/// Smallest `record_bytes_max`: comfortably above any transaction or group-end record.
pub const RECORD_BYTES_MIN: u64 = 4096;

/// Upper bound of the bytes one transaction adds to a settlement batch record (its 32-byte
/// nullifier, rounded up).
const BATCH_BYTES_PER_TX: u64 = 40;
