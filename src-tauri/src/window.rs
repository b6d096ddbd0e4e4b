//! The window, in a process of its own: `poussr-window`, a program installed beside `poussr-desktop`, started
//! by the tray when the operator opens Poussr and gone when the window closes. Only that program links Tauri
//! and WebKit: the tray never loads them, everything WebKit holds (its web and network processes, the heap of
//! the page's UI) goes back to the OS when the window closes, and a crash of the window or of WebKit can never
//! reach the hub, which lives here.
//!
//! The two processes talk over the window process's standard input and output, one JSON object a line:
//! - window → tray: `{"id": n, "cmd": "get_settings", "args": {…}}`, a command only the tray can answer
//!   (its state: the hub's address and token, the settings, certificates);
//! - window → tray: `{"closing": true}` once its window is gone (the process may take a moment to exit; an
//!   *Open Poussr* meanwhile starts a new one instead of asking this one);
//! - tray → window: `{"id": n, "ok": …}` or `{"id": n, "err": {"kind", "message"}}`, and `{"focus": true}`
//!   when the operator opens Poussr while the window is open.
//!
//! The window process ends when its window closes, when its input closes (the tray quit or died), or when the
//! tray kills it at Quit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::{AppState, lock};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// The window's program, in the tray's folder (with `.exe` on Windows).
pub const WINDOW_PROGRAM: &str = "poussr-window";

/// The window's program beside this one.
pub fn window_program() -> Result<std::path::PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot tell where this program is: {e}"))?;
    let dir = me.parent().ok_or("this program is in no folder")?;
    let program = dir.join(format!("{WINDOW_PROGRAM}{}", std::env::consts::EXE_SUFFIX));
    if program.is_file() { Ok(program) } else { Err(format!("{} is missing: reinstall Poussr", program.display())) }
}

/// The line that asks an open window to come to the front.
pub const FOCUS: &str = "{\"focus\":true}\n";

/// The window process, if one runs.
#[derive(Default)]
pub struct Windows {
    current: Mutex<Option<Handle>>,
    started: AtomicU64,
}

struct Handle {
    /// Lines for its standard input.
    lines: mpsc::UnboundedSender<String>,
    /// Ends it.
    kill: Option<oneshot::Sender<()>>,
    /// False once it has exited.
    alive: Arc<AtomicBool>,
}

impl Windows {
    /// How many window processes were started so far.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Whether a window process runs now.
    pub fn is_open(&self) -> bool {
        lock(&self.current).as_ref().is_some_and(|h| h.alive.load(Ordering::Acquire))
    }

    /// Ends the window process, if one runs (Quit).
    pub fn close(&self) {
        if let Some(mut handle) = lock(&self.current).take()
            && let Some(kill) = handle.kill.take()
        {
            let _ = kill.send(());
        }
    }
}

/// Opens the window: brings the open one to the front, or starts a window process (on `runtime`) whose
/// commands `state` answers.
pub fn show(windows: &Windows, state: &Arc<AppState>, runtime: &tokio::runtime::Handle) -> Result<(), String> {
    let mut current = lock(&windows.current);
    if let Some(handle) = current.as_ref()
        && handle.alive.load(Ordering::Acquire)
        && handle.lines.send(FOCUS.to_owned()).is_ok()
    {
        return Ok(());
    }
    let program = window_program()?;
    let (lines, lines_rx) = mpsc::unbounded_channel();
    let (kill, kill_rx) = oneshot::channel();
    let alive = Arc::new(AtomicBool::new(true));
    *current = Some(Handle { lines: lines.clone(), kill: Some(kill), alive: alive.clone() });
    let started = windows.started.fetch_add(1, Ordering::Relaxed) + 1;
    let state = state.clone();
    let closing = alive.clone();
    runtime.spawn(async move {
        if let Err(e) = run(&state, &program, lines, lines_rx, kill_rx, closing).await {
            tracing::error!("cannot open the window: {e}");
        }
        alive.store(false, Ordering::Release);
        tracing::debug!(window = started, "the window process ended");
    });
    Ok(())
}

/// Starts the window process and serves it until it ends.
async fn run(
    state: &Arc<AppState>,
    program: &std::path::Path,
    lines: mpsc::UnboundedSender<String>,
    mut lines_rx: mpsc::UnboundedReceiver<String>,
    kill: oneshot::Receiver<()>,
    alive: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut child = tokio::process::Command::new(program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the window process has no pipes".into());
    };
    tokio::spawn(async move {
        while let Some(line) = lines_rx.recv().await {
            if stdin.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let requests = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // A line that is not the protocol's (a library writing to the standard output) is answered
                // with an error nobody waits for, and the next line is read.
                let line = String::from_utf8_lossy(&raw).into_owned();
                if line.contains("\"closing\"")
                    && serde_json::from_str::<Value>(&line).is_ok_and(|v| v.get("closing").is_some())
                {
                    alive.store(false, Ordering::Release);
                    continue;
                }
                let state = state.clone();
                let lines = lines.clone();
                tokio::spawn(async move {
                    let reply = answer(&state, &line).await;
                    let _ = lines.send(format!("{reply}\n"));
                });
            }
        })
    };
    let (status, quitting) = tokio::select! {
        status = child.wait() => (status.map_err(|e| e.to_string())?, false),
        _ = kill => {
            let _ = child.kill().await;
            (child.wait().await.map_err(|e| e.to_string())?, true)
        }
    };
    requests.abort();
    if quitting {
        tracing::info!("the window was closed with Poussr");
    } else if status.success() {
        tracing::info!("the window was closed; Poussr stays in the tray");
    } else {
        tracing::warn!("the window process ended with {status}; the hub goes on, and Open Poussr brings a new window");
    }
    Ok(())
}

/// The reply to one request line of the window process.
pub async fn answer(state: &AppState, line: &str) -> Value {
    let request: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"id": null, "err": {"kind": "invalid", "message": format!("not a request: {e}")}}),
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let cmd = request.get("cmd").and_then(Value::as_str).unwrap_or("");
    let args = request.get("args").cloned().unwrap_or(Value::Null);
    match crate::commands::handle(state, cmd, args).await {
        Ok(value) => json!({"id": id, "ok": value}),
        Err(e) => json!({"id": id, "err": e}),
    }
}
