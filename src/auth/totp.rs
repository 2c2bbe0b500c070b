//! RFC 6238 TOTP as Google Authenticator speaks it: HMAC-SHA-1, 6 digits, 30 s steps, one step
//! of clock skew either way. Time comes in as an argument; the replay guard and the lockout
//! live with the per-key state in `limits`.

use std::fmt;

use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Seed length: 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Steps of skew accepted either side of the current one.
const SKEW_STEPS: u16 = 1;

/// A TOTP seed. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A new random seed.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Parses the base32 form authenticator apps show (at least 128 bits).
    pub fn from_base32(s: &str) -> Option<Self> {
        let bytes = Secret::try_from_base32(s.trim()).ok()?.as_ref().to_vec();
        (bytes.len() >= 16).then_some(Self(bytes))
    }

    /// The base32 form (no padding), as typed into an authenticator app.
    pub fn to_base32(&self) -> String {
        Secret::from(self.0.clone()).to_base32()
    }

    fn totp(&self, issuer: &str, account: &str) -> Option<Totp> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.clone())
            .with_issuer(Some(issuer))
            .with_account_name(account)
            .build()
            .ok()
    }

    /// The code an authenticator shows at `unix_secs`.
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.totp("ai-gateway", "key")
            .map(|t| t.generate(unix_secs).to_string())
            .unwrap_or_default()
    }

    /// The step number `code` belongs to, if it is valid at `unix_secs` (±1 step).
    pub fn verify(&self, code: &str, unix_secs: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.totp("ai-gateway", "key")?.check(code, unix_secs)
    }

    /// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…` for QR codes and manual entry.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> Option<String> {
        self.totp(issuer, account)?.to_url().ok()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(** redacted **)")
    }
}

impl Serialize for TotpSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base32())
    }
}

impl<'de> Deserialize<'de> for TotpSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_base32(&s)
            .ok_or_else(|| serde::de::Error::custom("expected a base32 TOTP seed of at least 128 bits"))
    }
}

/// `text` as a QR code drawn with Unicode half blocks, two modules per character cell, with
/// the quiet zone; dark modules on a light terminal background.
pub fn qr_text(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 seed, "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn codes_match_rfc_6238_vectors() {
        // The RFC lists 8-digit codes; the 6-digit code is their last six digits.
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(rfc_secret().code_at(t), &eight[2..], "t={t}");
        }
    }

    #[test]
    fn one_step_of_skew_is_accepted_and_two_are_not() {
        let s = rfc_secret();
        let t = 1_000_000_020; // step 33_333_334, 10 s into it
        let code = s.code_at(t);
        let step = t / STEP_SECS;
        assert_eq!(s.verify(&code, t), Some(step));
        assert_eq!(s.verify(&code, t - STEP_SECS), Some(step));
        assert_eq!(s.verify(&code, t + STEP_SECS), Some(step));
        // The last second of the next step still accepts it; the first of the one after, not.
        assert_eq!(s.verify(&code, (step + 2) * STEP_SECS - 1), Some(step));
        assert_eq!(s.verify(&code, (step + 2) * STEP_SECS), None);
        assert_eq!(s.verify(&code, (step - 1) * STEP_SECS - 1), None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let s = rfc_secret();
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert_eq!(s.verify(bad, 59), None, "{bad}");
        }
    }

    #[test]
    fn base32_round_trips_and_debug_is_redacted() {
        let s = TotpSecret::generate().unwrap();
        let b32 = s.to_base32();
        assert_eq!(TotpSecret::from_base32(&b32), Some(s.clone()));
        assert!(!format!("{s:?}").contains(&b32));
        assert_eq!(TotpSecret::from_base32("AAAA"), None, "too short");
    }

    #[test]
    fn provisioning_uri_is_google_authenticator_shaped() {
        let s = rfc_secret();
        let uri = s.provisioning_uri("ai-gateway", "alice").unwrap();
        assert!(uri.starts_with("otpauth://totp/ai-gateway:alice?"), "{uri}");
        assert!(uri.contains(&format!("secret={}", s.to_base32())), "{uri}");
        assert!(uri.contains("issuer=ai-gateway"), "{uri}");
        let qr = qr_text(&uri).unwrap();
        assert!(qr.lines().count() > 10);
    }
}
