//! The one place a `reqwest::Client` is built for the project's own HTTP calls (the verbs, the
//! RTO harness, the alert channels, [`crate::client::ApiClient`]), so timeouts, TLS and proxies do
//! not differ by call site.
//!
//! Settings every client gets: rustls (the crate is built without OpenSSL), a whole-request
//! timeout, `TCP_NODELAY`, and proxies from the environment only (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `NO_PROXY`, as reqwest reads them: stated here so no call site silently differs). What a caller
//! may choose is in [`HttpOptions`].

use std::time::Duration;

/// Why a client could not be built (TLS back-end initialisation, in practice).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client")]
pub struct ClientError(#[source] pub reqwest::Error);

/// The knobs a caller may turn; everything else is the project's default.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Bound on a whole request (connect, send, read the body).
    pub timeout: Duration,
    /// Bound on the TCP (and TLS) connect alone; `None`: only `timeout` bounds it.
    pub connect_timeout: Option<Duration>,
    /// `false`: no idle connection is kept, a fresh one per request (a poller that must not read
    /// a connection the server closed as "unreachable").
    pub keep_idle: bool,
    /// How long an idle pooled connection is kept; `None`: reqwest's default.
    pub pool_idle_timeout: Option<Duration>,
    /// `false`: a redirect is returned as is, never followed (webhooks must not be sent elsewhere).
    pub follow_redirects: bool,
    /// `User-Agent` header; `None`: none is sent.
    pub user_agent: Option<&'static str>,
}

impl HttpOptions {
    /// The defaults with a whole-request `timeout`.
    pub fn new(timeout: Duration) -> HttpOptions {
        HttpOptions {
            timeout,
            connect_timeout: None,
            keep_idle: true,
            pool_idle_timeout: None,
            follow_redirects: true,
            user_agent: None,
        }
    }

    /// Also bounds the connect by `connect_timeout`.
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> HttpOptions {
        self.connect_timeout = Some(connect_timeout);
        self
    }

    /// A fresh connection per request (no idle connection is kept).
    pub fn no_idle_connections(mut self) -> HttpOptions {
        self.keep_idle = false;
        self
    }

    /// Drops idle pooled connections after `idle`.
    pub fn pool_idle_timeout(mut self, idle: Duration) -> HttpOptions {
        self.pool_idle_timeout = Some(idle);
        self
    }

    /// Never follows a redirect.
    pub fn no_redirects(mut self) -> HttpOptions {
        self.follow_redirects = false;
        self
    }

    /// Sends `User-Agent: agent`.
    pub fn user_agent(mut self, agent: &'static str) -> HttpOptions {
        self.user_agent = Some(agent);
        self
    }

    /// Builds the client.
    pub fn build(&self) -> Result<reqwest::Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(self.timeout)
            .tcp_nodelay(true);
        if let Some(connect_timeout) = self.connect_timeout {
            builder = builder.connect_timeout(connect_timeout);
        }
        if !self.keep_idle {
            builder = builder.pool_max_idle_per_host(0);
        }
        if let Some(idle) = self.pool_idle_timeout {
            builder = builder.pool_idle_timeout(idle);
        }
        if !self.follow_redirects {
            builder = builder.redirect(reqwest::redirect::Policy::none());
        }
        if let Some(agent) = self.user_agent {
            builder = builder.user_agent(agent);
        }
        builder.build().map_err(ClientError)
    }
}

/// A client with the project's settings and a whole-request `timeout` (the common case).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    HttpOptions::new(timeout).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_combination_builds() {
        assert!(http_client(Duration::from_secs(1)).is_ok());
        let options = HttpOptions::new(Duration::from_millis(500))
            .connect_timeout(Duration::from_millis(100))
            .no_idle_connections()
            .pool_idle_timeout(Duration::from_secs(30))
            .no_redirects()
            .user_agent("per-test/0");
        assert!(!options.keep_idle && !options.follow_redirects);
        assert_eq!(options.user_agent, Some("per-test/0"));
        assert!(options.build().is_ok());
    }

    #[test]
    fn the_error_names_what_failed() {
        // A header value with a newline cannot be a User-Agent: the build fails, typed.
        let error = HttpOptions::new(Duration::from_secs(1))
            .user_agent("bad\nagent")
            .build()
            .expect_err("invalid user agent");
        assert_eq!(error.to_string(), "cannot build the HTTP client");
        assert!(std::error::Error::source(&error).is_some());
    }
}
