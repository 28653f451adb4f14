//! The command line: one file per verb; this file only dispatches and maps errors to exit codes.

pub mod loadgen;
pub mod note;
pub mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// `per`: NoirWire's Private Ephemeral Rollup executor.
#[derive(Debug, Parser)]
#[command(name = "per", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Run the executor (single node on ./per-data with no configuration).
    Serve(serve::ServeArgs),
    /// Open-loop load generator: deposits, then transfers spending real notes.
    Loadgen(loadgen::LoadgenArgs),
    /// Make a fresh note (opening, secrets, commitment, nullifier) as JSON for API clients.
    Note(note::NoteArgs),
}

impl Cli {
    /// Runs the chosen verb.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.verb {
            Verb::Serve(args) => serve::exec(args),
            Verb::Loadgen(args) => loadgen::exec(args),
            Verb::Note(args) => note::exec(args),
        }
    }
}

/// An error with an explicit exit code (the contract's 1–4).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// Exit code.
    pub code: u8,
    /// What to tell the operator.
    pub message: String,
}

impl Exit {
    /// A check found a problem (corruption, mismatch).
    pub fn problem(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: 1,
            message: message.into(),
        }
        .into()
    }
    /// Usage or configuration error.
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: 2,
            message: message.into(),
        }
        .into()
    }
    /// A dependency could not be reached.
    pub fn unreachable(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: 3,
            message: message.into(),
        }
        .into()
    }
    /// Refused because of state (lock held, not primary…).
    pub fn refused(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: 4,
            message: message.into(),
        }
        .into()
    }
}

/// The exit code for an error from a verb (1 when nothing more specific is known).
pub fn exit_code_of(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Exit>().map(|exit| exit.code))
        .unwrap_or(1)
}
