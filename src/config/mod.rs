//! Hub settings: the apps (credentials) and the limits, with their defaults, read from a TOML file and
//! overridden by flags and environment variables in `main.rs`. Credentials are never fixed, well-known
//! values: when the operator gives none, random ones are made on first start and kept in the data folder.
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | [`Config`], the whole configuration, its file and its checks |
//! | `app.rs` | [`AppConfig`]: an app's credentials, switches and webhook targets |
//! | `history.rs` | [`HistoryStore`] (where, how durable) and [`HistoryConfig`] (what each app keeps) |
//! | `limits.rs` | [`Limits`], each with its default |
//! | `tls.rs` | [`TlsConfig`]: the certificate, the CA trusted for outgoing TLS, plain beside TLS |
//! | `files.rs` | the credentials file, atomic writes, random tokens |

mod app;
mod files;
mod history;
mod limits;
mod tls;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use app::{AppConfig, WebhookConfig, WebhookKind};
pub use files::{load_or_create_credentials, random_token, write_atomically};
pub use history::{HistoryConfig, HistoryStore, SyncPolicy};
pub use limits::Limits;
pub use tls::TlsConfig;

/// Everything the hub needs to run. `bind` and `port` are used by whoever binds the listener (the server
/// takes an already bound one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The address to listen on: `0.0.0.0` serves the LAN, `127.0.0.1` only this machine.
    pub bind: IpAddr,
    /// The port; 0 picks a free one.
    pub port: u16,
    /// Accept Poussr v1 publishing without a token from other machines than this one.
    pub allow_anonymous_publish: bool,
    /// Let the check page (`/check`) of any device publish its test event (`check`, to a public channel).
    pub allow_check_publish: bool,
    /// Announce the hub on the LAN over mDNS / DNS-SD (`_poussr._tcp`, and `poussr-<host>.local`). Never
    /// done when the hub listens on loopback only.
    pub mdns: bool,
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
    /// The Redis server of the cluster (`adapter = "redis"`): `redis://[:password@]host[:port][/db]`, or
    /// `rediss://…` for Redis over TLS (trusting the system's roots and `tls.ca`).
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
    /// Where the history of events is kept, and how durably (each app says what it keeps).
    pub history: HistoryStore,
    /// TLS on the hub's port (`wss://`, `https://`) and for its own outgoing connections.
    pub tls: TlsConfig,
    /// The reverse proxies (addresses such as `127.0.0.1`, or networks such as `10.0.0.0/8`) whose
    /// `Forwarded` / `X-Forwarded-For` headers name the real client. Requests from anywhere else have those
    /// headers ignored, and are never treated as coming from this machine when they carry one.
    pub trusted_proxies: Vec<String>,
    /// The forwarding header the trusted proxies write: `x-forwarded-for` (the default) or `forwarded`.
    /// Only that one is read; the other may come from the client itself.
    pub trusted_proxy_header: crate::proxy::ForwardedHeader,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 6001,
            allow_anonymous_publish: false,
            allow_check_publish: false,
            mdns: true,
            admin_token: None,
            allow_remote_dashboard: false,
            allowed_origins: Vec::new(),
            adapter: AdapterKind::Local,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: "poussr".into(),
            node_timeout_ms: 5_000,
            apps: Vec::new(),
            limits: Limits::default(),
            history: HistoryStore::default(),
            tls: TlsConfig::default(),
            trusted_proxies: Vec::new(),
            trusted_proxy_header: crate::proxy::ForwardedHeader::default(),
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
        self.history.validate()?;
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
            let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
            if !schemes.iter().any(|s| url.starts_with(s)) {
                return Err(ConfigError::Invalid(format!(
                    "redis_url {url:?} must start with redis:// or rediss:// (TLS), as in redis://127.0.0.1:6379"
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
        for proxy in &self.trusted_proxies {
            crate::proxy::Cidr::parse(proxy).map_err(|e| ConfigError::Invalid(format!("trusted_proxies: {e}")))?;
        }
        self.tls.validate()?;
        self.limits.validate()
    }
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
        assert_eq!(with(&|c| c.redis_url = "rediss://r:6380".into()), None);
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
        config.limits = Limits::default();
        config.trusted_proxies = vec!["10.0.0.0/33".into()];
        assert!(config.validate().unwrap_err().to_string().contains("trusted_proxies"));
        config.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
        config.tls.cert = Some("cert.pem".into());
        assert!(config.validate().unwrap_err().to_string().contains("needs its key"));
        config.tls.key = Some("key.pem".into());
        assert!(config.validate().is_ok());
    }
}
