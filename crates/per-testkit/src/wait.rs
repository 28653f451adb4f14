//! The one polling loop of the tests: probe, and if not done yet sleep a little, until a
//! deadline. Waiting helpers elsewhere are adapters over it (what to probe, what to show).

use std::time::{Duration, Instant};

/// Sleep between probes unless [`Poll::every`] says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(20);

/// A bounded poll: how long to try and how often.
#[derive(Clone, Copy, Debug)]
pub struct Poll {
    /// Give up after this long (the probe runs at least once).
    pub timeout: Duration,
    /// Sleep between probes.
    pub interval: Duration,
}

impl Poll {
    /// Probes every [`DEFAULT_INTERVAL`] for up to `timeout`.
    pub fn new(timeout: Duration) -> Poll {
        Poll {
            timeout,
            interval: DEFAULT_INTERVAL,
        }
    }

    /// The same poll, probing every `interval`.
    pub fn every(self, interval: Duration) -> Poll {
        Poll { interval, ..self }
    }

    /// Runs `probe` until it returns `Some` (that value) or the timeout passes (`None`).
    pub fn until<T>(&self, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(value) = probe() {
                return Some(value);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(self.interval);
        }
    }

    /// Runs `ready` until it is true; whether it became true within the timeout.
    pub fn until_true(&self, mut ready: impl FnMut() -> bool) -> bool {
        self.until(|| ready().then_some(())).is_some()
    }

    /// [`Poll::until`], failing the test with `what` on timeout.
    pub fn wait<T>(&self, what: &str, probe: impl FnMut() -> Option<T>) -> T {
        self.wait_or(what, String::new, probe)
    }

    /// [`Poll::until`], failing the test on timeout with `what` and `context()` (e.g. the log of
    /// the process that should have got there).
    pub fn wait_or<T>(
        &self,
        what: &str,
        context: impl FnOnce() -> String,
        probe: impl FnMut() -> Option<T>,
    ) -> T {
        match self.until(probe) {
            Some(value) => value,
            None => {
                let context = context();
                let separator = if context.is_empty() { "" } else { "; " };
                panic!(
                    "timed out after {:?} waiting for {what}{separator}{context}",
                    self.timeout
                )
            }
        }
    }
}

/// Polls `probe` (every [`DEFAULT_INTERVAL`]) until it returns `Some`, and returns that value;
/// fails the test saying it timed out waiting for `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    Poll::new(timeout).wait(what, probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value_and_bounds_the_wait() {
        let mut calls = 0;
        let value = wait_for("the third call", Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(value, 3);
        let started = Instant::now();
        let poll = Poll::new(Duration::from_millis(50)).every(Duration::from_millis(5));
        assert!(!poll.until_true(|| false));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_timeout_names_what_was_awaited_and_the_context() {
        let result = std::panic::catch_unwind(|| {
            Poll::new(Duration::from_millis(10)).wait_or(
                "the moon",
                || "log: nothing".to_owned(),
                || None::<()>,
            )
        });
        let payload = result.err().unwrap_or_else(|| panic!("must time out"));
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            message.contains("waiting for the moon; log: nothing"),
            "{message}"
        );
    }
}
