//! Configuration: every flag has an environment variable; the seed's names are kept
//! (`PORT`, `DATABASE_URL`, `DATABASE_HOST`…, `REDIS_URL`, `COGNITO_*`, `JWT_SECRET`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::protocol::envelope::MAX_IDENTIFIER_BYTES;

/// Values `DATABASE_SSLMODE` accepts (libpq's `sslmode`).
pub const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

#[derive(Debug, Parser)]
#[command(
    name = "collab-server",
    version,
    about = "Hocuspocus- and y-websocket-compatible Yjs sync server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Exit 0 if `GET /health` on this machine answers 200, 1 otherwise (container health checks).
    Healthcheck,
}

/// A secret value: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// What a token's `exp` means for a document that is already open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TokenExpiry {
    /// As Hocuspocus: the token is checked when a document is opened (and on every
    /// reconnect); an open session outlives it.
    #[default]
    Open,
    /// At expiry the server asks the provider for a fresh token (3.3+ providers send one by
    /// themselves, on the same socket) and, once it checks, asks for anything typed meanwhile;
    /// a session with no valid token 30 s after the request is denied (2.x providers never
    /// answer: they reconnect with a fresh token).
    Refresh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0", global = true)]
    pub host: IpAddr,

    /// Port for WebSocket, /health, /ready and /metrics (the seed's ALB target port).
    #[arg(long, env = "PORT", default_value_t = 1234, global = true)]
    pub port: u16,

    /// Also serve /metrics, /health and /ready on this port (keep it off the public ingress).
    #[arg(long, env = "COLLAB_SERVER_METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// Directory of the embedded SQLite database (used when no DATABASE_URL is given).
    #[arg(long, env = "COLLAB_SERVER_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// `postgres://…`, `sqlite://path` or `memory://`. Default: SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// PostgreSQL host, when DATABASE_URL is not given (seed naming).
    #[arg(long, env = "DATABASE_HOST")]
    pub database_host: Option<String>,

    /// PostgreSQL port, with DATABASE_HOST.
    #[arg(long, env = "DATABASE_PORT", default_value_t = 5432)]
    pub database_port: u16,

    /// PostgreSQL database name, required with DATABASE_HOST (no default: the seed's Node
    /// server used `zedi` when it was unset, libpq uses the user's name; guessing would open
    /// an empty database and hide every document).
    #[arg(long, env = "DATABASE_NAME")]
    pub database_name: Option<String>,

    /// PostgreSQL user, with DATABASE_HOST.
    #[arg(long, env = "DATABASE_USER", default_value = "postgres")]
    pub database_user: String,

    /// PostgreSQL password, with DATABASE_HOST.
    #[arg(long, env = "DATABASE_PASSWORD", hide_env_values = true)]
    pub database_password: Option<Secret>,

    /// libpq sslmode with DATABASE_HOST: disable, prefer, require (encrypt, no certificate check:
    /// the seed's `rejectUnauthorized: false`), verify-ca, verify-full.
    #[arg(long, env = "DATABASE_SSLMODE", default_value = "prefer")]
    pub database_sslmode: String,

    /// Redis for the relay between replicas (`redis://` or `rediss://` for TLS). Without it,
    /// run one replica: clients of different replicas would not see each other's edits live.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    /// Redis channel prefix: channels are `<prefix>:<document>` (`@hocuspocus/extension-redis`'s
    /// default is `hocuspocus`).
    #[arg(long, env = "COLLAB_SERVER_REDIS_PREFIX", default_value = "hocuspocus")]
    pub redis_prefix: String,

    /// This replica's name on the relay (at most 234 bytes: the relay appends `#<generation>` to it; default: derived from HOSTNAME and a
    /// random part, unique per process).
    #[arg(long, env = "COLLAB_SERVER_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// HS256 shared secret for client tokens.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// JWKS URL for RS256/ES256 tokens.
    #[arg(long, env = "JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Cognito user pool id: with COGNITO_REGION gives the JWKS URL and the issuer.
    #[arg(long, env = "COGNITO_USER_POOL_ID")]
    pub cognito_user_pool_id: Option<String>,

    /// Cognito region (falls back to AWS_REGION).
    #[arg(long, env = "COGNITO_REGION")]
    pub cognito_region: Option<String>,

    /// AWS region, used when COGNITO_REGION is not set.
    #[arg(long, env = "AWS_REGION", hide = true)]
    pub aws_region: Option<String>,

    /// Required `iss` claim.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required audience (`aud`, or Cognito access tokens' `client_id`).
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Largest WebSocket message accepted, in bytes (a larger one closes that socket with 1009).
    #[arg(long, env = "COLLAB_SERVER_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Most documents one socket may open.
    #[arg(
        long,
        env = "COLLAB_SERVER_MAX_DOCUMENTS_PER_CONNECTION",
        default_value_t = 256
    )]
    pub max_documents_per_connection: usize,

    /// Most concurrent WebSocket connections; more are refused with 503.
    #[arg(long, env = "COLLAB_SERVER_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Frames queued for one socket before it counts as a slow consumer and is disconnected
    /// (it reconnects and resyncs; it never stalls others).
    #[arg(long, env = "COLLAB_SERVER_OUTBOUND_QUEUE", default_value_t = 4096)]
    pub outbound_queue: usize,

    /// Bytes queued for one socket before it counts as a slow consumer and is disconnected
    /// (4205). One frame larger than this is still sent to a client that keeps up.
    #[arg(long, env = "COLLAB_SERVER_OUTBOUND_QUEUE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub outbound_queue_bytes: usize,

    /// Seconds one write to a socket may make no progress before the socket is dropped (a
    /// client that stopped reading holds its queue and a connection slot until then).
    #[arg(long, env = "COLLAB_SERVER_SEND_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub send_timeout_secs: u64,

    /// Largest document, in bytes of its stored updates: an update that would pass it is refused
    /// for that document (PermissionDenied with the reason); 0 = no limit.
    #[arg(long, env = "COLLAB_SERVER_MAX_DOCUMENT_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_document_bytes: usize,

    /// Messages per second one socket may send (sustained); above it its reads pause. 0 = no limit.
    #[arg(
        long,
        env = "COLLAB_SERVER_RATE_MESSAGES_PER_SEC",
        default_value_t = 500
    )]
    pub rate_messages_per_sec: u32,

    /// Messages one socket may send in a burst above the sustained rate.
    #[arg(
        long,
        env = "COLLAB_SERVER_RATE_MESSAGES_BURST",
        default_value_t = 2000
    )]
    pub rate_messages_burst: u32,

    /// Bytes per second one socket may send (sustained); above it its reads pause. 0 = no limit.
    #[arg(long, env = "COLLAB_SERVER_RATE_BYTES_PER_SEC", default_value_t = 4 * 1024 * 1024)]
    pub rate_bytes_per_sec: u64,

    /// Bytes one socket may send in a burst above the sustained rate (one larger message is
    /// still accepted; the pause comes after it).
    #[arg(long, env = "COLLAB_SERVER_RATE_BYTES_BURST", default_value_t = 64 * 1024 * 1024)]
    pub rate_bytes_burst: u64,

    /// Most concurrent connections from one client address; 0 = no limit. Behind a load
    /// balancer, set COLLAB_SERVER_TRUSTED_PROXIES or every client counts as the balancer.
    #[arg(
        long,
        env = "COLLAB_SERVER_MAX_CONNECTIONS_PER_IP",
        default_value_t = 0
    )]
    pub max_connections_per_ip: usize,

    /// Comma-separated addresses or CIDR ranges of proxies whose X-Forwarded-For is believed
    /// (e.g. the ALB's subnets). The header of any other peer is ignored.
    #[arg(long, env = "COLLAB_SERVER_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Document API requests per second one client address may make (sustained; above it:
    /// 429 with Retry-After). Behind a load balancer, set COLLAB_SERVER_TRUSTED_PROXIES. 0 = no
    /// limit.
    #[arg(long, env = "COLLAB_SERVER_API_RATE_PER_SEC", default_value_t = 20)]
    pub api_rate_per_sec: u32,

    /// Document API requests one client address may make in a burst.
    #[arg(long, env = "COLLAB_SERVER_API_RATE_BURST", default_value_t = 200)]
    pub api_rate_burst: u32,

    /// Secrets of the document API (`/api/documents`), comma-separated (several while one is
    /// rotated); callers send `Authorization: Bearer <secret>`. Unset: no API.
    #[arg(long, env = "COLLAB_SERVER_API_SECRET", value_delimiter = ',')]
    pub api_secret: Vec<Secret>,

    /// Serve the document API only on COLLAB_SERVER_METRICS_PORT, not on the public port.
    #[arg(long, env = "COLLAB_SERVER_API_ADMIN_ONLY", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub api_admin_only: bool,

    /// Largest document API request body, in bytes (larger: 413).
    #[arg(long, env = "COLLAB_SERVER_API_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub api_max_body_bytes: u64,

    /// Where webhooks are POSTed (the bodies and signature of @hocuspocus/extension-webhook).
    /// Unset: no webhooks.
    #[arg(long, env = "COLLAB_SERVER_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// HMAC-SHA256 key of the `X-Hocuspocus-Signature-256` header.
    #[arg(long, env = "COLLAB_SERVER_WEBHOOK_SECRET")]
    pub webhook_secret: Option<Secret>,

    /// Comma-separated webhook events: change, connect, disconnect, create, version.created,
    /// version.restored.
    #[arg(
        long,
        env = "COLLAB_SERVER_WEBHOOK_EVENTS",
        value_delimiter = ',',
        default_value = "change"
    )]
    pub webhook_events: Vec<String>,

    /// Serve the collaborative editor at `/`. Default: on when no authentication is configured.
    #[arg(long, env = "COLLAB_SERVER_DEMO", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub demo: Option<bool>,

    /// Seconds without any inbound frame before a socket is closed (4408).
    /// What a token's expiry does to an open document: `open` (checked when the document is
    /// opened, as Hocuspocus) or `refresh` (ask the provider for a fresh token at expiry).
    #[arg(long, env = "COLLAB_SERVER_TOKEN_EXPIRY", value_enum, default_value_t = TokenExpiry::Open)]
    pub token_expiry: TokenExpiry,

    #[arg(long, env = "COLLAB_SERVER_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Seconds of outbound silence before a keepalive (empty awareness update) is sent.
    #[arg(long, env = "COLLAB_SERVER_KEEPALIVE_SECS", default_value_t = 10)]
    pub keepalive_secs: u64,

    /// Log rows per document before they are folded into the snapshot.
    #[arg(long, env = "COLLAB_SERVER_COMPACT_AFTER", default_value_t = 500)]
    pub compact_after: usize,

    /// Automatic versions: one this long after the first change since the last (`30s`, `10m`,
    /// `1h`; a bare number is seconds). `off` (the default) or 0: none.
    #[arg(long, env = "COLLAB_SERVER_VERSIONS_INTERVAL", default_value = "off",
          value_parser = parse_duration)]
    pub versions_interval: Period,

    /// Also an automatic version whenever a compaction folds a document's log.
    #[arg(long, env = "COLLAB_SERVER_VERSIONS_ON_COMPACTION", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub versions_on_compaction: bool,

    /// Versions kept per document (the newest); 0 = no limit of this kind.
    #[arg(long, env = "COLLAB_SERVER_VERSIONS_KEEP", default_value_t = 0)]
    pub versions_keep: u32,

    /// Versions older than this are removed (`30d`, `12h`); `off` (the default): kept.
    #[arg(long, env = "COLLAB_SERVER_VERSIONS_MAX_AGE", default_value = "off",
          value_parser = parse_duration)]
    pub versions_max_age: Period,

    /// Bytes of versions kept per document (the newest first; the newest is always kept);
    /// 0 = no limit of this kind.
    #[arg(long, env = "COLLAB_SERVER_VERSIONS_MAX_BYTES", default_value_t = 0)]
    pub versions_max_bytes: u64,

    /// Seconds allowed, after SIGTERM/SIGINT, to store every document and close every socket.
    #[arg(
        long,
        env = "COLLAB_SERVER_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 25
    )]
    pub shutdown_timeout_secs: u64,

    /// Log filter (RUST_LOG syntax), e.g. `info` or `collab_server=debug`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "DATABASE_URL must start with postgres://, postgresql://, sqlite:// or memory:// (got {scheme}://…)"
    )]
    UnknownDatabaseScheme { scheme: String },
    #[error("DATABASE_URL is not a URL")]
    InvalidDatabaseUrl,
    #[error(
        "DATABASE_SSLMODE must be one of disable, allow, prefer, require, verify-ca, verify-full (got {0})"
    )]
    InvalidSslMode(String),
    #[error("COGNITO_USER_POOL_ID needs COGNITO_REGION (or AWS_REGION)")]
    CognitoWithoutRegion,
    #[error("set only one of JWKS_URL and COGNITO_USER_POOL_ID")]
    JwksAndCognito,
    #[error(
        "JWT_SECRET is set together with {other}: set only one of JWT_SECRET (HS256), JWKS_URL and COGNITO_USER_POOL_ID, since tokens are checked one way"
    )]
    SecretAndKeySet { other: &'static str },
    #[error(
        "DATABASE_URL and DATABASE_HOST are both set: use one (DATABASE_URL, or DATABASE_HOST with DATABASE_PORT, DATABASE_NAME, DATABASE_USER and DATABASE_PASSWORD)"
    )]
    DatabaseUrlAndHost,
    #[error(
        "DATABASE_HOST needs DATABASE_NAME (the database holding the documents table; the seed's Node server used `zedi` when it was unset)"
    )]
    DatabaseNameMissing,
    #[error("REDIS_URL must start with redis:// or rediss://")]
    InvalidRedisUrl,
    #[error(
        "COLLAB_SERVER_INSTANCE_ID must be 1 to 234 bytes (the relay adds the document generation to it)"
    )]
    InvalidInstanceId,
    #[error("COLLAB_SERVER_API_ADMIN_ONLY needs COLLAB_SERVER_METRICS_PORT (the admin port)")]
    ApiAdminOnlyWithoutAdminPort,
    #[error("COLLAB_SERVER_API_SECRET: a secret must not be empty")]
    EmptyApiSecret,
    #[error("COLLAB_SERVER_WEBHOOK_URL must be an http:// or https:// URL")]
    InvalidWebhookUrl,
    #[error(
        "COLLAB_SERVER_WEBHOOK_EVENTS: unknown event {0} (change, connect, disconnect, create, version.created, version.restored)"
    )]
    UnknownWebhookEvent(String),
}

/// Which webhook events are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookEvents {
    pub change: bool,
    pub connect: bool,
    pub disconnect: bool,
    pub create: bool,
    pub version_created: bool,
    pub version_restored: bool,
}

#[derive(Clone)]
pub struct WebhookConfig {
    pub url: reqwest::Url,
    /// The HMAC key (empty if unset, as the extension's default).
    pub secret: String,
    pub events: WebhookEvents,
}

/// Why [`Config::from_env`] rejected an environment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("{0} is not a collab-server environment variable")]
    Unknown(String),
    #[error("invalid collab-server environment: {0}")]
    Invalid(String),
}

/// What the Redis relay needs: where Redis is, the channel prefix, and this replica's name.
#[derive(Clone)]
pub struct ClusterConfig {
    pub url: String,
    pub prefix: String,
    pub identifier: String,
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("prefix", &self.prefix)
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}

/// A default identifier: unique per process, recognisable in `PUBSUB` listings.
pub fn default_identifier() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    let host: String = host.chars().take(64).collect();
    format!("collab-{host}-{:016x}", hasher.finish())
}

/// Where documents are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    Memory,
    Sqlite { path: PathBuf },
    Postgres { url: String },
}

impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageConfig::Memory => f.write_str("memory (nothing survives a restart)"),
            StorageConfig::Sqlite { path } => write!(f, "sqlite file {}", path.display()),
            StorageConfig::Postgres { .. } => f.write_str("postgres"),
        }
    }
}

/// How tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// No authentication: every client may read and write every document.
    Anonymous,
    Jwt {
        keys: KeySource,
        issuer: Option<String>,
        audience: Option<String>,
        /// Cognito: `token_use` must be `id` or `access`.
        cognito: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Secret(Secret),
    Jwks { url: String },
}

impl Config {
    /// Parses the configuration from arguments and the process environment.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args).map(|cli| cli.config)
    }

    /// Parses the configuration from environment variables only, as a container would get them:
    /// the contract the operator and the ECS renderer are tested against. A variable the server
    /// does not know is an error (a typo there would silently be ignored in production).
    pub fn from_env<I, K, V>(vars: I) -> Result<Self, EnvError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let command = Cli::command();
        let mut args = vec!["collab-server".to_owned()];
        for (name, value) in vars {
            let name = name.into();
            let long = command
                .get_arguments()
                .find(|arg| arg.get_env().is_some_and(|env| env == name.as_str()))
                .and_then(|arg| arg.get_long())
                .ok_or_else(|| EnvError::Unknown(name.clone()))?;
            args.push(format!("--{long}={}", value.into()));
        }
        Self::from_args(args).map_err(|error| EnvError::Invalid(error.to_string()))
    }

    /// The document API's secrets (empty: no API), checked against the ports configured.
    pub fn api_secrets(&self) -> Result<Vec<Secret>, ConfigError> {
        let secrets: Vec<Secret> = self
            .api_secret
            .iter()
            .map(|s| Secret(s.expose().trim().to_owned()))
            .collect();
        if secrets.iter().any(|s| s.expose().is_empty()) {
            return Err(ConfigError::EmptyApiSecret);
        }
        if self.api_admin_only && self.metrics_port.is_none() {
            return Err(ConfigError::ApiAdminOnlyWithoutAdminPort);
        }
        Ok(secrets)
    }

    /// Webhooks, if a URL is configured.
    pub fn webhook(&self) -> Result<Option<WebhookConfig>, ConfigError> {
        let Some(url) = &self.webhook_url else {
            return Ok(None);
        };
        let parsed = reqwest::Url::parse(url).map_err(|_| ConfigError::InvalidWebhookUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::InvalidWebhookUrl);
        }
        let mut events = WebhookEvents::default();
        for event in self.webhook_events.iter().map(|e| e.trim()) {
            match event {
                "change" => events.change = true,
                "connect" => events.connect = true,
                "disconnect" => events.disconnect = true,
                "create" => events.create = true,
                "version.created" => events.version_created = true,
                "version.restored" => events.version_restored = true,
                "" => {}
                other => return Err(ConfigError::UnknownWebhookEvent(other.to_owned())),
            }
        }
        Ok(Some(WebhookConfig {
            url: parsed,
            secret: self
                .webhook_secret
                .as_ref()
                .map(|s| s.expose().to_owned())
                .unwrap_or_default(),
            events,
        }))
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    pub fn storage(&self) -> Result<StorageConfig, ConfigError> {
        if let Some(url) = &self.database_url {
            if self.database_host.is_some() {
                return Err(ConfigError::DatabaseUrlAndHost);
            }
            return parse_database_url(url.expose());
        }
        if let Some(host) = &self.database_host {
            let name = self
                .database_name
                .as_deref()
                .filter(|name| !name.is_empty())
                .ok_or(ConfigError::DatabaseNameMissing)?;
            let sslmode = self.database_sslmode.as_str();
            if !SSL_MODES.contains(&sslmode) {
                return Err(ConfigError::InvalidSslMode(sslmode.to_owned()));
            }
            let mut url = reqwest::Url::parse("postgres://localhost")
                .map_err(|_| ConfigError::InvalidDatabaseUrl)?;
            url.set_host(Some(host))
                .map_err(|_| ConfigError::InvalidDatabaseUrl)?;
            url.set_port(Some(self.database_port))
                .map_err(|()| ConfigError::InvalidDatabaseUrl)?;
            url.set_username(&self.database_user)
                .map_err(|()| ConfigError::InvalidDatabaseUrl)?;
            if let Some(password) = &self.database_password {
                url.set_password(Some(password.expose()))
                    .map_err(|()| ConfigError::InvalidDatabaseUrl)?;
            }
            url.set_path(name);
            url.query_pairs_mut().append_pair("sslmode", sslmode);
            return Ok(StorageConfig::Postgres { url: url.into() });
        }
        Ok(StorageConfig::Sqlite {
            path: self.data_dir.join("collab.db"),
        })
    }

    pub fn auth(&self) -> Result<AuthConfig, ConfigError> {
        let cognito = match &self.cognito_user_pool_id {
            Some(pool) => {
                let region = self
                    .cognito_region
                    .as_ref()
                    .or(self.aws_region.as_ref())
                    .ok_or(ConfigError::CognitoWithoutRegion)?;
                Some(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
            }
            None => None,
        };
        let keys = match (&self.jwks_url, &cognito, &self.jwt_secret) {
            (Some(_), Some(_), _) => return Err(ConfigError::JwksAndCognito),
            (Some(_), None, Some(_)) => {
                return Err(ConfigError::SecretAndKeySet { other: "JWKS_URL" });
            }
            (None, Some(_), Some(_)) => {
                return Err(ConfigError::SecretAndKeySet {
                    other: "COGNITO_USER_POOL_ID",
                });
            }
            (Some(url), None, _) => KeySource::Jwks { url: url.clone() },
            (None, Some(issuer), _) => KeySource::Jwks {
                url: format!("{issuer}/.well-known/jwks.json"),
            },
            (None, None, Some(secret)) => KeySource::Secret(secret.clone()),
            (None, None, None) => return Ok(AuthConfig::Anonymous),
        };
        Ok(AuthConfig::Jwt {
            keys,
            issuer: self.jwt_issuer.clone().or_else(|| cognito.clone()),
            audience: self.jwt_audience.clone(),
            cognito: cognito.is_some(),
        })
    }

    /// The Redis relay, when `REDIS_URL` is set.
    pub fn cluster(&self) -> Result<Option<ClusterConfig>, ConfigError> {
        let Some(url) = &self.redis_url else {
            return Ok(None);
        };
        let url = url.expose();
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(ConfigError::InvalidRedisUrl);
        }
        let identifier = match &self.instance_id {
            Some(id) if id.is_empty() || id.len() > MAX_IDENTIFIER_BYTES => {
                return Err(ConfigError::InvalidInstanceId);
            }
            Some(id) => id.clone(),
            None => default_identifier(),
        };
        Ok(Some(ClusterConfig {
            url: url.to_owned(),
            prefix: self.redis_prefix.clone(),
            identifier,
        }))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs.max(1))
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_secs)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// Automatic versions and retention.
    pub fn version_policy(&self) -> crate::document::VersionPolicy {
        crate::document::VersionPolicy {
            interval: self.versions_interval.0,
            on_compaction: self.versions_on_compaction,
            retention: crate::storage::versions::Retention {
                keep_last: (self.versions_keep > 0).then_some(self.versions_keep),
                max_age_ms: self.versions_max_age.0.map(|age| age.as_millis() as u64),
                max_bytes: (self.versions_max_bytes > 0).then_some(self.versions_max_bytes),
            },
        }
    }
}

/// A duration that may be off (`COLLAB_SERVER_VERSIONS_INTERVAL`, `..._MAX_AGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub Option<Duration>);

/// A duration: `off` or 0 (none), a number of seconds, or a number with `s`, `m`, `h` or `d`.
fn parse_duration(value: &str) -> Result<Period, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") || value.is_empty() {
        return Ok(Period(None));
    }
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => value.split_at(at),
        None => (value, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{value:?}: a duration is a number with s, m, h or d (or off)"
            ));
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{value:?}: a duration is a number with s, m, h or d (or off)"))?;
    Ok(Period((number > 0).then(|| {
        Duration::from_secs(number.saturating_mul(scale))
    })))
}

/// An address (`10.0.0.1`) or a CIDR range (`10.0.0.0/16`).
fn parse_net(value: &str) -> Result<ipnet::IpNet, String> {
    let value = value.trim();
    if let Ok(net) = value.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    value
        .parse::<IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("{value:?} is neither an IP address nor a CIDR range"))
}

fn parse_database_url(url: &str) -> Result<StorageConfig, ConfigError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url == "memory" {
            Ok(StorageConfig::Memory)
        } else {
            Err(ConfigError::InvalidDatabaseUrl)
        };
    };
    match scheme {
        "postgres" | "postgresql" => Ok(StorageConfig::Postgres {
            url: url.to_owned(),
        }),
        "sqlite" => Ok(StorageConfig::Sqlite {
            path: PathBuf::from(rest.split('?').next().unwrap_or(rest)),
        }),
        "memory" => Ok(StorageConfig::Memory),
        other => Err(ConfigError::UnknownDatabaseScheme {
            scheme: other.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["collab-server"];
        all.extend_from_slice(args);
        Config::from_args(all).expect("valid arguments")
    }

    #[test]
    fn defaults_are_the_embedded_single_node_setup() {
        let config = parse(&[]);
        assert_eq!(config.port, 1234);
        assert_eq!(
            config.storage().unwrap(),
            StorageConfig::Sqlite {
                path: PathBuf::from("data/collab.db")
            }
        );
    }

    #[test]
    fn versions_are_off_by_default_and_durations_take_units() {
        let policy = parse(&[]).version_policy();
        assert_eq!(policy, crate::document::VersionPolicy::default());
        let policy = parse(&[
            "--versions-interval",
            "10m",
            "--versions-keep",
            "50",
            "--versions-max-age",
            "30d",
        ])
        .version_policy();
        assert_eq!(policy.interval, Some(Duration::from_secs(600)));
        assert_eq!(policy.retention.keep_last, Some(50));
        assert_eq!(policy.retention.max_age_ms, Some(30 * 86_400_000));
        assert_eq!(policy.retention.max_bytes, None);
        assert_eq!(
            parse(&["--versions-interval", "45"])
                .version_policy()
                .interval,
            Some(Duration::from_secs(45))
        );
        let mut all = vec!["collab-server", "--versions-interval", "10 minutes"];
        assert!(Config::from_args(all.drain(..)).is_err());
    }

    #[test]
    fn database_url_selects_the_backend() {
        let storage = |url: &str| parse(&["--database-url", url]).storage();
        assert_eq!(
            storage("postgres://u:p@db/app").unwrap(),
            StorageConfig::Postgres {
                url: "postgres://u:p@db/app".into()
            }
        );
        assert_eq!(storage("memory://").unwrap(), StorageConfig::Memory);
        assert_eq!(
            storage("sqlite:///var/lib/collab.db").unwrap(),
            StorageConfig::Sqlite {
                path: PathBuf::from("/var/lib/collab.db")
            }
        );
        assert_eq!(
            storage("mysql://x").unwrap_err(),
            ConfigError::UnknownDatabaseScheme {
                scheme: "mysql".into()
            }
        );
    }

    #[test]
    fn seed_database_parts_build_an_escaped_url() {
        let config = parse(&[
            "--database-host",
            "db.internal",
            "--database-user",
            "app",
            "--database-password",
            "p@ss/word",
            "--database-name",
            "zedi",
            "--database-sslmode",
            "require",
        ]);
        let StorageConfig::Postgres { url } = config.storage().unwrap() else {
            panic!("expected postgres")
        };
        assert_eq!(
            url,
            "postgres://app:p%40ss%2Fword@db.internal:5432/zedi?sslmode=require"
        );
    }

    #[test]
    fn contradictory_settings_are_refused_not_ignored() {
        // JWT_SECRET used to be ignored silently next to a key set.
        let with_jwks = parse(&["--jwt-secret", "s", "--jwks-url", "https://idp/jwks"]);
        assert_eq!(
            with_jwks.auth(),
            Err(ConfigError::SecretAndKeySet { other: "JWKS_URL" })
        );
        let with_cognito = parse(&[
            "--jwt-secret",
            "s",
            "--cognito-user-pool-id",
            "p",
            "--cognito-region",
            "r",
        ]);
        assert_eq!(
            with_cognito.auth(),
            Err(ConfigError::SecretAndKeySet {
                other: "COGNITO_USER_POOL_ID"
            })
        );
        let both = parse(&[
            "--database-url",
            "postgres://u@db/app",
            "--database-host",
            "db",
            "--database-name",
            "app",
        ]);
        assert_eq!(both.storage(), Err(ConfigError::DatabaseUrlAndHost));
        // Parts without a database name: refused, not guessed (the seed defaulted to `zedi`).
        let unnamed = parse(&["--database-host", "db", "--database-user", "app"]);
        assert_eq!(unnamed.storage(), Err(ConfigError::DatabaseNameMissing));
        let message = ConfigError::DatabaseNameMissing.to_string();
        assert!(
            message.contains("DATABASE_NAME") && message.contains("zedi"),
            "{message}"
        );
    }

    #[test]
    fn cognito_gives_jwks_and_issuer() {
        let config = parse(&[
            "--cognito-user-pool-id",
            "ap-northeast-1_abc",
            "--cognito-region",
            "ap-northeast-1",
        ]);
        let AuthConfig::Jwt {
            keys,
            issuer,
            cognito,
            ..
        } = config.auth().unwrap()
        else {
            panic!("expected jwt")
        };
        assert!(cognito);
        assert_eq!(
            issuer.as_deref(),
            Some("https://cognito-idp.ap-northeast-1.amazonaws.com/ap-northeast-1_abc")
        );
        assert_eq!(
            keys,
            KeySource::Jwks {
                url: "https://cognito-idp.ap-northeast-1.amazonaws.com/ap-northeast-1_abc/.well-known/jwks.json".into()
            }
        );
        let no_region = parse(&["--cognito-user-pool-id", "x"]);
        assert_eq!(no_region.auth(), Err(ConfigError::CognitoWithoutRegion));
    }

    #[test]
    fn redis_url_turns_the_relay_on() {
        assert!(parse(&[]).cluster().unwrap().is_none());
        let cluster = parse(&[
            "--redis-url",
            "rediss://:pw@cache:6379",
            "--instance-id",
            "a",
        ])
        .cluster()
        .unwrap()
        .expect("relay");
        assert_eq!(cluster.prefix, "hocuspocus");
        assert_eq!(cluster.identifier, "a");
        assert!(!format!("{cluster:?}").contains("pw"));
        assert_eq!(
            parse(&["--redis-url", "http://x"]).cluster().unwrap_err(),
            ConfigError::InvalidRedisUrl
        );
        let long = "x".repeat(MAX_IDENTIFIER_BYTES + 1);
        assert_eq!(
            parse(&["--redis-url", "redis://x", "--instance-id", &long])
                .cluster()
                .unwrap_err(),
            ConfigError::InvalidInstanceId
        );
    }

    #[test]
    fn no_auth_settings_mean_anonymous() {
        assert_eq!(parse(&[]).auth().unwrap(), AuthConfig::Anonymous);
    }

    #[test]
    fn environment_alone_configures_the_server() {
        let config = Config::from_env([
            ("PORT", "4000"),
            ("DATABASE_URL", "postgres://u:p@db/app"),
            ("COLLAB_SERVER_SHUTDOWN_TIMEOUT_SECS", "90"),
            ("LOG_FORMAT", "json"),
        ])
        .expect("valid environment");
        assert_eq!(config.port, 4000);
        assert_eq!(config.shutdown_timeout_secs, 90);
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(matches!(
            config.storage().unwrap(),
            StorageConfig::Postgres { .. }
        ));
        assert_eq!(
            Config::from_env([("PROT", "1")]).unwrap_err(),
            EnvError::Unknown("PROT".into())
        );
        assert!(matches!(
            Config::from_env([("PORT", "not-a-port")]),
            Err(EnvError::Invalid(_))
        ));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = parse(&[
            "--jwt-secret",
            "hunter2",
            "--database-url",
            "postgres://u:pw@h/d",
        ]);
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("pw@h"));
    }
}
