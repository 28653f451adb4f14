//! A real HAProxy in front of test nodes, with the project's production config
//! (`deploy/haproxy/haproxy.cfg`) on loopback addresses.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running HAProxy, killed on drop.
pub struct Haproxy {
    child: Child,
    /// Its frontend.
    pub port: u16,
    log: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// HAProxy's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Whether `haproxy` runs here.
pub fn haproxy_available() -> bool {
    Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The production config with its bind and server addresses replaced by loopback ones.
pub fn config_for(port: u16, servers: &[u16]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy/haproxy.cfg");
    let production = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read deploy/haproxy/haproxy.cfg: {e}"));
    for needle in [
        "option httpchk GET /readyz",
        "http-check expect status 200",
        "inter 1s fall 2 rise 1",
        "on-marked-down shutdown-sessions",
    ] {
        assert!(production.contains(needle), "haproxy.cfg lacks `{needle}`");
    }
    let mut next = servers.iter();
    production
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("bind ") {
                format!("    bind 127.0.0.1:{port}")
            } else if trimmed.starts_with("server ") {
                let mut words: Vec<String> =
                    trimmed.split_whitespace().map(str::to_owned).collect();
                let Some(server) = next.next() else {
                    panic!("haproxy.cfg has more server lines than ports given: {servers:?}")
                };
                words[2] = format!("127.0.0.1:{server}");
                format!("    {}", words.join(" "))
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Starts HAProxy on a free port in front of `servers` (config written into `dir`).
pub fn start_haproxy(dir: &Path, servers: &[u16]) -> Haproxy {
    let port = crate::free_port();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, config_for(port, servers))
        .unwrap_or_else(|e| panic!("write {}: {e}", cfg.display()));
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap_or_else(|e| panic!("run haproxy -c: {e}"));
    assert!(
        check.status.success(),
        "haproxy -c refused the config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = dir.join("haproxy.log");
    let log_file =
        std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let child = Command::new("haproxy")
        .arg("-f")
        .arg(&cfg)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn haproxy: {e}"));
    Haproxy { child, port, log }
}
