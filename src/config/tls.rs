//! TLS settings: the certificate the hub presents, the CA it trusts for its own outgoing connections, and
//! whether plain `ws://` / `http://` is still served on the same port.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The `[tls]` table. With `cert` and `key` set, the hub serves `wss://` and `https://` on its port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The certificate chain in PEM: the server certificate first, then any intermediates.
    pub cert: Option<PathBuf>,
    /// Its private key in PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// A CA certificate in PEM that the hub trusts beside the system's roots for its own connections
    /// (webhooks to `https://`, Redis over `rediss://`), and that `/poussr-ca.crt` offers to the LAN's
    /// devices. `poussr cert create` writes one.
    pub ca: Option<PathBuf>,
    /// Also serve plain `ws://` and `http://` on the same port (told apart by the first byte). `false`:
    /// plain requests get a 400 that says to use https.
    pub plain: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig { cert: None, key: None, ca: None, plain: true }
    }
}

impl TlsConfig {
    /// Whether the hub serves TLS.
    pub fn enabled(&self) -> bool {
        self.cert.is_some()
    }

    /// Checks that the certificate and the key come together, and that plain is only refused with TLS on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(ConfigError::Invalid("tls: a certificate (cert) needs its key (key)".into())),
            (None, Some(_)) => Err(ConfigError::Invalid("tls: a key (key) needs its certificate (cert)".into())),
            (None, None) if !self.plain => Err(ConfigError::Invalid(
                "tls: plain = false refuses plain connections, but no certificate is configured (cert, key)".into(),
            )),
            _ => Ok(()),
        }
    }
}
