//! `poussr-window`: the program that shows the window, started by the tray (`poussr-desktop`; see
//! `poussr_desktop::window` for why it is a process of its own and how the two talk). It is the only one of
//! the two that links Tauri and WebKit. It has no hub, no tray and no single-instance lock: the commands that
//! need the tray's state are forwarded to it; the clipboard, the file pickers, opening the config folder and
//! saving an export are done here.
//!
//! If WebKit's web process dies (a crash, the system out of memory), the page is loaded again, at most
//! 3 times a minute (`RELOADS_PER_MINUTE`); past that the window process ends, and *Open Poussr* starts a new
//! one.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")] // no console window on Windows

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[path = "../common.rs"]
mod common;

use common::lock;
use serde_json::{Value, json};
use tauri::{AppHandle, Manager, Runtime, State, WebviewUrl, WebviewWindow, WebviewWindowBuilder};
use tauri_plugin_clipboard_manager::ClipboardExt;
use tauri_plugin_dialog::DialogExt;
use tauri_plugin_opener::OpenerExt;
use tokio::sync::oneshot;

/// The window's label.
const MAIN: &str = "main";

/// How long a command forwarded to the tray may take before the window says the tray does not answer.
const BRIDGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the page is loaded again after WebKit's web process died, within a minute, before the window
/// process gives up and ends.
#[cfg(target_os = "linux")]
const RELOADS_PER_MINUTE: usize = 3;

/// The requests sent to the tray that await its answer.
#[derive(Default)]
struct Bridge {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, Value>>>>,
}

impl Bridge {
    /// Sends `cmd` to the tray and waits for its answer (the tray's error as `{"kind", "message"}`).
    async fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if let Err(e) = send(&json!({"id": id, "cmd": cmd, "args": args})) {
            lock(&self.pending).remove(&id);
            return Err(gone(&e.to_string()));
        }
        match tokio::time::timeout(BRIDGE_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(gone("it stopped answering")),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(gone(&format!("no answer within {} s", BRIDGE_TIMEOUT.as_secs())))
            }
        }
    }

    /// An answer from the tray.
    fn answered(&self, reply: &Value) {
        let Some(id) = reply.get("id").and_then(Value::as_u64) else { return };
        if let Some(tx) = lock(&self.pending).remove(&id) {
            let result = match reply.get("err") {
                Some(err) => Err(err.clone()),
                None => Ok(reply.get("ok").cloned().unwrap_or(Value::Null)),
            };
            let _ = tx.send(result);
        }
    }
}

/// Writes one line to the tray.
fn send(message: &Value) -> std::io::Result<()> {
    let line = format!("{message}\n");
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).and_then(|()| out.flush())
}

fn gone(why: &str) -> Value {
    json!({"kind": "settings", "message": format!("Poussr's tray process cannot be reached ({why}); reopen Poussr")})
}

macro_rules! forwarded {
    ($($name:ident),*) => {$(
        #[tauri::command]
        async fn $name(bridge: State<'_, Arc<Bridge>>) -> Result<Value, Value> {
            bridge.call(stringify!($name), Value::Null).await
        }
    )*};
}

// The forwarded commands without arguments (`poussr_desktop::commands::FORWARDED`); `apply_settings({ input })`
// has one.
forwarded!(connection, get_settings, create_certificate, export_ca);

#[tauri::command]
async fn apply_settings(bridge: State<'_, Arc<Bridge>>, input: Value) -> Result<Value, Value> {
    bridge.call("apply_settings", json!({ "input": input })).await
}

/// `open_config_folder`: shows the settings folder (the tray says which) in the file manager.
#[tauri::command]
async fn open_config_folder<R: Runtime>(app: AppHandle<R>, bridge: State<'_, Arc<Bridge>>) -> Result<(), Value> {
    let dir = bridge.call("config_folder", Value::Null).await?;
    let dir = dir.as_str().ok_or_else(|| failed("open", "the tray named no folder".into()))?;
    app.opener().open_path(dir, None::<&str>).map_err(|e| failed("open", format!("cannot open the folder: {e}")))
}

/// An error as the window reads it: `{"kind", "message"}`, with the kinds of the tray's errors
/// (`poussr_desktop::commands::CommandFailure`).
fn failed(kind: &str, message: String) -> Value {
    json!({"kind": kind, "message": message})
}

/// `copy_text`: puts text on the clipboard.
#[tauri::command]
fn copy_text<R: Runtime>(app: AppHandle<R>, text: String) -> Result<(), Value> {
    app.clipboard().write_text(text).map_err(|e| failed("clipboard", format!("cannot use the clipboard: {e}")))
}

/// `save_export`: writes a recording of the console (JSON Lines, docs/recording.md) to the Downloads folder
/// (or the home folder) and returns the file's path. A webview cannot download a file by itself.
#[tauri::command]
fn save_export(name: String, text: String) -> Result<String, Value> {
    let safe: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
    if safe.is_empty() || safe.starts_with('.') {
        return Err(failed("invalid", format!("{name:?} is not a file name")));
    }
    common::save_to_downloads(&safe, text.as_bytes())
        .map_err(|e| failed("open", format!("cannot open the folder: {e}")))
}

/// `pick_file`: the system's file picker, for a PEM file; the chosen path, or nothing when cancelled.
#[tauri::command]
async fn pick_file<R: Runtime>(app: AppHandle<R>, title: String) -> Option<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_title(title)
        .add_filter("Certificates and keys (PEM)", &["pem", "crt", "cer", "key"])
        .pick_file(move |picked| {
            let _ = tx.send(picked);
        });
    let picked = rx.await.ok().flatten()?;
    picked.into_path().ok().map(|p| p.to_string_lossy().into_owned())
}

/// Builds the window.
fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<WebviewWindow<R>> {
    let window = WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()))
        .title("Poussr")
        .inner_size(1100.0, 760.0)
        .min_inner_size(720.0, 480.0)
        .on_page_load(|_, load| {
            if load.event() == tauri::webview::PageLoadEvent::Finished {
                tracing::info!("the window's page is loaded");
            }
        })
        .build()?;
    window.on_window_event(|event| {
        if matches!(event, tauri::WindowEvent::Destroyed) {
            // The tray starts a new window process on the next Open instead of asking this one.
            let _ = send(&json!({"closing": true}));
        }
    });
    Ok(window)
}

/// Brings the window to the front.
fn focus<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Reads the tray's lines: answers and requests to come to the front. When the tray goes (its end of the
/// pipe closes), so does the window.
fn listen_to_tray<R: Runtime>(app: AppHandle<R>, bridge: Arc<Bridge>) {
    let spawned = std::thread::Builder::new().name("poussr-window-tray".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v.get("focus").is_some() => {
                    let handle = app.clone();
                    let _ = app.run_on_main_thread(move || focus(&handle));
                }
                Ok(v) => bridge.answered(&v),
                Err(e) => tracing::warn!("an unreadable line from the tray: {e}"),
            }
        }
        tracing::info!("the tray process is gone: closing the window");
        app.exit(0);
    });
    if let Err(e) = spawned {
        tracing::error!("cannot listen to the tray: {e}");
    }
}

/// Loads the page again when WebKit's web process dies, a few times a minute at most; then gives up and
/// ends, so that *Open Poussr* starts afresh.
#[cfg(target_os = "linux")]
fn recover_from_web_process_crashes<R: Runtime>(window: &WebviewWindow<R>) {
    let app = window.app_handle().clone();
    let hooked = window.with_webview(move |webview| {
        use webkit2gtk::WebViewExt;
        let deaths = std::cell::RefCell::new(std::collections::VecDeque::<std::time::Instant>::new());
        webview.inner().connect_web_process_terminated(move |view, reason| {
            let now = std::time::Instant::now();
            let mut deaths = deaths.borrow_mut();
            deaths.retain(|t| now.duration_since(*t) < std::time::Duration::from_secs(60));
            deaths.push_back(now);
            if deaths.len() > RELOADS_PER_MINUTE {
                tracing::error!("WebKit's web process ended again ({reason:?}); closing the window");
                app.exit(1);
            } else {
                tracing::warn!("WebKit's web process ended ({reason:?}); loading the page again");
                view.reload();
            }
        });
    });
    if let Err(e) = hooked {
        tracing::warn!("cannot watch WebKit's web process: {e}");
    }
}

#[cfg(not(target_os = "linux"))]
fn recover_from_web_process_crashes<R: Runtime>(_window: &WebviewWindow<R>) {}

/// The window process's app, on any runtime.
fn builder<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    let bridge = Arc::new(Bridge::default());
    builder
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .manage(bridge.clone())
        .invoke_handler(tauri::generate_handler![
            connection,
            get_settings,
            apply_settings,
            create_certificate,
            export_ca,
            open_config_folder,
            copy_text,
            pick_file,
            save_export,
        ])
        .setup(move |app| {
            listen_to_tray(app.handle().clone(), bridge);
            let window = build(app.handle())?;
            recover_from_web_process_crashes(&window);
            focus(app.handle());
            Ok(())
        })
}

/// Runs the window until it is closed.
fn main() {
    if !common::has_display() {
        eprintln!(
            "poussr-window: no display (neither DISPLAY nor WAYLAND_DISPLAY is set): there is nowhere to show the window"
        );
        std::process::exit(2);
    }
    // The window is Poussr's to the desktop: its WM_CLASS is the tray's program, which the .desktop entry's
    // StartupWMClass names, so the dock shows it under Poussr's launcher and icon.
    #[cfg(target_os = "linux")]
    webkit2gtk::glib::set_prgname(Some("poussr-desktop"));
    // Standard output carries the requests to the tray: the log goes to standard error.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let app = builder(tauri::Builder::default()).build(tauri::generate_context!()).unwrap_or_else(|e| {
        eprintln!("poussr-window: cannot start: {e}");
        std::process::exit(1);
    });
    // Closing the window ends this process (the default); the tray stays.
    app.run(|_, _| {});
}
