//! One task per WebSocket connection: it reads the client's frames and asks the hub, writes what the hub
//! queued for it, keeps the connection alive with pings, and closes it with the right code.
//!
//! The session is written over any `Sink` + `Stream` of WebSocket messages, so the same code runs on a
//! real socket and, in tests, on in-memory channels. Replies to the client's own frames are written
//! directly; deliveries come through the connection's bounded queue ([`crate::hub::Connection`]).
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | the session loop: reading, the queue, the heartbeat, closing |
//! | `pusher.rs` | the frames of the Pusher protocol: subscriptions and their auth, sign-in, client events |
//! | `v1.rs` | the frames of Poussr v1 |
//! | [`socket`] | the socket under a session: typed read errors, and the end of the closing handshake |

mod pusher;
pub mod socket;
mod v1;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use self::socket::{Linger, ReadError, Refusal};
use crate::hub::{App, Connection, Frame, Hub, OpenError};
use crate::monitor::{MonitorEvent, now_ms};
use crate::protocol::{CloseCode, ClosedBy, Protocol, pusher as pusher_frames, v1 as v1_frames};

/// How many queued frames are written before one flush.
const WRITE_BATCH: usize = 64;

/// How long the hub waits for a close frame to be written before it drops the connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the hub, having sent its close frame, waits for the client's (reading and discarding what
/// comes before it) before it lets the connection go.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(3);

/// Who the peer is, as the HTTP layer saw it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's address.
    pub remote: std::net::SocketAddr,
    /// Its `User-Agent` header.
    pub user_agent: Option<String>,
}

/// How a session ended: who closed it, with which code, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// Who closed it, and the code.
    pub closed_by: ClosedBy,
    /// Why, in words.
    pub reason: String,
}

impl Ending {
    /// The connection went away without a close frame.
    fn lost(reason: impl Into<String>) -> Self {
        Ending { closed_by: ClosedBy::Lost, reason: reason.into() }
    }
}

/// The error frame of `protocol` that comes before a close with `code`.
fn error_frame(protocol: Protocol, code: CloseCode, message: &str) -> String {
    match protocol {
        Protocol::Pusher => pusher_frames::error(Some(code.code()), message),
        Protocol::PoussrV1 => v1_frames::error(code.code(), message),
    }
}

fn close_message(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame { code: code.code().into(), reason: code.reason().into() }))
}

/// Sends the error frame (when there is one), then the close frame, bounded in time. Returns whether the
/// close frame went out, in which case the client's close is worth waiting for (see [`Linger`]).
async fn send_close<S>(socket: &mut S, error: Option<String>, code: CloseCode) -> bool
where
    S: Sink<Message> + Unpin,
{
    let sent = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if let Some(frame) = error {
            socket.feed(Message::Text(frame.into())).await.ok()?;
        }
        socket.send(close_message(code)).await.ok()
    })
    .await;
    matches!(sent, Ok(Some(())))
}

/// Refuses a connection before any session starts: sends the error frame for the protocol, then closes
/// with the same code (Pusher clients read the code to decide whether to reconnect).
pub async fn refuse<S>(mut socket: S, protocol: Protocol, code: CloseCode, message: &str)
where
    S: Sink<Message> + Linger + Unpin,
{
    if send_close(&mut socket, Some(error_frame(protocol, code, message)), code).await {
        socket.linger(LINGER_TIMEOUT).await;
    }
}

/// The close that answers a frame the WebSocket layer refused while reading it.
fn answer_to(refusal: Refusal, max_message_bytes: usize) -> (CloseCode, String) {
    match refusal {
        Refusal::NotUtf8 => (CloseCode::InvalidPayload, "a text frame was not valid UTF-8".into()),
        Refusal::TooLarge { size, max } => (
            CloseCode::MessageTooBig,
            format!("the frame is too large ({size} > {max} bytes); the limit is {max_message_bytes} bytes"),
        ),
    }
}

/// Runs a connection to its end: registers it with the hub, serves it, and unregisters it.
pub async fn serve<S, E>(socket: S, hub: Hub, app: Arc<App>, protocol: Protocol, peer: Peer) -> Ending
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Linger + Unpin,
    E: ReadError,
{
    let (conn, rx) = match hub.open(app, peer.remote, peer.user_agent.as_deref(), protocol) {
        Ok(opened) => opened,
        Err(e) => {
            let code = e.close_code();
            let message = match e {
                OpenError::OverQuota => {
                    format!("the hub allows {} connections and has no room for another", hub.limits().max_connections)
                }
                OpenError::TooManyFromAddress => format!(
                    "{} already has {} connections open, the most allowed from one address; retry later",
                    peer.remote.ip().to_canonical(),
                    hub.limits().max_connections_per_address
                ),
                OpenError::ShuttingDown => "the hub is restarting; reconnect".to_owned(),
            };
            hub.record_close(ClosedBy::Hub(code));
            refuse(socket, protocol, code, &message).await;
            return Ending { closed_by: ClosedBy::Hub(code), reason: message };
        }
    };
    let mut session = Session {
        hub: hub.clone(),
        conn: conn.clone(),
        socket,
        rx,
        client_window: Instant::now(),
        client_events: 0,
        close_sent: false,
    };
    let ending = session.run().await;
    // The connection leaves the hub (its channels, its presence, the counts) as soon as it is closing;
    // only then does the session wait for the client's end of the closing handshake.
    hub.close(&conn, ending.closed_by, &ending.reason);
    if session.close_sent {
        session.socket.linger(LINGER_TIMEOUT).await;
    }
    ending
}

/// One connection's session.
struct Session<S> {
    /// The hub it asks.
    hub: Hub,
    /// Its record in the hub.
    conn: Arc<Connection>,
    /// The WebSocket.
    socket: S,
    /// What the hub queued for it.
    rx: mpsc::Receiver<Frame>,
    /// The start of the current one-second window of the client-event rate limit.
    client_window: Instant,
    /// Client events received in that window.
    client_events: u32,
    /// The hub's close frame went out: the client's is awaited once the connection has left the hub.
    close_sent: bool,
}

/// What handling one client frame asks the loop to do next.
enum Next {
    Continue,
    Close(CloseCode, String),
}

impl<S, E> Session<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Linger + Unpin,
    E: ReadError,
{
    async fn run(&mut self) -> Ending {
        let limits = self.hub.limits().clone();
        let activity_timeout = Duration::from_secs(limits.activity_timeout_secs);
        let pong_timeout = Duration::from_secs(limits.pong_timeout_secs);

        if self.conn.protocol == Protocol::Pusher {
            let hello = pusher_frames::connection_established(&self.conn.socket_id, limits.activity_timeout_secs);
            if self.write(Message::Text(hello.into())).await.is_err() {
                return Ending::lost("the client went away during the handshake");
            }
        }

        let mut last_activity = Instant::now();
        // Set when the hub has pinged and heard nothing since.
        let mut awaiting_pong = false;
        let timer = tokio::time::sleep_until(last_activity + activity_timeout);
        tokio::pin!(timer);

        loop {
            let conn = self.conn.clone();
            tokio::select! {
                biased;
                code = conn.kicked() => {
                    return self.close(code, code.reason().to_owned()).await;
                }
                incoming = self.socket.next() => {
                    let message = match incoming {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            return match e.refusal() {
                                Some(refusal) => {
                                    let (code, why) = answer_to(refusal, limits.max_message_bytes);
                                    self.close(code, why).await
                                }
                                None => Ending::lost(format!("connection error: {e}")),
                            };
                        }
                        None => return Ending::lost("the client went away"),
                    };
                    last_activity = Instant::now();
                    if awaiting_pong {
                        awaiting_pong = false;
                        timer.as_mut().reset(last_activity + activity_timeout);
                    }
                    match self.on_message(message).await {
                        Ok(Next::Continue) => {}
                        Ok(Next::Close(code, why)) => return self.close(code, why).await,
                        Err(ending) => return ending,
                    }
                }
                frame = self.rx.recv() => {
                    // The hub holds a sender for as long as the connection is registered.
                    let Some(frame) = frame else {
                        return Ending::lost("removed from the hub");
                    };
                    if let Err(ending) = self.write_queued(frame).await {
                        return ending;
                    }
                }
                () = &mut timer => {
                    let now = Instant::now();
                    if awaiting_pong {
                        return self.close(CloseCode::PongTimeout, CloseCode::PongTimeout.reason().into()).await;
                    }
                    if now >= last_activity + activity_timeout {
                        let ping = match self.conn.protocol {
                            Protocol::Pusher => Message::Text(pusher_frames::ping().into()),
                            Protocol::PoussrV1 => Message::Ping(bytes::Bytes::new()),
                        };
                        if self.write(ping).await.is_err() {
                            return Ending::lost("the client went away");
                        }
                        awaiting_pong = true;
                        timer.as_mut().reset(now + pong_timeout);
                    } else {
                        // Activity since the timer was set: wait out the rest of the timeout from then.
                        timer.as_mut().reset(last_activity + activity_timeout);
                    }
                }
            }
        }
    }

    /// Writes one message now, and counts it.
    async fn write(&mut self, message: Message) -> Result<(), Ending> {
        let len = match &message {
            Message::Text(t) => t.len() as u64,
            _ => 0,
        };
        match self.socket.send(message).await {
            Ok(()) => {
                self.hub.count_out(&self.conn, 1, len);
                Ok(())
            }
            Err(_) => Err(Ending::lost("the client went away")),
        }
    }

    /// Writes `first` and whatever else is queued (up to a batch), then flushes once. A connection asked to
    /// close while the write is stuck (a reader that stopped reading) does not wait for that write.
    async fn write_queued(&mut self, first: Frame) -> Result<(), Ending> {
        let conn = self.conn.clone();
        let mut frames = 1u64;
        let mut bytes = first.len() as u64;
        let write = async {
            self.socket.feed(Message::Text(first)).await.map_err(|_| ())?;
            while (frames as usize) < WRITE_BATCH {
                let Ok(frame) = self.rx.try_recv() else { break };
                frames += 1;
                bytes += frame.len() as u64;
                self.socket.feed(Message::Text(frame)).await.map_err(|_| ())?;
            }
            self.socket.flush().await.map_err(|_| ())
        };
        let kicked = tokio::select! {
            biased;
            result = write => match result {
                Ok(()) => {
                    self.hub.count_out(&conn, frames, bytes);
                    return Ok(());
                }
                Err(()) => return Err(Ending::lost("the client went away")),
            },
            code = conn.kicked() => code,
        };
        // Asked to close while a write was stuck: the client has stopped reading. Its close frame goes out
        // if the client catches up within the close timeout; otherwise the connection is dropped.
        Err(self.close(kicked, kicked.reason().to_owned()).await)
    }

    /// Sends the error frame and close frame for `code`, bounded in time. (The session then waits for the
    /// client's close frame, reading and discarding what comes before it, so that the close reaches the
    /// client: see [`serve`].)
    async fn close(&mut self, code: CloseCode, why: String) -> Ending {
        let error = (code != CloseCode::Normal).then(|| error_frame(self.conn.protocol, code, &why));
        self.close_sent = send_close(&mut self.socket, error, code).await;
        Ending { closed_by: ClosedBy::Hub(code), reason: why }
    }

    async fn on_message(&mut self, message: Message) -> Result<Next, Ending> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(b) => {
                self.hub.count_in(&self.conn, b.len());
                self.reply_error("binary frames are not part of the protocol; send JSON text frames").await?;
                return Ok(Next::Continue);
            }
            Message::Close(frame) => {
                // The WebSocket layer has queued its answering close frame; send it before the socket goes.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.socket.flush()).await;
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let reason = frame.map(|f| f.reason.to_string()).filter(|r| !r.is_empty());
                return Err(Ending {
                    closed_by: ClosedBy::Client(code),
                    reason: reason.unwrap_or_else(|| "closed by the client".into()),
                });
            }
            // The WebSocket layer answers pings by itself; both only count as activity. A raw frame is
            // only ever something to send, never something read.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(Next::Continue),
        };
        self.hub.count_in(&self.conn, text.len());
        let max = self.hub.limits().max_message_bytes;
        if text.len() > max {
            return Ok(Next::Close(
                CloseCode::MessageTooBig,
                format!("a frame of {} bytes exceeds the {max}-byte limit", text.len()),
            ));
        }
        match self.conn.protocol {
            Protocol::Pusher => self.on_pusher(&text).await,
            Protocol::PoussrV1 => self.on_v1(&text).await,
        }
    }

    async fn reply(&mut self, frame: String) -> Result<(), Ending> {
        self.write(Message::Text(frame.into())).await
    }

    async fn reply_error(&mut self, message: &str) -> Result<(), Ending> {
        self.hub.monitor().emit(|| MonitorEvent::Error {
            at_ms: now_ms(),
            socket_id: Some(self.conn.socket_id.clone()),
            code: None,
            message: message.to_owned(),
        });
        let frame = match self.conn.protocol {
            Protocol::Pusher => pusher_frames::error(None, message),
            Protocol::PoussrV1 => v1_frames::error(v1_frames::FrameError::CODE, message),
        };
        self.reply(frame).await
    }
}

#[cfg(test)]
mod tests;
