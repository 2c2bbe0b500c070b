//! The real binary's security commands and behaviour: `keys add|list|revoke|totp-enroll`,
//! `audit verify`, the refusal to serve without authentication on a public address, and
//! secrets kept out of every log line even at trace level.
//!
//! Children run with a cleared environment and a private HOME, as in `tests/cli.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ai_gateway::auth::keys::{KeysFile, NewKey};
use ai_gateway::auth::{Clock, SystemClock};
use ai_gateway::mock_bedrock::{self, MOCK_ACCESS_KEY_ID, MOCK_SECRET_ACCESS_KEY, MockBedrock, MockConfig};
use bytes::Bytes;
use http::Request;
use serde_json::json;
use support::{TEST_MODELS, chat, send, unused_addr};
use tokio::net::TcpListener;

fn base_command(home: &Path) -> Command {
    let mut cmd = Command::new(support::gateway_bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn keys(home: &Path, file: &Path, args: &[&str]) -> (Output, String, String) {
    run(base_command(home).arg("keys").args(args).arg("--file").arg(file))
}

#[test]
fn keys_commands_print_a_key_once_and_store_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.yaml");
    let (out, stdout, stderr) = keys(
        dir.path(),
        &file,
        &[
            "add",
            "alice",
            "--models",
            "claude-3-haiku,nova-lite",
            "--rpm",
            "60",
            "--max-streams",
            "2",
        ],
    );
    assert!(out.status.success(), "{stderr}");
    let key = stdout
        .split_whitespace()
        .find(|w| w.starts_with("aigw-"))
        .unwrap()
        .to_owned();
    assert!(key.len() >= 48, "{key}");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(&key), "the key itself is stored:\n{stored}");
    assert!(stored.contains("sha256:"), "{stored}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let (out, stdout, _) = keys(dir.path(), &file, &["add", "alice"]);
    assert!(!out.status.success(), "duplicate name accepted: {stdout}");

    let (out, stdout, stderr) = keys(dir.path(), &file, &["totp-enroll", "alice"]);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("otpauth://totp/ai-gateway:alice?secret="),
        "{stdout}"
    );
    assert!(
        stdout.contains('▀') || stdout.contains('▄'),
        "no QR code:\n{stdout}"
    );

    let (out, stdout, _) = keys(dir.path(), &file, &["list"]);
    assert!(out.status.success());
    let row = stdout.lines().find(|l| l.starts_with("alice")).unwrap();
    assert!(
        row.contains("active") && row.contains("yes") && row.contains("claude-3-haiku,nova-lite"),
        "{row}"
    );
    assert!(!stdout.contains(&key));

    let (out, _, stderr) = keys(dir.path(), &file, &["revoke", "alice"]);
    assert!(out.status.success(), "{stderr}");
    let (_, stdout, _) = keys(dir.path(), &file, &["list"]);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("alice") && l.contains("revoked")),
        "{stdout}"
    );

    let (out, _, stderr) = keys(dir.path(), &file, &["revoke", "nobody"]);
    assert!(!out.status.success());
    assert!(stderr.contains("no key named `nobody`"), "{stderr}");
}

#[test]
fn keys_commands_find_the_file_through_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, "auth:\n  keys_file: keys.yaml\n").unwrap();
    let (out, _, stderr) = run(base_command(dir.path())
        .args(["keys", "add", "bob", "--config"])
        .arg(&config));
    assert!(out.status.success(), "{stderr}");
    assert!(dir.path().join("keys.yaml").exists());

    std::fs::write(&config, "listen: 127.0.0.1:8080\n").unwrap();
    let (out, _, stderr) = run(base_command(dir.path())
        .args(["keys", "list", "--config"])
        .arg(&config));
    assert!(!out.status.success());
    assert!(stderr.contains("no keys file"), "{stderr}");
}

#[test]
fn auth_off_on_a_public_address_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model-mapping.yaml"), TEST_MODELS).unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, "models: model-mapping.yaml\n").unwrap();
    let check = |extra: &[&str]| {
        run(base_command(dir.path())
            .args(["check-config", "--listen", "0.0.0.0:8080", "--config"])
            .arg(&config)
            .args(extra))
    };
    let (out, _, stderr) = check(&[]);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--allow-unauthenticated-non-loopback"),
        "{stderr}"
    );
    let (out, _, stderr) = check(&["--allow-unauthenticated-non-loopback"]);
    assert!(out.status.success(), "{stderr}");
}

struct Served {
    child: Child,
    addr: SocketAddr,
    _mock: MockBedrock,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// SIGTERM, wait for the exit, return stderr.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        stderr
    }
}

async fn serve(dir: &Path, config_text: &str, rust_log: &str) -> Served {
    std::fs::write(dir.join("model-mapping.yaml"), TEST_MODELS).unwrap();
    let config = dir.join("gateway.yaml");
    std::fs::write(&config, format!("models: model-mapping.yaml\n{config_text}")).unwrap();
    let mock = mock_bedrock::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        MockConfig::default(),
    );
    let addr = unused_addr();
    let child = base_command(dir)
        .args(["serve", "--config"])
        .arg(&config)
        .args([
            "--bedrock-endpoint",
            &mock.endpoint(),
            "--listen",
            &addr.to_string(),
        ])
        .env("AWS_ACCESS_KEY_ID", MOCK_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", MOCK_SECRET_ACCESS_KEY)
        .env("AWS_SESSION_TOKEN", "aws-session-token-must-not-leak")
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        addr,
        _mock: mock,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Some(status) = served.child.try_wait().unwrap() {
            let mut stderr = String::new();
            served
                .child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("gateway exited with {status}:\n{stderr}");
        }
        assert!(Instant::now() < deadline, "gateway did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served
}

fn add_keys(path: &Path) -> (String, String, String) {
    let mut file = KeysFile::default();
    let (plain, _) = file.add("plain", NewKey::default(), 1).unwrap();
    let new = NewKey {
        require_totp: true,
        ..NewKey::default()
    };
    let (totp_key, secret) = file.add("second-factor", new, 1).unwrap();
    file.save(path).unwrap();
    (
        plain.expose().to_owned(),
        totp_key.expose().to_owned(),
        secret.unwrap().to_base32(),
    )
}

async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> support::Reply {
    let mut builder =
        Request::post(format!("http://{addr}{path}")).header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(
        &support::client(),
        builder,
        Bytes::from(serde_json::to_vec(body).unwrap()),
    )
    .await
}

#[tokio::test]
async fn no_secret_reaches_the_logs_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, totp_key, seed) = add_keys(&dir.path().join("keys.yaml"));
    let served = serve(
        dir.path(),
        "auth:\n  keys_file: keys.yaml\naudit:\n  output: audit.log\n",
        "trace",
    )
    .await;
    let addr = served.addr;
    let hello = chat("claude-3-haiku", "hello", false);
    let bearer = format!("Bearer {plain}");
    assert_eq!(
        post(
            addr,
            "/v1/chat/completions",
            &[("authorization", &bearer)],
            &hello
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(addr, "/v1/chat/completions", &[("x-api-key", &plain)], &hello)
            .await
            .status,
        200
    );
    let wrong = format!("Bearer {plain}x");
    assert_eq!(
        post(addr, "/v1/chat/completions", &[("authorization", &wrong)], &hello)
            .await
            .status,
        401
    );

    let secret = ai_gateway::auth::totp::TotpSecret::from_base32(&seed).unwrap();
    let code = secret.code_at(SystemClock.now_secs());
    let totp_bearer = format!("Bearer {totp_key}");
    let reply = post(
        addr,
        "/v1/auth/session",
        &[("authorization", &totp_bearer)],
        &json!({ "code": code }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    let session_bearer = format!("Bearer {token}");
    assert_eq!(
        post(
            addr,
            "/v1/chat/completions",
            &[("authorization", &session_bearer)],
            &hello
        )
        .await
        .status,
        200
    );

    let stderr = served.stop();
    // Logging at its most verbose, and about these requests (a release build writes fewer of
    // its dependencies' trace lines than a debug one, so a count of lines says little).
    assert!(
        stderr.contains(" TRACE ")
            && stderr.contains("request rejected")
            && stderr.matches("ai_gateway::access").count() >= 3,
        "trace logging produced too little to mean anything:\n{stderr}"
    );
    for (what, secret) in [
        ("API key", &plain[5..]),
        ("TOTP key", &totp_key[5..]),
        ("session token", &token[6..]),
        ("TOTP seed", &seed),
        ("TOTP code", &format!("\"{code}\"")),
        ("AWS secret key", MOCK_SECRET_ACCESS_KEY),
        ("AWS session token", "aws-session-token-must-not-leak"),
    ] {
        assert!(!stderr.contains(secret), "{what} in the logs");
    }
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    for secret in [&plain[5..], &totp_key[5..], &token[6..], &seed] {
        assert!(!audit.contains(secret), "secret in the audit log");
    }
    assert!(audit.contains("\"key\":\"plain\""), "{audit}");
}

/// Serves with `audit` (the config's `audit:` section, indented), sends `requests` chat
/// completions with a valid key, stops; returns the audit log's path and the gateway's stderr.
async fn write_audit_log(dir: &Path, audit: &str, requests: usize) -> (PathBuf, String) {
    let (plain, _, _) = add_keys(&dir.join("keys.yaml"));
    let served = serve(
        dir,
        &format!("auth:\n  keys_file: keys.yaml\naudit:\n  output: audit.log\n{audit}"),
        "warn",
    )
    .await;
    let bearer = format!("Bearer {plain}");
    for _ in 0..requests {
        let reply = post(
            served.addr,
            "/v1/chat/completions",
            &[("authorization", &bearer)],
            &chat("claude-3-haiku", "hi", false),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    (dir.join("audit.log"), served.stop())
}

#[tokio::test]
async fn audit_verify_passes_a_written_log_and_names_the_edited_line() {
    let dir = tempfile::tempdir().unwrap();
    let (log, stderr) = write_audit_log(dir.path(), "", 3).await;
    let verify = |file: &Path| run(base_command(dir.path()).args(["audit", "verify"]).arg(file));

    let (out, stdout, stderr_v) = verify(&log);
    assert!(out.status.success(), "{stdout}{stderr_v}\ngateway:\n{stderr}");
    assert!(stdout.contains("4 lines, chain intact"), "{stdout}");

    let text = std::fs::read_to_string(&log).unwrap();
    let edited: PathBuf = dir.path().join("edited.log");
    std::fs::write(&edited, text.replacen("\"status\":200", "\"status\":500", 1)).unwrap();
    let (out, _, stderr_v) = verify(&edited);
    assert!(!out.status.success());
    assert!(
        stderr_v.contains("line 2: content does not match its hash"),
        "{stderr_v}"
    );

    let deleted: PathBuf = dir.path().join("deleted.log");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    std::fs::write(&deleted, lines.join("\n") + "\n").unwrap();
    let (out, _, stderr_v) = verify(&deleted);
    assert!(!out.status.success());
    assert!(stderr_v.contains("line 3: chain broken"), "{stderr_v}");
}

#[tokio::test]
async fn a_keyed_audit_log_verifies_with_its_key_file_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("audit.key"),
        "5f1c9a7e3b2d4c6a8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b\n",
    )
    .unwrap();
    let (log, stderr) = write_audit_log(dir.path(), "  key_file: audit.key\n", 1).await;

    let (out, _, stderr_v) = run(base_command(dir.path()).args(["audit", "verify"]).arg(&log));
    assert!(!out.status.success(), "a keyed log passed without its key");
    assert!(stderr_v.contains("line 1: the log is keyed"), "{stderr_v}");

    let (out, stdout, stderr_v) = run(base_command(dir.path())
        .args(["audit", "verify", "--key-file"])
        .arg(dir.path().join("audit.key"))
        .arg(&log));
    assert!(out.status.success(), "{stdout}{stderr_v}\ngateway:\n{stderr}");
    assert!(stdout.contains("2 lines, chain intact"), "{stdout}");
}
