//! Whether the node takes writes, and if not, why: one decision, in one order, that the sequencer
//! (which error a refused write gets), `/readyz` (what a load balancer sees) and
//! `Shared::accepting_writes` all read.

/// Why new writes are refused, in precedence order (the first that holds is the answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteRefusal {
    /// HA: this node is a standby; writes go to the primary.
    Standby,
    /// HA: this node lost the lease (a newer epoch fenced it).
    Fenced,
    /// The WAL writer failed: nothing more is acknowledged; the process is exiting.
    Poisoned,
    /// An operator halted writes (`/admin/halt`).
    Halted,
    /// `PER_ATTESTATION_REQUIRED=true` and the TEE attestation is not valid.
    AttestationInvalid,
    /// A graceful shutdown began.
    ShuttingDown,
    /// An operator is draining the node (`/admin/drain`).
    Draining,
}

/// The flags the decision reads, sampled once.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteFlags {
    /// The node's role is standby.
    pub standby: bool,
    /// Fenced by a newer epoch.
    pub fenced: bool,
    /// The WAL writer is poisoned.
    pub poisoned: bool,
    /// Halted by an operator.
    pub halted: bool,
    /// A required attestation is not valid.
    pub attestation_blocks: bool,
    /// Shutting down.
    pub shutting_down: bool,
    /// Draining.
    pub draining: bool,
}

impl WriteFlags {
    /// The refusal that applies, if any.
    pub fn refusal(self) -> Option<WriteRefusal> {
        [
            (self.standby, WriteRefusal::Standby),
            (self.fenced, WriteRefusal::Fenced),
            (self.poisoned, WriteRefusal::Poisoned),
            (self.halted, WriteRefusal::Halted),
            (self.attestation_blocks, WriteRefusal::AttestationInvalid),
            (self.shutting_down, WriteRefusal::ShuttingDown),
            (self.draining, WriteRefusal::Draining),
        ]
        .into_iter()
        .find_map(|(holds, refusal)| holds.then_some(refusal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_in_precedence_order_wins() {
        assert_eq!(WriteFlags::default().refusal(), None);
        let all = WriteFlags {
            standby: true,
            fenced: true,
            poisoned: true,
            halted: true,
            attestation_blocks: true,
            shutting_down: true,
            draining: true,
        };
        assert_eq!(all.refusal(), Some(WriteRefusal::Standby));
        let halted_and_draining = WriteFlags {
            halted: true,
            draining: true,
            ..WriteFlags::default()
        };
        assert_eq!(halted_and_draining.refusal(), Some(WriteRefusal::Halted));
        let draining = WriteFlags {
            draining: true,
            ..WriteFlags::default()
        };
        assert_eq!(draining.refusal(), Some(WriteRefusal::Draining));
    }
}
