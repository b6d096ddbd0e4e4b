//! One Poussr per session: the first launch owns a name, and a second launch hands its command line to it and
//! exits (`poussr-desktop` again opens the window; `poussr-desktop --quit` quits it, as the Windows installer
//! does before it replaces the program).
//!
//! - Linux: the name `<identifier>.SingleInstance` on the session bus, with the method `ExecuteCallback(argv,
//!   cwd)` of the interface `org.SingleInstance.DBus`: what `tauri-plugin-single-instance` used before the tray
//!   left Tauri, so a new Poussr hands over to an older one still running, and the other way round. With no
//!   session bus, every launch runs on its own.
//! - Windows: a named pipe of the user's, `\\.\pipe\poussr-desktop-<user>`. A launch first opens it: if a
//!   Poussr has it, the launch writes its arguments to it as one JSON line and exits; if not, it creates the
//!   pipe (as its first instance, which refuses a pipe another launch made in between).

/// What a launch is.
pub enum Claim {
    /// The first: it keeps the name while this value lives; later launches' command lines go to the callback.
    First(Instance),
    /// Another Poussr runs and has been given this launch's command line: exit.
    HandedOver,
    /// No single-instance mechanism could be used (the reason): run on its own.
    Alone(String),
}

/// The name this launch owns.
pub struct Instance {
    #[cfg(target_os = "linux")]
    _bus: zbus::blocking::Connection,
}

/// What a later launch sent: its arguments, without the program's path.
pub type OnLaunch = Box<dyn Fn(Vec<String>) + Send + Sync + 'static>;

/// The app's identifier (`tauri.conf.json`), which names the single-instance lock.
pub fn identifier() -> String {
    crate::tauri_conf()
        .ok()
        .and_then(|c| c.get("identifier").and_then(|i| i.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "io.poussr.desktop".into())
}

/// Claims the name for this launch, or hands `args` (this launch's arguments, without the program) to the
/// Poussr that has it.
#[cfg(target_os = "linux")]
pub fn claim(args: &[String], _runtime: &tokio::runtime::Handle, on_launch: OnLaunch) -> Claim {
    linux::claim(args, on_launch)
}

/// Claims the name for this launch, or hands `args` (this launch's arguments, without the program) to the
/// Poussr that has it.
#[cfg(windows)]
pub fn claim(args: &[String], runtime: &tokio::runtime::Handle, on_launch: OnLaunch) -> Claim {
    windows::claim(args, runtime, on_launch)
}

/// Claims the name for this launch: on this system there is no lock, so every launch runs on its own.
#[cfg(not(any(target_os = "linux", windows)))]
pub fn claim(_args: &[String], _runtime: &tokio::runtime::Handle, _on_launch: OnLaunch) -> Claim {
    Claim::Alone("no single-instance lock on this system".into())
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{Claim, Instance, OnLaunch};

    const INTERFACE: &str = "org.SingleInstance.DBus";

    struct Listener {
        on_launch: OnLaunch,
    }

    #[zbus::interface(name = "org.SingleInstance.DBus")]
    impl Listener {
        /// A later launch's command line (its first item is the program's path) and its folder.
        fn execute_callback(&self, argv: Vec<String>, cwd: String) {
            let _ = cwd;
            // Not the program's path: the arguments only, as `LaunchOptions::parse` takes them.
            (self.on_launch)(argv.into_iter().skip(1).collect());
        }
    }

    pub(super) fn claim(args: &[String], on_launch: OnLaunch) -> Claim {
        let name = format!("{}.SingleInstance", super::identifier());
        let path = format!("/{}", name.replace('.', "/").replace('-', "_"));
        let built = zbus::blocking::connection::Builder::session()
            .and_then(|b| b.name(name.as_str()))
            .map(|b| b.replace_existing_names(false).allow_name_replacements(false))
            .and_then(|b| b.serve_at(path.as_str(), Listener { on_launch }))
            .and_then(|b| b.build());
        match built {
            Ok(bus) => Claim::First(Instance { _bus: bus }),
            Err(zbus::Error::NameTaken) => {
                let program = std::env::current_exe().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                let argv: Vec<String> = std::iter::once(program).chain(args.iter().cloned()).collect();
                let cwd = std::env::current_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
                let sent = zbus::blocking::Connection::session().and_then(|bus| {
                    bus.call_method(
                        Some(name.as_str()),
                        path.as_str(),
                        Some(INTERFACE),
                        "ExecuteCallback",
                        &(argv, cwd),
                    )
                });
                match sent {
                    Ok(_) => Claim::HandedOver,
                    Err(e) => Claim::Alone(format!("another Poussr holds {name} but did not answer ({e})")),
                }
            }
            Err(e) => Claim::Alone(format!("no session bus to hold {name} on ({e})")),
        }
    }
}

#[cfg(windows)]
mod windows {
    use super::{Claim, Instance, OnLaunch};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeServer, ServerOptions};

    /// The longest line a later launch may send.
    const MAX_LINE: u64 = 64 * 1024;

    fn pipe_name() -> String {
        let user: String = std::env::var("USERNAME")
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!(r"\\.\pipe\poussr-desktop-{user}")
    }

    pub(super) fn claim(args: &[String], runtime: &tokio::runtime::Handle, on_launch: OnLaunch) -> Claim {
        let name = pipe_name();
        let line = serde_json::to_string(args).unwrap_or_default() + "\n";
        // Another Poussr's pipe first: creating ours with `first_pipe_instance` would also refuse, but Wine
        // ignores that flag.
        match runtime.block_on(hand_over(&name, &line)) {
            Ok(()) => return Claim::HandedOver,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Claim::Alone(format!("another Poussr holds {name} but did not take this launch ({e})")),
        }
        let created = {
            // The pipe registers with the runtime's reactor.
            let _entered = runtime.enter();
            ServerOptions::new().first_pipe_instance(true).reject_remote_clients(true).create(&name)
        };
        match created {
            Ok(server) => {
                runtime.spawn(serve(name, server, on_launch));
                Claim::First(Instance {})
            }
            // Another launch made it in the meantime.
            Err(created) => match runtime.block_on(hand_over(&name, &line)) {
                Ok(()) => Claim::HandedOver,
                Err(e) => Claim::Alone(format!("cannot create or open {name} ({created}; {e})")),
            },
        }
    }

    /// Sends `line` to the Poussr whose pipe `name` is; `NotFound` when there is none. A pipe whose one
    /// instance is busy (taking another launch) is tried again for up to a second.
    async fn hand_over(name: &str, line: &str) -> std::io::Result<()> {
        const ERROR_PIPE_BUSY: i32 = 231;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut client = loop {
            match ClientOptions::new().open(name) {
                Ok(client) => break client,
                Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        };
        client.write_all(line.as_bytes()).await?;
        client.flush().await
    }

    async fn serve(name: String, mut server: NamedPipeServer, on_launch: OnLaunch) {
        loop {
            if let Err(e) = server.connect().await {
                tracing::warn!("the single-instance pipe failed: {e}");
                return;
            }
            let next = match ServerOptions::new().reject_remote_clients(true).create(&name) {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!("the single-instance pipe cannot take another launch: {e}");
                    return;
                }
            };
            let connected = std::mem::replace(&mut server, next);
            let mut line = String::new();
            let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(connected, MAX_LINE));
            if reader.read_line(&mut line).await.is_ok() {
                match serde_json::from_str::<Vec<String>>(&line) {
                    Ok(args) => on_launch(args),
                    Err(e) => tracing::warn!("an unreadable request from another launch: {e}"),
                }
            }
        }
    }
}
