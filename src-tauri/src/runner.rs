//! The hub's lifecycle inside the desktop app: start it at launch, move it to a new address without ever
//! leaving the operator with nothing (the new listener is bound before the old one is released), and stop
//! it on quit with close code 4200 so that clients reconnect.
//!
//! The runner knows nothing of windows or trays; it publishes its [`Status`] on a watch channel that the
//! tray and the window follow.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use poussr::history::History;
use poussr::http::Frontend;
use poussr::{Config, Hub};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long quitting waits for the hub to close its clients.
const STOP_TIMEOUT: Duration = Duration::from_secs(6);

/// Why a listener could not be bound, in the operator's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct BindError {
    /// What went wrong, for the window to act on (it offers another port for `port_in_use`).
    pub kind: BindErrorKind,
    /// What happened and what to do.
    pub message: String,
}

/// The kinds of [`BindError`]; on the wire in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindErrorKind {
    /// Another program listens on the port.
    PortInUse,
    /// The port needs privileges.
    PermissionDenied,
    /// The address is not one of this machine's.
    AddressNotAvailable,
    /// The settings are not valid.
    Invalid,
    /// Anything else the OS said.
    Other,
}

impl BindError {
    /// Settings that are not valid.
    fn invalid(e: impl std::fmt::Display) -> Self {
        BindError { kind: BindErrorKind::Invalid, message: e.to_string() }
    }

    /// Another failure of the OS.
    fn other(e: impl std::fmt::Display) -> Self {
        BindError { kind: BindErrorKind::Other, message: e.to_string() }
    }
}

impl BindError {
    fn from_io(addr: SocketAddr, e: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let (kind, message) = match e.kind() {
            AddrInUse => (
                BindErrorKind::PortInUse,
                format!(
                    "Port {} is already in use on {} (another program, or another Poussr). Choose another port.",
                    addr.port(),
                    addr.ip()
                ),
            ),
            PermissionDenied => (
                BindErrorKind::PermissionDenied,
                format!(
                    "Permission denied for port {}: ports below 1024 need administrator rights. Choose a port above 1024.",
                    addr.port()
                ),
            ),
            AddrNotAvailable => (
                BindErrorKind::AddressNotAvailable,
                format!(
                    "{} is not an address of this machine. Choose one of its addresses, or 0.0.0.0 for all.",
                    addr.ip()
                ),
            ),
            _ => (BindErrorKind::Other, format!("Cannot listen on {addr}: {e}")),
        };
        BindError { kind, message }
    }
}

/// Whether the hub runs; on the wire in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HubState {
    /// Serving.
    Running,
    /// Not serving, because of the status's error.
    Error,
    /// Not serving: not started yet, or quitting.
    Stopped,
}

/// What the hub is doing, for the window and the tray.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Whether it runs.
    pub state: HubState,
    /// Where it listens (or wanted to).
    pub listen: Option<SocketAddr>,
    /// The URL the window uses to reach the hub's admin API.
    pub base_url: Option<String>,
    /// The addresses LAN clients should use, with the port.
    pub addresses: Vec<String>,
    /// Open connections.
    pub clients: usize,
    /// Why it is not running.
    pub error: Option<BindError>,
}

impl Status {
    fn stopped() -> Self {
        Status {
            state: HubState::Stopped,
            listen: None,
            base_url: None,
            addresses: Vec::new(),
            clients: 0,
            error: None,
        }
    }

    /// The first address LAN clients should use, as `host:port`.
    pub fn address(&self) -> Option<&str> {
        self.addresses.first().map(String::as_str)
    }
}

/// The URL from which this machine reaches a hub listening on `listen`.
pub fn base_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

struct Serving {
    hub: Hub,
    /// The HTTP layer's settings the hub is served with.
    frontend: Frontend,
    listen: SocketAddr,
    /// A second handle on the listening socket, so that a restart on the same address can hand the open
    /// socket to the new hub: clients that reconnect at once wait in its queue instead of being refused
    /// (pusher-js would then wait 15 s before its next try).
    socket: std::net::TcpListener,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

/// Runs one hub at a time.
pub struct Runner {
    serving: tokio::sync::Mutex<Option<Serving>>,
    status: watch::Sender<Status>,
    /// The last configuration that was started or tried.
    config: Mutex<Option<Config>>,
    /// The history store, opened for the first hub and kept for the next ones: a new hub on new settings
    /// starts while the old one still closes its clients, and both write the same store through it.
    history: Mutex<Option<Result<Option<History>, String>>>,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            serving: tokio::sync::Mutex::new(None),
            status: watch::Sender::new(Status::stopped()),
            config: Mutex::new(None),
            history: Mutex::new(None),
        }
    }
}

impl Runner {
    /// Follows the status.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// The status now.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// The hub being served, if any.
    pub async fn hub(&self) -> Option<Hub> {
        self.serving.lock().await.as_ref().map(|s| s.hub.clone())
    }

    /// The HTTP layer's settings of the hub being served, if any.
    pub async fn frontend(&self) -> Option<Frontend> {
        self.serving.lock().await.as_ref().map(|s| s.frontend.clone())
    }

    /// Starts the hub for `config`. On failure the status says why and the runner waits for new settings.
    pub async fn start(&self, config: Config) -> Result<SocketAddr, BindError> {
        let mut serving = self.serving.lock().await;
        if let Some(old) = serving.take() {
            Self::shut(old).await;
        }
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
        let addr = SocketAddr::new(config.bind, config.port);
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                let s = self.serve(listener, &config)?;
                let listen = s.listen;
                *serving = Some(s);
                Ok(listen)
            }
            Err(e) => {
                let error = BindError::from_io(addr, &e);
                self.fail(addr, error.clone());
                Err(error)
            }
        }
    }

    /// Moves the hub to `config`. The new listener is bound first; if that fails, the old hub keeps serving
    /// and the error is returned. (When the port stays the same, the old listener must go first; if the new
    /// one then fails, the old settings are started again.)
    pub async fn apply(&self, config: Config) -> Result<SocketAddr, BindError> {
        config.validate().map_err(BindError::invalid)?;
        let mut serving = self.serving.lock().await;
        let new_addr = SocketAddr::new(config.bind, config.port);
        if let Some(old) = serving.as_ref().filter(|s| s.listen == new_addr) {
            let handed = old
                .socket
                .try_clone()
                .and_then(|l| {
                    l.set_nonblocking(true)?;
                    TcpListener::from_std(l)
                })
                .map_err(|e| BindError::from_io(new_addr, &e))?;
            *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
            // The new hub accepts before the old one closes its clients with 4200.
            let new = self.serve(handed, &config)?;
            let listen = new.listen;
            let old = serving.replace(new).expect("checked above");
            Self::shut(old).await;
            return Ok(listen);
        }
        let same_port = serving.as_ref().is_some_and(|s| s.listen.port() == config.port);
        let listener = if same_port {
            let old = serving.take().expect("checked above");
            let old_addr = old.listen;
            Self::shut(old).await;
            match TcpListener::bind(new_addr).await {
                Ok(l) => l,
                Err(e) => {
                    let error = BindError::from_io(new_addr, &e);
                    let previous = self.config.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    if let (Some(previous), Ok(l)) = (previous, TcpListener::bind(old_addr).await) {
                        *serving = Some(self.serve(l, &previous)?);
                    }
                    return Err(error);
                }
            }
        } else {
            let listener = TcpListener::bind(new_addr).await.map_err(|e| BindError::from_io(new_addr, &e))?;
            if let Some(old) = serving.take() {
                Self::shut(old).await;
            }
            listener
        };
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
        let s = self.serve(listener, &config)?;
        let listen = s.listen;
        *serving = Some(s);
        Ok(listen)
    }

    /// Has the running hub read its certificate files again now (after *Create a certificate* rewrote
    /// them), rather than at its next look; returns whether a new certificate is in use.
    pub async fn reload_tls(&self) -> bool {
        let tls = self.serving.lock().await.as_ref().and_then(|s| s.frontend.tls().cloned());
        match tls {
            Some(tls) => tokio::task::spawn_blocking(move || tls.reload_now()).await.unwrap_or(false),
            None => false,
        }
    }

    /// Stops the hub: clients are closed with 4200 and told to reconnect.
    pub async fn stop(&self) {
        if let Some(old) = self.serving.lock().await.take() {
            Self::shut(old).await;
        }
        self.status.send_replace(Status::stopped());
    }

    fn serve(&self, listener: TcpListener, config: &Config) -> Result<Serving, BindError> {
        let history = self
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| History::open(&config.history, &config.apps))
            .clone();
        let hub = poussr::adapter::hub_with_history(config, history).map_err(BindError::invalid)?;
        let tls = poussr::tls::Tls::from_config(&config.tls).map_err(BindError::invalid)?;
        let frontend = Frontend::new(config).with_tls(tls);
        let listen = listener.local_addr().map_err(BindError::other)?;
        let std_listener = listener.into_std().map_err(BindError::other)?;
        let socket = std_listener.try_clone().map_err(BindError::other)?;
        let listener = TcpListener::from_std(std_listener).map_err(BindError::other)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = poussr::server::run(listener, hub.clone(), frontend.clone(), async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!("the hub stopped: {e}");
            }
        });
        let addresses = poussr::net::client_addresses(listen.ip())
            .into_iter()
            .map(|ip| SocketAddr::new(ip, listen.port()).to_string())
            .collect();
        self.status.send_replace(Status {
            state: HubState::Running,
            listen: Some(listen),
            base_url: Some(base_url(listen)),
            addresses,
            clients: 0,
            error: None,
        });
        // Push the client count into the status as it changes (the hub pushes; nothing polls).
        let mut count = hub.watch_connections();
        let status = self.status.clone();
        let watcher = tokio::spawn(async move {
            while count.changed().await.is_ok() {
                let n = *count.borrow_and_update();
                status.send_if_modified(|s| {
                    let changed = s.listen == Some(listen) && s.clients != n;
                    if changed {
                        s.clients = n;
                    }
                    changed
                });
            }
        });
        tracing::info!(%listen, "hub started");
        Ok(Serving { hub, frontend, listen, socket, stop, task, watcher })
    }

    fn fail(&self, addr: SocketAddr, error: BindError) {
        tracing::warn!(%addr, "{error}");
        self.status.send_replace(Status {
            state: HubState::Error,
            listen: Some(addr),
            base_url: None,
            addresses: Vec::new(),
            clients: 0,
            error: Some(error),
        });
    }

    async fn shut(old: Serving) {
        // Its client count no longer concerns the status (a new hub may serve the same address).
        old.watcher.abort();
        let _ = old.stop.send(());
        if tokio::time::timeout(STOP_TIMEOUT, old.task).await.is_err() {
            tracing::warn!(listen = %old.listen, "the hub did not stop in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poussr::AppConfig;

    fn config(port: u16) -> Config {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port,
            apps: vec![AppConfig::generate()],
            admin_token: Some("0123456789abcdef".into()),
            ..Config::default()
        }
    }

    async fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port()
    }

    async fn answers(port: u16) -> bool {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    }

    #[tokio::test]
    async fn start_then_move_to_a_new_port() {
        let runner = Runner::default();
        let a = runner.start(config(0)).await.unwrap();
        assert!(answers(a.port()).await);
        assert_eq!(runner.status().state, HubState::Running);
        let port = free_port().await;
        let b = runner.apply(config(port)).await.unwrap();
        assert_eq!(b.port(), port);
        assert!(answers(port).await);
        assert!(!answers(a.port()).await, "the old port is released");
        runner.stop().await;
        assert!(!answers(port).await);
        assert_eq!(runner.status().state, HubState::Stopped);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_on_the_same_address_never_refuses_a_connection() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let runner = Runner::default();
        let port = free_port().await;
        let a = runner.start(config(port)).await.unwrap();
        let probing = Arc::new(AtomicBool::new(true));
        let flag = probing.clone();
        let probe = tokio::spawn(async move {
            let (mut accepted, mut refused) = (0, 0);
            while flag.load(Ordering::Relaxed) {
                match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    Ok(_) => accepted += 1,
                    Err(_) => refused += 1,
                }
                tokio::task::yield_now().await;
            }
            (accepted, refused)
        });
        for _ in 0..5 {
            assert_eq!(runner.apply(config(port)).await.unwrap(), a);
        }
        probing.store(false, Ordering::Relaxed);
        let (accepted, refused) = probe.await.unwrap();
        eprintln!("{accepted} connections accepted during the restarts");
        assert_eq!(refused, 0, "connections refused during the restarts ({accepted} accepted)");
        assert!(accepted > 10, "the probe ran ({accepted})");
        assert_eq!((runner.status().state, runner.status().listen), (HubState::Running, Some(a)));
        runner.stop().await;
        assert!(!answers(port).await, "the port is released at stop");
    }

    #[tokio::test]
    async fn a_taken_port_leaves_the_old_hub_serving() {
        let runner = Runner::default();
        let a = runner.start(config(0)).await.unwrap();
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = runner.apply(config(taken.local_addr().unwrap().port())).await.unwrap_err();
        assert_eq!(err.kind, BindErrorKind::PortInUse);
        assert!(err.message.contains("already in use"));
        assert!(answers(a.port()).await, "the old hub still serves");
        assert_eq!(runner.status().listen, Some(a));
        runner.stop().await;
    }

    #[tokio::test]
    async fn an_address_not_on_this_machine_is_refused_clearly() {
        let runner = Runner::default();
        let a = runner.start(config(0)).await.unwrap();
        let mut c = config(free_port().await);
        c.bind = IpAddr::from([203, 0, 113, 9]);
        let err = runner.apply(c).await.unwrap_err();
        assert_eq!(err.kind, BindErrorKind::AddressNotAvailable, "{err:?}");
        assert!(answers(a.port()).await);
        runner.stop().await;
    }

    #[tokio::test]
    async fn a_taken_port_at_launch_is_an_error_status_not_a_crash() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let runner = Runner::default();
        assert!(runner.start(config(port)).await.is_err());
        let status = runner.status();
        assert_eq!(status.state, HubState::Error);
        assert_eq!(status.error.unwrap().kind, BindErrorKind::PortInUse);
        // The operator picks another port: the hub starts.
        let other = free_port().await;
        runner.apply(config(other)).await.unwrap();
        assert_eq!(runner.status().state, HubState::Running);
        assert!(answers(other).await);
        runner.stop().await;
    }

    #[tokio::test]
    async fn the_client_count_is_pushed_into_the_status() {
        let runner = Runner::default();
        let addr = runner.start(config(0)).await.unwrap();
        let mut status = runner.watch();
        let key = runner.hub().await.unwrap().default_app().config.key.clone();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        let handshake = format!(
            "GET /app/{key}?protocol=7 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(handshake.as_bytes()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| s.clients == 1)).await.unwrap().unwrap();
        drop(stream);
        tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| s.clients == 0)).await.unwrap().unwrap();
        runner.stop().await;
    }

    #[test]
    fn the_window_reaches_an_all_interfaces_hub_on_loopback() {
        assert_eq!(base_url("0.0.0.0:6001".parse().unwrap()), "http://127.0.0.1:6001");
        assert_eq!(base_url("[::]:6001".parse().unwrap()), "http://[::1]:6001");
        assert_eq!(base_url("10.0.0.5:6001".parse().unwrap()), "http://10.0.0.5:6001");
    }
}
