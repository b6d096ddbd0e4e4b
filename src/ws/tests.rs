//! The session over in-memory channels instead of a socket, with tokio's clock paused: the heartbeat's
//! timing is checked exactly, without waiting for it.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::*;
use crate::config::{AppConfig, Config};

/// One end of an in-memory WebSocket: what the session sends goes to `to_client`.
struct MemSocket {
    from_client: UnboundedReceiver<Message>,
    to_client: UnboundedSender<Message>,
}

impl Stream for MemSocket {
    type Item = Result<Message, std::convert::Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.from_client.poll_recv(cx).map(|m| m.map(Ok))
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
    to_hub: UnboundedSender<Message>,
    from_hub: UnboundedReceiver<Message>,
}

impl Client {
    async fn text(&mut self) -> String {
        match self.from_hub.recv().await {
            Some(Message::Text(t)) => t.to_string(),
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn start(protocol: Protocol) -> (Hub, Client, tokio::task::JoinHandle<Ending>) {
    let config = Config { apps: vec![AppConfig::new("1", "k", "s")], ..Config::default() };
    let hub = Hub::new(&config).unwrap();
    let (to_hub, from_client) = unbounded_channel();
    let (to_client, from_hub) = unbounded_channel();
    let socket = MemSocket { from_client, to_client };
    let peer = Peer { remote: "127.0.0.1:1".parse().unwrap(), user_agent: None };
    let task = tokio::spawn(serve(socket, hub.clone(), hub.default_app(), protocol, peer));
    (hub, Client { to_hub, from_hub }, task)
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
    assert!(matches!(client.from_hub.recv().await, Some(Message::Close(Some(f))) if f.code == 4201));
    assert_eq!(task.await.unwrap().code, Some(4201));
}

#[tokio::test(start_paused = true)]
async fn any_frame_from_the_client_counts_as_activity() {
    let (hub, mut client, _task) = start(Protocol::Pusher);
    client.text().await;
    // A frame every 100 s keeps the connection from ever being pinged.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(100)).await;
        client.to_hub.send(Message::Text(r#"{"event":"pusher:ping","data":{}}"#.into())).unwrap();
        assert_eq!(client.text().await, r#"{"event":"pusher:pong","data":{}}"#);
    }
    assert_eq!(hub.connection_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_v1_client_is_kept_alive_with_websocket_pings() {
    let (hub, mut client, _task) = start(Protocol::PoussrV1);
    let msg = client.from_hub.recv().await;
    assert!(matches!(msg, Some(Message::Ping(_))), "{msg:?}");
    client.to_hub.send(Message::Pong(bytes::Bytes::new())).unwrap();
    // Answered: the next thing is another ping, not a close.
    assert!(matches!(client.from_hub.recv().await, Some(Message::Ping(_))));
    assert_eq!(hub.connection_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_client_close_unregisters_the_connection() {
    let (hub, mut client, task) = start(Protocol::Pusher);
    client.text().await;
    client.to_hub.send(Message::Text(r#"{"event":"pusher:subscribe","data":{"channel":"c"}}"#.into())).unwrap();
    client.text().await;
    assert_eq!(hub.stats().channels, 1);
    client.to_hub.send(Message::Close(Some(CloseFrame { code: 1000, reason: "bye".into() }))).unwrap();
    let ending = task.await.unwrap();
    assert_eq!((ending.code, ending.reason.as_str()), (Some(1000), "bye"));
    assert_eq!((hub.connection_count(), hub.stats().channels), (0, 0));
}

#[test]
fn read_errors_that_deserve_an_answer_are_recognized_from_the_websocket_layers_own_errors() {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    // As the session sees them: wrapped by axum, whose error shows the inner one.
    let shown = |e: WsError| axum::Error::new(e).to_string();
    let utf8 = refusal_of_read_error(&shown(WsError::Utf8("invalid".into())), 16);
    assert_eq!(utf8.map(|(code, _)| code.code()), Some(1007));
    let big = shown(WsError::Capacity(CapacityError::MessageTooLong { size: 2_000_000, max_size: 1_048_576 }));
    let (code, why) = refusal_of_read_error(&big, 16384).expect("recognized");
    assert_eq!(code.code(), 1009);
    assert!(why.contains("2000000 > 1048576") && why.contains("16384 bytes"), "{why}");
    assert_eq!(refusal_of_read_error(&shown(WsError::ConnectionClosed), 16), None);
}
