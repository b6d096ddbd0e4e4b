//! The end of a session: what Windows' logoff or shutdown does to the app (`WM_ENDSESSION` → tao's
//! `LoopDestroyed` → [`crate::app::on_exit`], then the process ends), driven here through the same function.

use std::io::{Read, Write};

use super::Tray;

/// A raw WebSocket client of the hub's Poussr v1 endpoint, on a plain TCP socket.
fn connect(port: u16) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(
        stream,
        "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// Reads frames until the close frame; returns its code.
fn close_code(stream: &mut std::net::TcpStream) -> u16 {
    loop {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).unwrap();
        let len = match head[1] & 0x7f {
            126 => {
                let mut n = [0u8; 2];
                stream.read_exact(&mut n).unwrap();
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0u8; 8];
                stream.read_exact(&mut n).unwrap();
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload).unwrap();
        if head[0] & 0x0f == 0x8 {
            // A close frame without a payload has no code: 1005 ("no status") says so.
            return if payload.len() >= 2 { u16::from_be_bytes([payload[0], payload[1]]) } else { 1005 };
        }
    }
}

#[test]
fn the_end_of_the_session_closes_clients_with_4200_before_the_process_ends() {
    let w = Tray::open();
    let port = w.runner().status().listen.unwrap().port();
    let mut client = connect(port);
    let windows = crate::window::Windows::default();
    crate::app::on_exit(&windows, &w.state, &w.runtime);
    assert_eq!(close_code(&mut client), 4200, "the client is told to reconnect");
    assert_eq!(w.runner().status().state, crate::runner::HubState::Stopped);
    // The same end again (as after Quit, which stops the hub first): nothing is left to stop, it returns at once.
    crate::app::on_exit(&windows, &w.state, &w.runtime);
    assert_eq!(w.runner().status().state, crate::runner::HubState::Stopped);
}
