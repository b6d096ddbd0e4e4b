//! The one entry point that serves a hub, used by the headless binary, the desktop shell and the tests.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower::Service;

use crate::http::Frontend;
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

/// Serves `hub` with the HTTP layer's `frontend` (access settings, request metrics) on an already bound
/// `listener` until `shutdown` resolves; then stops accepting, closes
/// every WebSocket with 4200 (so Pusher clients reconnect) and waits for the sessions to end, at most
/// [`DRAIN_TIMEOUT`]. It never binds a port or catches a signal itself: the caller decides both.
///
/// The hub learns its address at once (before the returned future is first polled), so that whoever spawns
/// the future can ask the hub for it straight away.
pub fn run(
    listener: TcpListener,
    hub: Hub,
    frontend: Frontend,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    if let Ok(addr) = listener.local_addr() {
        hub.set_local_addr(addr);
    }
    serve(listener, hub, frontend, shutdown)
}

async fn serve(
    listener: TcpListener,
    hub: Hub,
    frontend: Frontend,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    hub.start_background();
    let (sessions, mut ended) = mpsc::channel::<()>(1);
    let router = crate::http::router(hub.clone(), frontend, sessions);
    let limits = hub.limits();
    let mut http = http1::Builder::new();
    // A connection must send its request headers (the WebSocket handshake included) within this time,
    // and an idle keep-alive connection its next request: slow-loris clients are cut off.
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(limits.handshake_timeout_secs));
    // Every connection task holds a receiver; `closed()` resolves once the last one has ended.
    let (stop_connections, connections_alive) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY, an event that follows another within a round trip waits for the client's
        // delayed ACK (up to 40 ms on Linux) before it is sent.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a connection: {e}");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().call(request.map(Body::new))
        });
        let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let mut stop = connections_alive.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, "HTTP connection ended: {e}");
            }
            drop(stop);
        });
    }
    drop(listener);
    hub.begin_shutdown();
    let _ = stop_connections.send(true);
    drop(connections_alive);
    drop(router);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        stop_connections.closed().await;
        // Every session holds a sender; `recv` returns `None` once the last one has ended.
        ended.recv().await;
    });
    if drained.await.is_err() {
        tracing::warn!(open = hub.connection_count(), "some connections did not close in time");
    }
    Ok(())
}

/// What to do when `accept` fails: errors about one connection (it was reset before it was accepted) are
/// skipped; running out of file descriptors is logged and waited out, so that the loop does not spin.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!("cannot accept a connection: {error}; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
