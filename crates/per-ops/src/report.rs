//! What a procedure hands back to the CLI: the JSON document `--json` prints, the human text
//! otherwise, and how the verb ends (exit code, and a message for stderr when it ends in error
//! after printing, e.g. a refusal that still shows the plan).

use serde_json::Value;
use std::io::{IsTerminal, Write};

/// A procedure's result, printed by the verb exactly once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The `--json` document.
    pub json: Value,
    /// The human text (printed when not `--json`).
    #[serde(skip)]
    pub human: String,
    /// The exit code (0 ok, 1 a finding, 3 unreachable, 4 refused).
    #[serde(skip)]
    pub exit: u8,
    /// When set, the verb prints the report, then ends in error with this message and `exit`.
    #[serde(skip)]
    pub error: Option<String>,
}

impl Report {
    /// A report that ends with exit 0 when `ok`, else 1.
    pub fn ok_if(ok: bool, json: Value, human: String) -> Report {
        Report {
            json,
            human,
            exit: if ok { 0 } else { 1 },
            error: None,
        }
    }

    /// A report that ends with `exit` (no error message).
    pub fn with_exit(exit: u8, json: Value, human: String) -> Report {
        Report {
            json,
            human,
            exit,
            error: None,
        }
    }

    /// A report whose JSON is `value` serialized (keys sorted, as `serde_json::Value` keeps them),
    /// ending with `exit`.
    pub fn typed<T: serde::Serialize>(
        exit: u8,
        value: &T,
        human: String,
    ) -> Result<Report, crate::error::ProcedureError> {
        let json = serde_json::to_value(value).map_err(|e| {
            crate::error::ProcedureError::Problem(format!("cannot encode the report: {e}"))
        })?;
        Ok(Report::with_exit(exit, json, human))
    }

    /// A report printed before the verb fails with `exit` and `message` on stderr.
    pub fn failing(exit: u8, message: String, json: Value, human: String) -> Report {
        Report {
            json,
            human,
            exit,
            error: Some(message),
        }
    }
}

/// A progress line on stderr, only when stderr is a terminal (never in scripts or tests).
pub fn progress(message: impl AsRef<str>) {
    let stderr = std::io::stderr();
    if stderr.is_terminal() {
        let _ = writeln!(stderr.lock(), "{}", message.as_ref());
    }
}
