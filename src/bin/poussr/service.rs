//! `poussr service install|uninstall|start|stop`: `poussr serve` as a Windows service, for Windows servers
//! with no one logged in. What it decides is in `poussr_os::service`; Windows' service manager is driven
//! by `poussr_os::scm`.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

use crate::serve::ServeArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// Register `poussr serve` with these flags as a service that starts with Windows, as LocalService
    /// (run it as an administrator). Its data folder is %ProgramData%\Poussr unless --data-dir says.
    Install {
        /// The `poussr serve` flags the service runs with, as `poussr service install --port 6001 --tls`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "SERVE FLAGS")]
        flags: Vec<OsString>,
    },
    /// Stop the service, then remove it (its data folder stays).
    Uninstall,
    /// Start the service and wait until it serves.
    Start,
    /// Stop the service (clients are closed with 4200 and reconnect) and wait until it has stopped.
    Stop,
    /// What Windows' service manager starts; not for use by hand.
    #[command(hide = true)]
    Run(Box<ServeArgs>),
}

/// Runs a `poussr service` command; returns what to print.
pub(crate) fn service(command: ServiceCommand) -> Result<String, String> {
    if let ServiceCommand::Install { flags } = &command {
        check_flags(flags)?;
    }
    platform::service(command)
}

/// The flags are checked now, as `poussr serve` would read them, rather than found wrong when the service
/// starts with no one watching.
fn check_flags(flags: &[OsString]) -> Result<(), String> {
    let argv = ["poussr".into(), "serve".into()].into_iter().chain(flags.iter().cloned());
    crate::Cli::try_parse_from(argv)
        .map(|_| ())
        .map_err(|e| format!("these are not flags `poussr serve` takes:\n{}", e.render()))
}

#[cfg(windows)]
mod platform {
    use std::path::PathBuf;
    use std::sync::Mutex;

    use poussr_os::{scm, service};

    use super::ServiceCommand;
    use crate::serve::ServeArgs;

    /// A folder Windows names in an environment variable (`ProgramData`, `ProgramFiles`).
    fn known_folder(var: &str) -> Result<PathBuf, String> {
        std::env::var_os(var).map(PathBuf::from).ok_or_else(|| format!("%{var}% is not set"))
    }

    pub(super) fn service(command: ServiceCommand) -> Result<String, String> {
        match command {
            ServiceCommand::Install { flags } => {
                let exe = std::env::current_exe().map_err(|e| format!("cannot tell where poussr.exe is: {e}"))?;
                let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
                let plan =
                    service::plan(&exe, &flags, &cwd, &known_folder("ProgramData")?, &known_folder("ProgramFiles")?)?;
                scm::install(&plan)
            }
            ServiceCommand::Uninstall => scm::uninstall(&service::program_path(&known_folder("ProgramFiles")?)),
            ServiceCommand::Start => scm::start(),
            ServiceCommand::Stop => scm::stop(),
            ServiceCommand::Run(args) => run(*args).map(|()| String::new()),
        }
    }

    /// The service's run: logs go to poussr.log in its data folder (the banner too, with the admin token that
    /// the dashboard needs), the hub serves until a Stop or Shutdown control, and closes its clients with
    /// 4200 then.
    fn run(args: ServeArgs) -> Result<(), String> {
        let data_dir = crate::serve::data_dir(&args)?;
        std::fs::create_dir_all(&data_dir).map_err(|e| format!("cannot make {}: {e}", data_dir.display()))?;
        let log = data_dir.join("poussr.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open the log {}: {e}", log.display()))?;
        crate::init_logging(Mutex::new(file), false);
        scm::run(move |ending, ready| {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
            poussr::tls::install_default_provider();
            let ready = |banner: &str| {
                tracing::info!("the service is running\n{banner}");
                ready();
            };
            let result = runtime.block_on(crate::serve::serve(args, None, ending, &ready));
            if let Err(e) = &result {
                tracing::error!("the service stopped: {e}");
            }
            result
        })
    }
}

#[cfg(not(windows))]
mod platform {
    use super::ServiceCommand;

    pub(super) fn service(_command: ServiceCommand) -> Result<String, String> {
        Err("`poussr service` manages a Windows service; on Linux, run `poussr serve` under systemd (see \
             \"Under systemd\" in docs/operations.md)"
            .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_checks_the_serve_flags_before_anything_is_registered() {
        let ok: Vec<OsString> = ["--port", "7000", "--bind", "0.0.0.0", "--tls"].iter().map(OsString::from).collect();
        assert_eq!(check_flags(&ok), Ok(()));
        let bad: Vec<OsString> = ["--prot", "7000"].iter().map(OsString::from).collect();
        let err = check_flags(&bad).unwrap_err();
        assert!(err.contains("--prot"), "{err}");
        let err = service(ServiceCommand::Install { flags: bad }).unwrap_err();
        assert!(err.contains("not flags `poussr serve` takes"), "{err}");
    }

    #[test]
    fn the_service_command_line_is_parsed_as_poussr_parses_it() {
        let cli = crate::Cli::try_parse_from(["poussr", "service", "install", "--port", "7000", "--tls"]).unwrap();
        let crate::Command::Service(ServiceCommand::Install { flags }) = cli.command else { panic!("{cli:?}") };
        assert_eq!(flags, ["--port", "7000", "--tls"]);
        let cli = crate::Cli::try_parse_from(["poussr", "service", "run", "--port", "7000"]).unwrap();
        let crate::Command::Service(ServiceCommand::Run(args)) = cli.command else { panic!("{cli:?}") };
        assert_eq!(args.port, Some(7000));
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_than_windows_it_points_at_systemd() {
        let err = service(ServiceCommand::Start).unwrap_err();
        assert!(err.contains("systemd"), "{err}");
    }
}
