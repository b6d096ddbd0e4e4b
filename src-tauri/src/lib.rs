//! Poussr's desktop shell: the tray process, which hosts the hub from the `poussr` crate. This library never
//! names Tauri, so the tray (`poussr-desktop`) never loads WebKit; the window is another program,
//! `poussr-window` (`src/window/`), a Tauri app the tray starts when the operator opens Poussr.
//!
//! # Layout
//!
//! | module | role |
//! |---|---|
//! | `lib.rs` | the shared state ([`AppState`]): settings applied and saved, certificates; the launch sequence; command-line options |
//! | [`app`] | `run()`: the tray's event loop (tao), the single-instance handover, quitting |
//! | [`settings`] | defaults from `tauri.conf.json`, the operator's `settings.json` (atomic saves), env overrides |
//! | [`runner`] | the hub's lifecycle: start, move to a new address (bind first, then release), stop with 4200 |
//! | [`tray`] | the tray icon, tooltip and menu; menu actions are plain functions |
//! | [`instance`] | one Poussr per session: a second launch hands its command line to the first and exits |
//! | [`window`] | the tray's side of the window process, started on Open and gone when the window closes |
//! | [`autostart`] | start at login: the OS's own entry (XDG autostart, HKCU Run) |
//! | [`commands`] | what the window asks the tray: connection, settings, certificates, the config folder |
//!
//! The window shows the bundled `ui/` and reads the hub through its admin API, like a browser would; its
//! Tauri IPC carries only what only the desktop can do.

pub mod app;
pub mod autostart;
pub mod commands;
mod common;
pub mod instance;
pub mod runner;
pub mod settings;
pub mod tray;
pub mod window;

use std::sync::{Arc, Mutex};

use poussr::config::{WebhookConfig, WebhookKind};

use crate::commands::{Connection, Error, SettingsInput, SettingsView, parse_bind};
use crate::runner::Runner;
use crate::settings::{Overrides, Settings, Store};

/// What the commands and the tray share.
pub struct AppState {
    /// The hub.
    pub runner: Arc<Runner>,
    /// Where the settings live.
    pub store: Store,
    /// The compiled-in defaults.
    pub defaults: Settings,
    /// What is saved (the operator's choices).
    saved: Mutex<Settings>,
    /// `POUSSR_BIND` / `POUSSR_PORT` for this launch; cleared when the operator applies new settings.
    overrides: Mutex<Overrides>,
    /// A message for the operator about the settings (a damaged file, a bad environment variable).
    notice: Mutex<Option<String>>,
    /// The admin API token for this launch.
    admin_token: String,
    /// The history store's folder.
    history_dir: std::path::PathBuf,
    /// Where *Create a certificate* keeps the local CA and this machine's certificate.
    tls_dir: std::path::PathBuf,
}

pub(crate) use common::{has_display, lock};

/// The hub configuration for `settings`, with this launch's admin token and history folder.
fn hub_config(settings: &Settings, admin_token: &str, history_dir: &std::path::Path) -> poussr::Config {
    let mut config = settings.hub_config(admin_token);
    config.history.dir = Some(history_dir.to_path_buf());
    // `POUSSR_NO_MDNS=true` keeps this launch off mDNS whatever the settings say (the tests set it). Read as
    // `poussr serve` reads it: true/1/yes/on or false/0/no/off.
    if let Ok(value) = std::env::var("POUSSR_NO_MDNS") {
        match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" | "y" | "t" => config.mdns = false,
            "" | "0" | "false" | "no" | "off" | "n" | "f" => {}
            other => tracing::warn!("POUSSR_NO_MDNS={other:?} is neither true nor false; ignored"),
        }
    }
    config
}

impl AppState {
    /// The connection details for the window.
    pub fn connection(&self) -> Connection {
        Connection {
            status: self.runner.status(),
            admin_token: self.admin_token.clone(),
            notice: lock(&self.notice).clone(),
        }
    }

    /// The settings for the Settings pane.
    pub fn settings_view(&self) -> SettingsView {
        let saved = lock(&self.saved).clone();
        let overrides = lock(&self.overrides).clone();
        SettingsView {
            effective: overrides.apply(&saved),
            saved,
            defaults: self.defaults.clone(),
            overrides,
            file: self.store.path().to_string_lossy().into_owned(),
            machine_addresses: poussr::net::interface_addresses().iter().map(|ip| ip.to_string()).collect(),
            start_at_login: autostart::status(),
        }
    }

    /// Tries the new settings, then saves them; on any failure the previous settings stay in force.
    pub async fn apply(&self, input: SettingsInput) -> Result<Connection, Error> {
        let bind = parse_bind(&input.bind)?;
        if input.port == 0 {
            return Err(Error::Invalid("choose a port from 1 to 65535".into()));
        }
        let previous = lock(&self.saved).clone();
        let app = match previous.app.clone() {
            Some(mut app) => {
                if let Some(on) = input.client_events {
                    app.client_events = on;
                }
                if let Some(url) = input.webhook_url.as_deref().map(str::trim) {
                    // The window edits the first webhook (others from a hand-edited file are kept); an empty
                    // URL turns webhooks off.
                    let events = input.webhook_events.clone().unwrap_or_default();
                    let events = if events.len() == WebhookKind::ALL.len() { Vec::new() } else { events };
                    if url.is_empty() {
                        app.webhooks.truncate(0);
                    } else if let Some(first) = app.webhooks.first_mut() {
                        *first = WebhookConfig { url: url.to_owned(), events };
                    } else {
                        app.webhooks.push(WebhookConfig { url: url.to_owned(), events });
                    }
                }
                app.validate().map_err(|e| Error::Invalid(e.to_string()))?;
                Some(app)
            }
            None => None,
        };
        let tls = tls_input(&input, &previous.tls);
        let next = Settings {
            bind,
            port: input.port,
            allow_anonymous_publish: input.allow_anonymous_publish,
            allow_remote_dashboard: input.allow_remote_dashboard,
            allow_check_publish: input.allow_check_publish.unwrap_or(previous.allow_check_publish),
            mdns: input.mdns.unwrap_or(previous.mdns),
            allowed_origins: match input.allowed_origins.as_deref() {
                Some(typed) => parse_origins(typed)?,
                None => previous.allowed_origins.clone(),
            },
            adapter: input.adapter.unwrap_or(previous.adapter),
            redis_url: input
                .redis_url
                .as_deref()
                .map(str::trim)
                .map(str::to_owned)
                .unwrap_or_else(|| previous.redis_url.clone()),
            redis_prefix: input
                .redis_prefix
                .as_deref()
                .map(str::trim)
                .map(str::to_owned)
                .unwrap_or_else(|| previous.redis_prefix.clone()),
            limits: input.limits.unwrap_or_else(|| previous.limits.clone()),
            app,
            tls,
        };
        next.limits.validate().map_err(|e| Error::Invalid(e.to_string()))?;
        // Start at login is the OS's entry, not the settings file: changed first, and put back if the rest
        // cannot be applied.
        let login_before = Some(autostart::status()).filter(|s| s.error.is_none()).map(|s| s.enabled);
        let login = match input.start_at_login {
            Some(wanted) if Some(wanted) != login_before => {
                let program = autostart::program().map_err(Error::Settings)?;
                autostart::set(wanted, &program).map_err(|e| Error::Settings(format!("Start at login: {e}")))?;
                Some((!wanted, program))
            }
            _ => None,
        };
        let applied = self.commit(previous, next).await;
        if applied.is_err()
            && let Some((back, program)) = login
            && let Err(e) = autostart::set(back, &program)
        {
            tracing::error!("cannot put the start at login entry back: {e}");
        }
        applied
    }

    /// Makes a certificate for this machine (reusing the local CA) and serves TLS with it. When TLS already
    /// uses those files, the hub picks the new certificate up by itself, without a restart.
    pub async fn create_certificate(&self) -> Result<Connection, Error> {
        let dir = self.tls_dir.clone();
        let made =
            tokio::task::spawn_blocking(move || poussr::cert::create(&dir, &poussr::cert::machine_names(), false))
                .await
                .map_err(|e| Error::Invalid(e.to_string()))?
                .map_err(Error::Invalid)?;
        let tls = poussr::config::TlsConfig {
            cert: Some(made.files.cert),
            key: Some(made.files.key),
            ca: Some(made.files.ca),
            plain: true,
        };
        let previous = lock(&self.saved).clone();
        if previous.tls == tls {
            // The hub already serves these files: it takes the new certificate without a restart.
            self.runner.reload_tls().await;
            return Ok(self.connection());
        }
        let next = Settings { tls, ..previous.clone() };
        self.commit(previous, next).await
    }

    /// The CA file of the TLS settings in force, if any.
    pub fn tls_ca(&self) -> Option<std::path::PathBuf> {
        lock(&self.saved).tls.ca.clone()
    }

    /// Moves the hub to `next`, then saves it; on any failure `previous` stays in force.
    async fn commit(&self, previous: Settings, next: Settings) -> Result<Connection, Error> {
        let config = hub_config(&next, &self.admin_token, &self.history_dir);
        // Checked before the hub moves: a certificate that cannot be used must not stop the hub.
        config.validate().map_err(|e| Error::Invalid(e.to_string()))?;
        poussr::tls::Tls::from_config(&config.tls).map_err(Error::Invalid)?;
        self.runner.apply(config).await?;
        if let Err(e) = self.store.save(&next) {
            // Not saved: go back to what is saved, so that what runs is what the next launch will run.
            let restore = lock(&self.overrides).apply(&previous);
            if let Err(back) = self.runner.apply(hub_config(&restore, &self.admin_token, &self.history_dir)).await {
                tracing::error!("cannot go back to the previous settings: {back}");
            }
            return Err(Error::Settings(format!("{e}. The previous settings are still in force.")));
        }
        *lock(&self.saved) = next;
        // The operator chose an address: the launch-time overrides no longer apply.
        *lock(&self.overrides) = Overrides::default();
        *lock(&self.notice) = None;
        Ok(self.connection())
    }
}

/// The TLS settings from the Settings pane: each path as typed (empty: none), or as before when absent.
fn tls_input(input: &SettingsInput, previous: &poussr::config::TlsConfig) -> poussr::config::TlsConfig {
    let path = |typed: &Option<String>, before: &Option<std::path::PathBuf>| match typed.as_deref().map(str::trim) {
        Some("") => None,
        Some(p) => Some(std::path::PathBuf::from(p)),
        None => before.clone(),
    };
    poussr::config::TlsConfig {
        cert: path(&input.tls_cert, &previous.cert),
        key: path(&input.tls_key, &previous.key),
        ca: path(&input.tls_ca, &previous.ca),
        plain: true,
    }
}

/// The allowed origins as typed in the Settings pane: separated by spaces, commas or new lines, each
/// checked (a bad one is refused with the reason).
fn parse_origins(typed: &str) -> Result<Vec<String>, Error> {
    typed
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|o| !o.is_empty())
        .map(|o| poussr::net::normalize_origin_rule(o).map_err(Error::Invalid))
        .collect()
}

/// Options from the command line: `--config-dir DIR` (tests and portable installs), `--hidden` (start
/// in the tray without opening the window), `--quit` (ask the running Poussr to quit, as its Quit does:
/// what the Windows installer and uninstaller do before they replace or remove the program) and
/// `--autostart on|off|status` (set or tell whether Poussr starts at login, then exit).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LaunchOptions {
    /// Where settings live, instead of the OS config folder.
    pub config_dir: Option<std::path::PathBuf>,
    /// Start without showing the window.
    pub hidden: bool,
    /// Quit the running Poussr (if there is none, exit at once).
    pub quit: bool,
    /// `--autostart on|off|status`: only that, then exit.
    pub autostart: Option<String>,
}

impl LaunchOptions {
    /// Reads `args` (without the program name) and `POUSSR_CONFIG_DIR`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Self {
        let mut out =
            LaunchOptions { config_dir: std::env::var_os("POUSSR_CONFIG_DIR").map(Into::into), ..Default::default() };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--hidden" {
                out.hidden = true;
            } else if arg == "--quit" {
                out.quit = true;
            } else if arg == "--config-dir" {
                out.config_dir = args.next().map(Into::into);
            } else if let Some(dir) = arg.strip_prefix("--config-dir=") {
                out.config_dir = Some(dir.into());
            } else if arg == "--autostart" {
                out.autostart = Some(args.next().unwrap_or_default());
            } else if let Some(what) = arg.strip_prefix("--autostart=") {
                out.autostart = Some(what.to_owned());
            }
        }
        out
    }
}

/// `tauri.conf.json`, compiled in: the app's identifier and the defaults of its settings (the window's program
/// reads the same file through Tauri).
pub(crate) fn tauri_conf() -> Result<serde_json::Value, String> {
    serde_json::from_str(include_str!("../tauri.conf.json")).map_err(|e| format!("tauri.conf.json: {e}"))
}

/// The defaults compiled in: `plugins.poussr` of `tauri.conf.json`, over the hub's own.
pub fn compiled_defaults() -> Result<Settings, String> {
    Settings::from_plugin_config(tauri_conf()?.pointer("/plugins/poussr"))
}

/// Loads the settings and starts the hub, on the current tokio runtime. A failure to listen is not fatal:
/// the window shows it and lets the operator choose another port.
pub async fn launch(options: &LaunchOptions) -> Result<AppState, String> {
    poussr::server::raise_open_file_limit();
    let defaults = compiled_defaults()?;
    let store = match &options.config_dir {
        Some(dir) => Store::new(dir),
        None => Store::os_default().ok_or("no config folder was found for this user; start with --config-dir DIR")?,
    };
    // The history of events: beside the settings when they were given a folder (tests, portable installs),
    // else in the OS data folder.
    let history_dir = match &options.config_dir {
        Some(dir) => dir.join("history"),
        None => directories::ProjectDirs::from("io", "Poussr", "Poussr")
            .map(|d| d.data_dir().join("history"))
            .ok_or("no data folder was found for this user; start with --config-dir DIR")?,
    };
    // The local CA and this machine's certificate (Settings → Create a certificate): beside the history.
    let tls_dir = history_dir.parent().map_or_else(|| history_dir.join("tls"), |d| d.join("tls"));
    let loaded = store.load(&defaults).map_err(|e| e.to_string())?;
    if loaded.first_run && options.config_dir.is_none() && !cfg!(windows) {
        // A fresh install starts at login (the Windows installer decides that itself, with its own box).
        // A folder given with --config-dir (tests, portable installs) never touches the user's login.
        match autostart::program().and_then(|p| autostart::set(true, &p)) {
            Ok(s) => tracing::info!("first launch: Poussr will start at login ({})", s.location),
            Err(e) => tracing::warn!("first launch: cannot make Poussr start at login: {e}"),
        }
    }
    let (overrides, problems) = Overrides::from_env();
    let notice = match (loaded.notice, problems.is_empty()) {
        (n, true) => n,
        (n, false) => Some([n.unwrap_or_default(), problems.join(" ")].join(" ").trim().to_owned()),
    };
    let admin_token = poussr::config::random_token();
    let runner = Arc::new(Runner::default());
    let mut config = hub_config(&overrides.apply(&loaded.settings), &admin_token, &history_dir);
    let notice = match tls_at_launch(&mut config, &tls_dir) {
        Some(problem) => Some([notice.unwrap_or_default(), problem].join(" ").trim().to_owned()),
        None => notice,
    };
    if let Err(e) = runner.start(config).await {
        tracing::warn!("the hub did not start: {e}");
    }
    Ok(AppState {
        runner,
        store,
        defaults,
        saved: Mutex::new(loaded.settings),
        overrides: Mutex::new(overrides),
        notice: Mutex::new(notice),
        admin_token,
        history_dir,
        tls_dir,
    })
}

/// TLS at launch. The certificate Poussr made for this machine (in `tls_dir`) is made again first when it
/// nears its end or the machine has a new address (same CA: devices need nothing new). Certificate files
/// that cannot be used leave TLS off for this launch, so that plain clients and the window still work;
/// the returned message says so.
fn tls_at_launch(config: &mut poussr::Config, tls_dir: &std::path::Path) -> Option<String> {
    let ours = config.tls.cert.as_deref() == Some(tls_dir.join("cert.pem").as_path());
    if ours {
        match poussr::cert::ensure_for_machine(tls_dir) {
            Ok(Some((_, why))) => tracing::info!("made a new certificate for this machine ({why})"),
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot renew this machine's certificate: {e}"),
        }
    }
    match poussr::tls::Tls::from_config(&config.tls) {
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("TLS is off for this launch: {e}");
            config.tls = poussr::config::TlsConfig::default();
            Some(format!(
                "TLS (https, wss) is off for this launch: {e}. Choose other files or create a certificate in Settings."
            ))
        }
    }
}

/// `--autostart on|off|status`: sets or tells whether Poussr starts at login; the exit code says whether
/// it worked.
pub fn autostart_command(what: &str) -> i32 {
    let result = match what {
        "on" | "off" => autostart::program().and_then(|p| autostart::set(what == "on", &p)),
        "status" => {
            let s = autostart::status();
            s.error.clone().map_or(Ok(s), Err)
        }
        other => Err(format!("--autostart takes on, off or status, not {other:?}")),
    };
    match result {
        Ok(s) => {
            println!("start at login: {} ({})", if s.enabled { "on" } else { "off" }, s.location);
            0
        }
        Err(e) => {
            eprintln!("poussr-desktop: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests;
