//! `per serve` under systemd's notification protocol: a Unix datagram socket stands in for
//! systemd as `NOTIFY_SOCKET`. `STATUS=` comes before `READY=1`, `READY=1` only once the API
//! answers (recovered and bound), `WATCHDOG=1` from the heartbeat when `WATCHDOG_USEC` is set, and
//! `STOPPING=1` on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Node;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Every datagram received until `until` says stop or `timeout` passes.
fn receive_until(
    socket: &UnixDatagram,
    timeout: Duration,
    mut until: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let stop = until(&text);
                messages.push(text);
                if stop {
                    break;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    messages
}

#[test]
fn ready_after_bind_status_before_it_watchdog_and_stopping() {
    let mut node = Node::new();
    let socket_path = node.tmp().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    node.options.env = vec![
        (
            "NOTIFY_SOCKET".to_owned(),
            socket_path.display().to_string(),
        ),
        ("WATCHDOG_USEC".to_owned(), "2000000".to_owned()),
    ];
    node.spawn();
    let api = node.api();
    let mut ready_at_readyz = None;
    let messages = receive_until(&socket, Duration::from_secs(30), |text| {
        if text.lines().any(|l| l == "READY=1") {
            // At the moment READY=1 arrives the API must already answer.
            ready_at_readyz = Some(api.get("/readyz").map(|r| r.status).ok());
            true
        } else {
            false
        }
    });
    println!("before ready: {messages:?}");
    let ready_index = messages
        .iter()
        .position(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1: {messages:?}\n{}", node.log()));
    assert_eq!(
        ready_at_readyz,
        Some(Some(200)),
        "READY=1 before /readyz answered 200"
    );
    let status_index = messages
        .iter()
        .position(|m| m.lines().any(|l| l.starts_with("STATUS=recovering")))
        .unwrap_or_else(|| panic!("no STATUS=recovering: {messages:?}"));
    assert!(status_index < ready_index, "{messages:?}");

    // The watchdog is pinged from the heartbeat (every second).
    let more = receive_until(&socket, Duration::from_secs(5), |t| {
        t.lines().any(|l| l == "WATCHDOG=1")
    });
    assert!(
        more.iter().any(|m| m.lines().any(|l| l == "WATCHDOG=1")),
        "no WATCHDOG=1: {more:?}"
    );

    let status = node
        .sigterm(Duration::from_secs(15))
        .expect("stopped in time");
    assert!(status.success(), "{status:?}");
    let last = receive_until(&socket, Duration::from_secs(2), |t| {
        t.lines().any(|l| l == "STOPPING=1")
    });
    assert!(
        last.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1: {last:?}"
    );
}

#[test]
fn no_watchdog_pings_without_watchdog_usec_and_none_for_another_pid() {
    let mut node = Node::new();
    let socket_path = node.tmp().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    node.options.env = vec![
        (
            "NOTIFY_SOCKET".to_owned(),
            socket_path.display().to_string(),
        ),
        ("WATCHDOG_USEC".to_owned(), "2000000".to_owned()),
        ("WATCHDOG_PID".to_owned(), "1".to_owned()),
    ];
    node.start();
    let messages = receive_until(&socket, Duration::from_millis(2500), |_| false);
    assert!(
        messages.iter().any(|m| m.contains("READY=1")),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains("WATCHDOG=1")),
        "watchdog meant for another process: {messages:?}"
    );
}
