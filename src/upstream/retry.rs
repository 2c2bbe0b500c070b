//! When and how long to wait before sending a failed Bedrock request again.
//!
//! Only failures that happen before Bedrock produced anything are retried: a refused or reset
//! connection, or an HTTP error status that Bedrock documents as retryable (429 throttling,
//! 500, 502, 503). Nothing has reached the client yet at that point, so a retry is invisible
//! to it except as latency. Once a response is being streamed, nothing is retried.
//!
//! Backoff is exponential with full jitter (the AWS SDKs' scheme), capped, and bounded by a
//! total budget; a `Retry-After` from Bedrock replaces the computed wait when it is within
//! the budget, and ends the retries when it is not.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use crate::error::Error;

/// Retry settings (`bedrock.retries` in the configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 turns retrying off.
    pub max_retries: u32,
    /// The first backoff ceiling, in milliseconds; doubled after each attempt.
    pub base_backoff_ms: u64,
    /// Largest single wait, in milliseconds.
    pub max_backoff_ms: u64,
    /// Total time all waits of one request may add, in milliseconds.
    pub budget_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_backoff_ms: 100,
            max_backoff_ms: 2_000,
            budget_ms: 5_000,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 for the first retry) after `error`, or `None`
    /// when the error must not be retried or the budget (`spent` so far) does not allow it.
    /// `jitter` is a number in `0.0..1.0` (random in production, fixed in tests).
    pub fn next_wait(&self, attempt: u32, error: &Error, spent: Duration, jitter: f64) -> Option<Duration> {
        if attempt >= self.max_retries || !is_retryable(error) {
            return None;
        }
        let budget = Duration::from_millis(self.budget_ms);
        let remaining = budget.checked_sub(spent)?;
        let wait = match retry_after(error) {
            Some(asked) => asked,
            None => {
                let ceiling = self
                    .base_backoff_ms
                    .saturating_mul(1u64 << attempt.min(20))
                    .min(self.max_backoff_ms);
                // Full jitter: anywhere in 0..ceiling, so many clients do not retry in step.
                Duration::from_millis((ceiling as f64 * jitter.clamp(0.0, 1.0)) as u64)
            }
        };
        (wait <= remaining).then_some(wait)
    }
}

/// Failures that happened before Bedrock produced a response, and that Bedrock documents as
/// transient: worth a retry, or a fallback target.
pub fn is_retryable(error: &Error) -> bool {
    match error {
        Error::UpstreamConnect(_) => true,
        Error::Upstream { class, .. } => {
            matches!(
                class.status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
            ) && class.retryable
        }
        _ => false,
    }
}

/// Bedrock's `Retry-After` in seconds, if it sent one.
fn retry_after(error: &Error) -> Option<Duration> {
    let Error::Upstream {
        retry_after: Some(value),
        ..
    } = error
    else {
        return None;
    };
    value
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn throttled(retry_after: Option<&'static str>) -> Error {
        Error::upstream(
            "ThrottlingException",
            429,
            "slow down",
            retry_after.map(HeaderValue::from_static),
        )
    }

    #[test]
    fn throttling_and_server_errors_are_retried_with_growing_capped_backoff() {
        let p = RetryPolicy {
            max_retries: 5,
            base_backoff_ms: 100,
            max_backoff_ms: 300,
            budget_ms: 10_000,
        };
        let e = throttled(None);
        assert_eq!(
            p.next_wait(0, &e, Duration::ZERO, 1.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            p.next_wait(1, &e, Duration::ZERO, 1.0),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            p.next_wait(2, &e, Duration::ZERO, 1.0),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            p.next_wait(2, &e, Duration::ZERO, 0.5),
            Some(Duration::from_millis(150))
        );
        for name in ["InternalServerException", "ServiceUnavailableException"] {
            let e = Error::upstream(name, 500, "m", None);
            assert!(p.next_wait(0, &e, Duration::ZERO, 1.0).is_some(), "{name}");
        }
        assert!(
            p.next_wait(0, &Error::UpstreamConnect("refused".into()), Duration::ZERO, 1.0)
                .is_some()
        );
    }

    #[test]
    fn client_errors_and_timeouts_are_not_retried() {
        let p = RetryPolicy::default();
        for e in [
            Error::upstream("ValidationException", 400, "bad", None),
            Error::upstream("AccessDeniedException", 403, "no", None),
            Error::upstream("InvalidSignatureException", 403, "sig", None),
            Error::upstream("ModelTimeoutException", 408, "slow", None),
            Error::UpstreamTimeout(crate::error::TimeoutKind::ResponseHeaders),
        ] {
            assert_eq!(p.next_wait(0, &e, Duration::ZERO, 1.0), None, "{e:?}");
        }
    }

    #[test]
    fn retries_stop_at_the_count_and_the_budget() {
        let p = RetryPolicy {
            max_retries: 2,
            base_backoff_ms: 100,
            max_backoff_ms: 1_000,
            budget_ms: 250,
        };
        let e = throttled(None);
        assert!(p.next_wait(1, &e, Duration::ZERO, 1.0).is_some());
        assert_eq!(
            p.next_wait(2, &e, Duration::ZERO, 1.0),
            None,
            "max_retries reached"
        );
        assert_eq!(
            p.next_wait(1, &e, Duration::from_millis(100), 1.0),
            None,
            "200 ms wait exceeds the 150 ms left"
        );
    }

    #[test]
    fn retry_after_is_honoured_within_the_budget_and_ends_retries_beyond_it() {
        let p = RetryPolicy {
            max_retries: 3,
            base_backoff_ms: 100,
            max_backoff_ms: 1_000,
            budget_ms: 3_000,
        };
        assert_eq!(
            p.next_wait(0, &throttled(Some("2")), Duration::ZERO, 0.0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.next_wait(0, &throttled(Some("30")), Duration::ZERO, 0.0), None);
    }

    #[test]
    fn zero_retries_turns_it_off() {
        let p = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(p.next_wait(0, &throttled(None), Duration::ZERO, 1.0), None);
    }
}
