use super::*;
use crate::auth::keys::NewKey;
use crate::auth::limits::KeyLimits;
use crate::auth::totp::{STEP_SECS, TotpSecret};

/// 2023-11-14T22:13:00Z: the start of a TOTP step.
const T0_SECS: u64 = 1_699_999_980;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    clock: ManualClock,
    auth: Auth,
}

fn mk_auth(setup: impl FnOnce(&mut KeysFile)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.yaml");
    let mut file = KeysFile::default();
    setup(&mut file);
    file.save(&path).unwrap();
    let clock = ManualClock::new(T0_SECS * 1000);
    let config = AuthConfig {
        keys_file: Some(path.clone()),
        totp_max_failures: 3,
        totp_lockout_secs: 300,
        ..AuthConfig::default()
    };
    let auth = Auth::from_config(&config, Arc::new(clock.clone())).unwrap();
    Fixture {
        _dir: dir,
        path,
        clock,
        auth,
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    h
}

fn add(file: &mut KeysFile, name: &str, totp: bool) -> (String, Option<TotpSecret>) {
    let (key, secret) = file
        .add(
            name,
            NewKey {
                require_totp: totp,
                ..NewKey::default()
            },
            1,
        )
        .unwrap();
    (key.expose().to_owned(), secret)
}

#[test]
fn bearer_and_x_api_key_are_both_accepted() {
    let mut key = String::new();
    let f = mk_auth(|file| key = add(file, "alice", false).0);
    assert_eq!(f.auth.authenticate(&bearer(&key)).unwrap().name(), "alice");
    let mut h = HeaderMap::new();
    h.insert("x-api-key", key.parse().unwrap());
    assert_eq!(f.auth.authenticate(&h).unwrap().name(), "alice");
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, format!("bearer  {key} ").parse().unwrap());
    assert!(f.auth.authenticate(&h).is_ok(), "scheme is case-insensitive");
}

#[test]
fn missing_unknown_and_malformed_credentials_are_refused() {
    let f = mk_auth(|file| {
        add(file, "alice", false);
    });
    assert_eq!(
        f.auth.authenticate(&HeaderMap::new()).unwrap_err(),
        AuthFailure::MissingKey
    );
    assert_eq!(
        f.auth.authenticate(&bearer("")).unwrap_err(),
        AuthFailure::MissingKey
    );
    assert_eq!(
        f.auth.authenticate(&bearer("aigw-nope")).unwrap_err(),
        AuthFailure::InvalidKey
    );
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_eq!(f.auth.authenticate(&h).unwrap_err(), AuthFailure::InvalidKey);
}

#[test]
fn revocation_in_the_file_is_picked_up_on_reload() {
    let mut key = String::new();
    let f = mk_auth(|file| key = add(file, "alice", false).0);
    f.auth.authenticate(&bearer(&key)).unwrap();
    let mut file = KeysFile::load(&f.path).unwrap();
    file.revoke("alice", 2).unwrap();
    file.save(&f.path).unwrap();
    assert!(f.auth.reload_if_changed().unwrap());
    assert_eq!(
        f.auth.authenticate(&bearer(&key)).unwrap_err(),
        AuthFailure::InvalidKey
    );
    assert!(
        !f.auth.reload_if_changed().unwrap(),
        "unchanged file is not re-read"
    );
}

#[test]
fn an_invalid_file_keeps_the_keys_in_force() {
    let mut key = String::new();
    let f = mk_auth(|file| key = add(file, "alice", false).0);
    std::fs::write(&f.path, "keys: [oops").unwrap();
    assert!(f.auth.reload_if_changed().is_err());
    f.auth.authenticate(&bearer(&key)).unwrap();
}

#[test]
fn totp_key_needs_a_session_and_a_code_works_once() {
    let mut enrolled = None;
    let f = mk_auth(|file| enrolled = Some(add(file, "bob", true)));
    let (key, secret) = enrolled.unwrap();
    let secret = secret.unwrap();
    assert_eq!(
        f.auth.authenticate(&bearer(&key)).unwrap_err(),
        AuthFailure::SessionRequired
    );
    let principal = f.auth.authenticate_key(&bearer(&key)).unwrap();
    let code = secret.code_at(T0_SECS);
    let session = f.auth.open_session(&principal, &code).unwrap();
    assert_eq!(session.expires_ms, (T0_SECS + 12 * 3600) * 1000);
    assert_eq!(
        f.auth
            .authenticate(&bearer(session.token.expose()))
            .unwrap()
            .name(),
        "bob"
    );
    // The same code again, even later in its window, is a replay.
    f.clock.advance(Duration::from_secs(10));
    assert_eq!(
        f.auth.open_session(&principal, &code).unwrap_err(),
        Refusal::Replayed { locked: false }
    );
    // The previous step's code is older than the one used: also refused.
    let older = secret.code_at(T0_SECS - STEP_SECS);
    assert!(f.auth.open_session(&principal, &older).is_err());
    // The next step's code works.
    f.clock.advance(Duration::from_secs(STEP_SECS));
    let next = secret.code_at(f.clock.now_secs());
    f.auth.open_session(&principal, &next).unwrap();
}

#[test]
fn sessions_expire_and_die_with_their_key() {
    let mut enrolled = None;
    let f = mk_auth(|file| enrolled = Some(add(file, "bob", true)));
    let (key, secret) = enrolled.unwrap();
    let principal = f.auth.authenticate_key(&bearer(&key)).unwrap();
    let session = f
        .auth
        .open_session(&principal, &secret.unwrap().code_at(T0_SECS))
        .unwrap();
    let token = session.token.expose().to_owned();
    f.clock.set_ms(session.expires_ms - 1);
    f.auth.authenticate(&bearer(&token)).unwrap();
    f.clock.set_ms(session.expires_ms);
    assert_eq!(
        f.auth.authenticate(&bearer(&token)).unwrap_err(),
        AuthFailure::InvalidKey
    );

    f.clock.set_ms(T0_SECS * 1000 + 60_000);
    let secret = f.auth.table().get("bob").unwrap().totp.clone().unwrap();
    let session = f
        .auth
        .open_session(&principal, &secret.code_at(f.clock.now_secs()))
        .unwrap();
    let mut file = KeysFile::load(&f.path).unwrap();
    file.revoke("bob", 3).unwrap();
    file.save(&f.path).unwrap();
    f.auth.reload_if_changed().unwrap();
    assert_eq!(
        f.auth.authenticate(&bearer(session.token.expose())).unwrap_err(),
        AuthFailure::InvalidKey
    );
}

#[test]
fn repeated_wrong_codes_lock_the_key_out_for_a_while() {
    let mut enrolled = None;
    let f = mk_auth(|file| enrolled = Some(add(file, "bob", true)));
    let (key, secret) = enrolled.unwrap();
    let secret = secret.unwrap();
    let principal = f.auth.authenticate_key(&bearer(&key)).unwrap();
    let good = secret.code_at(T0_SECS);
    let wrong = &(0..10)
        .map(|n| format!("{n:06}"))
        .find(|c| secret.verify(c, T0_SECS).is_none())
        .unwrap();
    assert_eq!(
        f.auth.open_session(&principal, wrong).unwrap_err(),
        Refusal::Wrong { locked: false }
    );
    f.auth.open_session(&principal, wrong).unwrap_err();
    assert_eq!(
        f.auth.open_session(&principal, wrong).unwrap_err(),
        Refusal::Wrong { locked: true }
    );
    // Locked: even the right code is refused, with the time left.
    assert_eq!(
        f.auth.open_session(&principal, &good).unwrap_err(),
        Refusal::LockedOut {
            retry_after: Duration::from_secs(300)
        }
    );
    f.clock.advance(Duration::from_secs(300));
    let now = f.clock.now_secs();
    f.auth.open_session(&principal, &secret.code_at(now)).unwrap();
}

#[test]
fn idle_key_state_is_swept_but_not_while_in_use() {
    let mut key = String::new();
    let f = mk_auth(|file| key = add(file, "alice", false).0);
    let principal = f.auth.authenticate(&bearer(&key)).unwrap();
    assert_eq!(f.auth.tracked_keys(), 1);
    f.clock.advance(Duration::from_secs(3600));
    f.auth.sweep();
    assert_eq!(f.auth.tracked_keys(), 1, "a principal is still held");
    drop(principal);
    f.auth.sweep();
    assert_eq!(f.auth.tracked_keys(), 0);
}

#[test]
fn limits_come_from_the_key() {
    let mut key = String::new();
    let f = mk_auth(|file| {
        key = file
            .add(
                "metered",
                NewKey {
                    limits: KeyLimits {
                        rpm: Some(1),
                        ..KeyLimits::default()
                    },
                    ..NewKey::default()
                },
                1,
            )
            .unwrap()
            .0
            .expose()
            .to_owned();
    });
    let p = f.auth.authenticate(&bearer(&key)).unwrap();
    p.admit().0.unwrap();
    assert!(matches!(
        p.admit().0,
        Err(Error::RateLimited {
            limit: RateLimit::Requests,
            ..
        })
    ));
    f.clock.advance(Duration::from_secs(60));
    p.admit().0.unwrap();
}

#[test]
fn tokens_never_show_in_debug_output() {
    let token = Token::new("aigw-secret-value".to_owned());
    assert!(!format!("{token:?}").contains("secret-value"));
}
