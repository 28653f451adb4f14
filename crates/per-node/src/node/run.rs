//! Running a node: everything `per serve` does once its flags are merged into a [`NodeConfig`] —
//! refuse a configuration that breaks an invariant, lock the data dir, recover, start the snapshot,
//! backup, HA, settlement and attestation threads and the sequencer, serve the API until `stop`
//! resolves (or a fatal error), then shut down in order: in-flight requests, the sequencer's last
//! group, the snapshot thread, the backups' last round.
//!
//! The listener is bound only after recovery (and `READY=1` sent only then), so a load balancer
//! sees a refused connection, not a hanging one, while a node recovers.

use crate::api::{self, AppState};
use crate::config::{DeploymentMode, FileConfig, LogFormat};
use crate::config_error::ConfigError;
use crate::ha::{self, HaConfig};
use crate::node::data_dir_lock::LockError;
use crate::node::recovery::{RecoveryError, recover};
use crate::node::shared::{Shared, SharedConfig};
use crate::node::snapshotter::{self, SnapshotPolicy};
use crate::node::systemd;
use crate::sequencer::{self, HEARTBEAT_INTERVAL, SequencerLimits};
use crate::tokens::Token;
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Everything a node runs with, after flag > environment > config file > default.
pub struct NodeConfig {
    /// `PER_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `SNAPSHOT_INTERVAL`, seconds.
    pub snapshot_interval_secs: u64,
    /// `PER_ENCRYPTION_KEY_FILE`.
    pub encryption_key_file: Option<PathBuf>,
    /// `PER_LISTEN`.
    pub listen: SocketAddr,
    /// `DEPLOYMENT_MODE`.
    pub mode: DeploymentMode,
    /// `PER_CLUSTER`.
    pub cluster: String,
    /// The config file (with the limits).
    pub file: FileConfig,
    /// `PER_LOG`.
    pub log: Option<String>,
    /// `PER_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// HA settings (primary/standby only).
    pub ha: Option<HaConfig>,
    /// Settlement to L1.
    pub settlement: crate::settlement::config::SettlementConfig,
    /// Remote backup targets.
    pub backups: crate::backup::BackupSettings,
    /// `PER_BACKUP_LAG_MAX_SECS`.
    pub backup_lag_max_secs: u64,
    /// `PER_REDIS_URL`.
    pub redis_url: Option<String>,
    /// TEE attestation.
    pub attestation: crate::attestation::AttestationArgs,
    /// Where the tokens come from (flags/env; the config file's token files are in `file`).
    pub sources: TokenSources,
}

/// The tokens given on the command line or in the environment (values never logged).
#[derive(Default)]
pub struct TokenSources {
    /// `PER_DEPOSIT_TOKEN`.
    pub deposit_token: Option<String>,
    /// `PER_DEPOSIT_TOKEN_FILE`.
    pub deposit_token_file: Option<PathBuf>,
    /// `PER_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// `PER_ADMIN_TOKEN_FILE`.
    pub admin_token_file: Option<PathBuf>,
}

/// Why a node did not start, or stopped other than cleanly. The CLI maps each to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A configuration the node refuses (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory is locked by another process, or cannot be locked.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Recovery refused the data on disk (corruption: exit 1) or could not read it (exit 3).
    #[error("{0}")]
    Recovery(RecoveryError),
    /// HA start-up failed (Postgres unreachable, a refused reconciliation, a duplicate node id).
    #[error("HA start-up: {0}")]
    HaStartup(ha::HaError),
    /// The node stopped after a fatal event (a WAL failure, a lost lease, a panicked thread).
    #[error("{0}")]
    Stopped(String),
    /// Anything else (a thread or the runtime that could not start), with its context.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl RunError {
    fn config(message: impl Into<String>) -> RunError {
        RunError::Config(ConfigError(message.into()))
    }
    fn stopped(message: impl Into<String>) -> RunError {
        RunError::Stopped(message.into())
    }
}

/// Runs a node until `stop` resolves (the CLI passes SIGTERM/SIGINT) or a fatal error stops it.
/// Runs the node.
pub fn run(
    config: NodeConfig,
    stop: impl Future<Output = &'static str> + Send + 'static,
) -> Result<(), RunError> {
    let args = &config.sources;
    let redis = match config.redis_url.as_deref().filter(|u| !u.is_empty()) {
        None => None,
        Some(url) => Some(
            ha::redis::RedisTarget::parse(url)
                .map_err(|e| RunError::config(format!("PER_REDIS_URL: {e}")))?,
        ),
    };
    crate::logging::init(config.log.as_deref(), config.log_format);
    // Connections must never take the descriptors the WAL writer needs to rotate.
    let connections_max = api::front_door::fd_budget(
        config.file.limits.connections_max,
        config.file.limits.fds_reserved,
    )
    .map_err(|e| RunError::config(e.to_string()))?;
    let backup_targets = config
        .backups
        .configured()
        .into_iter()
        .map(|name| config.backups.open(name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let _lock = crate::node::data_dir_lock::lock_data_dir(&config.data_dir)?;

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
            return Err(RunError::config(format!(
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
    .map_err(|e| RunError::config(e.to_string()))?;
    let (admin_token, admin_source) = Token::resolve(
        args.admin_token.clone(),
        "PER_ADMIN_TOKEN",
        args.admin_token_file
            .as_deref()
            .or(config.file.admin_token_file.as_deref()),
        &config.data_dir,
        "admin.token",
    )
    .map_err(|e| RunError::config(e.to_string()))?;
    tracing::info!(source = ?deposit_source, "deposit token ready (value never logged)");
    tracing::info!(source = ?admin_source, "admin token ready (value never logged)");

    let limits = &config.file.limits;
    let epoch = 1;
    if let Some(keypair_file) = config.settlement.keypair_file.as_deref()
        && config.settlement.enabled()
    {
        // A bad authority key is a configuration error: refuse before recovering anything.
        per_l1::load_keypair(keypair_file)
            .map_err(|e| RunError::config(format!("PER_L1_KEYPAIR_FILE: {e}")))?;
    }
    let key = crate::node::load_key(config.encryption_key_file.as_deref())?;
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
    let source = crate::node::recovery_source(
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
        return Err(RunError::config(format!(
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
    systemd::status("recovering: loading the newest snapshot and replaying the WAL");
    let started = std::time::Instant::now();
    let (state, wal, report) = recover(source).map_err(RunError::Recovery)?;
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
        let mut threads =
            crate::backup::uploader::spawn(shared.clone(), config.data_dir.clone(), backup_targets)
                .context("cannot start the backup threads")?;
        // Live-WAL archiving: a second connection per target, so a slow snapshot upload never
        // delays the WAL tail.
        let archive_targets = config
            .backups
            .configured()
            .into_iter()
            .map(|name| config.backups.open(name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let archive = crate::backup::archiver::ArchiveConfig {
            wal_dir: config.data_dir.join("wal"),
            key: archive_key,
            record_bytes_max: limits.record_bytes_max,
            delay: Duration::from_millis(limits.backup_archive_delay_ms),
            node_id: ha_config
                .as_ref()
                .map_or_else(ha::host_name, |h| h.node_id.clone()),
        };
        threads.extend(
            crate::backup::archiver::spawn(shared.clone(), archive, archive_targets)
                .context("cannot start the WAL archiving threads")?,
        );
        threads
    };
    // TEE attestation before serving (a required attestation that is not valid halts writes),
    // then again every PER_ATTESTATION_INTERVAL_SECS on a background task (see `spawn_monitor`).
    shared.record_attestation(crate::attestation::attest(&config.attestation));
    let sequencer_limits = SequencerLimits {
        queue_max: limits.queue_max,
        group_records_max: limits.group_records_max,
        batch_txs_max: config.settlement.batch_txs_max,
        batch_age_max: config.settlement.batch_age_max,
    };
    let settlement_status = crate::settlement::status::status_for(&config.settlement);
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
            .map_err(|e| RunError::config(format!("cannot listen on {listen}: {e}")))?;
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
        systemd::ready(local);
        let redis_task = redis.map(|target| {
            let node_id = ha_config
                .as_ref()
                .map_or_else(ha::host_name, |h| h.node_id.clone());
            tracing::info!(redis = %target.address(), key = %ha::redis::state_key(&config.cluster), "redis state cache enabled");
            ha::redis::spawn_publisher(shared.clone(), target, config.cluster.clone(), node_id)
        });
        let attestation_task =
            crate::attestation::spawn_monitor(shared.clone(), config.attestation.clone());
        let heartbeat = {
            let sequencer = sequencer.clone();
            let watchdog = systemd::Watchdog::from_env(shared.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
                loop {
                    tick.tick().await;
                    sequencer.heartbeat();
                    watchdog.ping();
                }
            })
        };
        let settler_task = crate::settlement::settler::spawn(
            &config.settlement,
            shared.clone(),
            sequencer.clone(),
            settlement_status.clone(),
        )
        .map_err(|e| RunError::config(e.to_string()))?;
        let app = api::router(
            AppState {
                shared: shared.clone(),
                sequencer,
            },
            body_limits,
        );
        let shutdown_shared = shared.clone();
        let shutdown = async move {
            let reason = tokio::select! {
                signal = stop => signal,
                () = shutdown_shared.fatal.notified() => "fatal: WAL failure, lost lease or shared-log divergence",
            };
            systemd::stopping(reason);
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
            () = server => Ok::<(), RunError>(()),
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
            return Err(RunError::stopped(
                "stopped after losing the lease (fenced; the shared log was unreachable): restart to rejoin as a standby",
            ));
        }
    }
    if sequencer_thread.join().is_err() {
        return Err(RunError::stopped("the sequencer thread panicked"));
    }
    // The planner went with the sequencer: the snapshot thread finishes its queue and stops.
    if snapshot_thread.join().is_err() {
        return Err(RunError::stopped("the snapshot thread panicked"));
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
        return Err(RunError::stopped(
            "stopped after losing the lease (fenced): nothing unacknowledged is kept; restart to rejoin as a standby",
        ));
    }
    if shared.flags.poisoned.load(Ordering::Acquire) {
        return Err(RunError::stopped(
            "stopped after a WAL write/sync failure (or, in HA, a shared-log replay failure; see the log): acknowledged transactions are safe, the last unacknowledged group may be lost; restart to recover",
        ));
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// How long a fenced node waits for its writer thread before exiting anyway.
const FENCED_JOIN_MAX: Duration = Duration::from_secs(3);

/// HA start-up: connect, migrate the schema, and make the local WAL agree with the shared log
/// (the log wins: unacknowledged local groups are cut; a divergence refuses to start).
fn prepare_ha(
    config: &HaConfig,
    wal: &per_store::WalOptions,
    data_dir: &Path,
) -> Result<(), RunError> {
    let fail = RunError::HaStartup;
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
