//! The container and systemd packaging, checked statically (the image itself is built and run with
//! podman by `scripts/container-check.sh`, which `.ci/run` calls): the Dockerfile's structure is linted (stages, numeric non-root user, HEALTHCHECK,
//! no secret baked in, EXPOSE 8080, the volume and the environment), the entrypoint's `*_FILE`
//! handling is run with `sh` against a stand-in `per`, and the systemd unit is linted (and
//! checked with `systemd-analyze verify` when it is installed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Instructions of a Dockerfile: (KEYWORD, arguments), continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(stripped) = trimmed.strip_suffix('\\') {
            current.push_str(stripped);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((keyword.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "KEY",
    "SECRET",
    "PASSWORD",
    "DATABASE_URL",
    "WEBHOOK",
];

#[test]
fn dockerfile_is_multi_stage_non_root_with_healthcheck_and_no_secrets() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let all = instructions(&text);
    let froms: Vec<&String> = all
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        froms.len(),
        4,
        "builder, runtime-base, runtime-prebuilt, runtime: {froms:?}"
    );
    assert!(
        froms[0].starts_with("rust:1.95-bookworm") && froms[0].ends_with("AS builder"),
        "{froms:?}"
    );
    assert_eq!(froms[1], "${BASE_IMAGE} AS runtime-base", "{froms:?}");
    assert_eq!(froms[2], "runtime-base AS runtime-prebuilt", "{froms:?}");
    assert_eq!(
        froms[3], "runtime-base AS runtime",
        "the default target builds with Rust: {froms:?}"
    );
    assert!(
        all.iter()
            .any(|(k, a)| k == "ARG" && a == "BASE_IMAGE=debian:bookworm-slim"),
        "the base defaults to debian:bookworm-slim"
    );

    // The runtime image: the runtime-base stage plus the last stage (which only adds the binary).
    let from_at: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    let runtime: Vec<(String, String)> = all[from_at[1] + 1..from_at[2]]
        .iter()
        .chain(&all[from_at[3] + 1..])
        .cloned()
        .collect();
    let prebuilt = &all[from_at[2] + 1..from_at[3]];
    assert!(
        prebuilt
            .iter()
            .any(|(k, a)| k == "COPY" && a == "${PER_BINARY} /usr/local/bin/per"),
        "{prebuilt:?}"
    );
    let find = |keyword: &str| -> Vec<&String> {
        runtime
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, a)| a)
            .collect()
    };

    let users = find("USER");
    assert_eq!(users.len(), 1, "{users:?}");
    let uid = users[0].split(':').next().unwrap();
    let uid: u32 = uid
        .parse()
        .expect("USER is numeric (Kubernetes runAsNonRoot can check it)");
    assert_eq!(uid, 10001);
    // USER comes before the entrypoint, and no RUN runs after it as root again.
    let user_at = runtime.iter().position(|(k, _)| k == "USER").unwrap();
    let entry_at = runtime.iter().position(|(k, _)| k == "ENTRYPOINT").unwrap();
    assert!(user_at < entry_at);

    let health = find("HEALTHCHECK");
    assert_eq!(health.len(), 1);
    assert!(
        health[0].contains(r#"CMD ["per", "healthcheck"]"#),
        "{}",
        health[0]
    );
    assert_eq!(find("EXPOSE"), vec!["8080"]);
    // The runbook's layout: `-v /data/snapshots:/app/snapshots`, `docker exec … ./bin/…`.
    assert_eq!(find("VOLUME"), vec![r#"["/app/snapshots", "/app/wal"]"#]);
    assert_eq!(find("WORKDIR"), vec!["/app"]);
    assert!(find("COPY").iter().any(|c| *c == "bin/ /app/bin/"));
    assert!(find("COPY").iter().any(|c| *c == "scripts/ /app/scripts/"));
    let copies = find("COPY");
    assert!(
        copies.iter().any(|c| c.starts_with("--from=builder")),
        "{copies:?}"
    );

    // Environment: the defaults asked for, every name one `per serve` reads, no secret value.
    let env: Vec<(String, String)> = find("ENV")
        .iter()
        .flat_map(|a| a.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(get("PER_DATA_DIR"), Some("/app"));
    assert_eq!(get("PER_LISTEN"), Some("0.0.0.0:8080"));
    let help = Command::new(env!("CARGO_BIN_EXE_per"))
        .args(["serve", "--help"])
        .output()
        .expect("per serve --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for (name, _) in &env {
        assert!(
            help.contains(&format!("env: {name}")),
            "ENV {name} is not read by per serve"
        );
    }
    for (keyword, args) in all.iter().filter(|(k, _)| k == "ENV" || k == "ARG") {
        for word in SECRET_WORDS {
            assert!(
                !args.to_ascii_uppercase().contains(word),
                "{keyword} {args}: secrets are passed at run time as *_FILE, never baked in"
            );
        }
    }
    for (_, args) in all.iter().filter(|(k, _)| k == "COPY" || k == "ADD") {
        for bad in [".token", ".key", ".pem", ".env", "per-data"] {
            assert!(!args.contains(bad), "COPY {args}");
        }
    }
    assert!(
        !text.contains("postgres://"),
        "no connection string in the image"
    );

    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    for needed in ["target/", ".git/", "per-data/", "*.token", "*.key", ".env"] {
        assert!(
            ignore.lines().any(|l| l.trim() == needed),
            ".dockerignore lacks {needed}"
        );
    }
}

#[test]
fn entrypoint_turns_file_variables_into_values_and_execs_per() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // A stand-in `per` that prints its arguments and environment.
    let fake = bin.join("per");
    std::fs::write(&fake, "#!/bin/sh\necho \"args: $*\"\nenv\n").unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let secret = tmp.path().join("db_url");
    std::fs::write(&secret, "postgres://per:s3cret@db/per").unwrap();
    let script = repo().join("deploy/docker/entrypoint.sh");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let output = Command::new("sh")
        .arg(&script)
        .arg("serve")
        .env("PATH", &path)
        .env("PER_DATABASE_URL_FILE", &secret)
        .env_remove("PER_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("args: serve"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l == "PER_DATABASE_URL=postgres://per:s3cret@db/per"),
        "{stdout}"
    );
    assert!(!stdout.contains("PER_DATABASE_URL_FILE"), "{stdout}");

    let output = Command::new("sh")
        .arg(&script)
        .arg("serve")
        .env("PATH", &path)
        .env("PER_REDIS_URL_FILE", tmp.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn systemd_unit_is_notify_with_watchdog_and_hardening() {
    let path = repo().join("deploy/systemd/noirwire-per.service");
    let text = std::fs::read_to_string(&path).expect("unit");
    let settings: Vec<(&str, &str)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    let has = |key: &str, value: &str| settings.iter().any(|(k, v)| *k == key && *v == value);
    assert!(has("Type", "notify"));
    assert!(has("WatchdogSec", "30"));
    assert!(has("NotifyAccess", "main"));
    assert!(has("NoNewPrivileges", "yes"));
    assert!(has("ProtectSystem", "strict"));
    assert!(has("ExecStart", "/usr/local/bin/per serve"));
    assert!(
        settings.iter().any(|(k, _)| *k == "EnvironmentFile"),
        "EnvironmentFile="
    );
    assert!(
        !settings
            .iter()
            .any(|(k, v)| *k == "Environment" && SECRET_WORDS.iter().any(|w| v.contains(w))),
        "no secret in Environment="
    );
    let user = settings.iter().find(|(k, _)| *k == "User").map(|(_, v)| *v);
    assert!(user.is_some_and(|u| u != "root"), "{user:?}");

    // `systemd-analyze verify` when available (ExecStart pointed at the binary under test).
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true: systemd-analyze (apt-get install -y systemd) is required, not skipped"
        );
        println!("systemd-analyze not installed: structural checks only");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join("noirwire-per.service");
    std::fs::write(
        &copy,
        text.replace("/usr/local/bin/per", env!("CARGO_BIN_EXE_per")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("noirwire-per.service:"),
        "systemd-analyze warns about the unit: {stderr}"
    );
}
