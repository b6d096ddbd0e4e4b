//! The one entry point that serves a hub, used by the headless binary, the desktop shell and the tests.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
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

/// Binds `addr`, or says why not in words an operator can act on.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("cannot listen on {addr}: the port is already in use (another Poussr?); choose another with --port")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot listen on {addr}: permission denied (ports below 1024 need privileges); use --port 6001")
        }
        std::io::ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {addr}: that address is not one of this machine's; check --bind")
        }
        _ => format!("cannot listen on {addr}: {e}"),
    })
}

/// How long shutdown waits for sessions to send their close frames.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `hub` with the HTTP layer's `frontend` (access settings, request metrics) on an already bound
/// `listener` until `shutdown` resolves; then stops accepting, closes
/// every WebSocket with 4200 (so Pusher clients reconnect) and waits for the sessions to end, at most
/// [`DRAIN_TIMEOUT`]. It never binds a port or catches a signal itself: the caller decides both.
///
/// The hub learns its address at once (before the returned future is first polled), so that whoever spawns
/// the future can ask the hub for it straight away; the listener is announced over mDNS at once too (see
/// [`crate::discovery`]), so a newer listener's announcement always comes after an older one's.
pub fn run(
    listener: TcpListener,
    hub: Hub,
    frontend: Frontend,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let local = listener.local_addr();
    if let Ok(addr) = local {
        hub.set_local_addr(addr);
    }
    let announcement = match (frontend.mdns(), local) {
        (true, Ok(local)) => {
            let txt =
                crate::discovery::Txt { key: hub.default_app().config.key.clone(), tls: frontend.tls().is_some() };
            crate::discovery::announce(local, &txt).unwrap_or_else(|e| {
                tracing::warn!("the hub is not announced on the LAN: {e}");
                None
            })
        }
        _ => None,
    };
    serve(listener, hub, frontend, announcement, shutdown)
}

async fn serve(
    listener: TcpListener,
    hub: Hub,
    frontend: Frontend,
    announcement: Option<crate::discovery::Announcement>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    hub.start_background();
    let (sessions, mut ended) = mpsc::channel::<()>(1);
    let tls_watch = frontend.tls().cloned();
    let router = crate::http::router(hub.clone(), frontend.clone(), sessions);
    let limits = hub.limits();
    let handshake_timeout = Duration::from_secs(limits.handshake_timeout_secs);
    let mut http = http1::Builder::new();
    // A connection must send its request headers (the WebSocket handshake included) within this time,
    // and an idle keep-alive connection its next request: slow-loris clients are cut off.
    http.timer(TokioTimer::new()).header_read_timeout(handshake_timeout);
    let tls = frontend.tls().cloned();
    let proxies = std::sync::Arc::new(frontend.proxies().clone());
    // Every connection task holds a receiver; `closed()` resolves once the last one has ended.
    let (stop_connections, connections_alive) = watch::channel(false);
    if let Some(tls) = tls_watch {
        let mut stop = connections_alive.clone();
        tokio::spawn(tls.watch(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }));
    }
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
        let proxies = proxies.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let client = proxies.resolve(remote, request.headers());
            request.extensions_mut().insert(ConnectInfo(client.addr));
            request.extensions_mut().insert(client);
            router.clone().call(request.map(Body::new))
        });
        let stop = connections_alive.clone();
        let http = http.clone();
        match &tls {
            None => {
                tokio::spawn(serve_connection(http, TokioIo::new(stream), service, remote, stop));
            }
            Some(tls) => {
                let tls = tls.clone();
                tokio::spawn(async move {
                    // A handshake in progress is dropped at shutdown; a served connection ends gracefully.
                    let mut stop_early = stop.clone();
                    let sniffed = tokio::select! {
                        sniffed = sniff(stream, &tls, handshake_timeout) => sniffed,
                        _ = stop_early.wait_for(|stop| *stop) => return,
                    };
                    drop(stop_early);
                    match sniffed {
                        Sniffed::Tls(stream) => {
                            serve_connection(http, TokioIo::new(*stream), service, remote, stop).await
                        }
                        Sniffed::Plain(stream) => {
                            serve_connection(http, TokioIo::new(stream), service, remote, stop).await
                        }
                        Sniffed::Dropped(why) => tracing::debug!(%remote, "connection dropped: {why}"),
                    }
                });
            }
        }
    }
    drop(listener);
    // The goodbye goes out while the clients are being closed, not before.
    let goodbye = announcement.map(|a| tokio::spawn(crate::discovery::withdraw(a)));
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
    if let Some(goodbye) = goodbye {
        let _ = goodbye.await;
    }
    Ok(())
}

/// Serves HTTP (and WebSocket upgrades) on one connection until it ends, or gracefully once `stop` turns
/// true.
async fn serve_connection<I, S>(
    http: http1::Builder,
    io: I,
    service: S,
    remote: std::net::SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Send + 'static,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http.serve_connection(io, service).with_upgrades();
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
}

/// What the first byte of a connection on a TLS port said.
enum Sniffed {
    /// A TLS handshake, done.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Plain HTTP, allowed on this port.
    Plain(TcpStream),
    /// Nothing to serve: why.
    Dropped(String),
}

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE: u8 = 0x16;

/// Tells TLS from plain HTTP by the first byte, and does the TLS handshake, all within `timeout` (a client
/// that sends nothing, or a handshake that never ends, is cut off then). Plain HTTP on a port that refuses
/// it gets a 400 that says to use https, in plain text, so that curl and browsers show why.
async fn sniff(stream: TcpStream, tls: &crate::tls::Tls, timeout: Duration) -> Sniffed {
    let work = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Sniffed::Dropped("closed before sending anything".into()),
            Ok(_) => {}
            Err(e) => return Sniffed::Dropped(format!("cannot read: {e}")),
        }
        if first[0] == TLS_HANDSHAKE {
            return match tls.acceptor().accept(stream).await {
                Ok(stream) => Sniffed::Tls(Box::new(stream)),
                Err(e) => Sniffed::Dropped(format!("TLS handshake failed: {e}")),
            };
        }
        if tls.plain_allowed() {
            return Sniffed::Plain(stream);
        }
        refuse_plain(stream, tls).await;
        Sniffed::Dropped("plain HTTP on a TLS-only port".into())
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(sniffed) => sniffed,
        Err(_) => Sniffed::Dropped(format!("no TLS handshake within {} s", timeout.as_secs())),
    }
}

/// The answer to plain HTTP on a port that serves TLS only: a 400 that says to use https, except for
/// `GET /poussr-ca.crt`, which a device fetches before it trusts the CA (it cannot check an https download
/// of it yet).
async fn refuse_plain(mut stream: TcpStream, tls: &crate::tls::Tls) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The request's head is read first (within the caller's time limit): a socket closed with unread bytes
    // is reset, and the client would see the reset instead of the answer.
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let wants_ca = head.starts_with(b"GET /poussr-ca.crt ") || head.starts_with(b"GET /poussr-ca.crt?");
    let ca = match tls.ca_path() {
        Some(path) if wants_ca => {
            tokio::fs::read(path).await.ok().and_then(|pem| crate::cert::certificates_pem(&pem).ok())
        }
        _ => None,
    };
    let answer = match ca {
        Some(pem) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-x509-ca-cert\r\nContent-Disposition: attachment; \
             filename=\"poussr-ca.crt\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{pem}",
            pem.len()
        ),
        None => {
            let body =
                "This Poussr hub takes TLS only on this port: use https:// and wss:// (pusher-js: forceTLS: true).\n";
            format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: \
                 close\r\n\r\n{body}",
                body.len()
            )
        }
    };
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
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
