//! Authenticating requests to Bedrock: SigV4 (service `bedrock`) or a Bedrock API key.
//!
//! Credentials come from a shared provider (the aws-config default chain in production) and
//! are cached here until shortly before they expire, so a request costs one lock-free load
//! (`ArcSwapOption`) and a clone of an `Arc` unless a refresh is due. Only `content-type`
//! (plus the `host`, `x-amz-date` and `x-amz-security-token` the signer adds) is signed:
//! client headers that proxies may rewrite never enter the signature (reference:
//! sigv4-bedrock §4, §8).
//!
//! The gateway's own requests are signed by the `direct` module below, which keeps the
//! derived signing key per day, region and secret on each thread; anything it does not take
//! goes through `aws_sigv4::http_request::sign`, which derives the key every time.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::error::display::DisplayErrorContext;
use http::{HeaderName, HeaderValue, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The SigV4 signing name of the Bedrock runtime (not `bedrock-runtime`).
pub const SIGNING_NAME: &str = "bedrock";

/// Cached credentials are refreshed this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(10);
/// Credentials without an expiry are re-read from the provider this often (the SDK default).
const NO_EXPIRY_TTL: Duration = Duration::from_secs(15 * 60);
/// Deadline for one credential resolution (IMDS, STS, container endpoint).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything outside `A-Z a-z 0-9 - . _ ~` is percent-encoded (the SDKs' label encoding).
const MODEL_ID_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// Why a request could not be authenticated. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The credential provider returned no credentials.
    #[error("no AWS credentials: {0}")]
    NoCredentials(Box<str>),
    /// The credential provider did not answer in time.
    #[error("timed out resolving AWS credentials")]
    CredentialsTimeout,
    /// The request cannot be signed (no host in its URI, a header value that is not text).
    #[error("invalid request to sign: {0}")]
    InvalidRequest(&'static str),
    /// aws-sigv4 refused to sign.
    #[error("SigV4 signing failed: {0}")]
    Signing(Box<str>),
    /// The configured Bedrock API key cannot be sent as a header value.
    #[error("the Bedrock API key is empty or contains characters not allowed in an HTTP header")]
    InvalidBearerToken,
}

/// How the gateway authenticates to Bedrock.
#[derive(Debug, Clone)]
pub enum UpstreamAuth {
    /// SigV4 with AWS credentials.
    SigV4(SigV4Signer),
    /// A Bedrock API key sent as `Authorization: Bearer`.
    Bearer(BearerToken),
}

// === impl UpstreamAuth ===

impl UpstreamAuth {
    /// Adds auth headers to `req`, whose URI is the full `https://host/path` URL with the model
    /// id already percent-encoded once and which already carries `content-type`.
    ///
    /// SigV4 signs only `content-type` (plus `host`, `x-amz-date` and `x-amz-security-token`)
    /// over the exact `body` bytes at the current time. Bearer sets `authorization` only.
    pub async fn authorize<B>(
        &self,
        req: &mut http::Request<B>,
        body: &[u8],
        region: &str,
    ) -> Result<(), SignError> {
        match self {
            Self::SigV4(signer) => {
                let credentials = signer.credentials().await?;
                sign_request(req, body, &credentials, region, SystemTime::now())
            }
            Self::Bearer(token) => {
                let value = token.header.clone().ok_or(SignError::InvalidBearerToken)?;
                req.headers_mut().insert(header::AUTHORIZATION, value);
                Ok(())
            }
        }
    }

    /// Succeeds when credentials can currently be resolved (for `/ready`).
    pub async fn check(&self) -> Result<(), SignError> {
        match self {
            Self::SigV4(signer) => signer.credentials().await.map(drop),
            Self::Bearer(token) => token
                .header
                .as_ref()
                .map(drop)
                .ok_or(SignError::InvalidBearerToken),
        }
    }
}

/// Signs with credentials from a shared provider, cached until shortly before they expire.
#[derive(Clone)]
pub struct SigV4Signer {
    inner: Arc<SignerInner>,
}

struct SignerInner {
    provider: SharedCredentialsProvider,
    /// The last credentials and when to stop using them, read by every request without a
    /// lock (one reference-count increment).
    cached: ArcSwapOption<Cached>,
    /// Lets one task refresh while the others wait for its result instead of all calling the
    /// provider at once.
    refresh: tokio::sync::Mutex<()>,
}

struct Cached {
    credentials: Arc<Credentials>,
    /// Refresh at or after this time.
    refresh_at: SystemTime,
    /// Unusable at or after this time (`None`: no expiry).
    expires_at: Option<SystemTime>,
}

// === impl SigV4Signer ===

impl SigV4Signer {
    /// Signs with credentials from `provider`, cached here between refreshes.
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            inner: Arc::new(SignerInner {
                provider,
                cached: ArcSwapOption::empty(),
                refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Signs with fixed credentials (tests, the demo against the mock).
    pub fn from_static(credentials: Credentials) -> Self {
        Self::new(SharedCredentialsProvider::new(credentials))
    }

    /// The aws-config default chain (environment, profile, web identity/IRSA, ECS container,
    /// IMDS), cached here and refreshed before expiry.
    #[cfg(feature = "default-credentials")]
    ///
    /// The region is given so the chain never looks it up itself (which would ask the instance
    /// metadata service); it is only used by the providers that call STS.
    pub async fn from_default_chain(region: &str) -> Self {
        let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build()
            .await;
        Self::new(SharedCredentialsProvider::new(chain))
    }

    /// The current credentials, from the cache or freshly resolved.
    pub async fn credentials(&self) -> Result<Arc<Credentials>, SignError> {
        let now = SystemTime::now();
        if let Some(fresh) = self.cached_if(|c| now < c.refresh_at) {
            return Ok(fresh);
        }
        // Held across the provider call on purpose: it is the single-flight gate, and only
        // refreshing tasks ever wait on it.
        let _gate = self.inner.refresh.lock().await;
        let now = SystemTime::now();
        if let Some(fresh) = self.cached_if(|c| now < c.refresh_at) {
            return Ok(fresh);
        }
        match self.resolve().await {
            Ok(credentials) => {
                let expires_at = credentials.expiry();
                let refresh_at = match expires_at {
                    Some(expiry) => expiry.checked_sub(REFRESH_BEFORE_EXPIRY).unwrap_or(expiry),
                    None => now + NO_EXPIRY_TTL,
                };
                let credentials = Arc::new(credentials);
                self.inner.cached.store(Some(Arc::new(Cached {
                    credentials: Arc::clone(&credentials),
                    refresh_at,
                    expires_at,
                })));
                Ok(credentials)
            }
            // A failed refresh keeps using credentials that have not expired yet.
            Err(e) => self
                .cached_if(|c| c.expires_at.is_none_or(|expiry| now < expiry))
                .ok_or(e),
        }
    }

    fn cached_if(&self, usable: impl Fn(&Cached) -> bool) -> Option<Arc<Credentials>> {
        let cached = self.inner.cached.load();
        cached
            .as_ref()
            .filter(|c| usable(c))
            .map(|c| Arc::clone(&c.credentials))
    }

    async fn resolve(&self) -> Result<Credentials, SignError> {
        match tokio::time::timeout(RESOLVE_TIMEOUT, self.inner.provider.provide_credentials()).await {
            Ok(Ok(credentials)) => Ok(credentials),
            Ok(Err(e)) => Err(SignError::NoCredentials(
                DisplayErrorContext(&e).to_string().into(),
            )),
            Err(_) => Err(SignError::CredentialsTimeout),
        }
    }
}

impl fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Signer")
            .field("credentials", &"** redacted **")
            .finish()
    }
}

/// A Bedrock API key. `Debug` never shows it.
#[derive(Clone)]
pub struct BearerToken {
    /// `Bearer <token>`, marked sensitive; `None` if the token is not a valid header value.
    header: Option<HeaderValue>,
}

// === impl BearerToken ===

impl BearerToken {
    /// Wraps a Bedrock API key. An empty key, or one that is not a valid header value, is
    /// reported by [`UpstreamAuth::check`] and [`UpstreamAuth::authorize`].
    pub fn new(token: String) -> Self {
        let header = if token.trim().is_empty() {
            None
        } else {
            HeaderValue::try_from(format!("Bearer {token}"))
                .ok()
                .map(|mut value| {
                    value.set_sensitive(true);
                    value
                })
        };
        Self { header }
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

/// Signs `req` with SigV4 for service `bedrock` in `region` at `time`: sets `x-amz-date`,
/// `authorization` and, for temporary credentials, `x-amz-security-token`.
///
/// The URI must be absolute (`https://host/path`, path encoded once as sent). The signed
/// headers are `content-type` (if present), `host` (the request's `host` header if set,
/// otherwise the URI authority without a default port), `x-amz-date` and
/// `x-amz-security-token`; every other header on the request is left out of the signature.
///
/// The requests the gateway sends (no query, a path of unreserved characters and `%XX`, plain
/// header values) are signed here directly, with the signing key derived once per day, region
/// and secret on each thread; anything else goes through aws-sigv4. Both give the same
/// signature (tests below compare them).
pub fn sign_request<B>(
    req: &mut http::Request<B>,
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    if req.uri().host().is_none() {
        return Err(SignError::InvalidRequest("the request URI has no host"));
    }
    // Both paths read only `host` and `content-type` from the request and replace the headers
    // they set, so signing again replaces an earlier signature. They set the token only for
    // credentials that have one: a token left from an earlier signing goes here.
    if credentials.session_token().is_none() {
        req.headers_mut().remove(X_AMZ_SECURITY_TOKEN);
    }
    match direct::sign(req, body, credentials, region, time) {
        Some(signed) => {
            signed.apply(req.headers_mut());
            Ok(())
        }
        None => sign_with_aws_sigv4(req, body, credentials, region, time),
    }
}

/// The general path: aws-sigv4's canonicalisation (path normalisation, query strings, header
/// value trimming) for requests [`direct::sign`] does not take.
fn sign_with_aws_sigv4<B>(
    req: &mut http::Request<B>,
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    let mut signed: Vec<(&str, &str)> = Vec::with_capacity(2);
    if let Some(value) = req.headers().get(header::CONTENT_TYPE) {
        let value = value
            .to_str()
            .map_err(|_| SignError::InvalidRequest("content-type is not visible ASCII"))?;
        signed.push(("content-type", value));
    }
    if let Some(value) = req.headers().get(header::HOST) {
        let value = value
            .to_str()
            .map_err(|_| SignError::InvalidRequest("host is not visible ASCII"))?;
        signed.push(("host", value));
    }
    let url = req.uri().to_string();
    let method = req.method().as_str();
    let identity = Identity::from(credentials.clone());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError::Signing(e.to_string().into()))?
        .into();
    let signable = SignableRequest::new(
        method,
        Cow::Owned(url),
        signed.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SignError::Signing(e.to_string().into()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignError::Signing(e.to_string().into()))?
        .into_parts();
    let (new_headers, _query) = instructions.into_parts();
    for h in new_headers {
        let mut value = HeaderValue::from_str(h.value())
            .map_err(|_| SignError::InvalidRequest("a signing header value is not a valid header"))?;
        value.set_sensitive(h.sensitive());
        req.headers_mut().insert(h.name(), value);
    }
    Ok(())
}

/// SigV4 written out for the gateway's own requests, on the hot path.
///
/// aws-sigv4 allocates a header map, several strings and a hex `String` per request and
/// derives the signing key (four HMACs) every time, with no way to pass one in: about a third
/// of the gateway's own CPU per request in the load test. Here the canonical request and the
/// string to sign are written into two reused thread-local buffers, and the keyed HMAC state
/// for `(secret, day, region)` is kept per thread and cloned per request.
mod direct {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    use aws_credential_types::Credentials;
    use hmac::{Hmac, KeyInit, Mac};
    use http::{HeaderMap, HeaderValue, header};
    use sha2::{Digest, Sha256};

    use super::{SIGNING_NAME, X_AMZ_DATE, X_AMZ_SECURITY_TOKEN};

    /// Signing keys kept per thread: one per region in use, a handful at most.
    const CACHED_KEYS: usize = 4;

    /// The headers a signature adds.
    pub(super) struct Signed {
        date: HeaderValue,
        authorization: HeaderValue,
        token: Option<HeaderValue>,
    }

    impl Signed {
        /// Sets the signature's headers, replacing any from an earlier signing.
        pub(super) fn apply(self, headers: &mut HeaderMap) {
            headers.insert(X_AMZ_DATE, self.date);
            headers.insert(header::AUTHORIZATION, self.authorization);
            if let Some(token) = self.token {
                headers.insert(X_AMZ_SECURITY_TOKEN, token);
            }
        }
    }

    struct CachedKey {
        /// SHA-256 of the secret: the cache never holds the secret itself.
        secret_digest: [u8; 32],
        date: [u8; 8],
        region: Box<str>,
        /// HMAC keyed with the derived signing key, ready to clone.
        mac: Hmac<Sha256>,
    }

    #[derive(Default)]
    struct Scratch {
        canonical: String,
        string_to_sign: String,
        keys: Vec<CachedKey>,
    }

    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    }

    /// Signs like aws-sigv4 with `SigningSettings::default()` (double-encoded path, no
    /// `x-amz-content-sha256`, session token signed), or `None` when the request needs the
    /// general canonicalisation.
    pub(super) fn sign<B>(
        req: &http::Request<B>,
        body: &[u8],
        credentials: &Credentials,
        region: &str,
        time: SystemTime,
    ) -> Option<Signed> {
        let uri = req.uri();
        if uri.query().is_some() || !is_plain_path(uri.path()) || !is_plain(region) {
            return None;
        }
        let host = match req.headers().get(header::HOST) {
            Some(value) => plain_value(value)?,
            None => {
                let authority = uri.authority()?.as_str();
                match (uri.scheme_str(), uri.port_u16()) {
                    (Some("http"), Some(80)) | (Some("https"), Some(443)) => uri.host()?,
                    _ => authority,
                }
            }
        };
        if !is_plain(host) || host.bytes().any(|b| b == b'@') {
            return None;
        }
        let content_type = match req.headers().get(header::CONTENT_TYPE) {
            Some(value) => Some(plain_value(value)?),
            None => None,
        };
        let token = credentials.session_token();
        if token.is_some_and(|t| !is_plain(t)) || !is_plain(credentials.access_key_id()) {
            return None;
        }
        let amz_date = format_amz_date(time)?;
        let amz_date = std::str::from_utf8(&amz_date).ok()?;
        let date = &amz_date[..8];
        let signed_headers = match (content_type.is_some(), token.is_some()) {
            (true, false) => "content-type;host;x-amz-date",
            (true, true) => "content-type;host;x-amz-date;x-amz-security-token",
            (false, false) => "host;x-amz-date",
            (false, true) => "host;x-amz-date;x-amz-security-token",
        };
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch {
                canonical,
                string_to_sign,
                keys,
            } = &mut *scratch;

            canonical.clear();
            canonical.push_str(req.method().as_str());
            canonical.push('\n');
            // The second encoding of the path: only `%` changes in a plain path.
            push_double_encoded(canonical, uri.path());
            canonical.push_str("\n\n");
            if let Some(content_type) = content_type {
                canonical.push_str("content-type:");
                canonical.push_str(content_type);
                canonical.push('\n');
            }
            canonical.push_str("host:");
            canonical.push_str(host);
            canonical.push_str("\nx-amz-date:");
            canonical.push_str(amz_date);
            canonical.push('\n');
            if let Some(token) = token {
                canonical.push_str("x-amz-security-token:");
                canonical.push_str(token);
                canonical.push('\n');
            }
            canonical.push('\n');
            canonical.push_str(signed_headers);
            canonical.push('\n');
            push_hex(canonical, Sha256::digest(body).into());

            string_to_sign.clear();
            string_to_sign.push_str("AWS4-HMAC-SHA256\n");
            string_to_sign.push_str(amz_date);
            string_to_sign.push('\n');
            push_scope(string_to_sign, date, region);
            string_to_sign.push('\n');
            push_hex(string_to_sign, Sha256::digest(canonical.as_bytes()).into());

            let mut mac = signing_mac(keys, credentials.secret_access_key(), date, region);
            mac.update(string_to_sign.as_bytes());
            let signature = mac.finalize().into_bytes();

            let mut authorization = String::with_capacity(
                96 + credentials.access_key_id().len() + region.len() + signed_headers.len() + 64,
            );
            authorization.push_str("AWS4-HMAC-SHA256 Credential=");
            authorization.push_str(credentials.access_key_id());
            authorization.push('/');
            push_scope(&mut authorization, date, region);
            authorization.push_str(", SignedHeaders=");
            authorization.push_str(signed_headers);
            authorization.push_str(", Signature=");
            push_hex(&mut authorization, signature.into());

            let mut authorization = HeaderValue::try_from(authorization).ok()?;
            authorization.set_sensitive(true);
            let token = match token {
                Some(token) => {
                    let mut value = HeaderValue::from_str(token).ok()?;
                    value.set_sensitive(true);
                    Some(value)
                }
                None => None,
            };
            Some(Signed {
                date: HeaderValue::from_str(amz_date).ok()?,
                authorization,
                token,
            })
        })
    }

    /// The HMAC keyed with `kSigning` for this secret, day and region, from the thread's cache
    /// or derived and cached.
    fn signing_mac(keys: &mut Vec<CachedKey>, secret: &str, date: &str, region: &str) -> Hmac<Sha256> {
        let secret_digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let date: [u8; 8] = date.as_bytes().try_into().unwrap_or_default();
        if let Some(cached) = keys
            .iter()
            .find(|k| k.date == date && *k.region == *region && k.secret_digest == secret_digest)
        {
            return cached.mac.clone();
        }
        let mut key = Vec::with_capacity(4 + secret.len());
        key.extend_from_slice(b"AWS4");
        key.extend_from_slice(secret.as_bytes());
        let mut k = hmac(&key, &date);
        for part in [region.as_bytes(), SIGNING_NAME.as_bytes(), b"aws4_request"] {
            k = hmac(&k, part);
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&k).unwrap_or_else(|_| unreachable_hmac());
        if keys.len() >= CACHED_KEYS {
            // Days roll over and regions are few: dropping the oldest is enough.
            keys.remove(0);
        }
        keys.push(CachedKey {
            secret_digest,
            date,
            region: region.into(),
            mac: mac.clone(),
        });
        mac
    }

    fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// HMAC takes keys of any length, so `new_from_slice` cannot fail; this keeps the code
    /// free of `unwrap` without pretending there is an error to report.
    fn unreachable_hmac() -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new(&Default::default())
    }

    fn push_scope(out: &mut String, date: &str, region: &str) {
        out.push_str(date);
        out.push('/');
        out.push_str(region);
        out.push('/');
        out.push_str(SIGNING_NAME);
        out.push_str("/aws4_request");
    }

    /// Lowercase hex of a digest or signature, written as one string.
    fn push_hex(out: &mut String, bytes: [u8; 32]) {
        let mut hex = [0u8; 64];
        // Twice the input's length: encoding cannot fail.
        if hex::encode_to_slice(bytes, &mut hex).is_ok() {
            out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
        }
    }

    /// Visible ASCII without spaces: nothing aws-sigv4 would trim, collapse or encode.
    fn is_plain(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
    }

    /// A header value aws-sigv4 would sign as it is: visible ASCII and single inner spaces.
    fn plain_value(value: &HeaderValue) -> Option<&str> {
        let bytes = value.as_bytes();
        let (first, last) = (*bytes.first()?, *bytes.last()?);
        let mut previous_space = false;
        for &b in bytes {
            let space = b == b' ';
            if !(space || b.is_ascii_graphic()) || (space && previous_space) {
                return None;
            }
            previous_space = space;
        }
        if first == b' ' || last == b' ' {
            return None;
        }
        std::str::from_utf8(bytes).ok()
    }

    /// A path aws-sigv4's normalisation leaves as it is and whose only byte its encoding
    /// changes is `%`: unreserved characters, `/` and `%`, no empty, `.` or `..` segment
    /// (a trailing `/` is kept by both).
    pub(super) fn is_plain_path(path: &str) -> bool {
        const fn plain_bytes() -> [bool; 256] {
            let mut table = [false; 256];
            let mut b = 0;
            while b < 256 {
                let c = b as u8;
                table[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'~' | b'%');
                b += 1;
            }
            table
        }
        const PLAIN: [bool; 256] = plain_bytes();
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        // Only the last segment may be empty: the one after a trailing `/`.
        let bad = |segment: &[u8]| matches!(segment, b"" | b"." | b"..");
        let rest = rest.as_bytes();
        let mut start = 0;
        for (i, &b) in rest.iter().enumerate() {
            if b == b'/' {
                if bad(&rest[start..i]) {
                    return false;
                }
                start = i + 1;
            } else if !PLAIN[usize::from(b)] {
                return false;
            }
        }
        let last = &rest[start..];
        last.is_empty() || !bad(last)
    }

    /// Appends `path` with every `%` written as `%25`, the second encoding aws-sigv4 applies.
    fn push_double_encoded(out: &mut String, path: &str) {
        let mut start = 0;
        for (i, b) in path.bytes().enumerate() {
            if b == b'%' {
                out.push_str(&path[start..=i]);
                out.push_str("25");
                start = i + 1;
            }
        }
        out.push_str(&path[start..]);
    }

    /// `YYYYMMDDTHHMMSSZ` in UTC.
    pub(super) fn format_amz_date(time: SystemTime) -> Option<[u8; 16]> {
        let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let days = i64::try_from(secs / 86_400).ok()?;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut out = *b"00000000T000000Z";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for i in (0..width).rev() {
                out[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year as u64);
        put(4, 2, u64::from(month));
        put(6, 2, u64::from(day));
        put(9, 2, rem / 3600);
        put(11, 2, rem % 3600 / 60);
        put(13, 2, rem % 60);
        Some(out)
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
    fn civil_from_days(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }
}

/// Percent-encodes a model id as one path segment: `A-Z a-z 0-9 - . _ ~` are kept, every
/// other UTF-8 byte becomes `%XX` with uppercase hex (`:` -> `%3A`, `/` -> `%2F`).
pub fn encode_model_id(id: &str) -> String {
    utf8_percent_encode(id, MODEL_ID_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN//////////wEaDEXAMPLE=";
    const BODY: &[u8] =
        br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":16}}"#;
    const V3_BODY: &[u8] = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[{"role":"user","content":"Hello"}]}"#;

    fn mk_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_714_564_800)
    }

    fn mk_creds(token: Option<&str>) -> Credentials {
        Credentials::new(AKID, SECRET, token.map(str::to_owned), None, "test")
    }

    fn mk_request(uri: &str) -> http::Request<()> {
        http::Request::post(uri)
            .header("content-type", "application/json")
            .body(())
            .unwrap()
    }

    fn header<'r>(req: &'r http::Request<()>, name: &str) -> Option<&'r str> {
        req.headers().get(name).map(|v| v.to_str().unwrap())
    }

    fn signature(req: &http::Request<()>) -> &str {
        let auth = header(req, "authorization").unwrap();
        auth.rsplit("Signature=").next().unwrap()
    }

    #[test]
    fn v1_static_credentials_converse() {
        let mut req = mk_request(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        );
        sign_request(&mut req, BODY, &mk_creds(None), "us-east-1", mk_time()).unwrap();
        assert_eq!(header(&req, "x-amz-date"), Some("20240501T120000Z"));
        assert_eq!(header(&req, "x-amz-security-token"), None);
        assert_eq!(
            header(&req, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240501/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=bfcd26245392b38bba765f1b4f74e67a1b2f64da30f98354187c17906058b1d1"
            )
        );
    }

    #[test]
    fn v1_single_encoded_canonical_path_gives_the_rejected_signature() {
        // A raw `:` on the wire is canonicalised once (`%3A`), which is what signing the
        // single-encoded path amounts to: AWS rejects it for a `%3A` wire path.
        let mut raw = mk_request(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
        );
        sign_request(&mut raw, BODY, &mk_creds(None), "us-east-1", mk_time()).unwrap();
        assert_eq!(
            signature(&raw),
            "23b8a138d03ffba3334f5d222e22779900be2bb62c218e62a7838ec7308f5939"
        );

        // The same value from the reference's own definition: the `%3A` wire path canonicalised
        // without the second encoding.
        let identity = Identity::from(mk_creds(None));
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(SIGNING_NAME)
            .time(mk_time())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "POST",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
            [("content-type", "application/json")].into_iter(),
            SignableBody::Bytes(BODY),
        )
        .unwrap();
        let single = sign(signable, &params).unwrap();
        assert_eq!(
            single.signature(),
            "23b8a138d03ffba3334f5d222e22779900be2bb62c218e62a7838ec7308f5939"
        );

        let mut encoded = mk_request(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        );
        sign_request(&mut encoded, BODY, &mk_creds(None), "us-east-1", mk_time()).unwrap();
        assert_eq!(
            signature(&encoded),
            "bfcd26245392b38bba765f1b4f74e67a1b2f64da30f98354187c17906058b1d1"
        );
    }

    #[test]
    fn v2_temporary_credentials_converse_stream_arn() {
        let path = format!(
            "/model/{}/converse-stream",
            encode_model_id(
                "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
            )
        );
        let mut req = mk_request(&format!("https://bedrock-runtime.us-west-2.amazonaws.com{path}"));
        sign_request(&mut req, BODY, &mk_creds(Some(TOKEN)), "us-west-2", mk_time()).unwrap();
        assert_eq!(header(&req, "x-amz-date"), Some("20240501T120000Z"));
        assert_eq!(header(&req, "x-amz-security-token"), Some(TOKEN));
        assert!(req.headers()["x-amz-security-token"].is_sensitive());
        assert_eq!(
            header(&req, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240501/us-west-2/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, \
                 Signature=0b567036c83c1086cb7979890dc6f3ec8e7e54b6a606b658ea95088becad5238"
            )
        );
    }

    #[test]
    fn v3_invoke_with_accept_and_content_sha256() {
        // V3 signs two more headers than the gateway ever does, so it drives aws-sigv4 the
        // way sign_request does but with `accept` and the x-amz-content-sha256 setting.
        let identity = Identity::from(mk_creds(None));
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(SIGNING_NAME)
            .time(mk_time())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "POST",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke",
            [("content-type", "application/json"), ("accept", "application/json")].into_iter(),
            SignableBody::Bytes(V3_BODY),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let headers: Vec<(&str, &str)> = instructions.headers().collect();
        assert!(headers.contains(&("x-amz-date", "20240501T120000Z")));
        assert!(headers.contains(&(
            "x-amz-content-sha256",
            "f94cc877ef68ce9eecb36d6e8ced75006e95b30524af956903e5921eef6f5997"
        )));
        assert!(headers.contains(&(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240501/us-east-1/bedrock/aws4_request, \
             SignedHeaders=accept;content-type;host;x-amz-content-sha256;x-amz-date, \
             Signature=6ddfbdfb56923ef860d63b95ffa9b95e17af13af4fed3a9b8ef501b05f426dbc"
        )));
    }

    #[test]
    fn signing_keys_match_the_reference() {
        let hex = |key: &[u8]| key.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let k1 = v4::generate_signing_key(SECRET, mk_time(), "us-east-1", SIGNING_NAME);
        assert_eq!(
            hex(k1.as_ref()),
            "6eff5895a164eb6af2b13d66cb5899644ab8a06060412f72982ef34cff9757e6"
        );
        let k2 = v4::generate_signing_key(SECRET, mk_time(), "us-west-2", SIGNING_NAME);
        assert_eq!(
            hex(k2.as_ref()),
            "ea5f588492113a042827f1de2139e80d5ddd1d7faeaf636f684152e44005ad92"
        );
    }

    #[test]
    fn client_headers_are_not_signed() {
        let mut req = mk_request(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        );
        req.headers_mut()
            .insert("user-agent", HeaderValue::from_static("openai-python/1.0"));
        req.headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        req.headers_mut()
            .insert("content-length", HeaderValue::from_static("94"));
        sign_request(&mut req, BODY, &mk_creds(None), "us-east-1", mk_time()).unwrap();
        let auth = header(&req, "authorization").unwrap();
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date,"),
            "{auth}"
        );
        // The signature is V1's: the extra headers changed nothing.
        assert_eq!(
            signature(&req),
            "bfcd26245392b38bba765f1b4f74e67a1b2f64da30f98354187c17906058b1d1"
        );
    }

    #[test]
    fn resigning_replaces_the_previous_auth_headers() {
        let uri = "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
        let mut req = mk_request(uri);
        sign_request(&mut req, BODY, &mk_creds(Some(TOKEN)), "us-west-2", mk_time()).unwrap();
        sign_request(&mut req, BODY, &mk_creds(None), "us-west-2", mk_time()).unwrap();
        assert_eq!(header(&req, "x-amz-security-token"), None);
        assert_eq!(req.headers().get_all("authorization").iter().count(), 1);
        assert!(
            header(&req, "authorization")
                .unwrap()
                .contains("SignedHeaders=content-type;host;x-amz-date,")
        );
        // On both paths (a query string takes aws-sigv4's), with and without a session token,
        // the second signature is what a first signing of the same request gives.
        let query = "https://bedrock-runtime.us-west-2.amazonaws.com/model/m/converse?x=1";
        for (uri, first, second) in [
            (uri, Some(TOKEN), None),
            (uri, None, Some(TOKEN)),
            (query, Some(TOKEN), None),
            (query, None, Some(TOKEN)),
        ] {
            let mut fresh = mk_request(uri);
            sign_request(&mut fresh, BODY, &mk_creds(second), "us-west-2", mk_time()).unwrap();
            let mut resigned = mk_request(uri);
            sign_request(&mut resigned, BODY, &mk_creds(first), "us-west-2", mk_time()).unwrap();
            sign_request(&mut resigned, BODY, &mk_creds(second), "us-west-2", mk_time()).unwrap();
            for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
                assert_eq!(header(&resigned, name), header(&fresh, name), "{uri} {name}");
                let count = resigned.headers().get_all(name).iter().count();
                assert_eq!(count, usize::from(header(&fresh, name).is_some()), "{uri} {name}");
            }
        }
    }

    #[test]
    fn relative_uri_is_an_error_not_a_panic() {
        let mut req = mk_request("/model/x/converse");
        let err = sign_request(&mut req, BODY, &mk_creds(None), "us-east-1", mk_time()).unwrap_err();
        assert!(matches!(err, SignError::InvalidRequest(_)));
    }

    #[test]
    fn model_ids_encode_as_on_the_wire() {
        let table = [
            ("amazon.nova-lite-v1:0", "amazon.nova-lite-v1%3A0"),
            (
                "anthropic.claude-3-haiku-20240307-v1:0",
                "anthropic.claude-3-haiku-20240307-v1%3A0",
            ),
            (
                "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
                "us.anthropic.claude-3-7-sonnet-20250219-v1%3A0",
            ),
            (
                "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
                "arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0",
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
                "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fa1b2c3d4e5f6",
            ),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1",
                "arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Famazon.titan-text-express-v1",
            ),
            ("a b~c_d\u{e9}", "a%20b~c_d%C3%A9"),
        ];
        for (id, wire) in table {
            assert_eq!(encode_model_id(id), wire, "{id}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let bearer = BearerToken::new("ABSKsecretvalue123".to_owned());
        assert_eq!(format!("{bearer:?}"), "** redacted **");
        let signer = SigV4Signer::from_static(mk_creds(Some(TOKEN)));
        let auth = UpstreamAuth::SigV4(signer.clone());
        for text in [
            format!("{signer:?}"),
            format!("{auth:?}"),
            format!("{:?}", UpstreamAuth::Bearer(bearer)),
        ] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains(TOKEN), "{text}");
            assert!(!text.contains("ABSKsecretvalue123"), "{text}");
        }
    }

    #[tokio::test]
    async fn bearer_sets_only_authorization() {
        let auth = UpstreamAuth::Bearer(BearerToken::new("ABSKkey".to_owned()));
        let mut req = mk_request("https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse");
        auth.authorize(&mut req, BODY, "us-east-1").await.unwrap();
        assert_eq!(header(&req, "authorization"), Some("Bearer ABSKkey"));
        assert_eq!(req.headers().len(), 2);
        auth.check().await.unwrap();

        let bad = UpstreamAuth::Bearer(BearerToken::new("line\nbreak".to_owned()));
        assert!(matches!(bad.check().await, Err(SignError::InvalidBearerToken)));
        let empty = UpstreamAuth::Bearer(BearerToken::new(String::new()));
        assert!(matches!(
            empty.authorize(&mut req, BODY, "us-east-1").await,
            Err(SignError::InvalidBearerToken)
        ));
    }

    #[tokio::test]
    async fn sigv4_authorize_signs_with_resolved_credentials() {
        let auth = UpstreamAuth::SigV4(SigV4Signer::from_static(mk_creds(Some(TOKEN))));
        auth.check().await.unwrap();
        let mut req = mk_request("https://bedrock-runtime.us-west-2.amazonaws.com/model/m/converse");
        auth.authorize(&mut req, BODY, "us-west-2").await.unwrap();
        let authz = header(&req, "authorization").unwrap();
        assert!(
            authz.starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"),
            "{authz}"
        );
        assert!(authz.contains("/us-west-2/bedrock/aws4_request"), "{authz}");
        assert_eq!(header(&req, "x-amz-security-token"), Some(TOKEN));
    }

    #[derive(Debug)]
    struct Counting {
        calls: std::sync::atomic::AtomicU32,
        expiry: Option<SystemTime>,
        fail: bool,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let result = if self.fail {
                Err(aws_credential_types::provider::error::CredentialsError::not_loaded_no_source())
            } else {
                Ok(Credentials::new(AKID, SECRET, None, self.expiry, "counting"))
            };
            aws_credential_types::provider::future::ProvideCredentials::ready(result)
        }
    }

    fn mk_counting(expiry: Option<SystemTime>, fail: bool) -> (Arc<Counting>, SigV4Signer) {
        let provider = Arc::new(Counting {
            calls: 0.into(),
            expiry,
            fail,
        });
        let shared = SharedCredentialsProvider::new(CountingRef(provider.clone()));
        (provider, SigV4Signer::new(shared))
    }

    #[derive(Debug)]
    struct CountingRef(Arc<Counting>);

    impl ProvideCredentials for CountingRef {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.0.provide_credentials()
        }
    }

    #[tokio::test]
    async fn credentials_are_cached_between_requests() {
        let (provider, signer) = mk_counting(Some(SystemTime::now() + Duration::from_secs(3600)), false);
        for _ in 0..5 {
            signer.credentials().await.unwrap();
        }
        assert_eq!(provider.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_near_expiry_are_refreshed() {
        let (provider, signer) = mk_counting(Some(SystemTime::now() + Duration::from_secs(5)), false);
        signer.credentials().await.unwrap();
        signer.credentials().await.unwrap();
        assert_eq!(provider.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn missing_credentials_are_an_error_without_secrets() {
        let (_, signer) = mk_counting(None, true);
        let auth = UpstreamAuth::SigV4(signer);
        let err = auth.check().await.unwrap_err();
        assert!(matches!(err, SignError::NoCredentials(_)));
        assert!(err.to_string().starts_with("no AWS credentials"), "{err}");
    }

    fn mk_direct_cases() -> Vec<http::Request<()>> {
        let mut cases = Vec::new();
        for uri in [
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
            "https://bedrock-runtime.us-west-2.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
            "https://bedrock-runtime.eu-west-3.amazonaws.com:443/model/amazon.nova-lite-v1%3A0/converse",
            "https://vpce-0abc.bedrock-runtime.us-east-1.vpce.amazonaws.com:8443/model/m/converse",
            "http://127.0.0.1:9000/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
            "http://localhost:80/model/m/converse",
            "http://localhost/",
        ] {
            cases.push(mk_request(uri));
            let mut no_type = http::Request::post(uri).body(()).unwrap();
            no_type
                .headers_mut()
                .insert("user-agent", HeaderValue::from_static("x"));
            cases.push(no_type);
            let mut host = mk_request(uri);
            host.headers_mut()
                .insert(header::HOST, HeaderValue::from_static("bedrock.example:1234"));
            cases.push(host);
        }
        cases
    }

    fn clone_request(req: &http::Request<()>) -> http::Request<()> {
        let mut copy = http::Request::new(());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.headers_mut() = req.headers().clone();
        copy
    }

    #[test]
    fn direct_signing_matches_aws_sigv4() {
        let times = [
            mk_time(),
            mk_time() + Duration::from_secs(86_399),
            UNIX_EPOCH + Duration::from_secs(951_782_400), // 2000-02-29
            UNIX_EPOCH + Duration::from_secs(4_102_444_799), // 2099-12-31T23:59:59
        ];
        let creds = [
            mk_creds(None),
            mk_creds(Some(TOKEN)),
            Credentials::new("AKIDOTHER", "other/secret+key", None, None, "test"),
        ];
        let bodies: [&[u8]; 3] = [BODY, b"", &[b'x'; 100 * 1024]];
        let mut compared = 0;
        for req in mk_direct_cases() {
            for time in times {
                for credentials in &creds {
                    for region in ["us-east-1", "eu-west-3"] {
                        for body in bodies {
                            assert!(
                                direct::sign(&req, body, credentials, region, time).is_some(),
                                "{}",
                                req.uri()
                            );
                            let mut fast = clone_request(&req);
                            sign_request(&mut fast, body, credentials, region, time).unwrap();
                            let mut general = clone_request(&req);
                            sign_with_aws_sigv4(&mut general, body, credentials, region, time).unwrap();
                            for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
                                assert_eq!(
                                    header(&fast, name),
                                    header(&general, name),
                                    "{name} for {} at {time:?}",
                                    req.uri()
                                );
                            }
                            assert_eq!(
                                fast.headers()
                                    .get("x-amz-security-token")
                                    .map(HeaderValue::is_sensitive),
                                credentials.session_token().map(|_| true)
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 21 * 4 * 3 * 2 * 3);
    }

    #[test]
    fn direct_signing_declines_what_needs_general_canonicalisation() {
        let creds = mk_creds(None);
        for uri in [
            "https://h.example/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
            "https://h.example/model/m/converse?x=1",
            "https://h.example/model/./converse",
            "https://h.example/model/../converse",
            "https://h.example//model/m/converse",
            "https://user@h.example/model/m/converse",
        ] {
            let req = mk_request(uri);
            assert!(
                direct::sign(&req, BODY, &creds, "us-east-1", mk_time()).is_none(),
                "{uri}"
            );
        }
        let mut spaced = mk_request("https://h.example/model/m/converse");
        spaced.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;  charset=utf-8"),
        );
        assert!(direct::sign(&spaced, BODY, &creds, "us-east-1", mk_time()).is_none());
        // Declined requests are still signed, by aws-sigv4, with the same result as before.
        let mut fallback = clone_request(&spaced);
        sign_request(&mut fallback, BODY, &creds, "us-east-1", mk_time()).unwrap();
        let mut general = clone_request(&spaced);
        sign_with_aws_sigv4(&mut general, BODY, &creds, "us-east-1", mk_time()).unwrap();
        assert_eq!(
            header(&fallback, "authorization"),
            header(&general, "authorization")
        );
    }

    #[test]
    fn cached_signing_keys_are_per_secret_day_and_region() {
        let uri = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse";
        let a = Credentials::new(AKID, SECRET, None, None, "a");
        let b = Credentials::new(AKID, "a-different-secret", None, None, "b");
        let next_day = mk_time() + Duration::from_secs(86_400);
        for (creds, time, region) in [
            (&a, mk_time(), "us-east-1"),
            (&b, mk_time(), "us-east-1"),
            (&a, next_day, "us-east-1"),
            (&a, mk_time(), "us-west-2"),
            (&a, mk_time(), "eu-west-1"),
            (&a, mk_time(), "ap-south-1"),
            (&b, mk_time(), "us-east-1"),
            (&a, mk_time(), "us-east-1"),
        ] {
            let mut fast = mk_request(uri);
            sign_request(&mut fast, BODY, creds, region, time).unwrap();
            let mut general = mk_request(uri);
            sign_with_aws_sigv4(&mut general, BODY, creds, region, time).unwrap();
            assert_eq!(header(&fast, "authorization"), header(&general, "authorization"));
        }
    }

    #[test]
    fn plain_paths_are_those_normalisation_leaves_alone() {
        for path in [
            "/",
            "/model/a.b-c_d~e%3A0/converse",
            "/a/",
            "/.a/b..",
            "/...",
            "/a/.b",
        ] {
            assert!(direct::is_plain_path(path), "{path}");
        }
        for path in [
            "", "a", "//", "/a//b", "/.", "/..", "/a/./b", "/a/../b", "/a/.", "/a/..", "/a b", "/a:b", "/a?",
        ] {
            assert!(!direct::is_plain_path(path), "{path}");
        }
    }

    #[test]
    fn amz_dates_are_utc_calendar_dates() {
        let at = |secs: u64| {
            let bytes = direct::format_amz_date(UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(1_714_564_800), "20240501T120000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(4_102_444_799), "20991231T235959Z");
        assert_eq!(at(1_709_164_799), "20240228T235959Z");
        assert_eq!(at(1_709_164_800), "20240229T000000Z");
    }
}
