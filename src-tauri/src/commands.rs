//! The Tauri commands: one-line wrappers over plain Rust, for what only the desktop can do — the hub's
//! address and admin token, settings, restart, the clipboard and the config folder. Everything else the
//! window asks the hub itself, over its admin API.

use std::net::IpAddr;

use poussr::Limits;
use serde::{Deserialize, Serialize, Serializer};
use tauri::{AppHandle, Manager, Runtime, State};
use tauri_plugin_clipboard_manager::ClipboardExt;
use tauri_plugin_dialog::DialogExt;
use tauri_plugin_opener::OpenerExt;

use crate::AppState;
use crate::runner::{BindError, BindErrorKind, Status};
use crate::settings::{Overrides, Settings};

/// Why a command failed. Serialized as `{"kind": "...", "message": "..."}` for the window.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The hub could not listen where asked; it still serves where it did.
    #[error("{0}")]
    Bind(#[from] BindError),
    /// A setting is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The settings could not be saved; the previous ones are kept.
    #[error("{0}")]
    Settings(String),
    /// The clipboard refused.
    #[error("cannot use the clipboard: {0}")]
    Clipboard(String),
    /// The config folder could not be opened.
    #[error("cannot open the folder: {0}")]
    Open(String),
}

/// What kind of failure a command reports, for the window to act on; on the wire in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ErrorKind {
    /// The hub could not listen where asked (`port_in_use`, ...).
    Bind(BindErrorKind),
    /// Another failure of a command.
    Command(CommandFailure),
}

/// The failures of commands other than binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandFailure {
    /// A setting is not valid.
    Invalid,
    /// The settings could not be saved.
    Settings,
    /// The clipboard refused.
    Clipboard,
    /// The folder could not be opened.
    Open,
}

impl Error {
    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Bind(e) => ErrorKind::Bind(e.kind),
            Error::Invalid(_) => ErrorKind::Command(CommandFailure::Invalid),
            Error::Settings(_) => ErrorKind::Command(CommandFailure::Settings),
            Error::Clipboard(_) => ErrorKind::Command(CommandFailure::Clipboard),
            Error::Open(_) => ErrorKind::Command(CommandFailure::Open),
        }
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Error", 2)?;
        s.serialize_field("kind", &self.kind())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}

/// How the window reaches the hub, and what it should tell the operator.
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    /// The hub's state, address and error.
    pub status: Status,
    /// The token for the admin API (new at each launch).
    pub admin_token: String,
    /// A message about the settings file, if any.
    pub notice: Option<String>,
}

/// `connection`: the hub's base URL and admin token, in one call.
#[tauri::command]
pub fn connection(state: State<'_, AppState>) -> Connection {
    state.connection()
}

/// The settings as the Settings pane shows them.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// What is saved.
    pub saved: Settings,
    /// What is in force (saved, plus the environment's overrides).
    pub effective: Settings,
    /// The compiled-in defaults.
    pub defaults: Settings,
    /// `POUSSR_BIND` / `POUSSR_PORT`, when set.
    pub overrides: Overrides,
    /// The settings file.
    pub file: String,
    /// This machine's addresses, to choose a bind address from.
    pub machine_addresses: Vec<String>,
    /// Whether Poussr starts at login (the OS's entry), or why that cannot be read.
    pub start_at_login: crate::autostart::StartAtLogin,
}

/// `get_settings`.
#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> SettingsView {
    state.settings_view()
}

/// What the Settings pane sends.
#[derive(Debug, Clone, Deserialize)]
pub struct SettingsInput {
    /// The address to listen on, as typed.
    pub bind: String,
    /// The port.
    pub port: u16,
    /// Accept v1 publishing from other machines without a token.
    pub allow_anonymous_publish: bool,
    /// Let other machines watch the dashboard.
    pub allow_remote_dashboard: bool,
    /// Let the check page publish its test event; unchanged when absent.
    #[serde(default)]
    pub allow_check_publish: Option<bool>,
    /// Announce the hub on the LAN; unchanged when absent.
    #[serde(default)]
    pub mdns: Option<bool>,
    /// Start Poussr at login (the OS's entry); unchanged when absent.
    #[serde(default)]
    pub start_at_login: Option<bool>,
    /// The origins allowed to open WebSockets, as typed (separated by spaces, commas or lines); empty
    /// admits every page; unchanged when absent.
    #[serde(default)]
    pub allowed_origins: Option<String>,
    /// Alone or through Redis; unchanged when absent.
    #[serde(default)]
    pub adapter: Option<poussr::config::AdapterKind>,
    /// The cluster's Redis server; unchanged when absent.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// The cluster's key prefix; unchanged when absent.
    #[serde(default)]
    pub redis_prefix: Option<String>,
    /// The limits, when the pane edits them.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Whether clients may send `client-*` events; unchanged when absent.
    #[serde(default)]
    pub client_events: Option<bool>,
    /// The webhook URL; empty turns webhooks off; unchanged when absent.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The webhook event kinds; empty or absent means all of them.
    #[serde(default)]
    pub webhook_events: Option<Vec<poussr::config::WebhookKind>>,
    /// The TLS certificate chain's file; empty turns TLS off; unchanged when absent.
    #[serde(default)]
    pub tls_cert: Option<String>,
    /// Its key's file; unchanged when absent.
    #[serde(default)]
    pub tls_key: Option<String>,
    /// The CA file (trusted for webhooks, offered to devices); empty for none; unchanged when absent.
    #[serde(default)]
    pub tls_ca: Option<String>,
}

/// `apply_settings`: moves the hub, then saves. If the hub cannot listen there, or the settings cannot be
/// saved, the previous settings stay in force and the error says why.
#[tauri::command]
pub async fn apply_settings(state: State<'_, AppState>, input: SettingsInput) -> Result<Connection, Error> {
    state.apply(input).await
}

/// `create_certificate`: makes a certificate for this machine, signed by the local CA (made the first time,
/// then kept), and serves TLS with it.
#[tauri::command]
pub async fn create_certificate(state: State<'_, AppState>) -> Result<Connection, Error> {
    state.create_certificate().await
}

/// `pick_file`: the system's file picker, for a PEM file; the chosen path, or nothing when cancelled.
#[tauri::command]
pub async fn pick_file<R: Runtime>(app: AppHandle<R>, title: String) -> Option<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_title(title)
        .add_filter("Certificates and keys (PEM)", &["pem", "crt", "cer", "key"])
        .pick_file(move |picked| {
            let _ = tx.send(picked);
        });
    let picked = rx.await.ok().flatten()?;
    picked.into_path().ok().map(|p| p.to_string_lossy().into_owned())
}

/// `export_ca`: copies the CA certificate to the Downloads folder (or the home folder) as
/// `poussr-ca.crt`, to carry to the LAN's devices; returns the file's path.
#[tauri::command]
pub fn export_ca(state: State<'_, AppState>) -> Result<String, Error> {
    export_ca_of(&state)
}

fn export_ca_of(state: &AppState) -> Result<String, Error> {
    let ca = state.tls_ca().ok_or_else(|| Error::Invalid("no CA is configured: create a certificate first".into()))?;
    let pem = std::fs::read(&ca).map_err(|e| Error::Open(format!("{}: {e}", ca.display())))?;
    // The certificates only, never a key that may sit in the same file.
    let pem = poussr::cert::certificates_pem(&pem).map_err(|e| Error::Invalid(format!("{}: {e}", ca.display())))?;
    save_to_downloads("poussr-ca.crt", pem.as_bytes())
}

/// `copy_text`: puts text on the clipboard.
#[tauri::command]
pub fn copy_text<R: Runtime>(app: AppHandle<R>, text: String) -> Result<(), Error> {
    write_clipboard(&app, &text)
}

/// `open_config_folder`: shows the settings folder in the file manager.
#[tauri::command]
pub fn open_config_folder<R: Runtime>(app: AppHandle<R>, state: State<'_, AppState>) -> Result<(), Error> {
    open_folder_of(&app, &state)
}

fn open_folder_of<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> Result<(), Error> {
    let dir = state.store.dir().to_string_lossy().into_owned();
    app.opener().open_path(dir, None::<&str>).map_err(|e| Error::Open(e.to_string()))
}

/// `save_export`: writes the live log's JSON Lines export to the Downloads folder (or the home folder) and
/// returns the file's path. A webview cannot download a file by itself.
#[tauri::command]
pub fn save_export(name: String, text: String) -> Result<String, Error> {
    let safe: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
    if safe.is_empty() || safe.starts_with('.') {
        return Err(Error::Invalid(format!("{name:?} is not a file name")));
    }
    save_to_downloads(&safe, text.as_bytes())
}

/// The commands the window process forwards to the tray (`window.rs`): those that need the tray's state.
/// The others (the clipboard, the file pickers, saving an export) the window process does itself.
pub const FORWARDED: [&str; 6] =
    ["connection", "get_settings", "apply_settings", "create_certificate", "export_ca", "open_config_folder"];

/// Runs a forwarded command with its arguments as the window sent them; the answer is what the command of
/// the same name answers.
pub async fn handle<R: Runtime>(
    app: &AppHandle<R>,
    cmd: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let state = app.try_state::<AppState>().ok_or_else(|| Error::Invalid("Poussr is still starting".into()))?;
    fn json<T: Serialize>(value: &T) -> Result<serde_json::Value, Error> {
        serde_json::to_value(value).map_err(|e| Error::Invalid(e.to_string()))
    }
    match cmd {
        "connection" => json(&state.connection()),
        "get_settings" => json(&state.settings_view()),
        "apply_settings" => {
            let input = args.get("input").cloned().unwrap_or_default();
            let input: SettingsInput = serde_json::from_value(input)
                .map_err(|e| Error::Invalid(format!("the settings sent are not valid: {e}")))?;
            json(&state.apply(input).await?)
        }
        "create_certificate" => json(&state.create_certificate().await?),
        "export_ca" => json(&export_ca_of(&state)?),
        "open_config_folder" => json(&open_folder_of(app, &state)?),
        other => Err(Error::Invalid(format!("the window asked for {other:?}, which is not a command"))),
    }
}

/// Writes `bytes` as `name` in the Downloads folder (or the home folder); returns the file's path.
fn save_to_downloads(name: &str, bytes: &[u8]) -> Result<String, Error> {
    let dirs = directories::UserDirs::new().ok_or_else(|| Error::Open("no home folder".into()))?;
    let dir = dirs.download_dir().unwrap_or(dirs.home_dir()).to_path_buf();
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| Error::Open(format!("{}: {e}", path.display())))?;
    Ok(path.to_string_lossy().into_owned())
}

/// Writes to the clipboard.
pub fn write_clipboard<R: Runtime>(app: &AppHandle<R>, text: &str) -> Result<(), Error> {
    app.clipboard().write_text(text).map_err(|e| Error::Clipboard(e.to_string()))
}

/// Parses the bind address the operator typed.
pub fn parse_bind(text: &str) -> Result<IpAddr, Error> {
    let t = text.trim().trim_start_matches('[').trim_end_matches(']');
    t.parse().map_err(|_| {
        Error::Invalid(format!(
            "{text:?} is not an IP address; use 0.0.0.0 for every address, or one of this machine's"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_with_kind_and_message() {
        let e = Error::Bind(BindError { kind: BindErrorKind::PortInUse, message: "Port 1 is in use".into() });
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"kind":"port_in_use","message":"Port 1 is in use"})
        );
        let e = Error::Settings("disk full".into());
        assert_eq!(serde_json::to_value(&e).unwrap()["kind"], "settings");
    }

    #[test]
    fn bind_addresses_are_parsed_or_explained() {
        assert_eq!(parse_bind(" 0.0.0.0 ").unwrap(), IpAddr::from([0, 0, 0, 0]));
        assert_eq!(parse_bind("[::1]").unwrap(), "::1".parse::<IpAddr>().unwrap());
        let e = parse_bind("my-laptop").unwrap_err();
        assert!(e.to_string().contains("not an IP address"));
    }
}
