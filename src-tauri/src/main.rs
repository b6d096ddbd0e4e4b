//! `poussr-desktop`: the tray app. Everything is in the library (`poussr_desktop::app::run`), which never
//! links Tauri: the window is the `poussr-window` program.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")] // no console window on Windows

fn main() {
    poussr_desktop::app::run();
}
