//! Client configuration and the retry backoff it implies. Pure: no I/O. Defaults follow the
//! Java client's (`request.timeout.ms` 30 s, `retry.backoff.ms` 100 ms growing to
//! `retry.backoff.max.ms` 1 s, `metadata.max.age.ms` 5 min).

use std::time::Duration;

use crate::security::Security;

/// How a [`Client`](crate::Client) reaches and talks to a cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bootstrap brokers, `host:port`.
    pub bootstrap: Vec<String>,
    /// The `client.id` sent in every request header.
    pub client_id: String,
    /// How long a request may wait for its response (a fetch adds its `max_wait_ms`).
    pub request_timeout: Duration,
    /// How long opening a TCP connection (and the ApiVersions handshake) may take.
    pub connect_timeout: Duration,
    /// First pause before a retry; doubles per attempt up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    /// Longest pause between retries.
    pub retry_backoff_max: Duration,
    /// How often a call is retried after a retriable error (fatal errors are never retried).
    pub retries: u32,
    /// Cached metadata older than this is refreshed before it is used for routing.
    pub metadata_max_age: Duration,
    /// TLS and SASL towards the brokers (`security.protocol`, `ssl.*`, `sasl.*`); plaintext by
    /// default.
    pub security: Security,
}

impl ClientConfig {
    /// A configuration with the defaults and the given bootstrap brokers (`host:port`).
    pub fn new(bootstrap: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ClientConfig {
            bootstrap: bootstrap.into_iter().map(Into::into).collect(),
            client_id: "strata-client".to_string(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            retries: 5,
            metadata_max_age: Duration::from_secs(300),
            security: Security::default(),
        }
    }

    /// The pause before retry number `attempt` (0-based): exponential, capped, with ±20%
    /// jitter so that many clients do not retry in lockstep.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let base = exponential(self.retry_backoff, self.retry_backoff_max, attempt);
        let jitter = rand::random_range(0.8..=1.2);
        base.mul_f64(jitter)
            .min(self.retry_backoff_max.max(self.retry_backoff))
    }
}

/// `initial * 2^attempt`, capped at `max` (and never below `initial`).
fn exponential(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(31));
    initial.saturating_mul(factor).min(max.max(initial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = ClientConfig::new(["a:9092", "b:9092"]);
        assert_eq!(
            c.bootstrap,
            vec!["a:9092".to_string(), "b:9092".to_string()]
        );
        assert_eq!(c.client_id, "strata-client");
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.retries, 5);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let ms = Duration::from_millis;
        assert_eq!(exponential(ms(100), ms(1000), 0), ms(100));
        assert_eq!(exponential(ms(100), ms(1000), 1), ms(200));
        assert_eq!(exponential(ms(100), ms(1000), 3), ms(800));
        assert_eq!(exponential(ms(100), ms(1000), 4), ms(1000));
        assert_eq!(exponential(ms(100), ms(1000), 200), ms(1000));
        assert_eq!(
            exponential(ms(100), ms(10), 2),
            ms(100),
            "max below initial"
        );
        let c = ClientConfig::new(["x:1"]);
        for attempt in 0..10 {
            let d = c.backoff(attempt);
            assert!(d >= ms(80) && d <= ms(1000), "{attempt}: {d:?}");
        }
    }
}
