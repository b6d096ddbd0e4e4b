//! The tray's commands and launch, driven as the window process drives them (one JSON line per request,
//! answered by `window::answer`): no display, the real hub.

mod session_end;
mod small_disk;

use super::*;

/// A tray on 127.0.0.1 with its own runtime and data folder, as `app::run` makes it, without the event loop.
/// Dropping it stops the hub and removes the folder, also when the test fails.
struct Tray {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    dir: std::path::PathBuf,
    remove_dir: bool,
}

impl Tray {
    /// A tray with `settings` in a folder of its own.
    fn launch(settings: serde_json::Value) -> Self {
        let dir = std::env::temp_dir().join(format!("poussr-tray-test-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = Self::launch_in(&dir, settings);
        w.remove_dir = true;
        w
    }

    /// A tray with `settings` in `dir`, which exists (and is left in place).
    fn launch_in(dir: &std::path::Path, settings: serde_json::Value) -> Self {
        std::fs::write(dir.join("settings.json"), settings.to_string()).unwrap();
        let options = LaunchOptions { config_dir: Some(dir.to_path_buf()), hidden: true, ..Default::default() };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let state = runtime.block_on(launch(&options)).unwrap();
        Tray { runtime, state, dir: dir.to_path_buf(), remove_dir: false }
    }

    /// A tray on 127.0.0.1 with an OS-chosen port.
    fn open() -> Self {
        Self::launch(serde_json::json!({"bind": "127.0.0.1", "port": 0}))
    }

    /// The tray's answer to the window's request `cmd` with `args`, through the window's pipe protocol.
    fn invoke(&self, cmd: &str, args: serde_json::Value) -> Result<serde_json::Value, serde_json::Value> {
        let line = serde_json::json!({"id": 7, "cmd": cmd, "args": args}).to_string();
        let mut reply = self.runtime.block_on(window::answer(&self.state, &line));
        assert_eq!(reply["id"], 7, "{reply}");
        match reply.get_mut("err") {
            Some(err) => Err(err.take()),
            None => Ok(reply["ok"].take()),
        }
    }

    fn runner(&self) -> &Runner {
        &self.state.runner
    }

    /// The settings file as saved now.
    fn saved(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("settings.json")).unwrap()).unwrap()
    }
}

impl Drop for Tray {
    fn drop(&mut self) {
        self.runtime.block_on(self.state.runner.stop());
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A port free on 127.0.0.1 now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `apply_settings`'s argument: the Settings form for 127.0.0.1:`port`, nothing allowed to other machines,
/// with the fields of `extra` added or replaced.
fn settings_input(port: u16, extra: serde_json::Value) -> serde_json::Value {
    let mut input = serde_json::json!({"bind": "127.0.0.1", "port": port,
        "allow_anonymous_publish": false, "allow_remote_dashboard": false});
    input.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::json!({ "input": input })
}

#[test]
fn a_full_disk_refuses_the_save_clearly_and_keeps_the_previous_settings_running() {
    let disk = match small_disk::place(
        "tests::a_full_disk_refuses_the_save_clearly_and_keeps_the_previous_settings_running",
    ) {
        small_disk::Place::Here(disk) => disk,
        small_disk::Place::RanInNamespace => return,
        small_disk::Place::Unavailable(why) => {
            eprintln!("NOT RUN: the full-disk test needs to mount a small tmpfs, and here {why}");
            return;
        }
    };
    let first = free_port();
    let w = Tray::launch_in(&disk.0, serde_json::json!({"bind": "127.0.0.1", "port": first}));
    let state = &w.state;
    let listening = state.runner.status().listen;
    assert_eq!(listening.map(|a| a.port()), Some(first));
    let saved_before = std::fs::read(disk.0.join("settings.json")).unwrap();
    disk.fill();

    let port = free_port();
    let input = settings_input(port, serde_json::json!({"allow_anonymous_publish": true}));
    let err = w.invoke("apply_settings", input.clone()).unwrap_err();
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("is full") && message.contains("previous settings are still in force"), "{err}");
    assert_eq!(std::fs::read(disk.0.join("settings.json")).unwrap(), saved_before, "the old file is intact");
    assert!(!disk.0.join("settings.tmp").exists(), "no partial file is left");
    assert_eq!(state.runner.status().listen, listening, "the hub went back to the saved settings");

    // With space again, the same settings apply.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    let c = w.invoke("apply_settings", input).unwrap();
    assert_eq!(c["status"]["listen"], format!("127.0.0.1:{port}"));
}

#[test]
fn the_connection_command_gives_the_hub_url_and_token() {
    let w = Tray::open();
    let c = w.invoke("connection", serde_json::json!({})).unwrap();
    assert_eq!(c["status"]["state"], "running");
    assert!(c["status"]["base_url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    assert_eq!(c["admin_token"].as_str().unwrap().len(), 32);
    let settings = w.invoke("get_settings", serde_json::json!({})).unwrap();
    assert_eq!(settings["saved"]["bind"], "127.0.0.1");
    assert!(settings["file"].as_str().unwrap().ends_with("settings.json"));
}

#[test]
fn apply_settings_refuses_a_bad_address_and_keeps_serving() {
    let w = Tray::open();
    let before = w.invoke("connection", serde_json::json!({})).unwrap();
    let input = serde_json::json!({"input": {"bind": "not-an-ip", "port": 7000,
        "allow_anonymous_publish": false, "allow_remote_dashboard": false}});
    let err = w.invoke("apply_settings", input).unwrap_err();
    assert_eq!(err["kind"], "invalid");
    assert!(err["message"].as_str().unwrap().contains("not an IP address"));
    let after = w.invoke("connection", serde_json::json!({})).unwrap();
    assert_eq!(before["status"], after["status"]);
}

#[test]
fn apply_settings_moves_the_hub_and_saves() {
    let w = Tray::open();
    let port = free_port();
    let input = settings_input(port, serde_json::json!({"allow_anonymous_publish": true}));
    let c = w.invoke("apply_settings", input).unwrap();
    assert_eq!(c["status"]["listen"], format!("127.0.0.1:{port}"));
    let saved = w.saved();
    assert_eq!((saved["port"].as_u64(), saved["allow_anonymous_publish"].as_bool()), (Some(port as u64), Some(true)));
}

#[test]
fn apply_settings_saves_client_events_and_the_webhook() {
    let w = Tray::open();
    let port = free_port();
    let with = |extra: serde_json::Value| settings_input(port, extra);
    let err = w.invoke("apply_settings", with(serde_json::json!({"webhook_url": "ftp://x/hook"}))).unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("http://"), "{err}");
    let input = with(serde_json::json!({"client_events": false, "webhook_url": " http://127.0.0.1:9/hook ",
        "webhook_events": ["member_added", "member_removed"]}));
    w.invoke("apply_settings", input).unwrap();
    let saved = w.saved();
    assert_eq!(saved["app"]["client_events"], false);
    assert_eq!(
        saved["app"]["webhooks"],
        serde_json::json!([{"url": "http://127.0.0.1:9/hook", "events": ["member_added", "member_removed"]}])
    );
    // Every kind ticked is saved as "all"; an empty URL turns webhooks off.
    let all = serde_json::json!([
        "channel_occupied",
        "channel_vacated",
        "member_added",
        "member_removed",
        "client_event",
        "cache_miss"
    ]);
    w.invoke("apply_settings", with(serde_json::json!({"webhook_url": "http://h/", "webhook_events": all}))).unwrap();
    let saved = w.saved();
    assert_eq!(saved["app"]["webhooks"], serde_json::json!([{"url": "http://h/"}]));
    w.invoke("apply_settings", with(serde_json::json!({"webhook_url": ""}))).unwrap();
    let saved = w.saved();
    assert!(saved["app"].get("webhooks").is_none(), "{saved}");
}

#[test]
fn apply_settings_joins_a_redis_cluster_and_says_when_redis_is_unreachable() {
    let w = Tray::open();
    let port = free_port();
    let input = |url: &str| {
        settings_input(port, serde_json::json!({"adapter": "redis", "redis_url": url, "redis_prefix": "plant-a"}))
    };
    let err = w.invoke("apply_settings", input("http://127.0.0.1:6379")).unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("must start with redis://"), "{err}");
    // Nothing listens on port 1: the hub runs, serves its own clients and says the link is down.
    w.invoke("apply_settings", input(" redis://127.0.0.1:1 ")).unwrap();
    let saved = w.saved();
    assert_eq!(
        (&saved["adapter"], &saved["redis_url"], &saved["redis_prefix"]),
        (&"redis".into(), &"redis://127.0.0.1:1".into(), &"plant-a".into())
    );
    let hub = w.runtime.block_on(w.runner().hub()).expect("the hub runs");
    let status = hub.cluster_status().expect("a cluster member");
    assert_eq!((status.adapter, status.prefix.as_str()), (poussr::config::AdapterKind::Redis, "plant-a"));
}

#[test]
fn apply_settings_checks_and_saves_the_allowed_origins() {
    let w = Tray::open();
    let port = free_port();
    let input = |origins: &str| settings_input(port, serde_json::json!({"allowed_origins": origins}));
    let err = w.invoke("apply_settings", input("http://ok.lan intranet.lan")).unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("\"intranet.lan\" needs a scheme"), "{err}");
    w.invoke("apply_settings", input(" HTTP://Ok.lan:8080/,\nhttps://*.plant.example ")).unwrap();
    let saved = w.saved();
    assert_eq!(saved["allowed_origins"], serde_json::json!(["http://ok.lan:8080", "https://*.plant.example"]));
    // The running hub uses them: a page of another origin is refused before the upgrade.
    let frontend = w.runtime.block_on(w.runner().frontend()).expect("the hub runs");
    let access = frontend.access();
    assert!(access.origin_allowed("https://line1.plant.example") && !access.origin_allowed("http://evil.example"));
}

#[test]
fn launch_options() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let o = LaunchOptions::parse(args(&["--hidden", "--config-dir", "/tmp/x"]));
    assert!(o.hidden);
    assert_eq!(o.config_dir.as_deref(), Some(std::path::Path::new("/tmp/x")));
    let o = LaunchOptions::parse(args(&["--config-dir=/tmp/y"]));
    assert_eq!(o.config_dir.as_deref(), Some(std::path::Path::new("/tmp/y")));
    assert!(!o.hidden);
    assert!(!o.quit);
    assert!(LaunchOptions::parse(args(&["--quit"])).quit);
}

/// `GET path` on 127.0.0.1:`port` over plain HTTP (which the desktop's hub always serves, for its window).
fn http_get_json(port: u16, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn create_certificate_serves_tls_keeps_the_ca_and_a_bad_pair_is_refused() {
    let w = Tray::open();
    let c = w.invoke("create_certificate", serde_json::json!({})).unwrap();
    let port: u16 = c["status"]["listen"].as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    let tls_dir = w.dir.join("tls");
    let saved = w.saved();
    assert_eq!(saved["tls"]["cert"], tls_dir.join("cert.pem").to_string_lossy().as_ref());
    assert_eq!(saved["tls"]["ca"], tls_dir.join("ca.pem").to_string_lossy().as_ref());
    let served = http_get_json(port, "/health");
    let cert = poussr::cert::CertInfo::from_pem_file(&tls_dir.join("cert.pem")).unwrap();
    let ca = poussr::cert::CertInfo::from_pem_file(&tls_dir.join("ca.pem")).unwrap();
    assert_eq!(served["tls"]["certificate"]["sha256"], cert.sha256.as_str());
    assert_eq!(served["tls"]["ca"]["sha256"], ca.sha256.as_str());

    // The CA's key with the certificate: refused with the reason, and the hub keeps serving as before.
    let input = settings_input(
        port,
        serde_json::json!({
        "tls_cert": tls_dir.join("cert.pem"), "tls_key": tls_dir.join("ca-key.pem"), "tls_ca": ""}),
    );
    let err = w.invoke("apply_settings", input).unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("is not the key of the certificate"), "{err}");
    assert_eq!(w.saved()["tls"], saved["tls"], "nothing saved");
    assert_eq!(http_get_json(port, "/health")["tls"]["certificate"]["sha256"], cert.sha256.as_str());

    // Empty paths turn TLS off.
    let input = settings_input(port, serde_json::json!({"tls_cert": "", "tls_key": "", "tls_ca": ""}));
    w.invoke("apply_settings", input).unwrap();
    assert!(http_get_json(port, "/health")["tls"].is_null());
    assert!(w.saved()["tls"]["cert"].is_null());
}

#[test]
fn certificate_files_that_cannot_be_used_at_launch_leave_tls_off_and_plain_running() {
    let w = Tray::launch(serde_json::json!({"bind": "127.0.0.1", "port": 0,
        "tls": {"cert": "/nonexistent/cert.pem", "key": "/nonexistent/key.pem"}}));
    let c = w.invoke("connection", serde_json::json!({})).unwrap();
    let notice = c["notice"].as_str().unwrap_or_default();
    assert!(notice.contains("TLS (https, wss) is off for this launch") && notice.contains("cert.pem"), "{c}");
    let port: u16 = c["status"]["listen"].as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    assert!(http_get_json(port, "/health")["tls"].is_null(), "plain only");
}

#[test]
fn the_window_gets_the_config_folder_and_a_clear_error_for_what_is_not_a_command() {
    let w = Tray::open();
    assert_eq!(w.invoke("config_folder", serde_json::Value::Null).unwrap(), w.dir.to_string_lossy().as_ref());
    let err = w.invoke("format_disk", serde_json::Value::Null).unwrap_err();
    assert_eq!(err["kind"], "invalid");
    assert!(err["message"].as_str().unwrap().contains("\"format_disk\", which is not a command"), "{err}");
    let err = w.invoke("apply_settings", serde_json::json!({"input": {"port": "six"}})).unwrap_err();
    assert!(err["message"].as_str().unwrap().starts_with("the settings sent are not valid"), "{err}");
    // A line that is not a request gets an answer that says so.
    let reply = w.runtime.block_on(window::answer(&w.state, "hello"));
    assert_eq!(reply["err"]["kind"], "invalid", "{reply}");
    // Every command the window forwards is one the tray knows (create_certificate has its own test below;
    // here export_ca finds no CA yet and writes nothing).
    for cmd in commands::FORWARDED.into_iter().filter(|c| *c != "create_certificate") {
        if let Err(err) = w.invoke(cmd, serde_json::Value::Null) {
            assert!(!err["message"].as_str().unwrap().contains("not a command"), "{cmd}: {err}");
        }
    }
}

#[test]
fn a_later_launch_opens_the_window_or_quits() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(matches!(app::request_for_launch(args(&[])), app::Request::Open));
    assert!(matches!(app::request_for_launch(args(&["--hidden"])), app::Request::Open));
    assert!(matches!(app::request_for_launch(args(&["--quit"])), app::Request::Quit));
}
