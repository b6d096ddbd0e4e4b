//! The desktop app killed with SIGKILL while it saves its settings: whenever the kill lands, the next start
//! finds a whole settings file (the old one or the new one), reports nothing damaged, and runs the hub.
//!
//! The saving process is this test binary itself, started again with `POUSSR_TEST_SAVE_LOOP` set: it runs
//! the app's own `Store::save` in a loop until it is killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use poussr_desktop::settings::{Settings, Store};

const CHILD: &str = "POUSSR_TEST_SAVE_LOOP";

/// Two versions that differ everywhere, each large enough (about 200 KB) that a save takes a while.
fn versions() -> [Settings; 2] {
    let app = poussr::AppConfig::new("1", "key1", "secret1");
    let version = |port: u16, tag: &str| Settings {
        port,
        allowed_origins: (0..4000).map(|i| format!("http://{tag}-{i}.lan:8080")).collect(),
        app: Some(app.clone()),
        ..Settings::default()
    };
    [version(7001, "old"), version(7002, "new")]
}

fn save_forever(dir: &std::ffi::OsStr) -> ! {
    let store = Store::new(dir);
    let versions = versions();
    println!("ready");
    for i in 0usize.. {
        store.save(&versions[i % 2]).expect("saved");
    }
    unreachable!()
}

#[test]
fn a_kill_during_a_settings_save_leaves_a_whole_file_and_a_clean_next_start() {
    if let Some(dir) = std::env::var_os(CHILD) {
        save_forever(&dir);
    }
    let dir = std::env::temp_dir().join(format!("poussr-kill-{}", rand::random::<u64>()));
    let store = Store::new(&dir);
    let versions = versions();
    store.save(&versions[0]).unwrap();
    let (mut cut_short, mut seen) = (0, [false, false]);
    for round in 0..30 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "a_kill_during_a_settings_save_leaves_a_whole_file_and_a_clean_next_start"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, &dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for its first save, past libtest's own lines; keep the pipe open until the kill.
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert!(output.read_line(&mut line).unwrap() > 0, "the saving process ended before saving");
        }
        std::thread::sleep(Duration::from_millis(5 + (round * 7) % 40));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        drop(output);

        if dir.join("settings.tmp").exists() {
            cut_short += 1;
        }
        // The next start: the file loads as one of the two versions, nothing is reported damaged, and the
        // leftover temporary file is gone.
        let loaded = store.load(&Settings::default()).expect("the settings load");
        assert!(loaded.notice.is_none(), "round {round}: {:?}", loaded.notice);
        let which = versions.iter().position(|v| *v == loaded.settings).expect("the file is one whole version");
        seen[which] = true;
        assert!(!dir.join("settings.tmp").exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing but settings.json is left");
    }
    assert!(cut_short > 0, "no kill landed during a save; the test proved nothing");
    assert!(seen[0] && seen[1], "both versions were found after kills: {seen:?}");

    // And the hub starts from what was loaded.
    let settings =
        Settings { port: 0, bind: [127, 0, 0, 1].into(), ..store.load(&Settings::default()).unwrap().settings };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config = settings.hub_config("0123456789abcdef0123");
        let hub = poussr::adapter::hub(&config).expect("a valid configuration");
        let frontend = poussr::http::Frontend::new(&config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(poussr::server::run(listener, hub, frontend, async move {
            let _ = stopped.await;
        }));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
