//! Snapshot-writer and process-memory metrics, refreshed at scrape time: what a soak watches to
//! see a degradation when it starts (writer lag, coalesced hand-overs, state copies, RSS).

use crate::status::snapshots::SnapshotStatus;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::Ordering;

/// Metric handles (`per_snapshot_*`, `per_process_resident_memory_bytes`).
#[derive(Clone, Default)]
pub struct SnapshotMetrics {
    /// Age of the oldest handed-over effect the writer has not written (0: caught up).
    pub writer_lag: Gauge,
    /// Hand-overs merged into one waiting for a busy writer.
    pub coalesced: Gauge,
    /// Copies of the whole state made by the sequencer (re-seeds of the replica only).
    pub state_clones: Gauge,
    /// Full snapshots written from such a copy.
    pub fulls_from_clone: Gauge,
    /// Full snapshots written.
    pub fulls_written: Gauge,
    /// Delta snapshots written.
    pub deltas_written: Gauge,
    /// Replica replays that did not give the logged root (a bug).
    pub replica_mismatches: Gauge,
    /// Resident set size of this process.
    pub resident_memory: Gauge,
}

impl SnapshotMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> SnapshotMetrics {
        let metrics = SnapshotMetrics::default();
        registry.register_with_unit(
            "snapshot_writer_lag",
            "Age of the oldest handed-over effect the snapshot writer has not written yet (0: caught up)",
            Unit::Seconds,
            metrics.writer_lag.clone(),
        );
        let plain = [
            (
                "snapshot_coalesced",
                "Snapshot hand-overs merged into one waiting for a busy writer since start",
                &metrics.coalesced,
            ),
            (
                "snapshot_state_clones",
                "Copies of the whole state made by the sequencer for snapshots since start (replica re-seeds only)",
                &metrics.state_clones,
            ),
            (
                "snapshot_fulls_from_clone",
                "Full snapshots written from a sequencer copy of the state since start",
                &metrics.fulls_from_clone,
            ),
            (
                "snapshot_fulls_written",
                "Full snapshots written since start",
                &metrics.fulls_written,
            ),
            (
                "snapshot_deltas_written",
                "Delta snapshots written since start",
                &metrics.deltas_written,
            ),
            (
                "snapshot_replica_mismatches",
                "Hand-overs whose replay on the snapshot replica did not give the logged root (a bug)",
                &metrics.replica_mismatches,
            ),
        ];
        for (name, help, gauge) in plain {
            registry.register(name, help, gauge.clone());
        }
        registry.register_with_unit(
            "process_resident_memory",
            "Resident set size of the node process (Linux: VmRSS)",
            Unit::Bytes,
            metrics.resident_memory.clone(),
        );
        metrics
    }

    /// Copies the status counters and reads the RSS.
    pub fn refresh(&self, status: Option<&SnapshotStatus>) {
        if let Some(status) = status {
            let get = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed) as i64;
            self.writer_lag.set(status.writer_lag_secs() as i64);
            self.coalesced.set(get(&status.coalesced));
            self.state_clones.set(get(&status.state_clones));
            self.fulls_from_clone.set(get(&status.fulls_from_clone));
            self.fulls_written.set(get(&status.fulls_written));
            self.deltas_written.set(get(&status.deltas_written));
            self.replica_mismatches.set(get(&status.replica_mismatches));
        }
        if let Some(bytes) = resident_bytes() {
            self.resident_memory.set(bytes as i64);
        }
    }
}

/// VmRSS of this process, from `/proc/self/status` (None off Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
