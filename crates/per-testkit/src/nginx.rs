//! A real nginx (foreground master) in front of test nodes, its files kept in the test's
//! directory.

use crate::http::Api;
use crate::wait::Poll;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running nginx (foreground master), killed on drop.
pub struct Nginx {
    child: Child,
    /// Its listening port.
    pub port: u16,
    log: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// nginx's error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Whether `nginx` runs here; under `CI=true` its absence fails the test.
pub fn nginx_available() -> bool {
    let available = Command::new("nginx")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true: nginx (apt-get install -y nginx) is required, not skipped"
        );
        println!("SKIPPED: nginx is not installed (apt-get install -y nginx)");
    }
    available
}

/// Files nginx writes, kept in the test's directory (not /var/lib/nginx, /var/log/nginx).
pub fn local_paths(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n"
    )
}

/// Starts nginx in the foreground with `config` (written into `dir`), after `nginx -t`.
pub fn start_nginx(dir: &Path, port: u16, config: &str) -> Nginx {
    let cfg = dir.join("nginx.conf");
    std::fs::write(&cfg, config).unwrap_or_else(|e| panic!("write {}: {e}", cfg.display()));
    let globals = format!(
        "daemon off; master_process on; pid {}/nginx.pid; error_log {}/error.log;",
        dir.display(),
        dir.display()
    );
    let check = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&cfg)
        .arg("-g")
        .arg(&globals)
        .output()
        .unwrap_or_else(|e| panic!("run nginx -t: {e}"));
    assert!(
        check.status.success(),
        "nginx -t refused the config: {}\n{config}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&cfg)
        .arg("-g")
        .arg(&globals)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn nginx: {e}"));
    let nginx = Nginx {
        child,
        port,
        log: dir.join("error.log"),
    };
    let front = Api::new(format!("http://127.0.0.1:{port}"));
    Poll::new(Duration::from_secs(10))
        .every(Duration::from_millis(50))
        .wait_or(
            "nginx to answer /livez",
            || format!("its error log:\n{}", nginx.log()),
            || front.get("/livez").ok(),
        );
    nginx
}
