//! TEE attestation (DESIGN §9): a provider that proves what the node runs on.
//!
//! - `none` (default, development): not attested — `/health.tee_attestation_valid` is false.
//! - `tdx`: an Intel TDX quote through the kernel's configfs-tsm interface
//!   (`/sys/kernel/config/tsm/report`, or `PER_TSM_REPORT_DIR`): create a report entry directory,
//!   write a fresh random 64-byte nonce to `inblob`, read the quote from `outblob`, remove the
//!   entry. The quote is valid when its REPORTDATA is the nonce (fresh, not replayed) and its MRTD
//!   (the TD's build-time measurement) equals `PER_ATTESTATION_EXPECTED_MEASUREMENT` (96 hex
//!   digits). The quote's signature chain (Intel DCAP) is **not** verified here: that is the job
//!   of a relying party with collateral (PCCS); the node checks its own measurement.
//!
//! Attestation runs at start-up, before the node serves, and then again every
//! `PER_ATTESTATION_INTERVAL_SECS` (default 300; 0: only at start-up) on a background task
//! ([`spawn_monitor`]), each time with a fresh nonce: a TEE that stops attesting (the measurement
//! changes, configfs-tsm disappears, a check hangs beyond [`CHECK_DURATION_MAX`]) is noticed
//! within one interval. Provider `none` has nothing
//! to re-check and is checked only at start-up. The newest outcome ([`AttestationStatus`], with the
//! time of the check and the count of consecutive failures) replaces the previous one in
//! [`AttestationHolder`].
//!
//! With `PER_ATTESTATION_REQUIRED=true` an attestation that is not valid (provider `none`
//! included) halts writes (503 `Halted`, `/readyz` 503) and makes `/health` critical; without it, an
//! invalid `tdx` attestation only degrades `/health`. **Writes resume by themselves** as soon as a
//! later check is valid again: this halt is the attestation's own, separate from an operator's
//! `/admin/halt`, which an attestation never lifts (and `/admin/resume` never lifts this one).
//!
//! Metrics: `per_tee_attestation_valid{provider}` (1/0), `per_tee_attestation_last_check_timestamp_seconds`,
//! `per_tee_attestation_failures_total` (checks of a real provider that were not valid).

pub use crate::status::attestation::{AttestationHolder, AttestationStatus, Provider, log_check};
use clap::{ArgAction, Args};
use rand::RngCore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default configfs-tsm report directory.
pub const TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";
/// Default seconds between two attestations (`PER_ATTESTATION_INTERVAL_SECS`).
pub const INTERVAL_SECS_DEFAULT: u64 = 300;
/// Longest interval accepted (a day): a check older than that proves little.
pub const INTERVAL_SECS_MAX: u64 = 86_400;
/// How long to wait for `outblob` (the kernel answers at once; a slow fake may not).
const OUTBLOB_WAIT: Duration = Duration::from_secs(10);
/// Longest a re-attestation may take before it counts as not valid (the `outblob` wait and some).
pub const CHECK_DURATION_MAX: Duration = Duration::from_secs(15);
/// Quote header length (v4 and v5).
const QUOTE_HEADER_LEN: usize = 48;
/// Offsets in a TDX 1.0 TD report body (quote v4).
const MRTD_OFFSET: usize = 16 + 48 + 48 + 8 + 8 + 8;
/// MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG (4 × 48), RTMR0..3 (4 × 48), then REPORTDATA.
const REPORTDATA_OFFSET: usize = MRTD_OFFSET + 48 * 4 + 48 * 4;
/// Lengths.
const MRTD_LEN: usize = 48;
const REPORTDATA_LEN: usize = 64;

/// Flags of `per serve` for attestation.
#[derive(Debug, Clone, Args)]
pub struct AttestationArgs {
    /// TEE attestation provider: none | tdx [default: none].
    #[arg(long, env = "PER_ATTESTATION_PROVIDER", value_enum, default_value_t = Provider::None)]
    pub attestation_provider: Provider,
    /// Halt writes unless the attestation is valid (true | false) [default: false].
    #[arg(long, env = "PER_ATTESTATION_REQUIRED", action = ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    pub attestation_required: bool,
    /// Expected TDX MRTD (96 hex digits).
    #[arg(long, env = "PER_ATTESTATION_EXPECTED_MEASUREMENT")]
    pub attestation_expected_measurement: Option<String>,
    /// configfs-tsm report directory.
    #[arg(long, env = "PER_TSM_REPORT_DIR", default_value = TSM_REPORT_DIR)]
    pub tsm_report_dir: PathBuf,
    /// Seconds between re-attestations; 0: only at start-up [default: 300, max: 86400].
    #[arg(long, env = "PER_ATTESTATION_INTERVAL_SECS", default_value_t = INTERVAL_SECS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(0..=INTERVAL_SECS_MAX))]
    pub attestation_interval_secs: u64,
}

/// Re-attests every `PER_ATTESTATION_INTERVAL_SECS` on a background task (the file I/O on the
/// blocking pool) and records each outcome in `shared`. `None` when there is nothing to repeat:
/// an interval of 0 or provider `none`. Abort the task to stop it.
///
/// A check that does not finish within [`CHECK_DURATION_MAX`] (a configfs read that hangs in the
/// kernel) counts as not valid; no second check is started while it hangs (one blocking thread at
/// most), and its result is recorded if it ever finishes.
pub fn spawn_monitor(
    shared: Arc<crate::node::shared::Shared>,
    args: AttestationArgs,
) -> Option<tokio::task::JoinHandle<()>> {
    if args.attestation_interval_secs == 0 || args.attestation_provider == Provider::None {
        return None;
    }
    let interval = Duration::from_secs(args.attestation_interval_secs);
    let args = Arc::new(args);
    Some(tokio::spawn(async move {
        // The start-up check was the first one: the next is one interval later.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hung: Option<tokio::task::JoinHandle<AttestationStatus>> = None;
        loop {
            tick.tick().await;
            let mut check = hung.take().unwrap_or_else(|| {
                let check_args = args.clone();
                tokio::task::spawn_blocking(move || attest(&check_args))
            });
            let failed = |detail: String| AttestationStatus {
                provider: args.attestation_provider,
                valid: false,
                required: args.attestation_required,
                detail,
                last_checked_secs: crate::clock::unix_secs(),
                consecutive_failures: 0,
            };
            let status = match tokio::time::timeout(CHECK_DURATION_MAX, &mut check).await {
                Ok(Ok(status)) => status,
                Ok(Err(e)) => failed(format!("the attestation check failed to run: {e}")),
                Err(_) => {
                    hung = Some(check);
                    failed(format!(
                        "TEE unavailable: the attestation check has not finished after {} s (configfs-tsm hangs)",
                        CHECK_DURATION_MAX.as_secs()
                    ))
                }
            };
            shared.record_attestation(status);
        }
    }))
}

/// Runs the configured provider once (`consecutive_failures` is 0 or 1: see
/// [`AttestationStatus::after`]).
pub fn attest(args: &AttestationArgs) -> AttestationStatus {
    let (valid, detail) = match args.attestation_provider {
        Provider::None => (
            false,
            "no TEE attestation provider (PER_ATTESTATION_PROVIDER=none)".to_owned(),
        ),
        Provider::Tdx => match tdx(
            &args.tsm_report_dir,
            args.attestation_expected_measurement.as_deref(),
        ) {
            Ok(mrtd) => (true, format!("tdx quote: MRTD {mrtd} matches")),
            Err(why) => (false, why),
        },
    };
    AttestationStatus {
        provider: args.attestation_provider,
        valid,
        required: args.attestation_required,
        detail,
        last_checked_secs: crate::clock::unix_secs(),
        consecutive_failures: 0,
    }
    .after(None)
}

/// Parses a 48-byte measurement given in hex (optional `0x`, any case).
pub fn parse_measurement(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let bytes = hex::decode(text)
        .map_err(|e| format!("PER_ATTESTATION_EXPECTED_MEASUREMENT is not hex: {e}"))?;
    if bytes.len() != MRTD_LEN {
        return Err(format!(
            "PER_ATTESTATION_EXPECTED_MEASUREMENT has {} bytes, an MRTD has {MRTD_LEN}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// `(MRTD, REPORTDATA)` of a TDX quote (v4, or v5 with its body descriptor).
pub fn quote_fields(quote: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let version = quote
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or("empty quote")?;
    let body = match version {
        4 => QUOTE_HEADER_LEN,
        // v5: body type (u16) and size (u32) before the report body.
        5 => QUOTE_HEADER_LEN + 6,
        other => return Err(format!("unsupported quote version {other}")),
    };
    let mrtd = quote
        .get(body + MRTD_OFFSET..body + MRTD_OFFSET + MRTD_LEN)
        .ok_or_else(|| format!("quote too short ({} bytes)", quote.len()))?;
    let report_data = quote
        .get(body + REPORTDATA_OFFSET..body + REPORTDATA_OFFSET + REPORTDATA_LEN)
        .ok_or_else(|| format!("quote too short ({} bytes)", quote.len()))?;
    Ok((mrtd, report_data))
}

/// Gets a TDX quote for a fresh nonce and checks it; `Ok(MRTD hex)` or why not.
fn tdx(dir: &Path, expected: Option<&str>) -> Result<String, String> {
    let expected = parse_measurement(
        expected.ok_or("PER_ATTESTATION_EXPECTED_MEASUREMENT is not set: nothing to check")?,
    )?;
    if !dir.is_dir() {
        return Err(format!(
            "TEE unavailable: {} does not exist (no configfs-tsm: not a TDX guest, or configfs not mounted)",
            dir.display()
        ));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let entry = dir.join(format!("per-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&entry)
        .map_err(|e| format!("TEE unavailable: cannot create {}: {e}", entry.display()))?;
    let result = quote_in(&entry).and_then(|(quote, nonce)| {
        let (mrtd, report_data) = quote_fields(&quote)?;
        if report_data != nonce.as_slice() {
            return Err("quote REPORTDATA is not our nonce (stale or replayed quote)".to_owned());
        }
        if mrtd != expected.as_slice() {
            return Err(format!(
                "measurement mismatch: MRTD {} (expected {})",
                hex::encode(mrtd),
                hex::encode(&expected)
            ));
        }
        Ok(hex::encode(mrtd))
    });
    // configfs entries are removed with rmdir (a fake directory may hold files: remove them too).
    if std::fs::remove_dir(&entry).is_err() {
        let _ = std::fs::remove_dir_all(&entry);
    }
    result
}

fn quote_in(entry: &Path) -> Result<(Vec<u8>, [u8; 64]), String> {
    if let Ok(provider) = std::fs::read_to_string(entry.join("provider")) {
        let provider = provider.trim();
        if !provider.is_empty() && provider != "tdx_guest" {
            return Err(format!(
                "configfs-tsm provider is {provider}, not tdx_guest"
            ));
        }
    }
    let mut nonce = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut nonce);
    std::fs::write(entry.join("inblob"), nonce)
        .map_err(|e| format!("TEE unavailable: cannot write inblob: {e}"))?;
    let deadline = Instant::now() + OUTBLOB_WAIT;
    loop {
        match std::fs::read(entry.join("outblob")) {
            Ok(quote) if !quote.is_empty() => return Ok((quote, nonce)),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(_) => return Err("TEE unavailable: empty outblob".to_owned()),
            Err(e) => return Err(format!("TEE unavailable: cannot read outblob: {e}")),
        }
    }
}

/// A TDX v4 quote with `mrtd` and `report_data` (for tests and fakes; no signature).
pub fn fake_quote(mrtd: &[u8], report_data: &[u8]) -> Vec<u8> {
    let mut quote = vec![0u8; QUOTE_HEADER_LEN + REPORTDATA_OFFSET + REPORTDATA_LEN + 64];
    quote[0] = 4;
    let at = QUOTE_HEADER_LEN + MRTD_OFFSET;
    quote[at..at + mrtd.len().min(MRTD_LEN)].copy_from_slice(&mrtd[..mrtd.len().min(MRTD_LEN)]);
    let at = QUOTE_HEADER_LEN + REPORTDATA_OFFSET;
    let n = report_data.len().min(REPORTDATA_LEN);
    quote[at..at + n].copy_from_slice(&report_data[..n]);
    quote
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_tdx_quote_v4_layout() {
        // TD report body: TEE_TCB_SVN 16, MRSEAM 48, MRSIGNERSEAM 48, SEAMATTRIBUTES 8,
        // TDATTRIBUTES 8, XFAM 8, MRTD 48, MRCONFIGID 48, MROWNER 48, MROWNERCONFIG 48,
        // RTMR0..3 4×48, REPORTDATA 64.
        assert_eq!(MRTD_OFFSET, 136);
        assert_eq!(REPORTDATA_OFFSET, 520);
        let quote = fake_quote(&[7; 48], &[9; 64]);
        let (mrtd, data) = quote_fields(&quote)
            .map_err(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(mrtd, [7; 48].as_slice());
        assert_eq!(data, [9; 64].as_slice());
        assert!(quote_fields(&quote[..100]).is_err());
        let mut v3 = quote.clone();
        v3[0] = 3;
        assert!(quote_fields(&v3).is_err());
    }

    #[test]
    fn measurements_parse_as_48_bytes_of_hex() {
        let hex96 = "ab".repeat(48);
        assert_eq!(parse_measurement(&hex96).ok(), Some(vec![0xab; 48]));
        assert_eq!(
            parse_measurement(&format!("0x{}", hex96.to_uppercase())).ok(),
            Some(vec![0xab; 48])
        );
        assert!(parse_measurement("abcd").is_err());
        assert!(parse_measurement(&"zz".repeat(48)).is_err());
    }

    #[test]
    fn none_is_never_valid_and_blocks_writes_only_when_required() {
        let mut args = AttestationArgs {
            attestation_provider: Provider::None,
            attestation_required: false,
            attestation_expected_measurement: None,
            tsm_report_dir: PathBuf::from("/nonexistent"),
            attestation_interval_secs: 0,
        };
        let status = attest(&args);
        assert!(!status.valid && !status.blocks_writes());
        args.attestation_required = true;
        assert!(attest(&args).blocks_writes());
        args.attestation_provider = Provider::Tdx;
        args.attestation_expected_measurement = Some("00".repeat(48));
        let status = attest(&args);
        assert!(!status.valid, "{status:?}");
        assert!(status.detail.contains("TEE unavailable"), "{status:?}");
    }

    fn status(valid: bool, required: bool) -> AttestationStatus {
        AttestationStatus {
            provider: Provider::Tdx,
            valid,
            required,
            detail: String::new(),
            last_checked_secs: 1,
            consecutive_failures: 0,
        }
        .after(None)
    }

    #[test]
    fn the_holder_replaces_the_outcome_and_counts_consecutive_failures() {
        let holder = AttestationHolder::default();
        assert!(holder.get().is_none() && !holder.blocks_writes());
        let (previous, now) = holder.replace(status(true, true));
        assert!(previous.is_none() && now.consecutive_failures == 0);
        assert!(!holder.blocks_writes());
        holder.replace(status(false, true));
        let (previous, now) = holder.replace(status(false, true));
        assert_eq!(previous.map(|p| p.consecutive_failures), Some(1));
        assert_eq!(now.consecutive_failures, 2);
        assert!(
            holder.blocks_writes(),
            "required and not valid: writes halt"
        );
        let (_, now) = holder.replace(status(true, true));
        assert_eq!(now.consecutive_failures, 0);
        assert!(!holder.blocks_writes(), "valid again: writes resume");
        holder.replace(status(false, false));
        assert!(!holder.blocks_writes(), "not required: never halts");
        assert_eq!(holder.get().map(|s| s.consecutive_failures), Some(1));
    }
}
