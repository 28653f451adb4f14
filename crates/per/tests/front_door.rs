//! The front door under socket abuse, with real sockets against a real `per serve`: hundreds of
//! idle, slow-header and slow-body connections (more than `connections_max`) while a normal
//! client keeps getting answers; the node neither exits nor leaks descriptors; `per drain`
//! finishes at once with slow-body writes in flight (they never count as in flight).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ADMIN_TOKEN, DEPOSIT_TOKEN, Node, per_bin};
use per_wire::client::Wallet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CONNECTIONS_MAX: usize = 128;
const IDLE: usize = 250;
const SLOW_HEADERS: usize = 150;
const SLOW_BODIES: usize = 150;

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Idle,
    SlowHeader,
    SlowBody,
}

/// One abusive connection and what the node did to it.
struct Abuser {
    kind: Kind,
    stream: TcpStream,
    answer: Vec<u8>,
    closed: bool,
}

fn slow_body_head(length: usize) -> String {
    format!(
        "POST /deposit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEPOSIT_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

fn open(addr: SocketAddr, kind: Kind) -> Option<Abuser> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    let start: String = match kind {
        Kind::Idle => String::new(),
        Kind::SlowHeader => "GET /pool/info HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_owned(),
        Kind::SlowBody => slow_body_head(10_000),
    };
    stream.write_all(start.as_bytes()).ok()?;
    stream.set_nonblocking(true).ok()?;
    Some(Abuser {
        kind,
        stream,
        answer: Vec::new(),
        closed: false,
    })
}

impl Abuser {
    /// Sends one more byte (slow kinds) and collects whatever the node answered.
    fn drip(&mut self) {
        if self.closed {
            return;
        }
        let byte: &[u8] = match self.kind {
            Kind::Idle => b"",
            Kind::SlowHeader => b"a",
            Kind::SlowBody => b"1",
        };
        if !byte.is_empty() {
            match self.stream.write(byte) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.closed = true,
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => self.answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    fn got_408(&self) -> bool {
        let text = String::from_utf8_lossy(&self.answer);
        text.starts_with("HTTP/1.1 408")
            && text.contains("\"error\":\"RequestTimeout\"")
            && text.contains("\"code\":408")
            && text.to_ascii_lowercase().contains("connection: close")
    }
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

#[test]
fn idle_slow_header_and_slow_body_floods_leave_a_normal_client_served_and_no_fds_leaked() {
    let mut node = Node::new();
    let config = node.tmp().join("per.toml");
    std::fs::write(
        &config,
        format!(
            "[limits]\nconnections_max = {CONNECTIONS_MAX}\nheader_read_timeout_secs = 2\nbody_read_timeout_secs = 2\nidle_timeout_secs = 3\n"
        ),
    )
    .unwrap();
    node.options.config = Some(config);
    node.start();
    let pid = node.pid();
    let base = node.api().base.clone();
    let addr: SocketAddr = format!("127.0.0.1:{}", node.port).parse().unwrap();

    // The normal client: one kept-alive connection opened before the flood (as a load balancer's
    // upstream pool would), alternating a read and a deposit.
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    assert_eq!(
        client
            .get(format!("{base}/pool/info"))
            .send()
            .unwrap()
            .status(),
        200
    );
    std::thread::sleep(Duration::from_millis(300));
    let baseline = fd_count(pid);
    let normal = {
        let stop = stop.clone();
        let base = base.clone();
        std::thread::spawn(move || {
            let mut wallet = Wallet::seeded(4242);
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result = if i.is_multiple_of(2) {
                    client.get(format!("{base}/pool/info")).send()
                } else {
                    let note = wallet.note(1);
                    client
                        .post(format!("{base}/deposit"))
                        .bearer_auth(DEPOSIT_TOKEN)
                        .json(&wallet.deposit_body(&note))
                        .send()
                };
                match result {
                    Ok(resp) if resp.status() == 200 => latencies.push(started.elapsed()),
                    Ok(resp) => failures.push(format!("status {}", resp.status())),
                    Err(e) => failures.push(e.to_string()),
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (latencies, failures)
        })
    };

    // The flood: more connections than connections_max of each kind put together.
    let started = Instant::now();
    let mut abusers: Vec<Abuser> = Vec::new();
    let mut refused_connects = 0;
    for kind in std::iter::repeat_n(Kind::Idle, IDLE)
        .chain(std::iter::repeat_n(Kind::SlowHeader, SLOW_HEADERS))
        .chain(std::iter::repeat_n(Kind::SlowBody, SLOW_BODIES))
    {
        match open(addr, kind) {
            Some(abuser) => abusers.push(abuser),
            None => refused_connects += 1,
        }
    }
    let attempted = IDLE + SLOW_HEADERS + SLOW_BODIES;
    let mut fds_max = 0;
    // Drip for 14 s: every abuser keeps sending (slow kinds) and reads what the node says.
    while started.elapsed() < Duration::from_secs(14) {
        for abuser in &mut abusers {
            abuser.drip();
        }
        fds_max = fds_max.max(fd_count(pid));
        assert!(node.has_process(), "the node exited under the flood");
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, failures) = normal.join().unwrap();
    let closed_by_node = |kind: Kind| {
        abusers
            .iter()
            .filter(|a| a.kind == kind && a.closed)
            .count()
    };
    let slow_bodies_408 = abusers.iter().filter(|a| a.got_408()).count();
    let closed = (
        closed_by_node(Kind::Idle),
        closed_by_node(Kind::SlowHeader),
        closed_by_node(Kind::SlowBody),
    );
    drop(abusers);

    // Everything the flood opened is gone again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fds_after = fd_count(pid);
    while fds_after > baseline + 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        fds_after = fd_count(pid);
    }
    let p99_normal = p99(&mut latencies);
    eprintln!(
        "front door: attempted {attempted} abusive connections ({refused_connects} connects refused), connections_max {CONNECTIONS_MAX}; normal client: {} answers, p99 {:?}, max {:?}, failures {failures:?}; closed by the node (idle, slow header, slow body): {closed:?}, 408 answers: {slow_bodies_408}; fds baseline {baseline}, max {fds_max}, after {fds_after}",
        latencies.len(),
        p99_normal,
        latencies.last().copied().unwrap_or_default(),
    );
    assert!(
        failures.is_empty(),
        "the normal client failed: {failures:?}"
    );
    assert!(
        latencies.len() >= 100,
        "too few answers: {}",
        latencies.len()
    );
    // Generous: measured 485 ms on a debug build with the shared 2-core machine at load 8; the
    // attackers' drip loop runs on the same cores.
    assert!(
        p99_normal < Duration::from_millis(1000),
        "normal client p99 {p99_normal:?}"
    );
    assert!(
        fds_max <= baseline + CONNECTIONS_MAX + 16,
        "descriptors above the connection limit: max {fds_max}, baseline {baseline}"
    );
    assert!(
        fds_after <= baseline + 4,
        "descriptors leaked: baseline {baseline}, after {fds_after}"
    );
    assert!(
        closed.0 >= CONNECTIONS_MAX
            && closed.1 >= CONNECTIONS_MAX / 2
            && closed.2 >= CONNECTIONS_MAX / 2,
        "the node did not close abusive connections on time: {closed:?}"
    );
    assert!(
        slow_bodies_408 >= CONNECTIONS_MAX / 2,
        "slow bodies got 408 RequestTimeout: {slow_bodies_408}"
    );
    assert!(node.has_process(), "the node exited");

    // `per drain` with slow-body writes in flight: they are not in flight (their bodies are not
    // read), so the drain finishes at once; nothing of them is applied.
    let seq_before = node.api().pool_info()["seq"].clone();
    let mut slow: Vec<Abuser> = (0..20).filter_map(|_| open(addr, Kind::SlowBody)).collect();
    assert_eq!(slow.len(), 20);
    std::thread::sleep(Duration::from_millis(300));
    let drain_started = Instant::now();
    let output = Command::new(per_bin())
        .args(["drain", "--url", &base, "--admin-token", ADMIN_TOKEN])
        .args(["--timeout-secs", "10", "--json"])
        .output()
        .unwrap();
    let drain_secs = drain_started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("per drain with 20 slow-body writes: {drain_secs:?}: {stdout}");
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        drain_secs < Duration::from_millis(1500),
        "drain took {drain_secs:?}"
    );
    // The slow writers are cut by the body timeout.
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.iter().any(|a| !a.closed) && Instant::now() < deadline {
        for abuser in &mut slow {
            abuser.drip();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(slow.iter().all(Abuser::got_408), "every slow body got 408");
    assert_eq!(
        node.api().pool_info()["seq"],
        seq_before,
        "nothing slow was applied"
    );
    let output = Command::new(per_bin())
        .args([
            "drain",
            "--resume",
            "--url",
            &base,
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(node.has_process());
}

/// A complete body that arrives slowly but in time is accepted; the body timeout counts from
/// the head, so it is the whole body's bound, not a per-byte one.
#[test]
fn a_body_is_bounded_as_a_whole_not_per_byte() {
    let mut node = Node::new();
    let config = node.tmp().join("per.toml");
    std::fs::write(&config, "[limits]\nbody_read_timeout_secs = 1\n").unwrap();
    node.options.config = Some(config);
    node.start();
    let addr: SocketAddr = format!("127.0.0.1:{}", node.port).parse().unwrap();
    let mut wallet = Wallet::seeded(9);
    let note = wallet.note(5);
    let body = serde_json::to_vec(&wallet.deposit_body(&note)).unwrap();
    // In time: the whole body within ~0.5 s, in 5 pieces.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(slow_body_head(body.len()).as_bytes())
        .unwrap();
    for chunk in body.chunks(body.len().div_ceil(5)) {
        stream.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Too slow overall: one byte every 200 ms (each gap far below the timeout) for 2 s.
    let note = wallet.note(6);
    let body = serde_json::to_vec(&wallet.deposit_body(&note)).unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(slow_body_head(body.len()).as_bytes())
        .unwrap();
    let started = Instant::now();
    let mut cut = false;
    for byte in body.iter().take(10) {
        if stream.write_all(&[*byte]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "cut={cut} after {:?}: {answer}",
        started.elapsed()
    );
    assert!(answer.contains("\"error\":\"RequestTimeout\""), "{answer}");
    assert_eq!(
        node.api().pool_info()["seq"],
        1,
        "only the timely deposit applied"
    );
}
