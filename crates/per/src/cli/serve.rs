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
use anyhow::Context;
use clap::Args;
use per_node::api::{self, AppState};
use per_node::config::{
    DEFAULT_CLUSTER, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_SNAPSHOT_INTERVAL_SECS,
    DeploymentMode, FileConfig, LogFormat,
};
use per_node::ha::{self, HaConfig};
use per_node::node::snapshotter::{self, SnapshotPolicy};
use per_node::node::{self, Shared, SharedConfig};
use per_node::sequencer::{self, HEARTBEAT_INTERVAL, SequencerLimits};
use per_wire::tokens::Token;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
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

/// The merged configuration of one `per serve`.
struct ServeConfig {
    data_dir: PathBuf,
    snapshot_interval_secs: u64,
    encryption_key_file: Option<PathBuf>,
    listen: SocketAddr,
    mode: DeploymentMode,
    cluster: String,
    file: FileConfig,
    log: Option<String>,
    log_format: LogFormat,
    ha: Option<HaConfig>,
    settlement: per_node::settlement::SettlementConfig,
    backups: per_node::backup::BackupSettings,
    backup_lag_max_secs: u64,
}

fn merge(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let file = FileConfig::load(args.config.as_deref()).map_err(|e| Exit::usage(e.to_string()))?;
    file.limits
        .validate()
        .map_err(|e| Exit::usage(e.to_string()))?;
    let default_listen: SocketAddr = DEFAULT_LISTEN
        .parse()
        .map_err(|_| Exit::usage("bad built-in listen address"))?;
    let settlement = per_node::settlement::SettlementConfig::from_args(&args.settlement)
        .map_err(|e| Exit::usage(e.to_string()))?;
    let config = ServeConfig {
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

/// Runs the node.
pub fn exec(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = merge(&args)?;
    let redis = match args.redis_url.as_deref().filter(|u| !u.is_empty()) {
        None => None,
        Some(url) => Some(
            ha::redis::RedisTarget::parse(url)
                .map_err(|e| Exit::usage(format!("PER_REDIS_URL: {e}")))?,
        ),
    };
    per_node::logging::init(config.log.as_deref(), config.log_format);
    // Connections must never take the descriptors the WAL writer needs to rotate.
    let connections_max = api::front_door::fd_budget(
        config.file.limits.connections_max,
        config.file.limits.fds_reserved,
    )
    .map_err(|e| Exit::usage(e.to_string()))?;
    let backup_targets = config
        .backups
        .configured()
        .into_iter()
        .map(|name| config.backups.open(name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let _lock = per_node::node::data_dir_lock::lock_data_dir(&config.data_dir)?;

    if config.ha.is_some() {
        // Each node would generate its own tokens: after a failover the deposit indexer and the
        // operators would get 401. HA needs the same configured tokens on every node.
        let deposit_configured = args.deposit_token.is_some()
            || args.deposit_token_file.is_some()
            || config.file.deposit_token_file.is_some();
        let admin_configured = args.admin_token.is_some()
            || args.admin_token_file.is_some()
            || config.file.admin_token_file.is_some();
        if !deposit_configured || !admin_configured {
            return Err(Exit::usage(format!(
                "DEPLOYMENT_MODE={} needs configured tokens, the same on every node of the cluster \
                 (a generated token would differ after a failover): set {}",
                config.mode.as_str(),
                [
                    (!deposit_configured).then_some("PER_DEPOSIT_TOKEN or PER_DEPOSIT_TOKEN_FILE"),
                    (!admin_configured).then_some("PER_ADMIN_TOKEN or PER_ADMIN_TOKEN_FILE"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" and ")
            )));
        }
    }
    let (deposit_token, deposit_source) = Token::resolve(
        args.deposit_token.clone(),
        "PER_DEPOSIT_TOKEN",
        args.deposit_token_file
            .as_deref()
            .or(config.file.deposit_token_file.as_deref()),
        &config.data_dir,
        "deposit.token",
    )
    .map_err(|e| Exit::usage(e.to_string()))?;
    let (admin_token, admin_source) = Token::resolve(
        args.admin_token.clone(),
        "PER_ADMIN_TOKEN",
        args.admin_token_file
            .as_deref()
            .or(config.file.admin_token_file.as_deref()),
        &config.data_dir,
        "admin.token",
    )
    .map_err(|e| Exit::usage(e.to_string()))?;
    tracing::info!(source = ?deposit_source, "deposit token ready (value never logged)");
    tracing::info!(source = ?admin_source, "admin token ready (value never logged)");

    let limits = &config.file.limits;
    let epoch = 1;
    if let Some(keypair_file) = config.settlement.keypair_file.as_deref()
        && config.settlement.enabled()
    {
        // A bad authority key is a configuration error: refuse before recovering anything.
        per_l1::load_keypair(keypair_file)
            .map_err(|e| Exit::usage(format!("PER_L1_KEYPAIR_FILE: {e}")))?;
    }
    let key = per_node::node::load_key(config.encryption_key_file.as_deref())?;
    match &key {
        Some(key) => tracing::info!(key_id = %key.key_id_hex(), "encryption at rest enabled"),
        None => tracing::warn!("encryption at rest disabled (no PER_ENCRYPTION_KEY_FILE)"),
    }
    for target in &backup_targets {
        if key.is_some() {
            tracing::info!(target = %target.describe(), "backup target enabled (it receives encrypted snapshot files and WAL segments only)");
        } else {
            tracing::warn!(target = %target.describe(), "backup target enabled WITHOUT encryption at rest: it will hold plaintext snapshots and WAL (set PER_ENCRYPTION_KEY_FILE)");
        }
    }
    // The live-WAL archiver reads sealed frames to find group ends.
    let archive_key = key.clone();
    let state_limits = limits.state_limits();
    let source = per_node::node::recovery_source(
        &config.data_dir,
        &config.cluster,
        limits,
        epoch,
        key.clone(),
        state_limits,
    );
    let ha_config = config.ha.clone().map(|mut ha_config| {
        ha_config.key = key.clone();
        ha_config
    });
    let insecure_log = ha_config.is_some() && key.is_none();
    if insecure_log && std::env::var("PER_HA_INSECURE_LOG").as_deref() != Ok("1") {
        return Err(Exit::usage(format!(
            "DEPLOYMENT_MODE={} needs PER_ENCRYPTION_KEY_FILE (the same key on every node): every \
             shared-log group is sealed and authenticated with it, so whoever can write per_log \
             cannot make a standby apply forged transactions; set PER_HA_INSECURE_LOG=1 to run \
             with an unauthenticated shared log anyway (reported in /health as \
             shared_log: \"unauthenticated\")",
            config.mode.as_str()
        )));
    }
    if insecure_log {
        tracing::warn!(
            "PER_HA_INSECURE_LOG=1: the shared log is neither encrypted nor authenticated; anyone who can write per_log can make a standby apply forged transactions"
        );
    }
    if let Some(ha_config) = &ha_config {
        prepare_ha(ha_config, &source.wal, &config.data_dir)?;
    }
    crate::cli::systemd::status("recovering: loading the newest snapshot and replaying the WAL");
    let started = std::time::Instant::now();
    let (state, wal, report) = node::recover(source).map_err(|e| {
        let code = if e.is_corruption() { 1 } else { 3 };
        anyhow::Error::new(Exit {
            code,
            message: e.to_string(),
        })
    })?;
    tracing::info!(
        seq = state.seq(),
        root = %state.root(),
        snapshot = ?report.snapshot,
        skipped_snapshots = report.skipped_snapshots.len(),
        transactions = report.transactions,
        groups = report.groups,
        segments = report.segments,
        segments_skipped = report.segments_skipped,
        records_skipped = report.records_skipped,
        torn_tail_bytes = report.torn_tail.as_ref().map_or(0, |t| t.bytes),
        unfinished_group_records = report.unfinished_group_records,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered"
    );

    let (mut planner, snapshot_status, snapshot_thread) = snapshotter::spawn(
        SnapshotPolicy {
            dir: config.data_dir.join("snapshots"),
            every_txs: limits.snapshot_every_txs,
            interval: Duration::from_secs(config.snapshot_interval_secs),
            delta_chain_max: limits.snapshot_delta_chain_max,
            restore_points_min: limits.snapshot_restore_points_min,
            full_kept_min: limits.snapshot_full_kept_min,
            jobs_max: limits.snapshot_jobs_max,
            pending_records_max: limits.snapshot_pending_records_max,
            behind_secs_max: limits.snapshot_behind_secs_max,
            epoch,
            key,
            wal_dir: config.data_dir.join("wal"),
            wal_age_min: per_store::wal::RETENTION_AGE_MIN_DEFAULT,
        },
        // The snapshot thread's replica: one copy at start-up, before the sequencer runs.
        state.clone(),
        report.snapshot_tip,
    )
    .context("cannot start the snapshot thread")?;
    if report.snapshot_tip.map(|(seq, _)| seq) != Some(state.seq()) && state.seq() > 0 {
        // Compact the replayed WAL tail into a restore point right away.
        planner.request(&state, true, None);
    }

    let shared = Arc::new(Shared::new(
        state,
        SharedConfig {
            role: config.mode,
            epoch,
            deposit_token,
            admin_token,
            pending_tx_degraded_max: limits.pending_tx_degraded_max,
            snapshot_lag_degraded_secs_max: limits.snapshot_lag_degraded_secs_max,
            snapshots: Some(snapshot_status),
        },
    ));
    shared
        .backups
        .lag_max_secs
        .store(config.backup_lag_max_secs, Ordering::Relaxed);
    if let Some(ha_config) = &ha_config {
        shared.ha_alerts.set_log_authenticated(!insecure_log);
        ha::spawn_duplicate_watch(ha_config.clone(), shared.clone())
            .context("cannot start the node-id watch thread")?;
    }
    let backup_threads = if backup_targets.is_empty() {
        Vec::new()
    } else {
        let mut threads = per_node::backup::uploader::spawn(
            shared.clone(),
            config.data_dir.clone(),
            backup_targets,
        )
        .context("cannot start the backup threads")?;
        // Live-WAL archiving: a second connection per target, so a slow snapshot upload never
        // delays the WAL tail.
        let archive_targets = config
            .backups
            .configured()
            .into_iter()
            .map(|name| config.backups.open(name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let archive = per_node::backup::archiver::ArchiveConfig {
            wal_dir: config.data_dir.join("wal"),
            key: archive_key,
            record_bytes_max: limits.record_bytes_max,
            delay: Duration::from_millis(limits.backup_archive_delay_ms),
            node_id: ha_config
                .as_ref()
                .map_or_else(ha::host_name, |h| h.node_id.clone()),
        };
        threads.extend(
            per_node::backup::archiver::spawn(shared.clone(), archive, archive_targets)
                .context("cannot start the WAL archiving threads")?,
        );
        threads
    };
    // TEE attestation before serving (a required attestation that is not valid halts writes),
    // then again every PER_ATTESTATION_INTERVAL_SECS on a background task (see `spawn_monitor`).
    shared.record_attestation(per_node::attestation::attest(&args.attestation));
    let sequencer_limits = SequencerLimits {
        queue_max: limits.queue_max,
        group_records_max: limits.group_records_max,
        batch_txs_max: config.settlement.batch_txs_max,
        batch_age_max: config.settlement.batch_age_max,
    };
    let settlement_status = per_node::settlement::status::status_for(&config.settlement);
    let _ = shared.settlement.set(settlement_status.clone());
    let (sequencer, sequencer_thread) = match &ha_config {
        None => sequencer::spawn(shared.clone(), wal, sequencer_limits, Some(planner), None)
            .context("cannot start the sequencer thread")?,
        Some(ha_config) => {
            // Standby first: follow the shared log; take over when the lease is free.
            shared.demote_to_standby();
            let (handle, queue) = sequencer::channel(shared.clone(), sequencer_limits);
            let follower = ha::follower::Follower::new(
                ha_config.clone(),
                shared.clone(),
                wal,
                Some(planner),
                shared.read_state().map_or(0, |s| s.seq()),
            );
            tracing::info!(
                cluster = %ha_config.cluster,
                node_id = %ha_config.node_id,
                lease_ttl_secs = ha_config.lease_ttl.as_secs(),
                mode = config.mode.as_str(),
                "HA: following the shared log as a standby until the lease is free"
            );
            let thread = std::thread::Builder::new()
                .name("per-sequencer".to_owned())
                .spawn(move || follower.run(queue))
                .context("cannot start the HA writer thread")?;
            (handle, thread)
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("per-http")
        .build()
        .context("cannot start the async runtime")?;
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    let body_limits = api::body::BodyLimits {
        bytes_max: limits.body_bytes_max,
        read_timeout: Duration::from_secs(limits.body_read_timeout_secs),
    };
    let front_door = api::front_door::FrontDoorLimits::from_limits(limits, connections_max);
    let listen = config.listen;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Exit::usage(format!("cannot listen on {listen}: {e}")))?;
        let local = listener.local_addr().context("listener address")?;
        tracing::info!(
            listen = %local,
            data_dir = %config.data_dir.display(),
            connections_max = front_door.connections_max,
            header_read_timeout_secs = front_door.header_read_timeout.as_secs(),
            idle_timeout_secs = front_door.idle_timeout.as_secs(),
            body_read_timeout_secs = body_limits.read_timeout.as_secs(),
            "serving"
        );
        // Recovered and bound: only now may systemd route to us.
        crate::cli::systemd::ready(local);
        let redis_task = redis.map(|target| {
            let node_id = ha_config
                .as_ref()
                .map_or_else(ha::host_name, |h| h.node_id.clone());
            tracing::info!(redis = %target.address(), key = %ha::redis::state_key(&config.cluster), "redis state cache enabled");
            ha::redis::spawn_publisher(shared.clone(), target, config.cluster.clone(), node_id)
        });
        let attestation_task =
            per_node::attestation::spawn_monitor(shared.clone(), args.attestation.clone());
        let heartbeat = {
            let sequencer = sequencer.clone();
            let watchdog = crate::cli::systemd::Watchdog::from_env(shared.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
                loop {
                    tick.tick().await;
                    sequencer.heartbeat();
                    watchdog.ping();
                }
            })
        };
        let settler_task = per_node::settlement::settler::spawn(
            &config.settlement,
            shared.clone(),
            sequencer.clone(),
            settlement_status.clone(),
        )
        .map_err(|e| Exit::usage(e.to_string()))?;
        let app = api::router(
            AppState {
                shared: shared.clone(),
                sequencer,
            },
            body_limits,
        );
        let shutdown_shared = shared.clone();
        let shutdown = async move {
            let reason = wait_for_stop(&shutdown_shared).await;
            crate::cli::systemd::stopping(reason);
            shutdown_shared
                .flags
                .shutting_down
                .store(true, Ordering::Release);
            tracing::info!(
                reason,
                "stopping: no new writes; finishing in-flight requests"
            );
        };
        let server = api::front_door::serve(listener, app, front_door, shutdown);
        let drained = tokio::select! {
            () = server => anyhow::Ok(()),
            () = async {
                // Bound the drain: wait for the stop signal, then at most `grace`.
                loop {
                    if shared.flags.shutting_down.load(Ordering::Acquire) {
                        tokio::time::sleep(grace).await;
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            } => {
                tracing::warn!("in-flight requests did not finish within the grace period");
                Ok(())
            }
        };
        heartbeat.abort();
        if let Some(task) = attestation_task {
            task.abort();
        }
        if let Some(task) = redis_task {
            task.abort();
        }
        if let Some(task) = settler_task {
            task.abort();
        }
        drained
    });
    // Every handle is gone with the router and the heartbeat task: the sequencer finishes its
    // queue, syncs the last group and returns.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if shared.is_fenced() {
        // A fenced primary may have a shared-log call stuck on a partitioned network: never
        // wait for it (nothing more can be acknowledged), exit for the supervisor to restart us.
        let deadline = std::time::Instant::now() + FENCED_JOIN_MAX;
        while !sequencer_thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !sequencer_thread.is_finished() {
            tracing::error!("the writer thread is stuck on the shared log; exiting without it");
            return Err(Exit::problem(
                "stopped after losing the lease (fenced; the shared log was unreachable): restart to rejoin as a standby",
            ));
        }
    }
    if sequencer_thread.join().is_err() {
        return Err(Exit::problem("the sequencer thread panicked"));
    }
    // The planner went with the sequencer: the snapshot thread finishes its queue and stops.
    if snapshot_thread.join().is_err() {
        return Err(Exit::problem("the snapshot thread panicked"));
    }
    // Nothing more will be written: the backup threads make a last round (bounded by the grace
    // period: a target that does not answer must not hold the stop), then exit.
    shared.backups.stop.store(true, Ordering::Release);
    let deadline = std::time::Instant::now() + grace;
    while backup_threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if backup_threads.iter().any(|t| !t.is_finished()) {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "a backup target did not finish its last round within the grace period; exiting without it"
        );
    }
    served?;
    if shared.is_fenced() {
        return Err(Exit::problem(
            "stopped after losing the lease (fenced): nothing unacknowledged is kept; restart to rejoin as a standby",
        ));
    }
    if shared.flags.poisoned.load(Ordering::Acquire) {
        return Err(Exit::problem(
            "stopped after a WAL write/sync failure (or, in HA, a shared-log replay failure; see the log): acknowledged transactions are safe, the last unacknowledged group may be lost; restart to recover",
        ));
    }
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop(shared: &Shared) -> &'static str {
    tokio::select! {
        signal = crate::cli::signal::stop_signal() => signal,
        () = shared.fatal.notified() => "fatal: WAL failure, lost lease or shared-log divergence",
    }
}

/// How long a fenced node waits for its writer thread before exiting anyway.
const FENCED_JOIN_MAX: Duration = Duration::from_secs(3);

/// HA start-up: connect, migrate the schema, and make the local WAL agree with the shared log
/// (the log wins: unacknowledged local groups are cut; a divergence refuses to start).
fn prepare_ha(
    config: &HaConfig,
    wal: &per_store::WalOptions,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let fail = |e: ha::HaError| {
        anyhow::Error::new(Exit {
            code: e.exit_code(),
            message: format!("HA start-up: {e}"),
        })
    };
    let mut client = ha::pg::connect(config).map_err(fail)?;
    ha::pg::migrate(&mut client, ha::pg::migration_wait_max(config)).map_err(fail)?;
    ha::pg::refuse_duplicate_node_id(&mut client, config, config.lease_ttl * 2).map_err(fail)?;
    let reconciled = ha::reconcile::reconcile(
        &mut client,
        config.key.as_deref(),
        &config.cluster,
        wal,
        data_dir,
    )
    .map_err(fail)?;
    tracing::info!(
        log_end = reconciled.log_end,
        local_end = reconciled.local_end,
        cut_groups = reconciled.cut_groups,
        kept_seq = reconciled.kept_seq,
        moved_snapshots = reconciled.moved_snapshots,
        "HA: local WAL reconciled with the shared log"
    );
    Ok(())
}
