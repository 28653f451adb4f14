//! `per note` (extension): makes a fresh note and prints its opening, spend secrets, commitment and
//! nullifier as JSON, so the API can be driven with curl and jq. This is a *client* tool: its output
//! holds secrets; the node never runs it and never logs such values.

use clap::Args;
use per_wire::client::Wallet;
use serde_json::json;
use std::process::ExitCode;

/// Flags of `per note`.
#[derive(Debug, Args)]
pub struct NoteArgs {
    /// Amount of the note in base units.
    #[arg(long)]
    pub amount: u64,
    /// Seed for reproducible notes (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Prints one note as JSON on stdout.
pub fn exec(args: NoteArgs) -> anyhow::Result<ExitCode> {
    if args.amount == 0 {
        return Err(crate::cli::exit::Exit::usage(
            "--amount must be greater than 0",
        ));
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let owned = Wallet::seeded(seed).note(args.amount);
    let out = json!({
        "note": owned.note_json(),
        "secret": owned.secret.to_hex(),
        "nonce": owned.nonce.to_hex(),
        "commitment": owned.commitment().to_hex(),
        "nullifier": owned.nullifier().to_hex(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
