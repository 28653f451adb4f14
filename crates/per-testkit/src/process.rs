//! Child processes: bounded waits, SIGTERM, and kill-and-reap.

use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use crate::wait::Poll;

/// How often a wait for a process exit looks.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// Waits for `child` to exit, up to `timeout`; its status, or None if it still runs.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    Poll::new(timeout)
        .every(EXIT_POLL)
        .until(|| match child.try_wait() {
            Ok(status) => status,
            Err(e) => panic!("try_wait on child {}: {e}", child.id()),
        })
}

/// Sends SIGTERM to a process id (fails the test if `kill` fails).
pub fn send_sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("run kill -TERM {pid}: {e}"));
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// SIGKILL, then reap (waiting up to `reap` for the exit).
pub fn kill_and_reap(child: &mut Child, reap: Duration) {
    let _ = child.kill();
    let _ = wait_exit(child, reap);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_seen_and_bounded() {
        let mut quick = Command::new("true")
            .spawn()
            .unwrap_or_else(|e| panic!("spawn true: {e}"));
        let status = wait_exit(&mut quick, Duration::from_secs(10));
        assert!(status.is_some_and(|s| s.success()));
        let mut slow = Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap_or_else(|e| panic!("spawn sleep: {e}"));
        assert_eq!(wait_exit(&mut slow, Duration::from_millis(50)), None);
        send_sigterm(slow.id());
        let status = wait_exit(&mut slow, Duration::from_secs(10));
        assert!(status.is_some_and(|s| !s.success()));
    }
}
