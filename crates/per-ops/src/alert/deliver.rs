//! Delivering one alert on one channel with bounded retries ([`deliver`], [`RetryPolicy`]).

use super::channels::AnyChannel;
use super::severity::ChannelKind;
use super::types::{Alert, Channel, DeliveryError};
use std::time::Duration;

/// How often and how patiently a delivery is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (≥ 1).
    pub attempts: u32,
    /// Wait before the second try; doubles each time.
    pub first_delay: Duration,
    /// Longest wait between tries (also caps `Retry-After`).
    pub delay_max: Duration,
}

impl Default for RetryPolicy {
    /// 3 tries, 500 ms then 1 s, `Retry-After` honoured up to 10 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(500),
            delay_max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let backoff = self.first_delay.saturating_mul(factor);
        backoff
            .max(retry_after.unwrap_or_default())
            .min(self.delay_max)
    }
}

/// The outcome of one alert on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The channel.
    pub channel: ChannelKind,
    /// Tries made.
    pub attempts: u32,
    /// Ok, or the last error.
    pub result: Result<(), DeliveryError>,
}

/// Sends `alert` on `channel`, retrying retryable failures with exponential backoff; logs each
/// failed try on stderr.
pub async fn deliver(channel: &AnyChannel, alert: &Alert, policy: RetryPolicy) -> Delivery {
    let kind = channel.kind();
    let attempts_max = policy.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match channel.send(alert).await {
            Ok(()) => {
                return Delivery {
                    channel: kind,
                    attempts: attempt,
                    result: Ok(()),
                };
            }
            Err(error) if error.retryable && attempt < attempts_max => {
                let wait = policy.delay(attempt, error.retry_after);
                eprintln!(
                    "per: {kind} delivery try {attempt}/{attempts_max} failed: {error}; retrying in {} ms",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                return Delivery {
                    channel: kind,
                    attempts: attempt,
                    result: Err(error),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, None), Duration::from_millis(500));
        assert_eq!(policy.delay(2, None), Duration::from_secs(1));
        assert_eq!(policy.delay(3, None), Duration::from_secs(2));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(policy.delay(40, None), Duration::from_secs(10));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
    }
}
