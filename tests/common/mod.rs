//! A hub on 127.0.0.1:0 for integration tests, with a real WebSocket client (tokio-tungstenite) and
//! signed API calls through the same router. Every test stops the hub it starts.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use poussr::http::Frontend;
use poussr::monitor::EventSource;
use poussr::protocol::signature::sign_request;
use poussr::{AppConfig, Config, Hub, Limits};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for any one frame before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// How long [`eventually`] waits for its condition before failing. Generous: a condition that holds ends
/// the wait at once, so only a failing test ever waits this long.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestHub {
    pub addr: SocketAddr,
    pub hub: Hub,
    /// The HTTP layer's settings and metrics, shared by the server and the routers of `request`.
    pub frontend: Frontend,
    pub app: AppConfig,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub fn test_app() -> AppConfig {
    AppConfig::new("4242", "testkey", "testsecret")
}

impl TestHub {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config { apps: vec![test_app()], limits: Limits::default(), ..Config::default() };
        adjust(&mut config);
        let hub = poussr::adapter::hub(&config).expect("valid config");
        let frontend = Frontend::new(&config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(poussr::server::run(listener, hub.clone(), frontend.clone(), async move {
            let _ = stopped.await;
        }));
        TestHub { addr, hub, frontend, app: config.apps[0].clone(), stop: Some(stop), task }
    }

    /// Stops the hub and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the hub stops within 10 s")
            .expect("the server task does not panic")
            .expect("the server ends without error");
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Opens a raw WebSocket on `path`.
    pub async fn ws(&self, path: &str) -> Ws {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(self.url(path)))
            .await
            .expect("handshake in time")
            .expect("handshake succeeds");
        ws
    }

    /// Opens a raw WebSocket on `path` over `socket`, which the test has bound or tuned.
    pub async fn ws_over(&self, socket: TcpSocket, path: &str) -> Ws {
        let stream = socket.connect(self.addr).await.expect("the hub accepts the connection");
        let (ws, _) =
            tokio::time::timeout(WAIT, tokio_tungstenite::client_async(self.url(path), MaybeTlsStream::Plain(stream)))
                .await
                .expect("handshake in time")
                .expect("handshake succeeds");
        ws
    }

    /// The path pusher-js connects to.
    fn pusher_path(&self) -> String {
        format!("/app/{}?protocol=7&client=js&version=8.4.0&flash=false", self.app.key)
    }

    /// A Pusher connection, after `pusher:connection_established`; returns its socket id.
    pub async fn pusher(&self) -> (Ws, String) {
        established(self.ws(&self.pusher_path()).await).await
    }

    /// A Pusher connection subscribed to `channel`.
    pub async fn subscriber(&self, channel: &str) -> (Ws, String) {
        let (mut ws, id) = self.pusher().await;
        subscribed(&mut ws, channel).await;
        (ws, id)
    }

    /// A Pusher connection over `socket` (see [`TestHub::ws_over`]), subscribed to `channel`.
    pub async fn subscriber_over(&self, socket: TcpSocket, channel: &str) -> (Ws, String) {
        let (mut ws, id) = established(self.ws_over(socket, &self.pusher_path()).await).await;
        subscribed(&mut ws, channel).await;
        (ws, id)
    }

    /// Sends an HTTP request to the hub's router as if it came from `from`.
    pub async fn request_from(&self, from: SocketAddr, req: Request<Body>) -> (StatusCode, Value, String) {
        route(&self.hub, &self.frontend, from, req).await
    }

    pub async fn request(&self, req: Request<Body>) -> (StatusCode, Value, String) {
        self.request_from("127.0.0.1:50000".parse().unwrap(), req).await
    }

    /// A request to the Pusher HTTP API, signed as the SDKs sign it.
    pub async fn api(&self, method: &str, path: &str, params: &[(&str, &str)], body: &str) -> (StatusCode, Value) {
        let query = sign_request(&self.app.key, &self.app.secret, method, path, params, body.as_bytes(), now());
        let req = Request::builder()
            .method(method)
            .uri(format!("{path}?{query}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let (status, json, _) = self.request(req).await;
        (status, json)
    }

    /// Triggers an event through the signed API and checks it was accepted.
    pub async fn trigger(&self, channel: &str, event: &str, data: &str) {
        let body = serde_json::json!({"name": event, "channel": channel, "data": data}).to_string();
        let (status, json) = self.api("POST", &format!("/apps/{}/events", self.app.id), &[], &body).await;
        assert_eq!(status, StatusCode::OK, "{json}");
    }

    /// Publishes `event` with `data` on `channel` of the test app straight into the hub, as the HTTP API
    /// would, with no request in between; returns to how many connections it was queued. The test hubs
    /// keep no history, so the delivery is done when this returns.
    pub fn publish_direct(&self, channel: &str, event: &str, data: &str) -> usize {
        let app = self.hub.app_by_id(&self.app.id).expect("the test app is configured");
        let name = poussr::protocol::ChannelName::parse(channel).expect("a valid channel name");
        let publish = poussr::hub::Publish::new(vec![name], event, data, None, EventSource::Api);
        self.hub.publish(&app, &publish).ready().expect("a hub without history delivers at once")
    }

    /// Publishes a sentinel event on `channel` and returns the frame its subscribers get; pass it to
    /// [`assert_next_is_sentinel`]. Each sentinel's data is unique, so one cannot be taken for another.
    ///
    /// It goes the way every event from the API goes (`Hub::publish`, which queues it to each subscriber
    /// before it returns), but without the HTTP layer, so it does not use up the app's publishing
    /// allowance: a test of that allowance can use it too.
    pub fn sentinel_on(&self, channel: &str) -> Value {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let data = format!("sentinel-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let delivered = self.publish_direct(channel, "test-sentinel", &data);
        assert!(delivered > 0, "the sentinel on {channel} reached no one: has the socket joined it?");
        serde_json::json!({"event": "test-sentinel", "channel": channel, "data": data})
    }
}

/// `ws` once its `pusher:connection_established` has come, with the socket id it gave.
async fn established(mut ws: Ws) -> (Ws, String) {
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
    let data: Value = serde_json::from_str(hello["data"].as_str().expect("data is a string")).unwrap();
    (ws, data["socket_id"].as_str().unwrap().to_owned())
}

/// Subscribes `ws` to the public `channel` and waits for the hub's yes.
pub async fn subscribed(ws: &mut Ws, channel: &str) {
    send_json(ws, serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel}})).await;
    let ok = next_json(ws).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded", "{ok}");
}

/// Sends an HTTP request to `hub`'s router as if it came from `from`.
pub async fn route(
    hub: &Hub,
    frontend: &Frontend,
    from: SocketAddr,
    req: Request<Body>,
) -> (StatusCode, Value, String) {
    let (sessions, _) = mpsc::channel(1);
    let router = poussr::http::router(hub.clone(), frontend.clone(), sessions).layer(MockConnectInfo(from));
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, text)
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into())).await.unwrap();
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.to_owned().into())).await.unwrap();
}

/// The next text frame, as received.
pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame arrives in time")
            .expect("the socket is still open")
            .expect("no socket error");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next text frame, parsed.
pub async fn next_json(ws: &mut Ws) -> Value {
    let text = next_text(ws).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("frame is JSON ({e}): {text}"))
}

/// Reads until the close frame and returns its code (text frames before it are returned too).
pub async fn read_until_close(ws: &mut Ws) -> (Vec<Value>, Option<u16>) {
    // The frames are parsed once the close has arrived: a reader busy parsing is a slow reader, and the
    // hub waits only so long for a slow reader to take its close frame.
    let mut texts = Vec::new();
    let code = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("the close arrives in time") {
            Some(Ok(Message::Text(t))) => texts.push(t),
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    (texts.iter().map(|t| serde_json::from_str(t).unwrap()).collect(), code)
}

/// Asserts that the very next frame on `ws` is `sentinel` (from [`TestHub::sentinel_on`]): nothing was
/// queued for `ws` before the sentinel was published.
///
/// This is how a test proves that something did not happen. The hub queues every delivery to a connection
/// (events, client events, presence changes) in one queue, in order, so anything queued before the
/// sentinel would come first. It writes a reply to one of the connection's own frames while handling that
/// frame, before it takes anything more from the queue, so a reply to a frame it had begun handling before
/// the sentinel was published comes first too. A `pusher:pong` would not do as the sentinel: it is written
/// as soon as the ping is read, ahead of deliveries still queued.
///
/// The sentinel proves something only if it is published after the hub has done whatever would have
/// queued the unwanted frame: the API call has answered, the reply to the client's frame has arrived, the
/// closed connection is gone from the hub.
pub async fn assert_next_is_sentinel(ws: &mut Ws, sentinel: &Value) {
    let next = next_json(ws).await;
    assert_eq!(&next, sentinel, "nothing arrives before the sentinel");
}

/// Waits until `done` holds, checking every 10 ms; fails, saying what was awaited, if it still does not
/// after [`PATIENCE`]. For a state of the hub that no frame announces (a closed connection released).
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "still waiting after {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
