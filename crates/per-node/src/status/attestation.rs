//! The TEE attestation outcome, replaced by every check; the write path reads whether it blocks.

use clap::ValueEnum;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

/// Which attestation provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Provider {
    /// No TEE (development): never attested.
    #[default]
    None,
    /// Intel TDX via configfs-tsm.
    Tdx,
}

impl Provider {
    /// Name for `/health.tee_attestation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::None => "none",
            Provider::Tdx => "tdx",
        }
    }
}

/// The outcome of attestation, for `/health` and the write path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationStatus {
    /// The provider.
    pub provider: Provider,
    /// Whether the attestation is valid.
    pub valid: bool,
    /// Whether writes need a valid attestation.
    pub required: bool,
    /// What was found (the measurement, or why it is not valid).
    pub detail: String,
    /// Unix seconds of the check.
    pub last_checked_secs: u64,
    /// Checks in a row, this one included, that were not valid (0 when valid).
    pub consecutive_failures: u64,
}

impl AttestationStatus {
    /// Whether writes must stop because of it.
    pub fn blocks_writes(&self) -> bool {
        self.required && !self.valid
    }

    /// This check after `previous`: counts the consecutive failures.
    pub fn after(mut self, previous: Option<&AttestationStatus>) -> AttestationStatus {
        self.consecutive_failures = if self.valid {
            0
        } else {
            previous.map_or(0, |p| p.consecutive_failures) + 1
        };
        self
    }
}

/// The current attestation outcome, replaced by every check. Whether it blocks writes is also
/// kept in an atomic, so the write path never takes the lock.
#[derive(Debug, Default)]
pub struct AttestationHolder {
    blocks_writes: AtomicBool,
    current: RwLock<Option<AttestationStatus>>,
}

impl AttestationHolder {
    /// The newest outcome (`None` before the first check).
    pub fn get(&self) -> Option<AttestationStatus> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the newest outcome halts writes (required and not valid).
    pub fn blocks_writes(&self) -> bool {
        self.blocks_writes.load(Ordering::Acquire)
    }

    /// Replaces the outcome with `status` (its failure count continued from the previous one);
    /// returns the previous outcome and the stored one.
    pub fn replace(
        &self,
        status: AttestationStatus,
    ) -> (Option<AttestationStatus>, AttestationStatus) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let status = status.after(current.as_ref());
        self.blocks_writes
            .store(status.blocks_writes(), Ordering::Release);
        let previous = current.replace(status.clone());
        (previous, status)
    }
}

/// Logs one check: error when it halts writes, warn when it is not valid, info when it is valid
/// for the first time or again (debug for a valid check after a valid one).
pub fn log_check(previous: Option<&AttestationStatus>, status: &AttestationStatus) {
    let provider = status.provider.as_str();
    let detail = status.detail.as_str();
    let failures = status.consecutive_failures;
    let was_valid = previous.map(|p| p.valid);
    if status.blocks_writes() {
        tracing::error!(
            provider,
            detail,
            consecutive_failures = failures,
            "TEE attestation not valid and required: writes halted"
        );
    } else if !status.valid {
        tracing::warn!(
            provider,
            detail,
            consecutive_failures = failures,
            "TEE attestation not valid (not required)"
        );
    } else if was_valid == Some(false) && status.required {
        tracing::info!(
            provider,
            detail,
            "TEE attestation valid again: writes resume"
        );
    } else if was_valid != Some(true) {
        tracing::info!(provider, detail, "TEE attestation valid");
    } else {
        tracing::debug!(provider, detail, "TEE attestation still valid");
    }
}
