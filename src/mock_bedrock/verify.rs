//! Checks a request's SigV4 signature (or bearer token) the way Bedrock's front door does:
//! from the request exactly as received.
//!
//! The signature is recomputed with aws-sigv4 over the method, the raw path as sent (so `%3A`
//! and `:` sign differently), the headers the client listed in `SignedHeaders` with their
//! values as received, the exact body, the `x-amz-date` time and the session token, then
//! compared in constant time.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{StatusCode, header};

use super::MockConfig;

/// How far `x-amz-date` may be from the mock's clock.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// The only SigV4 algorithm Bedrock accepts.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The signing name every Bedrock runtime credential scope must carry.
const SERVICE: &str = "bedrock";

/// Why a request was refused, with the Bedrock error it maps to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AuthError {
    /// No `Authorization` header at all.
    Missing,
    /// The header is malformed or a required part is missing.
    Incomplete(Cow<'static, str>),
    /// The access key id (or bearer token) is not the configured one.
    UnknownClient,
    /// The signature, scope or timestamp is wrong.
    Invalid(Cow<'static, str>),
}

/// The message AWS gives for a signature that does not match.
pub(super) const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
signature you provided. Check your AWS Secret Access Key and signing method. Consult the service \
documentation for details.";

impl AuthError {
    /// HTTP status, Bedrock error name and message.
    pub(super) fn parts(&self) -> (StatusCode, &'static str, Cow<'_, str>) {
        match self {
            Self::Missing => (
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                Cow::Borrowed("Missing Authentication Token"),
            ),
            Self::Incomplete(message) => (
                StatusCode::BAD_REQUEST,
                "IncompleteSignatureException",
                Cow::Borrowed(message.as_ref()),
            ),
            Self::UnknownClient => (
                StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                Cow::Borrowed("The security token included in the request is invalid."),
            ),
            Self::Invalid(message) => (
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                Cow::Borrowed(message.as_ref()),
            ),
        }
    }
}

/// The three parts of an `AWS4-HMAC-SHA256` authorization header.
struct Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// Verifies `parts` + `body` against `config` at time `now`.
pub(super) fn verify(
    parts: &http::request::Parts,
    body: &[u8],
    config: &MockConfig,
    now: SystemTime,
) -> Result<(), AuthError> {
    let raw = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    let raw = raw
        .to_str()
        .map_err(|_| AuthError::Incomplete("The Authorization header is not valid ASCII.".into()))?;
    if let Some(token) = strip_prefix_ignore_case(raw, "Bearer ") {
        return match &config.bearer_token {
            Some(expected) if constant_time_eq(expected.as_bytes(), token.trim().as_bytes()) => Ok(()),
            _ => Err(AuthError::UnknownClient),
        };
    }
    let auth = parse_authorization(raw)?;

    let mut scope = auth.credential.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(AuthError::Incomplete(
            format!(
                "Credential should be scoped to a valid region, and have the form \
                 AKID/YYYYMMDD/region/service/aws4_request, not '{}'.",
                auth.credential
            )
            .into(),
        ));
    };
    if !constant_time_eq(akid.as_bytes(), config.access_key_id.as_bytes()) {
        return Err(AuthError::UnknownClient);
    }
    if service != SERVICE {
        return Err(AuthError::Invalid(
            format!("Credential should be scoped to correct service: '{SERVICE}'.").into(),
        ));
    }
    if let Some(expected) = &config.region
        && region != expected
    {
        return Err(AuthError::Invalid(
            format!("Credential should be scoped to a valid region, not '{region}'.").into(),
        ));
    }

    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            AuthError::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
            )
        })?;
    let time = parse_amz_date(amz_date).ok_or_else(|| {
        AuthError::Incomplete("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"".into())
    })?;
    if amz_date.get(..8) != Some(date) {
        return Err(AuthError::Invalid(
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
                 HTTP: '{date}' != '{}'",
                amz_date.get(..8).unwrap_or_default()
            )
            .into(),
        ));
    }
    let skew = match now.duration_since(time) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > MAX_CLOCK_SKEW {
        return Err(AuthError::Invalid(
            format!(
                "Signature expired: {amz_date} is more than 15 minutes away from the server time {}.",
                format_amz_date(now)
            )
            .into(),
        ));
    }

    let expected = recompute(parts, body, config, &auth, region, service, time)
        .ok_or(AuthError::Invalid(Cow::Borrowed(SIGNATURE_MISMATCH)))?;
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::Invalid(Cow::Borrowed(SIGNATURE_MISMATCH)))
    }
}

/// Recomputes the signature; `None` when the request cannot reproduce what the client
/// claims to have signed (a listed header is missing or not text).
fn recompute(
    parts: &http::request::Parts,
    body: &[u8],
    config: &MockConfig,
    auth: &Authorization<'_>,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Option<String> {
    let host = match parts.headers.get(header::HOST) {
        Some(value) => value.to_str().ok()?,
        // HTTP/2 carries the host in `:authority`, which hyper puts in the URI.
        None => parts.uri.authority()?.as_str(),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());

    let mut token_signed = false;
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(8);
    for name in auth.signed_headers.split(';') {
        match name {
            // Added by the signer from the time and the credentials below.
            "x-amz-date" => {}
            "x-amz-security-token" => token_signed = true,
            // The host exactly as received; passing it makes aws-sigv4 use it verbatim.
            "host" => headers.push(("host", host)),
            _ => {
                let mut found = false;
                for value in parts.headers.get_all(name) {
                    headers.push((name, value.to_str().ok()?));
                    found = true;
                }
                if !found {
                    return None;
                }
            }
        }
    }
    let token = parts
        .headers
        .get("x-amz-security-token")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .ok()?;

    let credentials = Credentials::new(
        config.access_key_id.clone(),
        config.secret_access_key.clone(),
        token,
        None,
        "mock-bedrock",
    );
    let identity = Identity::from(credentials);
    let mut settings = SigningSettings::default();
    // Reproduce exactly the list the client signed, whatever it chose to include.
    settings.excluded_headers = Some(vec![Cow::Borrowed("authorization")]);
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    settings.session_token_mode = if token_signed {
        SessionTokenMode::Include
    } else {
        SessionTokenMode::Exclude
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let url = format!("http://{host}{path}");
    let signable = SignableRequest::new(
        parts.method.as_str(),
        url,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .ok()?;
    let output = sign(signable, &params).ok()?;
    Some(output.signature().to_owned())
}

fn parse_authorization(raw: &str) -> Result<Authorization<'_>, AuthError> {
    let rest = raw
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(|| {
            AuthError::Incomplete(
                format!("Authorization header requires the {ALGORITHM} algorithm or a Bearer token.").into(),
            )
        })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let mut missing = String::new();
    for (value, name) in [
        (&credential, "Credential"),
        (&signed_headers, "SignedHeaders"),
        (&signature, "Signature"),
    ] {
        if value.is_none_or(str::is_empty) {
            missing.push_str(&format!("Authorization header requires '{name}' parameter. "));
        }
    }
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) if missing.is_empty() => {
            Ok(Authorization {
                credential,
                signed_headers,
                signature,
            })
        }
        _ => Err(AuthError::Incomplete(missing.trim_end().to_owned().into())),
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Compares without an early exit, so the time taken does not reveal how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Parses `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = s.get(range)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Formats a time as `YYYYMMDDTHHMMSSZ` (UTC).
pub(super) fn format_amz_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::sigv4::sign_request;
    use http::HeaderValue;

    const BODY: &[u8] = br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}"#;
    const PATH: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";

    fn mk_signed(
        config: &MockConfig,
        secret: &str,
        token: Option<&str>,
        time: SystemTime,
    ) -> http::request::Parts {
        let mut req = http::Request::post(format!("http://127.0.0.1:4000{PATH}"))
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let creds = Credentials::new(
            config.access_key_id.clone(),
            secret.to_owned(),
            token.map(str::to_owned),
            None,
            "test",
        );
        sign_request(&mut req, BODY, &creds, "us-east-1", time).unwrap();
        mk_received(req)
    }

    /// What a server sees: origin-form URI and a `host` header.
    fn mk_received(req: http::Request<()>) -> http::request::Parts {
        let (mut parts, ()) = req.into_parts();
        let host = parts.uri.authority().unwrap().as_str().to_owned();
        parts.uri = parts.uri.path_and_query().unwrap().as_str().parse().unwrap();
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_str(&host).unwrap());
        parts
    }

    #[test]
    fn valid_signature_passes() {
        let config = MockConfig::default();
        let now = SystemTime::now();
        let parts = mk_signed(&config, &config.secret_access_key, None, now);
        assert_eq!(verify(&parts, BODY, &config, now), Ok(()));
    }

    #[test]
    fn session_token_is_signed_and_checked() {
        let config = MockConfig::default();
        let now = SystemTime::now();
        let mut parts = mk_signed(&config, &config.secret_access_key, Some("tok/en=="), now);
        assert_eq!(verify(&parts, BODY, &config, now), Ok(()));
        parts
            .headers
            .insert("x-amz-security-token", HeaderValue::from_static("other"));
        assert!(matches!(
            verify(&parts, BODY, &config, now),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn tampered_body_fails() {
        let config = MockConfig::default();
        let now = SystemTime::now();
        let parts = mk_signed(&config, &config.secret_access_key, None, now);
        let err = verify(&parts, b"{\"messages\":[]}", &config, now).unwrap_err();
        assert_eq!(err, AuthError::Invalid(Cow::Borrowed(SIGNATURE_MISMATCH)));
        assert_eq!(err.parts().1, "InvalidSignatureException");
    }

    #[test]
    fn decoded_path_fails() {
        let config = MockConfig::default();
        let now = SystemTime::now();
        let mut parts = mk_signed(&config, &config.secret_access_key, None, now);
        parts.uri = PATH.replace("%3A", ":").parse().unwrap();
        assert_eq!(
            verify(&parts, BODY, &config, now),
            Err(AuthError::Invalid(Cow::Borrowed(SIGNATURE_MISMATCH)))
        );
    }

    #[test]
    fn extra_unsigned_header_is_fine() {
        let config = MockConfig::default();
        let now = SystemTime::now();
        let mut parts = mk_signed(&config, &config.secret_access_key, None, now);
        parts
            .headers
            .insert("user-agent", HeaderValue::from_static("proxy/2"));
        parts
            .headers
            .insert("x-forwarded-for", HeaderValue::from_static("10.1.1.1"));
        assert_eq!(verify(&parts, BODY, &config, now), Ok(()));
    }

    #[test]
    fn changed_signed_header_fails() {
        let config = MockConfig::default();
        let now = SystemTime::now();
        let mut parts = mk_signed(&config, &config.secret_access_key, None, now);
        parts
            .headers
            .insert("content-type", HeaderValue::from_static("text/plain"));
        assert!(matches!(
            verify(&parts, BODY, &config, now),
            Err(AuthError::Invalid(_))
        ));
        parts.headers.remove("content-type");
        assert!(matches!(
            verify(&parts, BODY, &config, now),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn wrong_secret_fails() {
        let config = MockConfig::default();
        let now = SystemTime::now();
        let parts = mk_signed(&config, "not-the-secret", None, now);
        assert_eq!(
            verify(&parts, BODY, &config, now),
            Err(AuthError::Invalid(Cow::Borrowed(SIGNATURE_MISMATCH)))
        );
    }

    #[test]
    fn unknown_access_key_is_unrecognized_client() {
        let config = MockConfig::default();
        let other = MockConfig {
            access_key_id: "AKIDSOMEONEELSE00000".into(),
            ..MockConfig::default()
        };
        let now = SystemTime::now();
        let parts = mk_signed(&other, &config.secret_access_key, None, now);
        let err = verify(&parts, BODY, &config, now).unwrap_err();
        assert_eq!(err, AuthError::UnknownClient);
        assert_eq!(err.parts().0, StatusCode::FORBIDDEN);
    }

    #[test]
    fn missing_authorization_is_missing_token() {
        let config = MockConfig::default();
        let (parts, ()) = http::Request::post(PATH).body(()).unwrap().into_parts();
        let err = verify(&parts, BODY, &config, SystemTime::now()).unwrap_err();
        assert_eq!(err, AuthError::Missing);
        assert_eq!(err.parts().1, "MissingAuthenticationTokenException");
    }

    #[test]
    fn stale_date_is_rejected() {
        let config = MockConfig::default();
        let now = SystemTime::now();
        let parts = mk_signed(
            &config,
            &config.secret_access_key,
            None,
            now - Duration::from_secs(16 * 60),
        );
        let err = verify(&parts, BODY, &config, now).unwrap_err();
        assert!(
            matches!(&err, AuthError::Invalid(m) if m.starts_with("Signature expired")),
            "{err:?}"
        );
        let parts = mk_signed(
            &config,
            &config.secret_access_key,
            None,
            now + Duration::from_secs(16 * 60),
        );
        assert!(verify(&parts, BODY, &config, now).is_err());
        let parts = mk_signed(
            &config,
            &config.secret_access_key,
            None,
            now - Duration::from_secs(14 * 60),
        );
        assert_eq!(verify(&parts, BODY, &config, now), Ok(()));
    }

    #[test]
    fn configured_region_must_match() {
        let config = MockConfig {
            region: Some("eu-west-1".into()),
            ..MockConfig::default()
        };
        let now = SystemTime::now();
        let parts = mk_signed(&config, &config.secret_access_key, None, now);
        let err = verify(&parts, BODY, &config, now).unwrap_err();
        assert!(
            matches!(&err, AuthError::Invalid(m) if m.contains("region")),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_service_is_rejected() {
        let config = MockConfig::default();
        let now = SystemTime::now();
        let mut parts = mk_signed(&config, &config.secret_access_key, None, now);
        let auth = parts.headers["authorization"]
            .to_str()
            .unwrap()
            .replace("/bedrock/", "/bedrock-runtime/");
        parts
            .headers
            .insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let err = verify(&parts, BODY, &config, now).unwrap_err();
        assert!(
            matches!(&err, AuthError::Invalid(m) if m.contains("service")),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_header_is_incomplete() {
        let config = MockConfig::default();
        let mut parts = mk_signed(&config, &config.secret_access_key, None, SystemTime::now());
        parts.headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDMOCKBEDROCK00001/20240501/us-east-1/bedrock/aws4_request",
            ),
        );
        let err = verify(&parts, BODY, &config, SystemTime::now()).unwrap_err();
        assert!(
            matches!(&err, AuthError::Incomplete(m) if m.contains("'SignedHeaders'") && m.contains("'Signature'"))
        );
        assert_eq!(err.parts().0, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn bearer_token_when_configured() {
        let config = MockConfig {
            bearer_token: Some("ABSKmock".into()),
            ..MockConfig::default()
        };
        let mut parts = http::Request::post(PATH).body(()).unwrap().into_parts().0;
        parts
            .headers
            .insert("authorization", HeaderValue::from_static("Bearer ABSKmock"));
        assert_eq!(verify(&parts, BODY, &config, SystemTime::now()), Ok(()));
        parts
            .headers
            .insert("authorization", HeaderValue::from_static("Bearer ABSKother"));
        assert_eq!(
            verify(&parts, BODY, &config, SystemTime::now()),
            Err(AuthError::UnknownClient)
        );
        assert_eq!(
            verify(&parts, BODY, &MockConfig::default(), SystemTime::now()),
            Err(AuthError::UnknownClient)
        );
    }

    #[test]
    fn amz_dates_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        assert_eq!(format_amz_date(t), "20240501T120000Z");
        assert_eq!(parse_amz_date("20240501T120000Z"), Some(t));
        assert_eq!(
            parse_amz_date("20000229T235959Z").map(format_amz_date).as_deref(),
            Some("20000229T235959Z")
        );
        assert_eq!(parse_amz_date("2024-05-01T12:00:00Z"), None);
        assert_eq!(parse_amz_date("20241301T120000Z"), None);
    }
}
