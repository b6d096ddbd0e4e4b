//! The window. Closing it destroys it, which frees its webview (WebKit's processes hold about 200 MB even
//! for a small page); the app stays in the tray and builds a new window when the operator opens it.

use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindow, WebviewWindowBuilder};

/// The window's label.
pub const MAIN: &str = "main";

/// Shows the window, creating it if it was closed, and brings it to the front.
pub fn show<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<WebviewWindow<R>> {
    let window = match app.get_webview_window(MAIN) {
        Some(w) => w,
        None => WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()))
            .title("Poussr")
            .inner_size(1100.0, 760.0)
            .min_inner_size(720.0, 480.0)
            .build()?,
    };
    window.show()?;
    window.unminimize()?;
    window.set_focus()?;
    Ok(window)
}
