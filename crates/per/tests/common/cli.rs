//! Running the recovery-toolbox verbs and `docs/RUNBOOK.md`'s shell lines against a test node:
//! `per <verb>` with a scrubbed environment, `bash -c` with `per` on the PATH, the RUNBOOK's fenced
//! `sh` blocks, and a content listing of a data dir (to prove a refused verb changed nothing).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::common::per_bin;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Environment a verb must not inherit from the developer's shell (it would change the data dir,
/// the key or the token the verb uses).
const SCRUBBED_ENV: &[&str] = &[
    "PER_CONFIG",
    "PER_DATA_DIR",
    "PER_LISTEN",
    "PER_CLUSTER",
    "PER_LOG",
    "PER_LOG_FORMAT",
    "PER_ADMIN_TOKEN",
    "PER_ADMIN_TOKEN_FILE",
    "PER_DEPOSIT_TOKEN",
    "PER_DEPOSIT_TOKEN_FILE",
    "PER_ENCRYPTION_KEY_FILE",
    "PER_DATABASE_URL",
    "PER_REDIS_URL",
    "PER_L1_RPC_URLS",
    "PER_BACKUP_S3_URL",
    "DEPLOYMENT_MODE",
    "SNAPSHOT_INTERVAL",
];

/// What a verb (or a shell line) did.
#[derive(Debug, Clone)]
pub struct CliOut {
    /// Exit code (-1: killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Standard output parsed as one JSON document, or Null.
    pub json: Value,
}

impl CliOut {
    fn of(output: Output) -> CliOut {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        CliOut {
            code: output.status.code().unwrap_or(-1),
            json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics (showing both streams) unless the exit code is `code`; returns self.
    pub fn expect_code(self, code: i32, what: &str) -> CliOut {
        assert_eq!(
            self.code, code,
            "{what}: exit {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

fn scrubbed(mut command: Command, cwd: &Path, env: &[(&str, &str)]) -> Command {
    for name in SCRUBBED_ENV {
        command.env_remove(name);
    }
    command
        .env("NO_COLOR", "1")
        .current_dir(cwd)
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs `per args…` in `cwd` (so the default `./per-data` is `<cwd>/per-data`) with `env`.
pub fn per_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> CliOut {
    let mut command = scrubbed(Command::new(per_bin()), cwd, env);
    command.args(args);
    CliOut::of(command.output().expect("run per"))
}

/// [`per_in`] with an owned environment (as [`crate::common::Node::verb_env`] returns it).
pub fn per_env(cwd: &Path, args: &[&str], env: &[(String, String)]) -> CliOut {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    per_in(cwd, args, &env)
}

/// Runs `per args…` in `cwd` with no extra environment.
pub fn per(cwd: &Path, args: &[&str]) -> CliOut {
    per_in(cwd, args, &[])
}

/// A directory holding only a `per` symlink to the binary under test (for the PATH).
pub fn per_path_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("per-test-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create bin dir");
        let link = dir.join("per");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(per_bin(), &link).expect("symlink per");
        dir
    })
}

/// Runs `bash -c line` in `cwd` with the `per` under test first on the PATH.
pub fn bash(cwd: &Path, line: &str, env: &[(&str, &str)]) -> CliOut {
    let path = format!(
        "{}:{}",
        per_path_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = scrubbed(Command::new("bash"), cwd, env);
    command.env("PATH", path).args(["-c", line]);
    CliOut::of(command.output().expect("run bash"))
}

/// `docs/RUNBOOK.md`.
pub fn runbook_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/RUNBOOK.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The commands of the first fenced `sh` block under the heading `heading` (a line starting with
/// `#` whose text after the hashes is `heading`), one per line, with their trailing `# …`
/// comments and surrounding blanks removed.
pub fn runbook_block(heading: &str) -> Vec<String> {
    let text = runbook_text();
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == heading)
        .unwrap_or_else(|| panic!("RUNBOOK.md has no heading {heading:?}"));
    lines
        .by_ref()
        .find(|l| l.trim() == "```sh")
        .unwrap_or_else(|| panic!("no sh block under {heading:?}"));
    lines
        .take_while(|l| l.trim() != "```")
        .map(strip_comment)
        .filter(|l| !l.is_empty())
        .collect()
}

/// A shell line without its trailing comment (` #` outside quotes and `$(…)`), trimmed.
pub fn strip_comment(line: &str) -> String {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, '#') if depth == 0 && previous.is_whitespace() => {
                return line[..at].trim().to_owned();
            }
            _ => {}
        }
        previous = c;
    }
    line.trim().to_owned()
}

/// Every file under `dir` (relative path → contents), recursively; a missing dir is empty.
pub fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let relative = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            if path.is_dir() {
                out.insert(format!("{relative}/"), Vec::new());
                walk(root, &path, out);
            } else {
                out.insert(relative, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The names in a listing (for messages).
pub fn names(listing: &BTreeMap<String, Vec<u8>>) -> Vec<&str> {
    listing.keys().map(String::as_str).collect()
}

/// Waits (up to 10 s) until `<data-dir>/snapshots` holds no `.tmp` file (a running node's
/// snapshot writer has finished); returns whether it did.
pub fn wait_snapshots_settled(data_dir: &Path) -> bool {
    per_testkit::Poll::new(std::time::Duration::from_secs(10)).until_true(|| {
        !listing(&data_dir.join("snapshots"))
            .keys()
            .any(|name| name.ends_with(".tmp"))
    })
}
