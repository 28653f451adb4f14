//! Table-driven tests: every case of a table runs, and a failure names the cases that failed
//! (with their own panic messages) instead of stopping at the first.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `check` on every case (named by `name`), then fails the test listing every case that
/// panicked, with its message. Cases run in order, so a case may rely on the state the previous
/// ones left (a table of rejections that must change nothing, for example).
pub fn run_cases<C>(cases: &[C], name: impl Fn(&C) -> &str, mut check: impl FnMut(&C)) {
    let mut failures = Vec::new();
    for case in cases {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| check(case))) {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "(no message)".to_owned());
            failures.push(format!("case {:?}: {message}", name(case)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_runs_and_failures_are_named() {
        let cases = [("one", 1), ("two", 2), ("three", 3)];
        let mut seen = Vec::new();
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_cases(
                &cases,
                |c| c.0,
                |c| {
                    seen.push(c.1);
                    assert!(c.1 != 2, "two is odd one out");
                },
            )
        }));
        assert_eq!(seen, [1, 2, 3]);
        let payload = result.err().unwrap_or_else(|| panic!("must fail"));
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("1 of 3 cases failed"), "{message}");
        assert!(
            message.contains("case \"two\": two is odd one out"),
            "{message}"
        );
        run_cases(&cases, |c| c.0, |c| assert!(c.1 > 0));
    }
}
