//! `poussr.exe serve` as a Windows service, decided here in plain functions that any platform can test;
//! `scm` (Windows only) carries them out through the service control manager.
//!
//! - The service is named [`NAME`], starts with Windows (automatic start) and runs as the built-in
//!   LocalService account: the least a network server needs (no administrator rights, no access to users'
//!   files).
//! - Its program is a copy of the `poussr.exe` that installed it, in `%ProgramFiles%\Poussr`, where only
//!   administrators may change it (the installer's copy is in the user's profile, which LocalService may not
//!   read and the user may rewrite).
//! - Its command line is `poussr.exe service run` followed by the `serve` flags given to
//!   `poussr service install`, with every path made absolute (a service starts in `C:\Windows\System32`).
//! - Its data folder (generated credentials, history, certificates, its log) is `%ProgramData%\Poussr`
//!   unless `--data-dir` says otherwise, so that an administrator finds the app secret there; only
//!   administrators, SYSTEM and LocalService may read it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::ending::{EndReason, Ending};

/// The service's name (`sc query Poussr`, `net stop Poussr`).
pub const NAME: &str = "Poussr";
/// The name in the Services console.
pub const DISPLAY_NAME: &str = "Poussr hub";
/// The description in the Services console.
pub const DESCRIPTION: &str = "Real-time push hub for the local network: the Pusher Channels protocol and \
                               Poussr v1 over WebSocket and HTTP (poussr serve, run as a service).";
/// The account the service runs as.
pub const ACCOUNT: &str = r"NT AUTHORITY\LocalService";
/// The same account by its well-known SID, which reads the same in every Windows language (for `icacls`).
pub const ACCOUNT_SID: &str = "*S-1-5-19";

/// The `serve` flags whose value is a path: made absolute at install.
const PATH_FLAGS: &[&str] = &["--config", "--data-dir", "--history-dir", "--tls-cert", "--tls-key", "--tls-ca"];

/// What `poussr service install` registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The `poussr.exe` that runs `install`, copied to [`Plan::executable`].
    pub source: PathBuf,
    /// The program the service runs: the copy in `%ProgramFiles%\Poussr`.
    pub executable: PathBuf,
    /// Its arguments: `service run` and the `serve` flags. Each is one argument, spaces and all; the
    /// service manager's command line quotes them.
    pub arguments: Vec<OsString>,
    /// The data folder the service uses.
    pub data_dir: PathBuf,
}

/// Where the service's program is kept: `program_files\Poussr\poussr.exe`.
pub fn program_path(program_files: &Path) -> PathBuf {
    program_files.join("Poussr").join("poussr.exe")
}

/// The `icacls` arguments that make `dir` the service's own: inherited permissions removed, full control for
/// SYSTEM and the Administrators group, modify for LocalService (its credentials file holds the app secret).
pub fn data_dir_acl(dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![dir.as_os_str().to_owned(), "/inheritance:r".into(), "/grant:r".into()];
    args.extend(["*S-1-5-18:(OI)(CI)F", "*S-1-5-32-544:(OI)(CI)F"].map(OsString::from));
    args.push(format!("{ACCOUNT_SID}:(OI)(CI)M").into());
    args.push("/Q".into());
    args
}

/// The service for `serve_args` (the `serve` flags given to `poussr service install`), run by a copy of
/// `source` in `program_files\Poussr`: relative paths are taken from `cwd`, and the data folder is
/// `program_data\Poussr` unless `--data-dir` names one.
pub fn plan(
    source: &Path,
    serve_args: &[OsString],
    cwd: &Path,
    program_data: &Path,
    program_files: &Path,
) -> Result<Plan, String> {
    if !source.is_absolute() {
        return Err(format!("the service's program must be given by its full path, not {}", source.display()));
    }
    let mut arguments: Vec<OsString> = vec!["service".into(), "run".into()];
    let mut data_dir = None;
    let mut args = serve_args.iter();
    while let Some(arg) = args.next() {
        let text = arg.to_str().ok_or_else(|| format!("{} is not valid Unicode", arg.to_string_lossy()))?;
        if let Some((flag, value)) = text.split_once('=').filter(|(flag, _)| PATH_FLAGS.contains(flag)) {
            let value = absolute(cwd, Path::new(value));
            if flag == "--data-dir" {
                data_dir = Some(value.clone());
            }
            let mut joined = OsString::from(format!("{flag}="));
            joined.push(value.as_os_str());
            arguments.push(joined);
        } else if PATH_FLAGS.contains(&text) {
            let value = args.next().ok_or_else(|| format!("{text} needs a value"))?;
            let value = absolute(cwd, Path::new(value));
            if text == "--data-dir" {
                data_dir = Some(value.clone());
            }
            arguments.push(arg.clone());
            arguments.push(value.into_os_string());
        } else {
            arguments.push(arg.clone());
        }
    }
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => {
            let dir = program_data.join("Poussr");
            arguments.push("--data-dir".into());
            arguments.push(dir.clone().into_os_string());
            dir
        }
    };
    Ok(Plan { source: source.to_owned(), executable: program_path(program_files), arguments, data_dir })
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_owned() } else { cwd.join(path) }
}

/// Says why the service manager refused `action`, from the Windows error `code`, in words that say what to
/// do; `detail` is the system's own text, kept for the codes not listed here.
pub fn explain(action: &str, code: Option<i32>, detail: &str) -> String {
    let why = match code {
        Some(5) => "access is denied: run it from a command prompt opened with \"Run as administrator\"".to_owned(),
        Some(1056) => format!("the {NAME} service is already running"),
        Some(1060) => format!("there is no {NAME} service: install it with `poussr service install`"),
        Some(1062) => format!("the {NAME} service is not running"),
        Some(1072) => format!(
            "the {NAME} service is marked for removal: close the Services console (and anything else that has it \
             open), then try again"
        ),
        Some(1073) => format!(
            "the {NAME} service is already installed: `poussr service uninstall` first to install it with other flags"
        ),
        _ => detail.to_owned(),
    };
    format!("cannot {action}: {why}")
}

/// What `poussr service install` prints.
pub fn installed_note(plan: &Plan) -> String {
    // Shown as a command prompt would take it: an argument with a space in quotes.
    let quoted = |a: String| if a.contains(' ') { format!("\"{a}\"") } else { a };
    let command: Vec<String> = std::iter::once(plan.executable.display().to_string())
        .chain(plan.arguments.iter().map(|a| a.to_string_lossy().into_owned()))
        .map(quoted)
        .collect();
    format!(
        "The {NAME} service is installed: it starts with Windows, as {ACCOUNT}.\n\
         It runs: {}\n\
         Its data folder (credentials.toml with the app's secret, the history, the log poussr.log): {}\n\
         Start it now with `poussr service start`. LAN clients need the port open in Windows Firewall.\n",
        command.join(" "),
        plan.data_dir.display()
    )
}

/// The note added when LocalService could not be given its data folder.
pub fn grant_failed_note(plan: &Plan, why: &str) -> String {
    format!(
        "Warning: LocalService could not be given write access to {} ({}). Grant it before starting the service: \
         icacls \"{}\" /grant {ACCOUNT_SID}:(OI)(CI)M\n",
        plan.data_dir.display(),
        why.trim(),
        plan.data_dir.display()
    )
}

/// A control the service manager sends (the ones Poussr answers; the Windows code maps its own type to this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Stop (`poussr service stop`, `sc stop`, the Services console).
    Stop,
    /// The system is shutting down.
    Shutdown,
    /// The system is about to shut down (sent before `Shutdown`, with more time to finish).
    Preshutdown,
    /// "Report your status now."
    Interrogate,
    /// Anything else (pause, parameter changes, device and power events).
    Other,
}

/// What the service tells the service manager about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Starting: the hub is reading its settings and binding its port.
    Starting,
    /// Serving; it accepts Stop, Shutdown and Preshutdown.
    Running,
    /// Closing clients with 4200 and saving what it keeps.
    Stopping,
    /// Stopped; `failed` when the hub could not start or stopped on an error (exit code 1).
    Stopped {
        /// Whether the run ended in an error.
        failed: bool,
    },
}

/// Where the phases go: the service manager on Windows, a list in the tests.
pub trait Report {
    /// Says that the service is now in `phase`.
    fn report(&self, phase: Phase);
}

/// Whether a control was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Handled.
    Done,
    /// Poussr does not handle this control.
    NotImplemented,
}

/// Answers a control: Stop, Shutdown and Preshutdown end the run (clients get 4200) and the service is
/// reported as stopping; Interrogate is answered; anything else is not handled. The service manager sends
/// controls one at a time.
pub fn on_control(control: Control, ending: &Ending, report: &dyn Report) -> Reply {
    let reason = match control {
        Control::Stop => EndReason::ServiceStop,
        Control::Shutdown | Control::Preshutdown => EndReason::Shutdown,
        Control::Interrogate => return Reply::Done,
        Control::Other => return Reply::NotImplemented,
    };
    if ending.reason().is_none() {
        // Reported before the end is set: once it is, the run may report Stopped at any moment, and Stopping
        // must not come after that.
        report.report(Phase::Stopping);
        ending.end(reason);
    }
    Reply::Done
}

/// The service's run, whatever reports it: `Starting`, then `Running` once `serve` says the hub is ready
/// (it calls the function it is given), then `Stopped`. `serve` returns when the run has ended (a control
/// ended `ending`) or when it failed.
pub fn lifecycle<F>(report: &dyn Report, ending: &Ending, serve: F) -> Result<(), String>
where
    F: FnOnce(Ending, &dyn Fn()) -> Result<(), String>,
{
    report.report(Phase::Starting);
    let ready = || report.report(Phase::Running);
    let result = serve(ending.clone(), &ready);
    report.report(Phase::Stopped { failed: result.is_err() });
    result
}

#[cfg(test)]
mod tests;
