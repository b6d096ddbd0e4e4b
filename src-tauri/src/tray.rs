//! The tray icon: its state (running or error) in the icon, the address and the client count in the
//! tooltip, kept current from the runner's status (see [`crate::app`]), and a menu. The menu ids are defined
//! once, in [`TrayItem`]; what each item does lives in plain functions that tests call without a tray.

use tray_icon::menu::{Menu, MenuItem, PredefinedMenuItem};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

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

/// The icon for a status, as a PNG.
pub fn icon_png(status: &Status) -> &'static [u8] {
    if status.state == HubState::Running {
        include_bytes!("../../icons/tray.png")
    } else {
        include_bytes!("../../icons/tray-error.png")
    }
}

/// Decodes a PNG into `(RGBA pixels, width, height)`.
pub fn decode_png(bytes: &[u8]) -> Result<(Vec<u8>, u32, u32), String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // Palette and 16-bit images come out as 8-bit RGB(A).
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("the image is too large")?];
    let frame = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    buf.truncate(frame.buffer_size());
    let rgba = match frame.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
        png::ColorType::GrayscaleAlpha => buf.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => return Err("an indexed image was not expanded".into()),
    };
    Ok((rgba, frame.width, frame.height))
}

/// The icon for a status.
pub fn icon(status: &Status) -> Result<Icon, String> {
    let (rgba, width, height) = decode_png(icon_png(status))?;
    Icon::from_rgba(rgba, width, height).map_err(|e| e.to_string())
}

/// What to copy for "Copy address": `host:port` of the first LAN address.
pub fn address_to_copy(status: &Status) -> Option<String> {
    status.address().map(str::to_owned)
}

/// Builds the tray icon and its menu, for `status`. Its menu and click events arrive through
/// `tray_icon`'s handlers, which [`crate::app`] sets.
pub fn build(status: &Status) -> Result<TrayIcon, String> {
    let items: Vec<MenuItem> = TrayItem::ALL.iter().map(|i| MenuItem::with_id(i.id(), i.label(), true, None)).collect();
    let separator = PredefinedMenuItem::separator();
    let menu = Menu::with_items(&[&items[0], &items[1], &separator, &items[2]]).map_err(|e| e.to_string())?;
    TrayIconBuilder::new()
        .with_id(TRAY_ID)
        .with_icon(icon(status)?)
        .with_tooltip(tooltip(status))
        .with_menu(Box::new(menu))
        .with_menu_on_left_click(false)
        .build()
        .map_err(|e| e.to_string())
}

/// Shows `status` in the tray.
pub fn update(tray: &TrayIcon, status: &Status) {
    let _ = tray.set_tooltip(Some(tooltip(status)));
    match icon(status) {
        Ok(icon) => {
            let _ = tray.set_icon(Some(icon));
        }
        Err(e) => tracing::warn!("cannot draw the tray icon: {e}"),
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
        let (ok, w, h) = decode_png(icon_png(&running(0))).unwrap();
        let (bad, ..) = decode_png(icon_png(&Status { state: HubState::Error, ..running(0) })).unwrap();
        assert!(w >= 16 && h >= 16);
        assert_eq!(ok.len(), (w * h * 4) as usize);
        assert_ne!(ok, bad);
        assert!(icon(&running(0)).is_ok());
        assert!(decode_png(b"not a png").is_err());
    }
}
