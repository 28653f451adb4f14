//! HA's hook into the write path: every group is committed to the shared, fenced log after the
//! local fdatasync and before it is answered.

/// Why a commit group could not be committed to the shared log (HA).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// The lease is held by another node or epoch, or expired: this node is fenced.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The shared log could not be reached or refused the write: the group's fate is unknown to
    /// this node, so it stops acknowledging (the shared log decides on restart).
    #[error("shared log unavailable: {0}")]
    Unavailable(String),
}

/// Commits a commit group to the shared, fenced log (HA). Called by the sequencer for every group
/// after the local fdatasync and before the group's requests are answered.
pub trait GroupReplicator {
    /// Appends the group `first_seq..=last_seq` (its encoded WAL records, the last one its
    /// `GroupEnd`) under `epoch`. `Ok` only once it is committed in the shared log.
    fn append(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        epoch: u64,
        records: &[&[u8]],
    ) -> Result<(), ReplicationError>;
}

/// A boxed replicator the sequencer thread owns.
pub type Replicator = Box<dyn GroupReplicator + Send>;
