//! The one entry point that serves a hub, used by the headless binary, the desktop shell and the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::hub::Hub;

/// Raises the soft limit on open files to the hard limit, as far as the OS allows, and returns the limit
/// now in force: every connection is a file descriptor, and the usual soft limit (1024) would cap the hub
/// at about a thousand clients. Called once at start by the binary and the desktop app.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::increase_nofile_limit(u64::MAX).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// How long shutdown waits for sessions to send their close frames.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `hub` on an already bound `listener` until `shutdown` resolves; then stops accepting, closes
/// every WebSocket with 4200 (so Pusher clients reconnect) and waits for the sessions to end, at most
/// [`DRAIN_TIMEOUT`]. It never binds a port or catches a signal itself: the caller decides both.
///
/// The hub learns its address at once (before the returned future is first polled), so that whoever spawns
/// the future can ask the hub for it straight away.
pub fn run(
    listener: TcpListener,
    hub: Hub,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    if let Ok(addr) = listener.local_addr() {
        hub.set_local_addr(addr);
    }
    serve(listener, hub, shutdown)
}

async fn serve(
    listener: TcpListener,
    hub: Hub,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    hub.start_background();
    let (sessions, mut ended) = mpsc::channel::<()>(1);
    let app = crate::http::router(hub.clone(), sessions);
    let closing = hub.clone();
    // Without TCP_NODELAY, an event that follows another within a round trip waits for the client's
    // delayed ACK (up to 40 ms on Linux) before it is sent.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a connection: {e}");
        }
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            closing.begin_shutdown();
        })
        .await?;
    // Every session holds a sender; `recv` returns `None` once the last one has ended.
    if tokio::time::timeout(DRAIN_TIMEOUT, ended.recv()).await.is_err() {
        tracing::warn!(open = hub.connection_count(), "some connections did not close in time");
    }
    Ok(())
}
