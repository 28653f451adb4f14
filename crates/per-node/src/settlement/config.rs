//! Settlement configuration: flags of `per serve`, each with its environment variable
//! (CONTRACT.md "Settlement").

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// How batches are anchored on L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SettlementMode {
    /// SPL Memo with the batch's roots: publicly timestamped on any cluster, no proof needed.
    #[default]
    Memo,
    /// NoirWire's shielded-pool `settle_batch` (needs a proof; blocked while no prover runs).
    Pool,
}

impl SettlementMode {
    /// Name for `/health` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementMode::Memo => "memo",
            SettlementMode::Pool => "pool",
        }
    }
}

/// Flags of `per serve` for batching and settlement.
#[derive(Debug, Clone, Args)]
pub struct SettlementArgs {
    /// Solana JSON-RPC endpoints, comma-separated, tried in order. Unset: settlement disabled
    /// (batches are sealed and held).
    #[arg(long, env = "PER_L1_RPC_URLS", value_delimiter = ',')]
    pub l1_rpc_urls: Vec<String>,
    /// The PER authority keypair (Solana CLI JSON); signs and pays for settlements.
    #[arg(long, env = "PER_L1_KEYPAIR_FILE")]
    pub l1_keypair_file: Option<PathBuf>,
    /// memo | pool [default: memo].
    #[arg(long, env = "PER_SETTLEMENT_MODE", value_enum, default_value_t = SettlementMode::Memo)]
    pub settlement_mode: SettlementMode,
    /// Pool mode: the shielded-pool program id (base58).
    #[arg(long, env = "PER_POOL_PROGRAM_ID")]
    pub pool_program_id: Option<String>,
    /// Pool mode: the pool's token mint (base58).
    #[arg(long, env = "PER_POOL_MINT")]
    pub pool_mint: Option<String>,
    /// Pool mode: the verification-key account (base58).
    #[arg(long, env = "PER_POOL_VERIFICATION_KEY")]
    pub pool_verification_key: Option<String>,
    /// Pool mode: the verifier program (base58).
    #[arg(long, env = "PER_POOL_VERIFIER_PROGRAM")]
    pub pool_verifier_program: Option<String>,
    /// Seal a batch at this many transactions [default: 100].
    #[arg(long, env = "PER_BATCH_TXS_MAX", default_value_t = 100)]
    pub batch_txs_max: u32,
    /// … or when its first transaction is this many seconds old [default: 600].
    #[arg(long, env = "PER_BATCH_AGE_SECS_MAX", default_value_t = 600)]
    pub batch_age_secs_max: u64,
    /// Submission attempts before a batch is queued [default: 5, the runbook's].
    #[arg(long, env = "PER_L1_RETRY_TRIES", default_value_t = 5)]
    pub l1_retry_tries: u32,
    /// First backoff between attempts, doubled each time [default: 1000 ms, the runbook's].
    #[arg(long, env = "PER_L1_RETRY_INITIAL_MS", default_value_t = 1000)]
    pub l1_retry_initial_ms: u64,
    /// `/health` degrades when the oldest unsettled batch is older than this [default: 1800].
    #[arg(long, env = "PER_SETTLEMENT_LAG_DEGRADED_SECS", default_value_t = 1800)]
    pub settlement_lag_degraded_secs: u64,
}

/// Why the settlement configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SettlementConfigError {
    /// A value is out of range or missing.
    #[error("{0}")]
    Invalid(String),
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct SettlementConfig {
    /// Endpoints (empty: disabled).
    pub rpc_urls: Vec<String>,
    /// Authority keypair file.
    pub keypair_file: Option<PathBuf>,
    /// Mode.
    pub mode: SettlementMode,
    /// Pool-mode accounts, base58: program, mint, verification key, verifier program.
    pub pool: Option<[String; 4]>,
    /// Seal size.
    pub batch_txs_max: u32,
    /// Seal age.
    pub batch_age_max: Duration,
    /// Attempts per submission.
    pub retry_tries: u32,
    /// First backoff.
    pub retry_initial: Duration,
    /// `/health` settlement-lag threshold.
    pub lag_degraded: Duration,
}

impl SettlementConfig {
    /// Checks the flags. Settlement without an endpoint is disabled, not an error; an endpoint
    /// without a keypair (or pool mode without its accounts) is.
    pub fn from_args(args: &SettlementArgs) -> Result<SettlementConfig, SettlementConfigError> {
        let invalid = |m: &str| SettlementConfigError::Invalid(m.to_owned());
        if args.batch_txs_max == 0 || args.batch_txs_max > 100_000 {
            return Err(invalid("PER_BATCH_TXS_MAX must be in 1..=100000"));
        }
        if args.batch_age_secs_max == 0 {
            return Err(invalid("PER_BATCH_AGE_SECS_MAX must be > 0"));
        }
        if args.l1_retry_tries == 0 || args.l1_retry_tries > 20 {
            return Err(invalid("PER_L1_RETRY_TRIES must be in 1..=20"));
        }
        let rpc_urls: Vec<String> = args
            .l1_rpc_urls
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        for url in &rpc_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(SettlementConfigError::Invalid(format!(
                    "PER_L1_RPC_URLS: {url:?} is not an http(s) URL"
                )));
            }
        }
        if !rpc_urls.is_empty() && args.l1_keypair_file.is_none() {
            return Err(invalid(
                "PER_L1_RPC_URLS is set but PER_L1_KEYPAIR_FILE is not: settlements must be signed by the PER authority",
            ));
        }
        let pool = match args.settlement_mode {
            SettlementMode::Memo => None,
            SettlementMode::Pool => {
                let need = |value: &Option<String>, name: &str| {
                    value.clone().ok_or_else(|| {
                        SettlementConfigError::Invalid(format!(
                            "PER_SETTLEMENT_MODE=pool needs {name}"
                        ))
                    })
                };
                Some([
                    need(&args.pool_program_id, "PER_POOL_PROGRAM_ID")?,
                    need(&args.pool_mint, "PER_POOL_MINT")?,
                    need(&args.pool_verification_key, "PER_POOL_VERIFICATION_KEY")?,
                    need(&args.pool_verifier_program, "PER_POOL_VERIFIER_PROGRAM")?,
                ])
            }
        };
        Ok(SettlementConfig {
            rpc_urls,
            keypair_file: args.l1_keypair_file.clone(),
            mode: args.settlement_mode,
            pool,
            batch_txs_max: args.batch_txs_max,
            batch_age_max: Duration::from_secs(args.batch_age_secs_max),
            retry_tries: args.l1_retry_tries,
            retry_initial: Duration::from_millis(args.l1_retry_initial_ms),
            lag_degraded: Duration::from_secs(args.settlement_lag_degraded_secs),
        })
    }

    /// Whether batches are submitted at all.
    pub fn enabled(&self) -> bool {
        !self.rpc_urls.is_empty()
    }
}
