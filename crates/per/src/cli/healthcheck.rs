//! `per healthcheck [--url U]`: a probe for Docker's `HEALTHCHECK` (and any supervisor).
//!
//! GETs `U` (default: `/livez` on the port of `PER_LISTEN`, via 127.0.0.1 when it listens on all
//! addresses; a URL without a path gets `/livez`). Exit 0 when the answer is 2xx (and, for
//! `/health`, its `status` is not `critical`), 1 when the node answers but is not healthy, 3 when
//! it cannot be reached in time. Prints one line (stdout) saying which.

use crate::cli::exit::Exit;
use anyhow::Context;
use clap::Args;
use per_node::config::DEFAULT_LISTEN;
use per_wire::client::HttpOptions;
use per_wire::health::{HealthReport, HealthStatus};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `per healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// URL to probe [default: http://127.0.0.1:<port of PER_LISTEN>/livez].
    #[arg(long, env = "PER_HEALTHCHECK_URL")]
    pub url: Option<String>,
    /// The node's listen address, to derive the default URL.
    #[arg(long, env = "PER_LISTEN", hide = true)]
    pub listen: Option<SocketAddr>,
    /// Give up (exit 3) after this many seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
}

/// The URL to probe.
fn target(args: &HealthcheckArgs) -> anyhow::Result<String> {
    if let Some(url) = &args.url {
        let url = url.trim_end_matches('/');
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| Exit::usage(format!("--url must start with http:// : {url}")))?;
        return Ok(if rest.contains('/') {
            url.to_owned()
        } else {
            format!("{url}/livez")
        });
    }
    let listen = match args.listen {
        Some(listen) => listen,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|_| Exit::usage("bad built-in listen address"))?,
    };
    let host = if listen.ip().is_unspecified() {
        if listen.is_ipv6() {
            "[::1]".to_owned()
        } else {
            "127.0.0.1".to_owned()
        }
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    Ok(format!("http://{host}:{}/livez", listen.port()))
}

/// Probes once.
pub fn exec(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let url = target(&args)?;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let client = HttpOptions::new(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| Exit::unreachable(format!("unreachable: {url}: {}", e.0)))?;
    let answer = runtime.block_on(async {
        let response = client.get(&url).send().await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    let (status, body) = match answer {
        Ok(answer) => answer,
        Err(e) => return Err(Exit::unreachable(format!("unreachable: {url}: {e}"))),
    };
    if !status.is_success() {
        return Err(Exit::problem(format!(
            "unhealthy: {url} answered {status}: {}",
            body.trim()
        )));
    }
    let critical = serde_json::from_str::<HealthReport>(&body)
        .ok()
        .map(|report| report.status)
        .filter(|s| *s == HealthStatus::Critical);
    if let Some(state) = critical {
        return Err(Exit::problem(format!("unhealthy: {url}: status {state}")));
    }
    println!("healthy: {url} answered {status}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: Option<&str>, listen: Option<&str>) -> HealthcheckArgs {
        HealthcheckArgs {
            url: url.map(str::to_owned),
            listen: listen.map(|l| l.parse().unwrap_or_else(|_| unreachable!())),
            timeout_secs: 1,
        }
    }

    #[test]
    fn default_url_follows_per_listen() {
        assert_eq!(
            target(&args(None, Some("0.0.0.0:8080"))).ok().as_deref(),
            Some("http://127.0.0.1:8080/livez")
        );
        assert_eq!(
            target(&args(None, Some("10.0.0.5:9000"))).ok().as_deref(),
            Some("http://10.0.0.5:9000/livez")
        );
        assert_eq!(
            target(&args(Some("http://h:1/"), None)).ok().as_deref(),
            Some("http://h:1/livez")
        );
        assert_eq!(
            target(&args(Some("http://h:1/health"), None))
                .ok()
                .as_deref(),
            Some("http://h:1/health")
        );
        assert!(target(&args(Some("h:1"), None)).is_err());
    }
}
