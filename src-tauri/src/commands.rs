//! What the window asks the tray (see [`crate::window`]): the hub's address and admin token, the settings,
//! certificates, the config folder. Plain Rust with no Tauri: the window process forwards these commands
//! over its pipe and [`handle`] answers them. Everything else the window asks the hub itself, over its
//! admin API.

use std::net::IpAddr;

use poussr::Limits;
use serde::{Deserialize, Serialize, Serializer};

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
    /// The clipboard refused (reported by the window's own `copy_text`).
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

/// The CA certificate for the LAN's devices: `poussr-ca.crt` in the Downloads folder (or the home folder);
/// returns the file's path.
fn export_ca(state: &AppState) -> Result<String, Error> {
    let ca = state.tls_ca().ok_or_else(|| Error::Invalid("no CA is configured: create a certificate first".into()))?;
    let pem = std::fs::read(&ca).map_err(|e| Error::Open(format!("{}: {e}", ca.display())))?;
    // The certificates only, never a key that may sit in the same file.
    let pem = poussr::cert::certificates_pem(&pem).map_err(|e| Error::Invalid(format!("{}: {e}", ca.display())))?;
    crate::common::save_to_downloads("poussr-ca.crt", pem.as_bytes()).map_err(Error::Open)
}

/// The commands the window process forwards to the tray (`window.rs`): those that need the tray's state.
/// The others (the clipboard, the file pickers, saving an export, opening the config folder with the folder
/// `config_folder` names) the window process does itself.
pub const FORWARDED: [&str; 6] =
    ["connection", "get_settings", "apply_settings", "create_certificate", "export_ca", "config_folder"];

/// Runs a forwarded command with its arguments as the window sent them (`apply_settings` takes
/// `{"input": SettingsInput}`, the others nothing).
pub async fn handle(state: &AppState, cmd: &str, args: serde_json::Value) -> Result<serde_json::Value, Error> {
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
        "export_ca" => json(&export_ca(state)?),
        "config_folder" => json(&state.store.dir().to_string_lossy()),
        other => Err(Error::Invalid(format!("the window asked for {other:?}, which is not a command"))),
    }
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
