//! Certificates for a LAN with no PKI: Poussr makes a local certificate authority (CA) and, signed by it, a
//! server certificate that names this machine's every address and host name. The operator installs the CA
//! once on the LAN's devices; a new server certificate (new addresses, renewal) is then trusted without
//! touching the devices again, because an existing CA is reused. Nothing here goes over the network.
//!
//! Also here: what a certificate says (names, dates, SHA-256 fingerprint), read from PEM for the listener's
//! checks, the expiry warnings and the window.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How long a new server certificate is valid. Browsers refuse publicly trusted certificates valid for
/// longer than 398 days; a local CA is not held to that everywhere, but staying under it avoids surprises.
pub const SERVER_DAYS: i64 = 397;
/// How long a new CA is valid: ten years, so that the devices that trust it need it installed once.
pub const CA_DAYS: i64 = 3650;
/// A certificate that expires within this many days is warned about.
pub const WARN_DAYS: i64 = 14;

/// The files of a certificate folder, as `poussr cert create` writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The CA's certificate: the file to install on the LAN's devices.
    pub ca: PathBuf,
    /// The CA's private key: it never leaves this machine.
    pub ca_key: PathBuf,
    /// The server certificate, followed by the CA's (the chain the hub presents).
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
}

impl CertFiles {
    /// The file names in `dir`: `ca.pem`, `ca-key.pem`, `cert.pem`, `key.pem`.
    pub fn in_dir(dir: &Path) -> Self {
        CertFiles {
            ca: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// What a certificate says, for people: its subject, names, dates and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// The subject's common name (or the whole subject when it has none).
    pub subject: String,
    /// The names it is valid for (DNS names and IP addresses of its subjectAltName).
    pub names: Vec<String>,
    /// Whether it is a CA.
    pub is_ca: bool,
    /// Valid from, in seconds since 1970 (UTC).
    pub not_before: i64,
    /// Valid until, in seconds since 1970 (UTC).
    pub not_after: i64,
    /// SHA-256 of the DER, as colon-separated upper-case hex pairs (as browsers and `openssl` show it).
    pub sha256: String,
}

impl CertInfo {
    /// Reads the DER encoding of one certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| format!("not a valid X.509 certificate ({e})"))?;
        let subject = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| cert.subject().to_string());
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            names.push(IpAddr::from(v4).to_string());
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            names.push(IpAddr::from(v6).to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        let validity = cert.validity();
        Ok(CertInfo {
            subject,
            names,
            is_ca: cert.is_ca(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            sha256: fingerprint(der),
        })
    }

    /// Reads the first certificate of a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or("no certificate (-----BEGIN CERTIFICATE-----) in it")?
            .map_err(|e| format!("not valid PEM ({e})"))?;
        Self::from_der(&der)
    }

    /// Reads the first certificate of a PEM file; the error names the file.
    pub fn from_pem_file(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whole days until it expires, counted from `now` (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// Whether it is expired or not yet valid at `now`; the reason says which, with the date.
    pub fn check_dates(&self, now: i64) -> Result<(), String> {
        if now >= self.not_after {
            return Err(format!("the certificate expired on {}", date(self.not_after)));
        }
        if now < self.not_before {
            return Err(format!(
                "the certificate is not valid before {} (is this machine's clock right?)",
                date(self.not_before)
            ));
        }
        Ok(())
    }

    /// The warning for a certificate that expires within [`WARN_DAYS`] or has expired, if it does.
    pub fn expiry_warning(&self, now: i64) -> Option<String> {
        if now >= self.not_after {
            return Some(format!(
                "the TLS certificate {:?} EXPIRED on {}: browsers and clients refuse it. Make a new one (poussr cert \
                 create, or Settings → Create a certificate) and the hub picks it up without a restart",
                self.subject,
                date(self.not_after)
            ));
        }
        let days = self.days_left(now);
        (days < WARN_DAYS).then(|| {
            format!(
                "the TLS certificate {:?} expires on {} ({} day{} left): make a new one (poussr cert create, or \
                 Settings → Create a certificate) and the hub picks it up without a restart",
                self.subject,
                date(self.not_after),
                days,
                if days == 1 { "" } else { "s" }
            )
        })
    }
}

/// One PEM block of `label` around `der`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out + &format!("-----END {label}-----\n")
}

/// The certificates of a PEM text, and nothing else (a private key pasted in the same file stays out),
/// re-encoded; an error when there is none.
pub fn certificates_pem(text: &[u8]) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    let mut out = String::new();
    for der in rustls::pki_types::CertificateDer::pem_slice_iter(text) {
        out += &pem("CERTIFICATE", &der.map_err(|e| format!("not valid PEM ({e})"))?);
    }
    if out.is_empty() {
        return Err("no certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(out)
}

/// Whether a PEM text holds a private key of any kind.
pub fn holds_private_key(text: &[u8]) -> bool {
    text.windows(b"PRIVATE KEY-----".len()).any(|w| w == b"PRIVATE KEY-----")
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { TABLE[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// Seconds since 1970 now.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A date as `2027-01-31 12:00 UTC`.
pub fn date(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => {
            format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        Err(_) => format!("{unix} (seconds since 1970)"),
    }
}

/// SHA-256 of `der` as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The names a server certificate for this machine should carry: `localhost`, the host name and its
/// `.local` form, and every address of every interface (loopback included, so that the machine itself can
/// use https too).
pub fn machine_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Some(host) = crate::net::host_name() {
        let short = host.split('.').next().unwrap_or(&host).to_owned();
        names.push(host.clone());
        names.push(format!("{short}.local"));
        if short != host {
            names.push(short);
        }
    }
    // A certificate carries ASCII names only; a host name that is not one is left out (its addresses stay).
    names.retain(|n| n.is_ascii());
    let mut addrs = crate::net::interface_addresses();
    addrs.push(IpAddr::from([127, 0, 0, 1]));
    addrs.sort();
    names.extend(addrs.into_iter().filter(|ip| !crate::net::is_link_local_v6(*ip)).map(|ip| ip.to_string()));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// What [`create`] made.
#[derive(Debug, Clone)]
pub struct Created {
    /// Where the files are.
    pub files: CertFiles,
    /// The CA.
    pub ca: CertInfo,
    /// Whether the CA already existed and was reused (devices that trust it need nothing new).
    pub ca_reused: bool,
    /// The new server certificate.
    pub server: CertInfo,
}

/// Makes a server certificate for `names` in `dir`, signed by the CA kept there, or by a new CA when there
/// is none (or when `new_ca`). Every file is written atomically; the keys are readable by their owner only.
pub fn create(dir: &Path, names: &[String], new_ca: bool) -> Result<Created, String> {
    if names.is_empty() {
        return Err("a certificate needs at least one name".into());
    }
    let files = CertFiles::in_dir(dir);
    if !new_ca && files.ca.exists() != files.ca_key.exists() {
        let (there, missing) = if files.ca.exists() { (&files.ca, &files.ca_key) } else { (&files.ca_key, &files.ca) };
        return Err(format!(
            "{} is there but {} is not: the CA cannot sign without both. Put the missing file back, or pass --new-ca \
             to make a new CA (every device must then trust the new one)",
            there.display(),
            missing.display()
        ));
    }
    let reuse = !new_ca && files.ca.exists() && files.ca_key.exists();
    let (ca_pem, ca_key) = if reuse {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        let key = KeyPair::from_pem(&read(&files.ca_key)?)
            .map_err(|e| format!("{}: not a private key Poussr can use ({e})", files.ca_key.display()))?;
        (read(&files.ca)?, key)
    } else {
        let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
        let pem = ca_params()?.self_signed(&key).map_err(|e| format!("cannot make the CA: {e}"))?.pem();
        (pem, key)
    };
    let ca = CertInfo::from_pem(ca_pem.as_bytes()).map_err(|e| format!("{}: {e}", files.ca.display()))?;
    if !ca.is_ca {
        return Err(format!("{} is not a CA certificate; move it away or pass --new-ca", files.ca.display()));
    }
    ca.check_dates(now()).map_err(|e| format!("the CA in {}: {e}; pass --new-ca", files.ca.display()))?;
    if reuse && !key_matches(&ca_pem, &ca_key) {
        return Err(format!(
            "{} is not the key of the CA in {}; put the right key back, or pass --new-ca",
            files.ca_key.display(),
            files.ca.display()
        ));
    }
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key)
        .map_err(|e| format!("{}: cannot sign with this CA ({e})", files.ca.display()))?;

    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    for name in names {
        params.subject_alt_names.push(match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.clone().try_into().map_err(|_| format!("{name:?} is not a host name a certificate can carry"))?,
            ),
        });
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.iter().find(|n| n.parse::<IpAddr>().is_err()).unwrap_or(&names[0]).clone());
    dn.push(DnType::OrganizationName, "Poussr");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys sign; they encipher nothing (RFC 5480), so no KeyEncipherment.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_before = start;
    // Never past the CA's own end: a chain is only as valid as its shortest link.
    let ca_end = time::OffsetDateTime::from_unix_timestamp(ca.not_after).map_err(|e| e.to_string())?;
    params.not_after = (start + time::Duration::days(SERVER_DAYS)).min(ca_end);
    let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| format!("cannot sign the certificate: {e}"))?;
    let server = CertInfo::from_der(cert.der())?;

    let write = |path: &Path, text: &str| {
        crate::config::write_atomically(path, text.as_bytes()).map_err(|e| format!("cannot write the certificate: {e}"))
    };
    if !reuse {
        write(&files.ca_key, &ca_key.serialize_pem())?;
        write(&files.ca, &ca_pem)?;
    }
    // The key first: a hub that watches the files reloads when the certificate changes, and must then find
    // the key that goes with it.
    write(&files.key, &key.serialize_pem())?;
    write(&files.cert, &format!("{}{ca_pem}", cert.pem()))?;
    Ok(Created { files, ca, ca_reused: reuse, server })
}

/// A certificate for people: subject, names, validity and fingerprint, indented.
pub fn summary(info: &CertInfo) -> String {
    let now = now();
    let mut out = format!("  subject:   {}{}\n", info.subject, if info.is_ca { " (CA)" } else { "" });
    if !info.names.is_empty() {
        out += &format!("  names:     {}\n", info.names.join(", "));
    }
    out += &format!(
        "  valid:     {} to {} ({} days left)\n  SHA-256:   {}\n",
        date(info.not_before),
        date(info.not_after),
        info.days_left(now),
        info.sha256
    );
    if let Err(e) = info.check_dates(now) {
        out += &format!("  NOT VALID: {e}\n");
    } else if let Some(w) = info.expiry_warning(now) {
        out += &format!("  WARNING:   {w}\n");
    }
    out
}

/// What [`create`] made, for people: where the files are, and the CA and certificate.
pub fn describe(made: &Created) -> String {
    let f = &made.files;
    let mut out = format!(
        "Certificate for this machine in {}\n  {}  server certificate (with the CA after it)\n  {}  its key\n",
        f.cert.parent().map_or_else(String::new, |d| d.display().to_string()),
        f.cert.display(),
        f.key.display()
    );
    out += &summary(&made.server);
    out += &format!(
        "\nLocal CA ({}): install {} on the LAN's devices once{}\n",
        if made.ca_reused { "kept: devices that trust it need nothing new" } else { "new" },
        f.ca.display(),
        if made.ca_reused { "" } else { " (the hub also serves it at /poussr-ca.crt)" }
    );
    out += &summary(&made.ca);
    out += &format!("  Its key, {}, never leaves this machine.\n", f.ca_key.display());
    out
}

/// Why the certificate Poussr keeps for this machine in `dir` should be made again, if it should: it is
/// missing or unreadable, expires within [`WARN_DAYS`] (or has), or does not name one of `names` (the
/// machine got a new address, say).
pub fn renewal_due(dir: &Path, names: &[String]) -> Option<String> {
    let files = CertFiles::in_dir(dir);
    if !files.key.exists() {
        return Some("there is none yet".into());
    }
    let info = match CertInfo::from_pem_file(&files.cert) {
        Ok(info) => info,
        Err(e) => return Some(e),
    };
    let now = now();
    if info.days_left(now) < WARN_DAYS || info.check_dates(now).is_err() {
        return Some(format!("it expires on {}", date(info.not_after)));
    }
    let missing: Vec<&String> = names.iter().filter(|n| !info.names.contains(n)).collect();
    (!missing.is_empty())
        .then(|| format!("it does not name {}", missing.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")))
}

/// Makes or renews the certificate Poussr keeps for this machine in `dir` when [`renewal_due`] says so
/// (reusing the CA, so devices need nothing new); returns what was made and why, or `None` when the
/// certificate there is fine.
pub fn ensure_for_machine(dir: &Path) -> Result<Option<(Created, String)>, String> {
    let names = machine_names();
    match renewal_due(dir, &names) {
        None => Ok(None),
        Some(why) => Ok(Some((create(dir, &names, false)?, why))),
    }
}

/// `poussr cert create`: [`create`], then what was made and how to serve with it.
pub fn create_and_describe(dir: &Path, names: &[String], new_ca: bool) -> Result<String, String> {
    let made = create(dir, names, new_ca)?;
    let f = &made.files;
    Ok(format!(
        "{}\nServe with it:\n  poussr serve --tls-cert {} --tls-key {} --tls-ca {}\n",
        describe(&made),
        f.cert.display(),
        f.key.display(),
        f.ca.display()
    ))
}

/// `poussr cert show`: each file's first certificate.
pub fn show(files: &[PathBuf]) -> Result<String, String> {
    let mut out = String::new();
    for file in files {
        out += &format!("{}:\n{}", file.display(), summary(&CertInfo::from_pem_file(file)?));
    }
    Ok(out)
}

/// Whether `key` is the key of the (first) certificate in `cert_pem`.
fn key_matches(cert_pem: &str, key: &KeyPair) -> bool {
    use rcgen::PublicKeyData;
    use rustls::pki_types::pem::PemObject;
    let Some(Ok(der)) = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes()).next() else {
        return false;
    };
    x509_parser::parse_x509_certificate(&der)
        .map(|(_, cert)| cert.tbs_certificate.subject_pki.raw == key.subject_public_key_info().as_slice())
        .unwrap_or(false)
}

fn ca_params() -> Result<CertificateParams, String> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    let host = crate::net::host_name().unwrap_or_else(|| "this machine".into());
    dn.push(DnType::CommonName, format!("Poussr local CA ({host})"));
    dn.push(DnType::OrganizationName, "Poussr");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_before = start;
    params.not_after = start + time::Duration::days(CA_DAYS);
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("poussr-cert-{tag}-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_server_certificate_names_the_machine_and_is_signed_by_a_kept_ca() {
        let dir = temp_dir("create");
        let names = vec!["localhost".to_owned(), "hub.local".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let first = create(&dir, &names, false).unwrap();
        assert!(!first.ca_reused && first.ca.is_ca && !first.server.is_ca);
        assert_eq!(first.server.names, names);
        let days = first.server.days_left(now());
        assert!((SERVER_DAYS - 2..=SERVER_DAYS).contains(&days), "{days}");
        assert!(first.ca.days_left(now()) > 3000);
        assert_eq!(first.ca.sha256.len(), 32 * 3 - 1);
        // The chain file holds the server certificate, then the CA.
        let chain = std::fs::read_to_string(&first.files.cert).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        assert_eq!(CertInfo::from_pem_file(&first.files.cert).unwrap(), first.server);

        let second = create(&dir, &names[..1], false).unwrap();
        assert!(second.ca_reused);
        assert_eq!(second.ca.sha256, first.ca.sha256, "the devices' CA stays the same");
        assert_ne!(second.server.sha256, first.server.sha256);
        let third = create(&dir, &names[..1], true).unwrap();
        assert_ne!(third.ca.sha256, first.ca.sha256);
        // A CA without its key, or with another key, is not silently replaced or used.
        let key = std::fs::read(&third.files.ca_key).unwrap();
        std::fs::remove_file(&third.files.ca_key).unwrap();
        assert!(create(&dir, &names[..1], false).unwrap_err().contains("--new-ca"));
        std::fs::write(&third.files.ca_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        assert!(create(&dir, &names[..1], false).unwrap_err().contains("is not the key of the CA"));
        crate::config::write_atomically(&third.files.ca_key, &key).unwrap();
        assert_eq!(create(&dir, &names[..1], false).unwrap().ca.sha256, third.ca.sha256);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [&third.files.key, &third.files.ca_key] {
                assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn renewal_is_due_when_missing_expiring_or_not_naming_the_machine() {
        let dir = temp_dir("renew");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        assert!(renewal_due(&dir, &names).unwrap().contains("none yet"));
        create(&dir, &names, false).unwrap();
        assert_eq!(renewal_due(&dir, &names), None);
        let more = vec!["localhost".to_owned(), "10.9.8.7".to_owned()];
        assert!(renewal_due(&dir, &more).unwrap().contains("does not name 10.9.8.7"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_machine_names_include_localhost_and_loopback() {
        let names = machine_names();
        assert!(names.contains(&"localhost".to_owned()) && names.contains(&"127.0.0.1".to_owned()), "{names:?}");
        if let Some(host) = crate::net::host_name() {
            let short = host.split('.').next().unwrap().to_owned();
            assert!(names.contains(&format!("{short}.local")), "{names:?}");
        }
    }

    #[test]
    fn dates_and_warnings() {
        let info = CertInfo {
            subject: "hub".into(),
            names: vec![],
            is_ca: false,
            not_before: 1_000,
            not_after: 1_000 + 20 * 86_400,
            sha256: String::new(),
        };
        assert!(info.check_dates(500).unwrap_err().contains("not valid before"));
        assert!(info.check_dates(info.not_after).unwrap_err().contains("expired on 1970-01-21"));
        assert_eq!(info.check_dates(2_000), Ok(()));
        assert_eq!(info.expiry_warning(1_000), None);
        let warning = info.expiry_warning(1_000 + 10 * 86_400).unwrap();
        assert!(warning.contains("10 days left"), "{warning}");
        assert!(info.expiry_warning(info.not_after + 1).unwrap().contains("EXPIRED on"), "expired is said loudly");
        assert!(CertInfo::from_pem(b"nothing").unwrap_err().contains("no certificate"));
    }

    #[test]
    fn pem_blocks_keep_certificates_only() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let dir = temp_dir("pem");
        let made = create(&dir, &["localhost".to_owned()], false).unwrap();
        let ca = std::fs::read_to_string(&made.files.ca).unwrap();
        let key = std::fs::read_to_string(&made.files.ca_key).unwrap();
        let both = format!("{ca}{key}");
        assert!(holds_private_key(both.as_bytes()) && !holds_private_key(ca.as_bytes()));
        assert_eq!(certificates_pem(both.as_bytes()).unwrap(), ca, "the key is left out, the CA kept as it was");
        assert!(certificates_pem(key.as_bytes()).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
