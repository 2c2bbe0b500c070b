//! The audit log: one JSON line per request and per authentication event, written by a
//! background thread and chained by SHA-256 so that a deleted, inserted or edited line shows.
//!
//! Requests never wait for it. Records go through a bounded queue; when the queue is full a
//! record is dropped and counted ([`AuditLog::dropped`]), and the writer notes the count in the
//! log itself, so even a gap is on the chain.
//!
//! Each line is `{…,"prev":"<hex>","hash":"<hex>"}`: `prev` is the previous line's `hash`, and
//! `hash` is the SHA-256 of the line up to (not including) `,"hash":`, or with
//! `audit.key_file` its HMAC-SHA256 under that key: then someone who can edit the log but not
//! read the key cannot rebuild a chain that verifies. Every file the writer opens starts with
//! an `audit_open` record whose `prev` continues the chain of the file before it (after
//! logrotate, the previous file); in a keyed log it says `"mac":"hmac-sha256"`.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use http::Method;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Clock;
use crate::body::sse::StreamOutcome;
use crate::config::AuditConfig;
use crate::json;
use crate::translate::response::Usage;

/// `prev` of the first line ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const HASH_KEY: &[u8] = b",\"hash\":\"";
/// What an `audit_open` record of a keyed log carries.
const MAC_FIELD: &[u8] = b",\"mac\":\"hmac-sha256\"";
const PREV_KEY: &[u8] = b",\"prev\":\"";
/// How long `flush` and `reopen` wait for the writer.
const WRITER_DEADLINE: Duration = Duration::from_secs(5);
/// Longest path kept in a record; paths are client input.
const MAX_PATH_CHARS: usize = 512;
/// Shortest key `audit.key_file` may hold.
pub const MIN_KEY_BYTES: usize = 32;

/// How each line's `hash` is computed: SHA-256, or HMAC-SHA256 under the log's key.
#[derive(Clone)]
pub struct LineHasher(Option<hmac::Hmac<Sha256>>);

impl fmt::Debug for LineHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "LineHasher(hmac-sha256)"
        } else {
            "LineHasher(sha256)"
        })
    }
}

impl LineHasher {
    /// Plain SHA-256.
    pub fn unkeyed() -> Self {
        Self(None)
    }

    /// HMAC-SHA256 under `key`, which must hold at least [`MIN_KEY_BYTES`].
    pub fn keyed(key: &[u8]) -> Result<Self, String> {
        if key.len() < MIN_KEY_BYTES {
            return Err(format!("the key must hold at least {MIN_KEY_BYTES} bytes"));
        }
        hmac::Hmac::<Sha256>::new_from_slice(key)
            .map(|mac| Self(Some(mac)))
            .map_err(|e| e.to_string())
    }

    /// Reads a key file (a trailing newline is not part of the key).
    pub fn from_key_file(path: &Path) -> Result<Self, String> {
        let mut key = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            key.pop();
        }
        Self::keyed(&key).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// HMAC-SHA256 under the key in `path` when there is one (`audit.key_file`), else plain
    /// SHA-256.
    pub fn for_key_file(path: Option<&Path>) -> Result<Self, String> {
        path.map_or_else(|| Ok(Self::unkeyed()), Self::from_key_file)
    }

    fn is_keyed(&self) -> bool {
        self.0.is_some()
    }

    fn hash(&self, body: &[u8]) -> String {
        match &self.0 {
            None => hex::encode(Sha256::digest(body)),
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(body);
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }
}

enum Command {
    Line(Vec<u8>),
    Reopen(oneshot::Sender<Result<(), String>>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
}

/// Handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens the configured output and starts the writer thread; `None` when auditing is off.
    pub fn open(config: &AuditConfig, clock: Arc<dyn Clock>) -> Result<Option<Self>, String> {
        let Some(output) = &config.output else {
            return Ok(None);
        };
        let target = if output.as_os_str() == "stdout" {
            Target::Stdout
        } else {
            Target::File {
                path: output.clone(),
                file: None,
            }
        };
        let hasher = LineHasher::for_key_file(config.key_file.as_deref())
            .map_err(|e| format!("audit.key_file {e}"))?;
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let mut writer = Writer {
            target,
            hasher,
            prev: GENESIS.to_owned(),
            clock: Arc::clone(&clock),
            counters: Arc::clone(&counters),
            dropped_reported: 0,
        };
        writer
            .open("start")
            .map_err(|e| format!("audit.output {}: {e}", output.display()))?;
        std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(Some(Self { tx, counters, clock }))
    }

    /// Records dropped because the queue was full or the output failed.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    fn submit(&self, line: Vec<u8>) {
        if self.tx.try_send(Command::Line(line)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Starts the record of one request; it is written when the last handle to it is dropped
    /// (after the response, or after the stream, whichever ends later).
    pub fn request(
        &self,
        request_id: &str,
        method: &Method,
        path: &str,
        client: Option<SocketAddr>,
    ) -> RequestRecord {
        RequestRecord(Arc::new(RecordInner {
            log: self.clone(),
            time_ms: self.clock.now_ms(),
            started: Instant::now(),
            fields: Mutex::new(Fields {
                request_id: request_id.into(),
                client,
                method: method.clone(),
                path: truncate(path, MAX_PATH_CHARS).into(),
                ..Fields::default()
            }),
        }))
    }

    /// Writes one authentication event.
    pub fn auth_event(&self, event: &AuthEvent<'_>) {
        let mut out = Vec::with_capacity(192);
        out.extend_from_slice(b"{\"type\":\"auth\",\"time\":");
        write_time(&mut out, self.clock.now_ms());
        out.extend_from_slice(b",\"event\":");
        json::write_str(&mut out, event.event);
        out.extend_from_slice(b",\"request_id\":");
        json::write_str(&mut out, event.request_id);
        out.extend_from_slice(b",\"key\":");
        write_opt_str(&mut out, event.key);
        out.extend_from_slice(b",\"client\":");
        write_opt_addr(&mut out, event.client);
        self.submit(out);
    }

    /// Closes and reopens the output file (SIGHUP, after logrotate moved it), continuing the
    /// chain in the new file.
    pub async fn reopen(&self) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        self.control(Command::Reopen(ack)).await?;
        match tokio::time::timeout(WRITER_DEADLINE, done).await {
            Ok(Ok(result)) => result,
            _ => Err("the audit writer did not answer".to_owned()),
        }
    }

    /// Waits until everything queued so far is written to the output.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.control(Command::Flush(ack)).await.is_ok() {
            let _ = tokio::time::timeout(WRITER_DEADLINE, done).await;
        }
    }

    async fn control(&self, command: Command) -> Result<(), String> {
        // Control messages wait for room (with a deadline) rather than being dropped.
        match tokio::time::timeout(WRITER_DEADLINE, self.tx.send(command)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err("the audit writer is not running".to_owned()),
        }
    }
}

/// One authentication event.
#[derive(Debug, Clone, Copy)]
pub struct AuthEvent<'a> {
    /// What happened: `session_opened`, `totp_wrong`, `totp_replayed`, `totp_locked`,
    /// `locked_out`, `invalid_key`, `not_enrolled`, `bad_request`.
    pub event: &'a str,
    /// The request it happened in.
    pub request_id: &'a str,
    /// The key's name, when the key was recognised.
    pub key: Option<&'a str>,
    /// The client's address.
    pub client: Option<SocketAddr>,
}

#[derive(Debug, Default)]
struct Fields {
    request_id: Box<str>,
    key: Option<Box<str>>,
    client: Option<SocketAddr>,
    method: Method,
    path: Box<str>,
    model: Option<Box<str>>,
    upstream_model: Option<Box<str>>,
    status: u16,
    stream: bool,
    usage: Option<Usage>,
    ttfb_ms: Option<u64>,
    outcome: Option<&'static str>,
    error: Option<&'static str>,
}

#[derive(Debug)]
struct RecordInner {
    log: AuditLog,
    time_ms: u64,
    started: Instant,
    fields: Mutex<Fields>,
}

/// The audit record of one request, filled in as the request goes and written when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct RequestRecord(Arc<RecordInner>);

impl RequestRecord {
    fn with(&self, f: impl FnOnce(&mut Fields)) {
        f(&mut self.0.fields.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The authenticated key's name.
    pub fn set_key(&self, name: &str) {
        self.with(|f| f.key = Some(name.into()));
    }

    /// The model alias, Bedrock model id and whether the client asked for a stream.
    pub fn set_route(&self, alias: &str, upstream_model: &str, stream: bool) {
        self.with(|f| {
            f.model = Some(alias.into());
            f.upstream_model = Some(upstream_model.into());
            f.stream = stream;
        });
    }

    /// The response status and error kind, when the headers are ready.
    pub fn responded(&self, status: u16, error: Option<&'static str>) {
        let ttfb = self.0.started.elapsed();
        self.with(|f| {
            f.status = status;
            f.error = error;
            f.ttfb_ms = Some(millis(ttfb));
        });
    }

    /// How the reply ended and the tokens it used.
    pub fn set_outcome(&self, outcome: StreamOutcome, usage: Option<Usage>) {
        self.with(|f| {
            f.outcome = Some(outcome.as_str());
            f.usage = usage;
        });
    }
}

impl Drop for RecordInner {
    fn drop(&mut self) {
        let fields = self.fields.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"type\":\"request\",\"time\":");
        write_time(&mut out, self.time_ms);
        out.extend_from_slice(b",\"request_id\":");
        json::write_str(&mut out, &fields.request_id);
        out.extend_from_slice(b",\"key\":");
        write_opt_str(&mut out, fields.key.as_deref());
        out.extend_from_slice(b",\"client\":");
        write_opt_addr(&mut out, fields.client);
        out.extend_from_slice(b",\"method\":");
        json::write_str(&mut out, fields.method.as_str());
        out.extend_from_slice(b",\"path\":");
        json::write_str(&mut out, &fields.path);
        out.extend_from_slice(b",\"model\":");
        write_opt_str(&mut out, fields.model.as_deref());
        out.extend_from_slice(b",\"upstream_model\":");
        write_opt_str(&mut out, fields.upstream_model.as_deref());
        out.extend_from_slice(b",\"status\":");
        json::write_u64(&mut out, u64::from(fields.status));
        out.extend_from_slice(b",\"stream\":");
        out.extend_from_slice(if fields.stream { b"true" } else { b"false" });
        let usage = fields.usage.unwrap_or_default();
        out.extend_from_slice(b",\"prompt_tokens\":");
        json::write_u64(&mut out, usage.prompt_tokens());
        out.extend_from_slice(b",\"completion_tokens\":");
        json::write_u64(&mut out, usage.output_tokens);
        out.extend_from_slice(b",\"cached_tokens\":");
        json::write_u64(&mut out, usage.cache_read_tokens);
        out.extend_from_slice(b",\"ttfb_ms\":");
        match fields.ttfb_ms {
            Some(ms) => json::write_u64(&mut out, ms),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"duration_ms\":");
        json::write_u64(&mut out, millis(self.started.elapsed()));
        let outcome = fields
            .outcome
            .unwrap_or(if fields.status < 400 { "ok" } else { "error" });
        out.extend_from_slice(b",\"outcome\":");
        json::write_str(&mut out, outcome);
        out.extend_from_slice(b",\"error\":");
        write_opt_str(&mut out, fields.error);
        self.log.submit(out);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json::write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_opt_addr(out: &mut Vec<u8>, addr: Option<SocketAddr>) {
    match addr {
        Some(addr) => json::write_str(out, &addr.to_string()),
        None => out.extend_from_slice(b"null"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for Unix milliseconds.
pub fn rfc3339(unix_ms: u64) -> String {
    let mut out = Vec::with_capacity(26);
    write_time(&mut out, unix_ms);
    String::from_utf8_lossy(out.get(1..out.len().saturating_sub(1)).unwrap_or_default()).into_owned()
}

/// Writes `"YYYY-MM-DDTHH:MM:SS.mmmZ"` for Unix milliseconds.
fn write_time(out: &mut Vec<u8>, unix_ms: u64) {
    let (secs, ms) = (unix_ms / 1000, unix_ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let text = format!(
        "\"{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z\"",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    out.extend_from_slice(text.as_bytes());
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

// === impl Writer ===

enum Target {
    Stdout,
    File {
        path: PathBuf,
        file: Option<BufWriter<File>>,
    },
}

struct Writer {
    target: Target,
    hasher: LineHasher,
    /// Hash of the last line written, hex.
    prev: String,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    dropped_reported: u64,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(command) = rx.blocking_recv() {
            self.handle(command);
            // Write what is queued in one go, then flush once.
            while let Ok(command) = rx.try_recv() {
                self.handle(command);
            }
            self.report_drops();
            self.flush();
        }
        self.report_drops();
        self.flush();
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Line(line) => self.append(line),
            Command::Flush(ack) => {
                self.report_drops();
                self.flush();
                let _ = ack.send(());
            }
            Command::Reopen(ack) => {
                self.report_drops();
                self.flush();
                let result = self.open("reopen").map_err(|e| e.to_string());
                let _ = ack.send(result);
            }
        }
    }

    /// (Re)opens the output and writes the `audit_open` record. For a file that already has
    /// lines, the chain continues from its last line.
    fn open(&mut self, reason: &str) -> io::Result<()> {
        if let Target::File { path, file } = &mut self.target {
            *file = None;
            let (last, needs_newline) = last_line_hash(path)?;
            if let Some(hash) = last {
                self.prev = hash;
            }
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut opened = BufWriter::with_capacity(64 * 1024, options.open(path)?);
            if needs_newline {
                // A line cut short by a crash stays visible to `audit verify`, on its own.
                opened.write_all(b"\n")?;
            }
            *file = Some(opened);
        }
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"{\"type\":\"audit_open\",\"time\":");
        write_time(&mut out, self.clock.now_ms());
        out.extend_from_slice(b",\"reason\":");
        json::write_str(&mut out, reason);
        out.extend_from_slice(b",\"pid\":");
        json::write_u64(&mut out, u64::from(std::process::id()));
        if self.hasher.is_keyed() {
            out.extend_from_slice(MAC_FIELD);
        }
        self.append(out);
        self.flush();
        Ok(())
    }

    fn report_drops(&mut self) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped == self.dropped_reported {
            return;
        }
        let since = dropped - self.dropped_reported;
        self.dropped_reported = dropped;
        tracing::warn!(dropped = since, total = dropped, "audit records dropped");
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"type\":\"audit_dropped\",\"time\":");
        write_time(&mut out, self.clock.now_ms());
        out.extend_from_slice(b",\"dropped\":");
        json::write_u64(&mut out, since);
        out.extend_from_slice(b",\"total\":");
        json::write_u64(&mut out, dropped);
        self.append(out);
    }

    /// Completes `body` (an unterminated JSON object) with `prev` and `hash` and writes it.
    fn append(&mut self, mut body: Vec<u8>) {
        body.extend_from_slice(PREV_KEY);
        body.extend_from_slice(self.prev.as_bytes());
        body.push(b'"');
        let hash = self.hasher.hash(&body);
        body.extend_from_slice(HASH_KEY);
        body.extend_from_slice(hash.as_bytes());
        body.extend_from_slice(b"\"}\n");
        let written = match &mut self.target {
            Target::Stdout => io::stdout().lock().write_all(&body),
            Target::File { file: Some(file), .. } => file.write_all(&body),
            Target::File { file: None, .. } => Err(io::Error::other("audit file is not open")),
        };
        match written {
            Ok(()) => self.prev = hash,
            Err(e) => {
                // The line is lost and the chain goes on from the last line written.
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped_reported += 1;
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
    }

    fn flush(&mut self) {
        let result = match &mut self.target {
            Target::Stdout => io::stdout().lock().flush(),
            Target::File { file: Some(file), .. } => file.flush(),
            Target::File { file: None, .. } => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot flush the audit log");
        }
    }
}

/// The hash of the last complete line of an existing audit file, and whether the file ends
/// without a newline.
fn last_line_hash(path: &Path) -> io::Result<(Option<String>, bool)> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, false)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((None, false));
    }
    // Lines are far shorter than this; only the tail is read.
    let tail = len.min(64 * 1024);
    file.seek(SeekFrom::Start(len - tail))?;
    let mut buf = Vec::with_capacity(usize::try_from(tail).unwrap_or(0));
    file.read_to_end(&mut buf)?;
    let needs_newline = buf.last() != Some(&b'\n');
    let hash = buf
        .split(|b| *b == b'\n')
        .rev()
        .find(|line| !line.is_empty())
        .and_then(split_line)
        .map(|(_, hash)| String::from_utf8_lossy(hash).into_owned());
    Ok((hash, needs_newline))
}

fn is_hash(s: &[u8]) -> bool {
    s.len() == 64 && s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Splits a line into the hashed part and its hash.
fn split_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_suffix(b"\"}")?;
    let at = rest.len().checked_sub(64 + HASH_KEY.len())?;
    let (body, tail) = rest.split_at(at);
    let hash = tail.strip_prefix(HASH_KEY)?;
    is_hash(hash).then_some((body, hash))
}

/// The `prev` at the end of a hashed part.
fn prev_of(body: &[u8]) -> Option<&[u8]> {
    let rest = body.strip_suffix(b"\"")?;
    let at = rest.len().checked_sub(64 + PREV_KEY.len())?;
    let prev = rest[at..].strip_prefix(PREV_KEY)?;
    is_hash(prev).then_some(prev)
}

/// A file whose chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Lines checked.
    pub lines: usize,
    /// `prev` of the first line: [`GENESIS`], or the last hash of the file before it.
    pub starts_after: String,
    /// Hash of the last line; keep it elsewhere to detect lines cut from the end later.
    pub head: String,
}

/// Where and why a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct VerifyError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Checks every line's hash (with `hasher`: every line of a keyed log is checked with the key,
/// so a file rechained with plain SHA-256 does not pass) and link. `starts_after`, when given,
/// is the `head` of the previous file (or [`GENESIS`]), which the first line must continue.
pub fn verify(
    reader: impl BufRead,
    starts_after: Option<&str>,
    hasher: &LineHasher,
) -> Result<Verified, VerifyError> {
    let mut prev: Option<String> = None;
    let mut first_prev = String::new();
    let mut lines = 0;
    for (i, line) in reader.split(b'\n').enumerate() {
        let n = i + 1;
        let fail = |reason: &str| VerifyError {
            line: n,
            reason: reason.to_owned(),
        };
        let line = line.map_err(|e| fail(&format!("cannot read: {e}")))?;
        let (body, hash) = split_line(&line)
            .ok_or_else(|| fail("not an audit line (no trailing hash): edited, or cut short by a crash"))?;
        if hasher.hash(body).as_bytes() != hash {
            let keyed_open = body.starts_with(b"{\"type\":\"audit_open\"")
                && body.windows(MAC_FIELD.len()).any(|w| w == MAC_FIELD);
            return Err(fail(if keyed_open && !hasher.is_keyed() {
                "the log is keyed (audit.key_file): give its key to verify it"
            } else if hasher.is_keyed() {
                "content does not match its HMAC: the line was edited, or the key is not this log's"
            } else {
                "content does not match its hash: the line was edited"
            }));
        }
        let line_prev = prev_of(body).ok_or_else(|| fail("no `prev` hash: the line was edited"))?;
        let line_prev = String::from_utf8_lossy(line_prev).into_owned();
        match &prev {
            None => {
                if !body.starts_with(b"{\"type\":\"audit_open\"") {
                    return Err(fail(
                        "the file does not start with an audit_open record: lines were removed from its start",
                    ));
                }
                if let Some(expected) = starts_after
                    && expected != line_prev
                {
                    return Err(fail("the file does not continue the given chain head"));
                }
                first_prev.clone_from(&line_prev);
            }
            Some(expected) if *expected != line_prev => {
                return Err(fail(
                    "chain broken: the line before it was deleted, inserted or reordered",
                ));
            }
            Some(_) => {}
        }
        prev = Some(String::from_utf8_lossy(hash).into_owned());
        lines = n;
    }
    let head = prev.ok_or(VerifyError {
        line: 0,
        reason: "the file is empty".to_owned(),
    })?;
    Ok(Verified {
        lines,
        starts_after: first_prev,
        head,
    })
}

/// [`verify`] on a file.
pub fn verify_file(
    path: &Path,
    starts_after: Option<&str>,
    hasher: &LineHasher,
) -> Result<Verified, VerifyError> {
    let file = File::open(path).map_err(|e| VerifyError {
        line: 0,
        reason: format!("cannot open: {e}"),
    })?;
    verify(io::BufReader::new(file), starts_after, hasher)
}

#[cfg(test)]
mod tests;
