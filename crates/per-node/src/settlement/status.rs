//! What the settler knows that the WAL does not: whether it runs, the last attempt's error and
//! whether L1 answered. `/health` and `/metrics` read it; the batches themselves are in the state.

pub use crate::status::settlement::{SettlementState, SettlementStatus};

/// The status a node starts with for this configuration.
pub fn status_for(
    config: &crate::settlement::config::SettlementConfig,
) -> std::sync::Arc<SettlementStatus> {
    let state = if !config.enabled() {
        SettlementState::Disabled
    } else if config.mode == crate::settlement::config::SettlementMode::Pool {
        // No prover is built: pool-mode batches cannot carry a proof, and a zero proof is never
        // sent (DESIGN.md §1.1).
        SettlementState::BlockedOnProver
    } else {
        SettlementState::Active
    };
    std::sync::Arc::new(SettlementStatus::new(
        state,
        config.mode.as_str(),
        config.lag_degraded.as_secs(),
    ))
}
