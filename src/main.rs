//! The `ai-gateway` binary: CLI, logging, the global allocator, and the runtime.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use ai_gateway::audit;
use ai_gateway::auth::admin;
use ai_gateway::auth::keys::NewKey;
use ai_gateway::auth::limits::KeyLimits;
use ai_gateway::config::{AuthConfig, Config, LogFormat, Overrides};
use ai_gateway::mock_bedrock::{self, MockConfig};
use ai_gateway::server::{self, StartError};
use ai_gateway::upstream::sigv4::{SigV4Signer, UpstreamAuth};
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The demo configuration and model table, built in so `ai-gateway demo` runs from anywhere.
const DEMO_CONFIG: &str = include_str!("../configs/demo.yaml");
const DEMO_MODELS: &str = include_str!("../configs/model-mapping.yaml");

#[derive(Parser)]
#[command(
    name = "ai-gateway",
    version,
    about = "OpenAI-compatible gateway in front of AWS Bedrock"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI API in front of Bedrock (AWS credentials from the default chain).
    Serve(ServeArgs),
    /// Run the gateway in front of the built-in mock Bedrock: no AWS account needed.
    Demo(DemoArgs),
    /// Run only the mock Bedrock runtime (Converse, ConverseStream; checks SigV4).
    MockBedrock(MockArgs),
    /// Validate a configuration and its model table, then exit.
    CheckConfig(ServeArgs),
    /// Manage API keys in the keys file (only hashes are stored).
    Keys(KeysArgs),
    /// Audit log tools.
    Audit(AuditArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Gateway configuration file (YAML).
    #[arg(long, env = "AI_GATEWAY_CONFIG", default_value = "configs/gateway.yaml")]
    config: PathBuf,
    /// Listen address, e.g. 127.0.0.1:8080.
    #[arg(long, env = "AI_GATEWAY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Bedrock endpoint override (VPC endpoint, proxy, mock), e.g. http://127.0.0.1:9000.
    #[arg(long, env = "AI_GATEWAY_BEDROCK_ENDPOINT")]
    bedrock_endpoint: Option<String>,
    /// Default Bedrock region.
    #[arg(long, env = "AI_GATEWAY_REGION")]
    region: Option<String>,
    /// Model table file (YAML).
    #[arg(long, env = "AI_GATEWAY_MODELS")]
    models: Option<PathBuf>,
    /// Serve without client authentication on a non-loopback address: anyone who can reach
    /// it spends your AWS account. Only behind something else that authenticates.
    #[arg(long)]
    allow_unauthenticated_non_loopback: bool,
}

impl ServeArgs {
    fn load(&self) -> Result<Config, StartError> {
        let mut config = Config::from_file(&self.config)?;
        config.apply(Overrides {
            listen: self.listen,
            bedrock_endpoint: self.bedrock_endpoint.clone(),
            region: self.region.clone(),
            models: self.models.clone(),
        });
        config.auth.allow_unauthenticated_non_loopback = self.allow_unauthenticated_non_loopback;
        Ok(config)
    }
}

#[derive(Args)]
struct KeysArgs {
    /// Keys file (default: `auth.keys_file` of the configuration).
    #[arg(long, global = true)]
    file: Option<PathBuf>,
    /// Gateway configuration naming the keys file.
    #[arg(
        long,
        env = "AI_GATEWAY_CONFIG",
        default_value = "configs/gateway.yaml",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it once.
    Add {
        /// Unique name (A-Z a-z 0-9 . _ -), shown in logs and the audit log.
        name: String,
        /// Model aliases the key may use, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u32>,
        /// Tokens (prompt + completion) per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Streams open at once.
        #[arg(long)]
        max_streams: Option<u32>,
        /// Require a TOTP code: the key must be exchanged for a session token.
        #[arg(long)]
        require_totp: bool,
    },
    /// List keys: names, limits, state (never the keys).
    List,
    /// Revoke a key (running gateways pick it up without a restart).
    Revoke {
        /// The key's name.
        name: String,
    },
    /// Give a key a new TOTP seed and require it; prints the otpauth:// URI and a QR code.
    TotpEnroll {
        /// The key's name.
        name: String,
    },
}

impl KeysArgs {
    /// The keys file and the TOTP issuer name.
    fn target(&self) -> Result<(PathBuf, String), StartError> {
        let config = match Config::from_file(&self.config) {
            Ok(config) => Some(config.auth),
            // With --file the configuration is optional.
            Err(_) if self.file.is_some() => None,
            Err(e) => return Err(e.into()),
        };
        let issuer = config
            .as_ref()
            .map_or_else(|| AuthConfig::default().totp_issuer, |c| c.totp_issuer.clone());
        let path = self
            .file
            .clone()
            .or_else(|| config.and_then(|c| c.keys_file))
            .ok_or_else(|| {
                StartError::Other(format!(
                    "no keys file: pass --file PATH or set auth.keys_file in {}",
                    self.config.display()
                ))
            })?;
        Ok((path, issuer))
    }

    fn run(self) -> Result<(), StartError> {
        let (path, issuer) = self.target()?;
        let mut out = std::io::stdout().lock();
        let result = match self.command {
            KeysCommand::Add {
                name,
                models,
                rpm,
                tpm,
                max_streams,
                require_totp,
            } => {
                let new = NewKey {
                    models,
                    limits: KeyLimits {
                        rpm,
                        tpm,
                        max_streams,
                    },
                    require_totp,
                };
                admin::add(&path, &name, new, &issuer, &mut out)
            }
            KeysCommand::List => admin::list(&path, &mut out),
            KeysCommand::Revoke { name } => admin::revoke(&path, &name, &mut out),
            KeysCommand::TotpEnroll { name } => admin::totp_enroll(&path, &name, &issuer, &mut out),
        };
        result.map_err(StartError::Other)
    }
}

#[derive(Args)]
struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a file's hash chain; exits non-zero naming the first bad line.
    Verify {
        /// The audit log file.
        file: PathBuf,
        /// The chain head of the file before it (after rotation), which this one must continue.
        #[arg(long)]
        starts_after: Option<String>,
        /// The log's `audit.key_file`, for a keyed log (HMAC-SHA256 chain).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

impl AuditArgs {
    fn run(self) -> Result<(), StartError> {
        let AuditCommand::Verify {
            file,
            starts_after,
            key_file,
        } = self.command;
        let hasher = audit::LineHasher::for_key_file(key_file.as_deref()).map_err(StartError::Other)?;
        let verified = audit::verify_file(&file, starts_after.as_deref(), &hasher)
            .map_err(|e| StartError::Other(format!("{}: {e}", file.display())))?;
        let continues = if verified.starts_after == audit::GENESIS {
            String::new()
        } else {
            format!("; continues chain head {}", verified.starts_after)
        };
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}: {} lines, chain intact{continues}; head {}",
            file.display(),
            verified.lines,
            verified.head
        );
        Ok(())
    }
}

#[derive(Args)]
struct DemoArgs {
    /// Gateway listen address.
    #[arg(long, env = "AI_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Mock Bedrock listen address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    mock_listen: SocketAddr,
}

#[derive(Args)]
struct MockArgs {
    /// Listen address.
    #[arg(long, env = "AI_GATEWAY_MOCK_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Accept requests without checking their SigV4 signature.
    #[arg(long)]
    no_verify: bool,
    /// Load-test mode: pre-encoded replies, no signature check, no scripts (see
    /// `mock_bedrock::fast`); counters at `GET /__stats` and on stderr at exit.
    #[arg(long)]
    fast: bool,
    /// Fast mode: text deltas per reply (a request may override with `fast:frames=N`).
    #[arg(long, default_value_t = 20, requires = "fast")]
    frames: u32,
    /// Fast mode: microseconds between stream frames (override: `fast:delay_us=D`).
    #[arg(long, default_value_t = 0, requires = "fast")]
    frame_delay_us: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ai-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ai-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), StartError> {
    match command {
        Command::Serve(args) => {
            let config = args.load()?;
            init_logging(&config);
            let auth = server::default_auth(&config).await?;
            let gateway = server::build(config, auth)?;
            let listener = bind(gateway.shared().config.listen).await?;
            let addr = listener
                .local_addr()
                .map_err(|e| StartError::Other(e.to_string()))?;
            let security = &gateway.shared().security;
            tracing::info!(
                %addr,
                models = gateway.shared().models.len(),
                auth = ?gateway.shared().upstream.auth(),
                client_auth = security.auth.required(),
                tls = security.tls.is_some(),
                audit = security.audit.is_some(),
                "ai-gateway listening"
            );
            let admin = match gateway.shared().config.admin_listen {
                Some(admin) => Some(bind(admin).await?),
                None => None,
            };
            let reloader = tokio::spawn(server::reload_on_sighup(gateway.clone()));
            server::serve_with_admin(listener, admin, gateway, server::shutdown_signal()).await;
            reloader.abort();
            Ok(())
        }
        Command::CheckConfig(args) => {
            let mut config = args.load()?;
            // Checking a configuration must not append to the audit log it names.
            config.audit.output = None;
            let auth = UpstreamAuth::SigV4(SigV4Signer::from_static(MockConfig::default().credentials()));
            let gateway = server::build(config, auth)?;
            eprintln!("configuration OK: {} models", gateway.shared().models.len());
            Ok(())
        }
        Command::MockBedrock(args) => {
            init_logging(&Config::default());
            let listener = bind(args.listen).await?;
            if args.fast {
                let config = mock_bedrock::fast::FastConfig {
                    frames: args.frames,
                    frame_delay: std::time::Duration::from_micros(args.frame_delay_us),
                };
                tracing::info!(addr = %args.listen, ?config, "mock Bedrock (fast mode) listening");
                mock_bedrock::fast::serve(listener, config, server::shutdown_signal()).await;
                return Ok(());
            }
            let config = MockConfig {
                verify_signatures: !args.no_verify,
                ..MockConfig::default()
            };
            tracing::info!(addr = %args.listen, verify_signatures = config.verify_signatures, "mock Bedrock listening");
            mock_bedrock::serve(listener, config, server::shutdown_signal())
                .await
                .map_err(|e| StartError::Other(format!("mock Bedrock: {e}")))
        }
        Command::Demo(args) => demo(args).await,
        Command::Keys(args) => args.run(),
        Command::Audit(args) => args.run(),
    }
}

async fn demo(args: DemoArgs) -> Result<(), StartError> {
    let mock_listener = bind(args.mock_listen).await?;
    let mock = mock_bedrock::spawn(mock_listener, MockConfig::default());

    let dir = std::env::temp_dir().join(format!("ai-gateway-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| StartError::Other(format!("{}: {e}", dir.display())))?;
    let models = dir.join("model-mapping.yaml");
    std::fs::write(&models, DEMO_MODELS)
        .map_err(|e| StartError::Other(format!("{}: {e}", models.display())))?;
    let mut config =
        Config::from_yaml(DEMO_CONFIG).map_err(|e| StartError::Other(format!("demo config: {e}")))?;
    config.apply(Overrides {
        listen: Some(args.listen),
        bedrock_endpoint: Some(mock.endpoint()),
        region: None,
        models: Some(models),
    });
    init_logging(&config);
    let auth = UpstreamAuth::SigV4(SigV4Signer::from_static(MockConfig::default().credentials()));
    let gateway = server::build(config, auth)?;
    let listener = bind(args.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    print_demo_help(addr, &mock.endpoint());
    server::serve(listener, gateway, server::shutdown_signal()).await;
    mock.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[allow(clippy::print_stdout)] // The demo's instructions are its output.
fn print_demo_help(addr: SocketAddr, mock: &str) {
    println!(
        r#"
ai-gateway demo: the OpenAI API on http://{addr}/v1, in front of a mock Bedrock runtime at {mock}
(the mock speaks the real Converse/ConverseStream protocol and checks every SigV4 signature).

Try:
  curl -s http://{addr}/v1/models
  curl -s http://{addr}/v1/chat/completions -H 'content-type: application/json' \
    -d '{{"model":"claude-3-haiku","messages":[{{"role":"user","content":"Hello"}}]}}'
  curl -sN http://{addr}/v1/chat/completions -H 'content-type: application/json' \
    -d '{{"model":"claude-3-haiku","stream":true,"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"Hello mock:frames=5 mock:delay_ms=200"}}]}}'

Python (pip install openai):
  from openai import OpenAI
  client = OpenAI(base_url="http://{addr}/v1", api_key="demo")
  print(client.chat.completions.create(model="claude-3-haiku",
        messages=[{{"role": "user", "content": "Hello"}}]).choices[0].message.content)

Ctrl-C to stop.
"#
    );
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    // Colour only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
