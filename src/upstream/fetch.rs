//! Fetching `http(s)` image URLs for the translator, when `translate.image_fetch.enabled` is
//! set (it is off by default: a gateway that fetches URLs a client names is an SSRF risk).
//!
//! Guards, in order: scheme `http`/`https` only; the host is resolved here and every address
//! it resolves to must be public (no loopback, private, link-local, CGNAT, multicast or
//! reserved ranges, IPv4-mapped forms included); the connection goes to the address that was
//! checked (so a DNS answer cannot change between check and connect), with the host name kept
//! for `Host` and TLS verification; redirects are followed a bounded number of times, each hop
//! checked again; the whole fetch has one deadline; the body is capped; the `Content-Type` must
//! be one of the image types Bedrock takes. Every failure is the client's problem (it named the
//! URL): a 400 with code `invalid_image_url` naming the part.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::error::InvalidRequest;
use crate::translate::request::{FetchedImage, RemoteImage, encode_base64, image_format_for_mime};

/// The error code of every fetch failure.
pub const INVALID_IMAGE_URL: &str = "invalid_image_url";

/// `translate.image_fetch` in the gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageFetchConfig {
    /// Fetch `http(s)` image URLs. Off: such URLs are a 400 telling the client to send a data
    /// URL.
    pub enabled: bool,
    /// Largest image accepted, in bytes.
    pub max_bytes: u64,
    /// Deadline for fetching all the images of one request, in milliseconds.
    pub timeout_ms: u64,
    /// Redirects followed per image.
    pub max_redirects: u32,
    /// Images fetched per request at most.
    pub max_images: usize,
    /// For tests only: let the fetcher reach loopback addresses (127.0.0.0/8, ::1). Private
    /// and other non-public ranges stay refused.
    pub allow_loopback: bool,
}

impl Default for ImageFetchConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_bytes: 3_750_000,
            timeout_ms: 10_000,
            max_redirects: 3,
            max_images: 20,
            allow_loopback: false,
        }
    }
}

impl ImageFetchConfig {
    /// Every problem with the settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_bytes == 0 {
            problems.push("translate.image_fetch.max_bytes: must be at least 1".to_owned());
        }
        if self.timeout_ms == 0 {
            problems.push("translate.image_fetch.timeout_ms: must be greater than 0".to_owned());
        }
        if self.max_images == 0 {
            problems.push("translate.image_fetch.max_images: must be at least 1".to_owned());
        }
        problems
    }
}

/// Fetches every image (sequentially, under one deadline). Call only with fetching enabled.
pub async fn fetch_images(
    config: &ImageFetchConfig,
    images: &[RemoteImage<'_>],
) -> Result<Vec<FetchedImage>, InvalidRequest> {
    if let Some(extra) = images.get(config.max_images) {
        return Err(failure(
            &extra.param,
            format!(
                "at most {} image URLs are fetched per request; send the others as data URLs",
                config.max_images
            ),
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(config.timeout_ms);
    let mut fetched = Vec::with_capacity(images.len());
    for image in images {
        let fetch = fetch_one(config, image.url);
        let result = match tokio::time::timeout_at(deadline, fetch).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "fetching the image took longer than {} ms",
                config.timeout_ms
            )),
        };
        match result {
            Ok((format, bytes)) => fetched.push(FetchedImage {
                url: image.url.to_owned(),
                format,
                base64: encode_base64(&bytes),
            }),
            Err(why) => {
                return Err(failure(
                    &image.param,
                    format!("could not use the image URL: {why}"),
                ));
            }
        }
    }
    Ok(fetched)
}

fn failure(param: &str, message: String) -> InvalidRequest {
    InvalidRequest {
        message: message.into(),
        param: Some(param.to_owned().into()),
        code: Some(INVALID_IMAGE_URL),
    }
}

/// Fetches one image, following redirects; the error text completes "could not use the image
/// URL: …".
async fn fetch_one(config: &ImageFetchConfig, url: &str) -> Result<(&'static str, Bytes), String> {
    let mut uri: Uri = url.parse().map_err(|_| "it is not a valid URL".to_owned())?;
    let mut redirects = 0;
    loop {
        let target = Target::of(&uri)?;
        let addrs = resolve(&target, config.allow_loopback).await?;
        let response = get_any(&target, &addrs, &uri).await?;
        let status = response.status();
        if status.is_redirection() {
            if redirects >= config.max_redirects {
                return Err(format!("more than {} redirects", config.max_redirects));
            }
            redirects += 1;
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("HTTP {} without a Location", status.as_u16()))?;
            uri = redirect_target(&uri, location)?;
            continue;
        }
        if status != StatusCode::OK {
            return Err(format!("the server answered HTTP {}", status.as_u16()));
        }
        let mime = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let essence = mime.split(';').next().unwrap_or_default();
        let format = image_format_for_mime(essence).ok_or_else(|| {
            format!("its content type `{mime}` is not image/png, image/jpeg, image/gif or image/webp")
        })?;
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > config.max_bytes) {
            return Err(format!("the image is larger than {} bytes", config.max_bytes));
        }
        let limit = usize::try_from(config.max_bytes).unwrap_or(usize::MAX);
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("the image is larger than {} bytes", config.max_bytes)
                } else {
                    format!("reading the image failed: {e}")
                }
            })?
            .to_bytes();
        if body.is_empty() {
            return Err("the image is empty".to_owned());
        }
        return Ok((format, body));
    }
}

/// Where one hop goes.
#[derive(Debug)]
struct Target {
    https: bool,
    host: String,
    port: u16,
}

impl Target {
    fn of(uri: &Uri) -> Result<Self, String> {
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return Err("only http and https URLs are fetched".to_owned()),
        };
        let authority = uri.authority().ok_or_else(|| "the URL has no host".to_owned())?;
        if authority.as_str().contains('@') {
            return Err("URLs with credentials are not fetched".to_owned());
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the URL has no host".to_owned());
        }
        Ok(Self {
            https,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        })
    }
}

/// Resolves the host and checks every address it has.
async fn resolve(target: &Target, allow_loopback: bool) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot resolve `{}`: {e}", target.host))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("`{}` has no address", target.host));
    }
    // Refuse the host if any of its addresses is not public: a name that mixes public and
    // internal addresses is exactly what a rebinding attack serves.
    if let Some(bad) = addrs.iter().find(|a| !is_allowed(a.ip(), allow_loopback)) {
        return Err(format!(
            "`{}` resolves to {}, which is not a public address",
            target.host,
            bad.ip()
        ));
    }
    Ok(addrs)
}

/// Whether an address may be fetched from.
pub fn is_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10: carrier-grade NAT.
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24: IETF protocol assignments.
        || (a == 192 && b == 0 && c == 0)
        // 198.18.0.0/15: benchmarking.
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4: reserved.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // 64:ff9b::/96 (NAT64) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7: unique local.
        || (s[0] & 0xfe00) == 0xfc00
        // fe80::/10: link local.
        || (s[0] & 0xffc0) == 0xfe80
        // 2001:db8::/32: documentation.
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        // ::/96 (IPv4-compatible, deprecated) and other reserved forms under ::/8.
        || s[0] == 0)
}

/// The absolute URL of a redirect's `Location`.
fn redirect_target(base: &Uri, location: &str) -> Result<Uri, String> {
    let bad = || "the redirect Location is not a valid URL".to_owned();
    if location.contains("://") {
        return location.parse().map_err(|_| bad());
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let absolute = if location.starts_with("//") {
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{authority}{dir}{location}")
    };
    absolute.parse().map_err(|_| bad())
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// Tries the checked addresses in order until one connects.
async fn get_any(
    target: &Target,
    addrs: &[SocketAddr],
    uri: &Uri,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let mut last = format!("`{}` has no address", target.host);
    for addr in addrs {
        match get(target, *addr, uri).await {
            Ok(response) => return Ok(response),
            Err(Hop::Connect(why)) => last = why,
            Err(Hop::Failed(why)) => return Err(why),
        }
    }
    Err(last)
}

/// Why one hop failed: before a connection existed (another address may work), or after.
enum Hop {
    Connect(String),
    Failed(String),
}

/// One GET to a checked address, with the original host for `Host` and TLS.
async fn get(
    target: &Target,
    addr: SocketAddr,
    uri: &Uri,
) -> Result<http::Response<hyper::body::Incoming>, Hop> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let scheme = if target.https { "https" } else { "http" };
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let direct: Uri = format!("{scheme}://{ip}:{}{path}", addr.port())
        .parse()
        .map_err(|_| Hop::Failed("the URL has an invalid path".to_owned()))?;
    let default_port = if target.https { 443 } else { 80 };
    let host_header = if addr.port() == default_port {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, addr.port())
    };
    let request = Request::get(direct)
        .header(header::HOST, host_header)
        .header(header::USER_AGENT, "ai-gateway-image-fetch")
        .header(header::ACCEPT, "image/png, image/jpeg, image/gif, image/webp")
        .body(Empty::<Bytes>::new())
        .map_err(|_| Hop::Failed("the URL cannot be requested".to_owned()))?;
    let server_name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|_| Hop::Failed(format!("`{}` is not a valid host name", target.host)))?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls_config().map_err(Hop::Failed)?).clone())
        .https_or_http()
        .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(server_name))
        .enable_http1()
        .wrap_connector(http);
    // A client per hop: fetches are rare, and each hop goes to its own checked address.
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    client.request(request).await.map_err(|e| {
        let why = match std::error::Error::source(&e) {
            Some(cause) => format!("requesting it from `{}` failed: {cause}", target.host),
            None => format!("requesting it from `{}` failed: {e}", target.host),
        };
        if e.is_connect() {
            Hop::Connect(why)
        } else {
            Hop::Failed(why)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;

    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n0000";

    /// A loopback server: `/cat.png` is an image, `/big.png` too large, `/text` not an image,
    /// `/hop` redirects to `/cat.png`, `/loop` to itself, `/private` to 10.0.0.1, `/slow`
    /// never answers, anything else is 404.
    async fn serve() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let mut builder = http::Response::builder();
                        let body: Vec<u8> = match req.uri().path() {
                            "/cat.png" => {
                                // The name from the URL, not the address connected to.
                                assert!(
                                    req.headers()[header::HOST]
                                        .to_str()
                                        .unwrap()
                                        .starts_with("localhost:")
                                );
                                builder = builder.header(header::CONTENT_TYPE, "image/png; q=1");
                                PNG.to_vec()
                            }
                            "/big.png" => {
                                builder = builder.header(header::CONTENT_TYPE, "image/png");
                                vec![0; 5000]
                            }
                            "/text" => {
                                builder = builder.header(header::CONTENT_TYPE, "text/html");
                                b"<html>".to_vec()
                            }
                            "/hop" => {
                                builder = builder.status(302).header(header::LOCATION, "cat.png");
                                Vec::new()
                            }
                            "/loop" => {
                                builder = builder.status(301).header(header::LOCATION, "/loop");
                                Vec::new()
                            }
                            "/private" => {
                                builder = builder
                                    .status(302)
                                    .header(header::LOCATION, "http://10.0.0.1/x.png");
                                Vec::new()
                            }
                            "/slow" => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                Vec::new()
                            }
                            _ => {
                                builder = builder.status(404);
                                Vec::new()
                            }
                        };
                        Ok::<_, Infallible>(builder.body(Full::new(Bytes::from(body))).unwrap())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    fn config() -> ImageFetchConfig {
        ImageFetchConfig {
            enabled: true,
            max_bytes: 1000,
            timeout_ms: 2000,
            allow_loopback: true,
            ..ImageFetchConfig::default()
        }
    }

    async fn fetch(config: &ImageFetchConfig, url: &str) -> Result<FetchedImage, InvalidRequest> {
        let images = fetch_images(
            config,
            &[RemoteImage {
                url,
                param: "messages[0].content[0].image_url.url".to_owned(),
            }],
        )
        .await?;
        Ok(images.into_iter().next().unwrap())
    }

    #[tokio::test]
    async fn an_image_is_fetched_by_name_and_encoded() {
        let addr = serve().await;
        let url = format!("http://localhost:{}/cat.png", addr.port());
        let image = fetch(&config(), &url).await.unwrap();
        assert_eq!(image.url, url);
        assert_eq!(image.format, "png");
        assert_eq!(image.base64, encode_base64(PNG));
    }

    #[tokio::test]
    async fn relative_redirects_are_followed_within_the_limit() {
        let addr = serve().await;
        let image = fetch(&config(), &format!("http://localhost:{}/hop", addr.port()))
            .await
            .unwrap();
        assert_eq!(image.format, "png");
        let err = fetch(&config(), &format!("http://localhost:{}/loop", addr.port()))
            .await
            .unwrap_err();
        assert!(err.message.contains("more than 3 redirects"), "{}", err.message);
    }

    #[tokio::test]
    async fn every_refusal_is_a_400_naming_the_part() {
        let addr = serve().await;
        let port = addr.port();
        for (path, why) in [
            ("big.png", "larger than 1000 bytes"),
            ("text", "content type `text/html`"),
            ("missing.png", "HTTP 404"),
            ("private", "10.0.0.1, which is not a public address"),
        ] {
            let err = fetch(&config(), &format!("http://localhost:{port}/{path}"))
                .await
                .unwrap_err();
            assert!(err.message.contains(why), "{path}: {}", err.message);
            assert_eq!(err.param.as_deref(), Some("messages[0].content[0].image_url.url"));
            assert_eq!(err.code, Some(INVALID_IMAGE_URL));
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_without_the_test_switch() {
        let addr = serve().await;
        let strict = ImageFetchConfig {
            allow_loopback: false,
            ..config()
        };
        for url in [
            format!("http://localhost:{}/cat.png", addr.port()),
            format!("http://127.0.0.1:{}/cat.png", addr.port()),
            format!("http://[::1]:{}/cat.png", addr.port()),
        ] {
            let err = fetch(&strict, &url).await.unwrap_err();
            assert!(
                err.message.contains("not a public address"),
                "{url}: {}",
                err.message
            );
        }
    }

    #[tokio::test]
    async fn the_deadline_covers_the_whole_fetch() {
        let addr = serve().await;
        let quick = ImageFetchConfig {
            timeout_ms: 200,
            ..config()
        };
        let err = fetch(&quick, &format!("http://localhost:{}/slow", addr.port()))
            .await
            .unwrap_err();
        assert!(err.message.contains("longer than 200 ms"), "{}", err.message);
    }

    #[tokio::test]
    async fn bad_urls_and_too_many_images_are_refused() {
        for (url, why) in [
            ("ftp://example.com/a.png", "only http and https"),
            ("http://user:pw@example.com/a.png", "credentials"),
            ("http://10.1.2.3/a.png", "not a public address"),
            ("http://169.254.169.254/latest/meta-data", "not a public address"),
            ("http://[fd00::1]/a.png", "not a public address"),
            ("http://[::ffff:192.168.1.1]/a.png", "not a public address"),
        ] {
            let err = fetch(&config(), url).await.unwrap_err();
            assert!(err.message.contains(why), "{url}: {}", err.message);
        }
        let refs: Vec<RemoteImage<'_>> = (0..3)
            .map(|_| RemoteImage {
                url: "http://example.com/a.png",
                param: "p".to_owned(),
            })
            .collect();
        let few = ImageFetchConfig {
            max_images: 2,
            ..config()
        };
        let err = fetch_images(&few, &refs).await.unwrap_err();
        assert!(err.message.contains("at most 2 image URLs"), "{}", err.message);
    }

    #[test]
    fn address_classes() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808"] {
            assert!(is_allowed(ip.parse().unwrap(), false), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_allowed(ip.parse().unwrap(), false), "{ip}");
        }
        assert!(is_allowed("127.0.0.1".parse().unwrap(), true));
        assert!(!is_allowed("10.0.0.1".parse().unwrap(), true));
    }

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        let base: Uri = "https://example.com/a/b.png?x=1".parse().unwrap();
        for (location, expected) in [
            ("c.png", "https://example.com/a/c.png"),
            ("/c.png", "https://example.com/c.png"),
            ("//cdn.example.com/c.png", "https://cdn.example.com/c.png"),
            ("http://other.example/c.png", "http://other.example/c.png"),
        ] {
            assert_eq!(redirect_target(&base, location).unwrap().to_string(), expected);
        }
    }
}
