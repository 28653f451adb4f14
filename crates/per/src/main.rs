//! `per`: parses the command line, runs the verb, and maps its error to the contract's exit codes
//! (0 ok, 1 a check found a problem, 2 usage/configuration, 3 dependency unreachable, 4 refused
//! because of state).

use clap::Parser;
use per::cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(error) => {
            let code = cli::exit_code_of(&error);
            eprintln!("per: {error:#}");
            ExitCode::from(code)
        }
    }
}
