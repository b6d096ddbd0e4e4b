//! `poussr-desktop`: the tray process. It runs the hub on a tokio runtime and a tao event loop on the main
//! thread for the tray icon; it opens the window by starting `poussr-window` (see [`crate::window`]). It
//! never loads Tauri or WebKit, so a Poussr in the tray costs little more than `poussr serve`.

use std::sync::{Arc, Mutex};

use tao::event::{Event, StartCause};
use tao::event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy};
use tray_icon::menu::MenuEvent;
use tray_icon::{MouseButton, MouseButtonState, TrayIconEvent};

use crate::instance::{self, Claim};
use crate::runner::Status;
use crate::tray::{self, TrayItem};
use crate::window::{self, Windows};
use crate::{AppState, LaunchOptions, lock};

/// What reaches the event loop from other threads.
#[derive(Debug)]
pub enum Request {
    /// Show the window (a tray click, *Open Poussr*, a second launch).
    Open,
    /// Copy the address LAN clients should use.
    CopyAddress,
    /// Stop the hub (clients get 4200) and quit.
    Quit,
    /// The hub's status changed: update the tray.
    Status(Box<Status>),
    /// The hub has stopped after a quit: end the event loop.
    Stopped,
}

impl From<TrayItem> for Request {
    fn from(item: TrayItem) -> Self {
        match item {
            TrayItem::Open => Request::Open,
            TrayItem::CopyAddress => Request::CopyAddress,
            TrayItem::Quit => Request::Quit,
        }
    }
}

/// What a later launch's command line asks of the running Poussr: to quit (`--quit`), else to show its window.
pub fn request_for_launch(args: Vec<String>) -> Request {
    if LaunchOptions::parse(args).quit { Request::Quit } else { Request::Open }
}

/// How long the hub may take to close its clients when the process is about to end. Windows waits about
/// 5 seconds for a program at logoff or shutdown before it ends it.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(4);

/// The process is about to end. On Windows a logoff or shutdown (`WM_ENDSESSION`) comes straight here, with
/// no Quit first, and the process ends as soon as this returns: the window is closed and the hub stopped now
/// (clients get 4200, the history is closed), within [`EXIT_GRACE`]. After Quit the hub has already stopped
/// and this does nothing.
pub fn on_exit(windows: &Windows, state: &AppState, runtime: &tokio::runtime::Runtime) {
    windows.close();
    let runner = state.runner.clone();
    let stopped = runtime.block_on(async move { tokio::time::timeout(EXIT_GRACE, runner.stop()).await.is_ok() });
    if !stopped {
        tracing::warn!("the hub did not stop within {} s of the end of the session", EXIT_GRACE.as_secs());
    }
}

/// When the OS asks the app to end (SIGTERM at a Linux logout or shutdown, Ctrl-C in the terminal it was
/// started from; the end of the session on Windows), quit as the menu does, so clients get 4200 and reconnect
/// to the next Poussr instead of seeing the connection drop.
fn quit_when_asked(runtime: &tokio::runtime::Runtime, proxy: EventLoopProxy<Request>) {
    runtime.spawn(async move {
        let ending = poussr_os::Ending::new();
        if let Err(e) = ending.listen_to_os() {
            tracing::warn!("cannot listen for the system's requests to quit: {e}");
            return;
        }
        let reason = ending.ended().await;
        tracing::info!("{}: closing clients with 4200 and quitting", reason.describe());
        let _ = proxy.send_event(Request::Quit);
    });
}

/// Keeps the tray current with the hub's status: a burst of connections updates it a few times a second,
/// not once per client.
fn follow_status(runtime: &tokio::runtime::Runtime, state: &AppState, proxy: EventLoopProxy<Request>) {
    let mut watch = state.runner.watch();
    runtime.spawn(async move {
        while watch.changed().await.is_ok() {
            let status = watch.borrow_and_update().clone();
            if proxy.send_event(Request::Status(Box::new(status))).is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
}

/// Copies `text`; the clipboard is kept for the life of the tray, because on X11 the program that copied
/// serves the text to those who paste it.
fn copy(clipboard: &mut Option<arboard::Clipboard>, text: &str) -> Result<(), String> {
    if clipboard.is_none() {
        *clipboard = Some(arboard::Clipboard::new().map_err(|e| e.to_string())?);
    }
    match clipboard.as_mut() {
        Some(c) => c.set_text(text.to_owned()).map_err(|e| e.to_string()),
        None => Err("no clipboard".into()),
    }
}

fn init_log() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
}

/// Runs the desktop app until the operator quits.
pub fn run() {
    // The arguments without the program's path (the first item).
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = LaunchOptions::parse(args.clone());
    if let Some(what) = &options.autostart {
        std::process::exit(crate::autostart_command(what));
    }
    if !crate::has_display() {
        eprintln!(
            "poussr-desktop: no display (neither DISPLAY nor WAYLAND_DISPLAY is set), so there is no window to \
             show.\nOn a server, run the headless hub instead: poussr serve"
        );
        std::process::exit(2);
    }
    init_log();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| {
        eprintln!("poussr-desktop: cannot start: {e}");
        std::process::exit(1);
    });
    let event_loop = EventLoopBuilder::<Request>::with_user_event().build();
    let proxy = event_loop.create_proxy();

    // First, so that a second launch hands over to this one before doing anything else.
    let to_loop = Mutex::new(proxy.clone());
    let on_launch = Box::new(move |args: Vec<String>| {
        let _ = lock(&to_loop).send_event(request_for_launch(args));
    });
    let instance = match instance::claim(&args, runtime.handle(), on_launch) {
        Claim::First(instance) => Some(instance),
        Claim::HandedOver => std::process::exit(0),
        Claim::Alone(why) => {
            tracing::warn!("{why}; this Poussr runs on its own");
            None
        }
    };
    if options.quit {
        // No Poussr was running (a running one would have taken the request): nothing to quit.
        std::process::exit(0);
    }
    let state = match runtime.block_on(crate::launch(&options)) {
        Ok(state) => Arc::new(state),
        Err(e) => {
            eprintln!("poussr-desktop: cannot start: {e}");
            std::process::exit(1);
        }
    };
    quit_when_asked(&runtime, proxy.clone());
    follow_status(&runtime, &state, proxy.clone());
    let menu_proxy = Mutex::new(proxy.clone());
    MenuEvent::set_event_handler(Some(move |event: MenuEvent| {
        if let Some(item) = TrayItem::from_id(event.id.as_ref()) {
            let _ = lock(&menu_proxy).send_event(item.into());
        }
    }));
    let click_proxy = Mutex::new(proxy.clone());
    TrayIconEvent::set_event_handler(Some(move |event: TrayIconEvent| {
        if let TrayIconEvent::Click { button: MouseButton::Left, button_state: MouseButtonState::Up, .. } = event {
            let _ = lock(&click_proxy).send_event(Request::Open);
        }
    }));

    let windows = Windows::default();
    let mut icon = None;
    let mut clipboard = None;
    event_loop.run(move |event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        // The loop owns the single-instance name: it is released when the process ends, not before.
        let _keep = &instance;
        let open = || {
            if let Err(e) = window::show(&windows, &state, runtime.handle()) {
                tracing::error!("cannot open the window: {e}");
            }
        };
        match event {
            Event::NewEvents(StartCause::Init) => {
                match tray::build(&state.runner.status()) {
                    Ok(built) => icon = Some(built),
                    // Some desktops have no tray; the window still works.
                    Err(e) => tracing::warn!("no tray icon: {e}"),
                }
                if options.hidden {
                    tracing::info!("started hidden: in the tray, the hub serving, no window");
                } else {
                    open();
                }
            }
            Event::UserEvent(Request::Open) => open(),
            Event::UserEvent(Request::CopyAddress) => {
                if let Some(address) = tray::address_to_copy(&state.runner.status())
                    && let Err(e) = copy(&mut clipboard, &address)
                {
                    tracing::error!("cannot copy the address: {e}");
                }
            }
            Event::UserEvent(Request::Status(status)) => {
                if let Some(icon) = &icon {
                    tray::update(icon, &status);
                }
            }
            Event::UserEvent(Request::Quit) => {
                windows.close();
                let runner = state.runner.clone();
                let proxy = proxy.clone();
                runtime.spawn(async move {
                    runner.stop().await;
                    let _ = proxy.send_event(Request::Stopped);
                });
            }
            Event::UserEvent(Request::Stopped) => *control_flow = ControlFlow::Exit,
            Event::LoopDestroyed => on_exit(&windows, &state, &runtime),
            _ => {}
        }
    });
}
