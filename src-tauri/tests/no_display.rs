//! Without a display the desktop app cannot open a window: it must say so and point to the headless hub,
//! not panic inside GTK. (This test also makes `cargo test` build the app's binary, which the WebDriver
//! tests in tests/desktop drive.)

#[test]
#[cfg(target_os = "linux")]
fn without_a_display_the_app_explains_and_exits() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poussr-desktop"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no display") && stderr.contains("poussr serve"), "{stderr}");
}
