//! `per serve`: recover from the WAL, then run the HTTP API and the sequencer until SIGTERM/SIGINT.
//!
//! Shutdown is graceful: stop accepting, let in-flight requests finish (bounded by
//! `limits.shutdown_grace_secs`), let the sequencer sync its last group, exit 0. A WAL failure
//! poisons the node instead: it stops acknowledging at once and exits 1.
//!
//! HA (`DEPLOYMENT_MODE=primary|standby`, `PER_DATABASE_URL`): after the schema migration and the
//! reconciliation of the local WAL with the shared log (the log wins), the node recovers as usual
//! and starts as a standby following the shared log; it takes the lease when it is free or expired
//! and becomes the primary (see [`per_node::ha`]). A node that loses the lease exits 1: run it under a
//! supervisor that restarts it (it comes back as a standby).

use crate::cli::exit::Exit;
use clap::Args;
use per_node::config::{
    DEFAULT_CLUSTER, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_SNAPSHOT_INTERVAL_SECS,
    DeploymentMode, FileConfig, LogFormat,
};
use per_node::ha::{self, HaConfig};
use per_node::node::run::{NodeConfig, TokenSources};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `per serve`; each falls back to its environment variable, then to `--config`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file (lowest precedence after defaults).
    #[arg(long, env = "PER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./per-data].
    #[arg(long, env = "PER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "PER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// single | primary | standby [default: single].
    #[arg(long, env = "DEPLOYMENT_MODE", value_enum)]
    pub deployment_mode: Option<DeploymentMode>,
    /// Seconds between time-based snapshots [default: 300].
    #[arg(long, env = "SNAPSHOT_INTERVAL")]
    pub snapshot_interval: Option<u64>,
    /// Cluster name (WAL segments of another cluster are refused) [default: default].
    #[arg(long, env = "PER_CLUSTER")]
    pub cluster: Option<String>,
    /// Log filter (tracing EnvFilter syntax) [default: info].
    #[arg(long, env = "PER_LOG")]
    pub log: Option<String>,
    /// json | text [default: json].
    #[arg(long, env = "PER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Admin bearer token (prefer PER_ADMIN_TOKEN_FILE).
    #[arg(long, env = "PER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin token.
    #[arg(long, env = "PER_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Deposit bearer token for the L1 deposit indexer (prefer PER_DEPOSIT_TOKEN_FILE).
    #[arg(long, env = "PER_DEPOSIT_TOKEN", hide_env_values = true)]
    pub deposit_token: Option<String>,
    /// File holding the deposit token.
    #[arg(long, env = "PER_DEPOSIT_TOKEN_FILE")]
    pub deposit_token_file: Option<PathBuf>,
    /// HA: Postgres URL holding the lease and the shared log (required for primary/standby).
    #[arg(long, env = "PER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// HA: this node's id in the lease [default: the host name].
    #[arg(long, env = "PER_NODE_ID")]
    pub node_id: Option<String>,
    /// HA: lease time-to-live in seconds; renewed every third of it [default: 10].
    #[arg(long, env = "PER_LEASE_TTL_SECS")]
    pub lease_ttl_secs: Option<u64>,
    /// Key for encryption at rest of snapshots and WAL (32 raw bytes or 64 hex digits).
    #[arg(long, env = "PER_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// TEE attestation (PER_ATTESTATION_PROVIDER, PER_ATTESTATION_REQUIRED, …).
    #[command(flatten)]
    pub attestation: per_node::attestation::AttestationArgs,
    /// Batching and settlement to L1 (PER_L1_RPC_URLS, PER_BATCH_TXS_MAX, …).
    #[command(flatten)]
    pub settlement: per_node::settlement::SettlementArgs,
    /// Remote backup target S3/R2: s3://bucket/prefix; endpoint and credentials from the standard
    /// AWS_* variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP). Postgres is a backup target whenever PER_DATABASE_URL is set.
    #[arg(long = "backup-s3-url", env = "PER_BACKUP_S3_URL")]
    pub backup_s3_url: Option<String>,
    /// Seconds a backup target may fail (or an object wait for it) before /health degrades
    /// [default: limits.backup_lag_max_secs, 300].
    #[arg(long, env = "PER_BACKUP_LAG_MAX_SECS")]
    pub backup_lag_max_secs: Option<u64>,
    /// Redis state cache (`redis://[user:password@]host[:port][/db]`): the node taking writes
    /// publishes {root, seq, epoch, role, status} to `per:<cluster>:state` (key and channel).
    #[arg(long, env = "PER_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
}

fn merge(args: &ServeArgs) -> anyhow::Result<NodeConfig> {
    let file = FileConfig::load(args.config.as_deref()).map_err(|e| Exit::usage(e.to_string()))?;
    file.limits
        .validate()
        .map_err(|e| Exit::usage(e.to_string()))?;
    let default_listen: SocketAddr = DEFAULT_LISTEN
        .parse()
        .map_err(|_| Exit::usage("bad built-in listen address"))?;
    let settlement = per_node::settlement::SettlementConfig::from_args(&args.settlement)
        .map_err(|e| Exit::usage(e.to_string()))?;
    let config = NodeConfig {
        data_dir: args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        listen: args.listen.or(file.listen).unwrap_or(default_listen),
        mode: args
            .deployment_mode
            .or(file.deployment_mode)
            .unwrap_or(DeploymentMode::Single),
        cluster: args
            .cluster
            .clone()
            .or_else(|| file.cluster.clone())
            .unwrap_or_else(|| DEFAULT_CLUSTER.to_owned()),
        log: args.log.clone().or_else(|| file.log.clone()),
        log_format: args
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Json),
        snapshot_interval_secs: args
            .snapshot_interval
            .or(file.snapshot_interval_secs)
            .unwrap_or(DEFAULT_SNAPSHOT_INTERVAL_SECS),
        encryption_key_file: args
            .encryption_key_file
            .clone()
            .or_else(|| file.encryption_key_file.clone()),
        ha: None,
        backups: per_node::backup::BackupSettings {
            database_url: args
                .database_url
                .clone()
                .or_else(|| file.database_url.clone()),
            s3_url: args
                .backup_s3_url
                .clone()
                .or_else(|| file.backup_s3_url.clone()),
            cluster: String::new(),
        },
        backup_lag_max_secs: args
            .backup_lag_max_secs
            .unwrap_or(file.limits.backup_lag_max_secs),
        file,
        settlement,
        redis_url: args.redis_url.clone(),
        attestation: args.attestation.clone(),
        sources: TokenSources {
            deposit_token: args.deposit_token.clone(),
            deposit_token_file: args.deposit_token_file.clone(),
            admin_token: args.admin_token.clone(),
            admin_token_file: args.admin_token_file.clone(),
        },
    };
    if config.backup_lag_max_secs == 0 {
        return Err(Exit::usage("PER_BACKUP_LAG_MAX_SECS must be > 0"));
    }
    let record_bytes_needed = per_node::config::Limits::record_bytes_needed_for_batch(u64::from(
        config.settlement.batch_txs_max,
    ));
    if u64::from(config.file.limits.record_bytes_max) < record_bytes_needed {
        return Err(Exit::usage(format!(
            "limits.record_bytes_max ({}) is too small for PER_BATCH_TXS_MAX={}: a sealed batch's WAL record lists every nullifier and needs up to {record_bytes_needed} bytes",
            config.file.limits.record_bytes_max, config.settlement.batch_txs_max
        )));
    }
    if config.snapshot_interval_secs == 0 {
        return Err(Exit::usage("SNAPSHOT_INTERVAL must be > 0"));
    }
    let mut config = config;
    config.backups.cluster = config.cluster.clone();
    if config.mode != DeploymentMode::Single {
        let database_url = args
            .database_url
            .clone()
            .or_else(|| config.file.database_url.clone())
            .ok_or_else(|| {
                Exit::usage(format!(
                    "DEPLOYMENT_MODE={} needs PER_DATABASE_URL (Postgres: the lease and the shared log)",
                    config.mode.as_str()
                ))
            })?;
        let ttl = args
            .lease_ttl_secs
            .or(config.file.lease_ttl_secs)
            .unwrap_or(ha::DEFAULT_LEASE_TTL_SECS);
        if ttl == 0 || ttl > 3600 {
            return Err(Exit::usage("PER_LEASE_TTL_SECS must be 1..=3600"));
        }
        let node_id = args
            .node_id
            .clone()
            .or_else(|| config.file.node_id.clone())
            .unwrap_or_else(ha::host_name);
        if node_id.is_empty() {
            return Err(Exit::usage("PER_NODE_ID must not be empty"));
        }
        config.ha = Some(HaConfig {
            database_url,
            cluster: config.cluster.clone(),
            node_id,
            lease_ttl: Duration::from_secs(ttl),
            key: None,
        });
    }
    Ok(config)
}

/// Runs the node until SIGTERM/SIGINT (or a fatal error); the node's typed errors map to exit
/// codes in `cli::exit`.
pub fn exec(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = merge(&args)?;
    per_node::node::run::run(config, crate::cli::signal::stop_signal())?;
    Ok(ExitCode::SUCCESS)
}
