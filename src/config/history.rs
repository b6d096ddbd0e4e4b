//! History settings: where the store lives and how durable a commit is (the hub's), and what each app
//! keeps (the app's).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The hub's history store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryStore {
    /// The folder of the store (`history.sqlite` inside it). `None`: no history is kept. `poussr serve`
    /// sets it to `history/` in the data folder, and the desktop app to its own data folder's.
    pub dir: Option<PathBuf>,
    /// When a publish is answered: `full` (the default) once the event is on the disk itself, so it
    /// survives a power cut; `normal` once the operating system has it, so it survives the hub being
    /// killed but not a power cut (faster: the disk is flushed at checkpoints only).
    pub sync: SyncPolicy,
}

/// How durable an event is when its publish is answered (see [`HistoryStore::sync`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Flushed to the disk at each commit: survives a power cut.
    #[default]
    Full,
    /// Handed to the operating system at each commit: survives the hub being killed, not a power cut.
    Normal,
}

/// What one app keeps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Whether this app's events are kept (when the hub has a store).
    pub enabled: bool,
    /// Whether `client-*` events are kept too (and get positions).
    pub client_events: bool,
    /// The events kept per channel; older ones are evicted.
    pub max_events_per_channel: u64,
    /// How long an event is kept, in seconds.
    pub max_age_secs: u64,
    /// The bytes of events this app may keep (event names, data and user ids); the oldest go first.
    pub max_bytes: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            client_events: false,
            max_events_per_channel: 1_000,
            max_age_secs: 24 * 60 * 60,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl HistoryConfig {
    /// Checks the bounds.
    pub fn validate(&self, app: &str) -> Result<(), ConfigError> {
        for (name, value) in [
            ("max_events_per_channel", self.max_events_per_channel),
            ("max_age_secs", self.max_age_secs),
            ("max_bytes", self.max_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "app {app}: history.{name} must be greater than 0 (to keep nothing, set history.enabled = false)"
                )));
            }
        }
        if self.max_age_secs > 10 * 365 * 24 * 60 * 60 {
            return Err(ConfigError::Invalid(format!("app {app}: history.max_age_secs is more than ten years")));
        }
        Ok(())
    }
}
