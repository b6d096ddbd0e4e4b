//! `poussr`, the headless hub. `poussr serve` runs it until Ctrl-C or SIGTERM (on Windows also the console
//! closed, a logoff or a shutdown); `poussr service` runs it as a Windows service.

mod cert;
mod replay;
mod serve;
mod service;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use poussr_os::Ending;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// A real-time push hub: Poussr v1 and the Pusher Channels protocol on one port.
#[derive(Debug, Parser)]
#[command(name = "poussr", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub until Ctrl-C or SIGTERM (on Windows also the console closed, a logoff or a shutdown).
    Serve(Box<serve::ServeArgs>),
    /// Certificates for https:// and wss:// on a LAN with no PKI.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Play a recording into a hub through its HTTP API, at its original pace or faster (docs/recording.md).
    Replay(Box<replay::ReplayArgs>),
    /// `poussr serve` as a Windows service: install, uninstall, start, stop.
    #[command(subcommand)]
    Service(service::ServiceCommand),
}

/// Log lines go to `writer`, at the level RUST_LOG says (info by default); colours only for a terminal.
pub(crate) fn init_logging<W>(writer: W, terminal: bool)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(writer)
        .with_ansi(terminal)
        .init();
}

/// `poussr serve`: the hub in this terminal or console, until the OS asks it to end.
fn serve_here(args: serve::ServeArgs) -> Result<(), String> {
    // Before the runtime's threads exist: reading LISTEN_FDS clears it from the environment.
    let inherited = serve::inherited_listener()?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    poussr::tls::install_default_provider();
    runtime.block_on(async {
        // Installed before the banner is printed, so that an end asked for right after it is still graceful.
        let ending = Ending::new();
        ending.listen_to_os().map_err(|e| format!("cannot listen for Ctrl-C and SIGTERM: {e}"))?;
        let print = |banner: &str| {
            use std::io::Write;
            print!("{banner}");
            let _ = std::io::stdout().flush();
        };
        serve::serve(args, inherited, ending, &print).await
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            init_logging(std::io::stderr, true);
            serve_here(*args)
        }
        Command::Cert(command) => {
            init_logging(std::io::stderr, true);
            poussr::tls::install_default_provider();
            cert::cert(command)
        }
        Command::Replay(args) => replay::replay(*args),
        // The service logs to a file in its data folder (it has no console); the others to stderr.
        Command::Service(command) => {
            if !matches!(command, service::ServiceCommand::Run(_)) {
                init_logging(std::io::stderr, true);
            }
            service::service(command).map(|text| print!("{text}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poussr: {e}");
            ExitCode::FAILURE
        }
    }
}
