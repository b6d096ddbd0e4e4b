//! `poussr-desktop`: the tray app. Everything is in the library (`poussr_desktop::run`).
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")] // no console window on Windows

fn main() {
    poussr_desktop::run();
}
