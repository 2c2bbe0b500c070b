//! Per-key limits: requests per minute, tokens per minute, streams at once; and the per-key
//! TOTP state (replay guard, failure count, lockout).
//!
//! Each minute limit is a token bucket of the limit's size that refills continuously over a
//! minute, so the OpenAI headers (`remaining`, `reset`) fall out of its level. Requests take
//! one unit before they run. Tokens are only known after the reply, so they are charged then
//! and the bucket may go into debt; a key in debt is refused until the debt is repaid.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::error::{Error, RateLimit};

const MINUTE_MS: f64 = 60_000.0;

/// A key's state is evicted after this long unused, once it is equivalent to a fresh one.
const IDLE_EVICT_MS: u64 = 5 * 60_000;

/// A key's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens (prompt + completion) per minute.
    pub tpm: Option<u64>,
    /// Streams open at once.
    pub max_streams: Option<u32>,
}

impl KeyLimits {
    /// Rejects zero limits, which would lock a key out for good.
    pub fn check(&self) -> Result<(), String> {
        let zero = [
            ("rpm", self.rpm == Some(0)),
            ("tpm", self.tpm == Some(0)),
            ("max_streams", self.max_streams == Some(0)),
        ];
        match zero.iter().find(|(_, z)| *z) {
            Some((name, _)) => Err(format!("{name}: must be at least 1 (omit it for no limit)")),
            None => Ok(()),
        }
    }
}

/// A token bucket of `capacity` units refilling over one minute.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at_ms: u64,
}

impl Bucket {
    fn full(capacity: f64, now_ms: u64) -> Self {
        Self {
            level: capacity,
            at_ms: now_ms,
        }
    }

    fn refill(&mut self, capacity: f64, now_ms: u64) {
        // A clock that steps back leaves the bucket as it was rather than draining it.
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        self.level = (self.level + elapsed * capacity / MINUTE_MS).min(capacity);
        self.at_ms = self.at_ms.max(now_ms);
    }

    /// Milliseconds until the level reaches `target`.
    fn ms_until(&self, target: f64, capacity: f64) -> u64 {
        if self.level >= target {
            return 0;
        }
        ((target - self.level) * MINUTE_MS / capacity).ceil() as u64
    }

    fn window(&self, capacity: f64, limit: u64) -> Window {
        Window {
            limit,
            remaining: self.level.max(0.0).floor() as u64,
            reset_ms: self.ms_until(capacity, capacity),
        }
    }
}

/// One limit as the `x-ratelimit-*` headers show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The configured limit.
    pub limit: u64,
    /// Units left now.
    pub remaining: u64,
    /// Milliseconds until the bucket is full again.
    pub reset_ms: u64,
}

/// The request and token windows after an admission decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateSnapshot {
    /// Requests per minute.
    pub requests: Option<Window>,
    /// Tokens per minute.
    pub tokens: Option<Window>,
}

impl RateSnapshot {
    /// Adds OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        for (window, names) in [
            (
                self.requests,
                [
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ],
            ),
            (
                self.tokens,
                [
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ],
            ),
        ] {
            if let Some(w) = window {
                headers.insert(names[0], HeaderValue::from(w.limit));
                headers.insert(names[1], HeaderValue::from(w.remaining));
                if let Ok(value) = HeaderValue::from_str(&format_reset(w.reset_ms)) {
                    headers.insert(names[2], value);
                }
            }
        }
    }
}

/// OpenAI's reset format: `250ms`, `1s`, `1.5s`, `6m0s`.
pub fn format_reset(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let (s, rest) = (ms / 1000, ms % 1000);
        if rest == 0 {
            format!("{s}s")
        } else {
            let frac = format!("{rest:03}");
            format!("{s}.{}s", frac.trim_end_matches('0'))
        }
    } else {
        let secs = ms.div_ceil(1000);
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// What TOTP has seen of a key.
#[derive(Debug, Default)]
pub(crate) struct TotpState {
    /// The last accepted step: a code of this step or earlier is a replay.
    pub last_step: Option<u64>,
    /// Wrong codes since the last success or lockout.
    pub failures: u32,
    /// No sessions before this time.
    pub locked_until_ms: u64,
}

/// Live state for one key: its buckets, open streams and TOTP state.
#[derive(Debug)]
pub struct KeyState {
    requests: Mutex<Option<Bucket>>,
    tokens: Mutex<Option<Bucket>>,
    streams: AtomicU32,
    pub(crate) totp: Mutex<TotpState>,
    /// After this time, with no stream open, the state is the same as a fresh one.
    settled_at_ms: AtomicU64,
    last_used_ms: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code path panics while holding these locks; if one ever did, the numbers are still
    // usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyState {
    /// Fresh state.
    pub fn new(now_ms: u64) -> Self {
        Self {
            requests: Mutex::new(None),
            tokens: Mutex::new(None),
            streams: AtomicU32::new(0),
            totp: Mutex::new(TotpState::default()),
            settled_at_ms: AtomicU64::new(now_ms),
            last_used_ms: AtomicU64::new(now_ms),
        }
    }

    fn settle_after(&self, at_ms: u64) {
        self.settled_at_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// Admits one request against the request and token limits, or says when to retry. The
    /// snapshot is returned either way, for the response headers.
    pub fn admit(&self, limits: &KeyLimits, now_ms: u64) -> (Result<(), Error>, RateSnapshot) {
        self.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
        let mut snapshot = RateSnapshot::default();
        let mut requests = lock(&self.requests);
        let mut tokens = lock(&self.tokens);
        let mut refused = None;
        if let Some(tpm) = limits.tpm {
            let cap = tpm as f64;
            let bucket = tokens.get_or_insert_with(|| Bucket::full(cap, now_ms));
            bucket.refill(cap, now_ms);
            snapshot.tokens = Some(bucket.window(cap, tpm));
            if bucket.level < 1.0 {
                refused = Some(Error::RateLimited {
                    limit: RateLimit::Tokens,
                    max: tpm,
                    retry_after: Duration::from_millis(bucket.ms_until(1.0, cap)),
                });
            }
        }
        if let Some(rpm) = limits.rpm {
            let cap = f64::from(rpm);
            let bucket = requests.get_or_insert_with(|| Bucket::full(cap, now_ms));
            bucket.refill(cap, now_ms);
            if refused.is_none() {
                if bucket.level < 1.0 {
                    refused = Some(Error::RateLimited {
                        limit: RateLimit::Requests,
                        max: u64::from(rpm),
                        retry_after: Duration::from_millis(bucket.ms_until(1.0, cap)),
                    });
                } else {
                    bucket.level -= 1.0;
                    self.settle_after(now_ms + bucket.ms_until(cap, cap));
                }
            }
            snapshot.requests = Some(bucket.window(cap, u64::from(rpm)));
        }
        (refused.map_or(Ok(()), Err), snapshot)
    }

    /// Charges the tokens a reply used (prompt + completion).
    pub fn charge_tokens(&self, limits: &KeyLimits, used: u64, now_ms: u64) {
        let Some(tpm) = limits.tpm else { return };
        let cap = tpm as f64;
        let mut tokens = lock(&self.tokens);
        let bucket = tokens.get_or_insert_with(|| Bucket::full(cap, now_ms));
        bucket.refill(cap, now_ms);
        bucket.level -= used as f64;
        self.settle_after(now_ms + bucket.ms_until(cap, cap));
    }

    /// Takes a stream slot, or refuses when `max` are open.
    pub fn open_stream(self: &Arc<Self>, max: Option<u32>) -> Result<StreamPermit, Error> {
        let max_open = max.unwrap_or(u32::MAX);
        self.streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max_open).then_some(open + 1)
            })
            .map_err(|_| Error::RateLimited {
                limit: RateLimit::Streams,
                max: u64::from(max_open),
                retry_after: Duration::from_secs(1),
            })?;
        Ok(StreamPermit {
            state: Arc::clone(self),
        })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> u32 {
        self.streams.load(Ordering::Acquire)
    }

    /// Records a lockout ending at `until_ms`.
    pub(crate) fn note_lockout(&self, until_ms: u64) {
        self.settle_after(until_ms);
    }

    /// Whether the state can be dropped: unused for a while, nothing open, no debt or lockout
    /// pending. A TOTP step is accepted for at most 90 s, so forgetting the replay guard after
    /// minutes of silence reopens nothing.
    pub fn is_idle(&self, now_ms: u64) -> bool {
        self.open_streams() == 0
            && now_ms >= self.settled_at_ms.load(Ordering::Relaxed)
            && now_ms.saturating_sub(self.last_used_ms.load(Ordering::Relaxed)) >= IDLE_EVICT_MS
    }

    /// Marks the state used (session exchanges, which do not go through `admit`).
    pub fn touch(&self, now_ms: u64) {
        self.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
    }
}

/// One open stream; the slot is given back when this is dropped.
#[derive(Debug)]
pub struct StreamPermit {
    state: Arc<KeyState>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.state.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn rpm(n: u32) -> KeyLimits {
        KeyLimits {
            rpm: Some(n),
            ..KeyLimits::default()
        }
    }

    fn retry_after(result: Result<(), Error>) -> Duration {
        match result {
            Err(Error::RateLimited { retry_after, .. }) => retry_after,
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    #[test]
    fn requests_per_minute_refill_continuously() {
        let state = KeyState::new(T0);
        let limits = rpm(2);
        let (r, snap) = state.admit(&limits, T0);
        r.unwrap();
        assert_eq!(
            snap.requests,
            Some(Window {
                limit: 2,
                remaining: 1,
                reset_ms: 30_000
            })
        );
        state.admit(&limits, T0).0.unwrap();
        let (r, snap) = state.admit(&limits, T0);
        assert_eq!(retry_after(r), Duration::from_secs(30));
        assert_eq!(snap.requests.unwrap().remaining, 0);
        state.admit(&limits, T0 + 29_999).0.unwrap_err();
        state.admit(&limits, T0 + 30_000).0.unwrap();
    }

    #[test]
    fn tokens_are_charged_after_the_fact_and_debt_is_repaid() {
        let state = KeyState::new(T0);
        let limits = KeyLimits {
            tpm: Some(1000),
            ..KeyLimits::default()
        };
        state.admit(&limits, T0).0.unwrap();
        state.charge_tokens(&limits, 1500, T0);
        let (r, snap) = state.admit(&limits, T0);
        // 501 tokens short of one: 30.06 s at 1000 per minute.
        assert_eq!(retry_after(r), Duration::from_millis(30_060));
        assert_eq!(snap.tokens.unwrap().remaining, 0);
        state.admit(&limits, T0 + 30_060).0.unwrap();
        // A debt outlasting the idle period keeps the state from being evicted (and forgiven).
        state.charge_tokens(&limits, 10_000, T0 + 30_060);
        assert!(!state.is_idle(T0 + IDLE_EVICT_MS + 30_060));
        assert!(state.is_idle(T0 + 12 * 60_000));
    }

    #[test]
    fn a_refused_request_consumes_nothing() {
        let state = KeyState::new(T0);
        let limits = KeyLimits {
            rpm: Some(1),
            tpm: Some(10),
            max_streams: None,
        };
        state.charge_tokens(&limits, 20, T0);
        state.admit(&limits, T0).0.unwrap_err();
        let (_, snap) = state.admit(&limits, T0);
        assert_eq!(snap.requests.unwrap().remaining, 1);
    }

    #[test]
    fn stream_slots_are_returned_on_drop() {
        let state = Arc::new(KeyState::new(T0));
        let a = state.open_stream(Some(2)).unwrap();
        let _b = state.open_stream(Some(2)).unwrap();
        assert!(matches!(
            state.open_stream(Some(2)),
            Err(Error::RateLimited {
                limit: RateLimit::Streams,
                ..
            })
        ));
        drop(a);
        let _c = state.open_stream(Some(2)).unwrap();
        assert_eq!(state.open_streams(), 2);
    }

    #[test]
    fn idle_state_is_evictable_only_when_settled() {
        let state = Arc::new(KeyState::new(T0));
        state.admit(&rpm(1), T0).0.unwrap();
        assert!(!state.is_idle(T0 + 1000));
        let permit = state.open_stream(None).unwrap();
        assert!(!state.is_idle(T0 + IDLE_EVICT_MS));
        drop(permit);
        assert!(state.is_idle(T0 + IDLE_EVICT_MS));
    }

    #[test]
    fn headers_follow_openai_names_and_formats() {
        let snap = RateSnapshot {
            requests: Some(Window {
                limit: 60,
                remaining: 59,
                reset_ms: 1000,
            }),
            tokens: Some(Window {
                limit: 1000,
                remaining: 0,
                reset_ms: 360_000,
            }),
        };
        let mut headers = HeaderMap::new();
        snap.write_headers(&mut headers);
        assert_eq!(headers["x-ratelimit-limit-requests"], "60");
        assert_eq!(headers["x-ratelimit-remaining-requests"], "59");
        assert_eq!(headers["x-ratelimit-reset-requests"], "1s");
        assert_eq!(headers["x-ratelimit-reset-tokens"], "6m0s");
        assert_eq!(format_reset(20), "20ms");
        assert_eq!(format_reset(1500), "1.5s");
        assert_eq!(format_reset(61_001), "1m2s");
    }

    #[test]
    fn zero_limits_are_rejected() {
        assert!(rpm(0).check().unwrap_err().starts_with("rpm"));
        rpm(1).check().unwrap();
    }
}
