//! The little both programs need: the tray's library includes this module, and so does the window's
//! program (`#[path]`), which must not link the library: linking it would bring the hub into the window.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, going on with the data if a thread panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a graphical session is there to open a window in (on Linux: X11 or Wayland).
pub(crate) fn has_display() -> bool {
    if cfg!(target_os = "linux") {
        ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()))
    } else {
        true
    }
}

/// Writes `bytes` as `name` in the Downloads folder (or the home folder); returns the file's path, or why it
/// could not be written.
pub(crate) fn save_to_downloads(name: &str, bytes: &[u8]) -> Result<String, String> {
    let dirs = directories::UserDirs::new().ok_or("no home folder")?;
    let dir = dirs.download_dir().unwrap_or(dirs.home_dir()).to_path_buf();
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.to_string_lossy().into_owned())
}
