//! Start at login: the operating system's own entry, written by Poussr itself, that starts
//! `poussr-desktop --hidden` (in the tray, the hub serving, no window).
//!
//! - Linux (and other XDG desktops): `$XDG_CONFIG_HOME/autostart/poussr.desktop` (by default
//!   `~/.config/autostart/`), per the XDG Autostart specification. A desktop's own switch for it
//!   (`X-GNOME-Autostart-enabled=false`, or `Hidden=true`) counts as off.
//! - Windows: the value `Poussr` under `HKCU\Software\Microsoft\Windows\CurrentVersion\Run`, the one the
//!   installer writes, with the same text: `"<path>\poussr-desktop.exe" --hidden`. Turned off in Task
//!   Manager's Startup apps (`StartupApproved\Run`), it counts as off; turning it on here clears that.
//!
//! The entry names the program that is running (an AppImage: the AppImage file), quoted, so a path with
//! spaces works.

use std::path::{Path, PathBuf};

/// The argument the entry starts Poussr with.
pub const HIDDEN: &str = "--hidden";

/// The entry's name: the file's stem on Linux, the registry value's name on Windows.
pub const NAME: &str = "Poussr";

/// Whether Poussr starts at login, and where that is decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StartAtLogin {
    /// The entry is there and not switched off.
    pub enabled: bool,
    /// Where the entry lives, for the operator.
    pub location: String,
    /// Why the entry could not be read, if it could not (then `enabled` is false).
    pub error: Option<String>,
}

/// The program the entry starts: the AppImage when running from one, else this executable.
pub fn program() -> Result<PathBuf, String> {
    if let Some(appimage) = std::env::var_os("APPIMAGE").filter(|p| Path::new(p).is_absolute()) {
        return Ok(appimage.into());
    }
    std::env::current_exe().map_err(|e| format!("cannot tell where this program is: {e}"))
}

/// What the entry says now.
pub fn status() -> StartAtLogin {
    let location = os::location().unwrap_or_else(|e| e.clone());
    match os::is_enabled() {
        Ok(enabled) => StartAtLogin { enabled, location, error: None },
        Err(e) => StartAtLogin { enabled: false, location, error: Some(e) },
    }
}

/// Creates (or rewrites) the entry for `program`, or removes it; then tells what the entry says.
pub fn set(enabled: bool, program: &Path) -> Result<StartAtLogin, String> {
    if enabled {
        os::enable(program)?
    } else {
        os::disable()?
    }
    let now = status();
    match now.error.clone() {
        Some(e) => Err(e),
        None => Ok(now),
    }
}

/// One argument of a desktop entry's `Exec` key, written as the Desktop Entry Specification says: quoted
/// (in double quotes, `"`, `` ` ``, `$` and `\` escaped by a backslash, `%` doubled, as it would be a field
/// code otherwise), then escaped as every string value is (each backslash doubled).
pub fn exec_arg(arg: &str) -> String {
    quoted(arg).replace('\\', "\\\\")
}

fn quoted(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for c in arg.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The program an entry's `Exec` line starts (its first argument, read back as [`exec_arg`] writes it).
pub fn exec_program(entry: &str) -> Option<String> {
    let line = entry.lines().find_map(|l| l.trim_start().strip_prefix("Exec="))?;
    // The string escapes first.
    let mut value = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => value.push(' '),
            Some('n') => value.push('\n'),
            Some('t') => value.push('\t'),
            Some('r') => value.push('\r'),
            Some(other) => value.push(other),
            None => {}
        }
    }
    let program = match value.strip_prefix('"') {
        Some(rest) => {
            let mut out = String::new();
            let mut chars = rest.chars();
            loop {
                match chars.next()? {
                    '\\' => out.push(chars.next()?),
                    '"' => break out,
                    c => out.push(c),
                }
            }
        }
        None => value.split_whitespace().next()?.to_owned(),
    };
    Some(program.replace("%%", "%"))
}

/// The desktop entry that starts `program` hidden.
pub fn desktop_entry(program: &Path) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nVersion=1.0\nName={NAME}\nComment=Poussr's push hub, in the tray\n\
         Exec={} {HIDDEN}\nIcon=poussr-desktop\nTerminal=false\nStartupNotify=false\nX-GNOME-Autostart-enabled=true\n",
        exec_arg(&program.to_string_lossy())
    )
}

/// Whether the text of a desktop entry is switched off by the desktop (`Hidden=true`, GNOME's
/// `X-GNOME-Autostart-enabled=false`).
pub fn entry_switched_off(text: &str) -> bool {
    text.lines().map(str::trim).any(|l| l == "Hidden=true" || l == "X-GNOME-Autostart-enabled=false")
}

/// The Run value the entry holds on Windows (the installer writes the same).
pub fn run_value(program: &Path) -> String {
    format!("\"{}\" {HIDDEN}", program.display())
}

#[cfg(not(windows))]
mod os {
    use super::*;

    /// `$XDG_CONFIG_HOME/autostart/poussr.desktop`.
    fn path() -> Result<PathBuf, String> {
        let base = directories::BaseDirs::new().ok_or("no home folder was found for this user")?;
        Ok(base.config_dir().join("autostart").join(format!("{}.desktop", NAME.to_ascii_lowercase())))
    }

    pub(super) fn location() -> Result<String, String> {
        Ok(path()?.display().to_string())
    }

    pub(super) fn is_enabled() -> Result<bool, String> {
        let path = path()?;
        let me = program()?;
        match std::fs::read_to_string(&path) {
            // An entry that starts another program (a moved install, an old AppImage) is not this one's: off,
            // so that turning it on writes it again.
            Ok(text) => {
                Ok(!entry_switched_off(&text) && exec_program(&text).is_some_and(|p| Path::new(&p) == me.as_path()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub(super) fn enable(program: &Path) -> Result<(), String> {
        let path = path()?;
        let dir = path.parent().ok_or("the autostart folder has no parent")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        poussr::config::write_atomically(&path, desktop_entry(program).as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    pub(super) fn disable() -> Result<(), String> {
        let path = path()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
        }
    }
}

#[cfg(windows)]
mod os {
    use super::*;
    use windows_registry::CURRENT_USER;

    const RUN: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";
    const APPROVED: &str = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run";

    pub(super) fn location() -> Result<String, String> {
        Ok(format!(r"HKEY_CURRENT_USER\{RUN}\{NAME}"))
    }

    pub(super) fn is_enabled() -> Result<bool, String> {
        let Ok(run) = CURRENT_USER.open(RUN) else { return Ok(false) };
        // A value that starts another program (a moved install) is not this one's: off, so that turning it on
        // writes it again.
        match run.get_string(NAME) {
            Ok(value) if value.eq_ignore_ascii_case(&run_value(&program()?)) => {}
            _ => return Ok(false),
        }
        // Task Manager's switch: the first byte is even (2) when on, odd (3) when off.
        let switched_off = CURRENT_USER
            .open(APPROVED)
            .and_then(|k| k.get_value(NAME))
            .is_ok_and(|v| v.first().is_some_and(|b| b % 2 == 1));
        Ok(!switched_off)
    }

    pub(super) fn enable(program: &Path) -> Result<(), String> {
        let run = CURRENT_USER.create(RUN).map_err(|e| format!(r"cannot open HKCU\{RUN}: {e}"))?;
        run.set_string(NAME, run_value(program)).map_err(|e| format!(r"cannot write HKCU\{RUN}\{NAME}: {e}"))?;
        // Turned off in Task Manager before: this switch wins now.
        if let Ok(approved) = CURRENT_USER.options().read().write().open(APPROVED) {
            let _ = approved.remove_value(NAME);
        }
        Ok(())
    }

    pub(super) fn disable() -> Result<(), String> {
        let Ok(run) = CURRENT_USER.options().read().write().open(RUN) else { return Ok(()) };
        match run.remove_value(NAME) {
            Ok(()) => Ok(()),
            Err(_) if run.get_string(NAME).is_err() => Ok(()),
            Err(e) => Err(format!(r"cannot remove HKCU\{RUN}\{NAME}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_arguments_are_quoted_as_the_desktop_entry_specification_says() {
        assert_eq!(exec_arg("/usr/bin/poussr-desktop"), "\"/usr/bin/poussr-desktop\"");
        assert_eq!(exec_arg("/opt/My Apps/poussr"), "\"/opt/My Apps/poussr\"");
        // Quoted (`\"`, `\\`), then each backslash doubled again by the string escapes.
        assert_eq!(exec_arg(r#"/a"b`c$d\e%f"#), r#""/a\\"b\\`c\\$d\\\\e%%f""#);
        for path in ["/usr/bin/poussr-desktop", "/opt/My Apps/poussr", r#"/a"b`c$d\e%f"#] {
            assert_eq!(exec_program(&desktop_entry(Path::new(path))).as_deref(), Some(path));
        }
        assert_eq!(exec_program("[Desktop Entry]\nExec=/usr/bin/other --x\n").as_deref(), Some("/usr/bin/other"));
        assert_eq!(exec_program("[Desktop Entry]\nName=x\n"), None);
    }

    #[test]
    fn the_entry_starts_this_program_hidden() {
        let entry = desktop_entry(Path::new("/opt/Poussr Apps/poussr-desktop"));
        assert!(entry.starts_with("[Desktop Entry]\nType=Application\n"));
        assert!(entry.contains("\nExec=\"/opt/Poussr Apps/poussr-desktop\" --hidden\n"));
        assert!(entry.contains("\nName=Poussr\n"));
        assert!(!entry_switched_off(&entry));
        assert!(entry_switched_off(
            &entry.replace("X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false")
        ));
        assert!(entry_switched_off(&format!("{entry}Hidden=true\n")));
    }

    #[test]
    fn the_windows_value_is_the_installers() {
        // poussr.nsi: WriteRegStr HKCU "${RUN_KEY}" "${APP}" '"$INSTDIR\${EXE}" --hidden'
        let nsi = include_str!("../windows/poussr.nsi");
        assert!(nsi.contains(r#"WriteRegStr HKCU "${RUN_KEY}" "${APP}" '"$INSTDIR\${EXE}" --hidden'"#));
        assert!(
            nsi.contains(r#"!define APP "Poussr""#) || nsi.contains(r#"!define APP Poussr"#),
            "the value is named Poussr"
        );
        assert_eq!(
            run_value(Path::new(r"C:\Users\op\AppData\Local\Programs\Poussr\poussr-desktop.exe")),
            r#""C:\Users\op\AppData\Local\Programs\Poussr\poussr-desktop.exe" --hidden"#
        );
    }
}
