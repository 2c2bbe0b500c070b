//! A loopback TCP relay in front of the mock, optionally terminating TLS, that counts and can
//! cut the connections it carries.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

/// A self-signed certificate for 127.0.0.1, as a TLS acceptor offering `alpn`, and its
/// PEM for the gateway's `bedrock.ca_file`.
pub fn tls_server(alpn: &[&[u8]]) -> (tokio_rustls::TlsAcceptor, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let pem = cert.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert.cert.der().to_vec())], key)
            .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), pem)
}

/// A loopback TCP relay to `backend` (the mock, which answers HTTP/1.1 and HTTP/2 with prior
/// knowledge), terminating TLS first when given an acceptor; it counts the connections it
/// accepted and can cut them all.
#[derive(Clone)]
pub struct Relay {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    pub fn spawn(backend: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let relay = Self {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            open: Arc::default(),
        };
        let listener = TcpListener::from_std(listener).unwrap();
        let state = relay.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                state.accepted.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                let task = tokio::spawn(async move {
                    let mut plain = TcpStream::connect(backend).await.unwrap();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(mut tls) = acceptor.accept(socket).await {
                                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                            }
                        }
                        None => {
                            let mut socket = socket;
                            let _ = tokio::io::copy_bidirectional(&mut socket, &mut plain).await;
                        }
                    }
                });
                state.open.lock().unwrap().push(task.abort_handle());
            }
        });
        relay
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every connection relayed so far, both ways.
    pub fn cut(&self) {
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// The mock's address, from the endpoint the test environment set.
pub fn mock_addr(config: &ai_gateway::config::Config) -> SocketAddr {
    let mock: http::Uri = config.bedrock.endpoint.as_deref().unwrap().parse().unwrap();
    mock.authority().unwrap().as_str().parse().unwrap()
}

/// The gateway tuned by `tune`, reaching the mock through a relay (terminating TLS with `tls`,
/// then the endpoint is `https://`).
pub async fn env_behind_relay(
    tls: Option<tokio_rustls::TlsAcceptor>,
    tune: impl FnOnce(&mut ai_gateway::config::Config),
) -> (super::TestEnv, Relay) {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut relay = None;
    let env = super::TestEnv::start_with(|config| {
        let spawned = Relay::spawn(mock_addr(config), tls);
        config.bedrock.endpoint = Some(format!("{scheme}://{}", spawned.addr));
        tune(config);
        relay = Some(spawned);
    })
    .await;
    (env, relay.unwrap())
}
