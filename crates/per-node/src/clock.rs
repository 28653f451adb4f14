//! The wall clock, for reporting and record timestamps only (never for ordering: seqs order).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (the wall clock; only for reporting and record timestamps).
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
