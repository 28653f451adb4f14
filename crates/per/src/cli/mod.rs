//! The command line: one file per verb; this file only dispatches and maps errors to exit codes.

pub mod capture_emergency_snapshot;
pub mod capture_snapshot;
pub mod common;
pub mod drain;
pub mod exit;
pub mod failover;
pub mod find_valid_snapshot;
pub mod ha_seed_log;
pub mod healthcheck;
pub mod list_queued_batches;
pub mod loadgen;
pub mod monitor;
pub mod note;
pub mod notify_incident;
pub mod ops_exit;
pub mod prepare_recovery;
pub mod prune_backups;
pub mod replay_wal;
pub mod requeue_batch;
pub mod restore_snapshot;
pub mod serve;
pub mod signal;
pub mod submit_queued_batch;
pub mod test_rto;
pub mod verify_backups;
pub mod verify_snapshot;
pub mod verify_state;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use exit::{Exit, exit_code_of};
pub use signal::stop_signal;

/// `per`: NoirWire's Private Ephemeral Rollup executor.
#[derive(Debug, Parser)]
#[command(name = "per", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Run the executor (single node on ./per-data with no configuration).
    Serve(Box<serve::ServeArgs>),
    /// The runbook's RTO test: inject a fault into a scratch node, time the recovery, count losses.
    TestRto(test_rto::TestRtoArgs),
    /// Container/orchestrator health probe: GET /livez; exit 0 healthy, 1 not, 3 unreachable.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Open-loop load generator: deposits, then transfers spending real notes.
    Loadgen(loadgen::LoadgenArgs),
    /// Make a fresh note (opening, secrets, commitment, nullifier) as JSON for API clients.
    Note(note::NoteArgs),
    /// Check snapshot files completely: sidecar, header, decryption, checksum, decoding, chain rehash.
    VerifySnapshot(verify_snapshot::VerifySnapshotArgs),
    /// The newest restore point whose whole chain loads (runbook: find_valid_snapshot).
    FindValidSnapshot(find_valid_snapshot::FindValidSnapshotArgs),
    /// Make a snapshot the state the node starts from; newer files go to replaced-<ts>/.
    RestoreSnapshot(restore_snapshot::RestoreSnapshotArgs),
    /// Replay the WAL after a snapshot, checking every group's root; --force sets damage aside.
    ReplayWal(replay_wal::ReplayWalArgs),
    /// Check every snapshot and WAL segment and their continuity (runbook: verify_backups.sh).
    VerifyBackups(verify_backups::VerifyBackupsArgs),
    /// Remote retention: keep N days and at least M restore points per target, never breaking a chain (--dry-run to see).
    PruneBackups(prune_backups::PruneBackupsArgs),
    /// Rebuild the state and recompute its root from the leaves (runbook: verify_state).
    VerifyState(verify_state::VerifyStateArgs),
    /// Take a full snapshot now (from a running node with --url, or offline).
    CaptureSnapshot(capture_snapshot::CaptureSnapshotArgs),
    /// Copy snapshots, WAL and a manifest for post-mortem (runbook: capture_emergency_snapshot).
    CaptureEmergencySnapshot(capture_emergency_snapshot::CaptureEmergencySnapshotArgs),
    /// Poll /health of nodes and alert by severity, deduplicated, with resolves (runbook: monitor.sh).
    Monitor(monitor::MonitorArgs),
    /// Send one incident notice to the channels of a severity (runbook: notify_incident.sh).
    NotifyIncident(notify_incident::NotifyIncidentArgs),
    /// HA: hand the primary role to the standby (runbook: failover.sh --to-standby).
    Failover(failover::FailoverArgs),
    /// HA (extension): write this node's local commit groups the shared log lacks (single → primary).
    HaSeedLog(ha_seed_log::HaSeedLogArgs),
    /// HA: check the old primary is back as a healthy standby (runbook: prepare_recovery.sh).
    PrepareRecovery(prepare_recovery::PrepareRecoveryArgs),
    /// Stop taking new writes and wait for in-flight ones (runbook: drain_traffic.sh).
    Drain(drain::DrainArgs),
    /// Settlement batches waiting for an operator (runbook: list_queued_batches).
    ListQueuedBatches(list_queued_batches::ListQueuedBatchesArgs),
    /// Park a batch as queued with a reason (runbook: requeue_batch).
    RequeueBatch(requeue_batch::RequeueBatchArgs),
    /// Release a queued batch and wait until it settles on L1 (runbook: submit_queued_batch).
    SubmitQueuedBatch(submit_queued_batch::SubmitQueuedBatchArgs),
}

impl Cli {
    /// Runs the chosen verb.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.verb {
            Verb::Serve(args) => serve::exec(*args),
            Verb::Loadgen(args) => loadgen::exec(args),
            Verb::TestRto(args) => test_rto::exec(args),
            Verb::Healthcheck(args) => healthcheck::exec(args),
            Verb::Note(args) => note::exec(args),
            Verb::VerifySnapshot(args) => verify_snapshot::exec(args),
            Verb::FindValidSnapshot(args) => find_valid_snapshot::exec(args),
            Verb::RestoreSnapshot(args) => restore_snapshot::exec(args),
            Verb::ReplayWal(args) => replay_wal::exec(args),
            Verb::VerifyBackups(args) => verify_backups::exec(args),
            Verb::PruneBackups(args) => prune_backups::exec(args),
            Verb::VerifyState(args) => verify_state::exec(args),
            Verb::CaptureSnapshot(args) => capture_snapshot::exec(args),
            Verb::CaptureEmergencySnapshot(args) => capture_emergency_snapshot::exec(args),
            Verb::Monitor(args) => monitor::exec(args),
            Verb::NotifyIncident(args) => notify_incident::exec(args),
            Verb::Failover(args) => failover::exec(args),
            Verb::HaSeedLog(args) => ha_seed_log::exec(args),
            Verb::PrepareRecovery(args) => prepare_recovery::exec(args),
            Verb::Drain(args) => drain::exec(args),
            Verb::ListQueuedBatches(args) => list_queued_batches::exec(args),
            Verb::RequeueBatch(args) => requeue_batch::exec(args),
            Verb::SubmitQueuedBatch(args) => submit_queued_batch::exec(args),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
