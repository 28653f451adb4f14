//! What the HTTP handlers, the sequencer and the health checks share.
//!
//! The state sits behind a `RwLock` that the sequencer holds in write mode from the first apply of a
//! group until its fdatasync returns, so every read (`/pool/info`, proofs, receipts) sees only durable
//! state. Cheap status fields are atomics, so `/health` never waits on a sync.

use crate::clock::unix_secs;
use crate::config::DeploymentMode;
use crate::metrics::Metrics;
use crate::status::snapshots::SnapshotStatus;
use crate::status::writes::{WriteFlags, WriteRefusal};
use crate::tokens::Token;
use per_core::State;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use tokio::sync::Notify;

/// Whether the node takes writes, and if not, why.
#[derive(Debug, Default)]
pub struct Flags {
    /// The WAL writer failed: no more acknowledgements, the process is exiting.
    pub poisoned: AtomicBool,
    /// Graceful shutdown began: new writes are refused.
    pub shutting_down: AtomicBool,
    /// An operator halted writes (`/admin/halt`); state is kept, reads go on.
    pub halted: AtomicBool,
    /// HA: this node lost (or could not prove) the lease; no more acknowledgements, the process
    /// is exiting so its supervisor restarts it as a standby.
    pub fenced: AtomicBool,
    /// An operator is draining the node (`/admin/drain`): new writes are refused (503 `Draining`),
    /// in-flight ones finish, `/readyz` is 503 so the load balancer moves traffic away.
    pub draining: AtomicBool,
}

/// Redis state-cache status (`PER_REDIS_URL`), for `/health`.
#[derive(Debug, Default)]
pub struct RedisStatus {
    /// Whether `PER_REDIS_URL` is set.
    pub configured: AtomicBool,
    /// Whether the last publication succeeded.
    pub ok: AtomicBool,
    /// Seq of the last state published.
    pub published_seq: AtomicU64,
    /// The last error (empty when none).
    pub last_error: std::sync::Mutex<String>,
}

/// Shared node context.
pub struct Shared {
    state: RwLock<State>,
    /// Status flags.
    pub flags: Flags,
    /// Metrics registry and handles.
    pub metrics: Metrics,
    /// Role of this node (changes once, standby → primary, on an HA takeover).
    role: AtomicU8,
    /// Fencing epoch of this node's writes (the lease epoch in HA).
    epoch: AtomicU64,
    /// Whether the node runs in an HA role (heartbeats come from the lease / log, not the
    /// sequencer).
    pub ha: bool,
    /// HA standby: Unix seconds when the node last knew it held everything in the shared log.
    pub caught_up_secs: AtomicU64,
    /// Token required by `/deposit`.
    pub deposit_token: Token,
    /// Token required by `/admin/*`.
    pub admin_token: Token,
    /// Unix seconds of the sequencer's last sign of life.
    pub last_heartbeat_secs: AtomicU64,
    /// Unix seconds when the node started (snapshot lag counts from here until snapshots exist).
    pub started_at_secs: u64,
    /// Woken when the process must stop because of a fatal error.
    pub fatal: Notify,
    /// Degradation thresholds.
    pub pending_tx_degraded_max: u64,
    /// Snapshot progress (None: snapshots off).
    pub snapshots: Option<Arc<SnapshotStatus>>,
    /// Snapshot-lag threshold for `/health`.
    pub snapshot_lag_degraded_secs_max: u64,
    /// TEE attestation outcome: checked at start-up, then replaced by every re-attestation
    /// (unset before the first check).
    pub attestation: crate::status::attestation::AttestationHolder,
    /// Write requests (`/deposit`, `/transfer`, `/withdraw`) being handled now: queued in, or
    /// being committed by, the sequencer. A drain is complete when this is 0.
    pub in_flight_writes: AtomicU64,
    /// Redis state-cache status.
    pub redis: RedisStatus,
    /// Settler status (set once at start-up; unset: reported as disabled).
    pub settlement: std::sync::OnceLock<Arc<crate::status::settlement::SettlementStatus>>,
    /// Remote backup targets' status (`/health.backups`).
    pub backups: crate::status::backups::BackupBoard,
    /// HA problems reported in `/health` reasons, by kind (`crate::status::ha::HaAlerts`).
    pub ha_alerts: crate::status::ha::HaAlerts,
}

/// Everything [`Shared::new`] needs besides the recovered state.
pub struct SharedConfig {
    /// Role.
    pub role: DeploymentMode,
    /// Epoch.
    pub epoch: u64,
    /// Deposit token.
    pub deposit_token: Token,
    /// Admin token.
    pub admin_token: Token,
    /// `/health` degrades above this many unsettled transactions.
    pub pending_tx_degraded_max: u64,
    /// `/health` degrades above this snapshot lag.
    pub snapshot_lag_degraded_secs_max: u64,
    /// Snapshot progress (None: snapshots off).
    pub snapshots: Option<Arc<SnapshotStatus>>,
}

impl Shared {
    /// Wraps a recovered state.
    pub fn new(state: State, config: SharedConfig) -> Shared {
        let metrics = Metrics::new(config.role.as_str());
        metrics.seq.set(state.seq() as i64);
        let now = unix_secs();
        Shared {
            state: RwLock::new(state),
            flags: Flags::default(),
            metrics,
            role: AtomicU8::new(role_code(config.role)),
            epoch: AtomicU64::new(config.epoch),
            ha: config.role != DeploymentMode::Single,
            caught_up_secs: AtomicU64::new(now),
            deposit_token: config.deposit_token,
            admin_token: config.admin_token,
            last_heartbeat_secs: AtomicU64::new(now),
            started_at_secs: now,
            fatal: Notify::new(),
            pending_tx_degraded_max: config.pending_tx_degraded_max,
            snapshot_lag_degraded_secs_max: config.snapshot_lag_degraded_secs_max,
            attestation: crate::status::attestation::AttestationHolder::default(),
            snapshots: config.snapshots,
            in_flight_writes: AtomicU64::new(0),
            redis: RedisStatus::default(),
            settlement: std::sync::OnceLock::new(),
            backups: crate::status::backups::BackupBoard::default(),
            ha_alerts: crate::status::ha::HaAlerts::default(),
        }
    }

    /// A read view of the durable state. A poisoned lock means a sequencer panic mid-group: the
    /// in-memory state may hold unsynced writes, so nobody may read it.
    pub fn read_state(&self) -> Option<RwLockReadGuard<'_, State>> {
        if self.flags.poisoned.load(Ordering::Acquire) || self.flags.fenced.load(Ordering::Acquire)
        {
            return None;
        }
        self.state.read().ok()
    }

    /// The sequencer's exclusive access.
    pub(crate) fn write_state(&self) -> Option<std::sync::RwLockWriteGuard<'_, State>> {
        self.state.write().ok()
    }

    /// Whether new writes may be accepted now.
    pub fn accepting_writes(&self) -> bool {
        self.write_refusal().is_none()
    }

    /// Why new writes are refused now (`None`: they are accepted): the one decision the
    /// sequencer, `/readyz` and this type share.
    pub fn write_refusal(&self) -> Option<WriteRefusal> {
        WriteFlags {
            standby: self.role() == DeploymentMode::Standby,
            fenced: self.flags.fenced.load(Ordering::Acquire),
            poisoned: self.flags.poisoned.load(Ordering::Acquire),
            halted: self.flags.halted.load(Ordering::Acquire),
            attestation_blocks: self.attestation_blocks_writes(),
            shutting_down: self.flags.shutting_down.load(Ordering::Acquire),
            draining: self.flags.draining.load(Ordering::Acquire),
        }
        .refusal()
    }

    /// Whether an operator is draining the node.
    pub fn is_draining(&self) -> bool {
        self.flags.draining.load(Ordering::Acquire)
    }

    /// Whether a required TEE attestation is not valid (writes halted).
    pub fn attestation_blocks_writes(&self) -> bool {
        self.attestation.blocks_writes()
    }

    /// Records the outcome of an attestation check: replaces the current one (writes halt or
    /// resume with it when it is required), updates the metrics and logs it.
    pub fn record_attestation(&self, status: crate::status::attestation::AttestationStatus) {
        let (previous, status) = self.attestation.replace(status);
        self.metrics.record_attestation(
            status.provider.as_str(),
            status.valid,
            status.last_checked_secs,
            status.provider != crate::status::attestation::Provider::None,
        );
        crate::status::attestation::log_check(previous.as_ref(), &status);
    }

    /// Marks the writer failed and asks the process to exit.
    pub fn poison(&self) {
        self.flags.poisoned.store(true, Ordering::Release);
        self.metrics.writer_poisoned.set(1);
        self.fatal.notify_one();
    }

    /// Seconds the durable state has gone without a snapshot holding it: 0 while the newest
    /// snapshot holds `seq`, else the age of that snapshot (or of the process, before the first).
    /// `None` when snapshots are off.
    pub fn snapshot_lag_secs(&self, seq: u64) -> Option<u64> {
        let status = self.snapshots.as_ref()?;
        let last_seq = status.last_seq.load(Ordering::Relaxed);
        let last_secs = status.last_unix_secs.load(Ordering::Relaxed);
        if last_secs != 0 && last_seq == seq {
            return Some(0);
        }
        let since = if last_secs == 0 {
            self.started_at_secs
        } else {
            last_secs
        };
        Some(unix_secs().saturating_sub(since))
    }

    /// Records a sign of life from the sequencer (single mode; in HA the lease or the log poll
    /// is the heartbeat, see [`Shared::ha_heartbeat`]).
    pub fn heartbeat(&self) {
        if !self.ha {
            self.last_heartbeat_secs
                .store(unix_secs(), Ordering::Relaxed);
        }
    }

    /// HA: a successful lease renewal (primary) or log poll (standby).
    pub fn ha_heartbeat(&self) {
        self.last_heartbeat_secs
            .store(unix_secs(), Ordering::Relaxed);
    }

    /// The node's current role.
    pub fn role(&self) -> DeploymentMode {
        match self.role.load(Ordering::Acquire) {
            1 => DeploymentMode::Primary,
            2 => DeploymentMode::Standby,
            _ => DeploymentMode::Single,
        }
    }

    /// The fencing epoch of this node's writes.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// HA takeover: this node now holds the lease at `epoch` and takes writes.
    pub fn promote(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Release);
        self.role
            .store(role_code(DeploymentMode::Primary), Ordering::Release);
        self.ha_heartbeat();
    }

    /// HA standby: the epoch of the newest group applied from the shared log (for `/health`).
    pub fn follow_epoch(&self, epoch: u64) {
        if self.role() == DeploymentMode::Standby {
            self.epoch.store(epoch, Ordering::Release);
        }
    }

    /// HA: before taking writes, the node follows the shared log as a standby.
    pub fn demote_to_standby(&self) {
        self.role
            .store(role_code(DeploymentMode::Standby), Ordering::Release);
    }

    /// HA: the lease is lost (or its state unknown): stop acknowledging at once and ask the
    /// process to exit (non-zero; its supervisor restarts it as a standby).
    pub fn fence(&self) {
        if !self.flags.fenced.swap(true, Ordering::AcqRel) {
            self.metrics.writer_poisoned.set(1);
            self.fatal.notify_one();
        }
    }

    /// Whether the node was fenced.
    pub fn is_fenced(&self) -> bool {
        self.flags.fenced.load(Ordering::Acquire)
    }

    /// HA standby lag: seconds since the node last held everything in the shared log (`None` when
    /// not a standby).
    pub fn replication_lag_secs(&self) -> Option<u64> {
        (self.role() == DeploymentMode::Standby)
            .then(|| unix_secs().saturating_sub(self.caught_up_secs.load(Ordering::Relaxed)))
    }
}

fn role_code(role: DeploymentMode) -> u8 {
    match role {
        DeploymentMode::Single => 0,
        DeploymentMode::Primary => 1,
        DeploymentMode::Standby => 2,
    }
}
