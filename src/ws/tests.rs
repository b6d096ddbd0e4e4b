//! The session over in-memory channels instead of a socket, with tokio's clock paused: the heartbeat's
//! timing is checked exactly, without waiting for it.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Error as WsError;

use super::*;
use crate::config::{AppConfig, Config};

/// One end of an in-memory WebSocket: what the session sends goes to `to_client`; what the client sends,
/// or an error of the WebSocket layer, comes from `from_client`.
struct MemSocket {
    from_client: UnboundedReceiver<Result<Message, WsError>>,
    to_client: UnboundedSender<Message>,
    /// Messages the hub read and threw away while lingering.
    discarded: Arc<std::sync::atomic::AtomicUsize>,
}

impl Stream for MemSocket {
    type Item = Result<Message, WsError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.from_client.poll_recv(cx)
    }
}

impl Linger for MemSocket {
    async fn linger(&mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, async {
            while let Some(message) = self.from_client.recv().await {
                if let Ok(Message::Close(_)) = message {
                    break;
                }
                self.discarded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await;
    }
}

/// Messages only: deliveries come as messages made from the frames, as on a socket with no byte stream.
impl RawFrames for MemSocket {
    type Raw = tokio::io::Sink;
    fn raw(&mut self) -> Option<&mut tokio::io::Sink> {
        None
    }
}

impl Sink<Message> for MemSocket {
    type Error = ();
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), ()> {
        self.to_client.send(item).map_err(|_| ())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }
}

struct Client {
    to_hub: UnboundedSender<Result<Message, WsError>>,
    from_hub: UnboundedReceiver<Message>,
    discarded: Arc<std::sync::atomic::AtomicUsize>,
}

impl Client {
    fn send(&self, message: Message) {
        self.to_hub.send(Ok(message)).unwrap();
    }

    async fn text(&mut self) -> String {
        match self.from_hub.recv().await {
            Some(Message::Text(t)) => t.to_string(),
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn start(protocol: Protocol) -> (Hub, Client, tokio::task::JoinHandle<Ending>) {
    let config = Config { apps: vec![AppConfig::new("1", "k", "s")], ..Config::default() };
    let hub = Hub::alone(&config).unwrap();
    let (to_hub, from_client) = unbounded_channel();
    let (to_client, from_hub) = unbounded_channel();
    let discarded = Arc::default();
    let socket = MemSocket { from_client, to_client, discarded: Arc::clone(&discarded) };
    let peer = Peer { remote: "127.0.0.1:1".parse().unwrap(), user_agent: None };
    let task = tokio::spawn(serve(socket, hub.clone(), hub.default_app(), protocol, peer));
    (hub, Client { to_hub, from_hub, discarded }, task)
}

#[tokio::test(start_paused = true)]
async fn silence_gets_a_ping_after_120_s_then_4201_after_30_more() {
    let (_hub, mut client, task) = start(Protocol::Pusher);
    assert!(client.text().await.starts_with(r#"{"event":"pusher:connection_established""#));
    let started = Instant::now();
    assert_eq!(client.text().await, r#"{"event":"pusher:ping","data":{}}"#);
    assert_eq!(started.elapsed().as_secs(), 120);
    let error = client.text().await;
    assert_eq!(started.elapsed().as_secs(), 150);
    assert!(error.contains("4201"), "{error}");
    assert!(matches!(client.from_hub.recv().await, Some(Message::Close(Some(f))) if u16::from(f.code) == 4201));
    // The hub waits for the client's close before it lets the connection go.
    client.send(Message::Close(None));
    assert_eq!(task.await.unwrap().closed_by, ClosedBy::Hub(CloseCode::PongTimeout));
}

#[tokio::test(start_paused = true)]
async fn any_frame_from_the_client_counts_as_activity() {
    let (hub, mut client, _task) = start(Protocol::Pusher);
    client.text().await;
    // A frame every 100 s keeps the connection from ever being pinged.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(100)).await;
        client.send(Message::Text(r#"{"event":"pusher:ping","data":{}}"#.into()));
        assert_eq!(client.text().await, r#"{"event":"pusher:pong","data":{}}"#);
    }
    assert_eq!(hub.connection_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_v1_client_is_kept_alive_with_websocket_pings() {
    let (hub, mut client, _task) = start(Protocol::PoussrV1);
    let msg = client.from_hub.recv().await;
    assert!(matches!(msg, Some(Message::Ping(_))), "{msg:?}");
    client.send(Message::Pong(bytes::Bytes::new()));
    // Answered: the next thing is another ping, not a close.
    assert!(matches!(client.from_hub.recv().await, Some(Message::Ping(_))));
    assert_eq!(hub.connection_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_client_close_unregisters_the_connection() {
    let (hub, mut client, task) = start(Protocol::Pusher);
    client.text().await;
    client.send(Message::Text(r#"{"event":"pusher:subscribe","data":{"channel":"c"}}"#.into()));
    client.text().await;
    assert_eq!(hub.stats().channels, 1);
    client.send(Message::Close(Some(CloseFrame { code: 1000.into(), reason: "bye".into() })));
    let ending = task.await.unwrap();
    assert_eq!((ending.closed_by, ending.reason.as_str()), (ClosedBy::Client(Some(1000)), "bye"));
    assert_eq!((hub.connection_count(), hub.stats().channels), (0, 0));
}

#[test]
fn read_errors_that_deserve_an_answer_are_told_apart_by_their_type() {
    use tokio_tungstenite::tungstenite::error::CapacityError;
    let utf8 = WsError::Utf8("invalid".into()).refusal().map(|r| answer_to(r, 16));
    assert_eq!(utf8.map(|(code, _)| code.code()), Some(1007));
    let big = WsError::Capacity(CapacityError::MessageTooLong { size: 2_000_000, max_size: 1_048_576 });
    let (code, why) = answer_to(big.refusal().expect("recognized"), 16384);
    assert_eq!(code.code(), 1009);
    assert!(why.contains("2000000 > 1048576") && why.contains("16384 bytes"), "{why}");
    assert_eq!(WsError::ConnectionClosed.refusal(), None);
}

#[tokio::test(start_paused = true)]
async fn a_refused_frame_is_answered_then_the_hub_reads_on_until_the_clients_close() {
    use tokio_tungstenite::tungstenite::error::CapacityError;
    let (hub, mut client, task) = start(Protocol::Pusher);
    client.text().await;
    let too_big = WsError::Capacity(CapacityError::MessageTooLong { size: 2_000_000, max_size: 1_048_576 });
    client.to_hub.send(Err(too_big)).unwrap();
    // The client is still sending when the hub answers.
    for _ in 0..3 {
        client.send(Message::Text("more".into()));
    }
    let error = client.text().await;
    assert!(error.contains("1009") && error.contains("too large"), "{error}");
    assert!(matches!(client.from_hub.recv().await, Some(Message::Close(Some(f))) if u16::from(f.code) == 1009));
    client.send(Message::Close(None));
    let ending = task.await.unwrap();
    assert_eq!(ending.closed_by, ClosedBy::Hub(CloseCode::MessageTooBig));
    // Everything the client sent before its close was read (and thrown away), none of it acted on.
    assert_eq!(client.discarded.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(hub.connection_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_closes_is_let_go_after_the_linger_timeout() {
    let (_hub, mut client, task) = start(Protocol::Pusher);
    client.text().await;
    let started = Instant::now();
    client.send(Message::Text(format!("{{\"event\":\"pusher:ping\",\"data\":\"{}\"}}", "x".repeat(20_000)).into()));
    assert!(client.text().await.contains("1009"));
    let ending = task.await.unwrap();
    assert_eq!(ending.closed_by, ClosedBy::Hub(CloseCode::MessageTooBig));
    assert_eq!(started.elapsed(), LINGER_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_closing_connection_leaves_the_hub_before_the_client_answers_the_close() {
    let (hub, mut client, task) = start(Protocol::Pusher);
    let mut feed = hub.monitor().subscribe();
    client.text().await;
    client.send(Message::Text(r#"{"event":"pusher:subscribe","data":{"channel":"c"}}"#.into()));
    client.text().await;
    let started = Instant::now();
    hub.connections()[0].kick(CloseCode::Terminated);
    assert!(client.text().await.contains("4009"));
    assert!(matches!(client.from_hub.recv().await, Some(Message::Close(_))));
    // Gone from the hub (channels, counts, the feed) at once, while the session still waits for the client.
    loop {
        match feed.recv().await.unwrap() {
            crate::monitor::MonitorEvent::ConnectionClosed { .. } => break,
            _ => continue,
        }
    }
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!((hub.connection_count(), hub.stats().channels), (0, 0));
    assert!(!task.is_finished(), "the session waits for the client's close frame");
    client.send(Message::Close(None));
    assert_eq!(task.await.unwrap().closed_by, ClosedBy::Hub(CloseCode::Terminated));
}

/// A session is one task per connection, and a task is as large as its future for the connection's whole
/// life: anything held across an `.await` anywhere in the session (an 8 KiB read buffer in the final
/// linger, say) is paid by every idle connection. About 2.5 KiB today, with a real tungstenite socket.
#[tokio::test]
async fn a_session_future_stays_small() {
    let (hub, _client, _task) = start(Protocol::Pusher);
    let (_far, near) = tokio::io::duplex(1024);
    let role = tokio_tungstenite::tungstenite::protocol::Role::Server;
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(socket::Tracked::new(near), role, None).await;
    let peer = Peer { remote: "127.0.0.1:1".parse().unwrap(), user_agent: None };
    let session = serve(ws, hub.clone(), hub.default_app(), Protocol::Pusher, peer);
    let size = std::mem::size_of_val(&session);
    assert!(size < 4096, "a session's future takes {size} bytes: something large is held across an await");
}
