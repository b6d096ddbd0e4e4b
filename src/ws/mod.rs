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
mod resume;
pub mod socket;
mod v1;

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use self::socket::{Linger, RawFrames, ReadError, Refusal};
use crate::hub::{App, Connection, Frame, Hub, OpenError};
use crate::monitor::{MonitorEvent, now_ms};
use crate::protocol::{CloseCode, ClosedBy, Protocol, pusher as pusher_frames, v1 as v1_frames};

/// The most frames written by one system call (each is one buffer of one vectored write).
const WRITE_BATCH: usize = 256;

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
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Linger + RawFrames + Unpin,
    E: ReadError,
{
    let conn = match hub.open(app, peer.remote, peer.user_agent.as_deref(), protocol) {
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
            hub.monitor().emit(|| MonitorEvent::ConnectionRefused {
                at_ms: now_ms(),
                remote: peer.remote.to_string(),
                app_key: None,
                origin: None,
                code: code.code(),
                reason: message.clone(),
                hint: None,
            });
            refuse(socket, protocol, code, &message).await;
            return Ending { closed_by: ClosedBy::Hub(code), reason: message };
        }
    };
    let mut session = Session {
        hub: hub.clone(),
        conn: conn.clone(),
        socket,
        out: VecDeque::new(),
        out_sent: 0,
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
    /// Frames taken from the connection's queue and not yet written, oldest first.
    out: VecDeque<Frame>,
    /// Bytes of the first frame of `out` already written (a write cut short leaves part of a frame).
    out_sent: usize,
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

/// Why writing to the client stopped.
enum WriteError {
    /// The connection is gone.
    Gone,
    /// The socket accepted nothing for the write timeout.
    Stalled,
}

impl<S, E> Session<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Linger + RawFrames + Unpin,
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
        // Made once: the loop polls the same future rather than registering a new waiter each turn.
        let conn = self.conn.clone();
        let kicked = conn.kicked();
        tokio::pin!(kicked);

        loop {
            tokio::select! {
                biased;
                code = &mut kicked => {
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
                () = std::future::poll_fn(|cx| conn.poll_queued(cx)) => {
                    if let Err(ending) = self.write_queued().await {
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

    /// Writes one message now, and counts it. A socket that accepts nothing for the write timeout closes
    /// the connection as a slow consumer.
    async fn write(&mut self, message: Message) -> Result<(), Ending> {
        let len = match &message {
            Message::Text(t) => t.len() as u64,
            _ => 0,
        };
        match tokio::time::timeout(self.write_timeout(), self.socket.send(message)).await {
            Ok(Ok(())) => {
                self.hub.count_out(&self.conn, 1, len);
                Ok(())
            }
            Ok(Err(_)) => Err(Ending::lost("the client went away")),
            Err(_) => Err(self.close_stalled().await),
        }
    }

    fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.hub.limits().write_timeout_secs)
    }

    /// Closes a connection whose socket accepted nothing for the write timeout: a slow consumer.
    async fn close_stalled(&mut self) -> Ending {
        let why = format!(
            "the client read nothing for {} s while the hub had frames for it (a slow consumer)",
            self.hub.limits().write_timeout_secs
        );
        self.close(CloseCode::OverCapacity, why).await
    }

    /// Writes every frame the channels it joined have for it, and counts them. A connection asked to close while the
    /// write is stuck (a reader that stopped reading) does not wait for that write, and one whose socket
    /// accepts nothing for the write timeout is closed as a slow consumer.
    async fn write_queued(&mut self) -> Result<(), Ending> {
        let conn = self.conn.clone();
        conn.take_queued(&mut self.out);
        let frames = self.out.len() as u64;
        let bytes: u64 = self.out.iter().map(|f| f.len() as u64).sum();
        let kicked = tokio::select! {
            biased;
            result = self.write_out() => match result {
                Ok(()) => {
                    self.hub.count_out(&conn, frames, bytes);
                    return Ok(());
                }
                Err(WriteError::Gone) => return Err(Ending::lost("the client went away")),
                Err(WriteError::Stalled) => return Err(self.close_stalled().await),
            },
            code = conn.kicked() => code,
        };
        // Asked to close while a write was stuck: the client has stopped reading. Its close frame goes out
        // if the client catches up within the close timeout; otherwise the connection is dropped.
        Err(self.close(kicked, kicked.reason().to_owned()).await)
    }

    /// Writes out every frame of `out`. On a real socket the frames' bytes, built once for every
    /// subscriber, go straight to the byte stream, several in one vectored write; elsewhere each becomes
    /// a message. Each write that makes no progress for the write timeout stops it, `Stalled`. Cut short
    /// (the future dropped), it leaves in `out` what is not written, the first frame perhaps in part.
    async fn write_out(&mut self) -> Result<(), WriteError> {
        let timeout = self.write_timeout();
        let within = |result: Result<Result<(), _>, _>| match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriteError::Gone),
            Err(_) => Err(WriteError::Stalled),
        };
        if self.socket.raw().is_none() {
            while let Some(frame) = self.out.pop_front() {
                within(tokio::time::timeout(timeout, self.socket.feed(Message::Text(frame.to_text()))).await)?;
            }
            return within(tokio::time::timeout(timeout, self.socket.flush()).await);
        }
        // Whatever the WebSocket layer holds (an answer to a ping) goes first, and whole.
        within(tokio::time::timeout(timeout, self.socket.flush()).await)?;
        while !self.out.is_empty() {
            let Some(raw) = self.socket.raw() else { return Err(WriteError::Gone) };
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(self.out.len().min(WRITE_BATCH));
            for (i, frame) in self.out.iter().take(WRITE_BATCH).enumerate() {
                let skip = if i == 0 { self.out_sent } else { 0 };
                slices.push(IoSlice::new(&frame.wire()[skip..]));
            }
            let written = match tokio::time::timeout(timeout, raw.write_vectored(&slices)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(WriteError::Gone),
                Ok(Ok(n)) => n,
                Err(_) => return Err(WriteError::Stalled),
            };
            drop(slices);
            self.advance(written);
        }
        Ok(())
    }

    /// Marks `written` more bytes of `out` as sent.
    fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let Some(first) = self.out.front() else { return };
            let left = first.wire().len() - self.out_sent;
            if written < left {
                self.out_sent += written;
                return;
            }
            written -= left;
            self.out.pop_front();
            self.out_sent = 0;
        }
    }

    /// Before a close frame: a frame whose write was cut short is finished (else the client would read
    /// the close frame as part of it); the frames not begun are dropped. False if it could not be
    /// finished, and then no other frame may follow on this stream.
    async fn finish_partial_frame(&mut self) -> bool {
        let mut finished = true;
        if self.out_sent > 0
            && let Some(first) = self.out.pop_front()
        {
            let rest = &first.wire()[self.out_sent..];
            finished = match self.socket.raw() {
                Some(raw) => matches!(tokio::time::timeout(CLOSE_TIMEOUT, raw.write_all(rest)).await, Ok(Ok(()))),
                None => false,
            };
        }
        self.out.clear();
        self.out_sent = 0;
        finished
    }

    /// Sends the error frame and close frame for `code`, bounded in time. (The session then waits for the
    /// client's close frame, reading and discarding what comes before it, so that the close reaches the
    /// client: see [`serve`].)
    async fn close(&mut self, code: CloseCode, why: String) -> Ending {
        let error = (code != CloseCode::Normal).then(|| error_frame(self.conn.protocol, code, &why));
        self.close_sent = self.finish_partial_frame().await && send_close(&mut self.socket, error, code).await;
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
