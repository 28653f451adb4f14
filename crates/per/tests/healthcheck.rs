//! `per healthcheck`: exit 0 healthy, 1 unhealthy (a `/health` that is critical), 3 unreachable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ADMIN_TOKEN, Node, free_port, per_bin};
use std::process::Command;

fn healthcheck(args: &[&str]) -> (i32, String) {
    let output = Command::new(per_bin())
        .arg("healthcheck")
        .args(args)
        .env_remove("PER_LISTEN")
        .env_remove("PER_HEALTHCHECK_URL")
        .output()
        .expect("run per healthcheck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn healthy_unhealthy_and_unreachable_exit_codes() {
    let mut node = Node::new();
    node.start();
    let base = format!("http://127.0.0.1:{}", node.port);

    let (code, text) = healthcheck(&["--url", &base]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("/livez"), "{text}");
    let (code, text) = healthcheck(&["--url", &format!("{base}/health")]);
    assert_eq!(code, 0, "{text}");

    // The default URL follows PER_LISTEN (as in the container: 0.0.0.0 → 127.0.0.1).
    let output = Command::new(per_bin())
        .arg("healthcheck")
        .env_remove("PER_HEALTHCHECK_URL")
        .env("PER_LISTEN", format!("0.0.0.0:{}", node.port))
        .output()
        .expect("run per healthcheck");
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    // Halted: alive, but /health is critical.
    let halted = node
        .api()
        .post_ok("/admin/halt", &serde_json::json!({}), Some(ADMIN_TOKEN));
    assert_eq!(halted.status, 200, "{}", halted.text);
    let (code, text) = healthcheck(&["--url", &format!("{base}/health")]);
    assert_eq!(code, 1, "{text}");
    let (code, text) = healthcheck(&["--url", &format!("{base}/readyz")]);
    assert_eq!(code, 1, "{text}");
    let (code, text) = healthcheck(&["--url", &base]);
    assert_eq!(code, 0, "liveness is not readiness: {text}");

    // Nothing listening.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, text) = healthcheck(&["--url", &closed, "--timeout-secs", "1"]);
    assert_eq!(code, 3, "{text}");
    let (code, text) = healthcheck(&["--url", "localhost:1"]);
    assert_eq!(code, 2, "{text}");
}
