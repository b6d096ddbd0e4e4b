//! `poussr serve` with a certificate it cannot use refuses to start, and says which file and why: an
//! expired certificate, one not valid yet, a key that is not the certificate's, a file that is not PEM.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{CertificateParams, KeyPair};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("poussr-tls-start-{tag}-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for localhost valid from `from` to `until` (days from now), and its key.
fn certificate(dir: &Path, name: &str, from: i64, until: i64) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(until);
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// `poussr serve` on 127.0.0.1 with no history, its data in `dir`, serving TLS with `cert` and `key`.
fn serve_command(dir: &Path, cert: &Path, key: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_poussr"));
    command.args(["serve", "--bind", "127.0.0.1", "--port", "0", "--no-history", "--data-dir"]);
    command.arg(dir).arg("--tls-cert").arg(cert).arg("--tls-key").arg(key).env("RUST_LOG", "warn");
    command
}

/// Runs `poussr serve` with `cert` and `key` until it exits (it must, with these files); returns its
/// status and stderr.
fn serve_with(dir: &Path, cert: &Path, key: &Path) -> (bool, String) {
    let output = serve_command(dir, cert, key).output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn an_expired_certificate_is_refused_at_start_with_its_date() {
    let dir = temp_dir("expired");
    let (cert, key) = certificate(&dir, "old", -400, -1);
    let (ok, stderr) = serve_with(&dir, &cert, &key);
    assert!(!ok);
    assert!(stderr.contains("old.pem") && stderr.contains("the certificate expired on"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_certificate_not_valid_yet_is_refused_with_a_word_on_the_clock() {
    let dir = temp_dir("future");
    let (cert, key) = certificate(&dir, "future", 2, 30);
    let (ok, stderr) = serve_with(&dir, &cert, &key);
    assert!(!ok);
    assert!(stderr.contains("not valid before") && stderr.contains("clock"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let dir = temp_dir("mismatch");
    let (cert, _) = certificate(&dir, "a", -1, 30);
    let (_, other_key) = certificate(&dir, "b", -1, 30);
    let (ok, stderr) = serve_with(&dir, &cert, &other_key);
    assert!(!ok);
    assert!(stderr.contains("b-key.pem is not the key of the certificate in"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn files_that_are_not_pem_or_not_there_are_named() {
    let dir = temp_dir("garbage");
    let (cert, key) = certificate(&dir, "good", -1, 30);
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let (ok, stderr) = serve_with(&dir, &garbage, &key);
    assert!(!ok);
    assert!(stderr.contains("garbage.pem: no certificate"), "{stderr}");
    let (ok, stderr) = serve_with(&dir, &cert, &garbage);
    assert!(!ok);
    assert!(stderr.contains("garbage.pem: no private key"), "{stderr}");
    let (ok, stderr) = serve_with(&dir, &dir.join("missing.pem"), &key);
    assert!(!ok);
    assert!(stderr.contains("cannot read") && stderr.contains("missing.pem"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_certificate_expiring_within_14_days_is_warned_about_in_the_log_and_health() {
    use std::io::{BufRead, Read, Write};
    let dir = temp_dir("soon");
    let (cert, key) = certificate(&dir, "soon", -1, 10);
    let mut child = serve_command(&dir, &cert, &key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // The banner's first line names the port; the hub prints it once it listens.
    while !line.contains("listening on") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the hub ended before listening");
    }
    let port: u16 = line.split_whitespace().nth(4).unwrap().rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let body: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let warning = body["tls"]["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("days left") && warning.contains("expires on"), "{body}");
    assert!((8..=10).contains(&body["tls"]["days_left"].as_i64().unwrap()), "{body}");
    assert_eq!(body["tls"]["expired"], false);
    assert!(log.contains("WARN") && log.contains("days left"), "{log}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_ca_file_holding_a_private_key_is_refused_and_never_served() {
    let dir = temp_dir("cakey");
    let (cert, key) = certificate(&dir, "server", -1, 30);
    let mixed = dir.join("ca-and-key.pem");
    let text = format!("{}{}", std::fs::read_to_string(&cert).unwrap(), std::fs::read_to_string(&key).unwrap());
    std::fs::write(&mixed, text).unwrap();
    let output = serve_command(&dir, &cert, &key).arg("--tls-ca").arg(&mixed).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("ca-and-key.pem holds a private key"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cert_create_then_show_describe_the_ca_and_the_certificate() {
    let dir = temp_dir("create");
    let out = Command::new(env!("CARGO_BIN_EXE_poussr"))
        .args(["cert", "create", "--name", "hub.local", "--name", "10.1.2.3", "--dir"])
        .arg(dir.join("tls"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("names:     hub.local, 10.1.2.3") && text.contains("Local CA (new)"), "{text}");
    let show =
        Command::new(env!("CARGO_BIN_EXE_poussr")).args(["cert", "show", "--data-dir"]).arg(&dir).output().unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success() && shown.contains("(CA)") && shown.contains("hub.local"), "{shown}");
    let fingerprint = text.lines().find(|l| l.contains("SHA-256")).unwrap().trim().to_owned();
    assert!(shown.contains(&fingerprint), "show gives the same fingerprint as create: {shown}");
    std::fs::remove_dir_all(dir).unwrap();
}
