//! One task per WebSocket connection: it reads the client's frames and asks the hub, writes what the hub
//! queued for it, keeps the connection alive with pings, and closes it with the right code.
//!
//! The session is written over any `Sink` + `Stream` of WebSocket messages, so the same code runs on a
//! real socket and, in tests, on in-memory channels. Replies to the client's own frames are written
//! directly; deliveries come through the connection's bounded queue ([`crate::hub::Connection`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::hub::{App, Cached, Connection, Frame, Hub, Member, Protocol, SubscribeError};
use crate::protocol::channel::SERVER_TO_USER_PREFIX;
use crate::protocol::{ChannelKind, ChannelName, CloseCode, pusher, signature, v1};

/// How many queued frames are written before one flush.
const WRITE_BATCH: usize = 64;

/// How long the hub waits for a close frame to be written before it drops the connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Who the peer is, as the HTTP layer saw it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's address.
    pub remote: std::net::SocketAddr,
    /// Its `User-Agent` header.
    pub user_agent: Option<String>,
}

/// How a session ended: the close code, if one was sent or received, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The code.
    pub code: Option<u16>,
    /// Why.
    pub reason: String,
}

/// Refuses a connection before any session starts: sends the error frame for the protocol, then closes
/// with the same code (Pusher clients read the code to decide whether to reconnect).
pub async fn refuse<S>(mut socket: S, protocol: Protocol, code: CloseCode, message: &str)
where
    S: Sink<Message> + Unpin,
{
    let frame = match protocol {
        Protocol::Pusher => pusher::error(Some(code.code()), message),
        Protocol::PoussrV1 => v1::error(code.code(), message),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        socket.send(Message::Text(frame.into())).await.ok()?;
        socket.send(close_message(code)).await.ok()
    })
    .await;
}

/// The close that answers a frame the WebSocket layer refused while reading it, when the client should be
/// told why: a text frame that is not UTF-8 (1007), or one larger than even the layer's own limit (1009).
/// Other read errors (a reset connection, a protocol violation) end the connection without an answer.
fn refusal_of_read_error(error: &str, max_message_bytes: usize) -> Option<(CloseCode, String)> {
    if error.starts_with("UTF-8 encoding error") {
        return Some((CloseCode::InvalidPayload, "a text frame was not valid UTF-8".into()));
    }
    if let Some(detail) = error.strip_prefix("Space limit exceeded: ") {
        return Some((
            CloseCode::MessageTooBig,
            format!("the frame is too large ({detail}); the limit is {max_message_bytes} bytes"),
        ));
    }
    None
}

fn close_message(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame { code: code.code(), reason: Utf8Bytes::from_static(code.reason()) }))
}

/// Runs a connection to its end: registers it with the hub, serves it, and unregisters it.
pub async fn serve<S, E>(socket: S, hub: Hub, app: Arc<App>, protocol: Protocol, peer: Peer) -> Ending
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
    E: std::fmt::Display,
{
    let (conn, rx) = match hub.open(app, peer.remote, peer.user_agent.as_deref(), protocol) {
        Ok(opened) => opened,
        Err(e) => {
            let code = e.close_code();
            let message = match e {
                crate::hub::OpenError::OverQuota => {
                    format!("the hub allows {} connections and has no room for another", hub.limits().max_connections)
                }
                crate::hub::OpenError::TooManyFromAddress => format!(
                    "{} already has {} connections open, the most allowed from one address; retry later",
                    peer.remote.ip().to_canonical(),
                    hub.limits().max_connections_per_address
                ),
                crate::hub::OpenError::ShuttingDown => "the hub is restarting; reconnect".to_owned(),
            };
            hub.record_close(code.code());
            refuse(socket, protocol, code, &message).await;
            return Ending { code: Some(code.code()), reason: message };
        }
    };
    let mut session =
        Session { hub: hub.clone(), conn: conn.clone(), socket, rx, client_window: Instant::now(), client_events: 0 };
    let ending = session.run().await;
    hub.close(&conn, ending.code, &ending.reason);
    ending
}

struct Session<S> {
    hub: Hub,
    conn: Arc<Connection>,
    socket: S,
    rx: mpsc::Receiver<Frame>,
    /// The start of the current one-second window of the client-event rate limit.
    client_window: Instant,
    /// Client events received in that window.
    client_events: u32,
}

/// What handling one client frame asks the loop to do next.
enum Next {
    Continue,
    Close(CloseCode, String),
}

impl<S, E> Session<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
    E: std::fmt::Display,
{
    async fn run(&mut self) -> Ending {
        let limits = self.hub.limits().clone();
        let activity_timeout = Duration::from_secs(limits.activity_timeout_secs);
        let pong_timeout = Duration::from_secs(limits.pong_timeout_secs);

        if self.conn.protocol == Protocol::Pusher {
            let hello = pusher::connection_established(&self.conn.socket_id, limits.activity_timeout_secs);
            if self.write(Message::Text(hello.into())).await.is_err() {
                return Ending { code: None, reason: "the client went away during the handshake".into() };
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
                            let error = e.to_string();
                            return match refusal_of_read_error(&error, limits.max_message_bytes) {
                                Some((code, why)) => self.close(code, why).await,
                                None => Ending { code: None, reason: format!("connection error: {error}") },
                            };
                        }
                        None => return Ending { code: None, reason: "the client went away".into() },
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
                        return Ending { code: None, reason: "removed from the hub".into() };
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
                            Protocol::Pusher => Message::Text(pusher::ping().into()),
                            Protocol::PoussrV1 => Message::Ping(bytes::Bytes::new()),
                        };
                        if self.write(ping).await.is_err() {
                            return Ending { code: None, reason: "the client went away".into() };
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
            Err(_) => Err(Ending { code: None, reason: "the client went away".into() }),
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
                Err(()) => return Err(Ending { code: None, reason: "the client went away".into() }),
            },
            code = conn.kicked() => code,
        };
        // Asked to close while a write was stuck: the client has stopped reading. Its close frame goes out
        // if the client catches up within the close timeout; otherwise the connection is dropped.
        Err(self.close(kicked, kicked.reason().to_owned()).await)
    }

    /// Sends the error frame and close frame for `code`, bounded in time.
    async fn close(&mut self, code: CloseCode, why: String) -> Ending {
        let frame = match self.conn.protocol {
            Protocol::Pusher => pusher::error(Some(code.code()), &why),
            Protocol::PoussrV1 => v1::error(code.code(), &why),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if code != CloseCode::Normal {
                self.socket.send(Message::Text(frame.into())).await.ok()?;
            }
            self.socket.send(close_message(code)).await.ok()
        })
        .await;
        Ending { code: Some(code.code()), reason: why }
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
                let ending = Ending {
                    code: frame.as_ref().map(|f| f.code),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                };
                return Err(Ending {
                    reason: if ending.reason.is_empty() { "closed by the client".into() } else { ending.reason },
                    ..ending
                });
            }
            // The WebSocket layer answers pings by itself; both only count as activity.
            Message::Ping(_) | Message::Pong(_) => return Ok(Next::Continue),
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
        self.hub.monitor().emit(|| crate::hub::MonitorEvent::Error {
            at_ms: crate::hub::now_ms(),
            socket_id: Some(self.conn.socket_id.clone()),
            code: None,
            message: message.to_owned(),
        });
        let frame = match self.conn.protocol {
            Protocol::Pusher => pusher::error(None, message),
            Protocol::PoussrV1 => v1::error(v1::FrameError::CODE, message),
        };
        self.reply(frame).await
    }

    async fn on_pusher(&mut self, text: &str) -> Result<Next, Ending> {
        use pusher::ClientMessage as M;
        let message = match M::parse(text) {
            Ok(m) => m,
            Err(e) => {
                self.reply_error(&e.to_string()).await?;
                return Ok(Next::Continue);
            }
        };
        match message {
            M::Ping => self.reply(pusher::pong()).await?,
            M::Pong => {}
            M::Subscribe(sub) => self.pusher_subscribe(sub).await?,
            M::Unsubscribe { channel } => {
                // Leaving a channel one never joined (or with a bad name) is harmless, as in Pusher.
                if let Ok(name) = ChannelName::parse(&channel) {
                    self.hub.unsubscribe(&self.conn, &name);
                }
            }
            M::Signin { auth, user_data } => return self.signin(&auth, &user_data).await,
            M::ClientEvent { event, channel, data } => return self.client_event(&event, &channel, data).await,
        }
        Ok(Next::Continue)
    }

    async fn subscription_error(&mut self, channel: &str, kind: &str, error: &str, status: u16) -> Result<(), Ending> {
        self.hub.monitor().emit(|| crate::hub::MonitorEvent::Error {
            at_ms: crate::hub::now_ms(),
            socket_id: Some(self.conn.socket_id.clone()),
            code: Some(status),
            message: format!("subscription to {channel:?} refused: {error}"),
        });
        self.reply(pusher::subscription_error(channel, kind, error, status)).await
    }

    async fn pusher_subscribe(&mut self, sub: pusher::Subscribe) -> Result<(), Ending> {
        let channel = sub.channel.as_str();
        let name = match ChannelName::parse(channel) {
            Ok(name) => name,
            Err(e) => return self.subscription_error(channel, "InvalidChannel", &e.to_string(), 400).await,
        };
        let kind = name.kind();
        let mut member = None;
        match kind {
            ChannelKind::Public => {}
            ChannelKind::ServerToUser => {
                let wanted = &channel[SERVER_TO_USER_PREFIX.len()..];
                if self.conn.user_id().map(|u| &**u) != Some(wanted) {
                    let error = format!(
                        "{channel} can be joined only by a connection signed in (pusher:signin) as user {wanted:?}"
                    );
                    return self.subscription_error(channel, "AuthError", &error, 403).await;
                }
            }
            ChannelKind::Private | ChannelKind::Encrypted | ChannelKind::Presence => {
                let app = &self.conn.app.config;
                let Some(auth) = sub.auth.as_deref().filter(|a| !a.is_empty()) else {
                    let error = format!(
                        "subscribing to a {} channel needs an auth signature from the app's backend (its channel \
                         authorization endpoint); none was sent",
                        kind.as_str()
                    );
                    return self.subscription_error(channel, "AuthError", &error, 401).await;
                };
                let signed = if kind == ChannelKind::Presence {
                    let Some(data) = sub.channel_data.as_deref() else {
                        let error = "subscribing to a presence channel needs channel_data (the signed user_id and \
                                     user_info); none was sent";
                        return self.subscription_error(channel, "InvalidChannelData", error, 400).await;
                    };
                    format!("{}:{channel}:{data}", self.conn.socket_id)
                } else {
                    format!("{}:{channel}", self.conn.socket_id)
                };
                if !signature::verify_channel_auth(&app.key, &app.secret, auth, &signed) {
                    let error = format!(
                        "the auth signature for {channel:?} is not valid for socket {}: it must be \"{{app_key}}:\
                         {{hex HMAC-SHA256}}\" made with this app's key and secret",
                        self.conn.socket_id
                    );
                    return self.subscription_error(channel, "AuthError", &error, 401).await;
                }
                if let Some(data) = sub.channel_data.as_deref().filter(|_| kind == ChannelKind::Presence) {
                    let limits = self.hub.limits();
                    match pusher::parse_channel_data(
                        data,
                        limits.max_presence_user_id_chars,
                        limits.max_presence_user_info_bytes,
                    ) {
                        Ok(m) => member = Some(Member { user_id: m.user_id.into(), user_info: m.user_info }),
                        Err(e) => return self.subscription_error(channel, "InvalidChannelData", &e, 400).await,
                    }
                }
            }
        }
        let joined = match self.hub.subscribe(&self.conn, &name, member) {
            Ok(joined) => joined,
            Err(e) => {
                let status = match e {
                    SubscribeError::PresenceFull(_) => 403,
                    SubscribeError::TooManyChannels(_) => 400,
                    SubscribeError::ShuttingDown => 503,
                };
                return self.subscription_error(channel, "LimitReached", &e.to_string(), status).await;
            }
        };
        self.reply(pusher::subscription_succeeded(channel, joined.presence.as_deref().unwrap_or("{}"))).await?;
        match joined.cached {
            Some(Cached::Hit(frame)) => self.write(Message::Text(frame)).await,
            Some(Cached::Miss) => self.reply(pusher::cache_miss(channel)).await,
            None => Ok(()),
        }
    }

    /// `pusher:signin`: a bad signature closes the connection with 4009, as Pusher does.
    async fn signin(&mut self, auth: &str, user_data: &str) -> Result<Next, Ending> {
        let app = &self.conn.app.config;
        let signed = format!("{}::user::{user_data}", self.conn.socket_id);
        if !signature::verify_channel_auth(&app.key, &app.secret, auth, &signed) {
            let why = format!(
                "pusher:signin refused: the auth signature does not match the user_data for socket {} (it must be \
                 \"{{app_key}}:{{hex HMAC-SHA256 of socket_id::user::user_data}}\" made with this app's secret)",
                self.conn.socket_id
            );
            return Ok(Next::Close(CloseCode::Unauthorized, why));
        }
        let user_id = match pusher::parse_user_id(user_data, self.hub.limits().max_presence_user_id_chars) {
            Ok(id) => id,
            Err(e) => return Ok(Next::Close(CloseCode::Unauthorized, format!("pusher:signin refused: {e}"))),
        };
        if let Err(e) = self.hub.sign_in(&self.conn, &user_id) {
            self.reply_error(&format!("pusher:signin refused: {e}")).await?;
            return Ok(Next::Continue);
        }
        self.reply(pusher::signin_success(user_data)).await?;
        Ok(Next::Continue)
    }

    /// A `client-*` event: rate-limited per connection, then relayed by the hub if the channel allows it.
    async fn client_event(&mut self, event: &str, channel: &str, data: serde_json::Value) -> Result<Next, Ending> {
        let limits = self.hub.limits().clone();
        let now = Instant::now();
        if now.duration_since(self.client_window) >= Duration::from_secs(1) {
            self.client_window = now;
            self.client_events = 0;
        }
        self.client_events += 1;
        if self.client_events > limits.client_events_per_second {
            let why = format!(
                "more than {} client events in one second from this connection; slow down",
                limits.client_events_per_second
            );
            return Ok(Next::Close(CloseCode::ClientEventRateLimit, why));
        }
        let name = match ChannelName::parse(channel) {
            Ok(name) => name,
            Err(e) => {
                self.reply_error(&format!("{event} on {channel:?}: {e}")).await?;
                return Ok(Next::Continue);
            }
        };
        if event.len() > limits.max_event_name_len {
            let error = format!("the event name is {} bytes; the limit is {}", event.len(), limits.max_event_name_len);
            self.reply_error(&error).await?;
            return Ok(Next::Continue);
        }
        // Relayed as a JSON string, the canonical form; a string the client sent is kept as it is.
        let data = match data {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        if data.len() > limits.max_event_data_bytes {
            let error =
                format!("{event}: the data is {} bytes; the limit is {}", data.len(), limits.max_event_data_bytes);
            self.reply_error(&error).await?;
            return Ok(Next::Continue);
        }
        if let Err(e) = self.hub.client_event(&self.conn, &name, event, &data) {
            self.reply_error(&format!("{event} was not relayed: {e}")).await?;
        }
        Ok(Next::Continue)
    }

    async fn on_v1(&mut self, text: &str) -> Result<Next, Ending> {
        let (channel, subscribe) = match v1::ClientMessage::parse(text) {
            Ok(v1::ClientMessage::Subscribe { channel }) => (channel, true),
            Ok(v1::ClientMessage::Unsubscribe { channel }) => (channel, false),
            Err(e) => {
                self.reply_error(&e.to_string()).await?;
                return Ok(Next::Continue);
            }
        };
        let name = match ChannelName::parse(&channel) {
            Ok(name) => name,
            Err(e) => {
                self.reply_error(&format!("invalid channel {channel:?}: {e}")).await?;
                return Ok(Next::Continue);
            }
        };
        if !subscribe {
            self.hub.unsubscribe(&self.conn, &name);
            return Ok(Next::Continue);
        }
        if name.kind() != ChannelKind::Public || name.is_cache() {
            self.reply_error(&format!(
                "{channel:?} is a {} channel; Poussr v1 clients subscribe to public channels only",
                name.kind().as_str()
            ))
            .await?;
            return Ok(Next::Continue);
        }
        match self.hub.subscribe(&self.conn, &name, None) {
            Ok(_) => self.reply(v1::subscription_succeeded(&channel)).await?,
            Err(e) => self.reply_error(&e.to_string()).await?,
        }
        Ok(Next::Continue)
    }
}

#[cfg(test)]
mod tests;
