//! Windows' end of a session for a console program: a hidden window that hears `WM_ENDSESSION`.
//!
//! Windows sends a console program's control handler `CTRL_LOGOFF_EVENT` and `CTRL_SHUTDOWN_EVENT` only if the
//! program has not loaded `user32.dll`; a program that uses the Windows shell does (`poussr.exe` reads its
//! folders through `shell32.dll`), and is then told of a logoff or shutdown the way windowed programs are:
//! `WM_QUERYENDSESSION` and `WM_ENDSESSION` sent to its top-level windows. Microsoft's advice is a hidden
//! window that handles them, which this is. It never shows; it runs its message loop on a thread of its own.
//!
//! When `WM_ENDSESSION` says the session ends, the window's thread hands the reason to the run's [`Ending`]
//! and then does not return from the message: Windows ends the process once every program has returned
//! from it (or after its time-out), so holding it gives the hub its seconds to close clients with 4200.
//! The process exits by itself when the hub has shut down.
//!
//! The only `unsafe` code of the project's own is here: calls into user32 and the window procedure that
//! Windows calls back.
#![allow(unsafe_code)]

use std::sync::OnceLock;

use tokio::sync::mpsc;
use windows_sys::Win32::Foundation::{HWND, LPARAM, LRESULT, WPARAM};
use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DefWindowProcW, DispatchMessageW, ENDSESSION_LOGOFF, GetMessageW, MSG, RegisterClassW,
    WM_ENDSESSION, WM_QUERYENDSESSION, WNDCLASSW,
};

use crate::ending::{EndReason, EndSource};

/// Where the window procedure sends what it hears: the logoff and the shutdown sources.
static SENDERS: OnceLock<(mpsc::Sender<()>, mpsc::Sender<()>)> = OnceLock::new();

/// The logoff and shutdown sources of a hidden window's `WM_ENDSESSION`. The window is made now, on a thread
/// of its own; a second call gives sources that never speak (there is one window per process).
pub fn end_session_sources() -> std::io::Result<Vec<(EndReason, Box<dyn EndSource>)>> {
    let (logoff_tx, logoff) = mpsc::channel(1);
    let (shutdown_tx, shutdown) = mpsc::channel(1);
    if SENDERS.set((logoff_tx, shutdown_tx)).is_ok() {
        let (made_tx, made) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("poussr-session-end".into()).spawn(move || window_thread(made_tx))?;
        made.recv().map_err(|_| std::io::Error::other("the session-end window's thread ended"))??;
    }
    Ok(vec![(EndReason::Logoff, Box::new(logoff)), (EndReason::Shutdown, Box::new(shutdown))])
}

/// `s` as a NUL-terminated UTF-16 string.
fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn window_thread(made: std::sync::mpsc::Sender<std::io::Result<()>>) {
    let class = wide("PoussrSessionEnd");
    // SAFETY: every pointer passed lives until the call returns (`class` for the whole thread); the class
    // names a window procedure with the signature Windows calls.
    let hwnd = unsafe {
        let instance = GetModuleHandleW(std::ptr::null());
        let wc = WNDCLASSW {
            style: 0,
            lpfnWndProc: Some(window_proc),
            cbClsExtra: 0,
            cbWndExtra: 0,
            hInstance: instance,
            hIcon: std::ptr::null_mut(),
            hCursor: std::ptr::null_mut(),
            hbrBackground: std::ptr::null_mut(),
            lpszMenuName: std::ptr::null(),
            lpszClassName: class.as_ptr(),
        };
        RegisterClassW(&wc);
        // A top-level window (not message-only: those do not get the session's broadcasts), never shown.
        CreateWindowExW(
            0,
            class.as_ptr(),
            class.as_ptr(),
            0,
            0,
            0,
            0,
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            instance,
            std::ptr::null(),
        )
    };
    if hwnd.is_null() {
        let _ = made.send(Err(std::io::Error::last_os_error()));
        return;
    }
    let _ = made.send(Ok(()));
    let mut msg: MSG = MSG {
        hwnd: std::ptr::null_mut(),
        message: 0,
        wParam: 0,
        lParam: 0,
        time: 0,
        pt: windows_sys::Win32::Foundation::POINT { x: 0, y: 0 },
    };
    // SAFETY: `msg` is a valid MSG for GetMessageW to fill and DispatchMessageW to read.
    while unsafe { GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) } > 0 {
        unsafe { DispatchMessageW(&msg) };
    }
}

/// The hidden window's procedure: agrees to the end of the session, and when it comes, ends the run and
/// holds the message until the process exits.
unsafe extern "system" fn window_proc(hwnd: HWND, msg: u32, wparam: WPARAM, lparam: LPARAM) -> LRESULT {
    match msg {
        WM_QUERYENDSESSION => 1,
        // wParam is 0 when the end was called off (another program refused WM_QUERYENDSESSION).
        WM_ENDSESSION if wparam != 0 => {
            if let Some((logoff, shutdown)) = SENDERS.get() {
                let sender = if lparam as u32 & ENDSESSION_LOGOFF != 0 { logoff } else { shutdown };
                let _ = sender.try_send(());
                loop {
                    std::thread::park();
                }
            }
            0
        }
        // SAFETY: the arguments are the ones Windows passed to this procedure.
        _ => unsafe { DefWindowProcW(hwnd, msg, wparam, lparam) },
    }
}
