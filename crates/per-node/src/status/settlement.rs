//! What the settler knows that the WAL does not: whether it runs, the last attempt's error and
//! whether L1 answered. `/health` and `/metrics` read it; the batches themselves are in the state.

use serde::Serialize;
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why batches are (not) being settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementState {
    /// No `PER_L1_RPC_URLS`: batches are sealed and held.
    Disabled,
    /// Pool mode without a prover: batches cannot settle (no zero proof is ever sent).
    BlockedOnProver,
    /// A standby: the primary settles.
    Standby,
    /// Settling.
    Active,
}

impl SettlementState {
    /// Name for `/health.settlement`.
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementState::Disabled => "disabled",
            SettlementState::BlockedOnProver => "blocked_on_prover",
            SettlementState::Standby => "standby",
            SettlementState::Active => "active",
        }
    }
}

/// Live settler status.
#[derive(Debug)]
pub struct SettlementStatus {
    state: Mutex<SettlementState>,
    /// Mode name (`memo` | `pool`).
    pub mode: &'static str,
    /// Unix seconds of the last successful L1 call (0: never).
    pub l1_last_ok_secs: AtomicU64,
    /// The last submission error (empty: none since the last success).
    last_error: Mutex<String>,
    /// Seconds after which an unsettled batch degrades `/health`.
    pub lag_degraded_secs: u64,
    /// Wakes the settler (an operator released a batch).
    pub wake: tokio::sync::Notify,
}

impl SettlementStatus {
    /// A status in `state`.
    pub fn new(state: SettlementState, mode: &'static str, lag_degraded_secs: u64) -> Self {
        SettlementStatus {
            state: Mutex::new(state),
            mode,
            l1_last_ok_secs: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            lag_degraded_secs,
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> SettlementState {
        self.state
            .lock()
            .map_or(SettlementState::Disabled, |state| *state)
    }

    /// Changes the state.
    pub fn set_state(&self, state: SettlementState) {
        if let Ok(mut current) = self.state.lock() {
            *current = state;
        }
    }

    /// Records an L1 success.
    pub fn l1_ok(&self) {
        self.l1_last_ok_secs
            .store(crate::clock::unix_secs(), Ordering::Relaxed);
        if let Ok(mut error) = self.last_error.lock() {
            error.clear();
        }
    }

    /// Records an L1 failure.
    pub fn l1_failed(&self, error: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = error.chars().take(300).collect();
        }
    }

    /// The last error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .ok()
            .filter(|e| !e.is_empty())
            .map(|e| e.clone())
    }
}

/// What `/health` needs about settlement.
#[derive(Debug, Clone, Serialize)]
pub struct SettlementReport {
    /// `disabled` | `blocked_on_prover` | `standby` | `active`.
    pub state: &'static str,
    /// Unix seconds of the last confirmed settlement (0: none).
    pub last_settlement: u64,
    /// Transactions not settled on L1 (open batch + sealed batches).
    pub pending_tx_count: u64,
    /// Age of the oldest unsettled sealed batch, seconds (0: none).
    pub lag_secs: u64,
    /// Detail for operators (`/health.settlement_detail`).
    pub detail: Value,
    /// Reasons to degrade `/health` (never critical: acks do not depend on L1).
    pub degraded: Vec<String>,
}
