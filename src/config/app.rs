//! An app: what a Pusher client names with its key and a server SDK with its id and secret, with its
//! switches and webhook targets.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{ConfigError, HistoryConfig};

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
    /// What of this app's events the hub keeps, for clients that reconnect and for the history API.
    #[serde(default)]
    pub history: HistoryConfig,
}

fn yes() -> bool {
    true
}

/// One webhook target of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The `http://` or `https://` URL the hub POSTs to (https trusts the system's roots and `tls.ca`).
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
        if let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(ConfigError::Invalid(format!("webhook URL {url:?} has no host")));
            }
            Ok(())
        } else {
            Err(ConfigError::Invalid(format!("webhook URL {url:?} must start with http:// or https://")))
        }
    }
}

/// The kinds of webhook events (docs/protocol.md §4).
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
    /// Every kind, in the order of docs/protocol.md §4.1.
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
            history: HistoryConfig::default(),
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
        self.history.validate(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
