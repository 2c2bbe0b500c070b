//! The `ai-gateway keys` commands: add, list, revoke, totp-enroll. Each reads the keys file,
//! changes it, writes it back atomically and tells the operator what happened. Secrets (a new
//! key, a TOTP seed) are printed once, here, and nowhere else.

use std::io::Write;
use std::path::Path;

use super::keys::{KeyRecord, KeysFile, NewKey};
use super::totp::{TotpSecret, qr_text};
use super::{Clock, SystemClock};

/// `keys add`: creates a key and prints it once.
pub fn add(path: &Path, name: &str, new: NewKey, issuer: &str, out: &mut dyn Write) -> Result<(), String> {
    let mut file = KeysFile::load_or_new(path).map_err(|e| e.to_string())?;
    let (key, secret) = file
        .add(name, new, SystemClock.now_secs())
        .map_err(|e| e.to_string())?;
    // Saved before printing: a key is only shown once it exists.
    file.save(path).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    writeln!(
        out,
        "Created key `{name}` in {}. It is shown only this once; store it now:\n\n    {}\n",
        path.display(),
        key.expose()
    )
    .map_err(io)?;
    match &secret {
        Some(secret) => {
            enrolment(out, name, secret, issuer).map_err(io)?;
        }
        None => writeln!(
            out,
            "Clients send it as `Authorization: Bearer <key>` (OpenAI SDKs: api_key=<key>) or `x-api-key: <key>`."
        )
        .map_err(io)?,
    }
    Ok(())
}

/// `keys list`: names, limits and state; never a key or a seed.
pub fn list(path: &Path, out: &mut dyn Write) -> Result<(), String> {
    let file = KeysFile::load(path).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    writeln!(
        out,
        "{:<24} {:<8} {:<24} {:>6} {:>10} {:>7} {:<4} MODELS",
        "NAME", "STATUS", "CREATED", "RPM", "TPM", "STREAMS", "TOTP"
    )
    .map_err(io)?;
    for key in &file.keys {
        writeln!(out, "{}", row(key)).map_err(io)?;
    }
    Ok(())
}

fn row(key: &KeyRecord) -> String {
    let num = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    format!(
        "{:<24} {:<8} {:<24} {:>6} {:>10} {:>7} {:<4} {}",
        key.name,
        if key.revoked.is_some() {
            "revoked"
        } else {
            "active"
        },
        crate::audit::rfc3339(key.created.saturating_mul(1000)),
        num(key.rpm.map(u64::from)),
        num(key.tpm),
        num(key.max_streams.map(u64::from)),
        if key.require_totp { "yes" } else { "no" },
        if key.models.is_empty() {
            "(all)".to_owned()
        } else {
            key.models.join(",")
        }
    )
}

/// `keys revoke`: marks a key revoked.
pub fn revoke(path: &Path, name: &str, out: &mut dyn Write) -> Result<(), String> {
    let mut file = KeysFile::load(path).map_err(|e| e.to_string())?;
    file.revoke(name, SystemClock.now_secs())
        .map_err(|e| e.to_string())?;
    file.save(path).map_err(|e| e.to_string())?;
    writeln!(
        out,
        "Revoked `{name}`. Running gateways refuse it, and end its sessions, once they re-read {} \
         (every auth.reload_interval_ms, or on SIGHUP).",
        path.display()
    )
    .map_err(|e| e.to_string())
}

/// `keys totp-enroll`: gives a key a new TOTP seed, requires it, and prints the enrolment.
pub fn totp_enroll(path: &Path, name: &str, issuer: &str, out: &mut dyn Write) -> Result<(), String> {
    let mut file = KeysFile::load(path).map_err(|e| e.to_string())?;
    let secret = file.enroll_totp(name).map_err(|e| e.to_string())?;
    file.save(path).map_err(|e| e.to_string())?;
    enrolment(out, name, &secret, issuer).map_err(|e| e.to_string())
}

fn enrolment(out: &mut dyn Write, name: &str, secret: &TotpSecret, issuer: &str) -> std::io::Result<()> {
    let uri = secret.provisioning_uri(issuer, name).unwrap_or_default();
    writeln!(
        out,
        "Key `{name}` now requires a TOTP code. Scan this with an authenticator app \
         (Google Authenticator, 1Password, …), or enter the secret by hand:\n"
    )?;
    if let Some(qr) = qr_text(&uri) {
        writeln!(out, "{qr}")?;
    }
    writeln!(out, "    {uri}\n    secret: {}\n", secret.to_base32())?;
    writeln!(
        out,
        "Then open a session (valid auth.session_ttl_secs, 12 h by default) and use its token as the key:\n\n    \
         curl -s http://127.0.0.1:8080/v1/auth/session -H 'authorization: Bearer <key>' \\\n         \
         -H 'content-type: application/json' -d '{{\"code\":\"123456\"}}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::limits::KeyLimits;

    #[test]
    fn add_list_revoke_enroll_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.yaml");
        let mut out = Vec::new();
        let new = NewKey {
            models: vec!["claude-3-haiku".into(), "nova-lite".into()],
            limits: KeyLimits {
                rpm: Some(60),
                tpm: None,
                max_streams: Some(2),
            },
            require_totp: false,
        };
        add(&path, "alice", new, "ai-gateway", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let key = text
            .split_whitespace()
            .find(|w| w.starts_with("aigw-"))
            .unwrap()
            .to_owned();
        let stored = std::fs::read_to_string(&path).unwrap();
        assert!(!stored.contains(&key), "{stored}");

        let mut out = Vec::new();
        list(&path, &mut out).unwrap();
        let listing = String::from_utf8(out).unwrap();
        assert!(
            listing.contains("alice") && listing.contains("claude-3-haiku,nova-lite"),
            "{listing}"
        );
        assert!(!listing.contains(&key));

        let mut out = Vec::new();
        totp_enroll(&path, "alice", "ai-gateway", &mut out).unwrap();
        let enrolment = String::from_utf8(out).unwrap();
        assert!(
            enrolment.contains("otpauth://totp/ai-gateway:alice?secret="),
            "{enrolment}"
        );

        revoke(&path, "alice", &mut Vec::new()).unwrap();
        let mut out = Vec::new();
        list(&path, &mut out).unwrap();
        let listing = String::from_utf8(out).unwrap();
        assert!(
            listing.contains("revoked") && listing.contains("yes"),
            "{listing}"
        );
        assert!(
            revoke(&path, "nobody", &mut Vec::new())
                .unwrap_err()
                .contains("nobody")
        );
    }
}
