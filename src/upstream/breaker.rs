//! A per-route circuit breaker: after `threshold` consecutive failures that a fallback may
//! answer (throttling, 5xx, unreachable), the route is skipped for a cool-down, so requests go
//! straight to its fallbacks instead of waiting on a target that keeps failing. After the
//! cool-down one request is let through to probe it; a success closes the breaker.
//!
//! Lock-free: two atomics, read on every request, written only on outcomes.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Consecutive failures that open the breaker.
pub const DEFAULT_THRESHOLD: u32 = 5;
/// How long an open breaker skips its route.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(30);

/// Breaker state of one route. Times are milliseconds on a monotonic clock the caller passes
/// in, so tests drive it without sleeping.
#[derive(Debug, Default)]
pub struct CircuitBreaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
}

impl CircuitBreaker {
    /// Whether the route may be tried at `now_ms`. An open breaker whose cool-down has passed
    /// lets one caller through (the probe) and stays open for the others until it reports.
    pub fn allows(&self, now_ms: u64, cool_down: Duration) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if now_ms < until {
            return false;
        }
        // Cool-down over: the first caller to move the deadline probes.
        let next = now_ms + cool_down.as_millis() as u64;
        self.open_until_ms
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records a success: the breaker closes.
    pub fn succeeded(&self) {
        self.failures.store(0, Ordering::Release);
        self.open_until_ms.store(0, Ordering::Release);
    }

    /// Records a failure at `now_ms`; returns true when this failure opened the breaker.
    pub fn failed(&self, now_ms: u64, threshold: u32, cool_down: Duration) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= threshold {
            let until = now_ms + cool_down.as_millis() as u64;
            return self.open_until_ms.swap(until, Ordering::AcqRel) == 0;
        }
        false
    }

    /// Whether the breaker is open at `now_ms`.
    pub fn is_open(&self, now_ms: u64) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        until != 0 && now_ms < until
    }
}

/// The targets whose breaker lets them be tried at `now_ms`, in order, or all of them when
/// none does. Each breaker is asked once: one whose cool-down is over hands its single probe
/// to the first asker, so asking twice would take the target out again.
pub fn usable<T>(
    targets: Vec<T>,
    breaker: impl Fn(&T) -> &CircuitBreaker,
    now_ms: u64,
    cool_down: Duration,
) -> Vec<T> {
    let (allowed, skipped): (Vec<T>, Vec<T>) = targets
        .into_iter()
        .partition(|t| breaker(t).allows(now_ms, cool_down));
    if allowed.is_empty() { skipped } else { allowed }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(30);

    #[test]
    fn opens_after_the_threshold_and_skips_during_the_cool_down() {
        let b = CircuitBreaker::default();
        for _ in 0..4 {
            assert!(!b.failed(1_000, 5, COOL));
            assert!(b.allows(1_000, COOL));
        }
        assert!(b.failed(1_000, 5, COOL), "the fifth failure opens it");
        assert!(!b.allows(1_001, COOL));
        assert!(b.is_open(30_999));
    }

    #[test]
    fn one_probe_after_the_cool_down_and_success_closes() {
        let b = CircuitBreaker::default();
        for _ in 0..5 {
            b.failed(0, 5, COOL);
        }
        assert!(b.allows(30_000, COOL), "the probe");
        assert!(!b.allows(30_001, COOL), "others wait for the probe");
        b.succeeded();
        assert!(b.allows(30_002, COOL));
        assert!(!b.is_open(30_002));
    }

    #[test]
    fn a_target_due_for_its_probe_is_kept_and_open_ones_are_skipped() {
        let opened = |at: u64| {
            let b = CircuitBreaker::default();
            for _ in 0..5 {
                b.failed(at, 5, COOL);
            }
            b
        };
        let (due, open, closed) = (opened(0), opened(20_000), CircuitBreaker::default());
        fn names<'a>(targets: Vec<(&'a str, &CircuitBreaker)>) -> Vec<&'a str> {
            usable(targets, |t| t.1, 30_000, COOL)
                .into_iter()
                .map(|t| t.0)
                .collect()
        }
        assert_eq!(
            names(vec![("due", &due), ("open", &open), ("closed", &closed)]),
            ["due", "closed"]
        );
        assert!(!due.allows(30_001, COOL), "the probe was handed out once");
        assert_eq!(
            names(vec![("open", &open)]),
            ["open"],
            "none allowed: all are tried"
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = CircuitBreaker::default();
        for _ in 0..4 {
            b.failed(0, 5, COOL);
        }
        b.succeeded();
        assert!(!b.failed(0, 5, COOL));
        assert!(b.allows(0, COOL));
    }
}
