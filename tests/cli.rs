//! The real binary: `serve` with its flags and `AI_GATEWAY_*` variables, AWS credentials from
//! each source of the default chain that can be exercised on loopback (environment, shared
//! profile, container credentials endpoint), Bedrock API keys, `check-config`, `/ready`, and
//! SIGTERM.
//!
//! Every child runs with a cleared environment, `HOME` in a temp dir, and instance metadata
//! disabled, so nothing here reads the developer's AWS files or leaves loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ai_gateway::mock_bedrock::{self, MOCK_ACCESS_KEY_ID, MOCK_SECRET_ACCESS_KEY, MockBedrock, MockConfig};
use serde_json::Value;
use support::{TEST_MODELS, chat, unused_addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Gateway {
    child: Child,
    addr: SocketAddr,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl Gateway {
    async fn chat(&self, text: &str) -> support::Reply {
        let body = serde_json::to_vec(&chat("claude-3-haiku", text, false)).unwrap();
        let request = http::Request::post(format!("http://{}/v1/chat/completions", self.addr))
            .header("content-type", "application/json");
        support::send(&self.client, request, body.into()).await
    }

    async fn get(&self, path: &str) -> support::Reply {
        support::send(
            &self.client,
            http::Request::get(format!("http://{}{path}", self.addr)),
            bytes::Bytes::new(),
        )
        .await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A clean environment for the child: no inherited AWS settings, no IMDS, a private HOME.
fn base_command(home: &Path) -> Command {
    let mut cmd = Command::new(support::gateway_bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn write_files(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("model-mapping.yaml"), TEST_MODELS).unwrap();
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        "models: model-mapping.yaml\nbedrock:\n  region: us-east-1\n",
    )
    .unwrap();
    config
}

async fn start(mut cmd: Command) -> Gateway {
    let addr = unused_addr();
    cmd.arg("--listen").arg(addr.to_string());
    spawn_and_wait(cmd, addr).await
}

async fn spawn_and_wait(mut cmd: Command, addr: SocketAddr) -> Gateway {
    let child = cmd.spawn().unwrap();
    let mut gateway = Gateway {
        child,
        addr,
        client: support::client(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            gateway
                .child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("gateway exited with {status}:\n{stderr}");
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return gateway;
        }
        assert!(Instant::now() < deadline, "gateway did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn mock(config: MockConfig) -> MockBedrock {
    mock_bedrock::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap(), config)
}

/// `serve` in front of a new mock, with the mock's key pair in the environment.
async fn serve_with_env_credentials(home: &Path, config: &Path) -> (MockBedrock, Gateway) {
    let mock = mock(MockConfig::default()).await;
    let mut cmd = base_command(home);
    serve_args(&mut cmd, config, &mock);
    cmd.env("AWS_ACCESS_KEY_ID", MOCK_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", MOCK_SECRET_ACCESS_KEY);
    (mock, start(cmd).await)
}

fn serve_args(cmd: &mut Command, config: &Path, mock: &MockBedrock) {
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--bedrock-endpoint")
        .arg(mock.endpoint());
}

#[tokio::test]
async fn serve_signs_with_credentials_from_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_files(dir.path());
    let (_mock, gw) = serve_with_env_credentials(dir.path(), &config).await;
    let reply = gw.chat("hello").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(gw.get("/ready").await.status, 200);
}

#[tokio::test]
async fn serve_signs_with_a_shared_profile_and_its_session_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_files(dir.path());
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[gateway]\naws_access_key_id = {MOCK_ACCESS_KEY_ID}\naws_secret_access_key = {MOCK_SECRET_ACCESS_KEY}\naws_session_token = profile-session-token\n"
        ),
    )
    .unwrap();
    let mock = mock(MockConfig::default()).await;
    let mut cmd = base_command(dir.path());
    serve_args(&mut cmd, &config, &mock);
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_PROFILE", "gateway");
    let gw = start(cmd).await;
    let reply = gw.chat("hello").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let recorded = mock.last_request().unwrap();
    assert_eq!(
        recorded.header("x-amz-security-token"),
        Some("profile-session-token")
    );
    assert!(
        recorded
            .header("authorization")
            .unwrap()
            .contains("x-amz-security-token")
    );
}

/// Serves container credentials (the ECS / EKS Pod Identity endpoint) on loopback.
async fn credentials_endpoint(token: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = format!(
        r#"{{"AccessKeyId":"{MOCK_ACCESS_KEY_ID}","SecretAccessKey":"{MOCK_SECRET_ACCESS_KEY}","Token":"{token}","Expiration":"2099-01-01T00:00:00Z"}}"#
    );
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn serve_signs_with_container_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_files(dir.path());
    let (creds_addr, _server) = credentials_endpoint("container-session-token").await;
    let mock = mock(MockConfig::default()).await;
    let mut cmd = base_command(dir.path());
    serve_args(&mut cmd, &config, &mock);
    cmd.env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("http://{creds_addr}/v1/credentials"),
    );
    let gw = start(cmd).await;
    let reply = gw.chat("hello").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        mock.last_request().unwrap().header("x-amz-security-token"),
        Some("container-session-token")
    );
}

#[tokio::test]
async fn bedrock_api_key_replaces_sigv4() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_files(dir.path());
    let mock = mock(MockConfig {
        bearer_token: Some("bedrock-api-key-test".into()),
        ..MockConfig::default()
    })
    .await;
    let mut cmd = base_command(dir.path());
    serve_args(&mut cmd, &config, &mock);
    cmd.env("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-test");
    let gw = start(cmd).await;
    let reply = gw.chat("hello").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let recorded = mock.last_request().unwrap();
    assert_eq!(
        recorded.header("authorization"),
        Some("Bearer bedrock-api-key-test")
    );
    assert_eq!(recorded.header("x-amz-date"), None);
}

#[tokio::test]
async fn environment_variables_override_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_files(dir.path());
    // The file points at a region and endpoint that must lose to the environment.
    std::fs::write(
        &config,
        "models: nowhere.yaml\nbedrock:\n  region: eu-west-1\n  endpoint: http://127.0.0.1:1\n",
    )
    .unwrap();
    let mock = mock(MockConfig {
        region: Some("us-west-2".into()),
        ..MockConfig::default()
    })
    .await;
    let addr = unused_addr();
    let mut cmd = base_command(dir.path());
    cmd.arg("serve")
        .env("AI_GATEWAY_CONFIG", &config)
        .env("AI_GATEWAY_LISTEN", addr.to_string())
        .env("AI_GATEWAY_BEDROCK_ENDPOINT", mock.endpoint())
        .env("AI_GATEWAY_REGION", "us-west-2")
        .env("AI_GATEWAY_MODELS", dir.path().join("model-mapping.yaml"))
        .env("AWS_ACCESS_KEY_ID", MOCK_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", MOCK_SECRET_ACCESS_KEY);
    let gw = spawn_and_wait(cmd, addr).await;
    let reply = gw.chat("hello").await;
    assert_eq!(
        reply.status,
        200,
        "the mock only accepts us-west-2 signatures: {}",
        reply.text()
    );
}

#[tokio::test]
async fn ready_is_503_without_credentials_while_health_stays_200() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_files(dir.path());
    let mock = mock(MockConfig::default()).await;
    let mut cmd = base_command(dir.path());
    serve_args(&mut cmd, &config, &mock);
    let gw = start(cmd).await;
    assert_eq!(gw.get("/health").await.status, 200);
    let ready = gw.get("/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let v: Value = ready.json();
    assert_eq!(v["status"], "not_ready");
    assert!(v["reason"].as_str().unwrap().contains("credentials"), "{v}");
    let reply = gw.chat("hello").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.error()["code"], "upstream_auth_error");
}

#[test]
fn check_config_reports_every_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("model-mapping.yaml"),
        "models:\n  bad:\n    model_id: x\n    region: Nope\n",
    )
    .unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        "models: model-mapping.yaml\nbedrock:\n  region: moon\ntimeouts:\n  idle_ms: 0\n",
    )
    .unwrap();
    let out = base_command(dir.path())
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in ["bedrock.region", "timeouts.idle_ms", "models.bad"] {
        assert!(stderr.contains(key), "{key} not reported:\n{stderr}");
    }
}

#[test]
fn check_config_accepts_the_shipped_configuration() {
    let home = tempfile::tempdir().unwrap();
    let out = base_command(home.path())
        .arg("check-config")
        .arg("--config")
        .arg(support::repo_path("configs/gateway.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_files(dir.path());
    let (_mock, mut gw) = serve_with_env_credentials(dir.path(), &config).await;
    assert_eq!(gw.get("/health").await.status, 200);
    let pid = gw.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn mock_bedrock_command_serves_and_checks_signatures() {
    let home = tempfile::tempdir().unwrap();
    let addr = unused_addr();
    let mut cmd = base_command(home.path());
    cmd.arg("mock-bedrock").arg("--listen").arg(addr.to_string());
    let mock = spawn_and_wait(cmd, addr).await;
    // Unsigned: refused as Bedrock would.
    let request = http::Request::post(format!("http://{addr}/model/amazon.nova-lite-v1%3A0/converse"))
        .header("content-type", "application/json");
    let reply = support::send(&mock.client, request, bytes::Bytes::from_static(b"{}")).await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.headers["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("MissingAuthenticationTokenException")
    );
}

#[tokio::test]
async fn sigterm_lets_an_open_stream_finish_and_refuses_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_files(dir.path());
    let (_mock, mut gw) = serve_with_env_credentials(dir.path(), &config).await;

    let body = serde_json::to_vec(&chat(
        "claude-3-haiku",
        "x mock:frames=10 mock:delay_ms=100",
        true,
    ))
    .unwrap();
    let request = http::Request::post(format!("http://{}/v1/chat/completions", gw.addr))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = gw.client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut reader = support::SseReader::new(response);
    reader.next().await.expect("first chunk before the signal");

    let pid = gw.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The listener closes at once; the open stream keeps going.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(gw.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut rest = Vec::new();
    while let Some((data, _)) = reader.next().await {
        rest.push(data);
    }
    assert_eq!(
        rest.last().map(String::as_str),
        Some("[DONE]"),
        "the in-flight stream completed: {rest:?}"
    );
    assert_eq!(support::content_of(&rest).matches("tok").count(), 10);

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after the drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn sighup_reloads_the_model_table() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_files(dir.path());
    std::fs::write(&config, "models: model-mapping.yaml\nmodels_watch_ms: 0\n").unwrap();
    let (_mock, gw) = serve_with_env_credentials(dir.path(), &config).await;
    std::fs::write(
        dir.path().join("model-mapping.yaml"),
        "models:\n  only-this:\n    model_id: amazon.nova-lite-v1:0\n",
    )
    .unwrap();
    let pid = gw.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = gw.get("/v1/models").await.json();
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        if ids == ["only-this"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the table: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
