//! Verbs' helpers around the runbook procedures' typed errors: [`ops`] boxes one, [`lift`] turns
//! the first per-ops error of a chain into an [`Exit`] with the same message and code. The codes
//! themselves are decided in one place, `exit.rs::per_ops_exit_code`.

use crate::cli::exit::{Exit, per_ops_exit_code};

/// `error` unchanged when `exit_code_of` already knows its code; else, when the first error of
/// the chain it would map is a per-ops error, an [`Exit`] with that error's code and the same
/// `{:#}` message.
pub fn lift(error: anyhow::Error) -> anyhow::Error {
    for cause in error.chain() {
        if cause.is::<Exit>()
            || cause.is::<per_node::config_error::ConfigError>()
            || cause.is::<per_node::node::data_dir_lock::LockError>()
        {
            return error;
        }
        if let Some(code) = per_ops_exit_code(cause) {
            return Exit {
                code,
                message: format!("{error:#}"),
            }
            .into();
        }
    }
    error
}

/// A per-ops error as an `anyhow::Error` that `exit_code_of` maps to the right code.
pub fn ops<E: std::error::Error + Send + Sync + 'static>(error: E) -> anyhow::Error {
    lift(anyhow::Error::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use per_ops::data_dir::{AccessError, KeyError};
    use per_ops::error::ProcedureError;
    use per_ops::node_client::NodeError;
    use std::path::PathBuf;

    #[test]
    fn per_ops_errors_keep_their_codes_and_messages() {
        let held = AccessError::Held {
            dir: PathBuf::from("/d"),
            hint: "stop it",
        };
        let lifted = lift(anyhow::Error::new(held));
        assert_eq!(crate::cli::exit::exit_code_of(&lifted), 4);
        assert_eq!(
            format!("{lifted:#}"),
            "a node is running on /d (it holds /d/LOCK): stop it"
        );
        let unreachable = anyhow::Error::new(NodeError::Unreachable("gone".into()));
        assert_eq!(crate::cli::exit::exit_code_of(&lift(unreachable)), 3);
        let key = anyhow::Error::new(KeyError("no key".into())).context("outer");
        let lifted = lift(key);
        assert_eq!(crate::cli::exit::exit_code_of(&lifted), 2);
        assert_eq!(format!("{lifted:#}"), "outer: no key");
        let plain = lift(anyhow::anyhow!("other"));
        assert_eq!(crate::cli::exit::exit_code_of(&plain), 1);
    }

    #[test]
    fn procedure_errors_map_by_variant() {
        let refused = lift(anyhow::Error::new(ProcedureError::Refused("no".into())));
        assert_eq!(crate::cli::exit::exit_code_of(&refused), 4);
        let usage = lift(anyhow::Error::new(ProcedureError::from(KeyError(
            "k".into(),
        ))));
        assert_eq!(crate::cli::exit::exit_code_of(&usage), 2);
        assert_eq!(format!("{usage:#}"), "k");
    }

    #[test]
    fn an_explicit_exit_is_left_alone() {
        let error = anyhow::Error::new(Exit {
            code: 4,
            message: "refused".into(),
        })
        .context("while restoring");
        let lifted = lift(error);
        assert_eq!(crate::cli::exit::exit_code_of(&lifted), 4);
        assert_eq!(format!("{lifted:#}"), "while restoring: refused");
    }
}
