//! Hub settings: the apps (credentials) and the limits, with their defaults, read from a TOML file and
//! overridden by flags and environment variables in `main.rs`. Credentials are never fixed, well-known
//! values: when the operator gives none, random ones are made on first start and kept in the data folder.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Everything the hub needs to run. `bind` and `port` are used by whoever binds the listener
/// ([`crate::server::run`] takes an already bound one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The address to listen on: `0.0.0.0` serves the LAN, `127.0.0.1` only this machine.
    pub bind: IpAddr,
    /// The port; 0 picks a free one.
    pub port: u16,
    /// Accept Poussr v1 publishing without a token from other machines than this one.
    pub allow_anonymous_publish: bool,
    /// The token the dashboard and the admin API need. `None`: a random one is made at each start.
    pub admin_token: Option<String>,
    /// Let the admin API and dashboard answer other machines than this one (still with the token).
    pub allow_remote_dashboard: bool,
    /// The web pages (origins such as `http://intranet.lan:8080`) whose scripts may open WebSockets to the
    /// hub. Empty (the default): any page may. When set, a handshake whose `Origin` header is not in the
    /// list is refused with 403 before the upgrade; `*.example.lan` admits the subdomains of a host, `*`
    /// every origin. Programs that send no `Origin` (server-side clients) are not affected.
    pub allowed_origins: Vec<String>,
    /// How this hub shares its traffic with others: `local` (alone, the default) or `redis`.
    pub adapter: AdapterKind,
    /// The Redis server of the cluster (`adapter = "redis"`): `redis://[:password@]host[:port][/db]`.
    pub redis_url: String,
    /// What every key and channel of this cluster starts with, so that several clusters can share one
    /// Redis.
    pub redis_prefix: String,
    /// How long a hub that stopped writing its heartbeat stays a member of the cluster, in milliseconds;
    /// then its connections and presence members are no longer counted.
    pub node_timeout_ms: u64,
    /// The apps. The first one is the default app that Poussr v1 clients use.
    pub apps: Vec<AppConfig>,
    /// Limits that protect the hub and its clients.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 6001,
            allow_anonymous_publish: false,
            admin_token: None,
            allow_remote_dashboard: false,
            allowed_origins: Vec::new(),
            adapter: AdapterKind::Local,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: "poussr".into(),
            node_timeout_ms: 5_000,
            apps: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// How hubs share their traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// One hub alone.
    #[default]
    Local,
    /// Several hubs that share their traffic through Redis pub/sub.
    Redis,
}

/// One app: what a Pusher client names with its key and a server SDK with its id and secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app id, in the HTTP API's paths (`/apps/{id}/events`).
    pub id: String,
    /// The public key, in the WebSocket URL (`/app/{key}`).
    pub key: String,
    /// The secret that signs API requests and channel auth. Never sent to clients.
    pub secret: String,
    /// A disabled app refuses connections (4003) and API calls (403).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether clients may send `client-*` events on private and presence channels. On by default: Poussr
    /// is a LAN tool, and the channel auth already decides who may join.
    #[serde(default = "yes")]
    pub client_events: bool,
    /// Where the hub reports channel and member changes, client events and cache misses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookConfig>,
}

fn yes() -> bool {
    true
}

/// One webhook target of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The `http://` URL the hub POSTs to.
    pub url: String,
    /// The kinds sent there; empty (the default) means all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<WebhookKind>,
}

impl WebhookConfig {
    /// Whether events of `kind` go to this target.
    pub fn wants(&self, kind: WebhookKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }

    /// Checks that the URL is one the hub can call.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.trim();
        if let Some(rest) = url.strip_prefix("http://") {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(ConfigError::Invalid(format!("webhook URL {url:?} has no host")));
            }
            Ok(())
        } else if url.starts_with("https://") {
            Err(ConfigError::Invalid(format!(
                "webhook URL {url:?}: this hub calls webhooks over plain http:// (a LAN backend, or a local \
                 TLS-terminating proxy); https:// is not supported"
            )))
        } else {
            Err(ConfigError::Invalid(format!("webhook URL {url:?} must start with http://")))
        }
    }
}

/// The kinds of webhook events (PROTOCOL.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// A channel got its first subscriber.
    ChannelOccupied,
    /// A channel lost its last subscriber.
    ChannelVacated,
    /// A user got their first connection in a presence channel.
    MemberAdded,
    /// A user's last connection left a presence channel.
    MemberRemoved,
    /// A client sent a `client-*` event.
    ClientEvent,
    /// A client subscribed to a cache channel that had no cached event.
    CacheMiss,
}

impl WebhookKind {
    /// Every kind, in the order of PROTOCOL.md.
    pub const ALL: [WebhookKind; 6] = [
        WebhookKind::ChannelOccupied,
        WebhookKind::ChannelVacated,
        WebhookKind::MemberAdded,
        WebhookKind::MemberRemoved,
        WebhookKind::ClientEvent,
        WebhookKind::CacheMiss,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::ChannelOccupied => "channel_occupied",
            WebhookKind::ChannelVacated => "channel_vacated",
            WebhookKind::MemberAdded => "member_added",
            WebhookKind::MemberRemoved => "member_removed",
            WebhookKind::ClientEvent => "client_event",
            WebhookKind::CacheMiss => "cache_miss",
        }
    }
}

impl AppConfig {
    /// A new app with random credentials: a numeric id (as Pusher's are), a 20-character key and a
    /// 32-character secret, from the operating system's random source.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let hex = |rng: &mut rand::rngs::ThreadRng, n: usize| -> String {
            (0..n).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
        };
        AppConfig::new(rng.random_range(100_000..10_000_000u32).to_string(), hex(&mut rng, 20), hex(&mut rng, 32))
    }

    /// An enabled app with these credentials and the default switches.
    pub fn new(id: impl Into<String>, key: impl Into<String>, secret: impl Into<String>) -> Self {
        AppConfig {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            enabled: true,
            client_events: true,
            webhooks: Vec::new(),
        }
    }

    /// Checks that the credentials can be used in URLs and signatures.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ok = |s: &str| {
            !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !ok(&self.id) {
            return Err(ConfigError::Invalid(format!(
                "app id {:?}: use 1-128 characters from A-Z a-z 0-9 - _ .",
                self.id
            )));
        }
        if !ok(&self.key) {
            return Err(ConfigError::Invalid(format!(
                "app key {:?}: use 1-128 characters from A-Z a-z 0-9 - _ .",
                self.key
            )));
        }
        if self.secret.is_empty() {
            return Err(ConfigError::Invalid(format!("app {}: the secret is empty", self.id)));
        }
        for webhook in &self.webhooks {
            webhook.validate().map_err(|e| ConfigError::Invalid(format!("app {}: {e}", self.id)))?;
        }
        Ok(())
    }
}

/// Limits, each with a default that suits a LAN hub. Every one that is crossed is answered with a clear
/// error: a close code on WebSockets, an HTTP status with a JSON body on the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most WebSocket connections at once (over: 4004).
    pub max_connections: usize,
    /// Most WebSocket connections at once from one IP address (over: 4100, so clients retry later).
    pub max_connections_per_address: usize,
    /// Seconds a new TCP connection has to send its request headers (the WebSocket handshake included),
    /// and an idle keep-alive connection to send its next request; then it is closed without an answer.
    /// This is what stops slow-loris clients that open connections and send their headers byte by byte.
    pub handshake_timeout_secs: u64,
    /// Seconds an HTTP request has to send its body and be answered (over: 408).
    pub http_request_timeout_secs: u64,
    /// Events each app may publish per second through the HTTP API and Poussr v1 publishing, with bursts
    /// up to one second's worth (over: 429 with `Retry-After`). A batch counts each of its events.
    pub max_publish_per_second: u32,
    /// Largest WebSocket message a client may send, in bytes (over: `pusher:error`, close 1009).
    pub max_message_bytes: usize,
    /// Largest event `data`, in bytes, on the API and Poussr v1 publish (over: 413).
    pub max_event_data_bytes: usize,
    /// Largest HTTP request body, in bytes (over: 413).
    pub max_body_bytes: usize,
    /// Most channels one event may be published to.
    pub max_channels_per_event: usize,
    /// Most events in one `batch_events` request.
    pub max_batch_events: usize,
    /// Longest event name.
    pub max_event_name_len: usize,
    /// Most channels one connection may join.
    pub max_channels_per_connection: usize,
    /// Frames queued for one connection before it counts as a slow consumer and is closed with 4100.
    pub send_queue_frames: usize,
    /// Seconds of silence before the hub pings a connection (sent to Pusher clients as `activity_timeout`).
    pub activity_timeout_secs: u64,
    /// Seconds to wait for the pong before closing with 4201.
    pub pong_timeout_secs: u64,
    /// Most distinct users in one presence channel (over: `pusher:subscription_error` 403).
    pub max_presence_members: usize,
    /// Largest `user_info` of a presence member, in bytes of JSON (over: `pusher:subscription_error` 400).
    pub max_presence_user_info_bytes: usize,
    /// Longest presence `user_id`, in characters (over: `pusher:subscription_error` 400).
    pub max_presence_user_id_chars: usize,
    /// Most `client-*` events one connection may send per second (over: `pusher:error` and close 4301).
    pub client_events_per_second: u32,
    /// How long a cache channel keeps its last event, in seconds.
    pub cache_ttl_secs: u64,
    /// Webhook events waiting to be sent, per target; beyond it new events are dropped and counted.
    pub webhook_queue_events: usize,
    /// Most events in one webhook request.
    pub webhook_batch_events: usize,
    /// How long one webhook request may take, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// Tries per webhook request (the first one included), with a doubling pause from 0.5 s between them.
    pub webhook_attempts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 100_000,
            max_connections_per_address: 5_000,
            handshake_timeout_secs: 10,
            http_request_timeout_secs: 30,
            max_publish_per_second: 10_000,
            max_message_bytes: 16 * 1024,
            max_event_data_bytes: 10 * 1024,
            max_body_bytes: 256 * 1024,
            max_channels_per_event: 100,
            max_batch_events: 10,
            max_event_name_len: 200,
            max_channels_per_connection: 100,
            send_queue_frames: 1024,
            activity_timeout_secs: 120,
            pong_timeout_secs: 30,
            max_presence_members: 100,
            max_presence_user_info_bytes: 1024,
            max_presence_user_id_chars: 128,
            client_events_per_second: 10,
            cache_ttl_secs: 30 * 60,
            webhook_queue_events: 10_000,
            webhook_batch_events: 100,
            webhook_timeout_ms: 5_000,
            webhook_attempts: 6,
        }
    }
}

impl Limits {
    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_address", self.max_connections_per_address as u64),
            ("handshake_timeout_secs", self.handshake_timeout_secs),
            ("http_request_timeout_secs", self.http_request_timeout_secs),
            ("max_publish_per_second", u64::from(self.max_publish_per_second)),
            ("max_message_bytes", self.max_message_bytes as u64),
            ("max_event_data_bytes", self.max_event_data_bytes as u64),
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_channels_per_event", self.max_channels_per_event as u64),
            ("max_batch_events", self.max_batch_events as u64),
            ("max_event_name_len", self.max_event_name_len as u64),
            ("max_channels_per_connection", self.max_channels_per_connection as u64),
            ("send_queue_frames", self.send_queue_frames as u64),
            ("activity_timeout_secs", self.activity_timeout_secs),
            ("pong_timeout_secs", self.pong_timeout_secs),
            ("max_presence_members", self.max_presence_members as u64),
            ("max_presence_user_info_bytes", self.max_presence_user_info_bytes as u64),
            ("max_presence_user_id_chars", self.max_presence_user_id_chars as u64),
            ("client_events_per_second", u64::from(self.client_events_per_second)),
            ("cache_ttl_secs", self.cache_ttl_secs),
            ("webhook_queue_events", self.webhook_queue_events as u64),
            ("webhook_batch_events", self.webhook_batch_events as u64),
            ("webhook_timeout_ms", self.webhook_timeout_ms),
            ("webhook_attempts", u64::from(self.webhook_attempts)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("limits.{name} must be greater than 0")));
            }
        }
        Ok(())
    }
}

/// Why settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped settings.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
    }

    /// Checks the whole configuration: at least one app, valid and distinct credentials, sane limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.admin_token
            && token.len() < 16
        {
            return Err(ConfigError::Invalid("admin_token must be at least 16 characters long".into()));
        }
        if self.apps.is_empty() {
            return Err(ConfigError::Invalid("no app is configured".into()));
        }
        for (i, app) in self.apps.iter().enumerate() {
            app.validate()?;
            if self.apps[..i].iter().any(|a| a.id == app.id) {
                return Err(ConfigError::Invalid(format!("two apps have the id {:?}", app.id)));
            }
            if self.apps[..i].iter().any(|a| a.key == app.key) {
                return Err(ConfigError::Invalid(format!("two apps have the key {:?}", app.key)));
            }
        }
        if self.adapter == AdapterKind::Redis {
            if !cfg!(feature = "redis") {
                return Err(ConfigError::Invalid(
                    "adapter = \"redis\": this build of Poussr has no Redis adapter (it was built without the \
                     `redis` feature)"
                        .into(),
                ));
            }
            let url = self.redis_url.trim();
            if url.starts_with("rediss://") {
                return Err(ConfigError::Invalid(format!(
                    "redis_url {url:?}: TLS to Redis (rediss://) is not supported; use redis:// on a trusted network"
                )));
            }
            if !url.starts_with("redis://") && !url.starts_with("redis+unix://") && !url.starts_with("unix://") {
                return Err(ConfigError::Invalid(format!(
                    "redis_url {url:?} must start with redis:// (as in redis://127.0.0.1:6379)"
                )));
            }
            let prefix_ok = !self.redis_prefix.is_empty()
                && self.redis_prefix.len() <= 64
                && self.redis_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
            if !prefix_ok {
                return Err(ConfigError::Invalid(format!(
                    "redis_prefix {:?}: use 1-64 characters from A-Z a-z 0-9 - _ . :",
                    self.redis_prefix
                )));
            }
            if self.node_timeout_ms < 2_000 {
                return Err(ConfigError::Invalid(
                    "node_timeout_ms must be at least 2000 (hubs write their heartbeat each second)".into(),
                ));
            }
        }
        for origin in &self.allowed_origins {
            crate::net::normalize_origin_rule(origin).map_err(ConfigError::Invalid)?;
        }
        self.limits.validate()
    }
}

/// A random token of 32 hex characters, for the admin API.
pub fn random_token() -> String {
    let mut rng = rand::rng();
    (0..32).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}

/// Loads the app kept in `dir/credentials.toml`, or makes one and saves it there (atomically: a temporary
/// file renamed over the old one, so a crash never leaves half a file).
pub fn load_or_create_credentials(dir: &Path) -> Result<(AppConfig, bool), ConfigError> {
    let path = dir.join("credentials.toml");
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        let app: AppConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?;
        app.validate()?;
        return Ok((app, false));
    }
    let app = AppConfig::generate();
    let text = toml::to_string(&app).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    write_atomically(&path, text.as_bytes())?;
    Ok((app, true))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that readers see
/// either the old file or the new one, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write;
    let io = |source| ConfigError::Io { path: path.into(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        #[cfg(unix)]
        {
            // The file holds a secret: readable by its owner only.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        // A disk that filled up mid-write leaves a partial temporary file: remove it, keep the old file.
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    // The rename itself reaches the disk once the folder is synced (a power cut would otherwise be able to
    // undo it). Not every platform can open a folder for that, so a failure here is not an error.
    #[cfg(unix)]
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(feature = "redis"))]
    fn without_the_redis_feature_the_adapter_is_refused_clearly() {
        let c = Config { apps: vec![AppConfig::new("1", "k", "s")], adapter: AdapterKind::Redis, ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("built without the `redis` feature"));
    }

    #[test]
    #[cfg(feature = "redis")]
    fn redis_settings_are_checked_with_reasons() {
        let with = |adjust: &dyn Fn(&mut Config)| {
            let mut c =
                Config { apps: vec![AppConfig::new("1", "k", "s")], adapter: AdapterKind::Redis, ..Config::default() };
            adjust(&mut c);
            c.validate().err().map(|e| e.to_string())
        };
        assert_eq!(with(&|_| {}), None);
        assert!(with(&|c| c.redis_url = "rediss://r:6380".into()).unwrap().contains("TLS"));
        assert!(with(&|c| c.redis_url = "http://r".into()).unwrap().contains("must start with redis://"));
        assert!(with(&|c| c.redis_prefix = "a b".into()).unwrap().contains("redis_prefix"));
        assert!(with(&|c| c.node_timeout_ms = 500).unwrap().contains("at least 2000"));
        // A hub alone does not care.
        assert_eq!(
            with(&|c| {
                c.adapter = AdapterKind::Local;
                c.redis_url = "http://r".into();
            }),
            None
        );
    }

    #[test]
    fn generated_credentials_are_random_and_valid() {
        let a = AppConfig::generate();
        let b = AppConfig::generate();
        assert!(a.validate().is_ok());
        assert_ne!(a.key, b.key);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.key.len(), 20);
        assert_eq!(a.secret.len(), 32);
        assert!(a.id.parse::<u32>().is_ok());
    }

    #[test]
    fn credentials_are_created_once_then_kept() {
        let dir = std::env::temp_dir().join(format!("poussr-cred-{}", rand::random::<u64>()));
        let (first, created) = load_or_create_credentials(&dir).unwrap();
        assert!(created);
        let (second, created) = load_or_create_credentials(&dir).unwrap();
        assert!(!created);
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("credentials.toml")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn toml_file_with_apps_and_limits() {
        let text = r#"
            bind = "127.0.0.1"
            port = 7000
            [[apps]]
            id = "1"
            key = "k"
            secret = "s"
            [limits]
            max_connections = 5
        "#;
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.port, 7000);
        assert_eq!(config.apps[0].key, "k");
        assert!(config.apps[0].enabled);
        assert_eq!(config.limits.max_connections, 5);
        assert_eq!(config.limits.max_batch_events, 10);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn unknown_settings_are_errors_not_ignored() {
        let err = toml::from_str::<Config>("prot = 1").unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn invalid_configs_say_why() {
        let mut config = Config::default();
        assert!(config.validate().unwrap_err().to_string().contains("no app"));
        config.apps = vec![AppConfig::generate(), AppConfig::generate()];
        config.apps[1].id = config.apps[0].id.clone();
        assert!(config.validate().unwrap_err().to_string().contains("two apps"));
        config.apps[1] = AppConfig::generate();
        config.limits.send_queue_frames = 0;
        assert!(config.validate().unwrap_err().to_string().contains("send_queue_frames"));
        let bad = AppConfig { id: "a/b".into(), ..AppConfig::generate() };
        assert!(bad.validate().is_err());
    }
}
