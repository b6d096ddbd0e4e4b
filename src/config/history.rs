//! History settings: where the store lives and how durable a commit is (the hub's), and what each app
//! keeps (the app's).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The hub's history store, and the console journal kept beside it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryStore {
    /// The folder of the store (`history.sqlite` inside it). `None`: no history is kept. `poussr serve`
    /// sets it to `history/` in the data folder, and the desktop app to its own data folder's.
    pub dir: Option<PathBuf>,
    /// When a publish is answered: `full` (the default) once the event is on the disk itself, so it
    /// survives a power cut; `normal` once the operating system has it, so it survives the hub being
    /// killed but not a power cut (faster: the disk is flushed at checkpoints only).
    pub sync: SyncPolicy,
    /// The most entries the console journal (`journal.sqlite` in the same folder) keeps; the oldest go
    /// first.
    pub journal_max_entries: u64,
    /// How long the console journal keeps an entry, in seconds.
    pub journal_max_age_secs: u64,
}

/// The console journal's default bound on entries.
const JOURNAL_MAX_ENTRIES: u64 = 200_000;
/// The console journal's default bound on age: seven days.
const JOURNAL_MAX_AGE_SECS: u64 = 7 * 24 * 60 * 60;

impl Default for HistoryStore {
    fn default() -> Self {
        HistoryStore {
            dir: None,
            sync: SyncPolicy::default(),
            journal_max_entries: JOURNAL_MAX_ENTRIES,
            journal_max_age_secs: JOURNAL_MAX_AGE_SECS,
        }
    }
}

impl HistoryStore {
    /// Checks the journal's bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in
            [("journal_max_entries", self.journal_max_entries), ("journal_max_age_secs", self.journal_max_age_secs)]
        {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("history.{name} must be greater than 0")));
            }
        }
        if self.journal_max_age_secs > 10 * 365 * 24 * 60 * 60 {
            return Err(ConfigError::Invalid("history.journal_max_age_secs is more than ten years".into()));
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_bounds_have_defaults_and_must_be_positive() {
        let store: HistoryStore = toml::from_str("dir = \"kept\"").unwrap();
        assert_eq!(store.journal_max_entries, 200_000);
        assert_eq!(store.journal_max_age_secs, 7 * 24 * 60 * 60);
        assert!(store.validate().is_ok());
        let store: HistoryStore = toml::from_str("journal_max_entries = 10\njournal_max_age_secs = 60").unwrap();
        assert_eq!((store.journal_max_entries, store.journal_max_age_secs), (10, 60));
        let zero = HistoryStore { journal_max_entries: 0, ..HistoryStore::default() };
        assert_eq!(zero.validate().unwrap_err().to_string(), "history.journal_max_entries must be greater than 0");
        let zero = HistoryStore { journal_max_age_secs: 0, ..HistoryStore::default() };
        assert!(zero.validate().unwrap_err().to_string().contains("journal_max_age_secs must be greater than 0"));
        let unknown = toml::from_str::<HistoryStore>("journal_max = 1").unwrap_err().to_string();
        assert!(unknown.contains("journal_max"), "{unknown}");
    }
}
