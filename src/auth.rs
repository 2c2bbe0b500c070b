//! Who may call the gateway, with which models, within which limits.
//!
//! Clients present an API key (`Authorization: Bearer KEY`, as the OpenAI SDKs send it, or
//! `x-api-key`). Keys are stored as SHA-256 hashes and compared in constant time. A key marked
//! `require_totp` is not accepted directly: it is exchanged, with a current TOTP code, for a
//! session token at `POST /v1/auth/session` ([`exchange`]), and the session token is then the
//! bearer. Each key has an optional model allow-list and limits ([`limits`]).
//!
//! [`Security`] bundles what the security layer adds to the service: this, the audit log and
//! server TLS, and reloads them on SIGHUP.

pub mod admin;
pub mod clock;
pub mod exchange;
pub mod keys;
pub mod limits;
pub mod sessions;
pub mod totp;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use http::{HeaderMap, Request, header};

pub use clock::{Clock, ManualClock, SystemClock};
use keys::{KeyEntry, KeyTable, KeysFile};
use limits::{KeyState, RateSnapshot, StreamPermit};
use sessions::{SESSION_PREFIX, Sessions};

use crate::audit::{AuditLog, RequestRecord};
use crate::body::sse::StreamOutcome;
use crate::config::{AuthConfig, Config};
use crate::error::{AuthFailure, Error, RateLimit};
use crate::routing::{ModelTable, Route};
use crate::server::tls::Tls;
use crate::translate::response::Usage;

/// A secret string: an API key or a session token. Neither `Debug` nor any log shows it.
pub struct Token(Box<str>);

impl Token {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        Self(secret.into_boxed_str())
    }

    /// The secret itself, for printing it once or sending it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(** redacted **)")
    }
}

/// Identifies a version of the keys file, to notice replacement or edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

/// The result of a successful key + TOTP exchange.
#[derive(Debug)]
pub struct IssuedSession {
    /// The session token.
    pub token: Token,
    /// Expiry, Unix milliseconds.
    pub expires_ms: u64,
}

/// Why a session was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The key has no TOTP seed.
    NotEnrolled,
    /// Too many wrong codes recently.
    LockedOut {
        /// Until the lockout ends.
        retry_after: Duration,
    },
    /// A code of a step already used (or older).
    Replayed {
        /// This failure started a lockout.
        locked: bool,
    },
    /// A wrong code.
    Wrong {
        /// This failure started a lockout.
        locked: bool,
    },
    /// The session token could not be generated.
    Internal,
}

/// Client authentication and per-key state.
pub struct Auth {
    required: bool,
    keys_file: Option<PathBuf>,
    keys: RwLock<Arc<KeyTable>>,
    stamp: Mutex<Option<FileStamp>>,
    states: DashMap<Box<str>, Arc<KeyState>>,
    sessions: Sessions,
    clock: Arc<dyn Clock>,
    session_ttl_ms: u64,
    totp_max_failures: u32,
    totp_lockout_ms: u64,
    /// Issuer shown in authenticator apps.
    pub totp_issuer: String,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("required", &self.required)
            .field("keys_file", &self.keys_file)
            .field("keys", &self.table().len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// No authentication: every client is let in (loopback sidecar).
    pub fn disabled(clock: Arc<dyn Clock>) -> Self {
        Self::build(&AuthConfig::default(), false, clock)
    }

    fn build(config: &AuthConfig, required: bool, clock: Arc<dyn Clock>) -> Self {
        Self {
            required,
            keys_file: config.keys_file.clone(),
            keys: RwLock::new(Arc::new(KeyTable::default())),
            stamp: Mutex::new(None),
            states: DashMap::new(),
            sessions: Sessions::default(),
            clock,
            session_ttl_ms: config.session_ttl_secs.saturating_mul(1000),
            totp_max_failures: config.totp_max_failures.max(1),
            totp_lockout_ms: config.totp_lockout_secs.saturating_mul(1000),
            totp_issuer: config.totp_issuer.clone(),
        }
    }

    /// From the configuration; reads the keys file when authentication is on.
    pub fn from_config(config: &AuthConfig, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let required = config.required();
        let auth = Self::build(config, required, clock);
        if required {
            auth.reload_if_changed()?;
        }
        Ok(auth)
    }

    /// Whether clients must authenticate.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn table(&self) -> Arc<KeyTable> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the keys file if it changed since the last read. An invalid file is reported
    /// and the keys in force stay.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let Some(path) = &self.keys_file else {
            return Ok(false);
        };
        let stamp = FileStamp::of(path).map_err(|e| format!("auth.keys_file {}: {e}", path.display()))?;
        let mut last = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        if *last == Some(stamp) {
            return Ok(false);
        }
        // Remember the version even when it is invalid, so it is reported once, not per poll.
        *last = Some(stamp);
        let file = KeysFile::load(path).map_err(|e| format!("auth.keys_file {e}"))?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(KeyTable::new(&file));
        Ok(true)
    }

    fn state(&self, name: &str) -> Arc<KeyState> {
        if let Some(state) = self.states.get(name) {
            return Arc::clone(&state);
        }
        let now = self.clock.now_ms();
        Arc::clone(
            &self
                .states
                .entry(name.into())
                .or_insert_with(|| Arc::new(KeyState::new(now))),
        )
    }

    fn principal(&self, key: &Arc<KeyEntry>) -> Principal {
        Principal {
            key: Arc::clone(key),
            state: self.state(&key.name),
            clock: Arc::clone(&self.clock),
        }
    }

    /// Authenticates an API request: a key that does not require TOTP, or a live session.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        let token = presented(headers)?;
        let table = self.table();
        if token.starts_with(SESSION_PREFIX) {
            let name = self
                .sessions
                .lookup(token, self.clock.now_ms())
                .ok_or(AuthFailure::InvalidKey)?;
            // Revoking (or deleting) a key ends its sessions.
            let key = table
                .get(&name)
                .filter(|k| !k.revoked)
                .ok_or(AuthFailure::InvalidKey)?;
            return Ok(self.principal(key));
        }
        let key = table
            .find(token)
            .filter(|k| !k.revoked)
            .ok_or(AuthFailure::InvalidKey)?;
        if key.require_totp {
            return Err(AuthFailure::SessionRequired);
        }
        Ok(self.principal(key))
    }

    /// Authenticates the key itself (never a session), for the session exchange.
    pub fn authenticate_key(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        let token = presented(headers)?;
        let table = self.table();
        let key = table
            .find(token)
            .filter(|k| !k.revoked)
            .ok_or(AuthFailure::InvalidKey)?;
        Ok(self.principal(key))
    }

    /// Checks a TOTP code for `principal`'s key and opens a session. A code is accepted once:
    /// a code of the last accepted step, or an earlier one, is a replay. Wrong codes and
    /// replays count toward the lockout.
    pub fn open_session(&self, principal: &Principal, code: &str) -> Result<IssuedSession, Refusal> {
        let Some(secret) = &principal.key.totp else {
            return Err(Refusal::NotEnrolled);
        };
        let now = self.clock.now_ms();
        let state = &principal.state;
        state.touch(now);
        let mut totp = state.totp.lock().unwrap_or_else(PoisonError::into_inner);
        if now < totp.locked_until_ms {
            return Err(Refusal::LockedOut {
                retry_after: Duration::from_millis(totp.locked_until_ms - now),
            });
        }
        match secret.verify(code, now / 1000) {
            Some(step) if totp.last_step.is_none_or(|last| step > last) => {
                totp.last_step = Some(step);
                totp.failures = 0;
                drop(totp);
                let expires_ms = now.saturating_add(self.session_ttl_ms);
                let token = self
                    .sessions
                    .issue(&principal.key.name, expires_ms)
                    .map_err(|_| Refusal::Internal)?;
                Ok(IssuedSession { token, expires_ms })
            }
            verdict => {
                totp.failures += 1;
                let locked = totp.failures >= self.totp_max_failures;
                if locked {
                    totp.failures = 0;
                    totp.locked_until_ms = now.saturating_add(self.totp_lockout_ms);
                    state.note_lockout(totp.locked_until_ms);
                }
                Err(if verdict.is_some() {
                    Refusal::Replayed { locked }
                } else {
                    Refusal::Wrong { locked }
                })
            }
        }
    }

    /// The error a client sees for a refusal.
    pub fn refusal_error(&self, refusal: Refusal) -> Error {
        match refusal {
            Refusal::NotEnrolled => Error::BadRequest(crate::error::InvalidRequest {
                message: "this API key has no TOTP enrolment; use it directly as the bearer token".into(),
                param: None,
                code: Some("totp_not_enrolled"),
            }),
            Refusal::LockedOut { retry_after } => Error::RateLimited {
                limit: RateLimit::TotpAttempts,
                max: u64::from(self.totp_max_failures),
                retry_after,
            },
            Refusal::Replayed { .. } | Refusal::Wrong { .. } => Error::Unauthorized(AuthFailure::InvalidCode),
            Refusal::Internal => Error::Internal("cannot generate a session token"),
        }
    }

    /// Drops expired sessions and per-key state nobody has used for a while.
    pub fn sweep(&self) {
        let now = self.clock.now_ms();
        self.sessions.sweep(now);
        // Held elsewhere (a request in flight) means in use, whatever the numbers say.
        self.states
            .retain(|_, state| Arc::strong_count(state) > 1 || !state.is_idle(now));
    }

    /// Per-key states held (bounded by the keys in use; idle ones are swept).
    pub fn tracked_keys(&self) -> usize {
        self.states.len()
    }
}

/// The credential a request presents, if any.
fn presented(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let token = if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthFailure::InvalidKey)?;
        let (scheme, rest) = value.split_once(' ').ok_or(AuthFailure::InvalidKey)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthFailure::InvalidKey);
        }
        rest.trim()
    } else if let Some(value) = headers.get("x-api-key") {
        value.to_str().map_err(|_| AuthFailure::InvalidKey)?.trim()
    } else {
        return Err(AuthFailure::MissingKey);
    };
    if token.is_empty() {
        Err(AuthFailure::MissingKey)
    } else {
        Ok(token)
    }
}

/// An authenticated caller: its key and live state.
#[derive(Clone)]
pub struct Principal {
    key: Arc<KeyEntry>,
    state: Arc<KeyState>,
    clock: Arc<dyn Clock>,
}

impl Principal {
    /// Takes one of the key's concurrent-stream slots, given back when the permit drops.
    pub fn open_stream(&self) -> Result<limits::StreamPermit, Error> {
        self.state.open_stream(self.key.limits.max_streams)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("key", &self.key.name)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// The key's name.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// Admits one metered request against the key's request and token limits.
    pub fn admit(&self) -> (Result<(), Error>, RateSnapshot) {
        self.state.admit(&self.key.limits, self.clock.now_ms())
    }
}

/// What a chat request was granted: its caller, its stream slot and its audit record.
/// Settled when the reply ends (or dropped when it fails), which charges the tokens and
/// completes the audit record.
#[derive(Debug, Default)]
pub struct Grant {
    principal: Option<Principal>,
    record: Option<RequestRecord>,
    permit: Option<StreamPermit>,
}

impl Grant {
    /// Picks up what [`Security::admit`] attached to the request.
    pub fn from_request<B>(request: &Request<B>) -> Self {
        Self {
            principal: request.extensions().get::<Principal>().cloned(),
            record: request.extensions().get::<RequestRecord>().cloned(),
            permit: None,
        }
    }

    /// Checks the routed model against the key's allow-list and, for a stream, takes one of
    /// the key's stream slots.
    pub fn authorize(&mut self, route: &Route, stream: bool) -> Result<(), Error> {
        if let Some(record) = &self.record {
            record.set_route(&route.alias, &route.model_id, stream);
        }
        let Some(principal) = &self.principal else {
            return Ok(());
        };
        if !principal.key.may_use(&route.alias) {
            return Err(Error::ModelNotAllowed(route.alias.clone()));
        }
        if stream {
            self.permit = Some(principal.state.open_stream(principal.key.limits.max_streams)?);
        }
        Ok(())
    }

    /// The name of the key the request came with, if authentication is on.
    pub fn key_name(&self) -> Option<&str> {
        self.principal.as_ref().map(Principal::name)
    }

    /// Charges the tokens used and completes the audit record; gives back the stream slot.
    pub fn settle(self, outcome: StreamOutcome, usage: Option<Usage>) {
        if let (Some(principal), Some(usage)) = (&self.principal, usage) {
            principal.state.charge_tokens(
                &principal.key.limits,
                usage.total_tokens(),
                principal.clock.now_ms(),
            );
        }
        if let Some(record) = &self.record {
            record.set_outcome(outcome, usage);
        }
    }
}

/// The security layer: client authentication, the audit log, server TLS.
#[derive(Debug)]
pub struct Security {
    /// API keys, sessions, limits.
    pub auth: Auth,
    /// The audit log, when configured.
    pub audit: Option<AuditLog>,
    /// Server TLS, when configured.
    pub tls: Option<Tls>,
}

impl Security {
    /// Nothing: no keys, no audit, plain TCP.
    pub fn disabled() -> Self {
        Self {
            auth: Auth::disabled(Arc::new(SystemClock)),
            audit: None,
            tls: None,
        }
    }

    /// Loads keys, certificates and the audit output; reports every problem.
    pub fn from_config(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let auth = Auth::from_config(&config.auth, Arc::clone(&clock)).map_err(|e| problems.push(e));
        let tls = Tls::load(&config.tls).map_err(|e| problems.push(e));
        let audit = if problems.is_empty() {
            AuditLog::open(&config.audit, clock).map_err(|e| problems.push(e))
        } else {
            // Do not start a writer (and write an `audit_open` line) for a gateway that will
            // not start.
            Ok(None)
        };
        match (auth, tls, audit) {
            (Ok(auth), Ok(tls), Ok(audit)) if problems.is_empty() => Ok(Self { auth, audit, tls }),
            _ => Err(problems),
        }
    }

    /// Authenticates a request that needs it and, when `metered`, admits it against the
    /// key's request and token limits. Attaches the [`Principal`] for [`Grant::from_request`].
    /// Returns the rate-limit snapshot for the response headers, also on refusal.
    pub fn admit<B>(
        &self,
        request: &mut Request<B>,
        metered: bool,
    ) -> (Result<(), Error>, Option<RateSnapshot>) {
        if !self.auth.required() {
            return (Ok(()), None);
        }
        let principal = match self.auth.authenticate(request.headers()) {
            Ok(principal) => principal,
            Err(failure) => return (Err(failure.into()), None),
        };
        if let Some(record) = request.extensions().get::<RequestRecord>() {
            record.set_key(principal.name());
        }
        let snapshot = metered.then(|| principal.admit());
        // Attached even when refused, so the refusal is counted under the key's name.
        request.extensions_mut().insert(principal);
        match snapshot {
            Some((admitted, snapshot)) => (admitted, Some(snapshot)),
            None => (Ok(()), None),
        }
    }

    /// For a native Bedrock path: a key with an allow-list may only name a model id that one of
    /// its aliases routes to. Call after [`Security::admit`].
    pub fn authorize_native<B>(
        &self,
        request: &Request<B>,
        model_id: &str,
        models: &ModelTable,
    ) -> Result<(), Error> {
        let Some(principal) = request.extensions().get::<Principal>() else {
            return Ok(());
        };
        let id = percent_encoding::percent_decode_str(model_id).decode_utf8_lossy();
        let allowed = match &principal.key.models {
            None => true,
            // The path may name an allowed alias itself, or the Bedrock id one of them routes to.
            Some(aliases) => aliases
                .iter()
                .any(|alias| **alias == *id || models.get(alias).is_some_and(|route| *route.model_id == *id)),
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::ModelNotAllowed(id.as_ref().into()))
        }
    }

    /// Picks up a changed keys file and sweeps idle state; run every `auth.reload_interval_ms`.
    pub fn poll(&self) {
        match self.auth.reload_if_changed() {
            Ok(true) => tracing::info!("keys file reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "keys file not reloaded; the previous keys stay in force"),
        }
        self.auth.sweep();
    }

    /// SIGHUP: re-reads the keys file, reloads the TLS certificate and reopens the audit
    /// output. A failure keeps what was in force and is logged.
    pub async fn reload(&self) {
        self.poll();
        if let Some(tls) = &self.tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in use")
                }
            }
        }
        if let Some(audit) = &self.audit
            && let Err(e) = audit.reopen().await
        {
            tracing::error!(error = %e, "audit log not reopened");
        }
    }
}

#[cfg(test)]
mod tests;
