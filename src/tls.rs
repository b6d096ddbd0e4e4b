//! TLS with rustls: the certificate the hub presents (loaded from PEM files, checked, and reloaded when the
//! files change, without touching the connections already open), its status for `/health` and the window,
//! and the trust the hub's own outgoing connections use (the system's roots plus the configured CA).
//!
//! The listener (`server.rs`) tells TLS from plain on the same port by the first byte a client sends: a TLS
//! handshake starts with 0x16, an HTTP request with a letter.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use tokio_rustls::TlsAcceptor;

use crate::cert::CertInfo;
use crate::config::TlsConfig;

/// How often the certificate files are looked at for a change.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The one cryptography provider of the build (ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process's default provider, for libraries that ask rustls for the default (the Redis
/// client). Harmless when called again.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loads a certificate chain and its key, and checks them: the key is the certificate's, and the
/// certificate is valid now. Every error names the file and says what is wrong.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<(CertifiedKey, CertInfo), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let pem = read(cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a valid PEM certificate ({e})", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate (-----BEGIN CERTIFICATE-----) in it", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?)
        .map_err(|e| format!("{}: no private key in it (PKCS#8, PKCS#1 or SEC1 PEM) ({e})", key_path.display()))?;
    let info = CertInfo::from_der(&chain[0]).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("{} is not the key of the certificate in {}", key_path.display(), cert_path.display())
        }
        e => format!("{}: this key cannot be used ({e})", key_path.display()),
    })?;
    info.check_dates(crate::cert::now()).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    Ok((certified, info))
}

/// The certificate in use, shared with the TLS layer: a new handshake gets whatever is current.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// What the files looked like when last read: a change in either means a reload.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// What is known about the certificate in use.
#[derive(Debug, Clone)]
struct Loaded {
    info: CertInfo,
    loaded_at: i64,
    /// Why the last attempt to reload failed (the previous certificate stays in use).
    reload_error: Option<String>,
    stamps: (Stamp, Stamp),
    /// What the CA file says, read with the certificate.
    ca: Option<CertInfo>,
}

/// The hub's TLS: a cheap `Clone` handle.
#[derive(Clone, Debug)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    plain: bool,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("cert", &self.cert).field("key", &self.key).field("plain", &self.plain).finish()
    }
}

/// The TLS part of `/health` and of the window's Overview.
#[derive(Debug, Clone, Serialize)]
pub struct TlsStatus {
    /// Whether plain `ws://` / `http://` is served on the same port too.
    pub plain: bool,
    /// The certificate in use.
    pub certificate: CertInfo,
    /// Whole days until it expires (negative once it has).
    pub days_left: i64,
    /// Whether it is expired (or not valid yet): clients refuse it.
    pub expired: bool,
    /// Set when it expires within 14 days, or has expired.
    pub warning: Option<String>,
    /// When it was loaded (seconds since 1970).
    pub loaded_at: i64,
    /// Why the files could not be reloaded the last time they changed; the certificate above stays in use.
    pub reload_error: Option<String>,
    /// The CA file offered at `/poussr-ca.crt`, if one is configured.
    pub ca: Option<CertInfo>,
}

impl Tls {
    /// The TLS of `config`: `None` when no certificate is configured; an error (which names the file and
    /// the reason) when the certificate or key cannot be used, or the certificate is expired.
    pub fn from_config(config: &TlsConfig) -> Result<Option<Tls>, String> {
        let (Some(cert), Some(key)) = (&config.cert, &config.key) else { return Ok(None) };
        let ca = config.ca.as_deref().map(ca_info).transpose()?;
        let stamps = (stamp(cert), stamp(key));
        let (certified, info) = load_pair(cert, key)?;
        if let Some(warning) = info.expiry_warning(crate::cert::now()) {
            tracing::warn!("{warning}");
        }
        let current = Arc::new(Current(RwLock::new(Arc::new(certified))));
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // Only HTTP/1.1 is served (WebSockets are upgraded from it).
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let inner = Inner {
            cert: cert.clone(),
            key: key.clone(),
            ca: config.ca.clone(),
            plain: config.plain,
            current,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            loaded: Mutex::new(Loaded { info, loaded_at: crate::cert::now(), reload_error: None, stamps, ca }),
        };
        Ok(Some(Tls { inner: Arc::new(inner) }))
    }

    /// Accepts TLS handshakes with the current certificate.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.inner.acceptor
    }

    /// Whether plain connections are served on the same port too.
    pub fn plain_allowed(&self) -> bool {
        self.inner.plain
    }

    /// The configured CA file, if any.
    pub fn ca_path(&self) -> Option<&Path> {
        self.inner.ca.as_deref()
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.inner.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads the certificate and key if either file changed since they were last read. A pair that
    /// cannot be used (half written, the wrong key, expired) leaves the current one in use and is reported
    /// in the status and the log. Connections already open are never touched; new handshakes get the new
    /// certificate. Returns whether a new certificate is now in use.
    pub fn reload_if_changed(&self) -> bool {
        let stamps = (stamp(&self.inner.cert), stamp(&self.inner.key));
        if self.loaded().stamps == stamps {
            return false;
        }
        self.reload(stamps)
    }

    /// Reloads the files now, changed or not (after *Create a certificate*, say).
    pub fn reload_now(&self) -> bool {
        self.reload((stamp(&self.inner.cert), stamp(&self.inner.key)))
    }

    fn reload(&self, stamps: (Stamp, Stamp)) -> bool {
        match load_pair(&self.inner.cert, &self.inner.key) {
            Ok((certified, info)) => {
                *self.inner.current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
                tracing::info!(
                    subject = %info.subject,
                    until = %crate::cert::date(info.not_after),
                    sha256 = %info.sha256,
                    "TLS certificate reloaded; open connections keep theirs"
                );
                if let Some(warning) = info.expiry_warning(crate::cert::now()) {
                    tracing::warn!("{warning}");
                }
                let ca = self.inner.ca.as_deref().and_then(|p| ca_info(p).ok());
                *self.loaded() = Loaded { info, loaded_at: crate::cert::now(), reload_error: None, stamps, ca };
                true
            }
            Err(e) => {
                tracing::error!(
                    "the TLS certificate files changed but cannot be used: {e}; the previous certificate stays in use"
                );
                let mut loaded = self.loaded();
                loaded.reload_error = Some(e);
                loaded.stamps = stamps;
                false
            }
        }
    }

    /// The status for `/health` and the window, with the expiry counted from now.
    pub fn status(&self) -> TlsStatus {
        let loaded = self.loaded().clone();
        let now = crate::cert::now();
        TlsStatus {
            plain: self.inner.plain,
            days_left: loaded.info.days_left(now),
            warning: loaded.info.expiry_warning(now),
            expired: loaded.info.check_dates(now).is_err(),
            certificate: loaded.info,
            loaded_at: loaded.loaded_at,
            reload_error: loaded.reload_error,
            ca: loaded.ca,
        }
    }

    /// Watches the files until `stop` resolves: reloads them when they change, and repeats the expiry
    /// warning in the log once a day.
    pub async fn watch(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(RELOAD_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned_at = crate::cert::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut stop => return,
            }
            let this = self.clone();
            // Reading files and parsing keys is blocking work.
            let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
            let now = crate::cert::now();
            if now - warned_at >= 86_400 {
                warned_at = now;
                let info = self.loaded().info.clone();
                match info.expiry_warning(now) {
                    Some(warning) if info.check_dates(now).is_err() => tracing::error!("{warning}"),
                    Some(warning) => tracing::warn!("{warning}"),
                    None => {}
                }
            }
        }
    }
}

/// What the CA file `path` says; an error when it cannot be read, holds no certificate or holds a private
/// key (which `/poussr-ca.crt` must never be near).
fn ca_info(path: &Path) -> Result<CertInfo, String> {
    let pem = std::fs::read(path).map_err(|e| format!("tls.ca: cannot read {}: {e}", path.display()))?;
    if crate::cert::holds_private_key(&pem) {
        return Err(format!(
            "tls.ca: {} holds a private key; give the CA's certificate alone (ca.pem, never ca-key.pem)",
            path.display()
        ));
    }
    CertInfo::from_pem(&pem).map_err(|e| format!("tls.ca: {}: {e}", path.display()))
}

/// The trust of the hub's own TLS connections (webhooks, Redis): the operating system's roots plus the
/// CA in `ca`, if given.
pub fn client_roots(ca: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("a system root certificate could not be read: {error}");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "system root certificates");
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read the CA {}: {e}", ca.display()))?;
        let mut any = false;
        for der in CertificateDer::pem_slice_iter(&pem) {
            let der = der.map_err(|e| format!("{}: not a valid PEM certificate ({e})", ca.display()))?;
            roots.add(der).map_err(|e| format!("{}: cannot be trusted as a CA ({e})", ca.display()))?;
            any = true;
        }
        if !any {
            return Err(format!("{}: no certificate in it", ca.display()));
        }
    }
    Ok(roots)
}

/// A rustls client configuration for HTTP/1.1 with [`client_roots`].
pub fn client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(client_roots(ca)?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// [`client_roots`] as one PEM text (what the Redis client takes): the system's roots that can be
/// trusted (one that cannot is left out rather than failing the whole set), then the CA's certificates.
pub fn client_roots_pem(ca: Option<&Path>) -> Result<Vec<u8>, String> {
    let native = rustls_native_certs::load_native_certs();
    let mut out = String::new();
    for der in native.certs {
        if rustls::RootCertStore::empty().add(der.clone()).is_ok() {
            out.push_str(&crate::cert::pem("CERTIFICATE", &der));
        }
    }
    if let Some(ca) = ca {
        client_roots(Some(ca))?;
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read the CA {}: {e}", ca.display()))?;
        out.push_str(&crate::cert::certificates_pem(&pem)?);
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_checked_and_reloaded_only_when_good() {
        let dir = std::env::temp_dir().join(format!("poussr-tls-{}", rand::random::<u64>()));
        let made = crate::cert::create(&dir, &["localhost".to_owned()], false).unwrap();
        let config = TlsConfig {
            cert: Some(made.files.cert.clone()),
            key: Some(made.files.key.clone()),
            ca: Some(made.files.ca.clone()),
            plain: true,
        };
        let tls = Tls::from_config(&config).unwrap().unwrap();
        assert_eq!(tls.status().certificate.sha256, made.server.sha256);
        assert!(!tls.reload_if_changed(), "nothing changed");
        // The CA's key is not the certificate's.
        let wrong = load_pair(&made.files.cert, &made.files.ca_key).unwrap_err();
        assert!(wrong.contains("is not the key of the certificate"), "{wrong}");
        let none = load_pair(&made.files.key, &made.files.key).unwrap_err();
        assert!(none.contains("no certificate"), "{none}");
        // A half-written pair (a new key, the old certificate) is refused and the old one kept.
        let old_cert = std::fs::read(&made.files.cert).unwrap();
        let again = crate::cert::create(&dir, &["localhost".to_owned()], false).unwrap();
        std::fs::write(&made.files.cert, &old_cert).unwrap();
        assert!(!tls.reload_now());
        let status = tls.status();
        assert_eq!(status.certificate.sha256, made.server.sha256);
        assert!(status.reload_error.unwrap().contains("is not the key"));
        // The whole new pair is taken.
        crate::cert::create(&dir, &["localhost".to_owned()], false).unwrap();
        assert!(tls.reload_now());
        let status = tls.status();
        assert_ne!(status.certificate.sha256, made.server.sha256);
        assert_ne!(status.certificate.sha256, again.server.sha256);
        assert_eq!(status.reload_error, None);
        assert_eq!(status.ca.unwrap().sha256, made.ca.sha256);
        assert!(
            client_roots_pem(Some(&made.files.ca))
                .unwrap()
                .ends_with(std::fs::read(&made.files.ca).unwrap().as_slice())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
