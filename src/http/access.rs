//! Who may use what over HTTP: the admin token, whether the admin API answers other machines, and which
//! web pages may open WebSockets. These are the server's settings, not the hub's: the hub never sees a
//! request.

use crate::config::{Config, random_token};

/// The HTTP layer's access settings, made once from the configuration.
#[derive(Debug, Clone)]
pub struct Access {
    /// The token the admin API, the dashboard and (beyond loopback) `/metrics` need.
    admin_token: String,
    /// Whether the admin API answers other machines than this one (still with the token).
    allow_remote_dashboard: bool,
    /// `allowed_origins`, normalized; empty admits every origin.
    allowed_origins: Vec<String>,
}

impl Access {
    /// The settings of `config`; without an `admin_token`, a random one is made.
    pub fn new(config: &Config) -> Self {
        Access {
            admin_token: config.admin_token.clone().unwrap_or_else(random_token),
            allow_remote_dashboard: config.allow_remote_dashboard,
            allowed_origins: config
                .allowed_origins
                .iter()
                .filter_map(|o| crate::net::normalize_origin_rule(o).ok())
                .collect(),
        }
    }

    /// The token the admin API and the dashboard need.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Whether the admin API answers other machines than this one.
    pub fn allow_remote_dashboard(&self) -> bool {
        self.allow_remote_dashboard
    }

    /// Whether a WebSocket handshake from a page of `origin` (its `Origin` header) is admitted.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        crate::net::origin_allowed(&self.allowed_origins, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_token_is_kept_and_a_missing_one_is_made_up() {
        let given = Config { admin_token: Some("0123456789abcdef-token".into()), ..Config::default() };
        assert_eq!(Access::new(&given).admin_token(), "0123456789abcdef-token");
        let (a, b) = (Access::new(&Config::default()), Access::new(&Config::default()));
        assert_eq!(a.admin_token().len(), 32);
        assert_ne!(a.admin_token(), b.admin_token());
    }

    #[test]
    fn origins_are_checked_against_the_normalized_rules() {
        let config = Config { allowed_origins: vec!["https://*.plant.example".into()], ..Config::default() };
        let access = Access::new(&config);
        assert!(access.origin_allowed("https://line1.plant.example"));
        assert!(!access.origin_allowed("http://evil.example"));
        assert!(Access::new(&Config::default()).origin_allowed("http://anything.example"));
    }
}
