//! The keys file that `ai-gateway keys` manages, and the in-memory key table built from it.
//!
//! The file holds each key's SHA-256 hash, never the key, with its allow-list, limits and TOTP
//! seed. It is written atomically (temp file, fsync, rename) with mode 0600, so the gateway's
//! reloader never reads half a file.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Token;
use super::limits::KeyLimits;
use super::totp::TotpSecret;

/// Every API key starts with this, so a leaked key is easy to recognise and scan for.
pub const KEY_PREFIX: &str = "aigw-";

/// Random bytes in a key (256 bits).
const KEY_RANDOM_BYTES: usize = 32;

/// Longest key name.
const MAX_NAME_LEN: usize = 64;

const FILE_HEADER: &str = "# Managed by `ai-gateway keys`. Holds SHA-256 hashes of API keys, never the keys.\n\
# TOTP seeds are secrets: keep this file readable by the gateway's user only (mode 0600).\n";

/// What went wrong with the keys file.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a valid keys file.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        message: String,
    },
    /// No key of that name.
    #[error("no key named `{0}`")]
    UnknownKey(String),
    /// A key of that name exists (possibly revoked).
    #[error("a key named `{0}` already exists; choose another name")]
    DuplicateName(String),
    /// The name has characters outside `A-Z a-z 0-9 . _ -` or is too long.
    #[error("invalid key name `{0}`: use 1 to 64 of A-Z a-z 0-9 . _ -")]
    BadName(String),
    /// The system random source failed.
    #[error("cannot generate random bytes: {0}")]
    Random(String),
}

/// SHA-256 of a key, stored as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Hashes a presented key or token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("sha256:")?;
        let mut out = [0u8; 32];
        if hex.len() != 64 {
            return None;
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for KeyHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("expected `sha256:` and 64 hex digits"))
    }
}

/// One key as stored in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Unique name; appears in logs and the audit log instead of the key.
    pub name: String,
    /// SHA-256 of the key.
    pub hash: KeyHash,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Model aliases the key may use; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens (prompt + completion) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Streams open at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<u32>,
    /// Whether the key must be exchanged with a TOTP code for a session token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_totp: bool,
    /// The TOTP seed (base32), once enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<TotpSecret>,
    /// Revocation time, Unix seconds; a revoked key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<u64>,
}

impl KeyRecord {
    /// The key's limits.
    pub fn limits(&self) -> KeyLimits {
        KeyLimits {
            rpm: self.rpm,
            tpm: self.tpm,
            max_streams: self.max_streams,
        }
    }
}

/// Options for a new key.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    /// Model allow-list; empty means all.
    pub models: Vec<String>,
    /// Limits.
    pub limits: KeyLimits,
    /// Require a TOTP session (a seed is enrolled at once).
    pub require_totp: bool,
}

/// The whole keys file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// Every key, revoked ones included.
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
}

impl KeysFile {
    /// Reads and checks a keys file.
    pub fn load(path: &Path) -> Result<Self, KeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| KeysError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Reads a keys file, or starts an empty one if it does not exist yet (`keys add`).
    pub fn load_or_new(path: &Path) -> Result<Self, KeysError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            _ => Self::load(path),
        }
    }

    /// Parses and checks YAML (JSON is YAML too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| e.to_string())?
        };
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        for (i, key) in file.keys.iter().enumerate() {
            if !valid_name(&key.name) {
                problems.push(format!("keys[{i}].name: `{}` is not a valid key name", key.name));
            }
            if !names.insert(key.name.as_str()) {
                problems.push(format!("keys[{i}].name: `{}` appears twice", key.name));
            }
            if key.require_totp && key.totp_secret.is_none() {
                problems.push(format!(
                    "keys[{i}]: `{}` requires TOTP but has no totp_secret (run `ai-gateway keys totp-enroll {}`)",
                    key.name, key.name
                ));
            }
            if let Err(e) = key.limits().check() {
                problems.push(format!("keys[{i}].{e}"));
            }
        }
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(problems.join("; "))
        }
    }

    /// Writes the file atomically: a temp file in the same folder, fsync, rename, fsync of the
    /// folder. The temp file is created with mode 0600 before any secret is written to it.
    pub fn save(&self, path: &Path) -> Result<(), KeysError> {
        let io = |source| KeysError::Io {
            path: path.to_owned(),
            source,
        };
        let yaml = serde_yaml::to_string(self).map_err(|e| io(std::io::Error::other(e)))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            file_name.as_deref().unwrap_or("keys"),
            std::process::id()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let result = (|| {
            let mut file = options.open(&tmp)?;
            file.write_all(FILE_HEADER.as_bytes())?;
            file.write_all(yaml.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename is durable only once the folder entry is.
            #[cfg(unix)]
            std::fs::File::open(&dir)?.sync_all()?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// Adds a key; returns it (to print once) and, when TOTP is required, the new seed.
    pub fn add(
        &mut self,
        name: &str,
        new: NewKey,
        now_secs: u64,
    ) -> Result<(Token, Option<TotpSecret>), KeysError> {
        if !valid_name(name) {
            return Err(KeysError::BadName(name.to_owned()));
        }
        if self.keys.iter().any(|k| k.name == name) {
            return Err(KeysError::DuplicateName(name.to_owned()));
        }
        new.limits.check().map_err(|message| KeysError::Invalid {
            path: PathBuf::new(),
            message,
        })?;
        let token = new_token(KEY_PREFIX)?;
        let totp_secret = if new.require_totp {
            Some(TotpSecret::generate().map_err(|e| KeysError::Random(e.to_string()))?)
        } else {
            None
        };
        self.keys.push(KeyRecord {
            name: name.to_owned(),
            hash: KeyHash::of(token.expose()),
            created: now_secs,
            models: new.models,
            rpm: new.limits.rpm,
            tpm: new.limits.tpm,
            max_streams: new.limits.max_streams,
            require_totp: new.require_totp,
            totp_secret: totp_secret.clone(),
            revoked: None,
        });
        Ok((token, totp_secret))
    }

    /// Marks a key revoked (kept in the file so its name is not reused by mistake).
    pub fn revoke(&mut self, name: &str, now_secs: u64) -> Result<(), KeysError> {
        let key = self.get_mut(name)?;
        key.revoked.get_or_insert(now_secs);
        Ok(())
    }

    /// Gives a key a new TOTP seed and requires it from now on.
    pub fn enroll_totp(&mut self, name: &str) -> Result<TotpSecret, KeysError> {
        let secret = TotpSecret::generate().map_err(|e| KeysError::Random(e.to_string()))?;
        let key = self.get_mut(name)?;
        key.totp_secret = Some(secret.clone());
        key.require_totp = true;
        Ok(secret)
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut KeyRecord, KeysError> {
        self.keys
            .iter_mut()
            .find(|k| k.name == name)
            .ok_or_else(|| KeysError::UnknownKey(name.to_owned()))
    }
}

/// `prefix` followed by 32 random bytes in unpadded base64url.
pub(crate) fn new_token(prefix: &str) -> Result<Token, KeysError> {
    use base64::Engine;
    let mut bytes = [0u8; KEY_RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| KeysError::Random(e.to_string()))?;
    let mut s = String::with_capacity(prefix.len() + 43);
    s.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
    Ok(Token::new(s))
}

/// Key names: 1 to 64 of `A-Z a-z 0-9 . _ -` (safe in logs, YAML and otpauth URIs).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One key as the gateway uses it.
#[derive(Debug)]
pub struct KeyEntry {
    /// The key's name.
    pub name: Box<str>,
    hash: KeyHash,
    /// Allowed model aliases; `None` means all.
    pub models: Option<HashSet<Box<str>>>,
    /// Limits.
    pub limits: KeyLimits,
    /// Sessions only.
    pub require_totp: bool,
    /// The TOTP seed.
    pub totp: Option<TotpSecret>,
    /// Refused.
    pub revoked: bool,
}

impl KeyEntry {
    /// Whether the key may use `alias`.
    pub fn may_use(&self, alias: &str) -> bool {
        self.models.as_ref().is_none_or(|models| models.contains(alias))
    }
}

/// The keys in force, swapped whole on reload.
#[derive(Debug, Default)]
pub struct KeyTable {
    entries: Vec<Arc<KeyEntry>>,
    by_name: HashMap<Box<str>, Arc<KeyEntry>>,
}

impl KeyTable {
    /// Builds the table from a checked file.
    pub fn new(file: &KeysFile) -> Self {
        let entries: Vec<Arc<KeyEntry>> = file
            .keys
            .iter()
            .map(|k| {
                Arc::new(KeyEntry {
                    name: k.name.as_str().into(),
                    hash: k.hash,
                    models: (!k.models.is_empty())
                        .then(|| k.models.iter().map(|m| m.as_str().into()).collect()),
                    limits: k.limits(),
                    require_totp: k.require_totp,
                    totp: k.totp_secret.clone(),
                    revoked: k.revoked.is_some(),
                })
            })
            .collect();
        let by_name = entries.iter().map(|e| (e.name.clone(), Arc::clone(e))).collect();
        Self { entries, by_name }
    }

    /// The entry whose hash matches `token`, revoked or not.
    ///
    /// Every entry is compared, each in constant time, so the time taken does not depend on
    /// which entry matched or how much of a hash did. The table is as small as the keys file.
    pub fn find(&self, token: &str) -> Option<&Arc<KeyEntry>> {
        let digest = KeyHash::of(token);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.hash.0.ct_eq(&digest.0)) {
                found = Some(entry);
            }
        }
        found
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<KeyEntry>> {
        self.by_name.get(name)
    }

    /// Number of keys, revoked included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u32>) -> KeyLimits {
        KeyLimits {
            rpm,
            ..KeyLimits::default()
        }
    }

    #[test]
    fn added_key_is_found_by_its_value_and_stored_only_as_a_hash() {
        let mut file = KeysFile::default();
        let (key, secret) = file
            .add(
                "alice",
                NewKey {
                    models: vec!["claude-3-haiku".into()],
                    limits: limits(Some(60)),
                    require_totp: false,
                },
                1,
            )
            .unwrap();
        assert!(secret.is_none());
        assert!(key.expose().starts_with(KEY_PREFIX));
        assert!(key.expose().len() >= KEY_PREFIX.len() + 43);
        let yaml = serde_yaml::to_string(&file).unwrap();
        assert!(!yaml.contains(&key.expose()[KEY_PREFIX.len()..]), "{yaml}");
        assert!(yaml.contains("rpm: 60"), "{yaml}");
        let table = KeyTable::new(&KeysFile::parse(&yaml).unwrap());
        let entry = table.find(key.expose()).unwrap();
        assert_eq!(&*entry.name, "alice");
        assert!(entry.may_use("claude-3-haiku") && !entry.may_use("claude-3-opus"));
        assert!(table.find("aigw-not-a-key").is_none());
    }

    #[test]
    fn names_are_unique_and_restricted() {
        let mut file = KeysFile::default();
        file.add("a", NewKey::default(), 1).unwrap();
        assert!(matches!(
            file.add("a", NewKey::default(), 1),
            Err(KeysError::DuplicateName(_))
        ));
        for bad in ["", "a b", "a:b", "ä", &"x".repeat(65)] {
            assert!(matches!(
                file.add(bad, NewKey::default(), 1),
                Err(KeysError::BadName(_))
            ));
        }
    }

    #[test]
    fn revoke_and_enroll_need_an_existing_key() {
        let mut file = KeysFile::default();
        assert!(matches!(file.revoke("nobody", 1), Err(KeysError::UnknownKey(_))));
        file.add("bob", NewKey::default(), 1).unwrap();
        file.enroll_totp("bob").unwrap();
        file.revoke("bob", 7).unwrap();
        let table = KeyTable::new(&file);
        let bob = table.get("bob").unwrap();
        assert!(bob.revoked && bob.require_totp && bob.totp.is_some());
    }

    #[test]
    fn parse_reports_every_problem() {
        let text = "keys:\n- name: a b\n  hash: sha256:0000000000000000000000000000000000000000000000000000000000000000\n  created: 1\n  require_totp: true\n- name: a b\n  hash: sha256:0000000000000000000000000000000000000000000000000000000000000000\n  created: 1\n  rpm: 0\n";
        let err = KeysFile::parse(text).unwrap_err();
        assert!(err.contains("not a valid key name"), "{err}");
        assert!(err.contains("appears twice"), "{err}");
        assert!(err.contains("no totp_secret"), "{err}");
        assert!(err.contains("rpm"), "{err}");
        assert!(KeysFile::parse("keys:\n- name: a\n  hash: md5:00\n  created: 1\n").is_err());
        assert!(KeysFile::parse("").unwrap().keys.is_empty());
    }

    #[test]
    fn save_is_atomic_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.yaml");
        let mut file = KeysFile::default();
        file.add("a", NewKey::default(), 1).unwrap();
        file.save(&path).unwrap();
        file.add("b", NewKey::default(), 2).unwrap();
        file.save(&path).unwrap();
        assert_eq!(KeysFile::load(&path).unwrap().keys.len(), 2);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp file left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
