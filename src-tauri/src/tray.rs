//! The tray icon: its state (running or error) in the icon, the address and the client count in the
//! tooltip, kept current from the runner's status, and a menu. The menu ids are defined once, in
//! [`TrayItem`]; what each item does lives in plain functions that tests call without a tray.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Runtime};

use crate::runner::{HubState, Status};

/// The tray's id.
pub const TRAY_ID: &str = "poussr";

/// The menu items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayItem {
    /// Show the window (create it if it was closed).
    Open,
    /// Copy the address LAN clients should use.
    CopyAddress,
    /// Stop the hub (clients get 4200) and quit.
    Quit,
}

impl TrayItem {
    /// Every item, in menu order.
    pub const ALL: [TrayItem; 3] = [TrayItem::Open, TrayItem::CopyAddress, TrayItem::Quit];

    /// The menu id.
    pub fn id(self) -> &'static str {
        match self {
            TrayItem::Open => "open",
            TrayItem::CopyAddress => "copy-address",
            TrayItem::Quit => "quit",
        }
    }

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            TrayItem::Open => "Open Poussr",
            TrayItem::CopyAddress => "Copy address",
            TrayItem::Quit => "Quit",
        }
    }

    /// The item for a menu id.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.id() == id)
    }
}

/// The tooltip for a status: where clients connect and how many are connected, or what is wrong.
pub fn tooltip(status: &Status) -> String {
    match status.state {
        HubState::Running => {
            let clients = match status.clients {
                1 => "1 client".to_owned(),
                n => format!("{n} clients"),
            };
            format!("Poussr — {} — {clients}", status.address().unwrap_or("starting"))
        }
        HubState::Error => format!(
            "Poussr — not running: {}",
            status.error.as_ref().map(|e| e.message.as_str()).unwrap_or("unknown error")
        ),
        HubState::Stopped => "Poussr — stopped".to_owned(),
    }
}

/// The icon for a status.
pub fn icon(status: &Status) -> Image<'static> {
    let bytes: &'static [u8] = if status.state == HubState::Running {
        include_bytes!("../../icons/tray.png")
    } else {
        include_bytes!("../../icons/tray-error.png")
    };
    // The icons are PNGs compiled in and checked by a test, so decoding them cannot fail.
    Image::from_bytes(bytes).expect("the tray icons are valid PNGs")
}

/// What to copy for "Copy address": `host:port` of the first LAN address.
pub fn address_to_copy(status: &Status) -> Option<String> {
    status.address().map(str::to_owned)
}

/// Builds the tray and keeps it current with the runner's status.
pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<TrayIcon<R>> {
    let items: Vec<MenuItem<R>> = TrayItem::ALL
        .iter()
        .map(|i| MenuItem::with_id(app, i.id(), i.label(), true, None::<&str>))
        .collect::<tauri::Result<_>>()?;
    let separator = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&items[0], &items[1], &separator, &items[2]])?;
    let status = app.state::<crate::AppState>().runner.status();
    let tray = TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(&status))
        .tooltip(tooltip(&status))
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| {
            if let Some(item) = TrayItem::from_id(event.id().as_ref()) {
                on_item(app, item);
            }
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click { button: MouseButton::Left, button_state: MouseButtonState::Up, .. } = event {
                on_item(tray.app_handle(), TrayItem::Open);
            }
        })
        .build(app)?;

    let mut watch = app.state::<crate::AppState>().runner.watch();
    let handle = tray.clone();
    tauri::async_runtime::spawn(async move {
        while watch.changed().await.is_ok() {
            let status = watch.borrow_and_update().clone();
            let _ = handle.set_tooltip(Some(tooltip(&status)));
            let _ = handle.set_icon(Some(icon(&status)));
            // A burst of connections updates the tooltip a few times a second, not once per client.
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
    Ok(tray)
}

/// What a menu item does.
pub fn on_item<R: Runtime>(app: &AppHandle<R>, item: TrayItem) {
    match item {
        TrayItem::Open => {
            if let Err(e) = crate::window::show(app) {
                tracing::error!("cannot open the window: {e}");
            }
        }
        TrayItem::CopyAddress => {
            let status = app.state::<crate::AppState>().runner.status();
            if let Some(address) = address_to_copy(&status)
                && let Err(e) = crate::commands::write_clipboard(app, &address)
            {
                tracing::error!("cannot copy the address: {e}");
            }
        }
        TrayItem::Quit => crate::quit(app),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{BindError, BindErrorKind};

    fn running(clients: usize) -> Status {
        Status {
            state: HubState::Running,
            listen: Some("0.0.0.0:6001".parse().unwrap()),
            base_url: Some("http://127.0.0.1:6001".into()),
            addresses: vec!["192.168.1.20:6001".into(), "10.0.0.2:6001".into()],
            clients,
            error: None,
        }
    }

    #[test]
    fn menu_ids_round_trip() {
        for item in TrayItem::ALL {
            assert_eq!(TrayItem::from_id(item.id()), Some(item));
        }
        assert_eq!(TrayItem::from_id("nope"), None);
        assert_eq!(TrayItem::ALL.map(|i| i.label()), ["Open Poussr", "Copy address", "Quit"]);
    }

    #[test]
    fn the_tooltip_tells_the_address_and_the_client_count() {
        assert_eq!(tooltip(&running(0)), "Poussr — 192.168.1.20:6001 — 0 clients");
        assert_eq!(tooltip(&running(1)), "Poussr — 192.168.1.20:6001 — 1 client");
        assert_eq!(tooltip(&running(12)), "Poussr — 192.168.1.20:6001 — 12 clients");
    }

    #[test]
    fn the_tooltip_tells_what_is_wrong() {
        let status = Status {
            state: HubState::Error,
            error: Some(BindError { kind: BindErrorKind::PortInUse, message: "Port 6001 is already in use".into() }),
            ..running(0)
        };
        assert_eq!(tooltip(&status), "Poussr — not running: Port 6001 is already in use");
    }

    #[test]
    fn copy_address_copies_the_first_lan_address() {
        assert_eq!(address_to_copy(&running(0)).as_deref(), Some("192.168.1.20:6001"));
        assert_eq!(address_to_copy(&Status { addresses: vec![], ..running(0) }), None);
    }

    #[test]
    fn both_tray_icons_decode_and_differ() {
        let ok = icon(&running(0));
        let bad = icon(&Status { state: HubState::Error, ..running(0) });
        assert!(ok.width() >= 16 && ok.height() >= 16);
        assert_ne!(ok.rgba(), bad.rgba());
    }
}
