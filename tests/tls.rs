//! Server TLS over real sockets with a CA made in the test (rcgen): h2 and HTTP/1.1 chosen by
//! ALPN, client certificates (mTLS), and certificate reload, in process and on SIGHUP in the
//! real binary (which also reopens the audit log and re-reads the keys file).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_gateway::auth::SystemClock;
use ai_gateway::config::Config;
use ai_gateway::mock_bedrock::{self, MOCK_ACCESS_KEY_ID, MOCK_SECRET_ACCESS_KEY, MockConfig};
use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{TEST_MODELS, TestEnv, unused_addr};
use tokio::net::TcpListener;

/// A CA and what it signed, as PEM.
struct Ca {
    cert_pem: String,
    params: CertificateParams,
    key: KeyPair,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert_pem = params.self_signed(&key).unwrap().pem();
        Self {
            cert_pem,
            params,
            key,
        }
    }

    fn sign(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("client"));
        params.extended_key_usages = vec![usage];
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn server(&self) -> Leaf {
        self.sign(&["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self, name: &str) -> Leaf {
        self.sign(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

type TlsClient =
    Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>;

fn tls_client(ca: &Ca, identity: Option<&Leaf>, h2: bool) -> TlsClient {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1();
    let https = if h2 {
        https.enable_http2().build()
    } else {
        https.build()
    };
    Client::builder(TokioExecutor::new()).build(https)
}

async fn get(
    client: &TlsClient,
    addr: SocketAddr,
    path: &str,
) -> Result<(http::StatusCode, Version), String> {
    get_as(client, addr, path, None).await
}

async fn get_as(
    client: &TlsClient,
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
) -> Result<(http::StatusCode, Version), String> {
    let mut request = Request::get(format!("https://127.0.0.1:{}{path}", addr.port()));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let (status, version) = (response.status(), response.version());
    response.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok((status, version))
}

fn write_files(dir: &Path, server: &Leaf, client_ca: Option<&Ca>) {
    std::fs::write(dir.join("cert.pem"), &server.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &server.key_pem).unwrap();
    if let Some(ca) = client_ca {
        std::fs::write(dir.join("clients.pem"), &ca.cert_pem).unwrap();
    }
}

async fn start_tls(dir: &Path, mtls: bool) -> (TestEnv, ai_gateway::service::Gateway) {
    let dir = dir.to_owned();
    TestEnv::start_with_clock(Arc::new(SystemClock), move |c: &mut Config| {
        c.tls.cert_file = Some(dir.join("cert.pem"));
        c.tls.key_file = Some(dir.join("key.pem"));
        if mtls {
            c.tls.client_ca_file = Some(dir.join("clients.pem"));
        }
    })
    .await
}

#[tokio::test]
async fn tls_offers_h2_and_http1_by_alpn_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    write_files(dir.path(), &ca.server(), None);
    let (env, _gw) = start_tls(dir.path(), false).await;
    let addr = env.gateway.addr();

    assert_eq!(
        get(&tls_client(&ca, None, true), addr, "/health").await.unwrap(),
        (http::StatusCode::OK, Version::HTTP_2)
    );
    assert_eq!(
        get(&tls_client(&ca, None, false), addr, "/health").await.unwrap(),
        (http::StatusCode::OK, Version::HTTP_11)
    );
    // A client that does not trust the CA gets nowhere.
    assert!(
        get(&tls_client(&Ca::new("other CA"), None, true), addr, "/health")
            .await
            .is_err()
    );
    // Nor does plain HTTP on the TLS port.
    let request = Request::get(env.url("/health"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let plain = tokio::time::timeout(Duration::from_secs(10), env.client.request(request))
        .await
        .unwrap();
    assert!(plain.is_err(), "plain HTTP was answered");
}

#[tokio::test]
async fn mtls_admits_only_certificates_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    write_files(dir.path(), &ca.server(), Some(&clients));
    let (env, _gw) = start_tls(dir.path(), true).await;
    let addr = env.gateway.addr();

    let good = clients.client("alice-laptop");
    assert_eq!(
        get(&tls_client(&ca, Some(&good), true), addr, "/health")
            .await
            .unwrap()
            .0,
        200
    );
    assert!(
        get(&tls_client(&ca, None, true), addr, "/health").await.is_err(),
        "no certificate"
    );
    let stranger = Ca::new("someone else").client("mallory");
    assert!(
        get(&tls_client(&ca, Some(&stranger), true), addr, "/health")
            .await
            .is_err(),
        "certificate from another CA"
    );
}

#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old = Ca::new("old CA");
    write_files(dir.path(), &old.server(), None);
    let (env, gateway) = start_tls(dir.path(), false).await;
    let addr = env.gateway.addr();
    assert!(get(&tls_client(&old, None, true), addr, "/health").await.is_ok());

    let new = Ca::new("new CA");
    // A half-written pair is refused and the old certificate stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    gateway.reload().await;
    assert!(get(&tls_client(&old, None, true), addr, "/health").await.is_ok());

    write_files(dir.path(), &new.server(), None);
    gateway.reload().await;
    assert!(get(&tls_client(&new, None, true), addr, "/health").await.is_ok());
    assert!(get(&tls_client(&old, None, true), addr, "/health").await.is_err());
}

struct Child_(Child);

impl Drop for Child_ {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[tokio::test]
async fn sighup_reloads_the_certificate_reopens_the_audit_log_and_rereads_keys() {
    let dir = tempfile::tempdir().unwrap();
    let old = Ca::new("old CA");
    write_files(dir.path(), &old.server(), None);
    std::fs::write(dir.path().join("model-mapping.yaml"), TEST_MODELS).unwrap();
    let mut keys = ai_gateway::auth::keys::KeysFile::default();
    keys.add("ops", Default::default(), 1).unwrap();
    keys.save(&dir.path().join("keys.yaml")).unwrap();
    let config = dir.path().join("gateway.yaml");
    // A long poll interval: only the signal can make the gateway notice changes in time.
    std::fs::write(
        &config,
        "models: model-mapping.yaml\ntls:\n  cert_file: cert.pem\n  key_file: key.pem\n\
         audit:\n  output: audit.log\nauth:\n  keys_file: keys.yaml\n  reload_interval_ms: 3600000\n",
    )
    .unwrap();
    let mock = mock_bedrock::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        MockConfig::default(),
    );
    let addr = unused_addr();
    let child = Command::new(support::gateway_bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", MOCK_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", MOCK_SECRET_ACCESS_KEY)
        .env("RUST_LOG", "warn")
        .args(["serve", "--config"])
        .arg(&config)
        .args([
            "--bedrock-endpoint",
            &mock.endpoint(),
            "--listen",
            &addr.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Child_(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "gateway did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get(&tls_client(&old, None, true), addr, "/health")
            .await
            .unwrap()
            .0,
        200
    );

    // logrotate: move the audit log away; renew the certificate; add a key; then SIGHUP.
    let head = loop {
        // The audit_open and the /health request are on disk once the writer flushed.
        if let Ok(v) = ai_gateway::audit::verify_file(
            &dir.path().join("audit.log"),
            None,
            &ai_gateway::audit::LineHasher::unkeyed(),
        ) && v.lines >= 2
        {
            break v.head;
        }
        assert!(Instant::now() < deadline, "audit log not written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    std::fs::rename(dir.path().join("audit.log"), dir.path().join("audit.log.1")).unwrap();
    let new = Ca::new("new CA");
    write_files(dir.path(), &new.server(), None);
    let (late, _) = keys.add("late", Default::default(), 2).unwrap();
    keys.save(&dir.path().join("keys.yaml")).unwrap();
    signal(&child.0, "-HUP");

    let new_client = tls_client(&new, None, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&new_client, addr, "/health").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "new certificate not served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The key added before the signal works although the poll interval is an hour.
    assert_eq!(
        get_as(&new_client, addr, "/v1/models", Some(late.expose()))
            .await
            .unwrap()
            .0,
        200
    );
    let reopened = dir.path().join("audit.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    let verified = loop {
        if let Ok(v) =
            ai_gateway::audit::verify_file(&reopened, Some(&head), &ai_gateway::audit::LineHasher::unkeyed())
        {
            break v;
        }
        assert!(Instant::now() < deadline, "audit log not reopened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(verified.lines >= 1);
    let first = std::fs::read_to_string(&reopened).unwrap();
    assert!(first.starts_with("{\"type\":\"audit_open\""), "{first}");
    assert!(first.contains("\"reason\":\"reopen\""), "{first}");
    drop(child);
}
