//! One commit group, from its first record to the step before its answers: its records are
//! collected in a [`GroupBuilder`] (transactions and in-group batch seals alike), closed by a
//! `GroupEnd` with the sealed root, persisted by the caller (the WAL with one write and one
//! fdatasync, then the shared log in HA), and then [`publish_durable`] updates what readers see
//! besides the state: metrics and the snapshot hand-over. The sequencer's transaction groups, its
//! settlement-event groups and the HA follower's replayed groups all take this one path.

use crate::node::shared::Shared;
use crate::node::snapshotter::SnapshotPlanner;
use per_core::{Field, SettlementEvent, State, TxEffects, WalRecord};
use per_store::AppendStats;

/// The records of one commit group, encoded into reusable buffers as they are added.
pub struct GroupBuilder {
    buffers: Vec<Vec<u8>>,
    used: usize,
    epoch: u64,
    timestamp_ms: u64,
    first_seq: u64,
    keep_effects: bool,
    logged: Vec<(u64, TxEffects)>,
    seals: Vec<(u64, SettlementEvent)>,
    ended: bool,
}

impl GroupBuilder {
    /// A group whose first record will have `first_seq`. `buffers` are reused encoding buffers
    /// (given back by [`GroupBuilder::into_buffers`]); `keep_effects` keeps a copy of each
    /// transaction's effects for the snapshot hand-over (off when snapshots are).
    pub fn start(
        buffers: Vec<Vec<u8>>,
        first_seq: u64,
        epoch: u64,
        timestamp_ms: u64,
        keep_effects: bool,
    ) -> GroupBuilder {
        GroupBuilder {
            buffers,
            used: 0,
            epoch,
            timestamp_ms,
            first_seq,
            keep_effects,
            logged: Vec::new(),
            seals: Vec::new(),
            ended: false,
        }
    }

    /// Adds an applied transaction at `seq`.
    pub fn push_tx(&mut self, seq: u64, effects: TxEffects) {
        if self.keep_effects {
            self.logged.push((seq, effects.clone()));
        }
        self.push(&WalRecord::Tx {
            seq,
            epoch: self.epoch,
            timestamp_ms: self.timestamp_ms,
            effects,
        });
    }

    /// Adds an applied settlement event (a batch seal inside the group, or an event of its own).
    pub fn push_settlement(&mut self, seq: u64, event: SettlementEvent) {
        self.push(&WalRecord::Settlement {
            seq,
            epoch: self.epoch,
            timestamp_ms: self.timestamp_ms,
            event: event.clone(),
        });
        self.seals.push((seq, event));
    }

    /// Closes the group at `seq_last` with the sealed `root` (its last record, `GroupEnd`).
    pub fn end(&mut self, seq_last: u64, root: Field) {
        assert!(!self.ended, "a group is ended once");
        assert!(
            self.used > 0 && seq_last + 1 == self.first_seq + self.used as u64,
            "GroupEnd at {seq_last} must close the group's {} records from {}",
            self.used,
            self.first_seq
        );
        self.push(&WalRecord::GroupEnd {
            seq_last,
            epoch: self.epoch,
            timestamp_ms: self.timestamp_ms,
            root,
        });
        self.ended = true;
    }

    /// Whether nothing was added (a group of rejections and duplicates only logs nothing).
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Transactions in the group (records other than settlement events and the `GroupEnd`).
    pub fn transactions(&self) -> usize {
        self.used - self.seals.len() - usize::from(self.ended)
    }

    /// The first seq of the group.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The encoded records, `GroupEnd` last, to persist as one group.
    pub fn frames(&self) -> Vec<&[u8]> {
        debug_assert!(self.ended, "persist only an ended group");
        self.buffers[..self.used]
            .iter()
            .map(Vec::as_slice)
            .collect()
    }

    /// The effects and settlement events for the snapshot hand-over, and the buffers for reuse.
    pub fn finish(self) -> (GroupParts, Vec<Vec<u8>>) {
        (
            GroupParts {
                logged: self.logged,
                seals: self.seals,
            },
            self.buffers,
        )
    }

    /// The reusable buffers, when the group is dropped unpersisted.
    pub fn into_buffers(self) -> Vec<Vec<u8>> {
        self.buffers
    }

    fn push(&mut self, record: &WalRecord) {
        let bytes = record.encode();
        if self.used < self.buffers.len() {
            self.buffers[self.used] = bytes;
        } else {
            self.buffers.push(bytes);
        }
        self.used += 1;
    }
}

/// What a durable group hands to the snapshot planner.
pub struct GroupParts {
    /// Applied transactions' effects, by seq (empty when snapshots are off).
    pub logged: Vec<(u64, TxEffects)>,
    /// Settlement events, by seq.
    pub seals: Vec<(u64, SettlementEvent)>,
}

/// The step every durable group takes before it is answered (or, on a standby, before the next
/// group): the WAL and seq metrics, and the snapshot hand-over (a rotated segment for compression,
/// the group's effects for the next snapshot).
pub fn publish_durable(
    shared: &Shared,
    planner: Option<&mut SnapshotPlanner>,
    state: &State,
    stats: AppendStats,
    parts: GroupParts,
    root: Field,
) {
    let metrics = &shared.metrics;
    metrics
        .fsync_duration
        .observe(stats.sync_duration.as_secs_f64());
    metrics.wal_bytes.inc_by(stats.bytes);
    metrics.seq.set(state.seq() as i64);
    metrics
        .pending_transactions
        .set(state.settlement().unsettled_tx_count() as i64);
    if let Some(planner) = planner {
        if let Some(sealed) = stats.sealed_segment {
            tracing::info!(seq = state.seq(), "WAL segment rotated");
            planner.segment_sealed(sealed);
        }
        planner.after_group(state, parts.logged, parts.seals, root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released() -> SettlementEvent {
        SettlementEvent::Released {
            batch_id: 1,
            at_ms: 0,
        }
    }

    #[test]
    fn a_group_counts_transactions_apart_from_seals_and_its_end() {
        let mut group = GroupBuilder::start(Vec::new(), 7, 1, 0, false);
        assert!(group.is_empty());
        group.push_settlement(7, released());
        group.end(7, Field::ZERO);
        assert_eq!(group.transactions(), 0);
        assert_eq!(group.frames().len(), 2);
        let (parts, buffers) = group.finish();
        assert_eq!(parts.seals.len(), 1);
        assert_eq!(buffers.len(), 2, "buffers come back for reuse");
    }

    #[test]
    #[should_panic(expected = "must close the group")]
    fn a_group_end_that_skips_a_seq_is_refused() {
        let mut group = GroupBuilder::start(Vec::new(), 7, 1, 0, false);
        group.push_settlement(7, released());
        group.end(8, Field::ZERO);
    }
}
