//! The operator's settings: defaults compiled in from `tauri.conf.json` (`plugins.poussr`), the operator's
//! changes saved to `settings.json` in the OS config folder, and `POUSSR_BIND` / `POUSSR_PORT`, which
//! override one launch without being saved.
//!
//! Saving is atomic (a temporary file, then a rename), so a crash leaves the old file or the new one. A
//! damaged file at startup is set aside, not overwritten, and the defaults are used; the window says so.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use poussr::config::{AppConfig, Config, ConfigError, Limits, write_atomically};
use serde::{Deserialize, Serialize};

/// The name of the settings file in the config folder.
pub const FILE_NAME: &str = "settings.json";

/// What the operator can set. Every field has a default, so an older or partial file still loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The address to listen on.
    pub bind: IpAddr,
    /// The port.
    pub port: u16,
    /// Accept Poussr v1 publishing from other machines without a token.
    pub allow_anonymous_publish: bool,
    /// Let other machines watch the dashboard (with the admin token).
    pub allow_remote_dashboard: bool,
    /// Let the check page of any device publish its test event.
    pub allow_check_publish: bool,
    /// Announce the hub on the LAN (mDNS / DNS-SD).
    pub mdns: bool,
    /// The web pages whose scripts may connect (empty: any); see `Config::allowed_origins`.
    pub allowed_origins: Vec<String>,
    /// Alone, or in a cluster through Redis.
    pub adapter: poussr::config::AdapterKind,
    /// The cluster's Redis server.
    pub redis_url: String,
    /// The cluster's key prefix.
    pub redis_prefix: String,
    /// The hub's limits.
    pub limits: Limits,
    /// The app's credentials: generated on first launch, then kept.
    pub app: Option<AppConfig>,
    /// TLS: the certificate and key the hub presents (`wss://`, `https://` beside plain on the same port),
    /// and the CA it trusts for webhooks and offers to devices. The window itself talks to the hub over
    /// plain HTTP on loopback, so plain is always served beside TLS here.
    pub tls: poussr::config::TlsConfig,
}

impl Default for Settings {
    fn default() -> Self {
        let hub = Config::default();
        Settings {
            bind: hub.bind,
            port: hub.port,
            allow_anonymous_publish: hub.allow_anonymous_publish,
            allow_remote_dashboard: hub.allow_remote_dashboard,
            allow_check_publish: hub.allow_check_publish,
            mdns: hub.mdns,
            allowed_origins: hub.allowed_origins,
            adapter: hub.adapter,
            redis_url: hub.redis_url,
            redis_prefix: hub.redis_prefix,
            limits: hub.limits,
            app: None,
            tls: hub.tls,
        }
    }
}

impl Settings {
    /// The defaults from `plugins.poussr` in `tauri.conf.json`, over the hub's own defaults.
    pub fn from_plugin_config(value: Option<&serde_json::Value>) -> Result<Self, String> {
        match value {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("plugins.poussr in tauri.conf.json: {e}")),
            None => Ok(Settings::default()),
        }
    }

    /// The hub configuration for these settings.
    pub fn hub_config(&self, admin_token: &str) -> Config {
        Config {
            bind: self.bind,
            port: self.port,
            allow_anonymous_publish: self.allow_anonymous_publish,
            allow_remote_dashboard: self.allow_remote_dashboard,
            allow_check_publish: self.allow_check_publish,
            mdns: self.mdns,
            admin_token: Some(admin_token.to_owned()),
            allowed_origins: self.allowed_origins.clone(),
            adapter: self.adapter,
            redis_url: self.redis_url.clone(),
            redis_prefix: self.redis_prefix.clone(),
            apps: self.app.iter().cloned().collect(),
            limits: self.limits.clone(),
            tls: poussr::config::TlsConfig { plain: true, ..self.tls.clone() },
            // Not a setting of the window: how long a silent hub stays in the cluster.
            ..Config::default()
        }
    }
}

/// `POUSSR_BIND` / `POUSSR_PORT`: for this launch only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overrides {
    /// From `POUSSR_BIND`.
    pub bind: Option<IpAddr>,
    /// From `POUSSR_PORT`.
    pub port: Option<u16>,
}

impl Overrides {
    /// Reads the environment. A value that does not parse is reported, not ignored.
    pub fn from_env() -> (Self, Vec<String>) {
        Self::from_vars(std::env::var("POUSSR_BIND").ok(), std::env::var("POUSSR_PORT").ok())
    }

    /// Reads the two values (split out so tests need not touch the process environment).
    pub fn from_vars(bind: Option<String>, port: Option<String>) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let bind = bind.and_then(|b| {
            b.parse().map_err(|_| problems.push(format!("POUSSR_BIND={b:?} is not an IP address; ignored"))).ok()
        });
        let port = port.and_then(|p| {
            p.parse().map_err(|_| problems.push(format!("POUSSR_PORT={p:?} is not a port number; ignored"))).ok()
        });
        (Overrides { bind, port }, problems)
    }

    /// `settings` with the overrides applied.
    pub fn apply(&self, settings: &Settings) -> Settings {
        Settings {
            bind: self.bind.unwrap_or(settings.bind),
            port: self.port.unwrap_or(settings.port),
            ..settings.clone()
        }
    }

    /// Whether any override is in force.
    pub fn any(&self) -> bool {
        self.bind.is_some() || self.port.is_some()
    }
}

/// Why settings could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(String),
}

/// Settings as loaded at startup.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings to use.
    pub settings: Settings,
    /// Something the operator should be told (a damaged file set aside, new credentials).
    pub notice: Option<String>,
    /// There was no settings file: the first launch with this folder.
    pub first_run: bool,
}

/// The settings file in its folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    /// The OS config folder (`~/.config/poussr` on Linux, `~/Library/Application Support/io.Poussr.Poussr`
    /// on macOS, `%APPDATA%\Poussr\Poussr\config` on Windows).
    pub fn os_default() -> Option<Self> {
        directories::ProjectDirs::from("io", "Poussr", "Poussr").map(|d| Store::new(d.config_dir()))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Loads the settings, or starts from `defaults`. Credentials are generated and saved when there are
    /// none; a damaged file is renamed aside and the operator is told.
    pub fn load(&self, defaults: &Settings) -> Result<Loaded, SettingsError> {
        let path = self.path();
        // A save cut short (the app killed, the disk full) can leave its temporary file; the settings file
        // itself is whole, old or new, so the leftover is only removed.
        let _ = std::fs::remove_file(path.with_extension("tmp"));
        let mut notice = None;
        let mut first_run = false;
        let mut settings = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Settings>(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    let aside = self.set_aside(&path)?;
                    notice = Some(format!(
                        "The settings file was damaged ({e}). It was kept as {} and the defaults are in use; \
                         check the Settings pane.",
                        aside.display()
                    ));
                    defaults.clone()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                first_run = true;
                defaults.clone()
            }
            Err(e) => return Err(SettingsError::Io(format!("cannot read {}: {e}", path.display()))),
        };
        if settings.app.as_ref().is_none_or(|a| a.validate().is_err()) {
            settings.app = Some(AppConfig::generate());
            self.save(&settings)?;
        }
        Ok(Loaded { settings, notice, first_run })
    }

    fn set_aside(&self, path: &Path) -> Result<PathBuf, SettingsError> {
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let aside = self.dir.join(format!("{FILE_NAME}.damaged-{stamp}"));
        std::fs::rename(path, &aside)
            .map_err(|e| SettingsError::Io(format!("cannot set the damaged {} aside: {e}", path.display())))?;
        Ok(aside)
    }

    /// Saves atomically: the file is whole, old or new, whatever happens.
    pub fn save(&self, settings: &Settings) -> Result<(), SettingsError> {
        let text = serde_json::to_vec_pretty(settings).map_err(|e| SettingsError::Io(e.to_string()))?;
        write_atomically(&self.path(), &text).map_err(|e| match e {
            ConfigError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                SettingsError::Io(format!(
                    "cannot save the settings: the disk holding {} is full; free some space and apply again",
                    self.dir.display()
                ))
            }
            e => SettingsError::Io(format!("cannot save the settings: {e}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(tag: &str) -> Store {
        let n: u64 = rand::random();
        Store::new(std::env::temp_dir().join(format!("poussr-settings-{tag}-{n}")))
    }

    #[test]
    fn first_launch_generates_credentials_and_saves_them() {
        let store = temp_store("first");
        let loaded = store.load(&Settings::default()).unwrap();
        assert!(loaded.notice.is_none());
        let app = loaded.settings.app.clone().unwrap();
        assert!(app.validate().is_ok());
        let again = store.load(&Settings::default()).unwrap();
        assert_eq!(again.settings.app, Some(app));
        std::fs::remove_dir_all(store.dir()).unwrap();
    }

    #[test]
    fn saving_is_atomic_and_leaves_no_temporary_file() {
        let store = temp_store("atomic");
        let mut s = store.load(&Settings::default()).unwrap().settings;
        s.port = 7123;
        store.save(&s).unwrap();
        assert_eq!(store.load(&Settings::default()).unwrap().settings.port, 7123);
        let names: Vec<String> =
            std::fs::read_dir(store.dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, [FILE_NAME]);
        std::fs::remove_dir_all(store.dir()).unwrap();
    }

    #[test]
    fn a_damaged_file_is_set_aside_and_the_defaults_used() {
        let store = temp_store("damaged");
        std::fs::create_dir_all(store.dir()).unwrap();
        // Half a file, as a crash in the middle of a non-atomic write would leave.
        std::fs::write(store.path(), b"{\"bind\": \"0.0.0.0\", \"po").unwrap();
        let defaults = Settings { port: 6111, ..Settings::default() };
        let loaded = store.load(&defaults).unwrap();
        assert_eq!(loaded.settings.port, 6111);
        let notice = loaded.notice.unwrap();
        assert!(notice.contains("damaged"), "{notice}");
        let aside: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("settings.json.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "the bad file is kept");
        assert_eq!(std::fs::read(store.dir().join(&aside[0])).unwrap(), b"{\"bind\": \"0.0.0.0\", \"po");
        // And a good file was written in its place.
        assert!(store.load(&defaults).unwrap().notice.is_none());
        std::fs::remove_dir_all(store.dir()).unwrap();
    }

    #[test]
    fn env_overrides_apply_to_the_launch_not_to_the_file() {
        let store = temp_store("env");
        let saved = store.load(&Settings::default()).unwrap().settings;
        let (overrides, problems) = Overrides::from_vars(Some("127.0.0.1".into()), Some("7001".into()));
        assert!(problems.is_empty());
        let effective = overrides.apply(&saved);
        assert_eq!((effective.bind, effective.port), (IpAddr::from([127, 0, 0, 1]), 7001));
        assert_eq!(store.load(&Settings::default()).unwrap().settings, saved, "nothing was saved");
        let (_, problems) = Overrides::from_vars(Some("nope".into()), Some("99999".into()));
        assert_eq!(problems.len(), 2);
        std::fs::remove_dir_all(store.dir()).unwrap();
    }

    #[test]
    fn plugin_defaults_are_read_from_the_tauri_config() {
        let v = serde_json::json!({"bind": "127.0.0.1", "port": 6123, "limits": {"max_connections": 50}});
        let s = Settings::from_plugin_config(Some(&v)).unwrap();
        assert_eq!((s.port, s.limits.max_connections, s.limits.max_batch_events), (6123, 50, 10));
        assert!(Settings::from_plugin_config(Some(&serde_json::json!({"prot": 1}))).is_err());
        assert_eq!(Settings::from_plugin_config(None).unwrap(), Settings::default());
    }
}
